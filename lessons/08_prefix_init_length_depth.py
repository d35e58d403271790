"""Lesson 08: three knobs of prefix tuning — how the prefix starts, how long it is, which
layers carry it.

Li & Liang 2021 ("Prefix-Tuning: Optimizing Continuous Prompts for Generation", arXiv
2101.00190; numbers from the ACL 2021 version) study all three:

(a) Initialisation: setting the prefix to the activations of real words matters a lot in
    low-data settings and not with full data, and task-relevant words ("table-to-text",
    "summarize") beat unrelated ones, which still beat random.
(b) Length: quality rises with the prefix length up to a point (~10 for table-to-text,
    ~200 for summarization), then dips slightly; the chosen lengths were small (E2E 5).
(c) Depth (full vs embedding-only): a prefix on every layer beats a prefix on the
    input embeddings only (= prompt tuning). P-tuning v2 (Liu et al., arXiv 2110.07602) found
    that prompts on the upper layers matter more than on the lower ones. The source article adds
    "keeping only the first-layer prefix drops ROUGE-L by 4.7" — no such ablation exists in the
    paper; this lesson measures the first-layer-only prefix itself.

Everything runs on the course's frozen base model (4 layers x 128) with minitx's `Prefix`:
`init_from_tokens` for (a), `length` for (b), `layers=[...]` for (c), and `SoftPrompt` for the
input-only row. Every number is measured here, over several seeds, mean and min-max.

Run:  python lessons/08_prefix_init_length_depth.py [--fast | --full]
Default: ~30-40 CPU-seconds on one thread; --fast: a few seconds (the tests); --full (~9
minutes): more seeds, steps and lengths, and a second task (returns) scored with BLEU / ROUGE-L.
"""
# %% [markdown]
# # 08 · Prefix initialisation, length and depth
#
# All prefixes here are reparameterized as in the paper, P = MLP(P′), with a hidden width of
# mid = 128 and learning rate 5e-3. (Lesson 07: the MLP multiplies the effective step size by up
# to ~mid, so its good learning-rate window moves with mid; a quarter of lesson 07's mid = 512
# takes a few times its 1e-3.) AdamW, warmup and cosine decay, clipping 1.0, batches of 8 —
# minitx's `train` through `common.tune`.

# %%
import statistics
import sys

from common import Stopwatch, evaluate, load_base, setup, table, tune
from toyworld import make_split
from minitx.tuning import Prefix, SoftPrompt, Tuned, count_parameters

MID, LR, SOFT_LR, BATCH = 128, 5e-3, 3e-2, 8


def measure(base, tok, task, make, train_set, test_set, steps, seeds, lr=LR):
    """Train `make()` for each seed; return the test metrics of every run and the trainable
    (during training) and kept (after export) parameter counts."""
    runs = []
    for seed in seeds:
        setup(seed)
        method = make()
        tuned, _ = tune(base, tok, method, train_set, steps, lr, batch_size=BATCH, seed=seed)
        runs.append(evaluate(tuned, tok, task, test_set))
    kept = method.export() if isinstance(method, Prefix) else method
    return runs, count_parameters(method)[0], count_parameters(kept)[0]


def spread(runs, key):
    values = [r[key] for r in runs]
    return {f"{key} mean": statistics.mean(values), "min": min(values), "max": max(values)}


# %% [markdown]
# ## (a) Initialising the prefix from real words
#
# `Prefix.init_from_tokens(model, ids)` runs the frozen model on the words and copies the keys
# and values it computes into the prefix (with the MLP: it solves the MLP's last layer so that
# the MLP outputs exactly those keys and values). For a prefix as long as the phrase, the
# prefix *is* the hard prompt: "reverse the list :" as a prefix in front of "red blue green =>"
# computes exactly what the model computes for "reverse the list : red blue green =>"
# (lesson 03 proves the equality). So task-relevant words start where a good hard prompt is.
#
# Task: reverse *without* an instruction (the frozen model: 0%), trained on only 16 examples
# (low data) or on 256. Three starts for the same 4-position prefix: the words of the
# pretrained instruction "reverse the list :", unrelated real words ("the coffee was lovely",
# a review), and the MLP's own random initialisation (PyTorch defaults; the paper's random
# baseline was a uniform draw — a different random, the same role). A second case asks whether
# the task's *own* wording helps when the model never learned it: first_last, initialised from
# "say the last word then the first word :" — real, relevant words whose meaning this model
# never saw.


