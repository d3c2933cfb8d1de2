package vit

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func tinyQuantModel(t *testing.T, mutate func(*Config)) *Model {
	t.Helper()
	cfg := Config{Name: "tiny", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 5,
		EmbedDim: 32, Depth: 2, NumHeads: 2, MLPRatio: 2, QKVBias: true}
	if mutate != nil {
		mutate(&cfg)
	}
	torchrt.ManualSeed(1)
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logitsOf(t *testing.T, m *Model, x *ts.Tensor) []float64 {
	t.Helper()
	var out []float64
	torchrt.NoGrad(func() {
		y := m.Forward(x)
		out = y.Float64Values()
		y.MustDrop()
	})
	return out
}

func image(t *testing.T, m *Model, n int64) *ts.Tensor {
	t.Helper()
	torchrt.ManualSeed(7)
	c := m.Cfg
	return ts.MustRandn([]int64{n, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, gotch.CPU)
}

// rowAbsMax returns max |w| of each row of a 2-D weight.
func rowAbsMax(w *ts.Tensor) []float64 {
	a := w.MustAbs(false).MustAmax([]int64{1}, false, true)
	defer a.MustDrop()
	return a.Float64Values()
}

// handState is a quantization written by hand: a per-channel symmetric
// 4-bit qkv weight, an affine 8-bit qkv input, a log2 attention map and a
// twin-uniform GELU output in block 0.
func handState(m *Model) *QuantState {
	w := m.Blocks[0].QKV.Weight
	amax := rowAbsMax(w)
	scales := make([]float64, len(amax))
	for i, a := range amax {
		scales[i] = float64(float32(a / 7.5))
	}
	return &QuantState{
		Precision: PrecisionInt,
		Weights: map[string]*QuantSpec{
			"blocks.0.attn.qkv.weight": {Kind: QuantUniform, Bits: 4, Symmetric: true, Axis: 0,
				Scale: scales, ZeroPoint: make([]int64, len(scales)), QMin: -8, QMax: 7},
		},
		Acts: map[string]*QuantSpec{
			ActKey(0, SiteQKVIn):   {Kind: QuantUniform, Bits: 8, Axis: -1, Scale: []float64{0.03}, ZeroPoint: []int64{128}, QMin: 0, QMax: 255},
			ActKey(0, SiteAttnMap): {Kind: QuantLog2, Bits: 4, Axis: -1},
			ActKey(0, SiteFC2In):   {Kind: QuantTwin, Bits: 4, Axis: -1, Scale: []float64{0.17 / 8, 0.5}, QMin: -8, QMax: 0},
		},
	}
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func TestSetQuantSaveLoadExact(t *testing.T) {
	m := tinyQuantModel(t, nil)
	defer m.Drop()
	x := image(t, m, 4)
	defer x.MustDrop()
	before := logitsOf(t, m, x)
	if err := m.SetQuant(handState(m)); err != nil {
		t.Fatal(err)
	}
	after := logitsOf(t, m, x)
	if maxAbsDiff(before, after) == 0 {
		t.Fatal("quantization changed nothing")
	}
	// The weight sits on its grid: w/scale is an integer in [-8, 7].
	spec := m.Cfg.Quant.Weights["blocks.0.attn.qkv.weight"]
	w := m.Blocks[0].QKV.Weight
	rows := w.MustSize()[1]
	vals := w.Float64Values()
	for i, v := range vals {
		q := v / spec.Scale[i/int(rows)]
		if math.Abs(q-math.Round(q)) > 1e-3 || q < -8.001 || q > 7.001 {
			t.Fatalf("weight %d: %g is %g steps, not on the 4-bit grid", i, v, q)
		}
	}
	path := filepath.Join(t.TempDir(), "q.pt")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Drop()
	if !reflect.DeepEqual(l.Cfg.Quant, m.Cfg.Quant) {
		t.Errorf("reloaded quantization differs:\n%+v\n%+v", l.Cfg.Quant, m.Cfg.Quant)
	}
	if got := logitsOf(t, l, x); maxAbsDiff(got, after) != 0 {
		t.Errorf("reloaded logits differ by %g", maxAbsDiff(got, after))
	}
	if err := l.SetQuant(handState(l)); err == nil {
		t.Error("SetQuant on a quantized model: no error")
	}
}

func TestSetQuantRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *QuantState)
		want   string
	}{
		{"unknown weight", func(s *QuantState) { s.Weights["blocks.9.attn.qkv.weight"] = s.Weights["blocks.0.attn.qkv.weight"] }, "does not have"},
		{"unknown site", func(s *QuantState) { s.Acts["blocks.0.norm_in"] = s.Acts[ActKey(0, SiteQKVIn)] }, "does not have"},
		{"scale count", func(s *QuantState) {
			w := *s.Weights["blocks.0.attn.qkv.weight"]
			w.Scale, w.ZeroPoint = w.Scale[:3], w.ZeroPoint[:3]
			s.Weights["blocks.0.attn.qkv.weight"] = &w
		}, "scales on axis"},
		{"zero point outside", func(s *QuantState) { s.Acts[ActKey(0, SiteQKVIn)].ZeroPoint[0] = 300 }, "zero point"},
		{"range too wide", func(s *QuantState) { s.Acts[ActKey(0, SiteQKVIn)].Bits = 4 }, "needs more than 4 bits"},
		{"kind", func(s *QuantState) { s.Acts[ActKey(0, SiteAttnMap)].Kind = "log10" }, "unknown quantizer kind"},
		{"precision", func(s *QuantState) { s.Precision = "int4" }, "unknown precision"},
		{"cast with grids", func(s *QuantState) { s.Precision = PrecisionBF16 }, "takes no integer quantizers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tinyQuantModel(t, nil)
			defer m.Drop()
			s := handState(m)
			tt.mutate(s)
			err := m.SetQuant(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if m.Cfg.Quant != nil {
				t.Error("a rejected state was recorded")
			}
		})
	}
}

