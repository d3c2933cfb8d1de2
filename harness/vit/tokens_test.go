package vit

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

func tokenTestConfig(distilled bool) Config {
	return Config{Name: "tok", ImgSize: 16, PatchSize: 2, InChans: 3, NumClasses: 5,
		EmbedDim: 24, Depth: 4, NumHeads: 2, MLPRatio: 2, QKVBias: true, Distilled: distilled}
}

// newTokenModel builds cfg with every block's reduction set by set, with
// the weights of seed.
func newTokenModel(t *testing.T, cfg Config, set func(i int, b *BlockConfig)) *Model {
	t.Helper()
	if set != nil {
		cfg = cfg.WithBlocks()
		for i := range cfg.Blocks {
			set(i, &cfg.Blocks[i])
		}
	}
	torchrt.ManualSeed(7)
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTokenReductionFollowsCounts(t *testing.T) {
	tests := []struct {
		name      string
		distilled bool
		set       func(i int, b *BlockConfig)
	}{
		{"tome r=5", false, func(i int, b *BlockConfig) { b.MergeR = 5 }},
		{"tome r=5 distilled", true, func(i int, b *BlockConfig) { b.MergeR = 5 }},
		{"tome r clipped", false, func(i int, b *BlockConfig) { b.MergeR = 100 }},
		{"tome odd blocks", false, func(i int, b *BlockConfig) { b.MergeR = 3 * (i % 2) }},
		{"evit 0.7 at block 1", false, func(i int, b *BlockConfig) {
			if i == 1 {
				b.KeepRate = 0.7
			}
		}},
		{"evit 0.5 distilled", true, func(i int, b *BlockConfig) { b.KeepRate = 0.5 }},
		{"evit keeps all", false, func(i int, b *BlockConfig) { b.KeepRate = 0.999 }},
		{"evit then tome", true, func(i int, b *BlockConfig) { b.KeepRate, b.MergeR = 0.8, 4 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenModel(t, tokenTestConfig(tt.distilled), tt.set)
			defer m.Drop()
			x := ts.MustRandn([]int64{3, 3, 16, 16}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			counts := m.Cfg.Count()
			var want []int // tokens the MLP of each block sees
			for _, l := range counts.Layers {
				if strings.HasSuffix(l.Name, ".mlp.fc1") {
					want = append(want, l.Tokens)
				}
			}
			blocks := m.Blocks
			defer func() { m.Blocks = blocks }()
			for i := range blocks {
				m.Blocks = blocks[:i+1] // the sequence after block i
				var f *ts.Tensor
				torchrt.NoGrad(func() { f = m.Features(x) })
				got := int(f.MustSize()[1])
				finite := f.MustIsfinite(false).MustAll(true)
				ok := finite.Int64Values()[0] == 1
				f.MustDrop()
				finite.MustDrop()
				if got != want[i] {
					t.Errorf("block %d leaves %d tokens, Count says %d", i, got, want[i])
				}
				if !ok {
					t.Errorf("block %d: non-finite features", i)
				}
			}
		})
	}
}

// TestNoReductionReproducesLogits attaches reducers that reduce nothing
// (ToMe with r = 0, keep rates that keep every token), with the size
// tracking and proportional attention of a merging model, and expects the
// logits of the plain model bit for bit.
func TestNoReductionReproducesLogits(t *testing.T) {
	tests := []struct {
		name string
		r    *TokenReduction
	}{
		{"tome r=0", &TokenReduction{MergeR: 0}},
		{"evit keep 1", &TokenReduction{KeepRate: 1, Fuse: true}},
		{"evit keep 0.999", &TokenReduction{KeepRate: 0.999, Fuse: true}},
	}
	for _, distilled := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				plain := newTokenModel(t, tokenTestConfig(distilled), nil)
				defer plain.Drop()
				red := newTokenModel(t, tokenTestConfig(distilled), nil)
				defer red.Drop()
				sizes := &tokenSizes{}
				for i, b := range red.Blocks {
					r := *tt.r
					r.Prefix, r.sizes, r.reset = red.Cfg.NumPrefix(), sizes, i == 0
					b.Reducer = &r
					if i > 0 {
						b.Taps[SiteAttnMap] = &propAttention{sizes: sizes}
					}
				}
				x := ts.MustRandn([]int64{2, 3, 16, 16}, gotch.Float, gotch.CPU)
				defer x.MustDrop()
				var a, b *ts.Tensor
				torchrt.NoGrad(func() {
					a = plain.Forward(x)
					b = red.Forward(x)
				})
				defer a.MustDrop()
				defer b.MustDrop()
				if !a.MustEqual(b, false) {
					d := a.MustSub(b, false).MustAbs(true).MustMax(true)
					t.Errorf("logits differ by up to %g", d.Float64Values()[0])
					d.MustDrop()
				}
			})
		}
	}
}

