package data

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// splitName names one of a data set's published splits.
type splitName string

// The published splits. For ImageNet-style folders the test split is the
// validation folder (val/), which is what papers report on.
const (
	trainSplit splitName = "train"
	testSplit  splitName = "test"
)

// A Set is a decoded data set split held in memory.
//
// Pixels are uint8, one image after another, each in channel-major (CHW)
// order, the layout a float32 NCHW tensor has once converted. Labels index
// Classes. Mean and Std are the per-channel normalisation constants on the
// 0..1 scale (pixel/255), as torchvision's Normalize takes them: a Loader
// feeds the model (pixel/255 - Mean[c]) / Std[c].
//
// A Set is not modified by this package after it is returned; methods that
// derive a new set (Split, Subset, selectImages, withChannels, resized) copy.
type Set struct {
	Name    string   // "cifar10/train"; derived sets append "#val", "#fit", "#subset<n>"
	Classes []string // class names, index = label
	N       int      // number of images
	C, H, W int      // channels, height, width of every image
	Pixels  []uint8  // N*C*H*W values
	Labels  []int64  // N labels in [0, len(Classes))
	Mean    []float32
	Std     []float32

	// Key identifies the content: the source files' fingerprint plus the
	// preprocessing, extended by each derivation. Equal keys mean equal
	// data, so callers can hash it into artifact keys.
	Key string
}

// imageLen returns the number of values in one image, C*H*W.
func (s *Set) imageLen() int { return s.C * s.H * s.W }

// image returns image i's pixels (CHW), sharing memory with the set.
func (s *Set) image(i int) []uint8 {
	n := s.imageLen()
	return s.Pixels[i*n : (i+1)*n : (i+1)*n]
}

// Validate checks that the fields agree with each other.
func (s *Set) Validate() error {
	switch {
	case s.N < 0 || s.C < 1 || s.H < 1 || s.W < 1:
		return fmt.Errorf("data set %s: bad shape N=%d C=%d H=%d W=%d", s.Name, s.N, s.C, s.H, s.W)
	case len(s.Pixels) != s.N*s.imageLen():
		return fmt.Errorf("data set %s: %d pixel values, want N*C*H*W = %d", s.Name, len(s.Pixels), s.N*s.imageLen())
	case len(s.Labels) != s.N:
		return fmt.Errorf("data set %s: %d labels for %d images", s.Name, len(s.Labels), s.N)
	case len(s.Classes) == 0:
		return fmt.Errorf("data set %s: no classes", s.Name)
	case len(s.Mean) != s.C || len(s.Std) != s.C:
		return fmt.Errorf("data set %s: %d means and %d stds for %d channels", s.Name, len(s.Mean), len(s.Std), s.C)
	}
	for c, sd := range s.Std {
		if !(sd > 0) {
			return fmt.Errorf("data set %s: std of channel %d is %v, want > 0", s.Name, c, sd)
		}
	}
	for i, l := range s.Labels {
		if l < 0 || l >= int64(len(s.Classes)) {
			return fmt.Errorf("data set %s: image %d has label %d outside [0, %d)", s.Name, i, l, len(s.Classes))
		}
	}
	return nil
}

// classCounts returns how many images each class has.
func (s *Set) classCounts() []int {
	counts := make([]int, len(s.Classes))
	for _, l := range s.Labels {
		counts[l]++
	}
	return counts
}

// channelStats returns each channel's mean and standard deviation over all
// pixels of the set, on the 0..1 scale of Mean and Std.
func (s *Set) channelStats() (mean, std []float64) {
	plane := s.H * s.W
	sum := make([]uint64, s.C)
	sq := make([]uint64, s.C)
	for i := 0; i < s.N; i++ {
		img := s.image(i)
		for c := 0; c < s.C; c++ {
			var a, b uint64
			for _, v := range img[c*plane : (c+1)*plane] {
				a += uint64(v)
				b += uint64(v) * uint64(v)
			}
			sum[c] += a
			sq[c] += b
		}
	}
	mean = make([]float64, s.C)
	std = make([]float64, s.C)
	n := float64(s.N * plane)
	if n == 0 {
		return mean, std
	}
	for c := range s.C {
		m := float64(sum[c]) / n
		v := float64(sq[c])/n - m*m
		mean[c] = m / 255
		std[c] = math.Sqrt(max(v, 0)) / 255
	}
	return mean, std
}

