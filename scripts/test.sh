#!/bin/sh
# Run the whole csgi test suite on both libmicrohttpd versions: the system's (0.9.75 on
# Debian 12) and 1.0.x (which scripts/deps.sh --mhd 1.0 builds into build-deps/ when the
# system has no 1.0). Four build trees, every one -Werror, and each suite where it adds
# something:
#   build-ci          system's, with the fuzz targets: the tests the ASan trees do not have
#                     (the libFuzzer smoke runs and the suites that sanitizers leave out:
#                     deploy, wsgi-peers, browser, bench-instructions; see only_here), the
#                     in-process suites (unit, gateway, abi) as Check runs them by default,
#                     a fork per test, and valgrind memcheck of those (CK_FORK=no).
#   build-asan        system's, ASan+UBSan: every suite; the in-process ones with
#                     CK_FORK=no (LeakSanitizer at each forked test's exit made them minutes
#                     long), the others as Check runs them.
#   build-ci-mhd10    1.0.x: built; valgrind of any in-process program that links
#                     libmicrohttpd (none as of this writing).
#   build-asan-mhd10  1.0.x, ASan+UBSan: every suite that can tell the versions apart (all
#                     but the in-process and fuzz suites, whose programs do not link
#                     libmicrohttpd; see skip_same).
# Once: the clang-format check. Installs missing Debian packages.
# The ASan trees' suites mostly wait on sockets and signals: each runs in the background
# while the next tree builds (at the lowest priority) and the -Werror trees' checks run; the
# two ASan runs overlap. A background run's output is shown when it ends.
# Each build directory's results are tagged with its name (build-ci, build-ci-mhd10, ...),
# and a subtotal per tag comes before the last line, "N passed, N failed" over all of it.
# Exits non-zero on any failure; a failed build, dependency build included, is a failure.
# Usage: scripts/test.sh [--quick]   (--quick: the -Werror builds, their tests and valgrind)
set -u
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)

scripts/deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d)
# The results of the foreground; a background run writes its own file (see in_background),
# and all are joined in a fixed order at the end.
results=$work/results
: >"$results"
mhd10_pid=""
bg_pids=""
cleanup() {
    for pid in $mhd10_pid $bg_pids; do
        kill "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

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
    # build_tree BUILD_DIR [meson setup options...]: configure (or reconfigure) and build;
    # with build_nice=yes at the lowest priority (while suites run in the background).
    dir=$1
    shift
    nice=""
    [ "$build_nice" = no ] || nice="nice -n 19"
    if [ ! -f "$dir/build.ninja" ]; then
        rm -rf "$dir"
        $nice meson setup "$dir" "$@" >/dev/null || { echo "FAIL $dir/setup" >>"$results"; return 1; }
    else
        $nice meson configure "$dir" "$@" >/dev/null
    fi
    $nice ninja -C "$dir" || { echo "FAIL $dir/build" >>"$results"; return 1; }
}

test_tree() {
    # test_tree BUILD_DIR [meson test options...]: run the suites and count the results.
    dir=$1
    shift
    # meson names the log after the test setup: testlog-SETUP.json with --setup SETUP.
    log=testlog.json
    prev=""
    for a in "$@"; do
        [ "$prev" != --setup ] || log=testlog-$a.json
        prev=$a
    done
    rm -f "$dir/meson-logs/$log"
    meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 \
        "--timeout-multiplier=${TIMEOUT_MULT:-1}" "$@"
    python3 scripts/count-tests.py "$dir/meson-logs/$log" "$dir" >>"$results"
}

inproc="--suite unit --suite gateway --suite abi"

test_asan() (
    # test_asan BUILD_DIR [meson test options...]: in an ASan tree, the in-process suites
    # (those of them the options leave in) with CK_FORK=no, then the others as Check runs
    # them.
    # In-process, a fork per test costs a LeakSanitizer pass at each test's exit (the
    # config suite: 37 s; without the fork, 0.6 s); without it, one pass at the program's
    # exit still reports every leak, with the allocation's stack. Integration programs keep
    # the fork: there a failed test must not leave its csgi-server running.
    dir=$1
    shift
    TIMEOUT_MULT=3
    # The asan test setup (meson.build): UBSan's halt_on_error, so that a runtime error
    # fails its test instead of only printing.
    set -- --setup asan "$@"
    # shellcheck disable=SC2086 # one option a word
    if meson test -C "$dir" --no-rebuild --list $inproc "$@" >/dev/null 2>&1; then
        # shellcheck disable=SC2086 # one option a word
        (CK_FORK=no && export CK_FORK && test_tree "$dir" $inproc "$@")
    fi
    # shellcheck disable=SC2046 # one option a word
    test_tree "$dir" $(echo "$inproc" | sed 's/--suite/--no-suite/g') "$@"
)

