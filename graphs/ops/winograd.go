package ops

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vggo/vggo/graphs/ops/gemm"
	"github.com/vggo/vggo/internal/parallel"
)

// Winograd F(4x4, 3x3) convolution for the 3x3 stride-1 layers that make up almost all
// of VGG's work (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
// Each 4x4 block of outputs (a tile) is computed from the 6x6 input window under it as
//
//	Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
// so that, after transforming filters (U = G g Gᵀ) and input windows (V = Bᵀ d B), the
// channel sums are 36 independent matrix products M_ξ = V_ξ · U_ξ (tiles × Cin times
// Cin × Cout), done by gemm.SmallNN (gemm.Sgemm for the widest layers): 36 multiplies
// per 16 outputs instead of 144.
//
// Layout: the transforms work on vectors of consecutive channels, so activations are
// copied to channels-last (NHWC) bands of a few tile rows at a time with an 8x8 transpose
// (and back for the output); channel counts are padded to 16 in these copies. The
// gradients reuse the same pieces: the data gradient is a Winograd convolution of dY with
// the rotated, transposed filters, and the filter gradient is dU_ξ = V_ξᵀ · dM_ξ with
// dM = A dY Aᵀ (the adjoint of the output transform), then dW = Gᵀ dU G.
//
// F(4x4) trades accuracy for speed: its transforms have entries up to 8 (A) and 5 (B),
// which costs about two decimal digits against a direct float32 convolution (see
// TestWinogradError for measured figures).

// wgPad rounds a channel count up to a whole number of 16-lane vectors.
func wgPad(c int) int { return (c + 15) &^ 15 }

// wgKernels are the transforms and transpose this CPU runs. Strides are in floats;
// nch is a multiple of 16.
type wgKernels struct {
	name      string
	input     func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int)
	outAdj    func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int)
	filter    func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int)
	filterAdj func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int)
	output    func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int, bias []float32, floor float32)
	// tr8 transposes nbr×nbc 8x8 blocks (nil: none; transpose does it in Go), tr16
	// 16x16 blocks (nil: none; tr8 does them).
	tr8, tr16 func(dst []float32, d0, ldd int, src []float32, s0, lds int, nbr, nbc int)
}

// wg is chosen once at start-up from the CPU's features (see winograd_amd64.go).
var wg = pickWinogradKernels()

var wgGoKernels = wgKernels{
	name:      "go",
	input:     wgInputGo,
	outAdj:    wgOutAdjGo,
	filter:    wgFilterGo,
	filterAdj: wgFilterAdjGo,
	output:    wgOutputGo,
}

// ---------------------------------------------------------------------------------
// Portable transforms: the reference the assembly is tested against, and the fallback.

func wgBT(d *[6]float32) (o [6]float32) {
	o[0] = 4*d[0] - 5*d[2] + d[4]
	o[1] = (d[3] + d[4]) - 4*(d[1]+d[2])
	o[2] = (d[4] - d[3]) + 4*(d[1]-d[2])
	o[3] = (d[4] - d[2]) + 2*(d[3]-d[1])
	o[4] = (d[4] - d[2]) - 2*(d[3]-d[1])
	o[5] = 4*d[1] - 5*d[3] + d[5]
	return
}

func wgAT(m *[6]float32) (y [4]float32) {
	a, b, c, d := m[1]+m[2], m[1]-m[2], m[3]+m[4], m[3]-m[4]
	y[0] = m[0] + a + c
	y[1] = b + 2*d
	y[2] = a + 4*c
	y[3] = b + 8*d + m[5]
	return
}

func wgA(y *[4]float32) (m [6]float32) {
	e, o := y[0]+y[2], y[1]+y[3]
	e2, o2 := y[0]+4*y[2], 2*y[1]+8*y[3]
	return [6]float32{y[0], e + o, e - o, e2 + o2, e2 - o2, y[3]}
}

func wgG(g *[3]float32) (u [6]float32) {
	s := g[0] + g[2]
	t := g[2]/6 + g[0]/24
	return [6]float32{g[0] / 4, -(s + g[1]) / 6, -(s - g[1]) / 6, t + g[1]/12, t - g[1]/12, g[2]}
}

func wgGT(u *[6]float32) (g [3]float32) {
	p, q, r, s := u[1]+u[2], u[3]+u[4], u[1]-u[2], u[3]-u[4]
	g[0] = u[0]/4 - p/6 + q/24
	g[1] = s/12 - r/6
	g[2] = u[5] + (q-p)/6
	return
}

func wgInputGo(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
	var x [6][6]float32
	for t := 0; t < ntiles; t++ {
		for c := 0; c < nch; c++ {
			s0, d0 := t*srcTile+c, t*dstTile+c
			for r := range 6 {
				for s := range 6 {
					x[r][s] = src[s0+r*srcRow+s*srcCol]
				}
			}
			var tmp [6][6]float32 // tmp[k][s] = (Bᵀ X)[k][s]
			for s := range 6 {
				col := [6]float32{x[0][s], x[1][s], x[2][s], x[3][s], x[4][s], x[5][s]}
				o := wgBT(&col)
				for k := range 6 {
					tmp[k][s] = o[k]
				}
			}
			for k := range 6 {
				o := wgBT(&tmp[k])
				for l := range 6 {
					dst[d0+k*dstRow+l*dstCol] = o[l]
				}
			}
		}
	}
}

func wgOutputGo(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int, bias []float32, floor float32) {
	for t := 0; t < ntiles; t++ {
		for c := 0; c < nch; c++ {
			s0, d0 := t*srcTile+c, t*dstTile+c
			var tmp [4][6]float32
			for l := range 6 {
				var col [6]float32
				for r := range 6 {
					col[r] = src[s0+r*srcRow+l*srcCol]
				}
				o := wgAT(&col)
				for i := range 4 {
					tmp[i][l] = o[i]
				}
			}
			var b float32
			if bias != nil {
				b = bias[c]
			}
			for i := range 4 {
				o := wgAT(&tmp[i])
				for j := range 4 {
					v := o[j] + b
					if !(v >= floor) && !math.IsNaN(float64(v)) {
						v = floor
					}
					dst[d0+i*dstRow+j*dstCol] = v
				}
			}
		}
	}
}

