package vit

import "testing"

// TestReplaceTap: a tap is found alone or inside a chain, and a tap that
// is not there leaves the chain as it was.
func TestReplaceTap(t *testing.T) {
	a, b, c := &QuantSpec{Bits: 1}, &QuantSpec{Bits: 2}, &QuantSpec{Bits: 3}
	tests := []struct {
		name  string
		t     Tap
		found bool
		want  Tap
	}{
		{"alone", a, true, c},
		{"nil", nil, false, nil},
		{"first of chain", ChainTap(a, b), true, ChainTap(c, b)},
		{"last of chain", ChainTap(b, a), true, ChainTap(b, c)},
		{"absent", ChainTap(b, b), false, ChainTap(b, b)},
	}
	for _, tt := range tests {
		got, found := ReplaceTap(tt.t, a, c)
		if found != tt.found || got != tt.want {
			t.Errorf("%s: got %v (found %v), want %v (found %v)", tt.name, got, found, tt.want, tt.found)
		}
	}
}
