# %% [markdown]
# # 04 · Pretraining the base model
#
# Prompt and prefix tuning do not teach a model from nothing: they steer a pretrained model whose
# weights stay frozen. So the course needs a pretrained base. Ours learns a toy world
# (`lessons/toyworld.py`): lines such as
#
#     reverse the list : navy white 2 shirt => shirt 2 white navy ;
#
# in which several skills (sentiment, data-to-text, reversing and copying word lists, routing a
# customer query) are asked for in words, each with four pretrained phrasings. Later lessons tune
# soft prompts and prefixes on this frozen model.
#
# **What you will learn**
# - how pretraining sees the corpus: rows packed from lines, the loss on the answers only;
# - to watch a base learn (a short run of the tiny model, on every seed of the mode);
# - which base models the course ships, and how later lessons load them (`common.load_base`);
# - what the committed small base can do when asked in words, on inputs it never saw.
#
# Run: `python lessons/04_pretrain_base.py [--fast | --full]` (after `pip install -e .`).
# The default run pretrains a tiny model briefly and measures the committed base; `--full`
# retrains the three committed checkpoints (tiny, small, medium) from scratch into
# `lessons/checkpoints/` (minutes; same seeds, so the same models up to floating-point rounding
# between machines and thread counts).

# %%
import math
import time

from common import (CHECKPOINTS, OUT, SEEDS, SIZES, evaluate, lesson_mode, load_base, plot_curves,
                    pretrain, pretraining_batches, save_base, setup, spread, table, takeaway,
                    verdict)
from toyworld import TASKS, course_tokenizer, make_split

MODE = lesson_mode()
SETTINGS = {  # demo_*: the short pretraining run; n_eval: test inputs per skill
    "fast": dict(demo_steps=15, demo_batch=16, demo_block=64, demo_lines=1000, n_eval=16),
    "default": dict(demo_steps=100, demo_batch=16, demo_block=64, demo_lines=3000, n_eval=64),
    "full": dict(demo_steps=300, demo_batch=32, demo_block=96, demo_lines=20_000, n_eval=200),
}
S = SETTINGS[MODE]
PRETRAIN_STEPS = {"tiny": 1500, "small": 1500, "medium": 1500}  # what --full runs per size
setup(0)
tok = course_tokenizer()

# %% [markdown]
# ## How pretraining sees the corpus
#
# The corpus lines are packed into rows of `block` tokens that start at a line start; the loss
# counts only the answers (the words after "=>", and the ";" that ends them): the model must
# learn to read an instruction and an input and write the answer. Because a row holds several
# lines, the model meets every task at many positions — as it will later behind a prefix of P
# keys, whose real tokens start at position P. Below, one row of a batch: the tokens the loss
# asks the model to predict are in [brackets].

# %%
batch = pretraining_batches(tok, S["demo_lines"], batch_size=S["demo_batch"],
                            block=S["demo_block"], seed=0)(0)  # minitx.data.packed_batches
print("one row of the first batch; [brackets]: the tokens the loss asks the model to predict")
row, targets = batch["idx"][0].tolist(), batch["targets"][0].tolist()
words = [tok.decode([row[0]])] + [f"[{tok.decode([t])}]" if target != -1 else tok.decode([t])
                                  for t, target in zip(row[1:], targets)]
line, lines = "", []
for word in words:  # wrap the row at 96 characters
    if len(line) + len(word) + 1 > 96:
        lines.append(line)
        line = ""
    line = f"{line} {word}".strip()
print("\n".join(lines + [line]))
loss_share = 100 * (batch["targets"] != -1).float().mean().item()
print(f"\nbatch {tuple(batch['idx'].shape)} = (rows, block); positions with a loss: "
      f"{loss_share:.1f}%")

