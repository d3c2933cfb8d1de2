package quantize

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// lsqCase is a tensor and a uniform quantizer for the LSQ gradient test:
// act cases go through the activation tap (autograd), the others through
// the weights' lsqGrad.
type lsqCase struct {
	name  string
	act   bool
	shape []int64
	spec  vit.QuantSpec
	seed  uint64
}

var lsqCases = []lsqCase{
	{name: "activation per-tensor affine a4", act: true, shape: []int64{2, 3, 5},
		spec: vit.QuantSpec{Kind: vit.QuantUniform, Bits: 4, Axis: -1, Scale: []float64{0.3}, ZeroPoint: []int64{3}, QMin: 0, QMax: 15}, seed: 1},
	{name: "activation per-tensor symmetric a3", act: true, shape: []int64{3, 4, 2},
		spec: vit.QuantSpec{Kind: vit.QuantUniform, Bits: 3, Symmetric: true, Axis: -1, Scale: []float64{0.4}, ZeroPoint: []int64{0}, QMin: -3, QMax: 3}, seed: 2},
	{name: "weight per-channel symmetric w4", shape: []int64{4, 6},
		spec: vit.QuantSpec{Kind: vit.QuantUniform, Bits: 4, Symmetric: true, Axis: 0, Scale: []float64{0.1, 0.25, 0.05, 0.4}, ZeroPoint: []int64{0, 0, 0, 0}, QMin: -7, QMax: 7}, seed: 3},
	{name: "weight per-channel affine w3", shape: []int64{3, 2, 4},
		spec: vit.QuantSpec{Kind: vit.QuantUniform, Bits: 3, Axis: 0, Scale: []float64{0.2, 0.3, 0.15}, ZeroPoint: []int64{2, 4, 0}, QMin: 0, QMax: 7}, seed: 4},
	{name: "weight per-tensor symmetric w2", shape: []int64{5, 5},
		spec: vit.QuantSpec{Kind: vit.QuantUniform, Bits: 2, Symmetric: true, Axis: -1, Scale: []float64{0.5}, ZeroPoint: []int64{0}, QMin: -1, QMax: 1}, seed: 5},
}

// TestLSQMatchesReference compares the quantizer's output and LSQ's
// gradients with respect to the input and the step sizes with
// lsq_reference.py, which writes out the paper's eq. 1-3 and gradient
// scale elementwise in float64. Inputs reach well beyond both clipping
// limits, so every branch of eq. 3 is exercised.
func TestLSQMatchesReference(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	type result struct {
		y, dx, ds []float64
		clipped   int
	}
	var inputs []map[string]any
	var got []result
	for _, c := range lsqCases {
		in, r := c.run(t)
		inputs = append(inputs, in)
		got = append(got, r)
	}
	// One interpreter for all cases: python3-torch takes seconds to start.
	var refs []struct {
		Y, DX, DS []float64
		TorchDS   []float64 `json:"torch_ds"`
	}
	runReference(t, "lsq_reference.py", inputs, &refs)
	if len(refs) != len(lsqCases) {
		t.Fatalf("%d reference results for %d cases", len(refs), len(lsqCases))
	}
	for i, c := range lsqCases {
		t.Run(c.name, func(t *testing.T) {
			r, ref := got[i], refs[i]
			n := len(r.y)
			if r.clipped == 0 || r.clipped == n {
				t.Fatalf("%d of %d inputs clipped: the case does not exercise both branches", r.clipped, n)
			}
			compare(t, "y", r.y, ref.Y, 1e-6)
			compare(t, "dx", r.dx, ref.DX, 1e-6)
			compare(t, "ds", r.ds, ref.DS, 1e-5)
			t.Logf("%d/%d clipped; ds %v (reference %v; libtorch's learnable fake-quantize op %v)", r.clipped, n, r.ds, ref.DS, ref.TorchDS)
		})
	}
}

