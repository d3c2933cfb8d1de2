package prune

import (
	"context"
	"fmt"
	"iter"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// testConfig is a small ViT on 16x16 images: 16 patches + class token.
func testConfig(distilled bool) vit.Config {
	return vit.Config{Name: "prune-test", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 4,
		EmbedDim: 32, Depth: 3, NumHeads: 4, MLPRatio: 2, QKVBias: true, Distilled: distilled}
}

func newModel(t testing.TB, cfg vit.Config, seed int64) *vit.Model {
	t.Helper()
	torchrt.ManualSeed(seed)
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
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

// quadrants is a learnable 4-class source: the bright quadrant of a
// 16x16 image, under noise.
type quadrants struct{ n, batch int }

func (q quadrants) NumBatches() int { return q.n / q.batch }

func (q quadrants) Batches(epoch int) iter.Seq2[*ts.Tensor, *ts.Tensor] {
	return func(yield func(*ts.Tensor, *ts.Tensor) bool) {
		torchrt.ManualSeed(int64(100 + epoch))
		for i := 0; i < q.NumBatches(); i++ {
			labels := make([]int64, q.batch)
			pix := make([]float32, q.batch*3*16*16)
			for b := range labels {
				c := (i*q.batch + b + epoch) % 4
				labels[b] = int64(c)
				oy, ox := 8*(c/2), 8*(c%2)
				for ch := 0; ch < 3; ch++ {
					for y := 0; y < 8; y++ {
						for x := 0; x < 8; x++ {
							pix[((b*3+ch)*16+oy+y)*16+ox+x] = 1
						}
					}
				}
			}
			x := ts.MustOfSlice(pix).MustReshape([]int64{int64(q.batch), 3, 16, 16}, true)
			noise := ts.MustRandn([]int64{int64(q.batch), 3, 16, 16}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true)
			x = x.MustAdd(noise, true)
			noise.MustDrop()
			if !yield(x, ts.MustOfSlice(labels)) {
				return
			}
		}
	}
}

// fakeEnv is a techniques.Env over quadrants, recording fine-tunings.
type fakeEnv struct {
	t        testing.TB
	teachers map[string]func() *vit.Model
	tunes    []techniques.FineTune
	// onTune, when set, runs after each fine-tuning with the model.
	onTune func(m *vit.Model, ft techniques.FineTune)
}

var _ techniques.Env = (*fakeEnv)(nil)

func (e *fakeEnv) Device() gotch.Device { return gotch.CPU }
func (e *fakeEnv) Seed() int64          { return 0 }
func (e *fakeEnv) Logf(format string, args ...any) {
	e.t.Logf(format, args...)
}

func (e *fakeEnv) Calibration(ctx context.Context, n int) ([]*ts.Tensor, error) {
	var out []*ts.Tensor
	for x, y := range (quadrants{n: n, batch: min(n, 16)}).Batches(7) {
		y.MustDrop()
		out = append(out, x)
	}
	return out, nil
}

func (e *fakeEnv) FineTune(ctx context.Context, m *vit.Model, ft techniques.FineTune) error {
	e.tunes = append(e.tunes, ft)
	r := train.Recipe{Epochs: ft.Epochs, LR: 1e-3, Optimizer: "adamw", Schedule: "constant", WeightDecay: 0.05}
	if ft.LR > 0 {
		r.LR = ft.LR
	}
	o := train.Options{AfterStep: ft.AfterStep}
	if ft.Loss != nil {
		o.Loss = ft.Loss
	}
	if _, err := train.Fit(ctx, m, quadrants{n: 128, batch: 32}, r, o); err != nil {
		return err
	}
	if e.onTune != nil {
		e.onTune(m, ft)
	}
	return nil
}

func (e *fakeEnv) Model(ctx context.Context, name string) (*vit.Model, error) {
	mk, ok := e.teachers[name]
	if !ok {
		return nil, fmt.Errorf("no model %q", name)
	}
	return mk(), nil
}
