package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Products below this many flops (2·m·n·k) run on the calling goroutine alone: waking a
// helper costs a few microseconds.
const parallelMinFlops = 4 << 20

// maxParts bounds the threads one call uses.
const maxParts = 64

// job is one multi-threaded Sgemm call. The caller and the helpers it wakes claim parts
// (rectangles of C) through next until none are left. A helper that gets to a job only
// after the caller has finished it (because it was busy with another call's job) does
// nothing: the caller never waits for helpers that have not started, only for those
// still computing a part.
type job struct {
	k      *impl
	p      problem
	tm, tn int // parts grid: tm row ranges × tn column ranges
	mu, nu int // C size in micro-tile units
	parts  int32
	next   atomic.Int32

	lock   sync.Mutex
	idle   sync.Cond // signalled when active drops to 0
	gen    uint64    // bumped when the caller is done; stale wake-ups see a new gen
	active int       // helpers inside work()
}

// wake is what a helper receives: a job and the generation it was woken for.
type wake struct {
	j   *job
	gen uint64
}

var jobPool = sync.Pool{New: func() any {
	j := new(job)
	j.idle.L = &j.lock
	return j
}}

// helpers is the pool of long-lived helper goroutines, started on demand.
var helpers struct {
	mu sync.Mutex
	n  int
	ch chan wake
}

func startHelpers(n int) {
	helpers.mu.Lock()
	defer helpers.mu.Unlock()
	if helpers.ch == nil {
		helpers.ch = make(chan wake, 4*maxParts)
	}
	for ; helpers.n < n; helpers.n++ {
		go helper(helpers.ch)
	}
}

func helper(ch <-chan wake) {
	for w := range ch {
		j := w.j
		j.lock.Lock()
		if j.gen != w.gen {
			j.lock.Unlock()
			continue
		}
		j.active++
		j.lock.Unlock()
		j.work()
		j.lock.Lock()
		if j.active--; j.active == 0 {
			j.idle.Broadcast()
		}
		j.lock.Unlock()
	}
}

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

func runParallel(k *impl, p *problem, tm, tn, mu, nu int) {
	j := jobPool.Get().(*job)
	j.k, j.p = k, *p
	j.tm, j.tn, j.mu, j.nu = tm, tn, mu, nu
	j.parts = int32(tm * tn)
	j.next.Store(0)
	j.lock.Lock()
	gen := j.gen
	j.lock.Unlock()
	nh := tm*tn - 1
	startHelpers(nh)
	for i := 0; i < nh; i++ {
		select {
		case helpers.ch <- wake{j, gen}:
		default: // helpers are swamped: the caller will do the parts itself
		}
	}
	j.work()
	// Every part is claimed. Retire this generation (late wake-ups become no-ops) and
	// wait for the helpers still computing a part.
	j.lock.Lock()
	j.gen++
	for j.active > 0 {
		j.idle.Wait()
	}
	j.lock.Unlock()
	j.p = problem{}
	jobPool.Put(j)
}

// work claims and computes parts until none are left.
func (j *job) work() {
	var ws *workspace
	for {
		i := int(j.next.Add(1) - 1)
		if i >= int(j.parts) {
			break
		}
		if ws == nil {
			ws = getWorkspace()
		}
		im, in := i/j.tn, i%j.tn
		m0 := min(unitStart(j.mu, j.tm, im)*j.k.mr, j.p.m)
		m1 := min(unitStart(j.mu, j.tm, im+1)*j.k.mr, j.p.m)
		n0 := min(unitStart(j.nu, j.tn, in)*j.k.nr(), j.p.n)
		n1 := min(unitStart(j.nu, j.tn, in+1)*j.k.nr(), j.p.n)
		if m0 < m1 && n0 < n1 {
			region(j.k, &j.p, ws, m0, m1, n0, n1)
		}
	}
	if ws != nil {
		putWorkspace(ws)
	}
}

// unitStart is the first unit of part i when u units are split into t near-equal parts.
func unitStart(u, t, i int) int { return u * i / t }
