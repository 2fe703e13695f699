//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoints

import (
	"errors"
	"os"
)

// haveFlock says whether LockRun uses flock on this system.
const haveFlock = false

var errLocked = errors.New("locked")

func flockExclusive(f *os.File) error { return errNoFlock }
