package ops

import (
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

type linearCase struct {
	name       string
	n, in, out int
	bias       bool
}

func (c linearCase) inputs(seed uint64) []*tensor.Dense {
	in := []*tensor.Dense{randTensor(seed, c.n, c.in), randTensor(seed+1, c.out, c.in)}
	if c.bias {
		in = append(in, randTensor(seed+2, c.out))
	}
	return in
}

func (c linearCase) build(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
	var b *G.Node
	if c.bias {
		b = in[2]
	}
	return Linear(in[0], in[1], b, LinearConfig{})
}

var linearCases = []linearCase{
	{name: "n1 7to5 bias", n: 1, in: 7, out: 5, bias: true},
	{name: "n3 6to4", n: 3, in: 6, out: 4},
	{name: "n4 1to1 bias", n: 4, in: 1, out: 1, bias: true},
	{name: "n5 33to10 bias", n: 5, in: 33, out: 10, bias: true},
}

func TestLinearForward(t *testing.T) {
	for i, c := range linearCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.inputs(uint64(200 + 10*i))
			got, shape := runForward(t, in, c.build)
			if want := (tensor.Shape{c.n, c.out}); !shape.Eq(want) {
				t.Fatalf("got shape %v, want %v", shape, want)
			}
			x, w := in[0].Data().([]float32), in[1].Data().([]float32)
			for r := 0; r < c.n; r++ {
				for o := 0; o < c.out; o++ {
					var s, m float64
					if c.bias {
						s = float64(in[2].Data().([]float32)[o])
						m = math.Abs(s)
					}
					for k := 0; k < c.in; k++ {
						p := float64(x[r*c.in+k]) * float64(w[o*c.in+k])
						s += p
						m += math.Abs(p)
					}
					if g := got[r*c.out+o]; math.Abs(float64(g)-s) > 1e-5*m+1e-6 {
						t.Errorf("y[%d,%d]: got %g, want %g", r, o, g, s)
					}
				}
			}
		})
	}
}

func TestLinearGrad(t *testing.T) {
	for i, c := range linearCases {
		t.Run(c.name, func(t *testing.T) {
			checkGrad(t, gradCase{name: c.name, inputs: c.inputs(uint64(300 + 10*i)), build: c.build})
		})
	}
}

func TestLinearErrors(t *testing.T) {
	f32 := func(g *G.ExprGraph, name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name))
	}
	for _, c := range []struct {
		name  string
		build func(g *G.ExprGraph) (*G.Node, error)
		want  string
	}{
		{"nil x", func(g *G.ExprGraph) (*G.Node, error) {
			return Linear(nil, f32(g, "w", 4, 3), nil, LinearConfig{})
		}, "x and w must not be nil"},
		{"float64 w", func(g *G.ExprGraph) (*G.Node, error) {
			w := G.NewTensor(g, tensor.Float64, 2, G.WithShape(4, 3), G.WithName("w"))
			return Linear(f32(g, "x", 2, 3), w, nil, LinearConfig{})
		}, "w has dtype float64, want float32"},
		{"4-D x", func(g *G.ExprGraph) (*G.Node, error) {
			return Linear(f32(g, "x", 2, 3, 4, 4), f32(g, "w", 4, 48), nil, LinearConfig{})
		}, "x has shape (2, 3, 4, 4), want 2-D (N,In)"},
		{"1-D w", func(g *G.ExprGraph) (*G.Node, error) {
			return Linear(f32(g, "x", 2, 3), f32(g, "w", 3), nil, LinearConfig{})
		}, "w has shape (3), want 2-D (Out,In)"},
		{"feature mismatch", func(g *G.ExprGraph) (*G.Node, error) {
			return Linear(f32(g, "x", 2, 3), f32(g, "w", 4, 5), nil, LinearConfig{})
		}, "w has shape (4, 5), want (4, 3): x (2, 3) has 3 features"},
		{"bias length", func(g *G.ExprGraph) (*G.Node, error) {
			return Linear(f32(g, "x", 2, 3), f32(g, "w", 4, 3), f32(g, "b", 3), LinearConfig{})
		}, "b has shape (3), want (4)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			y, err := c.build(G.NewGraph())
			if err == nil {
				t.Fatalf("got node %v, want an error containing %q", y, c.want)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "ops: linear: ") || !strings.Contains(msg, c.want) {
				t.Errorf("got error %q, want prefix %q and %q", msg, "ops: linear: ", c.want)
			}
		})
	}
}

