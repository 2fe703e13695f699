package ops

import (
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/internal/parallel"
)

// ConvConfig holds a convolution's strides and explicit zero padding (use SamePadding
// for TensorFlow/Keras 'same' and Padding{} for 'valid'; dilation is always 1) and
// options that do not change what is computed beyond float32 rounding.
type ConvConfig struct {
	StrideH, StrideW int
	Pad              Padding
	// ReLU fuses a ReLU into the layer: the output is max(conv(x, w) + b, 0), and the
	// gradients pass the output gradient only where the output is positive (as ReLU's
	// do). It saves the separate ReLU's output buffer and a pass over the activations.
	ReLU bool
	// Algo chooses the algorithm; the zero value (ConvAuto) decides by shape.
	Algo ConvAlgo
	// Workspace, when set, lends the layer its scratch memory; give every layer of a
	// graph the same one, so that the graph holds the scratch of one layer rather than
	// of all. nil: the layer keeps its own.
	Workspace *Workspace
	// Gemm is the matrix-multiplication kernel family the layer and its gradients
	// use; the zero value is the fastest this CPU supports.
	Gemm gemm.Kernel
	// NoInputGrad declares that x needs no gradient (it is the model's input, not
	// computed from parameters): differentiation builds no gradient op for x, which
	// saves a backward convolution per step in a network's first layer. Asking for the
	// gradient with respect to x (G.Grad(cost, x)) is then an error.
	NoInputGrad bool
	// ChannelsLastOut makes the output a channels-last chain: the activation (N, C, H, W)
	// stored as (N, rows, cols, cp) in chainLayout, zero-padded, for the one Conv2D that
	// reads it (a 3x3 same-size Winograd convolution, as this one must be). The producer
	// writes its tiles straight there and the reader transforms its tiles straight from
	// there, with no gather or scatter between the layouts; the reader's input gradient
	// comes back in the same layout, already masked by this layer's fused ReLU, for this
	// layer's gradient ops to read as it is. No other op may read the output (they
	// refuse it). The values are those of the NCHW layers to the bit.
	ChannelsLastOut bool
}

// ConvAlgo is how Conv2D computes a convolution.
type ConvAlgo int

const (
	// ConvAuto uses Winograd F(4x4,3x3) for 3x3 stride-1 convolutions with at least
	// wgMinChannels input and output channels, and im2col + GEMM otherwise.
	ConvAuto ConvAlgo = iota
	// ConvIm2col always uses im2col tiles and GEMM (exact float32 dot products).
	ConvIm2col
	// ConvWinograd requires Winograd F(4x4,3x3) (3x3 kernels, stride 1).
	ConvWinograd
)

// wgMinChannels is the fewest input and output channels for which ConvAuto picks
// Winograd: with fewer, the transforms (done on 16-channel vectors) cost more than the
// multiplications they save.
const wgMinChannels = 8

func (a ConvAlgo) String() string {
	switch a {
	case ConvAuto:
		return "auto"
	case ConvIm2col:
		return "im2col"
	case ConvWinograd:
		return "winograd"
	}
	return fmt.Sprintf("ConvAlgo(%d)", int(a))
}

// ConvOutSize returns the output length of a convolution along one axis,
// (in+padBefore+padAfter-k)/stride + 1, or 0 when the kernel does not fit the padded
// input or the stride is not positive.
func ConvOutSize(in, k, stride, padBefore, padAfter int) int {
	span := in + padBefore + padAfter - k
	if stride <= 0 || k <= 0 || span < 0 {
		return 0
	}
	return span/stride + 1
}

// Conv2D convolves x (N,Cin,H,W) with the filters w (Cout,Cin,kH,kW) (PyTorch layout)
// and adds the bias b (Cout), which may be nil. The result is (N,Cout,Ho,Wo) with
// Ho = (H+Top+Bottom-kH)/StrideH + 1 and likewise Wo. Everything is float32.
//
// 3x3 stride-1 convolutions with at least 8 input and output channels use Winograd
// F(4x4,3x3) (winograd.go; cfg.Algo overrides the choice). Others compute, per image,
// W (Cout × Cin·kH·kW) · col (Cin·kH·kW × Ho·Wo) with gemm.Sgemm, building col in tiles
// of output positions (1x1 stride-1 unpadded convolutions multiply x directly). Either
// way the bias (and, with cfg.ReLU, the ReLU) is fused into the output. The gradients
// with respect to x, w and b are three separate ops. Outputs and scratch
// belong to the op and are reused by every run of the graph: a value read after one run
// is overwritten by the next (copy it to keep it), and a graph must not be run by two
// machines at once.
func Conv2D(x, w, b *G.Node, cfg ConvConfig) (*G.Node, error) {
	op, err := newConvOp(x, w, b, cfg)
	if err != nil {
		return nil, err
	}
	children := []*G.Node{x, w}
	if b != nil {
		children = append(children, b)
	}
	y, err := G.ApplyOp(op, children...)
	if err != nil {
		return nil, fmt.Errorf("ops: conv2d: %w", err)
	}
	return y, nil
}

func newConvOp(x, w, b *G.Node, cfg ConvConfig) (*convOp, error) {
	geom, err := newConvGeom(x, w, b, cfg)
	if err != nil {
		return nil, err
	}
	return newConvOpGeom(geom, cfg), nil
}

