#!/usr/bin/env bash
# The native viewer on a virtual display against a real appliance (the
# scripted desktop): it must paint the remote screen itself, pixel for
# pixel, in its own window; a key typed into the window must reach the
# desktop (which marks it with a blue bar along its top edge); resizing the
# window must resize the remote desktop (whose pattern then fills it one to
# one); what was copied here must reach the remote desktop when the window
# gets the focus, and what the desktop copies must land here; a takeover
# from another device must show in the window.
#
#   viewer/smoke.sh path/to/rap-appliance path/to/rap-viewer [screenshot.png]
#
# With RDP_TEST_SERVER=path/to/rdp-test-server the desktop is a real RDP
# server instead (IronRDP's, NLA, lossless codecs: the same pattern): the
# key and the resize are then checked in what the server reports receiving
# (`INPUT KEY …`, `LAYOUT_REQUEST …`).
#
# With XRDP_SPEC="host:port user password" (testing/xrdp-setup.sh prints it)
# the desktop is a real xrdp session (an xterm): the window must show its
# prompt, typing must brighten it with the typed text, and a takeover must
# dim it; the pattern, clipboard, grayscale and resize checks are the
# other desktops'.
set -euo pipefail
APPLIANCE=${1:?usage: $0 rap-appliance rap-viewer [screenshot.png]}
VIEWER=${2:?usage: $0 rap-appliance rap-viewer [screenshot.png]}
SHOT=${3:-}
for tool in Xvfb curl python3 xdotool xclip; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool not found" >&2; exit 2; }
done
[ -x /usr/bin/import ] && [ -x /usr/bin/convert ] || { echo "smoke: ImageMagick not found" >&2; exit 2; }

