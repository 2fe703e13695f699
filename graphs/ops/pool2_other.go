//go:build !amd64 || purego

package ops

func up2RowsZ(dst0, dst1, src *float32, n int) { panic("unreachable") }
func down2RowsZ(dst, r0, r1 *float32, n int)   { panic("unreachable") }

func maxPool2x2RowZ(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32) int {
	panic("unreachable")
}
