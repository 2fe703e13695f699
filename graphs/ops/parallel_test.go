package ops

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallelFor checks that every index is visited exactly once, from concurrent
// callers, nested calls, and after the helpers have parked.
func TestParallelFor(t *testing.T) {
	check := func(n int) {
		seen := make([]atomic.Int32, n)
		parallelFor(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Errorf("n=%d: index %d visited %d times", n, i, c)
				return
			}
		}
	}
	for _, n := range []int{0, 1, 2, 3, 7, 100} {
		check(n)
	}
	time.Sleep(3 * helperSpin) // helpers park
	check(37)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				check(1 + k%13)
			}
		}()
	}
	wg.Wait()
	var total atomic.Int64
	parallelFor(9, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			parallelFor(11, func(lo, hi int) { total.Add(int64(hi - lo)) })
		}
	})
	if total.Load() != 99 {
		t.Errorf("nested: %d visits, want 99", total.Load())
	}
}

// TestParallelForPublishes: plain (non-atomic) writes made by the chunks are complete and
// visible when parallelFor returns, with two callers competing for the helpers: under
// -race this caught a group reused while a helper's last done() still touched it (the
// next caller woke early and returned before its chunks had run).
func TestParallelForPublishes(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Go(func() {
			for k := 0; k < 3000; k++ {
				n := 2 + k%9
				buf := make([]int, n)
				parallelFor(n, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						buf[i] = i + 1
					}
				})
				for i, v := range buf {
					if v != i+1 {
						t.Errorf("k=%d n=%d: buf[%d]=%d", k, n, i, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