# The screenshot's folder may not exist yet (a fresh clone).
if [ -n "${SHOT:-}" ]; then mkdir -p "$(dirname "$SHOT")"; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rap-viewer-smoke.XXXXXX")
PIDS=
cleanup() {
  for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

RUNTIME=scripted
if [ -n "${XRDP_SPEC:-}" ]; then
  RUNTIME=xrdp
  read -r xrdp_addr xrdp_user xrdp_password <<<"$XRDP_SPEC"
elif [ -n "${RDP_TEST_SERVER:-}" ]; then
  RUNTIME=rdp
  "$RDP_TEST_SERVER" port=0 security=hybrid user=test password=secret codecs=remotefx:off \
    >"$WORK/server.log" 2>&1 </dev/null &
  PIDS="$! $PIDS"
  rdp_port=
  for _ in $(seq 1 100); do
    rdp_port=$(sed -n 's/^LISTENING 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/server.log" | head -n 1)
    [ -n "$rdp_port" ] && break
    sleep 0.1
  done
  [ -n "$rdp_port" ] || { echo "smoke: the RDP test server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
APP_DATA_DIR="$WORK/data" APP_LISTEN_ADDR="127.0.0.1:$port" RAP_WORKER_RUNTIME=$([ "$RUNTIME" = scripted ] && echo scripted || echo rdp) \
  INSTALLATION_INSECURE_BOOTSTRAP_ENABLED=true "$APPLIANCE" serve >"$WORK/appliance.log" 2>&1 &
PIDS="$! $PIDS"
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -fsS -H 'content-type: application/json' "$base/api/v1/installation/bootstrap-owner" \
  -d '{"email":"o@example.com","password":"owner password 1","display_name":"O"}' >/dev/null
token=$(curl -fsS -H 'content-type: application/json' "$base/api/v1/auth/login" \
  -d '{"email":"o@example.com","password":"owner password 1"}' | json '["access_token"]')
auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
org=$(curl -fsS "${auth[@]}" "$base/api/v1/auth/me" | json '["memberships"][0]["organization_id"]')
if [ "$RUNTIME" = xrdp ]; then
  # xrdp's certificate is self-signed.
  resource=$(curl -fsS "${auth[@]}" "$base/api/v1/resources" -d "{\"organization_id\":\"$org\",\"name\":\"PC\",\
\"protocol\":\"rdp\",\"host\":\"${xrdp_addr%:*}\",\"port\":${xrdp_addr##*:},\"certificate_verification_mode\":\"ignore\"}" | json '["id"]')
  curl -fsS "${auth[@]}" -X PUT "$base/api/v1/resources/$resource/secret" \
    -d "{\"username\":\"$xrdp_user\",\"password\":\"$xrdp_password\"}" >/dev/null
elif [ "$RUNTIME" = rdp ]; then
  # The test server's certificate is self-signed.
  resource=$(curl -fsS "${auth[@]}" "$base/api/v1/resources" -d "{\"organization_id\":\"$org\",\"name\":\"PC\",\
\"protocol\":\"rdp\",\"host\":\"127.0.0.1\",\"port\":$rdp_port,\"certificate_verification_mode\":\"ignore\",\
\"policy\":{\"clipboard_mode\":\"bidirectional\"}}" | json '["id"]')
  curl -fsS "${auth[@]}" -X PUT "$base/api/v1/resources/$resource/secret" \
    -d '{"username":"test","password":"secret"}' >/dev/null
else
  resource=$(curl -fsS "${auth[@]}" "$base/api/v1/resources" \
    -d "{\"organization_id\":\"$org\",\"name\":\"PC\",\"protocol\":\"rdp\",\"host\":\"pc.scripted\",\
\"policy\":{\"clipboard_mode\":\"bidirectional\"}}" | json '["id"]')
fi
# xrdp's xterm (100×30 at +40+40) needs more than the pattern checks do: the
# line being typed on may be its last, after earlier sessions' output.
size='"width":640,"height":400'
[ "$RUNTIME" = xrdp ] && size='"width":1024,"height":720'
started=$(curl -fsS "${auth[@]}" "$base/api/v1/sessions" -d "{\"resource_id\":\"$resource\",$size}")
attach=$(echo "$started" | json '["attach"]["attach_token"]')
session=$(echo "$started" | json '["session"]["id"]')

# A display number nobody uses, and the server up before the viewer starts.
number=$((190 + RANDOM % 50))
while [ -e "/tmp/.X11-unix/X$number" ] || [ -e "/tmp/.X$number-lock" ]; do number=$((number + 1)); done
display=:$number
Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
PIDS="$! $PIDS"
for _ in $(seq 1 50); do
  DISPLAY=$display /usr/bin/import -window root "$WORK/probe.png" 2>/dev/null && break
  sleep 0.1
done
# The token on standard input, as the desktop app passes it.
echo "$attach" | DISPLAY=$display "$VIEWER" --url "ws://127.0.0.1:$port/api/v1/gateway/ws" --token-stdin --title Smoke \
  >"$WORK/viewer.log" 2>&1 &
VIEWER_PID=$!
PIDS="$VIEWER_PID $PIDS"
shot=${SHOT:-$WORK/shot.png}
# The scripted desktop's pattern: red = x mod 256, green = y mod 256, blue 128.
# With no window manager the window sits at the screen's origin.
pixel_at() {
  DISPLAY=$display /usr/bin/import -window root "$shot" 2>"$WORK/import.log" || return 1
  /usr/bin/convert "$shot" -format "%[fx:int(255*p{$1,$2}.r)],%[fx:int(255*p{$1,$2}.g)],%[fx:int(255*p{$1,$2}.b)]" info:
}
# Waits until pixel ($1,$2) is $3, or fails with $4.
expect_pixel() {
  for _ in $(seq 1 100); do
    kill -0 "$VIEWER_PID" 2>/dev/null || { echo "smoke: the viewer exited; its log:" >&2; cat "$WORK/viewer.log" >&2; exit 1; }
    pixel=$(pixel_at "$1" "$2") || { sleep 0.2; continue; }
    [ "$pixel" = "$3" ] && return 0
    sleep 0.2
  done
  echo "smoke: $4 (pixel ($1,$2) is ${pixel:-unknown}, not $3)" >&2
  for log in viewer xvfb import appliance; do echo "--- $log:" >&2; tail -n 20 "$WORK/$log.log" >&2 2>/dev/null || true; done
  [ -n "${KEEP_SHOT:-}" ] && cp "$shot" "$KEEP_SHOT"
  exit 1
}
if [ "$RUNTIME" = xrdp ]; then
  # The whole window's brightness: the xterm's text, wherever its prompt is.
  mean_of_prompt() {
    DISPLAY=$display /usr/bin/import -window root "$WORK/prompt.png" 2>/dev/null || return 1
    /usr/bin/convert "$WORK/prompt.png" -crop 1024x720+0+0 -format '%[fx:mean]' info:
  }
  # Waits until the prompt's brightness satisfies the Python test $1 (on
  # `m`, and `was`, the value before), or fails with $2.
  expect_prompt() {
    for _ in $(seq 1 75); do
      kill -0 "$VIEWER_PID" 2>/dev/null || { echo "smoke: the viewer exited" >&2; cat "$WORK/viewer.log" >&2; exit 1; }
      mean=$(mean_of_prompt) || { sleep 0.2; continue; }
      python3 -c "import sys; m, was = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$mean" "${was:-0}" && return 0
      sleep 0.2
    done
    echo "smoke (xrdp): $2 (brightness ${mean:-unknown}, before ${was:-none})" >&2
    [ -n "${KEEP_SHOT:-}" ] && cp "$WORK/prompt.png" "$KEEP_SHOT"
    exit 1
  }
  expect_prompt "m > 0.0001" "the viewer never showed the xrdp desktop's prompt"
  echo "smoke (xrdp): the native viewer painted the xrdp desktop"
  window=$(DISPLAY=$display xdotool search --name "Smoke" | head -n 1)
  [ -n "$window" ] || { echo "smoke: no window titled Smoke" >&2; exit 1; }
  cp "$WORK/prompt.png" "$WORK/before.png"
  DISPLAY=$display xdotool windowfocus --sync "$window"
  DISPLAY=$display xdotool type --delay 50 "echo typed into the native window"
  # The typed text: a few hundred pixels that were not lit before.
  typed=
  for _ in $(seq 1 75); do
    mean_of_prompt >/dev/null || { sleep 0.2; continue; }
    changed=$(/usr/bin/compare -metric AE "$WORK/before.png" "$WORK/prompt.png" null: 2>&1 || true)
    [ "${changed%%[^0-9]*}" -gt 200 ] 2>/dev/null && { typed=1; break; }
    sleep 0.2
  done
  [ -n "$typed" ] || { echo "smoke (xrdp): typing did not show in the xterm (${changed:-no} pixels changed)" >&2; exit 1; }
  echo "smoke (xrdp): typed keys reached the xterm ($changed pixels changed)"
  mean=$(mean_of_prompt)
  was=$mean
  curl -fsS -H "authorization: Bearer $token" -X POST "$base/api/v1/sessions/$session/takeover" >/dev/null
  expect_prompt "m < was * 0.35" "the picture was not dimmed after the takeover"
  case "$(DISPLAY=$display xdotool getwindowname "$window")" in
    *"Another device took over"*) echo "smoke (xrdp): a takeover shows in the window (screenshot $shot)" ;;
    *) echo "smoke (xrdp): the window's title does not tell of the takeover" >&2; exit 1 ;;
  esac
  cp "$WORK/prompt.png" "$shot" 2>/dev/null || true
  exit 0
fi
expect_pixel 100 50 "100,50,128" "the viewer never showed the remote desktop"
expect_pixel 600 390 "88,134,128" "the far corner is not the desktop's"
echo "smoke: the native viewer painted the remote desktop"

window=$(DISPLAY=$display xdotool search --name "Smoke" | head -n 1)
[ -n "$window" ] || { echo "smoke: no window titled Smoke" >&2; exit 1; }
# Something copied on this computer before the window gets the focus.
printf 'hello from the pc' | DISPLAY=$display xclip -selection clipboard -i
DISPLAY=$display xdotool windowfocus --sync "$window"
# Waits until the RDP test server's output has the line $1, or fails with $2.
expect_server_line() {
  for _ in $(seq 1 100); do
    grep -qF "$1" "$WORK/server.log" && return 0
    sleep 0.2
  done
  echo "smoke: $2 (no \"$1\" from the server)" >&2
  tail -n 20 "$WORK/server.log" >&2
  exit 1
}
DISPLAY=$display xdotool key a
if [ "$RUNTIME" = rdp ]; then
  expect_server_line "INPUT KEY Pressed { code: 30, extended: false }" "a typed key did not reach the RDP server"
else
  expect_pixel 100 1 "0,0,255" "a typed key did not reach the remote desktop"
fi
echo "smoke: a typed key reached the remote desktop"

if [ "$RUNTIME" = rdp ]; then
  expect_server_line "CLIPBOARD_FROM_CLIENT hello from the pc" "this computer's clipboard did not reach the RDP server"
else
  # The scripted desktop copies it back in upper case, as an application there would.
  for _ in $(seq 1 50); do
    copied=$(DISPLAY=$display xclip -o -selection clipboard 2>/dev/null || true)
    [ "$copied" = "HELLO FROM THE PC" ] && break
    sleep 0.2
  done
  [ "$copied" = "HELLO FROM THE PC" ] || { echo "smoke: the clipboard did not cross both ways (here: \"$copied\")" >&2; cat "$WORK/viewer.log" >&2; exit 1; }
fi
echo "smoke: the clipboard crossed to the remote desktop$([ "$RUNTIME" = rdp ] && echo ' (the RDP server got it)' || echo ' and back')"

# Ctrl+Alt+Shift+G: grayscale frames (BT.601 luma of the pattern), then back.
DISPLAY=$display xdotool key ctrl+alt+shift+g
expect_pixel 100 50 "73,73,73" "Ctrl+Alt+Shift+G did not switch to grayscale"
case "$(DISPLAY=$display xdotool getwindowname "$window")" in
  *grayscale*) ;;
  *) echo "smoke: the title does not say grayscale" >&2; exit 1 ;;
