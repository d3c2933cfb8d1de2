package measure

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		sorted []float64
		p      float64
		want   float64
	}{
		{[]float64{5}, 50, 5},
		{[]float64{5}, 99, 5},
		{[]float64{1, 2}, 50, 1.5},
		{[]float64{1, 2, 3, 4}, 50, 2.5},
		{[]float64{1, 2, 3, 4}, 0, 1},
		{[]float64{1, 2, 3, 4}, 100, 4},
		{[]float64{1, 2, 3, 4, 5}, 90, 4.6},                             // numpy.percentile(.., 90, method="linear")
		{[]float64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 99, 99}, // between closest ranks
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("percentile(%v, %g) = %g, want %g", tt.sorted, tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile(nil) = %g, want NaN", got)
	}
}

func tinyModel(t *testing.T) *vit.Model {
	t.Helper()
	img, patch, dim, depth, heads, classes := 16, 8, 32, 2, 2, 3
	cfg, err := vit.Custom("", vit.Overrides{ImgSize: &img, PatchSize: &patch, EmbedDim: &dim,
		Depth: &depth, NumHeads: &heads, NumClasses: &classes})
	if err != nil {
		t.Fatal(err)
	}
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m
}

func TestForward(t *testing.T) {
	m := tinyModel(t)
	// A model that reduces tokens, split by images and by tokens.
	img, patch, dim, depth, heads, classes := 16, 4, 32, 2, 2, 3
	cfg, err := vit.Custom("", vit.Overrides{ImgSize: &img, PatchSize: &patch, EmbedDim: &dim,
		Depth: &depth, NumHeads: &heads, NumClasses: &classes})
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithBlocks()
	cfg.Blocks[0].MergeR = 4
	tome, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer tome.Drop()
	tests := []struct {
		model     *vit.Model
		o         Options
		wantSplit int
	}{
		{m, Options{Batch: 1, Warmup: 0, Iters: 1}, 0},
		{m, Options{Batch: 4, Warmup: 2, Iters: 9}, 0},
		{m, Options{Batch: 1, Warmup: 1, Iters: 3, Split: 2}, 2},
		{m, Options{Batch: 5, Warmup: 1, Iters: 3, Split: 2}, 2},
		{tome, Options{Batch: 4, Warmup: 1, Iters: 3, Split: 2}, 2},
		{tome, Options{Batch: 1, Warmup: 1, Iters: 3, Split: 2}, 2},
		{m, Options{Batch: 4, Warmup: 1, Iters: 3, Split: 2, Auto: true}, -1}, // either, as measured
		{m, Options{Batch: 4, Warmup: 1, Iters: 3, Auto: true}, 0},            // nothing to choose from
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threads, blas := torchrt.NumThreads(), torchrt.BLASThreads()
	for _, tt := range tests {
		o := tt.o
		l, err := Forward(context.Background(), tt.model, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if tt.wantSplit < 0 && (l.Split == 0 || l.Split == o.Split) {
			tt.wantSplit = l.Split
		}
		if len(l.Samples) != o.Iters || l.Batch != o.Batch || l.Device != gotch.CPU.Name || l.Split != tt.wantSplit {
			t.Errorf("%+v: %d samples, batch %d, device %q, split %d; want split %d", o, len(l.Samples), l.Batch, l.Device, l.Split, tt.wantSplit)
		}
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99) {
			t.Errorf("%+v: percentiles p50 %g p90 %g p99 %g", o, l.P50, l.P90, l.P99)
		}
		if want := float64(o.Batch) / l.P50; l.Throughput != want {
			t.Errorf("%+v: throughput %g, want %g", o, l.Throughput, want)
		}
		// A split pass sets both pools to one thread while it runs.
		if got, gotBLAS := torchrt.NumThreads(), torchrt.BLASThreads(); got != threads || gotBLAS != blas {
			t.Errorf("%+v: left libtorch at %d threads and OpenBLAS at %d, were %d and %d", o, got, gotBLAS, threads, blas)
		}
	}
}

func TestSplitFaster(t *testing.T) {
	for _, tt := range []struct {
		split, eager []float64
		want         bool
	}{
		{[]float64{1, 2, 3}, []float64{2, 3, 4}, true},
		{[]float64{3, 2, 1}, []float64{1, 1, 9}, false},
		{[]float64{2, 2, 2}, []float64{2, 2, 2}, false}, // a tie keeps eager
		{[]float64{1, 9, 9, 9, 1}, []float64{5, 5, 5, 5, 5}, false},
	} {
		if got := splitFaster(tt.split, tt.eager); got != tt.want {
			t.Errorf("splitFaster(%v, %v) = %v, want %v", tt.split, tt.eager, got, tt.want)
		}
	}
}

func TestForwardErrors(t *testing.T) {
	m := tinyModel(t)
	for _, o := range []Options{{Batch: 0, Iters: 1}, {Batch: 1, Iters: 0}, {Batch: 1, Iters: 1, Warmup: -1}} {
		if _, err := Forward(context.Background(), m, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Forward(ctx, m, Options{Batch: 1, Iters: 1000000}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}
}

func TestShare(t *testing.T) {
	tests := []struct {
		iters, rounds int
		want          []int
	}{
		{50, 5, []int{10, 10, 10, 10, 10}},
		{10, 3, []int{4, 3, 3}},
		{2, 5, []int{1, 1, 0, 0, 0}},
		{7, 1, []int{7}},
	}
	for _, tt := range tests {
		sum := 0
		for r, want := range tt.want {
			got := share(tt.iters, tt.rounds, r)
			if got != want {
				t.Errorf("share(%d, %d, %d) = %d, want %d", tt.iters, tt.rounds, r, got, want)
			}
			sum += got
		}
		if sum != tt.iters {
			t.Errorf("share(%d, %d, ·) sums to %d", tt.iters, tt.rounds, sum)
		}
	}
}

func TestInterleaved(t *testing.T) {
	opts := []Options{{Batch: 1, Warmup: 2, Iters: 7}, {Batch: 3, Warmup: 1, Iters: 2}}
	img, patch, dim, depth, heads, classes := 16, 8, 32, 2, 2, 3
	cfg, err := vit.Custom("", vit.Overrides{ImgSize: &img, PatchSize: &patch, EmbedDim: &dim,
		Depth: &depth, NumHeads: &heads, NumClasses: &classes})
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("no such artifact")
	var order []int
	load := func(i int) (*vit.Model, error) {
		order = append(order, i)
		if i == 1 {
			return nil, broken
		}
		return vit.New(cfg, gotch.CPU)
	}
	lats, errs := Interleaved(context.Background(), 3, load, opts, 3)
	// Round-robin over the models in every round; the broken one is tried once.
	if want := []int{0, 1, 2, 0, 2, 0, 2}; !slices.Equal(order, want) {
		t.Errorf("load order %v, want %v", order, want)
	}
	if !errors.Is(errs[1], broken) || lats[1] != nil {
		t.Errorf("model 1: err %v, lats %v; want its load error and no results", errs[1], lats[1])
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil {
			t.Fatalf("model %d: %v", i, errs[i])
		}
		for j, o := range opts {
			l := lats[i][j]
			if len(l.Samples) != o.Iters || l.Batch != o.Batch {
				t.Errorf("model %d option %d: %d samples at batch %d, want %d at %d", i, j, len(l.Samples), l.Batch, o.Iters, o.Batch)
			}
			if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99) {
				t.Errorf("model %d option %d: p50 %g p90 %g p99 %g", i, j, l.P50, l.P90, l.P99)
			}
			// Each sample knows its round: 7 iterations over 3 rounds
			// split 3+2+2, 2 over 3 split 1+1+0.
			want := map[int][]int{0: {0, 0, 0, 1, 1, 2, 2}, 1: {0, 1}}[j]
			if !slices.Equal(l.Rounds, want) {
				t.Errorf("model %d option %d: rounds %v, want %v", i, j, l.Rounds, want)
			}
		}
	}
	if opts[0].Device.Name != "" {
		t.Errorf("Interleaved changed the caller's options: %+v", opts[0])
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs = Interleaved(ctx, 2, load, opts, 2)
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: model %d err = %v", i, err)
		}
	}
	_, errs = Interleaved(context.Background(), 1, load, []Options{{Batch: 0, Iters: 1}}, 2)
	if errs[0] == nil {
		t.Error("batch 0: no error")
	}
}
