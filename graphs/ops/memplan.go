package ops

import (
	"sync"
	"time"
	"unsafe"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opHooks is embedded by every op of this package: the Profile it reports to and the
// MemoryPlan its output buffer comes from.
type opHooks struct {
	prof *Profile
	plan *MemoryPlan
	refs int // consumers of the output under the plan; 0: the op keeps its own buffer
}

// SetProfile attaches p (nil detaches).
func (h *opHooks) SetProfile(p *Profile) { h.prof = p }

func (h *opHooks) setPlan(p *MemoryPlan, refs int) { h.plan, h.refs = p, refs }

// start returns the start time of a run when profiling.
func (h *opHooks) start() time.Time { return h.prof.Start() }

// finish ends a run: it reports the time and hands back the inputs whose last
// consumer this op is.
func (h *opHooks) finish(k Kind, t0 time.Time, inputs []G.Value) {
	h.prof.Stop(k, t0)
	if h.plan != nil {
		h.plan.release(inputs)
	}
}

type planned interface{ setPlan(p *MemoryPlan, refs int) }

// MemoryPlan shares activation buffers between the ops of one graph. An op's output is
// taken from a pool when the op runs and goes back to it once every op that reads it has
// run, so that a training step holds the forward activations that the backward pass
// still needs plus a few gradient buffers, instead of one buffer per node for the whole
// graph, and an evaluation graph holds about two layers' activations.
//
// Only outputs whose consumers are all ops of this package are pooled. Values of pooled
// nodes are not valid after a run: read only the values of nodes that no op consumes
// (the outputs: loss, logits, parameter gradients).
type MemoryPlan struct {
	mu     sync.Mutex
	free   [][]float32 // full-capacity free buffers
	live   map[uintptr]*planBuf
	nodes  int
	inUse  int64 // floats handed out and not yet released
	peak   int64
	pooled int64 // floats allocated by the pool
}

type planBuf struct {
	data  []float32
	refs  int
	owner *opHooks
}

// PlanMemory attaches a MemoryPlan to every op of g that can use it and returns it. Call
// it once the graph is complete (after G.Grad) and before the first run.
func PlanMemory(g *G.ExprGraph) *MemoryPlan {
	p := &MemoryPlan{live: map[uintptr]*planBuf{}}
	for _, n := range g.AllNodes() {
		op, ok := n.Op().(planned)
		if !ok {
			continue
		}
		refs := 0
		cons := g.To(n.ID())
		for cons.Next() {
			c, ok := cons.Node().(*G.Node)
			if !ok {
				refs = -1
				break
			}
			if _, ours := c.Op().(planned); !ours {
				refs = -1
				break
			}
			refs++
		}
		if refs < 0 || n.Dtype() != tensor.Float32 {
			refs = 0
		}
		if refs > 0 {
			p.nodes++
		}
		op.setPlan(p, refs) // refs 0: keeps its own buffer but still releases its inputs
	}
	return p
}

// Nodes reports how many nodes' outputs the plan pools.
func (p *MemoryPlan) Nodes() int { return p.nodes }

// PeakFloats reports the most floats the plan has had handed out at once.
func (p *MemoryPlan) PeakFloats() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// PoolFloats reports the floats the plan has allocated in all.
func (p *MemoryPlan) PoolFloats() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pooled
}

// acquire returns a buffer of n floats for an output read by refs ops. prev, the op's
// buffer of the previous run, is released first if a consumer never ran (so a node the
// machine skips cannot leak a buffer per run).
func (p *MemoryPlan) acquire(owner *opHooks, n, refs int, prev []float32) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(prev) > 0 {
		if b := p.live[addr(prev)]; b != nil && b.owner == owner {
			p.put(b)
		}
	}
	// Best fit: the smallest free buffer that is large enough (but not more than about
	// twice as large), so that buffers of one size serve requests of others (an
	// exact-size pool would keep one set per shape).
	best := -1
	for i, b := range p.free {
		if cap(b) >= n && cap(b) <= 2*n+4096 && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	var data []float32
	if best >= 0 {
		data = p.free[best]
		last := len(p.free) - 1
		p.free[best], p.free[last] = p.free[last], nil
		p.free = p.free[:last]
	} else {
		data = make([]float32, n)
		p.pooled += int64(n)
	}
	p.live[addr(data)] = &planBuf{data: data, refs: refs, owner: owner}
	p.inUse += int64(cap(data))
	p.peak = max(p.peak, p.inUse)
	return data[:n]
}

func (p *MemoryPlan) put(b *planBuf) {
	delete(p.live, addr(b.data))
	p.free = append(p.free, b.data[:cap(b.data)])
	p.inUse -= int64(cap(b.data))
}

// release counts one use of each pooled buffer among inputs (once per op, however many
// of its inputs share it) and returns those with no use left.
func (p *MemoryPlan) release(inputs []G.Value) {
	var seen [8]uintptr
	ns := 0
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.live) == 0 {
		return
	}
outer:
	for _, v := range inputs {
		t, ok := v.(*tensor.Dense)
		if !ok || t.Dtype() != tensor.Float32 || t.Shape().TotalSize() == 0 {
			continue
		}
		ptr := t.Uintptr()
		for _, s := range seen[:ns] {
			if s == ptr {
				continue outer
			}
		}
		if ns < len(seen) {
			seen[ns] = ptr
			ns++
		}
		if b := p.live[ptr]; b != nil {
			if b.refs--; b.refs <= 0 {
				p.put(b)
			}
		}
	}
}

func addr(s []float32) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }

// planned returns the buffer for an output of n floats: from the plan when the op's
// output is pooled, else nil (the caller keeps its own).
func (h *opHooks) planned(n int, prev []float32) []float32 {
	if h == nil || h.plan == nil || h.refs == 0 {
		return nil
	}
	return h.plan.acquire(h, n, h.refs, prev)
}
