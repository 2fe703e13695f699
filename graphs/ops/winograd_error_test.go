package ops

import (
	"math"
	"math/rand/v2"
	"testing"
)

// errStats compares got with the float64 reference want: the largest absolute error, that
// error relative to the largest |want|, and the RMS error relative to the RMS of want.
func errStats(got []float32, want []float64) (maxAbs, maxRel, rmsRel float64) {
	var peak, se, sw float64
	for i, w := range want {
		d := math.Abs(float64(got[i]) - w)
		maxAbs = max(maxAbs, d)
		peak = max(peak, math.Abs(w))
		se += d * d
		sw += w * w
	}
	return maxAbs, maxAbs / peak, math.Sqrt(se / sw)
}

// TestWinogradError measures F(4x4,3x3)'s float32 error against a float64 direct
// convolution on VGG-like layers with realistic magnitudes: ReLU'd N(0,1) inputs, Kaiming
// normal filters (std √(2/9Cin)), N(0,1) output gradients, and compares it with the
// im2col (direct float32 dot product) path. Run with -v for the figures.
func TestWinogradError(t *testing.T) {
	layers := []struct{ c, s int }{{64, 16}, {256, 8}, {512, 6}}
	if testing.Short() {
		layers = layers[:1]
	}
	for _, l := range layers {
		r := rand.New(rand.NewPCG(uint64(l.c), 1))
		n := 1
		x := make([]float32, n*l.c*l.s*l.s)
		for i := range x {
			x[i] = float32(max(r.NormFloat64(), 0))
		}
		w := make([]float32, l.c*l.c*9)
		std := math.Sqrt(2 / float64(9*l.c))
		for i := range w {
			w[i] = float32(r.NormFloat64() * std)
		}
		dy := make([]float32, n*l.c*l.s*l.s)
		for i := range dy {
			dy[i] = float32(r.NormFloat64())
		}
		tc := wgCase{n, l.c, l.s, l.s, l.c, Symmetric(1)}
		cfg := ConvConfig{StrideH: 1, StrideW: 1, Pad: tc.pad}
		want, _, ho, wo := convNaive(x, w, nil, n, l.c, l.s, l.s, l.c, 3, 3, cfg)
		wantDx, _, wantDw, _ := naiveGrads(x, w, dy, tc, ho, wo)

		c := newWgConv(n, l.c, l.s, l.s, l.c, ho, wo, 1, 1)
		ws := NewWorkspace()
		y := make([]float32, len(want))
		c.forward(ws, x, c.forwardWeights(ws, w), nil, float32(math.Inf(-1)), y)
		dx := make([]float32, len(x))
		c2 := c.dataGrad()
		c2.forward(ws, dy, c.dataGradWeights(ws, w, 0, c.cin), nil, float32(math.Inf(-1)), dx)
		dw := make([]float32, len(w))
		c.filterGrad(ws, x, dy, dw)

		geom := convGeom{n: n, cin: l.c, h: l.s, w: l.s, cout: l.c, kh: 3, kw: 3, sh: 1, sw: 1, pad: tc.pad, ho: ho, wo: wo}
		op := &convOp{convGeom: geom, cols: &convScratch{size: geom.kdim() * geom.tile()}}
		yd := make([]float32, len(want))
		op.forward(x, w, nil, yd)
		dxd := make([]float32, len(x))
		(&convGradXOp{convGeom: geom, cols: op.cols}).backward(w, dy, nil, nil, dxd)
		dwd := make([]float32, len(w))
		(&convGradWOp{convGeom: geom, cols: op.cols, parts: &convScratch{size: geom.cout * geom.kdim()}}).backward(wgSrc{{data: x, c: l.c}}, dy, nil, dwd)

		for _, m := range []struct {
			name      string
			wino, dir []float32
			want      []float64
			bound     float64 // on the RMS relative error
		}{
			{"y", y, yd, want, 1e-5},
			{"dx", dx, dxd, wantDx, 1e-5},
			{"dw", dw, dwd, wantDw, 1e-5},
		} {
			a, rel, rms := errStats(m.wino, m.want)
			da, drel, drms := errStats(m.dir, m.want)
			t.Logf("%dch %dx%d %-2s winograd: max abs %.2e, max/peak %.2e, rms rel %.2e | im2col: %.2e, %.2e, %.2e",
				l.c, l.s, l.s, m.name, a, rel, rms, da, drel, drms)
			if !(rms <= m.bound) {
				t.Errorf("%dch %s: Winograd RMS relative error %.2e, want ≤ %.0e", l.c, m.name, rms, m.bound)
			}
		}
	}
}
