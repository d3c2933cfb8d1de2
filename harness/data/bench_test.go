package data

import (
	"context"
	"testing"
)

// BenchmarkDecodeCIFAR10Train measures the first load of the CIFAR-10
// training split: reading the JPEG archive and decoding 50,000 images on
// all cores, without the cache.
func BenchmarkDecodeCIFAR10Train(b *testing.B) {
	opts := Options{NoCache: true}
	loadReal(b, "cifar10", trainSplit, opts)
	b.ResetTimer()
	for b.Loop() {
		s, err := load(context.Background(), "cifar10", trainSplit, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(s.Pixels)))
	}
}

// BenchmarkLoadCIFAR10TrainCached measures a load of the CIFAR-10
// training split from the cache (the project's .cache/data; the first
// run fills it): one read of 150 MiB and its checksum.
func BenchmarkLoadCIFAR10TrainCached(b *testing.B) {
	loadReal(b, "cifar10", trainSplit, Options{}) // fills the cache
	b.ResetTimer()
	for b.Loop() {
		s, err := load(context.Background(), "cifar10", trainSplit, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(s.Pixels)))
	}
}

// BenchmarkLoaderEpochCIFAR10 measures building one augmented, shuffled
// training epoch of synthetic CIFAR-sized images as CPU tensors.
func BenchmarkLoaderEpochCIFAR10(b *testing.B) {
	s, err := synthetic(syntheticConfig{N: 10000})
	if err != nil {
		b.Fatal(err)
	}
	l, err := NewLoader(s, LoaderOptions{BatchSize: 128, Shuffle: true, Augment: TrainAugment})
	if err != nil {
		b.Fatal(err)
	}
	epoch := 0
	for b.Loop() {
		for batch, err := range l.Epoch(epoch) {
			if err != nil {
				b.Fatal(err)
			}
			batch.Drop()
		}
		epoch++
	}
	b.ReportMetric(float64(s.N)*float64(b.N)/b.Elapsed().Seconds(), "img/s")
}
