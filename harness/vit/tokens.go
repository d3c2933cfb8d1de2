package vit

import (
	"fmt"
	"math"
	"sort"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
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
//
// Note: EViT's choice of tokens (the ranking by class attention) is made
// on the host and the tokens are combined by one index_add; ToMe's
// matching and merge are batched tensor operations (tomeReduce), about
// fifty per reducing block. Every tensor operation is a cgo call that
// returns a new Go wrapper, so at small batches a reducer's cost is its
// number of tensor operations: there ToMe's host matching, with a dozen,
// was cheaper on small models (docs/tokens.md).
func (t *TokenReduction) Reduce(x, keys, clsAttn *ts.Tensor) *ts.Tensor {
	track := t.sizes != nil
	var size *ts.Tensor // [B,N,1] sizes of x's tokens; nil: all 1
	if track {
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
		out, k, s = evitReduce(x, keys, size, clsAttn, t.Prefix, kept, t.Fuse, t.MergeR > 0, track)
	}
	if t.MergeR > 0 && k != nil {
		if xo, so := tomeReduce(out, k, s, t.MergeR, t.Prefix); xo != nil {
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
	case track && s != size:
		t.sizes.set(s)
	case !track && s != nil && s != size:
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

// hostValues copies t's elements to the host as float32. It reads the
// memory directly: gotch's CopyData checks a slice element by element
// through reflection, which costs more than a block of the model.
func hostValues(t *ts.Tensor) []float32 {
	out := make([]float32, t.Numel())
	torchrt.NoGrad(func() {
		c := t
		if t.DType() != gotch.Float || t.MustDevice().IsCuda() || !t.MustIsContiguous() {
			c = t.MustTo(gotch.CPU, false).MustTotype(gotch.Float, true).MustContiguous(true)
			defer c.MustDrop()
		}
		copy(out, unsafe.Slice((*float32)(c.MustDataPtr()), len(out)))
	})
	return out
}

// fromHost makes a tensor of the given shape and dtype (matching T) on
// dev from v.
func fromHost[T int64 | float32](v []T, shape []int64, dtype gotch.DType, dev gotch.Device) *ts.Tensor {
	var zero T
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*int(unsafe.Sizeof(zero)))
	t := ts.MustOfDataSize(b, shape, dtype)
	if dev.IsCuda() {
		t = t.MustTo(dev, true)
	}
	return t
}

// sameDType returns t in x's dtype: t itself, or a cast the caller drops.
func sameDType(t, x *ts.Tensor) *ts.Tensor {
	if t.DType() == x.DType() {
		return t
	}
	return t.MustTotype(x.DType(), false)
}

// scatterTokens sums the tokens of src [B,N,C] into slots: token n of
// batch element b goes to slot dest[b*N+n] (in [0, slots)). It returns
// [B,slots,C]; dest is changed.
func scatterTokens(src *ts.Tensor, dest []int64, slots int64) *ts.Tensor {
	sz := src.MustSize()
	b, n, c := sz[0], sz[1], sz[2]
	for i := range dest {
		dest[i] += int64(i) / n * slots
	}
	idx := fromHost(dest, []int64{int64(len(dest))}, gotch.Int64, src.MustDevice())
	flat := src.MustReshape([]int64{b * n, c}, false)
	out := ts.MustZeros([]int64{b * slots, c}, src.DType(), src.MustDevice()).
		MustIndexAdd(0, idx, flat, true).
		MustReshape([]int64{b, slots, c}, true)
	flat.MustDrop()
	idx.MustDrop()
	return out
}

// columns splits t [B,N,C] along its last dimension at the given widths;
// a width of 0 yields nil. The parts share t's storage.
func columns(t *ts.Tensor, widths ...int64) []*ts.Tensor {
	out := make([]*ts.Tensor, len(widths))
	off := int64(0)
	for i, w := range widths {
		if w > 0 {
			out[i] = t.MustNarrow(-1, off, w, false)
		}
		off += w
	}
	return out
}

// evitReduce keeps the prefix and the kept patch tokens with the most
// class attention [B,N], in their original order, and, when fuse, one
// more token: the sum of the dropped ones, each weighted by its class
// attention (EViT's fused token). The keys follow when withKeys, the
// sizes (the fused token's is the sum of the dropped ones') when
// withSize. The returned tensors are new.
func evitReduce(x, keys, size, clsAttn *ts.Tensor, prefix, kept int, fuse, withKeys, withSize bool) (xo, ko, so *ts.Tensor) {
	sz := x.MustSize()
	b, n, c := int(sz[0]), int(sz[1]), sz[2]
	attn := hostValues(clsAttn)
	dest := make([]int64, b*n)
	dropped := make([]float32, b*n)
	order := make([]int, n-prefix)
	for bi := 0; bi < b; bi++ {
		row := attn[bi*n : (bi+1)*n]
		for i := range order {
			order[i] = prefix + i
		}
		sort.SliceStable(order, func(i, j int) bool { return row[order[i]] > row[order[j]] })
		d := dest[bi*n : (bi+1)*n]
		for j := range d {
			d[j] = -1
		}
		for _, j := range order[:kept] {
			d[j] = 0 // kept; numbered below
		}
		slot := int64(prefix)
		for j := range d {
			switch {
			case j < prefix:
				d[j] = int64(j)
			case d[j] == 0:
				d[j] = slot
				slot++
			default: // the fused token, or a slot cut off below
				d[j] = int64(prefix + kept)
				dropped[bi*n+j] = 1
			}
		}
	}
	// Weights: 1 for the kept tokens, the class attention for the dropped
	// ones, computed on the graph so that training reaches the attention.
	var w *ts.Tensor
	if fuse {
		drop := fromHost(dropped, []int64{int64(b), int64(n), 1}, gotch.Float, x.MustDevice())
		w = clsAttn.MustUnsqueeze(-1, false).MustSubScalar(ts.FloatScalar(1), true).
			MustMul(drop, true).MustAddScalar(ts.FloatScalar(1), true)
		drop.MustDrop()
		if cw := sameDType(w, x); cw != w {
			w.MustDrop()
			w = cw
		}
		defer w.MustDrop()
	}
	// The columns to combine: x, then the keys, then the sizes.
	var parts, owned []*ts.Tensor
	add := func(t *ts.Tensor, weighted, own bool) {
		if weighted && w != nil {
			if own {
				owned = append(owned, t)
			}
			t, own = t.MustMul(w, false), true
		}
		parts = append(parts, t)
		if own {
			owned = append(owned, t)
		}
	}
	add(x, true, false)
	var kw, sw int64
	if withKeys {
		k := sameDType(keys, x)
		add(k, true, k != keys)
		kw = keys.MustSize()[2]
	}
	if withSize {
		if size == nil {
			add(onesFor(x), false, true)
		} else {
			add(size, false, false)
		}
		sw = 1
	}
	src := parts[0]
	if len(parts) > 1 {
		src = ts.MustCat(parts, -1)
		owned = append(owned, src)
	}
	res := scatterTokens(src, dest, int64(prefix+kept+1))
	for _, t := range owned {
		t.MustDrop()
	}
	if !fuse {
		res = res.MustNarrow(1, 0, int64(prefix+kept), true)
	}
	cols := columns(res, c, kw, sw)
	res.MustDrop()
	xo, ko, so = cols[0], cols[1], cols[2]
	if kw+sw > 0 {
		xo = xo.MustContiguous(true)
	}
	if so != nil {
		so = so.MustDetach(true).MustContiguous(true)
	}
	return xo, ko, so
}

// tomeReduce is ToMe's bipartite soft matching and size-weighted merge
// (bipartite_soft_matching and merge_wavg of facebookresearch/ToMe) of x
// [B,N,C] with sizes s (nil: all 1), matched by the keys k [B,N,C']: the
// tokens at even positions (A) are matched to their most cosine-similar
// token at an odd position (B), and the r A tokens with the most similar
// matches are averaged, weighted by size, into them. Tokens before prefix
// take part in no match and lead the result in their order; then come
// the other kept A tokens in order, then the B tokens, as in ToMe. r is
// clipped to (N - prefix) / 2; nil results mean nothing was merged.
//
// Both the matching and the merge are batched tensor operations on x's
// device, as in ToMe's code; nothing is copied to the host.
func tomeReduce(x, k, s *ts.Tensor, r, prefix int) (xo, so *ts.Tensor) {
	if x.MustSize()[0] == 1 && x.MustDevice() == gotch.CPU {
		return hostTomeReduce(x, k, s, r, prefix)
	}
	return tensorTomeReduce(x, k, s, r, prefix)
}

// tensorTomeReduce is tomeReduce in batched tensor ops, as ToMe's
// merge.py runs it: the matching (tomeMatch) and the merge (tomeMerge)
// on the device.
func tensorTomeReduce(x, k, s *ts.Tensor, r, prefix int) (xo, so *ts.Tensor) {
	n := int(x.MustSize()[1])
	r = min(r, (n-prefix)/2)
	if r <= 0 {
		return nil, nil
	}
	unm, src, dst := tomeMatch(k, r, prefix)
	// merge_wavg: x*s and s are merged (summed) alike, then divided.
	var xs, size *ts.Tensor
	if s == nil {
		xs, size = x, onesFor(x)
	} else {
		xs, size = x.MustMul(s, false), s
	}
	merged := tomeMerge([]*ts.Tensor{xs, size}, unm, src, dst, prefix)
	for _, t := range []*ts.Tensor{unm, src, dst} {
		t.MustDrop()
	}
	if xs != x {
		xs.MustDrop()
	}
	if size != s {
		size.MustDrop()
	}
	so = merged[1].MustDetach(true)
	xo = merged[0].MustDiv(so, true)
	return xo, so
}

// hostTomeReduce is ToMe's bipartite soft matching and size-weighted merge
// (bipartite_soft_matching and merge_wavg of facebookresearch/ToMe) of x
// [B,N,C] with sizes s (nil: all 1), matched by the keys k [B,N,C']: the
// tokens at even positions (A) are matched to their most cosine-similar
// token at an odd position (B), and the r A tokens with the most similar
// matches are averaged, weighted by size, into them. Tokens before prefix
// take part in no match and lead the result in their order; then come
// the other kept A tokens in order, then the B tokens, as in ToMe. r is
// clipped to (N - prefix) / 2; nil results mean nothing was merged.
//
// The similarities are one matmul (tomeSimilarity), the matching's max
// and sorts run on the host (tomeDest) and the merge is one index_add:
// about twenty libtorch calls against the tensor path's fifty, which is
// why tomeReduce takes it for a single image on the CPU (where
// BenchmarkToMeMatching measures it faster); the tensor path is tested
// against it.
func hostTomeReduce(x, k, s *ts.Tensor, r, prefix int) (xo, so *ts.Tensor) {
	sz := x.MustSize()
	b, n, c := int(sz[0]), int(sz[1]), sz[2]
	r = min(r, (n-prefix)/2)
	if r <= 0 {
		return nil, nil
	}
	scores := tomeSimilarity(k)
	dest := tomeDest(hostValues(scores), b, n, r, prefix)
	scores.MustDrop()
	var src *ts.Tensor
	if s == nil {
		ones := onesFor(x)
		src = ts.MustCat([]*ts.Tensor{x, ones}, -1)
		ones.MustDrop()
	} else {
		xs := x.MustMul(s, false)
		src = ts.MustCat([]*ts.Tensor{xs, s}, -1)
		xs.MustDrop()
	}
	res := scatterTokens(src, dest, int64(n-r))
	src.MustDrop()
	cols := columns(res, c, 1)
	res.MustDrop()
	so = cols[1].MustDetach(true).MustContiguous(true)
	xo = cols[0].MustDiv(so, true)
	return xo, so
}

// tomeDest runs ToMe's matching for every batch element on the cosine
// similarities of the A tokens to the B tokens, scores [B,Na,Nb] as
// tomeSimilarity computes them, and returns every token's slot in the
// merged sequence. Tokens before prefix take part in no match.
func tomeDest(scores []float32, b, n, r, prefix int) []int64 {
	na, nb := (n+1)/2, n/2
	pa, pb := (prefix+1)/2, prefix/2 // protected tokens in A and in B
	// dstSlot is the slot of B token j, unmSlot that of the u-th kept A
	// token.
	dstSlot := func(j int) int64 {
		if j < pb {
			return int64(2*j + 1)
		}
		return int64(na - r + j)
	}
	unmSlot := func(u int) int64 {
		if u < pa {
			return int64(2 * u)
		}
		return int64(pb + u)
	}
	dest := make([]int64, b*n)
	nodeMax := make([]float32, na)
	nodeIdx := make([]int, na)
	order := make([]int, na)
	for bi := 0; bi < b; bi++ {
		sb := scores[bi*na*nb : (bi+1)*na*nb]
		for ia := 0; ia < na; ia++ {
			best, bj := float32(math.Inf(-1)), 0
			if ia >= pa {
				for ib, v := range sb[ia*nb+pb : (ia+1)*nb] {
					if v > best {
						best, bj = v, ib+pb
					}
				}
			}
			nodeMax[ia], nodeIdx[ia] = best, bj
			order[ia] = ia
		}
		sort.SliceStable(order, func(i, j int) bool { return nodeMax[order[i]] > nodeMax[order[j]] })
		d := dest[bi*n : (bi+1)*n]
		for _, ia := range order[:r] {
			d[2*ia] = dstSlot(nodeIdx[ia])
		}
		unm := append([]int(nil), order[r:]...)
		sort.Ints(unm)
		for u, ia := range unm {
			d[2*ia] = unmSlot(u)
		}
		for ib := 0; ib < nb; ib++ {
			d[2*ib+1] = dstSlot(ib)
		}
	}
	return dest
}

// TestToMeTensorMatchesHost checks the batched tensor matching and merge
// against the host implementation it replaced, including deit_tiny's
// tomeMatch is the matching of ToMe's bipartite_soft_matching on the keys
// k [B,N,C'], without gradient: the keys are normalised, the A tokens
// (even positions) scored against the B tokens (odd positions) by one
// batched matmul, the protected prefix tokens scored -inf (A rows, and B
// columns for a distillation token), and the A tokens ranked by their
// best score. It returns, as [B,*] int64 indices into A and B: the
// unmerged A tokens in their order (unm), the r merged ones (src) and
// the B token each goes to (dst).
//
// The sorts are stable, so that ties keep the lower index (the order of
// a stable sort on the host); ToMe's argsort leaves ties unspecified.
func tomeMatch(k *ts.Tensor, r, prefix int) (unm, src, dst *ts.Tensor) {
	scores := tomeSimilarity(k)
	inf := ts.FloatScalar(math.Inf(-1))
	if pa := int64(prefix+1) / 2; pa > 0 {
		v := scores.MustNarrow(1, 0, pa, false)
		v.MustFill_(inf)
		v.MustDrop()
	}
	if pb := int64(prefix) / 2; pb > 0 {
		v := scores.MustNarrow(2, 0, pb, false)
		v.MustFill_(inf)
		v.MustDrop()
	}
	nodeMax, nodeIdx := scores.MustMaxDim(-1, false, true)
	sorted, edge := nodeMax.MustSortStable(true, -1, true, true)
	sorted.MustDrop()
	na := edge.MustSize()[1]
	src = edge.MustNarrow(1, 0, int64(r), false)
	unsorted := edge.MustNarrow(1, int64(r), na-int64(r), false)
	edge.MustDrop()
	unm, order := unsorted.MustSortStable(true, 1, false, true)
	order.MustDrop()
	dst = nodeIdx.MustGather(1, src, false, true)
	return unm, src, dst
}

// tomeSimilarity is ToMe's metric: the cosine similarities [B,Na,Nb] of
// the keys k [B,N,C'] at even positions (A) to those at odd positions
// (B), in one batched matmul of the normalised keys (F.normalize's
// clamp at 1e-12), detached, in float32 unless k is float64.
func tomeSimilarity(k *ts.Tensor) *ts.Tensor {
	m := k.MustDetach(false)
	if dt := m.DType(); dt != gotch.Float && dt != gotch.Double {
		m = m.MustTotype(gotch.Float, true)
	}
	norm := m.MustNormScalaroptDim(ts.FloatScalar(2), []int64{-1}, true, false).
		MustClampMin(ts.FloatScalar(1e-12), true)
	m = m.MustDiv(norm, true)
	norm.MustDrop()
	a := m.MustSlice(1, []int64{0}, nil, 2, false)
	bt := m.MustSlice(1, []int64{1}, nil, 2, false).MustTranspose(-1, -2, true)
	m.MustDrop()
	scores := a.MustMatmul(bt, true)
	bt.MustDrop()
	return scores
}

// tomeMerge is the merge of ToMe's bipartite_soft_matching with mode
// "sum", given tomeMatch's indices, of each of ts [B,N,C_i] (the same
// tokens): the unmerged A tokens, then the B tokens with the merged A
// tokens added in, the prefix tokens first in their order (ToMe's
// distillation-token case). ToMe gathers and scatters along the token
// axis; here the rows of a tensor seen as [B*N, C] are picked by one
// index_select and the merged ones added by one index_add, which the CPU
// runs faster than gather and scatter with indices expanded over the
// channels. The indices are computed once for all the tensors.
func tomeMerge(tensors []*ts.Tensor, unm, src, dst *ts.Tensor, prefix int) []*ts.Tensor {
	sz := tensors[0].MustSize()
	b, n := sz[0], sz[1]
	nu, r := unm.MustSize()[1], src.MustSize()[1]
	na, nb := (n+1)/2, n/2
	pa, pb := int64(prefix+1)/2, int64(prefix)/2
	dev := tensors[0].MustDevice()
	// offsets [B,1] of every batch element's rows in the input and in the
	// result
	rowsOf := func(stride int64) *ts.Tensor {
		return ts.MustArange(ts.IntScalar(b), gotch.Int64, dev).
			MustMulScalar(ts.IntScalar(stride), true).MustView([]int64{b, 1}, true)
	}
	// The input rows that make the result, in its order: the prefix tokens
	// (the protected A tokens are unmerged and sorted first, the protected
	// B tokens receive nothing), the other unmerged A tokens, the other B
	// tokens.
	var parts []*ts.Tensor
	if prefix > 0 {
		parts = append(parts, ts.MustArange(ts.IntScalar(int64(prefix)), gotch.Int64, dev).
			MustExpand([]int64{b, int64(prefix)}, false, true))
	}
	parts = append(parts, unm.MustNarrow(1, pa, nu-pa, false).MustMulScalar(ts.IntScalar(2), true))
	parts = append(parts, ts.MustArange(ts.IntScalar(nb-pb), gotch.Int64, dev).
		MustMulScalar(ts.IntScalar(2), true).MustAddScalar(ts.IntScalar(2*pb+1), true).
		MustExpand([]int64{b, nb - pb}, false, true))
	inRows := rowsOf(n)
	rows := ts.MustCat(parts, 1).MustAdd(inRows, true).MustView([]int64{-1}, true)
	for _, t := range parts {
		t.MustDrop()
	}
	srcRows := src.MustMulScalar(ts.IntScalar(2), false).MustAdd(inRows, true).MustView([]int64{-1}, true)
	inRows.MustDrop()
	// B token j >= pb is at na - r + j in the result.
	outRows := rowsOf(n - r)
	at := dst.MustAddScalar(ts.IntScalar(na-r), false).MustAdd(outRows, true).MustView([]int64{-1}, true)
	outRows.MustDrop()
	out := make([]*ts.Tensor, len(tensors))
	for i, t := range tensors {
		c := t.MustSize()[2]
		flat := t.MustReshape([]int64{b * n, c}, false)
		o := flat.MustIndexSelect(0, rows, false)
		moved := flat.MustIndexSelect(0, srcRows, true)
		o.MustIndexAdd_(0, at, moved)
		moved.MustDrop()
		out[i] = o.MustView([]int64{b, n - r, c}, true)
	}
	for _, t := range []*ts.Tensor{rows, srcRows, at} {
		t.MustDrop()
	}
	return out
}

// tokenSizes holds the sizes of the tokens of the forward pass in flight,
// shared by a model's reducers and proportional-attention taps.
type tokenSizes struct {
	s   *ts.Tensor // [B,N,1] float; nil: every token has size 1
	row *ts.Tensor // s as [B,1,1,N], made on first use
}

func (z *tokenSizes) set(s *ts.Tensor) {
	if z.row != nil {
		z.row.MustDrop()
		z.row = nil
	}
	if z.s != nil && z.s != s {
		z.s.MustDrop()
	}
	z.s = s
}

// keyWeights returns the sizes shaped to weigh the keys of attention maps
// [B,H,N,N], or nil when every size is 1.
func (z *tokenSizes) keyWeights() *ts.Tensor {
	if z.s == nil {
		return nil
	}
	if z.row == nil {
		sz := z.s.MustSize()
		z.row = z.s.MustReshape([]int64{sz[0], 1, 1, sz[1]}, false)
	}
	return z.row
}

// propAttention is the proportional attention of ToMe as a Tap on the
// attention probabilities (SiteAttnMap): softmax(a + log s) is computed as
// p*s / sum(p*s) from p = softmax(a), with s the sizes of the key tokens.
// New installs it on the blocks after a model's first reducing block when
// the model merges tokens. Next, when set, runs on its output, so another
// tap on the attention map (a quantizer) should be chained there rather
// than replace it.
type propAttention struct {
	Next  Tap
	sizes *tokenSizes
}

// Tap implements Tap.
func (p *propAttention) Tap(attn *ts.Tensor) *ts.Tensor {
	out := attn
	if w := p.sizes.keyWeights(); w != nil {
		if ws, as := w.MustSize(), attn.MustSize(); ws[0] != as[0] || ws[3] != as[3] {
			panic(fmt.Sprintf("vit: token sizes %v do not fit the attention map %v", ws, as))
		}
		y := attn.MustMul(w, false)
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
			b.Taps[SiteAttnMap] = &propAttention{Next: b.Taps[SiteAttnMap], sizes: sizes}
		}
	}
}
