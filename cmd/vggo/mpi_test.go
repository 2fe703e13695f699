//go:build mpi

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/report"
)

// The MPI acceptance test (go test -tags mpi ./cmd/vggo; needs Open MPI's mpirun): a
// vggo built with -tags mpi, started as N = 2 or 3 ranks by mpirun with Open MPI's
// default binding (a rank per core, so GOMAXPROCS 1 in each when there are cores enough),
// ends with the weights, batch-norm statistics, losses and validation scores, bit for
// bit, of one process at its default GOMAXPROCS running every batch as N accumulated
// micro-batches (--accum N); a run stopped after an epoch and resumed on 2 ranks ends
// there too. The kernels' sums do not depend on the thread count, and the ranks'
// gradients are added in rank order, as --accum adds its micro-batches.

func buildMPI(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Fatalf("mpirun not found (apt-get install openmpi-bin libopenmpi-dev): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "vggo")
	cmd := exec.Command("go", "build", "-tags", "mpi", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags mpi: %v\n%s", err, out)
	}
	return bin
}

func runCmd(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mpirun(t *testing.T, np string, bin string, args ...string) (string, error) {
	t.Helper()
	base := []string{"-np", np, "--allow-run-as-root", "--oversubscribe", "-x", "VGGO_DEMO_DIR", bin}
	return runCmd(t, nil, "mpirun", append(base, args...)...)
}

func TestMPIRanksEqualAccumulation(t *testing.T) {
	bin := buildMPI(t)
	root := t.TempDir()
	if err := data.WriteDemo(root, data.DemoConfig{Train: 16, Val: 6, Size: 64}); err != nil {
		t.Fatal(err)
	}
	for _, np := range []int{2, 3} {
		t.Run(fmt.Sprintf("np=%d", np), func(t *testing.T) {
			n := strconv.Itoa(np)
			common := []string{"train", "--model", "vgg16-segnet", "--data", root, "--width", "0.125", "--crop", "64x64",
				"--batch", strconv.Itoa(2 * np), "--workers", "1", "--keep", "0", "--schedule", "constant"}
			tmp := t.TempDir()
			single, par, resumed := filepath.Join(tmp, "single"), filepath.Join(tmp, "par"), filepath.Join(tmp, "resumed")

			out, err := runCmd(t, nil, bin, append(common, "--epochs", "2", "--accum", n, "--out", single)...)
			if err != nil {
				t.Fatalf("one process: %v\n%s", err, out)
			}
			out, err = mpirun(t, n, bin, append(common, "--epochs", "2", "--distributed", "--out", par)...)
			if err != nil {
				t.Fatalf("mpirun -np %d: %v\n%s", np, err, out)
			}
			if !strings.Contains(out, "each step: "+n+" rank(s) x 1 micro-batch(es) of 2 samples") || strings.Count(out, "validation mIoU") != 1 {
				t.Errorf("mpirun output (one rank should print, with the layout of a step):\n%s", out)
			}
			dirs := []string{par}
			if np == 2 {
				// Stopped after the first epoch and resumed on 2 ranks (a constant schedule,
				// so that extending the run with --epochs changes no learning rate).
				if out, err = mpirun(t, n, bin, append(common, "--epochs", "1", "--distributed", "--out", resumed)...); err != nil {
					t.Fatalf("mpirun, first epoch: %v\n%s", err, out)
				}
				if out, err = mpirun(t, n, bin, "train", "--distributed", "--resume", resumed, "--epochs", "2"); err != nil {
					t.Fatalf("mpirun --resume: %v\n%s", err, out)
				}
				dirs = append(dirs, resumed)
			}

			want := tensorBits(t, filepath.Join(single, checkpoints.LastName))
			wantMetrics := recordsWithoutTimings(t, single)
			if len(wantMetrics) != 2 || wantMetrics[1].MIoU == nil {
				t.Fatalf("one-process metrics: %+v", wantMetrics)
			}
			for _, dir := range dirs {
				got := tensorBits(t, filepath.Join(dir, checkpoints.LastName))
				if len(got) != len(want) {
					t.Fatalf("%s: %d tensors, want %d", dir, len(got), len(want))
				}
				differ := 0
				for name, w := range want {
					if !reflect.DeepEqual(got[name], w) {
						differ++
					}
				}
				if differ > 0 {
					t.Fatalf("%s: %d of %d tensors differ from the one-process run", dir, differ, len(want))
				}
				if gm := recordsWithoutTimings(t, dir); !reflect.DeepEqual(gm, wantMetrics) {
					t.Errorf("%s: metrics.jsonl differ:\n got %+v\nwant %+v", dir, gm, wantMetrics)
				}
			}
			t.Logf("%d ranks == --accum %d bit for bit over %d tensors; validation mIoU %.4f both ways", np, np, len(want), *wantMetrics[1].MIoU)
		})
	}
}

func TestMPIErrors(t *testing.T) {
	bin := buildMPI(t)
	root := t.TempDir()
	if err := data.WriteDemo(root, data.DemoConfig{Train: 8, Val: 2, Size: 32}); err != nil {
		t.Fatal(err)
	}
	out, err := mpirun(t, "2", bin, "train", "--distributed", "--data", root, "--width", "0.125", "--crop", "32x32",
		"--batch", "3", "--out", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(out, "--batch 3 does not split into 2 equal micro-batches (2 ranks x --accum 1)") {
		t.Errorf("batch 3 on 2 ranks: %v\n%s", err, out)
	}
}

// BenchmarkMPITrain times data-parallel training on this machine: vgg16-segnet at width
// 1/4 on 128x128 crops (config C6s of vggo bench), global batch 8, as np = 1 and 2 ranks
// of mpirun sharing the machine's cores (GOMAXPROCS = cores/np), and reports the images
// per second of the second epoch (the first warms up) and rank 0's time per step in the
// gradient allreduce.
//
//	go test -tags mpi -run '^$' -bench MPITrain -benchtime 1x ./cmd/vggo
func BenchmarkMPITrain(b *testing.B) {
	bin := buildMPIBench(b)
	root := b.TempDir()
	if err := data.WriteDemo(root, data.DemoConfig{Train: 96, Val: 2, Size: 128}); err != nil {
		b.Fatal(err)
	}
	cores := runtime.NumCPU()
	for _, np := range []int{1, 2} {
		b.Run(fmt.Sprintf("np=%d", np), func(b *testing.B) {
			for range b.N {
				out := filepath.Join(b.TempDir(), "run")
				args := []string{"-np", strconv.Itoa(np), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
					"-x", fmt.Sprintf("GOMAXPROCS=%d", max(cores/np, 1)), bin,
					"train", "--distributed", "--model", "vgg16-segnet", "--width", "0.25", "--crop", "128x128",
					"--data", root, "--batch", "8", "--epochs", "2", "--eval-every", "0", "--keep", "0", "--out", out}
				cmd := exec.Command("mpirun", args...)
				if msg, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("mpirun: %v\n%s", err, msg)
				}
				rs, err := report.ReadRecords(filepath.Join(out, report.MetricsFile))
				if err != nil || len(rs) != 2 {
					b.Fatalf("metrics: %v (%d records)", err, len(rs))
				}
				b.ReportMetric(rs[1].ImagesPerS, "img/s")
				b.ReportMetric(rs[1].AllreduceMS, "allreduce-ms/step")
			}
		})
	}
}

func buildMPIBench(b *testing.B) string {
	b.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		b.Skipf("mpirun not found: %v", err)
	}
	bin := filepath.Join(b.TempDir(), "vggo")
	if out, err := exec.Command("go", "build", "-tags", "mpi", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build -tags mpi: %v\n%s", err, out)
	}
	return bin
}
