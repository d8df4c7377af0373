#!/usr/bin/env bash
# Runs the web UI's end-to-end test against a fresh appliance.
#
#   ui/tests/run.sh path/to/rap-appliance
#   RAP_E2E_TLS=1 ui/tests/run.sh path/to/rap-appliance   # over HTTPS, with the set-up code
#
# Starts the binary on a free loopback port with a temporary data directory
# (insecure bootstrap allowed, development mode, the scripted runtime
# standing in for remote desktops), waits for /readyz, runs e2e.mjs in
# headless Chromium (RAP_DATA_DIR tells it the data directory, for the file
# transfer steps), and stops the appliance.
# With RAP_E2E_TLS=1 the appliance serves HTTPS from its own CA and asks
# for its set-up code (see appliance.sh): the test trusts that CA alone
# (RAP_CA_FILE) and types the code from its file (RAP_SETUP_CODE_FILE).
# Screenshots and the appliance's log go to ui/tests/artifacts/ (named
# tls-* for the HTTPS run; each run replaces only its own).
set -euo pipefail

BIN=${1:?usage: $0 path/to/rap-appliance}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
ARTIFACTS="$HERE/artifacts"
# shellcheck source=appliance.sh
. "$HERE/appliance.sh"
mkdir -p "$ARTIFACTS"
# (run-rdp.sh's rdp-* and bench-* artifacts, run-shadow.sh's viewer-h264 and
# h264-* ones and the native-* and desktop-* screenshots of the Rust smoke
# runs are left alone, and each of the plain and HTTPS runs keeps the other's)
if tls_run; then
  find "$ARTIFACTS" -maxdepth 1 -name 'tls-*.png' -delete
  LOG="$ARTIFACTS/tls-appliance.log"
else
  find "$ARTIFACTS" -maxdepth 1 -name '*.png' ! -name 'rdp-*' ! -name 'bench-*' ! -name 'tls-*' ! -name 'native-*' ! -name 'desktop-*' ! -name '*h264*' -delete
  LOG="$ARTIFACTS/appliance.log"
fi
rm -f "$LOG"

require_executables "$BIN"
make_data_dir rap-ui-e2e
start_appliance "$BIN" scripted "$LOG"

cd "$HERE"
if tls_run; then
  RAP_URL="$URL" RAP_DATA_DIR="$DATA/data" RAP_CA_FILE="$DATA/data/tls/ca.pem" RAP_SETUP_CODE_FILE="$DATA/data/setup-code" node e2e.mjs
else
  RAP_URL="$URL" RAP_DATA_DIR="$DATA/data" node e2e.mjs
fi
