package vit

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
)

// Token reduction shortens the token sequence inside the network, after a
// block's attention and before its MLP, so that the MLP and every later
// block see fewer tokens. Two methods are implemented, and a block may use
// both (first EViT, then ToMe):
//
//   - ToMe (Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023):
//     bipartite soft matching on the attention keys averaged over heads;
//     the r most similar pairs are merged by a size-weighted average, and
//     every token carries its size (how many patches it stands for). The
//     blocks after the first merge use proportional attention, adding
//     log(size) to the attention logits, as ToMe does with prop_attn.
//   - EViT (Liang et al., "Not All Patches are What You Need", ICLR 2022):
//     the patch tokens that receive the most class-token attention
//     (averaged over heads) are kept, ceil(keep_rate x patches) of them;
//     the others are optionally fused into one token, their sum weighted by
//     that attention.
//
// The class and distillation tokens are never merged or dropped and stay
// at positions 0 and 1. BlockConfig.TokensAfter gives the count each block
// leaves, which Count uses; a model built by New reduces exactly that many.

// TokenReduction is a block's TokenReducer: EViT keeping (when KeepRate is
// in (0, 1)), then ToMe merging (when MergeR > 0).
//
// A model built by New from a Config with MergeR or KeepRate set gets one
// per reducing block, with Fuse on (EViT's best setting, and the count
// BlockConfig.TokensAfter assumes), and shares token sizes between them.
// Such a model keeps per-forward-pass state, so one model must not run two
// forward passes at the same time.
type TokenReduction struct {
	KeepRate float64 // EViT: fraction of the patch tokens kept; 0 or 1 keeps all
	Fuse     bool    // EViT: fuse the dropped tokens into one extra token
	MergeR   int     // ToMe: tokens removed by merging, at most half the patch tokens
	Prefix   int     // leading tokens never dropped or merged (class, distillation)

	sizes *tokenSizes // shared by a model's reducers; nil: sizes start at 1 in every block
	reset bool        // the model's first reducing block: a new forward pass starts here
}

var _ TokenReducer = (*TokenReduction)(nil)

// NeedsAttention implements TokenReducer: EViT ranks tokens by class
// attention, ToMe matches them by their keys.
func (t *TokenReduction) NeedsAttention() bool { return true }

// keeps reports whether the EViT part drops tokens from n patch tokens,
// and how many it keeps.
func (t *TokenReduction) keeps(patches int) (int, bool) {
	if t.KeepRate <= 0 || t.KeepRate >= 1 {
		return patches, false
	}
	k := int(math.Ceil(t.KeepRate * float64(patches)))
	return k, k < patches
}

// Reduce implements TokenReducer. It returns x itself when nothing is
// reduced (ToMe with r = 0, a keep rate that keeps every token).
func (t *TokenReduction) Reduce(x, keys, clsAttn *ts.Tensor) *ts.Tensor {
	var size *ts.Tensor // [B,N,1] sizes of x's tokens; nil: all 1
	if t.sizes != nil {
		if t.reset {
			t.sizes.set(nil)
		}
		size = t.sizes.s
		if size != nil {
			if a, b := size.MustSize(), x.MustSize(); a[0] != b[0] || a[1] != b[1] {
				panic(fmt.Sprintf("vit: token sizes %v do not fit the tokens %v (is one model running two forward passes at once?)", a, b))
			}
		}
	}
	out, k, s := x, keys, size // tensors other than the arguments and size are owned here
	n := int(x.MustSize()[1])
	if kept, drop := t.keeps(n - t.Prefix); drop {
		top, rest := evitOrder(clsAttn, t.Prefix, kept)
		var w *ts.Tensor // [B,dropped,1] class attention of the dropped tokens
		if t.Fuse {
			pa := clsAttn.MustNarrow(1, int64(t.Prefix), int64(n-t.Prefix), false)
			w = pa.MustGather(1, rest, false, true).MustUnsqueeze(-1, true)
		}
		out = evitSelect(x, top, rest, w, t.Prefix, t.Fuse)
		k = nil
		if t.MergeR > 0 {
			k = evitSelect(keys, top, rest, w, t.Prefix, t.Fuse)
		}
		if t.sizes != nil {
			ts.NoGrad(func() {
				s0 := size
				if s0 == nil {
					s0 = onesFor(x)
					defer s0.MustDrop()
				}
				s = evitSelect(s0, top, rest, nil, t.Prefix, t.Fuse)
			})
		}
		for _, u := range []*ts.Tensor{top, rest, w} {
			if u != nil {
				u.MustDrop()
			}
		}
	}
	if t.MergeR > 0 && k != nil {
		if m := bipartiteSoftMatching(k, t.MergeR, t.Prefix); m != nil {
			xo, so := m.mergeWeighted(out, s)
			m.drop()
			if out != x {
				out.MustDrop()
			}
			if s != size && s != nil {
				s.MustDrop()
			}
			out, s = xo, so
		}
	}
	if k != keys && k != nil {
		k.MustDrop()
	}
	switch {
	case t.sizes != nil && s != size:
		t.sizes.set(s)
	case t.sizes == nil && s != nil && s != size:
		s.MustDrop()
	}
	return out
}

