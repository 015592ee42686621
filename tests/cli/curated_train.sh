#!/usr/bin/env bash
# curated_train.sh — dr-train's curated modes on the toy problem (tests/data/gen_toy.sh),
# with a rater meta-trained by dr-meta (a few seconds):
#  - online filtering with --online-keep 1 is plain training bit for bit (the same
#    l_train and l_val on every line, the same model bytes), also with length bucketing;
#  - --weights with constant scores and softmax weights (w = 1 exactly) is plain training
#    bit for bit;
#  - every log line carries tokens, flops, flops_lm, flops_rater; flops_lm is the
#    formula 6·N + 6·L·d·T per position (B·T positions a step), flops_rater the rater's
#    forward 2·N_trunk + 2·L·d·T per position + the head, for ceil(B/F) candidates;
#  - online keep 0.5 trains on higher-scored examples (z_kept > z_all; the same logits
#    with 1 and 2 threads) and, the toy
#    rater preferring the clean pattern that Val holds, reaches a lower l_val than plain
#    training at the same step;
#  - --stop-at + --resume is bit-exact in both modes (logs and model), with read-ahead;
#  - refused before any training: scores that do not match the Train shards, keep
#    fractions outside (0, 1], --online-keep without --rater, --weights with --rater, an
#    LM as the rater, and resuming under another curation.
# Fails (never skips) when a tool is missing: dr-meta included.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-meta dr-score dr-train

TOY="--set experiment.threads=1 --set experiment.seed=3 --set data.seq_len=32 --set data.batch_size=16
 --set data.prefetch=0 --set lm.n_layer=1 --set lm.d_model=32 --set lm.n_head=2 --set lm.vocab_size=0
 --set lm.lr=3e-3 --set lm.schedule=constant --set lm.weight_decay=0 --set rater.n_layer=1
 --set rater.d_model=32 --set rater.n_head=2 --set rater.lr=1e-2 --set rater.weight_decay=0
 --set meta.rounds=10 --set meta.population_K=2 --set meta.T=4 --set meta.val_batches=2
 --set meta.checkpoint_every=2 --set meta.reset_every=8 --set meta.ema=0.9"
RUN="$TOY --set train.log_every=1 --set train.eval_every=10 --set train.eval_batches=8 --steps 20"

tests/data/gen_toy.sh 600 400 1 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/shards" "$TMP/toy.jsonl" >/dev/null 2>&1 \
    || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.3 --train-b 0.35 --val-sources clean --seed 1 -o "$TMP/splits" "$TMP/shards" \
    > "$TMP/manifest.tsv" 2>/dev/null || { echo "dr-split failed" >&2; exit 1; }
M=$TMP/manifest.tsv      # dr-train trains on train_b, dr-meta on train_a
"$BIN/dr-meta" $TOY -o "$TMP/rater.safetensors" "$M" 2>"$TMP/meta.err" \
    || { cat "$TMP/meta.err" >&2; echo "dr-meta failed" >&2; exit 1; }
R=$TMP/rater.safetensors

field() { grep -o "\"$1\":[^,}]*" | cut -d: -f2; }               # every value of key $1
losses() { grep -o '"l_train":[^,}]*\|"l_val":[^,}]*' "$1"; }     # the losses, line by line
strip_seconds() { sed 's/,"seconds":[^,}]*//' "$1"; }
# train NAME args...: a run logging to $TMP/NAME.jsonl, model $TMP/NAME.safetensors
train() {
    local name=$1; shift
    "$BIN/dr-train" "$@" --log "$TMP/$name.jsonl" -o "$TMP/$name.safetensors" "$M" 2> "$TMP/$name.err" \
        || { fail "dr-train $name: $(tail -n 1 "$TMP/$name.err")"; return 1; }
}

# ---- online keep 1.0 = plain training, bit for bit -------------------------------------
train plain $RUN
train online1 $RUN --rater "$R" --online-keep 1
check "online keep 1: the same l_train and l_val as plain training" cmp -s <(losses "$TMP/plain.jsonl") <(losses "$TMP/online1.jsonl")
check "online keep 1: the same model bytes as plain training" cmp -s "$TMP/plain.safetensors" "$TMP/online1.safetensors"
check "online keep 1: 21 log lines" [ "$(wc -l < "$TMP/online1.jsonl")" -eq 21 ]
BUCKET="--set data.bucket_by_length=true --set data.prefetch=2"
train plain_b $RUN $BUCKET
train online1_b $RUN $BUCKET --rater "$R" --online-keep 1
check "online keep 1 with length buckets and read-ahead: the same losses" cmp -s <(losses "$TMP/plain_b.jsonl") <(losses "$TMP/online1_b.jsonl")
check "online keep 1 with length buckets and read-ahead: the same model" cmp -s "$TMP/plain_b.safetensors" "$TMP/online1_b.safetensors"

