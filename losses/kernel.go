package losses

import (
	"errors"
	"fmt"
	"math"

	"github.com/vggo/vggo/internal/parallel"
)

// config is a loss after option defaults are applied: total = ceCoef·CE + diceCoef·Dice.
type config struct {
	ceCoef, diceCoef float64 // 0 leaves the term out
	ignore           int
	weights          []float64 // per-class CE weights; nil means all 1
	smoothing        float64   // CE label smoothing ε in [0, 1]
	diceSmooth       float64   // dice additive smoothing s > 0
	presentOnly      bool      // dice averages over classes present in the labels only
}

func (c *config) weight(cl int) float64 {
	if c.weights == nil {
		return 1
	}
	return c.weights[cl]
}

// chunkElems is the number of logits one chunk covers (about 32 KiB of float32). Chunk
// boundaries depend only on the shape, so every sum is taken in the same order whatever
// the number of goroutines: results are reproducible bit for bit.
const chunkElems = 8192

// chunk is a run of targets (pixels or samples) laid out so that the logit of target j,
// class cl is at base + cl*hw + j*ps, and its label at px + j.
type chunk struct{ base, px, pix, ps int }

// state is what one loss op keeps between the forward and the backward pass, and the
// buffers it reuses from run to run. Shapes are fixed per graph, so it is sized once.
type state struct {
	n, c, hw int
	chunks   []chunk
	lse      []float64 // log-sum-exp of the logits, per target
	inv      []float64 // 1/Σ_c exp(x_c - max), per target: p_c = e_c·inv
	m32, s32 []float32 // per-target max and Σ exp, for the vector kernels

	// Per-chunk partial sums, combined in chunk order after the parallel pass.
	ceNum, ceSmooth, ceW []float64
	count                []int64
	inter, psum, ysum    []float64 // len(chunks)·c, dice only
	errs                 []error

	scratch []float64 // one value per target, chunk k's at its targets

	pool *parallel.Pool // runs the chunks; kept when setup resizes the state

	// Dice backward coefficients (see backward), per class.
	diceA, diceB []float64

	grad []float32 // the backward output, reused

	diceTmp []float64 // 3·c: A_c, B_c, Y_c while finishing

	last  Terms
	runs  int   // successful forward passes
	fresh bool  // forward succeeded since the last backward
	err   error // of the last forward pass
}

// setup sizes st for logits (n, c, hw) if needed.
func (st *state) setup(cfg *config, n, c, hw int) {
	if st.n == n && st.c == c && st.hw == hw && st.chunks != nil {
		return
	}
	pool := st.pool
	if pool == nil {
		pool = new(parallel.Pool)
	}
	*st = state{n: n, c: c, hw: hw, pool: pool}
	per := max(1, chunkElems/c)
	if hw == 1 { // (N, C): targets are samples, classes contiguous
		for lo := 0; lo < n; lo += per {
			st.chunks = append(st.chunks, chunk{base: lo * c, px: lo, pix: min(per, n-lo), ps: c})
		}
	} else { // (N, C, H, W): targets are pixels of one image
		for i := range n {
			for lo := 0; lo < hw; lo += per {
				st.chunks = append(st.chunks, chunk{
					base: i*c*hw + lo, px: i*hw + lo, pix: min(per, hw-lo), ps: 1})
			}
		}
	}
	k := len(st.chunks)
	st.lse = make([]float64, n*hw)
	st.scratch = make([]float64, n*hw)
	st.inv = make([]float64, n*hw)
	st.m32, st.s32 = make([]float32, n*hw), make([]float32, n*hw)
	// grad holds e = exp(x - max) from the forward pass until the backward pass
	// overwrites it with the gradient.
	st.grad = make([]float32, n*c*hw)
	st.ceNum, st.ceSmooth, st.ceW = make([]float64, k), make([]float64, k), make([]float64, k)
	st.count = make([]int64, k)
	st.errs = make([]error, k)
	if cfg.diceCoef != 0 {
		st.inter, st.psum, st.ysum = make([]float64, k*c), make([]float64, k*c), make([]float64, k*c)
		st.diceA, st.diceB = make([]float64, c), make([]float64, c)
		st.diceTmp = make([]float64, 3*c)
	}
}

// scratchOf returns chunk k's scratch: one value per target.
func (st *state) scratchOf(k int) []float64 {
	ch := st.chunks[k]
	return st.scratch[ch.px : ch.px+ch.pix]
}

