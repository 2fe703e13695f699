package train

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/losses"
)

// ErrNonFinite is returned when the loss, the gradients or the weights become NaN or
// infinite.
var ErrNonFinite = errors.New("non-finite values")

// stepper is the training step of one rank: its session, the optimizer and schedule,
// and the bucket that sums micro-batches and ranks.
type stepper struct {
	sess   *Session
	params []Param
	optim  Optimizer
	sched  Schedule
	bucket *gradBucket // when a step has several micro-batches (ranks × Accum > 1)
	micro  int         // samples per forward pass: Batch / (ranks × Accum)
	accum  int
	// gradNorm is the gradients' norm of the current step, when clipping measured it.
	gradNorm float64
	// allreduceSeconds is this rank's time in the gradient allreduce.
	allreduceSeconds float64
}

// trainStep runs one optimizer step on b (this rank's share of the global batch): a
// forward and backward pass per micro-batch, the gradients summed over micro-batches
// and ranks, the BeforeUpdate hooks, one optimizer step. It returns the loss: the mean
// of the micro-batches' mean losses over every rank.
func (t *Trainer) trainStep(b *data.Batch) (float64, error) {
	s := &t.step
	if b.N != s.micro*s.accum {
		return 0, fmt.Errorf("train: step %d: batch of %d samples, want %d", t.state.GlobalStep, b.N, s.micro*s.accum)
	}
	if s.bucket != nil {
		s.bucket.saveStats()
	}
	var loss float64
	for k := range s.accum {
		l, err := t.microStep(b, k)
		if err != nil {
			return 0, err
		}
		loss += l
	}
	loss, err := t.reduce(loss)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("train: %w: the loss became %v", ErrNonFinite, loss)
	}
	if err := t.fire(BeforeUpdate, &Event{Loss: loss}); err != nil {
		return 0, err
	}
	if err := s.optim.Step(s.params, s.sched.LR(t.state.GlobalStep)); err != nil {
		return 0, err
	}
	return loss, nil
}

// microStep runs the forward and backward pass of micro-batch k of b and adds its
// gradients (and running statistics) to the bucket. It returns the micro-batch's loss.
func (t *Trainer) microStep(b *data.Batch, k int) (float64, error) {
	s := &t.step
	in, lab := s.sess.Input(), s.sess.Labels()
	copy(in, b.Images[k*len(in):])
	copy(lab, b.Labels[k*len(lab):])
	first := uint64(t.comm.Rank() * (t.cfg.Batch / t.comm.Size())) // this rank's first sample
	t.model.SetStep(uint64(t.state.GlobalStep))
	t.model.SetSample(first + uint64(k*s.micro))
	if err := s.sess.Run(); err != nil {
		if le, ok := losses.AsLabelError(err); ok {
			return 0, fmt.Errorf("train: batch %v: %v", b.IDs[k*s.micro:(k+1)*s.micro], le)
		}
		return 0, fmt.Errorf("train: step %d: %w", t.state.GlobalStep, err)
	}
	terms, err := s.sess.Loss()
	if err != nil {
		return 0, err
	}
	if err := s.sess.Gradients(s.params); err != nil {
		return 0, err
	}
	if s.bucket != nil {
		s.bucket.addGrads(k, s.params)
		s.bucket.addStats(k)
	}
	return terms.Total, nil
}

// reduce sums the loss over ranks and, with several micro-batches, the gradients and
// running statistics (one allreduce of one fused buffer, as Horovod's), then takes the
// mean over micro-batches and ranks.
func (t *Trainer) reduce(loss float64) (float64, error) {
	s := &t.step
	ranks := t.comm.Size()
	parts := s.accum * ranks
	if ranks > 1 {
		l := []float64{loss}
		if err := t.comm.AllreduceF64(l); err != nil {
			return 0, fmt.Errorf("train: step %d: sum the loss over ranks: %w", t.state.GlobalStep, err)
		}
		loss = l[0]
	}
	if parts > 1 {
		loss /= float64(parts)
	}
	if s.bucket == nil || math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, nil // (with a bucket, the running statistics are still the step's start)
	}
	if ranks > 1 {
		start := time.Now()
		if err := t.comm.AllreduceF32(s.bucket.buf); err != nil {
			return 0, fmt.Errorf("train: step %d: allreduce gradients: %w", t.state.GlobalStep, err)
		}
		s.allreduceSeconds += time.Since(start).Seconds()
	}
	s.bucket.finish(parts)
	for i := range s.params {
		s.params[i].Grad = s.bucket.grads[i]
	}
	return loss, nil
}

// GradNorm is the global L2 norm of the gradients in params, summed in float64 in
// parameter order (the same on any number of threads).
func GradNorm(params []Param) float64 {
	var sum float64
	for _, p := range params {
		var s float64
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
		sum += s
	}
	return math.Sqrt(sum)
}

// ClipGradNorm scales the gradients in place so that their global L2 norm is at most
// max, as torch.nn.utils.clip_grad_norm_ does (coefficient max/(norm+1e-6), when below
// 1). It returns the norm before clipping.
func ClipGradNorm(params []Param, max float64) float64 {
	norm := GradNorm(params)
	coef := max / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	for _, p := range params {
		for i := range p.Grad {
			p.Grad[i] *= c
		}
	}
	return norm
}
