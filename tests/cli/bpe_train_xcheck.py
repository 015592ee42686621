#!/usr/bin/env python3
"""bpe_train_xcheck.py — an independent BPE trainer and encoder written from
docs/formats.md §1.3 alone (nothing in lib/), for tests/cli/bpe_train_xcheck.sh.

    bpe_train_xcheck.py gen-all DIR            writes DIR/KIND.corpus for every KIND
    bpe_train_xcheck.py gen KIND > corpus     the test corpora (fixed, no randomness
        beyond a fixed seed); KIND: english ties unicode runs splits few invalid
        (invalid is --lines text with raw invalid UTF-8, the others JSON lines)
    bpe_train_xcheck.py train CORPUS N OUTDIR [--lines] [--keep]
        writes OUTDIR/encoder.json and OUTDIR/vocab.bpe; when the corpus gives fewer
        than N - 257 merges, prints "the corpus gives only M merges (T tokens)" and
        exits 3 (writes nothing).
    bpe_train_xcheck.py check VOCAB_DIR CORPUS IDS [--lines] [--keep]
        IDS: one JSON array per document (dr-cat --ids); each must equal the
        reference's encoding; prints each mismatch and exits 1 if there is one.

Needs only python3 and the `regex` module.
"""
import codecs
import json
import os
import random
import sys

import regex

# §1.3 step 2: GPT-2's pattern (regex: \s = White_Space, \p{L}, \p{N} general categories)
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


# §1.3 step 3 and "Files": the byte order and the byte -> code point map
def byte_alphabet():
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    others = [b for b in range(256) if b not in printable]
    order = printable + others                       # id i is byte order[i]
    cp = {b: b for b in printable}
    for i, b in enumerate(others):
        cp[b] = 0x100 + i
    return order, cp


ORDER, CP = byte_alphabet()
BYTE_ID = {b: i for i, b in enumerate(ORDER)}


# ---- corpus -------------------------------------------------------------------------

def read_docs(path, lines):
    """§1.1: JSON lines' "text" (empty texts and blank lines skipped), or --lines."""
    with open(path, "rb") as f:
        data = f.read()
    docs = []
    if lines:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        for l in data.split(b"\n"):
            if l.endswith(b"\r"):
                l = l[:-1]
            if l:
                docs.append(l)
    else:
        for l in data.split(b"\n"):
            if not l.strip():
                continue
            t = json.loads(l)["text"].encode("utf-8")
            if t:
                docs.append(t)
    return docs


SPANS = []


def _record(e):
    SPANS.append((e.start, e.end))
    return ("\ufffd", e.end)


codecs.register_error("xcheck_record", _record)


def pretokens(doc, keep):
    """§1.3 steps 1-2: the pre-tokens (bytes) of one document."""
    if not keep:
        text = doc.decode("utf-8", errors="replace")
        return [m.encode("utf-8") for m in PAT.findall(text)]
    # keep: each maximal invalid sequence (what one U+FFFD would replace) is a piece by
    # itself and counts as \S; the valid stretches between are split by the pattern
    del SPANS[:]
    doc.decode("utf-8", errors="xcheck_record")
    spans = list(SPANS)
    out, pos = [], 0
    for s, e in spans + [(len(doc), len(doc))]:
        seg = doc[pos:s].decode("utf-8")
        if s < len(doc):
            # a following invalid piece is \S: split seg + "Q" and take the Q off the
            # last piece (Q: a letter that makes no contraction)
            pieces = PAT.findall(seg + "Q")
            pieces[-1] = pieces[-1][:-1]
            if not pieces[-1]:
                pieces.pop()
        else:
            pieces = PAT.findall(seg)
        out += [p.encode("utf-8") for p in pieces]
        if s < len(doc):
            out.append(doc[s:e])
        pos = e
    assert b"".join(out) == doc
    return out


# ---- training (§1.3 steps 3-7) -------------------------------------------------------

def word_pairs(seq):
    c = {}
    for x, y in zip(seq, seq[1:]):
        c[(x, y)] = c.get((x, y), 0) + 1
    return c


