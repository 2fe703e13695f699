package gemm

import (
	"fmt"
	"testing"
)

func BenchmarkMicroKernel(b *testing.B) {
	for _, name := range Kernels() {
		k := impls[name]
		for _, kc := range []int{64, 256, 512} {
			b.Run(fmt.Sprintf("%s/kc%d", name, kc), func(b *testing.B) {
				mr, nr := k.mr, k.nr()
				a := make([]float32, mr*kc)
				bb := make([]float32, nr*kc*8)
				c := make([]float32, mr*nr)
				kern := k.kern[mr][k.nv]
				i := 0
				for b.Loop() {
					kern(&a[0], &bb[(i&7)*nr*kc], &c[0], kc, nr, 1)
					i++
				}
				b.ReportMetric(2*float64(mr*nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
