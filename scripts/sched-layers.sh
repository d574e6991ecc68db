#!/bin/sh
# sched-layers — who calls whom among droverd's files, from the objects
# (nm), and a check of the layering docs/architecture.md describes: the
# model (dag, flow, placer) and the layers below it never call up into the
# loop (scheduler, commit) or the handlers (agents, api, blobs, auth).
# Usage: scripts/sched-layers.sh [BUILD_DIR]   (default: build)
set -eu
objs="${1:-build}/CMakeFiles/scheduler_core.dir/scheduler"
[ -d "$objs" ] || { echo "sched-layers: no objects in $objs (build first)" >&2; exit 2; }
defs=$(mktemp)
trap 'rm -f "$defs"' EXIT
for o in "$objs"/*.c.o; do
    f=$(basename "$o" .c.o)
    nm --defined-only "$o" | awk -v f="$f" '$2 ~ /^[TDBR]$/ {print $3, f}'
done | sort >"$defs"
bad=0
for o in "$objs"/*.c.o; do
    f=$(basename "$o" .c.o)
    to=$(nm -u "$o" | awk '{print $2}' | sort | join - "$defs" | awk -v f="$f" '$2 != f {print $2}' |
        sort -u | tr '\n' ' ')
    [ -n "$to" ] && printf '%-9s -> %s\n' "$f" "$to"
    case "$f" in
    dag | flow | gates | placer | journal | outbound | fleet | blobstore | replies | store)
        for up in scheduler commit agents api blobs auth; do
            case " $to" in *" $up "*)
                echo "sched-layers: $f calls up into $up" >&2
                bad=1
                ;;
            esac
        done
        ;;
    esac
done
exit $bad
