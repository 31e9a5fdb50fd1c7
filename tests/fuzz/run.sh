#!/usr/bin/env bash
# run.sh SECONDS [TARGET...] -- builds the libFuzzer targets (clang, ASan and
# UBSan, -DAW_FUZZ=ON) in build/fuzz and runs each for SECONDS, one after the
# other (the machine is shared), from its committed seeds in
# tests/fuzz/corpus/<target>/. TARGETs are names like `json` or `audit`;
# default: all. What a run learns goes to build/fuzz/corpus/<target>/ (the
# seeds are never written to), its log to build/fuzz/logs/<target>.log.
#
# Exit status is non-zero if any target found anything (a crash, a sanitizer
# report, a leak, a timeout, or one of the harness's own checks): the input
# is kept in build/fuzz/findings/<target>/ and the command that reproduces
# it is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2; exit 2; }
[ $# -ge 1 ] && [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ] || usage
seconds=$1
shift
all=(json audit revocation raw_entry time bundle call dead_letter)
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "tests/fuzz/run.sh: no target $t" >&2; usage; }
done
command -v clang >/dev/null || {
    echo "tests/fuzz/run.sh: clang is needed (apt-get install clang)" >&2; exit 1; }

dir=build/fuzz
echo "== fuzz build ($dir)" >&2
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DAW_FUZZ=ON -DAW_TESTS=OFF >/dev/null
cmake --build "$dir" --target aw_fuzz -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
    corpus=$dir/corpus/$t findings=$dir/findings/$t log=$dir/logs/$t.log
    mkdir -p "$corpus" "$findings" "$(dirname "$log")"
    echo "== fuzz_$t for ${seconds}s" >&2
    status=0
    "$dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$findings/" \
        "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1 || status=$?
    # the last status line: "#<runs> DONE cov: <edges> ft: <features> ..."
    done_line=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    echo "fuzz_$t: ${done_line:-no status line}" >&2
    if [ $status -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|fuzz: |runtime error' "$log" | head -20 >&2 || true
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "tests/fuzz/run.sh: fuzz_$t FOUND something (log: $log)" >&2
        if [ -n "$artifact" ]; then
            echo "  input:     $artifact" >&2
            echo "  reproduce: $dir/tests/fuzz/fuzz_$t $artifact" >&2
        fi
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "tests/fuzz/run.sh: findings in: ${failed[*]}" >&2
    exit 1
fi
echo "tests/fuzz/run.sh: no findings in ${targets[*]} (${seconds}s each)" >&2
