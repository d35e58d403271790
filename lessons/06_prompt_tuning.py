# %% [markdown]
# # 06 · Prompt tuning: learning rate, initialisation, length, cost
#
# Prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for Parameter-Efficient
# Prompt Tuning") trains only p vectors in front of the input embeddings of a frozen model. The
# source article lists the choices a practitioner makes — the initialisation (random, from the
# vocabulary, from text such as "Classify this text:"), the length, the scale of the model — and
# prints a trainable-parameter percentage. Lester et al. ablated exactly these on T5 1.1 (§3.2,
# Figure 3): random uniform init < sampled vocabulary < class labels, with large gaps for small
# models that vanish at T5-XXL (11B); more than one token is critical (except at XXL) and beyond
# 20 tokens the gains are marginal.
#
# What you will learn:
# 1. why the paper's learning rate (0.3, with Adafactor) is the wrong one to copy for AdamW, and
#    which rate the course's validation sweep chose instead;
# 2. the initialisation and length ablations re-run on the course's frozen small base (a small
#    model in the paper's sense) in a low-data, few-step regime, each conclusion a per-seed
#    paired verdict;
# 3. the trainable-parameter share, computed for this model, for the article's worked example
#    and for the paper's T5 1.1 Base from configuration numbers.
#
# Run: `python lessons/06_prompt_tuning.py [--fast | --full]` (default: under a minute on a
# laptop CPU; `--fast`: seconds, what the tests run; `--full`: 5 seeds, lengths 20 and 100).
# Papers are listed in [REFERENCES.md](REFERENCES.md).
#
# Two tasks of the toy world, both pretrained under four wordings (lesson 05):
# * **reverse** (generation, exact match): without an instruction the frozen base cannot do it —
#   the prompt must *activate* the skill, and it shares its inputs with copy, so it must choose;
# * **intent** (classification by the label word with the highest logit right after "=>":
#   returns / shipping / recommend).

# %%
import json
import statistics

import torch
import torch.nn.functional as F

from common import (LR_GRID, RESULTS, SEEDS, chosen_lr, classify, evaluate, lesson_mode,
                    load_base, seed_everything, setup, table, takeaway, task_batches, tune,
                    validation_loss, verdict)
from minitx import GPT, Config
from minitx.data import encode_prompts
from minitx.tuning import SoftPrompt, Tuned, count_parameters
from toyworld import TASKS, make_split, prompt_text

MODE = lesson_mode()
SETTINGS = {  # prompt length, training inputs, steps per task, test inputs, lengths swept
    "fast": dict(n_tokens=5, n_train=16, steps=3, intent_steps=2, n_test=8, intent_test=24,
                 lengths=(1, 5)),
    "default": dict(n_tokens=5, n_train=32, steps=10, intent_steps=6, n_test=30,
                    intent_test=100, lengths=(1, 5)),
    "full": dict(n_tokens=5, n_train=32, steps=10, intent_steps=6, n_test=100,
                 intent_test=300, lengths=(1, 5, 20, 100)),
}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
setup(0)
base, tok = load_base("small")
wte = base.transformer.wte.weight
tests = {"reverse": make_split("reverse", S["n_test"], "test"),
         "intent": make_split("intent", S["intent_test"], "test")}
LR = {task: chosen_lr(task, "prompt") for task in tests}  # chosen on validation data
print(f"mode {MODE}: seeds {list(SEED_LIST)}; test inputs: reverse {S['n_test']}, intent "
      f"{S['intent_test']}")

# %% [markdown]
# ## 1. The learning rate
#
# Lester et al. tuned prompts with Adafactor at a constant learning rate of 0.3 for 30,000
# steps (arXiv 2104.08691v2, §3). Copied into AdamW, that rate means something else. Adam
# divides each gradient coordinate by a running estimate of its own size, so its first step
# moves *every* coordinate by about `lr` whatever the gradient's scale: a prompt vector of
# width d moves by about lr·√d. Compare that with the length of a word embedding, which is
# where the frozen model's inputs live. The cell measures one real AdamW step from a
# vocabulary-initialised prompt.

