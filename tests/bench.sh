#!/usr/bin/env bash
# make bench: every benchmark, one after another, each printing its numbers and
# ratios (never pass/fail: DESIGN §8). Run on a quiet machine: other load on the two
# cores changes every number. BENCH_ONLY=name runs just one (e.g. BENCH_ONLY=lm).
set -u
cd "$(dirname "$0")/.."
B=build/float/bench
run() {  # name, command...
    local name=$1; shift
    [ -n "${BENCH_ONLY:-}" ] && [ "$BENCH_ONLY" != "$name" ] && return 0
    echo "=== $name: $*"
    "$@" || echo "(bench $name exited with status $?)"
    echo
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
run tokenizer $B/bench_tokenizer
run split     $B/bench_split 20
run ops       $B/bench_ops
run lm        $B/bench_lm
# the same model in PyTorch, for bench_lm's ratios (needs Debian's python3-torch:
# DR_XCHECK=1 scripts/install-deps.sh; about 80 s)
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    run torch /usr/bin/python3 tests/bench/torch_lm.py
else
    [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = torch ] && echo "=== torch: not run: /usr/bin/python3 cannot import torch (DR_XCHECK=1 scripts/install-deps.sh)" && echo
fi
[ -x $B/bench_score ] && run score $B/bench_score
run meta      $B/bench_meta
[ -x tests/bench/mpi.sh ] && run mpi bash tests/bench/mpi.sh
exit 0
