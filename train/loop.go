package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/report"
)

// Options are the parts of a run that are not its configuration: where output goes,
// the ranks it runs on and extra hooks.
type Options struct {
	Log      io.Writer // progress bars and messages (default: discard)
	Terminal bool      // draw progress bars (else plain periodic lines)
	// Comm connects the ranks of a data-parallel run (see parallel.go); nil is a world
	// of one. Only rank 0 writes the run directory and logs.
	Comm distributed.Comm
	// Hooks are added to the run's own (see Hook).
	Hooks []Hook
	// SaveLock, when set, is held while a checkpoint is written: a process that must
	// exit at once can take it first, so as not to die in the middle of a save.
	SaveLock sync.Locker
}

// ErrInterrupted is wrapped by Run's error when it stopped on a cancelled context (on
// any rank), after saving the checkpoint.
var ErrInterrupted = errors.New("interrupted")

// Trainer trains one model on one dataset; see New and Resume. Run is the loop: for each
// epoch, for each batch, one optimizer step; everything else (progress, evaluation,
// metrics.jsonl, checkpoints, charts, stopping) is a Hook.
type Trainer struct {
	cfg   Config
	opt   Options
	comm  distributed.Comm
	model *graphs.Model
	names []string
	data  runData
	step  stepper
	eval  *Evaluator
	ema   *EMA                 // with --ema
	ckpt  *checkpoints.Manager // rank 0 only
	lock  *checkpoints.RunLock // rank 0 only
	hooks []Hook
	state Progress
	stop  string // set by Stop: the run ends after the current hook point
	// closers release what hooks opened (Close calls them).
	closers []func() error
	saved   struct {
		step    int  // GlobalStep of the last save of last.safetensors (-1: none)
		pending bool // and whether it was saved with a pending epoch end
		good    string
	}
}

type runData struct {
	train, val *data.Loader
	steps      int  // optimizer steps per epoch
	hasVal     bool // a validation split is configured (val may be nil on some ranks)
}

// Result summarises a finished run.
type Result struct {
	Epochs   int
	Steps    int
	LastEval *EvalResult
	Best     Best
	Stopped  string // why the run stopped before its last epoch, if it did
	Dir      string
}

// Model is the model being trained.
func (t *Trainer) Model() *graphs.Model { return t.model }

// Config is the run's configuration with every default filled in.
func (t *Trainer) Config() Config { return t.cfg }

// Progress is the run's progress.
func (t *Trainer) Progress() Progress { return t.state }

// StepsPerEpoch is the number of optimizer steps in one epoch.
func (t *Trainer) StepsPerEpoch() int { return t.data.steps }

// Stop ends the run cleanly after the hooks of the current point, for reason (printed
// and returned in Result.Stopped).
func (t *Trainer) Stop(reason string) { t.stop = reason }

// Log is where the run's messages go (nothing on ranks other than 0).
func (t *Trainer) Log() io.Writer {
	if t.opt.Log == nil || !t.root() {
		return io.Discard
	}
	return t.opt.Log
}

// Run trains until the configured number of epochs (or a hook stops it). When ctx is
// cancelled (SIGINT, SIGTERM, SIGHUP) it finishes the current step, saves the checkpoint
// and returns an error wrapping ErrInterrupted and context.Cause(ctx).
func (t *Trainer) Run(ctx context.Context) (*Result, error) {
	defer t.Close()
	sort.SliceStable(t.hooks, func(i, j int) bool { return t.hooks[i].Priority < t.hooks[j].Priority })
	ev := &Event{Ctx: ctx}
	if err := t.fire(AtStart, ev); err != nil {
		return nil, err
	}
	res := &Result{Dir: t.cfg.Out}
	if t.state.Pending != nil { // resumed between an epoch's last step and its end
		if err := t.endEpoch(ctx, res); err != nil {
			return nil, err
		}
	}
	for t.state.Epoch < t.cfg.Epochs && t.stop == "" {
		if err := t.runEpoch(ctx); err != nil {
			return nil, err
		}
		if err := t.endEpoch(ctx, res); err != nil {
			return nil, err
		}
	}
	if t.stop != "" && t.state.Stopped == "" {
		t.state.Stopped = t.stop
	}
	res.Epochs, res.Steps, res.Best, res.Stopped = t.state.Epoch, t.state.GlobalStep, t.state.Best, t.state.Stopped
	return res, t.fire(AtEnd, ev)
}

