// Package parallel runs the loops of vggo's kernels on a pool of helper goroutines.
//
// A Pool splits a loop into contiguous chunks, one per thread, and runs them on the
// calling goroutine and on helpers. The split depends on GOMAXPROCS, so a body must
// give the same result however [0, n) is cut: each index writes its own outputs.
// Reductions cut their input into parts fixed by the data's size (Parts), run the parts
// as the indices of such a loop, and combine the partial results in part order, so that
// they give the same bits on any number of threads.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a set of helper goroutines, started on demand, at most GOMAXPROCS-1 of them.
// The zero value is ready to use and parks its helpers as soon as they are idle; set
// Spin before the first call to keep them (and a waiting caller) spinning for a while
// instead, which makes back-to-back loops of a few dozen microseconds cheap: the next
// loop finds its helpers awake. A Pool is safe for concurrent use; when every helper is
// busy (nested or concurrent loops), chunks run on the calling goroutine.
type Pool struct {
	// Spin is how long an idle helper, and a caller waiting for its helpers, spins
	// before parking.
	Spin time.Duration

	mu     sync.Mutex
	free   []*helper
	all    int
	groups sync.Pool // of *group
}

// For splits [0, n) into at most GOMAXPROCS contiguous chunks and runs body on each,
// the first on the calling goroutine and the others on helpers, returning when all are
// done. n <= 1, or one thread, runs inline.
func (p *Pool) For(n int, body func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	chunk := (n + workers - 1) / workers
	g := p.group(body, (n+chunk-1)/chunk-1)
	var buf [8][2]int
	inline := buf[:0]
	submitted := 0
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		h := p.acquire()
		if h == nil {
			inline = append(inline, [2]int{lo, hi})
			continue
		}
		t := &g.tasks[submitted]
		*t = task{g: g, lo: lo, hi: hi}
		submitted++
		g.pending.Add(1)
		h.submit(t)
	}
	body(0, min(chunk, n))
	for _, r := range inline {
		body(r[0], r[1])
	}
	g.wait(p.Spin)
	// A helper may still be inside done (it decrements pending, then checks parked):
	// the group goes back to the pool only once every helper has left it.
	for g.exited.Load() != int32(submitted) {
		runtime.Gosched()
	}
	g.body = nil
	clear(g.tasks)
	g.exited.Store(0)
	p.groups.Put(g)
}

// group returns a reset group for body with room for tasks tasks.
func (p *Pool) group(body func(lo, hi int), tasks int) *group {
	g, _ := p.groups.Get().(*group)
	if g == nil {
		g = &group{wake: make(chan struct{}, 1)}
	}
	g.body = body
	if cap(g.tasks) < tasks {
		g.tasks = make([]task, tasks)
	}
	g.tasks = g.tasks[:tasks]
	return g
}

// Blocks runs body over [0, n) cut into blocks of block elements (the last may be
// shorter), spread over the pool as For spreads indices; n <= block runs inline. Each
// call of body gets whole blocks.
func (p *Pool) Blocks(n, block int, body func(lo, hi int)) {
	if n <= block {
		if n > 0 {
			body(0, n)
		}
		return
	}
	p.For((n+block-1)/block, func(lo, hi int) {
		body(lo*block, min(hi*block, n))
	})
}

// Parts returns the number of parts a reduction over n items cuts them into: n/minItems
// (each part at least minItems items), at least 1 and at most maxParts. It depends on
// the sizes alone, never on the number of threads.
func Parts(n, minItems, maxParts int) int {
	return max(1, min(maxParts, n/max(minItems, 1)))
}

// Range returns the items [lo, hi) of part i when n items are cut into parts near-equal
// contiguous parts.
func Range(n, parts, i int) (lo, hi int) {
	return n * i / parts, n * (i + 1) / parts
}

// group is one For call's chunks in flight on helpers. Groups are reused (Pool.groups)
// once every helper has left them, so that a steady stream of loops does not allocate.
type group struct {
	body    func(lo, hi int)
	tasks   []task // the chunks handed to helpers
	pending atomic.Int32
	exited  atomic.Int32 // helpers done with the group
	parked  atomic.Bool
	wake    chan struct{}
}

// done counts one chunk done; the last wakes the caller if it has parked. Exactly one
// of done and wait turns parked from true to false: that one knows who sends the token,
// so the wake channel is empty again when wait returns. The caller may be past wait by
// the time the last done reads parked; it waits for exited before reusing the group.
func (g *group) done() {
	if g.pending.Add(-1) == 0 && g.parked.CompareAndSwap(true, false) {
		g.wake <- struct{}{}
	}
	g.exited.Add(1)
}

// wait returns once every chunk handed to a helper is done: it spins for spin, then
// parks until the last helper wakes it.
func (g *group) wait(spin time.Duration) {
	if g.pending.Load() == 0 {
		return
	}
	start := time.Now()
	for i := 0; g.pending.Load() != 0; i++ {
		if i&63 == 63 || spin == 0 {
			if spin == 0 || time.Since(start) > spin {
				g.parked.Store(true)
				if g.pending.Load() != 0 || !g.parked.CompareAndSwap(true, false) {
					// The last helper has turned, or will turn, parked off and send.
					<-g.wake
				}
				return
			}
			runtime.Gosched()
		}
	}
}

type task struct {
	g      *group
	lo, hi int
}

// helper is a pooled goroutine that runs tasks handed to it by submit.
type helper struct {
	pool   *Pool
	next   atomic.Pointer[task]
	asleep atomic.Bool
	wake   chan struct{}
}

// acquire returns an idle helper, starting one if fewer than GOMAXPROCS-1 exist, or nil
// when all are busy.
func (p *Pool) acquire() *helper {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := len(p.free); k > 0 {
		h := p.free[k-1]
		p.free = p.free[:k-1]
		return h
	}
	if p.all >= runtime.GOMAXPROCS(0)-1 {
		return nil
	}
	p.all++
	h := &helper{pool: p, wake: make(chan struct{}, 1)}
	go h.loop()
	return h
}

func (p *Pool) release(h *helper) {
	p.mu.Lock()
	p.free = append(p.free, h)
	p.mu.Unlock()
}

func (h *helper) submit(t *task) {
	h.next.Store(t)
	if h.asleep.CompareAndSwap(true, false) {
		h.wake <- struct{}{}
	}
}

func (h *helper) loop() {
	for {
		t := h.next.Swap(nil)
		if t == nil {
			t = h.idle()
		}
		t.g.body(t.lo, t.hi)
		g := t.g
		h.pool.release(h) // before done: the caller's next loop may want it at once
		g.done()
	}
}

// idle spins for the pool's Spin waiting for a task, then parks until submit wakes it.
func (h *helper) idle() *task {
	if spin := h.pool.Spin; spin > 0 {
		start := time.Now()
		for i := 0; ; i++ {
			if t := h.next.Swap(nil); t != nil {
				return t
			}
			if i&63 == 63 {
				if time.Since(start) > spin {
					break
				}
				runtime.Gosched()
			}
		}
	}
	for {
		h.asleep.Store(true)
		if t := h.next.Swap(nil); t != nil {
			if !h.asleep.CompareAndSwap(true, false) {
				<-h.wake // submit saw us asleep and is sending: take its token
			}
			return t
		}
		<-h.wake
		if t := h.next.Swap(nil); t != nil {
			return t
		}
	}
}
