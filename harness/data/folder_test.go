package data

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// solidImage encodes a w x h image of one colour as PNG or JPEG.
func solidImage(t testing.TB, w, h int, c color.NRGBA, format string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []uint8{c.R, c.G, c.B, c.A})
	}
	var buf bytes.Buffer
	var err error
	if format == "jpg" {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// folderFiles returns an ImageFolder tree: classes created out of order,
// images of several sizes whose colour encodes (class, file): R = 60*class
// in sorted order, G = 20*file number.
func folderFiles(t testing.TB, prefix string, sameSize bool) map[string][]byte {
	files := map[string][]byte{
		prefix + "notes.txt":        []byte("ignored"),
		prefix + "dog/readme.md":    []byte("ignored"),
		prefix + "dog/b.png":        nil,
		prefix + "dog/a.png":        nil,
		prefix + "cat/x.jpeg":       nil,
		prefix + "bird/2.png":       nil,
		prefix + "bird/1.PNG":       nil,
		prefix + "bird/sub/0.png":   nil,
		prefix + "cat/extra/zz.jpg": nil,
	}
	class := map[string]int{"bird": 0, "cat": 1, "dog": 2}
	file := map[string]int{"1.PNG": 1, "2.png": 2, "0.png": 3, "x.jpeg": 1, "zz.jpg": 2, "a.png": 1, "b.png": 2}
	sizes := [][2]int{{12, 10}, {10, 12}, {16, 16}, {11, 9}}
	i := 0
	for name := range files {
		base := filepath.Base(name)
		if _, ok := file[base]; !ok {
			continue
		}
		cls := strings.Split(strings.TrimPrefix(name, prefix), "/")[0]
		sz := sizes[i%len(sizes)]
		if sameSize {
			sz = [2]int{6, 6}
		}
		i++
		format := "png"
		if strings.HasSuffix(base, "jpg") || strings.HasSuffix(base, "jpeg") {
			format = "jpg"
		}
		files[name] = solidImage(t, sz[0], sz[1], color.NRGBA{uint8(60 * class[cls]), uint8(20 * file[base]), 100, 255}, format)
	}
	return files
}

// wantFolder is the (class, file) order torchvision's ImageFolder gives
// folderFiles: classes sorted, then directory, then file name.
var wantFolder = [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 1}, {1, 2}, {2, 1}, {2, 2}}

func checkFolder(t *testing.T, s *Set, size int) {
	t.Helper()
	if !slices.Equal(s.Classes, []string{"bird", "cat", "dog"}) {
		t.Fatalf("classes %v", s.Classes)
	}
	if s.N != len(wantFolder) || s.C != 3 || s.H != size || s.W != size {
		t.Fatalf("shape %dx%dx%dx%d, want %dx3x%dx%d", s.N, s.C, s.H, s.W, len(wantFolder), size, size)
	}
	for i, w := range wantFolder {
		img := s.image(i)
		r, g := int(img[0]), int(img[size*size])
		center := int(img[size*size+size*size/2+size/2])
		if s.Labels[i] != int64(w[0]) || abs(r-60*w[0]) > 3 || abs(g-20*w[1]) > 3 || abs(center-20*w[1]) > 3 {
			t.Errorf("image %d: label %d, R %d G %d (center %d); want class %d file %d", i, s.Labels[i], r, g, center, w[0], w[1])
		}
	}
	if !slices.Equal(s.Mean, imageNetMean) {
		t.Errorf("mean %v, want ImageNet's", s.Mean)
	}
}

func abs(x int) int { return max(x, -x) }

func TestImageFolder(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "dir"), folderFiles(t, "", false))
	writeTarGz(t, filepath.Join(root, "val.tar.gz"), folderFiles(t, "./val/", false))
	writeFiles(t, filepath.Join(root, "splits", "train"), folderFiles(t, "", true))
	writeTarGz(t, filepath.Join(root, "splits", "val.tar.gz"), folderFiles(t, "", false))
	writeFiles(t, filepath.Join(root, "imagenet", "val"), folderFiles(t, "", false))

	tests := []struct {
		name  string
		set   string
		split splitName
		size  int
	}{
		{"directory", "folder:" + filepath.Join(root, "dir"), testSplit, 8},
		{"tar.gz with a prefix", "folder:" + filepath.Join(root, "val.tar.gz"), testSplit, 8},
		{"split layout, train dir", "folder:" + filepath.Join(root, "splits"), trainSplit, 5},
		{"split layout, val archive", "folder:" + filepath.Join(root, "splits"), testSplit, 224},
		{"imagenet name", "imagenet", testSplit, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := isolate(t, root)
			opts.ImageSize = tt.size
			s, err := load(ctx, tt.set, tt.split, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkFolder(t, s, tt.size)
		})
	}

	t.Run("one class", func(t *testing.T) {
		// In a directory the class is the top level, however deep the
		// images; an archive's shared prefix is stripped.
		one := t.TempDir()
		img := solidImage(t, 2, 2, color.NRGBA{A: 255}, "png")
		writeFiles(t, filepath.Join(one, "dir"), map[string][]byte{"cls/deep/x.png": img})
		writeTarGz(t, filepath.Join(one, "a.tar"), map[string][]byte{"val/cls/x.png": img})
		for _, p := range []string{"dir", "a.tar"} {
			s, err := load(ctx, "folder:"+filepath.Join(one, p), testSplit, isolate(t))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Classes, []string{"cls"}) {
				t.Errorf("%s: classes %v, want [cls]", p, s.Classes)
			}
		}
	})
	t.Run("native size", func(t *testing.T) {
		s, err := load(ctx, "folder:"+filepath.Join(root, "splits"), trainSplit, isolate(t))
		if err != nil {
			t.Fatal(err)
		}
		checkFolder(t, s, 6)
	})
	t.Run("mixed sizes need a size", func(t *testing.T) {
		_, err := load(ctx, "folder:"+filepath.Join(root, "dir"), testSplit, isolate(t))
		if err == nil || !strings.Contains(err.Error(), "differ in size") {
			t.Errorf("err = %v, want a size mismatch", err)
		}
	})
	t.Run("relative to the suite", func(t *testing.T) {
		opts := isolate(t)
		opts.SuiteDir, opts.ImageSize = root, 4
		if _, err := load(ctx, "folder:dir", testSplit, opts); err != nil {
			t.Error(err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := load(ctx, "folder:"+filepath.Join(root, "nope"), testSplit, isolate(t))
		var nf *notFoundError
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), filepath.Join(root, "nope")) {
			t.Errorf("err = %v, want a NotFoundError naming the path", err)
		}
	})
	t.Run("unsupported images", func(t *testing.T) {
		bad := t.TempDir()
		writeFiles(t, bad, map[string][]byte{"a/x.png": solidImage(t, 2, 2, color.NRGBA{A: 255}, "png"), "a/y.webp": []byte("RIFF")})
		_, err := load(ctx, "folder:"+bad, testSplit, isolate(t))
		if err == nil || !strings.Contains(err.Error(), ".webp") {
			t.Errorf("err = %v, want one naming .webp", err)
		}
	})
	t.Run("corrupt image", func(t *testing.T) {
		bad := t.TempDir()
		writeFiles(t, bad, map[string][]byte{"a/x.png": []byte("not a png")})
		_, err := load(ctx, "folder:"+bad, testSplit, isolate(t))
		if err == nil || !strings.Contains(err.Error(), "a/x.png") {
			t.Errorf("err = %v, want one naming a/x.png", err)
		}
	})
}
