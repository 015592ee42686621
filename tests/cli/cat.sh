#!/usr/bin/env bash
# cat.sh — dr-cat end to end: token ids, filters, --list, JSON lines, text round trips
# (text -> shard -> dr-cat gives the same bytes, byte tokenizer and GPT-2 when its
# vocabulary is there), ranking by a scores file (windows of seq_len + 1 tokens), and
# refusals with one clear line.
source "$(dirname "$0")/helpers.bash" dr-cat

# ---- token ids, filters ----------------------------------------------------------------
printf 'web\t0000000000000001\t0 1 2 3 4 5 6 7 8 9\nbooks\t0000000000000002\t20 21 22 23 24 25\nweb\t0000000000000003\t\nmail\t0000000000000004\t50256 7\n' \
    | $MKSHARD --block-bytes 16 "$TMP/ids.drs"
check "--ids" diff <("$BIN/dr-cat" --ids "$TMP/ids.drs") \
    <(printf '[0,1,2,3,4,5,6,7,8,9]\n[20,21,22,23,24,25]\n[]\n[50256,7]\n')
check "--ids --head 2" diff <("$BIN/dr-cat" --ids --head 2 "$TMP/ids.drs") \
    <(printf '[0,1,2,3,4,5,6,7,8,9]\n[20,21,22,23,24,25]\n')
check "--ids --source web" diff <("$BIN/dr-cat" --ids --source web "$TMP/ids.drs") \
    <(printf '[0,1,2,3,4,5,6,7,8,9]\n[]\n')
check "--list" diff <("$BIN/dr-cat" --list "$TMP/ids.drs") \
    <(printf '0000000000000001\tweb\t10\n0000000000000002\tbooks\t6\n0000000000000003\tweb\t0\n0000000000000004\tmail\t2\n')
check "--jsonl --ids" diff <("$BIN/dr-cat" --jsonl --ids --source mail "$TMP/ids.drs") \
    <(printf '{"id": "0000000000000004", "source": "mail", "n_tokens": 2, "ids": [50256,7]}\n')
# a misspelt --source printed nothing and exited 0
expect_error "--source that no document has" "^dr-cat: --source 'Web': no document of the inputs has that source \(they have 'web', 'books', 'mail'\)$" \
    "$BIN/dr-cat" --ids --source Web "$TMP/ids.drs"
check "--source Web --head 0: nothing, no error" bash -c "out=\$('$BIN/dr-cat' --ids --source Web --head 0 '$TMP/ids.drs') && [ -z \"\$out\" ]"
printf 'val\tids.drs\n' >"$TMP/m.tsv"
expect_error "a split the manifest lacks: the manifest named" "^dr-cat: .*/m.tsv: no shards of split 'train_a' \(its splits: val\)$" \
    "$BIN/dr-cat" --ids --split train_a "$TMP/m.tsv"
expect_error "--split without a manifest" "^dr-cat: .*/ids.drs: no shards of split 'val' \(it names no split: --split picks lines of a manifest\)$" \
    "$BIN/dr-cat" --ids --split val "$TMP/ids.drs"
check "manifest --split" diff <("$BIN/dr-cat" --ids --head 1 --split val "$TMP/m.tsv") <(printf '[0,1,2,3,4,5,6,7,8,9]\n')
# an editor's byte-order mark and CRLF: the split name was '\xef\xbb\xbfval'
printf '\xef\xbb\xbfval\tids.drs\r\n' >"$TMP/mbom.tsv"
check "manifest with a UTF-8 BOM and CRLF" diff <("$BIN/dr-cat" --ids --head 1 --split val "$TMP/mbom.tsv") <(printf '[0,1,2,3,4,5,6,7,8,9]\n')
check "--examples" [ "$("$BIN/dr-cat" --examples --ids --seq-len 4 "$TMP/ids.drs" | wc -l)" -eq 6 ]

# ---- text round trips -------------------------------------------------------------------
printf 'hello world\nsecond line \xc3\xa9 and \xe2\x82\xac\n\n  spaces  and\ttabs\ninvalid \xff\xfe bytes\nlast line\n' >"$TMP/text.txt"
$MKSHARD --text byte --sources text "$TMP/byte.drs" <"$TMP/text.txt"
check "byte: text -> shard -> dr-cat is byte-exact" cmp -s "$TMP/text.txt" <("$BIN/dr-cat" "$TMP/byte.drs")
check "--jsonl text" diff <("$BIN/dr-cat" --jsonl --head 1 "$TMP/byte.drs") \
    <(printf '{"id": "%s", "source": "text", "n_tokens": 11, "text": "hello world"}\n' \
        "$("$BIN/dr-cat" --list --head 1 "$TMP/byte.drs" | cut -f1)")
