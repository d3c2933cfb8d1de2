package data

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	ts "github.com/sugarme/gotch/ts"
)

// synth returns a synthetic set whose Mean and Std are its own statistics,
// so normalised batches have mean 0 and std 1.
func synth(t testing.TB, n, channels int) *Set {
	t.Helper()
	s, err := synthetic(syntheticConfig{N: n, Channels: channels, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	mean, std := s.channelStats()
	for c := range s.C {
		s.Mean[c], s.Std[c] = float32(mean[c]), float32(std[c])
	}
	return s
}

func newLoader(t testing.TB, s *Set, opts LoaderOptions) *Loader {
	t.Helper()
	l, err := NewLoader(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// values reads a tensor back into Go.
func values[T float32 | int64](t testing.TB, x *ts.Tensor) []T {
	t.Helper()
	v, ok := x.Vals().([]T)
	if !ok {
		t.Fatalf("tensor of %v, not %T", x.DType(), v)
	}
	return v
}

func TestLoaderShapes(t *testing.T) {
	s := synth(t, 300, 3)
	tests := []struct {
		name     string
		opts     LoaderOptions
		batches  int
		lastSize int
	}{
		{"keep last", LoaderOptions{BatchSize: 128}, 3, 44},
		{"drop last", LoaderOptions{BatchSize: 128, DropLast: true}, 2, 128},
		{"exact", LoaderOptions{BatchSize: 100, Shuffle: true}, 3, 100},
		{"default size", LoaderOptions{}, 3, 44},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoader(t, s, tt.opts)
			if l.Len() != tt.batches {
				t.Fatalf("Len() = %d, want %d", l.Len(), tt.batches)
			}
			b, err := l.batch(0, l.Len()-1)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Drop()
			if got := b.Images.MustSize(); !slices.Equal(got, []int64{int64(tt.lastSize), 3, 32, 32}) {
				t.Errorf("images %v, want [%d 3 32 32]", got, tt.lastSize)
			}
			if got := b.Labels.MustSize(); !slices.Equal(got, []int64{int64(tt.lastSize)}) || b.Len() != tt.lastSize {
				t.Errorf("labels %v, Len %d, want %d", got, b.Len(), tt.lastSize)
			}
			if b.Images.DType() != gotch.Float || b.Labels.DType() != gotch.Int64 {
				t.Errorf("dtypes %v and %v, want float and int64", b.Images.DType(), b.Labels.DType())
			}
			if _, err := l.batch(0, l.Len()); err == nil {
				t.Error("batch past the end: no error")
			}
		})
	}
}

func TestLoaderNormalisationAndEpoch(t *testing.T) {
	s := synth(t, 250, 3)
	l := newLoader(t, s, LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 9})
	var sum, sq [3]float64
	var count float64
	var seen []int
	plane := 32 * 32
	for b, err := range l.Epoch(0) {
		if err != nil {
			t.Fatal(err)
		}
		x := values[float32](t, b.Images)
		y := values[int64](t, b.Labels)
		hx, hy, hidx, err := l.buildHostBatch(0, len(seen)/64)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x, hx) || !slices.Equal(y, hy) || !slices.Equal(b.Indices, hidx) {
			t.Fatalf("tensors differ from the host batch")
		}
		for j, k := range b.Indices {
			if y[j] != s.Labels[k] {
				t.Fatalf("label %d of image %d, want %d", y[j], k, s.Labels[k])
			}
			for c := range 3 {
				for _, v := range x[(j*3+c)*plane : (j*3+c+1)*plane] {
					sum[c] += float64(v)
					sq[c] += float64(v) * float64(v)
				}
			}
			count += float64(plane)
		}
		seen = append(seen, b.Indices...)
		if err := b.Drop(); err != nil {
			t.Fatal(err)
		}
		if err := b.Drop(); err != nil || b.Images != nil {
			t.Fatalf("second Drop: %v", err)
		}
	}
	for c := range 3 {
		mean := sum[c] / count
		std := math.Sqrt(sq[c]/count - mean*mean)
		if math.Abs(mean) > 1e-3 || math.Abs(std-1) > 1e-3 {
			t.Errorf("channel %d of the normalised epoch: mean %.5f std %.5f, want 0 and 1", c, mean, std)
		}
	}
	if slices.IsSorted(seen) {
		t.Error("shuffled epoch came in order")
	}
	slices.Sort(seen)
	for i, k := range seen {
		if i != k {
			t.Fatalf("epoch visits %v..., not every image once", seen[:i+1])
		}
	}
}

