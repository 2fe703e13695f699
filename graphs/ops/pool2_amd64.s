//go:build !purego

#include "textflag.h"

// AVX-512 kernels for 2x2 max pooling (maxpool.go), nearest-neighbour upsampling by 2
// and its gradient (upsample.go).

// Permutation indices: up2lo/up2hi duplicate lanes 0-7 / 8-15 (0,0,1,1,...);
// evens/odds pick lanes 0,2,...,30 / 1,3,...,31 of a 32-lane pair.
DATA up2lo<>+0(SB)/8, $0x0000000000000000
DATA up2lo<>+8(SB)/8, $0x0000000100000001
DATA up2lo<>+16(SB)/8, $0x0000000200000002
DATA up2lo<>+24(SB)/8, $0x0000000300000003
DATA up2lo<>+32(SB)/8, $0x0000000400000004
DATA up2lo<>+40(SB)/8, $0x0000000500000005
DATA up2lo<>+48(SB)/8, $0x0000000600000006
DATA up2lo<>+56(SB)/8, $0x0000000700000007
GLOBL up2lo<>(SB), RODATA|NOPTR, $64
DATA up2hi<>+0(SB)/8, $0x0000000800000008
DATA up2hi<>+8(SB)/8, $0x0000000900000009
DATA up2hi<>+16(SB)/8, $0x0000000a0000000a
DATA up2hi<>+24(SB)/8, $0x0000000b0000000b
DATA up2hi<>+32(SB)/8, $0x0000000c0000000c
DATA up2hi<>+40(SB)/8, $0x0000000d0000000d
DATA up2hi<>+48(SB)/8, $0x0000000e0000000e
DATA up2hi<>+56(SB)/8, $0x0000000f0000000f
GLOBL up2hi<>(SB), RODATA|NOPTR, $64
DATA evens<>+0(SB)/8, $0x0000000200000000
DATA evens<>+8(SB)/8, $0x0000000600000004
DATA evens<>+16(SB)/8, $0x0000000a00000008
DATA evens<>+24(SB)/8, $0x0000000e0000000c
DATA evens<>+32(SB)/8, $0x0000001200000010
DATA evens<>+40(SB)/8, $0x0000001600000014
DATA evens<>+48(SB)/8, $0x0000001a00000018
DATA evens<>+56(SB)/8, $0x0000001e0000001c
GLOBL evens<>(SB), RODATA|NOPTR, $64
DATA odds<>+0(SB)/8, $0x0000000300000001
DATA odds<>+8(SB)/8, $0x0000000700000005
DATA odds<>+16(SB)/8, $0x0000000b00000009
DATA odds<>+24(SB)/8, $0x0000000f0000000d
DATA odds<>+32(SB)/8, $0x0000001300000011
DATA odds<>+40(SB)/8, $0x0000001700000015
DATA odds<>+48(SB)/8, $0x0000001b00000019
DATA odds<>+56(SB)/8, $0x0000001f0000001d
GLOBL odds<>(SB), RODATA|NOPTR, $64
DATA iota2<>+0(SB)/8, $0x0000000200000000
DATA iota2<>+8(SB)/8, $0x0000000600000004
DATA iota2<>+16(SB)/8, $0x0000000a00000008
DATA iota2<>+24(SB)/8, $0x0000000e0000000c
DATA iota2<>+32(SB)/8, $0x0000001200000010
DATA iota2<>+40(SB)/8, $0x0000001600000014
DATA iota2<>+48(SB)/8, $0x0000001a00000018
DATA iota2<>+56(SB)/8, $0x0000001e0000001c
GLOBL iota2<>(SB), RODATA|NOPTR, $64

// func up2RowsZ(dst0, dst1, src *float32, n int)
// dst0[2j] = dst0[2j+1] = dst1[2j] = dst1[2j+1] = src[j] for j < n (n a multiple of 16).
TEXT ·up2RowsZ(SB), NOSPLIT, $0-32
	MOVQ dst0+0(FP), DI
	MOVQ dst1+8(FP), DX
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ   up2done
	VMOVDQU32 up2lo<>(SB), Z4
	VMOVDQU32 up2hi<>(SB), Z5
