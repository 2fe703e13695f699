// Package train runs vggo's training: optimizers whose state can be saved, learning-rate
// schedules that are pure functions of the step, evaluation, and the loop that ties the
// model, the data loader, the loss and the checkpoints together with exact resume.
package train

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
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
	// Exclude lists training sample ids left out of the run (--skip-bad fills it from
	// a dataset check, so a resumed run sees the same samples).
	Exclude []string `json:"exclude,omitempty"`
}

// Config is everything that defines a run. It is saved as RUNDIR/config.json and in every
// checkpoint, so that a run can be rebuilt and resumed from either.
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
	EvalBatch int             `json:"eval_batch"`
	CropH     int             `json:"crop_h"`
	CropW     int             `json:"crop_w"`
	Optimizer OptimizerConfig `json:"optimizer"`
	// NoDecayBiasBN exempts biases and batch-norm parameters from weight decay.
	NoDecayBiasBN bool     `json:"no_decay_bias_bn,omitempty"`
	Schedule      Schedule `json:"schedule"` // TotalSteps is filled in from the data
	WarmupEpochs  float64  `json:"warmup_epochs,omitempty"`
	// StepEveryEpochs is the step schedule's decay period in epochs (StepSize is derived).
	StepEveryEpochs float64     `json:"step_every_epochs,omitempty"`
	Loss            losses.Spec `json:"loss"`
	Seed            uint64      `json:"seed"`
	Out             string      `json:"out"`
	SaveEvery       int         `json:"save_every,omitempty"` // also save last every this many steps
	Keep            int         `json:"keep"`                 // numbered checkpoints kept
	EvalEvery       int         `json:"eval_every"`           // epochs
	Pretrained      string      `json:"pretrained,omitempty"`
}

// Validate checks the configuration before anything is read or allocated.
func (c *Config) Validate() error {
	var errs []string
	if c.Epochs < 1 {
		errs = append(errs, fmt.Sprintf("epochs %d < 1", c.Epochs))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Sprintf("batch %d < 1", c.Batch))
	}
	if c.Accum < 0 {
		errs = append(errs, fmt.Sprintf("accum %d < 0", c.Accum))
	}
	if c.Out == "" {
		errs = append(errs, "no output directory (--out)")
	}
	if c.EvalEvery < 0 || c.Keep < 0 || c.SaveEvery < 0 {
		errs = append(errs, "eval-every, keep and save-every must be >= 0")
	}
	if _, err := data.ParseAugment(c.Data.Augment); err != nil {
		errs = append(errs, err.Error())
	}
	switch c.Data.Kind {
	case "voc", "folder":
	default:
		errs = append(errs, fmt.Sprintf("unknown data kind %q (valid: voc, folder)", c.Data.Kind))
	}
	if _, err := NewOptimizer(c.Optimizer); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("train: invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// MarshalIndent is the config.json form.
func (c *Config) MarshalIndent() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("train: encode config: %w", err)
	}
	return append(b, '\n'), nil
}
