package ops

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// newOut is a float32 tensor of the given shape over data, with Engine.
func newOut(shape tensor.Shape, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithEngine(Engine{}), tensor.WithBacking(data))
}

// TestEngineAdd checks Engine's Add against the standard engine's, bit for bit:
// into a reuse tensor, in place, and the cases it hands back (a new tensor, an
// increment, a transposed operand), on sizes around the vector width.
func TestEngineAdd(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 300, 1 << 16} {
		x := randSlice(1, n, 1)
		y := randSlice(2, n, 1e3)
		want := make([]float32, n)
		for i := range want {
			want[i] = x[i] + y[i]
		}
		shape := tensor.Shape{n}
		fresh := func() (a, b *tensor.Dense) {
			return newOut(shape, append([]float32(nil), x...)), newOut(shape, append([]float32(nil), y...))
		}
		a, b := fresh()
		reuse := tensor.New(tensor.WithShape(n), tensor.Of(tensor.Float32))
		got, err := tensor.Add(a, b, tensor.WithReuse(reuse))
		if err != nil || got != tensor.Tensor(reuse) || !sameBits(reuse.Float32s(), want) {
			t.Errorf("n=%d reuse: err %v, same tensor %v, bits equal %v", n, err, got == tensor.Tensor(reuse), sameBits(reuse.Float32s(), want))
		}
		a, b = fresh()
		if got, err := tensor.Add(a, b, tensor.UseUnsafe()); err != nil || got != tensor.Tensor(a) || !sameBits(a.Float32s(), want) {
			t.Errorf("n=%d unsafe: err %v, bits equal %v", n, err, sameBits(a.Float32s(), want))
		}
		a, b = fresh()
		if got, err := tensor.Add(a, b); err != nil || got == tensor.Tensor(a) || !sameBits(got.Data().([]float32), want) || !sameBits(a.Float32s(), x) {
			t.Errorf("n=%d safe: err %v (a must be left as it was)", n, err)
		}
		a, b = fresh()
		incr := tensor.New(tensor.WithShape(n), tensor.WithBacking(append([]float32(nil), y...)))
		if _, err := tensor.Add(a, b, tensor.WithIncr(incr)); err != nil {
			t.Fatal(err)
		}
		for i, v := range incr.Float32s() {
			if v != y[i]+want[i] {
				t.Fatalf("n=%d incr: [%d] = %v, want %v", n, i, v, y[i]+want[i])
			}
		}
	}
	// A transposed operand goes to the standard engine, which reads it in its logical order.
	a := newOut(tensor.Shape{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	bt := newOut(tensor.Shape{3, 2}, []float32{10, 20, 30, 40, 50, 60})
	if err := bt.T(); err != nil {
		t.Fatal(err)
	}
	got, err := tensor.Add(a, bt)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{11, 32, 53, 24, 45, 66}; !sameBits(got.Data().([]float32), want) {
		t.Errorf("transposed b: %v, want %v", got.Data(), want)
	}
}

// TestGradSumEngine runs a graph whose node h has two gradient contributions on a
// machine with Engine: the values carry it, and the summed gradient is right.
func TestGradSumEngine(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(1, 2, 4, 4), G.WithName("x"),
		G.WithValue(tensor.New(tensor.WithShape(1, 2, 4, 4), tensor.WithBacking(randSlice(3, 32, 1)))))
	w := G.NewTensor(g, G.Float32, 4, G.WithShape(2, 2, 3, 3), G.WithName("w"),
		G.WithValue(tensor.New(tensor.WithShape(2, 2, 3, 3), tensor.WithBacking(randSlice(4, 36, 0.3)))))
	h, err := ReLU(x)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Conv2D(h, w, nil, ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1)})
	if err != nil {
		t.Fatal(err)
	}
	// h feeds the convolution and the sum below: two gradient contributions.
	s, err := G.Add(y, h)
	if err != nil {
		t.Fatal(err)
	}
	cost, err := G.Sum(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(cost, x, w); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g, G.WithEngine(Engine{}))
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*G.Node{h, y, s} {
		if e := n.Value().(*tensor.Dense).Engine(); e != (Engine{}) {
			t.Fatalf("%v: engine %T, want ops.Engine", n, e)
		}
	}
	xg, err := x.Grad()
	if err != nil {
		t.Fatal(err)
	}
	// d cost / d h = 1 + Σ over the outputs the convolution reads h into: w summed
	// over output channels, flipped, at each position in range; times the ReLU mask.
	hv := h.Value().Data().([]float32)
	wv := w.Value().Data().([]float32)
	for ci := 0; ci < 2; ci++ {
		for r := 0; r < 4; r++ {
			for q := 0; q < 4; q++ {
				want := 1.0
				for co := 0; co < 2; co++ {
					for a := 0; a < 3; a++ {
						for b := 0; b < 3; b++ {
							if yr, yq := r+1-a, q+1-b; yr >= 0 && yr < 4 && yq >= 0 && yq < 4 {
								want += float64(wv[((co*2+ci)*3+a)*3+b])
							}
						}
					}
				}
				i := (ci*4+r)*4 + q
				if hv[i] <= 0 {
					want = 0
				}
				if got := float64(xg.Data().([]float32)[i]); got < want-1e-5 || got > want+1e-5 {
					t.Fatalf("dx[%d] = %v, want %v", i, got, want)
				}
			}
		}
	}
}
