package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSpin = 50 * time.Microsecond

// TestFor checks that every index is visited exactly once, from concurrent callers,
// nested calls, and after the helpers have parked, with and without spinning.
func TestFor(t *testing.T) {
	for _, spin := range []time.Duration{0, testSpin} {
		p := &Pool{Spin: spin}
		check := func(n int) {
			seen := make([]atomic.Int32, n)
			p.For(n, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Errorf("spin %v, n=%d: index %d visited %d times", spin, n, i, c)
					return
				}
			}
		}
		for _, n := range []int{0, 1, 2, 3, 7, 100} {
			check(n)
		}
		time.Sleep(3 * testSpin) // helpers park
		check(37)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for k := range 200 {
					check(1 + k%13)
				}
			})
		}
		wg.Wait()
		var total atomic.Int64
		p.For(9, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p.For(11, func(lo, hi int) { total.Add(int64(hi - lo)) })
			}
		})
		if total.Load() != 99 {
			t.Errorf("spin %v, nested: %d visits, want 99", spin, total.Load())
		}
	}
}

// TestForPublishes: plain (non-atomic) writes made by the chunks are complete and
// visible when For returns, with two callers competing for the helpers: under -race
// this caught a group reused while a helper's last done() still touched it (the next
// caller woke early and returned before its chunks had run).
func TestForPublishes(t *testing.T) {
	p := &Pool{Spin: testSpin}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for k := range 3000 {
				n := 2 + k%9
				buf := make([]int, n)
				p.For(n, func(lo, hi int) {
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

func TestBlocks(t *testing.T) {
	var p Pool
	for _, tc := range []struct{ n, block int }{{0, 4}, {3, 4}, {4, 4}, {5, 4}, {17, 4}, {1000, 7}} {
		seen := make([]atomic.Int32, tc.n)
		p.Blocks(tc.n, tc.block, func(lo, hi int) {
			if lo%tc.block != 0 || (hi%tc.block != 0 && hi != tc.n) {
				t.Errorf("n=%d block=%d: call [%d, %d) does not hold whole blocks", tc.n, tc.block, lo, hi)
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Errorf("n=%d block=%d: index %d visited %d times", tc.n, tc.block, i, c)
				break
			}
		}
	}
}

func TestPartsRange(t *testing.T) {
	for _, tc := range []struct{ n, minItems, maxParts, want int }{
		{0, 4, 8, 1}, {3, 4, 8, 1}, {8, 4, 8, 2}, {100, 4, 8, 8}, {100, 0, 3, 2}, {11, 1, 4, 4}, {3, 1, 4, 2},
	} {
		got := Parts(tc.n, tc.minItems, tc.maxParts)
		if got != tc.want {
			t.Errorf("Parts(%d, %d, %d) = %d, want %d", tc.n, tc.minItems, tc.maxParts, got, tc.want)
		}
		next := 0
		for i := range got {
			lo, hi := Range(tc.n, got, i)
			if lo != next || hi < lo {
				t.Errorf("Range(%d, %d, %d) = [%d, %d), want to start at %d", tc.n, got, i, lo, hi, next)
			}
			next = hi
		}
		if next != tc.n {
			t.Errorf("n=%d: parts cover [0, %d)", tc.n, next)
		}
	}
}

// TestForNoAllocs: once the pool is warm, a loop over helpers allocates nothing (gemm
// calls For for every large product).
func TestForNoAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a normal build")
	}
	p := &Pool{Spin: testSpin}
	var sink atomic.Int64
	body := func(lo, hi int) { sink.Add(int64(hi - lo)) }
	f := func() { p.For(4, body) }
	f()
	if n := testing.AllocsPerRun(100, f); n > 0.1 {
		t.Errorf("%.1f allocations per For", n)
	}
}
