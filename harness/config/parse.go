package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/vitbench/vitbench/techniques"
)

// ReadFile reads and checks the suite in path and the files it includes.
// Problems in the suite are returned as an ErrorList; failing to read path
// itself is returned wrapped.
func ReadFile(path string, opts Options) (*Suite, error) {
	src, err := readSuiteFile(path)
	if err != nil {
		return nil, fmt.Errorf("read suite: %w", err)
	}
	return parse(src, path, opts)
}

// MaxFileBytes bounds a suite file or an include: suites are text a
// person writes, and a device or a huge file would be read until memory
// runs out.
const MaxFileBytes = 4 << 20

// readSuiteFile reads a suite or included file, which must be a regular
// file of at most MaxFileBytes.
func readSuiteFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, st.Mode().Type())
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s is %d bytes; a suite file may have at most %d", path, st.Size(), MaxFileBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(src) > MaxFileBytes {
		return nil, fmt.Errorf("%s grew past %d bytes while read", path, MaxFileBytes)
	}
	return src, nil
}

// Parse reads and checks a suite from r. filename names it in errors and
// locates relative paths (includes, weights, data); included files are read
// from disk.
func Parse(r io.Reader, filename string, opts Options) (*Suite, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read suite %s: %w", filename, err)
	}
	return parse(src, filename, opts)
}

func parse(src []byte, filename string, opts Options) (*Suite, error) {
	l := &loader{
		opts: opts,
		suite: &Suite{
			File:     filename,
			CacheDir: defaultCacheDir,
			Measure:  DefaultMeasure(),
		},
		read:   map[string]bool{},
		models: map[string]*Model{},
		exps:   map[string]*Experiment{},
	}
	known := opts.KnownData
	if known == nil {
		known = builtinDataNames
	}
	l.knownData = slices.Sorted(slices.Values(known))
	l.file(src, filename, true)
	l.checkReferences()
	l.checkSeeds()
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	return l.suite, nil
}

// loader reads a suite and its includes, collecting errors.
type loader struct {
	opts      Options
	knownData []string
	suite     *Suite
	errs      ErrorList
	stack     []string        // files being read, outermost first
	stackAbs  []string        // the same, as absolute paths
	read      map[string]bool // absolute paths of the files read
	models    map[string]*Model
	exps      map[string]*Experiment
	refs      []reference
}

// reference is one name a model or experiment uses, checked once every
// file is read.
type reference struct {
	from string // "model NAME" or "experiment NAME"
	to   string
	what string // "model", "teacher" or "reference"
	at   *Error // where it is written; Msg unset
}

func (l *loader) file(src []byte, name string, top bool) {
	abs, err := filepath.Abs(name)
	if err != nil {
		abs = filepath.Clean(name)
	}
	l.stack = append(l.stack, name)
	l.stackAbs = append(l.stackAbs, abs)
	defer func() {
		l.stack = l.stack[:len(l.stack)-1]
		l.stackAbs = l.stackAbs[:len(l.stackAbs)-1]
	}()
	l.read[abs] = true
	l.suite.Files = append(l.suite.Files, name)

	var doc map[string]any
	if _, err := toml.Decode(string(src), &doc); err != nil {
		e := &Error{File: name, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// In a table header the parser's last key is the one before
			// (an unclosed [models.t would name the table above it): the
			// line and its text say where.
			e.Line, e.Msg = pe.Position.Line, pe.Message
			lines := strings.Split(string(src), "\n")
			text := func(n int) string {
				if n < 1 || n > len(lines) {
					return ""
				}
				return strings.TrimSpace(lines[n-1])
			}
			// An error found at a line's end ("got '\n'") is reported
			// on the next line: it belongs to the one it ends.
			if text(e.Line) == "" && text(e.Line-1) != "" {
				e.Line--
			}
			t := text(e.Line)
			if t != "" {
				e.Msg += fmt.Sprintf(" (in %q)", t)
			}
			if !strings.HasPrefix(t, "[") {
				e.Key = pe.LastKey // in a value: the key being read
			}
		}
		l.errs = append(l.errs, e)
		return
	}
	d := &fileDecoder{l: l, file: name, dir: filepath.Dir(name), lines: indexLines(string(src))}
	for _, k := range d.keys(nil, doc) {
		if k != "suite" && k != "models" && k != "experiment" {
			d.errorf(keyPath{}.key(k), "unknown key (known: experiment, models, suite)")
		}
	}
	var includes []string
	if v, ok := doc["suite"]; ok {
		includes = d.suiteTable(v, top)
	} else if top {
		d.l.errs = append(d.l.errs, &Error{File: name, Line: 1, Key: "suite", Msg: "missing [suite] table with the suite's name"})
	}
	for i, inc := range includes {
		if inc == "" {
			continue // reported by suiteTable
		}
		key := keyPath{"suite", "include"}
		if _, list := d.lines.line[key.index(0).String()]; list {
			key = key.index(i)
		}
		d.include(key, inc)
	}
	if v, ok := doc["models"]; ok {
		d.modelsTable(v)
	}
	if v, ok := doc["experiment"]; ok {
		d.experiments(v)
	}
}