# %%
def first_step_move(lr, task="reverse"):
    """Mean L2 distance each prompt vector moves in one AdamW step (no weight decay)."""
    seed_everything(0)
    prompt = SoftPrompt(base, S["n_tokens"], init="vocab")
    tuned = Tuned(base)
    tuned.add(task, prompt)
    start = prompt.embeddings.detach().clone()
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=lr, weight_decay=0.0)
    batch = task_batches(tok, make_split(task, 16, "train"), 16)(0)
    tuned(**batch)[1].backward()
    optimizer.step()
    return (prompt.embeddings.detach() - start).norm(dim=1).mean().item()


word_length = wte.norm(dim=1).mean().item()
random_length = (base.config.n_embd / 12) ** 0.5  # E[u^2] = 1/12 for u ~ U(-0.5, 0.5)
moves = {lr: first_step_move(lr) for lr in sorted({LR["reverse"], 0.3})}
print(f"word embeddings: mean length {word_length:.2f}, entry std {wte.std().item():.3f}; "
      f"a U(-0.5, 0.5) vector of width {base.config.n_embd}: about {random_length:.2f}")
for lr, move in moves.items():
    print(f"one AdamW step at lr {lr:g} moves each prompt vector by {move:.2f} "
          f"(lr x sqrt(d) = {lr * base.config.n_embd ** 0.5:.2f}), {move / word_length:.1f} word "
          f"lengths")

# %% [markdown]
# So the course does not copy 0.3: lessons/choose_lrs.py trains each method at every rate of a
# grid (`common.LR_GRID`), seed 0, and keeps the rate with the lowest loss on the *validation*
# split; test data is never read. Its record, lessons/results/learning_rates.json, holds the
# whole sweep. The prompt rows for our two tasks:

# %%
record = json.loads((RESULTS / "learning_rates.json").read_text())
table([{"lr": f"{lr:g}",
        **{task: record["validation_loss"][task]["prompt"].get(f"{lr:g}") for task in tests},
        "chosen for": " ".join(t for t in tests if LR[t] == lr) or "-"}
       for lr in LR_GRID["prompt"]],
      f"validation loss of a soft prompt by learning rate (written {record['date']})",
      floatfmt="{:.2e}",
      notes={"reverse, intent": "mean next-token loss on each task's validation split (the "
                                "answer tokens)",
             "sweep": ", ".join(f"{k} {v}" for k, v in record["budget"].items())
             + f", seed {record['seed']}, the course's standard prompt"})
for task in tests:
    losses = record["validation_loss"][task]["prompt"].values()
    print(f"{task}: validation loss {min(losses):.2e} (best rate) to {max(losses):.2e} (worst): "
          f"a spread of {max(losses) - min(losses):.2e} nats")

# %% [markdown]
# Where a task's validation losses differ by a tiny amount (in nats per answer token) from the
# best rate to the worst, the sweep's choice among them matters little; the spread lines say
# which case each task is in. Below, every run
# uses its task's chosen rate, and one extra arm re-runs the vocabulary-initialised prompt at
# 0.3 on every seed, so the lr argument gets a verdict too.
#
# ## 2. Initialisation: random, words, text, labels
#
# `SoftPrompt(base, n, init=...)` takes "random" (uniform [-0.5, 0.5], the paper's baseline),
# "vocab" (embeddings of sampled words; Lester et al. sampled the 5,000 most common tokens,
# §2.1; our whole vocabulary has fewer words than that) or a list of token ids. For a phrase or
# the class labels we follow the paper's rule for labels: their embeddings fill some positions
# and sampled vocabulary fills the rest. We put the words *last*, right before the input,
# where an instruction sits in the pretraining lines.
#
# Intent gets the paper's three kinds (random, sampled vocabulary, class labels); reverse, which
# has no labels, gets two texts instead: the article's own phrase "classify this text :" and a
# pretrained wording. The second one is a strong start in this toy world, for a reason worth
# seeing: a soft prompt made of the embeddings of real words *is* that hard prompt (lesson 01;
# tests/test_tuning.py proves it in float64), so the prompt starts where the pretrained
# instruction already works — only the sampled word in front of it disturbs it. A real model
# was never pretrained on "your" instruction for your task, so its text initialisation is only
# a hint, not the answer.

