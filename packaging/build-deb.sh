#!/bin/sh
# Build the Debian packages (debian/: debhelper) from this checkout:
# drover (CLI, examples, drover-identity), droverd, drover-agent and drover-web, into
# OUT_DIR (default build/deb), and print their paths. The tracked and
# untracked-but-not-ignored files are copied to OUT_DIR/src first, so the
# checkout and its build directories are left alone; web/node_modules too
# when present (the console's npm packages: the build then needs no network).
# DROVER_DEB_VERSION=V builds version V instead of debian/changelog's (a
# changelog entry is added to the copy; the package test's upgrade).
# Needs: dpkg-dev, debhelper, help2man, node and npm and the build dependencies
# (scripts/install-deps.sh installs them).
# Usage: packaging/build-deb.sh [OUT_DIR]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-build/deb} in
/*) out=${1} ;;
*) out=$root/${1:-build/deb} ;;
esac
src=$out/src/drover
rm -rf "$out/src"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out/build.log"
mkdir -p "$src"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -C "$src" -xf -
# The web console's npm packages (web/node_modules, ignored by git) when
# this checkout has them: the build's npm ci is then skipped
# (scripts/build-web.sh) and needs no network.
if [ -f "$root/web/node_modules/.package-lock.json" ]; then
    cp -a "$root/web/node_modules" "$src/web/"
fi
if [ -n "${DROVER_DEB_VERSION:-}" ]; then
    cl=$src/debian/changelog
    {
        printf 'drover (%s) bookworm; urgency=medium\n\n' "$DROVER_DEB_VERSION"
        printf '  * Rebuild as %s.\n\n' "$DROVER_DEB_VERSION"
        printf ' -- drover developers <drover@example.org>  %s\n\n' "$(date -R)"
        cat "$cl"
    } >"$cl.new"
    mv "$cl.new" "$cl"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b -j"${JOBS:-2}" >"$out/build.log" 2>&1) || {
    tail -n 40 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed; full log: $out/build.log" >&2
    exit 1
}
mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/
for f in "$out"/*.deb; do
    case $f in
    *-dbgsym_*) ;;
    *) echo "$f" ;;
    esac
done
