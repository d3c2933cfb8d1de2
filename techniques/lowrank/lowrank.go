// Package lowrank is the "lowrank" technique: truncated SVD of a ViT's
// linear layers into two factors, W ≈ Up·Down with Down = √S_r V_rᵀ
// ([r, in]) and Up = U_r √S_r ([out, r], carrying the bias), the rank
// chosen per layer by a fraction of min(in, out), a fixed rank or the
// fraction of squared singular values ("energy") kept; optionally
// followed by fine-tuning, with or without a teacher.
//
// The factored model is a new vit.Model whose BlockConfig.Ranks record
// the ranks, so its parameter and MAC counts, its saved form and its
// measured latency are those of the factored layers. A layer whose
// factors would not be smaller than it (r·(in+out) >= in·out) is left
// dense.
//
// Its parameters are techniques.LowRankConfig; Options, ChooseRank and
// Factor are the algorithm on plain arguments, and the entry registered
// with package compress from init joins them.
package lowrank

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
	"github.com/vitbench/vitbench/techniques/compress"
)

// options translates a stage's parameters into the algorithm's terms.
func options(c *techniques.LowRankConfig) Options {
	o := Options{Groups: slices.Clone(c.Layers), KeepLarger: c.KeepLarger}
	switch {
	case c.Rank > 0:
		o.Rank = c.Rank
	case c.Energy > 0:
		o.Energy = c.Energy
	default:
		o.ParamsKept = c.ParamsKept
	}
	return o
}

// Options are the factorization's parameters; exactly one of ParamsKept,
// RankRatio, Rank and Energy is set.
type Options struct {
	Groups     []string
	ParamsKept float64 // fraction of each layer's parameters kept
	RankRatio  float64 // fraction of min(in, out)
	Rank       int
	Energy     float64
	KeepLarger bool
}

// ChooseRank returns the rank for a layer of in inputs and out outputs
// with singular values s (descending): floor(kept·in·out/(in+out)), the
// rank whose factors keep that fraction of the layer's parameters (at
// least 1); round(ratio·min(in, out)) (at
// least 1), the fixed rank (at most min(in, out)), or the least r whose
// leading squared singular values hold the energy fraction (energy 1
// keeps all of them).
func ChooseRank(s []float64, in, out int, o Options) int {
	k := min(in, out)
	switch {
	case o.ParamsKept > 0:
		return max(1, min(k, int(o.ParamsKept*float64(in*out)/float64(in+out))))
	case o.Rank > 0:
		return min(o.Rank, k)
	case o.Energy > 0:
		if o.Energy >= 1 {
			return k
		}
		var total float64
		for _, v := range s {
			total += v * v
		}
		var acc float64
		for i, v := range s {
			acc += v * v
			if acc >= o.Energy*total {
				return i + 1
			}
		}
		return k
	}
	return max(1, min(k, int(math.Round(o.RankRatio*float64(k)))))
}

// Decision records what Factor did to one layer.
type Decision struct {
	Layer   string
	In, Out int
	Rank    int     // chosen rank
	Energy  float64 // fraction of squared singular values the rank keeps
	Skipped bool    // left as it was: the factors would not be smaller
}

// Worth reports whether factors of rank r are smaller than the dense
// in x out layer.
func Worth(r, in, out int) bool { return r*(in+out) < in*out }

