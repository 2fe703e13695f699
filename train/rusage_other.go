//go:build !unix

package train

// peakRSSMiB is not available here.
func peakRSSMiB() float64 { return 0 }
