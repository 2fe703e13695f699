package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
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
	cfg := graphs.Config{Arch: *mf.model, Mult: *mf.width, Classes: *mf.classes, Unpool: *mf.unpool}
	if *mf.input != "" {
		h, w, err := parseHW(*mf.input)
		if err != nil {
			return nil, nil, usagef("--input-size: %v", err)
		}
		cfg.InputH, cfg.InputW = h, w
	}
	m, f, err := train.OpenModelAs(path, cfg)
	if err != nil {
		return nil, nil, err
	}
	return m, train.ClassNames(f, m.Config.Classes), nil
}

func evalCmd() *command {
	c := &command{
		name:  "eval",
		usage: "--checkpoint FILE --data ROOT [--split val] [--json]",
		short: "score a checkpoint on a dataset split",
		long: `Eval runs a model over a dataset split and prints its scores.

Segmentation: a table per class (IoU, accuracy, ground-truth and predicted pixels), then
mIoU, pixel accuracy, mean class accuracy and frequency-weighted IoU, from one confusion
matrix accumulated over the whole split at each image's own resolution (pixels labelled
255 are skipped; classes absent from both ground truth and prediction are left out of the
means). Classifiers: top-1, top-5 and per-class accuracy.

--json prints the scores as one JSON object (segmentation keys: miou, pixel_acc,
mean_acc, fwiou, per_class[{name, iou, acc, ...}]; classification: top1, top5, per_class).

Examples:
	vggo eval --checkpoint runs/segnet/best.safetensors --data ~/VOCdevkit
	vggo eval --checkpoint runs/unet/last.safetensors --data ~/VOCdevkit --split val --json
	vggo eval --checkpoint vgg16.safetensors --model vgg16 --kind folder --data ~/imagenet --classes 1000`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint or weights file (.safetensors)")
		root := fs.String("data", "", "dataset root")
		kind := fs.String("kind", "voc", "dataset kind: voc or folder")
		split := fs.String("split", "val", "split to score")
		maskDir := fs.String("mask-dir", "", "VOC mask folder (default SegmentationClass)")
		batch := fs.Int("batch", 0, "batch size (default 1 for segmentation, 16 for classifiers)")
		workers := fs.Int("workers", 2, "data loading goroutines")
		asJSON := fs.Bool("json", false, "print the scores as JSON")
		absent := fs.Bool("all-classes", false, "also list the classes absent from both the ground truth and the prediction")
		mf := addModelFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		if *root == "" {
			return usagef("--data is required")
		}
		m, names, err := mf.load(*ckpt)
		if err != nil {
			return err
		}
		d := train.DataConfig{Root: *root, Kind: *kind, MaskDir: *maskDir}
		if *kind == "folder" { // an image folder's classes are the model's, in its order
			d.Classes = names
		}
		ds, err := openDataset(d, *split, m.Config.Classes)
		if err != nil {
			return err
		}
		seg := m.Info.Task == label.Segmentation
		if m.Info.Task != ds.Task() {
			return fmt.Errorf("%s is a %s model but %s holds %s data (--kind)", m.Config.Arch, m.Info.Task, *root, ds.Task())
		}
		if *batch == 0 { // 1 for segmentation (images of their own sizes), 16 for classifiers
			*batch = map[bool]int{true: 1, false: 16}[seg]
		}
		l, err := data.NewLoader(ds, data.Transform{Stride: m.Info.Stride, CropH: m.Config.InputH, CropW: m.Config.InputW},
			data.Config{BatchSize: *batch, Workers: *workers})
		if err != nil {
			return err
		}
		res, err := evaluateSplit(ctx, e, m, l, names)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e, res)
		}
		fmt.Fprintf(e.stdout, "%s on %s/%s: %d images in %.1fs\n", m.Config.Arch, *root, *split, res.Images, res.Seconds)
		if seg {
			return res.Seg.WriteTableAbsent(e.stdout, *absent)
		}
		return res.Cls.WriteTable(e.stdout)
	}
	return c
}

// evaluateSplit scores m on every batch of l, with a counter on a terminal.
func evaluateSplit(ctx context.Context, e *env, m *graphs.Model, l *data.Loader, names []string) (*train.EvalResult, error) {
	ev := train.NewEvaluator(m)
	defer ev.Close()
	var bar func(done, total int)
	if train.IsTerminal(e.stderr) {
		bar = func(done, total int) { fmt.Fprintf(e.stderr, "\revaluating %d/%d", done, total) }
	}
	res, err := train.Evaluate(ctx, ev, l, names, bar)
	if bar != nil {
		fmt.Fprintln(e.stderr)
	}
	return res, err
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
