# %% [markdown]
# # 05 · Hard prompts are brittle
#
# The source article opens with the complaint that hand-written prompts are brittle: the same
# request in other words ("summarize" vs "briefly summarize") gives answers of a different
# quality. The article illustrates this; it measures nothing. This lesson measures it in the
# course's toy world, where we know exactly which wordings the model met in pretraining.
#
# What you will learn:
# 1. how much the frozen small base depends on the *wording* of an instruction it knows: the
#    four wordings seen in pretraining, two held out of it (same meaning, never seen), none;
# 2. that a soft prompt (Lester, Al-Rfou & Constant 2021) started from random vectors — no word
#    at all — and trained for seconds takes the instruction's place;
# 3. what the learned vectors are, read the way Lester et al. read theirs (§7: the nearest
#    vocabulary words of each vector), and where the frozen model's attention looks for them.
#
# Run: `python lessons/05_hard_prompts_are_brittle.py [--fast | --full]` (default: under a
# minute on a laptop CPU; `--fast`: seconds, what the tests run; `--full`: 5 seeds, more data).
# Papers are listed in [REFERENCES.md](REFERENCES.md).
#
# Every line of the toy world reads `<instruction> : <source> => <target> ;`. Pretraining used
# only the first four wordings of each instruction (`TASKS[name].phrasings[:4]`). "No
# instruction" is the bare `<source> =>`: the slot where a soft prompt goes.

# %%
import statistics

import torch
import torch.nn.functional as F

from common import (SEEDS, attention_weights_kept, chosen_lr, lesson_mode, load_base,
                    plot_curves, predict, score, seed_everything, setup, table, takeaway, tune,
                    verdict)
from minitx.data import encode_prompts
from minitx.tuning import SoftPrompt, Tuned, count_parameters
from toyworld import TASKS, make_split, prompt_text

MODE = lesson_mode()
SETTINGS = {  # test inputs per seed, training inputs, tuning steps, virtual tokens
    "fast": dict(n_test=8, n_train=16, steps=4, n_tokens=8),
    "default": dict(n_test=20, n_train=128, steps=40, n_tokens=8),
    "full": dict(n_test=100, n_train=256, steps=150, n_tokens=8),
}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
TASK_NAMES = ("reverse", "copy", "data_to_text")
setup(0)
base, tok = load_base("small")
# Each seed draws its own test inputs: a seed's scores are paired across rows (same inputs).
tests = {task: {seed: make_split(task, S["n_test"], "test", seed=seed) for seed in SEED_LIST}
         for task in TASK_NAMES}
print(f"mode {MODE}: seeds {list(SEED_LIST)}, {S['n_test']} test inputs per task and seed")


def scores_per_seed(model, task, instruction=None, **kw):
    """{seed: exact / BLEU / ROUGE-L in %} on each seed's test inputs, generated in one batch."""
    examples = [e for seed in SEED_LIST for e in tests[task][seed]]
    answers = predict(model, tok, examples, instruction, **kw)
    n = S["n_test"]
    return {seed: score(answers[i * n:(i + 1) * n], tests[task][seed])
            for i, seed in enumerate(SEED_LIST)}


def mean_over(per_seed, key="exact"):
    return statistics.fmean(m[key] for m in per_seed.values())


# %% [markdown]
# ## 1. The same instruction in seven wordings
#
# Exact match for the word lists; data-to-text also gets BLEU and ROUGE-L, because it has three
# right sentences per input and a near miss ("the mill is a cheap thai restaurant" for "... a
# thai restaurant in the harbour") should not score like nonsense. Each cell is the mean over
# the seeds' test samples.

# %%
SLOTS = ([f"seen {i + 1}" for i in range(4)] + ["held-out 1", "held-out 2", "no instruction"])


def wording(task, slot):
    """The instruction behind a row of the table (None: no instruction)."""
    phrasings = TASKS[task].phrasings
    if slot.startswith("seen"):
        return phrasings[int(slot[-1]) - 1]
    if slot.startswith("held-out"):
        return phrasings[TASKS[task].n_seen + int(slot[-1]) - 1]
    return None


hard = {task: {slot: scores_per_seed(base, task, wording(task, slot)) for slot in SLOTS}
        for task in TASK_NAMES}
