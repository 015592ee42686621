#!/usr/bin/env bash
# install.sh — make install / make uninstall into a DESTDIR with PREFIX=/opt/dr: every tool
# (its --version), the configs, libdr_cuda.so when this build has it, the GPT-2 vocabulary
# when it was fetched. The installed tools run from another directory with DR_DATA unset
# and find the vocabulary and the CUDA backend relative to themselves (the same shard as
# the build's dr-tokenize; the same --device cuda outcome as the build's dr-score); an
# install without the vocabulary says how to get it, and so does the installed tool.
# Installing twice is fine; uninstall leaves no file, and keeps a file it did not install.
# The make calls use the build the test runner made (BIN, BUILD_ROOT): they compile nothing.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-cat dr-score dr-meta
P=/opt/dr
STAGE=$TMP/stage
MK=(make --no-print-directory BIN="$BIN" BUILD_ROOT="${BUILD_ROOT:-build}" PREFIX="$P")
VOC=${DR_DATA:-$PWD/data}/gpt2   # helpers.bash: DR_DATA=$PWD/data when data/gpt2 is there
have_gpt2=0
[ -f "$VOC/encoder.json" ] && [ -f "$VOC/vocab.bpe" ] && have_gpt2=1
ELSE=$TMP/elsewhere   # the installed tools run from here, with DR_DATA unset
mkdir -p "$ELSE"
run_elsewhere() { (cd "$ELSE" && unset DR_DATA && "$@"); }
quiet() { "$@" >/dev/null 2>&1; }   # a check's command without its output (check's own FAIL line stays)
installed() { find "$1" ! -type d | sed "s|^$1||" | sort; }

# ---- install --------------------------------------------------------------------------
touch "$TMP/stamp"
"${MK[@]}" install DESTDIR="$STAGE" VOCAB_DIR="$VOC" >"$TMP/install.log" 2>&1
rc=$?
check "make install DESTDIR=… PREFIX=$P" test $rc -eq 0
[ $rc -eq 0 ] || tail -n 20 "$TMP/install.log" >&2
check "make install compiled nothing (the tools were built; else run make first)" \
    test -z "$(find "$BIN" -newer "$TMP/stamp" -print -quit)"
