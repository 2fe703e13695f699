package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops/gemm"
)

// Linear is a fully connected layer: x (N,In) times the transposed weights w (Out,In)
// (PyTorch layout) plus the bias b (Out), which may be nil, giving (N,Out) = x·wᵀ + b.
// Everything is float32. Flatten a 4-D activation first.
//
// Each product is one gemm.Sgemm call (which parallelises internally); the bias is
// fused into the forward product. The gradients with respect to x, w and b are three
// separate ops. Outputs belong to the op and are reused by every run of the graph, as
// for Conv2D.
func Linear(x, w, b *G.Node, cfg LinearConfig) (*G.Node, error) {
	geom, err := newLinearGeom(x, w, b)
	if err != nil {
		return nil, err
	}
	geom.gemm = cfg.Gemm
	op := &linearOp{linearGeom: geom, out: convOutput{shape: tensor.Shape{geom.n, geom.nout}}}
	children := []*G.Node{x, w}
	if b != nil {
		children = append(children, b)
	}
	y, err := G.ApplyOp(op, children...)
	if err != nil {
		return nil, fmt.Errorf("ops: linear: %w", err)
	}
	return y, nil
}

// LinearConfig holds a fully connected layer's options, which do not change what is
// computed beyond float32 rounding.
type LinearConfig struct {
	// Gemm is the matrix-multiplication kernel family the layer and its gradients use;
	// the zero value is the fastest this CPU supports.
	Gemm gemm.Kernel
}

type linearGeom struct {
	n, nin, nout int
	bias         bool
	gemm         gemm.Kernel
}

func newLinearGeom(x, w, b *G.Node) (linearGeom, error) {
	if x == nil || w == nil {
		return linearGeom{}, fmt.Errorf("ops: linear: x and w must not be nil")
	}
	for _, in := range []struct {
		name string
		n    *G.Node
	}{{"x", x}, {"w", w}, {"b", b}} {
		if in.n != nil && in.n.Dtype() != tensor.Float32 {
			return linearGeom{}, fmt.Errorf("ops: linear: %s has dtype %v, want float32", in.name, in.n.Dtype())
		}
	}
	xs, ws := x.Shape(), w.Shape()
	if len(xs) != 2 || xs.TotalSize() == 0 {
		return linearGeom{}, fmt.Errorf("ops: linear: x has shape %v, want 2-D (N,In) with no zero axis (flatten 4-D activations first)", xs)
	}
	if len(ws) != 2 || ws.TotalSize() == 0 {
		return linearGeom{}, fmt.Errorf("ops: linear: w has shape %v, want 2-D (Out,In) with no zero axis", ws)
	}
	if ws[1] != xs[1] {
		return linearGeom{}, fmt.Errorf("ops: linear: w has shape %v, want (%d, %d): x %v has %d features",
			ws, ws[0], xs[1], xs, xs[1])
	}
	if b != nil {
		if bs := b.Shape(); len(bs) != 1 || bs[0] != ws[0] {
			return linearGeom{}, fmt.Errorf("ops: linear: b has shape %v, want (%d) for w %v", bs, ws[0], ws)
		}
	}
	return linearGeom{n: xs[0], nin: xs[1], nout: ws[0], bias: b != nil}, nil
}

func (g *linearGeom) String() string {
	s := fmt.Sprintf("x(%d,%d) w(%d,%d)", g.n, g.nin, g.nout, g.nin)
	if g.bias {
		s += " bias"
	}
	if g.gemm != (gemm.Kernel{}) {
		s += " gemm=" + g.gemm.Name()
	}
	return s
}

func (g *linearGeom) xShape() tensor.Shape { return tensor.Shape{g.n, g.nin} }
func (g *linearGeom) wShape() tensor.Shape { return tensor.Shape{g.nout, g.nin} }
func (g *linearGeom) yShape() tensor.Shape { return tensor.Shape{g.n, g.nout} }

// ---------------------------------------------------------------------------------
// Forward: y = x·wᵀ + b.

type linearOp struct {
	opHooks
	linearGeom
	out convOutput
}

var (
	_ G.Op   = (*linearOp)(nil)
	_ G.SDOp = (*linearOp)(nil)
)

func (op *linearOp) Arity() int {
	if op.bias {
		return 3
	}
	return 2
}

func (op *linearOp) Type() hm.Type {
	t2 := anyTensor(2)
	if op.bias {
		return hm.NewFnType(t2, t2, anyTensor(1), t2)
	}
	return hm.NewFnType(t2, t2, t2)
}

func (op *linearOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.yShape(), nil }
func (op *linearOp) ReturnsPtr() bool                               { return false }
func (op *linearOp) CallsExtern() bool                              { return false }
func (op *linearOp) OverwritesInput() int                           { return -1 }
func (op *linearOp) WriteHash(h hash.Hash)                          { convWriteHash(h, op) }
func (op *linearOp) Hashcode() uint32                               { return hashOp(op) }
func (op *linearOp) String() string                                 { return "Linear{" + op.linearGeom.String() + "}" }
func (op *linearOp) DiffWRT(inputs int) []bool                      { return convAllTrue(inputs) }