# ---- --weights: constant scores with softmax weights (w = 1) = plain training ----------
"$BIN/dr-score" --rater "$R" $TOY --split train_b "$M" > "$TMP/scores.tsv" 2>/dev/null
awk -F'\t' -v OFS='\t' 'NR > 1 { $2 = 0.25 } 1' "$TMP/scores.tsv" > "$TMP/const.tsv"
SOFT="--set rater.normalize=softmax"
train plain_s $RUN $SOFT
train weights_c $RUN $SOFT --weights "$TMP/const.tsv"
check "--weights, constant scores, softmax: the same losses as plain training" cmp -s <(losses "$TMP/plain_s.jsonl") <(losses "$TMP/weights_c.jsonl")
check "--weights, constant scores, softmax: the same model" cmp -s "$TMP/plain_s.safetensors" "$TMP/weights_c.safetensors"
check "--weights logs w_mean = 1 for constant softmax weights" bash -c "[ \"\$(grep -o '\"w_mean\":[^,}]*' '$TMP/weights_c.jsonl' | sort -u)\" = '\"w_mean\":1' ]"
train weights $RUN --weights "$TMP/scores.tsv"
W=$(tail -n 1 "$TMP/weights.jsonl" | field w_mean)
check "--weights with the rater's scores: sigmoid weights, 0 < w_mean < 1 ($W)" awk -v w="$W" 'BEGIN { exit !(w > 0 && w < 1) }'

# ---- compute accounting ------------------------------------------------------------------
train online5 $RUN --rater "$R" --online-keep 0.5
for f in plain online1 online5 weights; do
    check "$f: every line has tokens, flops, flops_lm, flops_rater" \
        awk '!/"tokens":[0-9]+/ || !/"flops":[0-9.e+]+/ || !/"flops_lm":[0-9.e+]+/ || !/"flops_rater":[0-9.e+]+/ { exit 1 }' "$TMP/$f.jsonl"
done
# toy shapes: LM 1 layer d 32 vocab 257 ctx 32; rater the same trunk; B 16, T 32
LM_N=$(( 257*32 + 32*32 + 12*32*32 + 13*32 + 2*32 ))
RT_N=$(( 12*32*32 + 13*32 + 2*32 ))
FLM=$(awk -v n=$LM_N 'BEGIN { printf "%.0f", 20 * (6*n + 6*1*32*32) * 16 * 32 }')
FR1=$(awk -v n=$RT_N 'BEGIN { printf "%.0f", 20 * ((2*n + 2*1*32*32) * 16 * 32 + 2 * (32*32 + 32) * 16) }')
FR5=$(awk -v n=$RT_N 'BEGIN { printf "%.0f", 20 * ((2*n + 2*1*32*32) * 32 * 32 + 2 * (32*32 + 32) * 32) }')
last() { tail -n 1 "$TMP/$1.jsonl" | field "$2" | awk '{ printf "%.0f", $1 }'; }
echo "flops after 20 steps: LM $(last plain flops_lm) (formula $FLM), rater keep 1 $(last online1 flops_rater) ($FR1), keep 0.5 $(last online5 flops_rater) ($FR5)"
check "flops_lm = 20 steps × (6N + 6·L·d·T)·B·T" [ "$(last plain flops_lm)" = "$FLM" ]
check "flops_lm is the same with online filtering" [ "$(last online5 flops_lm)" = "$FLM" ]
check "flops_rater = 0 without a rater" [ "$(last plain flops_rater)" = 0 ]
check "flops_rater, keep 1: the rater's forward on B candidates a step" [ "$(last online1 flops_rater)" = "$FR1" ]
check "flops_rater, keep 0.5: on 2B candidates a step" [ "$(last online5 flops_rater)" = "$FR5" ]
check "flops = flops_lm + flops_rater" [ "$(last online5 flops)" = "$(awk -v a="$FLM" -v b="$FR5" 'BEGIN { printf "%.0f", a + b }')" ]
check "flops grow with the steps" bash -c "field() { grep -o \"\\\"\$1\\\":[^,}]*\" | cut -d: -f2; }; field flops < '$TMP/online5.jsonl' | sort -g -c"
check "tokens: the trained target tokens" [ "$(last plain tokens)" -gt 0 ]

# ---- online filtering does what it says ---------------------------------------------------
check "online keep 0.5: z_kept > z_all on every log line" \
    awk '/"z_kept"/ { match($0, /"z_kept":[^,}]*/); k = substr($0, RSTART + 9, RLENGTH - 9) + 0
                      match($0, /"z_all":[^,}]*/); a = substr($0, RSTART + 8, RLENGTH - 8) + 0
                      n++; if (!(k > a)) bad = 1 } END { exit bad || n != 20 }' "$TMP/online5.jsonl"
# the candidates' logits depend on the stream and the rater only: not on the thread count
train online5_t2 $RUN --rater "$R" --online-keep 0.5 --set experiment.threads=2
check "online keep 0.5: the same z_kept and z_all on every line with 1 and 2 threads" \
    cmp -s <(grep -o '"z_kept":[^,}]*,"z_all":[^,}]*' "$TMP/online5.jsonl") <(grep -o '"z_kept":[^,}]*,"z_all":[^,}]*' "$TMP/online5_t2.jsonl")
