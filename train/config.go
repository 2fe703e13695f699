// Package train runs vggo's training: optimizers whose state can be saved, learning-rate
// schedules that are pure functions of the step, evaluation, and a loop with hooks that
// ties the model, the data loader, the loss and the checkpoints together with exact
// resume.
package train

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
)

// DataConfig says where the samples come from.
type DataConfig struct {
	Root       string `json:"root"`
	Kind       string `json:"kind"` // "voc" or "folder"
	TrainSplit string `json:"train_split"`
	ValSplit   string `json:"val_split"`
	MaskDir    string `json:"mask_dir,omitempty"`
	Augment    string `json:"augment"` // none | flip | full
	Workers    int    `json:"workers"`
	SkipBad    bool   `json:"skip_bad,omitempty"`
	// Classes, for image folders, are the class names in label order (nil: the sorted
	// folders of ROOT/train). Evaluating a trained model passes its names.
	Classes []string `json:"-"`
	// Exclude lists training sample ids left out of the run (--skip-bad fills it from
	// a dataset check, so a resumed run sees the same samples).
	Exclude []string `json:"exclude,omitempty"`
}

// Config is everything that defines a run. It is saved as RUNDIR/config.json and in every
// checkpoint, so that a run can be rebuilt and resumed from either. Start from Recipe.
type Config struct {
	Model  graphs.Config `json:"model"`
	Data   DataConfig    `json:"data"`
	Epochs int           `json:"epochs"`
	Batch  int           `json:"batch"` // the global batch of one optimizer step
	// Accum splits every step into this many micro-batches whose gradients are summed
	// (gradient accumulation; 0 or 1: none). With R data-parallel ranks, a forward pass
	// sees Batch/(R·Accum) samples.
	Accum int `json:"accum,omitempty"`
	// SyncBN normalises with the statistics of the whole global batch across ranks.
	SyncBN    bool            `json:"sync_bn,omitempty"`
	EvalBatch int             `json:"eval_batch"` // 0: 1 for segmentation, Batch for classifiers
	CropH     int             `json:"crop_h"`
	CropW     int             `json:"crop_w"`
	Optimizer OptimizerConfig `json:"optimizer"`
	// NoDecayBiasBN exempts biases and batch-norm parameters from weight decay.
	NoDecayBiasBN bool     `json:"no_decay_bias_bn,omitempty"`
	Schedule      Schedule `json:"schedule"` // TotalSteps, StepSize, WarmupSteps are derived
	WarmupEpochs  float64  `json:"warmup_epochs,omitempty"`
	// StepEveryEpochs is the step schedule's decay period in epochs (0: a third of the
	// run, fixed when the run starts).
	StepEveryEpochs float64     `json:"step_every_epochs,omitempty"`
	Loss            losses.Spec `json:"loss"`
	Seed            uint64      `json:"seed"`
	Out             string      `json:"out"`
	SaveEvery       int         `json:"save_every,omitempty"` // also save last every this many steps
	Keep            int         `json:"keep"`                 // numbered checkpoints kept (0: none)
	EvalEvery       int         `json:"eval_every"`           // epochs
	Pretrained      string      `json:"pretrained,omitempty"`
	// EMA, when in (0, 1), keeps an exponential moving average of the weights (and
	// batch-norm buffers) with this decay; evaluation and best.safetensors use it.
	EMA float64 `json:"ema,omitempty"`
	// ClipGradNorm, when positive, scales the gradients so that their global L2 norm is
	// at most this (torch.nn.utils.clip_grad_norm_).
	ClipGradNorm float64 `json:"clip_grad_norm,omitempty"`
	// ClassNames name the classes in label order (nil: the dataset's names). They are
	// stored in every checkpoint, for evaluation, prediction and serving.
	ClassNames []string `json:"class_names,omitempty"`
	// Palette colours the classes' masks, "#rrggbb" in label order (nil: the VOC colormap).
	Palette []string `json:"palette,omitempty"`
	// LogEvery, when positive, logs the training loss, learning rate, gradient norm and
	// speed every this many steps to RUNDIR/steps.jsonl (and as a line, outside a terminal).
	LogEvery int `json:"log_every,omitempty"`
	// TensorBoard writes TensorBoard event files to RUNDIR/tb.
	TensorBoard bool `json:"tensorboard,omitempty"`
	// EarlyStop, when positive, stops the run after this many evaluations without an
	// improvement of the validation score.
	EarlyStop int `json:"early_stop,omitempty"`
}

