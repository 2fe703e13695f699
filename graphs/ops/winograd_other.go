//go:build !amd64 || purego

package ops

func pickWinogradKernels() wgKernels { return wgGoKernels }

func winogradKernelSets() []wgKernels { return []wgKernels{wgGoKernels} }

const haveZ = false

func sumZ(x *float32, n int) float64                 { panic("unreachable") }
func sumSqDevZ(x *float32, n int, m float64) float64 { panic("unreachable") }
func sumDyDevZ(dy, x, mx *float32, n int, m float64, a, b float32) (float64, float64) {
	panic("unreachable")
}
func affineZ(y, x *float32, n int, a, b, floor float32) { panic("unreachable") }
func bnBackZ(dx, dy, x, mx *float32, n int, k1, k2, k3, m, a, b float32) {
	panic("unreachable")
}
func maskZ(dx, dy, y *float32, n int)                        { panic("unreachable") }
func addZ(dst, a, b *float32, n int)                         { panic("unreachable") }
func colSum64Z(acc *float64, src *float32, npix, stride int) { panic("unreachable") }
