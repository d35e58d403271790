"""Lesson 01: a soft prompt is a few trainable vectors in front of the input embeddings.

Prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for Parameter-Efficient
Prompt Tuning", arXiv 2104.08691) freezes the whole model and learns only a matrix
P_e in R^(p x e): p "virtual tokens", each as wide as a word embedding. The input X of n tokens
is embedded as usual, X_e in R^(n x e), and the model reads the concatenation [P_e; X_e] of
p + n rows. Nothing inside the model changes; no virtual token corresponds to a real word.

This lesson reproduces the shapes of the source article's worked example, counts the trainable
parameters, then runs a tiny minitx GPT on [soft prompt; token embeddings] and checks that only
the soft prompt receives gradients.

Run:  python lessons/01_soft_prompt_shapes.py [--fast]      (after `pip install -e .`)
"""
# %% [markdown]
# # 01 · Soft prompt shapes
#
# A hard prompt is text ("Summarize:") that the tokenizer turns into ids and the embedding table
# into vectors. A soft prompt skips the text: its vectors are parameters, found by gradient
# descent, and may lie anywhere in the embedding space, not only on the rows of the table.

# %%
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from minitx import GPT, Config

# %% [markdown]
# ## The article's worked example
#
# An embedding table of vocab 50,000 x width 768 (GPT-2 / BERT-base size), a soft prompt of
# 10 virtual tokens, a batch of 4 sequences of 20 tokens. The prompt is one (10, 768) matrix
# shared by every row of the batch, so it is expanded (a view, no copy) to (4, 10, 768) and
# concatenated in front of the (4, 20, 768) token embeddings along the sequence axis.
#
# Lester et al. compare three initialisations: uniform in [-0.5, 0.5], embeddings of words
# sampled from the vocabulary, and embeddings of the class labels; random is the worst for
# small models. Here: uniform, as the simplest.


# %%
def article_shapes(vocab=50_000, width=768, n_virtual=10, batch=4, seq=20):
    torch.manual_seed(0)
    table = nn.Embedding(vocab, width)  # the frozen word embeddings
    table.weight.requires_grad_(False)
    soft_prompt = nn.Parameter(torch.empty(n_virtual, width).uniform_(-0.5, 0.5))  # P_e

    input_ids = torch.randint(0, vocab, (batch, seq))  # (4, 20)
    token_embeds = table(input_ids)  # (4, 20, 768)
    prompt = soft_prompt.unsqueeze(0).expand(batch, -1, -1)  # (4, 10, 768)
    inputs_embeds = torch.cat([prompt, token_embeds], dim=1)  # (4, 30, 768)

    trainable = sum(p.numel() for p in [soft_prompt] if p.requires_grad)
    table_params = table.weight.numel()
    print(f"input ids            {list(input_ids.shape)}")
    print(f"token embeddings     {list(token_embeds.shape)}")
    print(f"soft prompt P_e      {list(soft_prompt.shape)}   (trainable)")
    print(f"expanded over batch  {list(prompt.shape)}")
    print(f"concatenated input   {list(inputs_embeds.shape)}")
    print(f"trainable parameters {trainable:,} vs the table's {table_params:,} "
          f"({100 * trainable / table_params:.3f}% of the table alone)")
    return dict(concat_shape=tuple(inputs_embeds.shape), prompt_shape=tuple(soft_prompt.shape),
                trainable=trainable, table_params=table_params)


# %% [markdown]
# The paper's own count: T5-Base with a 100-token prompt trains 100 x 768 = 76,800 parameters,
# 0.031% of the model. The ratio printed above is against the embedding table only; against a
# whole model it is smaller still.
#
# ## The same thing inside a model
#
# minitx's `GPT` accepts `inputs_embeds` (B, T, C) instead of token ids, so a soft prompt needs
# no change to the model at all. The model adds position embeddings to all p + n rows and
# returns logits for all of them: (B, p + n, vocab). The virtual positions have no "next token"
# to predict, so the loss uses the **last n** positions only (target -1 means "no loss here").


# %%
def tiny_model():
    torch.manual_seed(0)
    model = GPT(Config(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=32))
    for p in model.parameters():  # prompt tuning: the base model is frozen
        p.requires_grad_(False)
    return model


def with_soft_prompt(model, soft_prompt, idx, targets=None):
    """[soft prompt; token embeddings] -> (logits (B, p + n, vocab), loss or None)."""
    prompt = soft_prompt.unsqueeze(0).expand(idx.size(0), -1, -1)  # (B, p, C)
    inputs_embeds = torch.cat([prompt, model.transformer.wte(idx)], dim=1)  # (B, p + n, C)
    logits, loss, _ = model(inputs_embeds=inputs_embeds, targets=targets)
    return logits, loss


