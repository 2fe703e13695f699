package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/report"
)

// Every numeric flag is checked (finite, in range) as a usage error before anything is
// created.
func TestTrainRefusesBadNumbers(t *testing.T) {
	dir := t.TempDir()
	demo := filepath.Join(dir, "demo")
	demoData(t, demo, 4, 1, 32)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--width", "0"}, "width 0"},
		{[]string{"--width", "0.3"}, "not 1/k"},
		{[]string{"--weight-decay", "nan"}, "weight-decay NaN"},
		{[]string{"--weight-decay", "-5"}, "weight-decay -5"},
		{[]string{"--warmup", "nan"}, "warmup NaN"},
		{[]string{"--lr", "inf"}, "lr +Inf"},
		{[]string{"--lr", "0"}, "lr 0"},
		{[]string{"--momentum", "1.5"}, "momentum 1.5"},
		{[]string{"--label-smoothing", "-0.1"}, "label-smoothing -0.1"},
		{[]string{"--dropout", "1"}, "dropout 1"},
		{[]string{"--ema", "1"}, "ema 1"},
		{[]string{"--clip-grad-norm", "-1"}, "clip-grad-norm -1"},
		{[]string{"--early-stop", "-2"}, "early-stop -2"},
		{[]string{"--epochs", "-1"}, "epochs -1"},
		{[]string{"--keep", "-1"}, "keep -1"},
		{[]string{"--class-weights", "1,nan"}, "class weight 1 is NaN"},
		{[]string{"--gamma", "0.5"}, "step schedule only"},
		{[]string{"--crop", "0x64"}, "crop"},
	} {
		out := filepath.Join(dir, "run-"+strings.TrimLeft(tc.args[0], "-"))
		args := append([]string{"train", "--data", demo, "--crop", "32x32", "--out", out}, tc.args...)
		code, _, errs := vggo(t, args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and an error containing %q", tc.args, code, errs, tc.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v: the run directory was created", tc.args)
		}
	}
}

// A diverging run stops before saving non-finite state and names the real last good
// checkpoint; the checkpoint on disk is finite and loads.
func TestTrainDivergenceKeepsLastGood(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	dir := t.TempDir()
	demo, run := filepath.Join(dir, "demo"), filepath.Join(dir, "run")
	demoData(t, demo, 16, 2, 32)
	code, _, errs := vggo(t, "train", "--data", demo, "--crop", "32x32", "--batch", "2", "--width", "0.0625",
		"--lr", "1e9", "--save-every", "1", "--epochs", "3", "--out", run)
	if code != 1 || !strings.Contains(errs, "non-finite") {
		t.Fatalf("exit %d, %q: want 1 and a non-finite error", code, errs)
	}
	last := filepath.Join(run, checkpoints.LastName)
	_, statErr := os.Stat(last)
	switch {
	case strings.Contains(errs, "there is no checkpoint of this run yet"):
		if statErr == nil {
			t.Errorf("the error says there is no checkpoint, but %s exists", last)
		}
	case strings.Contains(errs, "the last good checkpoint is "+last):
		if _, err := checkpoints.Load(last); err != nil {
			t.Errorf("the named last good checkpoint does not load: %v", err)
		}
	default:
		t.Errorf("the error names no last good checkpoint: %s", errs)
	}
}

// buildVggo builds the command once per test binary, as the README says to install it
// (CGO_ENABLED=0: a static binary).
var buildVggo = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vggo-bin-*")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vggo")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// startTrain starts the vggo binary training on demo in run.
func startTrain(t *testing.T, demo, run string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	bin, err := buildVggo()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"train", "--data", demo, "--crop", "64x64", "--batch", "4", "--width", "0.125",
		"--epochs", "2", "--workers", "1", "--out", run}, extra...)
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitFor polls until cond holds (or fails the test after a minute).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func progressOf(t *testing.T, path string) (epoch, step int, pending bool) {
	t.Helper()
	f, err := checkpoints.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Epoch     int `json:"epoch"`
		EpochStep int `json:"epoch_step"`
		Pending   any `json:"pending"`
	}
	if err := json.Unmarshal([]byte(f.Metadata["vggo.progress"]), &p); err != nil {
		t.Fatal(err)
	}
	return p.Epoch, p.EpochStep, p.Pending != nil
}

