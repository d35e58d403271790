"""Lesson 05 — hard prompts are brittle; a learned soft prompt needs no words at all.

The source article opens (its chapter 1) with the complaint that hand-written prompts are
brittle: the same request in other words ("summarize" vs "briefly summarize") gives answers of a
different quality. That example is an illustration; the article measures nothing. This lesson
measures the effect in the course's toy world, where we know exactly which wordings the model
met in pretraining:

1. The frozen small base (lessons/checkpoints/base_small.pt) is asked for three skills it
   learned — reverse a word list, copy it, turn restaurant facts into a sentence — under every
   phrasing of each instruction: the four phrasings seen in pretraining, the two held out of it
   (same meaning, never seen), and no instruction at all. A table shows the spread.
2. A soft prompt (Lester, Al-Rfou & Constant 2021, arXiv 2104.08691) of 8 vectors, initialised
   at random (so it starts from no word at all) and trained for a few seconds, takes the place
   of the instruction. It recovers the seen-phrasing scores without any words.
3. What the learned vectors are: no vocabulary word lies near them, and the attention of the
   frozen model shows the input reading them as it reads an instruction.

Run:  python lessons/05_hard_prompts_are_brittle.py [--fast | --full]
"""
# %% [markdown]
# # 05 · Hard prompts are brittle
#
# Every line of the toy world reads `<instruction> : <source> => <target> ;`. Pretraining used
# only the first four phrasings of each instruction (`TASKS[name].phrasings[:4]`); the last two
# mean the same but the model never met them. "No instruction" is the bare `<source> =>`, the
# slot where a soft prompt goes.

# %%
import statistics
import sys

import torch

from common import (TASKS, attention_weights_kept, evaluate, load_base, make_split, plot_curves,
                    seed_everything, setup, table, tune)
from minitx.data import encode_prompts
from toyworld import prompt_text
from minitx.tuning import SoftPrompt, Tuned

TASK_NAMES = ("reverse", "copy", "data_to_text")
SETTINGS = {  # test inputs, training inputs, tuning steps, learning rate, virtual tokens, seeds
    "fast": dict(n_test=8, n_train=16, steps=4, lr=0.02, n_tokens=8, seeds=(0,)),
    "default": dict(n_test=50, n_train=256, steps=100, lr=0.02, n_tokens=8, seeds=(0, 1)),
    "full": dict(n_test=200, n_train=512, steps=300, lr=0.02, n_tokens=8, seeds=(0, 1, 2)),
}


# %% [markdown]
# ## 1. The same instruction in seven wordings
#
# Exact match for the word lists; for data-to-text also BLEU and ROUGE-L, because it has three
# right sentences per input and a near miss ("the mill is a cheap thai restaurant" for "... a
# thai restaurant in the harbour") should not score like nonsense.

# %%
def phrasing_slots(task):
    """[(row label, instruction or None)]: the seen phrasings, the held-out ones, no words."""
    t = TASKS[task]
    return ([(f"seen {i + 1}", p) for i, p in enumerate(t.phrasings[:t.n_seen])]
            + [(f"held-out {i + 1}", p) for i, p in enumerate(t.phrasings[t.n_seen:])]
            + [("no instruction", None)])


def phrasing_table(base, tok, tests):
    """Rows = phrasing slots, columns = tasks (exact %; data_to_text also BLEU / ROUGE-L)."""
    rows = []
    for slot, _ in phrasing_slots(TASK_NAMES[0]):
        row = {"phrasing": slot}
        for task in TASK_NAMES:
            instruction = dict(phrasing_slots(task))[slot]
            m = evaluate(base, tok, task, tests[task], instruction)
            row[f"{task} exact"] = m["exact"]
            if task == "data_to_text":
                row["d2t BLEU"], row["d2t ROUGE-L"] = m["bleu"], m["rouge_l"]
        rows.append(row)
    return rows


# %% [markdown]
# ## 2. A soft prompt in the instruction's place
#
# `SoftPrompt(base, 8, init="random")`: 8 vectors of width 128 drawn uniformly from
# [-0.5, 0.5] — Lester et al.'s random baseline, chosen here on purpose: the prompt starts from no
# word at all. The input is the bare `<source> =>`; only the 1,024 prompt numbers train, on
# the answers' tokens, with AdamW (common.tune). The base stays frozen.

