package reports

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// familyStudent colours a smaller model trained on labels alone: the
// control a distilled student is read against.
const familyStudent = "student"

// modelSpec is what the report reads of an experiment's resolved model.
type modelSpec struct {
	Arch    json.RawMessage `json:"arch"`
	Data    json.RawMessage `json:"data"`
	Teacher string          `json:"teacher"`
}

func specOf(e *store.Experiment) (modelSpec, bool) {
	var s struct {
		Model modelSpec `json:"model"`
	}
	if err := json.Unmarshal([]byte(e.SpecJSON), &s); err != nil || len(s.Model.Arch) == 0 {
		return modelSpec{}, false
	}
	return s.Model, true
}

// sameModel reports whether two specs are the same architecture on the
// same data.
func (m modelSpec) sameModel(o modelSpec) bool {
	return compactEqual(m.Arch, o.Arch) && compactEqual(m.Data, o.Data)
}

func compactEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// addStudents puts distillation where the survey puts it: a student
// trained with a teacher appears on its teacher's trade-off view as a
// compressed alternative (family distill; with further stages, a
// combination with distill), beside the same student architecture trained
// on labels alone (family student). Their metrics relative to the teacher
// are computed here with the runner's tests: the accuracy delta paired on
// the same images, the speed-up as a ratio of medians where both were
// timed on one set-up. The students' own groups stay, marked as shown on
// the teacher's view.
func (v *view) addStudents() {
	byKey := map[[2]string]*group{}
	specs := map[*group]modelSpec{}
	for _, g := range v.groups {
		byKey[[2]string{g.Dataset, g.Model}] = g
		for _, r := range g.Rows {
			if s, ok := specOf(r.exp); ok {
				specs[g] = s
				break
			}
		}
	}
	for _, g := range v.groups {
		spec, ok := specs[g]
		if !ok || spec.Teacher == "" {
			continue
		}
		teacher := byKey[[2]string{g.Dataset, strings.SplitN(spec.Teacher, "/", 2)[0]}]
		if teacher == nil || teacher == g || teacher.Base == nil {
			continue
		}
		teacher.addStudentRows(g, familyDistill)
		g.ShownWith = teacher
		for _, other := range v.groups {
			if os, ok := specs[other]; ok && other != g && other != teacher && os.Teacher == "" && os.sameModel(spec) {
				teacher.addStudentRows(other, familyStudent)
				other.ShownWith = teacher
			}
		}
	}
}

// addStudentRows adds the successful rows of a student's group to g,
// relative to g's baseline: the student's own baselines in family fam,
// its compressed experiments as combinations with fam.
func (g *group) addStudentRows(student *group, fam string) {
	for _, r := range student.Rows {
		if !r.ok() {
			continue
		}
		isModel := r.fam == familyBaseline && r.exp.Baseline == ""
		if r.fam == familyBaseline && !isModel {
			continue // a pipeline-less experiment repeats its model's baseline
		}
		c := &row{exp: r.exp, run: r.run, page: r.page, base: g.Base.exp, bval: g.Base.vals, vals: map[string]float64{}}
		maps.Copy(c.vals, r.vals)
		for _, name := range []string{metrics.Top1Delta, metrics.Speedup, metrics.ThroughputGain, metrics.CompressionRatio, metrics.MACsRatio} {
			for _, n := range []string{name, metrics.Lo(name), metrics.Hi(name), metrics.P(name)} {
				delete(c.vals, n)
			}
		}
		c.fam, c.set = fam, fam
		if !isModel {
			c.fam, c.set = familyCombination, fam+"+"+r.set
		}
		g.relativeTo(c)
		g.Rows = append(g.Rows, c)
	}
}

// relativeTo stores a row's accuracy delta and speed-up against g's
// baseline, with their intervals and p-values, as the runner does.
func (g *group) relativeTo(r *row) {
	b := g.Base
	put := func(name string, e stats.Estimate, p float64) {
		r.vals[name], r.vals[metrics.Lo(name)], r.vals[metrics.Hi(name)], r.vals[metrics.P(name)] = e.Value, e.Lo, e.Hi, p
	}
	if c := g.paired(b, r); c.ok {
		put(metrics.Top1Delta, c.delta, c.p)
	}
	if latencySetup(r.run) != latencySetup(b.run) {
		return
	}
	if s, bs := r.exp.SampleValues(store.SeriesLatency), b.exp.SampleValues(store.SeriesLatency); len(s) > 0 && len(bs) > 0 {
		e, p := stats.RatioOfMedians(bs, s)
		put(metrics.Speedup, e, p)
	}
}
