#!/bin/sh
# Install the Debian packages csgi needs, when they are missing.
# Usage: scripts/deps.sh [--test] [--mhd 1.0]
#   --test      add what the test suite needs.
#   --mhd 1.0   also make libmicrohttpd 1.0.x available, then print one line on stdout: the
#               directory to put in PKG_CONFIG_PATH, or an empty line when the system's own
#               libmicrohttpd is 1.0.x already (then nothing is built).
#
# Debian 12 ships libmicrohttpd 0.9.75; Debian 13, Ubuntu 24.04 and Fedora ship 1.0.x. For
# --mhd 1.0 on Debian 12 this fetches Debian 13's source package through a private apt
# configuration (its own deb-src list and list directory: the system's apt sources are
# never touched; the mirror is the one the system already uses), builds it, and installs it
# into build-deps/mhd-1.0/prefix. A prefix that already holds 1.0.x is reused, and a copy
# is kept in ${XDG_CACHE_HOME:-~/.cache}/csgi/ for the next clone (CSGI_DEPS_CACHE=none:
# no cache). Everything but that one line goes to stderr.
set -eu
cd "$(dirname "$0")/.."
exec 3>&1 1>&2

usage() {
    echo "usage: scripts/deps.sh [--test] [--mhd 1.0]" >&2
    exit 2
}

want_test=no
want_mhd=""
while [ $# -gt 0 ]; do
    case $1 in
    --test) want_test=yes ;;
    --mhd)
        [ $# -ge 2 ] || usage
        want_mhd=$2
        shift
        ;;
    --mhd=*) want_mhd=${1#--mhd=} ;;
    *) usage ;;
    esac
    shift
done

pkgs="gcc pkg-config meson ninja-build libmicrohttpd-dev libgnutls28-dev libcjson-dev nettle-dev libsqlite3-dev zlib1g-dev python3-dev"
if [ "$want_test" = yes ]; then
    pkgs="$pkgs check libcurl4-openssl-dev clang libclang-rt-14-dev clang-format binutils python3 g++ curl valgrind wrk haproxy nginx nginx-light openssl"
    # The status page's browser test (tests/browser): headless Chromium, about 120 MB to
    # fetch and 410 MB installed (17 s on the development machine).
    pkgs="$pkgs chromium"
    # The wsgi plugin's comparison with gunicorn, and csgi-bench's Python peers.
    pkgs="$pkgs python3-falcon python3-bottle python3-flask python3-venv gunicorn uwsgi uwsgi-plugin-python3"
    # The WebSocket codec's peer test: an independent client implementation.
    pkgs="$pkgs python3-websockets"
fi
if [ -n "$want_mhd" ]; then
    # apt-get source unpacks with dpkg-source (dpkg-dev); the build needs make.
    pkgs="$pkgs dpkg-dev make xz-utils debian-archive-keyring"
fi

install_missing() {
    missing=""
    for p in $pkgs; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0

    echo "csgi: installing missing packages:$missing"
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
}

# debian_mirror: the URI of the Debian archive the system uses for its own release, read
# from its apt sources (one-line .list entries and deb822 .sources stanzas), so that no
# host name is written into this repository. CSGI_DEBIAN_MIRROR overrides it.
debian_mirror() {
    if [ -n "${CSGI_DEBIAN_MIRROR:-}" ]; then
        echo "$CSGI_DEBIAN_MIRROR"
        return
    fi
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            awk -v c="$codename" '$1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == c) print $i
            }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            awk -v c="$codename" '
            function flush() {
                if ((" " types " ") ~ / deb / && enabled != "no" && (" " suites " ") ~ (" " c " ")) {
                    split(uris, u, " ")
                    print u[1]
                }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }' "$f"
        done
    } | head -n 1
}

# pc_version DIR: the version of DIR/libmicrohttpd.pc, or nothing.
pc_version() {
    if [ -f "$1/libmicrohttpd.pc" ]; then
        pkg-config --modversion "$1/libmicrohttpd.pc" 2>/dev/null || true
    fi
}

# prefix_ok DIR: DIR/libmicrohttpd.pc is 1.0.x, built with HTTPS (it requires gnutls), with
# its run path (see add_rpath), and the library it names is there: a complete install, not
# one cut short. A prefix built before csgi-server had TLS (--disable-https) is rebuilt.
prefix_ok() {
    case $(pc_version "$1") in
    1.0.*)
        grep -q 'rpath' "$1/libmicrohttpd.pc" &&
            grep -q '^Requires.private:.*gnutls' "$1/libmicrohttpd.pc" &&
            [ -e "$1/../libmicrohttpd.so" ]
        ;;
    *) return 1 ;;
    esac
}