// onesFor returns unit sizes [B,N,1] for the tokens x [B,N,C], in x's
// dtype (a float16 model keeps float16 throughout).
func onesFor(x *ts.Tensor) *ts.Tensor {
	sz := x.MustSize()
	return ts.MustOnes([]int64{sz[0], sz[1], 1}, x.DType(), x.MustDevice())
}

// tokenSizes holds the sizes of the tokens of the forward pass in flight,
// shared by a model's reducers and proportional-attention taps.
type tokenSizes struct {
	s *ts.Tensor // [B,N,1] float; nil: every token has size 1
}

func (z *tokenSizes) set(s *ts.Tensor) {
	if z.s != nil && z.s != s {
		z.s.MustDrop()
	}
	z.s = s
}

// PropAttention is the proportional attention of ToMe as a Tap on the
// attention probabilities (SiteAttnMap): softmax(a + log s) is computed as
// p*s / sum(p*s) from p = softmax(a), with s the sizes of the key tokens.
// New installs it on the blocks after a model's first reducing block when
// the model merges tokens. Next, when set, runs on its output, so another
// tap on the attention map (a quantizer) should be chained there rather
// than replace it.
type PropAttention struct {
	Next  Tap
	sizes *tokenSizes
}

// Tap implements Tap.
func (p *PropAttention) Tap(attn *ts.Tensor) *ts.Tensor {
	out := attn
	if s := p.sizes.s; s != nil {
		sz := attn.MustSize() // [B,H,N,N]
		if ss := s.MustSize(); ss[0] != sz[0] || ss[1] != sz[3] {
			panic(fmt.Sprintf("vit: token sizes %v do not fit the attention map %v", ss, sz))
		}
		w := s.MustReshape([]int64{sz[0], 1, 1, sz[3]}, false)
		if w.DType() != attn.DType() {
			w = w.MustTotype(attn.DType(), true)
		}
		y := attn.MustMul(w, false)
		w.MustDrop()
		den := y.MustSumDimIntlist([]int64{-1}, true, y.DType(), false)
		out = y.MustDiv(den, true)
		den.MustDrop()
	}
	if p.Next != nil {
		next := p.Next.Tap(out)
		if next != out && out != attn {
			out.MustDrop()
		}
		out = next
	}
	return out
}

// reduces reports whether a block's configuration reduces tokens.
func (b BlockConfig) reduces() bool {
	return b.MergeR > 0 || (b.KeepRate > 0 && b.KeepRate < 1)
}

