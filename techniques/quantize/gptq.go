package quantize

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// GPTQ's parameters, those of the authors' reference code (gptq.py,
// fasterquant's defaults).
const (
	// GPTQBlockSize is the number of columns rounded together before the
	// accumulated error is propagated to the remaining columns at once
	// (the lazy batch update).
	GPTQBlockSize = 128
	// GPTQPercDamp is the dampening added to the Hessian's diagonal, as a
	// fraction of the diagonal's mean, so that it can be inverted.
	GPTQPercDamp = 0.01
)

// InputStats accumulates the inputs of one linear layer over calibration
// batches: their second moment H = 2/n Σ x xᵀ (GPTQ's Hessian of the
// layer's squared output error) and their mean, in float64. As a vit.Tap
// it observes its input and passes it on unchanged. Call Drop when done.
type InputStats struct {
	In  int64 // the layer's input features
	sum *ts.Tensor
	xx  *ts.Tensor
	n   int64
}

// NewInputStats returns empty statistics for a layer of in input features.
func NewInputStats(in int) *InputStats { return &InputStats{In: int64(in)} }

// Tap implements vit.Tap: it folds every token of x [..., In] in and
// returns x.
func (s *InputStats) Tap(x *ts.Tensor) *ts.Tensor {
	s.Observe(x)
	return x
}

// Observe folds the tokens of x [..., In] in (under no-grad).
func (s *InputStats) Observe(x *ts.Tensor) {
	torchrt.NoGrad(func() {
		rows := x.MustReshape([]int64{-1, s.In}, false).MustTotype(gotch.Double, true)
		defer rows.MustDrop()
		if s.xx == nil {
			dev := x.MustDevice()
			s.xx = ts.MustZeros([]int64{s.In, s.In}, gotch.Double, dev)
			s.sum = ts.MustZeros([]int64{s.In}, gotch.Double, dev)
		}
		tr := rows.MustT(false)
		s.xx.MustAddmm_(tr, rows)
		tr.MustDrop()
		sm := rows.MustSumDimIntlist([]int64{0}, false, gotch.Double, false)
		s.sum.MustAdd_(sm)
		sm.MustDrop()
		s.n += rows.MustSize()[0]
	})
}

// Tokens is the number of input vectors seen.
func (s *InputStats) Tokens() int64 { return s.n }

// Hessian returns H = 2/n Σ x xᵀ [In, In], float64, on the inputs'
// device, or an error when no input was seen.
func (s *InputStats) Hessian() (*ts.Tensor, error) {
	if s.n == 0 {
		return nil, fmt.Errorf("no calibration input seen")
	}
	return s.xx.MustMulScalar(ts.FloatScalar(2/float64(s.n)), false), nil
}

// Mean returns the mean input [In], float64, or an error when no input
// was seen.
func (s *InputStats) Mean() (*ts.Tensor, error) {
	if s.n == 0 {
		return nil, fmt.Errorf("no calibration input seen")
	}
	return s.sum.MustDivScalar(ts.FloatScalar(float64(s.n)), false), nil
}

// Drop frees the statistics.
func (s *InputStats) Drop() {
	for _, t := range []*ts.Tensor{s.xx, s.sum} {
		if t != nil {
			t.MustDrop()
		}
	}
	s.xx, s.sum, s.n = nil, nil, 0
}

// hostFloat64s copies t's values to Go, from whatever device.
func hostFloat64s(t *ts.Tensor) []float64 {
	c := t.MustTo(gotch.CPU, false)
	defer c.MustDrop()
	return torchrt.Float64s(c)
}

// rowGrid is a uniform quantizer's grid per output row of a weight.
type rowGrid struct {
	scale, zero []float64 // one per row, or one for all
	qmin, qmax  float64
}

func gridOf(spec *vit.QuantSpec, rows int) (rowGrid, error) {
	if spec.Kind != vit.QuantUniform {
		return rowGrid{}, fmt.Errorf("%s quantizer: GPTQ needs a uniform grid", spec.Kind)
	}
	switch {
	case spec.Axis < 0 && len(spec.Scale) == 1:
	case spec.Axis == 0 && len(spec.Scale) == rows:
	default:
		return rowGrid{}, fmt.Errorf("quantizer with %d scales on axis %d for %d output rows: GPTQ needs one per tensor or one per output row", len(spec.Scale), spec.Axis, rows)
	}
	g := rowGrid{scale: spec.Scale, zero: make([]float64, len(spec.ZeroPoint)), qmin: float64(spec.QMin), qmax: float64(spec.QMax)}
	for i, z := range spec.ZeroPoint {
		g.zero[i] = float64(z)
	}
	return g, nil
}

