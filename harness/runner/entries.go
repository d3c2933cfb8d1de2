package runner

// The algorithms register their apply entries with package compress when
// imported; the runner is the one place that applies techniques.
import (
	_ "github.com/vitbench/vitbench/techniques/distill"
	_ "github.com/vitbench/vitbench/techniques/lowrank"
	_ "github.com/vitbench/vitbench/techniques/prune"
	_ "github.com/vitbench/vitbench/techniques/quantize"
)
