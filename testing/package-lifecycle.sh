#!/usr/bin/env bash
# bash testing/package-lifecycle.sh: the Debian package the way an office
# meets it, on this machine (as root; it installs and purges the package):
# lintian, install, the service answering over HTTPS with the installed CA,
# a first owner by activation, a backup while serving, an upgrade to a newer
# build (data, keys and the edited conffile kept), remove (data kept), purge
# (nothing left).
#
# Without systemd as init (a CI container) the service runs the way its
# unit says, by hand: the unit's ExecStart as its User, with its
# EnvironmentFiles and its one capability; and where prerm and postinst
# would stop and start it, this script does.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "package-lifecycle: run it as root" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$PWD/target}
work=$(mktemp -d)
log=$work/service.log
pid=
fail() { echo "package-lifecycle: FAIL: $*" >&2; [ -f "$log" ] && tail -n 30 "$log" >&2; exit 1; }
stop_service() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    fi
}
cleanup() {
    stop_service
    dpkg --purge rap-appliance >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
systemd_init() { [ -d /run/systemd/system ]; }

unit=/lib/systemd/system/rap-appliance.service
start_service() {
    if systemd_init; then
        systemctl start rap-appliance.service
        return
    fi
    local user exec_start files settings=()
    user=$(sed -n 's/^User=//p' "$unit")
    exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
    mapfile -t files < <(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
    for file in "${files[@]}"; do
        [ -r "$file" ] && mapfile -t -O "${#settings[@]}" settings < <(grep -E '^[A-Z][A-Z0-9_]*=' "$file")
    done
    # shellcheck disable=SC2086
    (cd / && exec setsid setpriv --reuid="$user" --regid="$user" --init-groups \
        --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service --bounding-set=-all,+net_bind_service \
        env -i "${settings[@]}" $exec_start) >>"$log" 2>&1 &
    pid=$!
}
stop() { if systemd_init; then systemctl stop rap-appliance.service; else stop_service; fi; }

ca=/var/lib/rap-appliance/tls/ca.pem
https() { curl --silent --show-error --fail-with-body --cacert "$ca" "$@"; }
wait_ready() {
    for _ in $(seq 100); do
        if https --output /dev/null https://localhost/readyz 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    fail "/readyz did not answer over HTTPS within 20 s"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
sign_in() {
    https -H 'content-type: application/json' \
        -d '{"email":"boss@office.lan","password":"a long owner password"}' https://localhost/api/v1/auth/login \
        | json_field access_token
}
gone() {
    for path in /usr/bin/rap-appliance /usr/sbin/rap-appliance-admin "$unit" /usr/share/rap-appliance \
        /usr/share/doc/rap-appliance /etc/rap-appliance /var/lib/rap-appliance /var/backups/rap-appliance; do
        [ ! -e "$path" ] || fail "$path is left"
    done
    ! getent passwd rap-appliance >/dev/null || fail "the rap-appliance user is left"
    ! getent group rap-appliance >/dev/null || fail "the rap-appliance group is left"
}

echo "== A clean machine"
dpkg --purge rap-appliance >/dev/null 2>&1 || true
gone

echo "== Build: this version and a newer one"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
first=$(RAP_DEB_VERSION=$version bash packaging/build-deb.sh | tail -n 1)
second=$(RAP_DEB_VERSION=$version+next bash packaging/build-deb.sh | tail -n 1)
product_root=$target/deb/development-product-root/product-root.key
dpkg-deb --info "$first" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/  \1:/p'

! dpkg-deb -c "$first" | grep -q 'product-root\.key' || fail "the Product Root's private key is in the package"

echo "== lintian"
lintian --fail-on error --tag-display-limit 0 "$first" || fail "lintian reports errors"

echo "== Install"
dpkg -i "$first" | tee "$work/install.txt"
grep -q "ask your vendor for an activation for installation" "$work/install.txt" || fail "postinst says nothing of the first owner"
getent passwd rap-appliance | grep -q ':/usr/sbin/nologin$' || fail "no system user without a shell"
[ "$(stat -c '%a %U' /var/lib/rap-appliance)" = "700 rap-appliance" ] || fail "/var/lib/rap-appliance is not 0700 rap-appliance"
for key in /etc/rap-appliance/keys/secret-encryption.key /etc/rap-appliance/keys/installation-signing.key; do
    [ "$(stat -c '%a %U %s' "$key")" = "600 rap-appliance 32" ] || fail "$key is not a private 32-byte key"
done
fingerprint=$(openssl x509 -in "$ca" -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)
grep -q "$fingerprint" "$work/install.txt" || fail "postinst did not print the CA's fingerprint"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" || fail "systemd-analyze verify finds fault with the unit"
    systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -n 1 || true
fi

echo "== The service over HTTPS, with the installed CA"
start_service
wait_ready
redirect=$(curl --silent --output /dev/null --write-out '%{http_code} %{redirect_url}' http://localhost/sessions)
[ "${redirect%% *}" = 308 ] && [[ ${redirect#* } == https://localhost/sessions ]] || fail "http:// answered $redirect"
installation=$(https https://localhost/api/v1/installation)
[ "$(json_field authority_mode <<<"$installation")" = strict ] || fail "not in strict mode: $installation"
installation_id=$(json_field installation_id <<<"$installation")

echo "== First owner, by the activation the vendor signs"
rap-appliance product-root sign --key "$product_root" --installation-id "$installation_id" \
    --owner-email boss@office.lan >"$work/activation.json"
python3 - "$work/activation.json" >"$work/bootstrap.json" <<'PY'
import json, sys
activation = json.load(open(sys.argv[1]))
print(json.dumps({"email": "boss@office.lan", "password": "a long owner password",
                  "display_name": "Office owner", "activation": activation}))
PY
https -H 'content-type: application/json' --data @"$work/bootstrap.json" \
    https://localhost/api/v1/installation/bootstrap-owner >/dev/null || fail "the activation was refused"
token=$(sign_in)
organization=$(https -H "authorization: Bearer $token" https://localhost/api/v1/auth/me \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["memberships"][0]["organization_id"])')
https -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"organization_id\":\"$organization\",\"name\":\"Front desk PC\",\"protocol\":\"rdp\",\"host\":\"frontdesk.office.lan\"}" \
    https://localhost/api/v1/resources >/dev/null || fail "creating a resource"

echo "== A backup while serving"
rap-appliance-admin backup --out /var/backups/rap-appliance/before-upgrade.sqlite3
[ "$(stat -c '%a %U' /var/backups/rap-appliance/before-upgrade.sqlite3)" = "600 rap-appliance" ] || fail "the backup is not private"

echo "== Upgrade to a newer build"
sed -i 's/^# APP_TLS_NAMES=.*/APP_TLS_NAMES=rap.office.lan/' /etc/rap-appliance/rap-appliance.env
keys_before=$(cat /etc/rap-appliance/keys/* /var/lib/rap-appliance/tls/ca.key | sha256sum)
stop # prerm's stop
dpkg -i "$second" | tee "$work/upgrade.txt"
grep -q "is upgraded" "$work/upgrade.txt" || fail "postinst did not see the upgrade"
[ "$(dpkg-query -W -f '${Version}' rap-appliance)" = "$version+next" ] || fail "the newer version is not installed"
grep -q '^APP_TLS_NAMES=rap.office.lan$' /etc/rap-appliance/rap-appliance.env || fail "the edited conffile was replaced"
[ "$(cat /etc/rap-appliance/keys/* /var/lib/rap-appliance/tls/ca.key | sha256sum)" = "$keys_before" ] || fail "keys changed"
start_service # postinst's start
wait_ready
token=$(sign_in)
https -H "authorization: Bearer $token" "https://localhost/api/v1/resources?organization_id=$organization" \
    | grep -q '"Front desk PC"' || fail "the resource did not survive the upgrade"

echo "== Remove keeps the data; purge leaves nothing"
stop
dpkg --remove rap-appliance
[ ! -e /usr/bin/rap-appliance ] || fail "remove left the binary"
[ -s /var/lib/rap-appliance/rap.sqlite3 ] && [ -d /etc/rap-appliance/keys ] && getent passwd rap-appliance >/dev/null \
    || fail "remove took data, keys or the user"
dpkg --purge rap-appliance
gone
echo "package-lifecycle: ok"