// selectImages returns a new set holding the images at idx, in that order. Its
// Key extends s's with a digest of idx.
func (s *Set) selectImages(idx []int) *Set {
	h := sha256.New()
	for _, i := range idx {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(i)))
	}
	return s.selectAs(idx, fmt.Sprintf("#select(%d,%x)", len(idx), h.Sum(nil)[:8]))
}

// selectAs is selectImages with the given name and key suffix.
func (s *Set) selectAs(idx []int, suffix string) *Set {
	n := s.imageLen()
	out := s.like(len(idx), s.Name+suffix, s.Key+suffix)
	for j, i := range idx {
		copy(out.Pixels[j*n:(j+1)*n], s.Pixels[i*n:(i+1)*n])
		out.Labels[j] = s.Labels[i]
	}
	return out
}

// like returns an empty set with s's metadata and room for n images.
func (s *Set) like(n int, name, key string) *Set {
	return &Set{
		Name:    name,
		Classes: slices.Clone(s.Classes),
		N:       n,
		C:       s.C, H: s.H, W: s.W,
		Pixels: make([]uint8, n*s.imageLen()),
		Labels: make([]int64, n),
		Mean:   slices.Clone(s.Mean),
		Std:    slices.Clone(s.Std),
		Key:    key,
	}
}

// Split carves a fixed validation set of valSize images out of s and
// returns the remaining images as fit and the carve-out as val. The
// carve-out is stratified: each class contributes in proportion to its
// size (largest remainders get the leftover places), and which images go
// is drawn under seed. Both sets keep the original order of s.
//
// Use it on the training split to get the calibration and tuning set, so
// that the test split is only used for reported numbers.
func (s *Set) Split(valSize int, seed int64) (fit, val *Set, err error) {
	if valSize < 0 || valSize > s.N {
		return nil, nil, fmt.Errorf("split %s: validation size %d outside [0, %d]", s.Name, valSize, s.N)
	}
	chosen := s.stratified(valSize, seed, streamSplit)
	var fitIdx, valIdx []int
	for i, c := range chosen {
		if c {
			valIdx = append(valIdx, i)
		} else {
			fitIdx = append(fitIdx, i)
		}
	}
	tag := fmt.Sprintf("(%d,%d)", valSize, seed)
	fit = s.selectAs(fitIdx, "#fit"+tag)
	val = s.selectAs(valIdx, "#val"+tag)
	fit.Name, val.Name = s.Name+"#fit", s.Name+"#val"
	return fit, val, nil
}

// Subset returns a stratified sample of n images drawn under seed, in the
// original order; n larger than the set gives all of it.
func (s *Set) Subset(n int, seed int64) (*Set, error) {
	if n < 1 {
		return nil, fmt.Errorf("subset %s: size %d, want >= 1", s.Name, n)
	}
	n = min(n, s.N)
	chosen := s.stratified(n, seed, streamSubset)
	idx := make([]int, 0, n)
	for i, c := range chosen {
		if c {
			idx = append(idx, i)
		}
	}
	sub := s.selectAs(idx, fmt.Sprintf("#subset(%d,%d)", n, seed))
	sub.Name = fmt.Sprintf("%s#subset%d", s.Name, n)
	return sub, nil
}

// stratified marks k images, each class contributing in proportion to its
// size.
func (s *Set) stratified(k int, seed int64, stream uint64) []bool {
	chosen := make([]bool, s.N)
	if k == 0 || s.N == 0 {
		return chosen
	}
	groups := make([][]int, len(s.Classes))
	for i, l := range s.Labels {
		groups[l] = append(groups[l], i)
	}
	quota := make([]int, len(groups))
	type rem struct{ class, frac int }
	rems := make([]rem, 0, len(groups))
	left := k
	for c, g := range groups {
		q := k * len(g)
		quota[c] = q / s.N
		left -= quota[c]
		rems = append(rems, rem{c, q % s.N})
	}
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.frac, a.frac) })
	for i := 0; i < left; i++ {
		quota[rems[i].class]++
	}
	r := newRand(seed, stream)
	for c, g := range groups {
		shuffleInts(r, g)
		for _, i := range g[:quota[c]] {
			chosen[i] = true
		}
	}
	return chosen
}

