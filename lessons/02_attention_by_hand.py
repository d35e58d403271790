# %% [markdown]
# # 02 · Attention by hand
#
# Scaled dot-product attention (Vaswani et al. 2017, arXiv 1706.03762, eq. 1 in §3.2.1):
#
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V
#
# Each query row scores every key, the softmax turns a row of scores into weights that sum to 1,
# and the output is the weighted average of the value rows. Masks decide which keys a query may
# look at: the *causal* mask (no peeking at later tokens) and the *padding* mask (ignore filler
# tokens added to make a batch rectangular).
#
# **What you will learn**
# - to compute attention step by step and check it against `minitx.attention`;
# - what the causal and padding masks do to the weights: masked keys get *exactly* zero, and a
#   query with no visible key gets a row of zeros;
# - that the fused kernel `minitx.fast_attention` (PyTorch's `scaled_dot_product_attention`)
#   computes the same numbers without ever storing the weights.
#
# Shapes used throughout minitx: q is (B, heads, T, d) for T queries; k and v are (B, heads, S, d)
# for S keys. Without a prefix S = T. Here B = 1, one head, T = S = 5, d = 4, in float64.
#
# Run: `python lessons/02_attention_by_hand.py [--fast | --full]` (after `pip install -e .`).
# Papers: `lessons/REFERENCES.md`.

# %%
import math

import torch

from minitx import attention, build_mask, causal_mask, fast_attention
from common import OUT, lesson_mode, setup, takeaway

MODE = lesson_mode()
SETTINGS = {"fast": dict(checks=20), "default": dict(checks=300), "full": dict(checks=3000)}
S = SETTINGS[MODE]  # checks: random shapes on which the fused kernel is compared with the math
setup(0)

SHADES = " .:+#@"  # exactly 0, then (0, 0.2), [0.2, 0.4), [0.4, 0.6), [0.6, 0.8), [0.8, 1]


def shade(w):
    """Two characters for one attention weight (blank only when it is exactly zero)."""
    return 2 * (" " if w == 0 else SHADES[1 + min(int(w * 5), 4)])


def grid(matrix, fmt, width):
    """A header 'k0 k1 ...' and one string per row, every entry `width` characters wide."""
    header = "".join(f"k{j}".ljust(width) for j in range(matrix.shape[1]))
    return header, ["".join(fmt(x).ljust(width) for x in row) for row in matrix.tolist()]


def show(title, blocks):
    """Print named (header, rows) blocks side by side, one line per query q0, q1, ..."""
    print(f"\n{title}")
    widths = {name: max(len(name), len(header), *map(len, rows))
              for name, (header, rows) in blocks.items()}
    print("     " + "  ".join(name.ljust(widths[name]) for name in blocks).rstrip())
    print("     " + "  ".join(h.ljust(widths[n]) for n, (h, _) in blocks.items()).rstrip())
    for i in range(len(next(iter(blocks.values()))[1])):
        print(f"q{i:<4d}" + "  ".join(rows[i].ljust(widths[n])
                                      for n, (_, rows) in blocks.items()).rstrip())


def weight_blocks(weights, mask=None):
    """The blocks every weight matrix is shown with: mask, weights, row sum, shade."""
    blocks = {} if mask is None else {"may look": grid(mask, lambda m: ".x"[m], 3)}
    blocks["weights"] = grid(weights, "{:.2f}".format, 6)
    blocks["sum"] = ("", [f"{s:.2f}" for s in weights.sum(-1).tolist()])
    blocks["shade"] = grid(weights, shade, 2)
    return blocks


print("shade: ' ' exactly 0, '.' below 0.2, ':' 0.2-0.4, '+' 0.4-0.6, '#' 0.6-0.8, '@' 0.8-1")
print("may look: 'x' the query may attend the key, '.' it may not; sum: the row's total weight")

# %% [markdown]
# ## softmax(QKᵀ/√d)V, one step at a time
#
# Dividing by √d keeps the scores' spread independent of the width d: a dot product of d random
# unit-variance numbers has variance d, so without the division wide heads would give near
# one-hot softmaxes and vanishing gradients (Vaswani et al., §3.2.1; exercise 1 measures it).

# %%
T, D = 5, 4
torch.manual_seed(0)
q, k, v = (torch.randn(1, 1, T, D, dtype=torch.float64) for _ in range(3))  # (B, heads, T, d)
scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (1, 1, T, T): one row per query
weights = scores.softmax(dim=-1)  # each row sums to 1
out = weights @ v  # (1, 1, T, d): per query, a weighted average of the value rows
show("no mask: scores QK^T/sqrt(d), then the weights softmax(scores)",
     {"scores": grid(scores[0, 0], "{:+.2f}".format, 6), **weight_blocks(weights[0, 0])})