// forChunks runs body on every chunk, spread over the state's pool when the logits are
// many enough to be worth it. Each chunk writes only its own slots (and its own targets'
// scratch), so the result does not depend on the number of threads.
func (st *state) forChunks(elems int, body func(k int)) {
	const serialBelow = 1 << 15
	if elems < serialBelow {
		for k := range st.chunks {
			body(k)
		}
		return
	}
	st.pool.For(len(st.chunks), func(lo, hi int) {
		for k := lo; k < hi; k++ {
			body(k)
		}
	})
}

// LabelError reports a label that is neither a class index nor the ignore index.
type LabelError struct {
	Index   int // flat position in the labels tensor
	Label   int
	Classes int
	Ignore  int
}

// AsLabelError finds a *LabelError in err's chain. Use it on errors from a TapeMachine:
// Gorgonia wraps op errors in a type without Unwrap (it has Err() instead), so
// errors.As alone does not see through RunAll's error.
func AsLabelError(err error) (*LabelError, bool) {
	for err != nil {
		var le *LabelError
		if errors.As(err, &le) {
			return le, true
		}
		e, ok := err.(interface{ Err() error })
		if !ok {
			return nil, false
		}
		err = e.Err()
	}
	return nil, false
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("losses: label %d at flat index %d is out of range [0, %d) and is not the ignore index %d",
		e.Label, e.Index, e.Classes, e.Ignore)
}

// forward computes the loss of logits (n, c, hw) against labels (n, hw) and keeps in st
// what backward needs.
func forward(cfg *config, st *state, x []float32, labels []int, n, c, hw int) (Terms, error) {
	st.setup(cfg, n, c, hw)
	st.forChunks(len(x), func(k int) {
		st.errs[k] = forwardChunk(cfg, st, k, x, labels, st.scratchOf(k))
	})
	st.fresh, st.err = false, nil
	for _, err := range st.errs {
		if err != nil {
			st.err = err
			return Terms{}, err
		}
	}

	var t Terms
	var num, smooth float64
	for k := range st.chunks {
		num += st.ceNum[k]
		smooth += st.ceSmooth[k]
		t.Weight += st.ceW[k]
		t.Counted += st.count[k]
	}
	if cfg.ceCoef != 0 && t.Weight > 0 {
		eps := cfg.smoothing
		t.CE = ((1-eps)*num + eps/float64(c)*smooth) / t.Weight
	}
	if cfg.diceCoef != 0 {
		t.Dice = diceFinish(cfg, st)
	}
	t.Total = cfg.ceCoef*t.CE + cfg.diceCoef*t.Dice
	st.last = t
	st.fresh = true
	st.runs++
	return t, nil
}

func forwardChunk(cfg *config, st *state, k int, x []float32, labels []int, sum []float64) error {
	ch := st.chunks[k]
	c, hw := st.c, st.hw
	lse := st.lse[ch.px : ch.px+ch.pix]
	lab := labels[ch.px : ch.px+ch.pix]
	sum = sum[:ch.pix]

	inv := st.inv[ch.px : ch.px+ch.pix]
	e := st.grad
	j0 := 0 // targets below j0 are done by the vector kernels
	if haveZ && ch.ps == 1 && ch.pix >= 16 {
		j0 = ch.pix &^ 15
		m32, s32 := st.m32[ch.px:ch.px+j0], st.s32[ch.px:ch.px+j0]
		maxRowsZ(&m32[0], &x[ch.base], hw, c, j0)
		expRowsZ(&e[ch.base], &x[ch.base], hw, c, j0, &m32[0], &s32[0])
		for j := range j0 {
			lse[j] = float64(m32[j]) + math.Log(float64(s32[j]))
			inv[j] = 1 / float64(s32[j])
		}
	}

	// Log-sum-exp per target: max first, so that exp never overflows (logits of ±1e4
	// are fine); lse holds the max until the last step.
	lse, sum = lse[j0:], sum[j0:]
	for j := range lse {
		lse[j] = math.Inf(-1)
	}
	for cl := range c {
		off := ch.base + cl*hw + j0*ch.ps
		for j := range lse {
			if v := float64(x[off+j*ch.ps]); v > lse[j] {
				lse[j] = v
			}
		}
	}
	clear(sum)
	for cl := range c {
		off := ch.base + cl*hw + j0*ch.ps
		if ch.ps == 1 {
			expRow(e[off:off+len(sum)], x[off:off+len(sum)], lse, sum)
			continue
		}
		for j := range sum {
			v := fastExp(float64(x[off+j*ch.ps]) - lse[j])
			e[off+j*ch.ps] = float32(v)
			sum[j] += v
		}
	}
	for j := range lse {
		lse[j] += math.Log(sum[j])
		inv[j0+j] = 1 / sum[j]
	}
	lse = st.lse[ch.px : ch.px+ch.pix]

	// Cross-entropy: Σ w[y]·(lse - x_y) and Σ w[y] over the targets that count.
	var num, wsum float64
	var count int64
	for j, y := range lab {
		if y == cfg.ignore {
			continue
		}
		if y < 0 || y >= c {
			return &LabelError{Index: ch.px + j, Label: y, Classes: c, Ignore: cfg.ignore}
		}
		w := cfg.weight(y)
		num += w * (lse[j] - float64(x[ch.base+y*hw+j*ch.ps]))
		wsum += w
		count++
	}
	st.ceNum[k], st.ceW[k], st.count[k] = num, wsum, count

	// Label smoothing: Σ_targets Σ_c w_c·(lse - x_c), PyTorch's smooth_loss.
	var smooth float64
	if cfg.ceCoef != 0 && cfg.smoothing != 0 {
		for cl := range c {
			off, w := ch.base+cl*hw, cfg.weight(cl)
			if w == 0 {
				continue
			}
			var s float64
			for j, y := range lab {
				if y != cfg.ignore {
					s += lse[j] - float64(x[off+j*ch.ps])
				}
			}
			smooth += w * s
		}
	}
	st.ceSmooth[k] = smooth

	// Dice: per class Σp·y, Σp, Σy over the targets that count.
	if cfg.diceCoef != 0 {
		inter, psum, ysum := st.inter[k*c:(k+1)*c], st.psum[k*c:(k+1)*c], st.ysum[k*c:(k+1)*c]
		for cl := range c {
			off := ch.base + cl*hw
			var ps, is, ys float64
			for j, y := range lab {
				if y == cfg.ignore {
					continue
				}
				p := float64(st.grad[off+j*ch.ps]) * inv[j]
				ps += p
				if y == cl {
					is += p
					ys++
				}
			}
			inter[cl], psum[cl], ysum[cl] = is, ps, ys
		}
	}
	return nil
}

