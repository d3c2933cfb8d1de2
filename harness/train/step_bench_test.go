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
// (patch 4, width 128, depth 4) at batch 128 on 32x32 images.
func BenchmarkTrainStep(b *testing.B) {
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
	Fit(context.Background(), m, fixedBatch{3}, r, Options{})
	b.ResetTimer()
	if _, err := Fit(context.Background(), m, fixedBatch{b.N}, r, Options{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(128*b.N)/b.Elapsed().Seconds(), "img/s")
}
