package prune

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

func TestCubic(t *testing.T) {
	tests := []struct {
		final    float64
		t, steps int
		want     float64
	}{
		{0.9, 1, 1, 0.9},
		{0.8, 1, 2, 0.7},
		{0.8, 2, 2, 0.8},
		{0.5, 1, 4, 0.5 * (1 - 0.421875)},
		{0.5, 3, 4, 0.5 * (1 - 0.015625)},
		{0.5, 4, 4, 0.5},
	}
	for _, tt := range tests {
		if got := Cubic(tt.final, tt.t, tt.steps); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Cubic(%g, %d, %d) = %g, want %g", tt.final, tt.t, tt.steps, got, tt.want)
		}
	}
}

// TestUnstructuredSparsity checks that exactly round(amount x n) weights
// are zeroed, the smallest ones, and that other layers are untouched.
func TestUnstructuredSparsity(t *testing.T) {
	tests := []struct {
		amount float64
		global bool
		groups []string
	}{
		{0.3, false, nil},
		{0.5, true, nil},
		{0.7, false, []string{"fc1", "fc2"}},
		{0.9, true, []string{"qkv", "proj", "fc1", "fc2", "head"}},
		{0.123, true, nil},
		{0, false, nil},
	}
	for _, tt := range tests {
		m := techtest.NewModel(t, testConfig(false), 1)
		groups := tt.groups
		if groups == nil {
			groups = []string{"qkv", "proj", "fc1", "fc2"}
		}
		nonZeroBefore := m.Count().NonZero
		before := map[string][]float64{}
		for _, l := range m.Linears() {
			before[l.Name] = l.Weight.Float64Values()
		}
		got, err := Unstructured(m, UnstructuredOptions{Amount: tt.amount, Global: tt.global, Groups: tt.groups})
		if err != nil {
			t.Fatal(err)
		}
		var total, zeros int
		maxPruned, minKept := 0.0, math.Inf(1)
		for _, l := range m.Linears() {
			w := l.Weight.Float64Values()
			if !slices.Contains(groups, l.Group) {
				if !slices.Equal(w, before[l.Name]) || l.Mask != nil {
					t.Errorf("amount %g: %s (not selected) changed", tt.amount, l.Name)
				}
				continue
			}
			if l.Mask == nil {
				t.Errorf("amount %g: %s has no mask", tt.amount, l.Name)
				continue
			}
			mask := l.Mask.Float64Values()
			z := 0
			for i, v := range w {
				if mask[i] == 0 {
					z++
					maxPruned = math.Max(maxPruned, math.Abs(before[l.Name][i]))
					if v != 0 {
						t.Fatalf("%s: masked weight %d is %g", l.Name, i, v)
					}
				} else {
					minKept = math.Min(minKept, math.Abs(before[l.Name][i]))
					if v != before[l.Name][i] {
						t.Fatalf("%s: kept weight %d changed", l.Name, i)
					}
				}
			}
			if !tt.global {
				if want := int(math.Round(tt.amount * float64(len(w)))); z != want {
					t.Errorf("amount %g: %s has %d pruned of %d, want %d", tt.amount, l.Name, z, len(w), want)
				}
				maxPruned, minKept = 0, math.Inf(1) // per layer
			}
			zeros += z
			total += len(w)
		}
		if tt.global {
			if want := int(math.Round(tt.amount * float64(total))); zeros != want {
				t.Errorf("amount %g global: %d pruned of %d, want %d", tt.amount, zeros, total, want)
			}
			if zeros > 0 && maxPruned > minKept {
				t.Errorf("amount %g global: pruned |w| up to %g above kept |w| from %g", tt.amount, maxPruned, minKept)
			}
		}
		if want := float64(zeros) / float64(total); got != want {
			t.Errorf("amount %g: reported sparsity %g, counted %g", tt.amount, got, want)
		}
		if tt.global && math.Abs(got-tt.amount) > 0.5/float64(total) {
			t.Errorf("amount %g: sparsity %g is not the nearest to the amount", tt.amount, got)
		}
		// Counts see the zeros (biases start at zero and are not pruned).
		if nz := m.Count().NonZero; nz != nonZeroBefore-int64(zeros) {
			t.Errorf("amount %g: Count().NonZero = %d, want %d", tt.amount, nz, nonZeroBefore-int64(zeros))
		}
		m.Drop()
	}
}

