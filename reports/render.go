package reports

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vitbench/vitbench/harness/store"
)

// DefaultAssetsDir is where scripts/assets.sh leaves the ECharts script,
// relative to the repository root.
const DefaultAssetsDir = ".cache/assets"

// IndexPage is the file name of the overview page in OutDir.
const IndexPage = "index.html"

// errNoAssets is returned (wrapped) when the ECharts script is not in
// Options.AssetsDir.
var errNoAssets = errors.New("echarts script missing: run scripts/assets.sh")

// Options control Render.
type Options struct {
	// OutDir is the folder the site is written to; it is created. Pages
	// this package wrote before and no longer writes are removed; other
	// files are left alone.
	OutDir string
	// AssetsDir holds EChartsScript, fetched by scripts/assets.sh.
	// Default DefaultAssetsDir.
	AssetsDir string
	// Now stamps the pages; the zero value means time.Now().
	Now time.Time
}

// Render writes the report of snap to opts.OutDir: index.html (overview,
// findings, summary), one trade-off page per (data set, baseline model),
// sweeps.html, combinations.html, machines.html, literature.html, one
// page per experiment and the ECharts script they load. A nil or empty
// snapshot renders pages that say what is missing.
func Render(snap *store.Snapshot, opts Options) error {
	if opts.OutDir == "" {
		return errors.New("render report: no output folder")
	}
	if opts.AssetsDir == "" {
		opts.AssetsDir = DefaultAssetsDir
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	script, err := os.ReadFile(filepath.Join(opts.AssetsDir, EChartsScript))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("render report: %s not in %s: %w (fetches echarts %s from npm)", EChartsScript, opts.AssetsDir, errNoAssets, echartsVersion)
		}
		return fmt.Errorf("render report: read %s: %w", EChartsScript, err)
	}
	if len(bytes.TrimSpace(script)) == 0 {
		return fmt.Errorf("render report: %s in %s is empty: %w", EChartsScript, opts.AssetsDir, errNoAssets)
	}

	var runs []store.Run
	var exps []store.Experiment
	if snap != nil {
		runs, exps = snap.Runs, snap.Experiments
	}
	pages, err := buildSite(newView(runs, exps), opts.Now)
	if err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	pages[EChartsScript] = script
	if err := writeSite(opts.OutDir, pages); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// buildSite renders every page into memory, keyed by file name.
func buildSite(v *view, now time.Time) (map[string][]byte, error) {
	tpls, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s := &site{v: v, tpls: tpls, now: now, pages: map[string][]byte{}, timed: scaleGroups(v)}
	s.pub, s.pubErr = published()
	steps := []func() error{
		s.overview, s.tradeoffs, s.scale, s.sweeps, s.combinations, s.experiments, s.machines, s.literature,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return s.pages, nil
}

// site is the state of one rendering.
type site struct {
	v      *view
	tpls   map[string]*template.Template
	now    time.Time
	pages  map[string][]byte
	pub    []source
	pubErr error
	timed  []*group // the timed-only groups, on ScalePage
}

// nav is the navigation bar with current marked.
func (s *site) nav(current string) []navLink {
	links := []navLink{{Text: "Overview", Href: IndexPage}}
	for _, g := range s.v.groups {
		links = append(links, navLink{Text: "Trade-offs: " + g.Title(), Href: g.Page})
	}
	if len(s.timed) > 0 {
		links = append(links, navLink{Text: "Deployment scale", Href: ScalePage})
	}
	links = append(links,
		navLink{Text: "Sweeps", Href: "sweeps.html"},
		navLink{Text: "Combinations", Href: "combinations.html"},
		navLink{Text: "Machines", Href: "machines.html"},
		navLink{Text: "Literature", Href: "literature.html"},
	)
	for i := range links {
		links[i].Current = links[i].Href == current
	}
	return links
}

// page executes a page template into s.pages.
func (s *site) page(file, tpl, title string, warnings []error, charts []chartBlock, body interface{}) error {
	t := s.tpls[tpl]
	if t == nil {
		return fmt.Errorf("page %s: no template %q", file, tpl)
	}
	var ws []string
	for _, w := range warnings {
		ws = append(ws, w.Error())
	}
	data := pageData{
		Title:          title,
		Nav:            s.nav(file),
		Warnings:       ws,
		Charts:         charts,
		Generated:      s.now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Script:         EChartsScript,
		EChartsVersion: echartsVersion,
		Body:           body,
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("page %s: %w", file, err)
	}
	s.pages[file] = buf.Bytes()
	return nil
}

// writeSite writes the pages into dir, each through a temporary file, and
// removes pages of an earlier rendering that this one did not write.
func writeSite(dir string, pages map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	names := make([]string, 0, len(pages))
	for name := range pages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeFile(filepath.Join(dir, name), pages[name]); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		n := e.Name()
		if _, ok := pages[n]; ok || e.IsDir() || !strings.HasSuffix(n, ".html") {
			continue
		}
		if strings.HasPrefix(n, "exp-") || strings.HasPrefix(n, "tradeoff-") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("remove stale page: %w", err)
			}
		}
	}
	return nil
}

func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = io.Copy(f, bytes.NewReader(data))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
