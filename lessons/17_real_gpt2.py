# %% [markdown]
# # 17 · Prefix-tuning a real GPT-2
#
# Everything so far ran on small models trained from scratch. Here the same prefix machinery
# meets a real pretrained model: OpenAI's GPT-2 (Radford et al. 2019), read from a local Hugging
# Face directory by `minitx.gpt2.load_gpt2`, with its byte-level BPE tokenizer `GPT2Tokenizer`.
# Li & Liang's table-to-text results are for GPT-2-medium (arXiv 2101.00190, Table 1); the
# papers are listed in [REFERENCES.md](REFERENCES.md).
#
# What you will learn:
# 1. how a real checkpoint becomes a minitx `GPT` (the names are the same; four matrices per
#    block are transposed, because GPT-2's `Conv1D` stores them as (in, out));
# 2. that a prefix *is* a pre-filled key/value cache: `model(idx, past=[(k, v), ...])`, one pair
#    of shape (1, n_head, P, head_size) per layer, and that starting it from the keys and values
#    of a real phrase (Li & Liang §7.4) makes the untrained prefix *exactly* that phrase as a
#    prompt;
# 3. to train those tensors directly — plain `nn.Parameter`s and AdamW, no `minitx.tuning` —
#    on a tiny task, and to judge the result on words the prefix never saw, over several seeds.
#
# Run: `python lessons/17_real_gpt2.py [--fast | --full] [--gpt2 PATH]`, or set
# `MINITX_GPT2=PATH`. A GPT-2 directory holds `config.json`, `model.safetensors` (or
# `pytorch_model.bin`), `vocab.json` and `merges.txt`. **Nothing is downloaded.** Without a
# directory the lesson prints how to make one and runs every cell on a *stand-in*: a tiny
# GPT-2-shaped model with random weights and a byte-level tokenizer. The stand-in shows every
# mechanism (the exact start, the training, the verdicts' bookkeeping); its answers mean nothing.
# Default mode with GPT-2 small (124M): under a minute on a laptop CPU.

# %%
import os
import random
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import SEEDS, lesson_mode, seed_everything, setup, table, takeaway, verdict
from minitx import GPT, Config
from minitx.generate import generate
from minitx.gpt2 import GPT2Tokenizer, load_gpt2
from minitx.tuning import count_parameters

MODE = lesson_mode()
SETTINGS = {"fast": dict(steps=8), "default": dict(steps=25), "full": dict(steps=100)}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
LR = 1e-2  # AdamW on the prefix tensors; fixed, not tuned here (exercise 3)
setup(0)

HOW_TO_GET = """\
This lesson wants a local GPT-2 directory: pass --gpt2 PATH or set MINITX_GPT2=PATH.
Nothing is downloaded. On a machine with internet and `pip install transformers`, run

    python -c "from transformers import GPT2LMHeadModel, GPT2Tokenizer; \\
GPT2LMHeadModel.from_pretrained('gpt2').save_pretrained('gpt2-local'); \\
GPT2Tokenizer.from_pretrained('gpt2').save_pretrained('gpt2-local')"

(or `huggingface-cli download gpt2 config.json model.safetensors vocab.json merges.txt
--local-dir gpt2-local`), then copy the folder gpt2-local here and run

    python lessons/17_real_gpt2.py --gpt2 gpt2-local

The tokenizer needs `regex` and model.safetensors needs `safetensors`: pip install -e ".[gpt2]"
(pytorch_model.bin needs only torch).
"""

if sys.argv[-1] == "--gpt2":
    raise ValueError("--gpt2 needs a path after it: --gpt2 PATH, a local GPT-2 directory")
GPT2_DIR = (sys.argv[sys.argv.index("--gpt2") + 1] if "--gpt2" in sys.argv
            else os.environ.get("MINITX_GPT2") or None)
if GPT2_DIR:  # a wrong path raises FileNotFoundError naming the files that must be there
    model, tok = load_gpt2(GPT2_DIR), GPT2Tokenizer.from_dir(GPT2_DIR)
    WHAT = f"GPT-2 from {GPT2_DIR}"
