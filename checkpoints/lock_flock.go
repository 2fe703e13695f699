//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package checkpoints

import (
	"errors"
	"os"
	"syscall"
)

// haveFlock says whether LockRun uses flock on this system.
const haveFlock = true

// errLocked reports a flock that another open file holds.
var errLocked = errors.New("locked")

// flockExclusive takes a non-blocking exclusive flock on f: errLocked when another
// open file holds it, errNoFlock when the file system does not support flock.
func flockExclusive(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EAGAIN):
			return errLocked
		case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
			return errNoFlock
		}
		return err
	}
}
