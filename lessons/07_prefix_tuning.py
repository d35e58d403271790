# %% [markdown]
# # 07 · Prefix tuning and its reparameterization
#
# Prefix tuning (Li & Liang 2021, arXiv 2101.00190, ACL version, §4) freezes the language model
# and learns, for every attention layer, P extra keys and values that sit in front of the
# layer's own: Attention(Q, [P_K; K], [P_V; V]) — a pre-filled key/value cache (lesson 03). The
# soft prompt of lessons 01 and 06 touches only the input embeddings; a prefix reaches every
# layer directly. The detail of the paper that matters for training (§4.3): the prefix is not
# optimised directly but computed as P = MLP(P′) from a smaller embedding P′; after training the
# MLP is thrown away and only P is kept.
#
# **What you will learn**
# 1. the shapes of a prefix in the course's base model, what trains (the MLP) and what is kept
#    (the prefix), counted by formula, by `count_parameters` and by the size of the saved file;
# 2. whether training P directly is worse or less stable than P = MLP(P′), as the paper says:
#    both on the same seeds, each at the learning rate the course's validation sweep chose for
#    it and at that rate's neighbours, every conclusion a paired verdict;
# 3. where the query that starts the answer looks: at the prefix or at the input, layer by
#    layer (a text heatmap);
# 4. why the source article's LayerNorm option is not free: it changes the frozen model before
#    any training.
#
# Run: `python lessons/07_prefix_tuning.py [--fast | --full]` (default: under a minute on a
# 2-core CPU; `--fast`: seconds, what the tests run; `--full`: 5 seeds and 100 test inputs).
# Papers: [REFERENCES.md](REFERENCES.md).

# %%
import json
import statistics
import tempfile

import torch

from common import (OUT, RESULTS, SEEDS, attention_weights_kept, chosen_lr, evaluate,
                    lesson_mode, load_base, plot_curves, seed_everything, setup, spread, table,
                    takeaway, tune, validation_loss, verdict)
from minitx.data import encode_prompts
from minitx.tuning import Prefix, Tuned, count_parameters
from toyworld import make_split, prompt_text

MODE = lesson_mode()
LR_RECORD = json.loads((RESULTS / "learning_rates.json").read_text())
SWEEP = LR_RECORD["budget"]  # the training budget the learning rates were chosen with
SETTINGS = {  # training examples per seed, steps, test inputs: default = the sweep's budget
    "fast": dict(n_train=32, steps=6, n_test=8),
    "default": dict(n_train=SWEEP["n_train"], steps=SWEEP["steps"], n_test=40),
    "full": dict(n_train=SWEEP["n_train"], steps=SWEEP["steps"], n_test=100),
}
S = SETTINGS[MODE]
BATCH = SWEEP["batch_size"]
SEED_LIST = SEEDS[MODE]
setup(0)
base, tok = load_base("small")
TASK = "first_last"  # never pretrained: the frozen model cannot do it without an instruction
LENGTH = 10  # prefix length P (the source article's; Li & Liang chose 5 for E2E, 10 for DART)
MID = 128  # the MLP's hidden width: the course's standard prefix_mlp (common.build_method)
print(f"mode {MODE}: seeds {list(SEED_LIST)}, {S['n_train']} training examples per seed, "
      f"{S['steps']} steps of {BATCH}, {S['n_test']} test inputs")

# %% [markdown]
# ## 1. Shapes
#
# `Prefix(model, length, mid=None)` holds the prefix as one parameter of shape
# (layers, K/V, P, d). `prefix()` hands the model, per layer, a key and a value of shape
# (1, heads, P, head size); the model's cache then holds P + T keys per layer.

# %%
c = base.config
demo = Prefix(base, LENGTH)
demo_tuned = Tuned(base)
demo_tuned.add("demo", demo)
demo_idx = torch.tensor([tok.encode("red blue green navy =>")] * 2)  # (B=2, T=5)
with torch.no_grad():
    present = demo_tuned(demo_idx)[2]
k0, v0 = demo.prefix()[0]
shapes = {"prefix_param": tuple(demo.kv.shape), "layer_key": tuple(k0.shape),
          "cache_key": tuple(present[0][0].shape)}