// withChannels returns the set with c channels: 1 to 3 replicates the gray
// plane, 3 to 1 takes the luma (ITU-R 601-2, as PIL's convert("L")). The
// normalisation constants follow: replicated, or luma-weighted (an
// approximation for the standard deviation). The same channel count returns
// s itself.
func (s *Set) withChannels(c int) (*Set, error) {
	switch {
	case c == 0 || c == s.C:
		return s, nil
	case s.C == 1 && c == 3:
		out := s.like(s.N, s.Name, fmt.Sprintf("%s#rgb", s.Key))
		out.C = 3
		out.Pixels = make([]uint8, s.N*out.imageLen())
		copy(out.Labels, s.Labels)
		plane := s.H * s.W
		for i := 0; i < s.N; i++ {
			src := s.Pixels[i*plane : (i+1)*plane]
			dst := out.Pixels[i*3*plane : (i+1)*3*plane]
			copy(dst, src)
			copy(dst[plane:], src)
			copy(dst[2*plane:], src)
		}
		out.Mean = []float32{s.Mean[0], s.Mean[0], s.Mean[0]}
		out.Std = []float32{s.Std[0], s.Std[0], s.Std[0]}
		return out, nil
	case s.C == 3 && c == 1:
		out := s.like(s.N, s.Name, fmt.Sprintf("%s#gray", s.Key))
		out.C = 1
		out.Pixels = out.Pixels[:s.N*s.H*s.W]
		copy(out.Labels, s.Labels)
		plane := s.H * s.W
		for i := 0; i < s.N; i++ {
			img := s.image(i)
			dst := out.Pixels[i*plane : (i+1)*plane]
			for p := range dst {
				dst[p] = luma(img[p], img[plane+p], img[2*plane+p])
			}
		}
		out.Mean = []float32{lumaF(s.Mean)}
		out.Std = []float32{lumaF(s.Std)}
		return out, nil
	}
	return nil, fmt.Errorf("data set %s: cannot convert %d channels to %d", s.Name, s.C, c)
}

// luma is PIL's fixed-point L = R*299/1000 + G*587/1000 + B*114/1000.
func luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

func lumaF(v []float32) float32 { return 0.299*v[0] + 0.587*v[1] + 0.114*v[2] }

// resized returns the set with every image resized so that its shorter side
// is floor(size/cropPct) and center-cropped to size x size, the evaluation
// transform of timm and torchvision. cropPct is in (0, 1]; 1 resizes the
// shorter side straight to size. Sets already size x size return s itself.
func (s *Set) resized(size int, cropPct float64) (*Set, error) {
	if err := checkResize(size, cropPct); err != nil {
		return nil, fmt.Errorf("resize %s: %w", s.Name, err)
	}
	if s.H == size && s.W == size {
		return s, nil
	}
	out := &Set{
		Name: s.Name, Classes: slices.Clone(s.Classes), N: s.N, C: s.C, H: size, W: size,
		Pixels: make([]uint8, s.N*s.C*size*size), Labels: slices.Clone(s.Labels),
		Mean: slices.Clone(s.Mean), Std: slices.Clone(s.Std),
		Key: fmt.Sprintf("%s#resize(%d,%g)", s.Key, size, cropPct),
	}
	n := out.imageLen()
	parallel(s.N, 0, func(i int) {
		img := resizeCrop(s.image(i), s.C, s.H, s.W, size, cropPct)
		copy(out.Pixels[i*n:(i+1)*n], img)
	})
	return out, nil
}

// errEmpty reports a source without images.
var errEmpty = errors.New("no images")
