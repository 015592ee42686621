#!/usr/bin/env bash
# saves.sh — a long run loses nothing to a crash or to bad input met halfway:
#  1. dr-train: a Train shard whose block is corrupt, read halfway through the run (the
#     corpus streamed from the shards: DR_RESIDENT_TOKENS=0), stops the run with one line
#     that says the state at step N > 0 is saved; with the shard repaired, --resume ends
#     with the model and log of an uninterrupted run, bit for bit;
#  2. dr-train killed with SIGKILL (no handler runs) after a timed checkpoint
#     (train.save_minutes): --resume ends as the uninterrupted run;
#  3. dr-meta killed with SIGKILL after a timed save (meta.save_minutes): --resume ends
#     with the rater, EMA and log of the uninterrupted run;
#  4. dr-meta --resume that meets a corrupt shard says the state it resumed from is kept
#     in its .state, and leaves it as it was; meta.save_every N saves after every N-th
#     meta-step, and only then (strace counts the renames of the .state);
#  5. DR_RESIDENT_TOKENS that is not a number is refused with one line; negative
#     save_every / save_minutes are refused;
#  6. dr-train killed inside a save (between its two renames): --resume takes the state
#     of the save before (.state.prev) and ends as the uninterrupted run;
#  7. a log that can no longer be written halfway (its reader went away: EPIPE): dr-train
#     saves the state before the step whose line failed, dr-meta the state after it with
#     the line; --resume writes what was lost and ends as the uninterrupted run.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-train dr-meta

