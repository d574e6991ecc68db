#!/bin/sh
# Build build/drover_VERSION_ARCH.deb from a release build with dpkg-deb:
# binaries, systemd units, example configs and pipeline, README.
# Usage: packaging/build-deb.sh [BUILD_DIR]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/${1:-build}
version=$(sed -n 's/^project(drover VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
arch=$(dpkg --print-architecture)
stage=$build/deb-stage
rm -rf "$stage"
DESTDIR=$stage cmake --install "$build" --prefix /usr >/dev/null
install -D -m 644 "$root/systemd/droverd.service" "$stage/lib/systemd/system/droverd.service"
install -D -m 644 "$root/systemd/drover-agent.service" "$stage/lib/systemd/system/drover-agent.service"
doc=$stage/usr/share/doc/drover
install -D -m 644 "$root/README.md" "$doc/README.md"
install -D -m 644 "$root/systemd/droverd.yaml.example" "$doc/examples/droverd.yaml.example"
install -D -m 644 "$root/systemd/agent.yaml.example" "$doc/examples/agent.yaml.example"
mkdir -p "$stage/usr/share/drover/examples" "$stage/etc/drover"
cp -r "$root/examples/ml" "$stage/usr/share/drover/examples/"
mkdir -p "$stage/DEBIAN"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" "$root/packaging/debian/control.in" \
    >"$stage/DEBIAN/control"
install -m 755 "$root/packaging/debian/postinst" "$stage/DEBIAN/postinst"
out=$build/drover_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
