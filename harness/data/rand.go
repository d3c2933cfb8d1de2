package data

import (
	"math/bits"
	"math/rand/v2"
)

// Note: everything random in this package (splits, subsets, shuffles,
// augmentation, synthetic images) is drawn from PCG generators seeded
// explicitly, through the helpers below rather than rand.Shuffle or
// rand.IntN, so that a seed gives the same data on every Go version and
// every machine: cached artifacts keyed by a seed stay meaningful.

// Stream identifiers keep the generators for different purposes apart
// under the same seed.
const (
	streamSplit uint64 = 0x5b1d_0000 + iota
	streamSubset
	streamShuffle
	streamAugment
	streamSynthetic
)

// newRand returns a PCG generator for the given seed, purpose and extra
// coordinates (epoch, batch index, ...).
func newRand(seed int64, stream uint64, coords ...uint64) *rand.PCG {
	s := stream
	for _, c := range coords {
		s = mix64(s ^ mix64(c+0x9e3779b97f4a7c15))
	}
	return rand.NewPCG(uint64(seed), mix64(s))
}

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// below returns a number in [0, n) using Lemire's multiply-shift. The bias
// (at most n/2^64) is irrelevant at data set sizes.
func below(r *rand.PCG, n int) int {
	hi, _ := bits.Mul64(r.Uint64(), uint64(n))
	return int(hi)
}

// shuffleInts permutes p in place (Fisher-Yates).
func shuffleInts(r *rand.PCG, p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := below(r, i+1)
		p[i], p[j] = p[j], p[i]
	}
}

// permutation returns a random permutation of 0..n-1.
func permutation(r *rand.PCG, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	shuffleInts(r, p)
	return p
}