// Recipe returns the usual configuration for training arch with the given optimizer
// ("sgd", "adam" or "adamw"; "" for the recipe's own): for segmentation SGD momentum 0.9,
// lr 0.01, weight decay 1e-4, poly schedule, 512x512 crops; for classifiers the same with
// weight decay 5e-4, a step schedule (x0.1 every third of the run), 224x224 crops and
// image folders. demo selects the small setting of the built-in demo data: width 1/8,
// 128x128, 12 epochs, and by default AdamW at lr 0.003 (weight decay 0.01) with a cosine
// schedule after a one-epoch warm-up and the gradients' norm clipped to 0.5, with which
// every demo class is learnt, whatever the seed (SGD at lr 0.01 left aeroplane and dog
// below an IoU of 0.1 on this U-Net without batch norm, and without clipping the result
// depended on the seed).
// The data root and the output directory are left to the caller.
func Recipe(arch, optimizer string, demo bool) (Config, error) {
	info, err := graphs.Lookup(arch)
	if err != nil {
		return Config{}, err
	}
	ownOptimizer := optimizer == ""
	if ownOptimizer {
		optimizer = "sgd"
		if demo {
			optimizer = "adamw"
		}
	}
	seg := info.Task == label.Segmentation
	c := Config{
		Model:  graphs.Config{Arch: info.Name, Mult: 1},
		Data:   DataConfig{Kind: "voc", TrainSplit: "train", ValSplit: "val", Augment: "full", Workers: 2},
		Epochs: 30, Batch: 8, CropH: 512, CropW: 512,
		Optimizer: DefaultOptimizerConfig(optimizer),
		Schedule:  Schedule{Kind: "poly", BaseLR: 0.01},
		Loss:      losses.Spec{Kind: losses.KindCE},
		Seed:      1, Keep: 3, EvalEvery: 1,
	}
	if optimizer == "sgd" {
		c.Optimizer.Momentum, c.Optimizer.WeightDecay = 0.9, 1e-4
	}
	if !seg {
		c.Data.Kind, c.CropH, c.CropW, c.Schedule.Kind = "folder", 224, 224, "step"
		if optimizer == "sgd" {
			c.Optimizer.WeightDecay = 5e-4
		}
	}
	if demo {
		c.Model.Mult, c.Epochs, c.CropH, c.CropW = 0.125, 12, 128, 128
		if ownOptimizer {
			c.Schedule, c.WarmupEpochs, c.ClipGradNorm = Schedule{Kind: "cosine", BaseLR: 0.003}, 1, 0.5
		}
	}
	return c, nil
}

// Validate checks the configuration before anything is read or allocated: every number
// finite and in range, every name known, no option set that its setting does not use.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	c.validateCounts(bad)
	c.validateNumbers(bad)
	if _, err := data.ParseAugment(c.Data.Augment); err != nil {
		bad("%v", err)
	}
	switch c.Data.Kind {
	case "voc", "folder":
	default:
		bad("unknown data kind %q (valid: voc, folder)", c.Data.Kind)
	}
	if _, err := NewOptimizer(c.Optimizer); err != nil {
		bad("%v", err)
	}
	if _, _, err := c.Model.Normalize(); err != nil {
		bad("%v", err)
	}
	for i, h := range c.Palette {
		if _, err := data.ParseColor(h); err != nil {
			bad("palette entry %d: %v", i, err)
		}
	}
	if n := c.Model.Classes; n > 0 && len(c.ClassNames) > n {
		bad("%d class names for %d classes", len(c.ClassNames), n)
	}
	if c.Schedule.Kind != "step" && (c.StepEveryEpochs != 0 || c.Schedule.Gamma != 0) {
		bad("step-every and gamma apply to the step schedule only")
	}
	if len(errs) > 0 {
		return fmt.Errorf("train: invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c *Config) validateCounts(bad func(string, ...any)) {
	for _, f := range []struct {
		name   string
		v, min int
	}{
		{"epochs", c.Epochs, 1}, {"batch", c.Batch, 1}, {"accum", c.Accum, 0}, {"eval-batch", c.EvalBatch, 0},
		{"workers", c.Data.Workers, 0}, {"save-every", c.SaveEvery, 0}, {"keep", c.Keep, 0},
		{"eval-every", c.EvalEvery, 0}, {"early-stop", c.EarlyStop, 0}, {"log-every", c.LogEvery, 0}, {"crop height", c.CropH, 1}, {"crop width", c.CropW, 1},
	} {
		if f.v < f.min {
			bad("%s %d: want >= %d", f.name, f.v, f.min)
		}
	}
	if c.Out == "" {
		bad("no output directory (--out)")
	}
}

func (c *Config) validateNumbers(bad func(string, ...any)) {
	o, s := c.Optimizer, c.Schedule
	for _, f := range []struct {
		name     string
		v        float64
		lo, hi   float64
		loOpen   bool
		hiOpen   bool
		skipZero bool // 0 means "not set" and is fine
	}{
		{"lr", s.BaseLR, 0, math.Inf(1), true, true, false},
		{"momentum", o.Momentum, 0, 1, false, true, false},
		{"weight-decay", o.WeightDecay, 0, math.Inf(1), false, true, false},
		{"warmup", c.WarmupEpochs, 0, float64(c.Epochs), false, true, false},
		{"step-every", c.StepEveryEpochs, 0, math.Inf(1), true, true, true},
		{"gamma", s.Gamma, 0, 1, true, false, true},
		{"label-smoothing", c.Loss.LabelSmoothing, 0, 1, false, true, false},
		{"dice-weight", c.Loss.DiceWeight, 0, math.Inf(1), false, true, false},
		{"width", c.Model.Mult, 0, 1, true, false, false},
		{"dropout", c.Model.Dropout, 0, 1, false, true, false},
		{"ema", c.EMA, 0, 1, false, true, false},
		{"clip-grad-norm", c.ClipGradNorm, 0, math.Inf(1), false, true, false},
	} {
		if f.skipZero && f.v == 0 {
			continue
		}
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < f.lo || f.v > f.hi || f.loOpen && f.v == f.lo || f.hiOpen && f.v == f.hi {
			bad("%s %v: want a finite number in %s", f.name, f.v, interval(f.lo, f.hi, f.loOpen, f.hiOpen))
		}
	}
	for i, w := range c.Loss.ClassWeights {
		if w := float64(w); math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			bad("class weight %d is %v: want a finite number >= 0", i, w)
		}
	}
}

func interval(lo, hi float64, loOpen, hiOpen bool) string {
	l, r := "[", "]"
	if loOpen {
		l = "("
	}
	if hiOpen {
		r = ")"
	}
	return fmt.Sprintf("%s%v, %v%s", l, lo, hi, r)
}

// MarshalIndent is the config.json form.
func (c *Config) MarshalIndent() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("train: encode config: %w", err)
	}
	return append(b, '\n'), nil
}
