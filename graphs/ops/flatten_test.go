package ops

import (
	"fmt"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestFlattenForward(t *testing.T) {
	x := randTensor(3, 2, 3, 4, 5)
	want := slices.Clone(x.Data().([]float32))
	got, shape := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return Flatten(in[0])
	})
	if !shape.Eq(tensor.Shape{2, 60}) {
		t.Fatalf("shape: got %v, want (2, 60)", shape)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestFlattenTwoDimsIsIdentity(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 7), G.WithName("x"))
	y, err := Flatten(x)
	if err != nil {
		t.Fatal(err)
	}
	if y != x {
		t.Fatalf("got a new node %v, want x itself", y)
	}
}

func TestFlattenGrad(t *testing.T) {
	for _, shape := range [][]int{{2, 3, 5, 7}, {1, 5, 3}, {3, 2, 1, 1, 2}} {
		checkGrad(t, gradCase{
			name:   fmt.Sprintf("flatten%v", shape),
			inputs: []*tensor.Dense{randTensor(7, shape...)},
			build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return Flatten(in[0]) },
		})
	}
}

func TestFlattenErrors(t *testing.T) {
	g := G.NewGraph()
	v := G.NewVector(g, tensor.Float32, G.WithShape(5), G.WithName("v"))
	_, err := Flatten(v)
	wantErr(t, err, "ops: flatten: x v has shape (5), want at least 2 dimensions")
}
