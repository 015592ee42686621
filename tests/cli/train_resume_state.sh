#!/usr/bin/env bash
# train_resume_state.sh — dr-train --resume reads the counters of its *.state strictly
# (as dr-meta --resume does since 49ba0e5): a run stopped at step 3 of 6 leaves a
# checkpoint + .state; every counter of the .state is then damaged in one way at a time
# (junk after the digits, a sign, a fraction, an empty string, an overflow, a missing
# field, a value out of range, counters that contradict each other or the checkpoint)
# and --resume must
#  - exit non-zero with exactly one line on stderr that names the .state (or the
#    checkpoint) and the field, within `timeout 20`;
#  - leave the checkpoint, the .state and the metrics log byte for byte as they were;
# while the untouched .state resumes to the very log and model of an uninterrupted run,
# and a .state of an earlier version (without the optional fields) still resumes.
# Crafted .state files need python3 (as bad_inputs.sh): without it only the cases that
# need no editing run.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
for tool in dr-tokenize dr-split dr-train; do
    [ -x "$BIN/$tool" ] || { echo "missing $BIN/$tool: run make first" >&2; exit 1; }
done
TMP=$(mktemp -d "$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo /tmp )/drresume.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
checks=0
failures=0
fail() { failures=$((failures + 1)); echo "FAIL: $*" >&2; }
# A log without its wall-clock field, for byte comparison (as train.sh).
strip_seconds() { sed 's/,"seconds":[^,}]*//' "$1"; }

# ---- a corpus, an uninterrupted run and a run stopped at step 3 of 6 -------------------
tests/data/gen_corpus.sh "$TMP" 120
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/shards" "$TMP/corpus.jsonl" >/dev/null 2>&1 \
    || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.15 --seed 1 -o "$TMP/splits" "$TMP/shards" > "$TMP/manifest.tsv" 2>/dev/null \
    || { echo "dr-split failed" >&2; exit 1; }
M=$TMP/manifest.tsv
RUN=(--config configs/tiny.yaml --set experiment.threads=1 --set train.eval_every=2 --steps 6)
"$BIN/dr-train" "${RUN[@]}" --log "$TMP/full.jsonl" -o "$TMP/full.safetensors" "$M" 2>"$TMP/setup.err" \
    || { cat "$TMP/setup.err" >&2; echo "dr-train failed" >&2; exit 1; }
"$BIN/dr-train" "${RUN[@]}" --stop-at 3 --log "$TMP/half.jsonl" -o "$TMP/half.safetensors" "$M" 2>"$TMP/setup.err" \
    || { cat "$TMP/setup.err" >&2; echo "dr-train --stop-at failed" >&2; exit 1; }
LM=$TMP/half.safetensors
ST=$LM.state
LOG=$TMP/half.jsonl
[ -s "$LM" ] && [ -s "$ST" ] && [ -s "$LOG" ] || { echo "no checkpoint, .state or log after --stop-at 3" >&2; exit 1; }
# the state's token count (inside the escaped JSON of its header: tokens\":353)
TOK=$(grep -ao 'tokens\\":[0-9]*' "$ST" | head -n 1 | grep -o '[0-9]*$')
[ -n "$TOK" ] || { echo "no token count in $ST" >&2; exit 1; }

# ---- crafted .state files ----------------------------------------------------------------
# st_edit IN OUT "MODE ARGS": queues a safetensors file with one thing changed (st_apply
# makes them all in one python3 run), MODE ARGS split at spaces, the last argument taking
# the rest of the line: meta KEY VALUE (an entry of __metadata__ set to VALUE; "…": the
# JSON string), metajson KEY FIELD [VALUE] (FIELD of the JSON object in metadata KEY
# removed, or set to VALUE: JSON, else a string), metadrop KEY FIELD... (fields removed).
st_edit() {
    local src=$1 dst=$2 mode=${3%% *} a b c rest
    case $mode in   # the last argument takes the rest of the line
        meta) read -r _ a b <<< "$3"; printf '%s\t%s\t%s\t%s\t%s\n' "$src" "$dst" meta "$a" "$b" ;;
        metajson) read -r _ a b c <<< "$3"
            if [ -n "$c" ]; then printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$src" "$dst" metajson "$a" "$b" "$c"
            else printf '%s\t%s\t%s\t%s\t%s\n' "$src" "$dst" metajson "$a" "$b"; fi ;;
        metadrop) read -r -a rest <<< "$3"; (IFS=$'\t'; printf '%s\t%s\t%s\n' "$src" "$dst" "${rest[*]}") ;;
        *) echo "st_edit: unknown mode $mode" >&2; return 1 ;;
    esac >> "$TMP/edits.tsv"
}
st_apply() { python3 tests/cli/st_edit.py "$TMP/edits.tsv"; }
B=$TMP/bad; mkdir -p "$B"
HAVE_PY=0; command -v python3 >/dev/null && HAVE_PY=1
[ $HAVE_PY = 1 ] || echo "no python3: the crafted .state cases are skipped"

