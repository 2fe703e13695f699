package ops

import (
	"fmt"
	"math"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// bnInputs returns x (n, c, h, w) and gamma, beta (c).
func bnInputs(seed uint64, n, c, h, w int) []*tensor.Dense {
	return []*tensor.Dense{randTensor(seed, n, c, h, w), randTensor(seed+1, c), randTensor(seed+2, c)}
}

func bnBuild(st *BatchNormState, training bool) buildFn {
	return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return BatchNorm2D(in[0], in[1], in[2], st, training)
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestBatchNorm2DHand(t *testing.T) {
	// One channel, values 1 2 | 3 4 over (N=2, H=1, W=2): mean 2.5, biased variance 1.25,
	// unbiased 5/3.
	x := []float32{1, 2, 3, 4}
	in := func() []*tensor.Dense {
		return []*tensor.Dense{denseF32(slices.Clone(x), 2, 1, 1, 2), denseF32([]float32{2}, 1), denseF32([]float32{0.5}, 1)}
	}
	t.Run("train", func(t *testing.T) {
		st := NewBatchNormState("bn", 1)
		got, _ := runOnce(t, in(), bnBuild(st, true))
		for i, v := range x {
			want := 2*(float64(v)-2.5)/math.Sqrt(1.25+1e-5) + 0.5
			if !near(float64(got[i]), want, 1e-6) {
				t.Errorf("y[%d]: got %v, want %v", i, got[i], want)
			}
		}
		if !near(float64(st.RunningMean[0]), 0.25, 1e-6) || !near(float64(st.RunningVar[0]), 0.9+0.1*5.0/3, 1e-6) {
			t.Errorf("running mean, var: got %v, %v, want 0.25, %v (unbiased variance 5/3)", st.RunningMean[0], st.RunningVar[0], 0.9+0.1*5.0/3)
		}
	})
	t.Run("momentum 0.5, two steps", func(t *testing.T) {
		st := &BatchNormState{Name: "bn", RunningMean: []float32{1}, RunningVar: []float32{2}, Momentum: 0.5}
		g := G.NewGraph()
		nodes := bindInputs(g, in())
		if _, err := BatchNorm2D(nodes[0], nodes[1], nodes[2], st, true); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		defer vm.Close()
		wantMean, wantVar := []float64{1.75, 2.125}, []float64{0.5*2 + 0.5*5.0/3, 0.5*(0.5*2+0.5*5.0/3) + 0.5*5.0/3}
		for step := range 2 {
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			vm.Reset()
			if !near(float64(st.RunningMean[0]), wantMean[step], 1e-6) || !near(float64(st.RunningVar[0]), wantVar[step], 1e-6) {
				t.Errorf("step %d: running mean, var: got %v, %v, want %v, %v", step, st.RunningMean[0], st.RunningVar[0], wantMean[step], wantVar[step])
			}
		}
	})
	t.Run("zero value state uses defaults", func(t *testing.T) {
		st := &BatchNormState{Name: "bn", RunningMean: []float32{0}, RunningVar: []float32{1}}
		runOnce(t, in(), bnBuild(st, true))
		if !near(float64(st.RunningMean[0]), 0.25, 1e-6) {
			t.Errorf("running mean: got %v, want 0.25 (momentum 0.1)", st.RunningMean[0])
		}
	})
	t.Run("eval", func(t *testing.T) {
		st := &BatchNormState{Name: "bn", RunningMean: []float32{1}, RunningVar: []float32{3}, Eps: 1e-3}
		got, _ := runOnce(t, in(), bnBuild(st, false))
		for i, v := range x {
			want := 2*(float64(v)-1)/math.Sqrt(3+1e-3) + 0.5
			if !near(float64(got[i]), want, 1e-6) {
				t.Errorf("y[%d]: got %v, want %v", i, got[i], want)
			}
		}
		if st.RunningMean[0] != 1 || st.RunningVar[0] != 3 {
			t.Errorf("eval changed the running statistics to %v, %v", st.RunningMean[0], st.RunningVar[0])
		}
	})
}

// naiveBatchNorm returns y, the batch means and the unbiased batch variances, in float64.
func naiveBatchNorm(x, gamma, beta []float32, n, c, hw int, training bool, rm, rv []float32, eps float64) (y, mean, uvar []float64) {
	y, mean, uvar = make([]float64, len(x)), make([]float64, c), make([]float64, c)
	for ch := range c {
		var s float64
		for i := range n {
			for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				s += float64(v)
			}
		}
		m := s / float64(n*hw)
		var ss float64
		for i := range n {
			for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				ss += (float64(v) - m) * (float64(v) - m)
			}
		}
		mean[ch], uvar[ch] = m, ss/float64(n*hw-1)
		v := ss / float64(n*hw)
		if !training {
			m, v = float64(rm[ch]), float64(rv[ch])
		}
		for i := range n {
			for j := (i*c + ch) * hw; j < (i*c+ch+1)*hw; j++ {
				y[j] = float64(gamma[ch])*(float64(x[j])-m)/math.Sqrt(v+eps) + float64(beta[ch])
			}
		}
	}
	return y, mean, uvar
}