else:
    print(HOW_TO_GET)

    class ByteTokenizer:
        """The stand-in's tokenizer: one id per UTF-8 byte — GPT-2's byte-level BPE before any
        merge (GPT2Tokenizer itself needs the `regex` package, which `.[gpt2]` installs)."""

        def encode(self, text):
            return list(text.encode("utf-8"))

        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")

    tok = ByteTokenizer()
    model = GPT(Config(vocab_size=257, block_size=256, n_layer=2, n_head=2, n_embd=64)).eval()
    WHAT = "the STAND-IN: random weights, not GPT-2"
model.requires_grad_(False)
c = model.config
print(f"model: {WHAT}")
print(f"{c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, "
      f"{count_parameters(model)[1] / 1e6:.1f}M parameters; mode {MODE}, seeds {list(SEED_LIST)}, "
      f"{S['steps']} steps")

# %% [markdown]
# ## 1. The task: opposites
#
# A prompt is a word and an arrow ("hot ->"); the answer is a space, its opposite and a newline
# (" cold\n"). The loss is taken on the answer tokens only. Each seed holds out its own
# three pairs: the prefix trains on the others, and the held-out words tell whether it learned
# "opposite" or only these words. The seed changes nothing else (the prefix's start and the
# full-batch training are deterministic), so the spread over seeds is the spread over which
# words are held out.

# %%
PAIRS = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"),
         ("light", "dark"), ("open", "closed"), ("old", "young"), ("high", "low"),
         ("wet", "dry"), ("rich", "poor"), ("early", "late"), ("hard", "soft"),
         ("full", "empty")]
N_HELD = 3


def prompt(word):
    return f"{word} ->"


def make_batch(tok, pairs):
    """Token ids (B, T) of prompt + answer, right-padded; targets -1 except on the answer."""
    rows = [(tok.encode(prompt(w)), tok.encode(f" {a}\n")) for w, a in pairs]
    T = max(len(p) + len(a) for p, a in rows)
    idx = torch.zeros(len(rows), T, dtype=torch.long)
    targets = torch.full((len(rows), T), -1, dtype=torch.long)
    for b, (p, a) in enumerate(rows):
        seq = torch.tensor(p + a)
        idx[b, :len(seq)] = seq
        targets[b, len(p) - 1:len(seq) - 1] = seq[len(p):]  # position t predicts token t + 1
    return idx, targets


def split_pairs(seed):
    """(training pairs, held-out pairs) for one seed."""
    order = random.Random(seed).sample(PAIRS, len(PAIRS))
    return order[N_HELD:], order[:N_HELD]


idx, targets = make_batch(tok, PAIRS[:1])
print(f"{prompt(PAIRS[0][0]) + ' ' + PAIRS[0][1]!r} + newline as tokens: "
      f"{[tok.decode([i]) for i in idx[0].tolist()]}")
print(f"the loss is on the last {int((targets != -1).sum())} (the answer)")

# %% [markdown]
# ## 2. The prefix: one (k, v) pair per layer, started from a real phrase
#
# Li & Liang found optimising a prefix directly less stable than through their MLP (§4.3), and
# that starting it from the activations of real words helps, most of all with little data
# (§7.4). That start costs one forward pass: the keys and values the model computes for a
# phrase *are* a prefix of shape (1, n_head, P, head_size) per layer. So before any step, the
# tuned model is exactly the model prompted with that phrase; the cell measures the difference
# of the next-token logits both ways. (`minitx.tuning.Prefix` packages the same idea with the
# paper's reparameterization for the other lessons; here every piece stays in sight.)

# %%
INIT_TEXT = " Write the opposite of each word."


def init_prefix(model, tok, text=INIT_TEXT):
    """One (k, v) pair of nn.Parameters per layer: the model's own keys and values for `text`."""
    with torch.no_grad():
        _, _, present = model(torch.tensor([tok.encode(text)]))
    return [(nn.Parameter(k.clone()), nn.Parameter(v.clone())) for k, v in present]


start = init_prefix(model, tok)
ids = tok.encode(prompt("hot"))
with torch.no_grad():
    with_prefix = model(torch.tensor([ids]), past=start)[0]  # (1, T, vocab)
    as_prompt = model(torch.tensor([tok.encode(INIT_TEXT) + ids]))[0][:, -len(ids):]