// newConvOpGeom returns the op computing geom.
func newConvOpGeom(geom convGeom, cfg ConvConfig) *convOp {
	op := &convOp{convGeom: geom, out: convOutput{shape: geom.outValShape()}, ws: cfg.Workspace, noDX: cfg.NoInputGrad}
	if op.ws == nil {
		op.ws = NewWorkspace()
	}
	if geom.wino {
		c := newWgConv(geom.n, geom.cin, geom.h, geom.w, geom.cout, geom.ho, geom.wo, geom.pad.Top, geom.pad.Left)
		c.gemm = geom.gemm
		op.wino = &c
		if !cfg.NoInputGrad { // with one gradient op, nothing to share
			// The data gradients and the filter gradient, and with a fused ReLU (whose
			// mask the gather applies) the bias gradient.
			users := geom.nx() + 1
			if geom.relu && geom.bias {
				users++
			}
			op.dys = &dyShare{users: users}
		}
		if geom.chOut {
			op.dys = &dyShare{chained: true}
		}
	} else if !geom.direct() {
		op.cols = &convScratch{size: geom.kdim() * geom.tile(), ws: op.ws}
	}
	return op
}

// convGeom is everything that defines one convolution; it is fixed when the graph is
// built and written into every hash.
type convGeom struct {
	n, cin, h, w int // input
	cout, kh, kw int // filters
	sh, sw       int // strides
	pad          Padding
	ho, wo       int // output
	bias         bool
	relu         bool // fused ReLU
	wino         bool // Winograd F(4x4,3x3) rather than im2col
	gemm         gemm.Kernel
	// parts, when not empty, are the inputs whose channel concatenation is x (see
	// Conv2DConcat); the op then takes them in place of x.
	parts []convPart
	// Channels-last chains (ConvConfig.ChannelsLastOut): the output is in chainLayout
	// (chOut); x is (chIn), made by a layer with a fused ReLU when inMask (the gradient
	// with respect to x is then masked where x is 0).
	chOut, chIn, inMask bool
}

// convPart is one input of a Conv2DConcat: c channels, upsampled x2 when up.
type convPart struct {
	c  int
	up bool
}

func newConvGeom(x, w, b *G.Node, cfg ConvConfig) (convGeom, error) {
	if x == nil {
		return convGeom{}, fmt.Errorf("ops: conv2d: x and w must not be nil")
	}
	if x.Dtype() != tensor.Float32 {
		return convGeom{}, fmt.Errorf("ops: conv2d: x has dtype %v, want float32", x.Dtype())
	}
	xs := x.Shape()
	p := chainOf(x)
	if p != nil {
		xs = p.outShape() // x holds it in a chain layout
	}
	g, err := newConvGeomShape(xs, w, b, cfg)
	if err != nil {
		return g, err
	}
	if p != nil {
		g.chIn, g.inMask = true, p.relu
		if err := g.checkChain("input"); err != nil {
			return g, err
		}
	}
	return g, nil
}

// chainOf returns the convolution that made x when x is a channels-last chain
// (ConvConfig.ChannelsLastOut), else nil.
func chainOf(x *G.Node) *convOp {
	if op, ok := x.Op().(*convOp); ok && op.chOut {
		return op
	}
	return nil
}

// checkChain reports why g cannot take part in a channels-last chain (its input or its
// output, what): only 3x3 same-size Winograd convolutions read and write chain layouts,
// and only those of one input read them (a Conv2DConcat can write one).
func (g *convGeom) checkChain(what string) error {
	if !g.wino || g.pad != Symmetric(1) || g.ho != g.h || g.wo != g.w || what == "input" && len(g.parts) > 0 {
		return fmt.Errorf("ops: conv2d %v: a channels-last chain %s needs a 3x3 same-size Winograd convolution (stride 1, padding 1) of one input", g, what)
	}
	return nil
}

// ChainableConv reports whether a convolution of x (N, C, H, W) with cout k×k filters,
// stride and padding p, configured by cfg, runs as one that can write or read a
// channels-last chain (ConvConfig.ChannelsLastOut).
func ChainableConv(xShape []int, cout, k, stride int, p Padding, cfg ConvConfig) bool {
	if len(xShape) != 4 || k != 3 || stride != 1 || p != Symmetric(1) {
		return false
	}
	g := convGeom{n: xShape[0], cin: xShape[1], h: xShape[2], w: xShape[3], cout: cout, kh: k, kw: k, sh: 1, sw: 1, pad: p,
		ho: xShape[2], wo: xShape[3]}
	var err error
	if g.wino, err = g.winograd(cfg.Algo); err != nil {
		return false
	}
	return g.checkChain("output") == nil
}

// winograd reports whether g runs as Winograd under algo.
func (g *convGeom) winograd(algo ConvAlgo) (bool, error) {
	ok := g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1
	switch algo {
	case ConvAuto:
		return ok && g.cin >= wgMinChannels && g.cout >= wgMinChannels, nil
	case ConvIm2col:
		return false, nil
	case ConvWinograd:
		if !ok {
			return false, fmt.Errorf("ops: conv2d: Winograd needs a 3x3 kernel with stride 1, got w (%d,%d,%d,%d) with stride (%d,%d)",
				g.cout, g.cin, g.kh, g.kw, g.sh, g.sw)
		}
		return true, nil
	}
	return false, fmt.Errorf("ops: conv2d: unknown algorithm %v", algo)
}

