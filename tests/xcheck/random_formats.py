#!/usr/bin/python3
"""random_formats.py -- a randomized cross-check of the data tools against formats_ref.py.

tests/xcheck/formats.sh checks the data tools on a fixed set of inputs; this draws N
random corpora and options from a seed and runs, for each, the tools and the reference
(formats_ref.py, written from docs/formats.md and docs/deploy.md; imported, its
subcommands run through their own argument parsers):

  tokenize  dr-tokenize on 1-4 inputs: JSON lines (random key order and whitespace, extra
            members, numbers such as 1e400, \\u escapes in keys and text, nested --field /
            --source-field names placed under every split of the dots, decoys, sources that
            are missing, "", or hold TAB/NL/CR/NUL/commas), --lines (LF, CRLF, bare CR, empty
            lines, a last line without newline or ending in CR), --format text, stdin, a
            directory of files, gzip (1-3 members) and zstd (1-3 frames) with or without
            .gz/.zst/.zstd in the name, a BOM; text of random Unicode (astral, combining
            marks, every White_Space and its look-alikes, contractions, <|endoftext|>, long
            runs), empty and whitespace-only documents, exact duplicates within and across
            inputs, raw invalid UTF-8 and lone surrogate escapes under --invalid-utf8
            replace / keep / error (error: the run must be refused, one line naming the
            input, no shard); tokenizers byte, gpt2 and a --train-bpe vocabulary; --shard-size
            down to 0.001 MB (many shards), documents of more than 1 MiB of tokens (several
            blocks), --threads 1-3. Checks: tokcheck (header, checksums, tiling, ids, sources,
            fingerprint, spec, tokens; dr-cat --ids, --list, text, --jsonl), layout (shard and
            block boundaries), the summary's counts;
  bpe       dr-tokenize --train-bpe N (N from 258 to past what the corpus gives) against
            bpetrain (encoder.json and vocab.bpe byte for byte, or the "only M merges"
            refusal, then N = 257 + M), then tokenizing with it;
  split     dr-split --val / --train-b (0, 1, summing to 1), --seed (0 .. 2^64 - 1), --dedup,
            --val-sources / --val-sources-file (present, absent, holding commas, copies of a
            document under several sources), --shard-size, --threads: split (every
            document's split, manifests and their comments), layout, and a second run on
            the inputs renamed and in another order (same bytes);
  examples  dr-cat --examples --ids --seq-len L (1 .. 40) --min-tokens M, on shards, split
            directories and a manifest with --split;
  filter    dr-filter on a random scores file (normal, tied levels, constant, integers,
            huge and tiny magnitudes, -0, every number syntax the docs allow, lines in any
            order, duplicate ids): --keep, --keep-middle, --per-batch, --cdf, --random,
            --min-score (at a score, between two, beyond all), deploy.policy from the
            config, each with or without --invert and --documents mean|min|max|first,
            --seed or experiment.seed (up to 2^64 - 1), --shard-size: filter (kept units,
            ids, sources, summary and its score cut); K = 0 refused; per-shard --min-score
            runs against one run over all the shards;
  cat       dr-cat --jsonl --ids --scores F --top/--bottom K on all or some of the shards:
            catscores.

Characters are drawn only among the code points that Python's unicodedata (14.0 here) has
assigned, and the noncharacters: the tools classify by Unicode 16.0 (docs/formats.md
§1.3), and a letter added since would split otherwise in the reference.

Case i of seed S draws from random.Random("S:i:corpus") and, for each stage, "S:i:split",
"S:i:examples", "S:i:filter" alone, so

  tests/xcheck/random_formats.py --seed S --only i --keep --verbose

repeats it and prints every command it runs, to rerun by hand in the kept directory
(the reference's lines are its command line, run from the case's directory).

  tests/xcheck/random_formats.py [--seed S] [--cases N] [--bin DIR] [--keep] [--only I[,J..]]
                                 [--verbose] [--workdir DIR]
  make xcheck-formats-random [XCHECK_CASES=N] [XCHECK_SEED=S]  (tests/xcheck/random_formats.sh)

Not part of make test or make xcheck. About 0.5-1 s per case (1,300 cases of seeds 11 and
12: 16 min, 81,397 checks, on a 2-core machine). Exit 0 when all checks pass, 1 on any
FAIL or error, 77 when the Python lacks zstandard/xxhash/numpy.
"""
import argparse
import contextlib
import gzip
import io
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import unicodedata
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

try:
    import numpy  # noqa: F401
    import xxhash  # noqa: F401
    import zstandard
except ImportError as e:
    print(f"SKIPPED: {sys.executable} cannot import {e.name}")
    sys.exit(77)
sys.path.insert(0, HERE)
import formats_ref as R  # noqa: E402

U64 = 2 ** 64 - 1


class ToolError(Exception):
    pass


class Case:
    def __init__(self, root, seed, i, bin_dir, verbose):
        self.i = i
        self.seed = seed
        self.dir = os.path.join(root, f"case{i:04d}")
        os.makedirs(self.dir)
        self.bin = bin_dir
        self.verbose = verbose
        self.checks = []   # (stage, name, ok, detail)
        self.errors = []
        self.log = []
        self.tags = set()
        self.desc = []

    def say(self, s):
        self.log.append(s)
        if self.verbose:
            print(s)
            sys.stdout.flush()

    def p(self, *a):
        return os.path.join(self.dir, *a)

    def tool(self, name, *args, stdout=None, stdin=None, expect_fail=False, ok_fail=False):
        cmd = [os.path.join(self.bin, name)] + [str(a) for a in args]
        shown = " ".join(shlex.quote(c) for c in [name] + cmd[1:])
        self.say(f"$ {shown}" + (f" < {stdin}" if stdin else "") + (f" > {stdout}" if stdout else ""))
        fin = open(self.p(stdin), "rb") if stdin else subprocess.DEVNULL
        out = open(self.p(stdout), "wb") if stdout else subprocess.DEVNULL
        try:
            r = subprocess.run(cmd, cwd=self.dir, stdin=fin, stdout=out, stderr=subprocess.PIPE,
                               env=dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive",
                                        DR_DATA=os.environ.get("DR_DATA", os.path.join(ROOT, "data"))))
        finally:
            if stdin:
                fin.close()
            if stdout:
                out.close()
        r.err = r.stderr.decode("utf-8", "replace")
        if r.returncode != 0 and not (expect_fail or ok_fail):
            raise ToolError(f"{shown}: exit {r.returncode}: {r.err.strip()[-800:]}")
        if expect_fail and r.returncode == 0:
            self.check("tool", name + ".refused", False, f"{shown}: exit 0, a refusal expected")
        return r

    def check(self, stage, name, ok, detail=""):
        self.checks.append((stage, name, bool(ok), detail))
        self.say(f"CHECK {name} {'PASS' if ok else 'FAIL'} {detail}")
        return ok

    def ref(self, stage, cmd, *args):
        argv = [str(a) for a in args]
        self.say("$ python3 tests/xcheck/formats_ref.py " + cmd + " " + " ".join(shlex.quote(a) for a in argv))
        buf = io.StringIO()
        cwd = os.getcwd()
        try:
            os.chdir(self.dir)
            with contextlib.redirect_stdout(buf):
                getattr(R, "cmd_" + cmd)(argv)
        except Exception:
            self.errors.append(f"reference {cmd} raised: {traceback.format_exc()[-1500:]}")
        finally:
            os.chdir(cwd)
        for line in buf.getvalue().splitlines():
            m = re.match(r"CHECK (\S+) (PASS|FAIL) ?(.*)", line)
            if m:
                self.checks.append((stage, m.group(1), m.group(2) == "PASS", m.group(3)))
            self.say(line)

    def write(self, rel, data):
        path = self.p(rel)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


# ======================================================================================
# text

def _assigned(c):
    cat = unicodedata.category(c)
    if cat == "Cs":
        return False
    if cat == "Cn":   # unassigned in Python's Unicode 14: only the noncharacters (never assigned)
        o = ord(c)
        return 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE
    return True


def _pool(*ranges):
    out = []
    for a, b in ranges:
        out.extend(chr(c) for c in range(a, b + 1) if _assigned(chr(c)))
    return out


