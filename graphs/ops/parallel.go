package ops

import (
	"time"

	"github.com/vggo/vggo/internal/parallel"
)

// pool runs the ops' loops. The ops call it for phases of a few dozen microseconds (a
// Winograd transform of one chunk, a filter transform of a small layer), where waking
// parked threads would cost a good part of the phase, so its helpers spin for a while
// before parking: back-to-back phases then find them awake.
var pool = parallel.Pool{Spin: 50 * time.Microsecond}

// parallelFor runs body over [0, n) in at most GOMAXPROCS contiguous chunks (see
// parallel.Pool.For). body must give the same result however [0, n) is cut.
func parallelFor(n int, body func(lo, hi int)) { pool.For(n, body) }

// parallelBlocks runs body over [0, n) in blocks large enough to be worth a goroutine;
// small n runs inline.
func parallelBlocks(n int, body func(lo, hi int)) { pool.Blocks(n, 1<<15, body) }

// parallelPlanes runs body over planes [0, planes) of planeSize elements each, in
// parallel when there is enough work.
func parallelPlanes(planes, planeSize int, body func(lo, hi int)) {
	if planes*planeSize <= 1<<14 {
		if planes > 0 {
			body(0, planes)
		}
		return
	}
	parallelFor(planes, body)
}
