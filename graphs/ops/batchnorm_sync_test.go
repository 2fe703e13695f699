package ops

import (
	"math"
	"slices"
	"sync"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vggo/vggo/distributed"
)

// bnRun is one training-mode forward and backward pass of batch norm under the loss
// Σ r ⊙ y: it returns y, dx, dgamma, dbeta and the running statistics after the run.
type bnRun struct{ y, dx, dgamma, dbeta, rm, rv []float32 }

func runBN(t *testing.T, x, gamma, beta, r *tensor.Dense, relu bool, sync StatReducer) bnRun {
	t.Helper()
	g := G.NewGraph()
	in := bindInputs(g, []*tensor.Dense{x, gamma, beta, r})
	st := NewBatchNormState("bn", gamma.Shape()[0])
	st.Sync = sync
	y, err := batchNorm2D(in[0], in[1], in[2], st, true, relu)
	if err != nil {
		t.Fatal(err)
	}
	loss := G.Must(G.Sum(G.Must(G.HadamardProd(y, in[3]))))
	grads, err := G.Grad(loss, in[0], in[1], in[2])
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	val := func(n *G.Node) []float32 { return slices.Clone(n.Value().Data().([]float32)) }
	return bnRun{val(y), val(grads[0]), val(grads[1]), val(grads[2]), slices.Clone(st.RunningMean), slices.Clone(st.RunningVar)}
}

// TestBatchNormSync: two ranks, each with half of a batch, synchronised, compute what one
// batch norm computes over the whole batch: the same outputs, input gradients and running
// statistics, and gamma/beta gradients that sum to the whole batch's.
func TestBatchNormSync(t *testing.T) {
	const n, c, h, w = 4, 5, 3, 7
	for _, relu := range []bool{false, true} {
		x := randTensor(81, n, c, h, w)
		// An offset mean, so the variance combination is exercised away from zero.
		xs := x.Data().([]float32)
		for i := range xs {
			xs[i] = 3 + 2*xs[i]
		}
		gamma, beta, r := randTensor(82, c), randTensor(83, c), randTensor(84, n, c, h, w)
		whole := runBN(t, x, gamma, beta, r, relu, nil)

		const ranks = 2
		per := n / ranks * c * h * w
		runs := make([]bnRun, ranks)
		var wg sync.WaitGroup
		for k, comm := range distributed.Loopback(ranks) {
			xk := denseF32(slices.Clone(xs[k*per:(k+1)*per]), n/ranks, c, h, w)
			rk := denseF32(slices.Clone(r.Data().([]float32)[k*per:(k+1)*per]), n/ranks, c, h, w)
			// Each rank's graph gets its own gamma and beta tensors: binding one tensor to two
			// graphs shares it between their tape machines, which set its engine.
			gk, bk := gamma.Clone().(*tensor.Dense), beta.Clone().(*tensor.Dense)
			wg.Go(func() { runs[k] = runBN(t, xk, gk, bk, rk, relu, comm) })
		}
		wg.Wait()

		const tol = 2e-5
		check := func(what string, got, want []float32) {
			t.Helper()
			for i := range want {
				if !near(float64(got[i]), float64(want[i]), tol) {
					t.Fatalf("relu=%v: %s[%d] = %v, whole batch %v", relu, what, i, got[i], want[i])
				}
			}
		}
		var y, dx []float32
		dgamma, dbeta := make([]float32, c), make([]float32, c)
		for k, run := range runs {
			y, dx = append(y, run.y...), append(dx, run.dx...)
			for i := range c {
				dgamma[i] += run.dgamma[i]
				dbeta[i] += run.dbeta[i]
			}
			check("running mean", run.rm, whole.rm)
			check("running var", run.rv, whole.rv)
			if k > 0 && (!sameBits(run.rm, runs[0].rm) || !sameBits(run.rv, runs[0].rv)) {
				t.Errorf("relu=%v: ranks 0 and %d have different running statistics", relu, k)
			}
		}
		check("y", y, whole.y)
		check("dx", dx, whole.dx)
		check("dgamma (summed over ranks)", dgamma, whole.dgamma)
		check("dbeta (summed over ranks)", dbeta, whole.dbeta)
		// Unsynchronised halves normalise with their own statistics: different outputs.
		local := runBN(t, denseF32(slices.Clone(xs[:per]), n/ranks, c, h, w), gamma, beta,
			denseF32(slices.Clone(r.Data().([]float32)[:per]), n/ranks, c, h, w), relu, nil)
		if math.Abs(float64(local.rm[0]-whole.rm[0])) < 1e-6 {
			t.Errorf("relu=%v: a half batch without Sync has the whole batch's mean; the test does not discriminate", relu)
		}
	}
}
