# %% [markdown]
# # 08 · Prefix initialisation, length and depth
#
# Three knobs of prefix tuning, each studied by Li & Liang 2021 (arXiv 2101.00190, ACL
# version; the numbers quoted are in [REFERENCES.md](REFERENCES.md)):
#
# - **Initialisation (§7.4).** Setting the prefix to the activations of real words helps a lot
#   with little data and matters little with the full data; task-related words help more than
#   unrelated ones, which still beat a random start.
# - **Length (§7.1).** Quality rises with the prefix length up to a point (about 10 for
#   table-to-text), then dips slightly; the chosen lengths were small (E2E: 5).
# - **Depth (§7.2, Table 4).** A prefix on every layer beats trained vectors at the input
#   embeddings only ("embedding-only", i.e. prompt tuning). P-tuning v2 (Liu et al., arXiv
#   2110.07602, §4.4) found that prompts on the upper layers matter more than on the lower ones.
#   The source article adds "keeping only the first-layer prefix drops ROUGE-L by 4.7" — the
#   paper has no such ablation; this lesson measures that prefix itself.
#
# **What you will learn:** how `Prefix.init_from_tokens`, `length` and `layers=[...]` work, and
# which of the papers' directions show up on the course's frozen base model — each as a paired
# verdict over seeds, "not shown" where the seeds disagree.
#
# Run: `python lessons/08_prefix_init_length_depth.py [--fast | --full]` (default: under a
# minute on a 2-core CPU; `--fast`: seconds, what the tests run; `--full`: 5 seeds, 100 test
# inputs, lengths 20 and 40, a larger sample and a second task for the initialisation, and the
# half-depth prefixes).

# %%
import json

from common import (RESULTS, SEEDS, Verdict, chosen_lr, evaluate, lesson_mode, load_base,
                    seed_everything, setup, spread, table, takeaway, tune, validation_loss,
                    verdict)
from minitx.tuning import Prefix, SoftPrompt, Tuned, count_parameters
from toyworld import make_split

MODE = lesson_mode()
LR_RECORD = json.loads((RESULTS / "learning_rates.json").read_text())
SWEEP = LR_RECORD["budget"]  # the training budget the learning rates were chosen with
SETTINGS = {  # (a): examples and steps per data size; (b), (c): examples, steps, lengths
    "fast": dict(init_sizes=((8, 4),), n_train=32, steps=6, n_test=8, lengths=(1, 10),
                 halves=False),
    "default": dict(init_sizes=((16, 30),), n_train=SWEEP["n_train"], steps=SWEEP["steps"],
                    n_test=40, lengths=(1, 5, 10), halves=False),
    "full": dict(init_sizes=((16, 30), (256, 120)), n_train=SWEEP["n_train"],
                 steps=SWEEP["steps"], n_test=100, lengths=(1, 5, 10, 20, 40), halves=True),
}
S = SETTINGS[MODE]
SEED_LIST = SEEDS[MODE]
setup(0)
base, tok = load_base("small")
MID = 128  # the MLP's hidden width: the course's standard prefix_mlp (common.build_method)
BATCH = SWEEP["batch_size"]
LR = {task: {method: chosen_lr(task, method) for method in ("prefix_mlp", "prompt")}
      for task in ("reverse", "first_last")}
print(f"mode {MODE}: seeds {list(SEED_LIST)}; learning rates chosen by lessons/choose_lrs.py "
      f"({LR_RECORD['date']})")
print(f"on the validation split (seed {LR_RECORD['seed']}, {SWEEP['n_train']} examples, "
      f"{SWEEP['steps']} steps of {BATCH}; the lowest validation loss wins):")
for name, rates in LR.items():
    print(f"  {name}: " + ", ".join(f"{method} {rate:g}" for method, rate in rates.items()))

runs = {}  # (task, arm, n_train, steps, seed) -> test scores (and the step-0 score in (a))


def train_arm(task, arm, make, n_train, steps, seed, lr, test_set, score_start=False):
    """Train `make()` (built after seeding) on this seed's sample; cached in `runs`. With
    score_start, also the untrained method's exact match and both runs' answer NLL x100."""
    key = (task, arm, n_train, steps, seed)
    if key not in runs:
        seed_everything(seed)  # the seed draws the initialisation ...
        method = make()
        start, nll = None, None
        if score_start:
            untrained = Tuned(base)
            untrained.add(task, method)
            start = evaluate(untrained, tok, task, test_set)["exact"]
        train_set = make_split(task, n_train, "train", seed=seed)  # ... the sample ...
        tuned, _ = tune(base, tok, method, train_set, steps, lr, batch_size=BATCH, seed=seed,
                        task=task)  # ... and the batch order
        if score_start:
            nll = 100 * validation_loss(tuned, tok, test_set)
        runs[key] = {**evaluate(tuned, tok, task, test_set), "step 0": start, "nll": nll,
                     "method": method}
    return runs[key]