func TestLoaderDeterminism(t *testing.T) {
	s := synth(t, 200, 3)
	opts := LoaderOptions{BatchSize: 32, Shuffle: true, Augment: TrainAugment, Seed: 1}
	batch := func(opts LoaderOptions, epoch, i int) ([]float32, []int64) {
		b, err := newLoader(t, s, opts).batch(epoch, i)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Drop()
		return values[float32](t, b.Images), values[int64](t, b.Labels)
	}
	x1, y1 := batch(opts, 3, 2)
	x2, y2 := batch(opts, 3, 2)
	if !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Error("same seed, epoch and batch gave different batches")
	}
	other := opts
	other.Seed = 2
	for _, tt := range []struct {
		name     string
		opts     LoaderOptions
		epoch, i int
	}{{"other seed", other, 3, 2}, {"other epoch", opts, 4, 2}, {"other batch", opts, 3, 1}} {
		if x, _ := batch(tt.opts, tt.epoch, tt.i); slices.Equal(x, x1) {
			t.Errorf("%s gave the same batch", tt.name)
		}
	}
	// The iterator and random access agree.
	l := newLoader(t, s, opts)
	i := 0
	for b, err := range l.Epoch(3) {
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && !slices.Equal(values[float32](t, b.Images), x1) {
			t.Error("Epoch(3) batch 2 differs from batch(3, 2)")
		}
		b.Drop()
		i++
	}
	if i != l.Len() {
		t.Errorf("epoch yielded %d batches, want %d", i, l.Len())
	}
}

func TestLoaderAugmentation(t *testing.T) {
	s := synth(t, 64, 3)
	plain := newLoader(t, s, LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 4})
	aug := newLoader(t, s, LoaderOptions{BatchSize: 64, Shuffle: true, Seed: 4, Augment: TrainAugment})
	px, py, pidx, err := plain.buildHostBatch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ax, ay, aidx, err := aug.buildHostBatch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(py, ay) || !slices.Equal(pidx, aidx) {
		t.Fatal("augmentation changed the labels or the order")
	}
	const n, side, pad = 3 * 32 * 32, 32, 4
	changed, flips, shifts := 0, 0, 0
	for j := range 64 {
		p, a := px[j*n:(j+1)*n], ax[j*n:(j+1)*n]
		if !slices.Equal(p, a) {
			changed++
		}
		// The augmented image must be some pad-4 crop, maybe flipped, of the
		// original, with zero (normalised) padding.
		found := false
		for dy := 0; dy <= 2*pad && !found; dy++ {
			for dx := 0; dx <= 2*pad && !found; dx++ {
				for _, flip := range []bool{false, true} {
					if matchesCrop(p, a, side, dy-pad, dx-pad, flip, plane3(plain)) {
						found = true
						if flip {
							flips++
						}
						if dy != pad || dx != pad {
							shifts++
						}
						break
					}
				}
			}
		}
		if !found {
			t.Fatalf("augmented image %d is no padded crop or flip of the original", j)
		}
	}
	if changed < 50 || flips < 16 || flips > 48 || shifts < 50 {
		t.Errorf("of 64 images %d changed, %d flipped, %d shifted; want most changed and shifted, about half flipped", changed, flips, shifts)
	}
}

// plane3 returns the normalised value of raw pixel 0 per channel.
func plane3(l *Loader) []float32 {
	out := make([]float32, l.c)
	for c := range out {
		out[c] = l.lut[c][0]
	}
	return out
}

