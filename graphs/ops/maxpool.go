package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PoolConfig is a max pooling window with PyTorch nn.MaxPool2d semantics: padding counts as
// -inf, and with CeilMode the output size rounds up but the last window must start inside
// the input or the top/left padding. A zero stride means the kernel size (PyTorch's
// default). Each side's padding must be smaller than the kernel, so every window holds at
// least one input element.
type PoolConfig struct {
	KH, KW           int
	StrideH, StrideW int
	Pad              Padding
	CeilMode         bool
}

func (c PoolConfig) String() string {
	return fmt.Sprintf("k(%d,%d) s(%d,%d) %v ceil=%v", c.KH, c.KW, c.StrideH, c.StrideW, c.Pad, c.CeilMode)
}

// normalize fills in default strides and checks the configuration.
func (c PoolConfig) normalize() (PoolConfig, error) {
	if c.StrideH == 0 {
		c.StrideH = c.KH
	}
	if c.StrideW == 0 {
		c.StrideW = c.KW
	}
	switch {
	case c.KH < 1 || c.KW < 1:
		return c, fmt.Errorf("kernel %dx%d, want at least 1x1", c.KH, c.KW)
	case c.StrideH < 1 || c.StrideW < 1:
		return c, fmt.Errorf("stride %dx%d, want at least 1x1", c.StrideH, c.StrideW)
	case c.Pad.Top < 0 || c.Pad.Bottom < 0 || c.Pad.Left < 0 || c.Pad.Right < 0:
		return c, fmt.Errorf("negative padding %v", c.Pad)
	case c.Pad.Top >= c.KH || c.Pad.Bottom >= c.KH || c.Pad.Left >= c.KW || c.Pad.Right >= c.KW:
		return c, fmt.Errorf("padding %v with kernel %dx%d: each side must be smaller than the kernel", c.Pad, c.KH, c.KW)
	}
	return c, nil
}

// poolOutSize is PyTorch's pooling_output_shape for one axis (dilation 1), or -1 when the
// padded input is smaller than the kernel.
func poolOutSize(in, k, s, padA, padB int, ceil bool) int {
	num := in + padA + padB - k
	if num < 0 {
		return -1
	}
	if !ceil {
		return num/s + 1
	}
	out := (num+s-1)/s + 1
	if (out-1)*s >= in+padA {
		out--
	}
	return out
}

// Argmax holds the positions of the maxima that MaxPool2D's forward pass found, for
// MaxUnpool2D (SegNet's decoder). Create one per pooling layer and graph with NewArgmax and
// pass it to exactly one MaxPool2D; the indices are valid after that pool has run.
type Argmax struct {
	name string
	pool *G.Node // the pooling node that fills idx; set by MaxPool2D
	cfg  PoolConfig
	in   tensor.Shape // pool input (N, C, H, W)
	out  tensor.Shape // pool output (N, C, OH, OW)
	idx  []int32      // per output element, h*W+w of its max within the (n, c) input plane
}

// NewArgmax returns an empty Argmax; name identifies the layer (it is part of the ops'
// hashes and error messages).
func NewArgmax(name string) *Argmax { return &Argmax{name: name} }

// Name returns the layer name given to NewArgmax.
func (a *Argmax) Name() string { return a.name }

// InputShape returns the pooled layer's input shape (N, C, H, W), or nil before MaxPool2D.
func (a *Argmax) InputShape() tensor.Shape { return a.in.Clone() }

// OutputShape returns the pooled shape (N, C, OH, OW), or nil before MaxPool2D.
func (a *Argmax) OutputShape() tensor.Shape { return a.out.Clone() }

// Indices returns, per pooled element in NCHW order, the flat index h*W+w of its maximum
// within its (n, c) input plane (W the input width). It is the Argmax's own storage,
// overwritten by every forward run; do not modify it.
func (a *Argmax) Indices() []int32 { return a.idx }

