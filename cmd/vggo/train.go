package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
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

Ctrl-C (or SIGTERM, or SIGHUP when the terminal closes) finishes the current step, saves
last.safetensors and prints the command that resumes the run exactly where it stopped
(same data order, augmentation and dropout); during an evaluation it stops the
evaluation, and the resumed run evaluates again. A second Ctrl-C exits at once;
last.safetensors then still holds at least the last completed epoch.

--ema DECAY keeps an exponential moving average of the weights for evaluation and
best.safetensors; --clip-grad-norm MAX clips the gradients' global L2 norm (logged as
grad_norm in metrics.jsonl); --early-stop N stops after N evaluations without a better
validation score.

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
	vggo train --resume runs/segnet --data /new/place/VOCdevkit     (a moved dataset)
	mpirun -np 2 vggo train --distributed --batch 8 ...     (a vggo built with -tags mpi)

Data-parallel training (--distributed, in a vggo built with -tags mpi and started by
mpirun): every rank reads its share of each global --batch, gradients are averaged with
one allreduce per step, rank 0 writes the run directory and prints; the run is that of
one process with --accum set to the number of ranks. --accum K splits each step into K
micro-batches whose gradients are summed (a large batch in little memory).`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		tf, err := parseTrainFlags(e, c, args)
		if err != nil {
			return err
		}
		if tf.dist {
			return runDistributed(e, func(e *env, comm distributed.Comm) error { return trainAs(ctx, e, tf, comm) })
		}
		return trainAs(ctx, e, tf, distributed.Single())
	}
	return c
}

// trainFlags are the parsed flags of vggo train: the run's configuration and what is
// not part of it.
type trainFlags struct {
	cfg    train.Config
	set    map[string]bool // flags given on the command line
	demo   bool            // no --data: the built-in demo dataset
	resume string
	dist   bool
}

// parseTrainFlags parses args twice: once to learn the model, the optimizer and whether
// there is a dataset, which pick the recipe (train.Recipe), then again with the
// recipe's values as the defaults, so that every flag the user gives replaces one field
// and every other field keeps the recipe's value.
func parseTrainFlags(e *env, c *command, args []string) (*trainFlags, error) {
	first := &trainFlags{}
	first.cfg, _ = train.Recipe("vgg19-unet", "", true)
	// (-h is answered by the second pass, with the defaults of the recipe asked for)
	fs1 := defineTrainFlags(newFlags(c), first)
	if err := fs1.Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, usagef("%v", err)
	}
	optimizer := "" // the recipe's own, unless given
	fs1.Visit(func(f *flag.Flag) {
		if f.Name == "optimizer" {
			optimizer = first.cfg.Optimizer.Kind
		}
	})
	rec, err := train.Recipe(first.cfg.Model.Arch, optimizer, first.cfg.Data.Root == "")
	if err != nil {
		return nil, usagef("%v", err)
	}
	tf := &trainFlags{cfg: rec, set: map[string]bool{}}
	fs := defineTrainFlags(newFlags(c), tf)
	if err := parseFlags(e, c, fs, args); err != nil {
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { tf.set[f.Name] = true })
	tf.demo = tf.cfg.Data.Root == ""
	if tf.cfg.SyncBN && !tf.dist {
		return nil, usagef("--sync-bn applies to --distributed training only")
	}
	if tf.cfg.Accum < 1 {
		return nil, usagef("--accum %d: want >= 1", tf.cfg.Accum)
	}
	return tf, nil
}

// defineTrainFlags defines train's flags on fs, each bound to a field of tf.cfg with
// the field's current value as its default.
func defineTrainFlags(fs *flag.FlagSet, tf *trainFlags) *flag.FlagSet {
	c := &tf.cfg
	fs.StringVar(&c.Model.Arch, "model", c.Model.Arch, "architecture: "+strings.Join(graphs.Names(), ", "))
	fs.StringVar(&c.Data.Root, "data", c.Data.Root, "dataset root (VOC2012, VOCdevkit or its parent; or an image folder); default: the demo dataset")
	fs.StringVar(&c.Data.Kind, "kind", c.Data.Kind, "dataset kind: voc or folder (default: folder for classifiers)")
	fs.StringVar(&c.Data.TrainSplit, "train-split", c.Data.TrainSplit, "training split (a name in ImageSets/Segmentation, or a .txt path)")
	fs.StringVar(&c.Data.ValSplit, "val-split", c.Data.ValSplit, "validation split (empty: no evaluation)")
	fs.StringVar(&c.Data.MaskDir, "mask-dir", c.Data.MaskDir, "VOC mask folder (default SegmentationClass; SegmentationClassAug for SBD)")
	fs.StringVar(&c.Data.Augment, "augment", c.Data.Augment, "training augmentation: none, flip or full")
	fs.IntVar(&c.Data.Workers, "workers", c.Data.Workers, "data loading goroutines")
	fs.BoolVar(&c.Data.SkipBad, "skip-bad", c.Data.SkipBad, "skip unreadable or invalid samples (listing them) instead of stopping")
	fs.IntVar(&c.Model.Classes, "classes", c.Model.Classes, "number of classes (default 21 for VOC; the folder count for image folders)")
	fs.Float64Var(&c.Model.Mult, "width", c.Model.Mult, "channel-width multiplier 1/k (0.125 divides every width by 8)")
	fs.Func("class-names", "a file of class names, one per line in label order (default: classes.txt or labels.txt beside the data, if there)", func(path string) (err error) {
		c.ClassNames, err = data.ReadClassNames(path)
		return err
	})
	fs.Func("palette", "a file of mask colours, one per line in label order: #rrggbb or R G B (default: the VOC colormap)", func(path string) error {
		cols, err := data.ReadPalette(path)
		c.Palette = nil
		for _, col := range cols {
			c.Palette = append(c.Palette, data.HexColor(col))
		}
		return err
	})
	fs.StringVar(&c.Model.Unpool, "unpool", c.Model.Unpool, "vgg16-segnet decoder: upsample or indices")
	fs.Var(dropoutFlag{&c.Model}, "dropout", "classifier dropout rate (default 0.5; 0 disables dropout)")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "epochs (with --resume: the new total)")
	fs.IntVar(&c.Batch, "batch", c.Batch, "batch size (of one optimizer step)")
	fs.IntVar(&c.Batch, "batch-size", c.Batch, "the same as --batch (torchvision's name)")
	fs.IntVar(&c.EvalBatch, "eval-batch", c.EvalBatch, "evaluation batch size (0: 1 for segmentation, --batch for classifiers)")
	fs.Var(hwFlag{&c.CropH, &c.CropW}, "crop", "training crop HxW")
	fs.IntVar(&c.Accum, "accum", max(c.Accum, 1), "micro-batches per step whose gradients are summed (gradient accumulation)")
	defineOptimFlags(fs, c)
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for initialisation, shuffling, augmentation and dropout")
	fs.StringVar(&c.Out, "out", c.Out, "run directory (default runs/<model>-<time>)")
	fs.StringVar(&c.Out, "output-dir", c.Out, "the same as --out (torchvision's name)")
	fs.IntVar(&c.SaveEvery, "save-every", c.SaveEvery, "also save last.safetensors every N steps")
	fs.IntVar(&c.Keep, "keep", c.Keep, "numbered checkpoints to keep (0: none)")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "evaluate every N epochs (and always after the last)")
	fs.StringVar(&c.Pretrained, "pretrained", c.Pretrained, "initialise from a weights file with torchvision names (.safetensors or PyTorch .pth/.pt)")
	fs.Float64Var(&c.EMA, "ema", c.EMA, "keep an exponential moving average of the weights with this decay (e.g. 0.999) for evaluation and best.safetensors")
	fs.Float64Var(&c.ClipGradNorm, "clip-grad-norm", c.ClipGradNorm, "clip the gradients' global L2 norm to this (0: no clipping)")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "log loss, lr, gradient norm and speed every N steps to RUNDIR/steps.jsonl (and as lines outside a terminal)")
	fs.BoolVar(&c.TensorBoard, "tensorboard", c.TensorBoard, "write TensorBoard event files to RUNDIR/tb")
	fs.IntVar(&c.EarlyStop, "early-stop", c.EarlyStop, "stop after N evaluations without a better validation score (0: never)")
	fs.BoolVar(&c.SyncBN, "sync-bn", c.SyncBN, "with --distributed: batch norm statistics over the whole global batch")
	fs.StringVar(&tf.resume, "resume", "", "resume the run in this directory (or from its last.safetensors)")
	fs.BoolVar(&tf.dist, "distributed", false, "data-parallel training over MPI (start with mpirun; needs a -tags mpi build)")
	return fs
}

// defineOptimFlags defines the optimizer, schedule and loss flags.
func defineOptimFlags(fs *flag.FlagSet, c *train.Config) {
	fs.StringVar(&c.Optimizer.Kind, "optimizer", c.Optimizer.Kind, "optimizer: sgd, adam or adamw")
	fs.Float64Var(&c.Schedule.BaseLR, "lr", c.Schedule.BaseLR, "base learning rate")
	fs.Float64Var(&c.Optimizer.Momentum, "momentum", c.Optimizer.Momentum, "SGD momentum")
	fs.BoolVar(&c.Optimizer.Nesterov, "nesterov", c.Optimizer.Nesterov, "SGD with Nesterov momentum")
	fs.Float64Var(&c.Optimizer.WeightDecay, "weight-decay", c.Optimizer.WeightDecay, "weight decay")
	fs.BoolVar(&c.NoDecayBiasBN, "no-decay-bias-bn", c.NoDecayBiasBN, "exempt biases and batch-norm parameters from weight decay")
	fs.StringVar(&c.Schedule.Kind, "schedule", c.Schedule.Kind, "lr schedule: constant, step, poly or cosine")
	fs.Float64Var(&c.WarmupEpochs, "warmup", c.WarmupEpochs, "linear warm-up length in epochs")
	fs.Float64Var(&c.StepEveryEpochs, "step-every", c.StepEveryEpochs, "step schedule: decay every this many epochs (0: a third of the run)")
	fs.Float64Var(&c.Schedule.Gamma, "gamma", c.Schedule.Gamma, "step schedule: decay factor (0: 0.1)")
	fs.Var(lossKindFlag{&c.Loss.Kind}, "loss", "loss: ce, dice or ce+dice")
	fs.Float64Var(&c.Loss.DiceWeight, "dice-weight", c.Loss.DiceWeight, "ce+dice: weight of the dice term (0: 1)")
	fs.Var(floatsFlag{&c.Loss.ClassWeights}, "class-weights", "comma-separated per-class cross-entropy weights")
	fs.Float64Var(&c.Loss.LabelSmoothing, "label-smoothing", c.Loss.LabelSmoothing, "cross-entropy label smoothing")
}

// trainAs trains (or resumes) as one rank of comm.
func trainAs(ctx context.Context, e *env, tf *trainFlags, comm distributed.Comm) error {
	opts := train.Options{Log: e.stderr, Terminal: train.IsTerminal(e.stderr), Comm: comm, SaveLock: e.saving}
	if tf.resume != "" {
		ov, err := resumeOverrides(tf)
		if err != nil {
			return err
		}
		dir, err := resumeDir(tf.resume)
		if err != nil {
			return err
		}
		tr, err := train.Resume(dir, ov, opts)
		if err != nil {
			return err
		}
		return runTraining(ctx, e, tr)
	}
	cfg := tf.cfg
	if err := completeConfig(e, tf, &cfg, comm); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	if tf.demo {
		if err := writeDemo(e, comm, cfg.Data.Root); err != nil {
			return err
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

// resumeDir is the run directory of --resume: the directory, or the one holding the
// given last.safetensors.
func resumeDir(arg string) (string, error) {
	st, err := os.Stat(arg)
	if err != nil || st.IsDir() {
		return arg, nil // (Resume says what is missing)
	}
	if filepath.Base(arg) != checkpoints.LastName {
		return "", usagef("--resume %s: a run resumes from its %s; give the run directory (to start a new run from these weights, use --pretrained)", arg, checkpoints.LastName)
	}
	return filepath.Dir(arg), nil
}

// resumeOverrides refuses flags that a resume cannot change and returns the others.
func resumeOverrides(tf *trainFlags) (train.Overrides, error) {
	var ov train.Overrides
	for name := range tf.set {
		switch name {
		case "resume", "epochs", "workers", "accum", "data", "distributed":
		default:
			return ov, usagef("--%s cannot be changed when resuming (the run's config.json holds it); only --epochs, --workers, --accum and --data can", name)
		}
	}
	if tf.set["epochs"] {
		ov.Epochs = tf.cfg.Epochs
	}
	if tf.set["workers"] {
		ov.Workers = tf.cfg.Data.Workers
	}
	if tf.set["accum"] {
		ov.Accum = tf.cfg.Accum
	}
	if tf.set["data"] {
		abs, err := filepath.Abs(tf.cfg.Data.Root)
		if err != nil {
			return ov, err
		}
		ov.Data = abs
	}
	for _, v := range []int{ov.Epochs, ov.Workers, ov.Accum} {
		if v < 0 {
			return ov, usagef("--epochs, --workers and --accum must be positive")
		}
	}
	return ov, nil
}

// completeConfig fills what the recipe leaves to the command: the data root (absolute,
// so that the run resumes from anywhere; the demo dataset's when there is none) and the
// run directory.
func completeConfig(e *env, tf *trainFlags, cfg *train.Config, comm distributed.Comm) error {
	if !tf.set["warmup"] && cfg.Epochs > 0 && cfg.WarmupEpochs >= float64(cfg.Epochs) {
		// The recipe's warm-up (one epoch of the demo's twelve) would fill a run this
		// short: keep its share of the run instead.
		cfg.WarmupEpochs = float64(cfg.Epochs) / 12
	}
	if tf.demo {
		info, _ := graphs.Lookup(cfg.Model.Arch)
		if cfg.Data.Kind != "voc" || info.Task != label.Segmentation {
			return usagef("the demo dataset is VOC segmentation: give --data for %s", cfg.Model.Arch)
		}
		cfg.Data.Root = demoDir()
	}
	abs, err := filepath.Abs(cfg.Data.Root)
	if err != nil {
		return err
	}
	cfg.Data.Root = abs
	if !tf.set["class-names"] && cfg.Data.Kind == "voc" && !tf.demo {
		for _, name := range data.LabelFiles() {
			path := filepath.Join(abs, name)
			if _, err := os.Stat(path); err != nil {
				continue
			}
			if cfg.ClassNames, err = data.ReadClassNames(path); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "class names from %s: %s\n", path, strings.Join(cfg.ClassNames, ", "))
			break
		}
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join("runs", cfg.Model.Arch+"-"+time.Now().Format("20060102-150405"))
		if cfg.Out, err = fromRoot(comm, cfg.Out); err != nil {
			return err
		}
	}
	return nil
}

func writeDemo(e *env, comm distributed.Comm, dir string) error {
	written, err := ensureDemo(comm, dir)
	if err != nil {
		return err
	}
	if written {
		fmt.Fprintf(e.stderr, "wrote the demo dataset to %s\n", dir)
	} else {
		fmt.Fprintf(e.stderr, "using the demo dataset in %s\n", dir)
	}
	return nil
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
	if res.Stopped != "" {
		fmt.Fprintf(e.stdout, "stopped before epoch %d: %s\n", cfg.Epochs, res.Stopped)
	}
	if ev := res.LastEval; ev != nil {
		name, v := ev.Metric()
		if ev.Task == label.Segmentation {
			fmt.Fprintf(e.stdout, "validation mIoU %.4f (pixel accuracy %.4f, mean accuracy %.4f) on %d images\n",
				v, ev.Seg.PixelAcc, ev.Seg.MeanAcc, ev.Images)
		} else {
			fmt.Fprintf(e.stdout, "validation %s %.4f (top-5 %.4f) on %d images\n", name, v, ev.Cls.Top5, ev.Images)
		}
	}
	if b := res.Best; b.Epoch > 0 {
		fmt.Fprintf(e.stdout, "best %s %.4f at epoch %d: %s\n", b.Metric, b.Value, b.Epoch, filepath.Join(res.Dir, "best.safetensors"))
	}
	return nil
}

// excludeBad checks the training split and leaves its bad samples out of the run.
func excludeBad(ctx context.Context, e *env, cfg *train.Config) error {
	ds, err := train.OpenDataset(cfg.Data, cfg.Data.TrainSplit, cfg.Model.Classes)
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

// openDataset opens a split for eval and data check; an unknown kind is a usage error.
func openDataset(d train.DataConfig, split string, classes int) (data.Dataset, error) {
	if d.Kind != "voc" && d.Kind != "folder" {
		return nil, usagef("unknown --kind %q (valid: voc, folder)", d.Kind)
	}
	return train.OpenDataset(d, split, classes)
}
