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
# shellcheck source=appliance.sh
. "$HERE/appliance.sh"
mkdir -p "$ARTIFACTS"
# (run-rdp.sh's rdp-* and bench-* artifacts are left alone)
find "$ARTIFACTS" -maxdepth 1 -name '*.png' ! -name 'rdp-*' ! -name 'bench-*' -delete
rm -f "$ARTIFACTS"/appliance.log

require_executables "$BIN"
make_data_dir rap-ui-e2e
start_appliance "$BIN" scripted "$ARTIFACTS/appliance.log"

cd "$HERE"
RAP_URL="$URL" RAP_DATA_DIR="$DATA/data" node e2e.mjs