for dir in tools/dr-*; do
    t=${dir#tools/}
    check "$t installed, the build's file, mode 755" \
        bash -c "cmp -s '$BIN/$t' '$STAGE$P/bin/$t' && [ \$(stat -c %a '$STAGE$P/bin/$t') = 755 ]"
    check "installed $t --version" bash -c "cd '$ELSE' && '$STAGE$P/bin/$t' --version | grep -q '^$t '"
done
for c in configs/*.yaml; do
    check "$c in share/datarater/configs" cmp -s "$c" "$STAGE$P/share/datarater/$c"
done
check "the installed configs/tiny.yaml loads" \
    quiet run_elsewhere "$STAGE$P/bin/dr-meta" --config "$STAGE$P/share/datarater/configs/tiny.yaml" --print-config

# ---- the GPT-2 vocabulary: installed, and found by the installed tools -------------------
printf 'Hello, world! The installed tools find their vocabulary.\n\xc3\x9cn\xc3\xafc\xc3\xb6d\xc3\xa9   and\ttabs\n' >"$TMP/small.txt"
if [ $have_gpt2 = 1 ]; then
    for f in encoder.json vocab.bpe; do
        check "gpt2/$f in share/datarater/gpt2" cmp -s "$VOC/$f" "$STAGE$P/share/datarater/gpt2/$f"
    done
    "$BIN/dr-tokenize" --tokenizer gpt2 --lines -o "$TMP/tree" "$TMP/small.txt" >/dev/null 2>&1
    check "installed dr-tokenize --tokenizer gpt2 (another directory, DR_DATA unset)" \
        quiet run_elsewhere "$STAGE$P/bin/dr-tokenize" --tokenizer gpt2 --lines -o inst "$TMP/small.txt"
    check "... the tokens of the build's dr-tokenize (installed dr-cat --ids)" \
        diff <("$BIN/dr-cat" --ids "$TMP/tree") <(run_elsewhere "$STAGE$P/bin/dr-cat" --ids inst)
    check "... the same shard, byte for byte" cmp -s "$TMP/tree/shard-00000.drs" "$ELSE/inst/shard-00000.drs"
    check "... installed dr-cat decodes it to the text" cmp -s "$TMP/small.txt" <(run_elsewhere "$STAGE$P/bin/dr-cat" inst)
else
    echo "install.sh: no GPT-2 vocabulary in $VOC (make vocab): the installed gpt2 tokenization checks skipped"
fi

# ---- the CUDA backend: installed when built, and loaded from lib/datarater/ ---------------
# dr-score --device cuda with a model that does not exist: the build's tool and the
# installed one must end the same way (no driver: the CUDA runtime's reason, which needs
# the library loaded; a GPU: the missing model), never "cannot load the CUDA backend"
cuda_run() {  # dr-score, config
    "$1" --lm "$TMP/none.safetensors" --config "$2" --device cuda "$TMP/none.drs" 2>&1
}
tree_msg=$(cuda_run "$BIN/dr-score" configs/tiny.yaml)
if grep -q "no CUDA backend" <<< "$tree_msg"; then
    echo "install.sh: this build has no CUDA backend: libdr_cuda.so checks skipped"
    check "no libdr_cuda.so installed" test ! -e "$STAGE$P/lib/datarater"
else
    check "libdr_cuda.so in lib/datarater" cmp -s "$BIN/libdr_cuda.so" "$STAGE$P/lib/datarater/libdr_cuda.so"
    inst_msg=$(run_elsewhere cuda_run "$STAGE$P/bin/dr-score" "$STAGE$P/share/datarater/configs/tiny.yaml")
    check "installed dr-score --device cuda loads it (the build's outcome)" \
        bash -c "[ \"\$1\" = \"\$2\" ] && ! grep -q 'cannot load the CUDA backend' <<< \"\$2\"" _ "$tree_msg" "$inst_msg"
    [ "$tree_msg" = "$inst_msg" ] || printf 'build:     %s\ninstalled: %s\n' "$tree_msg" "$inst_msg" >&2
fi

# ---- install twice ------------------------------------------------------------------------
installed "$STAGE" >"$TMP/first.lst"
"${MK[@]}" install DESTDIR="$STAGE" VOCAB_DIR="$VOC" >"$TMP/install.log" 2>&1
rc=$?
check "make install again succeeds" test $rc -eq 0
check "... the same files" diff "$TMP/first.lst" <(installed "$STAGE")

# ---- install-strip: the same files, the programs without their symbol tables -----------------
S3=$TMP/stage3
"${MK[@]}" install-strip DESTDIR="$S3" VOCAB_DIR="$VOC" >"$TMP/install3.log" 2>&1
rc=$?
check "make install-strip succeeds" test $rc -eq 0
installed "$S3" >"$TMP/strip.lst"
check "... the same files as make install" diff -q "$TMP/first.lst" "$TMP/strip.lst"
check "... dr-meta stripped (no .symtab), smaller than the build's, and it runs" \
    bash -c "! readelf -S '$S3$P/bin/dr-meta' | grep -q '\.symtab' && readelf -S '$BIN/dr-meta' | grep -q '\.symtab' &&
             [ \$(stat -c %s '$S3$P/bin/dr-meta') -lt \$(stat -c %s '$BIN/dr-meta') ] &&
             '$S3$P/bin/dr-meta' --version | grep -q '^dr-meta '"

# ---- an install without the vocabulary -------------------------------------------------------
S2=$TMP/stage2
"${MK[@]}" install DESTDIR="$S2" VOCAB_DIR="$TMP/novocab" >"$TMP/install2.log" 2>&1
rc=$?
check "make install without a vocabulary succeeds and says how to get it" \
    bash -c "[ $rc -eq 0 ] && grep -q 'no GPT-2 vocabulary in $TMP/novocab (\`make vocab\` fetches it' '$TMP/install2.log'"
check "... installs no gpt2 directory" test ! -e "$S2$P/share/datarater/gpt2"
expect_error "... the installed dr-tokenize names its share/datarater/gpt2 and make vocab" \
    "^dr-tokenize: $S2$P/bin/\.\./share/datarater/gpt2: no GPT-2 vocabulary there .*make vocab" \
    run_elsewhere "$S2$P/bin/dr-tokenize" --tokenizer gpt2 --lines -o inst2 "$TMP/small.txt"

# ---- uninstall ---------------------------------------------------------------------------
"${MK[@]}" uninstall DESTDIR="$STAGE" >"$TMP/uninstall.log" 2>&1
rc=$?
check "make uninstall" test $rc -eq 0
check "... leaves no file under DESTDIR" test -z "$(installed "$STAGE")"
check "... removes share/datarater and lib/datarater" \
    bash -c "[ ! -e '$STAGE$P/share/datarater' ] && [ ! -e '$STAGE$P/lib/datarater' ]"
check "make uninstall again: nothing to remove, succeeds" quiet "${MK[@]}" uninstall DESTDIR="$STAGE"
echo "mine" >"$S2$P/share/datarater/configs/mine.yaml"
"${MK[@]}" uninstall DESTDIR="$S2" >"$TMP/uninstall2.log" 2>&1
rc=$?
check "make uninstall keeps a file it did not install, and says so" \
    bash -c "[ $rc -eq 0 ] && [ \"\$(find '$S2' ! -type d)\" = '$S2$P/share/datarater/configs/mine.yaml' ] &&
             grep -q 'share/datarater/configs is not empty: left as it is' '$TMP/uninstall2.log'"
finish