table([{"wording": slot, "reverse": mean_over(hard["reverse"][slot]),
        "copy": mean_over(hard["copy"][slot]),
        "d2t exact": mean_over(hard["data_to_text"][slot]),
        "d2t BLEU": mean_over(hard["data_to_text"][slot], "bleu"),
        "d2t ROUGE-L": mean_over(hard["data_to_text"][slot], "rouge_l")} for slot in SLOTS],
      f"frozen small base, greedy answers, % (mean over {len(SEED_LIST)} test samples)",
      notes={"reverse, copy": "exact match: the answer equals the reference",
             "d2t": "data_to_text: exact match, corpus BLEU and ROUGE-L against 3 references"})
table([{"wording": slot, **{task: wording(task, slot) or "-" for task in TASK_NAMES}}
       for slot in SLOTS], "the wordings behind each row")

# %% [markdown]
# The verdicts below compare, seed by seed, the mean of the four seen wordings with the mean of
# the two held-out ones: "holds" only when every seed's test sample agrees.

# %%
def seen_minus(per_slot, slots, key="exact"):
    """Per seed: (mean over the seen wordings, mean over `slots`)."""
    seen = [statistics.fmean(per_slot[f"seen {i + 1}"][s][key] for i in range(4))
            for s in SEED_LIST]
    other = [statistics.fmean(per_slot[slot][s][key] for slot in slots) for s in SEED_LIST]
    return seen, other


print("\nverdicts, exact match %: 'A > B' claims A beats B on every seed (A-B: paired)")
SHORT = {"reverse": "reverse", "copy": "copy", "data_to_text": "d2t"}
verdicts = {task: verdict(f"seen > held-out: {SHORT[task]}",
                          *seen_minus(hard[task], ["held-out 1", "held-out 2"]))
            for task in TASK_NAMES}

# %% [markdown]
# Reverse and copy share their inputs (a list of words): nothing but the instruction says which
# to do, so a wording the model never met leaves it guessing. Data-to-text's input format (`name
# = ... | food = ...`) names the task by itself; there the wording changes *how* the sentence
# is said more than *whether* one comes out — compare its exact and BLEU columns.
#
# ## 2. A soft prompt in the instruction's place
#
# `SoftPrompt(base, 8, init="random")`: 8 vectors of width 128 drawn uniformly from
# [-0.5, 0.5] — Lester et al.'s random baseline, chosen here on purpose: the prompt starts from
# no word at all. The input is the bare `<source> =>`; only the prompt's numbers train, on the
# answers' tokens, with AdamW (`common.tune`) at the learning rate `chosen_lr("reverse",
# "prompt")` picked on validation data (lessons/choose_lrs.py). The base stays frozen. Each
# seed draws its own training inputs, initial vectors and batch order.
#
# Before training, the same random vectors are put in front of all three tasks: does *anything*
# in the instruction slot help?

# %%
LR = chosen_lr("reverse", "prompt")
soft = {"untrained": {task: {} for task in TASK_NAMES}, "trained": {}}
runs = {}  # seed -> the trained model, the prompt's vectors before training, the loss curve
for seed in SEED_LIST:
    seed_everything(seed)
    prompt = SoftPrompt(base, S["n_tokens"], init="random")
    untrained = Tuned(base)
    untrained.add("reverse", prompt)
    for task in TASK_NAMES:
        soft["untrained"][task][seed] = scores_per_seed(untrained.eval(), task)[seed]
    start = prompt.embeddings.detach().clone()
    train_set = make_split("reverse", S["n_train"], "train", seed=seed)
    tuned, result = tune(base, tok, prompt, train_set, S["steps"], LR, seed=seed, task="reverse")
    soft["trained"][seed] = scores_per_seed(tuned, "reverse")[seed]
    runs[seed] = dict(model=tuned, start=start, losses=result["losses"])

trainable = count_parameters(prompt)[0]
print(f"soft prompt: {S['n_tokens']} x {base.config.n_embd} = {trainable:,} trainable numbers; "
      f"the frozen base has {count_parameters(base)[1]:,}; lr {LR:g}, {S['steps']} steps")
plot_curves({f"seed {seed}": runs[seed]["losses"] for seed in SEED_LIST}, "05_soft_prompt_loss",
            title=f"05 · reverse: soft prompt ({S['n_tokens']} random vectors), training loss")

# %%
def rows_per_seed(named):
    """Table rows: one per arm, one column per seed, and the mean."""
    rows = []
    for name, values in named.items():
        row = {"reverse, exact %": name}
        row.update({f"seed {s}": v for s, v in zip(SEED_LIST, values)})
        rows.append({**row, "mean": statistics.fmean(values)})
    return rows


