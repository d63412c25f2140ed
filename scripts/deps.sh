#!/bin/sh
# Install the Debian packages csgi needs, when they are missing.
# Usage: scripts/deps.sh [--test]   (--test adds what the test suite needs)
set -eu

pkgs="gcc pkg-config meson ninja-build libmicrohttpd-dev libcjson-dev libsqlite3-dev"
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs check libcurl4-openssl-dev clang libclang-rt-14-dev clang-format binutils python3 g++ curl valgrind wrk"
fi

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "csgi: installing missing packages:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the package lists first: it is much faster when they are current.
if ! $SUDO apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y --no-install-recommends $missing
fi
