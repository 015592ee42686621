#!/usr/bin/python3
"""random_cases.py -- a randomized cross-check of the double tools against torch_ref.py.

tests/xcheck/run.sh checks a fixed set of configurations; this draws N random but valid
ones from a seed and runs, for each, the same tool / reference pairs run.sh runs, with
run.sh's tolerances:

  grad    dr-meta grad (dJ/dphi per tensor and global, l_val, objective) vs torch_ref.py grad
          (tol 1e-8, losses 1e-10), over: AdamW / SGD (momentum 0 .. 0.99), weight decay 0 or
          > 0, betas down to 0 (beta2 = 0 with eps >= 1e-3: with a small eps it divides by
          |g| ~ 0, a chaos no check can compare), eps 1e-12 .. 1e-3, clip off / never active /
          active on some steps (drawn near the first batch's gradient norm) / on all,
          warmup + cosine / constant (min_lr_frac, reset_every), sigmoid + clamp (incl.
          [lo, lo], [0, 1] and saturated logits) / softmax, tau, mean_normalize, the
          regularizers, hvp true / false, backprop_steps < T, checkpoint_every c (0, not
          dividing T), keep_activations, lm/rater checkpointing, lm.head_chunk,
          bucket_by_length, val_batches, sets that wrap around, splits in several shards,
          seq_len_rater < seq_len (and = seq_len + 1), short padded documents and min_tokens,
          n_head / d_model with head dim 1, 2 or odd, d_ff, rater layers != LM layers,
          lm.vocab_size above the shards', 1 or 2 threads;
  score   dr-score --rater scores.tsv vs torch_ref.py score (tol 1e-7);
  lmscore dr-score --lm vs torch_ref.py lmscore (tol 1e-8);
  eval    dr-train --eval-only vs torch_ref.py eval (train.eval_batches E; tol 1e-12);
  train   dr-train l_train per step and final weights, continued by torch_ref.py train from
          the --stop-at 2 state (tol 1e-9, losses 1e-10): plain, --weights scores.tsv,
          --rater R --online-keep F, with or without --init;
  scratch dr-train from its own init (experiment.seed, up to 2^64 - 1) or --init, over the
          documented data order (shuffle, length buckets, batch sizes 1..7 straddling
          epochs): torch_ref.py scratch (tol 1e-9, losses 1e-10);
  meta    whole dr-meta runs (K 1..3, T 1..3, rounds 1..4, reset_every, Feistel or shard
          order, combine mean / per_member_adam, outer AdamW with clip, EMA, track_uniform):
          torch_ref.py meta (tol 1e-7, losses 1e-9, meta_grad_norm 1e-7).

Every case builds its own corpus (tests/data/gen_toy.sh with random counts and lengths),
splits it (dr-split), makes an LM checkpoint (dr-train) and a rater checkpoint (dr-meta,
mode detach), and perturbs both (every tensor gets Gaussian noise; the rater's head is
scaled and shifted so that Train_A's logits spread over 0.3..20 around -2..2, or, one
case in seven, around +-12..40: saturated sigmoid weights), all in its own directory.
Case i of seed S draws from random.Random("S:i:data") and, for its checks, "S:i:grad",
"S:i:score", "S:i:train", "S:i:scratch", "S:i:meta" alone, so

  tests/xcheck/random_cases.py --seed S --only i --keep --verbose

repeats it (whatever --kinds) and prints every command it runs, to rerun by hand in the
kept directory.

  tests/xcheck/random_cases.py [--seed S] [--cases N] [--bin DIR] [--keep] [--only I[,J..]]
                               [--kinds grad,score,lmscore,eval,train,scratch,meta] [--verbose]
  make xcheck-random [XCHECK_CASES=N] [XCHECK_SEED=S]      (tests/xcheck/random.sh)

A FAIL is first put to a conditioning probe (probe(), below): the C tool runs again from
its inputs perturbed by 1e-14 relative; where that moves its result as far as (within
10x) the reference is from it, the check is reported UNSTABLE and not counted: no two
float64 implementations can agree there (Adam dividing by sqrt(v) ~ 0, meta-gradients
that are 0 in exact arithmetic, chaotic training runs). A per-tensor meta-gradient
failure on a tensor the reference finds 0 in exact arithmetic (softmax: head.out.bias),
within 1e-11 of the largest gradient, is reported ZERO. The summary lists both, the
coverage (how many cases had each feature) and the largest error of each quantity.

The reference is imported (not started per check: one torch import for the whole run)
and run through its own command line, so each "ref" line printed is the command to run
by hand. About 0.5 s per case with every kind, 0.1 s with grad alone, on one core (200
cases: 100 s). Not part of make test or make xcheck. Exit 0 when all checks pass (UNSTABLE
and ZERO listed), 1 on any FAIL or error, 77 without torch.
"""
import argparse
import contextlib
import io
import math
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REF = os.path.join(HERE, "torch_ref.py")

try:
    import torch  # noqa: F401
    import numpy  # noqa: F401
    import yaml  # noqa: F401
except ImportError as e:
    print(f"SKIPPED: {sys.executable} cannot import {e.name}")
    sys.exit(77)
sys.path.insert(0, HERE)
import torch_ref  # noqa: E402


class ToolError(Exception):
    pass