// newConvGeomShape is newConvGeom for an input of shape xs.
func newConvGeomShape(xs tensor.Shape, w, b *G.Node, cfg ConvConfig) (convGeom, error) {
	if w == nil {
		return convGeom{}, fmt.Errorf("ops: conv2d: x and w must not be nil")
	}
	for _, in := range []struct {
		name string
		n    *G.Node
	}{{"w", w}, {"b", b}} {
		if in.n != nil && in.n.Dtype() != tensor.Float32 {
			return convGeom{}, fmt.Errorf("ops: conv2d: %s has dtype %v, want float32", in.name, in.n.Dtype())
		}
	}
	ws := w.Shape()
	if len(xs) != 4 || xs.TotalSize() == 0 {
		return convGeom{}, fmt.Errorf("ops: conv2d: x has shape %v, want 4-D (N,Cin,H,W) with no zero axis", xs)
	}
	if len(ws) != 4 || ws.TotalSize() == 0 {
		return convGeom{}, fmt.Errorf("ops: conv2d: w has shape %v, want 4-D (Cout,Cin,kH,kW) with no zero axis", ws)
	}
	if ws[1] != xs[1] {
		return convGeom{}, fmt.Errorf("ops: conv2d: w has shape %v, want (%d, %d, %d, %d): x %v has %d input channels",
			ws, ws[0], xs[1], ws[2], ws[3], xs, xs[1])
	}
	if b != nil {
		if bs := b.Shape(); len(bs) != 1 || bs[0] != ws[0] {
			return convGeom{}, fmt.Errorf("ops: conv2d: b has shape %v, want (%d) for w %v", bs, ws[0], ws)
		}
	}
	if cfg.StrideH < 1 || cfg.StrideW < 1 {
		return convGeom{}, fmt.Errorf("ops: conv2d: stride (%d,%d), want both ≥ 1", cfg.StrideH, cfg.StrideW)
	}
	p := cfg.Pad
	if p.Top < 0 || p.Bottom < 0 || p.Left < 0 || p.Right < 0 {
		return convGeom{}, fmt.Errorf("ops: conv2d: negative padding %v", p)
	}
	if xs[2]+p.Top+p.Bottom < ws[2] || xs[3]+p.Left+p.Right < ws[3] {
		return convGeom{}, fmt.Errorf("ops: conv2d: kernel %dx%d of w %v is larger than x %v padded by %v",
			ws[2], ws[3], ws, xs, p)
	}
	g := convGeom{
		n: xs[0], cin: xs[1], h: xs[2], w: xs[3],
		cout: ws[0], kh: ws[2], kw: ws[3],
		sh: cfg.StrideH, sw: cfg.StrideW, pad: p,
		ho:    ConvOutSize(xs[2], ws[2], cfg.StrideH, p.Top, p.Bottom),
		wo:    ConvOutSize(xs[3], ws[3], cfg.StrideW, p.Left, p.Right),
		bias:  b != nil,
		relu:  cfg.ReLU,
		gemm:  cfg.Gemm,
		chOut: cfg.ChannelsLastOut,
	}
	var err error
	if g.wino, err = g.winograd(cfg.Algo); err != nil {
		return convGeom{}, err
	}
	if g.chOut {
		if err := g.checkChain("output"); err != nil {
			return g, err
		}
	}
	return g, nil
}

func (g *convGeom) String() string {
	s := fmt.Sprintf("x(%d,%d,%d,%d) w(%d,%d,%d,%d) stride(%d,%d) %v",
		g.n, g.cin, g.h, g.w, g.cout, g.cin, g.kh, g.kw, g.sh, g.sw, g.pad)
	if g.bias {
		s += " bias"
	}
	if g.relu {
		s += " relu"
	}
	if g.wino {
		s += " winograd"
	}
	if g.gemm != (gemm.Kernel{}) {
		s += " gemm=" + g.gemm.Name()
	}
	if g.chIn {
		s += " chain-in"
		if g.inMask {
			s += "(relu)"
		}
	}
	if g.chOut {
		s += " chain-out"
	}
	if len(g.parts) > 0 {
		s += " parts["
		for i, p := range g.parts {
			if i > 0 {
				s += " "
			}
			s += fmt.Sprint(p.c)
			if p.up {
				s += "↑2"
			}
		}
		s += "]"
	}
	return s
}

// nx is the number of input tensors x arrives in: its parts, or 1.
func (g *convGeom) nx() int { return max(len(g.parts), 1) }

// partShape returns the shape of input part i (x's when there are no parts) and the
// offset of its channels in x.
func (g *convGeom) partShape(i int) (tensor.Shape, int) {
	if len(g.parts) == 0 {
		return g.xShape(), 0
	}
	off := 0
	for _, p := range g.parts[:i] {
		off += p.c
	}
	p := g.parts[i]
	if p.up {
		return tensor.Shape{g.n, p.c, g.h / 2, g.w / 2}, off
	}
	return tensor.Shape{g.n, p.c, g.h, g.w}, off
}

// source checks the values of x (its parts) and returns them as a wgSrc; op names the
// op in errors.
func (g *convGeom) source(op string, inputs []G.Value) (wgSrc, error) {
	if g.chIn {
		d, err := convInput(op, "x", inputs[0], g.xValShape())
		if err != nil {
			return nil, err
		}
		return wgSrc{{data: d, c: g.cin}}, nil
	}
	src := make(wgSrc, g.nx())
	for i := range src {
		shape, _ := g.partShape(i)
		d, err := convInput(op, "x", inputs[i], shape)
		if err != nil {
			if len(g.parts) > 0 {
				return nil, fmt.Errorf("%w (input part %d)", err, i)
			}
			return nil, err
		}
		src[i] = wgPart{data: d, c: shape[1], up: len(g.parts) > 0 && g.parts[i].up}
	}
	return src, nil
}

func (g *convGeom) xShape() tensor.Shape { return tensor.Shape{g.n, g.cin, g.h, g.w} }

