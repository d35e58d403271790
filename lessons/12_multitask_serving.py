# %% [markdown]
# # 12 · One frozen base, many small task files: multi-task serving
#
# The source article's third chapter ends with a deployment picture: keep ONE copy of the
# pretrained model in memory, one small file per task, and switch tasks by name. Its example is a
# customer-service system with three intents: return-policy questions, shipping-status queries and
# product recommendations. This lesson builds exactly that on the course's frozen small base and
# measures every step.
#
# What you will learn:
# 1. to train one small module per task and save it with `Tuned.save`: a file of kilobytes next
#    to the megabytes of the model, tied to its base by a fingerprint;
# 2. to load the files into a fresh `Tuned` by name, switch the default task with `use`, and why a
#    file refuses to load onto another base;
# 3. to run ONE batch whose rows belong to different tasks and different kinds of method — LoRA,
#    adapters, a prefix, a soft prompt — with every row's logits equal to that row run alone;
# 4. to route each query with the frozen base itself (its pretrained `intent` skill, a hard
#    prompt, no module at all) and answer a stream of mixed queries in one batch.
#
# The serving side is Lester et al.'s Figure 2 and §6 ("prompt ensembling": several prompts in one
# batch on one frozen model); see [REFERENCES.md](REFERENCES.md).
#
# Run: `python lessons/12_multitask_serving.py [--fast | --full]`

# %%
import copy
import io
import json
import random
import shutil
import textwrap
import time

import torch

from common import (CHECKPOINTS, OUT, RESULTS, SEEDS, TASKS, build_method, chosen_lr, classify,
                    lesson_mode, load_base, predict, score, setup, table, takeaway, train_method)
from minitx.data import encode_prompts
from minitx.tuning import Prefix, Tuned, count_parameters
from toyworld import Example, make_split, prompt_text

MODE = lesson_mode()
SETTINGS = {  # the rates were chosen at 100 steps on 128 examples; serving wants modules that
    "fast": dict(steps=4, n_train=16, n_test=6),  # have learned their lookups: more steps
    "default": dict(steps=300, n_train=128, n_test=30),
    "full": dict(steps=600, n_train=256, n_test=36),  # recommend has 36 distinct test inputs
}
S = SETTINGS[MODE]
TASK_NAMES = ("returns", "shipping", "recommend")  # the three customer-service tasks
setup(0)
base, tok = load_base("small")
print(f"mode {MODE}: {S['steps']} training steps on {S['n_train']} examples per task, "
      f"{S['n_test']} test queries per task, seed {SEEDS[MODE][0]}")

# %% [markdown]
# ## The three tasks
#
# From `lessons/toyworld.py`; each answer is a fixed function of its query:
#
# | task | a query | its answer |
# | --- | --- | --- |
# | returns | "can i return the navy boots" | "yes you can return the navy boots within 30 days" |
# | shipping | "where is my order 4 1 7" | "your order 4 1 7 is on its way" |
# | recommend | "my sister is a keen runner" | "we recommend the running shoes" |
#
# The return window depends on the kind of item (clothes, electronics, home goods), the status on
# the order number's first digit, the product on the hobby. The base has seen every one of these
# words — the queries were pretrained as the `intent` task ("what does the customer want : <query>
# => returns ;") — but never an answer. So a module cannot just *activate* a skill: it must copy
# the item or order number, and learn a small lookup the base does not know.
#
# ## 1. One small module per task, chosen on validation data
#
# Which method should each task get? `lessons/choose_lrs.py` trained every method on every task
# at several learning rates and kept each method's lowest loss on the *validation* split
# (committed in `lessons/results/learning_rates.json`). Each task here gets the method with the
# lowest of those losses — full fine-tuning left out, since it is not a small file — trained at
# that method's chosen rate (`common.chosen_lr`), with the course's standard sizes
# (`common.build_method`). This *picks* a method by a rule that never looks at test data; it is
# not a claim that the method is better (the sweep used one seed, and the losses are close for
# some tasks). Lesson 15 compares methods on the same task over three seeds.
#
# The course's LoRA uses Hu et al.'s r = 4 and α = 32, but on the fused `c_attn`, i.e. on Q, K
# and V; Hu et al. adapt Wq and Wv only. The adapter is Houlsby et al.'s bottleneck (width 16)
# after each attention and MLP sub-layer.

