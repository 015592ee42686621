#!/usr/bin/env bash
# bad_inputs.sh — the bad-input audit of dr-train, dr-meta (and `dr-meta grad`) and
# dr-score: corrupt, truncated, garbage and empty shards; empty and malformed manifests
# (files, stdin, --train/--val); malformed and absurd configs; missing, truncated,
# garbage, wrong-kind, wrong-dtype and wrong-shape safetensors given to --resume,
# --eval-only, --lm-init, --rater-init, --rater and --lm; corrupt or mismatched .state
# files; weights or moments holding NaN or an infinity, and a rater whose logits overflow;
# configurations whose buffers (meta-checkpoints, example indices, batches) exceed the
# machine; outputs in a directory that does not exist, under a regular file, in a read-only
# directory (not as root), an output path that is a directory, or one that names an input
# of the same run (a shard, the manifest, the config, a model, the scores) or another output.
# Every case must exit non-zero with exactly one line on stderr that names the file
# (or the option/key) and the problem (expect_error: no crash, no sanitizer report, no
# progress lines), within `timeout 20` (no hang), and leave no output file and no
# temporary file behind; a refused --resume leaves the checkpoint it was given as it was.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-train dr-meta dr-score

CFG=(--config configs/tiny.yaml --set experiment.threads=1 --set experiment.device=cpu --set data.batch_size=4)
META=(--set meta.rounds=1 --set meta.T=2 --set meta.val_batches=1)

# ---- a tiny corpus, an LM and a rater to break ---------------------------------------
tests/data/gen_toy.sh 60 40 3 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/shards" "$TMP/toy.jsonl" >/dev/null 2>&1 \
    || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.3 --val-sources clean --seed 1 -o "$TMP/splits" "$TMP/shards" > "$TMP/manifest.tsv" 2>/dev/null \
    || { echo "dr-split failed" >&2; exit 1; }
M=$TMP/manifest.tsv
TA=$TMP/splits/train_a
VAL=$TMP/splits/val
"$BIN/dr-train" "${CFG[@]}" --steps 2 -o "$TMP/lm.safetensors" "$M" 2>"$TMP/setup.err" \
    || { cat "$TMP/setup.err" >&2; echo "dr-train failed" >&2; exit 1; }
"$BIN/dr-train" "${CFG[@]}" --steps 2 --stop-at 1 -o "$TMP/lm1.safetensors" "$M" 2>"$TMP/setup.err" \
    || { cat "$TMP/setup.err" >&2; echo "dr-train --stop-at failed" >&2; exit 1; }
"$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/rater.safetensors" "$M" </dev/null 2>"$TMP/setup.err" \
    || { cat "$TMP/setup.err" >&2; echo "dr-meta failed" >&2; exit 1; }
LM=$TMP/lm.safetensors
R=$TMP/rater.safetensors

# ---- helpers -------------------------------------------------------------------------
# bad "what" PATTERN command...: expect_error under a 20 s limit (a hang is killed).
bad() { local what=$1 pat=$2; shift 2; expect_error "$what" "$pat" timeout 20 "$@"; }
# bad_stdin "what" PATTERN FILE command...: the same with stdin from FILE
stdin_from() { local f=$1; shift; "$@" < "$f"; }
bad_stdin() { local what=$1 pat=$2 f=$3; shift 3; expect_error "$what" "$pat" stdin_from "$f" timeout 20 "$@"; }
# no_file "what" PATH...: none of the paths exists (a refused run wrote nothing)
no_file() {
    local what=$1; shift
    for p in "$@"; do
        checks=$((checks + 1))
        if [ -e "$p" ]; then fail "$what: wrote $p"; rm -rf "$p"; fi
    done
}
# same_file "what" A B: a refused --resume left its checkpoint as it was
same_file() { checks=$((checks + 1)); cmp -s "$2" "$3" || fail "$1: $2 was changed"; }
# st_edit IN OUT MODE [args]: queues a safetensors file with one thing changed; st_apply
# makes them all (one python3 run of tests/cli/st_edit.py, which lists the modes: a start
# costs about as much as ten tool runs here). Jobs run in order (a job may edit an
# earlier OUT).
st_edit() { local IFS=$'\t'; printf '%s\n' "$*" >> "$TMP/edits.tsv"; }
st_apply() { python3 tests/cli/st_edit.py "$TMP/edits.tsv"; }
B=$TMP/bad; mkdir -p "$B"   # the bad inputs
HAVE_PY=0; command -v python3 >/dev/null && HAVE_PY=1
[ $HAVE_PY = 1 ] || echo "no python3: the crafted safetensors cases are skipped"
if [ $HAVE_PY = 1 ]; then
    st_edit "$LM" "$B/lm_dtype.safetensors" dtype transformer.wte.weight
    st_edit "$LM" "$B/lm_shape.safetensors" shape transformer.wte.weight
    st_edit "$LM" "$B/lm_drop.safetensors" drop transformer.ln_f.bias
    st_edit "$LM" "$B/lm_noconf.safetensors" meta config '{"model_type":"gpt2"}'
    st_edit "$LM" "$B/lm_confarr.safetensors" meta config '[1, 2]'
    st_edit "$LM" "$B/lm_huge.safetensors" metajson config n_embd 65536
    st_edit "$B/lm_huge.safetensors" "$B/lm_huge.safetensors" metajson config n_head 1
    st_edit "$LM" "$B/lm_layers.safetensors" metajson config n_layer 100000
    st_edit "$R" "$B/r_dtype.safetensors" dtype rater.wte.weight
    st_edit "$R" "$B/r_shape.safetensors" shape rater.head.out.weight
    st_edit "$R" "$B/r_drop.safetensors" drop rater.head.out.bias
    st_edit "$LM.state" "$B/nocursor.state" metajson datarater data_cursor
    st_edit "$LM.state" "$B/badstep.state" meta step abc
    st_edit "$LM.state" "$B/shape.state" shape m.transformer.wte.weight
    st_edit "$LM.state" "$B/curation.state" metajson datarater curation bogus
    st_edit "$R.state" "$B/mstreams.state" meta member.0.streams "0 999999 0 0"
    st_edit "$R.state" "$B/mjunk.state" meta meta_step "2junk"
    st_edit "$R.state" "$B/mneg.state" meta member.0.steps "-8 0"
    st_edit "$R.state" "$B/mprec.state" meta precision fp16
    st_edit "$R.state" "$B/mdrop.state" drop member.1.theta
    # the log line a saving run could not write goes into the log as it is: it must be one
    # JSON object of the state's meta-step (meta_step 1 here), the seconds a number
    st_edit "$R.state" "$B/mlogline.state" meta log_line '"{\"meta_step\":1}\nnot JSON"'
    st_edit "$R.state" "$B/mlogstep.state" meta log_line '{"meta_step":5}'
    st_edit "$R.state" "$B/msec.state" meta seconds nan
    st_edit "$LM" "$B/lm_nan.safetensors" nan transformer.h.1.mlp.c_fc.weight 5
    st_edit "$R" "$B/r_inf.safetensors" inf rater.head.out.bias
    st_edit "$LM.state" "$B/nan.state" nan v.transformer.wte.weight 3
    st_edit "$R.state" "$B/mnan.state" nan member.0.theta 7
    st_edit "$R" "$B/r_big.safetensors" fill rater.head.fc.bias 100   # finite weights, logits overflow
    st_edit "$B/r_big.safetensors" "$B/r_big.safetensors" fill rater.head.out.weight 3e38
    st_edit "$LM" "$B/lm_big.safetensors" fill transformer.h.1.mlp.c_fc.weight 3e38   # finite, the loss is not
    st_apply || fail "st_apply"
fi

