#!/bin/sh
# Swap the World app's framework in a running server, rebuilding only the app.
#
# 1. Install the project into a temporary root (meson install --destdir).
# 2. Start csgi-server from the build dir with /world served by world_resource
#    (framework 1) from the build tree, the installed libraries on
#    LD_LIBRARY_PATH, and a JSON config file.
# 3. Build world_route (framework 2) out of tree, from copies of its source,
#    with cc and the installed headers and pkg-config files only.
# 4. Drop it into the plugin directory under the same file name, point the
#    /world mount at it, SIGHUP the master, and check that the same URLs (and
#    the same database) now answer from the new build, identically, while the
#    master and the server binary stay the same.
#
# Usage: swap_test.sh BUILD_DIR SERVER WORLD_SOURCE_DIR WORLD_RESOURCE_SO
set -eu
build=$1
server=$2
src=$3
resource_so=$4
tmp=$(mktemp -d)
spid=""
cleanup() {
    if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "swap test: $*"
    [ -f "$tmp/err.log" ] && tail -n 30 "$tmp/err.log"
    exit 1
}

# --- 1. install ---------------------------------------------------------
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(find "$tmp/root" -name csgi-route.pc | head -1)
[ -n "$pc" ] || fail "csgi-route.pc was not installed"
[ -n "$(find "$tmp/root" -name csgi-resource.pc | head -1)" ] || fail "csgi-resource.pc missing"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
for h in route.h resource.h csgi.h plugin.h; do
    [ -n "$(find "$tmp/root" -path "*/include/csgi/$h" | head -1)" ] || fail "header $h missing"
done
for l in libcsgi-route.so.1 libcsgi-resource.so.1; do
    [ -e "$libdir/$l" ] || fail "$l is not in $libdir"
    objdump -p "$libdir/$l" | grep -q "SONAME *$l" || fail "$l has the wrong SONAME"
done
[ "$(pkg-config --modversion csgi-route)" = "1.0.0" ] || fail "csgi-route version"
# pkgconf applies PKG_CONFIG_SYSROOT_DIR to variables too.
plugindir=$(pkg-config --variable=plugindir csgi)
[ -f "$plugindir/world_route.so" ] || fail "world_route.so not installed in $plugindir"

# --- 2. a running server with framework 1 at /world ----------------------
mkdir -p "$tmp/plugins" "$tmp/app"
cp "$resource_so" "$tmp/plugins/world.so.new"
mv "$tmp/plugins/world.so.new" "$tmp/plugins/world.so"
write_config() {
    cat >"$tmp/csgi.json.new" <<EOF
{
  "mount": {"/world": "$1"},
  "set": {"world_resource": {"db": "$tmp/world.db"}, "world_route": {"db": "$tmp/world.db"}}
}
EOF
    mv "$tmp/csgi.json.new" "$tmp/csgi.json"
}
write_config world_resource
server_sum=$(sha256sum "$server" | cut -d' ' -f1)
LD_LIBRARY_PATH="$libdir" "$server" --config "$tmp/csgi.json" --plugins "$tmp/plugins" \
    --bind 127.0.0.1:0 --workers 2 --error-log "$tmp/err.log" --tmp-dir "$tmp" &
spid=$!

wait_log() {
    # wait_log NEEDLE COUNT: until the error log has COUNT lines with NEEDLE
    i=0
    while [ $i -lt 200 ]; do
        n=$(grep -c -F "$1" "$tmp/err.log" 2>/dev/null || true)
        [ "${n:-0}" -ge "$2" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "timed out waiting for \"$1\" x$2"
}
wait_log "worker ready" 2
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$tmp/err.log" | head -1)
[ -n "$port" ] || fail "no port"
wait_log 'plugin "world_resource" loaded from "world.so"' 2
url="http://127.0.0.1:$port/world"

# Status, content type and body of one request, on one line each.
fetch() {
    curl -s -o "$tmp/body" -w '%{http_code} %{content_type}\n' "$@" && cat "$tmp/body" && echo
}
before_json=$(fetch "$url/json")
before_post=$(fetch -X POST -H 'Content-Type: application/json' \
    -d '{"name":"swap","price":2.5,"tags":["x"]}' "$url/items")
before_bad=$(fetch -X POST -H 'Content-Type: text/plain' -d 'x' "$url/items")
before_405=$(fetch -X DELETE "$url/items")
before_fortunes=$(fetch "$url/fortunes")
case "$before_post" in
    "201 application/json"*'"id":1,"name":"swap"'*) ;;
    *) fail "POST before the swap: $before_post" ;;
esac

# --- 3. build framework 2's app out of tree ------------------------------
cp "$src/world_route.c" "$src/world_db.c" "$src/world_db.h" "$tmp/app/"
# shellcheck disable=SC2046
cc -shared -fPIC -fvisibility=hidden -O2 -std=c11 -Wall -Wextra -Werror \
    $(pkg-config --cflags csgi-route sqlite3) "$tmp/app/world_route.c" "$tmp/app/world_db.c" \
    -o "$tmp/app/world.so" $(pkg-config --libs csgi-route sqlite3) -lm -lpthread
syms=$(nm -D --defined-only "$tmp/app/world.so" | awk '{print $3}' | tr '\n' ' ')
[ "$syms" = "csgi_plugin_entry " ] || fail "the app exports: $syms"
readelf -d "$tmp/app/world.so" | grep -q 'NEEDED.*libcsgi-route.so.1' || fail "not linked to libcsgi-route.so.1"

# --- 4. drop it in, re-point the mount, reload ---------------------------
cp "$tmp/app/world.so" "$tmp/plugins/world.so.new"
mv "$tmp/plugins/world.so.new" "$tmp/plugins/world.so"
write_config world_route
kill -HUP "$spid"
wait_log 'plugin "world_route" loaded from "world.so" (version 1.0.0) at "/world"' 2
wait_log "reload: generation 2 ready" 1
wait_log "(gen 1, pid" 2
kill -0 "$spid" || fail "the master is gone"

after_json=$(fetch "$url/json")
after_item=$(fetch "$url/items/1")
after_bad=$(fetch -X POST -H 'Content-Type: text/plain' -d 'x' "$url/items")
after_405=$(fetch -X DELETE "$url/items")
after_fortunes=$(fetch "$url/fortunes")
[ "$before_json" = "$after_json" ] || fail "json differs: $before_json / $after_json"
[ "$before_bad" = "$after_bad" ] || fail "415 differs: $before_bad / $after_bad"
[ "$before_405" = "$after_405" ] || fail "405 differs: $before_405 / $after_405"
[ "$before_fortunes" = "$after_fortunes" ] || fail "fortunes differ"
# The item created through framework 1 is served by framework 2, byte for byte.
[ "$(echo "$before_post" | sed 1d)" = "$(echo "$after_item" | sed 1d)" ] ||
    fail "item differs: $before_post / $after_item"
after_post=$(fetch -X POST -H 'Content-Type: application/json' -d '{"name":"b","price":1}' \
    "$url/items")
case "$after_post" in
    "201 application/json"*'"id":2,"name":"b"'*) ;;
    *) fail "POST after the swap: $after_post" ;;
esac
[ "$(sha256sum "$server" | cut -d' ' -f1)" = "$server_sum" ] || fail "the server binary changed"
grep -q '\[error\]' "$tmp/err.log" && fail "errors in the log"

kill -TERM "$spid"
wait "$spid"
spid=""
echo "swap test passed"