# name|MODE|ARGS (tab-separated for st_edit)|PATTERN (grep -E) of the one stderr line.
# S: "dr-train: --resume: <the .state>: missing or malformed training counters in its metadata: "
S='^dr-train: --resume: [^ ]*/res\.safetensors\.state: missing or malformed training counters in its metadata: '
CASES=(
    "step_junk|metajson datarater step 2junk|$S\"step\" is \"2junk\", not a count"
    "step_neg|metajson datarater step -3|$S\"step\" is -3, not a count"
    "step_frac|metajson datarater step 2.5|$S\"step\" is 2\.5, not a count"
    "step_huge|metajson datarater step 99999999999999999999|$S\"step\" is 1e\+20, not a count"
    "step_empty|metajson datarater step \"\"|$S\"step\" is \"\", not a count"
    "step_missing|metajson datarater step|$S\"step\" is missing$"
    "step_past_total|metajson datarater step 7|$S\"step\" 7 is beyond \"total_steps\" 6$"
    "total_zero|metajson datarater total_steps 0|$S\"total_steps\" is 0"
    "total_string|metajson datarater total_steps \"6\"|$S\"total_steps\" is \"6\", not a count"
    "tokens_neg|metajson datarater tokens -1|$S\"tokens\" is -1, not a count"
    "tokens_junk|metajson datarater tokens ${TOK}junk|$S\"tokens\" is \"${TOK}junk\", not a count"
    "tokens_huge|metajson datarater tokens 99999999999999999999|$S\"tokens\" is 1e\+20, not a count"
    "tokens_other|metajson datarater tokens $((TOK + 1))|^dr-train: --resume: [^ ]*/res\.safetensors counts $TOK tokens but [^ ]*/res\.safetensors\.state \(\"tokens\"\) $((TOK + 1)): "
    "acc_n_past_step|metajson datarater acc_n 4|$S\"acc_n\" 4 .*is beyond \"step\" 3$"
    "acc_n_neg|metajson datarater acc_n -1|$S\"acc_n\" is -1, not a count"
    "acc_sum_nan|metajson datarater acc_sum nan|$S\"acc_sum\" is \"nan\", not a finite number"
    "acc_sum_empty|metajson datarater acc_sum \"\"|$S\"acc_sum\" is \"\", not a finite number"
    "acc_sum_junk|metajson datarater acc_sum 0x1p+4junk|$S\"acc_sum\" is \"0x1p\+4junk\", not a finite number"
    "cursor_junk|metajson datarater data_cursor 2junk|$S\"data_cursor\" is \"2junk\", not a count"
    "cursor_neg|metajson datarater data_cursor \"-1\"|$S\"data_cursor\" is \"-1\", not a count"
    "cursor_empty|metajson datarater data_cursor \"\"|$S\"data_cursor\" is \"\", not a count"
    "cursor_huge|metajson datarater data_cursor \"99999999999999999999\"|$S\"data_cursor\" is \"99999999999999999999\", not a count"
    "cursor_past_end|metajson datarater data_cursor \"999999\"|$S\"data_cursor\" 999999 is not below \"data_examples\" [0-9]+$"
    "cursor_missing|metajson datarater data_cursor|$S\"data_cursor\" is missing$"
    "epoch_space|metajson datarater data_epoch \" 0\"|$S\"data_epoch\" is \" 0\", not a count"
    "epoch_plus|metajson datarater data_epoch \"+0\"|$S\"data_epoch\" is \"\+0\", not a count"
    "seed_number|metajson datarater data_seed 0|$S\"data_seed\" is 0, not a count"
    "examples_zero|metajson datarater data_examples \"0\"|$S\"data_examples\" is 0"
    "seconds_neg|metajson datarater seconds -5|$S\"seconds\" is -5, not a time"
    "seconds_junk|metajson datarater seconds fast|$S\"seconds\" is \"fast\", not a time"
    "flops_neg|metajson datarater flops_lm \"-0x1p+26\"|$S\"flops_lm\" is \"-0x1p\+26\", not a finite non-negative number"
    "flops_junk|metajson datarater flops_lm junk|$S\"flops_lm\" is \"junk\", not a finite non-negative number"
    "cur_n_neg|metajson datarater cur_n0 -2|$S\"cur_n0\" is -2, not a count"
    "keep_two|metajson datarater online_keep 0x1p+1|$S\"online_keep\" is 0x1p\+1, not a keep fraction"
    "key_junk|metajson datarater curation_key xyz|$S\"curation_key\" is \"xyz\", not a hash"
    "curation_number|metajson datarater curation 7|$S\"curation\" is 7, not a curation mode"
    "meta_not_object|meta datarater [1]|$S\"datarater\" is not a JSON object"
    "meta_not_json|meta datarater {\"step\":3,|$S\"datarater\" is not JSON \(offset [0-9]+: "
    "optstep_empty|meta step \"\"|^dr-train: --resume: [^ ]*/res\.safetensors\.state: bad or missing \"step\" in __metadata__ \(\"\", not a count\)$"
    "optstep_plus|meta step +3|^dr-train: --resume: [^ ]*/res\.safetensors\.state: bad or missing \"step\" in __metadata__ \(\"\+3\", not a count\)$"
    "optstep_huge|meta step 99999999999999999999|^dr-train: --resume: [^ ]*/res\.safetensors\.state: bad or missing \"step\" in __metadata__ \(\"99999999999999999999\", not a count\)$"
    "optstep_other|meta step 4|^dr-train: --resume: [^ ]*/res\.safetensors\.state: \"step\" is 4 in __metadata__ \(the optimizer's\) but 3 in the training counters$"
)
if [ $HAVE_PY = 1 ]; then
    for c in "${CASES[@]}"; do
        IFS='|' read -r name edit _ <<< "$c"
        st_edit "$ST" "$B/$name.state" "$edit"
    done
    # the LM checkpoint's own counters (its "datarater" metadata), and a .state of an
    # earlier version: none of the optional fields
    st_edit "$LM" "$B/lm_step_neg.safetensors" "metajson datarater step -1"
    st_edit "$LM" "$B/lm_tokens_junk.safetensors" "metajson datarater tokens 12junk"
    st_edit "$ST" "$B/old.state" "metadrop datarater seconds flops_lm flops_rater cur_sum0 cur_sum1 cur_n0 cur_n1 \
curation online_keep curation_key"
    st_apply || { echo "st_apply failed" >&2; exit 1; }
