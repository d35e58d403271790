"""Lesson 07: prefix tuning — a trainable P_K, P_V in every layer, and why the paper trains them
through an MLP.

Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation",
arXiv 2101.00190; numbers below from the ACL 2021 version) freezes the language model and learns,
for every attention layer, P extra keys and values that sit in front of the layer's own:
Attention(Q, [P_K; K], [P_V; V]). The soft prompt of lesson 01 touches only the input
embeddings; a prefix reaches every layer directly.

This lesson
1. shows the shapes for the course's base model (4 layers, width 128, 4 heads) and counts what
   trains: n_layer * 2 * P * d numbers when the prefix is a parameter ("direct"), and
   P*d + d*mid + mid + mid*2*L*d + 2*L*d when it is produced by the paper's reparameterization
   MLP; `export()` keeps only the prefix, and `Tuned.save` writes a file of the kept size;
2. tests the paper's stability claim — direct optimisation was "unstable" with a slight drop in
   performance — on a task the frozen model cannot do at all (first_last: "a b c d => d a",
   never pretrained, no instruction): direct vs MLP vs MLP + the source article's LayerNorm
   option, over several learning rates and seeds, reporting the mean and the min-max spread;
3. shows why the LayerNorm option is not free: at initialisation it already changes what the
   frozen model computes.

Run:  python lessons/07_prefix_tuning.py [--fast | --full]
Default: ~35 CPU-seconds on one thread; --fast: a few seconds (the tests); --full (~13 minutes):
more steps, seeds, learning rates and variants.
"""
# %% [markdown]
# # 07 · Prefix tuning and its reparameterization
#
# A prefix is a pre-filled key/value cache (lesson 03): for layer l it is a pair
# P_K^l, P_V^l of shape (P, d), split into heads like any key, and every real query may attend
# to all P of them. Nothing else in the model changes. The detail of the paper that matters
# for training (§4.3): the prefix is not optimised directly but computed as P = MLP(P′) from a
# smaller embedding P′, and after training the MLP is thrown away; only P is kept.

# %%
import statistics
import sys
import tempfile

import torch

from common import (OUT, Stopwatch, attention_weights_kept, evaluate, load_base, plot_curves, setup,
                    table, tune)
from minitx.data import encode_prompts
from toyworld import make_split, prompt_text
from minitx.tuning import Prefix, Tuned, count_parameters

TASK = "first_last"  # never pretrained: the frozen model scores 0% without an instruction
LENGTH = 10  # the source article's prefix_len; Li & Liang chose 5 for E2E, 10 for DART
MID = 512  # the paper's MLP width for table-to-text (800 for summarization)

# %% [markdown]
# ## 1. Shapes and parameter counts
#
# `Prefix(model, length, mid=None)` holds the prefix as one parameter of shape
# (layers, K/V, P, d). `prefix()` hands the model, per layer, a key and a value of shape
# (1, heads, P, head size); the model's cache then holds P + T keys per layer.


# %%
def gpt2_param_count(n_layer, d, vocab, block):
    """Weights of a GPT-2-shaped model (tied embeddings): wte + wpe + 12d²+13d per block + ln_f."""
    return vocab * d + block * d + n_layer * (12 * d * d + 13 * d) + 2 * d


def prefix_param_counts(n_layer, d, length, mid):
    """(direct, reparameterized) trainable parameter counts of a prefix on every layer."""
    direct = n_layer * 2 * length * d  # P_K and P_V, (P, d) each, per layer
    mlp = (length * d  # P′ = Embedding(P, d)
           + d * mid + mid  # Linear(d, mid)
           + mid * 2 * n_layer * d + 2 * n_layer * d)  # Linear(mid, L·2·d)
    return direct, mlp