print(f"course model: {c.n_layer} layers, width d = {c.n_embd}, {c.n_head} heads of "
      f"{c.n_embd // c.n_head}; prefix length P = {LENGTH}")
print(f"  Prefix parameter (layers, K/V, P, d)    {list(demo.kv.shape)}")
print(f"  layer 0 prefix key P_K / value P_V      {list(k0.shape)} / {list(v0.shape)}"
      "  (1, heads, P, head size)")
print(f"  input ids                               {list(demo_idx.shape)}  (B, T)")
print(f"  layer 0 keys the queries see [P_K; K]   {list(present[0][0].shape)}"
      "  (B, heads, P + T, head size)")

# %% [markdown]
# ## 2. What trains and what is kept
#
# A direct prefix trains exactly what it keeps: 2 · L · P · d numbers (a key and a value of
# width d per position and layer). The reparameterized prefix trains P′ (P · d), then
# Linear(d, mid) and Linear(mid, 2 · L · d) with their biases — and keeps only the 2 · L · P · d
# numbers they produce (`export()`). The table computes both for the course model (at the
# course's mid and at the paper's 512), the source article's GPT-2 small, and the paper's E2E
# setting (GPT-2 medium, P = 5, mid 512); the base sizes come from the GPT-2 shape (tied
# embeddings), checked against `count_parameters` for the course model.

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


def saved_bytes(method, keep_mlp=False):
    """Bytes of the weights file Tuned.save writes for this method alone."""
    tuned = Tuned(base)
    tuned.add("task", method)
    with tempfile.TemporaryDirectory() as directory:
        return tuned.save("task", directory, keep_mlp=keep_mlp)


base_params = count_parameters(base)[1]
direct_demo, mlp_demo = Prefix(base, LENGTH), Prefix(base, LENGTH, mid=MID)
measured = {"direct": count_parameters(direct_demo)[0], "MLP": count_parameters(mlp_demo)[0],
            "exported": count_parameters(mlp_demo.export())[0]}
file_bytes = {"direct": saved_bytes(direct_demo), "MLP": saved_bytes(mlp_demo, keep_mlp=True),
              "exported": saved_bytes(mlp_demo)}
configs = [  # name, layers, width, vocab, context, P, mid
    ("course model, mid 128", c.n_layer, c.n_embd, c.vocab_size, c.block_size, LENGTH, MID),
    ("course model, mid 512", c.n_layer, c.n_embd, c.vocab_size, c.block_size, LENGTH, 512),
    ("article: GPT-2 small", 12, 768, 50257, 1024, 10, 512),
    ("paper E2E: GPT-2 medium", 24, 1024, 50257, 1024, 5, 512)]
count_rows = []
for name, L, d, vocab, block, P, m in configs:
    kept, trained = prefix_param_counts(L, d, P, m)
    total = gpt2_param_count(L, d, vocab, block)
    count_rows.append({"model": name, "L": L, "d": d, "P": P, "mid": m, "base": total,
                       "kept": kept, "trained": trained, "kept %": 100 * kept / total,
                       "trained %": 100 * trained / total})
table(count_rows, "a prefix on every layer: parameters by formula", floatfmt="{:.3f}",
      notes={"L, d, P, mid": "layers, width, prefix length, the MLP's hidden width",
             "base": "parameters of the frozen model",
             "kept": "the prefix itself, 2·L·P·d: what export() keeps and a file stores",
             "trained": "P′ + the MLP: what the optimizer updates with the reparameterization",
             "kept %, trained %": "against the frozen model"})
print(f"\ncourse model, measured: count_parameters(base) = {base_params:,} (formula "
      f"{count_rows[0]['base']:,})")
print(f"  trainable: direct prefix {measured['direct']:,}, MLP prefix {measured['MLP']:,}, "
      f"MLP prefix after export() {measured['exported']:,}")
print(f"  Tuned.save file: direct {file_bytes['direct']:,} B, MLP kept (keep_mlp=True) "
      f"{file_bytes['MLP']:,} B, exported {file_bytes['exported']:,} B")

