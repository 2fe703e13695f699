package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSmall checks SmallNN and SmallTN against the float64 reference on every kernel
// family (the non-AVX-512 ones exercise the Sgemm fallback), including row counts that
// are not multiples of the tiles, widths that are not multiples of 16 (fallback), strides
// wider than the matrices, and beta 0 (C not read: NaNs must not propagate), 1 and 0.5.
func TestSmall(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		r := rand.New(rand.NewPCG(3, 4))
		shapes := []shape{
			{1, 16, 1}, {7, 16, 3}, {8, 32, 16}, {9, 48, 16}, {17, 16, 5}, {16, 64, 33},
			{31, 80, 48}, {100, 32, 128}, {455, 16, 16}, {3, 16, 455}, {48, 16, 455},
			{20, 128, 61}, {5, 20, 7}, {16, 15, 9},
		}
		for _, s := range shapes {
			for _, tr := range []bool{false, true} {
				for _, pad := range []int{0, 3} {
					for _, beta := range []float32{0, 1, 0.5} {
						checkSmall(t, kn, r, tr, s, pad, beta)
					}
				}
			}
		}
	})
}

func checkSmall(t *testing.T, kn Kernel, r *rand.Rand, transA bool, s shape, pad int, beta float32) {
	t.Helper()
	m, n, k := s.m, s.n, s.k
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	a := newMat(r, ar, ac, ac+pad)
	b := newMat(r, k, n, n+pad*2)
	c := newMat(r, m, n, n+pad*3)
	if beta == 0 {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				c.d[i*c.ld+j] = float32(math.NaN())
			}
		}
	}
	ref, bound := refGemm(transA, false, m, n, k, 1, a, b, beta, c)
	if transA {
		kn.SmallTN(m, n, k, a.d, a.ld, b.d, b.ld, beta, c.d, c.ld)
	} else {
		kn.SmallNN(m, n, k, a.d, a.ld, b.d, b.ld, beta, c.d, c.ld)
	}
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < c.ld && i*c.ld+j < len(c.d); j++ {
			got := c.d[i*c.ld+j]
			if j >= n {
				if got != sentinel {
					t.Fatalf("%v tA=%v pad=%d: C padding (%d,%d) overwritten: %v", s, transA, pad, i, j, got)
				}
				continue
			}
			want := ref[i*n+j]
			if d := math.Abs(float64(got) - want); !(d <= bound[i*n+j]) {
				if bad++; bad <= 5 {
					t.Errorf("%v tA=%v β=%v pad=%d: C[%d,%d] = %v, want %v (diff %.3g > %.3g)",
						s, transA, beta, pad, i, j, got, want, d, bound[i*n+j])
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d bad elements", bad)
	}
}

func TestSmallNoAllocs(t *testing.T) {
	a := make([]float32, 64*64)
	b := make([]float32, 64*64)
	c := make([]float32, 64*64)
	if n := testing.AllocsPerRun(10, func() {
		Kernel{}.SmallNN(64, 64, 64, a, 64, b, 64, 0, c, 64)
		Kernel{}.SmallTN(64, 64, 64, a, 64, b, 64, 1, c, 64)
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}
