# helpers.bash — sourced by the CLI tests (tests/cli/*.sh; this file is not a test).
# Runs from the repository root against $BIN (default bin/); builds the test-only
# shard maker tests/cli/mkshard.c against libdr.a; counts failures; cleans up.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${BIN:-bin}
[ -d data/gpt2 ] && export DR_DATA=${DR_DATA:-$PWD/data}   # the gpt2 vocabulary, whatever BIN is
unset DR_PROGRESS_INTERVAL   # progress lines every 10 s, whatever the caller's: a check that wants them sets it
LIBDR=${LIBDR:-${BUILD_ROOT:-build}/float/libdr.a}
TMP=$(mktemp -d "$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo /tmp )/drcli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

fail() { failures=$((failures + 1)); echo "FAIL: $*" >&2; }
check() {  # check "description" command...: the command must succeed
    local what=$1; shift
    checks=$((checks + 1))
    "$@" || fail "$what"
}
# expect_error "description" PATTERN command...: must exit non-zero with exactly one
# line on stderr that matches PATTERN (grep -E), and leave no *.tmp.* file in $TMP.
expect_error() { expect_failure one "$@"; }
# expect_stop "description" PATTERN command...: a run that fails after it started: exit
# status not 0, the last line on stderr (after the progress lines) matches PATTERN, and
# no *.tmp.* file is left in $TMP
expect_stop() { expect_failure last "$@"; }
expect_failure() {  # one|last, then as above
    local lines=$1 what=$2 pattern=$3; shift 3
    checks=$((checks + 1))
    local rc=0
    "$@" >"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
    if [ $rc -eq 0 ]; then fail "$what: exit status 0"; return; fi
    if [ "$lines" = one ] && [ "$(wc -l <"$TMP/stderr")" -ne 1 ]; then fail "$what: not one line on stderr:"; cat "$TMP/stderr" >&2; return; fi
    local msg; msg=$(tail -n 1 "$TMP/stderr")
    if ! grep -Eq -- "$pattern" <<< "$msg"; then fail "$what: message '$msg' lacks /$pattern/"; return; fi
    if [ -n "$(find "$TMP" -name '*.tmp.*' -print -quit)" ]; then fail "$what: left a temporary file"; fi
}
finish() {
    echo "$(basename "$0"): $checks checks, $failures failed"
    [ $failures -eq 0 ]
}

MKSHARD=$TMP/mkshard
"${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -Ilib tests/cli/mkshard.c "$LIBDR" -lzstd -lxxhash -lyaml -lopenblas -lm \
   -lpthread -fopenmp -o "$MKSHARD" || { echo "cannot build mkshard" >&2; exit 1; }
for tool in "$@"; do
    [ -x "$BIN/$tool" ] || { echo "missing $BIN/$tool: run make first" >&2; exit 1; }
done