# %%
CANDIDATES = ("prompt", "prefix", "prefix_mlp", "lora", "adapter")  # the small-file methods
sweep = json.loads((RESULTS / "learning_rates.json").read_text())["validation_loss"]
best_loss = {t: {m: min(sweep[t][m].values()) for m in CANDIDATES} for t in TASK_NAMES}
SERVICE = {t: min(CANDIDATES, key=best_loss[t].get) for t in TASK_NAMES}  # task: method
table([{"task": t, **best_loss[t], "chosen": SERVICE[t]} for t in TASK_NAMES],
      "Lowest validation loss of each method (lessons/choose_lrs.py, seed 0)", floatfmt="{:.3f}",
      notes={"prefix": "P trained directly; prefix_mlp: P = MLP(P') while training (§4.3)",
             "chosen": "the method with the lowest validation loss: what this lesson serves"})
trained, rows = {}, []
for task, method in SERVICE.items():
    lr = chosen_lr(task, method)
    start = time.process_time()
    model, result = train_method(method, base, tok, make_split(task, S["n_train"], "train", seed=1),
                                 S["steps"], lr, seed=SEEDS[MODE][0])
    trained[task] = model.tasks["task"]  # common.tune names its one task "task"
    rows.append({"task": task, "method": method, "lr": f"{lr:g}", "steps": S["steps"],
                 "trained": f"{count_parameters(trained[task])[0]:,}",
                 "final loss": result["losses"][-1], "CPU s": time.process_time() - start})
training = table(rows, "Training one module per task (seed 0)", floatfmt="{:.2f}", notes={
    "lr": "chosen on the validation split by lessons/choose_lrs.py (common.chosen_lr)",
    "trained": "parameters that received gradients (the prefix's MLP included)",
    "final loss": "training loss at the last step (answer tokens only)"})

# %% [markdown]
# ## 2. Files: kilobytes per task against megabytes for the model
#
# `Tuned.save(name, directory)` writes `adapter.json` (the method, its settings, the base model's
# fingerprint — its config and a SHA-256 of its weights — and the SHA-256 of the weights file) and
# the weights file itself, and returns the weights' size in bytes. A reparameterized prefix is
# saved *exported*: its keys and values only, the MLP that produced them during training dropped
# (Li & Liang keep only P after training). The table compares each file with what a fine-tuned
# copy of the model per task would cost.

# %%
trainer = Tuned(base)  # what training produced, ready to serve: a prefix exported, its MLP dropped
for task, module in trained.items():
    trainer.add(task, module.export() if isinstance(module, Prefix) else module)
directory = OUT / "12_adapters"
shutil.rmtree(directory, ignore_errors=True)
buffer = io.BytesIO()
torch.save({k: v.float() for k, v in base.state_dict().items()}, buffer)
base_kb = buffer.getbuffer().nbytes / 1024  # an fp32 copy: what one fine-tuned model per task costs
files = []
for task in trained:
    kb = trainer.save(task, directory / task) / 1024
    files.append({"file": f"{task}/ ({SERVICE[task]})",
                  "kept": f"{count_parameters(trainer.tasks[task])[0]:,}",
                  "KB": kb, "% of the base": 100 * kb / base_kb})
files.append({"file": "base model, fp32", "kept": f"{count_parameters(base)[1]:,}", "KB": base_kb,
              "% of the base": 100.0})
checkpoint_kb = (CHECKPOINTS / "base_small.pt").stat().st_size / 1024
files.append({"file": "base checkpoint, fp16 (committed)", "kept": f"{count_parameters(base)[1]:,}",
              "KB": checkpoint_kb, "% of the base": 100 * checkpoint_kb / base_kb})
table(files, f"Files under {directory.relative_to(OUT.parent.parent)}", floatfmt="{:.1f}", notes={
    "kept": "parameters in the file (a prefix: its exported keys and values, no MLP)",
    "KB": "size of the weights file; adapter.json adds about 1 KB of text"})
adapters_kb = sum(row["KB"] for row in files[:len(trained)])

# %% [markdown]
# Now the serving side: a fresh `Tuned` on the same base, holding nothing but what the files
# hold. Three checks: the loaded modules give the trained logits; `use(name)` switches the default
# task; and a file refuses to load onto a base that differs by a single weight — a prefix or a
# LoRA trained for one set of weights means nothing on another, and silently serving it would be
# a wrong answer with no error.

