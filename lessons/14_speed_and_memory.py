"""Lesson 14 — speed and memory: what each tuning method costs, measured.

Parameter-efficient tuning trains a tiny fraction of the weights, so it is tempting to expect it
to be tiny in cost too. It is not, and this lesson measures by how much. For one model it runs
every method — full fine-tuning, prompt tuning (Lester et al. 2021), prefix tuning (Li & Liang
2021) directly and through its reparameterization MLP, P-tuning v2's deep prompts (Liu et al.
2022), LoRA (Hu et al. 2021) and bottleneck adapters (Houlsby et al. 2019) — and prints one table:
training-step time, tokens/s, model-FLOP utilisation (MFU) against a matmul peak it measures
itself, peak memory and trainable parameters. A 12-line nanoGPT-style forward pass over the
same weights runs in the same rounds, so "does minitx's generality cost speed?" is answered on
your machine. Then generation speed with and without a prefix, and the memory of prefix
tuning against full fine-tuning at GPT-2-small size, which answers the source article's memory
claim with a measurement.

The arithmetic to keep in mind (Kaplan et al. 2020, §2.1): a forward pass costs about 2N FLOPs
per token for N weights, the backward pass 4N — 2N for the gradients with respect to the
activations and 2N for those with respect to the weights. Full fine-tuning: 6N per token. With a
frozen base no weight gradient is needed, but the gradient must still travel back through every
layer to reach the prefix: 4N per token. A prefix-tuning step should cost 2/3 of a full one, not
the 0.1% that its parameter count suggests (Li & Liang 2021: ~30% faster per epoch, 0.2 h vs
0.3 h).

Run:  python lessons/14_speed_and_memory.py [--fast | --full] [--threads N]
Default: 35-50 s on a 2-core CPU, on all of torch's threads — or on one thread when other
processes already keep every core busy (load average >= CPUs; a second OpenMP thread would mostly
wait), --threads N overrides; --fast: a tiny model, a few seconds, for the tests; --full: more
rounds, and a cross-check of the memory comparison by process peak RSS.
"""
# %% [markdown]
# # 13 · Speed and memory
#
# One configuration for every method (the course's reference configuration, used wherever speed
# is compared): 6 layers, width 384, 6 heads, vocabulary 512, context 512, batches of 8 × 128
# tokens, fp32, 16 virtual tokens, a prefix MLP of hidden width 512, LoRA r = 8 on the attention
# input projection (`attn.c_attn`), adapters with a bottleneck of 64.

# %%
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import __version__ as TORCH_VERSION
from torch.profiler import ProfilerActivity, profile

from minitx import GPT, Config, generate
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, Tuned, count_parameters, fingerprint

DEFAULT = dict(n_layer=6, n_embd=384, n_head=6, vocab_size=512, block_size=512, batch=8, seq=128,
               virtual=16, mid=512, lora_r=8, bottleneck=64, n_classes=2, rounds=5,
               gen_prompt=16, gen_new=64, gen_rounds=6)
FAST = dict(DEFAULT, n_layer=2, n_embd=64, n_head=2, vocab_size=128, block_size=128, batch=2,
            seq=32, mid=64, bottleneck=16, rounds=2, gen_new=8, gen_rounds=1)
FULL = dict(DEFAULT, rounds=15, gen_rounds=15)
# the memory comparison: GPT-2 small's shape (124M parameters), one sequence of 512 tokens
GPT2_SMALL = dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, block_size=1024, batch=1,
                  seq=512, virtual=16, n_classes=2)
GPT2_STANDIN = dict(GPT2_SMALL, n_layer=2, n_embd=128, n_head=2, vocab_size=2048, block_size=256,
                    seq=128)  # --fast only

METHODS = ["full fine-tuning", "prompt", "prefix", "prefix + MLP", "deep prompt", "LoRA",
           "adapter"]
REFERENCE = "reference GPT"  # full fine-tuning through the nanoGPT-style forward below
MiB = 2**20


def config_of(s):
    return Config(vocab_size=s.vocab_size, block_size=s.block_size, n_layer=s.n_layer,
                  n_head=s.n_head, n_embd=s.n_embd)


def environment(device):
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        if os.path.exists("/proc/cpuinfo"):
            names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name")]
            name = names[0] if names else name
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"device {device.type} ({name}), torch {TORCH_VERSION}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs{load}")


