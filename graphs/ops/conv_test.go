package ops

import (
	"fmt"
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convCase is one convolution geometry used by the forward and gradient tests.
type convCase struct {
	name                       string
	n, cin, h, w, cout, kh, kw int
	sh, sw                     int
	pad                        Padding
	same                       bool // use SamePadding instead of pad
	bias                       bool
	algo                       ConvAlgo
	relu                       bool
}

func (c convCase) cfg() ConvConfig {
	p := c.pad
	if c.same {
		p = SamePadding(c.h, c.w, c.kh, c.kw, c.sh, c.sw)
	}
	return ConvConfig{StrideH: c.sh, StrideW: c.sw, Pad: p, Algo: c.algo, ReLU: c.relu}
}

// inputs returns seeded x, w and (if bias) b.
func (c convCase) inputs(seed uint64) []*tensor.Dense {
	in := []*tensor.Dense{
		randTensor(seed, c.n, c.cin, c.h, c.w),
		randTensor(seed+1, c.cout, c.cin, c.kh, c.kw),
	}
	if c.bias {
		in = append(in, randTensor(seed+2, c.cout))
	}
	return in
}

func (c convCase) build(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
	var b *G.Node
	if c.bias {
		b = in[2]
	}
	return Conv2D(in[0], in[1], b, c.cfg())
}

// convNaive is the direct definition of the convolution, in float64. mag[i] is the sum
// of the absolute values of the terms of y[i], for the tolerance.
func convNaive(x, w, b []float32, n, cin, h, wd, cout, kh, kw int, cfg ConvConfig) (y, mag []float64, ho, wo int) {
	p := cfg.Pad
	ho = (h+p.Top+p.Bottom-kh)/cfg.StrideH + 1
	wo = (wd+p.Left+p.Right-kw)/cfg.StrideW + 1
	y = make([]float64, n*cout*ho*wo)
	mag = make([]float64, len(y))
	for in := 0; in < n; in++ {
		for co := 0; co < cout; co++ {
			for oh := 0; oh < ho; oh++ {
				for ow := 0; ow < wo; ow++ {
					var s, m float64
					if b != nil {
						s, m = float64(b[co]), math.Abs(float64(b[co]))
					}
					for ci := 0; ci < cin; ci++ {
						for i := 0; i < kh; i++ {
							ih := oh*cfg.StrideH - p.Top + i
							if ih < 0 || ih >= h {
								continue
							}
							for j := 0; j < kw; j++ {
								iw := ow*cfg.StrideW - p.Left + j
								if iw < 0 || iw >= wd {
									continue
								}
								t := float64(x[((in*cin+ci)*h+ih)*wd+iw]) * float64(w[((co*cin+ci)*kh+i)*kw+j])
								s += t
								m += math.Abs(t)
							}
						}
					}
					k := ((in*cout+co)*ho+oh)*wo + ow
					y[k], mag[k] = s, m
				}
			}
		}
	}
	return y, mag, ho, wo
}

// runForward runs c forward on inputs drawn from seed, checks the output shape and returns
// the output with convNaive's reference and magnitudes.
func (c convCase) runForward(t *testing.T, seed uint64) (got []float32, want, mag []float64) {
	t.Helper()
	in := c.inputs(seed)
	got, shape := runForward(t, in, c.build)
	var b []float32
	if c.bias {
		b = in[2].Data().([]float32)
	}
	want, mag, ho, wo := convNaive(in[0].Data().([]float32), in[1].Data().([]float32), b,
		c.n, c.cin, c.h, c.w, c.cout, c.kh, c.kw, c.cfg())
	if ws := (tensor.Shape{c.n, c.cout, ho, wo}); !shape.Eq(ws) {
		t.Fatalf("got shape %v, want %v", shape, ws)
	}
	return got, want, mag
}

// runForward builds a forward-only graph over the inputs and returns a copy of the output.
func runForward(t *testing.T, inputs []*tensor.Dense, build func(*G.ExprGraph, []*G.Node) (*G.Node, error)) ([]float32, tensor.Shape) {
	t.Helper()
	g := G.NewGraph()
	y, err := build(g, bindInputs(g, inputs))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return append([]float32(nil), y.Value().Data().([]float32)...), y.Shape()
}

func TestSamePaddingAsymmetric(t *testing.T) {
	for _, c := range []struct {
		in, k, s int
		want     [2]int
	}{
		{19, 11, 4, [2]int{4, 4}}, // out 5, total 8: symmetric
		{20, 11, 4, [2]int{3, 4}}, // out 5, total 7: extra pixel at the bottom
		{224, 11, 4, [2]int{3, 4}},
		{7, 3, 2, [2]int{1, 1}},
		{8, 3, 2, [2]int{0, 1}},
		{5, 1, 1, [2]int{0, 0}},
	} {
		p := SamePadding(c.in, c.in, c.k, c.k, c.s, c.s)
		if got := [2]int{p.Top, p.Bottom}; got != c.want || p.Left != p.Top || p.Right != p.Bottom {
			t.Errorf("SamePadding(%d, k%d, s%d) = %v, want (t,b) = %v", c.in, c.k, c.s, p, c.want)
		}
		if got, want := ConvOutSize(c.in, c.k, c.s, p.Top, p.Bottom), (c.in+c.s-1)/c.s; got != want {
			t.Errorf("same conv of %d, k%d, s%d: got %d outputs, want %d", c.in, c.k, c.s, got, want)
		}
	}
}

func TestConvOutSize(t *testing.T) {
	for _, c := range []struct{ in, k, s, pb, pa, want int }{
		{224, 3, 1, 1, 1, 224},
		{224, 11, 4, 3, 4, 56},
		{7, 3, 2, 0, 0, 3},
		{4, 5, 1, 0, 0, 0}, // kernel does not fit
		{4, 5, 1, 1, 0, 1},
		{4, 3, 0, 0, 0, 0}, // bad stride
	} {
		if got := ConvOutSize(c.in, c.k, c.s, c.pb, c.pa); got != c.want {
			t.Errorf("ConvOutSize(%d, %d, %d, %d, %d) = %d, want %d", c.in, c.k, c.s, c.pb, c.pa, got, c.want)
		}
	}
}

var convForwardCases = []convCase{
	{name: "3x3 same 7x5 n1", n: 1, cin: 3, h: 7, w: 5, cout: 5, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
	{name: "3x3 valid 7x5 n3 nobias", n: 3, cin: 5, h: 7, w: 5, cout: 6, kh: 3, kw: 3, sh: 1, sw: 1},
	{name: "5x3 stride2 same 9x8 n3", n: 3, cin: 3, h: 9, w: 8, cout: 6, kh: 5, kw: 3, sh: 2, sw: 2, same: true, bias: true},
	{name: "11x11 stride4 same 20x20 asym", n: 2, cin: 3, h: 20, w: 20, cout: 5, kh: 11, kw: 11, sh: 4, sw: 4, same: true, bias: true},
	{name: "11x11 stride4 same 19x19", n: 1, cin: 3, h: 19, w: 19, cout: 6, kh: 11, kw: 11, sh: 4, sw: 4, same: true},
	{name: "3x3 stride(2,1) explicit pad", n: 3, cin: 6, h: 8, w: 7, cout: 5, kh: 3, kw: 3, sh: 2, sw: 1, pad: Padding{0, 2, 1, 0}, bias: true},
	{name: "3x3 stride4 pad1", n: 2, cin: 3, h: 13, w: 11, cout: 5, kh: 3, kw: 3, sh: 4, sw: 4, pad: Symmetric(1)},
	{name: "1x1 direct n3", n: 3, cin: 5, h: 7, w: 5, cout: 6, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
	{name: "1x1 direct n1 nobias", n: 1, cin: 6, h: 4, w: 9, cout: 3, kh: 1, kw: 1, sh: 1, sw: 1},
	{name: "1x1 stride2", n: 3, cin: 5, h: 7, w: 5, cout: 6, kh: 1, kw: 1, sh: 2, sw: 2, bias: true},
	{name: "1x1 padded", n: 1, cin: 3, h: 5, w: 5, cout: 5, kh: 1, kw: 1, sh: 1, sw: 1, pad: Symmetric(1), bias: true},
	{name: "kernel covers input", n: 2, cin: 3, h: 4, w: 4, cout: 5, kh: 4, kw: 4, sh: 1, sw: 1, bias: true},
	{name: "pad wider than kernel reach", n: 1, cin: 2, h: 3, w: 3, cout: 3, kh: 2, kw: 2, sh: 1, sw: 1, pad: Symmetric(2)},
	// K = 576 gives two im2col tiles per image (tile boundaries inside output rows).
	{name: "two tiles K576", n: 2, cin: 64, h: 43, w: 47, cout: 3, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvIm2col},
	// K = 18432 gives the minimum tile (64 positions): tiles of 50 over 10x10.
	{name: "min tile K18432 stride2", n: 1, cin: 2048, h: 19, w: 20, cout: 3, kh: 3, kw: 3, sh: 2, sw: 2, same: true},
}

func TestConv2DForward(t *testing.T) {
	for i, c := range convForwardCases {
		t.Run(c.name, func(t *testing.T) {
			got, want, mag := c.runForward(t, uint64(100+10*i))
			bad := 0
			for k := range want {
				if d := math.Abs(float64(got[k]) - want[k]); d > 1e-5*mag[k]+1e-6 || math.IsNaN(float64(got[k])) {
					if bad++; bad <= 5 {
						t.Errorf("y[%d]: got %g, want %g", k, got[k], want[k])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d outputs differ", bad, len(want))
			}
		})
	}
}

func TestConv2DGrad(t *testing.T) {
	cases := []convCase{
		{name: "3x3 same 7x5 n3", n: 3, cin: 3, h: 7, w: 5, cout: 5, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
		{name: "11x11 stride4 same 20x20 asym", n: 2, cin: 2, h: 20, w: 20, cout: 3, kh: 11, kw: 11, sh: 4, sw: 4, same: true, bias: true},
		{name: "5x3 stride(2,1) explicit asym pad n3", n: 3, cin: 5, h: 9, w: 8, cout: 6, kh: 5, kw: 3, sh: 2, sw: 1, pad: Padding{2, 1, 0, 2}, bias: true},
		{name: "3x3 stride2 nobias n1", n: 1, cin: 5, h: 7, w: 9, cout: 6, kh: 3, kw: 3, sh: 2, sw: 2, same: true},
		{name: "1x1 direct n1", n: 1, cin: 5, h: 3, w: 7, cout: 6, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
		{name: "1x1 direct n3 nobias", n: 3, cin: 6, h: 5, w: 3, cout: 5, kh: 1, kw: 1, sh: 1, sw: 1},
		{name: "1x1 stride2 padded", n: 3, cin: 3, h: 6, w: 7, cout: 5, kh: 1, kw: 1, sh: 2, sw: 2, pad: Symmetric(1), bias: true},
		{name: "two tiles K576", n: 2, cin: 64, h: 43, w: 47, cout: 3, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvIm2col},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGrad(t, gradCase{name: c.name, inputs: c.inputs(uint64(500 + 10*i)), build: c.build})
		})
	}
}

// TestConv2DNotMerged builds convolutions that differ in one parameter but have the same
// input and output shapes in one graph: each must stay its own node and compute its own
// result.
func TestConv2DNotMerged(t *testing.T) {
	for _, c := range []struct {
		name   string
		x, w   []int
		c1, c2 ConvConfig
	}{
		{"stride", []int{1, 2, 5, 5}, []int{3, 2, 1, 1},
			ConvConfig{StrideH: 3, StrideW: 3}, ConvConfig{StrideH: 4, StrideW: 4}},
		{"padding", []int{2, 2, 4, 4}, []int{3, 2, 2, 2},
			ConvConfig{StrideH: 1, StrideW: 1, Pad: Padding{Top: 1, Left: 1}}, ConvConfig{StrideH: 1, StrideW: 1, Pad: Padding{Bottom: 1, Right: 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			inputs := []*tensor.Dense{randTensor(7, c.x...), randTensor(8, c.w...)}
			g := G.NewGraph()
			in := bindInputs(g, inputs)
			y1, err := Conv2D(in[0], in[1], nil, c.c1)
			if err != nil {
				t.Fatal(err)
			}
			y2, err := Conv2D(in[0], in[1], nil, c.c2)
			if err != nil {
				t.Fatal(err)
			}
			if !y1.Shape().Eq(y2.Shape()) {
				t.Fatalf("test setup: shapes %v and %v differ", y1.Shape(), y2.Shape())
			}
			if y1 == y2 {
				t.Fatalf("conv %v and conv %v were merged into one node", c.c1, c.c2)
			}
			vm := G.NewTapeMachine(g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			x, w := inputs[0].Data().([]float32), inputs[1].Data().([]float32)
			for _, p := range []struct {
				y   *G.Node
				cfg ConvConfig
			}{{y1, c.c1}, {y2, c.c2}} {
				want, _, _, _ := convNaive(x, w, nil, c.x[0], c.x[1], c.x[2], c.x[3], c.w[0], c.w[2], c.w[3], p.cfg)
				got := p.y.Value().Data().([]float32)
				for k := range want {
					if math.Abs(float64(got[k])-want[k]) > 1e-5 {
						t.Fatalf("conv %v: y[%d] = %g, want %g", p.cfg, k, got[k], want[k])
					}
				}
			}
		})
	}
}

// TestConvOpHashCoversParameters changes one parameter at a time and checks that the
// forward and gradient ops' hashes and names change with it.
func TestConvOpHashCoversParameters(t *testing.T) {
	base := convGeom{n: 2, cin: 3, h: 8, w: 9, cout: 4, kh: 3, kw: 3, sh: 1, sw: 1, pad: Symmetric(1), ho: 8, wo: 9, bias: true}
	vary := []func(*convGeom){
		func(g *convGeom) { g.n = 3 },
		func(g *convGeom) { g.cin = 5 },
		func(g *convGeom) { g.h = 9 },
		func(g *convGeom) { g.w = 8 },
		func(g *convGeom) { g.cout = 5 },
		func(g *convGeom) { g.kh = 1 },
		func(g *convGeom) { g.kw = 1 },
		func(g *convGeom) { g.sh = 2 },
		func(g *convGeom) { g.sw = 2 },
		func(g *convGeom) { g.pad.Top = 0 },
		func(g *convGeom) { g.pad.Bottom = 0 },
		func(g *convGeom) { g.pad.Left = 0 },
		func(g *convGeom) { g.pad.Right = 0 },
		func(g *convGeom) { g.bias = false },
	}
	ops := func(g convGeom) []G.Op {
		return []G.Op{&convOp{convGeom: g}, &convGradXOp{convGeom: g}, &convGradWOp{convGeom: g}, &convGradBOp{convGeom: g}}
	}
	seen := map[uint32]string{}
	add := func(op G.Op) {
		if prev, ok := seen[op.Hashcode()]; ok {
			t.Errorf("ops %s and %s have the same hash", prev, op)
		}
		seen[op.Hashcode()] = op.String()
	}
	for _, op := range ops(base) {
		add(op)
	}
	for _, f := range vary {
		g := base
		f(&g)
		for _, op := range ops(g) {
			add(op)
		}
	}
}

func TestConv2DErrors(t *testing.T) {
	f32 := func(g *G.ExprGraph, name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	one := ConvConfig{StrideH: 1, StrideW: 1}
	for _, c := range []struct {
		name  string
		build func(g *G.ExprGraph) (*G.Node, error)
		want  string
	}{
		{"nil w", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), nil, nil, one)
		}, "x and w must not be nil"},
		{"float64 x", func(g *G.ExprGraph) (*G.Node, error) {
			x := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 3, 8, 8), G.WithName("x"))
			return Conv2D(x, f32(g, "w", 4, 3, 3, 3), nil, one)
		}, "x has dtype float64, want float32"},
		{"3-D x", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 3, 8, 8), f32(g, "w", 4, 3, 3, 3), nil, one)
		}, "x has shape (3, 8, 8), want 4-D (N,Cin,H,W)"},
		{"2-D w", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), f32(g, "w", 4, 27), nil, one)
		}, "w has shape (4, 27), want 4-D (Cout,Cin,kH,kW)"},
		{"channel mismatch", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 2, 3, 8, 8), f32(g, "w", 16, 4, 3, 3), nil, one)
		}, "w has shape (16, 4, 3, 3), want (16, 3, 3, 3): x (2, 3, 8, 8) has 3 input channels"},
		{"bias length", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), f32(g, "w", 4, 3, 3, 3), f32(g, "b", 3), one)
		}, "b has shape (3), want (4)"},
		{"bias 2-D", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), f32(g, "w", 4, 3, 3, 3), f32(g, "b", 1, 4), one)
		}, "b has shape (1, 4), want (4)"},
		{"zero stride", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), f32(g, "w", 4, 3, 3, 3), nil, ConvConfig{StrideH: 0, StrideW: 1})
		}, "stride (0,1), want both ≥ 1"},
		{"negative padding", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 8, 8), f32(g, "w", 4, 3, 3, 3), nil, ConvConfig{StrideH: 1, StrideW: 1, Pad: Padding{Top: -1}})
		}, "negative padding"},
		{"kernel too large", func(g *G.ExprGraph) (*G.Node, error) {
			return Conv2D(f32(g, "x", 1, 3, 4, 4), f32(g, "w", 4, 3, 5, 5), nil, one)
		}, "kernel 5x5 of w (4, 3, 5, 5) is larger than x (1, 3, 4, 4)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			y, err := c.build(G.NewGraph())
			if err == nil {
				t.Fatalf("got node %v, want an error containing %q", y, c.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "ops: conv2d: ") || !strings.Contains(msg, c.want) {
				t.Errorf("got error %q, want prefix %q and %q", msg, "ops: conv2d: ", c.want)
			}
		})
	}
}