seen, held = seen_minus(hard["reverse"], ["held-out 1", "held-out 2"])
arms = {"seen wordings (mean)": seen, "held-out wordings (mean)": held,
        "no instruction": [hard["reverse"]["no instruction"][s]["exact"] for s in SEED_LIST],
        "random vectors, untrained": [soft["untrained"]["reverse"][s]["exact"] for s in SEED_LIST],
        "soft prompt, trained": [soft["trained"][s]["exact"] for s in SEED_LIST]}
table(rows_per_seed(arms), "reverse: every arm on the same test inputs, per seed",
      notes={"seed s": "test sample s; the soft prompt of seed s also trained with seed s"})
print("\nverdicts, exact match % on reverse ('soft' = the trained soft prompt):")
verdicts["soft vs none"] = verdict("soft > no instruction", arms["soft prompt, trained"],
                                   arms["no instruction"])
verdicts["soft vs held-out"] = verdict("soft > held-out wordings", arms["soft prompt, trained"],
                                       arms["held-out wordings (mean)"])
verdicts["seen vs soft"] = verdict("seen wordings > soft", arms["seen wordings (mean)"],
                                   arms["soft prompt, trained"])
print("verdict, exact match % on data_to_text (random vectors untrained vs an empty slot):")
d2t_none = [hard["data_to_text"]["no instruction"][s]["exact"] for s in SEED_LIST]
d2t_random = [soft["untrained"]["data_to_text"][s]["exact"] for s in SEED_LIST]
verdicts["d2t random vs none"] = verdict("random vectors > no words", d2t_random, d2t_none)

# %% [markdown]
# Read the "random vectors, untrained" row before the trained one: those are the same vectors
# before the first step, so the gap between the two rows is what training did. The last
# verdict asks the data-to-text question: do random vectors in the instruction slot,
# untrained, already beat an empty slot? If they do, the model was missing *something* where
# it always saw an instruction, not the instruction's meaning.
#
# ## 3. What did it learn? Read the nearest words
#
# Lester et al. (§7) looked up the nearest vocabulary words (cosine similarity) of each learned
# prompt vector. They found that the top-5 neighbours of a vector form tight semantic clusters,
# and that with class-label initialisation the labels persist as neighbours after training. Our
# prompts start random, far from every word; below, for seed 0's trained prompt, each vector's
# five nearest words, the cosine to the nearest (a real word's own embedding has 1.00), and the
# vector's length next to the words' mean length. Then, per seed: how close the vectors are to
# *any* word before and after training, and how many of the 8 x 5 neighbours are words only a
# reverse instruction uses ("backwards", "order", ...; words shared with copy's wordings, such as
# "list", do not count).

# %%
wte = base.transformer.wte.weight
REVERSE_ONLY = (set(" ".join(TASKS["reverse"].phrasings).split())
                - set(" ".join(TASKS["copy"].phrasings).split()))


def neighbours(vectors, k=5):
    """(cosines, word ids) of each vector's k nearest word embeddings, nearest first."""
    cos = F.normalize(vectors, dim=1) @ F.normalize(wte, dim=1).T  # (n_tokens, vocab)
    return cos.topk(k, dim=1)


trained0 = runs[SEED_LIST[0]]["model"].tasks["reverse"].embeddings.detach()
cos0, ids0 = neighbours(trained0)
table([{"vector": i + 1, "5 nearest words": " ".join(tok.words[j] for j in ids0[i].tolist()),
        "cosine": cos0[i, 0].item(), "length": trained0[i].norm().item()}
       for i in range(S["n_tokens"])],
      f"seed {SEED_LIST[0]}'s trained reverse prompt (word embeddings' mean length "
      f"{wte.norm(dim=1).mean().item():.2f})", floatfmt="{:.2f}",
      notes={"cosine": "cosine similarity to the nearest word embedding"})

closeness, task_words = {"before": [], "after": []}, {"before": [], "after": []}
for seed in SEED_LIST:
    after = runs[seed]["model"].tasks["reverse"].embeddings.detach()
    for when, vectors in (("before", runs[seed]["start"]), ("after", after)):
        cos, ids = neighbours(vectors)
        closeness[when].append(100 * cos[:, 0].mean().item())
        task_words[when].append(sum(tok.words[j] in REVERSE_ONLY for j in ids.flatten().tolist()))