// round puts x of row r on its grid point: (clamp(round(x/s) + z) - z)·s,
// the reference's quantize().
func (g rowGrid) round(r int, x float64) float64 {
	if len(g.scale) == 1 {
		r = 0
	}
	s, z := g.scale[r], g.zero[r]
	q := math.Min(math.Max(math.RoundToEven(x/s)+z, g.qmin), g.qmax)
	return (q - z) * s
}

// GPTQ returns the weight w [out, in] rounded to spec's grid by GPTQ
// (Frantar et al., ICLR 2023), following fasterquant in the authors'
// reference code: given the Hessian h [in, in] of the layer's inputs
// (InputStats.Hessian), it rounds the columns one at a time and moves
// each column's rounding error, weighted by the inverse Hessian, onto the
// columns not yet rounded, so that the errors cancel in the layer's
// output. Inputs that never fire (H_ii = 0) have their columns zeroed;
// GPTQPercDamp of the diagonal's mean is added to it; the error spreads
// within blocks of GPTQBlockSize columns, then to the rest at once.
//
// The grid is spec's, found by the calibrator on the float weight and
// kept fixed, as the reference finds its quantizer before the loop. The
// columns are taken in their stored order: the reference's act-order
// option (desc_act: largest H_ii first, off by default) is not
// implemented, and neither is its group-wise grid (groupsize): the grids
// here are per tensor or per output channel. The result is float32 on
// w's device and exactly on spec's grid (spec.Apply leaves it as it is).
// w and h are not freed.
func GPTQ(w, h *ts.Tensor, spec *vit.QuantSpec) (*ts.Tensor, error) {
	size := w.MustSize()
	if len(size) != 2 {
		return nil, fmt.Errorf("gptq: weight of shape %v, want [out, in]", size)
	}
	rows, cols := int(size[0]), int(size[1])
	if hs := h.MustSize(); len(hs) != 2 || hs[0] != size[1] || hs[1] != size[1] {
		return nil, fmt.Errorf("gptq: Hessian of shape %v for a weight of shape %v", hs, size)
	}
	g, err := gridOf(spec, rows)
	if err != nil {
		return nil, fmt.Errorf("gptq: %w", err)
	}
	var out *ts.Tensor
	torchrt.NoGrad(func() {
		var q []float64
		q, err = gptqRows(hostFloat64s(w), hostFloat64s(h), rows, cols, g)
		if err != nil {
			return
		}
		t := ts.MustOfSlice(q).MustView([]int64{size[0], size[1]}, true).
			MustTotype(gotch.Float, true).MustTo(w.MustDevice(), true)
		// Snap to the float32 grid exactly as the model computes it: the
		// float64 grid point and fake_quantize's float32 one can differ in
		// their last bits.
		out = spec.Apply(t)
		t.MustDrop()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// gptqRows is GPTQ on plain values: w [rows, cols] and the Hessian h
// [cols, cols], both row-major (both are modified). It returns the
// rounded weight.
func gptqRows(w, h []float64, rows, cols int, g rowGrid) ([]float64, error) {
	// Dead inputs: H_ii = 0 means the input is always 0, so its weights
	// do not matter; the reference zeroes them and sets H_ii = 1.
	var diagSum float64
	for i := 0; i < cols; i++ {
		if h[i*cols+i] == 0 {
			h[i*cols+i] = 1
			for r := 0; r < rows; r++ {
				w[r*cols+i] = 0
			}
		}
		diagSum += h[i*cols+i]
	}
	damp := GPTQPercDamp * diagSum / float64(cols)
	for i := 0; i < cols; i++ {
		h[i*cols+i] += damp
	}
	u, err := upperInverseCholesky(h, cols)
	if err != nil {
		return nil, err
	}
	q := make([]float64, rows*cols)
	for i1 := 0; i1 < cols; i1 += GPTQBlockSize {
		i2 := min(i1+GPTQBlockSize, cols)
		count := i2 - i1
		errs := make([]float64, rows*count) // Err1 [rows, count]
		for r := 0; r < rows; r++ {
			wr := w[r*cols : (r+1)*cols]
			for i := 0; i < count; i++ {
				c := i1 + i
				x := wr[c]
				v := g.round(r, x)
				q[r*cols+c] = v
				e := (x - v) / u[c*cols+c]
				errs[r*count+i] = e
				// W1[:, i:] -= err1 · Hinv1[i, i:] (column i itself is done).
				uc := u[c*cols : (c+1)*cols]
				for j := c + 1; j < i2; j++ {
					wr[j] -= e * uc[j]
				}
			}
		}
		if i2 < cols {
			lazyUpdate(w, errs, u, rows, cols, i1, i2)
		}
	}
	return q, nil
}

// lazyUpdate subtracts Err1 · Hinv[i1:i2, i2:] from w[:, i2:] (one
// matrix product per block of columns, the reference's lazy batch update).
func lazyUpdate(w, errs, u []float64, rows, cols, i1, i2 int) {
	count, rest := i2-i1, cols-i2
	e := ts.MustOfSlice(errs).MustView([]int64{int64(rows), int64(count)}, true)
	blk := make([]float64, count*rest)
	for i := 0; i < count; i++ {
		copy(blk[i*rest:(i+1)*rest], u[(i1+i)*cols+i2:(i1+i+1)*cols])
	}
	b := ts.MustOfSlice(blk).MustView([]int64{int64(count), int64(rest)}, true)
	p := e.MustMm(b, true)
	b.MustDrop()
	upd := torchrt.Float64s(p)
	p.MustDrop()
	for r := 0; r < rows; r++ {
		wr := w[r*cols+i2 : (r+1)*cols]
		ur := upd[r*rest : (r+1)*rest]
		for j := range wr {
			wr[j] -= ur[j]
		}
	}
}

// upperInverseCholesky returns the upper Cholesky factor of H⁻¹ [n, n]
// row-major: H = L Lᵀ, H⁻¹ from L, then H⁻¹ = Uᵀ U, as the reference
// computes it.
func upperInverseCholesky(h []float64, n int) ([]float64, error) {
	ht := ts.MustOfSlice(h).MustView([]int64{int64(n), int64(n)}, true)
	l, err := ht.LinalgCholesky(false, true)
	if err != nil {
		return nil, fmt.Errorf("gptq: the dampened Hessian is not positive definite: %w", err)
	}
	inv := l.MustCholeskyInverse(false, true)
	u, err := inv.LinalgCholesky(true, true)
	if err != nil {
		return nil, fmt.Errorf("gptq: the inverse Hessian is not positive definite: %w", err)
	}
	out := torchrt.Float64s(u)
	u.MustDrop()
	return out, nil
}

// CorrectBias adds to bias [out] the mean output error of rounding w
// [out, in] to wq over inputs of mean mean [in]: b += E[x] (W - Ŵ)ᵀ, so
// that the layer's mean output over those inputs is what it was
// (empirical bias correction, Nagel et al., ICCV 2019, as NNCF and AIMET
// do it). bias is modified in place (under no-grad); nothing is freed.
func CorrectBias(bias, w, wq, mean *ts.Tensor) {
	torchrt.NoGrad(func() {
		d := w.MustTotype(gotch.Double, false).MustSub(wq, true)
		m := mean.MustTotype(gotch.Double, false).MustTo(d.MustDevice(), true)
		delta := d.MustMv(m, true).MustTotype(bias.DType(), true).MustTo(bias.MustDevice(), true)
		m.MustDrop()
		bias.MustAdd_(delta)
		delta.MustDrop()
	})
}

// correctedLayer is a linear layer the corrected rounding handles, with
// the tap that sees its input.
type correctedLayer struct {
	l    *vit.Linear
	name string // its weight's parameter name
	key  string // the activation site of its input
}

// correctionUnits groups the dense linear layers of p's weights whose
// inputs the corrected rounding collects: one unit per block (its qkv,
// proj, fc1 and fc2, whose inputs one pass over the calibration images
// collects, as the reference collects a decoder layer's), then the
// head(s). The weights it leaves out (the patch embedding, a
// convolution, and factored layers) are rounded to nearest.
func correctionUnits(m *vit.Model, p *Plan) [][]correctedLayer {
	var units [][]correctedLayer
	add := func(ls []correctedLayer) {
		var u []correctedLayer
		for _, c := range ls {
			if _, ok := p.Weights[c.name]; ok && c.l.Rank == 0 {
				u = append(u, c)
			}
		}
		if len(u) > 0 {
			units = append(units, u)
		}
	}
	layer := func(l *vit.Linear, key string) correctedLayer {
		return correctedLayer{l: l, name: l.Name + ".weight", key: key}
	}
	for _, b := range m.Blocks {
		add([]correctedLayer{
			layer(b.QKV, vit.ActKey(b.Index, vit.SiteQKVIn)),
			layer(b.Proj, vit.ActKey(b.Index, vit.SiteProjIn)),
			layer(b.FC1, vit.ActKey(b.Index, vit.SiteFC1In)),
			layer(b.FC2, vit.ActKey(b.Index, vit.SiteFC2In)),
		})
	}
	heads := []correctedLayer{layer(m.Head, vit.ActHead)}
	if m.HeadDist != nil {
		heads = append(heads, layer(m.HeadDist, vit.ActHeadDist))
	}
	add(heads)
	return units
}

// roundCorrected rounds the weights of p to their grids (specs, by
// parameter name) with p's rounding and bias correction. It goes through
// the model in order, as the reference does: the inputs of a block's
// layers are collected in one pass over the batches with the earlier
// blocks' weights already rounded (and the block's own still float, the
// reference's default without true-sequential), then the block's layers
// are rounded and their biases corrected. Activations are not quantized
// during the passes (their quantizers are calibrated afterwards). Weights
// outside correctionUnits are rounded to nearest first, and layers
// without a bias keep none.
func roundCorrected(ctx context.Context, m *vit.Model, batches []*ts.Tensor, p *Plan, specs map[string]*vit.QuantSpec) error {
	if len(batches) == 0 {
		return fmt.Errorf("quantize: rounding %s and bias correction need calibration images", p.Rounding)
	}
	units := correctionUnits(m, p)
	done := map[string]bool{}
	for _, u := range units {
		for _, c := range u {
			done[c.name] = true
		}
	}
	for name, spec := range specs {
		if done[name] {
			continue
		}
		w, _ := m.VS.Root().Get(name)
		torchrt.NoGrad(func() {
			q := spec.Apply(w)
			w.Copy_(q)
			q.MustDrop()
		})
	}
	pts := m.TapPoints()
	for _, u := range units {
		stats, err := collectInputs(ctx, m, batches, pts, u)
		if err != nil {
			return err
		}
		for i, c := range u {
			if err == nil {
				err = roundLayer(c, specs[c.name], stats[i], p)
			}
			stats[i].Drop()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// BiasFree lists the linear layers whose bias Quantize would correct for
// p but cannot, having none.
func BiasFree(m *vit.Model, p *Plan) []string {
	var out []string
	if !p.BiasCorrection {
		return nil
	}
	for _, u := range correctionUnits(m, p) {
		for _, c := range u {
			if c.l.Bias == nil {
				out = append(out, c.l.Name)
			}
		}
	}
	return out
}

// collectInputs runs the batches through m with InputStats at the input
// of each layer of u (after any tap already there) and restores the taps.
func collectInputs(ctx context.Context, m *vit.Model, batches []*ts.Tensor, pts map[string]*vit.Tap, u []correctedLayer) ([]*InputStats, error) {
	stats := make([]*InputStats, 0, len(u))
	saved := make([]vit.Tap, 0, len(u))
	defer func() {
		for i, t := range saved {
			*pts[u[i].key] = t
		}
	}()
	for _, c := range u {
		pt, ok := pts[c.key]
		if !ok {
			return nil, fmt.Errorf("quantize: the model has no activation site %s", c.key)
		}
		s := NewInputStats(c.l.In)
		stats = append(stats, s)
		saved = append(saved, *pt)
		*pt = vit.ChainTap(*pt, s)
	}
	if err := forwardAll(ctx, m, batches); err != nil {
		for _, s := range stats {
			s.Drop()
		}
		return nil, err
	}
	return stats, nil
}

// roundLayer rounds one layer's weight as p asks given its input
// statistics, and corrects its bias (a layer without one is skipped).
func roundLayer(c correctedLayer, spec *vit.QuantSpec, st *InputStats, p *Plan) error {
	w := c.l.Weight
	var q *ts.Tensor
	if p.Rounding == techniques.RoundGPTQ {
		h, err := st.Hessian()
		if err != nil {
			return fmt.Errorf("quantize weight %s: %w", c.name, err)
		}
		q, err = GPTQ(w, h, spec)
		h.MustDrop()
		if err != nil {
			return fmt.Errorf("quantize weight %s: %w", c.name, err)
		}
	} else {
		torchrt.NoGrad(func() { q = spec.Apply(w) })
	}
	defer q.MustDrop()
	if p.BiasCorrection && c.l.Bias != nil {
		mean, err := st.Mean()
		if err != nil {
			return fmt.Errorf("bias correction of %s: %w", c.l.Name, err)
		}
		CorrectBias(c.l.Bias, w, q, mean)
		mean.MustDrop()
	}
	torchrt.NoGrad(func() { w.Copy_(q) })
	return nil
}
