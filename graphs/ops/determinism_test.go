package ops

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/graphs/ops/gemm"
)

// TestConvSameBitsAnyThreads: a convolution's output and its three gradients have the
// same bits at GOMAXPROCS 1, 2, 3 and 4, for every gemm kernel family, on shapes that
// cut the filter gradient's sum into several parts (im2col: several images and tiles;
// Winograd: several chunks, and a layer wide enough for one part with parallel phases).
func TestConvSameBitsAnyThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs each convolution 4 times per kernel family")
	}
	cases := []convCase{
		{name: "im2col", n: 5, cin: 3, h: 40, w: 36, cout: 16, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvIm2col},
		{name: "im2col-5x5s2", n: 3, cin: 24, h: 30, w: 30, cout: 32, kh: 5, kw: 5, sh: 2, sw: 2, same: true, bias: true},
		{name: "direct-1x1", n: 4, cin: 32, h: 20, w: 20, cout: 21, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
		{name: "winograd-parts", n: 8, cin: 16, h: 64, w: 64, cout: 16, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, relu: true},
		{name: "winograd-wide", n: 2, cin: 176, h: 8, w: 8, cout: 180, kh: 3, kw: 3, sh: 1, sw: 1, same: true},
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for _, name := range gemm.Kernels() {
		k, err := gemm.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				var want [][]uint32
				for _, procs := range []int{1, 2, 3, 4} {
					runtime.GOMAXPROCS(procs)
					got := convOutputsBits(t, c, k)
					runtime.GOMAXPROCS(prev)
					if want == nil {
						want = got
						continue
					}
					for i := range want {
						if d := diffBits(got[i], want[i]); d > 0 {
							t.Errorf("GOMAXPROCS %d: output %d of %d (forward, dx, dw, db) differs in %d of %d values", procs, i, len(want), d, len(want[i]))
						}
					}
				}
			})
		}
	}
}

// convOutputsBits runs c's forward op and gradient ops once and returns their outputs'
// bits.
func convOutputsBits(t *testing.T, c convCase, k gemm.Kernel) [][]uint32 {
	t.Helper()
	g := G.NewGraph()
	vals := c.inputs(11)
	in := bindInputs(g, vals)
	cfg := c.cfg()
	cfg.Gemm = k
	var b *G.Node
	if c.bias {
		b = in[2]
	}
	y, err := Conv2D(in[0], in[1], b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyv := randTensor(12, y.Shape()...)
	dy := G.NewTensor(g, tensor.Float32, 4, G.WithShape(y.Shape()...), G.WithName("dy"), G.WithValue(dyv))
	grads, err := y.Op().(G.SDOp).SymDiff(G.Nodes(in), y, dy)
	if err != nil {
		t.Fatal(err)
	}
	fwd := []G.Value{vals[0], vals[1]}
	if c.bias {
		fwd = append(fwd, vals[2])
	}
	yv, err := y.Op().Do(fwd...)
	if err != nil {
		t.Fatal(err)
	}
	out := [][]uint32{bitsOf(yv)}
	dyIn := dyv
	if c.relu { // the gradient ops see the fused ReLU's masked gradient
		dyIn = reluMasked(dyv, yv)
	}
	for i, gn := range grads {
		if gn == nil {
			continue
		}
		args := [][]G.Value{{vals[1]}, {vals[0]}, {}}[i]
		if gn.Op().Arity() == len(args)+2 { // it masks dy by the output itself
			args = append(args, dyv, yv)
		} else {
			args = append(args, dyIn)
		}
		v, err := gn.Op().Do(args...)
		if err != nil {
			t.Fatal(fmt.Errorf("gradient %d: %w", i, err))
		}
		out = append(out, bitsOf(v))
	}
	return out
}

func reluMasked(dy *tensor.Dense, y G.Value) *tensor.Dense {
	d := append([]float32(nil), dy.Data().([]float32)...)
	for i, v := range y.Data().([]float32) {
		if v <= 0 {
			d[i] = 0
		}
	}
	return tensor.New(tensor.WithShape(dy.Shape().Clone()...), tensor.WithBacking(d))
}

func bitsOf(v G.Value) []uint32 {
	d := v.Data().([]float32)
	b := make([]uint32, len(d))
	for i, x := range d {
		b[i] = math.Float32bits(x)
	}
	return b
}

func diffBits(a, b []uint32) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