func wgOutAdjGo(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
	for t := 0; t < ntiles; t++ {
		for c := 0; c < nch; c++ {
			s0, d0 := t*srcTile+c, t*dstTile+c
			var tmp [6][4]float32
			for j := range 4 {
				var col [4]float32
				for r := range 4 {
					col[r] = src[s0+r*srcRow+j*srcCol]
				}
				o := wgA(&col)
				for k := range 6 {
					tmp[k][j] = o[k]
				}
			}
			for k := range 6 {
				o := wgA(&tmp[k])
				for l := range 6 {
					dst[d0+k*dstRow+l*dstCol] = o[l]
				}
			}
		}
	}
}

func wgFilterGo(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
	for t := 0; t < ntiles; t++ {
		for c := 0; c < nch; c++ {
			s0, d0 := t*srcTile+c, t*dstTile+c
			var tmp [6][3]float32
			for b := range 3 {
				col := [3]float32{src[s0+b*srcCol], src[s0+srcRow+b*srcCol], src[s0+2*srcRow+b*srcCol]}
				o := wgG(&col)
				for k := range 6 {
					tmp[k][b] = o[k]
				}
			}
			for k := range 6 {
				o := wgG(&tmp[k])
				for l := range 6 {
					dst[d0+k*dstRow+l*dstCol] = o[l]
				}
			}
		}
	}
}

func wgFilterAdjGo(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
	for t := 0; t < ntiles; t++ {
		for c := 0; c < nch; c++ {
			s0, d0 := t*srcTile+c, t*dstTile+c
			var tmp [3][6]float32
			for l := range 6 {
				var col [6]float32
				for r := range 6 {
					col[r] = src[s0+r*srcRow+l*srcCol]
				}
				o := wgGT(&col)
				for a := range 3 {
					tmp[a][l] = o[a]
				}
			}
			for a := range 3 {
				o := wgGT(&tmp[a])
				for b := range 3 {
					dst[d0+a*dstRow+b*dstCol] = o[b]
				}
			}
		}
	}
}

// transpose sets dst[d0 + j*ldd + i] = src[s0 + i*lds + j] for i < rows, j < cols. ldd
// may be negative.
func transpose(dst []float32, d0, ldd int, src []float32, s0, lds int, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	r8, c8 := rows&^7, cols&^7
	if wg.tr8 != nil && r8 > 0 && c8 > 0 {
		r16, c16 := rows&^15, cols&^15
		if wg.tr16 == nil || r16 == 0 || c16 == 0 {
			r16, c16 = 0, 0
		} else {
			wg.tr16(dst, d0, ldd, src, s0, lds, r16/16, c16/16)
		}
		// What 16x16 blocks left of the 8-aligned part: the rows below them, then the
		// columns right of them.
		if r8 > r16 {
			wg.tr8(dst, d0+r16, ldd, src, s0+r16*lds, lds, (r8-r16)/8, c8/8)
		}
		if c8 > c16 && r16 > 0 {
			wg.tr8(dst, d0+c16*ldd, ldd, src, s0+c16, lds, r16/8, (c8-c16)/8)
		}
	} else {
		r8, c8 = 0, 0
	}
	// The edges: rows r8.. for every column, and columns c8.. for the first r8 rows.
	for i := r8; i < rows; i++ {
		s := src[s0+i*lds : s0+i*lds+cols]
		for j, v := range s {
			dst[d0+j*ldd+i] = v
		}
	}
	if c8 < cols {
		for i := 0; i < r8; i++ {
			s := src[s0+i*lds+c8 : s0+i*lds+cols]
			for j, v := range s {
				dst[d0+(c8+j)*ldd+i] = v
			}
		}
	}
}

// ---------------------------------------------------------------------------------
// The convolution engine.

// wgConv is one Winograd convolution: x (N, Cin, H, W) ⊛ 3x3 filters, stride 1, output
// (N, Cout, Ho, Wo), the window of output (oy, ox) starting at input (oy-pt, ox-pl).
// Padding beyond the input (any amount, even negative) reads zeros.
type wgConv struct {
	n, cin, h, w int
	cout, ho, wo int
	pt, pl       int
	th, tw       int // tiles per image: ceil(Ho/4) × ceil(Wo/4)
	cip, cop     int // channels padded to 16
	chunkTiles   int // tiles per chunk, for tests; 0: chosen by size
	gemm         gemm.Kernel
	// pool2: y has half the output's size and receives the sums of its 2x2 blocks (the
	// gradient of an input that was upsampled x2 before the convolution).
	pool2 bool
}

func newWgConv(n, cin, h, w, cout, ho, wo, pt, pl int) wgConv {
	return wgConv{n: n, cin: cin, h: h, w: w, cout: cout, ho: ho, wo: wo, pt: pt, pl: pl,
		th: (ho + 3) / 4, tw: (wo + 3) / 4, cip: wgPad(cin), cop: wgPad(cout)}
}

// wgChunkBytes is the size the transformed inputs and outputs of a chunk aim at: about
// a core's L2 cache, so that they stay near between the transforms and the products.
const wgChunkBytes = 1 << 20

// chunkRows returns the number of tile rows processed together: about enough tiles that
// the transformed inputs and outputs of a chunk fill wgChunkBytes, at least 64 tiles
// (the GEMMs of wide layers repack the filters for every chunk) and at most 512. With
// ways > 1 the number of chunks is rounded up to a multiple of ways, so that goroutines
// taking whole chunks finish together: the forward pass and the data gradient, whose
// chunks write disjoint outputs, pass GOMAXPROCS; the filter gradient, which sums over
// chunks, passes its number of parts, so that its chunks depend on the sizes alone.
func (c *wgConv) chunkRows(ways int) int {
	t := wgChunkBytes / (4 * 36 * (c.cip + c.cop))
	t = min(max(t, 64), 512)
	if c.chunkTiles > 0 {
		t = c.chunkTiles
	}
	rows := max(1, (t+c.tw/2)/c.tw)
	total := c.n * c.th
	if c.chunkTiles == 0 {
		n := (total + rows - 1) / rows
		if p := ways; p > 1 && n >= 2*p && n%p != 0 {
			n = (n + p - 1) / p * p
			rows = (total + n - 1) / n
		}
	}
	return min(rows, total)
}

// segment is a run of tile rows of one image within a chunk: rows [th0, th1) of image n;
// its tiles are numbered from t0 within the chunk and its band starts at off.
type segment struct {
	n, th0, th1 int
	t0, off     int
}

