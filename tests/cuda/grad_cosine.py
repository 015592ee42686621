#!/usr/bin/env python3
"""grad_cosine.py A B [MIN_COSINE] — compares two meta-gradients that `dr-meta grad` saved
(safetensors, F32 or F64): prints the cosine over every tensor of more than one number
(in name order) and |A - B| / |B|; exits 1 when the cosine is below MIN_COSINE (default:
never). Plain python3 (no numpy), for tests/cuda/tools_gpu.sh and reference_tools.sh."""
import array
import json
import math
import struct
import sys


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        s, e = v["data_offsets"]
        a = array.array({"F32": "f", "F64": "d"}[v["dtype"]])
        a.frombytes(raw[8 + n + s:8 + n + e])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = a
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: grad_cosine.py A B [MIN_COSINE]")
    g, c = load(sys.argv[1]), load(sys.argv[2])
    if g.keys() != c.keys():
        sys.exit("grad_cosine.py: the two files hold different tensors")
    names = sorted(k for k in g if len(g[k]) > 1)
    a = [x for k in names for x in g[k]]
    b = [x for k in names for x in c[k]]
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        sys.exit("grad_cosine.py: a zero gradient")
    cos = sum(x * y for x, y in zip(a, b)) / (na * nb)
    rel = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b))) / nb
    print(f"{len(names)} tensors, {len(a)} numbers: cosine {cos:.7f}, |a - b| / |b| {rel:.3g}")
    if len(sys.argv) == 4 and cos < float(sys.argv[3]):
        sys.exit(1)


main()
