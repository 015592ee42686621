#!/usr/bin/env bash
# split.sh — dr-split end to end: fractions within 1% on 100k documents, disjoint splits,
# duplicates never in two splits (with and without --dedup), same bytes on a re-run and
# with the inputs in another order or form, --val-sources, stale shards removed, and
# refusals (corrupt shard, mixed tokenizers, bad options) with one clear line, and a
# failed run leaves no output directory it created.
source "$(dirname "$0")/helpers.bash" dr-split dr-cat

# 100k documents in three shards; c repeats documents (every 10th is a duplicate)
# and d is a copy of a under another name: duplicates across shards and sources.
$MKSHARD --random 40000 --seed 1 --max-len 60 --sources web,books,mail "$TMP/a.drs"
$MKSHARD --random 30000 --seed 2 --max-len 60 --first-id 40000 --sources news,web "$TMP/b.drs"
$MKSHARD --random 30000 --seed 3 --max-len 60 --first-id 70000 --dup-every 10 --sources mail,books "$TMP/c.drs"
mkdir -p "$TMP/in" && cp "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs" "$TMP/in/"

same_shards() {  # same_shards DIR1 DIR2: the same shard files, byte for byte
    local f n=0
    for f in "$1"/*/*.drs; do cmp -s "$f" "$2/${f#"$1"/}" || return 1; n=$((n + 1)); done
    [ "$n" -gt 0 ] && [ "$(ls "$2"/*/*.drs | wc -l)" -eq "$n" ]
}
split() {  # split OUT_DIR [options / inputs]
    local out=$1; shift
    "$BIN/dr-split" --val 0.1 --train-b 0.2 --seed 7 -o "$out" "$@" >"$out.manifest" 2>"$out.log"
}