// TestConv2DDoErrors feeds the ops values that do not match the graph.
func TestConv2DDoErrors(t *testing.T) {
	c := convCase{n: 2, cin: 3, h: 6, w: 6, cout: 4, kh: 3, kw: 3, sh: 1, sw: 1, bias: true}
	g := G.NewGraph()
	in := bindInputs(g, c.inputs(1))
	y, err := c.build(g, in)
	if err != nil {
		t.Fatal(err)
	}
	op := y.Op()
	x, w, b := randTensor(1, 2, 3, 6, 6), randTensor(2, 4, 3, 3, 3), randTensor(3, 4)
	for _, e := range []struct {
		name   string
		inputs []G.Value
		want   string
	}{
		{"arity", []G.Value{x, w}, "ops: conv2d: got 2 inputs, want 3"},
		{"x shape", []G.Value{randTensor(1, 2, 3, 6, 5), w, b}, "ops: conv2d: x has shape (2, 3, 6, 5), want (2, 3, 6, 6)"},
		{"w dtype", []G.Value{x, tensor.New(tensor.WithShape(4, 3, 3, 3), tensor.Of(tensor.Float64)), b}, "ops: conv2d: w has dtype float64, want float32"},
		{"b shape", []G.Value{x, w, randTensor(3, 5)}, "ops: conv2d: b has shape (5), want (4)"},
	} {
		if _, err := op.Do(e.inputs...); err == nil || err.Error() != e.want {
			t.Errorf("%s: got error %v, want %q", e.name, err, e.want)
		}
	}
	if _, err := op.Do(x, w, b); err != nil {
		t.Errorf("valid inputs: %v", err)
	}
}

