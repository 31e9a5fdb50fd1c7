#!/usr/bin/env bash
# run.sh -- installs what is missing, then builds auditwatch twice and runs
# every test in both builds: a plain build, and a Debug one (assertions on)
# with AddressSanitizer and UndefinedBehaviorSanitizer where any leak or
# undefined behaviour fails the test. Integration tests start their own redis-server on a free loopback
# port. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/install-deps.sh
aw_install_deps test

jobs=$(nproc 2>/dev/null || echo 2)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One house style (.clang-format), checked before anything is built.
echo "== format check" >&2
if ! find event store detectors consumer cli bench tests -name '*.[ch]' -print0 |
    xargs -0 clang-format --dry-run --Werror; then
    echo "tests/run.sh: files differ from .clang-format (apply: clang-format -i FILE)" >&2
    exit 1
fi

for variant in plain sanitize; do
    dir=build/test-$variant
    # The sanitizer build is a Debug build, so assert() runs under test.
    sanitize=OFF type=RelWithDebInfo
    [ $variant = sanitize ] && sanitize=ON type=Debug
    echo "== $variant build" >&2
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type -DAW_SANITIZE=$sanitize >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
    echo "== $variant tests" >&2
    log=$dir/ctest.log
    # -V keeps every test's output in the log: Criterion passes a test even
    # when the sanitizer reported at its worker's exit, so we read the
    # reports ourselves.
    status=0
    ctest --test-dir "$dir" -j1 -V >"$log" 2>&1 || status=$?
    grep -E '^ *[0-9]+/[0-9]+ Test +#' "$log" || true
    if grep -qE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$log"; then
        grep -nE -A12 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$log" | head -80 >&2
        echo "tests/run.sh: sanitizer reports in the $variant run (full log: $log)" >&2
        status=1
    fi
    if [ $status -ne 0 ]; then
        grep -nE -B2 -A20 '\[FAIL\]|\*\*\*Failed|\*\*\*Timeout|Exception' "$log" | head -200 >&2 || true
        echo "tests/run.sh: $variant run failed (full log: $log)" >&2
        exit 1
    fi
    sed -n '/tests passed/,$p' "$log"
done

# The fuzzers (tests/fuzz/run.sh, clang, own build dir): a short bounded run
# of every decoder's target; any finding fails the run.
echo "== fuzz (${AW_FUZZ_SECONDS:-10}s per target)" >&2
tests/fuzz/run.sh "${AW_FUZZ_SECONDS:-10}"

# One closing line over both builds, in the plain form CI reads.
total=0
for variant in plain sanitize; do
    n=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' build/test-$variant/ctest.log)
    total=$((total + ${n:-0}))
done
echo "tests: $total passed, 0 failed"
