package losses

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// builder makes a loss node from a logits and a labels node.
type builder func(logits, labels *G.Node) (*G.Node, error)

func ceBuilder(o CEOptions) builder {
	return func(x, y *G.Node) (*G.Node, error) { return CrossEntropy(x, y, o) }
}

func diceBuilder(o DiceOptions) builder {
	return func(x, y *G.Node) (*G.Node, error) { return Dice(x, y, o) }
}

func specBuilder(s Spec) builder {
	return func(x, y *G.Node) (*G.Node, error) { return Build(x, y, s) }
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randLogits returns seeded float32 logits uniform in [-scale, scale).
func randLogits(seed uint64, scale float64, shape ...int) *tensor.Dense {
	r := newRand(seed)
	data := make([]float32, tensor.Shape(shape).TotalSize())
	for i := range data {
		data[i] = float32((r.Float64()*2 - 1) * scale)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// randLabels returns seeded labels in [0, c), a fraction ignoreFrac of them set to ignore.
func randLabels(seed uint64, c int, ignoreFrac float64, ignore int, shape ...int) *tensor.Dense {
	r := newRand(seed)
	data := make([]int, tensor.Shape(shape).TotalSize())
	for i := range data {
		data[i] = r.IntN(c)
		if r.Float64() < ignoreFrac {
			data[i] = ignore
		}
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

func dense32(shape []int, v []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

func denseInt(shape []int, v []int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(v))
}

// inputs adds a float32 logits node and a tensor.Int labels node bound to the values.
func inputs(g *G.ExprGraph, x, y *tensor.Dense) (*G.Node, *G.Node) {
	xn := G.NewTensor(g, tensor.Float32, x.Dims(), G.WithShape(x.Shape()...), G.WithName("logits"), G.WithValue(x))
	yn := G.NewTensor(g, tensor.Int, y.Dims(), G.WithShape(y.Shape()...), G.WithName("labels"), G.WithValue(y))
	return xn, yn
}

// buildGraph makes a graph holding the logits and labels nodes bound to x and y, and
// the loss b builds from them.
func buildGraph(t *testing.T, b builder, x, y *tensor.Dense) (g *G.ExprGraph, xn, loss *G.Node) {
	t.Helper()
	g = G.NewGraph()
	xn, yn := inputs(g, x, y)
	loss, err := b(xn, yn)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return g, xn, loss
}

// forwardOnly evaluates a loss on a graph without gradients and returns its terms,
// read in float64 from the op state.
type forwardOnly struct {
	vm   G.VM
	loss *G.Node
}

func newForwardOnly(t *testing.T, b builder, x, y *tensor.Dense) *forwardOnly {
	t.Helper()
	g, _, loss := buildGraph(t, b, x, y)
	return &forwardOnly{vm: G.NewTapeMachine(g), loss: loss}
}

func (f *forwardOnly) eval(t *testing.T) Terms {
	t.Helper()
	defer f.vm.Reset()
	if err := f.vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	terms, err := LastTerms(f.loss)
	if err != nil {
		t.Fatal(err)
	}
	return terms
}

// withGrad evaluates scale·loss and its gradient with respect to the logits, as
// training does: G.Grad, then a TapeMachine with BindDualValues.
func withGrad(t *testing.T, b builder, x, y *tensor.Dense, scale float32) (float32, []float32) {
	t.Helper()
	g, xn, loss := buildGraph(t, b, x, y)
	cost := loss
	if scale != 1 {
		cost = G.Must(G.Mul(loss, G.NewConstant(scale)))
	}
	if _, err := G.Grad(cost, xn); err != nil {
		t.Fatalf("grad: %v", err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(xn))
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatalf("run: %v", err)
	}
	gv, err := xn.Grad()
	if err != nil {
		t.Fatal(err)
	}
	grad := append([]float32(nil), gv.Data().([]float32)...)
	return loss.Value().Data().(float32), grad
}

// fdGrad returns the central-difference gradient of scale·loss with respect to every
// logit, in float64: each side is one forward run of the op, read from its float64
// state, and the step is the one actually taken in float32.
func fdGrad(t *testing.T, b builder, x, y *tensor.Dense, scale, eps float64) []float64 {
	t.Helper()
	f := newForwardOnly(t, b, x, y)
	data := x.Data().([]float32)
	grad := make([]float64, len(data))
	for i, v := range data {
		hi, lo := float32(float64(v)+eps), float32(float64(v)-eps)
		data[i] = hi
		th := f.eval(t)
		data[i] = lo
		tl := f.eval(t)
		data[i] = v
		grad[i] = scale * (th.Total - tl.Total) / (float64(hi) - float64(lo))
	}
	return grad
}

func close64(got, want, atol, rtol float64) bool {
	return math.Abs(got-want) <= atol+rtol*math.Abs(want)
}

// refLoss is a direct float64 transcription of the definitions (PyTorch's
// CrossEntropyLoss with weight, ignore_index and label_smoothing; soft Dice), one target
// at a time, for comparison with the fused op. x is (n, c, hw) row-major.
func refLoss(x []float32, labels []int, n, c, hw int, cfg config) float64 {
	logp := func(i, j int) []float64 { // log-softmax of target (i, j)
		m := math.Inf(-1)
		for cl := range c {
			m = max(m, float64(x[(i*c+cl)*hw+j]))
		}
		var s float64
		for cl := range c {
			s += math.Exp(float64(x[(i*c+cl)*hw+j]) - m)
		}
		out := make([]float64, c)
		for cl := range c {
			out[cl] = float64(x[(i*c+cl)*hw+j]) - m - math.Log(s)
		}
		return out
	}
	var nll, smooth, wsum float64
	I, P, Y := make([]float64, c), make([]float64, c), make([]float64, c)
	for i := range n {
		for j := range hw {
			yv := labels[i*hw+j]
			if yv == cfg.ignore {
				continue
			}
			lp := logp(i, j)
			nll += -cfg.weight(yv) * lp[yv]
			wsum += cfg.weight(yv)
			for cl := range c {
				smooth += -cfg.weight(cl) * lp[cl]
				p := math.Exp(lp[cl])
				P[cl] += p
				if cl == yv {
					I[cl] += p
					Y[cl]++
				}
			}
		}
	}
	var total float64
	if cfg.ceCoef != 0 && wsum > 0 {
		eps := cfg.smoothing
		total += cfg.ceCoef * ((1-eps)*nll/wsum + eps/float64(c)*smooth/wsum)
	}
	if cfg.diceCoef != 0 {
		var sum float64
		var k int
		for cl := range c {
			if cfg.presentOnly && Y[cl] == 0 {
				continue
			}
			k++
			sum += (2*I[cl] + cfg.diceSmooth) / (P[cl] + Y[cl] + cfg.diceSmooth)
		}
		if k > 0 {
			total += cfg.diceCoef * (1 - sum/float64(k))
		}
	}
	return total
}
