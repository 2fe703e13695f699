// Package gemm is vggo's matrix-multiplication entry point: every convolution and fully
// connected layer calls Sgemm (or, for the many small products of a Winograd convolution,
// SmallNN and SmallTN, see small.go), so the kernels behind them can change without
// touching the ops.
//
// Sgemm is a GotoBLAS/BLIS-style blocked GEMM: op(A) and op(B) are packed (transposition
// and alpha are handled while packing) into cache-sized blocks, and a register-blocked
// micro-kernel computes one small tile of C at a time from the packed panels. The
// micro-kernels are generated Go assembly (gen_kernels.go) for AVX-512 (14×32 tiles, 28
// zmm accumulators, plus 14×8 ymm tiles for narrow right edges) and AVX2+FMA (6×16
// tiles), chosen at run time from the CPU's features; a portable Go kernel (4×4 tiles)
// serves every other CPU and the purego build tag. Blocks: kc = 256 (a 14×256 A
// micro-panel is 14 KiB of a 32–48 KiB L1D), nc = 512 (a 256×512 packed B block is
// 512 KiB of a 1 MiB L2), mc = 2016 (A block in L2/L3; B is packed once per mc block).
// Products of more than a few MFLOP are split across runtime.GOMAXPROCS(0) goroutines
// as a grid of C rectangles; packing buffers and helper goroutines are reused, so
// steady-state calls do not allocate. K is never split: every element of C is summed by
// one thread in an order fixed by the sizes, so the thread count never changes a bit.
//
// The kernel family is a value, Kernel: its zero value is the fastest family the CPU
// supports (detected once, without side effects); Lookup picks one by name ("avx512",
// "avx2" or "generic") for benchmarks and tests. Ops hold the Kernel they were built
// with, so two graphs in one process may use different families.
package gemm

//go:generate go run gen_kernels.go

import (
	"fmt"
	"strings"
)

// Kernel is a micro-kernel family: Sgemm, SmallNN and SmallTN compute with it. The
// zero value is the fastest family this CPU (and build) supports. Kernels are small
// immutable values; copy them freely.
type Kernel struct{ impl *impl }

// Lookup returns the kernel family name ("avx512", "avx2", "generic"; "" or "auto" is
// the zero Kernel, the fastest). It fails when the family is unknown or not supported
// by this CPU.
func Lookup(name string) (Kernel, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || name == "auto" {
		return Kernel{}, nil
	}
	for _, k := range supported {
		if k.name == name {
			return Kernel{k}, nil
		}
	}
	return Kernel{}, fmt.Errorf("gemm: kernel %q is not available on this CPU (have %s)", name, strings.Join(Kernels(), ", "))
}

// Name reports the family: "avx512", "avx2" or "generic".
func (k Kernel) Name() string { return k.get().name }

func (k Kernel) String() string { return k.Name() }

func (k Kernel) get() *impl {
	if k.impl == nil {
		return supported[0]
	}
	return k.impl
}

// Kernels lists the kernel families this CPU (and build) supports, fastest first.
func Kernels() []string {
	names := make([]string, len(supported))
	for i, k := range supported {
		names[i] = k.name
	}
	return names
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32 matrices, where
// op(A) is m×k (A is k×m when transA), op(B) is k×n (B is n×k when transB) and C is m×n.
// lda, ldb and ldc are the row strides of A, B and C. When beta is 0, C is overwritten
// without being read (NaNs in C do not propagate). When alpha is 0 or k is 0, A and B are
// not read.
func (kn Kernel) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if beta == 0 {
		beta = 0 // turn -0 into +0: the kernels test beta's bits to skip reading C
	}
	if k <= 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	impl := kn.get()
	p := problem{
		transA: transA, transB: transB,
		m: m, n: n, k: k,
		alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
	}
	run(impl, &p)
}

// checkArgs panics with a clear message when a matrix is too short for its shape and
// stride, instead of letting a kernel read or write out of bounds.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	check := func(name string, s []float32, rows, cols, ld int) {
		if rows == 0 || cols == 0 {
			return
		}
		if ld < cols {
			panic(fmt.Sprintf("gemm: ld%s = %d < %d columns", name, ld, cols))
		}
		if need := (rows-1)*ld + cols; len(s) < need {
			panic(fmt.Sprintf("gemm: len(%s) = %d < %d for a %d×%d matrix with ld %d", name, len(s), need, rows, cols, ld))
		}
	}
	if k > 0 {
		check("a", a, ar, ac, lda)
		check("b", b, br, bc, ldb)
	}
	check("c", c, m, n, ldc)
}

// scaleC sets C = beta*C (C = 0 when beta is 0, without reading C).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(ci)
		case 1:
		default:
			for j := range ci {
				ci[j] *= beta
			}
		}
	}
}

// problem is one Sgemm call.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
}

// microKernel computes one tile of C from packed panels and issues pfn prefetches of
// lines pfld bytes apart from address pf on the side; see gen_kernels.go.
type microKernel func(a, b, c *float32, kc, ldc int, beta float32, pf uintptr, pfld, pfn int)

// packKernel is a full-width microKernel that also packs its B micro-panel: it reads op(B)
// rows from bsrc, ldb floats apart, and stores them to b while computing.
type packKernel func(a, b, c *float32, kc, ldc int, beta float32, pf uintptr, pfld, pfn int, bsrc *float32, ldb int)

// impl is one kernel family with its tile and cache-block sizes.
type impl struct {
	name  string
	mr    int // rows of the largest tile (A values broadcast per k step)
	lanes int // float32 lanes per vector
	nv    int // vectors per tile row: nr = nv*lanes
	half  int // lanes of the kern[mr][0] kernels for narrow right edges (0: none)
	kc    int // k block: an mr×kc A micro-panel stays in L1
	nc    int // n block: a kc×nc packed B block stays in L2
	mc    int // m block: an mc×kc packed A block (L2/L3)
	// kern[mr][nv] computes an mr×(nv*lanes) tile, 1 <= mr <= this.mr, 1 <= nv <= this.nv;
	// kern[mr][0] an mr×half one when half > 0.
	kern [][]microKernel
	// packKern[mr], when not nil, is kern[mr][nv] fused with the packing of B (not
	// transposed): the first micro-panel of A packs each B micro-panel as it goes.
	packKern []packKernel
	// flopsPerCycle is a rough per-core throughput used to weigh packing against compute
	// when splitting work across threads.
	flopsPerCycle float64
}

func (k *impl) nr() int { return k.nv * k.lanes }

// supported is the kernel families this CPU and build support, fastest first. It is
// fixed at start-up from the CPU's features and never changes.
var supported = append(archImpls(), genericImpl)