# %% [markdown]
# ## The methods, and what each one trains
#
# Every frozen-base method goes through `Tuned`, which freezes the base; full fine-tuning trains
# a copy of the same model. "Prefix" is the direct prefix (P itself is the parameter); "prefix +
# MLP" trains P′ and the MLP that makes P from it (Li & Liang §4.3); "deep prompt" is P-tuning
# v2: the same per-layer prefix with a linear classification head on the last token instead of
# the language-model head.
#
# The trainable counts have closed forms (L layers, width C, vocabulary V, context S, n virtual
# tokens, MLP width m, LoRA rank r, adapter bottleneck b, k classes):
#
# | method | trainable parameters |
# | --- | --- |
# | full fine-tuning | V·C + S·C + L·(12C² + 13C) + 2C |
# | prompt | n·C |
# | prefix | L·2·n·C |
# | prefix + MLP | n·C + (C·m + m) + (m·2LC + 2LC) |
# | deep prompt | L·2·n·C + C·k + k |
# | LoRA | L·r·(C + 3C) |
# | adapter | 2L·(2C·b + b + C) |


# %%
def build(method, base, s):
    """The module to train for `method`: a trainable copy of the base, or a Tuned wrapper."""
    if method in ("full fine-tuning", REFERENCE):
        return copy.deepcopy(base).requires_grad_(True)
    tuned = Tuned(base)  # freezes the base
    tuned.add(method, {
        "prompt": lambda: SoftPrompt(base, s.virtual),
        "prefix": lambda: Prefix(base, s.virtual),
        "prefix + MLP": lambda: Prefix(base, s.virtual, mid=s.mid),
        "deep prompt": lambda: Prefix(base, s.virtual, n_classes=s.n_classes),
        "LoRA": lambda: LoRA(base, r=s.lora_r),
        "adapter": lambda: Adapter(base, bottleneck=s.bottleneck),
    }[method]())
    return tuned


def make_batch(method, s, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, s.vocab_size, (s.batch, s.seq), generator=g)
    targets = (torch.randint(0, s.n_classes, (s.batch,), generator=g) if method == "deep prompt"
               else torch.randint(0, s.vocab_size, (s.batch, s.seq), generator=g))
    return {"idx": idx.to(device), "targets": targets.to(device)}


# %% [markdown]
# ## A reference: the smallest GPT forward that does the same work
#
# nanoGPT's forward pass written over minitx's own modules and weights: the same layers and GELU,
# fused attention with PyTorch's built-in causal mask, and nothing else — no prefix, no cache, no
# padding masks, no hooks, no checks. If minitx's step is as fast as this one, its generality
# costs nothing.


# %%
def reference_forward(model, idx, targets):
    t, (B, T) = model.transformer, idx.shape
    x = t.wte(idx) + t.wpe(torch.arange(T, device=idx.device))
    for block in t.h:
        C, H = x.size(-1), block.attn.n_head
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2)
                   for z in block.attn.c_attn(block.ln_1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, C // H)
        x = x + block.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        x = x + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(x)), approximate="tanh"))
    logits = model.lm_head(t.ln_f(x))
    return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


# %% [markdown]
# ## FLOPs and a measured peak
#
# Model FLOPs per position: 2 per weight for the forward pass, 2 per weight for the activation
# gradients, 2 per *trained* weight for its weight gradient — 6N for full fine-tuning, 4N with a
# frozen base. N counts every weight a token is multiplied by: all parameters except the position
# table, the tied embedding once (as the output head); LoRA and adapter weights join in; a prefix
# is no per-token weight (its cost is attention), and the prefix MLP runs once per step, not per
# token; deep prompt runs a k-class head on one position instead of the LM head on all. Headline
# MFU uses these 6N / 4N model FLOPs only. PaLM's definition (Chowdhery et al. 2022, App. B) adds
# attention, 12·L·C·S per position for S keys (forward 4·L·C·S, backward twice that; the
# backward needs the activation gradients of attention with or without trained weights): the
# "+attn" column. Neither counts the work a causal kernel skips, nor recomputation.
#
# The peak is measured, not taken from a data sheet: a large square matmul (2048³ on CPU, 4096³
# on CUDA; the median of three after a warm-up), on the same threads, in every round — so that a
# busy machine lowers the peak and the step alike and their ratio stays meaningful. (On a shared
# machine the *best* of a few short matmuls catches a quiet moment that a 1-second step never
# gets, and makes every MFU look worse than it is.)