// SIGHUP (a closed terminal) stops training with a checkpoint and the resume command;
// a signal during evaluation stops the evaluation with the trained epoch on disk; a
// second signal exits at once, and the epoch is still there; the resumed run evaluates
// it and writes its record once.
func TestTrainSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the vggo binary")
	}
	dir := t.TempDir()
	demo := filepath.Join(dir, "demo")
	demoData(t, demo, 32, 120, 64)
	t.Run("sighup", func(t *testing.T) {
		run := filepath.Join(dir, "hup")
		cmd, out := startTrain(t, demo, run, "--save-every", "1")
		last := filepath.Join(run, checkpoints.LastName)
		waitFor(t, "a first checkpoint", func() bool { _, err := os.Stat(last); return err == nil })
		cmd.Process.Signal(syscall.SIGHUP)
		err := cmd.Wait()
		if code := exitCode(err); code != 130 || !strings.Contains(out.String(), "resume with: vggo train --resume "+run) || strings.Contains(out.String(), "vggo train:") {
			t.Fatalf("exit %d, output:\n%s\nwant 130, the resume command and no error line", code, out)
		}
		if _, _, pending := progressOf(t, last); pending {
			t.Errorf("checkpoint after SIGHUP mid-epoch has a pending epoch end")
		}
	})
	for _, signals := range []int{1, 2} {
		t.Run(map[int]string{1: "sigint-in-eval", 2: "double-sigint-in-eval"}[signals], func(t *testing.T) {
			run := filepath.Join(dir, "int"+string(rune('0'+signals)))
			cmd, out := startTrain(t, demo, run)
			last := filepath.Join(run, checkpoints.LastName)
			// last.safetensors appears when the first epoch's training is done, just
			// before its evaluation starts.
			waitFor(t, "the pre-evaluation checkpoint", func() bool { _, err := os.Stat(last); return err == nil })
			for range signals { // back to back: the second arrives while the first is handled
				cmd.Process.Signal(syscall.SIGINT)
			}
			err := cmd.Wait()
			if signals == 1 && !strings.Contains(out.String(), "interrupted during the evaluation of epoch 1") {
				t.Fatalf("output:\n%s\nwant an interruption during evaluation", out)
			}
			if code := exitCode(err); code != 130 {
				t.Fatalf("exit %d, want 130 (as after SIGINT); output:\n%s", code, out)
			}
			if epoch, step, pending := progressOf(t, last); epoch != 1 || step != 0 || !pending {
				t.Fatalf("checkpoint at epoch %d step %d (pending %v), want epoch 1 trained, its evaluation pending", epoch, step, pending)
			}
			code, stdout, errs := vggo(t, "train", "--resume", run, "--workers", "1")
			if code != 0 {
				t.Fatalf("resume: exit %d\n%s", code, errs)
			}
			recs, err := report.ReadRecords(filepath.Join(run, report.MetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || recs[0].Epoch != 1 || recs[0].MIoU == nil || recs[1].Epoch != 2 {
				t.Errorf("metrics.jsonl after resume: %+v; want epochs 1 and 2, each evaluated once\n%s", recs, stdout)
			}
		})
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// The first signal cancels the context; the second exits, but not while a checkpoint is
// being written.
func TestHandleSignals(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancelCause(context.Background())
	var saving sync.Mutex
	exited := make(chan struct{})
	go handleSignals(sigs, cancel, &saving, func() { close(exited) })
	sigs <- syscall.SIGHUP
	<-ctx.Done()
	if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "hangup") {
		t.Errorf("cause %v, want the hangup signal", cause)
	}
	saving.Lock() // a checkpoint is being written
	sigs <- syscall.SIGINT
	select {
	case <-exited:
		t.Fatal("exited in the middle of a save")
	case <-time.After(50 * time.Millisecond):
	}
	saving.Unlock()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not exit")
	}
}

// One owner per run directory: while a run trains, a second training on the same --out
// and a resume of it are refused naming the owner; once the owner is killed, a resume
// takes the lock over and says so.
func TestTrainRunDirectoryLock(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the vggo binary")
	}
	dir := t.TempDir()
	demo, run := filepath.Join(dir, "demo"), filepath.Join(dir, "run")
	demoData(t, demo, 32, 4, 64)
	cmd, _ := startTrain(t, demo, run, "--save-every", "1", "--epochs", "50")
	defer cmd.Process.Kill()
	last := filepath.Join(run, checkpoints.LastName)
	waitFor(t, "a first checkpoint", func() bool { _, err := os.Stat(last); return err == nil })
	owner := "vggo pid " + strconv.Itoa(cmd.Process.Pid)
	for _, args := range [][]string{
		{"train", "--data", demo, "--crop", "64x64", "--width", "0.125", "--out", run},
		{"train", "--resume", run},
	} {
		code, _, errs := vggo(t, args...)
		if code != 1 || !strings.Contains(errs, "in use by "+owner) {
			t.Errorf("%v while the run trains: exit %d, %q; want 1 and the owner (%s)", args, code, errs, owner)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	code, _, errs := vggo(t, "train", "--resume", run, "--epochs", "1")
	if !strings.Contains(errs, "took over the lock of "+owner) {
		t.Errorf("resume after the owner died: exit %d, %q; want a takeover message naming %s", code, errs, owner)
	}
}

// The README's install command gives one static binary: no ELF interpreter, no shared
// libraries; and vggo version says what it runs.
func TestStaticBinaryAndVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the vggo binary")
	}
	bin, err := buildVggo()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Skipf("not an ELF system: %v", err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || len(libs) > 0 {
			t.Fatalf("%s is dynamically linked (libraries %v)", bin, libs)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "gemm kernel: ") || !strings.Contains(string(out), "cgo 0") {
		t.Errorf("vggo version: %v\n%s", err, out)
	}
}

// TestTrainDemoShortRun: the demo recipe warms up for one epoch of its twelve; a run of
// one epoch keeps that share (1/12 epoch) instead of failing on a warm-up as long as the
// run, while an explicit --warmup that long is still refused.
func TestTrainDemoShortRun(t *testing.T) {
	if testing.Short() {
		t.Skip("writes the demo dataset and trains an epoch")
	}
	dir := t.TempDir()
	t.Setenv("VGGO_DEMO_DIR", filepath.Join(dir, "demo"))
	out := filepath.Join(dir, "run")
	code, _, errs := vggo(t, "train", "--epochs", "1", "--width", "0.0625", "--crop", "32x32", "--out", out)
	if code != 0 {
		t.Fatalf("train --epochs 1: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Warmup float64 `json:"warmup_epochs"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := 1.0 / 12; math.Abs(cfg.Warmup-want) > 1e-12 {
		t.Errorf("warm-up %v epochs, want %v", cfg.Warmup, want)
	}
	code, _, errs = vggo(t, "train", "--epochs", "1", "--warmup", "1", "--out", filepath.Join(dir, "run2"))
	if code != 2 || !strings.Contains(errs, "warmup 1") {
		t.Errorf("--epochs 1 --warmup 1: exit %d, %q; want a usage error naming the warm-up", code, errs)
	}
}