// segments splits the chunk of flattened tile rows [r0, r1) at image boundaries. band is
// the number of input (or gradient) rows a segment's band holds beyond 4 per tile row,
// rowFloats the floats per band row.
func (c *wgConv) segments(r0, r1, extra, rowFloats int, out []segment) ([]segment, int) {
	out = out[:0]
	off := 0
	for r := r0; r < r1; {
		n, th := r/c.th, r%c.th
		th1 := min(c.th, th+(r1-r))
		out = append(out, segment{n: n, th0: th, th1: th1, t0: (r - r0) * c.tw, off: off})
		off += (4*(th1-th) + extra) * rowFloats
		r += th1 - th
	}
	return out, off
}

// wgDirectCols is the narrowest image whose rows gatherNHWC and scatterNCHW transpose
// in place, without the staging copy.
const wgDirectCols = 32

// gatherNHWC copies rows [y0, y0+nrows) and columns [x0, x0+ncols) of image n of t
// (C planes of h×w) into dst as nrows × ncols × cp, zero outside the image and in the
// channels [C, cp). With mask (shaped as t) not nil it copies t's values only where the
// mask lets a ReLU's gradient through, zeros elsewhere. stage is scratch of at least
// C·nrows·ncols floats (see gatherWin.planes).
func gatherNHWC(dst, t []float32, C, h, w, cp, n, y0, nrows, x0, ncols int, stage, mask []float32) {
	if g, ok := newGatherWin(dst, C, h, w, cp, y0, nrows, x0, ncols); ok {
		g.planes(dst, t, C, 0, h, w, n, stage, mask)
	}
}

// gatherWin is where a gather's destination meets the image: dst holds rows
// [y0, y0+nrows) and columns [x0, x0+ncols) of an h×w image, cp floats a pixel, and the
// image covers its rows [vy0, vy1) and columns [vx0, vx1).
type gatherWin struct {
	y0, x0, cp, rowF   int
	vy0, vy1, vx0, vx1 int
}

// newGatherWin clears dst outside the image, and inside it the channels [C, cp) of
// every pixel, and returns the window; ok is false when the image is not in it at all.
func newGatherWin(dst []float32, C, h, w, cp, y0, nrows, x0, ncols int) (g gatherWin, ok bool) {
	g = gatherWin{y0: y0, x0: x0, cp: cp, rowF: ncols * cp,
		vy0: max(y0, 0), vy1: min(y0+nrows, h), vx0: max(x0, 0), vx1: min(x0+ncols, w)}
	if g.vx1 <= g.vx0 || g.vy1 <= g.vy0 {
		clear(dst[:nrows*g.rowF])
		return g, false
	}
	clear(dst[:(g.vy0-y0)*g.rowF])
	clear(dst[(g.vy1-y0)*g.rowF : nrows*g.rowF])
	for r := g.vy0; r < g.vy1; r++ {
		d := g.row(dst, r)
		clear(d[:(g.vx0-x0)*cp])
		clear(d[(g.vx1-x0)*cp:])
		if C < cp {
			for p := g.vx0 - x0; p < g.vx1-x0; p++ {
				clear(d[p*cp+C : (p+1)*cp])
			}
		}
	}
	return g, true
}

// row returns image row r of dst.
func (g *gatherWin) row(dst []float32, r int) []float32 {
	return dst[(r-g.y0)*g.rowF : (r-g.y0+1)*g.rowF]
}

// planes transposes the window of image n of t (C planes of h×w) into channels
// [off, off+C) of dst (masked as gatherNHWC says when mask is not nil). stage is
// scratch of at least C·rows·columns of the window: each channel's rows are first
// copied out in one piece (a plane apart, C short rows would each be a separate cache
// miss and alias in the L1 cache), then transposed row by row.
func (g *gatherWin) planes(dst, t []float32, C, off, h, w, n int, stage, mask []float32) {
	plane := h * w
	base := n * C * plane
	nv, ny := g.vx1-g.vx0, g.vy1-g.vy0
	full := nv == w // whole rows: each channel's rows are one contiguous piece
	// The transpose reads row r of every channel from src at s0 + r*rowStep, channels
	// lds apart: straight from the planes for long whole rows (C streams a plane apart,
	// each a run of whole cache lines, which the prefetchers follow), else from stage.
	src, s0, rowStep, lds := t, base+g.vy0*w, w, plane
	if mask != nil || !full || w < wgDirectCols {
		for c := 0; c < C; c++ {
			at := base + c*plane + g.vy0*w + g.vx0
			sc := t[at:]
			st := stage[c*ny*nv : (c+1)*ny*nv]
			if mask != nil {
				mk := mask[at:]
				if full {
					reluMask(st, sc[:ny*w], mk[:ny*w])
					continue
				}
				for r := 0; r < ny; r++ {
					reluMask(st[r*nv:(r+1)*nv], sc[r*w:r*w+nv], mk[r*w:r*w+nv])
				}
				continue
			}
			if full {
				copy(st, sc[:ny*w])
				continue
			}
			for r := 0; r < ny; r++ {
				copy(st[r*nv:(r+1)*nv], sc[r*w:r*w+nv])
			}
		}
		src, s0, rowStep, lds = stage, 0, nv, ny*nv
	}
	for r := 0; r < ny; r++ {
		d := g.row(dst, g.vy0+r)
		transpose(d, (g.vx0-g.x0)*g.cp+off, g.cp, src, s0+r*rowStep, lds, C, nv)
	}
}

// up2 is planes from t upsampled x2 (nearest): t holds C planes of (h/2)×(w/2), and
// pixel (r, q) of the h×w image is t's (r/2, q/2). Each source row is transposed twice,
// into the even and into the odd columns.
func (g *gatherWin) up2(dst, t []float32, C, off, h, w, n int) {
	w2 := w / 2
	plane := (h / 2) * w2
	base := n * C * plane
	// Columns q = 2k (k in [e0, e1)) and q = 2k+1 (k in [o0, o1)) of [vx0, vx1).
	e0, e1 := (g.vx0+1)/2, (g.vx1+1)/2
	o0, o1 := g.vx0/2, g.vx1/2
	for r := g.vy0; r < g.vy1; r++ {
		d := g.row(dst, r)
		row := base + (r/2)*w2
		transpose(d, (2*e0-g.x0)*g.cp+off, 2*g.cp, t, row+e0, plane, C, e1-e0)
		transpose(d, (2*o0+1-g.x0)*g.cp+off, 2*g.cp, t, row+o0, plane, C, o1-o0)
	}
}

// wgSrc is the input a Winograd convolution reads, NCHW: one tensor, or the channel
// concatenation of parts, each of the convolution's input size or of half that size
// upsampled x2 (nearest).
type wgSrc []wgPart

