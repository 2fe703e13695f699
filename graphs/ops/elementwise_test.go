package ops

import (
	"fmt"
	"math"
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestElementwiseKernels checks the vectorised batch-norm and ReLU passes against plain
// loops, on lengths around the 16-float vector width, with NaN, -0 and 0 in the masks.
func TestElementwiseKernels(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 48, 100, 1001} {
		x, dy := randSlice(uint64(n), n, 3), randSlice(uint64(n)+1, n, 2)
		y := randSlice(uint64(n)+2, n, 1)
		for i := range y {
			switch i % 7 {
			case 0:
				y[i] = 0
			case 1:
				y[i] = float32(math.Copysign(0, -1))
			case 2:
				y[i] = float32(math.NaN())
			}
		}
		const m = 0.25
		var s, ss, sdy, sdyx float64
		for i := range x {
			s += float64(x[i])
			ss += (float64(x[i]) - m) * (float64(x[i]) - m)
			sdy += float64(dy[i])
			sdyx += float64(dy[i]) * (float64(x[i]) - m)
		}
		close := func(what string, got, want float64) {
			if math.Abs(got-want) > 1e-9*(1+math.Abs(want)) {
				t.Errorf("n=%d %s: got %v, want %v", n, what, got, want)
			}
		}
		close("sum", sum64(x), s)
		close("sumSqDev", sumSqDev64(x, m), ss)
		a, b := sumDyDev64(dy, x, reluOf{}, m)
		close("sdy", a, sdy)
		close("sdyx", b, sdyx)

		got := make([]float32, n)
		for _, floor := range []float32{0, float32(math.Inf(-1))} {
			xn := slices.Clone(x)
			if n > 3 {
				xn[3] = float32(math.NaN())
			}
			affine(got, xn, 1.5, -0.5, floor)
			for i := range xn {
				want := xn[i]*1.5 - 0.5
				if want < floor {
					want = floor
				}
				if !(math.Abs(float64(got[i]-want)) <= 1e-6*(1+math.Abs(float64(want))) || math.IsNaN(float64(want)) && math.IsNaN(float64(got[i]))) {
					t.Fatalf("n=%d affine floor %v [%d]: got %v, want %v", n, floor, i, got[i], want)
				}
			}
		}
		bnBack(got, dy, x, reluOf{}, 0.5, -0.25, 0.125, m)
		for i := range got {
			want := 0.5*dy[i] + -0.25*(x[i]-m) + 0.125
			if math.Abs(float64(got[i]-want)) > 1e-6 {
				t.Fatalf("n=%d bnBack [%d]: got %v, want %v", n, i, got[i], want)
			}
		}
		reluMask(got, dy, y)
		for i := range got {
			want := dy[i]
			if y[i] == 0 {
				want = 0
			}
			if got[i] != want {
				t.Fatalf("n=%d reluMask [%d]: got %v, want %v (y %v)", n, i, got[i], want, y[i])
			}
		}
	}
}

// TestReluOf checks that the ReLU mask recomputed from a batch norm's input (reluOf)
// passes exactly where affine's output is not 0, in the vectors and in the scalar tail:
// x = 1/3 with a = 3, b = -1 is positive with one rounding and 0 with two, so the two
// parts differ there; NaN inputs pass.
func TestReluOf(t *testing.T) {
	const a, b, m = 3, -1, 0.125
	for _, n := range []int{1, 15, 16, 17, 21, 33, 100} {
		x, dy := randSlice(uint64(n)+5, n, 1), randSlice(uint64(n)+6, n, 2)
		for i := range x {
			switch i % 5 {
			case 0:
				x[i] = float32(1.0 / 3)
			case 1:
				x[i] = 0
			}
		}
		xn := slices.Clone(x)
		xn[n/2] = float32(math.NaN())
		for _, x := range [][]float32{x, xn} {
			y := make([]float32, n)
			affine(y, x, a, b, 0)
			got := make([]float32, n)
			bnBack(got, dy, dy, reluOf{x: x, a: a, b: b}, 1, 0, 0, 0) // dx = dy'
			var sdy, sdyx float64
			for i := range got {
				want := dy[i]
				if y[i] == 0 {
					want = 0
				} else {
					sdy += float64(dy[i])
					sdyx += float64(dy[i]) * (float64(x[i]) - m)
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("n=%d [%d] x=%v: dy' %v, want %v (forward output %v)", n, i, x[i], got[i], want, y[i])
				}
			}
			gs, gsx := sumDyDev64(dy, x, reluOf{x: x, a: a, b: b}, m)
			if math.Abs(gs-sdy) > 1e-9*(1+math.Abs(sdy)) || !(math.Abs(gsx-sdyx) <= 1e-9*(1+math.Abs(sdyx))) && !math.IsNaN(sdyx) {
				t.Errorf("n=%d: sums %v %v, want %v %v", n, gs, gsx, sdy, sdyx)
			}
		}
	}
}

