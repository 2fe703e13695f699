//go:build !amd64 || purego

package losses

var haveZ = false

func maxRowsZ(m, x *float32, stride, c, n int)                { panic("unreachable") }
func expRowsZ(e, x *float32, stride, c, n int, m, s *float32) { panic("unreachable") }
func ceGradRowZ(o *float32, inv *float64, lab *int, n, cl, ignore int, scale float64) {
	panic("unreachable")
}
