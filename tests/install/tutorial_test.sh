#!/bin/sh
# Run the framework tutorials' own command lines, taken from their README.md
# (the blocks marked "<!-- tutorial:... -->"), against csgi installed under a
# non-default prefix: meson install into a temporary root, with the installed
# .pc files' prefix moved there, as "meson setup --prefix" would have set it.
# No PKG_CONFIG_PATH or LD_LIBRARY_PATH comes from outside: the tutorial's
# lines must do everything. Also checks that the install line fails loudly
# when pkg-config cannot find csgi.
# Usage: tutorial_test.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
tmp=$(mktemp -d)
spid=""
cleanup() {
    if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR LD_LIBRARY_PATH

meson install -C "$build" --destdir "$tmp/root" --no-rebuild >/dev/null
pc=$(find "$tmp/root" -name csgi.pc | head -n 1)
[ -n "$pc" ] || { echo "csgi.pc was not installed"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
rel="$tmp/root$prefix"
for f in $(find "$tmp/root" -name '*.pc'); do
    sed -i "s|^prefix=.*|prefix=$rel|" "$f"
done
[ -x "$rel/bin/csgi-server" ] || { echo "no csgi-server under $rel/bin"; exit 1; }

# Print the fenced block that follows the marker "<!-- tutorial:NAME" in FILE.
block() {
    awk -v want="<!-- tutorial:$2 " '
        index($0, want) == 1 { armed = 1; next }
        armed && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }
    ' "$1"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

for fw in route resource; do
    readme="$src/plugins/frameworks/$fw/README.md"
    work="$tmp/$fw"
    mkdir -p "$work"
    block "$readme" hi.c >"$work/hi.c"
    block "$readme" build >"$work/build.sh"
    block "$readme" run >"$work/run.sh"
    for f in hi.c build.sh run.sh; do
        [ -s "$work/$f" ] || { echo "$readme: no tutorial:$f block"; exit 1; }
    done
    grep -q '^PREFIX=/opt/csgi ' "$work/build.sh" || { echo "$readme: no PREFIX line"; exit 1; }
    sed -i "s|^PREFIX=/opt/csgi |PREFIX=$rel |" "$work/build.sh"

    # The build and install lines, as written.
    (cd "$work" && sh -eu ./build.sh) || { echo "$fw: the tutorial's build lines failed"; exit 1; }
    plugindir=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=plugindir csgi)
    [ -f "$plugindir/hi.so" ] || { echo "$fw: hi.so not installed in $plugindir"; exit 1; }
    readelf -d "$plugindir/hi.so" | grep -q "RUNPATH\|RPATH" ||
        { echo "$fw: hi.so has no rpath"; exit 1; }

    # The run block: its server line (on a free port, in the background) and
    # each curl line, whose comment is the expected body, or a status first.
    port=$(free_port)
    sed -i "s/8000/$port/g" "$work/run.sh"
    server_line=$(sed -n '1s/ &[[:space:]]*\(#.*\)\{0,1\}$//p' "$work/run.sh")
    (cd "$work" && PREFIX="$rel" plugindir="$plugindir" exec sh -c "exec $server_line" \
        >"$work/server.log" 2>&1) &
    spid=$!
    i=0
    until grep -q "worker ready" "$work/server.log" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$fw: server did not start"; cat "$work/server.log"; exit 1; }
        sleep 0.1
    done
    sed -n '2,$p' "$work/run.sh" | while IFS= read -r line; do
        cmd=${line%%#*}
        want=$(printf '%s' "${line#*# }" | sed 's/[[:space:]]*$//')
        case "$want" in
        [1-5][0-9][0-9],*)
            got=$(eval "$cmd -s -o /dev/null -w '%{http_code}'")
            [ "$got" = "${want%%,*}" ] || { echo "$fw: $cmd: status $got, want $want"; exit 1; } ;;
        *)
            got=$(eval "$cmd -s")
            [ "$got" = "$want" ] || { echo "$fw: $cmd: got '$got', want '$want'"; exit 1; } ;;
        esac
    done
    kill -TERM "$spid"
    wait "$spid" || true
    spid=""
    rm -f "$plugindir/hi.so"
done

# pkg-config cannot find csgi: the install line must fail with a message,
# never copy the plugin to "/". The lines run as typed at a prompt (no -e);
# install is a shell function here, so that even a broken guard writes
# nothing.
sed -n '/^plugindir=/,$p' "$tmp/route/build.sh" >"$tmp/guard.sh"
: >"$tmp/route/hi.so"
if out=$(cd "$tmp/route" && PKG_CONFIG_PATH=/nonexistent sh -c \
    'install() { echo "install $*" >>../install.calls; }; . ../guard.sh' 2>&1); then
    echo "the install line ran without csgi in pkg-config: $out"
    exit 1
fi
echo "$out" | grep -q "pkg-config cannot find csgi" || { echo "unhelpful failure: $out"; exit 1; }
[ ! -e "$tmp/install.calls" ] || { echo "install ran: $(cat "$tmp/install.calls")"; exit 1; }

echo "tutorial test passed"
