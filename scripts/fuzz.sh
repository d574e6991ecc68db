#!/bin/sh
# Run the libFuzzer targets built from fuzz/ (fuzz/README.md), FUZZ_JOBS at
# a time (default: the number of cores), each for SECONDS.
#
#   scripts/fuzz.sh smoke BUILD_DIR SECONDS [TARGET...]   (make test)
#   scripts/fuzz.sh run   BUILD_DIR SECONDS [TARGET...]   (make fuzz)
#
# TARGET is agents, spec, expr, progress or image (default: all five). Every run
# starts from the checked-in seeds in tests/fuzz/TARGET (crash reproducers
# included, so they are replayed first). smoke uses a fresh scratch corpus
# each time; run keeps what it finds in BUILD_DIR/corpus/TARGET across
# runs. A crash, leak, timeout or sanitizer report fails the script; the
# input is saved as BUILD_DIR/artifacts/TARGET-crash-... and the end of the
# target's log (BUILD_DIR/logs/TARGET.log) is printed.
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" = one ]; then
    # one MODE BUILD SECONDS TARGET: a single target (called through xargs)
    mode=$2 build=$3 secs=$4 t=$5
    case $t in
    agents) max_len=16384 ;;
    spec) max_len=16384 ;;
    expr) max_len=6000 ;;
    progress) max_len=12000 ;;
    image) max_len=65536 ;;
    cron) max_len=400 ;;
    token) max_len=200 ;;
    pools) max_len=4096 ;;
    web) max_len=16384 ;;
    *) echo "fuzz: unknown target $t" >&2; exit 2 ;;
    esac
    if [ "$mode" = smoke ]; then
        corpus=$build/smoke-corpus/$t
        rm -rf "$corpus"
    else
        corpus=$build/corpus/$t
    fi
    mkdir -p "$corpus" "$build/artifacts" "$build/logs"
    set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=$max_len \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-"
    [ -f "fuzz/$t.dict" ] && set -- "$@" -dict="fuzz/$t.dict"
    log=$build/logs/$t.log
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$build/fuzz_$t" "$@" "$corpus" "tests/fuzz/$t" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz %-8s ok: %s s, %s executions (%s/s), coverage %s, peak RSS %s MB\n' \
            "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${rss:-?}"
        exit 0
    fi
    printf 'fuzz %-8s FAILED (exit %s); end of %s:\n' "$t" "$rc" "$log" >&2
    tail -n 60 "$log" >&2
    echo "fuzz: to keep the input as a regression seed: cp $build/artifacts/$t-<crash file>" \
        "tests/fuzz/$t/ (fuzz/README.md)" >&2
    exit 1
fi

mode=${1:?usage: fuzz.sh smoke|run BUILD_DIR SECONDS [TARGET...]}
build=${2:?build dir}
secs=${3:?seconds}
shift 3
[ $# -gt 0 ] || set -- agents spec expr progress image
case $mode in smoke | run) ;; *) echo "fuzz: mode is smoke or run" >&2; exit 2 ;; esac
jobs=${FUZZ_JOBS:-$(nproc)}
echo "fuzz: $mode, $secs s per target, $jobs at a time: $*"
for t in "$@"; do
    [ -x "$build/fuzz_$t" ] || { echo "fuzz: $build/fuzz_$t is not built (make build-fuzz)" >&2; exit 2; }
done
# xargs exits non-zero (123) when any target failed.
printf '%s\n' "$@" | xargs -P "$jobs" -I{} "$0" one "$mode" "$build" "$secs" {} || {
    echo "fuzz: FAILED (see above)" >&2
    exit 1
}
