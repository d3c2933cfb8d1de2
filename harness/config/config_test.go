package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseString(t *testing.T, src string, opts Options) (*Suite, error) {
	t.Helper()
	return Parse(strings.NewReader(src), "suite.toml", opts)
}

const validSuite = `
[suite]
name = "cifar"
seed = 7
description = "a test suite"
data_dir = "data"

[suite.measure]
threads = 2
iters = 20

[models.vit]
arch = { img_size = 32, patch_size = 4, embed_dim = 192, depth = 6, num_heads = 3 }
data = { name = "cifar10", train_size = 2000, test_size = 500 }
train = { epochs = 2, lr = 5e-4, batch_size = 64 }

[models.deit]
arch = "deit_tiny_patch16_224"
data = "cifar10"
weights = "ckpt/deit.pth"

[[experiment]]
name = "ptq"
model = "vit"
pipeline = [
  { technique = "fq", weight_bits = [8, 6, 4], act_bits = [8, 4],
    calibrator = ["minmax", "omse"] },
]

[[experiment]]
name = "kd"
model = "vit"
description = "prune, then distill from deit"
pipeline = [
  { technique = "fp", amount = 0.25, layers = [[0, 1], [2]] },
  { technique = "fd", teacher = "deit" },
]

[[experiment]]
name = "plain"
model = "deit"
`

func TestParseValid(t *testing.T) {
	var checked []string
	opts := Options{CheckArch: func(name string) error { checked = append(checked, name); return nil }}
	s, err := Parse(strings.NewReader(validSuite), "dir/suite.toml", opts)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("Name", s.Name, "cifar")
	check("Seed", s.Seed, int64(7))
	check("Files", s.Files, []string{"dir/suite.toml"})
	check("DataDirs", s.DataDirs, []string{filepath.Join("dir", "data")})
	check("CacheDir", s.CacheDir, defaultCacheDir)
	wantMeasure := DefaultMeasure()
	wantMeasure.Threads, wantMeasure.Iters = 2, 20
	check("Measure", s.Measure, wantMeasure)
	check("checked archs", checked, []string{"deit_tiny_patch16_224"})

	if len(s.Models) != 2 || s.Models[0].Name != "vit" || s.Models[1].Name != "deit" {
		t.Fatalf("models not in declaration order: %+v", s.Models)
	}
	vit := s.Model("vit")
	wantTrain := defaultTrain()
	wantTrain.Epochs, wantTrain.LR, wantTrain.BatchSize, wantTrain.WarmupEpochs = 2, 5e-4, 64, 0.2
	check("vit.Train", vit.Train, wantTrain)
	check("vit.Data", vit.Data, DataSpec{Name: "cifar10", TrainSize: 2000, TestSize: 500, ValSize: 200})
	check("vit.Arch.EmbedDim", *vit.Arch.EmbedDim, 192)
	check("vit.Arch.NumClasses (from data)", *vit.Arch.NumClasses, 10)
	check("vit.Arch.InChans (from data)", *vit.Arch.InChans, 3)
	check("vit.Arch.MLPRatio", vit.Arch.MLPRatio, (*float64)(nil))
	check("vit.Line", vit.Line, 12)
	deit := s.Model("deit")
	check("deit.Arch.Base", deit.Arch.Base, "deit_tiny_patch16_224")
	check("deit.Weights", deit.Weights, filepath.Join("dir", "ckpt", "deit.pth"))
	check("deit.Data.ValSize", deit.Data.ValSize, 5000)
	check("deit TrainImages", deit.Data.TrainImages(), 45000)

	if len(s.Experiments) != 3 {
		t.Fatalf("got %d experiments, want 3", len(s.Experiments))
	}
	ptq := s.Experiment("ptq")
	check("ptq.Key", ptq.Key, "experiment[0]")
	check("ptq.Line", ptq.Line, 22)
	st := ptq.Stages[0]
	check("stage family", st.Family, "quantize")
	check("stage key", st.Key, "experiment[0].pipeline[0]")
	check("stage line", st.Line, 26)
	var keys []string
	for _, p := range st.Params {
		keys = append(keys, fmt.Sprintf("%s@%d swept=%t", p.Key, p.Line, p.Swept))
	}
	check("params", keys, []string{"weight_bits@26 swept=true", "act_bits@26 swept=true", "calibrator@27 swept=true"})
	kd := s.Experiment("kd")
	check("layers swept (list of lists for a slice field)", kd.Stages[0].Params[1].Swept, true)
	check("plain stages", len(s.Experiment("plain").Stages), 0)
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name   string
		stage  string
		points int
		first  string // the first point's swept values
		last   string
	}{
		{"no sweep", `{ technique = "fq", weight_bits = 4 }`, 1, "", ""},
		{"one list", `{ technique = "fq", weight_bits = [8, 6, 4] }`, 3, "weight_bits=8", "weight_bits=4"},
		{"product in written order", `{ technique = "fq", calibrator = ["minmax", "omse"], weight_bits = [8, 6, 4], act_bits = [8, 4] }`, 12,
			"calibrator=minmax, weight_bits=8, act_bits=8", "calibrator=omse, weight_bits=4, act_bits=4"},
		{"flat list for a slice field is one value", `{ technique = "fq", groups = ["qkv", "proj"] }`, 1, "", ""},
		{"list of lists for a slice field sweeps", `{ technique = "fq", groups = [["qkv"], ["qkv", "fc1"], []] }`, 3, "groups=[qkv]", "groups=[]"},
		{"bools and floats sweep", `{ technique = "fq", per_channel = [true, false], percentile = [99, 99.9] }`, 4,
			"per_channel=true, percentile=99", "per_channel=false, percentile=99.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "[suite]\nname = \"x\"\n[models.m]\narch = \"a\"\ndata = \"cifar10\"\n[[experiment]]\nname = \"e\"\nmodel = \"m\"\npipeline = [" + tt.stage + "]\n"
			s, err := parseString(t, src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			pts, err := s.Experiments[0].Stages[0].Expand()
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != tt.points {
				t.Fatalf("got %d points, want %d", len(pts), tt.points)
			}
			if got := describeSwept(pts[0].Swept); got != tt.first {
				t.Errorf("first point %q, want %q", got, tt.first)
			}
			if got := describeSwept(pts[len(pts)-1].Swept); got != tt.last {
				t.Errorf("last point %q, want %q", got, tt.last)
			}
			for _, p := range pts {
				if err := p.Config.Validate(); err != nil {
					t.Errorf("point %v does not validate: %v", p.Swept, err)
				}
			}
		})
	}
}