// runEpoch runs the optimizer steps of the current epoch.
func (t *Trainer) runEpoch(ctx context.Context) error {
	// The loader gets its own context so that an interrupt stops training between
	// steps, not in the middle of a batch.
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := t.fire(AtEpochStart, &Event{Ctx: ctx}); err != nil {
		return err
	}
	start, before := time.Now(), t.state.Seconds
	reduceStart, stepStart := t.step.allreduceSeconds, t.state.EpochStep
	for b, err := range t.data.train.Epoch(lctx, t.state.Epoch, t.state.EpochStep) {
		if err != nil {
			return t.badSample(err)
		}
		loss, err := t.trainStep(b)
		if err != nil {
			return t.stepFailed(err)
		}
		s := &t.state
		s.LossSum += loss
		s.LossCount++
		s.GlobalStep++
		s.EpochStep++
		s.Seconds = before + time.Since(start).Seconds()
		if err := t.fire(AfterStep, &Event{Ctx: ctx, Loss: loss}); err != nil {
			return err
		}
	}
	rec := t.epochRecord()
	if n := t.state.EpochStep - stepStart; t.comm.Size() > 1 && n > 0 {
		rec.AllreduceMS = 1000 * (t.step.allreduceSeconds - reduceStart) / float64(n)
	}
	t.state.Epoch++
	t.state.resetEpoch()
	t.state.Pending = &rec
	return nil
}

// epochRecord is the metrics.jsonl record of the epoch's training (evaluation adds to it).
func (t *Trainer) epochRecord() report.EpochRecord {
	s := &t.state
	n := float64(max(s.LossCount, 1))
	rec := report.EpochRecord{Epoch: s.Epoch + 1, Step: s.GlobalStep, LR: t.step.sched.LR(max(s.GlobalStep-1, 0)),
		TrainLoss: s.LossSum / n, Seconds: s.Seconds, ImagesPerS: float64(s.LossCount*t.cfg.Batch) / s.Seconds}
	if t.cfg.ClipGradNorm > 0 {
		rec.GradNorm = report.Optional(s.GradNormSum / n)
	}
	return rec
}

// endEpoch finishes the epoch whose record is pending: the AtEpochEnd hooks evaluate,
// write the record, track the best checkpoint and save.
func (t *Trainer) endEpoch(ctx context.Context, res *Result) error {
	ev := &Event{Ctx: ctx, Record: t.state.Pending}
	if err := t.fire(AtEpochEnd, ev); err != nil {
		return err
	}
	if ev.Eval != nil {
		res.LastEval = ev.Eval
	}
	return nil
}

func (t *Trainer) badSample(err error) error {
	kind := ""
	if t.cfg.Data.Kind == "folder" {
		kind = " --kind folder"
	}
	return fmt.Errorf("train: %w (run 'vggo data check --data %s%s' to list every bad sample, or train with --skip-bad)", err, t.cfg.Data.Root, kind)
}

func (t *Trainer) stepFailed(err error) error {
	if !errors.Is(err, ErrNonFinite) {
		return err
	}
	s := t.state
	return fmt.Errorf("%w at epoch %d step %d (global step %d); stopped without saving; %s; try a lower --lr, a warm-up or --clip-grad-norm",
		err, s.Epoch+1, s.EpochStep+1, s.GlobalStep, t.lastGood())
}

// lastGood names the last checkpoint this run saved or resumed from.
func (t *Trainer) lastGood() string {
	if t.saved.good == "" {
		return "there is no checkpoint of this run yet"
	}
	return "the last good checkpoint is " + t.saved.good
}

func (t *Trainer) lastPath() string { return filepath.Join(t.cfg.Out, checkpoints.LastName) }
