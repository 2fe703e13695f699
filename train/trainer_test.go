package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/report"
)

// demoRoot writes a tiny demo VOC tree once per test binary.
var demoDir string

func demoRoot(t *testing.T) string {
	t.Helper()
	if demoDir == "" {
		dir, err := os.MkdirTemp("", "vggo-demo-*")
		if err != nil {
			t.Fatal(err)
		}
		if err := data.WriteDemo(dir, data.DemoConfig{Train: 12, Val: 4, Size: 64}); err != nil {
			t.Fatal(err)
		}
		demoDir = dir
	}
	return demoDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if demoDir != "" {
		os.RemoveAll(demoDir)
	}
	os.Exit(code)
}

func tinyConfig(t *testing.T, out string) Config {
	opt := DefaultOptimizerConfig("sgd")
	opt.Momentum, opt.WeightDecay = 0.9, 1e-4
	return Config{
		Model:     graphs.Config{Arch: "vgg19-unet", Mult: 0.125},
		Data:      DataConfig{Root: demoRoot(t), Kind: "voc", TrainSplit: "train", ValSplit: "val", Augment: "full", Workers: 2},
		Epochs:    4,
		Batch:     4,
		CropH:     64,
		CropW:     64,
		Optimizer: opt,
		Schedule:  Schedule{Kind: "poly", BaseLR: 0.01},
		Seed:      7,
		Out:       out,
		Keep:      2,
		EvalEvery: 1,
	}
}

func weightsOf(m *graphs.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range m.Params {
		out[p.Name] = append([]float32(nil), p.Data...)
	}
	return out
}

