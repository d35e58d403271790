# %% [markdown]
# # 03 · Prefix attention
#
# Prefix tuning (Li & Liang 2021, arXiv 2101.00190, §4) keeps the model frozen and gives every
# attention layer P extra key and value vectors in front of the real ones:
#
#     head = Attention(Q, [P_K; K], [P_V; V]) = softmax(Q [P_K; K]^T / sqrt(d)) [P_V; V]
#
# (the attention itself is Vaswani et al. 2017, eq. 1; lesson 02). Those P keys and values sit
# exactly where a key/value cache of P earlier tokens would sit.
#
# **What you will learn**
# - the shapes: with P keys in front of T current tokens a layer's scores are (T, P + T);
# - that a prefix equal to the model's own keys/values of P real tokens gives the same logits as
#   running the model on those tokens in front of the input (float64, rounding-level
#   differences) — a prefix *is* a pre-filled cache;
# - the two details real libraries have got wrong: the causal mask must be aligned to the lower
#   right, and positions must continue at P;
# - that decoding from a prefix needs nothing new.
#
# Run: `python lessons/03_prefix_attention.py [--fast | --full]` (after `pip install -e .`).
# Papers: `lessons/REFERENCES.md`.

# %%
import torch
import torch.nn.functional as F

from minitx import GPT, Config, attention, causal_mask
from common import SEEDS, lesson_mode, setup, table, takeaway, verdict

MODE = lesson_mode()
SETTINGS = {"fast": dict(T=4), "default": dict(T=8), "full": dict(T=16)}
S = SETTINGS[MODE]  # T: current tokens behind the prefix in the model checks
P = 4  # prefix length in the model checks
setup(0)


def key_labels(P, T):
    """Column labels of a (T, P + T) score matrix: prefix keys p0.., then current tokens t0.."""
    return [f"p{j}" for j in range(P)] + [f"t{j}" for j in range(T)]


def show_matrix(title, matrix, P, fmt):
    """Print a (T, P + T) matrix with query rows t0.. and key columns p0.. t0.."""
    T = matrix.shape[0]
    cells = [[fmt(x) for x in row] for row in matrix.tolist()]
    width = max(3, *(len(c) for row in cells for c in row))
    print(f"\n{title}")
    print("     " + " ".join(k.rjust(width) for k in key_labels(P, T)))
    for i, row in enumerate(cells):
        print(f"  t{i:<2d}" + " ".join(c.rjust(width) for c in row))


def small_gpt(seed):
    """A small float64 GPT; weight matrices redrawn at std 0.3 (see below); eval mode."""
    torch.manual_seed(seed)
    model = GPT(Config(vocab_size=32, block_size=32, n_layer=2, n_head=2, n_embd=16))
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    return model


def run_by_hand(model, idx, prefix, mask, first_position):
    """GPT.forward spelled out, with the mask and the first position id chosen by the caller."""
    tr = model.transformer
    positions = torch.arange(first_position, first_position + idx.size(1))
    x = tr.wte(idx) + tr.wpe(positions)  # (B, T, C)
    for block, layer_prefix in zip(tr.h, prefix):
        x = block(x, layer_prefix, mask)[0]
    return model.lm_head(tr.ln_f(x))  # (B, T, vocab)


# %% [markdown]
# ## Attention(Q, [P_K; K], [P_V; V])
#
# One head, T = 3 current tokens, a prefix of P = 2. The prefix is just two more rows of keys and
# values, concatenated in front; queries come from the current tokens only, so the output has T
# rows, not P + T.

# %%
torch.manual_seed(0)
q, k, v = (torch.randn(1, 1, 3, 4, dtype=torch.float64) for _ in range(3))  # (B, heads, T, d)
prefix_k, prefix_v = (torch.randn(1, 1, 2, 4, dtype=torch.float64) for _ in range(2))
keys = torch.cat([prefix_k, k], dim=2)  # (1, 1, P + T, d)
values = torch.cat([prefix_v, v], dim=2)
out, weights = attention(q, keys, values, causal_mask(3, 5))
shapes = {"q": q, "[P_K; K]": keys, "weights": weights, "output": out}
print("shapes: " + ", ".join(f"{name} {tuple(t.shape)}" for name, t in shapes.items()))
show_matrix("weights: query rows t0-t2; key columns p0-p1 (prefix), then t0-t2",
            weights[0, 0], 2, "{:.3f}".format)