class Case:
    """One random case: its directory, the commands it ran, its CHECK results."""

    def __init__(self, root, seed, i, bin_dir, verbose):
        self.i = i
        self.seed = seed
        self.rng = random.Random(f"{seed}:{i}:data")
        self.dir = os.path.join(root, f"case{i:04d}")
        os.makedirs(self.dir)
        self.bin = bin_dir
        self.verbose = verbose
        self.checks = []     # (kind, name, maxrel, tol, ok)
        self.errors = []
        self.log = []
        self.zero = {}       # tensors the reference finds 0 in exact arithmetic: name -> its rel
        self.meta_zero = set()  # final-rater tensors the reference finds with a 0 meta-gradient

    def say(self, s):
        self.log.append(s)
        if self.verbose:
            print(s)
            sys.stdout.flush()

    def tool(self, name, *args, stdout=None, ok_fail=False):
        cmd = [os.path.join(self.bin, name)] + [str(a) for a in args]
        shown = " ".join(shlex.quote(c) for c in [name] + cmd[1:])
        self.say(f"$ {shown}" + (f" > {stdout}" if stdout else ""))
        out = open(os.path.join(self.dir, stdout), "w") if stdout else subprocess.DEVNULL
        try:
            p = subprocess.run(cmd, cwd=self.dir, stdout=out, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive"))
        finally:
            if stdout:
                out.close()
        if p.returncode != 0:
            if ok_fail:
                return p
            raise ToolError(f"{shown}: exit {p.returncode}: {p.stderr.strip()[-600:]}")
        return p

    def ref(self, kind, *args):
        """torch_ref.py in this process, through its own argument parser."""
        argv = [str(a) for a in args]
        self.say("$ python3 tests/xcheck/torch_ref.py " + " ".join(shlex.quote(a) for a in argv))
        buf = io.StringIO()
        cwd = os.getcwd()
        old_argv = sys.argv
        rc = 0
        try:
            os.chdir(self.dir)
            sys.argv = [REF] + argv
            with contextlib.redirect_stdout(buf):
                torch_ref.main()
        except SystemExit as e:
            rc = e.code or 0
        except Exception:
            rc = -1
            self.errors.append(f"reference raised: {traceback.format_exc()[-1500:]}")
        finally:
            sys.argv = old_argv
            os.chdir(cwd)
        out = buf.getvalue()
        for line in out.splitlines():
            self.say(line)
            m = re.match(r"#\s+(\S+)\s+rel (\S+)\s+max\|ref\| (\S+)\s+max\|C\| (\S+)\s+\(exactly 0", line)
            if m:
                self.zero[m.group(1)] = float(m.group(2))
            m = re.search(r"0-gradient tensors .*\((\S.*?): \|C - ref\|", line)
            if m:
                self.meta_zero |= set(m.group(1).split(", "))
            m = re.match(r"CHECK (.*?)\s+maxrel=(\S+) tol=(\S+) (PASS|FAIL)", line)
            if m:
                self.checks.append((kind, m.group(1).strip(), float(m.group(2)), float(m.group(3)),
                                    m.group(4) == "PASS"))
        if rc not in (0, 1) and rc != -1:
            self.errors.append(f"reference exit {rc}")
        return out


# ----------------------------------------------------------------------------------------
# random draws

def pick_shape(rng, max_layers=2):
    d = rng.choice([8, 9, 10, 12, 14, 15, 16, 18, 20, 21, 24, 27, 32])
    heads = [h for h in range(1, d + 1) if d % h == 0 and h <= 16]
    nh = rng.choice(heads)
    ff = 0 if rng.random() < 0.6 else rng.randint(3, 48)
    return {"n_layer": rng.randint(1, max_layers), "d_model": d, "n_head": nh, "d_ff": ff}


def loguni(rng, lo, hi):
    return 10 ** rng.uniform(math.log10(lo), math.log10(hi))


def fmt(x):
    return repr(float(x)) if isinstance(x, float) else str(x)


def sets(d):
    out = []
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            v = "[" + ",".join(fmt(x) for x in v) + "]"
        elif isinstance(v, bool):
            v = "true" if v else "false"
        else:
            v = fmt(v)
        out += ["--set", f"{k}={v}"]
    return out


def draw_data(rng):
    S = rng.randint(4, 24)
    short = rng.random() < 0.5  # heavy padding: many documents shorter than a window
    lo = rng.randint(1, 6) if short else rng.randint(2, S)
    hi = rng.randint(lo + 1, max(lo + 2, S + 2 if short else 3 * S + 10))
    dat = {
        "seq_len": S,
        "min_tokens": 2 if rng.random() < 0.6 else rng.randint(2, min(S + 1, 8)),
        "batch_size": rng.randint(2, 6),
        "seq_len_rater": rng.choice([0, 0, rng.randint(1, S), S + 1, max(1, S // 2)]),
        "n_clean": rng.randint(3, 24), "n_corrupt": rng.randint(0, 20), "gen_seed": rng.randint(1, 10 ** 6),
        "min_len": lo, "max_len": hi, "val_frac": rng.uniform(0.2, 0.5), "split_seed": rng.randint(0, 10 ** 6),
        "multi_shard": rng.random() < 0.3, "vocab_size": rng.choice([0] * 8 + [257, 300]),
    }
    if d_ms := dat_ms(rng, dat):
        dat.update(d_ms)
    return dat


def dat_ms(rng, dat):
    """Several shards need more than 1 KiB (512 tokens) per split."""
    if not dat["multi_shard"]:
        return None
    return {"n_clean": rng.randint(25, 50), "n_corrupt": rng.randint(10, 30), "max_len": max(dat["max_len"], 60),
            "min_len": max(dat["min_len"], 10)}


def draw_opt(rng, T_total_hint=8, gnorm=None):
    o = {}
    if rng.random() < 0.65:
        o["lm.optimizer"] = "adamw"
        o["lm.lr"] = loguni(rng, 3e-4, 3e-2)
        b = rng.choice([(0.9, 0.95), (0.9, 0.999), (0.8, 0.99), (0.0, 0.999), (0.99, 0.5), (0.0, 0.5),
                        (rng.uniform(0, 0.999), rng.uniform(0.3, 0.999)), (0.5, 0.0), (0.0, 0.0)])
        o["lm.betas"] = list(b)
        if b[1] == 0.0:
            # beta2 = 0: the step is m/(|g| + eps); with a small eps it divides by |g| ~ 0
            # wherever g changes sign, a chaotic map whose roundoff no check can compare
            o["lm.eps"] = loguni(rng, 1e-3, 0.3)
        else:
            o["lm.eps"] = rng.choice([1e-8, 1e-8, loguni(rng, 1e-12, 1e-3)])
    else:
        o["lm.optimizer"] = "sgd"
        o["lm.lr"] = loguni(rng, 1e-2, 0.3)
        o["lm.momentum"] = rng.choice([0.0, 0.5, 0.9, 0.99, rng.uniform(0, 0.99)])
    o["lm.weight_decay"] = 0.0 if rng.random() < 0.4 else rng.uniform(0.001, 0.3)
    c = rng.random()
    o["lm.clip"] = (0.0 if c < 0.3 else 100.0 if c < 0.4 else gnorm * rng.uniform(0.6, 1.4) if gnorm and c < 0.7
                    else loguni(rng, 0.005, 1.0))
    o["lm.schedule"] = rng.choice(["cosine", "cosine", "constant"])
    o["lm.warmup_steps"] = rng.choice([0, 0, rng.randint(1, T_total_hint + 2)])
    o["lm.min_lr_frac"] = rng.choice([0.1, rng.uniform(0, 1), 0.0])
    return o


def draw_weights(rng):
    w = {}
    w["rater.normalize"] = "sigmoid" if rng.random() < 0.6 else "softmax"
    w["rater.tau"] = rng.choice([1.0, loguni(rng, 0.1, 5.0)])
    r = rng.random()
    if r < 0.35:
        w["rater.clamp"] = [0.05, 1.0]
    elif r < 0.45:
        w["rater.clamp"] = [0.0, 1.0]
    elif r < 0.5:
        v = rng.uniform(0.05, 1.0)
        w["rater.clamp"] = [v, v]
    else:  # usually binds some of the weights, not all
        w["rater.clamp"] = [rng.uniform(0, 0.5), rng.uniform(0.5, 1)]
    w["rater.mean_normalize"] = rng.random() < 0.35
    return w


# ----------------------------------------------------------------------------------------
# one case

def build_case(cs):
    rng = cs.rng
    for attempt in range(6):
        dat = draw_data(rng)
        with open(os.path.join(cs.dir, "corpus.jsonl"), "w") as f:
            subprocess.run([os.path.join(ROOT, "tests/data/gen_toy.sh"), str(dat["n_clean"]), str(dat["n_corrupt"]),
                            str(dat["gen_seed"]), str(dat["min_len"]), str(dat["max_len"])], stdout=f, check=True)
        cs.say(f"$ tests/data/gen_toy.sh {dat['n_clean']} {dat['n_corrupt']} {dat['gen_seed']} "
               f"{dat['min_len']} {dat['max_len']} > corpus.jsonl")
        for d in ("shards", "splits"):
            shutil.rmtree(os.path.join(cs.dir, d), ignore_errors=True)
        cs.tool("dr-tokenize", "--tokenizer", "byte", "--source-field", "source", "-o", "shards", "corpus.jsonl")
        # sometimes several shards per split (1 KiB of tokens each): examples in shard order
        ss = ["--shard-size", "0.001"] if dat["multi_shard"] else []
        p = cs.tool("dr-split", "--val", f"{dat['val_frac']:.3f}", "--seed", dat["split_seed"], *ss, "-o", "splits",
                    "shards", stdout="manifest.tsv", ok_fail=True)
        if p.returncode != 0 or not os.path.isdir(os.path.join(cs.dir, "splits/val")) \
                or not os.path.isdir(os.path.join(cs.dir, "splits/train_a")):
            cs.say("# split left a set empty: redraw")
            continue
        n = {}
        for s in ("train_a", "val"):
            p = cs.tool("dr-cat", "--examples", "--ids", "--seq-len", dat["seq_len"], "--min-tokens", dat["min_tokens"],
                        f"splits/{s}", stdout=f"{s}.ex", ok_fail=True)
            n[s] = sum(1 for _ in open(os.path.join(cs.dir, f"{s}.ex"))) if p.returncode == 0 else 0
        if n["train_a"] >= 1 and n["val"] >= 1:
            break
        cs.say(f"# Train_A {n['train_a']} / Val {n['val']} examples: redraw")
    else:
        raise ToolError("no usable split in 6 draws")
    cs.n_train, cs.n_val = n["train_a"], n["val"]
    S = dat["seq_len"]
    lm, ra = pick_shape(rng), pick_shape(rng)
    base = {"data.shuffle": False, "train.eval_batches": 0, "experiment.threads": 1,
            "data.seq_len": S, "data.min_tokens": dat["min_tokens"], "data.batch_size": dat["batch_size"],
            "data.seq_len_rater": dat["seq_len_rater"], "data.prefetch": 0, "lm.vocab_size": dat["vocab_size"]}
    base.update({f"lm.{k}": v for k, v in lm.items()})
    base.update({f"rater.{k}": v for k, v in ra.items()})
    cs.base = ["--config", os.path.join(ROOT, "configs/tiny.yaml")] + sets(base)
    cs.dat, cs.lmshape, cs.rshape = dat, lm, ra
    cs.say(f"# case {cs.i}: seq_len {S} seq_len_rater {dat['seq_len_rater']} min_tokens {dat['min_tokens']} "
           f"B {dat['batch_size']}; Train_A {cs.n_train} / Val {cs.n_val} examples; LM {lm}; rater {ra}")
    # checkpoints: an LM after 2 steps and the rater's phi_0 (mode detach), both perturbed
    cs.tool("dr-train", *cs.base, "--steps", 2, "--set", "train.eval_every=0", "--train-split", "train_a",
            "-o", "lm0.safetensors", "manifest.tsv")
    cs.tool("dr-meta", *cs.base, *sets({"meta.rounds": 1, "meta.population_K": 1, "meta.T": 1,
                                        "meta.checkpoint_every": 1, "meta.val_batches": 1, "meta.mode": "detach"}),
            "-o", "r0.safetensors", "manifest.tsv")
    perturb(cs, "lm0.safetensors", "lm.safetensors", rng.choice([0.01, 0.03, 0.1]), 1.0, 0.0)
    # the LM's gradient norm on the first batch (w = 1), to draw clips near it: active on
    # some inner steps and not on others
    P = torch_ref.st_read(os.path.join(cs.dir, "lm.safetensors"))[0]
    ex = torch_ref.read_examples(os.path.join(cs.dir, "train_a.ex"))
    th = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    L = torch_ref.lm_losses(th, torch_ref.lm_batch([ex[i % len(ex)] for i in range(dat["batch_size"])], S),
                            lm["n_head"]).mean()
    cs.gnorm0 = math.sqrt(sum(float((g * g).sum()) for g in torch.autograd.grad(L, list(th.values()))))
    perturb(cs, "r0.safetensors", "r.safetensors", rng.choice([0.01, 0.03, 0.1]), 1.0, 0.0)
    # the head scaled and shifted so that Train_A's logits spread over `spread` around
    # `center` (sometimes far out: saturated sigmoid weights)
    spread = loguni(rng, 0.3, 20)
    center = rng.uniform(-2, 2) if rng.random() < 0.85 else rng.choice([-1, 1]) * rng.uniform(12, 40)
    Q, meta = torch_ref.st_read(os.path.join(cs.dir, "r.safetensors"))
    ex = torch_ref.read_examples(os.path.join(cs.dir, "train_a.ex"))
    with torch.no_grad():
        z = torch_ref.rater_logits(Q, torch_ref.rater_batch(ex, dat["seq_len_rater"] or S), ra["n_head"])
    lo, hi = float(z.min()), float(z.max())
    a = spread / (hi - lo) if hi > lo else 1.0
    b = center - a * (lo + hi) / 2
    Q["rater.head.out.weight"] = Q["rater.head.out.weight"] * a
    Q["rater.head.out.bias"] = Q["rater.head.out.bias"] * a + b
    torch_ref.st_write(os.path.join(cs.dir, "r.safetensors"), Q, meta)
    cs.say(f"# r.safetensors: head.out x {a:.4g} + {b:.4g}: Train_A logits in [{a * lo + b:.3f}, {a * hi + b:.3f}]")


def perturb(cs, src, dst, sd, factor, shift):
    """Gaussian noise (sd) on every tensor (biases and LN included), then the rater's head
    out scaled by factor (+ shift on its bias): generic checkpoints, logits spread."""
    g = torch.Generator().manual_seed(cs.rng.randint(0, 2 ** 31))
    P, meta = torch_ref.st_read(os.path.join(cs.dir, src))
    for k in P:
        P[k] = P[k] + sd * torch.randn(P[k].shape, generator=g, dtype=torch.float64)
    if "rater.head.out.weight" in P:
        P["rater.head.out.weight"] = P["rater.head.out.weight"] * factor
        P["rater.head.out.bias"] = P["rater.head.out.bias"] * factor + shift
    torch_ref.st_write(os.path.join(cs.dir, dst), P, meta)
    cs.say(f"# {dst} = {src} + N(0, {sd}^2) per element" + (f", head.out x {factor:.4g} + {shift:.4g}"
                                                            if "rater.head.out.weight" in P else ""))


def grad_check(cs):
    rng = random.Random(f"{cs.seed}:{cs.i}:grad")
    T = rng.randint(1, 5)
    o = {"meta.T": T}
    o.update(draw_opt(rng, T, cs.gnorm0))
    o.update(draw_weights(rng))
    o["meta.checkpoint_every"] = rng.randint(0, T)
    o["meta.backprop_steps"] = 0 if rng.random() < 0.6 else rng.randint(1, T)
    o["meta.hvp"] = rng.random() < 0.75
    o["meta.reset_every"] = rng.choice([1, 1, 2, 3])
    o["meta.val_batches"] = rng.randint(1, 3)
    if rng.random() < 0.2:
        o["lm.checkpointing"] = True
    if rng.random() < 0.2:
        o["lm.head_chunk"] = rng.randint(1, cs.dat["batch_size"])
    if rng.random() < 0.2:
        o["rater.checkpointing"] = True
    if not o.get("lm.checkpointing") and not o.get("lm.head_chunk"):
        o["meta.keep_activations"] = rng.choice([-1, -1, 0, rng.randint(0, T)])
    if rng.random() < 0.3:
        o["rater.entropy_penalty"] = rng.uniform(0.001, 0.2)
    if rng.random() < 0.3:
        o["rater.l2_to_mean"] = rng.uniform(0.001, 0.5)
    if rng.random() < 0.15:
        o["experiment.threads"] = 2
    if rng.random() < 0.1:  # trims a batch to its longest example: the same numbers
        o["data.bucket_by_length"] = True
    X = sets(o)
    cs.grad_opts = o
    cs.grad_cmd = lambda lm, r, out: cs.tool("dr-meta", "grad", *cs.base, *X, "--lm-init", lm, "--rater-init", r,
                                             "--train", "splits/train_a", "--val", "splits/val", "-o", out)
    cs.grad_cmd("lm.safetensors", "r.safetensors", "g.safetensors")
    G = torch_ref.st_read(os.path.join(cs.dir, "g.safetensors"))[0]
    cs.grad_zero = all(float(v.abs().max()) == 0 for k, v in G.items() if k.startswith("rater."))
    cs.tool("dr-meta", *cs.base, *X, "--print-config", stdout="cfg_grad.yaml")
    cs.ref("grad", "grad", "--name", f"case{cs.i} grad", "--lm", "lm.safetensors", "--rater", "r.safetensors",
           "--train", "train_a.ex", "--val", "val.ex", "--config", "cfg_grad.yaml", "--c-grad", "g.safetensors",
           "--tol", "1e-8", "--tol-loss", "1e-10")


def score_checks(cs, kinds):
    rng = random.Random(f"{cs.seed}:{cs.i}:score")
    X = sets(draw_weights(rng))
    cs.tool("dr-meta", *cs.base, *X, "--print-config", stdout="cfg_s.yaml")
    if "score" in kinds or "train" in kinds:
        for s in ("train_a", "val"):
            cs.tool("dr-score", "--rater", "r.safetensors", *cs.base, *X, f"splits/{s}", stdout=f"sc_{s}.tsv")
            if "score" in kinds:
                cs.ref("score", "score", "--name", f"case{cs.i} score {s}", "--rater", "r.safetensors",
                       "--examples", f"{s}.ex", "--config", "cfg_s.yaml", "--c-scores", f"sc_{s}.tsv", "--tol", "1e-7")
    if "eval" in kinds or "lmscore" in kinds:
        E = rng.choice([0, 0, 1, 2, 3, 5])
        Y = sets({"train.eval_batches": E})
        cs.tool("dr-train", *cs.base, *Y, "--eval-only", "lm.safetensors", "manifest.tsv", stdout="eval.json")
        cs.tool("dr-meta", *cs.base, *Y, "--print-config", stdout="cfg_e.yaml")
        if "eval" in kinds:
            cs.ref("eval", "eval", "--name", f"case{cs.i} eval E{E}", "--lm", "lm.safetensors", "--val", "val.ex",
                   "--config", "cfg_e.yaml", "--c-json", open(os.path.join(cs.dir, "eval.json")).read().strip(),
                   "--tol", "1e-12")
        if "lmscore" in kinds:
            cs.tool("dr-score", "--lm", "lm.safetensors", *cs.base, "splits/val", stdout="sc_lm.tsv")
            cs.tool("dr-train", *cs.base, "--eval-only", "lm.safetensors", "manifest.tsv", stdout="eval0.json")
            cs.ref("lmscore", "lmscore", "--name", f"case{cs.i} lmscore", "--lm", "lm.safetensors",
                   "--examples", "val.ex", "--config", "cfg_e.yaml", "--c-scores", "sc_lm.tsv",
                   "--c-json", open(os.path.join(cs.dir, "eval0.json")).read().strip(), "--tol", "1e-8")
    return X


def train_check(cs, wX):
    rng = random.Random(f"{cs.seed}:{cs.i}:train")
    n = rng.randint(3, 8)
    o = draw_opt(rng, n, cs.gnorm0)
    o.update({"train.eval_every": 0, "train.log_every": 1})
    if rng.random() < 0.15:
        o["experiment.threads"] = 2
    X = sets(o)
    mode = rng.choice(["plain", "weights", "weights", "online", "online"])
    E, R = [], []
    if mode == "weights":
        E, R = ["--weights", "sc_train_a.tsv"], ["--scores", "sc_train_a.tsv"]
        X += wX
    elif mode == "online":
        F = rng.choice([1.0, 0.5, rng.uniform(0.2, 1.0)])
        E = ["--rater", "r.safetensors", "--online-keep", f"{F:.4f}"]
        R = ["--online-rater", "r.safetensors", "--online-keep", f"{F:.4f}"]
    if rng.random() < 0.5:
        E += ["--init", "lm.safetensors"]
    cs.train_mode = mode
    E2 = [x for j, x in enumerate(E) if x != "--init" and (j == 0 or E[j - 1] != "--init")]
    cs.train_resume = lambda out, log: cs.tool("dr-train", *cs.base, *X, *E2, "--train-split", "train_a", "--steps", n,
                                               "--resume", "--log", log, "-o", out, "manifest.tsv")
    cs.train_opts = o
    cs.tool("dr-train", *cs.base, *X, *E, "--train-split", "train_a", "--steps", n, "--stop-at", 2,
            "-o", "st.safetensors", "manifest.tsv")
    cs.tool("dr-train", *cs.base, *X, *E, "--train-split", "train_a", "--steps", n, "--log", "tr.jsonl",
            "-o", "full.safetensors", "manifest.tsv")
    cs.tool("dr-meta", *cs.base, *X, "--print-config", stdout="cfg_t.yaml")
    cs.ref("train", "train", "--name", f"case{cs.i} train {mode}", "--state-ckpt", "st.safetensors",
           "--c-final", "full.safetensors", "--c-log", "tr.jsonl", "--train", "train_a.ex", "--config", "cfg_t.yaml",
           "--steps", n, "--tol", "1e-9", "--tol-loss", "1e-10", *R)


# ----------------------------------------------------------------------------------------
# the conditioning probe: a disagreement is only a finding where the C tool itself is
# stable. On a FAIL the C tool runs again from its inputs multiplied elementwise by
# (1 + 1e-14 N(0,1)) (the LM and rater checkpoints for grad, the --stop-at 2 state for
# train, resumed); that is ~100 ulp, far above what two correct float64 implementations
# differ by in their inputs' rounding, yet a well-conditioned quantity moves by ~1e-14.
# A failing check whose C-vs-reference error is within 10x of how far C moves under that
# perturbation (C vs C, the same measure), or where that move is 1e-4 or more, is
# reported as UNSTABLE: the configuration's
# own roundoff sensitivity (Adam with beta2 = 0 dividing by |g| ~ 0, cancellation in a
# meta-gradient orders of magnitude smaller than its terms, tensors that are exactly 0
# in exact arithmetic) and not counted as a FAIL.

PROBE_EPS = 1e-14


def perturb_rel(cs, src, dst, eps=PROBE_EPS):
    g = torch.Generator().manual_seed(12345)
    P, meta = torch_ref.st_read(os.path.join(cs.dir, src))
    for k in P:
        P[k] = P[k] * (1.0 + eps * torch.randn(P[k].shape, generator=g, dtype=torch.float64))
    torch_ref.st_write(os.path.join(cs.dir, dst), P, meta)


def probe(cs, kind):
    """{check suffix: how far C moves under the input perturbation}, C vs C."""
    rd = lambda f: torch_ref.st_read(os.path.join(cs.dir, f))[0]
    if kind == "grad":
        perturb_rel(cs, "lm.safetensors", "lm_p.safetensors")
        perturb_rel(cs, "r.safetensors", "r_p.safetensors")
        cs.grad_cmd("lm_p.safetensors", "r_p.safetensors", "g_p.safetensors")
        G, Gp = rd("g.safetensors"), rd("g_p.safetensors")
        names = [k for k in G if k.startswith("rater.")]
        floor = 1e-6 * max(float(G[k].abs().max()) for k in names)
        cat = lambda D: torch.cat([D[k].reshape(-1) for k in names])
        return {"l_val": torch_ref.scal_rel(float(Gp["l_val"]), float(G["l_val"])),
                "objective": torch_ref.scal_rel(float(Gp["objective"]), float(G["objective"])),
                "dJ/dphi per tensor": max(torch_ref.rel_err(Gp[k], G[k], floor) for k in names),
                "dJ/dphi global": torch_ref.rel_err(cat(Gp), cat(G))}
    if kind == "train":
        perturb_rel(cs, "st.safetensors", "p.safetensors")
        shutil.copy(os.path.join(cs.dir, "st.safetensors.state"), os.path.join(cs.dir, "p.safetensors.state"))
        cs.train_resume("p.safetensors", "p.jsonl")
        F, Fp = rd("full.safetensors"), rd("p.safetensors")
        lt = lambda f: {o["step"]: o["l_train"] for o in map(__import__("json").loads, open(os.path.join(cs.dir, f)))
                        if "l_train" in o}
        a, b = lt("tr.jsonl"), lt("p.jsonl")
        return {"l_train per step": max(torch_ref.scal_rel(b[k], a[k]) for k in b),
                "final theta per tensor": max(torch_ref.rel_err(Fp[k], F[k]) for k in F)}
    # scratch and meta start from experiment.seed's init: perturbed through init_std
    # (every initial weight is std * a unit normal; biases and LN weights do not move)
    jl = lambda f: [__import__("json").loads(x) for x in open(os.path.join(cs.dir, f))]
    std_p = sets({"lm.init_std": 0.02 * (1 + PROBE_EPS), "rater.init_std": 0.02 * (1 + PROBE_EPS)})
    if kind == "scratch":
        if cs.scratch_init:
            perturb_rel(cs, "lm.safetensors", "lm_p.safetensors")
            cs.scratch_cmd([], ["--init", "lm_p.safetensors"], "_p")
        else:
            cs.scratch_cmd(std_p[:2], [], "_p")
        F, Fp = rd("sc.safetensors"), rd("sc_p.safetensors")
        a = {o["step"]: o["l_train"] for o in jl("sc.jsonl") if "l_train" in o}
        b = {o["step"]: o["l_train"] for o in jl("sc_p.jsonl") if "l_train" in o}
        return {"l_train per step": max(torch_ref.scal_rel(b[k], a[k]) for k in b),
                "final theta per tensor": max(torch_ref.rel_err(Fp[k], F[k]) for k in F)}
    if kind == "meta":
        cs.meta_cmd(std_p, "_p")
        out = {}
        for label, f in (("final rater EMA", "mf.ema.safetensors"), ("final rater", "mf.safetensors")):
            F, Fp = rd(f), rd(f.replace("mf", "mf_p"))
            # the reference's measure: per tensor, those with a 0 meta-gradient checked apart
            out[label] = max([torch_ref.rel_err(Fp[k], F[k]) for k in F if k not in cs.meta_zero] or [0.0])
        A, Bp = jl("mf.jsonl"), jl("mf_p.jsonl")
        zs = max(max(abs(o["score_min"]), abs(o["score_max"])) for o in A)
        for key in A[0]:
            if key.startswith("score_") and key != "score_entropy":
                out[key] = max(abs(b[key] - a[key]) / zs for a, b in zip(A, Bp))
            elif isinstance(A[0][key], float):
                out[key] = max(torch_ref.scal_rel(b[key], a[key]) for a, b in zip(A, Bp)
                               if a[key] is not None and b[key] is not None)
        return out
    return {}


ZERO_TOL = 1e-5


def classify(cs):
    """Runs the probe for each kind with a failing check; marks the checks it explains.
    First, a failing 'dJ/dphi per tensor' whose worst tensor is one the reference finds 0
    in exact arithmetic (with softmax weights head.out.bias: softmax ignores a common
    shift of z; its error is then relative to 1e-6 of the largest gradient, the
    reference's floor) is roundoff around 0 when that error is below ZERO_TOL, i.e.
    |C - ref| <= 1e-11 max|dJ/dphi| (and the global check passes)."""
    cs.unstable = []
    glob_ok = {c[0] for c in cs.checks if c[1].endswith("dJ/dphi global") and c[4]}
    for j, c in enumerate(cs.checks):
        k, name, e, tol, ok = c
        if not ok and name.endswith("dJ/dphi per tensor") and k in glob_ok:
            w = re.search(r"\(worst (\S+)\)", " ".join(l for l in cs.log if name in l and "CHECK" in l))
            if w and w.group(1) in cs.zero and e <= ZERO_TOL:
                cs.say(f"# {name}: worst tensor {w.group(1)} is 0 in exact arithmetic, |C - ref| = "
                       f"{e * 1e-6:.1e} max|dJ/dphi|: roundoff around 0 (ZERO)")
                cs.unstable.append((k, name, e, None, f"ZERO ({w.group(1)} is 0 in exact arithmetic)"))
                cs.checks[j] = (k, name, e, tol, True)
    for kind in sorted({c[0] for c in cs.checks if not c[4]}):
        try:
            pr = probe(cs, kind)
        except (ToolError, OSError, KeyError, ValueError, StopIteration) as e:
            cs.say(f"# probe {kind}: {e}")
            continue
        new = []
        for c in cs.checks:
            k, name, e, tol, ok = c
            if not ok and k == kind:
                q = re.sub(r"^case\d+ \w+( \S+)?: ", "", name)
                q = re.sub(r" \(\d+( steps)?\)", "", q)
                p = pr.get(q)
                if p is None:
                    p = next((pr[k] for k in sorted(pr, key=len, reverse=True) if q.startswith(k + " ")), None)
                if p is not None:
                    # within 10x of the probe's move, or a quantity so sensitive that a
                    # 1e-14 perturbation moves it by 1e-4 (chaos: sizes no longer scale)
                    expl = p >= e / 10 or p >= 1e-4
                    cs.say(f"# probe: {name}: C vs ref {e:.3e}, C vs C(inputs x (1 + {PROBE_EPS:g} N)) {p:.3e}: "
                           + ("UNSTABLE (within the configuration's own roundoff sensitivity)" if expl else
                              "C is stable there: a real disagreement"))
                    if expl:
                        cs.unstable.append((k, name, e, p, "UNSTABLE"))
                        c = (k, name, e, tol, True)
            new.append(c)
        cs.checks = new


def tags(cs):
    """What a case covered, for the summary's coverage table."""
    t = set()
    if hasattr(cs, "dat"):
        d, lm, ra = cs.dat, cs.lmshape, cs.rshape
        S, Sr = d["seq_len"], d["seq_len_rater"] or d["seq_len"]
        t.add("seq_len_rater < seq_len" if Sr < S else "seq_len_rater = seq_len + 1" if Sr > S
              else "seq_len_rater = seq_len")
        if d["min_tokens"] > 2:
            t.add("min_tokens > 2")
        if d["max_len"] <= S:
            t.add("documents shorter than a window")
        if d["multi_shard"] and len(os.listdir(os.path.join(cs.dir, "splits/train_a"))) > 1:
            t.add("Train_A in several shards")
        if d["vocab_size"] == 300:
            t.add("lm.vocab_size 300 (> byte vocab)")
        for who, sh in (("LM", lm), ("rater", ra)):
            dh = sh["d_model"] // sh["n_head"]
            t.add(f"{who} head dim " + ("1" if dh == 1 else "2" if dh == 2 else "odd" if dh % 2 else "even > 2"))
            if sh["d_ff"]:
                t.add(f"{who} d_ff != 4d")
        if lm["n_layer"] != ra["n_layer"]:
            t.add("rater layers != LM layers")
    go = getattr(cs, "grad_opts", None)
    if go:
        T, c = go["meta.T"], go["meta.checkpoint_every"]
        t.add(f"grad {go['lm.optimizer']}" + (f" momentum {'0' if go['lm.momentum'] == 0 else '> 0'}"
                                               if go["lm.optimizer"] == "sgd" else ""))
        t.add(f"grad {go['rater.normalize']}")
        t.add(f"grad schedule {go['lm.schedule']}" + (" + warmup" if go["lm.warmup_steps"] else ""))
        if go["lm.weight_decay"] == 0:
            t.add("grad weight_decay 0")
        if go.get("lm.betas", [0, 1])[1] == 0:
            t.add("grad beta2 = 0")
        if go.get("lm.betas", [1, 1])[0] == 0:
            t.add("grad beta1 = 0")
        if c and T % c:
            t.add("grad c does not divide T")
        if 0 < go["meta.backprop_steps"] < T:
            t.add("grad backprop_steps < T")
        if not go["meta.hvp"]:
            t.add("grad hvp false")
        if go["rater.mean_normalize"]:
            t.add("grad mean_normalize")
        if go.get("rater.entropy_penalty") or go.get("rater.l2_to_mean"):
            t.add("grad regularizers")
        if go["meta.reset_every"] > 1:
            t.add("grad reset_every > 1")
        for k in ("lm.checkpointing", "rater.checkpointing", "lm.head_chunk"):
            if go.get(k):
                t.add("grad " + k)
        if go.get("meta.keep_activations", -1) >= 0:
            t.add("grad keep_activations set")
        if getattr(cs, "grad_zero", False):
            t.add("grad dJ/dphi exactly 0 (C)")
        if go.get("data.bucket_by_length"):
            t.add("grad bucket_by_length")
        if go.get("experiment.threads") == 2:
            t.add("grad 2 threads")
        if hasattr(cs, "n_train"):
            if T * cs.dat["batch_size"] > cs.n_train:
                t.add("grad Train_A wraps (T*B > examples)")
            if go["meta.val_batches"] * cs.dat["batch_size"] > cs.n_val:
                t.add("grad Val wraps")
        for line in cs.log:
            m = re.search(r"clipped steps (\d+)/(\d+).*?(at clamp min (\d+) max (\d+) of (\d+))?$", line)
            if m and line.startswith("# case") and "grad" in line:
                a, b = int(m.group(1)), int(m.group(2))
                t.add("grad clip " + ("off" if go["lm.clip"] == 0 else "active every step" if a == b else
                                      "active some steps" if a else "never active"))
                if m.group(3):
                    lo, hi, n = int(m.group(4)), int(m.group(5)), int(m.group(6))
                    t.add("grad clamp " + ("binds every weight" if lo + hi == n else "binds some" if lo + hi else
                                           "never binds"))
    if hasattr(cs, "train_mode"):
        t.add(f"train {cs.train_mode} {cs.train_opts['lm.optimizer']}")
    so = getattr(cs, "scratch_opts", None)
    if so:
        t.add("scratch " + ("shuffle" if so["data.shuffle"] else "shard order")
              + (" + buckets" if so["data.bucket_by_length"] else ""))
    mo = getattr(cs, "meta_opts", None)
    if mo:
        t.add(f"meta K{mo['meta.population_K']} {mo['meta.combine']}" + (" Feistel" if mo["data.shuffle"] else ""))
    return t


def scratch_check(cs):
    """dr-train from its own init (experiment.seed) or --init, over the documented data order
    (shuffle, length buckets, batches straddling epochs): torch_ref.py scratch (run.sh e)."""
    rng = random.Random(f"{cs.seed}:{cs.i}:scratch")
    n = rng.randint(3, 30)
    o = draw_opt(rng, n, cs.gnorm0)
    o.update({"train.eval_every": 0, "train.log_every": 1, "data.shuffle": rng.random() < 0.7,
              "data.bucket_by_length": rng.random() < 0.4,
              "experiment.seed": rng.choice([rng.randint(0, 1000), rng.randint(0, 2 ** 64 - 1), 2 ** 64 - 1]),
              "data.batch_size": rng.randint(1, 7)})
    X = sets(o)
    I = ["--init", "lm.safetensors"] if rng.random() < 0.3 else []
    cs.scratch_opts = o
    cs.scratch_cmd = lambda Y, J, sfx: cs.tool("dr-train", *cs.base, *X, *Y, *J, "--train-split", "train_a", "--steps", n,
                                                "--log", f"sc{sfx}.jsonl", "-o", f"sc{sfx}.safetensors", "manifest.tsv")
    cs.scratch_init = I
    cs.scratch_cmd([], I, "")
    cs.tool("dr-meta", *cs.base, *X, "--print-config", stdout="cfg_sc.yaml")
    cs.ref("scratch", "scratch", "--name", f"case{cs.i} scratch", "--config", "cfg_sc.yaml", "--train", "train_a.ex",
           "--steps", n, "--vocab", cs.dat["vocab_size"] or 257, "--c-log", "sc.jsonl", "--c-final", "sc.safetensors",
           "--tol", "1e-9", "--tol-loss", "1e-10", *I)


def meta_check(cs):
    """A whole dr-meta run from experiment.seed: population, staggered resets, streams
    (Feistel or shard order), combine, outer AdamW, EMA: torch_ref.py meta (run.sh f)."""
    rng = random.Random(f"{cs.seed}:{cs.i}:meta")
    T = rng.randint(1, 3)
    o = draw_opt(rng, T, cs.gnorm0)
    o.update(draw_weights(rng))
    o.update({"meta.T": T, "meta.checkpoint_every": rng.randint(0, T), "meta.rounds": rng.randint(1, 4),
              "meta.population_K": rng.randint(1, 3), "meta.reset_every": rng.randint(1, 3),
              "meta.val_batches": rng.randint(1, 2), "meta.ema": rng.choice([0.0, 0.5, 0.9]),
              "meta.track_uniform": rng.random() < 0.5, "meta.hvp": rng.random() < 0.8,
              "meta.combine": rng.choice(["mean", "per_member_adam"]), "data.shuffle": rng.random() < 0.6,
              "experiment.seed": rng.choice([rng.randint(0, 1000), rng.randint(0, 2 ** 64 - 1)]),
              "rater.lr": loguni(rng, 1e-4, 1e-2), "rater.clip": rng.choice([0.0, 1.0, loguni(rng, 1e-4, 1.0)]),
              "rater.weight_decay": rng.choice([0.0, 0.01, 0.1])})
    if rng.random() < 0.3:
        o["rater.entropy_penalty"] = rng.uniform(0.001, 0.2)
    if rng.random() < 0.3:
        o["rater.l2_to_mean"] = rng.uniform(0.001, 0.5)
    X = sets(o)
    cs.meta_opts = o
    cs.meta_cmd = lambda Y, sfx: cs.tool("dr-meta", *cs.base, *X, *Y, "--train", "splits/train_a", "--val", "splits/val",
                                         "--log", f"mf{sfx}.jsonl", "-o", f"mf{sfx}.safetensors")
    cs.meta_cmd([], "")
    cs.tool("dr-meta", *cs.base, *X, "--print-config", stdout="cfg_mf.yaml")
    cs.ref("meta", "meta", "--name", f"case{cs.i} meta", "--config", "cfg_mf.yaml", "--train", "train_a.ex",
           "--val", "val.ex", "--vocab", cs.dat["vocab_size"] or 257, "--c-log", "mf.jsonl", "--c-rater",
           "mf.safetensors", "--c-ema", "mf.ema.safetensors", "--tol", "1e-7", "--tol-loss", "1e-9",
           "--tol-grad", "1e-7")


def run_case(cs, kinds):
    t0 = time.time()
    try:
        build_case(cs)
        if "grad" in kinds:
            grad_check(cs)
        if kinds & {"score", "eval", "lmscore", "train"}:
            wX = score_checks(cs, kinds)
            if "train" in kinds:
                train_check(cs, wX)
        if "scratch" in kinds:
            scratch_check(cs)
        if "meta" in kinds:
            meta_check(cs)
    except ToolError as e:
        cs.errors.append(str(e))
    cs.unstable = []
    if any(not c[4] for c in cs.checks):
        classify(cs)
    cs.seconds = time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--only", default=None, help="case numbers, comma-separated")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/double/bin"))
    ap.add_argument("--kinds", default="grad,score,lmscore,eval,train,scratch,meta")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--verbose", action="store_true", help="print every command and CHECK line")
    a = ap.parse_args()
    bin_dir = os.path.realpath(a.bin)
    for t in ("dr-tokenize", "dr-split", "dr-cat", "dr-train", "dr-meta", "dr-score"):
        if not os.access(os.path.join(bin_dir, t), os.X_OK):
            print(f"random_cases: {bin_dir}/{t} missing (make PRECISION=double BIN=build/double/bin tools)")
            return 2
    kinds = set(a.kinds.split(","))
    root = a.workdir or tempfile.mkdtemp(prefix="xrand.")
    os.makedirs(root, exist_ok=True)
    if a.keep:
        print(f"# work dir: {root}")
    idx = [int(x) for x in a.only.split(",")] if a.only else range(a.cases)
    worst, counts, fails, errs, unstable, cover = {}, {}, [], [], [], {}
    tstart = time.time()
    for i in idx:
        cs = Case(root, a.seed, i, bin_dir, a.verbose)
        run_case(cs, kinds)
        bad = [c for c in cs.checks if not c[4]]
        uns = {u[1] for u in cs.unstable}
        unstable += [(i,) + u for u in cs.unstable]
        for kind, name, e, tol, ok in cs.checks:
            if name in uns:
                continue
            q = kind + ": " + re.sub(r"^case\d+ \w+( \S+)?: ", "", name)
            q = re.sub(r"\(\d+( steps)?\)", "", q).strip()
            if not (e <= worst.get(q, (-1,))[0]):
                worst[q] = (e, tol, i)
        for tg in tags(cs):
            cover[tg] = cover.get(tg, 0) + 1
        kd = sorted({c[0] for c in cs.checks})
        for k in kd:
            counts[k] = counts.get(k, 0) + 1
        desc = ""
        if hasattr(cs, "grad_opts"):
            go = cs.grad_opts
            desc = (f" grad[{go['lm.optimizer']} T{go['meta.T']} c{go['meta.checkpoint_every']} "
                    f"clip {go['lm.clip']:.3g} {go['rater.normalize']}]")
        status = "FAIL" if bad or cs.errors else ("UNST" if uns else "ok")
        print(f"case {i:4d} {status:4s} {len(cs.checks):2d} checks {cs.seconds:5.1f}s{desc}"
              + (f" train[{cs.train_mode}]" if hasattr(cs, "train_mode") else ""))
        if bad or cs.errors:
            if not a.verbose:
                print("\n".join("    " + s for s in cs.log))
            for e in cs.errors:
                print("    ERROR " + e)
            fails += [(i, c) for c in bad]
            errs += [(i, e) for e in cs.errors]
            print(f"    repro: tests/xcheck/random_cases.py --seed {a.seed} --only {i} --keep --verbose")
        else:
            for u in cs.unstable:
                print(f"    {u[4]}: {u[1]}: C vs ref {u[2]:.3e}"
                      + (f", C vs C perturbed {u[3]:.3e}" if u[3] is not None else ""))
            for kind in sorted({u[0] for u in cs.unstable}):
                opts = getattr(cs, kind + "_opts", {})
                print(f"    {kind} options: " + " ".join(f"{k}={fmt(v) if not isinstance(v, list) else v}"
                                                     for k, v in opts.items()))
            if uns:
                print(f"    repro: tests/xcheck/random_cases.py --seed {a.seed} --only {i} --keep --verbose")
            if not a.keep:
                shutil.rmtree(cs.dir, ignore_errors=True)
        sys.stdout.flush()
    print(f"\n== {len(idx)} cases (seed {a.seed}) in {time.time() - tstart:.0f} s; cases with a check of each kind: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("== coverage (cases):")
    ks = sorted(cover)
    for j in range(0, len(ks), 3):
        print("   " + "".join(f"{k[:38]:38s} {cover[k]:4d}   " for k in ks[j:j + 3]))
    print("== largest error per quantity over the checks that passed (case):")
    for q in sorted(worst):
        e, tol, i = worst[q]
        print(f"   {q:58s} {e:.3e}  tol {tol:.0e}  (case {i})")
    if unstable:
        for why in ("UNSTABLE", "ZERO"):
            us = [u for u in unstable if u[5].startswith(why)]
            if us:
                print(f"== {len(us)} failing check(s) in {len({u[0] for u in us})} case(s) classified {why} "
                      f"(not counted): cases {sorted({u[0] for u in us})}")
    if not a.keep and not fails and not errs:
        shutil.rmtree(root, ignore_errors=True)
    if fails or errs:
        print(f"random_cases: {len(fails)} FAIL(s), {len(errs)} error(s) in cases "
              f"{sorted({i for i, _ in fails} | {i for i, _ in errs})}")
        return 1
    print("random_cases: all checks PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
