# %% [markdown]
# # 01 · Soft prompt shapes
#
# Prompt tuning (Lester, Al-Rfou & Constant 2021, arXiv 2104.08691 v2, §2) freezes the whole
# model and trains only a matrix P_e of shape (p, e): p "virtual tokens", each as wide as a word
# embedding. The n input tokens are embedded as usual, X_e of shape (n, e), and the model reads
# the concatenation [P_e; X_e] of p + n rows. Nothing inside the model changes. A hard prompt is
# text ("classify this review :") that the tokenizer turns into ids and the embedding table into
# vectors; a soft prompt skips the text: its vectors are parameters found by gradient descent,
# free to lie anywhere in the embedding space, not only on the rows of the table.
#
# **What you will learn**
# - the shapes of the worked example, and how few parameters a prompt trains;
# - how a soft prompt goes in front of a minitx GPT, which logits belong to the input, and that
#   only the prompt receives gradients;
# - that minitx's `SoftPrompt` does exactly this;
# - that training the prompt alone steers a frozen model.
#
# Run: `python lessons/01_soft_prompt_shapes.py [--fast | --full]` (after `pip install -e .`).
# Every paper cited is listed in `lessons/REFERENCES.md`.

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from minitx import GPT, Config
from minitx.tuning import SoftPrompt, Tuned
from common import SEEDS, lesson_mode, setup, spread, table, takeaway, verdict

MODE = lesson_mode()
SETTINGS = {"fast": dict(steps=20), "default": dict(steps=100), "full": dict(steps=300)}
S = SETTINGS[MODE]
setup(0)


def prepend(soft_prompt, token_embeds):
    """[P_e; X_e]: the (p, e) prompt, shared by every row, in front of (B, n, e) embeddings."""
    prompt = soft_prompt.unsqueeze(0).expand(token_embeds.size(0), -1, -1)  # (B, p, e), a view
    return torch.cat([prompt, token_embeds], dim=1)  # (B, p + n, e)


# %% [markdown]
# ## The worked example
#
# An embedding table of 50,000 words x width 768 (GPT-2 / BERT-base size), a soft prompt of 10
# virtual tokens, a batch of 4 sequences of 20 tokens. The prompt is one (10, 768) matrix shared
# by every row of the batch, so it is *expanded* to (4, 10, 768) — a view, no copy — and
# concatenated in front of the (4, 20, 768) token embeddings along the sequence axis.
#
# Lester et al. compare three initialisations: uniform in [-0.5, 0.5], embeddings of words
# sampled from the vocabulary, and embeddings of the class labels (§3.2); uniform is the
# simplest, so it is used here.

# %%
VOCAB, WIDTH, N_VIRTUAL, BATCH, SEQ = 50_000, 768, 10, 4, 20
embedding_table = nn.Embedding(VOCAB, WIDTH).requires_grad_(False)  # the frozen word embeddings
soft_prompt = nn.Parameter(torch.empty(N_VIRTUAL, WIDTH).uniform_(-0.5, 0.5))  # P_e, trainable
input_ids = torch.randint(0, VOCAB, (BATCH, SEQ))
token_embeds = embedding_table(input_ids)  # (B, n, e)
inputs_embeds = prepend(soft_prompt, token_embeds)  # (B, p + n, e)
expanded = soft_prompt.unsqueeze(0).expand(BATCH, -1, -1)

table([{"tensor": "input ids", "shape": tuple(input_ids.shape), "what it holds": "B x n token ids"},
       {"tensor": "token embeddings X_e", "shape": tuple(token_embeds.shape),
        "what it holds": "one table row per id (frozen)"},
       {"tensor": "soft prompt P_e", "shape": tuple(soft_prompt.shape),
        "what it holds": "p x e trainable numbers"},
       {"tensor": "P_e expanded", "shape": tuple(expanded.shape),
        "what it holds": f"a view: stride {expanded.stride(0)} along the batch, no copy"},
       {"tensor": "[P_e; X_e]", "shape": tuple(inputs_embeds.shape),
        "what it holds": "what the model reads: p + n rows"}],
      title="the worked example's tensors (B = batch, n = tokens, p = virtual tokens, e = width)")
