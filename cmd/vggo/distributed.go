package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/train"
)

// runDistributed joins the MPI world and runs fn as this rank. Ranks other than 0 print
// nothing but their errors. A rank that fails ends the whole job (MPI_Abort): the other
// ranks may be waiting for it in a collective call and would otherwise hang.
func runDistributed(e *env, fn func(e *env, comm distributed.Comm) error) error {
	comm, err := distributed.Init()
	if err != nil {
		return err
	}
	re := e
	if comm.Rank() != 0 {
		re = &env{stdout: io.Discard, stderr: io.Discard, saving: e.saving}
	}
	err = fn(re, comm)
	// An interrupted run stopped on every rank at the same step (the ranks agree on it).
	if err != nil && comm.Size() > 1 && !errors.Is(err, train.ErrInterrupted) {
		fmt.Fprintf(e.stderr, "vggo: rank %d of %d: %v\n", comm.Rank(), comm.Size(), err)
		comm.Abort(1)
	}
	if cerr := comm.Close(); err == nil {
		err = cerr
	}
	return err
}

// fromRoot returns rank 0's s on every rank (a default that each rank would compute
// differently, such as a run directory named after the clock).
func fromRoot(comm distributed.Comm, s string) (string, error) {
	b, err := distributed.BroadcastBytes(comm, []byte(s), 0)
	return string(b), err
}

// ensureDemo writes the demo dataset to dir unless it is there, one rank at a time, so
// that ranks sharing a file system do not write it concurrently.
func ensureDemo(comm distributed.Comm, dir string) (written bool, err error) {
	for r := range comm.Size() {
		if r == comm.Rank() {
			written, err = data.EnsureDemo(dir, data.DemoConfig{})
		}
		if berr := comm.Barrier(); berr != nil && err == nil {
			err = berr
		}
	}
	return written, err
}
