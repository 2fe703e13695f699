//go:build !amd64 || purego

package gemm

const haveSmall = false

func smallNN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("unreachable")
}

func smallTN(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("unreachable")
}
