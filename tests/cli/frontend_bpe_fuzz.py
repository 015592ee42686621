#!/usr/bin/env python3
"""frontend_bpe_fuzz.py — an independent GPT-2 BPE encoder (tiktoken's "gpt2" rules) and
a generator of adversarial texts, for tests/cli/frontend_bpe_fuzz.sh.

    frontend_bpe_fuzz.py gen SEED COUNT [LONG] > cases.jsonl   JSON lines {"text": ...}
        LONG (default 2000): the longest run of a repeated word, in characters
    frontend_bpe_fuzz.py check VOCAB_DIR cases.jsonl ids.txt
        ids.txt: one JSON array of ids per case (dr-cat --ids); prints each mismatch
        and exits 1 if there is one.
    frontend_bpe_fuzz.py selfcheck VOCAB_DIR tests/data/gpt2_reference.tsv
        the reference itself against the committed tiktoken-checked ids, on the cases
        whose characters Python's unicodedata knows (see below).

The reference, written from the published algorithm and nothing in lib/:
  * pre-tokenizer: the pattern below through the `regex` module (\\p{L}, \\p{N}, \\s =
    White_Space), with regex's own leftmost-first alternation and backtracking;
  * bytes -> the printable code points of GPT-2's bytes_to_unicode(), to read the files;
  * merging as tiktoken's byte_pair_encode: every token's rank is its id; a piece that
    is a token is that token, otherwise start from bytes and repeatedly merge the
    adjacent pair whose concatenated bytes form the lowest-ranked token (leftmost on
    ties).
Generated characters are restricted to code points that Python's unicodedata knows
(Unicode 14), so that a difference in Unicode versions (regex's tables, the tables of
tiktoken's engine) cannot show up as a false mismatch.
"""
import json
import random
import sys
import unicodedata

import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Ref:
    def __init__(self, vocab_dir):
        with open(vocab_dir + "/encoder.json", encoding="utf-8") as f:
            enc = json.load(f)
        dec = {v: k for k, v in bytes_to_unicode().items()}
        self.ranks = {}
        for s, i in enc.items():
            if s == "<|endoftext|>":
                continue
            self.ranks[bytes(dec[c] for c in s)] = i

    def merge(self, piece):
        if piece in self.ranks:
            return [self.ranks[piece]]
        inf = float("inf")
        parts = [piece[i:i + 1] for i in range(len(piece))]
        # pair[i]: rank of the token parts[i] + parts[i + 1], or inf
        pair = [self.ranks.get(parts[i] + parts[i + 1], inf) for i in range(len(parts) - 1)]
        while pair:
            best = min(pair)
            if best == inf:
                break
            i = pair.index(best)                    # leftmost of the lowest rank
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
            del pair[i]
            if i > 0:
                pair[i - 1] = self.ranks.get(parts[i - 1] + parts[i], inf)
            if i < len(pair):
                pair[i] = self.ranks.get(parts[i] + parts[i + 1], inf)
        return [self.ranks[p] for p in parts]

    def encode(self, text):
        out = []
        for m in PAT.finditer(text):
            out.extend(self.merge(m.group(0).encode("utf-8")))
        return out


# ---- adversarial text ----------------------------------------------------------------

def category_pools():
    pools = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        cat = unicodedata.category(chr(cp))
        if cat == "Cn":
            continue
        pools.setdefault(cat, []).append(chr(cp))
    return pools


USPACES = ["\u00a0", "\u2028", "\u2029", "\u3000", "\u0085", "\r\n", "\t", "\v", "\f", "\r",
           "\n", "\u1680", "\u2000", "\u2009", "\u200a", "\u202f", "\u205f", " ",
           "\u200b", "\u180e", "\ufeff", "\x1c", "\x1f"]      # the last five are not \s
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE",
                "'VE", "'M", "'LL", "'D", "\u2019s", "\u2019S", "''s", "'", "'l", "'r", "'v",
                "'x", "'ss", "'lll"]
