"""Lesson 03: a prefix is a pre-filled key/value cache.

Prefix tuning (Li & Liang 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation",
arXiv 2101.00190) keeps the model frozen and gives every attention layer P extra key and value
vectors in front of the real ones:

    head = Attention(Q, [P_K; K], [P_V; V]) = softmax(Q [P_K; K]^T / sqrt(d)) [P_V; V]

(the attention itself is Vaswani et al. 2017, eq. 1). Those P keys and values sit exactly where
a key/value cache of P earlier tokens would sit. This lesson proves that numerically: a prefix
equal to the model's own keys/values of P real tokens gives the same logits as running the model
on those tokens in front of the input (float64, differences at rounding level). Then it shows
the two details that real libraries have got wrong: the causal mask must be aligned to the lower
right, and positions must continue at P.

Run:  python lessons/03_prefix_attention.py [--fast]      (after `pip install -e .`)
"""
# %% [markdown]
# # 03 · Prefix attention
#
# With P keys in front of T current tokens, a layer's scores are a (T, P + T) matrix: one row
# per current token, one column per key (P prefix keys, then the T current ones).

# %%
import sys

import torch
import torch.nn.functional as F

from minitx import GPT, Config, attention, causal_mask

torch.set_printoptions(precision=3, sci_mode=False)


def show_mask(name, m):
    print(f"{name}  (x = may look):")
    for row in m.int().tolist():
        print("   " + " ".join(".x"[x] for x in row))


# %% [markdown]
# ## Attention(Q, [P_K; K], [P_V; V])
#
# One head, T = 3 current tokens, a prefix of P = 2. The prefix is just two more rows of keys
# and values, concatenated in front; queries come from the current tokens only, so the output
# has T rows, not P + T.


# %%
def prefix_by_hand(T=3, P=2, d=4):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, T, d, dtype=torch.float64) for _ in range(3))
    prefix_k, prefix_v = (torch.randn(1, 1, P, d, dtype=torch.float64) for _ in range(2))
    K = torch.cat([prefix_k, k], dim=2)  # (1, 1, P + T, d)
    V = torch.cat([prefix_v, v], dim=2)
    out, w = attention(q, K, V, causal_mask(T, P + T))
    print(f"q {list(q.shape)}, [P_K; K] {list(K.shape)}, scores/weights {list(w.shape)}, "
          f"output {list(out.shape)}")
    print("weights (columns: 2 prefix keys, then 3 current tokens):")
    print(w[0, 0])
    return tuple(out.shape), tuple(w.shape)


# %% [markdown]
# ## A prefix of real tokens = a cache of those tokens
#
# Take a small GPT (float64, so that only rounding separates equal computations). Run it on
# tokens x1..xP and keep every layer's keys and values (`present`); that is the KV cache a
# generator would keep. Hand that cache to the model as `past` while it reads the next T tokens.
# The logits must equal a single run on [x1..xP, input], last T positions.
#
# A freshly initialised GPT (weights of std 0.02) barely mixes positions, which would make every
# difference below tiny; as a stand-in for a trained model every weight matrix is redrawn with
# std 0.3.


# %%
def small_gpt():
    torch.manual_seed(0)
    model = GPT(Config(vocab_size=32, block_size=32, n_layer=2, n_head=2, n_embd=16))
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


def prefix_equals_cache(model, tokens, P):
    with torch.no_grad():
        reference = model(tokens)[0][:, P:]  # one run over [x1..xP, input]: keep the last T
        prefix = model(tokens[:, :P])[2]  # per layer (k, v), each (1, n_head, P, head_size)
        with_prefix = model(tokens[:, P:], past=prefix)[0]
    diff = (with_prefix - reference).abs().max().item()
    print(f"prefix: {len(prefix)} layers of (k, v) {list(prefix[0][0].shape)}")
    print(f"logits with the prefix vs the full run, last T positions: max |diff| = {diff:.1e}")
    return prefix, reference, diff


# %% [markdown]
# ## The causal mask must be aligned to the lower right
#
# Query i (0-based among the T current tokens) is the token at absolute place P + i, so it may
# see every key j <= i + P: all of the prefix and the current tokens up to itself. That is the
# causal triangle pushed to the **lower right** of the (T, P + T) matrix. PyTorch's
# `is_causal=True` (and a plain `tril` of a (T, S) matrix) is aligned to the **upper left**:
# query i sees keys j <= i, i.e. the first current tokens see only part of the prefix and not
# even themselves. The two agree only when P = 0. minitx builds the lower-right mask
# (`causal_mask(T, S)`, or the `causal_lower_right` bias inside `fast_attention`).