# ---- bad shards, bad manifests --------------------------------------------------------
S1=$(ls "$TA"/*.drs | head -n 1)
SIZE=$(stat -c %s "$S1")
: > "$B/empty.drs"
yes 'not a shard, just text' | head -c 4096 > "$B/garbage.drs"
head -c $((SIZE / 2)) "$S1" > "$B/trunc.drs"
head -c 40 "$S1" > "$B/short.drs"
cp "$S1" "$B/flip.drs"    # one byte of the first block's data changed: its checksum catches it
printf '\xff' | dd of="$B/flip.drs" bs=1 seek=$((72 + 40)) conv=notrunc 2>/dev/null
cp "$S1" "$B/hdr.drs"     # one byte of the header changed
printf '\x07' | dd of="$B/hdr.drs" bs=1 seek=17 conv=notrunc 2>/dev/null
: > "$B/empty.tsv"
printf 'this is not a manifest\n' > "$B/garbage.tsv"
printf 'train_a\t%s\nval\t%s/nope.drs\n' "$S1" "$B" > "$B/missing.tsv"
printf 'train_a\t%s\x00junk\n' "$S1" > "$B/nul.tsv"
printf '# only comments\n' > "$B/comments.tsv"

SHARD_CASES=(
    "empty.drs|empty.drs: truncated: 0 bytes"
    "garbage.drs|garbage.drs: not a token shard"
    "trunc.drs|trunc.drs: .*(truncated|corrupted)"
    "short.drs|short.drs: truncated: 40 bytes"
    "flip.drs|flip.drs: block 0: .*corrupted"
    "hdr.drs|hdr.drs: header checksum mismatch"
    "nope.drs|nope.drs: .*No such file"
)
MANIFEST_CASES=(
    "empty.tsv|empty.tsv: manifest lists no shards"
    "garbage.tsv|garbage.tsv:1: expected \"split<TAB>path\""
    "missing.tsv|missing.tsv:2: .*nope.drs: No such file"
    "nul.tsv|nul.tsv:1: NUL byte"
    "comments.tsv|comments.tsv: manifest lists no shards"
)
for c in "${SHARD_CASES[@]}" "${MANIFEST_CASES[@]}"; do
    f=${c%%|*}; pat=${c#*|}
    bad "dr-train --train $f" "$pat" "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$B/$f" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-train --val $f" "$pat" "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$TA" --val "$B/$f" -o "$TMP/o.safetensors"
    bad "dr-train --eval-only, Val $f" "$pat" "$BIN/dr-train" "${CFG[@]}" --eval-only "$LM" --val "$B/$f"
    bad "dr-meta --train $f" "$pat" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --train "$B/$f" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-meta --val $f" "$pat" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --train "$TA" --val "$B/$f" -o "$TMP/o.safetensors"
    bad "dr-meta grad --train $f" "$pat" "$BIN/dr-meta" grad "${CFG[@]}" "${META[@]}" --lm-init "$LM" --rater-init "$R" \
        --train "$B/$f" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-score --rater, input $f" "$pat" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/o.tsv" "$B/$f"
    bad "dr-score --lm, input $f" "$pat" "$BIN/dr-score" "${CFG[@]}" --lm "$LM" -o "$TMP/o.tsv" "$B/$f"
    no_file "$f" "$TMP/o.safetensors" "$TMP/o.ema.safetensors" "$TMP/o.safetensors.state" "$TMP/o.tsv"
done
# a manifest on stdin: empty, garbage
for f in empty.tsv garbage.tsv; do
    pat="\(stdin\): manifest lists no shards"; [ $f = garbage.tsv ] && pat="\(stdin\):1: expected"
    bad_stdin "dr-train - < $f" "$pat" "$B/$f" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" -
    bad_stdin "dr-meta - < $f" "$pat" "$B/$f" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/o.safetensors" -
    bad_stdin "dr-meta (no inputs) < $f" "$pat" "$B/$f" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/o.safetensors"
    bad_stdin "dr-score - < $f" "$pat" "$B/$f" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/o.tsv" -
    no_file "stdin $f" "$TMP/o.safetensors" "$TMP/o.tsv"
done
# a manifest without the split a tool needs: the message names the manifest (or stdin)
printf 'train_a\t%s\n' "$S1" > "$B/no_val.tsv"
printf 'train_b\t%s\n' "$S1" > "$B/no_val2.tsv"
bad "dr-train: a manifest without val" "^dr-train: .*/no_val.tsv: no shards of split 'val' for Val \(its splits: train_a\); give Val with --val$" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" "$B/no_val.tsv"
bad "dr-train --val: a manifest without val" "^dr-train: .*/no_val.tsv: no shards of split 'val' for Val \(its splits: train_a\)$" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$TA" --val "$B/no_val.tsv" -o "$TMP/o.safetensors"
bad "dr-meta: a manifest without val" "^dr-meta: .*/no_val.tsv: no shards of split 'val' for Val \(its splits: train_a\); give a manifest with val lines \(dr-split\) or --val$" \
    "$BIN/dr-meta" "${CFG[@]}" -o "$TMP/o.safetensors" "$B/no_val.tsv"
bad_stdin "dr-meta: a manifest without train_a on stdin" "^dr-meta: \(stdin\): no shards of split 'train_a' for Train_A \(its splits: train_b\); give a manifest" \
    "$B/no_val2.tsv" "$BIN/dr-meta" "${CFG[@]}" -o "$TMP/o.safetensors"
bad "dr-meta: shards given directly" "^dr-meta: .*/train_a: no shards of split 'train_a' for Train_A \(it names no split\); give a manifest" \
    "$BIN/dr-meta" "${CFG[@]}" -o "$TMP/o.safetensors" "$TA"
bad "dr-score: no shards of the split" "^dr-score: .*/no_val.tsv: no shards of split 'val' \(its splits: train_a\)$" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" --split val "$B/no_val.tsv"
bad_stdin "dr-score: no shards of the split, manifest on stdin" "^dr-score: \(stdin\): no shards of split 'val' \(its splits: train_a\)$" \
    "$B/no_val.tsv" "$BIN/dr-score" "${CFG[@]}" --rater "$R" --split val -
bad "dr-score: two manifests without the split" "^dr-score: .*/no_val.tsv, .*/no_val2.tsv: no shards of split 'val' \(their splits: train_a, train_b\)$" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" --split val "$B/no_val.tsv" "$B/no_val2.tsv"
bad "dr-train: a missing input" "nope.tsv: No such file" "$BIN/dr-train" "${CFG[@]}" -o "$TMP/o.safetensors" "$TMP/nope.tsv"
no_file "split" "$TMP/o.safetensors"

# ---- configs: malformed, unknown keys, absurd values ----------------------------------
printf 'lm:\n  d_model: [32\n' > "$B/syntax.yaml"
printf 'lm:\n  dmodel: 32\n' > "$B/unknown.yaml"
printf 'lm:\n  lr: -1\n' > "$B/neg.yaml"
printf '\x00\x01\x02garbage\xff\xfe\n' > "$B/binary.yaml"
# 100000 nested flow lists: libyaml's scanner takes time quadratic in the depth (minutes)
awk 'BEGIN { printf "lm:\n  betas: "; for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]"; print "" }' > "$B/deep.yaml"
CONFIG_CASES=(
    "*--config $B/syntax.yaml|syntax.yaml:[0-9]+: YAML syntax error"
    "--config $B/unknown.yaml|unknown.yaml:2: unknown key 'lm.dmodel' \(did you mean lm.d_model\?\)"
    "--config $B/neg.yaml|neg.yaml:2: lm.lr: expected a number in \(0, 1000\], got '-1'"
    "--config $B/binary.yaml|binary.yaml:[0-9]+: "
    "*--config $B/nope.yaml|nope.yaml: cannot open: No such file"
    "*--config $B/deep.yaml|deep.yaml:2: nested more than 32 levels deep: not a config file"
    "*--set lm.foo=1|--set lm.foo=1: unknown key 'lm.foo'"
    "*--set data.batch_size=0|data.batch_size: expected an integer in \[1, "
    "--set data.batch_size=-4|data.batch_size: expected an integer in \[1, "
    "--set data.seq_len=0|data.seq_len: expected an integer in \[1, "
    "*--set meta.T=0|meta.T: expected an integer in \[1, "
    "*--set lm.lr=nan|lm.lr: expected a number in \(0, 1000\], got 'nan'"
    "--set lm.lr=-1e-3|lm.lr: expected a number in \(0, 1000\]"
    "--set rater.lr=inf|rater.lr: expected a number in \(0, 1000\]"
    "--set deploy.keep=0|deploy.keep: expected a number in \(0, 1\]"
    "*--set deploy.keep=1.5|deploy.keep: expected a number in \(0, 1\]"
    "--set lm.d_model=0|lm.d_model: expected an integer in \[1, "
    # more blocks than the models hold: the key says so (it was 'lm: n_layer = 49' from the model code)
    "*--set lm.n_layer=49|--set lm.n_layer=49: lm.n_layer: expected an integer in \[1, 48\], got '49'"
    "--set rater.n_layer=1024|--set rater.n_layer=1024: rater.n_layer: expected an integer in \[1, 48\]"
    "*--set lm.n_head=3|lm.n_head: d_model 32 is not divisible by n_head 3"
    "--set data.seq_len_rater=64|data.seq_len_rater: the rater sees at most the seq_len \+ 1 = 33 tokens"
    "--set meta.checkpoint_every=9|meta.checkpoint_every: checkpoint_every = 9 is more than the T = 4 inner steps"
    "--set train.steps=-1|train.steps: expected an integer"
    "--set experiment.threads=-1|experiment.threads: expected an integer in \[0, "
    "--set data.min_tokens=1|data.min_tokens: expected an integer in \[2, "
    # bf16 is a CUDA mode: refused once --device has picked the CPU, by every tool
    "*--set experiment.precision=bf16 --device cpu|experiment.precision = bf16 needs the CUDA backend .*use fp32 or --device cuda"
    # within the schema's bounds but beyond any machine: one message before any work (the
    # CPU backend counts its buffers against RAM + swap), not the kernel's OOM killer
    # (a user's condition: no source file:line in the message, the bytes and GB it wanted)
    "--set lm.d_model=65536 --set data.batch_size=1000000|^dr-train: out of memory: [0-9]+ bytes \([0-9.]+ GB\) more would make .* more than this machine's .* GB \(RAM \+ swap\): lower data.batch_size"
)
# every case against dr-train; the cases marked * against every tool as well (one loader,
# lib/config.c, serves them all: these check that each tool reports its error as it is)
for c in "${CONFIG_CASES[@]}"; do
    all=0; [ "${c:0:1}" = "*" ] && { all=1; c=${c:1}; }
    opt=${c%%|*}; pat=${c#*|}
    read -r -a o <<< "$opt"
    C=("${CFG[@]}")
    case $opt in --config*) C=("${CFG[@]:2}") ;; esac   # the case's file instead of tiny.yaml
    bad "dr-train $opt" "$pat" "$BIN/dr-train" "${C[@]}" "${o[@]}" --steps 1 -o "$TMP/o.safetensors" "$M"
    no_file "$opt" "$TMP/o.safetensors"
    [ $all = 1 ] || continue
    bad "dr-meta $opt" "$pat" "$BIN/dr-meta" "${C[@]}" "${o[@]}" -o "$TMP/o.safetensors" "$M"
    bad "dr-meta grad $opt" "$pat" "$BIN/dr-meta" grad "${C[@]}" "${o[@]}" --lm-init "$LM" --rater-init "$R" \
        --train "$TA" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-score $opt" "$pat" "$BIN/dr-score" "${C[@]}" "${o[@]}" --rater "$R" -o "$TMP/o.tsv" "$M"
    no_file "$opt" "$TMP/o.safetensors" "$TMP/o.tsv"
done
# options
bad "dr-train --steps 0" "--steps: 0 is out of range" "$BIN/dr-train" "${CFG[@]}" --steps 0 "$M"
bad "dr-train --steps abc" "--steps: 'abc' is not an integer" "$BIN/dr-train" "${CFG[@]}" --steps abc "$M"
bad "dr-train --online-keep 0" "--online-keep: keep fraction 0 is outside \(0, 1\]" "$BIN/dr-train" "${CFG[@]}" --rater "$R" --online-keep 0 "$M"
bad "dr-train --online-keep 1.5" "--online-keep: keep fraction 1.5 is outside \(0, 1\]" "$BIN/dr-train" "${CFG[@]}" --rater "$R" --online-keep 1.5 "$M"
bad "dr-train --online-keep 1.0000001, named as given" "--online-keep: keep fraction 1\.0000001 is outside \(0, 1\]$" "$BIN/dr-train" "${CFG[@]}" --rater "$R" --online-keep 1.0000001 "$M"
bad "dr-train --online-keep nan" "--online-keep: 'nan' is not a number" "$BIN/dr-train" "${CFG[@]}" --rater "$R" --online-keep nan "$M"
bad "dr-train -o -: a model is a file" "^dr-train: -o -: the model is saved to a file .*name a file$" "$BIN/dr-train" "${CFG[@]}" -o - "$M"
bad "dr-meta -o -: a rater is a file" "^dr-meta: -o -: the rater is saved to a file .*name a file$" "$BIN/dr-meta" "${CFG[@]}" -o - "$M"
bad "dr-meta --stop-at -1" "--stop-at: -1 is out of range" "$BIN/dr-meta" "${CFG[@]}" --stop-at -1 "$M"
bad "dr-meta: a model beyond the machine" "^dr-meta: out of memory: .* more than this machine's" \
    "$BIN/dr-meta" "${CFG[@]}" --set lm.d_model=65536 --set data.batch_size=1000000 -o "$TMP/o.safetensors" "$M"
no_file "dr-meta: a model beyond the machine" "$TMP/o.safetensors"
# a small model, but T/c checkpoints of its state, or index arrays, beyond the machine:
# refused before the first buffer (it used to fill the memory one checkpoint at a time)
bad "dr-meta: T = 1e8 inner steps, a checkpoint at every one" \
    "out of memory: the meta-run needs .* GB of them for the ceil\(meta.T / meta.checkpoint_every\) checkpoints .*: raise meta.checkpoint_every" \
    "$BIN/dr-meta" "${CFG[@]}" --set meta.T=100000000 --set meta.checkpoint_every=1 -o "$TMP/o.safetensors" "$M"
bad "dr-meta: a segment of 1e8 states" "GB of them for the meta.checkpoint_every states of a recomputed segment.*: lower meta.checkpoint_every" \
    "$BIN/dr-meta" "${CFG[@]}" --set meta.T=100000000 --set meta.checkpoint_every=100000000 -o "$TMP/o.safetensors" "$M"
bad "dr-meta: 2^31 Val batches" "GB of them for the example indices of meta.T \+ meta.val_batches batches.*: lower meta.T or meta.val_batches" \
    "$BIN/dr-meta" "${CFG[@]}" --set meta.val_batches=2147483647 -o "$TMP/o.safetensors" "$M"
bad "dr-meta grad: T = 1e8, a checkpoint at every step" "out of memory: .*raise meta.checkpoint_every" \
    "$BIN/dr-meta" grad "${CFG[@]}" --set meta.T=100000000 --set meta.checkpoint_every=1 --lm-init "$LM" --rater-init "$R" \
    --train "$TA" --val "$VAL" -o "$TMP/o.safetensors"
no_file "dr-meta: checkpoints beyond the machine" "$TMP/o.safetensors" "$TMP/o.safetensors.state" "$TMP/o.ema.safetensors"
bad "dr-score: a batch beyond the machine" "out of memory: a batch of 1048576 windows of data.seq_len = 1048576 tokens needs .* GB of token buffers.*: lower data.batch_size \(or --batch\) or data.seq_len" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" --set data.seq_len=1048576 --set data.batch_size=1048576 -o "$TMP/o.tsv" "$M"
no_file "dr-score: a batch beyond the machine" "$TMP/o.tsv"
bad "dr-score --batch 0" "--batch: 0 is out of range" "$BIN/dr-score" "${CFG[@]}" --rater "$R" --batch 0 "$M"
bad "dr-meta grad without --lm-init" "grad needs --lm-init and --rater-init" "$BIN/dr-meta" grad "${CFG[@]}" --rater-init "$R" "$M"

# ---- safetensors: missing, empty, truncated, garbage, wrong kind, dtype, shape --------
cp "$LM" "$B/lm_empty.safetensors"; : > "$B/lm_empty.safetensors"
head -c $(( $(stat -c %s "$LM") / 2 )) "$LM" > "$B/lm_trunc.safetensors"
head -c 20 "$LM" > "$B/lm_short.safetensors"
yes 'garbage bytes' | head -c 5000 > "$B/lm_garbage.safetensors"
cp "$LM" "$B/lm_json.safetensors"; printf 'x' | dd of="$B/lm_json.safetensors" bs=1 seek=9 conv=notrunc 2>/dev/null
cp "$R" "$B/r_trunc.safetensors"; truncate -s -100 "$B/r_trunc.safetensors"
ST_CASES=(
    "nope.safetensors|nope.safetensors: cannot open: No such file"
    "lm_empty.safetensors|lm_empty.safetensors: truncated: 0 bytes"
    "lm_short.safetensors|lm_short.safetensors: truncated: header length"
    "lm_trunc.safetensors|lm_trunc.safetensors: .*outside the data section"
    "lm_garbage.safetensors|lm_garbage.safetensors: not a safetensors file"
    "lm_json.safetensors|lm_json.safetensors: header is not valid JSON"
    "r_trunc.safetensors|r_trunc.safetensors: .*outside the data section"
)
if [ $HAVE_PY = 1 ]; then
    ST_CASES+=(
        "lm_dtype.safetensors|lm_dtype.safetensors: tensor transformer.wte.weight has dtype I(32|64), expected F32 or F64 \(or F16, BF16\)"
        "lm_shape.safetensors|lm_shape.safetensors: tensor transformer.wte.weight has shape \[32,257\], the config says \[257,32\]"
        "lm_drop.safetensors|lm_drop.safetensors: missing tensor transformer.ln_f.bias"
        "lm_noconf.safetensors|lm_noconf.safetensors: config in __metadata__ has no integer \"vocab_size\""
        "lm_confarr.safetensors|lm_confarr.safetensors: config in __metadata__ is not an object"
        "lm_huge.safetensors|lm_huge.safetensors: tensor transformer.wte.weight has shape \[257,32\], the config says \[257,65536\]"
        "lm_layers.safetensors|lm_layers.safetensors: config in __metadata__: n_layer = 100000"
        "r_dtype.safetensors|r_dtype.safetensors: tensor rater.wte.weight has dtype I(32|64), expected F32 or F64 \(or F16, BF16\)"
        "r_shape.safetensors|r_shape.safetensors: tensor rater.head.out.weight has shape \\[1,32\\], the config says \\[32,1\\]"
        "r_drop.safetensors|r_drop.safetensors: missing tensor rater.head.out.bias"
        # a NaN or an infinity in the weights would give NaN losses and scores: refused
        "lm_nan.safetensors|lm_nan.safetensors: tensor 'transformer.h.1.mlp.c_fc.weight' holds NaN at element 5"
        "r_inf.safetensors|r_inf.safetensors: tensor 'rater.head.out.bias' holds an infinity at element 0"
    )
fi
for c in "${ST_CASES[@]}"; do
    f=${c%%|*}; pat=${c#*|}
    # a defect of a file read as an LM (lm_*) or as a rater (r_*); in the other kind's
    # slot the file is first of all the wrong kind
    lmpat=$pat; rpat=$pat
    case $f in
        lm_dtype*|lm_shape*|lm_drop*|lm_noconf*|lm_huge*|lm_layers*|lm_nan*) rpat="$f: model_type is \"gpt2\", expected \"datarater\"" ;;
        r_dtype*|r_shape*|r_drop*|r_inf*) lmpat="$f: model_type is \"datarater\", expected \"gpt2\"" ;;
    esac
    bad "dr-train --eval-only $f" "$lmpat" "$BIN/dr-train" "${CFG[@]}" --eval-only "$B/$f" "$M"
    bad "dr-meta grad --lm-init $f" "$lmpat" "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$B/$f" --rater-init "$R" \
        --train "$TA" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-meta grad --rater-init $f" "$rpat" "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$B/$f" \
        --train "$TA" --val "$VAL" -o "$TMP/o.safetensors"
    bad "dr-score --lm $f" "$lmpat" "$BIN/dr-score" "${CFG[@]}" --lm "$B/$f" -o "$TMP/o.tsv" "$M"
    bad "dr-score --rater $f" "$rpat" "$BIN/dr-score" "${CFG[@]}" --rater "$B/$f" -o "$TMP/o.tsv" "$M"
    bad "dr-train --rater $f" "--rater: .*$rpat" "$BIN/dr-train" "${CFG[@]}" --steps 1 --rater "$B/$f" -o "$TMP/o.safetensors" "$M"
    # --resume: the file as the checkpoint, a good .state next to it
    rm -f "$TMP/res.safetensors"
    [ -e "$B/$f" ] && cp "$B/$f" "$TMP/res.safetensors"
    cp "$LM.state" "$TMP/res.safetensors.state"
    respat="--resume: .*${lmpat//$f/res.safetensors}"
    # no model beside its state: the first save was cut short
    [ -e "$B/$f" ] || respat="--resume: .*res.safetensors is missing but .*res.safetensors.state is there: the run's first save was cut short"
    bad "dr-train --resume $f" "$respat" \
        "$BIN/dr-train" "${CFG[@]}" --steps 2 --resume -o "$TMP/res.safetensors" "$M"
    if [ -e "$B/$f" ]; then same_file "--resume $f" "$B/$f" "$TMP/res.safetensors"; fi
    rm -f "$TMP/res.safetensors" "$TMP/res.safetensors.state"
    no_file "$f" "$TMP/o.safetensors" "$TMP/o.safetensors.state" "$TMP/o.tsv"
