# %% [markdown]
# # 14 · Speed and memory
#
# Parameter-efficient tuning trains a tiny fraction of the weights, so it is tempting to expect it
# to cost a tiny fraction too. It does not, and this lesson measures by how much — then measures
# what does remove the memory: recomputing activations instead of keeping them.
#
# What you will learn:
# 1. what one training step of each method costs: time, model-FLOP utilisation (MFU) against a
#    matrix-multiply peak measured on your machine, and trainable parameters — and why a frozen
#    base still pays two thirds of full fine-tuning's FLOPs;
# 2. how to count the FLOPs a step really runs, which proves that no gradient of a frozen weight
#    is ever computed;
# 3. what activation checkpointing costs in time, and what it and a chunked LM-head loss save in
#    memory at GPT-2-small's shape, each configuration measured in a fresh process;
# 4. how close `generate` comes to a loop of bare tensor ops, and what a prefix costs a decoder.
#
# The arithmetic to keep in mind (Kaplan et al. 2020, arXiv 2001.08361, §2.1): a forward pass
# costs about 2N FLOPs per token for N weights, the backward pass 4N — 2N for the gradients with
# respect to the activations, 2N for those with respect to the weights. Full fine-tuning: 6N per
# token. With a frozen base no weight gradient is needed, but the gradient must still travel back
# through every layer to reach the prefix: 4N, so a prefix-tuning step should cost about 2/3 of a
# full one — not the 0.1% its parameter count suggests. Li & Liang 2021 (arXiv 2101.00190, ACL
# version) report about 30% faster epochs (0.2 h vs 0.3 h), and about 18% against 50% of the
# GPU's memory at batch size 1 (see [REFERENCES.md](REFERENCES.md)).
#
# Run: `python lessons/14_speed_and_memory.py [--fast | --full]`. Default: under a minute of CPU
# time on one core; `--fast`: a tiny stand-in for everything (what the tests run); `--full`: more
# rounds, and the memory table at GPT-2-small's real size (several minutes).

# %%
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import memory_probe
from common import lesson_mode, setup, table, takeaway
from memory_probe import ROWS, optimizer
from minitx import GPT, Config, generate
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, Tuned, count_parameters, fingerprint

MODE = lesson_mode()
# the training benchmark: the course's reference configuration for speed
BENCH = dict(n_layer=6, n_embd=384, n_head=6, vocab_size=512, block_size=512, batch=4, seq=128,
             virtual=16, mid=512, lora_r=8, bottleneck=64, rounds=3, peak_n=1536)
GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, seqs=(512, 1024),
                  loss_chunk=32, label="GPT-2-small")
SETTINGS = {
    "fast": dict(bench=dict(BENCH, n_layer=2, n_embd=64, n_head=2, vocab_size=128, block_size=128,
                            batch=2, seq=32, mid=64, bottleneck=16, rounds=2, peak_n=256),
                 gen=dict(prompt=8, new=8, rounds=2),
                 memory=dict(GPT2_SMALL, n_layer=2, n_head=4, n_embd=64, vocab_size=2048,
                             seqs=(32, 64), loss_chunk=8, label="a tiny stand-in for GPT-2-small")),
    "default": dict(bench=BENCH, gen=dict(prompt=16, new=24, rounds=3),
                    memory=dict(GPT2_SMALL, n_embd=192, vocab_size=12564, seqs=(128, 256),
                                loss_chunk=8, label="GPT-2-small scaled by 1/4")),
    "full": dict(bench=dict(BENCH, batch=8, rounds=9), gen=dict(prompt=16, new=64, rounds=9),
                 memory=GPT2_SMALL),
}
S = SETTINGS[MODE]
s = SimpleNamespace(**S["bench"])
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLOCK = "wall-clock time" if DEVICE.type == "cuda" else "process CPU time"
MiB = 2**20
setup(0)


def device_name():
    if DEVICE.type == "cuda":
        return torch.cuda.get_device_name(DEVICE)
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")]
        return names[0] if names else platform.machine()
    return platform.processor() or platform.machine()


load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
print(f"mode {MODE}; device {DEVICE.type}: {device_name()}")
print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs"
      f"{load}; times are {CLOCK}")

