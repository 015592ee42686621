#!/usr/bin/python3
"""PyTorch on the GPU, on bench_cuda's reference LM: what an eager PyTorch training step
costs on the same card, so bench_cuda's tokens/s and MFU can be read against it.

The model is configs/gpu.yaml's LM (DESIGN §3: GPT-2, pre-LayerNorm, GELU (tanh), tied
embedding, learned positions): 12 layers, d 512, 8 heads, ctx 1024, batch 64, vocab
50257, random tokens. One step = forward + mean cross-entropy + backward + clip(1) +
AdamW (fused). Variants: bf16 autocast (fp32 master weights) with
F.scaled_dot_product_attention (PyTorch picks its flash kernel), and the same with
torch.compile when --compile is given. MFU counts 6·N + 6·L·d·ctx FLOPs per token (N
with the tied wte counted once), over the bf16 GEMM rate measured here on 8192³
(median of 10 after 3 warm-ups), as bench_cuda does.
Usage: torch_gpu_lm.py [--reps N] [--compile] [--batch B]. Prints numbers, never
pass/fail.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--compile", action="store_true")
args = ap.parse_args()

L, d, H, ctx, V = 12, 512, 8, 1024, 50257
B = args.batch
dev = "cuda"
torch.manual_seed(0)


def timed(fn, reps, warm):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


# the bf16 GEMM rate, bf16 inputs with fp32 accumulation (torch's default for bf16 matmul)
n = 8192
x = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
y = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
t = timed(lambda: x @ y, 10, 3)
peak = 2 * n ** 3 / t
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}: bf16 GEMM 8192^3 "
      f"{peak / 1e12:.1f} TFLOP/s")
del x, y


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.fc2 = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, H, d // H).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, d)
        self.wpe = torch.nn.Embedding(ctx, d)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(d)

    def forward(self, idx, tgt):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lnf(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, V), tgt.view(-1))


model = LM().to(dev)
N = sum(p.numel() for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
tokens = torch.randint(0, V, (B, ctx + 1), device=dev)
idx, tgt = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
flops_per_token = 6 * N + 6 * L * d * ctx


def step(fwd):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = fwd(idx, tgt)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


variants = [("eager, bf16 autocast, SDPA", model)]
if args.compile:
    variants.append(("torch.compile, bf16 autocast, SDPA", torch.compile(model)))
for name, fwd in variants:
    torch.cuda.reset_peak_memory_stats()
    t = timed(lambda: step(fwd), args.reps, 3 if args.compile else 2)
    tps = B * ctx / t
    print(f"reference LM (N {N}, B {B}), {name}: {t * 1e3:.1f} ms per step, "
          f"{tps / 1e3:.1f}k tokens/s, {tps * flops_per_token / 1e12:.1f} TFLOP/s, "
          f"MFU {100 * tps * flops_per_token / peak:.1f}%, peak memory "
          f"{torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB")
