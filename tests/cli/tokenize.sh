#!/usr/bin/env bash
# tokenize.sh — dr-tokenize end to end: JSON lines (file and stdin), --lines, files and
# directories; shard contents read back (ids = xxh64 of the raw text, sources, tokens
# decoding to the text); same bytes for 1 and 2 threads; --shard-size; invalid UTF-8
# (replace / keep / error); --train-bpe then --tokenizer bpe; every refusal (malformed
# JSON, missing field, unreadable file, empty input, missing or corrupt vocabulary,
# bad options) with one line naming the input and no file left behind.
source "$(dirname "$0")/helpers.bash" dr-tokenize
T="$BIN/dr-tokenize"

# A reader for the checks: per document "id<TAB>source<TAB>n_tokens<TAB>hex of decoded text".
cat >"$TMP/drsdump.c" <<'EOF'
#include "shard.h"
#include "tokenizer.h"
#include "check.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++) {
        DrsReader *r = drs_open(argv[a]);
        if (!r) dr_die("%s", dr_lasterr());
        Tokenizer *t = tokenizer_from_spec(drs_tokenizer_spec(r));
        if (!t) dr_die("%s", dr_lasterr());
        if (tokenizer_fingerprint(t) != drs_fingerprint(r)) dr_die("%s: fingerprint differs", argv[a]);
        for (uint64_t i = 0; i < drs_num_docs(r); i++) {
            const DrsDoc *d = drs_doc(r, i);
            uint32_t *ids = malloc((d->length + 1) * sizeof *ids);
            if (drs_read_doc(r, i, ids) != 0) dr_die("%s", dr_lasterr());
            ByteBuf text = {0};
            if (tokenizer_decode(t, ids, d->length, &text) != 0) dr_die("%s", dr_lasterr());
            printf("%016llx\t%s\t%u\t", (unsigned long long)d->id, drs_doc_source(r, i), d->length);
            for (size_t k = 0; k < text.n; k++) printf("%02x", (unsigned char)text.bytes[k]);
            printf("\n");
            bytebuf_free(&text);
            free(ids);
        }
        tokenizer_free(t);
        drs_close(r);
    }
    return 0;
}
EOF
"${CC:-cc}" -std=c11 -D_GNU_SOURCE -O1 -Ilib "$TMP/drsdump.c" "$LIBDR" -lzstd -lxxhash -lyaml -lopenblas -lm \
   -lpthread -fopenmp -o "$TMP/drsdump" || { echo "cannot build drsdump" >&2; exit 1; }
DUMP="env DR_DATA=${DR_DATA:-$PWD/data} $TMP/drsdump"
hex() { od -An -v -tx1 | tr -d ' \n'; }

have_gpt2=1
[ -f data/gpt2/encoder.json ] || [ -n "${DR_DATA:-}" ] || have_gpt2=0

# ---- help, version, options ------------------------------------------------------------
check "--help shows usage and an example" bash -c "'$T' --help | grep -q '^usage: dr-tokenize' && '$T' --help | grep -q '^examples:'"
check "--version" bash -c "'$T' --version | grep -q '^dr-tokenize '"
expect_error "unknown option" "unknown option --frobnicate" "$T" --frobnicate -o "$TMP/x"
expect_error "no -o" "-o DIR is required" "$T" --tokenizer byte
expect_error "bad --invalid-utf8" "--invalid-utf8: 'maybe'" "$T" --invalid-utf8 maybe -o "$TMP/x"
expect_error "unknown tokenizer" 'unknown tokenizer "nope"' "$T" --tokenizer nope -o "$TMP/x"

# ---- JSON lines, byte tokenizer: shards read back ----------------------------------------
printf '%s\n' '{"text": "Hello, world!", "source": "greet"}' \
    '{"text": "caf\u00e9 \ud83d\ude00 na\u00efve", "source": "uni"}' \
    '' \
    '{"text": "", "source": "greet"}' \
    '{"id": 7, "text": "no source here"}' >"$TMP/a.jsonl"
check "jsonl to shards" bash -c "'$T' --tokenizer byte --source-field source -o '$TMP/s1' '$TMP/a.jsonl' >'$TMP/paths' 2>'$TMP/err'"
check "prints the shard path" grep -qx "$TMP/s1/shard-00000.drs" "$TMP/paths"
check "summary counts documents and empties" grep -q "3 documents, 44 tokens (byte)" "$TMP/err"
check "summary has bytes/token, MB/s, invalid UTF-8" bash -c "grep -q 'bytes/token' '$TMP/err' && grep -q 'MB/s' '$TMP/err' && grep -q '0 with invalid UTF-8' '$TMP/err' && grep -q '1 empty' '$TMP/err'"
$DUMP "$TMP/s1/shard-00000.drs" >"$TMP/dump" 2>&1
check "3 documents stored" test "$(wc -l <"$TMP/dump")" -eq 3
check "sources: field, field, input name" test "$(cut -f2 "$TMP/dump" | tr '\n' ' ')" = "greet uni a "
check "tokens decode to the text" test "$(sed -n 2p "$TMP/dump" | cut -f4)" = "$(printf 'caf\xc3\xa9 \xf0\x9f\x98\x80 na\xc3\xafve' | hex)"
# doc id = xxh64 of the raw text (seed 0), written out here for inputs shorter than 32 bytes
xxh64_short() { python3 -c '
import sys
data = sys.stdin.buffer.read()
P1, P2, P3, P4, P5 = 11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579, 2870177450012600261
M = (1 << 64) - 1
rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
h, i = (P5 + len(data)) & M, 0   # xxh64, inputs shorter than 32 bytes
while i + 8 <= len(data):
    k = int.from_bytes(data[i:i + 8], "little"); k = rotl((k * P2) & M, 31) * P1 & M
    h = (rotl(h ^ k, 27) * P1 + P4) & M; i += 8
while i + 4 <= len(data):
    h = (rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M; i += 4
while i < len(data):
    h = rotl(h ^ (data[i] * P5 & M), 11) * P1 & M; i += 1
h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
print("%016x" % h)'; }
check "doc id is xxh64 of the text" test "$(head -n 1 "$TMP/dump" | cut -f1)" = "$(printf 'Hello, world!' | xxh64_short)"

# stdin, --source, same tokens
check "stdin" bash -c "'$T' --tokenizer byte --source web -o '$TMP/s2' <'$TMP/a.jsonl' >/dev/null 2>&1"
check "--source names every document" test "$($DUMP "$TMP/s2/shard-00000.drs" | cut -f2 | sort -u)" = "web"

# ---- determinism across threads; --shard-size ---------------------------------------
python3 - "$TMP/big.jsonl" <<'EOF'
import json, random, sys
rng = random.Random(5)
words = "the a whale sea ship Ahab captain's don't it's 1851 caf\u00e9 \u0416\u0438\u0437\u043d\u044c \u4e2d\u6587 !! ... --".split()
syl = "ka ro mi ten sha lu vor ne qui ble ith om".split()
words += ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(400)]
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 300)))
        f.write(json.dumps({"text": text, "source": "s%d" % (i % 3)}) + "\n")
