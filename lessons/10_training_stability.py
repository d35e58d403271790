# %% [markdown]
# # 10 · Training a prompt without it blowing up
#
# The source article ends with a stability recipe for prompt and prefix tuning: warm the
# learning rate up, clip the gradient norm, accumulate gradients when a batch does not fit,
# compute in bf16 but keep the prompt's parameters in fp32, stop on a non-finite loss, and
# checkpoint so a killed run resumes exactly. It also warns of two pitfalls: a prefix appended
# twice when gradient checkpointing recomputes a layer, and computing the reparameterized prefix
# per batch row instead of once. Every piece already lives in `minitx.train.train` and
# `minitx.tuning`; this lesson shows each one working on the course's frozen small base — and the
# two pitfalls failing, then fixed.
#
# **What you will learn**
# 1. what warmup and clipping change at a deliberately high learning rate, as a verdict over seeds;
# 2. why gradient accumulation equals one bigger batch — and when it does not;
# 3. bf16 autocast with fp32 prompt parameters, and which updates a bf16 prompt would lose;
# 4. the non-finite guard: the run stops, the last good checkpoint stays;
# 5. exact resume after a kill, bit for bit;
# 6. LoRA and a soft prompt on one frozen base;
# 7. the two pitfalls: a prefix under gradient checkpointing, and MLP-then-repeat vs
#    repeat-then-MLP at export.
#
# Run: `python lessons/10_training_stability.py [--fast | --full]` (default: under a minute on
# a laptop CPU; `--fast`: seconds, what the tests run; `--full`: five seeds, more steps). The
# papers are listed in [REFERENCES.md](REFERENCES.md).
#
# The task is **returns** (`lessons/toyworld.py`): "can i return the red boots i bought =>" must
# be answered "yes you can return the red boots within 30 days". The base was never pretrained on
# it. Every answer has the same number of tokens, which section 2 uses. Scores are the mean
# next-token loss on the answers of the *validation* split (`common.validation_loss`); learning
# rates are the ones `lessons/choose_lrs.py` chose on validation data (`common.chosen_lr`),
# except where a rate is deliberately extreme, which the text says each time.

# %%
import copy
import dataclasses
import math
import statistics
import tempfile
import textwrap
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import CheckpointError, checkpoint

from common import (SEEDS, build_method, chosen_lr, lesson_mode, load_base, plot_curves,
                    seed_everything, setup, table, takeaway, task_batches, validation_loss,
                    verdict)
from minitx import GPT
from minitx.train import NonFiniteLoss, TrainConfig, load_checkpoint, lr_at, train
from minitx.tuning import Method, Tuned, digest
from toyworld import make_split

MODE = lesson_mode()
# steps: each warmup/clipping run; short: each demonstration run; n_train, n_val: training and
# validation examples; every: steps between checkpoints
SETTINGS = {
    "fast": dict(steps=4, short=4, n_train=32, n_val=8, every=2),
    "default": dict(steps=20, short=12, n_train=128, n_val=32, every=4),
    "full": dict(steps=60, short=40, n_train=384, n_val=64, every=10),  # returns has 70 val inputs
}
S = SETTINGS[MODE]
TASK, BATCH = "returns", 16  # the batch size the learning rates were chosen at
LR = {m: chosen_lr(TASK, m) for m in ("prompt", "prefix_mlp", "lora")}
setup(0)
base, tok = load_base("small")
train_set = make_split(TASK, S["n_train"], "train", seed=1)  # as lessons/choose_lrs.py draws them
val_set = make_split(TASK, S["n_val"], "val")
get_batch = task_batches(tok, train_set, BATCH, seed=0)
scratch = tempfile.TemporaryDirectory()  # checkpoints of this run; removed at the end
SCRATCH = Path(scratch.name)
print(f"{MODE} mode: task {TASK}, {len(train_set)} training and {len(val_set)} validation "
      f"examples, seeds {SEEDS[MODE]}")
print("chosen learning rates: " + ", ".join(f"{m} {lr:g}" for m, lr in LR.items()))


def fresh(method, seed, model=None):
    """A Tuned on `model` (default: the frozen base) with a new `method` (common.build_method)
    under the task name "t", initialised from `seed`."""
    model = base if model is None else model
    seed_everything(seed)
    tuned = Tuned(model)
    tuned.add("t", build_method(method, model))
    return tuned


def fit(model, config, batches=get_batch, **kw):
    """train() without progress lines; returns its result."""
    return train(model, batches, config, log=lambda *a, **k: None, **kw)


def wrap(text):
    """Text wrapped at 96 characters, later lines indented (every printed line <= 100)."""
    return textwrap.fill(text, 96, subsequent_indent="    ")


