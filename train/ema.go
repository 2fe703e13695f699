package train

import (
	"fmt"

	"github.com/vggo/vggo/checkpoints"
	"github.com/vggo/vggo/graphs"
)

// EMAPrefix starts the checkpoint names of the EMA weights: "ema.<parameter name>".
const EMAPrefix = "ema."

// EMA is an exponential moving average of a model's parameters and batch-norm buffers
// (as timm's ModelEmaV2 and Keras' use_ema): after every optimizer step
// avg = decay·avg + (1-decay)·value, starting from the initial weights. Evaluation and
// the best checkpoint use the average; the checkpoint stores it, so a resumed run
// continues it exactly.
type EMA struct {
	decay float32
	model *graphs.Model
	avg   [][]float32 // per model.Params; the live weights while swapped
	// swapped is set while the average is in the model (Swap).
	swapped bool
}

// NewEMA starts an average of m's current weights.
func NewEMA(m *graphs.Model, decay float64) *EMA {
	e := &EMA{decay: float32(decay), model: m}
	for _, p := range m.Params {
		e.avg = append(e.avg, append([]float32(nil), p.Data...))
	}
	return e
}

// Update moves the average towards the model's current weights.
func (e *EMA) Update() {
	d, r := e.decay, 1-e.decay
	for i, p := range e.model.Params {
		a := e.avg[i]
		for j, v := range p.Data {
			a[j] = d*a[j] + r*v
		}
	}
}

// Swap exchanges the model's weights with the average; calling it again swaps back.
func (e *EMA) Swap() {
	for i, p := range e.model.Params {
		a := e.avg[i]
		for j, v := range p.Data {
			p.Data[j], a[j] = a[j], v
		}
	}
	e.swapped = !e.swapped
}

// With runs fn with the average in the model, then puts the live weights back.
func (e *EMA) With(fn func() error) error {
	e.Swap()
	defer e.Swap()
	return fn()
}

// tensors are the average as checkpoint tensors; none while it is swapped into the
// model (the model's own tensors are then the average: best.safetensors).
func (e *EMA) tensors() []checkpoints.Tensor {
	if e.swapped {
		return nil
	}
	out := make([]checkpoints.Tensor, len(e.avg))
	for i, p := range e.model.Params {
		out[i] = checkpoints.Tensor{Name: EMAPrefix + p.Name, DType: checkpoints.F32, Shape: p.Shape, Data: e.avg[i]}
	}
	return out
}

// restore reads the average from a checkpoint's tensors.
func (e *EMA) restore(tensors map[string][]float32, path string) error {
	for i, p := range e.model.Params {
		v, ok := tensors[EMAPrefix+p.Name]
		if !ok {
			return fmt.Errorf("train: %s has no %s%s: not a checkpoint of a run with --ema", path, EMAPrefix, p.Name)
		}
		if len(v) != len(p.Data) {
			return fmt.Errorf("train: %s: %s%s has %d values, want %d", path, EMAPrefix, p.Name, len(v), len(p.Data))
		}
		copy(e.avg[i], v)
	}
	return nil
}