def shapes(base, tok, length=LENGTH):
    c = base.config
    prefix = Prefix(base, length)
    tuned = Tuned(base)
    tuned.add("demo", prefix)
    idx = torch.tensor([tok.encode("red blue green navy =>")] * 2)  # (B=2, T=5)
    with torch.no_grad():
        _, _, present = tuned(idx)
    k0, v0 = prefix.prefix()[0]
    print(f"course model: {c.n_layer} layers, width d = {c.n_embd}, {c.n_head} heads of "
          f"{c.n_embd // c.n_head}; prefix length P = {length}")
    print(f"  Prefix parameter (layers, K/V, P, d)       {list(prefix.kv.shape)}")
    print(f"  layer 0 prefix key P_K / value P_V          {list(k0.shape)} / {list(v0.shape)}"
          "   (1, heads, P, head size)")
    print(f"  input ids                                   {list(idx.shape)}")
    print(f"  layer 0 keys the queries see [P_K; K]       {list(present[0][0].shape)}"
          "   (B, heads, P + T, head size)")
    return {"prefix_param_shape": tuple(prefix.kv.shape), "layer_key_shape": tuple(k0.shape),
            "cache_key_shape": tuple(present[0][0].shape)}


def save_size(base, method):
    """Bytes of the weights file Tuned.save writes for this method alone."""
    tuned = Tuned(base)
    tuned.add("task", method)
    with tempfile.TemporaryDirectory() as directory:
        return tuned.save("task", directory)


def count_rows(base, length=LENGTH, mid=MID):
    """The counts by formula for three configurations, and, for the course model, by
    count_parameters and by the size of the saved file (direct, MLP, exported MLP)."""
    c = base.config
    direct, mlp = Prefix(base, length), Prefix(base, length, mid=mid)
    exported = mlp.export()
    measured = {"direct": count_parameters(direct)[0], "mlp": count_parameters(mlp)[0],
                "exported": count_parameters(exported)[0]}
    sizes = {k: save_size(base, m) for k, m in
             (("direct", direct), ("mlp", mlp), ("exported", exported))}
    base_total = count_parameters(base)[1]
    configs = [  # name, layers, width, vocab, context, P, mid
        ("course model (small)", c.n_layer, c.n_embd, c.vocab_size, c.block_size, length, mid),
        ("article: GPT-2 small", 12, 768, 50257, 1024, 10, 512),
        ("paper E2E: GPT-2 medium", 24, 1024, 50257, 1024, 5, 512)]
    rows = []
    for name, L, d, vocab, block, P, m in configs:
        kept, trained = prefix_param_counts(L, d, P, m)
        total = gpt2_param_count(L, d, vocab, block)
        rows.append({"model": name, "L": L, "d": d, "P": P, "mid": m, "base params": total,
                     "prefix (kept)": kept, "MLP (trained)": trained,
                     "kept %": 100 * kept / total, "MLP %": 100 * trained / total})
    print(f"course model measured: count_parameters(base) = {base_total:,} (formula "
          f"{rows[0]['base params']:,}); direct prefix {measured['direct']:,}, MLP "
          f"{measured['mlp']:,}, exported {measured['exported']:,}")
    print(f"saved adapter files (Tuned.save, fp32 + a small torch.save header): direct "
          f"{sizes['direct']:,} B, MLP before export {sizes['mlp']:,} B, after export "
          f"{sizes['exported']:,} B")
    table(rows, "trainable parameters of a prefix on every layer (formula)", floatfmt="{:.3f}")
    return rows, measured, sizes, base_total


# %% [markdown]
# The MLP is what you *train*; the prefix is what you *keep*. Li & Liang report the kept size
# ("0.1% of the parameters"); the MLP during training is about 7% of GPT-2 medium — the table
# reproduces that from the formula. At the course model's width the same mid = 512 MLP is
# relatively ten times larger: 70% of the base model, because it does not shrink with d.
#
# `export()` runs the MLP once and stores its output as a plain prefix. The outputs must not
# change:


# %%
def export_check(base, tok, length=LENGTH, mid=MID):
    torch.manual_seed(0)
    mlp = Prefix(base, length, mid=mid)
    tuned = Tuned(base)
    tuned.add("mlp", mlp)
    tuned.add("exported", mlp.export())
    idx = torch.tensor([tok.encode("red blue green navy =>"), tok.encode("lamp mug chair hat =>")])
    with torch.no_grad():
        diff = (tuned(idx, task="mlp")[0] - tuned(idx, task="exported")[0]).abs().max().item()
    print(f"logits with the MLP vs with the exported prefix: max |diff| = {diff:.1e}")
    return diff


