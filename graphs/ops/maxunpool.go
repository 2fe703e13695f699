package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MaxUnpool2D is PyTorch's MaxUnpool2d with the indices of an earlier MaxPool2D (SegNet's
// decoder): x has the pooled shape (N, C, OH, OW) recorded in idx, and each x element is
// written at its window's argmax position of a zero (N, C, outH, outW) tensor. outH and
// outW must be the pooled layer's input height and width (the indices are positions in
// that plane); they are explicit so the call site shows the shape. Where overlapping
// windows share a maximum, the later window (row-major) wins, as in PyTorch on the CPU.
// The gradient gathers dy at the argmax positions (0 for an element that a later window
// overwrote).
func MaxUnpool2D(x *G.Node, idx *Argmax, outH, outW int) (*G.Node, error) {
	if err := checkF32Node("maxunpool2d", "x", x, 4); err != nil {
		return nil, err
	}
	if idx == nil {
		return nil, fmt.Errorf("ops: maxunpool2d: nil *Argmax")
	}
	if idx.pool == nil {
		return nil, fmt.Errorf("ops: maxunpool2d: argmax %q has not been passed to MaxPool2D", idx.name)
	}
	if idx.pool.Graph() != x.Graph() {
		return nil, fmt.Errorf("ops: maxunpool2d: argmax %q belongs to another graph (create one per graph)", idx.name)
	}
	if s := x.Shape(); !s.Eq(idx.out) {
		return nil, fmt.Errorf("ops: maxunpool2d: x %s has shape %v, want the pooled shape %v of argmax %q", x.Name(), s, idx.out, idx.name)
	}
	if outH != idx.in[2] || outW != idx.in[3] {
		return nil, fmt.Errorf("ops: maxunpool2d: output size %dx%d, want %dx%d, the input size of the pooling that filled argmax %q", outH, outW, idx.in[2], idx.in[3], idx.name)
	}
	op := &maxUnpoolOp{am: idx}
	// The pooling node is an input only to order this op after the pool's forward pass.
	y, err := G.ApplyOp(op, x, idx.pool)
	if err != nil {
		return nil, fmt.Errorf("ops: maxunpool2d: %w", err)
	}
	return y, nil
}

type maxUnpoolOp struct {
	opHooks
	am  *Argmax
	buf ownedBuf
}

func (op *maxUnpoolOp) Arity() int { return 2 }
func (op *maxUnpoolOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(4), anyTensor(4), anyTensor(4))
}
func (op *maxUnpoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.am.in.Clone(), nil }
func (op *maxUnpoolOp) ReturnsPtr() bool                               { return false }
func (op *maxUnpoolOp) CallsExtern() bool                              { return false }
func (op *maxUnpoolOp) OverwritesInput() int                           { return -1 }
func (op *maxUnpoolOp) WriteHash(h hash.Hash)                          { fmt.Fprintf(h, "%s@%p", op.String(), op.am) }
func (op *maxUnpoolOp) Hashcode() uint32                               { return hashOp(op) }
func (op *maxUnpoolOp) String() string {
	return fmt.Sprintf("MaxUnpool2D{argmax=%q}%v→%v", op.am.name, op.am.out, op.am.in)
}

func (op *maxUnpoolOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("maxunpool2d", inputs, 2); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "maxunpool2d", "x", op.am.out)
	if err != nil {
		return nil, err
	}
	idx := op.am.idx
	if len(idx) != len(x) {
		return nil, fmt.Errorf("ops: maxunpool2d: argmax %q holds %d indices, want %d (its pooling has not run)", op.am.name, len(idx), len(x))
	}
	t, y := op.buf.get(&op.opHooks, op.am.in)
	hw, ohw := op.am.in[2]*op.am.in[3], op.am.out[2]*op.am.out[3]
	parallelPlanes(op.am.in[0]*op.am.in[1], hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			yp := y[p*hw : (p+1)*hw]
			clear(yp)
			ip := idx[p*ohw : (p+1)*ohw]
			for j, v := range x[p*ohw : (p+1)*ohw] {
				yp[ip[j]] = v
			}
		}
	})
	return t, nil
}

