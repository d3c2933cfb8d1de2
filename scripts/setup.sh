#!/usr/bin/env bash
# Set-up for vitbench on a Debian bookworm machine, idempotent: a second run
# with nothing to do takes a few seconds.
#
#  1. Debian packages: libtorch (unless $LIBTORCH points at an official
#     libtorch tree), OpenBLAS (libtorch's matmul is ~30x slower on the
#     reference BLAS), the PyTorch reference peer for tests, Fashion-MNIST,
#     Chromium for the report's browser test, Slurm and munge for the
#     cluster test (scripts/slurm-local.sh starts a one-node cluster).
#  2. A build copy of gotch prepared for the libtorch found, wired in with a
#     git-ignored go.work (internal/gotchprep).
#  3. The ECharts script for offline reports (scripts/assets.sh).
#  4. A first build, so gotch's C++ (3-4 minutes once) lands in Go's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

need=(libopenblas0-pthread libdnnl-dev python3-torch python3-torchvision python3-numpy
      dataset-fashion-mnist chromium fonts-dejavu-core binutils g++ make slurm-wlm munge)
if [ -z "${LIBTORCH:-}" ]; then
  need+=(libtorch-dev)
fi
missing=()
for p in "${need[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# libtorch links libblas.so.3; Debian's alternatives decide which BLAS that is.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  "") ;;
  *) echo "setup: WARNING: libblas.so.3 is $blas, not OpenBLAS; libtorch will be ~30x slower." >&2
     echo "setup:          fix: update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" >&2 ;;
esac

command -v go >/dev/null || { echo "setup: Go is not installed (expected /usr/local/go/bin/go)" >&2; exit 1; }
go run ./internal/gotchprep
bash scripts/assets.sh
go build ./...
echo "setup: done"
