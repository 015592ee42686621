#!/usr/bin/env bash
# init_hf.sh — dr-train --init, and LM checkpoints laid out as Hugging Face writes them.
#   - --init CKPT starts from CKPT's weights: with a learning rate too small to move a
#     float (1e-30), one step leaves every tensor bit-identical to CKPT's, and --eval-only
#     of the result equals --eval-only of CKPT; a trained CKPT starts lower than the
#     random init;
#   - a Hugging Face directory (model.safetensors with {"format": "pt"} metadata, the
#     attention mask buffers h.{i}.attn.bias/masked_bias, a tied lm_head.weight, and
#     config.json beside it), with or without the "transformer." prefix, gives the same
#     --eval-only line and the same --init run (model bytes) as our own file; F16 tensors
#     load (rounded);
#   - refused with one line: an untied lm_head, no config.json, a config.json of another
#     activation or LN epsilon, a shape other than the config's, --init with --resume.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-train

CFG=(--config configs/tiny.yaml --set experiment.threads=1 --set experiment.device=cpu)
tests/data/gen_toy.sh 60 40 3 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/shards" "$TMP/toy.jsonl" >/dev/null 2>&1 \
    || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.3 --seed 1 -o "$TMP/splits" "$TMP/shards" > "$TMP/m.tsv" 2>/dev/null \
    || { echo "dr-split failed" >&2; exit 1; }
M=$TMP/m.tsv
"$BIN/dr-train" "${CFG[@]}" --steps 6 -o "$TMP/lm.safetensors" "$M" 2>/dev/null \
    || { echo "dr-train failed" >&2; exit 1; }
LM=$TMP/lm.safetensors

# the tensors' bytes (the data section), without the header and its metadata
data_of() { python3 -c 'import struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; sys.stdout.buffer.write(b[8+n:])' "$1"; }
same_data() { cmp -s <(data_of "$1") <(data_of "$2"); }
eval_of() { "$BIN/dr-train" "${CFG[@]}" --eval-only "$1" "$M" 2>/dev/null; }
first_loss() { sed -n 's/.*"l_train":\([^,}]*\).*/\1/p' "$1" | head -n 1; }

# ---- --init ------------------------------------------------------------------------------
"$BIN/dr-train" "${CFG[@]}" --steps 1 --set lm.lr=1e-30 --init "$LM" -o "$TMP/still.safetensors" "$M" 2>"$TMP/still.err"
check "--init with lr 1e-30 runs" test -s "$TMP/still.safetensors"
check "--init says where the weights come from" grep -q "weights from $LM" "$TMP/still.err"
check "--init, lr 1e-30: every tensor bit-identical to the init" same_data "$TMP/still.safetensors" "$LM"
check "--init, lr 1e-30: --eval-only equals the init's" test "$(eval_of "$TMP/still.safetensors")" = "$(eval_of "$LM")"
"$BIN/dr-train" "${CFG[@]}" --steps 2 --set train.log_every=1 --log "$TMP/rand.jsonl" -o "$TMP/rand.safetensors" "$M" 2>/dev/null
"$BIN/dr-train" "${CFG[@]}" --steps 2 --set train.log_every=1 --init "$LM" --log "$TMP/init.jsonl" -o "$TMP/init.safetensors" "$M" 2>/dev/null
check "--init from a trained LM starts lower than the random init" \
    awk -v a="$(first_loss "$TMP/init.jsonl")" -v b="$(first_loss "$TMP/rand.jsonl")" 'BEGIN { exit !(a < b - 0.1) }'