LP=$(tail -n 1 "$TMP/plain.jsonl" | field l_val)
LO=$(tail -n 1 "$TMP/online5.jsonl" | field l_val)
LW=$(tail -n 1 "$TMP/weights.jsonl" | field l_val)
echo "l_val after 20 steps: plain $LP, online keep 0.5 $LO, --weights $LW"
check "online keep 0.5 with the toy rater: lower l_val than plain training" awk -v a="$LO" -v b="$LP" 'BEGIN { exit !(a < b) }'

# ---- --stop-at + --resume: bit-exact ------------------------------------------------------
RES="$RUN --set data.prefetch=2 --set train.checkpoint_every=6"
for mode in online weights; do
    if [ $mode = online ]; then C=(--rater "$R" --online-keep 0.3); else C=(--weights "$TMP/scores.tsv"); fi
    train ${mode}_full $RES "${C[@]}"
    train ${mode}_half $RES "${C[@]}" --stop-at 13
    check "$mode: --stop-at 13 logs 14 lines" [ "$(wc -l < "$TMP/${mode}_half.jsonl")" -eq 14 ]
    train ${mode}_half $RES "${C[@]}" --resume
    check "$mode: --resume logs what one run logs" cmp -s <(strip_seconds "$TMP/${mode}_full.jsonl") <(strip_seconds "$TMP/${mode}_half.jsonl")
    check "$mode: --resume saves the same model" cmp -s "$TMP/${mode}_full.safetensors" "$TMP/${mode}_half.safetensors"
done

# ---- refusals before any training ----------------------------------------------------------
refuse() {  # description, pattern, dr-train args...
    local what=$1 pat=$2; shift 2
    rm -f "$TMP/bad.safetensors"
    expect_error "$what" "$pat" "$BIN/dr-train" "$@" -o "$TMP/bad.safetensors" "$M"
    [ ! -e "$TMP/bad.safetensors" ] || fail "$what: wrote a checkpoint"
}
"$BIN/dr-score" --rater "$R" $TOY --split train_a "$M" > "$TMP/other.tsv" 2>/dev/null
refuse "--weights: scores of other shards" "--weights: .*other.tsv:2: example [0-9a-f]{16}:[0-9]+ is not in the shards" $RUN --weights "$TMP/other.tsv"
sed 3d "$TMP/scores.tsv" > "$TMP/short.tsv"
refuse "--weights: a missing score" "--weights: .*no score for example" $RUN --weights "$TMP/short.tsv"
awk -F'\t' -v OFS='\t' 'NR == 4 { $2 = "nan" } 1' "$TMP/scores.tsv" > "$TMP/nan.tsv"
refuse "--weights: a NaN score" "nan.tsv:4: score 'nan' is not finite" $RUN --weights "$TMP/nan.tsv"
refuse "--weights: a missing file" "nope.tsv" $RUN --weights "$TMP/nope.tsv"
for f in 0 -0.5 1.5 nan; do
    refuse "--online-keep $f" "--online-keep: (keep fraction .* is outside \(0, 1\]|'$f' is not a number)" $RUN --rater "$R" --online-keep "$f"
done
refuse "--online-keep without --rater" "--online-keep needs --rater" $RUN --online-keep 0.5
refuse "--weights with --rater" "do not go together" $RUN --weights "$TMP/scores.tsv" --rater "$R"
refuse "an LM as the rater" "model_type is \"gpt2\", expected \"datarater\"" $RUN --rater "$TMP/plain.safetensors"
refuse "deploy.keep out of range" "deploy.keep" $RUN --rater "$R" --set deploy.keep=2
# resuming under another curation
cp "$TMP/online_full.safetensors" "$TMP/swap.safetensors"; cp "$TMP/online_full.safetensors.state" "$TMP/swap.safetensors.state"
for c in "plain training|" "re-weighting by scores|--weights $TMP/scores.tsv" "keep 0.3, not 0.6|--rater $R --online-keep 0.6"; do
    pat=${c%%|*}; args=${c#*|}
    expect_error "--resume of an online run as: $pat" "--resume: .*(was made by online filtering.*asks for $pat|$pat)" \
        "$BIN/dr-train" $RES $args --resume -o "$TMP/swap.safetensors" "$M"
done
# resuming --weights with other weight settings: refused (the rater's other keys may change)
cp "$TMP/weights_full.safetensors" "$TMP/wswap.safetensors"; cp "$TMP/weights_full.safetensors.state" "$TMP/wswap.safetensors.state"
expect_error "--resume of a --weights run with rater.tau 3" "--resume: .*wswap.safetensors was trained with rater.tau = [^ ]*, the config has 3" \
    "$BIN/dr-train" $RES --weights "$TMP/scores.tsv" --set rater.tau=3 --resume -o "$TMP/wswap.safetensors" "$M"
check "--resume of a --weights run with rater.lr 1 (unused): accepted" \
    "$BIN/dr-train" $RES --weights "$TMP/scores.tsv" --set rater.lr=1 --steps 24 --resume -o "$TMP/wswap.safetensors" "$M"
check "dr-train --help documents --weights, --rater, --online-keep" \
    bash -c "'$BIN/dr-train' --help | grep -q -- '--weights' && '$BIN/dr-train' --help | grep -q -- '--online-keep'"
finish