trainable = soft_prompt.numel()
table_params = embedding_table.weight.numel()
print(f"\ntrainable parameters: {trainable:,}; the embedding table alone holds {table_params:,} "
      f"({100 * trainable / table_params:.3f}%)")

# %% [markdown]
# **What the output means.** The only trainable tensor is P_e, p x e numbers. The share printed
# is against the embedding table only; against a whole model it is smaller still. The paper's
# own count (Lester et al., arXiv 2104.08691 v2; `lessons/REFERENCES.md`, "Parameter counts"):
# a 100-token prompt on T5-Base is 100 x 768 = 76,800 parameters, 0.031% of the model.
#
# ## The same thing inside a model
#
# minitx's `GPT` accepts `inputs_embeds` (B, T, C) instead of token ids, so a soft prompt needs
# no change to the model. The model adds position embeddings to all p + n rows and returns
# logits for all of them: (B, p + n, vocab). The virtual positions have no "next token" to
# predict, so the loss uses the **last n** positions only (target -1 means "no loss here").
#
# Two checks follow. A soft prompt made of the embeddings of real token ids *is* a hard prompt
# of those ids, so the input's logits must be equal. And after one backward pass only the prompt
# may hold a gradient: every base parameter has `requires_grad=False`.

# %%
def tiny_model():
    """A small GPT with every weight frozen (the base of prompt tuning)."""
    torch.manual_seed(0)
    model = GPT(Config(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=32))
    return model.requires_grad_(False)


def with_soft_prompt(model, soft_prompt, idx, targets=None):
    """[soft prompt; token embeddings] -> (logits (B, p + n, vocab), loss or None)."""
    logits, loss, _ = model(inputs_embeds=prepend(soft_prompt, model.transformer.wte(idx)),
                            targets=targets)
    return logits, loss


model = tiny_model()
wte = model.transformer.wte.weight  # (vocab, C)
P_TINY, N_TINY = 10, 20
idx = torch.randint(0, 64, (BATCH, N_TINY))
tiny_prompt = nn.Parameter(torch.empty(P_TINY, wte.size(1)).uniform_(-0.5, 0.5))
logits, _ = with_soft_prompt(model, tiny_prompt, idx)
real = logits[:, P_TINY:]  # the input's own logits: the last n positions
print(f"logits for [prompt; input]    {tuple(logits.shape)}  (B, p + n, vocab)")
print(f"the input's logits [:, p:]    {tuple(real.shape)}  (B, n, vocab)")

hard_ids = torch.randint(0, 64, (P_TINY,))
as_soft = with_soft_prompt(model, wte[hard_ids], idx)[0][:, P_TINY:]
as_hard = model(torch.cat([hard_ids.expand(BATCH, -1), idx], dim=1))[0][:, P_TINY:]
hard_diff = (as_soft - as_hard).abs().max().item()
print(f"soft prompt of real-token embeddings vs those ids as text: max |diff| = {hard_diff:.1e}")

targets = torch.cat([torch.full((BATCH, P_TINY), -1), idx[:, 1:], torch.full((BATCH, 1), -1)],
                    dim=1)  # (B, p + n): the next token, on the input's positions only
_, loss = with_soft_prompt(model, tiny_prompt, idx, targets)
loss.backward()
n_base_tensors = len(list(model.parameters()))
n_base_with_grad = sum(p.grad is not None for p in model.parameters())
prompt_grad_norm = tiny_prompt.grad.norm().item()
print(f"one backward pass: loss {loss.item():.3f}; prompt gradient {tuple(tiny_prompt.grad.shape)} "
      f"with norm {prompt_grad_norm:.2e}")
print(f"base tensors holding a gradient: {n_base_with_grad} of {n_base_tensors}")