EOF
check "1 thread" bash -c "'$T' --tokenizer byte --threads 1 --shard-size 0.25 -o '$TMP/t1' '$TMP/big.jsonl' >'$TMP/t1.paths' 2>/dev/null"
check "2 threads" bash -c "'$T' --tokenizer byte --threads 2 --shard-size 0.25 -o '$TMP/t2' '$TMP/big.jsonl' >'$TMP/t2.paths' 2>/dev/null"
check "several shards" test "$(wc -l <"$TMP/t1.paths")" -ge 3
check "shards of at most --shard-size" bash -c "for f in \$(cat '$TMP/t1.paths'); do [ \$(stat -c %s \$f) -le 262144 ] || exit 1; done"
check "same bytes for 1 and 2 threads" bash -c "cd '$TMP' && for f in t1/*.drs; do cmp -s \$f t2/\${f#t1/} || exit 1; done && [ \$(ls t1 | wc -l) = \$(ls t2 | wc -l) ]"
check "all 3000 documents, in order" test "$($DUMP $(cat "$TMP/t1.paths") | wc -l)" -eq 3000
# --shard-size counts uncompressed token bytes (docs/formats.md §1), also when a shard has
# several 1 MiB blocks: 6 MB of compressible text (12 MiB of 2-byte tokens) in 2 MiB shards
python3 -c 'import json
for i in range(600): print(json.dumps({"text": ("line %d of a very repetitive text " % i) * 300}))' >"$TMP/rep.jsonl"
check "--shard-size 2 on compressible text" bash -c "'$T' --tokenizer byte --shard-size 2 -o '$TMP/rep' '$TMP/rep.jsonl' >'$TMP/rep.paths' 2>/dev/null"
check "... shards of at most 2 MiB of tokens, each but the last over 1.9 MiB" python3 -c '
import struct, sys
paths = open(sys.argv[1]).read().split()
sizes = []
for p in paths:
    h = open(p, "rb").read(48)
    width, tokens = struct.unpack("<I", h[12:16])[0], struct.unpack("<Q", h[40:48])[0]
    sizes.append(tokens * width)
ok = len(paths) >= 6 and all(s <= 2 << 20 for s in sizes) and all(s > 1.9 * 2**20 for s in sizes[:-1])
sys.exit(not ok)' "$TMP/rep.paths"
check "stale shards of an earlier run are removed" bash -c "'$T' --tokenizer byte -o '$TMP/t1' '$TMP/big.jsonl' >/dev/null 2>&1 && [ \$(ls '$TMP/t1' | wc -l) -eq 1 ]"

# ---- plain text: --lines, whole files, directories -----------------------------------
printf 'first line\nsecond line\r\n\nthird\n' >"$TMP/lines.txt"
check "--lines" bash -c "'$T' --tokenizer byte --lines -o '$TMP/l' '$TMP/lines.txt' >/dev/null 2>&1"
check "--lines: 3 documents, CR stripped" test "$($DUMP "$TMP/l/shard-00000.drs" | cut -f3 | tr '\n' ' ')" = "10 11 5 "
printf '\n\n' >"$TMP/blank.txt"
expect_error "--lines, only empty lines: counted as skipped" "blank.txt: no documents \\(2 empty ones skipped\\)" \
    "$T" --tokenizer byte --lines -o "$TMP/lb" "$TMP/blank.txt"
printf 'a\r\nb\r' >"$TMP/cr_eof.txt"   # the last line has no \n: its \r is text, not a line end
check "--lines: a CR at the end of the file without LF" bash -c "'$T' --tokenizer byte --lines -o '$TMP/lcr' '$TMP/cr_eof.txt' >/dev/null 2>&1"
check "--lines: that CR is kept, the CR of CRLF is not" \
    test "$($DUMP "$TMP/lcr/shard-00000.drs" | cut -f4 | tr '\n' ' ')" = "$(printf a | hex) $(printf 'b\r' | hex) "