# %%
def fill(tok, words, n, seed):
    """Token ids of `words` at the end, sampled vocabulary ids in front: n ids in all."""
    ids = tok.encode(words)[-n:]
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randint(0, tok.vocab_size, (n - len(ids),), generator=g).tolist() + ids


def phrase_that_fits(task, n, seen):
    """The first pretrained (seen=True) or last held-out wording whose "<words> :" fits n ids."""
    t = TASKS[task]
    pool = t.phrasings[:t.n_seen] if seen else t.phrasings[t.n_seen:][::-1]
    return next((f"{p} :" for p in pool if len(p.split()) + 1 <= n), None)


def inits(task, n):
    """[(row name, words or None, "random" | "vocab" | "words")] for a task."""
    rows = [("random uniform", None, "random"), ("sampled vocabulary", None, "vocab")]
    if TASKS[task].labels:  # the paper's third kind
        return rows + [("class labels", " ".join(TASKS[task].labels), "words")]
    rows.append(("text: article's phrase", "classify this text :", "words"))
    words = phrase_that_fits(task, n, seen=True)
    return rows + ([("text: pretrained wording", words, "words")] if words else [])


# %% [markdown]
# Each run scores the untrained prompt (step 0), tunes it with AdamW (`common.tune`) on a small
# training sample, and scores it again on the task's test inputs. A seed fixes the training
# sample, the batch order and the sampled words, so the arms of one seed are paired. Two
# scores each: the coarse one a user sees (reverse: exact match of the greedy answer; intent:
# accuracy) and a finer one, the NLL x100 (lower is better) — for reverse the mean −log p of
# each answer token given the ones before it (`common.validation_loss`, here on test inputs),
# for intent −log p(right label word) over the whole vocabulary right after "=>".

# %%
@torch.no_grad()
def label_scores(model, task):
    """Accuracy % (is the label word with the highest logit right after '=>' the right one?) and
    label NLL x100 (mean -log p(right label word) over the whole vocabulary), one forward pass."""
    examples = tests[task]
    idx, mask = encode_prompts(tok, [prompt_text(e) for e in examples])
    logp = model(idx, attention_mask=mask)[0][:, -1].log_softmax(-1)  # (B, vocab)
    label_ids = torch.tensor([tok.encode(label)[0] for label in TASKS[task].labels])
    gold = torch.tensor([tok.encode(e.label)[0] for e in examples])
    picked = label_ids[logp[:, label_ids].argmax(-1)]
    return {"score": 100 * (picked == gold).float().mean().item(),
            "nll": -100 * logp[torch.arange(len(examples)), gold].mean().item()}


def measure(model, task):
    """Scores on the task's test inputs: accuracy % or exact match %, and the NLL x100."""
    if TASKS[task].labels:
        return label_scores(model, task)
    # answers here are at most 7 words and ";": 16 new tokens leave room for a 100-token
    # prompt in the 128 positions of the base model
    return {"score": evaluate(model, tok, task, tests[task], max_new_tokens=16)["exact"],
            "nll": 100 * validation_loss(model, tok, tests[task])}


runs = {}  # (task, init kind, words, length, seed, lr) -> scores before/after, the prompt


def run(task, kind, words, n, seed, lr=None, score_start=True):
    """One tuned prompt (cached: the length sweep reuses the 5-token random runs); the untrained
    prompt is scored too unless score_start=False."""
    lr = LR[task] if lr is None else lr
    key = (task, kind, words, n, seed, lr)
    if key not in runs:
        seed_everything(seed)
        prompt = SoftPrompt(base, n, init=kind if kind != "words" else fill(tok, words, n, seed))
        untrained = Tuned(base)
        untrained.add(task, prompt)
        before = measure(untrained.eval(), task) if score_start else None
        steps = S["intent_steps"] if task == "intent" else S["steps"]
        train_set = make_split(task, S["n_train"], "train", seed=seed)
        tuned, _ = tune(base, tok, prompt, train_set, steps, lr, seed=seed, task=task)
        runs[key] = dict(before=before, after=measure(tuned, task), prompt=prompt)
    return runs[key]


