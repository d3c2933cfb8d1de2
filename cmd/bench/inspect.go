package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sugarme/gotch"
	"github.com/vitbench/vitbench/harness/vit"
)

func init() { commands["inspect"] = runInspect }

const inspectUsage = `usage: bench inspect --arch NAME [--weights FILE] [--num-classes N] [--img-size N] [--json]

Prints a ViT's parameters, multiply-accumulates (MACs) and FLOPs, in total
and per layer, and its size in bytes. FLOPs are 2 x MACs. The "GFLOPs" of
the ViT literature (DeiT's and torchvision's tables) are GMACs: vit_b_16
is 17.56 GMACs = 35.1 GFLOPs.

Without --weights the counts are analytic. With --weights the parameters
and the size are read from the loaded tensors, and non-zero parameters and
effective MACs reflect pruned (zero) weights. --weights takes a PyTorch
state dict in timm or torchvision naming (.pth/.pt), or a vitbench
artifact (a file with a .json sidecar, which carries its own
architecture: --arch is then optional and only names it).

Architectures: ` + "%s" + `

Flags:
`

// modelFlags are the flags that pick and load a model, shared by inspect,
// latency and forward.
type modelFlags struct {
	arch       string
	weights    string
	numClasses int
	imgSize    int
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.arch, "arch", "", "architecture name (timm or torchvision naming, e.g. deit_tiny_patch16_224, vit_b_16)")
	fs.StringVar(&f.weights, "weights", "", "PyTorch state dict (.pth/.pt) or vitbench artifact (file with a .json sidecar)")
	fs.IntVar(&f.numClasses, "num-classes", 0, "override the architecture's number of classes (0 = keep)")
	fs.IntVar(&f.imgSize, "img-size", 0, "override the architecture's input resolution (0 = keep)")
}

// isArtifact reports whether the weights are a vitbench artifact: Save
// writes the configuration beside the tensors in path + ".json".
func (f *modelFlags) isArtifact() bool {
	if f.weights == "" {
		return false
	}
	_, err := os.Stat(f.weights + ".json")
	return err == nil
}

// config resolves the architecture, with overrides, without building it.
// Bad input is a usageError.
func (f *modelFlags) config() (vit.Config, error) {
	if f.numClasses < 0 || f.imgSize < 0 {
		return vit.Config{}, usageError{fmt.Errorf("--num-classes %d, --img-size %d: want > 0 (or 0 to keep the architecture's)", f.numClasses, f.imgSize)}
	}
	if f.arch == "" {
		return vit.Config{}, usageError{errors.New("--arch is required (see -h for the names)")}
	}
	if f.numClasses == 0 && f.imgSize == 0 {
		cfg, err := vit.Lookup(f.arch)
		if err != nil {
			return vit.Config{}, usageError{err}
		}
		return cfg, nil
	}
	var o vit.Overrides
	if f.numClasses > 0 {
		o.NumClasses = &f.numClasses
	}
	if f.imgSize > 0 {
		o.ImgSize = &f.imgSize
	}
	cfg, err := vit.Custom(f.arch, o)
	if err != nil {
		return vit.Config{}, usageError{err}
	}
	return cfg, nil
}

// label is the architecture name the outputs show.
func (f *modelFlags) label(m *vit.Model) string {
	if f.arch != "" {
		return f.arch
	}
	return m.Cfg.Name
}

// load builds the model on dev: from a vitbench artifact, or the named
// architecture with a PyTorch checkpoint loaded into it, or randomly
// initialised when no weights are given.
func (f *modelFlags) load(dev gotch.Device) (*vit.Model, error) {
	if f.isArtifact() {
		if f.numClasses != 0 || f.imgSize != 0 {
			return nil, usageError{fmt.Errorf("--weights %s is a vitbench artifact with its own architecture (%s.json): drop --num-classes and --img-size", f.weights, f.weights)}
		}
		m, err := vit.Load(f.weights, dev)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	if f.weights != "" {
		if _, err := os.Stat(f.weights); err != nil {
			return nil, usageError{fmt.Errorf("--weights: %w", err)}
		}
	}
	m, err := vit.New(cfg, dev)
	if err != nil {
		return nil, usageError{err}
	}
	if f.weights == "" {
		return m, nil
	}
	if err := m.LoadPyTorch(f.weights); err != nil {
		m.Drop()
		var ke *vit.KeyError
		if errors.As(err, &ke) && len(ke.Missing) == 0 && len(ke.Unexpected) == 0 {
			err = fmt.Errorf("%w (a checkpoint for another number of classes or input size needs --num-classes or --img-size)", err)
		}
		return nil, usageError{err}
	}
	return m, nil
}

// inspectLayer is one row of the per-layer table.
type inspectLayer struct {
	vit.LayerCount
	FLOPs int64 `json:"flops"` // 2 x MACs
}

// inspectResult is the `bench inspect --json` object: the keys its --json
// help names first, then extra detail.
type inspectResult struct {
	Arch      string         `json:"arch"`
	Params    int64          `json:"params"`
	MACs      int64          `json:"macs"`
	FLOPs     int64          `json:"flops"` // 2 x MACs
	SizeBytes int64          `json:"size_bytes"`
	Layers    []inspectLayer `json:"layers"`

	NonZero    int64      `json:"nonzero"`     // parameters that are not zero
	EffMACs    int64      `json:"eff_macs"`    // MACs skipping zero weights
	ParamsFrom string     `json:"params_from"` // "analytic" or "weights"
	Weights    string     `json:"weights,omitempty"`
	Config     vit.Config `json:"config"`
}

// runInspect implements `bench inspect`.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", stderr, func(w io.Writer) { fmt.Fprintf(w, inspectUsage, strings.Join(vit.Names(), ", ")) })
	var mf modelFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object: arch, params, macs, flops (2 x macs), size_bytes, layers")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	res, err := inspect(&mf)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return writeInspectText(stdout, res)
}