# %%
def train_soft_prompts(base, tok, s):
    """{task: [(tuned model, metrics, losses, metrics before training) per seed]}."""
    runs = {}
    for task in TASK_NAMES:
        examples = make_split(task, s["n_train"], "train")
        test = make_split(task, s["n_test"], "test")
        runs[task] = []
        for seed in s["seeds"]:
            seed_everything(seed)
            prompt = SoftPrompt(base, s["n_tokens"], init="random")
            untrained = Tuned(base)
            untrained.add(task, prompt)
            before = evaluate(untrained.eval(), tok, task, test)  # the random vectors, untrained
            tuned, result = tune(base, tok, prompt, examples, s["steps"], s["lr"], seed=seed,
                                 task=task)
            runs[task].append((tuned, evaluate(tuned, tok, task, test), result["losses"], before))
    return runs


def spread_rows(rows, runs):
    """Per task and metric: mean and min-max over the seen / held-out / all six wordings, the
    no-instruction score, and the soft prompt's mean and min-max over seeds."""
    out, numbers = [], {}
    metrics = [(t, f"{t} exact", "exact") for t in TASK_NAMES] + [
        ("data_to_text", "d2t BLEU", "bleu"), ("data_to_text", "d2t ROUGE-L", "rouge_l")]
    for task, column, key in metrics:
        seen = [r[column] for r in rows if r["phrasing"].startswith("seen")]
        held = [r[column] for r in rows if r["phrasing"].startswith("held-out")]
        none = [r[column] for r in rows if r["phrasing"] == "no instruction"][0]
        soft = [m[key] for _, m, _, _ in runs[task]]
        untrained = statistics.mean(b[key] for _, _, _, b in runs[task])
        n = dict(seen_mean=statistics.mean(seen), seen_min=min(seen), seen_max=max(seen),
                 held_out_mean=statistics.mean(held), worded_mean=statistics.mean(seen + held),
                 worded_min=min(seen + held), worded_max=max(seen + held), no_instruction=none,
                 soft_untrained=untrained, soft_mean=statistics.mean(soft), soft_min=min(soft),
                 soft_max=max(soft))
        numbers[column] = n
        out.append({"metric": column, "seen mean": n["seen_mean"],
                    "seen min-max": f"{n['seen_min']:.0f}-{n['seen_max']:.0f}",
                    "held-out mean": n["held_out_mean"], "all 6 mean": n["worded_mean"],
                    "all 6 min-max": f"{n['worded_min']:.0f}-{n['worded_max']:.0f}",
                    "no words": none, "soft, step 0": untrained, "soft mean": n["soft_mean"],
                    "soft min-max": f"{n['soft_min']:.0f}-{n['soft_max']:.0f}"})
    return out, numbers


# %% [markdown]
# ## 3. What did it learn? Not words.
#
# Lester et al. (§7) looked for the nearest vocabulary words of learned prompt vectors and found
# them mostly uninterpretable. Here: the cosine similarity of each learned vector to its nearest
# word embedding (a real word's is 1.0), and the vector's length against the words' mean length.

# %%
def nearest_words(base, tok, prompt):
    wte = base.transformer.wte.weight
    vectors = prompt.embeddings.detach()
    unit = torch.nn.functional.normalize
    cos = unit(vectors, dim=1) @ unit(wte, dim=1).T  # (n, vocab) cosine similarities
    best, ids = cos.max(dim=1)
    return [{"position": i + 1, "nearest word": tok.words[j], "cosine": c,
             "norm": v.norm().item()} for i, (j, c, v) in
            enumerate(zip(ids.tolist(), best.tolist(), vectors))], wte.norm(dim=1).mean().item()