# %% [markdown]
# ## The methods, and what each one trains
#
# Every frozen-base method goes through `Tuned`, which freezes the base; full fine-tuning trains
# a copy of the same model. "prefix" is the direct prefix (P itself is the parameter); "prefix +
# MLP" trains P′ and the MLP that makes P from it (Li & Liang §4.3); P-tuning v2's "deep
# prompts" are the direct prefix too (Liu et al. add a classification head: one small matrix on
# one position). The course's LoRA adapts the fused `attn.c_attn` (Q, K and V together; Hu et
# al. adapt Wq and Wv). "+ ckpt" rows are the same method with activation checkpointing
# (`Config(checkpoint=True)`, explained further down). Setup: 6 layers, width 384, 6 heads,
# vocabulary 512, batches of 4 × 128 tokens (8 × 128 with `--full`), fp32, 16 virtual tokens, a
# prefix MLP of width 512, LoRA r = 8, adapters with a bottleneck of 64.
#
# The trainable counts have closed forms (L layers, width C, vocabulary V, context S, n virtual
# tokens, MLP width m, LoRA rank r, adapter bottleneck b):
#
# | method | trainable parameters |
# | --- | --- |
# | full fine-tuning | V·C + S·C + L·(12C² + 13C) + 2C |
# | prompt | n·C |
# | prefix | L·2·n·C |
# | prefix + MLP | n·C + (C·m + m) + (m·2LC + 2LC) |
# | LoRA | L·r·(C + 3C) |
# | adapter | 2L·(2C·b + b + C) |

# %%
FULL_LIKE = ("full FT", "reference GPT", "full FT + ckpt")  # every weight trained
METHODS = ["full FT", "prompt", "prefix", "prefix + MLP", "LoRA", "adapter", "reference GPT",
           "full FT + ckpt", "prefix + ckpt"]


def config_of(s):
    return Config(vocab_size=s.vocab_size, block_size=s.block_size, n_layer=s.n_layer,
                  n_head=s.n_head, n_embd=s.n_embd)


def copy_of(base, **options):
    """A copy of `base` (same weights) whose Config has `options` changed, e.g. checkpoint=True."""
    model = GPT(replace(base.config, **options)).to(DEVICE)
    model.load_state_dict(base.state_dict())
    return model


def build(method, base):
    """The module to train for `method`: a trainable copy of the base, or a Tuned wrapper."""
    checkpoint = method.endswith(" + ckpt")
    if method in FULL_LIKE:
        return copy_of(base, checkpoint=checkpoint).requires_grad_(True)
    frozen = copy_of(base, checkpoint=True) if checkpoint else base
    tuned = Tuned(frozen)  # freezes the base
    tuned.add("task", {
        "prompt": lambda: SoftPrompt(frozen, s.virtual),
        "prefix": lambda: Prefix(frozen, s.virtual),
        "prefix + MLP": lambda: Prefix(frozen, s.virtual, mid=s.mid),
        "LoRA": lambda: LoRA(frozen, r=s.lora_r),
        "adapter": lambda: Adapter(frozen, bottleneck=s.bottleneck),
    }[method.removesuffix(" + ckpt")]())
    return tuned


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    idx, targets = (torch.randint(0, s.vocab_size, (s.batch, s.seq), generator=g)
                    for _ in range(2))
    return {"idx": idx.to(DEVICE), "targets": targets.to(DEVICE)}

# %% [markdown]
# ## A reference: the smallest GPT forward that does the same work
#
# nanoGPT's forward pass written over minitx's own modules and weights: the same layers and GELU,
# fused attention with PyTorch's built-in causal mask, and nothing else — no prefix, no cache, no
# padding masks, no hooks, no checks. If minitx's step is as fast as this one, its generality
# costs nothing when it is not used.