# %%
def run_by_hand(model, idx, prefix, mask, first_position):
    """GPT.forward spelled out, with the mask and the first position id chosen by the caller."""
    tr = model.transformer
    positions = torch.arange(first_position, first_position + idx.size(1))
    x = tr.wte(idx) + tr.wpe(positions)  # (B, T, C)
    for block, layer_prefix in zip(tr.h, prefix):
        x = block(x, layer_prefix, mask)[0]
    return model.lm_head(tr.ln_f(x))


def mask_alignment(model, tokens, prefix, reference, P):
    T = tokens.size(1) - P
    lower_right = causal_mask(T, P + T)  # query i sees j <= i + P
    upper_left = torch.ones(T, P + T, dtype=torch.bool).tril()  # is_causal=True: j <= i
    show_mask(f"lower right (T={T}, P+T={P + T}), correct", lower_right)
    show_mask("upper left (is_causal=True), wrong with a prefix", upper_left)

    # PyTorch's own flag really is upper-left aligned:
    q, k, v = (torch.randn(1, 1, n, 4, dtype=torch.float64) for n in (T, P + T, P + T))
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    is_causal_gap = (sdpa - attention(q, k, v, upper_left)[0]).abs().max().item()
    print(f"SDPA is_causal=True vs the upper-left mask: max |diff| = {is_causal_gap:.1e}")

    idx = tokens[:, P:]
    with torch.no_grad():
        right = run_by_hand(model, idx, prefix, lower_right, P)
        wrong = run_by_hand(model, idx, prefix, upper_left, P)
    right_diff = (right - reference).abs().max().item()
    wrong_diff = (wrong - reference).abs().max().item()
    print(f"lower-right mask vs the full run: max |diff| = {right_diff:.1e}")
    print(f"upper-left mask  vs the full run: max |diff| = {wrong_diff:.3f}   <- wrong")
    return dict(is_causal_is_upper_left_diff=is_causal_gap, lower_right_max_diff=right_diff,
                upper_left_max_diff=wrong_diff)


# %% [markdown]
# ## Positions continue at P
#
# In the full run the first input token sits at position P. With a prefix (or a cache) it must
# get position P too, though it is the first token *fed in* this call; minitx's GPT counts the
# keys in front and starts there. Starting again at 0 gives every token the wrong position
# embedding: a measurable, silent error. Training and decoding must use the same offset.


# %%
def positions_continue(model, tokens, prefix, reference, P):
    T = tokens.size(1) - P
    idx, mask = tokens[:, P:], causal_mask(T, P + T)
    with torch.no_grad():
        from_p = run_by_hand(model, idx, prefix, mask, first_position=P)
        from_0 = run_by_hand(model, idx, prefix, mask, first_position=0)
    d_p = (from_p - reference).abs().max().item()
    d_0 = (from_0 - reference).abs().max().item()
    print(f"positions P..P+T-1 vs the full run: max |diff| = {d_p:.1e}")
    print(f"positions 0..T-1   vs the full run: max |diff| = {d_0:.3f}   <- wrong")
    return dict(positions_from_p_max_diff=d_p, positions_from_0_max_diff=d_0)


# %% [markdown]
# ## And decoding simply keeps going
#
# Since the prefix is a cache, generation needs nothing new: start from the prefix as `past`,
# feed one token at a time and pass each call's `present` back in. Every step's logits equal
# the corresponding position of the single full run.


# %%
def decode_from_prefix(model, tokens, prefix, reference, P):
    past, steps = prefix, []
    with torch.no_grad():
        for t in range(P, tokens.size(1)):
            logits, _, past = model(tokens[:, t:t + 1], past=past)
            steps.append(logits)
    diff = (torch.cat(steps, dim=1) - reference).abs().max().item()
    print(f"token-by-token from the prefix cache vs the full run: max |diff| = {diff:.1e}")
    return diff


# %%
def main(fast: bool = False):
    print("== Attention(Q, [P_K; K], [P_V; V]) ==")
    out_shape, weight_shape = prefix_by_hand()
    model, P = small_gpt(), 4
    torch.manual_seed(1)
    tokens = torch.randint(0, 32, (1, P + (4 if fast else 8)))  # x1..xP, then the input
    print("\n== a prefix of real tokens is a cache ==")
    prefix, reference, prefix_diff = prefix_equals_cache(model, tokens, P)
    print("\n== lower-right vs upper-left causal mask ==")
    results = mask_alignment(model, tokens, prefix, reference, P)
    print("\n== positions ==")
    results.update(positions_continue(model, tokens, prefix, reference, P))
    print("\n== decoding ==")
    results.update(prefix_vs_full_max_diff=prefix_diff, out_shape=out_shape,
                   weight_shape=weight_shape,
                   decode_max_diff=decode_from_prefix(model, tokens, prefix, reference, P))
    return results


if __name__ == "__main__":
    main("--fast" in sys.argv)
