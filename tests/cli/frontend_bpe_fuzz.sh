#!/usr/bin/env bash
# frontend_bpe_fuzz.sh — dr-tokenize --tokenizer gpt2 + dr-cat --ids against an
# independent GPT-2 encoder (tests/cli/frontend_bpe_fuzz.py: the `regex` module's
# pre-tokenizer, tiktoken's merge rule) on generated adversarial text: every Unicode
# general category, combining marks, CJK, emoji with ZWJ and skin tones, Unicode
# whitespace, contractions in odd case, other scripts' digits, long runs of spaces,
# long words, whitespace-only texts. Needs a python3 with `regex` (scripts/install-deps.sh
# installs Debian's python3-regex when neither python3 on the PATH nor /usr/bin/python3
# has it) and data/gpt2 (`make vocab`); without them the test fails, it is never skipped.
# Fixed seeds: the same cases every run.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-cat
PY=tests/cli/frontend_bpe_fuzz.py

python3() {   # the first python3 that has `regex`
    local p
    for p in "$(type -P python3)" /usr/bin/python3; do
        if [ -x "$p" ] && "$p" -c 'import regex' 2>/dev/null; then "$p" "$@"; return; fi
    done
    echo "frontend_bpe_fuzz.sh: no python3 with the regex module (scripts/install-deps.sh installs python3-regex)" >&2
    return 1
}
export -f python3
if ! python3 -c 'import regex' || [ ! -f "${DR_DATA:-data}/gpt2/encoder.json" ]; then
    fail "python3 with regex and ${DR_DATA:-data}/gpt2/encoder.json (make vocab) are needed"
    finish
    exit 1
fi
check "the reference reproduces tests/data/gpt2_reference.tsv" \
    python3 "$PY" selfcheck "${DR_DATA:-data}/gpt2" tests/data/gpt2_reference.tsv
for seed in 1 2; do
    check "seed $seed: generate" bash -c "python3 '$PY' gen $seed 1500 600 >'$TMP/c$seed.jsonl'"
    check "seed $seed: dr-tokenize" bash -c "'$BIN/dr-tokenize' --tokenizer gpt2 -o '$TMP/s$seed' '$TMP/c$seed.jsonl' >/dev/null 2>&1"
    check "seed $seed: dr-cat --ids" bash -c "'$BIN/dr-cat' --ids '$TMP/s$seed' >'$TMP/i$seed.txt'"
    check "seed $seed: ids equal the reference's" python3 "$PY" check "${DR_DATA:-data}/gpt2" "$TMP/c$seed.jsonl" "$TMP/i$seed.txt"
    check "seed $seed: text round trip" bash -c "'$BIN/dr-cat' --jsonl '$TMP/s$seed' | python3 -c '
import json, sys
want = [json.loads(l)[\"text\"] for l in open(sys.argv[1])]
got = [json.loads(l)[\"text\"] for l in sys.stdin]
sys.exit(want != got)' '$TMP/c$seed.jsonl'"
done
finish