// tomeReference is ToMe's merge.py (facebookresearch/ToMe:
// bipartite_soft_matching and merge_wavg) and its proportional attention,
// verbatim but for the I/O.
const tomeReference = `
import json, math, sys
import torch

def bipartite_soft_matching(metric, r, class_token=False, distill_token=False):
    protected = 0
    if class_token:
        protected += 1
    if distill_token:
        protected += 1
    t = metric.shape[1]
    r = min(r, (t - protected) // 2)
    if r <= 0:
        return (lambda x, mode="mean": x)
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[..., ::2, :], metric[..., 1::2, :]
        scores = a @ b.transpose(-1, -2)
        if class_token:
            scores[..., 0, :] = -math.inf
        if distill_token:
            scores[..., :, 0] = -math.inf
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx = edge_idx[..., r:, :]
        src_idx = edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
        if class_token:
            unm_idx = unm_idx.sort(dim=1)[0]
    def merge(x, mode="mean"):
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        if distill_token:
            return torch.cat([unm[:, :1], dst[:, :1], unm[:, 1:], dst[:, 1:]], dim=1)
        else:
            return torch.cat([unm, dst], dim=1)
    return merge

def merge_wavg(merge, x, size=None):
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    x = x / size
    return x, size

out = []
for c in json.load(sys.stdin):
    shape = c["shape"]
    x = torch.tensor(c["x"], dtype=torch.float32).reshape(shape)
    k = torch.tensor(c["k"], dtype=torch.float32).reshape(shape[0], shape[1], -1)
    s = torch.tensor(c["s"], dtype=torch.float32).reshape(shape[0], shape[1], 1)
    merge = bipartite_soft_matching(k, c["r"], True, c["prefix"] == 2)
    y, s2 = merge_wavg(merge, x, s)
    logits = torch.tensor(c["a"], dtype=torch.float32).reshape(shape[0], 2, shape[1], shape[1])
    attn = (logits + s.log()[:, None, None, :, 0]).softmax(dim=-1)
    out.append({"x": y.flatten().tolist(), "s": s2.flatten().tolist(), "shape": list(y.shape),
                "attn": attn.flatten().tolist()})
json.dump(out, sys.stdout)
`

