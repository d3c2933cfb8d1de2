package qexec_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/quantize"
)

// quantized returns a tiny model quantized as o asks (simulated), and
// calibration-like inputs.
func quantized(t *testing.T, o quantize.Options) (*vit.Model, *ts.Tensor) {
	t.Helper()
	m := techtest.NewModel(t, techtest.TinyConfig(), 7)
	batches := techtest.Quadrants{N: 64, Batch: 32, Seed: 3}.Images(0)
	defer func() {
		for _, b := range batches {
			b.MustDrop()
		}
	}()
	p, err := quantize.NewPlan(m, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quantize.Quantize(context.Background(), m, batches, p); err != nil {
		t.Fatal(err)
	}
	m.Cfg.Executed = vit.ExecutedSimulated
	return m, batches[0].MustShallowClone()
}

func logits(m *vit.Model, x *ts.Tensor) []float64 {
	var y *ts.Tensor
	torchrt.NoGrad(func() { y = m.Forward(x) })
	defer y.MustDrop()
	return torchrt.Float64s(y)
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, abs(a[i]-b[i]))
	}
	return d
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestExecute(t *testing.T) {
	blocks := []string{techniques.GroupQKV, techniques.GroupProj, techniques.GroupFC1, techniques.GroupFC2}
	base := quantize.Options{WeightBits: 7, ActBits: 8, PerChannel: true, WeightSymmetric: true,
		Calibrator: techniques.CalibMinMax, Method: techniques.MethodPTQ}
	with := func(f func(o *quantize.Options)) quantize.Options { o := base; f(&o); return o }
	cases := []struct {
		name        string
		opts        quantize.Options
		static, dyn int
		notComputed []string // activation keys
		// tol bounds the largest logit difference from the simulated
		// model: float rounding where the executed graph computes what
		// the simulated one does, more where it does not.
		tol float64
	}{
		{"W7A8 static, blocks and head", with(func(o *quantize.Options) { o.Groups = append(slices.Clone(blocks), techniques.GroupHead) }),
			9, 0, nil, 1e-4},
		{"4-bit weights and activations", with(func(o *quantize.Options) {
			o.WeightBits, o.ActBits, o.Groups = 4, 4, append(slices.Clone(blocks), techniques.GroupHead)
		}), 9, 0, nil, 1e-4},
		{"weight-only: dynamic per-token activations", with(func(o *quantize.Options) { o.ActBits, o.Groups = 0, slices.Clone(blocks) }),
			0, 8, nil, 0.05},
		{"attention map and image quantizers not computed", with(func(o *quantize.Options) {
			o.Groups, o.EdgeBits = append(slices.Clone(blocks), techniques.GroupAttnMap), 7
		}), 9, 0, []string{"blocks.0.attn_map", "blocks.1.attn_map", vit.ActInput}, 0.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, x := quantized(t, c.opts)
			defer m.Drop()
			defer x.MustDrop()
			sim := logits(m, x)
			rep, err := qexec.Execute(m)
			if err != nil {
				t.Fatal(err)
			}
			if m.Cfg.Executed != qexec.Int8 {
				t.Errorf("Executed = %q, want %q", m.Cfg.Executed, qexec.Int8)
			}
			if len(rep.Static) != c.static || len(rep.Dynamic) != c.dyn {
				t.Errorf("static %v, dynamic %v: want %d and %d layers", rep.Static, rep.Dynamic, c.static, c.dyn)
			}
			if !slices.Equal(rep.NotComputed, c.notComputed) {
				t.Errorf("not computed %v, want %v", rep.NotComputed, c.notComputed)
			}
			if len(rep.Saturating) > 0 {
				t.Errorf("layers %v saturate with weights of at most 7 bits", rep.Saturating)
			}
			if !strings.Contains(rep.Summary(), "int8") || !strings.HasPrefix(rep.Engine, "oneDNN ") {
				t.Errorf("summary %q", rep.Summary())
			}
			if narrow := c.opts.WeightBits < 8; narrow != strings.Contains(rep.Summary(), "-bit weights") {
				t.Errorf("summary %q: %d-bit weights labelled wrongly", rep.Summary(), c.opts.WeightBits)
			}
			got := logits(m, x)
			if d := maxDiff(sim, got); d > c.tol {
				t.Errorf("executed logits differ from the simulated model's by %.3g (want <= %g)", d, c.tol)
			}
			// A replica computes with the same kernels; dropping it
			// leaves them to m.
			r, err := m.Replicate()
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got, logits(r, x)); d > 1e-6 {
				t.Errorf("replica logits differ by %g", d)
			}
			r.Drop()
			if d := maxDiff(got, logits(m, x)); d > 1e-6 {
				t.Errorf("after the replica was dropped, logits differ by %g", d)
			}
			// Split across threads, by images and by tokens.
			for _, n := range []int64{4, 1} {
				xs := x.MustNarrow(0, 0, n, false)
				want := logits(m, xs)
				p, err := vit.NewParallel(m, 2)
				if err != nil {
					t.Fatal(err)
				}
				var y *ts.Tensor
				torchrt.NoGrad(func() { y, err = p.Forward(xs) })
				p.Close()
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(want, torchrt.Float64s(y)); d > 1e-5 {
					t.Errorf("batch %d split two ways differs by %g", n, d)
				}
				y.MustDrop()
				xs.MustDrop()
			}
		})
	}
}

func TestExecuteRefuses(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T) *vit.Model
		want string
	}{
		{"float32", func(t *testing.T) *vit.Model { return techtest.NewModel(t, techtest.TinyConfig(), 1) }, "no integer quantization"},
		{"bf16 cast", func(t *testing.T) *vit.Model {
			m := techtest.NewModel(t, techtest.TinyConfig(), 1)
			if err := m.Cast(vit.PrecisionBF16); err != nil {
				t.Fatal(err)
			}
			return m
		}, "no integer quantization"},
		{"only float-executable quantizers", func(t *testing.T) *vit.Model {
			m, x := quantized(t, quantize.Options{ActBits: 8, Groups: []string{techniques.GroupAttnMap},
				Calibrator: techniques.CalibMinMax, Method: techniques.MethodPTQ})
			x.MustDrop()
			return m
		}, "no linear layer has int8-executable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.make(t)
			defer m.Drop()
			cfg := m.Cfg
			_, err := qexec.Execute(m)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Execute: %v, want an error with %q", err, c.want)
			}
			if m.Cfg.Executed != cfg.Executed {
				t.Errorf("a refused model's Executed changed to %q", m.Cfg.Executed)
			}
			x := ts.MustRandn([]int64{1, 3, 16, 16}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			logits(m, x) // still runs
		})
	}
}
