package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// DropoutState identifies one dropout layer's masks. The mask of a training step is a pure
// function of (Seed, Layer, Step, element index) — a counter-based hash, no RNG stream and
// no clock — so a run is reproducible and a resumed run draws the masks it would have
// drawn. The caller advances Step before each training step; the op reads Seed, Layer,
// Step and Sample every time it runs.
//
// Sample is the index, within the step's whole batch, of the first sample this run sees:
// element i of the run's input is element Sample·(elements per sample)+i of the step's
// mask. A step split into micro-batches (gradient accumulation) or between the ranks of a
// data-parallel run therefore draws the masks of the unsplit batch.
type DropoutState struct {
	Seed   uint64
	Layer  uint64
	Step   uint64
	Sample uint64
}

// Dropout zeroes each element of x with probability p and scales the kept ones by
// 1/(1-p) (inverted dropout, as PyTorch's nn.Dropout), in training mode. In eval mode, or
// with p == 0, it returns x itself (no op is added). p must be in [0, 1). The gradient
// applies the same mask and scale as the forward pass of the same run.
func Dropout(x *G.Node, p float64, st *DropoutState, training bool) (*G.Node, error) {
	if err := checkF32Node("dropout", "x", x, -1); err != nil {
		return nil, err
	}
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("ops: dropout: p = %v, want 0 <= p < 1", p)
	}
	if !training || p == 0 {
		return x, nil
	}
	if st == nil {
		return nil, fmt.Errorf("ops: dropout: nil *DropoutState in training mode (create one per layer)")
	}
	op := &dropoutOp{shape: x.Shape(), p: p, st: st, layer: st.Layer, mask: newDropoutMask(p)}
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops: dropout: %w", err)
	}
	return y, nil
}

// dropoutMask holds what forward and backward share: the key of the run's mask and the
// threshold and scale derived from p.
type dropoutMask struct {
	key    uint64  // from (seed, layer, step) of the forward run
	off    int     // index in the step's mask of the run's first element
	thresh uint64  // keep element i when hash(key, i) >> 11 < thresh (53-bit uniform)
	scale  float32 // 1/(1-p)
}

func newDropoutMask(p float64) dropoutMask {
	return dropoutMask{thresh: uint64((1 - p) * (1 << 53)), scale: float32(1 / (1 - p))}
}

// mix64 is SplitMix64's finaliser, a bijection on uint64 with full avalanche.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

const golden64 = 0x9e3779b97f4a7c15

// dropoutKey mixes seed, layer and step into the key of one step's mask.
func dropoutKey(seed, layer, step uint64) uint64 {
	k := mix64(seed + golden64)
	k = mix64(k ^ (layer + 0x3c6ef372fe94f82a))   // 2·golden64 mod 2⁶⁴
	return mix64(k ^ (step + 0xdaa66d2c7ddf743f)) // 3·golden64 mod 2⁶⁴
}

// apply writes dst[i] = src[i]*scale where element off+i is kept, else 0.
func (m *dropoutMask) apply(dst, src []float32, off int) {
	key, thresh, scale := m.key, m.thresh, m.scale
	dst = dst[:len(src)]
	for i, v := range src {
		var keep uint32 // branch-free select: a random branch mispredicts often
		if mix64(key+uint64(off+i)*golden64)>>11 < thresh {
			keep = 1
		}
		dst[i] = math.Float32frombits(math.Float32bits(v*scale) & -keep)
	}
}

type dropoutOp struct {
	opHooks
	shape tensor.Shape
	p     float64
	st    *DropoutState
	layer uint64      // st.Layer when built, for the hash
	mask  dropoutMask // thresh and scale from p; key and off set by every run
	out   ownedBuf
}

func (op *dropoutOp) Arity() int { return 1 }
func (op *dropoutOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(len(op.shape)), anyTensor(len(op.shape)))
}
func (op *dropoutOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.shape.Clone(), nil }
func (op *dropoutOp) ReturnsPtr() bool                               { return false }
func (op *dropoutOp) CallsExtern() bool                              { return false }
func (op *dropoutOp) OverwritesInput() int                           { return -1 }

// WriteHash covers p, the layer id and the state's identity: two dropouts never merge
// unless they share the state (and therefore the mask).
func (op *dropoutOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", op.String(), op.st) }
func (op *dropoutOp) Hashcode() uint32      { return hashOp(op) }
func (op *dropoutOp) String() string {
	return fmt.Sprintf("Dropout{p=%v,layer=%d}%v", op.p, op.layer, op.shape)
}

func (op *dropoutOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindOther, op.start(), inputs)
	if err := checkArity("dropout", inputs, 1); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "dropout", "x", op.shape)
	if err != nil {
		return nil, err
	}
	op.mask.key = dropoutKey(op.st.Seed, op.st.Layer, op.st.Step)
	op.mask.off = int(op.st.Sample) * (op.shape.TotalSize() / op.shape[0])
	t, y := op.out.get(&op.opHooks, op.shape)
	parallelBlocks(len(x), func(lo, hi int) { op.mask.apply(y[lo:hi], x[lo:hi], op.mask.off+lo) })
	return t, nil
}

func (op *dropoutOp) DiffWRT(int) []bool { return []bool{true} }

func (op *dropoutOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	// output is an input of the gradient op only to order it after the forward pass,
	// whose mask key it reads.
	return unaryGrad("dropout", inputs, &dropoutDiffOp{fwd: op}, output, grad)
}

// dropoutDiffOp computes dx = dy ⊙ mask / (1-p) with the mask of the forward run.
// Inputs: y (ordering only), dy.
type dropoutDiffOp struct {
	opHooks
	fwd *dropoutOp
	out ownedBuf
}

func (op *dropoutDiffOp) Arity() int { return 2 }
func (op *dropoutDiffOp) Type() hm.Type {
	t := anyTensor(len(op.fwd.shape))
	return hm.NewFnType(t, t, t)
}
func (op *dropoutDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.fwd.shape.Clone(), nil
}
func (op *dropoutDiffOp) ReturnsPtr() bool      { return false }
func (op *dropoutDiffOp) CallsExtern() bool     { return false }
func (op *dropoutDiffOp) OverwritesInput() int  { return -1 }
func (op *dropoutDiffOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s@%p", op.String(), op.fwd.st) }
func (op *dropoutDiffOp) Hashcode() uint32      { return hashOp(op) }
func (op *dropoutDiffOp) String() string {
	return fmt.Sprintf("DropoutDiff{p=%v,layer=%d}%v", op.fwd.p, op.fwd.layer, op.fwd.shape)
}

func (op *dropoutDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindOther, op.start(), inputs)
	if err := checkArity("dropout gradient", inputs, 2); err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[1], "dropout gradient", "dy", op.fwd.shape)
	if err != nil {
		return nil, err
	}
	t, dx := op.out.get(&op.opHooks, op.fwd.shape)
	m := op.fwd.mask
	parallelBlocks(len(dy), func(lo, hi int) { m.apply(dx[lo:hi], dy[lo:hi], m.off+lo) })
	return t, nil
}