type wgPart struct {
	data []float32
	c    int  // channels
	up   bool // (h/2)×(w/2) planes, upsampled x2
}

// gather is gatherNHWC over the parts of s, each into its channels of dst (h×w images).
func (s wgSrc) gather(dst []float32, h, w, cp, n, y0, nrows, x0, ncols int, stage []float32) {
	C := 0
	for _, p := range s {
		C += p.c
	}
	g, ok := newGatherWin(dst, C, h, w, cp, y0, nrows, x0, ncols)
	if !ok {
		return
	}
	off := 0
	for _, p := range s {
		if p.up {
			g.up2(dst, p.data, p.c, off, h, w, n)
		} else {
			g.planes(dst, p.data, p.c, off, h, w, n, stage, nil)
		}
		off += p.c
	}
}

// scatterNCHW writes nrows rows of src (nrows × ncols × cp, channels-last) to image n of
// t (C planes of h×w) at rows y0.. and columns 0..; rows ≥ h and columns ≥ w are dropped.
// stage is scratch of at least C·nrows·ncols floats (see gatherNHWC).
func scatterNCHW(t, src []float32, C, h, w, cp, n, y0, nrows, ncols int, stage []float32) {
	plane := h * w
	base := n * C * plane
	cols := min(ncols, w)
	ny := min(nrows, h-y0)
	if ny <= 0 || cols <= 0 {
		return
	}
	if cols == w && w >= wgDirectCols {
		for i := 0; i < ny; i++ {
			transpose(t, base+(y0+i)*w, plane, src, i*ncols*cp, cp, cols, C)
		}
		return
	}
	for i := 0; i < ny; i++ {
		transpose(stage, i*cols, ny*cols, src, i*ncols*cp, cp, cols, C)
	}
	for c := 0; c < C; c++ {
		dst := t[base+c*plane+y0*w:]
		st := stage[c*ny*cols : (c+1)*ny*cols]
		if cols == w {
			copy(dst[:ny*w], st)
			continue
		}
		for i := 0; i < ny; i++ {
			copy(dst[i*w:i*w+cols], st[i*cols:(i+1)*cols])
		}
	}
}

// scatterPool2 is scatterNCHW for the gradient of an input upsampled x2: t holds C
// planes of (h/2)×(w/2) and receives, for every 2x2 block of the nrows (even) rows at y0
// (even) of src, the block's sum, (r0[2j] + r0[2j+1]) + (r1[2j] + r1[2j+1]) as
// Upsample2D's gradient adds it. stage is scratch of at least C·nrows·ncols floats.
func scatterPool2(t, src []float32, C, h, w, cp, n, y0, nrows, ncols int, stage []float32) {
	cols := min(ncols, w)
	ny := min(nrows, h-y0)
	if ny <= 0 || cols <= 0 {
		return
	}
	for i := 0; i < ny; i++ {
		transpose(stage, i*cols, ny*cols, src, i*ncols*cp, cp, cols, C)
	}
	w2 := w / 2
	plane := (h / 2) * w2
	base := n * C * plane
	for c := 0; c < C; c++ {
		st := stage[c*ny*cols : (c+1)*ny*cols]
		for i := 0; i+1 < ny; i += 2 {
			dst := t[base+c*plane+(y0+i)/2*w2:]
			down2Rows(dst[:cols/2], st[i*cols:(i+1)*cols], st[(i+1)*cols:(i+2)*cols])
		}
	}
}

// nhwc is an activation copied whole to channels-last: image n's row r, column q (in
// the activation's coordinates, which may be negative: zero padding) is at
// ((n*rows + r + top)*cols + q + left)*cp.
type nhwc struct {
	data                  []float32
	top, left, rows, cols int
	cp                    int
}

func (a *nhwc) at(n, r, q int) int { return ((n*a.rows+r+a.top)*a.cols + q + a.left) * a.cp }

// chainLayout is the channels-last layout of a convolution's output (N, C, H, W) that
// both the next 3x3 same-size Winograd convolution reads its input from (xa) and the
// producer's gradient ops read their output gradient from (its gradLayout): one pixel
// of zeros above and left of the image, and below and right of it up to whole 4x4
// tiles plus one.
func chainLayout(c, h, w int) nhwc {
	return nhwc{top: 1, left: 1, rows: 4*((h+3)/4) + 2, cols: 4*((w+3)/4) + 2, cp: wgPad(c)}
}

// size is the number of floats of n images in a's layout.
func (a *nhwc) size(n int) int { return n * a.rows * a.cols * a.cp }

// clearBorder zeroes everything of n images of a outside the h×w image (the pixels
// padding it): the image's own pixels are written by the convolution.
func (a *nhwc) clearBorder(n, h, w int) {
	rowF := a.cols * a.cp
	for img := range n {
		for r := -a.top; r < a.rows-a.top; r++ {
			row := a.data[a.at(img, r, -a.left):][:rowF]
			if r < 0 || r >= h {
				clear(row)
				continue
			}
			clear(row[:a.left*a.cp])
			clear(row[(a.left+w)*a.cp:])
		}
	}
}

// putRows writes rows [r0, r0+nr) of image n, columns [0, ncols), from src (rows of
// stride pixels, a.cp floats each), kept only where mask (a's layout) is not 0 when mask
// is not nil.
func (a *nhwc) putRows(src, mask []float32, n, r0, nr, ncols, stride int) {
	for i := range nr {
		at := a.at(n, r0+i, 0)
		d := a.data[at : at+ncols*a.cp]
		s := src[i*stride*a.cp:][:ncols*a.cp]
		if mask != nil {
			reluMask(d, s, mask[at:at+ncols*a.cp])
		} else {
			copy(d, s)
		}
	}
}

// gatherAll copies t (N × C planes of h×w) into a, rows [-top, rows-top) and columns
// [-left, cols-left), zeros outside; with mask not nil, only where it lets a ReLU's
// gradient through (see gatherNHWC).
func gatherAll(ws *Workspace, a *nhwc, t, mask []float32, n, C, h, w int) {
	rowF := a.cols * a.cp
	step := max(1, (16<<10)/max(C*a.cols, 1))
	parallelFor(n*a.rows, func(lo, hi int) {
		stage := ws.get(C * a.cols * min(step, hi-lo))
		defer ws.put(stage)
		for k := lo; k < hi; {
			img, r := k/a.rows, k%a.rows
			nr := min(step, hi-k, a.rows-r)
			gatherNHWC(a.data[k*rowF:(k+nr)*rowF], t, C, h, w, a.cp, img, r-a.top, nr, -a.left, a.cols, stage, mask)
			k += nr
		}
	})
}

