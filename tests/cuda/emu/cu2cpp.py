#!/usr/bin/env python3
"""cu2cpp.py — EMULATION ONLY: rewrites a .cu file into C++ for the CPU emulator.

Every launch  kernel<<<grid, block[, shmem, stream]>>>(args);  becomes
    emu_launch(dim3(grid), dim3(block), [=] { kernel(args); });
Newlines inside the launch are kept, and a #line directive names the original file,
so compiler messages and __FILE__/__LINE__ (cudaCheck) point at lib/cuda/*.cu.
Usage: cu2cpp.py lib/cuda/foo.cu > foo.cpp
"""
import re
import sys


def split_top(s):
    """Split s at the commas that are not inside brackets."""
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def rewrite(src, path):
    out, i = ['#line 1 "%s"\n' % path], 0
    launch = re.compile(r'([A-Za-z_]\w*)\s*<<<')
    while True:
        m = launch.search(src, i)
        if not m:
            out.append(src[i:])
            break
        out.append(src[i:m.start()])
        k, depth = m.end(), 0
        while not (depth == 0 and src.startswith('>>>', k)):
            depth += src[k] in '([{'
            depth -= src[k] in ')]}'
            k += 1
        config = split_top(src[m.end():k])
        k += 3
        while src[k].isspace():
            k += 1
        if src[k] != '(':
            sys.exit('%s: a launch of %s without arguments' % (path, m.group(1)))
        a, depth = k, 0
        while True:
            depth += src[a] == '('
            depth -= src[a] == ')'
            if depth == 0:
                break
            a += 1
        args = src[k + 1:a]
        out.append('emu_launch(dim3(%s), dim3(%s), [=] { %s(%s); })'
                   % (config[0], config[1], m.group(1), args))
        i = a + 1
    return ''.join(out)


if __name__ == '__main__':
    path = sys.argv[1]
    sys.stdout.write(rewrite(open(path).read(), path))
