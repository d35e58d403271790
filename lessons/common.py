"""Helpers the lessons share: run modes, the evidence discipline (seeds, paired verdicts, learning
rates chosen on validation data), the committed base models, one tuning run, scoring, tables.

Lesson-only code lives here rather than in minitx/, so the package stays within its line budget.
Everything here is built from minitx's public API. A lesson run as a script (or opened as a
notebook in lessons/) finds this file because Python puts the script's folder (the notebook's
working directory) on sys.path; the tests add lessons/ to sys.path.
"""
import contextlib
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from minitx import GPT, Config, MultiHeadAttention
from minitx.data import (complete, encode_for_training, encode_prompts, load_model,
                         packed_batches, pair_batches, save_model)
from toyworld import TASKS, course_tokenizer, pretraining_corpus, prompt_text
from minitx.metrics import corpus_bleu, rouge_l
from minitx.train import TrainConfig, train
from minitx.tuning import Tuned

HERE = Path(__file__).resolve().parent
CHECKPOINTS = HERE / "checkpoints"
OUT = HERE / "out"

# The three base models of the course (the scale lesson uses all three; the others use "small").
SIZES = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64),
    "small": dict(n_layer=4, n_head=4, n_embd=128),
    "medium": dict(n_layer=6, n_head=5, n_embd=160),
}
BLOCK_SIZE = 128  # lines are 10-40 tokens; room for a 40-token prefix and a long answer


def lesson_mode(argv=None):
    """"fast" (--fast: seconds, what the tests run), "full" (--full: the long run) or "default".

    Read from the command line; a notebook kernel has neither flag, so a notebook runs "default"."""
    argv = sys.argv if argv is None else argv
    if "--fast" in argv and "--full" in argv:
        raise ValueError("give at most one of --fast and --full")
    return "fast" if "--fast" in argv else "full" if "--full" in argv else "default"


# ---- the evidence discipline -------------------------------------------------------------------
# A lesson that turns a comparison into a conclusion runs every arm on the same seeds (same data
# order, same initialisation where the arms share parameters), takes the per-seed *paired*
# difference, and prints a verdict computed from those differences. Three seeds is the floor for
# a verdict; with all three agreeing in sign the chance of that under "no effect" is 1/4 per
# direction, so "holds" means "every seed agrees", not "significant". The --full run uses five.
WIDTH = 100  # no printed line is longer
SEEDS = {"fast": (0, 1), "default": (0, 1, 2), "full": (0, 1, 2, 3, 4)}
MIN_SEEDS = 3
NOT_SHOWN = "not shown (within seed spread)"


@dataclass
class Verdict:
    """A claim "A beats B", the per-seed paired differences A - B, and what they show."""
    claim: str
    diffs: list
    unit: str = ""

    @property
    def word(self):
        """"holds" when every seed's difference is > 0, "reversed" when every one is < 0, else
        "not shown (within seed spread)" — also with fewer than 3 seeds. Never a winner when the
        spread of the differences covers zero."""
        if len(self.diffs) < MIN_SEEDS:
            return f"not shown (only {len(self.diffs)} seed{'s' * (len(self.diffs) != 1)})"
        if min(self.diffs) > 0:
            return "holds"
        if max(self.diffs) < 0:
            return "reversed"
        return NOT_SHOWN

    @property
    def mean(self):
        return statistics.fmean(self.diffs)

    def __str__(self):
        """One line "claim: word | A-B mean (seeds lo .. hi, n=k)", split in two after the
        word when it would be longer than 100 characters."""
        lo, hi = min(self.diffs), max(self.diffs)
        head = f"{self.claim}: {self.word}"
        n = len(self.diffs)
        tail = f"A-B {self.mean:+.1f}{self.unit} (seeds {lo:+.1f} .. {hi:+.1f}, n={n})"
        return f"{head} | {tail}" if len(head) + len(tail) + 3 <= WIDTH else f"{head}\n    {tail}"


