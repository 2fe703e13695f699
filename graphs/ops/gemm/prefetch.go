package gemm

import "unsafe"

// prefetcher schedules the prefetching of a rectangle of a source matrix (what the next
// packing call will read) into the micro-kernel calls of the current block, so that the
// packing reads from L2 instead of waiting on DRAM. The kernels issue one prefetch per k
// step; the rectangle is walked one cache-line column at a time (line j of each row).
// Prefetches never fault, so a line past the end of a row or of the matrix only wastes a
// little bandwidth.
type prefetcher struct {
	base  uintptr // address of the rectangle's first element
	ld    int     // row stride in bytes
	rows  int
	lines int // line columns: enough to cover a row wherever it starts in a line
	r, j  int // next row and line column
	rate  int // lines per kernel call, to spread the prefetches over the block
}

// set aims the prefetcher at rows×cols elements of s from off on, with row stride ld, to
// be fetched over about calls kernel calls. The matrix s must stay alive until the
// prefetches are issued (the problem holds it).
func (pf *prefetcher) set(s []float32, off, ld, rows, cols, calls int) {
	pf.r, pf.j = 0, 0
	if !havePrefetch || rows <= 0 || cols <= 0 {
		pf.lines = 0
		return
	}
	pf.base = uintptr(unsafe.Pointer(&s[off]))
	pf.ld = ld * 4
	pf.rows = rows
	pf.lines = (cols*4+63)/64 + 1
	pf.rate = ceilDiv(rows*pf.lines, max(calls, 1))
}

func (pf *prefetcher) clear() { pf.lines = 0 }

// next returns up to n line addresses (as a start and a stride) to prefetch; count is 0
// when the rectangle is done.
func (pf *prefetcher) next(n int) (addr uintptr, stride, count int) {
	if pf.j >= pf.lines {
		return 0, 0, 0
	}
	count = min(n, pf.rate, pf.rows-pf.r)
	addr = pf.base + uintptr(pf.r*pf.ld+pf.j*64)
	if pf.r += count; pf.r == pf.rows {
		pf.r = 0
		pf.j++
	}
	return addr, pf.ld, count
}

// setA aims pf at the source of packA(i0, mb, p0, kb).
func (pf *prefetcher) setA(p *problem, i0, mb, p0, kb, calls int) {
	if p.transA {
		pf.set(p.a, p0*p.lda+i0, p.lda, kb, mb, calls)
	} else {
		pf.set(p.a, i0*p.lda+p0, p.lda, mb, kb, calls)
	}
}

// setB aims pf at the source of packB(j0, nb, p0, kb).
func (pf *prefetcher) setB(p *problem, j0, nb, p0, kb, calls int) {
	if p.transB {
		pf.set(p.b, j0*p.ldb+p0, p.ldb, nb, kb, calls)
	} else {
		pf.set(p.b, p0*p.ldb+j0, p.ldb, kb, nb, calls)
	}
}