// TestAmountZeroReproducesLogits applies every kind of pruning that
// removes nothing and expects the logits bit for bit.
func TestAmountZeroReproducesLogits(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *techniques.PruneConfig)
	}{
		{"unstructured", func(c *techniques.PruneConfig) { c.Kind, c.Amount = techniques.KindUnstructured, 0 }},
		{"unstructured global", func(c *techniques.PruneConfig) { c.Kind, c.Amount, c.Scope = techniques.KindUnstructured, 0, "global" }},
		{"heads", func(c *techniques.PruneConfig) { c.Kind, c.Amount = techniques.KindHeads, 0 }},
		{"heads taylor global", func(c *techniques.PruneConfig) {
			c.Kind, c.Amount, c.Importance, c.Scope = techniques.KindHeads, 0, techniques.ImportanceTaylor, "global"
		}},
		{"mlp l2", func(c *techniques.PruneConfig) {
			c.Kind, c.Amount, c.Importance = techniques.KindMLP, 0, techniques.ImportanceL2
		}},
		{"tome r=0", func(c *techniques.PruneConfig) {
			c.Kind, c.Method, c.MergeR = techniques.KindTokens, techniques.MethodToMe, 0
		}},
		{"evit keep 1", func(c *techniques.PruneConfig) {
			c.Kind, c.Method, c.KeepRate = techniques.KindTokens, techniques.MethodEViT, 1
		}},
	}
	for _, distilled := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := testConfig(distilled)
				m := techtest.NewModel(t, cfg, 2)
				x := images(cfg, 4, 3)
				defer x.MustDrop()
				want := logits(m, x)
				defer want.MustDrop()
				c := techniques.NewPruneConfig()
				tt.edit(c)
				out, err := Apply(context.Background(), c, m, newEnv(t, nil))
				if err != nil {
					t.Fatal(err)
				}
				if out != m {
					m.Drop()
				}
				defer out.Drop()
				got := logits(out, x)
				defer got.MustDrop()
				if !got.MustEqual(want, false) {
					t.Errorf("logits changed by up to %g", maxAbsDiff(got, want))
				}
				if out.NumParams() != out.Cfg.Count().Params {
					t.Errorf("params %d, analytic %d", out.NumParams(), out.Cfg.Count().Params)
				}
			})
		}
	}
}

// deadUnits returns a model whose block 0 head 1 and block 2 heads 0 and 3
// have zero proj columns, and whose block 1 neurons 5 and 9 have zero fc2
// columns: removing them cannot change the outputs.
func deadUnits(t *testing.T, cfg vit.Config) *vit.Model {
	m := techtest.NewModel(t, cfg, 4)
	zeroCols := func(l *vit.Linear, cols ...int) {
		w := l.Weight
		if l.Rank > 0 {
			w = l.Down // the input columns of a factored layer
		}
		torchrt.NoGrad(func() {
			for _, c := range cols {
				v := w.MustNarrow(1, int64(c), 1, false)
				v.MustZero_()
				v.MustDrop()
			}
		})
	}
	hd := cfg.EmbedDim / cfg.NumHeads
	headCols := func(h int) []int {
		var out []int
		for d := 0; d < hd; d++ {
			out = append(out, h*hd+d)
		}
		return out
	}
	zeroCols(m.Blocks[0].Proj, headCols(1)...)
	zeroCols(m.Blocks[2].Proj, append(headCols(0), headCols(3)...)...)
	zeroCols(m.Blocks[1].FC2, 5, 9)
	return m
}