reference, reference_weights = attention(q, k, v)
hand_diff = max((out - reference).abs().max().item(),
                (weights - reference_weights).abs().max().item())
print(f"\nby hand vs minitx.attention (output and weights): max |diff| = {hand_diff:.1e}")

# %% [markdown]
# **What the output means.** Each weight row is a probability distribution over the keys; the
# larger a query's score for a key, the more of that key's value row goes into its output.
# `minitx.attention` is the same three lines, so the difference is zero or float rounding.
#
# ## Masks
#
# A mask is boolean, True where a query may look. A masked score is replaced by a very negative
# number before the softmax, so its weight comes out as exactly 0.0; the remaining weights of the
# row still sum to 1.
#
# * **causal**: query i sees keys j <= i. (With P keys in front — a prefix or a cache — the rule
#   becomes j <= i + P; lesson 03 is about that, exercise 2 previews it.)
# * **left padding** (`[pad pad x1 x2 x3]`, what batched generation uses): pad keys are hidden.
#   Pad *queries* then see no key at all; their row is all zeros (minitx's and PyTorch's
#   convention) and their outputs are simply ignored.
# * **right padding** (`[x1 x2 x3 pad pad]`): under a causal mask real queries never reach the
#   pads anyway; the padding mask matters for the pad queries and for non-causal attention.

# %%
N_PAD = 2
real_left = torch.tensor([[False] * N_PAD + [True] * (T - N_PAD)])  # (B=1, S=T): True = real
real_right = torch.tensor([[True] * (T - N_PAD) + [False] * N_PAD])
MASKS = {  # each (T, S)
    "causal": causal_mask(T, T),
    "left padding + causal": build_mask(T, real_left)[0, 0],  # (B, 1, T, S) -> (T, S)
    "right padding + causal": build_mask(T, real_right)[0, 0],
    "left padding, not causal": build_mask(T, real_left, causal=False)[0, 0].expand(T, T),
}
masked_weights = {}
for name, mask in MASKS.items():
    masked_weights[name] = attention(q, k, v, mask)[1][0, 0]  # (T, S)
    pads = " ".join(f"k{j}" for j in range(T) if not mask[:, j].any())  # keys no query sees
    show(name + (f" (pad keys {pads}: hidden from every query)" if pads else ""),
         weight_blocks(masked_weights[name], mask))

masked_weight_max = max(w[~MASKS[n]].abs().max().item() for n, w in masked_weights.items())
row_sum_err = max((w.sum(-1)[MASKS[n].any(-1)] - 1).abs().max().item()
                  for n, w in masked_weights.items())
empty_rows = sum(int((~MASKS[n]).all(-1).sum()) for n in MASKS)
empty_rows_zero = all((w[~MASKS[n].any(-1)] == 0).all() for n, w in masked_weights.items())
print(f"\nlargest weight on a masked key: {masked_weight_max:.1f} (over all {len(MASKS)} masks)")
print(f"largest |row sum - 1| over rows with a visible key: {row_sum_err:.1e}")
print(f"rows that see no key at all: {empty_rows}, all exactly zero: {empty_rows_zero}")


