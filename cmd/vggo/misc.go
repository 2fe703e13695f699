package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/onnx"
	"github.com/vggo/vggo/report"
	"github.com/vggo/vggo/train"
)

func exportCmd() *command {
	c := &command{
		name:  "export",
		usage: "--checkpoint FILE [--model M ...] --out FILE [--format safetensors|onnx]",
		short: "write the model as a weights-only safetensors file or as ONNX",
		long: `Export writes the model of a training checkpoint, or of a weights file with --model
(a .safetensors file, or a PyTorch .pth/.pt state_dict), in one of two formats. The format
is --format, else the extension of --out (.onnx means onnx), else safetensors.

safetensors: the model's parameters and batch-norm buffers, without optimizer state, under
the state_dict names of the PyTorch reference models (torchvision's features.0.weight,
classifier.6.bias, ...), so that torch.nn.Module.load_state_dict(safetensors.torch.load_file(F),
strict=False) loads them (num_batches_tracked is not stored).

onnx: the model in evaluation mode as an ONNX graph (opset 13) for onnxruntime, OpenVINO,
TensorRT: input "input", float32 (N, 3, H, W) normalised as vggo normalises images, RGB
(pixel/255 - mean)/std with mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225; output
"logits", (N, classes) for classifiers, (N, classes, H, W) for segmentation models. N is
dynamic, and so are H and W for segmentation models (multiples of their stride);
classifiers take the input size they were built with (--input-size with --model).

Examples:
	vggo export --checkpoint runs/unet/best.safetensors --out unet.safetensors
	vggo export --checkpoint runs/unet/best.safetensors --out unet.onnx
	vggo export --checkpoint vgg16_bn.pth --model vgg16-bn --out vgg16_bn.onnx`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		ckpt := fs.String("checkpoint", "", "training checkpoint, or weights file (.safetensors, .pth) with --model")
		out := fs.String("out", "", "output file")
		format := fs.String("format", "", "safetensors or onnx (default: from the --out extension, else safetensors)")
		mf := addModelFlags(fs)
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		if *out == "" {
			return usagef("--out is required")
		}
		switch *format {
		case "":
			*format = "safetensors"
			if strings.EqualFold(filepath.Ext(*out), ".onnx") {
				*format = "onnx"
			}
		case "safetensors", "onnx":
		default:
			return usagef("--format %q: want safetensors or onnx", *format)
		}
		m, names, err := mf.load(*ckpt)
		if err != nil {
			return err
		}
		start := time.Now()
		if *format == "onnx" {
			err = onnx.WriteFile(*out, m, onnx.Options{ClassNames: names})
		} else {
			err = checkpoints.Save(*out, train.WeightsFile(m, names))
		}
		if err != nil {
			return err
		}
		total, _, _ := m.Counts()
		var size int64
		if st, err := os.Stat(*out); err == nil {
			size = st.Size()
		}
		fmt.Fprintf(e.stdout, "wrote %s (%s, %.1f MB in %.1fs): %s, %d tensors, %d numbers\n", *out, *format, float64(size)/1e6, time.Since(start).Seconds(), m.Config.Arch, len(m.Params), total)
		return nil
	}
	return c
}

func reportCmd() *command {
	c := &command{
		name:  "report",
		usage: "RUNDIR",
		short: "draw PNG charts of a training run",
		long: `Report reads RUNDIR/metrics.jsonl and RUNDIR/best.json and writes loss.png, lr.png,
val.png (validation scores per epoch) and per_class_iou.png (the best checkpoint's IoU per
class) into RUNDIR. vggo train writes them after every evaluation too.

Example:
	vggo report runs/vgg19-unet-20261121-101500`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		if err := parseFlagsArgs(e, c, fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usagef("want one run directory")
		}
		paths, err := report.WriteCharts(fs.Arg(0))
		for _, p := range paths {
			fmt.Fprintln(e.stdout, p)
		}
		return err
	}
	return c
}

func demoDataCmd() *command {
	c := &command{
		name:  "demo-data",
		usage: "--out DIR [--train N] [--val N] [--size S]",
		short: "write the small synthetic VOC-style demo dataset",
		long: `Demo-data writes a deterministic VOC-style dataset (JPEGImages, SegmentationClass palette
PNGs with the VOC colormap, ImageSets/Segmentation/{train,val,trainval}.txt): coloured
shapes of five VOC classes (aeroplane, bus, cat, dog, person) on textured backgrounds.
vggo train uses it when no --data is given.

Example:
	vggo demo-data --out demo && vggo train --data demo --epochs 5`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		out := fs.String("out", "", "output directory (must be empty or an earlier demo)")
		ntrain := fs.Int("train", 200, "training images")
		nval := fs.Int("val", 50, "validation images")
		size := fs.Int("size", 128, "image side in pixels")
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		if *out == "" {
			return usagef("--out is required")
		}
		if err := data.WriteDemo(*out, data.DemoConfig{Train: *ntrain, Val: *nval, Size: *size}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %d training and %d validation images to %s\n", *ntrain, *nval, *out)
		return nil
	}
	return c
}

func dataCmd() *command {
	c := &command{
		name:  "data",
		usage: "check --data ROOT [--split train] [--kind voc|folder]",
		short: "check a dataset: every bad sample, class pixel counts",
		long: `Data check reads every sample of a split and reports every problem with the file's
path (unreadable or corrupt images, masks that are not 8-bit palette or grayscale PNGs,
mask values that are neither a class nor 255, size mismatches, missing files), then a
summary: sample count, image size range and pixels (or images) per class. It exits with
status 1 when any sample is bad.

Expected layouts:
	voc:    ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass/<id>.png,
	        ROOT/ImageSets/Segmentation/<split>.txt (ROOT: VOC2012, VOCdevkit or its parent)
	folder: ROOT/<split>/<class>/*.{jpg,jpeg,png}

Examples:
	vggo data check --data ~/VOCdevkit --split trainval
	vggo data check --data ~/VOCdevkit --mask-dir SegmentationClassAug --split train_aug
	vggo data check --kind folder --data ~/imagenette --split val`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		root := fs.String("data", "", "dataset root")
		split := fs.String("split", "train", "split to check")
		kind := fs.String("kind", "voc", "dataset kind: voc or folder")
		maskDir := fs.String("mask-dir", "", "VOC mask folder (default SegmentationClass)")
		classes := fs.Int("classes", 0, "number of classes (default 21)")
		workers := fs.Int("workers", 2, "goroutines reading samples")
		if err := parseFlagsArgs(e, c, fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 || fs.Arg(0) != "check" {
			return usagef("the only data subcommand is check")
		}
		if *root == "" {
			return usagef("--data is required")
		}
		ds, err := openDataset(train.DataConfig{Root: *root, Kind: *kind, MaskDir: *maskDir}, *split, *classes)
		if err != nil {
			return err
		}
		rep, err := data.Check(ctx, ds, data.CheckOptions{Workers: *workers})
		if err != nil {
			return err
		}
		if err := rep.Print(e.stdout); err != nil {
			return err
		}
		if !rep.OK() {
			return fmt.Errorf("%d bad samples in %s (train with --skip-bad to leave them out)", len(rep.BadIDs()), *split)
		}
		return nil
	}
	return c
}
