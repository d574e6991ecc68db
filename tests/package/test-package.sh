#!/bin/sh
# The package test (`make package-test`): builds the Debian packages
# (packaging/build-deb.sh) — the changelog's version, and the same packages
# repacked one version up for the upgrade — checks lintian reports no error or warning, then, in a
# fresh minimal Debian 12 root (debootstrap --variant=minbase from the
# mirror this machine's apt uses), once as is and once with docs excluded
# (path-exclude /usr/share/doc/*, as in debian-slim images), runs
# tests/package/in-root.sh, which installs them with apt, starts droverd
# and an agent from the installed units' own command lines, runs the
# example pipeline as a member of group drover, upgrades, removes, purges
# and checks nothing is left.
#
# Each root runs in its own mount and PID namespace (unshare): the mounts
# (/proc, /dev, the apt archive cache) and every process started inside
# vanish when it ends, pass or fail; the root directory is deleted after.
# The debootstrapped root is cached as CACHE/bookworm.tar (made again when
# a month old) and downloaded .debs in CACHE/archives, so a rerun needs the
# network only for apt-get update. CACHE is $DROVER_PKGTEST_CACHE, by
# default /var/cache/drover-pkgtest: outside the checkout, so that CI's
# clean clones share it (debootstrap took about 50 s of each run). Needs root, debootstrap, lintian,
# debhelper (scripts/install-deps.sh).
# Usage: tests/package/test-package.sh [ROUNDS]   (default: "docs nodocs")
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$root/build-pkgtest
cache=${DROVER_PKGTEST_CACHE:-/var/cache/drover-pkgtest}
rounds=${1:-docs nodocs}
start=$(date +%s)
[ "$(id -u)" -eq 0 ] || {
    echo "package-test: needs root (debootstrap, chroot)" >&2
    exit 2
}
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\) bookworm main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

rootdir=""
cleanup() {
    if [ -n "$rootdir" ] && [ -d "$rootdir" ]; then
        # Mounts live in the namespace that died with the round; check anyway.
        if grep -q " $rootdir/" /proc/self/mounts; then
            umount -R "$rootdir/proc" "$rootdir/dev" "$rootdir/var/cache/apt/archives" 2>/dev/null || true
        fi
        grep -q " $rootdir/" /proc/self/mounts || rm -rf "$rootdir"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== packages: the changelog's version, and the same repacked one version up"
"$root/packaging/build-deb.sh" "$work/deb-1" >/dev/null
v1=$(dpkg-deb -f "$work"/deb-1/droverd_*.deb Version)
v2=$v1+pkgtest1
# The upgrade tests the maintainer scripts, units and conffiles from one
# version to the next, not a second compile (which cost CI two minutes):
# each package is unpacked and packed again as v2, its exact-version
# dependencies on its siblings moved along.
rm -rf "$work/deb-2" && mkdir -p "$work/deb-2"
for p in drover droverd drover-agent drover-web; do
    tree=$work/deb-2/$p.tree
    dpkg-deb -R "$work"/deb-1/${p}_"$v1"_*.deb "$tree"
    sed -i -e "s/^Version: $v1\$/Version: $v2/" -e "/^Depends:/s/(= $v1)/(= $v2)/g" \
        "$tree/DEBIAN/control"
    dpkg-deb -b "$tree" "$work/deb-2/${p}_${v2}_$(dpkg-deb -f "$work"/deb-1/${p}_"$v1"_*.deb Architecture).deb" >/dev/null
    rm -rf "$tree"
done
echo "   $v1 and $v2"

echo "== lintian"
lint=$(lintian --display-level '>=warning' "$work"/deb-1/*.changes 2>&1 |
    grep -v 'running with root privileges' || true)
if [ -n "$lint" ]; then
    echo "$lint" >&2
    echo "package-test: FAIL: lintian reports errors or warnings" >&2
    exit 1
fi
echo "   no errors, no warnings"

# one package test at a time uses the cache (apt's lock on the archives;
# the root made once)
mkdir -p "$cache"
exec 9>"$cache/lock"
if ! flock -n 9; then
    echo "   waiting for another package test using $cache"
    flock 9
fi
if [ -n "$(find "$cache/bookworm.tar" -mtime +30 2>/dev/null)" ]; then
    rm -f "$cache/bookworm.tar" # a month of point releases: start from the mirror's
fi
if [ ! -s "$cache/bookworm.tar" ]; then
    echo "== debootstrap --variant=minbase bookworm ($mirror), cached in $cache"
    mkdir -p "$cache"
    rm -rf "$cache/root"
    debootstrap --variant=minbase bookworm "$cache/root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
        tail -n 20 "$cache/debootstrap.log" >&2
        exit 1
    }
    rm -f "$cache/root/var/cache/apt/archives/"*.deb
    tar -C "$cache/root" -cf "$cache/bookworm.tar.new" .
    mv "$cache/bookworm.tar.new" "$cache/bookworm.tar"
    rm -rf "$cache/root"
fi
mkdir -p "$cache/archives/partial"

for round in $rounds; do
    echo "== round '$round': a fresh root"
    rootdir=$work/root-$round
    rm -rf "$rootdir"
    mkdir -p "$rootdir"
    tar -C "$rootdir" -xf "$cache/bookworm.tar"
    cp /etc/resolv.conf "$rootdir/etc/resolv.conf"
    if [ "$round" = nodocs ]; then
        echo 'path-exclude /usr/share/doc/*' >"$rootdir/etc/dpkg/dpkg.cfg.d/excludes"
    fi
    mkdir -p "$rootdir/tmp/debs-1" "$rootdir/tmp/debs-2"
    for p in drover droverd drover-agent drover-web; do
        cp "$work"/deb-1/${p}_*.deb "$rootdir/tmp/debs-1/"
        cp "$work"/deb-2/${p}_*.deb "$rootdir/tmp/debs-2/"
    done
    cp "$root/tests/package/in-root.sh" "$rootdir/tmp/in-root.sh"
    unshare --mount --pid --fork --propagation private sh -c '
        set -e
        r=$1
        mount -t proc proc "$r/proc"
        mount --bind /dev "$r/dev"
        mount --bind "$2" "$r/var/cache/apt/archives"
        exec chroot "$r" /bin/sh /tmp/in-root.sh "$3" "$4" "$5" "$6"
    ' sh "$rootdir" "$cache/archives" "$round" "$v1" "$v2" "$mirror"
    cleanup
    rootdir=""
done
echo "package-test: OK ($(($(date +%s) - start)) s)"
