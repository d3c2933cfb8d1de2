package prune

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques/compress"
)

// SoftMasks are ViT-Slim's learnable masks (Chavan et al. 2022): one
// scalar per attention head, multiplying the head's output before proj,
// and one per MLP neuron, multiplying its activation before fc2, all
// starting at 1.
type SoftMasks struct {
	Heads   []*ts.Tensor // [block] of [heads], requires grad
	Neurons []*ts.Tensor // [block] of [hidden], requires grad

	m, v []*ts.Tensor // Adam's moments, per mask in all() order
	t    int          // Adam's step count
}

// maskTap multiplies an activation [..., units x width] by a mask of
// units, each repeated width times (a head's hd channels, or 1 for a
// neuron).
type maskTap struct {
	mask  *ts.Tensor
	width int64
}

func (t *maskTap) Tap(x *ts.Tensor) *ts.Tensor {
	m := t.mask
	if t.width > 1 {
		m = t.mask.MustRepeatInterleaveSelfInt(t.width, []int64{0}, []int64{}, false)
		defer m.MustDrop()
	}
	return x.MustMul(m, false)
}

// AttachSoftMasks puts masks of ones on m's heads and neurons, as taps at
// the proj and fc2 inputs, which must be free. Detach removes the taps
// and frees the masks.
func AttachSoftMasks(m *vit.Model) (*SoftMasks, error) {
	s := &SoftMasks{}
	for _, b := range m.Blocks {
		if b.Taps[vit.SiteProjIn] != nil || b.Taps[vit.SiteFC2In] != nil {
			s.Detach(m)
			return nil, fmt.Errorf("prune: block %d has a tap at proj or fc2 input already (a quantized model?): soft masks need them", b.Index)
		}
		h := ts.MustOnes([]int64{int64(b.Heads)}, gotch.Float, m.VS.Device()).MustSetRequiresGrad(true, true)
		n := ts.MustOnes([]int64{int64(b.FC1.Out)}, gotch.Float, m.VS.Device()).MustSetRequiresGrad(true, true)
		s.Heads, s.Neurons = append(s.Heads, h), append(s.Neurons, n)
		b.Taps[vit.SiteProjIn] = &maskTap{mask: h, width: int64(b.HeadDim)}
		b.Taps[vit.SiteFC2In] = &maskTap{mask: n, width: 1}
	}
	return s, nil
}

// Detach removes the mask taps from m and frees the masks.
func (s *SoftMasks) Detach(m *vit.Model) {
	for i, b := range m.Blocks {
		if i < len(s.Heads) {
			b.Taps[vit.SiteProjIn], b.Taps[vit.SiteFC2In] = nil, nil
		}
	}
	for _, t := range append(append(s.all(), s.m...), s.v...) {
		if t != nil {
			t.MustDrop()
		}
	}
	s.Heads, s.Neurons, s.m, s.v = nil, nil, nil, nil
}

// l1 is the sum of |mask| over every mask, a scalar tensor in the graph.
func (s *SoftMasks) l1() *ts.Tensor {
	var total *ts.Tensor
	for _, t := range s.all() {
		a := t.MustAbs(false).MustSum(gotch.Float, true)
		if total == nil {
			total = a
			continue
		}
		total = total.MustAdd(a, true)
		a.MustDrop()
	}
	return total
}

// step moves every mask by Adam (as ViT-Slim trains its masks; the
// model's optimizer does not hold them) and zeroes its gradient.
func (s *SoftMasks) step(lr float64) {
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	s.t++
	c1, c2 := 1-math.Pow(beta1, float64(s.t)), 1-math.Pow(beta2, float64(s.t))
	torchrt.NoGrad(func() {
		for i, t := range s.all() {
			g := t.MustGrad(false)
			if !g.MustDefined() {
				g.MustDrop()
				continue
			}
			if s.m == nil {
				s.m, s.v = make([]*ts.Tensor, len(s.all())), make([]*ts.Tensor, len(s.all()))
			}
			if s.m[i] == nil {
				s.m[i], s.v[i] = g.MustZerosLike(false), g.MustZerosLike(false)
			}
			s.m[i].MustMulScalar_(ts.FloatScalar(beta1))
			gm := g.MustMulScalar(ts.FloatScalar(1-beta1), false)
			s.m[i].MustAdd_(gm)
			gm.MustDrop()
			s.v[i].MustMulScalar_(ts.FloatScalar(beta2))
			g2 := g.MustMul(g, false).MustMulScalar(ts.FloatScalar(1-beta2), true)
			s.v[i].MustAdd_(g2)
			g2.MustDrop()
			den := s.v[i].MustDivScalar(ts.FloatScalar(c2), false).MustSqrt(true).MustAddScalar(ts.FloatScalar(eps), true)
			upd := s.m[i].MustDivScalar(ts.FloatScalar(c1), false).MustDiv(den, true).MustMulScalar(ts.FloatScalar(lr), true)
			t.MustSub_(upd)
			upd.MustDrop()
			den.MustDrop()
			g.MustZero_()
			g.MustDrop()
		}
	})
}

