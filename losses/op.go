package losses

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops"
)

// lossOp is the fused forward op: softmax over the class axis, then cross-entropy and/or
// dice, giving a float32 scalar. Its inputs are the float32 logits, (N, C, H, W) or
// (N, C), and the tensor.Int labels, (N, H, W) or (N). The labels are not differentiable.
// The op keeps the per-target log-sum-exp for its gradient op, lossGradOp.
type lossOp struct {
	cfg  config
	dims int    // of the logits: 4 or 2
	name string // for String: "CrossEntropy", "Dice" or "CE+Dice"
	st   *state
	prof *ops.Profile // shared with the gradient op; nil: not timed
}

var (
	_ G.Op   = (*lossOp)(nil)
	_ G.SDOp = (*lossOp)(nil)
	_ G.Op   = (*lossGradOp)(nil)
)

func (op *lossOp) Arity() int { return 2 }

// Type is float32 logits → int labels → float32. Concrete dtypes: a single type
// variable would force the labels to be float too.
func (op *lossOp) Type() hm.Type {
	return hm.NewFnType(op.logitsType(), op.labelsType(), tensor.Float32)
}

func (op *lossOp) logitsType() hm.Type { return G.TensorType{Dims: op.dims, Of: tensor.Float32} }
func (op *lossOp) labelsType() hm.Type { return G.TensorType{Dims: op.dims - 1, Of: tensor.Int} }

func (op *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (op *lossOp) ReturnsPtr() bool                               { return false }
func (op *lossOp) CallsExtern() bool                              { return false }
func (op *lossOp) OverwritesInput() int                           { return -1 }

// WriteHash covers every option, so two losses that differ in any of them are never
// merged by Gorgonia's hash-consing.
func (op *lossOp) WriteHash(h hash.Hash) {
	c := &op.cfg
	fmt.Fprintf(h, "vggo.losses.%s{dims=%d ce=%v dice=%v ignore=%d weights=%v smoothing=%v diceSmooth=%v presentOnly=%t}",
		op.name, op.dims, c.ceCoef, c.diceCoef, c.ignore, c.weights, c.smoothing, c.diceSmooth, c.presentOnly)
}

func (op *lossOp) Hashcode() uint32 { return hashOf(op) }

func (op *lossOp) String() string {
	c := &op.cfg
	s := fmt.Sprintf("%s{ignore=%d", op.name, c.ignore)
	if c.weights != nil {
		s += " weighted"
	}
	if c.smoothing != 0 {
		s += fmt.Sprintf(" ls=%v", c.smoothing)
	}
	if c.ceCoef != 0 && c.diceCoef != 0 {
		s += fmt.Sprintf(" dice×%v", c.diceCoef)
	}
	return s + "}"
}

func (op *lossOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.prof.Stop(ops.KindLoss, op.prof.Start())
	if len(inputs) != 2 {
		return nil, fmt.Errorf("losses: %s takes 2 inputs (logits, labels), got %d", op.name, len(inputs))
	}
	x, labels, n, c, hw, err := op.inputs(inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	t, err := forward(&op.cfg, op.st, x, labels, n, c, hw)
	if err != nil {
		return nil, err
	}
	return G.NewF32(float32(t.Total)), nil
}

// inputs checks the runtime values against the op and returns their backing slices.
func (op *lossOp) inputs(lv, yv G.Value) (x []float32, labels []int, n, c, hw int, err error) {
	ld, ok := lv.(*tensor.Dense)
	if !ok || ld.Dtype() != tensor.Float32 {
		return nil, nil, 0, 0, 0, fmt.Errorf("losses: %s: logits must be a float32 tensor, got %T %v", op.name, lv, lv.Dtype())
	}
	yd, ok := yv.(*tensor.Dense)
	if !ok || yd.Dtype() != tensor.Int {
		return nil, nil, 0, 0, 0, fmt.Errorf("losses: %s: labels must be a tensor.Int tensor, got %T %v", op.name, yv, yv.Dtype())
	}
	if n, c, hw, err = checkShapes(ld.Shape(), yd.Shape()); err != nil {
		return nil, nil, 0, 0, 0, err
	}
	if ld.RequiresIterator() {
		ld = ld.Materialize().(*tensor.Dense)
	}
	if yd.RequiresIterator() {
		yd = yd.Materialize().(*tensor.Dense)
	}
	if op.cfg.weights != nil && len(op.cfg.weights) != c {
		return nil, nil, 0, 0, 0, fmt.Errorf("losses: %s has %d class weights, logits %v have %d classes", op.name, len(op.cfg.weights), ld.Shape(), c)
	}
	return ld.Float32s(), yd.Ints(), n, c, hw, nil
}

func (op *lossOp) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff returns the logits' gradient node; the labels get none. The gradient op also
// reads the loss node, so that it always runs after the forward op whose state it uses.
func (op *lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("losses: %s takes 2 inputs, got %d", op.name, len(inputs))
	}
	dx, err := G.ApplyOp(&lossGradOp{fwd: op}, inputs[0], inputs[1], output, grad)
	if err != nil {
		return nil, fmt.Errorf("losses: %s gradient: %w", op.name, err)
	}
	return G.Nodes{dx, nil}, nil
}

// lossGradOp computes ∂loss/∂logits scaled by the incoming scalar gradient, from the
// logits, the labels and the state of its forward op. Its inputs are (logits, labels,
// loss, gradient of the loss). It is not itself differentiable.
type lossGradOp struct{ fwd *lossOp }

// SetProfile makes the op report its time to p as ops.KindLoss (ops.Profile.Attach calls
// it); the forward op and its gradient share the setting.
func (op *lossOp) SetProfile(p *ops.Profile) { op.prof = p }

// SetProfile sets the profile of the forward op this gradient belongs to.
func (op *lossGradOp) SetProfile(p *ops.Profile) { op.fwd.prof = p }

func (op *lossGradOp) Arity() int { return 4 }

func (op *lossGradOp) Type() hm.Type {
	lt := op.fwd.logitsType()
	return hm.NewFnType(lt, op.fwd.labelsType(), tensor.Float32, tensor.Float32, lt)
}

func (op *lossGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 4 {
		return nil, fmt.Errorf("losses: %s gradient takes 4 inputs, got %d", op.fwd.name, len(ds))
	}
	s, ok := ds[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("losses: %s gradient: logits shape is a %T", op.fwd.name, ds[0])
	}
	return s.Clone(), nil
}

func (op *lossGradOp) ReturnsPtr() bool     { return false }
func (op *lossGradOp) CallsExtern() bool    { return false }
func (op *lossGradOp) OverwritesInput() int { return -1 }

// WriteHash names the forward op instance: the gradient reads that op's state.
func (op *lossGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "vggo.losses.grad(%p)", op.fwd)
	op.fwd.WriteHash(h)
}