fi

# resume_case "what" PATTERN LM STATE [options]: resume copies of LM + STATE (+ the log),
# refused with one line matching PATTERN; the three files stay as they were.
resume_case() {
    local what=$1 pat=$2 lm=$3 state=$4; shift 4
    cp "$lm" "$TMP/res.safetensors"
    cp "$state" "$TMP/res.safetensors.state"
    cp "$LOG" "$TMP/res.jsonl"
    checks=$((checks + 1))
    local rc=0
    timeout 20 "$BIN/dr-train" "${RUN[@]}" "$@" --resume --log "$TMP/res.jsonl" -o "$TMP/res.safetensors" "$M" \
        >"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
    if [ $rc -eq 0 ]; then fail "$what: exit status 0"
    elif [ $rc -ge 124 ]; then fail "$what: exit status $rc (a hang or a crash)"; cat "$TMP/stderr" >&2
    elif [ "$(wc -l < "$TMP/stderr")" -ne 1 ]; then fail "$what: not one line on stderr:"; cat "$TMP/stderr" >&2
    elif ! grep -Eq -- "$pat" "$TMP/stderr"; then fail "$what: message '$(cat "$TMP/stderr")' lacks /$pat/"
    fi
    checks=$((checks + 3))
    cmp -s "$lm" "$TMP/res.safetensors" || fail "$what: the checkpoint was changed"
    cmp -s "$state" "$TMP/res.safetensors.state" || fail "$what: the .state was changed"
    cmp -s "$LOG" "$TMP/res.jsonl" || fail "$what: the log was changed"
    if [ -n "$(find "$TMP" -name '*.tmp.*' -print -quit)" ]; then checks=$((checks + 1)); fail "$what: left a temporary file"; fi
    rm -f "$TMP/res.safetensors" "$TMP/res.safetensors.state" "$TMP/res.jsonl"
}

