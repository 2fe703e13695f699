package gemm

// SmallNN computes C = A·B + beta·C (A m×k, B k×n, C m×n, row-major with row strides
// lda, ldb, ldc) on the calling goroutine, like Sgemm(false, false, ...) but without
// packing: the AVX-512 kernels read A and B where they lie. It is meant for products
// with a short inner dimension (k up to a few hundred) and narrow B, such as the 36 small
// products of a Winograd convolution, where packing would cost as much as multiplying.
// When the CPU lacks AVX-512, the Sgemm kernel is not "avx512" or n is not a multiple of
// 16, it calls Sgemm.
func (kn Kernel) SmallNN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if !kn.smallOK(n) || k <= 0 {
		kn.Sgemm(false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	checkArgs(false, false, m, n, k, a, lda, b, ldb, c, ldc)
	if beta == 0 {
		beta = 0
	}
	smallNN(m, n, k, a, lda, b, ldb, beta, c, ldc)
}

// SmallTN computes C = Aᵀ·B + beta·C (A k×m, B k×n, C m×n, row-major) on the calling
// goroutine without packing: one outer product of a row of A and a row of B per step of
// k. It is meant for small results (m and n up to a few dozen) over a long k, such as the
// filter gradients of a Winograd convolution. It falls back to Sgemm(true, false, ...)
// as SmallNN does.
func (kn Kernel) SmallTN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if !kn.smallOK(n) || k <= 0 {
		kn.Sgemm(true, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	checkArgs(true, false, m, n, k, a, lda, b, ldb, c, ldc)
	if beta == 0 {
		beta = 0
	}
	smallTN(m, n, k, a, lda, b, ldb, beta, c, ldc)
}

func (kn Kernel) smallOK(n int) bool {
	return haveSmall && n%16 == 0 && kn.get().name == "avx512"
}