// TestBatchNormReLU2D: the fused op computes relu(BatchNorm2D) and its gradients (checked
// against the separate ops, and by finite differences away from the kink).
func TestBatchNormReLU2D(t *testing.T) {
	for i, c := range []struct{ n, c, h, w int }{{2, 3, 5, 7}, {2, 4, 4, 5}, {1, 2, 8, 9}} {
		for _, training := range []bool{true, false} {
			name := fmt.Sprintf("%v train=%v", c, training)
			in := bnInputs(uint64(300+10*i), c.n, c.c, c.h, c.w)
			state := func() *BatchNormState {
				st := NewBatchNormState("bn", c.c)
				for j := range st.RunningVar {
					st.RunningMean[j], st.RunningVar[j] = 0.1, 0.4+0.1*float32(j)
				}
				return st
			}
			run := func(fused bool) (y []float32, grads [][]float32) {
				g := G.NewGraph()
				nodes := bindInputs(g, in)
				var out *G.Node
				var err error
				if fused {
					out, err = BatchNormReLU2D(nodes[0], nodes[1], nodes[2], state(), training)
				} else if out, err = BatchNorm2D(nodes[0], nodes[1], nodes[2], state(), training); err == nil {
					out, err = ReLU(out)
				}
				if err != nil {
					t.Fatal(err)
				}
				r := G.NewTensor(g, tensor.Float32, 4, G.WithShape(out.Shape()...), G.WithValue(randTensor(9, out.Shape()...)))
				cost := G.Must(G.Sum(G.Must(G.HadamardProd(out, r))))
				if _, err := G.Grad(cost, nodes...); err != nil {
					t.Fatal(err)
				}
				vm := G.NewTapeMachine(g, G.BindDualValues(nodes...))
				defer vm.Close()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				y = slices.Clone(out.Value().Data().([]float32))
				for _, nd := range nodes {
					gv, _ := nd.Grad()
					grads = append(grads, slices.Clone(gv.Data().([]float32)))
				}
				return
			}
			fy, fg := run(true)
			sy, sg := run(false)
			for k := range sy {
				if fy[k] != sy[k] {
					t.Fatalf("%s: y[%d] fused %v, separate %v", name, k, fy[k], sy[k])
				}
			}
			for a := range sg {
				for k := range sg[a] {
					if !near(float64(fg[a][k]), float64(sg[a][k]), 1e-5) {
						t.Fatalf("%s: gradient %d[%d] fused %v, separate %v", name, a, k, fg[a][k], sg[a][k])
					}
				}
			}
			// Finite differences: gamma 0.3, beta ±2 keep outputs far from 0.
			kin := []*tensor.Dense{in[0], in[1].Clone().(*tensor.Dense), in[2].Clone().(*tensor.Dense)}
			for k, v := 0, kin[1].Data().([]float32); k < len(v); k++ {
				v[k] = 0.3
			}
			for k, v := 0, kin[2].Data().([]float32); k < len(v); k++ {
				v[k] = float32(2 * (1 - 2*(k%2)))
			}
			checkGrad(t, gradCase{name: "bnrelu " + name, inputs: kin, build: func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				return BatchNormReLU2D(in[0], in[1], in[2], state(), training)
			}})
		}
	}
}

// TestColSum64 checks colSum64 (AVX-512 where the CPU has it) against the portable
// version to the bit and against float64 sums computed here.
func TestColSum64(t *testing.T) {
	for _, tc := range []struct{ npix, stride int }{{1, 16}, {2, 16}, {7, 32}, {64, 48}, {1001, 16}} {
		src := randTensor(uint64(tc.npix), tc.npix*tc.stride).Data().([]float32)
		var got, ref [16]float64
		got[3], ref[3] = 1.5, 1.5 // it adds to what acc holds
		colSum64(&got, src, tc.npix, tc.stride)
		colSum64Go(&ref, src, tc.npix, tc.stride)
		for j := range got {
			var want float64
			if j == 3 {
				want = 1.5
			}
			for p := 0; p < tc.npix; p++ {
				want += float64(src[p*tc.stride+j])
			}
			if math.Float64bits(got[j]) != math.Float64bits(ref[j]) {
				t.Errorf("npix %d stride %d: lane %d: %v, portable %v", tc.npix, tc.stride, j, got[j], ref[j])
			}
			if math.Abs(got[j]-want) > 1e-9*float64(tc.npix) {
				t.Errorf("npix %d stride %d: lane %d: %v, want %v", tc.npix, tc.stride, j, got[j], want)
			}
		}
	}
}
