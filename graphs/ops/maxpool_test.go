package ops

import (
	"fmt"
	"math"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveMaxPool is a direct transcription of PyTorch's CPU max_pool2d loop (first maximum
// wins, a NaN always wins), for an output size given by the caller.
func naiveMaxPool(x []float32, n, c, h, w, oh, ow int, cfg PoolConfig) ([]float32, []int32) {
	y := make([]float32, n*c*oh*ow)
	idx := make([]int32, len(y))
	for p := range n * c {
		for i := range oh {
			for j := range ow {
				m, mi := float32(math.Inf(-1)), -1
				for a := range cfg.KH {
					for b := range cfg.KW {
						r, q := i*cfg.StrideH-cfg.Pad.Top+a, j*cfg.StrideW-cfg.Pad.Left+b
						if r < 0 || r >= h || q < 0 || q >= w {
							continue
						}
						v := x[p*h*w+r*w+q]
						if mi < 0 || v > m || math.IsNaN(float64(v)) {
							m, mi = v, r*w+q
						}
					}
				}
				y[p*oh*ow+i*ow+j], idx[p*oh*ow+i*ow+j] = m, int32(mi)
			}
		}
	}
	return y, idx
}

type poolCase struct {
	name       string
	n, c, h, w int
	cfg        PoolConfig
	oh, ow     int // hand-computed with PyTorch's formula
}

var poolCases = []poolCase{
	{"2x2s2", 2, 3, 6, 8, PoolConfig{KH: 2, KW: 2, StrideH: 2, StrideW: 2}, 3, 4},
	{"2x2s2 odd", 1, 3, 7, 9, PoolConfig{KH: 2, KW: 2}, 3, 4},
	{"2x2s2 odd ceil", 2, 3, 7, 9, PoolConfig{KH: 2, KW: 2, CeilMode: true}, 4, 5},
	{"alexnet 3x3s2", 2, 5, 11, 13, PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2}, 5, 6},
	{"3x3s3", 1, 3, 7, 8, PoolConfig{KH: 3, KW: 3, StrideH: 3, StrideW: 3}, 2, 2},
	{"2x2s3", 2, 3, 8, 7, PoolConfig{KH: 2, KW: 2, StrideH: 3, StrideW: 3}, 3, 2},
	{"3x3s2 asym pad", 2, 3, 5, 6, PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Padding{Top: 0, Bottom: 1, Left: 1, Right: 0}}, 2, 3},
	{"3x3s2 pad1 ceil", 1, 5, 6, 7, PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1), CeilMode: true}, 4, 4},
	{"2x2s2 pad1 ceil drops last", 1, 3, 5, 5, PoolConfig{KH: 2, KW: 2, Pad: Symmetric(1), CeilMode: true}, 3, 3},
	{"2x3 s(1,2)", 2, 3, 5, 7, PoolConfig{KH: 2, KW: 3, StrideH: 1, StrideW: 2}, 4, 3},
	{"2x2s2 wide (vector rows)", 1, 2, 4, 38, PoolConfig{KH: 2, KW: 2}, 2, 19},
}

func TestMaxPool2DHand(t *testing.T) {
	x4 := []float32{
		1, 5, 2, 0,
		3, 4, 8, 7,
		9, 6, 1, 2,
		0, 2, 3, 4,
	}
	x3 := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, c := range []struct {
		name    string
		x       []float32
		h, w    int
		cfg     PoolConfig
		want    []float32
		wantIdx []int32
	}{
		{"2x2s2", x4, 4, 4, PoolConfig{KH: 2, KW: 2}, []float32{5, 8, 9, 4}, []int32{1, 6, 8, 15}},
		{"2x2s2 pad1", x3, 3, 3, PoolConfig{KH: 2, KW: 2, Pad: Symmetric(1)}, []float32{1, 3, 7, 9}, []int32{0, 2, 6, 8}},
		{"2x2s2 ceil", x3, 3, 3, PoolConfig{KH: 2, KW: 2, CeilMode: true}, []float32{5, 6, 8, 9}, []int32{4, 5, 7, 8}},
		{"3x3s1", x4, 4, 4, PoolConfig{KH: 3, KW: 3, StrideH: 1, StrideW: 1}, []float32{9, 8, 9, 8}, []int32{8, 6, 8, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			am := NewArgmax(c.name)
			got, shape := runOnce(t, []*tensor.Dense{denseF32(slices.Clone(c.x), 1, 1, c.h, c.w)}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2D(in[0], c.cfg, am)
			})
			if !shape.Eq(tensor.Shape{1, 1, 2, 2}) || !slices.Equal(got, c.want) {
				t.Errorf("got %v %v, want (1, 1, 2, 2) %v", shape, got, c.want)
			}
			if !slices.Equal(am.Indices(), c.wantIdx) {
				t.Errorf("indices: got %v, want %v", am.Indices(), c.wantIdx)
			}
		})
	}
}