// wgSumParts is the most parts sumPixels cuts the pixels into, wgSumMinPixels the fewest
// pixels of a part.
const (
	wgSumParts     = 8
	wgSumMinPixels = 2048
)

// sumPixels sets db[c] for c < C to the sum of channel c over every pixel of a (its
// zero padding included), in float64: the pixels are cut into parts fixed by the sizes,
// each summed in order and the parts added in order, so that the bits do not depend on
// the number of threads. sums is scratch, grown as needed and returned.
func (a *nhwc) sumPixels(db []float32, n, C int, sums [][16]float64) [][16]float64 {
	npix := n * a.rows * a.cols
	parts := parallel.Parts(npix, wgSumMinPixels, wgSumParts)
	nb := a.cp / 16
	if cap(sums) < parts*nb {
		sums = make([][16]float64, parts*nb)
	}
	sums = sums[:parts*nb]
	parallelFor(parts*nb, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			part, b := k/nb, k%nb
			p0, p1 := parallel.Range(npix, parts, part)
			sums[k] = [16]float64{}
			colSum64(&sums[k], a.data[p0*a.cp+16*b:], p1-p0, a.cp)
		}
	})
	for c := 0; c < C; c++ {
		var t float64
		for part := 0; part < parts; part++ {
			t += sums[part*nb+c/16][c%16]
		}
		db[c] = float32(t)
	}
	return sums
}

// gradLayout returns the channels-last layout of dY (without data) that both the data
// gradient (a convolution of dY, windows from (4·th - pt', 4·tw - pl')) and the filter
// gradient (4x4 blocks of dY at (4·th, 4·tw)) can read.
func (c *wgConv) gradLayout() nhwc {
	d := c.dataGrad()
	top, left := max(d.pt, 0), max(d.pl, 0)
	rows := max(4*d.th+2-d.pt, 4*c.th) + top
	cols := max(4*d.tw+2-d.pl, 4*c.tw) + left
	return nhwc{top: top, left: left, rows: rows, cols: cols, cp: c.cop}
}

// filterTransform computes U[ξ][k][0:np] = (G g Gᵀ)[ξ] for k < K from filters laid out as
// wt[(k*9 + 3a + b)*np + j] (j: the output-channel axis, padded to np).
func filterTransform(u, wt []float32, K, np int) {
	parallelFor(K, func(k0, k1 int) {
		wg.filter(u[k0*np:], 6*K*np, K*np, np, wt[k0*9*np:], 3*np, np, 9*np, np, k1-k0)
	})
}

// forwardWeights returns U for y = x ⊛ w: wt is w (Cout × Cin·9) transposed to
// (Cin·9) × cop, then transformed to U[ξ][Cin][cop].
func (c *wgConv) forwardWeights(ws *Workspace, w []float32) []float32 {
	wt := ws.get(c.cin * 9 * c.cop)
	parallelFor(c.cin, func(c0, c1 int) {
		rows := (c1 - c0) * 9
		// wt rows c0*9..c1*9 = columns c0*9.. of w (Cout × Cin·9).
		transpose(wt, c0*9*c.cop, c.cop, w, c0*9, c.cin*9, c.cout, rows)
		if c.cout < c.cop {
			for r := c0 * 9; r < c1*9; r++ {
				clear(wt[r*c.cop+c.cout : (r+1)*c.cop])
			}
		}
	})
	u := ws.get(36 * c.cin * c.cop)
	filterTransform(u, wt, c.cin, c.cop)
	ws.put(wt)
	return u
}

// dataGradWeights returns U' for the data gradient of y = x ⊛ w with respect to the
// input channels [off, off+C), a convolution of dY (Cout channels) with
// w'[ci][co][a][b] = w[co][off+ci][2-a][2-b]: wt'[(co*9 + 8-(3a+b))][ci], then
// U'[ξ][Cout][pad(C)].
func (c *wgConv) dataGradWeights(ws *Workspace, w []float32, off, C int) []float32 {
	cp := wgPad(C)
	wt := ws.get(c.cout * 9 * cp)
	parallelFor(c.cout, func(lo, hi int) {
		for co := lo; co < hi; co++ {
			// w[co][off:off+C] is C × 9; its transpose, rows reversed, goes to wt rows
			// co*9+8 .. co*9.
			transpose(wt, (co*9+8)*cp, -cp, w, (co*c.cin+off)*9, 9, C, 9)
			if C < cp {
				for r := co * 9; r < co*9+9; r++ {
					clear(wt[r*cp+C : (r+1)*cp])
				}
			}
		}
	})
	u := ws.get(36 * c.cout * cp)
	filterTransform(u, wt, c.cout, cp)
	ws.put(wt)
	return u
}

// forward computes y = x ⊛ w (+ bias, then max(·, floor)) from U = forwardWeights(w).
// bias may be nil; floor is 0 for a fused ReLU and -Inf otherwise.
func (c *wgConv) forward(ws *Workspace, x, u, bias []float32, floor float32, y []float32) {
	c.forwardFrom(ws, wgSrc{{data: x, c: c.cin}}, nil, u, bias, floor, y)
}

// forwardFrom is forward from the parts x, or from x's channels-last copy xa when not
// nil.
func (c *wgConv) forwardFrom(ws *Workspace, x wgSrc, xa *nhwc, u, bias []float32, floor float32, y []float32) {
	c.forwardTo(ws, x, xa, u, bias, floor, wgDst{y: y})
}

// wgDst is where a Winograd convolution writes its output: y (NCHW), or a (channels-last,
// in a chain layout: its padding set to 0), through mask when not nil (a's layout: the
// output is kept where mask is not 0, as a ReLU's gradient passes).
type wgDst struct {
	y    []float32
	a    *nhwc
	mask []float32
}

