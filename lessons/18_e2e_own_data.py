# %% [markdown]
# # 18 · Your own data: the E2E restaurant task, end to end
#
# The lessons before this one train on the course's synthetic toy world. This one takes real
# data — the E2E NLG data set (Novikova, Dušek & Rieser 2017, arXiv 1706.09254), the
# data-to-text task of Li & Liang's Table 1 — and walks the whole path a user walks with their
# own corpus:
#
# 1. read a CSV, group the references of each meaning representation (MR), split without leaks;
# 2. turn each MR into a prompt, and handle restaurant names the vocabulary has never seen;
# 3. build a tokenizer from the corpus and pretrain a small GPT on the training sentences;
# 4. adapt it four ways — prompt tuning, prefix tuning (MLP, then exported), LoRA, full
#    fine-tuning — with learning rates chosen on held-out MRs;
# 5. generate for test MRs, score multi-reference BLEU and ROUGE-L over seeds, and set the
#    result beside the paper's.
#
# Papers: see [REFERENCES.md](REFERENCES.md). The data is a committed slice under
# `lessons/data/e2e/` (CC BY-SA 4.0; its README gives the attribution and what was sliced).
#
# Run: `python lessons/18_e2e_own_data.py [--fast | --full]`. The default mode loads the
# committed base (`lessons/checkpoints/base_e2e.pt`) and the committed learning rates, and
# scores a subset of the test MRs; `--full` pretrains the base again (overwriting the
# checkpoint), reruns the learning-rate sweep (overwriting
# `lessons/results/e2e_learning_rates.json`), and scores all 630 test MRs over five seeds.

# %%
import csv
import datetime
import gzip
import hashlib
import json
import re
import tempfile
import textwrap
import time

import torch

from common import (CHECKPOINTS, HERE, LR_GRID, RESULTS, SEEDS, build_method, lesson_mode,
                    seed_everything, setup, spread, table, takeaway, verdict)
from minitx import GPT, Config
from minitx.data import (Tokenizer, complete, encode_for_training, load_model, packed_batches,
                         pair_batches, save_model)
from minitx.metrics import corpus_bleu, rouge_l
from minitx.train import TrainConfig, train
from minitx.tuning import Tuned, count_parameters

MODE = lesson_mode()
SETTINGS = {  # steps and batch of each adaptation run; test MRs scored; tokens generated at most
    "fast": dict(steps=4, batch_size=8, n_test=16, max_new_tokens=40),
    "default": dict(steps=30, batch_size=8, n_test=60, max_new_tokens=64),
    "full": dict(steps=300, batch_size=8, n_test=630, max_new_tokens=64),
}  # 10 virtual tokens + a prompt of at most 40 + 64 new tokens fit the base's 128 positions
S = SETTINGS[MODE]
SWEEP_BUDGETS = ("default", "full")  # --full chooses a learning rate for each of these budgets
BASE_PATH = CHECKPOINTS / "base_e2e.pt"
LR_PATH = RESULTS / "e2e_learning_rates.json"
DATA = HERE / "data" / "e2e"
PRETRAIN = dict(n_layer=4, n_head=4, n_embd=128, block=128, batch_size=16, steps=800, lr=3e-3)
PROMPT_TOKENS = 10  # Li & Liang's embedding-only ablation EMB-10 is a 10-token prompt
PREFIX_LENGTH = 5  # the prefix length Li & Liang chose for E2E
MID = 128  # the prefix MLP's hidden width (the paper: 512, at GPT-2 medium's width 1024)
setup(0)
quiet = lambda *args, **kwargs: None  # noqa: E731 (train() logs nothing in this lesson)

# %% [markdown]
# ## 1. The data, and a split that cannot leak
#
# Each row of the CSV is one meaning representation and one human reference; an MR has several
# references (crowd workers wrote one each). The official training set is not part of the
# slice, so the course splits the *development* MRs into training and validation by a hash of
# the MR text (stable on every machine, and all references of one MR land on the same side),
# and tests on the official test MRs with all their references. Nothing is ever chosen on test.


