"""Lesson 13 — an encoder–decoder has three places for a prefix: which of them matter?

Li & Liang (2021, arXiv 2101.00190 §4) tune GPT-2 with one prefix per layer, and BART with
z = [PREFIX; x; PREFIX′; y]; their BART code keeps *three* prefixes in every layer:

* encoder — in front of the encoder's self-attention keys/values (it changes how x is read),
* decoder — in front of the decoder's self-attention keys/values (the decoding cache starts
  there),
* cross   — in front of the encoder output that every decoder query attends to.

minitx's `Seq2Seq` (minitx/seq2seq.py) is built from the very blocks of `GPT`: the encoder is
`Block(causal=False)`, the decoder `Block(cross=True)`, and all three prefixes are nothing but
keys/values put in front, through the same `past` argument a decoding cache uses.

This lesson
1. pretrains a small Seq2Seq for ~15 s on two of the course's synthetic tasks (data_to_text and
   copy, from lessons/toyworld.py), every source led by an instruction ("describe the restaurant : name
   = the mill | food = thai"); each target is one of three right phrasings, drawn at random;
2. asks for a *house style* — always the third phrasing ("for thai food try the mill") — with
   no instruction, and prefix-tunes the frozen model on 512 examples: all three prefixes, each
   kind alone, and none (the frozen baseline). BLEU / ROUGE-L / exact match are measured against
   the house-style sentence on 100 unseen inputs.

The numbers are this toy world's, not the paper's. The paper has no per-kind ablation for BART;
its nearest evidence is E2E with GPT-2 (ACL version, BLEU): a prefix in every layer 70.3, an
embedding-only prefix (= prompt tuning) 48.1–62.2. Rows are means over tuning seeds; the spread
of the *base model* matters more (see "What it found").
Run: python lessons/13_seq2seq_prefixes.py [--fast] [--base-seed N]
"""
# %%
import random
import statistics
import sys
import time

import torch

import toyworld
from minitx.data import split_of
from minitx.metrics import corpus_bleu, rouge_l
from minitx.model import Config
from minitx.seq2seq import Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq, generate_seq2seq
from minitx.tuning import count_parameters

TOK = toyworld.course_tokenizer()
BOS = TOK.ids["=>"]  # the decoder starts from "=>" and ends with ";"
HOUSE = 2  # the house style: "for thai food at cheap prices try the mill in the old town"
ABLATION = {"all three": ("encoder", "decoder", "cross"), "encoder only": ("encoder",),
            "decoder only": ("decoder",), "cross only": ("cross",), "none (frozen)": ()}

# %% [markdown]
# ## Data: source and target, split at "=>"
# The course's line "describe the restaurant : name = the mill | food = thai => the mill is a
# thai restaurant ;" becomes the source "describe the restaurant : name = the mill | food = thai"
# and the target "the mill is a thai restaurant ;". The decoder reads "=> target" and predicts
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
    """Greedy decoding with the KV cache. BLEU, ROUGE-L and exact match (%) against the house
    style, and BLEU against any of the three right phrasings (is the content right?)."""
    sources = [(f"{instruction} : " if instruction else "") + e.source for e in examples]
    x, mask, _, _ = batch([(s, ";") for s in sources])
    out = generate_seq2seq(model, x, 32, src_mask=mask, bos_id=BOS, stop_ids=(TOK.stop_id,),
                           pad_id=TOK.pad_id, **task)
    hyps = [TOK.decode(row).replace(";", "").strip() for row in out]
    house = [[e.references[HOUSE]] for e in examples]
    return {"bleu": corpus_bleu(hyps, house), "rouge_l": rouge_l(hyps, house),
            "exact": 100 * statistics.mean(h == r[0] for h, r in zip(hyps, house)),
            "bleu_any": corpus_bleu(hyps, [list(e.references) for e in examples])}


# %% [markdown]
# ## 1. Pretrain a small encoder–decoder
# Two encoder and two decoder layers of width 64 (0.26M parameters), 400 steps of 32 lines:
# enough to copy the facts into a sentence (BLEU ~87–90 against any right phrasing), while the
# phrasing it picks is whichever it learned to prefer.


# %%
def corpus(n, tasks=("data_to_text", "copy"), seed=0):
    """n (source, target ;) pairs of the given tasks, each asked in a seen phrasing, from
    train-split inputs only (split_of), so no test input is ever pretrained."""
    rng, pairs = random.Random(seed), []
    while len(pairs) < n:
        task = toyworld.TASKS[rng.choice(tasks)]
        example = task.make(rng)
        if split_of(example.source) == "train":
            instruction = rng.choice(task.phrasings[:task.n_seen])
            pairs.append((f"{instruction} : {example.source}", f"{example.target} ;"))
    return pairs