// attachReducers gives every block that the configuration asks to reduce
// tokens its TokenReduction, and, when the model merges, the blocks after
// the first reducing one proportional attention. Called by New.
func (m *Model) attachReducers() {
	first, merges := -1, false
	for i := range m.Blocks {
		bc := m.Cfg.Block(i)
		if bc.reduces() && first < 0 {
			first = i
		}
		merges = merges || bc.MergeR > 0
	}
	if first < 0 {
		return
	}
	var sizes *tokenSizes
	if merges {
		sizes = &tokenSizes{}
	}
	for i, b := range m.Blocks {
		bc := m.Cfg.Block(i)
		if bc.reduces() {
			b.Reducer = &TokenReduction{KeepRate: bc.KeepRate, Fuse: true, MergeR: bc.MergeR,
				Prefix: m.Cfg.NumPrefix(), sizes: sizes, reset: i == first}
		}
		if merges && i > first {
			b.Taps[SiteAttnMap] = &PropAttention{Next: b.Taps[SiteAttnMap], sizes: sizes}
		}
	}
}

// gatherTokens returns x[b, idx[b, i], :] for x [B,N,C] and idx [B,K].
func gatherTokens(x, idx *ts.Tensor) *ts.Tensor {
	sz := x.MustSize()
	isz := idx.MustSize()
	e := idx.MustUnsqueeze(-1, false).MustExpand([]int64{isz[0], isz[1], sz[2]}, false, true)
	out := x.MustGather(1, e, false, false)
	e.MustDrop()
	return out
}

// evitOrder ranks the patch tokens by class attention [B,N]: the indices
// (among the patch tokens) of the kept ones, in their original order, and
// of the dropped ones.
func evitOrder(clsAttn *ts.Tensor, prefix, kept int) (top, rest *ts.Tensor) {
	ts.NoGrad(func() {
		n := clsAttn.MustSize()[1]
		pa := clsAttn.MustNarrow(1, int64(prefix), n-int64(prefix), false)
		order := pa.MustArgsort(1, true, true)
		t := order.MustNarrow(1, 0, int64(kept), false)
		var perm *ts.Tensor
		top, perm = t.MustSort(1, false, true)
		perm.MustDrop()
		rest = order.MustNarrow(1, int64(kept), n-int64(prefix)-int64(kept), true)
	})
	return top, rest
}

// evitSelect keeps the prefix and the top patch tokens of x [B,N,C], and
// when fuse adds one token summing the rest, each weighted by w [B,R,1]
// (unweighted when w is nil), as EViT's fused token.
func evitSelect(x, top, rest, w *ts.Tensor, prefix int, fuse bool) *ts.Tensor {
	n := x.MustSize()[1]
	head := x.MustNarrow(1, 0, int64(prefix), false)
	patches := x.MustNarrow(1, int64(prefix), n-int64(prefix), false)
	parts := []*ts.Tensor{head, gatherTokens(patches, top)}
	if fuse {
		dropped := gatherTokens(patches, rest)
		if w != nil {
			if w.DType() != x.DType() {
				w = w.MustTotype(x.DType(), false)
				defer w.MustDrop()
			}
			dropped = dropped.MustMul(w, true)
		}
		parts = append(parts, dropped.MustSumDimIntlist([]int64{1}, true, x.DType(), true))
	}
	patches.MustDrop()
	out := ts.MustCat(parts, 1)
	for _, p := range parts {
		p.MustDrop()
	}
	return out
}

// matching is the outcome of ToMe's bipartite soft matching on N tokens
// split into A (even positions) and B (odd positions).
type matching struct {
	n, na, nb, r, prefix int64
	unm                  *ts.Tensor // [B,na-r] A tokens kept, in order
	src                  *ts.Tensor // [B,r] A tokens merged away
	dst                  *ts.Tensor // [B,r] the B token each one merges into
}

func (m *matching) drop() {
	m.unm.MustDrop()
	m.src.MustDrop()
	m.dst.MustDrop()
}

