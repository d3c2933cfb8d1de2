// Package plan turns a checked suite (package config) into the work to do:
// the concrete experiments of every grid, and the artifacts they need,
// each keyed by a content hash.
//
// An artifact is a trained or loaded model (a model node) or the output of
// one pipeline stage applied to an upstream artifact (a stage node). Its
// hash covers everything that determines it, so experiments that share a
// prefix (the baseline, a teacher, a pruned model that several experiments
// quantize) share nodes, which are computed once and cached across runs.
// Plan.Nodes lists each artifact once, in an order that builds every
// artifact after its inputs; the runner walks it and skips what is cached.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/techniques"
)

// Kind says how a node's artifact is made.
type Kind string

const (
	KindTrain Kind = "train" // a model trained from scratch (possibly distilled from a teacher)
	KindLoad  Kind = "load"  // a model loaded from a checkpoint
	KindInit  Kind = "init"  // a timed-only model left at its seeded initialisation
	KindStage Kind = "stage" // a pipeline stage applied to its upstream artifact
)

// Plan is the resolved work of a suite.
type Plan struct {
	Suite       *config.Suite
	CodeVersion string
	// Nodes holds every artifact once, inputs (upstream artifacts and
	// teachers) before the nodes that use them.
	Nodes []*Node
	// Experiments are ordered so that each comes after the experiments it
	// depends on: each model's baseline first (unless the model trains
	// from an experiment's teacher), then the suite's experiments in
	// declaration order, grids in expansion order.
	Experiments []*Experiment
}

// Node is one artifact.
type Node struct {
	Hash        string        // hex SHA-256 of its canonical spec
	Kind        Kind          //
	Model       *config.Model // the model the chain starts from
	Stage       *Stage        // the stage that makes it; nil for model nodes
	Upstream    string        // stage nodes: the hash of the artifact the stage transforms
	Needs       []string      // hashes of the teachers it is distilled from
	Experiments []string      // names of the experiments whose pipelines pass through it
	Spec        string        // the canonical JSON that was hashed
	// Seed seeds what is random in making the artifact: a model's
	// initialisation and training order, a stage's calibration subset and
	// fine-tuning order. Data subsets and splits keep the suite's seed, so
	// every seed trains and tests on the same images.
	Seed int64
}

// Stage is one resolved pipeline stage.
type Stage struct {
	Technique  string
	Family     string
	Config     techniques.Config // decoded and validated
	ConfigJSON string            // canonical JSON of the parameters, sorted keys
	Label      string            // e.g. "quantize(weight_bits=4, calibrator=omse)": the parameters that differ from the defaults
	References []Reference       // the models and experiments its Config names
	Hash       string            // the hash of its output artifact
}

// Reference is a model or experiment a stage or model names, with the
// hash of its artifact.
type Reference struct {
	Name string `json:"name"`
	Hash string `json:"hash"`
}

// Swept is the value one swept parameter takes in an experiment.
type Swept struct {
	Stage     int // index in the pipeline
	Technique string
	Key       string
	Value     any // as TOML decoded it
}

// Setting is one resolved parameter of one stage of an experiment: every
// parameter of the stage's technique Config (config.Settings), defaults
// included, not only the ones the suite wrote.
type Setting struct {
	// Name is the parameter's flat key, unique within the experiment (see
	// settingName): "quantize.weight_bits", "quantize#2.weight_bits".
	Name      string
	Stage     int // index in the pipeline
	Technique string
	Key       string // the parameter's name in the technique's Config
	Value     string // config.FormatValue of the resolved value
	Swept     bool   // chosen by the experiment's grid (the key was a list of alternatives)
}

// settingName is the flat key of a stage parameter: "technique.key" for
// the first stage of a technique in the pipeline (occurrence 1), and
// "technique#N.key" for its Nth, so that "quantize.weight_bits" names the
// weight width of an experiment's first quantize stage whatever precedes
// it, and a key stays the same when stages of other techniques are added
// or removed around it.
func settingName(technique string, occurrence int, key string) string {
	if occurrence > 1 {
		return fmt.Sprintf("%s#%d.%s", technique, occurrence, key)
	}
	return technique + "." + key
}

