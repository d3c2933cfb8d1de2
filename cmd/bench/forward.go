package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func init() { commands["forward"] = runForward }

const forwardUsage = `usage: bench forward --arch NAME --weights FILE --input X.npy --output Y.npy
                     [--num-classes N] [--img-size N] [--threads T]

Runs a checkpoint on an input batch and writes the logits: X.npy holds
images [B, C, H, W] (any float dtype; float32 is used), Y.npy receives
float32 logits [B, classes], in eval mode with autograd off. A distilled
DeiT averages its two heads, as DeiT does at inference. --weights takes
what 'bench inspect' takes; the output is what PyTorch gives for the same
checkpoint and input, within 1e-4.

Flags:
`

// runForward implements `bench forward`.
func runForward(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("forward", stderr, usageText(forwardUsage))
	var mf modelFlags
	mf.register(fs)
	input := fs.String("input", "", "input images, .npy [B, C, H, W]")
	output := fs.String("output", "", "where the logits go, .npy [B, classes] float32")
	threads := fs.Int("threads", 0, "libtorch intra-op threads (0 = all logical CPUs)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	switch {
	case mf.weights == "":
		return usageError{errors.New("forward: --weights is required")}
	case *input == "" || *output == "":
		return usageError{errors.New("forward: --input and --output are required")}
	case *threads < 0:
		return usageError{fmt.Errorf("forward: --threads %d: want >= 0", *threads)}
	}
	if _, err := os.Stat(*input); err != nil {
		return usageError{fmt.Errorf("forward: --input: %w", err)}
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setThreads(*threads)

	m, err := mf.load(gotch.CPU)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	defer m.Drop()
	x, err := ts.ReadNpy(*input)
	if err != nil {
		return usageError{fmt.Errorf("forward: read %s: %w", *input, err)}
	}
	defer x.MustDrop()
	c := m.Cfg
	want := []int64{-1, int64(c.InChans), int64(c.ImgSize), int64(c.ImgSize)}
	if got := x.MustSize(); len(got) != 4 || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		return usageError{fmt.Errorf("forward: %s has shape %v, the model takes [B %d %d %d]", *input, got, want[1], want[2], want[3])}
	}
	xf := x.MustTotype(gotch.Float, false)
	defer xf.MustDrop()
	var y *ts.Tensor
	torchrt.NoGrad(func() { y = m.Forward(xf) })
	defer y.MustDrop()
	if err := writeNpy(*output, y); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	return nil
}

// writeNpy stores t as a float32 .npy file (format version 1.0,
// little-endian, C order), which numpy.load and ts.ReadNpy read.
func writeNpy(path string, t *ts.Tensor) (err error) {
	shape := t.MustSize()
	h, err := ts.NewNpyHeader(gotch.Float, false, shape).ToString()
	if err != nil {
		return err
	}
	// The magic, version and length take 10 bytes; the header ends with
	// a newline and is padded so the data starts 64-byte aligned.
	pad := 64 - (10+len(h)+1)%64
	if pad == 64 {
		pad = 0
	}
	header := h + strings.Repeat(" ", pad) + "\n"
	if len(header) > math.MaxUint16 {
		return fmt.Errorf("write %s: npy header of %d bytes too long", path, len(header))
	}
	f32 := t.MustTotype(gotch.Float, false).MustContiguous(true)
	vals := f32.Float64Values()
	f32.MustDrop()

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriter(f)
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(header)))
	w.WriteString(header)
	buf := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(v)))
	}
	w.Write(buf)
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
