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
// on the calling goroutine and on helpers, returning when all are done. The caller and
// the helpers claim chunks in turn until none is left, so a helper that is slow to wake
// (or a busy machine) leaves its chunk to whoever is free. n <= 1, or one thread, runs
// inline.
func (p *Pool) For(n int, body func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	g := p.group(body, n, (n+workers-1)/workers)
	for range workers - 1 {
		h := p.acquire()
		if h == nil {
			break
		}
		g.helpers = append(g.helpers, h)
		g.pending.Add(1)
		h.submit(g)
	}
	g.run()
	// Every chunk is claimed. Take the group back from helpers that have not picked it
	// up yet: the caller never waits for a helper to wake only to find nothing to do.
	started := int32(len(g.helpers))
	for _, h := range g.helpers {
		if h.next.CompareAndSwap(g, nil) {
			started--
			g.pending.Add(-1)
			p.release(h)
		}
	}
	g.wait(p.Spin)
	// A helper may still be inside done (it decrements pending, then checks parked):
	// the group goes back to the pool only once every helper has left it.
	for g.exited.Load() != started {
		runtime.Gosched()
	}
	g.body = nil
	clear(g.helpers)
	g.helpers = g.helpers[:0]
	g.exited.Store(0)
	p.groups.Put(g)
}

// group returns a reset group running body over [0, n) in chunks of chunk.
func (p *Pool) group(body func(lo, hi int), n, chunk int) *group {
	g, _ := p.groups.Get().(*group)
	if g == nil {
		g = &group{wake: make(chan struct{}, 1)}
	}
	g.body, g.n, g.chunk = body, n, chunk
	g.next.Store(0)
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

// Parts returns the number of parts a reduction over n items cuts them into: the
// largest power of two that is at most maxParts and at most n/minItems (each part holds
// at least minItems items), and at least 1. It depends on the sizes alone, never on the
// number of threads; a power of two spreads evenly over 2 or 4 threads.
func Parts(n, minItems, maxParts int) int {
	limit := min(maxParts, n/max(minItems, 1))
	p := 1
	for 2*p <= limit {
		p *= 2
	}
	return p
}

// Range returns the items [lo, hi) of part i when n items are cut into parts near-equal
// contiguous parts.
func Range(n, parts, i int) (lo, hi int) {
	return n * i / parts, n * (i + 1) / parts
}

// group is one For call: its chunks, claimed through next, and the helpers working on
// it. Groups are reused (Pool.groups) once every helper has left them, so that a steady
// stream of loops does not allocate.
type group struct {
	body     func(lo, hi int)
	n, chunk int
	helpers  []*helper    // the helpers it was handed to
	next     atomic.Int64 // the next chunk to claim
	pending  atomic.Int32 // helpers not done yet
	exited   atomic.Int32 // helpers done with the group
	parked   atomic.Bool
	wake     chan struct{}
}

// run claims and runs chunks until none is left.
func (g *group) run() {
	for {
		lo := int(g.next.Add(1)-1) * g.chunk
		if lo >= g.n {
			return
		}
		g.body(lo, min(lo+g.chunk, g.n))
	}
}

// done counts one helper done; the last wakes the caller if it has parked. Exactly one
// of done and wait turns parked from true to false: that one knows who sends the token,
// so the wake channel is empty again when wait returns. The caller may be past wait by
// the time the last done reads parked; it waits for exited before reusing the group.
func (g *group) done() {
	if g.pending.Add(-1) == 0 && g.parked.CompareAndSwap(true, false) {
		g.wake <- struct{}{}
	}
	g.exited.Add(1)
}

// wait returns once every helper of the group is done: it spins for spin, then parks
// until the last helper wakes it.
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

// helper is a pooled goroutine that works on the groups handed to it by submit.
type helper struct {
	pool   *Pool
	next   atomic.Pointer[group]
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

func (h *helper) submit(g *group) {
	h.next.Store(g)
	if h.asleep.CompareAndSwap(true, false) {
		h.wake <- struct{}{}
	}
}

func (h *helper) loop() {
	for {
		g := h.next.Swap(nil)
		if g == nil {
			g = h.idle()
		}
		g.run()
		h.pool.release(h) // before done: the caller's next loop may want it at once
		g.done()
	}
}

// idle spins for the pool's Spin waiting for a group, then parks until submit wakes it.
func (h *helper) idle() *group {
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