func (op *maxUnpoolOp) DiffWRT(int) []bool { return []bool{true, false} }

func (op *maxUnpoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("ops: maxunpool2d: got %d inputs, want 2", len(inputs))
	}
	dx, err := G.ApplyOp(&maxUnpoolDiffOp{am: op.am}, inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("ops: maxunpool2d: gradient: %w", err)
	}
	return G.Nodes{dx, nil}, nil
}

// maxUnpoolDiffOp gathers dy (pool input shape) at the argmax positions into dx (pooled
// shape). Inputs: the pooling node (ordering only), dy.
type maxUnpoolDiffOp struct {
	opHooks
	am  *Argmax
	buf ownedBuf
}

func (op *maxUnpoolDiffOp) Arity() int { return 2 }
func (op *maxUnpoolDiffOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(4), anyTensor(4), anyTensor(4))
}
func (op *maxUnpoolDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.am.out.Clone(), nil
}
func (op *maxUnpoolDiffOp) ReturnsPtr() bool      { return false }
func (op *maxUnpoolDiffOp) CallsExtern() bool     { return false }
func (op *maxUnpoolDiffOp) OverwritesInput() int  { return -1 }
func (op *maxUnpoolDiffOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", op.String(), op.am) }
func (op *maxUnpoolDiffOp) Hashcode() uint32      { return hashOp(op) }
func (op *maxUnpoolDiffOp) String() string {
	return fmt.Sprintf("MaxUnpool2DDiff{argmax=%q}%v→%v", op.am.name, op.am.in, op.am.out)
}

func (op *maxUnpoolDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("maxunpool2d gradient", inputs, 2); err != nil {
		return nil, err
	}
	am := op.am
	dy, err := f32Value(inputs[1], "maxunpool2d gradient", "dy", am.in)
	if err != nil {
		return nil, err
	}
	t, dx := op.buf.get(&op.opHooks, am.out)
	if len(am.idx) != len(dx) {
		return nil, fmt.Errorf("ops: maxunpool2d gradient: argmax %q holds %d indices, want %d (its pooling has not run)", am.name, len(am.idx), len(dx))
	}
	c := &am.cfg
	overlap := c.KH > c.StrideH || c.KW > c.StrideW
	w, oh, ow := am.in[3], am.out[2], am.out[3]
	hw, ohw := am.in[2]*w, oh*ow
	parallelPlanes(am.in[0]*am.in[1], hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dyp, ip, dxp := dy[p*hw:(p+1)*hw], am.idx[p*ohw:(p+1)*ohw], dx[p*ohw:(p+1)*ohw]
			for j, pos := range ip {
				dxp[j] = dyp[pos]
			}
			if !overlap {
				continue
			}
			// The forward pass wrote pooled elements in order, so where a later window
			// has the same argmax, this element's value was overwritten: gradient 0.
			for j, pos := range ip {
				if overwrittenLater(ip, j, int(pos), w, oh, ow, c) {
					dxp[j] = 0
				}
			}
		}
	})
	return t, nil
}

// overwrittenLater reports whether a pooled element after j (row-major) in the same plane
// has the argmax pos, scanning only the windows that contain pos.
func overwrittenLater(ip []int32, j, pos, w, oh, ow int, c *PoolConfig) bool {
	r, q := pos/w, pos%w
	i0, i1 := windowsCovering(r, c.KH, c.StrideH, c.Pad.Top, oh)
	j0, j1 := windowsCovering(q, c.KW, c.StrideW, c.Pad.Left, ow)
	for i := i0; i <= i1; i++ {
		for k := j0; k <= j1; k++ {
			if o := i*ow + k; o > j && int(ip[o]) == pos {
				return true
			}
		}
	}
	return false
}

// windowsCovering returns the range [lo, hi] of output positions o (0 <= o < out) whose
// window o*s-pad ... o*s-pad+k-1 contains input position x.
func windowsCovering(x, k, s, pad, out int) (lo, hi int) {
	// o*s <= x+pad  and  o*s > x+pad-k
	hi = min((x+pad)/s, out-1)
	lo = 0
	if t := x + pad - k + 1; t > 0 {
		lo = (t + s - 1) / s
	}
	return lo, hi
}