mkdir -p "$TMP/dir/sub"
printf 'doc one\n' >"$TMP/dir/b.txt"; printf 'doc two' >"$TMP/dir/sub/a.txt"; printf 'hidden' >"$TMP/dir/.hidden"
check "directory of files" bash -c "'$T' --tokenizer byte -o '$TMP/d' '$TMP/dir' >/dev/null 2>&1"
check "files sorted by path, dot-files skipped, source = directory name" \
    test "$($DUMP "$TMP/d/shard-00000.drs" | cut -f2,3 | tr '\t\n' ': ')" = "dir:8 dir:7 "
check "the directory '.': its own name is the source" bash -c "cd '$TMP/dir' && '$(realpath "$T")' --tokenizer byte -o '$TMP/dot' . >/dev/null 2>&1"
check "the directory '.': source = directory name" \
    test "$($DUMP "$TMP/dot/shard-00000.drs" | cut -f2 | tr '\n' ' ')" = "dir dir "

# ---- invalid UTF-8 -------------------------------------------------------------------
printf 'caf\xe9 au lait\nok\n\xff\xfe bad\n' >"$TMP/latin1.txt"
check "replace" bash -c "'$T' --tokenizer byte --lines -o '$TMP/r' '$TMP/latin1.txt' >/dev/null 2>'$TMP/err'"
check "replace: 2 documents counted" grep -q "2 with invalid UTF-8 (replaced by U+FFFD)" "$TMP/err"
check "replace: U+FFFD in the tokens" test "$($DUMP "$TMP/r/shard-00000.drs" | head -n 1 | cut -f4)" = "$(printf 'caf\xef\xbf\xbd au lait' | hex)"
check "keep" bash -c "'$T' --tokenizer byte --lines --invalid-utf8 keep -o '$TMP/k' '$TMP/latin1.txt' >/dev/null 2>&1"
check "keep: the bytes come back exactly" test "$($DUMP "$TMP/k/shard-00000.drs" | cut -f4 | tr '\n' ' ')" = \
    "$(printf 'caf\xe9 au lait' | hex) $(printf 'ok' | hex) $(printf '\xff\xfe bad' | hex) "
expect_error "error policy names file, line and offset" "latin1.txt:1: invalid UTF-8 at byte offset 3" \
    "$T" --tokenizer byte --lines --invalid-utf8 error -o "$TMP/e" "$TMP/latin1.txt"
check "error policy leaves no shard" test ! -e "$TMP/e/shard-00000.drs"
# a \u escape of an unpaired surrogate: its 3 bytes (ED A0 80), invalid UTF-8 for the policy;
# a number beyond a double (not used) is read as Python reads it
printf '{"text":"a\\ud800b","n":1e400}\n{"text":"ok","meta":"\\udc00"}\n' >"$TMP/lone.jsonl"
check "lone surrogate escape, replace" bash -c "'$T' --tokenizer byte -o '$TMP/ls' '$TMP/lone.jsonl' >/dev/null 2>'$TMP/err'"
check "lone surrogate escape: 1 document counted invalid" grep -q "1 with invalid UTF-8 (replaced by U+FFFD)" "$TMP/err"
check "lone surrogate escape: three U+FFFD, as Python's decode(errors='replace')" \
    test "$($DUMP "$TMP/ls/shard-00000.drs" | head -n 1 | cut -f4)" = "$(printf 'a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdb' | hex)"
check "lone surrogate escape, keep" bash -c "'$T' --tokenizer byte --invalid-utf8 keep -o '$TMP/lk' '$TMP/lone.jsonl' >/dev/null 2>&1"
check "lone surrogate escape, keep: ED A0 80 (surrogatepass) and its id" \
    test "$($DUMP "$TMP/lk/shard-00000.drs" | head -n 1 | cut -f1,4)" = "$(printf 'a\xed\xa0\x80b' | xxh64_short)	$(printf 'a\xed\xa0\x80b' | hex)"
expect_error "lone surrogate escape, error: says where the bytes came from" \
    'lone.jsonl:1: invalid UTF-8 at byte offset 1 of the text field \(a \\u escape of an unpaired surrogate' \
    "$T" --tokenizer byte --invalid-utf8 error -o "$TMP/le" "$TMP/lone.jsonl"
printf '{\n  "text": "a"\n}\n' >"$TMP/pretty.json"
expect_error "a pretty-printed .json file: the message says why" \
    "pretty.json:1: malformed JSON: offset 1: expected '\"' starting an object key \\(JSON-lines input holds one whole JSON object per line" \
    "$T" --tokenizer byte -o "$TMP/pp" "$TMP/pretty.json"
printf '[{"text": "a"}]\n' >"$TMP/arr.json"
expect_error "an array-form .json file" "arr.json:1: expected a JSON object, found an array \\(JSON-lines" \
    "$T" --tokenizer byte -o "$TMP/pa" "$TMP/arr.json"

# ---- refusals ---------------------------------------------------------------------------
printf '{"text": "fine"}\n{"text": "broken\n' >"$TMP/bad.jsonl"
expect_error "malformed JSON" "bad.jsonl:2: malformed JSON" "$T" --tokenizer byte -o "$TMP/e" "$TMP/bad.jsonl"
printf '{"text": "fine"}\n{"body": "x"}\n' >"$TMP/nofield.jsonl"
expect_error "missing field" 'nofield.jsonl:2: no field "text"' "$T" --tokenizer byte -o "$TMP/e" "$TMP/nofield.jsonl"
printf '{"text": 42}\n' >"$TMP/num.jsonl"
expect_error "field not a string" 'num.jsonl:1: field "text" is not a string' "$T" --tokenizer byte -o "$TMP/e" "$TMP/num.jsonl"
expect_error "unreadable file" "nope.jsonl: cannot open" "$T" --tokenizer byte -o "$TMP/e" "$TMP/nope.jsonl"
# --source-field: a line without the key (or with "") takes the default source; any other
# non-string is refused as the text field is, naming file, line and what was found
for c in '5|a number' 'null|null' '[1]|an array' '{"a": 1}|an object' 'true|true'; do
    printf '{"text": "ok", "source": "s"}\n{"text": "x", "source": %s}\n' "${c%%|*}" >"$TMP/src.jsonl"
    expect_error "source field ${c%%|*}" "src\.jsonl:2: source field \"source\" is not a string \(found ${c#*|}\)" \
        "$T" --tokenizer byte --source-field source -o "$TMP/e" "$TMP/src.jsonl"
