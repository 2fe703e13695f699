package ops

import (
	"fmt"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convCatCase is a Conv2DConcat: parts of channels c (upsampled x2 when up) making an
// h×w input, cout filters.
type convCatCase struct {
	n, h, w, cout int
	parts         []convPart
	pad           *Padding // nil: same
	bias, relu    bool
}

func (c convCatCase) String() string {
	var ps []string
	for _, p := range c.parts {
		s := fmt.Sprint(p.c)
		if p.up {
			s += "up"
		}
		ps = append(ps, s)
	}
	s := fmt.Sprintf("n%d_%dx%d_[%s]_k%d", c.n, c.h, c.w, strings.Join(ps, ","), c.cout)
	if c.pad != nil {
		s += fmt.Sprintf("_pad%v", *c.pad)
	}
	if c.bias {
		s += "_bias"
	}
	if c.relu {
		s += "_relu"
	}
	return s
}

func (c convCatCase) cfg() ConvConfig {
	p := SamePadding(c.h, c.w, 3, 3, 1, 1)
	if c.pad != nil {
		p = *c.pad
	}
	return ConvConfig{StrideH: 1, StrideW: 1, Pad: p, ReLU: c.relu, Algo: ConvWinograd}
}

// inputs returns the parts, then w, then b.
func (c convCatCase) inputs(seed uint64) []*tensor.Dense {
	var in []*tensor.Dense
	cin := 0
	for i, p := range c.parts {
		if p.up {
			in = append(in, randTensor(seed+uint64(i), c.n, p.c, c.h/2, c.w/2))
		} else {
			in = append(in, randTensor(seed+uint64(i), c.n, p.c, c.h, c.w))
		}
		cin += p.c
	}
	in = append(in, randTensor(seed+10, c.cout, cin, 3, 3))
	if c.bias {
		in = append(in, randTensor(seed+11, c.cout))
	}
	return in
}

// build makes the fused op (fused) or the separate Upsample2D, Concat and Conv2D ops.
func (c convCatCase) build(fused bool) func(*G.ExprGraph, []*G.Node) (*G.Node, error) {
	return func(_ *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		parts := make([]ConvPart, len(c.parts))
		for i, p := range c.parts {
			parts[i] = ConvPart{X: in[i], Up: 1}
			if p.up {
				parts[i].Up = 2
			}
		}
		w := in[len(c.parts)]
		var b *G.Node
		if c.bias {
			b = in[len(c.parts)+1]
		}
		if fused {
			return Conv2DConcat(parts, w, b, c.cfg())
		}
		return conv2DConcatSeparate(parts, w, b, c.cfg())
	}
}

var convCatCases = []convCatCase{
	// U-Net's decoder: the upsampled coarser level first, then the skip.
	{n: 2, h: 12, w: 16, cout: 16, parts: []convPart{{c: 32, up: true}, {c: 16}}, bias: true, relu: true},
	// Rows of at least wgDirectCols (transposed in place), channels not multiples of 16.
	{n: 1, h: 8, w: 36, cout: 9, parts: []convPart{{c: 12, up: true}, {c: 5}}, bias: true},
	// The skip first, three parts, two upsampled; valid and asymmetric padding.
	{n: 2, h: 10, w: 6, cout: 8, parts: []convPart{{c: 8}, {c: 3, up: true}, {c: 17, up: true}}, pad: &Padding{}},
	{n: 1, h: 6, w: 10, cout: 24, parts: []convPart{{c: 16, up: true}, {c: 16}}, pad: &Padding{Top: 2, Left: 0, Bottom: 1, Right: 2}, relu: true},
	// One part, upsampled.
	{n: 3, h: 8, w: 8, cout: 16, parts: []convPart{{c: 20, up: true}}, bias: true},
}

// TestConv2DConcatMatchesSeparate checks the fused op against Upsample2D + Concat +
// Conv2D: the output and every gradient equal to the bit, over two runs.
func TestConv2DConcatMatchesSeparate(t *testing.T) {
	for _, c := range convCatCases {
		t.Run(c.String(), func(t *testing.T) {
			inputs := c.inputs(7)
			y1, g1, ops1 := runWithGrads(t, inputs, 0, c.build(true))
			y0, g0, _ := runWithGrads(t, inputs, 0, c.build(false))
			sameRun(t, "the separate ops'", y1, y0, g1, g0)
			for _, o := range ops1 {
				if strings.Contains(o, "Upsample") || strings.Contains(o, "Concat") {
					t.Errorf("fused graph has op %s", o)
				}
			}
		})
	}
}

// TestConv2DConcatGrad checks the fused op's gradients against finite differences
// (without the fused ReLU, whose kinks a step of 1e-2 crosses on inputs of 48 channels;
// TestConv2DConcatMatchesSeparate covers it).
func TestConv2DConcatGrad(t *testing.T) {
	for _, c := range convCatCases[:3] {
		c.relu = false
		checkGrad(t, gradCase{name: "conv2d+concat " + c.String(), inputs: c.inputs(3), build: c.build(true),
			// 48 input channels: each output sums 432 float32 products, whose rounding the
			// central differences of a float32 forward pass see.
			atol: 5e-3, rtol: 3e-2})
	}
}

// TestConv2DConcatFallsBack: what Winograd does not run is built as the separate ops.
func TestConv2DConcatFallsBack(t *testing.T) {
	g := G.NewGraph()
	a := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 4, 3, 3), G.WithName("a"))
	b := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 4, 6, 6), G.WithName("b"))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(5, 8, 3, 3), G.WithName("w"))
	y, err := Conv2DConcat([]ConvPart{{a, 2}, {b, 1}}, w, nil, ConvConfig{StrideH: 1, StrideW: 1, Pad: SamePadding(6, 6, 3, 3, 1, 1), Algo: ConvIm2col})
	if err != nil {
		t.Fatal(err)
	}
	if s := y.Op().String(); !strings.HasPrefix(s, "Conv2D{") || strings.Contains(s, "parts") {
		t.Errorf("im2col conv2d+concat is %s, want a plain Conv2D", s)
	}
	concats := 0
	for _, n := range g.AllNodes() {
		if n.Op() != nil && strings.HasPrefix(n.Op().String(), "Concat") {
			concats++
		}
	}
	if concats != 1 {
		t.Errorf("%d Concat ops in the graph, want 1", concats)
	}
}

