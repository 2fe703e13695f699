package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Upsample2D repeats every pixel of an NCHW tensor scale×scale times (nearest neighbour,
// PyTorch's nn.Upsample(scale_factor=scale) and Keras' UpSampling2D): (N, C, H, W) →
// (N, C, scale·H, scale·W). scale 1 returns x unchanged. The gradient sums dy over each
// scale×scale block.
func Upsample2D(x *G.Node, scale int) (*G.Node, error) {
	if err := checkF32Node("upsample2d", "x", x, 4); err != nil {
		return nil, err
	}
	if scale < 1 {
		return nil, fmt.Errorf("ops: upsample2d: scale %d, want >= 1", scale)
	}
	if scale == 1 {
		return x, nil
	}
	s := x.Shape()
	op := &upsampleOp{in: s, out: tensor.Shape{s[0], s[1], s[2] * scale, s[3] * scale}, scale: scale}
	y, err := G.ApplyOp(op, x)
	if err != nil {
		return nil, fmt.Errorf("ops: upsample2d: %w", err)
	}
	return y, nil
}

type upsampleOp struct {
	opHooks
	in, out tensor.Shape
	scale   int
	buf     ownedBuf
}

func (op *upsampleOp) Arity() int                                     { return 1 }
func (op *upsampleOp) Type() hm.Type                                  { return hm.NewFnType(anyTensor(4), anyTensor(4)) }
func (op *upsampleOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.out.Clone(), nil }
func (op *upsampleOp) ReturnsPtr() bool                               { return false }
func (op *upsampleOp) CallsExtern() bool                              { return false }
func (op *upsampleOp) OverwritesInput() int                           { return -1 }
func (op *upsampleOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *upsampleOp) Hashcode() uint32                               { return hashOp(op) }
func (op *upsampleOp) String() string {
	return fmt.Sprintf("Upsample2D{scale=%d}%v", op.scale, op.in)
}

func (op *upsampleOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("upsample2d", inputs, 1); err != nil {
		return nil, err
	}
	x, err := f32Value(inputs[0], "upsample2d", "x", op.in)
	if err != nil {
		return nil, err
	}
	t, y := op.buf.get(&op.opHooks, op.out)
	h, w, s := op.in[2], op.in[3], op.scale
	hw, ws := h*w, w*s
	parallelPlanes(op.in[0]*op.in[1], hw*s*s, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xp, yp := x[p*hw:(p+1)*hw], y[p*hw*s*s:(p+1)*hw*s*s]
			for i := range h {
				src := xp[i*w : (i+1)*w]
				row := yp[i*s*ws : (i*s+1)*ws]
				if s == 2 && haveZ && w >= 16 {
					// Both output rows at once, 16 inputs at a time, then the tail.
					row1 := yp[(i*s+1)*ws : (i*s+2)*ws]
					n16 := w &^ 15
					up2RowsZ(&row[0], &row1[0], &src[0], n16)
					for j := n16; j < w; j++ {
						v := src[j]
						row[2*j], row[2*j+1], row1[2*j], row1[2*j+1] = v, v, v, v
					}
					continue
				}
				if s == 2 {
					for j, v := range src {
						row[2*j] = v
						row[2*j+1] = v
					}
				} else {
					for j, v := range src {
						r := row[j*s : (j+1)*s]
						for k := range r {
							r[k] = v
						}
					}
				}
				for k := 1; k < s; k++ {
					copy(yp[(i*s+k)*ws:(i*s+k+1)*ws], row)
				}
			}
		}
	})
	return t, nil
}

func (op *upsampleOp) DiffWRT(int) []bool { return []bool{true} }

func (op *upsampleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return unaryGrad("upsample2d", inputs, &upsampleDiffOp{in: op.in, out: op.out, scale: op.scale}, grad)
}

// upsampleDiffOp sums dy (shape out) over scale×scale blocks into dx (shape in).
type upsampleDiffOp struct {
	opHooks
	in, out tensor.Shape
	scale   int
	buf     ownedBuf
}

func (op *upsampleDiffOp) Arity() int                                     { return 1 }
func (op *upsampleDiffOp) Type() hm.Type                                  { return hm.NewFnType(anyTensor(4), anyTensor(4)) }
func (op *upsampleDiffOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.in.Clone(), nil }
func (op *upsampleDiffOp) ReturnsPtr() bool                               { return false }
func (op *upsampleDiffOp) CallsExtern() bool                              { return false }
func (op *upsampleDiffOp) OverwritesInput() int                           { return -1 }
func (op *upsampleDiffOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, op.String()) }
func (op *upsampleDiffOp) Hashcode() uint32                               { return hashOp(op) }
func (op *upsampleDiffOp) String() string {
	return fmt.Sprintf("Upsample2DDiff{scale=%d}%v", op.scale, op.in)
}

func (op *upsampleDiffOp) Do(inputs ...G.Value) (G.Value, error) {
	defer op.finish(KindPool, op.start(), inputs)
	if err := checkArity("upsample2d gradient", inputs, 1); err != nil {
		return nil, err
	}
	dy, err := f32Value(inputs[0], "upsample2d gradient", "dy", op.out)
	if err != nil {
		return nil, err
	}
	t, dx := op.buf.get(&op.opHooks, op.in)
	h, w, s := op.in[2], op.in[3], op.scale
	hw, ws := h*w, w*s
	parallelPlanes(op.in[0]*op.in[1], hw*s*s, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			dxp, dyp := dx[p*hw:(p+1)*hw], dy[p*hw*s*s:(p+1)*hw*s*s]
			for i := range h {
				dst := dxp[i*w : (i+1)*w]
				if s == 2 {
					down2Rows(dst, dyp[2*i*ws:(2*i+1)*ws], dyp[(2*i+1)*ws:(2*i+2)*ws])
					continue
				}
				clear(dst)
				for k := range s {
					row := dyp[(i*s+k)*ws : (i*s+k+1)*ws]
					for j := range dst {
						var acc float32
						for _, v := range row[j*s : (j+1)*s] {
							acc += v
						}
						dst[j] += acc
					}
				}
			}
		}
	})
	return t, nil
}

// down2Rows sets dst[j] = (r0[2j] + r0[2j+1]) + (r1[2j] + r1[2j+1]) for j < len(dst):
// the 2x2 block sums of two rows, Upsample2D's gradient at scale 2.
func down2Rows(dst, r0, r1 []float32) {
	w := len(dst)
	_, _ = r0[2*w-1], r1[2*w-1]
	n16 := 0
	if haveZ && w >= 16 {
		n16 = w &^ 15
		down2RowsZ(&dst[0], &r0[0], &r1[0], n16)
	}
	for j := n16; j < w; j++ {
		dst[j] = (r0[2*j] + r0[2*j+1]) + (r1[2*j] + r1[2*j+1])
	}
}
