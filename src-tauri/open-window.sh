#!/usr/bin/env bash
# "Open in window" end to end on a virtual display: WebKitWebDriver starts
# the desktop app under automation, open-window.py signs in on its console,
# clicks "Open in window" and checks the native viewer's window paints the
# remote desktop. rap-viewer must sit beside rap-desktop (cargo builds both
# into the same folder).
#
#   src-tauri/open-window.sh path/to/rap-desktop [screenshot.png]
set -euo pipefail
BIN=${1:?usage: $0 path/to/rap-desktop [screenshot.png]}
SHOT=${2:-}
for tool in Xvfb WebKitWebDriver xdotool python3; do
  command -v "$tool" >/dev/null || { echo "open-window: $tool not found" >&2; exit 2; }
done
[ -x "$(dirname "$BIN")/rap-viewer" ] || { echo "open-window: no rap-viewer beside $BIN" >&2; exit 2; }
if [ -n "$SHOT" ]; then mkdir -p "$(dirname "$SHOT")"; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rap-open-window.XXXXXX")
PIDS=
cleanup() {
  for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
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

port=$(free_port)
driver_port=$(free_port)
# The app inherits this environment from the driver that starts it.
env DISPLAY="$display" XDG_DATA_HOME="$WORK/share" RAP_WORKER_RUNTIME=scripted APP_LISTEN_ADDR="127.0.0.1:$port" \
  TAURI_WEBVIEW_AUTOMATION=true WebKitWebDriver --port="$driver_port" >"$WORK/driver.log" 2>&1 &
PIDS="$! $PIDS"
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$driver_port/status" >/dev/null 2>&1 && break; sleep 0.1; done

if ! DISPLAY="$display" python3 "$(dirname "$0")/open-window.py" "http://127.0.0.1:$driver_port" "$BIN" "$port" "$WORK/share" $SHOT; then
  echo "--- driver log:" >&2
  tail -n 40 "$WORK/driver.log" >&2
  exit 1
fi
