package checkpoints

import (
	"fmt"
	"slices"
	"strings"
)

// Spec names a tensor a model expects: its name, element type (zero means F32) and
// shape.
type Spec struct {
	Name  string
	DType DType
	Shape []int
}

func (s Spec) String() string {
	if s.DType.orF32() == F32 {
		return fmt.Sprintf("%s %v", s.Name, s.Shape)
	}
	return fmt.Sprintf("%s %s%v", s.Name, s.DType, s.Shape)
}

// Mismatch is a tensor present on both sides with a different shape or dtype.
type Mismatch struct {
	Name      string
	Want, Got Spec // Want from the model, Got from the file
}

// Diff is how a file's tensors differ from what a model expects.
type Diff struct {
	Missing    []Spec     // expected by the model, absent from the file
	Unexpected []Spec     // in the file, not expected by the model
	Mismatched []Mismatch // in both, with different shapes or dtypes
}

// OK reports whether the file holds exactly the expected tensors.
func (d Diff) OK() bool {
	return len(d.Missing) == 0 && len(d.Unexpected) == 0 && len(d.Mismatched) == 0
}

// Match compares the tensors of f with those a model expects, in want's order (then
// f's order for the unexpected ones). Leave out of f what should not be compared
// (optimizer state, num_batches_tracked) with File.Filter first.
func Match(want []Spec, f *File) Diff {
	specs := f.Specs()
	have := make(map[string]Spec, len(specs))
	for _, s := range specs {
		have[s.Name] = s
	}
	var d Diff
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w.Name] = true
		g, ok := have[w.Name]
		switch {
		case !ok:
			d.Missing = append(d.Missing, w)
		case g.DType.orF32() != w.DType.orF32() || !slices.Equal(g.Shape, w.Shape):
			d.Mismatched = append(d.Mismatched, Mismatch{Name: w.Name, Want: w, Got: g})
		}
	}
	for _, s := range specs {
		if !wanted[s.Name] {
			d.Unexpected = append(d.Unexpected, s)
		}
	}
	return d
}

// Err returns nil if d is OK, else a *MismatchError for the file at path.
func (d Diff) Err(path string) error {
	if d.OK() {
		return nil
	}
	return &MismatchError{Path: path, Diff: d}
}

// MismatchError says that a checkpoint does not fit a model: a different
// architecture, width or class count.
type MismatchError struct {
	Path string
	Diff Diff
}

// maxMismatchLines bounds how many differing tensors the message lists.
const maxMismatchLines = 20

func (e *MismatchError) Error() string {
	d := e.Diff
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoints: %s does not fit the model: %d tensors differ in shape, %d missing from the file, %d not in the model",
		e.Path, len(d.Mismatched), len(d.Missing), len(d.Unexpected))
	if hint := d.hint(); hint != "" {
		b.WriteString(" (" + hint + ")")
	}
	var lines []string
	for _, m := range d.Mismatched {
		lines = append(lines, fmt.Sprintf("%s: file has %s%v, model wants %s%v", m.Name, dtypePrefix(m.Got.DType), m.Got.Shape, dtypePrefix(m.Want.DType), m.Want.Shape))
	}
	for _, s := range d.Missing {
		lines = append(lines, fmt.Sprintf("missing from the file: %s", s))
	}
	for _, s := range d.Unexpected {
		lines = append(lines, fmt.Sprintf("not in the model: %s", s))
	}
	for i, l := range lines {
		if i == maxMismatchLines {
			fmt.Fprintf(&b, "\n  and %d more", len(lines)-i)
			break
		}
		b.WriteString("\n  " + l)
	}
	return b.String()
}

func dtypePrefix(d DType) string {
	if d.orF32() == F32 {
		return ""
	}
	return string(d)
}

// hint guesses the cause: a different class count when only leading dimensions
// differ, all by the same pair of sizes; a different architecture when names differ.
func (d Diff) hint() string {
	if len(d.Missing) > 0 || len(d.Unexpected) > 0 {
		return "a different architecture or variant, e.g. with or without batch norm"
	}
	if len(d.Mismatched) == 0 {
		return ""
	}
	gotN, wantN := -1, -1
	for _, m := range d.Mismatched {
		g, w := m.Got.Shape, m.Want.Shape
		if len(g) != len(w) || len(g) == 0 || !slices.Equal(g[1:], w[1:]) || m.Got.DType.orF32() != m.Want.DType.orF32() {
			return "a different architecture or width"
		}
		if gotN == -1 {
			gotN, wantN = g[0], w[0]
		} else if g[0] != gotN || w[0] != wantN {
			return "a different architecture or width"
		}
	}
	return fmt.Sprintf("a different class count: the file has %d classes, the model %d", gotN, wantN)
}