def per_seed(task, arm, n_train, steps, metric):
    return [runs[task, arm, n_train, steps, seed][metric] for seed in SEED_LIST]


# %% [markdown]
# ## (a) Initialising the prefix from real words
#
# `Prefix.init_from_tokens(model, ids)` runs the frozen model on the words and copies the keys
# and values it computes into the prefix (with the MLP: it solves the MLP's last layer so that
# the MLP outputs exactly those keys and values). For a prefix as long as the phrase, the prefix
# *is* the hard prompt: "reverse the list :" as a prefix in front of "red blue green =>"
# computes what the model computes for "reverse the list : red blue green =>" (lesson 03 proves
# the equality). So task-relevant words start where a good hard prompt is.
#
# Task: reverse *without* an instruction, trained on a small sample (low data). Three starts
# for the same 4-position prefix: the words of a pretrained instruction, unrelated real words
# (a review's), and the MLP's own random initialisation (PyTorch's defaults; the paper's random
# baseline was a uniform draw — a different random, the same role). The three starts of one
# seed share P′, the MLP's first layer, the training sample and the batch order: paired.

# %%
INIT_CASES = [("reverse", "reverse the list :", "the coffee was lovely")]
if MODE == "full":  # a task whose own wording this model never learned
    INIT_CASES.append(("first_last", "say the last word then the first word :",
                       "the coffee was lovely but the staff was awful"))
INITS = ("task words", "unrelated", "random")  # the three starts
fit_errors = []  # how exactly the MLP reproduces the words' keys and values


def init_prefix(words, length):
    prefix = Prefix(base, length, mid=MID)
    if words is not None:
        fit_errors.append(prefix.init_from_tokens(base, tok.encode(words)))
    return prefix


init_rows, init_verdicts, init_frozen = [], {}, {}
for task, relevant, unrelated in INIT_CASES:
    length = len(tok.encode(relevant))
    test_set = make_split(task, S["n_test"], "test")
    init_frozen[task] = {"hard prompt": evaluate(base, tok, task, test_set,
                                                 relevant.rstrip(" :"))["exact"],
                         "no instruction": evaluate(base, tok, task, test_set)["exact"]}
    print(f"\n{task}, the frozen model: {init_frozen[task]['no instruction']:.1f}% exact with no "
          f"instruction, {init_frozen[task]['hard prompt']:.1f}% with")
    print(f"  '{relevant}' in front")
    for n_train, steps in S["init_sizes"]:
        for init, words in zip(INITS, (relevant, unrelated, None)):
            for seed in SEED_LIST:
                train_arm(task, init, lambda: init_prefix(words, length), n_train, steps, seed,
                          LR[task]["prefix_mlp"], test_set, score_start=True)
            init_rows.append({"task": task, "train": n_train, "steps": steps, "init": init,
                              "step-0 exact": spread(per_seed(task, init, n_train, steps,
                                                              "step 0")),
                              "exact after": spread(per_seed(task, init, n_train, steps,
                                                             "exact")),
                              "NLL after": spread(per_seed(task, init, n_train, steps, "nll"))})
        exact = {init: per_seed(task, init, n_train, steps, "exact") for init in INITS}
        nll = {init: [-x for x in per_seed(task, init, n_train, steps, "nll")] for init in INITS}
        for metric, scores, says in (("exact", exact, "exact %"),
                                     ("nll", nll, "minus the NLL x100")):
            print(f"verdicts, {task}, {n_train} examples, {says} after training (A-B per seed):")
            for a, b in (("task words", "random"), ("unrelated", "random"),
                         ("task words", "unrelated")):
                init_verdicts[task, n_train, metric, a, b] = verdict(f"{a} > {b}", scores[a],
                                                                     scores[b])