// fileDecoder decodes one file of a suite.
type fileDecoder struct {
	l     *loader
	file  string
	dir   string
	lines *lineIndex
}

func (d *fileDecoder) errorf(p keyPath, format string, args ...any) {
	d.l.errs = append(d.l.errs, &Error{File: d.file, Line: d.lines.lineOf(p), Key: p.String(), Msg: fmt.Sprintf(format, args...)})
}

func (d *fileDecoder) at(p keyPath) *Error {
	return &Error{File: d.file, Line: d.lines.lineOf(p), Key: p.String()}
}

// path joins a relative path onto the folder of the file it is written in.
func (d *fileDecoder) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *fileDecoder) include(key keyPath, inc string) {
	p := d.path(inc)
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = filepath.Clean(p)
	}
	if i := slices.Index(d.l.stackAbs, abs); i >= 0 {
		chain := append(slices.Clone(d.l.stack[i:]), p)
		d.errorf(key, "include cycle: %s", strings.Join(chain, " -> "))
		return
	}
	if d.l.read[abs] {
		return // included already, by another file: once is enough
	}
	src, err := readSuiteFile(p)
	if err != nil {
		d.errorf(key, "include: %v", err)
		return
	}
	d.l.file(src, p, false)
}

// keys returns the keys of the table at p in the order they are written.
func (d *fileDecoder) keys(p keyPath, m map[string]any) []string {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b string) int {
		if oa, ob := d.lines.order(p.key(a)), d.lines.order(p.key(b)); oa != ob {
			return oa - ob
		}
		return strings.Compare(a, b)
	})
	return ks
}

// handlers decode the known keys of a table.
type handlers map[string]func(p keyPath, v any)

// walk calls the handler of every key of m and reports unknown keys.
func (d *fileDecoder) walk(p keyPath, m map[string]any, h handlers) {
	for _, k := range d.keys(p, m) {
		kp := p.key(k)
		if f, ok := h[k]; ok {
			f(kp, m[k])
		} else {
			d.errorf(kp, "unknown key (known: %s)", strings.Join(slices.Sorted(maps.Keys(h)), ", "))
		}
	}
}

func (d *fileDecoder) table(p keyPath, v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(p, "want a table, got %s", describe(v))
	}
	return m, ok
}

func (d *fileDecoder) str(p keyPath, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		d.errorf(p, "want a string, got %s", describe(v))
	}
	return s, ok
}

func (d *fileDecoder) integer(p keyPath, v any) (int, bool) {
	i, ok := v.(int64)
	if !ok {
		d.errorf(p, "want an integer, got %s", describe(v))
		return 0, false
	}
	if int64(int(i)) != i {
		d.errorf(p, "%d is out of range", i)
		return 0, false
	}
	return int(i), true
}

func (d *fileDecoder) number(p keyPath, v any) (float64, bool) {
	f, ok := toFloat(v)
	if !ok {
		d.errorf(p, "want a number, got %s", describe(v))
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(p, "want a finite number, got %g", f)
		return 0, false
	}
	return f, true
}

func (d *fileDecoder) boolean(p keyPath, v any) (bool, bool) {
	b, ok := v.(bool)
	if !ok {
		d.errorf(p, "want a boolean, got %s", describe(v))
	}
	return b, ok
}

// stringList accepts a string or an array of strings.
func (d *fileDecoder) stringList(p keyPath, v any) ([]string, bool) {
	if s, ok := v.(string); ok {
		return []string{s}, true
	}
	list, ok := v.([]any)
	if !ok {
		d.errorf(p, "want a string or an array of strings, got %s", describe(v))
		return nil, false
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		if s, ok := d.str(p.index(i), e); ok {
			out = append(out, s)
		}
	}
	return out, len(out) == len(list)
}

// Setters for walk, each recording whether its key was given.

func (d *fileDecoder) setString(dst *string, given *bool) func(keyPath, any) {
	return func(p keyPath, v any) {
		if s, ok := d.str(p, v); ok {
			*dst = s
			if given != nil {
				*given = true
			}
		}
	}
}

func (d *fileDecoder) setInt(dst *int, given *bool) func(keyPath, any) {
	return func(p keyPath, v any) {
		if i, ok := d.integer(p, v); ok {
			*dst = i
			if given != nil {
				*given = true
			}
		}
	}
}

