#!/usr/bin/env bash
# Runs every test: compiled unit tests (float), gradient checks (double), CLI scripts.
# Prints one line per test and closes with "N passed, N failed".
# DR_TEST_CLI="name ..." (CI's second compiler pass) runs only those CLI scripts; each
# other one gets a "not run" line and the closing line counts them.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0; failed=(); notrun=()
run_one() {  # name, command...
    local name=$1; shift
    local log; log=$(mktemp)
    local t0=$SECONDS
    if "$@" >"$log" 2>&1; then
        pass=$((pass + 1)); printf '  ok    %-40s %3ds\n' "$name" $((SECONDS - t0))
    else
        fail=$((fail + 1)); failed+=("$name")
        printf '  FAIL  %-40s %3ds\n' "$name" $((SECONDS - t0)); sed 's/^/        /' "$log" | tail -n 30
    fi
    rm -f "$log"
}
# BUILD_ROOT (make's, default build): where the float and double builds are; the CLI
# tests then take the libdr.a and double tools from there too
R=${BUILD_ROOT:-build}
export LIBDR=${LIBDR:-$R/float/libdr.a} DBIN=${DBIN:-$R/double/bin}
for t in "$R"/float/tests/*; do [ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"; done
for t in "$R"/double/grad/*; do [ -x "$t" ] && run_one "grad/$(basename "$t")" "$t"; done
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    if [ -n "${DR_TEST_CLI:-}" ] && [[ " $DR_TEST_CLI " != *" $n "* ]]; then
        notrun+=("cli/$n"); printf '  ----  %-40s not run (not in DR_TEST_CLI)\n' "cli/$n"
        continue
    fi
    run_one "cli/$n" bash "$t"
done
if [ -n "${DR_TEST_CLI:-}" ]; then   # a name that matches no script is a typo, not a pass
    for n in $DR_TEST_CLI; do
        [ -f "tests/cli/$n.sh" ] || { fail=$((fail + 1)); failed+=("cli/$n (no such script)"); }
    done
fi
echo
[ $fail -gt 0 ] && printf 'failed: %s\n' "${failed[*]}"
if [ ${#notrun[@]} -gt 0 ]; then
    echo "$pass passed, $fail failed, ${#notrun[@]} not run (DR_TEST_CLI): ${notrun[*]}"
else
    echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
