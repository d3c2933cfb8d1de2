package techniques

import "slices"

// DefaultParamsKept is the fraction of each layer's parameters a lowrank
// stage keeps when neither rank nor energy is given.
const DefaultParamsKept = 0.5

// LowRankGroups are the layer groups a lowrank stage can factor.
var LowRankGroups = []string{"qkv", "proj", "fc1", "fc2"}

// LowRankConfig is a lowrank stage's parameters: truncated SVD of the
// chosen linear layers, then the fine-tune block.
type LowRankConfig struct {
	// Layers are the groups to factor: qkv, proj, fc1, fc2. (The head
	// has no factored form in vit.Config and is rejected.)
	Layers []string `toml:"layers"`
	// The rank, one way: ParamsKept, the fraction of each layer's
	// parameters its two factors keep, in (0, 1) (the default, 0.5,
	// applies when neither rank nor energy is given: rank =
	// floor(kept·in·out/(in+out))), so that every level below 1 changes
	// every layer; Rank, fixed (capped at min(in, out)); or Energy, the
	// fraction of the squared singular values kept, in (0, 1].
	ParamsKept float64 `toml:"params_kept"`
	Rank       int     `toml:"rank"`
	Energy     float64 `toml:"energy"`
	// KeepLarger factors a layer even where its factors are not smaller
	// than it (for checking; off by default).
	KeepLarger bool `toml:"keep_larger"`
	FineTune
}

// NewLowRankConfig returns the defaults: qkv, proj, fc1 and fc2 at half
// rank, no fine-tuning.
func NewLowRankConfig() *LowRankConfig {
	return &LowRankConfig{Layers: slices.Clone(LowRankGroups), ParamsKept: DefaultParamsKept, FineTune: NewFineTune()}
}

// Validate checks ranges and that the rank is given one way.
func (c *LowRankConfig) Validate() error {
	var v invalid
	v.layers(c.Layers, LowRankGroups, map[string]string{"head": "the head cannot be factored (vit.Config has ranks for block layers only)"})
	if c.Rank < 0 {
		v.add("rank %d: want >= 1 (or 0 for unset)", c.Rank)
	}
	if c.Energy < 0 || c.Energy > 1 {
		v.add("energy %g: want (0, 1] (or 0 for unset)", c.Energy)
	}
	if !(c.ParamsKept > 0 && c.ParamsKept < 1) {
		v.add("params_kept %g: want (0, 1), the fraction of each layer's parameters kept", c.ParamsKept)
	}
	given := 0
	for _, set := range []bool{c.Rank > 0, c.Energy > 0, c.ParamsKept != DefaultParamsKept} {
		if set {
			given++
		}
	}
	if given > 1 {
		v.add("give the rank one way: params_kept, rank or energy")
	}
	c.FineTune.check(&v)
	return v.err(LowRank)
}