# %%
def reference_forward(model, idx, targets):
    t, (B, T) = model.transformer, idx.shape
    x = t.wte(idx) + t.wpe.weight[:T]
    for block in t.h:
        C, H = x.size(-1), block.attn.n_head
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, C // H)
                   for z in block.attn.c_attn(block.ln_1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C // H)
        x = x + block.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        x = x + block.mlp.c_proj(block.mlp.gelu(block.mlp.c_fc(block.ln_2(x))))
    logits = model.lm_head(t.ln_f(x))
    return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

# %% [markdown]
# ## FLOPs, a measured peak, and a clock
#
# Model FLOPs per position: 2 per weight for the forward pass, 2 per weight for the activation
# gradients, 2 per *trained* weight for its weight gradient — 6N for full fine-tuning, 4N with a
# frozen base. N counts every weight a token is multiplied by: all parameters except the position
# table, the tied embedding once (as the output head); LoRA and adapter weights join in; a prefix
# is no per-token weight (its cost is attention), and the prefix MLP runs once per step, not per
# token. MFU uses
# these model FLOPs; PaLM's definition (Chowdhery et al. 2022, arXiv 2204.02311, App. B) adds
# attention, 12·L·C·S per position for S keys: the "+attn" column. Neither counts recomputation,
# so checkpointing's extra forward pass shows as a lower MFU.
#
# The peak is measured, not taken from a data sheet: a large square matmul (1536³ on a CPU by
# default, 4096³ on CUDA; the median of three after a warm-up), on the same threads and in every
# round, so that a busy machine lowers the peak and the step alike.
#
# The clock: on a CPU the lesson runs on one thread and times with the *process's CPU time*,
# which leaves out the time the machine gives to other processes (on an idle machine it equals
# the wall-clock time). On CUDA it times the wall clock, synchronized with the GPU.

# %%
def timed(fn):
    """(seconds that fn() takes by this lesson's clock, what it returned)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(DEVICE)
        return time.perf_counter() - start, out
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def matmul_peak(n, repeats=3):
    """FLOP/s of an (n, n) @ (n, n) fp32 matmul: the median of `repeats` after a warm-up."""
    a, b = (torch.randn(n, n, device=DEVICE) for _ in range(2))
    out = torch.empty(n, n, device=DEVICE)
    timed(lambda: torch.mm(a, b, out=out))
    return 2 * n**3 / statistics.median(timed(lambda: torch.mm(a, b, out=out))[0]
                                        for _ in range(repeats))


def model_flops(method, model):
    """(model FLOPs per position without and with attention, N of the base)."""
    base = model if method in FULL_LIKE else model.base
    c = base.config
    n = count_parameters(base)[1] - c.block_size * c.n_embd
    extra = count_parameters(model)[0] if method.startswith(("LoRA", "adapter")) else 0
    trained = n if method in FULL_LIKE else extra
    flops = 4 * (n + extra) + 2 * trained
    keys = s.seq + (s.virtual if method.startswith(("prompt", "prefix")) else 0)
    return flops, flops + 12 * c.n_layer * c.n_embd * keys, n


def positions(method):
    """Positions each row runs through the model: a soft prompt adds its virtual tokens."""
    return s.seq + (s.virtual if method == "prompt" else 0)

# %% [markdown]
# ## One training step, checked and counted
#
# A step is forward + backward + AdamW over the trainable parameters, built as `minitx.train`
# builds it (decay on matrices only, the fused kernel). The first step of each method checks the
# frozen base: after `backward()` no frozen weight has a `.grad` and every trainable one has;
# after `step()` the optimizer holds state for the trainable parameters only.
#
# That first step also runs under `torch.profiler` with `with_flops=True`, which counts, from
# their shapes, the FLOPs of every matrix multiply the step ran, forward and backward (`mm/pos/N`
# below): about 6 per weight per position for full fine-tuning and about 4 with a frozen base —
# the proof that no gradient of a frozen weight is computed; checkpointing adds one more forward
# pass (2). The profiler writes two "USDT ... profiler_start/stop" lines to the process's error
# stream each time it runs; `quiet_stderr` sends them to /dev/null. (The fused attention kernel is
# not a matrix multiply and is not counted.)

# %%
def make_step(model, batch, forward=None):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params)

    def step(check=False):
        loss = (forward or model)(**batch)[1]
        loss.backward()
        if check:
            frozen = [p for p in model.parameters() if not p.requires_grad]
            assert all(p.grad is None for p in frozen), "a frozen weight got a gradient"
            assert all(p.grad is not None for p in params), "a trainable weight got no gradient"
        opt.step()
        if check:
            assert {id(p) for p in opt.state} == {id(p) for p in params}, \
                "optimizer state for parameters that are not trained"
        opt.zero_grad(set_to_none=True)
        return loss
    return step


@contextmanager
def quiet_stderr():
    """File descriptor 2 (where C++ code writes) goes to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def counted_step(step):
    """One checked step under the profiler: (matmul FLOPs it ran, its loss)."""
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (DEVICE.type == "cuda")
    with quiet_stderr(), profile(activities=activities, with_flops=True) as prof:
        loss = step(check=True).item()
    matmuls = ("aten::mm", "aten::addmm", "aten::bmm")
    return sum(e.flops for e in prof.events() if e.name in matmuls), loss

# %% [markdown]
# ## The training benchmark
#
# Timing is noisy, so the methods are measured in rounds: each round measures the matmul peak,
# then one step of every method in a rotating order. A method's time is the median over rounds;
# every ratio (MFU, step ÷ full fine-tuning, checkpointed ÷ plain) is taken inside a round, and
# its median over rounds is reported.

# %%
torch.manual_seed(0)
base = GPT(config_of(s)).to(DEVICE)
base_before = fingerprint(base)
runs = {}
for method in METHODS:
    torch.manual_seed(1)
    model = build(method, base)
    forward = partial(reference_forward, model) if method == "reference GPT" else model
    step = make_step(model, make_batch(), forward)
    counted, loss = counted_step(step)  # also the warm-up
    flops, flops_attn, n = model_flops(method, model)
    tokens = s.batch * positions(method)
    runs[method] = SimpleNamespace(step=step, counted=counted / tokens / n, loss=loss, n=n,
                                   flops=flops * tokens, flops_attn=flops_attn * tokens,
                                   trainable=count_parameters(model)[0], times=[])
peaks = []
for r in range(s.rounds):
    peaks.append(matmul_peak(s.peak_n if DEVICE.type == "cpu" else 4096))
    for method in METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)]:
        runs[method].times.append(timed(runs[method].step)[0])