func TestConv2DConcatErrors(t *testing.T) {
	g := G.NewGraph()
	node := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	a, b := node("a", 2, 8, 4, 4), node("b", 2, 8, 8, 8)
	w := node("w", 8, 16, 3, 3)
	cfg := ConvConfig{StrideH: 1, StrideW: 1, Pad: SamePadding(8, 8, 3, 3, 1, 1)}
	for _, tc := range []struct {
		name  string
		parts []ConvPart
		w     *G.Node
		want  string
	}{
		{"none", nil, w, "no inputs"},
		{"nil part", []ConvPart{{nil, 1}}, w, "part 0 is nil"},
		{"bad upsampling", []ConvPart{{a, 3}, {b, 1}}, w, "upsampling 3"},
		{"sizes disagree", []ConvPart{{a, 1}, {b, 1}}, w, "want batch 2 and 4x4 as part 0"},
		{"batch disagrees", []ConvPart{{a, 2}, {node("c", 1, 8, 8, 8), 1}}, w, "want batch 2"},
		{"channels", []ConvPart{{a, 2}, {b, 1}}, node("w2", 8, 12, 3, 3), "input channels"},
		{"3-D", []ConvPart{{node("d", 8, 4, 4), 2}}, w, "want 4 dimensions"},
	} {
		_, err := Conv2DConcat(tc.parts, tc.w, nil, cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