# %%
INIT_CASES = [  # task, relevant words, unrelated words (same number of tokens)
    ("reverse", "reverse the list :", "the coffee was lovely"),
    ("first_last", "say the last word then the first word :",
     "the coffee was lovely but the staff was awful"),
]


def init_study(base, tok, cases, sizes, seeds, n_test=50):
    """For each (task, data size, init): exact match at step 0 and after training."""
    rows = []
    for task, relevant, unrelated in cases:
        length = len(tok.encode(relevant))
        test_set = make_split(task, n_test, "test")
        hard = evaluate(base, tok, task, test_set, relevant.rstrip(" :"))["exact"]
        bare = evaluate(base, tok, task, test_set)["exact"]
        print(f"{task}: the frozen model with the hard prompt '{relevant}' scores {hard:.0f}% "
              f"exact; with no instruction {bare:.0f}%")
        for n_train, steps in sizes[task]:
            train_set = make_split(task, n_train, "train")
            run_seeds = seeds if n_train <= 32 else seeds[:2]  # the spread lives in low data
            for init, words in (("task words", relevant), ("unrelated words", unrelated),
                                ("random", None)):
                start, errors = [], []

                def make():
                    prefix = Prefix(base, length, mid=MID)
                    if words is not None:
                        errors.append(prefix.init_from_tokens(base, tok.encode(words)))
                    probe = Tuned(base)
                    probe.add("task", prefix)
                    start.append(evaluate(probe, tok, task, test_set)["exact"])
                    return prefix

                runs, _, _ = measure(base, tok, task, make, train_set, test_set, steps, run_seeds)
                rows.append({"task": task, "train examples": n_train, "steps": steps,
                             "seeds": len(run_seeds),
                             "init": init, "words": words or "-",
                             "step-0 exact": statistics.mean(start), **spread(runs, "exact"),
                             "init mse": max(errors) if errors else float("nan"),
                             "hard prompt": hard, "no instruction": bare})
    hidden = ("init mse", "hard prompt", "no instruction")
    table([{k: v for k, v in r.items() if k not in hidden} for r in rows],
          f"(a) initialisation: exact match % on {n_test} test inputs (mean, min, max over seeds)")
    return rows


# %% [markdown]
# ## (b) Prefix length and (c) which layers carry it
#
# Task: first_last without an instruction ("chair 4 can paint phone knife =>" gives "knife
# chair"), never pretrained, so the prefix must supply the skill — 256 training examples.
# Metrics: exact match and ROUGE-L (the longest common subsequence; partly right answers get
# partial credit). BLEU is left out for this task: its answers are two words long and BLEU-4
# needs 4-grams (it is 0 for every system). `--full` adds the returns task ("can i return the
# grey camera i bought =>" gives "yes you can return the grey camera within 14 days"), whose
# long answers BLEU can score.
#
# Depth: with the prefix length fixed at 10, the prefix sits on all 4 layers, on the top half
# (layers 2-3), on the bottom half (layers 0-1), on layer 0 alone (the source article's
# "first-layer prefix"), or nowhere but the input embeddings — a `SoftPrompt` of 10 virtual
# tokens, Li & Liang's "embedding-only" ablation (direct parameters, uniform init in
# [-0.5, 0.5], learning rate 3e-2: a soft prompt has no MLP to enlarge its steps, so it needs a
# larger learning rate; Lester et al. used 0.3).
# The "kept" column counts what is saved after `export()`: 2 · layers · P · d for a prefix,
# P · d for the soft prompt.


