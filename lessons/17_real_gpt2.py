"""Lesson 17: prefix-tune a real GPT-2.

Everything so far ran on small models trained from scratch. Here the same prefix machinery meets
a real pre-trained model: OpenAI's GPT-2 (Radford et al. 2019), read from a local Hugging Face
directory by `minitx.gpt2.load_gpt2`, with its byte-level BPE tokenizer `GPT2Tokenizer`.

Prefix tuning (Li & Liang 2021) freezes every weight of the model and learns, for each layer, P
key and value vectors that every real token can attend to. In minitx a prefix *is* a pre-filled
key/value cache: `model(idx, past=[(k, v), ...])`, one pair of shape (1, n_head, P, head_size)
per layer. Here the prefix is written out by hand: plain `nn.Parameter`s and an AdamW over them
alone. The task: answer a word with its opposite ("hot ->" " cold").

Run:  python lessons/17_real_gpt2.py --gpt2 PATH   (or set MINITX_GPT2=PATH)
Without a path it prints how to get GPT-2's files and exits. Nothing is downloaded.
"""
# %% [markdown]
# # 16 · Prefix-tuning a real GPT-2
#
# A GPT-2 directory holds `config.json`, `model.safetensors` (or `pytorch_model.bin`),
# `vocab.json` and `merges.txt`. Make one once, on a machine with internet (see `HOW_TO_GET`),
# and copy the folder over.

# %%
import argparse
import os
import sys
import time

import torch
import torch.nn as nn

from minitx.generate import generate
from minitx.gpt2 import GPT2Tokenizer, load_gpt2

HOW_TO_GET = """\
This lesson needs a local GPT-2 directory: pass --gpt2 PATH or set MINITX_GPT2=PATH.
Nothing is downloaded. On a machine with internet and `pip install transformers`, run

    python -c "from transformers import GPT2LMHeadModel, GPT2Tokenizer; \\
GPT2LMHeadModel.from_pretrained('gpt2').save_pretrained('gpt2-local'); \\
GPT2Tokenizer.from_pretrained('gpt2').save_pretrained('gpt2-local')"

(or `huggingface-cli download gpt2 config.json model.safetensors vocab.json merges.txt
--local-dir gpt2-local`), then copy the folder gpt2-local here and run

    python lessons/17_real_gpt2.py --gpt2 gpt2-local

model.safetensors needs `pip install safetensors`; pytorch_model.bin needs only torch.
"""

# %% [markdown]
# ## The task: opposites
#
# A prompt is a word and an arrow; the answer is a space, its opposite and a newline. The loss
# is taken on the answer tokens only. Two pairs are held out to see whether the prefix learned
# "opposite" or only these words.

# %%
TRAIN = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"),
         ("light", "dark"), ("open", "closed"), ("old", "young"), ("high", "low"), ("wet", "dry")]
HELD_OUT = [("rich", "poor"), ("early", "late")]


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


# %% [markdown]
# ## The prefix: one (k, v) pair per layer, started from a real phrase
#
# Li & Liang found optimising a prefix directly unstable (§4.3), and that starting it from the
# activations of real words helps (§7.4). That start costs one forward pass: the keys and
# values GPT-2 computes for a phrase *are* a prefix of shape (1, n_head, P, head_size). Before
# any step, the tuned model is exactly the model prompted with that phrase. (`minitx.tuning`
# packages the same idea, with the paper's reparameterisation, for the other lessons; here
# every piece stays in sight.)

# %%
INIT_TEXT = " Write the opposite of each word."


def init_prefix(model, tok, text=INIT_TEXT):
    """One (k, v) pair of nn.Parameters per layer: GPT-2's own keys and values for `text`."""
    with torch.no_grad():
        _, _, present = model(torch.tensor([tok.encode(text)]))
    return [(nn.Parameter(k.clone()), nn.Parameter(v.clone())) for k, v in present]


def train_prefix(model, prefix, idx, targets, steps=40, lr=1e-2, log_every=10):
    """AdamW over the prefix alone; the model's own weights stay frozen. Returns the losses."""
    model.requires_grad_(False)
    opt = torch.optim.AdamW([p for kv in prefix for p in kv], lr=lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        _, loss, _ = model(idx, targets=targets, past=prefix)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:3d}  loss {loss.item():.3f}")
    return losses


# %% [markdown]
# ## Greedy answers with and without the prefix
#
# `generate` runs the prompt once with the prefix as `past`; what it gets back is a cache that
# already holds the prefix, so later tokens need nothing special.

# %%
def answer(model, tok, word, prefix=None, n=4):
    """Greedy continuation of the prompt for `word`, up to its first newline."""
    idx = torch.tensor([tok.encode(prompt(word))])
    out = generate(model, idx, n, past=prefix)
    return tok.decode(out[0].tolist()).split("\n")[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpt2", default=os.environ.get("MINITX_GPT2"), help="local GPT-2 directory")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-2)
    args = ap.parse_args(argv)
    if not args.gpt2:
        print(HOW_TO_GET)
        return 0
    torch.manual_seed(0)
    start = time.time()
    try:
        model, tok = load_gpt2(args.gpt2), GPT2Tokenizer.from_dir(args.gpt2)
    except (OSError, ImportError, ValueError) as e:  # a missing file names what must be there
        print(f"could not load GPT-2 from {args.gpt2!r}: {e}")
        return 1
    c = model.config
    print(f"loaded GPT-2: {c.n_layer} layers, {c.n_head} heads, n_embd {c.n_embd}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters "
          f"({time.time() - start:.1f} s)")
    prefix = init_prefix(model, tok)
    n_prefix = sum(p.numel() for kv in prefix for p in kv)
    print(f"prefix: {prefix[0][0].size(2)} positions x {c.n_layer} layers = {n_prefix} numbers")
    idx, targets = make_batch(tok, TRAIN)
    losses = train_prefix(model, prefix, idx, targets, args.steps, args.lr)
    for word, want in TRAIN[:4] + HELD_OUT:
        tag = "held out" if (word, want) in HELD_OUT else "trained"
        print(f"{prompt(word)!r:10} {tag:8} want {' ' + want!r:9} no prefix: "
              f"{answer(model, tok, word)!r:16} prefix: {answer(model, tok, word, prefix)!r}")
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; {time.time() - start:.1f} s in all")
    return 0


# %%
if __name__ == "__main__":
    sys.exit(main())
