package data

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/sugarme/gotch"
	ts "github.com/sugarme/gotch/ts"
)

// defaultBatchSize is the batch size of a Loader when none is given.
const defaultBatchSize = 128

// Augment is the training augmentation a Loader applies in Go to the uint8
// images, before normalisation. Draws come from the loader's seed, the
// epoch and the batch index, so every batch is reproducible on its own.
type Augment struct {
	// Crop takes a random crop of the original size from the image
	// zero-padded by Pad pixels on each side (torchvision's
	// RandomCrop(size, padding=Pad)).
	Crop bool
	Pad  int // padding of Crop; 0 means 4
	// Flip mirrors the image left-right with probability 1/2, after the
	// crop (RandomHorizontalFlip).
	Flip bool
}

// TrainAugment is the usual CIFAR-10 training augmentation: pad 4, random
// crop, horizontal flip.
var TrainAugment = Augment{Crop: true, Pad: 4, Flip: true}

// LoaderOptions configures a Loader. The zero value gives batches of
// 128 images in the set's order, unaugmented, on the CPU.
type LoaderOptions struct {
	BatchSize int     // images per batch [128]
	Shuffle   bool    // a new order each epoch, drawn from Seed and the epoch
	Augment   Augment // training augmentation; the zero value is none
	DropLast  bool    // leave out the last, smaller batch
	Seed      int64

	// Device receives the tensors; the zero value means gotch.CPU.
	Device gotch.Device
	// Channels is the channel count of the batches: 0 keeps the set's, 3
	// replicates a one-channel set's plane (and its Mean and Std).
	Channels int
	// Mean and Std override the set's normalisation constants (0..1
	// scale), for checkpoints trained with other ones.
	Mean, Std []float32
	// Prefetch is how many batches Epoch prepares ahead in Go while the
	// caller works on the current one [2].
	Prefetch int
}

// A Loader serves a Set as batches of gotch tensors. It is safe for
// concurrent use.
//
// Each batch is built in Go as one float32 slice (gathering, augmenting
// and normalising the uint8 images) and crosses into libtorch once, with
// one more crossing for the labels and, off the CPU, one copy to the
// device.
type Loader struct {
	set     *Set
	opts    LoaderOptions
	c       int            // output channels
	lut     [][256]float32 // per output channel: pixel value -> normalised
	nbatch  int
	mu      sync.Mutex
	epoch   int   // epoch of perm
	perm    []int // cached order of epoch
	imgLen  int   // output values per image
	pad     int
	onCPU   bool
	hostBuf sync.Pool
}

// NewLoader returns a loader over s.
func NewLoader(s *Set, opts LoaderOptions) (*Loader, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("new loader: %w", err)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = defaultBatchSize
	}
	if opts.BatchSize < 0 {
		return nil, fmt.Errorf("new loader %s: batch size %d, want >= 1", s.Name, opts.BatchSize)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2
	}
	if opts.Device.Name == "" {
		opts.Device = gotch.CPU
	}
	l := &Loader{set: s, opts: opts, c: s.C, epoch: -1}
	switch {
	case opts.Channels == 0 || opts.Channels == s.C:
	case opts.Channels == 3 && s.C == 1:
		l.c = 3
	default:
		return nil, fmt.Errorf("new loader %s: cannot make %d channels from %d (convert the set with WithChannels)", s.Name, opts.Channels, s.C)
	}
	mean, std := s.Mean, s.Std
	if opts.Mean != nil || opts.Std != nil {
		mean, std = opts.Mean, opts.Std
		if len(mean) != l.c || len(std) != l.c {
			return nil, fmt.Errorf("new loader %s: %d means and %d stds for %d channels", s.Name, len(mean), len(std), l.c)
		}
	}
	l.lut = make([][256]float32, l.c)
	for c := range l.lut {
		m, sd := mean[min(c, len(mean)-1)], std[min(c, len(std)-1)]
		if !(sd > 0) {
			return nil, fmt.Errorf("new loader %s: std %v of channel %d, want > 0", s.Name, sd, c)
		}
		for v := range 256 {
			l.lut[c][v] = (float32(v)/255 - m) / sd
		}
	}
	if opts.Augment.Crop {
		l.pad = opts.Augment.Pad
		if l.pad == 0 {
			l.pad = 4
		}
		if l.pad < 0 {
			return nil, fmt.Errorf("new loader %s: crop padding %d, want >= 0", s.Name, l.pad)
		}
	}
	l.nbatch = s.N / opts.BatchSize
	if !opts.DropLast && s.N%opts.BatchSize != 0 {
		l.nbatch++
	}
	l.imgLen = l.c * s.H * s.W
	l.onCPU = opts.Device == gotch.CPU
	return l, nil
}