func (d *fileDecoder) setIntPtr(dst **int) func(keyPath, any) {
	return func(p keyPath, v any) {
		if i, ok := d.integer(p, v); ok {
			*dst = &i
		}
	}
}

func (d *fileDecoder) setFloat(dst *float64, given *bool) func(keyPath, any) {
	return func(p keyPath, v any) {
		if f, ok := d.number(p, v); ok {
			*dst = f
			if given != nil {
				*given = true
			}
		}
	}
}

func (d *fileDecoder) setFloatPtr(dst **float64) func(keyPath, any) {
	return func(p keyPath, v any) {
		if f, ok := d.number(p, v); ok {
			*dst = &f
		}
	}
}

func (d *fileDecoder) setBoolPtr(dst **bool) func(keyPath, any) {
	return func(p keyPath, v any) {
		if b, ok := d.boolean(p, v); ok {
			*dst = &b
		}
	}
}

// check reports msg at p unless ok.
func (d *fileDecoder) check(ok bool, p keyPath, format string, args ...any) {
	if !ok {
		d.errorf(p, format, args...)
	}
}

func (d *fileDecoder) oneOf(p keyPath, v string, allowed ...string) {
	d.check(slices.Contains(allowed, v), p, "unknown value %q (want one of: %s)", v, strings.Join(allowed, ", "))
}

// validName reports whether a model or experiment name is safe in file
// names, URLs and generated experiment names.
func validName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '-' && r != '.') {
			return false
		}
	}
	return true
}

const nameRule = "letters, digits, '_', '-' and '.', starting with a letter or digit, at most 100"

// suiteTable decodes [suite] and returns the files it includes. The
// [suite] of an included file contributes only include and data_dir; its
// other keys are checked and ignored.
func (d *fileDecoder) suiteTable(v any, top bool) []string {
	p := keyPath{"suite"}
	m, ok := d.table(p, v)
	if !ok {
		return nil
	}
	var (
		name, description string
		haveName          bool
		seed              int64
		cacheDir          = defaultCacheDir
		measure           = DefaultMeasure()
		includes          []string
		slurm             Slurm
	)
	d.walk(p, m, handlers{
		"name":        d.setString(&name, &haveName),
		"description": d.setString(&description, nil),
		"seed": func(p keyPath, v any) {
			if i, ok := v.(int64); ok {
				seed = i
			} else {
				d.errorf(p, "want an integer, got %s", describe(v))
			}
		},
		"include": func(p keyPath, v any) {
			includes, _ = d.stringList(p, v)
		},
		"data_dir": func(p keyPath, v any) {
			dirs, _ := d.stringList(p, v)
			for _, dir := range dirs {
				d.l.suite.DataDirs = append(d.l.suite.DataDirs, d.path(dir))
			}
		},
		"cache_dir": func(p keyPath, v any) {
			if c, ok := d.str(p, v); ok {
				d.check(c != "", p, "must not be empty")
				cacheDir = c
			}
		},
		"measure": func(p keyPath, v any) { measure = d.measure(p, v) },
		"slurm":   func(p keyPath, v any) { slurm = d.slurm(p, v) },
	})
	if top {
		d.check(haveName && name != "", p.key("name"), "missing: the suite needs a name")
		s := d.l.suite
		s.Name, s.Description, s.Seed, s.CacheDir, s.Measure = name, description, seed, cacheDir, measure
		s.Slurm = slurm
	}
	for i, inc := range includes {
		d.check(inc != "", p.key("include").index(i), "empty file name")
	}
	return includes
}

// slurm decodes [suite.slurm], the sbatch options of `bench slurm`.
func (d *fileDecoder) slurm(p keyPath, v any) Slurm {
	var sl Slurm
	m, ok := d.table(p, v)
	if !ok {
		return sl
	}
	d.walk(p, m, handlers{
		"partition": d.setString(&sl.Partition, nil),
		"time":      d.setString(&sl.Time, nil),
		"cpus":      d.setInt(&sl.CPUs, nil),
		"mem":       d.setString(&sl.Mem, nil),
		"gres":      d.setString(&sl.Gres, nil),
		"account":   d.setString(&sl.Account, nil),
	})
	d.inRange(p.key("cpus"), sl.CPUs, 0, 4096)
	for key, val := range map[string]string{"partition": sl.Partition, "time": sl.Time, "mem": sl.Mem, "gres": sl.Gres, "account": sl.Account} {
		d.check(!strings.ContainsAny(val, " \t\n'\"$`\\;"), p.key(key), "%q: an sbatch value has no spaces, quotes or shell characters", val)
	}
	return sl
}

