//go:build mpi

package distributed

/*
#cgo pkg-config: ompi-c
#include <stdlib.h>
#include <mpi.h>

// Open MPI's handles are macros over global objects, which cgo cannot take the address
// of; these wrappers keep them on the C side.
static int vggo_init(int *provided) {
	int inited = 0;
	MPI_Initialized(&inited);
	if (inited) { MPI_Query_thread(provided); return MPI_SUCCESS; }
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
}
static int vggo_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int vggo_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int vggo_allgather(void *send, void *recv, int nbytes) {
	return MPI_Allgather(send, nbytes, MPI_BYTE, recv, nbytes, MPI_BYTE, MPI_COMM_WORLD);
}
static int vggo_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int vggo_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int vggo_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int vggo_finalize(void) { return MPI_Finalize(); }
static int vggo_error_string(int code, char *s, int *n) { return MPI_Error_string(code, s, n); }
static int vggo_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Init joins the MPI world started by mpirun (MPI_Init_thread with
// MPI_THREAD_SERIALIZED: vggo makes MPI calls from one goroutine at a time, not always on
// the same OS thread). A process started without mpirun is a world of one rank.
func Init() (Comm, error) {
	var provided C.int
	if rc := C.vggo_init(&provided); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Init_thread", rc)
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		C.vggo_finalize()
		return nil, fmt.Errorf("distributed: this MPI library provides thread level %d, vggo needs MPI_THREAD_SERIALIZED (%d)", int(provided), int(C.MPI_THREAD_SERIALIZED))
	}
	var r, s C.int
	if rc := C.vggo_rank(&r); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_rank", rc)
	}
	if rc := C.vggo_size(&s); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Comm_size", rc)
	}
	return &mpiComm{rank: int(r), size: int(s)}, nil
}

type mpiComm struct {
	mu         sync.Mutex // MPI_THREAD_SERIALIZED: one call at a time
	rank, size int
	closed     bool
	gathered   []byte // every rank's piece of an allreduce, reused
}

func (c *mpiComm) Rank() int { return c.rank }
func (c *mpiComm) Size() int { return c.size }

// maxCount is the largest element count of one MPI call (its count is a C int); longer
// buffers go in several calls.
const maxCount = math.MaxInt32 / 8

// inChunks calls call on successive pieces of buf of at most maxCount elements.
func inChunks[T any](buf []T, name string, call func(p unsafe.Pointer, n C.int) C.int) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := call(unsafe.Pointer(&buf[0]), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError(name, rc)
		}
		buf = buf[n:]
	}
	return nil
}

// AllreduceF32 and AllreduceF64 sum in rank order, ((b0 + b1) + b2) + ..., on every
// rank: the order in which one process adds its micro-batches under --accum, whatever
// reduction algorithm MPI would pick (MPI_Allreduce's order depends on the library, the
// number of ranks and the message size, and float addition is not associative).
func (c *mpiComm) AllreduceF32(buf []float32) error { return allreduceInOrder(c, buf) }
func (c *mpiComm) AllreduceF64(buf []float64) error { return allreduceInOrder(c, buf) }

// orderedPieceBytes bounds the bytes one allreduce gathers at a time from all ranks.
const orderedPieceBytes = 64 << 20

// allreduceInOrder gathers buf from every rank (MPI_Allgather, in pieces of at most
// orderedPieceBytes in all) and adds the pieces in rank order.
func allreduceInOrder[T float32 | float64](c *mpiComm, buf []T) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size == 1 || len(buf) == 0 {
		return nil
	}
	es := int(unsafe.Sizeof(buf[0]))
	piece := max(1, min(len(buf), orderedPieceBytes/(es*c.size)))
	if need := piece * c.size * es; len(c.gathered) < need {
		c.gathered = make([]byte, need)
	}
	all := unsafe.Slice((*T)(unsafe.Pointer(&c.gathered[0])), piece*c.size)
	for off := 0; off < len(buf); off += piece {
		n := min(piece, len(buf)-off)
		b := buf[off : off+n]
		if rc := C.vggo_allgather(unsafe.Pointer(&b[0]), unsafe.Pointer(&all[0]), C.int(n*es)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Allgather", rc)
		}
		copy(b, all[:n])
		for r := 1; r < c.size; r++ {
			for i, v := range all[r*n : (r+1)*n] {
				b[i] += v
			}
		}
	}
	return nil
}

func (c *mpiComm) Broadcast(buf []byte, root int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if root < 0 || root >= c.size {
		return fmt.Errorf("distributed: broadcast: root %d outside the world of %d", root, c.size)
	}
	return inChunks(buf, "MPI_Bcast", func(p unsafe.Pointer, n C.int) C.int {
		return C.vggo_bcast(p, n, C.int(root))
	})
}

func (c *mpiComm) Barrier() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := C.vggo_barrier(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Barrier", rc)
	}
	return nil
}

func (c *mpiComm) Abort(code int) { C.vggo_abort(C.int(code)) }

func (c *mpiComm) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if rc := C.vggo_finalize(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Finalize", rc)
	}
	return nil
}

func mpiError(call string, rc C.int) error {
	buf := make([]byte, int(C.vggo_max_error_string())+1)
	var n C.int
	if C.vggo_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n) == C.MPI_SUCCESS && n > 0 {
		return fmt.Errorf("distributed: %s: %s (code %d)", call, string(buf[:n]), int(rc))
	}
	return fmt.Errorf("distributed: %s failed with code %d", call, int(rc))
}