// Len returns the number of batches per epoch.
func (l *Loader) Len() int { return l.nbatch }

// Set returns the loader's data set.
func (l *Loader) Set() *Set { return l.set }

// order returns the set indices in the order epoch visits them. The slice
// is shared; do not modify it.
func (l *Loader) order(epoch int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perm != nil && l.epoch == epoch {
		return l.perm
	}
	if l.opts.Shuffle {
		l.perm = permutation(newRand(l.opts.Seed, streamShuffle, uint64(epoch)), l.set.N)
	} else {
		l.perm = make([]int, l.set.N)
		for i := range l.perm {
			l.perm[i] = i
		}
	}
	l.epoch = epoch
	return l.perm
}

// indices returns the set indices of batch i of epoch.
func (l *Loader) indices(epoch, i int) ([]int, error) {
	if i < 0 || i >= l.nbatch {
		return nil, fmt.Errorf("loader %s: batch %d outside [0, %d)", l.set.Name, i, l.nbatch)
	}
	order := l.order(epoch)
	lo := i * l.opts.BatchSize
	return order[lo:min(lo+l.opts.BatchSize, len(order))], nil
}

// buildHostBatch builds batch i of epoch in Go memory: the normalised,
// augmented images as float32 NCHW values and their labels. It is what
// batch hands to libtorch.
func (l *Loader) buildHostBatch(epoch, i int) (x []float32, y []int64, idx []int, err error) {
	idx, err = l.indices(epoch, i)
	if err != nil {
		return nil, nil, nil, err
	}
	x = make([]float32, len(idx)*l.imgLen)
	y = make([]int64, len(idx))
	l.fill(epoch, i, idx, x, y)
	return x, y, slices.Clone(idx), nil
}

// fill writes the images idx (batch i of epoch) into x and their labels
// into y.
func (l *Loader) fill(epoch, i int, idx []int, x []float32, y []int64) {
	s := l.set
	h, w, plane := s.H, s.W, s.H*s.W
	aug := l.opts.Augment
	r := newRand(l.opts.Seed, streamAugment, uint64(epoch), uint64(i))
	for j, k := range idx {
		y[j] = s.Labels[k]
		dy, dx, flip := l.pad, l.pad, false
		if aug.Crop {
			dy, dx = below(r, 2*l.pad+1), below(r, 2*l.pad+1)
		}
		if aug.Flip {
			flip = r.Uint64()&1 == 1
		}
		img := s.image(k)
		out := x[j*l.imgLen : (j+1)*l.imgLen]
		for c := range l.c {
			lut := &l.lut[c]
			src := img[min(c, s.C-1)*plane:][:plane]
			dst := out[c*plane : (c+1)*plane]
			if !aug.Crop && !aug.Flip {
				for p, v := range src {
					dst[p] = lut[v]
				}
				continue
			}
			zero := lut[0]
			for yy := range h {
				row := dst[yy*w : (yy+1)*w]
				sy := yy + dy - l.pad
				if sy < 0 || sy >= h {
					for xx := range row {
						row[xx] = zero
					}
					continue
				}
				srow := src[sy*w : (sy+1)*w]
				for xx := range row {
					cx := xx
					if flip {
						cx = w - 1 - xx
					}
					sx := cx + dx - l.pad
					if sx < 0 || sx >= w {
						row[xx] = zero
					} else {
						row[xx] = lut[srow[sx]]
					}
				}
			}
		}
	}
}

// A Batch is one batch of images and labels as tensors on the loader's
// device. The caller owns both tensors and frees them with Drop (or hands
// them on, and the new owner drops them); they are not freed otherwise
// until the garbage collector finalises them, which it does not do under
// libtorch's memory pressure.
type Batch struct {
	Images  *ts.Tensor // float32 [B, C, H, W], normalised
	Labels  *ts.Tensor // int64 [B]
	Indices []int      // positions of the images in the set
}

// Len returns the number of images in the batch.
func (b *Batch) Len() int { return len(b.Indices) }

