#!/usr/bin/env bash
# tests/xcheck/random.sh — a randomized cross-check: N random configurations from a seed
# (tests/xcheck/random_cases.py, whose header lists what it draws), each checked against the
# float64 PyTorch reference as run.sh checks its fixed ones. Not part of make test or CI.
#
#   tests/xcheck/random.sh                      # 20 cases from seed 1 (about a minute)
#   XCHECK_CASES=200 XCHECK_SEED=7 tests/xcheck/random.sh
#   make xcheck-random XCHECK_CASES=200 XCHECK_SEED=7
#   tests/xcheck/random_cases.py --seed 7 --only 42 --keep --verbose    # one case again
#   XCHECK_BIN=DIR: another build's double tools; XCHECK_KINDS=grad,train: some checks only
# Exit 0 when all pass (failures that the conditioning probe attributes to the
# configuration's own roundoff sensitivity are listed, not counted), 1 on a FAIL, 77 when
# /usr/bin/python3 (or $XCHECK_PYTHON) cannot import torch.
source "$(dirname "$0")/prelude.bash"
D=$(realpath -m "${XCHECK_BIN:-$ROOT/build/double/bin}")
xcheck_setup xcheck-random "torch numpy yaml" "$D" dr-train dr-meta dr-score dr-cat dr-split dr-tokenize
exec "$PY" "$ROOT/tests/xcheck/random_cases.py" --bin "$D" --workdir "$W/cases" \
    --seed "${XCHECK_SEED:-1}" --cases "${XCHECK_CASES:-20}" \
    --kinds "${XCHECK_KINDS:-grad,score,lmscore,eval,train,scratch,meta}" ${KEEP:+--keep}