def in_rounds(a, b):
    """Median over rounds of a's time ÷ b's time, each ratio inside one round."""
    return statistics.median(x / y for x, y in zip(runs[a].times, runs[b].times))


training = {}
for method, run in runs.items():
    training[method] = dict(
        step_ms=1e3 * statistics.median(run.times), vs_full=in_rounds(method, "full FT"),
        tokens_per_s=s.batch * s.seq / statistics.median(run.times),
        mfu=statistics.median(run.flops / t / p for t, p in zip(run.times, peaks)),
        mfu_attn=statistics.median(run.flops_attn / t / p for t, p in zip(run.times, peaks)),
        mm_per_position=run.counted, trainable=run.trainable)
recompute = {"full FT": in_rounds("full FT + ckpt", "full FT"),
             "prefix": in_rounds("prefix + ckpt", "prefix")}
base_unchanged = fingerprint(base) == base_before
reference_loss_diff = abs(runs["reference GPT"].loss - runs["full FT"].loss)
training_rows = table(
    [{"method": m, "ms/step": t["step_ms"], "× full": t["vs_full"],
      "tok/s": round(t["tokens_per_s"]), "MFU %": 100 * t["mfu"], "+attn %": 100 * t["mfu_attn"],
      "mm/pos/N": t["mm_per_position"], "trainable": t["trainable"]}
     for m, t in training.items()],
    title=f"training step (forward + backward + AdamW), {s.batch} x {s.seq} tokens, fp32, "
          f"{DEVICE.type}; median of {s.rounds} rounds", floatfmt="{:.2f}",
    notes={"ms/step": f"milliseconds per step ({CLOCK})",
           "× full": "this step's time ÷ full fine-tuning's, paired within each round",
           "tok/s": "real tokens per second (virtual tokens not counted)",
           "MFU %": "model FLOPs per second ÷ the measured matmul peak",
           "+attn %": "the same with attention FLOPs counted too (PaLM's definition)",
           "mm/pos/N": "matmul FLOPs the profiler counted, per position, ÷ N (6 vs 4: above)",
           "trainable": "parameters the optimizer updates"})
print(f"matmul peak {statistics.median(peaks) / 1e9:.1f} GFLOP/s (median over rounds); N = "
      f"{runs['full FT'].n:,} weights per token")
print(f"base weights unchanged by tuning: {'yes' if base_unchanged else 'NO'}; reference GPT's "
      f"loss - minitx's: {reference_loss_diff:.1e}")
print(f"recomputation (checkpointing): full FT step x{recompute['full FT']:.2f}, prefix step "
      f"x{recompute['prefix']:.2f} (paired within rounds)")

# %% [markdown]
# ## What the training table says
#
# * **Time.** Every frozen-base method still runs the whole network forward and backward, so its
#   step costs a large fraction of full fine-tuning's — the FLOP model says 2/3, and attention,
#   GELU and layer norms do not shrink at all. Prompt tuning's virtual tokens are positions in
#   every layer, so it pays for them in every layer. The prefix MLP runs once per step, on 16
#   rows: it is cheap in time, but it is many trainable parameters while it trains (the papers'
#   "0.1%" counts what is kept afterwards).
# * **The code.** Compare full fine-tuning with the reference GPT: prefixes, caches, masks and
#   hooks should cost nothing when they are not used.
# * **`mm/pos/N`** separates the two regimes exactly: ≈ 6 with weight gradients, ≈ 4 without.
# * **Recomputation.** A checkpointed block runs its forward pass twice, so in FLOPs a full step
#   grows from 6N to 8N (×4/3) and a frozen-base step from 4N to 6N (×3/2); the measured ratios
#   land near these when the matrix multiplies dominate.

