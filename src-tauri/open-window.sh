#!/usr/bin/env bash
# "Open in window" end to end on a virtual display: WebKitWebDriver starts
# the desktop app under automation, open-window.py signs in on its console,
# clicks "Open in window" and checks the native viewer's window paints the
# remote desktop. rap-viewer must sit beside rap-desktop (cargo builds both
# into the same folder).
#
#   src-tauri/open-window.sh path/to/rap-desktop [screenshot.png]
#
# Twice: with the app's own appliance, and in client-only mode against the
# server binary beside it (RAP_APPLIANCE overrides) serving HTTPS on
# 127.0.0.2, pinned by its CA fingerprint.
set -euo pipefail
BIN=${1:?usage: $0 path/to/rap-desktop [screenshot.png]}
SHOT=${2:-}
APPLIANCE=${RAP_APPLIANCE:-$(dirname "$BIN")/rap-appliance}
for tool in Xvfb WebKitWebDriver xdotool python3; do
  command -v "$tool" >/dev/null || { echo "open-window: $tool not found" >&2; exit 2; }
done
[ -x "$(dirname "$BIN")/rap-viewer" ] || { echo "open-window: no rap-viewer beside $BIN" >&2; exit 2; }
[ -x "$APPLIANCE" ] || { echo "open-window: no rap-appliance at $APPLIANCE" >&2; exit 2; }
if [ -n "$SHOT" ]; then mkdir -p "$(dirname "$SHOT")"; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rap-open-window.XXXXXX")
PIDS=
cleanup() {
  for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
  if [ -s "$WORK/office.pid" ]; then kill "$(cat "$WORK/office.pid")" 2>/dev/null || true; fi
  pkill -f "$(dirname "$BIN")/rap-viewer" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

number=$((240 + RANDOM % 50))
while [ -e "/tmp/.X11-unix/X$number" ] || [ -e "/tmp/.X$number-lock" ]; do number=$((number + 1)); done
display=:$number
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
PIDS="$! $PIDS"
for _ in $(seq 1 50); do [ -e "/tmp/.X11-unix/X$number" ] && break; sleep 0.1; done

# run_app NAME CONSOLE_URL APPLIANCE_DATA_DIR SCREENSHOT [ENV...]: the app
# under WebKitWebDriver (which passes it ENV), then open-window.py.
run_app() {
  local name=$1 console=$2 data=$3 shot=$4 driver_port driver
  shift 4
  driver_port=$(free_port)
  env DISPLAY="$display" RAP_WORKER_RUNTIME=scripted TAURI_WEBVIEW_AUTOMATION=true "$@" \
    WebKitWebDriver --port="$driver_port" >"$WORK/$name-driver.log" 2>&1 &
  driver=$!
  PIDS="$driver $PIDS"
  for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$driver_port/status" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! DISPLAY="$display" python3 "$(dirname "$0")/open-window.py" "http://127.0.0.1:$driver_port" "$BIN" "$console" "$data" $shot; then
    echo "--- $name: the app's log (through the driver):" >&2
    tail -n 40 "$WORK/$name-driver.log" >&2
    exit 1
  fi
  kill "$driver" 2>/dev/null || true
  pkill -f "$(dirname "$BIN")/rap-viewer" 2>/dev/null || true
}

# The app's own appliance, on this computer only.
port=$(free_port)
run_app local "http://127.0.0.1:$port" "$WORK/share/app.rap-appliance.desktop/data" "$SHOT" \
  XDG_DATA_HOME="$WORK/share" APP_LISTEN_ADDR="127.0.0.1:$port"

# Client-only: the app shows an office appliance (the server binary on
# 127.0.0.2, HTTPS with its own CA), trusting it by the CA fingerprint given
# on the command line, the native window verifying the gateway with that CA.
# open-window.py restarts it (office_restart) under the open window, which
# must reconnect by itself.
office_port=$(free_port)
ca="$WORK/office/tls/ca.pem"
export WORK APPLIANCE office_port ca
office_start() {
  APP_DATA_DIR="$WORK/office" APP_LISTEN_ADDR="127.0.0.2:$office_port" APP_TLS=auto RAP_WORKER_RUNTIME=scripted \
    "$APPLIANCE" serve >>"$WORK/office.log" 2>&1 &
  echo $! >"$WORK/office.pid"
  for _ in $(seq 1 100); do
    [ -s "$ca" ] && curl -fsS --cacert "$ca" "https://127.0.0.2:$office_port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "open-window: the office appliance did not become ready" >&2
  return 1
}
office_restart() {
  local pid
  pid=$(cat "$WORK/office.pid")
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  office_start
}
export -f office_start office_restart
office_start
fingerprint=$(python3 -c 'import base64,hashlib,sys; pem=open(sys.argv[1]).read(); body="".join(l for l in pem.splitlines() if "-----" not in l); print(hashlib.sha256(base64.b64decode(body)).hexdigest())' "$ca")
RAP_RESTART_APPLIANCE="bash -c office_restart" RAP_CA_FILE="$ca" \
  RAP_APP_ARGS="--connect https://127.0.0.2:$office_port/ --fingerprint $fingerprint" \
  run_app client "https://127.0.0.2:$office_port" "$WORK/office" "${SHOT:+${SHOT%.png}-client.png}" \
  XDG_DATA_HOME="$WORK/share-client"

# The same appliance with one digit of the fingerprint wrong: the app says
# it is not trusted and shows nothing of it.
wrong=$(python3 -c 'import sys; f=sys.argv[1]; print(("1" if f[0] == "0" else "0") + f[1:])' "$fingerprint")
RAP_EXPECT_REFUSAL=1 RAP_CA_FILE="$ca" RAP_APP_ARGS="--connect https://127.0.0.2:$office_port/ --fingerprint $wrong" \
  run_app refused "https://127.0.0.2:$office_port" "$WORK/office" "${SHOT:+${SHOT%.png}-refused.png}" \
  XDG_DATA_HOME="$WORK/share-refused"
