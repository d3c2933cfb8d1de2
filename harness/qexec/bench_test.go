package qexec

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"github.com/vitbench/vitbench/internal/torchrt"
)

// BenchmarkLinear times one int8 layer against libtorch's float32 linear
// on deit_tiny's fc1 shape, at batch 1 (197 tokens) and 64, on 1 and 2
// threads.
func BenchmarkLinear(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const in, out = 192, 768
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]int8, in*out)
	wf := make([]float32, in*out)
	for i := range w {
		w[i] = int8(rng.IntN(129) - 64)
		wf[i] = float32(w[i]) * 0.01
	}
	scales := make([]float32, out)
	bias := make([]float32, out)
	for i := range scales {
		scales[i] = 0.01
	}
	wt := ts.MustOfSlice(wf).MustView([]int64{out, in}, true)
	bt := ts.MustOfSlice(bias)
	defer wt.MustDrop()
	defer bt.MustDrop()
	for _, threads := range []int{1, 2} {
		restore := torchrt.UseThreads(threads)
		for _, rows := range []int64{197, 64 * 197} {
			x := ts.MustRandn([]int64{rows, in}, gotch.Float, gotch.CPU)
			for _, kind := range []string{"fp32", "static", "dynamic"} {
				b.Run(fmt.Sprintf("threads=%d/rows=%d/%s", threads, rows, kind), func(b *testing.B) {
					var f func() *ts.Tensor
					switch kind {
					case "fp32":
						f = func() *ts.Tensor { return ts.MustLinear(x, wt, bt) }
					default:
						act := Activation{Scale: 0.03, ZeroPoint: 128, QMin: 0, QMax: 255}
						if kind == "dynamic" {
							act = Activation{Dynamic: true}
						}
						k, err := NewLinear(w, out, in, scales, bias, act, false)
						if err != nil {
							b.Fatal(err)
						}
						defer k.Close()
						f = func() *ts.Tensor { return k.Forward(x) }
					}
					torchrt.NoGrad(func() {
						f().MustDrop()
						b.ResetTimer()
						for range b.N {
							f().MustDrop()
						}
					})
				})
			}
			x.MustDrop()
		}
		restore()
	}
}