// TestLinearDoErrors feeds the forward and gradient ops values that do not match the graph.
func TestLinearDoErrors(t *testing.T) {
	c := linearCase{n: 2, in: 3, out: 4, bias: true}
	g := G.NewGraph()
	vals := c.inputs(1)
	in := bindInputs(g, vals)
	y, err := c.build(g, in)
	if err != nil {
		t.Fatal(err)
	}
	dyv := randTensor(2, 2, 4)
	dy := G.NewTensor(g, tensor.Float32, 2, G.WithShape(2, 4), G.WithName("dy"), G.WithValue(dyv))
	grads, err := y.Op().(G.SDOp).SymDiff(G.Nodes(in), y, dy)
	if err != nil {
		t.Fatal(err)
	}
	x, w, b := vals[0], vals[1], vals[2]
	for _, e := range []struct {
		op     G.Op
		inputs []G.Value
		want   string
	}{
		{y.Op(), []G.Value{x, w}, "ops: linear: got 2 inputs, want 3"},
		{y.Op(), []G.Value{randTensor(1, 3, 3), w, b}, "ops: linear: x has shape (3, 3), want (2, 3)"},
		{y.Op(), []G.Value{x, w, randTensor(1, 3)}, "ops: linear: b has shape (3), want (4)"},
		{grads[0].Op(), []G.Value{w, randTensor(1, 2, 5)}, "ops: linear grad x: output gradient has shape (2, 5), want (2, 4)"},
		{grads[1].Op(), []G.Value{w, dyv}, "ops: linear grad w: x has shape (4, 3), want (2, 3)"},
		{grads[2].Op(), []G.Value{dyv, dyv}, "ops: linear grad b: got 2 inputs, want 1"},
	} {
		if _, err := e.op.Do(e.inputs...); err == nil || err.Error() != e.want {
			t.Errorf("%v: got error %v, want %q", e.op, err, e.want)
		}
	}
	for _, gr := range grads {
		if _, err := gr.Op().(G.SDOp).SymDiff(nil, gr, dy); err == nil || !strings.Contains(err.Error(), "second-order") {
			t.Errorf("%v: SymDiff error = %v, want second-order error", gr.Op(), err)
		}
	}
}

// TestLinearOpHash checks that linears differing in one parameter hash differently.
func TestLinearOpHash(t *testing.T) {
	seen := map[uint32]string{}
	for _, g := range []linearGeom{
		{n: 2, nin: 3, nout: 4, bias: true}, {n: 3, nin: 3, nout: 4, bias: true},
		{n: 2, nin: 4, nout: 4, bias: true}, {n: 2, nin: 3, nout: 5, bias: true}, {n: 2, nin: 3, nout: 4},
	} {
		for _, op := range []G.Op{&linearOp{linearGeom: g}, &linearGradXOp{linearGeom: g},
			&linearGradWOp{linearGeom: g}, &linearGradBOp{linearGeom: g}} {
			if prev, ok := seen[op.Hashcode()]; ok {
				t.Errorf("ops %s and %s have the same hash", prev, op)
			}
			seen[op.Hashcode()] = op.String()
		}
	}
}

func BenchmarkLinear(b *testing.B) {
	c := linearCase{n: 8, in: 4096, out: 4096, bias: true}
	g := G.NewGraph()
	vals := c.inputs(1)
	in := bindInputs(g, vals)
	y, err := c.build(g, in)
	if err != nil {
		b.Fatal(err)
	}
	dyv := randTensor(2, c.n, c.out)
	dy := G.NewTensor(g, tensor.Float32, 2, G.WithShape(c.n, c.out), G.WithName("dy"), G.WithValue(dyv))
	grads, err := y.Op().(G.SDOp).SymDiff(G.Nodes(in), y, dy)
	if err != nil {
		b.Fatal(err)
	}
	ops := []G.Op{y.Op(), grads[0].Op(), grads[1].Op(), grads[2].Op()}
	args := [][]G.Value{{vals[0], vals[1], vals[2]}, {vals[1], dyv}, {vals[0], dyv}, {dyv}}
	for i, op := range ops {
		if _, err := op.Do(args[i]...); err != nil {
			b.Fatal(err)
		}
	}
	flops := 2 * float64(c.n*c.in*c.out)
	b.Run("n8_4096to4096/fwdbwd", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i, op := range ops {
				_, _ = op.Do(args[i]...)
			}
		}
		b.ReportMetric(3*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
