package prune

import (
	"context"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

// TestSoftMasksFold checks that folding the masks into proj and fc2
// leaves what the model computes unchanged once the taps are gone.
func TestSoftMasksFold(t *testing.T) {
	cfg := testConfig(false)
	torchrt.ManualSeed(3)
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	masks, err := AttachSoftMasks(m)
	if err != nil {
		t.Fatal(err)
	}
	torchrt.NoGrad(func() {
		for i, mk := range append(append([]*ts.Tensor{}, masks.Heads...), masks.Neurons...) {
			r := ts.MustRand(mk.MustSize(), gotch.Float, gotch.CPU)
			mk.Copy_(r)
			if i == 0 {
				v := mk.MustNarrow(0, 1, 1, false)
				v.MustFill_(ts.FloatScalar(0)) // a head switched off
				v.MustDrop()
			}
			r.MustDrop()
		}
	})
	x := images(cfg, 4, 5)
	defer x.MustDrop()
	masked := logits(m, x)
	defer masked.MustDrop()
	if err := masks.Fold(m); err != nil {
		t.Fatal(err)
	}
	masks.Detach(m)
	for _, b := range m.Blocks {
		if b.Taps[vit.SiteProjIn] != nil || b.Taps[vit.SiteFC2In] != nil {
			t.Fatal("taps left after Detach")
		}
	}
	folded := logits(m, x)
	defer folded.MustDrop()
	if d := maxAbsDiff(masked, folded); d > 1e-5 {
		t.Errorf("folded model differs from the masked one by %g", d)
	}
}

// TestSoftMaskSearch checks ViT-Slim's search through the registry: the
// masks train on the model itself (one worker) under the L1 penalty and
// move down from 1, and the stage removes the requested heads.
func TestSoftMaskSearch(t *testing.T) {
	cfg := testConfig(false)
	torchrt.ManualSeed(4)
	m, err := vit.New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	env := newEnv(t, nil)
	imp, err := searchSoftMasks(context.Background(), env, m, nil, 1, 0.05, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Trainings) != 1 || !env.Trainings[0].OneWorker {
		t.Fatalf("trainings %+v, want one on the model itself", env.Trainings)
	}
	var sum float64
	n := 0
	for _, units := range append(imp.Heads, imp.Neurons...) {
		for _, v := range units {
			sum += v
			n++
		}
	}
	if mean := sum / float64(n); !(mean < 0.99) {
		t.Errorf("mean |mask| %g after the search: the L1 penalty did not move the masks", mean)
	}

	c := techniques.NewPruneConfig()
	c.Kind, c.Amount, c.Importance, c.MaskEpochs, c.MaskL1 = techniques.KindHeads, 0.5, techniques.ImportanceSoftMask, 0.5, 0.01
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := compress.Apply(context.Background(), techniques.Prune, c, m, newEnv(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	for i, b := range out.Blocks {
		if b.Heads != cfg.NumHeads/2 {
			t.Errorf("block %d keeps %d heads, want %d", i, b.Heads, cfg.NumHeads/2)
		}
	}
}

func TestSoftMaskValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(c *techniques.PruneConfig)
		want string
	}{
		{"defaults", func(c *techniques.PruneConfig) {}, ""},
		{"no search", func(c *techniques.PruneConfig) { c.MaskEpochs = 0 }, "mask_epochs"},
		{"no penalty", func(c *techniques.PruneConfig) { c.MaskL1 = 0 }, "mask_l1"},
	} {
		c := techniques.NewPruneConfig()
		c.Kind, c.Importance = techniques.KindHeads, techniques.ImportanceSoftMask
		tt.edit(c)
		err := c.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}
