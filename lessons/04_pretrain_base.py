"""Lesson 04 — a base model to tune: pretraining on the synthetic corpus.

Prompt and prefix tuning do not teach a model from nothing: they steer a pretrained model whose
weights stay frozen. So the course needs a pretrained base. Ours learns a toy world
(lessons/toyworld.py): lines such as

    reverse the list : navy white 2 shirt => shirt 2 white navy ;

in which several skills (sentiment, data-to-text, reversing and copying word lists, routing a
customer query) are asked for in words, each with four pretrained phrasings. Later lessons tune
soft prompts and prefixes on this frozen model.

Default run (under a minute): pretrain the *tiny* base for a few hundred steps, so you can watch the
loss fall, then load the committed *small* base and measure what it can do with its pretrained
instructions. `--full` retrains the three committed checkpoints (tiny, small, medium) from scratch
into lessons/checkpoints/ (minutes; same seeds, so the same models up to floating-point rounding
between machines and thread counts). `--fast` is the test suite's few-second version.
"""
# %%
import sys
import time


from common import (CHECKPOINTS, OUT, SIZES, TASKS, evaluate, load_base, make_split, plot_curves,
                    pretrain, save_base, setup, table)

# %% [markdown]
# ## How pretraining sees the corpus
# The corpus lines are packed into rows of 96 tokens that start at a line start; the loss counts
# only the answers (the words after "=>", and the ";" that ends them): the model must learn to
# read an instruction and an input and write the answer. Because a row holds several lines, the
# model meets every task at many positions — as it will later, behind a prefix of P keys whose
# real tokens start at position P.

# %%
PRETRAIN_STEPS = {"tiny": 1500, "small": 1500, "medium": 1500}  # what --full runs


def skills(model, tok, n=64):
    """Exact-match / accuracy of the frozen base on each pretrained task, first phrasing."""
    rows = []
    for name, task in TASKS.items():
        if not task.in_pretraining:
            continue
        examples = make_split(name, n, "test")
        metrics = evaluate(model, tok, name, examples, task.phrasings[0])
        rows.append({"task": name, "instruction": task.phrasings[0],
                     "score %": metrics.get("accuracy", metrics.get("exact"))})
    return rows


def main(fast=False, full=False):
    setup(seed=0)
    results = {}
    if full:
        for size in SIZES:
            start = time.perf_counter()
            model, tok, result = pretrain(size, PRETRAIN_STEPS[size])
            save_base(model, tok, CHECKPOINTS / f"base_{size}.pt")
            n_params = sum(p.numel() for p in model.parameters())
            print(f"{size}: {n_params:,} parameters, final loss {result['losses'][-1]:.3f}, "
                  f"{time.perf_counter() - start:.0f} s -> {CHECKPOINTS / f'base_{size}.pt'}")
    # %% [markdown]
    # ## Watching a base learn
    # A short run of the tiny model: the answer loss falls as it learns the formats, then the
    # skills. (Its checkpoint goes to lessons/out/, not over the committed one.)

    # %%
    steps = 30 if fast else 300
    start = time.perf_counter()
    demo, tok, result = pretrain("tiny", steps, log=lambda *a, **k: None)
    seconds = time.perf_counter() - start
    OUT.mkdir(exist_ok=True)
    save_base(demo, tok, OUT / "base_tiny_demo.pt")
    losses = result["losses"]
    plot_curves({"tiny base, answer loss": losses}, "04_pretraining_loss")
    print(f"{steps} steps in {seconds:.1f} s: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    results["demo_losses"] = (losses[0], losses[-1])

    # %% [markdown]
    # ## What the committed small base can do
    # Frozen, asked with its first pretrained phrasing, on test inputs it never saw (the splits
    # are disjoint by a hash of the input, and pretraining used train inputs only).

    # %%
    base, tok = load_base("small")
    rows = table(skills(base, tok, n=16 if fast else 64), "frozen small base, test inputs")
    results["skills"] = rows
    return results


if __name__ == "__main__":
    main(fast="--fast" in sys.argv, full="--full" in sys.argv)