func (d *fileDecoder) measure(p keyPath, v any) Measure {
	ms := DefaultMeasure()
	m, ok := d.table(p, v)
	if !ok {
		return ms
	}
	d.walk(p, m, handlers{
		"latency_batch":    d.setInt(&ms.LatencyBatch, nil),
		"throughput_batch": d.setInt(&ms.ThroughputBatch, nil),
		"warmup":           d.setInt(&ms.Warmup, nil),
		"iters":            d.setInt(&ms.Iters, nil),
		"threads":          d.setInt(&ms.Threads, nil),
		"eval_batch":       d.setInt(&ms.EvalBatch, nil),
		"engine":           d.setString(&ms.Engine, nil),
		"int8_engine":      d.setString(&ms.Int8Engine, nil),
	})
	d.inRange(p.key("latency_batch"), ms.LatencyBatch, 1, MaxBatch)
	d.inRange(p.key("throughput_batch"), ms.ThroughputBatch, 1, MaxBatch)
	d.inRange(p.key("warmup"), ms.Warmup, 0, MaxIters)
	d.inRange(p.key("iters"), ms.Iters, 1, MaxIters)
	d.inRange(p.key("eval_batch"), ms.EvalBatch, 1, MaxBatch)
	d.inRange(p.key("threads"), ms.Threads, 0, 4096)
	d.check(slices.Contains(Engines, ms.Engine), p.key("engine"),
		"want %s, got %q", strings.Join(Engines, ", "), ms.Engine)
	d.check(ms.Int8Engine == Int8OneDNN || ms.Int8Engine == Int8None, p.key("int8_engine"),
		"want %q or %q, got %q", Int8OneDNN, Int8None, ms.Int8Engine)
	return ms
}

// declare records a model or experiment name, reporting duplicates.
func (d *fileDecoder) declare(p keyPath, kind, name string) bool {
	if !validName(name) {
		d.errorf(p, "invalid %s name %q: use %s characters", kind, name, nameRule)
		return false
	}
	if m, ok := d.l.models[name]; ok {
		d.errorf(p, "%q is already declared as a model at %s:%d", name, m.File, m.Line)
		return false
	}
	if e, ok := d.l.exps[name]; ok {
		d.errorf(p, "%q is already declared as an experiment at %s:%d", name, e.File, e.Line)
		return false
	}
	return true
}

func (d *fileDecoder) modelsTable(v any) {
	p := keyPath{"models"}
	m, ok := d.table(p, v)
	if !ok {
		return
	}
	for _, name := range d.keys(p, m) {
		mp := p.key(name)
		if !d.declare(mp, "model", name) {
			continue
		}
		if model := d.model(mp, name, m[name]); model != nil {
			d.l.models[name] = model
			d.l.suite.Models = append(d.l.suite.Models, model)
		}
	}
}

func (d *fileDecoder) model(p keyPath, name string, v any) *Model {
	m, ok := d.table(p, v)
	if !ok {
		return nil
	}
	model := &Model{Name: name, File: d.file, Line: d.lines.lineOf(p), Train: defaultTrain()}
	var haveArch, haveData, haveTrain bool
	d.walk(p, m, handlers{
		"description": d.setString(&model.Description, nil),
		"arch": func(p keyPath, v any) {
			model.Arch, haveArch = d.arch(p, v), true
		},
		"data": func(p keyPath, v any) {
			model.Data, haveData = d.data(p, v), true
		},
		"train": func(p keyPath, v any) {
			model.Train, haveTrain = d.train(p, v), true
		},
		"weights": func(p keyPath, v any) {
			if w, ok := d.str(p, v); ok {
				d.check(w != "", p, "empty file name")
				model.Weights = d.path(w)
			}
		},
		"teacher": func(p keyPath, v any) {
			if t, ok := d.str(p, v); ok {
				model.Teacher = t
				d.l.refs = append(d.l.refs, reference{from: "model " + name, to: t, what: "teacher", at: d.at(p)})
			}
		},
		"seeds": func(p keyPath, v any) { model.Seeds = d.seeds(p, v) },
		"timed_only": func(p keyPath, v any) {
			if b, ok := d.boolean(p, v); ok {
				model.TimedOnly = b
			}
		},
	})
	d.check(haveArch, p.key("arch"), "missing: name a registered architecture or give its shape")
	d.check(haveData, p.key("data"), "missing: name the data set")
	if model.Weights != "" {
		d.check(!haveTrain, p.key("train"), "a model with weights is loaded, not trained: drop train or weights")
		d.check(model.Teacher == "", p.key("teacher"), "a model with weights is loaded, not trained: drop teacher or weights")
		d.check(model.Seeds == nil, p.key("seeds"), "a model with weights is loaded, not trained: drop seeds or weights")
	}
	if haveArch && haveData {
		d.matchData(p, &model.Arch, model.Data)
	}
	if model.TimedOnly && model.Weights == "" {
		d.check(!haveTrain, p.key("train"), "a timed_only model without weights keeps its initialisation and is not trained: drop train or timed_only")
		d.check(model.Teacher == "", p.key("teacher"), "a timed_only model without weights is not trained: drop teacher or timed_only")
	}
	if haveArch && model.Weights == "" && !model.TimedOnly && d.l.opts.MemoryBytes > 0 {
		if need := model.Arch.trainingBytes(model.Train.BatchSize); need > d.l.opts.MemoryBytes {
			d.errorf(p.key("train").key("batch_size"), "training at batch %d needs about %s of memory, more than this machine's %s: lower batch_size or the model's size",
				model.Train.BatchSize, gib(need), gib(d.l.opts.MemoryBytes))
		}
	}
	return model
}

