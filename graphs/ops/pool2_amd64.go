//go:build !purego

package ops

// up2RowsZ: see upsample_amd64.s.
//
//go:noescape
func up2RowsZ(dst0, dst1, src *float32, n int)

// down2RowsZ: see upsample_amd64.s.
//
//go:noescape
func down2RowsZ(dst, r0, r1 *float32, n int)

// maxPool2x2RowZ: see pool2_amd64.s.
//
//go:noescape
func maxPool2x2RowZ(y *float32, idx *int32, r0, r1 *float32, n int, base, w int32) int