// forwardTo is forwardFrom writing to dst.
func (c *wgConv) forwardTo(ws *Workspace, x wgSrc, xa *nhwc, u, bias []float32, floor float32, dst wgDst) {
	if dst.a != nil {
		dst.a.clearBorder(c.n, c.ho, c.wo)
	}
	T := c.chunkRows(runtime.GOMAXPROCS(0))
	biasP := ws.get(c.cop)
	defer ws.put(biasP)
	clear(biasP)
	copy(biasP, bias)
	maxTiles := T * c.tw
	c.chunks(T, func(par bool) func(r0, r1 int) {
		v := ws.get(36 * maxTiles * c.cip)
		m := ws.get(36 * maxTiles * c.cop)
		if c.cout < c.cop {
			clear(m) // the GEMMs never write the padding channels: keep them finite
		}
		var segs []segment
		return func(r0, r1 int) {
			if r0 < 0 { // done
				ws.put(v)
				ws.put(m)
				return
			}
			segs = c.fwdChunk(ws, par, x, xa, u, biasP, floor, dst, v, m, r0, r1, segs)
		}
	})
}

func (c *wgConv) fwdChunk(ws *Workspace, par bool, x wgSrc, xa *nhwc, u, bias []float32, floor float32, dst wgDst, v, m []float32, r0, r1 int, segs []segment) []segment {
	nt := (r1 - r0) * c.tw
	wb := 4*c.tw + 2 // band width in pixels
	var bandSize int
	segs, bandSize = c.segments(r0, r1, 2, wb*c.cip, segs)
	if xa != nil {
		// Transform every tile straight from the channels-last copy.
		c.tileRows(ws, par, 0, segs, func(s *segment, th int, _ []float32) {
			t := s.t0 + (th-s.th0)*c.tw
			src := xa.data[xa.at(s.n, 4*th-c.pt, -c.pl):]
			wg.input(v[t*c.cip:], 6*nt*c.cip, nt*c.cip, c.cip, src, xa.cols*c.cip, c.cip, 4*c.cip, c.cip, c.tw)
		})
	} else {
		band := ws.get(bandSize)
		// Gather the input bands (channels-last), then transform every tile.
		c.bandRows(ws, par, c.cin*wb, segs, 2, func(s *segment, i0, i1 int, stage []float32) {
			rows := band[s.off+i0*wb*c.cip : s.off+i1*wb*c.cip]
			x.gather(rows, c.h, c.w, c.cip, s.n, 4*s.th0-c.pt+i0, i1-i0, -c.pl, wb, stage)
		})
		c.tileRows(ws, par, 0, segs, func(s *segment, th int, _ []float32) {
			t := s.t0 + (th-s.th0)*c.tw
			src := band[s.off+4*(th-s.th0)*wb*c.cip:]
			wg.input(v[t*c.cip:], 6*nt*c.cip, nt*c.cip, c.cip, src, wb*c.cip, c.cip, 4*c.cip, c.cip, c.tw)
		})
		ws.put(band)
	}
	// M_ξ (nt × Cout) = V_ξ (nt × Cin) · U_ξ (Cin × Cout).
	forRange(par, 36, func(lo, hi int) {
		for xi := lo; xi < hi; xi++ {
			c.mulNN(nt, v[xi*nt*c.cip:], u[xi*c.cin*c.cop:], m[xi*nt*c.cop:])
		}
	})
	// Output transform per tile row into a channels-last strip, then to NCHW.
	stripF := 4 * 4 * c.tw * c.cop
	c.tileRows(ws, par, stripF+c.cout*4*4*c.tw, segs, func(s *segment, th int, scratch []float32) {
		strip, stage := scratch[:stripF], scratch[stripF:]
		t := s.t0 + (th-s.th0)*c.tw
		wg.output(strip, 4*c.tw*c.cop, c.cop, 4*c.cop, m[t*c.cop:], 6*nt*c.cop, nt*c.cop, c.cop, c.cop, c.tw, bias, floor)
		switch {
		case dst.a != nil:
			dst.a.putRows(strip, dst.mask, s.n, 4*th, min(4, c.ho-4*th), min(4*c.tw, c.wo), 4*c.tw)
		case c.pool2:
			scatterPool2(dst.y, strip, c.cout, c.ho, c.wo, c.cop, s.n, 4*th, 4, 4*c.tw, stage)
		default:
			scatterNCHW(dst.y, strip, c.cout, c.ho, c.wo, c.cop, s.n, 4*th, 4, 4*c.tw, stage)
		}
	})
	return segs
}

// chunks runs the chunks of T tile rows each. With enough chunks, every goroutine takes
// whole chunks (whichever is next) and runs them alone (no synchronisation inside a
// chunk); otherwise the chunks run one after the other, each phase spread over
// goroutines. worker is called once per goroutine (par: whether its chunks should
// parallelise their phases) and returns the function that runs chunk [r0, r1), called
// with r0 < 0 at the end. Which goroutine runs a chunk varies from run to run: chunks
// must write only their own outputs.
func (c *wgConv) chunks(T int, worker func(par bool) func(r0, r1 int)) {
	rows := c.n * c.th
	n := (rows + T - 1) / T
	workers := min(runtime.GOMAXPROCS(0), n)
	if n < 2*workers || workers < 2 {
		run := worker(true)
		for r0 := 0; r0 < rows; r0 += T {
			run(r0, min(r0+T, rows))
		}
		run(-1, -1)
		return
	}
	var next atomic.Int64
	parallelFor(workers, func(lo, hi int) {
		for range hi - lo {
			run := worker(false)
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					break
				}
				run(k*T, min((k+1)*T, rows))
			}
			run(-1, -1)
		}
	})
}

// wgGradMaxParts is the most partial sums of dU the filter gradient adds up, and
// wgGradMinChunks the fewest chunks of a part.
const (
	wgGradMaxParts  = 4
	wgGradMinChunks = 2
)

// filterGrad computes dW (Cout × Cin·9) of y = x ⊛ w from dY.
func (c *wgConv) filterGrad(ws *Workspace, x, dy, dw []float32) {
	c.filterGradFrom(ws, wgSrc{{data: x, c: c.cin}}, nil, dy, nil, dw)
}