# A log without its wall-clock fields, for byte comparison.
strip_seconds() { sed 's/,"seconds":[^,}]*//; s/,"step_seconds":[^,}]*//' "$1"; }
# The tensors of a safetensors file (everything after the header: the config in the
# header names the save settings, which differ between the runs compared).
tensors() { python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; sys.stdout.buffer.write(b[8+n:])' "$1"; }
same_tensors() { cmp -s <(tensors "$1") <(tensors "$2"); }
# corrupt FILE: one byte of its first block's data inverted (its checksum catches it)
corrupt() {
    local b; b=$(od -An -tu1 -j $((72 + 40)) -N 1 "$1" | tr -d ' ')
    printf "\\x$(printf %02x $((255 - b)))" | dd of="$1" bs=1 seek=$((72 + 40)) conv=notrunc 2>/dev/null
}
# kill_after_save PID FILE: SIGKILL the run once FILE exists and a little more has run
kill_after_save() {
    local pid=$1 file=$2 n=0
    while [ ! -e "$file" ] && kill -0 "$pid" 2>/dev/null && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
    sleep 0.5
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# ---- data: Train_A in many small shards, so the last ones are read late -------------------
tests/data/gen_toy.sh 2500 40 1 100 400 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte -o "$TMP/shards" "$TMP/toy.jsonl" >/dev/null 2>&1 || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.1 --dedup --shard-size 0.1 -o "$TMP/ok" "$TMP/shards" >/dev/null 2>&1 || { echo "dr-split failed" >&2; exit 1; }
LAST=$(ls "$TMP/ok/train_a/"*.drs | tail -n 1)
[ "$(ls "$TMP/ok/train_a/"*.drs | wc -l)" -ge 4 ] || { echo "expected several train_a shards" >&2; exit 1; }
TR=(--config configs/tiny.yaml --set experiment.threads=1 --set data.shuffle=false --set train.eval_every=500
    --set train.save_minutes=0)

# ---- 1. dr-train meets a corrupt block halfway ---------------------------------------------
"$BIN/dr-train" "${TR[@]}" --set train.steps=0 --train "$TMP/ok/train_a" --val "$TMP/ok/val" \
    -o "$TMP/full.st" --log "$TMP/full.jsonl" 2>/dev/null || fail "uninterrupted dr-train"
cp -r "$TMP/ok" "$TMP/bad"
corrupt "$TMP/bad/train_a/$(basename "$LAST")"
DR_RESIDENT_TOKENS=0 expect_stop "dr-train: a corrupt block halfway saves the state" \
    "train_a-[0-9]+\.drs: block 0: .*corrupted.*; the state at step [1-9][0-9]* is saved in .*half\.st \(once the cause is fixed, --resume continues from there\)" \
    "$BIN/dr-train" "${TR[@]}" --set train.steps=0 --train "$TMP/bad/train_a" --val "$TMP/bad/val" \
    -o "$TMP/half.st" --log "$TMP/half.jsonl"
step=$(grep -o 'state at step [0-9]*' "$TMP/stderr" | grep -o '[0-9]*$')
check "dr-train: the failure came after step 1000 (step ${step:-none})" [ "${step:-0}" -gt 1000 ]
check "dr-train: checkpoint and .state written at the failure" [ -s "$TMP/half.st" -a -s "$TMP/half.st.state" ]
cp "$LAST" "$TMP/bad/train_a/"   # repaired
check "dr-train: --resume after the repair runs to the end" \
    env DR_RESIDENT_TOKENS=0 "$BIN/dr-train" "${TR[@]}" --set train.steps=0 --train "$TMP/bad/train_a" --val "$TMP/bad/val" \
    -o "$TMP/half.st" --log "$TMP/half.jsonl" --resume 2>/dev/null
check "dr-train: the resumed model equals the uninterrupted one" cmp -s "$TMP/half.st" "$TMP/full.st"
check "dr-train: the resumed log equals the uninterrupted one" \
    cmp -s <(strip_seconds "$TMP/half.jsonl") <(strip_seconds "$TMP/full.jsonl")
# the same run held in memory (the default for a small corpus) finds the block before step 1
cp -r "$TMP/ok" "$TMP/bad2"; corrupt "$TMP/bad2/train_a/$(basename "$LAST")"
expect_error "dr-train: a corrupt block of a resident corpus is refused at the start, nothing saved" \
    "train_a-[0-9]+\.drs: block 0: .*corrupted[^;]*$" \
    "$BIN/dr-train" "${TR[@]}" --set train.steps=0 --train "$TMP/bad2/train_a" --val "$TMP/ok/val" -o "$TMP/none.st"
check "dr-train: nothing saved when no step ran" [ ! -e "$TMP/none.st" ]

# ---- 1b. dr-train --rater: a rater whose logit overflows only on examples that hold a 'Z'
# (token 90), which come after the others in shard order: the run stops at that step with
# the number (NaN or inf, never "-nan") and saves the state of that step
tests/data/gen_toy.sh 300 40 1 60 200 > "$TMP/z.jsonl"
for i in $(seq 1 40); do printf '{"text": "ZZZ document %d with the rare letter ZZZ in it"}\n' "$i"; done >> "$TMP/z.jsonl"
"$BIN/dr-tokenize" --tokenizer byte -o "$TMP/zsh" "$TMP/z.jsonl" >/dev/null 2>&1 &&
"$BIN/dr-split" --val 0.15 --dedup -o "$TMP/zsp" "$TMP/zsh" >/dev/null 2>&1 &&
"$BIN/dr-meta" --config configs/tiny.yaml -o "$TMP/zr.safetensors" "$TMP/zsp/manifest.tsv" 2>/dev/null ||
    fail "dr-tokenize, dr-split, dr-meta for the rater case"
python3 - "$TMP/zr.safetensors" "$TMP/zbig.safetensors" <<'PY' || fail "making the overflowing rater"
import json, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read()); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); t = h['rater.wte.weight']; d = t['shape'][1]
for j in range(d):   # token 90's embedding: finite, but beyond what a float sum holds
    struct.pack_into('<f', b, 8 + n + t['data_offsets'][0] + 4 * (90 * d + j), 3e38)
open(sys.argv[2], 'wb').write(b)
PY
expect_stop "dr-train --rater: a logit that overflows halfway saves the state" \
    "^dr-train: --rater .*zbig\.safetensors: step [1-9][0-9]*: example [0-9a-f]{16}:[0-9]+: the rater's logit is (NaN|inf|-inf), not a finite number.*; the state at step [1-9][0-9]* is saved in .*zo\.st " \
    "$BIN/dr-train" --config configs/tiny.yaml --set experiment.threads=1 --set data.shuffle=false --set train.steps=0 \
    --rater "$TMP/zbig.safetensors" --online-keep 0.5 --train-split train_a "$TMP/zsp/manifest.tsv" -o "$TMP/zo.st"
