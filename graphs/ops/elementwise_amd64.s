//go:build !purego

#include "textflag.h"

// Elementwise AVX-512 kernels for batch norm and ReLU (see elementwise.go). n is a
// multiple of 16; sums accumulate in float64.

// horizontal sum of the 8 doubles of Z2 into X2 (clobbers Z3).
#define HSUMPD \
	VEXTRACTF64X4 $1, Z2, Y3 \
	VADDPD Y3, Y2, Y2 \
	VEXTRACTF128 $1, Y2, X3 \
	VADDPD X3, X2, X2 \
	VPERMILPD $1, X2, X3 \
	VADDSD X3, X2, X2

// func sumZ(x *float32, n int) float64
TEXT ·sumZ(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VPXORQ Z2, Z2, Z2
	VPXORQ Z4, Z4, Z4
	SHRQ $4, CX
	JZ sum_done
sum_loop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VADDPD Z0, Z2, Z2
	VADDPD Z1, Z4, Z4
	ADDQ $64, SI
	DECQ CX
	JNZ sum_loop
sum_done:
	VADDPD Z4, Z2, Z2
	HSUMPD
	MOVSD X2, ret+16(FP)
	VZEROUPPER
	RET

// func sumSqDevZ(x *float32, n int, m float64) float64
TEXT ·sumSqDevZ(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD m+16(FP), Z5
	VPXORQ Z2, Z2, Z2
	VPXORQ Z4, Z4, Z4
	SHRQ $4, CX
	JZ ssd_done
ssd_loop:
	VCVTPS2PD (SI), Z0
	VCVTPS2PD 32(SI), Z1
	VSUBPD Z5, Z0, Z0
	VSUBPD Z5, Z1, Z1
	VFMADD231PD Z0, Z0, Z2
	VFMADD231PD Z1, Z1, Z4
	ADDQ $64, SI
	DECQ CX
	JNZ ssd_loop
ssd_done:
	VADDPD Z4, Z2, Z2
	HSUMPD
	MOVSD X2, ret+24(FP)
	VZEROUPPER
	RET

// func sumDyDevZ(dy, x, mx *float32, n int, m float64, a, b float32) (sdy, sdyx float64)
// Σ dy' and Σ dy'·(x-m): dy' = dy where a·mx + b (one rounding, as affineZ) is positive
// or NaN (where a fused ReLU's output max(a·mx + b, 0) is not 0) when mx != nil, else dy.
TEXT ·sumDyDevZ(SB), NOSPLIT, $0-64
	MOVQ dy+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ mx+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSD m+32(FP), Z5
	VBROADCASTSS a+40(FP), Z10
	VBROADCASTSS b+44(FP), Z11
	VPXORQ Z2, Z2, Z2 // Σ dy
	VPXORQ Z6, Z6, Z6 // Σ dy·(x-m)
	VPXORQ Z7, Z7, Z7 // zero
	KXNORW K1, K1, K1 // all lanes
	SHRQ $4, CX
	JZ sdd_done
sdd_loop:
	TESTQ DX, DX
	JZ sdd_nomask
	VMOVUPS (DX), Z8
	VFMADD213PS Z11, Z10, Z8 // a·mx + b
	VCMPPS $6, Z7, Z8, K1    // not ≤ 0: positive or NaN
	ADDQ $64, DX
sdd_nomask:
	VMOVUPS.Z (DI), K1, Z8
	VEXTRACTF32X8 $1, Z8, Y9
	VCVTPS2PD Y8, Z0
	VCVTPS2PD Y9, Z1
	VCVTPS2PD (SI), Z3
	VCVTPS2PD 32(SI), Z4
	VSUBPD Z5, Z3, Z3
	VSUBPD Z5, Z4, Z4
	VADDPD Z0, Z2, Z2
	VADDPD Z1, Z2, Z2
	VFMADD231PD Z3, Z0, Z6
	VFMADD231PD Z4, Z1, Z6
	ADDQ $64, DI
	ADDQ $64, SI
	DECQ CX
	JNZ sdd_loop
sdd_done:
	HSUMPD
	MOVSD X2, sdy+48(FP)
	VMOVAPD Z6, Z2
	HSUMPD
	MOVSD X2, sdyx+56(FP)
	VZEROUPPER
	RET

// func affineZ(y, x *float32, n int, a, b, floor float32)
// y = max(x*a + b, floor), NaN propagating.
TEXT ·affineZ(SB), NOSPLIT, $0-36
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS a+24(FP), Z4
	VBROADCASTSS b+28(FP), Z5
	VBROADCASTSS floor+32(FP), Z6
	SHRQ $4, CX
	JZ aff_done
aff_loop:
	VMOVUPS (SI), Z0
	VFMADD213PS Z5, Z4, Z0
	VMAXPS Z0, Z6, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ aff_loop
aff_done:
	VZEROUPPER
	RET

// func bnBackZ(dx, dy, x, mx *float32, n int, k1, k2, k3, m, a, b float32)
// dx = k1*dy' + k2*(x-m) + k3, dy' as in sumDyDevZ.
TEXT ·bnBackZ(SB), NOSPLIT, $0-64
	MOVQ dx+0(FP), R8
	MOVQ dy+8(FP), DI
	MOVQ x+16(FP), SI
	MOVQ mx+24(FP), DX
	MOVQ n+32(FP), CX
	VBROADCASTSS k1+40(FP), Z4
	VBROADCASTSS k2+44(FP), Z5
	VBROADCASTSS k3+48(FP), Z6
	VBROADCASTSS m+52(FP), Z7
	VBROADCASTSS a+56(FP), Z10
	VBROADCASTSS b+60(FP), Z11
	VPXORQ Z9, Z9, Z9
	KXNORW K1, K1, K1
	SHRQ $4, CX
	JZ bnb_done
bnb_loop:
	TESTQ DX, DX
	JZ bnb_nomask
	VMOVUPS (DX), Z8
	VFMADD213PS Z11, Z10, Z8 // a·mx + b
	VCMPPS $6, Z9, Z8, K1    // not ≤ 0: positive or NaN
	ADDQ $64, DX
bnb_nomask:
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS (SI), Z1
	VSUBPS Z7, Z1, Z1
	VFMADD213PS Z6, Z5, Z1 // k2*(x-m) + k3
	VFMADD231PS Z4, Z0, Z1 // + k1*dy'
	VMOVUPS Z1, (R8)
	ADDQ $64, R8
	ADDQ $64, DI
	ADDQ $64, SI
	DECQ CX
	JNZ bnb_loop
bnb_done:
	VZEROUPPER
	RET

// func maskZ(dx, dy, y *float32, n int)
// dx = dy where y != 0 (or NaN), else 0.
TEXT ·maskZ(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), R8
	MOVQ dy+8(FP), DI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	VPXORQ Z9, Z9, Z9
	SHRQ $4, CX
	JZ mask_done
mask_loop:
	VMOVUPS (DX), Z8
	VCMPPS $4, Z9, Z8, K1
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS Z0, (R8)
	ADDQ $64, R8
	ADDQ $64, DI
	ADDQ $64, DX
	DECQ CX
	JNZ mask_loop
mask_done:
	VZEROUPPER
	RET

// func colSum64Z(acc *float64, src *float32, npix, stride int)
// acc[0:16] += Σ over pixels p < npix of float64(src[p*stride : p*stride+16]): even
// pixels into Z0/Z1, odd ones into Z2/Z3, then acc + (even + odd) (colSum64Go's order).
TEXT ·colSum64Z(SB), NOSPLIT, $0-32
	MOVQ acc+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ npix+16(FP), CX
	MOVQ stride+24(FP), DX
	SHLQ $2, DX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
col_pair:
	CMPQ CX, $2
	JLT col_tail
	VCVTPS2PD (SI), Z4
	VCVTPS2PD 32(SI), Z5
	VADDPD Z4, Z0, Z0
	VADDPD Z5, Z1, Z1
	VCVTPS2PD (SI)(DX*1), Z6
	VCVTPS2PD 32(SI)(DX*1), Z7
	VADDPD Z6, Z2, Z2
	VADDPD Z7, Z3, Z3
	LEAQ (SI)(DX*2), SI
	SUBQ $2, CX
	JMP col_pair
col_tail:
	CMPQ CX, $0
	JEQ col_done
	VCVTPS2PD (SI), Z4
	VCVTPS2PD 32(SI), Z5
	VADDPD Z4, Z0, Z0
	VADDPD Z5, Z1, Z1
col_done:
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	VADDPD (DI), Z0, Z0
	VADDPD 64(DI), Z1, Z1
	VMOVUPD Z0, (DI)
	VMOVUPD Z1, 64(DI)
	VZEROUPPER
	RET

// func addZ(dst, a, b *float32, n int)
// dst = a + b for n a multiple of 16 (dst may be a or b).
TEXT ·addZ(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), R8
	MOVQ a+8(FP), DI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ add_done
add_loop:
	VMOVUPS (DI), Z0
	VADDPS (DX), Z0, Z0
	VMOVUPS Z0, (R8)
	ADDQ $64, R8
	ADDQ $64, DI
	ADDQ $64, DX
	DECQ CX
	JNZ add_loop
add_done:
	VZEROUPPER
	RET
