#!/usr/bin/env bash
# make bench: inference latency through gotch against PyTorch eager on the
# same libtorch, side by side in one run, in float32, int8 (vitbench's
# oneDNN kernels against PyTorch's FX static quantization, onednn engine)
# and bf16.
#
# Builds cmd/bench, writes one timm-initialised checkpoint, then for each
# batch size runs `bench latency --json` and scripts/bench_torch.py
# (Debian's /usr/bin/python3, python3-torch) on that checkpoint with the
# same thread count, warm-up and timed passes. The two sides alternate, ROUNDS times, the order flipping every
# round, so that drifting machine load hits both alike. Prints each
# side's median p50 over the rounds, p90/p99, and the ratio gotch/PyTorch
# per batch size (target: <= 1.0), plus the sgemm speed `bench env`
# measured.
#
# Settings (environment): ARCH (deit_tiny_patch16_224), BATCHES ("1 64"),
# PRECISIONS ("fp32 int8 bf16": bench latency --precision on gotch's side,
# bench_torch.py --precision on PyTorch's),
# ENGINES, the ways gotch's side runs a pass (bench latency --engine:
# "split eager", each timed and compared with PyTorch),
# THREADS (all logical CPUs), ROUNDS (3), ITERS_SMALL/WARMUP_SMALL for
# batches below 16 (100/20), ITERS_LARGE/WARMUP_LARGE for the others (10/2),
# OUT (a folder to keep the raw JSON; default a temporary one),
# and whatever bench sets for itself (`bench env --json`'s runtime_env:
# OpenMP waiting, malloc, OpenBLAS's thread timeout and core type; see
# cmd/bench/runtimeenv.go), exported here so that both sides run the same
# kernels under the same OpenMP and malloc settings.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
PY=/usr/bin/python3 # Debian's, with python3-torch; not a pyenv python3
ARCH=${ARCH:-deit_tiny_patch16_224}
BATCHES=${BATCHES:-"1 64"}
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
ITERS_SMALL=${ITERS_SMALL:-100}
WARMUP_SMALL=${WARMUP_SMALL:-20}
ENGINES=${ENGINES:-"split eager"}
PRECISIONS=${PRECISIONS:-"fp32 int8 bf16"}
ITERS_LARGE=${ITERS_LARGE:-10}
WARMUP_LARGE=${WARMUP_LARGE:-2}

if [[ ! -x $PY ]] || ! $PY -c 'import torch' 2>/dev/null; then
	echo "bench.sh: $PY with torch is missing: run make setup (installs python3-torch)" >&2
	exit 2
fi

if [[ -n ${OUT:-} ]]; then
	mkdir -p "$OUT"
	out=$OUT
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

echo "building cmd/bench"
$GO build -o "$out/bench" ./cmd/bench
"$out/bench" env --json >"$out/env.json"
eval "$($PY -c 'import json, shlex, sys
for k, v in json.load(open(sys.argv[1]))["runtime_env"].items():
    print("export %s=%s" % (k, shlex.quote(v)))' "$out/env.json")"
# One set of weights for both sides, so that they compute on the same numbers.
$PY scripts/bench_torch.py --arch "$ARCH" --save-weights "$out/weights.pth"

for round in $(seq 1 "$ROUNDS"); do
	for p in $PRECISIONS; do
		for b in $BATCHES; do
			if ((b < 16)); then
				iters=$ITERS_SMALL warmup=$WARMUP_SMALL
			else
				iters=$ITERS_LARGE warmup=$WARMUP_LARGE
			fi
			args=(--arch "$ARCH" --weights "$out/weights.pth" --batch "$b" --threads "$THREADS" --warmup "$warmup" --iters "$iters" --precision "$p" --json)
			gotch() {
				for e in $ENGINES; do
					"$out/bench" latency "${args[@]}" --engine "$e" >"$out/gotch-$e-$p-b$b-r$round.json"
				done
			}
			torch() { $PY scripts/bench_torch.py "${args[@]}" >"$out/torch-$p-b$b-r$round.json"; }
			if ((round % 2)); then
				echo "round $round/$ROUNDS, $p, batch $b: gotch ($ENGINES), then PyTorch ($warmup warm-up + $iters timed passes each)"
				gotch
				torch
			else
				echo "round $round/$ROUNDS, $p, batch $b: PyTorch, then gotch ($ENGINES) ($warmup warm-up + $iters timed passes each)"
				torch
				gotch
			fi
		done
	done
done

