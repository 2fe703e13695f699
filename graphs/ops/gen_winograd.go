//go:build ignore

// gen_winograd writes winograd_amd64.s and winograd_kernels_amd64.go: the vectorised
// Winograd F(4x4,3x3) transforms and the 8x8 transpose behind the 3x3 convolutions (see
// winograd.go). It is run by hand (go run gen_winograd.go) when a kernel changes; the
// generated files are committed and nothing here is needed to build the package.
//
// Every transform kernel applies a fixed small matrix along both axes of a 2-D array of
// vectors, one vector being 16 (AVX-512) or 8 (AVX2) consecutive channels:
//
//	for tile < ntiles, block < nblk:
//	  X[r][s] = src[tile*srcTile + r*srcRow + s*srcCol + block*lanes : +lanes]
//	  Y = L · X · Lᵀ                       (L: the kernel's 1-D transform)
//	  dst[tile*dstTile + i*dstRow + j*dstCol + block*lanes : +lanes] = Y[i][j]
//
// in two passes through a stack buffer (columns, then rows). Strides are in floats.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"strings"
)

type isa struct {
	name  string // Z (AVX-512) or Y (AVX2)
	reg   string
	lanes int
	vb    int // vector bytes
}

var isas = []isa{{"Z", "Z", 16, 64}, {"Y", "Y", 8, 32}}

// constants in the wgconst table, by name: offset in floats.
var consts = []struct {
	name string
	v    string
}{
	{"two", "2.0"}, {"four", "4.0"}, {"five", "5.0"}, {"eight", "8.0"},
	{"quarter", "0.25"}, {"sixth", "0.16666666666666666"}, {"negsixth", "-0.16666666666666666"},
	{"twelfth", "0.08333333333333333"}, {"twentyfourth", "0.041666666666666664"},
}

func constOff(name string) int {
	for i, c := range consts {
		if c.name == name {
			return 4 * i
		}
	}
	panic(name)
}

type gen struct {
	b    *bytes.Buffer
	isa  isa
	creg map[string]string // constant name -> register
	sink func(i int, reg string)
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(g.b, "\t"+format+"\n", args...) }

func (g *gen) r(i int) string { return fmt.Sprintf("%s%d", g.isa.reg, i) }

// 1-D transforms: in holds the input registers (may be clobbered), t scratch registers;
// each output is handed to sink as soon as it is computed.

// bt: Bᵀ of F(4x4,3x3), 6 -> 6.
func (g *gen) bt(in, t []string) {
	d0, d1, d2, d3, d4, d5 := in[0], in[1], in[2], in[3], in[4], in[5]
	c4, c5, c2 := g.creg["four"], g.creg["five"], g.creg["two"]
	// o0 = 4d0 - 5d2 + d4
	g.p("VMOVAPS %s, %s", d4, t[0])
	g.p("VFMADD231PS %s, %s, %s", c4, d0, t[0])
	g.p("VFNMADD231PS %s, %s, %s", c5, d2, t[0])
	g.sink(0, t[0])
	// o1 = (d3 + d4) - 4(d1 + d2)
	g.p("VADDPS %s, %s, %s", d2, d1, t[1])
	g.p("VADDPS %s, %s, %s", d4, d3, t[0])
	g.p("VFNMADD231PS %s, %s, %s", c4, t[1], t[0])
	g.sink(1, t[0])
	// o2 = (d4 - d3) + 4(d1 - d2)
	g.p("VSUBPS %s, %s, %s", d2, d1, t[1])
	g.p("VSUBPS %s, %s, %s", d3, d4, t[0])
	g.p("VFMADD231PS %s, %s, %s", c4, t[1], t[0])
	g.sink(2, t[0])
	// o5 = 4d1 - 5d3 + d5 (before d1, d3 are clobbered)
	g.p("VMOVAPS %s, %s", d5, t[0])
	g.p("VFMADD231PS %s, %s, %s", c4, d1, t[0])
	g.p("VFNMADD231PS %s, %s, %s", c5, d3, t[0])
	g.sink(5, t[0])
	// o3 = (d4 - d2) + 2(d3 - d1); o4 = (d4 - d2) - 2(d3 - d1)
	g.p("VSUBPS %s, %s, %s", d2, d4, t[1])
	g.p("VSUBPS %s, %s, %s", d1, d3, t[2])
	g.p("VMOVAPS %s, %s", t[1], t[0])
	g.p("VFMADD231PS %s, %s, %s", c2, t[2], t[0])
	g.sink(3, t[0])
	g.p("VFNMADD231PS %s, %s, %s", c2, t[2], t[1])
	g.sink(4, t[1])
}

