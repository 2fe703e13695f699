//go:build !amd64 || purego

package gemm

func registerArch() {}

const useTranspose8 = false

func transpose8(dst *float32, ldd int, src *float32, lds int, n int, alpha float32) {
	panic("unreachable")
}