POOLS = {
    "latin1": _pool((0xA1, 0xFF)),
    "greek_cyr": _pool((0x370, 0x3FF), (0x400, 0x4FF)),
    "combining": _pool((0x300, 0x36F), (0x1AB0, 0x1ABE), (0x20D0, 0x20F0)),
    "indic": _pool((0x900, 0x97F), (0xE00, 0xE5B)),
    "arabic": _pool((0x600, 0x6FF)),
    "cjk": _pool((0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00)),
    "numbers": _pool((0x2150, 0x218B), (0x2460, 0x24FF), (0xFF10, 0xFF19), (0x660, 0x669), (0xB2, 0xB3)),
    "symbols": _pool((0x2000, 0x206F), (0x20A0, 0x20C0), (0x2190, 0x21FF), (0xFE00, 0xFE0F), (0xFFF9, 0xFFFF)),
    "astral": _pool((0x1F300, 0x1F3FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x1D400, 0x1D7FF),
                    (0x10330, 0x1034A), (0x20000, 0x20100), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
                    (0xF0000, 0xF0040), (0x1FFFE, 0x1FFFF), (0x10FFFE, 0x10FFFF), (0x1F1E6, 0x1F1FF)),
    "controls": _pool((0x01, 0x08), (0x0E, 0x1F), (0x7F, 0x9F)),
}
# White_Space (docs/formats.md §1.3: \s) and look-alikes that are not
WHITE = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680"] + [chr(c) for c in range(0x2000, 0x200B)] + \
        ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
NOT_WHITE = ["\x1c", "\x1d", "\x1e", "\x1f", "\u180e", "\u200b", "\u2060", "\ufeff", "\u200d", "\u034f"]
WORDS = ["the", "The", "quick", "brown", "fox", "it", "was", "I", "don", "we", "you", "they", "a", "Z",
         "naïve", "café", "Straße", "über", "日本語", "テキスト", "Ελληνικά", "кириллица", "ﬁne", "İstanbul",
         "x1", "v2.0", "http://example.com/a?b=c&d", "e-mail", "foo_bar", "CamelCase", "ALLCAPS"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "\u2019s", "'", "''", "'x"]
PUNCT = list(".,;:!?-()[]{}\"/\\@#$%^&*_+=<>|~`") + ["...", "--", "—", "«", "»", "¿", "¡", "•"]
INVALID = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe2\x82", b"\xe2", b"\xf0\x9f\x98",
           b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
           b"\xc3", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\x80\x80\x80", b"\xc3\x28", b"\xe2\x28\xa1"]
LONE = [0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xDC80, 0xDCFF, 0xD83D, 0xDE00]


def gen_parts(rng, size, kind, invalid, lone, max_run):
    """A document as parts: ("s", str), ("b", raw invalid bytes), ("u", lone surrogate escape)."""
    parts = []
    n = 0
    style = rng.random()
    while n < size:
        r = rng.random()
        if style < 0.15:   # mostly ASCII prose
            r = r * 0.45
        if r < 0.25:
            s = rng.choice(WORDS)
        elif r < 0.33:
            s = " "
        elif r < 0.38:
            s = rng.choice(WHITE) * rng.choice([1, 1, 1, 2, 3])
        elif r < 0.41:
            s = rng.choice(NOT_WHITE)
        elif r < 0.46:
            s = rng.choice(CONTRACTIONS)
        elif r < 0.52:
            s = rng.choice(PUNCT)
        elif r < 0.56:
            s = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 8)))
        elif r < 0.58:
            s = rng.choice(["<|endoftext|>", " <|endoftext|>", "<|endoftext", "|>"])
        elif r < 0.61:   # a run of one character or pair (overlapping BPE pairs)
            s = rng.choice(["a", " ", "\n", "ab", "7", "é", "-", "\t", "😀", "ー"]) * rng.randint(2, max_run)
        elif r < 0.64 and kind != "lines":
            s = rng.choice(["\r\n", "\n", "\r", "\n\n", " \n", "\r\r\n"])
        else:
            pool = POOLS[rng.choice(list(POOLS))]
            s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
            if rng.random() < 0.3:   # a letter followed by combining marks
                s = rng.choice("aeoAZ") + "".join(rng.choice(POOLS["combining"]) for _ in range(rng.randint(1, 3)))
        if invalid and rng.random() < 0.06:
            parts.append(("b", rng.choice(INVALID)))
            n += 2
        if lone and rng.random() < 0.04:
            parts.append(("u", rng.choice(LONE)))
            n += 1
        if kind == "lines":   # a --lines document holds no newline (other line breaks stay)
            s = s.replace("\n", rng.choice([" ", "\u2028", "\x85"]))
        parts.append(("s", s))
        n += len(s)
    return parts


def parts_bytes(parts):
    out = bytearray()
    for k, v in parts:
        if k == "s":
            out += v.encode("utf-8")
        elif k == "b":
            out += v
        else:
            out += chr(v).encode("utf-8", "surrogatepass")
    return bytes(out)


def json_str(rng, parts, esc_p):
    """A JSON string literal (bytes) of parts: raw UTF-8 or \\u escapes at random, raw
    invalid bytes as they are, lone surrogates as \\uXXXX."""
    out = bytearray(b'"')
    short = {'"': b'\\"', "\\": b"\\\\", "\n": b"\\n", "\r": b"\\r", "\t": b"\\t", "\b": b"\\b", "\f": b"\\f"}
    up = rng.random() < 0.3

    def u(c):
        return (("\\u%04X" if up and rng.random() < 0.5 else "\\u%04x") % c).encode()
    for k, v in parts:
        if k == "b":
            out += v
            continue
        if k == "u":
            out += u(v)
            continue
        for ch in v:
            o = ord(ch)
            if ch in short and (o < 0x20 or ch in '"\\' or rng.random() < 0.7):
                out += short[ch] if rng.random() < 0.8 or o >= 0x20 else u(o)
            elif o < 0x20 or rng.random() < esc_p:
                if o >= 0x10000:
                    o -= 0x10000
                    out += u(0xD800 + (o >> 10)) + u(0xDC00 + (o & 0x3FF))
                else:
                    out += u(o)
            elif ch == "/" and rng.random() < 0.5:
                out += b"\\/"
            else:
                out += ch.encode("utf-8")
    out += b'"'
    return bytes(out)


def ws(rng):
    return rng.choice([b"", b"", b"", b" ", b"  ", b"\t", b" \t "])


def json_value(rng, v, esc_p):
    """v: ("str", parts) | ("raw", bytes) | dict (an object) | list"""
    if isinstance(v, dict):
        items = list(v.items())
        rng.shuffle(items)
        body = b",".join(ws(rng) + json_str(rng, [("s", k)], esc_p * 0.5) + ws(rng) + b":" + ws(rng) +
                         json_value(rng, x, esc_p) + ws(rng) for k, x in items)
        return b"{" + body + (ws(rng) if not items else b"") + b"}"
    if isinstance(v, list):
        return b"[" + b",".join(ws(rng) + json_value(rng, x, esc_p) + ws(rng) for x in v) + b"]"
    if v[0] == "str":
        return json_str(rng, v[1], esc_p)
    return v[1]


