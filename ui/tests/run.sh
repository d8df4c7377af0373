#!/usr/bin/env bash
# Runs the web UI's end-to-end test against a fresh appliance.
#
#   ui/tests/run.sh path/to/rap-appliance
#
# Starts the binary on a free loopback port with a temporary data directory
# (insecure bootstrap allowed, development mode, the scripted runtime
# standing in for remote desktops), waits for /readyz, runs e2e.mjs in
# headless Chromium (RAP_DATA_DIR tells it the data directory, for the file
# transfer steps), and stops the appliance.
# Screenshots and the appliance's log go to ui/tests/artifacts/.
set -euo pipefail

BIN=${1:?usage: $0 path/to/rap-appliance}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ARTIFACTS="$HERE/artifacts"
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/appliance.log

if [ ! -x "$BIN" ]; then
  echo "run.sh: $BIN is not an executable" >&2
  exit 2
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "run.sh: Chromium not found (apt-get install -y chromium)" >&2
  exit 2
fi
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && npm install --no-save --no-audit --no-fund playwright-core >/dev/null)
fi

PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
DATA=$(mktemp -d "${TMPDIR:-/tmp}/rap-ui-e2e.XXXXXX")
LOG="$ARTIFACTS/appliance.log"
PID=

cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

APP_DATA_DIR="$DATA/data" \
APP_LISTEN_ADDR="127.0.0.1:$PORT" \
APP_ENV=development \
RAP_WORKER_RUNTIME=scripted \
INSTALLATION_INSECURE_BOOTSTRAP_ENABLED=true \
  "$BIN" serve >"$LOG" 2>&1 &
PID=$!

URL="http://127.0.0.1:$PORT"
ready=
for _ in $(seq 1 120); do
  if node -e "fetch('$URL/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then
    ready=1
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then break; fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "run.sh: the appliance did not become ready; its log:" >&2
  tail -n 40 "$LOG" >&2
  exit 1
fi

cd "$HERE"
RAP_URL="$URL" RAP_DATA_DIR="$DATA/data" node e2e.mjs