// xValShape and outValShape are the shapes of x's and the output's values: the
// activation's, or its chain layout's (N, rows, cols, cp).
func (g *convGeom) xValShape() tensor.Shape {
	if g.chIn {
		return chainShape(g.n, g.cin, g.h, g.w)
	}
	return g.xShape()
}

func (g *convGeom) outValShape() tensor.Shape {
	if g.chOut {
		return chainShape(g.n, g.cout, g.ho, g.wo)
	}
	return g.outShape()
}

func chainShape(n, c, h, w int) tensor.Shape {
	a := chainLayout(c, h, w)
	return tensor.Shape{n, a.rows, a.cols, a.cp}
}

// xChain is x's chain layout over data (chIn).
func (g *convGeom) xChain(data []float32) *nhwc {
	a := chainLayout(g.cin, g.h, g.w)
	a.data = data
	return &a
}

// outDst is where the layer's output goes: y, or y as a chain layout (chOut).
func (g *convGeom) outDst(y []float32) wgDst {
	if g.chOut {
		a := chainLayout(g.cout, g.ho, g.wo)
		a.data = y
		return wgDst{a: &a}
	}
	return wgDst{y: y}
}
func (g *convGeom) wShape() tensor.Shape   { return tensor.Shape{g.cout, g.cin, g.kh, g.kw} }
func (g *convGeom) outShape() tensor.Shape { return tensor.Shape{g.n, g.cout, g.ho, g.wo} }
func (g *convGeom) kdim() int              { return g.cin * g.kh * g.kw }
func (g *convGeom) hw() int                { return g.ho * g.wo }
func (g *convGeom) flops() float64 {
	return 2 * float64(g.n) * float64(g.cout) * float64(g.hw()) * float64(g.kdim())
}

// direct reports whether col would equal x itself (1x1 kernel, stride 1, no padding).
func (g *convGeom) direct() bool {
	return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pad == Padding{}
}

// convTileFloats bounds one im2col tile (K × T floats): small enough to stay in L2 and
// to keep per-op scratch small whatever the image size, large enough for gemm to run
// at speed. convMinTile is the narrowest tile used when K is large.
const (
	convTileFloats = 1 << 20
	convMinTile    = 64
)

// tile returns T, the number of output positions per im2col tile; the Ho·Wo positions
// of an image are split into ceil(Ho·Wo/T) near-equal tiles.
func (g *convGeom) tile() int {
	hw := g.hw()
	t := max(convTileFloats/g.kdim(), convMinTile)
	if t >= hw {
		return hw
	}
	nt := (hw + t - 1) / t
	return (hw + nt - 1) / nt
}

// convWriteHash writes an op's String, which names its kind and every parameter, into
// h. It and the other conv* helpers below are shared with the linear ops.
func convWriteHash(h hash.Hash, s fmt.Stringer) { _, _ = io.WriteString(h, s.String()) }

// convOutput is an op's output tensor: allocated on the first run and returned by
// every later run. If a downstream op has reshaped or transposed the tensor in place
// (as Gorgonia's Reshape.UnsafeDo would), a fresh header over the same data replaces it.
type convOutput struct {
	shape tensor.Shape
	data  []float32
	t     *tensor.Dense
}

func (o *convOutput) get(h *opHooks) (*tensor.Dense, []float32) {
	if d := h.planned(o.shape.TotalSize(), o.data); d != nil && (o.data == nil || &d[0] != &o.data[0]) {
		o.data, o.t = d, nil
	}
	if o.data == nil {
		o.data = make([]float32, o.shape.TotalSize())
	}
	if o.t == nil || !o.intact() {
		o.t = tensor.New(tensor.WithShape(o.shape.Clone()...), tensor.WithBacking(o.data))
	}
	return o.t, o.data
}

func (o *convOutput) intact() bool {
	t := o.t
	if t.Dtype() != tensor.Float32 || t.IsMaterializable() || !convShapeIs(t.Shape(), o.shape) {
		return false
	}
	d := t.Float32s()
	return len(d) == len(o.data) && &d[0] == &o.data[0]
}

// convShapeIs is strict shape equality (tensor.Shape.Eq equates (n) with (n,1)).
func convShapeIs(got, want tensor.Shape) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// convInput returns the float32 data of an op input, checking its type and shape.
// op and name only label the error.
func convInput(op, name string, v G.Value, want tensor.Shape) ([]float32, error) {
	t, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("ops: %s: %s is a %T, want *tensor.Dense", op, name, v)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("ops: %s: %s has dtype %v, want float32", op, name, t.Dtype())
	}
	if !convShapeIs(t.Shape(), want) {
		return nil, fmt.Errorf("ops: %s: %s has shape %v, want %v", op, name, t.Shape(), want)
	}
	if t.IsMaterializable() {
		t = t.Materialize().(*tensor.Dense)
	}
	return t.Float32s(), nil
}

// convScratch is a free list of equally sized float32 buffers, one per goroutine in
// flight; buffers are kept for the op's lifetime so runs after the first allocate none.
type convScratch struct {
	mu   sync.Mutex
	size int
	free [][]float32
	ws   *Workspace // when set, buffers come from (and go back to) it
}