def per_seed(task, kind, words, n, key="score", when="after", lr=None):
    """The score `key` of every seed's run, `when` "before" or "after" training."""
    return [run(task, kind, words, n, seed, lr, score_start=when == "before")[when][key]
            for seed in SEED_LIST]


def init_rows(task, score):
    """One row per initialisation: the score and the NLL before and after, mean over seeds."""
    mean = statistics.fmean
    return [{"init": name, "words": words or "-",
             f"{score} 0": mean(per_seed(task, kind, words, n, when="before")),
             f"{score} after": mean(per_seed(task, kind, words, n)),
             "NLL 0": mean(per_seed(task, kind, words, n, "nll", "before")),
             "NLL after": mean(per_seed(task, kind, words, n, "nll"))}
            for name, words, kind in inits(task, n)]


# %%
n = S["n_tokens"]
reverse_rows = table(init_rows("reverse", "exact"),
                     f"(a) reverse: {n} tokens, {S['n_train']} training inputs, {S['steps']} "
                     f"steps, lr {LR['reverse']:g}, mean over {len(SEED_LIST)} seeds",
                     notes={"exact": "exact match %; 0: the untrained prompt (step 0)",
                            "NLL": "the answer's NLL per token x100 (lower is better)"})
intent_rows = table(init_rows("intent", "acc."),
                    f"(a) intent: {n} tokens, {S['n_train']} training inputs, "
                    f"{S['intent_steps']} steps, lr {LR['intent']:g}",
                    notes={"acc.": "accuracy %: the label word with the highest logit is right",
                           "NLL": "the label word's NLL x100, over the whole vocabulary"})
frozen = {"no instruction": classify(base, tok, tests["intent"], list(TASKS["intent"].labels)),
          "pretrained wording": classify(base, tok, tests["intent"], list(TASKS["intent"].labels),
                                         TASKS["intent"].phrasings[0])}
print(f"intent, frozen base: {frozen['no instruction']:.1f}% with no instruction, "
      f"{frozen['pretrained wording']:.1f}% with '{TASKS['intent'].phrasings[0]} :'")

# %% [markdown]
# Reading the tables: "step 0" shows which starts already work before any training (the
# pretrained wording is the working hard prompt with one sampled word in front). Exact match
# and accuracy are coarse: in a few steps a run either finds the skill or not, and a start that
# already classifies intent leaves accuracy no room to show a gap. The verdicts therefore
# compare the NLL, seed by seed, which moves before the greedy answer flips. One more verdict
# asks whether training *kept* the best start, the pretrained wording: at a rate where one step
# moves a vector by a sizeable part of a word's length (section 1), a few steps can carry it
# away from where it worked before they carry it anywhere better.

# %%
def lower_nll(task, kind, words, length=None, lr=None, when="after"):
    """Per seed, minus the NLL (after training, or "before"): higher is better, as `verdict`
    expects."""
    return [-v for v in per_seed(task, kind, words, length or n, "nll", when, lr)]


labels = " ".join(TASKS["intent"].labels)
PRETRAINED = phrase_that_fits("reverse", n, seen=True)
print("\nverdicts on the NLL x100 ('A > B': A has the lower NLL on every seed; A-B paired):")
print("reverse (answer NLL; phrase: the article's 'classify this text :')")
verdicts = {
    "vocab > random": verdict("vocab > random", lower_nll("reverse", "vocab", None),
                              lower_nll("reverse", "random", None)),
    "phrase > random": verdict("phrase > random",
                               lower_nll("reverse", "words", "classify this text :"),
                               lower_nll("reverse", "random", None)),
    "lr": verdict(f"lr {LR['reverse']:g} > lr 0.3 (vocab)", lower_nll("reverse", "vocab", None),
                  lower_nll("reverse", "vocab", None, lr=0.3)),
    "start kept": verdict("pretrained: after > step 0", lower_nll("reverse", "words", PRETRAINED),
                          lower_nll("reverse", "words", PRETRAINED, when="before")),
}
print("intent (label NLL)")
verdicts["labels > vocab"] = verdict("labels > vocab", lower_nll("intent", "words", labels),
                                     lower_nll("intent", "vocab", None))
