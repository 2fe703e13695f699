//go:build !amd64 || purego

package gemm

func archImpls() []*impl { return nil }

const haveAVX = false

func transpose8(dst *float32, ldd int, src *float32, lds int, n int, alpha float32) {
	panic("unreachable")
}

const havePrefetch = false

func copyPanels(dst, src *float32, lds, kb, panels, w int) { panic("unreachable") }