up2loop:
	VMOVUPS (SI), Z0
	VPERMPS Z0, Z4, Z1
	VPERMPS Z0, Z5, Z2
	VMOVUPS Z1, (DI)
	VMOVUPS Z2, 64(DI)
	VMOVUPS Z1, (DX)
	VMOVUPS Z2, 64(DX)
	ADDQ $64, SI
	ADDQ $128, DI
	ADDQ $128, DX
	DECQ CX
	JNZ  up2loop
up2done:
	VZEROUPPER
	RET

// func down2RowsZ(dst, r0, r1 *float32, n int)
// dst[j] = (r0[2j] + r0[2j+1]) + (r1[2j] + r1[2j+1]) for j < n (n a multiple of 16).
TEXT ·down2RowsZ(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ   down2done
	VMOVDQU32 evens<>(SB), Z6
	VMOVDQU32 odds<>(SB), Z7
down2loop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVAPS Z6, Z2
	VPERMI2PS Z1, Z0, Z2
	VMOVAPS Z7, Z3
	VPERMI2PS Z1, Z0, Z3
	VADDPS Z3, Z2, Z2
	VMOVUPS (DX), Z0
	VMOVUPS 64(DX), Z1
	VMOVAPS Z6, Z4
	VPERMI2PS Z1, Z0, Z4
	VMOVAPS Z7, Z5
	VPERMI2PS Z1, Z0, Z5
	VADDPS Z5, Z4, Z4
	VADDPS Z4, Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $64, DI
	DECQ CX
	JNZ  down2loop
down2done:
	VZEROUPPER
	RET

// func maxPool2x2RowZ(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32) int
// pools output row j < n (n a multiple of 16) of a 2x2 stride-2 max pooling from input
// rows r0, r1 (w floats apart, r0 at flat index base): y[j] = the first maximum of
// r0[2j], r0[2j+1], r1[2j], r1[2j+1] and idx[j] its flat index (base + 2j, +1, +w, +w+1).
// It stops before the first block of 16 outputs whose window holds a NaN and returns the
// number of outputs done.
TEXT ·maxPool2x2RowZ(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ idx+8(FP), R8
	MOVQ r0+16(FP), SI
	MOVQ r1+24(FP), DX
	MOVQ n+32(FP), CX
	SHRQ $4, CX
	XORQ AX, AX
	TESTQ CX, CX
	JZ   mpdone
	VMOVDQU32 evens<>(SB), Z20
	VMOVDQU32 odds<>(SB), Z21
	MOVL base+40(FP), BX
	VPBROADCASTD BX, Z26
	VMOVDQU32 iota2<>(SB), Z22
	VPADDD Z22, Z26, Z26
	MOVL $1, BX
	VPBROADCASTD BX, Z23
	MOVL w+44(FP), BX
	VPBROADCASTD BX, Z24
	VPADDD Z23, Z24, Z25
	MOVL $32, BX
	VPBROADCASTD BX, Z27
mploop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVAPS Z20, Z2
	VPERMI2PS Z1, Z0, Z2
	VMOVAPS Z21, Z3
	VPERMI2PS Z1, Z0, Z3
	VMOVUPS (DX), Z0
	VMOVUPS 64(DX), Z1
	VMOVAPS Z20, Z4
	VPERMI2PS Z1, Z0, Z4
	VMOVAPS Z21, Z5
	VPERMI2PS Z1, Z0, Z5
	VCMPPS $3, Z3, Z2, K1
	VCMPPS $3, Z5, Z4, K2
	KORW K1, K2, K1
	KORTESTW K1, K1
	JNZ  mpdone
	VPXORD Z6, Z6, Z6
	VCMPPS $0x1e, Z2, Z3, K1
	VMOVAPS Z3, K1, Z2
	VMOVDQA32 Z23, K1, Z6
	VCMPPS $0x1e, Z2, Z4, K2
	VMOVAPS Z4, K2, Z2
	VMOVDQA32 Z24, K2, Z6
	VCMPPS $0x1e, Z2, Z5, K3
	VMOVAPS Z5, K3, Z2
	VMOVDQA32 Z25, K3, Z6
	VPADDD Z26, Z6, Z6
	VMOVUPS Z2, (DI)
	VMOVDQU32 Z6, (R8)
	VPADDD Z27, Z26, Z26
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $16, AX
	DECQ CX
	JNZ  mploop
mpdone:
	MOVQ AX, ret+48(FP)
	VZEROUPPER
	RET