def save_png(all_weights, path):
    """Heatmaps of the weight matrices side by side with one colorbar, if matplotlib is here."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(all_weights), figsize=(3.2 * len(all_weights), 3.4))
    for ax, (name, w) in zip(axes, all_weights.items()):
        image = ax.imshow(w.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    fig.suptitle(f"attention weights by mask (T = {T}, d = {D}, random q, k, v)")
    fig.colorbar(image, ax=list(axes), label="attention weight")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


png = save_png(masked_weights, OUT / "02_attention_weights.png")
print(f"heatmaps saved to {png}" if png else "(matplotlib not installed: text heatmaps only)")

# %% [markdown]
# **What the output means.** Every masked position has weight exactly 0.0 — not small: zero, so
# a padded key cannot leak into an answer however large its score. Rows with a visible key still
# sum to 1, because the softmax renormalises over what is left. The pad queries of left padding
# see nothing; their rows are zeros rather than `nan`, so they do no harm to the next layer.
#
# ## The fused kernel computes the same thing
#
# `fast_attention` calls PyTorch's `F.scaled_dot_product_attention`, which fuses the three steps
# and never stores the weights (flash / memory-efficient kernels on GPU). With no mask and
# `causal=True` it is given a lower-right causal *bias object* instead of a (T, S) tensor. The
# same numbers, up to float64 rounding — here on the masks above, then on random shapes: batch,
# heads, width, T queries, P keys in front of them and random padding.

# %%
print()
cases = {"no mask, not causal": (fast_attention(q, k, v, causal=False), attention(q, k, v)[0]),
         "causal as a bias object": (fast_attention(q, k, v),
                                     attention(q, k, v, causal_mask(T, T))[0])}
cases.update({name: (fast_attention(q, k, v, mask), attention(q, k, v, mask)[0])
              for name, mask in MASKS.items()})
fused_diffs = {name: (fast - written).abs().max().item() for name, (fast, written) in cases.items()}
for name, d in fused_diffs.items():
    print(f"fast_attention vs attention, {name:26s} max |diff| = {d:.1e}")

gen = torch.Generator().manual_seed(0)
random_diff = 0.0
for _ in range(S["checks"]):
    B, H, T_, P, d = (int(torch.randint(lo, hi, (), generator=gen))
                      for lo, hi in ((1, 4), (1, 4), (1, 9), (0, 9), (1, 17)))
    qr = torch.randn(B, H, T_, d, dtype=torch.float64, generator=gen)
    kr, vr = (torch.randn(B, H, P + T_, d, dtype=torch.float64, generator=gen) for _ in range(2))
    key_mask = torch.rand(B, P + T_, generator=gen) > 0.3  # (B, S): True on real keys
    for mask in (None, build_mask(T_, key_mask)):
        written = attention(qr, kr, vr, causal_mask(T_, P + T_) if mask is None else mask)[0]
        diff = (fast_attention(qr, kr, vr, mask) - written).abs().max().item()
        random_diff = max(random_diff, diff)
fast_vs_written = max(random_diff, *fused_diffs.values())
print(f"fast_attention vs attention on {S['checks']} random shapes, with and without padding: "
      f"max |diff| = {random_diff:.1e}")

# %% [markdown]
# **What the output means.** The fused kernel and the written-out math agree to float64 rounding
# on every case, including keys in front of the queries (the lower-right causal rule) and rows
# with no visible key. minitx trains and generates with the fused path and uses the written-out
# one only where a lesson wants to look at the weights.

# %%
takeaway(
    f"softmax(QK^T/sqrt(d))V by hand = minitx.attention (max |diff| {hand_diff:.1e})",
    f"masked keys get weight exactly {masked_weight_max:.1f}; rows with a visible key sum to 1 "
    f"(max error {row_sum_err:.1e})",
    f"the {empty_rows} pad queries that see no key get rows of "
    + ("zeros, not nan" if empty_rows_zero else "NON-ZERO weights (a bug)"),
    f"fast_attention = attention on {len(cases)} masks and {S['checks']} random shapes "
    f"(max |diff| {fast_vs_written:.1e})")

# %% [markdown]
# ## Exercises
#
# 1. **Why divide by √d?** Draw q and k with d = 64 and compute the weights with and without the
#    division by √d. *Observe:* without it every row is nearly one-hot (its largest weight close
#    to 1); with it the weights stay spread, whatever d is. *Hint:* compare
#    `w.max(-1).values.mean()` for both, and the scores' standard deviation (about √d unscaled).
# 2. **A prefix with the wrong mask.** Take T = 3 queries and S = 5 keys (P = 2 keys in front).
#    Build the mask `is_causal=True` means, `torch.ones(T, S, dtype=torch.bool).tril()`, and
#    compare it with `causal_mask(T, S)`. Which queries see the wrong keys, and which keys do they
#    miss? *Observe:* every query misses exactly P keys — the last P it should see, its own among
#    them — and the two masks agree only when P = 0. *Hint:* `causal_mask(T, S) & ~upper_left`.
# 3. **Why a finite minimum?** Fill the masked scores with `-inf` instead of
#    `torch.finfo(dtype).min` and take the softmax of a pad query's row (every key masked).
#    *Observe:* `nan` (0 / 0), which would spread through every later layer; `minitx.attention`
#    returns a row of zeros with finite gradients. *Hint:*
#    `torch.full((5,), float("-inf")).softmax(0)`.
# 4. **Open: a sliding window.** Build a mask in which query i sees only its own key and the two
#    before it (local attention), check that `fast_attention` and `attention` agree on it, and
#    decide what the window should mean when P keys sit in front. *Hint:* with
#    `ones = torch.ones(T, S, dtype=torch.bool)` the window is
#    `ones.tril(S - T) & ones.triu(S - T - 2)`.