check "dr-train --rater: checkpoint and .state written at the failure" [ -s "$TMP/zo.st" -a -s "$TMP/zo.st.state" ]
# that state is the one --stop-at N saves (the counters as they were before the failed
# step's scoring added its rater FLOPs and logits): model and .state equal but for seconds
zstep=$(grep -o 'state at step [0-9]*' "$TMP/stderr" | grep -o '[0-9]*$')
"$BIN/dr-train" --config configs/tiny.yaml --set experiment.threads=1 --set data.shuffle=false --set train.steps=0 \
    --rater "$TMP/zbig.safetensors" --online-keep 0.5 --train-split train_a "$TMP/zsp/manifest.tsv" \
    -o "$TMP/zs.st" --stop-at "${zstep:-1}" 2>/dev/null || fail "dr-train --rater --stop-at ${zstep:-}"
check "dr-train --rater: the model saved at the failure = the one --stop-at $zstep saves" cmp -s "$TMP/zo.st" "$TMP/zs.st"
check "dr-train --rater: the .state saved at the failure = the one --stop-at $zstep saves (but for seconds)" \
    cmp -s <(sed 's/\\"seconds\\":[0-9.]*//' "$TMP/zo.st.state") <(sed 's/\\"seconds\\":[0-9.]*//' "$TMP/zs.st.state")

# ---- 2, 3. killed with SIGKILL after a timed save, then --resume ---------------------------
# killed_and_resumed NAME TOOL KEY ARGS...: an uninterrupted run (KEY=0) beside one with
# KEY=0.005 (a save every 0.3 s) killed after its first save and resumed: the model (and
# dr-meta's EMA) and the log must equal the uninterrupted run's
killed_and_resumed() {
    local name=$1 tool=$2 key=$3; shift 3
    local full=$TMP/$name-full k=$TMP/$name-k
    "$BIN/$tool" "$@" --set "$key=0" -o "$full.safetensors" --log "$full.jsonl" 2>/dev/null || fail "$name: uninterrupted run"
    "$BIN/$tool" "$@" --set "$key=0.005" -o "$k.safetensors" --log "$k.jsonl" 2>/dev/null &
    kill_after_save $! "$k.safetensors.state"
    check "$name: a timed save exists before the kill" [ -s "$k.safetensors.state" ]
    check "$name: killed before its end (the log stops short)" [ "$(wc -l < "$k.jsonl")" -lt "$(wc -l < "$full.jsonl")" ]
    check "$name: --resume after SIGKILL runs to the end" \
        "$BIN/$tool" "$@" --set "$key=0.005" -o "$k.safetensors" --log "$k.jsonl" --resume 2>/dev/null
    check "$name: after SIGKILL + --resume, the model's tensors equal the uninterrupted run's" \
        same_tensors "$k.safetensors" "$full.safetensors"
    [ "$tool" = dr-meta ] && check "$name: … and the EMA rater's" same_tensors "$k.ema.safetensors" "$full.ema.safetensors"
    check "$name: after SIGKILL + --resume, the log equals the uninterrupted run's" \
        cmp -s <(strip_seconds "$k.jsonl") <(strip_seconds "$full.jsonl")
}
killed_and_resumed dr-train dr-train train.save_minutes --config configs/tiny.yaml --set experiment.threads=1 \
    --set train.eval_every=100 --steps 8000 --train "$TMP/ok/train_a" --val "$TMP/ok/val"
killed_and_resumed dr-meta dr-meta meta.save_minutes --config configs/tiny.yaml --set experiment.threads=1 \
    --set meta.rounds=150 "$TMP/ok/manifest.tsv"

