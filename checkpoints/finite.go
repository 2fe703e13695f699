package checkpoints

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrNonFinite marks a *NonFiniteError for errors.Is.
var ErrNonFinite = errors.New("checkpoints: non-finite values")

// NonFinite counts one tensor's non-finite values.
type NonFinite struct {
	Name     string
	NaN, Inf int // NaN values, and +Inf or -Inf values
}

// NonFiniteError reports tensors holding NaN or ±Inf: state that a diverged run
// produced, which Save refuses to write and Load refuses to return.
type NonFiniteError struct {
	Op      string      // "save", "load", or "" (CheckFinite)
	Path    string      // the file, "" for CheckFinite
	Tensors []NonFinite // every offending tensor, in tensor order
}

// nonFiniteShown is how many tensors Error names before summing up the rest.
const nonFiniteShown = 3

// Error names the first few tensors and their counts, e.g.
// "checkpoints: x.safetensors: tensor encoder.0.weight has 12 non-finite values
// (12 NaN); tensor bn.running_var has 3 non-finite values (1 NaN, 2 Inf); and 4 more
// tensors (900 values)".
func (e *NonFiniteError) Error() string {
	var b strings.Builder
	b.WriteString("checkpoints: ")
	switch {
	case e.Op == "save":
		fmt.Fprintf(&b, "save %s: refusing to write non-finite state: ", e.Path)
	case e.Path != "":
		b.WriteString(e.Path + ": ")
	}
	for i, t := range e.Tensors[:min(len(e.Tensors), nonFiniteShown)] {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "tensor %s has %d non-finite values (%s)", t.Name, t.NaN+t.Inf, t.kinds())
	}
	if rest := e.Tensors[min(len(e.Tensors), nonFiniteShown):]; len(rest) > 0 {
		n := 0
		for _, t := range rest {
			n += t.NaN + t.Inf
		}
		fmt.Fprintf(&b, "; and %d more tensors (%d values)", len(rest), n)
	}
	if e.Op == "load" {
		b.WriteString(" (the file holds the state of a diverged run; use an earlier checkpoint)")
	}
	return b.String()
}

func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

func (t NonFinite) kinds() string {
	switch {
	case t.Inf == 0:
		return fmt.Sprintf("%d NaN", t.NaN)
	case t.NaN == 0:
		return fmt.Sprintf("%d Inf", t.Inf)
	}
	return fmt.Sprintf("%d NaN, %d Inf", t.NaN, t.Inf)
}

// CheckFinite returns a *NonFiniteError listing every F32 and F64 tensor that holds a
// NaN or an infinity, or nil when all values are finite. It reads each value once,
// with no allocation unless it finds some: call it on the model's parameters and
// buffers and on the optimizer state before saving, to tell a diverged run from a
// good checkpoint. Save and Load make the same check.
func CheckFinite(tensors []Tensor) error {
	var bad []NonFinite
	for i := range tensors {
		t := &tensors[i]
		var nf NonFinite
		switch t.DType.orF32() {
		case F32:
			if !allFinite32(t.Data) {
				for _, v := range t.Data {
					f := float64(v)
					if math.IsNaN(f) {
						nf.NaN++
					} else if math.IsInf(f, 0) {
						nf.Inf++
					}
				}
			}
		case F64:
			for _, v := range t.F64 {
				if math.IsNaN(v) {
					nf.NaN++
				} else if math.IsInf(v, 0) {
					nf.Inf++
				}
			}
		}
		if nf.NaN+nf.Inf > 0 {
			nf.Name = t.Name
			bad = append(bad, nf)
		}
	}
	if bad == nil {
		return nil
	}
	return &NonFiniteError{Tensors: bad}
}

// allFinite32 is the fast path: v-v is 0 for a finite v and NaN for NaN or ±Inf,
// and a sum of such terms is NaN as soon as one is. Four sums break the dependency
// chain.
func allFinite32(v []float32) bool {
	var a0, a1, a2, a3 float32
	for len(v) >= 4 {
		a0 += v[0] - v[0]
		a1 += v[1] - v[1]
		a2 += v[2] - v[2]
		a3 += v[3] - v[3]
		v = v[4:]
	}
	for _, x := range v {
		a0 += x - x
	}
	return a0+a1+a2+a3 == 0
}
