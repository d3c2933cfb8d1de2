package vit

// ReplaceTap returns t with the tap old replaced by repl, looking inside
// the chains ChainTap builds (taps compare by identity, so old is usually
// a pointer such as a *QuantSpec), and whether old was found. Training
// that swaps a quantizer for a trainable one, and back, uses it.
func ReplaceTap(t, old, repl Tap) (Tap, bool) {
	switch {
	case t == nil:
		return nil, false
	case t == old:
		return repl, true
	}
	if c, ok := t.(chainTap); ok {
		if first, found := ReplaceTap(c.first, old, repl); found {
			return ChainTap(first, c.then), true
		}
		if then, found := ReplaceTap(c.then, old, repl); found {
			return ChainTap(c.first, then), true
		}
	}
	return t, false
}