# %% [markdown]
# ## Memory at GPT-2-small's shape, each configuration in a fresh process
#
# GPT-2 small: 12 layers, width 768, 12 heads, vocabulary 50,257, one sequence of 512 or 1,024
# tokens, fp32 (the position table has 1,024 + 16 rows, so a 16-position prefix fits before
# 1,024 tokens). With W the bytes of the weights:
#
# * **full fine-tuning** holds the weights, their gradients and AdamW's two moments: 4W at the
#   optimizer step, plus, during the backward pass, the activations autograd kept;
# * **prefix tuning** drops the base's gradients and moments but not the activations — the
#   gradient must flow back through every layer, so every layer's inputs are kept;
# * **activation checkpointing** (Chen et al. 2016, arXiv 1604.06174; `Config(checkpoint=True)`)
#   keeps only each block's *input* and recomputes the block's activations in the backward pass.
#   In minitx a prefix is an argument of the block, so the recomputed block sees the same prefix
#   once. (Hugging Face PEFT raises an error for prefix tuning with gradient checkpointing: its
#   prefix travels in a Transformers cache object, and caching does not work with checkpointing;
#   huggingface/peft pull request 2191.)
# * **the logits** (T × 50,257 numbers, their softmax and their gradient) are then the largest
#   thing left; `Config(loss_chunk=k)` computes the loss k positions at a time, recomputing each
#   chunk's logits in backward, so the whole (T, V) logits never exist;
# * **the floor** is the frozen fp32 weights alone: W. No method that keeps the weights in fp32
#   can go below it, and full fine-tuning's peak is at least 4W: a ratio of 1/4 is the floor's.
#
# Each row runs one training step in a fresh process (`lessons/memory_probe.py` forks one child
# per row from a process that only imported torch and minitx) and reports its peak minus its
# memory before the model was built: on a CPU the peak resident set (Linux's VmHWM, reset after
# the model is built), on CUDA the allocator's peak. The probe makes freed memory leave the
# resident set at once (its docstring says how), so the peak is close to what the step's tensors
# hold at their highest; a few MiB of the process's own remain. One step, not a timing: a peak
# needs one.
# The default mode runs GPT-2-small scaled by 1/4 in width, vocabulary and sequence length, with
# the same 12 layers and 12 heads: weights (∝ L·C² + V·C), activations (∝ L·T·C), attention
# scores (∝ L·heads·T²) and logits (∝ T·V) all shrink 16×, so the ratios carry over — except
# for those few MiB, which weigh 16× more at the small size and push the small rows' ratios up.
# `--full` runs the real size.

# %%
m = SimpleNamespace(**S["memory"])
shape = dict(n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd, vocab_size=m.vocab_size,
             block_size=max(m.seqs) + s.virtual, virtual=s.virtual, lora_r=s.lora_r,
             loss_chunk=m.loss_chunk, batch=1, device=DEVICE.type,
             threads=torch.get_num_threads())
jobs = [dict(shape, row="weights only", seq=m.seqs[0])] + [
    dict(shape, row=row, seq=seq) for seq in m.seqs for row in ROWS if row != "weights only"]
measured = memory_probe.run(jobs)  # one fresh process per job
by_job = {(r["row"], r["seq"]): r for r in measured}
floor = by_job["weights only", m.seqs[0]]
memory = {}
for seq in m.seqs:
    full = by_job["full FT", seq]["peak"]
    memory[seq] = []
    for row in ROWS:
        r = floor if row == "weights only" else by_job[row, seq]
        memory[seq].append(dict(row=row, pid=r["pid"], peak_mib=r["peak"] / MiB,
                                vs_full=r["peak"] / full, vs_floor=r["peak"] / floor["peak"],
                                trainable=r["trainable"]))
print(f"peak memory of one training step, {DEVICE.type}, fp32, {m.label}:")
print(f"{m.n_layer} layers, width {m.n_embd}, {m.n_head} heads, vocabulary {m.vocab_size:,}")
if MODE != "full":
    print(f"(its 1 x {m.seqs[0]} and 1 x {m.seqs[1]} stand in for GPT-2-small's 1 x "
          f"{GPT2_SMALL['seqs'][0]} and 1 x {GPT2_SMALL['seqs'][1]}; --full runs the real size)")
memory_tables = {}
for i, seq in enumerate(m.seqs):
    memory_tables[seq] = table(
        [{"configuration": r["row"], "peak MiB": r["peak_mib"], "÷ full FT": r["vs_full"],
          "÷ floor": r["vs_floor"], "trainable": r["trainable"]} for r in memory[seq]],
        title=f"batch 1 x {seq}", floatfmt="{:.2f}", notes=None if i else {
            "peak MiB": "the step's peak minus the process's memory before the model was built",
            "÷ full FT": "this peak ÷ full fine-tuning's at the same length",
            "÷ floor": "this peak ÷ the weights alone (the first row: no step at all)",
            "ckpt": f"activation checkpointing; chunk: the LM-head loss {m.loss_chunk} positions "
                    f"at a time"})
