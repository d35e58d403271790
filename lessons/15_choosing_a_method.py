# %% [markdown]
# # 15 · Choosing a method
#
# The source article's fourth chapter ends with a checklist — task type, hardware budget,
# deployment flexibility, model scale — and a rule of thumb: "large models use prompt tuning, small
# models use prefix tuning". A checklist is only as good as the evidence behind each line. This
# lesson gathers that evidence at toy scale on the course's frozen small base and ends with a
# decision table whose every line is computed from this run.
#
# What you will learn:
# 1. to compare methods fairly: every method at the learning rate chosen for it on *validation*
#    data, the same seeds for every arm, and a verdict from the per-seed differences — with the
#    parameter counts printed next to every comparison, because the methods differ in size;
# 2. what a training step costs each method (parameters, file, memory counted tensor by tensor);
# 3. which methods can serve several tasks in one batch;
# 4. how to turn all of that into a recommendation that says "not shown" when the seeds disagree.
#
# Papers: Lester et al. 2021, Li & Liang 2021, Liu et al. (P-tuning v2), Hu et al. (LoRA) — see
# [REFERENCES.md](REFERENCES.md).
#
# Run: `python lessons/15_choosing_a_method.py [--fast | --full]`

# %%
import copy
import io
import json
import tempfile
import textwrap

import torch

from common import (RESULTS, SEEDS, build_method, chosen_lr, evaluate, lesson_mode, load_base,
                    setup, spread, table, takeaway, task_batches, train_method, verdict)
from minitx.data import encode_prompts
from minitx.tuning import Tuned, count_parameters
from toyworld import make_split, prompt_text

MODE = lesson_mode()
SETTINGS = {
    "fast": dict(steps={"intent": 3, "first_last": 3}, n_train=16, n_test=8),
    "default": dict(steps={"intent": 30, "first_last": 100}, n_train=128, n_test=40),
    "full": dict(steps={"intent": 100, "first_last": 200}, n_train=256, n_test=100),
}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
setup(0)
base, tok = load_base("small")
print(f"mode {MODE}: seeds {list(SEED_LIST)}; steps: " + ", ".join(f"{t} {n}" for t, n in
      S["steps"].items()))
print(f"{S['n_train']} training and {S['n_test']} test examples per task")

# %% [markdown]
# ## The question behind "task type"
#
# The article's "task types" mix two questions that a toy world keeps apart: *what kind of output*
# (a label or a sequence) and *whether the base already has the skill*. The course's base was
# pretrained on `intent` (a customer query -> returns / shipping / recommend), never on
# `first_last` (a list of words -> its last word, then its first). A soft prompt can only *select*
# what the frozen network already computes; a prefix reaches every layer; LoRA changes the
# attention's projections. The two tasks:
#
# | task | output | does the base have the skill? | metric |
# | --- | --- | --- | --- |
# | `intent` (no instruction) | a label | yes, pretrained | accuracy of the label word's logit |
# | `first_last` | a sequence | no | exact match of the greedy answer |
#
# ## The methods, and how each is set up
#
# Every method has the course's standard size (`common.build_method`): a 10-token soft prompt; a
# 10-position prefix reparameterized as P = MLP(P′) with a hidden width of 128 (Li & Liang §4.3;
# only P is kept after training); LoRA with Hu et al.'s r = 4 and α = 32 — **but on the fused
# `c_attn`, i.e. on Q, K and V**, where Hu et al. adapt Wq and Wv only, so this LoRA trains 3/2 as
# many numbers per layer as theirs. Each trains at the rate `lessons/choose_lrs.py` chose for that
# method and task on the validation split (`common.chosen_lr`); the test split is only scored.
# The methods differ in size, so every verdict below prints the parameter counts beside it.

# %%
TASK_LIST = ("intent", "first_last")
METHODS = ("prompt", "prefix_mlp", "lora")
METRIC = {"intent": "accuracy", "first_last": "exact"}
data = {t: (make_split(t, S["n_train"], "train", seed=1), make_split(t, S["n_test"], "test"))
        for t in TASK_LIST}
scores, models = {}, {}
for task in TASK_LIST:
    train_set, test_set = data[task]
    for method in METHODS:
        scores[task, method] = []
        for seed in SEED_LIST:
            model, _ = train_method(method, base, tok, train_set, S["steps"][task],
                                    chosen_lr(task, method), seed=seed)
            scores[task, method].append(evaluate(model, tok, task, test_set)[METRIC[task]])
            if seed == SEED_LIST[0]:
                models[task, method] = model.tasks["task"]  # kept for the deployment check
frozen = {t: evaluate(base, tok, t, data[t][1])[METRIC[t]] for t in TASK_LIST}
trained = {m: count_parameters(models[TASK_LIST[0], m])[0] for m in METHODS}
kept = {m: count_parameters(models[TASK_LIST[0], m].export() if m == "prefix_mlp"
                            else models[TASK_LIST[0], m])[0] for m in METHODS}
