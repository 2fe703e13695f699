package gemm

import (
	"fmt"
	"testing"
)

// BenchmarkSmall compares SmallNN / SmallTN with Sgemm on the shapes of a Winograd
// convolution's 36 products (tiles × channels).
func BenchmarkSmall(b *testing.B) {
	var kn Kernel
	for _, ch := range [][3]int{{16, 16, 448}, {32, 32, 448}, {48, 16, 448}, {64, 64, 448}, {96, 32, 448}, {128, 128, 448}, {256, 128, 448},
		{64, 64, 224}, {128, 128, 112}, {256, 256, 64}, {512, 512, 64}} {
		cin, cout, tiles := ch[0], ch[1], ch[2]
		v := make([]float32, tiles*cin)
		u := make([]float32, cin*cout)
		m := make([]float32, tiles*cout)
		du := make([]float32, cin*cout)
		flops := 2 * float64(tiles*cin*cout)
		for _, tc := range []struct {
			name string
			f    func()
		}{
			{"nn-small", func() { kn.SmallNN(tiles, cout, cin, v, cin, u, cout, 0, m, cout) }},
			{"nn-sgemm", func() { kn.Sgemm(false, false, tiles, cout, cin, 1, v, cin, u, cout, 0, m, cout) }},
			{"tn-small", func() { kn.SmallTN(cin, cout, tiles, v, cin, m, cout, 1, du, cout) }},
			{"tn-sgemm", func() { kn.Sgemm(true, false, cin, cout, tiles, 1, v, cin, m, cout, 1, du, cout) }},
		} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", cin, cout, tiles, tc.name), func(b *testing.B) {
				for b.Loop() {
					tc.f()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
