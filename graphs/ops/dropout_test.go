package ops

import (
	"math"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func ones(shape ...int) *tensor.Dense {
	n := tensor.Shape(shape).TotalSize()
	data := make([]float32, n)
	for i := range data {
		data[i] = 1
	}
	return denseF32(data, shape...)
}

func dropoutOnce(t *testing.T, x *tensor.Dense, p float64, st DropoutState) []float32 {
	t.Helper()
	got, _ := runOnce(t, []*tensor.Dense{x}, func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		return Dropout(in[0], p, &st, true)
	})
	return got
}

func TestDropoutIdentity(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(3, 4), G.WithName("x"))
	st := &DropoutState{Seed: 1, Layer: 1}
	for _, c := range []struct {
		name     string
		p        float64
		training bool
	}{{"eval", 0.5, false}, {"p=0", 0, true}, {"eval p=0", 0, false}} {
		y, err := Dropout(x, c.p, st, c.training)
		if err != nil || y != x {
			t.Errorf("%s: got %v, %v, want x itself", c.name, y, err)
		}
	}
	// Eval needs no state.
	if y, err := Dropout(x, 0.5, nil, false); err != nil || y != x {
		t.Errorf("eval, nil state: got %v, %v, want x itself", y, err)
	}
}

func TestDropoutTrain(t *testing.T) {
	const n = 200_000
	for _, p := range []float64{0.1, 0.5, 0.8} {
		got := dropoutOnce(t, ones(4, n/4), p, DropoutState{Seed: 7, Layer: 3, Step: 11})
		scale := float32(1 / (1 - p))
		kept := 0
		var sum float64
		for i, v := range got {
			switch v {
			case 0:
			case scale:
				kept++
			default:
				t.Fatalf("p=%v: y[%d] = %v, want 0 or %v", p, i, v, scale)
			}
			sum += float64(v)
		}
		// Binomial: sd of the kept fraction is sqrt(p(1-p)/n) < 0.0012; allow 5 sd.
		if frac := float64(kept) / n; math.Abs(frac-(1-p)) > 0.006 {
			t.Errorf("p=%v: kept fraction %.4f, want %.4f", p, frac, 1-p)
		}
		if mean := sum / n; math.Abs(mean-1) > 0.006/(1-p) {
			t.Errorf("p=%v: mean %.4f, want 1 (inverted dropout preserves the mean)", p, mean)
		}
	}
}

func TestDropoutMaskDeterminism(t *testing.T) {
	x := randTensor(40, 2, 3, 17, 19)
	base := DropoutState{Seed: 5, Layer: 2, Step: 9}
	a := dropoutOnce(t, x, 0.5, base)
	if b := dropoutOnce(t, x, 0.5, base); !sameBits(a, b) {
		t.Fatal("equal (seed, layer, step): masks differ")
	}
	for _, c := range []struct {
		name string
		st   DropoutState
	}{
		{"step", DropoutState{Seed: 5, Layer: 2, Step: 10}},
		{"layer", DropoutState{Seed: 5, Layer: 3, Step: 9}},
		{"seed", DropoutState{Seed: 6, Layer: 2, Step: 9}},
	} {
		b := dropoutOnce(t, x, 0.5, c.st)
		same := 0
		for i := range a {
			if (a[i] == 0) == (b[i] == 0) {
				same++
			}
		}
		// Independent masks at p = 0.5 agree on about half the elements.
		if frac := float64(same) / float64(len(a)); frac < 0.4 || frac > 0.6 {
			t.Errorf("different %s: masks agree on %.2f of elements, want about 0.5", c.name, frac)
		}
	}
}

// TestDropoutStepAdvances runs one graph twice, advancing Step in between, as the
// training loop does.
func TestDropoutStepAdvances(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(8, 64), G.WithValue(ones(8, 64)), G.WithName("x"))
	st := &DropoutState{Seed: 1, Layer: 1, Step: 0}
	y, err := Dropout(x, 0.5, st, true)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	var runs [][]float32
	for step := range 3 {
		st.Step = uint64(step % 2)
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, slices.Clone(y.Value().Data().([]float32)))
		vm.Reset()
	}
	if sameBits(runs[0], runs[1]) {
		t.Error("steps 0 and 1 gave the same mask")
	}
	if !sameBits(runs[0], runs[2]) {
		t.Error("step 0 twice gave different masks")
	}
}

