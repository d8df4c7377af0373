#!/usr/bin/env bash
# The graphics paths benchmark (appliance/benches/graphics_paths.rs):
# FreeRDP's shadow server on a 1920x1080 virtual display with a terminal,
# a second, hidden display for the baseline client (xfreerdp), then the
# bench. Needs freerdp2-shadow-x11, freerdp2-x11, ffmpeg, xdotool, xterm,
# Xvfb. Results go to stdout as a Markdown table (docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

host_display=:38
client_display=:39
port=13391
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

Xvfb $host_display -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
Xvfb $client_display -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 & pids+=($!)
sleep 1
DISPLAY=$host_display xterm -geometry 160x50+0+0 >/dev/null 2>&1 & pids+=($!)
DISPLAY=$host_display freerdp-shadow-cli /bind-address:127.0.0.1 /port:$port /sec:tls -auth \
  >/tmp/rap-bench-shadow.log 2>&1 & pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

RAP_BENCH_SHADOW=127.0.0.1:$port RAP_BENCH_HOST_DISPLAY=$host_display RAP_BENCH_CLIENT_DISPLAY=$client_display \
  cargo bench -p rap-appliance --bench graphics_paths