// TestConvGradDoErrors feeds the gradient ops values that do not match the graph.
func TestConvGradDoErrors(t *testing.T) {
	c := convCase{n: 2, cin: 3, h: 6, w: 6, cout: 4, kh: 3, kw: 3, sh: 1, sw: 1, bias: true}
	ops, args := convBenchOps(t, c)
	badDy := randTensor(5, 2, 4, 5, 5)
	for _, e := range []struct {
		op     G.Op
		inputs []G.Value
		want   string
	}{
		{ops[1], args[1][:1], "ops: conv2d grad x: got 1 inputs, want 2"},
		{ops[1], []G.Value{args[1][0], badDy}, "ops: conv2d grad x: output gradient has shape (2, 4, 5, 5), want (2, 4, 4, 4)"},
		{ops[2], []G.Value{randTensor(5, 2, 3, 6), args[2][1]}, "ops: conv2d grad w: x has shape (2, 3, 6), want (2, 3, 6, 6)"},
		{ops[2], []G.Value{args[2][0], G.NewF32(1)}, "ops: conv2d grad w: output gradient is a *gorgonia.F32, want *tensor.Dense"},
		{ops[3], []G.Value{badDy}, "ops: conv2d grad b: output gradient has shape (2, 4, 5, 5), want (2, 4, 4, 4)"},
	} {
		if _, err := e.op.Do(e.inputs...); err == nil || err.Error() != e.want {
			t.Errorf("%v: got error %v, want %q", e.op, err, e.want)
		}
	}
	for i, op := range ops {
		if _, err := op.Do(args[i]...); err != nil {
			t.Errorf("%v with valid inputs: %v", op, err)
		}
	}
}

