package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(seed uint64, n int, scale float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 17))
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((r.Float64()*2 - 1) * scale)
	}
	return s
}

// withKernels runs f with every kernel set this CPU supports (AVX-512, AVX2, Go).
func withKernels(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := wg
	defer func() { wg = saved }()
	for _, k := range winogradKernelSets() {
		wg = k
		t.Run(k.name, f)
	}
}

func TestTranspose(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		for _, tc := range []struct{ rows, cols, lds, ldd int }{
			{1, 1, 1, 1}, {8, 8, 8, 8}, {16, 24, 30, 20}, {13, 21, 25, 17}, {7, 9, 9, 7}, {40, 3, 5, 41},
			// 16x16 blocks (AVX-512) with 8x8 blocks below, right of them or both, and edges.
			{16, 16, 16, 16}, {32, 48, 50, 40}, {24, 40, 41, 30}, {35, 33, 40, 37}, {48, 17, 17, 64},
		} {
			src := randSlice(1, tc.rows*tc.lds, 1)
			for _, neg := range []bool{false, true} {
				dst := make([]float32, tc.cols*tc.ldd)
				d0, ldd := 0, tc.ldd
				if neg {
					d0, ldd = (tc.cols-1)*tc.ldd, -tc.ldd
				}
				transpose(dst, d0, ldd, src, 0, tc.lds, tc.rows, tc.cols)
				for i := 0; i < tc.rows; i++ {
					for j := 0; j < tc.cols; j++ {
						if got, want := dst[d0+j*ldd+i], src[i*tc.lds+j]; got != want {
							t.Fatalf("%+v neg=%v: dst(%d,%d) = %v, want %v", tc, neg, j, i, got, want)
						}
					}
				}
			}
		}
	})
}

// TestWinogradKernelsMatchGo checks each vectorised transform against the portable one
// on random data and strides.
func TestWinogradKernelsMatchGo(t *testing.T) {
	saved := wg
	defer func() { wg = saved }()
	for _, k := range winogradKernelSets() {
		if k.name == "go" {
			continue
		}
		wg = k
		t.Run(k.name, testKernelsMatchGo)
	}
}

func testKernelsMatchGo(t *testing.T) {
	type kern func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int)
	outGo := func(bias []float32, floor float32) kern {
		return func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
			wgOutputGo(dst, dstRow, dstCol, dstTile, src, srcRow, srcCol, srcTile, nch, ntiles, bias, floor)
		}
	}
	outAsm := func(bias []float32, floor float32) kern {
		return func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
			wg.output(dst, dstRow, dstCol, dstTile, src, srcRow, srcCol, srcTile, nch, ntiles, bias, floor)
		}
	}
	bias := randSlice(9, 48, 1)
	for _, tc := range []struct {
		name     string
		in, out  int
		asm, goK kern
	}{
		{"input", 6, 6, wg.input, wgInputGo},
		{"outadj", 4, 6, wg.outAdj, wgOutAdjGo},
		{"filter", 3, 6, wg.filter, wgFilterGo},
		{"filteradj", 6, 3, wg.filterAdj, wgFilterAdjGo},
		{"output", 6, 4, outAsm(nil, float32(math.Inf(-1))), outGo(nil, float32(math.Inf(-1)))},
		{"output+bias+relu", 6, 4, outAsm(bias, 0), outGo(bias, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const nch, ntiles = 48, 3
			// src: tile-major, rows of in*? floats with gaps; dst likewise.
			srcCol, srcRow := nch+16, (tc.in+1)*(nch+16)
			srcTile := (tc.in + 1) * srcRow
			dstCol, dstRow := nch+32, (tc.out+2)*(nch+32)
			dstTile := (tc.out + 1) * dstRow
			src := randSlice(3, ntiles*srcTile, 2)
			want := make([]float32, ntiles*dstTile)
			got := make([]float32, ntiles*dstTile)
			tc.goK(want, dstRow, dstCol, dstTile, src, srcRow, srcCol, srcTile, nch, ntiles)
			tc.asm(got, dstRow, dstCol, dstTile, src, srcRow, srcCol, srcTile, nch, ntiles)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("element %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// wgCase is a convolution the Winograd engine must match the direct definition on.
type wgCase struct {
	n, cin, h, w, cout int
	pad                Padding
}

func (c wgCase) String() string {
	return fmt.Sprintf("n%d_c%d_%dx%d_k%d_%v", c.n, c.cin, c.h, c.w, c.cout, c.pad)
}

var wgCases = []wgCase{
	{1, 3, 8, 8, 4, Symmetric(1)},
	{2, 5, 7, 9, 6, Symmetric(1)},
	{1, 16, 12, 12, 16, Symmetric(1)},
	{2, 20, 11, 6, 33, Padding{0, 1, 1, 0}},
	{1, 8, 9, 10, 3, Padding{}},
	{3, 17, 5, 5, 9, Padding{2, 2, 2, 2}},
	{1, 2, 3, 3, 2, Padding{1, 0, 0, 2}},
	{2, 40, 20, 13, 24, Symmetric(1)},
	// Rows of at least wgDirectCols: transposed in place, without the staging copy.
	{2, 19, 6, 37, 21, Symmetric(1)},
	{1, 9, 4, 33, 8, Padding{1, 0, 0, 2}},
}

func checkClose(t *testing.T, what string, got []float32, want, mag []float64, tol float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*(mag[i]+1e-3)) {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d]: got %v, want %v (magnitude %v)", what, i, got[i], want[i], mag[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements differ", what, bad, len(want))
	}
}

func TestWinogradForward(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		for _, tc := range wgCases {
			t.Run(tc.String(), func(t *testing.T) {
				x := randSlice(1, tc.n*tc.cin*tc.h*tc.w, 1)
				w := randSlice(2, tc.cout*tc.cin*9, 1)
				b := randSlice(3, tc.cout, 1)
				cfg := ConvConfig{StrideH: 1, StrideW: 1, Pad: tc.pad}
				want, mag, ho, wo := convNaive(x, w, b, tc.n, tc.cin, tc.h, tc.w, tc.cout, 3, 3, cfg)
				c := newWgConv(tc.n, tc.cin, tc.h, tc.w, tc.cout, ho, wo, tc.pad.Top, tc.pad.Left)
				ws := NewWorkspace()
				u := c.forwardWeights(ws, w)
				for _, relu := range []bool{false, true} {
					c.chunkTiles = 0
					if relu {
						c.chunkTiles = 1 // one tile row per chunk: chunks spread over goroutines
					}
					y := make([]float32, len(want))
					floor := float32(math.Inf(-1))
					if relu {
						floor = 0
					}
					c.forward(ws, x, u, b, floor, y)
					wr := want
					if relu {
						wr = make([]float64, len(want))
						for i, v := range want {
							wr[i] = max(v, 0)
						}
					}
					checkClose(t, fmt.Sprintf("y(relu=%v)", relu), y, wr, mag, 1e-4)
				}
			})
		}
	})
}