# %% [markdown]
# ## 2. Is direct optimisation unstable? A grid of learning rates and seeds
#
# Paper (Li & Liang 2021, §4.3, ACL version): directly updating the prefix parameters "leads to
# unstable optimization and a slight drop in performance", so they train P = MLP(P′).
# P-tuning v2 (Liu et al., arXiv 2110.07602) keeps the prefix direct by default and reports that
# the reparameterization's usefulness depends on the task and data set.
#
# The test here: first_last without any instruction, which the frozen model never learned
# (0% exact). 256 training examples, batches of 8, AdamW with warmup and cosine decay, gradient
# clipping 1.0 (minitx's `train`), 50 unseen test inputs scored by exact match. Three
# variants — direct (init N(0, 1)), MLP (mid 512, PyTorch's default Linear init), and MLP with
# the article's LayerNorm on every attention output — at learning rates evenly spaced on a log
# scale from 1e-3 to 1e-1, each over several seeds (the seed changes the init and the batch
# order). A method is "stable" here if its result does not swing with the seed or the learning
# rate; the min-max column shows the swing. The summary also shows how much of the attention at
# "=>" (where the answer starts) the *untrained* prefix already takes ("init attn %"): the input
# is heard only through what is left.
#
# Why the learning rate must differ: AdamW moves every parameter by roughly `lr` per step,
# whatever the size of its gradient. A direct prefix entry therefore moves by about `lr` per
# step — next to its N(0, 1) start, 70 steps at 1e-3 barely move it. Through the MLP each prefix
# entry is a sum over `mid` hidden units of the last Linear's weights times tanh features; each
# of those weights moves by about `lr`, so the prefix can move up to ~mid times faster. The
# "P moved" column (RMS of the change of the prefix) measures this directly. Too fast is as bad
# as too slow: prefix keys far larger than the model's own take over the attention and the
# model stops reading its input (loss stuck near 3.4; nearly every answer is the same word).


# %%
def prefix_attention_share(base, tok, tuned, length, examples):
    """The share (%) of attention that the query at "=>" (where the answer starts) gives to the
    prefix keys, averaged over heads, layers and examples. The written-out attention path
    (use_sdpa = False) keeps its weights for us to read."""
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in examples])
    with attention_weights_kept(base) as layers, torch.no_grad():
        tuned(idx, attention_mask=mask)
        return 100 * statistics.mean(a.weights[:, :, -1, :length].sum(-1).mean().item()
                                     for a in layers)


def rms(t):
    return t.detach().pow(2).mean().sqrt().item()


def own_key_rms(base, tok, examples):
    """RMS of the keys the frozen model computes for real tokens (a reference for the prefix)."""
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in examples])
    with torch.no_grad():
        present = base(idx, attention_mask=mask)[2]
    keys = torch.stack([k for k, _ in present])  # (layers, B, heads, T, head size)
    return keys.transpose(2, 3)[:, mask].pow(2).mean().sqrt().item()


VARIANTS = {"direct": dict(mid=None), "MLP": dict(mid=MID),
            "MLP + LayerNorm": dict(mid=MID, layer_norm=True)}
FULL_VARIANTS = {**VARIANTS, "direct + LayerNorm": dict(mid=None, layer_norm=True),
                 "MLP, mid 64": dict(mid=64)}  # mid 64 = the paper's mid/d ratio at d = 128


