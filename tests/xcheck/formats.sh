#!/usr/bin/env bash
# tests/xcheck/formats.sh — cross-check the files the datarater tools write against an
# independent reader written from docs/formats.md (tests/xcheck/formats_ref.py; it never
# looked at lib/ or tools/).
#
#   tests/xcheck/formats.sh            # from anywhere
#   KEEP=1 tests/xcheck/formats.sh     # keep the temp dir (printed)
#
# Prints "CHECK <name> PASS|FAIL <detail>" per check; exit 1 on any FAIL, 77 (with
# "SKIPPED: ...") when /usr/bin/python3 (or $XCHECK_PYTHON) lacks zstandard/xxhash.
#   a. dr-tokenize (byte, gpt2; JSONL + source field, --lines with CRLF and invalid UTF-8,
#      a text file): header/index, checksums, counts, doc ids, sources, fingerprint,
#      tokens (bytes; own GPT-2 BPE; dr-cat --ids), dr-cat --list and text output
#   b. several shards and many blocks: documents in one block, blocks tiling, sizes, the
#      shard and block boundaries (layout)
#   c. dr-split: the split rule (plain, --val-sources, --dedup, seeds 2^63 and 2^64 - 1),
#      manifests, input order, --shard-size 0.001 (1048.576 bytes)
#   d. example windows/ids vs dr-cat --examples and dr-score's scores.tsv
#   e. dr-filter: --keep, --per-batch, --keep-middle, --cdf, --random, --min-score, each with and without
#      --invert, examples or --documents AGG as the units, vs the documented rules (kept
#      units and the stderr summary), on one
#      shard and on three shards with duplicates, tied scores, half-integer F·N, F·B edges
#   f. safetensors of dr-train -o and dr-meta -o (+ ema, + .state moments)
#   g. corrupted and truncated shards: the reader and dr-cat both refuse
source "$(dirname "$0")/prelude.bash"
B=${XCHECK_BIN:-$ROOT/bin}
REF=$ROOT/tests/xcheck/formats_ref.py
xcheck_setup xformats "zstandard xxhash numpy yaml" "$B" dr-tokenize dr-cat dr-split dr-score dr-filter dr-meta dr-train
CFG=$ROOT/configs/tiny.yaml
BASE=$ROOT/configs/base.yaml
VOC=$ROOT/data/gpt2

fails=0
exec 3>&1   # fail() writes here: a run whose stdout goes to a file still shows its FAIL line
ref() { "$PY" "$REF" "$@" || fails=$((fails + 1)); }
fail() { echo "CHECK $1 FAIL $2" >&3; fails=$((fails + 1)); }
run() {  # run a tool; on failure a FAIL line with its stderr
    local name=$1; shift
    if ! "$@" 2>"$W/last.err"; then fail "$name" "command failed: $* :: $(head -c 300 "$W/last.err")"; return 1; fi
}

# ------------------------------------------------------------------ inputs
"$PY" - <<'EOF'
import json
docs = [
    ("Hello, world!", "web"),
    ("caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001F600 done", "intl"),
    ("Hello, world!", "mail"),                      # same text, other source: same id
    ("", "web"),                                     # empty: skipped
    ("line1\r\nline2\ttab \"q\" back\\slash\u0001ctl", "web"),
    ("it's <|endoftext|> done  \n\n  spaces   ", "web"),
    ("caf\u00e9 na\u00efve \u2014 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \U0001F600 done", "intl"),
    ("   ", "web"),                                  # whitespace only: a document
    ("They'll say we've 12345 67 apples.\u00a0\u3000Zeile\u2028x", "intl"),
    ("an empty source takes the default", ""),
    ("a TAB and a newline in the source", "we\tb\nx"),    # source becomes we_b_x
]
with open("mix.jsonl", "w", encoding="utf-8") as f:
    f.write("\ufeff")                                # a BOM starting the file: dropped
    for t, s in docs:
        f.write(json.dumps({"text": t, "source": s}, ensure_ascii=(s == "web")) + "\n")
    f.write("\n")                                    # a blank line
    f.write('{"source": "esc", "text": "surrogate pair \\ud83d\\ude00 and \\u00e9\\n"}\r\n')
with open("mix.jsonl", "ab") as f:
    f.write(b'{"text": "raw invalid \xff\xfe bytes \xe2\x82 in JSON", "source": "rawbytes"}\n')
with open("lines.txt", "wb") as f:
    f.write(b"plain ascii\r\n" b"caf\xc3\xa9\n" b"bad \xff byte\n" b"trunc \xe2\x82\n"
            b"overlong \xc0\xaf\n" b"surrogate \xed\xa0\x80 x\n" b"\n" b"\r\n"
            b"dup line\n" b"   \n" b"\t\r\n" b"dup line\r\n" b"mid\rcr\n" b"latin1 \xe9t\xe9\n" b"last line no newline, a CR after it\r")