// at: Aᵀ, 6 -> 4.
func (g *gen) at(in, t []string) {
	m0, m1, m2, m3, m4, m5 := in[0], in[1], in[2], in[3], in[4], in[5]
	c2, c4, c8 := g.creg["two"], g.creg["four"], g.creg["eight"]
	g.p("VADDPS %s, %s, %s", m2, m1, t[0]) // a = m1+m2
	g.p("VSUBPS %s, %s, %s", m2, m1, m1)   // b = m1-m2
	g.p("VADDPS %s, %s, %s", m4, m3, t[1]) // c = m3+m4
	g.p("VSUBPS %s, %s, %s", m4, m3, m3)   // d = m3-m4
	// y0 = m0 + a + c
	g.p("VADDPS %s, %s, %s", t[0], m0, t[2])
	g.p("VADDPS %s, %s, %s", t[1], t[2], t[2])
	g.sink(0, t[2])
	// y1 = b + 2d
	g.p("VMOVAPS %s, %s", m1, t[2])
	g.p("VFMADD231PS %s, %s, %s", c2, m3, t[2])
	g.sink(1, t[2])
	// y2 = a + 4c
	g.p("VFMADD231PS %s, %s, %s", c4, t[1], t[0])
	g.sink(2, t[0])
	// y3 = b + 8d + m5
	g.p("VFMADD231PS %s, %s, %s", c8, m3, m1)
	g.p("VADDPS %s, %s, %s", m5, m1, m1)
	g.sink(3, m1)
}

// a: A (the adjoint of Aᵀ), 4 -> 6.
func (g *gen) a(in, t []string) {
	y0, y1, y2, y3 := in[0], in[1], in[2], in[3]
	c2, c4, c8 := g.creg["two"], g.creg["four"], g.creg["eight"]
	g.sink(0, y0)
	g.sink(5, y3)
	g.p("VADDPS %s, %s, %s", y2, y0, t[0]) // e = y0+y2
	g.p("VADDPS %s, %s, %s", y3, y1, t[1]) // o = y1+y3
	g.p("VADDPS %s, %s, %s", t[1], t[0], t[2])
	g.sink(1, t[2])
	g.p("VSUBPS %s, %s, %s", t[1], t[0], t[2])
	g.sink(2, t[2])
	g.p("VMOVAPS %s, %s", y0, t[0])
	g.p("VFMADD231PS %s, %s, %s", c4, y2, t[0]) // e' = y0 + 4y2
	g.p("VMULPS %s, %s, %s", c2, y1, t[1])
	g.p("VFMADD231PS %s, %s, %s", c8, y3, t[1]) // o' = 2y1 + 8y3
	g.p("VADDPS %s, %s, %s", t[1], t[0], t[2])
	g.sink(3, t[2])
	g.p("VSUBPS %s, %s, %s", t[1], t[0], t[2])
	g.sink(4, t[2])
}

// gm: G, 3 -> 6.
func (g *gen) gm(in, t []string) {
	g0, g1, g2 := in[0], in[1], in[2]
	q, ns, s6, s12, s24 := g.creg["quarter"], g.creg["negsixth"], g.creg["sixth"], g.creg["twelfth"], g.creg["twentyfourth"]
	g.p("VMULPS %s, %s, %s", q, g0, t[0])
	g.sink(0, t[0])
	g.p("VADDPS %s, %s, %s", g2, g0, t[1]) // s = g0+g2
	g.p("VADDPS %s, %s, %s", g1, t[1], t[0])
	g.p("VMULPS %s, %s, %s", ns, t[0], t[0])
	g.sink(1, t[0])
	g.p("VSUBPS %s, %s, %s", g1, t[1], t[0])
	g.p("VMULPS %s, %s, %s", ns, t[0], t[0])
	g.sink(2, t[0])
	g.p("VMULPS %s, %s, %s", s6, g2, t[1])
	g.p("VFMADD231PS %s, %s, %s", s24, g0, t[1]) // t = g0/24 + g2/6
	g.p("VMOVAPS %s, %s", t[1], t[0])
	g.p("VFMADD231PS %s, %s, %s", s12, g1, t[0])
	g.sink(3, t[0])
	g.p("VFNMADD231PS %s, %s, %s", s12, g1, t[1])
	g.sink(4, t[1])
	g.sink(5, g2)
}