table(init_rows, f"(a) initialisation, no instruction: {S['n_test']} test inputs, "
      f"{len(SEED_LIST)} seeds", notes={
          "train, steps": f"training examples per seed, steps (batches of {BATCH})",
          "init": "task words / unrelated (real words) / random: how the prefix starts",
          "step-0 exact": "exact match of the untrained prefix: mean (lowest-highest seed)",
          "exact after": "exact match after training: mean (lowest-highest seed)",
          "NLL after": "mean -log p of each answer token x100 after training (lower is better)"})
print(f"(the MLP reproduces the words' keys and values to a mean squared error of at most "
      f"{max(fit_errors):.1e})")

# %% [markdown]
# **What the output means.** The step-0 column shows the equality above at work: the prefix
# made from the pretrained instruction's own keys and values scores what that hard prompt
# scores, before any training; compare the other two starts with the frozen model's score with
# no instruction. Whether the head start survives training is what the verdicts say, on two
# scores: exact match, which a run either reaches or not, and the finer answer NLL (lower is
# better; the verdict compares minus the NLL, so "holds" means the first start ends lower).
# `--full` adds a larger sample (the paper: the advantage fades with more data) and first_last,
# whose own wording this model never learned, so its "task words" are just words.
#
# ## (b) Prefix length
#
# Task: first_last without an instruction ("chair 4 can paint phone knife =>" gives "knife
# chair"), never pretrained, so the prefix must supply the skill. Metrics: exact match and
# ROUGE-L (Lin 2004: the longest common subsequence, so half-right answers get partial
# credit). BLEU is left out: the answers are two words long and BLEU-4 needs 4-grams. Every
# length runs on every seed at the MLP's chosen rate, with the budget the rate was chosen with;
# `--full` adds lengths 20 and 40 (Li & Liang searched 1 to 40 for table-to-text). The "kept"
# column counts what `export()` keeps, 2 · layers · P · d.

# %%
task = "first_last"
test_set = make_split(task, S["n_test"], "test")
frozen = evaluate(base, tok, task, test_set)
print(f"the frozen model on {task} without an instruction: exact {frozen['exact']:.1f}%, "
      f"ROUGE-L {frozen['rouge_l']:.1f}")
lr = LR[task]["prefix_mlp"]


def all_layers(P):
    return lambda: Prefix(base, P, mid=MID)


length_rows = []
for P in S["lengths"]:
    for seed in SEED_LIST:
        train_arm(task, f"P={P}", all_layers(P), S["n_train"], S["steps"], seed, lr, test_set)
    method = runs[task, f"P={P}", S["n_train"], S["steps"], SEED_LIST[0]]["method"]
    length_rows.append({"P": P, "kept": count_parameters(method.export())[0],
                        "trained": count_parameters(method)[0],
                        "exact %": spread(per_seed(task, f"P={P}", S["n_train"], S["steps"],
                                                   "exact")),
                        "ROUGE-L": spread(per_seed(task, f"P={P}", S["n_train"], S["steps"],
                                                   "rouge_l"))})
table(length_rows, f"(b) prefix length, {task}: {S['n_train']} examples, {S['steps']} steps, "
      f"lr {lr:g}, {len(SEED_LIST)} seeds", notes={
          "kept, trained": "numbers kept after export() / trained with the MLP",
          "exact %, ROUGE-L": "mean (lowest-highest seed) on the test inputs"})


def rouge(arm):
    return per_seed(task, arm, S["n_train"], S["steps"], "rouge_l")


print("\nverdicts, ROUGE-L (A-B per seed):")
length_verdicts = {(long, short): verdict(f"P={long} > P={short}", rouge(f"P={long}"),
                                          rouge(f"P={short}"))
                   for short, long in zip(S["lengths"], S["lengths"][1:])}
if 1 in S["lengths"] and 10 in S["lengths"] and (10, 1) not in length_verdicts:
    length_verdicts[10, 1] = verdict("P=10 > P=1", rouge("P=10"), rouge("P=1"))

# %% [markdown]
# A "best length" needs more than the highest mean: it must beat every other length on every
# seed. The cell checks every pair (without printing them all) and names a best length only
# when such a length exists.

# %%
def beats(a, b):
    return Verdict(f"P={a} > P={b}", [x - y for x, y in zip(rouge(f"P={a}"), rouge(f"P={b}"))])


best = [P for P in S["lengths"]
        if all(beats(P, Q).word == "holds" for Q in S["lengths"] if Q != P)]
best_length = best[0] if best else None
print(f"best length: P={best_length} (its verdicts hold against every other length)"
      if best else "best length: none shown (no length beats every other on every seed)")

