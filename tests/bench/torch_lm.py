#!/usr/bin/python3
"""PyTorch on the same benchmark as bench_lm (make bench, BENCH_ONLY=torch): what a
PyTorch implementation pays, on this machine, for a training step and for the
meta-gradient's per-step pass (H·u and d_i = <grad l_i, u>), so bench_lm's ratios can be
read against it. Float32, eager, `torch.set_num_threads` as given (default 2).

The model is bench_lm's: GPT-2 (DESIGN §3), L 4, d 256, 8 heads, ctx 256, batch 16,
vocab 8192, tied embedding, random tokens. Three timings, median of `reps`:
  train   loss forward + backward + clip + torch.optim.AdamW step;
  rr      reverse-over-reverse, as a create_graph unroll computes it: g = grad(L, theta,
          create_graph), then grad(<g, u>, (theta, w)) gives H·u and d_i / B (w the
          per-example weights, all 1); g is there too;
  for     forward-over-reverse with functorch: jvp of (theta, w) -> grad(L, theta) along
          (u, 0) gives H·u (and g); d_i by a second jvp of the per-example losses.
Usage: torch_lm.py [reps] [threads]. Prints numbers; never pass/fail (DESIGN §8).
"""
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
L, d, H, ctx, B, V = 4, 256, 8, 256, 16, 8192
dh = d // H


def shapes():
    s = {"wte": (V, d), "wpe": (ctx, d), "lnf_w": (d,), "lnf_b": (d,)}
    for i in range(L):
        s.update({f"{i}.ln1_w": (d,), f"{i}.ln1_b": (d,), f"{i}.attn_w": (d, 3 * d),
                  f"{i}.attn_b": (3 * d,), f"{i}.proj_w": (d, d), f"{i}.proj_b": (d,),
                  f"{i}.ln2_w": (d,), f"{i}.ln2_b": (d,), f"{i}.fc_w": (d, 4 * d),
                  f"{i}.fc_b": (4 * d,), f"{i}.fc2_w": (4 * d, d), f"{i}.fc2_b": (d,)})
    return s


names = list(shapes())
theta = [torch.randn(shp) * 0.02 if len(shp) == 2 else
         (torch.ones(shp) if "ln" in n and n.endswith("_w") else torch.zeros(shp))
         for n, shp in shapes().items()]
mask = torch.full((ctx, ctx), float("-inf")).triu(1)


def composite_layer_norm(h, w, b):
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    return (h - mu) * torch.rsqrt(var + 1e-5) * w + b


def composite_gelu(a):
    return 0.5 * a * (1 + torch.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))


def per_example_losses(P, x, y, composite=False):
    """composite: every op from elementwise pieces (1.13's forward AD lacks the backward
    formulas of layer_norm, softmax, GELU and cross-entropy); otherwise PyTorch's fused ops."""
    p = dict(zip(names, P))
    if composite:
        layer_norm = composite_layer_norm
        softmax = lambda z: torch.exp(z - torch.logsumexp(z, -1, keepdim=True))
        gelu = composite_gelu
    else:
        layer_norm = lambda h, w, b: F.layer_norm(h, (d,), w, b, 1e-5)
        softmax = lambda z: torch.softmax(z, dim=-1)
        gelu = lambda a: F.gelu(a, approximate="tanh")
    h = p["wte"][x] + p["wpe"][:ctx]
    for i in range(L):
        a = layer_norm(h, p[f"{i}.ln1_w"], p[f"{i}.ln1_b"])
        q, k, v = (a @ p[f"{i}.attn_w"] + p[f"{i}.attn_b"]).split(d, dim=-1)
        q, k, v = (t.view(B, ctx, H, dh).transpose(1, 2) for t in (q, k, v))
        att = softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask)
        o = (att @ v).transpose(1, 2).reshape(B, ctx, d)
        h = h + o @ p[f"{i}.proj_w"] + p[f"{i}.proj_b"]
        a = layer_norm(h, p[f"{i}.ln2_w"], p[f"{i}.ln2_b"])
        h = h + gelu(a @ p[f"{i}.fc_w"] + p[f"{i}.fc_b"]) @ p[f"{i}.fc2_w"] + p[f"{i}.fc2_b"]
    h = layer_norm(h, p["lnf_w"], p["lnf_b"])
    logits = h @ p["wte"].t()
    if composite:
        return (torch.logsumexp(logits, -1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)).mean(1)
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="none").view(B, ctx).mean(1)


x = torch.randint(0, V, (B, ctx))
y = torch.randint(0, V, (B, ctx))
u = [torch.randn_like(t) * 1e-3 for t in theta]


def median_time(fn):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


params = [t.clone().requires_grad_(True) for t in theta]
opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)


def train_step():
    opt.zero_grad(set_to_none=True)
    per_example_losses(params, x, y).mean().backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def reverse_over_reverse():
    P = [t.detach().requires_grad_(True) for t in theta]
    w = torch.ones(B, requires_grad=True)
    g = torch.autograd.grad((w * per_example_losses(P, x, y)).mean(), P, create_graph=True)
    out = torch.autograd.grad(sum((gi * ui).sum() for gi, ui in zip(g, u)), P + [w])
    return out[:-1], out[-1] * B  # H·u, d_i


have_functorch = True
try:
    from functorch import grad, jvp
except ImportError:
    have_functorch = False


def forward_over_reverse():
    def grad_of(*P):
        return grad(lambda *Q: per_example_losses(list(Q), x, y, True).mean(), argnums=tuple(range(len(P))))(*P)
    g, hu = jvp(grad_of, tuple(theta), tuple(u))
    _, d_i = jvp(lambda *P: per_example_losses(list(P), x, y, True), tuple(theta), tuple(u))
    return hu, d_i


tokens = B * ctx
n_params = sum(t.numel() for t in theta)  # all, wpe and the tied wte included, as bench_lm
flops = (6 * n_params + 6 * L * d * ctx) * tokens
print(f"torch_lm: PyTorch {torch.__version__}, {torch.get_num_threads()} threads, float32, eager; "
      f"L={L} d={d} heads={H} ctx={ctx} B={B} V={V}, N={n_params / 1e6:.2f}M params")
t_train = median_time(train_step)
print(f"train step (fwd+bwd+clip+AdamW): {t_train * 1e3:8.1f} ms  {tokens / t_train:8.0f} tokens/s  "
      f"{flops / t_train / 1e9:6.1f} GFLOP/s")
t_rr = median_time(reverse_over_reverse)
print(f"reverse-over-reverse (g, H·u, d_i):   {t_rr * 1e3:8.1f} ms  ratio to a train step {t_rr / t_train:.2f}")
if have_functorch:
    t_for = median_time(forward_over_reverse)
    print(f"forward-over-reverse, functorch jvp(grad) + jvp(losses): {t_for * 1e3:8.1f} ms  "
          f"ratio to a train step {t_for / t_train:.2f}")
    (hu_rr, d_rr), (hu_for, d_for) = reverse_over_reverse(), forward_over_reverse()
    num = max((a - b).abs().max().item() for a, b in zip(hu_rr + (d_rr,), list(hu_for) + [d_for]))
    den = max(a.abs().max().item() for a in hu_rr + (d_rr,))
    print(f"  the two agree: max |difference| / max |value| over H·u and d_i = {num / den:.1e}")
else:
    print("forward-over-reverse: functorch is not installed, not measured")
