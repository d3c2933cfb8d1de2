package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes encodes an unsigned-byte IDX file.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, idxUint8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIDXLayouts(t *testing.T) {
	// 3 train and 2 test images of 2x3 pixels; pixel values encode the image.
	images := func(n int) []byte {
		var b []byte
		for i := range n {
			b = append(b, bytes.Repeat([]byte{byte(10 * (i + 1))}, 6)...)
		}
		return b
	}
	raw := map[string][]byte{
		"train-images-idx3-ubyte": idxBytes([]int{3, 2, 3}, images(3)),
		"train-labels-idx1-ubyte": idxBytes([]int{3}, []byte{9, 0, 4}),
		"t10k-images-idx3-ubyte":  idxBytes([]int{2, 2, 3}, images(2)),
		"t10k-labels-idx1-ubyte":  idxBytes([]int{2}, []byte{1, 2}),
	}
	gzipped := map[string][]byte{}
	for n, b := range raw {
		gzipped[n+".gz"] = gz(t, b)
	}
	tests := []struct {
		name, set, dir string
		files          map[string][]byte
		classes        []string
	}{
		{"fashion gz", "fashion-mnist", "fashion-mnist", gzipped, fashionMNISTClasses},
		{"fashion torchvision raw", "fashion-mnist", "FashionMNIST/raw", raw, fashionMNISTClasses},
		{"mnist raw", "mnist", "mnist", raw, mnistClasses},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, filepath.Join(root, tt.dir), tt.files)
			train, test, err := Open(context.Background(), tt.set, isolate(t, root))
			if err != nil {
				t.Fatal(err)
			}
			if train.N != 3 || train.C != 1 || train.H != 2 || train.W != 3 || test.N != 2 {
				t.Fatalf("train %dx%dx%dx%d, test %d", train.N, train.C, train.H, train.W, test.N)
			}
			if !slices.Equal(train.Labels, []int64{9, 0, 4}) || train.image(2)[5] != 30 || !slices.Equal(train.Classes, tt.classes) {
				t.Errorf("train labels %v, image 2 = %v, classes %v", train.Labels, train.image(2), train.Classes)
			}
		})
	}
}

func TestIDXErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bad magic", []byte{1, 0, 8, 1, 0, 0, 0, 1, 5}, "magic"},
		{"float type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 5}, "element type"},
		{"truncated data", idxBytes([]int{2, 2}, []byte{1, 2, 3}), "data bytes"},
		{"short header", []byte{0, 0}, "header"},
		{"zero dimension", idxBytes([]int{0}, nil), "dimension"},
	}
	for _, tt := range tests {
		_, _, err := decodeIDX(bytes.NewReader(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one with %q", tt.name, err, tt.want)
		}
	}
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "mnist"), map[string][]byte{
		"t10k-images-idx3-ubyte": idxBytes([]int{2, 1, 1}, []byte{1, 2}),
		"t10k-labels-idx1-ubyte": idxBytes([]int{3}, []byte{1, 2, 3}),
	})
	_, err := load(context.Background(), "mnist", testSplit, isolate(t, root))
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("label count mismatch: err = %v", err)
	}
}

func TestFashionMNISTReal(t *testing.T) {
	opts := Options{CacheDir: t.TempDir()}
	train := loadReal(t, "fashion-mnist", trainSplit, opts)
	test := loadReal(t, "fashion-mnist", testSplit, opts)
	for _, tt := range []struct {
		s        *Set
		n, class int
	}{{train, 60000, 6000}, {test, 10000, 1000}} {
		if tt.s.N != tt.n || tt.s.C != 1 || tt.s.H != 28 || tt.s.W != 28 {
			t.Errorf("%s: %dx%dx%dx%d, want %dx1x28x28", tt.s.Name, tt.s.N, tt.s.C, tt.s.H, tt.s.W, tt.n)
		}
		for k, n := range tt.s.classCounts() {
			if n != tt.class {
				t.Errorf("%s: class %q has %d images, want %d", tt.s.Name, tt.s.Classes[k], n, tt.class)
			}
		}
	}
	checkMeans(t, train, []float64{72.94}, 0.1)
	mean, std := train.channelStats()
	if d := mean[0] - float64(fashionMNISTMean[0]); d > 1e-3 || d < -1e-3 {
		t.Errorf("train mean %.4f, constant %.4f", mean[0], fashionMNISTMean[0])
	}
	if d := std[0] - float64(fashionMNISTStd[0]); d > 1e-3 || d < -1e-3 {
		t.Errorf("train std %.4f, constant %.4f", std[0], fashionMNISTStd[0])
	}

	// Replicated to three channels for RGB models, from the cache this time.
	opts.Channels = 3
	rgb := loadReal(t, "fashion-mnist", testSplit, opts)
	if rgb.C != 3 || len(rgb.Mean) != 3 || !bytes.Equal(rgb.image(7)[784:1568], test.image(7)) || !slices.Equal(rgb.Labels, test.Labels) {
		t.Errorf("3-channel copy: C=%d, mean %v, plane 1 or labels differ from the gray set", rgb.C, rgb.Mean)
	}
}
