package gemm

import (
	"sync"
	"unsafe"
)

// workspace holds one thread's packing buffers. They grow to the largest block seen and
// are kept on a free list (not a sync.Pool, which the GC empties: re-allocating a few
// hundred KiB after each GC would cost more than keeping them), so steady-state calls do
// not allocate. There are at most as many as Sgemm threads ever ran at once.
type workspace struct {
	a, b []float32
	tmp  []float32 // one mr×nr tile for partial tiles at the right edge of C

	pfA, pfB prefetcher
}

var workspaces struct {
	mu   sync.Mutex
	free []*workspace
}

func getWorkspace() *workspace {
	workspaces.mu.Lock()
	defer workspaces.mu.Unlock()
	if n := len(workspaces.free); n > 0 {
		ws := workspaces.free[n-1]
		workspaces.free = workspaces.free[:n-1]
		return ws
	}
	return new(workspace)
}

func putWorkspace(ws *workspace) {
	workspaces.mu.Lock()
	workspaces.free = append(workspaces.free, ws)
	workspaces.mu.Unlock()
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		// 64-byte align the start so packed panels never straddle cache lines oddly.
		buf := make([]float32, n+16)
		off := 0
		if r := uintptr(unsafe.Pointer(&buf[0])) & 63; r != 0 {
			off = int((64 - r) / 4)
		}
		return buf[off : off+n : off+n]
	}
	return s[:n]
}