func (s *convScratch) get() []float32 {
	if s.ws != nil {
		return s.ws.get(s.size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := len(s.free); k > 0 {
		b := s.free[k-1]
		s.free = s.free[:k-1]
		return b
	}
	return make([]float32, s.size)
}

func (s *convScratch) put(b []float32) {
	if s.ws != nil {
		s.ws.put(b)
		return
	}
	s.mu.Lock()
	s.free = append(s.free, b)
	s.mu.Unlock()
}

// ---------------------------------------------------------------------------------
// Forward.

type convOp struct {
	opHooks
	convGeom
	cols *convScratch // im2col tiles; shared with the layer's gradient ops (nil when direct)
	wino *wgConv      // the Winograd engine (nil: im2col)
	ws   *Workspace   // scratch, shared with the layer's gradient ops
	dys  *dyShare     // channels-last dY, shared by the Winograd gradient ops
	noDX bool         // ConvConfig.NoInputGrad
	out  convOutput
}

var (
	_ G.Op   = (*convOp)(nil)
	_ G.SDOp = (*convOp)(nil)
)

func (op *convOp) Arity() int {
	if op.bias {
		return op.nx() + 2
	}
	return op.nx() + 1
}

func (op *convOp) Type() hm.Type {
	var b hm.Type
	if op.bias {
		b = anyTensor(1)
	}
	return convTypes(op.nx()+1, b, anyTensor(4))
}

func (op *convOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.outValShape(), nil }
func (op *convOp) ReturnsPtr() bool                               { return false }
func (op *convOp) CallsExtern() bool                              { return false }
func (op *convOp) OverwritesInput() int                           { return -1 }
func (op *convOp) WriteHash(h hash.Hash)                          { convWriteHash(h, op) }
func (op *convOp) Hashcode() uint32                               { return hashOp(op) }
func (op *convOp) String() string {
	if op.noDX {
		return "Conv2D{" + op.convGeom.String() + " nodx}"
	}
	return "Conv2D{" + op.convGeom.String() + "}"
}

func (op *convOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindConv, op.start(), inputs)
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: conv2d: got %d inputs, want %d", len(inputs), op.Arity())
	}
	x, err := op.source("conv2d", inputs)
	if err != nil {
		return nil, err
	}
	nx := op.nx()
	w, err := convInput("conv2d", "w", inputs[nx], op.wShape())
	if err != nil {
		return nil, err
	}
	var b []float32
	if op.bias {
		if b, err = convInput("conv2d", "b", inputs[nx+1], tensor.Shape{op.cout}); err != nil {
			return nil, err
		}
	}
	t, y := op.out.get(&op.opHooks)
	if len(op.parts) > 0 || op.chIn || op.chOut {
		op.forwardWino(x, w, b, y)
	} else {
		op.forward(x[0].data, w, b, y)
	}
	return t, nil
}

// floor is the fused ReLU's lower bound, or -Inf without one.
func (g *convGeom) floor() float32 {
	if g.relu {
		return 0
	}
	return float32(math.Inf(-1))
}

// forwardWino is forward by Winograd, from the parts x (x[0] a chain layout with chIn).
func (op *convOp) forwardWino(x wgSrc, w, b, y []float32) {
	u := op.wino.forwardWeights(op.ws, w)
	var xa *nhwc
	if op.chIn {
		xa = op.xChain(x[0].data)
	}
	op.wino.forwardTo(op.ws, x, xa, u, b, op.floor(), op.outDst(y))
	op.ws.put(u)
}

// forward computes y = conv(x, w) + b. Work items are (image, tile of output
// positions) pairs, spread over goroutines; each writes its own columns of y.
func (op *convOp) forward(x, w, b, y []float32) {
	g := &op.convGeom
	floor := g.floor()
	if op.wino != nil {
		op.forwardWino(wgSrc{{data: x, c: g.cin}}, w, b, y)
		return
	}
	hw, tl, k := g.hw(), g.tile(), g.kdim()
	nt := (hw + tl - 1) / tl
	xs, ys := g.cin*g.h*g.w, g.cout*hw
	parallelFor(g.n*nt, func(lo, hi int) {
		var col []float32
		if !g.direct() {
			col = op.cols.get()
			defer op.cols.put(col)
		}
		for it := lo; it < hi; it++ {
			n, p0 := it/nt, (it%nt)*tl
			p1 := min(p0+tl, hw)
			xn, yn := x[n*xs:(n+1)*xs], y[n*ys:(n+1)*ys]
			if g.direct() {
				g.gemm.Sgemm(false, false, g.cout, p1-p0, g.cin, 1, w, g.cin, xn[p0:], hw, 0, yn[p0:], hw)
			} else {
				g.im2col(xn, p0, p1, col)
				g.gemm.Sgemm(false, false, g.cout, p1-p0, k, 1, w, k, col, p1-p0, 0, yn[p0:], hw)
			}
			// The epilogue, one vectorised pass over the tile while it is in cache: the
			// bias, then the fused ReLU.
			if b != nil || g.relu {
				for co := 0; co < g.cout; co++ {
					var bv float32
					if b != nil {
						bv = b[co]
					}
					row := yn[co*hw+p0 : co*hw+p1]
					affine(row, row, 1, bv, floor)
				}
			}
		}
	})
}

func (op *convOp) DiffWRT(inputs int) []bool {
	d := convAllTrue(inputs)
	if op.noDX && inputs > 0 {
		d[0] = false
	}
	return d
}