verdicts["vocab > random (intent)"] = verdict("vocab > random", lower_nll("intent", "vocab", None),
                                              lower_nll("intent", "random", None))

# %% [markdown]
# Lester et al. (§7) also observed that with class-label initialisation "the class labels
# typically persist in the learned prompts": the nearest vocabulary word of each label position
# is still its label after tuning. Here, per seed, the nearest word of each label position after
# tuning, and how far the vectors moved (in word lengths). Whether the labels persist depends
# on how far the steps carry the vectors, which the learning rate and step count decide.

# %%
persist_rows = []
for seed in SEED_LIST:
    prompt = run("intent", "words", labels, n, seed)["prompt"]
    start = wte[torch.tensor(fill(tok, labels, n, seed))]
    vectors = prompt.embeddings.detach()
    cos = F.normalize(vectors, dim=1) @ F.normalize(wte, dim=1).T  # (n_tokens, vocab)
    nearest = [tok.words[i] for i in cos.argmax(1).tolist()][-len(TASKS["intent"].labels):]
    persist_rows.append({"seed": seed, "nearest words at the label positions": " ".join(nearest),
                         "labels kept": sum(a == b for a, b in zip(nearest, labels.split())),
                         "moved": (vectors - start).norm(dim=1).mean().item() / word_length})
table(persist_rows, "class-label prompt after tuning (intent)", floatfmt="{:.2f}",
      notes={"labels kept": f"label positions whose nearest word is still the label (of "
                            f"{len(TASKS['intent'].labels)})",
             "moved": "mean L2 distance from the initial vectors / mean word-embedding length"})
labels_kept = [r["labels kept"] for r in persist_rows]

# %% [markdown]
# ## 3. Prompt length
#
# The same regime, random initialisation (the one that needs the most help), lengths 1 and 5
# (`--full` adds 20 and 100). More vectors give the gradient more directions to find the skill
# in the same few steps, but each random vector is also an out-of-range input the frozen model
# must see past.

# %%
length_rows = table([{"length": length, "trainable": length * base.config.n_embd,
                      "exact after": statistics.fmean(per_seed("reverse", "random", None, length)),
                      "NLL after": -statistics.fmean(lower_nll("reverse", "random", None, length))}
                     for length in S["lengths"]],
                    f"(b) reverse, random init, by prompt length ({S['steps']} steps, mean over "
                    f"{len(SEED_LIST)} seeds)",
                    notes={"trainable": "numbers trained: length x width"})
print("\nverdicts, reverse answer NLL x100, random init:")
for short, long in zip(S["lengths"], S["lengths"][1:]):
    verdicts[f"{long} > {short}"] = verdict(f"{long} tokens > {short}",
                                            lower_nll("reverse", "random", None, long),
                                            lower_nll("reverse", "random", None, short))

# %% [markdown]
# Lester et al. saw longer prompts help after 30,000 steps on SuperGLUE (§3.2, Figure 3a).
# Here, after a few steps, a length effect says how fast a random start finds the skill, not
# where it ends up: lesson 05 trains 8 random vectors for longer. The paper's footnote 6 on long
# prompts: "Going past 100 tokens appears mildly detrimental for larger models."
#
# ## 4. What it costs: the trainable share, computed
#
# Lester et al. count the prompt against the frozen model plus the prompt (their Table 4), as
# `Tuned.report` does. Totals of published models come from their configuration numbers:
# BERT-base (vocab 30,522, width 768, 12 layers, FFN 3,072, 512 positions, 2 segment types, with
# the pooler), GPT-2 small (built by minitx itself on PyTorch's "meta" device, which allocates
# no memory, and counted by `count_parameters`), T5-base (FFN 3,072, tied output layer) and
# T5 1.1 Base, the model Lester et al. prompt-tuned (FFN 2,048 with a gated GELU, untied output
# layer). The source article's worked example prints "~0.02%" for a 15-token prompt of width
# 768: the table computes 15 x 768 against four models of that width.

