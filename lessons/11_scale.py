"""Lesson 11 — does the gap between prompt tuning and full fine-tuning close with model size?

Lester, Al-Rfou & Constant 2021 ("The Power of Scale for Parameter-Efficient Prompt Tuning",
arXiv 2104.08691) tuned soft prompts on T5 models from hundreds of millions of parameters up to
T5-XXL (11B) and compared them with tuning every weight ("model tuning"). Their Figure 1 — a plot,
no table — shows prompt tuning far behind on the small models and the gap closing as the model
grows, until at 11B prompt tuning matches model tuning with >20,000x fewer task parameters.

The course has three base models, pretrained the same way on the same toy corpus (lesson 04):
tiny (2 layers x 64 wide), small (4 x 128) and medium (6 x 160) — 0.13M, 0.84M and 1.9M
parameters, two to five orders of magnitude below the paper's models. This lesson gives each the
same tasks and the same budget, tunes a soft prompt and, separately, every weight, and prints the
gap per size, with a text scale curve. It says plainly whether the paper's effect shows at this
scale.

Run:  python lessons/11_scale.py [--fast | --full]
Default: 50 steps, 2 seeds, under a minute on an idle 2-core CPU. --full: 200 steps, 4 seeds,
100 test inputs, and the paper's initialisation ablation (random / vocabulary / text) per size.
A size whose checkpoint (lessons/checkpoints/base_<size>.pt) is missing is skipped with a note;
`python lessons/04_pretrain_base.py --full` makes all three.
"""
# %% [markdown]
# # 10 · Prompt tuning and scale
#
# Two tasks, both asked **without an instruction** — the soft prompt (or the fine-tuned weights)
# must do what the instruction did:
#
# * **reverse** ("navy white 2 shirt =>" -> "shirt 2 white navy"): every base was pretrained on
#   it, with instructions. A prompt only has to *activate* a skill the model has — the situation
#   of the paper's SuperGLUE tasks, which lean on what pretraining taught. The column "frozen,
#   instructed" shows how good that skill is when asked in a pretrained phrasing: the most a
#   prompt can hope to switch on.
# * **first_last** ("navy white 2 shirt =>" -> "shirt navy", --full only): never pretrained. The
#   model has to learn a new mapping — *capacity*.
#
# Scored by exact match on unseen inputs (BLEU is useless on two-word answers: no 4-grams).
#
# The soft prompt has 10 tokens initialised from sampled vocabulary embeddings (the paper's middle
# option), drawn anew for every seed. Initialising it from the task's own pretrained instruction
# ("reverse the list") would hand the prompt the answer before the first step.
#
# Learning rates: 3e-2 for the prompt (as in lesson 09) and 1e-3 for full fine-tuning (on the
# validation split of reverse at the small size, 3e-3 — the pretraining rate, which lesson 09's
# task preferred — did worse). The paper: 0.3 for prompts, 0.001 for model tuning; a prompt wants
# larger steps. The same number of steps, batch and examples for every size.

# %%
import statistics
import sys
import time

from common import (CHECKPOINTS, OUT, SIZES, evaluate, full_finetune, load_base, make_split,
                    seed_everything, setup, table, tune)
from toyworld import TASKS
from minitx.tuning import SoftPrompt, count_parameters

N_VIRTUAL = 10
LR = {"prompt tuning": 3e-2, "full fine-tuning": 1e-3}
MODES = {  # tasks, steps, training examples, test inputs, seeds
    "default": dict(tasks=["reverse"], steps=100, n_train=512, n_test=50, seeds=[0, 1]),
    "fast": dict(tasks=["reverse", "first_last"], steps=3, n_train=32, n_test=8, seeds=[0]),
    "full": dict(tasks=["reverse", "first_last"], steps=200, n_train=512, n_test=100,
                 seeds=[0, 1, 2, 3]),
}


# %% [markdown]
# ## Which sizes are there
#
# `load_base` reads a committed checkpoint. The lesson runs on whatever subset exists and says
# which sizes it skipped; the scale curve needs at least two sizes to mean anything.