# %% [markdown]
# **What the output means.** The MLP is what you *train*; the prefix is what you *keep*. Li &
# Liang's "0.1% of the parameters" is the kept column of the E2E row; the trained column is
# the MLP's cost while training (REFERENCES.md quotes both). The MLP's size is set by mid and
# the number of layers, not shrunk with the width, so at the course model's small width the
# same mid = 512 is a far larger share of the model. `Tuned.save` exports a reparameterized
# prefix by default: the file holds only the kept numbers (4 bytes each plus a small header).
#
# `export()` runs the MLP once and stores its output as a plain prefix. The outputs must not
# change:

# %%
seed_everything(0)
export_tuned = Tuned(base)
mlp_prefix = export_tuned.add("mlp", Prefix(base, LENGTH, mid=MID))
export_tuned.add("exported", mlp_prefix.export())
export_idx = torch.tensor([tok.encode("red blue green navy =>"),
                           tok.encode("lamp mug chair hat =>")])  # (B=2, T=5)
with torch.no_grad():
    export_diff = (export_tuned(export_idx, task="mlp")[0]
                   - export_tuned(export_idx, task="exported")[0]).abs().max().item()
print(f"logits with the MLP vs with the exported prefix: max |diff| = {export_diff:.1e}")

# %% [markdown]
# ## 3. Direct P or P = MLP(P′)?
#
# Li & Liang (§4.3): directly updating the prefix parameters "leads to unstable optimization
# and a slight drop in performance", so they train P = MLP(P′). P-tuning v2 (Liu et al., arXiv
# 2110.07602) keeps the prefix direct by default and reports that the reparameterization's use
# depends on the task. Two claims to test, then: the MLP scores higher, and the direct prefix is
# more sensitive to its learning rate.
#
# The test: first_last without an instruction ("chair 4 can paint phone knife =>" gives
# "knife chair"), a skill the frozen model never learned. Each seed draws its own training
# sample, the initialisation and the batch order; the two variants of one seed share the sample
# and the batch order, so their scores are *paired*. AdamW with warmup, cosine decay and
# clipping (minitx's `train` through `common.tune`). The default mode trains with exactly the
# budget (examples, steps, batch size) the learning rates were chosen with.
#
# Learning rates: AdamW moves every parameter by roughly `lr` per step, whatever its gradient's
# size. A direct prefix entry therefore moves by about `lr` per step; through the MLP each
# prefix entry is a sum over `mid` hidden units, each of whose weights moves by about `lr`, so
# the same `lr` moves the prefix much faster. The two variants cannot share a rate. Each trains
# at the rate lessons/choose_lrs.py chose for it on the *validation* split
# (`chosen_lr(task, "prefix")` and `chosen_lr(task, "prefix_mlp")`) and at that rate's
# neighbours on the 1-3-10 scale of the course's grids (`common.LR_GRID`): the spread over those
# three rates is the "stability" the paper speaks of. The test split only scores.

# %%
def rms(t):
    return t.detach().pow(2).mean().sqrt().item()


def answer_query_share(tuned, examples):
    """The share (%) of attention that the query at "=>" (where the answer starts) gives to the
    prefix keys, averaged over heads, layers and examples (the written-out attention path keeps
    its weights for us to read)."""
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in examples])
    with attention_weights_kept(base) as layers, torch.no_grad():
        tuned(idx, attention_mask=mask)
        return 100 * statistics.fmean(a.weights[:, :, -1, :LENGTH].sum(-1).mean().item()
                                      for a in layers)


VARIANTS = {"direct": dict(mid=None), "MLP": dict(mid=MID)}  # Prefix(base, LENGTH, **kwargs)
METHOD = {"direct": "prefix", "MLP": "prefix_mlp"}  # their names in learning_rates.json
LR = {name: chosen_lr(TASK, METHOD[name]) for name in VARIANTS}
test_set = make_split(TASK, S["n_test"], "test")
runs = {}  # (variant, lr, seed) -> scores, how the prefix moved, its losses, the tuned model