start_gap = (with_prefix - as_prompt).abs().max().item()
P = start[0][0].size(2)
n_prefix = sum(p.numel() for kv in start for p in kv)
print(f"prefix from {INIT_TEXT!r}: {P} positions")
print(f"{P} positions x {c.n_layer} layers x 2 (keys, values) x width {c.n_embd} = {n_prefix:,} "
      f"numbers, {100 * n_prefix / count_parameters(model)[1]:.2f}% of the model")
print(f"max |logits with the prefix - logits with the phrase as a prompt| = {start_gap:.1e} "
      f"(float32 rounding)")

# %% [markdown]
# ## 3. Train the prefix alone, seed by seed
#
# AdamW over the prefix tensors only, full batch (every training pair in every step), weight
# decay 0; the model's own weights stay frozen. Two scores per arm on the held-out pairs, both
# from one teacher-forced forward pass:
# * the NLL of the answer *word*: its mean loss, the closing newline left out. The newline is
#   format, not meaning: a prefix that has only learned "a space, a word, a newline" lowers the
#   loss of that newline on new words too, and would look as if it knew their opposites;
# * how many answers greedy decoding gets right. An answer is right when every answer token,
#   newline included, is the most likely one given the tokens before it — exactly the tokens
#   greedy decoding would write.
#
# Three arms: no prefix, the start (the phrase as a prompt) and the trained prefix.