// gt: Gᵀ (the adjoint of G), 6 -> 3.
func (g *gen) gt(in, t []string) {
	u0, u1, u2, u3, u4, u5 := in[0], in[1], in[2], in[3], in[4], in[5]
	q, s6, s12, s24 := g.creg["quarter"], g.creg["sixth"], g.creg["twelfth"], g.creg["twentyfourth"]
	g.p("VADDPS %s, %s, %s", u2, u1, t[0]) // p = u1+u2
	g.p("VADDPS %s, %s, %s", u4, u3, t[1]) // q = u3+u4
	g.p("VSUBPS %s, %s, %s", u2, u1, u1)   // r = u1-u2
	g.p("VSUBPS %s, %s, %s", u4, u3, u3)   // s = u3-u4
	// g0 = u0/4 - p/6 + q/24
	g.p("VMULPS %s, %s, %s", q, u0, t[2])
	g.p("VFNMADD231PS %s, %s, %s", s6, t[0], t[2])
	g.p("VFMADD231PS %s, %s, %s", s24, t[1], t[2])
	g.sink(0, t[2])
	// g1 = s/12 - r/6
	g.p("VMULPS %s, %s, %s", s12, u3, t[2])
	g.p("VFNMADD231PS %s, %s, %s", s6, u1, t[2])
	g.sink(1, t[2])
	// g2 = u5 + (q - p)/6
	g.p("VSUBPS %s, %s, %s", t[0], t[1], t[2])
	g.p("VFMADD231PS %s, %s, %s", s6, t[2], u5)
	g.sink(2, u5)
}

type kernel struct {
	name     string
	inR, inC int
	outR     int
	outC     int
	tr       func(g *gen, in, t []string)
	consts   []string
	bias     bool // output kernel: add a per-channel bias and clamp below at floor
}

var kernels = []kernel{
	{"wgInput", 6, 6, 6, 6, (*gen).bt, []string{"two", "four", "five"}, false},
	{"wgOutput", 6, 6, 4, 4, (*gen).at, []string{"two", "four", "eight"}, true},
	{"wgOutAdj", 4, 4, 6, 6, (*gen).a, []string{"two", "four", "eight"}, false},
	{"wgFilter", 3, 3, 6, 6, (*gen).gm, []string{"quarter", "negsixth", "sixth", "twelfth", "twentyfourth"}, false},
	{"wgFilterAdj", 6, 6, 3, 3, (*gen).gt, []string{"quarter", "sixth", "twelfth", "twentyfourth"}, false},
}

