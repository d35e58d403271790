# %% [markdown]
# # 13 · Three places for a prefix in an encoder–decoder
#
# Li & Liang tune GPT-2 with one prefix per layer, and an encoder–decoder (BART) with the input
# `[PREFIX; x; PREFIX'; y]` (arXiv 2101.00190, §4); their BART code keeps *three* prefixes in
# every layer. Their encoder–decoder experiments are summarization with BART-large: with the full
# XSum data the prefix (2% of the parameters) stays below fine-tuning (Table 2); it wins with
# little data (§6.3) and out of domain (Table 3). Details in [REFERENCES.md](REFERENCES.md). The
# three places:
#
# * **encoder**: in front of the encoder's self-attention keys/values (it changes how x is read);
# * **decoder**: in front of the decoder's self-attention keys/values (the decoding cache starts
#   there);
# * **cross**: in front of the encoder output that every decoder query attends to.
#
# What you will learn:
# 1. how minitx's `Seq2Seq` (minitx/seq2seq.py) is built from the very blocks of `GPT`, and why
#    all three prefixes are nothing but keys/values put in front through the `past` argument
#    that a decoding cache uses;
# 2. what a *house style* is, and why it is a task a prefix can learn: a choice among phrasings
#    the model already knows;
# 3. whether the three places differ: each kind alone, all three and none, every arm on
#    separately pretrained bases, the conclusions printed as per-seed paired verdicts — and why
#    arms must be compared on the same base: small bases differ in the phrasing they prefer.
#
# Run: `python lessons/13_seq2seq_prefixes.py [--fast | --full]` (default: under a minute on a
# laptop CPU; `--fast`: seconds, what the tests run; `--full`: 5 seeds, longer training).

# %%
import random
import statistics

import torch

import toyworld
from common import SEEDS, lesson_mode, seed_everything, setup, spread, table, takeaway, verdict
from minitx.data import split_of
from minitx.metrics import corpus_bleu, rouge_l
from minitx.model import Config
from minitx.seq2seq import KINDS, Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq, generate_seq2seq
from minitx.train import TrainConfig, train
from minitx.tuning import count_parameters

MODE = lesson_mode()
SETTINGS = {  # pretraining steps per base, tuning steps, test / validation inputs
    "fast": dict(pretrain_steps=40, tune_steps=8, n_test=40, n_val=40),
    "default": dict(pretrain_steps=200, tune_steps=60, n_test=200, n_val=100),
    "full": dict(pretrain_steps=400, tune_steps=120, n_test=268, n_val=241),
}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
LENGTH, MID = 5, 64  # prefix positions per kind; the reparameterization MLP's hidden width
RATES = (3e-3, 1e-2, 3e-2)  # the validation sweep's rates (section 3)
setup(0)
TOK = toyworld.course_tokenizer()
BOS = TOK.ids["=>"]  # the decoder starts from "=>" and ends with ";"
HOUSE = 2  # the house style is the third of data_to_text's three right phrasings
print(f"mode {MODE}: seeds {list(SEED_LIST)}, {S['pretrain_steps']} pretraining steps per base, "
      f"{S['tune_steps']} tuning steps, {S['n_test']} test inputs")

# %% [markdown]
# ## 1. Data: source and target, split at "=>"
#
# A course line "describe the restaurant : name = the mill | food = thai => the mill is a thai
# restaurant ;" becomes the *source* "describe the restaurant : name = the mill | food = thai"
# (what the encoder reads) and the *target* "the mill is a thai restaurant ;" (what the decoder
# writes). The decoder reads "=> target" and predicts "target ;", one token ahead. Sources are
# right-padded and `src_mask` hides the padding from the encoder and from cross-attention;
# targets are right-padded too, with target -1 (no loss) on the padding.
#
# **House style.** A house style is the one way an organisation always phrases a thing: a
# newspaper's style guide, a company's template for product descriptions. The toy world's
# `data_to_text` task (lessons/toyworld.py, an imitation of the E2E data set) has three right
# sentences for every set of facts, e.g. "blue spice is a greek restaurant", "there is a greek
# restaurant called blue spice" and "for greek food try blue spice". Pretraining shows the model
# all three, drawn at random, so it learns the *content* and some habit of *phrasing*. Our house
# style is always the third phrasing, and it is asked for with no instruction in the source. The
# content stays the same; only the form must change, so tuning must teach a choice, not new
# knowledge. BLEU and ROUGE-L (lessons/REFERENCES.md: Papineni et al. 2002; Lin 2004) are
# computed against the house-style sentence alone, so a correct sentence in another phrasing
# scores low; "BLEU any" scores against all three and checks the content.