rows = [{"task": t, "method": m, "lr": f"{chosen_lr(t, m):g}", "trained": f"{trained[m]:,}",
         "kept": f"{kept[m]:,}", "score % (min-max)": spread(scores[t, m])}
        for t in TASK_LIST for m in METHODS]
rows += [{"task": t, "method": "frozen base", "lr": "n/a", "trained": "0", "kept": "0",
          "score % (min-max)": spread([frozen[t]])} for t in TASK_LIST]
table(rows, f"Score per task and method, mean over seeds {list(SEED_LIST)}", notes={
    "lr": "chosen on the validation split by lessons/choose_lrs.py",
    "trained": "parameters that receive gradients (the prefix's MLP included)",
    "kept": "parameters the method ships after training (the prefix: P only)",
    "score %": "intent: accuracy; first_last: exact match; mean (lowest-highest seed)"})

# %% [markdown]
# ## Verdicts, pair by pair
#
# For each task and each pair of methods: the per-seed difference of their scores (same seed,
# same data order), and the verdict it supports — "holds" when every seed favours the first
# method, "reversed" when every seed favours the second, else "not shown (within seed spread)".
# A verdict compares methods *at their standard sizes*, which are not equal; lesson 09 compares
# them at equal numbers of trainable parameters.

# %%
PAIRS = (("prefix_mlp", "prompt"), ("lora", "prompt"), ("lora", "prefix_mlp"))
verdicts = {}
for task in TASK_LIST:
    print(f"\n{task} ({METRIC[task]} %):")
    for a, b in PAIRS:
        verdicts[task, a, b] = verdict(f"{a} beats {b}", scores[task, a], scores[task, b])
        print(f"    parameters trained {trained[a]:,} vs {trained[b]:,}; "
              f"kept {kept[a]:,} vs {kept[b]:,}")

# %% [markdown]
# ## What a method costs
#
# Parameters and the file are exact counts. Memory is counted, not sampled (a process's peak
# memory on a shared CPU includes torch itself and never goes down): one training step holds the
# weights; a gradient and two AdamW moments per *trainable* number; and every tensor autograd saves
# for the backward pass (found with `torch.autograd.graph.saved_tensors_hooks`; parameters and
# views of one storage are counted once). A frozen base still needs activations — the gradient
# must travel back through every layer to reach a prefix — but fewer: for y = x·W with W frozen,
# the backward pass needs W, not x.

# %%
def step_bytes(model, batch):
    """Bytes one training step holds: weights, gradients, AdamW state, saved activations."""
    params = list({id(p): p for p in model.parameters()}.values())
    param_storages = {p.untyped_storage().data_ptr() for p in params}
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_storages:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch)[1]
    loss.backward()
    model.zero_grad(set_to_none=True)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    out = {"weights": sum(p.numel() * p.element_size() for p in params), "gradients": trainable,
           "AdamW state": 2 * trainable, "activations": sum(saved.values())}
    out["total"] = sum(out.values())
    return out


def file_kb(name, model):
    """KB of what ships: a method saved with Tuned.save (a prefix exported), or a whole model."""
    buffer = io.BytesIO()
    if name == "full":
        torch.save(model.state_dict(), buffer)
        return buffer.getbuffer().nbytes / 1024
    holder = Tuned(base)
    holder.add(name, model.tasks["task"].export() if name.startswith("prefix")
               else model.tasks["task"])
    with tempfile.TemporaryDirectory() as directory:
        return holder.save(name, directory) / 1024


batch = task_batches(tok, data["first_last"][0], 16)(0)
costs = []
for name in ("prompt", "prefix", "prefix_mlp", "lora", "adapter", "full"):
    torch.manual_seed(0)
    if name == "full":
        model = copy.deepcopy(base).requires_grad_(True).train()
    else:
        model = Tuned(base)
        model.add("task", build_method(name, base))
        model.train()
    held = {k: v / 1024 for k, v in step_bytes(model, batch).items()}
    costs.append({"method": name, "trained": count_parameters(model)[0],
                  "file KB": file_kb(name, model), "weights KB": held["weights"],
                  "grad+AdamW KB": held["gradients"] + held["AdamW state"],
                  "activations KB": held["activations"], "step total KB": held["total"]})
    model.eval()
full_total = costs[-1]["step total KB"]
for row in costs:
    row["% of full"] = 100 * row["step total KB"] / full_total
    row["trained"] = f"{row['trained']:,}"