# %%
def read_e2e(filename):
    """{MR: [references]} of one committed CSV (columns mr, ref), in file order."""
    references = {}
    with gzip.open(DATA / filename, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            references.setdefault(row["mr"], []).append(row["ref"])
    return references


def dev_split(mr):
    """"val" for about one development MR in ten (a SHA-256 bucket of the MR text), else "train"."""
    return "val" if int(hashlib.sha256(mr.encode()).hexdigest(), 16) % 10 == 0 else "train"


dev_refs = read_e2e("devset.csv.gz")
test_refs = read_e2e("testset_w_refs.csv.gz")
train_mrs = [mr for mr in dev_refs if dev_split(mr) == "train"]
val_mrs = [mr for mr in dev_refs if dev_split(mr) == "val"]
test_mrs = list(test_refs)
leaks = set(test_mrs) & (set(train_mrs) | set(val_mrs))
if leaks:
    raise ValueError(f"{len(leaks)} test MRs are also training/validation MRs, e.g. {min(leaks)}")
splits = (("train", "devset.csv, hash", train_mrs, dev_refs),
          ("validation", "devset.csv, hash", val_mrs, dev_refs),
          ("test", "testset_w_refs.csv", test_mrs, test_refs))
table([{"split": name, "source": source, "MRs": len(mrs),
        "references": sum(len(refs[mr]) for mr in mrs)} for name, source, mrs, refs in splits],
      "The splits (an MR and all its references sit in one split)")
print(f"test MRs that are also training or validation MRs: {len(leaks)}")

# %% [markdown]
# ## 2. From an MR to a prompt; names the vocabulary cannot know
#
# The model reads text, so each MR is *linearised*: `name[The Eagle], eatType[coffee shop]`
# becomes `name : xname | eatType : coffee shop`. The tokenizer lower-cases and splits
# punctuation, so `£20-25` reads as `£ 20 - 25`. The prompt ends with the separator `=>` and a
# target with the stop token; minitx's default stop token `;` occurs in some E2E references
# (`encode_for_training` refuses such a target), so this lesson chooses `<eos>`.
#
# The tokenizer is word-level, built from the training corpus: a word it never saw becomes
# `<unk>`. Many of E2E's test MRs name restaurants that never occur in the development data;
# such an MR would reach the model as `name : <unk>`, and no method could write the name. The
# standard fix for word-level models is *delexicalisation*: replace the values of `name` and
# `near` by placeholder words (`xname`, `xnear`) in the MR and in every reference, train and
# generate with the placeholders, and put the values back into the generated text before
# scoring against the original references. Li & Liang did not need this: GPT-2's byte-pair
# vocabulary spells any name out of sub-word pieces.

# %%
SLOTS = {"name": "xname", "near": "xnear"}  # the attributes whose values are delexicalised
STOP = "<eos>"  # ends every target; not minitx's default ";", which some E2E references use


def parse_mr(mr):
    """[(attribute, value)] of an MR such as "name[The Eagle], eatType[coffee shop]"."""
    return [(a.strip(), v.strip()) for a, v in re.findall(r"([^\[\],]+)\[([^\]]*)\]", mr)]


def linearise(mr, delexicalise=True):
    """The prompt text of an MR: "attribute : value | ...", name/near as placeholders."""
    return " | ".join(f"{a} : {SLOTS[a] if delexicalise and a in SLOTS else v}"
                      for a, v in parse_mr(mr))


def delexicalise(mr, text):
    """`text` with the MR's name/near values (any case, whole words) replaced by placeholders;
    the longer value first, so a name that contains the other value is replaced whole."""
    for attribute, value in sorted(parse_mr(mr), key=lambda p: -len(p[1])):
        if attribute in SLOTS:
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", SLOTS[attribute], text,
                          flags=re.IGNORECASE)
    return text


def relexicalise(mr, text):
    """`text` with the placeholders replaced by the MR's values again."""
    for attribute, value in parse_mr(mr):
        if attribute in SLOTS:
            text = re.sub(rf"\b{SLOTS[attribute]}\b", value, text)
    return text


