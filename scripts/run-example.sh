#!/bin/sh
# Build csgi and run csgi-server on the bundled example plugins at 127.0.0.1:8000:
# hello and stream (raw CSGI), the WebSocket chat, server-sent events, and the World app on
# raw CSGI and on both frameworks.
# Usage: scripts/run-example.sh [extra csgi-server options]
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build-run ] || meson setup build-run --buildtype=release -Db_lto=true -Dtests=disabled >/dev/null
ninja -C build-run >/dev/null

# One directory with the plugins to serve (symlinks to the build's .so files).
dir=build-run/example-plugins
mkdir -p "$dir"
for so in build-run/plugins/hello.so build-run/plugins/stream.so build-run/plugins/chat.so \
    build-run/plugins/sse.so \
    build-run/plugins/apps/world/world_raw.so build-run/plugins/apps/world/world_resource.so \
    build-run/plugins/apps/world/world_route.so; do
    [ -f "$so" ] && ln -sf "$(pwd)/$so" "$dir/$(basename "$so")"
done
db="$(pwd)/build-run/world.db"

cat <<'MSG'
csgi-server on http://127.0.0.1:8000/ (Ctrl-C stops it). Try:
  curl -v http://127.0.0.1:8000/hello
  curl http://127.0.0.1:8000/hello/you
  curl http://127.0.0.1:8000/stream?n=3
  a browser on http://127.0.0.1:8000/chat/    (a WebSocket room; open it twice)
  curl -N http://127.0.0.1:8000/sse/          (server-sent events; then, elsewhere:)
  curl -d 'hi there' http://127.0.0.1:8000/sse/publish
      (sse relays a publish to every worker; the chat keeps one room per worker:
       run this script with --workers 1 for one room for every client)
  curl http://127.0.0.1:8000/raw/json            (and /resource/json, /route/json)
  curl http://127.0.0.1:8000/route/fortunes
  curl http://127.0.0.1:8000/resource/queries?queries=3
  curl -d '{"name":"pen","price":1.5}' -H 'Content-Type: application/json' \
       http://127.0.0.1:8000/raw/items
MSG
exec build-run/server/csgi-server --bind 127.0.0.1:8000 --plugins "$dir" \
    --set "world_raw.db=$db" --set "world_resource.db=$db" --set "world_route.db=$db" \
    --set "sse.relay_dir=$(pwd)/build-run/sse-relay" \
    --access-log - "$@"
