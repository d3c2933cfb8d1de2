package vit

import (
	"fmt"
	"math"
	"strconv"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// Tap sees the activation at one site of the forward pass. It returns x
// itself (an observer) or a new tensor that replaces it (a fake
// quantizer); the model frees x in the second case.
type Tap interface {
	Tap(x *ts.Tensor) *ts.Tensor
}

// Site names a tap position inside a block.
type Site int

// Sites inside a block, in forward order.
const (
	SiteNorm1In    Site = iota // block input (residual stream), input of norm1
	SiteQKVIn                  // output of norm1, input of qkv
	SiteQ                      // queries [B,H,N,hd], before the 1/sqrt(hd) scaling
	SiteK                      // keys [B,H,N,hd]
	SiteV                      // values [B,H,N,hd]
	SiteAttnLogits             // scaled q·kᵀ, softmax input
	SiteAttnMap                // softmax output (attention probabilities)
	SiteProjIn                 // concatenated heads, input of proj
	SiteNorm2In                // residual stream after attention, input of norm2
	SiteFC1In                  // output of norm2, input of fc1
	SiteFC2In                  // GELU output, input of fc2
	numSites
)

var siteNames = [numSites]string{"norm1_in", "qkv_in", "q", "k", "v", "attn_logits", "attn_map", "proj_in", "norm2_in", "fc1_in", "fc2_in"}

func (s Site) String() string { return siteNames[s] }

// sites lists the block sites.
func sites() []Site {
	s := make([]Site, numSites)
	for i := range s {
		s[i] = Site(i)
	}
	return s
}

// Linear is a linear layer, dense or factored into two (Down then Up).
type Linear struct {
	Name    string // checkpoint prefix, e.g. "blocks.0.attn.qkv"
	In, Out int
	Weight  *ts.Tensor // dense [Out, In]; nil when factored
	Bias    *ts.Tensor // [Out] or nil
	Rank    int        // > 0 when factored
	Down    *ts.Tensor // [Rank, In]
	Up      *ts.Tensor // [Out, Rank]
	// Mask is a {0,1} tensor shaped like Weight for unstructured pruning;
	// Reapply keeps pruned weights at zero during fine-tuning. In memory only: a
	// loaded checkpoint recovers it from the zeros.
	Mask *ts.Tensor
	// Tap, when set, replaces the input before the product (activation
	// quantization of this layer's input).
	Tap Tap
	// Kernel, when set, computes the layer instead (Model.SetKernels).
	Kernel LinearKernel
}

// Forward applies the layer.
func (l *Linear) Forward(x *ts.Tensor) *ts.Tensor {
	if l.Kernel != nil {
		return l.Kernel.Forward(x)
	}
	in := applyTap(l.Tap, x, false)
	bias := l.Bias
	if bias == nil {
		bias = ts.None
	}
	var y *ts.Tensor
	if l.Rank > 0 {
		h := ts.MustLinear(in, l.Down, ts.None)
		y = ts.MustLinear(h, l.Up, bias)
		h.MustDrop()
	} else {
		y = ts.MustLinear(in, l.Weight, bias)
	}
	if in != x {
		in.MustDrop()
	}
	return y
}

// Params counts the layer's parameters.
func (l *Linear) Params() int64 {
	n := int64(0)
	if l.Rank > 0 {
		n = int64(l.Rank) * int64(l.In+l.Out)
	} else {
		n = int64(l.In) * int64(l.Out)
	}
	if l.Bias != nil {
		n += int64(l.Out)
	}
	return n
}

// tensors returns the layer's parameter tensors.
func (l *Linear) tensors() []*ts.Tensor {
	var out []*ts.Tensor
	for _, t := range []*ts.Tensor{l.Weight, l.Down, l.Up, l.Bias} {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// Block is one pre-norm transformer block.
type Block struct {
	Index     int
	Norm1W    *ts.Tensor
	Norm1B    *ts.Tensor
	QKV, Proj *Linear
	Norm2W    *ts.Tensor
	Norm2B    *ts.Tensor
	FC1, FC2  *Linear
	Heads     int
	HeadDim   int
	Taps      [numSites]Tap
	// Softmax, when set, computes the attention probabilities from the
	// logits [B,H,N,N] in place of softmax (FQ-ViT's Log-Int-Softmax);
	// it does not free its input.
	Softmax    Tap
	Reducer    TokenReducer // token reduction after attention; nil for none
	eps        float64
	embedShape []int64
	scale      *ts.Scalar
}

// TokenReducer shortens the token sequence after a block's attention.
type TokenReducer interface {
	// Reduce takes the residual stream x [B,N,D] and the block's keys
	// averaged over heads [B,N,hd] and class-token attention [B,N] and
	// returns the reduced stream. It owns none of its inputs.
	Reduce(x, keys, clsAttn *ts.Tensor) *ts.Tensor
	// NeedsAttention says whether clsAttn and keys must be computed.
	NeedsAttention() bool
}

// Model is a ViT with its parameters in a gotch VarStore, named as timm
// names them, so optimizers and checkpoints see every tensor.
type Model struct {
	Cfg       Config
	VS        *nn.VarStore
	PatchW    *ts.Tensor // [D, C, P, P]
	PatchB    *ts.Tensor
	ClsToken  *ts.Tensor // [1, 1, D]
	DistToken *ts.Tensor // [1, 1, D], distilled models only
	PosEmbed  *ts.Tensor // [1, N, D]
	Blocks    []*Block
	NormW     *ts.Tensor
	NormB     *ts.Tensor
	Head      *Linear
	HeadDist  *Linear // distilled models only
	// InputTap sees the normalised image batch (the patch embedding's
	// input); the head's input is the head's own Tap.
	InputTap Tap
	// NormTap sees the input of the final norm (the residual stream after
	// the last block).
	NormTap Tap

	unpaced bool // no torchrt.Pacer between blocks (benchmarks compare)
	exec    *executed
	// noInPlace makes a no-grad pass run as an autograd one does
	// (BenchmarkForwardInPlace compares).
	noInPlace bool
}

// New builds a randomly initialised model (truncated-normal-like init with
// std 0.02 as timm does; seed libtorch first for reproducibility).
func New(cfg Config, dev gotch.Device) (*Model, error) {
	if cfg.LNEps == 0 {
		cfg.LNEps = 1e-6
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs := nn.NewVarStore(dev)
	root := vs.Root()
	d := int64(cfg.EmbedDim)
	m := &Model{Cfg: cfg, VS: vs}
	std := nn.NewRandnInit(0, 0.02)

	pe := root.Sub("patch_embed").Sub("proj")
	p := int64(cfg.PatchSize)
	fanIn := float64(int64(cfg.InChans) * p * p)
	m.PatchW = pe.MustNewVar("weight", []int64{d, int64(cfg.InChans), p, p}, nn.NewRandnInit(0, math.Sqrt(1/fanIn)))
	m.PatchB = pe.MustZeros("bias", []int64{d})
	m.ClsToken = root.MustNewVar("cls_token", []int64{1, 1, d}, nn.NewRandnInit(0, 1e-6))
	if cfg.Distilled {
		m.DistToken = root.MustNewVar("dist_token", []int64{1, 1, d}, std)
	}
	m.PosEmbed = root.MustNewVar("pos_embed", []int64{1, int64(cfg.NumTokens()), d}, std)

	blocks := root.Sub("blocks")
	for i := 0; i < cfg.Depth; i++ {
		bc := cfg.Block(i)
		bp := blocks.Sub(strconv.Itoa(i))
		inner := bc.Heads * bc.HeadDim
		b := &Block{
			Index:   i,
			Heads:   bc.Heads,
			HeadDim: bc.HeadDim,
			eps:     cfg.LNEps,
			scale:   ts.FloatScalar(1 / math.Sqrt(float64(bc.HeadDim))),
		}
		b.embedShape = []int64{d}
		b.Norm1W = bp.Sub("norm1").MustOnes("weight", []int64{d})
		b.Norm1B = bp.Sub("norm1").MustZeros("bias", []int64{d})
		b.QKV = newLinear(bp.Sub("attn"), "qkv", cfg.EmbedDim, 3*inner, bc.Ranks["qkv"], cfg.QKVBias, std)
		b.Proj = newLinear(bp.Sub("attn"), "proj", inner, cfg.EmbedDim, bc.Ranks["proj"], true, std)
		b.Norm2W = bp.Sub("norm2").MustOnes("weight", []int64{d})
		b.Norm2B = bp.Sub("norm2").MustZeros("bias", []int64{d})
		b.FC1 = newLinear(bp.Sub("mlp"), "fc1", cfg.EmbedDim, bc.MLPHidden, bc.Ranks["fc1"], true, std)
		b.FC2 = newLinear(bp.Sub("mlp"), "fc2", bc.MLPHidden, cfg.EmbedDim, bc.Ranks["fc2"], true, std)
		b.QKV.Name = fmt.Sprintf("blocks.%d.attn.qkv", i)
		b.Proj.Name = fmt.Sprintf("blocks.%d.attn.proj", i)
		b.FC1.Name = fmt.Sprintf("blocks.%d.mlp.fc1", i)
		b.FC2.Name = fmt.Sprintf("blocks.%d.mlp.fc2", i)
		m.Blocks = append(m.Blocks, b)
	}
	m.NormW = root.Sub("norm").MustOnes("weight", []int64{d})
	m.NormB = root.Sub("norm").MustZeros("bias", []int64{d})
	m.Head = newLinear(root, "head", cfg.EmbedDim, cfg.NumClasses, 0, true, std)
	m.Head.Name = "head"
	if cfg.Distilled {
		m.HeadDist = newLinear(root, "head_dist", cfg.EmbedDim, cfg.NumClasses, 0, true, std)
		m.HeadDist.Name = "head_dist"
	}
	m.attachReducers()
	return m.attachQuant()
}

func newLinear(parent *nn.Path, name string, in, out, rank int, bias bool, init nn.Init) *Linear {
	l := &Linear{In: in, Out: out, Rank: rank}
	p := parent.Sub(name)
	if rank > 0 {
		l.Down = p.Sub("0").MustNewVar("weight", []int64{int64(rank), int64(in)}, init)
		up := p.Sub("1")
		l.Up = up.MustNewVar("weight", []int64{int64(out), int64(rank)}, init)
		if bias {
			l.Bias = up.MustZeros("bias", []int64{int64(out)})
		}
		return l
	}
	l.Weight = p.MustNewVar("weight", []int64{int64(out), int64(in)}, init)
	if bias {
		l.Bias = p.MustZeros("bias", []int64{int64(out)})
	}
	return l
}

// applyTap runs t on x; when t returns a new tensor, x is freed if owned.
func applyTap(t Tap, x *ts.Tensor, owned bool) *ts.Tensor {
	if t == nil {
		return x
	}
	y := t.Tap(x)
	if y != x && owned {
		x.MustDrop()
	}
	return y
}

// Features runs the model up to the final norm and returns the token
// sequence [B, N', D]. The input is not freed.
func (m *Model) Features(x *ts.Tensor) *ts.Tensor {
	inference := !m.noInPlace && !torchrt.GradEnabled()
	x = m.embed(x)
	// Yield between blocks now and then: see torchrt.Pacer.
	pace := torchrt.NewPacer()
	for _, blk := range m.Blocks {
		x = blk.forward(x, inference)
		if !m.unpaced {
			pace.Tick()
		}
	}
	out := m.finalNorm(x)
	x.MustDrop()
	return out
}

// embed returns the token sequence [B, N, D] entering the first block:
// patch embedding, class (and distillation) token, position embedding.
// The input is not freed.
func (m *Model) embed(x *ts.Tensor) *ts.Tensor {
	in := applyTap(m.InputTap, x, false)
	p := int64(m.Cfg.PatchSize)
	h := ts.MustConv2d(in, m.PatchW, m.PatchB, []int64{p, p}, []int64{0, 0}, []int64{1, 1}, 1)
	if in != x {
		in.MustDrop()
	}
	h = h.MustFlatten(2, -1, true).MustTranspose(1, 2, true) // [B, N, D]
	b := h.MustSize()[0]
	d := int64(m.Cfg.EmbedDim)
	prefix := []*ts.Tensor{m.ClsToken.MustExpand([]int64{b, 1, d}, false, false)}
	if m.DistToken != nil {
		prefix = append(prefix, m.DistToken.MustExpand([]int64{b, 1, d}, false, false))
	}
	seq := ts.MustCat(append(prefix, h), 1)
	for _, t := range prefix {
		t.MustDrop()
	}
	h.MustDrop()
	return seq.MustAdd(m.PosEmbed, true)
}

// finalNorm returns the final norm of x, not freeing x; NormTap sees
// its input.
func (m *Model) finalNorm(x *ts.Tensor) *ts.Tensor {
	in := applyTap(m.NormTap, x, false)
	out := layerNorm(in, []int64{int64(m.Cfg.EmbedDim)}, m.NormW, m.NormB, m.Cfg.LNEps)
	if in != x {
		in.MustDrop()
	}
	return out
}

// layerNorm normalises x over its last dimensions. A half-precision x is
// normalised in float32 and cast back, as PyTorch's autocast does: it is
// more accurate, and libtorch 1.13's bfloat16 LayerNorm kernel on the CPU
// is several times slower than the float32 one with both casts
// (BenchmarkLayerNorm).
func layerNorm(x *ts.Tensor, shape []int64, w, b *ts.Tensor, eps float64) *ts.Tensor {
	dt := x.DType()
	if dt != gotch.BFloat16 && dt != gotch.Half {
		return ts.MustLayerNorm(x, shape, w, b, eps, false)
	}
	xf := x.MustTotype(gotch.Float, false)
	wf := w.MustTotype(gotch.Float, false)
	bf := b.MustTotype(gotch.Float, false)
	y := ts.MustLayerNorm(xf, shape, wf, bf, eps, false)
	for _, t := range []*ts.Tensor{xf, wf, bf} {
		t.MustDrop()
	}
	return y.MustTotype(dt, true)
}

// Forward returns the logits [B, classes]. A distilled model averages its
// two heads, as DeiT does at inference. The input is not freed.
func (m *Model) Forward(x *ts.Tensor) *ts.Tensor {
	return averageHeads(m.ForwardHeads(x))
}

// averageHeads returns cls, or the mean of cls and dist when the model is
// distilled, freeing them.
func averageHeads(cls, dist *ts.Tensor) *ts.Tensor {
	if dist == nil {
		return cls
	}
	sum := cls.MustAdd(dist, true)
	dist.MustDrop()
	return sum.MustDivScalar(ts.FloatScalar(2), true)
}

// ForwardHeads returns the class-token logits and, for distilled models,
// the distillation-token logits (nil otherwise).
func (m *Model) ForwardHeads(x *ts.Tensor) (cls, dist *ts.Tensor) {
	f := m.Features(x)
	defer f.MustDrop()
	return m.heads(f)
}

// heads applies the head(s) to the normed token sequence f, not freed.
func (m *Model) heads(f *ts.Tensor) (cls, dist *ts.Tensor) {
	c := f.MustSelect(1, 0, false)
	cls = m.Head.Forward(c)
	c.MustDrop()
	if m.HeadDist != nil {
		dt := f.MustSelect(1, 1, false)
		dist = m.HeadDist.Forward(dt)
		dt.MustDrop()
	}
	return cls, dist
}

// Forward runs the block on x [B,N,D] and frees x.
func (b *Block) Forward(x *ts.Tensor) *ts.Tensor {
	return b.forward(x, !torchrt.GradEnabled())
}

// forward runs the block on x and frees x. With inference set (autograd
// off) the residual adds and the GELU overwrite tensors the block owns
// instead of allocating new ones, which autograd forbids (it saves them
// for the backward pass); the values are the same bit for bit. It saves
// allocating and filling those tensors, a small gain at batch 64 and none
// measurable at batch 1 (BenchmarkForwardInPlace). Two more rewrites were
// tried and measured no faster, so they are not here: scaling q while
// gathering it for the batched product, and gathering k untransposed for
// BLAS's transpose flag.
func (b *Block) forward(x *ts.Tensor, inference bool) *ts.Tensor {
	q, k, v := b.queryKeyValue(x)
	return b.attendAndMLP(x, q, k, v, inference, true)
}

// queryKeyValue returns the block's queries (scaled), keys and values of
// the tokens in x [B,N,D], each [B,heads,N,hd]; x is not freed.
func (b *Block) queryKeyValue(x *ts.Tensor) (q, k, v *ts.Tensor) {
	h := b.norm(x, SiteNorm1In, b.Norm1W, b.Norm1B)
	h = applyTap(b.Taps[SiteQKVIn], h, true)
	qkv := b.QKV.Forward(h)
	h.MustDrop()
	size := x.MustSize()
	bs, n := size[0], size[1]
	heads, hd := int64(b.Heads), int64(b.HeadDim)
	qkv = qkv.MustReshape([]int64{bs, n, 3, heads, hd}, true).MustPermute([]int64{2, 0, 3, 1, 4}, true)
	parts := qkv.MustUnbind(0, true)
	q = applyTap(b.Taps[SiteQ], parts[0], true)
	k = applyTap(b.Taps[SiteK], parts[1], true)
	v = applyTap(b.Taps[SiteV], parts[2], true)
	return q.MustMulScalar(b.scale, true), k, v
}

// norm returns the LayerNorm (w, b) of x, not freeing x; the tap at site
// sees the norm's input but not the residual stream, which stays as it is.
func (b *Block) norm(x *ts.Tensor, site Site, w, bias *ts.Tensor) *ts.Tensor {
	in := applyTap(b.Taps[site], x, false)
	h := layerNorm(in, b.embedShape, w, bias, b.eps)
	if in != x {
		in.MustDrop()
	}
	return h
}

// attendAndMLP finishes the block on the residual stream x [B,N,D] given
// the queries q of x's tokens and the keys and values k, v of the tokens
// they attend to: attention, projection, token reduction, MLP, both
// residual adds. It frees x and q, and k and v when own is set.
func (b *Block) attendAndMLP(x, q, k, v *ts.Tensor, inference, own bool) *ts.Tensor {
	wantReduce := b.Reducer != nil && b.Reducer.NeedsAttention()
	x, keys, clsAttn := b.attend(x, q, k, v, inference, own, wantReduce)
	if b.Reducer != nil {
		x = b.reduce(x, keys, clsAttn)
	}
	return b.mlp(x, inference)
}

// attend runs the attention half of the block on x: attention of q over
// k, v, projection, residual add. It frees x and q, and k and v when own
// is set. With wantReduce it also returns what the token reducer reads:
// the keys averaged over heads [B,N,hd] and the attention of q's first
// token (the class token, when x starts at the first token) averaged
// over heads [B,N].
func (b *Block) attend(x, q, k, v *ts.Tensor, inference, own, wantReduce bool) (out, keys, clsAttn *ts.Tensor) {
	size := x.MustSize()
	bs, n := size[0], size[1]
	inner := int64(b.Heads * b.HeadDim)
	kt := k.MustTranspose(-2, -1, false)
	attn := q.MustMatmul(kt, true)
	kt.MustDrop()
	attn = applyTap(b.Taps[SiteAttnLogits], attn, true)
	if b.Softmax != nil {
		attn = applyTap(b.Softmax, attn, true)
	} else {
		attn = attn.MustSoftmax(-1, gotch.Float, true)
	}
	attn = applyTap(b.Taps[SiteAttnMap], attn, true)
	if wantReduce {
		keys = k.MustMeanDim([]int64{1}, false, gotch.Float, false)                              // [B,N,hd]
		clsAttn = attn.MustSelect(2, 0, false).MustMeanDim([]int64{1}, false, gotch.Float, true) // [B,N]
	}
	o := attn.MustMatmul(v, true)
	if own {
		k.MustDrop()
		v.MustDrop()
	}
	o = o.MustTranspose(1, 2, true).MustReshape([]int64{bs, n, inner}, true)
	o = applyTap(b.Taps[SiteProjIn], o, true)
	p := b.Proj.Forward(o)
	o.MustDrop()
	return residual(x, p, inference), keys, clsAttn
}

// reduce applies the block's token reducer to x, freeing x (unless the
// reducer kept it as it is) and keys and clsAttn (nil when the reducer
// reads no attention).
func (b *Block) reduce(x, keys, clsAttn *ts.Tensor) *ts.Tensor {
	r := b.Reducer.Reduce(x, keys, clsAttn)
	if r != x {
		x.MustDrop()
	}
	if keys != nil {
		keys.MustDrop()
		clsAttn.MustDrop()
	}
	return r
}

// mlp runs the MLP half of the block on x: norm, MLP, residual add. It
// frees x (or, in inference, adds into it and returns it).
func (b *Block) mlp(x *ts.Tensor, inference bool) *ts.Tensor {
	h := b.norm(x, SiteNorm2In, b.Norm2W, b.Norm2B)
	h = applyTap(b.Taps[SiteFC1In], h, true)
	f := b.FC1.Forward(h)
	h.MustDrop()
	switch {
	case b.FC1.Kernel != nil && b.FC1.Kernel.GELU():
	case inference:
		f.MustGelu_("none")
	default:
		f = f.MustGelu("none", true)
	}
	f = applyTap(b.Taps[SiteFC2In], f, true)
	g := b.FC2.Forward(f)
	f.MustDrop()
	return residual(x, g, inference)
}

// residual returns x + y, freeing both; in place into x when inference.
func residual(x, y *ts.Tensor, inference bool) *ts.Tensor {
	defer y.MustDrop()
	if inference {
		x.MustAdd_(y)
		return x
	}
	return x.MustAdd(y, true)
}

// Linears returns every linear layer with its group name: "qkv", "proj",
// "fc1", "fc2", "head".
func (m *Model) Linears() []GroupedLinear {
	var out []GroupedLinear
	for _, b := range m.Blocks {
		out = append(out,
			GroupedLinear{"qkv", b.Index, b.QKV},
			GroupedLinear{"proj", b.Index, b.Proj},
			GroupedLinear{"fc1", b.Index, b.FC1},
			GroupedLinear{"fc2", b.Index, b.FC2})
	}
	out = append(out, GroupedLinear{"head", -1, m.Head})
	if m.HeadDist != nil {
		out = append(out, GroupedLinear{"head", -1, m.HeadDist})
	}
	return out
}

// GroupedLinear is a linear layer with its layer group and block index
// (-1 outside the blocks).
type GroupedLinear struct {
	Group string
	Block int
	*Linear
}

// Drop frees every tensor of the model.
func (m *Model) Drop() {
	m.closeKernels()
	m.VS.Destroy()
	for _, l := range m.Linears() {
		if l.Mask != nil {
			l.Mask.MustDrop()
			l.Mask = nil
		}
	}
}