# %%
def encode_pairs(pairs):
    """[(source ids, target ids)] for (source text, target text ending in ';') pairs."""
    return [(TOK.encode(source), TOK.encode(target)) for source, target in pairs]


def collate(rows):
    """A batch of (source ids, target ids) rows as Seq2Seq's keywords."""
    S_, T_ = max(len(s) for s, _ in rows), max(len(t) for _, t in rows)
    src = torch.tensor([s + [TOK.pad_id] * (S_ - len(s)) for s, _ in rows])  # (B, S)
    src_mask = torch.tensor([[True] * len(s) + [False] * (S_ - len(s)) for s, _ in rows])
    tgt = torch.tensor([[BOS] + t[:-1] + [TOK.pad_id] * (T_ - len(t)) for _, t in rows])  # (B, T)
    targets = torch.tensor([t + [-1] * (T_ - len(t)) for _, t in rows])  # (B, T)
    return {"src": src, "tgt": tgt, "targets": targets, "src_mask": src_mask}


def fit(model, rows, steps, lr, seed, batch_size, weight_decay=0.0):
    """minitx.train.train on random batches of `rows` (the same batches for the same seed):
    AdamW, linear warmup over the first tenth, cosine decay, gradient clipping at 1."""
    def get_batch(step):
        return collate(random.Random(f"{seed}/{step}").sample(rows, batch_size))
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, weight_decay=weight_decay,
                         log_every=0, seed=seed)
    return train(model, get_batch, config, log=lambda *a, **k: None)["losses"]


@torch.no_grad()
def answer_nll(model, rows, batch_size=128):
    """Mean next-token loss (nats) on the target tokens of `rows`, teacher-forced."""
    total, n = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = collate(rows[i:i + batch_size])
        tokens = int((batch["targets"] != -1).sum())
        total, n = total + model(**batch)[1].item() * tokens, n + tokens
    return total / n


@torch.no_grad()
def answers(model, examples, instruction=None):
    """Greedy answers (KV cache, generate_seq2seq), the text before ';'."""
    rows = encode_pairs([((f"{instruction} : " if instruction else "") + e.source, ";")
                         for e in examples])
    batch = collate(rows)
    out = generate_seq2seq(model, batch["src"], 32, src_mask=batch["src_mask"], bos_id=BOS,
                           stop_ids=(TOK.stop_id,), pad_id=TOK.pad_id)  # (B, <= 32)
    return [TOK.decode(row.tolist()).split(";")[0].strip() for row in out]


def house_scores(hyps, examples):
    """BLEU, ROUGE-L and exact match (%) against the house style; BLEU against all three."""
    house = [[e.references[HOUSE]] for e in examples]
    return {"bleu": corpus_bleu(hyps, house), "rouge_l": rouge_l(hyps, house),
            "exact": 100 * statistics.fmean(h == r[0] for h, r in zip(hyps, house)),
            "bleu_any": corpus_bleu(hyps, [list(e.references) for e in examples])}


def house_rows(examples):
    return encode_pairs([(e.source, f"{e.references[HOUSE]} ;") for e in examples])


tune_set = house_rows(toyworld.make_split("data_to_text", 256, "train", seed=1))
val_set = house_rows(toyworld.make_split("data_to_text", S["n_val"], "val"))
test_examples = toyworld.make_split("data_to_text", S["n_test"], "test")
test_set = house_rows(test_examples)
print(f"house-style pairs: {len(tune_set)} to tune on (train split), {len(val_set)} validation, "
      f"{len(test_set)} test")
print(f"e.g. source {test_examples[0].source!r}")
print(f"     house style {test_examples[0].references[HOUSE]!r}")

# %% [markdown]
# ## 2. Pretrain one small encoder–decoder per seed
#
# `Seq2Seq` is built from `GPT`'s own blocks: the encoder is a stack of `Block(causal=False)`
# (every source token sees every other), the decoder a stack of `Block(cross=True)` (causal
# self-attention, then cross-attention over the encoder output). Two layers each, width 64.
# It is pretrained on `data_to_text` only, every source led by one of the task's four seen
# instructions and every target one of the three phrasings at random, from train-split inputs
# (no test input is ever pretrained).
#
# Seed s pretrains base s (its initialisation and data order) and then tunes every arm on it
# with seed s. So the spread of a verdict below holds both sources of variation: a different
# base, and a different tuning run. The table shows how much bases this small differ in the
# phrasing they happen to prefer.