# %%
serving = Tuned(base)
for task in trained:
    serving.load(directory / task)
probe = [make_split(task, 1, "test")[0] for task in SERVICE]
idx, mask = encode_prompts(tok, [prompt_text(e) for e in probe])
with torch.no_grad():
    reload_diff = max((serving(idx, attention_mask=mask, task=t)[0]
                       - trainer(idx, attention_mask=mask, task=t)[0]).abs().max().item()
                      for t in trained)
    serving.use("shipping")  # switch the default task by name
    use_diff = (serving(idx, attention_mask=mask)[0]
                - serving(idx, attention_mask=mask, task="shipping")[0]).abs().max().item()
other = load_base("small")[0]
with torch.no_grad():
    other.transformer.h[0].mlp.c_fc.weight[0, 0] += 1e-3  # another base, by one weight
try:
    Tuned(other).load(directory / "returns")
    refusal = None
except ValueError as error:
    refusal = str(error)
print(f"\nloaded {list(serving.tasks)}; max |logit difference| to the trained modules: "
      f"{reload_diff:.1e}")
print(f"use('shipping') then no task given == task='shipping': max |difference| {use_diff:.1e}")
print("loading 'returns' onto a base with ONE weight changed by 1e-3:",
      "accepted (wrong!)" if refusal is None else "refused")
if refusal:
    print(textwrap.fill(f"ValueError: {refusal.replace(str(OUT.parent.parent) + '/', '')}", 96,
                        initial_indent="  ", subsequent_indent="  "))

# %% [markdown]
# ## 3. One batch, several tasks
#
# `Tuned(idx, task=[...])` takes one task name per row, and each row gets only its own task's
# parameters: LoRA's low-rank update and an adapter's bottleneck act on their rows only; a prefix
# row gets its keys and values in every layer; a soft-prompt row gets its embeddings in front of
# the input; whatever a row does not use is padding that the attention mask hides. To mix every
# kind in one batch, two more modules join the three served ones: a 10-position prefix and a
# 10-token soft prompt, *untrained* — random, but not zero, so they change their rows' logits;
# exactness is a property of the mechanism, not of training. The claim to check: each row's logits
# are exactly the logits that row gets when run alone, unpadded, with only its own task. In float32
# "exactly" means up to rounding; in float64 the rounding shrinks by about nine orders of magnitude,
# which shows the difference is rounding and not a leak between rows.

# %%
@torch.no_grad()
def mixed_vs_alone(model, examples, names):
    """Max |logit difference| over real positions: one left-padded mixed batch vs each row alone."""
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in examples])
    mixed = model(idx, attention_mask=mask, task=names)[0]  # (B, T, vocab)
    worst = 0.0
    for row, (example, name) in enumerate(zip(examples, names)):
        alone = model(torch.tensor([tok.encode(prompt_text(example))]), task=name)[0][0]  # (T_i, V)
        worst = max(worst, (mixed[row, -alone.size(0):] - alone).abs().max().item())
    return worst


torch.manual_seed(0)
mixer = Tuned(base)  # the served modules, plus an untrained prefix and soft prompt
for task in SERVICE:
    mixer.add(task, serving.tasks[task])
mixer.add("prefix_untrained", build_method("prefix", base))
mixer.add("prompt_untrained", build_method("prompt", base))
batch_tasks = ["returns", "prefix_untrained", "shipping", "prompt_untrained", "recommend",
               "returns"]
batch_examples = [make_split("shipping", 6, "test")[i] for i in range(len(batch_tasks))]
mixed_fp32 = mixed_vs_alone(mixer, batch_examples, batch_tasks)
serving64 = Tuned(copy.deepcopy(base).double())
for task in mixer.tasks:
    serving64.add(task, copy.deepcopy(mixer.tasks[task]))
mixed_fp64 = mixed_vs_alone(serving64, batch_examples, batch_tasks)
kinds = sorted({mixer.tasks[t].method for t in batch_tasks})
print(f"one batch of {len(batch_tasks)} rows, one task each:\n  {', '.join(batch_tasks)}")
print(f"  kinds of method in the batch: {', '.join(kinds)}")
print(f"  max |logit difference| vs each row alone: {mixed_fp32:.1e} in float32, "
      f"{mixed_fp64:.1e} in float64")

