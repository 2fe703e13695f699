package ops

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Engine is the tensor engine to run graphs of these ops with
// (G.NewTapeMachine(g, G.WithEngine(ops.Engine{}))): the machine gives it to every value
// it writes. It is Gorgonia's standard engine with Add spread over threads and
// vectorised: Gorgonia sums the gradient contributions of a node that several ops read
// (U-Net's skip outputs: the pooling and the decoder's convolution) with tensor.Add on
// the first contribution, which dispatches on that tensor's engine, and the standard
// engine's Add is a single-threaded scalar loop. Every other method is the standard
// engine's.
type Engine struct{ G.StandardEngine }

// Add computes a + b. Contiguous float32 tensors of one size, written into the reuse
// tensor or (unsafe) into a, are added here; anything else goes to the standard engine.
// Each element is one float32 addition either way: the bits do not depend on the path
// or the number of threads.
func (e Engine) Add(a, b tensor.Tensor, opts ...tensor.FuncOpt) (tensor.Tensor, error) {
	x, okA := flatF32(a)
	y, okB := flatF32(b)
	if okA && okB && len(x) == len(y) && a.Shape().Eq(b.Shape()) {
		fo := tensor.ParseFuncOpts(opts...)
		reuse, incr, safe, as := fo.Reuse(), fo.Incr(), fo.Safe(), fo.As()
		switch {
		case incr != nil || as.Type != nil:
		case reuse != nil:
			if r, ok := flatF32(reuse); ok && len(r) == len(x) && reuse.Shape().Eq(a.Shape()) {
				addF32(r, x, y)
				return reuse, nil
			}
		case !safe:
			addF32(x, x, y)
			return a, nil
		}
	}
	return e.StandardEngine.Add(a, b, opts...)
}

// flatF32 returns t's elements when t is a *tensor.Dense of float32 laid out in order
// (not a view, not transposed).
func flatF32(t tensor.Tensor) ([]float32, bool) {
	d, ok := t.(*tensor.Dense)
	if !ok || d.Dtype() != tensor.Float32 || d.IsMaterializable() || !d.IsNativelyAccessible() {
		return nil, false
	}
	s := d.Float32s()
	return s, len(s) == d.Shape().TotalSize()
}

// addF32 sets dst = a + b (dst may be a or b), in blocks over threads.
func addF32(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	parallelBlocks(len(dst), func(lo, hi int) {
		d, x, y := dst[lo:hi], a[lo:hi], b[lo:hi]
		n := 0
		if haveZ && len(d) >= 16 {
			n = len(d) &^ 15
			addZ(&d[0], &x[0], &y[0], n)
		}
		for i := n; i < len(d); i++ {
			d[i] = x[i] + y[i]
		}
	})
}