def soft_prompt_in_a_gpt(n_virtual=10, batch=4, seq=20):
    model = tiny_model()
    wte = model.transformer.wte.weight
    idx = torch.randint(0, 64, (batch, seq))
    soft_prompt = nn.Parameter(torch.empty(n_virtual, wte.size(1)).uniform_(-0.5, 0.5))
    logits, _ = with_soft_prompt(model, soft_prompt, idx)
    real = logits[:, n_virtual:]  # the real tokens' logits: the last n positions
    print(f"logits               {list(logits.shape)}  -> real tokens' {list(real.shape)}")

    # Check the slicing: a soft prompt made of the embeddings of real tokens *is* a hard prompt.
    hard_ids = torch.randint(0, 64, (n_virtual,))
    as_soft = with_soft_prompt(model, wte[hard_ids], idx)[0][:, n_virtual:]
    as_hard = model(torch.cat([hard_ids.expand(batch, -1), idx], dim=1))[0][:, n_virtual:]
    hard_diff = (as_soft - as_hard).abs().max().item()
    print(f"soft prompt = embeddings of real ids vs the same ids as a hard prompt: "
          f"max |diff| = {hard_diff:.1e}")

    # One backward pass: only the soft prompt gets a gradient.
    targets = torch.cat([torch.full((batch, n_virtual), -1), idx[:, 1:],
                         torch.full((batch, 1), -1)], dim=1)  # next token, real positions only
    _, loss = with_soft_prompt(model, soft_prompt, idx, targets)
    loss.backward()
    base_grads = [p.grad for p in model.parameters()]
    print(f"loss {loss.item():.3f}; soft prompt grad {list(soft_prompt.grad.shape)}, "
          f"norm {soft_prompt.grad.norm():.3e}; base parameters with a gradient: "
          f"{sum(g is not None for g in base_grads)} of {len(base_grads)}")
    return dict(logits_shape=tuple(logits.shape), real_logits_shape=tuple(real.shape),
                hard_prompt_max_diff=hard_diff, prompt_grad_norm=soft_prompt.grad.norm().item(),
                base_grads_none=all(g is None for g in base_grads))


# %% [markdown]
# ## Training only the prompt
#
# Can 320 numbers steer a frozen model? A toy task: whatever the input, the next token after it
# must be token 7 (think of 7 as the label word of a classifier). Each step draws a fresh batch
# of random inputs, so the prompt cannot memorise them; the loss is taken at the last position
# only. A freshly initialised GPT (weights of std 0.02) is nearly deaf to its context: every
# token mostly sees itself. As a crude stand-in for pretraining, every weight matrix is redrawn
# with std 0.3, so that attention actually mixes positions and a prompt has something to steer.
#
# Lester et al. used a learning rate of 0.3 (with Adafactor) for the prompt against 0.001 for
# model tuning: prompts want *large* steps. All the while every weight of the model stays
# bit-identical.


# %%
def train_prompt(steps=100, n_virtual=10, batch=8, seq=12, label=7):
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:  # every weight matrix, the (tied) embedding table included
                p.normal_(0.0, 0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    soft_prompt = nn.Parameter(torch.empty(n_virtual, 32).uniform_(-0.5, 0.5))
    opt = torch.optim.AdamW([soft_prompt], lr=0.3, weight_decay=0.0)  # the prompt only
    gen = torch.Generator().manual_seed(1)
    test_idx = torch.randint(0, 64, (64, seq), generator=gen)  # held-out inputs

    def p_label(idx):
        with torch.no_grad():
            return with_soft_prompt(model, soft_prompt, idx)[0][:, -1].softmax(-1)[:, label].mean()

    first = p_label(test_idx).item()
    for _ in range(steps):
        idx = torch.randint(0, 64, (batch, seq), generator=gen)
        logits, _ = with_soft_prompt(model, soft_prompt, idx)
        loss = F.cross_entropy(logits[:, -1], torch.full((batch,), label))
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = p_label(test_idx).item()
    unchanged = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    print(f"{steps} steps: mean P(token {label}) on held-out inputs {first:.3f} -> {last:.3f}; "
          f"base weights bit-identical: {unchanged}")
    return dict(p_label_before=first, p_label_after=last, base_unchanged=unchanged)


# %% [markdown]
# What this lesson does *not* show: how good a soft prompt is on a real task. That needs a
# pretrained model (later lessons). Lester et al. found that the gap to full fine-tuning closes
# as models grow, and vanishes around 11B parameters (T5-XXL); at small scale it is large.


# %%
def main(fast: bool = False):
    print("== the article's shapes ==")
    results = article_shapes()
    print("\n== a soft prompt in a tiny GPT ==")
    results.update(soft_prompt_in_a_gpt())
    print("\n== training the prompt alone ==")
    results.update(train_prompt(steps=20 if fast else 100))
    return results


if __name__ == "__main__":
    main("--fast" in sys.argv)