# %%
def model_flops(method, model, s):
    """(model FLOPs per position without and with attention, N of the base)."""
    base = model if method in ("full fine-tuning", REFERENCE) else model.base
    c = base.config
    n = count_parameters(base)[1] - c.block_size * c.n_embd
    if method == "deep prompt":
        n -= c.vocab_size * c.n_embd
    extra = count_parameters(model)[0] if method in ("LoRA", "adapter") else 0
    trained = n if method in ("full fine-tuning", REFERENCE) else extra
    flops = 4 * (n + extra) + 2 * trained
    keys = s.seq + (s.virtual if method in ("prompt", "prefix", "prefix + MLP", "deep prompt")
                    else 0)
    return flops, flops + 12 * c.n_layer * c.n_embd * keys, n


def positions(method, s):
    """Positions each row runs through the model: a soft prompt adds its virtual tokens."""
    return s.seq + (s.virtual if method == "prompt" else 0)


def matmul_peak(device, dtype=torch.float32, repeats=3):
    """FLOP/s of a large square matmul by wall clock and by CPU time: medians of `repeats`."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    timed(lambda: torch.mm(a, b, out=out), device)  # warm-up
    times = [timed(lambda: torch.mm(a, b, out=out), device) for _ in range(repeats)]
    return tuple(2 * n**3 / statistics.median(t) for t in zip(*times))


def timed(fn, device):
    """(wall seconds, process CPU seconds) of fn()."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# %% [markdown]
# ## One training step, and what it allocates
#
# A step is forward + backward + AdamW over the trainable parameters, built as `minitx.train`
# builds it (decay on matrices only, the fused kernel: one pass over all parameters instead of a
# loop over tensors, about 4× faster on CPU). The first step of each method checks the frozen
# base: after `backward()` no frozen weight has a `.grad` and every trainable one has; after
# `step()` the optimizer holds state for the trainable parameters only. AdamW keeps two numbers
# per parameter; with the gradient that is 3 × 4 bytes per trained weight — on a frozen base,
# per prefix weight only.
#
# Memory: the peak of live tensor bytes during one step — the method's weights and optimizer
# state, plus the highest point that the step's own allocations reach above them. On CUDA the
# allocator counts (`torch.cuda.max_memory_allocated` minus what was allocated before the step).
# On CPU there is no allocator counter, and the process's peak RSS is a lifetime high-water mark,
# so the step runs under `torch.profiler` with `profile_memory=True`, which records every CPU
# tensor allocation and free; the maximum of their running sum is the same quantity.
#
# The profiler also counts, from their shapes, the FLOPs of every matrix multiply the step ran,
# forward and backward (`mm/pos/N` in the table): ≈ 6 per weight per position for full
# fine-tuning, ≈ 4 with a frozen base — the proof that no gradient of a frozen weight is ever
# computed. (The fused attention kernel is not a matrix multiply and is not counted.)


# %%
def optimizer(params):
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, betas=(0.9, 0.95),
                             fused=True)


def make_step(model, batch, autocast_dtype=None, forward=None):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params)
    device = params[0].device

    def step(check=False):
        with torch.autocast(device.type, autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
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
    return step, opt


def alive_bytes(model, opt):
    """Bytes of weights and optimizer state (each storage once)."""
    tensors = list(model.parameters()) + [t for st in opt.state.values() for t in st.values()
                                          if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def prime(opt):
    """Create AdamW's state (zero gradients, one step) without paying for a warm-up step."""
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)


def measure_step(step, model, opt, device):
    """One step (with the frozen-base checks) under the profiler: (peak bytes of live tensors,
    matmul FLOPs it ran, its loss)."""
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)  # other methods' tensors live there too
    before = alive_bytes(model, opt)
    with profile(activities=activities, profile_memory=True, with_flops=True) as prof:
        loss = step(check=True).item()
    if device.type == "cuda":
        peak = before + torch.cuda.max_memory_allocated(device) - start
    else:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                  and e.device_type() == torch.autograd.DeviceType.CPU]
        running = top = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            running += e.nbytes()  # + on allocation, - on free
            top = max(top, running)
        peak = before + top
    matmuls = ("aten::mm", "aten::addmm", "aten::bmm")
    return peak, sum(e.flops for e in prof.events() if e.name in matmuls), loss


# %% [markdown]
# ## The training benchmark
#
# Timing on a shared machine is noisy, so the methods are measured in rounds: each round
# measures the matmul peak, then one step of every method in a rotating order. A method's time is
# the median over rounds; every ratio (MFU, step ÷ full fine-tuning) is taken inside a round and
# its median over rounds reported.


