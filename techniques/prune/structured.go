package prune

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/harness/vit"
	"github.com/vitbench/vitbench/internal/torchrt"
	"github.com/vitbench/vitbench/techniques"
)

// Importance scores every attention head and MLP neuron of a model, block
// by block; higher is more important.
type Importance struct {
	Heads   [][]float64 // [block][head]
	Neurons [][]float64 // [block][neuron]
}

// Score computes the importance of m's heads and neurons by criterion:
//
//	l1:         sum |w|                over the unit's weights
//	l2:         sqrt(sum w^2)          over the unit's weights
//	taylor:     sum_b (sum g_b*w)^2    Molchanov et al. 2019: per batch b
//	taylor-abs: sum |w * dL/dw|        over the unit's weights
//
// A head's weights are its rows of qkv (q, k and v, with their biases) and
// its columns of proj; a neuron's are its row of fc1 (with its bias) and
// its column of fc2. For a factored layer the rows are those of the second
// factor and the columns those of the first. For the Taylor criteria, L
// is the cross-entropy of the model's logits against its own predictions
// (argmax) over the calibration batches calib (the calibration split has
// no labels): taylor squares each batch's signed group sum, the first-order
// estimate of the loss change when the group is removed, and sums the
// squares over batches as Molchanov et al. accumulate them; taylor-abs
// sums |w·g| over all of calib at once. The model's gradients are zeroed
// before and after.
func Score(m *vit.Model, criterion string, calib []*ts.Tensor) (*Importance, error) {
	switch criterion {
	case techniques.ImportanceL1:
		return unitSums(m, func(t *ts.Tensor) *ts.Tensor { return t.MustAbs(false) }), nil
	case techniques.ImportanceL2:
		imp := unitSums(m, func(t *ts.Tensor) *ts.Tensor { return t.MustMul(t, false) })
		for _, blocks := range [][][]float64{imp.Heads, imp.Neurons} {
			for _, units := range blocks {
				for i := range units {
					units[i] = math.Sqrt(units[i])
				}
			}
		}
		return imp, nil
	case techniques.ImportanceTaylor, techniques.ImportanceTaylorAbs:
		if len(calib) == 0 {
			return nil, fmt.Errorf("prune: %s importance needs calibration images", criterion)
		}
	default:
		return nil, fmt.Errorf("prune: unknown importance %q (l1, l2, taylor, taylor-abs)", criterion)
	}
	runtime.LockOSThread() // grad mode is per OS thread
	defer runtime.UnlockOSThread()
	defer zeroGrads(m)
	gradTimesWeight := func(abs bool) func(t *ts.Tensor) *ts.Tensor {
		return func(t *ts.Tensor) *ts.Tensor {
			g := t.MustGrad(false)
			defer g.MustDrop()
			if !g.MustDefined() {
				return t.MustZerosLike(false)
			}
			if abs {
				return t.MustMul(g, false).MustAbs(true)
			}
			return t.MustMul(g, false)
		}
	}
	if criterion == techniques.ImportanceTaylorAbs {
		taylorGrads(m, calib)
		return unitSums(m, gradTimesWeight(true)), nil
	}
	var imp *Importance
	for _, x := range calib {
		taylorGrads(m, []*ts.Tensor{x})
		part := unitSums(m, gradTimesWeight(false))
		if imp == nil {
			imp = &Importance{Heads: make([][]float64, len(part.Heads)), Neurons: make([][]float64, len(part.Neurons))}
			for b := range part.Heads {
				imp.Heads[b] = make([]float64, len(part.Heads[b]))
				imp.Neurons[b] = make([]float64, len(part.Neurons[b]))
			}
		}
		for b := range part.Heads {
			for i, v := range part.Heads[b] {
				imp.Heads[b][i] += v * v
			}
			for i, v := range part.Neurons[b] {
				imp.Neurons[b][i] += v * v
			}
		}
	}
	return imp, nil
}

// unitSums sums elem over each head's and each neuron's weights.
func unitSums(m *vit.Model, elem func(t *ts.Tensor) *ts.Tensor) *Importance {
	imp := &Importance{}
	torchrt.NoGrad(func() {
		for _, b := range m.Blocks {
			hd := b.HeadDim
			inner := b.Heads * hd
			qkv := rowScores(b.QKV, elem)
			proj := colScores(b.Proj, elem)
			heads := make([]float64, b.Heads)
			for h := range heads {
				for d := 0; d < hd; d++ {
					for p := 0; p < 3; p++ {
						heads[h] += qkv[p*inner+h*hd+d]
					}
					heads[h] += proj[h*hd+d]
				}
			}
			fc1 := rowScores(b.FC1, elem)
			fc2 := colScores(b.FC2, elem)
			neurons := make([]float64, len(fc1))
			for j := range neurons {
				neurons[j] = fc1[j] + fc2[j]
			}
			imp.Heads = append(imp.Heads, heads)
			imp.Neurons = append(imp.Neurons, neurons)
		}
	})
	return imp
}

