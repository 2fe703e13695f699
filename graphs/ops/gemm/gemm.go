// Package gemm is vggo's single matrix-multiplication entry point: every convolution and
// fully connected layer calls Sgemm, so the kernels behind it can change without touching the ops.
package gemm

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32 matrices, where
// op(A) is m×k (A is k×m when transA), op(B) is k×n (B is n×k when transB) and C is m×n.
// lda, ldb and ldc are the row strides of A, B and C. When beta is 0, C is overwritten
// without being read (NaNs in C do not propagate).
//
// This is the portable reference implementation; faster kernels replace it behind the
// same signature.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(ci)
		} else if beta != 1 {
			for j := range ci {
				ci[j] *= beta
			}
		}
		for p := 0; p < k; p++ {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			av *= alpha
			if transB {
				for j := range ci {
					ci[j] += av * b[j*ldb+p]
				}
			} else {
				bp := b[p*ldb : p*ldb+n]
				for j, bv := range bp {
					ci[j] += av * bv
				}
			}
		}
	}
}
