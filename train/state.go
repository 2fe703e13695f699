package train

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/report"
)

// MetaProgress is the checkpoint metadata key of the run's progress (Progress as JSON).
const MetaProgress = "vggo.progress"

// Progress is the progress of a run: everything besides the configuration, the weights and
// the optimizer that a resume needs. It is saved in every checkpoint.
type Progress struct {
	Epoch      int `json:"epoch"`       // completed epochs (the epoch to resume at, 0-based)
	EpochStep  int `json:"epoch_step"`  // optimizer steps done in that epoch
	GlobalStep int `json:"global_step"` // optimizer steps done in all
	// The running sums of the current epoch, for its record.
	LossSum     float64 `json:"loss_sum"`
	LossCount   int     `json:"loss_count"`
	GradNormSum float64 `json:"grad_norm_sum,omitempty"`
	Seconds     float64 `json:"seconds"`
	// The running loss since the last --log-every line.
	LogLossSum float64 `json:"log_loss_sum,omitempty"`
	LogSteps   int     `json:"log_steps,omitempty"`
	// Pending is the record of the last epoch while its end (evaluation, metrics.jsonl,
	// best checkpoint) has not completed: a resume finishes it first.
	Pending *report.EpochRecord `json:"pending,omitempty"`
	Best    Best                `json:"best"`
	// EvalsSinceBest counts the evaluations since the best score (early stopping).
	EvalsSinceBest int `json:"evals_since_best,omitempty"`
	// Stopped says why the run stopped before its last epoch (early stopping).
	Stopped string `json:"stopped,omitempty"`
}

// Best is the best validation score so far; Epoch 0 means none yet.
type Best struct {
	Metric string  `json:"metric,omitempty"`
	Value  float64 `json:"value,omitempty"`
	Epoch  int     `json:"epoch,omitempty"`
}

// Beats tells whether v improves on the best (NaN never does).
func (b Best) Beats(v float64) bool { return !math.IsNaN(v) && (b.Epoch == 0 || v > b.Value) }

// resetEpoch clears the running sums at the start of an epoch.
func (s *Progress) resetEpoch() {
	s.EpochStep, s.LossSum, s.LossCount, s.GradNormSum, s.Seconds = 0, 0, 0, 0, 0
}

// checkpointFile gathers everything a resume needs: weights and buffers, optimizer
// state, EMA weights, the configuration and the Progress.
func (t *Trainer) checkpointFile() (*checkpoints.File, error) {
	cfgJSON, err := json.Marshal(t.cfg)
	if err != nil {
		return nil, fmt.Errorf("train: encode config: %w", err)
	}
	stJSON, err := jsonProgress(t)
	if err != nil {
		return nil, err
	}
	f := WeightsFile(t.model, t.names)
	f.Metadata[MetaConfig] = string(cfgJSON)
	f.Metadata[MetaProgress] = stJSON
	f.Metadata[MetaSeed] = strconv.FormatUint(t.cfg.Seed, 10)
	if len(t.cfg.Palette) > 0 {
		pal, err := json.Marshal(t.cfg.Palette)
		if err != nil {
			return nil, fmt.Errorf("train: encode palette: %w", err)
		}
		f.Metadata[MetaPalette] = string(pal)
	}
	st := t.step.optim.State()
	for k, v := range st.Metadata() {
		f.Metadata[k] = v
	}
	keys := st.Keys()
	sort.Strings(keys)
	for _, k := range keys {
		v := st.Tensors[k]
		f.Tensors = append(f.Tensors, checkpoints.Tensor{Name: k, DType: checkpoints.F32, Shape: []int{len(v)}, Data: v})
	}
	if t.ema != nil {
		f.Tensors = append(f.Tensors, t.ema.tensors()...)
	}
	return f, nil
}

func jsonProgress(t *Trainer) (string, error) {
	b, err := json.Marshal(t.state)
	if err != nil {
		return "", fmt.Errorf("train: encode progress: %w", err)
	}
	return string(b), nil
}

// restore loads weights, optimizer state, EMA weights and progress from a checkpoint.
func (t *Trainer) restore(f *checkpoints.File, path string) error {
	if err := LoadWeights(t.model, f, path); err != nil {
		return err
	}
	tensors := map[string][]float32{}
	for _, tn := range f.Tensors {
		tensors[tn.Name] = tn.Data
	}
	st, err := RestoreState(f.Metadata, tensors)
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if err := t.step.optim.SetState(st, t.step.params); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if t.ema != nil {
		if err := t.ema.restore(tensors, path); err != nil {
			return err
		}
	}
	if t.state, err = readProgress(f.Metadata); err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	if t.state.EpochStep > t.data.steps {
		return fmt.Errorf("train: %s: resumes at step %d of an epoch of %d steps: the data or --batch changed since it was saved", path, t.state.EpochStep, t.data.steps)
	}
	return nil
}

// readProgress reads a checkpoint's Progress: the vggo.progress record, or the separate keys of
// checkpoints written before it existed.
func readProgress(md map[string]string) (Progress, error) {
	var s Progress
	if js, ok := md[MetaProgress]; ok {
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			return s, fmt.Errorf("metadata %s: %w", MetaProgress, err)
		}
		return s, nil
	}
	return readLegacyState(md)
}

// Metadata keys of checkpoints written before MetaProgress.
const (
	legacyEpoch      = "vggo.epoch"
	legacyEpochStep  = "vggo.epoch_step"
	legacyGlobalStep = "vggo.global_step"
	legacyBestMetric = "vggo.best_metric"
	legacyBestValue  = "vggo.best_value"
	legacyBestEpoch  = "vggo.best_epoch"
	legacyLossSum    = "vggo.epoch_loss_sum"
	legacyLossCount  = "vggo.epoch_loss_count"
	legacySeconds    = "vggo.epoch_seconds"
)

func readLegacyState(md map[string]string) (Progress, error) {
	var s Progress
	bestEpoch := 0
	ints := map[string]*int{legacyEpoch: &s.Epoch, legacyEpochStep: &s.EpochStep, legacyGlobalStep: &s.GlobalStep,
		legacyLossCount: &s.LossCount, legacyBestEpoch: &bestEpoch}
	for k, p := range ints {
		v, err := strconv.Atoi(md[k])
		if err != nil {
			return s, fmt.Errorf("metadata %s = %q: %v", k, md[k], err)
		}
		*p = v
	}
	floats := map[string]*float64{legacyLossSum: &s.LossSum, legacySeconds: &s.Seconds, legacyBestValue: &s.Best.Value}
	for k, p := range floats {
		v, err := strconv.ParseFloat(md[k], 64)
		if err != nil {
			return s, fmt.Errorf("metadata %s = %q: %v", k, md[k], err)
		}
		*p = v
	}
	if bestEpoch > 0 { // the old format wrote -1 and -Inf for "none yet"
		s.Best.Epoch, s.Best.Metric = bestEpoch, md[legacyBestMetric]
	} else {
		s.Best = Best{}
	}
	return s, nil
}
