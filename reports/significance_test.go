package reports

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vitbench/vitbench/harness/metrics"
	"github.com/vitbench/vitbench/harness/stats"
	"github.com/vitbench/vitbench/harness/store"
)

// statImages is how many test images the synthetic outcomes cover.
const statImages = 4000

// outcomesFor makes per-image outcomes with accuracy top1 (percent) that
// share most images with every other experiment's, as models of one
// baseline do: image i is right when a shared draw u_i is below top1,
// except for a tenth of the images, redrawn per experiment. Two
// experiments of equal accuracy then disagree on a few percent of the
// images in both directions.
func outcomesFor(name string, top1 float64) stats.Bits {
	shared := rand.New(rand.NewPCG(1, 2))
	own := rand.New(rand.NewPCG(3, uint64(len(name))<<8|uint64(name[len(name)-1])))
	b := stats.NewBits(statImages)
	for i := 0; i < statImages; i++ {
		u := shared.Float64()
		if own.Float64() < 0.1 {
			u = own.Float64()
		}
		if u < top1/100 {
			b.Set(i)
		}
	}
	return b
}

// latencySamples are n timed passes around median seconds, ±3%.
func latencySamples(name string, median float64, n int) []float64 {
	rng := rand.New(rand.NewPCG(5, uint64(len(name))))
	out := make([]float64, n)
	for i := range out {
		out[i] = median * (1 + 0.06*(rng.Float64()-0.5))
	}
	return out
}

// withStatistics gives synthetic experiments what the runner stores:
// per-image outcomes and timed samples, the intervals of top-1 and
// latency, and against the baseline named base the paired accuracy delta
// and the speed-up with their intervals and p-values.
func withStatistics(exps []store.Experiment, base string) {
	var b *store.Experiment
	for i := range exps {
		e := &exps[i]
		if e.Status != store.StatusOK {
			continue
		}
		top1 := metricValue(e, metrics.Top1)
		bits := outcomesFor(e.Name, top1)
		e.Outcomes = []store.Outcome{{Metric: metrics.Top1, Images: "cifar10/test", N: statImages, Bits: bits}}
		k := bits.Count(statImages)
		p := stats.Proportion(k, statImages)
		setMetric(e, metrics.Top1, p.Value)
		setMetric(e, metrics.Lo(metrics.Top1), p.Lo)
		setMetric(e, metrics.Hi(metrics.Top1), p.Hi)
		if lat := metricValue(e, metrics.LatencyP50); lat > 0 {
			for _, v := range latencySamples(e.Name, lat, 30) {
				e.Samples = append(e.Samples, store.Sample{Series: store.SeriesLatency, Value: v})
			}
			m := stats.Median(e.SampleValues(store.SeriesLatency))
			setMetric(e, metrics.LatencyP50, m.Value)
			setMetric(e, metrics.Lo(metrics.LatencyP50), m.Lo)
			setMetric(e, metrics.Hi(metrics.LatencyP50), m.Hi)
		}
		if e.Name == base {
			b = e
		}
	}
	for i := range exps {
		e := &exps[i]
		if e.Status != store.StatusOK || e == b || e.Baseline == "" {
			continue
		}
		d, p := stats.PairedDelta(b.Outcomes[0].Bits, e.Outcomes[0].Bits, statImages)
		setMetric(e, metrics.Top1Delta, d.Value)
		setMetric(e, metrics.Lo(metrics.Top1Delta), d.Lo)
		setMetric(e, metrics.Hi(metrics.Top1Delta), d.Hi)
		setMetric(e, metrics.P(metrics.Top1Delta), p)
		if s, bs := e.SampleValues(store.SeriesLatency), b.SampleValues(store.SeriesLatency); len(s) > 0 && len(bs) > 0 {
			r, p := stats.RatioOfMedians(bs, s)
			setMetric(e, metrics.Speedup, r.Value)
			setMetric(e, metrics.Lo(metrics.Speedup), r.Lo)
			setMetric(e, metrics.Hi(metrics.Speedup), r.Hi)
			setMetric(e, metrics.P(metrics.Speedup), p)
		}
	}
}

func metricValue(e *store.Experiment, name string) float64 {
	for _, m := range e.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	return 0
}

func setMetric(e *store.Experiment, name string, v float64) {
	for i := range e.Metrics {
		if e.Metrics[i].Name == name {
			e.Metrics[i].Value = v
			return
		}
	}
	e.Metrics = append(e.Metrics, metrics.New(name, v))
}