# ---- 4. dr-meta: a resumed run meets a corrupt shard; meta.save_every ----------------------
MS=(--config configs/tiny.yaml --set experiment.threads=1 --set meta.rounds=6 --set meta.save_minutes=0)
"$BIN/dr-meta" "${MS[@]}" --stop-at 2 -o "$TMP/ms.safetensors" "$TMP/ok/manifest.tsv" 2>/dev/null || fail "dr-meta --stop-at 2"
cp "$TMP/ms.safetensors.state" "$TMP/ms.state.before"
DR_RESIDENT_TOKENS=0 expect_stop "dr-meta --resume meets a corrupt shard: the state resumed from is kept" \
    "train_a-[0-9]+\.drs: block 0: .*corrupted.*; the state after meta-step 2 is saved in .*ms\.safetensors\.state \(once the cause is fixed, --resume continues from there\)" \
    "$BIN/dr-meta" "${MS[@]}" -o "$TMP/ms.safetensors" --resume "$TMP/bad2/manifest.tsv"
check "dr-meta: that state is left as it was" cmp -s "$TMP/ms.safetensors.state" "$TMP/ms.state.before"
# save_every N: the .state is renamed into place after every N-th meta-step and at the
# end, and only then (counted with strace: 2 of 5 -> after 2, 4 and 5; 1 -> 5; 0 -> 1)
if strace -f -qq -e trace=rename -o "$TMP/probe.trace" true 2>/dev/null; then
    for se in 2:3 1:5 0:1; do
        rm -f "$TMP/se.safetensors"*
        strace -f -qq -e trace=rename,renameat,renameat2 -o "$TMP/se.trace" \
            "$BIN/dr-meta" "${MS[@]}" --set meta.rounds=5 --set meta.save_every=${se%%:*} \
            -o "$TMP/se.safetensors" "$TMP/ok/manifest.tsv" 2>/dev/null || fail "dr-meta save_every ${se%%:*}"
        n=$(grep -c 'se\.safetensors\.state"' "$TMP/se.trace")
        check "dr-meta: save_every ${se%%:*} of 5 meta-steps: ${se##*:} saves of the state (got $n)" [ "$n" = "${se##*:}" ]
    done
    s=$(grep -ao 'meta_step":"[0-9]*' "$TMP/se.safetensors.state" | head -n 1 | grep -o '[0-9]*$')
    check "dr-meta: the last state is meta-step 5 (got ${s:-none})" [ "${s:-}" = 5 ]
else
    echo "saves.sh: NOT CHECKED: meta.save_every's count of saves (strace cannot run here)" >&2
fi

# ---- 5. bad settings --------------------------------------------------------------------------
DR_RESIDENT_TOKENS=lots expect_error "DR_RESIDENT_TOKENS not a number" \
    "DR_RESIDENT_TOKENS=lots: expected a number of tokens" \
    "$BIN/dr-train" "${TR[@]}" --steps 5 --train "$TMP/ok/train_a" --val "$TMP/ok/val" -o "$TMP/x.st"
DR_RESIDENT_TOKENS=-1 expect_error "DR_RESIDENT_TOKENS negative" "DR_RESIDENT_TOKENS=-1: expected a number" \
    "$BIN/dr-meta" "${MS[@]}" -o "$TMP/x.safetensors" "$TMP/ok/manifest.tsv"
expect_error "meta.save_minutes negative" "meta\.save_minutes" \
    "$BIN/dr-meta" "${MS[@]}" --set meta.save_minutes=-1 -o "$TMP/x.safetensors" "$TMP/ok/manifest.tsv"
expect_error "meta.save_every negative" "meta\.save_every" \
    "$BIN/dr-meta" "${MS[@]}" --set meta.save_every=-2 -o "$TMP/x.safetensors" "$TMP/ok/manifest.tsv"
expect_error "train.save_minutes not a number" "train\.save_minutes" \
    "$BIN/dr-train" "${TR[@]}" --set train.save_minutes=soon --steps 5 --train "$TMP/ok/train_a" --val "$TMP/ok/val" -o "$TMP/x.st"
