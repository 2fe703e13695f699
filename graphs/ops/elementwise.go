package ops

// Elementwise passes over activations for batch norm and ReLU: AVX-512 assembly where
// the CPU has it (elementwise_amd64.s, 16 floats at a time), these Go loops otherwise
// and for the last n%16 elements. Sums accumulate in float64.

// sum64 returns Σ x.
func sum64(x []float32) float64 {
	n := 0
	var s float64
	if haveZ && len(x) >= 16 {
		n = len(x) &^ 15
		s = sumZ(&x[0], n)
	}
	return s + sum64Go(x[n:])
}

// sumSqDev64 returns Σ (x-m)².
func sumSqDev64(x []float32, m float64) float64 {
	n := 0
	var s float64
	if haveZ && len(x) >= 16 {
		n = len(x) &^ 15
		s = sumSqDevZ(&x[0], n, m)
	}
	return s + sumSqDev64Go(x[n:], m)
}

// reluOf is the mask of a ReLU fused after an affine map, recomputed from the map's
// input: the gradient passes at i where x[i]*a + b, rounded as affine rounds it (one
// rounding in affineZ's vectors, two in its scalar tail, the same positions of a slice),
// is positive or NaN, which is where the output max(x*a + b, 0) is not 0. A nil x masks
// nothing.
type reluOf struct {
	x    []float32
	a, b float32
}

// sumDyDev64 returns Σ dy' and Σ dy'·(x-m), where dy' is dy masked by r.
func sumDyDev64(dy, x []float32, r reluOf, m float64) (sdy, sdyx float64) {
	x = x[:len(dy)]
	n := 0
	if haveZ && len(dy) >= 16 {
		n = len(dy) &^ 15
		var mp *float32
		if r.x != nil {
			r.x = r.x[:len(dy)]
			mp = &r.x[0]
		}
		sdy, sdyx = sumDyDevZ(&dy[0], &x[0], mp, n, m, r.a, r.b)
	}
	if r.x == nil {
		a, b := sumDyDev64Go(dy[n:], x[n:], m)
		return sdy + a, sdyx + b
	}
	for i := n; i < len(dy); i++ {
		if r.passes(i) {
			g := float64(dy[i])
			sdy += g
			sdyx += g * (float64(x[i]) - m)
		}
	}
	return sdy, sdyx
}

// passes reports whether r lets the gradient through at i, a position of affine's
// scalar tail (r.x not nil).
func (r reluOf) passes(i int) bool {
	v := r.x[i]*r.a + r.b
	return !(v <= 0)
}

// passes reports whether a ReLU output lets the gradient through: positive or NaN.
func passes(y float32) bool { return y != 0 }

// affine sets y = max(x*a + b, floor), NaN propagating (floor -Inf: no clamp).
func affine(y, x []float32, a, b, floor float32) {
	y = y[:len(x)]
	n := 0
	if haveZ && len(x) >= 16 {
		n = len(x) &^ 15
		affineZ(&y[0], &x[0], n, a, b, floor)
	}
	for i := n; i < len(x); i++ {
		v := x[i]*a + b
		if v < floor {
			v = floor
		}
		y[i] = v
	}
}

// bnBack sets dx = k1*dy' + k2*(x-m) + k3, dy' dy masked by r.
func bnBack(dx, dy, x []float32, r reluOf, k1, k2, k3, m float32) {
	dy, x = dy[:len(dx)], x[:len(dx)]
	n := 0
	if haveZ && len(dx) >= 16 {
		n = len(dx) &^ 15
		var mp *float32
		if r.x != nil {
			r.x = r.x[:len(dx)]
			mp = &r.x[0]
		}
		bnBackZ(&dx[0], &dy[0], &x[0], mp, n, k1, k2, k3, m, r.a, r.b)
	}
	for i := n; i < len(dx); i++ {
		g := dy[i]
		if r.x != nil && !r.passes(i) {
			g = 0
		}
		dx[i] = k1*g + k2*(x[i]-m) + k3
	}
}

// reluMask sets dx = dy where y lets the gradient through (positive or NaN), else 0.
func reluMask(dx, dy, y []float32) {
	dy, y = dy[:len(dx)], y[:len(dx)]
	n := 0
	if haveZ && len(dx) >= 16 {
		n = len(dx) &^ 15
		maskZ(&dx[0], &dy[0], &y[0], n)
	}
	for i := n; i < len(dx); i++ {
		if passes(y[i]) {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

// sum64Go returns Σ x in float64 (four accumulators, to keep the adds pipelined).
func sum64Go(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// sumSqDev64Go returns Σ (x-m)² in float64.
func sumSqDev64Go(x []float32, m float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-m, float64(x[i+1])-m, float64(x[i+2])-m, float64(x[i+3])-m
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - m
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// sumDyDev64Go returns Σ dy and Σ dy·(x-m) in float64.
func sumDyDev64Go(dy, x []float32, m float64) (sdy, sdyx float64) {
	x = x[:len(dy)]
	var a0, a1, b0, b1 float64
	i := 0
	for ; i+2 <= len(dy); i += 2 {
		g0, g1 := float64(dy[i]), float64(dy[i+1])
		a0 += g0
		a1 += g1
		b0 += g0 * (float64(x[i]) - m)
		b1 += g1 * (float64(x[i+1]) - m)
	}
	for ; i < len(dy); i++ {
		g := float64(dy[i])
		a0 += g
		b0 += g * (float64(x[i]) - m)
	}
	return a0 + a1, b0 + b1
}

// colSum64 adds to acc[j] (j < 16) the sum in float64 of src[p*stride + j] over the
// pixels p < npix: the even pixels and the odd ones in two sums, then acc + (even + odd).
func colSum64(acc *[16]float64, src []float32, npix, stride int) {
	if npix <= 0 {
		return
	}
	_ = src[(npix-1)*stride+15]
	if haveZ {
		colSum64Z(&acc[0], &src[0], npix, stride)
		return
	}
	colSum64Go(acc, src, npix, stride)
}

func colSum64Go(acc *[16]float64, src []float32, npix, stride int) {
	var e, o [16]float64
	p := 0
	for ; p+2 <= npix; p += 2 {
		a, b := src[p*stride:p*stride+16], src[(p+1)*stride:(p+1)*stride+16]
		for j := range e {
			e[j] += float64(a[j])
			o[j] += float64(b[j])
		}
	}
	if p < npix {
		for j, v := range src[p*stride : p*stride+16] {
			e[j] += float64(v)
		}
	}
	for j := range acc {
		acc[j] += e[j] + o[j]
	}
}