// taylorGrads fills m's gradients with those of the self-prediction loss
// over calib.
func taylorGrads(m *vit.Model, calib []*ts.Tensor) {
	torchrt.WithGrad(func() {
		zeroGrads(m)
		for _, x := range calib {
			logits := m.Forward(x)
			var y *ts.Tensor
			ts.NoGrad(func() { y = logits.MustArgmax([]int64{1}, false, false) })
			loss := logits.MustCrossEntropyLoss(y, ts.None, 2, -100, 0, true) // sum
			loss.MustBackward()
			loss.MustDrop()
			y.MustDrop()
		}
	})
}

func zeroGrads(m *vit.Model) {
	for _, p := range m.VS.TrainableVariables() {
		g := p.MustGrad(false)
		if g.MustDefined() {
			torchrt.NoGrad(func() { g.MustZero_() })
		}
		g.MustDrop()
	}
}

// rowScores sums elem over each output row of l (weight row and bias).
func rowScores(l *vit.Linear, elem func(*ts.Tensor) *ts.Tensor) []float64 {
	w := l.Weight
	if l.Rank > 0 {
		w = l.Up
	}
	e := elem(w)
	out := e.MustSumDimIntlist([]int64{1}, false, gotch.Double, true).Float64Values(true)
	if l.Bias != nil {
		for i, v := range elem(l.Bias).Float64Values(true) {
			out[i] += v
		}
	}
	return out
}

// colScores sums elem over each input column of l.
func colScores(l *vit.Linear, elem func(*ts.Tensor) *ts.Tensor) []float64 {
	w := l.Weight
	if l.Rank > 0 {
		w = l.Down
	}
	return elem(w).MustSumDimIntlist([]int64{0}, false, gotch.Double, true).Float64Values(true)
}

// Select returns, for every block, the indices of the units to keep
// (ascending) when a fraction amount of them is removed, lowest scores
// first: RemovedCount(amount, n) of each block's n (per block), or
// RemovedCount(amount, total) of all the blocks' units together (global),
// every block keeping at least one.
func Select(scores [][]float64, amount float64, global bool) [][]int {
	if global {
		total := sum(lens(scores))
		return removeGlobal(scores, RemovedCount(amount, total))
	}
	remove := make([]int, len(scores))
	for i, s := range scores {
		remove[i] = RemovedCount(amount, len(s))
	}
	return removePerBlock(scores, remove)
}

// ranked returns the indices of s from the lowest score up (ties by index).
func ranked(s []float64) []int {
	idx := make([]int, len(s))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return s[idx[a]] < s[idx[b]] })
	return idx
}

// removePerBlock drops the remove[i] lowest-scoring units of block i (at
// most all but one) and returns the kept indices, ascending.
func removePerBlock(scores [][]float64, remove []int) [][]int {
	keep := make([][]int, len(scores))
	for i, s := range scores {
		r := max(0, min(remove[i], len(s)-1))
		k := append([]int(nil), ranked(s)[r:]...)
		sort.Ints(k)
		keep[i] = k
	}
	return keep
}

// removeGlobal drops the total lowest-scoring units over all blocks, each
// block keeping at least one, and returns the kept indices, ascending.
func removeGlobal(scores [][]float64, total int) [][]int {
	type unit struct {
		block, idx int
		score      float64
	}
	var all []unit
	for b, s := range scores {
		for i, v := range s {
			all = append(all, unit{b, i, v})
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].score < all[b].score })
	left := lens(scores)
	removed := make([]map[int]bool, len(scores))
	for i := range removed {
		removed[i] = map[int]bool{}
	}
	for _, u := range all {
		if total <= 0 {
			break
		}
		if left[u.block] > 1 {
			removed[u.block][u.idx] = true
			left[u.block]--
			total--
		}
	}
	keep := make([][]int, len(scores))
	for b, s := range scores {
		keep[b] = []int{}
		for i := range s {
			if !removed[b][i] {
				keep[b] = append(keep[b], i)
			}
		}
	}
	return keep
}

// normalizeBlocks divides every block's scores by their mean, so that
// norms of blocks of different scales compare in a global ranking.
func normalizeBlocks(scores [][]float64) [][]float64 {
	out := make([][]float64, len(scores))
	for b, s := range scores {
		mean := 0.0
		for _, v := range s {
			mean += v
		}
		mean /= float64(len(s))
		out[b] = make([]float64, len(s))
		for i, v := range s {
			if mean > 0 {
				v /= mean
			}
			out[b][i] = v
		}
	}
	return out
}