// region computes the block C[m0:m1, n0:n1] of problem p single-threaded with kernel
// family k. The loops are BLIS's five loops with the operands' roles set by the
// micro-kernel's orientation (vectors along N, broadcasts along M):
//
//	for each mc block of rows (packed A block: mc×kc)
//	  for each kc block of k (beta applies to the first one only)
//	    pack A
//	    for each nc block of columns
//	      pack B (kc×nc, stays in L2)
//	      for each mr micro-panel of A (stays in L1)
//	        for each nr micro-panel of B (streams from L2)
//	          micro-kernel
//
// A non-transposed B is not packed up front: the first row of micro-kernels packs each
// full B micro-panel while using it, which overlaps the (often DRAM-bound) copy with the
// FMAs. The micro-kernels also prefetch, a few lines per k step, the source of the next
// B block (then of the next A block), so that the packing after this block finds its
// input in L2.
func region(k *impl, p *problem, ws *workspace, m0, m1, n0, n1 int) {
	mr, nr, lanes := k.mr, k.nr(), k.lanes
	// Equal k blocks (576 = 3×192 rather than 256+256+64) and equal n blocks.
	kc := ceilDiv(p.k, ceilDiv(p.k, k.kc))
	nc := roundUp(ceilDiv(n1-n0, ceilDiv(n1-n0, k.nc)), nr)
	kcMax := kc
	// Split the rows into equal mc blocks (B is packed again for each), so that e.g.
	// 1024 rows do not become a block of 1008 and one of 16.
	mc := roundUp(ceilDiv(m1-m0, ceilDiv(m1-m0, k.mc)), mr)
	mcMax := min(mc, m1-m0)
	ncMax := min(nc, roundUp(n1-n0, lanes))
	ws.a = grow(ws.a, mcMax*kcMax)
	ws.b = grow(ws.b, roundUp(ncMax, lanes)*kcMax)
	ws.tmp = grow(ws.tmp, mr*nr)
	c := p.c
	ldc := p.ldc
	pfA, pfB := &ws.pfA, &ws.pfB
	for ic := m0; ic < m1; ic += mc {
		mb := min(mc, m1-ic)
		for pc := 0; pc < p.k; pc += kc {
			kb := min(kc, p.k-pc)
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			packA(ws.a, p, ic, mb, pc, kb, mr)
			// Prefetch the next A block during this one.
			callsA := ceilDiv(mb, mr) * ceilDiv(n1-n0, nr)
			switch {
			case pc+kc < p.k:
				pfA.setA(p, ic, mb, pc+kc, min(kc, p.k-pc-kc), callsA)
			case ic+mc < m1:
				pfA.setA(p, ic+mc, min(mc, m1-ic-mc), 0, kc, callsA)
			default:
				pfA.clear()
			}
			for jc := n0; jc < n1; jc += nc {
				nb := min(nc, n1-jc)
				// Full B micro-panels of a non-transposed B are packed by the first row of
				// micro-kernels (fused), the rest here.
				fused := k.packKern != nil && !p.transB
				packed := 0
				if fused {
					packed = nb / nr * nr
				}
				packB(ws.b[packed*kb:], p, jc+packed, nb-packed, pc, kb, nr, lanes, k.half)
				// Prefetch the next B block during this one.
				callsB := ceilDiv(mb, mr) * ceilDiv(nb, nr)
				switch {
				case jc+nc < n1:
					pfB.setB(p, jc+nc, min(nc, n1-jc-nc), pc, kb, callsB)
				case pc+kc < p.k:
					pfB.setB(p, n0, min(nc, n1-n0), pc+kc, min(kc, p.k-pc-kc), callsB)
				case ic+mc < m1:
					pfB.setB(p, n0, min(nc, n1-n0), 0, kc, callsB)
				default:
					pfB.clear()
				}
				for ir := 0; ir < mb; ir += mr {
					mrr := min(mr, mb-ir)
					ap := &ws.a[ir*kb]
					kr := k.kern[mrr]
					for jr := 0; jr < nb; jr += nr {
						nrr := min(nr, nb-jr)
						nv := (nrr + lanes - 1) / lanes
						w := nv * lanes
						if nrr <= k.half {
							nv, w = 0, k.half
						}
						bp := &ws.b[jr*kb]
						pf, pfld, pfn := pfB.next(kb)
						if pfn == 0 {
							pf, pfld, pfn = pfA.next(kb)
							if pfn == 0 {
								pf = uintptr(unsafe.Pointer(bp))
							}
						}
						ci := (ic+ir)*ldc + jc + jr
						if ir == 0 && jr < packed {
							k.packKern[mrr](ap, bp, &c[ci], kb, ldc, beta, pf, pfld, pfn, &p.b[pc*p.ldb+jc+jr], p.ldb)
							continue
						}
						if nrr == w {
							kr[nv](ap, bp, &c[ci], kb, ldc, beta, pf, pfld, pfn)
							continue
						}
						kr[nv](ap, bp, &ws.tmp[0], kb, w, 0, pf, pfld, pfn)
						mergeTile(c[ci:], ldc, ws.tmp, w, mrr, nrr, beta)
					}
				}
			}
		}
	}
}

