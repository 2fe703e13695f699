package data

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/vggo/vggo/label"
)

// CheckOptions configures Check. The zero value checks with one goroutine.
type CheckOptions struct {
	Workers  int                   // goroutines reading samples (default 1)
	Progress func(done, total int) // called after each sample, from one goroutine
}

// Problem is one bad file of one sample.
type Problem struct {
	Index int    // sample index in the dataset
	ID    string // sample id
	Path  string // the file at fault
	Err   error  // a *SampleError
}

// Report is what Check found: every problem and a summary of the good samples.
type Report struct {
	Task       label.Task
	Samples    int       // samples read
	Problems   []Problem // in sample order; a sample may have several
	ClassNames []string
	// MinH, MinW, MaxH, MaxW: the range of image heights and widths.
	MinH, MinW, MaxH, MaxW int
	// Pixels[c]: pixels of class c (segmentation); Ignored: pixels labelled 255.
	Pixels  []int64
	Ignored int64
	// Images[c]: images of class c (classification).
	Images []int
}

// OK reports whether every sample is good.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// BadIDs returns the ids of the bad samples, once each, in sample order (give them
// to Exclude to train without them).
func (r *Report) BadIDs() []string {
	var ids []string
	seen := map[string]bool{}
	for _, p := range r.Problems {
		if !seen[p.ID] {
			seen[p.ID] = true
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// Check reads every sample of ds and reports every problem, not only the first.
// Its error is only for a cancelled ctx; bad samples are in the Report.
func Check(ctx context.Context, ds Dataset, opts CheckOptions) (*Report, error) {
	n := ds.Len()
	names := ds.ClassNames()
	r := &Report{Task: ds.Task(), Samples: n, ClassNames: names}
	if r.Task == label.Segmentation {
		r.Pixels = make([]int64, len(names))
	} else {
		r.Images = make([]int, len(names))
	}
	type result struct {
		i    int
		h, w int
		hist *[256]int64
		errs []error
	}
	workers := max(1, opts.Workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make(chan int)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(idx)
		for i := range n {
			select {
			case idx <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range workers {
		wg.Go(func() {
			for i := range idx {
				res := result{i: i}
				ex, err := ds.Load(i)
				if err != nil {
					res.errs = splitErrors(err)
				} else {
					res.h, res.w = ex.Image.Rect.Dy(), ex.Image.Rect.Dx()
					if ex.Mask != nil {
						res.hist = histogram(ex.Mask)
					} else {
						res.hist = new([256]int64)
						if ex.Label >= 0 && ex.Label < 256 {
							res.hist[ex.Label]++
						}
					}
				}
				select {
				case results <- res:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	done := 0
	for res := range results {
		done++
		if opts.Progress != nil {
			opts.Progress(done, n)
		}
		if res.errs != nil {
			s := ds.Sample(res.i)
			for _, err := range res.errs {
				p := Problem{Index: res.i, ID: s.ID, Path: s.ImagePath, Err: err}
				var se *SampleError
				if errors.As(err, &se) {
					p.Path = se.Path
				}
				r.Problems = append(r.Problems, p)
			}
			continue
		}
		if r.MaxH == 0 {
			r.MinH, r.MinW = res.h, res.w
		}
		r.MinH, r.MinW = min(r.MinH, res.h), min(r.MinW, res.w)
		r.MaxH, r.MaxW = max(r.MaxH, res.h), max(r.MaxW, res.w)
		for v, c := range res.hist {
			switch {
			case c == 0:
			case v == label.Ignore && r.Task == label.Segmentation:
				r.Ignored += c
			case v < len(names) && r.Task == label.Segmentation:
				r.Pixels[v] += c
			case v < len(names):
				r.Images[v] += int(c)
			}
		}
	}
	if done < n {
		wg.Wait()
		return nil, fmt.Errorf("data: check stopped after %d of %d samples: %w", done, n, context.Cause(ctx))
	}
	sort.SliceStable(r.Problems, func(a, b int) bool { return r.Problems[a].Index < r.Problems[b].Index })
	return r, nil
}

// splitErrors undoes errors.Join.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func histogram(m *image.Gray) *[256]int64 {
	var h [256]int64
	for y := 0; y < m.Rect.Dy(); y++ {
		for _, v := range m.Pix[y*m.Stride : y*m.Stride+m.Rect.Dx()] {
			h[v]++
		}
	}
	return &h
}

// Print writes the report for people: the problems, then the summary.
func (r *Report) Print(w io.Writer) error {
	var b strings.Builder
	bad := len(r.BadIDs())
	fmt.Fprintf(&b, "%d samples (%s), %d good, %d bad\n", r.Samples, r.Task, r.Samples-bad, bad)
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\nproblems (%d):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s: %v\n", p.ID, p.Err)
		}
	}
	if r.Samples > bad {
		fmt.Fprintf(&b, "\nimage sizes (HxW): %dx%d .. %dx%d\n", r.MinH, r.MinW, r.MaxH, r.MaxW)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.Task == label.Segmentation {
		total := r.Ignored
		for _, c := range r.Pixels {
			total += c
		}
		fmt.Fprintf(&b, "\npixels per class:\n")
		fmt.Fprintf(tw, "class\tname\tpixels\tshare\t\n")
		for c, n := range r.Pixels {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t\n", c, r.ClassNames[c], n, percent(n, total))
		}
		fmt.Fprintf(tw, "255\tignore\t%d\t%s\t\n", r.Ignored, percent(r.Ignored, total))
	} else {
		var total int64
		for _, c := range r.Images {
			total += int64(c)
		}
		fmt.Fprintf(&b, "\nimages per class:\n")
		fmt.Fprintf(tw, "class\tname\timages\tshare\t\n")
		for c, n := range r.Images {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t\n", c, r.ClassNames[c], n, percent(int64(n), total))
		}
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func percent(n, total int64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(total))
}
