// Package proc answers the two questions that owner-aware files need: which host this
// is, and whether a process of this host is still running.
package proc

import (
	"fmt"
	"hash/fnv"
	"os"
)

// Hostname returns os.Hostname, or "unknown-host" when the system does not say.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown-host"
	}
	return h
}

// HostTag is a short, file-name-safe tag of host: 8 lowercase hex digits (FNV-1a).
func HostTag(host string) string {
	h := fnv.New32a()
	h.Write([]byte(host))
	return fmt.Sprintf("%08x", h.Sum32())
}

// Alive reports whether process pid is running on this host. A pid that is not
// positive is never alive. Where liveness cannot be determined (neither unix nor
// windows) Alive answers true, so that callers keep what they cannot prove stale.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return alive(pid)
}
