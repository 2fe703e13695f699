package gemm

import (
	"runtime"
	"sync"

	"github.com/vggo/vggo/internal/parallel"
)

// Products below this many flops (2·m·n·k) run on the calling goroutine alone: waking a
// helper costs a few microseconds.
const parallelMinFlops = 4 << 20

// maxParts bounds the threads one call uses.
const maxParts = 64

// pool runs the parts of multi-threaded products. Its helpers park as soon as they are
// idle: products are long next to a wake-up, and a spinning helper would take a core from
// the op-level loops that call Sgemm on every thread.
var pool parallel.Pool

// run computes problem p with kernel family k, in parallel when it is large enough.
func run(k *impl, p *problem) {
	threads := min(runtime.GOMAXPROCS(0), maxParts)
	flops := 2 * float64(p.m) * float64(p.n) * float64(p.k)
	if threads > 1 && flops < parallelMinFlops {
		threads = 1
	}
	mu := (p.m + k.mr - 1) / k.mr
	nu := (p.n + k.nr() - 1) / k.nr()
	if threads > 1 {
		tm, tn := split(k, p, mu, nu, threads)
		if tm*tn > 1 {
			runParallel(k, p, tm, tn, mu, nu)
			return
		}
	}
	ws := getWorkspace()
	region(k, p, ws, 0, p.m, 0, p.n)
	putWorkspace(ws)
}

// split picks a tm×tn grid of parts (tm*tn <= threads) minimising the estimated time of
// the slowest part: its padded compute plus the packing it repeats (each part packs all
// the A rows and B columns it touches).
func split(k *impl, p *problem, mu, nu, threads int) (int, int) {
	bestT, bm, bn := -1.0, 1, 1
	for tm := 1; tm <= threads; tm++ {
		for tn := 1; tm*tn <= threads; tn++ {
			if tm > mu || tn > nu {
				continue
			}
			rows := min(ceilDiv(mu, tm)*k.mr, p.m)
			cols := min(ceilDiv(nu, tn)*k.nr(), p.n)
			compute := 2 * float64(rows) * float64(cols) * float64(p.k) / k.flopsPerCycle
			// Packing costs about a cycle per element; B is repacked for every mc block of A.
			pack := float64(rows)*float64(p.k) + float64(cols)*float64(p.k)*float64(ceilDiv(rows, k.mc))
			t := compute + pack
			if bestT < 0 || t < bestT*0.999 {
				bestT, bm, bn = t, tm, tn
			}
		}
	}
	return bm, bn
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// job is one multi-threaded Sgemm call: a tm×tn grid of C rectangles (parts), one per
// pool index. Jobs are reused, with part bound once, so that calls do not allocate.
type job struct {
	k      *impl
	p      problem
	tm, tn int // parts grid: tm row ranges × tn column ranges
	mu, nu int // C size in micro-tile units
	part   func(lo, hi int)
}

var jobs = sync.Pool{New: func() any {
	j := new(job)
	j.part = j.run
	return j
}}

// runParallel computes p as a tm×tn grid of C rectangles.
func runParallel(k *impl, p *problem, tm, tn, mu, nu int) {
	j := jobs.Get().(*job)
	j.k, j.p = k, *p
	j.tm, j.tn, j.mu, j.nu = tm, tn, mu, nu
	pool.For(tm*tn, j.part)
	j.k, j.p = nil, problem{}
	jobs.Put(j)
}

// run computes parts [lo, hi).
func (j *job) run(lo, hi int) {
	ws := getWorkspace()
	for i := lo; i < hi; i++ {
		im, in := i/j.tn, i%j.tn
		m0 := min(unitStart(j.mu, j.tm, im)*j.k.mr, j.p.m)
		m1 := min(unitStart(j.mu, j.tm, im+1)*j.k.mr, j.p.m)
		n0 := min(unitStart(j.nu, j.tn, in)*j.k.nr(), j.p.n)
		n1 := min(unitStart(j.nu, j.tn, in+1)*j.k.nr(), j.p.n)
		if m0 < m1 && n0 < n1 {
			region(j.k, &j.p, ws, m0, m1, n0, n1)
		}
	}
	putWorkspace(ws)
}

// unitStart is the first unit of part i when u units are split into t near-equal parts.
func unitStart(u, t, i int) int { return u * i / t }
