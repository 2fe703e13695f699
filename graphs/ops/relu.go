package ops

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds ReLU and the small helpers shared by the ops in relu.go, flatten.go,
// upsample.go, concat.go, dropout.go, maxpool.go, maxunpool.go and batchnorm.go.

// ReLU returns max(x, 0) element-wise, for a float32 tensor of any shape. NaN propagates
// (as in PyTorch). The gradient passes dy where the output is positive (or NaN) and is 0
// elsewhere, including at x = 0 (PyTorch's convention).
func ReLU(x *G.Node) (*G.Node, error) {
	if err := checkF32Node("relu", "x", x, -1); err != nil {
		return nil, err
	}
	op := &reluOp{shape: x.Shape(), dims: x.Dims()}
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops: relu: %w", err)
	}
	return y, nil
}

type reluOp struct {
	opHooks
	shape tensor.Shape
	dims  int
	out   ownedBuf
}

func (op *reluOp) Arity() int                                     { return 1 }
func (op *reluOp) Type() hm.Type                                  { return hm.NewFnType(anyTensor(op.dims), anyTensor(op.dims)) }
func (op *reluOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *reluOp) ReturnsPtr() bool                               { return false }
func (op *reluOp) CallsExtern() bool                              { return false }
func (op *reluOp) OverwritesInput() int                           { return -1 }
func (op *reluOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *reluOp) Hashcode() uint32                               { return hashOp(op) }
func (op *reluOp) String() string                                 { return fmt.Sprintf("ReLU%v", op.shape) }

func (op *reluOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindActivation, op.start(), inputs)
	if err := checkArity("relu", inputs, 1); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "relu", "x", op.shape)
	if err != nil {
		return nil, err
	}
	t, y := op.out.get(&op.opHooks, op.shape)
	parallelBlocks(len(x), func(lo, hi int) {
		yy := y[lo:hi]
		for i, v := range x[lo:hi] {
			yy[i] = max(v, 0) // branch-free; NaN propagates, -0 gives +0
		}
	})
	return t, nil
}

func (op *reluOp) DiffWRT(int) []bool { return []bool{true} }

func (op *reluOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return unaryGrad("relu", inputs, &reluDiffOp{shape: op.shape, dims: op.dims}, output, grad)
}

// reluDiffOp computes dx = dy where y > 0 (and where y is NaN), else 0. Inputs: y, dy.
type reluDiffOp struct {
	opHooks
	shape tensor.Shape
	dims  int
	out   ownedBuf
}

func (op *reluDiffOp) Arity() int { return 2 }
func (op *reluDiffOp) Type() hm.Type {
	t := anyTensor(op.dims)
	return hm.NewFnType(t, t, t)
}
func (op *reluDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *reluDiffOp) ReturnsPtr() bool                               { return false }
func (op *reluDiffOp) CallsExtern() bool                              { return false }
func (op *reluDiffOp) OverwritesInput() int                           { return -1 }
func (op *reluDiffOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *reluDiffOp) Hashcode() uint32                               { return hashOp(op) }
func (op *reluDiffOp) String() string                                 { return fmt.Sprintf("ReLUDiff%v", op.shape) }

func (op *reluDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindActivation, op.start(), inputs)
	if err := checkArity("relu gradient", inputs, 2); err != nil {
		return nil, err
	}
	y, err := f32Value(inputs[0], "relu gradient", "y", op.shape)
	if err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[1], "relu gradient", "dy", op.shape)
	if err != nil {
		return nil, err
	}
	t, dx := op.out.get(&op.opHooks, op.shape)
	parallelBlocks(len(y), func(lo, hi int) { reluMask(dx[lo:hi], dy[lo:hi], y[lo:hi]) })
	return t, nil
}

// ---- helpers shared by this package's ops ----