# %%
def pretraining_pairs(n, seed):
    """n (instruction : source, one of three phrasings ;) pairs from train-split inputs."""
    rng, pairs, task = random.Random(f"seq2seq/{seed}"), [], toyworld.TASKS["data_to_text"]
    while len(pairs) < n:
        example = task.make(rng)
        if split_of(example.source) == "train":
            instruction = rng.choice(task.phrasings[:task.n_seen])
            pairs.append((f"{instruction} : {example.source}",
                          f"{rng.choice(example.references)} ;"))
    return pairs


def phrasing_shares(hyps, examples):
    """% of answers equal to each of the three phrasings, and to none of them."""
    counts = [0, 0, 0, 0]
    for h, e in zip(hyps, examples):
        counts[e.references.index(h) if h in e.references else 3] += 1
    return [100 * c / len(examples) for c in counts]


bases, base_rows = {}, []
for seed in SEED_LIST:
    seed_everything(seed)
    base = Seq2Seq(Config(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_head=4,
                          n_embd=64))
    losses = fit(base, encode_pairs(pretraining_pairs(32 * S["pretrain_steps"], seed)),
                 S["pretrain_steps"], 3e-3, seed, batch_size=32, weight_decay=0.1)
    bases[seed] = base.eval().requires_grad_(False)
    hyps = answers(base, test_examples)
    scores = house_scores(hyps, test_examples)
    shares = phrasing_shares(hyps, test_examples)
    base_rows.append({"base": seed, "last loss": losses[-1], "BLEU any": scores["bleu_any"],
                      "BLEU house": scores["bleu"], "phr. 1 %": shares[0], "phr. 2 %": shares[1],
                      "house %": shares[2], "other %": shares[3]})
table(base_rows, "the frozen bases, no instruction, on the test inputs", floatfmt="{:.2f}",
      notes={"last loss": "pretraining loss of the last batch (nats per target token)",
             "BLEU any": "corpus BLEU against all three right phrasings (is the content right?)",
             "BLEU house": "corpus BLEU against the house-style sentence only",
             "phr. 1/2 %, house %": "answers equal to the first / second / third (house) "
                                    "phrasing",
             "other %": "answers equal to none of them (a wrong fact, or a mixed phrasing)"})
print(f"count of parameters per base: {count_parameters(bases[SEED_LIST[0]])[1]:,}")

# %% [markdown]
# Read the table row by row. A base that knows the content well scores high on "BLEU any"; its
# "BLEU house" depends on how often it happens to choose the house phrasing already, and that
# habit differs from base to base. This is why every arm below runs on every base, and why the
# verdicts compare arms *on the same base* (paired per seed) rather than across bases.
#
# ## 3. The prefix, and its learning rate chosen on validation data
#
# `Seq2SeqPrefix(base, length, mid, kinds)` holds one `tuning.Prefix` per kind: `LENGTH`
# positions (Li & Liang chose 5 for E2E, §7.1) in every layer, reparameterized as in the paper
# (§4.3): P = MLP(P′), with the MLP's hidden width `MID` (512 in the paper's table-to-text runs).
# After training, `export()` drops the MLPs and keeps only P.
#
# The course's rule for rates (lessons/common.py): chosen on the *validation* split, never test.
# The course's committed sweep covers GPT bases only, so this lesson sweeps its own: on base 0,
# each arm is tuned at each rate of `RATES` and keeps the rate with the lowest validation loss
# on the house-style sentences. The runs at the chosen rates are exactly the seed-0 runs of the
# ablation, so they are kept and reused.

# %%
ARMS = {"encoder": ("encoder",), "decoder": ("decoder",), "cross": ("cross",),
        "all three": KINDS}


def tune(base, kinds, lr, seed, length=LENGTH):
    """A fresh Seq2SeqPrefix of `kinds` on the frozen `base`, trained on the house style."""
    seed_everything(seed)
    tuned = TunedSeq2Seq(base)
    prefix = tuned.add("house", Seq2SeqPrefix(base, length=length, mid=MID, kinds=kinds))
    fit(tuned, tune_set, S["tune_steps"], lr, seed, batch_size=16)
    return tuned.eval(), prefix


sweep, tuned_models, LR = {}, {}, {}
for arm, kinds in ARMS.items():
    runs = {lr: tune(bases[SEED_LIST[0]], kinds, lr, SEED_LIST[0]) for lr in RATES}
    sweep[arm] = {lr: answer_nll(tuned, val_set) for lr, (tuned, _) in runs.items()}
    LR[arm] = min(sweep[arm], key=sweep[arm].get)
    tuned_models[arm, SEED_LIST[0]] = runs[LR[arm]]
