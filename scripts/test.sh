#!/bin/sh
# Run the whole csgi test suite on both libmicrohttpd versions: the system's (0.9.75 on
# Debian 12) and 1.0.x (which scripts/deps.sh --mhd 1.0 builds into build-deps/ when the
# system has no 1.0). For each version: a -Werror build with the fuzz targets and an
# ASan+UBSan build, every suite in both (unit, gateway, ABI, integration with the probes,
# apps, install, bench, fuzz smoke). Once: valgrind memcheck of the in-process suites and the
# clang-format check. Installs missing Debian packages.
# Each build directory's results are tagged with its name (build-ci, build-ci-mhd10, ...),
# and a subtotal per tag comes before the last line, "N passed, N failed" over all of it.
# Exits non-zero on any failure; a failed dependency build is a failure too.
# Usage: scripts/test.sh [--quick]   (--quick: the -Werror builds and valgrind only)
set -u
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)

scripts/deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT

step() {
    # step NAME COMMAND...: run a non-meson check and count it as one test.
    name=$1
    shift
    if "$@"; then
        echo "ok $name" >>"$results"
    else
        echo "FAIL $name" >>"$results"
        echo "csgi: step \"$name\" failed" >&2
    fi
}

run_suite() {
    # run_suite BUILD_DIR [meson setup options...]
    dir=$1
    shift
    if [ ! -d "$dir" ]; then
        meson setup "$dir" "$@" >/dev/null || { echo "FAIL $dir/setup" >>"$results"; return; }
    else
        meson configure "$dir" "$@" >/dev/null
    fi
    if ! ninja -C "$dir"; then
        echo "FAIL $dir/build" >>"$results"
        return
    fi
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "--timeout-multiplier=${TIMEOUT_MULT:-1}"
    python3 scripts/count-tests.py "$dir/meson-logs/testlog.json" "$dir" >>"$results"
}

valgrind_suites() {
    # valgrind_suites BUILD_DIR TAG [TEST...]: the in-process suites (or the named tests)
    # under valgrind memcheck (leaks are errors).
    dir=$1
    tag=$2
    shift 2
    [ -f "$dir/build.ninja" ] || return 0
    [ $# -gt 0 ] || set -- --suite unit --suite gateway --suite abi
    rm -f "$dir/meson-logs/testlog-valgrind.json"
    meson test -C "$dir" --setup valgrind --print-errorlogs --num-processes 2 "$@"
    python3 scripts/count-tests.py "$dir/meson-logs/testlog-valgrind.json" "$tag" >>"$results"
}

mhd_linked() {
    # mhd_linked BUILD_DIR SUITE...: the tests of those suites whose program links
    # libmicrohttpd (readelf -d lists it as NEEDED).
    dir=$1
    shift
    [ -f "$dir/build.ninja" ] || return 0
    meson introspect --tests "$dir" | python3 -c '
import json, subprocess, sys
suites = {"csgi:" + s for s in sys.argv[1:]}
for t in json.load(sys.stdin):
    if suites & set(t["suite"]):
        d = subprocess.run(["readelf", "-d", t["cmd"][0]], capture_output=True, text=True)
        if "libmicrohttpd" in d.stdout:
            print(t["name"])' "$@"
}

# The second version: 1.0.x, built into build-deps/ unless the system has it (then the
# line is empty, and there is only one version to test).
if mhd10=$(scripts/deps.sh --mhd 1.0); then
    [ -n "$mhd10" ] || echo "csgi: the system's libmicrohttpd is 1.0.x: one version to test" >&2
else
    echo "FAIL deps/libmicrohttpd-1.0" >>"$results"
    mhd10=""
fi

run_suite build-ci -Dwerror=true -Dfuzz=true
valgrind_suites build-ci valgrind
if [ -n "$mhd10" ]; then
    run_suite build-ci-mhd10 -Dwerror=true -Dfuzz=true "-Dpkg_config_path=$mhd10"
    # Valgrind ran the in-process suites on the first build only: none of their programs
    # links libmicrohttpd (they call nothing in it, so the linker's --as-needed drops it;
    # readelf -d shows no libmicrohttpd), and the version cannot change what they run.
    # Should one start to link it, it runs again here, by name.
    linked=$(mhd_linked build-ci-mhd10 unit gateway abi)
    if [ -n "$linked" ]; then
        # shellcheck disable=SC2086 # one test name a word
        valgrind_suites build-ci-mhd10 valgrind-mhd10 $linked
    fi
fi
if [ "${1:-}" != "--quick" ]; then
    TIMEOUT_MULT=3 run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true
    if [ -n "$mhd10" ]; then
        TIMEOUT_MULT=3 run_suite build-asan-mhd10 -Db_sanitize=address,undefined \
            -Db_lundef=false -Dwerror=true "-Dpkg_config_path=$mhd10"
    fi
    step clang-format sh -c 'git ls-files "*.c" "*.h" | xargs clang-format --dry-run --Werror'
fi

# One subtotal per tag (the text before the first "/"), with the libmicrohttpd it built on.
awk '{ tag = $2; sub(/\/.*/, "", tag); if (!(tag in n)) order[++k] = tag; n[tag]++
       if ($1 == "ok") ok[tag]++ }
     END { for (i = 1; i <= k; i++) { t = order[i]; print t, ok[t] + 0, n[t] - ok[t] } }' \
    "$results" | while read -r tag ok bad; do
    v=$(python3 -c 'import json, sys
for d in json.load(open(sys.argv[1])):
    if d["name"] == "libmicrohttpd":
        print(" (libmicrohttpd %s)" % d["version"])' "$tag/meson-info/intro-dependencies.json" \
        2>/dev/null)
    echo "$tag$v: $ok passed, $bad failed"
done
passed=$(grep -c '^ok' "$results" || true)
failed=$(grep -c '^FAIL' "$results" || true)
grep '^FAIL' "$results" >&2 || true
echo "csgi: $(($(date +%s) - start)) s" >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
