#!/usr/bin/python3
"""formats_ref.py — an independent reader/checker of datarater's file formats.

Written from docs/formats.md, docs/deploy.md, DESIGN.md §2 and the tools' --help only
(none of lib/ or tools/ was read). dr-filter's selection (select_ref) follows docs/deploy.md's
"The counts, exactly" and "The selection, exactly" to the letter. Used by tests/xcheck/formats.sh; every check prints
"CHECK <name> PASS|FAIL <detail>" and the process exits 1 when any check failed.

Library part:
  read_shard(path)            strict reader of a .drs shard (header, checksums, index,
                              blocks, zstd frames, documents, sources, tokenizer spec)
  fp_byte(), load_gpt2(dir)   tokenizer fingerprints (§1.2) and an independent GPT-2
                              byte-level BPE encoder (OpenAI's encoder.py algorithm)
  TrainedBPE(dir), bpe_train_ref(docs, N, policy), bpe_files_ref()
                              a --train-bpe vocabulary (§1.3): its encoding (tiktoken's
                              rule), the training written out, encoder.json / vocab.bpe
  pretokens_bytes(raw, policy) GPT-2's pre-tokens of raw bytes; keep: each maximal invalid
                              sequence a pre-token by itself that counts as \S
  json_line_raw(line)         a JSON line with its strings as bytes (raw invalid UTF-8
                              kept, a lone surrogate escape as its three bytes, §1.1)
  docs_of_input(spec)         the documents of one dr-tokenize input (§1.1; decompress_input
                              for gzip members / zstd frames, strict about truncation)
  windows(n, L, min_tokens)   example windows (§2)
  split_of(...)               the split rule of §3 (incl. --val-sources), canon_order()
  read_scores(path)           scores.tsv (§4)
  read_safetensors(path)      safetensors (§5)

Command line: formats_ref.py <subcommand> ...   (see main() at the end): verify, dump,
tokcheck, blocks, layout, bpetrain, split, examples, catscores, filter, safetensors, state,
corrupt. tests/xcheck/random_formats.py runs them on random corpora and options.
"""
import codecs
import gzip
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import unicodedata

import numpy as np
import xxhash
import zstandard

# --------------------------------------------------------------------------- checks
FAILS = 0


def check(name, ok, detail=""):
    global FAILS
    if not ok:
        FAILS += 1
    print("CHECK %s %s %s" % (name, "PASS" if ok else "FAIL", detail), flush=True)
    return ok


def xxh64(b, seed=0):
    return xxhash.xxh64_intdigest(b, seed)


# --------------------------------------------------------------------------- shards
class ShardError(Exception):
    pass


class Shard:
    """A verified shard. Attributes: path, version, width, vocab, fingerprint, n_docs,
    n_tokens, index_off, index_size, hdr_ck, index_ck, blocks [(off, csize, usize,
    cck, uck)], docs [(id, block, tokoff, length, source_id)], sources [str], spec."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self._blocks_cache = {}

    def block_tokens(self, b):
        """Decode and verify block b; returns a numpy uint32 array."""
        if b in self._blocks_cache:
            return self._blocks_cache[b]
        off, csize, usize, cck, uck = self.blocks[b]
        frame = self.data[off:off + csize]
        p = self.path
        if xxh64(frame) != cck:
            raise ShardError("%s: block %d: checksum of the compressed frame does not match" % (p, b))
        try:
            dobj = zstandard.ZstdDecompressor().decompressobj()
            raw = dobj.decompress(frame)
            if not dobj.eof:
                raise ShardError("%s: block %d: zstd frame is incomplete" % (p, b))
            if dobj.unused_data:
                raise ShardError("%s: block %d: bytes after the zstd frame" % (p, b))
        except zstandard.ZstdError as e:
            raise ShardError("%s: block %d: zstd error: %s" % (p, b, e))
        if len(raw) != usize:
            raise ShardError("%s: block %d: uncompressed size %d, index says %d" % (p, b, len(raw), usize))
        if xxh64(raw) != uck:
            raise ShardError("%s: block %d: checksum of the uncompressed bytes does not match" % (p, b))
        dt = "<u2" if self.width == 2 else "<u4"
        toks = np.frombuffer(raw, dtype=dt).astype(np.uint32)
        if len(toks) and int(toks.max()) >= self.vocab:
            raise ShardError("%s: block %d: token id %d >= vocab size %d" % (p, b, int(toks.max()), self.vocab))
        self._blocks_cache = {b: toks}  # keep one block
        return toks

    def doc_tokens(self, i):
        did, b, o, n, s = self.docs[i]
        return self.block_tokens(b)[o:o + n]

    def all_tokens(self):
        """[(doc tuple, source name, tokens)] of every document, every block verified."""
        out = []
        for i, d in enumerate(self.docs):
            out.append((d, self.sources[d[4]], self.doc_tokens(i)))
        return out

    def verify_all_blocks(self):
        for b in range(len(self.blocks)):
            self.block_tokens(b)


def read_shard(path, decode=True):
    """Open a shard with every check of docs/formats.md §1 'Reading' (and the structural
    rules of §1: blocks back to back, documents tiling the blocks). decode=True also
    decodes and verifies every block. Raises ShardError('<path>: what')."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ShardError("%s: cannot read: %s" % (path, e.strerror))
    p = path
    sz = len(data)
    if sz < 72:
        raise ShardError("%s: truncated: %d bytes, shorter than the 72-byte header" % (p, sz))
    if data[0:8] != b"DRSHARD1":
        raise ShardError("%s: bad magic" % p)
    version, width, vocab, reserved = struct.unpack_from("<IIII", data, 8)
    fp, n_docs, n_tokens, ioff, isize, hck = struct.unpack_from("<QQQQQQ", data, 24)
    if xxh64(data[0:64]) != hck:
        raise ShardError("%s: header checksum does not match" % p)
    if version != 1:
        raise ShardError("%s: format version %d, expected 1" % (p, version))
    want_w = 2 if vocab <= 65535 else 4
    if width != want_w:
        raise ShardError("%s: token width %d for vocab size %d (expected %d)" % (p, width, vocab, want_w))
    if vocab == 0:
        raise ShardError("%s: vocab size 0" % p)
    if reserved != 0:
        raise ShardError("%s: reserved header field is %d, not 0" % (p, reserved))
    if ioff < 72 or ioff + isize != sz:
        raise ShardError("%s: index offset %d + size %d != file size %d (truncated?)" % (p, ioff, isize, sz))
    if isize < 24:
        raise ShardError("%s: index size %d too small" % (p, isize))
    idx = data[ioff:]
    if xxh64(idx[:-8]) != struct.unpack_from("<Q", idx, len(idx) - 8)[0]:
        raise ShardError("%s: index checksum does not match" % p)
    nb, ns, speclen, ires = struct.unpack_from("<IIII", idx, 0)
    if ires != 0:
        raise ShardError("%s: reserved index field is %d, not 0" % (p, ires))
    pos = 16
    need = 16 + 32 * nb + 24 * n_docs + 4 * ns + speclen + 8
    if need > isize:
        raise ShardError("%s: index too small for %d blocks, %d documents" % (p, nb, n_docs))
    blocks = []
    expect_off = 72
    for b in range(nb):
        off, cs, us, cck, uck = struct.unpack_from("<QIIQQ", idx, pos)
        pos += 32
        if off != expect_off:
            raise ShardError("%s: block %d at offset %d, expected %d (blocks back to back)" % (p, b, off, expect_off))
        if cs == 0 or off + cs > ioff:
            raise ShardError("%s: block %d (offset %d, %d bytes) outside the block area" % (p, b, off, cs))
        if us % width:
            raise ShardError("%s: block %d: uncompressed size %d not a multiple of the width" % (p, b, us))
        expect_off = off + cs
        blocks.append((off, cs, us, cck, uck))
    if expect_off != ioff:
        raise ShardError("%s: blocks end at %d, index starts at %d" % (p, expect_off, ioff))
    docs = []
    for i in range(n_docs):
        docs.append(struct.unpack_from("<QIIII", idx, pos))
        pos += 24
    sources = []
    for s in range(ns):
        if pos + 4 > isize - 8:
            raise ShardError("%s: source table overruns the index" % p)
        (ln,) = struct.unpack_from("<I", idx, pos)
        pos += 4
        if pos + ln > isize - 8:
            raise ShardError("%s: source %d overruns the index" % (p, s))
        nm = idx[pos:pos + ln]
        pos += ln
        if b"\0" in nm or b"\t" in nm or b"\n" in nm:
            raise ShardError("%s: source %d name holds NUL, TAB or newline" % (p, s))
        try:
            sources.append(nm.decode("utf-8"))
        except UnicodeDecodeError:
            raise ShardError("%s: source %d name is not UTF-8" % (p, s))
    if pos + speclen + 8 != isize:
        raise ShardError("%s: index size %d, its contents take %d" % (p, isize, pos + speclen + 8))
    spec = idx[pos:pos + speclen].decode("utf-8", "strict")
    # documents tile the blocks exactly, in order
    cur_b, cur_o, total = 0, 0, 0
    per_block = [0] * nb
    for i, (did, b, o, n, s) in enumerate(docs):
        if s >= ns:
            raise ShardError("%s: document %d: source id %d >= %d sources" % (p, i, s, ns))
        if b >= nb:
            raise ShardError("%s: document %d: block %d >= %d blocks" % (p, i, b, nb))
        if b == cur_b and o == cur_o:
            pass
        elif b == cur_b + 1 and o == 0 and cur_o * width == blocks[cur_b][2]:
            cur_b, cur_o = b, 0
        else:
            raise ShardError("%s: document %d (block %d, offset %d) does not follow the previous one "
                             "(block %d, offset %d)" % (p, i, b, o, cur_b, cur_o))
        if (o + n) * width > blocks[b][2]:
            raise ShardError("%s: document %d runs past the end of block %d" % (p, i, b))
        cur_o = o + n
        per_block[b] += n
        total += n
    for b in range(nb):
        if per_block[b] * width != blocks[b][2]:
            raise ShardError("%s: block %d holds %d bytes, its documents %d tokens" % (p, b, blocks[b][2], per_block[b]))
        if per_block[b] == 0:
            raise ShardError("%s: block %d holds no document" % (p, b))
    if total != n_tokens:
        raise ShardError("%s: header token count %d, documents hold %d" % (p, n_tokens, total))
    sh = Shard(p, data)
    sh.version, sh.width, sh.vocab, sh.fingerprint = version, width, vocab, fp
    sh.n_docs, sh.n_tokens, sh.index_off, sh.index_size, sh.hdr_ck = n_docs, n_tokens, ioff, isize, hck
    sh.index_ck = struct.unpack_from("<Q", data, sz - 8)[0]
    sh.blocks, sh.docs, sh.sources, sh.spec = blocks, docs, sources, spec
    sh.content_key = xxh64(struct.pack("<QQ", sh.hdr_ck, sh.index_ck))
    if decode:
        sh.verify_all_blocks()
    return sh


