package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// forEachKernel runs f once per kernel family this CPU supports.
func forEachKernel(t *testing.T, f func(t *testing.T, kn Kernel)) {
	t.Helper()
	for _, name := range Kernels() {
		kn, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { f(t, kn) })
	}
}

// sentinel marks the padding of A, B and C (columns beyond the logical width); Sgemm must
// never write it.
const sentinel = float32(-1234.5)

type mat struct {
	rows, cols, ld int
	d              []float32
}

// newMat makes a rows×cols matrix with row stride ld, holding values in [-1, 1) and the
// sentinel in the padding. The slice is exactly as long as Sgemm may touch.
func newMat(r *rand.Rand, rows, cols, ld int) mat {
	n := 0
	if rows > 0 && cols > 0 {
		n = (rows-1)*ld + cols
	}
	m := mat{rows, cols, ld, make([]float32, n)}
	for i := range m.d {
		if i%ld < cols {
			m.d[i] = r.Float32()*2 - 1
		} else {
			m.d[i] = sentinel
		}
	}
	return m
}

func (m mat) at(i, j int) float32 { return m.d[i*m.ld+j] }

// refGemm is the naive float64 reference; bound receives, per element of C, a bound on
// the float32 rounding error of any reasonable summation order.
func refGemm(transA, transB bool, m, n, k int, alpha float32, a mat, b mat, beta float32, c mat) (ref, bound []float64) {
	ref = make([]float64, m*n)
	bound = make([]float64, m*n)
	const eps = 1.0 / (1 << 23)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a.at(p, i)
				} else {
					av = a.at(i, p)
				}
				if transB {
					bv = b.at(j, p)
				} else {
					bv = b.at(p, j)
				}
				s += float64(av) * float64(bv)
				sa += math.Abs(float64(av) * float64(bv))
			}
			s *= float64(alpha)
			sa *= math.Abs(float64(alpha))
			if beta != 0 {
				s += float64(beta) * float64(c.at(i, j))
				sa += math.Abs(float64(beta) * float64(c.at(i, j)))
			}
			ref[i*n+j] = s
			bound[i*n+j] = 2*float64(k+3)*eps*sa + 1e-30
		}
	}
	return ref, bound
}

type shape struct{ m, n, k int }

func checkOne(t *testing.T, kn Kernel, r *rand.Rand, transA, transB bool, s shape, pad int, alpha, beta float32) {
	t.Helper()
	m, n, k := s.m, s.n, s.k
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	a := newMat(r, ar, ac, ac+pad)
	b := newMat(r, br, bc, bc+pad*2)
	c := newMat(r, m, n, n+pad*3)
	if beta == 0 {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				c.d[i*c.ld+j] = float32(math.NaN())
			}
		}
	}
	ref, bound := refGemm(transA, transB, m, n, k, alpha, a, b, beta, c)
	kn.Sgemm(transA, transB, m, n, k, alpha, a.d, a.ld, b.d, b.ld, beta, c.d, c.ld)
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < c.ld && i*c.ld+j < len(c.d); j++ {
			got := c.d[i*c.ld+j]
			if j >= n {
				if got != sentinel {
					t.Fatalf("%v tA=%v tB=%v pad=%d: C padding (%d,%d) overwritten: %v", s, transA, transB, pad, i, j, got)
				}
				continue
			}
			want := ref[i*n+j]
			if d := math.Abs(float64(got) - want); !(d <= bound[i*n+j]) {
				if bad++; bad <= 5 {
					t.Errorf("%v tA=%v tB=%v α=%v β=%v pad=%d: C[%d,%d] = %v, want %v (diff %.3g > %.3g)",
						s, transA, transB, alpha, beta, pad, i, j, got, want, d, bound[i*n+j])
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d bad elements", bad)
	}
}

var testShapes = []shape{
	{1, 1, 1}, {1, 1, 7}, {2, 3, 4}, {7, 5, 3}, {17, 13, 7}, {33, 65, 129},
	{14, 32, 1}, {14, 32, 5}, {15, 33, 9}, {13, 31, 17}, {28, 64, 260}, {6, 16, 8}, {5, 15, 3},
	{1, 300, 20}, {300, 1, 20}, {3, 500, 40}, {500, 3, 40}, {64, 1, 600}, {1, 64, 600},
	{100, 100, 1}, {45, 77, 513}, {29, 530, 35},
}

func TestSgemmShapes(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, s := range testShapes {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {-0.5, 0.25}, {2, -1}} {
					checkOne(t, kn, r, tr[0], tr[1], s, 0, ab[0], ab[1])
				}
				checkOne(t, kn, r, tr[0], tr[1], s, 3, 0.75, 0)
				checkOne(t, kn, r, tr[0], tr[1], s, 5, 1, 1.5)
			}
		}
	})
}