// MaxPool2D max-pools an NCHW float32 tensor. With a non-nil idx the positions of the
// maxima are recorded in it for MaxUnpool2D. Ties go to the first element of the window
// in row-major order; a NaN in a window makes the output NaN (PyTorch's rule) without
// panicking. The gradient routes dy to the recorded positions (summing where windows
// overlap).
func MaxPool2D(x *G.Node, cfg PoolConfig, idx *Argmax) (*G.Node, error) {
	if err := checkF32Node("maxpool2d", "x", x, 4); err != nil {
		return nil, err
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("ops: maxpool2d: %w", err)
	}
	in := x.Shape()
	oh := poolOutSize(in[2], cfg.KH, cfg.StrideH, cfg.Pad.Top, cfg.Pad.Bottom, cfg.CeilMode)
	ow := poolOutSize(in[3], cfg.KW, cfg.StrideW, cfg.Pad.Left, cfg.Pad.Right, cfg.CeilMode)
	if oh < 1 || ow < 1 {
		return nil, fmt.Errorf("ops: maxpool2d: input %s has shape %v, too small for %v", x.Name(), in, cfg)
	}
	if in[2]*in[3] > math.MaxInt32 {
		return nil, fmt.Errorf("ops: maxpool2d: input plane %dx%d too large for int32 indices", in[2], in[3])
	}
	if idx != nil && idx.pool != nil {
		return nil, fmt.Errorf("ops: maxpool2d: argmax %q is already used by another pooling node (one Argmax per layer and graph)", idx.name)
	}
	am := idx
	if am == nil {
		am = &Argmax{}
	}
	op := &maxPoolOp{cfg: cfg, in: in, out: tensor.Shape{in[0], in[1], oh, ow}, am: am, named: idx != nil}
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops: maxpool2d: %w", err)
	}
	if y.Op() == G.Op(op) {
		am.pool, am.cfg, am.in, am.out = y, cfg, op.in, op.out
	} else if idx != nil {
		// Cannot happen (the hash includes idx's identity), but never hand out indices
		// that no op fills.
		return nil, fmt.Errorf("ops: maxpool2d: argmax %q: node merged with an existing one", idx.name)
	}
	return y, nil
}

type maxPoolOp struct {
	opHooks
	cfg     PoolConfig
	in, out tensor.Shape
	am      *Argmax // the indices; private to the op when named is false
	named   bool    // am came from the caller
	buf     ownedBuf
}

func (op *maxPoolOp) Arity() int                                     { return 1 }
func (op *maxPoolOp) Type() hm.Type                                  { return hm.NewFnType(anyTensor(4), anyTensor(4)) }
func (op *maxPoolOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.out.Clone(), nil }
func (op *maxPoolOp) ReturnsPtr() bool                               { return false }
func (op *maxPoolOp) CallsExtern() bool                              { return false }
func (op *maxPoolOp) OverwritesInput() int                           { return -1 }

// WriteHash covers the window, the input shape and, with a caller's Argmax, its name and
// identity, so that two pools recording into different Argmaxes never merge.
func (op *maxPoolOp) WriteHash(h hash.Hash) {
	fmt.Fprint(h, op.String())
	if op.named {
		fmt.Fprintf(h, "@%p", op.am)
	}
}
func (op *maxPoolOp) Hashcode() uint32 { return hashOp(op) }
func (op *maxPoolOp) String() string {
	if op.named {
		return fmt.Sprintf("MaxPool2D{%v,argmax=%q}%v", op.cfg, op.am.name, op.in)
	}
	return fmt.Sprintf("MaxPool2D{%v}%v", op.cfg, op.in)
}

func (op *maxPoolOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("maxpool2d", inputs, 1); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "maxpool2d", "x", op.in)
	if err != nil {
		return nil, err
	}
	t, y := op.buf.get(&op.opHooks, op.out)
	if len(op.am.idx) != len(y) {
		op.am.idx = make([]int32, len(y))
	}
	idx := op.am.idx
	h, w, oh, ow := op.in[2], op.in[3], op.out[2], op.out[3]
	hw, ohw := h*w, oh*ow
	parallelPlanes(op.in[0]*op.in[1], hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			maxPoolPlane(y[p*ohw:(p+1)*ohw], idx[p*ohw:(p+1)*ohw], x[p*hw:(p+1)*hw], h, w, oh, ow, &op.cfg)
		}
	})
	return t, nil
}

// maxPoolPlane pools one (h, w) plane x into y (oh, ow), recording argmaxes in idx.
func maxPoolPlane(y []float32, idx []int32, x []float32, h, w, oh, ow int, c *PoolConfig) {
	if c.KH == 2 && c.KW == 2 && c.StrideH == 2 && c.StrideW == 2 && c.Pad == (Padding{}) && 2*oh <= h && 2*ow <= w {
		maxPool2x2Plane(y, idx, x, w, oh, ow)
		return
	}
	negInf := float32(math.Inf(-1))
	for i := range oh {
		h0 := i*c.StrideH - c.Pad.Top
		h1 := min(h0+c.KH, h)
		h0 = max(h0, 0)
		for j := range ow {
			w0 := j*c.StrideW - c.Pad.Left
			w1 := min(w0+c.KW, w)
			w0 = max(w0, 0)
			// Branch-free scan (the index update compiles to a conditional move and max
			// propagates NaN); a NaN result is redone with the exact rule.
			m, mi := negInf, h0*w+w0
			for r := h0; r < h1; r++ {
				base := r*w + w0
				for q, v := range x[base : r*w+w1] {
					if v > m {
						mi = base + q
					}
					m = max(m, v)
				}
			}
			if m != m {
				m, mi = maxPoolNaN(x, h0, h1, w0, w1, w)
			}
			y[i*ow+j] = m
			idx[i*ow+j] = int32(mi)
		}
	}
}