// statGroup is one run of experiments with the runner's statistics.
func statGroup(t *testing.T, list []exp) *group {
	t.Helper()
	run := store.Run{ID: 1, Machine: store.Machine{Hostname: "vm", CPU: "AMD EPYC", Cores: 2}, Threads: 2, Device: "cpu", Started: t0, Status: store.StatusOK}
	var exps []store.Experiment
	for _, e := range list {
		exps = append(exps, makeExperiment(1, "cifar10", "vit", e, 1))
	}
	withStatistics(exps, "baseline")
	v := newView([]store.Run{run}, exps)
	if len(v.groups) != 1 || v.groups[0].Base == nil {
		t.Fatalf("groups = %+v", v.groups)
	}
	return v.groups[0]
}

// TestFindingsClaimOnlySignificantDifferences checks, on synthetic
// results with true and null differences, that findings claim the true
// ones and mark the null ones "not significant" or "~".
func TestFindingsClaimOnlySignificantDifferences(t *testing.T) {
	g := statGroup(t, []exp{
		{name: "baseline", top1: 80, macs: 1, size: 1, lat: 1},
		// As accurate, half the latency: a true speed-up at no loss.
		{name: "fast-same", families: []string{"prune"}, top1: 80, macs: 0.5, size: 0.5, lat: 0.5},
		// Faster still but 6 points worse: a true loss.
		{name: "faster-worse", families: []string{"lowrank"}, top1: 74, macs: 0.3, size: 0.3, lat: 0.3},
		// Within 0.25 points of fast-same at a little more latency: on the
		// front, but its gain is null.
		{name: "slower-same", families: []string{"quantize"}, top1: 80.25, macs: 1, size: 0.25, lat: 0.55},
	})
	f := computeFindings(g)
	text := strings.Join(f.Sentences, "\n")
	var front string
	for _, s := range f.Sentences {
		if strings.HasPrefix(s, "Top-1 against measured latency") {
			front = s
		}
	}
	for _, want := range []string{
		"The fastest experiment with no significant loss of top-1 is “fast-same” (prune)",
		"no significant difference to the best of prune “fast-same”",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q\nin:\n%s", want, text)
		}
	}
	// On the latency front: fast-same's gain over faster-worse is real,
	// slower-same's over fast-same is not.
	i, j := strings.Index(front, "“fast-same”"), strings.Index(front, "“slower-same”")
	if i < 0 || j < i {
		t.Fatalf("latency front lacks fast-same then slower-same: %s", front)
	}
	if step := front[i:j]; !strings.Contains(step, "over the previous, p<0.001") || strings.Contains(step, "~") {
		t.Errorf("fast-same's step is not stated as significant: %s", step)
	}
	if step := front[j:]; !strings.Contains(step, "~ +") || !strings.Contains(step, "not significant") {
		t.Errorf("slower-same's step is not marked ~: %s", step)
	}
	for _, s := range f.Sentences {
		if strings.Contains(s, "“faster-worse”") && strings.Contains(s, "no significant loss") {
			t.Errorf("a 6-point loss is called no significant loss: %s", s)
		}
	}
	c := g.paired(g.Base, rowNamed(t, g, "faster-worse"))
	if !c.ok || c.p >= 0.05 || c.delta.Value > -4 {
		t.Errorf("faster-worse vs baseline = %+v, want a significant loss near 6 points", c)
	}
	if c := g.paired(rowNamed(t, g, "fast-same"), rowNamed(t, g, "slower-same")); !c.ok || c.p < 0.05 {
		t.Errorf("slower-same vs fast-same = %+v, want no significant difference", c)
	}
}

func rowNamed(t *testing.T, g *group, name string) *row {
	t.Helper()
	for _, r := range g.Rows {
		if r.exp.Name == name {
			return r
		}
	}
	t.Fatalf("no row %s", name)
	return nil
}

// TestUnstructuredSparsityOffMACsFront checks that a sparse model that runs
// dense kernels is budgeted at its dense MACs: a 90%-sparse model is not on
// the executed-MACs Pareto front nor in the 25% MACs budget, and its
// effective MACs appear only on their own axis.
func TestUnstructuredSparsityOffMACsFront(t *testing.T) {
	list := []exp{
		{name: "baseline", top1: 80, macs: 1, size: 1, lat: 1},
		{name: "heads", families: []string{"prune"}, top1: 76, macs: 0.5, size: 0.5, lat: 0.6},
		{name: "sparse-0.9", families: []string{"prune"}, top1: 79, macs: 1, size: 1, lat: 1},
	}
	g := statGroup(t, list)
	sparse := rowNamed(t, g, "sparse-0.9")
	sparse.vals[metrics.MACsEffective] = 0.1 * baseMACs
	sparse.vals[metrics.ParamsNonZero] = 0.1 * baseParams
	for _, p := range paretoFront(g.points(axisMACs)) {
		if p.r == sparse {
			t.Errorf("the 90%%-sparse model is on the executed-MACs front at %g MACs", p.x)
		}
	}
	if x, _ := axisMACs.value(sparse); x != baseMACs {
		t.Errorf("executed MACs of the sparse model = %g, want dense %g", x, float64(baseMACs))
	}
	f := computeFindings(g)
	for _, b := range f.Budgets {
		if b.Axis != axisMACs.label || !strings.HasPrefix(b.Label, "≤ 25%") {
			continue
		}
		for _, c := range b.Cells {
			if strings.Contains(c.Title, "sparse-0.9") {
				t.Errorf("the sparse model is in the 25%% MACs budget: %+v", c)
			}
		}
	}
	pts := axisPoints(g.Rows, axisMACsEffective)
	if !hasSparse(pts) {
		t.Error("effective MACs axis: no point below its executed MACs")
	}
	if r, ok := sparse.macsRatio(); !ok || r != 1 {
		t.Errorf("MACs ratio of the sparse model = %g, want 1 (dense, as stored)", r)
	}
}