# %%
def bench_training(s, device, autocast_dtype=None):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device)
    before = fingerprint(base)
    runs = {}
    for method in METHODS + [REFERENCE]:
        torch.manual_seed(1)
        model = build(method, base, s)
        batch = make_batch(method, s, device)
        forward = partial(reference_forward, model) if method == REFERENCE else model
        step, opt = make_step(model, batch, autocast_dtype, forward)
        prime(opt)
        peak, counted, loss = measure_step(step, model, opt, device)  # also the warm-up
        flops, flops_attn, n = model_flops(method, model, s)
        trainable, total = count_parameters(model)
        tokens = s.batch * positions(method, s)
        runs[method] = SimpleNamespace(
            step=step, peak=peak, counted=counted / tokens / n, first_loss=loss, n=n,
            flops=flops * tokens, flops_attn=flops_attn * tokens, trainable=trainable,
            total=total, times=[], cpu=[])
    peaks = []
    for r in range(s.rounds):
        peaks.append(matmul_peak(device, autocast_dtype or torch.float32))
        names = list(runs)
        for method in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = timed(runs[method].step, device)
            runs[method].times.append(wall)
            runs[method].cpu.append(cpu)
    full = runs["full fine-tuning"]
    rows = []
    for method, run in runs.items():
        row = dict(method=method, step_ms=1e3 * statistics.median(run.times),
                   cpu_ms=1e3 * statistics.median(run.cpu))
        for clock, peak_of in (("times", 0), ("cpu", 1)):  # every ratio inside a round first
            mine, full_times = getattr(run, clock), getattr(full, clock)
            rates = [p[peak_of] for p in peaks]
            suffix = "" if clock == "times" else "_cpu"
            row["vs_full" + suffix] = statistics.median(a / b for a, b in zip(mine, full_times))
            row["mfu" + suffix] = statistics.median(run.flops / t / p for t, p in zip(mine, rates))
            row["mfu_attn" + suffix] = statistics.median(
                run.flops_attn / t / p for t, p in zip(mine, rates))
        rows.append(dict(
            row, tokens_per_s=s.batch * s.seq * 1e3 / row["step_ms"],
            flops_per_position_over_n=run.counted, peak_mib=run.peak / MiB,
            trainable=run.trainable, trainable_pct=100 * run.trainable / run.total,
            frozen_checks_passed=True))  # the checks are assertions: a failure stops the lesson
    same_loss = abs(runs[REFERENCE].first_loss - runs["full fine-tuning"].first_loss)
    return dict(rows=rows, peak_flops=statistics.median(p[0] for p in peaks),
                peak_flops_cpu=statistics.median(p[1] for p in peaks), N=full.n,
                base_unchanged=fingerprint(base) == before, reference_loss_diff=same_loss)


def print_training(result, title, cpu_table=False):
    print(f"\n{title}")
    print(f"matmul peak {result['peak_flops'] / 1e9:.1f} GFLOP/s (median over rounds); N = "
          f"{result['N']:,} weights per token")
    print(f"{'method':<17}{'step ms':>9}{'× full':>7}{'tokens/s':>9}{'MFU':>7}{'+attn':>7}"
          f"{'mm/pos/N':>9}{'peak MiB':>9}{'trainable':>12}{'%':>8}")
    for r in result["rows"]:
        print(f"{r['method']:<17}{r['step_ms']:>9.1f}{r['vs_full']:>7.2f}{r['tokens_per_s']:>9,.0f}"
              f"{100 * r['mfu']:>6.1f}%{100 * r['mfu_attn']:>6.1f}%"
              f"{r['flops_per_position_over_n']:>9.2f}{r['peak_mib']:>9.1f}{r['trainable']:>12,}"
              f"{r['trainable_pct']:>8.3f}")
    print(f"mm/pos/N: matmul FLOPs the profiler counted per position, over N. Base weights "
          f"unchanged by tuning: {result['base_unchanged']}; reference GPT's loss - minitx's: "
          f"{result['reference_loss_diff']:.1e}")
    if cpu_table:
        print(f"the same by process CPU time (one thread: time other processes take is left out; "
              f"matmul peak {result['peak_flops_cpu'] / 1e9:.1f} GFLOP/s):")
        print(f"{'method':<17}{'CPU ms':>9}{'× full':>7}{'MFU':>7}{'+attn':>7}")
        for r in result["rows"]:
            print(f"{r['method']:<17}{r['cpu_ms']:>9.1f}{r['vs_full_cpu']:>7.2f}"
                  f"{100 * r['mfu_cpu']:>6.1f}%{100 * r['mfu_attn_cpu']:>6.1f}%")