// maxPoolNaN applies PyTorch's rule to one window: v > max or v is NaN replaces the
// maximum, so the last NaN wins.
func maxPoolNaN(x []float32, h0, h1, w0, w1, w int) (float32, int) {
	m, mi := float32(math.Inf(-1)), h0*w+w0
	for r := h0; r < h1; r++ {
		base := r*w + w0
		for q, v := range x[base : r*w+w1] {
			if v > m || v != v {
				m, mi = v, base+q
			}
		}
	}
	return m, mi
}

// maxPool2x2Plane is maxPoolPlane for 2x2 windows, stride 2, no padding (VGG's pools).
func maxPool2x2Plane(y []float32, idx []int32, x []float32, w, oh, ow int) {
	for i := range oh {
		r0 := x[2*i*w : 2*i*w+2*ow]
		r1 := x[(2*i+1)*w : (2*i+1)*w+2*ow]
		yr, ir := y[i*ow:(i+1)*ow], idx[i*ow:(i+1)*ow]
		base := 2 * i * w
		j0 := 0
		if haveZ && ow >= 16 {
			// 16 outputs at a time; it stops at windows holding a NaN, left to the loop.
			j0 = maxPool2x2RowZ(&yr[0], &ir[0], &r0[0], &r1[0], ow&^15, int32(base), int32(w))
		}
		for j := j0; j < ow; j++ {
			// Same rule as the general loop (first maximum wins), branch-free.
			a, b, c, d := r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1]
			m, k := a, 0
			if b > m {
				k = 1
			}
			m = max(m, b)
			if c > m {
				k = w
			}
			m = max(m, c)
			if d > m {
				k = w + 1
			}
			m = max(m, d)
			if m != m {
				m, k = maxPoolNaN(x, 2*i, 2*i+2, 2*j, 2*j+2, w)
				k -= base + 2*j
			}
			yr[j], ir[j] = m, int32(base+2*j+k)
		}
	}
}

func (op *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }

func (op *maxPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	// output is an input of the gradient op only to order it after the forward pass,
	// whose indices it reads.
	return unaryGrad("maxpool2d", inputs, &maxPoolDiffOp{fwd: op}, output, grad)
}

// maxPoolDiffOp scatters dy (pooled shape) into dx (input shape) at the forward pass's
// argmax positions, summing where windows share a maximum. Inputs: y (ordering only), dy.
type maxPoolDiffOp struct {
	opHooks
	fwd *maxPoolOp
	buf ownedBuf
}

func (op *maxPoolDiffOp) Arity() int { return 2 }
func (op *maxPoolDiffOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(4), anyTensor(4), anyTensor(4))
}
func (op *maxPoolDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.fwd.in.Clone(), nil
}
func (op *maxPoolDiffOp) ReturnsPtr() bool     { return false }
func (op *maxPoolDiffOp) CallsExtern() bool    { return false }
func (op *maxPoolDiffOp) OverwritesInput() int { return -1 }
func (op *maxPoolDiffOp) WriteHash(h hash.Hash) {
	fmt.Fprint(h, "Diff")
	op.fwd.WriteHash(h)
}
func (op *maxPoolDiffOp) Hashcode() uint32 { return hashOp(op) }
func (op *maxPoolDiffOp) String() string   { return "Diff" + op.fwd.String() }

func (op *maxPoolDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("maxpool2d gradient", inputs, 2); err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[1], "maxpool2d gradient", "dy", op.fwd.out)
	if err != nil {
		return nil, err
	}
	idx := op.fwd.am.idx
	if len(idx) != len(dy) {
		return nil, fmt.Errorf("ops: maxpool2d gradient: %d argmax indices for dy of shape %v (forward pass has not run)", len(idx), op.fwd.out)
	}
	t, dx := op.buf.get(&op.opHooks, op.fwd.in)
	hw, ohw := op.fwd.in[2]*op.fwd.in[3], op.fwd.out[2]*op.fwd.out[3]
	parallelPlanes(op.fwd.in[0]*op.fwd.in[1], hw, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dxp := dx[p*hw : (p+1)*hw]
			clear(dxp)
			for j, g := range dy[p*ohw : (p+1)*ohw] {
				dxp[idx[p*ohw+j]] += g
			}
		}
	})
	return t, nil
}