# %% [markdown]
# **What the output means.** The row starts at a line start and is cut at `block` tokens, often
# mid-line. Only the answers are scored: the instruction and the input (a random word list, a
# random review) cannot be predicted, and their loss would drown the signal that matters
# (exercise 1 measures how much).
#
# ## Watching a base learn
#
# A short run of the tiny model (2 layers, width 64) on each seed of this mode: each seed draws
# its own initial weights, corpus and batches. The claim "pretraining lowers the answer loss" gets
# a verdict from the per-seed paired difference of the loss at the start and at the end.
# (Seed 0's model is saved to `lessons/out/`, never over the committed checkpoints;
# `minitx.data.load_model` reads it back with its tokenizer.)

# %%
demo = {}
for seed in SEEDS[MODE]:
    start = time.perf_counter()
    model, _, result = pretrain("tiny", S["demo_steps"], seed=seed, batch_size=S["demo_batch"],
                                block=S["demo_block"], n_lines=S["demo_lines"],
                                log=lambda *a, **k: None)
    losses = result["losses"]
    tail = losses[-max(1, len(losses) // 10):]  # the last 10% of steps
    demo[seed] = dict(losses=losses, start=losses[0], end=sum(tail) / len(tail),
                      seconds=time.perf_counter() - start)
    if seed == SEEDS[MODE][0]:
        OUT.mkdir(exist_ok=True)
        save_base(model, tok, OUT / "base_tiny_demo.pt")
plot_curves({f"tiny base, seed {s}": d["losses"] for s, d in demo.items()}, "04_pretraining_loss",
            title=f"pretraining the tiny base on the toy corpus: answer loss, {MODE} mode")
table([{"seed": s, "start loss": d["start"], "end loss": d["end"], "seconds": d["seconds"]}
       for s, d in demo.items()],
      title=f"tiny base, {S['demo_steps']} steps of {S['demo_batch']} rows x {S['demo_block']} "
            f"tokens", floatfmt="{:.2f}",
      notes={"start loss": "answer loss (cross-entropy, nats) of the first batch, untrained",
             "end loss": "mean answer loss over the last 10% of the steps",
             "seconds": "wall-clock time of this seed's run (noisy on a shared machine)"})
print(f"\nln(vocabulary size {tok.vocab_size}) = {math.log(tok.vocab_size):.2f}: the loss of a "
      f"uniform guess\n")
learning = verdict("pretraining lowers loss", [-d["end"] for d in demo.values()],
                   [-d["start"] for d in demo.values()])

# %% [markdown]
# **What the output means.** The untrained model starts near the loss of a uniform guess over the
# vocabulary (ln of the vocabulary size); the loss falls first as it learns the format — answers
# end with ";" and reuse the input's words — then, much more slowly, the skills themselves. A
# run this short teaches little more than the format; the committed bases trained far longer.
#
# ## The committed base models
#
# The course ships three bases in `lessons/checkpoints/` (fp16 weights, their configuration and
# the tokenizer, a few MB in all), so that lessons start instantly. Every later lesson loads one
# with `common.load_base(size)`, which reads the file with `minitx.data.load_model` and returns
# the model frozen and in eval mode, with its tokenizer. `--full` rebuilds them with `common.pretrain`'s recipe (AdamW with warmup and weight
# decay, longer rows and a larger corpus than the demo above, the same seeds).

# %%
if MODE == "full":  # retrain the committed checkpoints from scratch (minutes)
    for size in SIZES:
        start = time.perf_counter()
        model, size_tok, result = pretrain(size, PRETRAIN_STEPS[size])
        save_base(model, size_tok, CHECKPOINTS / f"base_{size}.pt")
        print(f"{size}: final loss {result['losses'][-1]:.3f}, "
              f"{time.perf_counter() - start:.0f} s -> {CHECKPOINTS / f'base_{size}.pt'}")

bases = []
for size in SIZES:
    model, base_tok = load_base(size)
    frozen = not any(p.requires_grad for p in model.parameters())
    bases.append({"size": size, "layers": model.config.n_layer, "heads": model.config.n_head,
                  "width": model.config.n_embd,
                  "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
                  "file MB": (CHECKPOINTS / f"base_{size}.pt").stat().st_size / 1e6,
                  "frozen": "yes" if frozen else "NO"})
table(bases, title="committed base models, as common.load_base returns them", floatfmt="{:.1f}",
      notes={"parameters": "weights of the model (the output layer shares the embedding table)",
             "file MB": "size of lessons/checkpoints/base_<size>.pt (fp16 weights)",
             "frozen": "no parameter requires a gradient"})

# %% [markdown]
# ## What the committed small base can do
#
# Frozen, asked with the first pretrained phrasing of each task, on test inputs it never saw (a
# task's splits are disjoint by a hash of the input, and pretraining used train inputs only).
# Classification tasks score the label word with the highest logit after "=>"; the others
# generate greedily and score an exact match with a reference.

# %%
base, base_tok = load_base("small")
skills = []
for name, task in TASKS.items():
    if not task.in_pretraining:
        continue
    examples = make_split(name, S["n_eval"], "test")
    metrics = evaluate(base, base_tok, name, examples, task.phrasings[0])
    skills.append({"task": name, "asked with": task.phrasings[0],
                   "metric": "accuracy" if task.labels else "exact match",
                   "score %": metrics.get("accuracy", metrics.get("exact")),
                   "chance %": 100 / len(task.labels) if task.labels else None})
table(skills, title=f"frozen small base, {S['n_eval']} test inputs per task", floatfmt="{:.1f}",
      notes={"asked with": "the instruction put before the input (a pretrained phrasing)",
             "chance %": "a uniform guess among the labels (n/a: a generated answer)"})
near_chance = [s["task"] for s in skills if s["chance %"] and s["score %"] < s["chance %"] + 10]

# %% [markdown]
# **What the output means.** Where a task's score is high, the frozen base already has the skill
# and a prompt only needs to *select* it; where a classification score is within a few points of
# chance, the base barely reads the task and a prompt has to do much more of the work. Lesson 05
# shows how much these scores depend on the exact words of the instruction.

# %%
small = next(b for b in bases if b["size"] == "small")
takeaway(
    f"pretraining the tiny base ({len(demo)} seeds, {S['demo_steps']} steps): answer loss "
    f"{spread([d['start'] for d in demo.values()], '{:.2f}')} -> "
    f"{spread([d['end'] for d in demo.values()], '{:.2f}')}",
    f"\"pretraining lowers loss\": {learning.word}",
    "committed bases: " + ", ".join(f"{b['size']} {b['parameters']}" for b in bases)
    + " parameters",
    "later lessons load them with common.load_base(size): frozen, in eval mode, with the "
    "tokenizer",
    f"the frozen small base ({small['parameters']} parameters), asked in words, scores:",
    ", ".join(f"{s['task']} {s['score %']:.0f}%" for s in skills),
    f"within 10 points of chance: {', '.join(near_chance) or 'no task'}")

# %% [markdown]
# ## Exercises
#
# 1. **Why the loss counts answers only.** Take the batch shown above and compute the committed
#    small base's loss twice: with the batch's targets (answers only) and with every next token
#    as a target. *Observe:* the all-token loss is many times larger — the instructions' word
#    lists and reviews are random, so no model can predict them, and that noise would dominate
#    the gradient. *Hint:* every next token is
#    `torch.cat([batch["idx"][:, 1:], batch["targets"][:, -1:]], dim=1)`.
# 2. **A phrasing pretraining never used.** Ask the small base with `task.phrasings[task.n_seen]`
#    instead of `task.phrasings[0]`. *Observe:* on some tasks the score collapses although the
#    skill is in the model — the base learned the words it saw, not what they mean. Lesson 05
#    measures this brittleness. *Hint:* rerun the skills cell with the other phrasing.
# 3. **Open: does size help here?** Measure the committed tiny and medium bases with the skills
#    cell. What may you conclude from one pretrained base per size? *Hint:*
#    `load_base("tiny")`; lesson 11 compares sizes over several seeds.
