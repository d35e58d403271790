"""Lesson 12 — an encoder–decoder has three places for a prefix: which of them matter?

Li & Liang (2021, arXiv 2101.00190 §4) tune GPT-2 with one prefix per layer, and BART with
z = [PREFIX; x; PREFIX′; y]; their BART code keeps *three* prefixes in every layer:

* encoder — in front of the encoder's self-attention keys/values (it changes how x is read),
* decoder — in front of the decoder's self-attention keys/values (the decoding cache starts there),
* cross   — in front of the encoder output that every decoder query attends to.

minitx's `Seq2Seq` (minitx/seq2seq.py) is built from the very blocks of `GPT`: the encoder is
`Block(causal=False)`, the decoder `Block(cross=True)`, and all three prefixes are nothing but
keys/values put in front, through the same `past` argument a decoding cache uses.

This lesson
1. pretrains a small Seq2Seq for a few seconds on the course's synthetic corpus, where every
   source starts with an instruction ("describe the restaurant : name = ... | food = ..."),
2. asks it for data-to-text *without* the instruction — the frozen model half knows the task —
   and prefix-tunes the frozen model on 512 examples with all three prefixes, each one alone,
   and none (the frozen baseline), scoring BLEU / ROUGE-L against the three right answers.

The numbers are this toy world's, not the paper's (E2E with GPT-2: BLEU 70.3 with a full
prefix, 48.1–62.2 with an embedding-only prefix; the paper reports no per-kind ablation for
BART). Each row is the mean over seeds; single runs at this scale are noisy (see "spread").
Run: python lessons/12_seq2seq_prefixes.py [--fast]
"""
# %%
import random
import statistics
import sys
import time

import torch

from minitx import data
from minitx.metrics import corpus_bleu, rouge_l
from minitx.model import Config
from minitx.seq2seq import Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq, generate_seq2seq
from minitx.tuning import count_parameters

TOK = data.course_tokenizer()
BOS = TOK.ids["=>"]  # the decoder starts from "=>" and ends with ";"
ABLATION = {"all three": ("encoder", "decoder", "cross"), "encoder only": ("encoder",),
            "decoder only": ("decoder",), "cross only": ("cross",), "none (frozen)": ()}

# %% [markdown]
# ## Data: the course corpus, cut at "=>"
# A line "describe the restaurant : name = the mill | food = thai => the mill is a thai
# restaurant ;" becomes the source "describe the restaurant : name = the mill | food = thai" and
# the target "the mill is a thai restaurant ;". The decoder reads "=> target" and predicts
# "target ;". Sources are right-padded; `src_mask` hides the padding from the encoder and from
# cross-attention. Targets are right-padded too, with target -1 (no loss) on the padding.


# %%
def batch(pairs):
    """(src, src_mask, decoder input, targets) for a list of (source text, target text ;)."""
    src = [TOK.encode(s) for s, _ in pairs]
    tgt = [TOK.encode(t) for _, t in pairs]
    S, T = max(map(len, src)), max(map(len, tgt))
    x = torch.tensor([r + [TOK.pad_id] * (S - len(r)) for r in src])  # (B, S)
    mask = torch.tensor([[True] * len(r) + [False] * (S - len(r)) for r in src])
    dec = torch.tensor([[BOS] + r[:-1] + [TOK.pad_id] * (T - len(r)) for r in tgt])  # (B, T)
    y = torch.tensor([r + [-1] * (T - len(r)) for r in tgt])
    return x, mask, dec, y