func TestMaxPool2DNaive(t *testing.T) {
	for i, c := range poolCases {
		t.Run(c.name, func(t *testing.T) {
			x := randTensor(uint64(50+i), c.n, c.c, c.h, c.w)
			cfg, _ := c.cfg.normalize()
			want, wantIdx := naiveMaxPool(x.Data().([]float32), c.n, c.c, c.h, c.w, c.oh, c.ow, cfg)
			am := NewArgmax("pool")
			got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2D(in[0], c.cfg, am)
			})
			if want := (tensor.Shape{c.n, c.c, c.oh, c.ow}); !shape.Eq(want) {
				t.Fatalf("shape: got %v, want %v", shape, want)
			}
			if !slices.Equal(got, want) || !slices.Equal(am.Indices(), wantIdx) {
				t.Fatalf("output or indices differ from the naive reference")
			}
			if !am.InputShape().Eq(tensor.Shape{c.n, c.c, c.h, c.w}) || !am.OutputShape().Eq(shape) {
				t.Errorf("argmax shapes: got %v → %v", am.InputShape(), am.OutputShape())
			}
		})
	}
}

// TestMaxPool2DTiesAndLarge covers ties (the first maximum wins, in the 2x2 fast path too)
// and planes large enough to run in parallel.
func TestMaxPool2DTiesAndLarge(t *testing.T) {
	x := randTensor(60, 2, 5, 37, 41)
	for i, v := range x.Data().([]float32) {
		x.Data().([]float32)[i] = float32(math.Round(float64(v) * 2)) // many ties
	}
	for _, cfg := range []PoolConfig{{KH: 2, KW: 2}, {KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1)}} {
		am := NewArgmax("p")
		got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return MaxPool2D(in[0], cfg, am)
		})
		ncfg, _ := cfg.normalize()
		want, wantIdx := naiveMaxPool(x.Data().([]float32), 2, 5, 37, 41, shape[2], shape[3], ncfg)
		if !slices.Equal(got, want) || !slices.Equal(am.Indices(), wantIdx) {
			t.Errorf("%v: output or indices differ from the naive reference", cfg)
		}
	}
}

// TestMaxPool2DMatchesGorgonia compares with Gorgonia's own op where that one is right
// (symmetric padding, floor mode).
func TestMaxPool2DMatchesGorgonia(t *testing.T) {
	x := randTensor(61, 2, 3, 11, 13)
	ours, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return MaxPool2D(in[0], PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1)}, nil)
	})
	theirs, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return G.MaxPool2D(in[0], tensor.Shape{3, 3}, []int{1, 1}, []int{2, 2})
	})
	if !slices.Equal(ours, theirs) {
		t.Fatal("MaxPool2D differs from gorgonia.MaxPool2D")
	}
}

func TestMaxPool2DGrad(t *testing.T) {
	for i, c := range poolCases {
		checkGrad(t, gradCase{
			name:   "maxpool " + c.name,
			inputs: []*tensor.Dense{spreadTensor(uint64(70+i), 0.05, c.n, c.c, c.h, c.w)},
			build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return MaxPool2D(in[0], c.cfg, nil)
			},
		})
	}
}

// TestMaxPool2DNaN: a NaN wins its windows (PyTorch), and neither pass panics (Gorgonia's
// backward indexes with -1).
func TestMaxPool2DNaN(t *testing.T) {
	nan := float32(math.NaN())
	for _, cfg := range []PoolConfig{{KH: 2, KW: 2}, {KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1)}} {
		t.Run(cfg.String(), func(t *testing.T) {
			xd := []float32{
				1, 2, 3, 4,
				5, nan, 7, 8,
				nan, 10, 11, 12,
				13, 14, 15, nan,
			}
			g := G.NewGraph()
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 1, 4, 4), G.WithValue(denseF32(xd, 1, 1, 4, 4)), G.WithName("x"))
			am := NewArgmax("p")
			y, err := MaxPool2D(x, cfg, am)
			if err != nil {
				t.Fatal(err)
			}
			cost := G.Must(G.Sum(y))
			if _, err := G.Grad(cost, x); err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g, G.BindDualValues(x))
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			ncfg, _ := cfg.normalize()
			want, wantIdx := naiveMaxPool(xd, 1, 1, 4, 4, y.Shape()[2], y.Shape()[3], ncfg)
			got := y.Value().Data().([]float32)
			for i := range want {
				if !(got[i] == want[i] || math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
					t.Errorf("y[%d]: got %v, want %v", i, got[i], want[i])
				}
			}
			if !slices.Equal(am.Indices(), wantIdx) {
				t.Errorf("indices: got %v, want %v", am.Indices(), wantIdx)
			}
			gv, _ := x.Grad()
			var total float32
			for _, v := range gv.Data().([]float32) {
				total += v
			}
			if total != float32(len(want)) {
				t.Errorf("gradient sums to %v, want %d (one per pooled element)", total, len(want))
			}
		})
	}
}