table([{"seed": s, "cos before": b, "cos after": a, "task words before": float(wb),
        "task words after": float(wa)}
       for s, b, a, wb, wa in zip(SEED_LIST, closeness["before"], closeness["after"],
                                  task_words["before"], task_words["after"])],
      "each seed's prompt before and after training", floatfmt="{:.0f}",
      notes={"cos": "cosine x100 of each vector to its nearest word, mean over the vectors",
             "task words": f"reverse-only words among the {S['n_tokens']} x 5 neighbours"})
print("\nverdicts: after training vs the same vectors before it")
verdicts["toward words"] = verdict("cosine x100: after > before", closeness["after"],
                                   closeness["before"])
verdicts["task words"] = verdict("task words: after > before", task_words["after"],
                                 task_words["before"])

# %% [markdown]
# The cosine columns say whether any vector *became* a word; the word counts say whether the
# neighbourhood moved toward the task's vocabulary — a small-scale version of the semantic
# clusters Lester et al. saw. A vector can point toward "backwards" without being anywhere
# near it in length: a soft prompt lives in the embedding space but need not sit on a word.
#
# ## 4. Where the first input word looks
#
# Inside `common.attention_weights_kept` (`use_sdpa=False`) every attention layer computes
# softmax(QKᵀ/√d) written out and keeps it in `.weights` (B, heads, queries, keys). The first
# real token of the input can see only what is in front of it — the instruction's words, or the
# 8 virtual tokens — and itself. Below: its attention (mean over heads) per layer, for one test
# input, with the hard prompt "reverse the list :" and with seed 0's soft prompt. Then the share
# of attention on the prompt positions, averaged over each seed's test inputs.

# %%
def attention_rows(model, idx, n_prompt, **kw):
    """Per layer: the head-mean attention of the first input token (query n_prompt) over keys
    0..n_prompt, and the share that the last query ("=>") puts on the first n_prompt keys. A soft
    prompt is part of the sequence (its vectors are queries too), so the first input token is
    query n_prompt for a hard prompt of n_prompt tokens and for a soft prompt of n_prompt vectors
    alike."""
    with attention_weights_kept(base) as layers, torch.no_grad():
        model(idx, **kw)
        weights = [m.weights[0].mean(0) for m in layers]  # (queries, keys), mean over heads
    return [{"first": w[n_prompt, :n_prompt + 1].tolist(),
             "last_on_prompt": w[-1, :n_prompt].sum().item()} for w in weights]


SHADES = " ░▒▓█"


def heat(values, labels, title):
    """Rows = layers, columns = keys; each cell a shade (see the legend) and the weight."""
    width = max(6, *(len(label) for label in labels))
    print(f"\n{title}")
    print(" " * 7 + "".join(f" {label:>{width}}" for label in labels))
    for layer, row in enumerate(values):
        cells = [f"{SHADES[min(4, int(v * 5))] * 2}{v:4.2f}" for v in row]
        print(f"layer {layer}" + "".join(f" {c:>{width}}" for c in cells))


HARD = TASKS["reverse"].phrasings[0]
n_hard = len(tok.encode(f"{HARD} :"))
example = tests["reverse"][SEED_LIST[0]][0]
first_word = example.source.split()[0]
hard_rows = attention_rows(base, encode_prompts(tok, [prompt_text(example, HARD)])[0], n_hard)
soft_rows = attention_rows(runs[SEED_LIST[0]]["model"],
                           encode_prompts(tok, [prompt_text(example)])[0], S["n_tokens"],
                           task="reverse")
print("shades: " + ", ".join(f"'{SHADES[i] * 2}' {i / 5:.1f}-{(i + 1) / 5:.1f}"
                             for i in range(5)) + " (attention weight)")
heat([r["first"] for r in hard_rows], f"{HARD} :".split() + [first_word],
     f"hard prompt: attention of '{first_word}' (first input word), mean over heads")
heat([r["first"] for r in soft_rows], [f"P{i + 1}" for i in range(S["n_tokens"])] + [first_word],
     f"soft prompt (seed {SEED_LIST[0]}): attention of '{first_word}', mean over heads")

# %%
shares = {"hard": {}, "soft": {}}  # seed -> per layer: (first word on prompt, '=>' on prompt)
for seed in SEED_LIST:
    for kind in shares:
        per_input = []
        for e in tests["reverse"][seed]:
            if kind == "hard":
                rows = attention_rows(base, encode_prompts(tok, [prompt_text(e, HARD)])[0], n_hard)
            else:
                rows = attention_rows(runs[seed]["model"], encode_prompts(tok, [prompt_text(e)])[0],
                                      S["n_tokens"], task="reverse")
            per_input.append([(1 - r["first"][-1], r["last_on_prompt"]) for r in rows])
        shares[kind][seed] = [tuple(statistics.fmean(x[layer][i] for x in per_input)
                                    for i in range(2)) for layer in range(base.config.n_layer)]
