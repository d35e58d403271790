"""Helpers the lessons share: the committed base models, batches, one tuning run, scoring, tables.

Lesson-only code lives here rather than in minitx/, so the package stays within its line budget.
Everything here is built from minitx's public API. A lesson run as a script finds this file
because Python puts the script's folder on sys.path; the tests add lessons/ to sys.path.
"""
import contextlib
import json
import random
import sys
import time
from pathlib import Path

import torch

from minitx import GPT, Config, MultiHeadAttention, generate
from minitx.data import encode_for_training, encode_prompts, Tokenizer
from toyworld import TASKS, course_tokenizer, make_split, pretraining_corpus, prompt_text
from minitx.metrics import corpus_bleu, rouge_l
from minitx.train import TrainConfig, load_checkpoint, save_checkpoint, train
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


def fast_mode(argv=None):
    """True when the lesson was started with --fast (the test suite runs every lesson so)."""
    return "--fast" in (sys.argv if argv is None else argv)


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


# ---- pretraining data: corpus lines packed into rows that start at a line -------------------
def token_stream(tok, n_lines, seed=0):
    """The pretraining corpus as 1-D tensors: ids, whether each id is part of an answer (after
    '=>', ';' included), and where each line starts."""
    arrow = tok.encode("=>")[0]
    ids, answer, starts = [], [], []
    for line in pretraining_corpus(n_lines, seed):
        tokens = tok.encode(line)
        cut = tokens.index(arrow) + 1
        starts.append(len(ids))
        ids += tokens
        answer += [False] * cut + [True] * (len(tokens) - cut)
    return torch.tensor(ids), torch.tensor(answer), torch.tensor(starts)


def window_batches(stream, batch_size, block, seed=0):
    """get_batch(step): rows of `block` tokens starting at random line starts, loss on answers
    only (a deterministic function of the step). Later lines in a row sit at later positions, so
    the model meets every task at many offsets, as it will behind a prefix."""
    ids, answer, starts = stream
    starts = starts[starts < len(ids) - block - 1]

    def get_batch(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        first = starts[torch.randint(0, len(starts), (batch_size,), generator=g)]
        rows = first[:, None] + torch.arange(block + 1)  # (B, block + 1)
        targets = ids[rows[:, 1:]].masked_fill(~answer[rows[:, 1:]], -1)
        return {"idx": ids[rows[:, :-1]], "targets": targets}
    return get_batch


def pretrain(size, steps, seed=0, lr=3e-3, batch_size=32, block=96, n_lines=60_000, log=print):
    """Train one base model of the course from scratch; return (model, tokenizer, train result)."""
    seed_everything(seed)
    tok = course_tokenizer()
    config = Config(vocab_size=tok.vocab_size, block_size=BLOCK_SIZE, **SIZES[size])
    model = GPT(config)
    get_batch = window_batches(token_stream(tok, n_lines, seed), batch_size, block, seed)
    result = train(model, get_batch, TrainConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10),
                                                 weight_decay=0.1, log_every=max(1, steps // 10),
                                                 seed=seed), log=log)
    return model.eval(), tok, result


def save_base(model, tok, path):
    """Write a base model as fp16 weights + its config + its tokenizer (atomically)."""
    state = {k: v.half() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_checkpoint(path, {"weights": state, "config": vars(model.config),
                           "tokenizer": json.dumps(tok.to_dict())})


def load_base(size="small"):
    """The committed base model of that size, frozen and in eval mode; returns (model, tokenizer)."""
    path = CHECKPOINTS / f"base_{size}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python lessons/04_pretrain_base.py --full` "
                                f"to make it")
    data = load_checkpoint(path)
    model = GPT(Config(**data["config"]))
    model.load_state_dict({k: v.float() for k, v in data["weights"].items()}, strict=False)
    return model.eval().requires_grad_(False), Tokenizer.from_dict(json.loads(data["tokenizer"]))


# ---- task data -------------------------------------------------------------------------------
def task_batches(tok, examples, batch_size, instruction=None, seed=0, **extra):
    """get_batch(step) over `examples` in epochs of fixed random order; loss on the answer only."""
    prompts = [prompt_text(e, instruction) for e in examples]
    idx, targets, mask = encode_for_training(tok, prompts, [e.target for e in examples])

    def get_batch(step):
        epoch, pos = divmod(step * batch_size, len(examples))
        order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed + epoch))
        rows = order[(torch.arange(batch_size) + pos) % len(examples)]
        keep = mask[rows].any(0)  # drop columns that are padding in every row of this batch
        return {"idx": idx[rows][:, keep], "targets": targets[rows][:, keep],
                "attention_mask": mask[rows][:, keep], **extra}
    return get_batch


def predict(model, tok, examples, instruction=None, max_new_tokens=24, batch_size=64, **kw):
    """Greedy answers (text before ';') for `examples`, generated in left-padded batches."""
    answers = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        idx, mask = encode_prompts(tok, [prompt_text(e, instruction) for e in chunk])
        out = generate(model, idx, max_new_tokens, attention_mask=mask, stop_ids=[tok.stop_id],
                       pad_id=tok.pad_id, **kw)
        answers += [tok.decode(row).split(";")[0].strip() for row in out]
    return answers


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
def table(rows, title=None, floatfmt="{:.1f}"):
    """Print a list of dicts as an aligned text table (first row's keys are the columns)."""
    columns = list(rows[0])
    cells = [[floatfmt.format(v) if isinstance(v, float) else str(v) for v in
              (r.get(c, "") for c in columns)] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    if title:
        print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    return rows


def sparkline(values, width=40):
    """A one-line text plot of a series (for terminals without matplotlib)."""
    bars = "▁▂▃▄▅▆▇█"
    step = max(1, len(values) // width)
    vals = [sum(values[i:i + step]) / len(values[i:i + step]) for i in range(0, len(values), step)]
    lo, hi = min(vals), max(vals)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in vals)


def plot_curves(curves, name, xlabel="step", ylabel="loss"):
    """Save a PNG under lessons/out/ when matplotlib is installed; print sparklines either way."""
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
    ax.legend()
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"(plot saved to {path})")
    return path


@contextlib.contextmanager
def attention_weights_kept(model):
    """Inside the block every attention layer of `model` runs the written-out path
    (`use_sdpa=False`) and keeps `.weights` (B, heads, queries, keys); yields the layers in order."""
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
