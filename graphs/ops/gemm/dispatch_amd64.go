//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

func registerArch() {
	hasFMA := cpu.X86.HasAVX2 && cpu.X86.HasFMA
	if cpu.X86.HasAVX512F && hasFMA {
		register(&impl{
			name:          "avx512",
			mr:            avx512MR,
			lanes:         avx512Lanes,
			nv:            avx512NV,
			kc:            256,
			nc:            512,
			mc:            2016,
			kern:          avx512Kernels,
			flopsPerCycle: 32,
		})
	}
	if hasFMA {
		register(&impl{
			name:          "avx2",
			mr:            avx2MR,
			lanes:         avx2Lanes,
			nv:            avx2NV,
			kc:            256,
			nc:            512,
			mc:            2016,
			kern:          avx2Kernels,
			flopsPerCycle: 32,
		})
	}
}

var useTranspose8 = cpu.X86.HasAVX

// transpose8 sets dst[q*ldd+r] = alpha*src[r*lds+q] for r < 8, q < n (n%8 == 0).
//
//go:noescape
func transpose8(dst *float32, ldd int, src *float32, lds int, n int, alpha float32)
