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

// smallTN runs the smallTN kernels over C in 16×16 tiles.
func smallTN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i += smallTNMR {
		mr := min(smallTNMR, m-i)
		kr := smallTNKernels[mr]
		for j := 0; j < n; j += 16 {
			kr(&a[i], lda, &b[j], ldb, &c[i*ldc+j], ldc, k, beta)
		}
	}
}
