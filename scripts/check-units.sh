#!/bin/sh
# Check the systemd units: `systemd-analyze verify` on each (against the
# binaries of BUILD_DIR, substituted for /usr/bin/... in temporary copies,
# so no install is needed) and `systemd-analyze security --offline=true`
# on each, printing the exposure scores. Fails if a unit does not verify or
# droverd.service or drover-web.service scores above MAX_EXPOSURE (default
# 2.0, "OK").
# Needs systemd >= 252 (Debian 12) for --offline; nothing is started.
# Usage: scripts/check-units.sh [BUILD_DIR]    (default: build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-build} in
/*) build=$1 ;;
*) build=$root/${1:-build} ;;
esac
max=${MAX_EXPOSURE:-2.0}

command -v systemd-analyze >/dev/null || {
    echo "check-units: systemd-analyze not found (apt-get install systemd)" >&2
    exit 2
}
for b in droverd drover-agent drover-web; do
    [ -x "$build/$b" ] || {
        echo "check-units: $build/$b not built (cmake --build $build --target $b)" >&2
        exit 2
    }
done
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    echo "check-units: this systemd ($(systemd-analyze --version | head -1)) has no" \
        "'security --offline'; need systemd >= 252" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
for u in droverd drover-agent drover-web; do
    sed -e "s#/usr/bin/$u #$build/$u #g" -e "s#/usr/bin/$u\$#$build/$u#g" \
        -e "s#/usr/libexec/drover/drover-identity#$root/systemd/drover-identity#g" \
        "$root/systemd/$u.service" >"$tmp/$u.service"
done

status=0
for u in droverd drover-agent drover-web; do
    # verify also loads the units the file names (network-online.target...);
    # its output is empty when all is well.
    out=$(cd "$tmp" && systemd-analyze verify "$u.service" 2>&1) || status=1
    if [ -n "$out" ]; then
        echo "$out" | sed "s#^#$u.service: #"
        status=1
    else
        echo "$u.service: systemd-analyze verify: OK"
    fi
done

score() { # unit -> "1.2 OK"
    (cd "$tmp" && systemd-analyze security --offline=true --no-pager "$1.service" 2>/dev/null) |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p'
}
d=$(score droverd)
a=$(score drover-agent)
w=$(score drover-web)
echo "droverd.service: exposure $d (systemd-analyze security; 0 = locked down, 10 = exposed)"
echo "drover-agent.service: exposure $a (runs arbitrary steps as root; see the unit's comments)"
echo "drover-web.service: exposure $w"
for u in droverd drover-web; do
    s=$d
    [ "$u" = droverd ] || s=$w
    if [ -z "$s" ]; then
        echo "check-units: could not read $u's exposure score" >&2
        status=1
    elif ! awk -v s="${s% *}" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
        echo "check-units: $u.service exposure ${s% *} is above $max" >&2
        (cd "$tmp" && systemd-analyze security --offline=true --no-pager "$u.service") | grep '✗' >&2
        status=1
    fi
done
exit $status
