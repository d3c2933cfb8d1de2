package quantize

import (
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
)

// FQ-ViT's quantizer shapes (Lin et al., IJCAI 2022).
const (
	// ShapePTF is the Power-of-Two Factor of a LayerNorm input: per
	// channel scales scale1·2^α_c, α_c ∈ {0,1,2,3}, one zero point.
	ShapePTF = "ptf"
	// ShapeLogIntSoftmax is Log-Int-Softmax at an attention map; its
	// input scale is the attn_logits quantizer's (Quantize fills it in).
	ShapeLogIntSoftmax = "log-int-softmax"
)

// PTFSpec is FQ-ViT's PtfObserver (models/ptq/observer/ptf.py) as a
// per-channel uniform quantizer on the channel axis (2) of [B,N,D]: lo
// and hi are the channels' ranges over all calibration batches, last the
// last batch's rows [D, M], on which each channel's factor 2^α minimising
// the squared error is chosen, first minimum on ties, as their code does.
// The grid is unsigned ([0, 2^bits-1], their uint8 activations). Scales
// and zero point follow their float32 arithmetic.
func PTFSpec(lo, hi []float64, last *ts.Tensor, bits int) (*vit.QuantSpec, error) {
	if len(lo) == 0 || last == nil {
		return nil, fmt.Errorf("ptf: no data observed")
	}
	qmin, qmax := Grid(bits, false)
	maxT, minT := float32(hi[0]), float32(lo[0])
	for i := range hi {
		maxT, minT = max(maxT, float32(hi[i])), min(minT, float32(lo[i]))
	}
	scale8 := (maxT - minT) / float32(qmax-qmin)
	scale8 = max(scale8, float32(math.Nextafter32(1, 2)-1)) // torch.finfo(float32).eps
	scale1 := scale8 / 2 / 2 / 2
	zp := float32(qmin) - float32(math.RoundToEven(float64(minT/scale8)))
	zp = min(max(zp, float32(qmin)), float32(qmax))
	d := len(lo)
	best := make([]float64, d)
	alpha := make([]int, d)
	var scores [4][]float64
	ts.NoGrad(func() {
		for k := range 4 {
			s := scale1 * float32(int(1)<<k)
			st := ts.MustOfSlice([]float32{s})
			q := last.MustDiv(st, false).MustAddScalar(ts.FloatScalar(float64(zp)), true).MustRound(true).
				MustClamp(ts.FloatScalar(float64(qmin)), ts.FloatScalar(float64(qmax)), true).
				MustSubScalar(ts.FloatScalar(float64(zp)), true).MustMul(st, true)
			e := q.MustSub(last, true).MustAbs(true).MustPowTensorScalar(ts.FloatScalar(2), true).
				MustMeanDim([]int64{1}, false, last.DType(), true)
			scores[k] = e.Float64Values()
			e.MustDrop()
			st.MustDrop()
		}
	})
	for c := range d {
		best[c], alpha[c] = scores[0][c], 0
		for k := 1; k < 4; k++ {
			if scores[k][c] < best[c] {
				best[c], alpha[c] = scores[k][c], k
			}
		}
	}
	spec := &vit.QuantSpec{Kind: vit.QuantUniform, Bits: bits, Axis: 2, QMin: qmin, QMax: qmax,
		Scale: make([]float64, d), ZeroPoint: make([]int64, d)}
	for c := range d {
		spec.Scale[c] = float64(scale1 * float32(int(1)<<alpha[c]))
		spec.ZeroPoint[c] = int64(zp)
	}
	return spec, nil
}

// fillLogIntSoftmax gives each Log-Int-Softmax quantizer in acts the
// scale of its block's attn_logits quantizer.
func fillLogIntSoftmax(acts map[string]*vit.QuantSpec) error {
	for key, s := range acts {
		if s.Kind != vit.QuantLogIntSoftmax {
			continue
		}
		lk := strings.TrimSuffix(key, vit.SiteAttnMap.String()) + vit.SiteAttnLogits.String()
		l, ok := acts[lk]
		if !ok || l.Kind != vit.QuantUniform || l.Axis >= 0 {
			return fmt.Errorf("log-int-softmax at %s needs a per-tensor uniform quantizer at %s", key, lk)
		}
		s.Scale = []float64{l.Scale[0]}
	}
	return nil
}