// Shrink returns a new model without the attention heads and MLP neurons
// that keepHeads and keepNeurons leave out. keepHeads[i] lists the heads
// of block i to keep and keepNeurons[i] its MLP neurons (indices into the
// block's current heads or neurons, each non-empty); a nil list keeps the
// whole block, a nil slice every block. Removing head h drops its rows of
// q, k and v in qkv (with their biases) and its columns of proj; removing
// neuron j drops row j of fc1 (and its bias) and column j of fc2; factored
// layers lose the rows of their second factor or the columns of their
// first. Every other tensor is copied, so the remaining computation is
// unchanged: a head whose proj columns are zero, or a neuron whose fc2
// column is zero, is removed without changing the outputs. The model's
// configuration records the new per-block structure (vit.Config.Blocks),
// so counts, checkpoints and reloading follow it. Unstructured-pruning
// masks are recovered from the zeros of the new model.
func Shrink(m *vit.Model, keepHeads, keepNeurons [][]int) (*vit.Model, error) {
	cfg := m.Cfg.WithBlocks()
	for _, keep := range [][][]int{keepHeads, keepNeurons} {
		if keep != nil && len(keep) != len(m.Blocks) {
			return nil, fmt.Errorf("prune: %d keep lists for %d blocks", len(keep), len(m.Blocks))
		}
	}
	edits := map[string]func(*ts.Tensor) *ts.Tensor{}
	for i, b := range m.Blocks {
		if keepHeads != nil && keepHeads[i] != nil {
			heads := keepHeads[i]
			if err := checkKeep(heads, b.Heads); err != nil {
				return nil, fmt.Errorf("prune: block %d heads: %w", i, err)
			}
			hd, inner := b.HeadDim, b.Heads*b.HeadDim
			var rows, cols []int64
			for p := 0; p < 3; p++ {
				for _, h := range heads {
					for d := 0; d < hd; d++ {
						rows = append(rows, int64(p*inner+h*hd+d))
					}
				}
			}
			for _, h := range heads {
				for d := 0; d < hd; d++ {
					cols = append(cols, int64(h*hd+d))
				}
			}
			selectRows(edits, b.QKV, rows)
			selectCols(edits, b.Proj, cols)
			cfg.Blocks[i].Heads = len(heads)
		}
		if keepNeurons != nil && keepNeurons[i] != nil {
			neurons := keepNeurons[i]
			if err := checkKeep(neurons, b.FC1.Out); err != nil {
				return nil, fmt.Errorf("prune: block %d neurons: %w", i, err)
			}
			idx := make([]int64, len(neurons))
			for j, n := range neurons {
				idx[j] = int64(n)
			}
			selectRows(edits, b.FC1, idx)
			selectCols(edits, b.FC2, idx)
			cfg.Blocks[i].MLPHidden = len(neurons)
		}
	}
	return rebuild(m, cfg, edits)
}

func checkKeep(keep []int, n int) error {
	if len(keep) == 0 {
		return errors.New("nothing kept")
	}
	seen := map[int]bool{}
	for _, k := range keep {
		if k < 0 || k >= n {
			return fmt.Errorf("index %d out of range [0, %d)", k, n)
		}
		if seen[k] {
			return fmt.Errorf("index %d listed twice", k)
		}
		seen[k] = true
	}
	return nil
}

// selectRows records that l keeps only the given output rows.
func selectRows(edits map[string]func(*ts.Tensor) *ts.Tensor, l *vit.Linear, rows []int64) {
	pick := indexSelect(0, rows)
	if l.Rank > 0 {
		edits[l.Name+".1.weight"] = pick
		if l.Bias != nil {
			edits[l.Name+".1.bias"] = pick
		}
		return
	}
	edits[l.Name+".weight"] = pick
	if l.Bias != nil {
		edits[l.Name+".bias"] = pick
	}
}

// selectCols records that l keeps only the given input columns.
func selectCols(edits map[string]func(*ts.Tensor) *ts.Tensor, l *vit.Linear, cols []int64) {
	if l.Rank > 0 {
		edits[l.Name+".0.weight"] = indexSelect(1, cols)
		return
	}
	edits[l.Name+".weight"] = indexSelect(1, cols)
}

func indexSelect(dim int64, idx []int64) func(*ts.Tensor) *ts.Tensor {
	return func(t *ts.Tensor) *ts.Tensor {
		i := ts.MustOfSlice(idx).MustTo(t.MustDevice(), true)
		defer i.MustDrop()
		return t.MustIndexSelect(dim, i, false)
	}
}

// Rebuild returns a new model of configuration cfg holding m's tensors,
// which must match cfg's in names and shapes (e.g. cfg is m's with another
// token reduction). Unstructured-pruning masks are recovered from zeros,
// as vit.Load does.
func Rebuild(m *vit.Model, cfg vit.Config) (*vit.Model, error) {
	return rebuild(m, cfg, nil)
}

// rebuild builds cfg and loads m's tensors into it, each passed through
// its edit when there is one.
func rebuild(m *vit.Model, cfg vit.Config, edits map[string]func(*ts.Tensor) *ts.Tensor) (*vit.Model, error) {
	out, err := vit.New(cfg, m.VS.Device())
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	sd := map[string]*ts.Tensor{}
	defer func() {
		for _, t := range sd {
			t.MustDrop()
		}
	}()
	torchrt.NoGrad(func() {
		for name, v := range m.VS.Variables() {
			if edit, ok := edits[name]; ok {
				sd[name] = edit(&v)
			} else {
				sd[name] = v.MustShallowClone()
			}
		}
	})
	if err := out.LoadStateDict(sd); err != nil {
		out.Drop()
		return nil, fmt.Errorf("prune: %w", err)
	}
	for _, l := range m.Linears() {
		if l.Mask != nil {
			out.RecoverMasks()
			break
		}
	}
	return out, nil
}