func TestShrinkKeepsComputation(t *testing.T) {
	factored := testConfig(false).WithBlocks()
	for i := range factored.Blocks {
		factored.Blocks[i].Ranks = map[string]int{"qkv": 12, "proj": 8, "fc1": 10, "fc2": 6}
	}
	for _, cfg := range []vit.Config{testConfig(false), testConfig(true), factored} {
		name := fmt.Sprintf("distilled=%t factored=%t", cfg.Distilled, cfg.Blocks != nil)
		m := deadUnits(t, cfg)
		x := images(cfg, 4, 5)
		want := logits(m, x)
		all := func(n int, drop ...int) []int {
			var out []int
			for i := 0; i < n; i++ {
				if !slices.Contains(drop, i) {
					out = append(out, i)
				}
			}
			return out
		}
		hidden := m.Blocks[0].FC1.Out
		keepHeads := [][]int{all(4, 1), nil, all(4, 0, 3)}
		keepNeurons := [][]int{nil, all(hidden, 5, 9), nil}
		out, err := Shrink(m, keepHeads, keepNeurons)
		if err != nil {
			t.Fatal(err)
		}
		got := logits(out, x)
		if d := maxAbsDiff(got, want); d > 1e-5 {
			t.Errorf("%s: removing dead heads and neurons changed the logits by %g", name, d)
		}
		if h := []int{out.Blocks[0].Heads, out.Blocks[1].Heads, out.Blocks[2].Heads}; !slices.Equal(h, []int{3, 4, 2}) {
			t.Errorf("%s: heads per block %v, want [3 4 2]", name, h)
		}
		if n := out.Blocks[1].FC1.Out; n != hidden-2 {
			t.Errorf("block 1 MLP width %d, want %d", n, hidden-2)
		}
		// Counts: the model's own equal the analytic counts of its config
		// and those of a model built from that config.
		fresh, err := vit.New(out.Cfg, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		if a, b, c := out.NumParams(), out.Cfg.Count().Params, fresh.NumParams(); a != b || a != c {
			t.Errorf("%s: params: model %d, analytic %d, fresh model %d", name, a, b, c)
		}
		if cfg.Blocks == nil { // dense layers: what the removal saves, by hand
			hd := int64(cfg.EmbedDim / cfg.NumHeads)
			d := int64(cfg.EmbedDim)
			removed := 3*(3*hd*d+3*hd) + 3*hd*d + 2*(d+1) + 2*d // qkv rows+bias, proj columns, fc1 rows+bias, fc2 columns
			if got := m.Cfg.Count().Params - out.Cfg.Count().Params; got != removed {
				t.Errorf("removed %d params, want %d", got, removed)
			}
			n := int64(cfg.NumTokens())
			removedMACs := n*(3*hd*d*3+3*hd*d) + n*(2*2*d) + 2*3*n*n*hd
			if got := m.Cfg.Count().MACs - out.Cfg.Count().MACs; got != removedMACs {
				t.Errorf("removed %d MACs, want %d", got, removedMACs)
			}
		}
		// The pruned model saves and reloads exactly.
		path := filepath.Join(t.TempDir(), "pruned.pt")
		if err := out.Save(path); err != nil {
			t.Fatal(err)
		}
		back, err := vit.Load(path, gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		again := logits(back, x)
		if !again.MustEqual(got, false) {
			t.Errorf("%s: reloaded pruned model differs by %g", name, maxAbsDiff(again, got))
		}
		for _, t := range []*ts.Tensor{x, want, got, again} {
			t.MustDrop()
		}
		for _, mm := range []*vit.Model{m, out, fresh, back} {
			mm.Drop()
		}
	}
}

func TestShrinkRejectsBadLists(t *testing.T) {
	m := techtest.NewModel(t, testConfig(false), 1)
	defer m.Drop()
	tests := []struct {
		name         string
		heads, neuro [][]int
	}{
		{"empty", [][]int{{}, nil, nil}, nil},
		{"out of range", [][]int{{0, 4}, nil, nil}, nil},
		{"twice", nil, [][]int{{1, 1}, nil, nil}},
		{"wrong depth", [][]int{{0}}, nil},
	}
	for _, tt := range tests {
		if out, err := Shrink(m, tt.heads, tt.neuro); err == nil {
			out.Drop()
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestSelect(t *testing.T) {
	scores := [][]float64{{4, 1, 3, 2}, {10, 20, 30, 40}, {0.5, 0.1, 0.2, 0.3, 0.4, 0.6}}
	tests := []struct {
		amount float64
		global bool
		want   [][]int
	}{
		{0, false, [][]int{{0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1, 2, 3, 4, 5}}},
		// round(0.5*4)=2, round(0.5*6)=3
		{0.5, false, [][]int{{0, 2}, {2, 3}, {0, 4, 5}}},
		// round(0.3*4)=1, round(0.3*6)=2 (1.8)
		{0.3, false, [][]int{{0, 2, 3}, {1, 2, 3}, {0, 3, 4, 5}}},
		// at least one kept: round(0.9*4)=4 -> 3
		{0.9, false, [][]int{{0}, {3}, {5}}},
		// global: round(0.5*14)=7 lowest of all: 0.1 0.2 0.3 0.4 0.5 0.6 (block 2 keeps one), 1, 2
		{0.5, true, [][]int{{0, 2}, {0, 1, 2, 3}, {5}}},
	}
	for _, tt := range tests {
		got := Select(scores, tt.amount, tt.global)
		for i := range got {
			if !slices.Equal(got[i], tt.want[i]) {
				t.Errorf("Select(%g, global=%t) = %v, want %v", tt.amount, tt.global, got, tt.want)
				break
			}
		}
	}
}

// TestScoreFindsDeadUnits checks every criterion ranks the dead units
// lowest; for taylor their score is exactly zero (no gradient reaches a
// head whose output is discarded, and its proj weights are zero).
func TestScoreFindsDeadUnits(t *testing.T) {
	cfg := testConfig(false)
	m := deadUnits(t, cfg)
	defer m.Drop()
	// Make the dead units' own weights small too, for the norms.
	torchrt.NoGrad(func() {
		hd := int64(cfg.EmbedDim / cfg.NumHeads)
		inner := int64(cfg.EmbedDim)
		for p := int64(0); p < 3; p++ {
			v := m.Blocks[0].QKV.Weight.MustNarrow(0, p*inner+hd, hd, false)
			v.MustMulScalar_(ts.FloatScalar(0.01))
			v.MustDrop()
		}
	})
	env := newEnv(t, nil)
	calib, _ := env.Calibration(context.Background(), 32)
	defer func() {
		for _, x := range calib {
			x.MustDrop()
		}
	}()
	for _, crit := range []string{techniques.ImportanceL1, techniques.ImportanceL2, techniques.ImportanceTaylor, techniques.ImportanceTaylorAbs} {
		imp, err := Score(m, crit, calib)
		if err != nil {
			t.Fatal(err)
		}
		if keep := Select(imp.Heads, 0.25, false); slices.Contains(keep[0], 1) {
			t.Errorf("%s: block 0 keeps dead head 1: scores %v", crit, imp.Heads[0])
		}
		if crit == techniques.ImportanceTaylor {
			if imp.Heads[0][1] != 0 || imp.Heads[2][0] != 0 || imp.Heads[2][3] != 0 {
				t.Errorf("taylor: dead heads score %g %g %g, want 0", imp.Heads[0][1], imp.Heads[2][0], imp.Heads[2][3])
			}
			if imp.Neurons[1][5] != 0 || imp.Neurons[1][9] != 0 {
				t.Errorf("taylor: dead neurons score %g %g, want 0", imp.Neurons[1][5], imp.Neurons[1][9])
			}
			if imp.Heads[0][0] <= 0 {
				t.Errorf("taylor: live head scores %g", imp.Heads[0][0])
			}
			for _, p := range m.VS.TrainableVariables() {
				g := p.MustGrad(false)
				if g.MustDefined() {
					if s := g.MustAbs(false).MustSum(gotch.Double, true); s.Float64Values()[0] != 0 {
						t.Errorf("gradients left after scoring")
					}
				}
				g.MustDrop()
			}
		}
	}
}

// TestStructuredApply prunes half the heads, then half the MLP neurons,
// through Apply, and checks the structure and counts.
func TestStructuredApply(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(c *techniques.PruneConfig)
		heads     []int // per block after pruning
		hidden    []int
		fineTunes int
	}{
		{"heads l1", func(c *techniques.PruneConfig) { c.Kind, c.Amount = techniques.KindHeads, 0.5 }, []int{2, 2, 2}, []int{64, 64, 64}, 0},
		{"mlp taylor", func(c *techniques.PruneConfig) {
			c.Kind, c.Amount, c.Importance = techniques.KindMLP, 0.25, techniques.ImportanceTaylor
		}, []int{4, 4, 4}, []int{48, 48, 48}, 0},
		{"heads iterative", func(c *techniques.PruneConfig) {
			c.Kind, c.Amount, c.Schedule, c.Steps, c.Epochs = techniques.KindHeads, 0.5, "iterative", 2, 0.5
		}, []int{2, 2, 2}, []int{64, 64, 64}, 2},
		{"mlp global", func(c *techniques.PruneConfig) { c.Kind, c.Amount, c.Scope = techniques.KindMLP, 0.5, "global" }, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(false)
			m := techtest.NewModel(t, cfg, 6)
			c := techniques.NewPruneConfig()
			tt.edit(c)
			env := newEnv(t, nil)
			out, err := Apply(context.Background(), c, m, env)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Drop()
			if out != m {
				m.Drop()
			}
			var heads, hidden []int
			for i := 0; i < out.Cfg.Depth; i++ {
				heads = append(heads, out.Cfg.Block(i).Heads)
				hidden = append(hidden, out.Cfg.Block(i).MLPHidden)
			}
			if tt.heads != nil && (!slices.Equal(heads, tt.heads) || !slices.Equal(hidden, tt.hidden)) {
				t.Errorf("heads %v hidden %v, want %v %v", heads, hidden, tt.heads, tt.hidden)
			}
			if tt.heads == nil && sum(hidden) != 3*64/2 {
				t.Errorf("global: hidden %v, want %d in all", hidden, 3*64/2)
			}
			if len(env.Trainings) != tt.fineTunes {
				t.Errorf("%d fine-tunings, want %d", len(env.Trainings), tt.fineTunes)
			}
			if out.NumParams() != out.Cfg.Count().Params {
				t.Errorf("params %d, analytic %d", out.NumParams(), out.Cfg.Count().Params)
			}
		})
	}
}

// TestIterativeUnstructured prunes in 3 steps with fine-tuning between
// them and checks the sparsity schedule and that fine-tuning keeps the
// pruned weights at zero.
func TestIterativeUnstructured(t *testing.T) {
	cfg := testConfig(false)
	m := techtest.NewModel(t, cfg, 8)
	defer m.Drop()
	c := techniques.NewPruneConfig()
	c.Kind, c.Amount, c.Schedule, c.Steps, c.Epochs, c.Scope = techniques.KindUnstructured, 0.6, "iterative", 3, 0.75, "global"
	var sparsities []float64
	env := newEnv(t, nil)
	env.OnTrain = func(m *vit.Model, _ compress.Training) {
		var z, n int64
		for _, l := range m.Linears() {
			if l.Group == "head" {
				continue
			}
			n += int64(l.Weight.Numel())
			z += int64(l.Weight.Numel()) - countNonZero(l.Weight)
		}
		sparsities = append(sparsities, float64(z)/float64(n))
	}
	out, err := Apply(context.Background(), c, m, env)
	if err != nil {
		t.Fatal(err)
	}
	if out != m {
		t.Fatal("unstructured pruning returned a new model")
	}
	if len(env.Trainings) != 3 {
		t.Fatalf("%d fine-tunings, want 3", len(env.Trainings))
	}
	for i, ft := range env.Trainings {
		if ft.Epochs != 0.25 || ft.AfterStep == nil {
			t.Errorf("fine-tuning %d: epochs %g, AfterStep set %t", i, ft.Epochs, ft.AfterStep != nil)
		}
	}
	for i, s := range sparsities {
		want := Cubic(0.6, i+1, 3)
		if math.Abs(s-want) > 1e-4 {
			t.Errorf("after step %d and fine-tuning: sparsity %.5f, want %.5f", i+1, s, want)
		}
	}
}

// TestFineTuneWithTeacher checks that a teacher is fetched and used for
// fine-tuning after pruning.
func TestFineTuneWithTeacher(t *testing.T) {
	cfg := testConfig(false)
	m := techtest.NewModel(t, cfg, 9)
	env := newEnv(t, map[string]func() *vit.Model{"big": func() *vit.Model { return techtest.NewModel(t, cfg, 10) }})
	c := techniques.NewPruneConfig()
	c.Kind, c.Amount, c.Teacher, c.Epochs = techniques.KindMLP, 0.5, "big", 0.25
	out, err := Apply(context.Background(), c, m, env)
	if err != nil {
		t.Fatal(err)
	}
	m.Drop()
	out.Drop()
	if fetched := len(env.Fetched); fetched != 1 || len(env.Trainings) != 1 || env.Trainings[0].Loss == nil {
		t.Errorf("teacher fetched %d times, %d fine-tunings, loss set %t", fetched, len(env.Trainings), len(env.Trainings) > 0 && env.Trainings[0].Loss != nil)
	}
}

// TestTokenReduction applies ToMe and EViT through Apply: the counts
// follow the tokens, and the model saves and reloads with its reducers.
func TestTokenReduction(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(c *techniques.PruneConfig)
		tokens int // leaving the last block
	}{
		// 17 tokens: -4 -4 -4 (at most (n-1)/2: 8, 6, 4)
		{"tome r=4", func(c *techniques.PruneConfig) { c.Kind, c.MergeR = techniques.KindTokens, 4 }, 5},
		// EViT at blocks 0, 1, 2 (depth 3): 16 -> 8+1 -> 5+1 -> 3+1 patch tokens
		{"evit 0.5", func(c *techniques.PruneConfig) {
			c.Kind, c.Method, c.KeepRate = techniques.KindTokens, techniques.MethodEViT, 0.5
		}, 5},
		// The training-free variant reduces the same tokens in the same blocks.
		{"evit-trainfree 0.5", func(c *techniques.PruneConfig) {
			c.Kind, c.Method, c.KeepRate = techniques.KindTokens, techniques.MethodEViTTrainFree, 0.5
		}, 5},
		{"tome one block", func(c *techniques.PruneConfig) { c.Kind, c.MergeR, c.Blocks = techniques.KindTokens, 6, []int{1} }, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(false)
			m := techtest.NewModel(t, cfg, 11)
			defer m.Drop()
			c := techniques.NewPruneConfig()
			tt.edit(c)
			out, err := Apply(context.Background(), c, m, newEnv(t, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Drop()
			if got := FinalTokens(out.Cfg); got != tt.tokens {
				t.Errorf("final tokens %d, want %d", got, tt.tokens)
			}
			x := images(cfg, 3, 12)
			defer x.MustDrop()
			var f *ts.Tensor
			torchrt.NoGrad(func() { f = out.Features(x) })
			if n := int(f.MustSize()[1]); n != tt.tokens {
				t.Errorf("features have %d tokens, want %d", n, tt.tokens)
			}
			f.MustDrop()
			if a, b := out.Cfg.Count().MACs, m.Cfg.Count().MACs; a >= b {
				t.Errorf("MACs %d not below dense %d", a, b)
			}
			if out.NumParams() != m.NumParams() {
				t.Errorf("token reduction changed params")
			}
			y := logits(out, x)
			defer y.MustDrop()
			path := filepath.Join(t.TempDir(), "tokens.pt")
			if err := out.Save(path); err != nil {
				t.Fatal(err)
			}
			back, err := vit.Load(path, gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer back.Drop()
			y2 := logits(back, x)
			defer y2.MustDrop()
			if !y.MustEqual(y2, false) {
				t.Errorf("reloaded model differs by %g", maxAbsDiff(y, y2))
			}
		})
	}
}

func TestDefaultEViTBlocks(t *testing.T) {
	tests := []struct {
		depth int
		want  []int
	}{
		{12, []int{3, 6, 9}}, // the paper: the 4th, 7th and 10th of DeiT's 12 blocks
		{24, []int{6, 12, 18}},
		{8, []int{2, 4, 6}},
		{6, []int{1, 3, 4}},
		{4, []int{1, 2, 3}}, // cifar_vit: the first block runs on every token, as the paper's first quarter
		{3, []int{0, 1, 2}},
		{2, []int{0, 1}},
		{1, []int{0}},
	}
	for _, tt := range tests {
		if got := DefaultEViTBlocks(tt.depth); !slices.Equal(got, tt.want) {
			t.Errorf("DefaultEViTBlocks(%d) = %v, want %v", tt.depth, got, tt.want)
		}
	}
}

// TestEViTFineTunes runs EViT as the paper (method evit) and training-free
// (evit-trainfree) through Apply: both reduce the same tokens at the
// scaled paper depths; only evit trains, on the reduced model, and its
// weights change while the trainfree model's stay the input's.
func TestEViTFineTunes(t *testing.T) {
	tests := []struct {
		method    string
		epochs    float64
		trainings int
	}{
		{techniques.MethodEViT, 0.25, 1},
		{techniques.MethodEViTTrainFree, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			cfg := testConfig(false)
			m := techtest.NewModel(t, cfg, 13)
			defer m.Drop()
			c := techniques.NewPruneConfig()
			c.Kind, c.Method, c.KeepRate, c.Epochs, c.LR = techniques.KindTokens, tt.method, 0.5, tt.epochs, 1e-3
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			env := newEnv(t, nil)
			var trainedTokens int
			env.OnTrain = func(m *vit.Model, _ compress.Training) { trainedTokens = FinalTokens(m.Cfg) }
			out, err := Apply(context.Background(), c, m, env)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Drop()
			if len(env.Trainings) != tt.trainings {
				t.Fatalf("%d fine-tunings, want %d", len(env.Trainings), tt.trainings)
			}
			for i := 0; i < cfg.Depth; i++ {
				want := 0.0
				if slices.Contains(DefaultEViTBlocks(cfg.Depth), i) {
					want = 0.5
				}
				if got := out.Cfg.Block(i).KeepRate; got != want {
					t.Errorf("block %d keep rate %g, want %g", i, got, want)
				}
			}
			if tt.trainings > 0 {
				if env.Trainings[0].Epochs != tt.epochs {
					t.Errorf("fine-tuned %g epochs, want %g", env.Trainings[0].Epochs, tt.epochs)
				}
				if trainedTokens != FinalTokens(out.Cfg) {
					t.Errorf("fine-tuned a model leaving %d tokens, the result leaves %d", trainedTokens, FinalTokens(out.Cfg))
				}
			}
			// The weights: trained by evit, the input's under evit-trainfree.
			changed := false
			dense := m.VS.Variables()
			for name, v := range out.VS.Variables() {
				if w, ok := dense[name]; ok && !v.MustEqual(&w, false) {
					changed = true
				}
			}
			if changed != (tt.trainings > 0) {
				t.Errorf("weights changed %t, want %t", changed, tt.trainings > 0)
			}
		})
	}
}

// TestTaylorIsMolchanov checks the taylor criterion against its definition
// computed here from the tensors directly: for head 0 of block 0 and for
// neuron 0 of block 0, the signed sum of w·dL/dw over the unit's weights,
// batch by batch, squared and summed over the batches (Molchanov et al.
// 2019), not the square of the whole calibration set's sum nor a sum of
// absolute values.
func TestTaylorIsMolchanov(t *testing.T) {
	cfg := testConfig(false)
	m := deadUnits(t, cfg)
	defer m.Drop()
	env := newEnv(t, nil)
	calib, _ := env.Calibration(context.Background(), 32)
	defer func() {
		for _, x := range calib {
			x.MustDrop()
		}
	}()
	if len(calib) < 2 {
		t.Fatalf("%d calibration batches, want at least 2", len(calib))
	}
	b := m.Blocks[0]
	hd, inner := int64(b.HeadDim), int64(b.Heads*b.HeadDim)
	sumWG := func(w *ts.Tensor, dim, start, n int64) float64 {
		g := w.MustGrad(false)
		defer g.MustDrop()
		wn, gn := w.MustNarrow(dim, start, n, false), g.MustNarrow(dim, start, n, false)
		defer wn.MustDrop()
		defer gn.MustDrop()
		return wn.MustMul(gn, false).MustSum(gotch.Double, true).Float64Values(true)[0]
	}
	var head, neuron, headOfSums float64
	for _, x := range calib {
		zeroGrads(m)
		taylorGrads(m, []*ts.Tensor{x})
		var s float64
		for p := int64(0); p < 3; p++ {
			s += sumWG(b.QKV.Weight, 0, p*inner, hd) + sumWG(b.QKV.Bias, 0, p*inner, hd)
		}
		s += sumWG(b.Proj.Weight, 1, 0, hd)
		head += s * s
		headOfSums += s
		n := sumWG(b.FC1.Weight, 0, 0, 1) + sumWG(b.FC1.Bias, 0, 0, 1) + sumWG(b.FC2.Weight, 1, 0, 1)
		neuron += n * n
	}
	zeroGrads(m)
	imp, err := Score(m, techniques.ImportanceTaylor, calib)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b)) }
	if !near(imp.Heads[0][0], head) || !near(imp.Neurons[0][0], neuron) {
		t.Errorf("taylor: head %g, neuron %g; want %g, %g", imp.Heads[0][0], imp.Neurons[0][0], head, neuron)
	}
	if near(imp.Heads[0][0], headOfSums*headOfSums) {
		t.Errorf("taylor equals the square of the summed batches (%g): not accumulated per batch", headOfSums*headOfSums)
	}
	abs, err := Score(m, techniques.ImportanceTaylorAbs, calib)
	if err != nil {
		t.Fatal(err)
	}
	if near(abs.Heads[0][0], imp.Heads[0][0]) {
		t.Errorf("taylor-abs and taylor agree (%g)", imp.Heads[0][0])
	}
}
