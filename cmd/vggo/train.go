package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
	"github.com/vggo/vggo/train"
)

// demoDir is where "vggo train" with no --data writes (or reuses) the demo dataset.
func demoDir() string {
	if d := os.Getenv("VGGO_DEMO_DIR"); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "vggo", "demo-voc")
	}
	return filepath.Join(os.TempDir(), "vggo-demo-voc")
}

func trainCmd() *command {
	c := &command{
		name:  "train",
		usage: "[--model M] [--data ROOT] [--epochs N] [--out RUNDIR] [flags] | --resume RUNDIR [--epochs N]",
		short: "train a model (with no flags: a small U-Net on the built-in demo data)",
		long: `Train trains a model and writes a run directory: config.json, metrics.jsonl (one line
per epoch), last.safetensors (every epoch, every --save-every steps and on Ctrl-C),
best.safetensors and best.json (best validation score), --keep numbered checkpoints and
PNG charts (loss.png, lr.png, val.png, per_class_iou.png).

With no flags it writes the demo dataset (200 + 50 synthetic 128x128 VOC-style images)
to the user cache directory, trains vgg19-unet at width 1/8 for a few minutes and
prints the validation mIoU.

Ctrl-C finishes the current step, saves last.safetensors and prints the command that
resumes the run exactly where it stopped (same data order, augmentation and dropout).

Defaults follow the usual recipes: segmentation SGD momentum 0.9, lr 0.01, weight decay
1e-4, poly schedule (power 0.9); classifiers SGD momentum 0.9, lr 0.01, weight decay
5e-4, step schedule (x0.1 every third of the run).

Examples:
	vggo train
	vggo train --model vgg16-segnet --data ~/VOCdevkit --epochs 50 --batch 8 --crop 512x512 --out runs/segnet
	vggo train --model vgg19-unet --data ~/VOCdevkit --mask-dir SegmentationClassAug --train-split train_aug
	vggo train --model vgg16 --kind folder --data ~/imagenette --classes 10 --crop 224x224 --width 0.25
	vggo train --model vgg16-segnet --data ~/VOCdevkit --pretrained vgg16_bn.safetensors
	vggo train --resume runs/segnet
	vggo train --resume runs/segnet --epochs 80
	mpirun -np 2 vggo train --distributed --batch 8 ...     (a vggo built with -tags mpi)

Data-parallel training (--distributed, in a vggo built with -tags mpi and started by
mpirun): every rank reads its share of each global --batch, gradients are averaged with
one allreduce per step, rank 0 writes the run directory and prints; the run is that of
one process with --accum set to the number of ranks. --accum K splits each step into K
micro-batches whose gradients are summed (a large batch in little memory).`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(c)
		model := fs.String("model", "vgg19-unet", "architecture: "+strings.Join(graphs.Names(), ", "))
		root := fs.String("data", "", "dataset root (VOC2012, VOCdevkit or its parent; or an image folder); default: the demo dataset")
		kind := fs.String("kind", "voc", "dataset kind: voc or folder")
		trainSplit := fs.String("train-split", "train", "training split (a name in ImageSets/Segmentation, or a .txt path)")
		valSplit := fs.String("val-split", "val", "validation split (empty: no evaluation)")
		maskDir := fs.String("mask-dir", "", "VOC mask folder (default SegmentationClass; SegmentationClassAug for SBD)")
		classes := fs.Int("classes", 0, "number of classes (default 21 for VOC; the folder count for image folders)")
		epochs := fs.Int("epochs", 0, "epochs (default 12 on the demo data, 30 otherwise; with --resume: the new total)")
		batch := fs.Int("batch", 8, "batch size")
		evalBatch := fs.Int("eval-batch", 0, "evaluation batch size (default 1 for segmentation, --batch for classifiers)")
		crop := fs.String("crop", "", "training crop HxW (default 128x128 on the demo data, 512x512 for VOC, 224x224 for classifiers)")
		width := fs.Float64("width", 0, "channel-width multiplier 1/k (default 0.125 on the demo data, else 1)")
		unpool := fs.String("unpool", "", "vgg16-segnet decoder: upsample or indices")
		dropout := fs.Float64("dropout", 0, "classifier dropout rate (default 0.5)")
		optName := fs.String("optimizer", "sgd", "optimizer: sgd, adam or adamw")
		lr := fs.Float64("lr", 0.01, "base learning rate")
		momentum := fs.Float64("momentum", 0.9, "SGD momentum")
		nesterov := fs.Bool("nesterov", false, "SGD with Nesterov momentum")
		wd := fs.Float64("weight-decay", -1, "weight decay (default 1e-4 segmentation, 5e-4 classifiers; adamw 0.01)")
		noDecayBN := fs.Bool("no-decay-bias-bn", false, "exempt biases and batch-norm parameters from weight decay")
		schedule := fs.String("schedule", "", "lr schedule: constant, step, poly or cosine (default poly for segmentation, step for classifiers)")
		warmup := fs.Float64("warmup", 0, "linear warm-up length in epochs")
		stepEvery := fs.Float64("step-every", 0, "step schedule: decay every this many epochs (default a third of the run)")
		gamma := fs.Float64("gamma", 0, "step schedule: decay factor (default 0.1)")
		lossKind := fs.String("loss", "ce", "loss: ce, dice or ce+dice")
		diceWeight := fs.Float64("dice-weight", 0, "ce+dice: weight of the dice term (default 1)")
		classWeights := fs.String("class-weights", "", "comma-separated per-class cross-entropy weights")
		smoothing := fs.Float64("label-smoothing", 0, "cross-entropy label smoothing")
		workers := fs.Int("workers", 2, "data loading goroutines")
		seed := fs.Uint64("seed", 1, "seed for initialisation, shuffling, augmentation and dropout")
		out := fs.String("out", "", "run directory (default runs/<model>-<time>)")
		resume := fs.String("resume", "", "resume the run in this directory")
		saveEvery := fs.Int("save-every", 0, "also save last.safetensors every N steps")
		keep := fs.Int("keep", 3, "numbered checkpoints to keep")
		evalEvery := fs.Int("eval-every", 1, "evaluate every N epochs (and always after the last)")
		pretrained := fs.String("pretrained", "", "initialise from a safetensors file with torchvision names")
		skipBad := fs.Bool("skip-bad", false, "skip unreadable or invalid samples (listing them) instead of stopping")
		augment := fs.String("augment", "full", "training augmentation: none, flip or full")
		accum := fs.Int("accum", 1, "micro-batches per step whose gradients are summed (gradient accumulation)")
		dist := fs.Bool("distributed", false, "data-parallel training over MPI (start with mpirun; needs a -tags mpi build)")
		syncBN := fs.Bool("sync-bn", false, "with --distributed: batch norm statistics over the whole global batch")
		if err := parseFlags(e, c, fs, args); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *accum < 1 {
			return usagef("--accum %d: want >= 1", *accum)
		}
		if *syncBN && !*dist {
			return usagef("--sync-bn applies to --distributed training only")
		}
		// trainWith trains as one rank of comm.
		trainWith := func(e *env, comm distributed.Comm) error {
			opts := train.Options{Log: e.stderr, Terminal: train.IsTerminal(e.stderr), Comm: comm}

			if *resume != "" {
				for name := range set {
					switch name {
					case "resume", "epochs", "workers", "accum", "distributed":
					default:
						return usagef("--%s cannot be changed when resuming (the run's config.json holds it); only --epochs, --workers and --accum can", name)
					}
				}
				ov := train.Overrides{Epochs: *epochs, Workers: *workers}
				if set["accum"] {
					ov.Accum = *accum
				}
				tr, err := train.Resume(*resume, ov, opts)
				if err != nil {
					return err
				}
				return runTraining(ctx, e, tr)
			}

			info, err := graphs.Lookup(*model)
			if err != nil {
				return usagef("%v", err)
			}
			demo := *root == ""
			cfg := train.Config{
				Model: graphs.Config{Arch: info.Name, Classes: *classes, Mult: *width, Unpool: *unpool, Dropout: *dropout},
				Data: train.DataConfig{Root: *root, Kind: *kind, TrainSplit: *trainSplit, ValSplit: *valSplit,
					MaskDir: *maskDir, Augment: *augment, Workers: *workers, SkipBad: *skipBad},
				Epochs: *epochs, Batch: *batch, EvalBatch: *evalBatch, Accum: *accum, SyncBN: *syncBN,
				NoDecayBiasBN: *noDecayBN, WarmupEpochs: *warmup,
				Seed: *seed, Out: *out, SaveEvery: *saveEvery, Keep: *keep, EvalEvery: *evalEvery, Pretrained: *pretrained,
			}
			if demo {
				if *kind != "voc" || info.Task != label.Segmentation {
					return usagef("the demo dataset is VOC segmentation: give --data for %s", info.Name)
				}
				dir := demoDir()
				written, err := ensureDemo(comm, dir)
				if err != nil {
					return err
				}
				if written {
					fmt.Fprintf(e.stderr, "wrote the demo dataset to %s\n", dir)
				} else {
					fmt.Fprintf(e.stderr, "using the demo dataset in %s\n", dir)
				}
				cfg.Data.Root = dir
				if cfg.Model.Mult == 0 {
					cfg.Model.Mult = 0.125
				}
				if cfg.Epochs == 0 {
					cfg.Epochs = 12
				}
				if *crop == "" {
					*crop = "128x128"
				}
			}
			if cfg.Epochs == 0 {
				cfg.Epochs = 30
			}
			if *crop == "" {
				*crop = "512x512"
				if info.Task == label.Classification {
					*crop = "224x224"
				}
			}
			if cfg.CropH, cfg.CropW, err = parseHW(*crop); err != nil {
				return usagef("--crop: %v", err)
			}
			if cfg.Out == "" {
				cfg.Out = filepath.Join("runs", info.Name+"-"+time.Now().Format("20060102-150405"))
				if cfg.Out, err = fromRoot(comm, cfg.Out); err != nil {
					return err
				}
			}

			// Optimizer and schedule: the usual recipe of the task unless told otherwise.
			seg := info.Task == label.Segmentation
			oc := train.DefaultOptimizerConfig(*optName)
			if *optName == "sgd" {
				oc.Momentum, oc.Nesterov = *momentum, *nesterov
			} else if set["momentum"] || set["nesterov"] {
				return usagef("--momentum and --nesterov apply to --optimizer sgd only")
			}
			switch {
			case *wd >= 0:
				oc.WeightDecay = *wd
			case *optName == "sgd" && seg:
				oc.WeightDecay = 1e-4
			case *optName == "sgd":
				oc.WeightDecay = 5e-4
			}
			cfg.Optimizer = oc
			sk := *schedule
			if sk == "" {
				sk = "poly"
				if !seg {
					sk = "step"
				}
			}
			cfg.Schedule = train.Schedule{Kind: sk, BaseLR: *lr}
			if sk == "step" {
				// Converted to steps by the trainer, which knows the epoch length.
				every := *stepEvery
				if every == 0 {
					every = max(float64(cfg.Epochs)/3, 1)
				}
				cfg.StepEveryEpochs = every
				cfg.Schedule.Gamma = *gamma
			} else if set["step-every"] || set["gamma"] {
				return usagef("--step-every and --gamma apply to --schedule step only")
			}
			cfg.Loss = losses.Spec{Kind: losses.Kind(*lossKind), LabelSmoothing: *smoothing, DiceWeight: *diceWeight}
			if *classWeights != "" {
				for _, f := range strings.Split(*classWeights, ",") {
					v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
					if err != nil {
						return usagef("--class-weights: %q is not a number", f)
					}
					cfg.Loss.ClassWeights = append(cfg.Loss.ClassWeights, float32(v))
				}
			}
			if cfg.Data.SkipBad {
				if err := excludeBad(ctx, e, &cfg); err != nil {
					return err
				}
			}
			tr, err := train.New(cfg, opts)
			if err != nil {
				return err
			}
			return runTraining(ctx, e, tr)
		}
		if *dist {
			return runDistributed(e, trainWith)
		}
		return trainWith(e, distributed.Single())
	}
	return c
}

