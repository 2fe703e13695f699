package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/report"
)

func TestEMAUpdateAndSwap(t *testing.T) {
	m, err := graphs.New(graphs.Config{Arch: "vgg11", Mult: 1.0 / 64, InputH: 32, Classes: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := m.Params[0].Data
	p[0] = 1
	e := NewEMA(m, 0.75)
	p[0] = 5
	e.Update() // 0.75·1 + 0.25·5 = 2
	p[0] = 2
	e.Update() // 0.75·2 + 0.25·2 = 2
	p[0] = 10
	e.Update() // 0.75·2 + 0.25·10 = 4
	if got := e.avg[0][0]; got != 4 {
		t.Fatalf("average %v, want 4", got)
	}
	var inside float32
	if err := e.With(func() error { inside = p[0]; return nil }); err != nil {
		t.Fatal(err)
	}
	if inside != 4 || p[0] != 10 || e.avg[0][0] != 4 {
		t.Errorf("With: model held %v inside, %v after, average %v; want 4, 10, 4", inside, p[0], e.avg[0][0])
	}
}

func TestClipGradNorm(t *testing.T) {
	tests := []struct {
		grads    [][]float32
		max      float64
		wantNorm float64
		want     [][]float32
	}{
		{[][]float32{{3}, {4}}, 10, 5, [][]float32{{3}, {4}}},                                            // under the limit: unchanged
		{[][]float32{{3}, {4}}, 1, 5, [][]float32{{float32(3 / (5 + 1e-6))}, {float32(4 / (5 + 1e-6))}}}, // torch's max/(norm+1e-6)
		{[][]float32{{1, 2, 2}, {}}, 1.5, 3, [][]float32{{float32(1.5 / (3 + 1e-6)), float32(3 / (3 + 1e-6)), float32(3 / (3 + 1e-6))}, {}}},
	}
	for i, tt := range tests {
		var ps []Param
		for _, g := range tt.grads {
			ps = append(ps, Param{Grad: append([]float32(nil), g...)})
		}
		norm := ClipGradNorm(ps, tt.max)
		if math.Abs(norm-tt.wantNorm) > 1e-12 {
			t.Errorf("%d: norm %v, want %v", i, norm, tt.wantNorm)
		}
		for j, p := range ps {
			for k, g := range p.Grad {
				if math.Abs(float64(g-tt.want[j][k])) > 1e-6 {
					t.Errorf("%d: grad[%d][%d] = %v, want %v", i, j, k, g, tt.want[j][k])
				}
			}
		}
	}
}

// An interrupted and resumed run with --ema ends bit-identical to a straight one: the
// weights, the EMA weights and best.safetensors (the EMA weights) and metrics.jsonl.
func TestEMAResumeIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny runs")
	}
	withEMA := func() Config {
		c := tinyConfig(t, t.TempDir())
		c.Epochs, c.EMA = 3, 0.9
		return c
	}
	straight := withEMA()
	if _, err := runFresh(t, straight, Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := withEMA()
	ctx, cancel := context.WithCancelCause(context.Background())
	tr, err := New(cfg, Options{Hooks: []Hook{interruptAt(1, 1, func() { cancel(errors.New("test interrupt")) })}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	tr, err = Resume(cfg.Out, Overrides{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{checkpoints.LastName, checkpoints.BestName} {
		a, b := loadTensors(t, filepath.Join(straight.Out, name)), loadTensors(t, filepath.Join(cfg.Out, name))
		if len(a) != len(b) {
			t.Fatalf("%s: %d tensors straight, %d resumed", name, len(a), len(b))
		}
		sameWeights(t, a, b)
	}
	last := loadTensors(t, filepath.Join(cfg.Out, checkpoints.LastName))
	if _, ok := last[EMAPrefix+"b1.0.weight"]; !ok {
		t.Errorf("last.safetensors has no EMA weights")
	}
	if _, ok := loadTensors(t, filepath.Join(cfg.Out, checkpoints.BestName))[EMAPrefix+"b1.0.weight"]; ok {
		t.Errorf("best.safetensors holds EMA tensors besides its (EMA) weights")
	}
	if a, b := records(t, straight.Out), records(t, cfg.Out); !reflect.DeepEqual(a, b) {
		t.Errorf("metrics.jsonl differ:\nstraight %+v\nresumed  %+v", a, b)
	}
}

// EMA with decay 0 is the model itself: the same run as without EMA.
func TestEMADecayZeroIsTheModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny runs")
	}
	plain := tinyConfig(t, t.TempDir())
	plain.Epochs = 2
	a, err := runFresh(t, plain, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ema := plain
	ema.Out, ema.EMA = t.TempDir(), math.SmallestNonzeroFloat64
	b, err := runFresh(t, ema, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, weightsOf(a.Model()), weightsOf(b.Model()))
	if ra, rb := records(t, plain.Out), records(t, ema.Out); !reflect.DeepEqual(ra, rb) {
		t.Errorf("metrics.jsonl differ:\nplain %+v\nema   %+v", ra, rb)
	}
}

// Clipping at a huge norm changes nothing but logs the norm; at a tiny one it changes
// the weights.
func TestClipGradNormRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny runs")
	}
	base := tinyConfig(t, t.TempDir())
	base.Epochs = 1
	plain, err := runFresh(t, base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	loose := base
	loose.Out, loose.ClipGradNorm = t.TempDir(), 1e30
	l, err := runFresh(t, loose, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, weightsOf(plain.Model()), weightsOf(l.Model()))
	recs := records(t, loose.Out)
	if len(recs) != 1 || recs[0].GradNorm == nil || *recs[0].GradNorm <= 0 {
		t.Fatalf("metrics.jsonl %+v: want one record with a positive grad_norm", recs)
	}
	if v := recs[0].ValLoss; v == nil || *v <= 0 || *v > 10 {
		t.Errorf("val_loss %v: want the validation cross-entropy (positive, about ln 21 = 3 at the start)", v)
	}
	if r := records(t, base.Out); r[0].GradNorm != nil {
		t.Errorf("grad_norm logged without clipping: %v", *r[0].GradNorm)
	}
	tight := base
	tight.Out, tight.ClipGradNorm = t.TempDir(), 1e-3
	ti, err := runFresh(t, tight, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(weightsOf(plain.Model()), weightsOf(ti.Model())) {
		t.Error("clipping to norm 1e-3 left the weights as without clipping")
	}
}

// With a learning rate too small to change the predictions, the score stops improving
// after the first evaluation, and --early-stop 1 ends the run after the second epoch.
func TestEarlyStop(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny classifier")
	}
	root := writeFolderData(t, 3, 4, 64)
	cfg := Config{
		Model:  graphs.Config{Arch: "alexnet", Mult: 0.0625},
		Data:   DataConfig{Root: root, Kind: "folder", TrainSplit: "train", ValSplit: "val", Augment: "none", Workers: 1},
		Epochs: 6, Batch: 4, CropH: 64, CropW: 64,
		Optimizer: DefaultOptimizerConfig("sgd"), Schedule: Schedule{Kind: "constant", BaseLR: 1e-12},
		Seed: 3, Out: t.TempDir(), EvalEvery: 1, EarlyStop: 1,
	}
	tr, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Epochs != 2 || !strings.Contains(res.Stopped, "early stop") || res.Best.Epoch != 1 {
		t.Fatalf("ran %d epochs, stopped %q, best at epoch %d: want 2, an early stop, 1", res.Epochs, res.Stopped, res.Best.Epoch)
	}
	if n := len(records(t, cfg.Out)); n != 2 {
		t.Errorf("%d records, want 2", n)
	}
	if _, err := Resume(cfg.Out, Overrides{}, Options{}); err == nil || !strings.Contains(err.Error(), "early stop") {
		t.Errorf("resuming an early-stopped run: %v, want a refusal naming the early stop", err)
	}
	tr, err = Resume(cfg.Out, Overrides{Epochs: 6}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err = tr.Run(context.Background()); err != nil || res.Epochs != 3 {
		t.Errorf("resumed with --epochs: %d epochs, %v; want a third epoch, then a stop again", res.Epochs, err)
	}
}

func loadTensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := checkpoints.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, tn := range f.Tensors {
		out[tn.Name] = tn.Data
	}
	return out
}

// Non-finite weights or buffers are never saved: the error names the tensors and the
// last good checkpoint, and the file on disk keeps its previous state.
func TestSaveRefusesNonFinite(t *testing.T) {
	cfg := segnetConfig(t)
	tr, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.saveLast(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Out, checkpoints.LastName)
	before := loadTensors(t, path)
	tr.state.GlobalStep = 5 // a later state than the saved one
	p := tr.model.Param("encoder.1.running_var")
	p.Data[0], p.Data[3] = float32(math.NaN()), float32(math.Inf(1))
	err = tr.saveLast()
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "encoder.1.running_var has 2 non-finite values") ||
		!strings.Contains(err.Error(), "the last good checkpoint is "+path) {
		t.Fatalf("saving NaN state: %v", err)
	}
	sameWeights(t, before, loadTensors(t, path))
}

// A kill between an epoch's metrics.jsonl record and its checkpoint leaves a record the
// checkpoint does not know: the resumed run drops it and writes the epoch's record once.
func TestResumeDropsRecordsPastTheCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny run")
	}
	cfg := tinyConfig(t, t.TempDir())
	cfg.Epochs = 1
	if _, err := runFresh(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	metrics := filepath.Join(cfg.Out, report.MetricsFile)
	if err := report.AppendRecord(metrics, report.EpochRecord{Epoch: 2, Step: 99, LR: 1, TrainLoss: 1}); err != nil {
		t.Fatal(err)
	}
	tr, err := Resume(cfg.Out, Overrides{Epochs: 2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := records(t, cfg.Out)
	if len(recs) != 2 || recs[0].Epoch != 1 || recs[1].Epoch != 2 || recs[1].Step == 99 {
		t.Errorf("records %+v: want epochs 1 and 2, the stale epoch 2 gone", recs)
	}
}

func TestEmptyClassWarns(t *testing.T) {
	root := writeFolderData(t, 2, 4, 32)
	for _, split := range []string{"train", "val"} {
		if err := os.MkdirAll(filepath.Join(root, split, "class9"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var log strings.Builder
	_, err := New(Config{
		Model:  graphs.Config{Arch: "vgg11", Mult: 0.0625},
		Data:   DataConfig{Root: root, Kind: "folder", TrainSplit: "train", ValSplit: "val", Augment: "none", Workers: 1},
		Epochs: 1, Batch: 4, CropH: 32, CropW: 32,
		Optimizer: DefaultOptimizerConfig("sgd"), Schedule: Schedule{Kind: "constant", BaseLR: 0.01},
		Seed: 1, Out: t.TempDir(), EvalEvery: 1,
	}, Options{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	want := "warning: class class9 has no image in " + filepath.Join(root, "train", "class9")
	if !strings.Contains(log.String(), want) {
		t.Errorf("log %q lacks %q", log.String(), want)
	}
}

// --log-every writes steps.jsonl (the same lines, timings aside, when interrupted and
// resumed) and --tensorboard an event file.
func TestStepLogAndTensorBoard(t *testing.T) {
	if testing.Short() {
		t.Skip("trains tiny runs")
	}
	cfgFor := func() Config {
		c := tinyConfig(t, t.TempDir())
		c.Epochs, c.LogEvery, c.TensorBoard = 2, 2, true
		return c
	}
	straight := cfgFor()
	var log strings.Builder
	if _, err := runFresh(t, straight, Options{Log: &log}); err != nil {
		t.Fatal(err)
	}
	steps := readSteps(t, straight.Out)
	if len(steps) != 3 || steps[0].Step != 2 || steps[2].Step != 6 || steps[0].GradNorm == nil || steps[0].LR <= 0 {
		t.Fatalf("steps.jsonl %+v: want steps 2, 4, 6 with a gradient norm and an lr", steps)
	}
	if !strings.Contains(log.String(), "epoch 1 step 2/3: loss ") {
		t.Errorf("no step line outside a terminal:\n%s", log.String())
	}
	events, _ := filepath.Glob(filepath.Join(straight.Out, TensorBoardDir, "events.out.tfevents.*"))
	if len(events) != 1 {
		t.Fatalf("event files %v, want one", events)
	}
	if n := countRecords(t, events[0]); n != 1+3+2 { // version, 3 logged steps, 2 epochs
		t.Errorf("%d TFRecords, want 6", n)
	}

	cfg := cfgFor()
	ctx, cancel := context.WithCancelCause(context.Background())
	tr, err := New(cfg, Options{Hooks: []Hook{interruptAt(0, 1, func() { cancel(errors.New("stop")) })}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	// (stopped at global step 1, inside the first window of two steps)
	// a line written after the checkpoint (a kill between the two) is dropped on resume
	if err := appendJSONLine(filepath.Join(cfg.Out, StepsFile), StepRecord{Step: 99}); err != nil {
		t.Fatal(err)
	}
	if tr, err = Resume(cfg.Out, Overrides{}, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readSteps(t, cfg.Out)
	for i := range got {
		got[i].ImagesPerS, steps[i].ImagesPerS = 0, 0
	}
	if !reflect.DeepEqual(got, steps) {
		t.Errorf("resumed steps.jsonl\n%+v\nstraight\n%+v", got, steps)
	}
}

func readSteps(t *testing.T, dir string) []StepRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, StepsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []StepRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r StepRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// countRecords counts the TFRecords of an event file (length, length CRC, data, data CRC).
func countRecords(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(b) >= 12 {
		size := binary.LittleEndian.Uint64(b)
		if uint64(len(b)) < 16+size {
			t.Fatalf("torn record after %d", n)
		}
		b = b[16+size:]
		n++
	}
	if len(b) != 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}
	return n
}