// anyTensor is the Gorgonia type of a tensor with dims dimensions of any dtype; the ops
// themselves check for float32 when the graph is built.
func anyTensor(dims int) G.TensorType { return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')} }

// hashOp is the FNV-1a hash of what op.WriteHash writes.
func hashOp(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// checkF32Node checks that n is a float32 node with dims dimensions (any when dims < 0).
func checkF32Node(op, what string, n *G.Node, dims int) error {
	if n == nil {
		return fmt.Errorf("ops: %s: %s is nil", op, what)
	}
	if n.Dtype() != tensor.Float32 {
		return fmt.Errorf("ops: %s: %s %s has dtype %v, want float32", op, what, n.Name(), n.Dtype())
	}
	if dims >= 0 && n.Dims() != dims {
		return fmt.Errorf("ops: %s: %s %s has shape %v, want %d dimensions", op, what, n.Name(), n.Shape(), dims)
	}
	if chainOf(n) != nil {
		return fmt.Errorf("ops: %s: %s %s is a channels-last chain (ConvConfig.ChannelsLastOut), readable only by the Conv2D it was made for", op, what, n.Name())
	}
	return nil
}

// unaryGrad is the SymDiff of a one-input op: it checks inputs and returns dx, computed
// by diff from args.
func unaryGrad(name string, inputs G.Nodes, diff G.Op, args ...*G.Node) (G.Nodes, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want 1", name, len(inputs))
	}
	dx, err := G.ApplyOp(diff, args...)
	if err != nil {
		return nil, fmt.Errorf("ops: %s: gradient: %w", name, err)
	}
	return G.Nodes{dx}, nil
}

func checkArity(op string, inputs []G.Value, n int) error {
	if len(inputs) != n {
		return fmt.Errorf("ops: %s: got %d inputs, want %d", op, len(inputs), n)
	}
	return nil
}

// f32Value returns the float32 elements of an op input, in row-major order, after checking
// its dtype and shape. Views (slices, lazy transposes) are materialised (a copy).
func f32Value(v G.Value, op, what string, want tensor.Shape) ([]float32, error) {
	t, ok := v.(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("ops: %s: %s is a %T, want a float32 tensor of shape %v", op, what, v, want)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("ops: %s: %s has dtype %v, want float32", op, what, t.Dtype())
	}
	if !t.Shape().Eq(want) || t.Shape().TotalSize() != want.TotalSize() {
		return nil, fmt.Errorf("ops: %s: %s has shape %v, want %v", op, what, t.Shape(), want)
	}
	if d, ok := t.(*tensor.Dense); ok && d.IsMaterializable() {
		t = d.Materialize()
	}
	data, ok := t.Data().([]float32)
	n := want.TotalSize()
	if !ok || len(data) < n {
		return nil, fmt.Errorf("ops: %s: %s: backing data is %T of length %d, want []float32 of length %d", op, what, t.Data(), len(data), n)
	}
	return data[:n], nil
}

// ownedBuf is an op's output tensor: allocated on the op's first run and reused by every
// later run, so a training step allocates nothing of activation size. (A later Gorgonia op
// may reshape the value in place; get restores the shape.)
type ownedBuf struct {
	t    *tensor.Dense
	data []float32
}

func (b *ownedBuf) get(h *opHooks, shape tensor.Shape) (*tensor.Dense, []float32) {
	n := shape.TotalSize()
	if d := h.planned(n, b.data); d != nil {
		if b.t == nil || len(b.data) != n || &b.data[0] != &d[0] || b.t.IsMaterializable() {
			b.data = d
			b.t = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(d))
		}
	}
	if b.t == nil || b.t.IsMaterializable() || len(b.data) != n {
		b.data = make([]float32, n)
		b.t = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(b.data))
		return b.t, b.data
	}
	if !b.t.Shape().Eq(shape) || b.t.Dims() != len(shape) {
		if err := b.t.Reshape(shape...); err != nil {
			b.t = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(b.data))
		}
	}
	return b.t, b.data
}
