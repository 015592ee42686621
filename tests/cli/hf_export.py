#!/usr/bin/env python3
"""hf_export.py IN.safetensors OUTDIR [options] — rewrites one of our LM checkpoints the
way Hugging Face lays out a GPT-2 model directory, for tests/cli/init_hf.sh:
OUTDIR/model.safetensors with __metadata__ {"format": "pt"} only, the attention's
causal-mask buffers h.{i}.attn.bias [1,1,ctx,ctx] and h.{i}.attn.masked_bias [], a tied
lm_head.weight, and OUTDIR/config.json (the "config" metadata of IN).
  --no-prefix      names without "transformer." (GPT2Model, the original gpt2 files)
  --f16            every float tensor as F16 (rounded); else IN's dtype
  --untie          lm_head.weight = wte with one element changed
  --no-config      no config.json
  --config-set K=V set K (JSON value, else a string) in config.json
"""
import json, struct, sys

args = sys.argv[1:]
src, out, opts = args[0], args[1], args[2:]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
data = b[8 + n:]
meta = h.pop('__metadata__')
config = json.loads(meta['config'])
names = sorted(h, key=lambda k: h[k]['data_offsets'][0])
fmt = {'F32': 'f', 'F64': 'd'}


def values(name):
    t = h[name]
    raw = data[t['data_offsets'][0]:t['data_offsets'][1]]
    return list(struct.unpack('<%d%s' % (len(raw) // struct.calcsize(fmt[t['dtype']]), fmt[t['dtype']]), raw))


tensors = [(k, h[k]['shape'], values(k)) for k in names]   # (name, shape, values)
ctx, n_layer = config['n_positions'], config['n_layer']
wte = tensors[0]
assert wte[0] == 'transformer.wte.weight'
head = list(wte[2])
if '--untie' in opts:
    head[7] += 0.25
tensors.append(('lm_head.weight', wte[1], head))
for i in range(n_layer):   # the buffers GPT2Attention registers (older transformers save them)
    mask = [1.0 if c <= r else 0.0 for r in range(ctx) for c in range(ctx)]
    tensors.append(('transformer.h.%d.attn.bias' % i, [1, 1, ctx, ctx], mask))
    tensors.append(('transformer.h.%d.attn.masked_bias' % i, [], [-1e4]))
if '--no-prefix' in opts:
    tensors = [(k[len('transformer.'):] if k.startswith('transformer.') else k, s, v) for k, s, v in tensors]
src_dtype = h[names[0]]['dtype']   # F32 (float build) or F64 (double build): kept
dtype, code = ('F16', 'e') if '--f16' in opts else (src_dtype, fmt[src_dtype])
header, body = {'__metadata__': {'format': 'pt'}}, b''
for k, s, v in tensors:
    raw = struct.pack('<%d%s' % (len(v), code), *v)
    header[k] = {'dtype': dtype, 'shape': s, 'data_offsets': [len(body), len(body) + len(raw)]}
    body += raw
hj = json.dumps(header, separators=(',', ':')).encode()
hj += b' ' * (-len(hj) % 8)
with open(out + '/model.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(hj)) + hj + body)
for o in opts:
    if o.startswith('--config-set='):
        k, v = o[len('--config-set='):].split('=', 1)
        try:
            config[k] = json.loads(v)
        except ValueError:
            config[k] = v
if '--no-config' not in opts:
    with open(out + '/config.json', 'w') as f:
        json.dump(config, f, indent=2)