print(f"\nthe floor, the weights alone: measured {floor['peak'] / MiB:.2f} MiB; computed "
      f"{floor['weights'] // 4:,} x 4 bytes = {floor['weights'] / MiB:.2f} MiB")
targets = {}
for seq, target, named in zip(m.seqs, (0.30, 0.25), GPT2_SMALL["seqs"]):
    got = next(r["vs_full"] for r in memory[seq] if r["row"] == "prefix + ckpt + chunk")
    bound = next(r["vs_full"] for r in memory[seq] if r["row"] == "weights only")
    targets[seq] = dict(target=target, got=got, met=got <= target, floor=bound)
    here = "" if seq == named else f" (here 1 x {seq})"
    print(f"1 x {named}{here}: prefix + ckpt + chunk at {got:.4f} of full FT; target "
          f"<= {target:.2f}: {'met' if got <= target else 'not met'}")

# %% [markdown]
# ## What the memory tables say
#
# * Where full fine-tuning's peak is its optimizer step (÷ floor near 4: weights, gradients and
#   two moments), checkpointing cannot lower it: it removes activations, which are gone by then.
# * Prefix tuning alone drops the gradients and moments but keeps every activation and the full
#   logits; checkpointing removes most activations, and the chunked loss the logits. What is left
#   above the floor is one block's recomputed activations, the blocks' inputs and one chunk of
#   logits — all growing with the sequence, so the ratio grows with it while the floor's share
#   stays at about 1/4 of full fine-tuning's.
# * LoRA with checkpointing keeps what prefix tuning with checkpointing keeps — the frozen
#   weights, the blocks' inputs, the logits, no gradients of the base — so expect the two rows
#   close; its own A and B matrices are small.
# * Li & Liang's 18% vs 50% of a GPU and the source article's 1.1 GB vs 18.2 GB (no source gives
#   that measurement) both put prefix tuning far below full fine-tuning; the tables show how far
#   a frozen base alone gets, and what the rest takes.

# %% [markdown]
# ## Generation: `generate` against a floor of bare ops, and what a prefix costs
#
# Decoding one token at small batch does little arithmetic, so the Python around it counts. The
# floor is a loop over the same blocks' own nn ops for one token per step — `ln_1`, `c_attn`
# split into heads, the cache grown with `torch.cat`, `F.scaled_dot_product_attention`,
# `c_proj`, the residual, `ln_2`, the MLP, `ln_f`, `lm_head`, `argmax` — and nothing else: no
# checks, no masks, no prefix. `generate` is timed beside it on the same prompts (greedy, KV
# cache); both must produce the same tokens.
#
# A prefix is a pre-filled cache: `generate` puts it in the cache at the first step and never
# builds it again, so each new token attends to 16 more keys. To separate that cost from the
# machinery of `Tuned`, the plain model is also given the *same* 16 keys and values as `past`
# ("16 cached keys"): it computes exactly what the prefix model computes, so the two must agree
# token for token, and any difference in time is overhead. "generate, again" is the same model
# timed twice: its difference is this machine's noise.

# %%
@torch.no_grad()
def bare_generate(model, idx, n_new):
    """Greedy decoding as the blocks' own nn ops, one token per step after the prompt."""
    t = model.transformer
    cache = [None] * len(t.h)
    tokens, new, start = idx, [], 0
    for _ in range(n_new):
        B, T = tokens.shape
        x = t.wte(tokens) + t.wpe.weight[start:start + T]  # (B, T, C)
        for i, block in enumerate(t.h):
            a = block.attn
            q, k, v = (z.view(B, T, a.n_head, -1).transpose(1, 2)  # (B, nh, T, hs)
                       for z in a.c_attn(block.ln_1(x)).split(a.n_embd, dim=2))
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
            cache[i] = (k, v)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)  # prompt: causal
            x = x + a.c_proj(y.transpose(1, 2).reshape(B, T, -1))
            x = x + block.mlp(block.ln_2(x))
        tokens = model.lm_head(t.ln_f(x[:, -1:])).argmax(-1)  # (B, 1)
        new.append(tokens)
        start += T
    return torch.cat(new, dim=1)