with open("notes.txt", "wb") as f:
    f.write("Whole file.\nSecond line \u00e9\r\n\n".encode())
with open("huge.txt", "wb") as f:
    # one document larger than a block (1.2 MiB of bytes)
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    f.write(line * (1200 * 1024 // len(line)))
EOF
"$ROOT/tests/data/gen_corpus.sh" corp 300 >/dev/null
"$ROOT/tests/data/gen_corpus.sh" corpbig 12000 >/dev/null
"$ROOT/tests/data/gen_toy.sh" 120 80 1 > toy.jsonl

inputs_json() {  # inputs_json FILE FORMAT [SOURCE_FIELD] ... -> JSON list for tokcheck
    "$PY" -c '
import json, sys
a = sys.argv[1:]; out = []
while a:
    p, fmt, sf = a[0], a[1], a[2]; a = a[3:]
    out.append({"path": p, "format": fmt, "source_field": sf or None})
print(json.dumps(out))' "$@"
}

# ------------------------------------------------------------------ a. dr-tokenize
for tk in byte gpt2; do
    run tok.$tk.jsonl "$B/dr-tokenize" --tokenizer $tk --vocab-dir "$VOC" --source-field source \
        -o t_$tk/j mix.jsonl corp/corpus.jsonl >/dev/null
    run tok.$tk.lines "$B/dr-tokenize" --tokenizer $tk --vocab-dir "$VOC" --lines -o t_$tk/l lines.txt >/dev/null
    run tok.$tk.text "$B/dr-tokenize" --tokenizer $tk --vocab-dir "$VOC" -o t_$tk/t notes.txt >/dev/null
    inputs_json mix.jsonl jsonl source corp/corpus.jsonl jsonl source > in_j.json
    inputs_json lines.txt lines "" > in_l.json
    inputs_json notes.txt text "" > in_t.json
    for k in j l t; do
        ids=(); [ $tk = gpt2 ] && { "$B/dr-cat" --ids t_$tk/$k > ids_$tk$k.txt 2>/dev/null; ids=(--catids ids_$tk$k.txt); }
        "$B/dr-cat" --list t_$tk/$k > list_$tk$k.txt 2>/dev/null
        "$B/dr-cat" t_$tk/$k > text_$tk$k.txt 2>/dev/null
        ref tokcheck --name a.$tk.$k --tokenizer $tk --vocab-dir "$VOC" --inputs in_$k.json "${ids[@]}" \
            --catlist list_$tk$k.txt --catraw text_$tk$k.txt t_$tk/$k/*.drs
    done
done
# dotted --field / --source-field (docs/formats.md "Nested fields"): nested members, a key
# holding the dots taken first, lines without the source (the default source)
"$PY" - <<'PYEOF'
import json
rows = [{"meta": {"body": "nested one", "src": "web"}},
        {"meta": {"body": "nested two", "src": "books"}, "meta.body": "the literal key"},
        {"meta": {"body": "no source here"}},
        {"meta": {"body": "deeper", "src": ""}, "x": 1},
        {"meta.src": "dotted-key", "meta": {"body": "a key with a dot", "src": "inner"}}]
with open("nested.jsonl", "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
with open("in_nested.json", "w") as f:
    json.dump([{"path": "nested.jsonl", "format": "jsonl", "field": "meta.body",
                "source_field": "meta.src", "source": "dflt"}], f)
PYEOF
run tok.nested "$B/dr-tokenize" --tokenizer byte --field meta.body --source-field meta.src --source dflt \
    -o t_nested nested.jsonl >/dev/null &&
    "$B/dr-cat" --list t_nested > list_nested.txt 2>/dev/null &&
    ref tokcheck --name a.byte.nested_fields --tokenizer byte --inputs in_nested.json --catlist list_nested.txt t_nested/*.drs
# compressed inputs (lib/textin.c): gzip of two members and zstd of two frames, read
# by the reference with Python's gzip and zstandard; the names without .gz/.zst give the
# format (JSON lines, one document per file) and the sources
{ head -c 20000 corp/corpus.jsonl | sed '$d' | gzip -c; sed -n '200,$p' corp/corpus.jsonl | gzip -c; } > cz1.jsonl.gz
{ head -n 150 corp/corpus.jsonl | zstd -q -c; sed -n '151,$p' corp/corpus.jsonl | zstd -q -c; } > cz2.ndjson.zst
gzip -c notes.txt > cz3.txt.gz
"$PY" - <<'PYEOF'
import json
with open("in_cz.json", "w") as f:
    json.dump([{"path": "cz1.jsonl.gz", "format": "jsonl", "source": "cz1"},
               {"path": "cz2.ndjson.zst", "format": "jsonl", "source": "cz2"},
               {"path": "cz3.txt.gz", "format": "text", "source": "cz3"}], f)
PYEOF
run tok.compressed "$B/dr-tokenize" --tokenizer byte -o t_cz cz1.jsonl.gz cz2.ndjson.zst cz3.txt.gz >/dev/null &&
    "$B/dr-cat" --list t_cz > list_cz.txt 2>/dev/null &&
    ref tokcheck --name a.byte.compressed --tokenizer byte --inputs in_cz.json --catlist list_cz.txt t_cz/*.drs
# --invalid-utf8 keep with the byte tokenizer: the tokens are the raw bytes
run tok.keep "$B/dr-tokenize" --tokenizer byte --lines --invalid-utf8 keep -o t_keep lines.txt >/dev/null &&
    ref tokcheck --name a.byte.keep --tokenizer byte --policy keep --inputs in_l.json t_keep/*.drs
# the header's "index offset + index size = file size" and the .tmp rule: no temp files left
left=$(find t_byte t_gpt2 -name '*.tmp*' | wc -l)
[ "$left" = 0 ] && echo "CHECK a.no_tmp_left PASS" || fail a.no_tmp_left "$left temp files"

# ------------------------------------------------------------------ b. many shards, many blocks
run tok.big "$B/dr-tokenize" --tokenizer byte --source-field source -o big corpbig/corpus.jsonl >/dev/null
run tok.huge "$B/dr-tokenize" --tokenizer byte -o huge notes.txt huge.txt >/dev/null
run tok.small "$B/dr-tokenize" --tokenizer byte --source-field source --shard-size 1 -o small corpbig/corpus.jsonl >/dev/null
inputs_json corpbig/corpus.jsonl jsonl source > in_big.json
inputs_json notes.txt text "" huge.txt text "" > in_huge.json
ref blocks --name b.one_shard_many_blocks --min-blocks 3 big/*.drs
ref blocks --name b.huge_document --min-blocks 2 huge/*.drs
ref blocks --name b.shard_size_1MB --min-blocks 3 --max-shard-bytes 1048576 --total-docs 12000 small/*.drs
ref layout --name b.shard_size_1MB --rule tokenize --mb 1 small/*.drs
ref layout --name b.huge_document --rule tokenize --mb 64 huge/*.drs
ref tokcheck --name b.big --tokenizer byte --inputs in_big.json big/*.drs
ref tokcheck --name b.small --tokenizer byte --inputs in_big.json small/*.drs
ref tokcheck --name b.huge --tokenizer byte --inputs in_huge.json huge/*.drs

# ------------------------------------------------------------------ c. dr-split
# three input shards of one tokenizer, with exact duplicates inside and across shards,
# and copies of "clean" documents under another source (not eligible for val-sources)
head -n 100 toy.jsonl > p1.jsonl
tail -n 100 toy.jsonl > p2.jsonl
{ head -n 20 toy.jsonl; sed -n 30,45p toy.jsonl | sed 's/"source": "clean"/"source": "other"/'; head -n 5 toy.jsonl; } > p3.jsonl
for p in p1 p2 p3; do
    run tok.$p "$B/dr-tokenize" --tokenizer byte --source-field source --prefix $p -o sp $p.jsonl >/dev/null
done
S1=sp/p1-00000.drs; S2=sp/p2-00000.drs; S3=sp/p3-00000.drs
mkdir -p alt && cp $S1 alt/zz-last.drs && cp $S3 alt/aa-first.drs   # same contents, other names
split_case() {  # split_case NAME "dr-split options" "ref options"
    local name=$1 opts=$2 ropts=$3
    run c.$name.run "$B/dr-split" $opts -o $name.A $S1 $S2 $S3 > $name.A.out &&
    run c.$name.run2 "$B/dr-split" ${opts/--threads 1/--threads 2} -o $name.B alt/aa-first.drs $S2 alt/zz-last.drs > $name.B.out || return
    ref split --name c.$name --out $name.A --stdout $name.A.out $ropts $S1 $S2 $S3
    if diff -r $name.A $name.B >/dev/null; then echo "CHECK c.$name.input_order PASS same bytes for inputs in another order"
    else fail c.$name.input_order "outputs differ: $(diff -rq $name.A $name.B | head -3 | tr '\n' ' ')"; fi
}
split_case plain "--threads 1 --val 0.2 --train-b 0.3 --seed 7" "--val 0.2 --train-b 0.3 --seed 7"
split_case valsrc "--val 0.3 --train-b 0.2 --seed 3 --val-sources clean" "--val 0.3 --train-b 0.2 --seed 3 --val-sources clean"
split_case dedup "--val 0.25 --seed 1 --dedup" "--val 0.25 --seed 1 --dedup"
split_case both "--val 0.4 --train-b 0.1 --seed 5 --dedup --val-sources clean,other" "--val 0.4 --train-b 0.1 --seed 5 --dedup --val-sources clean,other"
# the seed is xxh64's u64 seed: the whole range, 2^63 and 2^64 - 1 included (dr-split took
# only 0 .. 2^63 - 1 and called 2^63 "not an integer"; tests/xcheck/random_formats.py)
split_case seed2p63 "--threads 1 --val 0.3 --train-b 0.3 --seed 9223372036854775808" "--val 0.3 --train-b 0.3 --seed 9223372036854775808"
split_case seedmax "--threads 1 --val 0.3 --train-b 0.3 --seed 18446744073709551615 --dedup" "--val 0.3 --train-b 0.3 --seed 18446744073709551615 --dedup"
# several output shards per split (--shard-size 1 on 2M tokens of the big corpus)
run c.multi "$B/dr-split" --val 0.1 --train-b 0.2 --seed 2 --shard-size 1 -o multi small/*.drs > multi.out &&
    ref split --name c.multi --out multi --stdout multi.out --val 0.1 --train-b 0.2 --seed 2 small/*.drs

# --shard-size MB where MB MiB is not a whole number of bytes (0.001 MiB = 1048.576): dr-split
# starts a new shard once a shard's token bytes reach it, so one of 1048 bytes (a document
# of 524 byte tokens) stays open (dr-split truncated the limit to 1048 bytes and closed it;
# tests/xcheck/random_formats.py). dr-tokenize's "would pass" is the same either way.
"$PY" -c 'print("\n".join(chr(97 + i) * 524 for i in range(6)))' > l524.txt
run tok.l524 "$B/dr-tokenize" --tokenizer byte --lines --shard-size 0.001 -o l524 l524.txt >/dev/null &&
    ref layout --name c.frac_tokenize --rule tokenize --mb 0.001 l524/*.drs
run c.frac.run "$B/dr-split" --val 0 --shard-size 0.001 -o frac l524 > frac.out &&
    ref split --name c.frac --out frac --stdout frac.out --val 0 l524/*.drs &&
    ref layout --name c.frac_split --rule split --mb 0.001 frac/train_a/*.drs

# ------------------------------------------------------------------ d. examples and scores
# toy: clean = the pattern, corrupt = noise; val from clean only (as gen_toy.sh says)
run tok.toy "$B/dr-tokenize" --tokenizer byte --source-field source -o toy toy.jsonl >/dev/null
run split.toy "$B/dr-split" --val 0.3 --train-b 0.3 --seed 1 --val-sources clean -o tsplit toy > tsplit.out
M=tsplit/manifest.tsv
TB=$(ls tsplit/train_b/*.drs)
for Lm in 32:2 32:20 7:2 7:6; do
    L=${Lm%:*} mt=${Lm#*:}
    "$B/dr-cat" --examples --ids --seq-len $L --min-tokens $mt $TB > ex_${L}_$mt.txt 2>/dev/null
    ref examples --name d.dr-cat.L$L.min$mt --seq-len $L --min-tokens $mt --catex ex_${L}_$mt.txt $TB
done
"$B/dr-cat" --examples --ids --seq-len 5 t_gpt2/j > ex_gpt2.txt 2>/dev/null
ref examples --name d.dr-cat.gpt2.L5 --seq-len 5 --catex ex_gpt2.txt t_gpt2/j/*.drs
run meta "$B/dr-meta" --config "$CFG" --set meta.rounds=1 -o r.safetensors $M
run score "$B/dr-score" --rater r.safetensors --config "$CFG" --split train_b $M > scores.tsv &&
    ref examples --name d.scores --seq-len 32 --scores scores.tsv $TB
run score20 "$B/dr-score" --rater r.safetensors --config "$CFG" --set data.min_tokens=20 --split train_b $M > scores20.tsv &&
    ref examples --name d.scores.min20 --seq-len 32 --min-tokens 20 --scores scores20.tsv $TB

# ------------------------------------------------------------------ e. dr-filter
# Every policy, with and without --invert, against select_ref (written from docs/deploy.md's
# "The counts, exactly" and "The selection, exactly"): the kept examples (tokens, sources,
# ids, in shard order) and the summary on stderr (counts, tokens, per source).
fcase() {  # fcase NAME SCORES "TOOL INPUTS" "REF SHARDS" POLICY F B|- SEED|- [--invert] [REF FLAGS...]
    local name=$1 sc=$2 tin=$3 rin=$4 pol=$5 F=$6 bb=$7 seed=$8; shift 8
    local inv="" t=()
    [ "${1:-}" = --invert ] && { inv=--invert; shift; }
    case $pol in
        keep) t=(--keep "$F") ;;
        keep-middle) t=(--keep-middle "$F") ;;
        random) t=(--random "$F") ;;
        per-batch) t=(--per-batch "$bb" --keep "$F") ;;
        cdf) t=(--cdf --fraction "$F") ;;
        min-score) t=(--min-score "$F") ;;   # F: the threshold S
    esac
    [ "$seed" != - ] && t+=(--seed "$seed")
    local rb=(); [ "$bb" != - ] && rb=(--batch "$bb")
    local fl=--fraction; [ "$pol" = min-score ] && fl=--min-score
    local dm=(); [ -n "${DOCS:-}" ] && dm=(--documents "$DOCS")   # DOCS=AGG: documents as the units
    rm -rf kept
    # without --seed: tiny.yaml's experiment.seed, 0
    run "$name" "$B/dr-filter" --scores "$sc" "${t[@]}" $inv "${dm[@]}" --config "$CFG" -o kept $tin > kept.out &&
        ref filter --name "$name" --seq-len 32 --scores "$sc" --policy "$pol" "$fl" "$F" "${rb[@]}" \
            --seed "${seed/#-/0}" $inv "${dm[@]}" "$@" --summary "$W/last.err" --out-shards "$(tr '\n' , < kept.out)" $rin
}
# e1. the toy Train_B (one shard, N = 233) with the rater's scores
for inv in "" --invert; do
    for F in 0.6 0.25 0.5; do   # 0.5 of 233 examples: the half rounds up
        fcase e.keep$F$inv scores.tsv "--split train_b $M" "$TB" keep $F - - $inv
    done
    # F·B just above an integer in double: 0.55·100 = 55.00000000000001 (batches 100, 100,
    # 33), 0.14·50 = 7.000000000000001; 0.7·10 = 7 exactly
    fcase e.per-batch100_0.55$inv scores.tsv "--split train_b $M" "$TB" per-batch 0.55 100 - $inv --expect-fp-edge
    fcase e.per-batch50_0.14$inv scores.tsv "--split train_b $M" "$TB" per-batch 0.14 50 - $inv --expect-fp-edge
    fcase e.per-batch10_0.7$inv scores.tsv "--split train_b $M" "$TB" per-batch 0.7 10 - $inv --expect-exact
    fcase e.keep-middle0.6$inv scores.tsv "--split train_b $M" "$TB" keep-middle 0.6 - - $inv
    fcase e.cdf0.5.seed3$inv scores.tsv "--split train_b $M" "$TB" cdf 0.5 - 3 $inv
    fcase e.cdf0.8$inv scores.tsv "--split train_b $M" "$TB" cdf 0.8 - - $inv
    fcase e.random0.6$inv scores.tsv "--split train_b $M" "$TB" random 0.6 - - $inv
    # --min-score S: the 100th best score as the file has it, one between two scores, one
    # above all (nothing kept: not an error), one below all
    S100=$(tail -n +2 scores.tsv | cut -f2 | sort -g -r | sed -n 100p)
    for S in "$S100" 0.00001 1e300 -1e300; do
        fcase e.min-score$S$inv scores.tsv "--split train_b $M" "$TB" min-score "$S" - - $inv
    done
    # --documents AGG: documents (several windows each, the last one shorter) scored by
    # AGG over their examples, written whole
    DOCS=mean fcase e.doc-mean.keep0.6$inv scores.tsv "--split train_b $M" "$TB" keep 0.6 - - $inv
    DOCS=min fcase e.doc-min.per-batch7_0.5$inv scores.tsv "--split train_b $M" "$TB" per-batch 0.5 7 - $inv
    DOCS=max fcase e.doc-max.cdf0.5.seed3$inv scores.tsv "--split train_b $M" "$TB" cdf 0.5 - 3 $inv
    DOCS=first fcase e.doc-first.keep-middle0.6$inv scores.tsv "--split train_b $M" "$TB" keep-middle 0.6 - - $inv
    DOCS=mean fcase e.doc-mean.random0.5$inv scores.tsv "--split train_b $M" "$TB" random 0.5 - - $inv
    DOCS=mean fcase e.doc-mean.min-score$inv scores.tsv "--split train_b $M" "$TB" min-score "$S100" - - $inv
done
# e2. three shards given out of name order (c3 c1 c2), sources alpha/beta/gamma and the
# shards' default ones, exact duplicate documents within and across shards, N = 35 (so
# F·N is a half-integer for F = 0.1, 0.3, 0.5, 0.7); scores: the rater's, four tied
# levels (equal scores across shards) in a shuffled file, and one constant
"$PY" - <<'PYEOF'
import json
x = 12345
def doc(n):
    global x
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append("abcdefghij klmnop"[(x >> 33) % 17])
    return "".join(out)
sh = [doc(20), doc(50), doc(15)]
shards = {
    "c1": [(doc(20), "alpha"), (sh[0], "alpha"), (doc(70), "beta"), (doc(10), None), (sh[1], "beta"),
           (doc(25), "alpha"), (doc(30), "gamma")],
    "c2": [(sh[0], "beta"), (doc(12), "gamma"), (doc(100), "alpha"), (sh[2], "gamma"), (doc(18), None),
           (doc(40), "beta"), (doc(100), "gamma"), (doc(45), None), (doc(1), "alpha")],
    "c3": [(sh[1], "alpha"), (doc(22), "beta"), (sh[2], "gamma"), (doc(33), "alpha"), (doc(9), "beta"),
           (sh[0], "alpha"), (doc(60), "gamma")],
}
for k, docs in shards.items():
    with open(k + ".jsonl", "w") as f:
        for t, s in docs:
            f.write(json.dumps(dict(text=t, **({"source": s} if s else {}))) + "\n")
PYEOF
for c in c1 c2 c3; do
    run tok.$c "$B/dr-tokenize" --tokenizer byte --source-field source --prefix $c -o cs $c.jsonl >/dev/null
done
CS="cs/c3-00000.drs cs/c1-00000.drs cs/c2-00000.drs"
XCHECK_DIR=$ROOT/tests/xcheck "$PY" - $CS <<'PYEOF'
import os, sys
sys.path.insert(0, os.environ["XCHECK_DIR"])
import formats_ref as R
ex = R.examples_of([R.read_shard(p) for p in sys.argv[1:]], 32)
R.check("e.c.N35", len(ex) == 35, "%d examples, %d distinct ids" % (len(ex), len(set(e[0] for e in ex))))
order = sorted(range(len(ex)), key=lambda i: R.xxh64(b"%d" % i))     # a shuffled file
for name, score in (("ties", lambda i: ["-1.25", "0", "0.5", "3"][R.xxh64(b"t%d" % i) % 4]),
                    ("const", lambda i: "0.75")):
    with open("s_%s.tsv" % name, "w") as f:
        f.write(R.SCORES_HEADER + "\n")
        for i in order:   # duplicate ids: their n-th line in the file scores their n-th example
            f.write("%s\t%s\t%s\t%d\n" % (ex[i][0], score(i), ex[i][1], len(ex[i][2])))
sys.exit(1 if R.FAILS else 0)
PYEOF
[ $? = 0 ] || fails=$((fails + 1))
run score.cs "$B/dr-score" --rater r.safetensors --config "$CFG" $CS > s_rater.tsv
for inv in "" --invert; do
    for F in 0.5 0.3 0.1; do
        fcase e.c.ties.keep$F$inv s_ties.tsv "$CS" "$CS" keep $F - - $inv --expect-half
    done
    for F in 0.5 0.3 0.7; do   # 0.5: 17 dropped, 8 at the best end, 9 at the worst
        fcase e.c.ties.keep-middle$F$inv s_ties.tsv "$CS" "$CS" keep-middle $F - - $inv --expect-half
    done
    # 0.6·5, 0.7·10, 0.1·30 are exact integers in double (3, 7, 3; the batch of 30 is
    # followed by one of 5); 0.28·25 = 7.000000000000001 is just above (then 0.28·10 = 2.8…)
    for FB in 0.6:5 0.7:10 0.1:30; do
        fcase e.c.ties.per-batch${FB#*:}_${FB%:*}$inv s_ties.tsv "$CS" "$CS" per-batch ${FB%:*} ${FB#*:} - $inv --expect-exact
    done
    fcase e.c.ties.per-batch25_0.28$inv s_ties.tsv "$CS" "$CS" per-batch 0.28 25 - $inv --expect-fp-edge
    fcase e.c.ties.per-batch4_0.5$inv s_ties.tsv "$CS" "$CS" per-batch 0.5 4 - $inv
    fcase e.c.ties.cdf0.5$inv s_ties.tsv "$CS" "$CS" cdf 0.5 - - $inv
    fcase e.c.ties.cdf0.6.seed7$inv s_ties.tsv "$CS" "$CS" cdf 0.6 - 7 $inv
    fcase e.c.ties.cdf0.25.seed123456789$inv s_ties.tsv "$CS" "$CS" cdf 0.25 - 123456789 $inv
    fcase e.c.ties.cdf1$inv s_ties.tsv "$CS" "$CS" cdf 1 - - $inv
    fcase e.c.ties.random0.5$inv s_ties.tsv "$CS" "$CS" random 0.5 - - $inv --expect-half
    fcase e.c.ties.random0.3.seed9$inv s_ties.tsv "$CS" "$CS" random 0.3 - 9 $inv
    fcase e.c.ties.random0.7.seedmax$inv s_ties.tsv "$CS" "$CS" random 0.7 - 9223372036854775807 $inv
    fcase e.c.const.keep0.5$inv s_const.tsv "$CS" "$CS" keep 0.5 - - $inv
    DOCS=mean fcase e.c.ties.doc-mean.keep0.5$inv s_ties.tsv "$CS" "$CS" keep 0.5 - - $inv
    DOCS=first fcase e.c.ties.doc-first.min-score0.5$inv s_ties.tsv "$CS" "$CS" min-score 0.5 - - $inv
    DOCS=min fcase e.c.rater.doc-min.keep0.3$inv s_rater.tsv "$CS" "$CS" keep 0.3 - - $inv
    DOCS=max fcase e.c.const.doc-max.keep0.5$inv s_const.tsv "$CS" "$CS" keep 0.5 - - $inv
    for S in 0.5 0.49999999999999994 3 -1.25 0.75; do   # tied levels (and just below one)
        fcase e.c.ties.min-score$S$inv s_ties.tsv "$CS" "$CS" min-score $S - - $inv
        fcase e.c.const.min-score$S$inv s_const.tsv "$CS" "$CS" min-score $S - - $inv
    done
    fcase e.c.const.keep-middle0.5$inv s_const.tsv "$CS" "$CS" keep-middle 0.5 - - $inv
    fcase e.c.const.per-batch4_0.5$inv s_const.tsv "$CS" "$CS" per-batch 0.5 4 - $inv
    fcase e.c.const.cdf0.6$inv s_const.tsv "$CS" "$CS" cdf 0.6 - - $inv
    fcase e.c.rater.keep0.3$inv s_rater.tsv "$CS" "$CS" keep 0.3 - - $inv
    fcase e.c.rater.keep-middle0.5$inv s_rater.tsv "$CS" "$CS" keep-middle 0.5 - - $inv
    fcase e.c.rater.per-batch5_0.6$inv s_rater.tsv "$CS" "$CS" per-batch 0.6 5 - $inv
    fcase e.c.rater.per-batch25_0.28$inv s_rater.tsv "$CS" "$CS" per-batch 0.28 25 - $inv --expect-fp-edge
    fcase e.c.rater.cdf0.6.seed7$inv s_rater.tsv "$CS" "$CS" cdf 0.6 - 7 $inv
done
# round(0.01·35) = 0: refused with one line, no shard written
rm -rf k0
"$B/dr-filter" --scores s_ties.tsv --keep 0.01 --config "$CFG" -o k0 $CS >/dev/null 2>k0.err; rc=$?
if [ $rc != 0 ] && [ "$(wc -l < k0.err)" = 1 ] && grep -q "no example kept" k0.err && [ -z "$(ls k0 2>/dev/null)" ]
then echo "CHECK e.c.keep_none_refused PASS $(cat k0.err)"; else fail e.c.keep_none_refused "rc=$rc $(head -c 200 k0.err)"; fi
# --random does not read the scores: --invert gives the same bytes
rm -rf kr1 kr2
"$B/dr-filter" --scores s_ties.tsv --random 0.4 --config "$CFG" -o kr1 $CS >/dev/null 2>&1
"$B/dr-filter" --scores s_ties.tsv --random 0.4 --invert --config "$CFG" -o kr2 $CS >/dev/null 2>&1
if [ -n "$(ls kr1 2>/dev/null)" ] && diff -r kr1 kr2 >/dev/null; then echo "CHECK e.c.random_invert_same PASS"
else fail e.c.random_invert_same "outputs differ or missing"; fi

# ------------------------------------------------------------------ f. safetensors
run train "$B/dr-train" --config "$CFG" --steps 2 -o lm.safetensors $M >/dev/null
V=257
SH1=$(ls tsplit/train_a/*.drs | head -1)
ref safetensors --name f.lm --kind lm --config "$BASE" --config "$CFG" --vocab $V --shard "$SH1" lm.safetensors
ref safetensors --name f.rater --kind rater --config "$BASE" --config "$CFG" --set meta.rounds=1 --vocab $V --shard "$SH1" r.safetensors
ref safetensors --name f.rater_ema --kind rater --config "$BASE" --config "$CFG" --set meta.rounds=1 --vocab $V --shard "$SH1" r.ema.safetensors
ref state --name f.lm_state --model lm.safetensors lm.safetensors.state
run train2 "$B/dr-train" --config "$CFG" --set lm.n_layer=1 --set lm.d_ff=48 --set data.seq_len=16 --steps 1 -o lm2.safetensors $M >/dev/null &&
    ref safetensors --name f.lm_dff48_seq16 --kind lm --config "$BASE" --config "$CFG" --set lm.n_layer=1 --set lm.d_ff=48 --set data.seq_len=16 --vocab $V lm2.safetensors
run meta16 "$B/dr-meta" --config "$CFG" --set meta.rounds=1 --set data.seq_len_rater=16 -o r16.safetensors $M &&
    ref safetensors --name f.rater_seq_len_rater16 --kind rater --config "$BASE" --config "$CFG" --set data.seq_len_rater=16 --vocab $V r16.safetensors
run grad "$B/dr-meta" grad --config "$CFG" --lm-init lm.safetensors --rater-init r.safetensors \
    --train tsplit/train_a --val tsplit/val -o grad.safetensors >/dev/null &&
    ref safetensors --name f.grad --kind grad --config "$BASE" --config "$CFG" --vocab $V grad.safetensors

# ------------------------------------------------------------------ g. corruption
ref corrupt --name g.gpt2 --tool "$B/dr-cat" --work bad1 t_gpt2/j/shard-00000.drs
ref corrupt --name g.multiblock --tool "$B/dr-cat" --work bad2 big/shard-00000.drs

# ------------------------------------------------------------------ h. refusals of mixed / bad inputs
refuses() {  # refuses NAME FILE_TO_NAME cmd...: non-zero exit, one stderr line naming FILE
    local name=$1 file=$2; shift 2
    "$@" >/dev/null 2>"$W/ref.err"; local rc=$?
    local n; n=$(wc -l < "$W/ref.err")
    if [ $rc != 0 ] && [ "$n" = 1 ] && grep -qF -- "$file" "$W/ref.err"; then
        echo "CHECK $name PASS $(head -c 160 "$W/ref.err")"
    else fail "$name" "rc=$rc, $n stderr lines: $(head -c 300 "$W/ref.err" | tr '\n' '|')"; fi
}
refuses h.split_mixed_fingerprints t_gpt2 "$B/dr-split" -o mixed t_byte/j t_gpt2/j
refuses h.cat_mixed_fingerprints t_gpt2 "$B/dr-cat" --ids t_byte/j t_gpt2/j
# scores.tsv readers (§4, docs/deploy.md): dr-filter refuses bad files naming file and line
if [ -s scores.tsv ]; then
    tail -n +2 scores.tsv > s_nohdr.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$2="nan"} {print}' scores.tsv > s_nan.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$2="inf"} {print}' scores.tsv > s_inf.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$2="1.5x"} {print}' scores.tsv > s_junk.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$1="zz"$1} {print}' scores.tsv > s_badid.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$1="0123456789abcdef:0"} {print}' scores.tsv > s_unknown.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} {print} NR==5{print}' scores.tsv > s_dup.tsv
    awk -F'\t' 'BEGIN{OFS="\t"} NR==5{$4=$4+1} {print}' scores.tsv > s_ntok.tsv
    head -n 20 scores.tsv > s_short.tsv
    for c in nohdr nan inf junk badid unknown dup ntok short; do
        refuses h.filter_scores_$c s_$c.tsv "$B/dr-filter" --scores s_$c.tsv --keep 0.5 --config "$CFG" -o kept_$c --split train_b $M
        [ -e kept_$c ] && [ -n "$(ls kept_$c 2>/dev/null)" ] && fail h.filter_scores_$c.nothing_written "$(ls kept_$c)"
    done
    # lines in another order (sort) are accepted and give the same output
    { head -n 1 scores.tsv; tail -n +2 scores.tsv | sort -r; } > s_sorted.tsv
    rm -rf kA kB
    "$B/dr-filter" --scores scores.tsv --keep 0.6 --config "$CFG" -o kA --split train_b $M >/dev/null 2>&1
    "$B/dr-filter" --scores s_sorted.tsv --keep 0.6 --config "$CFG" -o kB --split train_b $M >/dev/null 2>&1
    if [ -n "$(ls kA)" ] && diff -r kA kB >/dev/null; then echo "CHECK h.filter_scores_any_order PASS"
    else fail h.filter_scores_any_order "outputs differ or missing"; fi
fi
# manifests (§3): CRLF, blank lines, relative to the manifest's directory; on stdin to the cwd
mkdir -p mdir/sub
{ printf '# made by hand\r\n\r\n'; grep -v '^#' tsplit/manifest.tsv | sed 's|\t|\t../../tsplit/|; s|$|\r|'; printf '\n'; } > mdir/sub/m.tsv
"$B/dr-cat" --ids --split val $M > m_ref.txt 2>/dev/null
"$B/dr-cat" --ids --split val mdir/sub/m.tsv > m_crlf.txt 2>m_crlf.err
[ -s m_ref.txt ] && cmp -s m_ref.txt m_crlf.txt && echo "CHECK h.manifest_crlf_relative PASS" ||
    fail h.manifest_crlf_relative "$(head -c 200 m_crlf.err)"
grep -v '^#' tsplit/manifest.tsv | sed 's|\t|\ttsplit/|' | "$B/dr-cat" --ids --split val - > m_stdin.txt 2>m_stdin.err
[ -s m_ref.txt ] && cmp -s m_ref.txt m_stdin.txt && echo "CHECK h.manifest_stdin_cwd PASS" ||
    fail h.manifest_stdin_cwd "$(head -c 200 m_stdin.err)"

echo "# formats.sh: $fails failing step(s)"
[ $fails = 0 ] || exit 1
exit 0