# %% [markdown]
# ## Generation with a prefix
#
# A prefix is a pre-filled key/value cache: `generate` puts it in the cache at the first step and
# never computes it again, so each new token only attends to 16 more keys. With the MLP, the MLP
# runs once per `generate` call (counted below with a forward hook), or never after `export()`.


# %%
def bench_generation(s, device):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device).eval()
    tuned, tuned_mlp = Tuned(base), Tuned(base)
    direct = tuned.add("prefix", Prefix(base, s.virtual))
    mlp_prefix = tuned_mlp.add("prefix + MLP", Prefix(base, s.virtual, mid=s.mid))
    calls = {"mlp": 0, "prefix": 0}
    mlp_prefix.mlp.register_forward_hook(lambda *a: calls.update(mlp=calls["mlp"] + 1))
    build_prefix = direct.prefix

    def counted_prefix():
        calls["prefix"] += 1
        return build_prefix()
    direct.prefix = counted_prefix  # count how often the direct prefix is built
    # "no prefix, again" is the same model timed twice: its "cost" is this machine's noise
    models = {"no prefix": base, "no prefix, again": base, f"prefix {s.virtual}": tuned,
              f"prefix {s.virtual} + MLP": tuned_mlp}
    times = {(m, b): [] for b in (1, 8) for m in models}  # (wall, cpu) seconds per call
    prompts = {b: torch.randint(0, s.vocab_size, (b, s.gen_prompt), device=device) for b in (1, 8)}
    for (m, b) in times:  # warm-up
        generate(models[m], prompts[b], 2)
    per_call = {}
    for r in range(s.gen_rounds):
        for (m, b) in times:
            before = dict(calls)
            times[(m, b)].append(timed(lambda: generate(models[m], prompts[b], s.gen_new), device))
            per_call[m] = {k: calls[k] - before[k] for k in calls}
    rows = []
    for m in models:  # cost: 1 - tokens/s ÷ tokens/s without a prefix, paired within each round
        row = {"model": m}
        for b in (1, 8):
            row[f"tokens_per_s_b{b}"] = b * s.gen_new / statistics.median(
                wall for wall, _ in times[(m, b)])
            for i, suffix in ((0, ""), (1, "_cpu")):
                row[f"cost_b{b}{suffix}"] = statistics.median(
                    1 - none[i] / t[i] for none, t in zip(times[("no prefix", b)], times[(m, b)]))
        rows.append(row)
    # Expected cost. FLOPs per token: 2N, plus 4·L·C per cached key. Bytes read per decoding
    # step (what bounds a CPU at small batch): every weight once, plus 2·L·C numbers per cached
    # key per row. Keys: the prompt plus, on average, half the new tokens.
    c, size = base.config, base.lm_head.weight.element_size()
    n = count_parameters(base)[1] - c.block_size * c.n_embd
    keys, per_key = s.gen_prompt + s.gen_new / 2, 2 * c.n_layer * c.n_embd
    def cost(fixed, per_row):  # 1 - work without the prefix / work with it
        return 1 - (fixed + per_row * keys) / (fixed + per_row * (keys + s.virtual))
    expected = {"flops": cost(2 * n, 2 * per_key), "bytes_b1": cost(n * size, per_key * size),
                "bytes_b8": cost(n * size, 8 * per_key * size)}
    again = rows[1]  # "no prefix, again"
    return dict(rows=rows, noise_b1=again["cost_b1"], noise_b8=again["cost_b8"],
                expected=expected,
                mlp_calls_per_generate=per_call[f"prefix {s.virtual} + MLP"]["mlp"],
                prefix_builds_per_generate=per_call[f"prefix {s.virtual}"]["prefix"])


def print_generation(result, s, cpu_costs=False):
    print(f"\ngeneration: greedy, KV cache, {s.gen_new} new tokens after a {s.gen_prompt}-token "
          f"prompt (median of {s.gen_rounds} rounds; cost paired within a round)")
    print(f"{'':<18}{'batch 1 tok/s':>14}{'cost':>8}{'batch 8 tok/s':>15}{'cost':>8}"
          + f"{'cost by CPU time b1, b8':>25}" * cpu_costs)
    for r in result["rows"]:
        print(f"{r['model']:<18}{r['tokens_per_s_b1']:>14,.0f}{100 * r['cost_b1']:>7.1f}%"
              f"{r['tokens_per_s_b8']:>15,.0f}{100 * r['cost_b8']:>7.1f}%"
              + f"{100 * r['cost_b1_cpu']:>16.1f}%,{100 * r['cost_b8_cpu']:>6.1f}%" * cpu_costs)
    print(f"per generate call ({s.gen_new} decoding steps): the direct prefix was built "
          f"{result['prefix_builds_per_generate']} time(s), the prefix MLP ran "
          f"{result['mlp_calls_per_generate']} time(s).")
    e = result["expected"]
    print(f"expected cost of {s.virtual} more cached keys: {100 * e['flops']:.1f}% by FLOPs; "
          f"{100 * e['bytes_b1']:.1f}% (batch 1) and {100 * e['bytes_b8']:.1f}% (batch 8) by bytes "
          f"read per step. \"no prefix, again\" is the same model timed twice: its cost is noise.")


