package quantize

import (
	"maps"
	"slices"
	"testing"

	"github.com/vitbench/vitbench/harness/vit"
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