# %% [markdown]
# ## 4. Where the first input word looks
#
# Inside `common.attention_weights_kept` (`use_sdpa=False`) every attention layer computes
# softmax(QKᵀ/√d) written out and keeps it in `.weights` (B, heads, queries, keys). The first
# real token of the input can see only what is in front of it — the instruction's words, or the
# 8 virtual tokens — and itself.
# Below: its attention (mean over heads) per layer, with the hard prompt "reverse the list :"
# and with the learned soft prompt; and the share that the "=>" token, which chooses the first
# answer word, puts on the prompt positions.

# %%
def attention_rows(model, base, idx, n_prompt, first, **kw):
    """Per layer: head-mean attention of query `first` over keys 0..first, and the share of the
    last query ("=>") on the first n_prompt keys. A soft prompt is part of the input sequence
    (its vectors are queries too), so the first real token is query n_prompt in both cases."""
    with attention_weights_kept(base) as layers, torch.no_grad():
        model(idx, **kw)
        weights = [m.weights[0].mean(0) for m in layers]  # (queries, keys), mean over heads
    return [{"first": w[first, :first + 1].tolist(),
             "last_on_prompt": w[-1, :n_prompt].sum().item()} for w in weights]


def heat(values, labels, title):
    shades = " ░▒▓█"
    print(f"\n{title}")
    print("        " + " ".join(f"{l[:6]:>6}" for l in labels))
    for layer, row in enumerate(values):
        cells = " ".join(f"{shades[min(4, int(v * 5))] * 2}{v:4.2f}" for v in row)
        print(f"layer {layer}  {cells}")