table([{"lr": f"{lr:g}", **{arm: sweep[arm][lr] for arm in ARMS}} for lr in RATES],
      "validation loss on the house style by learning rate (base 0, seed 0)", floatfmt="{:.4f}",
      notes={"encoder .. all three": "mean next-token loss (nats) of the validation split's "
                                     "house sentences"})
for arm in ARMS:
    edge = (" (the grid's edge: a wider grid might choose another rate)"
            if LR[arm] in (RATES[0], RATES[-1]) else "")
    print(f"chosen for {arm}: {LR[arm]:g}{edge}")

# %% [markdown]
# ## 4. The ablation: each kind alone, all three, none
#
# Every arm, on every base, at its chosen rate, then scored on the test inputs. Besides the
# generated sentences, "NLL" is the mean loss of the house-style sentence itself, teacher-forced:
# it moves smoothly where BLEU and exact match move in steps, so it separates arms that
# generate the same sentences.

# %%
results = {arm: {} for arm in [*ARMS, "frozen"]}
for seed in SEED_LIST:
    for arm, kinds in ARMS.items():
        if (arm, seed) not in tuned_models:
            tuned_models[arm, seed] = tune(bases[seed], kinds, LR[arm], seed)
    for arm in results:
        model = bases[seed] if arm == "frozen" else tuned_models[arm, seed][0]
        hyps = answers(model, test_examples)
        results[arm][seed] = {**house_scores(hyps, test_examples),
                              "nll": 100 * answer_nll(model, test_set), "answers": hyps}


def per_seed(arm, key):
    return [results[arm][seed][key] for seed in SEED_LIST]


table([{"arm": arm, **{label: spread(per_seed(arm, key)) for key, label in
                       (("bleu", "BLEU house"), ("rouge_l", "ROUGE-L house"),
                        ("exact", "exact %"), ("nll", "NLL x100"))}} for arm in results],
      f"house style on {S['n_test']} test inputs: mean (min-max) over {len(SEED_LIST)} bases",
      notes={"arm": "which prefixes are trained; frozen = the base alone, no prefix",
             "BLEU house, ROUGE-L house": "corpus BLEU / ROUGE-L F against the house sentence",
             "exact %": "answers equal to the house sentence",
             "NLL x100": "loss of the house sentence, teacher-forced (nats x 100; lower is "
                         "better)"})

prefixes = {arm: tuned_models[arm, SEED_LIST[0]][1] for arm in ARMS}
counts = {arm: (count_parameters(p)[0], count_parameters(p.export())[0])
          for arm, p in prefixes.items()}
L, C = bases[SEED_LIST[0]].config.n_layer, bases[SEED_LIST[0]].config.n_embd
table([{"arm": arm, "trained": f"{trained:,}", "kept": f"{kept:,}",
        "kept % of base": 100 * kept / count_parameters(bases[SEED_LIST[0]])[1]}
       for arm, (trained, kept) in counts.items()],
      "what each arm trains and keeps", floatfmt="{:.2f}",
      notes={"trained": f"per kind P·C + (C·mid + mid) + (mid·2·L·C + 2·L·C) with P={LENGTH}, "
                        f"C={C}, mid={MID}, L={L}",
             "kept": f"after export(): per kind 2·L·P·C = {2 * L * LENGTH * C:,} (keys and "
                     f"values)"})

# %% [markdown]
# ## 5. Verdicts
#
# Three questions, each answered per seed (one base and one tuning run per seed) and turned into
# a verdict: "holds" only if every seed agrees, "reversed" if every seed disagrees, and otherwise
# "not shown (within seed spread)" — then no winner is named.
#
# 1. Does each kind *alone* steer the style? (each kind vs the frozen base)
# 2. Do all three together beat each kind alone? (on BLEU and on the NLL). Note the confound:
#    all three keep three times as many numbers as one kind. A verdict for "all three" says
#    three prefixes of length 5 beat one of length 5, not that the *places* matter more than the
#    *count* — exercise 3 asks the matched question.
# 3. Is one kind alone better than another?

# %%
verdicts = {}
print("\n1. each kind alone vs the frozen base (house BLEU):")
for arm in ("encoder", "decoder", "cross"):
    verdicts[f"{arm} vs frozen"] = verdict(f"{arm} beats frozen", per_seed(arm, "bleu"),
                                           per_seed("frozen", "bleu"))
print("\n2. all three vs one kind (house BLEU; then house NLL x100, lower is better):")
for arm in ("encoder", "decoder", "cross"):
    verdicts[f"all vs {arm}"] = verdict(f"all three beats {arm} (BLEU)",
                                        per_seed("all three", "bleu"), per_seed(arm, "bleu"))
