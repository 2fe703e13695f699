package metrics

import (
	"fmt"
	"math"
)

func checkNCHW(what string, got, n, c, h, w, dst, wantDst int) error {
	if n < 0 || c < 1 || h < 0 || w < 0 {
		return fmt.Errorf("metrics: %s: invalid shape (%d, %d, %d, %d)", what, n, c, h, w)
	}
	if got != n*c*h*w {
		return fmt.Errorf("metrics: %s: got %d logits, shape (%d, %d, %d, %d) needs %d", what, got, n, c, h, w, n*c*h*w)
	}
	if dst != wantDst {
		return fmt.Errorf("metrics: %s: dst has %d values, want %d", what, dst, wantDst)
	}
	return nil
}

// ArgmaxNCHW writes the class of the largest logit of every pixel of logits (n, c, h, w)
// into dst (n, h, w). Ties go to the lower class; a NaN never wins over a number.
func ArgmaxNCHW(logits []float32, n, c, h, w int, dst []int) error {
	if err := checkNCHW("ArgmaxNCHW", len(logits), n, c, h, w, len(dst), n*h*w); err != nil {
		return err
	}
	argmaxNCHW(logits, n, c, h, w, dst)
	return nil
}

// argmaxNCHW is ArgmaxNCHW on checked arguments.
func argmaxNCHW(logits []float32, n, c, h, w int, dst []int) {
	hw := h * w
	for i := range n {
		x := logits[i*c*hw : (i+1)*c*hw]
		d := dst[i*hw : (i+1)*hw]
		clear(d)
		for cl := 1; cl < c; cl++ {
			plane := x[cl*hw : (cl+1)*hw]
			for j, v := range plane {
				if best := x[d[j]*hw+j]; v > best || (best != best && v == v) {
					d[j] = cl
				}
			}
		}
	}
}

// Argmax writes the class of the largest logit of every row of logits (n, c) into dst
// (n). Ties go to the lower class; a NaN never wins over a number.
func Argmax(logits []float32, n, c int, dst []int) error {
	if err := checkNCHW("Argmax", len(logits), n, c, 1, 1, len(dst), n); err != nil {
		return err
	}
	argmaxNCHW(logits, n, c, 1, 1, dst)
	return nil
}

// SoftmaxNCHW writes the softmax over the class axis of logits (n, c, h, w) into dst,
// same shape; dst may be logits itself. It is computed with the maximum subtracted, so
// large logits do not overflow.
func SoftmaxNCHW(logits []float32, n, c, h, w int, dst []float32) error {
	if err := checkNCHW("SoftmaxNCHW", len(logits), n, c, h, w, len(dst), len(logits)); err != nil {
		return err
	}
	softmaxNCHW(logits, n, c, h, w, dst)
	return nil
}

// softmaxNCHW is SoftmaxNCHW on checked arguments.
func softmaxNCHW(logits []float32, n, c, h, w int, dst []float32) {
	hw := h * w
	for i := range n {
		base := i * c * hw
		for j := range hw {
			m := math.Inf(-1)
			for cl := range c {
				m = max(m, float64(logits[base+cl*hw+j]))
			}
			var s float64
			for cl := range c {
				s += math.Exp(float64(logits[base+cl*hw+j]) - m)
			}
			for cl := range c {
				k := base + cl*hw + j
				dst[k] = float32(math.Exp(float64(logits[k])-m) / s)
			}
		}
	}
}

// Softmax writes the softmax of every row of logits (n, c) into dst (n, c); dst may be
// logits itself.
func Softmax(logits []float32, n, c int, dst []float32) error {
	if err := checkNCHW("Softmax", len(logits), n, c, 1, 1, len(dst), len(logits)); err != nil {
		return err
	}
	softmaxNCHW(logits, n, c, 1, 1, dst)
	return nil
}

// TopClasses returns the indices of the k largest scores, largest first, ties to the
// lower index (NaNs last). k is capped at len(scores).
func TopClasses(scores []float32, k int) []int {
	k = max(0, min(k, len(scores)))
	out := make([]int, 0, k)
	for i, v := range scores {
		// insert i keeping out sorted, dropping what falls beyond k
		pos := len(out)
		for pos > 0 && before(v, i, scores[out[pos-1]], out[pos-1]) {
			pos--
		}
		if pos >= k {
			continue
		}
		if len(out) < k {
			out = append(out, 0)
		}
		copy(out[pos+1:], out[pos:len(out)-1])
		out[pos] = i
	}
	return out
}

// before reports whether score a at index i ranks before score b at index j.
func before(a float32, i int, b float32, j int) bool {
	switch {
	case a != a:
		return false
	case b != b:
		return true
	case a != b:
		return a > b
	}
	return i < j
}