// TestMaxPool2DNaNWide puts NaNs in a few windows of planes wide enough for the
// vectorised 2x2 rows (and their tails): those windows follow the NaN rule, all others and
// all indices match the naive reference.
func TestMaxPool2DNaNWide(t *testing.T) {
	const n, c, h, w = 2, 3, 6, 70
	x := randTensor(62, n, c, h, w)
	xd := x.Data().([]float32)
	nan := float32(math.NaN())
	for _, i := range []int{5, 71, 140 + 33, 3*h*w + 2*w + 64, len(xd) - 1} {
		xd[i] = nan
	}
	cfg := PoolConfig{KH: 2, KW: 2}
	am := NewArgmax("p")
	got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return MaxPool2D(in[0], cfg, am)
	})
	ncfg, _ := cfg.normalize()
	want, wantIdx := naiveMaxPool(xd, n, c, h, w, shape[2], shape[3], ncfg)
	for i := range want {
		if !(got[i] == want[i] || math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Errorf("y[%d]: got %v, want %v", i, got[i], want[i])
		}
	}
	if !slices.Equal(am.Indices(), wantIdx) {
		t.Errorf("indices differ from the naive reference")
	}
}

func TestMaxPool2DErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 5, 5), G.WithName("x"))
	for _, c := range []struct {
		cfg  PoolConfig
		want string
	}{
		{PoolConfig{}, "ops: maxpool2d: kernel 0x0, want at least 1x1"},
		{PoolConfig{KH: 2, KW: 2, StrideH: -1}, "stride -1x2, want at least 1x1"},
		{PoolConfig{KH: 2, KW: 2, Pad: Padding{Left: 2}}, "each side must be smaller than the kernel"},
		{PoolConfig{KH: 2, KW: 2, Pad: Padding{Top: -1}}, "negative padding"},
		{PoolConfig{KH: 7, KW: 2}, "ops: maxpool2d: input x has shape (1, 2, 5, 5), too small for k(7,2)"},
	} {
		_, err := MaxPool2D(x, c.cfg, nil)
		wantErr(t, err, c.want)
	}
	am := NewArgmax("pool1")
	if _, err := MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, am); err != nil {
		t.Fatal(err)
	}
	_, err := MaxPool2D(x, PoolConfig{KH: 3, KW: 3}, am)
	wantErr(t, err, `ops: maxpool2d: argmax "pool1" is already used by another pooling node`)
	v := G.NewMatrix(g, tensor.Float32, G.WithShape(5, 5), G.WithName("m"))
	_, err = MaxPool2D(v, PoolConfig{KH: 2, KW: 2}, nil)
	wantErr(t, err, "ops: maxpool2d: x m has shape (5, 5), want 4 dimensions")
}

// TestMaxPool2DNoMerge: two pools of one input recording into different Argmaxes stay two
// nodes, and each Argmax is filled.
func TestMaxPool2DNoMerge(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithValue(randTensor(62, 1, 2, 4, 4)), G.WithName("x"))
	a1, a2 := NewArgmax("a"), NewArgmax("b")
	y1 := G.Must(MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, a1))
	y2 := G.Must(MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, a2))
	if y1 == y2 {
		t.Fatal("pools with different Argmaxes merged")
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if len(a1.Indices()) != 8 || !slices.Equal(a1.Indices(), a2.Indices()) {
		t.Fatalf("indices: got %v and %v, want two equal sets of 8", a1.Indices(), a2.Indices())
	}
}

func BenchmarkMaxPool2D(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  PoolConfig
	}{{"2x2s2", PoolConfig{KH: 2, KW: 2}}, {"3x3s2", PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2}}} {
		b.Run(fmt.Sprintf("%s/4x64x112x112", c.name), func(b *testing.B) {
			g := G.NewGraph()
			xt := randTensor(1, 4, 64, 112, 112)
			x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 64, 112, 112), G.WithValue(xt), G.WithName("x"))
			y, err := MaxPool2D(x, c.cfg, NewArgmax("bench"))
			if err != nil {
				b.Fatal(err)
			}
			fwd := y.Op().(*maxPoolOp)
			dyt := randTensor(2, y.Shape()...)
			diff := &maxPoolDiffOp{fwd: fwd}
			if _, err := fwd.Do(xt); err != nil { // allocates the op-owned buffers
				b.Fatal(err)
			}
			b.Run("forward", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := fwd.Do(xt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("forward+backward", func(b *testing.B) {
				yv, _ := fwd.Do(xt)
				if _, err := diff.Do(yv, dyt); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					yv, err := fwd.Do(xt)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := diff.Do(yv, dyt); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
