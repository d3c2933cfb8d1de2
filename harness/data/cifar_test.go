package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeCIFARRecords returns n canonical CIFAR-10 records: label (first+i)%10,
// and an image whose R plane is filled with the label, G with i, B with 200.
func fakeCIFARRecords(first, n int) []byte {
	var b []byte
	for i := range n {
		label := byte((first + i) % 10)
		b = append(b, label)
		b = append(b, bytes.Repeat([]byte{label}, 1024)...)
		b = append(b, bytes.Repeat([]byte{byte(first + i)}, 1024)...)
		b = append(b, bytes.Repeat([]byte{200}, 1024)...)
	}
	return b
}

// writeFakeCIFARBinary writes the canonical files with 3 records per train
// batch (15 train images) and 4 test records.
func writeFakeCIFARBinary(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"test_batch.bin": fakeCIFARRecords(100, 4)}
	for i, f := range cifarBinFiles(trainSplit) {
		files[f] = fakeCIFARRecords(3*i, 3)
	}
	return files
}

// isolate keeps the environment's search path and cache out of a test.
func isolate(t *testing.T, dirs ...string) Options {
	t.Helper()
	t.Setenv(envData, "")
	t.Setenv(envDataCache, "")
	return Options{Dirs: dirs, NoDefaultDirs: true, CacheDir: t.TempDir()}
}

func checkFakeCIFAR(t *testing.T, train, test *Set) {
	t.Helper()
	if train.N != 15 || test.N != 4 {
		t.Fatalf("train %d and test %d images, want 15 and 4", train.N, test.N)
	}
	for i := range train.N {
		img := train.image(i)
		if train.Labels[i] != int64(i%10) || img[0] != byte(i%10) || img[1024] != byte(i) || img[3071] != 200 {
			t.Fatalf("train image %d: label %d, pixels %d %d %d", i, train.Labels[i], img[0], img[1024], img[3071])
		}
	}
	if !slices.Equal(test.Labels, []int64{0, 1, 2, 3}) || test.image(3)[1024] != 103 {
		t.Fatalf("test labels %v, image 3 G=%d", test.Labels, test.image(3)[1024])
	}
	if !slices.Equal(train.Classes, cifar10Classes) || !slices.Equal(train.Mean, cifar10Mean) {
		t.Errorf("classes %v, mean %v", train.Classes, train.Mean)
	}
}

func TestCIFAR10BinaryLayouts(t *testing.T) {
	files := writeFakeCIFARBinary(t)
	tests := []struct {
		name  string
		write func(t *testing.T, root string)
	}{
		{"extracted under cifar10/", func(t *testing.T, root string) {
			writeFiles(t, filepath.Join(root, "cifar10", "cifar-10-batches-bin"), files)
		}},
		{"extracted at the top", func(t *testing.T, root string) {
			writeFiles(t, filepath.Join(root, "cifar-10-batches-bin"), files)
		}},
		{"archive", func(t *testing.T, root string) {
			entries := map[string][]byte{"cifar-10-batches-bin/batches.meta.txt": []byte(strings.Join(cifar10Classes, "\n"))}
			for name, b := range files {
				entries["cifar-10-batches-bin/"+name] = b
			}
			writeTarGz(t, filepath.Join(root, "cifar10", "cifar-10-binary.tar.gz"), entries)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.write(t, root)
			train, test, err := Open(context.Background(), "cifar10", isolate(t, root))
			if err != nil {
				t.Fatal(err)
			}
			checkFakeCIFAR(t, train, test)
		})
	}
}

func TestCIFAR10BinaryErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated record", fakeCIFARRecords(0, 2)[:cifarRecord+100], "truncated"},
		{"bad label", append([]byte{10}, make([]byte, cifarImage)...), "label 10"},
	}
	for _, tt := range tests {
		_, _, err := readCIFARBinary(bytes.NewReader(tt.data), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one with %q", tt.name, err, tt.want)
		}
	}
	// An archive without the test batch names what it lacks.
	root := t.TempDir()
	writeTarGz(t, filepath.Join(root, "cifar-10-binary.tar.gz"), map[string][]byte{"cifar-10-batches-bin/data_batch_1.bin": fakeCIFARRecords(0, 1)})
	_, err := load(context.Background(), "cifar10", testSplit, isolate(t, root))
	if err == nil || !strings.Contains(err.Error(), "lacks test_batch.bin") {
		t.Errorf("archive without test batch: err = %v", err)
	}
}