done
# a header of 300000 metadata keys, one of them twice: found by sorting them, not by
# comparing every pair (that took minutes)
if [ $HAVE_PY = 1 ]; then
    python3 - "$B/lm_keys.safetensors" <<'EOF'
import json, struct, sys
hb = json.dumps({'__metadata__': {'k%d' % i: '' for i in range(300000)}}, separators=(',', ':'))
hb = (hb[:-2] + ',"k7":"x"}}').encode()
hb += b' ' * (-len(hb) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(hb)) + hb)
EOF
    bad "dr-score --lm: 300000 metadata keys, one twice" "lm_keys.safetensors: metadata key 'k7' appears twice" \
        "$BIN/dr-score" "${CFG[@]}" --lm "$B/lm_keys.safetensors" -o "$TMP/o.tsv" "$M"
    no_file "300000 metadata keys" "$TMP/o.tsv"
fi
# the right kind, but not what the data or the config needs
bad "dr-score --lm: data.seq_len beyond the LM's positions" "lm.safetensors: .*32 positions" \
    "$BIN/dr-score" "${CFG[@]}" --set data.seq_len=64 --lm "$LM" -o "$TMP/o.tsv" "$M"
bad "dr-train --eval-only: data.seq_len beyond the LM's positions" "lm.safetensors: .*32 positions" \
    "$BIN/dr-train" "${CFG[@]}" --set data.seq_len=64 --eval-only "$LM" "$M"
