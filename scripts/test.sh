#!/bin/sh
# Run the whole csgi test suite on both libmicrohttpd versions: the system's (0.9.75 on
# Debian 12) and 1.0.x (which scripts/deps.sh --mhd 1.0 builds into build-deps/ when the
# system has no 1.0). For each version: a -Werror build with the fuzz targets and an
# ASan+UBSan build. The system's runs every suite in both (unit, gateway, ABI, integration
# with the probes, apps, install, bench, fuzz smoke); on 1.0 the ASan+UBSan build runs all
# but the in-process suites whose programs cannot tell the versions apart (see skip_same),
# and the -Werror build the fuzz smoke (with --quick: all that the ASan build would). Once: valgrind
# memcheck of the in-process suites and the clang-format check. Installs missing Debian
# packages.
# Each build directory's results are tagged with its name (build-ci, build-ci-mhd10, ...),
# and a subtotal per tag comes before the last line, "N passed, N failed" over all of it.
# Exits non-zero on any failure; a failed dependency build is a failure too.
# Usage: scripts/test.sh [--quick]   (--quick: the -Werror builds and valgrind only)
set -u
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)

scripts/deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }

results=$(mktemp)
mhd10_pid=""
prebuild_pid=""
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

build_tree() {
    # build_tree BUILD_DIR [meson setup options...]: configure (or reconfigure) and build.
    dir=$1
    shift
    if [ ! -d "$dir" ]; then
        meson setup "$dir" "$@" >/dev/null || { echo "FAIL $dir/setup" >>"$results"; return 1; }
    else
        meson configure "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir" || { echo "FAIL $dir/build" >>"$results"; return 1; }
}

test_tree() {
    # test_tree BUILD_DIR [meson test options...]: run the suites and count the results.
    dir=$1
    shift
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs --num-processes 2 \
        "--timeout-multiplier=${TIMEOUT_MULT:-1}" "$@"
    python3 scripts/count-tests.py "$dir/meson-logs/testlog.json" "$dir" >>"$results"
}

prebuild() {
    # prebuild BUILD_DIR [meson setup options...]: configure and build in the background at
    # the lowest priority, while the suites running meanwhile mostly wait on sockets and
    # signals; prebuild_pid is the job. build_tree later finishes the job in the foreground,
    # where a failure shows and counts.
    ( exec nice -n 19 sh -c '[ -d "$0" ] || meson setup "$0" "$@" || exit 1; exec ninja -C "$0"' \
        "$@" ) >/dev/null 2>&1 &
    prebuild_pid=$!
}

run_suite() {
    # run_suite BUILD_DIR [meson setup options...]: build, then every suite.
    build_tree "$@" && test_tree "$1"
}

run_other_version() {
    # run_other_version BUILD_DIR [meson setup options...]: build on the second
    # libmicrohttpd, then the suites that can tell the versions apart (see skip_same).
    build_tree "$@" || return 0
    # shellcheck disable=SC2046 # one option a word
    test_tree "$1" $(skip_same "$1")
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

skip_same() {
    # skip_same BUILD_DIR: meson test options that leave out the in-process suites (unit,
    # gateway, abi) when none of their programs links libmicrohttpd: they call nothing in
    # it (the linker's --as-needed drops it; readelf -d shows no libmicrohttpd; nor, as of
    # this writing, does any of their sources include microhttpd.h), so the version cannot
    # change what they run, and they ran on the first version already. Should one start to
    # link it, all run.
    [ -n "$(mhd_linked "$1" unit gateway abi)" ] ||
        echo "--no-suite unit --no-suite gateway --no-suite abi"
}

# The second version: 1.0.x, built into build-deps/ unless the system has it (then the
# line is empty, and there is only one version to test). On a fresh machine that takes about
# a minute, so it builds in the background at the lowest priority while the first build's
# suites (which mostly wait on sockets and signals) run.
mhd10_out=$(mktemp)
mhd10_log=$(mktemp)
trap 'rm -f "$results" "$mhd10_out" "$mhd10_log"; [ -z "$mhd10_pid" ] || kill "$mhd10_pid"' EXIT
nice -n 19 scripts/deps.sh --mhd 1.0 >"$mhd10_out" 2>"$mhd10_log" &
mhd10_pid=$!

asan="-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true"
quick=no
[ "${1:-}" = "--quick" ] && quick=yes
if build_tree build-ci -Dwerror=true -Dfuzz=true; then
    # shellcheck disable=SC2086 # one option a word
    [ "$quick" = yes ] || prebuild build-asan $asan
    test_tree build-ci
fi
valgrind_suites build-ci valgrind

wait "$mhd10_pid"
mhd10_rc=$?
mhd10_pid=""
if [ "$mhd10_rc" -eq 0 ]; then
    mhd10=$(cat "$mhd10_out")
    [ -n "$mhd10" ] || echo "csgi: the system's libmicrohttpd is 1.0.x: one version to test" >&2
else
    echo "FAIL deps/libmicrohttpd-1.0" >>"$results"
    mhd10=""
fi
cat "$mhd10_log" >&2
asan_pid=$prebuild_pid
if [ -n "$mhd10" ] && build_tree build-ci-mhd10 -Dwerror=true -Dfuzz=true \
    "-Dpkg_config_path=$mhd10"; then
    # shellcheck disable=SC2086 # one option a word
    [ "$quick" = yes ] || prebuild build-asan-mhd10 $asan "-Dpkg_config_path=$mhd10"
    if [ "$quick" = yes ]; then
        # shellcheck disable=SC2046 # one option a word
        test_tree build-ci-mhd10 $(skip_same build-ci-mhd10)
    else
        # The ASan+UBSan tree on 1.0 below (-Werror too) runs every suite that can tell
        # the versions apart, probes included; this tree adds what only it has: the
        # libFuzzer smoke runs (-Dfuzz). Running its other suites as well would repeat
        # the ASan tree's, and cost three minutes of CI's fifteen.
        test_tree build-ci-mhd10 --suite fuzz
    fi
    # Valgrind ran the in-process suites on the first build only, for the reason skip_same
    # gives. A program of theirs that links libmicrohttpd runs again here, by name.
    linked=$(mhd_linked build-ci-mhd10 unit gateway abi)
    if [ -n "$linked" ]; then
        # shellcheck disable=SC2086 # one test name a word
        valgrind_suites build-ci-mhd10 valgrind-mhd10 $linked
    fi
fi
if [ "$quick" = no ]; then
    [ -z "$asan_pid" ] || wait "$asan_pid"
    # shellcheck disable=SC2086 # one option a word
    TIMEOUT_MULT=3 run_suite build-asan $asan
    if [ -n "$mhd10" ]; then
        [ "$prebuild_pid" = "$asan_pid" ] || wait "$prebuild_pid"
        # shellcheck disable=SC2086 # one option a word
        TIMEOUT_MULT=3 run_other_version build-asan-mhd10 $asan "-Dpkg_config_path=$mhd10"
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
