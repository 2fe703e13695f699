package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/report"
)

// TestSameBitsOnAnyThreadCount is issue 17's acceptance test: one epoch of each of the
// five seed architectures (width 1/8, small crops, a few samples) at GOMAXPROCS 1, 2, 3
// and 4 ends with the same checkpoint tensors, bit for bit, and the same metrics.jsonl
// apart from its timings. The kernels cut their reductions into parts fixed by the
// data's size and combine them in a fixed order, so the thread count changes only who
// computes a part, never what is added to what.
func TestSameBitsOnAnyThreadCount(t *testing.T) {
	if testing.Short() {
		t.Skip("trains five tiny models four times each")
	}
	dir := t.TempDir()
	demo := filepath.Join(dir, "demo")
	demoData(t, demo, 8, 4, 64)
	folders := folderFromDemo(t, demo, filepath.Join(dir, "folders"), 3)

	common := []string{"--epochs", "1", "--batch", "4", "--width", "0.125", "--workers", "1", "--keep", "0", "--seed", "5"}
	tests := []struct {
		model string
		args  []string
	}{
		{"vgg16", []string{"--kind", "folder", "--data", folders, "--crop", "32x32", "--lr", "0.02"}},
		{"vgg19", []string{"--kind", "folder", "--data", folders, "--crop", "32x32", "--optimizer", "adam", "--lr", "0.001"}},
		{"alexnet", []string{"--kind", "folder", "--data", folders, "--crop", "64x64"}},
		{"vgg16-segnet", []string{"--data", demo, "--crop", "64x64", "--loss", "ce+dice"}},
		{"vgg19-unet", []string{"--data", demo, "--crop", "64x64", "--optimizer", "adamw", "--lr", "0.003"}},
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			var wantT map[string][]uint32
			var wantM []report.EpochRecord
			for _, procs := range []int{1, 2, 3, 4} {
				out := filepath.Join(dir, tt.model+"-"+strconv.Itoa(procs))
				args := append([]string{"train", "--model", tt.model, "--out", out}, common...)
				args = append(args, tt.args...)
				runtime.GOMAXPROCS(procs)
				code, stdout, errs := vggo(t, args...)
				runtime.GOMAXPROCS(prev)
				if code != 0 {
					t.Fatalf("GOMAXPROCS %d: vggo %v: exit %d\n%s\n%s", procs, args, code, stdout, errs)
				}
				gotT := tensorBits(t, filepath.Join(out, checkpoints.LastName))
				gotM := recordsWithoutTimings(t, out)
				if procs == 1 {
					wantT, wantM = gotT, gotM
					if len(wantT) == 0 || len(wantM) != 1 {
						t.Fatalf("GOMAXPROCS 1: %d tensors, %d epoch records", len(wantT), len(wantM))
					}
					continue
				}
				if len(gotT) != len(wantT) {
					t.Fatalf("GOMAXPROCS %d: %d tensors, want %d", procs, len(gotT), len(wantT))
				}
				differ := 0
				for name, w := range wantT {
					if g := gotT[name]; !reflect.DeepEqual(g, w) {
						if differ < 5 {
							t.Errorf("GOMAXPROCS %d: tensor %s differs from GOMAXPROCS 1's (%d of %d values)", procs, name, countDiff(g, w), len(w))
						}
						differ++
					}
				}
				if differ > 0 {
					t.Errorf("GOMAXPROCS %d: %d of %d tensors differ", procs, differ, len(wantT))
				}
				if !reflect.DeepEqual(gotM, wantM) {
					t.Errorf("GOMAXPROCS %d: metrics.jsonl differs:\n got %+v\nwant %+v", procs, gotM, wantM)
				}
			}
		})
	}
}

// folderFromDemo builds an image-folder dataset (train/ and val/, classes class0..)
// from the demo's JPEGs, image i going to class i mod classes.
func folderFromDemo(t *testing.T, demo, root string, classes int) string {
	t.Helper()
	imgs, err := filepath.Glob(filepath.Join(demo, "JPEGImages", "*.jpg"))
	if err != nil || len(imgs) < 2*classes {
		t.Fatalf("demo images: %v (%d)", err, len(imgs))
	}
	for i, src := range imgs {
		split := "train"
		if i%4 == 3 {
			split = "val"
		}
		d := filepath.Join(root, split, fmt.Sprintf("class%d", i%classes))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// tensorBits returns a checkpoint's tensors as raw float32 bits (so that NaNs and
// signed zeros compare exactly).
func tensorBits(t *testing.T, path string) map[string][]uint32 {
	t.Helper()
	f, err := checkpoints.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]uint32{}
	for _, tn := range f.Tensors {
		b := make([]uint32, len(tn.Data))
		for i, v := range tn.Data {
			b[i] = math.Float32bits(v)
		}
		out[tn.Name] = b
	}
	return out
}

func recordsWithoutTimings(t *testing.T, dir string) []report.EpochRecord {
	t.Helper()
	rs, err := report.ReadRecords(filepath.Join(dir, report.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		rs[i] = r.WithoutTimings()
	}
	return rs
}

func countDiff(a, b []uint32) int {
	if len(a) != len(b) {
		return max(len(a), len(b))
	}
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}