in_background() {
    # in_background NAME COMMAND...: run a function in a subshell with its own results and
    # output files; join NAME shows and collects them. Its pid is in bg_pids.
    name=$1
    shift
    (
        # shellcheck disable=SC2030 # its own results file, on purpose
        results=$work/$name.results
        : >"$results"
        "$@"
    ) >"$work/$name.log" 2>&1 &
    eval "bg_$name=\$!"
    bg_pids="$bg_pids $!"
}

join() {
    # join NAME: wait for the background run NAME, show its output, keep its results.
    eval "pid=\${bg_$1:-}"
    [ -n "$pid" ] || return 0
    wait "$pid"
    echo "csgi: --- $1 (ran in the background) ---"
    cat "$work/$1.log"
    cat "$work/$1.results" >>"$results"
}

prebuild() {
    # prebuild BUILD_DIR: build a configured tree in the background at the lowest priority,
    # while the suites running meanwhile leave the processors idle; prebuild_pid is the
    # job. build_tree later finishes the job in the foreground, where a failure shows and
    # counts.
    nice -n 19 ninja -C "$1" >/dev/null 2>&1 &
    prebuild_pid=$!
    bg_pids="$bg_pids $!"
}

valgrind_suites() {
    # valgrind_suites BUILD_DIR TAG [TEST...]: the in-process suites (or the named tests)
    # under valgrind memcheck (leaks are errors).
    dir=$1
    tag=$2
    shift 2
    [ -f "$dir/build.ninja" ] || return 0
    # shellcheck disable=SC2086 # one option a word
    [ $# -gt 0 ] || set -- $inproc
    rm -f "$dir/meson-logs/testlog-valgrind.json"
    meson test -C "$dir" --no-rebuild --setup valgrind --print-errorlogs --num-processes 2 "$@"
    python3 scripts/count-tests.py "$dir/meson-logs/testlog-valgrind.json" "$tag" >>"$results"
}

mhd_linked() {
    # mhd_linked BUILD_DIR SUITE...: the tests of those suites with a program that links
    # libmicrohttpd (readelf -d lists it as NEEDED): the test's own program, or one it runs
    # (an executable of the build tree among its arguments, as the fuzz smoke runs').
    dir=$1
    shift
    [ -f "$dir/build.ninja" ] || return 0
    meson introspect --tests "$dir" | python3 -c '
import json, os, subprocess, sys
suites = {"csgi:" + s for s in sys.argv[2:]}
build = os.path.realpath(sys.argv[1])
for t in json.load(sys.stdin):
    if not suites & set(t["suite"]):
        continue
    progs = [t["cmd"][0]] + [a for a in t["cmd"][1:]
        if os.path.realpath(a).startswith(build + "/") and os.path.isfile(a)
        and os.access(a, os.X_OK)]
    for p in progs:
        d = subprocess.run(["readelf", "-d", p], capture_output=True, text=True)
        if "libmicrohttpd" in d.stdout:
            print(t["name"])
            break' "$dir" "$@"
}

skip_same() {
    # skip_same BUILD_DIR: meson test options that leave out the in-process suites (unit,
    # gateway, abi) and the fuzz suite, each when none of its programs links libmicrohttpd:
    # they call nothing in it (the linker's --as-needed drops it; readelf -d shows no
    # libmicrohttpd; nor, as of this writing, does any of their sources include
    # microhttpd.h, and the libFuzzer targets are compiled by a clang command line that
    # names no libmicrohttpd at all), so the version cannot change what they run, and they
    # ran on the first version already. Should one start to link it, its suite runs.
    for s in unit gateway abi fuzz; do
        [ -n "$(mhd_linked "$1" "$s")" ] || printf -- '--no-suite %s ' "$s"
    done
}

only_here() {
    # only_here BUILD_DIR OTHER_DIR: meson test arguments naming the tests of BUILD_DIR that
    # OTHER_DIR does not have (by suite and name): those that a sanitizer build leaves out
    # (get_option('b_sanitize') == 'none' in their meson.build) and the -Dfuzz ones; empty
    # when there are none. Fails when OTHER_DIR cannot be read.
    python3 -c '
import json, subprocess, sys
def tests(d):
    out = subprocess.run(["meson", "introspect", "--tests", d], capture_output=True,
                         text=True, check=True).stdout
    return {(tuple(sorted(t["suite"])), t["name"]) for t in json.loads(out)}
here, other = tests(sys.argv[1]), tests(sys.argv[2])
# A name shared with a test that both have would run that one too: a repeat, not a loss.
print(" ".join(sorted({name for _, name in here - other})))' "$1" "$2"
}

# The second version: 1.0.x, built into build-deps/ unless the system has it (then the
# line is empty, and there is only one version to test). On a fresh machine that takes about
# a minute, so it builds in the background at the lowest priority while build-ci builds and
# its suites run.
mhd10_out=$work/mhd10.out
mhd10_log=$work/mhd10.log
nice -n 19 scripts/deps.sh --mhd 1.0 >"$mhd10_out" 2>"$mhd10_log" &
mhd10_pid=$!
mhd10_done=no
mhd10=""

wait_mhd10() {
    # wait_mhd10: wait for the 1.0 library (once); mhd10 is its PKG_CONFIG_PATH, or empty.
    [ "$mhd10_done" = no ] || return 0
    wait "$mhd10_pid"
    rc=$?
    mhd10_pid=""
    mhd10_done=yes
    cat "$mhd10_log" >&2
    if [ "$rc" -eq 0 ]; then
        mhd10=$(cat "$mhd10_out")
        [ -n "$mhd10" ] || echo "csgi: the system's libmicrohttpd is 1.0.x: one version to test" >&2
    else
        echo "FAIL deps/libmicrohttpd-1.0" >>"$results"
    fi
}

asan="-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true"
build_nice=no
quick=no
[ "${1:-}" = "--quick" ] && quick=yes

# 1. build-ci; meanwhile build-asan builds in the background.
if build_tree build-ci -Dwerror=true -Dfuzz=true; then
    if [ "$quick" = no ]; then
        # shellcheck disable=SC2086 # one option a word
        if [ -f build-asan/build.ninja ] || meson setup build-asan $asan >/dev/null; then
            prebuild build-asan
        fi
    fi
    # shellcheck disable=SC2086 # one option a word
    test_tree build-ci $inproc
    if [ "$quick" = no ] && here=$(only_here build-ci build-asan); then
        # shellcheck disable=SC2086 # one test name a word
        [ -z "$here" ] || test_tree build-ci $here
    else
        # No ASan tree to run the others (--quick, or its setup failed): all run here.
        # shellcheck disable=SC2046 # one option a word
        test_tree build-ci $(echo "$inproc" | sed 's/--suite/--no-suite/g')
    fi
fi
valgrind_suites build-ci valgrind

# 2. build-asan's suites in the background; meanwhile the 1.0 trees build.
if [ "$quick" = no ]; then
    # What the background build has not done yet is built now at the ordinary priority
    # (ninja, stopped, removes the outputs of the commands it cut short).
    if [ -n "${prebuild_pid:-}" ]; then
        kill -TERM "$prebuild_pid" 2>/dev/null
        wait "$prebuild_pid"
    fi
    # shellcheck disable=SC2086 # one option a word
    build_tree build-asan $asan && in_background asan test_asan build-asan
fi

wait_mhd10
if [ -n "$mhd10" ]; then
    # shellcheck disable=SC2086 # one option a word
    [ "$quick" = yes ] || build_nice=yes
    # shellcheck disable=SC2086 # one option a word
    if [ "$quick" = no ] &&
        build_tree build-asan-mhd10 $asan "-Dpkg_config_path=$mhd10"; then
        # shellcheck disable=SC2046 # one option a word
        in_background asan_mhd10 test_asan build-asan-mhd10 $(skip_same build-asan-mhd10)
    fi
    # The fuzz targets are left out here: see skip_same.
    if build_tree build-ci-mhd10 -Dwerror=true -Dfuzz=false "-Dpkg_config_path=$mhd10"; then
        echo "ok build-ci-mhd10/build" >>"$results"
        # shellcheck disable=SC2046 # one option a word
        [ "$quick" = no ] || test_tree build-ci-mhd10 $(skip_same build-ci-mhd10)
        # Valgrind ran the in-process suites on the first build only, for the reason
        # skip_same gives. A program of theirs that links libmicrohttpd runs again here.
        linked=$(mhd_linked build-ci-mhd10 unit gateway abi)
        if [ -n "$linked" ]; then
            # shellcheck disable=SC2086 # one test name a word
            valgrind_suites build-ci-mhd10 valgrind-mhd10 $linked
        fi
    fi
fi
[ "$quick" = yes ] || step clang-format sh -c 'git ls-files "*.c" "*.h" | xargs clang-format --dry-run --Werror'
join asan
join asan_mhd10

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
