package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
	beta           float32
}

var benchShapes = []benchShape{
	{"sq256", false, false, 256, 256, 256, 0},
	{"sq512", false, false, 512, 512, 512, 0},
	{"sq1024", false, false, 1024, 1024, 1024, 0},
	{"sq2048", false, false, 2048, 2048, 2048, 0},
	// VGG convolutions as im2col GEMMs: M=Cout, N=H*W, K=Cin*9.
	{"conv64x12544x576", false, false, 64, 12544, 576, 0},
	{"conv128x3136x1152", false, false, 128, 3136, 1152, 0},
	{"conv512x196x4608", false, false, 512, 196, 4608, 0},
	// Backward: filter gradient dW += dY·colᵀ, data gradient dcol = Wᵀ·dY.
	{"wgradABt64x576x12544", false, true, 64, 576, 12544, 1},
	{"dgradAtB576x12544x64", true, false, 576, 12544, 64, 0},
}

// BenchmarkSgemm reports GFLOP/s per kernel family, shape and thread count.
func BenchmarkSgemm(b *testing.B) {
	prevP := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prevP)
	for _, kern := range Kernels() {
		for _, s := range benchShapes {
			for _, threads := range []int{1, 2} {
				if kern == "generic" && s.m*s.n*s.k > 1<<28 {
					continue
				}
				b.Run(fmt.Sprintf("%s/%s/t%d", kern, s.name, threads), func(b *testing.B) {
					kn, err := Lookup(kern)
					if err != nil {
						b.Fatal(err)
					}
					runtime.GOMAXPROCS(threads)
					r := rand.New(rand.NewPCG(1, 1))
					ar, ac := s.m, s.k
					if s.transA {
						ar, ac = ac, ar
					}
					br, bc := s.k, s.n
					if s.transB {
						br, bc = bc, br
					}
					a := newMat(r, ar, ac, ac)
					bm := newMat(r, br, bc, bc)
					c := newMat(r, s.m, s.n, s.n)
					b.ReportAllocs()
					for b.Loop() {
						kn.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a.d, a.ld, bm.d, bm.ld, s.beta, c.d, c.ld)
					}
					flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
