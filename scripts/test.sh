#!/bin/sh
# Run the whole csgi test suite: a -Werror build, an ASan+UBSan build, the
# clang-format check and the fuzz smoke run. Installs missing Debian packages.
# Ends with "N passed, N failed" and exits non-zero on any failure.
# Usage: scripts/test.sh [--quick]   (--quick: the -Werror build only)
set -u
cd "$(dirname "$0")/.."

scripts/deps.sh --test || { echo "0 passed, 1 failed"; exit 1; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
fail_steps=0

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
        meson setup "$dir" "$@" >/dev/null || { echo "FAIL setup-$dir" >>"$results"; return; }
    else
        meson configure "$dir" "$@" >/dev/null
    fi
    if ! ninja -C "$dir"; then
        echo "FAIL build-$dir" >>"$results"
        return
    fi
    rm -f "$dir/meson-logs/testlog.json"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "--timeout-multiplier=${TIMEOUT_MULT:-1}"
    python3 scripts/count-tests.py "$dir/meson-logs/testlog.json" "$dir" >>"$results"
}

run_suite build-ci -Dwerror=true -Dfuzz=true
# The in-process suites once more under valgrind memcheck (leaks are errors).
rm -f build-ci/meson-logs/testlog-valgrind.json
meson test -C build-ci --setup valgrind --suite unit --suite gateway --suite abi \
    --print-errorlogs --num-processes 2
python3 scripts/count-tests.py build-ci/meson-logs/testlog-valgrind.json valgrind >>"$results"
if [ "${1:-}" != "--quick" ]; then
    TIMEOUT_MULT=3 run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true
    step clang-format sh -c 'git ls-files "*.c" "*.h" | xargs clang-format --dry-run --Werror'
fi

passed=$(grep -c '^ok' "$results" || true)
failed=$(grep -c '^FAIL' "$results" || true)
grep '^FAIL' "$results" >&2 || true
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