// filterGradFrom is filterGrad reading dY from its channels-last copy dya when not nil
// (laid out by gradLayout), x from xa when not nil (as forwardFrom).
func (c *wgConv) filterGradFrom(ws *Workspace, x wgSrc, xa *nhwc, dy []float32, dya *nhwc, dw []float32) {
	T := c.chunkRows(1)
	duF := 36 * c.cin * c.cop
	rows := c.n * c.th
	chunks := (rows + T - 1) / T
	parts := 1
	if duF <= 1<<20 {
		parts = parallel.Parts(chunks, wgGradMinChunks, wgGradMaxParts)
		// As many chunks in every part, of near-equal sizes (rows Range(rows, chunks,
		// k)), so that the parts take the same time.
		chunks = chunks / parts * parts
	}
	maxTiles := (rows + chunks - 1) / chunks * c.tw
	du := ws.get(duF)
	// dU is a sum over chunks. They are cut into parts fixed by the sizes (one when
	// partial sums would be large); each part adds its chunks in order, into du for the
	// first part and into a partial sum for the others, and the partial sums are then
	// added to du in part order. The thread count decides only which goroutine runs a
	// part, so dU has the same bits on any number of threads.
	sums := make([][]float32, parts)
	sums[0] = du
	for i := 1; i < parts; i++ {
		sums[i] = ws.get(duF)
	}
	// part runs the chunks of part i; par spreads each phase over goroutines.
	part := func(i int, par bool) {
		v := ws.get(36 * maxTiles * c.cip)
		m := ws.get(36 * maxTiles * c.cop)
		var segs, dsegs []segment
		k0, k1 := parallel.Range(chunks, parts, i)
		for k := k0; k < k1; k++ {
			r0, r1 := parallel.Range(rows, chunks, k)
			segs, dsegs = c.dwChunk(ws, par, x, xa, dy, dya, v, m, sums[i], k > k0, r0, r1, segs, dsegs)
		}
		ws.put(v)
		ws.put(m)
	}
	if parts == 1 {
		part(0, true)
	} else {
		parallelFor(parts, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				part(i, false)
			}
		})
		parallelFor(len(du), func(lo, hi int) {
			d := du[lo:hi]
			for _, p := range sums[1:] {
				for i, v := range p[lo:hi] {
					d[i] += v
				}
			}
		})
		for _, p := range sums[1:] {
			ws.put(p)
		}
	}
	// dW = Gᵀ dU G per (ci, co), into dwt[(ci*9 + 3a + b)][cop], then transposed.
	if c.cout < c.cop {
		for r := 0; r < 36*c.cin; r++ {
			clear(du[r*c.cop+c.cout : (r+1)*c.cop])
		}
	}
	dwt := ws.get(c.cin * 9 * c.cop)
	parallelFor(c.cin, func(c0, c1 int) {
		wg.filterAdj(dwt[c0*9*c.cop:], 3*c.cop, c.cop, 9*c.cop, du[c0*c.cop:], 6*c.cin*c.cop, c.cin*c.cop, c.cop, c.cop, c1-c0)
	})
	ws.put(du)
	parallelFor(c.cin, func(c0, c1 int) {
		transpose(dw, c0*9, c.cin*9, dwt, c0*9*c.cop, c.cop, (c1-c0)*9, c.cout)
	})
	ws.put(dwt)
}

// dwChunk accumulates the chunk [r0, r1)'s contribution to dU into du (overwriting it
// when !accumulate).
func (c *wgConv) dwChunk(ws *Workspace, par bool, x wgSrc, xa *nhwc, dy []float32, dya *nhwc, v, m, du []float32, accumulate bool, r0, r1 int, segs, dsegs []segment) ([]segment, []segment) {
	nt := (r1 - r0) * c.tw
	wb, wy := 4*c.tw+2, 4*c.tw
	var bandSize, dbandSize int
	segs, bandSize = c.segments(r0, r1, 2, wb*c.cip, segs)
	dsegs, dbandSize = c.segments(r0, r1, 0, wy*c.cop, dsegs)
	var band []float32
	if xa == nil {
		band = ws.get(bandSize)
		c.bandRows(ws, par, c.cin*wb, segs, 2, func(s *segment, i0, i1 int, stage []float32) {
			rows := band[s.off+i0*wb*c.cip : s.off+i1*wb*c.cip]
			x.gather(rows, c.h, c.w, c.cip, s.n, 4*s.th0-c.pt+i0, i1-i0, -c.pl, wb, stage)
		})
	}
	var dband []float32
	if dya == nil {
		dband = ws.get(dbandSize)
		c.bandRows(ws, par, c.cout*wy, dsegs, 0, func(s *segment, i0, i1 int, stage []float32) {
			rows := dband[s.off+i0*wy*c.cop : s.off+i1*wy*c.cop]
			gatherNHWC(rows, dy, c.cout, c.ho, c.wo, c.cop, s.n, 4*s.th0+i0, i1-i0, 0, wy, stage, nil)
		})
	}
	c.tileRows(ws, par, 0, segs, func(s *segment, th int, _ []float32) {
		t := s.t0 + (th-s.th0)*c.tw
		if xa != nil {
			src := xa.data[xa.at(s.n, 4*th-c.pt, -c.pl):]
			wg.input(v[t*c.cip:], 6*nt*c.cip, nt*c.cip, c.cip, src, xa.cols*c.cip, c.cip, 4*c.cip, c.cip, c.tw)
			return
		}
		src := band[s.off+4*(th-s.th0)*wb*c.cip:]
		wg.input(v[t*c.cip:], 6*nt*c.cip, nt*c.cip, c.cip, src, wb*c.cip, c.cip, 4*c.cip, c.cip, c.tw)
	})
	c.tileRows(ws, par, 0, dsegs, func(s *segment, th int, _ []float32) {
		t := s.t0 + (th-s.th0)*c.tw
		if dya != nil {
			src := dya.data[dya.at(s.n, 4*th, 0):]
			wg.outAdj(m[t*c.cop:], 6*nt*c.cop, nt*c.cop, c.cop, src, dya.cols*c.cop, c.cop, 4*c.cop, c.cop, c.tw)
			return
		}
		src := dband[s.off+4*(th-s.th0)*wy*c.cop:]
		wg.outAdj(m[t*c.cop:], 6*nt*c.cop, nt*c.cop, c.cop, src, wy*c.cop, c.cop, 4*c.cop, c.cop, c.tw)
	})
	if band != nil {
		ws.put(band)
	}
	if dband != nil {
		ws.put(dband)
	}
	// dU_ξ (Cin × Cout) += V_ξᵀ (Cin × nt) · dM_ξ (nt × Cout).
	var beta float32
	if accumulate {
		beta = 1
	}
	forRange(par, 36, func(lo, hi int) {
		for xi := lo; xi < hi; xi++ {
			c.mulTN(nt, v[xi*nt*c.cip:], m[xi*nt*c.cop:], beta, du[xi*c.cin*c.cop:])
		}
	})
	return segs, dsegs
}