func TestSizeBytesAndBitOps(t *testing.T) {
	m := tinyQuantModel(t, nil)
	defer m.Drop()
	params := m.NumParams()
	if got := m.SizeBytes(); got != 4*params {
		t.Errorf("float32 size %d, want 4 x %d params", got, params)
	}
	macs := m.Cfg.Count().MACs
	if got := m.BitOps(); got != macs*32*32 {
		t.Errorf("float32 bitops %d, want %d MACs x 1024", got, macs)
	}
	s := handState(m)
	if err := m.SetQuant(s); err != nil {
		t.Fatal(err)
	}
	// qkv weight 96x32 at 4 bits: 1536 bytes + 96 scales, instead of 4 x 3072.
	const qkvW = 96 * 32
	want := 4*params - 4*qkvW + qkvW/2 + 4*96
	want += 4 + 4   // qkv_in: scale and zero point
	want += 4*2 + 4 // fc2_in twin: two scales and the split (no zero points)
	if got := m.SizeBytes(); got != want {
		t.Errorf("quantized size %d, want %d", got, want)
	}
	counts := m.Cfg.Count()
	var qkvMACs, attnMACs, fc2MACs int64
	for _, l := range counts.Layers {
		switch l.Name {
		case "blocks.0.attn.qkv":
			qkvMACs = l.MACs
		case "blocks.0.attn.matmul":
			attnMACs = l.MACs
		case "blocks.0.mlp.fc2":
			fc2MACs = l.MACs
		}
	}
	wantOps := macs*1024 - qkvMACs*1024 + qkvMACs*4*8 // W4 x A8
	wantOps += -(attnMACs-attnMACs/2)*1024 + (attnMACs-attnMACs/2)*4*32
	wantOps += -fc2MACs*1024 + fc2MACs*32*4
	if got := m.BitOps(); got != wantOps {
		t.Errorf("quantized bitops %d, want %d", got, wantOps)
	}
	// Count gives each layer the width of its quantized weights: only
	// qkv of block 0 has a weight quantizer (activations do not count).
	for _, l := range m.Count().Layers {
		want := 0
		if l.Name == "blocks.0.attn.qkv" {
			want = 4
		}
		if l.Bits != want {
			t.Errorf("layer %s: Bits %d, want %d", l.Name, l.Bits, want)
		}
	}
}

