//go:build !unix && !windows

package proc

// alive cannot tell on this system, so it keeps the process for alive.
func alive(pid int) bool { return true }