// inspect counts the model the flags describe: analytically, or from the
// loaded tensors when weights are given.
func inspect(mf *modelFlags) (*inspectResult, error) {
	var (
		counts vit.Counts
		res    = &inspectResult{Weights: mf.weights}
	)
	if mf.weights == "" {
		cfg, err := mf.config()
		if err != nil {
			return nil, err
		}
		counts = cfg.Count()
		res.Arch, res.Config = mf.arch, cfg
		res.Params, res.ParamsFrom = counts.Params, "analytic"
		res.SizeBytes = 4 * counts.Params // float32
	} else {
		m, err := mf.load(gotch.CPU)
		if err != nil {
			return nil, err
		}
		defer m.Drop()
		counts = m.Count()
		res.Arch, res.Config = mf.label(m), m.Cfg
		res.Params, res.ParamsFrom = m.NumParams(), "weights"
		for _, t := range m.VS.Variables() {
			res.SizeBytes += int64(t.Numel()) * int64(t.DType().Size())
		}
	}
	res.MACs, res.FLOPs = counts.MACs, counts.FLOPs()
	res.NonZero, res.EffMACs = counts.NonZero, counts.EffMACs
	for _, l := range counts.Layers {
		res.Layers = append(res.Layers, inspectLayer{l, 2 * l.MACs})
	}
	return res, nil
}

// writeInspectText prints the totals, then the per-layer table; every
// figure says whether it is MACs or FLOPs.
func writeInspectText(w io.Writer, r *inspectResult) error {
	c := r.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	shape := fmt.Sprintf("img %d, patch %d, dim %d, depth %d, heads %d, mlp ratio %g, %d classes",
		c.ImgSize, c.PatchSize, c.EmbedDim, c.Depth, c.NumHeads, c.MLPRatio, c.NumClasses)
	if c.Distilled {
		shape += ", distilled"
	}
	if c.Blocks != nil {
		shape += ", per-block structure (compressed)"
	}
	row("arch", r.Arch+" ("+shape+")")
	params := commas(r.Params) + " (" + r.ParamsFrom
	if r.ParamsFrom == "weights" {
		params += ": " + r.Weights
	}
	params += ")"
	row("params", params)
	if r.NonZero != r.Params {
		row("non-zero params", fmt.Sprintf("%s (%.1f%%)", commas(r.NonZero), 100*float64(r.NonZero)/float64(r.Params)))
	}
	row("MACs", fmt.Sprintf("%.2f GMACs per image (the \"GFLOPs\" of DeiT's and torchvision's tables are these GMACs)", float64(r.MACs)/1e9))
	row("FLOPs", fmt.Sprintf("%.2f GFLOPs per image (= 2 x MACs)", float64(r.FLOPs)/1e9))
	if r.EffMACs != r.MACs {
		row("effective MACs", fmt.Sprintf("%.2f GMACs per image (zero weights skipped)", float64(r.EffMACs)/1e9))
	}
	row("size", fmt.Sprintf("%s bytes (%.1f MiB)", commas(r.SizeBytes), float64(r.SizeBytes)/(1<<20)))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	sparse := r.NonZero != r.Params || r.EffMACs != r.MACs
	mega := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatFloat(float64(v)/1e6, 'f', 2, 64)
	}
	line := func(name, kind, tokens string, params, nonzero, macs, flops, eff int64) []string {
		cells := []string{name, kind, tokens, commas(params)}
		if sparse {
			cells = append(cells, commas(nonzero))
		}
		cells = append(cells, mega(macs), mega(flops))
		if sparse {
			cells = append(cells, mega(eff))
		}
		return cells
	}
	head := []string{"layer", "kind", "tokens", "params"}
	if sparse {
		head = append(head, "non-zero")
	}
	head = append(head, "MMACs", "MFLOPs (2xMACs)")
	if sparse {
		head = append(head, "eff. MMACs")
	}
	rows := [][]string{head}
	for _, l := range r.Layers {
		rows = append(rows, line(l.Name, l.Kind, strconv.Itoa(l.Tokens), l.Params, l.NonZero, l.MACs, l.FLOPs, l.EffMACs))
	}
	rows = append(rows, line("total", "", "", r.Params, r.NonZero, r.MACs, r.FLOPs, r.EffMACs))
	if err := writeTable(w, rows, 2); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nMMACs: millions of multiply-accumulates per image; MFLOPs = 2 x MMACs. LayerNorm, softmax, GELU and additions are not counted (as fvcore and torchvision do).")
	return nil
}

// writeTable prints rows as aligned columns two spaces apart: the first
// left columns left-aligned, the others (numbers) right-aligned.
func writeTable(w io.Writer, rows [][]string, left int) error {
	var width []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len(c))
			if i < left {
				b.WriteString(c)
				if i < len(r)-1 {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// commas formats n with thousands separators: 86,567,656.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
