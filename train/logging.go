package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/report"
	"github.com/vggo/vggo/report/tensorboard"
)

// StepsFile is the per-step log of a run with --log-every: one JSON object per logged
// step.
const StepsFile = "steps.jsonl"

// TensorBoardDir is the directory of a run's TensorBoard event files.
const TensorBoardDir = "tb"

// StepRecord is one line of steps.jsonl: the training loss averaged over the steps since
// the previous line, the learning rate and gradient norm of the logged step, the speed.
type StepRecord struct {
	Epoch      int      `json:"epoch"` // 1-based
	EpochStep  int      `json:"epoch_step"`
	Step       int      `json:"step"` // global step (optimizer steps done)
	Loss       float64  `json:"loss"`
	LR         float64  `json:"lr"`
	GradNorm   *float64 `json:"grad_norm,omitempty"`
	ImagesPerS float64  `json:"images_per_s"`
}

// stepLog is the state of the --log-every and --tensorboard hooks.
type stepLog struct {
	every    int
	since    time.Time
	gradNorm float64 // of the coming step, when it is logged
	tb       *tensorboard.Writer
}

// loggingHooks log every LogEvery steps to steps.jsonl (and the log, outside a terminal)
// and write TensorBoard events.
func (t *Trainer) loggingHooks() []Hook {
	l := &stepLog{every: t.cfg.LogEvery}
	hooks := []Hook{{"logging", AtStart, 5, func(t *Trainer, _ *Event) error { return l.start(t) }}}
	if l.every > 0 {
		hooks = append(hooks,
			Hook{"logging", BeforeUpdate, 20, func(t *Trainer, _ *Event) error { l.beforeUpdate(t); return nil }},
			Hook{"logging", AfterStep, 25, func(t *Trainer, ev *Event) error { return l.afterStep(t, ev.Loss) }})
	}
	if t.cfg.TensorBoard {
		hooks = append(hooks, Hook{"tensorboard", AtEpochEnd, 250, func(t *Trainer, ev *Event) error { return l.epoch(t, ev) }})
	}
	t.closers = append(t.closers, l.close)
	return hooks
}

func (l *stepLog) start(t *Trainer) error {
	l.since = time.Now()
	if !t.cfg.TensorBoard || !t.root() {
		return nil
	}
	var err error
	l.tb, err = tensorboard.NewWriter(filepath.Join(t.cfg.Out, TensorBoardDir))
	return err
}

// beforeUpdate measures the gradient norm of a step that will be logged (clipping,
// which runs first, has measured it already).
func (l *stepLog) beforeUpdate(t *Trainer) {
	if (t.state.GlobalStep+1)%l.every != 0 {
		return
	}
	if t.cfg.ClipGradNorm > 0 {
		l.gradNorm = t.step.gradNorm
	} else {
		l.gradNorm = GradNorm(t.step.params)
	}
}

func (l *stepLog) afterStep(t *Trainer, loss float64) error {
	s := &t.state // (the running sums are saved with the checkpoints: exact on resume)
	s.LogLossSum += loss
	s.LogSteps++
	if s.GlobalStep%l.every != 0 {
		return nil
	}
	rec := StepRecord{Epoch: s.Epoch + 1, EpochStep: s.EpochStep, Step: s.GlobalStep, Loss: s.LogLossSum / float64(s.LogSteps),
		LR: t.step.sched.LR(s.GlobalStep - 1), GradNorm: report.Optional(l.gradNorm),
		ImagesPerS: float64(s.LogSteps*t.cfg.Batch) / time.Since(l.since).Seconds()}
	s.LogLossSum, s.LogSteps, l.since = 0, 0, time.Now()
	if !t.root() {
		return nil
	}
	if !t.opt.Terminal {
		fmt.Fprintf(t.Log(), "epoch %d step %d/%d: loss %.4f, lr %.4g, grad norm %.3g, %.1f img/s\n",
			rec.Epoch, rec.EpochStep, t.data.steps, rec.Loss, rec.LR, l.gradNorm, rec.ImagesPerS)
	}
	if err := appendJSONLine(filepath.Join(t.cfg.Out, StepsFile), rec); err != nil {
		return err
	}
	if l.tb == nil {
		return nil
	}
	vals := []tensorboard.Value{{Tag: "train/loss", Value: rec.Loss}, {Tag: "train/lr", Value: rec.LR}, {Tag: "train/images_per_s", Value: rec.ImagesPerS}}
	if rec.GradNorm != nil {
		vals = append(vals, tensorboard.Value{Tag: "train/grad_norm", Value: *rec.GradNorm})
	}
	if err := l.tb.Scalars(int64(rec.Step), time.Time{}, vals...); err != nil {
		return err
	}
	return l.tb.Flush()
}

// epoch writes the epoch's record as TensorBoard scalars at its last global step: the
// training loss, the validation loss and scores, and each class's IoU (or accuracy).
func (l *stepLog) epoch(t *Trainer, ev *Event) error {
	if l.tb == nil {
		return nil
	}
	r := ev.Record
	vals := []tensorboard.Value{{Tag: "epoch/train_loss", Value: r.TrainLoss}, {Tag: "epoch/lr", Value: r.LR}}
	add := func(tag string, v *float64) {
		if v != nil {
			vals = append(vals, tensorboard.Value{Tag: tag, Value: *v})
		}
	}
	add("epoch/grad_norm", r.GradNorm)
	add("val/loss", r.ValLoss)
	add("val/miou", r.MIoU)
	add("val/pixel_acc", r.PixelAcc)
	add("val/mean_acc", r.MeanAcc)
	add("val/fwiou", r.FWIoU)
	add("val/top1", r.Top1)
	add("val/top5", r.Top5)
	if e := ev.Eval; e != nil && e.Task == label.Segmentation {
		for _, c := range e.Seg.PerClass {
			add("val_iou/"+c.Name, report.Optional(c.IoU))
		}
	} else if e != nil {
		for _, c := range e.Cls.PerClass {
			add("val_acc/"+c.Name, report.Optional(c.Acc))
		}
	}
	if err := l.tb.Scalars(int64(r.Step), time.Time{}, vals...); err != nil {
		return err
	}
	return l.tb.Flush()
}

func (l *stepLog) close() error {
	if l.tb == nil {
		return nil
	}
	err := l.tb.Close()
	l.tb = nil
	return err
}

// appendJSONLine appends v as one line to the file at path.
func appendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("train: %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	return f.Close()
}

// truncateSteps drops the lines of steps.jsonl after step lastStep (written after the
// checkpoint a run resumes from) and a torn last line.
func truncateSteps(path string, lastStep int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var keep [][]byte
	lines := bytes.SplitAfter(b, []byte{'\n'})
	for _, line := range lines {
		var r StepRecord
		if len(line) > 0 && line[len(line)-1] == '\n' && json.Unmarshal(line, &r) == nil && r.Step <= lastStep {
			keep = append(keep, line)
		}
	}
	if len(keep) == len(lines) || len(keep) == len(lines)-1 && len(lines[len(lines)-1]) == 0 {
		return nil
	}
	return report.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(bytes.Join(keep, nil))
		return err
	})
}
