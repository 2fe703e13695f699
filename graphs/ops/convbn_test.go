package ops

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestConv2DBatchNorm: the fused evaluation op equals Conv2D then BatchNorm2D (eval) and
// ReLU, for both algorithms, with and without bias and ReLU.
func TestConv2DBatchNorm(t *testing.T) {
	for i, c := range []convCase{
		{name: "wino relu bias", n: 2, cin: 9, h: 8, w: 7, cout: 10, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, relu: true},
		{name: "wino nobias", n: 1, cin: 12, h: 9, w: 9, cout: 8, kh: 3, kw: 3, sh: 1, sw: 1, same: true},
		{name: "im2col relu", n: 2, cin: 3, h: 7, w: 5, cout: 5, kh: 3, kw: 3, sh: 1, sw: 1, same: true, bias: true, relu: true, algo: ConvIm2col},
		{name: "1x1", n: 2, cin: 4, h: 5, w: 6, cout: 3, kh: 1, kw: 1, sh: 1, sw: 1, bias: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(uint64(40 + i))
			in = append(in, randTensor(uint64(50+i), c.cout), randTensor(uint64(60+i), c.cout))
			st := NewBatchNormState("bn", c.cout)
			for j := range st.RunningMean {
				st.RunningMean[j], st.RunningVar[j] = 0.1*float32(j)-0.2, 0.5+0.3*float32(j)
			}
			k := 2
			if c.bias {
				k = 3
			}
			fused, _ := runForward(t, in, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) {
				var b *G.Node
				if c.bias {
					b = n[2]
				}
				return Conv2DBatchNorm(n[0], n[1], b, n[k], n[k+1], st, c.cfg())
			})
			sep, _ := runForward(t, in, func(g *G.ExprGraph, n []*G.Node) (*G.Node, error) {
				plain := c
				plain.relu = false
				y, err := plain.build(g, n[:k])
				if err != nil {
					return nil, err
				}
				if c.relu {
					return BatchNormReLU2D(y, n[k], n[k+1], st, false)
				}
				return BatchNorm2D(y, n[k], n[k+1], st, false)
			})
			for j := range sep {
				if math.Abs(float64(fused[j]-sep[j])) > 1e-4*(1+math.Abs(float64(sep[j]))) {
					t.Fatalf("y[%d]: fused %v, separate %v", j, fused[j], sep[j])
				}
			}
		})
	}
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 3, 5, 5), G.WithName("x"))
	w := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 3, 3), G.WithName("w"))
	g4 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(4), G.WithName("g4"))
	g5 := G.NewTensor(g, tensor.Float32, 1, G.WithShape(5), G.WithName("g5"))
	for _, tc := range []struct {
		gamma *G.Node
		st    *BatchNormState
		want  string
	}{
		{g4, nil, "nil *BatchNormState"},
		{g5, NewBatchNormState("b", 4), "gamma has shape (5), want (4)"},
		{g4, NewBatchNormState("b", 5), "running mean/var have lengths 5/5, want 4"},
	} {
		_, err := Conv2DBatchNorm(x, w, nil, tc.gamma, g4, tc.st, ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
	y, err := Conv2DBatchNorm(x, w, nil, g4, g4, NewBatchNormState("b", 4), ConvConfig{StrideH: 1, StrideW: 1, Pad: Symmetric(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := y.Op().(G.SDOp).SymDiff(nil, y, y); err == nil || !strings.Contains(err.Error(), "no gradient") {
		t.Errorf("SymDiff: got %v, want a no-gradient error", err)
	}
}
