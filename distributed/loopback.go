package distributed

import (
	"fmt"
	"sync"
)

// Loopback returns the n ranks of a world whose members are goroutines of this process.
// Sums are taken in rank order, so results do not depend on scheduling. Tests use it to
// run several trainers side by side without MPI. Abort panics.
func Loopback(n int) []Comm {
	w := &loopWorld{n: n, arrived: make([]any, n)}
	w.cond = sync.NewCond(&w.mu)
	out := make([]Comm, n)
	for r := range out {
		out[r] = &loopComm{w: w, rank: r}
	}
	return out
}

type loopWorld struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	arrived []any // each rank's contribution to the current collective
	count   int
	gen     int   // collectives completed
	result  any   // the current collective's result, read by every rank
	err     error // and its error
	readers int   // ranks yet to read result
}

// exchange is the one collective: every rank hands in v; the last to arrive combines
// them all (in rank order) and every rank gets the combination.
func (w *loopWorld) exchange(rank int, v any, combine func([]any) (any, error)) (any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.readers > 0 { // the previous collective's result is still being read
		w.cond.Wait()
	}
	gen := w.gen
	w.arrived[rank] = v
	w.count++
	if w.count == w.n {
		w.result, w.err = combine(w.arrived)
		w.count, w.readers = 0, w.n
		w.gen++
		w.cond.Broadcast()
	} else {
		for w.gen == gen {
			w.cond.Wait()
		}
	}
	res, err := w.result, w.err
	w.readers--
	if w.readers == 0 {
		clear(w.arrived)
		w.cond.Broadcast()
	}
	return res, err
}

type loopComm struct {
	w    *loopWorld
	rank int
}

func (c *loopComm) Rank() int { return c.rank }
func (c *loopComm) Size() int { return c.w.n }

func allreduce[T float32 | float64](c *loopComm, buf []T) error {
	res, err := c.w.exchange(c.rank, buf, func(all []any) (any, error) {
		sum := make([]T, len(buf))
		for r, a := range all {
			b := a.([]T)
			if len(b) != len(sum) {
				return nil, fmt.Errorf("distributed: allreduce: rank %d sent %d elements, rank 0 %d", r, len(b), len(sum))
			}
			if r == 0 {
				copy(sum, b)
				continue
			}
			for i, v := range b {
				sum[i] += v
			}
		}
		return sum, nil
	})
	if err != nil {
		return err
	}
	copy(buf, res.([]T))
	return nil
}

func (c *loopComm) AllreduceF32(buf []float32) error { return allreduce(c, buf) }
func (c *loopComm) AllreduceF64(buf []float64) error { return allreduce(c, buf) }

func (c *loopComm) Broadcast(buf []byte, root int) error {
	if root < 0 || root >= c.w.n {
		return fmt.Errorf("distributed: broadcast: root %d outside the world of %d", root, c.w.n)
	}
	res, err := c.w.exchange(c.rank, buf, func(all []any) (any, error) {
		b := all[root].([]byte)
		for r, a := range all {
			if len(a.([]byte)) != len(b) {
				return nil, fmt.Errorf("distributed: broadcast: rank %d has %d bytes, root %d", r, len(a.([]byte)), len(b))
			}
		}
		return append([]byte(nil), b...), nil
	})
	if err != nil {
		return err
	}
	copy(buf, res.([]byte))
	return nil
}

func (c *loopComm) Barrier() error {
	_, err := c.w.exchange(c.rank, nil, func([]any) (any, error) { return nil, nil })
	return err
}

func (c *loopComm) Abort(code int) {
	panic(fmt.Sprintf("distributed: rank %d aborted with code %d", c.rank, code))
}
func (c *loopComm) Close() error { return nil }