def write_shard_bytes(width, vocab, fp, blocks_tokens, docs, sources, spec, level=1, frames=None,
                      entries_fix=None, hdr_fix=None, gap=0, idx_reserved=0):
    """Build a shard from scratch with valid checksums (used to forge damage that only the
    structural checks can see). blocks_tokens: numpy arrays; docs: [(id, block, off, len, src)].
    frames: replace the compressed frames (checksums recomputed over them); entries_fix(b, entry
    tuple) -> entry tuple; hdr_fix(dict) edits header fields; gap: bytes between blocks."""
    dt = "<u2" if width == 2 else "<u4"
    body = b""
    ents = b""
    off = 72
    for b, t in enumerate(blocks_tokens):
        raw = np.asarray(t, dtype=dt).tobytes()
        fr = frames[b] if frames else zstandard.ZstdCompressor(level=level).compress(raw)
        e = (off, len(fr), len(raw), xxh64(fr), xxh64(raw))
        if entries_fix:
            e = entries_fix(b, e)
        ents += struct.pack("<QIIQQ", *e)
        body += fr + b"\0" * gap
        off += len(fr) + gap
    idx = struct.pack("<IIII", len(blocks_tokens), len(sources), len(spec.encode()), idx_reserved) + ents
    for d in docs:
        idx += struct.pack("<QIIII", *d)
    for s_ in sources:
        idx += struct.pack("<I", len(s_.encode())) + s_.encode()
    idx += spec.encode()
    idx += struct.pack("<Q", xxh64(idx))
    h = dict(version=1, width=width, vocab=vocab, reserved=0, fp=fp, n_docs=len(docs),
             n_tokens=sum(d[3] for d in docs), ioff=off, isize=len(idx))
    if hdr_fix:
        hdr_fix(h)
    hdr = b"DRSHARD1" + struct.pack("<IIIIQQQQQ", h["version"], h["width"], h["vocab"], h["reserved"], h["fp"],
                                    h["n_docs"], h["n_tokens"], h["ioff"], h["isize"])
    hdr += struct.pack("<Q", xxh64(hdr))
    return hdr + body + idx


# --------------------------------------------------------------------------- tokenizers
def fingerprint(kind, token_bytes, merges):
    h = xxhash.xxh64(seed=0)
    h.update(kind.encode() + b"\0")
    for t in token_bytes:
        h.update(struct.pack("<I", len(t)) + t)
    for l, r in merges:
        h.update(struct.pack("<II", l, r))
    return h.intdigest()


def byte_tokens():
    return [bytes([i]) for i in range(256)] + [b"<|endoftext|>"]


def fp_byte():
    return fingerprint("byte", byte_tokens(), [])


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


_WS = set([chr(c) for c in list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
           + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]])


def _cls(c):
    # Python's unicodedata: exact for the code points its Unicode version assigns; the
    # tools use Unicode 16.0 (docs/formats.md §1.3), so later letters differ
    if c in _WS:
        return "S"
    cat = unicodedata.category(c)
    if cat[0] == "L":
        return "L"
    if cat[0] == "N":
        return "N"
    return "O"


def gpt2_pretokenize(s, xpos=()):
    """GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    written out by hand (this python has no `regex` module); \\s = Unicode White_Space.
    xpos: positions of s that stand for a maximal invalid UTF-8 sequence under
    --invalid-utf8 keep (docs/formats.md §1.3 step 2): a pre-token by itself, \\S."""
    out = []
    i, n = 0, len(s)
    cl = [_cls(c) for c in s]
    for k in xpos:
        cl[k] = "X"
    while i < n:
        if cl[i] == "X":
            out.append(s[i])
            i += 1
            continue
        if s[i] == "'":
            m = None
            for suf in ("s", "t", "re", "ve", "m", "ll", "d"):
                if s.startswith(suf, i + 1):
                    m = suf
                    break
            if m is not None:
                out.append(s[i:i + 1 + len(m)])
                i += 1 + len(m)
                continue
        j = i + 1 if (s[i] == " " and i + 1 < n and cl[i + 1] != "S") else i
        if cl[j] in ("L", "N", "O"):
            k = j
            c0 = cl[j]
            while k < n and cl[k] == c0:
                k += 1
            out.append(s[i:k])
            i = k
            continue
        # whitespace
        k = i
        while k < n and cl[k] == "S":
            k += 1
        if k == n or k - i == 1:
            out.append(s[i:k])
            i = k
        else:
            out.append(s[i:k - 1])
            i = k - 1
    return out


class GPT2:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        self.merges = [tuple(l.split(" ")) for l in lines if l.strip()]
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.b2u = bytes_to_unicode()
        self.u2b = {v: k for k, v in self.b2u.items()}
        V = len(self.encoder)
        toks = [None] * V
        for k, v in self.encoder.items():
            toks[v] = bytes(self.u2b[c] for c in k)
        assert all(t is not None for t in toks)
        self.token_bytes = toks
        self.merge_ids = [(self.encoder[a], self.encoder[b]) for a, b in self.merges]
        self.cache = {}

    def fingerprint(self):
        return fingerprint("gpt2", self.token_bytes, self.merge_ids)

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = parts[bi], parts[bi + 1]
            np_ = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    np_.append(a + b)
                    i += 2
                else:
                    np_.append(parts[i])
                    i += 1
            parts = np_
        self.cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for pt in gpt2_pretokenize(text):
            w = "".join(self.b2u[b] for b in pt.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(w))
        return ids

    def encode_bytes(self, raw, policy="replace"):
        """encode on raw bytes under an --invalid-utf8 policy (replace or keep)."""
        ids = []
        for pt in pretokens_bytes(raw, policy):
            w = "".join(self.b2u[b] for b in pt)
            ids.extend(self.encoder[t] for t in self.bpe(w))
        return ids


_SPANS = []


def _record_span(e):
    _SPANS.append((e.start, e.end))
    return ("\ufffd", e.end)


codecs.register_error("formats_ref_spans", _record_span)


def invalid_spans(raw):
    """The maximal invalid sequences of raw bytes: the spans one U+FFFD each replaces
    under Python's decode(errors="replace") (docs/formats.md §1.1, §1.3)."""
    del _SPANS[:]
    raw.decode("utf-8", "formats_ref_spans")
    return list(_SPANS)


def pretokens_bytes(raw, policy="replace"):
    """§1.3 step 2 on a document's raw bytes: replace decodes with U+FFFD first; keep
    makes each maximal invalid sequence a pre-token by itself that counts as \S."""
    if policy != "keep":
        return [p.encode("utf-8") for p in gpt2_pretokenize(raw.decode("utf-8", "replace"))]
    chars, units, xpos, pos = [], [], [], 0
    for a, b in invalid_spans(raw) + [(len(raw), len(raw))]:
        for c in raw[pos:a].decode("utf-8"):
            chars.append(c)
            units.append(c.encode("utf-8"))
        if a < len(raw):
            xpos.append(len(chars))
            chars.append("\ufffd")
            units.append(raw[a:b])
        pos = b
    out, k = [], 0
    for p in gpt2_pretokenize("".join(chars), xpos):
        out.append(b"".join(units[k:k + len(p)]))
        k += len(p)
    assert b"".join(out) == raw
    return out

EOT = "<|endoftext|>"


class TrainedBPE:
    """A --train-bpe vocabulary (docs/formats.md §1.3): its files, fingerprint ("bpe") and
    "Encoding with it", tiktoken's rule: a pre-token that is a token is that token, else
    merge the adjacent pair whose concatenation is the token of the lowest id (leftmost)."""

    def __init__(self, vocab_dir):
        self.dir = vocab_dir
        with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
            enc = json.load(f)
        u2b = {v: k for k, v in bytes_to_unicode().items()}
        toks = [None] * len(enc)
        for k, v in enc.items():
            toks[v] = k.encode() if k == EOT else bytes(u2b[c] for c in k)
        assert all(t is not None for t in toks)
        self.token_bytes = toks
        self.eot = enc[EOT]
        self.ids = {t: i for i, t in enumerate(toks) if i != self.eot}
        with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        lines = [l for l in lines[1:] if l]
        self.merge_ids = [(enc[l.split(" ")[0]], enc[l.split(" ")[1]]) for l in lines]
        self.cache = {}

    def fingerprint(self):
        return fingerprint("bpe", self.token_bytes, self.merge_ids)

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
        out = [self.ids[q] for q in parts]
        self.cache[p] = out
        return out

    def encode_bytes(self, raw, policy="replace"):
        ids = []
        for pt in pretokens_bytes(raw, policy):
            ids.extend(self.piece(pt))
        return ids


