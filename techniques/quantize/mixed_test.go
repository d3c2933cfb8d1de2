package quantize

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques"
)

// bruteBits tries every assignment: the least summed sensitivity within
// limit, ties to the lower cost (then the first found in lexicographic
// order of descending indices, as chooseBits breaks them).
func bruteBits(sens [][]float64, cost [][]int64, limit int64) ([]int, float64, int64) {
	n := len(sens)
	at := make([]int, n)
	var best []int
	bestS, bestC := math.Inf(1), int64(0)
	for {
		var s float64
		var c int64
		for i, j := range at {
			s += sens[i][j]
			c += cost[i][j]
		}
		if c <= limit && (s < bestS || s == bestS && (c < bestC || c == bestC && slices.Compare(at, best) > 0)) {
			best, bestS, bestC = slices.Clone(at), s, c
		}
		i := n - 1
		for ; i >= 0; i-- {
			if at[i]++; at[i] < len(sens[i]) {
				break
			}
			at[i] = 0
		}
		if i < 0 {
			return best, bestS, bestC
		}
	}
}

func total(sens [][]float64, cost [][]int64, pick []int) (float64, int64) {
	var s float64
	var c int64
	for i, j := range pick {
		s += sens[i][j]
		c += cost[i][j]
	}
	return s, c
}

func TestChooseBitsMatchesBruteForce(t *testing.T) {
	// A hand-made table: 3 layers, widths 4/6/8, costs in bytes.
	hand := struct {
		sens [][]float64
		cost [][]int64
	}{
		sens: [][]float64{{9, 3, 1}, {2, 1, 0.5}, {20, 4, 0}},
		cost: [][]int64{{4, 6, 8}, {8, 12, 16}, {4, 6, 8}},
	}
	tests := []struct {
		name  string
		sens  [][]float64
		cost  [][]int64
		limit int64
	}{
		{"hand, budget at 6 bits", hand.sens, hand.cost, 24},
		{"hand, budget at 4 bits", hand.sens, hand.cost, 16},
		{"hand, budget at 8 bits", hand.sens, hand.cost, 32},
		{"hand, budget between", hand.sens, hand.cost, 21},
		{"ties", [][]float64{{1, 0}, {1, 0}}, [][]int64{{1, 2}, {1, 2}}, 3},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 40 {
		n, m := 2+rng.IntN(5), 2+rng.IntN(3)
		sens, cost := make([][]float64, n), make([][]int64, n)
		var limit int64
		for i := range n {
			size := int64(1 + rng.IntN(8))
			for j := range m {
				// Sensitivity falls with width, as quantization error does.
				sens[i] = append(sens[i], float64(rng.IntN(50))/float64(j+1))
				cost[i] = append(cost[i], size*int64(2*j+2))
			}
			limit += size * int64(m+1)
		}
		tests = append(tests, struct {
			name  string
			sens  [][]float64
			cost  [][]int64
			limit int64
		}{name: "random " + string(rune('a'+k%26)), sens: sens, cost: cost, limit: limit})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseBits(tt.sens, tt.cost, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			want, ws, wc := bruteBits(tt.sens, tt.cost, tt.limit)
			gs, gc := total(tt.sens, tt.cost, got)
			if gc > tt.limit {
				t.Errorf("cost %d over the budget %d", gc, tt.limit)
			}
			if gs != ws || gc != wc || !slices.Equal(got, want) {
				t.Errorf("chose %v (sensitivity %g, cost %d), brute force %v (%g, %d)", got, gs, gc, want, ws, wc)
			}
		})
	}
	if got, _ := chooseBits(hand.sens, hand.cost, 24); !slices.Equal(got, []int{2, 0, 2}) {
		// 1+2+0 = 3 at cost 8+8+8 = 24; every other assignment within 24 is more sensitive.
		t.Errorf("hand table at 24 bytes: %v, want [2 0 2]", got)
	}
}

func TestChooseBitsOverBudget(t *testing.T) {
	if _, err := chooseBits([][]float64{{1, 0}}, [][]int64{{4, 8}}, 3); err == nil {
		t.Error("no error when even the cheapest choice exceeds the budget")
	}
}