def train(docs, n_vocab, keep):
    counts = {}
    for d in docs:
        for p in pretokens(d, keep):
            counts[p] = counts.get(p, 0) + 1
    words = [[BYTE_ID[b] for b in w] for w in counts]
    wcount = list(counts.values())
    tokens = [bytes([b]) for b in ORDER]
    token_set = set(tokens)
    pairs = {}
    for seq, c in zip(words, wcount):
        for pr, k in word_pairs(seq).items():
            pairs[pr] = pairs.get(pr, 0) + k * c
    banned = set()
    merges = []
    while len(merges) < n_vocab - 257:
        cands = [(c, pr) for pr, c in pairs.items() if c >= 1 and pr not in banned]
        if not cands:
            break
        best = min(cands, key=lambda t: (-t[0], t[1][0], t[1][1]))[1]
        x, y = best
        new = tokens[x] + tokens[y]
        if new in token_set:
            banned.add(best)
            continue
        z = len(tokens)
        tokens.append(new)
        token_set.add(new)
        merges.append(best)
        for i, seq in enumerate(words):
            if not any(a == x and b == y for a, b in zip(seq, seq[1:])):
                continue
            for pr, k in word_pairs(seq).items():
                pairs[pr] -= k * wcount[i]
            out, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == x and seq[j + 1] == y:
                    out.append(z)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            words[i] = out
            for pr, k in word_pairs(out).items():
                pairs[pr] = pairs.get(pr, 0) + k * wcount[i]
    return tokens, merges, banned


def token_string(b, json_escape):
    s = []
    for byte in b:
        c = CP[byte]
        if json_escape and chr(c) in '"\\':
            s.append("\\" + chr(c))
        elif c < 0x80:
            s.append(chr(c))
        elif json_escape:
            s.append("\\u%04x" % c)
        else:
            s.append(chr(c))
    return "".join(s)


def write_files(tokens, merges, outdir):
    os.makedirs(outdir, exist_ok=True)
    ents = ['"%s": %d' % (token_string(t, True), i) for i, t in enumerate(tokens)]
    ents.append('"%s": %d' % (EOT, len(tokens)))
    with open(os.path.join(outdir, "encoder.json"), "wb") as f:
        f.write(("{" + ", ".join(ents) + "}").encode("utf-8"))
    with open(os.path.join(outdir, "vocab.bpe"), "wb") as f:
        f.write(b"#version: 0.2\n")
        for x, y in merges:
            f.write((token_string(tokens[x], False) + " " + token_string(tokens[y], False)
                     + "\n").encode("utf-8"))


# ---- encoding ("Encoding with it") --------------------------------------------------

class Encoder:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            enc = json.load(f)
        dec = {chr(c): b for b, c in CP.items()}
        self.ids = {}
        for s, i in enc.items():
            if s != EOT:
                self.ids[bytes(dec[ch] for ch in s)] = i
        self.cache = {}

    def piece(self, p):
        if p in self.ids:
            return [self.ids[p]]
        if p in self.cache:
            return self.cache[p]
        parts = [bytes([b]) for b in p]
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.ids.get(parts[i] + parts[i + 1])
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
        ids = [self.ids[q] for q in parts]
        self.cache[p] = ids
        return ids

    def encode(self, doc, keep):
        out = []
        for p in pretokens(doc, keep):
            out += self.piece(p)
        return out


# ---- corpora ------------------------------------------------------------------------

ENGLISH = """It was the best of times, it was the worst of times, it was the age of wisdom,
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness, it was the spring of hope, it
was the winter of despair. There were a king with a large jaw and a queen with a plain
face, on the throne of England; there were a king with a large jaw and a queen with a fair
face, on the throne of France. It was clearer than crystal to the lords of the State
preserves of loaves and fishes, that things in general were settled for ever. I'm sure
they'd say we've got 1,000 reasons; you'll see they're right: 42 isn't 7.5%!"""