// inRange checks that an integer setting lies in [lo, hi].
func (d *fileDecoder) inRange(p keyPath, v, lo, hi int) {
	d.check(v >= lo && v <= hi, p, "must be in [%d, %d], got %d", lo, hi, v)
}

// arch decodes a registered name or an inline shape.
func (d *fileDecoder) arch(p keyPath, v any) ArchSpec {
	var a ArchSpec
	switch x := v.(type) {
	case string:
		a.Base = x
		d.checkBase(p, x)
		return a
	case map[string]any:
		d.walk(p, x, handlers{
			"base": func(p keyPath, v any) {
				if s, ok := d.str(p, v); ok {
					a.Base = s
					d.checkBase(p, s)
				}
			},
			"img_size":    d.setIntPtr(&a.ImgSize),
			"patch_size":  d.setIntPtr(&a.PatchSize),
			"in_chans":    d.setIntPtr(&a.InChans),
			"embed_dim":   d.setIntPtr(&a.EmbedDim),
			"depth":       d.setIntPtr(&a.Depth),
			"num_heads":   d.setIntPtr(&a.NumHeads),
			"num_classes": d.setIntPtr(&a.NumClasses),
			"mlp_ratio":   d.setFloatPtr(&a.MLPRatio),
			"distilled":   d.setBoolPtr(&a.Distilled),
			"qkv_bias":    d.setBoolPtr(&a.QKVBias),
		})
	default:
		d.errorf(p, "want a registered architecture name or a table, got %s", describe(v))
		return a
	}
	ints := []struct {
		key string
		v   *int
	}{
		{"img_size", a.ImgSize}, {"patch_size", a.PatchSize}, {"in_chans", a.InChans}, {"embed_dim", a.EmbedDim},
		{"depth", a.Depth}, {"num_heads", a.NumHeads}, {"num_classes", a.NumClasses},
	}
	for _, f := range ints {
		if f.v != nil {
			d.inRange(p.key(f.key), *f.v, 1, archMax[f.key])
		} else if a.Base == "" && f.key != "in_chans" && f.key != "num_classes" {
			d.errorf(p.key(f.key), "missing: an architecture without base needs img_size, patch_size, embed_dim, depth and num_heads")
		}
	}
	if a.MLPRatio != nil {
		d.check(*a.MLPRatio > 0, p.key("mlp_ratio"), "must be > 0, got %g", *a.MLPRatio)
	}
	if a.EmbedDim != nil && a.NumHeads != nil && *a.EmbedDim > 0 && *a.NumHeads > 0 {
		d.check(*a.EmbedDim%*a.NumHeads == 0, p.key("num_heads"), "embed_dim %d is not divisible by num_heads %d", *a.EmbedDim, *a.NumHeads)
	}
	if a.ImgSize != nil && a.PatchSize != nil && *a.ImgSize > 0 && *a.PatchSize > 0 {
		d.check(*a.ImgSize%*a.PatchSize == 0, p.key("patch_size"), "img_size %d is not divisible by patch_size %d", *a.ImgSize, *a.PatchSize)
	}
	return a
}

func (d *fileDecoder) checkBase(p keyPath, name string) {
	if name == "" {
		d.errorf(p, "empty architecture name")
		return
	}
	if d.l.opts.CheckArch != nil {
		if err := d.l.opts.CheckArch(name); err != nil {
			d.errorf(p, "%v", err)
		}
	}
}