def train_prefix(variant, lr, seed, **kwargs):
    """One prefix trained on this seed's sample; cached in `runs`."""
    key = (variant, lr, seed)
    if key not in runs:
        seed_everything(seed)  # the seed draws the prefix (or P′ and the MLP) ...
        prefix = Prefix(base, LENGTH, **kwargs)
        start = prefix.values().detach().clone()
        train_set = make_split(TASK, S["n_train"], "train", seed=seed)  # ... the sample ...
        tuned, result = tune(base, tok, prefix, train_set, S["steps"], lr, batch_size=BATCH,
                             seed=seed, task=TASK)  # ... and the batch order
        runs[key] = {**evaluate(tuned, tok, TASK, test_set),
                     "nll": 100 * validation_loss(tuned, tok, test_set),
                     "moved": rms(prefix.values() - start), "key rms": rms(prefix.values()[:, 0]),
                     "losses": result["losses"], "tuned": tuned}
    return runs[key]


RATES = [float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 3)]  # 1e-6, 3e-6, ... 1, 3


def neighbours(lr):
    """The chosen rate and the rates next to it on the grids' 1-3-10 scale (common.LR_GRID
    uses the same scale; at a grid's edge this steps one past it)."""
    i = RATES.index(lr)
    return RATES[i - 1:i + 2]


LRS = {name: neighbours(LR[name]) for name in VARIANTS}
test_idx, test_mask = encode_prompts(tok, [prompt_text(e) for e in test_set])
with torch.no_grad():
    own_keys = torch.stack([k for k, _ in base(test_idx, attention_mask=test_mask)[2]])
own_rms = rms(own_keys.transpose(2, 3)[:, test_mask])  # (layers, real tokens, heads, head size)
frozen_exact = evaluate(base, tok, TASK, test_set)["exact"]
print(f"the frozen model on {TASK} without an instruction: {frozen_exact:.1f}% exact")
print(f"rates chosen by lessons/choose_lrs.py ({LR_RECORD['date']}) on the validation split: "
      f"seed {LR_RECORD['seed']},")
print(f"  {SWEEP['n_train']} examples, {SWEEP['steps']} steps of {SWEEP['batch_size']}; the "
      f"lowest validation loss wins")
for name in VARIANTS:
    print(f"  {name} prefix: lr {LR[name]:g} chosen; trained at "
          + ", ".join(f"{x:g}" for x in LRS[name]))

init_rows = []
for name, kwargs in VARIANTS.items():
    seed_everything(SEED_LIST[0])
    untrained = Tuned(base)
    prefix = untrained.add(TASK, Prefix(base, LENGTH, **kwargs))
    init_rows.append({"variant": name, "init attn %": answer_query_share(untrained, test_set),
                      "init key RMS": rms(prefix.values()[:, 0])})
table(init_rows, f"the untrained prefix (seed {SEED_LIST[0]})", floatfmt="{:.2f}",
      notes={"init attn %": '% of the "=>" query\'s attention on the prefix keys (mean of heads, '
                            "layers, inputs)",
             "init key RMS": f"RMS of the prefix keys (the frozen model's own keys: "
                             f"{own_rms:.2f})"})

# %% [markdown]
# **What the output means.** "init attn %" is how much of its attention the query at "=>" — the
# position that picks the first answer word — already spends on the *untrained* prefix: the
# input is heard only through what is left. "init key RMS" is the size of the prefix keys next
# to the frozen model's own: a direct prefix starts at N(0, 1), so its keys have RMS about 1;
# the MLP's output starts smaller (PyTorch's default Linear initialisation through tanh). A key
# near 0 scores near 0 against every query, which is an even share, not no share.
#
# Now the training runs: every variant, rate and seed.

# %%
for name, kwargs in VARIANTS.items():
    for lr in LRS[name]:
        for seed in SEED_LIST:
            train_prefix(name, lr, seed, **kwargs)


def per_seed(variant, lr, key="exact"):
    return [runs[variant, lr, seed][key] for seed in SEED_LIST]


score_rows, move_rows = [], []
for name in VARIANTS:
    for lr in LRS[name]:
        chosen = "*" if lr == LR[name] else ""
        score_rows.append({"variant": name, "lr": f"{lr:g}{chosen}",
                           "exact %": spread(per_seed(name, lr)),
                           "ROUGE-L": statistics.fmean(per_seed(name, lr, "rouge_l")),
                           "NLL x100": statistics.fmean(per_seed(name, lr, "nll"))})
        move_rows.append({"variant": name, "lr": f"{lr:g}{chosen}",
                          "P moved": statistics.fmean(per_seed(name, lr, "moved")),
                          "key RMS": statistics.fmean(per_seed(name, lr, "key rms"))})
