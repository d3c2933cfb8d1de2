package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumPath finds Debian's chromium: $CHROMIUM when set, else
// /usr/bin/chromium or chromium on PATH; "" when there is none.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// requireTool fails in CI and skips elsewhere.
func requireTool(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped outside CI)")
}

// chromium runs headless Chromium with no network: every host resolves to
// nothing, and background services are off.
func chromium(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
		"--disable-default-apps", "--mute-audio", "--hide-scrollbars",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(args, extra...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, tail(stderr.String(), 2000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkPage loads every page of the site in an iframe and reports, per
// page, each chart's state and every resource the page loaded. It runs
// from the report folder, so the pages are same-origin file URLs.
const checkPage = `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="result">pending</pre>
<script>
var pages = PAGES;
var results = {};
var left = pages.length;
function blank(canvas) {
  var ctx = canvas.getContext('2d');
  if (!ctx || canvas.width === 0 || canvas.height === 0) { return -1; }
  var d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  var n = 0;
  for (var i = 0; i < d.length; i += 16) {
    if (d[i + 3] > 0 && (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235)) { n++; }
  }
  return n;
}
function check(name, frame) {
  var r = { charts: [], resources: [], errors: [], tips: 0 };
  try {
    var w = frame.contentWindow, doc = frame.contentDocument;
    r.hasEcharts = typeof w.echarts !== 'undefined';
    doc.querySelectorAll('div.chart').forEach(function (el) {
      var c = el.querySelector('canvas');
      r.charts.push({
        id: el.id,
        instance: r.hasEcharts && !!w.echarts.getInstanceByDom(el),
        canvas: !!c,
        inked: c ? blank(c) : -1
      });
    });
    w.performance.getEntriesByType('resource').forEach(function (e) { r.resources.push(e.name); });
    // Show the tooltip of every point: tooltips are HTML, so an unescaped
    // name would run its onerror handler.
    if (r.hasEcharts) {
      doc.querySelectorAll('div.chart').forEach(function (el) {
        var inst = w.echarts.getInstanceByDom(el);
        var opt = inst.getOption();
        (opt.series || []).forEach(function (s, si) {
          (s.data || []).forEach(function (d, di) {
            inst.dispatchAction({ type: 'showTip', seriesIndex: si, dataIndex: di });
            r.tips++;
          });
        });
      });
    }
    // Sort the summary table by top-1, up then down.
    var t = doc.getElementById('summary');
    if (t) {
      var heads = t.tHead.rows[0].cells, col = -1;
      for (var i = 0; i < heads.length; i++) { if (heads[i].textContent.indexOf('top-1 (%)') === 0) { col = i; } }
      var read = function () {
        var v = [];
        Array.prototype.forEach.call(t.tBodies[0].rows, function (row) { v.push(row.cells[col].getAttribute('data-sort')); });
        return v;
      };
      heads[col].click(); r.sortedUp = read();
      heads[col].click(); r.sortedDown = read();
    }
  } catch (e) {
    r.errors.push(String(e));
  }
  results[name] = r;
  if (--left === 0) {
    setTimeout(function () {
      results.__pwned = { errors: window.__pwned ? ['a name from the suite ran as HTML: a page or tooltip did not escape it'] : [] };
      document.getElementById('result').textContent = JSON.stringify(results);
    }, 300);
  }
}
pages.forEach(function (name) {
  var f = document.createElement('iframe');
  f.style.width = '1280px';
  f.style.height = '900px';
  f.onload = function () { setTimeout(function () { check(name, f); }, 100); };
  f.src = name;
  document.body.appendChild(f);
});
</script></body></html>`

type chartState struct {
	ID       string `json:"id"`
	Instance bool   `json:"instance"`
	Canvas   bool   `json:"canvas"`
	Inked    int    `json:"inked"`
}

type pageState struct {
	HasEcharts bool         `json:"hasEcharts"`
	Charts     []chartState `json:"charts"`
	Resources  []string     `json:"resources"`
	Errors     []string     `json:"errors"`
	Tips       int          `json:"tips"`
	SortedUp   []string     `json:"sortedUp"`
	SortedDown []string     `json:"sortedDown"`
}

// TestBrowser renders a site from a synthetic snapshot (every family, two
// machines) and loads every page in headless Chromium: each chart must
// have an ECharts instance and a canvas with ink on it, and no page may
// load anything but files from the report folder. It also writes a
// screenshot of the overview and of a trade-off page to
// results/report-screenshots/.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	bin := chromiumPath()
	requireTool(t, bin != "", "chromium not found ($CHROMIUM, /usr/bin/chromium, PATH): the set-up installs Debian's chromium (apt-get install -y chromium)")
	assets := filepath.Join("..", DefaultAssetsDir)
	_, err := os.Stat(filepath.Join(assets, EChartsScript))
	requireTool(t, err == nil, "echarts.min.js not in "+assets+": run scripts/assets.sh")

	// One experiment is named with HTML that would run if a page or a
	// tooltip did not escape it.
	const evil = `<img src=x onerror="top.__pwned=1">`
	snap := synthSnapshot()
	for i := range snap.Experiments {
		if e := &snap.Experiments[i]; e.Name == "ptq/w8a8" {
			e.Name = evil
			e.Pipeline = evil
			e.Params["act_bits"] = evil
		}
	}
	start := time.Now()
	out, err := filepath.Abs(render(t, snap, assets))
	if err != nil {
		t.Fatal(err)
	}
	// VITBENCH_REPORT_SITE checks a site bench report wrote instead (a
	// copy of it: the check adds pages): make report-check.
	shotPrefix := ""
	if site := os.Getenv("VITBENCH_REPORT_SITE"); site != "" {
		out = t.TempDir()
		if err := os.CopyFS(out, os.DirFS(site)); err != nil {
			t.Fatalf("copy %s: %v", site, err)
		}
		shotPrefix = filepath.Base(filepath.Clean(site)) + "-"
		t.Logf("checking the site in %s", site)
	}
	files := readSite(t, out)
	pages := htmlPages(files)
	sort.Strings(pages)
	// A probe page that does reach for the network proves the check sees
	// such requests (resource timing lists failed fetches too).
	const probe = "_probe.html"
	if err := os.WriteFile(filepath.Join(out, probe), []byte(`<!DOCTYPE html><img src="http://vitbench.invalid/x.png">`), 0o644); err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(append(pages, probe))
	if err := os.WriteFile(filepath.Join(out, "_check.html"), []byte(strings.Replace(checkPage, "PAGES", string(list), 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	dom := chromium(t, bin, "--allow-file-access-from-files", "--virtual-time-budget=3000", "--dump-dom", "file://"+filepath.Join(out, "_check.html"))
	t.Logf("dump-dom: %v", time.Since(t0))
	m := regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no result in the dumped DOM:\n%s", tail(dom, 2000))
	}
	var results map[string]pageState
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &results); err != nil {
		t.Fatalf("result %q: %v", tail(m[1], 500), err)
	}
	for _, e := range results["__pwned"].Errors {
		t.Error(e)
	}
	if r := results[IndexPage]; !sortedAsc(r.SortedUp) || !sortedAsc(reverseNonEmpty(r.SortedDown)) || len(r.SortedUp) == 0 {
		t.Errorf("summary table not sorted by top-1: up %v, down %v", r.SortedUp, r.SortedDown)
	}
	tips := 0
	for _, r := range results {
		tips += r.Tips
	}
	if tips < 100 {
		t.Errorf("only %d tooltips shown", tips)
	}
	if r := results[probe]; len(r.Resources) != 1 || r.Resources[0] != "http://vitbench.invalid/x.png" {
		t.Errorf("the network check did not see the probe's request: %+v", r)
	}
	totalCharts := 0
	for _, name := range pages {
		r, ok := results[name]
		if !ok {
			t.Errorf("%s: not checked", name)
			continue
		}
		for _, e := range r.Errors {
			t.Errorf("%s: %s", name, e)
		}
		wantCharts := strings.Count(files[name], `<div class="chart" id=`)
		if len(r.Charts) != wantCharts {
			t.Errorf("%s: %d chart containers in the DOM, %d in the file", name, len(r.Charts), wantCharts)
		}
		if wantCharts > 0 && !r.HasEcharts {
			t.Errorf("%s: echarts did not load", name)
		}
		for _, c := range r.Charts {
			totalCharts++
			switch {
			case !c.Instance:
				t.Errorf("%s %s: no ECharts instance", name, c.ID)
			case !c.Canvas:
				t.Errorf("%s %s: no canvas", name, c.ID)
			case c.Inked < 50:
				t.Errorf("%s %s: canvas nearly blank (%d inked samples)", name, c.ID, c.Inked)
			}
		}
		for _, res := range r.Resources {
			if !strings.HasPrefix(res, "file://") {
				t.Errorf("%s: loaded %s: a network request", name, res)
			}
		}
	}
	if totalCharts < 20 {
		t.Errorf("only %d charts checked across %d pages", totalCharts, len(pages))
	}

	// Screenshots for people: overview and the first trade-off page.
	shots := filepath.Join("..", "results", "report-screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	var tradeoff string
	for _, p := range pages {
		if strings.HasPrefix(p, "tradeoff-cifar10") {
			tradeoff = p
		}
	}
	for _, shot := range []struct{ page, file, size string }{
		{IndexPage, "overview.png", "1400,2600"},
		{tradeoff, "tradeoff.png", "1400,1500"},
	} {
		path, _ := filepath.Abs(filepath.Join(shots, shotPrefix+shot.file))
		os.Remove(path)
		chromium(t, bin, "--virtual-time-budget=5000", "--window-size="+shot.size, "--screenshot="+path, "file://"+filepath.Join(out, shot.page))
		if err := checkPNG(path); err != nil {
			t.Errorf("screenshot of %s: %v", shot.page, err)
		} else {
			t.Logf("screenshot of %s: %s", shot.page, path)
		}
	}
	t.Logf("%d pages, %d charts checked in %v", len(pages), totalCharts, time.Since(start).Round(time.Millisecond))
}

// checkPNG decodes a screenshot and checks it is not blank: its luminance
// varies and it has more than a handful of colours.
func checkPNG(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	b := img.Bounds()
	var n, sum, sum2 float64
	colours := map[[3]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			l := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 65535
			n++
			sum += l
			sum2 += l * l
			if len(colours) < 1000 {
				colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			}
		}
	}
	mean := sum / n
	variance := sum2/n - mean*mean
	if variance < 1e-3 || len(colours) < 50 {
		return fmt.Errorf("%s looks blank: luminance variance %.5f, %d colours", path, variance, len(colours))
	}
	return nil
}

// sortedAsc reports whether numeric sort keys ascend, empty keys last.
func sortedAsc(keys []string) bool {
	prev := math.Inf(-1)
	empty := false
	for _, k := range keys {
		if k == "" {
			empty = true
			continue
		}
		v, err := strconv.ParseFloat(k, 64)
		if err != nil || empty || v < prev {
			return false
		}
		prev = v
	}
	return true
}

// reverseNonEmpty reverses the non-empty keys, keeping empty ones last.
func reverseNonEmpty(keys []string) []string {
	var out, empty []string
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i] == "" {
			empty = append(empty, "")
		} else {
			out = append(out, keys[i])
		}
	}
	return append(out, empty...)
}
