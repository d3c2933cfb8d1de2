package data

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// CIFAR-10 facts.
var (
	// cifar10Classes are the class names in label order (batches.meta.txt),
	// which is also the sorted order of the ImageFolder copies.
	cifar10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	// cifar10Mean and cifar10Std are the per-channel statistics of the
	// training split on the 0..1 scale (the canonical binary files).
	cifar10Mean = []float32{0.4914, 0.4822, 0.4465}
	cifar10Std  = []float32{0.2470, 0.2435, 0.2616}
)

const (
	cifarSide   = 32
	cifarImage  = 3 * cifarSide * cifarSide // bytes per image, R then G then B planes
	cifarRecord = 1 + cifarImage            // label byte + image
	cifarPerBin = 10000                     // records per batch file
)

// cifarBinFiles are the canonical batch files of each split, in order.
func cifarBinFiles(split splitName) []string {
	if split == trainSplit {
		return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	return []string{"test_batch.bin"}
}

// readCIFARBinary appends the records of one canonical CIFAR-10 batch file
// (a label byte then 3072 bytes of 32x32 R, G and B planes, per image) to
// pix and labels.
func readCIFARBinary(r io.Reader, pix []uint8, labels []int64) ([]uint8, []int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var rec [cifarRecord]byte
	for n := 0; ; n++ {
		_, err := io.ReadFull(br, rec[:])
		if errors.Is(err, io.EOF) {
			return pix, labels, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("record %d is truncated (a record is %d bytes)", n, cifarRecord)
		}
		if err != nil {
			return nil, nil, err
		}
		if rec[0] >= byte(len(cifar10Classes)) {
			return nil, nil, fmt.Errorf("record %d has label %d, want < %d", n, rec[0], len(cifar10Classes))
		}
		labels = append(labels, int64(rec[0]))
		pix = append(pix, rec[1:]...)
	}
}

// newCIFARSet wraps decoded CIFAR-10 pixels and labels.
func newCIFARSet(pix []uint8, labels []int64) *Set {
	return &Set{
		Classes: append([]string(nil), cifar10Classes...),
		N:       len(labels),
		C:       3, H: cifarSide, W: cifarSide,
		Pixels: pix, Labels: labels,
	}
}

// readCIFARBinaryDir reads a split from an extracted cifar-10-batches-bin
// directory.
func readCIFARBinaryDir(dir string, split splitName) (*Set, error) {
	files := cifarBinFiles(split)
	pix := make([]uint8, 0, len(files)*cifarPerBin*cifarImage)
	labels := make([]int64, 0, len(files)*cifarPerBin)
	for _, name := range files {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("cifar10 binary: %w", err)
		}
		pix, labels, err = readCIFARBinary(f, pix, labels)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("cifar10 binary %s: %w", p, err)
		}
	}
	return newCIFARSet(pix, labels), nil
}

// readCIFARBinaryTar reads a split from cifar-10-binary.tar.gz without
// extracting it.
func readCIFARBinaryTar(ctx context.Context, archive string, split splitName) (*Set, error) {
	files := cifarBinFiles(split)
	type part struct {
		pix    []uint8
		labels []int64
	}
	parts := map[string]part{}
	want := map[string]bool{}
	for _, f := range files {
		want[f] = true
	}
	err := walkTar(ctx, archive, func(name string, r io.Reader) error {
		base := path.Base(name)
		if !want[base] {
			return nil
		}
		pix, labels, err := readCIFARBinary(r, make([]uint8, 0, cifarPerBin*cifarImage), make([]int64, 0, cifarPerBin))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		parts[base] = part{pix, labels}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cifar10 binary %s: %w", archive, err)
	}
	var missing []string
	for _, f := range files {
		if _, ok := parts[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cifar10 binary %s: archive lacks %s", archive, strings.Join(missing, ", "))
	}
	if len(files) == 1 {
		p := parts[files[0]]
		return newCIFARSet(p.pix, p.labels), nil
	}
	pix := make([]uint8, 0, len(files)*cifarPerBin*cifarImage)
	labels := make([]int64, 0, len(files)*cifarPerBin)
	for _, f := range files {
		pix = append(pix, parts[f].pix...)
		labels = append(labels, parts[f].labels...)
	}
	return newCIFARSet(pix, labels), nil
}
