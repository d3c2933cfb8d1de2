package quantize

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// layerCase is a linear layer and inputs for the GPTQ and bias
// correction tests: weights w [out, in], inputs x [batches, seq, in].
type layerCase struct {
	name                  string
	out, in, batches, seq int
	bits                  int
	symmetric, perChannel bool
	dead                  []int // input features that are always 0
	seed                  uint64
}

var layerCases = []layerCase{
	{name: "w4 per-channel symmetric, 3 column blocks, dead inputs", out: 24, in: 300, batches: 8, seq: 50, bits: 4,
		symmetric: true, perChannel: true, dead: []int{5, 131}, seed: 1},
	{name: "w3 per-tensor affine", out: 16, in: 96, batches: 6, seq: 40, bits: 3, seed: 2},
	{name: "w8 per-channel affine", out: 32, in: 160, batches: 4, seq: 64, bits: 8, perChannel: true, seed: 3},
}

// data returns the case's weights and inputs, float32 values: inputs are
// correlated (a low-rank mixture of Gaussians plus noise) and off-centre,
// as a transformer's are.
func (c layerCase) data() (w, x []float32) {
	rng := rand.New(rand.NewPCG(c.seed, 77))
	w = make([]float32, c.out*c.in)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.1)
	}
	const k = 8
	mix := make([]float64, k*c.in)
	for i := range mix {
		mix[i] = rng.NormFloat64()
	}
	off := make([]float64, c.in)
	for j := range off {
		off[j] = 0.5 * rng.NormFloat64()
	}
	dead := map[int]bool{}
	for _, d := range c.dead {
		dead[d] = true
	}
	tokens := c.batches * c.seq
	x = make([]float32, tokens*c.in)
	z := make([]float64, k)
	for t := 0; t < tokens; t++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for j := 0; j < c.in; j++ {
			if dead[j] {
				continue
			}
			v := off[j] + 0.3*rng.NormFloat64()
			for i := range z {
				v += z[i] * mix[i*c.in+j]
			}
			x[t*c.in+j] = float32(v)
		}
	}
	return w, x
}

// tensors returns the case's weight [out, in], inputs [batches, seq, in]
// and the weight's grid, calibrated (min/max) on the weight.
func (c layerCase) tensors(t *testing.T) (w, x *ts.Tensor, spec *vit.QuantSpec, wv, xv []float32) {
	t.Helper()
	wv, xv = c.data()
	w = ts.MustOfSlice(wv).MustView([]int64{int64(c.out), int64(c.in)}, true)
	x = ts.MustOfSlice(xv).MustView([]int64{int64(c.batches), int64(c.seq), int64(c.in)}, true)
	axis := -1
	if c.perChannel {
		axis = 0
	}
	spec, err := CalibrateTensor(w, Rule{Shape: ShapeUniform, Bits: c.bits, Symmetric: c.symmetric,
		Calibrator: techniques.CalibMinMax, Axis: axis})
	if err != nil {
		t.Fatal(err)
	}
	return w, x, spec, wv, xv
}

// stats returns the InputStats of x, fed one batch at a time.
func (c layerCase) stats(x *ts.Tensor) *InputStats {
	s := NewInputStats(c.in)
	for b := 0; b < c.batches; b++ {
		xb := x.MustNarrow(0, int64(b), 1, false)
		s.Observe(xb)
		xb.MustDrop()
	}
	return s
}