func TestToMeMatchesReference(t *testing.T) {
	if _, err := os.Stat(referencePython); err != nil {
		t.Fatalf("reference interpreter %s missing: run make setup (installs python3-torch)", referencePython)
	}
	type refIn struct {
		Shape  []int64   `json:"shape"`
		X      []float64 `json:"x"`
		K      []float64 `json:"k"`
		S      []float64 `json:"s"`
		A      []float64 `json:"a"`
		R      int       `json:"r"`
		Prefix int       `json:"prefix"`
	}
	type refOut struct {
		X     []float64 `json:"x"`
		S     []float64 `json:"s"`
		Shape []int64   `json:"shape"`
		Attn  []float64 `json:"attn"`
	}
	tests := []struct {
		n, r, prefix int
	}{{11, 3, 1}, {12, 5, 1}, {12, 5, 2}, {9, 4, 2}, {10, 100, 1}, {17, 1, 2}}
	torchrt.ManualSeed(3)
	var ins []refIn
	type goIn struct{ x, k, s, a *ts.Tensor }
	var gos []goIn
	for _, tt := range tests {
		const b, c, hd = 2, 6, 4
		x := ts.MustRandn([]int64{b, int64(tt.n), c}, gotch.Float, gotch.CPU)
		k := ts.MustRandn([]int64{b, int64(tt.n), hd}, gotch.Float, gotch.CPU)
		s := ts.MustRand([]int64{b, int64(tt.n), 1}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(3), true).MustAddScalar(ts.FloatScalar(1), true)
		a := ts.MustRandn([]int64{b, 2, int64(tt.n), int64(tt.n)}, gotch.Float, gotch.CPU)
		gos = append(gos, goIn{x, k, s, a})
		ins = append(ins, refIn{Shape: x.MustSize(), X: x.Float64Values(), K: k.Float64Values(), S: s.Float64Values(),
			A: a.Float64Values(), R: tt.r, Prefix: tt.prefix})
	}
	defer func() {
		for _, g := range gos {
			for _, x := range []*ts.Tensor{g.x, g.k, g.s, g.a} {
				x.MustDrop()
			}
		}
	}()
	in, _ := json.Marshal(ins)
	cmd := exec.Command(referencePython, "-c", tomeReference)
	cmd.Stdin = strings.NewReader(string(in))
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	var outs []refOut
	if err := json.Unmarshal(outb, &outs); err != nil {
		t.Fatal(err)
	}
	maxDiff := func(got *ts.Tensor, want []float64) float64 {
		g := got.Float64Values()
		if len(g) != len(want) {
			return math.Inf(1)
		}
		d := 0.0
		for i := range g {
			d = math.Max(d, math.Abs(g[i]-want[i]))
		}
		return d
	}
	for i, tt := range tests {
		g := gos[i]
		y, s := tomeReduce(g.x, g.k, g.s, tt.r, tt.prefix)
		if y == nil {
			y, s = g.x.MustShallowClone(), g.s.MustShallowClone()
		}
		if got, want := y.MustSize(), outs[i].Shape; len(got) != 3 || got[1] != want[1] {
			t.Errorf("n=%d r=%d prefix=%d: merged shape %v, ToMe %v", tt.n, tt.r, tt.prefix, got, want)
		} else {
			if d := maxDiff(y, outs[i].X); d > 1e-5 {
				t.Errorf("n=%d r=%d prefix=%d: merged tokens differ from ToMe by %g", tt.n, tt.r, tt.prefix, d)
			}
			if d := maxDiff(s, outs[i].S); d > 1e-5 {
				t.Errorf("n=%d r=%d prefix=%d: sizes differ from ToMe by %g", tt.n, tt.r, tt.prefix, d)
			}
		}
		y.MustDrop()
		s.MustDrop()

		p := &propAttention{sizes: &tokenSizes{s: g.s}}
		soft := g.a.MustSoftmax(-1, gotch.Float, false)
		pa := p.Tap(soft)
		if d := maxDiff(pa, outs[i].Attn); d > 1e-6 {
			t.Errorf("n=%d: proportional attention differs from softmax(a + log s) by %g", tt.n, d)
		}
		soft.MustDrop()
		pa.MustDrop()
	}
}

// TestEViTKeepsAttentiveTokens checks the kept tokens, their order and the
// fused token on a hand-made sequence.
func TestEViTKeepsAttentiveTokens(t *testing.T) {
	// Token j of 7 holds the values (j, 10j); token 0 is the class token.
	vals := make([]float32, 0, 14)
	for j := 0; j < 7; j++ {
		vals = append(vals, float32(j), float32(10*j))
	}
	x := ts.MustOfSlice(vals).MustReshape([]int64{1, 7, 2}, true)
	defer x.MustDrop()
	attn := ts.MustOfSlice([]float32{0.3, 0.05, 0.2, 0.01, 0.3, 0.04, 0.1}).MustReshape([]int64{1, 7}, true)
	defer attn.MustDrop()
	keys := x.MustShallowClone()
	defer keys.MustDrop()
	tests := []struct {
		keep float64
		fuse bool
		want []float64 // token first values
		size []float64
	}{
		// 6 patch tokens, keep ceil(0.5*6)=3: tokens 2, 4, 6 by attention,
		// in their order; fused = 0.05*1 + 0.01*3 + 0.04*5.
		{0.5, true, []float64{0, 2, 4, 6, 0.05*1 + 0.01*3 + 0.04*5}, []float64{1, 1, 1, 1, 3}},
		{0.5, false, []float64{0, 2, 4, 6}, []float64{1, 1, 1, 1}},
		// keep ceil(0.2*6)=2: tokens 2 and 4.
		{0.2, true, []float64{0, 2, 4, 0.05*1 + 0.01*3 + 0.04*5 + 0.1*6}, []float64{1, 1, 1, 4}},
		{0.15, true, []float64{0, 4, 0.05*1 + 0.2*2 + 0.01*3 + 0.04*5 + 0.1*6}, []float64{1, 1, 5}},
	}
	for _, tt := range tests {
		sizes := &tokenSizes{}
		r := &TokenReduction{KeepRate: tt.keep, Fuse: tt.fuse, Prefix: 1, sizes: sizes, reset: true}
		y := r.Reduce(x, keys, attn)
		got := y.Float64Values()
		var first []float64
		for i := 0; i < len(got); i += 2 {
			first = append(first, got[i])
			if math.Abs(got[i+1]-10*got[i]) > 1e-5 {
				t.Errorf("keep %g: token %d mixes channels: %v", tt.keep, i/2, got[i:i+2])
			}
		}
		if !closeSlices(first, tt.want, 1e-6) {
			t.Errorf("keep %g fuse %t: tokens %v, want %v", tt.keep, tt.fuse, first, tt.want)
		}
		if !closeSlices(sizes.s.Float64Values(), tt.size, 0) {
			t.Errorf("keep %g fuse %t: sizes %v, want %v", tt.keep, tt.fuse, sizes.s.Float64Values(), tt.size)
		}
		y.MustDrop()
		sizes.set(nil)
	}
}