// TestSgemmLarge covers multi-block and multi-threaded paths: k larger than kc (beta must
// apply to the first k block only), n larger than nc, m larger than mc, and VGG shapes.
func TestSgemmLarge(t *testing.T) {
	shapes := []shape{
		{64, 784, 576},   // conv forward, M=Cout N=H*W K=Cin*9
		{40, 290, 1500},  // filter gradient shape (k > kc several times)
		{576, 700, 64},   // data gradient shape
		{2100, 20, 30},   // m > mc
		{37, 1100, 300},  // n > nc, k > kc
		{130, 130, 1025}, // k just past a kc multiple
		{50, 196, 700},   // n = 14*14: a narrow right edge
	}
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		r := rand.New(rand.NewPCG(3, 4))
		for i, s := range shapes {
			tr := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
			for ti, x := range tr {
				// All four transpositions on the smaller shapes, one on the others, to stay fast.
				if s.m*s.n*s.k > 10_000_000 && ti != i%4 {
					continue
				}
				ab := [][2]float32{{1, 0}, {1, 1}, {0.5, -2}}[(i+ti)%3]
				checkOne(t, kn, r, x[0], x[1], s, 1+ti, ab[0], ab[1])
			}
		}
	})
}

// TestSgemmThreadGrids runs under several GOMAXPROCS values so that every parts grid
// shape is exercised, whatever the machine's core count.
func TestSgemmThreadGrids(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, procs := range []int{1, 2, 3, 4, 7} {
			runtime.GOMAXPROCS(procs)
			for _, s := range []shape{{200, 200, 60}, {20, 2000, 60}, {2000, 20, 60}, {97, 301, 150}} {
				checkOne(t, kn, r, procs%2 == 0, procs%3 == 0, s, 1, 1, 0.5)
			}
		}
	})
}

func TestSgemmConcurrentCalls(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			m, n, k := 90+g, 400, 130
			a, b := newMat(r, m, k, k), newMat(r, k, n, n)
			want := make([]float32, m*n)
			got := make([]float32, m*n)
			sgemmNaive(m, n, k, a.d, b.d, want)
			for it := 0; it < 5; it++ {
				Kernel{}.Sgemm(false, false, m, n, k, 1, a.d, k, b.d, n, 0, got, n)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-3 {
						errs <- fmt.Sprintf("goroutine %d: C[%d] = %v, want %v", g, i, got[i], want[i])
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func sgemmNaive(m, n, k int, a, b, c []float32) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			c[i*n+j] = float32(s)
		}
	}
}

