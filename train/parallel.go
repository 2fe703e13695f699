package train

import (
	"fmt"
	"math"
	"os"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/distributed"
	"github.com/vggo/vggo/graphs"
	"github.com/vggo/vggo/label"
	"github.com/vggo/vggo/metrics"
)

// A training step over a global batch of B samples runs on W ranks (data-parallel
// processes, Options.Comm) and, within each, as K micro-batches (Config.Accum) of
// B/(W·K) samples each. Rank r reads samples [r·B/W, (r+1)·B/W) of every global batch
// (data.Config.Shard), so the batches and their augmentation are those of a one-process
// run with the same seed. Gradients are summed over the K micro-batches into one flat
// buffer, summed over the ranks with one allreduce of that buffer, and scaled by
// 1/(W·K); every rank then takes the same optimizer step. The loss is the mean of the
// micro-batches' mean losses (as PyTorch's DistributedDataParallel computes it).
//
// Without --sync-bn, each micro-batch normalises with its own statistics, and the
// running statistics move once per step, by the mean of the W·K micro-batches' updates:
// every micro-batch updates them from the values at the start of the step, and the
// results are averaged (over K in each rank, then over the ranks in the same allreduce).
// So W ranks and K = 1, and one process with K = W, compute the same bits: the ranks'
// buffers are summed in rank order (distributed.Comm), as the micro-batches' are, and
// the kernels' results do not depend on the number of threads of either.

// gradBucket is the flat buffer of one step: every trainable parameter's gradient,
// then (when several micro-batches are averaged) every batch-norm running statistic.
type gradBucket struct {
	buf      []float32
	grads    [][]float32 // views of buf, in the order of Trainer.params
	running  []float32   // view of buf: the running statistics, in model order
	snapshot []float32   // running statistics at the start of the step
	stats    [][]float32 // the model's running-statistic slices
}

func newGradBucket(m *graphs.Model, params []Param) *gradBucket {
	n := 0
	for _, p := range params {
		n += len(p.Data)
	}
	var stats [][]float32
	ns := 0
	for _, p := range m.Params {
		if !p.Trainable {
			stats = append(stats, p.Data)
			ns += len(p.Data)
		}
	}
	b := &gradBucket{buf: make([]float32, n+ns), snapshot: make([]float32, ns), stats: stats}
	off := 0
	for _, p := range params {
		b.grads = append(b.grads, b.buf[off:off+len(p.Data)])
		off += len(p.Data)
	}
	b.running = b.buf[off:]
	return b
}

// saveStats records the running statistics at the start of a step.
func (b *gradBucket) saveStats() {
	off := 0
	for _, s := range b.stats {
		off += copy(b.snapshot[off:], s)
	}
}

// addStats adds the running statistics left by micro-batch k to the bucket (k = 0
// copies) and restores the start-of-step values for the next micro-batch.
func (b *gradBucket) addStats(k int) {
	off := 0
	for _, s := range b.stats {
		dst := b.running[off : off+len(s)]
		if k == 0 {
			copy(dst, s)
		} else {
			for i, v := range s {
				dst[i] += v
			}
		}
		copy(s, b.snapshot[off:off+len(s)])
		off += len(s)
	}
}

// addGrads adds micro-batch k's gradients (k = 0 copies).
func (b *gradBucket) addGrads(k int, params []Param) {
	for i, p := range params {
		g, dst := p.Grad, b.grads[i]
		if k == 0 {
			copy(dst, g)
			continue
		}
		for j, v := range g {
			dst[j] += v
		}
	}
}

// finish scales the summed gradients and statistics by 1/parts and installs the
// statistics in the model.
func (b *gradBucket) finish(parts int) {
	scale := float32(1 / float64(parts))
	for i := range b.buf {
		b.buf[i] *= scale
	}
	off := 0
	for _, s := range b.stats {
		off += copy(s, b.running[off:off+len(s)])
	}
}

// collective returns err on the rank that had it and an error on every other rank when
// any rank had one, so that a failure on one rank does not leave the others waiting in
// a collective call.
func (t *Trainer) collective(err error) error {
	failed, aerr := t.anyRank(err != nil)
	switch {
	case err != nil:
		return err
	case aerr != nil:
		return aerr
	case failed:
		return fmt.Errorf("train: another rank failed (rank 0's output has its error)")
	}
	return nil
}

// root reports whether this process writes the run directory (rank 0).
func (t *Trainer) root() bool { return t.comm.Rank() == 0 }