gen = SimpleNamespace(**S["gen"])
torch.manual_seed(0)
gbase = GPT(config_of(s)).to(DEVICE).eval()
tuned, tuned_mlp = Tuned(gbase), Tuned(gbase)
direct = tuned.add("prefix", Prefix(gbase, s.virtual))
mlp_prefix = tuned_mlp.add("prefix + MLP", Prefix(gbase, s.virtual, mid=s.mid))
with torch.no_grad():
    same_keys = [(k.detach(), v.detach()) for k, v in direct.prefix()]  # (1, nh, 16, hs) each
calls = {"mlp": 0, "prefix": 0}
mlp_prefix.mlp.register_forward_hook(lambda *a: calls.update(mlp=calls["mlp"] + 1))
build_prefix = direct.prefix


def counted_prefix(*args):
    calls["prefix"] += 1
    return build_prefix(*args)


direct.prefix = counted_prefix  # count how often the direct prefix is built
decoders = {
    "bare ops (floor)": lambda p: bare_generate(gbase, p, gen.new),
    "generate": lambda p: generate(gbase, p, gen.new),
    "generate, again": lambda p: generate(gbase, p, gen.new),
    f"{s.virtual} cached keys": lambda p: generate(gbase, p, gen.new, past=same_keys),
    f"prefix {s.virtual}": lambda p: generate(tuned, p, gen.new),
    f"prefix {s.virtual} + MLP": lambda p: generate(tuned_mlp, p, gen.new),
}
BATCHES = (1, 8)
prompts = {b: torch.randint(0, s.vocab_size, (b, gen.prompt), device=DEVICE) for b in BATCHES}
seconds = {(d, b): [] for d in decoders for b in BATCHES}
outputs, per_call = {}, {}
for r in range(gen.rounds):
    for d, b in seconds:
        before = dict(calls)
        took, outputs[d, b] = timed(lambda: decoders[d](prompts[b]))
        seconds[d, b].append(took)
        per_call[d] = {k: calls[k] - before[k] for k in calls}
same_tokens = {
    "floor": all(torch.equal(outputs["bare ops (floor)", b], outputs["generate", b])
                 for b in BATCHES),
    "prefix": all(torch.equal(outputs[f"prefix {s.virtual}", b],
                              outputs[f"{s.virtual} cached keys", b]) for b in BATCHES)}


def paired(a, b, batch):
    """Median over rounds of a's time ÷ b's time at `batch`, each ratio inside one round."""
    return statistics.median(x / y for x, y in zip(seconds[a, batch], seconds[b, batch]))


generation = {d: {b: dict(tokens_per_s=b * gen.new / statistics.median(seconds[d, b]),
                          vs_floor=paired("bare ops (floor)", d, b)) for b in BATCHES}
              for d in decoders}
generation_rows = table(
    [{"decoder": d, "tok/s b1": round(g[1]["tokens_per_s"]), "× floor b1": g[1]["vs_floor"],
      "tok/s b8": round(g[8]["tokens_per_s"]), "× floor b8": g[8]["vs_floor"]}
     for d, g in generation.items()],
    title=f"greedy generation: {gen.new} new tokens after a {gen.prompt}-token prompt, "
          f"{DEVICE.type}; median of {gen.rounds} rounds", floatfmt="{:.2f}",
    notes={"tok/s b1": "new tokens per second at batch 1 (b8: batch 8)",
           "× floor b1": "tokens/s ÷ the bare-ops floor's, paired within each round"})
prefix_ratio = {b: paired(f"prefix {s.virtual}", f"{s.virtual} cached keys", b) for b in BATCHES}
prefix_cost = {b: prefix_ratio[b] - 1 for b in BATCHES}
noise = {b: paired("generate, again", "generate", b) - 1 for b in BATCHES}
print(f"same tokens: floor and generate {'yes' if same_tokens['floor'] else 'NO'}; prefix "
      f"and {s.virtual} cached keys {'yes' if same_tokens['prefix'] else 'NO'}")
print(f"per generate call: the direct prefix was built {per_call[f'prefix {s.virtual}']['prefix']}"
      f" time(s), the prefix MLP ran {per_call[f'prefix {s.virtual} + MLP']['mlp']} time(s)")
for b in BATCHES:
    ratio = generation["generate"][b]["vs_floor"]
    print(f"batch {b}: generate ÷ floor {ratio:.4f} (target >= 0.95: "
          f"{'met' if ratio >= 0.95 else 'not met'}); prefix {s.virtual} beyond {s.virtual} cached "
          f"keys {100 * prefix_cost[b]:+.2f}%")
    print(f"  (target <= 3%: {'met' if prefix_cost[b] <= 0.03 else 'not met'}); the same model "
          f"timed twice: {100 * noise[b]:+.1f}%")

