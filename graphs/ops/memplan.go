package ops

import (
	"slices"
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
//
// The machine runs the nodes in one fixed order, so every pooled output's lifetime (from
// its op's run to its last consumer's) is known before the first run: PlanMemory
// simulates the run and places the outputs at offsets of one arena, the larger first,
// each at the lowest offset free of the outputs whose lifetimes overlap its own (greedy
// by size, as TensorFlow Lite's and ONNX Runtime's planners do). The arena then holds
// little more than the most floats live at once, where separate buffers matched by size
// left a third of the pool idle on U-Net. Every acquisition checks its slot against
// the buffers live at that moment; one that would overlap (a run in another order than
// the simulated one) gets a buffer of its own instead, counted by Fallbacks.
type MemoryPlan struct {
	mu     sync.Mutex
	free   [][]float32 // full-capacity free buffers (fallback allocations)
	live   map[uintptr]*planBuf
	nodes  int
	inUse  int64 // floats handed out and not yet released
	peak   int64
	pooled int64 // floats allocated by the pool

	slots     map[*opHooks]planSlot // each pooled output's place in the arena
	arena     []float32             // allocated at the first acquisition
	arenaSize int
	fallbacks int
}

type planBuf struct {
	data  []float32
	refs  int
	owner *opHooks
	off   int // offset in the arena; -1: a buffer of its own
}

// planSlot is an output's place in the arena: floats [off, off+n).
type planSlot struct{ off, n int }

// hooked is implemented by every op of this package (through the embedded opHooks).
type hooked interface{ hooks() *opHooks }

func (h *opHooks) hooks() *opHooks { return h }

// PlanMemory attaches a MemoryPlan to every op of g that can use it and returns it. Call
// it once the graph is complete (after G.Grad) and before the first run.
func PlanMemory(g *G.ExprGraph) *MemoryPlan {
	p := &MemoryPlan{live: map[uintptr]*planBuf{}}
	refsOf := map[*G.Node]int{}
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
			refsOf[n] = refs
		}
		op.setPlan(p, refs) // refs 0: keeps its own buffer but still releases its inputs
	}
	p.nodes = len(refsOf)
	p.slots, p.arenaSize = planArena(g, refsOf)
	return p
}

// planArena simulates a run of g in the machine's order (Gorgonia's stabilised
// topological sort, reversed) and places the pooled outputs (refs: consumers of each)
// in one arena. An output lives from its node's run to the run of its last consumer,
// which releases it after taking its own output. Outputs whose op is shared by several
// nodes are left out (a slot is found by the op).
func planArena(g *G.ExprGraph, refs map[*G.Node]int) (map[*opHooks]planSlot, int) {
	order, err := G.Sort(g)
	if err != nil || len(refs) == 0 {
		return nil, 0
	}
	slices.Reverse(order)
	type life struct {
		h          *opHooks
		n          int
		start, end int
	}
	lives := map[*G.Node]*life{}
	owners := map[*opHooks]int{}
	left := map[*G.Node]int{}
	for i, n := range order {
		if r := refs[n]; r > 0 {
			if h, ok := n.Op().(hooked); ok {
				lives[n] = &life{h: h.hooks(), n: n.Shape().TotalSize(), start: i, end: len(order)}
				owners[h.hooks()]++
				left[n] = r
			}
		}
		kids := g.From(n.ID())
		for kids.Next() {
			c, ok := kids.Node().(*G.Node)
			if !ok {
				continue
			}
			if l := lives[c]; l != nil && left[c] > 0 {
				if left[c]--; left[c] == 0 {
					l.end = i
				}
			}
		}
	}
	ls := make([]*life, 0, len(lives))
	for _, l := range lives {
		if owners[l.h] == 1 && l.n > 0 {
			ls = append(ls, l)
		}
	}
	// Largest first; ties in the order of the run, so the plan depends on the graph alone.
	slices.SortFunc(ls, func(a, b *life) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return a.start - b.start
	})
	type placed struct{ off, n, start, end int }
	var done []placed
	slots := make(map[*opHooks]planSlot, len(ls))
	size := 0
	var clash []placed
	for _, l := range ls {
		clash = clash[:0]
		for _, d := range done {
			if d.start <= l.end && l.start <= d.end {
				clash = append(clash, d)
			}
		}
		slices.SortFunc(clash, func(a, b placed) int { return a.off - b.off })
		off := 0
		for _, d := range clash {
			if d.off-off >= l.n {
				break
			}
			off = max(off, d.off+d.n)
		}
		done = append(done, placed{off: off, n: l.n, start: l.start, end: l.end})
		slots[l.h] = planSlot{off: off, n: l.n}
		size = max(size, off+l.n)
	}
	return slots, size
}

// Reset declares every pooled output dead, as at the start of a run: buffers that a run
// which stopped part-way (an error in an op) left live would otherwise keep their places
// in the arena taken for part of the next run. The values of pooled nodes are not valid
// between runs anyway.
func (p *MemoryPlan) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.live {
		p.put(b)
	}
}

// Fallbacks reports how many acquisitions could not use their place in the arena (a
// buffer they would have shared was still live) and got a buffer of their own.
func (p *MemoryPlan) Fallbacks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fallbacks
}

// ArenaFloats reports the size of the arena the plan places pooled outputs in.
func (p *MemoryPlan) ArenaFloats() int { return p.arenaSize }

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
	if data := p.fromArena(owner, n, refs); data != nil {
		return data
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
	p.live[addr(data)] = &planBuf{data: data, refs: refs, owner: owner, off: -1}
	p.inUse += int64(cap(data))
	p.peak = max(p.peak, p.inUse)
	return data[:n]
}

// fromArena returns owner's place in the arena, or nil when it has none or a live buffer
// overlaps it (p.mu held).
func (p *MemoryPlan) fromArena(owner *opHooks, n, refs int) []float32 {
	s, ok := p.slots[owner]
	if !ok || n > s.n {
		return nil
	}
	for _, b := range p.live {
		if b.off >= 0 && b.off < s.off+n && s.off < b.off+len(b.data) {
			p.fallbacks++
			return nil
		}
	}
	if p.arena == nil {
		p.arena = make([]float32, p.arenaSize)
		p.pooled += int64(p.arenaSize)
	}
	data := p.arena[s.off : s.off+n : s.off+n]
	p.live[addr(data)] = &planBuf{data: data, refs: refs, owner: owner, off: s.off}
	p.inUse += int64(n)
	p.peak = max(p.peak, p.inUse)
	return data
}

func (p *MemoryPlan) put(b *planBuf) {
	delete(p.live, addr(b.data))
	p.inUse -= int64(cap(b.data))
	if b.off < 0 {
		p.free = append(p.free, b.data[:cap(b.data)])
	}
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