func runTraining(ctx context.Context, e *env, tr *train.Trainer) error {
	start := time.Now()
	res, err := tr.Run(ctx)
	if err != nil {
		return err
	}
	cfg := tr.Config()
	fmt.Fprintf(e.stdout, "trained %s for %d epochs (%d steps) in %s; run directory %s\n",
		cfg.Model.Arch, res.Epochs, res.Steps, time.Since(start).Round(time.Second), res.Dir)
	if ev := res.LastEval; ev != nil {
		name, v := ev.Metric()
		if ev.Task == label.Segmentation {
			fmt.Fprintf(e.stdout, "validation mIoU %.4f (pixel accuracy %.4f, mean accuracy %.4f) on %d images\n",
				v, ev.Seg.PixelAcc, ev.Seg.MeanAcc, ev.Images)
		} else {
			fmt.Fprintf(e.stdout, "validation %s %.4f (top-5 %.4f) on %d images\n", name, v, ev.Cls.Top5, ev.Images)
		}
	}
	if res.BestEpoch > 0 {
		fmt.Fprintf(e.stdout, "best %s %.4f at epoch %d: %s\n", res.BestMetric, res.BestValue, res.BestEpoch,
			filepath.Join(res.Dir, "best.safetensors"))
	}
	return nil
}