// records reads metrics.jsonl without the wall-clock fields.
func records(t *testing.T, dir string) []report.EpochRecord {
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

// interruptAt is a hook that calls stop after step (1-based) of epoch (0-based).
func interruptAt(epoch, step int, stop func()) Hook {
	return Hook{Name: "test-interrupt", At: AfterStep, Priority: 50, Run: func(t *Trainer, _ *Event) error {
		if t.state.Epoch == epoch && t.state.EpochStep == step {
			stop()
		}
		return nil
	}}
}

func runFresh(t *testing.T, cfg Config, opt Options) (*Trainer, error) {
	t.Helper()
	tr, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Run(context.Background())
	return tr, err
}

func sameWeights(t *testing.T, a, b map[string][]float32) {
	t.Helper()
	for name, wa := range a {
		wb := b[name]
		for i := range wa {
			if wa[i] != wb[i] {
				t.Fatalf("%s[%d]: %g vs %g: weights differ", name, i, wa[i], wb[i])
			}
		}
	}
}

// Exact resume: a run interrupted mid-epoch (as by SIGINT) and resumed ends with the same
// weights, bit for bit, and the same metrics.jsonl as a run that was never stopped.
func TestResumeMidEpochIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny runs")
	}
	straight := tinyConfig(t, t.TempDir())
	tr, err := runFresh(t, straight, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := weightsOf(tr.Model())

	cfg := tinyConfig(t, t.TempDir())
	ctx, cancel := context.WithCancelCause(context.Background())
	tr2, err := New(cfg, Options{Hooks: []Hook{interruptAt(1, 2, func() { cancel(errors.New("interrupt signal received")) })}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr2.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupt signal received") {
		t.Fatalf("interrupted run returned %v", err)
	}
	f, err := checkpoints.Load(filepath.Join(cfg.Out, checkpoints.LastName))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := readProgress(f.Metadata); err != nil || p.Epoch != 1 || p.EpochStep != 2 {
		t.Fatalf("checkpoint at epoch %d step %d (%v), want 1 and 2", p.Epoch, p.EpochStep, err)
	}
	var log strings.Builder
	tr3, err := Resume(cfg.Out, Overrides{Workers: 1}, Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr3.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameWeights(t, want, weightsOf(tr3.Model()))
	if a, b := records(t, straight.Out), records(t, cfg.Out); !reflect.DeepEqual(a, b) {
		t.Errorf("metrics.jsonl differ:\nstraight %+v\nresumed  %+v", a, b)
	}
}

// Train 2 epochs, then --resume to 4: the same as 4 straight (constant schedule, so the
// total does not change the learning rate).
func TestResumeMoreEpochs(t *testing.T) {
	if testing.Short() {
		t.Skip("trains tiny runs")
	}
	straight := tinyConfig(t, t.TempDir())
	straight.Schedule = Schedule{Kind: "constant", BaseLR: 0.01}
	tr, err := runFresh(t, straight, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := straight
	cfg.Out, cfg.Epochs = t.TempDir(), 2
	if _, err := runFresh(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(cfg.Out, Overrides{}, Options{}); err == nil || !strings.Contains(err.Error(), "has finished") {
		t.Errorf("resuming a finished run without --epochs: %v", err)
	}
	tr2, err := Resume(cfg.Out, Overrides{Epochs: 4}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Epochs != 4 {
		t.Errorf("resumed run ended at epoch %d, want 4", res.Epochs)
	}
	sameWeights(t, weightsOf(tr.Model()), weightsOf(tr2.Model()))
	if a, b := records(t, straight.Out), records(t, cfg.Out); !reflect.DeepEqual(a, b) {
		t.Errorf("metrics.jsonl differ:\nstraight %+v\nresumed  %+v", a, b)
	}
	for _, f := range []string{checkpoints.LastName, checkpoints.BestName, report.BestFile, ConfigFile, report.LossChart} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	if list, err := checkpoints.NewManager(cfg.Out, 2); err != nil {
		t.Fatal(err)
	} else if n, _ := list.List(); len(n) != 2 {
		t.Errorf("kept %d numbered checkpoints, want 2", len(n))
	}
}

func TestNonFiniteLossKeepsLastCheckpoint(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir())
	cfg.Epochs = 3
	cfg.Schedule = Schedule{Kind: "constant", BaseLR: 0.01}
	if _, err := runFresh(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(cfg.Out, checkpoints.LastName)
	before, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Resume(cfg.Out, Overrides{Epochs: 5}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tr.Model().Trainable() {
		for i := range p.Data {
			p.Data[i] = 1e30 // the next forward pass overflows
		}
	}
	_, err = tr.Run(context.Background())
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "last good checkpoint") {
		t.Fatalf("got %v, want a non-finite loss error", err)
	}
	after, _ := os.ReadFile(last)
	if string(before) != string(after) {
		t.Error("last.safetensors changed after the non-finite loss")
	}
}

func TestNewRefusesExistingRun(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir())
	cfg.Epochs = 1
	if _, err := runFresh(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run in the same directory: %v", err)
	}
}

func TestResumeErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Resume(dir, Overrides{}, Options{}); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("empty dir: %v", err)
	}
	cfg := tinyConfig(t, t.TempDir())
	cfg.Epochs = 1
	if _, err := runFresh(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(cfg.Out, checkpoints.LastName)
	b, _ := os.ReadFile(last)
	if err := os.WriteFile(last, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(cfg.Out, Overrides{Epochs: 2}, Options{}); !errors.Is(err, checkpoints.ErrTruncated) {
		t.Errorf("truncated checkpoint: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := tinyConfig(t, t.TempDir())
	tests := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Epochs = 0 }, "epochs 0"},
		{func(c *Config) { c.Batch = 0 }, "batch 0"},
		{func(c *Config) { c.Out = "" }, "--out"},
		{func(c *Config) { c.Data.Kind = "coco" }, "valid: voc, folder"},
		{func(c *Config) { c.Data.Augment = "heavy" }, "heavy"},
		{func(c *Config) { c.Optimizer.Kind = "lbfgs" }, "lbfgs"},
	}
	for _, tt := range tests {
		c := base
		tt.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want an error containing %q", err, tt.want)
		}
	}
}
