package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG decoder for image.Decode
	_ "image/png"  // PNG decoder for image.Decode
	"math"
	"runtime"
	"sync"
)

// defaultCropPct is the fraction of the resized image kept by the center
// crop when none is given: timm's default crop_pct, so 224 crops come from
// images resized to 256.
const defaultCropPct = 0.875

// decodeRGB decodes a JPEG or PNG into RGB pixels in CHW order, dropping
// any alpha channel as PIL's convert("RGB") does.
func decodeRGB(data []byte) (pix []uint8, h, w int, err error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, err
	}
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	plane := w * h
	pix = make([]uint8, 3*plane)
	r, g, bl := pix[:plane], pix[plane:2*plane], pix[2*plane:]
	switch m := img.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				p := y*w + x
				r[p], g[p], bl[p] = color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			copy(r[y*w:], row)
			copy(g[y*w:], row)
			copy(bl[y*w:], row)
		}
	case *image.NRGBA:
		fromInterleaved(m.Pix, m.Stride, w, h, r, g, bl)
	case *image.RGBA:
		fromInterleaved(m.Pix, m.Stride, w, h, r, g, bl)
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				p := y*w + x
				r[p], g[p], bl[p] = c.R, c.G, c.B
			}
		}
	}
	return pix, h, w, nil
}

// fromInterleaved splits 4-byte interleaved pixels into planes.
func fromInterleaved(src []uint8, stride, w, h int, r, g, b []uint8) {
	for y := 0; y < h; y++ {
		row := src[y*stride : y*stride+4*w]
		for x := 0; x < w; x++ {
			p := y*w + x
			r[p], g[p], b[p] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
}

// checkResize validates an evaluation resize.
func checkResize(size int, cropPct float64) error {
	if size < 1 {
		return fmt.Errorf("image size %d, want >= 1", size)
	}
	if !(cropPct > 0 && cropPct <= 1) {
		return fmt.Errorf("crop fraction %v, want in (0, 1]", cropPct)
	}
	return nil
}

// resizeShape returns the size of an h x w image after its shorter side is
// resized to short, with torchvision's truncation of the longer side.
func resizeShape(h, w, short int) (oh, ow int) {
	if w <= h {
		return short * h / w, short
	}
	return short, short * w / h
}

// resizeCrop resizes a CHW image so that its shorter side is
// floor(size/cropPct) (antialiased bilinear, as PIL's resize with
// BILINEAR) and returns the size x size center crop.
func resizeCrop(src []uint8, c, h, w, size int, cropPct float64) []uint8 {
	short := int(math.Floor(float64(size)/cropPct + 1e-9))
	oh, ow := resizeShape(h, w, short)
	// torchvision's center crop: offsets round((in - out) / 2), half to even.
	top := int(math.RoundToEven(float64(oh-size) / 2))
	left := int(math.RoundToEven(float64(ow-size) / 2))
	out := make([]uint8, c*size*size)
	if oh == h && ow == w {
		for ch := 0; ch < c; ch++ {
			for y := 0; y < size; y++ {
				s := src[ch*h*w+(top+y)*w+left:]
				copy(out[ch*size*size+y*size:(ch*size+y+1)*size], s[:size])
			}
		}
		return out
	}
	xs := resampleCoeffs(w, ow)[left : left+size]
	ys := resampleCoeffs(h, oh)[top : top+size]
	tmp := make([]float32, h*size)
	for ch := 0; ch < c; ch++ {
		plane := src[ch*h*w : (ch+1)*h*w]
		for y := 0; y < h; y++ {
			row := plane[y*w : (y+1)*w]
			for x, k := range xs {
				var acc float32
				for j, wt := range k.w {
					acc += wt * float32(row[k.start+j])
				}
				tmp[y*size+x] = acc
			}
		}
		dst := out[ch*size*size : (ch+1)*size*size]
		for y, k := range ys {
			for x := 0; x < size; x++ {
				var acc float32
				for j, wt := range k.w {
					acc += wt * tmp[(k.start+j)*size+x]
				}
				dst[y*size+x] = clamp8(acc)
			}
		}
	}
	return out
}

// kernel is the weights of one output pixel over input pixels
// start..start+len(w)-1.
type kernel struct {
	start int
	w     []float32
}

// resampleCoeffs returns PIL's antialiased bilinear (triangle filter)
// weights for resizing in pixels to out pixels along one axis: when
// shrinking, the filter widens by the scale so every input pixel counts.
func resampleCoeffs(in, out int) []kernel {
	scale := float64(in) / float64(out)
	fscale := max(scale, 1)
	support := fscale
	ks := make([]kernel, out)
	for i := range ks {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-support+0.5), 0)
		hi := min(int(center+support+0.5), in)
		w := make([]float32, hi-lo)
		var sum float64
		ws := make([]float64, hi-lo)
		for j := range ws {
			t := math.Abs((float64(j+lo) - center + 0.5) / fscale)
			if t < 1 {
				ws[j] = 1 - t
			}
			sum += ws[j]
		}
		for j := range w {
			if sum > 0 {
				w[j] = float32(ws[j] / sum)
			}
		}
		ks[i] = kernel{start: lo, w: w}
	}
	return ks
}

func clamp8(v float32) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// parallel calls fn(i) for i in [0, n) on workers goroutines (GOMAXPROCS
// when workers < 1).
func parallel(n, workers int, fn func(i int)) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}
