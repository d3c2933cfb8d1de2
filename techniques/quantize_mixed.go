package techniques

import (
	"slices"
)

// checkMixed validates the mixed-precision keys of a quantize stage.
func (c *QuantizeConfig) checkMixed(v *invalid) {
	if !c.MixedPrecision {
		// Set without the switch they would silently do nothing.
		if !slices.Equal(c.BitChoices, DefaultBitChoices) || c.Budget != BudgetSize ||
			c.BudgetBits != DefaultBudgetBits || c.HutchinsonSamples != DefaultHutchinsonSamples {
			v.add("bit_choices, budget, budget_bits and hutchinson_samples apply with mixed_precision = true: set it or leave them at their defaults")
		}
		return
	}
	if len(c.BitChoices) < 2 {
		v.add("bit_choices %v: want at least two widths to choose from", c.BitChoices)
	}
	seen := map[int]bool{}
	for _, b := range c.BitChoices {
		if b < 2 || b > 8 {
			v.add("bit_choices: width %d outside 2..8", b)
		}
		if seen[b] {
			v.add("bit_choices: width %d listed twice", b)
		}
		seen[b] = true
	}
	v.oneOf("budget", c.Budget, BudgetSize, BudgetBitOps)
	if len(c.BitChoices) > 0 {
		lo, hi := slices.Min(c.BitChoices), slices.Max(c.BitChoices)
		if c.BudgetBits < lo || c.BudgetBits > hi {
			v.add("budget_bits %d: want a width between the smallest and largest of bit_choices (%d..%d)", c.BudgetBits, lo, hi)
		}
	}
	if c.HutchinsonSamples < 1 || c.HutchinsonSamples > 256 {
		v.add("hutchinson_samples %d: want 1..256", c.HutchinsonSamples)
	}
	if c.Precision != PrecisionInt {
		v.add("mixed_precision chooses integer weight widths: it needs precision int, not %s", c.Precision)
	} else if c.WeightBits > 8 {
		v.add("mixed_precision chooses integer weight widths: it needs weight_bits <= 8, not %d", c.WeightBits)
	}
	if c.OverflowFix {
		v.add("mixed_precision with overflow_fix: the fix moves 8-bit weights to 7 bits; list 7 in bit_choices instead")
	}
}
