//go:build !purego

#include "textflag.h"

// func tr8Blocks(dst *float32, ldd int, src *float32, lds int, nbr, nbc int)
//
// dst[j*ldd+i] = src[i*lds+j] for i < 8*nbr, j < 8*nbc, an 8×8 block at a time (8 row
// loads, 24 shuffles, 8 stores). Strides are in floats and may be negative. Needs AVX.
TEXT ·tr8Blocks(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ nbr+32(FP), DX
	MOVQ nbc+40(FP), R14
	TESTQ DX, DX
	JZ done
	TESTQ R14, R14
	JZ done

rowblk:
	MOVQ SI, AX // src block
	MOVQ DI, BX // dst block
	MOVQ R14, CX

colblk:
	MOVQ AX, R10
	VMOVUPS (R10), Y0
	ADDQ R9, R10
	VMOVUPS (R10), Y1
	ADDQ R9, R10
	VMOVUPS (R10), Y2
	ADDQ R9, R10
	VMOVUPS (R10), Y3
	ADDQ R9, R10
	VMOVUPS (R10), Y4
	ADDQ R9, R10
	VMOVUPS (R10), Y5
	ADDQ R9, R10
	VMOVUPS (R10), Y6
	ADDQ R9, R10
	VMOVUPS (R10), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	MOVQ BX, R10
	VMOVUPS Y8, (R10)
	ADDQ R8, R10
	VMOVUPS Y9, (R10)
	ADDQ R8, R10
	VMOVUPS Y10, (R10)
	ADDQ R8, R10
	VMOVUPS Y11, (R10)
	ADDQ R8, R10
	VMOVUPS Y12, (R10)
	ADDQ R8, R10
	VMOVUPS Y13, (R10)
	ADDQ R8, R10
	VMOVUPS Y14, (R10)
	ADDQ R8, R10
	VMOVUPS Y15, (R10)

	ADDQ $32, AX       // next 8 source columns
	LEAQ (BX)(R8*8), BX // next 8 destination rows
	DECQ CX
	JNZ colblk

	LEAQ (SI)(R9*8), SI // next 8 source rows
	ADDQ $32, DI        // next 8 destination columns
	DECQ DX
	JNZ rowblk

done:
	VZEROUPPER
	RET