EMOJI = ["\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",
         "\U0001F44D\U0001F3FD", "\U0001F3F3\uFE0F\u200D\U0001F308", "\u2764\ufe0f",
         "\U0001F1FA\U0001F1F8", "\U0001F9D1\U0001F3FF\u200D\U0001F4BB", "\U0001F600",
         "#\ufe0f\u20e3", "\U0001F469\U0001F3FC\u200D\u2764\ufe0f\u200D\U0001F48B\u200D\U0001F468\U0001F3FB"]
WORDS = ["hello", "world", "The", "quick", "don", "isn", "naïve", "café", "Straße", "日本語",
         "中文", "한국어", "ελληνικά", "русский", "עברית", "العربية", "हिन्दी", "ไทย",
         "e\u0301", "a\u0308\u0301", "\u0301\u0301x", "123", "٣٤٥", "१२३", "৩৪", "Ⅻ", "½", "²",
         "𝟘𝟙", "x86_64", "foo.bar", "<|endoftext|>", "http://a.b/c?d=e", "--", "...", "!!!",
         "\u00ad", "ﬁ", "Ǆ", "ǅ", "ʰ", "々", "〆", "〇", "𐍈", "𝐀𝐁"]


def gen_text(rng, pools, cats, long_max):
    k = rng.random()
    if k < 0.03:
        return "".join(rng.choice(USPACES) for _ in range(rng.randint(1, 12)))  # only spaces
    if k < 0.05:
        w = rng.choice(WORDS)                                   # very long word
        return w * rng.randint(1, max(1, long_max // len(w)))
    if k < 0.07:
        return " " * rng.randint(1, 300) + rng.choice(WORDS) + " " * rng.randint(0, 300)
    parts = []
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if r < 0.25:
            parts.append(rng.choice(WORDS))
        elif r < 0.40:
            parts.append(rng.choice(USPACES) * rng.randint(1, 4))
        elif r < 0.50:
            parts.append(rng.choice(CONTRACTIONS))
        elif r < 0.55:
            parts.append(rng.choice(EMOJI))
        elif r < 0.80:
            pool = pools[rng.choice(cats)]
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 4))))
        elif r < 0.90:
            parts.append(" " * rng.randint(1, 6))
        else:
            parts.append(chr(rng.randint(0x20, 0x7E)))
    t = "".join(parts)
    return t if t else "x"


def selfcheck(vocab_dir, path):
    ref = Ref(vocab_dir)
    n = bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            hexs, _, ids = line.rstrip("\n").partition("\t")
            text = bytes.fromhex(hexs).decode("utf-8", "replace")
            if any(unicodedata.category(c) == "Cn" and c != "\ufffd" for c in text):
                continue                      # newer than Python's Unicode tables
            n += 1
            if ref.encode(text) != [int(x) for x in ids.split()]:
                bad += 1
                print(f"REFERENCE WRONG on {text[:80]!r}")
    print(f"reference: {n} committed cases, {bad} differ")
    return 1 if bad or n < 100 else 0


def main():
    if sys.argv[1] == "selfcheck":
        return selfcheck(sys.argv[2], sys.argv[3])
    if sys.argv[1] == "gen":
        rng = random.Random(int(sys.argv[2]))
        pools = category_pools()
        cats = sorted(pools)
        long_max = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
        for _ in range(int(sys.argv[3])):
            print(json.dumps({"text": gen_text(rng, pools, cats, long_max)}))
        return 0
    ref = Ref(sys.argv[2])
    with open(sys.argv[3], encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    with open(sys.argv[4], encoding="utf-8") as f:
        got = [json.loads(line) for line in f if line.strip()]
    bad = 0
    if len(got) != len(texts):
        print(f"{len(texts)} cases, {len(got)} documents back")
        return 1
    for t, g in zip(texts, got):
        want = ref.encode(t)
        if want != g:
            bad += 1
            if bad <= 10:
                print(f"MISMATCH {t[:200]!r}\n  want {want[:40]}\n  got  {g[:40]}")
    print(f"{len(texts)} cases, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
