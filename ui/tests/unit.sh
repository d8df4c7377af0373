#!/usr/bin/env bash
# Runs the web UI's unit tests (ui/tests/unit/*.test.mjs) with Node's own
# test runner: the pure modules (frames.js against the appliance's header
# bytes, input mapping, policies, transfers, geometry, backoff) and the
# shape of the module graph. No browser, no appliance. From any directory:
#
#   ui/tests/unit.sh
#
# Node's spec report goes to the terminal; the last line is
# `unit: N passed, M failed` (from its TAP summary); the exit code is
# non-zero on a failure, or when no test ran.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TAP=$(mktemp "${TMPDIR:-/tmp}/rap-ui-unit.XXXXXX")
trap 'rm -f "$TAP"' EXIT

status=0
node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$TAP" \
  "$HERE"/unit/*.test.mjs || status=$?

# The TAP summary's top-level counts (indented lines belong to subtests).
count() { sed -n "s/^# $1 \([0-9][0-9]*\)$/\1/p" "$TAP" | tail -n 1; }
passed=$(count pass)
failed=$(count fail)
cancelled=$(count cancelled)
passed=${passed:-0}
failed=$(( ${failed:-0} + ${cancelled:-0} ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi

echo "unit: $passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