esac
DISPLAY=$display xdotool key ctrl+alt+shift+g
expect_pixel 100 50 "100,50,128" "Ctrl+Alt+Shift+G did not switch back to full colour"
echo "smoke: grayscale on and off from the keyboard"

# Larger than the start: the desktop follows the window, one to one.
DISPLAY=$display xdotool windowsize --sync "$window" 800 500
if [ "$RUNTIME" = rdp ]; then
  expect_server_line "LAYOUT_REQUEST 800x500" "the window's new size did not reach the RDP server"
fi
expect_pixel 700 450 "188,194,128" "the remote desktop did not follow the window to 800x500"
echo "smoke: the remote desktop followed the window's new size"

# Another device (a browser) takes the session over: the window says so and
# dims the last picture (a quarter of the brightness).
curl -fsS -H "authorization: Bearer $token" -X POST "$base/api/v1/sessions/$session/takeover" >/dev/null
expect_pixel 700 450 "47,48,32" "the picture was not dimmed after the takeover"
title=$(DISPLAY=$display xdotool getwindowname "$window")
case "$title" in
  *"Another device took over"*) echo "smoke: a takeover shows in the window: $title (screenshot $shot)" ;;
  *) echo "smoke: the window's title does not tell of the takeover: $title" >&2; exit 1 ;;
esac
