#!/usr/bin/env bash
# assets.sh fetches the ECharts script the HTML report loads, so reports
# open from disk with no network.
#
# go-echarts v2.6.7 (go.mod) targets ECharts 5.4.3 (its README badge and
# docs/en-us/dive-into.md; by default it would load echarts.min.js from
# go-echarts' CDN). This script takes the same file from the npm package
# `echarts` and leaves it in the git-ignored .cache/assets/, from where
# `bench report` / reports.Render copies it into every report folder.
#
# Idempotent: a second run finds the file, checks its version and does
# nothing. Set ECHARTS_VERSION to override the version (tests do not).
set -euo pipefail

ECHARTS_VERSION="${ECHARTS_VERSION:-5.4.3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.cache/assets"
stamp="$dest/echarts.version"

if [[ -s "$dest/echarts.min.js" && -f "$stamp" && "$(cat "$stamp")" == "$ECHARTS_VERSION" ]]; then
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "assets.sh: npm not found; install Debian's npm (apt-get install -y npm)" >&2
	exit 1
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "assets.sh: fetching echarts@$ECHARTS_VERSION from npm" >&2
tarball="$(cd "$tmp" && npm pack --silent "echarts@$ECHARTS_VERSION" | tail -n 1)"
if [[ ! -f "$tmp/$tarball" ]]; then
	echo "assets.sh: npm pack echarts@$ECHARTS_VERSION produced no tarball" >&2
	exit 1
fi
tar -xzf "$tmp/$tarball" -C "$tmp" package/dist/echarts.min.js package/package.json package/LICENSE

got="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$tmp/package/package.json" | head -n 1)"
if [[ "$got" != "$ECHARTS_VERSION" ]]; then
	echo "assets.sh: npm returned echarts $got, want $ECHARTS_VERSION" >&2
	exit 1
fi

# Write the file, then the stamp: an interrupted run is redone next time.
cp "$tmp/package/dist/echarts.min.js" "$dest/echarts.min.js.tmp"
mv "$dest/echarts.min.js.tmp" "$dest/echarts.min.js"
cp "$tmp/package/LICENSE" "$dest/echarts.LICENSE"
echo "$ECHARTS_VERSION" >"$stamp"
echo "assets.sh: wrote $dest/echarts.min.js (echarts $ECHARTS_VERSION)" >&2
