package train

import (
	"fmt"
	"path/filepath"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/report"
)

// saveLast writes last.safetensors (rank 0), unless this exact state is already there.
// Weights, buffers and optimizer state are checked first: non-finite state is never
// saved.
func (t *Trainer) saveLast() error {
	pending := t.state.Pending != nil
	if t.saved.step == t.state.GlobalStep && t.saved.pending == pending {
		return nil
	}
	err := t.writeCheckpoint(func(f *checkpoints.File) error { return t.ckpt.SaveLast(f) })
	if err != nil {
		return err
	}
	t.saved.step, t.saved.pending = t.state.GlobalStep, pending
	t.saved.good = fmt.Sprintf("%s (epoch %d, step %d)", t.lastPath(), t.state.Epoch+boolInt(t.state.EpochStep > 0), t.state.GlobalStep)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeCheckpoint checks the state for non-finite values (on every rank: they hold the
// same state) and hands the checkpoint to save on rank 0.
func (t *Trainer) writeCheckpoint(save func(*checkpoints.File) error) error {
	f, err := t.checkpointFile()
	if err != nil {
		return err
	}
	if err := checkpoints.CheckFinite(f.Tensors); err != nil {
		s := t.state
		return fmt.Errorf("train: %w at epoch %d step %d (global step %d): %v; not saved; %s; try a lower --lr, a warm-up or --clip-grad-norm",
			ErrNonFinite, s.Epoch+boolInt(s.EpochStep > 0), s.EpochStep, s.GlobalStep, err, t.lastGood())
	}
	if !t.root() {
		return nil
	}
	if l := t.opt.SaveLock; l != nil {
		l.Lock()
		defer l.Unlock()
	}
	return save(f)
}

// evaluateHook evaluates the model (its EMA weights, with --ema) when an evaluation is
// due. last.safetensors is saved first, with the epoch's end pending, so that neither a
// failure nor a signal during evaluation loses the epoch; a signal stops the
// evaluation, and a resume evaluates again.
func (t *Trainer) evaluateHook(ev *Event) error {
	e := ev.Record.Epoch
	if !t.data.hasVal || !(t.cfg.EvalEvery > 0 && e%t.cfg.EvalEvery == 0 || e == t.cfg.Epochs) {
		return nil
	}
	if err := t.saveLast(); err != nil {
		return err
	}
	var stopped bool
	run := func() (err error) { ev.Eval, stopped, err = t.evaluate(ev.Ctx); return err }
	var err error
	if t.ema != nil {
		err = t.ema.With(run)
	} else {
		err = run()
	}
	if err != nil {
		return err
	}
	if stopped {
		fmt.Fprintf(t.Log(), "interrupted during the evaluation of epoch %d; %s holds the trained epoch\nresume with: %s (it evaluates epoch %d first)\n",
			e, t.lastPath(), t.resumeCommand(), e)
		return t.interrupted(ev.Ctx)
	}
	fillRecord(ev.Record, ev.Eval)
	return nil
}

func fillRecord(rec *report.EpochRecord, ev *EvalResult) {
	rec.ValLoss = report.Optional(ev.Loss)
	if ev.Task == label.Segmentation {
		rec.MIoU = report.Optional(ev.Seg.MeanIoU)
		rec.PixelAcc = report.Optional(ev.Seg.PixelAcc)
		rec.MeanAcc = report.Optional(ev.Seg.MeanAcc)
		rec.FWIoU = report.Optional(ev.Seg.FWIoU)
		return
	}
	rec.Top1 = report.Optional(ev.Cls.Top1)
	rec.Top5 = report.Optional(ev.Cls.Top5)
}

// considerBest saves best.safetensors (the EMA weights, with --ema) and best.json when
// the evaluation beats the best so far.
func (t *Trainer) considerBest(ev *Event) error {
	if ev.Eval == nil {
		return nil
	}
	name, v := ev.Eval.Metric()
	if !t.state.Best.Beats(v) {
		return nil
	}
	t.state.Best = Best{Metric: name, Value: v, Epoch: t.state.Epoch}
	save := func() error { return t.writeCheckpoint(func(f *checkpoints.File) error { return t.ckpt.SaveBest(f) }) }
	var err error
	if t.ema != nil {
		err = t.ema.With(save)
	} else {
		err = save()
	}
	if err != nil || !t.root() {
		return err
	}
	best := report.Best{Epoch: t.state.Epoch, Step: t.state.GlobalStep, Metric: name, Value: v}
	if ev.Eval.Task == label.Segmentation {
		for _, c := range ev.Eval.Seg.PerClass {
			best.PerClass = append(best.PerClass, report.ClassIoU{Name: c.Name, IoU: report.Optional(c.IoU), Acc: report.Optional(c.Acc)})
		}
	}
	return report.WriteBest(filepath.Join(t.cfg.Out, report.BestFile), best)
}