// data decodes a data set name or table.
func (d *fileDecoder) data(p keyPath, v any) DataSpec {
	var ds DataSpec
	valGiven := false
	namep := p
	switch x := v.(type) {
	case string:
		ds.Name = x
	case map[string]any:
		namep = p.key("name")
		nameGiven := false
		var path string
		d.walk(p, x, handlers{
			"name":       d.setString(&ds.Name, &nameGiven),
			"path":       d.setString(&path, nil),
			"train_size": d.setInt(&ds.TrainSize, nil),
			"test_size":  d.setInt(&ds.TestSize, nil),
			"val_size":   d.setInt(&ds.ValSize, &valGiven),
			"img_size":   d.setInt(&ds.ImgSize, nil),
			"channels":   d.setInt(&ds.Channels, nil),
		})
		ds.Path = d.path(path)
		if !nameGiven {
			d.errorf(namep, "missing: name the data set (%s)", strings.Join(d.l.knownData, ", "))
			return ds
		}
	default:
		d.errorf(p, "want a data set name or a table, got %s", describe(v))
		return ds
	}
	if !slices.Contains(d.l.knownData, ds.Name) {
		d.errorf(namep, "unknown data set %q (known: %s)", ds.Name, strings.Join(d.l.knownData, ", "))
	}
	info := builtinData[ds.Name]
	if info.needsPath {
		d.check(ds.Path != "", p.key("path"), "missing: %s needs the path of a folder or tar(.gz) of <class>/<image> files", ds.Name)
	}
	d.check(ds.TrainSize >= 0, p.key("train_size"), "must be >= 0 (0 = all), got %d", ds.TrainSize)
	d.check(ds.TestSize >= 0, p.key("test_size"), "must be >= 0 (0 = all), got %d", ds.TestSize)
	if info.train > 0 {
		d.check(ds.TrainSize <= info.train, p.key("train_size"), "%s has %d training images, got %d", ds.Name, info.train, ds.TrainSize)
		d.check(ds.TestSize <= info.test, p.key("test_size"), "%s has %d test images, got %d", ds.Name, info.test, ds.TestSize)
	}
	n := ds.TrainSize
	if n == 0 {
		n = info.train
	}
	if !valGiven && n > 0 {
		ds.ValSize = min(defaultValSize, n/10)
	}
	d.check(ds.ValSize >= 0, p.key("val_size"), "must be >= 0, got %d", ds.ValSize)
	if n > 0 && ds.ValSize > 0 {
		d.check(ds.ValSize < n, p.key("val_size"), "carves %d validation images out of %d training images: none left to train on", ds.ValSize, n)
	}
	d.check(ds.ImgSize >= 0, p.key("img_size"), "must be > 0 (or left out for the native size), got %d", ds.ImgSize)
	d.check(ds.Channels == 0 || ds.Channels == 1 || ds.Channels == 3, p.key("channels"), "must be 1 or 3, got %d", ds.Channels)
	return ds
}

// matchData fills num_classes and in_chans from the data set where they
// are known and not given, and reports contradictions.
func (d *fileDecoder) matchData(p keyPath, a *ArchSpec, ds DataSpec) {
	ap := p.key("arch")
	if c := ds.classes(); c > 0 {
		if a.NumClasses == nil {
			a.NumClasses = &c
		} else {
			d.check(*a.NumClasses == c, ap.key("num_classes"), "%s has %d classes, not %d", ds.Name, c, *a.NumClasses)
		}
	}
	ch := ds.Channels
	if ch == 0 {
		ch = builtinData[ds.Name].channels
	}
	if ch > 0 {
		if a.InChans == nil {
			a.InChans = &ch
		} else {
			d.check(*a.InChans == ch, ap.key("in_chans"), "the data has %d channels, not %d", ch, *a.InChans)
		}
	}
	if a.ImgSize != nil && ds.ImgSize > 0 {
		d.check(*a.ImgSize == ds.ImgSize, p.key("data").key("img_size"), "images resized to %d do not fit the model's img_size %d", ds.ImgSize, *a.ImgSize)
	}
	native := builtinData[ds.Name].imgSize
	if ds.Name == "synthetic" {
		native = syntheticImgSize
	}
	if a.ImgSize != nil && ds.ImgSize == 0 && native > 0 {
		d.check(*a.ImgSize == native, ap.key("img_size"), "%s images are %dx%d, not %d: set the model's img_size to %d or resize them with data.img_size",
			ds.Name, native, native, *a.ImgSize, native)
	}
}

// syntheticImgSize is the side of synthetic images unless resized
// (package data's default).
const syntheticImgSize = 32