// all lists the masks, heads then neurons.
func (s *SoftMasks) all() []*ts.Tensor {
	return append(append([]*ts.Tensor{}, s.Heads...), s.Neurons...)
}

// Importance is |mask| of every head and neuron.
func (s *SoftMasks) Importance() *Importance {
	imp := &Importance{}
	abs := func(t *ts.Tensor) []float64 {
		v := t.MustDetach(false).Float64Values(true)
		for i := range v {
			v[i] = math.Abs(v[i])
		}
		return v
	}
	for i := range s.Heads {
		imp.Heads = append(imp.Heads, abs(s.Heads[i]))
		imp.Neurons = append(imp.Neurons, abs(s.Neurons[i]))
	}
	return imp
}

// Fold multiplies the masks into the weights they scale (each head's
// columns of proj, each neuron's column of fc2), so that m without the
// taps computes what it computed with them.
func (s *SoftMasks) Fold(m *vit.Model) error {
	for i, b := range m.Blocks {
		for _, f := range []struct {
			l     *vit.Linear
			mask  *ts.Tensor
			width int64
		}{{b.Proj, s.Heads[i], int64(b.HeadDim)}, {b.FC2, s.Neurons[i], 1}} {
			w := f.l.Weight
			if f.l.Rank > 0 {
				w = f.l.Down // a factored layer's inputs are the Down factor's columns
			}
			if w == nil {
				return fmt.Errorf("prune: block %d: no weight to fold a mask into", b.Index)
			}
			torchrt.NoGrad(func() {
				col := f.mask.MustDetach(false)
				if f.width > 1 {
					col = col.MustRepeatInterleaveSelfInt(f.width, []int64{0}, []int64{}, true)
				}
				w.MustMul_(col) // [out, in] x [in]: scales each input column
				col.MustDrop()
			})
		}
	}
	return nil
}

// maskLR is the masks' Adam learning rate: they start at 1 and must
// spread within a search of a fraction of an epoch, which the model's
// fine-tuning rate (a tenth of its peak) would not do.
const maskLR = 1e-2

// softMaskLoss is the stage's loss plus l1 x the masks' L1 norm.
type softMaskLoss struct {
	base  train.Loss
	masks *SoftMasks
	l1    float64
}

func (l softMaskLoss) Loss(m *vit.Model, x, y *ts.Tensor) *ts.Tensor {
	loss := l.base.Loss(m, x, y)
	pen := l.masks.l1()
	scaled := pen.MustMulScalar(ts.FloatScalar(l.l1), true)
	out := loss.MustAdd(scaled, true)
	scaled.MustDrop()
	return out
}

// searchSoftMasks learns the masks of m for epochs (ViT-Slim's search),
// the model's weights training with them, and returns the importance of
// every unit, |mask|, with the masks folded into m's weights. base is
// the stage's loss (nil: cross-entropy with the recipe's smoothing).
func searchSoftMasks(ctx context.Context, env compress.Env, m *vit.Model, base train.Loss, epochs, l1, lr float64) (*Importance, error) {
	masks, err := AttachSoftMasks(m)
	if err != nil {
		return nil, err
	}
	defer masks.Detach(m)
	if base == nil {
		base = train.CrossEntropy{}
	}
	err = env.Train(ctx, m, compress.Training{
		Epochs: epochs, LR: lr, OneWorker: true,
		Loss:      softMaskLoss{base: base, masks: masks, l1: l1},
		AfterStep: func() { masks.step(maskLR) },
	})
	if err != nil {
		return nil, fmt.Errorf("soft-mask search: %w", err)
	}
	imp := masks.Importance()
	if err := masks.Fold(m); err != nil {
		return nil, err
	}
	return imp, nil
}