func convAllTrue(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: conv2d: differentiating with %d inputs, want %d", len(inputs), op.Arity())
	}
	g := op.convGeom
	// The fused ReLU's gradient is dy where the output is positive (or NaN), else 0. The
	// Winograd gradient ops apply it themselves when they gather dY channels-last
	// (masked: they take the output as a last input); the others get it from a ReLU
	// gradient op.
	// A chain output's gradient comes masked already (see ConvConfig.ChannelsLastOut).
	masked := g.relu && op.dys != nil && !g.chOut
	withY := func(ins ...*G.Node) []*G.Node {
		if masked {
			return append(ins, output)
		}
		return ins
	}
	if g.relu && !masked && !g.chOut {
		var err error
		if grad, err = G.ApplyOp(&reluDiffOp{shape: g.outShape(), dims: 4}, output, grad); err != nil {
			return nil, fmt.Errorf("ops: conv2d: relu gradient: %w", err)
		}
	}
	nx := op.nx()
	grads := make(G.Nodes, nx, nx+2)
	if !op.noDX {
		for i := range grads {
			shape, _ := g.partShape(i)
			if g.chIn {
				shape = g.xValShape()
			}
			ins := withY(inputs[nx], grad)
			if g.chIn && g.inMask {
				ins = append(ins, inputs[0]) // the mask of x's fused ReLU
			}
			dx, err := G.ApplyOp(&convGradXOp{convGeom: g, convGradBase: convGradBase{"conv2d grad x"}, part: i, masked: masked, cols: op.cols, wino: op.wino, ws: op.ws, dys: op.dys, out: convOutput{shape: shape}}, ins...)
			if err != nil {
				return nil, fmt.Errorf("ops: conv2d: gradient wrt x: %w", err)
			}
			grads[i] = dx
		}
	}
	dw, err := G.ApplyOp(&convGradWOp{convGeom: g, convGradBase: convGradBase{"conv2d grad w"}, masked: masked, cols: op.cols, wino: op.wino, ws: op.ws, dys: op.dys, parts: &convScratch{size: g.cout * g.kdim()},
		out: convOutput{shape: g.wShape()}}, withY(append(inputs[:nx:nx], grad)...)...)
	if err != nil {
		return nil, fmt.Errorf("ops: conv2d: gradient wrt w: %w", err)
	}
	grads = append(grads, dw)
	if op.bias {
		db, err := G.ApplyOp(&convGradBOp{convGeom: g, convGradBase: convGradBase{"conv2d grad b"}, masked: masked, wino: op.wino, ws: op.ws, dys: op.dys, out: convOutput{shape: tensor.Shape{g.cout}}}, withY(grad)...)
		if err != nil {
			return nil, fmt.Errorf("ops: conv2d: gradient wrt b: %w", err)
		}
		grads = append(grads, db)
	}
	return grads, nil
}

// convGradBase holds what every gradient op of conv2d and linear shares. Gradient ops are
// not themselves differentiable: SymDiff reports an error naming the op.
type convGradBase struct{ name string }

func (convGradBase) ReturnsPtr() bool          { return false }
func (convGradBase) CallsExtern() bool         { return false }
func (convGradBase) OverwritesInput() int      { return -1 }
func (convGradBase) DiffWRT(inputs int) []bool { return convAllTrue(inputs) }
func (b convGradBase) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("ops: %s: second-order gradients are not implemented", b.name)
}

// inputs2 checks the inputs of a two-input gradient op, an operand named what of shape
// aShape and the output gradient of shape dyShape, and returns their data.
func (b convGradBase) inputs2(inputs []G.Value, what string, aShape, dyShape tensor.Shape) (a, dy []float32, err error) {
	if len(inputs) != 2 {
		return nil, nil, fmt.Errorf("ops: %s: got %d inputs, want 2", b.name, len(inputs))
	}
	if a, err = convInput(b.name, what, inputs[0], aShape); err != nil {
		return nil, nil, err
	}
	if dy, err = convInput(b.name, "output gradient", inputs[1], dyShape); err != nil {
		return nil, nil, err
	}
	return a, dy, nil
}

// convMask returns the layer's output, the last of inputs, when the gradient op applies
// the fused ReLU's mask (masked), else nil.
func (g *convGeom) convMask(name string, masked bool, inputs []G.Value) ([]float32, error) {
	if !masked {
		return nil, nil
	}
	return convInput(name, "output", inputs[len(inputs)-1], g.outShape())
}

// maskedString is the suffix of a gradient op's String when it applies the ReLU mask.
func maskedString(masked bool) string {
	if masked {
		return " masked"
	}
	return ""
}

// convTypes returns the type of an op taking k 4-D tensors (then t1 when not nil) and
// returning ret.
func convTypes(k int, t1, ret hm.Type) hm.Type {
	ts := make([]hm.Type, 0, k+2)
	for range k {
		ts = append(ts, anyTensor(4))
	}
	if t1 != nil {
		ts = append(ts, t1)
	}
	return hm.NewFnType(append(ts, ret)...)
}

// ---------------------------------------------------------------------------------
// Gradient with respect to x: per image, dcol = Wᵀ·dY then col2im.

type convGradXOp struct {
	opHooks
	convGeom
	convGradBase
	part   int  // the input part whose gradient this is (0 without parts)
	masked bool // applies the fused ReLU's mask: takes the layer's output as a third input
	cols   *convScratch
	wino   *wgConv
	ws     *Workspace
	dys    *dyShare
	out    convOutput
}

var (
	_ G.Op   = (*convGradXOp)(nil)
	_ G.SDOp = (*convGradXOp)(nil)
)