table([{"layer": layer,
        **{f"{who}, {kind}": statistics.fmean(shares[kind][s][layer][i] for s in SEED_LIST)
           for i, who in enumerate(("first word", "'=>'")) for kind in ("hard", "soft")}}
       for layer in range(base.config.n_layer)],
      "share of attention on the prompt positions (0-1), mean over inputs and seeds",
      floatfmt="{:.2f}",
      notes={"first word": "the first input word's attention on the instruction / virtual tokens",
             "'=>'": "the same for the last token, '=>', whose output is the first answer word"})
layer_mean = {kind: [100 * statistics.fmean(l[0] for l in shares[kind][s]) for s in SEED_LIST]
              for kind in shares}
print(f"\nverdict: % of the first word's attention on the prompt, mean over layers "
      f"({S['n_tokens']} vectors vs {n_hard} words)")
verdicts["attention"] = verdict("soft > hard prompt", layer_mean["soft"], layer_mean["hard"])

# %% [markdown]
# The frozen model was never shown a virtual token, yet its attention finds the trained
# vectors in the slot where an instruction sits. The verdict compares how much of the first
# word's attention (mean over layers) lands on the prompt, soft against hard; the table shows
# where, layer by layer. Note the soft prompt has more positions than "reverse the list :" has
# tokens, so uniform attention alone would favour it.
#
# ## What the paper says, and what this run measured
#
# Lester et al. 2021 (arXiv 2104.08691v2, §1), on why hand-written prompts fall short: "Task
# description is error-prone and requires human involvement, and the effectiveness of a prompt
# is limited by how much conditioning text can fit into the model's input." Their answer
# (abstract): soft prompts "are learned through backpropagation and can be tuned to incorporate
# signals from any number of labeled examples."
#
# The wording effect here is measured in a world built to have it: a wording is either one the
# model met or not, so expect a larger spread than between two fluent paraphrases for a large
# model. The takeaway below is written from this run's verdicts.

# %%
def said(v):
    return f"{v.word} ({v.mean:+.1f}{v.unit})"


takeaway(
    *(f"seen vs held-out wordings, {task}, exact %: {said(verdicts[task])}" for task in TASK_NAMES),
    f"soft prompt ({trainable:,} numbers, no words) vs no instruction: "
    f"{said(verdicts['soft vs none'])}",
    f"soft prompt vs held-out wordings: {said(verdicts['soft vs held-out'])}",
    f"seen wordings vs the soft prompt: {said(verdicts['seen vs soft'])}",
    f"data_to_text, untrained random vectors vs no words: {said(verdicts['d2t random vs none'])}",
    f"trained vectors closer to words (cosine x100): {said(verdicts['toward words'])}",
    f"more reverse-only words among their neighbours: {said(verdicts['task words'])}",
    f"first word's attention on the prompt, soft vs hard: {said(verdicts['attention'])}",
)

# %% [markdown]
# ## Exercises
#
# 1. **A soft prompt made of words.** Build `SoftPrompt(base, 4, init=tok.encode("reverse the
#    list :"))`, put it on a `Tuned`, and do *not* train it. What must its reverse answers equal?
#    You should find the same answers as the "seen 1" row, and logits equal to float rounding.
#    Hint: the prompt's vectors are exactly the rows of `wte` the hard prompt looks up, at the
#    same positions (lesson 01).
# 2. **Attention is a distribution.** For one input with the hard prompt, sum the first input
#    word's weights over the prompt positions and itself, per layer and head. What must each sum
#    be, and why may it ignore the tokens after it? Hint: the causal mask; `attention_rows`.
# 3. **Start from words.** Replace `init="random"` by `init="vocab"` (sampled word embeddings)
#    and compare the loss curves and the seed-0 neighbour table. You should see a faster start
#    and vectors whose lengths stay near the words'. Hint: lesson 06 measures this on 3 seeds.
# 4. **Which instruction wins?** (open) Put the trained soft prompt in front of the hard prompt
#    "copy the list :" (pass `prompt_text(e, "copy the list")` to the tuned model). Does the model
#    reverse or copy? Count both, on every seed. Hint: compare each answer with the source's words
#    and with their reverse.