// wgSmallMax is the most input or output channels for which the 36 products use
// gemm's unpacked kernels (SmallNN, SmallTN): with a few dozen channels, packing the
// operands would cost about as much as the multiplication; beyond a few hundred the
// packed kernels catch up and split single large products over threads.
const wgSmallMax = 256

// mulNN sets M_ξ (nt × cop) = V_ξ (nt × Cin, rows cip apart) · U_ξ (Cin × cop). The
// padding columns of M come out as V times U's zero padding columns.
func (c *wgConv) mulNN(nt int, v, u, m []float32) {
	if c.cin <= wgSmallMax && c.cop <= wgSmallMax {
		c.gemm.SmallNN(nt, c.cop, c.cin, v, c.cip, u, c.cop, 0, m, c.cop)
		return
	}
	c.gemm.Sgemm(false, false, nt, c.cout, c.cin, 1, v, c.cip, u, c.cop, 0, m, c.cop)
}

// mulTN sets dU_ξ (Cin × cop) = V_ξᵀ (Cin × nt) · dM_ξ (nt × cop) + beta·dU_ξ. The padding
// columns of dU get V times dM's padding (cleared by the caller before use).
func (c *wgConv) mulTN(nt int, v, dm []float32, beta float32, du []float32) {
	if c.cin <= wgSmallMax && c.cop <= wgSmallMax {
		c.gemm.SmallTN(c.cin, c.cop, nt, v, c.cip, dm, c.cop, beta, du, c.cop)
		return
	}
	c.gemm.Sgemm(true, false, c.cin, c.cout, nt, 1, v, c.cip, dm, c.cop, beta, du, c.cop)
}

// forRange runs f over [0, n): spread over goroutines when par, else in one call.
func forRange(par bool, n int, f func(lo, hi int)) {
	if par {
		parallelFor(n, f)
	} else if n > 0 {
		f(0, n)
	}
}

// dataGrad returns the engine computing dX of y = x ⊛ w as a convolution of dY.
func (c *wgConv) dataGrad() wgConv { return c.dataGradPart(c.cin, false) }

// dataGradPart returns the engine computing the gradient with respect to C of the input
// channels (all of them: C = Cin), written at half size, summed over 2x2 blocks, when
// pool2 (the channels of a part upsampled x2).
func (c *wgConv) dataGradPart(C int, pool2 bool) wgConv {
	d := newWgConv(c.n, c.cout, c.ho, c.wo, C, c.h, c.w, 2-c.pt, 2-c.pl)
	d.chunkTiles, d.gemm, d.pool2 = c.chunkTiles, c.gemm, pool2
	return d
}

// bandRows runs f over the band rows of the segments (4 per tile row plus extra per
// segment) in runs [i0, i1) of consecutive rows of one segment, spread over goroutines
// when par; each goroutine passes f its own scratch of scratchF floats per row.
func (c *wgConv) bandRows(ws *Workspace, par bool, scratchF int, segs []segment, extra int, f func(s *segment, i0, i1 int, scratch []float32)) {
	total, most := 0, 0
	for _, s := range segs {
		rows := 4*(s.th1-s.th0) + extra
		total += rows
		most = max(most, rows)
	}
	// Runs of at most step rows keep the staging buffer within about 64 KiB (L1/L2).
	step := max(1, (16<<10)/max(scratchF, 1))
	forRange(par, total, func(lo, hi int) {
		scratch := ws.get(scratchF * min(most, hi-lo, step))
		defer ws.put(scratch)
		k := 0
		for si := range segs {
			s := &segs[si]
			rows := 4*(s.th1-s.th0) + extra
			for i0, i1 := max(lo-k, 0), min(hi-k, rows); i0 < i1; i0 += step {
				f(s, i0, min(i0+step, i1), scratch)
			}
			k += rows
		}
	})
}

// tileRows runs f over every tile row of the segments, spread over goroutines,
// with per-goroutine scratch as parallelBandRows.
func (c *wgConv) tileRows(ws *Workspace, par bool, scratchF int, segs []segment, f func(s *segment, th int, scratch []float32)) {
	total := 0
	for _, s := range segs {
		total += s.th1 - s.th0
	}
	forRange(par, total, func(lo, hi int) {
		scratch := ws.get(scratchF)
		defer ws.put(scratch)
		k := 0
		for si := range segs {
			s := &segs[si]
			for th := s.th0; th < s.th1 && k < hi; th++ {
				if k >= lo {
					f(s, th, scratch)
				}
				k++
			}
		}
	})
}

// dyShare lends the channels-last copy of a layer's output gradient to its Winograd
// gradient ops (the filter gradient and one data gradient per input part): whichever
// runs first gathers it, the others reuse it and the last frees it. A nil *dyShare (a
// layer with one gradient op) shares nothing: acquire returns nil.
type dyShare struct {
	// chained: the layer's output is in a chain layout, and so is dY (masked by the
	// layer's fused ReLU already): acquire lends dY itself.
	chained bool
	mu      sync.Mutex
	users   int     // the ops sharing it
	key     uintptr // the dY data it was gathered from
	seen    []any   // the ops that have acquired it
	a       nhwc
}

// acquire returns the channels-last dY, masked by mask (the layer's output, for its
// fused ReLU) when not nil.
func (sh *dyShare) acquire(ws *Workspace, c *wgConv, dy, mask []float32, user any) *nhwc {
	if sh == nil {
		return nil
	}
	if sh.chained {
		// dY is already channels-last (and masked): the next convolution's data gradient
		// wrote it so.
		a := c.gradLayout()
		a.data = dy[:a.size(c.n)]
		return &a
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.a.data != nil && sh.key == addr(dy) && len(sh.seen) < sh.users && !slices.Contains(sh.seen, user) {
		sh.seen = append(sh.seen, user)
		return &sh.a
	}
	if sh.a.data != nil { // left over from a run where not every op ran
		ws.put(sh.a.data)
	}
	sh.a = c.gradLayout()
	sh.a.data = ws.get(c.n * sh.a.rows * sh.a.cols * sh.a.cp)
	gatherAll(ws, &sh.a, dy, mask, c.n, c.cout, c.ho, c.wo)
	sh.key, sh.seen = addr(dy), append(sh.seen[:0], user)
	return &sh.a
}

func (sh *dyShare) release(ws *Workspace) {
	if sh == nil || sh.chained {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.seen) >= sh.users && sh.a.data != nil {
		ws.put(sh.a.data)
		sh.a.data = nil
		clear(sh.seen)
		sh.seen = sh.seen[:0]
	}
}
