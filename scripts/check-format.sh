#!/bin/sh
# Fail if any tracked C file differs from what clang-format (.clang-format) makes of it.
set -eu
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files '*.c' '*.h'); do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "check-format: $f is not formatted (run: make format)" >&2
        bad=1
    fi
done
exit $bad