if [ $HAVE_PY = 1 ]; then
    for c in "${CASES[@]}"; do
        IFS='|' read -r name edit pat <<< "$c"
        resume_case "$name ($edit)" "$pat" "$LM" "$B/$name.state"
    done
    resume_case "the checkpoint's step -1" \
        '^dr-train: --resume: [^ ]*/res\.safetensors: "step" in its metadata is -1, not a count$' "$B/lm_step_neg.safetensors" "$ST"
    resume_case "the checkpoint's tokens 12junk" \
        '^dr-train: --resume: [^ ]*/res\.safetensors: "tokens" in its metadata is "12junk", not a count$' "$B/lm_tokens_junk.safetensors" "$ST"
fi
# well-formed, but past the end of this run: step 3 of a run of 2 steps
resume_case "step 3 resumed as a 2-step run" \
    '^dr-train: --resume: [^ ]*/res\.safetensors\.state is at step 3, beyond the 2 steps of this run' "$LM" "$ST" --steps 2

# another config: refused, naming the key (a resume with another batch size, weight decay,
# data order or schedule went on as if it were the same run), except for the keys a resume
# may change: its length, lm.lr, lm.clip, the intervals, threads, and the sections it does
# not read
C='^dr-train: --resume: [^ ]*/res\.safetensors was trained with'
for kv in lm.weight_decay=0.5 data.batch_size=8 data.shuffle=false lm.schedule=constant experiment.seed=7 \
          data.bucket_by_length=true train.eval_batches=3; do
    resume_case "resumed with $kv" "$C ${kv%%=*} = [^ ]*, the config has ${kv#*=}: a resumed run continues the same run" \
        "$LM" "$ST" --set "$kv"
done
# a fresh run over an unfinished run's state (the Up-arrow after the interrupt message,
# without --resume): refused, the files as they were; --restart replaces it
cp "$LM" "$TMP/unf.safetensors"; cp "$ST" "$TMP/unf.safetensors.state"
checks=$((checks + 2))
if "$BIN/dr-train" "${RUN[@]}" -o "$TMP/unf.safetensors" "$M" 2>"$TMP/unf.err"; then
    fail "a fresh run over an unfinished run's state: exit status 0"
else
    grep -q "unf.safetensors.state holds an unfinished run (step 3 of 6): --resume continues it, --restart starts over and replaces it" "$TMP/unf.err" \
        || fail "a fresh run over an unfinished run's state: $(cat "$TMP/unf.err")"
