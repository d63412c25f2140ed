#!/bin/sh
# Build csgi and run csgi-server on the bundled example plugins at 127.0.0.1:8000.
# Usage: scripts/run-example.sh [extra csgi-server options]
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build-run ] || meson setup build-run --buildtype=release -Dtests=disabled >/dev/null
ninja -C build-run >/dev/null

cat <<'MSG'
csgi-server on http://127.0.0.1:8000/ (Ctrl-C stops it). Try:
  curl -v http://127.0.0.1:8000/hello
  curl http://127.0.0.1:8000/hello/you
  curl http://127.0.0.1:8000/stream
  curl http://127.0.0.1:8000/stream?n=3
  curl http://127.0.0.1:8000/stream/write
MSG
exec build-run/server/csgi-server --bind 127.0.0.1:8000 --plugins build-run/plugins \
    --access-log - "$@"