def bpe_byte_order():
    """§1.3 step 3: ids 0-255 are the bytes, printable ones first (bytes_to_unicode order)."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    return printable + [b for b in range(256) if b not in printable]


def bpe_train_ref(docs, n_vocab, policy):
    """§1.3 steps 1-7 on docs (raw bytes). Returns (token bytes without <|endoftext|>,
    merges [(left id, right id)]), or the number M of merges the corpus gives when it is
    less than N - 257."""
    counts = {}
    for d in docs:
        for p in pretokens_bytes(d, policy):
            counts[p] = counts.get(p, 0) + 1
    order = bpe_byte_order()
    bid = {b: i for i, b in enumerate(order)}
    words = [[bid[b] for b in w] for w in counts]
    wc = list(counts.values())
    tokens = [bytes([b]) for b in order]
    tokset = set(tokens)
    pairs, where = {}, {}

    def add(wi, sign):
        seq = words[wi]
        for x, y in zip(seq, seq[1:]):
            pairs[(x, y)] = pairs.get((x, y), 0) + sign * wc[wi]
            if sign > 0:
                where.setdefault((x, y), set()).add(wi)
    for wi in range(len(words)):
        add(wi, 1)
    banned, merges = set(), []
    while len(merges) < n_vocab - 257:
        best, bc = None, 0
        for pr, c in pairs.items():
            if c >= 1 and pr not in banned and (c > bc or (c == bc and pr < best)):
                best, bc = pr, c
        if best is None:
            BPE_BANNED[0] = len(banned)
            return len(merges)
        x, y = best
        new = tokens[x] + tokens[y]
        if new in tokset:
            banned.add(best)
            continue
        z = len(tokens)
        tokens.append(new)
        tokset.add(new)
        merges.append(best)
        for wi in sorted(where.get(best, ())):
            seq = words[wi]
            if not any(a == x and b == y for a, b in zip(seq, seq[1:])):
                continue
            add(wi, -1)
            out, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == x and seq[j + 1] == y:
                    out.append(z)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            words[wi] = out
            add(wi, 1)
    BPE_BANNED[0] = len(banned)
    return tokens, merges


BPE_BANNED = [0]   # pairs the last bpe_train_ref banned (step 5)


def bpe_files_ref(tokens, merges):
    """§1.3 "Files": the bytes of encoder.json and vocab.bpe."""
    b2u = bytes_to_unicode()

    def tstr(t, esc):
        o = []
        for byte in t:
            c = b2u[byte]
            if esc and c in '"\\':
                o.append("\\" + c)
            elif esc and ord(c) >= 0x80:
                o.append("\\u%04x" % ord(c))
            else:
                o.append(c)
        return "".join(o)
    ents = ['"%s": %d' % (tstr(t, True), i) for i, t in enumerate(tokens)]
    ents.append('"%s": %d' % (EOT, len(tokens)))
    enc = ("{" + ", ".join(ents) + "}").encode("utf-8")
    voc = "#version: 0.2\n" + "".join("%s %s\n" % (tstr(tokens[x], False), tstr(tokens[y], False)) for x, y in merges)
    return enc, voc.encode("utf-8")


# --------------------------------------------------------------------------- inputs -> documents
_MISSING = object()


def json_path(o, path):
    """A member by a dotted name (docs/formats.md "Nested fields"): the key itself first,
    then each split at a dot from the left, each part read the same way; _MISSING if none.
    JSON null is a value (json.loads gives None), not a missing key. Works on str keys
    (json.loads) and on the byte-string keys of json_line_raw."""
    if not isinstance(o, dict):
        return _MISSING
    if path in o:
        return o[path]
    dot = "." if isinstance(path, str) else b"."
    i = path.find(dot)
    while i >= 0:
        v = json_path(o.get(path[:i], _MISSING), path[i + 1:])
        if v is not _MISSING:
            return v
        i = path.find(dot, i + 1)
    return _MISSING


_JSON_WS = b" \t\n\r"
_JSON_NUM = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_JSON_ESC = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b", ord("f"): b"\f",
             ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}


def json_line_raw(line):
    """One JSON value from a line's bytes (RFC 8259, whitespace around it allowed). Strings
    come back as bytes: raw bytes as they are (invalid UTF-8 included, §1.1) and every \\u
    escape as its code point's UTF-8, a surrogate pair joined, an unpaired surrogate as its
    three bytes (surrogatepass, §1.1). Objects: dicts with bytes keys. Raises ValueError."""
    n = len(line)

    def ws(i):
        while i < n and line[i] in _JSON_WS:
            i += 1
        return i

    def hex4(i):
        h = line[i:i + 4]
        if len(h) != 4 or not all(c in b"0123456789abcdefABCDEF" for c in h):
            raise ValueError("bad \\u escape at %d" % i)
        return int(h, 16)

    def string(i):   # i just past the opening quote
        out = bytearray()
        while True:
            if i >= n:
                raise ValueError("unterminated string")
            c = line[i]
            if c == 0x22:
                return bytes(out), i + 1
            if c < 0x20:
                raise ValueError("control character in a string at %d" % i)
            if c != 0x5C:
                out.append(c)
                i += 1
                continue
            e = line[i + 1] if i + 1 < n else -1
            if e in _JSON_ESC:
                out += _JSON_ESC[e]
                i += 2
                continue
            if e != ord("u"):
                raise ValueError("bad escape at %d" % i)
            cp = hex4(i + 2)
            i += 6
            if 0xD800 <= cp < 0xDC00 and line[i:i + 2] == b"\\u":
                lo = hex4(i + 2)
                if 0xDC00 <= lo < 0xE000:
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
            out += chr(cp).encode("utf-8", "surrogatepass")

    def value(i):
        i = ws(i)
        if i >= n:
            raise ValueError("expected a value")
        c = line[i]
        if c == 0x22:
            return string(i + 1)
        if c == ord("{"):
            o = {}
            i = ws(i + 1)
            if i < n and line[i] == ord("}"):
                return o, i + 1
            while True:
                i = ws(i)
                if i >= n or line[i] != 0x22:
                    raise ValueError("expected a key at %d" % i)
                k, i = string(i + 1)
                i = ws(i)
                if i >= n or line[i] != ord(":"):
                    raise ValueError("expected ':' at %d" % i)
                o[k], i = value(i + 1)
                i = ws(i)
                if i < n and line[i] == ord(","):
                    i += 1
                    continue
                if i < n and line[i] == ord("}"):
                    return o, i + 1
                raise ValueError("expected ',' or '}' at %d" % i)
        if c == ord("["):
            a = []
            i = ws(i + 1)
            if i < n and line[i] == ord("]"):
                return a, i + 1
            while True:
                v, i = value(i)
                a.append(v)
                i = ws(i)
                if i < n and line[i] == ord(","):
                    i += 1
                    continue
                if i < n and line[i] == ord("]"):
                    return a, i + 1
                raise ValueError("expected ',' or ']' at %d" % i)
        for lit, v in ((b"true", True), (b"false", False), (b"null", None)):
            if line.startswith(lit, i):
                return v, i + len(lit)
        m = _JSON_NUM.match(line, i)
        if m:
            return float(m.group(0)), m.end()
        raise ValueError("unexpected byte at %d" % i)

    v, i = value(0)
    if ws(i) != n:
        raise ValueError("trailing bytes at %d" % i)
    return v


def input_name(path):
    """The input's name for its default source (§1.1): the file name without .gz, .zst or
    .zstd ("Compressed inputs"), then without its extension."""
    b = os.path.basename(path)
    for suf in (".gz", ".zst", ".zstd"):
        if b.endswith(suf) and len(b) > len(suf):
            b = b[:-len(suf)]
            break
    return os.path.splitext(b)[0]


def decompress_input(data):
    """"Compressed inputs" (§1.1): gzip (any number of members) or zstd (any number of
    frames) known by the first bytes; truncated or corrupt data, or bytes after the end
    that are not another member / frame, raise (EOFError, OSError, ValueError, ZstdError)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] != b"\x28\xb5\x2f\xfd":
        return data
    out, pos = [], 0
    while pos < len(data):   # frame by frame: a stream reader would pass a cut-off frame
        d = zstandard.ZstdDecompressor().decompressobj()
        out.append(d.decompress(data[pos:]))
        if not d.eof:
            raise ValueError("truncated zstd data (the input ends inside a frame)")
        pos = len(data) - len(d.unused_data)
    return b"".join(out)


def docs_of_input(spec):
    """Expected documents [(raw bytes, source)] of one dr-tokenize input, from §1.1.
    spec: {"path", "format": jsonl|lines|text, "field", "source_field", "source"}."""
    path = spec["path"]
    fmt = spec["format"]
    default_src = spec.get("source") or input_name(path)
    with open(path, "rb") as f:
        data = f.read()
    data = decompress_input(data)
    out = []
    if fmt != "text" and data.startswith(b"\xef\xbb\xbf"):   # a BOM starting a line-based file is dropped
        data = data[3:]
    if fmt == "text":
        if data:
            out.append((data, default_src))
    elif fmt == "lines":
        lines = data.split(b"\n")
        for k, l in enumerate(lines):
            if k < len(lines) - 1 and l.endswith(b"\r"):   # "\r\n" ends a line; a last "\r" is text
                l = l[:-1]
            if l:
                out.append((l, default_src))
    elif fmt == "jsonl":
        field = (spec.get("field") or "text").encode("utf-8")
        sfield = spec["source_field"].encode("utf-8") if spec.get("source_field") else None
        for l in data.split(b"\n"):
            if not l.strip(b" \t\r\n"):
                continue
            # strings as bytes: invalid UTF-8 kept raw (the id is taken before
            # --invalid-utf8 replace), a lone surrogate escape as its three bytes
            o = json_line_raw(l)
            raw = json_path(o, field)
            if not isinstance(raw, bytes):
                raise ValueError("%s: text field is not a string" % path)
            src = default_src
            if sfield is not None:
                v = json_path(o, sfield)
                if v is not _MISSING and not isinstance(v, bytes):
                    raise ValueError("%s: source field is not a string" % path)
                if v is not _MISSING and v != b"":     # "" or missing: the default
                    src = v.decode("utf-8", "surrogateescape")
                src = "".join("_" if c in "\t\n\r\0" else c for c in src)
            if raw:
                out.append((raw, src))
    return out


