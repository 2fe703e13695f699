package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// buildFn builds an op's output from one node per input (as gradCase.build).
type buildFn func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)

// runOnce builds a graph over inputs, runs it forward once and returns a copy of the
// output's data and its shape.
func runOnce(t *testing.T, inputs []*tensor.Dense, build buildFn) ([]float32, tensor.Shape) {
	t.Helper()
	g := G.NewGraph()
	out, err := build(g, bindInputs(g, inputs))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	return slices.Clone(out.Value().Data().([]float32)), out.Shape()
}

// denseF32 wraps data in a tensor of the given shape.
func denseF32(data []float32, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// spreadTensor returns a tensor of distinct values at least gap apart (a seeded
// permutation of gap·(k - n/2)), so that max pooling has no ties and finite differences
// with eps < gap/2 never cross one.
func spreadTensor(seed uint64, gap float32, shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	r := rand.New(rand.NewPCG(seed, 99))
	data := make([]float32, n)
	for i, k := range r.Perm(n) {
		data[i] = gap * float32(k-n/2)
	}
	return denseF32(data, shape...)
}

// awayFromZero returns a seeded tensor with |values| in [0.1, 1.1).
func awayFromZero(seed uint64, shape ...int) *tensor.Dense {
	t := randTensor(seed, shape...)
	for i, v := range t.Data().([]float32) {
		if v < 0 {
			t.Data().([]float32)[i] = v - 0.1
		} else {
			t.Data().([]float32)[i] = v + 0.1
		}
	}
	return t
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want one containing %q", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("got error %q, want one containing %q", err, substr)
	}
}

func TestReLUForward(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{-2, -0.5, 0, 0.25, 3, nan, float32(math.Inf(1)), float32(math.Inf(-1))}
	got, shape := runOnce(t, []*tensor.Dense{denseF32(slices.Clone(x), 2, 4)}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return ReLU(in[0])
	})
	want := []float32{0, 0, 0, 0.25, 3, nan, float32(math.Inf(1)), 0}
	if !shape.Eq(tensor.Shape{2, 4}) {
		t.Fatalf("shape: got %v, want (2, 4)", shape)
	}
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Errorf("relu(%v): got %v, want %v", x[i], got[i], want[i])
		}
	}
}

func TestReLULarge(t *testing.T) {
	// More than one parallel block.
	x := randTensor(5, 3, 7, 61, 67)
	xd := slices.Clone(x.Data().([]float32))
	got, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return ReLU(in[0]) })
	for i, v := range xd {
		if want := max(v, 0); got[i] != want {
			t.Fatalf("relu(x[%d] = %v): got %v, want %v", i, v, got[i], want)
		}
	}
}

func TestReLUGrad(t *testing.T) {
	for _, shape := range [][]int{{2, 3, 5, 7}, {1, 5, 3, 3}, {3, 11}, {4, 9, 1, 1}} {
		checkGrad(t, gradCase{
			name:   fmt.Sprintf("relu%v", shape),
			inputs: []*tensor.Dense{awayFromZero(uint64(len(shape)+shape[0]), shape...)},
			build:  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) { return ReLU(in[0]) },
		})
	}
}

func TestReLUErrors(t *testing.T) {
	g := G.NewGraph()
	x64 := G.NewTensor(g, tensor.Float64, 2, G.WithShape(2, 2), G.WithName("x64"))
	_, err := ReLU(x64)
	wantErr(t, err, "ops: relu: x x64 has dtype float64, want float32")
	_, err = ReLU(nil)
	wantErr(t, err, "ops: relu: x is nil")
}
