#!/usr/bin/env python3
"""st_edit.py JOBS.tsv — makes safetensors files with one thing changed, for the tests
that check how the tools refuse damaged checkpoints (bad_inputs.sh,
train_resume_state.sh). One job per line, tab-separated: IN OUT MODE ARGS...; jobs run in
order (a job may read an earlier job's OUT). MODE:
  dtype NAME            F32 -> I32, F64 -> I64 (the same bytes)
  shape NAME            dims reversed (the same element count)
  drop NAME             the tensor and its bytes removed
  meta KEY VALUE        __metadata__[KEY] = VALUE ("..." : that JSON string, e.g. "")
  metajson KEY FIELD [VALUE]  FIELD of the JSON object in __metadata__[KEY] removed, or
                        set to VALUE (JSON, else the string)
  metadrop KEY FIELD... those fields of that JSON object removed
  nan NAME [INDEX]      element INDEX (default 0) of the tensor set to NaN
  inf NAME [INDEX]      … set to +infinity
  fill NAME VALUE       every element of the tensor set to VALUE
"""
import json, struct, sys

for line in open(sys.argv[1]).read().splitlines():
    src, dst, mode, *args = line.split('\t')
    b = open(src, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); data = b[8 + n:]
    meta = h.pop('__metadata__', None)
    order = sorted(h, key=lambda k: h[k]['data_offsets'][0])
    chunks = {k: data[h[k]['data_offsets'][0]:h[k]['data_offsets'][1]] for k in order}
    if mode == 'dtype': h[args[0]]['dtype'] = {'F32': 'I32', 'F64': 'I64'}[h[args[0]]['dtype']]
    elif mode == 'shape': h[args[0]]['shape'] = h[args[0]]['shape'][::-1]
    elif mode == 'drop': del h[args[0]]
    elif mode == 'meta': meta[args[0]] = json.loads(args[1]) if args[1].startswith('"') else args[1]
    elif mode in ('metajson', 'metadrop'):
        j = json.loads(meta[args[0]])
        if mode == 'metadrop':
            for f in args[1:]: del j[f]
        elif len(args) > 2:
            try: j[args[1]] = json.loads(args[2])
            except ValueError: j[args[1]] = args[2]
        else: del j[args[1]]
        meta[args[0]] = json.dumps(j, separators=(',', ':'))
    elif mode in ('nan', 'inf'):
        c = bytearray(chunks[args[0]]); i = int(args[1]) if len(args) > 1 else 0
        if h[args[0]]['dtype'] == 'F64': c[8 * i:8 * i + 8] = struct.pack('<d', float(mode))
        else: c[4 * i:4 * i + 4] = struct.pack('<f', float(mode))
        chunks[args[0]] = bytes(c)
    elif mode == 'fill':
        f = '<d' if h[args[0]]['dtype'] == 'F64' else '<f'
        chunks[args[0]] = struct.pack(f, float(args[1])) * (len(chunks[args[0]]) // struct.calcsize(f))
    else: sys.exit('st_edit.py: unknown mode ' + mode)
    out, body, off = {}, b'', 0
    if meta is not None: out['__metadata__'] = meta
    for k in order:
        if k not in h: continue
        c = chunks[k]; v = dict(h[k]); v['data_offsets'] = [off, off + len(c)]
        off += len(c); body += c; out[k] = v
    hb = json.dumps(out, separators=(',', ':')).encode()
    hb += b' ' * (-len(hb) % 8)
    open(dst, 'wb').write(struct.pack('<Q', len(hb)) + hb + body)