# --------------------------------------------------------------------------- examples / split
def windows(n, L, min_tokens=2):
    m = max(min_tokens, 2)
    nw = -(-(n - 1) // L) if n > 1 else 0
    out = []
    for w in range(nw):
        a = w * L
        b = min(n, a + L + 1)
        if b - a >= m:
            out.append((w, a, b))
    return out


def examples_of(shards, L, min_tokens=2):
    """[(example id, source, tokens)] in shard order."""
    out = []
    for sh in shards:
        for d, src, toks in sh.all_tokens():
            for w, a, b in windows(len(toks), L, min_tokens):
                out.append(("%016x:%d" % (d[0], w), src, toks[a:b]))
    return out


def split_u(doc_id, seed):
    h = xxh64(struct.pack("<Q", doc_id), seed)
    return (h >> 11) / 2.0 ** 53


def split_of(doc_id, seed, fval, ftb, eligible=True):
    u = split_u(doc_id, seed)
    if u < fval:
        if eligible:
            return "val"
        if fval >= 1:   # "with F_val = 1 there are no such proportions and it goes to Train_A"
            return "train_a"
        return "train_b" if u / fval < ftb / (1 - fval) else "train_a"
    if u < fval + ftb:
        return "train_b"
    return "train_a"


def canon_order(shards):
    return sorted(shards, key=lambda s: s.content_key)


# --------------------------------------------------------------------------- scores
SCORES_HEADER = "example_id\tscore\tsource\tn_tokens"


def read_scores(path):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    while lines and lines[-1] == "":   # "Empty lines at the very end of the file are ignored" (§4)
        lines.pop()
    return lines


# --------------------------------------------------------------------------- safetensors
def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    hdr = json.loads(data[8:8 + n].decode("utf-8"))
    return data, n, hdr


def load_config(paths, sets):
    import yaml
    cfg = {}
    for p in paths:
        with open(p) as f:
            y = yaml.safe_load(f) or {}
        for sec, kv in y.items():
            cfg.setdefault(sec, {}).update(kv or {})
    for s in sets:
        k, v = s.split("=", 1)
        sec, key = k.split(".", 1)
        cfg.setdefault(sec, {})[key] = yaml.safe_load(v)
    return cfg


# =========================================================================== subcommands
def cmd_verify(args):
    """verify SHARD...: strict read; prints 'ok PATH' or the error line; exit 1 on error."""
    rc = 0
    for p in args:
        try:
            sh = read_shard(p)
            print("ok %s docs=%d tokens=%d blocks=%d" % (p, sh.n_docs, sh.n_tokens, len(sh.blocks)))
        except ShardError as e:
            print(str(e))
            rc = 1
    return rc


def cmd_dump(args):
    sh = read_shard(args[0])
    print(json.dumps({"version": sh.version, "width": sh.width, "vocab": sh.vocab,
                      "fingerprint": "%016x" % sh.fingerprint, "n_docs": sh.n_docs,
                      "n_tokens": sh.n_tokens, "index_off": sh.index_off,
                      "index_size": sh.index_size, "blocks": sh.blocks[:5], "n_blocks": len(sh.blocks),
                      "sources": sh.sources, "spec": sh.spec, "docs": sh.docs[:5]}))
    return 0


_FLAGS = {"dedup", "invert", "expect-half", "expect-fp-edge", "expect-exact"}


def _parse_kv(args):
    o = {"_": []}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            k = a[2:]
            if k not in _FLAGS and i + 1 < len(args) and not args[i + 1].startswith("--"):
                o.setdefault(k, []).append(args[i + 1])
                i += 2
            else:
                o.setdefault(k, []).append("1")
                i += 1
        else:
            o["_"].append(a)
            i += 1
    return o


def _one(o, k, d=None):
    return o[k][-1] if k in o else d


def cmd_tokcheck(args):
    """tokcheck --name N --tokenizer byte|gpt2 [--vocab-dir D] --inputs J.json
       [--catids FILE] [--policy replace|keep] SHARD...
    Compares the shards (in order) with the documents §1.1 defines for the inputs."""
    o = _parse_kv(args)
    name = _one(o, "name")
    kind = _one(o, "tokenizer")
    with open(_one(o, "inputs")) as f:
        inputs = json.load(f)
    exp = []
    for spec in inputs:
        exp.extend(docs_of_input(spec))
    shards = []
    for p in o["_"]:
        try:
            shards.append(read_shard(p))
        except ShardError as e:
            check(name + ".read", False, str(e))
            return
    check(name + ".read", True, "%d shards verified (checksums, frames, tiling)" % len(shards))
    got = []
    for sh in shards:
        got.extend(sh.all_tokens())
    check(name + ".doc_count", len(got) == len(exp), "shards %d documents, inputs %d" % (len(got), len(exp)))
    check(name + ".header_counts",
          all(sh.n_docs == len(sh.docs) for sh in shards) and
          all(sh.n_tokens == sum(d[3] for d in sh.docs) for sh in shards), "")
    # tokenizer
    if kind == "byte":
        fp, V, tok = fp_byte(), 257, None
    elif kind == "bpe":
        tok = TrainedBPE(_one(o, "vocab-dir"))
        fp, V = tok.fingerprint(), len(tok.token_bytes)
    else:
        tok = GPT2(_one(o, "vocab-dir"))
        fp, V = tok.fingerprint(), len(tok.token_bytes)
    check(name + ".fingerprint", all(sh.fingerprint == fp for sh in shards),
          "expected %016x, shards %s" % (fp, sorted(set("%016x" % sh.fingerprint for sh in shards))))
    check(name + ".vocab_width", all(sh.vocab == V and sh.width == (2 if V <= 65535 else 4) for sh in shards),
          "vocab %s width %s" % (sorted(set(sh.vocab for sh in shards)), sorted(set(sh.width for sh in shards))))
    if kind == "bpe":   # "bpe:/path/to/vocab": the vocabulary's directory, absolute
        vd = os.path.realpath(_one(o, "vocab-dir"))
        spec_ok = all(sh.spec.startswith("bpe:/") and os.path.realpath(sh.spec[4:]) == vd for sh in shards)
    else:
        spec_ok = all(sh.spec == kind for sh in shards)
    check(name + ".spec", spec_ok, "specs %s" % sorted(set(sh.spec for sh in shards)))
    n = min(len(got), len(exp))
    bad_id = [i for i in range(n) if got[i][0][0] != xxh64(exp[i][0])]
    check(name + ".doc_ids", not bad_id and len(got) == len(exp),
          "first mismatch at doc %s" % (bad_id[:1] or "-") + (" (input %r)" % exp[bad_id[0]][0][:60] if bad_id else ""))
    bad_src = [i for i in range(n) if got[i][1] != exp[i][1]]
    check(name + ".sources", not bad_src,
          "first mismatch doc %s: %s" % (bad_src[:1], [(got[i][1], exp[i][1]) for i in bad_src[:1]]))
    policy = _one(o, "policy", "replace")
    bad_tok = []
    for i in range(n):
        raw = exp[i][0]
        if policy == "replace":
            text = raw.decode("utf-8", "replace")
        else:
            text = None
        if kind == "byte":
            want = list((text.encode("utf-8") if text is not None else raw))
        elif text is not None and kind == "gpt2":
            want = tok.encode(text)
        else:
            want = tok.encode_bytes(raw, policy)
        if list(map(int, got[i][2])) != want:
            bad_tok.append((i, want))
    detail = "first mismatch doc %s" % [b[0] for b in bad_tok[:1]]
    if bad_tok:
        i, want = bad_tok[0]
        g = list(map(int, got[i][2]))
        j = next((k for k, (a, b) in enumerate(zip(g, want)) if a != b), min(len(g), len(want)))
        detail += " input %r: from token %d got %s want %s" % (exp[i][0][:80], j, g[j:j + 8], want[j:j + 8])
    check(name + ".tokens_" + ("bytes" if kind == "byte" else "own_bpe"), not bad_tok, detail)
    if "catids" in o:
        with open(_one(o, "catids")) as f:
            cat = [json.loads(l) for l in f if l.strip()]
        bad = [i for i in range(min(len(cat), len(got))) if cat[i] != list(map(int, got[i][2]))]
        check(name + ".tokens_vs_dr-cat_ids", not bad and len(cat) == len(got),
              "dr-cat %d docs, reader %d; first mismatch %s" % (len(cat), len(got), bad[:1]))
    if "catlist" in o:
        with open(_one(o, "catlist")) as f:
            cl = [l.rstrip("\n").split("\t") for l in f if l.strip()]
        want = [["%016x" % g[0][0], g[1], str(g[0][3])] for g in got]
        check(name + ".dr-cat_list", cl == want, "dr-cat --list %d lines, first diff %s" %
              (len(cl), next(([a, b] for a, b in zip(cl, want) if a != b), None)))
    if "catraw" in o:
        with open(_one(o, "catraw"), "rb") as f:
            raw = f.read()
        # keep: "decoding gives the input back exactly" (dr-tokenize --help)
        want = b"".join((e[0] if policy == "keep" else e[0].decode("utf-8", "replace").encode()) + b"\n"
                        for e in exp)
        check(name + ".dr-cat_text", raw == want, "dr-cat text %d bytes, expected %d" % (len(raw), len(want)))
    if "catjsonl" in o:   # dr-cat --jsonl: {"id", "source", "n_tokens", "text"}, text as valid UTF-8
        with open(_one(o, "catjsonl"), "rb") as f:
            rows = [json.loads(l) for l in f.read().split(b"\n") if l.strip()]
        want = [{"id": "%016x" % g[0][0], "source": g[1], "n_tokens": int(g[0][3]),
                 "text": e[0].decode("utf-8", "replace")} for g, e in zip(got, exp)]
        bad = next((i for i, (a, b) in enumerate(zip(rows, want)) if a != b), None)
        check(name + ".dr-cat_jsonl", len(rows) == len(want) and bad is None,
              "dr-cat --jsonl %d lines, reference %d; first diff %s" %
              (len(rows), len(want), None if bad is None else (rows[bad], want[bad])))
    return


def cmd_blocks(args):
    """blocks --name N [--min-blocks K] [--max-shard-bytes B] SHARD...: multi-block layout."""
    o = _parse_kv(args)
    name = _one(o, "name")
    shards = [read_shard(p) for p in o["_"]]
    nb = sum(len(s.blocks) for s in shards)
    check(name + ".many_blocks", nb >= int(_one(o, "min-blocks", "2")),
          "%d shards, %d blocks, blocks per shard %s" % (len(shards), nb, [len(s.blocks) for s in shards]))
    # a document in exactly one block and the blocks tiled: read_shard enforces it; report sizes
    multi = sum(1 for s in shards for b in range(len(s.blocks)) if sum(1 for d in s.docs if d[1] == b) > 1)
    sizes = [s.blocks[b][2] for s in shards for b in range(len(s.blocks))]
    check(name + ".docs_tile_blocks", True,
          "verified by the reader; %d blocks hold several docs; uncompressed block bytes min %d max %d"
          % (multi, min(sizes), max(sizes)))
    # block size "about 1 MiB of tokens": a block is never bigger than 1 MiB unless it is one document
    # "about 1 MiB of tokens" read as 1 MiB of token bytes (what the tool does): a block
    # without its last document is under 1 MiB (a block is closed before it passes 1 MiB)
    over = []
    for s in shards:
        for b in range(len(s.blocks)):
            last = max(d[3] for d in s.docs if d[1] == b and d[2] + d[3] == s.blocks[b][2] // s.width)
            if s.blocks[b][2] - last * s.width > (1 << 20):
                over.append((s.path, b, s.blocks[b][2]))
    check(name + ".block_size", not over, "blocks over 1 MiB before their last document: %s" % over[:3])
    if "max-shard-bytes" in o:
        mx = int(_one(o, "max-shard-bytes"))
        big = [(s.path, len(s.data)) for s in shards if len(s.data) > mx]
        check(name + ".shard_size", not big, "shards over %d bytes: %s" % (mx, big[:3]))
    if "total-docs" in o:
        td = sum(s.n_docs for s in shards)
        check(name + ".total_docs", td == int(_one(o, "total-docs")), "%d vs %s" % (td, _one(o, "total-docs")))


def _fmt_shortest(x):
    """The shortest %.Pg (P = 1..17) that reads back as x, in %.17g's notation
    (docs/formats.md, metrics)."""
    full = "%.17g" % x
    for p in range(1, 17):
        t = "%.*g" % (p, x)
        if float(t) == x and ("e" in full or "e" not in t):
            return t
    return full


def cmd_split(args):
    """split --name N --out DIR --stdout FILE [--val F] [--train-b F] [--seed S]
       [--val-sources a,b] [--dedup] INPUT_SHARD...
    Recomputes every document's split and compares with DIR's shards and manifests."""
    o = _parse_kv(args)
    name = _one(o, "name")
    out = _one(o, "out")
    fval = float(_one(o, "val", "0.1"))
    ftb = float(_one(o, "train-b", "0"))
    seed = int(_one(o, "seed", "0"))
    vs = _one(o, "val-sources")
    names = vs.split(",") if vs else []
    if "val-sources-file" in o:   # one name per line, added after --val-sources' names
        with open(_one(o, "val-sources-file"), "rb") as f:
            names += [l.decode("utf-8") for l in f.read().split(b"\n") if l]
        vs = ",".join(names)
    vset = set(names) if vs else None
    dedup = "dedup" in o
    inputs = [read_shard(p) for p in o["_"]]
    canon = canon_order(inputs)
    # eligibility: every copy of an id from a listed source
    elig = {}
    for sh in inputs:
        for d in sh.docs:
            ok = vset is None or sh.sources[d[4]] in vset
            elig[d[0]] = elig.get(d[0], True) and ok
    expect = {"train_a": [], "val": [], "train_b": []}
    seen = set()
    ndup, dup_tok = 0, 0
    for sh in canon:
        for d, src, toks in sh.all_tokens():
            if dedup and d[0] in seen:
                ndup += 1
                dup_tok += d[3]
                continue
            seen.add(d[0])
            expect[split_of(d[0], seed, fval, ftb, elig[d[0]])].append((d[0], src, toks))
    # manifest.tsv
    with open(os.path.join(out, "manifest.tsv"), "rb") as f:
        man = f.read().decode("utf-8")
    with open(_one(o, "stdout"), "rb") as f:
        sout = f.read().decode("utf-8")
    mlines = man.split("\n")
    if mlines[-1] == "":
        mlines.pop()
    comments = [l for l in mlines if l.startswith("#")]
    entries = [l.split("\t") for l in mlines if l and not l.startswith("#")]
    check(name + ".manifest_lines", all(len(e) == 2 for e in entries), "entries %d" % len(entries))
    rel_ok = all(not e[1].startswith("/") and os.path.isfile(os.path.join(out, e[1])) for e in entries)
    check(name + ".manifest_relative", rel_ok, "paths %s" % [e[1] for e in entries][:4])
    slines = sout.split("\n")
    if slines[-1] == "":
        slines.pop()
    sent = [l.split("\t") for l in slines if l and not l.startswith("#")]
    abs_ok = len(sent) == len(entries) and all(
        a[0] == b[0] and a[1].startswith("/") and os.path.realpath(a[1]) == os.path.realpath(os.path.join(out, b[1]))
        for a, b in zip(sent, entries))
    check(name + ".stdout_absolute", abs_ok, "stdout %s" % [e[1] for e in sent][:2])
    check(name + ".stdout_comments_same", [l for l in slines if l.startswith("#")] == comments, "")
    # every output shard is listed, in order of names
    listed = {}
    for sp, pth in entries:
        listed.setdefault(sp, []).append(pth)
    files_ok = True
    for sp in ("train_a", "val", "train_b"):
        d = os.path.join(out, sp)
        fs = sorted(f for f in os.listdir(d) if f.endswith(".drs")) if os.path.isdir(d) else []
        if [os.path.join(sp, f) for f in fs] != listed.get(sp, []):
            files_ok = False
            print("# %s: files %s listed %s" % (sp, fs, listed.get(sp)))
        if not expect[sp] and os.path.exists(d):   # "a split with no documents ... no directory"
            files_ok = False
            print("# %s: no documents, but %s exists" % (sp, d))
    check(name + ".manifest_lists_every_shard", files_ok, "")
    # contents per split
    got = {}
    fps = set()
    for sp in ("train_a", "val", "train_b"):
        got[sp] = []
        for pth in listed.get(sp, []):
            sh = read_shard(os.path.join(out, pth))
            fps.add((sh.fingerprint, sh.vocab, sh.spec))
            for d, src, toks in sh.all_tokens():
                got[sp].append((d[0], src, toks))
    check(name + ".tokenizer_kept", fps <= {(inputs[0].fingerprint, inputs[0].vocab, inputs[0].spec)}, str(fps))
    for sp in ("train_a", "val", "train_b"):
        e, g = expect[sp], got[sp]
        same_ids = [x[0] for x in e] == [x[0] for x in g]
        same_all = same_ids and all(a[1] == b[1] and np.array_equal(a[2], b[2]) for a, b in zip(e, g))
        det = "expected %d docs, got %d" % (len(e), len(g))
        if not same_ids:
            se, sg = set(x[0] for x in e), set(x[0] for x in g)
            det += "; %d expected not there, %d there not expected; same set, other order: %s" % (
                len(se - sg), len(sg - se), se == sg)
        check("%s.docs_%s" % (name, sp), same_all, det)
    # comment lines
    ntot = sum(s.n_docs for s in inputs)
    ttot = sum(s.n_tokens for s in inputs)
    ftra = 1.0 - fval - ftb
    want = {
        0: "# dr-split manifest",
        1: "# hash: xxh64(doc id as 8 little-endian bytes, seed); u = (hash >> 11) / 2^53",
        2: "# seed: %d" % seed,
        3: "# fractions: val %s train_b %s train_a %s (val if u < val, train_b if u < val + train_b, else train_a)"
           % (_fmt_shortest(fval), _fmt_shortest(ftb), _fmt_shortest(ftra)),
        4: "# val-sources: %s" % (vs if vs else "all"),
        5: "# dedup: %s (%d duplicate documents, %d tokens dropped)" % ("yes" if dedup else "no", ndup, dup_tok),
        6: "# tokenizer: %s fingerprint %016x vocab %d" % (inputs[0].spec, inputs[0].fingerprint, inputs[0].vocab),
        7: "# input: %d shards, %d documents, %d tokens" % (len(inputs), ntot, ttot),
    }
    for k, sp in enumerate(("train_a", "val", "train_b")):
        want[8 + k] = "# %s: %d documents, %d tokens, %d shards" % (
            sp, len(expect[sp]), sum(len(x[2]) for x in expect[sp]), len(listed.get(sp, [])))
    for k in sorted(want):
        have = comments[k] if k < len(comments) else None
        check("%s.comment_%d" % (name, k), have == want[k], "have %r want %r" % (have, want[k]) if have != want[k] else repr(have))
    check(name + ".comment_count", len(comments) == len(want), "%d comment lines" % len(comments))


def cmd_examples(args):
    """examples --name N --seq-len L [--min-tokens M] [--catex FILE] [--scores FILE] SHARD..."""
    o = _parse_kv(args)
    name = _one(o, "name")
    L = int(_one(o, "seq-len"))
    mt = int(_one(o, "min-tokens", "2"))
    shards = [read_shard(p) for p in o["_"]]
    ex = examples_of(shards, L, mt)
    check(name + ".count", len(ex) > 0, "%d examples (L=%d, min_tokens=%d)" % (len(ex), L, mt))
    if "catex" in o:
        with open(_one(o, "catex")) as f:
            lines = [l.rstrip("\n") for l in f if l.strip()]
        want = ["%s\t%s" % (e[0], " ".join(map(str, map(int, e[2])))) for e in ex]
        diff = next(((i, a[:80], b[:80]) for i, (a, b) in enumerate(zip(lines, want)) if a != b), None)
        check(name + ".vs_dr-cat_examples", lines == want,
              "dr-cat %d lines, reference %d; first diff %s" % (len(lines), len(want), diff))
    if "scores" in o:
        lines = read_scores(_one(o, "scores"))
        check(name + ".scores_header", lines[:1] == [SCORES_HEADER], repr(lines[:1]))
        rows = [l.split("\t") for l in lines[1:]]
        check(name + ".scores_columns", all(len(r) == 4 for r in rows), "")
        want = [(e[0], e[1], str(len(e[2]))) for e in ex]
        have = [(r[0], r[2], r[3]) for r in rows if len(r) == 4]
        diff = next(((i, a, b) for i, (a, b) in enumerate(zip(have, want)) if a != b), None)
        check(name + ".scores_ids_sources_ntokens", have == want,
              "scores %d rows, reference %d examples; first diff %s" % (len(have), len(want), diff))
        badfmt = []
        for r in rows:
            try:
                v = float(r[1])
                if not math.isfinite(v) or "%.9g" % v != r[1]:
                    badfmt.append(r[1])
            except ValueError:
                badfmt.append(r[1])
        check(name + ".scores_%.9g", not badfmt, "bad %s" % badfmt[:3])


# --------------------------------------------------------------------------- dr-filter's selection
# Written from docs/deploy.md ("The counts, exactly" and "The selection, exactly") only.
M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def U(x):
    """One splitmix64 step from state x: (new state, u in [0, 1))."""
    x = (x + GAMMA) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z = z ^ (z >> 31)
    return x, (z >> 11) * 2.0 ** -53


def round_count(F, n):
    return int(math.floor(F * n + 0.5))      # F*n and +0.5 in double, as Python does


def ceil_count(F, b):
    return int(math.ceil(F * b - 1e-9))


def ranking(sc, invert):
    """Example indices best first; ties: the smaller index first."""
    return sorted(range(len(sc)), key=lambda i: ((sc[i] if invert else -sc[i]), i))


def select_ref(policy, F, sc, invert=False, batch=None, seed=0):
    """Set of kept example indices (0-based, shard order)."""
    N = len(sc)
    s = (seed ^ 0x5EEDF11E7) & M64
    if policy == "random":
        K = min(round_count(F, N), N)
        P = list(range(N))
        x = s
        kept = set()
        for t in range(K):
            x, u = U(x)
            j = t + int(math.floor(u * float(N - t)))
            P[t], P[j] = P[j], P[t]
            kept.add(P[t])
        return kept
    if policy == "per-batch":
        kept = set()
        for start in range(0, N, batch):
            idx = list(range(start, min(N, start + batch)))
            b = len(idx)
            order = sorted(idx, key=lambda i: ((sc[i] if invert else -sc[i]), i))
            kept.update(order[:min(ceil_count(F, b), b)])
        return kept
    if policy == "min-score":   # F is the threshold S: score >= S; inverted, score < S
        return set(i for i in range(N) if (sc[i] < F if invert else sc[i] >= F))
    order = ranking(sc, invert)
    if policy == "keep":
        return set(order[:min(round_count(F, N), N)])
    if policy == "keep-middle":
        K = min(round_count(F, N), N)
        D = (N - K) // 2
        return set(order[D:D + K])
    if policy == "cdf":
        a = (1.0 - F) / F
        kept = set()
        for r, i in enumerate(order):
            q = float(N - r) / float(N)
            p = math.pow(q, a)
            _, u = U((s ^ ((i * GAMMA) & M64)) & M64)
            if u < p:
                kept.add(i)
        return kept
    raise ValueError(policy)


def _read_summary(path, unit="examples"):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [l.rstrip("\n") for l in f]
    # skip the "policy from the config" and "removed ..." lines
    head = next((l for l in lines if l.startswith("kept ")), None)
    try:
        h = lines.index(next(l for l in lines if l.split()[:4] == ["source", unit, "kept", "kept%"]))
        # source names may hold spaces: the last three columns are the numbers
        rows = [[c.strip() for c in l.rsplit(None, 3)] for l in lines[h + 1:] if l.strip()]
    except StopIteration:
        rows = None
    return head, rows


def doc_units(shards, L, mt, sc, how):
    """--documents HOW (docs/deploy.md): the documents with at least one example, in shard
    order, as (score, source, tokens, id); sc: the examples' scores in example order."""
    units = []
    k = 0
    for sh in shards:
        for d, src, toks in sh.all_tokens():
            ws = windows(len(toks), L, mt)
            if not ws:
                continue
            s = sc[k:k + len(ws)]
            n = [b - a for _, a, b in ws]
            k += len(ws)
            if how == "mean":
                num = 0.0
                den = 0.0
                for x, m in zip(s, n):
                    num += float(m) * x
                    den += float(m)
                score = num / den
            else:
                score = {"min": min, "max": max, "first": lambda v: v[0]}[how](s)
            units.append((score, src, toks, d[0]))
    return units


def cmd_filter(args):
    """filter --name N --seq-len L [--min-tokens M] --scores F --policy P --fraction F|--min-score S [--batch B]
    [--seed S] [--invert] [--documents AGG] [--summary STDERR_FILE] [--expect-half] [--expect-fp-edge]
    [--expect-exact] --out-shards S1,S2 SHARD...      (--keep F = --policy keep --fraction F)"""
    o = _parse_kv(args)
    name = _one(o, "name")
    L = int(_one(o, "seq-len"))
    mt = int(_one(o, "min-tokens", "2"))
    policy = _one(o, "policy", "keep")
    F = float(_one(o, "min-score")) if policy == "min-score" else float(_one(o, "fraction", _one(o, "keep")))
    batch = int(_one(o, "batch", "0")) or None
    seed = int(_one(o, "seed", "0"))
    inv = "invert" in o
    how = _one(o, "documents", "")
    shards = [read_shard(p) for p in o["_"]]
    ex = examples_of(shards, L, mt)
    lines = read_scores(_one(o, "scores"))[1:]
    # match by id; an id's scores, lowest first, for its occurrences in shard order (docs/deploy.md)
    by_id = {}
    for l in lines:
        r = l.split("\t")
        by_id.setdefault(r[0], []).append(float(r[1]))
    for v in by_id.values():
        v.sort()
    used = {}
    sc = []
    for e in ex:
        k = used.get(e[0], 0)
        used[e[0]] = k + 1
        sc.append(by_id[e[0]][k])
    # the units: (score, source, tokens, the id written: docs/formats.md §5 for an example,
    # xxh64 of 16 bytes, the document id then the window index, both u64 little-endian;
    # a document keeps its own)
    if how:
        units = doc_units(shards, L, mt, sc, how)
    else:
        units = [(sc[i], e[1], e[2], xxh64(struct.pack("<QQ", int(e[0].split(":")[0], 16), int(e[0].split(":")[1]))))
                 for i, e in enumerate(ex)]
    usc = [u[0] for u in units]
    N = len(units)
    kept = sorted(select_ref(policy, F, usc, inv, batch, seed))
    K = len(kept)
    what = "%s F=%r%s%s%s%s N=%d" % (policy, F, " B=%d" % batch if batch else "",
                                     " seed=%d" % seed if policy in ("cdf", "random") else "",
                                     " invert" if inv else "", " documents " + how if how else "", N)
    if "expect-half" in o:   # the test means to exercise round()'s half case
        x = F * N
        check(name + ".case_half", x - math.floor(x) == 0.5,
              "F*N = %r: K = %d (Python's round gives %d)" % (x, round_count(F, N), round(x)))
    if "expect-fp-edge" in o:   # F*B lands just above an integer in double
        x = F * batch
        check(name + ".case_fp_edge", x != math.floor(x) and x - round(x) < 1e-9 and x > round(x),
              "F*B = %r: plain ceil %d, the documented count %d" % (x, math.ceil(x), ceil_count(F, batch)))
    if "expect-exact" in o:   # F*B is exactly an integer in double (no off-by-one either way)
        x = F * batch
        check(name + ".case_exact", x == math.floor(x), "F*B = %r: count %d" % (x, ceil_count(F, batch)))
    outs = [read_shard(p) for p in _one(o, "out-shards").split(",") if p]
    got = []
    for sh in outs:
        got.extend(sh.all_tokens())
    check(name + ".kept_count", len(got) == K, "%s: reference keeps %d, output docs %d" % (what, K, len(got)))
    want_tok = [units[i][2] for i in kept]
    okt = len(got) == K and all(np.array_equal(g[2], w) for g, w in zip(got, want_tok))
    first = next((j for j, (g, w) in enumerate(zip(got, want_tok)) if not np.array_equal(g[2], w)), None)
    det = "first differing kept doc %s" % first
    if first is not None:
        # locate what the tool kept instead
        det += " (reference keeps unit #%d score %r)" % (kept[first], usc[kept[first]])
    check(name + ".kept_units_tokens", okt, det)
    check(name + ".kept_sources", [g[1] for g in got] == [units[i][1] for i in kept], "")
    want_ids = [units[i][3] for i in kept]
    have_ids = [g[0][0] for g in got]
    bad = next((j for j, (a, b) in enumerate(zip(have_ids, want_ids)) if a != b), None)
    check(name + ".kept_ids", have_ids == want_ids,
          "%d ids; first diff at %s" % (len(have_ids), bad))
    if "summary" in o:
        unit = "documents" if how else "examples"
        head, rows = _read_summary(_one(o, "summary"), unit)
        tok_all = sum(len(u[2]) for u in units)
        tok_kept = sum(len(units[i][2]) for i in kept)
        want_head = "kept %d of %d %s (%.2f%%), %d of %d tokens (%.2f%%)" % (
            K, N, unit, 100.0 * K / N if N else 0.0, tok_kept, tok_all, 100.0 * tok_kept / tok_all if tok_all else 0.0)
        check(name + ".summary_counts", head == want_head, "tool %r, reference %r" % (head, want_head))
        ks = set(kept)
        per = {}
        for i, u in enumerate(units):
            c = per.setdefault(u[1] if u[1] else "(none)", [0, 0])
            c[0] += 1
            c[1] += i in ks
        want_rows = [[src.strip(), str(n), str(k), "%.2f%%" % (100.0 * k / n)] for src, (n, k) in per.items()]
        check(name + ".summary_sources", rows == want_rows, "tool %s, reference %s" % (rows, want_rows))
        # the score cut (docs/deploy.md): the extremes of the kept and dropped scores, in
        # shortest round-trip digits, and the --min-score that keeps the same units
        with open(_one(o, "summary"), encoding="utf-8", errors="replace") as f:
            cut = [l.rstrip("\n") for l in f if l.startswith("score cut: ")]
        ksc = [usc[i] for i in kept]
        dsc = [usc[i] for i in range(N) if i not in ks]
        F_ = _fmt_shortest
        opt = ("--invert " if inv else "") + ("--documents %s " % how if how else "") + "--min-score"
        if not inv:
            a, b = (min(ksc) if ksc else None), (max(dsc) if dsc else None)
            first, second, S = "lowest kept", "highest dropped", a
            clean = ksc and dsc and a > b
        else:
            a, b = (max(ksc) if ksc else None), (min(dsc) if dsc else None)
            first, second, S = "highest kept", "lowest dropped", b
            clean = ksc and dsc and a < b
        if ksc and dsc:
            want = "score cut: %s %s, %s %s" % (first, F_(a), second, F_(b))
            if policy != "min-score":
                if clean:
                    want += ": %s %s keeps the same %s" % (opt, F_(S), unit)
                elif policy == "keep":
                    want += ": tied at the cut, so no --min-score keeps exactly these"
        elif ksc:
            want = "score cut: %s %s, none dropped" % (first, F_(a))
        else:
            want = "score cut: %s %s, none kept" % (second, F_(b))
        check(name + ".summary_cut", cut == [want], "tool %r, reference %r" % (cut, want))


def cmd_safetensors(args):
    """safetensors --name N --kind lm|rater|grad --config base.yaml --config c.yaml [--set k=v]... --vocab V
    [--shard S.drs] FILE   (--shard: a shard of the training data, whose tokenizer the model must record)"""
    o = _parse_kv(args)
    name = _one(o, "name")
    kind = _one(o, "kind")
    cfg = load_config(o.get("config", []), o.get("set", []))
    V = int(_one(o, "vocab"))
    path = o["_"][0]
    data, n, hdr = read_safetensors(path)
    check(name + ".header", 8 + n <= len(data), "header %d bytes, file %d" % (n, len(data)))
    meta = hdr.pop("__metadata__", None)
    sec = "lm" if kind == "lm" else "rater"
    c = cfg[sec]
    L, d, H = int(c["n_layer"]), int(c["d_model"]), int(c["n_head"])
    ff = int(c.get("d_ff") or 0) or 4 * d
    seq = int(cfg["data"]["seq_len"])
    ctx = seq if kind == "lm" else (int(cfg["data"].get("seq_len_rater") or 0) or seq)
    pre = "transformer." if kind == "lm" else "rater."
    want = {pre + "wte.weight": [V, d], pre + "wpe.weight": [ctx, d]}
    for i in range(L):
        h = "%sh.%d." % (pre, i)
        want.update({h + "ln_1.weight": [d], h + "ln_1.bias": [d],
                     h + "attn.c_attn.weight": [d, 3 * d], h + "attn.c_attn.bias": [3 * d],
                     h + "attn.c_proj.weight": [d, d], h + "attn.c_proj.bias": [d],
                     h + "ln_2.weight": [d], h + "ln_2.bias": [d],
                     h + "mlp.c_fc.weight": [d, ff], h + "mlp.c_fc.bias": [ff],
                     h + "mlp.c_proj.weight": [ff, d], h + "mlp.c_proj.bias": [d]})
    want.update({pre + "ln_f.weight": [d], pre + "ln_f.bias": [d]})
    if kind != "lm":
        want.update({"rater.head.fc.weight": [d, d], "rater.head.fc.bias": [d],
                     "rater.head.out.weight": [d, 1], "rater.head.out.bias": [1]})
    if kind == "grad":
        want.update({"l_val": [], "objective": []})
    have = {k: v["shape"] for k, v in hdr.items()}
    check(name + ".names", set(have) == set(want),
          "missing %s extra %s" % (sorted(set(want) - set(have))[:4], sorted(set(have) - set(want))[:4]))
    bad = [(k, have[k], want[k]) for k in want if k in have and have[k] != want[k]]
    check(name + ".shapes", not bad, "wrong %s" % bad[:3])
    fdt = _one(o, "dtype", "F32")
    dts = {k: v["dtype"] for k, v in hdr.items()}
    bad = [(k, v) for k, v in dts.items() if v != (("F64" if k in ("l_val", "objective") else fdt))]
    check(name + ".dtypes", not bad, "wrong %s" % bad[:3])
    # offsets tile the data section
    ds = 8 + n
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in hdr.items())
    pos, ok, why = 0, True, ""
    for a, b, k in spans:
        sz = (8 if dts[k] == "F64" else 4) * int(np.prod(hdr[k]["shape"] or [1]))
        if a != pos or b - a != sz:
            ok, why = False, "%s at [%d,%d) expected start %d size %d" % (k, a, b, pos, sz)
            break
        pos = b
    if ok and ds + pos != len(data):
        ok, why = False, "tensors end at %d, file %d" % (ds + pos, len(data))
    check(name + ".offsets_tile", ok, why or "%d tensors, %d data bytes" % (len(spans), pos))
    fin = True
    for a, b, k in spans:
        arr = np.frombuffer(data[ds + a:ds + b], dtype="<f8" if dts[k] == "F64" else "<f4")
        fin = fin and bool(np.all(np.isfinite(arr)))
    check(name + ".finite", fin, "")
    if kind == "grad":
        check(name + ".metadata", meta is None or all(isinstance(v, str) for v in meta.values()), repr(meta)[:100])
        return
    check(name + ".metadata_strings", isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()),
          "keys %s" % (sorted(meta) if isinstance(meta, dict) else meta))
    meta = meta or {}
    check(name + ".metadata_format", meta.get("format") == "pt", repr(meta.get("format")))
    try:
        hc = json.loads(meta.get("config", "null"))
    except ValueError:
        hc = None
    wantc = {"model_type": "gpt2" if kind == "lm" else "datarater", "vocab_size": V, "n_positions": ctx,
             "n_embd": d, "n_layer": L, "n_head": H, "n_inner": ff, "activation_function": "gelu_new",
             "layer_norm_epsilon": 1e-05, "tie_word_embeddings": True}
    badc = [(k, (hc or {}).get(k), v) for k, v in wantc.items() if not isinstance(hc, dict) or hc.get(k) != v]
    check(name + ".hf_config", isinstance(hc, dict) and not badc, "wrong (key, have, want) %s" % badc[:4])
    drop = {k: v for k, v in (hc or {}).items() if "drop" in k}
    check(name + ".hf_config_dropouts",
          all(drop.get(k) == 0 for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")),
          "dropout keys %s (names not given by formats.md)" % drop)
    try:
        dr = json.loads(meta.get("datarater", "null"))
    except ValueError:
        dr = None

    # formats.md section 5: an LM's is {"step", "tokens", "config": {sections}}; a
    # rater's is the resolved config object itself
    sections = ("experiment", "data", "lm", "rater", "meta")
    if kind == "lm":
        ok = isinstance(dr, dict) and isinstance(dr.get("step"), int) and isinstance(dr.get("tokens"), int) \
            and isinstance(dr.get("config"), dict) and all(k in dr["config"] for k in sections)
    else:
        ok = isinstance(dr, dict) and all(isinstance(dr.get(k), dict) for k in sections)
    check(name + ".datarater_meta", ok, "top-level keys %s" % (sorted(dr)[:12] if isinstance(dr, dict) else dr))
    # formats.md section 5: the tokenizer of the training shards, spec and 16 hex digits
    if o.get("shard"):
        sh = read_shard(_one(o, "shard"), decode=False)
        want = ("%016x" % sh.fingerprint, sh.spec)
        have = (meta.get("tokenizer_fingerprint"), meta.get("tokenizer"))
        check(name + ".tokenizer", have == want, "have %s, want %s" % (have, want))


def cmd_state(args):
    """state --name N --model FILE STATE: moments m.* / v.* under the model's names."""
    o = _parse_kv(args)
    name = _one(o, "name")
    _, _, mh = read_safetensors(_one(o, "model"))
    mh.pop("__metadata__", None)
    data, n, sh = read_safetensors(o["_"][0])
    meta = sh.pop("__metadata__", {})
    opt = meta.get("optimizer")
    names = set(k for k in sh)
    want = set("m." + k for k in mh) | (set("v." + k for k in mh) if opt == "adamw" else set())
    check(name + ".moments", want <= names, "optimizer %r, missing %s" % (opt, sorted(want - names)[:3]))
    check(name + ".moment_shapes", all(sh[k]["shape"] == mh[k[2:]]["shape"] for k in want if k in sh), "")


def cmd_corrupt(args):
    """corrupt --name N --tool BIN --work DIR SHARD: damage each region, reader and tool must refuse."""
    o = _parse_kv(args)
    name = _one(o, "name")
    tool = _one(o, "tool")
    work = _one(o, "work")
    src = o["_"][0]
    sh = read_shard(src)
    data = bytearray(sh.data)
    ioff = sh.index_off
    nb = len(sh.blocks)
    cases = []

    def flip(off, tag):
        b = bytearray(data)
        b[off] ^= 0x01
        cases.append((tag, bytes(b)))
    flip(0, "magic")
    flip(9, "version")
    flip(33, "header_doc_count")
    flip(41, "header_token_count")
    flip(49, "header_index_offset")
    flip(25, "header_fingerprint")
    flip(65, "header_checksum")
    b0 = sh.blocks[0]
    flip(b0[0] + b0[1] // 2, "block0_frame_middle")
    flip(b0[0] + 1, "block0_frame_magic")
    bl = sh.blocks[-1]
    flip(bl[0] + bl[1] - 1, "last_block_frame_end")
    flip(ioff + 1, "index_block_count")
    flip(ioff + 16 + 8, "index_block0_csize")
    flip(ioff + 16 + 16, "index_block0_cksum")
    dpos = ioff + 16 + 32 * nb
    flip(dpos + 1, "index_doc0_id")
    flip(dpos + 12, "index_doc0_offset")
    flip(dpos + 24 * (sh.n_docs - 1) + 16, "index_lastdoc_length")
    flip(len(data) - 9 - len(sh.spec.encode()) if sh.spec else len(data) - 9, "index_spec_or_sources")
    flip(len(data) - 3, "index_checksum")
    for cut in (1, 8, len(data) - ioff, len(data) - 72, len(data) - 60, len(data)):
        cases.append(("truncated_minus_%d" % cut, bytes(data[:len(data) - cut])))
    cases.append(("appended_byte", bytes(data) + b"\0"))
    # forged: damage with every checksum recomputed, so only the structural checks see it
    toks = [sh.block_tokens(b).copy() for b in range(nb)]
    docs = list(sh.docs)

    def forge(tag, blocks=None, docs_=None, vocab=None, sources=None, spec=None, **kw):
        cases.append(("forged_" + tag, write_shard_bytes(sh.width, vocab or sh.vocab, sh.fingerprint,
                                                         blocks or toks, docs_ or docs, sources or sh.sources,
                                                         sh.spec if spec is None else spec, **kw)))

    def hfix(**f):
        return lambda h: h.update(f)
    forge("header_version_2", hdr_fix=hfix(version=2))
    forge("header_width_4", hdr_fix=hfix(width=4))
    forge("header_reserved", hdr_fix=hfix(reserved=1))
    forge("header_doc_count_minus1", hdr_fix=lambda h: h.update(n_docs=h["n_docs"] - 1))
    forge("header_token_count_plus1", hdr_fix=lambda h: h.update(n_tokens=h["n_tokens"] + 1))
    forge("index_reserved", idx_reserved=1)
    forge("gap_between_blocks", gap=3)
    dt = "<u2" if sh.width == 2 else "<u4"
    raw0 = np.asarray(toks[0], dtype=dt).tobytes()
    fr0 = zstandard.ZstdCompressor(level=1).compress(raw0)
    frs = [zstandard.ZstdCompressor(level=1).compress(np.asarray(t, dtype=dt).tobytes()) for t in toks]
    bad = bytearray(fr0)
    bad[len(bad) // 2] ^= 0x40
    forge("frame_damaged_checksums_fixed", frames=[bytes(bad)] + frs[1:])
    h1 = len(raw0) // 2
    two = zstandard.ZstdCompressor(level=1).compress(raw0[:h1]) + zstandard.ZstdCompressor(level=1).compress(raw0[h1:])
    forge("block_of_two_frames", frames=[two] + frs[1:])
    forge("frame_not_zstd", frames=[raw0] + frs[1:])
    forge("uncompressed_cksum_wrong", entries_fix=lambda b, e: (e[0], e[1], e[2], e[3], e[4] ^ 1) if b == 0 else e)
    forge("uncompressed_size_wrong", entries_fix=lambda b, e: (e[0], e[1], e[2] + sh.width, e[3], e[4]) if b == 0 else e)
    forge("source_name_with_tab", sources=[sh.sources[0] + "\tx"] + sh.sources[1:])
    t2 = [t.copy() for t in toks]
    t2[0][0] = sh.vocab  # id == vocab size
    forge("token_id_ge_vocab", blocks=t2)
    d2 = list(docs)
    d2[0] = (d2[0][0], d2[0][1], d2[0][2], d2[0][3] + 1, d2[0][4])
    forge("doc_length_plus1", docs_=d2)
    d3 = list(docs)
    d3[-1] = (d3[-1][0], d3[-1][1], d3[-1][2], d3[-1][3], len(sh.sources))
    forge("source_id_out_of_range", docs_=d3)
    if len(docs) > 1:
        d4 = list(docs)
        d4[1] = (d4[1][0], d4[1][1], d4[1][2] + 1, d4[1][3] - 1, d4[1][4]) if d4[1][3] > 1 else d4[1]
        forge("doc_gap", docs_=d4)
    t5 = [t[:-1] for t in toks]
    forge("block_shorter_than_docs", blocks=t5)
    os.makedirs(work, exist_ok=True)
    # control: the forger's undamaged output is accepted by both and reads the same
    ctl = os.path.join(work, "forged-control.drs")
    with open(ctl, "wb") as f:
        f.write(write_shard_bytes(sh.width, sh.vocab, sh.fingerprint, toks, docs, sh.sources, sh.spec))
    try:
        read_shard(ctl)
        mine = None
    except ShardError as e:
        mine = str(e)
    r1 = subprocess.run([tool, "--ids", ctl], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r0 = subprocess.run([tool, "--ids", src], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(name + ".forged_control", mine is None and r1.returncode == 0 and r1.stdout == r0.stdout,
          "reader: %s; dr-cat rc=%d %s" % (mine or "ok", r1.returncode, r1.stderr[:200]))
    for tag, b in cases:
        p = os.path.join(work, "bad-%s.drs" % tag)
        with open(p, "wb") as f:
            f.write(b)
        try:
            read_shard(p)
            mine = None
        except ShardError as e:
            mine = str(e)
        r = subprocess.run([tool, p], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = r.stderr.decode("utf-8", "replace").strip("\n").split("\n")
        tool_ok = r.returncode != 0 and len(err) == 1 and p in err[0]
        check("%s.%s.reader" % (name, tag), mine is not None, mine or "reader accepted it")
        check("%s.%s.dr-cat" % (name, tag), tool_ok, "rc=%d stderr=%r" % (r.returncode, "\n".join(err)[:200]))


def cmd_bpetrain(args):
    """bpetrain --name N --n-vocab V --inputs J.json [--policy replace|keep] [--stderr F] [--rc R] VOCAB_DIR
    dr-tokenize --train-bpe V's result against §1.3 written out (bpe_train_ref): encoder.json
    and vocab.bpe byte for byte, or, when the corpus gives fewer merges, the refusal (exit
    status R != 0, "gives only M merges (M + 257 tokens)" in F, no files)."""
    o = _parse_kv(args)
    name = _one(o, "name")
    nv = int(_one(o, "n-vocab"))
    policy = _one(o, "policy", "replace")
    with open(_one(o, "inputs")) as f:
        inputs = json.load(f)
    docs = []
    for spec in inputs:
        docs.extend(d for d, _ in docs_of_input(spec))
    d = o["_"][0]
    r = bpe_train_ref(docs, nv, policy)
    rc = int(_one(o, "rc", "0"))
    err = ""
    if "stderr" in o:
        with open(_one(o, "stderr"), "rb") as f:
            err = f.read().decode("utf-8", "replace")
    if isinstance(r, int):
        want = "--train-bpe %d: the corpus gives only %d merges (%d tokens)" % (nv, r, r + 257)
        nofiles = not any(os.path.exists(os.path.join(d, x)) for x in ("encoder.json", "vocab.bpe"))
        check(name + ".too_few_merges", rc != 0 and want in err and nofiles,
              "reference: %s; tool exit %d, files %s, stderr %r" % (want, rc, not nofiles, err.strip()[-200:]))
        return
    if not check(name + ".trained", rc == 0, "reference makes %d merges; tool exit %d %r" % (len(r[1]), rc, err.strip()[-200:])):
        return
    enc, voc = bpe_files_ref(*r)
    with open(os.path.join(d, "encoder.json"), "rb") as f:
        got_enc = f.read()
    with open(os.path.join(d, "vocab.bpe"), "rb") as f:
        got_voc = f.read()
    first = next((i for i, (a, b) in enumerate(zip(got_voc.split(b"\n"), voc.split(b"\n"))) if a != b), None)
    check(name + ".vocab.bpe", got_voc == voc, "%d merges, %d pairs banned; first differing line %s: tool %r reference %r" % (
        len(r[1]), BPE_BANNED[0], first, got_voc.split(b"\n")[first] if first is not None else b"",
        voc.split(b"\n")[first] if first is not None else b""))
    check(name + ".encoder.json", got_enc == enc, "%d bytes, reference %d" % (len(got_enc), len(enc)))


def cmd_layout(args):
    """layout --name N --rule tokenize|split|none --mb MB SHARD... (one run's, or one split's, in order)
    The shard boundaries of docs/formats.md §1: dr-tokenize starts a new shard before its
    uncompressed token bytes would pass MB MiB, dr-split one once they reach MB MiB; and in
    every shard the blocks: closed before they would pass 1 MiB, a longer document alone."""
    o = _parse_kv(args)
    name = _one(o, "name")
    rule = _one(o, "rule", "none")
    lim = float(_one(o, "mb", "64")) * 1048576.0
    shards = [read_shard(p, decode=False) for p in o["_"]]
    sizes = [[d[3] * sh.width for d in sh.docs] for sh in shards]
    bad = []
    for k, sz in enumerate(sizes):
        tot = sum(sz)
        if not sz:
            bad.append("shard %d empty" % k)
            continue
        if rule == "tokenize":
            if tot > lim and len(sz) > 1:
                bad.append("shard %d: %d bytes > %.17g in %d documents" % (k, tot, lim, len(sz)))
            if k + 1 < len(sizes) and sizes[k + 1] and tot + sizes[k + 1][0] <= lim:
                bad.append("shard %d (%d bytes) closed, but the next document (%d) fits" % (k, tot, sizes[k + 1][0]))
        elif rule == "split":
            if tot - sz[-1] >= lim:
                bad.append("shard %d: %d bytes before its last document, not closed at %.17g" % (k, tot - sz[-1], lim))
            if k + 1 < len(sizes) and tot < lim:
                bad.append("shard %d closed at %d bytes < %.17g" % (k, tot, lim))
        # blocks
        sh = shards[k]
        per = [[] for _ in sh.blocks]
        for d in sh.docs:
            per[d[1]].append(d[3] * sh.width)
        for b, bs in enumerate(per):
            if sum(bs) > (1 << 20) and len(bs) > 1:
                bad.append("shard %d block %d: %d bytes in %d documents" % (k, b, sum(bs), len(bs)))
            if b + 1 < len(per) and per[b + 1] and sum(bs) + per[b + 1][0] <= (1 << 20) \
                    and not (len(bs) == 1 and bs[0] > (1 << 20)):
                bad.append("shard %d block %d (%d bytes) closed, but the next document (%d) fits"
                           % (k, b, sum(bs), per[b + 1][0]))
    check(name + ".layout", not bad, "%d shards, %d blocks, rule %s, limit %.17g bytes; %s" % (
        len(shards), sum(len(s.blocks) for s in shards), rule, lim, "; ".join(bad[:3])))


def cmd_catscores(args):
    """catscores --name N --seq-len L --scores F (--top K | --bottom K) --catjsonl OUT SHARD...
    dr-cat --jsonl --ids --scores F --top/--bottom K: the K highest (lowest) scored lines
    whose ids the inputs have, best (worst) first (ties in any order), each with its
    window's tokens [w*L, w*L + L + 1) (dr-cat --help); scores compared as %.9g prints them."""
    o = _parse_kv(args)
    name = _one(o, "name")
    L = int(_one(o, "seq-len"))
    top = "top" in o
    K = int(_one(o, "top") if top else _one(o, "bottom"))
    shards = [read_shard(p) for p in o["_"]]
    docs = {}
    for sh in shards:
        for d, src, toks in sh.all_tokens():
            docs.setdefault("%016x" % d[0], (toks, set()))[1].add(src)
    # dr-cat prints the score as %.9g (what dr-score writes): compare at that precision
    cand = []
    for l in read_scores(_one(o, "scores"))[1:]:
        r = l.split("\t")
        if r[0].split(":")[0] in docs:
            cand.append((r[0], float("%.9g" % float(r[1]))))
    cand.sort(key=lambda c: -c[1] if top else c[1])
    want = cand[:K]
    with open(_one(o, "catjsonl"), "rb") as f:
        rows = [json.loads(l) for l in f.read().split(b"\n") if l.strip()]
    have = [(r.get("example"), float(r.get("score"))) for r in rows]
    ok_scores = [h[1] for h in have] == [w[1] for w in want]
    from collections import Counter
    hc = Counter(have)
    ok_members = not (hc - Counter(cand))
    cut = want[-1][1] if want else None
    ok_strict = not (Counter(c for c in want if c[1] != cut) - hc)
    bad_rows = []
    for r in rows:
        did, w = r["example"].split(":")
        w = int(w)
        toks, srcs = docs[did]
        win = list(map(int, toks[w * L:min(len(toks), w * L + L + 1)]))
        if r.get("ids") != win or r.get("n_tokens") != len(win) or r.get("window") != w or r.get("id") != did \
                or r.get("source") not in srcs:
            bad_rows.append(r["example"])
    check(name + ".catscores", ok_scores and ok_members and ok_strict and not bad_rows and len(rows) == len(want),
          "%s %d: %d lines (reference %d of %d candidates); scores in order %s, lines from the file %s, all above "
          "the cut %s, windows %s" % ("top" if top else "bottom", K, len(rows), len(want), len(cand), ok_scores,
                                      ok_members, ok_strict, bad_rows[:2] or "ok"))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = globals().get("cmd_" + cmd.replace("-", "_"))
    if fn is None:
        print("formats_ref.py: unknown subcommand %s" % cmd, file=sys.stderr)
        return 2
    rc = fn(args)
    if rc:
        return rc
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