$PY - "$out" "$ARCH" "$THREADS" "$ROUNDS" "$ENGINES" "$PRECISIONS" $BATCHES <<'EOF'
import glob, json, os, statistics, sys

out, arch, threads, rounds, engines, precisions, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(), sys.argv[6].split(), sys.argv[7:]
env = json.load(open(os.path.join(out, "env.json")))

def runs(side, p, b):
    rs = [json.load(open(q)) for q in sorted(glob.glob(os.path.join(out, "%s-%s-b%s-r*.json" % (side, p, b))))]
    for r in rs:
        assert r["threads"] == threads, "%s ran with %d threads, want %d" % (side, r["threads"], threads)
        assert r["executed"] == p, "%s ran in %s, want %s" % (side, r["executed"], p)
    return rs

med = lambda rs, k: statistics.median(r[k] for r in rs)
libtorch, detail = "", ""
print()
print("latency of %s, %d threads, median over %d alternating rounds of each side's p50" % (arch, threads, rounds))
print("both sides with " + " ".join("%s=%s" % (k, os.environ.get(k, "(unset)")) for k in ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "OPENBLAS_THREAD_TIMEOUT")))
print("gotch engines: split = each of the threads runs a share of the pass (by images, or by tokens below")
print("%d images); eager = one pass on libtorch's intra-op pool, as PyTorch eager runs it" % threads)
print("int8: gotch executes W8A8 linears on oneDNN's int8 matmul (bench latency --precision int8); PyTorch")
print("runs FX static quantization, get_default_qconfig_mapping('onednn'). bf16: both cast the model.")
rows = [("precision", "batch", "gotch engine", "gotch p50 ms", "PyTorch p50 ms", "gotch/PyTorch", "gotch p90/p99 ms", "PyTorch p90/p99 ms", "per-round ratios")]
verdict, best = [], {}
for p in precisions:
    for b in batches:
        t = runs("torch", p, b)
        libtorch = t[0]["libtorch"]
        tp50 = med(t, "p50_ms")
        for e in engines:
            g = runs("gotch-" + e, p, b)
            for r in g:
                assert r["engine"] == e, "gotch ran engine %s, want %s" % (r["engine"], e)
            gp50 = med(g, "p50_ms")
            best[p, b] = min(best.get((p, b), gp50), gp50)
            ratio = gp50 / tp50
            per = " ".join("%.2f" % (x["p50_ms"] / y["p50_ms"]) for x, y in zip(g, t))
            rows.append((p, b, e, "%.2f" % gp50, "%.2f" % tp50, "%.3f" % ratio,
                         "%.2f/%.2f" % (med(g, "p90_ms"), med(g, "p99_ms")),
                         "%.2f/%.2f" % (med(t, "p90_ms"), med(t, "p99_ms")), per))
            verdict.append((p, b, e, ratio))
            if p == "int8":
                detail = g[0].get("exec_detail", "")
widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
print()
print("libtorch: gotch loads %s (%s); PyTorch %s loads %s" % (env.get("libtorch_path", "?"), env.get("libtorch", "?"), t[0]["torch"], libtorch))
print("BLAS: %s; sgemm %.1f GFLOP/s (bench env: %dx%d float32 matmul at libtorch's default %d thread(s))"
      % (env["blas"], env["sgemm_gflops"], env.get("sgemm_size", 0), env.get("sgemm_size", 0), env["threads"]))
print("CPU: %s; SIMD flags: %s" % (env.get("cpu", "?"), env.get("simd", "?")))
if detail:
    print("int8 execution: " + detail)
for w in env.get("warnings", []):
    print("WARNING:", w)
for p, b, e, ratio in verdict:
    print("%s, batch %s, gotch %s: gotch/PyTorch = %.3f: %s" % (p, b, e, ratio, "faster than or as fast as PyTorch" if ratio <= 1.0 else "SLOWER than PyTorch"))
for p in precisions:
    for b in batches:
        if p != "fp32" and ("fp32", b) in best and (p, b) in best:
            print("gotch %s against gotch fp32, batch %s (best engine each): %.2fx" % (p, b, best["fp32", b] / best[p, b]))
EOF

# The Go speed benchmarks (structured pruning and token reduction against
# their MACs ratio, one training step), under the same settings exported
# above, so that their figures match what suites measure.
echo
$GO test -run '^$' -bench 'StructuredSpeedup|TrainStep' -benchtime 5x -count 1 -v ./techniques/prune ./harness/train