bad "dr-meta grad: data.seq_len beyond the checkpoints' positions" "lm.safetensors: .*32 positions" \
    "$BIN/dr-meta" grad "${CFG[@]}" --set data.seq_len=64 --lm-init "$LM" --rater-init "$R" --train "$TA" --val "$VAL" -o "$TMP/o.safetensors"
# (the byte tokenizer's fingerprint, so that the vocabulary is what is refused, not the tokenizer)
BYTE_FP=(--spec byte --fingerprint "$("$BIN/dr-split" --val 0.3 -o "$B/fp_probe" "$TMP/shards" 2>/dev/null |
         sed -n 's/^# tokenizer: byte fingerprint \([0-9a-f]*\) .*/\1/p')")
"$MKSHARD" --random 20 --vocab 1000 "${BYTE_FP[@]}" "$B/big_vocab.drs" 2>/dev/null || fail "mkshard"
"$MKSHARD" --random 20 --vocab 1000 "${BYTE_FP[@]}" --seed 2 --first-id 100 "$B/big_vocab2.drs" 2>/dev/null || fail "mkshard"
bad "dr-score --lm: shards beyond the LM's vocabulary" "lm.safetensors: .*vocabulary" \
    "$BIN/dr-score" "${CFG[@]}" --lm "$LM" -o "$TMP/o.tsv" "$B/big_vocab.drs"
bad "dr-score --rater: shards beyond the rater's vocabulary" "rater.safetensors: .*vocabulary" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/o.tsv" "$B/big_vocab.drs"
bad "dr-train --eval-only: shards beyond the LM's vocabulary" "lm.safetensors: .*vocabulary" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$LM" --val "$B/big_vocab.drs"
bad "dr-train --rater: shards beyond the rater's vocabulary" "rater.safetensors: .*vocabulary" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --rater "$R" --train "$B/big_vocab.drs" --val "$B/big_vocab2.drs" -o "$TMP/o.safetensors"
"$MKSHARD" --random 20 --vocab 257 "$B/other_tok.drs" 2>/dev/null || fail "mkshard"
bad "dr-meta grad: shards beyond the LM's vocabulary" "lm.safetensors: .*vocabulary" \
    "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$R" --train "$B/big_vocab.drs" --val "$B/big_vocab2.drs" -o "$TMP/o.safetensors"
bad "dr-train: Train and Val of different tokenizers" "different tokenizers" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$TA" --val "$B/other_tok.drs" -o "$TMP/o.safetensors"
bad "dr-meta: Train_A and Val of different tokenizers" "different tokenizers" \
    "$BIN/dr-meta" "${CFG[@]}" --train "$TA" --val "$B/other_tok.drs" -o "$TMP/o.safetensors"
# a checkpoint trained on shards of another tokenizer (same vocabulary size, other
# fingerprint): the checkpoint records its tokenizer; its ids would mean other text
"$MKSHARD" --random 20 --vocab 257 --seed 3 "$B/other_tok2.drs" 2>/dev/null || fail "mkshard"
OT=(--train "$B/other_tok.drs" --val "$B/other_tok2.drs")
bad "dr-score --lm: an LM of another tokenizer" "lm.safetensors was trained on shards of another tokenizer \(\"byte\", fingerprint [0-9a-f]{16}\) than .*other_tok.drs \(\"test\", fingerprint 0000000000007e57\)" \
    "$BIN/dr-score" "${CFG[@]}" --lm "$LM" -o "$TMP/o.tsv" "$B/other_tok.drs"
bad "dr-score --rater: a rater of another tokenizer" "rater.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/o.tsv" "$B/other_tok.drs"
no_file "dr-score: another tokenizer" "$TMP/o.tsv"
bad "dr-train --eval-only: an LM of another tokenizer" "--eval-only .*lm.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$LM" --val "$B/other_tok.drs"
bad "dr-train --init: an LM of another tokenizer" "--init .*lm.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --init "$LM" "${OT[@]}" -o "$TMP/o.safetensors"
bad "dr-train --rater: a rater of another tokenizer" "--rater .*rater.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --rater "$R" "${OT[@]}" -o "$TMP/o.safetensors"
no_file "dr-train: another tokenizer" "$TMP/o.safetensors"
# another tokenizer with a larger vocabulary: the tokenizers are named (the cause), not
# only the vocabulary sizes
"$MKSHARD" --random 20 --vocab 1000 "$B/other_big.drs" 2>/dev/null || fail "mkshard"
bad "dr-score --lm: another tokenizer, larger vocabulary: the tokenizers named" \
    "lm.safetensors was trained on shards of another tokenizer \(\"byte\".*other_big.drs \(\"test\"" \
    "$BIN/dr-score" "${CFG[@]}" --lm "$LM" -o "$TMP/o.tsv" "$B/other_big.drs"
bad "dr-train --eval-only: another tokenizer, larger vocabulary: the tokenizers named" \
    "--eval-only .*lm.safetensors was trained on shards of another tokenizer \(\"byte\"" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$LM" --val "$B/other_big.drs"
bad "dr-meta grad: an LM of another tokenizer" "--lm-init .*lm.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$R" "${OT[@]}" -o "$TMP/o.safetensors"
cp "$R" "$TMP/rr.safetensors"; cp "$R.state" "$TMP/rr.safetensors.state"
bad "dr-meta --resume: a rater of another tokenizer" "--resume .*rr.safetensors was trained on shards of another tokenizer" \
    "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --set meta.rounds=2 --resume "${OT[@]}" -o "$TMP/rr.safetensors"