# ---- determinism and order independence ------------------------------------------
check "dr-split runs" split "$TMP/o1" "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
check "dr-split re-run" split "$TMP/o2" "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
check "dr-split, inputs reordered" split "$TMP/o3" "$TMP/c.drs" "$TMP/a.drs" "$TMP/b.drs"
check "dr-split, a directory" split "$TMP/o4" "$TMP/in"
mkdir -p "$TMP/deep"
check "dr-split -o creates missing parents" bash -c "'$BIN/dr-split' --val 0.1 --train-b 0.2 --seed 7 -o '$TMP/deep/p/q' '$TMP/in' >'$TMP/deep.manifest' 2>/dev/null && cmp -s <(cut -f1 '$TMP/deep.manifest' | grep -v '^#') <(cut -f1 '$TMP/o4.manifest' | grep -v '^#') && test -d '$TMP/deep/p/q/val'"
printf 'x\t%s\nx\t%s\n# a comment\nx\t%s\n' "$TMP/c.drs" "$TMP/b.drs" "$TMP/a.drs" >"$TMP/in.tsv"
check "dr-split, manifest on stdin" split "$TMP/o5" - <"$TMP/in.tsv"
for o in o2 o3 o4 o5; do
    check "$o: same manifest.tsv" cmp -s "$TMP/o1/manifest.tsv" "$TMP/$o/manifest.tsv"
    for f in $(cd "$TMP/o1" && ls */*.drs); do
        check "$o: same bytes in $f" cmp -s "$TMP/o1/$f" "$TMP/$o/$f"
    done
done
# progress on stderr, not a terminal: a plain line per interval (DR_PROGRESS_INTERVAL=0: at
# every update) for pass 1 (shards) and pass 2 (tokens), then the summary as before; the
# same output. A short run at the default interval (10 s) prints the summary alone.
DR_PROGRESS_INTERVAL=0 "$BIN/dr-split" --val 0.1 --train-b 0.2 --seed 7 -o "$TMP/op" "$TMP/a.drs" "$TMP/b.drs" \
    "$TMP/c.drs" >"$TMP/op.manifest" 2>"$TMP/op.log"
check "progress: index lines, in shards" grep -qE '^index: 3/3 shards \(100\.0%\), .* elapsed, ETA [0-9:]+, 100000 documents$' "$TMP/op.log"
check "progress: split lines, in tokens" grep -qE '^split: [0-9.]+/[0-9.]+ M tokens \([0-9.]+%\), [0-9.]+ M tokens/s, [0-9:]+ elapsed, ETA [0-9:?]+, [0-9]+ documents$' "$TMP/op.log"
check "progress: split ends at all the tokens" grep -qE '^split: ([0-9.]+)/\1 M tokens \(100\.0%\).*, 100000 documents$' "$TMP/op.log"
check "progress: no \\r when not a terminal" bash -c "! grep -q \$'\\r' '$TMP/op.log'"
summary() { grep -v '^\(index\|split\): \|^  [0-9.]* s, ' "$1"; }
check "progress: then the summary as before" cmp -s <(summary "$TMP/op.log") <(summary "$TMP/o1.log")
check "progress: a short run at the default interval prints none" bash -c "! grep -q '^\(index\|split\): ' '$TMP/o1.log'"
check "progress: the same shards and manifest" bash -c "cmp -s '$TMP/o1/manifest.tsv' '$TMP/op/manifest.tsv'"
check "progress: the same shard bytes" same_shards "$TMP/o1" "$TMP/op"
check "manifest on stdout names the shards" grep -q "^val	$TMP/o1/val/val-00000.drs$" "$TMP/o1.manifest"
check "manifest records the seed" grep -q '^# seed: 7$' "$TMP/o1.manifest"
# a relative -o, and stdout saved in another directory: its paths still name the shards
# (stdout's are absolute; the out dir's manifest.tsv is relative to itself)
ABSBIN=$(cd "$BIN" && pwd)
mkdir -p "$TMP/rel/elsewhere"
(cd "$TMP/rel" && "$ABSBIN/dr-split" --val 0.1 -o sp "$TMP/o1/train_a" > elsewhere/m.tsv 2>/dev/null)
lists() { "$BIN/dr-cat" --list "$1" > /dev/null; }
check "stdout manifest saved elsewhere is readable" lists "$TMP/rel/elsewhere/m.tsv"
check "the out dir's manifest is readable" lists "$TMP/rel/sp/manifest.tsv"

# ---- fractions within 1% of 100k documents -----------------------------------------
count() { sed -n "s/^# $1: \([0-9]*\) documents.*/\1/p" "$2"; }
n_a=$(count train_a "$TMP/o1.manifest"); n_v=$(count val "$TMP/o1.manifest"); n_b=$(count train_b "$TMP/o1.manifest")
check "100000 documents in the splits" [ $((n_a + n_v + n_b)) -eq 100000 ]
within() { awk -v n="$1" -v f="$2" 'BEGIN { d = n / 100000 - f; exit !(d < 0.01 && d > -0.01) }'; }
check "val fraction $n_v / 100000 within 1% of 0.1" within "$n_v" 0.1
check "train_b fraction $n_b / 100000 within 1% of 0.2" within "$n_b" 0.2
check "train_a fraction $n_a / 100000 within 1% of 0.7" within "$n_a" 0.7

# ---- disjoint; duplicates never in two splits -------------------------------------
ids_of() {  # ids_of MANIFEST SPLIT -> sorted unique document ids
    "$BIN/dr-cat" --list --split "$2" "$1" | cut -f1 | sort -u
}
for s in train_a val train_b; do ids_of "$TMP/o1/manifest.tsv" $s >"$TMP/ids.$s"; done
n_unique_in=$("$BIN/dr-cat" --list "$TMP/in" | cut -f1 | sort -u | wc -l)
check "the inputs hold duplicates" [ "$n_unique_in" -lt 100000 ]
check "train_a and val share no document" [ -z "$(comm -12 "$TMP/ids.train_a" "$TMP/ids.val")" ]
check "train_a and train_b share no document" [ -z "$(comm -12 "$TMP/ids.train_a" "$TMP/ids.train_b")" ]
check "val and train_b share no document" [ -z "$(comm -12 "$TMP/ids.val" "$TMP/ids.train_b")" ]
check "every document id is in a split" [ "$(cat "$TMP"/ids.* | wc -l)" -eq "$n_unique_in" ]

# with a copy of a.drs under another name: still one split per id; --dedup keeps one copy
cp "$TMP/a.drs" "$TMP/a-copy.drs"
check "--dedup" split "$TMP/od" --dedup "$TMP/a.drs" "$TMP/a-copy.drs" "$TMP/b.drs" "$TMP/c.drs"
check "--dedup, reordered" split "$TMP/od2" --dedup "$TMP/c.drs" "$TMP/a-copy.drs" "$TMP/b.drs" "$TMP/a.drs"
check "--dedup: order-independent bytes" cmp -s "$TMP/od/train_a/train_a-00000.drs" "$TMP/od2/train_a/train_a-00000.drs"
n_dedup=$(( $(count train_a "$TMP/od.manifest") + $(count val "$TMP/od.manifest") + $(count train_b "$TMP/od.manifest") ))
check "--dedup keeps $n_dedup = $n_unique_in documents" [ "$n_dedup" -eq "$n_unique_in" ]
n_listed=$("$BIN/dr-cat" --list "$TMP/od/manifest.tsv" | cut -f1 | sort | uniq -d | wc -l)
check "--dedup: no id twice" [ "$n_listed" -eq 0 ]
check "no --dedup with copies" split "$TMP/oc" "$TMP/a.drs" "$TMP/a-copy.drs" "$TMP/c.drs"
for s in train_a val train_b; do ids_of "$TMP/oc/manifest.tsv" $s >"$TMP/cids.$s"; done
check "copies: train_a/val disjoint" [ -z "$(comm -12 "$TMP/cids.train_a" "$TMP/cids.val")" ]
check "copies: train_a/train_b disjoint" [ -z "$(comm -12 "$TMP/cids.train_a" "$TMP/cids.train_b")" ]
check "copies: val/train_b disjoint" [ -z "$(comm -12 "$TMP/cids.val" "$TMP/cids.train_b")" ]

# ---- --val-sources -------------------------------------------------------------------
check "--val-sources" split "$TMP/ov" --val-sources books,news "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
other=$("$BIN/dr-cat" --list --split val "$TMP/ov/manifest.tsv" | cut -f2 | grep -cv '^\(books\|news\)$')
check "val holds only books and news ($other others)" [ "$other" -eq 0 ]
n_v=$(count val "$TMP/ov.manifest")
n_src=$("$BIN/dr-cat" --list "$TMP/in" | cut -f2 | grep -c '^\(books\|news\)$')
check "val is ~10% of books+news ($n_v of $n_src)" \
    awk -v n="$n_v" -v m="$n_src" 'BEGIN { d = n / m - 0.1; exit !(d < 0.01 && d > -0.01) }'
# --val-sources-file: the same names one per line (CRLF, blank lines), the same output;
# added to --val-sources; a name with a comma (dr-tokenize keeps commas in source names)
printf 'books\r\n\nnews\n' > "$TMP/vs.txt"
check "--val-sources-file" split "$TMP/ovf" --val-sources-file "$TMP/vs.txt" "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
check "--val-sources-file = --val-sources (the same shards)" same_shards "$TMP/ov" "$TMP/ovf"
printf 'news\n' > "$TMP/vs1.txt"
check "--val-sources books plus --val-sources-file news" split "$TMP/ovf2" --val-sources books --val-sources-file "$TMP/vs1.txt" "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
check "... = --val-sources books,news" same_shards "$TMP/ov" "$TMP/ovf2"
for i in $(seq 1 200); do printf '{"text":"doc %d of it","source":"%s"}\n' "$i" "$( [ $((i % 2)) = 0 ] && echo 'web, the' || echo mail)"; done > "$TMP/comma.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/commash" "$TMP/comma.jsonl" >/dev/null 2>&1
printf 'web, the\n' > "$TMP/vsc.txt"
check "--val-sources-file with a comma in a name" split "$TMP/ovc" --val 0.5 --val-sources-file "$TMP/vsc.txt" "$TMP/commash"
"$BIN/dr-cat" --list --split val "$TMP/ovc/manifest.tsv" | cut -f2 | sort | uniq -c > "$TMP/ovc.src"
check "... val holds documents of that source alone" grep -Eqx ' *[1-9][0-9]* web, the' "$TMP/ovc.src"
check "... and of no other" [ "$(wc -l < "$TMP/ovc.src")" -eq 1 ]
: > "$TMP/vs0.txt"
expect_error "--val-sources-file of no names" "vs0.txt: no source names" "$BIN/dr-split" --val-sources-file "$TMP/vs0.txt" -o "$TMP/ox" "$TMP/a.drs"
expect_error "--val-sources-file missing" "nosuch.txt: cannot open" "$BIN/dr-split" --val-sources-file "$TMP/nosuch.txt" -o "$TMP/ox" "$TMP/a.drs"
printf 'books\nnosuch\n' > "$TMP/vsn.txt"
expect_error "--val-sources-file naming no input's source" 'no input document has the source "nosuch"' \
    "$BIN/dr-split" --val-sources-file "$TMP/vsn.txt" -o "$TMP/ox" "$TMP/a.drs"

# --seed is xxh64's u64 seed: 0 .. 2^64 - 1 (2^63 and above used to be "not an integer";
# tests/xcheck/formats.sh checks the split they give against the documented rule)
check "--seed 2^64 - 1" split "$TMP/oseed" --seed 18446744073709551615 "$TMP/a.drs"
check "... records it" grep -q '^# seed: 18446744073709551615$' "$TMP/oseed.manifest"
expect_error "--seed 2^64" "--seed: '18446744073709551616' is not an integer in \[0, 18446744073709551615\]" \
    "$BIN/dr-split" --seed 18446744073709551616 -o "$TMP/ox" "$TMP/a.drs"
expect_error "--seed -1" "--seed: '-1' is not an integer in \[0, 18446744073709551615\]" \
    "$BIN/dr-split" --seed -1 -o "$TMP/ox" "$TMP/a.drs"

# a split asked for that got no document is said at once (a text file is one document)
printf 'line one\nline two\nline three\n' > "$TMP/lines.txt"
"$BIN/dr-tokenize" --tokenizer byte -o "$TMP/lt" "$TMP/lines.txt" >/dev/null 2>&1
"$BIN/dr-split" --val 0.1 -o "$TMP/olt" "$TMP/lt" >/dev/null 2>"$TMP/olt.err"
check "an empty val: a warning naming it and --lines" grep -q "^dr-split: warning: val got no documents (fraction 0.1 of 1 documents): too few documents .*--lines" "$TMP/olt.err"

# --dedup drops copies but moves no document into val: an id with a copy of another
# source stays out of val (m holds a's first 20000 documents, all of source mail)
$MKSHARD --random 20000 --seed 1 --max-len 60 --sources mail "$TMP/m.drs"
check "--val-sources, copies across sources" split "$TMP/ovm" --val-sources books "$TMP/a.drs" "$TMP/m.drs"
check "--val-sources --dedup, copies across sources" split "$TMP/ovd" --dedup --val-sources books "$TMP/a.drs" "$TMP/m.drs"
check "--val-sources: val the same with and without --dedup" \
    cmp -s <("$BIN/dr-cat" --list --split val "$TMP/ovm/manifest.tsv" | cut -f1 | sort -u) \
           <("$BIN/dr-cat" --list --split val "$TMP/ovd/manifest.tsv" | cut -f1 | sort -u)

# ---- shard size, stale shards ---------------------------------------------------------
check "--shard-size 0.2" split "$TMP/os" --shard-size 0.2 "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
n_shards=$(ls "$TMP/os/train_a" | wc -l)
check "several train_a shards with --shard-size 0.2 ($n_shards)" [ "$n_shards" -gt 3 ]
check "re-run into the same directory" split "$TMP/os" "$TMP/a.drs" "$TMP/b.drs" "$TMP/c.drs"
check "stale shards removed" [ "$(ls "$TMP/os/train_a")" = "train_a-00000.drs" ]
check "same bytes after the re-run" cmp -s "$TMP/os/train_a/train_a-00000.drs" "$TMP/o1/train_a/train_a-00000.drs"
# a split empty in the re-run loses its directory too, as in a fresh run
check "re-run without train_b" bash -c "'$BIN/dr-split' --val 0.1 -o '$TMP/os' '$TMP/a.drs' >/dev/null 2>&1"
check "... train_b/ is gone" [ ! -e "$TMP/os/train_b" ]
check "... and the manifest names no train_b shard" [ -z "$(grep '^train_b' "$TMP/os/manifest.tsv")" ]

# ---- refusals ------------------------------------------------------------------------
size=$(stat -c %s "$TMP/b.drs")
cp "$TMP/b.drs" "$TMP/bad.drs"
printf '\x55' | dd of="$TMP/bad.drs" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_error "corrupt shard" "bad\.drs: block [0-9]+: checksum" "$BIN/dr-split" -o "$TMP/ox" "$TMP/a.drs" "$TMP/bad.drs"
expect_error "corrupt shard, into an earlier output" "bad\.drs: block" \
    "$BIN/dr-split" --val 0.1 --train-b 0.2 --seed 7 -o "$TMP/o2" "$TMP/a.drs" "$TMP/bad.drs"
for f in $(cd "$TMP/o1" && ls */*.drs manifest.tsv); do
    check "a failed run leaves the earlier output: $f" cmp -s "$TMP/o1/$f" "$TMP/o2/$f"
done
check "a failed run leaves no staging directory" [ -z "$(ls -A "$TMP/o2" | grep '^\.')" ]
# the corruption is found in the second pass, once the output directories are made
expect_error "corrupt shard, into a new directory" "bad\.drs: block" \
    "$BIN/dr-split" -o "$TMP/onew/p/q" "$TMP/a.drs" "$TMP/bad.drs"
check "a failed run leaves no output directory it created" [ ! -e "$TMP/onew" ]
mkdir -p "$TMP/oold"
expect_error "corrupt shard, into an empty directory" "bad\.drs: block" \
    "$BIN/dr-split" -o "$TMP/oold/q" "$TMP/a.drs" "$TMP/bad.drs"
check "a failed run leaves the directories that were there before" eval '[ -d "$TMP/oold" ] && [ ! -e "$TMP/oold/q" ]'
head -c $((size - 7)) "$TMP/b.drs" >"$TMP/short.drs"
expect_error "truncated shard" "short\.drs: .*truncated" "$BIN/dr-split" -o "$TMP/ox" "$TMP/short.drs"
$MKSHARD --random 100 --fingerprint 1234 "$TMP/other.drs"
expect_error "mixed tokenizers" "a\.drs and .*other\.drs .*different tokenizers" \
    "$BIN/dr-split" -o "$TMP/ox" "$TMP/a.drs" "$TMP/other.drs"
expect_error "missing input" "nope\.drs: No such file" "$BIN/dr-split" -o "$TMP/ox" "$TMP/nope.drs"
expect_error "--val out of range" "--val" "$BIN/dr-split" --val 1.5 -o "$TMP/ox" "$TMP/a.drs"
expect_error "fractions over 1" "more than 1" "$BIN/dr-split" --val 0.6 --train-b 0.6 -o "$TMP/ox" "$TMP/a.drs"
expect_error "no -o" "-o DIR" "$BIN/dr-split" "$TMP/a.drs"
printf 'train_a %s\n' "$TMP/a.drs" >"$TMP/badman.tsv"
expect_error "malformed manifest" "badman\.tsv:1: expected" "$BIN/dr-split" -o "$TMP/ox" "$TMP/badman.tsv"
printf '0 1 2\n' >"$TMP/empty-ish.drs"
expect_error "not a shard" "empty-ish\.drs: .*(truncated|magic)" "$BIN/dr-split" -o "$TMP/ox" "$TMP/empty-ish.drs"
# an empty --val-sources (a script's empty variable) must not mean "every source"
expect_error "--val-sources ''" "--val-sources '': an empty list" "$BIN/dr-split" --val-sources '' -o "$TMP/ox" "$TMP/a.drs"
expect_error "--val-sources with an empty name" "--val-sources 'web,,mail': an empty source name" \
    "$BIN/dr-split" --val-sources web,,mail -o "$TMP/ox" "$TMP/a.drs"
expect_error "--val-sources ending in a comma" "an empty source name" "$BIN/dr-split" --val-sources web, -o "$TMP/ox" "$TMP/a.drs"
# the printed manifest names DIR by its absolute path: a tab or newline in it would make
# a manifest no reader can take back, so such a DIR is refused before any work
tab_dir=$TMP/o$'\t'x nl_dir=$TMP/o$'\n'x
expect_error "-o with a tab" "holds a tab, newline" "$BIN/dr-split" -o "$tab_dir" "$TMP/a.drs"
expect_error "-o with a newline" "holds a tab, newline" "$BIN/dr-split" -o "$nl_dir" "$TMP/a.drs"
check "... and nothing of them written" eval '[ ! -e "$tab_dir" ] && [ ! -e "$nl_dir" ]'
check "--help" "$BIN/dr-split" --help >/dev/null
check "--version" "$BIN/dr-split" --version >/dev/null


# ---- one shard file twice, whatever split a manifest gives it ----------------------
# dr-split ignores the split names of its inputs: the same file under two of them (or in
# a manifest and again by its path) would have its documents counted twice
printf 'train_a\ta.drs\nval\ta.drs\n' >"$TMP/twice.tsv"
expect_error "one shard in two splits of a manifest" "a\.drs in split val is given twice .*in split train_a" \
    "$BIN/dr-split" -o "$TMP/ox" "$TMP/twice.tsv"
printf 'train_a\ta.drs\n' >"$TMP/once.tsv"
expect_error "a manifest's shard given again by its path" "a\.drs is given twice \(also as .*a\.drs in split train_a\)" \
    "$BIN/dr-split" -o "$TMP/ox" "$TMP/once.tsv" "$TMP/a.drs"
check "... and no output directory" [ ! -e "$TMP/ox" ]

# ---- an output path in the way: refused, DIR as it was ---------------------------------
# DIR/train_b a file (train_b gets documents): before, train_a and val were replaced and
# then the run failed, leaving new shards under the old manifest
cp -r "$TMP/o1" "$TMP/ow"
rm -r "$TMP/ow/train_b" && echo 'not a directory' >"$TMP/ow/train_b"
(cd "$TMP/ow" && find . -type f | sort | xargs md5sum) >"$TMP/ow.before"
expect_error "DIR/train_b is a file" "ow/train_b: exists and is not a directory" \
    "$BIN/dr-split" --val 0.5 --train-b 0.2 --seed 3 -o "$TMP/ow" "$TMP/a.drs"
check "... DIR unchanged" cmp -s "$TMP/ow.before" <(cd "$TMP/ow" && find . -type f | sort | xargs md5sum)
check "... no staging directory" [ -z "$(ls -A "$TMP/ow" | grep '^\.')" ]
# DIR/manifest.tsv a directory: before, every shard was moved into place, then it failed
cp -r "$TMP/o1" "$TMP/om"
rm "$TMP/om/manifest.tsv" && mkdir "$TMP/om/manifest.tsv"
(cd "$TMP/om" && find . -type f | sort | xargs md5sum) >"$TMP/om.before"
expect_error "DIR/manifest.tsv is a directory" "om/manifest\.tsv: is a directory" \
    "$BIN/dr-split" --val 0.5 --seed 3 -o "$TMP/om" "$TMP/a.drs"
check "... the shards unchanged" cmp -s "$TMP/om.before" <(cd "$TMP/om" && find . -type f | sort | xargs md5sum)

# ---- a file size limit (ulimit -f): a write error, not death by SIGXFSZ ----------------
# before: killed by SIGXFSZ (status 153), DIR/.dr-split.<pid>/ and its *.tmp.* files left
expect_error "ulimit -f" "write failed: File too large" \
    bash -c "ulimit -f 64; exec '$BIN/dr-split' -o '$TMP/ofz' '$TMP/a.drs'"
check "... no output directory left" [ ! -e "$TMP/ofz" ]

# ---- same fingerprint, other vocabulary: the message says which ----------------------
$MKSHARD --random 10 --vocab 70000 "$TMP/v70k.drs"
expect_error "mixed vocabulary sizes" "different tokenizers .*vocab (70000|50257) vs .*vocab (70000|50257)" \
    "$BIN/dr-split" -o "$TMP/ox" "$TMP/a.drs" "$TMP/v70k.drs"

finish