func TestBatchNorm2DNaive(t *testing.T) {
	for _, c := range []struct{ n, c, h, w int }{{2, 3, 5, 7}, {1, 5, 3, 3}, {4, 3, 2, 3}, {2, 20, 31, 29}} {
		for _, training := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v train=%v", c, training), func(t *testing.T) {
				in := bnInputs(uint64(c.c), c.n, c.c, c.h, c.w)
				// Inputs with an offset, to exercise the variance computation.
				for i := range in[0].Data().([]float32) {
					in[0].Data().([]float32)[i] += 3
				}
				st := NewBatchNormState("bn", c.c)
				for i := range st.RunningVar {
					st.RunningMean[i], st.RunningVar[i] = 0.1*float32(i), 1+0.2*float32(i)
				}
				rm0, rv0 := slices.Clone(st.RunningMean), slices.Clone(st.RunningVar)
				want, mean, uvar := naiveBatchNorm(in[0].Data().([]float32), in[1].Data().([]float32), in[2].Data().([]float32),
					c.n, c.c, c.h*c.w, training, rm0, rv0, 1e-5)
				got, _ := runOnce(t, in, bnBuild(st, training))
				for i := range want {
					if !near(float64(got[i]), want[i], 1e-5) {
						t.Fatalf("y[%d]: got %v, want %v", i, got[i], want[i])
					}
				}
				for ch := range c.c {
					wm, wv := float64(rm0[ch]), float64(rv0[ch])
					if training {
						wm, wv = 0.9*wm+0.1*mean[ch], 0.9*wv+0.1*uvar[ch]
					}
					if !near(float64(st.RunningMean[ch]), wm, 1e-6) || !near(float64(st.RunningVar[ch]), wv, 1e-6) {
						t.Errorf("channel %d running mean, var: got %v, %v, want %v, %v", ch, st.RunningMean[ch], st.RunningVar[ch], wm, wv)
					}
				}
			})
		}
	}
}

func TestBatchNorm2DGrad(t *testing.T) {
	for i, c := range []struct{ n, c, h, w int }{{2, 3, 5, 7}, {1, 5, 3, 3}, {3, 4, 1, 1}, {4, 3, 2, 3}} {
		for _, training := range []bool{true, false} {
			st := NewBatchNormState("bn", c.c)
			for j := range st.RunningVar {
				st.RunningMean[j], st.RunningVar[j] = 0.2, 0.5+0.1*float32(j)
			}
			// The forward graph updates the statistics too; eval reads them, so freeze
			// them by using a copy of the state for each graph build.
			frozen := *st
			checkGrad(t, gradCase{
				name:   fmt.Sprintf("batchnorm%v train=%v", c, training),
				inputs: bnInputs(uint64(200+10*i), c.n, c.c, c.h, c.w),
				build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
					s := frozen
					s.RunningMean, s.RunningVar = slices.Clone(frozen.RunningMean), slices.Clone(frozen.RunningVar)
					return BatchNorm2D(in[0], in[1], in[2], &s, training)
				},
			})
		}
	}
}