same_file "dr-meta --resume: another tokenizer" "$R" "$TMP/rr.safetensors"
# finite weights whose logits overflow: no scores.tsv with "inf" in it (dr-filter would refuse it)
if [ $HAVE_PY = 1 ]; then
    bad "dr-score --rater: logits that overflow" "^dr-score: .*r_big.safetensors: example [0-9a-f]{16}:[0-9]+: the rater's logit is inf, not a finite number" \
        "$BIN/dr-score" "${CFG[@]}" --rater "$B/r_big.safetensors" -o "$TMP/o.tsv" "$M"
    no_file "dr-score: logits that overflow" "$TMP/o.tsv"
    # an LM whose loss overflows: --eval-only refuses it as dr-score --lm does (it printed
    # {"l_val":null,…} with exit status 0)
    bad "dr-train --eval-only: a loss that overflows" "^dr-train: --eval-only .*lm_big.safetensors: the Val loss is (NaN|inf), not a finite number" \
        "$BIN/dr-train" "${CFG[@]}" --eval-only "$B/lm_big.safetensors" "$M"
    bad "dr-score --lm: a loss that overflows" "^dr-score: .*lm_big.safetensors: example [0-9a-f]{16}:[0-9]+: the LM's loss is (NaN|inf), not a finite number" \
        "$BIN/dr-score" "${CFG[@]}" --lm "$B/lm_big.safetensors" -o "$TMP/o.tsv" "$M"
    no_file "an LM whose loss overflows" "$TMP/o.tsv"
    # dr-train --rater: the run's info lines (model, data, the filter, step 0's l_val) come
    # first, as before any training error; the error is one line naming the rater
    checks=$((checks + 1)); rc=0
    timeout 20 "$BIN/dr-train" "${CFG[@]}" --steps 2 --rater "$B/r_big.safetensors" -o "$TMP/o.safetensors" "$M" \
        >/dev/null 2>"$TMP/rt.err" || rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then fail "dr-train --rater: logits that overflow: exit status $rc"
    elif ! tail -n 1 "$TMP/rt.err" | grep -Eq "^dr-train: --rater .*r_big\.safetensors: step 0: example [0-9a-f]{16}:[0-9]+: the rater's logit is inf, not a finite number"; then
        fail "dr-train --rater: logits that overflow: last line '$(tail -n 1 "$TMP/rt.err")'"
    elif head -n -1 "$TMP/rt.err" | grep -Evq "^dr-train: (LM [0-9.]+M parameters|Train [0-9]+ examples|online filtering: |step 0: l_val )"; then
        fail "dr-train --rater: logits that overflow: more than the info lines before the error:"; cat "$TMP/rt.err" >&2
    fi
    no_file "dr-train: logits that overflow" "$TMP/o.safetensors" "$TMP/o.safetensors.state"
fi
# --weights: scores that are missing or not scores
bad "dr-train --weights: a missing file" "--weights: .*nope.tsv: cannot open: No such file" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --weights "$TMP/nope.tsv" -o "$TMP/o.safetensors" "$M"
bad "dr-train --weights: an empty file" "--weights: .*empty.tsv: empty file" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --weights "$B/empty.tsv" -o "$TMP/o.safetensors" "$M"
bad "dr-train --weights: garbage" "--weights: .*garbage.drs:1: expected the header" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --weights "$B/garbage.drs" -o "$TMP/o.safetensors" "$M"
no_file "data vs model" "$TMP/o.safetensors" "$TMP/o.tsv"

# ---- dr-train --resume: a missing, corrupt or mismatched .state ------------------------
resume_case() {  # what PATTERN STATEFILE [extra options]: resume a copy of lm.safetensors
    local what=$1 pat=$2 state=$3; shift 3   # STATEFILE "-": none
    cp "$LM" "$TMP/res.safetensors"
    if [ "$state" = - ]; then rm -f "$TMP/res.safetensors.state"; else cp "$state" "$TMP/res.safetensors.state"; fi
    bad "dr-train --resume: $what" "$pat" "$BIN/dr-train" "${CFG[@]}" --steps 2 "$@" --resume -o "$TMP/res.safetensors" "$M"
    same_file "--resume: $what" "$LM" "$TMP/res.safetensors"
    rm -f "$TMP/res.safetensors" "$TMP/res.safetensors.state"
}
bad "dr-train --resume: no checkpoint at all" "--resume: .*nothing.safetensors: cannot open: No such file" \
    "$BIN/dr-train" "${CFG[@]}" --steps 2 --resume -o "$TMP/nothing.safetensors" "$M"
no_file "--resume: no checkpoint at all" "$TMP/nothing.safetensors" "$TMP/nothing.safetensors.state"
resume_case "no .state" "--resume: .*res.safetensors.state: cannot open: No such file" -
resume_case "an empty .state" "res.safetensors.state: truncated: 0 bytes" "$B/lm_empty.safetensors"
resume_case "a garbage .state" "res.safetensors.state: not a safetensors file" "$B/lm_garbage.safetensors"
head -c 3000 "$LM.state" > "$B/trunc.state"
resume_case "a truncated .state" "res.safetensors.state: truncated: header length" "$B/trunc.state"
resume_case "an LM as .state" "res.safetensors.state: optimizer state is unmarked, expected adamw" "$LM"
resume_case "the .state of another step" "res.safetensors is at step 2 but .*res.safetensors.state at step 1" "$TMP/lm1.safetensors.state"
resume_case "an AdamW .state for SGD" "res.safetensors.state: optimizer state is adamw, expected sgd" "$LM.state" \
    --set lm.optimizer=sgd
resume_case "another model shape" "--resume: .*res.safetensors holds a 2-layer d32 .* the config asks for 2-layer d64" "$LM.state" \
    --set lm.d_model=64
resume_case "a dr-meta state" "res.safetensors.state: optimizer state is unmarked, expected adamw" "$R.state"
if [ $HAVE_PY = 1 ]; then
    resume_case "counters missing" "res.safetensors.state: missing or malformed training counters" "$B/nocursor.state"
    resume_case "a malformed step" "res.safetensors.state: bad or missing \"step\"" "$B/badstep.state"
    resume_case "a misshapen moment" "res.safetensors.state: tensor m.transformer.wte.weight has shape" "$B/shape.state"
    resume_case "an unknown curation" "res.safetensors.state: unknown curation 'bogus'" "$B/curation.state"
    resume_case "a NaN moment" "--resume: .*res.safetensors.state: tensor 'v.transformer.wte.weight' holds NaN at element 3" "$B/nan.state"
fi

# ---- dr-meta --resume: a missing, corrupt or mismatched state -------------------------
meta_resume() {  # what PATTERN STATEFILE(or -) [extra options]
    local what=$1 pat=$2 state=$3; shift 3
    cp "$R" "$TMP/mres.safetensors"
    if [ "$state" = - ]; then rm -f "$TMP/mres.safetensors.state"; else cp "$state" "$TMP/mres.safetensors.state"; fi
    bad "dr-meta --resume: $what" "$pat" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --set meta.rounds=2 "$@" --resume \
        -o "$TMP/mres.safetensors" "$M"
    same_file "dr-meta --resume: $what" "$R" "$TMP/mres.safetensors"
    no_file "dr-meta --resume: $what" "$TMP/mres.ema.safetensors"
    rm -f "$TMP/mres.safetensors" "$TMP/mres.safetensors.state"
}
meta_resume "no state" "--resume: .*mres.safetensors.state: cannot open: No such file" -
meta_resume "an empty state" "--resume: .*mres.safetensors.state: truncated: 0 bytes" "$B/lm_empty.safetensors"
meta_resume "a garbage state" "--resume: .*mres.safetensors.state: not a safetensors file" "$B/lm_garbage.safetensors"
head -c 3000 "$R.state" > "$B/mtrunc.state"
meta_resume "a truncated state" "--resume: .*mres.safetensors.state: .*outside the data section" "$B/mtrunc.state"
meta_resume "a dr-train state" "--resume: .*mres.safetensors.state is not a dr-meta state file" "$LM.state"
meta_resume "another population" "--resume: .*mres.safetensors.state holds 2 members, the config asks for 3" "$R.state" \
    --set meta.population_K=3
meta_resume "another rater shape" "--resume: .*mres.safetensors.state: tensor 'phi': [0-9]+ elements, expected [0-9]+" "$R.state" \
    --set rater.d_model=64
meta_resume "other Train_A data" "--resume: .*mres.safetensors.state was made on [0-9]+ Train_A examples" "$R.state" \
    --set data.seq_len=16
