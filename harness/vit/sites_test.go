package vit

import (
	"reflect"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// recordTap records the key and shape of every activation it sees.
type recordTap struct {
	key  string
	log  *[]string
	size map[string][]int64
}

func (r recordTap) Tap(x *ts.Tensor) *ts.Tensor {
	*r.log = append(*r.log, r.key)
	r.size[r.key] = x.MustSize()
	return x
}

// TestSitesInForwardOrder: every tap point fires once per forward pass,
// blocks' sites in the order of Site, with the documented shapes.
func TestSitesInForwardOrder(t *testing.T) {
	m := tinyQuantModel(t, func(c *Config) { c.Depth = 1 })
	defer m.Drop()
	var log []string
	size := map[string][]int64{}
	for key, p := range m.TapPoints() {
		*p = recordTap{key, &log, size}
	}
	x := image(t, m, 2)
	defer x.MustDrop()
	logitsOf(t, m, x)
	want := []string{ActInput}
	for _, s := range sites() {
		want = append(want, ActKey(0, s))
	}
	want = append(want, ActNorm, ActHead)
	if !reflect.DeepEqual(log, want) {
		t.Fatalf("taps fired %v, want %v", log, want)
	}
	n := int64(16/4*16/4 + 1)
	for key, w := range map[string][]int64{
		ActKey(0, SiteNorm1In): {2, n, 32}, ActKey(0, SiteQ): {2, 2, n, 16}, ActKey(0, SiteV): {2, 2, n, 16},
		ActKey(0, SiteAttnLogits): {2, 2, n, n}, ActKey(0, SiteNorm2In): {2, n, 32}, ActNorm: {2, n, 32},
	} {
		if !reflect.DeepEqual(size[key], w) {
			t.Errorf("%s: shape %v, want %v", key, size[key], w)
		}
	}
}