table(costs, "Cost on first_last (batch 16, fp32, small base)", floatfmt="{:.0f}", notes={
    "prefix": "a direct prefix: P itself trained (P-tuning v2's deep prompt), no MLP",
    "file KB": "what ships per task: Tuned.save's weights file (prefix exported), or the model",
    "grad+AdamW KB": "one gradient and two AdamW moments per trainable number",
    "activations KB": "tensors autograd saves for the backward pass",
    "% of full": "step total as a share of full fine-tuning's step total"})

# %% [markdown]
# ## Deployment: can one batch serve several tasks?
#
# The modules trained above (seed 0) on both tasks, one row per task and method, all in one
# left-padded batch; each row compared with that row run alone. Full fine-tuning cannot do this
# at all: two tasks are two models. A LoRA *merged* into the weights (zero extra cost at
# inference) serves one task per copy of the weights; unmerged, `Tuned` applies it per row.

# %%
serving = Tuned(base)
names, rows_in = [], []
for task in TASK_LIST:
    for method in METHODS:
        serving.add(f"{task}-{method}", models[task, method])
        names.append(f"{task}-{method}")
        rows_in.append(data[task][1][0])
with torch.no_grad():
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in rows_in])
    mixed = serving(idx, attention_mask=mask, task=names)[0]  # (B, T, vocab)
    mixed_diff = {}
    for row, (example, name) in enumerate(zip(rows_in, names)):
        alone = serving(torch.tensor([tok.encode(prompt_text(example))]), task=name)[0][0]
        method = name.split("-")[1]
        diff = (mixed[row, -alone.size(0):] - alone).abs().max().item()
        mixed_diff[method] = max(mixed_diff.get(method, 0.0), diff)
deployment = [{"method": m, "mixed batch": "yes", "max |diff| vs alone": mixed_diff[m]}
              for m in METHODS]
deployment.append({"method": "full", "mixed batch": "no: one model per task",
                   "max |diff| vs alone": None})
table(deployment, f"{len(names)} rows, {len(names)} task modules, one batch",
      floatfmt="{:.1e}", notes={"max |diff| vs alone": "largest logit difference, mixed batch "
                                                      "vs the row alone (float32 rounding)"})

# %% [markdown]
# ## Sensitivity to the learning rate
#
# The article calls prompt tuning "point and shoot" and prefix tuning sensitive to its settings.
# `lessons/choose_lrs.py` already measured one setting for every method: the validation loss at
# each learning rate of its grid (seed 0, its own budget). The ratio of the worst to the best
# validation loss over the grid says how much a careless learning rate costs. It is shown for
# `first_last` only: on `intent` every loss is close to zero, and ratios of tiny numbers mislead.
# One seed, so this is a description, not a verdict.

# %%
sweep = json.loads((RESULTS / "learning_rates.json").read_text()).get("validation_loss", {})
sensitivity = []
for method in METHODS:
    losses = sweep.get("first_last", {}).get(method, {})
    if losses:
        sensitivity.append({"method": method, "rates": len(losses),
                            "best loss": min(losses.values()), "worst loss": max(losses.values()),
                            "worst / best": max(losses.values()) / min(losses.values())})
if sensitivity:
    table(sensitivity, "first_last: validation loss over each method's learning-rate grid "
                       "(seed 0)", floatfmt="{:.2f}",
          notes={"rates": "learning rates tried (common.LR_GRID)"})
else:
    print("(lessons/results/learning_rates.json holds no per-rate losses: rerun choose_lrs.py)")

# %% [markdown]
# ## The decision table
#
# Each recommendation is computed from the verdicts above: a method is *ruled out* on a task when
# some other method beats it on every seed ("holds"); among the methods not ruled out, the one
# that ships the fewest numbers is recommended. When the seeds do not separate two methods, the
# table says so instead of naming a winner. Scale is not measured here: lesson 11 measures the
# direction of Lester et al.'s scale curve on three base sizes.

# %%
def recommend(pair_verdicts, kept):
    """(method, methods ruled out) from {(a, b): Verdict of "a beats b"} and {method: kept
    parameters}: ruled out = beaten on every seed by another method; the recommendation = the
    method not ruled out that ships the fewest numbers."""
    ruled_out = set()
    for (a, b), v in pair_verdicts.items():
        if v.word == "holds":
            ruled_out.add(b)
        elif v.word == "reversed":
            ruled_out.add(a)
    candidates = [m for m in kept if m not in ruled_out] or list(kept)
    return min(candidates, key=kept.get), sorted(ruled_out)


def evidence(task):
    return "; ".join(f"{a} vs {b}: {verdicts[task, a, b].word} ({verdicts[task, a, b].mean:+.1f})"
                     for a, b in PAIRS)


decisions, choices = [], {}
for task, situation in (("intent", "the base already has the skill (a label here)"),
                        ("first_last", "a new skill (generation here)")):
    choice, out = recommend({(a, b): verdicts[task, a, b] for a, b in PAIRS}, kept)
    choices[task] = choice
    decisions.append((situation, f"{choice} (ruled out: {', '.join(out) or 'none'})",
                      f"{task}, {METRIC[task]}: {evidence(task)}"))
