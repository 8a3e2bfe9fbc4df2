#!/usr/bin/env bash
# Runs every test: unit (cmocka), the fuzz targets briefly (tests/fuzz), then
# integration against real Redis,
# PostgreSQL and RabbitMQ started privately by compose/services.sh (test
# profile: its own state folder and ports, beside any `make up` stack).
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
#   PLACE_BIN   folder of place-api/place-worker (default bin; test-asan: build/asan/bin)
#   PLACE_UNIT  folder of unit test binaries (default build/release/tests)
#   KEEP_SERVICES=1 leaves the test services running afterwards
set -uo pipefail
cd "$(dirname "$0")/.."
export PLACE_BIN=${PLACE_BIN:-bin}
UNIT=${PLACE_UNIT:-build/release/tests}
OUT=tests/out
mkdir -p "$OUT"
rm -f "$OUT"/*.log
PY=/usr/bin/python3
passed=0
failed=0

count() { # LOGFILE: adds the "N passed, N failed" line of a runner
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    if [[ -z $line ]]; then
        echo "!! $1: no summary line (runner crashed?)"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(awk '{print $1}' <<<"$line")))
    failed=$((failed + $(awk '{print $3}' <<<"$line")))
}

echo "== unit tests"
for t in "$UNIT"/test_*; do
    [[ -x $t ]] || continue
    name=$(basename "$t")
    if "$t" >"$OUT/$name.log" 2>&1; then rc=0; else rc=$?; fi
    p=$(grep -oE '\[  PASSED  \] [0-9]+' "$OUT/$name.log" | awk '{s+=$NF} END {print s+0}')
    f=$(grep -oE '\[  FAILED  \] [0-9]+' "$OUT/$name.log" | awk '{s+=$NF} END {print s+0}')
    if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    printf '%-28s %3d passed, %d failed\n' "$name" "$p" "$f"
    [[ $f -eq 0 ]] || sed -n '1,200p' "$OUT/$name.log" | grep -E 'FAIL|ERROR|error|Assert' | head -20
done

echo "== fuzz targets, ${FUZZ_SMOKE_SECONDS:-10} s each (make fuzz runs them longer)"
tests/fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-10}" 2>&1 | tee "$OUT/fuzz.log"
count "$OUT/fuzz.log"

echo "== services (test profile)"
if ! compose/services.sh start --profile test; then
    echo "cannot start the test services"
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi
stop_services() { [[ ${KEEP_SERVICES:-0} == 1 ]] || compose/services.sh stop --profile test >/dev/null 2>&1; }
trap stop_services EXIT

echo "== integration tests"
for t in tests/integration/test_*.py; do
    name=$(basename "$t" .py)
    timeout 900 "$PY" "$t" 2>&1 | tee "$OUT/$name.log"
    count "$OUT/$name.log"
done

echo "== browser tests"
# playwright-core from the lock file: npm ci when node_modules is missing or
# was installed from another lock; Debian's Chromium (compose/deps.sh)
BR=tests/browser
lock_sha=$(sha256sum "$BR/package-lock.json" | cut -d' ' -f1)
if [[ ! -d $BR/node_modules/playwright-core || $(cat "$BR/node_modules/.place-lock-sha" 2>/dev/null) != "$lock_sha" ]]; then
    if (cd "$BR" && npm ci --no-audit --no-fund --loglevel=error) >"$OUT/browser-npm.log" 2>&1; then
        echo "$lock_sha" >"$BR/node_modules/.place-lock-sha"
    else
        echo "!! npm ci in $BR failed: see $OUT/browser-npm.log"
    fi
fi
timeout 600 node "$BR/run.mjs" 2>&1 | tee "$OUT/browser.log"
count "$OUT/browser.log"

# a sanitizer report in any log is a failure even when the test itself passed
san=$(grep -l -E 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$OUT"/*.log "$OUT"/browser/*.log 2>/dev/null)
if [[ -n $san ]]; then
    echo "!! sanitizer reports in: $san"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
