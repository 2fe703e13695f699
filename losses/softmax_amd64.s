//go:build !purego

#include "textflag.h"

DATA smconst<>+0(SB)/4, $(-87.0)              // clamp: exp(-87) ≈ 1.6e-38
DATA smconst<>+4(SB)/4, $(1.44269504088896341)  // log2(e)
DATA smconst<>+8(SB)/4, $(0.693359375)          // ln2, high part (Cephes)
DATA smconst<>+12(SB)/4, $(-2.12194440e-4)      // ln2, low part
DATA smconst<>+16(SB)/4, $(1.9875691500e-4)     // Cephes expf polynomial
DATA smconst<>+20(SB)/4, $(1.3981999507e-3)
DATA smconst<>+24(SB)/4, $(8.3334519073e-3)
DATA smconst<>+28(SB)/4, $(4.1665795894e-2)
DATA smconst<>+32(SB)/4, $(1.6666665459e-1)
DATA smconst<>+36(SB)/4, $(5.0000001201e-1)
DATA smconst<>+40(SB)/4, $(1.0)
GLOBL smconst<>(SB), RODATA|NOPTR, $44

// func maxRowsZ(m, x *float32, stride, c, n int)
// m[j] = max over k < c of x[k*stride + j], j < n (n a multiple of 16, c ≥ 1).
TEXT ·maxRowsZ(SB), NOSPLIT, $0-40
	MOVQ m+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ c+24(FP), R9
	MOVQ n+32(FP), CX
	SHRQ $4, CX
	JZ max_done
max_block:
	VMOVUPS (SI), Z0
	LEAQ (SI)(R8*1), AX
	MOVQ R9, DX
	DECQ DX
	JZ max_store
max_cls:
	VMAXPS (AX), Z0, Z0
	ADDQ R8, AX
	DECQ DX
	JNZ max_cls
max_store:
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ max_block
max_done:
	VZEROUPPER
	RET

// func expRowsZ(e, x *float32, stride, c, n int, m, s *float32)
// e[k*stride + j] = exp(x[k*stride + j] - m[j]) and s[j] = Σ_k e[k*stride + j], j < n
// (n a multiple of 16), in float32: Cephes expf (relative error ~1e-7), the power of two
// applied with VSCALEFPS. Arguments below -87 give ~0; NaN propagates.
TEXT ·expRowsZ(SB), NOSPLIT, $0-56
	MOVQ e+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ c+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ m+40(FP), R10
	MOVQ s+48(FP), R11
	VBROADCASTSS smconst<>+0(SB), Z31
	VBROADCASTSS smconst<>+4(SB), Z30
	VBROADCASTSS smconst<>+8(SB), Z29
	VBROADCASTSS smconst<>+12(SB), Z28
	VBROADCASTSS smconst<>+16(SB), Z27
	VBROADCASTSS smconst<>+20(SB), Z26
	VBROADCASTSS smconst<>+24(SB), Z25
	VBROADCASTSS smconst<>+28(SB), Z24
	VBROADCASTSS smconst<>+32(SB), Z23
	VBROADCASTSS smconst<>+36(SB), Z22
	VBROADCASTSS smconst<>+40(SB), Z21
	SHRQ $4, CX
	JZ exp_done
exp_block:
	VMOVUPS (R10), Z0
	VPXORD Z1, Z1, Z1
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R9, DX
exp_cls:
	VMOVUPS (AX), Z2
	VSUBPS Z0, Z2, Z2
	VMAXPS Z2, Z31, Z2          // max(-87, d), NaN kept
	VMULPS Z30, Z2, Z3
	VRNDSCALEPS $0, Z3, Z3      // k = round(d·log2e)
	VFNMADD231PS Z29, Z3, Z2    // r = d - k·ln2hi
	VFNMADD231PS Z28, Z3, Z2    //     - k·ln2lo
	VMOVAPS Z27, Z4
	VFMADD213PS Z26, Z2, Z4
	VFMADD213PS Z25, Z2, Z4
	VFMADD213PS Z24, Z2, Z4
	VFMADD213PS Z23, Z2, Z4
	VFMADD213PS Z22, Z2, Z4
	VMULPS Z2, Z2, Z5
	VFMADD213PS Z2, Z5, Z4      // p·r² + r
	VADDPS Z21, Z4, Z4          // + 1
	VSCALEFPS Z3, Z4, Z4        // · 2^k
	VMOVUPS Z4, (BX)
	VADDPS Z4, Z1, Z1
	ADDQ R8, AX
	ADDQ R8, BX
	DECQ DX
	JNZ exp_cls
	VMOVUPS Z1, (R11)
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R10
	ADDQ $64, R11
	DECQ CX
	JNZ exp_block
exp_done:
	VZEROUPPER
	RET

DATA ceone<>+0(SB)/8, $(1.0)
GLOBL ceone<>(SB), RODATA|NOPTR, $8

// func ceGradRowZ(o *float32, inv *float64, lab *int, n, cl, ignore int, scale float64)
// The plain cross-entropy gradient of class cl's row, in place: for j < n (a multiple of
// 8), d = float64(o[j])·inv[j], minus 1 where lab[j] = cl, +0 where lab[j] = ignore, and
// o[j] = float32(scale·d), each step rounded as the portable loop rounds it.
TEXT ·ceGradRowZ(SB), NOSPLIT, $0-56
	MOVQ o+0(FP), DI
	MOVQ inv+8(FP), SI
	MOVQ lab+16(FP), DX
	MOVQ n+24(FP), CX
	VPBROADCASTQ cl+32(FP), Z4
	VPBROADCASTQ ignore+40(FP), Z5
	VBROADCASTSD scale+48(FP), Z6
	VBROADCASTSD ceone<>+0(SB), Z7
	SHRQ $3, CX
	JZ ce_done
ce_loop:
	VCVTPS2PD (DI), Z0
	VMULPD (SI), Z0, Z0
	VMOVDQU64 (DX), Z1
	VPCMPEQQ Z4, Z1, K1
	VSUBPD Z7, Z0, K1, Z0       // d - 1 where the label is cl
	VPCMPQ $4, Z5, Z1, K2       // lanes whose label is not the ignore index
	VMOVAPD.Z Z0, K2, Z0        // +0 elsewhere
	VMULPD Z6, Z0, Z0
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $64, SI
	ADDQ $64, DX
	DECQ CX
	JNZ ce_loop
ce_done:
	VZEROUPPER
	RET