// Experiment is one concrete experiment: a baseline model and a pipeline
// with every parameter fixed.
type Experiment struct {
	Name        string // e.g. "ptq/w8-a4-omse"; a baseline is named after its model
	Group       string // the [[experiment]] it expanded from; the model for baselines
	Model       string
	Baseline    string // the model whose baseline experiment its relative metrics use
	IsBaseline  bool   // the implicit experiment that measures the model itself
	Description string
	Stages      []*Stage
	Swept       []Swept           // the swept parameters, in pipeline order
	Params      map[string]string // the swept parameters as text, for sweep curves; keys are "key", or "technique.key" where a key is swept in several stages
	Settings    []Setting         // every parameter of every stage, defaults included, in pipeline and field order; nil for baselines
	Nodes       []string          // hashes: the model node, then one per stage
	Pipeline    string            // labels joined by " → "; "baseline" for an empty pipeline
	Families    []string          // technique families in pipeline order
	File        string
	Line        int
	// Seed is the seed of the experiment's model and stages (see Node.Seed):
	// one of its seeds, or the suite's seed.
	Seed int64
	// Replica is the name the experiment's seed replicas share: its name
	// without the seed part ("ptq/w8" for "ptq/w8-seed1"); its name when it
	// has one seed.
	Replica string
}

// Hash returns the hash of the experiment's final artifact.
func (e *Experiment) Hash() string { return e.Nodes[len(e.Nodes)-1] }

// SpecJSON returns the experiment's full resolved spec as canonical JSON:
// its model (architecture, data, recipe or weights) and every stage.
func (e *Experiment) SpecJSON(p *Plan) ([]byte, error) {
	m := p.Suite.Model(e.Model)
	if m == nil {
		return nil, fmt.Errorf("spec of %s: no model %q", e.Name, e.Model)
	}
	type stageSpec struct {
		Technique  string          `json:"technique"`
		Config     json.RawMessage `json:"config"`
		References []Reference     `json:"references,omitempty"`
		Hash       string          `json:"hash"`
	}
	spec := struct {
		Name     string      `json:"name"`
		Group    string      `json:"group"`
		Seed     int64       `json:"seed"`
		Model    any         `json:"model"`
		Pipeline []stageSpec `json:"pipeline"`
		Hash     string      `json:"hash"`
	}{Name: e.Name, Group: e.Group, Seed: e.Seed, Model: modelSpec(m), Pipeline: []stageSpec{}, Hash: e.Hash()}
	if m.Teacher != "" {
		spec.Model.(map[string]any)["teacher"] = m.Teacher
	}
	for _, s := range e.Stages {
		spec.Pipeline = append(spec.Pipeline, stageSpec{s.Technique, json.RawMessage(s.ConfigJSON), s.References, s.Hash})
	}
	return canonicalJSON(spec)
}

// Build resolves a suite: it expands every experiment's grid, adds one
// baseline experiment per model, decodes every stage, and hashes every
// artifact. codeVersion (e.g. the git commit) goes into every model hash,
// so a code change invalidates the cache. Build stats weights files; it
// reads nothing else. Problems the user must fix in the suite (a missing
// checkpoint, an ambiguous reference to a grid) are a config.ErrorList.
func Build(s *config.Suite, codeVersion string) (*Plan, error) {
	return BuildLimit(s, codeVersion, DefaultMaxExperiments)
}

// DefaultMaxExperiments bounds the experiments a whole suite expands into
// (config.MaxGrid bounds each [[experiment]]): a few sweeps of thousands
// of points each would otherwise be accepted and exhaust the memory of
// the planner before anything runs.
const DefaultMaxExperiments = 2000

// BuildLimit is Build with a bound on the experiments the suite's grids
// expand into, baselines not counted.
func BuildLimit(s *config.Suite, codeVersion string, maxExperiments int) (*Plan, error) {
	b := &builder{
		maxExperiments: maxExperiments,
		suite:          s,
		code:           codeVersion,
		models:         map[string][]seeded{},
		groups:         map[string][]*Experiment{},
		byName:         map[string]*Experiment{},
		nodes:          map[string]*Node{},
		busy:           map[string]bool{},
	}
	for _, m := range s.Models {
		b.model(m.Name)
	}
	for _, e := range s.Experiments {
		b.group(e.Name)
	}
	if err := b.errs.Err(); err != nil {
		return nil, err
	}
	p := &Plan{Suite: s, CodeVersion: codeVersion, Experiments: b.exps}
	p.Nodes = order(p.Experiments, b.nodes)
	return p, nil
}

