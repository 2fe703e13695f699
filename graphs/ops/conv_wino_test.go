package ops

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Winograd and fused-ReLU cases of Conv2D: odd sizes, asymmetric and oversized padding,
// batches, channel counts that are not multiples of 8 or 16.
var convWinoCases = []convCase{
	{name: "wino 3x3 same 7x5 n1", n: 1, cin: 3, h: 7, w: 5, cout: 5, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvWinograd},
	{name: "wino valid 9x6 n3 nobias", n: 3, cin: 5, h: 9, w: 6, cout: 6, kh: 3, kw: 3, sh: 1, sw: 1, algo: ConvWinograd},
	{name: "wino asym pad n2", n: 2, cin: 6, h: 10, w: 11, cout: 7, kh: 3, kw: 3, sh: 1, sw: 1, pad: Padding{0, 2, 1, 0}, bias: true, algo: ConvWinograd},
	{name: "wino pad 2 tiny", n: 2, cin: 2, h: 2, w: 3, cout: 3, kh: 3, kw: 3, sh: 1, sw: 1, pad: Symmetric(2), bias: true, algo: ConvWinograd},
	{name: "auto 20ch 13x9 n2", n: 2, cin: 20, h: 13, w: 9, cout: 12, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true},
	{name: "wino relu n2", n: 2, cin: 9, h: 8, w: 7, cout: 10, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvWinograd, relu: true},
	{name: "im2col relu n2", n: 2, cin: 9, h: 8, w: 7, cout: 10, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, algo: ConvIm2col, relu: true},
	{name: "1x1 relu", n: 2, cin: 4, h: 5, w: 3, cout: 6, kh: 1, kw: 1, sh: 1, sw: 1, bias: true, relu: true},
}

func TestConv2DWinogradForward(t *testing.T) {
	for i, c := range convWinoCases {
		t.Run(c.name, func(t *testing.T) {
			got, want, mag := c.runForward(t, uint64(700+10*i))
			if c.relu {
				for k := range want {
					want[k] = max(want[k], 0)
				}
			}
			checkClose(t, "y", got, want, mag, 1e-4)
		})
	}
}

func TestConv2DWinogradGrad(t *testing.T) {
	for i, c := range convWinoCases {
		if c.relu {
			continue // TestConv2DReLUGrad
		}
		t.Run(c.name, func(t *testing.T) {
			checkGrad(t, gradCase{name: c.name, inputs: c.inputs(uint64(800 + 10*i)), build: c.build})
		})
	}
}

// TestConv2DReLUGrad checks the fused ReLU's gradients two ways: against Conv2D followed
// by a separate ReLU (the same analytic gradient, bit for bit where no rounding differs),
// and by finite differences with biases that keep every pre-activation far from the kink.
func TestConv2DReLUGrad(t *testing.T) {
	for i, c := range convWinoCases {
		if !c.relu {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(uint64(900 + 10*i))
			// Small weights, biases ±2 by channel: pre-activations are bias + O(0.3).
			for _, v := range [][]float32{in[0].Data().([]float32), in[1].Data().([]float32)} {
				for k := range v {
					v[k] *= 0.1
				}
			}
			for k, b := 0, in[2].Data().([]float32); k < len(b); k++ {
				b[k] = float32(2 * (1 - 2*(k%2)))
			}
			checkGrad(t, gradCase{name: c.name, inputs: in, build: c.build})

			unfused := c
			unfused.relu = false
			grads := func(build func(*G.ExprGraph, []*G.Node) (*G.Node, error)) [][]float32 {
				g := G.NewGraph()
				nodes := bindInputs(g, in)
				y, err := build(g, nodes)
				if err != nil {
					t.Fatal(err)
				}
				cost, err := G.Sum(y)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := G.Grad(cost, nodes...); err != nil {
					t.Fatal(err)
				}
				vm := G.NewTapeMachine(g, G.BindDualValues(nodes...))
				defer vm.Close()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				var out [][]float32
				for _, n := range nodes {
					gv, _ := n.Grad()
					out = append(out, append([]float32(nil), gv.Data().([]float32)...))
				}
				return out
			}
			fused := grads(c.build)
			sep := grads(func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				y, err := unfused.build(g, in)
				if err != nil {
					return nil, err
				}
				return ReLU(y)
			})
			for k := range fused {
				for j := range fused[k] {
					if d := math.Abs(float64(fused[k][j] - sep[k][j])); d > 1e-5*(1+math.Abs(float64(sep[k][j]))) {
						t.Fatalf("input %d gradient [%d]: fused %v, separate ReLU %v", k, j, fused[k][j], sep[k][j])
					}
				}
			}
		})
	}
}

func TestConv2DWinogradErrors(t *testing.T) {
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 8, 8), G.WithName("x"))
	w5 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 5, 5), G.WithName("w5"))
	w3 := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w3"))
	for _, tc := range []struct {
		w    *G.Node
		cfg  ConvConfig
		want string
	}{
		{w5, ConvConfig{StrideH: 1, StrideW: 1, Algo: ConvWinograd}, "Winograd needs a 3x3 kernel with stride 1"},
		{w3, ConvConfig{StrideH: 2, StrideW: 1, Algo: ConvWinograd}, "Winograd needs a 3x3 kernel with stride 1"},
		{w3, ConvConfig{StrideH: 1, StrideW: 1, Algo: ConvAlgo(9)}, "unknown algorithm ConvAlgo(9)"},
	} {
		_, err := Conv2D(x, tc.w, nil, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
