package prune

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques/compress/compresstest"
)

// testConfig is a small ViT on 16x16 images: 16 patches + class token.
func testConfig(distilled bool) vit.Config {
	return vit.Config{Name: "prune-test", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 4,
		EmbedDim: 32, Depth: 3, NumHeads: 4, MLPRatio: 2, QKVBias: true, Distilled: distilled}
}

// images returns n random images for cfg.
func images(cfg vit.Config, n int, seed int64) *ts.Tensor {
	torchrt.ManualSeed(seed)
	return ts.MustRandn([]int64{int64(n), int64(cfg.InChans), int64(cfg.ImgSize), int64(cfg.ImgSize)}, gotch.Float, gotch.CPU)
}

func logits(m *vit.Model, x *ts.Tensor) *ts.Tensor {
	var y *ts.Tensor
	torchrt.NoGrad(func() { y = m.Forward(x) })
	return y
}

func maxAbsDiff(a, b *ts.Tensor) float64 {
	d := a.MustSub(b, false).MustAbs(true).MustMax(true)
	defer d.MustDrop()
	return d.Float64Values()[0]
}

// newEnv is a compress.Env that trains on 128 quadrant images (seed
// 100 + epoch), serves calibration images from the quadrants of epoch 7
// in batches of up to 16, and logs to t.
func newEnv(t testing.TB, teachers map[string]func() *vit.Model) *compresstest.Env {
	return &compresstest.Env{
		Data: techtest.Quadrants{N: 128, Batch: 32, Seed: 100},
		Calib: func(n int) []*ts.Tensor {
			return techtest.Quadrants{N: n, Batch: min(n, 16), Seed: 100}.Images(7)
		},
		Teachers: teachers,
		Log:      t.Logf,
	}
}