def stability_grid(base, tok, variants, lrs, seeds, steps, n_train=256, n_test=50, length=LENGTH,
                   batch_size=8):
    """Train every (variant, lr, seed); return per-(variant, lr) rows, per-variant summary rows,
    and the loss curves of the first seed."""
    train_set = make_split(TASK, n_train, "train")
    test_set = make_split(TASK, n_test, "test")
    frozen = evaluate(base, tok, TASK, test_set)["exact"]
    print(f"the frozen model on {TASK} without an instruction: {frozen:.0f}% exact")
    rows, summary, curves, trained = [], [], {}, {}
    for name, kwargs in variants.items():
        runs = []
        curves[name] = {}
        setup(seeds[0])  # the untrained prefix: how much attention does it take at step 0?
        untrained = Tuned(base)
        untrained.add("task", Prefix(base, length, **kwargs))
        init_share = prefix_attention_share(base, tok, untrained, length, test_set)
        init_rms = rms(untrained.tasks["task"].values()[:, 0])
        for lr in lrs:
            exact, final, moved, key_rms = [], [], [], []
            for seed in seeds:
                setup(seed)  # the seed draws the prefix / MLP init and the batch order
                prefix = Prefix(base, length, **kwargs)
                start = prefix.values().detach().clone()
                tuned, result = tune(base, tok, prefix, train_set, steps, lr,
                                     batch_size=batch_size, seed=seed)
                exact.append(evaluate(tuned, tok, TASK, test_set)["exact"])
                final.append(statistics.mean(result["losses"][-10:]))
                moved.append(rms(prefix.values() - start))  # how far training moved P
                key_rms.append(rms(prefix.values()[:, 0]))
                if seed == seeds[0]:
                    curves[name][f"lr {lr:g}"] = result["losses"]
                    trained[name, f"{lr:g}"] = tuned
            runs += exact
            rows.append({"variant": name, "lr": f"{lr:g}", "exact mean": statistics.mean(exact),
                         "min": min(exact), "max": max(exact),
                         "final loss": statistics.mean(final),
                         "P moved": statistics.mean(moved), "key RMS": statistics.mean(key_rms)})
        by_lr = [r["exact mean"] for r in rows if r["variant"] == name]
        summary.append({"variant": name, "runs": len(runs), "exact mean": statistics.mean(runs),
                        "min": min(runs), "max": max(runs),
                        "best lr": rows[-len(lrs) + by_lr.index(max(by_lr))]["lr"],
                        "best lr mean": max(by_lr), "runs >= 50%": sum(e >= 50 for e in runs),
                        "init attn %": init_share, "init key RMS": init_rms})
    table(rows, f"{TASK} without instruction, exact match % on {n_test} test inputs "
          f"(P = {length}, {steps} steps, {len(seeds)} seed(s) per cell; 'P moved' = RMS of the "
          f"change of the prefix during training, 'key RMS' = RMS of the trained prefix keys)")
    print(f"(the frozen model's own keys have RMS {own_key_rms(base, tok, test_set):.2f})")
    table(summary, "per variant, all learning rates and seeds together")
    return rows, summary, curves, frozen, trained


# %% [markdown]
# Reading the grid: a single number per method hides what matters, so the verdict compares each
# variant at *its own* best learning rate (mean and seed spread there) and says how far apart
# the best learning rates are.


# %%
def verdict(rows, summary):
    best = {}
    for s in summary:
        row = next(r for r in rows if r["variant"] == s["variant"] and r["lr"] == s["best lr"])
        best[s["variant"]] = row
        print(f"{s['variant']:>18} at its best lr {row['lr']:>6}: {row['exact mean']:5.1f}% "
              f"(seeds {row['min']:.0f}-{row['max']:.0f}); over the whole grid "
              f"{s['runs >= 50%']}/{s['runs']} runs reach 50%")
    d, m = best["direct"], best["MLP"]
    out = {"best_direct": d["exact mean"], "best_mlp": m["exact mean"],
           "best_lr_ratio": float(d["lr"]) / float(m["lr"]),
           "spread_direct": d["max"] - d["min"], "spread_mlp": m["max"] - m["min"]}
    print(f"paper: without the MLP 'unstable' with a slight drop. measured: MLP - direct at their "
          f"best lr = {m['exact mean'] - d['exact mean']:+.1f} points; seed spread "
          f"{out['spread_mlp']:.0f} (MLP) vs {out['spread_direct']:.0f} (direct); the direct "
          f"prefix's best lr is {out['best_lr_ratio']:g}x the MLP's")
    return out


# %% [markdown]
# ## Where the answer looks: prefix keys vs real keys
#
# The written-out attention keeps its weights, so we can read, layer by layer, how the query
# at "=>" (the position that chooses the first answer word) splits its attention between the P
# prefix keys and the input's own tokens. Head-mean weights for one test input, each trained
# variant at its best learning rate (first seed); a PNG heatmap when matplotlib is installed.


# %%
def answer_attention(base, tok, tuned, example):
    """(layers, P + T): head-mean attention of the last query ("=>") over [prefix; input]."""
    idx = torch.tensor([tok.encode(prompt_text(example))])
    with attention_weights_kept(base) as layers, torch.no_grad():
        tuned(idx)
        return torch.stack([a.weights[0, :, -1].mean(0) for a in layers])


