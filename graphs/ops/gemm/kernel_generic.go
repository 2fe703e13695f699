package gemm

import "unsafe"

// genericImpl is the portable kernel family: 4×4 tiles in plain Go. It is the only one on
// CPUs without AVX2+FMA, on other architectures and with the purego build tag.
var genericImpl = &impl{
	name:          "generic",
	mr:            4,
	lanes:         4,
	nv:            1,
	kc:            256,
	nc:            256,
	mc:            512,
	kern:          genericKernels(),
	flopsPerCycle: 2,
}

func genericKernels() [][]microKernel {
	t := make([][]microKernel, 5)
	for mr := 1; mr <= 4; mr++ {
		t[mr] = make([]microKernel, 2)
	}
	t[1][1] = genericKernel1x4
	t[2][1] = genericKernel2x4
	t[3][1] = genericKernel3x4
	t[4][1] = genericKernel4x4
	return t
}

// tile views n float32s starting at p as a slice.
func tile(p *float32, n int) []float32 { return unsafe.Slice(p, n) }

func genericKernel4x4(a, b, c *float32, kc, ldc int, beta float32, _ uintptr, _, _ int) {
	as, bs := tile(a, 4*kc), tile(b, 4*kc)
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < kc; p++ {
		ap := as[4*p : 4*p+4 : 4*p+4]
		bp := bs[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		a0 := ap[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := ap[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := ap[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := ap[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	cs := tile(c, 3*ldc+4)
	storeRow4(cs[0:4:4], beta, c00, c01, c02, c03)
	storeRow4(cs[ldc:ldc+4:ldc+4], beta, c10, c11, c12, c13)
	storeRow4(cs[2*ldc:2*ldc+4:2*ldc+4], beta, c20, c21, c22, c23)
	storeRow4(cs[3*ldc:3*ldc+4:3*ldc+4], beta, c30, c31, c32, c33)
}

func storeRow4(c []float32, beta float32, v0, v1, v2, v3 float32) {
	c = c[:4:4]
	if beta != 0 {
		v0 += beta * c[0]
		v1 += beta * c[1]
		v2 += beta * c[2]
		v3 += beta * c[3]
	}
	c[0], c[1], c[2], c[3] = v0, v1, v2, v3
}

func genericKernel1x4(a, b, c *float32, kc, ldc int, beta float32, _ uintptr, _, _ int) {
	genericKernelNx4(1, a, b, c, kc, ldc, beta)
}

func genericKernel2x4(a, b, c *float32, kc, ldc int, beta float32, _ uintptr, _, _ int) {
	genericKernelNx4(2, a, b, c, kc, ldc, beta)
}

func genericKernel3x4(a, b, c *float32, kc, ldc int, beta float32, _ uintptr, _, _ int) {
	genericKernelNx4(3, a, b, c, kc, ldc, beta)
}

// genericKernelNx4 handles the short micro-panels at the bottom edge of C.
func genericKernelNx4(mr int, a, b, c *float32, kc, ldc int, beta float32) {
	as, bs := tile(a, mr*kc), tile(b, 4*kc)
	cs := tile(c, (mr-1)*ldc+4)
	for i := 0; i < mr; i++ {
		var c0, c1, c2, c3 float32
		for p := 0; p < kc; p++ {
			av := as[p*mr+i]
			bp := bs[4*p : 4*p+4 : 4*p+4]
			c0 += av * bp[0]
			c1 += av * bp[1]
			c2 += av * bp[2]
			c3 += av * bp[3]
		}
		storeRow4(cs[i*ldc:i*ldc+4:i*ldc+4], beta, c0, c1, c2, c3)
	}
}
