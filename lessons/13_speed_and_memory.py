"""Lesson 13: speed and memory — what each tuning method costs, measured.

Parameter-efficient tuning trains a tiny fraction of the weights, so it is tempting to expect it
to be tiny in cost too. It is not, and this lesson measures by how much. For one model it runs
every method — full fine-tuning, prompt tuning (Lester et al. 2021), prefix tuning (Li & Liang
2021) directly and through its reparameterization MLP, P-tuning v2's deep prompts (Liu et al.
2021), LoRA (Hu et al. 2021) and bottleneck adapters (Houlsby et al. 2019) — and prints one table:
the training-step time, tokens/s, the model-FLOP utilisation (MFU) against a matmul peak it
measures itself, peak memory and trainable parameters. Then generation speed with and without a
prefix, and the memory of prefix tuning against full fine-tuning on a GPT-2-small-sized model,
which answers the source article's memory claim with a measurement.

The arithmetic to keep in mind (Kaplan et al. 2020, §2.1): a forward pass costs about 2N FLOPs
per token for N weights; the backward pass 4N — 2N for the gradients with respect to the
activations, 2N for the gradients with respect to the weights. Full fine-tuning costs 6N per
token. With a frozen base no weight gradient is needed, but the gradient still has to travel back
through every layer to reach the prefix: 4N per token, a ratio of 2/3, not the 0.1% that the
parameter count suggests. Paper: prefix tuning was "30% faster per epoch" (Li & Liang §5.3).

Run:  python lessons/13_speed_and_memory.py [--fast | --full] [--threads N]
Default: under a minute on an idle 2-core CPU; --fast: a tiny model for the tests; --full: more
rounds and a process-RSS cross-check of the memory comparison.
"""
# %% [markdown]
# # 13 · Speed and memory
#
# One configuration for every method (the course's reference configuration, used wherever speed
# is compared): 6 layers, width 384, 6 heads, vocabulary 512, context 512, batches of 8 × 128
# tokens, fp32, 16 virtual tokens, a prefix MLP of hidden width 512, LoRA r = 8 on the attention
# input projection (`attn.c_attn`), adapters of bottleneck 64.

# %%
import copy
import os
import platform
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import torch
from torch.profiler import ProfilerActivity, profile

from minitx import GPT, Config, generate
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, Tuned, count_parameters, fingerprint

DEFAULT = dict(n_layer=6, n_embd=384, n_head=6, vocab_size=512, block_size=512, batch=8, seq=128,
               virtual=16, mid=512, lora_r=8, bottleneck=64, n_classes=2, rounds=5,
               gen_prompt=16, gen_new=64, gen_rounds=3)
FAST = dict(DEFAULT, n_layer=2, n_embd=64, n_head=2, vocab_size=128, block_size=128, batch=2,
            seq=32, mid=64, bottleneck=16, rounds=2, gen_new=8, gen_rounds=1)
FULL = dict(DEFAULT, rounds=11, gen_rounds=7)
# the memory comparison: GPT-2 small's shape (124M parameters), one sequence of 512 tokens
GPT2_SMALL = dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, block_size=1024, batch=1,
                  seq=512, virtual=16)
GPT2_STANDIN = dict(GPT2_SMALL, n_layer=2, n_embd=128, n_head=2, vocab_size=2048, block_size=256,
                    seq=128)  # --fast only

METHODS = ["full fine-tuning", "prompt", "prefix", "prefix + MLP", "deep prompt", "LoRA",
           "adapter"]
MiB = 2**20


def config_of(s):
    return Config(vocab_size=s.vocab_size, block_size=s.block_size, n_layer=s.n_layer,
                  n_head=s.n_head, n_embd=s.n_embd)


def environment(device):
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        platform.processor() or platform.machine())
    return (f"device {device.type} ({name}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")


# %% [markdown]
# ## The methods, and what each one trains
#
# Every frozen-base method goes through `Tuned`, which freezes the base model; full fine-tuning
# trains a copy of the same model. "Prefix" is the direct prefix (P itself is the parameter);
# "prefix + MLP" trains P′ and the MLP that makes P from it (Li & Liang §4.3); "deep prompt" is
# P-tuning v2: the same per-layer prefix with a linear classification head on the last token
# instead of the language-model head (the head runs on one position, not 128).
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
    if method == "full fine-tuning":
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


