//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

// archImpls returns the assembly kernel families this CPU supports, fastest first.
func archImpls() []*impl {
	var out []*impl
	hasFMA := cpu.X86.HasAVX2 && cpu.X86.HasFMA
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && hasFMA {
		out = append(out, &impl{
			name:          "avx512",
			mr:            avx512MR,
			lanes:         avx512Lanes,
			nv:            avx512NV,
			half:          avx512Lanes / 2,
			kc:            256,
			nc:            512,
			mc:            2016,
			kern:          avx512Kernels,
			packKern:      avx512PackKernels,
			flopsPerCycle: 32,
		})
	}
	if hasFMA {
		out = append(out, &impl{
			name:          "avx2",
			mr:            avx2MR,
			lanes:         avx2Lanes,
			nv:            avx2NV,
			kc:            256,
			nc:            512,
			mc:            2016,
			kern:          avx2Kernels,
			packKern:      avx2PackKernels,
			flopsPerCycle: 32,
		})
	}
	return out
}

var haveAVX = cpu.X86.HasAVX

// transpose8 sets dst[q*ldd+r] = alpha*src[r*lds+q] for r < 8, q < n (n%8 == 0).
//
//go:noescape
func transpose8(dst *float32, ldd int, src *float32, lds int, n int, alpha float32)

const havePrefetch = true

// copyPanels copies, for q < kb and p < panels, w floats (w%8 == 0) from src[q*lds+p*w:]
// to dst[p*w*kb+q*w:].
//
//go:noescape
func copyPanels(dst, src *float32, lds, kb, panels, w int)
