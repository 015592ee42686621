#!/usr/bin/env bash
# tests/xcheck/random_formats.sh — a randomized cross-check of the data tools: N random
# corpora and options from a seed (tests/xcheck/random_formats.py, whose header lists what
# it draws), each run through dr-tokenize (byte, gpt2, --train-bpe), dr-split, dr-cat and
# dr-filter and checked against formats_ref.py, as formats.sh checks its fixed inputs. Not
# part of make test or CI.
#
#   tests/xcheck/random_formats.sh                     # 100 cases from seed 1 (about 1 min)
#   XCHECK_CASES=500 XCHECK_SEED=7 tests/xcheck/random_formats.sh
#   make xcheck-formats-random XCHECK_CASES=500 XCHECK_SEED=7
#   tests/xcheck/random_formats.py --seed 7 --only 42 --keep --verbose    # one case again
#   XCHECK_BIN=DIR: another build's tools
# Exit 0 when all pass, 1 on a FAIL or error, 77 when /usr/bin/python3 (or $XCHECK_PYTHON)
# cannot import zstandard, xxhash, numpy.
source "$(dirname "$0")/prelude.bash"
D=$(realpath -m "${XCHECK_BIN:-$ROOT/bin}")
xcheck_setup xcheck-formats-random "zstandard xxhash numpy" "$D" dr-tokenize dr-split dr-cat dr-filter
exec "$PY" "$ROOT/tests/xcheck/random_formats.py" --bin "$D" --workdir "$W/cases" \
    --seed "${XCHECK_SEED:-1}" --cases "${XCHECK_CASES:-100}" ${KEEP:+--keep}