// Drop frees the batch's tensors. Calling it again does nothing.
func (b *Batch) Drop() error {
	var errs []error
	for _, t := range []**ts.Tensor{&b.Images, &b.Labels} {
		if *t != nil {
			errs = append(errs, (*t).Drop())
			*t = nil
		}
	}
	return errors.Join(errs...)
}

// batch returns batch i of epoch, in [0, Len()).
func (l *Loader) batch(epoch, i int) (*Batch, error) {
	idx, err := l.indices(epoch, i)
	if err != nil {
		return nil, err
	}
	h := l.host(epoch, i, idx)
	defer l.hostBuf.Put(h)
	return l.toTensors(h)
}

// hostBatch is a batch built in Go memory.
type hostBatch struct {
	x   []float32
	y   []int64
	idx []int
}

// host builds batch i of epoch into a pooled buffer.
func (l *Loader) host(epoch, i int, idx []int) *hostBatch {
	h, _ := l.hostBuf.Get().(*hostBatch)
	if h == nil {
		h = &hostBatch{
			x: make([]float32, l.opts.BatchSize*l.imgLen),
			y: make([]int64, l.opts.BatchSize),
		}
	}
	n := len(idx)
	h.x, h.y = h.x[:n*l.imgLen], h.y[:n]
	h.idx = slices.Clone(idx)
	l.fill(epoch, i, idx, h.x, h.y)
	return h
}

// toTensors copies a host batch into libtorch: one crossing for the
// images, one for the labels, then the move to the device.
func (l *Loader) toTensors(h *hostBatch) (b *Batch, err error) {
	n := int64(len(h.idx))
	b = &Batch{Indices: h.idx}
	defer func() {
		if err != nil {
			b.Drop()
			b = nil
		}
	}()
	flat, err := ts.OfSlice(h.x)
	if err != nil {
		return nil, fmt.Errorf("loader %s: images to tensor: %w", l.set.Name, err)
	}
	if b.Images, err = flat.Reshape([]int64{n, int64(l.c), int64(l.set.H), int64(l.set.W)}, true); err != nil {
		flat.MustDrop()
		return b, fmt.Errorf("loader %s: reshape images: %w", l.set.Name, err)
	}
	if b.Labels, err = ts.OfSlice(h.y); err != nil {
		return b, fmt.Errorf("loader %s: labels to tensor: %w", l.set.Name, err)
	}
	if !l.onCPU {
		for _, t := range []**ts.Tensor{&b.Images, &b.Labels} {
			moved, err := (*t).To(l.opts.Device, true)
			if err != nil {
				return b, fmt.Errorf("loader %s: to %v: %w", l.set.Name, l.opts.Device, err)
			}
			*t = moved
		}
	}
	return b, nil
}

// Epoch returns the batches of one epoch in order. Batches are built in
// Go up to Prefetch ahead, on another goroutine, while the caller works;
// the cgo crossings happen on the caller's goroutine. Each yielded batch
// belongs to the caller, who must Drop it. Stopping early is fine. After
// an error the sequence ends.
//
//	for b, err := range loader.Epoch(e) {
//		if err != nil {
//			return err
//		}
//		loss := step(b.Images, b.Labels)
//		b.Drop()
//	}
func (l *Loader) Epoch(epoch int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		done := make(chan struct{})
		defer close(done)
		ready := make(chan *hostBatch, l.opts.Prefetch)
		failed := make(chan error, 1)
		order := l.order(epoch)
		go func() {
			defer close(ready)
			// A panic here (a batch too large to allocate) would end the
			// process and every other experiment with it: it becomes this
			// sequence's error instead.
			defer func() {
				if p := recover(); p != nil {
					failed <- fmt.Errorf("loader %s: building a batch of %d images: %v", l.set.Name, l.opts.BatchSize, p)
				}
			}()
			for i := range l.nbatch {
				lo := i * l.opts.BatchSize
				h := l.host(epoch, i, order[lo:min(lo+l.opts.BatchSize, len(order))])
				select {
				case ready <- h:
				case <-done:
					return
				}
			}
		}()
		for h := range ready {
			b, err := l.toTensors(h)
			l.hostBuf.Put(h)
			if !yield(b, err) || err != nil {
				return
			}
		}
		// ready is closed: the batches ran out, or building one failed.
		select {
		case err := <-failed:
			yield(nil, err)
		default:
		}
	}
}