def optimizer(params):
    """AdamW as minitx.train builds it: decay on matrices only, the fused kernel (one pass over
    all parameters; the per-tensor loop costs ~4x more time on CPU)."""
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, betas=(0.9, 0.95),
                             fused=True)


def model_flops_per_token(method, model, s):
    """Model FLOPs per position (PaLM's definition without the attention term): 2 per weight
    forward, 2 per weight for the activation gradients, 2 per *trained* weight for its gradient.
    N counts every weight a token multiplies: all parameters but the position table, the tied
    embedding once (as the output head); LoRA/adapter weights join the forward and the weight
    gradients. The prefix is no per-token weight (its cost is attention), and the prefix MLP
    runs once per step, not per token. Deep prompt: the LM head is not run (a k-class head is)."""
    base = model if method == "full fine-tuning" else model.base
    c = base.config
    n = count_parameters(base)[1] - c.block_size * c.n_embd
    if method == "deep prompt":
        n -= c.vocab_size * c.n_embd
    extra = {"LoRA": 1, "adapter": 1}.get(method, 0) and count_parameters(model)[0]
    trained = n if method == "full fine-tuning" else extra
    return 4 * (n + extra) + 2 * trained, n


def positions(method, s):
    """Positions each row runs through the model: a soft prompt adds its virtual tokens."""
    return s.seq + (s.virtual if method == "prompt" else 0)


# %% [markdown]
# ## A measured peak
#
# MFU compares the model FLOPs a step needs with what the hardware could do in that time. The
# "could do" here is measured, not taken from a data sheet: the best of a few large square fp32
# matmuls (2048³), on the same threads, in every round, so that a busy machine lowers the peak
# and the step alike and their ratio stays meaningful.


# %%
def matmul_peak(device, dtype=torch.float32, n=2048, repeats=3):
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# %% [markdown]
# ## One training step, and what it allocates
#
# A step is forward + backward + AdamW over the trainable parameters, `zero_grad(set_to_none)`.
# The first step of each method checks the frozen base: after `backward()` no base weight has a
# `.grad`, every trainable one has; after `step()` the optimizer holds state for the trainable
# parameters only (AdamW keeps two fp32 numbers per parameter: on a frozen base that is the
# difference between 3×N and 3×(0.1% of N) floats of gradient and state).
#
# Memory: on CUDA, `torch.cuda.max_memory_allocated` over one step. On CPU there is no allocator
# counter, and the process's peak RSS is a lifetime high-water mark; so the step runs under
# `torch.profiler` with `profile_memory=True`, which records every CPU tensor allocation and free:
# their running sum's maximum, plus the bytes alive before the step (weights and optimizer state)
# is the same quantity, the peak of live tensor bytes. The same step counts the matmul FLOPs it ran: ≈ 6 per weight per token for full fine-tuning, ≈ 4 with a frozen base — the
# proof that no weight gradient of a frozen weight is computed (the profiler's `with_flops`
# counts every matrix multiply, forward and backward, from its shapes).


