package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"strings"
	"time"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/infer"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/metrics"
	"github.com/vggo/vggo/train"
)

// modelFlags are the flags that describe a model when the checkpoint is a weights-only
// file without vggo's description (weights converted from PyTorch).
type modelFlags struct {
	model, unpool, input *string
	width                *float64
	classes              *int
}

func addModelFlags(fs *flag.FlagSet) *modelFlags {
	return &modelFlags{
		model:   fs.String("model", "", "architecture, for a weights-only file without vggo metadata: "+strings.Join(graphs.Names(), ", ")),
		width:   fs.Float64("width", 1, "with --model: channel-width multiplier"),
		classes: fs.Int("classes", 0, "with --model: number of classes"),
		unpool:  fs.String("unpool", "", "with --model vgg16-segnet: upsample or indices"),
		input:   fs.String("input-size", "", "with --model (classifiers): input size HxW (default 224x224)"),
	}
}

// load opens a training checkpoint or a vggo export, or, with --model, any safetensors
// file holding exactly that model's parameter names.
func (mf *modelFlags) load(path string) (*graphs.Model, []string, error) {
	if path == "" {
		return nil, nil, usagef("--checkpoint is required")
	}
	if *mf.model == "" {
		m, f, err := train.OpenModel(path)
		if err != nil {
			return nil, nil, err
		}
		return m, train.ClassNames(f, m.Config.Classes), nil
	}
	cfg, err := mf.config()
	if err != nil {
		return nil, nil, err
	}
	m, f, err := train.OpenModelAs(path, cfg)
	if err != nil {
		return nil, nil, err
	}
	return m, train.ClassNames(f, m.Config.Classes), nil
}

// config is the architecture the flags describe (with --model).
func (mf *modelFlags) config() (graphs.Config, error) {
	cfg := graphs.Config{Arch: *mf.model, Mult: *mf.width, Classes: *mf.classes, Unpool: *mf.unpool}
	if *mf.input != "" {
		h, w, err := parseHW(*mf.input)
		if err != nil {
			return cfg, usagef("--input-size: %v", err)
		}
		cfg.InputH, cfg.InputW = h, w
	}
	return cfg, nil
}

// open is load for inference: the model ready to run on images.
func (mf *modelFlags) open(path string, opt infer.Options) (*infer.Model, error) {
	if path == "" {
		return nil, usagef("--checkpoint is required")
	}
	if *mf.model == "" {
		return infer.Open(path, opt)
	}
	cfg, err := mf.config()
	if err != nil {
		return nil, err
	}
	return infer.OpenAs(path, cfg, opt)
}

func evalCmd() *command {
	c := &command{
		name:  "eval",
		usage: "--checkpoint FILE --data ROOT [--split val] [--json] [--mode auto|whole|slide] [--tile HxW] [--stride HxW] [--tta] [--compare]",
		short: "score a checkpoint on a dataset split",
		long:  evalHelp,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint or weights file (.safetensors, or PyTorch .pth/.pt with --model)")
		root := fs.String("data", "", "dataset root")
		kind := fs.String("kind", "voc", "dataset kind: voc or folder")
		split := fs.String("split", "val", "split to score")
		maskDir := fs.String("mask-dir", "", "VOC mask folder (default SegmentationClass)")
		batch := fs.Int("batch", 0, "images per forward pass (default 1 for segmentation, 16 for classifiers)")
		workers := fs.Int("workers", 2, "data loading goroutines")
		asJSON := fs.Bool("json", false, "print the scores as JSON")
		compare := fs.Bool("compare", false, "segmentation: score whole images, sliding tiles and TTA, one line each")
		absent := fs.Bool("all-classes", false, "also list the classes absent from both the ground truth and the prediction")
		mf, inf := addModelFlags(fs), addInferFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		opt, err := inf.options()
		switch {
		case *root == "":
			return usagef("--data is required")
		case err != nil:
			return err
		case *batch < 0 || *workers < 1:
			return usagef("--batch %d, --workers %d: want >= 0 and >= 1", *batch, *workers)
		case *compare && (opt.TTA || opt.Mode != infer.Auto):
			return usagef("--compare runs every mode: leave out --mode and --tta")
		}
		m, err := mf.open(*ckpt, opt)
		if err != nil {
			return err
		}
		defer m.Close()
		d := train.DataConfig{Root: *root, Kind: *kind, MaskDir: *maskDir}
		if *kind == "folder" { // an image folder's classes are the model's, in its order
			d.Classes = m.ClassNames()
		}
		ds, err := openDataset(d, *split, m.Info().Config.Classes)
		if err != nil {
			return err
		}
		seg := m.Task() == label.Segmentation
		switch {
		case m.Task() != ds.Task():
			return fmt.Errorf("%s is a %s model but %s holds %s data (--kind)", m.Info().Config.Arch, m.Task(), *root, ds.Task())
		case *compare && !seg:
			return usagef("--compare applies to segmentation models")
		}
		if *batch == 0 { // 1 for segmentation (images of their own sizes), 16 for classifiers
			*batch = map[bool]int{true: 1, false: 16}[seg]
		}
		ev := evalRun{e: e, m: m, ds: ds, batch: *batch, workers: *workers, asJSON: *asJSON, absent: *absent,
			where: fmt.Sprintf("%s on %s/%s", m.Info().Config.Arch, *root, *split)}
		if *compare {
			return ev.compare(ctx)
		}
		return ev.one(ctx)
	}
	return c
}