# %% [markdown]
# **What the output means.** Slicing `[:, p:]` lines the logits up with the input again; the
# hard-prompt check proves the slicing and the positions right (a difference at float rounding
# level, or exactly zero). No base tensor holds a gradient, so nothing but P_e can change, and
# no memory is spent on gradients for the model's weights.
#
# ## minitx's `SoftPrompt` does the same
#
# `tuning.SoftPrompt` holds P_e; `tuning.Tuned` wraps the frozen base, puts the prompt in front
# of the token embeddings and drops the virtual positions from its output, so its logits line up
# with `idx`. Given the same P_e it must give the logits computed by hand above.

# %%
method = SoftPrompt(model, P_TINY)
with torch.no_grad():
    method.embeddings.copy_(tiny_prompt)
tuned = Tuned(model)
tuned.add("demo", method)
with torch.no_grad():
    library_logits = tuned(idx)[0]  # (B, n, vocab): virtual positions already dropped
library_diff = (library_logits - real).abs().max().item()
print(f"Tuned + SoftPrompt {tuple(library_logits.shape)} vs by hand: max |diff| = "
      f"{library_diff:.1e}")

# %% [markdown]
# ## Training only the prompt
#
# Can p x C = 320 numbers steer a frozen model? A toy task: whatever the input, the next token
# after it must be token 7 (think of 7 as the label word of a classifier). Each step draws a
# fresh batch of random inputs, so the prompt cannot memorise them; the loss is taken at the last
# position only, and the score is the mean probability of token 7 there on 64 held-out inputs.
#
# A freshly initialised GPT (weights of std 0.02) is nearly deaf to its context: every token
# mostly sees itself. As a crude stand-in for pretraining every weight matrix is redrawn with std
# 0.3, so that attention mixes positions and a prompt has something to steer (lesson 04 builds
# a real pretrained base). Lester et al. trained prompts at a learning rate of 0.3 (Adafactor)
# against 0.001 for model tuning (§2): prompts want large steps; AdamW at 0.3 is used here.
#
# Evidence: the claim "a trained prompt beats its untrained start" is run on every seed of this
# mode (a new prompt initialisation and a new stream of training inputs per seed, the same frozen
# model and held-out inputs), and the verdict is computed from the per-seed paired differences.

# %%
def steered_model():
    """The tiny GPT with every weight matrix redrawn at std 0.3 (see above), frozen."""
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:  # every weight matrix, the (tied) embedding table included
                p.normal_(0.0, 0.3)
    return model