// Factor returns a new model in which the chosen linear layers of m are
// replaced by their truncated SVD factors; every other tensor is copied.
// m is left as it was (the caller drops it). A layer that is factored
// already is refactored from the product of its factors.
func Factor(m *vit.Model, o Options) (*vit.Model, []Decision, error) {
	if m.Cfg.Quant != nil {
		return nil, nil, fmt.Errorf("lowrank: the model is quantized (%s): factor before quantizing", m.Cfg.Quant.Precision)
	}
	cfg := m.Cfg.WithBlocks()
	factors := map[string]*ts.Tensor{} // new VarStore name → value
	defer func() {
		for _, t := range factors {
			t.MustDrop()
		}
	}()
	renames := map[string]string{} // new name → old name (a dense bias moving to the Up factor)
	var decisions []Decision
	var err error
	torchrt.NoGrad(func() {
		for _, b := range m.Blocks {
			for _, g := range o.Groups {
				l := linearOf(b, g)
				if l == nil {
					err = fmt.Errorf("lowrank: unknown layer group %q", g)
					return
				}
				d, down, up := factorLayer(l, o)
				decisions = append(decisions, d)
				if d.Skipped {
					continue
				}
				bc := &cfg.Blocks[b.Index]
				if bc.Ranks == nil {
					bc.Ranks = map[string]int{}
				}
				bc.Ranks[g] = d.Rank
				factors[l.Name+".0.weight"] = down
				factors[l.Name+".1.weight"] = up
				if l.Bias != nil && l.Rank == 0 {
					renames[l.Name+".1.bias"] = l.Name + ".bias"
				}
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	nm, err := vit.New(cfg, m.VS.Device())
	if err != nil {
		return nil, nil, err
	}
	old := m.VS.Variables()
	sd := map[string]*ts.Tensor{}
	for name := range nm.VS.Variables() {
		if f, ok := factors[name]; ok {
			sd[name] = f
			continue
		}
		src := name
		if r, ok := renames[name]; ok {
			src = r
		}
		t, err := m.VS.Root().Get(src)
		if _, ok := old[src]; !ok || err != nil {
			nm.Drop()
			return nil, nil, fmt.Errorf("lowrank: no tensor %s in the source model", src)
		}
		sd[name] = t
	}
	if err := nm.LoadStateDict(sd); err != nil {
		nm.Drop()
		return nil, nil, fmt.Errorf("lowrank: %w", err)
	}
	return nm, decisions, nil
}

func linearOf(b *vit.Block, group string) *vit.Linear {
	switch group {
	case "qkv":
		return b.QKV
	case "proj":
		return b.Proj
	case "fc1":
		return b.FC1
	case "fc2":
		return b.FC2
	}
	return nil
}

// factorLayer computes the SVD factors of one layer (under no-grad).
func factorLayer(l *vit.Linear, o Options) (d Decision, down, up *ts.Tensor) {
	d = Decision{Layer: l.Name, In: l.In, Out: l.Out}
	w := l.Weight
	if l.Rank > 0 {
		w = l.Up.MustMm(l.Down, false)
		defer w.MustDrop()
	}
	wf := w.MustTotype(gotch.Float, false)
	// torch.svd, reduced: U [out,k], S [k], V [in,k]. (gotch passes
	// linalg_svd's optional driver as a string, and libtorch 1.13 rejects
	// any driver on the CPU.)
	u, s, v := wf.MustSvd(true, true, true)
	defer u.MustDrop()
	defer s.MustDrop()
	defer v.MustDrop()
	sv := torchrt.Float64s(s)
	r := ChooseRank(sv, l.In, l.Out, o)
	d.Rank = r
	var kept, total float64
	for i, x := range sv {
		total += x * x
		if i < r {
			kept += x * x
		}
	}
	if total > 0 {
		d.Energy = kept / total
	}
	if !Worth(r, l.In, l.Out) && !o.KeepLarger {
		d.Skipped = true
		return d, nil, nil
	}
	root := s.MustNarrow(0, 0, int64(r), false).MustSqrt(true) // [r]
	ur := u.MustNarrow(1, 0, int64(r), false)                  // [out, r]
	vr := v.MustNarrow(1, 0, int64(r), false).MustT(true)      // [r, in]
	row := root.MustUnsqueeze(0, false)
	up = ur.MustMul(row, true).MustContiguous(true)
	col := root.MustUnsqueeze(1, false)
	down = vr.MustMul(col, true).MustContiguous(true)
	for _, t := range []*ts.Tensor{row, col, root} {
		t.MustDrop()
	}
	return d, down, up
}

func init() {
	compress.Register(techniques.LowRank, apply)
}

// apply is the registered entry: factor, then fine-tune when asked.
func apply(ctx context.Context, c *techniques.LowRankConfig, m *vit.Model, env compress.Env) (*vit.Model, error) {
	nm, decisions, err := Factor(m, options(c))
	if err != nil {
		return nil, err
	}
	factored, skipped := 0, 0
	for _, d := range decisions {
		if d.Skipped {
			skipped++
		} else {
			factored++
		}
	}
	env.Logf("lowrank: %d layers factored, %d left dense (factors would not be smaller); %d parameters, was %d",
		factored, skipped, nm.NumParams(), m.NumParams())
	if factored == 0 {
		nm.Drop()
		return nil, fmt.Errorf("lowrank: the level changes nothing: at the rank it gives, every one of the %d layers would be no smaller factored, so all stay dense (give params_kept below 1, or a lower rank or energy)", skipped)
	}
	if err := compress.FineTune(ctx, env, c.FineTune, nm); err != nil {
		nm.Drop()
		return nil, fmt.Errorf("lowrank: fine-tune: %w", err)
	}
	return nm, nil
}
