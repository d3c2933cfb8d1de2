package data

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Options says where to find data sets, where to cache them and how to
// preprocess them. The zero value searches the default places, caches in
// the default cache directory ($VITBENCH_DATA_CACHE, else .cache/data under
// the project root) and keeps images as they are.
type Options struct {
	// Dirs are searched first, in order (the --data-dir flag, the suite's
	// data dirs). Relative entries are taken from the working directory;
	// callers resolve paths from a suite file against SuiteDir themselves.
	Dirs []string
	// NoDefaultDirs restricts the search to Dirs and $VITBENCH_DATA.
	NoDefaultDirs bool
	// SuiteDir is the directory of the suite file, if any: ../shared/datasets
	// and ../../shared/datasets relative to it are searched, and a relative
	// "folder:PATH" is taken from it.
	SuiteDir string

	// CacheDir holds decoded sets; empty means the default (see Options).
	CacheDir string
	// NoCache decodes from the source every time and writes no cache.
	NoCache bool

	// Channels converts the loaded set: 1 or 3 (three replicate a gray
	// plane, one takes the luma), or 0 to keep the source's channels (1 for
	// MNIST, 3 otherwise).
	Channels int
	// ImageSize, when not 0, makes every image ImageSize x ImageSize by
	// resizing its shorter side to floor(ImageSize/CropPct) and taking the
	// center crop, as timm's and torchvision's evaluation transform does. Image folders need it unless all their
	// images have one size.
	ImageSize int
	// CropPct is the crop fraction for ImageSize; 0 means 0.875 (timm's
	// default crop_pct) for image folders and 1 (resize only) for fixed-size sets such as
	// CIFAR-10.
	CropPct float64

	// Workers is the number of decoding goroutines; 0 means GOMAXPROCS.
	Workers int
	// Logf, if set, receives one line per decode or cache event.
	Logf func(format string, args ...any)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// source is one located copy of a data set split.
type source struct {
	desc   string   // for messages: "canonical binary archive /x/cifar-10-binary.tar.gz"
	files  []string // files whose names, sizes and times identify the content
	tree   string   // or a directory whose whole tree does
	decode func(ctx context.Context, cfg folderConfig) (*Set, error)
}

// dataset describes a named data set: where its files may be and how it is
// normalised.
type dataset struct {
	name      string
	aliases   []string
	native    int // image side of fixed-size sets, 0 for folders
	mean, std []float32
	accepted  func(split splitName) []string // layouts under a search directory, for errors
	hint      string
	find      func(dir string, split splitName) *source
}

// imageNetMean and imageNetStd are the normalisation constants of
// ImageNet-trained checkpoints (timm's IMAGENET_DEFAULT_MEAN/STD), used for
// image folders.
var (
	imageNetMean = []float32{0.485, 0.456, 0.406}
	imageNetStd  = []float32{0.229, 0.224, 0.225}
)

// cifar10URL and cifar10MD5 locate and check the canonical binary archive.
const (
	cifar10URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
	cifar10MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
)

var datasets = []*dataset{
	{
		name: "cifar10", aliases: []string{"cifar-10", "cifar_10"},
		native: cifarSide, mean: cifar10Mean, std: cifar10Std,
		accepted: func(split splitName) []string {
			return []string{
				"cifar10/cifar-10-batches-bin/{" + strings.Join(cifarBinFiles(split), ",") + "}",
				"cifar-10-batches-bin/{" + strings.Join(cifarBinFiles(split), ",") + "}",
				"cifar10/cifar-10-binary.tar.gz",
				"cifar-10-binary.tar.gz",
				"cifar10/cifar10-" + string(split) + "-jpeg.tar.gz (ImageFolder of JPEGs)",
			}
		},
		hint: "put cifar10-train-jpeg.tar.gz and cifar10-test-jpeg.tar.gz, or the canonical cifar-10-binary.tar.gz, in a cifar10/ " +
			"directory under one of the searched directories; the canonical archive is at " + cifar10URL +
			" (md5 " + cifar10MD5 + "), which data.DownloadCIFAR10 fetches and checks where the internet is reachable",
		find: findCIFAR10,
	},
	{
		name: "fashion-mnist", aliases: []string{"fashion_mnist", "fashionmnist"},
		native: 28, mean: fashionMNISTMean, std: fashionMNISTStd,
		accepted: func(split splitName) []string {
			return idxAccepted([]string{"fashion-mnist", "FashionMNIST/raw"}, split)
		},
		hint: "install Debian's dataset-fashion-mnist package (files in " + systemDatasets + "/fashion-mnist), or put the four " +
			"*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist in a fashion-mnist/ directory under one of the searched directories",
		find: func(dir string, split splitName) *source {
			return findIDX(dir, split, []string{"fashion-mnist", "FashionMNIST/raw", "fashion_mnist"}, fashionMNISTClasses)
		},
	},
	{
		name: "mnist", native: 28, mean: mnistMean, std: mnistStd,
		accepted: func(split splitName) []string {
			return idxAccepted([]string{"mnist", "MNIST/raw"}, split)
		},
		hint: "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz " +
			"(gzip-compressed or raw) in an mnist/ directory under one of the searched directories",
		find: func(dir string, split splitName) *source {
			return findIDX(dir, split, []string{"mnist", "MNIST/raw"}, mnistClasses)
		},
	},
	{
		name: "imagenet", aliases: []string{"imagenet-1k", "imagenet1k"},
		mean: imageNetMean, std: imageNetStd,
		accepted: func(split splitName) []string {
			sub := imagenetSub(split)
			return []string{"imagenet/" + sub + "/<class>/*.{JPEG,jpg,png}", "imagenet/" + sub + ".tar", "imagenet/" + sub + ".tar.gz"}
		},
		hint: "put the images as <wnid>/*.JPEG class directories (the ImageNet-val layout after valprep) in imagenet/val/ " +
			"(or imagenet/val.tar) under one of the searched directories",
		find: func(dir string, split splitName) *source {
			return findFolder(filepath.Join(dir, "imagenet", imagenetSub(split)))
		},
	},
}

func imagenetSub(split splitName) string {
	if split == testSplit {
		return "val"
	}
	return "train"
}

// idxPrefix is the IDX file name prefix of a split.
func idxPrefix(split splitName) string {
	if split == testSplit {
		return "t10k"
	}
	return "train"
}

func idxAccepted(subdirs []string, split splitName) []string {
	p := idxPrefix(split)
	var out []string
	for _, d := range subdirs {
		out = append(out, fmt.Sprintf("%s/%s-{images-idx3,labels-idx1}-ubyte[.gz]", d, p))
	}
	return out
}

func findIDX(dir string, split splitName, subdirs, classes []string) *source {
	p := idxPrefix(split)
	for _, sub := range subdirs {
		d := filepath.Join(dir, filepath.FromSlash(sub))
		var pair []string
		for _, kind := range []string{"images-idx3", "labels-idx1"} {
			f := firstFile(
				filepath.Join(d, p+"-"+kind+"-ubyte.gz"), filepath.Join(d, p+"-"+kind+"-ubyte"),
				filepath.Join(d, p+"-"+strings.Replace(kind, "-", ".", 1)+"-ubyte"))
			if f == "" {
				break
			}
			pair = append(pair, f)
		}
		if len(pair) == 2 {
			return &source{
				desc:  "IDX files " + pair[0] + " and " + pair[1],
				files: pair,
				decode: func(context.Context, folderConfig) (*Set, error) {
					return readIDXPair(pair[0], pair[1], classes)
				},
			}
		}
	}
	return nil
}

func findCIFAR10(dir string, split splitName) *source {
	for _, d := range []string{filepath.Join(dir, "cifar10", "cifar-10-batches-bin"), filepath.Join(dir, "cifar-10-batches-bin")} {
		var files []string
		for _, f := range cifarBinFiles(split) {
			if p := filepath.Join(d, f); isFile(p) {
				files = append(files, p)
			}
		}
		if len(files) == len(cifarBinFiles(split)) {
			return &source{
				desc:  "canonical binary batches in " + d,
				files: files,
				decode: func(context.Context, folderConfig) (*Set, error) {
					return readCIFARBinaryDir(d, split)
				},
			}
		}
	}
	if a := firstFile(filepath.Join(dir, "cifar10", "cifar-10-binary.tar.gz"), filepath.Join(dir, "cifar-10-binary.tar.gz")); a != "" {
		return &source{
			desc:  "canonical binary archive " + a,
			files: []string{a},
			decode: func(ctx context.Context, _ folderConfig) (*Set, error) {
				return readCIFARBinaryTar(ctx, a, split)
			},
		}
	}
	if a := firstFile(filepath.Join(dir, "cifar10", "cifar10-"+string(split)+"-jpeg.tar.gz")); a != "" {
		return &source{
			desc:  "JPEG ImageFolder archive " + a,
			files: []string{a},
			decode: func(ctx context.Context, cfg folderConfig) (*Set, error) {
				cfg.size = 0 // resized after decoding, like the binary layout
				s, err := readImageFolder(ctx, a, cfg)
				if err != nil {
					return nil, err
				}
				if !slices.Equal(s.Classes, cifar10Classes) {
					return nil, fmt.Errorf("cifar10 %s: classes %v, want %v", a, s.Classes, cifar10Classes)
				}
				return s, nil
			},
		}
	}
	return nil
}

// findFolder returns an ImageFolder source at p (a directory or a tar or
// tar.gz archive, tried in that order), or nil.
func findFolder(p string) *source {
	if isDir(p) {
		return &source{
			desc: "image folder " + p,
			tree: p,
			decode: func(ctx context.Context, cfg folderConfig) (*Set, error) {
				return readImageFolder(ctx, p, cfg)
			},
		}
	}
	candidates := []string{p}
	if !isTar(p) {
		candidates = []string{p + ".tar", p + ".tar.gz", p + ".tgz"}
	}
	if a := firstFile(candidates...); a != "" && isTar(a) {
		return &source{
			desc:  "image folder archive " + a,
			files: []string{a},
			decode: func(ctx context.Context, cfg folderConfig) (*Set, error) {
				return readImageFolder(ctx, a, cfg)
			},
		}
	}
	return nil
}

// datasetNames returns the names load accepts besides "folder:PATH".
func datasetNames() []string {
	names := []string{"synthetic"}
	for _, d := range datasets {
		names = append(names, d.name)
	}
	slices.Sort(names)
	return names
}

// lookup finds the dataset for a name.
func lookup(name string) (*dataset, error) {
	n := strings.ToLower(name)
	for _, d := range datasets {
		if n == d.name || slices.Contains(d.aliases, n) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("unknown data set %q (known: %s, folder:PATH)", name, strings.Join(datasetNames(), ", "))
}

// folderPrefix introduces an ImageFolder given by path.
const folderPrefix = "folder:"

// load returns one split of the named data set, from the cache when a
// valid entry exists and otherwise decoded from the first place on the
// search path that has it (and then cached).
//
// Names: "cifar10", "fashion-mnist", "mnist", "imagenet" (test = the
// val/ folder), "synthetic" (generated; see synthetic), and
// "folder:PATH" for an ImageFolder at PATH: a directory or tar(.gz) of
// <class>/ directories (the test split), or one holding train/ and val/
// (or test/) such folders or archives.
//
// A data set that is nowhere gives a *notFoundError.
func load(ctx context.Context, name string, split splitName, opts Options) (*Set, error) {
	if split != trainSplit && split != testSplit {
		return nil, fmt.Errorf("load %s: unknown split %q (want %q or %q)", name, split, trainSplit, testSplit)
	}
	if opts.ImageSize < 0 {
		return nil, fmt.Errorf("load %s: image size %d, want >= 0", name, opts.ImageSize)
	}
	if opts.Channels != 0 && opts.Channels != 1 && opts.Channels != 3 {
		return nil, fmt.Errorf("load %s: %d channels, want 1 or 3", name, opts.Channels)
	}
	if strings.EqualFold(name, "synthetic") {
		n, seed := syntheticTrainN, int64(1)
		if split == testSplit {
			n, seed = syntheticTestN, 2
		}
		s, err := synthetic(syntheticConfig{N: n, Channels: opts.Channels, Size: opts.ImageSize, Seed: seed})
		if err != nil {
			return nil, err
		}
		s.Name = "synthetic/" + string(split)
		return finish(s, opts)
	}

	var (
		ds   *dataset
		src  *source
		size = opts.ImageSize
		crop = opts.CropPct
	)
	if path, ok := strings.CutPrefix(name, folderPrefix); ok {
		ds = &dataset{name: name, mean: imageNetMean, std: imageNetStd}
		var err error
		if src, err = locateFolder(path, split, opts); err != nil {
			return nil, err
		}
	} else {
		var err error
		if ds, err = lookup(name); err != nil {
			return nil, err
		}
		dirs := searchPath(opts)
		for _, d := range dirs {
			if src = ds.find(d, split); src != nil {
				break
			}
		}
		if src == nil {
			return nil, newNotFound(name, split, dirs, ds.accepted(split), ds.hint)
		}
	}
	if size == ds.native && ds.native > 0 {
		size = 0
	}
	if size > 0 {
		crop = cmp.Or(crop, defaultCropPct)
		if ds.native > 0 {
			crop = cmp.Or(opts.CropPct, 1)
		}
		if err := checkResize(size, crop); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
	} else {
		crop = 0
	}

	fp, err := fingerprint(src)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "vitbench data v%d\n%s\n%s\n%s\nsize=%d crop=%g\n", cacheVersion, ds.name, split, fp, size, crop))
	hash := hex.EncodeToString(sum[:8])
	key := fmt.Sprintf("%s/%s@%s", ds.name, split, hash)
	cacheFile := filepath.Join(cmp.Or(opts.CacheDir, defaultCacheDir()), fmt.Sprintf("%s-%s-%s.bin", safeName(ds.name), split, hash))

	if !opts.NoCache {
		start := time.Now()
		s, err := readCache(cacheFile, key)
		switch {
		case err == nil:
			opts.logf("data: %s from cache %s (%d images, %v)", key, cacheFile, s.N, time.Since(start).Round(time.Millisecond))
			return finish(s, opts)
		case isNotExist(err):
		default:
			opts.logf("data: rebuilding cache: %v", err)
		}
	}

	start := time.Now()
	s, err := src.decode(ctx, folderConfig{size: size, cropPct: crop, workers: opts.Workers})
	if err != nil {
		return nil, fmt.Errorf("load %s (%s): %w", name, src.desc, err)
	}
	s.Name = ds.name + "/" + string(split)
	s.Mean, s.Std, s.Key = slices.Clone(ds.mean), slices.Clone(ds.std), key
	if size > 0 && (s.H != size || s.W != size) {
		if s, err = s.resized(size, crop); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
		s.Key = key
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("load %s (%s): %w", name, src.desc, err)
	}
	opts.logf("data: decoded %s from %s (%d images, %v)", key, src.desc, s.N, time.Since(start).Round(time.Millisecond))
	if !opts.NoCache {
		if err := writeCache(cacheFile, key, s); err != nil {
			opts.logf("data: not cached: %v", err)
		}
	}
	return finish(s, opts)
}

