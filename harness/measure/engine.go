package measure

// The ways a timed pass on the CPU may use several threads: the values
// of bench latency --engine and of a suite's [suite.measure] engine key
// (harness/config checks the key against the same names), and what a
// stored run records (store.Run.Engine).
const (
	// EngineSplit runs each thread's share of the pass on that thread
	// alone (vit.Parallel): by images, or below one image per thread by
	// tokens.
	EngineSplit = "split"
	// EngineEager runs the pass on one thread with libtorch's intra-op
	// pool, as PyTorch eager does.
	EngineEager = "eager"
	// EngineAuto times a few passes each way for every model and batch
	// during warm-up and runs the faster (Options.Auto); which ran is in
	// Latency.Split. Neither way wins everywhere: splitting by images
	// pays at large batches, and a token-reducing model split by tokens
	// leaves one thread waiting while the other reduces.
	EngineAuto = "auto"
)

// Engines lists the engines, the default first.
var Engines = []string{EngineAuto, EngineSplit, EngineEager}

// ResolveEngine returns the engine a timing runs with, given the one asked
// for ("" for the default, auto): eager on CUDA, where a pass is one
// stream of kernels, and on one thread, which has nothing to split. It is
// the one rule bench latency and the runner share.
func ResolveEngine(asked string, threads int, cpu bool) string {
	switch {
	case !cpu || threads < 2 || asked == EngineEager:
		return EngineEager
	case asked == EngineSplit:
		return EngineSplit
	}
	return EngineAuto
}

// SplitFor returns Options.Split for a timing on threads threads with the
// resolved engine: threads when it splits, else 0 (eager).
func SplitFor(engine string, threads int) int {
	if engine == EngineSplit || engine == EngineAuto {
		return threads
	}
	return 0
}
