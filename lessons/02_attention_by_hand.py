"""Lesson 02: scaled dot-product attention, written out, with the masks prefixes will need.

Attention (Vaswani et al. 2017, "Attention Is All You Need", arXiv 1706.03762, eq. 1):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Each query row scores every key, the softmax turns a row of scores into weights that sum to 1,
and the output is the weighted average of the value rows. Masks decide which keys a query may
look at: the *causal* mask (no peeking at later tokens) and the *padding* mask (ignore filler
tokens added to make a batch rectangular). This lesson computes it by hand, checks it against
`minitx.attention` and the fused `minitx.fast_attention`, and prints every weight matrix.

Run:  python lessons/02_attention_by_hand.py [--fast]      (after `pip install -e .`)
"""
# %% [markdown]
# # 02 · Attention by hand
#
# Shapes used throughout minitx: q is (B, heads, T, d) for T queries; k and v are
# (B, heads, S, d) for S keys. Without a prefix S = T. Here B = 1, one head, T = S = 5, d = 4.

# %%
import math
import sys
from pathlib import Path

import torch

from minitx import attention, build_mask, causal_mask, fast_attention

OUT = Path(__file__).resolve().parent / "out"


def show(name, m, digits=2):
    """Print a (rows, cols) matrix as text, one row per line."""
    print(f"{name}:")
    for row in m.tolist():
        print("   " + " ".join(f"{x:{digits + 4}.{digits}f}" for x in row))


# %% [markdown]
# ## softmax(QKᵀ/√d)V, one step at a time
#
# Dividing by √d keeps the scores' spread independent of the width d: a dot product of d
# random unit-variance numbers has variance d, so without the division wide heads would give
# near one-hot softmaxes and vanishing gradients (Vaswani et al., section 3.2.1).


# %%
def by_hand(T=5, d=4):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, T, d, dtype=torch.float64) for _ in range(3))
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (1, 1, T, T)
    weights = scores.softmax(dim=-1)  # each row sums to 1
    out = weights @ v  # (1, 1, T, d)
    show("scores QK^T/sqrt(d)", scores[0, 0])
    show("weights softmax(scores)", weights[0, 0])
    ref, ref_w = attention(q, k, v)
    diff = max((out - ref).abs().max().item(), (weights - ref_w).abs().max().item())
    print(f"by hand vs minitx.attention: max |diff| = {diff:.1e}")
    return q, k, v, diff


# %% [markdown]
# ## Masks
#
# A mask is boolean, True where a query may look. A masked score is replaced by a very negative
# number before the softmax, so its weight comes out as exactly 0.0; the remaining weights of
# the row still sum to 1.
#
# * **causal**: query i sees keys j <= i. (With P keys in front — a prefix or a cache — the rule
#   becomes j <= i + P; lesson 03 is about that.)
# * **left padding** (`[pad pad x1 x2 x3]`, what batched generation uses): pad keys are hidden.
#   Pad *queries* then see no key at all; their row is all zeros (minitx's and PyTorch's
#   convention) and their outputs are simply ignored.
# * **right padding** (`[x1 x2 x3 pad pad]`): under a causal mask real queries never reach the
#   pads anyway; the padding mask matters for the pad queries and for non-causal attention.


# %%
def masks(T=5, n_pad=2):
    real_left = torch.tensor([[False] * n_pad + [True] * (T - n_pad)])  # (B=1, S=T)
    real_right = torch.tensor([[True] * (T - n_pad) + [False] * n_pad])
    return {
        "causal": causal_mask(T, T),  # (T, T)
        "left padding + causal": build_mask(T, real_left)[0, 0],  # (B, 1, T, S) -> (T, S)
        "right padding + causal": build_mask(T, real_right)[0, 0],
        "left padding, no causal": build_mask(T, real_left, causal=False)[0, 0].expand(T, T),
    }


def heatmap_text(w):
    """A text rendering of a weight matrix: darker characters for larger weights."""
    shades = " .:-=+*#%@"
    return "\n".join("   |" + "".join(2 * shades[min(int(x * 10), 9)] for x in row) + "|"
                     for row in w.tolist())


def save_png(all_weights, path):
    """Heatmaps of every weight matrix side by side, if matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(all_weights), figsize=(3 * len(all_weights), 3))
    for ax, (name, w) in zip(axes, all_weights.items()):
        ax.imshow(w.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def masked_attention(q, k, v):
    all_weights = {}
    worst_masked, worst_row = 0.0, 0.0
    print("text heatmaps: ' .:-=+*#%@' for weights in [0, 0.1), [0.1, 0.2), ..., [0.9, 1]")
    for name, mask in masks(q.size(2)).items():
        out, w = attention(q, k, v, mask)
        w = w[0, 0]
        all_weights[name] = w
        print(f"\n-- {name} --")
        show("mask (1 = may look)", mask.double(), digits=0)
        show("weights", w)
        print(heatmap_text(w))
        visible = mask.any(dim=-1)
        worst_masked = max(worst_masked, w[~mask].abs().max().item() if (~mask).any() else 0.0)
        worst_row = max(worst_row, (w[visible].sum(-1) - 1).abs().max().item())
        print(f"row sums {[round(x, 6) for x in w.sum(-1).tolist()]}")
    print(f"\nlargest weight on a masked key: {worst_masked}  (exactly zero)")
    print(f"largest |row sum - 1| over rows with a visible key: {worst_row:.1e}")
    png = save_png(all_weights, OUT / "02_attention_weights.png")
    print(f"heatmaps saved to {png}" if png else "(matplotlib not installed: text heatmaps only)")
    return dict(masked_weight_max=worst_masked, row_sum_err=worst_row, png=png)


# %% [markdown]
# ## The fused kernel computes the same thing
#
# `fast_attention` calls PyTorch's `F.scaled_dot_product_attention`, which fuses the three
# steps and never stores the weights (flash / memory-efficient kernels on GPU). With no mask
# and `causal=True` it is given a lower-right causal *bias object* instead of a (T, S) tensor.
# Same numbers, up to float64 rounding:


# %%
def fused_equals_written(q, k, v):
    T = q.size(2)
    diffs = {"no mask": (fast_attention(q, k, v, causal=False), attention(q, k, v)[0]),
             "causal (bias object)": (fast_attention(q, k, v),
                                      attention(q, k, v, causal_mask(T, T))[0])}
    for name, mask in masks(T).items():
        diffs[name] = (fast_attention(q, k, v, mask), attention(q, k, v, mask)[0])
    worst = 0.0
    for name, (fast, written) in diffs.items():
        d = (fast - written).abs().max().item()
        worst = max(worst, d)
        print(f"fast_attention vs attention, {name:24s} max |diff| = {d:.1e}")
    return worst


# %%
def main(fast: bool = False):
    print("== softmax(QK^T/sqrt(d))V by hand ==")
    q, k, v, hand_diff = by_hand()
    print("\n== masks ==")
    results = masked_attention(q, k, v)
    print("\n== fused vs written out ==")
    results.update(by_hand_max_diff=hand_diff,
                   fast_vs_written_max_diff=fused_equals_written(q, k, v))
    return results


if __name__ == "__main__":
    main("--fast" in sys.argv)