// matchesCrop reports whether a is p shifted by (oy, ox), then flipped
// when flip, with padding values zeros[c].
func matchesCrop(p, a []float32, side, oy, ox int, flip bool, zeros []float32) bool {
	for c := range 3 {
		for y := range side {
			for x := range side {
				cx := x
				if flip {
					cx = side - 1 - x
				}
				sy, sx := y+oy, cx+ox
				want := zeros[c]
				if sy >= 0 && sy < side && sx >= 0 && sx < side {
					want = p[c*side*side+sy*side+sx]
				}
				if a[c*side*side+y*side+x] != want {
					return false
				}
			}
		}
	}
	return true
}

func TestLoaderChannelsAndErrors(t *testing.T) {
	gray := synth(t, 10, 1)
	l := newLoader(t, gray, LoaderOptions{BatchSize: 4, Channels: 3})
	x, _, _, err := l.buildHostBatch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	plane := 32 * 32
	if len(x) != 4*3*plane || !slices.Equal(x[:plane], x[plane:2*plane]) || !slices.Equal(x[:plane], x[2*plane:3*plane]) {
		t.Error("gray image not replicated to three channels")
	}
	b, err := l.batch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Images.MustSize(); !slices.Equal(got, []int64{4, 3, 32, 32}) {
		t.Errorf("shape %v, want [4 3 32 32]", got)
	}
	b.Drop()

	rgb := synth(t, 10, 3)
	tests := []struct {
		name string
		set  *Set
		opts LoaderOptions
	}{
		{"rgb to 1 channel", rgb, LoaderOptions{Channels: 1}},
		{"negative batch", rgb, LoaderOptions{BatchSize: -1}},
		{"short mean", rgb, LoaderOptions{Mean: []float32{0.5}, Std: []float32{1, 1, 1}}},
		{"zero std", rgb, LoaderOptions{Mean: []float32{0, 0, 0}, Std: []float32{1, 0, 1}}},
		{"negative pad", rgb, LoaderOptions{Augment: Augment{Crop: true, Pad: -2}}},
		{"invalid set", &Set{Name: "bad", C: 1, H: 1, W: 1, N: 1}, LoaderOptions{}},
	}
	for _, tt := range tests {
		if _, err := NewLoader(tt.set, tt.opts); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestLoaderEarlyStop(t *testing.T) {
	l := newLoader(t, synth(t, 100, 3), LoaderOptions{BatchSize: 10, Prefetch: 1})
	n := 0
	for b, err := range l.Epoch(0) {
		if err != nil {
			t.Fatal(err)
		}
		b.Drop()
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("stopped after %d batches", n)
	}
}

func TestLoaderCUDA(t *testing.T) {
	dev := gotch.CudaIfAvailable()
	if dev == gotch.CPU {
		t.Skip("no CUDA device")
	}
	l := newLoader(t, synth(t, 50, 3), LoaderOptions{BatchSize: 16, Device: dev, Augment: TrainAugment})
	b, err := l.batch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	if got := b.Images.MustDevice(); got != dev {
		t.Errorf("images on %v, want %v", got, dev)
	}
	if got := b.Labels.MustDevice(); got != dev {
		t.Errorf("labels on %v, want %v", got, dev)
	}
	hx, _, _, _ := l.buildHostBatch(0, 0)
	cpu := b.Images.MustTo(gotch.CPU, false)
	defer cpu.MustDrop()
	if !slices.Equal(values[float32](t, cpu), hx) {
		t.Error("batch on the device differs from the host batch")
	}
}

// TestLoaderBatchTooLarge checks that a batch too large to allocate ends
// the epoch with an error instead of a panic that would end the process.
func TestLoaderBatchTooLarge(t *testing.T) {
	l := newLoader(t, synth(t, 8, 3), LoaderOptions{BatchSize: math.MaxInt64})
	var err error
	for b, e := range l.Epoch(0) {
		if b != nil {
			b.Drop()
		}
		err = e
	}
	if err == nil || !strings.Contains(err.Error(), "building a batch") {
		t.Fatalf("epoch error = %v, want the failed batch named", err)
	}
}