def show_answer_attention(maps, words, length):
    """Text heatmap (one row per layer, ' ░▒▓█' by weight) and the prefix's share; a PNG too."""
    shades = " ░▒▓█"
    print(f"keys: {length} prefix keys | {' '.join(words)}")
    shares = {}
    for name, w in maps.items():
        shares[name] = [100 * row[:length].sum().item() for row in w]
        print(f"{name}:")
        for layer, row in enumerate(w.tolist()):
            # shade by the square root, so that weights of a few % still show
            strip = "".join(shades[min(4, int(5 * x ** 0.5))] for x in row)
            print(f"  layer {layer}  {strip[:length]}|{strip[length:]}  on the prefix "
                  f"{shares[name][layer]:5.1f}%")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return shares, None
    fig, axes = plt.subplots(len(maps), 1, figsize=(0.35 * (length + len(words)) + 2,
                                                    1.2 * len(maps) * len(w) ** 0.5 + 1))
    for ax, (name, w) in zip([axes] if len(maps) == 1 else axes, maps.items()):
        ax.imshow(w.numpy(), aspect="auto", cmap="viridis", vmin=0)
        ax.axvline(length - 0.5, color="white", linewidth=1)
        ax.set_xticks(range(length + len(words)), [f"p{i}" for i in range(length)] + words,
                      rotation=90, fontsize=7)
        ax.set(title=f'{name}: attention of "=>" per layer', ylabel="layer")
    fig.tight_layout()
    OUT.mkdir(exist_ok=True)
    path = OUT / "07_answer_attention.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"(plot saved to {path})")
    return shares, path


# %% [markdown]
# ## 3. The LayerNorm option at initialisation
#
# The source article suggests a LayerNorm on the attention output "when a prefix is present"
# (an option of the article, not of the paper). A fresh LayerNorm (gain 1, bias 0) is *not* the
# identity: it rescales every attention output to zero mean and unit variance. So before any
# training it already changes the frozen model. Measured below on a task the model does know —
# reverse with its pretrained instruction — with the LayerNorm hooks of a fresh
# `Prefix(layer_norm=True)` installed on the frozen model and no prefix at all.


# %%
def layer_norm_at_init(base, tok, n_test=50):
    test_set = make_split("reverse", n_test, "test")
    plain = evaluate(base, tok, "reverse", test_set, "reverse the list")["exact"]
    seen = []
    probe = base.transformer.h[0].attn.c_proj.register_forward_hook(
        lambda module, inputs, out: seen.append(rms(out)))
    with torch.no_grad():
        base(torch.tensor([tok.encode("reverse the list : red blue green =>")]))
    probe.remove()
    handles = [base.get_submodule(name).register_forward_hook(
        lambda module, inputs, out, fn=fn: fn(inputs[0], out))
        for name, fn in Prefix(base, 1, layer_norm=True).hooks()]
    try:
        normed = evaluate(base, tok, "reverse", test_set, "reverse the list")["exact"]
    finally:
        for h in handles:
            h.remove()
    print(f"frozen model, reverse with its pretrained instruction: {plain:.0f}% exact; with a "
          f"fresh LayerNorm on every attention output: {normed:.0f}%")
    print(f"(layer 0's attention output has RMS {seen[0]:.3f}; the LayerNorm makes it 1)")
    return {"reverse_exact_plain": plain, "reverse_exact_with_ln": normed,
            "attn_rms_layer0": seen[0]}


# %% [markdown]
# ## 4. Run everything