def pairs(mrs):
    """(prompt, delexicalised reference) for every reference of every MR in `mrs`."""
    return [(linearise(mr), delexicalise(mr, ref)) for mr in mrs for ref in dev_refs[mr]]


train_pairs, val_pairs = pairs(train_mrs), pairs(val_mrs)
train_prompts, train_targets = [p for p, _ in train_pairs], [t for _, t in train_pairs]
tok = Tokenizer.from_corpus(train_prompts + train_targets, stop=STOP)
example = train_mrs[0]
print(f"MR          {example}")
print(f"prompt      {linearise(example)}")
print(f"reference   {dev_refs[example][0]}")
print(f"delexical.  {delexicalise(example, dev_refs[example][0])}")
print(f"model input {' '.join(tok.words[i] for i in tok.encode(linearise(example)))} {tok.sep}")
print(f"tokenizer from the training prompts and references: {tok.vocab_size} words (lower-cased,"
      f" punctuation split)")

found = {slot: [placeholder in delexicalise(mr, ref) for mr in train_mrs for ref in dev_refs[mr]
                if slot in dict(parse_mr(mr))] for slot, placeholder in SLOTS.items()}
print("training references where delexicalisation found the value: " + ", ".join(
    f"{slot} {100 * sum(f) / len(f):.1f}% of {len(f)}" for slot, f in found.items()))
missed = next(((mr, ref) for mr in train_mrs for ref in dev_refs[mr]
               if "xname" not in delexicalise(mr, ref)), None)
if missed:  # the rest spell the value differently and keep their words, e.g.:
    print(textwrap.shorten(f"  not found: {dict(parse_mr(missed[0]))['name']!r} in "
                           f"{missed[1]!r}", 100))
names = {split: {v for mr in mrs for a, v in parse_mr(mr) if a == "name"}
         for split, mrs in (("train", train_mrs), ("test", test_mrs))}
unseen_names = sorted(names["test"] - names["train"])
raw_tok = Tokenizer.from_corpus([linearise(mr, delexicalise=False) for mr in train_mrs]
                                + [ref for mr in train_mrs for ref in dev_refs[mr]], stop=STOP)
unk_prompts = {  # test prompts with at least one <unk> word
    "raw": sum(raw_tok.unk_id in raw_tok.encode(linearise(mr, False)) for mr in test_mrs),
    "delexicalised": sum(tok.unk_id in tok.encode(linearise(mr)) for mr in test_mrs)}
print(f"test restaurant names never seen in training: {len(unseen_names)} of "
      f"{len(names['test'])}; with a vocabulary of the raw training texts")
unknown_name = next(n for n in unseen_names if raw_tok.unk_id in raw_tok.encode(n))
print(f"  e.g. {unknown_name!r} reads as {raw_tok.decode(raw_tok.encode(unknown_name))!r}")
print(f"test prompts holding an <unk> word: {unk_prompts['raw']} of {len(test_mrs)} with that "
      f"vocabulary, {unk_prompts['delexicalised']} delexicalised")

# %% [markdown]
# Scoring compares normalised words: the same lower-casing and punctuation split the tokenizer
# uses (`tok.split`), applied to the relexicalised output and to the original references — so a
# name the vocabulary lacks is still a word that can match.


# %%
def normalise(text):
    """The words of `text` as the tokenizer splits them (lower-cased), joined by spaces."""
    return " ".join(tok.split(text))


def score(outputs, mrs):
    """Multi-reference corpus BLEU and ROUGE-L (in %) of relexicalised outputs for `mrs`."""
    hypotheses = [normalise(relexicalise(mr, out)) for mr, out in zip(mrs, outputs)]
    references = [[normalise(ref) for ref in test_refs[mr]] for mr in mrs]
    return {"bleu": corpus_bleu(hypotheses, references), "rouge_l": rouge_l(hypotheses, references)}


# a fixed subset of the test MRs (the first in SHA-256 order), all of them with --full
scored_mrs = sorted(test_mrs, key=lambda mr: hashlib.sha256(mr.encode()).hexdigest())[:S["n_test"]]
scored_prompts = [linearise(mr) for mr in scored_mrs]
print(f"test MRs scored in this mode: {len(scored_mrs)} of {len(test_mrs)}, with "
      f"{sum(len(test_refs[m]) for m in scored_mrs)} references")