// diceFinish combines the per-chunk dice sums, returns the dice loss and sets the
// backward coefficients. With A_c = 2·I_c + s, B_c = P_c + Y_c + s and K the averaged
// classes, Dice = 1 - (1/|K|)·Σ_{c∈K} A_c/B_c, and
//
//	∂Dice/∂p_ic = a_c + y_ic·b_c,  a_c = A_c/(|K|·B_c²),  b_c = -2/(|K|·B_c)  (c ∈ K; 0 otherwise).
func diceFinish(cfg *config, st *state) float64 {
	c, s := st.c, cfg.diceSmooth
	A, B, Y := st.diceTmp[:c], st.diceTmp[c:2*c], st.diceTmp[2*c:]
	for cl := range c {
		var I, P, Yc float64
		for k := range st.chunks {
			I += st.inter[k*c+cl]
			P += st.psum[k*c+cl]
			Yc += st.ysum[k*c+cl]
		}
		A[cl], B[cl], Y[cl] = 2*I+s, P+Yc+s, Yc
	}
	var K int
	var sum float64
	for cl := range c {
		st.diceA[cl], st.diceB[cl] = 0, 0
		if cfg.presentOnly && Y[cl] == 0 {
			continue
		}
		K++
		sum += A[cl] / B[cl]
	}
	if K == 0 {
		return 0
	}
	kf := float64(K)
	for cl := range c {
		if cfg.presentOnly && Y[cl] == 0 {
			continue
		}
		st.diceA[cl] = A[cl] / (kf * B[cl] * B[cl])
		st.diceB[cl] = -2 / (kf * B[cl])
	}
	return 1 - sum/kf
}

// backward writes ∂(g·total)/∂logits into st.grad and returns it. It uses the
// log-sum-exp kept by forward, which must have run on the same logits and labels.
//
// Cross-entropy, for a counted target with label y and p = softmax(x):
//
//	∂CE/∂x_c = [(1-ε)·w_y·(p_c - [c=y]) + (ε/C)·(S_w·p_c - w_c)] / W,  S_w = Σ_c w_c, W = Σ w_y.
//
// Dice, through the softmax, with t = Σ_k p_k·(a_k + [k=y]·b_k):
//
//	∂Dice/∂x_c = p_c·(a_c + [c=y]·b_c - t).
//
// Ignored targets get 0.
func backward(cfg *config, st *state, x []float32, labels []int, g float64) []float32 {
	t := st.last
	var ceScale, diceScale float64
	if cfg.ceCoef != 0 && t.Weight > 0 {
		ceScale = g * cfg.ceCoef / t.Weight
	}
	if cfg.diceCoef != 0 {
		diceScale = g * cfg.diceCoef
	}
	var sw float64
	for cl := range st.c {
		sw += cfg.weight(cl)
	}
	st.forChunks(len(x), func(k int) {
		backwardChunk(cfg, st, k, x, labels, st.scratchOf(k), ceScale, diceScale, sw)
	})
	st.fresh = false
	return st.grad
}

