// Package techtest holds what the tests of training and of the
// techniques share: a learnable synthetic data source (Quadrants) and a
// tiny model configuration. It is imported by tests only.
package techtest

import (
	"iter"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// TinyConfig is a ViT for Quadrants: 3x16x16 images in 4x4 patches (16
// tokens and the class token), 4 classes, 32 wide, 2 blocks of 2 heads,
// MLP ratio 2.
func TinyConfig() vit.Config {
	return vit.Config{Name: "tiny", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 4,
		EmbedDim: 32, Depth: 2, NumHeads: 2, MLPRatio: 2, QKVBias: true}
}

// NewModel makes a model of cfg on the CPU, its weights drawn from seed.
func NewModel(t testing.TB, cfg vit.Config, seed int64) *vit.Model {
	t.Helper()
	torchrt.ManualSeed(seed)
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Quadrants is a 4-class problem on 3x16x16 images: the class says which
// quadrant is bright, under Gaussian noise of standard deviation 0.5. It
// implements train.Source; epoch e draws its noise from Seed+e and shifts
// the class order by e.
type Quadrants struct {
	N, Batch int
	Seed     int64
}

// NumBatches is the number of whole batches.
func (q Quadrants) NumBatches() int { return q.N / q.Batch }

// Batches yields images and labels; the consumer frees both.
func (q Quadrants) Batches(epoch int) iter.Seq2[*ts.Tensor, *ts.Tensor] {
	return func(yield func(*ts.Tensor, *ts.Tensor) bool) {
		torchrt.ManualSeed(q.Seed + int64(epoch))
		for i := 0; i < q.NumBatches(); i++ {
			labels := make([]int64, q.Batch)
			pix := make([]float32, q.Batch*3*16*16)
			for b := range labels {
				c := (i*q.Batch + b + epoch) % 4
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
			x := ts.MustOfSlice(pix).MustReshape([]int64{int64(q.Batch), 3, 16, 16}, true)
			noise := ts.MustRandn([]int64{int64(q.Batch), 3, 16, 16}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true)
			x = x.MustAdd(noise, true)
			noise.MustDrop()
			if !yield(x, ts.MustOfSlice(labels)) {
				return
			}
		}
	}
}

// Images returns the images of one epoch, labels dropped; the caller
// frees them.
func (q Quadrants) Images(epoch int) []*ts.Tensor {
	var out []*ts.Tensor
	for x, y := range q.Batches(epoch) {
		y.MustDrop()
		out = append(out, x)
	}
	return out
}