# %%
def train_prefix(model, prefix, pairs, steps, lr=LR):
    """AdamW over the prefix alone, full batch; returns every step's loss."""
    idx, targets = make_batch(tok, pairs)
    optimizer = torch.optim.AdamW([p for kv in prefix for p in kv], lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = model(idx, targets=targets, past=prefix)[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def score(model, pairs, prefix=None):
    """(mean NLL in nats of the answer words, the closing newline left out; answers right)."""
    idx, targets = make_batch(tok, pairs)
    logits = model(idx, past=prefix)[0]  # (B, T, vocab)
    right = ((logits.argmax(-1) == targets) | (targets == -1)).all(dim=1)  # (B,)
    last = (targets != -1).cumsum(1).argmax(1)  # each row's last answer position: the newline
    words = targets.clone()
    words[torch.arange(len(pairs)), last] = -1
    nll = F.cross_entropy(logits.flatten(0, 1), words.flatten(), ignore_index=-1)
    return nll.item(), int(right.sum())


runs, rows = {}, []
for seed in SEED_LIST:
    seed_everything(seed)
    train_pairs, held = split_pairs(seed)
    prefix = init_prefix(model, tok)
    losses = train_prefix(model, prefix, train_pairs, S["steps"])
    runs[seed] = {"held": held, "prefix": prefix, "losses": losses,
                  **{arm: score(model, held, p) for arm, p in
                     (("none", None), ("start", start), ("tuned", prefix))},
                  "tuned on train": score(model, train_pairs, prefix)}
    r = runs[seed]
    rows.append({"seed": seed, "held out": " ".join(w for w, _ in held),
                 "loss first": losses[0], "loss last": losses[-1],
                 "NLL none": r["none"][0], "NLL start": r["start"][0], "NLL tuned": r["tuned"][0],
                 "right": f"{r['none'][1]}/{r['start'][1]}/{r['tuned'][1]} of {N_HELD}",
                 "train right": f"{r['tuned on train'][1]} of {len(train_pairs)}"})
table(rows, f"{WHAT}: prefix tuning on opposites, {S['steps']} steps at lr {LR:g}",
      floatfmt="{:.2f}",
      notes={"loss first, loss last": "training loss (nats per answer token) at the first and "
                                      "last step",
             "NLL none/start/tuned": "held-out words' loss, newline left out: no prefix / "
                                     "start / trained",
             "right": "held-out answers greedy decoding gets right: none / start / tuned",
             "train right": "training answers the trained prefix gets right"})

# %% [markdown]
# Greedy answers, written out by `generate` for seed 0's words: it runs the prompt once with
# the prefix as `past`, and what it gets back is a cache that already holds the prefix, so the
# later tokens need nothing special. Shown up to the first newline.

# %%
def answer(model, word, prefix=None, n=4):
    """Greedy continuation of the prompt for `word`, up to its first newline."""
    out = generate(model, torch.tensor([tok.encode(prompt(word))]), n, past=prefix)  # (1, n)
    return tok.decode(out[0].tolist()).split("\n")[0]


first = runs[SEED_LIST[0]]
shown = first["held"] + split_pairs(SEED_LIST[0])[0][:3]
table([{"prompt": prompt(w), "pair": "held out" if (w, a) in first["held"] else "trained",
        "want": repr(" " + a), "no prefix": repr(answer(model, w)),
        "start": repr(answer(model, w, start)), "tuned": repr(answer(model, w, first["prefix"]))}
       for w, a in shown], f"greedy answers, seed {SEED_LIST[0]}; {WHAT}")

# %% [markdown]
# ## 4. Verdicts
#
# The held-out words' NLL, paired per seed: does the trained prefix beat no prefix, and does it
# beat its own start (the phrase as a hard prompt)? The second is the real question: a prefix
# that only repeats its start has learned nothing from the pairs. On the stand-in the verdicts
# are bookkeeping only (a random model can still learn which bytes answers are made of). With
# GPT-2, read them with the table: a held-out gain says the prefix makes the opposites of new
# words more likely, the "right" column says whether they became the *most* likely, and a
# training loss far below the held-out NLL says the prefix memorised its pairs.

# %%
def negated(arm):
    return [-100 * runs[seed][arm][0] for seed in SEED_LIST]


verdicts = {"tuned vs none": verdict("tuned prefix beats no prefix (held-out word NLL x100)",
                                     negated("tuned"), negated("none")),
            "tuned vs start": verdict("tuned prefix beats its start (held-out word NLL x100)",
                                      negated("tuned"), negated("start"))}

# %%
def said(v):
    return f"{v.word} ({v.mean:+.1f})"


takeaway(
    f"model: {WHAT}",
    f"the untrained prefix is the phrase as a prompt: logits differ by {start_gap:.1e} at most",
    f"prefix: {n_prefix:,} numbers, {100 * n_prefix / count_parameters(model)[1]:.2f}% of the "
    f"model",
    f"training loss, mean over seeds: {sum(r['losses'][0] for r in runs.values()) / len(runs):.2f}"
    f" -> {sum(r['losses'][-1] for r in runs.values()) / len(runs):.2f} in {S['steps']} steps",
    f"held-out word NLL, tuned vs none: {said(verdicts['tuned vs none'])}",
    f"held-out word NLL, tuned vs start: {said(verdicts['tuned vs start'])}",
    f"held-out answers right (none/start/tuned), all seeds: "
    f"{sum(r['none'][1] for r in runs.values())}/{sum(r['start'][1] for r in runs.values())}/"
    f"{sum(r['tuned'][1] for r in runs.values())} of {N_HELD * len(runs)}",
    *([] if GPT2_DIR else ["no GPT-2 directory was given: see the top of the output to get one"]),
)

# %% [markdown]
# ## Exercises
#
# 1. **The exact start.** Load the model in float64 (`load_gpt2(path, dtype=torch.float64)`) and
#    recompute `start_gap`. What must it be, and why is it not 0 in float32? Hint: both ways
#    compute the same numbers, but in matrix products of different shapes, and a product of
#    another shape may add its terms in another order.
# 2. **Count it.** Write `n_prefix` as a formula in P, `n_layer` and `n_embd`, and compute it for
#    GPT-2-medium (24 layers, width 1024) with P = 5. Compare with Li & Liang's "0.1%" (their
#    count, REFERENCES.md). Hint: a head's keys are head_size wide and there are n_head heads.
# 3. **Choose the rate on validation data** (open). Hold out one more pair per seed as a
#    validation pair, train at lr 3e-3, 1e-2 and 3e-2, keep the rate with the lowest validation
#    loss, and only then read the held-out verdicts. Does the chosen rate change them? Hint:
#    `split_pairs` decides who is held out; never look at the held-out scores while choosing.
# 4. **A start that says nothing** (open). Start from an unrelated phrase (" The weather is
#    nice today.") instead of `INIT_TEXT`. Li & Liang (§7.4) found task-related words help most
#    with little data: does the verdict "tuned vs start" change, and does the tuned prefix still
#    beat no prefix? Hint: `init_prefix(model, tok, text=...)`.
