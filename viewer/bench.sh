#!/usr/bin/env bash
# The native viewer against the browser viewer, same machine, same run, same
# frames: whole 1920×1080 zlib binary_v1 updates decoded and painted in a
# loop by each (docs/BENCHMARKS.md, "Native viewer").
#
#   bash viewer/bench.sh        # BENCH_SECONDS per case, default 5
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_FRAMES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rap-bench-frames.XXXXXX")
export BENCH_FRAMES_DIR
trap 'rm -rf "$BENCH_FRAMES_DIR"' EXIT
cargo bench -q -p rap-viewer --bench native_paint
echo
(cd ui/tests && npm install --no-save --no-audit --no-fund playwright-core >/dev/null)
node ui/tests/bench-paint.mjs
