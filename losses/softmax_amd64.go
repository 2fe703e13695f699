//go:build !purego

package losses

import "golang.org/x/sys/cpu"

// haveZ: the AVX-512 softmax kernels of softmax_amd64.s can run.
var haveZ = cpu.X86.HasAVX512F

//go:noescape
func maxRowsZ(m, x *float32, stride, c, n int)

//go:noescape
func expRowsZ(e, x *float32, stride, c, n int, m, s *float32)

//go:noescape
func ceGradRowZ(o *float32, inv *float64, lab *int, n, cl, ignore int, scale float64)