def extra_value(rng, depth=0):
    r = rng.random()
    if r < 0.25:
        return ("raw", rng.choice([b"1e400", b"-1e400", b"0", b"-0", b"3.25", b"-12E-3", b"123456789012345678901234567890",
                                   b"true", b"false", b"null", b"0.5e+2"]))
    if r < 0.5:
        return ("str", [("s", "".join(rng.choice(POOLS["latin1"] + list("abc \"\\/")) for _ in range(rng.randint(0, 8))))])
    if r < 0.7 and depth < 2:
        return [extra_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2:
        return {rng.choice(["x", "y", "text", "source", "meta", "é", "a.b"]): extra_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return ("raw", b"42")


def place(rng, tree, path, value):
    """Put value at the dotted path (docs/formats.md "Nested fields"), under a random split
    of the dots into keys. False when it clashes with what tree holds."""
    segs = path.split(".")
    keys, cur = [], segs[0]
    for s in segs[1:]:
        if rng.random() < 0.5:
            cur += "." + s
        else:
            keys.append(cur)
            cur = s
    keys.append(cur)
    node = tree
    for k in keys[:-1]:
        if k not in node:
            node[k] = {}
        if not isinstance(node[k], dict):
            return False
        node = node[k]
    if keys[-1] in node:
        return False
    node[keys[-1]] = value
    return True


FIELDS = [None, None, None, "body", "content.text", "meta.body.text", "doc.text", "a.b", "données.texte", "t.x.y"]
SFIELDS = ["source", "source", "meta.source", "src.name", "meta.src", "origin", "a.c", "données.source"]


def src_names(rng):
    base = ["web", "books", "mail", "wiki", "news", "arxiv", "code", "web.v2", "c4-en", "x"]
    odd = ["a,b", "with space", "tab\there", "nl\nhere", "cr\rhere", "nul\0here", "ünï", "日本", "😀src", "q\"uote",
           "back\\slash", "semi;colon", ",lead", "trail,", "a,b,c", "ctl\x01x"]
    names = rng.sample(base, rng.randint(1, 4))
    if rng.random() < 0.6:
        names += rng.sample(odd, rng.randint(1, 3))
    return names


# ======================================================================================
# corpus

def draw_docs(cs, rng, n, kind, invalid, lone, tokenizer, pool):
    """n documents as parts lists; some copies of earlier ones (pool: across inputs)."""
    docs = []
    max_run = 300 if tokenizer == "byte" else 60
    for _ in range(n):
        r = rng.random()
        if pool and r < 0.12:
            d = rng.choice(pool)
            cs.tags.add("duplicate")
        elif r < 0.17:
            d = [("s", "")]
            cs.tags.add("empty doc")
        elif r < 0.22:
            d = [("s", "".join(rng.choice([" ", " ", "\t", "\u3000", "\xa0", "\r", "\n"]) for _ in range(rng.randint(1, 4))))]
            if kind == "lines":
                d = [("s", d[0][1].replace("\n", " ").replace("\r", " "))]
            cs.tags.add("whitespace doc")
        elif cs.bulk:   # byte tokenizer: 2-9 KB each, so that the shard's blocks hold several
            unit = gen_parts(rng, rng.randint(100, 300), kind, invalid, lone, 20)
            d = unit * (rng.randint(2000, 9000) // max(1, len(parts_bytes(unit)))) + [("s", "%d" % rng.random())]
        else:
            q = rng.random()
            size = (rng.randint(1, 40) if q < 0.6 else rng.randint(40, 400) if q < 0.92
                    else rng.randint(400, 6000 if tokenizer == "byte" else 2500))
            d = gen_parts(rng, size, kind, invalid, lone, max_run)
        docs.append(d)
        pool.append(d)
    return docs


def jsonl_bytes(cs, rng, docs, field, sfield, sources, esc_p, bad_line):
    lines = []
    for k, d in enumerate(docs):
        for attempt in range(20):
            tree = {}
            ok = place(rng, tree, field or "text", ("str", d))
            if sfield and ok:
                r = rng.random()
                if r < 0.65:
                    sv = [("s", rng.choice(sources))]
                elif r < 0.8:
                    sv = None
                    cs.tags.add("source field missing")
                else:
                    sv = [("s", "")]
                    cs.tags.add('source field ""')
                if sv is not None:
                    ok = place(rng, tree, sfield, ("str", sv))
            for _ in range(rng.randint(0, 3)):   # extra members, sometimes decoys on the paths
                name = rng.choice(["id", "url", "score", "meta", "n", "text2", "é", (field or "text").split(".")[0],
                                   (sfield or "x").split(".")[0], "source"])
                if name not in tree:
                    tree[name] = extra_value(rng)
            if not ok:
                continue
            line = ws(rng) + json_value(rng, tree, esc_p) + ws(rng)
            # the document must stay where the field says (decoys may shadow it): else draw again
            try:
                o = R.json_line_raw(line)
                t = R.json_path(o, (field or "text").encode())
                sv_ = R.json_path(o, sfield.encode()) if sfield else None
                if isinstance(t, bytes) and (sv_ is None or sv_ is R._MISSING or isinstance(sv_, bytes)):
                    break
            except ValueError:
                pass
        else:
            line = json.dumps({field or "text": parts_bytes(d).decode("utf-8", "replace")}).encode()
        if k == bad_line:   # an error case: the text field not a string, or missing
            line = rng.choice([b'{"%s": 12}' % (field or "text").encode(), b'{"zz": "no text"}',
                               b'{"%s": null}' % (field or "text").encode(), b'{"text": "x", "broken"'])
            if sfield and rng.random() < 0.5:
                line = b'{"%s": "ok", "%s": 7}' % ((field or "text").encode(), sfield.encode())
        lines.append(line)
        r = rng.random()
        if r < 0.06:
            lines.append(rng.choice([b"", b"   ", b"\t", b" \r"]))
            cs.tags.add("blank JSON line")
    eol = [b"\n", b"\r\n"]
    out = b"".join(l + rng.choice(eol) if rng.random() < 0.2 else l + b"\n" for l in lines)
    if rng.random() < 0.2:
        out = out.rstrip(b"\n")   # no newline after the last line
    return out


def lines_bytes(cs, rng, docs):
    out = bytearray()
    for d in docs:
        b = parts_bytes(d)
        out += b + rng.choice([b"\n", b"\n", b"\r\n"])
        if rng.random() < 0.08:
            out += rng.choice([b"\n", b"\r\n", b"\r\r\n"])
    if out and rng.random() < 0.3:
        out = out.rstrip(b"\r\n")
        if rng.random() < 0.5:
            out += b"\r"
            cs.tags.add("lines: last CR")
    return bytes(out)


def compress(cs, rng, data, force=False):
    r = rng.random()
    if force:
        r = 0.7 + 0.3 * r
    if r < 0.7:
        return data, ""
    k = rng.randint(1, 3)
    cuts = sorted(rng.randint(0, len(data)) for _ in range(k - 1))
    chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    if r < 0.85:
        cs.tags.add("gzip" + (" members" if k > 1 else ""))
        return b"".join(gzip.compress(c, compresslevel=rng.randint(1, 9)) for c in chunks), rng.choice([".gz", ".gz", ""])
    cs.tags.add("zstd" + (" frames" if k > 1 else ""))
    return b"".join(zstandard.ZstdCompressor(level=rng.randint(1, 5)).compress(c) for c in chunks), \
        rng.choice([".zst", ".zstd", ""])


def build_corpus(cs, rng, tokenizer, invalid, lone):
    """Writes the inputs; returns (argv options, input args, reference input specs, stdin file)."""
    mode = rng.choices(["auto", "jsonl", "lines", "text"], [0.55, 0.15, 0.2, 0.1])[0]
    n_in = rng.randint(1, 4)
    total = rng.choice([rng.randint(5, 30), rng.randint(5, 30), rng.randint(30, 120), rng.randint(100, 300)])
    if cs.bulk:
        total = rng.randint(200, 400)
    field = sfield = None
    opts = []
    sources = src_names(rng)
    if mode in ("auto", "jsonl"):
        field = rng.choice(FIELDS)
        if rng.random() < 0.75:
            for _ in range(10):
                sfield = rng.choice(SFIELDS)
                f = field or "text"
                if not (f == sfield or f.startswith(sfield + ".") or sfield.startswith(f + ".")):
                    break
            else:
                sfield = None
        if field:
            opts += ["--field", field]
            cs.tags.add("--field nested" if "." in field else "--field")
        if sfield:
            opts += ["--source-field", sfield]
            cs.tags.add("--source-field nested" if "." in sfield else "--source-field")
    if mode == "jsonl":
        opts += ["--format", "jsonl"]
    elif mode == "lines":
        opts += rng.choice([["--lines"], ["--format", "lines"], ["--lines", "--format", "lines"]])
    elif mode == "text":
        opts += ["--format", "text"]
    cs.tags.add("mode " + mode)
    if rng.random() < 0.2:
        src = rng.choice(["given", "given source", "ünï"])
        opts += ["--source", src]
        cs.tags.add("--source")
    else:
        src = None
    esc_p = rng.choice([0.0, 0.05, 0.3, 1.0])
    pool = []
    args, specs = [], []
    stdin = None
    used = set()
    bad = None
    if mode in ("auto", "jsonl") and rng.random() < 0.06:
        bad = rng.randrange(n_in)   # one input gets a line the tool must refuse
    corrupt = rng.randrange(n_in) if rng.random() < 0.05 else None   # damaged compressed data
    for k in range(n_in):
        n = max(1, total // n_in + rng.randint(-2, 2))
        if mode == "text":
            n = rng.randint(1, 3)
        what = mode
        if mode == "auto":
            what = rng.choices(["jsonl", "text", "dir", "stdin"], [0.6, 0.15, 0.15, 0.1])[0]
            if what == "stdin" and stdin is not None:
                what = "jsonl"
        if what == "dir":
            d = f"dir{k}"
            files = []
            for j in range(rng.randint(1, 3)):
                fk = rng.choice(["jsonl", "text"])
                docs = draw_docs(cs, rng, n if fk == "jsonl" else 1, fk, invalid, lone and fk == "jsonl", tokenizer, pool)
                data = jsonl_bytes(cs, rng, docs, field, sfield, sources, esc_p, None) if fk == "jsonl" \
                    else parts_bytes(docs[0])
                data, suf = compress(cs, rng, data)
                name = "%s%d%s%s" % ("abc"[j], j, ".jsonl" if fk == "jsonl" else rng.choice([".txt", ".md", ""]), suf)
                if rng.random() < 0.25:   # below a subdirectory: "all files below"
                    name = "m/" + name
                    cs.tags.add("directory input: subdirectory")
                cs.write(os.path.join(d, name), data)
                files.append((name, fk))
            if rng.random() < 0.3:   # "all files below but *.drs shards"
                cs.write(os.path.join(d, "zz.drs"), b"not a shard, skipped")
                cs.tags.add("directory input: a .drs skipped")
            for name, fk in sorted(files):
                specs.append({"path": os.path.join(d, name), "format": fk, "field": field, "source_field":
                              sfield if fk == "jsonl" else None, "source": src or d})
            args.append(d + "/")
            cs.tags.add("directory input")
            continue
        fk = {"auto": "jsonl", "jsonl": "jsonl", "lines": "lines", "text": "text", "stdin": "jsonl"}.get(what, what)
        if what == "text" and mode == "auto":
            fk = "text"
        docs = draw_docs(cs, rng, n if fk != "text" else 1, fk, invalid, lone and fk == "jsonl", tokenizer, pool)
        if fk == "jsonl":
            data = jsonl_bytes(cs, rng, docs, field, sfield, sources, esc_p, rng.randrange(len(docs)) if bad == k else None)
        elif fk == "lines":
            data = lines_bytes(cs, rng, docs)
        else:
            data = parts_bytes(docs[0])
        if rng.random() < 0.1:   # dropped from line-based input, part of a one-file document
            data = b"\xef\xbb\xbf" + data
            cs.tags.add("BOM" + (" in a text file" if fk == "text" else ""))
        data, suf = compress(cs, rng, data, force=corrupt == k)
        if corrupt == k and len(data) > 20 and data[:2] in (b"\x1f\x8b", b"\x28\xb5"):
            how = rng.choice(["truncated", "trailing", "flipped"])
            data = data[:-rng.randint(1, 8)] if how == "truncated" else \
                data + b"garbage" if how == "trailing" else data[:12] + bytes([data[12] ^ 0x55]) + data[13:]
            cs.corrupt = (k, how)
        if what == "stdin":
            cs.write("stdin.in", data)
            stdin = "stdin.in"
            args.append("-")
            specs.append({"path": "stdin.in", "format": "jsonl", "field": field, "source_field": sfield,
                          "source": src or "stdin"})
            cs.tags.add("stdin")
            continue
        for _ in range(50):
            stem = rng.choice(["part", "c4-train.00000-of-01024", "corpus", "x", "data.v2", "notes", "ünï", "a b"])
            if mode == "auto":
                ext = {"jsonl": rng.choice([".jsonl", ".ndjson", ".json"]), "text": rng.choice([".txt", ".md", ""])}[fk]
            else:
                ext = rng.choice([".txt", ".jsonl", ".dat", ""])
            name = f"{stem}{k}{ext}{suf}"
            if name not in used:
                break
        used.add(name)
        cs.write(name, data)
        args.append(name)
        specs.append({"path": name, "format": fk, "field": field, "source_field": sfield if fk == "jsonl" else None,
                      "source": src})
    return opts, args, specs, stdin, mode, bad is not None


# ======================================================================================
# stages

BAD_INPUT = (ValueError, KeyError, UnicodeDecodeError, EOFError, OSError, zlib.error, zstandard.ZstdError)


def expected_docs(specs):
    """The reference's documents, or the error of an input the tool must refuse."""
    out = []
    for s in specs:
        try:
            out.append((s, R.docs_of_input(s)))
        except BAD_INPUT as e:
            return None, (s, str(e))
    return out, None


def is_invalid(raw):
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def refusal_check(cs, stage, name, r, inputs, outdir):
    err = [l for l in r.err.strip("\n").split("\n") if l]
    named = any(any(os.path.basename(i.rstrip("/")) in l or (i == "-" and "stdin" in l) for i in inputs) for l in err)
    left = []
    if os.path.isdir(cs.p(outdir)):
        left = [f for f in os.listdir(cs.p(outdir)) if f.endswith(".drs") or ".tmp" in f]
    cs.check(stage, name, r.returncode != 0 and len(err) == 1 and named and not left,
             f"exit {r.returncode}, {len(err)} stderr lines {err[-1:]!r}, left {left[:3]}")


def tokenize_stage(cs):
    rng = random.Random(f"{cs.seed}:{cs.i}:corpus")
    tk = rng.choices(["byte", "gpt2", "bpe"], [0.4, 0.33, 0.27])[0]
    policy = rng.choices(["replace", "keep", "error"], [0.5, 0.35, 0.15])[0]
    invalid = rng.random() < 0.5
    lone = rng.random() < 0.5
    if policy == "error" and rng.random() < 0.6:   # error on valid text: as replace
        invalid = lone = False
    cs.corrupt = None
    cs.bulk = tk == "byte" and rng.random() < 0.06
    if cs.bulk:
        cs.tags.add("bulk: MBs of 2-9 KB documents")
    opts, args, specs, stdin, mode, bad = build_corpus(cs, rng, tk, invalid, lone)
    exp, err = expected_docs(specs)
    if cs.corrupt:   # the reference's gzip / zstandard refuse it too: which input, not why
        cs.tags.add("corrupt compressed input: " + cs.corrupt[1])
    raws = [d for _, ds in (exp or []) for d, _ in ds]
    has_invalid = any(is_invalid(d) for d in raws)
    if has_invalid:
        cs.tags.add("invalid UTF-8 in docs")
    threads = rng.choice([1, 1, 2, 3])
    popt = ["--invalid-utf8", policy] if policy != "replace" or rng.random() < 0.3 else []
    cs.tags.add("policy " + policy)
    common = opts + popt + ["--threads", threads]
    if err is None and not raws:
        err = (None, "no documents")
    # ---- error cases: a bad line, invalid UTF-8 under error, no documents
    if err is not None or (policy == "error" and has_invalid):
        tag = "refused: " + ("bad input" if err and err[0] else "no documents" if err else "invalid UTF-8")
        cs.tags.add(tag)
        r = cs.tool("dr-tokenize", "--tokenizer", "byte", *common, "-o", "tok", *args, stdin=stdin, ok_fail=True)
        # the inputs the one line may name: a bad line's, or (error) one with invalid UTF-8
        bad_inputs = []
        for sp in specs:
            try:
                ds = R.docs_of_input(sp)
                if not (policy == "error" and any(is_invalid(d) for d, _ in ds)):
                    continue
            except BAD_INPUT:
                pass
            bad_inputs.append("-" if sp["path"] == "stdin.in" else sp["path"])
        if err and not err[0]:
            bad_inputs = args
        refusal_check(cs, "tokenize", "tokenize." + tag.replace(" ", "_"), r, bad_inputs, "tok")
        cs.desc.append(tag)
        return None
    # ---- a trained vocabulary
    vocab = None
    if tk == "bpe":
        pol = "keep" if policy == "keep" else "replace"
        nv = rng.choice([258, 259, rng.randint(260, 320), rng.randint(300, 600), rng.randint(600, 3000)])
        for attempt in range(2):
            vd = f"voc{attempt}"
            r = cs.tool("dr-tokenize", "--train-bpe", nv, *common, "-o", vd, *args, stdin=stdin, ok_fail=True)
            cs.write(f"{vd}.err", r.err.encode())
            with open(cs.p("inputs.json"), "w") as f:
                json.dump(specs, f)
            cs.ref("bpe", "bpetrain", "--name", f"case{cs.i}.bpe{nv}", "--n-vocab", nv, "--inputs", "inputs.json",
                   "--policy", pol, "--stderr", f"{vd}.err", "--rc", r.returncode, vd)
            if r.returncode == 0:
                vocab = vd
                cs.tags.add("bpe trained")
                m = re.search(r"vocab\.bpe (?:PASS|FAIL) \d+ merges, (\d+) pairs banned", "\n".join(cs.log[-4:]))
                if m and int(m.group(1)):
                    cs.tags.add("bpe: pairs banned (step 5)")
                break
            m = re.search(r"gives only (\d+) merges", r.err)
            cs.tags.add("bpe: too few merges")
            if not m or int(m.group(1)) < 1:
                break
            nv = 257 + int(m.group(1))
        if vocab is None:
            tk = "byte"
        else:
            cs.desc.append(f"bpe {nv}")
    cs.tags.add("tokenizer " + tk)
    big = tk == "byte" and rng.random() < 0.08
    if big:   # documents of more than 1 MiB of tokens: several blocks
        k = len(args)
        data = b"".join(b"%d the quick brown fox \xe2\x80\x94 " % j for j in range(rng.randint(40000, 90000)))
        name = f"big{k}.txt" if mode in ("auto", "text") else None
        if name:
            cs.write(name, data)
            args.append(name)
            specs.append({"path": name, "format": "text", "source": opts[opts.index("--source") + 1]
                          if "--source" in opts else None})
            cs.tags.add("multi-block document")
    sz = rng.choice([None, None, 0.001, rng.choice([0.001, 0.002, 0.005, 0.02, 0.3])])
    t_opts = ["--tokenizer", tk]
    if tk == "gpt2" and rng.random() < 0.5:
        t_opts += ["--vocab-dir", os.path.join(ROOT, "data/gpt2")]
    if tk == "bpe":
        t_opts += ["--vocab-dir", vocab]
    if sz:
        t_opts += ["--shard-size", sz]
        cs.tags.add("tokenize --shard-size")
    prefix = rng.choice([None, "p", "shard.x"])
    if prefix:
        t_opts += ["--prefix", prefix]
    if rng.random() < 0.3:
        t_opts += ["--level", rng.randint(1, 9)]
    r = cs.tool("dr-tokenize", *t_opts, *common, "-o", "tok", *args, stdin=stdin, stdout="tok.out")
    with open(cs.p("tok.out")) as f:
        shards = [l.strip() for l in f if l.strip()]
    if len(shards) > 1:
        cs.tags.add("several shards")
    nb = [len(R.read_shard(cs.p(x), decode=False).blocks) for x in shards]
    if max(nb) > 1:
        cs.tags.add("shard of several blocks")
    if len(shards) > 8:
        cs.tags.add("many shards (>8)")
    with open(cs.p("inputs.json"), "w") as f:
        json.dump(specs, f)
    pol = "keep" if policy == "keep" else "replace"
    cs.tool("dr-cat", "--ids", "tok", stdout="cat.ids")
    cs.tool("dr-cat", "--list", "tok", stdout="cat.list")
    cs.tool("dr-cat", "tok", stdout="cat.txt")
    cs.tool("dr-cat", "--jsonl", "tok", stdout="cat.jsonl")
    vd = ["--vocab-dir", vocab if tk == "bpe" else os.path.join(ROOT, "data/gpt2")] if tk != "byte" else []
    cs.ref("tokenize", "tokcheck", "--name", f"case{cs.i}.tok", "--tokenizer", tk, *vd, "--inputs", "inputs.json",
           "--policy", pol, "--catids", "cat.ids", "--catlist", "cat.list", "--catraw", "cat.txt",
           "--catjsonl", "cat.jsonl", *shards)
    cs.ref("tokenize", "layout", "--name", f"case{cs.i}.tok", "--rule", "tokenize", "--mb", sz or 64, *shards)
    # the summary: documents, tokens, invalid UTF-8, documents with a source field, shards
    exp_docs = [x for _, ds in exp for x in ds]
    exp_docs += [(open(cs.p(s["path"]), "rb").read(), None) for s in specs[len(exp):]]
    def num(pat):
        m = re.search(pat, r.err)
        return int(m.group(1)) if m else None
    ntok = sum(R.read_shard(cs.p(s), decode=False).n_tokens for s in shards)
    n_inv = sum(1 for d, _ in exp_docs if is_invalid(d))
    want = (len(exp_docs), ntok, n_inv, len(shards))
    have = (num(r"(\d+) documents?, \d+ tokens"), num(r"\d+ documents?, (\d+) tokens"), num(r"(\d+) with invalid UTF-8"),
            num(r"(\d+) shards? in"))
    cs.check("tokenize", f"case{cs.i}.tok.summary", have == want, f"tool {have}, reference {want}: {r.err.strip()[-300:]!r}")
    if sfield_of(opts):
        nsf = count_source_field(specs, sfield_of(opts))
        got = num(r"(\d+) with a source field")
        cs.check("tokenize", f"case{cs.i}.tok.summary_source_field", got == nsf and ((nsf == 0) == ("warning" in r.err.lower())),
                 f"tool {got}, reference {nsf}; {r.err.strip()[-200:]!r}")
    cs.desc.append(f"{tk} {mode} {len(exp_docs)} docs {len(shards)} shards" + (f" {policy}" if policy != "replace" else ""))
    return {"tk": tk, "shards": shards, "vocab": vocab, "n_docs": len(exp_docs)}


def sfield_of(opts):
    return opts[opts.index("--source-field") + 1] if "--source-field" in opts else None


def count_source_field(specs, sfield):
    """Documents whose source came from the field: a string other than "" (§1.1)."""
    n = 0
    for s in specs:
        if s["format"] != "jsonl":
            continue
        with open(s["path"], "rb") as f:
            data = f.read()
        data = R.decompress_input(data)
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        for l in data.split(b"\n"):
            if not l.strip(b" \t\r\n"):
                continue
            o = R.json_line_raw(l)
            t = R.json_path(o, (s.get("field") or "text").encode())
            v = R.json_path(o, sfield.encode())
            if t and isinstance(v, bytes) and v:
                n += 1
    return n


def split_stage(cs, tok):
    rng = random.Random(f"{cs.seed}:{cs.i}:split")
    shards = tok["shards"]
    val = rng.choice([0.0, 0.1, 0.5, 1.0, round(rng.uniform(0, 1), rng.choice([1, 2, 3, 17]))])
    r = rng.random()
    tb = 0.0 if r < 0.35 else (1.0 - val if r < 0.5 else round(rng.uniform(0, 1 - val), rng.choice([1, 2, 17])))
    if val + tb > 1:
        tb = 0.0
    seed = rng.choice([0, rng.randint(1, 1000), U64, 2 ** 63, rng.randint(0, U64)])
    o = ["--val", repr(val), "--train-b", repr(tb), "--seed", seed]
    ro = ["--val", repr(val), "--train-b", repr(tb), "--seed", seed]
    cs.tags.add("split seed 2^64-1" if seed == U64 else "split seed >= 2^63" if seed >= 2 ** 63 else "split seed")
    if val in (0.0, 1.0):
        cs.tags.add(f"split val {val:g}")
    if tb and abs(val + tb - 1) < 1e-12:
        cs.tags.add("split val + train_b = 1")
    if rng.random() < 0.4:
        o.append("--dedup")
        ro.append("--dedup")
        cs.tags.add("split --dedup")
    srcs = sorted({s for p in shards for s in R.read_shard(cs.p(p), decode=False).sources})
    by_id = {}
    for p in shards:
        sh = R.read_shard(cs.p(p), decode=False)
        for d in sh.docs:
            by_id.setdefault(d[0], set()).add(sh.sources[d[4]])
    if any(len(v) > 1 for v in by_id.values()):
        cs.tags.add("split: copies of a document under several sources")
    absent = None
    if rng.random() < 0.5 and srcs:
        pick = rng.sample(srcs, rng.randint(1, len(srcs)))
        if rng.random() < 0.2:
            absent = rng.choice(["absent", "nope"])
            pick.insert(rng.randint(0, len(pick)), absent)
        comma = [s for s in pick if "," in s]
        if comma or rng.random() < 0.3:
            cli = [s for s in pick if "," not in s][:rng.randint(0, 2)]
            rest = [s for s in pick if s not in cli]
            if not rest:
                rest = [cli.pop()]
            if cli:
                o += ["--val-sources", ",".join(cli)]
                ro += ["--val-sources", ",".join(cli)]
            with open(cs.p("vs.txt"), "wb") as f:
                f.write(b"".join(s.encode() + b"\n" for s in rest))
            o += ["--val-sources-file", "vs.txt"]
            ro += ["--val-sources-file", "vs.txt"]
            cs.tags.add("split --val-sources-file")
        else:
            o += ["--val-sources", ",".join(pick)]
            ro += ["--val-sources", ",".join(pick)]
        cs.tags.add("split --val-sources")
    sz = rng.choice([None, None, 0.001, rng.choice([0.001, 0.003, 0.01])])
    if sz:
        o += ["--shard-size", sz]
        cs.tags.add("split --shard-size")
    th = rng.choice([1, 2, 3])
    inputs = ["tok"] if rng.random() < 0.3 else list(shards)
    if absent:   # a listed name no input document has is refused (a typo would give no Val)
        r = cs.tool("dr-split", *o, "--threads", th, "-o", "sp_absent", *inputs, ok_fail=True)
        err = [l for l in r.err.strip("\n").split("\n") if l]
        cs.check("split", f"case{cs.i}.split.absent_val_source_refused",
                 r.returncode != 0 and len(err) == 1 and f'no input document has the source "{absent}"' in err[0]
                 and not os.path.exists(cs.p("sp_absent")), f"exit {r.returncode} {err[-1:]!r}")
        cs.tags.add("split --val-sources absent name: refused")
        o = _drop_name(o, absent)
        ro = _drop_name(ro, absent)
        if not any(x in o for x in ("--val-sources", "--val-sources-file")):
            cs.tags.discard("split --val-sources")
    r = cs.tool("dr-split", *o, "--threads", th, "-o", "sp", *inputs, stdout="sp.out")
    cs.ref("split", "split", "--name", f"case{cs.i}.split", "--out", "sp", "--stdout", "sp.out", *ro, *shards)
    with open(cs.p("sp", "manifest.tsv")) as f:
        man = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    for s in ("train_a", "val", "train_b"):
        ps = [os.path.join("sp", p) for sp, p in man if sp == s]
        if ps:
            cs.ref("split", "layout", "--name", f"case{cs.i}.split.{s}", "--rule", "split", "--mb", sz or 64, *ps)
    # the same bytes from the inputs renamed and in another order, another thread count
    os.makedirs(cs.p("alt"))
    alt = []
    for k, s in enumerate(shards):
        a = os.path.join("alt", "%02d-%s" % (rng.randint(0, 99), k) + ".drs")
        shutil.copy(cs.p(s), cs.p(a))
        alt.append(a)
    rng.shuffle(alt)
    cs.tool("dr-split", *o, "--threads", rng.choice([1, 2, 3]), "-o", "sp2", *alt, stdout="sp2.out")
    same = subprocess.run(["diff", "-r", "sp", "sp2"], cwd=cs.dir, stdout=subprocess.PIPE).returncode == 0
    cs.check("split", f"case{cs.i}.split.input_order", same, "diff -r sp sp2")
    cs.desc.append(f"split val {val:g} tb {tb:g}")
    if man and rng.random() < 0.25:   # a manifest as the input: every split's shards
        v2, s2 = rng.choice([0.2, 0.5, 0.9]), rng.randint(0, U64)
        r = cs.tool("dr-split", "--val", v2, "--seed", s2, *rng.choice([[], ["--dedup"]]), "-o", "sp3",
                    "sp/manifest.tsv", stdout="sp3.out")
        cs.ref("split", "split", "--name", f"case{cs.i}.resplit", "--out", "sp3", "--stdout", "sp3.out", "--val", v2,
               "--seed", s2, *(["--dedup"] if "--dedup" in r.args else []), *[os.path.join("sp", p) for _, p in man])
        cs.tags.add("split of a manifest")
    return man


def _drop_name(o, name):
    """The options without the source name (from --val-sources a,b or the names file)."""
    o = list(o)
    if "--val-sources" in o:
        k = o.index("--val-sources")
        rest = [x for x in o[k + 1].split(",") if x != name]
        o[k:k + 2] = ["--val-sources", ",".join(rest)] if rest else []
    if "--val-sources-file" in o:
        p = o[o.index("--val-sources-file") + 1]
        with open(p if os.path.isabs(p) else os.path.join(CUR[0], p), "rb") as f:
            names = [l for l in f.read().split(b"\n") if l and l != name.encode()]
        with open(os.path.join(CUR[0], p), "wb") as f:
            f.write(b"".join(x + b"\n" for x in names))
        if not names:
            k = o.index("--val-sources-file")
            del o[k:k + 2]
    return o


CUR = [None]


def examples_stage(cs, tok, man):
    rng = random.Random(f"{cs.seed}:{cs.i}:examples")
    for _ in range(rng.randint(1, 2)):
        L = rng.choice([1, 2, 3, rng.randint(1, 12), rng.randint(8, 40)])
        mt = rng.choice([2, 2, rng.randint(2, L + 2)])
        cs.tags.add(f"examples L {'1' if L == 1 else '<=3' if L <= 3 else '>3'}")
        if mt > 2:
            cs.tags.add("examples min_tokens > 2")
        r = rng.random()
        if man and r < 0.4:
            sp = rng.choice(sorted({m[0] for m in man}))
            src = ["--split", sp, "sp/manifest.tsv"]
            shards = [os.path.join("sp", p) for s, p in man if s == sp]
            cs.tags.add("examples manifest --split")
        else:
            shards = list(tok["shards"])
            if len(shards) > 1 and rng.random() < 0.4:
                shards = rng.sample(shards, rng.randint(1, len(shards)))
            src = shards
        ntok = sum(R.read_shard(s, decode=False).n_tokens for s in shards)
        while ntok / L > 150000:   # keep the case small
            L *= 4
        r = cs.tool("dr-cat", "--examples", "--ids", "--seq-len", L, "--min-tokens", mt, *src, stdout="ex.txt",
                    ok_fail=True)
        n = len(R.examples_of([R.read_shard(s) for s in shards], L, mt))
        if n == 0:   # no example at all: refused, "no examples"
            cs.check("examples", f"case{cs.i}.ex.L{L}.m{mt}.none_refused", r.returncode != 0 and "no examples" in r.err,
                     f"exit {r.returncode} {r.err.strip()[-200:]!r}")
            cs.tags.add("examples: none, refused")
            continue
        if r.returncode != 0:
            cs.check("examples", f"case{cs.i}.ex.L{L}.m{mt}.run", False, f"exit {r.returncode} {r.err.strip()[-300:]!r}")
            continue
        cs.ref("examples", "examples", "--name", f"case{cs.i}.ex.L{L}.m{mt}", "--seq-len", L, "--min-tokens", mt,
               "--catex", "ex.txt", *shards)


# ---- scores

def fmt_score(rng, x, style):
    if style == "9g":
        return "%.9g" % x
    if style == "17g":
        return "%.17g" % x
    if style == "repr":
        s = repr(float(x))
        return s if "inf" not in s else "%.17g" % x
    if style == "E":
        return ("%.6E" % x)
    if style == "int" and x == int(x) and abs(x) < 1e15:
        return "%d" % int(x)
    if style == "dot" and x == int(x) and abs(x) < 1e15:
        return "%d." % int(x)
    return "%.17g" % x


def draw_scores(rng, n):
    kind = rng.choice(["normal", "normal", "ties", "const", "int", "huge", "tiny", "mixed", "negzero"])
    if kind == "normal":
        v = [rng.gauss(0, 1) for _ in range(n)]
    elif kind == "ties":
        lv = [round(rng.uniform(-3, 3), 2) for _ in range(rng.randint(2, 4))]
        v = [rng.choice(lv) for _ in range(n)]
    elif kind == "const":
        v = [rng.choice([0.75, 0.0, -2.5, 1e-30])] * n
    elif kind == "int":
        v = [float(rng.randint(-5, 5)) for _ in range(n)]
    elif kind == "huge":
        v = [rng.choice([-1, 1]) * rng.uniform(1e37, 3.4e38) for _ in range(n)]
    elif kind == "tiny":
        v = [rng.choice([-1, 1]) * 10 ** rng.uniform(-44, -30) for _ in range(n)]
    elif kind == "negzero":
        v = [rng.choice([0.0, -0.0, 1.0, -1.0]) for _ in range(n)]
    else:
        v = [rng.choice([rng.gauss(0, 1e3), rng.uniform(-1e38, 1e38), 10 ** rng.uniform(-40, 3), -0.0,
                         float(rng.randint(-3, 3)), 3.4e38, -3.4e38, 1.5]) for _ in range(n)]
    return kind, v


def write_scores(cs, rng, path, ex, vals, order=None, styles=None):
    """ex: [(example id, source, tokens)]; vals: the score of each, as text."""
    idx = list(range(len(ex))) if order is None else order
    lines = ["%s\t%s\t%s\t%d" % (ex[i][0], vals[i], ex[i][1], len(ex[i][2])) for i in idx]
    tail = "\n" * rng.choice([1, 1, 1, 2, 3])
    with open(cs.p(path), "w", encoding="utf-8") as f:
        f.write(R.SCORES_HEADER + "\n" + "\n".join(lines) + (tail if lines else ""))


def filter_stage(cs, tok, man):
    rng = random.Random(f"{cs.seed}:{cs.i}:filter")
    L = rng.choice([1, 2, rng.randint(2, 10), rng.randint(8, 48)])
    mt = rng.choice([2, 2, 2, rng.randint(2, L + 2)])
    if man and rng.random() < 0.3:
        sp = rng.choice(sorted({m[0] for m in man}))
        shards = [os.path.join("sp", p) for s, p in man if s == sp]
        tin = ["--split", sp, "sp/manifest.tsv"]
    else:
        shards = list(tok["shards"])
        if len(shards) > 1 and rng.random() < 0.5:
            shards = rng.sample(shards, rng.randint(1, len(shards)))   # shards in the order given
        tin = list(shards)
    ntok = sum(R.read_shard(cs.p(s), decode=False).n_tokens for s in shards)
    while ntok / L > 150000:   # keep the case small: at most ~150k examples
        L *= 4
    ex = R.examples_of([R.read_shard(cs.p(s)) for s in shards], L, mt)
    if not ex:
        cs.desc.append("filter: no examples")
        return
    kind, vals = draw_scores(rng, len(ex))
    style = rng.choice(["9g", "17g", "repr", "E", "int", "dot", "mix"])
    txt = [fmt_score(rng, v, style if style != "mix" else rng.choice(["9g", "17g", "repr", "E", "int", "dot"]))
           for v in vals]
    order = list(range(len(ex)))
    if rng.random() < 0.6:
        rng.shuffle(order)
        cs.tags.add("scores lines shuffled")
    write_scores(cs, rng, "scores.tsv", ex, txt, order)
    cs.tags.add("scores " + kind)
    ndup = len(ex) - len({e[0] for e in ex})
    if ndup:
        cs.tags.add("scores duplicate ids")
    base = ["--config", os.path.join(ROOT, "configs/tiny.yaml"), "--set", f"data.seq_len={L}",
            "--set", f"data.min_tokens={mt}"]
    rb = ["--seq-len", L, "--min-tokens", mt]
    n_runs = rng.randint(2, 5)
    for j in range(n_runs):
        pol = rng.choice(["keep", "keep-middle", "per-batch", "cdf", "random", "min-score", "config"])
        inv = rng.random() < 0.4
        docs = rng.choice([None, None, None, "mean", "min", "max", "first"])
        F = rng.choice([1.0, 0.5, 0.3, 0.6, 0.1, 0.01, round(rng.uniform(0.01, 1), rng.choice([2, 3, 17]))])
        Nu = len(ex)
        if rng.random() < 0.25:   # F·N a half-integer (round's half case) or F = k/N
            F = (rng.randint(0, Nu - 1) + rng.choice([0.5, 1.0])) / Nu
            cs.tags.add("filter F at a count edge")
        if F <= 0 or F > 1:
            F = 0.5
        seed = None
        seedopt = []
        r = rng.random()
        if pol in ("cdf", "random", "config") and r < 0.5:
            seed = rng.choice([rng.randint(0, 1000), U64, rng.randint(0, U64)])
            seedopt = ["--seed", seed]
        elif pol in ("cdf", "random", "config") and r < 0.7:
            seed = rng.choice([rng.randint(0, 1000), U64])
            seedopt = ["--set", f"experiment.seed={seed}"]
            cs.tags.add("filter experiment.seed")
        t = []
        refpol = pol
        B = None
        if pol == "keep":
            t = ["--keep", repr(F)]
        elif pol == "keep-middle":
            t = ["--keep-middle", repr(F)]
        elif pol == "random":
            t = ["--random", repr(F)]
        elif pol == "per-batch":
            B = rng.choice([1, 2, 3, rng.randint(1, 10), rng.randint(5, 100)])
            if rng.random() < 0.3:   # F·B at (or, in double, just above) an integer
                F = rng.randint(1, B) / B
                cs.tags.add("filter per-batch F = k/B")
            t = ["--per-batch", B] + rng.choice([["--keep", repr(F)], ["--fraction", repr(F)]])
        elif pol == "cdf":
            t = ["--cdf"] + rng.choice([["--keep", repr(F)], ["--fraction", repr(F)]])
        elif pol == "config":
            cp = rng.choice(["filter", "per_batch", "cdf", "keep_middle", "random"])
            refpol = {"filter": "keep", "per_batch": "per-batch", "keep_middle": "keep-middle"}.get(cp, cp)
            B = rng.randint(1, 20)
            t = ["--set", f"deploy.policy={cp}", "--set", f"deploy.batch={B}"] + \
                rng.choice([["--set", f"deploy.keep={F!r}"], ["--fraction", repr(F)]])
            if refpol != "per-batch":
                B = None
            cs.tags.add("filter deploy.policy " + cp)
        s_text = None
        if pol == "min-score":
            q = rng.random()
            sv = sorted(set(vals))
            if q < 0.4:
                s_text = rng.choice(txt)          # exactly a score as the file has it
            elif q < 0.6 and len(sv) > 1:
                k = rng.randrange(len(sv) - 1)
                s_text = repr((sv[k] + sv[k + 1]) / 2)
            elif q < 0.75:
                s_text = rng.choice(["1e300", "-1e300", "3.4e38", "-3.4e38"])
            elif q < 0.85:
                s_text = rng.choice(["0", "-0", "0.0"])
            else:
                s_text = "%.17g" % rng.choice(vals)
            if rng.random() < 0.15:   # strtod's other spellings of the same number
                v = float(s_text)
                alt = ["+" + s_text if not s_text.startswith("-") else s_text, "%.3e" % v, "%.17E" % v]
                if 0 < abs(v) < 1 and s_text.lstrip("-").startswith("0."):
                    alt.append(s_text.replace("0.", ".", 1))
                s_text = rng.choice(alt)
                cs.tags.add("filter --min-score spelled otherwise")
            t = ["--min-score", s_text]
        refseed = seed if seed is not None else 0
        pref = f"k{j}"
        out = f"kept{j}"
        extra = []
        if rng.random() < 0.25:
            extra += ["--shard-size", rng.choice(["0.001", "0.002", "0.01"])]
            cs.tags.add("filter --shard-size")
        if rng.random() < 0.3:
            extra += ["--prefix", pref]
        if inv:
            extra.append("--invert")
        if docs:
            extra += ["--documents", docs]
        name = f"case{cs.i}.filter{j}.{refpol}{'.inv' if inv else ''}{'.doc-' + docs if docs else ''}"
        # the reference's count first: a selection of nothing is refused (but --min-score)
        usc = None
        sc = _aligned_scores(ex, txt)
        if docs:
            units = R.doc_units([R.read_shard(cs.p(s)) for s in shards], L, mt, sc, docs)
            usc = [u[0] for u in units]
        else:
            usc = sc
        Fv = float(s_text) if pol == "min-score" else F
        kept = R.select_ref(refpol, Fv, usc, inv, B, refseed)
        r = cs.tool("dr-filter", "--scores", "scores.tsv", *t, *seedopt, *extra, *base, "-o", out, *tin,
                    stdout=f"{out}.out", ok_fail=True)
        cs.write(f"{out}.err", r.err.encode())
        cs.tags.add("filter " + refpol + (" --invert" if inv else "") + (" --documents " + docs if docs else ""))
        if not kept and pol != "min-score":
            cs.tags.add("filter: nothing kept, refused")
            cs.check("filter", name + ".none_kept_refused", r.returncode != 0
                     and ("no document kept" if docs else "no example kept") in r.err
                     and not (os.path.isdir(cs.p(out)) and os.listdir(cs.p(out))),
                     f"exit {r.returncode} {r.err.strip()[-200:]!r}")
            continue
        if r.returncode != 0:
            cs.check("filter", name + ".run", False, f"exit {r.returncode}: {r.err.strip()[-300:]!r}")
            continue
        with open(cs.p(f"{out}.out")) as f:
            outs = [l.strip() for l in f if l.strip()]
        fl = ["--min-score", s_text] if pol == "min-score" else ["--fraction", repr(F)]
        cs.ref("filter", "filter", "--name", name, *rb, "--scores", "scores.tsv", "--policy", refpol, *fl,
               *(["--batch", B] if B else []), "--seed", refseed, *(["--invert"] if inv else []),
               *(["--documents", docs] if docs else []), "--summary", f"{out}.err", "--out-shards", ",".join(outs),
               *shards)
    # ---- per-shard --min-score runs against one run over all the shards
    if len(shards) > 1 and rng.random() < 0.6:
        sc = _aligned_scores(ex, txt)
        inv = rng.random() < 0.4
        docs = rng.choice([None, None, "mean", "min", "max", "first"])
        s_text = rng.choice(txt) if rng.random() < 0.6 else "%.17g" % rng.choice(sc)
        xo = (["--invert"] if inv else []) + (["--documents", docs] if docs else [])
        cs.tool("dr-filter", "--scores", "scores.tsv", "--min-score", s_text, *xo, *base, "-o", "ms_all", *shards,
                stdout="ms_all.out")
        k = 0
        per_out = []
        for si, s in enumerate(shards):
            exs = R.examples_of([R.read_shard(cs.p(s))], L, mt)
            vs = ["%.17g" % v for v in sc[k:k + len(exs)]]   # the scores the global run gives them
            k += len(exs)
            if not exs:
                continue
            o2 = list(range(len(exs)))
            rng.shuffle(o2)
            write_scores(cs, rng, f"ms{si}.tsv", exs, vs, o2)
            cs.tool("dr-filter", "--scores", f"ms{si}.tsv", "--min-score", s_text, *xo, *base, "--prefix", f"p{si:03d}",
                    "-o", "ms_part", s, stdout=f"ms{si}.out")
            with open(cs.p(f"ms{si}.out")) as f:
                per_out += [l.strip() for l in f if l.strip()]
        with open(cs.p("ms_all.out")) as f:
            all_out = [l.strip() for l in f if l.strip()]
        a = [(d[0], src, list(map(int, t))) for p in all_out for d, src, t in R.read_shard(cs.p(p)).all_tokens()]
        b = [(d[0], src, list(map(int, t))) for p in per_out for d, src, t in R.read_shard(cs.p(p)).all_tokens()]
        cs.check("filter", f"case{cs.i}.min-score.per_shard{'.inv' if inv else ''}{'.doc-' + docs if docs else ''}",
                 a == b, f"one run {len(a)} units, {len(shards)} per-shard runs {len(b)} (S {s_text})")
        cs.tags.add("filter per-shard --min-score")
    # ---- dr-cat --scores --top / --bottom on all or some of the shards
    for _ in range(rng.randint(1, 2)):
        sub = shards if len(shards) == 1 or rng.random() < 0.5 else rng.sample(shards, rng.randint(1, len(shards)))
        if not R.examples_of([R.read_shard(cs.p(s)) for s in sub], L, 2):
            continue
        tb = rng.choice(["--top", "--bottom"])
        K = rng.choice([1, 3, rng.randint(1, 50), 100000])
        r = cs.tool("dr-cat", "--jsonl", "--ids", "--scores", "scores.tsv", tb, K, "--seq-len", L, *sub,
                    stdout="top.jsonl", ok_fail=True)
        if r.returncode != 0:
            cs.check("cat", f"case{cs.i}.cat{tb}.run", False, r.err.strip()[-300:])
            continue
        cs.ref("cat", "catscores", "--name", f"case{cs.i}.cat{tb}{K}", "--seq-len", L, "--scores", "scores.tsv",
               tb, K, "--catjsonl", "top.jsonl", *sub)
        cs.tags.add("cat " + tb)
    cs.desc.append(f"filter L {L} N {len(ex)} {kind}")


def _aligned_scores(ex, txt):
    """docs/deploy.md "Matching scores to shards": an id's scores, lowest first, go to its
    examples in shard order."""
    by = {}
    for e, t in zip(ex, txt):
        by.setdefault(e[0], []).append(float(t))
    for v in by.values():
        v.sort()
    used = {}
    out = []
    for e in ex:
        k = used.get(e[0], 0)
        used[e[0]] = k + 1
        out.append(by[e[0]][k])
    return out


def run_case(cs):
    t0 = time.time()
    CUR[0] = cs.dir
    cwd = os.getcwd()
    os.chdir(cs.dir)   # the inputs' paths are relative to the case's directory
    try:
        tok = tokenize_stage(cs)
        if tok:
            man = split_stage(cs, tok)
            examples_stage(cs, tok, man)
            filter_stage(cs, tok, man)
    except ToolError as e:
        cs.errors.append(str(e))
    except Exception:
        cs.errors.append("harness: " + traceback.format_exc()[-1500:])
    finally:
        os.chdir(cwd)
    cs.seconds = time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--only", default=None, help="case numbers, comma-separated")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--verbose", action="store_true", help="print every command and CHECK line")
    a = ap.parse_args()
    bin_dir = os.path.realpath(a.bin)
    for t in ("dr-tokenize", "dr-split", "dr-cat", "dr-filter"):
        if not os.access(os.path.join(bin_dir, t), os.X_OK):
            print(f"random_formats: {bin_dir}/{t} missing (make)")
            return 2
    if not os.path.isfile(os.path.join(ROOT, "data/gpt2/encoder.json")):
        print("random_formats: data/gpt2 missing (make vocab)")
        return 2
    root = os.path.realpath(a.workdir or tempfile.mkdtemp(prefix="xfrand."))
    os.makedirs(root, exist_ok=True)
    if a.keep:
        print(f"# work dir: {root}")
    idx = [int(x) for x in a.only.split(",")] if a.only else range(a.cases)
    stages, cover, fails, errs = {}, {}, [], []
    nchecks = 0
    tstart = time.time()
    for i in idx:
        cs = Case(root, a.seed, i, bin_dir, a.verbose)
        run_case(cs)
        bad = [c for c in cs.checks if not c[2]]
        nchecks += len(cs.checks)
        for st in sorted({c[0] for c in cs.checks}):
            stages[st] = stages.get(st, 0) + 1
        for tg in cs.tags:
            cover[tg] = cover.get(tg, 0) + 1
        status = "FAIL" if bad or cs.errors else "ok"
        print(f"case {i:4d} {status:4s} {len(cs.checks):3d} checks {cs.seconds:5.1f}s  " + "; ".join(cs.desc))
        if bad or cs.errors:
            if not a.verbose:
                print("\n".join("    " + (s if len(s) < 700 else s[:500] + " ... " + s[-150:])
                                 for s in cs.log if not s.startswith("CHECK ") or " FAIL " in s)[-20000:])
            for e in cs.errors:
                print("    ERROR " + e)
            fails += [(i, c) for c in bad]
            errs += [(i, e) for e in cs.errors]
            print(f"    repro: tests/xcheck/random_formats.py --seed {a.seed} --only {i} --keep --verbose")
        elif not a.keep:
            shutil.rmtree(cs.dir, ignore_errors=True)
        sys.stdout.flush()
    print(f"\n== {len(idx)} cases (seed {a.seed}) in {time.time() - tstart:.0f} s, {nchecks} checks; "
          "cases with a check of each stage: " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())))
    print("== coverage (cases):")
    ks = sorted(cover)
    for j in range(0, len(ks), 3):
        print("   " + "".join(f"{k[:40]:40s} {cover[k]:4d}   " for k in ks[j:j + 3]))
    if not a.keep and not fails and not errs:
        shutil.rmtree(root, ignore_errors=True)
    if fails or errs:
        print(f"random_formats: {len(fails)} FAIL(s), {len(errs)} error(s) in cases "
              f"{sorted({i for i, _ in fails} | {i for i, _ in errs})}")
        return 1
    print("random_formats: all checks PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