// evalRun is one eval command: a model, a split and how to print.
type evalRun struct {
	e              *env
	m              *infer.Model
	ds             data.Dataset
	batch, workers int
	asJSON, absent bool
	where          string
}

// one scores the split in the model's mode and prints the table (or JSON).
func (r evalRun) one(ctx context.Context) error {
	view, err := r.m.With(withBatch(r.m.Options(), r.batch))
	if err != nil {
		return err
	}
	res, err := evaluateSplit(ctx, r.e, view, r.ds, r.m.ClassNames(), r.batch, r.workers, "evaluating")
	if err != nil {
		return err
	}
	if r.asJSON {
		return printJSON(r.e, res)
	}
	fmt.Fprintf(r.e.stdout, "%s: %d images in %.1fs\n", r.where, res.Images, res.Seconds)
	if res.Task == label.Segmentation {
		return res.Seg.WriteTableAbsent(r.e.stdout, r.absent)
	}
	return res.Cls.WriteTable(r.e.stdout)
}

// compare scores whole images, sliding tiles and TTA, one line (or JSON key) each.
func (r evalRun) compare(ctx context.Context) error {
	base := withBatch(r.m.Options(), r.batch)
	modes := []struct {
		name string
		opt  infer.Options
	}{
		{"whole", withMode(base, infer.Whole, false)},
		{"slide", withMode(base, infer.Slide, false)},
		{"tta", withMode(base, infer.Auto, true)},
	}
	results := map[string]any{}
	if !r.asJSON {
		fmt.Fprintf(r.e.stdout, "%s (tile %dx%d, stride %dx%d; TTA scales %v, flips %v)\n", r.where,
			base.TileH, base.TileW, base.StrideH, base.StrideW, base.Scales, !base.NoFlip)
		fmt.Fprintf(r.e.stdout, "%-6s %8s %10s %9s %9s\n", "mode", "mIoU", "pixel acc", "mean acc", "seconds")
	}
	for _, md := range modes {
		view, err := r.m.With(md.opt)
		if err != nil {
			return err
		}
		res, err := evaluateSplit(ctx, r.e, view, r.ds, r.m.ClassNames(), r.batch, r.workers, "evaluating "+md.name)
		if err != nil {
			return err
		}
		results[md.name] = res.Seg
		if !r.asJSON {
			fmt.Fprintf(r.e.stdout, "%-6s %8.4f %10.4f %9.4f %9.1f\n", md.name, res.Seg.MeanIoU, res.Seg.PixelAcc, res.Seg.MeanAcc, res.Seconds)
		}
	}
	if !r.asJSON {
		return nil
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(r.e.stdout, "%s\n", b)
	return err
}

func withBatch(o infer.Options, batch int) infer.Options {
	o.Batch, o.Concurrency, o.Graphs = batch, 0, 0
	return o
}

func withMode(o infer.Options, mode infer.Mode, tta bool) infer.Options {
	o.Mode, o.TTA = mode, tta
	return o
}

// evaluateSplit scores m on every sample of ds, through the same inference path as
// predict: batches of images of one size for whole images, tiles for large ones. A
// counter shows on a terminal.
func evaluateSplit(ctx context.Context, e *env, m *infer.Model, ds data.Dataset, names []string, batch, workers int, desc string) (*train.EvalResult, error) {
	start := time.Now()
	classes := len(names)
	res := &train.EvalResult{Task: m.Task()}
	seg := res.Task == label.Segmentation
	if seg {
		res.Confusion = metrics.NewConfusionMatrix(classes)
	} else {
		res.TopK = metrics.NewTopK(classes)
	}
	tty := train.IsTerminal(e.stderr)
	total := ds.Len()
	ctx, cancel := context.WithCancel(ctx) // stops the loaders when scoring stops early
	defer cancel()
	examples := loadInOrder(ctx, ds, workers)
	for lo := 0; lo < total; lo += batch {
		n := min(batch, total-lo)
		exs := make([]data.Example, n)
		imgs := make([]image.Image, n)
		for i := range n {
			r, ok := <-examples
			if !ok {
				return nil, context.Cause(ctx)
			}
			if r.err != nil {
				return nil, r.err
			}
			exs[i], imgs[i] = r.ex, r.ex.Image
		}
		if err := scoreBatch(ctx, m, res, exs, imgs, classes); err != nil {
			return nil, err
		}
		res.Images += n
		if tty {
			fmt.Fprintf(e.stderr, "\r%s %d/%d", desc, res.Images, total)
		}
	}
	if tty {
		fmt.Fprintln(e.stderr)
	}
	var err error
	if seg {
		res.Seg, err = res.Confusion.ScoresNamed(names)
	} else {
		res.Cls, err = res.TopK.ScoresNamed(names)
	}
	if err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// scoreBatch runs the model on a batch and adds it to the confusion matrix (each mask
// at its ground truth's size) or the top-k counts.
func scoreBatch(ctx context.Context, m *infer.Model, res *train.EvalResult, exs []data.Example, imgs []image.Image, classes int) error {
	if res.Task != label.Segmentation {
		tops, err := m.ClassifyBatch(ctx, imgs, classes)
		if err != nil {
			return err
		}
		probs := make([]float32, len(imgs)*classes)
		lab := make([]int, len(imgs))
		for i, top := range tops {
			for _, c := range top {
				probs[i*classes+c.Index] = float32(c.Prob)
			}
			lab[i] = exs[i].Label
		}
		return res.TopK.Add(probs, len(imgs), classes, lab)
	}
	masks, err := m.SegmentBatch(ctx, imgs)
	if err != nil {
		return err
	}
	var pred, labels []int
	for i, mk := range masks {
		gt := exs[i].Mask
		w, h := gt.Rect.Dx(), gt.Rect.Dy()
		pred, labels = pred[:0], labels[:0]
		for y := range h {
			for _, v := range mk.Pix[y*mk.Stride:][:w] {
				pred = append(pred, int(v))
			}
			for _, v := range gt.Pix[y*gt.Stride:][:w] {
				labels = append(labels, int(v))
			}
		}
		if err := res.Confusion.Add(pred, labels); err != nil {
			return fmt.Errorf("%s: %w", exs[i].ID, err)
		}
	}
	return nil
}

type loadResult struct {
	ex  data.Example
	err error
}

// loadInOrder loads the samples of ds with workers goroutines, a few ahead of the
// consumer, and delivers them in order. The channel closes early when ctx is done.
func loadInOrder(ctx context.Context, ds data.Dataset, workers int) <-chan loadResult {
	out := make(chan loadResult)
	slots := make(chan chan loadResult, 2*workers)
	go func() {
		defer close(slots)
		for i := range ds.Len() {
			ch := make(chan loadResult, 1)
			select {
			case slots <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				ex, err := ds.Load(i)
				ch <- loadResult{ex, err}
			}()
		}
	}()
	go func() {
		defer close(out)
		for ch := range slots {
			select {
			case out <- <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// printJSON prints the scores of res as one JSON object.
func printJSON(e *env, res *train.EvalResult) error {
	var v any = res.Cls
	if res.Task == label.Segmentation {
		v = res.Seg
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

const evalHelp = `Eval runs a model over a dataset split and prints its scores.

Segmentation: a table per class (IoU, accuracy, ground-truth and predicted pixels), then
mIoU, pixel accuracy, mean class accuracy and frequency-weighted IoU, from one confusion
matrix accumulated over the whole split at each image's own resolution (pixels labelled
255 are skipped; classes absent from both ground truth and prediction are left out of the
means). Classifiers: top-1, top-5 and per-class accuracy.

Images go through the model as in vggo predict: whole, or in tiles when larger than
--tile (--mode, --tile, --stride), with test-time augmentation under --tta. --compare
scores the split three ways, whole images, sliding tiles (--tile, --stride) and TTA
(--scales), and prints one line per mode.

--json prints the scores as one JSON object (segmentation keys: miou, pixel_acc,
mean_acc, fwiou, per_class[{name, iou, acc, ...}]; classification: top1, top5, per_class);
with --compare, one such object per mode under the keys whole, slide and tta.

Examples:
	vggo eval --checkpoint runs/segnet/best.safetensors --data ~/VOCdevkit
	vggo eval --checkpoint runs/unet/last.safetensors --data ~/VOCdevkit --split val --json
	vggo eval --checkpoint runs/unet/best.safetensors --data ~/VOCdevkit --compare --tile 256x256 --stride 171x171
	vggo eval --checkpoint vgg16.safetensors --model vgg16 --kind folder --data ~/imagenet --classes 1000`
