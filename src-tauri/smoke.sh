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
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DISPLAY=$display XDG_DATA_HOME="$WORK/share" APP_LISTEN_ADDR="127.0.0.1:$port" RAP_WORKER_RUNTIME=scripted \
  "$BIN" >"$WORK/log" 2>&1 &
APP=$!

ready=
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$APP" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "smoke: the app's appliance never answered /readyz; its log:" >&2
  tail -n 30 "$WORK/log" >&2
  exit 1
fi
# Time for the webview to load and paint the console.
sleep 4
if [ -n "$SHOT" ] && command -v import >/dev/null && [ -x /usr/bin/import ]; then
  DISPLAY=$display /usr/bin/import -window root "$SHOT" && echo "smoke: screenshot $SHOT"
fi
kill -TERM "$APP"
status=0
wait "$APP" || status=$?
APP=
if [ "$status" -ne 0 ] || ! grep -q "Appliance stopped" "$WORK/log"; then
  echo "smoke: the app did not stop cleanly (exit $status); its log:" >&2
  tail -n 30 "$WORK/log" >&2
  exit 1
fi
echo "smoke: the desktop app ran its appliance, opened its console and stopped cleanly"
