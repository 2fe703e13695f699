// Package distributed is vggo's data-parallel communication layer: a Comm connects the
// processes (ranks) of one training run, and the trainer uses it to broadcast the
// initial weights, average gradients with one allreduce per step, synchronise batch-norm
// statistics and merge evaluation counts.
//
// The default build is pure Go and has no MPI: Init reports ErrNoMPI, and a run is a
// world of one rank (Single). Built with -tags mpi (cgo against Open MPI, Debian's
// libopenmpi-dev), Init joins the MPI world that mpirun started. Loopback connects n
// goroutines of one process, for tests.
package distributed

import (
	"errors"
	"unsafe"
)

// Comm is one rank's view of a group of processes. Collective calls must be made by
// every rank, in the same order, with buffers of the same length; they block until all
// ranks have made them. A Comm is not safe for concurrent use.
type Comm interface {
	Rank() int
	Size() int
	// AllreduceF32 and AllreduceF64 replace buf, on every rank, with the element-wise
	// sum of every rank's buf, taken in rank order: ((b0 + b1) + b2) + ..., so that N
	// ranks add their gradients as one process adds N accumulated micro-batches.
	AllreduceF32(buf []float32) error
	AllreduceF64(buf []float64) error
	// Broadcast copies root's buf into every other rank's buf.
	Broadcast(buf []byte, root int) error
	Barrier() error
	// Abort ends every rank of the world with the exit code (MPI_Abort): the way out
	// when one rank fails and the others would wait for it forever.
	Abort(code int)
	// Close leaves the world (MPI_Finalize); no call may follow.
	Close() error
}

// ErrNoMPI is Init's error in a build without MPI.
var ErrNoMPI = errors.New("distributed: this vggo was built without MPI: rebuild with 'go build -tags mpi ./cmd/vggo' (needs Open MPI: apt-get install libopenmpi-dev openmpi-bin) and start it with mpirun")

// Single returns the world of one rank: collectives are no-ops.
func Single() Comm { return single{} }

type single struct{}

func (single) Rank() int                    { return 0 }
func (single) Size() int                    { return 1 }
func (single) AllreduceF32([]float32) error { return nil }
func (single) AllreduceF64([]float64) error { return nil }
func (single) Broadcast([]byte, int) error  { return nil }
func (single) Barrier() error               { return nil }
func (single) Abort(int)                    {}
func (single) Close() error                 { return nil }

// BroadcastF32 broadcasts a float32 slice from root (its bytes, in place).
func BroadcastF32(c Comm, buf []float32, root int) error {
	if len(buf) == 0 {
		return c.Broadcast(nil, root)
	}
	return c.Broadcast(unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 4*len(buf)), root)
}

// BroadcastBytes sends root's b to every rank and returns it there: ranks other than
// root pass nil and get a copy of root's bytes (a length broadcast, then the bytes).
func BroadcastBytes(c Comm, b []byte, root int) ([]byte, error) {
	n := []float64{0}
	if c.Rank() == root {
		n[0] = float64(len(b))
	}
	// The length travels as a float64 sum (exact below 2^53): every other rank adds 0.
	if err := c.AllreduceF64(n); err != nil {
		return nil, err
	}
	if c.Rank() != root {
		b = make([]byte, int(n[0]))
	}
	if err := c.Broadcast(b, root); err != nil {
		return nil, err
	}
	return b, nil
}
