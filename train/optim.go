package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vggo/vggo/internal/parallel"
)

// Param is one trainable tensor as an optimizer sees it: its flat values and gradient
// (of equal length) and whether weight decay skips it. The caller sets NoDecay for
// biases and batch-norm parameters when the user exempts them from decay (a torch
// param group with weight_decay=0).
type Param struct {
	Name    string
	Data    []float32
	Grad    []float32
	NoDecay bool
}

// Optimizer updates parameters from their gradients and can export its state for a
// checkpoint and import it again, so that a resumed run continues bit for bit.
//
// Step applies one update with learning rate lr (from a Schedule). params must come in
// the same order, with the same names and lengths, at every call. SetState replaces
// the state before the first Step of a resumed run.
type Optimizer interface {
	Name() string
	Step(params []Param, lr float64) error
	State() State
	SetState(s State, params []Param) error
}

// State is an optimizer's exportable state.
//
// Tensors holds one flat buffer per parameter and kind, keyed
// "optim.<kind>.<param name>" with torch's state names for kind: momentum_buffer (SGD
// with momentum), exp_avg and exp_avg_sq (Adam, AdamW). They are empty before the first
// step. Store them as F32 tensors of shape [len] in the checkpoint, and Optimizer and
// Step as metadata strings (see Metadata and RestoreState), so the step count survives
// exactly. The buffers returned by State alias the optimizer's own, and change at the
// next Step: save (or copy) them before stepping again.
type State struct {
	Optimizer string               // the Name of the optimizer that produced it
	Step      int64                // completed steps
	Tensors   map[string][]float32 // "optim.<kind>.<param name>"
}

// Checkpoint metadata keys for a State's scalar fields, and the prefix of its tensors.
const (
	MetaOptimizer = "optim.name"
	MetaOptimStep = "optim.step"
	StatePrefix   = "optim."
)