# %% [markdown]
# ## What the generation table says
#
# * The floor is what decoding costs with nothing but the math; `generate` adds its option
#   checks once per call and, per token, the model's forward with its mask and position logic.
#   The closer "× floor" is to 1, the less the generality costs. At batch 8 each step does eight
#   times the arithmetic for the same Python, so the overhead's share shrinks.
# * A prefix is P more keys in the cache, built once per call (its MLP too, or never after
#   `export()`), so its cost beyond the same keys handed in as `past` is the `Tuned` machinery
#   alone. Compare it with the "generate, again" noise before reading anything into it.

# %%
results = dict(
    prefix_vs_full=training["prefix"]["vs_full"], full_mfu=training["full FT"]["mfu"],
    reference_mfu=training["reference GPT"]["mfu"],
    minitx_vs_reference=1 / training["reference GPT"]["vs_full"],
    recompute_full=recompute["full FT"], recompute_prefix=recompute["prefix"],
    **{f"memory_target_{seq}": t["got"] for seq, t in targets.items()},
    **{f"generate_vs_floor_b{b}": generation["generate"][b]["vs_floor"] for b in BATCHES},
    **{f"prefix_vs_cached_keys_b{b}": prefix_ratio[b] for b in BATCHES})
ckpt_full = {seq: next(r["vs_full"] for r in memory[seq] if r["row"] == "full FT + ckpt")
             for seq in m.seqs}
plain_prefix = {seq: next(r["vs_full"] for r in memory[seq] if r["row"] == "prefix")
                for seq in m.seqs}
short, long = m.seqs
takeaway(
    f"a prefix-tuning step took {results['prefix_vs_full']:.2f} of a full fine-tuning step "
    f"(model FLOPs: 0.67)",
    f"full FT ran at {100 * results['full_mfu']:.0f}% MFU, the 12-line reference GPT at "
    f"{100 * results['reference_mfu']:.0f}%",
    f"checkpointing made a step x{recompute['full FT']:.2f} slower for full FT and "
    f"x{recompute['prefix']:.2f} for prefix tuning",
    f"peak ÷ full FT's at 1 x {short} / 1 x {long}: prefix {plain_prefix[short]:.2f} / "
    f"{plain_prefix[long]:.2f}, prefix + ckpt + chunk {targets[short]['got']:.2f} / "
    f"{targets[long]['got']:.2f}",
    f"full FT + ckpt: {ckpt_full[short]:.2f} / {ckpt_full[long]:.2f} (its peak is the optimizer "
    f"step); the floor: {targets[short]['floor']:.2f} / {targets[long]['floor']:.2f}",
    f"generate reached {results['generate_vs_floor_b1']:.2f} / "
    f"{results['generate_vs_floor_b8']:.2f} of the bare-ops floor at batch 1 / 8",
    f"a {s.virtual}-token prefix took {100 * prefix_cost[1]:+.1f}% / {100 * prefix_cost[8]:+.1f}% "
    f"time beyond the same {s.virtual} keys as a cache")

# %% [markdown]
# ## Exercises
#
# 1. **The floor by hand.** GPT-2 small has N = V·C + S·C + L·(12C² + 13C) + 2C parameters (the
#    output head tied to the embedding). With V = 50,257, C = 768, L = 12 and S = 1,040
#    positions, what is 4N bytes in MiB? Check it against the "computed" line of a `--full` run,
#    and the default mode's stand-in (C = 192, V = 12,564, S = 272). *Hint:* 12C² is Q, K, V,
#    the output projection and the 4C-wide MLP; 13C their biases and two layer norms.
# 2. **How small can a chunk be?** In the settings, set the memory `loss_chunk` to the whole
#    sequence (one chunk) and then to 1. What happens to "prefix + ckpt + chunk" in the tables,
#    and to the time the probe takes? *Hint:* a chunk's logits are k × V numbers, and each chunk
#    is one more small matrix multiply against the whole (V, C) head.
# 3. **Where does prefix + ckpt's memory go?** Run `memory_probe.py` yourself for one row with
#    `torch.profiler.profile(profile_memory=True)` around the step and sort the allocations by
#    size. Which tensors are the largest left above the floor? *Hint:* with a prefix the keys
#    are longer than the queries, and on a CPU the attention scores of one block are (heads, T,
#    16 + T) numbers.
# 4. **Open: reach the floor.** Profile one `generate` step against one `bare_generate` step
#    (`torch.profiler`, sort by self CPU time) and list the per-token work that does not depend
#    on the new token. How much of the gap does each item explain?