# %%
def make_step(model, batch, autocast_dtype=None):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params)
    device = params[0].device

    def step(check=False):
        with torch.autocast(device.type, autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            loss = model(**batch)[1]
        loss.backward()
        if check:
            frozen = [p for p in model.parameters() if not p.requires_grad]
            assert all(p.grad is None for p in frozen), "a frozen weight got a gradient"
            assert all(p.grad is not None for p in params), "a trainable weight got no gradient"
        opt.step()
        if check:
            state = {id(p) for p in opt.state}
            assert state == {id(p) for p in params}, "optimizer state beyond trainable params"
        opt.zero_grad(set_to_none=True)
        return loss
    return step, opt


def alive_bytes(model, opt):
    """Bytes of weights and optimizer state (each storage once)."""
    tensors = list(model.parameters()) + [t for st in opt.state.values() for t in st.values()
                                          if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def measure_step(step, model, opt, device):
    """One step under the profiler: (peak bytes of live tensors, matmul FLOPs it ran)."""
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = alive_bytes(model, opt)
    with profile(activities=activities, profile_memory=True, with_flops=True) as prof:
        step()
        sync(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                  and e.device_type() == torch.autograd.DeviceType.CPU]
        running = top = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            running += e.nbytes()  # + on allocation, - on free
            top = max(top, running)
        peak = before + top
    matmul = sum(e.flops for e in prof.events() if e.name in ("aten::mm", "aten::addmm", "aten::bmm"))
    return peak, matmul


# %% [markdown]
# ## The benchmark
#
# Timing on a shared machine is noisy, so the methods are measured in rounds: each round
# measures the matmul peak and then one step of every method (in a rotating order); a method's
# time is the median over rounds, and every ratio (MFU, step ÷ full fine-tuning) is taken inside
# a round and then the median over rounds is reported.


# %%
def bench_training(s, device, autocast_dtype=None, log=print):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device)
    before = fingerprint(base)
    runs = {}
    for method in METHODS:
        torch.manual_seed(1)
        model = build(method, base, s)
        batch = make_batch(method, s, device)
        step, opt = make_step(model, batch, autocast_dtype)
        step(check=True)  # warm-up, and the frozen-base checks
        peak, counted = measure_step(step, model, opt, device)  # a second warm-up step
        flops, n = model_flops_per_token(method, model, s)
        trainable, total = count_parameters(model)
        runs[method] = SimpleNamespace(step=step, model=model, peak=peak, counted=counted,
                                       flops=flops * s.batch * positions(method, s), n=n,
                                       trainable=trainable, total=total, times=[], mfu=[],
                                       ratio=[])
    peak_dtype = autocast_dtype or torch.float32
    peaks = []
    for r in range(s.rounds):
        peaks.append(matmul_peak(device, peak_dtype))
        order = METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)]
        for method in order:
            sync(device)
            t = time.perf_counter()
            runs[method].step()
            sync(device)
            runs[method].times.append(time.perf_counter() - t)
        full = runs["full fine-tuning"].times[-1]
        for run in runs.values():
            run.mfu.append(run.flops / run.times[-1] / peaks[-1])
            run.ratio.append(run.times[-1] / full)
    base_unchanged = fingerprint(base) == before
    rows = []
    for method, run in runs.items():
        t = statistics.median(run.times)
        rows.append(dict(
            method=method, step_ms=1e3 * t, vs_full=statistics.median(run.ratio),
            tokens_per_s=s.batch * s.seq / t, mfu=statistics.median(run.mfu),
            flops_per_token_over_n=run.counted / (s.batch * positions(method, s)) / run.n,
            peak_mib=run.peak / MiB, trainable=run.trainable,
            trainable_pct=100 * run.trainable / run.total, frozen_base_ok=True))
    return dict(rows=rows, peak_flops=statistics.median(peaks), base_unchanged=base_unchanged,
                N=runs["full fine-tuning"].n)


def print_training(result, s, title, log=print):
    log(f"\n{title}")
    log(f"matmul peak (median of rounds, best of 3 each): {result['peak_flops'] / 1e9:.1f} GFLOP/s;"
        f" N = {result['N']:,} weights a token multiplies")
    log(f"{'method':<17}{'step ms':>9}{'× full':>8}{'tokens/s':>10}{'MFU':>7}"
        f"{'FLOPs/tok/N':>12}{'peak MiB':>10}{'trainable':>12}{'%':>9}")
    for r in result["rows"]:
        log(f"{r['method']:<17}{r['step_ms']:>9.1f}{r['vs_full']:>8.2f}{r['tokens_per_s']:>10,.0f}"
            f"{100 * r['mfu']:>6.1f}%{r['flops_per_token_over_n']:>12.2f}{r['peak_mib']:>10.1f}"
            f"{r['trainable']:>12,}{r['trainable_pct']:>9.4f}")


# %% [markdown]
# ## Generation with a prefix
#
# A prefix is a pre-filled key/value cache: `generate` puts it in the cache at the first step and
# never computes it again, so each new token only attends to 16 more keys. With the MLP, the MLP
# runs once per `generate` call (counted below with a forward hook), or never after `export()`.


