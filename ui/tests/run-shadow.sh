#!/usr/bin/env bash
# Runs the web UI against a real H.264 host: FreeRDP's shadow server
# (testing/shadow-setup.sh starts one on 127.0.0.1:13390, sharing a virtual
# display with an xterm; it speaks the RDP graphics pipeline and encodes
# the screen with libx264) behind a fresh appliance with the RDP worker
# runtime. The viewer attaches with `"codecs": ["h264"]` and decodes the
# host's own stream in the browser (WebCodecs, frame-worker.js).
#
#   ui/tests/run-shadow.sh path/to/rap-appliance host:port
#       end-to-end test: e2e-h264.mjs (last line `e2e: N passed, M failed`)
#
# The shadow server is not started here: it must already listen at
# host:port (no login: any username and password; a self-signed
# certificate, so the resource ignores certificates). The appliance runs on
# a free loopback port with a temporary data directory (insecure bootstrap
# allowed, development mode, RAP_WORKER_RUNTIME=rdp), waited for on
# /readyz; the script runs in headless Chromium; the appliance is stopped
# after, also on failure. Its log goes to ui/tests/artifacts/h264-appliance.log,
# the screenshots to ui/tests/artifacts/viewer-h264.png and h264-*.png.
set -euo pipefail

BIN=${1:?usage: $0 path/to/rap-appliance host:port}
TARGET=${2:?usage: $0 path/to/rap-appliance host:port}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ARTIFACTS="$HERE/artifacts"
# shellcheck source=appliance.sh
. "$HERE/appliance.sh"
mkdir -p "$ARTIFACTS"

RDP_HOST=${TARGET%:*}
RDP_PORT=${TARGET##*:}
if [ -z "$RDP_HOST" ] || [ "$RDP_HOST" = "$TARGET" ] || ! [[ "$RDP_PORT" =~ ^[0-9]+$ ]]; then
  echo "$ME: $TARGET is not host:port" >&2
  exit 2
fi
if ! (exec 3<>"/dev/tcp/$RDP_HOST/$RDP_PORT") 2>/dev/null; then
  echo "$ME: nothing listens at $TARGET (start the shadow server: testing/shadow-setup.sh)" >&2
  exit 2
fi

require_executables "$BIN"
rm -f "$ARTIFACTS/viewer-h264.png" "$ARTIFACTS"/h264-*.png "$ARTIFACTS/h264-appliance.log"
make_data_dir rap-ui-h264
trap 'exit 130' INT TERM

start_appliance "$BIN" rdp "$ARTIFACTS/h264-appliance.log"

cd "$HERE"
status=0
RAP_URL="$URL" RDP_HOST="$RDP_HOST" RDP_PORT="$RDP_PORT" node e2e-h264.mjs || status=$?
exit "$status"