func TestSgemmDegenerate(t *testing.T) {
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		nan := float32(math.NaN())
		// k == 0: C = beta*C, A and B not read (nil is fine).
		c := []float32{1, 2, 3, 4}
		kn.Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 2, c, 2)
		if c[0] != 2 || c[3] != 8 {
			t.Errorf("k=0, beta=2: got %v", c)
		}
		c = []float32{nan, nan, nan, nan}
		kn.Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 2)
		if c[0] != 0 || c[3] != 0 {
			t.Errorf("k=0, beta=0: got %v", c)
		}
		// alpha == 0: A and B are not read, NaNs in them do not propagate.
		a := []float32{nan, nan, nan, nan}
		c = []float32{1, 2, 3, 4}
		kn.Sgemm(false, false, 2, 2, 2, 0, a, 2, a, 2, 1, c, 2)
		if c[0] != 1 || c[3] != 4 {
			t.Errorf("alpha=0: got %v", c)
		}
		// beta == -0 behaves as beta == 0: C is not read.
		c = []float32{nan, nan, nan, nan}
		kn.Sgemm(false, false, 2, 2, 1, 1, []float32{1, 2}, 1, []float32{3, 4}, 2, float32(math.Copysign(0, -1)), c, 2)
		if c[0] != 3 || c[1] != 4 || c[2] != 6 || c[3] != 8 {
			t.Errorf("beta=-0: got %v", c)
		}
		// m == 0 or n == 0: nothing happens, even with nil slices.
		kn.Sgemm(false, false, 0, 5, 5, 1, nil, 5, nil, 5, 0, nil, 5)
		kn.Sgemm(true, true, 5, 0, 5, 1, nil, 5, nil, 5, 0, nil, 0)
	})
}

func TestSgemmShortSlicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a too-short C")
		}
	}()
	Kernel{}.Sgemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
}

func TestLookup(t *testing.T) {
	if _, err := Lookup("no-such-kernel"); err == nil {
		t.Error("Lookup accepted an unknown kernel")
	}
	for _, tc := range []struct{ name, want string }{
		{"", Kernels()[0]}, {"auto", Kernels()[0]}, {" Generic ", "generic"}, {"generic", "generic"},
	} {
		k, err := Lookup(tc.name)
		if err != nil || k.Name() != tc.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tc.name, k, err, tc.want)
		}
	}
	if got := (Kernel{}).Name(); got != Kernels()[0] {
		t.Errorf("zero Kernel is %s, want the fastest, %s", got, Kernels()[0])
	}
	t.Logf("kernels: %v", Kernels())
}

func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []shape{{64, 784, 576}, {20, 20, 20}} {
		a, b, c := newMat(r, s.m, s.k, s.k), newMat(r, s.k, s.n, s.n), newMat(r, s.m, s.n, s.n)
		f := func() { Kernel{}.Sgemm(false, true, s.m, s.n, s.k, 1, a.d, s.k, b.d, s.k, 0, c.d, s.n) }
		f()
		if n := testing.AllocsPerRun(20, f); n > 0.1 {
			t.Errorf("%v: %.1f allocations per call", s, n)
		}
	}
}

// TestSgemmSameBitsAnyThreads: every element of C is computed by one thread with the
// whole sum over k in a fixed order, so the thread count (which changes only the grid of
// C rectangles) never changes the bits, for any kernel family.
func TestSgemmSameBitsAnyThreads(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	forEachKernel(t, func(t *testing.T, kn Kernel) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, s := range []shape{{200, 200, 600}, {20, 2000, 300}, {2000, 20, 300}, {97, 301, 1500}, {64, 784, 576}} {
			for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}} {
				ar, ac := s.m, s.k
				if tr[0] {
					ar, ac = ac, ar
				}
				br, bc := s.k, s.n
				if tr[1] {
					br, bc = bc, br
				}
				a, b, c0 := newMat(r, ar, ac, ac), newMat(r, br, bc, bc), newMat(r, s.m, s.n, s.n)
				var want []float32
				for _, procs := range []int{1, 2, 3, 4, 7} {
					runtime.GOMAXPROCS(procs)
					c := append([]float32(nil), c0.d...)
					kn.Sgemm(tr[0], tr[1], s.m, s.n, s.k, 0.5, a.d, a.ld, b.d, b.ld, 0.25, c, c0.ld)
					runtime.GOMAXPROCS(prev)
					if want == nil {
						want = c
						continue
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
							t.Errorf("%v trans %v, GOMAXPROCS %d: C[%d] = %v, %v at GOMAXPROCS 1", s, tr, procs, i, c[i], want[i])
							break
						}
					}
				}
			}
		}
	})
}
