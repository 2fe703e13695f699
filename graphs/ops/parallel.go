package ops

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parallelFor splits [0, n) into at most GOMAXPROCS contiguous chunks and runs body on
// each chunk, the first on the calling goroutine and the others on helper goroutines,
// returning when all are done. Small n runs inline.
//
// The ops call it for phases of a few dozen microseconds (a Winograd transform of one
// chunk, a filter transform of a small layer), where starting goroutines and waking idle
// threads would cost a good part of the phase. So the helpers are kept in a pool and,
// once done, spin for a short while (helperSpin) before parking, and the caller spins
// while it waits for them: back-to-back phases then find their helpers awake. When every
// helper is busy (nested or concurrent calls), chunks run on the calling goroutine.
func parallelFor(n int, body func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		if n > 0 {
			body(0, n)
		}
		return
	}
	chunk := (n + workers - 1) / workers
	// A fresh group per call: a helper's done may touch its group after the caller has
	// returned (it decrements pending, then checks parked), so groups are never reused.
	g := &group{body: body, wake: make(chan struct{}, 1)}
	var inline [][2]int
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		h := helpers.acquire()
		if h == nil {
			inline = append(inline, [2]int{lo, hi})
			continue
		}
		g.pending.Add(1)
		h.submit(&task{g: g, lo: lo, hi: hi})
	}
	body(0, min(chunk, n))
	for _, r := range inline {
		body(r[0], r[1])
	}
	g.wait()
}

// helperSpin is how long an idle helper (and a waiting caller) spins before parking.
const helperSpin = 50 * time.Microsecond

// group is one parallelFor call's chunks in flight on helpers.
type group struct {
	body    func(lo, hi int)
	pending atomic.Int32
	parked  atomic.Bool
	wake    chan struct{}
}

// done counts one chunk done; the last wakes the caller if it has parked. Exactly one
// of done and wait turns parked from true to false: that one knows who sends the token.
// The caller may have returned by the time the last done reads parked; the token then
// goes into the buffered channel of a group nobody uses again.
func (g *group) done() {
	if g.pending.Add(-1) == 0 && g.parked.CompareAndSwap(true, false) {
		g.wake <- struct{}{}
	}
}

// wait returns once every chunk handed to a helper is done: it spins for helperSpin,
// then parks until the last helper wakes it.
func (g *group) wait() {
	if g.pending.Load() == 0 {
		return
	}
	start := time.Now()
	for i := 0; g.pending.Load() != 0; i++ {
		if i&63 == 63 {
			if time.Since(start) > helperSpin {
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
	next   atomic.Pointer[task]
	asleep atomic.Bool
	wake   chan struct{}
}

type helperPool struct {
	mu   sync.Mutex
	free []*helper
	all  int
}

var helpers helperPool

// acquire returns an idle helper, starting one if fewer than GOMAXPROCS-1 exist, or nil
// when all are busy.
func (p *helperPool) acquire() *helper {
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
	h := &helper{wake: make(chan struct{}, 1)}
	go h.loop()
	return h
}

func (p *helperPool) release(h *helper) {
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
		helpers.release(h) // before done: the caller's next phase may want it at once
		g.done()
	}
}

// idle spins for helperSpin waiting for a task, then parks until submit wakes it.
func (h *helper) idle() *task {
	start := time.Now()
	for i := 0; ; i++ {
		if t := h.next.Swap(nil); t != nil {
			return t
		}
		if i&63 == 63 {
			if time.Since(start) > helperSpin {
				break
			}
			runtime.Gosched()
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