// anyRank reports, on every rank, whether v holds on at least one (a stop request
// seen by one rank stops them all at the same step).
func (t *Trainer) anyRank(v bool) (bool, error) {
	if t.comm.Size() == 1 {
		return v, nil
	}
	f := []float64{0}
	if v {
		f[0] = 1
	}
	if err := t.comm.AllreduceF64(f); err != nil {
		return false, fmt.Errorf("train: agree on stopping: %w", err)
	}
	return f[0] > 0, nil
}

// broadcastModel gives every rank rank 0's parameters and running statistics.
func (t *Trainer) broadcastModel() error {
	if t.comm.Size() == 1 {
		return nil
	}
	for _, p := range t.model.Params {
		if err := distributed.BroadcastF32(t.comm, p.Data, 0); err != nil {
			return fmt.Errorf("train: broadcast %s from rank 0: %w", p.Name, err)
		}
	}
	return nil
}

// loadShared loads a checkpoint on rank 0 and sends its bytes to the other ranks, so
// that every rank resumes from the same state whether or not it sees rank 0's files.
func loadShared(c distributed.Comm, path string) (*checkpoints.File, error) {
	if c.Size() == 1 {
		return checkpoints.Load(path)
	}
	var raw []byte
	var readErr error
	if c.Rank() == 0 {
		if raw, readErr = os.ReadFile(path); readErr != nil {
			readErr = fmt.Errorf("checkpoints: load: %w", readErr)
		}
	}
	got, err := distributed.BroadcastBytes(c, raw, 0)
	if err != nil {
		return nil, fmt.Errorf("train: send %s from rank 0: %w", path, err)
	}
	if readErr != nil {
		return nil, readErr
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("train: rank 0 could not read %s (see its error)", path)
	}
	return checkpoints.LoadBytes(got, path)
}

// reduceEval sums the evaluation counts of every rank (each scored its own share of the
// validation images) and scores the total on every rank.
func reduceEval(c distributed.Comm, res *EvalResult, names []string) error {
	if c.Size() == 1 {
		return nil
	}
	var counts []*int64
	if res.Confusion != nil {
		for i := range res.Confusion.Counts {
			counts = append(counts, &res.Confusion.Counts[i])
		}
	}
	if res.TopK != nil {
		k := res.TopK
		counts = append(counts, &k.Samples, &k.Top1Hits, &k.Top5Hits)
		for i := range k.ClassSamples {
			counts = append(counts, &k.ClassSamples[i], &k.ClassHits[i])
		}
	}
	buf := make([]float64, len(counts)+2)
	for i, p := range counts {
		buf[i] = float64(*p)
	}
	buf[len(counts)] = float64(res.Images)
	buf[len(counts)+1] = res.Seconds
	if err := c.AllreduceF64(buf); err != nil {
		return fmt.Errorf("train: merge evaluation counts: %w", err)
	}
	for i, p := range counts {
		if buf[i] > 1<<53 {
			return fmt.Errorf("train: merge evaluation counts: %g pixels overflow exact float64 sums", buf[i])
		}
		*p = int64(buf[i])
	}
	res.Images = int(buf[len(counts)])
	res.Seconds = buf[len(counts)+1] / float64(c.Size()) // the ranks ran side by side
	if err := reduceLoss(c, res); err != nil {
		return err
	}
	var err error
	if res.Task == label.Segmentation {
		res.Seg, err = res.Confusion.ScoresNamed(names)
	} else {
		res.Cls, err = res.TopK.ScoresNamed(names)
	}
	return err
}

// reduceLoss puts every rank's per-image loss parts at their images' places in the
// whole validation split (rank r scored images r, r+N, ...) and sums them in image
// order, as one process would.
func reduceLoss(c distributed.Comm, res *EvalResult) error {
	all := make([]float64, res.Images)
	for k, v := range res.ImageLoss {
		if i := c.Rank() + k*c.Size(); i < len(all) {
			all[i] = v
		}
	}
	if err := c.AllreduceF64(all); err != nil { // (each place has one non-zero part: exact)
		return fmt.Errorf("train: merge validation losses: %w", err)
	}
	res.ImageLoss, res.Loss = all, meanLoss(all)
	return nil
}

// emptyEval is the result of a rank whose share of the validation split is empty.
func emptyEval(task label.Task, classes int) *EvalResult {
	res := &EvalResult{Task: task}
	if task == label.Segmentation {
		res.Confusion = metrics.NewConfusionMatrix(classes)
	} else {
		res.TopK = metrics.NewTopK(classes)
	}
	return res
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