// Register plan: inputs 0..5, scratch 6..8, constants from 15 down, bias 10, floor 11.
func genKernel(b *bytes.Buffer, is isa, k kernel) {
	g := &gen{b: b, isa: is, creg: map[string]string{}}
	frame := k.outR * k.inC * is.vb
	args := 10 * 8
	if k.bias {
		args += 8 + 4 // bias pointer, floor float32
	}
	name := k.name + is.name
	fmt.Fprintf(b, "\n// func %s(dst *float32, dstRow, dstCol, dstTile int, src *float32, srcRow, srcCol, srcTile, nblk, ntiles int", name)
	if k.bias {
		fmt.Fprintf(b, ", bias *float32, floor float32")
	}
	fmt.Fprintf(b, ")\nTEXT ·%s(SB), 0, $%d-%d\n", name, frame, args)
	g.p("MOVQ dst+0(FP), DI")
	g.p("MOVQ dstRow+8(FP), R8")
	g.p("SHLQ $2, R8")
	g.p("MOVQ dstCol+16(FP), R9")
	g.p("SHLQ $2, R9")
	g.p("MOVQ dstTile+24(FP), R10")
	g.p("SHLQ $2, R10")
	g.p("MOVQ src+32(FP), SI")
	g.p("MOVQ srcRow+40(FP), R11")
	g.p("SHLQ $2, R11")
	g.p("MOVQ srcCol+48(FP), R12")
	g.p("SHLQ $2, R12")
	g.p("MOVQ srcTile+56(FP), R13")
	g.p("SHLQ $2, R13")
	g.p("MOVQ ntiles+72(FP), DX")
	if k.bias {
		g.p("MOVQ bias+80(FP), R14")
		g.p("VBROADCASTSS floor+88(FP), %s", g.r(11))
	}
	for i, c := range k.consts {
		reg := g.r(15 - i)
		g.creg[c] = reg
		g.p("VBROADCASTSS wgconst<>+%d(SB), %s", constOff(c), reg)
	}
	g.p("TESTQ DX, DX")
	g.p("JZ %s_done", name)
	fmt.Fprintf(b, "%s_tile:\n", name)
	g.p("MOVQ nblk+64(FP), CX")
	g.p("XORQ BX, BX")
	g.p("TESTQ CX, CX")
	g.p("JZ %s_next", name)
	fmt.Fprintf(b, "%s_block:\n", name)
	in := []string{g.r(0), g.r(1), g.r(2), g.r(3), g.r(4), g.r(5)}
	t := []string{g.r(6), g.r(7), g.r(8)}
	// Pass 1: columns of src into tmp[k][s] (k < outR, s < inC).
	g.p("LEAQ (SI)(BX*1), AX")
	for s := 0; s < k.inC; s++ {
		g.p("MOVQ AX, R15")
		for r := 0; r < k.inR; r++ {
			g.p("VMOVUPS (R15), %s", in[r])
			if r < k.inR-1 {
				g.p("ADDQ R11, R15")
			}
		}
		if s < k.inC-1 {
			g.p("ADDQ R12, AX")
		}
		col := s
		g.sink = func(i int, reg string) {
			g.p("VMOVUPS %s, %d(SP)", reg, (i*k.inC+col)*is.vb)
		}
		k.tr(g, in[:k.inR], t)
	}
	// Pass 2: rows of tmp into dst.
	if k.bias {
		g.p("VMOVUPS (R14)(BX*1), %s", g.r(10))
	}
	g.p("LEAQ (DI)(BX*1), AX")
	for row := 0; row < k.outR; row++ {
		for s := 0; s < k.inC; s++ {
			g.p("VMOVUPS %d(SP), %s", (row*k.inC+s)*is.vb, in[s])
		}
		g.p("MOVQ AX, R15")
		last := k.outC - 1
		g.sink = func(i int, reg string) {
			// dst + i*dstCol: R15 walks the columns in the order outputs appear, so
			// compute the address from AX each time.
			g.p("MOVQ R9, R15")
			g.p("IMULQ $%d, R15", i)
			g.p("ADDQ AX, R15")
			if k.bias {
				g.p("VADDPS %s, %s, %s", g.r(10), reg, reg)
				g.p("VMAXPS %s, %s, %s", reg, g.r(11), reg)
			}
			g.p("VMOVUPS %s, (R15)", reg)
		}
		_ = last
		k.tr(g, in[:k.inC], t)
		if row < k.outR-1 {
			g.p("ADDQ R8, AX")
		}
	}
	g.p("ADDQ $%d, BX", is.vb)
	g.p("DECQ CX")
	g.p("JNZ %s_block", name)
	fmt.Fprintf(b, "%s_next:\n", name)
	g.p("ADDQ R13, SI")
	g.p("ADDQ R10, DI")
	g.p("DECQ DX")
	g.p("JNZ %s_tile", name)
	fmt.Fprintf(b, "%s_done:\n", name)
	g.p("VZEROUPPER")
	g.p("RET")
}

func main() {
	var s, gofile bytes.Buffer
	fmt.Fprintf(&s, "// Code generated by gen_winograd.go; DO NOT EDIT.\n\n//go:build !purego\n\n#include \"textflag.h\"\n\n")
	for i, c := range consts {
		fmt.Fprintf(&s, "DATA wgconst<>+%d(SB)/4, $(%s)\n", 4*i, c.v)
	}
	fmt.Fprintf(&s, "GLOBL wgconst<>(SB), RODATA|NOPTR, $%d\n", 4*len(consts))
	fmt.Fprintf(&gofile, "// Code generated by gen_winograd.go; DO NOT EDIT.\n\n//go:build !purego\n\npackage ops\n\n")
	for _, is := range isas {
		for _, k := range kernels {
			genKernel(&s, is, k)
			fmt.Fprintf(&gofile, "//go:noescape\nfunc %s%s(dst *float32, dstRow, dstCol, dstTile int, src *float32, srcRow, srcCol, srcTile, nblk, ntiles int", k.name, is.name)
			if k.bias {
				fmt.Fprintf(&gofile, ", bias *float32, floor float32")
			}
			fmt.Fprintf(&gofile, ")\n\n")
		}
	}
	src, err := format.Source(gofile.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("winograd_kernels_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("winograd_amd64.s", []byte(strings.ReplaceAll(s.String(), "\t\n", "\n")), 0o644); err != nil {
		log.Fatal(err)
	}
}
