package ops

import "sync"

// Workspace is scratch memory shared by the ops of a graph: buffers an op needs only
// while it runs (transformed filters, im2col tiles, layout copies) come from it and go
// back when the op is done. Since a Gorgonia tape machine runs one op at a time, the
// scratch a whole graph holds is that of its hungriest op rather than the sum over its
// layers. A Workspace is safe for concurrent use (ops of graphs run concurrently just
// make it grow). The zero value is ready to use.
type Workspace struct {
	mu        sync.Mutex
	free      [][]float32
	held      int64 // floats in free buffers
	allocated int64 // floats ever allocated
}

// NewWorkspace returns an empty Workspace.
func NewWorkspace() *Workspace { return new(Workspace) }

// wsClass rounds n up to m·2^k with 8 ≤ m < 16, so that requests of similar sizes share
// buffers (at most 12.5% waste).
func wsClass(n int) int {
	if n <= 16 {
		return 16
	}
	k := 0
	for (n-1)>>k >= 16 {
		k++
	}
	return (((n - 1) >> k) + 1) << k
}

// get returns a buffer of n floats (not zeroed): the smallest free one that is large
// enough, or a new one.
func (ws *Workspace) get(n int) []float32 {
	if n <= 0 {
		return nil
	}
	ws.mu.Lock()
	best := -1
	for i, b := range ws.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(ws.free[best])) {
			best = i
		}
	}
	if best < 0 {
		c := wsClass(n)
		ws.allocated += int64(c)
		ws.mu.Unlock()
		return make([]float32, n, c)
	}
	b := ws.free[best]
	last := len(ws.free) - 1
	ws.free[best] = ws.free[last]
	ws.free[last] = nil
	ws.free = ws.free[:last]
	ws.held -= int64(cap(b))
	ws.mu.Unlock()
	return b[:n]
}

// put returns b (from get) to the pool.
func (ws *Workspace) put(b []float32) {
	if cap(b) == 0 {
		return
	}
	ws.mu.Lock()
	ws.free = append(ws.free, b[:cap(b)])
	ws.held += int64(cap(b))
	ws.mu.Unlock()
}

// Floats returns how many floats the workspace has allocated in all.
func (ws *Workspace) Floats() int64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.allocated
}
