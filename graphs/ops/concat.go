package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Concat joins float32 tensors along the channel axis (axis 1), as torch.cat(xs, 1) and the
// UNet skip connections do: every x must have the same rank (at least 2) and the same size
// on every axis but 1. One input is returned unchanged. Each input's gradient is its slice
// of dy.
func Concat(xs ...*G.Node) (*G.Node, error) {
	if len(xs) == 0 {
		return nil, fmt.Errorf("ops: concat: no inputs")
	}
	for i, x := range xs {
		if err := checkF32Node("concat", fmt.Sprintf("input %d", i), x, -1); err != nil {
			return nil, err
		}
	}
	first := xs[0].Shape()
	if len(first) < 2 {
		return nil, fmt.Errorf("ops: concat: input 0 %s has shape %v, want at least 2 dimensions", xs[0].Name(), first)
	}
	if len(xs) == 1 {
		return xs[0], nil
	}
	op := &concatOp{shapes: make([]tensor.Shape, len(xs))}
	total := 0
	for i, x := range xs {
		s := x.Shape()
		bad := len(s) != len(first)
		for d := 0; !bad && d < len(s); d++ {
			bad = d != 1 && s[d] != first[d]
		}
		if bad {
			want := first.Clone()
			if len(s) == len(first) {
				want[1] = s[1]
			}
			return nil, fmt.Errorf("ops: concat: input %d %s has shape %v, want %v (sizes must agree on every axis but 1)", i, x.Name(), s, want)
		}
		op.shapes[i] = s
		total += s[1]
	}
	op.out = first.Clone()
	op.out[1] = total
	y, err := G.ApplyOp(op, xs...)
	if err != nil {
		return nil, fmt.Errorf("ops: concat: %w", err)
	}
	return y, nil
}

type concatOp struct {
	opHooks
	shapes []tensor.Shape
	out    tensor.Shape
	buf    ownedBuf
}

// concatGeometry returns the size of axis 0 and the number of elements per channel.
func concatGeometry(s tensor.Shape) (outer, inner int) {
	inner = 1
	for _, d := range s[2:] {
		inner *= d
	}
	return s[0], inner
}

func (op *concatOp) Arity() int { return len(op.shapes) }
func (op *concatOp) Type() hm.Type {
	ts := make([]hm.Type, len(op.shapes)+1)
	for i := range ts {
		ts[i] = anyTensor(len(op.out))
	}
	return hm.NewFnType(ts...)
}
func (op *concatOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.out.Clone(), nil }
func (op *concatOp) ReturnsPtr() bool                               { return false }
func (op *concatOp) CallsExtern() bool                              { return false }
func (op *concatOp) OverwritesInput() int                           { return -1 }
func (op *concatOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *concatOp) Hashcode() uint32                               { return hashOp(op) }
func (op *concatOp) String() string                                 { return fmt.Sprintf("Concat%v→%v", op.shapes, op.out) }

func (op *concatOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindOther, op.start(), inputs)
	if err := checkArity("concat", inputs, len(op.shapes)); err != nil {
		return nil, err
	}
	xs := make([][]float32, len(inputs))
	for i, v := range inputs {
		var err error
		if xs[i], err = f32Value(v, "concat", fmt.Sprintf("input %d", i), op.shapes[i]); err != nil {
			return nil, err
		}
	}
	t, y := op.buf.get(&op.opHooks, op.out)
	outer, inner := concatGeometry(op.out)
	ctot := op.out[1]
	parallelPlanes(outer, ctot*inner, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			off := n * ctot * inner
			for i, x := range xs {
				m := op.shapes[i][1] * inner
				copy(y[off:off+m], x[n*m:(n+1)*m])
				off += m
			}
		}
	})
	return t, nil
}

func (op *concatOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

func (op *concatOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != len(op.shapes) {
		return nil, fmt.Errorf("ops: concat: got %d inputs, want %d", len(inputs), len(op.shapes))
	}
	grads := make(G.Nodes, len(inputs))
	c0 := 0
	for i, s := range op.shapes {
		var err error
		if grads[i], err = G.ApplyOp(&concatDiffOp{out: op.out, in: s, c0: c0}, grad); err != nil {
			return nil, fmt.Errorf("ops: concat: gradient of input %d: %w", i, err)
		}
		c0 += s[1]
	}
	return grads, nil
}

// concatDiffOp copies channels [c0, c0+in[1]) of dy (shape out) into dx (shape in).
type concatDiffOp struct {
	opHooks
	out, in tensor.Shape
	c0      int
	buf     ownedBuf
}

func (op *concatDiffOp) Arity() int { return 1 }
func (op *concatDiffOp) Type() hm.Type {
	return hm.NewFnType(anyTensor(len(op.out)), anyTensor(len(op.in)))
}
func (op *concatDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.in.Clone(), nil }
func (op *concatDiffOp) ReturnsPtr() bool                               { return false }
func (op *concatDiffOp) CallsExtern() bool                              { return false }
func (op *concatDiffOp) OverwritesInput() int                           { return -1 }
func (op *concatDiffOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *concatDiffOp) Hashcode() uint32                               { return hashOp(op) }
func (op *concatDiffOp) String() string {
	return fmt.Sprintf("ConcatDiff{c0=%d}%v→%v", op.c0, op.out, op.in)
}

func (op *concatDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindOther, op.start(), inputs)
	if err := checkArity("concat gradient", inputs, 1); err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[0], "concat gradient", "dy", op.out)
	if err != nil {
		return nil, err
	}
	t, dx := op.buf.get(&op.opHooks, op.in)
	outer, inner := concatGeometry(op.out)
	ctot, m := op.out[1]*inner, op.in[1]*inner
	parallelPlanes(outer, m, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			src := n*ctot + op.c0*inner
			copy(dx[n*m:(n+1)*m], dy[src:src+m])
		}
	})
	return t, nil
}