// TestBatchNorm2DNoMerge: two batch norms of one input with their own states stay two
// nodes and both update their statistics; train and eval ops differ too.
func TestBatchNorm2DNoMerge(t *testing.T) {
	g := G.NewGraph()
	nodes := bindInputs(g, bnInputs(300, 2, 3, 4, 4))
	st1, st2 := NewBatchNormState("bn1", 3), NewBatchNormState("bn2", 3)
	a := G.Must(BatchNorm2D(nodes[0], nodes[1], nodes[2], st1, true))
	b := G.Must(BatchNorm2D(nodes[0], nodes[1], nodes[2], st2, true))
	c := G.Must(BatchNorm2D(nodes[0], nodes[1], nodes[2], st1, false))
	if a == b || a == c || b == c {
		t.Fatal("batch norms merged")
	}
	same := *st1 // same name, a different state
	same.RunningMean, same.RunningVar = slices.Clone(st1.RunningMean), slices.Clone(st1.RunningVar)
	if d := G.Must(BatchNorm2D(nodes[0], nodes[1], nodes[2], &same, true)); d == a {
		t.Fatal("batch norms with different states (same name) merged")
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if st1.RunningMean[0] == 0 || !slices.Equal(st1.RunningMean, st2.RunningMean) {
		t.Errorf("running means: got %v and %v, want two equal updated ones", st1.RunningMean, st2.RunningMean)
	}
}

func TestBatchNorm2DErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 3, 4, 4), G.WithName("x"))
	gamma := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("gamma"))
	beta := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("beta"))
	bad := G.NewVector(g, tensor.Float32, G.WithShape(4), G.WithName("bad"))
	one := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 1, 1), G.WithName("one"))
	st := NewBatchNormState("features.1", 3)
	for _, c := range []struct {
		x, gamma, beta *G.Node
		st             *BatchNormState
		training       bool
		want           string
	}{
		{x, gamma, beta, nil, true, "ops: batchnorm2d: nil *BatchNormState"},
		{x, bad, beta, st, true, "ops: batchnorm2d features.1: gamma bad has shape (4), want (3) for x of shape (2, 3, 4, 4)"},
		{x, gamma, bad, st, true, "ops: batchnorm2d features.1: beta bad has shape (4), want (3)"},
		{x, gamma, beta, NewBatchNormState("s", 4), true, "ops: batchnorm2d s: running mean/var have lengths 4/4, want 3"},
		{x, gamma, beta, &BatchNormState{Name: "m", RunningMean: make([]float32, 3), RunningVar: make([]float32, 3), Momentum: 1.5}, true, "momentum 1.5, want 0 < momentum <= 1"},
		{x, gamma, beta, &BatchNormState{Name: "e", RunningMean: make([]float32, 3), RunningVar: make([]float32, 3), Eps: -1}, true, "eps -1, want > 0"},
		{one, gamma, beta, st, true, "x has shape (1, 3, 1, 1): training needs more than one value per channel"},
		{gamma, gamma, beta, st, true, "ops: batchnorm2d: x gamma has shape (3), want 4 dimensions"},
	} {
		_, err := BatchNorm2D(c.x, c.gamma, c.beta, c.st, c.training)
		wantErr(t, err, c.want)
	}
	if _, err := BatchNorm2D(one, gamma, beta, st, false); err != nil {
		t.Errorf("eval with one value per channel: %v", err)
	}
}