// loadReal loads a split of a real data set from the default search path,
// skipping the test when the files are not on this machine.
func loadReal(t testing.TB, name string, split splitName, opts Options) *Set {
	t.Helper()
	s, err := load(context.Background(), name, split, opts)
	if errors.Is(err, errNotFound) {
		t.Skipf("real data not here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkMeans compares a set's channel means, in 0..255, to want.
func checkMeans(t *testing.T, s *Set, want []float64, tol float64) {
	t.Helper()
	mean, _ := s.channelStats()
	for c := range want {
		if got := 255 * mean[c]; math.Abs(got-want[c]) > tol {
			t.Errorf("%s channel %d mean %.2f, want %.2f±%.1f", s.Name, c, got, want[c], tol)
		} else {
			t.Logf("%s channel %d mean %.2f (want %.2f)", s.Name, c, got, want[c])
		}
	}
}

func TestCIFAR10TestSplitReal(t *testing.T) {
	s := loadReal(t, "cifar10", testSplit, Options{CacheDir: t.TempDir()})
	if s.N != 10000 || s.C != 3 || s.H != 32 || s.W != 32 || len(s.Pixels) != 10000*3072 {
		t.Fatalf("shape N=%d C=%d H=%d W=%d (%d values), want 10000x3x32x32", s.N, s.C, s.H, s.W, len(s.Pixels))
	}
	if !slices.Equal(s.Classes, cifar10Classes) {
		t.Errorf("classes %v, want %v", s.Classes, cifar10Classes)
	}
	for k, n := range s.classCounts() {
		if n != 1000 {
			t.Errorf("class %s has %d images, want 1000", s.Classes[k], n)
		}
	}
	if !slices.IsSorted(s.Labels) {
		t.Error("labels not in ImageFolder order (sorted by class)")
	}
	// Canonical test-split means are 126.0/123.7/114.9; the JPEG
	// re-encoding and decoder differences move them by a few tenths.
	checkMeans(t, s, []float64{126.0, 123.7, 114.9}, 1.0)
	if !slices.Equal(s.Mean, cifar10Mean) || !slices.Equal(s.Std, cifar10Std) {
		t.Errorf("normalisation %v / %v, want CIFAR-10's", s.Mean, s.Std)
	}
}

// TestCIFAR10TrainMeanReal decodes the full training split once (into the
// project's cache, so later runs take about a second).
func TestCIFAR10TrainMeanReal(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 50,000 images on the first run")
	}
	s := loadReal(t, "cifar10", trainSplit, Options{Logf: t.Logf})
	if s.N != 50000 || s.C != 3 || s.H != 32 || s.W != 32 {
		t.Fatalf("shape N=%d C=%d H=%d W=%d, want 50000x3x32x32", s.N, s.C, s.H, s.W)
	}
	for k, n := range s.classCounts() {
		if n != 5000 {
			t.Errorf("class %s has %d images, want 5000", s.Classes[k], n)
		}
	}
	checkMeans(t, s, []float64{125.3, 123.0, 113.9}, 1.0)
	_, std := s.channelStats()
	for c, want := range cifar10Std {
		if math.Abs(std[c]-float64(want)) > 0.01 {
			t.Errorf("channel %d std %.4f, want %.4f", c, std[c], want)
		}
	}
}

// writeFiles writes name -> content files into dir.
func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeTarGz writes a tar.gz of name -> content entries, in sorted order.
func writeTarGz(t testing.TB, file string, entries map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(entries[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(entries[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Dir(file), map[string][]byte{filepath.Base(file): buf.Bytes()})
}