func (op *lossGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *lossGradOp) String() string   { return "∂" + op.fwd.String() }

func (op *lossGradOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.fwd.prof.Stop(ops.KindLoss, op.fwd.prof.Start())
	if len(inputs) != 4 {
		return nil, fmt.Errorf("losses: %s gradient takes 4 inputs, got %d", op.fwd.name, len(inputs))
	}
	x, labels, n, c, hw, err := op.fwd.inputs(inputs[0], inputs[1])
	if err != nil {
		return nil, err
	}
	g, err := scalarOf(inputs[3])
	if err != nil {
		return nil, fmt.Errorf("losses: %s gradient: %w", op.fwd.name, err)
	}
	st := op.fwd.st
	if !st.fresh || st.n != n || st.c != c || st.hw != hw {
		// The forward op always runs first in a graph (the gradient reads its output);
		// recompute if it somehow did not, rather than use stale state.
		if _, err := forward(&op.fwd.cfg, st, x, labels, n, c, hw); err != nil {
			return nil, err
		}
	}
	grad := backward(&op.fwd.cfg, st, x, labels, g)
	shape := inputs[0].Shape().Clone()
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(grad)), nil
}

// scalarOf reads a scalar Value: Gorgonia passes *F32 (or *F64) for the cost's gradient,
// a 0-d or one-element tensor elsewhere.
func scalarOf(v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F32:
		return float64(*s), nil
	case *G.F64:
		return float64(*s), nil
	case tensor.Tensor:
		if s.Shape().TotalSize() != 1 {
			return 0, fmt.Errorf("want a scalar gradient, got shape %v", s.Shape())
		}
		switch d := s.Data().(type) {
		case float32:
			return float64(d), nil
		case float64:
			return d, nil
		case []float32:
			return float64(d[0]), nil
		case []float64:
			return d[0], nil
		}
	}
	return 0, fmt.Errorf("want a float scalar gradient, got %T", v)
}

func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
