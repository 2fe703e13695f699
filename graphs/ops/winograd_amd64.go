//go:build !purego

package ops

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// pickWinogradKernels chooses the AVX-512 (16-lane) or AVX2 (8-lane) transforms when the
// CPU has them, else the portable Go ones; the 8x8 transpose needs AVX.
func pickWinogradKernels() wgKernels {
	all := winogradKernelSets()
	return all[0]
}

// winogradKernelSets returns the kernel sets this CPU can run, fastest first; the last is
// the portable one.
func winogradKernelSets() []wgKernels {
	var sets []wgKernels
	k := wgGoKernels
	if cpu.X86.HasAVX {
		k.tr8 = func(dst []float32, d0, ldd int, src []float32, s0, lds int, nbr, nbc int) {
			// Touch the far corners so that a bad call panics here, not in assembly.
			_ = dst[d0+(8*nbc-1)*ldd+8*nbr-1]
			_ = dst[d0+8*nbr-1]
			_ = src[s0+(8*nbr-1)*lds+8*nbc-1]
			tr8Blocks(f32ptr(dst, d0), ldd, f32ptr(src, s0), lds, nbr, nbc)
		}
	}
	type tf = func(dst *float32, dstRow, dstCol, dstTile int, src *float32, srcRow, srcCol, srcTile, nblk, ntiles int)
	type of = func(dst *float32, dstRow, dstCol, dstTile int, src *float32, srcRow, srcCol, srcTile, nblk, ntiles int, bias *float32, floor float32)
	wrap := func(f tf, lanes int) func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
		return func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int) {
			if nch <= 0 || ntiles <= 0 {
				return
			}
			f(&dst[0], dstRow, dstCol, dstTile, &src[0], srcRow, srcCol, srcTile, nch/lanes, ntiles)
		}
	}
	wrapOut := func(f of, lanes int) func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int, bias []float32, floor float32) {
		zero := make([]float32, 16)
		return func(dst []float32, dstRow, dstCol, dstTile int, src []float32, srcRow, srcCol, srcTile, nch, ntiles int, bias []float32, floor float32) {
			if nch <= 0 || ntiles <= 0 {
				return
			}
			if bias == nil {
				bias = zero
				// A nil bias is a zero vector re-read for every block: the kernel steps the
				// bias pointer per block, so process one block per call.
				for b := 0; b < nch; b += lanes {
					f(&dst[b], dstRow, dstCol, dstTile, &src[b], srcRow, srcCol, srcTile, 1, ntiles, &bias[0], floor)
				}
				return
			}
			f(&dst[0], dstRow, dstCol, dstTile, &src[0], srcRow, srcCol, srcTile, nch/lanes, ntiles, &bias[0], floor)
		}
	}
	if cpu.X86.HasAVX512F {
		z := k
		z.name = "avx512"
		z.tr16 = func(dst []float32, d0, ldd int, src []float32, s0, lds int, nbr, nbc int) {
			_ = dst[d0+(16*nbc-1)*ldd+16*nbr-1]
			_ = dst[d0+16*nbr-1]
			_ = src[s0+(16*nbr-1)*lds+16*nbc-1]
			tr16Blocks(f32ptr(dst, d0), ldd, f32ptr(src, s0), lds, nbr, nbc)
		}
		z.input, z.outAdj = wrap(wgInputZ, 16), wrap(wgOutAdjZ, 16)
		z.filter, z.filterAdj = wrap(wgFilterZ, 16), wrap(wgFilterAdjZ, 16)
		z.output = wrapOut(wgOutputZ, 16)
		sets = append(sets, z)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		y := k
		y.name = "avx2"
		y.input, y.outAdj = wrap(wgInputY, 8), wrap(wgOutAdjY, 8)
		y.filter, y.filterAdj = wrap(wgFilterY, 8), wrap(wgFilterAdjY, 8)
		y.output = wrapOut(wgOutputY, 8)
		sets = append(sets, y)
	}
	return append(sets, k)
}

// tr8Blocks, tr16Blocks: see transpose_amd64.s.
//
//go:noescape
func tr8Blocks(dst *float32, ldd int, src *float32, lds int, nbr, nbc int)

//go:noescape
func tr16Blocks(dst *float32, ldd int, src *float32, lds int, nbr, nbc int)

// haveZ: the AVX-512 elementwise kernels of elementwise_amd64.s can run.
var haveZ = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

//go:noescape
func sumZ(x *float32, n int) float64

//go:noescape
func sumSqDevZ(x *float32, n int, m float64) float64

//go:noescape
func sumDyDevZ(dy, x, mx *float32, n int, m float64, a, b float32) (sdy, sdyx float64)

//go:noescape
func affineZ(y, x *float32, n int, a, b, floor float32)

//go:noescape
func bnBackZ(dx, dy, x, mx *float32, n int, k1, k2, k3, m, a, b float32)

//go:noescape
func maskZ(dx, dy, y *float32, n int)

//go:noescape
func addZ(dst, a, b *float32, n int)

// f32ptr returns a pointer to s[i] without a bounds check on the far end (the caller
// guarantees the assembly stays inside s).
func f32ptr(s []float32, i int) *float32 {
	return (*float32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s)), 4*i))
}

//go:noescape
func colSum64Z(acc *float64, src *float32, npix, stride int)
