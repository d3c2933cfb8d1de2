package plan

import (
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vitbench/vitbench/harness/config"
	"github.com/vitbench/vitbench/techniques"
)

// Describe writes the plan for --dry-run: every artifact with what will be
// done for it (trained, loaded, compressed, or found in the cache), then
// every experiment with its pipeline, then a rough cost estimate. cached
// reports whether an artifact is already in the cache; nil means none is.
func (p *Plan) Describe(w io.Writer, cached func(hash string) bool) error {
	if cached == nil {
		cached = func(string) bool { return false }
	}
	num := map[string]int{}
	for i, n := range p.Nodes {
		num[n.Hash] = i + 1
	}
	ref := func(h string) string { return "#" + strconv.Itoa(num[h]) }

	var nCached, nTrain, nLoad, nInit, nStage, trainSteps, tuneSteps, unknown int
	type row struct{ id, hash, action, steps, input, what string }
	rows := make([]row, len(p.Nodes))
	for i, n := range p.Nodes {
		r := row{id: ref(n.Hash), hash: n.Hash[:12], action: string(n.Kind), steps: "-", input: "-"}
		steps, known := p.steps(n)
		if known && steps > 0 {
			r.steps = "~" + thousands(steps)
		} else if !known {
			r.steps = "?"
		}
		var inputs []string
		if n.Upstream != "" {
			inputs = append(inputs, ref(n.Upstream))
		}
		for _, t := range n.Needs {
			inputs = append(inputs, "teacher "+ref(t))
		}
		if len(inputs) > 0 {
			r.input = strings.Join(inputs, ", ")
		}
		switch n.Kind {
		case KindTrain:
			m := n.Model
			r.what = fmt.Sprintf("%s: %s, %g epochs, batch %d", m.Name, m.Data.Name, m.Train.Epochs, m.Train.BatchSize)
			if m.Train.MaxSteps > 0 {
				r.what += fmt.Sprintf(", at most %d steps", m.Train.MaxSteps)
			}
		case KindLoad:
			r.what = fmt.Sprintf("%s: %s", n.Model.Name, n.Model.Weights)
		case KindInit:
			r.what = fmt.Sprintf("%s: initialisation only, timed and not evaluated", n.Model.Name)
		case KindStage:
			r.what = n.Stage.Label
			r.action = "compress"
		}
		if n.Kind != KindLoad && n.Seed != p.Suite.Seed || n.Kind == KindTrain && n.Model.Seeds != nil {
			r.what += fmt.Sprintf(", seed %d", n.Seed)
		}
		switch {
		case cached(n.Hash):
			r.action = "cached"
			nCached++
		case n.Kind == KindTrain:
			nTrain++
			trainSteps += steps
		case n.Kind == KindLoad:
			nLoad++
		case n.Kind == KindInit:
			nInit++
		default:
			nStage++
			tuneSteps += steps
		}
		if !known && !cached(n.Hash) {
			unknown++
		}
		rows[i] = r
	}

	fmt.Fprintf(w, "suite %q (seed %d, code %s)\n", p.Suite.Name, p.Suite.Seed, orNone(p.CodeVersion))
	fmt.Fprintf(w, "%d experiments; %d artifacts: %d cached, %d to train, %d to load, ", len(p.Experiments), len(p.Nodes), nCached, nTrain, nLoad)
	if nInit > 0 {
		fmt.Fprintf(w, "%d to initialise (timed only), ", nInit)
	}
	fmt.Fprintf(w, "%d to compress\n\n", nStage)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARTIFACT\tHASH\tACTION\tSTEPS\tINPUT\tWHAT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.id, r.hash, r.action, r.steps, r.input, r.what)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPERIMENT\tBASELINE\tARTIFACTS\tPIPELINE")
	for _, e := range p.Experiments {
		ids := make([]string, len(e.Nodes))
		for i, h := range e.Nodes {
			ids[i] = ref(h)
		}
		baseline := e.Baseline
		if e.IsBaseline {
			baseline = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, baseline, strings.Join(ids, " "), e.Pipeline)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nestimated cost (rough, not a measurement: epochs x training images / batch size):\n")
	fmt.Fprintf(w, "  ~%s training steps for %d models, ~%s fine-tuning steps in %d compression stages",
		thousands(trainSteps), nTrain, thousands(tuneSteps), nStage)
	if unknown > 0 {
		fmt.Fprintf(w, ", plus %d artifacts whose data size is unknown until loaded", unknown)
	}
	_, err := fmt.Fprintf(w, "; %d artifacts cached (no cost)\n", nCached)
	return err
}

// steps estimates the optimizer steps a node takes to build: a trained
// model's epochs over its training images, capped by max_steps; a stage's
// fine-tuning from the largest of its parameters named "epochs" or
// "*_epochs" (over the model's training images, at the model's batch
// size), capped by those named "max_steps" or "*_max_steps" (a plain
// "steps", like prune's iterative schedule, counts something else). It reports false when
// the data set's size is not known before loading.
func (p *Plan) steps(n *Node) (int, bool) {
	m := n.Model
	perEpoch := func() (float64, bool) {
		imgs := m.Data.TrainImages()
		if imgs <= 0 || m.Train.BatchSize <= 0 {
			return 0, false
		}
		return math.Ceil(float64(imgs) / float64(m.Train.BatchSize)), true
	}
	switch n.Kind {
	case KindTrain:
		per, ok := perEpoch()
		if !ok {
			return m.Train.MaxSteps, m.Train.MaxSteps > 0
		}
		steps := int(math.Ceil(m.Train.Epochs * per))
		if m.Train.MaxSteps > 0 {
			steps = min(steps, m.Train.MaxSteps)
		}
		return steps, true
	case KindStage:
		var epochs float64
		var steps int
		for _, s := range settingsOf(n) {
			switch {
			case s.key == "epochs" || strings.HasSuffix(s.key, "_epochs"):
				epochs = max(epochs, s.num)
			case s.key == "max_steps" || strings.HasSuffix(s.key, "_max_steps"):
				steps = max(steps, int(s.num))
			}
		}
		if tr, ok := n.Stage.Config.(techniques.Trainer); ok {
			epochs = tr.TrainingEpochs() // it knows which of its epochs run
		}
		if epochs > 0 {
			per, ok := perEpoch()
			if !ok {
				return steps, steps > 0
			}
			e := int(math.Ceil(epochs * per))
			if steps > 0 {
				e = min(e, steps)
			}
			return e, true
		}
		return steps, true
	}
	return 0, true
}

type numSetting struct {
	key string
	num float64
}

// settingsOf returns a stage's numeric parameters.
func settingsOf(n *Node) []numSetting {
	if n.Stage == nil {
		return nil
	}
	var out []numSetting
	for _, s := range config.Settings(n.Stage.Config) {
		v := reflect.ValueOf(s.Value)
		switch {
		case v.CanInt():
			out = append(out, numSetting{s.Key, float64(v.Int())})
		case v.CanUint():
			out = append(out, numSetting{s.Key, float64(v.Uint())})
		case v.CanFloat():
			out = append(out, numSetting{s.Key, v.Float()})
		}
	}
	return out
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "unversioned"
	}
	return s
}
