//go:build linux

package gemm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPerf measures the BenchmarkSgemm shapes on a shared, noisy machine: besides the
// best wall-clock GFLOP/s of 7 short runs it reports GFLOP/s per CPU-second of the process
// (times the thread count), which other processes' load disturbs much less. It runs only
// when asked:
//
//	VGGO_GEMM_PERF=all go test -run Perf -v ./graphs/ops/gemm     # or a substring: avx2/conv
func TestPerf(t *testing.T) {
	re := os.Getenv("VGGO_GEMM_PERF")
	if re == "" {
		t.Skip()
	}
	prevP := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prevP)
	for _, kern := range Kernels() {
		for _, s := range benchShapes {
			for _, threads := range []int{1, 2} {
				name := fmt.Sprintf("%s/%s/t%d", kern, s.name, threads)
				if re != "all" && !strings.Contains(name, re) {
					continue
				}
				kn, err := Lookup(kern)
				if err != nil {
					t.Fatal(err)
				}
				runtime.GOMAXPROCS(threads)
				r := rand.New(rand.NewPCG(1, 1))
				ar, ac := s.m, s.k
				if s.transA {
					ar, ac = ac, ar
				}
				br, bc := s.k, s.n
				if s.transB {
					br, bc = bc, br
				}
				a := newMat(r, ar, ac, ac)
				bm := newMat(r, br, bc, bc)
				c := newMat(r, s.m, s.n, s.n)
				f := func() { kn.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a.d, a.ld, bm.d, bm.ld, s.beta, c.d, c.ld) }
				f()
				flop := 2 * float64(s.m) * float64(s.n) * float64(s.k)
				bestW, bestC := 0.0, 0.0
				for rep := 0; rep < 7; rep++ {
					n := 0
					w0, c0 := time.Now(), cpuTime()
					for time.Since(w0) < 60*time.Millisecond {
						f()
						n++
					}
					w, cp := time.Since(w0).Seconds(), (cpuTime() - c0).Seconds()
					bestW = max(bestW, flop*float64(n)/w/1e9)
					bestC = max(bestC, flop*float64(n)/(cp/float64(threads))/1e9)
				}
				fmt.Printf("%-42s wall %6.1f  cpu %6.1f GFLOP/s\n", name, bestW, bestC)
			}
		}
	}
}