// Keys returns the names of s.Tensors, sorted.
func (s State) Keys() []string {
	keys := make([]string, 0, len(s.Tensors))
	for k := range s.Tensors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Metadata returns the state's scalar fields as checkpoint metadata strings:
// optim.name and optim.step (decimal).
func (s State) Metadata() map[string]string {
	return map[string]string{MetaOptimizer: s.Optimizer, MetaOptimStep: strconv.FormatInt(s.Step, 10)}
}

// RestoreState rebuilds a State from checkpoint metadata (optim.name, optim.step) and
// the checkpoint's tensors by name; it keeps those whose names start with "optim.".
func RestoreState(metadata map[string]string, tensors map[string][]float32) (State, error) {
	name, ok := metadata[MetaOptimizer]
	if !ok {
		return State{}, errors.New("train: the checkpoint has no optimizer state (metadata optim.name is missing); it holds weights only, so start the optimizer afresh")
	}
	step, err := strconv.ParseInt(metadata[MetaOptimStep], 10, 64)
	if err != nil || step < 0 {
		return State{}, fmt.Errorf("train: checkpoint metadata optim.step = %q is not a step count", metadata[MetaOptimStep])
	}
	s := State{Optimizer: name, Step: step, Tensors: map[string][]float32{}}
	for k, v := range tensors {
		if strings.HasPrefix(k, StatePrefix) {
			s.Tensors[k] = v
		}
	}
	return s, nil
}

// OptimizerConfig selects and configures an optimizer; it is a plain value meant to be
// part of the saved training configuration. Fields that do not apply to Kind must be
// zero: NewOptimizer refuses them rather than ignoring them.
type OptimizerConfig struct {
	Kind        string  `json:"kind"`                // "sgd", "adam" or "adamw"
	Momentum    float64 `json:"momentum,omitempty"`  // sgd
	Dampening   float64 `json:"dampening,omitempty"` // sgd
	Nesterov    bool    `json:"nesterov,omitempty"`  // sgd
	Beta1       float64 `json:"beta1,omitempty"`     // adam, adamw
	Beta2       float64 `json:"beta2,omitempty"`     // adam, adamw
	Eps         float64 `json:"eps,omitempty"`       // adam, adamw
	WeightDecay float64 `json:"weight_decay"`        // all: L2 added to the gradient (sgd, adam) or decoupled (adamw)
}

// UnmarshalJSON reads an optimizer configuration, also with the "WeightDecay" key of
// configurations written before the keys were snake_case (the other old keys match
// case-insensitively).
func (c *OptimizerConfig) UnmarshalJSON(b []byte) error {
	type plain OptimizerConfig
	var v struct {
		plain
		WeightDecay *float64 `json:"WeightDecay"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = OptimizerConfig(v.plain)
	setIf(&c.WeightDecay, v.WeightDecay)
	return nil
}

// DefaultOptimizerConfig returns torch.optim's defaults for kind: SGD without
// momentum, Adam with betas (0.9, 0.999) and eps 1e-8, AdamW the same with weight
// decay 0.01. An unknown kind gives a config that NewOptimizer refuses.
func DefaultOptimizerConfig(kind string) OptimizerConfig {
	switch kind {
	case "adam":
		return OptimizerConfig{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	case "adamw":
		return OptimizerConfig{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	}
	return OptimizerConfig{Kind: kind}
}

// NewOptimizer builds the optimizer c describes.
func NewOptimizer(c OptimizerConfig) (Optimizer, error) {
	var unused []string
	switch c.Kind {
	case "sgd":
		for _, f := range []struct {
			name string
			set  bool
		}{{"beta1", c.Beta1 != 0}, {"beta2", c.Beta2 != 0}, {"eps", c.Eps != 0}} {
			if f.set {
				unused = append(unused, f.name)
			}
		}
		if len(unused) > 0 {
			return nil, fmt.Errorf("train: optimizer sgd does not use %s (they are for adam and adamw; leave them 0)", strings.Join(unused, ", "))
		}
		return NewSGD(SGDConfig{Momentum: c.Momentum, Dampening: c.Dampening, Nesterov: c.Nesterov, WeightDecay: c.WeightDecay})
	case "adam", "adamw":
		for _, f := range []struct {
			name string
			set  bool
		}{{"momentum", c.Momentum != 0}, {"dampening", c.Dampening != 0}, {"nesterov", c.Nesterov}} {
			if f.set {
				unused = append(unused, f.name)
			}
		}
		if len(unused) > 0 {
			return nil, fmt.Errorf("train: optimizer %s does not use %s (they are for sgd; %s's momentum is beta1)", c.Kind, strings.Join(unused, ", "), c.Kind)
		}
		ac := AdamConfig{Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay}
		if c.Kind == "adamw" {
			return NewAdamW(ac)
		}
		return NewAdam(ac)
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (choose sgd, adam or adamw)", c.Kind)
}

func checkHyper(opt, name string, v, lo, hi float64, hiOpen bool) error {
	if math.IsNaN(v) || v < lo || v > hi || (hiOpen && v == hi) {
		bracket := "]"
		if hiOpen {
			bracket = ")"
		}
		return fmt.Errorf("train: %s: %s = %v is outside [%v, %v%s", opt, name, v, lo, hi, bracket)
	}
	return nil
}

// importState checks s against the optimizer name and params and returns copies of
// its buffers, bufs[k][i] for kinds[k] and params[i]. Every expected key must be
// present with the param's length, and no other key may be.
func importState(opt string, s State, params []Param, kinds []string) ([][][]float32, error) {
	if s.Optimizer != opt {
		return nil, fmt.Errorf("train: %s: the optimizer state is from %q; resume with the same optimizer, or start the optimizer afresh", opt, s.Optimizer)
	}
	if s.Step < 0 {
		return nil, fmt.Errorf("train: %s: negative step count %d in the optimizer state", opt, s.Step)
	}
	if err := checkNames(opt, params); err != nil {
		return nil, err
	}
	var problems []string
	used := map[string]bool{}
	bufs := make([][][]float32, len(kinds))
	for k, kind := range kinds {
		bufs[k] = make([][]float32, len(params))
		for i, p := range params {
			key := StatePrefix + kind + "." + p.Name
			used[key] = true
			b, ok := s.Tensors[key]
			switch {
			case !ok:
				problems = append(problems, "missing "+key)
			case len(b) != len(p.Data):
				problems = append(problems, fmt.Sprintf("%s has %d values, param %s has %d", key, len(b), p.Name, len(p.Data)))
			default:
				bufs[k][i] = slices.Clone(b)
			}
		}
	}
	for _, key := range s.Keys() {
		if !used[key] {
			problems = append(problems, "unexpected "+key)
		}
	}
	if len(problems) == 0 {
		return bufs, nil
	}
	const maxLines = 20
	msg := fmt.Sprintf("train: %s: the optimizer state (step %d) does not fit the %d parameters; was it saved for another model or with other optimizer settings? start the optimizer afresh to train on:", opt, s.Step, len(params))
	for i, p := range problems {
		if i == maxLines {
			msg += fmt.Sprintf("\n  and %d more", len(problems)-i)
			break
		}
		msg += "\n  " + p
	}
	return nil, errors.New(msg)
}

func checkNames(opt string, params []Param) error {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		if p.Name == "" {
			return fmt.Errorf("train: %s: param %d has no name", opt, i)
		}
		if seen[p.Name] {
			return fmt.Errorf("train: %s: param name %q appears twice", opt, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// prepare validates a Step call: lr, gradients, and the same parameter list as
// before (names and lengths). It returns the layout, new on the first call.
func prepare(opt string, lay *layout, params []Param, lr float64) (*layout, error) {
	if math.IsNaN(lr) || math.IsInf(lr, 0) || lr < 0 {
		return lay, fmt.Errorf("train: %s: learning rate %v is not a finite non-negative number", opt, lr)
	}
	for _, p := range params {
		if len(p.Grad) != len(p.Data) {
			return lay, fmt.Errorf("train: %s: param %s has %d values but %d gradient values (is it missing from the backward pass?)", opt, p.Name, len(p.Data), len(p.Grad))
		}
	}
	if lay == nil {
		if err := checkNames(opt, params); err != nil {
			return nil, err
		}
		return newLayout(params), nil
	}
	if len(params) != len(lay.names) {
		return lay, fmt.Errorf("train: %s: got %d params, the optimizer holds state for %d (pass the same parameter list at every step)", opt, len(params), len(lay.names))
	}
	for i, p := range params {
		if p.Name != lay.names[i] || len(p.Data) != lay.sizes[i] {
			return lay, fmt.Errorf("train: %s: param %d is %s with %d values, the optimizer holds state for %s with %d (pass the same parameter list, in the same order, at every step)",
				opt, i, p.Name, len(p.Data), lay.names[i], lay.sizes[i])
		}
	}
	return lay, nil
}

// chunkSize is the number of elements one goroutine updates at a time: 128 KiB per
// float32 stream.
const chunkSize = 1 << 15

// parallelMin is the total number of elements below which Step runs on the calling
// goroutine.
const parallelMin = 1 << 16

// layout is the parameter list an optimizer's state belongs to, cut into chunks for
// the parallel update.
type layout struct {
	names  []string
	sizes  []int
	total  int
	chunks []chunk
	pool   parallel.Pool
}

type chunk struct{ param, lo, hi int }

func newLayout(params []Param) *layout {
	l := &layout{names: make([]string, len(params)), sizes: make([]int, len(params))}
	for i, p := range params {
		l.names[i], l.sizes[i] = p.Name, len(p.Data)
		l.total += len(p.Data)
		for lo := 0; lo < len(p.Data); lo += chunkSize {
			l.chunks = append(l.chunks, chunk{i, lo, min(lo+chunkSize, len(p.Data))})
		}
	}
	return l
}

// run calls fn on every chunk, spreading chunks over the layout's pool.
// Updates are element-wise, so the result does not depend on the split.
func (l *layout) run(fn func(param, lo, hi int)) {
	if l.total < parallelMin {
		for _, c := range l.chunks {
			fn(c.param, c.lo, c.hi)
		}
		return
	}
	l.pool.For(len(l.chunks), func(lo, hi int) {
		for _, c := range l.chunks[lo:hi] {
			fn(c.param, c.lo, c.hi)
		}
	})
}