# %%
def bert_params(vocab=30522, d=768, layers=12, ffn=3072, positions=512, types=2):
    embeddings = (vocab + positions + types) * d + 2 * d  # + LayerNorm
    layer = 4 * (d * d + d) + 2 * d + (d * ffn + ffn) + (ffn * d + d) + 2 * d
    return embeddings + layers * layer + (d * d + d)  # + pooler


def t5_params(vocab=32128, d=768, ffn=3072, layers=12, heads=12, d_kv=64, buckets=32,
              gated=False, tied=True):
    """T5: no biases, RMS norms with a scale only, relative position bias in each stack's first
    layer, an input embedding shared by encoder and decoder, and an output layer (tied or not)."""
    attn = 4 * d * heads * d_kv
    ff = (3 if gated else 2) * d * ffn
    encoder = layers * (attn + ff + 2 * d) + buckets * heads + d
    decoder = layers * (2 * attn + ff + 3 * d) + buckets * heads + d
    return vocab * d * (1 if tied else 2) + encoder + decoder


def gpt2_small_params():
    with torch.device("meta"):
        model = GPT(Config(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768))
    return count_parameters(model)[1]


LESTER_T5_BASE_100 = (76_800, 247_654_656, 0.03101)  # paper, Table 4: trainable, total, %


def cost_rows():
    rows = []
    for length in (1, 5, 15, 20, 100):
        tuned = Tuned(base)
        prompt = tuned.add("t", SoftPrompt(base, length))
        trainable = count_parameters(prompt)[0]
        total = count_parameters(base)[1] + trainable
        rows.append({"model": "course small base", "total from": "count_parameters",
                     "prompt": length, "trainable": trainable, "total": total,
                     "trainable %": 100 * trainable / total, "report": tuned.report("t")})
    for model, width, frozen, source in [
            ("BERT-base", 768, bert_params(), "config formula"),
            ("GPT-2 small", 768, gpt2_small_params(), "minitx GPT on meta"),
            ("T5-base (tied head)", 768, t5_params(), "config formula"),
            ("T5 1.1 Base", 768, t5_params(ffn=2048, gated=True, tied=False), "config formula")]:
        for length in (15, 100):
            trainable = length * width
            rows.append({"model": model, "total from": source, "prompt": length,
                         "trainable": trainable, "total": frozen + trainable,
                         "trainable %": 100 * trainable / (frozen + trainable)})
    return rows


costs = cost_rows()
table([{k: v for k, v in r.items() if k != "report"} for r in costs],
      "(c) trainable share: prompt only, against frozen model + prompt", floatfmt="{:.5f}",
      notes={"prompt": "prompt length (tokens)", "total": "frozen model + prompt"})
print(f"course model, 5-token prompt, Tuned.report:\n  {costs[1]['report']}")
t5 = next(r for r in costs if r["model"] == "T5 1.1 Base" and r["prompt"] == 100)
paper_frozen = LESTER_T5_BASE_100[1] - LESTER_T5_BASE_100[0]
print(f"T5 1.1 Base, frozen parameters: {t5['total'] - t5['trainable']:,} from its config")
print(f"  {paper_frozen:,} from Lester et al.'s Table 4 (total - prompt)")
print(f"  100 x 768 = {t5['trainable']:,} -> {t5['trainable %']:.5f}% "
      f"(paper, Table 4: {LESTER_T5_BASE_100[2]}%)")
article = [r for r in costs if r["prompt"] == 15 and r["model"] != "course small base"]
needed = 15 * 768 / 0.0002
print("the article's ~0.02% for 15 tokens x 768, computed:")
for r in article:
    print(f"  {r['model']:<20} {r['trainable %']:.4f}%")
print(f"  0.02% would need a {needed / 1e6:.1f}M-parameter model")