by_cost = {row["method"]: row for row in costs}
lightest = min((r for r in costs if r["method"] != "full"), key=lambda r: r["step total KB"])
decisions.append(("memory is the limit", f"a frozen base; {lightest['method']} held the least",
                  "KB per training step: " + ", ".join(f"{m} {r['step total KB']:.0f}"
                                                      for m, r in by_cost.items())))
decisions.append(("many tasks from one copy of the model", "prompt, prefix or unmerged LoRA",
                  "mixed batch = each row alone, max |diff| " + ", ".join(
                      f"{m} {d:.0e}" for m, d in mixed_diff.items()) + "; full: a model per task"))
if sensitivity:
    ratios = {r["method"]: r["worst / best"] for r in sensitivity}
    decisions.append(("no time to tune", "keep the chosen rate; sweep it for a new task",
                      "first_last validation loss, worst / best over the grid: " + ", ".join(
                          f"{m} {v:.1f}x" for m, v in ratios.items()) + " (one seed)"))
decisions.append(("a model with billions of parameters", "prompt tuning (paper, not measured)",
                  "Lester et al. §3.1: prompt tuning matches model tuning at T5-XXL (11B); "
                  "lesson 11 measures the direction at toy scale"))
print("\nDecision table (situation -> recommendation; evidence from this run)")
for situation, choice, why in decisions:
    print(f"\n* {situation}\n  -> {choice}")
    print(textwrap.fill(why, 98, initial_indent="     ", subsequent_indent="     "))

# %% [markdown]
# ## Reading the table against the article
#
# * **Task type.** The article's rule "understanding favours prompt, generation favours prefix"
#   mixes the kind of output with whether the base has the skill. The verdicts above separate
#   them: read which pairs hold on `intent` (skill present) and on `first_last` (skill absent).
#   P-tuning v2 (Liu et al.) found that below ~10B parameters input-only prompts fall short on
#   understanding tasks too, and that deep prompts — a prefix in every layer — close the gap.
# * **Hardware.** A frozen base drops the gradients and AdamW state of its weights but keeps the
#   activations; the reparameterization MLP costs memory while it trains, and `export()` drops
#   it. Li & Liang report about 18% vs 50% of GPU memory at batch size 1.
# * **Deployment.** Prompts, prefixes and unmerged LoRA serve many tasks from one model; a merged
#   LoRA or a fine-tuned model serves one task per copy.
# * **Scale.** The rule of thumb rests on Lester et al.'s scale curve (the gap closes at T5-XXL,
#   11B). Nothing at toy scale can reach the end of that curve; lesson 11 measures its direction.

# %%
takeaway(*[f"{t}: {a} beats {b}: {verdicts[t, a, b].word} ({verdicts[t, a, b].mean:+.1f} pts)"
           for t in TASK_LIST for a, b in PAIRS],
         *[f"{t}: recommended {choices[t]} (fewest kept numbers among those not ruled out)"
           for t in TASK_LIST],
         f"{lightest['method']} holds the least memory per step: {lightest['% of full']:.0f}% of "
         f"full fine-tuning's (activations stay)",
         f"mixed batches: every method's rows equal their single-task runs to "
         f"{max(mixed_diff.values()):.0e}")

# %% [markdown]
# ## Exercises
#
# 1. **Count a prefix by hand.** A 10-position prefix on this base (4 layers, width 128) keeps
#    2 × 4 × 10 × 128 numbers. Check the "kept" column. How many does the MLP add while training?
#    *Hint:* `Linear(128, 128)` then `Linear(128, 4 × 2 × 128)`, plus P′ itself.
# 2. **Make the prefix beat LoRA at equal parameters.** LoRA here trains 8,192 numbers; a direct
#    prefix (`"prefix"`, no MLP) of length 8 keeps exactly as many. Train both on `first_last`
#    over `SEEDS[MODE]` at their chosen rates and print `verdict("prefix beats lora", ...)`. Can
#    you find settings (length, steps) where it holds? *Hint:* `train_method("prefix", ...,
#    n_virtual=8)`; start from `chosen_lr("first_last", "prefix")`.
# 3. **LoRA on more layers.** Add the MLP's input projection:
#    `LoRA(base, r=4, alpha=32, targets=("attn.c_attn", "mlp.c_fc"))`. How many numbers does it
#    train now, and what happens to the step's activation memory? *Hint:* r × (in + out) per
#    adapted layer; autograd now keeps the inputs of `c_fc` too.
# 4. **Open: the adapter.** Add `"adapter"` to `METHODS` (its rate is in the JSON) and rerun.
#    Where do its verdicts land, and does the recommendation change?
