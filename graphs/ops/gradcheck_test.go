package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradCase describes one finite-difference gradient check. build receives one node per
// input and returns the op's output; it is called twice (once for the graph with
// gradients, once for a forward-only graph), so stateful ops must be created inside it.
type gradCase struct {
	name   string
	inputs []*tensor.Dense // float32 values; perturbed in place and restored
	wrt    []bool          // which inputs to check (nil: all)
	build  func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)
	eps    float64 // central-difference step (default 1e-2)
	atol   float64 // default 2e-3
	rtol   float64 // default 2e-2
	maxEl  int     // elements checked per input, sampled (default 48)
}

// randTensor returns a seeded float32 tensor with values uniform in [-1, 1).
func randTensor(seed uint64, shape ...int) *tensor.Dense {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	n := 1
	for _, s := range shape {
		n *= s
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.Float64()*2 - 1)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

func bindInputs(g *G.ExprGraph, inputs []*tensor.Dense) []*G.Node {
	nodes := make([]*G.Node, len(inputs))
	for i, in := range inputs {
		nodes[i] = G.NewTensor(g, tensor.Float32, in.Dims(), G.WithShape(in.Shape()...),
			G.WithValue(in), G.WithName(fmt.Sprintf("in%d", i)))
	}
	return nodes
}

// checkGrad compares the analytic gradient of sum(out ⊙ R), R a fixed random tensor, with
// central differences computed in float64 from forward passes of a separate graph.
func checkGrad(t *testing.T, c gradCase) {
	t.Helper()
	eps, atol, rtol, maxEl := c.eps, c.atol, c.rtol, c.maxEl
	if eps == 0 {
		eps = 1e-2
	}
	if atol == 0 {
		atol = 2e-3
	}
	if rtol == 0 {
		rtol = 2e-2
	}
	if maxEl == 0 {
		maxEl = 48
	}
	wrt := c.wrt
	if wrt == nil {
		wrt = make([]bool, len(c.inputs))
		for i := range wrt {
			wrt[i] = true
		}
	}

	// Analytic gradients.
	g := G.NewGraph()
	in := bindInputs(g, c.inputs)
	out, err := c.build(g, in)
	if err != nil {
		t.Fatalf("%s: build: %v", c.name, err)
	}
	rT := randTensor(0xC0FFEE, out.Shape()...)
	rData := rT.Data().([]float32)
	r := G.NewTensor(g, tensor.Float32, out.Dims(), G.WithShape(out.Shape()...), G.WithValue(rT), G.WithName("R"))
	prod, err := G.HadamardProd(out, r)
	if err != nil {
		t.Fatalf("%s: mul: %v", c.name, err)
	}
	cost, err := G.Sum(prod)
	if err != nil {
		t.Fatalf("%s: sum: %v", c.name, err)
	}
	var diffNodes []*G.Node
	for i, w := range wrt {
		if w {
			diffNodes = append(diffNodes, in[i])
		}
	}
	if _, err := G.Grad(cost, diffNodes...); err != nil {
		t.Fatalf("%s: grad: %v", c.name, err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(diffNodes...))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("%s: run: %v", c.name, err)
	}
	analytic := make([][]float32, len(in))
	for i, w := range wrt {
		if !w {
			continue
		}
		gv, err := in[i].Grad()
		if err != nil {
			t.Fatalf("%s: input %d has no gradient: %v", c.name, i, err)
		}
		analytic[i] = append([]float32(nil), gv.Data().([]float32)...)
	}

	// Forward-only graph over the same input tensors.
	fg := G.NewGraph()
	fin := bindInputs(fg, c.inputs)
	fout, err := c.build(fg, fin)
	if err != nil {
		t.Fatalf("%s: build forward: %v", c.name, err)
	}
	fvm := G.NewTapeMachine(fg)
	defer fvm.Close()
	f := func() float64 {
		fvm.Reset()
		if err := fvm.RunAll(); err != nil {
			t.Fatalf("%s: forward: %v", c.name, err)
		}
		o := fout.Value().Data().([]float32)
		var s float64
		for j, v := range o {
			s += float64(v) * float64(rData[j])
		}
		return s
	}

	pick := rand.New(rand.NewPCG(42, 7))
	for i, w := range wrt {
		if !w {
			continue
		}
		data := c.inputs[i].Data().([]float32)
		idx := make([]int, 0, maxEl)
		if len(data) <= maxEl {
			for j := range data {
				idx = append(idx, j)
			}
		} else {
			for range maxEl {
				idx = append(idx, pick.IntN(len(data)))
			}
		}
		bad := 0
		for _, j := range idx {
			orig := data[j]
			data[j] = orig + float32(eps)
			fp := f()
			data[j] = orig - float32(eps)
			fm := f()
			data[j] = orig
			num := (fp - fm) / (2 * eps)
			got := float64(analytic[i][j])
			if math.IsNaN(got) || math.Abs(got-num) > atol+rtol*math.Abs(num) {
				bad++
				if bad <= 5 {
					t.Errorf("%s: d/d input%d[%d]: analytic %.6g, numeric %.6g", c.name, i, j, got, num)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: input %d: %d of %d sampled gradient entries differ (eps %g, atol %g, rtol %g)",
				c.name, i, bad, len(idx), eps, atol, rtol)
		}
	}
}

// TestGradCheckerOnGorgoniaOp makes sure the checker itself agrees with a known-good
// Gorgonia op (and would catch a wrong one).
func TestGradCheckerOnGorgoniaOp(t *testing.T) {
	checkGrad(t, gradCase{
		name:   "square",
		inputs: []*tensor.Dense{randTensor(1, 2, 3, 5)},
		build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			return G.Square(in[0])
		},
	})
}

// runWithGrads builds y = build(g, inputs) and cost Σ y⊙R (R fixed, random), takes the
// gradients with respect to in[skip:], runs the machine twice (the second run reusing
// every buffer, the gradients zeroed in between), and returns y, the gradients and the
// graph's ops by name, for comparing two ways of building the same layers bit for bit.
func runWithGrads(t *testing.T, inputs []*tensor.Dense, skip int, build func(*G.ExprGraph, []*G.Node) (*G.Node, error)) (out []float32, grads [][]float32, ops []string) {
	t.Helper()
	g := G.NewGraph()
	in := bindInputs(g, inputs)
	y, err := build(g, in)
	if err != nil {
		t.Fatal(err)
	}
	r := G.NewTensor(g, tensor.Float32, 4, G.WithShape(y.Shape()...), G.WithValue(randTensor(99, y.Shape()...)), G.WithName("R"))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, r))))
	wrt := in[skip:]
	if _, err := G.Grad(cost, wrt...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(wrt...), G.WithEngine(Engine{}))
	defer vm.Close()
	for range 2 {
		for _, p := range wrt {
			if gv, err := p.Grad(); err == nil && gv != nil {
				gv.(tensor.Tensor).Zero()
			}
		}
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
	}
	out = append(out, y.Value().Data().([]float32)...)
	for _, p := range wrt {
		gv, err := p.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, append([]float32(nil), gv.Data().([]float32)...))
	}
	for _, n := range g.AllNodes() {
		if n.Op() != nil {
			ops = append(ops, n.Op().String())
		}
	}
	return out, grads, ops
}

// sameRun fails t unless the outputs and every gradient of two runWithGrads agree to the
// bit; what names the reference.
func sameRun(t *testing.T, what string, y1, y0 []float32, g1, g0 [][]float32) {
	t.Helper()
	if !sameBits(y1, y0) {
		t.Fatalf("output differs from %s", what)
	}
	for i := range g0 {
		if !sameBits(g1[i], g0[i]) {
			t.Fatalf("gradient of input %d differs from %s", i, what)
		}
	}
}