# build_mhd10 DIR: fetch Debian 13's libmicrohttpd source package and install it into
# DIR/prefix (about 1.5 minutes on two cores). Its log is DIR/build.log.
build_mhd10() {
    dir=$1
    mirror=$(debian_mirror)
    if [ -z "$mirror" ]; then
        echo "csgi: no Debian mirror found in /etc/apt/sources.list{,.d}; set CSGI_DEBIAN_MIRROR"
        return 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
        >"$dir/apt/sources.list"
    # Its own source list, list directory and cache: nothing of the system's apt state is
    # read or written but its configuration (how it reaches the mirror).
    set -- -o "Dir::Etc::sourcelist=$dir/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
    echo "csgi: building libmicrohttpd 1.0 from Debian 13's source package into $dir (log: $dir/build.log)"
    log=$dir/build.log
    # One && chain: set -e does not apply inside a command whose status is tested.
    (
        apt-get "$@" update &&
            cd "$dir/src" &&
            apt-get "$@" source libmicrohttpd &&
            cd libmicrohttpd-1.*/ &&
            ./configure --prefix="$dir/prefix" --disable-static --disable-doc \
                --disable-examples --disable-curl --enable-https --enable-silent-rules &&
            make -j"$(nproc)" &&
            make install
    ) >"$log" 2>&1 || {
        tail -n 30 "$log"
        echo "csgi: building libmicrohttpd 1.0 failed (see $log)"
        return 1
    }
    rm -rf "$dir/apt" "$dir/src"
}

# A prefix outside the system's library path: binaries linked against it carry its lib
# directory as their run path, so that they never load the system's 0.9.75, which has the
# same soname (libmicrohttpd.so.12), not even after meson install.
add_rpath() {
    sed -i -e 's|^Libs: -L${libdir} |Libs: -L${libdir} -Wl,-rpath,${libdir} |' "$1/libmicrohttpd.pc"
    grep -q 'rpath' "$1/libmicrohttpd.pc"
}

# mhd10: make 1.0.x available; prints the PKG_CONFIG_PATH directory (empty: the system's).
mhd10() {
    case $(PKG_CONFIG_PATH='' pkg-config --modversion libmicrohttpd) in
    1.0.*)
        echo "csgi: the system's libmicrohttpd is $(pkg-config --modversion libmicrohttpd): nothing to build"
        echo >&3
        return 0
        ;;
    esac
    dir=$(pwd)/build-deps/mhd-1.0
    pc=$dir/prefix/lib/pkgconfig
    if prefix_ok "$pc"; then
        echo >&3 "$pc"
        return 0
    fi
    cache=""
    if [ "${CSGI_DEPS_CACHE:-}" != none ] && [ -n "${XDG_CACHE_HOME:-${HOME:-}}" ]; then
        cache=${XDG_CACHE_HOME:-$HOME/.cache}/csgi/mhd-1.0-$(. /etc/os-release && echo "$VERSION_CODENAME")-$(uname -m)
    fi
    if [ -n "$cache" ] && prefix_ok "$cache/prefix/lib/pkgconfig"; then
        # The .pc file names its prefix: moved, it is rewritten to the new place.
        rm -rf "$dir"
        mkdir -p "$dir"
        cp -a "$cache/prefix" "$dir/prefix"
        sed -i -e "s|^prefix=.*|prefix=$dir/prefix|" "$pc/libmicrohttpd.pc"
        if prefix_ok "$pc"; then
            echo "csgi: libmicrohttpd $(pc_version "$pc") copied from $cache"
            echo >&3 "$pc"
            return 0
        fi
    fi
    build_mhd10 "$dir"
    add_rpath "$pc"
    if ! prefix_ok "$pc"; then
        echo "csgi: $pc does not describe a complete libmicrohttpd 1.0.x"
        return 1
    fi
    if [ -n "$cache" ]; then
        rm -rf "$cache"
        mkdir -p "$cache"
        cp -a "$dir/prefix" "$cache/prefix" || rm -rf "$cache"
    fi
    echo "csgi: libmicrohttpd $(pc_version "$pc") is in $dir/prefix"
    echo >&3 "$pc"
}

install_missing
case $want_mhd in
"") ;;
1.0) mhd10 ;;
*)
    case $(PKG_CONFIG_PATH='' pkg-config --modversion libmicrohttpd) in
    "$want_mhd".*) echo >&3 ;;
    *)
        echo "csgi: --mhd $want_mhd: the system has libmicrohttpd $(pkg-config --modversion libmicrohttpd), and only 1.0 can be built"
        exit 1
        ;;
    esac
    ;;
esac