# %% [markdown]
# **What the output means.** Every query sees both prefix keys; among the current tokens it sees
# itself and those before it (the zeros are the causal mask). Each row still sums to 1: the
# prefix takes a share of every query's attention.
#
# ## A prefix of real tokens = a cache of those tokens
#
# Take a small GPT (float64, so that only rounding separates equal computations). Run it on tokens
# x1..xP and keep every layer's keys and values (`present`): that is the KV cache a generator
# would keep. Hand that cache to the model as `past` while it reads the next T tokens. The logits
# must equal one run over [x1..xP, input], last T positions.
#
# A freshly initialised GPT (weights of std 0.02) barely mixes positions, which would make every
# difference below tiny; as a stand-in for a trained model every weight matrix is redrawn with
# std 0.3. Each seed of this mode draws a new model and new tokens.

# %%
models, token_rows, prefixes, references, cache_diff = {}, {}, {}, {}, {}
for seed in SEEDS[MODE]:
    model = small_gpt(seed)
    tokens = torch.randint(0, 32, (1, P + S["T"]))  # x1..xP, then the input
    with torch.no_grad():
        reference = model(tokens)[0][:, P:]  # one run over [x1..xP, input]: keep the last T
        prefix = model(tokens[:, :P])[2]  # per layer (k, v), each (1, n_head, P, head_size)
        with_prefix = model(tokens[:, P:], past=prefix)[0]
    models[seed], token_rows[seed] = model, tokens
    prefixes[seed], references[seed] = prefix, reference
    cache_diff[seed] = (with_prefix - reference).abs().max().item()
print(f"\nprefix: {len(prefix)} layers of (k, v), each {tuple(prefix[0][0].shape)} "
      f"= (batch, heads, P, head size)")
print(f"logits with the prefix vs the full run (last T = {S['T']} positions), max |diff|:")
print("  " + ", ".join(f"seed {seed}: {d:.1e}" for seed, d in cache_diff.items()))

# %% [markdown]
# **What the output means.** Differences at float64 rounding level: the model cannot tell a
# prefix of its own keys and values from the tokens that made them. Prefix tuning trains such
# keys and values directly, with no tokens behind them — a cache the model never computed.
#
# ## The causal mask must be aligned to the lower right
#
# Query i (0-based among the T current tokens) is the token at absolute place P + i, so it may
# see every key j <= i + P: all of the prefix and the current tokens up to itself. That is the
# causal triangle pushed to the **lower right** of the (T, P + T) matrix. PyTorch's
# `is_causal=True` (and a plain `tril` of a (T, S) matrix) is aligned to the **upper left**:
# query i sees keys j <= i, so the first current tokens see only part of the prefix and not even
# themselves. The two agree only when P = 0. minitx builds the lower-right mask (`causal_mask(T,
# S)`, or the `causal_lower_right` bias inside `fast_attention`).
#
# Below, the model runs spelled out (`run_by_hand`) with each mask; positions are right (P..).
# The verdict compares minus the largest logit error against the full run, per seed.

# %%
T = S["T"]
lower_right = causal_mask(T, P + T)  # query i sees j <= i + P
upper_left = torch.ones(T, P + T, dtype=torch.bool).tril()  # is_causal=True: j <= i
print("\n'#': the query may look at the key; '.': it may not")
show_matrix(f"lower right, correct (T = {T} queries, P + T = {P + T} keys)", lower_right, P,
            lambda m: "#" if m else ".")
show_matrix("upper left (is_causal=True), wrong with a prefix", upper_left, P,
            lambda m: "#" if m else ".")

# PyTorch's own flag really is upper-left aligned:
qs, ks, vs = (torch.randn(1, 1, n, 4, dtype=torch.float64) for n in (T, P + T, P + T))
sdpa = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)
is_causal_gap = (sdpa - attention(qs, ks, vs, upper_left)[0]).abs().max().item()
print(f"\nSDPA with is_causal=True vs attention with the upper-left mask: max |diff| = "
      f"{is_causal_gap:.1e}")

mask_errors = {}
for seed in SEEDS[MODE]:
    idx = token_rows[seed][:, P:]
    with torch.no_grad():
        right = run_by_hand(models[seed], idx, prefixes[seed], lower_right, P)
        wrong = run_by_hand(models[seed], idx, prefixes[seed], upper_left, P)
    mask_errors[seed] = [(x - references[seed]).abs().max().item() for x in (right, wrong)]
table([{"seed": s, "lower right": e[0], "upper left": e[1]} for s, e in mask_errors.items()],
      title="largest |logit error| against the full run", floatfmt="{:.1e}")
print()
mask_verdict = verdict("lower-right > upper-left", [-e[0] for e in mask_errors.values()],
                       [-e[1] for e in mask_errors.values()])