func (d *fileDecoder) train(p keyPath, v any) TrainSpec {
	t := defaultTrain()
	m, ok := d.table(p, v)
	if !ok {
		return t
	}
	var warmupGiven bool
	d.walk(p, m, handlers{
		"epochs":          d.setFloat(&t.Epochs, nil),
		"max_steps":       d.setInt(&t.MaxSteps, nil),
		"batch_size":      d.setInt(&t.BatchSize, nil),
		"lr":              d.setFloat(&t.LR, nil),
		"min_lr":          d.setFloat(&t.MinLR, nil),
		"weight_decay":    d.setFloat(&t.WeightDecay, nil),
		"optimizer":       d.setString(&t.Optimizer, nil),
		"momentum":        d.setFloat(&t.Momentum, nil),
		"schedule":        d.setString(&t.Schedule, nil),
		"warmup_epochs":   d.setFloat(&t.WarmupEpochs, &warmupGiven),
		"label_smoothing": d.setFloat(&t.LabelSmoothing, nil),
		"grad_clip":       d.setFloat(&t.GradClip, nil),
		"augment":         d.setString(&t.Augment, nil),
		"mixup":           d.setFloat(&t.Mixup, nil),
	})
	if !warmupGiven {
		t.WarmupEpochs = max(0, min(1, t.Epochs/10))
	}
	d.check(t.Epochs > 0, p.key("epochs"), "must be > 0, got %g", t.Epochs)
	d.check(t.MaxSteps >= 0, p.key("max_steps"), "must be >= 0 (0 = no cap), got %d", t.MaxSteps)
	d.inRange(p.key("batch_size"), t.BatchSize, 1, MaxBatch)
	d.check(t.LR > 0, p.key("lr"), "must be > 0, got %g", t.LR)
	d.check(t.MinLR >= 0, p.key("min_lr"), "must be >= 0, got %g", t.MinLR)
	if t.LR > 0 && t.MinLR >= 0 {
		d.check(t.MinLR <= t.LR, p.key("min_lr"), "min_lr %g is above lr %g", t.MinLR, t.LR)
	}
	d.check(t.WeightDecay >= 0, p.key("weight_decay"), "must be >= 0, got %g", t.WeightDecay)
	d.oneOf(p.key("optimizer"), t.Optimizer, "adamw", "adam", "sgd")
	d.check(t.Momentum >= 0 && t.Momentum < 1, p.key("momentum"), "must be in [0, 1), got %g", t.Momentum)
	d.oneOf(p.key("schedule"), t.Schedule, "cosine", "linear", "constant")
	d.check(t.WarmupEpochs >= 0, p.key("warmup_epochs"), "must be >= 0, got %g", t.WarmupEpochs)
	if t.Epochs > 0 && t.WarmupEpochs > 0 {
		d.check(t.WarmupEpochs <= t.Epochs, p.key("warmup_epochs"), "warm-up of %g epochs is longer than training (%g epochs)", t.WarmupEpochs, t.Epochs)
	}
	d.check(t.LabelSmoothing >= 0 && t.LabelSmoothing < 1, p.key("label_smoothing"), "must be in [0, 1), got %g", t.LabelSmoothing)
	d.check(t.GradClip >= 0, p.key("grad_clip"), "must be >= 0 (0 = off), got %g", t.GradClip)
	d.oneOf(p.key("augment"), t.Augment, "none", "flip", "crop-flip")
	d.check(t.Mixup >= 0, p.key("mixup"), "must be >= 0 (0 = off), got %g", t.Mixup)
	return t
}

// seeds decodes a list of seeds: distinct non-negative integers, at most
// MaxSeeds of them. It returns nil when the list is not valid.
func (d *fileDecoder) seeds(p keyPath, v any) []int64 {
	list, ok := v.([]any)
	if !ok {
		d.errorf(p, "want an array of integers (seeds = [0, 1, 2]), got %s", describe(v))
		return nil
	}
	if len(list) == 0 || len(list) > MaxSeeds {
		d.errorf(p, "want 1 to %d seeds, got %d", MaxSeeds, len(list))
		return nil
	}
	out := make([]int64, 0, len(list))
	at := map[int64]int{}
	for i, e := range list {
		ep := p.index(i)
		s, isInt := e.(int64)
		switch {
		case !isInt:
			d.errorf(ep, "want an integer seed, got %s", describe(e))
		case s < 0:
			d.errorf(ep, "a seed must be >= 0, got %d", s)
		default:
			if j, dup := at[s]; dup {
				d.errorf(ep, "seed %d is already given at %s", s, p.index(j))
				continue
			}
			at[s] = i
			out = append(out, s)
		}
	}
	if len(out) != len(list) {
		return nil
	}
	return out
}

// experiments decodes the [[experiment]] array.
func (d *fileDecoder) experiments(v any) {
	p := keyPath{"experiment"}
	var list []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		list = x
	case []any:
		for i, e := range x {
			m, ok := d.table(p.index(i), e)
			if !ok {
				return
			}
			list = append(list, m)
		}
	default:
		d.errorf(p, "want an array of tables (write [[experiment]]), got %s", describe(v))
		return
	}
	for i, m := range list {
		if e := d.experiment(p.index(i), m); e != nil {
			d.l.exps[e.Name] = e
			d.l.suite.Experiments = append(d.l.suite.Experiments, e)
		}
	}
}

