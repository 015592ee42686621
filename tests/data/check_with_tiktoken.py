#!/usr/bin/env python3
"""check_with_tiktoken.py — compares our encoder with OpenAI's tiktoken (the npm package
`tiktoken`: tiktoken's Rust core compiled to WASM) on large inputs. A development check,
not run by the test suite (it needs node and `npm install tiktoken` somewhere).

    python3 tests/data/check_with_tiktoken.py NODE_MODULES sweep
        every code point U+0000..U+10FFFF (surrogates excepted) in two contexts,
        "<c>'s" and "1<c> x<c>", through the gpt2 encoding: shows that the character
        classes (Unicode version) and the regex split agree everywhere;
    python3 tests/data/check_with_tiktoken.py NODE_MODULES corpus FILE.jsonl [VOCAB_DIR]
        the "text" of every line of FILE.jsonl, with gpt2, or with a vocabulary trained
        by `dr-tokenize --train-bpe` (loaded into tiktoken from its encoder.json).
Run from the repository root after `make` (it builds a small encoder against libdr.a).
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

PAT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

ENC_C = r"""
#include "tokenizer.h"
#include "check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {   /* enc KIND DIR < hex lines: ids per line */
    Tokenizer *t = tokenizer_load(argv[1], argv[2]);
    if (!t) dr_die("%s", dr_lasterr());
    TokEncoder *e = tok_encoder_new(t);
    size_t cap = 1 << 20;
    char *line = malloc(cap), *text = malloc(cap);
    TokenBuf b = {0};
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        text = realloc(text, cap);
        if (n && line[n - 1] == '\n') n--;
        size_t k = 0;
        for (ssize_t i = 0; i + 1 < n; i += 2) { unsigned v; sscanf(line + i, "%2x", &v); text[k++] = (char)v; }
        b.n = 0;
        tok_encoder_encode(e, text, k, TOK_UTF8_REPLACE, &b, NULL);
        for (size_t i = 0; i < b.n; i++) printf(i ? " %u" : "%u", b.ids[i]);
        printf("\n");
    }
    return 0;
}
"""

JS = r"""
const fs = require('fs');
const tk = require(process.argv[2] + '/tiktoken');
const m = JSON.parse(fs.readFileSync(process.argv[3]));
const enc = m.gpt2 ? tk.get_encoding('gpt2') : new tk.Tiktoken(m.bpe_ranks, m.special_tokens, m.pat_str);
const texts = JSON.parse(fs.readFileSync(process.argv[4]));
fs.writeFileSync(process.argv[5], texts.map(t => Array.from(enc.encode_ordinary(t)).join(' ')).join('\n') + '\n');
"""


def model_of(vocab_dir):
    """tiktoken's "bpe_ranks" form of a GPT-2 format vocabulary (ids = ranks)."""
    with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    dec = {chr(c): b for b, c in zip(bs, cs)}
    eot = enc.pop("<|endoftext|>")
    toks = [bytes(dec[ch] for ch in k) for k, _ in sorted(enc.items(), key=lambda kv: kv[1])]
    return {"bpe_ranks": "! 0 " + " ".join(base64.b64encode(t).decode() for t in toks),
            "special_tokens": {"<|endoftext|>": eot}, "pat_str": PAT}


def compare(node_modules, texts, kind, vocab_dir, model):
    with tempfile.TemporaryDirectory() as d:
        p = lambda name: os.path.join(d, name)
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Ilib", "-x", "c", "-", "-x", "none", "build/float/libdr.a",
                        "-lzstd", "-lxxhash", "-lm", "-lpthread", "-o", p("enc")], input=ENC_C.encode(), check=True)
        with open(p("model.json"), "w") as f:
            json.dump(model, f)
        with open(p("texts.json"), "w") as f:
            json.dump(texts, f)
        with open(p("x.cjs"), "w") as f:
            f.write(JS)
        subprocess.run(["node", "--max-old-space-size=8000", p("x.cjs"), os.path.abspath(node_modules),
                        p("model.json"), p("texts.json"), p("theirs.txt")], check=True)
        with open(p("texts.hex"), "w") as f:
            f.write("".join(t.encode("utf-8", errors="surrogatepass").hex() + "\n" for t in texts))
        with open(p("texts.hex")) as f:
            ours = subprocess.run([p("enc"), kind, vocab_dir], stdin=f, capture_output=True, check=True)
        ours = ours.stdout.decode().split("\n")
        with open(p("theirs.txt")) as f:
            theirs = f.read().split("\n")
    bad = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a != b]
    for t, a, b in bad[:10]:
        print(f"differs: {t[:80]!r}\n  ours     {a[:200]}\n  tiktoken {b[:200]}")
    print(f"{len(texts) - len(bad)}/{len(texts)} texts give the same ids as tiktoken")
    return 1 if bad else 0


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[1] == "sweep":
        texts = []
        for cp in range(0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            texts += [chr(cp) + "'s", "1" + chr(cp) + " x" + chr(cp)]
        return compare(a[0], texts, "gpt2", "data/gpt2", {"gpt2": True})
    if len(a) in (3, 4) and a[1] == "corpus":
        with open(a[2], encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
        if len(a) == 4:
            return compare(a[0], texts, "bpe", a[3], model_of(a[3]))
        return compare(a[0], texts, "gpt2", "data/gpt2", {"gpt2": True})
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
