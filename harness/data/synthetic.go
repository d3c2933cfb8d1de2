package data

import (
	"cmp"
	"fmt"
	"math"
)

// syntheticConfig describes a generated data set. Zero fields take the
// defaults in brackets.
type syntheticConfig struct {
	N        int   // images [1000]
	Classes  int   // classes [10]
	Channels int   // channels, 1 or 3 [3]
	Size     int   // height and width [32]
	Seed     int64 // generator seed; different seeds give different images of the same classes
}

// Default sizes of the synthetic splits returned by load("synthetic").
const (
	syntheticTrainN = 2000
	syntheticTestN  = 500
)

// synthetic returns a deterministic data set for tests: each class is a
// colour (a hue, or a gray level for one channel) and an oriented stripe pattern (class k has orientation k*180/K
// degrees and 2, 3 or 4 cycles per image), each image adds a random phase,
// a random brightness shift and pixel noise. A small model separates the
// classes within an epoch or two; a model that cannot learn is broken.
// Labels cycle through the classes, so every class has N/K images (the
// first N mod K classes one more).
func synthetic(cfg syntheticConfig) (*Set, error) {
	cfg.N = cmp.Or(cfg.N, 1000)
	cfg.Classes = cmp.Or(cfg.Classes, 10)
	cfg.Channels = cmp.Or(cfg.Channels, 3)
	cfg.Size = cmp.Or(cfg.Size, 32)
	switch {
	case cfg.N < 0 || cfg.Classes < 1 || cfg.Size < 1:
		return nil, fmt.Errorf("synthetic data set: bad config %+v", cfg)
	case cfg.Channels != 1 && cfg.Channels != 3:
		return nil, fmt.Errorf("synthetic data set: %d channels, want 1 or 3", cfg.Channels)
	}
	s := &Set{
		Name: fmt.Sprintf("synthetic/seed%d", cfg.Seed),
		N:    cfg.N, C: cfg.Channels, H: cfg.Size, W: cfg.Size,
		Key: fmt.Sprintf("synthetic(v1,n=%d,k=%d,c=%d,size=%d,seed=%d)", cfg.N, cfg.Classes, cfg.Channels, cfg.Size, cfg.Seed),
	}
	for k := range cfg.Classes {
		s.Classes = append(s.Classes, fmt.Sprintf("class%d", k))
	}
	for range cfg.Channels {
		s.Mean = append(s.Mean, 0.5)
		s.Std = append(s.Std, 0.25)
	}
	s.Pixels = make([]uint8, s.N*s.imageLen())
	s.Labels = make([]int64, s.N)
	plane := cfg.Size * cfg.Size
	parallel(s.N, 0, func(i int) {
		k := i % cfg.Classes
		s.Labels[i] = int64(k)
		r := newRand(cfg.Seed, streamSynthetic, uint64(i))
		theta := math.Pi * float64(k) / float64(cfg.Classes)
		freq := float64(2 + k%3)
		phase := 2 * math.Pi * float64(r.Uint64()>>11) / (1 << 53)
		shift := float64(below(r, 17)) - 8
		cos, sin := math.Cos(theta), math.Sin(theta)
		img := s.image(i)
		for c := range cfg.Channels {
			// Hues spread around the colour wheel; gray sets get
			// brightness levels instead.
			base := 128 + 70*math.Cos(2*math.Pi*(float64(k)/float64(cfg.Classes)-float64(c)/3))
			if cfg.Channels == 1 {
				base = 40 + 175*float64(k)/float64(max(cfg.Classes-1, 1))
			}
			for y := 0; y < cfg.Size; y++ {
				for x := 0; x < cfg.Size; x++ {
					u := (float64(x)*cos + float64(y)*sin) / float64(cfg.Size)
					v := base + shift + 50*math.Sin(2*math.Pi*freq*u+phase) + float64(below(r, 31)) - 15
					img[c*plane+y*cfg.Size+x] = uint8(math.Round(min(max(v, 0), 255)))
				}
			}
		}
	})
	return s, nil
}
