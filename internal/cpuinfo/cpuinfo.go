// Package cpuinfo names the processor and measures the clock it runs at, for benchmark
// reports: speed figures mean little without the machine they were taken on, and the
// nominal frequency of a virtual machine's CPU says nothing of its turbo clock.
package cpuinfo

import (
	"bufio"
	"os"
	"runtime"
	"strings"
	"time"
)

// Model returns the processor's model name as the operating system reports it
// (/proc/cpuinfo on Linux), or GOARCH when it cannot be read.
func Model() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	return modelFrom(bufio.NewScanner(f))
}

func modelFrom(sc *bufio.Scanner) string {
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "model name", "Model", "cpu model", "Processor":
			if v := strings.TrimSpace(val); v != "" {
				return v
			}
		}
	}
	return runtime.GOARCH
}

// GHz measures the clock of the core it runs on: a chain of dependent integer
// additions, one per cycle, timed over about d (the best of three runs after a
// warm-up, so that the core has left its idle state). It returns 0 where there is no
// such chain for the architecture.
func GHz(d time.Duration) float64 {
	if !haveChain {
		return 0
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := 1 << 16
	for { // calibrate: iterations for about d/4
		t0 := time.Now()
		addChain(n)
		if el := time.Since(t0); el > d/4 || n > 1<<40 {
			n = int(float64(n) * float64(d) / float64(el) / 4)
			break
		}
		n *= 4
	}
	best := 0.0
	for range 3 {
		t0 := time.Now()
		addChain(n)
		el := time.Since(t0).Seconds()
		best = max(best, float64(chainAdds)*float64(n)/el/1e9)
	}
	return best
}