if [ $HAVE_PY = 1 ]; then
    meta_resume "a stream cursor out of range" "--resume: .*mres.safetensors.state: malformed metadata" "$B/mstreams.state"
    meta_resume "a counter with trailing junk" "--resume: .*mres.safetensors.state: malformed metadata" "$B/mjunk.state"
    meta_resume "a negative step count" "--resume: .*mres.safetensors.state: malformed metadata" "$B/mneg.state"
    meta_resume "another precision" "--resume: .*mres.safetensors.state was written by a fp16 build" "$B/mprec.state"
    meta_resume "a log line with a newline" "--resume: .*mres.safetensors.state: malformed metadata" "$B/mlogline.state"
    meta_resume "a log line of another meta-step" "--resume: .*mres.safetensors.state: malformed metadata" "$B/mlogstep.state"
    meta_resume "seconds NaN" "--resume: .*mres.safetensors.state: malformed metadata" "$B/msec.state"
    meta_resume "a member missing" "--resume: .*mres.safetensors.state: tensor 'member.1.theta' not found" "$B/mdrop.state"
    meta_resume "a NaN in a member" "^dr-meta: --resume: .*mres.safetensors.state: tensor 'member.0.theta' holds NaN at element 7$" "$B/mnan.state"
fi

# ---- names with a newline or a tab: the error is still one line (printed escaped) ------
NL=$'\n'
printf '{bad\n' > "$TMP/bad${NL}name.jsonl"
bad "dr-tokenize: an input named with a newline" "bad\\\\nname\\.jsonl:1: malformed JSON" \
    "$BIN/dr-tokenize" --tokenizer byte -o "$TMP/nl" "$TMP/bad${NL}name.jsonl"
bad "dr-tokenize: a missing input named with a newline" "no\\\\nsuch\\.jsonl: cannot open" \
    "$BIN/dr-tokenize" --tokenizer byte -o "$TMP/nl" "$TMP/no${NL}such.jsonl"
bad "dr-train --config named with a tab" "a\\\\tb\\.yaml" "$BIN/dr-train" --config "$TMP/a"$'\t'"b.yaml" --steps 1 "$M"
bad "dr-score --rater named with a newline and CR" "r\\\\n\\\\rx\\.safetensors" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$TMP/r${NL}"$'\r'"x.safetensors" -o "$TMP/o.tsv" "$M"
no_file "names with a newline" "$TMP/nl" "$TMP/o.tsv"

# ---- outputs in a directory that does not exist, or under a regular file --------------
: > "$TMP/afile"
for out in "$TMP/nodir/x" "$TMP/afile/x"; do
    why="(No such file or directory|Not a directory)"
    bad "dr-train -o $out" "x.safetensors: .*$why" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$out.safetensors" "$M"
    bad "dr-train --log $out" "x.jsonl: .*$why" "$BIN/dr-train" "${CFG[@]}" --steps 1 --log "$out.jsonl" -o "$TMP/o.safetensors" "$M"
    bad "dr-meta -o $out" "x.safetensors: .*$why" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$out.safetensors" "$M"
    bad "dr-meta --log $out" "x.jsonl: .*$why" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --log "$out.jsonl" -o "$TMP/o.safetensors" "$M"
    bad "dr-meta grad -o $out" "x.safetensors: .*$why" "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$R" \
        --train "$TA" --val "$VAL" -o "$out.safetensors"
    bad "dr-score -o $out" "x.tsv: .*$why" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$out.tsv" "$M"
    no_file "-o $out" "$TMP/nodir" "$TMP/o.safetensors" "$TMP/o.ema.safetensors" "$TMP/o.safetensors.state"
done
# a directory without write permission (root writes anywhere: only checked as another user)
if [ "$(id -u)" != 0 ]; then
    mkdir -p "$TMP/ro"; chmod 555 "$TMP/ro"
    bad "dr-train -o in a read-only directory" "ro/x.safetensors: cannot write there: Permission denied" \
        "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/ro/x.safetensors" "$M"
    bad "dr-meta -o in a read-only directory" "ro/x.safetensors: cannot write there: Permission denied" \
        "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/ro/x.safetensors" "$M"
    bad "dr-meta grad -o in a read-only directory" "ro/x.safetensors: cannot write there: Permission denied" \
        "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$R" --train "$TA" --val "$VAL" -o "$TMP/ro/x.safetensors"
    bad "dr-score -o in a read-only directory" "ro/x.tsv: cannot write there: Permission denied" \
        "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/ro/x.tsv" "$M"
    chmod 755 "$TMP/ro"
fi
# an output path that is a directory
mkdir -p "$TMP/adir.safetensors" "$TMP/adir.tsv"
bad "dr-train -o DIR" "adir.safetensors: is a directory" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/adir.safetensors" "$M"
bad "dr-meta -o DIR" "adir.safetensors: is a directory" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/adir.safetensors" "$M"
bad "dr-meta grad -o DIR" "adir.safetensors: is a directory" "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$LM" --rater-init "$R" \
    --train "$TA" --val "$VAL" -o "$TMP/adir.safetensors"
bad "dr-score -o DIR" "adir.tsv: is a directory" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/adir.tsv" "$M"
checks=$((checks + 1)); [ -z "$(find "$TMP/adir.safetensors" "$TMP/adir.tsv" -mindepth 1)" ] || fail "wrote into an output directory"
no_file "-o DIR" "$TMP/o.safetensors" "$TMP/adir.ema.safetensors" "$TMP/adir.safetensors.state"
# the names the tools derive from -o (the state, the state of the save before, the EMA):
# a directory there is refused before any work (it was met at a save: after all the
# meta-steps; dr-train moved a .state directory aside as .state.prev and went on)
for d in d1.safetensors.state d2.safetensors.state.prev d3.ema.safetensors d4.safetensors.state; do mkdir -p "$TMP/$d/x"; done
bad "dr-train, -o's .state a directory" "d1.safetensors.state: is a directory" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/d1.safetensors" "$M"
bad "dr-train, -o's .state.prev a directory" "d2.safetensors.state.prev: is a directory" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/d2.safetensors" "$M"
bad "dr-meta, -o's EMA a directory" "d3.ema.safetensors: is a directory" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/d3.safetensors" "$M"
bad "dr-meta, -o's .state a directory" "d4.safetensors.state: is a directory" "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/d4.safetensors" "$M"
no_file "a derived name that is a directory" "$TMP/d1.safetensors" "$TMP/d2.safetensors" "$TMP/d3.safetensors" "$TMP/d4.safetensors" "$TMP/d1.safetensors.state.prev"
# an output path that exists but is not a regular file (the final rename would replace
# it): a FIFO (a device node, e.g. /dev/null, is the same case), and an empty path
mkfifo "$TMP/fifo"
bad "dr-train -o FIFO" "fifo: exists, not a regular file" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/fifo" "$M"
bad "dr-score -o FIFO" "fifo: exists, not a regular file" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/fifo" "$M"
checks=$((checks + 1)); [ -p "$TMP/fifo" ] || fail "-o FIFO replaced the FIFO"
bad "dr-train -o ''" "an empty output path" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "" "$M"
bad "dr-tokenize -o ''" "an empty output directory" "$BIN/dr-tokenize" --tokenizer byte -o "" "$TMP/toy.jsonl"
# an output path that names one of the run's own inputs (a shard, the manifest, the config,
# a model, the scores, another output): refused before any work, the input left as it was
mkdir -p "$TMP/in"
cp -r "$TA" "$VAL" "$LM" "$R" "$TMP/in/"; cp configs/tiny.yaml "$TMP/in/c.yaml"
"$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/in/s.tsv" "$TA" 2>/dev/null || fail "dr-score for in/s.tsv"
printf 'train_a\ttrain_a\nval\tval\n' > "$TMP/in/m.tsv"
IS=$(ls "$TMP"/in/train_a/*.drs | head -n 1); IV=$(ls "$TMP"/in/val/*.drs | head -n 1)
(cd "$TMP/in" && md5sum $(find . -type f) > "$TMP/in.md5")
IC=(--config "$TMP/in/c.yaml" "${CFG[@]:2}")
SAME="the output of (-o|--log) is the same file as the input"
bad "dr-train -o an input shard" "$IS: $SAME $IS \(an input shard\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$TMP/in/train_a" --val "$TMP/in/val" -o "$IS"
bad "dr-train -o a Val shard (by another name)" "$SAME .*val-00000.drs \(an input shard\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/in/train_a/../val/$(basename "$IV")" "$TMP/in/m.tsv"
bad "dr-train -o the manifest" "m.tsv: $SAME .*m.tsv \(an input file\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/in/m.tsv" "$TMP/in/m.tsv"
bad "dr-train -o the config" "c.yaml: $SAME .*c.yaml \(the --config file\)" \
    "$BIN/dr-train" "${IC[@]}" --steps 1 -o "$TMP/in/c.yaml" "$TMP/in/m.tsv"
bad "dr-train --log a shard" "$SAME .* \(an input shard\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --log "$IS" -o "$TMP/o.safetensors" "$TMP/in/m.tsv"
bad "dr-train -o the --weights scores" "s.tsv: $SAME .*s.tsv \(the --weights scores\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --weights "$TMP/in/s.tsv" --train "$TMP/in/train_a" --val "$TMP/in/val" -o "$TMP/in/s.tsv"
bad "dr-train -o the --init checkpoint" "$SAME .*lm.safetensors \(the --init checkpoint\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --init "$TMP/in/lm.safetensors" -o "$TMP/in/lm.safetensors" "$TMP/in/m.tsv"
bad "dr-train -o the --rater model" "$SAME .*rater.safetensors \(the --rater model\)" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --rater "$TMP/in/rater.safetensors" -o "$TMP/in/rater.safetensors" "$TMP/in/m.tsv"
bad "dr-train --eval-only --log (never written, so refused)" "^dr-train: --eval-only prints its one JSON line on stdout and writes no --log" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/in/lm.safetensors" --log "$TMP/in/e.jsonl" "$TMP/in/m.tsv"
no_file "dr-train --eval-only --log" "$TMP/in/e.jsonl"
bad "dr-train --log onto -o's .state" "o.safetensors.state: the output of --log is the same file as the output of -o's .state" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --log "$TMP/o.safetensors.state" -o "$TMP/o.safetensors" "$TMP/in/m.tsv"
bad "dr-meta -o an input shard" "$SAME .* \(an input shard\)" \
    "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$IS" "$TMP/in/m.tsv"
bad "dr-meta --log the manifest" "$SAME .*m.tsv \(an input file\)" \
    "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --log "$TMP/in/m.tsv" -o "$TMP/o.safetensors" "$TMP/in/m.tsv"
bad "dr-meta --log onto -o's EMA" "o.ema.safetensors: the output of --log is the same file as the output of -o's .ema.safetensors" \
    "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --log "$TMP/o.ema.safetensors" -o "$TMP/o.safetensors" "$TMP/in/m.tsv"
bad "dr-meta grad -o the --lm-init checkpoint" "$SAME .*lm.safetensors \(the --lm-init checkpoint\)" \
    "$BIN/dr-meta" grad "${CFG[@]}" --lm-init "$TMP/in/lm.safetensors" --rater-init "$TMP/in/rater.safetensors" \
    --train "$TMP/in/train_a" --val "$TMP/in/val" -o "$TMP/in/lm.safetensors"
bad "dr-score -o the --rater model" "$SAME .*rater.safetensors \(the --rater model\)" \
    "$BIN/dr-score" "${CFG[@]}" --rater "$TMP/in/rater.safetensors" -o "$TMP/in/rater.safetensors" "$TMP/in/m.tsv"
bad "dr-score -o an input shard" "$SAME .* \(an input (shard|file)\)" \
    "$BIN/dr-score" "${CFG[@]}" --lm "$TMP/in/lm.safetensors" -o "$IS" "$IS"
bad "dr-score -o the config" "$SAME .*c.yaml \(the --config file\)" \
    "$BIN/dr-score" "${IC[@]}" --rater "$TMP/in/rater.safetensors" -o "$TMP/in/c.yaml" "$TMP/in/train_a"
checks=$((checks + 1)); (cd "$TMP/in" && md5sum --quiet -c "$TMP/in.md5") || fail "an output replaced an input"
no_file "outputs onto inputs" "$TMP/o.safetensors" "$TMP/o.safetensors.state" "$TMP/o.ema.safetensors" "$TMP/in/lm.safetensors.state"
# Val must be held out from what dr-train trains on; --config once
bad "dr-train: Val is Train" "^dr-train: Val and Train share [0-9]+ documents \(e\.g\. document id [0-9a-f]{16}\): L_val must be measured on held-out documents" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 --train "$TA" --val "$TA" -o "$TMP/o.safetensors"
bad "--config twice" "option --config given twice \(configs/tiny.yaml, then configs/cpu.yaml\)" \
    "$BIN/dr-train" "${CFG[@]}" --config configs/cpu.yaml --steps 1 -o "$TMP/o.safetensors" "$M"
no_file "Val is Train, --config twice" "$TMP/o.safetensors"
# -o twice: the last one was taken (dr-split, dr-tokenize), as no other tool does
bad "dr-split -o twice" "^dr-split: option -o given twice \(.*/sp1, then .*/sp2\)$" \
    "$BIN/dr-split" --val 0.3 -o "$TMP/sp1" -o "$TMP/sp2" "$TMP/shards"
