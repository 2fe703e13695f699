//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

var haveSmall = cpu.X86.HasAVX512F

// smallNN runs the smallNN kernels over C: blocks of up to 8 rows, each across all
// columns 32 (or 16) at a time, so that the rows of A stay in L1 while B streams.
func smallNN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i += smallNNMR {
		mr := min(smallNNMR, m-i)
		kr := smallNNKernels[mr]
		for j := 0; j < n; j += 16 * smallNNNV {
			nv := min(smallNNNV, (n-j)/16)
			kr[nv](&a[i*lda], lda, &b[j], ldb, &c[i*ldc+j], ldc, k, beta)
		}
	}
}

// smallTN runs the smallTN kernels over C: blocks of up to 12 rows, 32 columns at a time
// (smallTN2), the last 16 columns of an odd number of vectors with smallTN; a C of 16
// columns in blocks of 16 rows.
func smallTN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if n < 32 { // one vector: 16-row blocks
		for i := 0; i < m; i += smallTNMR {
			mr := min(smallTNMR, m-i)
			smallTNKernels[mr](&a[i], lda, &b[0], ldb, &c[i*ldc], ldc, k, beta)
		}
		return
	}
	for i := 0; i < m; i += smallTN2MR {
		mr := min(smallTN2MR, m-i)
		kr2, kr1 := smallTN2Kernels[mr], smallTNKernels[mr]
		j := 0
		for ; j+32 <= n; j += 32 {
			kr2(&a[i], lda, &b[j], ldb, &c[i*ldc+j], ldc, k, beta)
		}
		if j < n {
			kr1(&a[i], lda, &b[j], ldb, &c[i*ldc+j], ldc, k, beta)
		}
	}
}
