package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Conv2DBatchNorm is, for evaluation, Conv2D followed by BatchNorm2D in evaluation mode
// (and a ReLU when cfg.ReLU) as one op: at every run the batch norm's affine map, with
// st's running statistics read then, is folded into the filters and the bias
// (w' = a·w, b' = a·(b - mean) + beta, a = gamma/√(var + eps) per output channel), so the
// normalisation costs no pass over the activations. b may be nil. The op has no gradient:
// build training graphs with the separate ops.
func Conv2DBatchNorm(x, w, b, gamma, beta *G.Node, st *BatchNormState, cfg ConvConfig) (*G.Node, error) {
	if st == nil {
		return nil, fmt.Errorf("ops: conv2d+batchnorm: nil *BatchNormState")
	}
	op, err := newConvOp(x, w, b, cfg)
	if err != nil {
		return nil, err
	}
	c := op.cout
	for _, p := range []struct {
		what string
		n    *G.Node
	}{{"gamma", gamma}, {"beta", beta}} {
		if err := checkF32Node("conv2d+batchnorm "+st.Name, p.what, p.n, 1); err != nil {
			return nil, err
		}
		if p.n.Shape().TotalSize() != c {
			return nil, fmt.Errorf("ops: conv2d+batchnorm %s: %s has shape %v, want (%d)", st.Name, p.what, p.n.Shape(), c)
		}
	}
	if len(st.RunningMean) != c || len(st.RunningVar) != c {
		return nil, fmt.Errorf("ops: conv2d+batchnorm %s: running mean/var have lengths %d/%d, want %d", st.Name, len(st.RunningMean), len(st.RunningVar), c)
	}
	eps := st.Eps
	if eps == 0 {
		eps = 1e-5
	}
	if !(eps > 0) {
		return nil, fmt.Errorf("ops: conv2d+batchnorm %s: eps %v, want > 0", st.Name, eps)
	}
	bop := &convBNOp{convOp: op, st: st, eps: eps}
	children := []*G.Node{x, w}
	if b != nil {
		children = append(children, b)
	}
	y, err := G.ApplyOp(bop, append(children, gamma, beta)...)
	if err != nil {
		return nil, fmt.Errorf("ops: conv2d+batchnorm %s: %w", st.Name, err)
	}
	return y, nil
}

type convBNOp struct {
	*convOp
	st  *BatchNormState
	eps float64
}

var _ G.Op = (*convBNOp)(nil)

func (op *convBNOp) Arity() int { return op.convOp.Arity() + 2 }
func (op *convBNOp) Type() hm.Type {
	t4, t1 := anyTensor(4), anyTensor(1)
	if op.bias {
		return hm.NewFnType(t4, t4, t1, t1, t1, t4)
	}
	return hm.NewFnType(t4, t4, t1, t1, t4)
}
func (op *convBNOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", op.String(), op.st) }
func (op *convBNOp) Hashcode() uint32      { return hashOp(op) }
func (op *convBNOp) String() string {
	return fmt.Sprintf("Conv2DBatchNorm{%s bn=%q eps=%v}", op.convGeom.String(), op.st.Name, op.eps)
}

// DiffWRT: the fused op is for evaluation graphs only.
func (op *convBNOp) DiffWRT(inputs int) []bool { return make([]bool, inputs) }
func (op *convBNOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("ops: %v has no gradient (it is for evaluation; train with Conv2D and BatchNorm2D)", op)
}

func (op *convBNOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindConv, op.start(), inputs)
	name := "conv2d+batchnorm " + op.st.Name
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want %d", name, len(inputs), op.Arity())
	}
	x, err := convInput(name, "x", inputs[0], op.xShape())
	if err != nil {
		return nil, err
	}
	w, err := convInput(name, "w", inputs[1], op.wShape())
	if err != nil {
		return nil, err
	}
	k := 2
	var b []float32
	if op.bias {
		if b, err = convInput(name, "b", inputs[2], tensor.Shape{op.cout}); err != nil {
			return nil, err
		}
		k = 3
	}
	gamma, err := convInput(name, "gamma", inputs[k], tensor.Shape{op.cout})
	if err != nil {
		return nil, err
	}
	beta, err := convInput(name, "beta", inputs[k+1], tensor.Shape{op.cout})
	if err != nil {
		return nil, err
	}
	rm, rv := op.st.RunningMean, op.st.RunningVar
	if len(rm) != op.cout || len(rv) != op.cout {
		return nil, fmt.Errorf("ops: %s: running mean/var have lengths %d/%d, want %d", name, len(rm), len(rv), op.cout)
	}
	kd := op.kdim()
	wf := op.ws.get(len(w))
	bf := op.ws.get(op.cout)
	defer op.ws.put(wf)
	defer op.ws.put(bf)
	for c := 0; c < op.cout; c++ {
		a := float64(gamma[c]) / math.Sqrt(float64(rv[c])+op.eps)
		var bc float64
		if b != nil {
			bc = float64(b[c])
		}
		bf[c] = float32(a*(bc-float64(rm[c])) + float64(beta[c]))
		affine(wf[c*kd:(c+1)*kd], w[c*kd:(c+1)*kd], float32(a), 0, float32(math.Inf(-1)))
	}
	t, y := op.out.get(&op.opHooks)
	op.forward(x, wf, bf, y)
	return t, nil
}
