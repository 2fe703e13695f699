package data

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/vggo/vggo/label"
)

// Config configures a Loader. Its zero value is usable except for BatchSize.
type Config struct {
	BatchSize int
	Workers   int    // goroutines decoding and transforming samples (default 1)
	Prefetch  int    // batches prepared ahead of the consumer (default 2)
	Seed      uint64 // shuffling and augmentation seed
	Shuffle   bool   // a seeded permutation per epoch
	DropLast  bool   // drop the last incomplete batch (training); keep it (evaluation)
	// Shards > 1 splits every batch between the processes of a data-parallel run: the
	// loader yields only part Shard (0-based) of each batch of BatchSize, the samples
	// [Shard*BatchSize/Shards, (Shard+1)*BatchSize/Shards), so that the shards together
	// are the batches of an unsharded loader with the same seed, augmentation included.
	// BatchSize must be a multiple of Shards, and DropLast set.
	Shard, Shards int
}

// Batch is one batch of network inputs. Its slices are owned by the Loader and
// reused: a batch is valid until the consumer asks for the next one (copy what
// must outlive the loop body).
type Batch struct {
	Epoch, Step int
	N, H, W     int
	// Images holds N*3*H*W floats, NCHW, normalised.
	Images []float32
	// Labels holds N*H*W class indices (segmentation; 255 = ignore, padding
	// included) or N (classification).
	Labels []int
	// IDs, Indices: each sample's id and index in the dataset.
	IDs     []string
	Indices []int
	// Sizes: each sample's original {H, W}. In segmentation evaluation the sample
	// occupies the top-left Sizes[i] of its H x W plane; crop scores back to it.
	Sizes [][2]int
}

// Loader streams batches from a Dataset: Workers goroutines load and transform
// samples in parallel, at most Prefetch batches ahead of the consumer, and batches
// come out in order. Randomness comes from (Seed, epoch, sample index) only, so the
// batches are bit-identical for any Workers and Prefetch, and an epoch can start at
// any step. A Loader may serve several epochs, one after another or concurrently.
type Loader struct {
	ds  Dataset
	tf  *transformer
	cfg Config

	mu   sync.Mutex
	free []*batchBuf // buffers kept between epochs
}

// NewLoader checks the configuration and the transform against the dataset.
func NewLoader(ds Dataset, tf Transform, cfg Config) (*Loader, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, errors.New("data: loader: the dataset is empty")
	}
	if cfg.BatchSize < 1 {
		return nil, fmt.Errorf("data: loader: batch size %d: want >= 1", cfg.BatchSize)
	}
	if cfg.Workers < 0 || cfg.Prefetch < 0 {
		return nil, fmt.Errorf("data: loader: workers %d, prefetch %d: want >= 0 (0 means the default)", cfg.Workers, cfg.Prefetch)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 2
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	switch {
	case cfg.Shards < 0 || cfg.Shard < 0 || cfg.Shard >= cfg.Shards:
		return nil, fmt.Errorf("data: loader: shard %d of %d: want 0 <= shard < shards", cfg.Shard, cfg.Shards)
	case cfg.Shards > 1 && cfg.BatchSize%cfg.Shards != 0:
		return nil, fmt.Errorf("data: loader: batch size %d is not a multiple of the %d shards", cfg.BatchSize, cfg.Shards)
	case cfg.Shards > 1 && !cfg.DropLast:
		return nil, fmt.Errorf("data: loader: sharded batches need DropLast (an incomplete last batch cannot be split evenly)")
	}
	if cfg.DropLast && ds.Len() < cfg.BatchSize {
		return nil, fmt.Errorf("data: loader: %d samples make no full batch of %d (lower the batch size, or keep the last batch)", ds.Len(), cfg.BatchSize)
	}
	t, err := newTransformer(tf, ds.Task())
	if err != nil {
		return nil, err
	}
	return &Loader{ds: ds, tf: t, cfg: cfg}, nil
}

// Dataset returns the loader's dataset.
func (l *Loader) Dataset() Dataset { return l.ds }

