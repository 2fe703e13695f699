package ops

import (
	"fmt"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveUpsample is the textbook nearest-neighbour upsampling.
func naiveUpsample(x []float32, n, c, h, w, s int) []float32 {
	y := make([]float32, n*c*h*s*w*s)
	for p := range n * c {
		for i := range h * s {
			for j := range w * s {
				y[(p*h*s+i)*w*s+j] = x[(p*h+i/s)*w+j/s]
			}
		}
	}
	return y
}

func TestUpsample2DForward(t *testing.T) {
	t.Run("hand", func(t *testing.T) {
		x := denseF32([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
		got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return Upsample2D(in[0], 2)
		})
		want := []float32{
			1, 1, 2, 2,
			1, 1, 2, 2,
			3, 3, 4, 4,
			3, 3, 4, 4,
		}
		if !shape.Eq(tensor.Shape{1, 1, 4, 4}) || !slices.Equal(got, want) {
			t.Fatalf("got %v %v, want (1, 1, 4, 4) %v", shape, got, want)
		}
	})
	for _, c := range []struct{ n, c, h, w, s int }{{2, 3, 5, 7, 2}, {1, 2, 3, 4, 3}, {3, 5, 1, 1, 4}, {2, 3, 41, 43, 2}} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			x := randTensor(11, c.n, c.c, c.h, c.w)
			want := naiveUpsample(x.Data().([]float32), c.n, c.c, c.h, c.w, c.s)
			got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return Upsample2D(in[0], c.s)
			})
			if !shape.Eq(tensor.Shape{c.n, c.c, c.h * c.s, c.w * c.s}) || !slices.Equal(got, want) {
				t.Fatalf("got shape %v, data differs from the naive reference", shape)
			}
		})
	}
}

// TestUpsample2DMatchesGorgonia checks the fast op against Gorgonia's own (correct, slow) one.
func TestUpsample2DMatchesGorgonia(t *testing.T) {
	x := randTensor(12, 2, 3, 5, 4)
	ours, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Upsample2D(in[0], 3) })
	theirs, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return G.Upsample2D(in[0], 3) })
	if !slices.Equal(ours, theirs) {
		t.Fatal("Upsample2D differs from gorgonia.Upsample2D")
	}
}

func TestUpsample2DGrad(t *testing.T) {
	for _, c := range []struct{ n, c, h, w, s int }{{2, 3, 5, 7, 2}, {1, 2, 3, 4, 3}, {3, 5, 1, 1, 2}, {1, 2, 3, 35, 2}} {
		checkGrad(t, gradCase{
			name:   fmt.Sprintf("upsample%+v", c),
			inputs: []*tensor.Dense{randTensor(13, c.n, c.c, c.h, c.w)},
			build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Upsample2D(in[0], c.s) },
		})
	}
}

func TestUpsample2DScaleOneAndErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 3, 3), G.WithName("x"))
	if y, err := Upsample2D(x, 1); err != nil || y != x {
		t.Fatalf("scale 1: got %v, %v, want x itself", y, err)
	}
	_, err := Upsample2D(x, 0)
	wantErr(t, err, "ops: upsample2d: scale 0, want >= 1")
	m := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 3), G.WithName("m"))
	_, err = Upsample2D(m, 2)
	wantErr(t, err, "ops: upsample2d: x m has shape (3, 3), want 4 dimensions")
}

// TestUpsample2DDiffExact compares the gradient op with the naive block sums, in the same
// order ((r0[2j] + r0[2j+1]) + (r1[2j] + r1[2j+1]) for scale 2), on widths that exercise
// the vectorised rows and their tails.
func TestUpsample2DDiffExact(t *testing.T) {
	for _, c := range []struct{ n, c, h, w, s int }{{2, 3, 5, 16, 2}, {1, 2, 4, 43, 2}, {2, 1, 3, 7, 2}, {1, 2, 3, 20, 3}} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			in := tensor.Shape{c.n, c.c, c.h, c.w}
			out := tensor.Shape{c.n, c.c, c.h * c.s, c.w * c.s}
			dy := randTensor(17, out...)
			v, err := (&upsampleDiffOp{in: in, out: out, scale: c.s}).Do(dy)
			if err != nil {
				t.Fatal(err)
			}
			got := v.Data().([]float32)
			d := dy.Data().([]float32)
			ws := c.w * c.s
			for p := range c.n * c.c {
				for i := range c.h {
					for j := range c.w {
						var want float32
						for k := range c.s {
							var acc float32
							for q := range c.s {
								acc += d[(p*c.h*c.s+i*c.s+k)*ws+j*c.s+q]
							}
							want += acc
						}
						if g := got[(p*c.h+i)*c.w+j]; g != want {
							t.Fatalf("dx[%d,%d,%d] = %v, want %v", p, i, j, g, want)
						}
					}
				}
			}
		})
	}
}
