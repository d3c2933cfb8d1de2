package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"path/filepath"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/harness/data"
	"github.com/vitbench/vitbench/harness/plan"
	"github.com/vitbench/vitbench/harness/train"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/techniques/compress"
)

// dataset is a model's data, loaded once per run: the fit part of the
// training split, the validation carve-out (calibration, tuning) and the
// test split (reported numbers only).
type dataset struct {
	spec       config.DataSpec
	train, val *data.Set
	test       *data.Set
	// images identifies the test images and their order, so that
	// per-image outcomes pair only across evaluations of the same ones.
	images  string
	batch   int
	augment data.Augment
}

func dataName(d config.DataSpec) string {
	if d.Name == "imagefolder" {
		return "folder:" + d.Path
	}
	return d.Name
}

func (r *Runner) dataset(ctx context.Context, m *config.Model) (*dataset, error) {
	key, _ := json.Marshal(struct {
		D config.DataSpec
		B int
		A string
	}{m.Data, m.Train.BatchSize, m.Train.Augment})
	if ds, ok := r.state.data[string(key)]; ok {
		return ds, nil
	}
	opts := data.Options{
		Dirs:      append(append([]string{}, r.DataDirs...), r.Plan.Suite.DataDirs...),
		SuiteDir:  filepath.Dir(r.Plan.Suite.File),
		Channels:  m.Data.Channels,
		ImageSize: m.Data.ImgSize,
	}
	if m.Data.Name == "synthetic" {
		opts.NoDefaultDirs = true
	}
	trainSet, test, err := data.Open(ctx, dataName(m.Data), opts)
	if err != nil {
		return nil, err
	}
	seed := r.Plan.Suite.Seed
	if m.Data.TrainSize > 0 && m.Data.TrainSize < trainSet.N {
		if trainSet, err = trainSet.Subset(m.Data.TrainSize, seed); err != nil {
			return nil, err
		}
	}
	images := fmt.Sprintf("%s test split, all %d images", dataName(m.Data), test.N)
	if m.Data.TestSize > 0 && m.Data.TestSize < test.N {
		images = fmt.Sprintf("%s test split, %d of %d images drawn with seed %d", dataName(m.Data), m.Data.TestSize, test.N, seed)
		if test, err = test.Subset(m.Data.TestSize, seed); err != nil {
			return nil, err
		}
	}
	ds := &dataset{spec: m.Data, test: test, images: images, batch: m.Train.BatchSize}
	if m.Data.ValSize > 0 {
		if ds.train, ds.val, err = trainSet.Split(m.Data.ValSize, seed); err != nil {
			return nil, err
		}
	} else {
		ds.train = trainSet
	}
	switch m.Train.Augment {
	case "crop-flip":
		ds.augment = data.TrainAugment
	case "flip":
		ds.augment = data.Augment{Flip: true}
	}
	fmt.Fprintf(r.Log, "data %s: %d train, %d validation, %d test images, %dx%dx%d\n",
		m.Data.Name, ds.train.N, nOf(ds.val), ds.test.N, ds.train.C, ds.train.H, ds.train.W)
	r.state.data[string(key)] = ds
	return ds, nil
}

func nOf(s *data.Set) int {
	if s == nil {
		return 0
	}
	return s.N
}

// loaderSource adapts a data.Loader to train.Source; a loader error ends
// the epoch and is kept for err().
type loaderSource struct {
	l    *data.Loader
	fail *error
}

func (s loaderSource) NumBatches() int { return s.l.Len() }

func (s loaderSource) Batches(epoch int) iter.Seq2[*ts.Tensor, *ts.Tensor] {
	return func(yield func(*ts.Tensor, *ts.Tensor) bool) {
		for b, err := range s.l.Epoch(epoch) {
			if err != nil {
				*s.fail = err
				return
			}
			if !yield(b.Images, b.Labels) {
				return
			}
		}
	}
}

func (s loaderSource) err() error { return *s.fail }

func newSource(set *data.Set, o data.LoaderOptions) (loaderSource, error) {
	l, err := data.NewLoader(set, o)
	if err != nil {
		return loaderSource{}, err
	}
	return loaderSource{l: l, fail: new(error)}, nil
}

