package ops

import (
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// poolUnpool builds MaxUnpool2D(MaxPool2D(x)) back to x's size.
func poolUnpool(x *G.Node, cfg PoolConfig) (*G.Node, error) {
	am := NewArgmax("pool")
	y, err := MaxPool2D(x, cfg, am)
	if err != nil {
		return nil, err
	}
	s := x.Shape()
	return MaxUnpool2D(y, am, s[2], s[3])
}

var unpoolCases = []poolCase{
	{"2x2s2", 2, 3, 6, 8, PoolConfig{KH: 2, KW: 2}, 3, 4},
	{"2x2s2 odd", 1, 5, 7, 9, PoolConfig{KH: 2, KW: 2}, 3, 4},
	{"2x2s2 odd ceil", 2, 3, 7, 9, PoolConfig{KH: 2, KW: 2, CeilMode: true}, 4, 5},
	{"3x3s2 pad1 (overlapping)", 2, 3, 7, 7, PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1)}, 4, 4},
	{"3x3s1 asym pad (overlapping)", 1, 3, 5, 6, PoolConfig{KH: 3, KW: 3, StrideH: 1, StrideW: 1, Pad: Padding{Top: 1, Bottom: 0, Left: 0, Right: 2}}, 4, 6},
}

// TestMaxUnpool2DRestoresMaxima: unpool(pool(x)) is x at the argmax positions and 0
// elsewhere.
func TestMaxUnpool2DRestoresMaxima(t *testing.T) {
	for i, c := range unpoolCases {
		t.Run(c.name, func(t *testing.T) {
			x := spreadTensor(uint64(80+i), 0.01, c.n, c.c, c.h, c.w)
			xd := x.Data().([]float32)
			cfg, _ := c.cfg.normalize()
			_, idx := naiveMaxPool(xd, c.n, c.c, c.h, c.w, c.oh, c.ow, cfg)
			want := make([]float32, len(xd))
			hw, ohw := c.h*c.w, c.oh*c.ow
			for j, pos := range idx {
				p := j / ohw
				want[p*hw+int(pos)] = xd[p*hw+int(pos)]
			}
			got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return poolUnpool(in[0], c.cfg)
			})
			if !shape.Eq(tensor.Shape{c.n, c.c, c.h, c.w}) || !slices.Equal(got, want) {
				t.Fatalf("got %v %v, want %v %v", shape, got, x.Shape(), want)
			}
		})
	}
}

// TestMaxUnpool2DLastWins unpools values other than the maxima through overlapping windows:
// where two windows share an argmax, the later one's value is written (PyTorch, CPU).
func TestMaxUnpool2DLastWins(t *testing.T) {
	c := unpoolCases[3]
	xt := spreadTensor(90, 0.01, c.n, c.c, c.h, c.w)
	vt := randTensor(91, c.n, c.c, c.oh, c.ow)
	cfg, _ := c.cfg.normalize()
	_, idx := naiveMaxPool(xt.Data().([]float32), c.n, c.c, c.h, c.w, c.oh, c.ow, cfg)
	want := make([]float32, c.n*c.c*c.h*c.w)
	dups := 0
	seen := map[int]bool{}
	for j, v := range vt.Data().([]float32) {
		pos := j/(c.oh*c.ow)*c.h*c.w + int(idx[j])
		if seen[pos] {
			dups++
		}
		seen[pos] = true
		want[pos] = v
	}
	if dups == 0 {
		t.Fatal("test input has no shared maxima; pick another seed")
	}
	got, _ := runOnce(t, []*tensor.Dense{xt, vt}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		am := NewArgmax("pool")
		if _, err := MaxPool2D(in[0], c.cfg, am); err != nil {
			return nil, err
		}
		return MaxUnpool2D(in[1], am, c.h, c.w)
	})
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMaxUnpool2DGrad(t *testing.T) {
	for i, c := range unpoolCases {
		// With respect to the unpooled values (exact also where windows overlap: a value
		// that a later window overwrote gets no gradient).
		checkGrad(t, gradCase{
			name:   "maxunpool wrt x " + c.name,
			inputs: []*tensor.Dense{spreadTensor(uint64(100+i), 0.05, c.n, c.c, c.h, c.w), randTensor(uint64(110+i), c.n, c.c, c.oh, c.ow)},
			wrt:    []bool{false, true},
			build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				am := NewArgmax("pool")
				if _, err := MaxPool2D(in[0], c.cfg, am); err != nil {
					return nil, err
				}
				return MaxUnpool2D(in[1], am, c.h, c.w)
			},
		})
		// Through both: SegNet's pool → unpool.
		checkGrad(t, gradCase{
			name:   "maxunpool∘maxpool " + c.name,
			inputs: []*tensor.Dense{spreadTensor(uint64(120+i), 0.05, c.n, c.c, c.h, c.w)},
			build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return poolUnpool(in[0], c.cfg) },
		})
	}
}

func TestMaxUnpool2DErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 6, 6), G.WithName("x"))
	am := NewArgmax("pool1")
	y := G.Must(MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, am))
	other := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 4, 3), G.WithName("z"))
	g2 := G.NewGraph()
	x2 := G.NewTensor(g2, tensor.Float32, 4, G.WithShape(1, 2, 3, 3), G.WithName("x2"))
	for _, c := range []struct {
		x    *G.Node
		idx  *Argmax
		h, w int
		want string
	}{
		{y, nil, 6, 6, "ops: maxunpool2d: nil *Argmax"},
		{y, NewArgmax("fresh"), 6, 6, `ops: maxunpool2d: argmax "fresh" has not been passed to MaxPool2D`},
		{other, am, 6, 6, `ops: maxunpool2d: x z has shape (1, 2, 4, 3), want the pooled shape (1, 2, 3, 3) of argmax "pool1"`},
		{y, am, 7, 6, `ops: maxunpool2d: output size 7x6, want 6x6`},
		{x2, am, 6, 6, `ops: maxunpool2d: argmax "pool1" belongs to another graph`},
	} {
		_, err := MaxUnpool2D(c.x, c.idx, c.h, c.w)
		wantErr(t, err, c.want)
	}
}

func BenchmarkMaxUnpool2D(b *testing.B) {
	g := G.NewGraph()
	xt := randTensor(1, 4, 64, 112, 112)
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 64, 112, 112), G.WithValue(xt), G.WithName("x"))
	am := NewArgmax("bench")
	y := G.Must(MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, am))
	u := G.Must(MaxUnpool2D(y, am, 112, 112))
	yv, err := y.Op().Do(xt)
	if err != nil {
		b.Fatal(err)
	}
	op := u.Op().(*maxUnpoolOp)
	diff := &maxUnpoolDiffOp{am: am}
	dyt := randTensor(2, 4, 64, 112, 112)
	step := func() {
		if _, err := op.Do(yv, yv); err != nil {
			b.Fatal(err)
		}
		if _, err := diff.Do(yv, dyt); err != nil {
			b.Fatal(err)
		}
	}
	step() // allocates the op-owned buffers
	b.Run("forward+backward/4x64x112x112", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			step()
		}
	})
}