// naiveGrads returns dX and dW of sum(y ⊙ dy) for y = x ⊛ w, in float64, with
// magnitudes.
func naiveGrads(x, w, dy []float32, c wgCase, ho, wo int) (dx, dxMag, dw, dwMag []float64) {
	dx, dxMag = make([]float64, len(x)), make([]float64, len(x))
	dw, dwMag = make([]float64, len(w)), make([]float64, len(w))
	for n := 0; n < c.n; n++ {
		for co := 0; co < c.cout; co++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					g := float64(dy[((n*c.cout+co)*ho+oy)*wo+ox])
					for ci := 0; ci < c.cin; ci++ {
						for a := 0; a < 3; a++ {
							iy := oy - c.pad.Top + a
							if iy < 0 || iy >= c.h {
								continue
							}
							for bb := 0; bb < 3; bb++ {
								ix := ox - c.pad.Left + bb
								if ix < 0 || ix >= c.w {
									continue
								}
								xi := ((n*c.cin+ci)*c.h+iy)*c.w + ix
								wi := ((co*c.cin+ci)*3+a)*3 + bb
								dx[xi] += g * float64(w[wi])
								dxMag[xi] += math.Abs(g * float64(w[wi]))
								dw[wi] += g * float64(x[xi])
								dwMag[wi] += math.Abs(g * float64(x[xi]))
							}
						}
					}
				}
			}
		}
	}
	return
}