func TestDropoutGrad(t *testing.T) {
	for _, c := range []struct {
		p     float64
		shape []int
	}{{0.5, []int{2, 3, 5, 7}}, {0.2, []int{4, 33}}, {0.9, []int{3, 5, 1, 1}}} {
		st := &DropoutState{Seed: 3, Layer: 4, Step: 5}
		checkGrad(t, gradCase{
			name:   "dropout",
			inputs: []*tensor.Dense{randTensor(41, c.shape...)},
			build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return Dropout(in[0], c.p, st, true)
			},
		})
	}
}

// TestDropoutGradUsesForwardMask checks dx = dy·y/x exactly: the backward pass applies the
// forward pass's mask and scale (Gorgonia's own Dropout scales by 1/p).
func TestDropoutGradUsesForwardMask(t *testing.T) {
	for _, p := range []float64{0, 0.3} {
		g := G.NewGraph()
		xt := awayFromZero(42, 3, 50)
		x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(3, 50), G.WithValue(xt), G.WithName("x"))
		y, err := Dropout(x, p, &DropoutState{Seed: 9, Layer: 1, Step: 2}, true)
		if err != nil {
			t.Fatal(err)
		}
		cost := G.Must(G.Sum(y))
		if _, err := G.Grad(cost, x); err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g, G.BindDualValues(x))
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		gv, err := x.Grad()
		if err != nil {
			t.Fatal(err)
		}
		dx, yv, xv := gv.Data().([]float32), y.Value().Data().([]float32), xt.Data().([]float32)
		for i := range dx {
			if want := yv[i] / xv[i]; math.Abs(float64(dx[i]-want)) > 1e-6 {
				t.Fatalf("p=%v: dx[%d] = %v, want y/x = %v", p, i, dx[i], want)
			}
		}
		vm.Close()
	}
}

// TestDropoutNoMerge: two dropouts on one input with different p, or different layers,
// stay two nodes (Gorgonia's own Dropout hashes neither).
func TestDropoutNoMerge(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(4, 32), G.WithValue(ones(4, 32)), G.WithName("x"))
	st1, st2 := &DropoutState{Seed: 1, Layer: 1}, &DropoutState{Seed: 1, Layer: 2}
	a, err := Dropout(x, 0.5, st1, true)
	if err != nil {
		t.Fatal(err)
	}
	b := G.Must(Dropout(x, 0.25, st1, true))
	c := G.Must(Dropout(x, 0.5, st2, true))
	d := G.Must(Dropout(x, 0.5, st1, true)) // same layer, same p: the same computation
	if a == b || a == c || b == c {
		t.Fatalf("dropouts merged: a=%p b=%p c=%p", a, b, c)
	}
	if d != a {
		t.Errorf("the same dropout built twice gave two nodes")
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	if sameBits(a.Value().Data().([]float32), c.Value().Data().([]float32)) {
		t.Error("layers 1 and 2 gave the same mask")
	}
}

func TestDropoutErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 2, G.WithShape(3, 4), G.WithName("x"))
	for _, p := range []float64{-0.1, 1, 1.5, math.NaN()} {
		_, err := Dropout(x, p, &DropoutState{}, true)
		wantErr(t, err, "want 0 <= p < 1")
	}
	_, err := Dropout(x, 0.5, nil, true)
	wantErr(t, err, "ops: dropout: nil *DropoutState in training mode")
}

// TestDropoutMicroBatches: a batch split into micro-batches at their Sample offsets draws
// the masks of the whole batch, so gradient accumulation and data-parallel ranks see the
// dropout of the unsplit step.
func TestDropoutMicroBatches(t *testing.T) {
	const n, d = 6, 3 * 5 * 7
	x := randTensor(41, n, 3, 5, 7)
	xs := x.Data().([]float32)
	whole := dropoutOnce(t, x, 0.5, DropoutState{Seed: 5, Layer: 2, Step: 9})
	for _, m := range []int{1, 2, 3} {
		for lo := 0; lo < n; lo += m {
			part := denseF32(slices.Clone(xs[lo*d:(lo+m)*d]), m, 3, 5, 7)
			got := dropoutOnce(t, part, 0.5, DropoutState{Seed: 5, Layer: 2, Step: 9, Sample: uint64(lo)})
			if !sameBits(got, whole[lo*d:(lo+m)*d]) {
				t.Fatalf("micro-batch of %d at sample %d: mask differs from the whole batch's", m, lo)
			}
		}
	}
}
