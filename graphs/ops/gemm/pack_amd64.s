//go:build !purego

#include "textflag.h"

// func transpose8(dst *float32, ldd int, src *float32, lds int, n int, alpha float32)
//
// For r < 8, q < n (n a multiple of 8): dst[q*ldd+r] = alpha * src[r*lds+q].
// An 8×8 block at a time: 8 row loads, 24 shuffles, 8 column stores. Needs AVX.
TEXT ·transpose8(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ n+32(FP), CX
	LEAQ (R9)(R9*2), R10
	LEAQ (SI)(R9*4), R11
	SHRQ $3, CX
	JZ done

loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R9*1), Y1
	VMOVUPS (SI)(R9*2), Y2
	VMOVUPS (SI)(R10*1), Y3
	VMOVUPS (R11), Y4
	VMOVUPS (R11)(R9*1), Y5
	VMOVUPS (R11)(R9*2), Y6
	VMOVUPS (R11)(R10*1), Y7
	ADDQ $32, SI
	ADDQ $32, R11

	// t0..t7: interleave row pairs.
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	// s0..s7: columns c|c+4 of rows 0-3 (Y0-Y3) and rows 4-7 (Y4-Y7).
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VBROADCASTSS alpha+40(FP), Y15

	VPERM2F128 $0x20, Y4, Y0, Y8
	VMULPS Y15, Y8, Y8
	VMOVUPS Y8, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x20, Y5, Y1, Y9
	VMULPS Y15, Y9, Y9
	VMOVUPS Y9, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x20, Y6, Y2, Y10
	VMULPS Y15, Y10, Y10
	VMOVUPS Y10, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x20, Y7, Y3, Y11
	VMULPS Y15, Y11, Y11
	VMOVUPS Y11, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x31, Y4, Y0, Y12
	VMULPS Y15, Y12, Y12
	VMOVUPS Y12, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x31, Y5, Y1, Y13
	VMULPS Y15, Y13, Y13
	VMOVUPS Y13, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x31, Y6, Y2, Y14
	VMULPS Y15, Y14, Y14
	VMOVUPS Y14, (DI)
	ADDQ R8, DI
	VPERM2F128 $0x31, Y7, Y3, Y8
	VMULPS Y15, Y8, Y8
	VMOVUPS Y8, (DI)
	ADDQ R8, DI

	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET

// func copyPanels(dst, src *float32, lds, kb, panels, w int)
//
// For q < kb, p < panels: copies w floats (w a multiple of 8) from src[q*lds+p*w:] to
// dst[p*w*kb+q*w:]: it packs kb rows of `panels` w-wide panels. Needs AVX.
TEXT ·copyPanels(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R8
	SHLQ $2, R8
	MOVQ kb+24(FP), CX
	MOVQ panels+32(FP), R9
	MOVQ w+40(FP), R10
	MOVQ R10, R11
	IMULQ CX, R11
	SHLQ $2, R11
	SHLQ $2, R10
	TESTQ CX, CX
	JZ cpdone
	TESTQ R9, R9
	JZ cpdone

cprow:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R9, DX

cppanel:
	XORQ R13, R13

cpchunk:
	VMOVUPS (AX)(R13*1), Y0
	VMOVUPS Y0, (BX)(R13*1)
	ADDQ $32, R13
	CMPQ R13, R10
	JLT cpchunk
	ADDQ R10, AX
	ADDQ R11, BX
	DECQ DX
	JNZ cppanel
	ADDQ R8, SI
	ADDQ R10, DI
	DECQ CX
	JNZ cprow

cpdone:
	VZEROUPPER
	RET