// finish applies the post-cache conversions.
func finish(s *Set, opts Options) (*Set, error) {
	return s.withChannels(opts.Channels)
}

// Open loads the train and test splits of the named data set, each from
// the cache when a valid entry exists and otherwise decoded from the first
// place on the search path that has it (and then cached); see load for the
// names it takes. A data set that is nowhere gives an error naming every
// place searched and how to provide the files.
func Open(ctx context.Context, name string, opts Options) (train, test *Set, err error) {
	if train, err = load(ctx, name, trainSplit, opts); err != nil {
		return nil, nil, err
	}
	if test, err = load(ctx, name, testSplit, opts); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// Locate reports whether the named data set can be found for both splits
// on the search path Open would use, reading nothing but directory
// entries: the error is Open's "not found" error, naming every place
// searched. Synthetic data is always found.
func Locate(name string, opts Options) error {
	if strings.EqualFold(name, "synthetic") {
		return nil
	}
	for _, split := range []splitName{trainSplit, testSplit} {
		if path, ok := strings.CutPrefix(name, folderPrefix); ok {
			if _, err := locateFolder(path, split, opts); err != nil {
				return err
			}
			continue
		}
		ds, err := lookup(name)
		if err != nil {
			return err
		}
		dirs := searchPath(opts)
		found := false
		for _, d := range dirs {
			if ds.find(d, split) != nil {
				found = true
				break
			}
		}
		if !found {
			return newNotFound(name, split, dirs, ds.accepted(split), ds.hint)
		}
	}
	return nil
}

// locateFolder resolves "folder:PATH" for a split.
func locateFolder(p string, split splitName, opts Options) (*source, error) {
	if !filepath.IsAbs(p) && opts.SuiteDir != "" {
		p = filepath.Join(opts.SuiteDir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	subs := []string{"train"}
	if split == testSplit {
		subs = []string{"val", "test"}
	}
	hasSplits := false
	for _, s := range []string{"train", "val", "test"} {
		if findFolder(filepath.Join(p, s)) != nil {
			hasSplits = true
		}
	}
	var tried []string
	if hasSplits {
		for _, s := range subs {
			q := filepath.Join(p, s)
			tried = append(tried, q, q+".tar", q+".tar.gz")
			if src := findFolder(q); src != nil {
				return src, nil
			}
		}
	} else if split == testSplit {
		tried = append(tried, p)
		if src := findFolder(p); src != nil {
			return src, nil
		}
	} else {
		tried = append(tried, filepath.Join(p, "train"))
	}
	return nil, newNotFound(folderPrefix+p, split, tried, nil,
		"give a directory or tar(.gz) of <class>/ image directories (used as the test split), "+
			"or one holding train/ and val/ (or test/) such folders")
}

// fingerprint identifies a source's content by its files' names, sizes
// and modification times.
func fingerprint(src *source) (string, error) {
	var b strings.Builder
	for _, f := range src.files {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d %d\n", filepath.Base(f), st.Size(), st.ModTime().UnixNano())
	}
	if src.tree != "" {
		err := filepath.WalkDir(src.tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src.tree, p)
			fmt.Fprintf(&b, "%s %d %d\n", filepath.ToSlash(rel), info.Size(), info.ModTime().UnixNano())
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", src.tree, err)
		}
	}
	return b.String(), nil
}

// safeName turns a data set name into a file name part.
func safeName(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	s := string(b)
	if len(s) > 48 {
		s = s[len(s)-48:]
	}
	return s
}