# %% [markdown]
# ## Memory at GPT-2-small size
#
# The source article claims prefix tuning needs 1.1 GB against 18.2 GB for full fine-tuning of
# T5-base on a V100. No source has that measurement; the paper (Li & Liang 2021) reports
# about 18% against 50% of GPU memory at batch size 1. Here: one step of each at GPT-2 small's
# shape (124M parameters, vocabulary 50,257, one sequence of 512 tokens), fp32. The weights are
# needed either way and so are the activations (the gradient travels through the frozen network);
# what prefix tuning saves is the gradient and the AdamW state of the base: 3 × 4 bytes × 124M.
# With W the bytes of the weights and A those of the activations, full fine-tuning needs about
# W + W (gradients) + 2W (AdamW) + A and prefix tuning W + A: a ratio of (W + A) / (4W + A),
# 1/4 if activations were free, approaching 1 as batch or sequence grow.


# %%
def memory_comparison(s, device):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device)
    out = {}
    for method in ("prefix", "full fine-tuning"):  # prefix first: full FT unfreezes the base
        model = build(method, base, s) if method == "prefix" else base.requires_grad_(True)
        step, opt = make_step(model, make_batch(method, s, device))
        prime(opt)
        peak, _, _ = measure_step(step, model, opt, device)
        out[method] = dict(peak_mib=peak / MiB, before_step_mib=alive_bytes(model, opt) / MiB,
                           trainable=count_parameters(model)[0])
        del step, opt, model
    out["ratio"] = out["prefix"]["peak_mib"] / out["full fine-tuning"]["peak_mib"]
    return out


def print_memory(memory, s, device, standin):
    print(f"\npeak memory of one training step at {'a stand-in for ' * standin}GPT-2-small size "
          f"({s.n_layer} layers, width {s.n_embd}, vocab {s.vocab_size}, batch {s.batch} x "
          f"{s.seq}), fp32, {device.type}:")
    for k in ("full fine-tuning", "prefix"):
        print(f"  {k:<17} {memory[k]['peak_mib']:>8.0f} MiB   (before the step, weights + AdamW "
              f"state: {memory[k]['before_step_mib']:.0f} MiB; trainable "
              f"{memory[k]['trainable']:,})")
    print(f"  prefix / full = {memory['ratio']:.2f}.  Paper: ~18% vs ~50% of a GPU at batch 1 "
          f"(0.36). Article: 1.1 GB vs 18.2 GB (0.06), with no source — a prefix cannot save the "
          f"weights or the activations, only gradients and optimizer state.")


def rss_peak_in_fresh_process(method, fast):
    """--full: (peak RSS, RSS after importing torch) in MiB of a fresh Python that runs two
    steps of `method` at the memory-comparison size."""
    args = [sys.executable, os.path.abspath(__file__), "--rss", method] + ["--fast"] * fast
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    peak, baseline = map(float, done.stdout.split()[-2:])
    return peak - baseline


def rss_child(method, fast):
    """Print this process's peak RSS and its RSS after importing torch, in MiB. VmHWM, not
    getrusage's ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork + exec."""
    def status(field):  # KiB -> MiB
        return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
    baseline = status("VmRSS")
    s = SimpleNamespace(**(GPT2_STANDIN if fast else GPT2_SMALL))
    torch.manual_seed(0)
    base = GPT(config_of(s))
    model = build(method, base, s) if method == "prefix" else base.requires_grad_(True)
    step, _ = make_step(model, make_batch(method, s, torch.device("cpu")))
    step()
    step()
    print(status("VmHWM"), baseline)


