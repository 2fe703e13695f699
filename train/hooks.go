package train

import (
	"context"
	"fmt"
	"math"
	"path/filepath"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/report"
)

// Point is where in the loop a hook runs.
type Point int

const (
	AtStart      Point = iota // once, before the first step (also after a resume)
	AtEpochStart              // before each epoch's first step
	BeforeUpdate              // every step, on the final gradients, before the optimizer update
	AfterStep                 // every step, after the update
	AtEpochEnd                // after each epoch's last step: evaluation, records, checkpoints
	AtEnd                     // once, when the run completes (not when it fails)
)

// Hook is one piece of a run that is not the optimizer step itself. Hooks at the same
// Point run in order of Priority (lower first; equal priorities in the order added). A
// hook that returns an error ends the run with it; one that calls Trainer.Stop ends it
// cleanly after the current point.
//
// The run's own hooks, by priority: at AfterStep EMA update (10), progress (20),
// periodic save (30) and stop request (90); at AtEpochEnd progress (0), evaluation (100),
// metrics.jsonl (200), best checkpoint (300), early stopping (350), last and numbered
// checkpoints (400), charts (500) and stop request (900); at BeforeUpdate gradient
// clipping (10).
type Hook struct {
	Name     string
	At       Point
	Priority int
	Run      func(t *Trainer, ev *Event) error
}

// Event is what a hook sees of the current point.
type Event struct {
	Ctx  context.Context
	Loss float64 // BeforeUpdate, AfterStep: the step's loss
	// Record is the epoch's metrics.jsonl record (AtEpochEnd): hooks add to it.
	Record *report.EpochRecord
	// Eval is the epoch's validation result (AtEpochEnd), once the evaluation hook has
	// run and when it evaluated.
	Eval *EvalResult
}

// fire runs the hooks at p in order.
func (t *Trainer) fire(p Point, ev *Event) error {
	for _, h := range t.hooks {
		if h.At != p {
			continue
		}
		if err := h.Run(t, ev); err != nil {
			return err
		}
	}
	return nil
}

// addHooks installs the run's own hooks, then the caller's.
func (t *Trainer) addHooks() {
	t.hooks = append(t.hooks, t.progressHooks()...)
	t.hooks = append(t.hooks,
		Hook{"save-every", AfterStep, 30, (*Trainer).saveEvery},
		Hook{"stop-request", AfterStep, 90, (*Trainer).stopRequest},
		Hook{"evaluate", AtEpochEnd, 100, (*Trainer).evaluateHook},
		Hook{"metrics", AtEpochEnd, 200, (*Trainer).appendRecord},
		Hook{"best", AtEpochEnd, 300, (*Trainer).considerBest},
		Hook{"checkpoint", AtEpochEnd, 400, (*Trainer).endOfEpochSave},
		Hook{"charts", AtEpochEnd, 500, (*Trainer).charts},
		Hook{"stop-request", AtEpochEnd, 900, (*Trainer).stopRequest},
	)
	if t.ema != nil {
		t.hooks = append(t.hooks, Hook{"ema", AfterStep, 10, func(t *Trainer, _ *Event) error { t.ema.Update(); return nil }})
	}
	if t.cfg.ClipGradNorm > 0 {
		t.hooks = append(t.hooks, Hook{"clip-grad-norm", BeforeUpdate, 10, (*Trainer).clipGrads})
	}
	if t.cfg.LogEvery > 0 || t.cfg.TensorBoard {
		t.hooks = append(t.hooks, t.loggingHooks()...)
	}
	if t.cfg.EarlyStop > 0 {
		t.hooks = append(t.hooks, Hook{"early-stop", AtEpochEnd, 350, (*Trainer).earlyStop})
	}
	t.hooks = append(t.hooks, t.opt.Hooks...)
}

func (t *Trainer) saveEvery(_ *Event) error {
	if n := t.cfg.SaveEvery; n > 0 && t.state.GlobalStep%n == 0 {
		return t.saveLast()
	}
	return nil
}

// stopRequest ends the run with a checkpoint when any rank's context is cancelled.
func (t *Trainer) stopRequest(ev *Event) error {
	stop, err := t.anyRank(ev.Ctx.Err() != nil)
	if err != nil || !stop {
		return err
	}
	if err := t.saveLast(); err != nil {
		return err
	}
	s := t.state
	if s.EpochStep > 0 {
		fmt.Fprintf(t.Log(), "interrupted at epoch %d step %d/%d; checkpoint saved to %s\n", s.Epoch+1, s.EpochStep, t.data.steps, t.lastPath())
	} else {
		fmt.Fprintf(t.Log(), "interrupted after epoch %d; checkpoint saved to %s\n", s.Epoch, t.lastPath())
	}
	fmt.Fprintf(t.Log(), "resume with: %s\n", t.resumeCommand())
	return t.interrupted(ev.Ctx)
}

func (t *Trainer) interrupted(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil {
		return fmt.Errorf("train: %w: %w", ErrInterrupted, cause)
	}
	return fmt.Errorf("train: %w on another rank", ErrInterrupted)
}

// resumeCommand is the command line that continues this run.
func (t *Trainer) resumeCommand() string {
	if n := t.comm.Size(); n > 1 {
		return fmt.Sprintf("mpirun -np %d vggo train --distributed --resume %s", n, t.cfg.Out)
	}
	return "vggo train --resume " + t.cfg.Out
}

func (t *Trainer) appendRecord(ev *Event) error {
	if !t.root() {
		return nil
	}
	return report.AppendRecord(filepath.Join(t.cfg.Out, report.MetricsFile), *ev.Record)
}

// endOfEpochSave completes the epoch: last.safetensors, then a numbered checkpoint.
func (t *Trainer) endOfEpochSave(_ *Event) error {
	t.state.Pending = nil
	if err := t.saveLast(); err != nil {
		return err
	}
	if !t.root() {
		return nil
	}
	return t.writeCheckpoint(func(f *checkpoints.File) error {
		_, err := t.ckpt.SaveNumbered(f, t.state.Epoch, t.state.GlobalStep)
		return err
	})
}

func (t *Trainer) charts(ev *Event) error {
	if ev.Eval != nil && t.root() {
		if _, err := report.WriteCharts(t.cfg.Out); err != nil {
			fmt.Fprintf(t.Log(), "warning: charts: %v\n", err)
		}
	}
	return nil
}

// clipGrads clips the gradients' global norm and adds it to the epoch's mean.
func (t *Trainer) clipGrads(_ *Event) error {
	norm := ClipGradNorm(t.step.params, t.cfg.ClipGradNorm)
	t.step.gradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return fmt.Errorf("train: %w: the gradient norm became %v", ErrNonFinite, norm)
	}
	t.state.GradNormSum += norm
	return nil
}

// earlyStop stops the run after EarlyStop evaluations without a new best score.
func (t *Trainer) earlyStop(ev *Event) error {
	if ev.Eval == nil {
		return nil
	}
	if t.state.Best.Epoch == t.state.Epoch {
		t.state.EvalsSinceBest = 0
		return nil
	}
	t.state.EvalsSinceBest++
	if n := t.state.EvalsSinceBest; n >= t.cfg.EarlyStop {
		b := t.state.Best
		t.Stop(fmt.Sprintf("early stop: no better validation %s in %d evaluations (best %.4f at epoch %d)", b.Metric, n, b.Value, b.Epoch))
		t.state.Stopped = t.stop // saved by the checkpoint hook
		fmt.Fprintln(t.Log(), t.stop)
	}
	return nil
}