// TestConvGradOpsNotDifferentiable checks that asking for a second derivative through
// a gradient op fails with an error rather than a wrong answer.
func TestConvGradOpsNotDifferentiable(t *testing.T) {
	c := convCase{n: 1, cin: 2, h: 5, w: 5, cout: 3, kh: 3, kw: 3, sh: 1, sw: 1, bias: true}
	g := G.NewGraph()
	in := bindInputs(g, c.inputs(3))
	y, err := c.build(g, in)
	if err != nil {
		t.Fatal(err)
	}
	dy := G.NewTensor(g, tensor.Float32, 4, G.WithShape(y.Shape()...), G.WithName("dy"))
	grads, err := y.Op().(G.SDOp).SymDiff(G.Nodes(in), y, dy)
	if err != nil {
		t.Fatal(err)
	}
	if len(grads) != 3 {
		t.Fatalf("got %d gradients, want 3", len(grads))
	}
	for i, gr := range grads {
		if !gr.Shape().Eq(in[i].Shape()) {
			t.Errorf("gradient %d has shape %v, want %v", i, gr.Shape(), in[i].Shape())
		}
		sd := gr.Op().(G.SDOp)
		if _, err := sd.SymDiff(nil, gr, dy); err == nil || !strings.Contains(err.Error(), "second-order gradients are not implemented") {
			t.Errorf("%v: SymDiff error = %v, want second-order error", gr.Op(), err)
		}
	}
}

