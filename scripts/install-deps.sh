#!/bin/sh
# Install the Debian packages drover needs to build, test and run its demo,
# and to build and test its Debian packages (debhelper ... debootstrap),
# and the web console's: node and npm (web/ is built with esbuild from npm
# at `make` time) and the browser tests' chromium, chromedriver and
# python3-selenium (for Debian's /usr/bin/python3).
# Does nothing (and needs no network) when every package is already present.
# A node and npm already on PATH (nodesource's nodejs, which holds npm and
# conflicts with Debian's npm; nvm's) are used as they are: Debian's
# nodejs and npm are installed only when either command is missing.
set -eu
PKGS="build-essential cmake pkg-config clang-format python3 clang libclang-rt-14-dev
libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev
libev-dev libssl-dev libcriterion-dev libsodium-dev libyaml-dev
libcurl4-openssl-dev libsystemd-dev libarchive-dev libjansson-dev libmicrohttpd-dev
prometheus
runc podman busybox-static iptables
debhelper help2man lintian debootstrap
chromium chromium-driver python3-selenium"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
