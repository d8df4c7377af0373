# Sourced by run.sh, run-rdp.sh and run-shadow.sh (after `set -euo pipefail` and setting
# HERE to this folder); not a script of its own. The part they share:
# checking the binaries and the browser, a temporary data directory, the
# appliance on a free loopback port (insecure bootstrap allowed, development
# mode) waited for on /readyz, and, on exit, every process they started
# stopped and the data directory removed. Messages start with the name of
# the script that sources this.
#
# With RAP_E2E_TLS=1 the appliance runs as on a LAN instead: HTTPS from its
# own CA (APP_TLS=auto, which writes DATA/data/tls/ca.pem at start) and no
# insecure bootstrap, so creating the owner takes the set-up code it writes
# to DATA/data/setup-code. Node trusts that CA (NODE_EXTRA_CA_CERTS, for
# the readiness check and the tests' own requests); the browser is told by
# the test (RAP_CA_FILE).

ME=${0##*/}
DATA=
PID=
# Stopped on exit, the last started first (see `track`).
STOP_PIDS=

# require_executables FILE...: each one executable; Chromium; playwright-core
# (installed when missing).
require_executables() {
  local file
  for file in "$@"; do
    if [ ! -x "$file" ]; then
      echo "$ME: $file is not an executable" >&2
      exit 2
    fi
  done
  if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "$ME: Chromium not found (apt-get install -y chromium)" >&2
    exit 2
  fi
  if [ ! -d "$HERE/node_modules/playwright-core" ]; then
    (cd "$HERE" && npm install --no-save --no-audit --no-fund playwright-core >/dev/null)
  fi
}

# stop_process PID: TERM, then KILL after 5 s (nothing when PID is empty or gone).
stop_process() {
  local pid=$1
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

# track PID: stop the process on exit.
track() {
  STOP_PIDS="$1 $STOP_PIDS"
}

cleanup() {
  local pid
  for pid in $STOP_PIDS; do stop_process "$pid"; done
  if [ -n "$DATA" ]; then rm -rf "$DATA"; fi
}

# make_data_dir NAME: DATA, a fresh directory NAME.XXXXXX in $TMPDIR, and
# the exit trap that cleans up.
make_data_dir() {
  DATA=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  trap cleanup EXIT
}

# poll PID TRIES SECONDS COMMAND...: runs COMMAND every SECONDS until it
# succeeds; fails when the process PID has exited or after TRIES runs.
poll() {
  local pid=$1 tries=$2 seconds=$3
  shift 3
  for _ in $(seq 1 "$tries"); do
    if "$@"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep "$seconds"
  done
  return 1
}

# give_up MESSAGE LOG LINES: MESSAGE and the last LINES of LOG on stderr; exit 1.
give_up() {
  echo "$ME: $1" >&2
  tail -n "$3" "$2" >&2
  exit 1
}

is_ready() {
  node -e "fetch('$1/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null
}

# tls_run: whether RAP_E2E_TLS asks for the HTTPS run.
tls_run() {
  [ "${RAP_E2E_TLS:-0}" = 1 ]
}

# start_appliance BINARY RUNTIME LOG: `BINARY serve` with DATA/data, the
# worker runtime RUNTIME and its output to LOG, on a free port; returns once
# it is ready, with PID and URL set (exits, with its log, if it is not).
start_appliance() {
  local binary=$1 runtime=$2 log=$3 port scheme
  local -a mode
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  if tls_run; then
    mode=(APP_TLS=auto)
    scheme=https
    export NODE_EXTRA_CA_CERTS="$DATA/data/tls/ca.pem"
  else
    mode=(INSTALLATION_INSECURE_BOOTSTRAP_ENABLED=true)
    scheme=http
  fi
  env APP_DATA_DIR="$DATA/data" \
    APP_LISTEN_ADDR="127.0.0.1:$port" \
    APP_ENV=development \
    RAP_WORKER_RUNTIME="$runtime" \
    "${mode[@]}" \
    "$binary" serve >"$log" 2>&1 &
  PID=$!
  track "$PID"
  URL="$scheme://127.0.0.1:$port"
  poll "$PID" 120 0.5 is_ready "$URL" || give_up "the appliance did not become ready; its log:" "$log" 40
}