# %% [markdown]
# ## 1. Warmup and clipping at a high learning rate
#
# `TrainConfig(warmup_steps=w)` raises the rate linearly over the first w steps (`lr_at`: step s
# gets lr·(s+1)/w), then decays it (cosine to a tenth by default). `grad_clip=c` rescales the
# gradient whenever its global norm exceeds c (`torch.nn.utils.clip_grad_norm_`). Why would the
# start matter so much? On its first step AdamW divides the gradient by its own magnitude
# (m̂/√v̂ = g/|g|), so *every* entry of the prompt moves by about the learning rate, whatever the
# loss. Without warmup that full step comes at once, while the prompt is still at its start
# (embeddings of sampled vocabulary words, `common.build_method`).
#
# The soft prompt is trained here at **30 times** the rate the validation sweep chose —
# deliberately too high — once with the recipe (warmup over a quarter of the steps, clipping at
# norm 1) and once with neither, on every seed of the mode. The first line prints how far the
# first step moves the prompt, relative to the prompt's own norm, under each arm.

# %%
HIGH_LR = 30 * LR["prompt"]  # deliberately too high
ARMS = {"warmup + clipping": dict(warmup_steps=S["steps"] // 4, grad_clip=1.0),
        "neither": dict(warmup_steps=0, grad_clip=0.0)}
recipe_configs = {arm: TrainConfig(steps=S["steps"], lr=HIGH_LR, weight_decay=0.0, log_every=0,
                                   **settings) for arm, settings in ARMS.items()}
start = fresh("prompt", 0).tasks["t"].embeddings
prompt_norm, n_entries = start.norm().item(), start.numel()
first_move = {arm: lr_at(0, c) * math.sqrt(n_entries) / prompt_norm
              for arm, c in recipe_configs.items()}
print(wrap(f"lr {HIGH_LR:g} (30 x the chosen {LR['prompt']:g}); the first AdamW step moves the "
           "prompt by about lr x sqrt(entries): " + ", ".join(
               f"{arm} {move:.1f} x its norm" for arm, move in first_move.items())))
schedule = recipe_configs["warmup + clipping"]
stride = max(1, S["steps"] // 8)
print(f"recipe's lr at steps 1, {1 + stride}, {1 + 2 * stride}, ...: "
      + " ".join(f"{lr_at(s, schedule):.2g}" for s in range(0, S["steps"], stride)))
stability = {arm: [] for arm in ARMS}  # validation loss per seed
curves = {arm: [] for arm in ARMS}  # training losses per seed
for seed in SEEDS[MODE]:
    for arm, c in recipe_configs.items():
        tuned = fresh("prompt", seed)
        result = fit(tuned, dataclasses.replace(c, seed=seed),
                     task_batches(tok, train_set, BATCH, seed=seed))
        stability[arm].append(validation_loss(tuned, tok, val_set))
        curves[arm].append(result["losses"])
table([{"seed": seed, **{arm: stability[arm][i] for arm in ARMS}}
       for i, seed in enumerate(SEEDS[MODE])], floatfmt="{:.3f}",
      title=f"validation loss after {S['steps']} steps at lr {HIGH_LR:g} (lower is better)")
v_recipe = verdict("warmup + clipping beats neither (validation loss)",
                   [-x for x in stability["warmup + clipping"]], [-x for x in stability["neither"]])
plot_curves({arm: [statistics.fmean(step) for step in zip(*runs)] for arm, runs in curves.items()},
            "10_warmup_clipping", title=f"{TASK}: soft prompt at lr {HIGH_LR:g}, mean over seeds")

# %% [markdown]
# **What the output means.** The first line is arithmetic, not a measurement: with warmup the
# first step is a fraction of the full one. The table gives each seed's validation loss and the
# verdict compares the two arms seed by seed: "holds" only if the recipe was better on every
# seed. The sparklines are the training loss averaged over seeds. Which half of the recipe does
# the work, and whether either matters at the chosen rate, is exercise 2.
#
# ## 2. Gradient accumulation is a bigger batch — when the micro-batches hold as many targets
#
# `TrainConfig(accum=k)` calls `get_batch(step, micro)` k times per step, backpropagates each
# micro-batch's mean loss divided by k, and steps once: the gradients add up to the mean of the
# k micro-batch means. The big batch's loss is the mean over *all* its target tokens. The two are
# the same number when every micro-batch holds as many target tokens — true for **returns**,
# whose answers all have the same length, and not for **data_to_text**, whose sentences vary.
# First one batch's gradient both ways, for both tasks; then two training runs of `train()`:
# one batch of 16 per step, and four micro-batches of 4 rows per step (the same 16 rows).

# %%
def prompt_gradient(tuned, batch, micro_batches):
    """The prompt's gradient on `batch`, whole (1) or as `micro_batches` slices of its rows,
    each slice's mean loss divided by their number, as train(accum=...) does."""
    tuned.zero_grad()
    n = batch["idx"].size(0) // micro_batches
    for i in range(micro_batches):
        part = {k: v[i * n:(i + 1) * n] for k, v in batch.items() if torch.is_tensor(v)}
        (tuned(**part)[1] / micro_batches).backward()
    return tuned.tasks["t"].embeddings.grad.clone()


MICRO = 4  # micro-batches per step
gradient_rows = []
for task in (TASK, "data_to_text"):
    batch = task_batches(tok, make_split(task, BATCH, "train", seed=1), BATCH, seed=0)(0)
    tuned = fresh("prompt", 0)
    whole, pieces = prompt_gradient(tuned, batch, 1), prompt_gradient(tuned, batch, MICRO)
    tokens = (batch["targets"] != -1).view(MICRO, -1).sum(1).tolist()
    gradient_rows.append({"task": task, "target tokens per micro-batch": " ".join(map(str, tokens)),
                          "max |Δ grad| / max |grad|": ((pieces - whole).abs().max()
                                                         / whole.abs().max()).item()})
table(gradient_rows, floatfmt="{:.1e}", title=f"one batch of {BATCH}: whole vs {MICRO} "
      f"micro-batches (the prompt's gradient)")
accum_gradient_gap = {r["task"]: r["max |Δ grad| / max |grad|"] for r in gradient_rows}


def micro_batches(step, micro):
    """Rows [4·micro, 4·micro + 4) of step `step`'s batch of 16: the same data as one batch."""
    batch = get_batch(step)
    n = BATCH // MICRO
    return {k: v[micro * n:(micro + 1) * n] if torch.is_tensor(v) else v for k, v in batch.items()}


demo = TrainConfig(steps=S["short"], lr=LR["prompt"], warmup_steps=S["short"] // 4,
                   weight_decay=0.0, log_every=0)
big, accumulated = fresh("prompt", 0), fresh("prompt", 0)
big_losses = fit(big, demo)["losses"]
accum_losses = fit(accumulated, dataclasses.replace(demo, accum=MICRO), micro_batches)["losses"]
accum_loss_gap = max(abs(a - b) for a, b in zip(big_losses, accum_losses))
accum_prompt_gap = (big.tasks["t"].embeddings
                    - accumulated.tasks["t"].embeddings).abs().max().item()
print(f"\n{S['short']} steps on {TASK}, batch {BATCH} vs accum={MICRO} x {BATCH // MICRO} rows:")
print(f"  largest loss difference over the steps {accum_loss_gap:.1e}")
print(f"  largest prompt entry difference at the end {accum_prompt_gap:.1e}")

# %% [markdown]
# **What the output means.** On **returns** the two gradients agree to float32 rounding (the
# sums are taken in another order); on **data_to_text** they differ by far more than rounding:
# there, a token in a short micro-batch weighs more than a token in a long one. The `train()`
# runs on **returns** stay equal to rounding step after step. The same rule holds across
# processes: under `torchrun`, `train()` averages the ranks' mean losses (see its docstring).
#
# ## 3. bf16 autocast with fp32 prompt parameters
#
# `TrainConfig(precision="bf16")` runs the forward pass under `torch.autocast`: matrix products
# in bfloat16, the parameters themselves untouched. `Tuned.add` stores a method in at least fp32,
# and the soft prompt is cast to the compute dtype where it is used. bf16 keeps 8 significant
# bits: near a value x its spacing is about x/128, so an update smaller than about x/256 rounds
# away — the prompt would stop learning where its entries are large and the rate small. Below:
# the same run in fp32 and in bf16 autocast, the parameter's dtype after it, and then, for the
# trained prompt, the share of entries whose next update of size lr would be lost if the prompt
# itself were stored in bf16 (AdamW's update is at most about lr per entry).

# %%
precision_runs = {}
for precision in ("fp32", "bf16"):
    tuned = fresh("prompt", 0)
    losses = fit(tuned, dataclasses.replace(demo, precision=precision))["losses"]
    precision_runs[precision] = dict(tuned=tuned, losses=losses,
                                     dtype=str(tuned.tasks["t"].embeddings.dtype),
                                     val=validation_loss(tuned, tok, val_set))
with torch.autocast("cpu", torch.bfloat16):
    sample = get_batch(0)
    logits_dtype = str(precision_runs["bf16"]["tuned"](**sample)[0].dtype)
table([{"precision": p, "prompt parameter dtype": r["dtype"], "first loss": r["losses"][0],
        "last loss": r["losses"][-1], "validation loss": r["val"]}
       for p, r in precision_runs.items()], floatfmt="{:.3f}",
      title=f"the same {S['short']} steps in fp32 and in bf16 autocast (seed 0)")
print(f"under bf16 autocast the logits are {logits_dtype}; the prompt parameter stays "
      f"{precision_runs['bf16']['dtype']}")
bf16_loss_gap = max(abs(a - b) for a, b in zip(precision_runs["fp32"]["losses"],
                                               precision_runs["bf16"]["losses"]))
print(f"largest loss difference between the two runs: {bf16_loss_gap:.3f}")

trained = precision_runs["fp32"]["tuned"].tasks["t"].embeddings.detach()
direction = prompt_gradient(precision_runs["fp32"]["tuned"], get_batch(0), 1).sign()
lost = {}
UPDATES = [LR["prompt"] / 10 ** k for k in range(4)]  # the chosen rate, then smaller
for lr in UPDATES:
    update = lr * direction  # AdamW's first step: about lr on every entry
    in_bf16 = trained.bfloat16()
    lost[lr] = {"fp32": ((trained - update) == trained).float().mean().item() * 100,
                "bf16": ((in_bf16.float() - update).bfloat16() == in_bf16).float().mean().item()
                * 100}
table([{"update size (lr)": f"{lr:g}", "lost in fp32 %": v["fp32"], "lost in bf16 %": v["bf16"]}
       for lr, v in lost.items()], floatfmt="{:.1f}",
      title=f"one update of the trained prompt (median |entry| {trained.abs().median():.3f}): "
            "entries left unchanged",
      notes={"update size (lr)": f"the chosen rate {LR['prompt']:g}; its tenth is where the "
                                 "cosine schedule ends",
             "lost in fp32 % / bf16 %": "entries whose stored value does not change at all"})

# %% [markdown]
# **What the output means.** The first table puts the two runs' losses side by side; the prompt
# parameter is float32 after the bf16 run: only the computation was bf16. The second table is why
# that matters. Stored in fp32 (spacing about x/8,000,000) an update must be tiny to vanish;
# stored in bf16, the share of updates that vanish grows as the update shrinks — at the end of a
# cosine schedule, with a smaller rate, or on later steps (where AdamW's update is usually well
# below lr) a bf16 prompt silently stops moving in part. Exercise 4 measures what that costs.
#
# ## 4. The non-finite guard
#
# Before every update `train()` checks the loss and the gradient norm; when either is nan or
# infinite it raises `NonFiniteLoss` *before* the update and before any save, so the checkpoint
# on disk is the last good one. Here the soft prompt is trained at an **absurd** learning rate,
# 1e20 — deliberately, to make it blow up — with a checkpoint after every step. Then the same
# steps in a plain loop with no guard.

# %%
ABSURD_LR = 1e20  # deliberately absurd: the run must blow up
guard_path = SCRATCH / "guarded.pt"
guarded = fresh("prompt", 0)
guard_config = TrainConfig(steps=S["short"], lr=ABSURD_LR, weight_decay=0.0, log_every=0,
                           checkpoint=str(guard_path), checkpoint_every=1)
try:
    fit(guarded, guard_config)
    guard_message = None
except NonFiniteLoss as e:
    guard_message = str(e)
print(wrap(f"NonFiniteLoss: {guard_message}"))
saved = load_checkpoint(guard_path)
guard = {"stopped": guard_message is not None, "saved step": saved["step"],
         "saved finite": all(bool(t.isfinite().all()) for t in saved["model"].values()),
         "memory finite": all(bool(p.isfinite().all()) for p in guarded.parameters())}
print(f"checkpoint on disk: step {guard['saved step']}, every saved value finite: "
      f"{guard['saved finite']}; parameters in memory finite: {guard['memory finite']}")

unguarded = fresh("prompt", 0)
optimizer = torch.optim.AdamW(unguarded.tasks["t"].parameters(), lr=ABSURD_LR, weight_decay=0.0)
unguarded_losses = []
for step in range(3):
    loss = unguarded(**get_batch(step))[1]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    unguarded_losses.append(loss.item())
unguarded_nan = unguarded.tasks["t"].embeddings.isnan().float().mean().item() * 100
print("without the guard, losses " + ", ".join(f"{x:.3f}" for x in unguarded_losses)
      + f"; prompt entries now nan: {unguarded_nan:.0f}%")

# %% [markdown]
# **What the output means.** The guarded run stopped at the first non-finite value; the message
# names the step, the batch (`get_batch(step)`), the checkpoint it kept and the fix. The file
# holds the last step whose loss and gradient were finite. The plain loop kept going: AdamW
# applied a nan gradient and every entry of the prompt became nan — a checkpoint written then
# would have overwritten the good one.
#
# ## 5. Exact resume after a kill
#
# A checkpoint from `train()` holds the trainable parameters, AdamW's moments, the step, the
# losses so far and the random-number state; `get_batch(step)` is a function of the step. So a
# run resumed from a checkpoint computes exactly what the uninterrupted run computed. Below: one
# run straight through; one "killed" (an exception from `get_batch`, as if the process died
# before that step) and then resumed with `resume=True` in a fresh model built from another
# seed — the checkpoint, not the initialisation, decides.

# %%
class Killed(Exception):
    """Stands in for a kill: the process dies before a step runs."""


KILL_AT = S["short"] - 1  # 0-based step the process dies before


def killed_at(step):
    if step == KILL_AT:
        raise Killed(f"killed before step {step + 1}")
    return get_batch(step)


resume_config = dataclasses.replace(demo, checkpoint_every=S["every"])
straight = fresh("prompt", 0)
straight_losses = fit(straight, dataclasses.replace(
    resume_config, checkpoint=str(SCRATCH / "straight.pt")))["losses"]
crash_config = dataclasses.replace(resume_config, checkpoint=str(SCRATCH / "crashed.pt"))
try:
    fit(fresh("prompt", 0), crash_config, killed_at)
except Killed as e:
    print(f"first run: {e}")
resume_step = load_checkpoint(crash_config.checkpoint)["step"]
resumed = fresh("prompt", 7)  # another process: another initialisation, overwritten on resume
resumed_losses = fit(resumed, crash_config, resume=True)["losses"]
resume = {"saved step": resume_step, "steps redone": KILL_AT - resume_step,
          "same losses": resumed_losses == straight_losses,
          "same prompt": torch.equal(resumed.tasks["t"].embeddings, straight.tasks["t"].embeddings)}
print(f"checkpoint at step {resume_step}; resumed and finished steps {resume_step + 1}-"
      f"{S['short']} ({resume['steps redone']} of them done before the kill, redone)")
print(f"every loss bit-identical to the uninterrupted run: {resume['same losses']}; "
      f"prompt bit-identical: {resume['same prompt']}")
try:
    fit(fresh("prompt", 0), dataclasses.replace(crash_config, lr=2 * LR["prompt"]), resume=True)
    refusal = None
except ValueError as e:
    refusal = str(e)
print(wrap(f"resuming with another lr is refused: {refusal}"))

# %% [markdown]
# **What the output means.** The resumed run's losses (those before the checkpoint are read
# back from it) and its final prompt are *equal*, not close: `torch.equal`, bit for bit, on one
# thread. The steps between the last checkpoint and the kill were lost and computed again —
# choose `checkpoint_every` by how much recomputation you can afford. A checkpoint also records
# the schedule and a hash of the frozen weights, so resuming with another learning rate or base
# is refused with a message, not silently mixed.
#
# ## 6. LoRA and a soft prompt on one frozen base
#
# `Tuned` holds one method per task: a task is a soft prompt, or a prefix, or a LoRA — a second
# method under the same name is refused. Two ways to combine them with minitx as it is:
# * **in sequence**: train the LoRA, merge it into a *copy* of the base (`LoRA.merge` writes
#   W₀ + (α/r)·B·A into the weights, and refuses while other tasks share that base), then train a
#   soft prompt on the merged copy. Each part trains at its own chosen rate; the original base
#   is never written to.
# * **at inference, as one task**: a small `Method` whose `prompt()` is the soft prompt's and
#   whose `hooks()` are the LoRA's, added to a `Tuned` on the original base. It must give what
#   the merged copy gives, up to rounding (merged weights vs a hook's sum).
#
# Hu et al. adapt Wq and Wv; the course's LoRA adapts the fused `c_attn` (Q, K and V together),
# with Hu et al.'s r = 4 and α = 32 (see [REFERENCES.md](REFERENCES.md)).

# %%
class PromptAndLoRA(Method):
    """Two methods as one task: the soft prompt's virtual tokens in front of the input, and the
    LoRA's hooks on the frozen layers. Made as PromptAndLoRA(model) (Method's constructor checks
    the model); then set its parts `.soft_prompt` and `.lora`."""

    method = "prompt+lora"

    @property
    def n_tokens(self):  # Tuned counts a task's virtual tokens by this attribute
        return self.soft_prompt.n_tokens

    def prompt(self):
        return self.soft_prompt.prompt()

    def hooks(self):
        return self.lora.hooks()


base_digest = digest(base.state_dict().items())
lora_only = fresh("lora", 0)
try:
    lora_only.add("t", build_method("prompt", base))
except ValueError as e:
    print(wrap(f"a second method under the LoRA's task name: ValueError: {e}"))
fit(lora_only, dataclasses.replace(demo, lr=LR["lora"]))
lora = lora_only.tasks["t"]
merged_base = copy.deepcopy(base)
merging = Tuned(merged_base)
merging.add("lora", copy.deepcopy(lora)).merge(merging)
stacked = fresh("prompt", 0, merged_base)
fit(stacked, demo)
shared = Tuned(base)  # the original base, with a second task on it
shared.add("lora", lora)
shared.add("prompt", build_method("prompt", base))
try:
    lora.merge(shared)
except ValueError as e:  # refused before anything is written
    print(wrap(f"merging into a base that other tasks share: ValueError: {e}"))
both = PromptAndLoRA(base)
both.soft_prompt, both.lora = stacked.tasks["t"], lora  # the trained parts, shared, not copied
one_task = Tuned(base)
one_task.add("both", both)
sample = get_batch(0)
with torch.no_grad():
    composite_gap = (one_task(**sample)[0] - stacked(**sample)[0]).abs().max().item()
stages = {"frozen base": base, "LoRA": lora_only, "LoRA merged + soft prompt": stacked,
          "one task: PromptAndLoRA": one_task}
table([{"model": name, "validation loss": validation_loss(model, tok, val_set)}
       for name, model in stages.items()], floatfmt="{:.3f}",
      title=f"after {S['short']} LoRA steps (lr {LR['lora']:g}), then {S['short']} prompt steps "
            f"(lr {LR['prompt']:g}); seed 0")
lora_prompt = {"base unchanged": digest(base.state_dict().items()) == base_digest,
               "composite gap": composite_gap}
print(f"PromptAndLoRA on the original base vs the prompt on the merged copy: largest logit\n"
      f"  difference {composite_gap:.1e}")
print(f"the original base's weights unchanged (SHA-256): {lora_prompt['base unchanged']}")

# %% [markdown]
# **What the output means.** The table follows the stages of one seed; it is a record of this
# run, not a comparison of methods (that would need every seed, and equal training steps).
# The composite on the original base and the prompt on the merged copy should agree to float32
# rounding (the printed gap), and the hash shows whether the original base was touched. The two
# refusals are the library protecting the other tasks. What minitx lacks for doing this in one
# training run: `train()` has one learning rate for every parameter (the prompt's chosen rate and
# the LoRA's differ), and `Tuned.save`/`load` know only the four built-in methods, so the
# composite cannot be saved as one adapter (save the two parts, as here).
#
# ## 7. Pitfall 1: a prefix under gradient checkpointing, appended twice
#
# Gradient checkpointing (`Config(checkpoint=True)`, `model.run_block`) keeps no activations of a
# block: backward runs the block again from its inputs. That is only correct if the block is a
# pure function of its inputs. A common way to write prefix tuning breaks this: the prefix
# lives in a *cache object* (as a decoding cache does), and each layer appends its new keys to
# it. The forward pass leaves the cache holding prefix + keys; the recomputation then appends
# the keys **again** and attends to prefix + keys + keys. Below, that naive layer wrapper is
# written out and run three ways, against minitx, where the prefix is an *input* of each block
# (put in front once per call, never stored) — with and without checkpointing. The base is
# frozen, so, as PEFT's `enable_input_require_grads` does, the input embeddings are made to
# require a gradient (the reentrant checkpoint needs an input that does).

# %%
def naive_forward(prefix_kv, embeds, targets, recompute=None):
    """The wrong way: each layer's keys live in a cache that its wrapper extends. recompute:
    None (no checkpointing), "reentrant" or "non-reentrant" (torch.utils.checkpoint)."""
    tr, P = base.transformer, prefix_kv[0][0].size(2)
    caches = [{"kv": kv} for kv in prefix_kv]  # the prefix, put in the cache before the forward
    keys_seen = []

    def layer(block, x, cache):
        out, kv, _ = block(x, cache["kv"])
        cache["kv"] = kv  # the cache now holds prefix + this call's keys
        keys_seen.append(kv[0].size(2))
        return out

    x = embeds + tr.wpe.weight[P:P + embeds.size(1)]
    for block, cache in zip(tr.h, caches):
        x = layer(block, x, cache) if recompute is None else checkpoint(
            layer, block, x, cache, use_reentrant=recompute == "reentrant")
    logits = base.lm_head(tr.ln_f(x))
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1), keys_seen


checkpointed_base = GPT(dataclasses.replace(base.config, checkpoint=True))
checkpointed_base.load_state_dict(base.state_dict())
checkpointed_base.requires_grad_(False)
seed_everything(0)
prefix = build_method("prefix", base)
sample = get_batch(0)
idx, targets = sample["idx"], sample["targets"]  # without the mask: rows read their padding


def gradients(run):
    """(prefix gradient or None, input-embedding gradient, keys seen) of run(prefix, embeds)."""
    prefix.zero_grad()
    embeds = base.transformer.wte(idx).detach().requires_grad_(True)
    loss, keys_seen = run(prefix.prefix(), embeds)
    loss.backward()
    grad = prefix.kv.grad
    return None if grad is None else grad.clone(), embeds.grad, keys_seen


def minitx_run(model):
    """run(prefix, embeds) through a minitx GPT: the prefix is the `past` argument."""
    def run(kv, embeds):
        _, loss, present = model(inputs_embeds=embeds, targets=targets, past=kv)
        return loss, [k.size(2) for k, _ in present]
    return run


variants = {"naive, no checkpointing": lambda kv, e: naive_forward(kv, e, targets),
            "naive, reentrant checkpoint": lambda kv, e: naive_forward(kv, e, targets,
                                                                       "reentrant"),
            "naive, non-reentrant checkpoint": lambda kv, e: naive_forward(kv, e, targets,
                                                                           "non-reentrant"),
            "minitx, checkpoint=False": minitx_run(base),
            "minitx, checkpoint=True": minitx_run(checkpointed_base)}
reference = gradients(variants["minitx, checkpoint=False"])
pitfall_rows, checkpoint_gaps = [], {}
for name, run in variants.items():
    try:
        prefix_grad, embed_grad, keys_seen = gradients(run)
    except CheckpointError as e:
        checkpoint_refusal = f"{name}: {type(e).__name__}: {str(e).splitlines()[0]}"
        pitfall_rows.append({"variant": name, "keys per layer": "n/a", "prefix grad": "refused"})
        checkpoint_gaps[name] = None
        continue
    gap = None if prefix_grad is None else ((prefix_grad - reference[0]).abs().max()
                                            / reference[0].abs().max()).item()
    checkpoint_gaps[name] = dict(prefix=gap, embeds=((embed_grad - reference[1]).abs().max()
                                                     / reference[1].abs().max()).item())
    pitfall_rows.append({"variant": name,
                         "keys per layer": " ".join(map(str, keys_seen)) or "n/a",
                         "prefix grad": "none" if gap is None else f"{gap:.1e}",
                         "embedding grad": f"{checkpoint_gaps[name]['embeds']:.1e}"})
table(pitfall_rows, title=f"prefix of {prefix.length} keys, {idx.size(1)} tokens: gradients vs "
      "minitx without checkpointing",
      notes={"keys per layer": "keys each layer attended to, forward then recomputation",
             "prefix grad": "the prefix's gradient, max |Δ| / max |reference|; none: no "
                            "gradient; refused: error",
             "embedding grad": "the same for the input embeddings' gradient"})
print(wrap(checkpoint_refusal))

# %% [markdown]
# **What the output means.** Without checkpointing the naive wrapper computes what minitx
# computes. With the reentrant checkpoint its forward runs without autograd, so the cache it
# leaves is a constant: the recomputation attends to prefix + keys + keys, the gradient reaching
# the inputs is wrong, and the prefix receives **no gradient at all** — training would run,
# report losses, and never move the prefix. PyTorch's non-reentrant checkpoint notices that the
# recomputed tensors have other shapes and refuses (`CheckpointError`). minitx with
# `Config(checkpoint=True)` gives the gradients of minitx without it: `run_block` passes the
# prefix into each block as an argument, so a recomputation sees exactly what the forward saw.
#
# ## 8. Pitfall 2: MLP-then-repeat vs repeat-then-MLP, and export
#
# With the reparameterization (Li & Liang §4.3) the prefix is P = MLP(P′). A batch of B rows
# needs it in front of every row. `Prefix.values()` runs the MLP **once** on P′ and lets the
# batch broadcast it; an easy mistake is to repeat P′ per row first and run the MLP B times.
# In exact arithmetic the two are equal; in floating point the matrix products run on other
# shapes and the gradient sums in another order; with dropout inside the MLP each row would get
# its own noisy prefix during training while the exported prefix is one. After training only P
# is kept: `Prefix.export()` computes it once and returns a direct prefix, which must reproduce
# the trained module's outputs. (Tuned's mixed-task batches also compute each task's prefix
# once and gather it per row.)

# %%
mlp_tuned = fresh("prefix_mlp", 0)
fit(mlp_tuned, dataclasses.replace(demo, lr=LR["prefix_mlp"]))
reparam = mlp_tuned.tasks["t"]
B, n_layers = idx.size(0), len(reparam.layers)
mask = torch.cat([torch.ones(B, reparam.length, dtype=torch.bool), sample["attention_mask"]], 1)


def per_row(mlp):
    """The prefix values with P′ repeated per row first, then `mlp`: (B, layers, 2, P, C)."""
    out = mlp(reparam.embedding.weight.expand(B, -1, -1))  # (B, P, layers·2·C)
    return out.view(B, reparam.length, n_layers, 2, -1).permute(0, 2, 3, 1, 4)


order_gaps = {}
for name, values in (("MLP then repeat", lambda: reparam.values()[None]),  # broadcast over B
                     ("repeat then MLP", lambda: per_row(reparam.mlp))):
    reparam.zero_grad()
    kv = values()
    loss = base(idx, targets, past=reparam.prefix(kv), attention_mask=mask)[1]
    loss.backward()
    order_gaps[name] = (kv.detach(), reparam.mlp[2].weight.grad.clone())
once, rows = order_gaps["MLP then repeat"], order_gaps["repeat then MLP"]
with_dropout = nn.Sequential(reparam.mlp[0], reparam.mlp[1], nn.Dropout(0.1), reparam.mlp[2])
noisy = per_row(with_dropout).detach()  # training mode: a dropout mask per row
export_check = {"values gap": (rows[0] - once[0]).abs().max().item(),
                "gradient gap": ((rows[1] - once[1]).abs().max() / once[1].abs().max()).item(),
                "dropout rows gap": (noisy - noisy[:1]).abs().max().item()}
exported = Tuned(base)
exported.add("t", reparam.export())
with torch.no_grad():
    export_check["logits gap"] = (exported(**sample)[0] - mlp_tuned(**sample)[0]).abs().max().item()
export_check["parameters kept"] = sum(p.numel() for p in exported.tasks["t"].parameters())
export_check["parameters trained"] = sum(p.numel() for p in reparam.parameters())
print(f"B = {B} rows: repeat-then-MLP runs the MLP {B} times, MLP-then-repeat once")
print(f"  prefix values, largest difference: {export_check['values gap']:.1e}")
print(f"  gradient of the MLP's last weight, max |Δ| / max: {export_check['gradient gap']:.1e}")
print(f"  with dropout 0.1 after tanh, repeat-then-MLP rows differ by up to "
      f"{export_check['dropout rows gap']:.2f}")
print("  (MLP once: one prefix for every row)")
print(f"export: {export_check['parameters trained']:,} trained numbers -> "
      f"{export_check['parameters kept']:,} kept")
print(f"  largest logit difference, exported vs trained module: {export_check['logits gap']:.1e}")

# %% [markdown]
# **What the output means.** Without dropout the two orders give the same prefix to float32
# rounding (often exactly), the gradients differ only in rounding, and the per-row order pays B
# times the MLP's cost. With dropout in the MLP the rows of a batch train with different
# prefixes — one more reason to compute it once. The exported direct prefix reproduces the
# trained module's logits to rounding while keeping far fewer numbers.

# %%
scratch.cleanup()
reentrant = checkpoint_gaps["naive, reentrant checkpoint"]
takeaway(
    f"warmup + clipping vs neither at 30x lr: {v_recipe.word} (loss with - without "
    f"{-v_recipe.mean:+.3f})",
    f"accumulation vs one batch, gradient gap: {accum_gradient_gap[TASK]:.0e} on {TASK} "
    f"(equal targets), {accum_gradient_gap['data_to_text']:.0e} on data_to_text",
    f"bf16 autocast left the prompt {precision_runs['bf16']['dtype']}; a bf16 prompt loses "
    f"{lost[UPDATES[-1]]['bf16']:.0f}% of updates of {UPDATES[-1]:g}",
    f"lr {ABSURD_LR:g}: stopped {guard['stopped']}, checkpoint of step {guard['saved step']} "
    f"finite {guard['saved finite']}; unguarded: {unguarded_nan:.0f}% nan",
    f"resumed after a kill: losses bit-identical {resume['same losses']}, prompt "
    f"bit-identical {resume['same prompt']}",
    f"LoRA merged into a copy + soft prompt = one composite task to {composite_gap:.0e}; base "
    f"unchanged {lora_prompt['base unchanged']}",
    "prefix in a cache + reentrant checkpoint: prefix gradient "
    + ("none" if reentrant["prefix"] is None else f"off by {reentrant['prefix']:.0e}")
    + f"; minitx checkpoint=True: {checkpoint_gaps['minitx, checkpoint=True']['prefix']:.0e}",
    f"the exported prefix reproduces the trained module's logits to "
    f"{export_check['logits gap']:.0e}",
)

# %% [markdown]
# ## Exercises
#
# 1. **Eight micro-batches.** Set `MICRO = 8` (two rows each) and rerun section 2. What must the
#    gradient gap on returns be, and why does data_to_text's grow? Hint: count the target tokens
#    per micro-batch; `train()` weighs every micro-batch's mean equally.
# 2. **Which half of the recipe?** Add the arms `warmup only` and `clipping only` to `ARMS` and
#    give each a verdict against `neither`. Then rerun all arms at the chosen rate
#    (`LR["prompt"]`). Does any verdict still hold there? Hint: clipping changes what AdamW's
#    second moment sees on the first, largest gradients.
# 3. **Fix the naive wrapper.** Rewrite `naive_forward`'s `layer` so the recomputation is a pure
#    function: pass the prefix (k, v) in as an argument and return the new keys instead of
#    storing them. Both checkpoints must then match minitx's gradients to rounding, and the
#    prefix gradient must exist. Hint: that is what `model.run_block` does.
# 4. **A bf16 prompt, measured** (open). After `tuned.add`, call `tuned.tasks["t"].to(
#    torch.bfloat16)` and train at `LR["prompt"]` and at a tenth of it, fp32 against bf16
#    parameters on every seed, each with a verdict. At which rate does the bf16 prompt fall
#    behind, and does the table of lost updates predict it? Hint: a verdict that says "not
#    shown" is an answer too.