done
printf '{"text": "x", "source": ""}\n{"text": "y"}\n' >"$TMP/srcfall.jsonl"
check "source field \"\" or missing: the default source" bash -c "'$T' --tokenizer byte --source-field source --source dflt -o '$TMP/sf' '$TMP/srcfall.jsonl' >/dev/null 2>&1 && [ \"\$($DUMP '$TMP/sf/shard-00000.drs' | cut -f2 | tr '\n' ' ')\" = 'dflt dflt ' ]"
# dotted names reach into objects (HF, Dolma, RedPajama put the source under "meta"); a
# key holding the dots wins; the summary counts the documents that named their source, and
# warns when none did (a field name mistyped)
printf '{"meta": {"text": "one", "src": "web"}}\n{"meta": {"text": "two", "src": "books"}, "meta.text": "TWO"}\n{"meta": {"text": "three"}}\n' >"$TMP/nested.jsonl"
check "nested --field / --source-field" bash -c "'$T' --tokenizer byte --field meta.text --source-field meta.src --source dflt -o '$TMP/nest' '$TMP/nested.jsonl' >/dev/null 2>'$TMP/nest.err' && [ \"\$($DUMP '$TMP/nest/shard-00000.drs' | cut -f2 | tr '\n' ' ')\" = 'web books dflt ' ]"
check "... the literal key \"meta.text\" first" [ "$("$BIN/dr-cat" "$TMP/nest" | tr '\n' ' ')" = "one TWO three " ]
check "... the summary counts the sourced documents" grep -q ', 2 with a source field "meta.src"; 1 shard in' "$TMP/nest.err"
check "... no warning" [ "$(grep -c warning "$TMP/nest.err")" = 0 ]
# source names hold no TAB, newline or CR, and valid UTF-8 only: each byte of an invalid
# sequence becomes '_' (they went into scores.tsv and dr-cat --list raw)
printf '{"text": "x", "source": "a\\tb\\udc80c"}\n{"text": "y", "source": "ok\xff\xfe"}\n{"text": "z", "source": "caf\xc3\xa9"}\n' > "$TMP/badsrc.jsonl"
printf 'a_b___c\nok__\ncaf\303\251\n' > "$TMP/badsrc.want"
check "source names: TAB, invalid UTF-8 as '_', valid UTF-8 kept" bash -c "'$T' --tokenizer byte --source-field source -o '$TMP/bs' '$TMP/badsrc.jsonl' >/dev/null 2>&1 && $DUMP '$TMP/bs/shard-00000.drs' | cut -f2 | cmp -s - '$TMP/badsrc.want'"
check "a source field no document has: a warning" bash -c "'$T' --tokenizer byte --field meta.text --source-field meta.source -o '$TMP/nest2' '$TMP/nested.jsonl' >/dev/null 2>'$TMP/nest2.err' && grep -q '^dr-tokenize: warning: no document has a source field \"meta.source\"' '$TMP/nest2.err'"
expect_error "a nested field missing" 'nested\.jsonl:1: no field "meta\.body"' "$T" --tokenizer byte --field meta.body -o "$TMP/e" "$TMP/nested.jsonl"
expect_error "text field not a string says what it found" 'num.jsonl:1: field "text" is not a string \(found a number\)' \
    "$T" --tokenizer byte -o "$TMP/e" "$TMP/num.jsonl"
# --lines and --format both choose the input format: differing choices are refused
expect_error "--lines with --format jsonl" "--format jsonl conflicts with --lines" "$T" --tokenizer byte --lines --format jsonl -o "$TMP/e" "$TMP/lines.txt"
expect_error "--format jsonl with --lines" "--lines conflicts with --format jsonl" "$T" --tokenizer byte --format jsonl --lines -o "$TMP/e" "$TMP/lines.txt"
expect_error "--format twice, differing" "--format text conflicts with --format lines" "$T" --tokenizer byte --format lines --format text -o "$TMP/e" "$TMP/lines.txt"
check "--lines with --format lines agree" bash -c "'$T' --tokenizer byte --lines --format lines -o '$TMP/ll' '$TMP/lines.txt' >/dev/null 2>&1"
# a file given twice would tokenize its documents twice (as dr-split refuses a shard twice)
mkdir -p "$TMP/twice" && cp "$TMP/a.jsonl" "$TMP/twice/" && ln -sf a.jsonl "$TMP/twice/link.jsonl"
expect_error "a file given twice" "a\.jsonl is given twice" "$T" --tokenizer byte -o "$TMP/e" "$TMP/a.jsonl" "$TMP/a.jsonl"
expect_error "a directory and a file in it" "twice/a\.jsonl is given twice" "$T" --tokenizer byte -o "$TMP/e" "$TMP/twice/a.jsonl" "$TMP/twice"
expect_error "a file and a link to it" "link\.jsonl is given twice \(also as .*a\.jsonl\)" "$T" --tokenizer byte -o "$TMP/e" "$TMP/twice/a.jsonl" "$TMP/twice/link.jsonl"
# stdin redirected from a file that is named too: before, its documents were counted twice
expect_error "a file named and given on stdin" "a\.jsonl is given twice \(also as stdin\)" \
    bash -c "exec '$T' --tokenizer byte -o '$TMP/e' - '$TMP/a.jsonl' <'$TMP/a.jsonl'"
