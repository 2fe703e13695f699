package losses

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// forChunks runs body(worker, k) for every chunk k in [0, n), spreading the chunks over
// at most GOMAXPROCS goroutines (worker is in [0, workers) and indexes per-worker
// scratch). Each chunk writes only its own slots, so the result does not depend on the
// number of workers or on scheduling. Size per-worker scratch with workersFor first.
func forChunks(n, workers int, body func(worker, k int)) {
	if workers <= 1 || n <= 1 {
		for k := range n {
			body(0, k)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				body(w, k)
			}
		}()
	}
	wg.Wait()
}

// workersFor returns how many goroutines to use for n chunks covering elems logits:
// one below a size where goroutines cost more than they save.
func workersFor(n, elems int) int {
	const serialBelow = 1 << 15
	if elems < serialBelow {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), n))
}
