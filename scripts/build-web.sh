#!/bin/sh
# Build the web console (web/) into OUT: npm ci into web/node_modules when
# the lockfile changed since the last install (from the npm registry, or
# npm's cache when offline), then esbuild (web/build.mjs). CMake's
# drover-web-assets target runs this at `make` time; the package installs
# OUT to /usr/share/drover/web, which drover-web serves at /.
# Usage: scripts/build-web.sh OUT_DIR
set -eu
out=${1:?usage: build-web.sh OUT_DIR}
web=$(cd "$(dirname "$0")/../web" && pwd)
stamp="$web/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$web/package-lock.json" -nt "$stamp" ]; then
    echo "build-web: npm ci (web/node_modules)" >&2
    (cd "$web" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
fi
node "$web/build.mjs" "$out"
