package train

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
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
}

func (p *lineProgress) update(done int, status string) {
	if time.Since(p.last) < 30*time.Second || done >= p.total {
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