# %% [markdown]
# ## What the numbers say
#
# * **Time.** Every frozen-base method still runs the whole network forward and backward, so a
#   prefix-tuning step costs about 0.7 of a full fine-tuning step — the FLOP ratio is 2/3, and
#   attention, GELU and layer norms do not shrink at all — not the 0.1% its parameter count
#   suggests. Prompt tuning costs a little more than a prefix: its virtual tokens are positions in
#   every layer. The reparameterization MLP costs almost nothing per step (it runs once, on 16
#   rows), but it is 2.5M trainable parameters here: the papers' "0.1%" counts what is kept after
#   training (for GPT-2 medium the MLP is ~7% of the model while it trains).
# * **The code.** minitx's full fine-tuning step is as fast as the 12-line reference forward:
#   prefixes, caches and masks cost nothing when they are not used. What keeps MFU near 60-65%
#   on a CPU is the work outside the weight matmuls — about 30% of a step: fused attention ~9%,
#   GPT-2's tanh GELU ~9% (PyTorch's CPU kernel for it is ~4× slower than the erf GELU, which
#   would change GPT-2's function), layer norms, bias sums and the optimizer — and the smaller
#   matmuls running at ~80% of the large one's peak. Measured on a 2-vCPU Xeon, torch 2.13:
#   default (2 threads, wall clock) full fine-tuning 61-66% MFU over four runs, the reference
#   56-64%; one run with `--threads 1` (about 75 s; process CPU time, which leaves out time the
#   machine gives to other work) 68.5% against the reference's 68.2%, prefix ÷ full 0.64, and the
#   prefix's generation cost 2.9% / -2.1% at batch 1 / 8 next to a same-model noise of 0.7% /
#   1.3%; `--full` (15 rounds, 2 threads): MFU 63.3% (reference 64.0%), prefix ÷ full 0.72,
#   generation cost 0.3% / 4.7% (estimate 0.7% / 4.5%; same-model noise -4.9% / 0.1%), and the
#   memory ratio confirmed by process peak RSS: 2,414 vs 1,141 MiB, 0.47.
# * **Memory.** Prefix tuning saves the gradients and the optimizer state of the base, not its
#   weights and not the activations: about half of full fine-tuning at GPT-2-small size and one
#   512-token sequence. That is the paper's direction (18% vs 50% of a GPU at batch 1) and far
#   from the article's 1.1 GB vs 18.2 GB, which would need weights and activations to vanish too.
# * **Generation.** A prefix is P more keys in the cache, computed once per `generate` call (its
#   MLP too, or never after `export()`). Decoding a token at small batch is bound by reading the
#   weights and the cache, so the prefix costs what P more prompt tokens cost: under 1% at
#   batch 1, a few % at batch 8 (the printed estimate). On a shared CPU that is below the noise
#   — compare with the "no prefix, again" row. Decoding writes each new key into the cache in
#   place (`minitx.attention.append`), so a step does not copy the cache it extends.

# %% [markdown]
# ## Run everything