def train_prompt(model, seed, steps, n_virtual=10, batch=8, seq=12, label=7, lr=0.3):
    """Train a soft prompt alone to make `label` the next token; return (P(label) before,
    after) on held-out inputs, in %, and whether every base weight stayed bit-identical."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(seed)
    prompt = nn.Parameter(torch.empty(n_virtual, model.config.n_embd).uniform_(-0.5, 0.5))
    opt = torch.optim.AdamW([prompt], lr=lr, weight_decay=0.0)  # the prompt only
    data = torch.Generator().manual_seed(1000 + seed)
    held_out = torch.randint(0, 64, (64, seq), generator=torch.Generator().manual_seed(1))

    def p_label():
        with torch.no_grad():
            last = with_soft_prompt(model, prompt, held_out)[0][:, -1]  # (64, vocab)
            return 100 * last.softmax(-1)[:, label].mean().item()

    first = p_label()
    for _ in range(steps):
        x = torch.randint(0, 64, (batch, seq), generator=data)
        loss = F.cross_entropy(with_soft_prompt(model, prompt, x)[0][:, -1],
                               torch.full((batch,), label))
        opt.zero_grad()
        loss.backward()
        opt.step()
    unchanged = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    return first, p_label(), unchanged


steered = steered_model()
runs = {seed: train_prompt(steered, seed, S["steps"]) for seed in SEEDS[MODE]}
p_before = [runs[s][0] for s in SEEDS[MODE]]
p_after = [runs[s][1] for s in SEEDS[MODE]]
base_unchanged = [runs[s][2] for s in SEEDS[MODE]]
table([{"seed": s, "P(7) before": runs[s][0], "P(7) after": runs[s][1],
        "base unchanged": "yes" if runs[s][2] else "NO"} for s in SEEDS[MODE]],
      title=f"prompt trained alone for {S['steps']} steps, 64 held-out inputs", floatfmt="{:.1f}",
      notes={"P(7) before/after": "mean probability (%) of token 7 after the input, before and "
                                  "after training",
             "base unchanged": "every base weight bit-identical after training"})
print()
steering = verdict("training raises P(7) (%)", p_after, p_before)

# %% [markdown]
# **What the output means.** The frozen model's weights did not move (checked bit for bit in the
# column "base unchanged"), so whatever changed P(7) was the prompt alone: it re-routes the
# model's computation without touching it. The verdict reads "holds" only if P(7) rose on every
# seed. What this toy does *not* show is how good
# a soft prompt is on a real task: that needs a pretrained model (lessons 04-06). Lester et al.
# found that the gap to full fine-tuning closes as models grow and vanishes at T5-XXL (11B)
# (§3.1, Figure 1; `lessons/REFERENCES.md`); at small scale it is large.

# %%
takeaway(
    f"a {N_VIRTUAL}-token prompt at width {WIDTH} trains {trainable:,} numbers, "
    f"{100 * trainable / table_params:.3f}% of the embedding table alone",
    f"[prompt; input] gives logits for all p + n = {logits.size(1)} positions; the input's are the "
    f"last n = {real.size(1)}",
    f"a soft prompt of real-token embeddings = that hard prompt (max |diff| {hard_diff:.1e})",
    f"minitx's SoftPrompt + Tuned = the same by hand (max |diff| {library_diff:.1e})",
    f"after backward, {n_base_with_grad} of {n_base_tensors} base tensors hold a gradient; "
    f"the prompt does (norm {prompt_grad_norm:.1e})",
    f"training the prompt alone: P(7) {spread(p_before)} -> {spread(p_after)} %, mean "
    f"(min-max) of {len(p_after)} seeds",
    f"\"training raises P(7)\": {steering.word}",
    f"base weights bit-identical after training on every seed: {all(base_unchanged)}")

# %% [markdown]
# ## Exercises
#
# 1. **Lester et al.'s default length.** In the worked example set `N_VIRTUAL = 100` and rerun
#    its cell. *Observe:* the trainable count the paper gives for a 100-token prompt on T5-Base
#    (width 768). *Hint:* p x e; the size of the vocabulary never enters.
# 2. **`expand` or `repeat`?** In `prepend`, replace `.expand(B, -1, -1)` by `.repeat(B, 1, 1)`.
#    *Observe:* the logits are bit-identical and so is the prompt's gradient (summed over the
#    batch rows either way), but the repeated prompt holds B copies in memory while the expanded
#    one has stride 0 along the batch. *Hint:* `t.stride()`, `t.untyped_storage().nbytes()`.
# 3. **Frozen means "no gradient", not "not in the optimizer".** Unfreeze the base
#    (`model.requires_grad_(True)`) but keep the optimizer on the prompt alone; take one step.
#    *Observe:* every base tensor now holds a `.grad` (memory and time spent for nothing), yet no
#    base weight changes. *Hint:* count `p.grad is not None`; compare `state_dict()`s.
# 4. **Open: does the initialisation matter here?** Start the prompt from the embeddings of
#    sampled vocabulary rows (Lester et al.'s "sampled vocab", §3.2) instead of uniform noise and
#    compare P(7) after training with `verdict` over `SEEDS[MODE]`. Is this randomly redrawn
#    model a fair place to test the paper's ordering? *Hint:*
#    `steered.transformer.wte.weight[torch.randint(0, 64, (10,))].clone()`.
