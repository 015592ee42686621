#!/usr/bin/env bash
# train.sh — dr-train end to end on the generated corpus (tests/data/gen_corpus.sh):
# tokenize (byte), split, dr-cat --examples, train with configs/tiny.yaml and check
#  - the Val loss ends well below the unigram entropy of the Train targets;
#  - --stop-at + --resume and SIGTERM (as Ctrl-C) + --resume log the same numbers, byte for byte, and
#    save the same model as an uninterrupted run;
#  - --eval-only prints one JSON line whose l_val is the run's final l_val;
#  - a NaN loss stops training with the step named and a finite last-good checkpoint;
#  - data-dependent config errors are refused before any work; so are --steps with
#    --tokens and an option naming a file given twice (a number twice: the last counts);
#  - the float build and the double build log the same losses to float precision.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
DBIN=${DBIN:-${BUILD_ROOT:-build}/double/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# The JSON number of key $1 on the last line of stdin that has it.
field() { grep -o "\"$1\":[^,}]*" | tail -n 1 | cut -d: -f2; }
# A log without its wall-clock field, for byte comparison.
strip_seconds() { sed 's/,"seconds":[^,}]*//' "$1"; }

tests/data/gen_corpus.sh "$tmp"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/shards" "$tmp/corpus.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.15 --seed 1 -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null

# ---- dr-cat --examples: the loader's windows; unigram entropy of the Train targets --
CFG="--config configs/tiny.yaml"
"$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/splits/train_a" > "$tmp/examples.ids"
"$BIN/dr-cat" --examples --seq-len 32 "$tmp/splits/train_a" > "$tmp/examples.txt"
[ "$(wc -l < "$tmp/examples.ids")" -eq "$(wc -l < "$tmp/examples.txt")" ] || fail "--ids and text line counts differ"
grep -qvE '^[0-9a-f]{16}:[0-9]+	' "$tmp/examples.ids" && fail "malformed example id"
# every window has 2..33 tokens
awk -F'\t' '{ n = split($2, t, " "); if (n < 2 || n > 33) exit 1 }' "$tmp/examples.ids" || fail "window length out of range"
H=$(awk -F'\t' '{ n = split($2, t, " "); for (i = 2; i <= n; i++) { c[t[i]]++; N++ } }
    END { for (k in c) { p = c[k] / N; h -= p * log(p) } printf "%.4f", h }' "$tmp/examples.ids")
echo "unigram entropy of the Train targets: $H nats"

# ---- a full run ---------------------------------------------------------------------
RUN="--set lm.lr=5e-3 --set data.batch_size=8 --set train.eval_every=40 --set train.eval_batches=0 --set train.log_every=1 --steps 120"
"$BIN/dr-train" $CFG $RUN --log "$tmp/full.jsonl" -o "$tmp/full.safetensors" "$tmp/manifest.tsv" 2> "$tmp/full.err" \
    || { cat "$tmp/full.err"; fail "training failed"; }
[ -s "$tmp/full.safetensors" ] && [ -s "$tmp/full.safetensors.state" ] || fail "no checkpoint"
L0=$(head -n 1 "$tmp/full.jsonl" | field l_val)
LV=$(field l_val < "$tmp/full.jsonl")
echo "l_val: step 0 $L0, step 120 $LV"
[ "$(wc -l < "$tmp/full.jsonl")" -eq 121 ] || fail "expected 121 log lines (step 0 + 120 steps)"
awk -v l="$LV" -v h="$H" 'BEGIN { exit !(l < h - 0.4) }' || fail "l_val $LV is not well below the unigram entropy $H"
grep -q '"step":120,"tokens":[0-9]*,"lr":[0-9.e-]*,"l_train":[0-9.e-]*,"grad_norm":[0-9.e-]*,"seconds":[0-9.e-]*,"l_val"' \
    "$tmp/full.jsonl" || fail "last log line lacks a field"

# ---- --stop-at + --resume: bit-exact ---------------------------------------------------
"$BIN/dr-train" $CFG $RUN --stop-at 60 --log "$tmp/half.jsonl" -o "$tmp/half.safetensors" "$tmp/manifest.tsv" 2>/dev/null \
    || fail "--stop-at run failed"
[ "$(wc -l < "$tmp/half.jsonl")" -eq 61 ] || fail "--stop-at 60 should log 61 lines"
"$BIN/dr-train" $CFG $RUN --resume --log "$tmp/half.jsonl" -o "$tmp/half.safetensors" "$tmp/manifest.tsv" 2>/dev/null \
    || fail "--resume failed"
cmp <(strip_seconds "$tmp/full.jsonl") <(strip_seconds "$tmp/half.jsonl") || fail "resumed run logs differ from the uninterrupted run"
cmp "$tmp/full.safetensors" "$tmp/half.safetensors" || fail "resumed model differs"

# a finished run resumed: nothing left to run; the checkpoint, its state and the log untouched
mkdir -p "$tmp/before"
cp "$tmp/half.safetensors" "$tmp/half.safetensors.state" "$tmp/half.jsonl" "$tmp/before/"
"$BIN/dr-train" $CFG $RUN --resume --log "$tmp/half.jsonl" -o "$tmp/half.safetensors" "$tmp/manifest.tsv" \
    2> "$tmp/again.err" || fail "--resume of a finished run failed"
grep -q "is already at step .*, nothing left to run" "$tmp/again.err" || fail "--resume of a finished run: $(cat "$tmp/again.err")"
grep -q "nan" "$tmp/again.err" && fail "--resume of a finished run printed nan: $(cat "$tmp/again.err")"
for f in half.safetensors half.safetensors.state half.jsonl; do
    cmp -s "$tmp/$f" "$tmp/before/$f" || fail "--resume of a finished run changed $f"
done
# a log with an endless line (not one of ours): --resume refuses it, one line, log untouched
"$BIN/dr-train" $CFG $RUN --stop-at 30 --log "$tmp/endless.jsonl" -o "$tmp/endless.safetensors" "$tmp/manifest.tsv" 2>/dev/null
head -c 17000000 /dev/zero | tr '\0' x >> "$tmp/endless.jsonl"; echo >> "$tmp/endless.jsonl"
cp "$tmp/endless.jsonl" "$tmp/endless.before"
rc=0; "$BIN/dr-train" $CFG $RUN --resume --log "$tmp/endless.jsonl" -o "$tmp/endless.safetensors" "$tmp/manifest.tsv" \
    2> "$tmp/endless.err" || rc=$?
[ $rc -ne 0 ] && grep -q "endless.jsonl: a line longer than 16 MiB: not a log of this tool" "$tmp/endless.err" &&
    cmp -s "$tmp/endless.jsonl" "$tmp/endless.before" ||
    fail "--resume with an endless log line: exit $rc: $(head -c 300 "$tmp/endless.err")"

# ---- Ctrl-C: checkpoint, exit 130, resume to the same numbers ---------------------------
"$BIN/dr-train" $CFG $RUN --log "$tmp/int.jsonl" -o "$tmp/int.safetensors" "$tmp/manifest.tsv" 2>/dev/null &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/int.jsonl" ] && [ "$(wc -l < "$tmp/int.jsonl")" -ge 5 ] && break; sleep 0.05; done
kill -TERM "$pid" 2>/dev/null || true   # as Ctrl-C (a background job of a script has SIGINT ignored)
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 130 ] || [ "$rc" -eq 0 ] || fail "interrupted run exited $rc, not 130"
[ -s "$tmp/int.safetensors" ] || fail "no checkpoint after SIGTERM"
echo "SIGTERM (as Ctrl-C): exit $rc after $(wc -l < "$tmp/int.jsonl") log lines"
"$BIN/dr-train" $CFG $RUN --resume --log "$tmp/int.jsonl" -o "$tmp/int.safetensors" "$tmp/manifest.tsv" 2>/dev/null \
    || fail "--resume after SIGTERM failed"
cmp <(strip_seconds "$tmp/full.jsonl") <(strip_seconds "$tmp/int.jsonl") || fail "run resumed after SIGTERM logs differ"
cmp "$tmp/full.safetensors" "$tmp/int.safetensors" || fail "model resumed after SIGTERM differs"
# one SIGTERM delivered twice at once (`timeout` signals the child, then its process group):
# one stop request, the checkpoint is saved; no "interrupted" line (2 ms apart, so that the
# first copy's handler has run when the second comes; else the kernel merges them). Exit
# 130, or 143 when the second copy came after the run had saved and put back the default
# action (this model's steps take about a millisecond)
"$BIN/dr-train" $CFG $RUN --log "$tmp/dbl.jsonl" -o "$tmp/dbl.safetensors" "$tmp/manifest.tsv" 2>"$tmp/dbl.err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/dbl.jsonl" ] && [ "$(wc -l < "$tmp/dbl.jsonl")" -ge 5 ] && break; sleep 0.05; done
kill -TERM "$pid" 2>/dev/null || true; sleep 0.002; kill -TERM "$pid" 2>/dev/null || true   # it may be gone already
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { { [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; } && [ -s "$tmp/dbl.safetensors" ] && ! grep -q "interrupted (SIG" "$tmp/dbl.err"; } ||
    fail "one SIGTERM delivered twice: exit $rc: $(cat "$tmp/dbl.err")"

# ---- --eval-only: one JSON line, the run's final l_val -----------------------------------
"$BIN/dr-train" $CFG $RUN --eval-only "$tmp/full.safetensors" "$tmp/manifest.tsv" > "$tmp/eval.json" 2>/dev/null
[ "$(wc -l < "$tmp/eval.json")" -eq 1 ] || fail "--eval-only must print one line"
grep -qE '^\{"l_val":[0-9.e+-]+,"examples":[0-9]+,"tokens":[0-9]+\}$' "$tmp/eval.json" || fail "--eval-only output: $(cat "$tmp/eval.json")"
[ "$(field l_val < "$tmp/eval.json")" = "$LV" ] || fail "--eval-only l_val $(field l_val < "$tmp/eval.json") != final l_val $LV"
if command -v python3 >/dev/null; then python3 -c 'import json,sys; json.loads(open(sys.argv[1]).read())' "$tmp/eval.json" || fail "not JSON"; fi

# ---- NaN: stops with the step, keeps a finite last good state ------------------------
rc=0
"$BIN/dr-train" $CFG $RUN --set lm.optimizer=sgd --set lm.lr=1000 --set lm.clip=0 \
    -o "$tmp/nan.safetensors" "$tmp/manifest.tsv" 2> "$tmp/nan.err" || rc=$?
[ "$rc" -eq 1 ] || fail "a NaN run must exit 1, not $rc"
grep -qE 'step [0-9]+: the (training loss|gradient norm|Val loss) is (NaN|-?inf)' "$tmp/nan.err" || fail "NaN message: $(cat "$tmp/nan.err")"
grep -q 'last good state (step [0-9]*) is saved' "$tmp/nan.err" || fail "no last good state: $(cat "$tmp/nan.err")"
"$BIN/dr-train" $CFG --eval-only "$tmp/nan.safetensors" "$tmp/manifest.tsv" 2>/dev/null | grep -q '"l_val":[0-9]' \
    || fail "the last good state does not evaluate to a finite loss"
echo "NaN: $(tail -n 1 "$tmp/nan.err")"

# ---- refusals before any work ---------------------------------------------------------
expect_fail() {  # pattern, args...
    local pat=$1; shift
    if "$BIN/dr-train" "$@" -o "$tmp/bad.safetensors" > "$tmp/bad.out" 2> "$tmp/bad.err"; then fail "accepted: $*"; fi
    grep -q "$pat" "$tmp/bad.err" || fail "expected '$pat' for $*, got: $(cat "$tmp/bad.err")"
    [ ! -e "$tmp/bad.safetensors" ] || fail "a refused run wrote a checkpoint: $*"
}
expect_fail "vocab" $CFG --set lm.vocab_size=100 "$tmp/manifest.tsv"
expect_fail "manifest.tsv: no shards of split 'nope' for Val (its splits: train_a, val)" $CFG --val-split nope "$tmp/manifest.tsv"
expect_fail "manifest.tsv: no shards of split 'train_b' for Train (its splits: train_a, val)" $CFG --train-split train_b "$tmp/manifest.tsv"
expect_fail "no examples" $CFG --set data.seq_len=4000 --set data.min_tokens=4000 --val "$tmp/splits/val" --train "$tmp/splits/train_a"
expect_fail "lm.lr" $CFG --set lm.lr=-1 "$tmp/manifest.tsv"
# --steps with --tokens (as train.steps with train.tokens), an option naming a file given
# twice: refused, not one of them taken silently; a number given twice: the last counts (a
# script's defaults overridden, as with --set)
expect_fail "^dr-train: --steps 5 and --tokens 100: give one" $CFG --steps 5 --tokens 100 "$tmp/manifest.tsv"
"$BIN/dr-train" $CFG --steps 5 --steps 2 --log "$tmp/s2.jsonl" -o "$tmp/s2.safetensors" "$tmp/manifest.tsv" 2>/dev/null ||
    fail "--steps given twice: refused"
[ "$(tail -n 1 "$tmp/s2.jsonl" | grep -o '"step":[0-9]*')" = '"step":2' ] || fail "--steps 5 --steps 2: not 2 steps"
expect_fail "^dr-train: option --log given twice" $CFG --steps 5 --log "$tmp/l1.jsonl" --log "$tmp/l2.jsonl" "$tmp/manifest.tsv"
expect_fail "^dr-train: option -o given twice" $CFG --steps 5 -o "$tmp/o1.safetensors" "$tmp/manifest.tsv"
[ ! -e "$tmp/o1.safetensors" ] && [ ! -e "$tmp/l1.jsonl" ] && [ ! -e "$tmp/l2.jsonl" ] || fail "a refused run wrote a file"
# an absurd --online-keep names its candidate count as a number, not 300 digits
expect_fail "^dr-train: --online-keep 1e-300: 4e+300 candidates per batch of 4 is too many (at most 2^20 = 1048576)$" \
    $CFG --steps 1 --rater "$tmp/full.safetensors" --online-keep 1e-300 "$tmp/manifest.tsv"

# --train / --val instead of a manifest; --tokens
"$BIN/dr-train" $CFG --tokens 500 --train "$tmp/splits/train_a" --val "$tmp/splits/val" --log "$tmp/tv.jsonl" \
    -o "$tmp/tv.safetensors" 2>/dev/null || fail "--train/--val run failed"
tok=$(field tokens < "$tmp/tv.jsonl")
[ "$tok" -ge 400 ] && [ "$tok" -le 700 ] || fail "--tokens 500 trained $tok tokens"

# a manifest on stdin; plain shards are Train, with --val
"$BIN/dr-train" $CFG --steps 2 -o "$tmp/stdin.safetensors" - < "$tmp/manifest.tsv" 2>/dev/null || fail "manifest on stdin"
"$BIN/dr-train" $CFG --steps 2 --val "$tmp/splits/val" -o "$tmp/plain.safetensors" "$tmp/splits/train_a" 2>/dev/null \
    || fail "plain shards + --val"

# ---- float vs double: the same losses to float precision ----------------------------------
if [ -x "$DBIN/dr-train" ]; then
    "$DBIN/dr-train" $CFG $RUN --stop-at 10 --log "$tmp/double.jsonl" -o "$tmp/double.safetensors" "$tmp/manifest.tsv" 2>/dev/null \
        || fail "double build failed"
    l_train() { head -n 11 "$1" | tail -n 10 | grep -o '"l_train":[^,]*' | cut -d: -f2; }
    paste <(l_train "$tmp/full.jsonl") <(l_train "$tmp/double.jsonl") > "$tmp/fd.txt"
    [ "$(wc -l < "$tmp/fd.txt")" -eq 10 ] || fail "float/double logs incomplete"
    awk '{ d = $1 - $2; if (d < 0) d = -d; r = d / $2; if (r > m) m = r }
         END { printf "float vs double, 10 steps: max relative difference of l_train %.2e\n", m; exit !(m < 1e-4) }' "$tmp/fd.txt" \
        || fail "float and double builds disagree"
else
    echo "no double build at $DBIN: float/double comparison skipped"
fi
echo "ok"
