package train

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
)

// runRanks trains one run on a loopback world of len(cfgs) ranks, rank r with cfgs[r],
// and returns each rank's trainer and error.
func runRanks(t *testing.T, cfgs []Config, ctxFor func(rank int) context.Context, opt func(rank int, o *Options)) ([]*Trainer, []*Result, []error) {
	t.Helper()
	n := len(cfgs)
	trs, res, errs := make([]*Trainer, n), make([]*Result, n), make([]error, n)
	var wg sync.WaitGroup
	for r, comm := range distributed.Loopback(n) {
		wg.Go(func() {
			o := Options{Comm: comm}
			if opt != nil {
				opt(r, &o)
			}
			tr, err := New(cfgs[r], o)
			if err != nil {
				errs[r] = err
				return
			}
			trs[r] = tr
			ctx := context.Background()
			if ctxFor != nil {
				ctx = ctxFor(r)
			}
			res[r], errs[r] = tr.Run(ctx)
		})
	}
	wg.Wait()
	return trs, res, errs
}

func twoRanks(cfg Config) []Config { return []Config{cfg, cfg} }

// segnetConfig is tinyConfig with the model that has batch norm.
func segnetConfig(t *testing.T) Config {
	cfg := tinyConfig(t, t.TempDir())
	cfg.Model.Arch = "vgg16-segnet"
	return cfg
}

// TestRanksEqualAccumulation is the data-parallel contract: 2 ranks at global batch 4
// end bit-identical (weights, batch-norm running statistics, losses, validation scores)
// to one process running each batch of 4 as 2 accumulated micro-batches of 2.
func TestRanksEqualAccumulation(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three tiny runs")
	}
	one := segnetConfig(t)
	one.Epochs, one.Accum = 2, 2
	tr, err := New(one, Options{})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := weightsOf(tr.Model())

	par := segnetConfig(t)
	par.Epochs = 2
	trs, res, errs := runRanks(t, twoRanks(par), nil, nil)
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for r := range trs {
		sameWeights(t, weightsOf(trs[r].Model()), want)
	}
	if got, want := records(t, par.Out), records(t, one.Out); !reflect.DeepEqual(got, want) {
		t.Errorf("metrics.jsonl differ:\n2 ranks   %+v\naccum 2   %+v", got, want)
	}
	e0, e1, ew := res[0].LastEval, res[1].LastEval, acc.LastEval
	if e0.Images != 4 || e1.Images != 4 || !reflect.DeepEqual(e0.Confusion.Counts, ew.Confusion.Counts) ||
		!reflect.DeepEqual(e1.Confusion.Counts, ew.Confusion.Counts) || e0.Seg.MeanIoU != ew.Seg.MeanIoU {
		t.Errorf("evaluation: ranks %d/%d images, mIoU %v/%v; one process %d images, mIoU %v", e0.Images, e1.Images, e0.Seg.MeanIoU, e1.Seg.MeanIoU, ew.Images, ew.Seg.MeanIoU)
	}
	// And the weights differ from a plain batch-of-4 run (batch norm sees other batches),
	// so the comparison above discriminates.
	plain := segnetConfig(t)
	plain.Epochs = 2
	p, err := runFresh(t, plain, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(weightsOf(p.Model()), want) {
		t.Error("accumulation changed nothing")
	}
}

