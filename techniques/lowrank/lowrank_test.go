package lowrank

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
	"github.com/vitbench/vitbench/techniques/compress/compresstest"
)

// tinyModel has blocks with qkv 32→96, proj 32→32, fc1 32→128 (ratio 4),
// fc2 128→32.
func tinyModel(t *testing.T) *vit.Model {
	t.Helper()
	torchrt.ManualSeed(3)
	cfg := vit.Config{Name: "tiny", ImgSize: 16, PatchSize: 4, InChans: 3, NumClasses: 5,
		EmbedDim: 32, Depth: 2, NumHeads: 2, MLPRatio: 4, QKVBias: true}
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func input(m *vit.Model) *ts.Tensor {
	torchrt.ManualSeed(11)
	c := m.Cfg
	return ts.MustRandn([]int64{3, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}, gotch.Float, gotch.CPU)
}

func logits(m *vit.Model, x *ts.Tensor) []float64 {
	var out []float64
	torchrt.NoGrad(func() {
		y := m.Forward(x)
		out = y.Float64Values()
		y.MustDrop()
	})
	return out
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func TestFullRankReproducesLogits(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	x := input(m)
	defer x.MustDrop()
	want := logits(m, x)
	f, ds, err := Factor(m, Options{Groups: techniques.LowRankGroups, RankRatio: 1, KeepLarger: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	if len(ds) != 8 {
		t.Fatalf("%d decisions, want 8", len(ds))
	}
	for _, d := range ds {
		if d.Skipped || d.Rank != min(d.In, d.Out) {
			t.Errorf("%s: %+v, want full rank %d", d.Layer, d, min(d.In, d.Out))
		}
	}
	if f.Blocks[1].FC2.Rank != 32 || f.Blocks[0].QKV.Weight != nil {
		t.Errorf("factored model not factored: fc2 rank %d", f.Blocks[1].FC2.Rank)
	}
	if d := maxDiff(logits(f, x), want); d > 1e-4 {
		t.Errorf("full-rank logits differ by %g, want <= 1e-4", d)
	}
	// The factored model saves and reloads as itself.
	path := filepath.Join(t.TempDir(), "f.pt")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := vit.Load(path, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Drop()
	if d := maxDiff(logits(l, x), logits(f, x)); d != 0 {
		t.Errorf("reloaded factored model differs by %g", d)
	}
}

// TestCountsMatchAnalytic checks the factored model's parameters (its
// tensors, and the analytic count) and MACs against r·(in+out) per
// factored layer.
func TestCountsMatchAnalytic(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	base := m.Cfg.Count()
	f, ds, err := Factor(m, Options{Groups: []string{"qkv", "fc1", "fc2"}, Rank: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	tokens := int64(m.Cfg.NumTokens())
	params, macs := base.Params, base.MACs
	for _, d := range ds {
		if d.Skipped || d.Rank != 8 {
			t.Fatalf("%s: %+v, want rank 8 factored", d.Layer, d)
		}
		dense := int64(d.In * d.Out)
		fact := int64(d.Rank * (d.In + d.Out))
		params += fact - dense
		macs += tokens * (fact - dense)
	}
	c := f.Count()
	if got := f.NumParams(); got != params {
		t.Errorf("tensors hold %d parameters, want %d", got, params)
	}
	if c.Params != params || c.MACs != macs {
		t.Errorf("counts: %d params, %d MACs; want %d, %d", c.Params, c.MACs, params, macs)
	}
	if f.SizeBytes() != 4*params {
		t.Errorf("size %d, want %d", f.SizeBytes(), 4*params)
	}
}

func TestChooseRank(t *testing.T) {
	s := []float64{4, 2, 1, 1} // squares 16, 4, 1, 1: total 22
	tests := []struct {
		name    string
		in, out int
		o       Options
		want    int
	}{
		// CIFAR ViT's proj, 128x128: half its parameters is rank 32,
		// where rank_ratio 0.5 gave 64 (no smaller: left dense).
		{"params kept half, square", 128, 128, Options{ParamsKept: 0.5}, 32},
		{"params kept 0.75, fc1", 128, 256, Options{ParamsKept: 0.75}, 64}, // 0.75·32768/384 = 64
		{"params kept floors", 4, 6, Options{ParamsKept: 0.5}, 1},          // 0.5·24/10 = 1.2
		{"params kept at least 1", 4, 6, Options{ParamsKept: 0.01}, 1},
		{"ratio half", 4, 6, Options{RankRatio: 0.5}, 2},
		{"ratio rounds", 7, 9, Options{RankRatio: 0.5}, 4}, // 3.5 → 4
		{"ratio at least 1", 4, 6, Options{RankRatio: 0.01}, 1},
		{"fixed", 4, 6, Options{Rank: 3}, 3},
		{"fixed capped", 4, 6, Options{Rank: 10}, 4},
		{"energy 0.7", 4, 6, Options{Energy: 0.7}, 1},   // 16/22 = 0.727
		{"energy 0.9", 4, 6, Options{Energy: 0.9}, 2},   // 20/22 = 0.909
		{"energy 0.95", 4, 6, Options{Energy: 0.95}, 3}, // 21/22 = 0.955
		{"energy 1", 4, 6, Options{Energy: 1}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChooseRank(s, tt.in, tt.out, tt.o); got != tt.want {
				t.Errorf("rank %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSkipsGrowingLayers: proj is 32x32, where rank 16 gives 16·64 = 1024
// = 32·32 parameters (no smaller): it stays dense, while fc1 (32→128,
// 16·160 = 2560 < 4096) is factored.
func TestSkipsGrowingLayers(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	x := input(m)
	defer x.MustDrop()
	f, ds, err := Factor(m, Options{Groups: []string{"proj", "fc1"}, Rank: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	for _, d := range ds {
		wantSkip := strings.HasSuffix(d.Layer, "proj")
		if d.Skipped != wantSkip {
			t.Errorf("%s: skipped %v, want %v", d.Layer, d.Skipped, wantSkip)
		}
	}
	for _, b := range f.Blocks {
		if b.Proj.Rank != 0 || b.FC1.Rank != 16 {
			t.Errorf("block %d: proj rank %d, fc1 rank %d; want 0 and 16", b.Index, b.Proj.Rank, b.FC1.Rank)
		}
		if _, ok := f.Cfg.Blocks[b.Index].Ranks["proj"]; ok {
			t.Errorf("block %d records a rank for the skipped proj", b.Index)
		}
	}
}

func TestEnergyOneKeepsEverything(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	x := input(m)
	defer x.MustDrop()
	f, ds, err := Factor(m, Options{Groups: techniques.LowRankGroups, Energy: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	for _, d := range ds {
		if !d.Skipped || d.Rank != min(d.In, d.Out) || math.Abs(d.Energy-1) > 1e-9 {
			t.Errorf("%s: %+v, want full rank kept dense", d.Layer, d)
		}
	}
	if f.NumParams() != m.NumParams() {
		t.Errorf("%d parameters, was %d", f.NumParams(), m.NumParams())
	}
	if d := maxDiff(logits(f, x), logits(m, x)); d != 0 {
		t.Errorf("logits differ by %g", d)
	}
}

// TestTruncationError: the factored layer is the best rank-r
// approximation, so its error is the norm of the dropped singular values.
func TestTruncationError(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	f, _, err := Factor(m, Options{Groups: []string{"fc1"}, Rank: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Drop()
	var got, want float64
	torchrt.NoGrad(func() {
		w := m.Blocks[0].FC1.Weight
		l := f.Blocks[0].FC1
		approx := l.Up.MustMm(l.Down, false)
		diff := approx.MustSub(w, true)
		got = diff.MustSquare(true).MustSum(gotch.Double, true).Float64Values()[0]
		_, s, v := w.MustSvd(true, true, false)
		v.MustDrop()
		sv := s.Float64Values()
		s.MustDrop()
		for _, x := range sv[5:] {
			want += x * x
		}
	})
	if math.Abs(got-want) > 1e-4*want {
		t.Errorf("squared error %g, want the dropped energy %g", got, want)
	}
}

func TestApplyThroughRegistry(t *testing.T) {
	tech, err := techniques.Lookup(techniques.LowRank)
	if err != nil {
		t.Fatal(err)
	}
	m := tinyModel(t)
	defer m.Drop()
	c := tech.NewConfig().(*techniques.LowRankConfig)
	c.ParamsKept, c.Epochs = 0.25, 0.5
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	env := &compresstest.Env{NoTrain: true}
	out, err := compress.Apply(context.Background(), techniques.LowRank, c, m, env)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	if out == m || out.NumParams() >= m.NumParams() {
		t.Errorf("apply returned %d parameters from %d", out.NumParams(), m.NumParams())
	}
	tuned := 0.0
	for _, tr := range env.Trainings {
		tuned += tr.Epochs
	}
	if tuned != 0.5 {
		t.Errorf("fine-tuned %g epochs, want 0.5", tuned)
	}
	// A quantized model is refused.
	if err := m.SetQuant(&vit.QuantState{Precision: vit.PrecisionBF16}); err != nil {
		t.Fatal(err)
	}
	if _, err := compress.Apply(context.Background(), techniques.LowRank, c, m, env); err == nil || !strings.Contains(err.Error(), "quantized") {
		t.Errorf("factoring a quantized model: %v", err)
	}
}

// TestLevelThatChangesNothing checks that a level at which every layer
// would stay dense fails, saying so, instead of passing the model on
// unchanged under a low-rank name.
func TestLevelThatChangesNothing(t *testing.T) {
	m := tinyModel(t)
	defer m.Drop()
	c := techniques.NewLowRankConfig()
	c.ParamsKept, c.Rank = techniques.DefaultParamsKept, 1000
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := compress.Apply(context.Background(), techniques.LowRank, c, m, &compresstest.Env{NoTrain: true})
	if err == nil {
		out.Drop()
		t.Fatal("a rank no layer can use: no error")
	}
	if !strings.Contains(err.Error(), "changes nothing") {
		t.Errorf("err = %v", err)
	}
}
