package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// MNIST and Fashion-MNIST facts.
var (
	// fashionMNISTClasses are Fashion-MNIST's class names in label order.
	fashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	// mnistClasses are the digits.
	mnistClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

	// Training split statistics on the 0..1 scale.
	fashionMNISTMean = []float32{0.2860}
	fashionMNISTStd  = []float32{0.3530}
	mnistMean        = []float32{0.1307}
	mnistStd         = []float32{0.3081}
)

// idxUint8 is the IDX type code of unsigned bytes.
const idxUint8 = 0x08

// readIDX reads an IDX file of unsigned bytes, gzip-compressed or raw, and
// returns its dimensions and data.
func readIDX(file string) (dims []int, data []uint8, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("idx %s: gunzip: %w", file, err)
		}
		defer zr.Close()
		r = zr
	}
	dims, data, err = decodeIDX(r)
	if err != nil {
		return nil, nil, fmt.Errorf("idx %s: %w", file, err)
	}
	return dims, data, nil
}

// decodeIDX decodes an IDX stream of unsigned bytes.
func decodeIDX(r io.Reader) (dims []int, data []uint8, err error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, nil, fmt.Errorf("read header: %w", err)
	}
	if head[0] != 0 || head[1] != 0 {
		return nil, nil, fmt.Errorf("bad magic %x, not an IDX file", head)
	}
	if head[2] != idxUint8 {
		return nil, nil, fmt.Errorf("element type 0x%02x, want unsigned byte (0x08)", head[2])
	}
	nd := int(head[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("%d dimensions, want 1 to 4", nd)
	}
	raw := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("read dimensions: %w", err)
	}
	total := 1
	for i := range nd {
		d := int(binary.BigEndian.Uint32(raw[4*i:]))
		if d < 1 || d > 1<<28 || total > (1<<34)/d {
			return nil, nil, fmt.Errorf("implausible dimension %d", d)
		}
		dims = append(dims, d)
		total *= d
	}
	data = make([]uint8, total)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("read %d data bytes: %w", total, err)
	}
	return dims, data, nil
}

// readIDXPair reads an images file (N x H x W) and its labels file (N) into
// a one-channel set.
func readIDXPair(imagesFile, labelsFile string, classes []string) (*Set, error) {
	dims, pix, err := readIDX(imagesFile)
	if err != nil {
		return nil, err
	}
	if len(dims) != 3 {
		return nil, fmt.Errorf("idx %s: %d dimensions, want 3 (images x rows x columns)", imagesFile, len(dims))
	}
	ldims, lab, err := readIDX(labelsFile)
	if err != nil {
		return nil, err
	}
	if len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, fmt.Errorf("idx %s: shape %v does not match %d images in %s", labelsFile, ldims, dims[0], imagesFile)
	}
	labels := make([]int64, len(lab))
	for i, l := range lab {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("idx %s: label %d of image %d, want < %d", labelsFile, l, i, len(classes))
		}
		labels[i] = int64(l)
	}
	return &Set{
		Classes: append([]string(nil), classes...),
		N:       dims[0], C: 1, H: dims[1], W: dims[2],
		Pixels: pix, Labels: labels,
	}, nil
}
