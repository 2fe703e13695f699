package ops

import (
	"fmt"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestConcatForward(t *testing.T) {
	t.Run("hand", func(t *testing.T) {
		a := denseF32([]float32{1, 2, 3, 4}, 2, 1, 2)                // n0: [1 2], n1: [3 4]
		b := denseF32([]float32{5, 6, 7, 8, 9, 10, 11, 12}, 2, 2, 2) // n0: [5 6][7 8], n1: [9 10][11 12]
		got, shape := runOnce(t, []*tensor.Dense{a, b}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return Concat(in[0], in[1])
		})
		want := []float32{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}
		if !shape.Eq(tensor.Shape{2, 3, 2}) || !slices.Equal(got, want) {
			t.Fatalf("got %v %v, want (2, 3, 2) %v", shape, got, want)
		}
	})
	t.Run("naive", func(t *testing.T) {
		chans := []int{3, 5, 1}
		n, h, w := 2, 5, 7
		var inputs []*tensor.Dense
		for i, c := range chans {
			inputs = append(inputs, randTensor(uint64(20+i), n, c, h, w))
		}
		var want []float32
		for b := range n {
			for i, c := range chans {
				want = append(want, inputs[i].Data().([]float32)[b*c*h*w:(b+1)*c*h*w]...)
			}
		}
		got, shape := runOnce(t, inputs, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return Concat(in...)
		})
		if !shape.Eq(tensor.Shape{n, 9, h, w}) || !slices.Equal(got, want) {
			t.Fatalf("got shape %v, data differs from the naive reference", shape)
		}
	})
}

func TestConcatGrad(t *testing.T) {
	cases := []struct {
		shapes [][]int
	}{
		{[][]int{{2, 3, 5, 7}, {2, 5, 5, 7}}},
		{[][]int{{1, 1, 3, 3}, {1, 2, 3, 3}, {1, 3, 3, 3}}},
		{[][]int{{3, 4}, {3, 1}}},
	}
	for _, c := range cases {
		var inputs []*tensor.Dense
		for i, s := range c.shapes {
			inputs = append(inputs, randTensor(uint64(30+i), s...))
		}
		checkGrad(t, gradCase{
			name:   fmt.Sprintf("concat%v", c.shapes),
			inputs: inputs,
			build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Concat(in...) },
		})
	}
	// The same node twice: its gradient is the sum of both slices.
	checkGrad(t, gradCase{
		name:   "concat(x, x)",
		inputs: []*tensor.Dense{randTensor(33, 2, 3, 3, 5)},
		build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Concat(in[0], in[0]) },
	})
}

func TestConcatErrors(t *testing.T) {
	g := G.NewGraph()
	a := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 4), G.WithName("a"))
	b := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 5, 4, 3), G.WithName("b"))
	c := G.NewTensor(g, tensor.Float32, 3, G.WithShape(2, 5, 4), G.WithName("c"))
	if y, err := Concat(a); err != nil || y != a {
		t.Fatalf("one input: got %v, %v, want a itself", y, err)
	}
	_, err := Concat()
	wantErr(t, err, "ops: concat: no inputs")
	_, err = Concat(a, b)
	wantErr(t, err, "ops: concat: input 1 b has shape (2, 5, 4, 3), want (2, 5, 4, 4)")
	_, err = Concat(a, c)
	wantErr(t, err, "ops: concat: input 1 c has shape (2, 5, 4), want (2, 3, 4, 4)")
}
