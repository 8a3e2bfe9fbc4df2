#!/usr/bin/env bash
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
# Runs each libFuzzer target (build/fuzz/fuzz_*, `make fuzz-bins`) for
# SECONDS (default 60) from its seeds (tests/fuzz/seeds/<target>, plus the
# JSONTestSuite files for the JSON parsers) and the corpus it grew before
# (tests/out/fuzz/<target>/corpus, git-ignored). A crash, leak, UB report,
# timeout (> 2 s per input) or running out of memory (512 MB) fails the
# target and leaves the input in tests/out/fuzz/<target>/. Each target's
# final stats go to tests/out/fuzz/<target>.log. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
    for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
JSON=../shared/data/jsontestsuite/test_parsing
passed=0
failed=0
for t in "${targets[@]}"; do
    bin=build/fuzz/$t
    out=tests/out/fuzz/$t
    mkdir -p "$out/corpus"
    dirs=("$out/corpus" "tests/fuzz/seeds/${t#fuzz_}")
    [[ $t == fuzz_ws_message || $t == fuzz_rest_body ]] && [[ -d $JSON ]] && dirs+=("$JSON")
    if [[ ! -x $bin ]]; then
        echo "!! $bin missing (make fuzz-bins)"
        failed=$((failed + 1))
        continue
    fi
    if "$bin" "${dirs[@]}" -max_total_time="$secs" -timeout=2 -rss_limit_mb=512 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/" >"$out.log" 2>&1; then
        passed=$((passed + 1))
        stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$out.log" |
            sed 's/^stat:://' | tr -s ' ' | tr '\n' ' ')
        cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$out.log" | tail -n 1)
        printf 'ok   %-20s %ss: %s%s\n' "$t" "$secs" "$stats" "${cov:+($cov)}"
    else
        failed=$((failed + 1))
        echo "FAIL $t: see $out.log"
        grep -E 'ERROR|runtime error|invariant failed|Test unit written' "$out.log" | head -5
    fi
done
echo "$passed passed, $failed failed"
((failed == 0))