# %%
def main(fast=False, full=False):
    setup(0)
    with Stopwatch() as clock:
        base, tok = load_base("small")
        print("== 1. shapes and parameter counts ==")
        results = shapes(base, tok)
        rows, measured, sizes, base_total = count_rows(base)
        results.update(count_table=rows, measured_counts=measured, saved_bytes=sizes,
                       base_params=base_total, export_max_diff=export_check(base, tok))

        print("\n== 2. direct vs reparameterized: learning rates x seeds ==")
        if fast:
            grid = dict(variants=VARIANTS, lrs=(1e-3, 1e-1), seeds=(0,), steps=8, n_train=64,
                        n_test=10)
        elif full:
            grid = dict(variants=FULL_VARIANTS, lrs=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                        seeds=(0, 1, 2, 3, 4),
                        steps=200)
        else:
            grid = dict(variants=VARIANTS, lrs=(1e-3, 1e-2, 1e-1), seeds=(0, 1, 2), steps=70)
        grid_rows, summary, curves, frozen, trained = stability_grid(base, tok, **grid)
        results.update(grid=grid_rows, summary=summary, frozen_exact=frozen)
        for name, by_lr in curves.items():
            print(f"\ntraining loss, {name} (seed {grid['seeds'][0]}):")
            plot_curves(by_lr, f"07_loss_{name.replace(' ', '_').replace('+', 'plus')}")
        results.update(verdict(grid_rows, summary))

        print("\n== where the answer looks: prefix keys vs real keys ==")
        example = make_split(TASK, 1, "test")[0]
        words = tok.decode(tok.encode(prompt_text(example))).split()
        maps = {f"{s['variant']} (lr {s['best lr']})": answer_attention(
            base, tok, trained[s["variant"], s["best lr"]], example) for s in summary}
        shares, png = show_answer_attention(maps, words, LENGTH)
        results.update(answer_attention=maps, prefix_share_by_layer=shares, attention_png=png)

        print("\n== 3. the LayerNorm option at initialisation ==")
        results.update(layer_norm_at_init(base, tok, n_test=10 if fast else 50))
    print(f"\n{clock.seconds:.1f} s wall")
    return results


# %% [markdown]
# ## What it found (one run of each mode of this script; rerun to see your numbers)
#
# * Counts: a direct prefix of P = 10 on the course model is 10,240 numbers (1.2% of its
#   844,800); the mid-512 MLP that produces it is 592,640 — 70% of the model, because the MLP's
#   size is set by mid and the number of layers, not shrunk with d. For GPT-2 medium the same
#   formula gives 0.07% kept and 7.3% trained: the paper's "0.1%" and "~7%". The exported
#   adapter file (42 KB) holds only the prefix; the MLP's would be 2.4 MB.
# * Stability, default mode (70 steps, 3 seeds): each variant has a learning-rate window, and
#   the windows are ~100x apart: direct works only at 1e-1 (65%, seeds 54-74) and the MLP only
#   at 1e-3 (71%, seeds 36-92); outside its window each one fails completely — too slow (the
#   direct prefix barely moves) or too fast (the MLP's prefix keys blow up to RMS 6-75 against
#   the model's own 2.3). After only 70 steps the MLP is ~6 points better but not less
#   seed-sensitive.
# * `--full` (200 steps, 5 seeds, 5 learning rates, one run of ~13 minutes) shows the paper's
#   direction more clearly: at their best learning rates the MLP reached 99.2% (seeds 98-100)
#   and direct 92.0% (seeds 86-100) — a slight drop and a wider spread without the MLP, as
#   Li & Liang report. But "stable" depends on the learning rate: the mid-512 MLP failed
#   completely at every rate >= 1e-2 (0/15 runs), while direct worked from 1e-2 to 1e-1. A
#   smaller MLP (mid 64, the paper's mid/d ratio at d = 128) had the widest window (>= 88% from
#   1e-3 to 1e-2; 19/25 runs reached 50%, against 14/25 direct and 10/25 for mid 512). So the
#   reparameterization helps here, as a better-conditioned, faster-moving parameterization whose
#   learning rate must be chosen for its mid — consistent with P-tuning v2's finding that its
#   usefulness depends on the task (and, here, on the settings).
# * Where the answer looks (default mode, one test input): the trained prefixes take 70-86% of
#   the "=>" query's attention in layer 0 and 98-100% in layer 1, and ~1% in the top layer,
#   which reads the input words the answer copies (its first and last). With the LayerNorm
#   option the prefix keeps only layer 0 (69%; 0.6-11% above), the same damage seen below.
# * The LayerNorm option hurt wherever training worked (default: best 11% vs 71%; --full: 92.8%
#   vs 99.2% with the MLP, 46% vs 92% direct): section 3 shows why — a fresh LayerNorm on every
#   attention output turns the frozen model's 100% on reverse into 0% before any training, so
#   the prefix must first undo the damage.


# %%
if __name__ == "__main__":
    main(fast="--fast" in sys.argv, full="--full" in sys.argv)