// TestTrainStepRepeatable runs a small training graph (conv, conv with stride and
// asymmetric padding, 1x1 conv, reshape, linear) through G.Grad and a TapeMachine: runs
// with the same input give bit-identical outputs and gradients, including after a run
// with a different input, so the ops' reused buffers carry nothing over.
func TestTrainStepRepeatable(t *testing.T) {
	const n = 3
	g := G.NewGraph()
	param := func(name string, seed uint64, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(randTensor(seed, shape...)))
	}
	xv := randTensor(1, n, 3, 9, 7)
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(n, 3, 9, 7), G.WithName("x"), G.WithValue(xv))
	w1, b1 := param("w1", 2, 5, 3, 3, 3), param("b1", 3, 5)
	w2 := param("w2", 4, 6, 5, 3, 3)
	w3, b3 := param("w3", 5, 4, 6, 1, 1), param("b3", 6, 4)
	params := G.Nodes{w1, b1, w2, w3, b3}

	h1, err := Conv2D(x, w1, b1, ConvConfig{StrideH: 1, StrideW: 1, Pad: SamePadding(9, 7, 3, 3, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a1 := G.Must(G.Tanh(h1))
	h2, err := Conv2D(a1, w2, nil, ConvConfig{StrideH: 2, StrideW: 2, Pad: SamePadding(9, 7, 3, 3, 2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	h3, err := Conv2D(h2, w3, b3, ConvConfig{StrideH: 1, StrideW: 1})
	if err != nil {
		t.Fatal(err)
	}
	feat := h3.Shape().TotalSize() / n
	flat := G.Must(G.Reshape(h3, tensor.Shape{n, feat}))
	w4, b4 := param("w4", 7, 2, feat), param("b4", 8, 2)
	params = append(params, w4, b4)
	y, err := Linear(flat, w4, b4, LinearConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cost := G.Must(G.Mean(G.Must(G.Square(y))))
	if _, err := G.Grad(cost, params...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer vm.Close()

	type result struct{ vals, grads [][]float32 }
	step := func() result {
		t.Helper()
		for _, p := range params { // gradients accumulate across runs: zero them as an optimizer does
			if gv, err := p.Grad(); err == nil && gv != nil {
				gv.(tensor.Tensor).Zero()
			}
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		var r result
		for _, v := range []*G.Node{h1, h2, h3, y} {
			r.vals = append(r.vals, append([]float32(nil), v.Value().Data().([]float32)...))
		}
		r.vals = append(r.vals, []float32{cost.Value().Data().(float32)})
		for _, p := range params {
			gv, _ := p.Grad()
			r.grads = append(r.grads, append([]float32(nil), gv.Data().([]float32)...))
		}
		return r
	}
	same := func(what string, a, b [][]float32) {
		t.Helper()
		for i := range a {
			for j := range a[i] {
				if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
					t.Fatalf("%s %d [%d]: %g then %g", what, i, j, a[i][j], b[i][j])
				}
			}
		}
	}
	first := step()
	second := step()
	same("value", first.vals, second.vals)
	same("gradient", first.grads, second.grads)
	if !h3.Value().Shape().Eq(h3.Shape()) {
		t.Errorf("conv output value has shape %v after the run, want %v", h3.Value().Shape(), h3.Shape())
	}

	orig := append([]float32(nil), xv.Data().([]float32)...)
	copy(xv.Data().([]float32), randTensor(99, n, 3, 9, 7).Data().([]float32))
	other := step()
	if fmt.Sprint(other.vals[4]) == fmt.Sprint(first.vals[4]) {
		t.Errorf("a different input gave the same cost %v", first.vals[4])
	}
	copy(xv.Data().([]float32), orig)
	third := step()
	same("value after another input", first.vals, third.vals)
	same("gradient after another input", first.grads, third.grads)
}

// TestConv2DSteadyStateAllocs checks that repeated runs of the ops allocate almost
// nothing (goroutine bookkeeping and interface conversions only).
func TestConv2DSteadyStateAllocs(t *testing.T) {
	c := convCase{n: 3, cin: 5, h: 12, w: 10, cout: 6, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true}
	ops, args := convBenchOps(t, c)
	for i, op := range ops {
		if _, err := op.Do(args[i]...); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() { _, _ = op.Do(args[i]...) })
		if allocs > 16 {
			t.Errorf("%v: %.0f allocations per run, want ≤ 16", op, allocs)
		}
	}
}

// TestConvOutputRestoresHeader: an op's reused output tensor gets its shape back if a
// downstream op reshaped or transposed it in place, and keeps its data.
func TestConvOutputRestoresHeader(t *testing.T) {
	o := convOutput{shape: tensor.Shape{2, 3, 4, 5}}
	t1, d1 := o.get(nil)
	if t2, d2 := o.get(nil); t2 != t1 || &d2[0] != &d1[0] {
		t.Fatalf("second get returned a new tensor or new data")
	}
	for _, mutate := range []func(*tensor.Dense) error{
		func(d *tensor.Dense) error { return d.Reshape(6, 20) },
		func(d *tensor.Dense) error { return d.T(0, 1, 3, 2) },
	} {
		cur, _ := o.get(nil)
		if err := mutate(cur); err != nil {
			t.Fatal(err)
		}
		got, d := o.get(nil)
		if !convShapeIs(got.Shape(), o.shape) || got.IsMaterializable() || &d[0] != &d1[0] ||
			&got.Data().([]float32)[0] != &d1[0] {
			t.Errorf("after an in-place change: got shape %v (view %t), want %v over the same data",
				got.Shape(), got.IsMaterializable(), o.shape)
		}
	}
}

// convBenchOps returns the forward and the three gradient ops of the conv c with
// seeded input values for each: forward(x, w, b), dx(w, dy), dw(x, dy), db(dy).
func convBenchOps(tb testing.TB, c convCase) ([]G.Op, [][]G.Value) {
	tb.Helper()
	g := G.NewGraph()
	vals := c.inputs(11)
	in := bindInputs(g, vals)
	y, err := c.build(g, in)
	if err != nil {
		tb.Fatal(err)
	}
	dyv := randTensor(12, y.Shape()...)
	dy := G.NewTensor(g, tensor.Float32, 4, G.WithShape(y.Shape()...), G.WithName("dy"), G.WithValue(dyv))
	grads, err := y.Op().(G.SDOp).SymDiff(G.Nodes(in), y, dy)
	if err != nil {
		tb.Fatal(err)
	}
	fwdArgs := []G.Value{vals[0], vals[1]}
	if c.bias {
		fwdArgs = append(fwdArgs, vals[2])
	}
	ops := []G.Op{y.Op(), grads[0].Op(), grads[1].Op()}
	args := [][]G.Value{fwdArgs, {vals[1], dyv}, {vals[0], dyv}}
	if c.bias {
		ops = append(ops, grads[2].Op())
		args = append(args, []G.Value{dyv})
	}
	return ops, args
}

func BenchmarkConv2D(b *testing.B) {
	for _, c := range []convCase{
		{name: "vgg3x3_n4_64to64_56x56", n: 4, cin: 64, h: 56, w: 56, cout: 64, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
		{name: "alexnet11x11s4_n1_3to96_224x224", n: 1, cin: 3, h: 224, w: 224, cout: 96, kh: 11, kw: 11, sh: 4, sw: 4, same: true, bias: true},
		{name: "1x1_n4_64to64_56x56", n: 4, cin: 64, h: 56, w: 56, cout: 64, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
		// The first and last layers of C6s (vgg16-segnet width 1/4 at 128x128, batch 4).
		{name: "image3x3_n4_3to16_128x128", n: 4, cin: 3, h: 128, w: 128, cout: 16, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
		{name: "head1x1_n4_16to21_128x128", n: 4, cin: 16, h: 128, w: 128, cout: 21, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
	} {
		ops, args := convBenchOps(b, c)
		for i, op := range ops { // warm up: allocate outputs and scratch, check inputs
			if _, err := op.Do(args[i]...); err != nil {
				b.Fatal(err)
			}
		}
		flops := ops[0].(*convOp).flops()
		b.Run(c.name+"/fwd", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ops[0].Do(args[0]...)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(c.name+"/fwdbwd", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i, op := range ops {
					_, _ = op.Do(args[i]...)
				}
			}
			b.ReportMetric(3*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestConv2DNoInputGrad checks that NoInputGrad leaves the gradients with respect to w
// and b as they were (finite differences), and builds no gradient op for x.
func TestConv2DNoInputGrad(t *testing.T) {
	for i, c := range []convCase{
		{name: "im2col 3 channels", n: 2, cin: 3, h: 7, w: 6, cout: 5, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
		{name: "winograd", n: 2, cin: 8, h: 9, w: 10, cout: 8, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvWinograd},
	} {
		t.Run(c.name, func(t *testing.T) {
			build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				cfg := c.cfg()
				cfg.NoInputGrad = true
				return Conv2D(in[0], in[1], in[2], cfg)
			}
			inputs := c.inputs(uint64(900 + 10*i))
			checkGrad(t, gradCase{name: c.name, inputs: inputs, wrt: []bool{false, true, true}, build: build, eps: 1e-2, atol: 3e-3})

			g := G.NewGraph()
			in := bindInputs(g, inputs)
			y, err := build(g, in)
			if err != nil {
				t.Fatal(err)
			}
			cost, err := G.Sum(y)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := G.Grad(cost, in[1], in[2]); err != nil {
				t.Fatal(err)
			}
			for _, n := range g.AllNodes() {
				if _, ok := n.Op().(*convGradXOp); ok {
					t.Errorf("graph has %v, want no gradient op for x", n.Op())
				}
			}
		})
	}
}