def gen(kind):
    rnd = random.Random(7)
    docs = []
    if kind == "english":
        sents = [s.strip() for s in ENGLISH.replace("\n", " ").split(".") if s.strip()]
        for i in range(120):
            k = rnd.randint(1, 4)
            docs.append(". ".join(rnd.choice(sents) for _ in range(k)) + ".")
        docs.append("   leading spaces and trailing  \n\n\ttabs\t \r\n")
    elif kind == "ties":
        # every word equally often: counts tie everywhere; byte-value order and id order
        # differ (~ is id 93, \t id 197, space id 220, 0xAD id 255)
        words = ["ab", "ba", "cd", "dc", "~~", "\t\t", "xy", "yx", "\u00ad\u00ad", "\u00e9\u00e9",
                 "pq", "qp", "mn", "nm", "!!", "??"]
        for r in range(6):
            docs.append(" ".join(words) + " " + "".join(words[::-1]))
        docs.append("abcd " * 3 + "bcda " * 3 + "cdab " * 3 + "dabc " * 3)
    elif kind == "unicode":
        bits = ["caf\u00e9", "na\u00efve", "\u65e5\u672c\u8a9e", "\u4e2d\u6587\u5b57",
                "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
                "\u0440\u0443\u0441\u0441\u043a\u0438\u0439", "\u03b1\u03b2\u03b3", "\u0645\u0631\u062d\u0628\u0627",
                "\u00a0nbsp", "\u3000wide", "e\u0301", "\ufffd", "\u2028", "\u0664\u0662", "\u00bd",
                "\u2603\ufe0f", "x\u00b2", "\U0001F1EB\U0001F1F7"]
        for i in range(80):
            docs.append(" ".join(rnd.choice(bits) for _ in range(rnd.randint(2, 9))))
    elif kind == "runs":
        # overlapping pairs: "aaa" holds (a, a) twice and merges to "aa a"
        for n in range(1, 18):
            docs.append("a" * n)
            docs.append(" " + "b" * n)
        docs.append("aaa aaa aaa aaaa aaaaa " + "ab" * 9 + " " + "aab" * 5 + " " + "zzz" * 7)
        docs.append(" " * 40 + "x" + "\n" * 9 + "!" * 33 + "7" * 21)
    elif kind == "splits":
        # one substring in different contexts (a + bc against ab + c); rule 5's ban was
        # never seen in a random search of such corpora, but an implementation must have it
        for w, c in SPLIT_WORDS:
            docs += [w] * c
    elif kind == "few":
        docs += ["ab ab ab", "abc", "x"]
    elif kind == "invalid":
        lines = [b"caf\xe9 au lait", b"ok \xff\xfe bad", b"\xc3\xa9\xc3 broken\xe2\x82",
                 b"  \xff  \xf0\x9f\x98 x", b"it's\xffs", b"\xed\xa0\x80 surrogate \xc0\xaf",
                 b"plain text here", b"caf\xe9\xe9 \xe9"]
        sys.stdout.buffer.write(b"\n".join(lines * 5) + b"\n")
        return
    else:
        sys.exit("unknown corpus kind " + kind)
    for d in docs:
        sys.stdout.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")


KINDS = ["english", "ties", "unicode", "runs", "splits", "few", "invalid"]
SPLIT_WORDS = [("abc", 2), ("bc", 3), ("xab", 1), ("xa", 2), ("abcd", 1)]


def main():
    a = sys.argv[1:]
    flags = {x for x in a if x.startswith("--")}
    a = [x for x in a if not x.startswith("--")]
    lines, keep = "--lines" in flags, "--keep" in flags
    if a[0] == "gen":
        gen(a[1])
    elif a[0] == "gen-all":
        for kind in KINDS:
            with open(os.path.join(a[1], kind + ".corpus"), "w", encoding="utf-8") as f:
                sys.stdout = f
                gen(kind)
                sys.stdout.flush()
        sys.stdout = sys.__stdout__
    elif a[0] == "train":
        n = int(a[2])
        tokens, merges, banned = train(read_docs(a[1], lines), n, keep)
        if len(merges) < n - 257:
            print("the corpus gives only %d merges (%d tokens)" % (len(merges), len(merges) + 257))
            sys.exit(3)
        write_files(tokens, merges, a[3])
    elif a[0] == "check":
        enc = Encoder(a[1])
        docs = read_docs(a[2], lines)
        with open(a[3]) as f:
            got = [json.loads(l) for l in f if l.strip()]
        bad = 0
        if len(got) != len(docs):
            print("%d documents in the ids, %d in the corpus" % (len(got), len(docs)))
            sys.exit(1)
        for i, (d, g) in enumerate(zip(docs, got)):
            want = enc.encode(d, keep)
            if want != g:
                bad += 1
                if bad <= 5:
                    print("document %d %r:\n  want %s\n  got  %s" % (i, d[:80], want[:40], g[:40]))
        sys.exit(1 if bad else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
