//go:build windows

package proc

import "syscall"

// stillActive is STILL_ACTIVE, the exit code of a process that has not exited.
const stillActive = 259

// alive opens the process and asks for its exit code.
func alive(pid int) bool {
	const processQueryLimitedInformation = 0x1000
	h, err := syscall.OpenProcess(processQueryLimitedInformation, false, uint32(pid))
	if err != nil {
		// ERROR_ACCESS_DENIED: the process exists but is not ours to query.
		return err == syscall.ERROR_ACCESS_DENIED
	}
	defer syscall.CloseHandle(h)
	var code uint32
	if err := syscall.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == stillActive
}