# %% [markdown]
# ## 4. Route with the frozen base, answer in one batch
#
# The base was pretrained on `intent`: "what does the customer want : <query> =>" followed by one
# of the words returns / shipping / recommend. Reading those three words' logits after "=>" routes
# a query with no module at all — the router *is* the shared base, run with a hard prompt. Then one
# batch answers every query, each row with the module its route names.
#
# The table says, per task: how often the router was right; what the frozen base answers when
# asked with the task's own instruction (no module); the module's exact match with perfect routing;
# and end to end (routed by the base, answered in the mixed batch). The last two columns split each
# answer in two: the words copied from the query (item, order number) and the words looked up
# (return window, status, product) — the part the module had to learn.

# %%
FIELDS = {  # answer words: (copied from the query, looked up), as word positions in the answer
    "returns": (slice(5, 7), slice(8, 9)),  # yes you can return the [navy boots] within [30] days
    "shipping": (slice(2, 5), slice(5, None)),  # your order [4 1 7] [is on its way]
    "recommend": (None, slice(3, None)),  # we recommend the [running shoes]
}


def parts_right(task, answers, examples):
    """[% of answers with the copied words right, % with the looked-up words right] (None: the
    task's answers copy nothing)."""
    out = []
    for part in FIELDS[task]:
        right = None if part is None else [a.split()[part] == e.target.split()[part]
                                           for a, e in zip(answers, examples)]
        out.append(None if right is None else 100 * sum(right) / len(right))
    return out


ROUTER = TASKS["intent"].phrasings[0]  # "what does the customer want": a pretrained instruction
labels = list(TASKS["intent"].labels)
tests = {t: make_split(t, S["n_test"], "test") for t in SERVICE}
queries = [(t, e) for t in SERVICE for e in tests[t]]
random.Random(0).shuffle(queries)  # a realistic stream: tasks interleaved
examples = [e for _, e in queries]
idx, mask = encode_prompts(tok, [prompt_text(e, ROUTER) for e in examples])
with torch.no_grad():
    label_ids = torch.tensor([tok.encode(label)[0] for label in labels])
    routed = [labels[i] for i in
              base(idx, attention_mask=mask)[0][:, -1, label_ids].argmax(-1).tolist()]
as_intent = [Example(e.source, t, (t,), t) for t, e in queries]
classify_accuracy = classify(base, tok, as_intent, labels, ROUTER)  # the same, via common.classify
answers = predict(serving, tok, examples, task=routed, batch_size=len(examples))  # ONE batch
alone = {t: predict(serving, tok, tests[t], task=t) for t in SERVICE}  # perfect routing
frozen = {t: predict(base, tok, tests[t], TASKS[t].phrasings[0]) for t in SERVICE}
served = []
for t in SERVICE:
    rows_t = [i for i, (task, _) in enumerate(queries) if task == t]
    mine, mine_examples = [answers[i] for i in rows_t], [examples[i] for i in rows_t]
    copied, looked_up = parts_right(t, mine, mine_examples)
    served.append({"task": t, "queries": len(rows_t),
                   "routed right": 100 * sum(routed[i] == t for i in rows_t) / len(rows_t),
                   "frozen base": score(frozen[t], tests[t])["exact"],
                   "module alone": score(alone[t], tests[t])["exact"],
                   "end to end": score(mine, mine_examples)["exact"],
                   "copied right": copied, "looked up right": looked_up})
table(served, f"Route with the frozen base, answer {len(examples)} queries in one mixed batch "
              f"(all %)", notes={
    "routed right": f'the base with the hard prompt "{ROUTER} :" picks this task',
    "frozen base": "exact match of the base asked with the task's instruction, no module",
    "module alone": "exact match of the task's module on its own queries (perfect routing)",
    "end to end": "exact match when the base routes and the mixed batch answers",
    "copied right": "answers whose copied words are right (n/a: the answer copies nothing)",
    "looked up right": "answers whose looked-up words are right"})
right_route = [i for i, (t, _) in enumerate(queries) if routed[i] == t]
routing_accuracy = 100 * len(right_route) / len(queries)
end_to_end = 100 * sum(a in e.references for a, e in zip(answers, examples)) / len(examples)
identical = sum(answers[i] == alone[queries[i][0]][tests[queries[i][0]].index(examples[i])]
                for i in right_route)