func TestExpandSetsFields(t *testing.T) {
	src := "[suite]\nname = \"x\"\n[models.m]\narch = \"a\"\ndata = \"cifar10\"\n[[experiment]]\nname = \"e\"\nmodel = \"m\"\npipeline = [{ technique = \"fq\", weight_bits = [4, 6], groups = [\"qkv\"], percentile = 99 }]\n"
	s, err := parseString(t, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Experiments[0].Stages[0].Expand()
	if err != nil {
		t.Fatal(err)
	}
	want := []*fakeQuant{
		{WeightBits: 4, ActBits: 8, Calibrator: "minmax", Percentile: 99, Groups: []string{"qkv"}},
		{WeightBits: 6, ActBits: 8, Calibrator: "minmax", Percentile: 99, Groups: []string{"qkv"}},
	}
	for i, p := range pts {
		if !reflect.DeepEqual(p.Config, want[i]) {
			t.Errorf("point %d = %+v, want %+v", i, p.Config, want[i])
		}
	}
	got := Settings(pts[0].Config)
	wantSettings := []Setting{{"weight_bits", 4}, {"act_bits", 8}, {"calibrator", "minmax"}, {"per_channel", false}, {"percentile", 99.0}, {"groups", []string{"qkv"}}}
	if !reflect.DeepEqual(got, wantSettings) {
		t.Errorf("Settings = %v, want %v", got, wantSettings)
	}
}

// base is a valid suite that error cases extend; its last line is 10.
const base = `[suite]
name = "x"
[models.m]
arch = { img_size = 32, patch_size = 4, embed_dim = 64, depth = 2, num_heads = 2 }
data = "cifar10"
[models.big]
arch = "deit_small_patch16_224"
data = "cifar10"
[[experiment]]
name = "ok"
model = "m"
`

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts Options
		want []string // "line: key: message fragment", in order
	}{
		{"syntax error", base + "x = [1,\n2 3]\n", Options{}, []string{"13: experiment.x: expected a comma"}},
		{"unknown top-level key", base + "[modle]\n", Options{}, []string{"12: modle: unknown key"}},
		{"unknown suite key", strings.Replace(base, "name = \"x\"", "name = \"x\"\nsed = 1", 1), Options{}, []string{"3: suite.sed: unknown key (known: cache_dir, data_dir"}},
		{"missing suite name", "[suite]\nseed = 1\n", Options{}, []string{"1: suite.name: missing"}},
		{"no suite table", "[models.m]\narch = \"a\"\ndata = \"cifar10\"\n", Options{}, []string{"1: suite: missing [suite]"}},
		{"unknown model key", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrian = { epochs = 1 }\n", Options{}, []string{"15: models.c.trian: unknown key"}},
		{"unknown train key in table", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\n[models.c.train]\nepochs = 1\nwarmup = 2\n", Options{}, []string{"17: models.c.train.warmup: unknown key"}},
		{"wrong type", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { epochs = \"ten\" }\n", Options{}, []string{`15: models.c.train.epochs: want a number, got string "ten"`}},
		{"int where float fine, float where int wrong", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { epochs = 1, batch_size = 64.0 }\n", Options{}, []string{"15: models.c.train.batch_size: want an integer, got float 64"}},
		{"out of range train", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\n[models.c.train]\nepochs = 0\nlr = -1\nlabel_smoothing = 1.0\nbatch_size = 0\noptimizer = \"lion\"\nschedule = \"step\"\naugment = \"cutmix\"\ngrad_clip = -1\n", Options{},
			[]string{"16: models.c.train.epochs: must be > 0", "17: models.c.train.lr: must be > 0", "18: models.c.train.label_smoothing: must be in [0, 1)", "19: models.c.train.batch_size: must be in [1, 65536], got 0",
				`20: models.c.train.optimizer: unknown value "lion"`, `21: models.c.train.schedule: unknown value "step"`, `22: models.c.train.augment: unknown value "cutmix"`, "23: models.c.train.grad_clip: must be >= 0"}},
		{"nan", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { lr = nan }\n", Options{}, []string{"15: models.c.train.lr: want a finite number"}},
		{"warmup longer than training", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { epochs = 1, warmup_epochs = 2 }\n", Options{}, []string{"15: models.c.train.warmup_epochs: warm-up of 2 epochs"}},
		{"min_lr above lr", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { lr = 1e-4, min_lr = 1e-3 }\n", Options{}, []string{"15: models.c.train.min_lr: min_lr 0.001 is above lr"}},
		{"data errors", base + "[models.c]\narch = \"a\"\n[models.c.data]\nname = \"cifar10\"\nval_size = -1\ntrain_size = 60000\nchannels = 2\n", Options{},
			[]string{"16: models.c.data.val_size: must be >= 0", "17: models.c.data.train_size: cifar10 has 50000 training images", "18: models.c.data.channels: must be 1 or 3"}},
		{"unknown data set", base + "[models.c]\narch = \"a\"\ndata = \"imagenet\"\n", Options{}, []string{`14: models.c.data: unknown data set "imagenet"`}},
		{"caller's data sets", base + "[models.c]\narch = \"a\"\ndata = { name = \"svhn\" }\n", Options{KnownData: []string{"cifar10"}}, []string{`14: models.c.data.name: unknown data set "svhn" (known: cifar10)`}},
		{"imagefolder needs path", base + "[models.c]\narch = \"a\"\ndata = { name = \"imagefolder\" }\n", Options{}, []string{"14: models.c.data.path: missing"}},
		{"val_size eats the training set", base + "[models.c]\narch = \"a\"\ndata = { name = \"cifar10\", train_size = 100, val_size = 100 }\n", Options{}, []string{"14: models.c.data.val_size: carves 100 validation images out of 100"}},
		{"arch without base needs the shape", base + "[models.c]\narch = { embed_dim = 64, depth = 2, num_heads = 3 }\ndata = \"cifar10\"\n", Options{},
			[]string{"13: models.c.arch.img_size: missing", "13: models.c.arch.num_heads: embed_dim 64 is not divisible by num_heads 3", "13: models.c.arch.patch_size: missing"}},
		{"arch ranges", base + "[models.c]\narch = { base = \"b\", depth = 0, img_size = 30, patch_size = 4, mlp_ratio = -1.0 }\ndata = \"cifar10\"\n", Options{},
			[]string{"13: models.c.arch.depth: must be in [1, 256], got 0", "13: models.c.arch.img_size: cifar10 images are 32x32, not 30", "13: models.c.arch.mlp_ratio: must be > 0", "13: models.c.arch.patch_size: img_size 30 is not divisible by patch_size 4"}},
		{"arch registry", base, Options{CheckArch: func(name string) error { return fmt.Errorf("unknown architecture %q", name) }}, []string{`7: models.big.arch: unknown architecture "deit_small_patch16_224"`}},
		{"num_classes against the data", base + "[models.c]\narch = { base = \"b\", num_classes = 1000 }\ndata = \"cifar10\"\n", Options{}, []string{"13: models.c.arch.num_classes: cifar10 has 10 classes, not 1000"}},
		{"weights and train", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\nweights = \"w.pth\"\ntrain = { epochs = 1 }\n", Options{}, []string{"16: models.c.train: a model with weights is loaded, not trained"}},
		{"timed_only with train", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntimed_only = true\ntrain = { epochs = 1 }\n", Options{}, []string{"16: models.c.train: a timed_only model without weights keeps its initialisation and is not trained"}},
		{"timed_only with teacher", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntimed_only = true\nteacher = \"m\"\n", Options{}, []string{"16: models.c.teacher: a timed_only model without weights is not trained"}},
		{"timed_only not a boolean", base + "[models.c]\narch = \"a\"\ndata = \"cifar10\"\ntimed_only = \"yes\"\n", Options{}, []string{`15: models.c.timed_only: want a boolean, got string "yes"`}},
		{"bad model name", base + "[models.\"my model\"]\narch = \"a\"\ndata = \"cifar10\"\n", Options{}, []string{`12: models."my model": invalid model name`}},
		{"undeclared model", base + "[[experiment]]\nname = \"e\"\nmodel = \"vit\"\n", Options{}, []string{`14: experiment[1].model: no model named "vit" (declared: m, big)`}},
		{"missing experiment keys", base + "[[experiment]]\ndescription = \"d\"\n", Options{}, []string{"12: experiment[1].model: missing", "12: experiment[1].name: missing"}},
		{"duplicate experiment", base + "[[experiment]]\nname = \"ok\"\nmodel = \"m\"\n", Options{}, []string{`13: experiment[1].name: "ok" is already declared as an experiment at suite.toml:9`}},
		{"experiment named like a model", base + "[[experiment]]\nname = \"m\"\nmodel = \"m\"\n", Options{}, []string{`13: experiment[1].name: "m" is already declared as a model at suite.toml:3`}},
		{"experiment as a table", strings.TrimSuffix(base, "[[experiment]]\nname = \"ok\"\nmodel = \"m\"\n") + "[experiment]\nname = \"e\"\n", Options{}, []string{"9: experiment: want an array of tables"}},
		{"unknown technique", base + "pipeline = [{ technique = \"quantise\" }]\n", Options{}, []string{`12: experiment[0].pipeline[0].technique: unknown technique "quantise" (registered: distill, fd, fp, fq, lowrank, prune, quantize)`}},
		// The fine-tune block's keys replaced older spellings; each old key
		// names its replacement, at its own line.
		{"renamed fine-tune keys", base + "pipeline = [\n  { technique = \"quantize\", qat_epochs = 1 },\n  { technique = \"distill\", teacher = \"m\",\n    epochs = 1, temperature = 2.0, alpha = 0.3, kind = \"hard\" },\n  { technique = \"prune\", temperature = 2.0 },\n]\n", Options{},
			[]string{
				"13: experiment[0].pipeline[0].qat_epochs: renamed: technique quantize now spells it finetune_epochs",
				"15: experiment[0].pipeline[1].alpha: renamed: technique distill now spells it kd_alpha",
				"15: experiment[0].pipeline[1].epochs: renamed: technique distill now spells it finetune_epochs",
				"15: experiment[0].pipeline[1].kind: renamed: technique distill now spells it kd_kind",
				"15: experiment[0].pipeline[1].temperature: renamed: technique distill now spells it kd_temperature",
				"16: experiment[0].pipeline[2].temperature: renamed: technique prune now spells it kd_temperature",
			}},
		{"missing technique", base + "pipeline = [{ weight_bits = 8 }]\n", Options{}, []string{"12: experiment[0].pipeline[0].technique: missing"}},
		{"unknown parameter", base + "pipeline = [\n  { technique = \"fq\",\n    weight_bit = 8 },\n]\n", Options{}, []string{"14: experiment[0].pipeline[0].weight_bit: unknown parameter of technique fq (known: weight_bits, act_bits"}},
		{"parameter wrong type", base + "pipeline = [{ technique = \"fq\", weight_bits = \"8\" }]\n", Options{}, []string{`12: experiment[0].pipeline[0].weight_bits: want an integer, got string "8"`}},
		{"swept element wrong type, at its line", base + "pipeline = [{ technique = \"fq\", weight_bits = [\n  8,\n  4.5,\n] }]\n", Options{}, []string{"14: experiment[0].pipeline[0].weight_bits[1]: want an integer, got float 4.5"}},
		{"slice element wrong type", base + "pipeline = [{ technique = \"fp\", layers = [1, \"two\"] }]\n", Options{}, []string{`12: experiment[0].pipeline[0].layers: element 1: want an integer, got string "two"`}},
		{"empty sweep", base + "pipeline = [{ technique = \"fq\", weight_bits = [] }]\n", Options{}, []string{"12: experiment[0].pipeline[0].weight_bits: empty list"}},
		{"Validate at the stage line", base + "pipeline = [\n  { technique = \"fp\", amount = 1.5 },\n]\n", Options{}, []string{"13: experiment[0].pipeline[0]: amount must be in [0, 1), got 1.5"}},
		{"Validate per grid point, grouped", base + "pipeline = [{ technique = \"fq\", weight_bits = [1, 8, 0], act_bits = [8, 4] }]\n", Options{},
			[]string{"12: experiment[0].pipeline[0]: at 2 grid points, first with weight_bits=1, act_bits=8: weight_bits must be in 2..8, got 1",
				"12: experiment[0].pipeline[0]: at 2 grid points, first with weight_bits=0, act_bits=8: weight_bits must be in 2..8, got 0"}},
		{"stage in [[experiment.pipeline]]", base + "[[experiment.pipeline]]\ntechnique = \"fq\"\ncalibrator = \"kl\"\n", Options{}, []string{`12: experiment[0].pipeline[0]: unknown calibrator "kl"`}},
		{"undeclared teacher", base + "pipeline = [{ technique = \"fd\", teacher = \"vit_b\" }]\n", Options{}, []string{`12: experiment[0].pipeline[0].teacher: teacher "vit_b" names no declared model or experiment`}},
		{"undeclared model teacher", base + "[models.s]\narch = \"a\"\ndata = \"cifar10\"\nteacher = \"nope\"\n", Options{}, []string{`15: models.s.teacher: teacher "nope" names no declared model or experiment`}},
		{"experiment cycle", base + "[[experiment]]\nname = \"a\"\nmodel = \"m\"\npipeline = [{ technique = \"fd\", teacher = \"b\" }]\n[[experiment]]\nname = \"b\"\nmodel = \"m\"\npipeline = [{ technique = \"fd\", teacher = \"a/x\" }]\n", Options{},
			[]string{"19: experiment[2].pipeline[0].teacher: reference cycle: experiment a -> experiment b -> experiment a"}},
		{"swept references, each at its line", base + "pipeline = [{ technique = \"fd\", teacher = [\"m\",\n  \"nope\"] }]\n", Options{}, []string{`13: experiment[0].pipeline[0].teacher[1]: teacher "nope" names no declared model`}},
		{"self reference", base + "pipeline = [{ technique = \"fd\", teacher = \"ok\" }]\n", Options{}, []string{"12: experiment[0].pipeline[0].teacher: reference cycle: experiment ok -> experiment ok"}},
		{"model teacher cycle through an experiment", base + "[models.s]\narch = \"a\"\ndata = \"cifar10\"\nteacher = \"kd\"\n[[experiment]]\nname = \"kd\"\nmodel = \"s\"\n", Options{},
			[]string{"18: experiment[1].model: reference cycle: model s -> experiment kd -> model s"}},
		{"several errors in one pass", base + "[models.c]\narch = \"a\"\ndata = \"cifar\"\ntrain = { epochs = -1, lr = \"x\" }\n[[experiment]]\nname = \"ok\"\nmodel = \"zz\"\npipeline = [{ technique = \"fq\", weight_bits = 9 }]\n", Options{},
			[]string{`14: models.c.data: unknown data set "cifar"`, "15: models.c.train.epochs: must be > 0", `15: models.c.train.lr: want a number`,
				`17: experiment[1].name: "ok" is already declared`, "19: experiment[1].pipeline[0]: weight_bits must be in 2..8, got 9"}},
		{"measure ranges", strings.Replace(base, "name = \"x\"", "name = \"x\"\nmeasure = { iters = 0, threads = -1, latency_batch = \"1\" }", 1), Options{},
			[]string{"3: suite.measure.iters: must be in [1, 1000000], got 0", `3: suite.measure.latency_batch: want an integer, got string "1"`, "3: suite.measure.threads: must be in [0, 4096], got -1"}},
		{"measure engine", strings.Replace(base, "name = \"x\"", "name = \"x\"\nmeasure = { engine = \"fast\" }", 1), Options{},
			[]string{`3: suite.measure.engine: want auto, split, eager, got "fast"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, tt.src, tt.opts)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T %v is not an ErrorList", err, err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, e := range list {
				if e.File != "suite.toml" {
					t.Errorf("error %d: file %q", i, e.File)
				}
				got := fmt.Sprintf("%d: %s: %s", e.Line, e.Key, e.Msg)
				if !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "a.toml", Line: 3, Key: "models.m.train.lr", Msg: "must be > 0"}, "a.toml:3: models.m.train.lr: must be > 0"},
		{&Error{File: "a.toml", Msg: "bad"}, "a.toml: bad"},
		{&Error{File: "a.toml", Line: 1, Msg: "bad"}, "a.toml:1: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	l := ErrorList{tests[0].err, tests[1].err, tests[1].err}.Err()
	if got, want := l.Error(), "a.toml: bad\na.toml:3: models.m.train.lr: must be > 0"; got != want {
		t.Errorf("list = %q, want %q (sorted, deduplicated)", got, want)
	}
	var e *Error
	if !errors.As(l, &e) || e.Msg != "bad" {
		t.Errorf("errors.As found %v", e)
	}
	if (ErrorList{}).Err() != nil {
		t.Error("an empty list is not nil")
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestInclude(t *testing.T) {
	const models = "[models.m]\narch = \"a\"\ndata = \"cifar10\"\nweights = \"w/m.pth\"\n"
	t.Run("contributes models, experiments and data dirs", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"top.toml":        "[suite]\nname = \"top\"\ninclude = [\"sub/models.toml\", \"sub/more.toml\"]\n[[experiment]]\nname = \"e\"\nmodel = \"m\"\n",
			"sub/models.toml": "[suite]\nname = \"ignored\"\nseed = 9\ndata_dir = \"d\"\n" + models,
			"sub/more.toml":   "[suite]\ninclude = \"models.toml\"\n[[experiment]]\nname = \"f\"\nmodel = \"m\"\n",
		})
		s, err := ReadFile(filepath.Join(dir, "top.toml"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != "top" || s.Seed != 0 {
			t.Errorf("suite %q seed %d: an included [suite] must not override", s.Name, s.Seed)
		}
		wantFiles := []string{filepath.Join(dir, "top.toml"), filepath.Join(dir, "sub/models.toml"), filepath.Join(dir, "sub/more.toml")}
		if !reflect.DeepEqual(s.Files, wantFiles) {
			t.Errorf("Files = %v, want %v (models.toml read once)", s.Files, wantFiles)
		}
		if got := s.Model("m").Weights; got != filepath.Join(dir, "sub/w/m.pth") {
			t.Errorf("weights %q not relative to the included file", got)
		}
		if !reflect.DeepEqual(s.DataDirs, []string{filepath.Join(dir, "sub/d")}) {
			t.Errorf("DataDirs = %v", s.DataDirs)
		}
		if len(s.Experiments) != 2 || s.Experiments[0].Name != "f" || s.Experiments[1].Name != "e" {
			t.Errorf("experiments: %v", s.Experiments)
		}
	})
	tests := []struct {
		name  string
		files map[string]string
		want  []string // "file:line: key: message fragment"
	}{
		{"cycle", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = [\"a.toml\"]\n",
			"a.toml":   "[suite]\ninclude = [\"b.toml\"]\n",
			"b.toml":   "[suite]\ninclude = [\"a.toml\"]\n",
		}, []string{"b.toml:2: suite.include[0]: include cycle: TMP/a.toml -> TMP/b.toml -> TMP/a.toml"}},
		{"self include", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = \"top.toml\"\n",
		}, []string{"top.toml:3: suite.include: include cycle: TMP/top.toml -> TMP/top.toml"}},
		{"duplicates across files", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = [\"a.toml\"]\n" + models + "[[experiment]]\nname = \"e\"\nmodel = \"m\"\n",
			"a.toml":   models + "[[experiment]]\nname = \"e\"\nmodel = \"m\"\n",
		}, []string{"top.toml:4: models.m: \"m\" is already declared as a model at TMP/a.toml:1", "top.toml:9: experiment[0].name: \"e\" is already declared as an experiment at TMP/a.toml:5"}},
		{"missing file", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = [\"a.toml\",\n  \"nope.toml\"]\n",
			"a.toml":   "",
		}, []string{"top.toml:4: suite.include[1]: include: stat TMP/nope.toml: no such file"}},
		{"errors of an included file name it", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = [\"a.toml\"]\n",
			"a.toml":   "[models.m]\narch = \"a\"\ndata = \"cifar10\"\ntrain = { epochs = 0 }\n",
		}, []string{"a.toml:4: models.m.train.epochs: must be > 0"}},
		{"syntax error in an include", map[string]string{
			"top.toml": "[suite]\nname = \"top\"\ninclude = [\"a.toml\"]\n",
			"a.toml":   "\n\n[models.m\n",
		}, []string{"a.toml:3: expected '.' or ']' to end table name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := ReadFile(filepath.Join(dir, "top.toml"), Options{})
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("got %v, want an ErrorList", err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, e := range list {
				got := strings.ReplaceAll(e.Error(), dir, "TMP")
				if want := "TMP/" + tt.want[i]; !strings.HasPrefix(got, want) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, got, want)
				}
			}
		})
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "none.toml"), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a wrapped not-exist error", err)
	}
}

func TestMeasureEngine(t *testing.T) {
	for _, tt := range []struct{ line, want string }{
		{"", EngineAuto},
		{"engine = \"auto\"\n", EngineAuto},
		{"engine = \"split\"\n", EngineSplit},
		{"engine = \"eager\"\n", EngineEager},
	} {
		src := strings.Replace(validSuite, "iters = 20\n", "iters = 20\n"+tt.line, 1)
		s, err := parseString(t, src, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if s.Measure.Engine != tt.want {
			t.Errorf("%q: engine %q, want %q", tt.line, s.Measure.Engine, tt.want)
		}
	}
}

func TestSeeds(t *testing.T) {
	// seeded extends base: model s with seeds, experiment e on it.
	seeded := base + "[models.s]\narch = \"a\"\ndata = \"cifar10\"\nseeds = [0, 1, 2]\n[[experiment]]\nname = \"e\"\nmodel = \"s\"\n"
	valid := []struct {
		name      string
		src       string
		model     string
		modelWant []int64
		exp       string
		expWant   []int64
	}{
		{"none", base, "m", nil, "ok", nil},
		{"on a model", seeded, "s", []int64{0, 1, 2}, "e", nil},
		{"on an experiment", base + "seeds = [3, 1]\n", "m", nil, "ok", []int64{3, 1}},
		{"experiment within the model's", seeded + "seeds = [2, 0]\n", "s", []int64{0, 1, 2}, "e", []int64{2, 0}},
		{"one seed", base + "seeds = [5]\n", "m", nil, "ok", []int64{5}},
		{"32 seeds", base + "seeds = [" + seedList(32) + "]\n", "m", nil, "ok", seedRange(32)},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseString(t, tt.src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Model(tt.model).Seeds; !reflect.DeepEqual(got, tt.modelWant) {
				t.Errorf("model %s seeds = %v, want %v", tt.model, got, tt.modelWant)
			}
			if got := s.Experiment(tt.exp).Seeds; !reflect.DeepEqual(got, tt.expWant) {
				t.Errorf("experiment %s seeds = %v, want %v", tt.exp, got, tt.expWant)
			}
		})
	}

	invalid := []struct {
		name string
		src  string
		want []string // "line: key: message fragment", in order
	}{
		{"not a list", base + "seeds = 3\n", []string{"12: experiment[0].seeds: want an array of integers"}},
		{"empty", base + "seeds = []\n", []string{"12: experiment[0].seeds: want 1 to 32 seeds, got 0"}},
		{"too many", base + "seeds = [" + seedList(33) + "]\n", []string{"12: experiment[0].seeds: want 1 to 32 seeds, got 33"}},
		{"negative, at its line", base + "seeds = [\n  0,\n  -1,\n]\n", []string{"14: experiment[0].seeds[1]: a seed must be >= 0, got -1"}},
		{"duplicate", base + "seeds = [1, 2, 1]\n", []string{"12: experiment[0].seeds[2]: seed 1 is already given at experiment[0].seeds[0]"}},
		{"not an integer", base + "seeds = [1, 2.5, \"3\"]\n", []string{"12: experiment[0].seeds[1]: want an integer seed, got float 2.5", `12: experiment[0].seeds[2]: want an integer seed, got string "3"`}},
		{"on a model", base + "[models.s]\narch = \"a\"\ndata = \"cifar10\"\nseeds = [0, 0]\n", []string{"15: models.s.seeds[1]: seed 0 is already given"}},
		{"on a loaded model", base + "[models.s]\narch = \"a\"\ndata = \"cifar10\"\nweights = \"w.pth\"\nseeds = [0, 1]\n", []string{"16: models.s.seeds: a model with weights is loaded, not trained: drop seeds or weights"}},
		{"experiment seed the model lacks", seeded + "seeds = [1, 7]\n", []string{"19: experiment[1].seeds: seed 7 is not one of model s's seeds [0 1 2]"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, tt.src, Options{})
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v is not an ErrorList", err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, e := range list {
				if got := fmt.Sprintf("%d: %s: %s", e.Line, e.Key, e.Msg); !strings.HasPrefix(got, tt.want[i]) || e.File != "suite.toml" {
					t.Errorf("error %d:\n got %s: %s\nwant suite.toml: %s...", i, e.File, got, tt.want[i])
				}
			}
		})
	}
}

func seedRange(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

func seedList(n int) string {
	var parts []string
	for _, s := range seedRange(n) {
		parts = append(parts, fmt.Sprint(s))
	}
	return strings.Join(parts, ", ")
}