func (d *fileDecoder) experiment(p keyPath, m map[string]any) *Experiment {
	e := &Experiment{File: d.file, Line: d.lines.lineOf(p), Key: p.String()}
	var haveName, haveModel bool
	var stages []any
	var stagesKey keyPath
	d.walk(p, m, handlers{
		"name":        d.setString(&e.Name, &haveName),
		"model":       d.setString(&e.Model, &haveModel),
		"description": d.setString(&e.Description, nil),
		"seeds": func(p keyPath, v any) {
			e.Seeds, e.seedsAt = d.seeds(p, v), d.at(p)
		},
		"pipeline": func(p keyPath, v any) {
			stagesKey = p
			switch x := v.(type) {
			case []any:
				stages = x
			case []map[string]any:
				for _, s := range x {
					stages = append(stages, s)
				}
			default:
				d.errorf(p, "want an array of stages ({technique = \"...\", ...}), got %s", describe(v))
			}
		},
	})
	ok := true
	if !haveName {
		d.errorf(p.key("name"), "missing: every experiment needs a name")
		ok = false
	} else if !d.declare(p.key("name"), "experiment", e.Name) {
		ok = false
	}
	if !haveModel {
		d.errorf(p.key("model"), "missing: name the model the experiment starts from")
	} else if ok {
		d.l.refs = append(d.l.refs, reference{from: "experiment " + e.Name, to: e.Model, what: "model", at: d.at(p.key("model"))})
	}
	for j, sv := range stages {
		sp := stagesKey.index(j)
		sm, isTable := d.table(sp, sv)
		if !isTable {
			continue
		}
		if st, refs := d.stage(sp, sm); st != nil {
			e.Stages = append(e.Stages, *st)
			if ok {
				for _, r := range refs {
					r.from = "experiment " + e.Name
					d.l.refs = append(d.l.refs, r)
				}
			}
		}
	}
	if !ok {
		return nil
	}
	return e
}

// stage decodes one pipeline stage, checks its parameters against the
// technique's Config for every grid point, and returns the names its
// Configs reference.
func (d *fileDecoder) stage(p keyPath, m map[string]any) (*Stage, []reference) {
	st := &Stage{File: d.file, Line: d.lines.lineOf(p), Key: p.String()}
	tv, ok := m["technique"]
	if !ok {
		d.errorf(p.key("technique"), "missing: name the technique (registered: %s)", strings.Join(techniques.Names(), ", "))
		return nil, nil
	}
	name, ok := d.str(p.key("technique"), tv)
	if !ok {
		return nil, nil
	}
	tech, err := techniques.Lookup(name)
	if err != nil {
		d.errorf(p.key("technique"), "%v", err)
		return nil, nil
	}
	st.Technique, st.Family, st.tech = tech.Name, tech.Family, tech
	var types map[string]reflect.Type
	if rv := reflect.ValueOf(tech.NewConfig()); rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Struct {
		types = map[string]reflect.Type{}
		for _, f := range configFields(rv.Elem().Type()) {
			types[f.key] = f.typ
		}
	}
	for _, k := range d.keys(p, m) {
		if k == "technique" {
			continue
		}
		kp := p.key(k)
		prm := Param{Key: k, Value: m[k], Line: d.lines.lineOf(kp)}
		if t, ok := types[k]; ok && sweptValue(t, prm.Value) {
			prm.Swept = true
			for i := range prm.Value.([]any) {
				prm.elemLines = append(prm.elemLines, d.lines.lineOf(kp.index(i)))
			}
		}
		st.Params = append(st.Params, prm)
	}
	points, errs := st.expand()
	d.l.errs = append(d.l.errs, errs...)
	if len(errs) > 0 {
		return nil, nil
	}
	var refs []reference
	seen := map[string]bool{}
	for _, pt := range points {
		r, ok := pt.Config.(Referencer)
		if !ok {
			continue
		}
		for _, name := range r.References() {
			if seen[name] {
				continue
			}
			seen[name] = true
			at, what := d.referenceAt(st, name)
			refs = append(refs, reference{to: name, what: what, at: at})
		}
	}
	return st, refs
}

// referenceAt finds the parameter that names a reference, for its line,
// and returns where it is and the parameter's key ("reference" when no
// parameter holds the name as written).
func (d *fileDecoder) referenceAt(st *Stage, name string) (*Error, string) {
	for _, prm := range st.Params {
		vals := []any{prm.Value}
		if list, ok := prm.Value.([]any); ok {
			vals = list
		}
		for i, v := range vals {
			if v != name {
				continue
			}
			key, line := st.Key+"."+renderKey(prm.Key), prm.Line
			if prm.Swept && i < len(prm.elemLines) {
				key, line = fmt.Sprintf("%s[%d]", key, i), prm.elemLines[i]
			}
			return &Error{File: st.File, Line: line, Key: key}, prm.Key
		}
	}
	return &Error{File: st.File, Line: st.Line, Key: st.Key}, "reference"
}