check "--jsonl: invalid UTF-8 as U+FFFD" grep -q 'invalid \\ufffd\|invalid �' <("$BIN/dr-cat" --jsonl "$TMP/byte.drs")
check "--tokenizer byte override" cmp -s "$TMP/text.txt" <("$BIN/dr-cat" --tokenizer byte "$TMP/byte.drs")
if [ -f data/gpt2/encoder.json ]; then
    DR_DATA=$PWD/data $MKSHARD --text gpt2 --sources text "$TMP/gpt2.drs" <"$TMP/text.txt"
    check "gpt2: text -> shard -> dr-cat is byte-exact" cmp -s "$TMP/text.txt" <("$BIN/dr-cat" "$TMP/gpt2.drs")
    expect_error "mixed tokenizers" "byte\.drs and .*gpt2\.drs .*different tokenizers" \
        "$BIN/dr-cat" "$TMP/byte.drs" "$TMP/gpt2.drs"
    expect_error "override of another tokenizer" "not the one .*byte\.drs" \
        "$BIN/dr-cat" --tokenizer gpt2 --vocab-dir data/gpt2 "$TMP/byte.drs"
else
    echo "cat.sh: data/gpt2 missing (make vocab): GPT-2 round trip skipped"
fi
if [ -x "$BIN/dr-tokenize" ]; then   # dr-tokenize then dr-cat gives the input back
    grep -av '^$' "$TMP/text.txt" >"$TMP/lines.txt"   # dr-tokenize skips blank lines
    for kind in byte gpt2; do
        [ $kind = gpt2 ] && [ ! -f data/gpt2/encoder.json ] && continue
        check "dr-tokenize --lines ($kind)" "$BIN/dr-tokenize" --tokenizer $kind --lines --invalid-utf8 keep \
            -o "$TMP/tl-$kind" "$TMP/lines.txt" >/dev/null 2>&1
        check "dr-tokenize --lines | dr-cat is byte-exact ($kind)" cmp -s "$TMP/lines.txt" <("$BIN/dr-cat" "$TMP/tl-$kind")
        check "dr-tokenize --format text ($kind)" "$BIN/dr-tokenize" --tokenizer $kind --format text \
            --invalid-utf8 keep -o "$TMP/tt-$kind" "$TMP/text.txt" >/dev/null 2>&1
        check "dr-tokenize --format text | dr-cat --raw is byte-exact ($kind)" \
            cmp -s "$TMP/text.txt" <("$BIN/dr-cat" --raw "$TMP/tt-$kind")
    done
fi
expect_error "a shard whose tokenizer is unknown" "\"test\"" "$BIN/dr-cat" "$TMP/ids.drs"
# a shard made on another machine names a vocabulary directory this one lacks: the line
# names the shard and the way out, not only the directory
printf 'web\t-\t1 2 3 4\n' | $MKSHARD --vocab 300 --spec bpe:/nonexistent/vocab "$TMP/elsewhere.drs"
expect_error "a shard's bpe vocabulary missing here" \
    "elsewhere\.drs: cannot load the tokenizer it names, \"bpe:/nonexistent/vocab\": .*--tokenizer" \
    "$BIN/dr-cat" "$TMP/elsewhere.drs"
expect_error "... --examples" "elsewhere\.drs: cannot load the tokenizer it names.*--ids" \
    "$BIN/dr-cat" --examples "$TMP/elsewhere.drs"