// TestOpsRunTwice runs a graph of all these ops with gradients twice on one TapeMachine
// (Reset in between) and checks identical outputs and gradients: the buffers the ops own
// and reuse do not leak state from one run into the next.
func TestOpsRunTwice(t *testing.T) {
	g := G.NewGraph()
	in := bindInputs(g, bnInputs(400, 2, 3, 6, 6))
	x, gamma, beta := in[0], in[1], in[2]
	bn := G.Must(BatchNorm2D(x, gamma, beta, NewBatchNormState("bn", 3), true))
	r := G.Must(ReLU(bn))
	am := NewArgmax("pool")
	p := G.Must(MaxPool2D(r, PoolConfig{KH: 2, KW: 2}, am))
	u := G.Must(MaxUnpool2D(p, am, 6, 6))
	c := G.Must(Concat(u, x))
	up := G.Must(Upsample2D(c, 2))
	p2 := G.Must(MaxPool2D(up, PoolConfig{KH: 3, KW: 3, StrideH: 2, StrideW: 2, Pad: Symmetric(1), CeilMode: true}, nil))
	d := G.Must(Dropout(p2, 0.5, &DropoutState{Seed: 1, Layer: 1, Step: 1}, true))
	f := G.Must(Flatten(d))
	rt := randTensor(401, f.Shape()...)
	rn := G.NewTensor(g, tensor.Float32, 2, G.WithShape(f.Shape()...), G.WithValue(rt), G.WithName("R"))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(f, rn))))
	wrt := G.Nodes{x, gamma, beta}
	if _, err := G.Grad(cost, wrt...); err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.BindDualValues(wrt...))
	defer vm.Close()
	var runs [][][]float32
	for run := range 2 {
		for _, n := range wrt {
			// Gorgonia accumulates into bound gradients (nil before the first run).
			if gv, err := n.Grad(); err == nil && gv != nil {
				gv.(tensor.Tensor).Zero()
			}
		}
		if err := vm.RunAll(); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		snap := [][]float32{slices.Clone(f.Value().Data().([]float32))}
		for _, n := range wrt {
			gv, _ := n.Grad()
			snap = append(snap, slices.Clone(gv.Data().([]float32)))
		}
		runs = append(runs, snap)
		vm.Reset()
	}
	for i, name := range []string{"output", "dx", "dgamma", "dbeta"} {
		if !sameBits(runs[0][i], runs[1][i]) {
			t.Errorf("%s differs between runs", name)
		}
		nonzero := slices.ContainsFunc(runs[0][i], func(v float32) bool { return v != 0 })
		if !nonzero {
			t.Errorf("%s is all zero", name)
		}
	}
}

func BenchmarkBatchNorm2D(b *testing.B) {
	for _, sh := range [][4]int{{4, 64, 112, 112}, {4, 16, 128, 128}, {4, 128, 16, 16}} {
		for _, training := range []bool{true, false} {
			benchBatchNorm(b, sh, training)
		}
	}
}

func benchBatchNorm(b *testing.B, sh [4]int, training bool) {
	n, c, h, w := sh[0], sh[1], sh[2], sh[3]
	b.Run(fmt.Sprintf("train=%v/forward+backward/%dx%dx%dx%d", training, n, c, h, w), func(b *testing.B) {
		g := G.NewGraph()
		in := bindInputs(g, bnInputs(1, n, c, h, w))
		y, err := BatchNormReLU2D(in[0], in[1], in[2], NewBatchNormState("bench", c), training)
		if err != nil {
			b.Fatal(err)
		}
		fwd := y.Op().(*bnOp)
		diff := &bnDiffOp{fwd: fwd}
		dgamma := &bnParamGradOp{fwd: fwd}
		xv, gv, bv := in[0].Value(), in[1].Value(), in[2].Value()
		dy := randTensor(2, n, c, h, w)
		step := func() {
			yv, err := fwd.Do(xv, gv, bv)
			if err != nil {
				b.Fatal(err)
			}
			dx, err := diff.Do(xv, gv, yv, dy)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := dgamma.Do(dx); err != nil {
				b.Fatal(err)
			}
		}
		step() // allocates the op-owned buffers; the loop measures steady state
		b.ReportAllocs()
		for b.Loop() {
			step()
		}
	})
}