def train(module, params, examples, steps, lr, batch_size=32, seed=0, warmup=0):
    """Plain AdamW with linear warmup and decay: the smallest loop that does the job."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1)) * (1 - step / steps)
        x, mask, dec, y = batch(rng.sample(examples, batch_size))
        _, loss, _ = module(x, dec, targets=y, src_mask=mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def evaluate(model, examples, instruction=None, **task):
    """Greedy decoding with the KV cache; BLEU and ROUGE-L against all three references."""
    sources = [(f"{instruction} : " if instruction else "") + e.source for e in examples]
    x, mask, _, _ = batch([(s, ";") for s in sources])
    out = generate_seq2seq(model, x, 32, src_mask=mask, bos_id=BOS, stop_ids=(TOK.stop_id,),
                           pad_id=TOK.pad_id, **task)
    hyps = [TOK.decode(row).replace(";", "").strip() for row in out]
    refs = [list(e.references) for e in examples]
    return corpus_bleu(hyps, refs), rouge_l(hyps, refs), hyps


# %% [markdown]
# ## 1. Pretrain a small encoder–decoder
# Two encoder and two decoder layers of width 64: about 0.2M parameters. A few hundred steps
# teach it the corpus well enough that the instruction "describe the restaurant" works.


# %%
def pretrain(steps):
    torch.manual_seed(0)
    model = Seq2Seq(Config(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_head=4,
                           n_embd=64))
    lines = data.pretraining_corpus(steps * 32, seed=0)
    pairs = [(line.split(" => ")[0], line.split(" => ")[1]) for line in lines]
    loss = train(model, model.parameters(), pairs, steps, lr=3e-3, warmup=30)
    return model.eval().requires_grad_(False), loss


# %% [markdown]
# ## 2. Prefix-tune the frozen model, one kind at a time
# Each prefix is 5 positions long (Li & Liang chose 5 for E2E and WebNLG) and reparameterized
# as in the paper, P = MLP(P′) with its own MLP per kind (mid = 64 here, 512 in the paper).
# After training `export()` drops the MLPs; only the prefixes are kept.


# %%
def tune(base, kinds, examples, steps, seed):
    torch.manual_seed(seed)
    tuned = TunedSeq2Seq(base)
    prefix = tuned.add("d2t", Seq2SeqPrefix(base, length=5, mid=64, kinds=kinds))
    train(tuned, prefix.parameters(), examples, steps, lr=3e-3, seed=seed)
    return tuned, count_parameters(prefix)[0], count_parameters(prefix.export())[0]


# %%
def main(fast=False, seeds=(0, 1)):
    start = time.time()
    base, pre_loss = pretrain(60 if fast else 500)
    train_set = [(e.source, e.target + " ;")
                 for e in data.make_split("data_to_text", 512, "train", seed=1)]
    test = data.make_split("data_to_text", 30 if fast else 100, "test")
    seeds = seeds[:1] if fast else seeds
    instructed = evaluate(base, test, "describe the restaurant")
    print(f"pretrained in {time.time() - start:.1f} s (last loss {pre_loss:.2f}); frozen, with the "
          f"instruction: BLEU {instructed[0]:.1f} ROUGE-L {instructed[1]:.1f}")
    table = []
    for name, kinds in ABLATION.items():
        scores = []
        for seed in seeds:
            if kinds:
                model, trained, kept = tune(base, kinds, train_set, 20 if fast else 150, seed)
                scores.append(evaluate(model, test)[:2])
            else:  # the frozen model, no instruction, nothing trained
                trained = kept = 0
                scores.append(evaluate(base, test)[:2])
        bleu, rouge = (statistics.mean(s[i] for s in scores) for i in (0, 1))
        spread = max(s[0] for s in scores) - min(s[0] for s in scores)
        table.append({"prefixes": name, "params": trained, "kept": kept, "bleu": bleu,
                      "rouge_l": rouge, "bleu_spread": spread})
    print(f"\n{'prefixes':<15}{'trained':>9}{'kept':>7}{'BLEU':>7}{'ROUGE-L':>9}  BLEU spread "
          f"over {len(seeds)} seed(s)")
    for r in table:
        print(f"{r['prefixes']:<15}{r['params']:>9,}{r['kept']:>7,}{r['bleu']:>7.1f}"
              f"{r['rouge_l']:>9.1f}{r['bleu_spread']:>8.1f}")
    seconds = time.time() - start
    print(f"\n{seconds:.1f} s in all")
    return {"table": table, "with_instruction": {"bleu": instructed[0], "rouge_l": instructed[1]},
            "pretrain_loss": pre_loss, "seconds": seconds}


# %% [markdown]
# ## What it found (500 pretraining steps, 150 tuning steps, 2 seeds; see the printed table)
# FINDINGS


# %%
if __name__ == "__main__":
    main("--fast" in sys.argv)