check "'-' twice reads stdin once" bash -c "printf '{\"text\": \"x\"}\n' | '$T' --tokenizer byte -o '$TMP/e2' - - >/dev/null 2>&1"
# stdin redirected from a regular file is read from where it stands, once: it was rewound
# to the file's start, so '- -' gave every document twice and the lines a caller had read
# first (`{ head -n 1 >/dev/null; dr-tokenize -; } < f`, as `cat` after it) came back
printf '{"text": "one"}\n{"text": "two"}\n{"text": "three"}\n' >"$TMP/three.jsonl"
check "'-' twice, stdin a regular file: read once" bash -c "'$T' --tokenizer byte -o '$TMP/e3' - - <'$TMP/three.jsonl' >/dev/null 2>&1 &&
    [ \"\$($DUMP '$TMP/e3/shard-00000.drs' | wc -l)\" = 3 ]"
check "stdin a regular file read partly before: the rest only" bash -c "{ head -n 1 >/dev/null; '$T' --tokenizer byte -o '$TMP/e4' - >/dev/null 2>&1; } <'$TMP/three.jsonl' &&
    [ \"\$($DUMP '$TMP/e4/shard-00000.drs' | cut -f4)\" = \"\$(printf '74776f\n7468726565')\" ]"
rm -rf "$TMP/e3" "$TMP/e4"
# a token shard named as an input: it was tokenized as one binary "text" document, and
# into its own directory the output replaced it
mkdir -p "$TMP/shin" && "$T" --tokenizer byte -o "$TMP/shin" "$TMP/three.jsonl" >/dev/null 2>&1
cp "$TMP/shin/shard-00000.drs" "$TMP/shin.copy"
expect_error "a shard named as an input" "shin/shard-00000\.drs: a token shard \(\*\.drs\), not text" \
    "$T" --tokenizer byte -o "$TMP/e" "$TMP/shin/shard-00000.drs"
expect_error "a shard named as an input, into its own directory" "shin/shard-00000\.drs: a token shard \(\*\.drs\), not text" \
    "$T" --tokenizer byte -o "$TMP/shin" "$TMP/three.jsonl" "$TMP/shin/shard-00000.drs"
check "... the shard is as it was" cmp -s "$TMP/shin/shard-00000.drs" "$TMP/shin.copy"
: >"$TMP/empty.jsonl"
expect_error "empty input" "empty.jsonl: no documents" "$T" --tokenizer byte -o "$TMP/e" "$TMP/empty.jsonl"
expect_error "empty stdin" "stdin: no documents" bash -c "printf '\n\n' | '$T' --tokenizer byte -o '$TMP/e'"
# several inputs without a document: named (it said "the inputs"), three and a count
mkdir -p "$TMP/empties" && for f in a b c d; do : >"$TMP/empties/$f.txt"; done
expect_error "several empty inputs named" "^dr-tokenize: .*/empty.jsonl, .*/empties/a.txt, .*/empties/b.txt and 2 more: no documents \(4 empty ones skipped\)$" \
    "$T" --tokenizer byte -o "$TMP/e" "$TMP/empty.jsonl" "$TMP/empties"
check "failed runs leave no shard" test -z "$(ls "$TMP/e" 2>/dev/null)"
# an error after the first shard is complete: the finished shards are removed too
cp "$TMP/big.jsonl" "$TMP/late.jsonl"; echo '{"text": oops}' >>"$TMP/late.jsonl"
expect_error "late error" "late.jsonl:3001: malformed JSON" "$T" --tokenizer byte --shard-size 0.1 -o "$TMP/late" "$TMP/late.jsonl"
check "late error leaves no shard" test -z "$(ls "$TMP/late" 2>/dev/null)"
# an -o directory the failed run created (parents included) is removed; one that was
# there before stays, empty or not
expect_error "late error, new -o" "late.jsonl:3001: malformed JSON" "$T" --tokenizer byte --shard-size 0.1 -o "$TMP/new1/a/b" "$TMP/late.jsonl"
check "... the directories it created are removed" test ! -e "$TMP/new1"
mkdir -p "$TMP/old1"
expect_error "late error, existing empty -o" "late.jsonl:3001: malformed JSON" "$T" --tokenizer byte --shard-size 0.1 -o "$TMP/old1" "$TMP/late.jsonl"
check "... an empty -o that existed stays" test -d "$TMP/old1"
expect_error "late error, -o under an existing directory" "late.jsonl:3001: malformed JSON" "$T" --tokenizer byte --shard-size 0.1 -o "$TMP/old1/x/y/" "$TMP/late.jsonl"
check "... only what the run created is removed" bash -c "[ -d '$TMP/old1' ] && [ ! -e '$TMP/old1/x' ]"
mkdir -p "$TMP/novocab"
expect_error "missing vocabulary" "novocab: encoder.json is missing" "$T" --tokenizer gpt2 --vocab-dir "$TMP/novocab" -o "$TMP/e" "$TMP/a.jsonl"
# a directory where a vocabulary file should be: said so (it was reported "missing")
mkdir -p "$TMP/dirvocab/vocab.bpe" && printf '{}' > "$TMP/dirvocab/encoder.json"
expect_error "vocab.bpe a directory" "dirvocab: vocab.bpe is not a regular file" "$T" --tokenizer gpt2 --vocab-dir "$TMP/dirvocab" -o "$TMP/e" "$TMP/a.jsonl"
expect_error "bpe without --vocab-dir" "needs a vocabulary directory" "$T" --tokenizer bpe -o "$TMP/e" "$TMP/a.jsonl"

# ---- gpt2 ------------------------------------------------------------------------------
if [ $have_gpt2 = 1 ]; then
    check "gpt2 (default tokenizer, default vocabulary dir)" bash -c "'$T' --source-field source -o '$TMP/g' '$TMP/a.jsonl' >/dev/null 2>'$TMP/err'"
    check "gpt2: Hello, world! = 4 tokens" test "$($DUMP "$TMP/g/shard-00000.drs" | head -n 1 | cut -f3)" = 4
    check "gpt2: decodes back" test "$($DUMP "$TMP/g/shard-00000.drs" | sed -n 2p | cut -f4)" = "$(printf 'caf\xc3\xa9 \xf0\x9f\x98\x80 na\xc3\xafve' | hex)"
    mkdir -p "$TMP/corrupt"
    head -c 1000 "${DR_DATA:-data}/gpt2/encoder.json" >"$TMP/corrupt/encoder.json"
    cp "${DR_DATA:-data}/gpt2/vocab.bpe" "$TMP/corrupt/"
    expect_error "corrupt encoder.json" "corrupt/encoder.json: not valid JSON" "$T" --vocab-dir "$TMP/corrupt" -o "$TMP/e" "$TMP/a.jsonl"
else
    echo "tokenize.sh: data/gpt2 missing (make vocab): gpt2 checks skipped"
fi

# ---- trained BPE ---------------------------------------------------------------------
check "--train-bpe" bash -c "'$T' --train-bpe 600 -o '$TMP/vocab' '$TMP/big.jsonl' >'$TMP/vpaths' 2>/dev/null"
# progress on stderr, not a terminal (DR_PROGRESS_INTERVAL=0: a line at every update):
# counting the pre-tokens (MB of the input), the merges (of 600 - 257); the summary last;
# the same files
DR_PROGRESS_INTERVAL=0 "$T" --train-bpe 600 -o "$TMP/vocabp" "$TMP/big.jsonl" >"$TMP/vpathsp" 2>"$TMP/vocabp.err"
check "--train-bpe progress: count lines, in MB" grep -qE '^count: ([0-9.]+)/\1 MB \(100\.0%\), .* elapsed, ETA [0-9:]+, 3000 documents$' "$TMP/vocabp.err"
check "--train-bpe progress: merge lines, of 343" grep -qE '^merge: 343/343 merges \(100\.0%\), ' "$TMP/vocabp.err"
check "--train-bpe progress: the summary last" bash -c "tail -n 1 '$TMP/vocabp.err' | grep -q '^dr-tokenize: trained a 600-token BPE on 3000 documents'"
check "--train-bpe progress: the same files" bash -c "cmp -s '$TMP/vocab/encoder.json' '$TMP/vocabp/encoder.json' && cmp -s '$TMP/vocab/vocab.bpe' '$TMP/vocabp/vocab.bpe'"
check "--train-bpe prints the two files" test "$(cat "$TMP/vpaths" | tr '\n' ' ')" = "$TMP/vocab/encoder.json $TMP/vocab/vocab.bpe "
check "vocab.bpe: #version + 343 merges" bash -c "head -n 1 '$TMP/vocab/vocab.bpe' | grep -q '^#version' && [ \$(wc -l <'$TMP/vocab/vocab.bpe') -eq 344 ]"
check "encoder.json: 600 ids, <|endoftext|> last" bash -c "python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); sys.exit(not (len(e) == 600 and e[\"<|endoftext|>\"] == 599))' '$TMP/vocab/encoder.json'"
check "tokenize with the trained BPE" bash -c "'$T' --tokenizer bpe --vocab-dir '$TMP/vocab' --invalid-utf8 keep --lines -o '$TMP/b' '$TMP/latin1.txt' >/dev/null 2>&1"
check "trained BPE: keep-mode round trip" test "$($DUMP "$TMP/b/shard-00000.drs" | cut -f4 | tr '\n' ' ')" = \
    "$(printf 'caf\xe9 au lait' | hex) $(printf 'ok' | hex) $(printf '\xff\xfe bad' | hex) "
expect_error "--train-bpe too large for the corpus" "corpus gives only" "$T" --train-bpe 100000 -o "$TMP/vocab2" "$TMP/lines.txt"
check "... leaves no -o directory it created" test ! -e "$TMP/vocab2"
# an earlier vocabulary stays whole when the new one cannot be put in place: vocab.bpe
# blocked by a directory is refused before encoder.json is replaced
mkdir -p "$TMP/vocab3/vocab.bpe" && cp "$TMP/vocab/encoder.json" "$TMP/vocab3/"
expect_error "--train-bpe: vocab.bpe is a directory" "vocab3/vocab\.bpe: is a directory" \
    "$T" --train-bpe 300 -o "$TMP/vocab3" "$TMP/big.jsonl"
check "... and the earlier encoder.json is untouched" cmp -s "$TMP/vocab/encoder.json" "$TMP/vocab3/encoder.json"

# options that would be silently ignored are refused, before any output
for opt in "--prefix p" "--shard-size 1" "--level 3" "--tokenizer byte" "--vocab-dir $TMP/vocab"; do
    expect_error "--train-bpe with $opt" "^dr-tokenize: ${opt%% *} is about token shards, which --train-bpe does not write" \
        "$T" --train-bpe 300 $opt -o "$TMP/vocab4" "$TMP/big.jsonl"
    check "... writes nothing" test ! -e "$TMP/vocab4"
done
expect_error "--field with --lines" "^dr-tokenize: --field names a JSON field, but --lines reads plain text" \
    "$T" --tokenizer byte --lines --field text -o "$TMP/f1" "$TMP/lines.txt"
expect_error "--source-field with --format text" "^dr-tokenize: --source-field names a JSON field, but --format text reads plain text" \
    "$T" --tokenizer byte --source-field s --format text -o "$TMP/f2" "$TMP/lines.txt"
check "--field with --format jsonl is fine" bash -c "'$T' --tokenizer byte --format jsonl --field text -o '$TMP/f3' '$TMP/big.jsonl' >/dev/null 2>&1"

# -o DIR/ (a trailing slash, as the README writes it): the printed paths have one slash
"$T" --tokenizer byte --lines -o "$TMP/slash/" "$TMP/lines.txt" > "$TMP/slash.paths" 2>/dev/null
check "-o DIR/ prints DIR/shard-00000.drs, not DIR//" grep -qx "$TMP/slash/shard-00000.drs" "$TMP/slash.paths"


# ---- bad input met by --train-bpe: the same one line naming file and line ----------------
# before: "text 0: invalid UTF-8 at byte offset 3" (the index among all documents)
expect_error "--train-bpe --invalid-utf8 error names file and line" "latin1\.txt:1: invalid UTF-8 at byte offset 3" \
    "$T" --train-bpe 300 --lines --invalid-utf8 error -o "$TMP/vocab5" "$TMP/latin1.txt"
printf '{"text": "fine"}\n{"text": "bad \xff here"}\n' >"$TMP/bad8.jsonl"
expect_error "--train-bpe --invalid-utf8 error, JSON lines" "bad8\.jsonl:2: invalid UTF-8 at byte offset 4" \
    "$T" --train-bpe 300 --invalid-utf8 error -o "$TMP/vocab5" "$TMP/bad8.jsonl"
check "... writes nothing" test ! -e "$TMP/vocab5"

# ---- paths printed one per line: a newline in -o or --prefix is refused ------------------
# before: the shard's path came out as two lines on stdout (and the run succeeded)
nl_dir=$TMP/o$'\n'x
expect_error "-o with a newline" "^dr-tokenize: -o '.*o\\\\nx': holds a newline" "$T" --tokenizer byte -o "$nl_dir" "$TMP/lines.txt"
expect_error "--train-bpe -o with a newline" "-o '.*o\\\\nx': holds a newline" "$T" --train-bpe 300 -o "$nl_dir" "$TMP/big.jsonl"
expect_error "--prefix with a carriage return" "--prefix 'p\\\\rq': holds a newline or carriage return" \
    "$T" --tokenizer byte --prefix $'p\rq' -o "$TMP/pcr" "$TMP/lines.txt"
check "... and nothing written" eval '[ ! -e "$nl_dir" ] && [ ! -e "$TMP/pcr" ]'
# '..' after a directory the run must make: refused, nothing made (before: a failed run
# left new/ behind, as its removal walks the name's text back up)
expect_error "-o with '..' after a missing directory" "new/\\.\\./new2: '\\.' or '\\.\\.' after a directory that does not exist yet" \
    "$T" --tokenizer byte -o "$TMP/new/../new2" "$TMP/lines.txt"
check "... and nothing made" eval '[ ! -e "$TMP/new" ] && [ ! -e "$TMP/new2" ]'
mkdir -p "$TMP/have/sub"
check "-o with '..' after existing directories is fine" \
    eval '"$T" --tokenizer byte -o "$TMP/have/sub/../out" "$TMP/lines.txt" >/dev/null 2>&1 && [ -d "$TMP/have/out" ]'

# ---- a file size limit (ulimit -f): a write error, not death by SIGXFSZ -------------------
# before: killed by SIGXFSZ (status 153) with DIR/shard-00000.drs.tmp.<pid> and DIR left
python3 -c '
import json, random
random.seed(5)
with open("'"$TMP"'/noise.jsonl", "w") as f:
    for i in range(200):
        f.write(json.dumps({"text": "".join(random.choice("abcdefghijklmnopqrstuvwxyz .,") for _ in range(2000))}) + "\n")
'
expect_error "ulimit -f" "fz/shard-00000\.drs: write failed: File too large" \
    bash -c "ulimit -f 32; exec '$T' --tokenizer byte -o '$TMP/fz' '$TMP/noise.jsonl'"
check "... no -o directory left" test ! -e "$TMP/fz"
expect_error "ulimit -f, --train-bpe" "fzv/encoder\.json: write failed: File too large" \
    bash -c "ulimit -f 1; exec '$T' --train-bpe 400 -o '$TMP/fzv' '$TMP/noise.jsonl'"
check "... no -o directory left" test ! -e "$TMP/fzv"

# no inputs with stdin a terminal: refused at once (it waited for the terminal to end),
# through script(1)'s pseudo-terminal when there is one
if command -v script >/dev/null 2>&1; then
    check "no inputs, stdin a terminal: refused with one line" sh -c "! timeout 20 script -qec \"'$T' -o '$TMP/tty-in'\" /dev/null > '$TMP/tty.out' &&
        grep -q 'no inputs: give files or directories, or pipe the corpus in' '$TMP/tty.out' && [ \$(grep -c . '$TMP/tty.out') -eq 1 ]"
fi
# ---- compressed inputs (lib/textin.c): gzip and zstd by their first bytes, on files and
# stdin; the name without .gz/.zst gives the format and the source; the same shards as
# the plain text; truncated, corrupt and trailing data refused, naming file and line
gzip -c "$TMP/big.jsonl" >"$TMP/cz.jsonl.gz"
zstd -q -c "$TMP/big.jsonl" >"$TMP/cz.jsonl.zst"
cp "$TMP/big.jsonl" "$TMP/cz.jsonl"
"$T" --tokenizer byte -o "$TMP/cz_plain" "$TMP/cz.jsonl" >/dev/null 2>&1
for c in gz zst; do
    check "$c: the plain file's shard, byte for byte" bash -c "'$T' --tokenizer byte -o '$TMP/cz_$c' '$TMP/cz.jsonl.$c' >/dev/null 2>&1 && cmp -s '$TMP/cz_plain/shard-00000.drs' '$TMP/cz_$c/shard-00000.drs'"
    check "$c on stdin: the same tokens" bash -c "'$T' --tokenizer byte --source cz -o '$TMP/czs_$c' - <'$TMP/cz.jsonl.$c' >/dev/null 2>&1 && cmp -s '$TMP/cz_plain/shard-00000.drs' '$TMP/czs_$c/shard-00000.drs'"
    check "$c through a pipe: the same tokens" bash -c "cat '$TMP/cz.jsonl.$c' | '$T' --tokenizer byte --source cz -o '$TMP/czp_$c' >/dev/null 2>&1 && cmp -s '$TMP/cz_plain/shard-00000.drs' '$TMP/czp_$c/shard-00000.drs'"
done
check "a plain stdin pipe still reads its first bytes" bash -c "cat '$TMP/cz.jsonl' | '$T' --tokenizer byte --source cz -o '$TMP/czpp' >/dev/null 2>&1 && cmp -s '$TMP/cz_plain/shard-00000.drs' '$TMP/czpp/shard-00000.drs'"
{ head -n 1000 "$TMP/big.jsonl" | gzip -c; tail -n +1001 "$TMP/big.jsonl" | gzip -c; } >"$TMP/czm.jsonl.gz"
{ head -n 1000 "$TMP/big.jsonl" | zstd -q -c; tail -n +1001 "$TMP/big.jsonl" | zstd -q -c; } >"$TMP/czm.jsonl.zst"
for c in gz zst; do
    check "$c of several members / frames" bash -c "'$T' --tokenizer byte --source cz -o '$TMP/czm_$c' '$TMP/czm.jsonl.$c' >/dev/null 2>&1 && cmp -s '$TMP/cz_plain/shard-00000.drs' '$TMP/czm_$c/shard-00000.drs'"
done
printf 'one document\n' | gzip -c >"$TMP/doc.txt.gz"
check "a .txt.gz: one document per file, source 'doc'" bash -c "'$T' --tokenizer byte -o '$TMP/czt' '$TMP/doc.txt.gz' >/dev/null 2>&1 && [ \"\$($DUMP '$TMP/czt/shard-00000.drs' | cut -f2)\" = doc ]"
mkdir -p "$TMP/gzdir" && cp "$TMP/doc.txt.gz" "$TMP/gzdir/.gz"
check "a file named just .gz keeps its name as the source (not its directory's)" bash -c "'$T' --tokenizer byte -o '$TMP/czt2' '$TMP/gzdir/.gz' >/dev/null 2>&1 && [ \"\$($DUMP '$TMP/czt2/shard-00000.drs' | cut -f2)\" = .gz ]"
n=$(stat -c %s "$TMP/cz.jsonl.gz"); head -c $((n / 2)) "$TMP/cz.jsonl.gz" >"$TMP/tr.jsonl.gz"
expect_error "truncated gzip" "tr\.jsonl\.gz:[0-9]+: truncated gzip data \(the input ends inside a member\)$" "$T" --tokenizer byte -o "$TMP/e" "$TMP/tr.jsonl.gz"
n=$(stat -c %s "$TMP/cz.jsonl.zst"); head -c $((n / 2)) "$TMP/cz.jsonl.zst" >"$TMP/tr.jsonl.zst"
expect_error "truncated zstd" "tr\.jsonl\.zst:[0-9]+: truncated zstd data \(the input ends inside a frame\)$" "$T" --tokenizer byte -o "$TMP/e" "$TMP/tr.jsonl.zst"
python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 0x55; open(sys.argv[2], 'wb').write(b)" "$TMP/cz.jsonl.zst" "$TMP/bad.jsonl.zst"
expect_error "corrupt zstd" "bad\.jsonl\.zst:[0-9]+: " "$T" --tokenizer byte -o "$TMP/e" "$TMP/bad.jsonl.zst"
{ cat "$TMP/cz.jsonl.gz"; printf 'not gzip\n'; } >"$TMP/trail.jsonl.gz"
expect_error "data after the gzip data" "trail\.jsonl\.gz:[0-9]+: data that is not gzip after the end of the gzip data$" "$T" --tokenizer byte -o "$TMP/e" "$TMP/trail.jsonl.gz"
check "... no shard left" test -z "$(ls "$TMP/e" 2>/dev/null)"
check "--train-bpe on a .gz: the vocabulary of the plain file" bash -c "'$T' --train-bpe 300 -o '$TMP/vz' '$TMP/cz.jsonl.gz' >/dev/null 2>&1 && '$T' --train-bpe 300 -o '$TMP/vp' '$TMP/cz.jsonl' >/dev/null 2>&1 && cmp -s '$TMP/vz/vocab.bpe' '$TMP/vp/vocab.bpe'"

# an option where its predecessor's value should be: named as such
expect_error "--vocab-dir followed by an option" "option --vocab-dir needs a value, but the next argument is the option --field" \
    "$T" --tokenizer bpe --vocab-dir --field text -o "$TMP/x" "$TMP/noise.jsonl"

finish