# %%
def main(fast=False, full=False):
    setup(seed=0)
    s = SETTINGS["fast" if fast else "full" if full else "default"]
    base, tok = load_base("small")
    tests = {t: make_split(t, s["n_test"], "test") for t in TASK_NAMES}
    results = {"settings": s}

    rows = table(phrasing_table(base, tok, tests),
                 f"frozen small base, {s['n_test']} test inputs per task, greedy (%)")
    table([{"phrasing": slot, **{t: dict(phrasing_slots(t))[slot] or "-" for t in TASK_NAMES}}
           for slot, _ in phrasing_slots(TASK_NAMES[0])], "the wordings behind each row")
    results["phrasings"] = rows

    # %% [markdown]
    # The seen wordings work (the fourth reverse wording, not quite); the held-out ones, which
    # mean the same, mostly do not; no instruction fails on the word lists, because reverse and
    # copy share their inputs and nothing says which to do. data_to_text keeps partial credit
    # without words (high BLEU, low exact): its input format alone names the task, the
    # phrasing of the sentence is what goes astray.

    # %%
    runs = train_soft_prompts(base, tok, s)
    spread, numbers = spread_rows(rows, runs)
    table(spread, f"spread across wordings vs a soft prompt ({s['n_tokens']} random-init "
                  f"vectors, no words in the input; {s['steps']} steps; "
                  f"{len(s['seeds'])} seed(s))")
    results["spread"], results["spread_numbers"] = spread, numbers
    trainable = s["n_tokens"] * base.config.n_embd
    results["soft_prompt_params"] = trainable
    print(f"soft prompt: {s['n_tokens']} x {base.config.n_embd} = {trainable:,} trainable numbers "
          f"per task; the frozen base has {sum(p.numel() for p in base.parameters()):,}")
    plot_curves({f"{t} (seed {s['seeds'][0]})": runs[t][0][2] for t in TASK_NAMES},
                "05_soft_prompt_loss")
    results["final_losses"] = {t: runs[t][0][2][-1] for t in TASK_NAMES}

    # %% [markdown]
    # Read "soft, step 0" before "soft mean": it scores the random, *untrained* vectors. On the
    # word lists they score 0, like no instruction, and training alone brings them to the seen
    # wordings' level: that is the soft prompt finding the instruction. On data_to_text the
    # untrained vectors already score high (when this lesson was written: 88% exact against 8%
    # with no instruction; the loss curve above stays flat): its input format names the task,
    # and what the bare input lacked was *anything* in the instruction slot. So only reverse and
    # copy show learning here; data_to_text shows how much the model relies on the line's shape.

    # %%
    tuned = runs["reverse"][0][0]
    prompt = tuned.tasks["reverse"]
    near, word_norm = nearest_words(base, tok, prompt)
    table(near, f"reverse soft prompt: nearest vocabulary word of each vector "
                f"(word embeddings' mean norm {word_norm:.2f})", floatfmt="{:.2f}")
    results["nearest"], results["word_norm"] = near, word_norm

    # %% [markdown]
    # No vector is close to a word (cosines far below 1), and all are longer than any word
    # embedding — they started so (a uniform [-0.5, 0.5] vector of width 128 has norm ~3.3) and
    # stayed so. When this lesson was written a couple of them leaned towards "reverse" and
    # "backwards", at cosine below 0.5: a hint of the task's words, not a word.

    # %%
    example = tests["reverse"][0]
    hard = TASKS["reverse"].phrasings[0]
    n_hard = len(tok.encode(f"{hard} :"))
    idx, _ = encode_prompts(tok, [prompt_text(example, hard)])
    hard_rows = attention_rows(base, base, idx, n_hard, first=n_hard)
    idx, _ = encode_prompts(tok, [prompt_text(example)])
    soft_rows = attention_rows(tuned, base, idx, s["n_tokens"], first=s["n_tokens"],
                               task="reverse")
    first_word = example.source.split()[0]
    heat([r["first"] for r in hard_rows], f"{hard} :".split() + [first_word],
         f"hard prompt: attention of '{first_word}' (first input word)")
    heat([r["first"] for r in soft_rows], [f"P{i + 1}" for i in range(s["n_tokens"])]
         + [first_word], f"soft prompt: attention of '{first_word}' (first input word)")
    share = [{"layer": l, "first word on prompt, hard": 1 - h["first"][-1],
              "first word on prompt, soft": 1 - p["first"][-1],
              "'=>' on prompt, hard": h["last_on_prompt"],
              "'=>' on prompt, soft": p["last_on_prompt"]}
             for l, (h, p) in enumerate(zip(hard_rows, soft_rows))]
    table(share, "share of attention on the prompt positions (0-1)", floatfmt="{:.2f}")
    results["attention"] = share

    # %% [markdown]
    # The first input word reads the virtual tokens much as it reads the instruction: most of
    # its attention in the lower layers goes to the prompt positions, and (when this lesson was
    # written) in layers 1-2 it concentrated on one of them, as it does on "list" under the
    # hard prompt. The frozen model was never shown a virtual token; the trained vectors simply
    # sit where its attention already looks for an instruction.

    # %% [markdown]
    # ## What the papers say, and what this lesson measured
    #
    # Lester et al. 2021 (arXiv 2104.08691v2, §1), on why hand-written prompts fall short:
    # "Task description is error-prone and requires human involvement, and the effectiveness of
    # a prompt is limited by how much conditioning text can fit into the model's input." Their
    # answer (abstract): "soft prompts are learned through backpropagation and can be tuned to
    # incorporate signals from any number of labeled examples."
    #
    # The article's "summarize" vs "briefly summarize" is an illustration, not a measurement.
    # Here the wording effect is measured, in a world built to have it: a wording is either one
    # the model met or not, so the spread is far larger than between two fluent English
    # paraphrases for a large model. The soft prompt's recovery is the real finding: a few
    # seconds of gradient descent on 1,024 numbers, started from no word, finds an input the
    # frozen model treats as the instruction — though its vectors are near no word (section 3).

    # %%
    print("\npaper (Lester et al. 2021, arXiv 2104.08691v2, §1): \"Task description is "
          "error-prone and requires human involvement, ...\"")
    for column, n in numbers.items():
        print(f"measured, {column:>18}: wordings mean {n['worded_mean']:5.1f} "
              f"(min-max {n['worded_min']:.0f}-{n['worded_max']:.0f}), no words "
              f"{n['no_instruction']:5.1f}; soft prompt {n['soft_mean']:5.1f} "
              f"(min-max {n['soft_min']:.0f}-{n['soft_max']:.0f}); seen wordings "
              f"{n['seen_mean']:5.1f}")
    return results


if __name__ == "__main__":
    main(fast="--fast" in sys.argv, full="--full" in sys.argv)
