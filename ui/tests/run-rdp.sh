#!/usr/bin/env bash
# Runs the web UI against a real RDP desktop: the RDP test server
# (testing/rdp-test-server, on IronRDP's server crate) behind a fresh
# appliance with the RDP worker runtime.
#
#   ui/tests/run-rdp.sh path/to/rap-appliance path/to/rdp-test-server
#       end-to-end test: e2e-rdp.mjs (last line `e2e: N passed, M failed`)
#   ui/tests/run-rdp.sh --bench path/to/rap-appliance path/to/rdp-test-server
#       viewer benchmark: bench-viewer.mjs (use a release test server;
#       BENCH_SECONDS, default 10, sets the measured window)
#
# Starts the test server on a free loopback port (reads the port from its
# `LISTENING 127.0.0.1:PORT` line; its stdout, with the `INPUT ...` lines the
# test checks, goes to ui/tests/artifacts/rdp-server.log), then the appliance
# on another free port with a temporary data directory (insecure bootstrap
# allowed, development mode, RAP_WORKER_RUNTIME=rdp), waits for /readyz,
# runs the script in headless Chromium and stops both, also on failure.
# The appliance's log goes to ui/tests/artifacts/rdp-appliance.log.
set -euo pipefail

MODE=e2e
if [ "${1:-}" = "--bench" ]; then
  MODE=bench
  shift
fi
BIN=${1:?usage: $0 [--bench] path/to/rap-appliance path/to/rdp-test-server}
SERVER=${2:?usage: $0 [--bench] path/to/rap-appliance path/to/rdp-test-server}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
SERVER=$(cd "$(dirname "$SERVER")" && pwd)/$(basename "$SERVER")
ARTIFACTS="$HERE/artifacts"
# shellcheck source=appliance.sh
. "$HERE/appliance.sh"
mkdir -p "$ARTIFACTS"

require_executables "$BIN" "$SERVER"

if [ "$MODE" = bench ]; then
  PREFIX=bench
  SCRIPT=bench-viewer.mjs
  # As the rdp_sessions benchmark runs it: a full-screen repaint, continuously.
  SERVER_ARGS=(port=0 security=hybrid user=test password=secret size=1920x1080 animate=full)
else
  PREFIX=rdp
  SCRIPT=e2e-rdp.mjs
  # As appliance/tests/rdp.rs runs it: NLA, lossless codecs (exact pixels).
  SERVER_ARGS=(port=0 security=hybrid user=test password=secret codecs=remotefx:off)
fi
rm -f "$ARTIFACTS/$PREFIX"-*.png "$ARTIFACTS/$PREFIX"-*.log

SERVER_LOG="$ARTIFACTS/$PREFIX-server.log"
make_data_dir rap-ui-rdp
trap 'exit 130' INT TERM

# The test server: it prints its address once it listens.
"$SERVER" "${SERVER_ARGS[@]}" >"$SERVER_LOG" 2>&1 </dev/null &
SERVER_PID=$!
track "$SERVER_PID"
RDP_PORT=
listening() {
  RDP_PORT=$(sed -n 's/^LISTENING 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SERVER_LOG" | head -n 1)
  [ -n "$RDP_PORT" ]
}
poll "$SERVER_PID" 100 0.1 listening || give_up "the RDP test server did not start; its output:" "$SERVER_LOG" 20

start_appliance "$BIN" rdp "$ARTIFACTS/$PREFIX-appliance.log"

cd "$HERE"
status=0
RAP_URL="$URL" RAP_DATA_DIR="$DATA/data" RDP_PORT="$RDP_PORT" RDP_SERVER_LOG="$SERVER_LOG" \
  RDP_SERVER_PID="$SERVER_PID" RAP_APPLIANCE_PID="$PID" node "$SCRIPT" || status=$?
exit "$status"
