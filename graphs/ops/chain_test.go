package ops

import (
	"fmt"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// chainCase is a stack of 3x3 same-size convolutions on an n×c[0]×h×w input, layer i
// with c[i+1] filters, a bias and (relu[i]) a fused ReLU.
type chainCase struct {
	n, h, w int
	c       []int
	relu    []bool
	noDX    bool // the first layer reads the model's input (ConvConfig.NoInputGrad)
}

func (c chainCase) String() string {
	s := fmt.Sprintf("n%d_%dx%d_c%v_relu%v", c.n, c.h, c.w, c.c, c.relu)
	if c.noDX {
		s += "_nodx"
	}
	return s
}

// inputs returns x, then each layer's w and b.
func (c chainCase) inputs(seed uint64) []*tensor.Dense {
	in := []*tensor.Dense{randTensor(seed, c.n, c.c[0], c.h, c.w)}
	for i := range len(c.c) - 1 {
		in = append(in, randTensor(seed+uint64(10+2*i), c.c[i+1], c.c[i], 3, 3), randTensor(seed+uint64(11+2*i), c.c[i+1]))
	}
	return in
}

// build makes the stack, every layer but the last writing a channels-last chain when
// chained.
func (c chainCase) build(chained bool) func(*G.ExprGraph, []*G.Node) (*G.Node, error) {
	return func(_ *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		x := in[0]
		layers := len(c.c) - 1
		for i := range layers {
			cfg := ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1), ReLU: c.relu[i], Algo: ConvWinograd,
				NoInputGrad: i == 0 && c.noDX, ChannelsLastOut: chained && i < layers-1}
			y, err := Conv2D(x, in[1+2*i], in[2+2*i], cfg)
			if err != nil {
				return nil, err
			}
			x = y
		}
		return x, nil
	}
}

var chainCases = []chainCase{
	{n: 2, h: 12, w: 16, c: []int{16, 16, 32, 16}, relu: []bool{true, true, true}},
	// Sizes not multiples of 4 (tiles past the image), channels not multiples of 16, a
	// layer without ReLU inside the chain.
	{n: 1, h: 10, w: 7, c: []int{5, 9, 17, 3}, relu: []bool{true, false, true}},
	{n: 3, h: 8, w: 8, c: []int{16, 16, 16}, relu: []bool{true, true}, noDX: true},
	{n: 2, h: 5, w: 21, c: []int{3, 20, 8}, relu: []bool{false, true}},
}

// TestConvChainMatchesNCHW checks convolutions passing channels-last chains against the
// same layers in NCHW: the output and every gradient equal to the bit, over two runs
// (the second reusing every buffer), and no conversion between the layouts left.
func TestConvChainMatchesNCHW(t *testing.T) {
	for _, c := range chainCases {
		t.Run(c.String(), func(t *testing.T) {
			inputs := c.inputs(5)
			skip := 0
			if c.noDX {
				skip = 1 // x needs no gradient
			}
			y1, g1, ops1 := runWithGrads(t, inputs, skip, c.build(true))
			y0, g0, _ := runWithGrads(t, inputs, skip, c.build(false))
			sameRun(t, "the NCHW layers'", y1, y0, g1, g0)
			chains := 0
			for _, o := range ops1 {
				if strings.Contains(o, "chain-out") && strings.HasPrefix(o, "Conv2D{") {
					chains++
				}
				if strings.Contains(o, "ReLU") {
					t.Errorf("chained graph has op %s", o)
				}
			}
			if chains != len(c.c)-2 {
				t.Errorf("%d chain outputs, want %d", chains, len(c.c)-2)
			}
		})
	}
}

// TestConvChainRefusals: a chain is made only by and for 3x3 same-size Winograd
// convolutions, and no other op reads one.
func TestConvChainRefusals(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 16, 8, 8), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(16, 16, 3, 3), G.WithName("w"))
	w1 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(16, 16, 1, 1), G.WithName("w1"))
	cfg := ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1), ChannelsLastOut: true}
	if _, err := Conv2D(x, w, nil, ConvConfig{StrideH: 2, StrideW: 2, Pad: Symmetric(1), ChannelsLastOut: true}); err == nil {
		t.Error("a strided chain-out convolution was accepted")
	}
	if _, err := Conv2D(x, w, nil, ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1), Algo: ConvIm2col, ChannelsLastOut: true}); err == nil {
		t.Error("an im2col chain-out convolution was accepted")
	}
	y, err := Conv2D(x, w, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := y.Shape(); !s.Eq(tensor.Shape{1, 10, 10, 16}) {
		t.Errorf("chain shape %v, want (1, 10, 10, 16)", s)
	}
	if _, err := ReLU(y); err == nil || !strings.Contains(err.Error(), "channels-last chain") {
		t.Errorf("ReLU of a chain: %v, want a channels-last chain error", err)
	}
	if _, err := Conv2D(y, w1, nil, ConvConfig{StrideH: 1, StrideW: 1}); err == nil {
		t.Error("a 1x1 convolution of a chain was accepted")
	}
	if !ChainableConv([]int{1, 16, 8, 8}, 16, 3, 1, Symmetric(1), ConvConfig{}) {
		t.Error("ChainableConv: a 16-channel 3x3 same convolution is not chainable")
	}
	if ChainableConv([]int{1, 3, 8, 8}, 16, 3, 1, Symmetric(1), ConvConfig{}) {
		t.Error("ChainableConv: a 3-channel convolution (im2col under ConvAuto) is chainable")
	}
}

// TestConvConcatChainMatchesNCHW: a Conv2DConcat (U-Net's decoder) writing a chain for
// the next convolution gives the NCHW layers' output and gradients to the bit.
func TestConvConcatChainMatchesNCHW(t *testing.T) {
	c := convCatCases[0] // the upsampled level and the skip, 12x16, 16 filters, ReLU
	inputs := append(c.inputs(7), randTensor(21, 8, c.cout, 3, 3), randTensor(22, 8))
	np := len(c.parts)
	build := func(chained bool) func(*G.ExprGraph, []*G.Node) (*G.Node, error) {
		return func(_ *G.ExprGraph, in []*G.Node) (*G.Node, error) {
			parts := make([]ConvPart, np)
			for i, p := range c.parts {
				parts[i] = ConvPart{X: in[i], Up: 1}
				if p.up {
					parts[i].Up = 2
				}
			}
			cfg := c.cfg()
			cfg.ChannelsLastOut = chained
			h, err := Conv2DConcat(parts, in[np], in[np+1], cfg)
			if err != nil {
				return nil, err
			}
			return Conv2D(h, in[np+2], in[np+3], ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1), ReLU: true, Algo: ConvWinograd})
		}
	}
	y1, g1, ops1 := runWithGrads(t, inputs, 0, build(true))
	y0, g0, _ := runWithGrads(t, inputs, 0, build(false))
	chained := false
	for _, o := range ops1 {
		if strings.HasPrefix(o, "Conv2D{") && strings.Contains(o, "parts[") && strings.Contains(o, "chain-out") {
			chained = true
		}
	}
	if !chained {
		t.Fatalf("the concat convolution does not write a chain: %v", ops1)
	}
	sameRun(t, "the NCHW layers'", y1, y0, g1, g0)
}