func (op *convGradXOp) Arity() int {
	n := 2
	if op.masked {
		n++
	}
	if op.chIn && op.inMask {
		n++
	}
	return n
}
func (op *convGradXOp) Type() hm.Type { return convTypes(op.Arity(), nil, anyTensor(4)) }
func (op *convGradXOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.chIn {
		return op.xValShape(), nil
	}
	s, _ := op.partShape(op.part)
	return s, nil
}
func (op *convGradXOp) WriteHash(h hash.Hash) { convWriteHash(h, op) }
func (op *convGradXOp) Hashcode() uint32      { return hashOp(op) }
func (op *convGradXOp) String() string {
	if len(op.parts) > 0 {
		return fmt.Sprintf("Conv2DGradX{%s part %d%s}", op.convGeom.String(), op.part, maskedString(op.masked))
	}
	return "Conv2DGradX{" + op.convGeom.String() + maskedString(op.masked) + "}"
}

func (op *convGradXOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindConv, op.start(), inputs)
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want %d", op.name, len(inputs), op.Arity())
	}
	w, dy, err := op.inputs2(inputs[:2], "w", op.wShape(), op.outValShape())
	if err != nil {
		return nil, err
	}
	k := 2
	if op.masked {
		k++
	}
	mask, err := op.convMask(op.name, op.masked, inputs[:k])
	if err != nil {
		return nil, err
	}
	var xmask []float32
	if op.chIn && op.inMask {
		if xmask, err = convInput(op.name, "x", inputs[k], op.xValShape()); err != nil {
			return nil, err
		}
	}
	t, dx := op.out.get(&op.opHooks)
	op.backward(w, dy, mask, xmask, dx)
	return t, nil
}

// backward computes dx. Work items are (image, channel group) pairs: the rows of
// dcol belonging to channels [c0, c1) are Wᵀ's rows for those channels times dY, and
// col2im writes only those channels of dx, so items never touch the same memory.
// Channels are split only when there are fewer images than goroutines.
// mask (Winograd only) is the layer's output when the fused ReLU's mask is applied here;
// with chIn, dx is written in x's chain layout, masked by xmask (x) when not nil.
func (op *convGradXOp) backward(w, dy, mask, xmask, dx []float32) {
	g := &op.convGeom
	if op.wino != nil {
		shape, off := g.partShape(op.part)
		c := op.wino.dataGradPart(shape[1], len(g.parts) > 0 && g.parts[op.part].up)
		u := op.wino.dataGradWeights(op.ws, w, off, shape[1])
		dya := op.dys.acquire(op.ws, op.wino, dy, mask, op)
		defer op.dys.release(op.ws)
		dst := wgDst{y: dx}
		if g.chIn {
			dst = wgDst{a: g.xChain(dx), mask: xmask}
		}
		c.forwardTo(op.ws, wgSrc{{data: dy, c: g.cout}}, dya, u, nil, float32(math.Inf(-1)), dst)
		op.ws.put(u)
		return
	}
	hw, tl, k, kk := g.hw(), g.tile(), g.kdim(), g.kh*g.kw
	xs, ys := g.cin*g.h*g.w, g.cout*hw
	groups := 1
	if procs := runtime.GOMAXPROCS(0); g.n < procs {
		groups = min(g.cin, (procs+g.n-1)/g.n)
	}
	per := (g.cin + groups - 1) / groups
	groups = (g.cin + per - 1) / per
	parallelFor(g.n*groups, func(lo, hi int) {
		var dcol []float32
		if !g.direct() {
			dcol = op.cols.get()
			defer op.cols.put(dcol)
		}
		for it := lo; it < hi; it++ {
			n, c0 := it/groups, (it%groups)*per
			c1 := min(c0+per, g.cin)
			dyn, dxn := dy[n*ys:(n+1)*ys], dx[n*xs:(n+1)*xs]
			if g.direct() {
				g.gemm.Sgemm(true, false, c1-c0, hw, g.cout, 1, w[c0:], g.cin, dyn, hw, 0, dxn[c0*hw:], hw)
				continue
			}
			clear(dxn[c0*g.h*g.w : c1*g.h*g.w])
			for p0 := 0; p0 < hw; p0 += tl {
				p1 := min(p0+tl, hw)
				g.gemm.Sgemm(true, false, (c1-c0)*kk, p1-p0, g.cout, 1, w[c0*kk:], k, dyn[p0:], hw, 0, dcol, p1-p0)
				g.col2im(dcol, c0, c1, p0, p1, dxn)
			}
		}
	})
}

// ---------------------------------------------------------------------------------
// Gradient with respect to w: dW = Σ over images and tiles of dY_tile · col_tileᵀ.

type convGradWOp struct {
	opHooks
	convGeom
	convGradBase
	masked bool // applies the fused ReLU's mask: takes the layer's output as a last input
	cols   *convScratch
	wino   *wgConv
	ws     *Workspace
	dys    *dyShare
	parts  *convScratch // partial sums of dW
	sums   [][]float32  // dw, then the partial sums, while backward runs
	out    convOutput
}

var (
	_ G.Op   = (*convGradWOp)(nil)
	_ G.SDOp = (*convGradWOp)(nil)
)

func (op *convGradWOp) Arity() int {
	if op.masked {
		return op.nx() + 2
	}
	return op.nx() + 1
}
func (op *convGradWOp) Type() hm.Type                                  { return convTypes(op.Arity(), nil, anyTensor(4)) }
func (op *convGradWOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.wShape(), nil }
func (op *convGradWOp) WriteHash(h hash.Hash)                          { convWriteHash(h, op) }
func (op *convGradWOp) Hashcode() uint32                               { return hashOp(op) }
func (op *convGradWOp) String() string {
	return "Conv2DGradW{" + op.convGeom.String() + maskedString(op.masked) + "}"
}