# %%
METRICS = {"first_last": ("exact", "rouge_l"), "returns": ("exact", "bleu", "rouge_l")}


def sweep_row(label, runs, trained, kept, metrics):
    row = {"prefix": label, "trained": trained, "kept": kept, **spread(runs, metrics[0])}
    row.update({f"{m} mean": statistics.mean(r[m] for r in runs) for m in metrics[1:]})
    row["per seed"] = runs  # kept for the verdict; not printed
    return row


def show(rows, title):
    table([{k: v for k, v in r.items() if k != "per seed"} for r in rows], title)


def length_and_depth(base, tok, task, lengths, seeds, steps, n_train=256, n_test=50, depth_p=10):
    train_set = make_split(task, n_train, "train")
    test_set = make_split(task, n_test, "test")
    metrics = METRICS[task]
    frozen = evaluate(base, tok, task, test_set)
    print(f"the frozen model on {task} without an instruction: "
          + ", ".join(f"{m} {frozen[m]:.1f}" for m in metrics))
    n = base.config.n_layer
    by_length = []
    for P in lengths:
        runs, trained, kept = measure(base, tok, task, lambda: Prefix(base, P, mid=MID),
                                      train_set, test_set, steps, seeds)
        row = sweep_row(f"all {n} layers", runs, trained, kept, metrics)
        by_length.append({"P": P, **{k: v for k, v in row.items() if k != "prefix"}})
    show(by_length, f"(b) prefix length, {task} without instruction, {steps} steps, "
          f"{len(seeds)} seeds (mean, min, max of {metrics[0]}; mean of the rest)")

    all_layers = f"all {n} layers (0-{n - 1})"
    depth = [{"prefix": all_layers, **{k: v for k, v in r.items() if k != "P"}}
             for r in by_length if r["P"] == depth_p]  # the same runs as in (b)
    if not depth:  # the length sweep did not include depth_p: train the all-layer prefix here
        runs, trained, kept = measure(base, tok, task, lambda: Prefix(base, depth_p, mid=MID),
                                      train_set, test_set, steps, seeds)
        depth = [sweep_row(all_layers, runs, trained, kept, metrics)]
    placements = [(f"top half ({n // 2}-{n - 1})", list(range(n // 2, n))),
                  (f"bottom half (0-{n // 2 - 1})", list(range(n // 2))),
                  ("first layer only (0)", [0])]
    for label, layers in placements:
        runs, trained, kept = measure(
            base, tok, task, lambda: Prefix(base, depth_p, mid=MID, layers=layers),
            train_set, test_set, steps, seeds)
        depth.append(sweep_row(label, runs, trained, kept, metrics))
    runs, trained, kept = measure(base, tok, task, lambda: SoftPrompt(base, depth_p),
                                  train_set, test_set, steps, seeds, lr=SOFT_LR)
    depth.append(sweep_row("input only (soft prompt)", runs, trained, kept, metrics))
    show(depth, f"(c) where the prefix sits (P = {depth_p}), {task} without instruction, "
          f"{steps} steps, {len(seeds)} seeds")
    return by_length, depth, frozen


# %% [markdown]
# The paper's numbers for comparison (Li & Liang 2021, ACL version, intrinsic evaluation: E2E,
# GPT-2 medium, BLEU / ROUGE-L). There is no per-layer ablation in the paper; its nearest
# evidence is the embedding-only rows.


# %%
PAPER_E2E = [  # quoted, not measured
    {"paper (E2E, GPT-2 medium)": "prefix on every layer", "BLEU": 70.3, "ROUGE-L": 72.1},
    {"paper (E2E, GPT-2 medium)": "embedding-only, 1 token (EMB-1)", "BLEU": 48.1, "ROUGE-L": 60.2},
    {"paper (E2E, GPT-2 medium)": "embedding-only, 10 tokens (EMB-10)", "BLEU": 62.2,
     "ROUGE-L": 66.4},
    {"paper (E2E, GPT-2 medium)": "embedding-only, 20 tokens (EMB-20)", "BLEU": 61.9,
     "ROUGE-L": 65.6},
]


def verdicts(init_rows, by_length, depth):
    """The papers' claims next to what was measured, as numbers."""
    out = {}
    first = init_rows[0]["task"]
    for n_train in sorted({r["train examples"] for r in init_rows if r["task"] == first}):
        rows = {r["init"]: r["exact mean"] for r in init_rows
                if r["task"] == first and r["train examples"] == n_train}
        out[f"init_gap_{n_train}"] = rows["task words"] - rows["random"]
        print(f"(a) {first}, {n_train} examples: task words {rows['task words']:.1f}%, unrelated "
              f"{rows['unrelated words']:.1f}%, random {rows['random']:.1f}% "
              f"(task words - random = {out[f'init_gap_{n_train}']:+.1f})")
    key = [k for k in by_length[0] if k.endswith(" mean")][0]
    best = max(by_length, key=lambda r: r[key])
    out["best_length"] = best["P"]
    print(f"(b) best length by {key}: P = {best['P']} (paper: ~10 for table-to-text, chosen 5 "
          f"for E2E)")
    row = {r["prefix"].split(" (")[0]: r for r in depth}
    row["all"] = row.pop(next(k for k in row if k.startswith("all")))

    def gap(a, b, claim, key="rouge_l"):
        """Mean difference a - b and the per-seed differences (same seed, same batches)."""
        per_seed = [x[key] - y[key] for x, y in zip(row[a]["per seed"], row[b]["per seed"])]
        print(f"(c) ROUGE-L, {a} - {b}: {statistics.mean(per_seed):+.1f} (per seed: "
              f"{', '.join(f'{d:+.1f}' for d in per_seed)}) — {claim}")
        return statistics.mean(per_seed)

    out["first_layer_minus_all_rouge"] = gap(
        "first layer only", "all", "the article claims -4.7; the paper has no such ablation")
    out["top_minus_bottom_rouge"] = gap(
        "top half", "bottom half", "P-tuning v2: upper layers matter more, i.e. > 0")
    out["input_only_minus_all_rouge"] = gap(
        "input only", "all", "paper, E2E: EMB-10 - full prefix = 66.4 - 72.1 = -5.7")
    return out


# %%
def main(fast=False, full=False):
    setup(0)
    with Stopwatch() as clock:
        base, tok = load_base("small")
        if fast:
            seeds, n_test = (0,), 10
            sizes = {"reverse": [(16, 4), (64, 4)]}
            sweep_config = dict(lengths=(1, 10), steps=6, n_train=64)
            tasks = ["first_last"]
        elif full:
            seeds, n_test = (0, 1, 2, 3), 100
            sizes = {"reverse": [(16, 40), (256, 120)], "first_last": [(16, 40), (256, 120)]}
            sweep_config = dict(lengths=(1, 5, 10, 20, 40), steps=150)
            tasks = ["first_last", "returns"]
        else:
            seeds, n_test = (0, 1, 2), 50
            sizes = {"reverse": [(16, 40), (256, 80)], "first_last": [(16, 40)]}
            sweep_config = dict(lengths=(1, 5, 10, 20), steps=60)
            tasks = ["first_last"]
        print("== (a) initialisation from real words ==")
        cases = [c for c in INIT_CASES if c[0] in sizes]
        init_rows = init_study(base, tok, cases, sizes, seeds, n_test=n_test)
        results = {"init": init_rows, "sweeps": {}}
        for task in tasks:
            print(f"\n== (b) length and (c) depth: {task} ==")
            by_length, depth, frozen = length_and_depth(
                base, tok, task, seeds=seeds if full else seeds[:2],
                n_test=min(n_test, 50) if task == "returns" else n_test,  # 57 test inputs exist
                **sweep_config)
            results["sweeps"][task] = {"length": by_length, "depth": depth, "frozen": frozen}
        table(PAPER_E2E, "paper, for comparison (quoted: Li & Liang 2021, arXiv 2101.00190, "
                         "ACL version)")
        print("\n== the claims next to the measurements ==")
        sweep = results["sweeps"]["first_last"]
        results.update(verdicts(init_rows, sweep["length"], sweep["depth"]))
    print(f"\n{clock.seconds:.1f} s wall")
    return results


# %% [markdown]
# ## What it found (one run of each mode of this script; rerun to see your numbers)
#
# * (a) Initialisation, reverse. With 16 examples, starting from the words of the pretrained
#   instruction gives 100% from step 0 and keeps it (the prefix *is* that hard prompt);
#   unrelated real words reach 98%; random 67% with a seed range of 10-98%. With 256 examples
#   all three end at 100% (`--full`: 97 / 95 / 73 in low data over 4 seeds, 100 / 100 / 99.5
#   with more data over 2). That is the paper's pattern: real-word init matters in low data and
#   washes out with more data; task-relevant >= unrelated > random.
# * (a) Initialisation, first_last, whose own wording this model never learned. In low data
#   that wording was the *worst* start (0% after 40 steps, against 10-20% for the others): a
#   phrase the model cannot act on gives keys and values that point nowhere useful. With 256
#   examples and 120 steps (`--full`, 2 seeds) it became the *best* (99.5% against 91% random
#   and 47.5% unrelated, 0-95). So "relevant words help in low data" held only where the model
#   already knew what the words meant; where it did not, the effect appeared late and
#   reversed — a case the paper's experiments (always on a model that reads English) do not
#   cover.
# * (b) Length. Default (first_last, 60 steps): 1 position is far too little (1%); 5, 10 and 20
#   give 57 / 55 / 50%, best at 5 — a rise and a slight dip, as in the paper (E2E chose 5), but
#   within the seed noise. `--full` (150 steps, 4 seeds): on first_last longer kept helping a
#   little (95-100% from 5 to 40, no dip); on returns the dip is strong — 5 positions were
#   best (BLEU 74, 26% exact), 10-40 worse (BLEU 50-61). The best length depends on the task
#   and the training budget; the paper's small chosen lengths are a sensible default.
# * (c) Depth. On first_last the *bottom* half (layers 0-1) was best (96-98%, both modes),
#   the top half alone learned nothing (0-2%), and all four layers were close to the bottom half
#   once trained long enough (55% default, 96% full). `--full` on returns gave the same order
#   (BLEU: bottom 66 > all 61 > first layer 56 > top 47 > input only 5). That is the opposite of
#   P-tuning v2's "upper layers matter more" (measured there on NLU tasks with large models).
#   A likely reason: these tasks are about *which positions to read*, and in a 4-layer model
#   that routing must be set up early; a prefix that only reaches layers 2-3 comes too late.
# * The article's "first-layer prefix only: ROUGE-L -4.7". The paper has no such ablation, so
#   the claim stays unsourced. On this toy task the first-layer-only prefix lost about 4 ROUGE-L
#   (default: -3.8, the two seeds said -10.3 and +2.7) and 4.8 (`--full`, every one of 4 seeds
#   negative, -1.8 to -7.5): a drop of about that size, measured on a different model, task
#   and training budget — a coincidence of magnitude, not a confirmation.
# * Input only (a soft prompt of 10 tokens, the paper's embedding-only) trailed the full prefix
#   by 8 ROUGE-L (default) and 21 (`--full`), the direction of the paper's E2E gap (EMB-10 vs
#   prefix, -5.7 ROUGE-L).


# %%
if __name__ == "__main__":
    main(fast="--fast" in sys.argv, full="--full" in sys.argv)
