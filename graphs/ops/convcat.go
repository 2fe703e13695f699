package ops

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ConvPart is one input of Conv2DConcat: X, upsampled by Up (1: not at all, 2: x2
// nearest, as Upsample2D) before the concatenation.
type ConvPart struct {
	X  *G.Node
	Up int
}

// Conv2DConcat is Conv2D(Concat(Upsample2D(p.X, p.Up) for each part), w, b, cfg): the
// first convolution of a U-Net decoder level, on the upsampled coarser features and the
// encoder's skip. When the convolution runs as Winograd it is one op whose input
// transform reads every part where it is (an upsampled part at its own half size) and
// whose gradients with respect to the parts are computed straight in each part's shape
// (an upsampled part's summed over its 2x2 blocks as Upsample2D's gradient does): the
// upsampled tensor, the concatenation and their gradients never exist, which saves their
// memory and four passes over them. The values are those of the separate ops to the bit.
// Otherwise (im2col, or a single part not upsampled) it builds the separate ops.
func Conv2DConcat(parts []ConvPart, w, b *G.Node, cfg ConvConfig) (*G.Node, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("ops: conv2d+concat: no inputs")
	}
	var n, h, wd, cin int
	geomParts := make([]convPart, len(parts))
	for i, p := range parts {
		if err := checkF32Node("conv2d+concat", fmt.Sprintf("part %d", i), p.X, 4); err != nil {
			return nil, err
		}
		if p.Up != 1 && p.Up != 2 {
			return nil, fmt.Errorf("ops: conv2d+concat: part %d (%s): upsampling %d, want 1 or 2", i, p.X.Name(), p.Up)
		}
		s := p.X.Shape()
		ph, pw := s[2]*p.Up, s[3]*p.Up
		if i == 0 {
			n, h, wd = s[0], ph, pw
		} else if s[0] != n || ph != h || pw != wd {
			return nil, fmt.Errorf("ops: conv2d+concat: part %d (%s) has shape %v, upsampled x%d to %dx%d, want batch %d and %dx%d as part 0",
				i, p.X.Name(), s, p.Up, ph, pw, n, h, wd)
		}
		cin += s[1]
		geomParts[i] = convPart{c: s[1], up: p.Up == 2}
	}
	geom, err := newConvGeomShape(tensor.Shape{n, cin, h, wd}, w, b, cfg)
	if err != nil {
		return nil, fmt.Errorf("ops: conv2d+concat: %w", err)
	}
	if !geom.wino || cfg.NoInputGrad || (len(parts) == 1 && parts[0].Up == 1) {
		return conv2DConcatSeparate(parts, w, b, cfg)
	}
	geom.parts = geomParts
	op := newConvOpGeom(geom, cfg)
	children := make([]*G.Node, 0, len(parts)+2)
	for _, p := range parts {
		children = append(children, p.X)
	}
	children = append(children, w)
	if b != nil {
		children = append(children, b)
	}
	y, err := G.ApplyOp(op, children...)
	if err != nil {
		return nil, fmt.Errorf("ops: conv2d+concat: %w", err)
	}
	return y, nil
}

// conv2DConcatSeparate is Conv2DConcat as separate Upsample2D, Concat and Conv2D ops.
func conv2DConcatSeparate(parts []ConvPart, w, b *G.Node, cfg ConvConfig) (*G.Node, error) {
	xs := make([]*G.Node, len(parts))
	for i, p := range parts {
		x, err := Upsample2D(p.X, p.Up)
		if err != nil {
			return nil, err
		}
		xs[i] = x
	}
	x, err := Concat(xs...)
	if err != nil {
		return nil, err
	}
	return Conv2D(x, w, b, cfg)
}