func closeSlices(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// TestTokenMergingTrains checks that gradients flow through merged tokens
// to every parameter.
func TestTokenMergingTrains(t *testing.T) {
	m := newTokenModel(t, tokenTestConfig(false), func(i int, b *BlockConfig) { b.MergeR, b.KeepRate = 6, 0.9 })
	defer m.Drop()
	x := ts.MustRandn([]int64{2, 3, 16, 16}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	y := ts.MustOfSlice([]int64{1, 3})
	defer y.MustDrop()
	runtime.LockOSThread() // grad mode is per OS thread
	defer runtime.UnlockOSThread()
	prev := ts.MustGradSetEnabled(true)
	defer ts.MustGradSetEnabled(prev)
	loss := m.Forward(x).MustCrossEntropyLoss(y, ts.None, 1, -100, 0, true)
	loss.MustBackward()
	loss.MustDrop()
	for name, v := range m.VS.Variables() {
		g := v.MustGrad(false)
		if !g.MustDefined() {
			t.Errorf("%s: no gradient", name)
		}
		g.MustDrop()
	}
}

// TestTokenReductionFreesTensors runs forward passes with the garbage
// collector off and checks that the reducers free every tensor they make:
// a reducing model leaves no more tensors behind than the plain one.
func TestTokenReductionFreesTensors(t *testing.T) {
	live := func() int {
		report := ts.CheckCMemLeak()
		const key = "Tensors not been released: "
		i := strings.Index(report, key)
		if i < 0 {
			t.Fatalf("gotch's CheckCMemLeak report changed: %s", report)
		}
		line := report[i+len(key):]
		return strings.Count(line[:strings.IndexByte(line, '\n')], `"`) / 2
	}
	leftBehind := func(m *Model, train bool) int {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		x := ts.MustRandn([]int64{2, 3, 16, 16}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		pass := func() {
			if train {
				prev := ts.MustGradSetEnabled(true)
				y := m.Forward(x)
				l := y.MustSum(gotch.Float, true)
				l.MustBackward()
				l.MustDrop()
				ts.MustGradSetEnabled(prev)
				return
			}
			var y *ts.Tensor
			torchrt.NoGrad(func() { y = m.Forward(x) })
			y.MustDrop()
		}
		pass() // the first pass creates the token sizes the model keeps
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		before := live()
		for range 10 {
			pass()
		}
		return live() - before
	}
	for _, train := range []bool{false, true} {
		plain := newTokenModel(t, tokenTestConfig(true), nil)
		base := leftBehind(plain, train)
		plain.Drop()
		tests := []struct {
			name string
			set  func(i int, b *BlockConfig)
		}{
			{"tome", func(i int, b *BlockConfig) { b.MergeR = 5 }},
			{"evit", func(i int, b *BlockConfig) { b.KeepRate = 0.6 }},
			{"evit+tome", func(i int, b *BlockConfig) { b.KeepRate, b.MergeR = 0.8, 3 }},
		}
		for _, tt := range tests {
			m := newTokenModel(t, tokenTestConfig(true), tt.set)
			if got := leftBehind(m, train); got != base {
				t.Errorf("%s (training %t): 10 passes left %d tensors behind, the plain model %d", tt.name, train, got, base)
			}
			m.Drop()
		}
	}
}