// gptq rounds w by GPTQ on x's statistics.
func (c layerCase) gptq(t *testing.T, w, x *ts.Tensor, spec *vit.QuantSpec) *ts.Tensor {
	t.Helper()
	s := c.stats(x)
	defer s.Drop()
	h, err := s.Hessian()
	if err != nil {
		t.Fatal(err)
	}
	defer h.MustDrop()
	q, err := GPTQ(w, h, spec)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// codes returns the integer codes of q [out, in] on spec's grid.
func codes(q []float32, spec *vit.QuantSpec, out, in int) []int64 {
	c := make([]int64, len(q))
	for r := 0; r < out; r++ {
		i := 0
		if len(spec.Scale) > 1 {
			i = r
		}
		for j := 0; j < in; j++ {
			c[r*in+j] = int64(math.RoundToEven(float64(q[r*in+j])/spec.Scale[i])) + spec.ZeroPoint[i]
		}
	}
	return c
}

// onGrid fails unless spec.Apply leaves q as it is.
func onGrid(t *testing.T, name string, q *ts.Tensor, spec *vit.QuantSpec) {
	t.Helper()
	var d float64
	torchrt.NoGrad(func() {
		a := spec.Apply(q)
		e := a.MustSub(q, true).MustAbs(true).MustMax(true)
		d = e.Float64Values()[0]
		e.MustDrop()
	})
	if d != 0 {
		t.Errorf("%s: off its grid by up to %g", name, d)
	}
}

// TestGPTQMatchesReference runs the authors' fasterquant loop
// (testdata/gptq_reference.py, in float64 PyTorch) on the same weight,
// inputs and grid: the integer codes agree, but for float summation order
// flipping a rounding now and then, by one step.
func TestGPTQMatchesReference(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	for _, c := range layerCases {
		t.Run(c.name, func(t *testing.T) {
			w, x, spec, wv, xv := c.tensors(t)
			defer w.MustDrop()
			defer x.MustDrop()
			q := c.gptq(t, w, x, spec)
			defer q.MustDrop()
			onGrid(t, "gptq weight", q, spec)
			got := codes(float32s(q), spec, c.out, c.in)

			var ref struct {
				Q []int64 `json:"q"`
			}
			runReference(t, "gptq_reference.py", map[string]any{
				"w": wv, "x": xv, "out": c.out, "in": c.in, "batches": c.batches, "seq": c.seq,
				"scale": spec.Scale, "zero_point": spec.ZeroPoint, "qmin": spec.QMin, "qmax": spec.QMax,
			}, &ref)
			if len(ref.Q) != len(got) {
				t.Fatalf("reference gave %d codes, want %d", len(ref.Q), len(got))
			}
			differ := 0
			for i := range got {
				d := got[i] - ref.Q[i]
				if d == 0 {
					continue
				}
				differ++
				if d != 1 && d != -1 {
					t.Errorf("weight %d (row %d, column %d): code %d, reference %d", i, i/c.in, i%c.in, got[i], ref.Q[i])
				}
			}
			for _, j := range c.dead {
				for r := 0; r < c.out; r++ {
					if got[r*c.in+j] != spec.ZeroPoint[min(r, len(spec.ZeroPoint)-1)] {
						t.Errorf("dead input %d, row %d: code %d, want the zero point", j, r, got[r*c.in+j])
					}
				}
			}
			t.Logf("%d of %d codes differ from the reference", differ, len(got))
			if frac := float64(differ) / float64(len(got)); frac > 0.005 {
				t.Errorf("%d of %d codes (%.2f%%) differ from the reference, want at most 0.5%%", differ, len(got), 100*frac)
			}
		})
	}
}

// outputError returns ||X Wᵀ - X Qᵀ||_F over the tokens of x.
func outputError(x, w, q *ts.Tensor) float64 {
	var e float64
	torchrt.NoGrad(func() {
		d := w.MustSub(q, false)
		y := ts.MustLinear(x, d, ts.None)
		d.MustDrop()
		n := y.MustSquare(true).MustSum(gotch.Double, true)
		e = math.Sqrt(n.Float64Values()[0])
		n.MustDrop()
	})
	return e
}

// TestGPTQBeatsNearest: on correlated inputs GPTQ's output error is well
// below rounding to nearest on the same grid.
func TestGPTQBeatsNearest(t *testing.T) {
	for _, c := range layerCases {
		t.Run(c.name, func(t *testing.T) {
			w, x, spec, _, _ := c.tensors(t)
			defer w.MustDrop()
			defer x.MustDrop()
			q := c.gptq(t, w, x, spec)
			defer q.MustDrop()
			var near *ts.Tensor
			torchrt.NoGrad(func() { near = spec.Apply(w) })
			defer near.MustDrop()
			eg, en := outputError(x, w, q), outputError(x, w, near)
			t.Logf("||X(W - Q)ᵀ||: gptq %.4g, nearest %.4g (ratio %.3f)", eg, en, eg/en)
			if !(eg < 0.8*en) {
				t.Errorf("gptq output error %.4g, nearest %.4g: want gptq below 0.8 of nearest", eg, en)
			}
		})
	}
}

// meanOutputError returns the mean over x's tokens of the output
// difference (x Qᵀ + bq) - (x Wᵀ + b), per output.
func meanOutputError(x, w, b, q, bq *ts.Tensor) []float64 {
	var out []float64
	torchrt.NoGrad(func() {
		y := ts.MustLinear(x, w, b)
		yq := ts.MustLinear(x, q, bq)
		d := yq.MustSub(y, true)
		y.MustDrop()
		n := d.MustSize()
		d = d.MustReshape([]int64{-1, n[len(n)-1]}, true).MustTotype(gotch.Double, true)
		m := d.MustMeanDim([]int64{0}, false, gotch.Double, true)
		out = m.Float64Values()
		m.MustDrop()
	})
	return out
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// TestBiasCorrection: after correction the mean output error over the
// calibration inputs vanishes (to float32 rounding of the bias), for
// round-to-nearest and GPTQ weights alike.
func TestBiasCorrection(t *testing.T) {
	for _, c := range layerCases {
		for _, rounding := range []string{techniques.RoundNearest, techniques.RoundGPTQ} {
			t.Run(c.name+"/"+rounding, func(t *testing.T) {
				w, x, spec, _, _ := c.tensors(t)
				defer w.MustDrop()
				defer x.MustDrop()
				bv := make([]float32, c.out)
				for i := range bv {
					bv[i] = 0.1 * float32(i%5)
				}
				b := ts.MustOfSlice(bv)
				defer b.MustDrop()
				var q *ts.Tensor
				if rounding == techniques.RoundGPTQ {
					q = c.gptq(t, w, x, spec)
				} else {
					torchrt.NoGrad(func() { q = spec.Apply(w) })
				}
				defer q.MustDrop()
				before := maxAbs(meanOutputError(x, w, b, q, b))
				bq := b.MustAddScalar(ts.FloatScalar(0), false)
				defer bq.MustDrop()
				s := c.stats(x)
				defer s.Drop()
				mean, err := s.Mean()
				if err != nil {
					t.Fatal(err)
				}
				defer mean.MustDrop()
				CorrectBias(bq, w, q, mean)
				after := maxAbs(meanOutputError(x, w, b, q, bq))
				t.Logf("max |mean output error|: %.3g before, %.3g after bias correction", before, after)
				if before < 1e-4 {
					t.Fatalf("mean output error %.3g before correction: the case tests nothing", before)
				}
				if after > 2e-6 || after > 1e-3*before {
					t.Errorf("mean output error %.3g after correction (%.3g before), want ~0", after, before)
				}
			})
		}
	}
}

// TestStageGPTQBiasCorrection quantizes the tiny model through the stage
// with rounding = "gptq" and bias_correction = true at W3A8: the weights
// are on their grids, the biases moved, and the model classifies as well
// as with nearest rounding (its logits at least as close to the float
// model's, loosely).
func TestStageGPTQBiasCorrection(t *testing.T) {
	test := techtest.Quadrants{N: 128, Batch: 64, Seed: 6}.Images(0)
	defer dropAllSlice(test)
	float := trainedModel(t)
	defer float.Drop()
	ref := logits(t, float, test)
	refAcc := accuracy(t, float)
	run := func(rounding string, bc bool) (*vit.Model, float64, float64) {
		m := trainedModel(t)
		if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) {
			c.WeightBits, c.ActBits, c.CalibImages = 3, 8, 64
			c.Rounding, c.BiasCorrection = rounding, bc
		}); err != nil {
			m.Drop()
			t.Fatal(err)
		}
		return m, relErr(logits(t, m, test), ref), accuracy(t, m)
	}
	near, nearErr, nearAcc := run(techniques.RoundNearest, false)
	defer near.Drop()
	m, gErr, gAcc := run(techniques.RoundGPTQ, true)
	defer m.Drop()
	t.Logf("W3A8 logits error / top-1: float %.1f%%; nearest %.4f / %.1f%%; gptq+bias correction %.4f / %.1f%%",
		refAcc, nearErr, nearAcc, gErr, gAcc)
	for name, spec := range m.Cfg.Quant.Weights {
		w, _ := m.VS.Root().Get(name)
		onGrid(t, name, w, spec)
	}
	moved := false
	for _, l := range m.Linears() {
		if l.Bias == nil {
			continue
		}
		fb, _ := float.VS.Root().Get(l.Name + ".bias")
		var d float64
		torchrt.NoGrad(func() {
			e := l.Bias.MustSub(fb, false).MustAbs(true).MustMax(true)
			d = e.Float64Values()[0]
			e.MustDrop()
		})
		moved = moved || d > 0
	}
	if !moved {
		t.Error("bias correction changed no bias")
	}
	if gAcc < nearAcc-3 {
		t.Errorf("gptq+bias correction top-1 %.1f%%, nearest %.1f%%", gAcc, nearAcc)
	}
	if gErr > 1.25*nearErr {
		t.Errorf("gptq+bias correction logits error %.4f, nearest %.4f", gErr, nearErr)
	}
}
