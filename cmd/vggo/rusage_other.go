//go:build !unix

package main

// peakRSSMiB is not available here.
func peakRSSMiB() float64 { return 0 }