type builder struct {
	suite          *config.Suite
	code           string
	maxExperiments int                      // bound on the grids' experiments, all groups together
	expanded       int                      // experiments the grids expanded into so far
	models         map[string][]seeded      // model name -> its nodes, one per seed (nil when it failed)
	groups         map[string][]*Experiment // experiment group -> its experiments (nil when it failed)
	byName         map[string]*Experiment
	nodes          map[string]*Node
	busy           map[string]bool // being resolved: guards against cycles config missed
	exps           []*Experiment
	errs           config.ErrorList
}

func (b *builder) fail(file string, line int, key, format string, args ...any) {
	b.errs = append(b.errs, &config.Error{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// seeded is one seed's artifact of a model.
type seeded struct {
	seed int64
	hash string
}

// seedsOf returns the seeds a model is trained with: its own, or the
// suite's.
func (b *builder) seedsOf(m *config.Model) []int64 {
	if m.Seeds != nil {
		return m.Seeds
	}
	return []int64{b.suite.Seed}
}

// withSeed names the replica of seed seed of an experiment named name, as
// a grid names its points: "ptq/seed1", "ptq/w8-seed1".
func withSeed(name string, seed int64) string {
	sep := "/"
	if strings.Contains(name, "/") {
		sep = "-"
	}
	return name + sep + "seed" + strconv.FormatInt(seed, 10)
}

// model resolves a model's nodes, one per seed, and emits its baseline
// experiments.
func (b *builder) model(name string) ([]seeded, bool) {
	m := b.suite.Model(name)
	if m == nil {
		return nil, false
	}
	if b.busy["model "+name] {
		b.fail(m.File, m.Line, modelKey(name), "reference cycle through model %s", name)
		return nil, false
	}
	if reps, ok := b.models[name]; ok {
		return reps, reps != nil
	}
	b.busy["model "+name] = true
	defer delete(b.busy, "model "+name)
	b.models[name] = nil

	seeds := b.seedsOf(m)
	var reps []seeded
	var exps []*Experiment
	for _, seed := range seeds {
		h, ok := b.modelSeed(m, seed)
		if !ok {
			return nil, false
		}
		reps = append(reps, seeded{seed, h})
		e := &Experiment{
			Name: name, Group: name, Model: name, Baseline: name, IsBaseline: true,
			Description: m.Description, Params: map[string]string{}, Nodes: []string{h},
			Pipeline: "baseline", File: m.File, Line: m.Line, Seed: seed, Replica: name,
		}
		if len(seeds) > 1 {
			e.Name = withSeed(name, seed)
			e.Baseline = e.Name
		}
		exps = append(exps, e)
	}
	b.models[name] = reps
	for _, e := range exps {
		b.exps = append(b.exps, e)
		b.byName[e.Name] = e
	}
	return reps, true
}

// modelSeed resolves the node of a model trained with seed.
func (b *builder) modelSeed(m *config.Model, seed int64) (string, bool) {
	name := m.Name
	spec := map[string]any{
		"kind": "model",
		"seed": seed,
		"code": b.code,
	}
	for k, v := range modelSpec(m) {
		spec[k] = v // weights, a path, is replaced below
	}
	node := &Node{Kind: KindTrain, Model: m, Seed: seed}
	if untrained(m) {
		node.Kind = KindInit
	}
	if m.Weights != "" {
		node.Kind = KindLoad
		fi, err := os.Stat(m.Weights)
		if err != nil {
			b.fail(m.File, m.Line, modelKey(name)+".weights", "%v", err)
			return "", false
		}
		if err := checkCheckpoint(m.Weights, fi); err != nil {
			b.fail(m.File, m.Line, modelKey(name)+".weights", "%v", err)
			return "", false
		}
		// The file's name, size and time stand for its content: hashing
		// a large checkpoint's bytes at every plan would cost seconds.
		spec["weights"] = map[string]any{"name": filepath.Base(m.Weights), "size": fi.Size(), "mtime": fi.ModTime().UnixNano()}
	}
	if m.Teacher != "" {
		h, ok := b.reference(m.Teacher, seed, m.File, m.Line, modelKey(name)+".teacher")
		if !ok || !b.checkTeacher(h, m.Teacher, m.File, m.Line, modelKey(name)+".teacher") {
			return "", false
		}
		spec["teacher"] = h
		node.Needs = []string{h}
	}
	h, js, err := hashSpec(spec)
	if err != nil {
		b.fail(m.File, m.Line, modelKey(name), "hash: %v", err)
		return "", false
	}
	node.Hash, node.Spec = h, js
	b.add(node)
	return h, true
}

// modelKey names a model's table in errors, as config does.
func modelKey(name string) string {
	if strings.Contains(name, ".") {
		return "models." + strconv.Quote(name)
	}
	return "models." + name
}

// modelSpec is what determines a model's artifact besides seed and code.
// The test subset is not part of it: it decides which images are
// evaluated, not the weights, so evaluating on more of them reuses the
// trained model.
func modelSpec(m *config.Model) map[string]any {
	d := m.Data
	d.TestSize = 0
	spec := map[string]any{"arch": m.Arch, "data": d}
	switch {
	case m.Weights != "":
		spec["weights"] = m.Weights
	case m.TimedOnly:
		spec["init"] = true
	default:
		spec["train"] = m.Train
	}
	return spec
}

// untrained reports whether m's artifact is its initialisation: a
// timed-only model without weights, which can teach nothing and whose
// stages have nothing to learn from.
func untrained(m *config.Model) bool { return m.TimedOnly && m.Weights == "" }

// checkTeacher fails a reference that would learn from an untrained model.
func (b *builder) checkTeacher(h, name, file string, line int, key string) bool {
	if n := b.nodes[h]; n != nil && untrained(n.Model) {
		b.fail(file, line, key, "%s starts from %s, which is timed_only and untrained: it has nothing to teach", name, n.Model.Name)
		return false
	}
	return true
}

// reference resolves a name a model or stage uses to its artifact's hash:
// a model, an experiment that did not expand into a grid, or one
// experiment of a grid by its generated name. Where the name stands for
// seed replicas (a model with seeds, an experiment with seeds, a grid
// point named without its seed), the replica of the user's seed is meant:
// a student trained with seed 1 learns from the teacher trained with
// seed 1.
func (b *builder) reference(name string, seed int64, file string, line int, key string) (string, bool) {
	group, _, isGridName := strings.Cut(name, "/")
	if b.suite.Model(group) != nil {
		reps, ok := b.model(group)
		if !ok {
			return "", false
		}
		if isGridName {
			if e := b.byName[name]; e != nil && e.Group == group {
				return e.Hash(), true
			}
			b.fail(file, line, key, "no model %q: %s is trained with seeds %v (name them %s)", name, group, b.seedsOf(b.suite.Model(group)), withSeed(group, reps[0].seed))
			return "", false
		}
		if len(reps) == 1 {
			return reps[0].hash, true
		}
		for _, r := range reps {
			if r.seed == seed {
				return r.hash, true
			}
		}
		b.fail(file, line, key, "model %s is trained with seeds %v, not with seed %d: name one, e.g. %q", name, b.seedsOf(b.suite.Model(group)), seed, withSeed(name, reps[0].seed))
		return "", false
	}
	exps, ok := b.group(group)
	if !ok {
		if b.suite.Experiment(group) == nil {
			b.fail(file, line, key, "%q names no declared model or experiment", name)
		}
		return "", false
	}
	if isGridName {
		if e := b.byName[name]; e != nil && e.Group == group {
			return e.Hash(), true
		}
	}
	// The experiments the name stands for: the whole group, or the seed
	// replicas of one grid point; of several replicas, the user's seed.
	var cands []*Experiment
	for _, e := range exps {
		if !isGridName || e.Replica == name {
			cands = append(cands, e)
		}
	}
	if isGridName && len(cands) == 0 {
		b.fail(file, line, key, "no experiment %q: %s expands to %s", name, group, names(exps, 6))
		return "", false
	}
	if len(cands) > 1 && sameReplica(cands) {
		for _, e := range cands {
			if e.Seed == seed {
				return e.Hash(), true
			}
		}
		b.fail(file, line, key, "%q is run with seeds %s, not with seed %d: name one of them", name, names(cands, 6), seed)
		return "", false
	}
	if len(cands) != 1 {
		b.fail(file, line, key, "%q expands into %d experiments; name one of them: %s", name, len(cands), names(cands, 6))
		return "", false
	}
	return cands[0].Hash(), true
}

// sameReplica reports whether exps are the seed replicas of one experiment.
func sameReplica(exps []*Experiment) bool {
	for _, e := range exps {
		if e.Replica != exps[0].Replica {
			return false
		}
	}
	return true
}

func names(exps []*Experiment, max int) string {
	var out []string
	for i, e := range exps {
		if i == max {
			out = append(out, fmt.Sprintf("... (%d in all)", len(exps)))
			break
		}
		out = append(out, e.Name)
	}
	return strings.Join(out, ", ")
}

// group expands one [[experiment]] into its concrete experiments.
func (b *builder) group(name string) ([]*Experiment, bool) {
	ce := b.suite.Experiment(name)
	if ce == nil {
		return nil, false
	}
	if b.busy["experiment "+name] {
		b.fail(ce.File, ce.Line, ce.Key, "reference cycle through experiment %s", name)
		return nil, false
	}
	if exps, ok := b.groups[name]; ok {
		return exps, exps != nil
	}
	b.busy["experiment "+name] = true
	defer delete(b.busy, "experiment "+name)
	b.groups[name] = nil

	reps, ok := b.model(ce.Model)
	if !ok {
		return nil, false
	}
	// The seeds and the model artifact each starts from: an experiment's
	// seeds reuse the model's artifact of the same seed when the model has
	// seeds, and its single artifact when it has not.
	seeds := ce.Seeds
	if seeds == nil {
		for _, r := range reps {
			seeds = append(seeds, r.seed)
		}
	}
	roots := make([]string, len(seeds))
	for k, seed := range seeds {
		if len(reps) == 1 && b.suite.Model(ce.Model).Seeds == nil {
			roots[k] = reps[0].hash
			continue
		}
		for _, r := range reps {
			if r.seed == seed {
				roots[k] = r.hash
			}
		}
		if roots[k] == "" {
			b.fail(ce.File, ce.Line, ce.Key+".seeds", "seed %d is not one of model %s's seeds %v", seed, ce.Model, b.seedsOf(b.suite.Model(ce.Model)))
			return nil, false
		}
	}
	// One list of decoded points per stage; the grid is their product.
	points := make([][]config.Point, len(ce.Stages))
	size := 1
	for i := range ce.Stages {
		pts, err := ce.Stages[i].Expand()
		if err != nil {
			b.errs = append(b.errs, asErrorList(err, ce.Stages[i])...)
			return nil, false
		}
		points[i] = pts
		if size *= len(pts); size > config.MaxGrid {
			b.fail(ce.File, ce.Line, ce.Key, "the pipeline expands into more than %d experiments", config.MaxGrid)
			return nil, false
		}
	}
	if size*len(seeds) > config.MaxGrid {
		b.fail(ce.File, ce.Line, ce.Key, "the pipeline expands into more than %d experiments (%d grid points, %d seeds)", config.MaxGrid, size, len(seeds))
		return nil, false
	}
	if b.expanded+size*len(seeds) > b.maxExperiments {
		b.fail(ce.File, ce.Line, ce.Key, "the suite expands into more than %d experiments (this one adds %d to the %d before it); raise the limit with --max-experiments if that is meant",
			b.maxExperiments, size*len(seeds), b.expanded)
		return nil, false
	}
	b.expanded += size * len(seeds)
	// bySeed[k] is the grid at seeds[k]; a grid point's replicas follow
	// each other in exps.
	bySeed := make([][]*Experiment, len(seeds))
	var exps []*Experiment
	at := make([]int, len(points))
	for range size {
		for k, seed := range seeds {
			e, ok := b.experiment(ce, roots[k], seed, points, at)
			if !ok {
				return nil, false
			}
			bySeed[k] = append(bySeed[k], e)
			exps = append(exps, e)
		}
		for i := len(at) - 1; i >= 0; i-- {
			if at[i]++; at[i] < len(points[i]) {
				break
			}
			at[i] = 0
		}
	}
	nameGrid(ce.Name, bySeed[0])
	for g := range bySeed[0] {
		replica := bySeed[0][g].Name
		for k := range seeds {
			e := bySeed[k][g]
			e.Name, e.Replica = replica, replica
			if len(seeds) > 1 {
				e.Name = withSeed(replica, seeds[k])
			}
		}
	}
	for _, e := range exps {
		b.byName[e.Name] = e
	}
	b.exps = append(b.exps, exps...)
	b.groups[name] = exps
	return exps, true
}

func asErrorList(err error, st config.Stage) config.ErrorList {
	var list config.ErrorList
	if errors.As(err, &list) {
		return list
	}
	return config.ErrorList{{File: st.File, Line: st.Line, Key: st.Key, Msg: err.Error()}}
}

// experiment builds the experiment at one grid point (at indexes points).
func (b *builder) experiment(ce *config.Experiment, root string, seed int64, points [][]config.Point, at []int) (*Experiment, bool) {
	e := &Experiment{
		Group: ce.Name, Model: ce.Model, Baseline: ce.Model, Description: ce.Description,
		Params: map[string]string{}, Nodes: []string{root}, File: ce.File, Line: ce.Line, Seed: seed,
	}
	if m := b.suite.Model(ce.Model); m.Seeds != nil && len(m.Seeds) > 1 {
		e.Baseline = withSeed(ce.Model, seed) // its own seed's baseline
	}
	upstream := root
	var labels []string
	occurrence := map[string]int{}
	for i, st := range ce.Stages {
		pt := points[i][at[i]]
		stage, ok := b.stage(st, pt.Config, upstream, seed)
		if !ok {
			return nil, false
		}
		swept := map[string]bool{}
		for _, sw := range pt.Swept {
			e.Swept = append(e.Swept, Swept{Stage: i, Technique: st.Technique, Key: sw.Key, Value: sw.Value})
			swept[sw.Key] = true
		}
		occurrence[st.Technique]++
		for _, s := range config.Settings(pt.Config) {
			e.Settings = append(e.Settings, Setting{
				Name:  settingName(st.Technique, occurrence[st.Technique], s.Key),
				Stage: i, Technique: st.Technique, Key: s.Key,
				Value: config.FormatValue(s.Value), Swept: swept[s.Key],
			})
		}
		e.Stages = append(e.Stages, stage)
		e.Nodes = append(e.Nodes, stage.Hash)
		e.Families = append(e.Families, stage.Family)
		labels = append(labels, stage.Label)
		upstream = stage.Hash
	}
	e.Pipeline = strings.Join(labels, " → ")
	if len(labels) == 0 {
		e.Pipeline = "baseline"
	}
	e.Params = paramText(e.Swept)
	return e, true
}

// stage resolves one stage applied to the artifact upstream.
func (b *builder) stage(st config.Stage, cfg techniques.Config, upstream string, seed int64) (*Stage, bool) {
	tech, err := techniques.Lookup(st.Technique)
	if err != nil {
		b.fail(st.File, st.Line, st.Key, "%v", err)
		return nil, false
	}
	params := map[string]any{}
	for _, s := range config.Settings(cfg) {
		params[s.Key] = s.Value
	}
	cj, err := canonicalJSON(params)
	if err != nil {
		b.fail(st.File, st.Line, st.Key, "encode parameters: %v", err)
		return nil, false
	}
	out := &Stage{
		Technique:  st.Technique,
		Family:     tech.Family,
		Config:     cfg,
		ConfigJSON: string(cj),
		Label:      label(st.Technique, cfg, resolvedDefaults(tech)),
	}
	node := &Node{Kind: KindStage, Stage: out, Upstream: upstream, Seed: seed}
	node.Model = b.nodes[upstream].Model
	if tr, ok := cfg.(techniques.Trainer); ok && untrained(node.Model) && tr.TrainingEpochs() > 0 {
		b.fail(st.File, st.Line, st.Key, "model %s is timed_only and untrained: this stage trains for %g epochs with nothing to learn from; set finetune_epochs = 0 and choose settings that learn nothing",
			node.Model.Name, tr.TrainingEpochs())
		return nil, false
	}
	refHashes := []string{}
	if r, ok := cfg.(config.Referencer); ok {
		for _, name := range r.References() {
			h, ok := b.reference(name, seed, st.File, st.Line, st.Key)
			if !ok || !b.checkTeacher(h, name, st.File, st.Line, st.Key) {
				return nil, false
			}
			out.References = append(out.References, Reference{Name: name, Hash: h})
			refHashes = append(refHashes, h)
			node.Needs = append(node.Needs, h)
		}
	}
	spec := map[string]any{
		"kind":       "stage",
		"upstream":   upstream,
		"technique":  st.Technique,
		"config":     json.RawMessage(cj),
		"references": refHashes,
	}
	if seed != b.suite.Seed {
		// Only another seed is hashed, so that the artifacts of suites
		// without seeds keep the hashes they were cached under.
		spec["seed"] = seed
	}
	h, js, err := hashSpec(spec)
	if err != nil {
		b.fail(st.File, st.Line, st.Key, "hash: %v", err)
		return nil, false
	}
	out.Hash, node.Hash, node.Spec = h, h, js
	b.add(node)
	return out, true
}

// add records a node unless one with its hash exists.
func (b *builder) add(n *Node) {
	if _, ok := b.nodes[n.Hash]; !ok {
		b.nodes[n.Hash] = n
	}
}

// resolvedDefaults is the technique's default Config as Validate leaves
// it: a default that depends on other keys (quantize's calibrator) is
// filled in, as it is in every decoded stage.
func resolvedDefaults(tech techniques.Technique) techniques.Config {
	d := tech.NewConfig()
	_ = d.Validate() // the defaults are valid; only the resolution matters
	return d
}

// label writes a stage as technique(key=value, ...) with the parameters
// that differ from the technique's defaults, in field order.
func label(technique string, cfg, defaults techniques.Config) string {
	def := map[string]any{}
	for _, s := range config.Settings(defaults) {
		def[s.Key] = s.Value
	}
	var parts []string
	for _, s := range config.Settings(cfg) {
		if d, ok := def[s.Key]; ok && reflect.DeepEqual(d, s.Value) {
			continue
		}
		parts = append(parts, s.Key+"="+config.FormatValue(s.Value))
	}
	if len(parts) == 0 {
		return technique
	}
	return technique + "(" + strings.Join(parts, ", ") + ")"
}

// paramText writes the swept values as text, keyed by parameter name, or
// by technique.key where one key is swept in several stages (and by
// stage index where one technique appears twice).
func paramText(swept []Swept) map[string]string {
	count := map[string]int{}
	techCount := map[string]int{}
	for _, s := range swept {
		count[s.Key]++
		techCount[s.Technique+"."+s.Key]++
	}
	out := map[string]string{}
	for _, s := range swept {
		k := s.Key
		if count[s.Key] > 1 {
			k = s.Technique + "." + s.Key
			if techCount[k] > 1 {
				k = fmt.Sprintf("%d.%s", s.Stage, s.Key)
			}
		}
		out[k] = config.FormatValue(s.Value)
	}
	return out
}

// order lists the nodes the experiments use, inputs first.
func order(exps []*Experiment, nodes map[string]*Node) []*Node {
	var out []*Node
	seen := map[string]bool{}
	var visit func(h string)
	visit = func(h string) {
		if seen[h] {
			return
		}
		seen[h] = true
		n := nodes[h]
		for _, t := range n.Needs {
			visit(t)
		}
		if n.Upstream != "" {
			visit(n.Upstream)
		}
		out = append(out, n)
	}
	for _, e := range exps {
		for _, h := range e.Nodes {
			visit(h)
			n := nodes[h]
			if len(n.Experiments) == 0 || n.Experiments[len(n.Experiments)-1] != e.Name {
				n.Experiments = append(n.Experiments, e.Name)
			}
		}
	}
	return out
}

// canonicalJSON encodes v with every object's keys sorted, so that equal
// values always give equal bytes.
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic) // maps marshal with sorted keys
}

func hashSpec(spec any) (hash, js string, err error) {
	b, err := canonicalJSON(spec)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), string(b), nil
}

// checkCheckpoint reports whether the file at path looks like a PyTorch
// checkpoint: torch.save's zip archive, or a legacy pickle. Only the first
// bytes are read; loading it is the runner's.
func checkCheckpoint(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	switch {
	case n == 4 && string(head) == "PK\x03\x04": // torch.save since PyTorch 1.6
	case n >= 2 && head[0] == 0x80 && head[1] >= 2: // a pickle, protocol 2 or later
	default:
		return fmt.Errorf("%s is not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle)", path)
	}
	return nil
}
