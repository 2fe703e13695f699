//go:build !mpi

package main

import (
	"strings"
	"testing"
)

// In the default (pure Go) build, --distributed says how to get a build with MPI.
func TestDistributedWithoutMPI(t *testing.T) {
	code, out, errs := vggo(t, "train", "--distributed", "--out", t.TempDir())
	if code != 1 || !strings.Contains(out+errs, "built without MPI: rebuild with 'go build -tags mpi ./cmd/vggo'") {
		t.Errorf("exit %d, output %q", code, out+errs)
	}
}