// TestStudentsOnTeacherView checks that a distilled student and the same
// student trained on labels alone appear on the teacher's view, relative
// to the teacher, and that their own groups say where they are shown.
func TestStudentsOnTeacherView(t *testing.T) {
	run := store.Run{ID: 1, Machine: store.Machine{Hostname: "vm"}, Threads: 2, Device: "cpu", Started: t0, Status: store.StatusOK}
	spec := func(name, width, teacher string) string {
		s := fmt.Sprintf(`{"name":%q,"model":{"arch":{"embed_dim":%s,"depth":4},"data":{"name":"cifar10"}`, name, width)
		if teacher != "" {
			s += fmt.Sprintf(`,"teacher":%q`, teacher)
		}
		return s + `},"pipeline":[]}`
	}
	mk := func(model, name, width, teacher string, top1, lat float64, families ...string) store.Experiment {
		e := makeExperiment(1, "cifar10", model, exp{name: name, families: families, top1: top1, macs: 0.3, size: 0.3, lat: lat}, 1)
		e.SpecJSON = spec(name, width, teacher)
		if len(families) > 0 {
			e.Baseline = model
		} else {
			e.Baseline = ""
		}
		return e
	}
	exps := []store.Experiment{
		mk("vit", "vit", "128", "", 80, 1),
		mk("student_kd", "student_kd", "64", "vit", 74, 0.4),
		mk("student_kd", "student-kd-int8", "64", "vit", 73.8, 0.3, "quantize"),
		mk("student", "student", "64", "", 71, 0.4),
		mk("other", "other", "32", "", 60, 0.2),
	}
	exps[0].Metrics = append(exps[0].Metrics[:0:0], makeExperiment(1, "cifar10", "vit", exp{name: "vit", top1: 80, macs: 1, size: 1, lat: 1}, 1).Metrics...)
	seed := int64(0)
	for i := range exps {
		exps[i].Seed = &seed
	}
	withStatistics(exps, "vit")
	v := newView([]store.Run{run}, exps)
	var teacher, kd, scratch, other *group
	for _, g := range v.groups {
		switch g.Model {
		case "vit":
			teacher = g
		case "student_kd":
			kd = g
		case "student":
			scratch = g
		case "other":
			other = g
		}
	}
	if kd.ShownWith != teacher || scratch.ShownWith != teacher || other.ShownWith != nil || teacher.ShownWith != nil {
		t.Errorf("shown with: kd %v, scratch %v, other %v, teacher %v", kd.ShownWith, scratch.ShownWith, other.ShownWith, teacher.ShownWith)
	}
	fams := map[string]string{}
	for _, r := range teacher.Rows {
		fams[r.exp.Name] = r.fam + ":" + r.set
		if r.exp.Name == "student_kd" {
			d, ok := r.top1Delta()
			if !ok || d > -5 || d < -7 {
				t.Errorf("distilled student's delta to the teacher = %g, %v; want about -6", d, ok)
			}
			if sig, tested := r.significant(metrics.Top1Delta, 0); !tested || !sig {
				t.Errorf("distilled student's 6-point loss: tested %v significant %v", tested, sig)
			}
			if sp, ok := r.speedup(); !ok || sp < 2 {
				t.Errorf("distilled student's speed-up over the teacher = %g, %v; want about 2.5", sp, ok)
			}
		}
	}
	// The teacher's gain, seed by seed: 74% against 71% on the same images.
	if s, ok := distillFinding(teacher); !ok || !strings.Contains(s, "the student gains +") || !strings.Contains(s, "significant (McNemar, same images) for 1 of 1 seeds") {
		t.Errorf("distillation finding = %q, %v", s, ok)
	}
	want := map[string]string{
		"vit": "baseline:", "student_kd": "distill:distill", "student-kd-int8": "combination:distill+quantize", "student": "student:student",
	}
	if fmt.Sprint(fams) != fmt.Sprint(want) {
		t.Errorf("teacher's rows = %v, want %v", fams, want)
	}
}
