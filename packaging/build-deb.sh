#!/usr/bin/env bash
# bash packaging/build-deb.sh: builds the appliance's Debian package from
# this checkout and prints the .deb's path as its last line.
#
# dpkg-deb on a staged tree rather than cargo-deb or dpkg-buildpackage:
# nothing to install but dpkg (no cargo-deb to compile, no debhelper), the
# maintainer scripts are plain files in packaging/debian/, and one script
# shows every file the package holds.
#
# Settings (environment):
#   CARGO_TARGET_DIR                    build output (default ./target); the
#                                       staged tree and the .deb go in its deb/
#   RAP_DEB_PROFILE                     cargo profile (release; CI packages its
#                                       dev build to build once)
#   RAP_DEB_VERSION                     package version (the workspace's)
#   RAP_PRODUCT_ROOT_PUBLIC_KEY_FILE    the vendor's Product Root public key;
#                                       without one a development Product Root
#                                       is made beside the .deb (its private key
#                                       signs activations, and never ships)
#   RAP_DEB_MAINTAINER                  the Maintainer field
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
profile=${RAP_DEB_PROFILE:-release}
version=${RAP_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)}
maintainer=${RAP_DEB_MAINTAINER:-RAP Appliance developers <maintainers@users.noreply.r-seed-ca00b171.example>}
arch=$(dpkg --print-architecture)
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "build-deb: $version is not a Debian version" >&2; exit 2; }

echo "build-deb: building rap-appliance ($profile)" >&2
cargo build --locked -p rap-appliance --bin rap-appliance --profile "$profile" >&2
case $profile in dev) built=$target/debug ;; *) built=$target/$profile ;; esac
binary=$built/rap-appliance

out=$target/deb
mkdir -p "$out"
public_key=${RAP_PRODUCT_ROOT_PUBLIC_KEY_FILE:-}
if [ -z "$public_key" ]; then
    development=$out/development-product-root
    if [ ! -s "$development/product-root.pub" ]; then
        "$binary" product-root generate --out "$development" >/dev/null
    fi
    public_key=$development/product-root.pub
    echo "build-deb: no RAP_PRODUCT_ROOT_PUBLIC_KEY_FILE: this package trusts the development Product Root in $development" >&2
fi

name=rap-appliance_${version}_${arch}
stage=$out/$name
rm -rf "$stage"
install -d -m 0755 "$stage/DEBIAN"
install -D -m 0755 "$binary" "$stage/usr/bin/rap-appliance"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/rap-appliance"
install -D -m 0755 packaging/rap-appliance-admin "$stage/usr/sbin/rap-appliance-admin"
install -D -m 0644 packaging/rap-appliance.service "$stage/lib/systemd/system/rap-appliance.service"
install -D -m 0644 packaging/rap-appliance.env "$stage/etc/rap-appliance/rap-appliance.env"
install -D -m 0644 packaging/package.env "$stage/usr/share/rap-appliance/package.env"
install -D -m 0644 "$public_key" "$stage/usr/share/rap-appliance/product-root.pub"
for page in packaging/man/*.8; do
    install -d -m 0755 "$stage/usr/share/man/man8"
    gzip -9n <"$page" >"$stage/usr/share/man/man8/$(basename "$page").gz"
    chmod 0644 "$stage/usr/share/man/man8/$(basename "$page").gz"
done
doc=$stage/usr/share/doc/rap-appliance
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
install -D -m 0644 docs/OPERATIONS.md "$doc/OPERATIONS.md"
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" -e "s/@DATE@/$date/" packaging/debian/changelog \
    | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# The shared libraries the binary links, as dpkg-shlibdeps words them
# (it reads a debian/control, so it runs in a scratch directory).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: rap-appliance\n\nPackage: rap-appliance\nArchitecture: any\n' >"$scratch/debian/control"
shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "$stage/usr/bin/rap-appliance" | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    -e "s/@MAINTAINER@/$maintainer/" packaging/debian/control >"$stage/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/$name.deb" >&2
echo "$out/$name.deb"
