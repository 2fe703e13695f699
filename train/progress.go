package train

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/vggo/vggo/label"
	"golang.org/x/term"
)

// progress shows how far a training or evaluation pass is: a progress bar on a terminal,
// plain periodic lines otherwise (logs, CI, pipes).
type progress interface {
	// update reports done of total units, with a status text (loss, speed).
	update(done int, status string)
	// finish ends the display with a closing line.
	finish(line string)
}

// IsTerminal tells whether w is a terminal (progress bars) rather than a file or pipe.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgress(w io.Writer, tty bool, total int, desc string) progress {
	if w == nil {
		w = io.Discard
	}
	if !tty {
		return &lineProgress{w: w, total: total, desc: desc, start: time.Now(), last: time.Now()}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(28),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
	)
	return &barProgress{bar: bar, w: w, desc: desc}
}

type barProgress struct {
	bar  *progressbar.ProgressBar
	w    io.Writer
	desc string
}

func (p *barProgress) update(done int, status string) {
	p.bar.Describe(p.desc + " " + status)
	_ = p.bar.Set(done)
}

func (p *barProgress) finish(line string) {
	_ = p.bar.Finish()
	fmt.Fprintln(p.w, line)
}

// lineProgress prints a line every 30 s; finish prints the pass's summary.
type lineProgress struct {
	w     io.Writer
	total int
	desc  string
	start time.Time
	last  time.Time
	quiet bool // no periodic lines
}

func (p *lineProgress) update(done int, status string) {
	if p.quiet || time.Since(p.last) < 30*time.Second || done >= p.total {
		return
	}
	p.last = time.Now()
	eta := ""
	if done > 0 { // and done < p.total, from the test above
		left := time.Duration(float64(time.Since(p.start)) * float64(p.total-done) / float64(done))
		eta = fmt.Sprintf(" eta %s", left.Round(time.Second))
	}
	fmt.Fprintf(p.w, "%s %d/%d %s%s\n", p.desc, done, p.total, status, eta)
}

func (p *lineProgress) finish(line string) { fmt.Fprintln(p.w, line) }

// progressHooks show the run: a line at the start, a bar (or periodic lines) per epoch,
// a summary line per epoch.
func (t *Trainer) progressHooks() []Hook {
	var bar progress
	var start time.Time
	var startStep int
	return []Hook{
		{"progress", AtStart, 0, func(t *Trainer, _ *Event) error { t.printStart(); return nil }},
		{"progress", AtEpochStart, 0, func(t *Trainer, _ *Event) error {
			bar = newProgress(t.Log(), t.opt.Terminal, t.data.steps, fmt.Sprintf("epoch %d/%d", t.state.Epoch+1, t.cfg.Epochs))
			if lp, ok := bar.(*lineProgress); ok && t.cfg.LogEvery > 0 {
				lp.quiet = true // the step log prints every --log-every steps instead
			}
			start, startStep = time.Now(), t.state.EpochStep
			return nil
		}},
		{"progress", AfterStep, 20, func(t *Trainer, _ *Event) error {
			s := t.state
			rate := float64((s.EpochStep-startStep)*t.cfg.Batch) / time.Since(start).Seconds()
			bar.update(s.EpochStep, fmt.Sprintf("loss %.4f  %.1f img/s", s.LossSum/float64(s.LossCount), rate))
			return nil
		}},
		{"progress", AtEpochEnd, 0, func(t *Trainer, ev *Event) error {
			r := ev.Record
			line := fmt.Sprintf("epoch %d/%d: loss %.4f, %.1f img/s, %.0fs", r.Epoch, t.cfg.Epochs, r.TrainLoss, r.ImagesPerS, r.Seconds)
			if r.GradNorm != nil {
				line += fmt.Sprintf(", grad norm %.3g", *r.GradNorm)
			}
			if r.AllreduceMS > 0 {
				line += fmt.Sprintf(", allreduce %.1f ms/step", r.AllreduceMS)
			}
			if bar == nil { // a resumed run ending an epoch it had finished training
				fmt.Fprintln(t.Log(), line)
				return nil
			}
			bar.finish(line)
			bar = nil
			return nil
		}},
	}
}

func (t *Trainer) printStart() {
	cfg := t.cfg
	k, _ := cfg.Model.Divisor()
	fmt.Fprintf(t.Log(), "training %s (%d classes, width 1/%d) on %s: %d steps of %d per epoch, %d epochs, %s lr %g, %s schedule\n",
		cfg.Model.Arch, cfg.Model.Classes, k, cfg.Data.Root, t.data.steps, cfg.Batch, cfg.Epochs,
		t.step.optim.Name(), cfg.Schedule.BaseLR, t.step.sched.kindName())
	if parts := t.comm.Size() * t.step.accum; parts > 1 {
		sync := ""
		if cfg.SyncBN && t.comm.Size() > 1 {
			sync = ", batch norm synchronised across ranks"
		}
		fmt.Fprintf(t.Log(), "each step: %d rank(s) x %d micro-batch(es) of %d samples, gradients averaged%s\n",
			t.comm.Size(), t.step.accum, t.step.micro, sync)
	}
}

// evaluate scores the model on the validation split with a progress display; in a
// data-parallel run each rank scores its share and the counts are merged. A cancelled
// ctx (on any rank) stops it between batches: it then returns stopped.
func (t *Trainer) evaluate(ctx context.Context) (ev *EvalResult, stopped bool, err error) {
	ev = emptyEval(t.model.Info.Task, len(t.names))
	var bar progress
	if l := t.data.val; l != nil { // a rank's share may be empty when ranks outnumber images
		bar = newProgress(t.Log(), t.opt.Terminal, l.Dataset().Len(), "  eval")
		update := func(done, total int) { bar.update(done, "") }
		if ev, err = Evaluate(ctx, t.eval, l, t.names, update); err != nil && ctx.Err() == nil {
			return nil, false, err
		}
	}
	if stopped, err = t.anyRank(ctx.Err() != nil); stopped || err != nil {
		if bar != nil {
			bar.finish("  eval: stopped")
		}
		return nil, stopped, err
	}
	if err := reduceEval(t.comm, ev, t.names); err != nil {
		return nil, false, err
	}
	if bar == nil {
		return ev, false, nil
	}
	name, v := ev.Metric()
	if ev.Task == label.Segmentation {
		bar.finish(fmt.Sprintf("  eval: mIoU %.4f, pixel acc %.4f, mean acc %.4f on %d images (%.0fs)", v, ev.Seg.PixelAcc, ev.Seg.MeanAcc, ev.Images, ev.Seconds))
	} else {
		bar.finish(fmt.Sprintf("  eval: %s %.4f, top5 %.4f on %d images (%.0fs)", name, v, ev.Cls.Top5, ev.Images, ev.Seconds))
	}
	return ev, false, nil
}