// TestStageMixedPrecision runs the stage on the tiny model: the
// assignment keeps within the budget, uses both widths, and no swap of
// widths between two layers of the same size would lower the summed
// sensitivity (so the more sensitive layer of such a pair, where they
// differ clearly, has at least as many bits).
func TestStageMixedPrecision(t *testing.T) {
	for _, budget := range []string{techniques.BudgetSize, techniques.BudgetBitOps} {
		t.Run(budget, func(t *testing.T) {
			m := trainedModel(t)
			defer m.Drop()
			if _, err := applyStage(t, m, newEnv(nil), func(c *techniques.QuantizeConfig) {
				c.ActBits, c.CalibImages = 8, 64
				c.MixedPrecision, c.BitChoices, c.Budget, c.BudgetBits, c.HutchinsonSamples = true, []int{3, 8}, budget, 5, 8
			}); err != nil {
				t.Fatal(err)
			}
			rec := m.Cfg.Quant.Mixed
			if rec == nil {
				t.Fatal("no mixed-precision record in the model's quantization")
			}
			if len(rec.Layers) != 4*len(m.Blocks) {
				t.Fatalf("%d layers searched, want %d", len(rec.Layers), 4*len(m.Blocks))
			}
			if rec.Cost > rec.Limit {
				t.Errorf("cost %d over the budget %d", rec.Cost, rec.Limit)
			}
			seen := map[int]bool{}
			for _, l := range rec.Layers {
				seen[l.Bits] = true
				t.Logf("%-20s trace %.3g  Ω(3) %.3g  Ω(8) %.3g  -> %d bits", l.Name, l.Trace, l.Sensitivity[0], l.Sensitivity[1], l.Bits)
				for _, n := range l.Weights {
					if s := m.Cfg.Quant.Weights[n]; s == nil || s.Bits != l.Bits {
						t.Errorf("weight %s: spec %+v, want %d bits", n, s, l.Bits)
					}
				}
				if !(l.Sensitivity[0] > l.Sensitivity[1]) || !(l.Trace > 0) {
					t.Errorf("%s: trace %g, sensitivities %v: want a positive trace and less sensitivity at 8 bits", l.Name, l.Trace, l.Sensitivity)
				}
			}
			if !seen[3] || !seen[8] {
				t.Errorf("widths used %v: a budget at 5 bits of {3, 8} needs both", seen)
			}
			// Size, as the model counts it, within the uniform 5-bit size.
			var got, uniform int64
			for _, l := range rec.Layers {
				for _, n := range l.Weights {
					w, _ := m.VS.Root().Get(n)
					got += (int64(w.Numel())*int64(l.Bits) + 7) / 8
					uniform += (int64(w.Numel())*5 + 7) / 8
				}
			}
			if budget == techniques.BudgetSize && got > uniform {
				t.Errorf("packed weight bytes %d over the uniform 5-bit %d", got, uniform)
			}
			pairs := 0
			for i, a := range rec.Layers {
				for _, b := range rec.Layers[i+1:] {
					if a.Bits == b.Bits || !sameSize(m, a.Weights, b.Weights) {
						continue
					}
					lo, hi := a, b
					if a.Bits > b.Bits {
						lo, hi = b, a
					}
					pairs++
					// Gain of 8 over 3 bits: the layer with more bits must gain at least as much.
					gainHi := hi.Sensitivity[0] - hi.Sensitivity[1]
					gainLo := lo.Sensitivity[0] - lo.Sensitivity[1]
					if gainLo > gainHi*(1+1e-9) {
						t.Errorf("%s has %d bits, %s %d: but the first gains %g from 8 bits, the second %g", lo.Name, lo.Bits, hi.Name, hi.Bits, gainLo, gainHi)
					}
				}
			}
			if pairs == 0 {
				t.Error("no pair of same-size layers with different widths to check")
			}
		})
	}
}

// sameSize reports whether two layers have as many weights, so that they
// cost the same at every width (the tiny model's block layers all see the
// same number of tokens and 8-bit inputs; fc1 and fc2 are such a pair).
func sameSize(m *vit.Model, a, b []string) bool {
	numel := func(names []string) (n uint) {
		for _, name := range names {
			w, _ := m.VS.Root().Get(name)
			n += w.Numel()
		}
		return n
	}
	return numel(a) == numel(b)
}
