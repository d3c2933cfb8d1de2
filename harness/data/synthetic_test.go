package data

import (
	"context"
	"slices"
	"testing"
)

func TestSynthetic(t *testing.T) {
	tests := []struct {
		cfg     syntheticConfig
		n, c, s int
	}{
		{syntheticConfig{}, 1000, 3, 32},
		{syntheticConfig{N: 30, Classes: 3, Channels: 1, Size: 8, Seed: 7}, 30, 1, 8},
	}
	for _, tt := range tests {
		s, err := synthetic(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.N != tt.n || s.C != tt.c || s.H != tt.s || s.W != tt.s {
			t.Errorf("%+v: %dx%dx%dx%d", tt.cfg, s.N, s.C, s.H, s.W)
		}
		counts := s.classCounts()
		if slices.Min(counts) != slices.Max(counts) {
			t.Errorf("%+v: unbalanced classes %v", tt.cfg, counts)
		}
		again, _ := synthetic(tt.cfg)
		if !slices.Equal(s.Pixels, again.Pixels) || s.Key != again.Key {
			t.Errorf("%+v: not deterministic", tt.cfg)
		}
		tt.cfg.Seed++
		other, _ := synthetic(tt.cfg)
		if slices.Equal(s.Pixels, other.Pixels) || s.Key == other.Key {
			t.Errorf("%+v: the seed changes nothing", tt.cfg)
		}
	}
	for _, bad := range []syntheticConfig{{N: -1}, {Channels: 2}, {Size: -3}} {
		if _, err := synthetic(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestSyntheticLearnable checks that the classes carry signal: a
// nearest-centroid classifier on per-channel image means, fitted on the
// train split, labels the test split almost perfectly.
func TestSyntheticLearnable(t *testing.T) {
	for _, channels := range []int{3, 1} {
		opts := Options{Channels: channels}
		train, test, err := Open(context.Background(), "synthetic", opts)
		if err != nil {
			t.Fatal(err)
		}
		if train.N != syntheticTrainN || test.N != syntheticTestN || train.C != channels {
			t.Fatalf("sizes %d/%d, %d channels", train.N, test.N, train.C)
		}
		feature := func(s *Set, i int) []float64 {
			img, plane := s.image(i), s.H*s.W
			f := make([]float64, s.C)
			for c := range s.C {
				for _, v := range img[c*plane : (c+1)*plane] {
					f[c] += float64(v)
				}
				f[c] /= float64(plane)
			}
			return f
		}
		k := len(train.Classes)
		centroid := make([][]float64, k)
		for c := range centroid {
			centroid[c] = make([]float64, train.C)
		}
		for i := range train.N {
			for c, v := range feature(train, i) {
				centroid[train.Labels[i]][c] += v / float64(train.N/k)
			}
		}
		right := 0
		for i := range test.N {
			f, best, bestD := feature(test, i), -1, 0.0
			for cls, cen := range centroid {
				d := 0.0
				for c := range f {
					d += (f[c] - cen[c]) * (f[c] - cen[c])
				}
				if best < 0 || d < bestD {
					best, bestD = cls, d
				}
			}
			if int64(best) == test.Labels[i] {
				right++
			}
		}
		if acc := float64(right) / float64(test.N); acc < 0.9 {
			t.Errorf("%d channels: nearest-centroid accuracy %.3f, want >= 0.9", channels, acc)
		} else {
			t.Logf("%d channels: nearest-centroid accuracy %.3f", channels, acc)
		}
	}
}
