package losses

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFastExp(t *testing.T) {
	worst := 0.0
	for x := -707.0; x <= 30; x += 0.0137 {
		got, want := fastExp(x), math.Exp(x)
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 1e-9 {
		t.Errorf("worst relative error %g, want ≤ 1e-9", worst)
	}
	for _, tc := range []struct{ x, want float64 }{{0, 1}, {-709, 0}, {math.Inf(-1), 0}} {
		if got := fastExp(tc.x); got != tc.want {
			t.Errorf("fastExp(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	if got := fastExp(math.NaN()); !math.IsNaN(got) {
		t.Errorf("fastExp(NaN) = %v, want NaN", got)
	}
}

func TestExpRow(t *testing.T) {
	var x []float32
	for v := -100.0; v <= 0; v += 0.037 {
		x = append(x, float32(v))
	}
	x = append(x, float32(math.Inf(-1)), -800)
	m := make([]float64, len(x))
	for i := range m {
		m[i] = 0.5
	}
	e, sum := make([]float32, len(x)), make([]float64, len(x))
	expRow(e, x, m, sum)
	for i, v := range x {
		want := math.Exp(float64(v) - 0.5)
		if math.Abs(sum[i]-want) > 1e-9*want || want > 1e-30 && math.Abs(float64(e[i])-want) > 1e-7*want {
			t.Fatalf("exp(%v - 0.5): got %v (float32 %v), want %v", v, sum[i], e[i], want)
		}
	}
}

func BenchmarkFastExp(b *testing.B) {
	s := 0.0
	x := -3.0
	for b.Loop() {
		s += fastExp(x)
		x -= 1e-9
	}
	_ = s
}

// TestSoftmaxKernels runs the fused loss forward and backward with the vector softmax
// kernels and with the portable loops, and requires agreement to float32 precision;
// cases include extreme logits, ignored pixels, dice, and sizes not a multiple of 16.
func TestSoftmaxKernels(t *testing.T) {
	if !haveZ {
		t.Skip("no vector kernels on this CPU")
	}
	for _, tc := range []struct {
		n, c, h, w int
		scale      float64
		cfg        config
	}{
		{2, 21, 9, 11, 5, config{ceCoef: 1, ignore: 255}},
		{1, 3, 4, 8, 1e4, config{ceCoef: 1, ignore: 255}},
		{2, 5, 7, 7, 3, config{ceCoef: 1, diceCoef: 0.5, diceSmooth: 1, ignore: 255}},
		{1, 4, 3, 5, 2, config{ceCoef: 1, ignore: 255, smoothing: 0.1}},
	} {
		x := randLogits(1, tc.scale, tc.n, tc.c, tc.h, tc.w).Data().([]float32)
		labels := randLabels(2, tc.c, 0.2, 255, tc.n, tc.h, tc.w).Data().([]int)
		run := func(z bool) (Terms, []float32) {
			saved := haveZ
			haveZ = z
			defer func() { haveZ = saved }()
			st := &state{}
			terms, err := forward(&tc.cfg, st, x, labels, tc.n, tc.c, tc.h*tc.w)
			if err != nil {
				t.Fatal(err)
			}
			return terms, append([]float32(nil), backward(&tc.cfg, st, x, labels, 1)...)
		}
		vt, vg := run(true)
		gt, gg := run(false)
		if !close64(vt.Total, gt.Total, 1e-6, 1e-6) {
			t.Errorf("%+v: loss %v with the vector kernels, %v without", tc, vt.Total, gt.Total)
		}
		for i := range gg {
			if !close64(float64(vg[i]), float64(gg[i]), 1e-7, 1e-5) {
				t.Fatalf("%+v: gradient[%d] %v with the vector kernels, %v without", tc, i, vg[i], gg[i])
			}
		}
	}
}

// TestCEGradRow requires the vector cross-entropy gradient kernel to give the portable
// loop's bits: labels equal to the class, to the ignore index and to neither, negative
// and zero scales, extreme probabilities.
func TestCEGradRow(t *testing.T) {
	if !haveZ {
		t.Skip("no vector kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(7, 11))
	for _, tc := range []struct {
		n, cl, ignore int
		scale         float64
	}{
		{8, 0, 255, 1}, {64, 3, 255, 1.0 / 3}, {200, 20, -1, -2.5e-3}, {16, 1, 1, 7}, {24, 2, 255, 0},
	} {
		o := make([]float32, tc.n)
		inv := make([]float64, tc.n)
		lab := make([]int, tc.n)
		for j := range o {
			o[j] = float32(r.Float64() * math.Pow(10, float64(r.IntN(40)-30)))
			inv[j] = 1 / (1 + 20*r.Float64())
			switch r.IntN(4) {
			case 0:
				lab[j] = tc.cl
			case 1:
				lab[j] = tc.ignore
			default:
				lab[j] = r.IntN(21)
			}
		}
		want := make([]float32, tc.n)
		for j, y := range lab {
			d := float64(o[j]) * inv[j]
			if y == tc.cl {
				d--
			}
			if y == tc.ignore {
				d = 0
			}
			want[j] = float32(tc.scale * d)
		}
		ceGradRowZ(&o[0], &inv[0], &lab[0], tc.n, tc.cl, tc.ignore, tc.scale)
		for j := range o {
			if math.Float32bits(o[j]) != math.Float32bits(want[j]) {
				t.Fatalf("%+v: [%d] = %v (%#x), want %v (%#x)", tc, j, o[j], math.Float32bits(o[j]), want[j], math.Float32bits(want[j]))
			}
		}
	}
}