# %%
def available_sizes():
    present = [s for s in SIZES if (CHECKPOINTS / f"base_{s}.pt").exists()]
    for s in SIZES:
        if s not in present:
            print(f"note: no lessons/checkpoints/base_{s}.pt — size {s!r} skipped "
                  f"(make it with `python lessons/04_pretrain_base.py --full`)")
    return present


# %% [markdown]
# ## One size, one task: prompt tuning vs full fine-tuning
#
# `common.tune` trains the soft prompt on the frozen base; `common.full_finetune` trains a copy
# of every weight. Both see the same batches in the same order for a given seed; the seed also
# draws the soft prompt's initial vectors (the paper's seeds vary both, too).


# %%
def score(model, tok, task, test, instruction=None):
    metrics = evaluate(model, tok, task, test, instruction,
                       max_new_tokens=8)  # answers are at most 7 tokens, ';' included
    return {"exact": metrics["exact"], "rouge_l": metrics["rouge_l"]}


def compare(base, tok, task, steps, seeds, n_train, n_test):
    train_set, test = make_split(task, n_train, "train"), make_split(task, n_test, "test")
    result = {"frozen": score(base, tok, task, test), "prompt tuning": [], "full fine-tuning": [],
              "instructed": score(base, tok, task, test, TASKS[task].phrasings[0])}
    for seed in seeds:
        seed_everything(1000 + seed)  # the prompt's initial vectors
        prompt = SoftPrompt(base, N_VIRTUAL, init="vocab")
        tuned, _ = tune(base, tok, prompt, train_set, steps, LR["prompt tuning"], seed=seed,
                        task=task)
        result["prompt tuning"].append(score(tuned, tok, task, test))
        model, _ = full_finetune(base, tok, train_set, steps, LR["full fine-tuning"], seed=seed)
        result["full fine-tuning"].append(score(model, tok, task, test))
    return result


def summary(values):
    return statistics.mean(values), min(values), max(values)


def size_row(size, base, r):
    """One table row: the size, the two methods' exact match (mean and range over seeds) and
    the gap full FT - prompt, also per seed (the same seed's batches for both methods)."""
    prompt = [s["exact"] for s in r["prompt tuning"]]
    tuned = [s["exact"] for s in r["full fine-tuning"]]
    gaps = [f - p for f, p in zip(tuned, prompt)]
    n, c = count_parameters(base)[1], base.config
    return {"size": size, "shape": f"{c.n_layer}x{c.n_embd}", "params": n,
            "prompt %": 100 * N_VIRTUAL * c.n_embd / n,
            "frozen, instructed": r["instructed"]["exact"], "frozen exact": r["frozen"]["exact"],
            "prompt exact": statistics.mean(prompt),
            "prompt range": f"{min(prompt):.0f}-{max(prompt):.0f}",
            "full FT exact": statistics.mean(tuned),
            "full FT range": f"{min(tuned):.0f}-{max(tuned):.0f}",
            "gap": statistics.mean(gaps), "gap range": f"{min(gaps):+.0f}..{max(gaps):+.0f}",
            "gaps": gaps,
            "prompt ROUGE-L": statistics.mean(s["rouge_l"] for s in r["prompt tuning"]),
            "full FT ROUGE-L": statistics.mean(s["rouge_l"] for s in r["full fine-tuning"])}


def verdict(rows):
    """Does the gap close from the smallest size to the largest? Only when every seed's gap at
    the largest size is below every seed's gap at the smallest (the ranges do not overlap)."""
    if len(rows) < 2:
        return "needs two sizes or more"
    small, large = rows[0]["gaps"], rows[-1]["gaps"]
    trend = ("closes" if max(large) < min(small) else "widens" if min(large) > max(small)
             else "no clear trend (the seeds' ranges overlap)")
    path = " -> ".join(f"{r['gap']:+.1f} ({r['size']})" for r in rows)
    return f"mean gap {path}: {trend}"


# %% [markdown]
# ## A text scale curve
#
# One bar per size and method (exact match, 0–100%), and the gap. Printed always; a PNG too when
# matplotlib is installed (lessons/out/11_scale.png, parameters on a log axis as in the paper).