// StepsPerEpoch returns the number of batches in an epoch.
func (l *Loader) StepsPerEpoch() int {
	n, b := l.ds.Len(), l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Order returns the dataset indices of an epoch in the order they are batched.
func (l *Loader) Order(epoch int) []int {
	if !l.cfg.Shuffle {
		p := make([]int, l.ds.Len())
		for i := range p {
			p[i] = i
		}
		return p
	}
	r := newRNG(l.cfg.Seed, streamShuffle, epoch, 0)
	return r.permutation(l.ds.Len())
}

// batchBuf is a Batch with the per-slot state of its preparation.
type batchBuf struct {
	Batch
	examples []Example // segmentation evaluation: decoded, awaiting the batch size
	errs     []error
}

// pending is one batch being prepared.
type pending struct {
	buf       *batchBuf
	remaining atomic.Int32
	done      chan struct{}
	err       error
}

type job struct {
	p    *pending
	slot int
}

// Epoch returns the batches of an epoch from step startStep on. Iteration stops
// at the end of the epoch, when the loop body breaks, or when ctx is done (the
// last pair is then (nil, context.Cause(ctx))); every goroutine has exited when
// the range statement ends. A batch with a bad sample is reported as (nil, err),
// err holding a *SampleError; the loop may go on to the next batch or stop.
func (l *Loader) Epoch(ctx context.Context, epoch, startStep int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		steps := l.StepsPerEpoch()
		if startStep < 0 || startStep > steps {
			yield(nil, fmt.Errorf("data: loader: start step %d: want 0..%d", startStep, steps))
			return
		}
		if startStep == steps {
			return
		}
		order := l.Order(epoch)
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		nbuf := l.cfg.Prefetch + 1
		free := make(chan *batchBuf, nbuf)
		for _, b := range l.takeBuffers(nbuf) {
			free <- b
		}
		jobs := make(chan job, l.cfg.BatchSize/l.cfg.Shards*nbuf)
		ready := make(chan *pending, nbuf)
		var dispatched atomic.Bool // the producer dispatched every batch
		defer func() {
			cancel()
			wg.Wait() // no goroutine outlives the iteration
			close(free)
			var bufs []*batchBuf
			for b := range free {
				bufs = append(bufs, b)
			}
			for p := range ready {
				bufs = append(bufs, p.buf)
			}
			l.putBuffers(bufs)
		}()

		wg.Go(func() { // producer: dispatches batches in order, as buffers free up
			defer close(ready)
			defer close(jobs)
			for s := startStep; s < steps; s++ {
				var buf *batchBuf
				select {
				case buf = <-free:
				case <-ctx.Done():
					return
				}
				p := l.start(buf, order, epoch, s)
				select {
				case ready <- p:
				case <-ctx.Done():
					return
				}
				for slot := range p.buf.N {
					select {
					case jobs <- job{p, slot}:
					case <-ctx.Done():
						return
					}
				}
			}
			dispatched.Store(true) // before the deferred close(ready)
		})
		for range l.cfg.Workers {
			wg.Go(func() {
				var s scratch
				for {
					select {
					case j, ok := <-jobs:
						if !ok {
							return
						}
						l.work(j, epoch, &s)
					case <-ctx.Done():
						return
					}
				}
			})
		}
		for {
			if ctx.Err() != nil { // cancellation wins over ready batches
				yield(nil, context.Cause(ctx))
				return
			}
			var p *pending
			select {
			case p = <-ready:
			case <-ctx.Done():
				yield(nil, context.Cause(ctx))
				return
			}
			if p == nil { // the producer closed ready: every batch was yielded, or ctx is done
				if !dispatched.Load() {
					yield(nil, context.Cause(ctx))
				}
				return
			}
			select {
			case <-p.done:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				yield(nil, context.Cause(ctx))
				return
			}
			var more bool
			if p.err != nil {
				more = yield(nil, p.err)
			} else {
				more = yield(&p.buf.Batch, nil)
			}
			free <- p.buf
			if !more {
				return
			}
		}
	}
}