# %%
def main(fast=False, full=False):
    t0, cpu0 = time.perf_counter(), time.process_time()
    s = SimpleNamespace(**(FAST if fast else FULL if full else DEFAULT))
    cpu = torch.device("cpu")
    print(f"Lesson 14 — speed and memory. {environment(cpu)}")
    print(f"config: {s.n_layer} layers, width {s.n_embd}, {s.n_head} heads, vocab "
          f"{s.vocab_size}, context {s.block_size}, batch {s.batch} x {s.seq} tokens, fp32, "
          f"{s.virtual} virtual tokens, prefix MLP {s.mid}, LoRA r={s.lora_r} on attn.c_attn, "
          f"adapter bottleneck {s.bottleneck}; {s.rounds} timed rounds")
    phases = {}
    training = bench_training(s, cpu)
    phases["training"] = time.perf_counter() - t0
    print_training(training, "training step (forward + backward + AdamW), fp32, cpu",
                   cpu_table=torch.get_num_threads() == 1)
    generation = bench_generation(s, cpu)
    phases["generation"] = time.perf_counter() - t0 - sum(phases.values())
    print_generation(generation, s, cpu_costs=torch.get_num_threads() == 1)
    m = SimpleNamespace(**(GPT2_STANDIN if fast else GPT2_SMALL))
    memory = memory_comparison(m, cpu)
    phases["memory"] = time.perf_counter() - t0 - sum(phases.values())
    print_memory(memory, m, cpu, fast)
    if full:
        memory["rss_mib"] = {k: rss_peak_in_fresh_process(k, fast)
                             for k in ("full fine-tuning", "prefix")}
        rss = memory["rss_mib"]
        print(f"  cross-check: peak RSS of a fresh process that ran two steps, minus its RSS "
              f"after importing torch: full {rss['full fine-tuning']:.0f} MiB, prefix "
              f"{rss['prefix']:.0f} MiB, ratio {rss['prefix'] / rss['full fine-tuning']:.2f}")

    cuda = {}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
            cuda[name] = bench_training(s, dev, dtype)
            print_training(cuda[name], f"training step, {name}, {environment(dev)}")
        cuda["generation"] = bench_generation(s, dev)
        print_generation(cuda["generation"], s)
        cuda["memory"] = memory_comparison(m, dev)
        print_memory(cuda["memory"], m, dev, fast)
    else:
        print("\nCUDA: not run on CUDA (torch sees no GPU here); on a GPU the same tables are "
              "printed for fp32 and bf16 autocast.")

    by = {r["method"]: r for r in training["rows"]}
    gen = {r["model"]: r for r in generation["rows"]}
    ratios = dict(full_mfu=by["full fine-tuning"]["mfu"],
                  full_mfu_attn=by["full fine-tuning"]["mfu_attn"],
                  reference_mfu=by[REFERENCE]["mfu"],
                  minitx_vs_reference=1 / by[REFERENCE]["vs_full"],
                  prefix_vs_full=by["prefix"]["vs_full"],
                  full_mfu_cpu=by["full fine-tuning"]["mfu_cpu"],
                  minitx_vs_reference_cpu=1 / by[REFERENCE]["vs_full_cpu"],
                  prefix_vs_full_cpu=by["prefix"]["vs_full_cpu"],
                  gen_prefix_cost_b1=gen[f"prefix {s.virtual}"]["cost_b1"],
                  gen_prefix_cost_b8=gen[f"prefix {s.virtual}"]["cost_b8"],
                  gen_prefix_cost_b1_cpu=gen[f"prefix {s.virtual}"]["cost_b1_cpu"],
                  gen_prefix_cost_b8_cpu=gen[f"prefix {s.virtual}"]["cost_b8_cpu"],
                  gen_noise_b1=generation["noise_b1"], gen_noise_b8=generation["noise_b8"],
                  memory_prefix_vs_full=memory["ratio"])
    seconds = time.perf_counter() - t0
    print(f"\nratios: full fine-tuning MFU {100 * ratios['full_mfu']:.1f}% "
          f"({100 * ratios['full_mfu_attn']:.1f}% with attention; the reference GPT "
          f"{100 * ratios['reference_mfu']:.1f}%); minitx step / reference step "
          f"{ratios['minitx_vs_reference']:.2f}; prefix step / full step "
          f"{ratios['prefix_vs_full']:.2f} (model FLOPs: 0.67); generation cost of a "
          f"{s.virtual}-token prefix {100 * ratios['gen_prefix_cost_b1']:.1f}% at batch 1, "
          f"{100 * ratios['gen_prefix_cost_b8']:.1f}% at batch 8 (the same model timed twice: "
          f"{100 * ratios['gen_noise_b1']:.1f}% / {100 * ratios['gen_noise_b8']:.1f}%); peak "
          f"memory prefix / full "
          f"{ratios['memory_prefix_vs_full']:.2f}")
    if torch.get_num_threads() == 1:
        print(f"by process CPU time: full fine-tuning MFU {100 * ratios['full_mfu_cpu']:.1f}%; "
              f"minitx / reference {ratios['minitx_vs_reference_cpu']:.2f}; prefix / full "
              f"{ratios['prefix_vs_full_cpu']:.2f}; generation cost of the prefix "
              f"{100 * ratios['gen_prefix_cost_b1_cpu']:.1f}% / "
              f"{100 * ratios['gen_prefix_cost_b8_cpu']:.1f}% at batch 1 / 8")
    print(f"lesson time {seconds:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
          + f"); process CPU time {time.process_time() - cpu0:.1f} s")
    return dict(config=vars(s), memory_config=vars(m), environment=environment(cpu),
                training=training, generation=generation, memory=memory, cuda=cuda,
                ratios=ratios, seconds=seconds)


if __name__ == "__main__":
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    elif hasattr(os, "getloadavg") and os.getloadavg()[0] >= (os.cpu_count() or 1):
        # other processes already use every core: a second OpenMP thread would mostly wait
        print(f"busy machine (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): "
              f"running on one thread; --threads N overrides")
        torch.set_num_threads(1)
    if "--rss" in sys.argv:
        rss_child(sys.argv[sys.argv.index("--rss") + 1], "--fast" in sys.argv)
    else:
        main("--fast" in sys.argv, "--full" in sys.argv)
