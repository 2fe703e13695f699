package train

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/losses"
	"github.com/vggo/vggo/metrics"
)

// maxEvalGraphs bounds how many input shapes keep a built evaluation graph (and its
// activation buffers) at once.
const maxEvalGraphs = 4

// Evaluator runs a model in evaluation mode. Sessions are built once per input shape and
// kept (the few most recent), since a graph's shape is fixed and VOC images come in a
// handful of sizes.
type Evaluator struct {
	m     *graphs.Model
	loss  *losses.Spec // also compute this loss (WithLoss)
	cache map[[3]int]*Session
	order [][3]int
}

// NewEvaluator returns an evaluator over m's parameters; it sees their current values
// at every call.
func NewEvaluator(m *graphs.Model) *Evaluator {
	return &Evaluator{m: m, cache: map[[3]int]*Session{}}
}

// WithLoss makes the evaluator compute the loss s too (the validation loss); it returns e.
func (e *Evaluator) WithLoss(s losses.Spec) *Evaluator {
	e.Close()
	e.loss = &s
	return e
}

// Close releases the cached sessions.
func (e *Evaluator) Close() {
	for k, s := range e.cache {
		s.Close()
		delete(e.cache, k)
	}
	e.order = nil
}

// Logits runs the model on n images of h×w (NCHW floats) and returns the logits, valid
// until the next call: (n, classes) or (n, classes, h, w).
func (e *Evaluator) Logits(images []float32, n, h, w int) ([]float32, error) {
	logits, _, err := e.run(images, nil, n, h, w)
	return logits, err
}

// run runs the model on a batch; with labels (and a loss, WithLoss) it returns the loss too.
func (e *Evaluator) run(images []float32, labels []int, n, h, w int) ([]float32, float64, error) {
	key := [3]int{n, h, w}
	s, ok := e.cache[key]
	if !ok {
		opt := SessionOptions{}
		if e.loss != nil {
			opt = SessionOptions{Loss: *e.loss, EvalLoss: true}
		}
		var err error
		if s, err = NewEvalSession(e.m, n, h, w, opt); err != nil {
			return nil, 0, err
		}
		if len(e.order) == maxEvalGraphs {
			e.cache[e.order[0]].Close()
			delete(e.cache, e.order[0])
			e.order = e.order[1:]
		}
		e.cache[key] = s
		e.order = append(e.order, key)
	}
	in := s.Input()
	if len(images) != len(in) {
		return nil, 0, fmt.Errorf("train: evaluate: %d input floats for a %dx3x%dx%d batch", len(images), n, h, w)
	}
	copy(in, images)
	if e.loss != nil {
		copyLabels(s.Labels(), labels)
	}
	if err := s.Run(); err != nil {
		return nil, 0, fmt.Errorf("train: evaluate %dx%dx%d: %w", n, h, w, err)
	}
	if e.loss == nil || labels == nil {
		return s.Logits(), math.NaN(), nil
	}
	terms, err := s.Loss()
	return s.Logits(), terms.Total, err
}

// copyLabels fills a session's labels (labels nil: all ignored).
func copyLabels(dst, src []int) {
	if src == nil {
		for i := range dst {
			dst[i] = label.Ignore
		}
		return
	}
	copy(dst, src)
}

// EvalResult is the outcome of one pass over an evaluation set.
type EvalResult struct {
	Task      label.Task
	Seg       metrics.Scores               // segmentation
	Confusion *metrics.ConfusionMatrix     // segmentation
	Cls       metrics.ClassificationScores // classification
	TopK      *metrics.TopK                // classification
	Images    int
	Seconds   float64
	// Loss is the mean loss per image (NaN unless the evaluator has one): the sum over
	// batches of the batch's loss times its images, in image order, over Images.
	Loss float64
	// ImageLoss holds, at the index of each batch's first image, the batch's loss times
	// its images (the parts of Loss, merged over ranks in image order).
	ImageLoss []float64
}

// Metric is the value used to pick the best checkpoint: mIoU or top-1 accuracy.
func (r *EvalResult) Metric() (name string, value float64) {
	if r.Task == label.Segmentation {
		return "miou", r.Seg.MeanIoU
	}
	return "top1", r.Cls.Top1
}

// Evaluate runs the model over every batch of the loader (an evaluation loader: no
// shuffling, last batch kept) and scores it. Segmentation predictions are scored at each
// image's own size, the padding left out.
func Evaluate(ctx context.Context, e *Evaluator, l *data.Loader, names []string, progress func(done, total int)) (*EvalResult, error) {
	start := time.Now()
	classes := len(names)
	res := &EvalResult{Task: e.m.Info.Task}
	if res.Task == label.Segmentation {
		res.Confusion = metrics.NewConfusionMatrix(classes)
	} else {
		res.TopK = metrics.NewTopK(classes)
	}
	var pred []int
	total := l.Dataset().Len()
	for b, err := range l.Epoch(ctx, 0, 0) {
		if err != nil {
			return nil, err
		}
		logits, loss, err := e.run(b.Images, b.Labels, b.N, b.H, b.W)
		if err != nil {
			return nil, err
		}
		res.ImageLoss = append(res.ImageLoss, make([]float64, b.N)...)
		res.ImageLoss[res.Images] = loss * float64(b.N)
		if res.Task == label.Segmentation {
			plane := b.H * b.W
			if cap(pred) < b.N*plane {
				pred = make([]int, b.N*plane)
			}
			pred = pred[:b.N*plane]
			if err := metrics.ArgmaxNCHW(logits, b.N, classes, b.H, b.W, pred); err != nil {
				return nil, err
			}
			for i := 0; i < b.N; i++ {
				sz := b.Sizes[i]
				if err := res.Confusion.AddRegion(pred[i*plane:], b.W, b.Labels[i*plane:], b.W, sz[0], sz[1]); err != nil {
					return nil, fmt.Errorf("train: evaluate %s: %w", b.IDs[i], err)
				}
			}
		} else if err := res.TopK.Add(logits, b.N, classes, b.Labels); err != nil {
			return nil, fmt.Errorf("train: evaluate: %w", err)
		}
		res.Images += b.N
		if progress != nil {
			progress(res.Images, total)
		}
	}
	var err error
	if res.Task == label.Segmentation {
		res.Seg, err = res.Confusion.ScoresNamed(names)
	} else {
		res.Cls, err = res.TopK.ScoresNamed(names)
	}
	if err != nil {
		return nil, err
	}
	res.Loss = meanLoss(res.ImageLoss)
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// meanLoss sums the per-image parts in order (the same bits however they were computed).
func meanLoss(parts []float64) float64 {
	var sum float64
	for _, v := range parts {
		sum += v
	}
	return sum / float64(len(parts))
}
