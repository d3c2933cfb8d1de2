// Package data finds, decodes, caches and batches the image classification
// data sets vitbench trains and evaluates on.
//
// The steps, in order:
//
//  1. Locate. [Open] takes a data set name ("cifar10", "fashion-mnist",
//     "mnist", "imagenet", "synthetic", or "folder:PATH") and looks for
//     its files along a search path: [Options.Dirs] (the --data-dir flag
//     or the suite's data.dirs key), then $VITBENCH_DATA (a list separated
//     like $PATH), then ../shared/datasets and ../../shared/datasets
//     relative to the working directory, to the directory of the suite
//     file and to the project root (the nearest directory above the
//     working directory holding go.mod), then /usr/share/datasets. When nothing is found the error names
//     every directory searched, the file names that would have been
//     accepted and how to provide them.
//  2. Decode. Sources are read in place, never copied: CIFAR-10 as the
//     canonical binary batches (cifar-10-binary.tar.gz or an extracted
//     cifar-10-batches-bin/) or as a tar.gz of JPEGs in ImageFolder layout;
//     MNIST and Fashion-MNIST as IDX files (gzip-compressed or raw); any
//     ImageFolder tree root/<class>/*.{jpg,jpeg,png}, as a directory or a
//     tar(.gz), with torchvision's sorted class order and an optional
//     resize of the shorter side plus center crop (ImageNet-val style).
//     Images are decoded in parallel on all cores.
//  3. Cache. The decoded split is written once to a cache file (see
//     [Options.CacheDir]) keyed by the source files' names, sizes and
//     modification times and by the preprocessing; a checksum guards it,
//     and a truncated or corrupt file is rebuilt. A cached load is one read.
//  4. Carve. A [Set] is plain memory: uint8 pixels in CHW order per image,
//     int64 labels, class names and per-channel normalisation constants.
//     [Set.Split] takes a fixed, stratified validation carve-out from the
//     training split for calibration and tuning, so the test split is only
//     ever used for reported numbers; [Set.Subset] samples a smaller set.
//  5. Batch. A [Loader] turns a Set into batches of gotch tensors
//     (float32 NCHW, normalised, and int64 labels), shuffled per epoch and
//     augmented (random crop with padding, horizontal flip) in Go on the
//     uint8 data, all deterministic under a seed. Each batch crosses into
//     libtorch once; the caller owns the tensors and frees them with
//     [Batch.Drop].
//
// Grayscale sets (MNIST, Fashion-MNIST) have one channel; [Options.Channels]
// or [LoaderOptions.Channels] replicates it to three for models with RGB
// patch embeddings.
//
// Note: a CIFAR-10 tar.gz of JPEGs is a re-encoding of the original images,
// so accuracies on it are close to, not identical with, results on the
// canonical binary files. When both layouts are in the same directory the
// canonical one is preferred.
package data
