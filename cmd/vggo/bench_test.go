package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func runBenchCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut strings.Builder
	err := benchCmd().run(context.Background(), &env{stdout: &out, stderr: &errOut}, args)
	return out.String(), err
}

func TestBenchCommandTable(t *testing.T) {
	out, err := runBenchCmd(t, "--model", "vgg19-unet", "--width", "0.0625", "--input", "32x32", "--batch", "1", "--steps", "1", "--warmup", "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vgg19-unet 32x32 width 1/16", "train", "infer", "images/s", "conv", "framework", "peak RSS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchCommandJSON(t *testing.T) {
	out, err := runBenchCmd(t, "--config", "C6s", "--width", "0.0625", "--input", "32x32", "--steps", "1", "--warmup", "0", "--infer-only", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"train_images_per_s", "infer_images_per_s", "gflops", "peak_rss_mib", "infer_split_ms"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if got["arch"] != "vgg16-segnet" || got["infer_images_per_s"].(float64) <= 0 {
		t.Errorf("got arch %v, infer rate %v: want vgg16-segnet from the preset and a positive rate", got["arch"], got["infer_images_per_s"])
	}
	// The machine the figures were taken on: its processor and measured clock.
	if cpu, _ := got["cpu"].(string); cpu == "" {
		t.Errorf("cpu %v: want the processor's name", got["cpu"])
	}
	if ghz, ok := got["cpu_ghz"].(float64); !ok || ghz < 0 || (runtime.GOARCH == "amd64" && ghz == 0) {
		t.Errorf("cpu_ghz %v: want the measured clock", got["cpu_ghz"])
	}
}

// TestBenchProfiles: --cpuprofile and --memprofile write pprof profiles
// (gzip-compressed protobuf) of the run, and a path that cannot be created is an error
// naming the flag.
func TestBenchProfiles(t *testing.T) {
	for _, flag := range []string{"--cpuprofile", "--memprofile"} {
		t.Run(flag, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.prof")
			if _, err := runBenchCmd(t, "--config", "C6u", "--width", "0.0625", "--input", "32x32", "--steps", "2", "--warmup", "0", flag, path, "--json"); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
				t.Fatalf("%s: %d bytes, not a gzip-compressed profile", path, len(b))
			}
			_, err = runBenchCmd(t, flag, filepath.Join(t.TempDir(), "no", "such", "dir", "p"), "--steps", "1")
			if err == nil || !strings.Contains(err.Error(), flag) {
				t.Fatalf("unwritable profile path: got %v, want an error naming %s", err, flag)
			}
		})
	}
}

func TestBenchCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--config", "C9"},
		{"--steps", "0"},
		{"--input", "big"},
		{"--train-only", "--infer-only"},
		{"extra"},
	} {
		_, err := runBenchCmd(t, args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}