# ---- 6. dr-train killed inside a save: the new .state renamed into place, the model not
# yet (or the .state not yet either): --resume takes the state of the save before, kept as
# .state.prev until the save is complete, and ends as the uninterrupted run
CUT=(--config configs/tiny.yaml --set experiment.threads=1 --steps 60 --train "$TMP/ok/train_a" --val "$TMP/ok/val")
"$BIN/dr-train" "${CUT[@]}" -o "$TMP/cfull.st" --log "$TMP/cfull.jsonl" 2>/dev/null || fail "dr-train (cut save)"
"$BIN/dr-train" "${CUT[@]}" -o "$TMP/c.st" --log "$TMP/c.jsonl" --stop-at 30 2>/dev/null || fail "dr-train --stop-at 30"
check "dr-train: no .state.prev is left after a complete save" [ ! -e "$TMP/c.st.state.prev" ]
cp "$TMP/c.st" "$TMP/c30.st"; cp "$TMP/c.st.state" "$TMP/c30.state"
"$BIN/dr-train" "${CUT[@]}" -o "$TMP/c.st" --log "$TMP/c.jsonl" --resume --stop-at 50 2>/dev/null || fail "dr-train --stop-at 50"
for cut in new-state no-state; do
    cp "$TMP/c30.st" "$TMP/c.st"; cp "$TMP/c30.state" "$TMP/c.st.state.prev"
    if [ $cut = no-state ]; then rm -f "$TMP/c.st.state"; fi
    printf '{"step":55,"tok' >> "$TMP/c.jsonl"   # a log line cut short by the kill: dropped
    check "dr-train: a save cut short ($cut): --resume takes .state.prev" sh -c \
        "'$BIN/dr-train' $(printf "'%s' " "${CUT[@]}") -o '$TMP/c.st' --log '$TMP/c.jsonl' --resume 2>'$TMP/cut.err' &&
         grep -q 'the state of the save before (.*c\.st\.state\.prev) matches .*: resuming at its step 30' '$TMP/cut.err'"
    check "dr-train: a save cut short ($cut): the model after --resume = the uninterrupted run's" cmp -s "$TMP/c.st" "$TMP/cfull.st"
    check "dr-train: a save cut short ($cut): the log = the uninterrupted run's" \
        cmp -s <(strip_seconds "$TMP/c.jsonl") <(strip_seconds "$TMP/cfull.jsonl")
done
cp "$TMP/c.st.state" "$TMP/c60.state"   # the finished run's state, for the next case
# a .state.prev that does not match the model either: the newer state's error, nothing changed
cp "$TMP/c30.st" "$TMP/c.st"; cp "$TMP/c60.state" "$TMP/c.st.state"; cp "$TMP/c60.state" "$TMP/c.st.state.prev"
expect_error "dr-train: neither .state nor .state.prev matches the model: refused" \
    "c\.st is at step 30 but .*c\.st\.state at step 60: a checkpoint was cut short" \
    "$BIN/dr-train" "${CUT[@]}" -o "$TMP/c.st" --resume
check "dr-train: … and .state.prev is left in place" cmp -s "$TMP/c.st.state.prev" "$TMP/c60.state"

# ---- 7. the log's reader goes away halfway ---------------------------------------------------
# --log on a FIFO read by `head -n 3`: the write after it ends fails (EPIPE; SIGPIPE is
# ignored, so the run is not killed by it); which step that is depends on the pipe's timing
mkfifo "$TMP/log.fifo"
LG=(--config configs/tiny.yaml --set experiment.threads=1 --set train.steps=300 --set train.log_every=10
    --set train.save_minutes=0 --train "$TMP/ok/train_a" --val "$TMP/ok/val")
"$BIN/dr-train" "${LG[@]}" -o "$TMP/lg_full.st" --log "$TMP/lg_full.jsonl" 2>/dev/null || fail "dr-train, log to a file"
head -n 3 "$TMP/log.fifo" > "$TMP/lg_head.jsonl" &
expect_stop "dr-train: a log whose reader went away saves the state before the step" \
    "log\.fifo: writing the log failed: Broken pipe; the state at step [1-9][0-9]* is saved in .*lg\.st \(once the cause is fixed, --resume continues from there\)" \
    "$BIN/dr-train" "${LG[@]}" -o "$TMP/lg.st" --log "$TMP/log.fifo"
