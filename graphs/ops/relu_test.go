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

// TestNoTrainModeOps: NewTapeMachine calls SetTraining on ops implementing TrainModeOp;
// these ops fix their mode when the graph is built.
func TestNoTrainModeOps(t *testing.T) {
	for _, op := range []any{
		&reluOp{}, &reluDiffOp{}, &flattenOp{}, &upsampleOp{}, &upsampleDiffOp{}, &concatOp{}, &concatDiffOp{},
		&dropoutOp{}, &dropoutDiffOp{}, &maxPoolOp{}, &maxPoolDiffOp{}, &maxUnpoolOp{}, &maxUnpoolDiffOp{},
		&bnOp{}, &bnDiffOp{}, &bnParamGradOp{},
	} {
		if _, ok := op.(G.TrainModeOp); ok {
			t.Errorf("%T implements TrainModeOp", op)
		}
		if _, ok := op.(G.Op); !ok {
			t.Errorf("%T does not implement Op", op)
		}
	}
}

// TestVariantsStayApart builds ops that differ in one parameter on the same input and
// checks that hash-consing keeps every one its own node (and merges exact repeats).
func TestVariantsStayApart(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 8, 8), G.WithName("x"))
	gamma := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("gamma"))
	beta := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("beta"))
	bn := func(name string, momentum, eps float64, training bool) func() (*G.Node, error) {
		st := NewBatchNormState(name, 3)
		st.Momentum, st.Eps = momentum, eps
		return func() (*G.Node, error) { return BatchNorm2D(x, gamma, beta, st, training) }
	}
	pool := func(cfg PoolConfig) func() (*G.Node, error) {
		return func() (*G.Node, error) { return MaxPool2D(x, cfg, nil) }
	}
	st := &DropoutState{Seed: 1, Layer: 1}
	drop := func(p float64, st *DropoutState) func() (*G.Node, error) {
		return func() (*G.Node, error) { return Dropout(x, p, st, true) }
	}
	builds := []func() (*G.Node, error){
		bn("a", 0.1, 1e-5, true), bn("a", 0.1, 1e-5, false), bn("b", 0.1, 1e-5, true),
		bn("c", 0.2, 1e-5, true), bn("d", 0.1, 1e-3, true),
		pool(PoolConfig{KH: 2, KW: 2}), pool(PoolConfig{KH: 2, KW: 2, CeilMode: true}),
		pool(PoolConfig{KH: 2, KW: 2, StrideH: 1, StrideW: 1}), pool(PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2}),
		pool(PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Padding{Top: 1}}),
		pool(PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Padding{Bottom: 1}}),
		func() (*G.Node, error) { return MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, NewArgmax("p1")) },
		func() (*G.Node, error) { return MaxPool2D(x, PoolConfig{KH: 2, KW: 2}, NewArgmax("p2")) },
		drop(0.5, st), drop(0.4, st), drop(0.5, &DropoutState{Seed: 1, Layer: 2}),
		func() (*G.Node, error) { return Upsample2D(x, 2) },
		func() (*G.Node, error) { return Upsample2D(x, 3) },
		func() (*G.Node, error) { return ReLU(x) },
		func() (*G.Node, error) { return Flatten(x) },
		func() (*G.Node, error) { return Concat(x, x) },
		func() (*G.Node, error) { return Concat(x, x, x) },
	}
	seen := map[*G.Node]int{}
	for i, b := range builds {
		n, err := b()
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		if j, ok := seen[n]; ok {
			t.Errorf("builds %d (%v) and %d merged", i, n.Op(), j)
		}
		seen[n] = i
		// Building the same thing again (same state) gives the same node.
		if i != 11 && i != 12 { // an Argmax is single-use
			if again, err := b(); err != nil || again != n {
				t.Errorf("build %d repeated: got %v, %v, want the same node", i, again, err)
			}
		}
	}
}