func backwardChunk(cfg *config, st *state, k int, x []float32, labels []int, tbuf []float64, ceScale, diceScale, sw float64) {
	ch := st.chunks[k]
	c, hw := st.c, st.hw
	inv := st.inv[ch.px : ch.px+ch.pix]
	lab := labels[ch.px : ch.px+ch.pix]
	out := st.grad // holds e = exp(x - max) from the forward pass on entry
	eps := cfg.smoothing
	a, b := st.diceA, st.diceB

	dice := diceScale != 0
	if dice {
		tbuf = tbuf[:ch.pix]
		clear(tbuf)
		for cl := range c {
			if a[cl] == 0 {
				continue
			}
			off := ch.base + cl*hw
			for j, y := range lab {
				if y != cfg.ignore {
					tbuf[j] += a[cl] * float64(out[off+j*ch.ps]) * inv[j]
				}
			}
		}
		for j, y := range lab {
			if y != cfg.ignore {
				tbuf[j] += b[y] * float64(out[ch.base+y*hw+j*ch.ps]) * inv[j]
			}
		}
	}
	if !dice && eps == 0 && cfg.weights == nil && ch.ps == 1 {
		// Plain cross-entropy on NCHW logits: g = scale·(p - [c=y]).
		j0 := 0 // targets below j0 are done by the vector kernel
		if haveZ && len(lab) >= 8 {
			j0 = len(lab) &^ 7
		}
		for cl := range c {
			off := ch.base + cl*hw
			o := out[off : off+len(lab)]
			if j0 > 0 {
				ceGradRowZ(&o[0], &inv[0], &lab[0], j0, cl, cfg.ignore, ceScale)
			}
			for j := j0; j < len(lab); j++ {
				y := lab[j]
				d := float64(o[j]) * inv[j]
				if y == cl {
					d--
				}
				if y == cfg.ignore {
					d = 0
				}
				o[j] = float32(ceScale * d)
			}
		}
		return
	}
	for cl := range c {
		off := ch.base + cl*hw
		wc := cfg.weight(cl)
		for j, y := range lab {
			i := off + j*ch.ps
			if y == cfg.ignore {
				out[i] = 0
				continue
			}
			p := float64(out[i]) * inv[j]
			var d float64
			if ceScale != 0 {
				oh := 0.0
				if cl == y {
					oh = 1
				}
				d = ceScale * ((1-eps)*cfg.weight(y)*(p-oh) + eps/float64(c)*(sw*p-wc))
			}
			if dice {
				bb := 0.0
				if cl == y {
					bb = b[cl]
				}
				d += diceScale * p * (a[cl] + bb - tbuf[j])
			}
			out[i] = float32(d)
		}
	}
}

// fastExp returns e^x for x ≤ 0 (and for x < 709) with a relative error below 1e-9, 0
// below -708: Cody-Waite reduction to |r| ≤ ln2/2 and a degree-9 Taylor polynomial. It is
// about twice as fast as math.Exp, which the softmax spends most of its time in.
func fastExp(x float64) float64 {
	if !(x > -708) { // also NaN
		if x != x {
			return x
		}
		return 0
	}
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
	)
	t := x * log2e
	k := int64(t - 0.5) // rounds toward zero: ceil(t - 0.5) for t ≤ 0.5
	if t > 0.5 {
		k = int64(t + 0.5)
	}
	kf := float64(k)
	r := (x - kf*ln2hi) - kf*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320+r*(1.0/362880)))))))))
	return p * math.Float64frombits(uint64(k+1023)<<52)
}

// expRow sets e[j] = exp(x[j] - m[j]) and adds it to sum[j], for x[j] - m[j] ≤ 0 (m is
// the row maximum): fastExp's algorithm in one loop, with the rounding done by adding
// 1.5·2^52 (no branch, no float-to-int conversion).
func expRow(e, x []float32, m, sum []float64) {
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
		magic = 6755399441055744.0 // 1.5·2^52
	)
	e, m, sum = e[:len(x)], m[:len(x)], sum[:len(x)]
	for j, xv := range x {
		d := float64(xv) - m[j]
		if !(d > -708) {
			if d != d {
				e[j], sum[j] = float32(d), d
			} else {
				e[j] = 0
			}
			continue
		}
		kf := d*log2e + magic
		k := int64(math.Float64bits(kf)) - int64(math.Float64bits(magic))
		kf -= magic
		r := (d - kf*ln2hi) - kf*ln2lo
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320))))))))
		v := p * math.Float64frombits(uint64(k+1023)<<52)
		e[j] = float32(v)
		sum[j] += v
	}
}