def verdict(claim, a, b, unit=""):
    """Verdict for "A beats B" from per-seed scores `a` and `b` (same seeds, same order; higher is
    better — pass negated losses). Prints it and returns it."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need paired per-seed scores of equal, non-zero length; got {len(a)} "
                         f"and {len(b)}")
    v = Verdict(claim, [x - y for x, y in zip(a, b)], unit)
    print(v)
    return v


def spread(values, fmt="{:.1f}"):
    """"mean (min-max)" of per-seed values, one format for a whole table."""
    if not values:
        return "n/a"
    return f"{fmt.format(statistics.fmean(values))} ({fmt.format(min(values))}-" \
           f"{fmt.format(max(values))})"


# ---- learning rates: one policy for every lesson ---------------------------------------------
# Each method's rate is chosen on the *validation* split (never test) by lessons/choose_lrs.py:
# a sweep over the grid below, seed 0, a fixed budget, lowest validation loss wins. The choices
# are committed in lessons/results/learning_rates.json (written, with its date and settings, by
# that script); lessons read them with `chosen_lr`. Rerun the script after changing a base model.
LR_GRID = {
    "prompt": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0),  # Lester et al.: 0.3 (Adafactor)
    "prefix": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0),  # direct P ~ N(0, 1): deep prompt, P-tuning v2
    "prefix_mlp": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),  # P = MLP(P'), Li & Liang §4.3
    "lora": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    "adapter": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "full": (3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
}
RESULTS = HERE / "results"


def chosen_lr(task, method):
    """The learning rate lessons/choose_lrs.py chose for `method` on `task` (validation loss)."""
    path = RESULTS / "learning_rates.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python lessons/choose_lrs.py`")
    choices = json.loads(path.read_text())["choices"]
    if task not in choices or method not in choices[task]:
        raise KeyError(f"no learning rate chosen for {method!r} on {task!r} in {path}; add them "
                       f"to lessons/choose_lrs.py and rerun it")
    return choices[task][method]


def seed_everything(seed):
    random.seed(seed)
    torch.manual_seed(seed)


def setup(seed=0):
    """Every lesson starts here: one thread (the same float rounding, so the same numbers, on every
    machine; small models lose little speed) and a seed. Returns the previous thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seed_everything(seed)
    return threads


# ---- pretraining and the committed base models ------------------------------------------------
def pretraining_batches(tok, n_lines, batch_size, block, seed=0):
    """get_batch(step) over the toy world's pretraining corpus (minitx.data.packed_batches): rows
    of `block` tokens starting at line starts, loss on the answers only. Later lines in a row sit
    at later positions, so the model meets every task at many offsets, as it will behind a
    prefix."""
    return packed_batches(tok, pretraining_corpus(n_lines, seed), batch_size, block, seed,
                          loss_after_sep=True)


def pretrain(size, steps, seed=0, lr=3e-3, batch_size=32, block=96, n_lines=60_000, log=print):
    """Train one base model of the course from scratch; return (model, tokenizer, train result)."""
    seed_everything(seed)
    tok = course_tokenizer()
    config = Config(vocab_size=tok.vocab_size, block_size=BLOCK_SIZE, **SIZES[size])
    model = GPT(config)
    get_batch = pretraining_batches(tok, n_lines, batch_size, block, seed)
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10), weight_decay=0.1,
                         log_every=max(1, steps // 10), seed=seed)
    result = train(model, get_batch, config, log=log)
    return model.eval(), tok, result


def save_base(model, tok, path):
    """Write a base model as fp16 weights + its config + its tokenizer (minitx.data.save_model)."""
    save_model(path, model, tok, dtype=torch.float16)


def load_base(size="small"):
    """The committed base model of that size, frozen, in eval mode; returns (model, tokenizer)."""
    path = CHECKPOINTS / f"base_{size}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python lessons/04_pretrain_base.py "
                                f"--full` to make it")
    model, tok = load_model(path)
    return model.requires_grad_(False), tok