# %% [markdown]
# ## 3. The base model: a small GPT pretrained on the training references
#
# The base plays GPT-2's part: a language model that has read sentences like the targets but
# never an MR. It is pretrained on the delexicalised *training* references only (packed into
# rows of 128 tokens, `packed_batches`) and saved with its tokenizer in one file
# (`save_model`); the default mode loads that committed file (`load_model`). The MR words that
# never occur in a sentence (`eattype`, `|`, `:`) are in the vocabulary but were never trained:
# every adaptation has to learn to read them.

# %%
if MODE == "full":
    seed_everything(0)
    config = Config(vocab_size=tok.vocab_size, block_size=PRETRAIN["block"],
                    n_layer=PRETRAIN["n_layer"], n_head=PRETRAIN["n_head"],
                    n_embd=PRETRAIN["n_embd"])
    base = GPT(config)
    steps = PRETRAIN["steps"]
    start = time.process_time()  # CPU time of this process: what a busy machine does not inflate
    train(base, packed_batches(tok, train_targets, PRETRAIN["batch_size"], PRETRAIN["block"],
                               seed=0),
          TrainConfig(steps=steps, lr=PRETRAIN["lr"], warmup_steps=steps // 10, weight_decay=0.1,
                      log_every=steps // 10, seed=0))
    pretrain_cpu_seconds = time.process_time() - start
    save_model(BASE_PATH, base, tok, dtype=torch.float16)
    print(f"written: {BASE_PATH} ({BASE_PATH.stat().st_size:,} bytes)")
base, base_tok = load_model(BASE_PATH)  # the fp16 file back as float32: what every mode tunes
if base_tok.to_dict() != tok.to_dict():
    raise ValueError(f"{BASE_PATH} carries another tokenizer than the training data builds: "
                     f"rerun `python lessons/18_e2e_own_data.py --full`")
base.requires_grad_(False)
base_params = count_parameters(base)[1]
print(f"base: {base.config.n_layer} layers x {base.config.n_embd} wide, {base_params:,} "
      f"parameters, vocabulary {base.config.vocab_size}; file {BASE_PATH.stat().st_size:,} bytes")


# %% [markdown]
# ## 4. Four adaptations, learning rates chosen on validation MRs
#
# Each method trains on the (prompt, delexicalised reference) pairs of the training MRs
# (`pair_batches`: loss on the reference and the stop token only), from the same frozen base:
#
# - **prompt**: 10 trainable input embeddings (Lester et al. 2021), initialised from the
#   vocabulary;
# - **prefix**: 5 key/value pairs in every layer, trained through the reparameterization MLP
#   P = MLP(P′) (Li & Liang §4.3) and *exported* after training: the MLP is dropped, P kept;
# - **LoRA**: rank 4, α = 32 (Hu et al.'s GPT-2 recipe) — on the fused Q, K, V projection
#   `c_attn` here, where Hu et al. adapt W_q and W_v only;
# - **full**: every weight of a copy of the base.
#
# Learning rates follow the course's policy: a sweep over `common.LR_GRID`, seed 0, at the
# mode's budget, keeping the rate with the lowest validation loss. `--full` runs the sweep and
# writes `lessons/results/e2e_learning_rates.json`; the other modes read it back.

# %%
METHODS = {"prompt": "prompt", "prefix": "prefix_mlp", "lora": "lora", "full": "full"}


def build(method):
    """A fresh tuning module of this lesson's size for `method` (None for full fine-tuning)."""
    n_virtual = PROMPT_TOKENS if method == "prompt" else PREFIX_LENGTH
    return build_method(METHODS[method], base, n_virtual=n_virtual, mid=MID)


batches = {}  # (seed, batch size) -> get_batch: every method sees the same pairs in one order


def adapt(method, lr, steps, seed, batch_size):
    """Train `method` on the training pairs; return the model to generate with (eval mode)."""
    if (seed, batch_size) not in batches:
        batches[seed, batch_size] = pair_batches(tok, train_prompts, train_targets, batch_size,
                                                 seed=seed)
    seed_everything(seed)
    if method == "full":
        model = GPT(base.config)
        model.load_state_dict(base.state_dict())
        model.requires_grad_(True)
    else:
        model = Tuned(base)
        model.add("e2e", build(method))
    config = TrainConfig(steps=steps, lr=lr, warmup_steps=steps // 10, log_every=0, seed=seed,
                         weight_decay=0.1 if method == "full" else 0.0)
    train(model, batches[seed, batch_size], config, log=quiet)
    return model.eval()


@torch.no_grad()
def validation_loss(model, batch_size=64):
    """Mean next-token loss on the references (and stop tokens) of the validation pairs."""
    total, n = 0.0, 0
    for i in range(0, len(val_pairs), batch_size):
        chunk = val_pairs[i:i + batch_size]
        idx, targets, mask = encode_for_training(tok, [p for p, _ in chunk], [t for _, t in chunk])
        tokens = int((targets != -1).sum())
        total += model(idx, targets=targets, attention_mask=mask)[1].item() * tokens
        n += tokens
    return total / n


if MODE == "full":
    sweep = {budget: {m: {} for m in METHODS} for budget in SWEEP_BUDGETS}
    for budget, m in ((budget, m) for budget in SWEEP_BUDGETS for m in METHODS):
        for lr in LR_GRID[METHODS[m]]:
            b = SETTINGS[budget]
            sweep[budget][m][lr] = validation_loss(adapt(m, lr, b["steps"], 0, b["batch_size"]))
        print(textwrap.fill(f"sweep, {budget} budget, {m}: " + ", ".join(
            f"{lr:g} -> {loss:.3f}" for lr, loss in sweep[budget][m].items()), 100,
            subsequent_indent="    "))
    RESULTS.mkdir(exist_ok=True)
    partial_path = LR_PATH.with_suffix(".tmp")  # written whole, then renamed: never half a file
    partial_path.write_text(json.dumps({
        "written_by": "lessons/18_e2e_own_data.py --full",
        "date": datetime.date.today().isoformat(),
        "base": {"file": "lessons/checkpoints/base_e2e.pt", "parameters": base_params,
                 "pretraining_steps": PRETRAIN["steps"],
                 "pretraining_tokens": steps * PRETRAIN["batch_size"] * PRETRAIN["block"],
                 "pretraining_cpu_seconds": round(pretrain_cpu_seconds, 1),
                 "training_references": len(train_targets),
                 "training_reference_tokens": sum(len(tok.encode(t)) + 1 for t in train_targets)},
        "criterion": "mean next-token loss on the references of the validation MRs, seed 0",
        "budgets": {b: {k: SETTINGS[b][k] for k in ("steps", "batch_size")} for b in SWEEP_BUDGETS},
        "grid": {m: list(LR_GRID[METHODS[m]]) for m in METHODS},
        "choices": {b: {m: min(r, key=r.get) for m, r in s.items()} for b, s in sweep.items()},
        "validation_loss": {b: {m: {f"{lr:g}": round(v, 4) for lr, v in r.items()}
                                for m, r in s.items()} for b, s in sweep.items()}},
        indent=1) + "\n")
    partial_path.replace(LR_PATH)
    print(f"written: {LR_PATH}")
if not LR_PATH.exists():
    raise FileNotFoundError(f"{LR_PATH} is missing: run `python lessons/18_e2e_own_data.py --full`")
chosen = json.loads(LR_PATH.read_text())
lrs = chosen["choices"]["full" if MODE == "full" else "default"]
table([{"method": m, **{f"{b} budget": f"{chosen['choices'][b][m]:g}" for b in SWEEP_BUDGETS},
        "its validation loss (default budget)": chosen["validation_loss"]["default"][m][
            f"{chosen['choices']['default'][m]:g}"]} for m in METHODS],
      f"Learning rates chosen on validation MRs ({chosen['written_by']}, {chosen['date']})",
      floatfmt="{:.3f}",
      notes={"default budget": f"{SETTINGS['default']['steps']} steps of "
                               f"{SETTINGS['default']['batch_size']} pairs (default and --fast)",
             "full budget": f"{SETTINGS['full']['steps']} steps of "
                            f"{SETTINGS['full']['batch_size']} pairs (--full)"})
at_edge = [f"{m} ({b} budget)" for b in SWEEP_BUDGETS for m in METHODS
           if chosen["choices"][b][m] in (min(chosen["grid"][m]), max(chosen["grid"][m]))]
if at_edge:
    print(textwrap.fill("chosen at an end of the grid, so a rate beyond it might do better: "
                        + ", ".join(at_edge), 100, subsequent_indent="    "))

# %% [markdown]
# ## 5. Generate for the test MRs and score, over seeds
#
# For every method and seed: adapt, generate greedily for the scored test MRs (`complete`:
# prompts in, text out, cut at the stop token), put the names back, score against all the
# references. The seed changes the initialisation of the trained parameters and the order of
# the training pairs. Two rows without training give the scale: the frozen base as it is, and
# one human reference scored against the other references of its MR.

# %%
results = {m: {"bleu": [], "rouge_l": []} for m in METHODS}
outputs = {}  # (method, seed) -> generated texts, placeholders still in
seconds = {}
for method in METHODS:
    start = time.perf_counter()
    for seed in SEEDS[MODE]:
        model = adapt(method, lrs[method], S["steps"], seed, S["batch_size"])
        if method == "prefix":  # what a user keeps: the prefix alone, the MLP dropped
            trained_mlp = model.tasks["e2e"]
            model = Tuned(base)
            model.add("e2e", trained_mlp.export())
        outputs[method, seed] = complete(model, tok, scored_prompts, S["max_new_tokens"])
        for metric, value in score(outputs[method, seed], scored_mrs).items():
            results[method][metric].append(value)
    seconds[method] = time.perf_counter() - start

frozen_outputs = complete(base, tok, scored_prompts, S["max_new_tokens"])
frozen = score(frozen_outputs, scored_mrs)
human_mrs = [mr for mr in scored_mrs if len(test_refs[mr]) > 1]
human_hyps = [normalise(test_refs[mr][0]) for mr in human_mrs]
human_refs = [[normalise(ref) for ref in test_refs[mr][1:]] for mr in human_mrs]
human = {"bleu": corpus_bleu(human_hyps, human_refs), "rouge_l": rouge_l(human_hyps, human_refs)}

trainable = {m: count_parameters(build(m))[0] for m in ("prompt", "prefix", "lora")}
trainable["full"] = base_params  # every weight of the copy
rows = [{"method": m, "trained params": trainable[m], "lr": f"{lrs[m]:g}",
         "BLEU": spread(results[m]["bleu"]), "ROUGE-L": spread(results[m]["rouge_l"]),
         "s/seed": f"{seconds[m] / len(SEEDS[MODE]):.1f}"} for m in METHODS]
rows += [{"method": "frozen base", "trained params": 0, "lr": "-", "BLEU": f"{frozen['bleu']:.1f}",
          "ROUGE-L": f"{frozen['rouge_l']:.1f}", "s/seed": "-"},
         {"method": "human", "trained params": "-", "lr": "-", "BLEU": f"{human['bleu']:.1f}",
          "ROUGE-L": f"{human['rouge_l']:.1f}", "s/seed": "-"}]
table(rows, f"E2E test, {len(scored_mrs)} MRs, all references, seeds {list(SEEDS[MODE])} "
            f"({MODE} mode: {S['steps']} steps of {S['batch_size']} pairs)",
      notes={"trained params": "parameters the method trains (prefix: the MLP and P′; full: all)",
             "BLEU, ROUGE-L": "mean over seeds (min-max), %, on lower-cased words",
             "s/seed": "seconds per seed: adaptation and generation",
             "human": f"the first reference of {len(human_mrs)} MRs scored against the others "
                      f"(one reference fewer)"})

# %%
bleu = {m: results[m]["bleu"] for m in METHODS}
v_full_prefix = verdict("full beats prefix (BLEU)", bleu["full"], bleu["prefix"])
v_prefix_prompt = verdict("prefix beats prompt (BLEU)", bleu["prefix"], bleu["prompt"])
v_lora_prefix = verdict("lora beats prefix (BLEU)", bleu["lora"], bleu["prefix"])
verdicts = [v_full_prefix, v_prefix_prompt, v_lora_prefix]

# %% [markdown]
# How to read this. Each method row is the mean over the seeds with the lowest and highest seed
# in brackets; a verdict compares two methods seed by seed (same seed, same training pairs in
# the same order) and says "holds" only when every seed agrees. The *frozen base* row is the
# pretrained model given the prompt with no adaptation: it has never seen an MR nor the `=>`
# that ends it. The *human* row is not a ceiling — it is one person's sentence scored against
# the other people's, with one reference fewer than the methods get — but it shows how much
# two correct sentences for one MR differ in their words. BLEU and ROUGE-L are computed on this
# lesson's words (lower-cased, punctuation split by `tok.split`), not by the official E2E
# evaluation scripts, whose tokenisation differs: compare the methods, not the digits.

# %% [markdown]
# What the prefix file holds. The MLP trains the prefix; `Tuned.save` writes it exported — the
# keys and values P alone, as after `export()` — unless asked to keep the MLP (`keep_mlp=True`,
# to train on later). Passing the tokenizer makes the adapter file carry it too.

# %%
with tempfile.TemporaryDirectory() as directory:
    saved = Tuned(base)
    saved.add("e2e", trained_mlp)
    prefix_file_bytes = saved.save("e2e", f"{directory}/kept", tokenizer=tok)
    mlp_file_bytes = saved.save("e2e", f"{directory}/with_mlp", keep_mlp=True)
mlp_params = count_parameters(trained_mlp)[0]
kept_params = count_parameters(trained_mlp.export())[0]
print(f"prefix as trained (P′ + MLP): {mlp_params:,} parameters; saved with keep_mlp=True: "
      f"{mlp_file_bytes:,} bytes")
print(f"prefix as kept (exported P):  {kept_params:,} parameters; saved by default: "
      f"{prefix_file_bytes:,} bytes")
print(f"the kept prefix is {100 * kept_params / base_params:.2f}% of the base's parameters, "
      f"{mlp_params / kept_params:.0f}x fewer than the MLP trained")

# %% [markdown]
# One test MR whose restaurant name the vocabulary has never seen, as each method wrote it
# (seed 0, names put back):

# %%
shown = next((i for i, mr in enumerate(scored_mrs)
              if dict(parse_mr(mr))["name"] in unseen_names), 0)
wrap = lambda label, text: textwrap.fill(text, 100, initial_indent=f"{label:<13}",  # noqa: E731
                                         subsequent_indent=" " * 13)
print(wrap("MR", scored_mrs[shown]))
print(wrap("reference", test_refs[scored_mrs[shown]][0]))
for m in METHODS:
    print(wrap(m, relexicalise(scored_mrs[shown], outputs[m, SEEDS[MODE][0]][shown])))
print(wrap("frozen base", relexicalise(scored_mrs[shown], frozen_outputs[shown])))

# %% [markdown]
# ## 6. Beside the paper
#
# Li & Liang (2021, arXiv 2101.00190, Table 1) tuned GPT-2 medium on the full E2E training set
# and report BLEU on the same 630 test MRs with the official evaluation scripts; the numbers
# below are from the paper (labelled with the version), this run's from the table above. The
# two are not comparable digit for digit — a different tokenisation for BLEU, a subset of MRs
# in the default mode, a base model smaller by orders of magnitude — but the *order* of the
# methods can be compared.

# %%
base_facts = chosen["base"]
paper = [("full fine-tuning", "full", "68.8 (v1: 68.2)"),
         ("prefix", "prefix", "70.3 (v1: 69.7)"),
         ("embedding-only, 10 tokens", "prompt", "62.2"),
         ("LoRA", "lora", "70.4")]
table([{"method": name, "paper BLEU": number, "this run BLEU": spread(bleu[m])}
       for name, m, number in paper], "E2E BLEU: the papers (GPT-2 medium) and this run")
print("  paper BLEU: Li & Liang 2021 (arXiv 2101.00190), ACL version, Table 1 (arXiv v1 in "
      "brackets);")
print("    embedding-only (a prompt-tuning-like ablation): Li & Liang §7.2 (EMB-10);")
print("    LoRA: Hu et al. 2021 (arXiv 2106.09685), Table 3 (r=4 on W_q, W_v)")
print("  this run BLEU: mean over seeds (min-max), on this lesson's lower-cased words")

gpt2_medium = 345e6  # "345M" as Radford et al. 2019 (Table 2) label GPT-2 medium
seen = base_facts["pretraining_tokens"] / base_facts["training_reference_tokens"]
print(f"\nscale: GPT-2 medium, {gpt2_medium / 1e6:.0f}M parameters (Radford et al. 2019), "
      f"pretrained on WebText (~40 GB of text).")
print(f"this base: {base_params / 1e6:.2f}M parameters ({gpt2_medium / base_params:,.0f}x fewer),"
      f" pretrained for {base_facts['pretraining_cpu_seconds'] / 60:.0f} CPU-minutes (one thread)")
print(f"on {base_facts['training_references']:,} training sentences "
      f"({base_facts['training_reference_tokens']:,} tokens, each seen {seen:.0f} times).")
order = {"holds": "fine-tuning is above the prefix on every seed: the paper's order reversed",
         "reversed": "the prefix is above fine-tuning on every seed, as in the paper"}
print(f"Here {order.get(v_full_prefix.word, 'the seeds do not separate fine-tuning and prefix')}.")
print("A prefix or a prompt can only steer what the frozen base already computes; fine-tuning can")
print("rewrite it. Li & Liang's result rests on a base that already writes fluent English about")
print("anything; a small base that has read a few thousand sentences leaves far more to rewrite.")

# %%
takeaway(
    f"full fine-tuning beats prefix on BLEU: {v_full_prefix.word} ({v_full_prefix.mean:+.1f})",
    f"prefix beats prompt on BLEU: {v_prefix_prompt.word} ({v_prefix_prompt.mean:+.1f})",
    f"LoRA beats prefix on BLEU: {v_lora_prefix.word} ({v_lora_prefix.mean:+.1f})",
    "Li & Liang (GPT-2 medium; Table 1, §7.2): prefix 70.3, fine-tuning 68.8, embedding-only "
    "62.2",
    f"the kept prefix is {kept_params:,} numbers ({prefix_file_bytes:,} bytes on disk); the MLP "
    f"that trained it, {mlp_params:,}",
    f"delexicalising name/near: test prompts holding an <unk> {unk_prompts['raw']} -> "
    f"{unk_prompts['delexicalised']} of {len(test_mrs)}")

# %% [markdown]
# ## Exercises
#
# 1. **The human row, with its own reference.** Score `human_hyps` against *all* references of
#    their MRs, the first one included. What must BLEU be, exactly? *Hint:* every n-gram of a
#    hypothesis is clipped against its own copy, and the closest reference length is its own.
# 2. **Prefix length.** Set `PREFIX_LENGTH` to 1 and to 20 (Li & Liang searched 1-40 on
#    table-to-text and chose 5 for E2E). Does BLEU follow the paper's rise-then-dip? *Hint:*
#    read the verdict against prompt tuning, not single numbers — the seeds decide.
# 3. **No delexicalisation.** Build the tokenizer, the prompts (`linearise(mr, False)`) and the
#    targets from the raw texts, pretrain a base on them (the `--full` cell, with a new
#    `BASE_PATH`), and adapt. What do the outputs say for a test MR in `unseen_names`?
#    *Hint:* `raw_tok.decode(raw_tok.encode(name))`; what could any method write there?
# 4. **Your own data.** Replace `read_e2e` with a reader for your own CSV of (input, output)
#    pairs. What do you check before training? *Hint:* the split (no input on both sides),
#    the test inputs' words missing from `tok` (the `<unk>` count above), and that no target
#    contains `tok.stop`.
