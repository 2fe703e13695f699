package data

import (
	"math/bits"
	"math/rand/v2"
)

// Streams keep the random numbers drawn for different purposes independent.
const (
	streamShuffle uint64 = iota + 1
	streamSample
	streamDemo
)

// mix64 is the splitmix64 finaliser: a bijective hash of one 64-bit word.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rng is a counter-based generator: its state is a hash of (seed, stream, a, b),
// so the numbers drawn for one sample of one epoch never depend on what was drawn
// for any other. Every method is defined here (not delegated to math/rand/v2's
// Rand, whose derived methods may change between Go releases), so a run resumes
// bit for bit on a newer toolchain: only the PCG-DXSM step comes from the stdlib.
type rng struct{ pcg rand.PCG }

func newRNG(seed, stream uint64, a, b int) rng {
	h := mix64(seed ^ mix64(stream))
	h = mix64(h ^ uint64(a))
	h = mix64(h ^ uint64(b))
	var r rng
	r.pcg.Seed(h, mix64(h^0x5851f42d4c957f2d))
	return r
}

func (r *rng) uint64() uint64 { return r.pcg.Uint64() }

// float64 returns a uniform number in [0, 1) with 53 random bits.
func (r *rng) float64() float64 { return float64(r.uint64()>>11) * 0x1p-53 }

// uniform returns a uniform number in [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 {
	return lo + float64(r.float64()*(hi-lo)) // explicit conversion: no fused multiply-add
}

// intn returns a uniform integer in [0, n), without modulo bias (Lemire's method).
func (r *rng) intn(n int) int {
	if n <= 0 {
		panic("data: rng.intn: n <= 0")
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.uint64(), un)
		}
	}
	return int(hi)
}

// coin returns true with probability 1/2.
func (r *rng) coin() bool { return r.uint64()>>63 == 1 }

// permutation returns a uniformly random permutation of 0..n-1 (Fisher-Yates).
func (r *rng) permutation(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