# %% [markdown]
# **What the output means.** With the lower-right mask the spelled-out model matches the full run
# to rounding; with the upper-left one the logits are off by many orders of magnitude more — a
# silent error: nothing crashes, the model just reads a truncated context.
#
# ## Positions continue at P
#
# In the full run the first input token sits at position P. With a prefix (or a cache) it must
# get position P too, though it is the first token *fed in* this call; minitx's GPT counts the
# keys in front and starts there. Starting again at 0 gives every token the wrong position
# embedding: another silent error. Training and decoding must use the same offset.

# %%
position_errors = {}
for seed in SEEDS[MODE]:
    idx = token_rows[seed][:, P:]
    with torch.no_grad():
        from_p = run_by_hand(models[seed], idx, prefixes[seed], lower_right, first_position=P)
        from_0 = run_by_hand(models[seed], idx, prefixes[seed], lower_right, first_position=0)
    position_errors[seed] = [(x - references[seed]).abs().max().item() for x in (from_p, from_0)]
table([{"seed": s, "positions from P": e[0], "positions from 0": e[1]}
       for s, e in position_errors.items()],
      title="largest |logit error| against the full run", floatfmt="{:.1e}")
print()
position_verdict = verdict("positions from P > from 0", [-e[0] for e in position_errors.values()],
                           [-e[1] for e in position_errors.values()])

# %% [markdown]
# ## And decoding simply keeps going
#
# Since the prefix is a cache, generation needs nothing new: start from the prefix as `past`,
# feed one token at a time and pass each call's `present` back in. Every step's logits must equal
# the corresponding position of the single full run.

# %%
decode_diff = {}
for seed in SEEDS[MODE]:
    past, steps = prefixes[seed], []
    with torch.no_grad():
        for t in range(P, P + T):
            logits, _, past = models[seed](token_rows[seed][:, t:t + 1], past=past)
            steps.append(logits)  # (1, 1, vocab)
    decode_diff[seed] = (torch.cat(steps, dim=1) - references[seed]).abs().max().item()
print("token by token from the prefix cache vs the full run, max |diff|:")
print("  " + ", ".join(f"seed {seed}: {d:.1e}" for seed, d in decode_diff.items()))

# %% [markdown]
# **What the output means.** The same numbers, step by step: a prefix is the first entry of the
# cache, and the mask and position rules above are exactly what let decoding continue from it.

# %%
wrong_mask = [e[1] for e in mask_errors.values()]
wrong_positions = [e[1] for e in position_errors.values()]
takeaway(
    f"a prefix of P = {P} real tokens' keys/values = those tokens in front: max |diff| "
    f"{max(cache_diff.values()):.1e} ({len(cache_diff)} seeds)",
    f"lower-right mask: error {max(e[0] for e in mask_errors.values()):.1e}; upper-left "
    f"(is_causal=True): {min(wrong_mask):.2f} to {max(wrong_mask):.2f}",
    f"\"lower-right > upper-left\": {mask_verdict.word}",
    f"positions from P: error {max(e[0] for e in position_errors.values()):.1e}; from 0: "
    f"{min(wrong_positions):.2f} to {max(wrong_positions):.2f}",
    f"\"positions from P > from 0\": {position_verdict.word}",
    f"decoding token by token from the prefix = the full run (max |diff| "
    f"{max(decode_diff.values()):.1e})")

# %% [markdown]
# ## Exercises
#
# 1. **Set P = 0.** Give the model an empty prefix: per layer, keys and values of shape
#    (1, heads, 0, head size). *Observe:* the lower-right and upper-left masks coincide,
#    positions from P are positions from 0, and the logits equal the model's without a prefix.
#    *Hint:* `[(k[:, :, :0], v[:, :, :0]) for k, v in prefix]`; compare with `model(tokens)`.
# 2. **One prefix, many inputs.** The prefix has batch size 1. Feed a batch of three different
#    inputs with it. *Observe:* each row's logits equal that row run alone with the prefix — the
#    prefix is broadcast over the batch, not copied per row, which is what lets one frozen model
#    serve a task's prefix to many requests. *Hint:* `model(batch, past=prefix)`.
# 3. **A prefix need not come from tokens.** Replace the prefix by random tensors of the same
#    shapes (where prefix tuning starts from). *Observe:* no hard prompt equals it any more, but
#    decoding token by token from it still equals one call over the whole input with it: the
#    cache does not care where its keys came from. *Hint:*
#    `[(torch.randn_like(k), torch.randn_like(v)) for k, v in prefix]`.
# 4. **Prefix plus left padding.** Pad the input on the left with two pad tokens and pass
#    `attention_mask` (B, P + T) that is False on the pads, True on the prefix and the real
#    tokens. *Observe:* the real tokens' logits equal the unpadded run's: minitx skips the pads
#    when it counts positions. What goes wrong if positions counted the pads? *Hint:*
#    `model(padded, past=prefix, attention_mask=mask)[0][:, 2:]`.