# %% [markdown]
# ## (c) Which layers carry the prefix
#
# With the length fixed at 10, the prefix sits on all layers (the same runs as P=10 in (b)), on
# the first layer alone (the source article's "first-layer prefix"), on the last layer alone,
# or nowhere but the input embeddings: a `SoftPrompt` of 10 vectors, Li & Liang's
# "embedding-only" ablation (the course's standard soft prompt, initialised from sampled words,
# at the rate chosen for it: it has no MLP to enlarge its steps). `--full` adds the bottom and
# the top half. A prefix on fewer layers trains at the same rate as on all of them. "kept"
# counts what is saved: 2 · layers · P · d for a prefix, P · d for the soft prompt.

# %%
n_layer = base.config.n_layer
DEPTH_P = 10
PLACEMENTS = {"all layers": None, "first layer only": [0], "last layer only": [n_layer - 1]}
if S["halves"]:
    PLACEMENTS.update({"bottom half": list(range(n_layer // 2)),
                       "top half": list(range(n_layer // 2, n_layer))})
ARMS = {name: (lambda layers=layers: Prefix(base, DEPTH_P, mid=MID, layers=layers))
        for name, layers in PLACEMENTS.items()}
ARMS["input only (soft prompt)"] = lambda: SoftPrompt(base, DEPTH_P, init="vocab")
LAYERS_OF = {**{name: "all" if layers is None else " ".join(map(str, layers))
                for name, layers in PLACEMENTS.items()}, "input only (soft prompt)": "input"}
for name, make in ARMS.items():
    arm = f"P={DEPTH_P}" if name == "all layers" else name  # all layers = (b)'s P=10 runs
    rate = LR[task]["prompt"] if name.startswith("input") else lr
    for seed in SEED_LIST:
        train_arm(task, arm, make, S["n_train"], S["steps"], seed, rate, test_set)


def arm_of(name):
    return f"P={DEPTH_P}" if name == "all layers" else name


depth_rows = []
for name in ARMS:
    method = runs[task, arm_of(name), S["n_train"], S["steps"], SEED_LIST[0]]["method"]
    kept = method.export() if isinstance(method, Prefix) else method
    depth_rows.append({"prefix": name, "layers": LAYERS_OF[name],
                       "kept": count_parameters(kept)[0], "trained": count_parameters(method)[0],
                       "exact %": spread(per_seed(task, arm_of(name), S["n_train"], S["steps"],
                                                  "exact")),
                       "ROUGE-L": spread(rouge(arm_of(name)))})
table(depth_rows, f"(c) where the P = {DEPTH_P} prefix sits, {task}, {len(SEED_LIST)} seeds",
      notes={"layers": f"the layers with a prefix (0 = first, {n_layer - 1} = last); input = "
                       "the input embeddings"})
print(f"\nsetting: {task} without an instruction, {S['n_train']} training examples per seed, "
      f"{S['steps']} steps of {BATCH},")
print(f"  P = {DEPTH_P}, MLP mid {MID} at lr {lr:g} (soft prompt lr {LR[task]['prompt']:g}), "
      f"a frozen {n_layer}-layer, width-{base.config.n_embd} base")
print("  (the article's -4.7 ROUGE-L names no setting; Li & Liang have no per-layer ablation)")
print("verdicts, ROUGE-L (A-B per seed):")
depth_verdicts = {
    "all > first": verdict("all > first layer only", rouge(f"P={DEPTH_P}"),
                           rouge("first layer only")),
    "first > last": verdict("first > last layer only", rouge("first layer only"),
                            rouge("last layer only")),
    "all > input": verdict("all layers > input only", rouge(f"P={DEPTH_P}"),
                           rouge("input only (soft prompt)")),
}
if S["halves"]:
    depth_verdicts["top > bottom"] = verdict("top half > bottom half", rouge("top half"),
                                             rouge("bottom half"))
first_layer_verdict = depth_verdicts["all > first"]  # lesson 16 points readers here

# %% [markdown]
# **What the output means.** "all layers > first layer only" is the article's claim turned into
# a test on this model: "holds" means the first-layer-only prefix scored lower on every seed
# (the A-B number is how much, in ROUGE-L points), "reversed" that it scored higher on every
# seed, "not shown" that the seeds disagree. "first layer only > last layer only" asks P-tuning
# v2's question in its smallest form: its finding, that upper layers matter more, predicts
# "reversed". A 4-layer toy model trained for a minute of CPU is not GPT-2 medium trained for
# epochs: a verdict here is evidence about this setting, printed beside the setting.
#
# The paper's own numbers for the embedding-only comparison, quoted (not measured here):

# %%
PAPER_E2E = [  # Li & Liang 2021, arXiv 2101.00190, ACL version, Table 4 (E2E, GPT-2 medium)
    {"Li & Liang Table 4 (E2E)": "prefix (every layer)", "BLEU": 70.3, "ROUGE-L": 72.1},
    {"Li & Liang Table 4 (E2E)": "embedding-only, 1 vector", "BLEU": 48.1, "ROUGE-L": 60.2},
    {"Li & Liang Table 4 (E2E)": "embedding-only, 10 vectors", "BLEU": 62.2, "ROUGE-L": 66.4},
    {"Li & Liang Table 4 (E2E)": "embedding-only, 20 vectors", "BLEU": 61.9, "ROUGE-L": 65.6},
]
table(PAPER_E2E, "quoted: Li & Liang 2021 (arXiv 2101.00190, ACL version, Table 4), GPT-2 medium")

low = S["init_sizes"][0][0]  # the low-data size of (a)
paper_vs_run = [  # claim, source, the direction the source reports or claims, this run's verdict
    ("task words > random", "L&L §7.4", "holds (little data)",
     init_verdicts["reverse", low, "nll", "task words", "random"]),
    ("unrelated > random", "L&L §7.4", "holds (little data)",
     init_verdicts["reverse", low, "nll", "unrelated", "random"]),
    *((v.claim, "L&L §7.1", "holds" if a <= 10 else "reversed (slightly)", v)
      for (a, b), v in length_verdicts.items()),
    ("all layers > input only", "L&L Table 4", "holds", depth_verdicts["all > input"]),
    ("all > first layer only", "the article", "holds (-4.7 ROUGE-L)",
     depth_verdicts["all > first"]),
    ("first > last layer only", "P-tuning v2 §4.4", "reversed", depth_verdicts["first > last"]),
    *([("top half > bottom half", "P-tuning v2 §4.4", "holds", depth_verdicts["top > bottom"])]
      if S["halves"] else []),
]
table([{"claim": claim, "source": source, "source: A > B": expected, "this run": v.word}
       for claim, source, expected, v in paper_vs_run],
      "the sources' directions and this run's verdicts", notes={
          "source": "L&L = Li & Liang 2021; the article makes its claim without a source",
          "this run": "init: on the answer NLL; length and depth: on ROUGE-L"})


# %%
def said(v):
    return f"{v.claim}: {v.word} (A-B {v.mean:+.1f})"


takeaway(
    *(f"init ({low} examples), {says}: {said(init_verdicts['reverse', low, metric, a, b])}"
      for metric, says in (("exact", "exact %"), ("nll", "-NLL"))
      for a, b in (("task words", "random"), ("unrelated", "random"))),
    *(f"length, ROUGE-L: {said(v)}" for v in length_verdicts.values()),
    f"best length: P={best_length}" if best_length else
    "best length: none shown (no length beats every other on every seed)",
    *(f"depth, ROUGE-L: {said(v)}" for v in depth_verdicts.values()),
)

# %% [markdown]
# ## Exercises
#
# 1. **A prefix of real words is a hard prompt.** Build a *direct* prefix (`mid=None`) of
#    length 4, set it from "reverse the list :" with `init_from_tokens`, and compare the
#    logits for "red blue green =>" with the frozen model's logits for "reverse the list : red
#    blue green =>". *Observe:* equal up to float rounding. *Hint:* `Tuned(base)`, `add`, and
#    compare the last position's logits; positions continue at P (lesson 03).
# 2. **Count before you run.** A prefix of length 10 on layers 1 and 2 only: how many numbers
#    does it keep after `export()`? *Observe:* 2 · 2 · 10 · 128. *Hint:*
#    `count_parameters(Prefix(base, 10, mid=MID, layers=[1, 2]).export())[0]`.
# 3. **More data.** Rerun (a) with 256 training examples and more steps (set
#    `S["init_sizes"] = ((256, 120),)`). Does "task words > random" still hold? *Hint:* the
#    paper says the advantage fades with the full data; the `--full` mode runs both sizes.
# 4. **Open: depth, seriously.** Is the first-layer-only verdict a property of this task, or of
#    its training budget? Rerun (c) with 3x the steps and with another generation task (e.g.
#    "returns", scored with BLEU as well), and write down a verdict for each setting before
#    you compare them with the article's number.