func TestWinogradGradients(t *testing.T) {
	withKernels(t, func(t *testing.T) {
		for _, tc := range wgCases {
			t.Run(tc.String(), func(t *testing.T) {
				x := randSlice(1, tc.n*tc.cin*tc.h*tc.w, 1)
				w := randSlice(2, tc.cout*tc.cin*9, 1)
				ho := tc.h + tc.pad.Top + tc.pad.Bottom - 2
				wo := tc.w + tc.pad.Left + tc.pad.Right - 2
				dy := randSlice(4, tc.n*tc.cout*ho*wo, 1)
				wantDx, dxMag, wantDw, dwMag := naiveGrads(x, w, dy, tc, ho, wo)
				for _, chunk := range []int{0, 1} {
					c := newWgConv(tc.n, tc.cin, tc.h, tc.w, tc.cout, ho, wo, tc.pad.Top, tc.pad.Left)
					c.chunkTiles = chunk
					ws := NewWorkspace()
					dx := make([]float32, len(x))
					for i := range dx {
						dx[i] = float32(math.NaN()) // every element must be written
					}
					c2 := c.dataGrad()
					u2 := c.dataGradWeights(ws, w, 0, c.cin)
					c2.forward(ws, dy, u2, nil, float32(math.Inf(-1)), dx)
					checkClose(t, "dx", dx, wantDx, dxMag, 1e-4)
					dw := make([]float32, len(w))
					for i := range dw {
						dw[i] = float32(math.NaN())
					}
					c.filterGrad(ws, x, dy, dw)
					checkClose(t, "dw", dw, wantDw, dwMag, 1e-4)
					dw2 := make([]float32, len(w))
					c.filterGrad(ws, x, dy, dw2)
					for i := range dw {
						if dw[i] != dw2[i] {
							t.Fatalf("chunk %d: dw[%d] = %v, then %v: not reproducible", chunk, i, dw[i], dw2[i])
						}
					}
				}
			})
		}
	})
}

// BenchmarkConv3x3 compares the Winograd engine with the im2col path on VGG layers
// (k output channels; 0: as many as inputs): forward, data gradient and filter
// gradient, in effective GFLOP/s (direct FLOPs / time). The last three are the first
// convolutions of C6u's decoder, on the concatenation of the upsampled and skip inputs.
func BenchmarkConv3x3(b *testing.B) {
	for _, l := range []struct{ n, c, s, k int }{
		{4, 64, 224, 0}, {4, 128, 112, 0}, {4, 256, 56, 0}, {4, 512, 28, 0}, {4, 512, 14, 0},
		{4, 16, 128, 0}, {4, 32, 64, 0}, {4, 64, 32, 0}, {4, 128, 16, 0}, {4, 128, 8, 0},
		{4, 48, 128, 16}, {4, 96, 64, 32}, {4, 192, 32, 64},
	} {
		k := l.k
		if k == 0 {
			k = l.c
		}
		tc := wgCase{l.n, l.c, l.s, l.s, k, Symmetric(1)}
		x := randSlice(1, l.n*l.c*l.s*l.s, 1)
		dy := randSlice(4, l.n*k*l.s*l.s, 1)
		w := randSlice(2, k*l.c*9, 0.05)
		bias := randSlice(3, k, 1)
		y := make([]float32, len(dy))
		dx := make([]float32, len(x))
		flops := 2 * float64(l.n*l.c*k*9*l.s*l.s)
		c := newWgConv(l.n, l.c, l.s, l.s, k, l.s, l.s, 1, 1)
		ws := NewWorkspace()
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		b.Run(tc.String()+"/wino-fwd", func(b *testing.B) {
			for b.Loop() {
				u := c.forwardWeights(ws, w)
				c.forward(ws, x, u, bias, 0, y)
				ws.put(u)
			}
			report(b)
		})
		b.Run(tc.String()+"/wino-dx", func(b *testing.B) {
			c2 := c.dataGrad()
			for b.Loop() {
				u := c.dataGradWeights(ws, w, 0, c.cin)
				c2.forward(ws, dy, u, nil, float32(math.Inf(-1)), dx)
				ws.put(u)
			}
			report(b)
		})
		b.Run(tc.String()+"/wino-dw", func(b *testing.B) {
			dw := make([]float32, len(w))
			for b.Loop() {
				c.filterGrad(ws, x, dy, dw)
			}
			report(b)
		})
		geom := convGeom{n: l.n, cin: l.c, h: l.s, w: l.s, cout: k, kh: 3, kw: 3, sh: 1, sw: 1, pad: Symmetric(1), ho: l.s, wo: l.s, bias: true}
		op := &convOp{convGeom: geom, cols: &convScratch{size: geom.kdim() * geom.tile()}}
		b.Run(tc.String()+"/im2col-fwd", func(b *testing.B) {
			for b.Loop() {
				op.forward(x, w, bias, y)
			}
			report(b)
		})
		gx := &convGradXOp{convGeom: geom, cols: op.cols}
		b.Run(tc.String()+"/im2col-dx", func(b *testing.B) {
			for b.Loop() {
				gx.backward(w, dy, nil, nil, dx)
			}
			report(b)
		})
		gw := &convGradWOp{convGeom: geom, cols: op.cols, parts: &convScratch{size: geom.cout * geom.kdim()}}
		b.Run(tc.String()+"/im2col-dw", func(b *testing.B) {
			dw := make([]float32, len(w))
			for b.Loop() {
				gw.backward(wgSrc{{data: x, c: geom.cin}}, dy, nil, dw)
			}
			report(b)
		})
	}
}
