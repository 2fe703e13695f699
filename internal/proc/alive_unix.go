//go:build unix

package proc

import (
	"errors"
	"syscall"
)

// alive sends signal 0, which checks existence and permission without signalling:
// EPERM means the process exists but belongs to another user.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