# ---- ranking by scores (window w = tokens [w*L, w*L + L + 1)) ----------------------------
printf 'example_id\tscore\tsource\tn_tokens\n0000000000000001:0\t0.5\tweb\t5\n0000000000000001:1\t2.5\tweb\t5\n0000000000000001:2\t-1\tweb\t2\n0000000000000002:0\t1.5\tbooks\t5\n0000000000000002:1\t0.1\tbooks\t2\n00000000000000ff:0\t9.9\tweb\t5\n' >"$TMP/scores.tsv"
check "--top 2" diff <("$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --top 2 --seq-len 4 "$TMP/ids.drs") \
    <(printf '[4,5,6,7,8]\n[20,21,22,23,24]\n')
check "--bottom 2" diff <("$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --bottom 2 --seq-len 4 "$TMP/ids.drs") \
    <(printf '[8,9]\n[24,25]\n')
check "--top --source" diff <("$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --top 1 --source books --seq-len 4 "$TMP/ids.drs") \
    <(printf '[20,21,22,23,24]\n')
check "--top --jsonl shows the score" grep -q '"example": "0000000000000001:1", "score": 2.5, "window": 1, ' \
    <("$BIN/dr-cat" --jsonl --ids --scores "$TMP/scores.tsv" --top 1 --seq-len 4 "$TMP/ids.drs")
# window 1 of 5 tokens in a document of 10: seq_len 4 (a full window) or 5 (the last one)
expect_error "scores made with another seq_len" "scores\.tsv:3: .* with --seq-len 8: use the seq_len the scores were made with$" \
    "$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --top 5 --seq-len 8 "$TMP/ids.drs"
# a first window cut short says which: seq_len 4
printf 'example_id\tscore\tsource\tn_tokens\n0000000000000001:0\t0.5\tweb\t5\n' >"$TMP/first.tsv"
expect_error "scores made with another seq_len, named" "first\.tsv:2: .* with --seq-len 8: use --seq-len 4, as the scores were made$" \
    "$BIN/dr-cat" --ids --scores "$TMP/first.tsv" --seq-len 8 "$TMP/ids.drs"
printf 'example_id\tscore\tsource\tn_tokens\n0000000000000001:0\tnan\tweb\t5\n' >"$TMP/nan.tsv"
expect_error "NaN score" "nan\.tsv:2: " "$BIN/dr-cat" --ids --scores "$TMP/nan.tsv" --top 1 "$TMP/ids.drs"
printf 'example_id\tscore\tsource\tn_tokens\n00000000000000ff:0\t1\tweb\t5\n' >"$TMP/none.tsv"
expect_error "scores of other documents" "none\.tsv: none of its" "$BIN/dr-cat" --ids --scores "$TMP/none.tsv" "$TMP/ids.drs"
expect_error "--top without --scores" "--scores" "$BIN/dr-cat" --top 3 "$TMP/ids.drs"
# a window that does not fit is found before anything is printed: one line, empty stdout
# (the highest-scored example fits, the next one was made with another seq_len)
printf 'example_id\tscore\tsource\tn_tokens\n0000000000000001:0\t9\tweb\t5\n0000000000000002:0\t1\tbooks\t4\n' >"$TMP/half.tsv"
expect_error "a bad window after a good one" "half\.tsv:3: .*--seq-len" \
    "$BIN/dr-cat" --ids --scores "$TMP/half.tsv" --seq-len 4 "$TMP/ids.drs"
check "... and nothing on stdout" [ ! -s "$TMP/stdout" ]

# ---- --head 0 prints nothing (as head -n 0); conflicting options are refused -------------
check "--head 0: nothing" [ -z "$("$BIN/dr-cat" --ids --head 0 "$TMP/ids.drs")" ]
check "--head 0 --examples: nothing" [ -z "$("$BIN/dr-cat" --examples --ids --seq-len 4 --head 0 "$TMP/ids.drs")" ]
check "--head 0 --scores: nothing" [ -z "$("$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --seq-len 4 --head 0 "$TMP/ids.drs")" ]
check "--examples --head 2" [ "$("$BIN/dr-cat" --examples --ids --seq-len 4 --head 2 "$TMP/ids.drs" | wc -l)" -eq 2 ]
check "--scores --head 1" [ "$("$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --seq-len 4 --head 1 "$TMP/ids.drs" | wc -l)" -eq 1 ]
expect_error "--head with --top" "--head does not go with --top" \
    "$BIN/dr-cat" --ids --scores "$TMP/scores.tsv" --seq-len 4 --top 1 --head 2 "$TMP/ids.drs"
expect_error "--list with --jsonl" "--list .* does not go with --jsonl" "$BIN/dr-cat" --list --jsonl "$TMP/ids.drs"
expect_error "--list with --ids" "--list .* does not go with --ids" "$BIN/dr-cat" --ids --list "$TMP/ids.drs"
expect_error "--raw with --jsonl" "--raw .* does not go with --jsonl" "$BIN/dr-cat" --raw --jsonl "$TMP/ids.drs"

# ---- refusals -------------------------------------------------------------------------------
$MKSHARD --random 2000 --max-len 100 "$TMP/big.drs"
size=$(stat -c %s "$TMP/big.drs")
cp "$TMP/big.drs" "$TMP/bad.drs"
printf '\x55' | dd of="$TMP/bad.drs" bs=1 seek=$((size / 3)) conv=notrunc status=none
expect_error "corrupt shard" "bad\.drs: block [0-9]+: " "$BIN/dr-cat" --ids "$TMP/bad.drs"
head -c 100 "$TMP/big.drs" >"$TMP/short.drs"
expect_error "truncated shard" "short\.drs: .*truncated" "$BIN/dr-cat" --ids "$TMP/short.drs"
expect_error "missing input" "nope: No such file" "$BIN/dr-cat" "$TMP/nope"
mkdir "$TMP/empty"
expect_error "empty directory" "empty: no \*\.drs" "$BIN/dr-cat" "$TMP/empty"
# a FIFO named *.drs (in a directory, or behind a manifest's directory line): refused at
# once, not waited on for a writer (timeout: the old reader hung in open(2))
mkdir "$TMP/withfifo" && cp "$TMP/ids.drs" "$TMP/withfifo/a.drs" && mkfifo "$TMP/withfifo/b.drs"
expect_error "a FIFO in a directory" "withfifo/b\.drs: not a regular file \(a FIFO\)" \
    timeout 20 "$BIN/dr-cat" --ids "$TMP/withfifo"
printf 'val\twithfifo\n' >"$TMP/fifo.tsv"
expect_error "a FIFO in a manifest's directory" "withfifo/b\.drs: not a regular file" \
    timeout 20 "$BIN/dr-cat" --examples --ids --split val "$TMP/fifo.tsv"
expect_error "empty manifest on stdin" "stdin.*no shards" "$BIN/dr-cat" - </dev/null
expect_error "a shard on stdin" "stdin.*a token shard, not a manifest" "$BIN/dr-cat" --ids - <"$TMP/ids.drs"
expect_error "unknown option" "--bogus" "$BIN/dr-cat" --bogus "$TMP/ids.drs"
check "--help" "$BIN/dr-cat" --help >/dev/null
check "--version" "$BIN/dr-cat" --version >/dev/null

finish