func (op *linearOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindLinear, op.start(), inputs)
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: linear: got %d inputs, want %d", len(inputs), op.Arity())
	}
	x, err := convInput("linear", "x", inputs[0], op.xShape())
	if err != nil {
		return nil, err
	}
	w, err := convInput("linear", "w", inputs[1], op.wShape())
	if err != nil {
		return nil, err
	}
	t, y := op.out.get(&op.opHooks)
	var beta float32
	if op.bias {
		b, err := convInput("linear", "b", inputs[2], tensor.Shape{op.nout})
		if err != nil {
			return nil, err
		}
		for n := 0; n < op.n; n++ {
			copy(y[n*op.nout:(n+1)*op.nout], b)
		}
		beta = 1
	}
	g := &op.linearGeom
	g.gemm.Sgemm(false, true, g.n, g.nout, g.nin, 1, x, g.nin, w, g.nin, beta, y, g.nout)
	return t, nil
}

func (op *linearOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: linear: differentiating with %d inputs, want %d", len(inputs), op.Arity())
	}
	g := op.linearGeom
	dx, err := G.ApplyOp(&linearGradXOp{linearGeom: g, convGradBase: convGradBase{"linear grad x"},
		out: convOutput{shape: g.xShape()}}, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("ops: linear: gradient wrt x: %w", err)
	}
	dw, err := G.ApplyOp(&linearGradWOp{linearGeom: g, convGradBase: convGradBase{"linear grad w"},
		out: convOutput{shape: g.wShape()}}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("ops: linear: gradient wrt w: %w", err)
	}
	grads := G.Nodes{dx, dw}
	if op.bias {
		db, err := G.ApplyOp(&linearGradBOp{linearGeom: g, convGradBase: convGradBase{"linear grad b"},
			out: convOutput{shape: tensor.Shape{g.nout}}}, grad)
		if err != nil {
			return nil, fmt.Errorf("ops: linear: gradient wrt b: %w", err)
		}
		grads = append(grads, db)
	}
	return grads, nil
}

// ---------------------------------------------------------------------------------
// Gradients: dx = dy·w, dw = dyᵀ·x, db = column sums of dy.

type linearGradXOp struct {
	opHooks
	linearGeom
	convGradBase
	out convOutput
}

var (
	_ G.Op   = (*linearGradXOp)(nil)
	_ G.SDOp = (*linearGradXOp)(nil)
)

func (op *linearGradXOp) Arity() int { return 2 }
func (op *linearGradXOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(2), anyTensor(2), anyTensor(2))
}
func (op *linearGradXOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.xShape(), nil }
func (op *linearGradXOp) WriteHash(h hash.Hash)                          { convWriteHash(h, op) }
func (op *linearGradXOp) Hashcode() uint32                               { return hashOp(op) }
func (op *linearGradXOp) String() string                                 { return "LinearGradX{" + op.linearGeom.String() + "}" }

func (op *linearGradXOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindLinear, op.start(), inputs)
	w, dy, err := op.inputs2(inputs, "w", op.wShape(), op.yShape())
	if err != nil {
		return nil, err
	}
	t, dx := op.out.get(&op.opHooks)
	g := &op.linearGeom
	g.gemm.Sgemm(false, false, g.n, g.nin, g.nout, 1, dy, g.nout, w, g.nin, 0, dx, g.nin)
	return t, nil
}

type linearGradWOp struct {
	opHooks
	linearGeom
	convGradBase
	out convOutput
}

var (
	_ G.Op   = (*linearGradWOp)(nil)
	_ G.SDOp = (*linearGradWOp)(nil)
)

func (op *linearGradWOp) Arity() int { return 2 }
func (op *linearGradWOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(2), anyTensor(2), anyTensor(2))
}
func (op *linearGradWOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.wShape(), nil }
func (op *linearGradWOp) WriteHash(h hash.Hash)                          { convWriteHash(h, op) }
func (op *linearGradWOp) Hashcode() uint32                               { return hashOp(op) }
func (op *linearGradWOp) String() string                                 { return "LinearGradW{" + op.linearGeom.String() + "}" }

func (op *linearGradWOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindLinear, op.start(), inputs)
	x, dy, err := op.inputs2(inputs, "x", op.xShape(), op.yShape())
	if err != nil {
		return nil, err
	}
	t, dw := op.out.get(&op.opHooks)
	g := &op.linearGeom
	g.gemm.Sgemm(true, false, g.nout, g.nin, g.n, 1, dy, g.nout, x, g.nin, 0, dw, g.nin)
	return t, nil
}

type linearGradBOp struct {
	opHooks
	linearGeom
	convGradBase
	out convOutput
}

var (
	_ G.Op   = (*linearGradBOp)(nil)
	_ G.SDOp = (*linearGradBOp)(nil)
)

func (op *linearGradBOp) Arity() int { return 1 }
func (op *linearGradBOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(2), anyTensor(1))
}
func (op *linearGradBOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.nout}, nil
}
func (op *linearGradBOp) WriteHash(h hash.Hash) { convWriteHash(h, op) }
func (op *linearGradBOp) Hashcode() uint32      { return hashOp(op) }
func (op *linearGradBOp) String() string        { return "LinearGradB{" + op.linearGeom.String() + "}" }

func (op *linearGradBOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindLinear, op.start(), inputs)
	if len(inputs) != 1 {
		return nil, fmt.Errorf("ops: linear grad b: got %d inputs, want 1", len(inputs))
	}
	dy, err := convInput("linear grad b", "output gradient", inputs[0], op.yShape())
	if err != nil {
		return nil, err
	}
	t, db := op.out.get(&op.opHooks)
	g := &op.linearGeom
	copy(db, dy[:g.nout])
	for n := 1; n < g.n; n++ {
		row := dy[n*g.nout : (n+1)*g.nout]
		for o, v := range row {
			db[o] += v
		}
	}
	return t, nil
}