# %%
def text_curve(rows, task, width=40):
    print(f"\n{task}: exact match by model size (each '#' = {100 / width:.1f}%)")
    for r in rows:
        for method, key in (("prompt", "prompt exact"), ("full FT", "full FT exact")):
            bar = "#" * round(r[key] / 100 * width)
            label = f"{r['size']} ({r['params'] / 1e6:.2f}M)" if method == "prompt" else ""
            print(f"  {label:<15} {method:<7} |{bar:<{width}}| {r[key]:5.1f}")
        print(f"  {'':<15} gap     {r['gap']:+.1f} points")


def png_curve(results):
    """Exact match against parameter count (log axis), one panel per task; None without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), squeeze=False)
    for ax, (task, rows) in zip(axes[0], tasks.items()):
        x = [r["params"] for r in rows]
        for key, label in (("prompt exact", "prompt tuning"),
                           ("full FT exact", "full fine-tuning")):
            ax.plot(x, [r[key] for r in rows], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{n / 1e6:.2f}M" for n in x], minor=False)  # one label per base
        ax.minorticks_off()
        ax.set(title=task, xlabel="parameters", ylabel="exact match %", ylim=(-5, 105))
        ax.legend()
    OUT.mkdir(exist_ok=True)
    path = OUT / "11_scale.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"(plot saved to {path})")
    return path


# %% [markdown]
# ## What the paper and the article say
#
# Quoted from FACTS.md (paper: Lester et al. 2021, arXiv 2104.08691):
#
# * "Scale: the gap to full model tuning closes as the model grows (only plotted, no table); at
#   T5-XXL (11B) prompt tuning matches model tuning with >20,000x fewer task parameters."
# * "Length {1,5,20,100,150}: more than one token is critical except at XXL; beyond 20 gains are
#   marginal; beyond 100 slightly harmful for large models."
# * "Init: random uniform [-0.5, 0.5] < sampled vocabulary (5,000 most common tokens) < class
#   labels; the gaps are large for small models and vanish at XXL."
#
# The article (SEED_OUTLINE.md ch. 3) turns this into "above ~10B parameters the prompt length and
# initialisation stop mattering and prompt tuning approaches full fine-tuning; below ~7B choose
# length 20–50 and initialise from real word embeddings". The direction is the paper's; the
# thresholds are not: the paper measured five T5 sizes and saw length and init stop mattering at
# the largest one, 11B (XXL). It has no ~7B or ~10B model, so "~7B" and "~10B" are the
# article's interpolations, not measurements.


# %%
PAPER_QUOTE = ("paper (Lester et al. 2021, arXiv 2104.08691, Figure 1, plotted only): the gap to "
               "model tuning closes with size; at T5-XXL (11B) prompt tuning matches model tuning")


def main(fast=False, full=False):
    setup(0)
    start = time.process_time()
    mode = MODES["fast" if fast else "full" if full else "default"]
    sizes = available_sizes()
    results = {"sizes": sizes, "mode": mode, "lr": LR, "n_virtual": N_VIRTUAL, "tasks": {}}
    bases = {size: load_base(size) for size in sizes}
    for task in mode["tasks"]:
        rows = []
        for size in sizes:
            base, tok = bases[size]
            r = compare(base, tok, task, mode["steps"], mode["seeds"], mode["n_train"],
                        mode["n_test"])
            rows.append(size_row(size, base, r))
        table([{k: v for k, v in row.items() if k != "gaps"} for row in rows],
              f"{task}, no instruction: {mode['steps']} steps of 16, {mode['n_train']} "
              f"examples, {mode['n_test']} test inputs, {len(mode['seeds'])} seed(s); "
              f"gap = full FT - prompt (exact-match points)")
        text_curve(rows, task)
        results["tasks"][task] = rows
    results["png"] = png_curve(results) if sizes else None

    # %% [markdown]
    # ## Does the gap close?
    # The verdict is computed, not written in advance: per task, the gap of every seed at the
    # largest size present against the gap of every seed at the smallest.

    # %%
    print(f"\n{PAPER_QUOTE}")
    results["verdicts"] = {task: verdict(rows) for task, rows in results["tasks"].items()}
    for task, text in results["verdicts"].items():
        print(f"measured, {task}: {text}")

    # %% [markdown]
    # ## --full: does the initialisation stop mattering with size?
    # The paper: random < sampled vocabulary < class labels, with large gaps for small models
    # that vanish at XXL. Here, on *reverse*, per size: uniform [-0.5, 0.5], sampled vocabulary,
    # and the text of an instruction phrasing the base was never pretrained on ("turn the list
    # around": 0% exact as a hard prompt), so it names the task without giving the answer away.

    # %%
    if full:
        rows = []
        for size in sizes:
            base, tok = bases[size]
            row = {"size": size}
            for name, init in (("random", "random"), ("vocab", "vocab"),
                               ("text", tok.encode(TASKS["reverse"].phrasings[-1]))):
                scores = init_run(base, tok, "reverse", init, mode)
                row[f"{name} exact"] = statistics.mean(scores)
                row[f"{name} range"] = f"{min(scores):.0f}-{max(scores):.0f}"
            rows.append(row)
        table(rows, f"reverse, prompt tuning by initialisation ({len(mode['seeds'])} seeds, "
              f"{mode['steps']} steps)")
        results["init"] = rows
    results["cpu_seconds"] = time.process_time() - start
    print(f"\n{results['cpu_seconds']:.1f} CPU-seconds")
    return results


def init_run(base, tok, task, init, mode):
    """Exact match of a prompt with this init, one per seed (--full)."""
    train_set = make_split(task, mode["n_train"], "train")
    test = make_split(task, mode["n_test"], "test")
    scores = []
    for seed in mode["seeds"]:
        seed_everything(1000 + seed)
        tuned, _ = tune(base, tok, SoftPrompt(base, N_VIRTUAL, init=init), train_set,
                        mode["steps"], LR["prompt tuning"], seed=seed, task=task)
        scores.append(score(tuned, tok, task, test)["exact"])
    return scores


# %% [markdown]
# ## Reading the result honestly
#
# What the measurements say, and what separates them from the paper's:
#
# * **Scale.** 0.13M–1.9M parameters is two to five orders of magnitude below the paper's models
#   (11B is ~6,000x the medium base); its curve only meets model tuning at 11B. Nothing here
#   can confirm or refute what happens there.
# * **What the gap is made of.** When this lesson was written, the default run (reverse, 100
#   steps) gave a gap of ~45 points at tiny and about zero at small and medium, every seed
#   agreeing: the gap closes. Now look at "frozen, instructed": the tiny base reverses ~80% of the
#   inputs when asked in a pretrained phrasing, yet the tuned soft prompt switches the skill on
#   for only ~20–35% of them, while full fine-tuning gets ~70%. On the small and medium bases the
#   prompt reaches the instructed ceiling. So the smallest model is the hardest to *steer*, even
#   toward a skill it has — the paper's effect in miniature. But at this scale it looks like a
#   threshold crossed between two sizes, not a smooth curve, and it is one skill on one task.
# * **Initialisation (--full).** When written: on the tiny base, random < sampled vocabulary <
#   text (means ~10 / ~27 / ~32% exact, the first two ranging from 0 to ~40% over the seeds); on
#   the small and medium bases all three reach 100%. The paper's ordering, and its "init stops
#   mattering with scale" — here already at 0.84M parameters, for a skill this simple. That is
#   the direction of the article's claim; its thresholds (~7B, ~10B) are not measurements.
# * **A new skill (--full).** On first_last full fine-tuning reaches 100% at every size. Prompt
#   tuning learns part of the mapping given 200 steps — so a soft prompt in front of a frozen
#   network *can* buy some new computation — but its result swings from near 0% to near 100%
#   with the seed (the initial prompt) at the tiny and medium sizes; the verdict was "no clear
#   trend". A task the base never learned is where a prompt depends most on where it starts.
# * **Same budget, different models.** Every size gets the same steps and learning rates; a
#   bigger model may want different ones. The paper tuned each size for 30,000 steps.
#
# So the toy world reproduces the *mechanism* behind the paper's curve — a prompt steers what the
# frozen model already computes, and a better pretrained model computes more — but not the curve
# itself, and nothing about 11B. The verdict lines your run prints are the lesson's answer.


# %%
if __name__ == "__main__":
    main(fast="--fast" in sys.argv, full="--full" in sys.argv)