// bipartiteSoftMatching follows ToMe's bipartite_soft_matching: tokens at
// even positions (A) are matched to their most cosine-similar token at an
// odd position (B) by the metric [B,N,C] (keys averaged over heads); the r
// A tokens with the most similar matches are merged into them. Tokens
// before prefix take part in no match. r is clipped to (N - prefix) / 2;
// nil means nothing is merged.
func bipartiteSoftMatching(metric *ts.Tensor, r, prefix int) *matching {
	sz := metric.MustSize()
	n := sz[1]
	if max := (n - int64(prefix)) / 2; int64(r) > max {
		r = int(max)
	}
	if r <= 0 {
		return nil
	}
	m := &matching{n: n, na: (n + 1) / 2, nb: n / 2, r: int64(r), prefix: int64(prefix)}
	ts.NoGrad(func() {
		norm := metric.MustNormScalaroptDim(ts.FloatScalar(2), []int64{-1}, true, false).
			MustClampMin(ts.FloatScalar(1e-12), true)
		unit := metric.MustDiv(norm, false)
		norm.MustDrop()
		a := unit.MustSlice(1, []int64{0}, []int64{n}, 2, false)
		b := unit.MustSlice(1, []int64{1}, []int64{n}, 2, true)
		bt := b.MustTranspose(-1, -2, true)
		scores := a.MustMatmul(bt, true) // [B,na,nb]
		bt.MustDrop()
		ninf := ts.FloatScalar(math.Inf(-1))
		for i := int64(0); i < m.prefix; i++ {
			dim := int64(1) // prefix token i is A[i/2] when even, B[i/2] when odd
			if i%2 == 1 {
				dim = 2
			}
			v := scores.MustNarrow(dim, i/2, 1, false)
			v.MustFill_(ninf)
			v.MustDrop()
		}
		nodeMax, nodeIdx := scores.MustMaxDim(-1, false, true)
		edge := nodeMax.MustArgsort(-1, true, true)
		unm := edge.MustNarrow(1, m.r, m.na-m.r, false)
		var perm *ts.Tensor
		m.unm, perm = unm.MustSort(1, false, true)
		perm.MustDrop()
		m.src = edge.MustNarrow(1, 0, m.r, true)
		m.dst = nodeIdx.MustGather(1, m.src, false, true)
	})
	return m
}

// merge sums the merged tokens of x [B,N,C] into their matches and
// returns [B,N-r,C], the prefix tokens first, in their order.
func (m *matching) merge(x *ts.Tensor) *ts.Tensor {
	sz := x.MustSize()
	a := x.MustSlice(1, []int64{0}, []int64{m.n}, 2, false)
	b := x.MustSlice(1, []int64{1}, []int64{m.n}, 2, false)
	unm := gatherTokens(a, m.unm)
	src := gatherTokens(a, m.src)
	a.MustDrop()
	idx := m.dst.MustUnsqueeze(-1, false).MustExpand([]int64{sz[0], m.r, sz[2]}, false, true)
	dst := b.MustScatterAdd(1, idx, src, true)
	idx.MustDrop()
	src.MustDrop()
	// The prefix tokens alternate between A and B: token i is A[i/2] or
	// B[i/2]. They lead, in order; then the other kept A tokens, then B.
	var parts []*ts.Tensor
	for i := int64(0); i < m.prefix; i++ {
		if i%2 == 0 {
			parts = append(parts, unm.MustNarrow(1, i/2, 1, false))
		} else {
			parts = append(parts, dst.MustNarrow(1, i/2, 1, false))
		}
	}
	pa, pb := (m.prefix+1)/2, m.prefix/2
	parts = append(parts, unm.MustNarrow(1, pa, m.na-m.r-pa, false), dst.MustNarrow(1, pb, m.nb-pb, false))
	out := ts.MustCat(parts, 1)
	for _, p := range parts {
		p.MustDrop()
	}
	unm.MustDrop()
	dst.MustDrop()
	return out
}

// mergeWeighted is ToMe's merge_wavg: the merged tokens are averaged
// weighted by size, and the sizes add up. size nil means all 1. It
// returns the new tokens and sizes.
func (m *matching) mergeWeighted(x, size *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	var newSize *ts.Tensor
	ts.NoGrad(func() {
		s := size
		if s == nil {
			s = onesFor(x)
			defer s.MustDrop()
		}
		newSize = m.merge(s)
	})
	xs := x
	if size != nil {
		xs = x.MustMul(size, false)
	}
	sum := m.merge(xs)
	if xs != x {
		xs.MustDrop()
	}
	return sum.MustDiv(newSize, true), newSize
}
