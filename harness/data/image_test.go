package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"testing"
)

func TestResampleCoeffs(t *testing.T) {
	for _, tt := range []struct{ in, out int }{{32, 32}, {500, 256}, {375, 256}, {32, 224}, {7, 3}} {
		ks := resampleCoeffs(tt.in, tt.out)
		if len(ks) != tt.out {
			t.Fatalf("%d->%d: %d kernels", tt.in, tt.out, len(ks))
		}
		for i, k := range ks {
			var sum float64
			for _, w := range k.w {
				sum += float64(w)
			}
			if math.Abs(sum-1) > 1e-5 || k.start < 0 || k.start+len(k.w) > tt.in {
				t.Fatalf("%d->%d: kernel %d covers [%d,%d) with weight %v", tt.in, tt.out, i, k.start, k.start+len(k.w), sum)
			}
		}
	}
}

func TestResizeShape(t *testing.T) {
	tests := []struct{ h, w, short, oh, ow int }{
		{375, 500, 256, 256, 341}, // torchvision truncates 341.33
		{500, 375, 256, 341, 256},
		{32, 32, 224, 224, 224},
	}
	for _, tt := range tests {
		if oh, ow := resizeShape(tt.h, tt.w, tt.short); oh != tt.oh || ow != tt.ow {
			t.Errorf("resizeShape(%d, %d, %d) = %d, %d; want %d, %d", tt.h, tt.w, tt.short, oh, ow, tt.oh, tt.ow)
		}
	}
}

func TestResizeCrop(t *testing.T) {
	// A 1-channel 6x8 ramp: value = 10*y + x.
	h, w := 6, 8
	src := make([]uint8, h*w)
	for y := range h {
		for x := range w {
			src[y*w+x] = uint8(10*y + x)
		}
	}
	// No resize (shorter side already 6): the center 4x4 crop starts at
	// row round(1) = 1 and column round(2) = 2.
	got := resizeCrop(src, 1, h, w, 4, 4.0/6)
	want := []uint8{12, 13, 14, 15, 22, 23, 24, 25, 32, 33, 34, 35, 42, 43, 44, 45}
	if !bytes.Equal(got, want) {
		t.Errorf("crop = %v, want %v", got, want)
	}
	// Half-pixel offsets round to even, as Python's round: (8-5)/2 = 1.5 -> 2.
	got = resizeCrop(src, 1, h, w, 5, 5.0/6)
	if got[0] != 2 {
		t.Errorf("crop 5 of width 8 starts at column %d, want 2", got[0])
	}
	// A constant image stays constant through any resize.
	flat := bytes.Repeat([]uint8{77}, 3*37*53)
	for _, size := range []int{16, 32, 224} {
		out := resizeCrop(flat, 3, 37, 53, size, defaultCropPct)
		if len(out) != 3*size*size {
			t.Fatalf("size %d: %d values", size, len(out))
		}
		for i, v := range out {
			if v != 77 {
				t.Fatalf("size %d: value %d is %d, want 77", size, i, v)
			}
		}
	}
	// Downscaling a ramp by 2 averages neighbours.
	ramp := make([]uint8, 64)
	for i := range ramp {
		ramp[i] = uint8(4 * (i % 8))
	}
	out := resizeCrop(ramp, 1, 8, 8, 4, 1)
	// Interior pixels average 4 inputs with weights 1/8, 3/8, 3/8, 1/8
	// (PIL's triangle filter widened by the scale): 4*(.25+2*.75+3*.75+4*.25)/2 = 10.
	if out[1] != 10 || out[2] != 18 {
		t.Errorf("halved ramp = %v, want interior values 10 and 18", out[:4])
	}
}

func TestDecodeRGB(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for y := range 2 {
		for x := range 3 {
			img.Set(x, y, color.NRGBA{uint8(40 * x), uint8(100 * y), 200, 128})
		}
	}
	var pngBuf, jpgBuf bytes.Buffer
	if err := png.Encode(&pngBuf, img); err != nil {
		t.Fatal(err)
	}
	// JPEG subsamples chroma, so its test image is one opaque colour.
	opaque := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := 0; i < len(opaque.Pix); i += 4 {
		copy(opaque.Pix[i:], []uint8{40, 100, 200, 255})
	}
	if err := jpeg.Encode(&jpgBuf, opaque, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	gray.Pix = []uint8{1, 2, 3, 4, 5, 6}
	var grayBuf bytes.Buffer
	if err := png.Encode(&grayBuf, gray); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		tol  int
		want func(c, y, x int) int
	}{
		{"png rgba keeps colour, drops alpha", pngBuf.Bytes(), 0, func(c, y, x int) int { return []int{40 * x, 100 * y, 200}[c] }},
		{"jpeg", jpgBuf.Bytes(), 3, func(c, y, x int) int { return []int{40, 100, 200}[c] }},
		{"gray png replicated", grayBuf.Bytes(), 0, func(c, y, x int) int { return 1 + 3*y + x }},
	}
	for _, tt := range tests {
		pix, h, w, err := decodeRGB(tt.data)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if h != 2 || w != 3 || len(pix) != 18 {
			t.Fatalf("%s: %dx%d, %d values", tt.name, w, h, len(pix))
		}
		for c := range 3 {
			for y := range 2 {
				for x := range 3 {
					got, want := int(pix[c*6+y*3+x]), tt.want(c, y, x)
					if got < want-tt.tol || got > want+tt.tol {
						t.Errorf("%s: channel %d at (%d,%d) = %d, want %d±%d", tt.name, c, x, y, got, want, tt.tol)
					}
				}
			}
		}
	}
	if _, _, _, err := decodeRGB([]byte("not an image")); err == nil {
		t.Error("decoding garbage: no error")
	}
}
