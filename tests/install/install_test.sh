#!/bin/sh
# Install the project into a temporary root, then build a plugin out of tree
# the way a third party would (cc + pkg-config), load it into csgi-server and
# answer a request with it. With meson's default prefix the .pc files must land
# where pkg-config looks without PKG_CONFIG_PATH (on Debian, the multiarch
# <prefix>/lib/<triplet>/pkgconfig), so the README's lines work as printed:
# pkg-config runs here with its default search path, moved into the root.
# Usage: install_test.sh BUILD_DIR SERVER SOURCE_DIR
set -eu
build=$1
server=$2
source=$3
tmp=$(mktemp -d)
spid=""
cleanup() {
    if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pcfile=$(find "$tmp/root" -name csgi.pc | head -1)
[ -n "$pcfile" ] || { echo "csgi.pc was not installed"; exit 1; }
pcdir=$(dirname "$pcfile")
prefix=$(meson introspect --buildoptions "$build" |
    python3 -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
default_path=$(pkg-config --variable pc_path pkg-config)
if [ "$prefix" = /usr/local ]; then
    # meson's default prefix: the README's lines must work without PKG_CONFIG_PATH.
    case ":$default_path:" in
        *":${pcdir#"$tmp/root"}:"*) ;;
        *) echo "csgi.pc went to ${pcdir#"$tmp/root"}, which pkg-config does not search" \
                "by default ($default_path)"; exit 1 ;;
    esac
    # The default path inside the root, then as it is (for libcjson.pc).
    unset PKG_CONFIG_PATH
    PKG_CONFIG_LIBDIR=$(printf '%s' "$default_path" | sed "s#\(^\|:\)/#\1$tmp/root/#g"):$default_path
    export PKG_CONFIG_LIBDIR
else
    echo "prefix $prefix is not meson's default: csgi.pc found through PKG_CONFIG_PATH"
    export PKG_CONFIG_PATH="$pcdir"
fi
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
for f in csgi.h version.h errors.h plugin.h testclient.h validator.h util.h middleware.h websocket.h; do
    [ -f "$(find "$tmp/root" -path "*/include/csgi/$f" | head -1)" ] || { echo "missing header $f"; exit 1; }
done
plugindir=$(pkg-config --variable=plugindir csgi)
case "$plugindir" in
    */csgi-1/plugins) ;;
    *) echo "unexpected plugindir: $plugindir"; exit 1 ;;
esac

# A plugin written outside the tree, against the installed header only.
mkdir -p "$tmp/app" "$tmp/plugins"
cat >"$tmp/app/app.c" <<'APP'
#include <csgi/csgi.h>

static int
oot_next(void *ctx, struct csgi_chunk *out)
{
    int *done = ctx;
    if (*done)
        return CSGI_DONE;
    *done = 1;
    out->ptr = "out of tree\n";
    out->len = 12;
    return CSGI_OK;
}

static int
oot_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    const struct csgi_host_api *api = state;
    const struct csgi_str none = {0, 0};
    int *done = api->alloc(env->request, sizeof(int));
    int rc = resp->start_response(resp->ctx, 200, none, 0, 0, 0);
    if (rc < 0 || !done)
        return rc < 0 ? rc : CSGI_ENOMEM;
    *done = 0;
    out->total_length = 12;
    out->ctx = done;
    out->next = oot_next;
    return CSGI_OK;
}

static int
oot_init(const struct csgi_host_api *api, const struct csgi_kv *c, size_t n, void **state)
{
    (void)c;
    (void)n;
    *state = (void *)api;
    return CSGI_OK;
}

static const struct csgi_plugin oot = {
    CSGI_PLUGIN_HEADER, .name = "oot", .init_worker = oot_init, .call = oot_call,
};

CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);
CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &oot;
}
APP
# shellcheck disable=SC2046
cc -shared -fPIC -fvisibility=hidden -Wall -Wextra -Werror $(pkg-config --cflags csgi) \
    "$tmp/app/app.c" -o "$tmp/app/oot.so"
mv "$tmp/app/oot.so" "$tmp/plugins/oot.so"

# The examples' line (plugins/examples/README.md): libcsgi-util through csgi-util.pc.
# shellcheck disable=SC2046
cc -shared -fPIC -fvisibility=hidden -o "$tmp/app/echo.so" "$source/plugins/examples/echo/echo.c" \
    $(pkg-config --cflags --libs csgi-util libcjson) -Wl,--exclude-libs,ALL
mv "$tmp/app/echo.so" "$tmp/plugins/echo.so"

out=$("$server" --plugins "$tmp/plugins" --check-config 2>&1)
echo "$out" | grep -q "2 plugin(s) loaded, 0 failed" || { echo "check-config: $out"; exit 1; }

"$server" --plugins "$tmp/plugins" --bind 127.0.0.1:0 --workers 1 --error-log "$tmp/err.log" &
spid=$!
port=""
i=0
while [ $i -lt 100 ]; do
    if grep -q "worker ready" "$tmp/err.log" 2>/dev/null; then
        port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$tmp/err.log" | head -1)
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
[ -n "$port" ] || { echo "server did not start"; cat "$tmp/err.log"; exit 1; }
body=$(curl -s "http://127.0.0.1:$port/oot")
[ "$body" = "out of tree" ] || { echo "unexpected body: $body"; exit 1; }
body=$(curl -s "http://127.0.0.1:$port/echo?a=1")
case "$body" in
    *'"query":[["a","1"]]'*) ;;
    *) echo "unexpected echo body: $body"; exit 1 ;;
esac
kill -TERM "$spid"
wait "$spid"
spid=""

echo "install test passed"