# %%
def bench_generation(s, device, log=print):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device).eval()
    tuned, tuned_mlp = Tuned(base), Tuned(base)
    tuned.add("prefix", Prefix(base, s.virtual))
    mlp_prefix = tuned_mlp.add("prefix+mlp", Prefix(base, s.virtual, mid=s.mid))
    mlp_calls = []
    mlp_prefix.mlp.register_forward_hook(lambda *a: mlp_calls.append(1))
    models = {"no prefix": base, f"prefix {s.virtual}": tuned, f"prefix {s.virtual} + MLP": tuned_mlp}
    times = {(m, b): [] for m in models for b in (1, 8)}
    prompts = {b: torch.randint(0, s.vocab_size, (b, s.gen_prompt), device=device) for b in (1, 8)}
    calls_per_generate = None
    for r in range(s.gen_rounds + 1):  # round 0 is the warm-up
        for (m, b) in times:
            before = len(mlp_calls)
            sync(device)
            t = time.perf_counter()
            generate(models[m], prompts[b], s.gen_new)
            sync(device)
            if r:
                times[(m, b)].append(time.perf_counter() - t)
            if models[m] is tuned_mlp:
                calls_per_generate = len(mlp_calls) - before
    rows = []
    for m in models:
        row = dict(model=m)
        for b in (1, 8):
            row[f"tokens_per_s_b{b}"] = b * s.gen_new / statistics.median(times[(m, b)])
        rows.append(row)
    none = rows[0]
    for row in rows:
        for b in (1, 8):
            row[f"cost_b{b}"] = 1 - row[f"tokens_per_s_b{b}"] / none[f"tokens_per_s_b{b}"]
    return dict(rows=rows, mlp_calls_per_generate=calls_per_generate)


def print_generation(result, s, log=print):
    log(f"\ngeneration: greedy, KV cache, {s.gen_new} new tokens after a {s.gen_prompt}-token "
        f"prompt (median of {s.gen_rounds} rounds)")
    log(f"{'':<18}{'batch 1 tok/s':>14}{'cost':>8}{'batch 8 tok/s':>15}{'cost':>8}")
    for r in result["rows"]:
        log(f"{r['model']:<18}{r['tokens_per_s_b1']:>14,.0f}{100 * r['cost_b1']:>7.1f}%"
            f"{r['tokens_per_s_b8']:>15,.0f}{100 * r['cost_b8']:>7.1f}%")
    log(f"the prefix MLP ran {result['mlp_calls_per_generate']} time(s) per generate call "
        f"({s.gen_new} decoding steps)")


# %% [markdown]
# ## Memory at GPT-2-small size
#
# The source article claims prefix tuning needs 1.1 GB against 18.2 GB for full fine-tuning of
# T5-base on a V100. No source has that measurement; the paper (Li & Liang 2021, §5.3 / appendix)
# reports about 18% against 50% of GPU memory at batch size 1. Here one step of each at GPT-2
# small's shape (124M parameters, vocabulary 50,257, one sequence of 512 tokens), fp32: the
# weights are needed either way and activations still are (the gradient travels through the
# frozen network), but gradients and AdamW state exist for the prefix only.


# %%
def memory_comparison(s, device):
    torch.manual_seed(0)
    base = GPT(config_of(s)).to(device)
    out = {}
    for method in ("prefix", "full fine-tuning"):  # prefix first: full FT unfreezes the base
        model = build(method, base, s) if method == "prefix" else base.requires_grad_(True)
        step, opt = make_step(model, make_batch(method, s, device))
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # create AdamW's state without paying for a warm-up step
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        peak, _ = measure_step(step, model, opt, device)
        out[method] = dict(peak_mib=peak / MiB, weights_mib=alive_bytes(model, opt) / MiB,
                           trainable=count_parameters(model)[0])
        del step, opt, model
    out["ratio"] = out["prefix"]["peak_mib"] / out["full fine-tuning"]["peak_mib"]
    return out


def rss_peak_in_fresh_process(method, fast):
    """--full: the process's peak RSS (ru_maxrss) in a fresh Python running one such step."""
    args = [sys.executable, os.path.abspath(__file__), "--rss", method] + (["--fast"] * fast)
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def rss_child(method, fast):
    import resource
    s = SimpleNamespace(**(GPT2_STANDIN if fast else GPT2_SMALL), n_classes=2)
    torch.manual_seed(0)
    base = GPT(config_of(s))
    model = build(method, base, s) if method == "prefix" else base.requires_grad_(True)
    step, _ = make_step(model, make_batch(method, s, torch.device("cpu")))
    step()
    step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux -> MiB


# %% [markdown]
# ## Run everything


