#!/usr/bin/env bash
# bash testing/desktop-package.sh [SCREENSHOT]: the desktop app's .deb the
# way a user gets it, on this machine (as root; it installs and purges the
# package): bundled with the native viewer beside the app and a menu entry,
# installed, the installed app through the smoke run, purged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "desktop-package: run it as root" >&2; exit 1; }
shot=${1:-}
fail() { echo "desktop-package: FAIL: $*" >&2; exit 1; }
package=rap-appliance-desktop
trap 'dpkg --purge "$package" >/dev/null 2>&1 || true' EXIT

deb=$(bash src-tauri/bundle.sh --debug deb | tail -n 1)
[ -f "$deb" ] || fail "bundle.sh printed no .deb"
echo "desktop-package: $deb"
[ "$(dpkg-deb -f "$deb" Package)" = "$package" ] || fail "the package is not named $package"
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/rap-desktop ./usr/bin/rap-viewer "./usr/share/doc/$package/copyright"; do
    grep -qE " (\./)?${path#./}\$" <<<"$contents" || fail "$path is not in the package"
done
grep -qE ' (\./)?usr/share/applications/.*\.desktop$' <<<"$contents" || fail "no menu entry"
if command -v lintian >/dev/null; then
    # Shown, not enforced: CI bundles its unstripped dev build, which
    # lintian calls an error (the rest of the package passes it).
    lintian --tag-display-limit 0 "$deb" || true
fi

dpkg --purge "$package" >/dev/null 2>&1 || true
dpkg -i "$deb"
exec_line=$(grep -h '^Exec=' /usr/share/applications/*.desktop | grep rap-desktop || true)
[ -n "$exec_line" ] || fail "the menu entry does not start rap-desktop"
bash src-tauri/smoke.sh /usr/bin/rap-desktop "$shot"
dpkg --purge "$package"
for path in /usr/bin/rap-desktop /usr/bin/rap-viewer "/usr/share/doc/$package"; do
    [ ! -e "$path" ] || fail "$path is left after purge"
done
echo "desktop-package: ok"
