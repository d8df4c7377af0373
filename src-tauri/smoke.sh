#!/usr/bin/env bash
# The desktop app as a user starts it, on a virtual display: it must run its
# appliance (answering /readyz), open the console window, and on SIGTERM
# stop the appliance cleanly and exit 0.
#
#   src-tauri/smoke.sh path/to/rap-desktop [screenshot.png]
#
# Needs Xvfb; takes the screenshot when ImageMagick's `import` is there.
set -euo pipefail
BIN=${1:?usage: $0 path/to/rap-desktop [screenshot.png]}
SHOT=${2:-}
command -v Xvfb >/dev/null || { echo "smoke: Xvfb not found (apt-get install -y xvfb)" >&2; exit 2; }

# The screenshot's folder may not exist yet (a fresh clone).
if [ -n "${SHOT:-}" ]; then mkdir -p "$(dirname "$SHOT")"; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rap-desktop-smoke.XXXXXX")
XVFB=
APP=
cleanup() {
  [ -n "$APP" ] && kill -KILL "$APP" 2>/dev/null || true
  [ -n "$XVFB" ] && kill "$XVFB" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1400x950x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run_once NAME READY_URL SHOT [ENV...]: starts the app with ENV, waits for
# READY_URL to answer, screenshots, stops it with SIGTERM, checks the stop.
run_once() {
  local name=$1 ready_url=$2 shot=$3
  shift 3
  env DISPLAY="$display" XDG_DATA_HOME="$WORK/share" RAP_WORKER_RUNTIME=scripted "$@" "$BIN" >"$WORK/$name.log" 2>&1 &
  APP=$!
  local ready=
  for _ in $(seq 1 100); do
    if curl -fsS "$ready_url" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$APP" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$ready" ]; then
    echo "smoke ($name): $ready_url never answered; the app's log:" >&2
    tail -n 30 "$WORK/$name.log" >&2
    exit 1
  fi
  # Time for the webview to load and paint the console.
  sleep 4
  if [ -n "$shot" ] && [ -x /usr/bin/import ]; then
    DISPLAY=$display /usr/bin/import -window root "$shot" && echo "smoke ($name): screenshot $shot"
  fi
  if [ -n "${CHECK:-}" ]; then "$CHECK"; fi
  kill -TERM "$APP"
  local status=0
  wait "$APP" || status=$?
  APP=
  if [ "$status" -ne 0 ] || ! grep -q "Appliance stopped" "$WORK/$name.log"; then
    echo "smoke ($name): the app did not stop cleanly (exit $status); its log:" >&2
    tail -n 30 "$WORK/$name.log" >&2
    exit 1
  fi
  echo "smoke ($name): ran its appliance, opened its console, stopped cleanly"
}

# This computer only: the console and the appliance on one loopback port.
port=$(free_port)
run_once local "http://127.0.0.1:$port/readyz" "$SHOT" APP_LISTEN_ADDR="127.0.0.1:$port"

# Serving the LAN (the tray's choice, saved in desktop.toml): HTTPS with the
# appliance's own CA on the LAN address (127.0.0.2 stands in for it), the
# window's console in plain HTTP on loopback port 47080.
mkdir -p "$WORK/share/app.rap-appliance.desktop"
printf 'lan = true\n' >"$WORK/share/app.rap-appliance.desktop/desktop.toml"
lan_port=$(free_port)
lan_check() {
  local ca="$WORK/share/app.rap-appliance.desktop/data/tls/ca.pem"
  curl -fsS --cacert "$ca" "https://127.0.0.2:$lan_port/readyz" >/dev/null \
    || { echo "smoke (lan): no HTTPS with the appliance's CA on the LAN side" >&2; exit 1; }
  if curl -fsS "http://127.0.0.2:$lan_port/readyz" >/dev/null 2>&1; then
    echo "smoke (lan): plain HTTP answered on the LAN side" >&2
    exit 1
  fi
}
CHECK=lan_check run_once lan "http://127.0.0.1:47080/readyz" "${SHOT:+${SHOT%.png}-lan.png}" APP_LISTEN_ADDR="127.0.0.2:$lan_port"