# ---- Hugging Face layouts -----------------------------------------------------------------
mkdir -p "$TMP/hf" "$TMP/hf_nopfx" "$TMP/hf16" "$TMP/untie" "$TMP/noconf" "$TMP/gelu" "$TMP/eps"
python3 tests/cli/hf_export.py "$LM" "$TMP/hf"
python3 tests/cli/hf_export.py "$LM" "$TMP/hf_nopfx" --no-prefix
python3 tests/cli/hf_export.py "$LM" "$TMP/hf16" --f16
python3 tests/cli/hf_export.py "$LM" "$TMP/untie" --untie
python3 tests/cli/hf_export.py "$LM" "$TMP/noconf" --no-config
python3 tests/cli/hf_export.py "$LM" "$TMP/gelu" --config-set=activation_function=gelu
python3 tests/cli/hf_export.py "$LM" "$TMP/eps" --config-set=layer_norm_epsilon=1e-6
REF=$(eval_of "$LM")
check "eval-only: our file gives an l_val line" grep -q '"l_val"' <<<"$REF"
for d in hf hf_nopfx; do
    check "eval-only: Hugging Face layout ($d) = our file" test "$(eval_of "$TMP/$d/model.safetensors")" = "$REF"
    "$BIN/dr-train" "${CFG[@]}" --steps 2 --set train.log_every=1 --init "$TMP/$d/model.safetensors" \
        --log "$TMP/$d.jsonl" -o "$TMP/$d.out.safetensors" "$M" 2>/dev/null
    check "--init from the Hugging Face layout ($d) = from our file (model bytes)" \
        same_data "$TMP/$d.out.safetensors" "$TMP/init.safetensors"
done
check "eval-only: F16 tensors load (rounded: l_val within 1e-2)" awk \
    -v a="$(eval_of "$TMP/hf16/model.safetensors" | sed 's/.*"l_val":\([^,}]*\).*/\1/')" \
    -v b="$(sed 's/.*"l_val":\([^,}]*\).*/\1/' <<<"$REF")" 'BEGIN { d = a - b; exit !(a != "" && d < 1e-2 && d > -1e-2) }'

expect_error "untied lm_head is refused" "untie/model.safetensors: lm_head.weight differs from wte" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/untie/model.safetensors" "$M"
expect_error "no config.json is refused" "noconf/model.safetensors: no \"config\" in the safetensors __metadata__ and no readable .*noconf/config.json beside it" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/noconf/model.safetensors" "$M"
# a config.json that never ends (/dev/zero) or a sparse 40 GB one: refused at 16 MiB, or by
# its size before it is read, naming it (it was read until the memory ran out; under
# ulimit -v, so that a regression fails instead of filling the machine)
mkdir -p "$TMP/zeroconf" "$TMP/bigconf"
cp "$TMP/noconf/model.safetensors" "$TMP/zeroconf/"; ln -s /dev/zero "$TMP/zeroconf/config.json"
cp "$TMP/noconf/model.safetensors" "$TMP/bigconf/"; truncate -s 40G "$TMP/bigconf/config.json"
vmem=(bash -c 'ulimit -v 3000000; exec "$@"' _)
"${vmem[@]}" "$BIN/dr-train" --help >/dev/null 2>&1 || vmem=()   # not under AddressSanitizer
expect_error "config.json of /dev/zero is refused as it is read" \
    "^dr-train: .*zeroconf/model.safetensors: no \"config\" in the safetensors __metadata__, and .*zeroconf/config.json: too large for a config.json: more than 16 MiB$" \
    timeout 20 "${vmem[@]}" "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/zeroconf/model.safetensors" "$M"
expect_error "a sparse 40 GB config.json is refused by its size" \
    "^dr-train: .*bigconf/model.safetensors: no \"config\" in the safetensors __metadata__, and .*bigconf/config.json: too large for a config.json: 42949672960 bytes, more than 16 MiB$" \
    timeout 20 "${vmem[@]}" "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/bigconf/model.safetensors" "$M"
rm -f "$TMP/bigconf/config.json"
expect_error "another activation is refused" "gelu/config.json: activation_function gelu: only \"gelu_new\"" \
    "$BIN/dr-train" "${CFG[@]}" --eval-only "$TMP/gelu/model.safetensors" "$M"
expect_error "another LN epsilon is refused" "eps/config.json: layer_norm_epsilon must be 1e-05" \
    "$BIN/dr-train" "${CFG[@]}" --init "$TMP/eps/model.safetensors" -o "$TMP/x.safetensors" "$M"
expect_error "--init of another shape is refused" \
    "^dr-train: --init: .*lm.safetensors holds a 2-layer d32 2-head ff128 vocab 257 ctx 32 LM, the config asks for 3-layer" \
    "$BIN/dr-train" "${CFG[@]}" --set lm.n_layer=3 --init "$LM" -o "$TMP/x.safetensors" "$M"
expect_error "--init with --resume is refused" "--init and --resume do not go together" \
    "$BIN/dr-train" "${CFG[@]}" --init "$LM" --resume -o "$TMP/init.safetensors" "$M"
check "a refused --init writes no model" test ! -e "$TMP/x.safetensors"
finish