func (d *dataset) trainSource(dev gotch.Device, seed int64) (loaderSource, error) {
	return newSource(d.train, data.LoaderOptions{BatchSize: d.batch, Shuffle: true, Augment: d.augment,
		DropLast: d.train.N > d.batch, Seed: seed, Device: dev})
}

func (d *dataset) testSource(dev gotch.Device, batch int) (loaderSource, error) {
	return newSource(d.test, data.LoaderOptions{BatchSize: batch, Device: dev})
}

// env is what a technique stage sees of the run.
type env struct {
	r    *Runner
	node *plan.Node
}

var _ compress.Env = (*env)(nil)

func (e *env) Device() gotch.Device { return e.r.Device }
func (e *env) Seed() int64          { return e.node.Seed }

func (e *env) Logf(format string, args ...any) {
	fmt.Fprintf(e.r.Log, "  "+format+"\n", args...)
}

func (e *env) Calibration(ctx context.Context, n int) ([]*ts.Tensor, error) {
	ds, err := e.r.dataset(ctx, e.node.Model)
	if err != nil {
		return nil, err
	}
	set := ds.val
	if set == nil {
		set = ds.train
	}
	if n > set.N {
		n = set.N
	}
	sub, err := set.Subset(n, e.Seed())
	if err != nil {
		return nil, err
	}
	src, err := newSource(sub, data.LoaderOptions{BatchSize: min(n, 64), Device: e.r.Device})
	if err != nil {
		return nil, err
	}
	var out []*ts.Tensor
	for x, y := range src.Batches(0) {
		y.MustDrop()
		out = append(out, x)
	}
	return out, src.err()
}

func (e *env) Train(ctx context.Context, m *vit.Model, ft compress.Training) error {
	ds, err := e.r.dataset(ctx, e.node.Model)
	if err != nil {
		return err
	}
	rec := recipeOf(e.node.Model.Train)
	rec.Epochs = ft.Epochs
	rec.MaxSteps = 0
	rec.WarmupEpochs = 0
	if ft.LR > 0 {
		rec.LR = ft.LR
	}
	o := train.Options{AfterStep: ft.AfterStep}
	if ft.Loss != nil {
		o.Loss = ft.Loss
	}
	if ft.OneWorker {
		o.Workers, o.WorkerThreads = 1, e.r.workers*e.r.workerThreads
	}
	_, err = e.r.fit(ctx, "fine-tune "+e.node.Stage.Label, m, ds, e.node.Seed, rec, o)
	return err
}

func (e *env) Model(ctx context.Context, name string) (*vit.Model, error) {
	for _, ref := range e.node.Stage.References {
		if ref.Name == name {
			m, _, err := e.r.cache.load(ref.Hash, e.r.Device)
			return m, err
		}
	}
	return nil, fmt.Errorf("stage %s does not reference %q", e.node.Stage.Label, name)
}

// CheckData reports, before anything runs, the data sets of the plan's
// models that cannot be found on the search path a run would use (dirs
// first, then the suite's data dirs): a config.ErrorList naming each
// model's data key, so that a missing data set is bad input, not a
// failure of every experiment.
func CheckData(p *plan.Plan, dirs []string) error {
	need := map[string]bool{}
	for _, e := range p.Experiments {
		need[e.Model] = true
		if m := p.Suite.Model(e.Model); m != nil && m.Teacher != "" {
			need[strings.SplitN(m.Teacher, "/", 2)[0]] = true
		}
	}
	var errs config.ErrorList
	for _, m := range p.Suite.Models {
		if !need[m.Name] {
			continue
		}
		opts := data.Options{
			Dirs:          append(append([]string{}, dirs...), p.Suite.DataDirs...),
			SuiteDir:      filepath.Dir(p.Suite.File),
			NoDefaultDirs: m.Data.Name == "synthetic",
		}
		if err := data.Locate(dataName(m.Data), opts); err != nil {
			errs = append(errs, &config.Error{File: m.File, Line: m.Line, Key: "models." + m.Name + ".data", Msg: err.Error()})
		}
	}
	return errs.Err()
}