// writeFolderData writes an image-folder classification set: per class, images whose
// colour says the class, with noise.
func writeFolderData(t *testing.T, classes, perClass, size int) string {
	t.Helper()
	root := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	for _, split := range []string{"train", "val"} {
		for c := range classes {
			dir := filepath.Join(root, split, fmt.Sprintf("class%d", c))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range perClass {
				img := image.NewRGBA(image.Rect(0, 0, size, size))
				for y := range size {
					for x := range size {
						v := uint8(60*c) + uint8(r.IntN(40))
						img.Set(x, y, color.RGBA{v, 255 - v, uint8(r.IntN(256)), 255})
					}
				}
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := png.Encode(f, img); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
	}
	return root
}

// TestAccumulationMatchesWholeBatch: for a classifier without batch norm, accumulating 2
// micro-batches of 2 computes the step of the whole batch of 4, dropout masks included
// (each micro-batch draws its samples' masks of the whole batch), to float32 rounding.
func TestAccumulationMatchesWholeBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two tiny classifiers")
	}
	root := writeFolderData(t, 3, 4, 32)
	base := func(accum int) Config {
		opt := DefaultOptimizerConfig("sgd")
		opt.Momentum = 0.9
		return Config{
			Model:  graphs.Config{Arch: "vgg11", Mult: 0.0625, Dropout: 0.5},
			Data:   DataConfig{Root: root, Kind: "folder", TrainSplit: "train", ValSplit: "val", Augment: "none", Workers: 1},
			Epochs: 2, Batch: 4, Accum: accum, CropH: 32, CropW: 32,
			Optimizer: opt, Schedule: Schedule{Kind: "constant", BaseLR: 0.05},
			Seed: 3, Out: t.TempDir(), EvalEvery: 1,
		}
	}
	whole, err := runFresh(t, base(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := runFresh(t, base(2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if acc.step.micro != 2 || whole.step.micro != 4 {
		t.Fatalf("forward passes of %d and %d samples, want 2 (accumulated) and 4", acc.step.micro, whole.step.micro)
	}
	a, b := weightsOf(whole.Model()), weightsOf(acc.Model())
	var worst float64
	moved := false
	init := weightsOf(mustModel(t, base(1)))
	for name, wa := range a {
		var scale float64
		for i, v := range wa {
			scale = max(scale, math.Abs(float64(v)))
			if v != init[name][i] {
				moved = true
			}
		}
		for i, v := range wa {
			worst = max(worst, math.Abs(float64(v-b[name][i]))/(scale+1e-12))
		}
	}
	if !moved {
		t.Fatal("training did not change the weights")
	}
	if worst > 1e-4 {
		t.Errorf("accumulated and whole-batch weights differ by %.3g (relative to each tensor's largest)", worst)
	}
	t.Logf("2 accumulated micro-batches vs the whole batch, 6 steps: max relative weight difference %.2g", worst)
}

func mustModel(t *testing.T, cfg Config) *graphs.Model {
	t.Helper()
	cfg.Out = t.TempDir()
	tr, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Model()
}

// updateDiff is ||a-b|| / ||a-init|| over every parameter (Euclidean norms): how far
// two runs' updates from the same initial weights differ, relative to the update. (Per
// tensor it would be dominated by the biases of convolutions followed by batch norm,
// whose exact gradient is zero and whose computed one is rounding noise.)
func updateDiff(a, b, init map[string][]float32) float64 {
	var diff, upd float64
	for name, wa := range a {
		for i, v := range wa {
			d, u := float64(v-b[name][i]), float64(v-init[name][i])
			diff, upd = diff+d*d, upd+u*u
		}
	}
	return math.Sqrt(diff / upd)
}

// TestSyncBNMatchesWholeBatch: with --sync-bn, 2 ranks of 2 samples normalise over the
// global batch of 4, so they take the steps one process takes on batches of 4. Not to
// the bit: the loss is the mean of the ranks' mean losses (as in PyTorch DDP), which
// differs from the mean over the whole batch when the ranks have different numbers of
// ignored (255) pixels. Without --sync-bn the steps differ entirely.
func TestSyncBNMatchesWholeBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains tiny runs")
	}
	// One step (4 training images): later steps compound the loss-weighting difference.
	ds, err := data.OpenVOC(demoRoot(t), "train", data.VOCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var exclude []string
	for i := 4; i < ds.Len(); i++ {
		exclude = append(exclude, ds.Sample(i).ID)
	}
	one := segnetConfig(t)
	one.Epochs, one.Data.Augment, one.Data.Exclude = 1, "none", exclude
	init := weightsOf(mustModel(t, one))
	tr, err := runFresh(t, one, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.StepsPerEpoch() != 1 {
		t.Fatalf("%d steps per epoch, want 1", tr.StepsPerEpoch())
	}
	want := weightsOf(tr.Model())
	diff := map[bool]float64{}
	for _, sync := range []bool{true, false} {
		par := segnetConfig(t)
		par.Epochs, par.Data.Augment, par.Data.Exclude, par.SyncBN = 1, "none", exclude, sync
		trs, _, errs := runRanks(t, twoRanks(par), nil, nil)
		for r, err := range errs {
			if err != nil {
				t.Fatalf("sync %v: rank %d: %v", sync, r, err)
			}
		}
		got := weightsOf(trs[0].Model())
		sameWeights(t, weightsOf(trs[1].Model()), got)
		diff[sync] = updateDiff(want, got, init)
	}
	t.Logf("one step, 2 ranks vs one process, difference relative to the update: sync-bn %.2g, local bn %.2g", diff[true], diff[false])
	if diff[true] > 0.02 || diff[false] < 10*diff[true] {
		t.Errorf("sync-bn %.3g (want < 0.02), local batch norm %.3g (want > 10x that)", diff[true], diff[false])
	}
}

// TestRanksResume: an interrupt seen by one rank stops both at the same step; resumed on
// 2 ranks, the run ends where an uninterrupted one does.
func TestRanksResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains tiny runs")
	}
	straight := segnetConfig(t)
	straight.Epochs = 2
	trs, _, errs := runRanks(t, twoRanks(straight), nil, nil)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	want := weightsOf(trs[0].Model())

	cfg := segnetConfig(t)
	cfg.Epochs = 2
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	_, _, errs = runRanks(t, twoRanks(cfg), func(r int) context.Context {
		if r == 1 {
			return ctx
		}
		return context.Background()
	}, func(r int, o *Options) {
		if r == 1 {
			o.Hooks = []Hook{interruptAt(1, 1, func() { cancel(fmt.Errorf("test interrupt")) })}
		}
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("rank %d: got %v, want an interruption", r, err)
		}
	}
	resumed := make([]*Trainer, 2)
	rerrs := make([]error, 2)
	var wg sync.WaitGroup
	for r, comm := range distributed.Loopback(2) {
		wg.Go(func() {
			tr, err := Resume(cfg.Out, Overrides{}, Options{Comm: comm})
			if err != nil {
				rerrs[r] = err
				return
			}
			if p := tr.Progress(); p.Epoch != 1 || p.EpochStep != 1 {
				rerrs[r] = fmt.Errorf("resumed at epoch %d step %d, want 1, 1", p.Epoch, p.EpochStep)
			}
			resumed[r] = tr
			_, rerrs[r] = tr.Run(context.Background())
		})
	}
	wg.Wait()
	for r, err := range rerrs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	sameWeights(t, weightsOf(resumed[0].Model()), want)
	sameWeights(t, weightsOf(resumed[1].Model()), want)
	if got, want := records(t, cfg.Out), records(t, straight.Out); !reflect.DeepEqual(got, want) {
		t.Errorf("metrics.jsonl: resumed %+v, straight %+v", got, want)
	}
}

func TestRanksBatchMustSplit(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir())
	cfg.Batch, cfg.Accum = 6, 2
	_, _, errs := runRanks(t, twoRanks(cfg), nil, nil)
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "--batch 6 does not split into 4 equal micro-batches (2 ranks x --accum 2)") {
			t.Errorf("rank %d: got %v", r, err)
		}
	}
}
