#!/usr/bin/env bash
# run.sh -- installs what is missing, then builds auditwatch twice and runs
# every test in both builds: a plain build, and one with AddressSanitizer and
# UndefinedBehaviorSanitizer where any leak or undefined behaviour fails the
# test. Integration tests start their own redis-server on a free loopback
# port. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/install-deps.sh
aw_install_deps test

jobs=$(nproc 2>/dev/null || echo 2)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for variant in plain sanitize; do
    dir=build/test-$variant
    sanitize=OFF; [ $variant = sanitize ] && sanitize=ON
    echo "== $variant build" >&2
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_SANITIZE=$sanitize >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
    echo "== $variant tests" >&2
    ctest --test-dir "$dir" --output-on-failure -j1
done