fi
cmp -s "$ST" "$TMP/unf.safetensors.state" && cmp -s "$LM" "$TMP/unf.safetensors" || fail "the refused run changed the files"
checks=$((checks + 1))
"$BIN/dr-train" "${RUN[@]}" --restart -o "$TMP/unf.safetensors" "$M" 2>/dev/null && cmp -s "$TMP/full.safetensors" "$TMP/unf.safetensors" \
    || fail "--restart over an unfinished run's state: not the uninterrupted run's model"
checks=$((checks + 1))
"$BIN/dr-train" "${RUN[@]}" -o "$TMP/unf.safetensors" "$M" 2>/dev/null || fail "a fresh run over a finished run's state was refused"
# the first save killed between its two renames: the state without its model
cp "$ST" "$TMP/first.safetensors.state"
checks=$((checks + 1))
if "$BIN/dr-train" "${RUN[@]}" --resume -o "$TMP/first.safetensors" "$M" 2>"$TMP/first.err"; then
    fail "--resume with the state but no model: exit status 0"
else
    grep -q "first.safetensors is missing but .*first.safetensors.state is there: the run's first save was cut short" "$TMP/first.err" \
        || fail "--resume with the state but no model: $(cat "$TMP/first.err")"
fi
cp "$LM" "$TMP/may.safetensors"; cp "$ST" "$TMP/may.safetensors.state"; cp "$LOG" "$TMP/may.jsonl"
checks=$((checks + 1))
"$BIN/dr-train" "${RUN[@]}" --set lm.lr=5e-4 --set lm.clip=0.5 --set train.log_every=1 --set experiment.threads=2 \
    --set rater.tau=3 --set meta.T=9 --set deploy.keep=0.9 --steps 8 \
    --resume --log "$TMP/may.jsonl" -o "$TMP/may.safetensors" "$M" 2>"$TMP/may.err" \
    || fail "--resume with lm.lr, lm.clip, log_every, threads, rater/meta/deploy keys and --steps changed: $(cat "$TMP/may.err")"

# ---- the untouched .state resumes to the uninterrupted run --------------------------------
cp "$LM" "$TMP/ok.safetensors"; cp "$ST" "$TMP/ok.safetensors.state"; cp "$LOG" "$TMP/ok.jsonl"
checks=$((checks + 1))
if "$BIN/dr-train" "${RUN[@]}" --resume --log "$TMP/ok.jsonl" -o "$TMP/ok.safetensors" "$M" 2>"$TMP/ok.err"; then
    checks=$((checks + 2))
    cmp -s <(strip_seconds "$TMP/full.jsonl") <(strip_seconds "$TMP/ok.jsonl") \
        || fail "the resumed run logs differently from the uninterrupted run"
    cmp -s "$TMP/full.safetensors" "$TMP/ok.safetensors" || fail "the resumed run saved another model"
else
    fail "--resume of the untouched .state failed: $(cat "$TMP/ok.err")"
fi
# a .state of an earlier version (no seconds, FLOPs, curation statistics or curation)
if [ $HAVE_PY = 1 ]; then
    cp "$LM" "$TMP/old.safetensors"; cp "$B/old.state" "$TMP/old.safetensors.state"; cp "$LOG" "$TMP/old.jsonl"
    checks=$((checks + 1))
    if "$BIN/dr-train" "${RUN[@]}" --resume --log "$TMP/old.jsonl" -o "$TMP/old.safetensors" "$M" 2>"$TMP/old.err"; then
        checks=$((checks + 1))
        grep -q '^{"step":6,' "$TMP/old.jsonl" || fail "the resumed earlier-version run logs no step 6"
    else
        fail "--resume of an earlier version's .state (no optional fields) failed: $(cat "$TMP/old.err")"
    fi
fi

echo "$(basename "$0"): $checks checks, $failures failed"
[ $failures -eq 0 ]