// start lays out a batch's buffer for step s.
func (l *Loader) start(buf *batchBuf, order []int, epoch, s int) *pending {
	b := l.cfg.BatchSize
	idx := order[s*b : min((s+1)*b, len(order))]
	if k := l.cfg.Shards; k > 1 {
		per := b / k
		idx = idx[l.cfg.Shard*per : (l.cfg.Shard+1)*per]
	}
	n := len(idx)
	buf.Epoch, buf.Step, buf.N = epoch, s, n
	buf.Indices = append(buf.Indices[:0], idx...)
	buf.IDs = resize(buf.IDs, n)
	buf.Sizes = resize(buf.Sizes, n)
	buf.errs = resize(buf.errs, n)
	clear(buf.errs)
	if h, w, ok := l.tf.fixedSize(); ok {
		buf.H, buf.W = h, w
		buf.Images = resize(buf.Images, n*3*h*w)
		if l.ds.Task() == label.Classification {
			buf.Labels = resize(buf.Labels, n)
		} else {
			buf.Labels = resize(buf.Labels, n*h*w)
		}
	} else {
		buf.examples = resize(buf.examples, n)
	}
	p := &pending{buf: buf, done: make(chan struct{})}
	p.remaining.Store(int32(n))
	return p
}

// work loads and transforms one sample. The worker that completes a batch
// finishes it.
func (l *Loader) work(j job, epoch int, s *scratch) {
	buf := j.p.buf
	i := buf.Indices[j.slot]
	ex, err := l.ds.Load(i)
	if err == nil {
		buf.IDs[j.slot] = ex.ID
		buf.Sizes[j.slot] = [2]int{ex.Image.Rect.Dy(), ex.Image.Rect.Dx()}
		if h, w, ok := l.tf.fixedSize(); ok {
			r := newRNG(l.cfg.Seed, streamSample, epoch, i)
			img := buf.Images[j.slot*3*h*w : (j.slot+1)*3*h*w]
			var lab []int
			if l.ds.Task() == label.Classification {
				lab = buf.Labels[j.slot : j.slot+1]
			} else {
				lab = buf.Labels[j.slot*h*w : (j.slot+1)*h*w]
			}
			l.tf.apply(&ex, &r, img, lab, h, w, s)
		} else {
			buf.examples[j.slot] = ex
		}
	} else {
		buf.IDs[j.slot] = l.ds.Sample(i).ID
		buf.errs[j.slot] = err
	}
	if j.p.remaining.Add(-1) == 0 {
		l.finish(j.p, s)
		close(j.p.done)
	}
}

// finish reports the first bad sample (in batch order, so the error does not
// depend on scheduling) or, in segmentation evaluation, pads every sample to the
// batch's largest size rounded up to the stride.
func (l *Loader) finish(p *pending, s *scratch) {
	buf := p.buf
	for _, err := range buf.errs {
		if err != nil {
			p.err = err
			clear(buf.examples)
			return
		}
	}
	if _, _, ok := l.tf.fixedSize(); ok {
		return
	}
	h, w := 0, 0
	for _, sz := range buf.Sizes[:buf.N] {
		h, w = max(h, sz[0]), max(w, sz[1])
	}
	st := l.tf.Stride
	h, w = (h+st-1)/st*st, (w+st-1)/st*st
	buf.H, buf.W = h, w
	buf.Images = resize(buf.Images, buf.N*3*h*w)
	buf.Labels = resize(buf.Labels, buf.N*h*w)
	for k := range buf.N {
		l.tf.apply(&buf.examples[k], nil, buf.Images[k*3*h*w:(k+1)*3*h*w], buf.Labels[k*h*w:(k+1)*h*w], h, w, s)
	}
	clear(buf.examples) // let the decoded images go
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func (l *Loader) takeBuffers(n int) []*batchBuf {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*batchBuf, n)
	for i := range out {
		if k := len(l.free); k > 0 {
			out[i], l.free = l.free[k-1], l.free[:k-1]
		} else {
			out[i] = new(batchBuf)
		}
	}
	return out
}

func (l *Loader) putBuffers(bufs []*batchBuf) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, bufs...)
}