bad "dr-tokenize -o twice" "^dr-tokenize: option -o given twice \(.*/tk1, then .*/tk2\)$" \
    "$BIN/dr-tokenize" --tokenizer byte -o "$TMP/tk1" -o "$TMP/tk2" /dev/null
no_file "-o twice" "$TMP/sp1" "$TMP/sp2" "$TMP/tk1" "$TMP/tk2"
# one shard twice in one input list; a --val-sources name no document has
bad "dr-split: a shard twice" "shard-00000.drs is given twice: its documents would count twice" \
    "$BIN/dr-split" --val 0.3 -o "$TMP/sp_twice" "$TMP/shards" "$TMP/shards/shard-00000.drs"
printf 'train_a\t%s\ntrain_a\t%s\nval\t%s\n' "$TA" "$TA" "$VAL" > "$TMP/twice.tsv"
bad "dr-train: a manifest line twice" "is given twice in split train_a" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" "$TMP/twice.tsv"
bad "dr-split --val-sources typo" "--val-sources: no input document has the source \"cleen\"" \
    "$BIN/dr-split" --val 0.3 --val-sources clean,cleen -o "$TMP/sp_typo" "$TMP/shards"
printf 'trian_a\t%s\nval\t%s\n' "$TA" "$VAL" > "$TMP/typo.tsv"
bad "dr-train: a split name with a typo" "typo.tsv: no shards of split 'train_a' for Train \(its splits: trian_a, val\)$" \
    "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" "$TMP/typo.tsv"
printf 'clean\ncleen\n' > "$TMP/vs.txt"
bad "dr-split --val-sources-file typo" "--val-sources-file .*vs.txt:2: no input document has the source \"cleen\"" \
    "$BIN/dr-split" --val 0.3 --val-sources-file "$TMP/vs.txt" -o "$TMP/sp_typo2" "$TMP/shards"
no_file "twice, typo" "$TMP/sp_twice" "$TMP/sp_typo" "$TMP/sp_typo2" "$TMP/o.safetensors"
# a manifest given as --val is its val lines (and as --train its train_b / train_a
# lines), as a positional one: not every line (which would put Train_A into Val)
val_count() { "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/vc.safetensors" "$@" 2>&1 | sed -n 's/.*Val \([0-9]*\) examples.*/\1/p'; }
n_pos=$(val_count "$M")
check "dr-train --val MANIFEST = its val lines" test -n "$n_pos" -a "$(val_count --train "$TA" --val "$M")" = "$n_pos"
check "dr-train --train MANIFEST = its train lines" test "$(val_count --train "$M" --val "$VAL")" = "$n_pos"
quiet() { "$@" >/dev/null 2>&1; }
check "dr-meta --val MANIFEST = its val lines" quiet "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" --train "$TA" \
    --val "$M" -o "$TMP/vm.safetensors"
# dr-filter must not replace its own inputs; scores beyond float; dr-cat --min-tokens
"$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/ta.tsv" "$TA" 2>/dev/null
bad "dr-filter -o its input directory" "would replace the input shard" \
    "$BIN/dr-filter" "${CFG[@]}" --scores "$TMP/ta.tsv" --keep 0.5 --prefix train_a -o "$TA" "$TA"
checks=$((checks + 1)); [ "$(ls "$TA" | wc -l)" -ge 1 ] && [ -z "$(ls "$TA" | grep -v '^train_a-[0-9]*\.drs$')" ] || fail "dr-filter touched its input directory"
# stdin can hold the scores or a manifest, not both (the second reader found it empty)
bad_stdin "dr-filter --scores - with a manifest on stdin" "--scores - and a manifest on stdin \('-'\): only one of them" \
    "$TMP/ta.tsv" "$BIN/dr-filter" "${CFG[@]}" --scores - --keep 0.5 -o "$TMP/fo" -
bad_stdin "dr-train --weights - with a manifest on stdin" "--weights - and a manifest on stdin \('-'\): only one of them" \
    "$TMP/ta.tsv" "$BIN/dr-train" "${CFG[@]}" --steps 1 --weights - -o "$TMP/o.safetensors" -
no_file "stdin twice" "$TMP/fo" "$TMP/o.safetensors"
awk 'BEGIN { FS = OFS = "\t" } NR == 2 { $2 = "1e39" } { print }' "$TMP/ta.tsv" > "$TMP/huge.tsv"
bad "scores beyond the float range" "huge.tsv:2: score '1e39' is beyond the float range" \
    "$BIN/dr-filter" "${CFG[@]}" --scores "$TMP/huge.tsv" --keep 0.5 -o "$TMP/fo" "$TA"
bad "dr-cat --min-tokens 1" "--min-tokens: 1 is out of range" "$BIN/dr-cat" --examples --min-tokens 1 "$TA"
# a set of shards appears whole or not at all: a re-run that fails keeps the earlier output
# (3000 documents "document i yyy…" with 40 y's, in one awk: a shell loop with a
# subshell per line took 35 s of this test on 2 cores)
awk 'BEGIN { y = ""; for (j = 0; j < 40; j++) y = y "y"
             for (i = 1; i <= 3000; i++) printf "{\"text\": \"document %d %s\"}\n", i, y }' > "$TMP/many.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --shard-size 0.02 -o "$TMP/set" "$TMP/many.jsonl" > "$TMP/set.list" 2>/dev/null
