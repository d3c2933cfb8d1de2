package train

import (
	"context"
	"iter"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

type fixedBatch struct{ n int }

func (f fixedBatch) NumBatches() int { return f.n }
func (f fixedBatch) Batches(int) iter.Seq2[*ts.Tensor, *ts.Tensor] {
	return func(yield func(*ts.Tensor, *ts.Tensor) bool) {
		for range f.n {
			x := ts.MustRandn([]int64{128, 3, 32, 32}, gotch.Float, gotch.CPU)
			y := ts.MustRandint(10, []int64{128}, gotch.Int64, gotch.CPU)
			if !yield(x, y) {
				return
			}
		}
	}
}

// BenchmarkTrainStep times one AdamW step of a 0.55M-parameter ViT
// (patch 4, width 128, depth 4) at batch 128 on 32x32 images: on one
// worker of 2 intra-op threads, and data-parallel on 2 workers of one
// thread each, the runner's default on 2 CPUs.
func BenchmarkTrainStep(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"workers=1", Options{}},
		{"workers=2", Options{Workers: 2, WorkerThreads: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkTrainStep(b, bc.opts) })
	}
}

func benchmarkTrainStep(b *testing.B, opts Options) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	torchrt.SetNumThreads(2)
	cfg := vit.Config{ImgSize: 32, PatchSize: 4, InChans: 3, NumClasses: 10, EmbedDim: 128, Depth: 4, NumHeads: 4, MLPRatio: 2, QKVBias: true}
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Drop()
	r := Recipe{Epochs: 1, LR: 1e-3, WeightDecay: 0.05, Optimizer: "adamw", LabelSmoothing: 0.1, GradClip: 1}
	if _, err := Fit(context.Background(), m, fixedBatch{3}, r, opts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	res, err := Fit(context.Background(), m, fixedBatch{b.N}, r, opts)
	if err != nil {
		b.Fatal(err)
	}
	if res.ParallelErr != nil {
		b.Fatalf("data-parallel training fell back to one worker: %v", res.ParallelErr)
	}
	b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "img/s")
}
