package data

import (
	"slices"
	"strings"
	"testing"
)

// tinySet returns a set with counts[k] images of class k whose pixels
// encode the image index, so copies can be traced.
func tinySet(t testing.TB, counts ...int) *Set {
	t.Helper()
	s := &Set{Name: "tiny", C: 1, H: 2, W: 2, Mean: []float32{0.5}, Std: []float32{0.25}, Key: "tiny"}
	for k, n := range counts {
		s.Classes = append(s.Classes, string(rune('a'+k)))
		for range n {
			i := s.N
			s.Pixels = append(s.Pixels, uint8(i), uint8(i>>8), uint8(k), 7)
			s.Labels = append(s.Labels, int64(k))
			s.N++
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// origIndex recovers the index a tinySet image was created with.
func origIndex(s *Set, i int) int {
	img := s.image(i)
	return int(img[0]) | int(img[1])<<8
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name    string
		counts  []int
		val     int
		wantVal []int // per class
	}{
		{"balanced", []int{100, 100, 100, 100}, 40, []int{10, 10, 10, 10}},
		{"remainder to largest fractions", []int{50, 30, 20}, 11, []int{6, 3, 2}},
		{"remainder ties to lower classes", []int{10, 10, 10}, 4, []int{2, 1, 1}},
		{"empty carve-out", []int{5, 5}, 0, []int{0, 0}},
		{"everything", []int{3, 4}, 7, []int{3, 4}},
		{"class too small for a share", []int{99, 1}, 10, []int{10, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tinySet(t, tt.counts...)
			fit, val, err := s.Split(tt.val, 42)
			if err != nil {
				t.Fatal(err)
			}
			if val.N != tt.val || fit.N != s.N-tt.val {
				t.Fatalf("sizes fit=%d val=%d, want %d and %d", fit.N, val.N, s.N-tt.val, tt.val)
			}
			if got := val.classCounts(); !slices.Equal(got, tt.wantVal) {
				t.Errorf("val class counts %v, want %v", got, tt.wantVal)
			}
			// Disjoint, together everything, each in original order, labels kept.
			seen := map[int]bool{}
			for _, part := range []*Set{fit, val} {
				prev := -1
				for i := range part.N {
					o := origIndex(part, i)
					if seen[o] {
						t.Fatalf("image %d in both parts", o)
					}
					seen[o] = true
					if o <= prev {
						t.Fatalf("%s not in original order: %d after %d", part.Name, o, prev)
					}
					prev = o
					if part.Labels[i] != s.Labels[o] {
						t.Fatalf("image %d has label %d, want %d", o, part.Labels[i], s.Labels[o])
					}
				}
				if err := part.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != s.N {
				t.Fatalf("%d images in the parts, want %d", len(seen), s.N)
			}
			if fit.Key == val.Key || !strings.HasPrefix(val.Key, s.Key) {
				t.Errorf("keys fit=%q val=%q do not derive from %q", fit.Key, val.Key, s.Key)
			}
		})
	}
}

func TestSplitDeterministic(t *testing.T) {
	s := tinySet(t, 40, 40, 40)
	ids := func(seed int64) []int {
		_, val, err := s.Split(30, seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for i := range val.N {
			out = append(out, origIndex(val, i))
		}
		return out
	}
	a, b, c := ids(1), ids(1), ids(2)
	if !slices.Equal(a, b) {
		t.Errorf("same seed gave %v and %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same carve-out %v", a)
	}
}

func TestSplitErrors(t *testing.T) {
	s := tinySet(t, 3, 3)
	for _, n := range []int{-1, 7} {
		if _, _, err := s.Split(n, 0); err == nil {
			t.Errorf("Split(%d) of 6 images: no error", n)
		}
	}
	if _, err := s.Subset(0, 0); err == nil {
		t.Error("Subset(0): no error")
	}
}

func TestSubset(t *testing.T) {
	s := tinySet(t, 60, 30, 10)
	tests := []struct {
		n    int
		want []int
	}{
		{10, []int{6, 3, 1}},
		{50, []int{30, 15, 5}},
		{1000, []int{60, 30, 10}},
	}
	for _, tt := range tests {
		sub, err := s.Subset(tt.n, 3)
		if err != nil {
			t.Fatal(err)
		}
		if got := sub.classCounts(); !slices.Equal(got, tt.want) {
			t.Errorf("Subset(%d) class counts %v, want %v", tt.n, got, tt.want)
		}
		again, _ := s.Subset(tt.n, 3)
		if !slices.Equal(sub.Pixels, again.Pixels) {
			t.Errorf("Subset(%d) not deterministic", tt.n)
		}
	}
}

func TestWithChannels(t *testing.T) {
	gray := tinySet(t, 2, 1)
	rgb, err := gray.withChannels(3)
	if err != nil {
		t.Fatal(err)
	}
	if rgb.C != 3 || len(rgb.Pixels) != 3*len(gray.Pixels) || len(rgb.Mean) != 3 {
		t.Fatalf("rgb: C=%d, %d values, %d means", rgb.C, len(rgb.Pixels), len(rgb.Mean))
	}
	for i := range gray.N {
		g, c := gray.image(i), rgb.image(i)
		for ch := range 3 {
			if !slices.Equal(c[ch*4:(ch+1)*4], g) {
				t.Fatalf("image %d channel %d = %v, want %v", i, ch, c[ch*4:(ch+1)*4], g)
			}
		}
	}
	back, err := rgb.withChannels(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, conv := range []*Set{rgb, back} {
		if !slices.Equal(conv.Labels, gray.Labels) {
			t.Errorf("%d-channel copy has labels %v, want %v", conv.C, conv.Labels, gray.Labels)
		}
		if err := conv.Validate(); err != nil {
			t.Error(err)
		}
	}
	if !slices.Equal(back.Pixels, gray.Pixels) {
		t.Errorf("luma of replicated gray: %v, want %v", back.Pixels, gray.Pixels)
	}
	if same, _ := gray.withChannels(0); same != gray {
		t.Error("withChannels(0) copied")
	}
	if _, err := gray.withChannels(2); err == nil {
		t.Error("withChannels(2): no error")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Set)
		want   string
	}{
		{"pixels", func(s *Set) { s.Pixels = s.Pixels[1:] }, "pixel values"},
		{"labels", func(s *Set) { s.Labels = s.Labels[1:] }, "labels for"},
		{"label range", func(s *Set) { s.Labels[0] = 9 }, "outside"},
		{"std", func(s *Set) { s.Std[0] = 0 }, "std"},
		{"means", func(s *Set) { s.Mean = nil }, "means"},
	}
	for _, tt := range tests {
		s := tinySet(t, 2, 2)
		tt.mutate(s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestChannelStats(t *testing.T) {
	s := &Set{Name: "two", Classes: []string{"x"}, N: 2, C: 2, H: 1, W: 2,
		Pixels: []uint8{0, 255, 51, 51, 255, 0, 51, 51}, Labels: []int64{0, 0},
		Mean: []float32{0, 0}, Std: []float32{1, 1}}
	mean, std := s.channelStats()
	if mean[0] != 0.5 || std[0] != 0.5 || mean[1] != 0.2 || std[1] != 0 {
		t.Errorf("ChannelStats = %v, %v; want [0.5 0.2], [0.5 0]", mean, std)
	}
}

func TestSelect(t *testing.T) {
	s := tinySet(t, 3, 3)
	sel := s.selectImages([]int{5, 0, 5})
	if sel.N != 3 || origIndex(sel, 0) != 5 || origIndex(sel, 1) != 0 || !slices.Equal(sel.Labels, []int64{1, 0, 1}) {
		t.Errorf("Select gave images %d %d, labels %v", origIndex(sel, 0), origIndex(sel, 1), sel.Labels)
	}
	if other := s.selectImages([]int{5, 0, 4}); other.Key == sel.Key || !strings.HasPrefix(sel.Key, s.Key+"#select(3,") {
		t.Errorf("keys %q and %q", sel.Key, other.Key)
	}
	sel.Pixels[0] = 99
	if s.Pixels[5*4] == 99 {
		t.Error("Select shares pixels with its source")
	}
}