(cat "$TMP/many.jsonl"; echo '{bad') > "$TMP/late.jsonl"
md5_before=$(cat "$TMP"/set/*.drs | md5sum)
bad "dr-tokenize: a re-run that fails late" "late.jsonl:3001: malformed JSON" \
    "$BIN/dr-tokenize" --tokenizer byte --shard-size 0.02 -o "$TMP/set" "$TMP/late.jsonl"
checks=$((checks + 1)); [ "$(wc -l < "$TMP/set.list")" -ge 3 ] || fail "the set test wants several shards"
checks=$((checks + 1)); [ "$(cat "$TMP"/set/*.drs | md5sum)" = "$md5_before" ] || fail "a failed dr-tokenize re-run changed the earlier shards"
# a closed stdin is not the number of the next file opened (a shard read as the scores)
expect_error "dr-filter --scores - with stdin closed" "^dr-filter: -: read error: Bad file descriptor$" \
    bash -c 'exec "$@" <&-' _ "$BIN/dr-filter" "${CFG[@]}" --scores - --keep 0.5 -o "$TMP/fo" "$TA"
no_file "closed stdin" "$TMP/fo"
# a file-size limit (ulimit -f): a write error naming the file, nothing half-written left
# (dr-score, dr-filter: score_filter.sh; dr-tokenize, dr-split: their own tests)
with_fsize() { local blocks=$1; shift; bash -c 'ulimit -f "$0"; exec "$@"' "$blocks" "$@"; }
expect_stop "dr-train under ulimit -f" "fz\.safetensors\.state: write failed: File too large" \
    with_fsize 4 "$BIN/dr-train" "${CFG[@]}" --steps 2 -o "$TMP/fz.safetensors" "$M"
expect_stop "dr-meta under ulimit -f" "fzr\.safetensors: write failed: File too large" \
    with_fsize 4 "$BIN/dr-meta" "${CFG[@]}" "${META[@]}" -o "$TMP/fzr.safetensors" "$M"
no_file "ulimit -f" "$TMP/fz.safetensors" "$TMP/fz.safetensors.state" "$TMP/fzr.safetensors" "$TMP/fzr.safetensors.state"
# input that never ends (/dev/zero): one line naming the input, not an allocator's failure
# at a line of lib/ after it filled the memory. dr-tokenize's byte tokenizer refuses a line
# or file past the longest document (1 GiB) as it reads it; dr_read_file (here
# --val-sources-file) stops at its caller's limit and names the file and the limit. Under ulimit -v 3 GB, so that a
# regression fails fast instead of filling the machine (not for an AddressSanitizer
# build, whose shadow memory needs more address space: then the dr-tokenize cases only).
vmem=(bash -c 'ulimit -v 3000000; exec "$@"' _)
"${vmem[@]}" "$BIN/dr-tokenize" --help >/dev/null 2>&1 || vmem=()
bad "dr-tokenize --lines /dev/zero" "^dr-tokenize: /dev/zero:1: a document of more than 1073741823 tokens is too long for one shard block" \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer byte --lines -o "$TMP/zero" /dev/zero
bad "dr-tokenize --format text /dev/zero" "^dr-tokenize: /dev/zero: a document of more than 1073741823 tokens is too long for one shard block" \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer byte --format text -o "$TMP/zero" /dev/zero
if [ ${#vmem[@]} -gt 0 ]; then
    bad "dr-split --val-sources-file /dev/zero" "^dr-split: /dev/zero: too large for a --val-sources-file: more than 256 MiB$" \
        "${vmem[@]}" "$BIN/dr-split" --val 0.3 --val-sources-file /dev/zero -o "$TMP/zero" "$TMP/shards"
fi
# the GPT-2 and trained BPE tokenizers, JSON lines and --train-bpe: a line or file past
# 1 GiB, the most one document may be, is refused as it is read (they gathered it until
# an allocation failed, about 16 GB on an unlimited machine)
"$BIN/dr-tokenize" --train-bpe 300 -o "$TMP/bpe" "$TMP/toy.jsonl" >/dev/null 2>&1 || fail "dr-tokenize --train-bpe 300"
TOKS=("--tokenizer bpe --vocab-dir $TMP/bpe")
[ -f "${DR_DATA:-data}/gpt2/encoder.json" ] && TOKS+=("--tokenizer gpt2")
ZLINE="a line of more than 1073741824 bytes is too long for one document \(at most 1 GiB\)$"
ZFILE="a file of more than 1073741824 bytes is too long for one document \(at most 1 GiB\)$"
for t in "${TOKS[@]}"; do
    read -r -a to <<< "$t"
    bad "dr-tokenize $t --lines /dev/zero" "^dr-tokenize: /dev/zero:1: $ZLINE" \
        "${vmem[@]}" "$BIN/dr-tokenize" "${to[@]}" --lines -o "$TMP/zero" /dev/zero
    bad "dr-tokenize $t --format text /dev/zero" "^dr-tokenize: /dev/zero: $ZFILE" \
        "${vmem[@]}" "$BIN/dr-tokenize" "${to[@]}" --format text -o "$TMP/zero" /dev/zero
done
bad_stdin "dr-tokenize: JSON lines of /dev/zero on stdin" "^dr-tokenize: stdin:1: $ZLINE" /dev/zero \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer byte -o "$TMP/zero" -
bad "dr-tokenize --train-bpe --lines /dev/zero" "^dr-tokenize: /dev/zero:1: $ZLINE" \
    "${vmem[@]}" "$BIN/dr-tokenize" --train-bpe 300 --lines -o "$TMP/zero" /dev/zero
# a manifest of /dev/zero (on stdin) or of one endless line: refused at its first line
# (it was read whole, and then said "manifest lists no shards" when the memory ran out)
bad_stdin "dr-score - < /dev/zero" "^dr-score: \(stdin\):1: a line longer than 1048576 bytes: not a manifest$" /dev/zero \
    "${vmem[@]}" "$BIN/dr-score" "${CFG[@]}" --rater "$R" -o "$TMP/o.tsv" -
bad_stdin "dr-train - < /dev/zero" "^dr-train: \(stdin\):1: a line longer than 1048576 bytes: not a manifest$" /dev/zero \
    "${vmem[@]}" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" -
# a sparse 40 GB file (all zeros, no disk): a file read whole is refused by its size before
# it is read; a document or a manifest line, at the limit, as above
truncate -s 40G "$B/sparse"
mkdir -p "$B/venc" "$B/vbpe"
ln -s ../sparse "$B/venc/encoder.json"; cp "$TMP/bpe/vocab.bpe" "$B/venc/"
ln -s ../sparse "$B/vbpe/vocab.bpe"; cp "$TMP/bpe/encoder.json" "$B/vbpe/"
bad "dr-split --val-sources-file, a sparse 40 GB file" "^dr-split: .*/sparse: too large for a --val-sources-file: 42949672960 bytes, more than 256 MiB$" \
    "${vmem[@]}" "$BIN/dr-split" --val 0.3 --val-sources-file "$B/sparse" -o "$TMP/zero" "$TMP/shards"
bad "dr-tokenize: encoder.json a sparse 40 GB file" "^dr-tokenize: .*/venc/encoder.json: too large for a vocabulary file: 42949672960 bytes, more than 2 GiB$" \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer bpe --vocab-dir "$B/venc" -o "$TMP/zero" "$TMP/toy.jsonl"
bad "dr-tokenize: vocab.bpe a sparse 40 GB file" "^dr-tokenize: .*/vbpe/vocab.bpe: too large for a vocabulary file: 42949672960 bytes, more than 2 GiB$" \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer bpe --vocab-dir "$B/vbpe" -o "$TMP/zero" "$TMP/toy.jsonl"
bad "dr-tokenize --format text, a sparse 40 GB file" "^dr-tokenize: .*/sparse: $ZFILE" \
    "${vmem[@]}" "$BIN/dr-tokenize" --tokenizer bpe --vocab-dir "$TMP/bpe" --format text -o "$TMP/zero" "$B/sparse"
bad "dr-train: a sparse 40 GB file as the manifest" "^dr-train: .*/sparse:1: a line longer than 1048576 bytes: not a manifest$" \
    "${vmem[@]}" "$BIN/dr-train" "${CFG[@]}" --steps 1 -o "$TMP/o.safetensors" "$B/sparse"
rm -f "$B/sparse"
# a directory read as a file: the reason is given
bad "dr-split --val-sources-file DIR" "^dr-split: .*/bpe: read error: Is a directory$" \
    "$BIN/dr-split" --val 0.3 --val-sources-file "$TMP/bpe" -o "$TMP/zero" "$TMP/shards"
no_file "/dev/zero" "$TMP/zero" "$TMP/o.tsv" "$TMP/o.safetensors"
expect_error "dr-cat under ulimit -f" "^dr-cat: cannot write the output: File too large$" \
    bash -c 'ulimit -f 4; exec "$@" > "$0"' "$TMP/fz.jsonl" "$BIN/dr-cat" --jsonl "$TA"
finish