// TestCastBF16 casts every tensor for real, keeps the logits close,
// halves the size and reloads exactly; float16 has no CPU kernels in
// libtorch 1.13 and must fail loudly there.
func TestCastBF16(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"plain", nil},
		{"distilled", func(c *Config) { c.Distilled = true }},
		{"factored", func(c *Config) {
			*c = c.WithBlocks()
			c.Blocks[1].Ranks = map[string]int{"qkv": 4, "fc2": 8}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyQuantModel(t, tc.mutate)
			defer m.Drop()
			x := image(t, m, 3)
			defer x.MustDrop()
			ref := logitsOf(t, m, x)
			params := m.NumParams()
			if err := m.SetQuant(&QuantState{Precision: PrecisionBF16}); err != nil {
				t.Fatal(err)
			}
			for name, v := range m.VS.Variables() {
				if v.DType() != gotch.BFloat16 {
					t.Fatalf("%s is %v after the cast", name, v.DType())
				}
			}
			var dt gotch.DType
			torchrt.NoGrad(func() {
				y := m.Forward(x)
				dt = y.DType()
				y.MustDrop()
			})
			if dt != gotch.BFloat16 {
				t.Errorf("logits are %v, want BFloat16", dt)
			}
			got := logitsOf(t, m, x)
			var num, den float64
			for i := range got {
				num += (got[i] - ref[i]) * (got[i] - ref[i])
				den += ref[i] * ref[i]
			}
			if rel := math.Sqrt(num / den); rel > 0.05 {
				t.Errorf("bf16 logits relative error %.3g", rel)
			}
			if s := m.SizeBytes(); s != 2*params {
				t.Errorf("bf16 size %d, want 2 x %d", s, params)
			}
			path := filepath.Join(t.TempDir(), "bf16.pt")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			l, err := Load(path, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Drop()
			if d := maxAbsDiff(logitsOf(t, l, x), got); d != 0 {
				t.Errorf("reloaded bf16 logits differ by %g", d)
			}
		})
	}
}

type countTap struct{ n int }

func (c *countTap) Tap(x *ts.Tensor) *ts.Tensor { c.n++; return x }

// TestQuantKeepsExistingTaps: a tap already at a site (token reduction's
// proportional attention) keeps running before the quantizer.
func TestQuantKeepsExistingTaps(t *testing.T) {
	m := tinyQuantModel(t, nil)
	defer m.Drop()
	c := &countTap{}
	m.Blocks[0].Taps[SiteAttnMap] = c
	if err := m.SetQuant(handState(m)); err != nil {
		t.Fatal(err)
	}
	x := image(t, m, 2)
	defer x.MustDrop()
	logitsOf(t, m, x)
	if c.n != 1 {
		t.Errorf("existing tap ran %d times, want 1", c.n)
	}
}

// TestFloat32Graph checks the graph a simulated model is timed on: the
// same weights (on their grid), no quantizers, logits of a plain float32
// model holding those weights.
func TestFloat32Graph(t *testing.T) {
	m := tinyQuantModel(t, nil)
	defer m.Drop()
	if err := m.SetQuant(handState(m)); err != nil {
		t.Fatal(err)
	}
	m.Cfg.Executed = ExecutedSimulated
	f, err := m.Float32Graph()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	if f.Cfg.Quant != nil || f.Cfg.Executed != "" {
		t.Fatalf("float32 graph keeps quant %v, executed %q", f.Cfg.Quant, f.Cfg.Executed)
	}
	if m.Cfg.Quant == nil || m.Cfg.Executed != ExecutedSimulated {
		t.Fatal("Float32Graph changed the model it copied")
	}
	// The reference: the same initial weights with the quantized qkv
	// weight copied in, and nothing attached.
	ref := tinyQuantModel(t, nil)
	defer ref.Drop()
	torchrt.NoGrad(func() { ref.Blocks[0].QKV.Weight.Copy_(m.Blocks[0].QKV.Weight) })
	x := image(t, m, 4)
	defer x.MustDrop()
	got, want, quant := logitsOf(t, f, x), logitsOf(t, ref, x), logitsOf(t, m, x)
	if d := maxAbsDiff(got, want); d != 0 {
		t.Errorf("float32 graph logits differ from the plain model's by %g", d)
	}
	if maxAbsDiff(got, quant) == 0 {
		t.Error("float32 graph computes the fake-quantized logits: activation quantizers still attached")
	}
}