for arm in ("encoder", "decoder", "cross"):
    verdicts[f"all vs {arm} nll"] = verdict(f"all three beats {arm} (NLL)",
                                            [-x for x in per_seed("all three", "nll")],
                                            [-x for x in per_seed(arm, "nll")])
print("\n3. one kind vs another (house BLEU):")
for a, b in (("decoder", "encoder"), ("cross", "encoder"), ("cross", "decoder")):
    verdicts[f"{a} vs {b}"] = verdict(f"{a} beats {b}", per_seed(a, "bleu"), per_seed(b, "bleu"))
print("\nper-seed house BLEU (the numbers behind the verdicts):")
table([{"arm": arm, **{f"base {seed}": results[arm][seed]["bleu"] for seed in SEED_LIST}}
       for arm in results])

# %% [markdown]
# ## What the output means
#
# * Compare the frozen bases' "BLEU any" (section 2) with their "BLEU house": the gap is what a
#   base knows but does not say in the house style. If group 1 holds, a prefix of one kind is
#   enough to move every base towards the house style (its size is in the "kept" column).
# * Why one kind can be enough: choosing a phrasing is a decision the decoder makes, and all
#   three kinds reach it. The decoder prefix directly; the cross prefix through every decoder
#   query (tests/test_seq2seq.py proves each query attends to it); the encoder prefix by
#   rewriting the memory that the decoder reads.
# * Group 3 is the lesson's real question, "which place matters?". Where it says "not shown",
#   the honest answer is that this experiment cannot tell: the per-seed differences change sign,
#   so which single kind comes out ahead depends on the base and the tuning run (the per-seed
#   table shows it). A harder task (new content, not a choice among learned phrasings) is
#   where the kinds could separate; Li & Liang only ever used all three together and report no
#   per-kind ablation.
# * The MLP (the reparameterization) is trained and then dropped: compare "trained" with
#   "kept", as in the paper (§4.3).

# %%
def said(v):
    return f"{v.word} ({v.mean:+.1f})"


base_bleu = [r["BLEU house"] for r in base_rows]
takeaway(
    f"frozen bases: house BLEU {min(base_bleu):.1f} to {max(base_bleu):.1f} across "
    f"{len(SEED_LIST)} pretraining seeds",
    *(f"{arm} alone vs frozen (house BLEU): {said(verdicts[f'{arm} vs frozen'])}"
      for arm in ("encoder", "decoder", "cross")),
    *(f"all three vs {arm} (house BLEU): {said(verdicts[f'all vs {arm}'])}"
      for arm in ("encoder", "decoder", "cross")),
    *(f"all three vs {arm} (house NLL x100): {said(verdicts[f'all vs {arm} nll'])}"
      for arm in ("encoder", "decoder", "cross")),
    *(f"{a} vs {b} (house BLEU): {said(verdicts[f'{a} vs {b}'])}"
      for a, b in (("decoder", "encoder"), ("cross", "encoder"), ("cross", "decoder"))),
    f"kept numbers: {counts['encoder'][1]:,} per kind, {counts['all three'][1]:,} for all three "
    f"({counts['all three'][0]:,} trained with the MLPs)",
)

# %% [markdown]
# ## Exercises
#
# 1. **Switch it off.** Take seed 0's trained "all three" prefix
#    (`tuned, prefix = tuned_models["all three", 0]`) and set `prefix.active = set()`. What must
#    `answers(tuned, test_examples)` and `answer_nll(tuned, test_set)` equal now? Check it.
#    Hint: the Seq2SeqPrefix docstring says what a kind switched off is.
# 2. **Keep only P.** Replace the trained prefix by `prefix.export()`
#    (`tuned.add("house", prefix.export(), replace=True)`). Count its parameters: they should
#    be 3 · 2·L·P·C, and the answers must not change. Why do they not? Hint: export() runs the
#    MLP once and stores what it produced.
# 3. **Matched numbers** (open). One kind with `length=3 * LENGTH` keeps as many numbers as all
#    three at `LENGTH`. Choose the kind and its rate on the validation set as section 3 does (not
#    on the test table), run `tune(bases[s], (kind,), lr, s, length=3 * LENGTH)` for every seed
#    and give the verdict "all three beats one kind of length 15". Hint: `verdict(claim, a, b)`
#    with negated NLLs, as in section 5.
# 4. **Where do the bases come from?** (open). Double `S["pretrain_steps"]` and rerun from
#    section 2 on. Does the spread of the frozen bases' "house %" shrink, and do the group-3
#    verdicts change? Hint: a base that has learned the three phrasings equally well prefers none
#    of them.