func (op *convGradWOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindConv, op.start(), inputs)
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: %s: got %d inputs, want %d", op.name, len(inputs), op.Arity())
	}
	x, err := op.source(op.name, inputs)
	if err != nil {
		return nil, err
	}
	dy, err := convInput(op.name, "output gradient", inputs[op.nx()], op.outValShape())
	if err != nil {
		return nil, err
	}
	mask, err := op.convMask(op.name, op.masked, inputs)
	if err != nil {
		return nil, err
	}
	t, dw := op.out.get(&op.opHooks)
	op.backward(x, dy, mask, dw)
	return t, nil
}

// convGradMaxParts is the most partial sums of dW the im2col filter gradient adds up.
const convGradMaxParts = 4

// backward computes dW, a sum over work items, (image, tile) pairs. The items are cut
// into parts fixed by the sizes; each part adds its items in order (one GEMM each, the
// first overwriting), into dw for the first part and into a partial sum for the others,
// and the partial sums are then added to dw in part order. The thread count decides
// only which goroutine runs a part, so dW has the same bits on any number of threads.
func (op *convGradWOp) backward(src wgSrc, dy, mask, dw []float32) {
	g := &op.convGeom
	if op.wino != nil {
		dya := op.dys.acquire(op.ws, op.wino, dy, mask, op)
		defer op.dys.release(op.ws)
		var xa *nhwc
		if g.chIn {
			xa = g.xChain(src[0].data)
		}
		op.wino.filterGradFrom(op.ws, src, xa, dy, dya, dw)
		return
	}
	x := src[0].data
	hw, tl, k := g.hw(), g.tile(), g.kdim()
	nt := (hw + tl - 1) / tl
	xs, ys := g.cin*g.h*g.w, g.cout*hw
	items := g.n * nt
	parts := parallel.Parts(items, 1, convGradMaxParts)
	sums := append(op.sums[:0], dw)
	for range parts - 1 {
		sums = append(sums, op.parts.get())
	}
	parallelFor(parts, func(lo, hi int) {
		var col []float32
		if !g.direct() {
			col = op.cols.get()
			defer op.cols.put(col)
		}
		for part := lo; part < hi; part++ {
			acc := sums[part]
			i0, i1 := parallel.Range(items, parts, part)
			var beta float32
			for it := i0; it < i1; it++ {
				n, p0 := it/nt, (it%nt)*tl
				p1 := min(p0+tl, hw)
				xn, dyn := x[n*xs:(n+1)*xs], dy[n*ys:(n+1)*ys]
				if g.direct() {
					g.gemm.Sgemm(false, true, g.cout, g.cin, p1-p0, 1, dyn[p0:], hw, xn[p0:], hw, beta, acc, g.cin)
				} else {
					g.im2col(xn, p0, p1, col)
					g.gemm.Sgemm(false, true, g.cout, k, p1-p0, 1, dyn[p0:], hw, col, p1-p0, beta, acc, k)
				}
				beta = 1
			}
		}
	})
	if parts > 1 {
		parallelBlocks(len(dw), func(lo, hi int) {
			d := dw[lo:hi]
			for _, p := range sums[1:] {
				for i, v := range p[lo:hi] {
					d[i] += v
				}
			}
		})
		for _, p := range sums[1:] {
			op.parts.put(p)
		}
	}
	clear(sums)
	op.sums = sums[:0]
}

// ---------------------------------------------------------------------------------
// Gradient with respect to b: the sum of dY over images and positions.

type convGradBOp struct {
	opHooks
	convGeom
	convGradBase
	masked bool // sums the masked channels-last dY of dys (takes the layer's output too)
	wino   *wgConv
	ws     *Workspace
	dys    *dyShare
	sums   [][16]float64 // sumPixels' scratch
	out    convOutput
}

var (
	_ G.Op   = (*convGradBOp)(nil)
	_ G.SDOp = (*convGradBOp)(nil)
)

func (op *convGradBOp) Arity() int {
	if op.masked {
		return 2
	}
	return 1
}
func (op *convGradBOp) Type() hm.Type { return convTypes(op.Arity(), nil, anyTensor(1)) }
func (op *convGradBOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.cout}, nil
}
func (op *convGradBOp) WriteHash(h hash.Hash) { convWriteHash(h, op) }
func (op *convGradBOp) Hashcode() uint32      { return hashOp(op) }
func (op *convGradBOp) String() string {
	return "Conv2DGradB{" + op.convGeom.String() + maskedString(op.masked) + "}"
}

func (op *convGradBOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindConv, op.start(), inputs)
	if len(inputs) != op.Arity() {
		return nil, fmt.Errorf("ops: conv2d grad b: got %d inputs, want %d", len(inputs), op.Arity())
	}
	dy, err := convInput("conv2d grad b", "output gradient", inputs[0], op.outValShape())
	if err != nil {
		return nil, err
	}
	mask, err := op.convMask("conv2d grad b", op.masked, inputs)
	if err != nil {
		return nil, err
	}
	t, db := op.out.get(&op.opHooks)
	if op.masked || op.chOut {
		dya := op.dys.acquire(op.ws, op.wino, dy, mask, op)
		op.sums = dya.sumPixels(db, op.n, op.cout, op.sums)
		op.dys.release(op.ws)
		return t, nil
	}
	hw := op.hw()
	ys := op.cout * hw
	parallelFor(op.cout, func(lo, hi int) {
		for co := lo; co < hi; co++ {
			var s float64
			for n := 0; n < op.n; n++ {
				s += sum64(dy[n*ys+co*hw : n*ys+(co+1)*hw])
			}
			db[co] = float32(s)
		}
	})
	return t, nil
}
