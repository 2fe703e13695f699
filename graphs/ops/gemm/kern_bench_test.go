package gemm

import (
	"fmt"
	"testing"
	"unsafe"
)

func BenchmarkMicroKernel(b *testing.B) {
	for _, k := range supported {
		name := k.name
		for mr := 1; mr <= k.mr; mr++ {
			for nv := 1; nv <= k.nv; nv++ {
				kc := 256
				b.Run(fmt.Sprintf("%s/%dx%d", name, mr, nv), func(b *testing.B) {
					nr := nv * k.lanes
					a := make([]float32, mr*kc)
					bb := make([]float32, nr*kc*8)
					c := make([]float32, mr*nr)
					kern := k.kern[mr][nv]
					i := 0
					for b.Loop() {
						kern(&a[0], &bb[(i&7)*nr*kc], &c[0], kc, nr, 1, uintptr(unsafe.Pointer(&a[0])), 0, 0)
						i++
					}
					b.ReportMetric(2*float64(mr*nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