# %% [markdown]
# Our toy model, being tiny, spends a far larger share on the same prompt length: the share
# shrinks as models grow, which is half of the paper's argument (the other half: quality
# catches up with full fine-tuning as the model grows, which a toy cannot show).
#
# ## Paper against this run
#
# Lester et al.'s curves come from 30,000 steps on SuperGLUE with T5 1.1; ours from a few
# steps on a toy. Only the direction of an effect transfers, and "not shown" is an answer: the
# seeds disagree, so this run does not support either direction.

# %%
PAPER = [("vocab > random", "vocab > random (reverse)", "random lags vocab (Fig. 3b)"),
         ("labels > vocab", "labels > vocab (intent)", "class labels best (Fig. 3b)"),
         ("5 > 1", "5 tokens > 1 (reverse)", "> 1 token critical (Fig. 3a)"),
         ("20 > 5", "20 tokens > 5 (reverse)", "gains up to 20 (Fig. 3a)"),
         ("100 > 20", "100 tokens > 20 (reverse)", "beyond 20 marginal (Fig. 3a)"),
         ("lr", f"lr {LR['reverse']:g} > 0.3 (reverse)", "Adafactor at lr 0.3 (§3)")]
table([{"effect (NLL)": effect, "Lester et al. 2021": paper, "this run": verdicts[key].word}
       for key, effect, paper in PAPER if key in verdicts], "paper vs this run",
      notes={"effect (NLL)": "the claim each verdict above tested, on the NLL"})


def said(v):
    return f"{v.word} ({v.mean:+.1f})"


takeaway(
    f"one AdamW step at lr 0.3 moves a prompt vector {moves[0.3] / word_length:.1f} word lengths",
    f"reverse answer NLL, chosen lr {LR['reverse']:g} vs 0.3: {said(verdicts['lr'])}",
    f"init, reverse answer NLL: vocab vs random {said(verdicts['vocab > random'])}",
    f"init, reverse answer NLL: article's phrase vs random {said(verdicts['phrase > random'])}",
    f"pretrained-wording start, after {S['steps']} steps vs step 0: "
    f"{said(verdicts['start kept'])}",
    f"init, intent label NLL: labels vs vocab {said(verdicts['labels > vocab'])}",
    f"class labels kept as nearest words after tuning: {sum(labels_kept)} of "
    f"{len(labels_kept) * len(TASKS['intent'].labels)} label positions",
    *(f"length {key.replace(' > ', ' vs ')} (reverse answer NLL): {said(verdicts[key])}"
      for key in verdicts if key[0].isdigit()),
    f"a {n}-token prompt is {costs[1]['trainable %']:.3f}% of the course model; 15 x 768 is "
    f"{article[1]['trainable %']:.4f}% of GPT-2 small",
)

# %% [markdown]
# ## Exercises
#
# 1. **The share, by hand.** A 20-token prompt on the course model: compute its trainable
#    numbers and its trainable % (against base + prompt) with pencil and `count_parameters(base)`
#    only. It should equal the 20-token row of table (c) and `Tuned.report`. Hint: the width is
#    `base.config.n_embd`.
# 2. **Adam's first step.** Why does `first_step_move(lr)` come out close to lr·√d whatever the
#    loss? Check it for two rates that differ by 10x: the ratio of the moves should be 10.
#    Hint: on the first step Adam's update is m̂/(√v̂ + ε) with m̂ = g and v̂ = g².
# 3. **Smaller steps.** Set `LR["reverse"] = 0.01` and `S["steps"] = 40`, and rerun section 2.
#    Which init verdicts change, and does the pretrained start survive training now? This is
#    exploring, not choosing: a rate picked by looking at these test scores would be picked on
#    test. Hint: compare `first_step_move(0.01)` with a word's length.
# 4. **Labels that persist** (open). Lester et al. found the class labels persist after 30,000
#    steps. Find a learning rate and step count at which they persist here on every seed, and
#    one at which they do not. What does the "moved" column tell you? Hint: a vector stays
#    nearest to its label while it moves less than about the distance to the next word.