// run computes the case's output and gradients and returns the
// reference script's input for it.
func (c lsqCase) run(t *testing.T) (in map[string]any, r struct {
	y, dx, ds []float64
	clipped   int
}) {
	t.Helper()
	rng := rand.New(rand.NewPCG(c.seed, 9))
	n := 1
	for _, d := range c.shape {
		n *= int(d)
	}
	xv, dyv := make([]float32, n), make([]float32, n)
	for i := range xv {
		xv[i] = float32(rng.NormFloat64() * 1.5)
		dyv[i] = float32(rng.NormFloat64())
	}
	spec := c.spec
	spec.Scale = append([]float64(nil), c.spec.Scale...)
	x := ts.MustOfSlice(xv).MustView(c.shape, true)
	dy := ts.MustOfSlice(dyv).MustView(c.shape, true)
	defer x.MustDrop()
	defer dy.MustDrop()
	var gradN int
	if c.act {
		gradN = n / int(c.shape[0])
		a := newLSQAct("test", &spec, gotch.CPU)
		defer a.drop()
		x.MustRequiresGrad_(true)
		out := a.Tap(x)
		loss := out.MustMul(dy, false).MustSum(gotch.Float, true)
		loss.MustBackward()
		loss.MustDrop()
		r.y = torchrt.Float64s(out)
		out.MustDrop()
		gx, gs := x.MustGrad(false), a.s.MustGrad(false)
		r.dx, r.ds = torchrt.Float64s(gx), torchrt.Float64s(gs)
		gx.MustDrop()
		gs.MustDrop()
	} else {
		gradN = n
		st := newLSQStep(&spec, len(c.shape), gotch.CPU)
		defer st.drop()
		torchrt.NoGrad(func() {
			out := spec.Apply(x)
			mask, g := lsqGrad(x, dy, st, 1/math.Sqrt(float64(n)*positiveLevels(&spec)))
			gx := dy.MustMul(mask, false)
			r.y, r.dx, r.ds = torchrt.Float64s(out), torchrt.Float64s(gx), torchrt.Float64s(g)
			for _, t := range []*ts.Tensor{out, mask, g, gx} {
				t.MustDrop()
			}
		})
	}
	for i, v := range xv {
		ch := 0
		if spec.Axis == 0 {
			ch = i / (n / len(spec.Scale))
		}
		q := float64(v)/spec.Scale[ch] + float64(spec.ZeroPoint[ch])
		if q < float64(spec.QMin) || q > float64(spec.QMax) {
			r.clipped++
		}
	}
	in = map[string]any{
		"x": xv, "dy": dyv, "shape": c.shape, "axis": spec.Axis, "scale": spec.Scale,
		"zero_point": spec.ZeroPoint, "qmin": spec.QMin, "qmax": spec.QMax, "symmetric": spec.Symmetric, "n": gradN,
	}
	return in, r
}

func compare(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); d > tol*math.Max(1, math.Abs(want[i])) {
			t.Errorf("%s[%d] = %.7g, reference %.7g", what, i, got[i], want[i])
		}
	}
}

// TestLSQ trains a W4A4 model with learned step sizes for a few steps:
// the steps of weights and activations move away from their calibrated
// values, the weights stay on the learned grids the model's state
// records, the activation taps are the specs again, and the training
// loss falls below the post-training model's.
func TestLSQ(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	ptq := trainedModel(t)
	defer ptq.Drop()
	mutate := func(c *techniques.QuantizeConfig) { c.WeightBits, c.ActBits, c.CalibImages = 4, 4, 64 }
	if _, err := applyStage(t, ptq, newEnv(nil), mutate); err != nil {
		t.Fatal(err)
	}
	data := techtest.Quadrants{N: 256, Batch: 32, Seed: 3} // newEnv's training data
	loss := func(m *vit.Model) float64 {
		acc, err := train.Evaluate(context.Background(), m, data)
		if err != nil {
			t.Fatal(err)
		}
		return acc.Loss
	}
	ptqLoss := loss(ptq)
	env := newEnv(nil)
	if _, err := applyStage(t, m, env, func(c *techniques.QuantizeConfig) {
		mutate(c)
		c.Epochs, c.LR, c.QAT = 1, 5e-4, techniques.QATLSQ
	}); err != nil {
		t.Fatal(err)
	}
	if env.Steps == 0 {
		t.Fatal("LSQ took no steps")
	}
	lsqLoss := loss(m)
	t.Logf("W4A4 training loss: PTQ %.4f, after %d LSQ steps %.4f", ptqLoss, env.Steps, lsqLoss)
	if !(lsqLoss < ptqLoss) {
		t.Errorf("training loss %.4f after LSQ, not below PTQ's %.4f", lsqLoss, ptqLoss)
	}
	moved := func(got, was map[string]*vit.QuantSpec) (n, total int) {
		for k, s := range got {
			if s.Kind != vit.QuantUniform {
				continue
			}
			total++
			for i := range s.Scale {
				if s.Scale[i] != was[k].Scale[i] {
					n++
					break
				}
			}
		}
		return n, total
	}
	q, p := m.Cfg.Quant, ptq.Cfg.Quant
	if n, total := moved(q.Weights, p.Weights); n < total {
		t.Errorf("%d of %d weight quantizers changed their steps, want all", n, total)
	}
	if n, total := moved(q.Acts, p.Acts); total == 0 || n < total {
		t.Errorf("%d of %d activation quantizers changed their steps, want all", n, total)
	}
	for name, spec := range q.Weights {
		if err := spec.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		w, _ := m.VS.Root().Get(name)
		torchrt.NoGrad(func() {
			d := spec.Apply(w).MustSub(w, true).MustAbs(true).MustMax(true)
			if v := d.Float64Values()[0]; v != 0 {
				t.Errorf("%s is %g off its learned grid", name, v)
			}
			d.MustDrop()
		})
	}
	pts := m.TapPoints()
	for key, spec := range q.Acts {
		if tp := *pts[key]; tp != vit.Tap(spec) {
			t.Errorf("tap at %s is %T after LSQ, want its spec", key, tp)
		}
	}
}