wait
step=$(grep -o 'state at step [0-9]*' "$TMP/stderr" | grep -o '[0-9]*$')
check "dr-train: the saved state is of a step after the lines read (step ${step:-none})" [ "${step:-0}" -ge 20 ]
check "dr-train: the lines read are the uninterrupted run's" \
    cmp -s <(strip_seconds "$TMP/lg_head.jsonl") <(strip_seconds "$TMP/lg_full.jsonl" | head -n 3)
check "dr-train: --resume with a log file runs to the end" \
    "$BIN/dr-train" "${LG[@]}" -o "$TMP/lg.st" --log "$TMP/lg_rest.jsonl" --resume 2>/dev/null
check "dr-train: the resumed model equals the uninterrupted one" cmp -s "$TMP/lg.st" "$TMP/lg_full.st"
check "dr-train: the resumed log holds the lines after step $step, the lost one included" \
    cmp -s <(strip_seconds "$TMP/lg_rest.jsonl") \
    <(strip_seconds "$TMP/lg_full.jsonl" | python3 -c 'import json,sys; [sys.stdout.write(l) for l in sys.stdin if json.loads(l)["step"] > int(sys.argv[1])]' "$step")
# --log - into a pipe whose reader ends: the same, exit status 1 (not 141: killed by SIGPIPE)
rc=0
"$BIN/dr-train" "${LG[@]}" -o "$TMP/lg2.st" --log - 2>"$TMP/lg2.err" | head -n 1 >/dev/null || true
rc=${PIPESTATUS[0]}
check "dr-train --log - | head: exit status 1 (was $rc)" [ "$rc" = 1 ]
check "dr-train --log - | head: the state saved, named on stderr" \
    grep -Eq '^dr-train: \(stdout\): writing the log failed: Broken pipe; the state at step [0-9]+ is saved' "$TMP/lg2.err"
check "dr-train --log - | head: model and .state written" [ -s "$TMP/lg2.st" -a -s "$TMP/lg2.st.state" ]

# dr-meta: the state after the meta-step whose line failed, and the line with it
MG=(--config configs/tiny.yaml --set experiment.threads=1 --set meta.rounds=12 --set meta.save_minutes=0
    "$TMP/ok/manifest.tsv")
"$BIN/dr-meta" "${MG[@]}" -o "$TMP/mg_full.st" --log "$TMP/mg_full.jsonl" 2>/dev/null || fail "dr-meta, log to a file"
head -n 3 "$TMP/log.fifo" > "$TMP/mg.jsonl" &
expect_stop "dr-meta: a log whose reader went away saves the state with the line" \
    "log\.fifo: writing the log failed: Broken pipe; the state after meta-step [0-9]+ is saved in .*mg\.st\.state with that line \(once the cause is fixed, --resume continues from there and writes the line first\)" \
    "$BIN/dr-meta" "${MG[@]}" -o "$TMP/mg.st" --log "$TMP/log.fifo"
wait
step=$(grep -o 'after meta-step [0-9]*' "$TMP/stderr" | grep -o '[0-9]*$')
check "dr-meta: the state is of a meta-step after the lines read (meta-step ${step:-none})" [ "${step:-0}" -ge 4 ]
check "dr-meta: the .state holds the line" grep -q '"log_line"' "$TMP/mg.st.state"
check "dr-meta: --resume, appending to the 3 lines read, runs to the end" \
    "$BIN/dr-meta" "${MG[@]}" -o "$TMP/mg.st" --log "$TMP/mg.jsonl" --resume 2>/dev/null
check "dr-meta: the log equals the uninterrupted one (the lost line written again)" \
    cmp -s <(strip_seconds "$TMP/mg.jsonl") <(strip_seconds "$TMP/mg_full.jsonl")
check "dr-meta: the rater equals the uninterrupted one" same_tensors "$TMP/mg.st" "$TMP/mg_full.st"
check "dr-meta: the EMA equals the uninterrupted one" same_tensors "$TMP/mg.st.ema.safetensors" "$TMP/mg_full.st.ema.safetensors"

finish