// mergeTile sets C = T + beta*C on an mr×nr tile (C = T when beta is 0).
func mergeTile(c []float32, ldc int, t []float32, ldt, mr, nr int, beta float32) {
	for i := 0; i < mr; i++ {
		ci := c[i*ldc : i*ldc+nr]
		ti := t[i*ldt : i*ldt+nr]
		switch beta {
		case 0:
			copy(ci, ti)
		case 1:
			for j, v := range ti {
				ci[j] += v
			}
		default:
			for j, v := range ti {
				ci[j] = v + beta*ci[j]
			}
		}
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// tailWidth is the packed width of a B micro-panel of cols columns.
func tailWidth(cols, lanes, half int) int {
	if cols <= half {
		return half
	}
	return roundUp(cols, lanes)
}

// packA packs alpha*op(A)[i0:i0+mb, p0:p0+kb] into micro-panels of mr rows (the last one
// may be shorter): panel q holds rows i0+q*mr.. at dst[q*mr*kb:], element (i, p) at
// [p*rows+i]. Panel q therefore starts at dst[q*mr*kb], i.e. dst[ir*kb] for row offset ir.
func packA(dst []float32, p *problem, i0, mb, p0, kb, mr int) {
	alpha := p.alpha
	a, lda := p.a, p.lda
	for ir := 0; ir < mb; ir += mr {
		rows := min(mr, mb-ir)
		d := dst[ir*kb : ir*kb+rows*kb]
		if p.transA {
			// op(A)[i, p] = A[p, i]: each k step is a contiguous run of rows values.
			for q := 0; q < kb; q++ {
				src := a[(p0+q)*lda+i0+ir : (p0+q)*lda+i0+ir+rows]
				dq := d[q*rows : q*rows+rows]
				if alpha == 1 {
					copy(dq, src)
				} else {
					for i, v := range src {
						dq[i] = alpha * v
					}
				}
			}
			continue
		}
		// op(A)[i, p] = A[i, p]: transpose.
		packT(d, rows, a[(i0+ir)*lda+p0:], lda, rows, kb, alpha)
	}
}

// packB packs op(B)[p0:p0+kb, j0:j0+nb] into micro-panels of nr columns; the last panel is
// rounded up to a multiple of lanes (or to half when it is at most half wide) and
// zero-padded. Panel q starts at dst[q*nr*kb] and holds element (p, j) at [p*w+j] where w
// is the panel's (padded) width.
func packB(dst []float32, p *problem, j0, nb, p0, kb, nr, lanes, half int) {
	b, ldb := p.b, p.ldb
	full := nb / nr * nr // columns in full panels
	if !p.transB {
		// op(B)[p, j] = B[p, j]: stream along each row of B, scattering nr-wide runs
		// to the panels.
		if haveAVX && nr%8 == 0 && full > 0 {
			// Bounds: the last row read and the last panel element written.
			_ = b[(p0+kb-1)*ldb+j0+full-1]
			_ = dst[full*kb-1]
			copyPanels(&dst[0], &b[p0*ldb+j0], ldb, kb, full/nr, nr)
		} else {
			for q := 0; q < kb; q++ {
				src := b[(p0+q)*ldb+j0 : (p0+q)*ldb+j0+full]
				for jr := 0; jr < full; jr += nr {
					copy(dst[jr*kb+q*nr:jr*kb+q*nr+nr], src[jr:jr+nr])
				}
			}
		}
		if cols := nb - full; cols > 0 {
			w := tailWidth(cols, lanes, half)
			for q := 0; q < kb; q++ {
				src := b[(p0+q)*ldb+j0+full : (p0+q)*ldb+j0+nb]
				dq := dst[full*kb+q*w : full*kb+q*w+w]
				copy(dq, src)
				clear(dq[cols:])
			}
		}
		return
	}
	// op(B)[p, j] = B[j, p]: transpose.
	for jr := 0; jr < nb; jr += nr {
		cols := min(nr, nb-jr)
		w := tailWidth(cols, lanes, half)
		d := dst[jr*kb : jr*kb+w*kb]
		packT(d, w, b[(j0+jr)*ldb+p0:], ldb, cols, kb, 1)
		if cols < w {
			for q := 0; q < kb; q++ {
				clear(d[q*w+cols : q*w+w])
			}
		}
	}
}

// packT sets d[q*ldd+r] = alpha*s[r*lds+q] for r < rows, q < n: it packs rows of a
// row-major matrix as columns. With AVX it goes 8×8 blocks at a time (the last group of 8
// rows overlaps the previous one rather than falling back to scalar code).
func packT(d []float32, ldd int, s []float32, lds, rows, n int, alpha float32) {
	n8 := 0
	if haveAVX && rows >= 8 && n >= 8 {
		n8 = n &^ 7
		_ = s[(rows-1)*lds+n8-1]
		_ = d[(n8-1)*ldd+rows-1]
		for r := 0; r < rows; r += 8 {
			r0 := min(r, rows-8)
			transpose8(&d[r0], ldd, &s[r0*lds], lds, n8, alpha)
		}
	}
	for r := 0; r < rows; r++ {
		src := s[r*lds+n8 : r*lds+n]
		if alpha == 1 {
			for q, v := range src {
				d[(n8+q)*ldd+r] = v
			}
		} else {
			for q, v := range src {
				d[(n8+q)*ldd+r] = alpha * v
			}
		}
	}
}