# ---- task data -------------------------------------------------------------------------------
def task_batches(tok, examples, batch_size, instruction=None, seed=0, **extra):
    """get_batch(step) over `examples` in epochs of fixed random order; loss on the answer only
    (minitx.data.pair_batches on the examples' prompts and targets)."""
    return pair_batches(tok, [prompt_text(e, instruction) for e in examples],
                        [e.target for e in examples], batch_size, seed=seed, **extra)


def predict(model, tok, examples, instruction=None, max_new_tokens=24, batch_size=64, **kw):
    """Greedy answers (text before ';') for `examples` (minitx.data.complete)."""
    return complete(model, tok, [prompt_text(e, instruction) for e in examples], max_new_tokens,
                    batch_size, **kw)


def score(answers, examples):
    """Exact match (an answer equal to any reference), corpus BLEU and ROUGE-L, all in %."""
    refs = [list(e.references) for e in examples]
    exact = 100 * sum(a in r for a, r in zip(answers, refs)) / len(examples)
    return {"exact": exact, "bleu": corpus_bleu(answers, refs), "rouge_l": rouge_l(answers, refs)}


@torch.no_grad()
def classify(model, tok, examples, labels, instruction=None, batch_size=128, **kw):
    """Accuracy (%) of picking the label word with the highest logit right after '=>'."""
    label_ids = torch.tensor([tok.encode(l)[0] for l in labels])
    correct = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        idx, mask = encode_prompts(tok, [prompt_text(e, instruction) for e in chunk])
        logits = model(idx, attention_mask=mask, **kw)[0][:, -1, label_ids]  # (B, n_labels)
        gold = torch.tensor([labels.index(e.label) for e in chunk])
        correct += (logits.argmax(-1) == gold).sum().item()
    return 100 * correct / len(examples)


def evaluate(model, tok, task, examples, instruction=None, **kw):
    """The task's headline metrics: accuracy for classification, exact/BLEU/ROUGE-L otherwise."""
    labels = TASKS[task].labels
    if labels:
        return {"accuracy": classify(model, tok, examples, list(labels), instruction, **kw)}
    return score(predict(model, tok, examples, instruction, **kw), examples)


def tune(base, tok, method, examples, steps, lr, batch_size=16, seed=0, task="task", log=None):
    """Put `method` on a frozen `base` (Tuned), train it on `examples`; return (tuned, result)."""
    seed_everything(seed)
    tuned = Tuned(base)
    tuned.add(task, method)
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, weight_decay=0.0,
                         log_every=0, seed=seed)
    result = train(tuned, task_batches(tok, examples, batch_size, seed=seed), config,
                   log=log or (lambda *a, **k: None))
    return tuned.eval(), result


def full_finetune(base, tok, examples, steps, lr, batch_size=16, seed=0, instruction=None):
    """The baseline: a copy of the base with every weight trainable; returns (model, result)."""
    seed_everything(seed)
    model = GPT(base.config)
    model.load_state_dict(base.state_dict())
    model.requires_grad_(True).train()
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=0, seed=seed)
    result = train(model, task_batches(tok, examples, batch_size, instruction, seed=seed), config,
                   log=lambda *a, **k: None)
    return model.eval(), result