// excludeBad checks the training split and leaves its bad samples out of the run.
func excludeBad(ctx context.Context, e *env, cfg *train.Config) error {
	ds, err := openDataset(cfg.Data.Root, cfg.Data.Kind, cfg.Data.TrainSplit, cfg.Data.MaskDir, cfg.Model.Classes)
	if err != nil {
		return err
	}
	rep, err := data.Check(ctx, ds, data.CheckOptions{Workers: cfg.Data.Workers})
	if err != nil {
		return err
	}
	bad := rep.BadIDs()
	if len(bad) == 0 {
		return nil
	}
	fmt.Fprintf(e.stderr, "--skip-bad: leaving out %d bad samples of %s:\n", len(bad), cfg.Data.TrainSplit)
	for _, p := range rep.Problems {
		fmt.Fprintf(e.stderr, "  %s: %v\n", p.ID, p.Err)
	}
	cfg.Data.Exclude = bad
	return nil
}

// Expected dataset layouts, printed when a dataset cannot be opened.
const (
	vocLayout = `expected a PASCAL VOC layout:
	ROOT/JPEGImages/<id>.jpg
	ROOT/SegmentationClass/<id>.png   (8-bit palette PNG, pixel value = class index, 255 = ignore)
	ROOT/ImageSets/Segmentation/{train,val,trainval}.txt
with ROOT the VOC2012 folder, VOCdevkit, or the folder holding VOCdevkit`
	folderLayout = `expected an image-folder layout:
	ROOT/train/<class>/*.{jpg,jpeg,png}
	ROOT/val/<class>/*.{jpg,jpeg,png}`
)

func openDataset(root, kind, split, maskDir string, classes int) (ds data.Dataset, err error) {
	layout := vocLayout
	switch kind {
	case "voc":
		ds, err = data.OpenVOC(root, split, data.VOCOptions{MaskDir: maskDir, Classes: classes})
	case "folder":
		layout = folderLayout
		ds, err = data.OpenFolder(root, split)
	default:
		return nil, usagef("unknown --kind %q (valid: voc, folder)", kind)
	}
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\n%s", err, layout)
	}
	return ds, err
}
