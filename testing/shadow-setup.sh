#!/usr/bin/env bash
# Starts FreeRDP's shadow server (Debian freerdp2-shadow-x11) on
# 127.0.0.1:13390, sharing a virtual display (Xvfb :37, 1280x720) with a
# terminal on it, for the graphics pipeline tests (appliance/tests/
# graphics.rs): it speaks MS-RDPEGFX and encodes H.264 with libx264.
# `-auth`: no login, it shares the display as it is. Prints the
# RAP_ACCEPTANCE_SHADOW value; `--stop` stops what an earlier run started.
set -euo pipefail

display=:37
port=13390
pids=/tmp/rap-shadow.pids

stop() {
  if [ -f "$pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$pids"
    rm -f "$pids"
  fi
}
stop
[ "${1:-}" = --stop ] && exit 0

Xvfb "$display" -screen 0 1280x720x24 -nolisten tcp >/tmp/rap-shadow-xvfb.log 2>&1 &
echo $! >> "$pids"
for _ in $(seq 1 50); do
  DISPLAY=$display xdpyinfo >/dev/null 2>&1 && break
  [ -e "/tmp/.X11-unix/X${display#:}" ] && break
  sleep 0.1
done
# No window manager: the keyboard goes to the window under the pointer.
DISPLAY=$display xterm -geometry 100x30+10+10 >/dev/null 2>&1 &
echo $! >> "$pids"
DISPLAY=$display freerdp-shadow-cli /bind-address:127.0.0.1 /port:$port /sec:tls -auth \
  >/tmp/rap-shadow.log 2>&1 &
echo $! >> "$pids"

for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  sleep 0.1
done
echo "the shadow server did not listen on $port; its log:" >&2
cat /tmp/rap-shadow.log >&2
exit 1