table(score_rows, f"{TASK}, no instruction: {S['n_test']} test inputs, mean over "
      f"{len(SEED_LIST)} seeds", notes={
          "lr": "learning rate; * = the one chosen on validation data",
          "exact %": "exact match: mean (lowest-highest seed)",
          "ROUGE-L": "longest common subsequence F-measure, % (partial credit)",
          "NLL x100": "mean -log p of each answer token on the test inputs (lower is better)"})
table(move_rows, "what training did to the prefix (mean over seeds)", floatfmt="{:.2f}",
      notes={"P moved": "RMS of (trained prefix - initial prefix)",
             "key RMS": f"RMS of the trained prefix keys (own keys: {own_rms:.2f})"})
for name in VARIANTS:
    print(f"\ntraining loss, {name} prefix (seed {SEED_LIST[0]}):")
    every = -(-S["steps"] // 40)  # at most 40 points: one text line each
    plot_curves({f"lr {lr:g}": runs[name, lr, SEED_LIST[0]]["losses"][::every]
                 for lr in LRS[name]},
                f"07_loss_{name.lower()}", title=f"{TASK}, {name} prefix (P = {LENGTH}): "
                f"training loss by learning rate, seed {SEED_LIST[0]}",
                xlabel="step" if every == 1 else f"step / {every}")

# %% [markdown]
# **Reading the verdicts.** Each verdict takes, per seed, the first arm's number minus the
# second's, and says "holds" only when every seed agrees, "reversed" when every seed disagrees
# (see `common.verdict`). Three claims: the MLP scores higher at the chosen rates (exact match,
# then the finer NLL); it scores higher even at the worst of its three rates; and — the
# paper's "unstable" — the direct prefix swings more over its three rates (per seed: its best
# minus its worst exact match over the rates, against the MLP's).

# %%
def negated(values):
    return [-v for v in values]


def swing(variant):
    """Per seed: best minus worst exact match over the variant's three learning rates."""
    return [max(runs[variant, lr, seed]["exact"] for lr in LRS[variant])
            - min(runs[variant, lr, seed]["exact"] for lr in LRS[variant]) for seed in SEED_LIST]


print("\nverdicts, paired by seed; A-B: per seed, the first arm's number minus the second's")
print("at the chosen rates (exact %, then minus the NLL x100, so higher is better):")
verdicts = {
    "exact": verdict("MLP > direct (exact)", per_seed("MLP", LR["MLP"]),
                     per_seed("direct", LR["direct"])),
    "nll": verdict("MLP > direct (-NLL)", negated(per_seed("MLP", LR["MLP"], "nll")),
                   negated(per_seed("direct", LR["direct"], "nll"))),
}
print("each at its worst of its 3 rates (exact %):")
verdicts["worst"] = verdict(
    "MLP > direct (worst lr)",
    [min(runs["MLP", lr, s]["exact"] for lr in LRS["MLP"]) for s in SEED_LIST],
    [min(runs["direct", lr, s]["exact"] for lr in LRS["direct"]) for s in SEED_LIST])
print("swing = best minus worst exact % over the 3 rates (the paper's 'unstable'):")
verdicts["swing"] = verdict("direct swings more", swing("direct"), swing("MLP"))

# %% [markdown]
# ## 4. Where the answer looks: prefix keys or real keys
#
# The written-out attention keeps its weights, so we can read, layer by layer, how the query at
# "=>" splits its attention between the P prefix keys and the input's own tokens. Head-mean
# weights for one test input, each variant at its chosen rate (first seed). One row per key,
# one column per layer; the number is the weight in %, the shade repeats it at a glance.

# %%
SHADES = ((50, "█"), (25, "▓"), (10, "▒"), (2, "░"), (0, " "))  # (lowest %, shade)


def shade(percent):
    return next(s for low, s in SHADES if percent >= low)


def answer_attention(tuned, example):
    """(layers, P + T): head-mean attention of the last query ("=>") over [prefix; input]."""
    idx = torch.tensor([tok.encode(prompt_text(example))])
    with attention_weights_kept(base) as layers, torch.no_grad():
        tuned(idx)
        return torch.stack([a.weights[0, :, -1].mean(0) for a in layers])


example = test_set[0]
key_labels = [f"p{i}" for i in range(LENGTH)] + tok.decode(tok.encode(prompt_text(example))).split()
maps = {name: answer_attention(runs[name, LR[name], SEED_LIST[0]]["tuned"], example)
        for name in VARIANTS}
prefix_share = {name: (100 * w[:, :LENGTH].sum(-1)).tolist() for name, w in maps.items()}
label_width = max(len(label) for label in key_labels + ["prefix sum"])
n_layer = c.n_layer
print(f'input: "{prompt_text(example)}" -> "{example.target}"')
group = 6 * n_layer - 1  # n_layer cells of 5 characters, one space apart
print(" ".join([" " * label_width] + [f"{name} (lr {LR[name]:g})".ljust(group) for name in maps]))
print(" ".join([" " * label_width] + [" ".join(f"{f'L{l}':>4} " for l in range(n_layer))
                                     for _ in maps]).rstrip())
for j, label in enumerate(key_labels + ["prefix sum"]):
    cells = []
    for name, w in maps.items():
        values = prefix_share[name] if j == len(key_labels) else (100 * w[:, j]).tolist()
        cells.append(" ".join(f"{v:4.0f}{shade(v)}" for v in values))
    print(" ".join([label.ljust(label_width)] + cells))
    if j == LENGTH - 1 or j == len(key_labels) - 1:
        print(" ".join(["-" * label_width] + ["-" * group] * len(maps)))
print("numbers: weight in % of the \"=>\" query's attention (mean over heads)")
print("shade:   " + ", ".join(f"'{s}' >= {low}%" for low, s in SHADES[:-1]) + ", ' ' below "
      f"{SHADES[-2][0]}%")


def save_attention_png(maps, labels, path):
    """One heatmap per variant (rows: layers, columns: keys), one colorbar; None without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(len(maps), 1, figsize=(0.35 * len(labels) + 2, 2.2 * len(maps)),
                             squeeze=False, layout="constrained")
    for ax, (name, w) in zip(axes[:, 0], maps.items()):
        image = ax.imshow(100 * w.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.axvline(LENGTH - 0.5, color="white", linewidth=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(w.shape[0]), [f"L{l}" for l in range(w.shape[0])], fontsize=7)
        ax.set_title(f'{TASK}, {name} prefix (lr {LR[name]:g}): attention of "=>" per layer',
                     fontsize=8)
    fig.colorbar(image, ax=list(axes[:, 0]), label="attention weight, % (mean over heads)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


png = save_attention_png(maps, key_labels, OUT / "07_answer_attention.png")
print(f"(heatmap saved to {png})" if png else "(matplotlib not installed: text heatmap only)")

# %% [markdown]
# **What the output means.** The rows above the first rule are the prefix keys, the rows below
# it the input's own tokens, and "prefix sum" totals the prefix. A layer whose prefix sum is
# near 100% hears almost nothing of the input at "=>": its prefix *writes* into the answer
# position. A layer whose weight sits on input words *reads* them — first_last must read the
# last and the first word. Compare the two variants' columns layer by layer; the PNG shows the
# same numbers when matplotlib is installed.
#
# ## 5. The source article's LayerNorm option
#
# The source article suggests a LayerNorm on the attention output "when a prefix is present"
# (the article's option, not the paper's; `Prefix(layer_norm=True)`). A fresh LayerNorm (gain
# 1, bias 0) is *not* the identity: it rescales every attention output to zero mean and unit
# variance. So before any training it already changes the frozen model. Measured on a task the
# model does know — reverse with its pretrained instruction — with the LayerNorm hooks of a
# fresh `Prefix(layer_norm=True)` installed on the frozen model and no prefix at all.

# %%
reverse_test = make_split("reverse", S["n_test"], "test")
instruction = "reverse the list"
ln_plain = evaluate(base, tok, "reverse", reverse_test, instruction)["exact"]
seen = []
probe = base.transformer.h[0].attn.c_proj.register_forward_hook(
    lambda module, inputs, out: seen.append(rms(out)))
with torch.no_grad():
    base(torch.tensor([tok.encode(f"{instruction} : red blue green =>")]))
probe.remove()
attn_rms = seen[0]
handles = [base.get_submodule(name).register_forward_hook(
    lambda module, inputs, out, fn=fn: fn(inputs[0], out))
    for name, fn in Prefix(base, 1, layer_norm=True).hooks()]
try:
    ln_normed = evaluate(base, tok, "reverse", reverse_test, instruction)["exact"]
finally:
    for handle in handles:
        handle.remove()
print(f"frozen model, reverse with its pretrained instruction: {ln_plain:.1f}% exact")
print(f"the same with a fresh LayerNorm on every attention output: {ln_normed:.1f}% exact")
print(f"(layer 0's attention output has RMS {attn_rms:.3f}; the LayerNorm makes it 1)")

# %% [markdown]
# Does training repair it? The MLP prefix with the LayerNorm option, at the MLP's chosen rate,
# on the same seeds as before (the LayerNorm's gain and bias train along; its rate was chosen
# for the MLP without it).

# %%
for seed in SEED_LIST:
    train_prefix("MLP + LayerNorm", LR["MLP"], seed, mid=MID, layer_norm=True)
print(f"MLP + LayerNorm at lr {LR['MLP']:g}: exact % "
      f"{spread(per_seed('MLP + LayerNorm', LR['MLP']))} (mean, lowest-highest seed)")
verdicts["layer_norm"] = verdict("MLP > MLP + LN (exact)", per_seed("MLP", LR["MLP"]),
                                 per_seed("MLP + LayerNorm", LR["MLP"]))

# %%
def said(v):
    return f"{v.claim}: {v.word} (A-B {v.mean:+.1f})"


E2E = count_rows[-1]
takeaway(
    f"the P = {LENGTH} prefix keeps {measured['direct']:,} numbers; its mid-{MID} MLP trains "
    f"{measured['MLP']:,}",
    f"the paper's E2E setting, by formula: kept {E2E['kept %']:.2f}%, trained "
    f"{E2E['trained %']:.1f}% of GPT-2 medium",
    f"export(): logits change by at most {export_diff:.1e}; file {file_bytes['MLP']:,} -> "
    f"{file_bytes['exported']:,} B",
    f"chosen rates: {said(verdicts['exact'])}",
    f"chosen rates: {said(verdicts['nll'])}",
    f"each at its worst rate: {said(verdicts['worst'])}",
    f"over 3 rates: {said(verdicts['swing'])}",
    *(f'{name}: prefix share of the "=>" query by layer: '
      + " ".join(f"{v:.0f}%" for v in shares) for name, shares in prefix_share.items()),
    f"a fresh LayerNorm on every attention output: reverse {ln_plain:.0f}% -> {ln_normed:.0f}% "
    f"exact",
    f"trained: {said(verdicts['layer_norm'])}",
)

# %% [markdown]
# ## Exercises
#
# 1. **A zero value is not an absent key.** Set every prefix value P_V to 0 (keep the keys).
#    Is the prefix now invisible? *Observe:* no — the prefix keys still take a share s of each
#    query's attention, so the output becomes (1 − s) times the attention over the real keys
#    alone. *Hint:* check it on random tensors with `minitx.attention(q, [P_K; K], [0; V])`
#    against `attention(q, K, V)`, and compute s from the weights it returns.
# 2. **Why the rates differ.** Train the MLP prefix at its chosen rate and at ten times that
#    rate (one seed). *Observe:* "P moved" grows several-fold with the rate; compare the
#    trained "key rms" with the frozen model's own key RMS. *Hint:* `train_prefix("MLP", lr,
#    seed, mid=MID)` returns both; AdamW's step is about `lr` per weight.
# 3. **The paper's width.** Train `Prefix(base, LENGTH, mid=512)` at the MLP's chosen rate and
#    at a quarter of it. Which is better here, and why might a wider MLP want a smaller rate?
#    *Hint:* each prefix entry sums over mid hidden units (section 3's argument).
# 4. **Open: when is the direct prefix "unstable"?** Find a setting — steps, training sample,
#    the scale of the direct prefix's initialisation (it starts at N(0, 1); the model's own
#    keys have the RMS printed above), or a start from real words (`Prefix.init_from_tokens`,
#    lesson 08) — in which "direct swings more" holds on every seed, or argue from this
#    lesson's tables why the paper's claim depends on the setting.
