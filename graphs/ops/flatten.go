package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Flatten reshapes (N, d1, d2, ...) to (N, d1*d2*...), copying into a buffer the op owns
// (PyTorch's torch.flatten(x, 1): row-major, so NCHW flattens channel-major). A 2-D x is
// returned unchanged. The gradient reshapes dy back.
func Flatten(x *G.Node) (*G.Node, error) {
	if err := checkF32Node("flatten", "x", x, -1); err != nil {
		return nil, err
	}
	if x.Dims() < 2 {
		return nil, fmt.Errorf("ops: flatten: x %s has shape %v, want at least 2 dimensions (N, ...)", x.Name(), x.Shape())
	}
	if x.Dims() == 2 {
		return x, nil
	}
	in := x.Shape()
	op := &flattenOp{from: in, to: tensor.Shape{in[0], in.TotalSize() / in[0]}}
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops: flatten: %w", err)
	}
	return y, nil
}

// flattenOp copies a tensor of shape from into one of shape to (same size). Flatten uses it
// forward (from = x's shape); its gradient is the same op the other way round.
type flattenOp struct {
	opHooks
	from, to tensor.Shape
	out      ownedBuf
}

func (op *flattenOp) Arity() int { return 1 }
func (op *flattenOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(len(op.from)), anyTensor(len(op.to)))
}
func (op *flattenOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.to.Clone(), nil }
func (op *flattenOp) ReturnsPtr() bool                               { return false }
func (op *flattenOp) CallsExtern() bool                              { return false }
func (op *flattenOp) OverwritesInput() int                           { return -1 }
func (op *flattenOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *flattenOp) Hashcode() uint32                               { return hashOp(op) }
func (op *flattenOp) String() string                                 { return fmt.Sprintf("Flatten%v→%v", op.from, op.to) }

func (op *flattenOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindOther, op.start(), inputs)
	if err := checkArity("flatten", inputs, 1); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "flatten", "x", op.from)
	if err != nil {
		return nil, err
	}
	t, y := op.out.get(&op.opHooks, op.to)
	copy(y, x)
	return t, nil
}

func (op *flattenOp) DiffWRT(int) []bool { return []bool{true} }

func (op *flattenOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return unaryGrad("flatten", inputs, &flattenOp{from: op.to, to: op.from}, grad)
}