# %%
def main(fast=False, full=False, log=print):
    t0 = time.perf_counter()
    s = SimpleNamespace(**(FAST if fast else FULL if full else DEFAULT))
    device = torch.device("cpu")
    log(f"Lesson 13 — speed and memory. {environment(device)}")
    log(f"config: {s.n_layer} layers, width {s.n_embd}, {s.n_head} heads, vocab {s.vocab_size}, "
        f"context {s.block_size}, batch {s.batch} x {s.seq} tokens, fp32, {s.virtual} virtual "
        f"tokens, prefix MLP {s.mid}, LoRA r={s.lora_r} on attn.c_attn, adapter bottleneck "
        f"{s.bottleneck}, {s.rounds} timed rounds")
    training = bench_training(s, device)
    print_training(training, s, "training step (forward + backward + AdamW), fp32")
    by = {r["method"]: r for r in training["rows"]}
    generation = bench_generation(s, device)
    print_generation(generation, s)

    m = SimpleNamespace(**(GPT2_STANDIN if fast else GPT2_SMALL), n_classes=2)
    memory = memory_comparison(m, device)
    log(f"\npeak memory of one training step at {'a stand-in for ' if fast else ''}GPT-2-small "
        f"size ({m.n_layer} layers, width {m.n_embd}, vocab {m.vocab_size}, batch {m.batch} x "
        f"{m.seq}), fp32, {device.type}:")
    for k in ("full fine-tuning", "prefix"):
        log(f"  {k:<17} {memory[k]['peak_mib']:>8.0f} MiB  (weights + AdamW state: "
            f"{memory[k]['weights_mib']:.0f} MiB, trainable {memory[k]['trainable']:,})")
    log(f"  prefix / full = {memory['ratio']:.2f}   (paper: ~18% vs ~50% of a GPU's memory at "
        f"batch 1, i.e. 0.36; the article's 1.1 GB vs 18.2 GB = 0.06 has no source)")
    if full:
        rss = {k: rss_peak_in_fresh_process(k, fast) for k in ("full fine-tuning", "prefix")}
        log(f"  cross-check, peak RSS of a fresh process (torch itself included): full "
            f"{rss['full fine-tuning']:.0f} MiB, prefix {rss['prefix']:.0f} MiB, ratio "
            f"{rss['prefix'] / rss['full fine-tuning']:.2f}")
        memory["rss_mib"] = rss

    cuda = {}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        for name, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
            cuda[name] = bench_training(s, dev, dtype)
            print_training(cuda[name], s, f"CUDA training step, {name}: {environment(dev)}")
        cuda["generation"] = bench_generation(s, dev)
        print_generation(cuda["generation"], s)
        cuda["memory"] = memory_comparison(m, dev)
        log(f"CUDA GPT-2-small memory: full {cuda['memory']['full fine-tuning']['peak_mib']:.0f}"
            f" MiB, prefix {cuda['memory']['prefix']['peak_mib']:.0f} MiB, ratio "
            f"{cuda['memory']['ratio']:.2f}")
    else:
        log("\nCUDA: not run on CUDA (no GPU visible to torch here).")

    ratios = dict(
        full_mfu=by["full fine-tuning"]["mfu"], prefix_vs_full=by["prefix"]["vs_full"],
        gen_prefix_cost_b1=generation["rows"][1]["cost_b1"],
        gen_prefix_cost_b8=generation["rows"][1]["cost_b8"],
        memory_prefix_vs_full=memory["ratio"])
    seconds = time.perf_counter() - t0
    log(f"\nratios: full fine-tuning MFU {100 * ratios['full_mfu']:.1f}% (target >= 70%), "
        f"prefix step / full step {ratios['prefix_vs_full']:.2f} (<= 0.72; FLOPs 0.67), "
        f"prefix generation cost {100 * ratios['gen_prefix_cost_b1']:.1f}% / "
        f"{100 * ratios['gen_prefix_cost_b8']:.1f}% at batch 1 / 8 (<= 3%), memory prefix / full "
        f"{ratios['memory_prefix_vs_full']:.2f} (<= 0.6)")
    log(f"lesson time {seconds:.1f} s")
    return dict(config=vars(s), environment=environment(device), training=training,
                generation=generation, memory=memory, memory_config=vars(m), cuda=cuda,
                ratios=ratios, seconds=seconds)


if __name__ == "__main__":
    if "--threads" in sys.argv:
        torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    if "--rss" in sys.argv:
        rss_child(sys.argv[sys.argv.index("--rss") + 1], "--fast" in sys.argv)
    else:
        main("--fast" in sys.argv, "--full" in sys.argv)
