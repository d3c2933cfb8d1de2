package quantize

import (
	"maps"
	"slices"
	"testing"

	"github.com/vitbench/vitbench/harness/qexec"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/techtest"
	"github.com/vitbench/vitbench/techniques"
)

// TestCoverageSites: each coverage quantizes exactly its activation sites.
func TestCoverageSites(t *testing.T) {
	m := trainedModel(t)
	defer m.Drop()
	linear := []string{vit.ActInput, vit.ActHead}
	matmul, full := []string{}, []string{vit.ActNorm}
	for b := range 2 {
		for _, s := range []vit.Site{vit.SiteQKVIn, vit.SiteProjIn, vit.SiteFC1In, vit.SiteFC2In, vit.SiteAttnMap} {
			linear = append(linear, vit.ActKey(b, s))
		}
		for _, s := range []vit.Site{vit.SiteQ, vit.SiteK, vit.SiteV} {
			matmul = append(matmul, vit.ActKey(b, s))
		}
		for _, s := range []vit.Site{vit.SiteAttnLogits, vit.SiteNorm1In, vit.SiteNorm2In} {
			full = append(full, vit.ActKey(b, s))
		}
	}
	union := func(sets ...[]string) []string { return slices.Sorted(slices.Values(slices.Concat(sets...))) }
	tests := []struct {
		method, coverage string
		want             []string
	}{
		{techniques.MethodPTQ, "", linear},
		{techniques.MethodPTQ, techniques.CoverageLinear, linear},
		{techniques.MethodPTQ, techniques.CoverageMatmul, union(linear, matmul)},
		{techniques.MethodPTQ, techniques.CoverageFull, union(linear, matmul, full)},
		{techniques.MethodFQViT, "", union(linear, matmul, full)},
		{techniques.MethodPTQ4ViT, "", union(linear, matmul)},
		{techniques.MethodRepQViT, "", union(linear, matmul)},
	}
	for _, tt := range tests {
		c := cfgWith(func(c *techniques.QuantizeConfig) { c.Method, c.Coverage = tt.method, tt.coverage })
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(m, options(c))
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(p.Acts)); !slices.Equal(got, slices.Sorted(slices.Values(tt.want))) {
			t.Errorf("%s coverage %q: sites %v, want %v", tt.method, tt.coverage, got, slices.Sorted(slices.Values(tt.want)))
		}
	}
	// Without attn_map in layers, matmul still quantizes the attention map.
	c := cfgWith(func(c *techniques.QuantizeConfig) { c.Coverage, c.Layers = techniques.CoverageMatmul, []string{"fc1"} })
	p, err := NewPlan(m, options(c))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Acts[vit.ActKey(1, vit.SiteAttnMap)]; !ok {
		t.Error("coverage matmul without attn_map listed: attention map not quantized")
	}
}

// TestFullCoverageForward: full coverage (ptq and fq-vit) changes the
// simulated forward pass from linear coverage's, every new quantizer is
// attached, and qexec still executes the model, listing the new sites as
// not computed.
func TestFullCoverageForward(t *testing.T) {
	calib := techtest.Quadrants{N: 64, Batch: 32, Seed: 5}.Images(0)
	defer dropAllSlice(calib)
	run := func(method, coverage string) ([]float64, *vit.Model, *vit.QuantState) {
		m := trainedModel(t)
		c := cfgWith(func(c *techniques.QuantizeConfig) { c.Method, c.Coverage = method, coverage })
		s := quantizeWith(t, m, c, calib)
		return logits(t, m, calib[:1]), m, s
	}
	lin, ml, _ := run(techniques.MethodPTQ, techniques.CoverageLinear)
	ml.Drop()
	for _, method := range []string{techniques.MethodPTQ, techniques.MethodFQViT} {
		full, m, s := run(method, techniques.CoverageFull)
		if relErr(full, lin) == 0 {
			t.Errorf("%s: full coverage computes linear coverage's logits", method)
		}
		if method == techniques.MethodFQViT {
			if k := s.Acts[vit.ActKey(0, vit.SiteAttnMap)].Kind; k != vit.QuantLogIntSoftmax || m.Blocks[0].Softmax == nil {
				t.Errorf("fq-vit attention map: kind %s, softmax hook %v", k, m.Blocks[0].Softmax)
			}
			if n := s.Acts[vit.ActNorm]; n.Axis != 2 || len(n.Scale) != m.Cfg.EmbedDim {
				t.Errorf("fq-vit final norm input: axis %d, %d scales", n.Axis, len(n.Scale))
			}
		}
		if qexec.FastInt8() == "" {
			t.Logf("%s: no int8 kernel on this CPU: execution not checked", method)
		} else {
			m.Cfg.Executed = vit.ExecutedSimulated
			rep, err := qexec.Execute(m)
			if err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			for _, key := range []string{vit.ActNorm, vit.ActKey(1, vit.SiteQ), vit.ActKey(1, vit.SiteAttnLogits), vit.ActKey(0, vit.SiteNorm2In)} {
				if !slices.Contains(rep.NotComputed, key) {
					t.Errorf("%s: %s not listed as not computed: %v", method, key, rep.NotComputed)
				}
			}
			if method == techniques.MethodFQViT && m.Blocks[0].Softmax != nil {
				t.Error("executed graph keeps Log-Int-Softmax")
			}
			logits(t, m, calib[:1])
		}
		m.Drop()
	}
}
