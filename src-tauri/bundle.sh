#!/usr/bin/env bash
# bash src-tauri/bundle.sh [--debug] [BUNDLES]: the desktop app's installers
# (default: deb) through the Tauri CLI, the native viewer inside them beside
# the app; prints each bundle's path, one per line, last.
#
# tauri.conf.json holds every platform's bundle settings (deb here; NSIS and
# MSI on Windows, .app and .dmg on macOS, built on those systems). The
# viewer is named as an external binary only in tauri.bundle.conf.json,
# merged in here: tauri-build copies external binaries on every build, and
# a plain `cargo build` of the app has no bundled viewer to copy (the same
# file adds the .deb's changelog, made here).
#
# --debug bundles the dev profile (CI, which has built it already).
# The Tauri CLI: TAURI_CLI, or the one `npm install` put in ui/tests.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
cargo_profile=(--release)
tauri_profile=()
if [ "${1:-}" = --debug ]; then
    profile=debug cargo_profile=() tauri_profile=(--debug)
    shift
fi
bundles=${1:-deb}
target=${CARGO_TARGET_DIR:-$PWD/target}
tauri=${TAURI_CLI:-$PWD/ui/tests/node_modules/.bin/tauri}
[ -x "$tauri" ] || { echo "bundle: no Tauri CLI at $tauri (cd ui/tests && npm install @tauri-apps/cli@2.12)" >&2; exit 1; }

triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --locked -p rap-viewer --features window "${cargo_profile[@]}" >&2
install -D -m 0755 "$target/$profile/rap-viewer" "src-tauri/binaries/rap-viewer-$triple"
# The package's changelog, as the appliance's package words it.
maintainer=$(sed -n 's/^authors = \["\(.*\)"\]$/\1/p' src-tauri/Cargo.toml)
version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' src-tauri/tauri.conf.json)
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
sed -e '1s/^rap-appliance /rap-appliance-desktop /' -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" \
    -e "s/@DATE@/$date/" packaging/debian/changelog | gzip -9n >src-tauri/binaries/changelog.gz
rm -rf "$target/$profile/bundle"
(cd src-tauri && "$tauri" build --ci "${tauri_profile[@]}" --bundles "$bundles" --config tauri.bundle.conf.json) >&2
find "$target/$profile/bundle" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.AppImage' -o -name '*.rpm' \) | sort