print(f"\nrouting {routing_accuracy:.1f}% (common.classify on the same queries: "
      f"{classify_accuracy:.1f}%); end-to-end exact {end_to_end:.1f}%")
print(f"correctly routed answers identical in the mixed batch and in per-task batches: "
      f"{identical} of {len(right_route)}")
print("\na few queries, as served:")
for i in range(min(5, len(examples))):
    shown = answers[i] if len(answers[i]) <= 70 else answers[i][:66] + " ..."
    print(f"  {examples[i].source!r}\n    -> [{routed[i]}] {shown!r}")
    print("       right" if answers[i] in examples[i].references else
          f"       wanted: {examples[i].target!r}")

# %% [markdown]
# ## What the output means
#
# * **Files.** Each task ships as a small file; a fine-tuned copy per task would cost the whole
#   model each time. A reparameterized prefix's training-time MLP never leaves the training run.
# * **Mixed batches are exact.** Rows of one batch used different kinds of method, and each row's
#   logits equal that row alone up to rounding; the float64 run shows it is rounding.
#   Lester et al. (Figure 2) make this point for soft prompts; it holds for prefixes once each
#   row's missing keys are padded and masked, and for LoRA and adapters once their update is
#   applied per row, which is what `Tuned` does. The best-known PEFT library serves
#   mixed-adapter batches for LoRA-type adapters only; its prompt-learning methods take one
#   adapter per batch.
# * **Routing needs no module**: the shared base's pretrained skill routes the queries, and one
#   batch answers all of them. End to end can only be as good as routing *and* the module.
# * **Where answers go wrong.** The "copied" and "looked up" columns split each error: copying the
#   item or order number (the base was pretrained on `copy`, but never behind these queries), or
#   the lookup (return window, status, product) that no pretraining taught. Compare the two
#   columns per task, and rerun with `--full` (longer training on more examples) to see which
#   part more training fixes.

# %%
takeaway(
    f"{len(trained)} task files: {adapters_kb:.0f} KB in all, "
    f"{100 * adapters_kb / base_kb:.1f}% of one fp32 copy of the base ({base_kb / 1024:.1f} MB)",
    f"files round-trip exactly (max |diff| {reload_diff:.0e}); a base changed by one weight: "
    f"{'refused' if refusal else 'ACCEPTED'}",
    f"a mixed batch ({len(kinds)} kinds of method) = each row alone: max |diff| "
    f"{mixed_fp32:.0e} (fp32), {mixed_fp64:.0e} (fp64)",
    f"the frozen base routes {routing_accuracy:.0f}% of queries right; end to end "
    f"{end_to_end:.0f}% exact in one batch",
    "module alone, exact: " + ", ".join(f"{r['task']} ({SERVICE[r['task']]}) "
                                        f"{r['module alone']:.0f}%" for r in served),
    f"(one seed, {S['steps']} steps per module: a measurement of this setup, not a method "
    f"comparison)")

# %% [markdown]
# ## Exercises
#
# 1. **The same query, three tasks.** Put one query in a batch three times with
#    `task=["returns", "shipping", "recommend"]`. What must row i equal? Check it against
#    `serving(idx_one_row, task=name)`. *Hint:* `mixed_vs_alone` does exactly this check for any
#    list of examples and names.
# 2. **Prefixes of different lengths.** Train `shipping` as a 4-position prefix too, with
#    `train_method("prefix", ..., n_virtual=4)`, add its module to `mixer` as `"shipping_short"`
#    and rerun `mixed_vs_alone` with it and the 10-position `"prefix_untrained"` side by side. The
#    difference must stay at rounding level. *Hint:* the shorter prefix is padded on the left with
#    keys the mask hides; look at `Tuned.virtual`.
# 3. **Why the fingerprint.** Load `returns` onto a base whose *last* layer differs by one weight.
#    Is it still refused? Would the module still work if you forced it? *Hint:* the fingerprint is
#    a hash of every weight, so any change is refused; ask what the module's numbers were trained
#    to work with.
# 4. **Open: was the validation choice right?** Serve a method the sweep did *not* choose (say a
#    soft prompt for every task, at its chosen rate), train both choices on the seeds
#    `SEEDS["default"]`, and compare end-to-end exact match with `common.verdict`. Does the test
#    split confirm what the validation split chose, beyond the spread between seeds?