def pretrain(steps, seed=0):
    torch.manual_seed(seed)
    model = Seq2Seq(Config(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_head=4,
                           n_embd=64))
    pairs = corpus(steps * 32)
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
def main(fast=False, seeds=(0, 1), base_seed=0):
    """Run the lesson on one thread and return the measured numbers. Matrices this small gain
    nothing from threads, and on a busy machine OpenMP's waiting makes every step many times
    slower; one thread also keeps the table the same on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(fast, seeds, base_seed)
    finally:
        torch.set_num_threads(threads)


def run(fast, seeds, base_seed):
    start = time.time()
    base, pre_loss = pretrain(60 if fast else 400, base_seed)
    train_set = [(e.source, f"{e.references[HOUSE]} ;")
                 for e in toyworld.make_split("data_to_text", 512, "train", seed=1)]
    test = toyworld.make_split("data_to_text", 30 if fast else 100, "test")
    seeds = seeds[:1] if fast else seeds
    instructed, frozen = evaluate(base, test, "describe the restaurant"), evaluate(base, test)
    print(f"pretrained in {time.time() - start:.1f} s (last loss {pre_loss:.2f}). Frozen, BLEU "
          f"against any right phrasing: {instructed['bleu_any']:.1f} with the instruction, "
          f"{frozen['bleu_any']:.1f} without; against the house style: {instructed['bleu']:.1f}"
          f" and {frozen['bleu']:.1f}")
    table = []
    for name, kinds in ABLATION.items():
        runs, trained, kept = [], 0, 0
        for seed in seeds if kinds else seeds[:1]:  # the frozen model has nothing to seed
            model = base
            if kinds:
                model, trained, kept = tune(base, kinds, train_set, 20 if fast else 120, seed)
            runs.append(evaluate(model, test))
        row = {"prefixes": name, "params": trained, "kept": kept}
        row.update({k: statistics.mean(r[k] for r in runs) for k in runs[0]})
        row["bleu_spread"] = max(r["bleu"] for r in runs) - min(r["bleu"] for r in runs)
        table.append(row)
    print(f"\nhouse style, {len(seeds)} seed(s)  trained   kept   BLEU  ROUGE-L  exact%  "
          f"BLEU spread")
    for r in table:
        print(f"{r['prefixes']:<21}{r['params']:>9,}{r['kept']:>7,}{r['bleu']:>7.1f}"
              f"{r['rouge_l']:>9.1f}{r['exact']:>8.1f}{r['bleu_spread']:>8.1f}")
    seconds = time.time() - start
    print(f"\n{seconds:.1f} s in all")
    return {"table": table, "frozen_with_instruction": instructed, "pretrain_loss": pre_loss,
            "seconds": seconds}


# %% [markdown]
# ## What it found (measured with this script; `--base-seed` reproduces the other bases)
# Base seed 0 (the default), means over 2 tuning seeds, BLEU / exact match vs the house style:
#
# | prefixes      | trained | kept  | base 0      | base 1       | base 2      |
# | ------------- | ------: | ----: | ----------- | ------------ | ----------- |
# | all three     |  63,360 | 3,840 | 93.0 / 75%  |  99.9 / 100% | 90.4 / 53%  |
# | encoder only  |  21,120 | 1,280 | 91.9 / 70%  | 100.0 / 100% | 87.5 / 43%  |
# | decoder only  |  21,120 | 1,280 | 88.2 / 58%  |  99.5 / 97%  | 89.5 / 49%  |
# | cross only    |  21,120 | 1,280 | 90.5 / 65%  |  99.9 / 100% | 92.0 / 60%  |
# | none (frozen) |       0 |     0 | 20.3 / 1%   |  62.9 / 55%  | 47.3 / 11%  |
#
# * The frozen model knows the content (BLEU ~87 against any right phrasing) but not the house
#   style; every prefix kind, even alone, closes most of that gap with 1,280 kept numbers
#   (2 · layers · length · width = 2·2·5·64) — 0.5% of the base model.
# * Which single kind is best is *not* stable here: encoder-only is best on base 0 and worst
#   on base 2, cross-only the reverse. The tuning seeds agree within ~1.5 BLEU, the bases
#   differ by far more, and the frozen baseline itself ranges from 20 to 63 BLEU, depending on
#   which phrasing the base happened to prefer. Read the ordering of the tuned rows as noise;
#   trust only "each kind alone steers the style, all three are never far from the best".
# * Why one kind suffices: choosing a phrasing is a decision the decoder must make, and all
#   three kinds reach it — the decoder prefix directly, the cross prefix through every decoder
#   query (the tests prove each query attends to it), the encoder prefix by rewriting the memory
#   the decoder reads. A harder task (new content, not a choice among learned ones) is where
#   the paper's kinds could separate; Li & Liang only ever used all three together.
# * The MLP (reparameterization, mid = 64) costs 16x the kept parameters during training and is
#   dropped by `export()`, as in the paper (§4.3).


# %%
if __name__ == "__main__":
    args = sys.argv[1:]
    seed = int(args[args.index("--base-seed") + 1]) if "--base-seed" in args else 0
    main("--fast" in args, base_seed=seed)
