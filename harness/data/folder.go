package data

import (
	"archive/tar"
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Image file extensions, lower case. decodable are read; the others are
// images in torchvision's list that this package cannot decode, so a folder
// holding them is an error rather than silently smaller.
var (
	decodableExt   = map[string]bool{".jpg": true, ".jpeg": true, ".png": true}
	undecodableExt = map[string]bool{".ppm": true, ".bmp": true, ".pgm": true, ".tif": true, ".tiff": true, ".webp": true}
)

// folderConfig is how an ImageFolder is decoded.
type folderConfig struct {
	size    int     // output size after resize + center crop; 0 keeps the native size
	cropPct float64 // see Set.resized
	workers int     // decoding goroutines; 0 means GOMAXPROCS
}

// isTar reports whether p names a tar archive, compressed or not.
func isTar(p string) bool {
	l := strings.ToLower(p)
	return strings.HasSuffix(l, ".tar") || strings.HasSuffix(l, ".tar.gz") || strings.HasSuffix(l, ".tgz")
}

// imageRecord is one decoded image of a folder.
type imageRecord struct {
	path string // slash-separated, relative to the folder root or archive
	pix  []uint8
	h, w int
}

// readImageFolder decodes an ImageFolder tree, root/<class>/**/*.{jpg,jpeg,png},
// from a directory or a tar(.gz) archive. Classes are the sorted names of
// the class directories and images are ordered by class, directory and file
// name, as torchvision's ImageFolder orders them. The returned set has no
// Name, Mean, Std or Key yet.
func readImageFolder(ctx context.Context, root string, cfg folderConfig) (*Set, error) {
	if cfg.size > 0 {
		if err := checkResize(cfg.size, cfg.cropPct); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type job struct {
		path string
		data []byte
	}
	workers := cfg.workers
	if workers < 1 {
		workers = defaultWorkers()
	}
	jobs := make(chan job, 4*workers)
	var (
		mu      sync.Mutex
		records []imageRecord
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				pix, h, w, err := decodeRGB(j.data)
				if err != nil {
					cancel(fmt.Errorf("decode %s: %w", j.path, err))
					continue
				}
				if cfg.size > 0 && (h != cfg.size || w != cfg.size) {
					pix, h, w = resizeCrop(pix, 3, h, w, cfg.size, cfg.cropPct), cfg.size, cfg.size
				}
				mu.Lock()
				records = append(records, imageRecord{path: j.path, pix: pix, h: h, w: w})
				mu.Unlock()
			}
		})
	}
	emit := func(name string, r io.Reader) error {
		ext := strings.ToLower(path.Ext(name))
		if undecodableExt[ext] {
			return fmt.Errorf("%s: %s images are not supported (convert them to PNG or JPEG)", name, ext)
		}
		if !decodableExt[ext] {
			return nil
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		select {
		case jobs <- job{name, b}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	var err error
	if isTar(root) {
		err = walkTar(ctx, root, emit)
	} else {
		err = walkDir(ctx, root, emit)
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("image folder %s: %w", root, err)
	}
	s, err := assembleFolder(records, isTar(root))
	if err != nil {
		return nil, fmt.Errorf("image folder %s: %w", root, err)
	}
	return s, nil
}

// assembleFolder orders decoded images and assigns classes. In a
// directory the classes are its subdirectories, as in torchvision; in an
// archive they are the first path component under the directories that
// all images share (so "val/<class>/x.jpg" and "<class>/x.jpg" both work),
// keeping at least one level for the class.
func assembleFolder(records []imageRecord, archive bool) (*Set, error) {
	if len(records) == 0 {
		return nil, errEmpty
	}
	minDepth := -1
	var common []string
	for i, r := range records {
		dirs := strings.Split(path.Dir(r.path), "/")
		if path.Dir(r.path) == "." {
			return nil, fmt.Errorf("%s is not inside a class directory", r.path)
		}
		if i == 0 {
			common = dirs
			minDepth = len(dirs)
			continue
		}
		minDepth = min(minDepth, len(dirs))
		n := 0
		for n < len(common) && n < len(dirs) && common[n] == dirs[n] {
			n++
		}
		common = common[:n]
	}
	rootDepth := 0
	if archive {
		rootDepth = min(len(common), minDepth-1)
	}
	type key struct {
		class, dir, base string
	}
	keys := make([]key, len(records))
	classSet := map[string]bool{}
	for i, r := range records {
		parts := strings.Split(r.path, "/")
		rest := parts[rootDepth:]
		keys[i] = key{class: rest[0], dir: path.Dir(r.path), base: path.Base(r.path)}
		classSet[rest[0]] = true
	}
	classes := make([]string, 0, len(classSet))
	for c := range classSet {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	order := make([]int, len(records))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ka, kb := keys[a], keys[b]
		return cmp.Or(cmp.Compare(ka.class, kb.class), cmp.Compare(ka.dir, kb.dir), cmp.Compare(ka.base, kb.base))
	})
	first := records[order[0]]
	for _, i := range order {
		if r := records[i]; r.h != first.h || r.w != first.w {
			return nil, fmt.Errorf("images differ in size (%dx%d %s, %dx%d %s): give an image size to resize and crop them",
				first.w, first.h, first.path, r.w, r.h, r.path)
		}
	}
	s := &Set{Classes: classes, N: len(records), C: 3, H: first.h, W: first.w}
	s.Pixels = make([]uint8, s.N*s.imageLen())
	s.Labels = make([]int64, s.N)
	n := s.imageLen()
	for j, i := range order {
		copy(s.Pixels[j*n:(j+1)*n], records[i].pix)
		records[i].pix = nil
		c, _ := slices.BinarySearch(classes, keys[i].class)
		s.Labels[j] = int64(c)
	}
	return s, nil
}

// walkDir calls emit for every regular file under root, with its path
// relative to root.
func walkDir(ctx context.Context, root string, emit func(name string, r io.Reader) error) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return emit(filepath.ToSlash(rel), f)
	})
}

// walkTar calls emit for every regular file in a tar or tar.gz archive,
// with "./" prefixes removed.
func walkTar(ctx context.Context, file string, emit func(name string, r io.Reader) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr, closeFn, err := openTar(f)
	if err != nil {
		return err
	}
	defer closeFn()
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
		if err := emit(name, tr); err != nil {
			return err
		}
	}
}

// openTar returns a tar reader over f, decompressing gzip when the stream
// starts with the gzip magic.
func openTar(f io.Reader) (*tar.Reader, func(), error) {
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, nil, fmt.Errorf("read archive: %w", err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gunzip: %w", err)
		}
		return tar.NewReader(bufio.NewReaderSize(zr, 1<<20)), func() { zr.Close() }, nil
	}
	return tar.NewReader(br), func() {}, nil
}