# ---- printing --------------------------------------------------------------------------------
def cell(value, floatfmt="{:.1f}"):
    """One table cell: floats in the table's one format, "n/a" for None or nan."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "n/a"
    return floatfmt.format(value) if isinstance(value, float) else str(value)


def table(rows, title=None, floatfmt="{:.1f}", notes=None):
    """Print a list of dicts as an aligned text table (first row's keys are the columns).

    A table wider than 100 characters is split into several, each repeating the first column.
    `notes` ({column: meaning}) are printed under the table, one line each."""
    columns = list(rows[0])
    cells = {c: [cell(r.get(c), floatfmt) for r in rows] for c in columns}
    widths = {c: max(len(c), *(len(v) for v in cells[c])) for c in columns}
    if title:
        print(f"\n{title}")
    parts, part = [], [columns[0]]
    for c in columns[1:]:
        if sum(widths[x] + 2 for x in part) + widths[c] > WIDTH:
            parts.append(part)
            part = [columns[0]]
        part.append(c)
    for i, part in enumerate(parts + [part]):
        if i:
            print()
        print("  ".join(c.ljust(widths[c]) for c in part).rstrip())
        print("  ".join("-" * widths[c] for c in part))
        for j in range(len(rows)):
            print("  ".join(cells[c][j].ljust(widths[c]) for c in part).rstrip())
    for column, meaning in (notes or {}).items():
        print(f"  {column}: {meaning}")
    return rows


def takeaway(*lines):
    """Print the lesson's takeaway: the conclusions, each computed from this run's numbers."""
    print("\nTakeaway")
    for line in lines:
        print(f"- {line}")


def sparkline(values, width=40):
    """A one-line text plot of a series (for terminals without matplotlib)."""
    bars = "▁▂▃▄▅▆▇█"
    step = max(1, math.ceil(len(values) / width))
    vals = [sum(values[i:i + step]) / len(values[i:i + step]) for i in range(0, len(values), step)]
    lo, hi = min(vals), max(vals)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in vals)


def plot_curves(curves, name, xlabel="step", ylabel="loss", title=None):
    """Save a PNG under lessons/out/ when matplotlib is installed; print sparklines either way.
    `title` should name the task and variant."""
    for label, values in curves.items():
        print(f"{label:>24s} {sparkline(values)} {values[0]:.3f} -> {values[-1]:.3f}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    OUT.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        ax.plot(values, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or name)
    ax.legend()
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"(plot saved to {path})")
    return path


@contextlib.contextmanager
def attention_weights_kept(model):
    """Inside the block every attention layer of `model` runs the written-out path
    (`use_sdpa=False`) and keeps `.weights` (B, heads, queries, keys); yields the layers in
    order."""
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for m in layers:
        m.use_sdpa = False
    try:
        yield layers
    finally:
        for m in layers:
            m.use_sdpa, m.weights = True, None


class Stopwatch:
    """with Stopwatch() as t: ... ; t.seconds"""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# ---- the course's standard configuration of each method ----------------------------------------
def build_method(name, base, n_virtual=10, mid=128, lora_r=4, lora_alpha=32, bottleneck=16):
    """A fresh tuning module of the course's standard size (None for "full" fine-tuning).

    LoRA here adapts the fused attention input projection `c_attn`, i.e. Q, K and V together;
    Hu et al. (2021) adapt Wq and Wv only (their GPT-2 recipe: r=4, alpha=32)."""
    from minitx.tuning import LoRA, Adapter, Prefix, SoftPrompt
    makers = {"prompt": lambda: SoftPrompt(base, n_virtual, init="vocab"),
              "prefix": lambda: Prefix(base, n_virtual),
              "prefix_mlp": lambda: Prefix(base, n_virtual, mid=mid),
              "lora": lambda: LoRA(base, r=lora_r, alpha=lora_alpha),
              "adapter": lambda: Adapter(base, bottleneck=bottleneck),
              "full": lambda: None}
    if name not in makers:
        raise ValueError(f"method must be one of {list(makers)}; got {name!r}")
    return makers[name]()


def train_method(name, base, tok, examples, steps, lr, seed=0, batch_size=16, **sizes):
    """Train method `name` (see build_method; "full" = every weight) on `examples`; return the
    model to evaluate (a Tuned, or the fine-tuned copy) and train()'s result."""
    seed_everything(seed)
    if name == "full":
        return full_finetune(base, tok, examples, steps, lr, batch_size, seed)
    return tune(base, tok, build_method(name, base, **sizes), examples, steps, lr, batch_size,
                seed)


@torch.no_grad()
def validation_loss(model, tok, examples, batch_size=64):
    """Mean next-token loss on the targets of `examples` (the lr sweep's criterion)."""
    total, n = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        idx, targets, mask = encode_for_training(tok, [prompt_text(e) for e in chunk],
                                                 [e.target for e in chunk])
        loss = model(idx, targets=targets, attention_mask=mask)[1]
        tokens = int((targets != -1).sum())
        total, n = total + loss.item() * tokens, n + tokens
    return total / n
