"""Hypothesis strategies shared by the core tests: shapes, padding masks and a tiny float64 GPT.

Everything is tiny on purpose (B <= 3, H <= 3, T <= 6, P <= 5, head width <= 4; models with at
most 2 layers and width 8) so each property runs its 200 examples in about a second on a laptop
CPU. Random tensors come from a `torch.Generator` seeded by a drawn integer, so a failing example
that hypothesis prints can be replayed exactly.
"""
import functools
from typing import NamedTuple

import torch
from hypothesis import strategies as st

from minitx import GPT, Config

DTYPE = torch.float64
VOCAB = 13
BLOCK = 16  # position table of the tiny models: P (<= 5) + T (<= 6) + a few generated tokens

seeds = st.integers(0, 2**31 - 1)


class Dims(NamedTuple):
    B: int  # batch
    H: int  # heads
    T: int  # current tokens (queries)
    P: int  # keys in front: prefix and/or cache (0 included)
    D: int  # head width


@st.composite
def dims(draw, max_b=3, max_h=3, max_t=6, max_p=5, max_d=4):
    return Dims(B=draw(st.integers(1, max_b)), H=draw(st.integers(1, max_h)),
                T=draw(st.integers(1, max_t)), P=draw(st.integers(0, max_p)),
                D=draw(st.integers(1, max_d)))


def randn(seed, *shape, requires_grad=False):
    """A float64 tensor of standard normals, reproducible from `seed`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DTYPE).requires_grad_(requires_grad)


def randint(seed, high, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g)


@st.composite
def key_masks(draw, B, S):
    """Any (B, S) boolean key mask, True on real keys; rows may even be all False."""
    bits = draw(st.lists(st.booleans(), min_size=B * S, max_size=B * S))
    return torch.tensor(bits, dtype=torch.bool).view(B, S)


def row_lengths(B, T):
    """Number of real tokens in each row: 1..T (every row has at least one real token)."""
    return st.lists(st.integers(1, T), min_size=B, max_size=B)


def pad_mask(lengths, T, side):
    """(B, T) bool mask, True on real tokens, with the padding on the `side` ("left"/"right")."""
    rows = []
    for n in lengths:
        real, pad = [True] * n, [False] * (T - n)
        rows.append(pad + real if side == "left" else real + pad)
    return torch.tensor(rows, dtype=torch.bool).view(len(lengths), T)


# ----------------------------------------------------------------------------- tiny GPT

@st.composite
def gpt_configs(draw, n_layer=None):
    """Config of a tiny GPT: 1-2 layers, 1-3 heads, width n_head * head_size in 4..8.

    Width >= 4 on purpose: LayerNorm over 1 or 2 features erases almost all of its input, and a
    model that ignores its input would let equality tests pass for the wrong reason.
    """
    n_head = draw(st.integers(1, 3))
    head_size = draw(st.integers(-(-4 // n_head), 8 // n_head))
    return Config(vocab_size=VOCAB, block_size=BLOCK,
                  n_layer=draw(st.integers(1, 2)) if n_layer is None else n_layer,
                  n_head=n_head, n_embd=n_head * head_size, dropout=0.0, bias=True)


@torch.no_grad()
def generic_weights_(model):
    """Redraw every weight at O(1) scale, in place. GPT-2's init (std 0.02) makes a tiny model
    nearly input-independent, which would let an equality test pass for the wrong reason;
    generic weights make every token count."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.normal_(0.0, 0.1)
        elif p.dim() == 1:  # LayerNorm gains
            p.normal_(1.0, 0.2)
        else:
            p.normal_(0.0, 0.4)
    return model


@functools.lru_cache(maxsize=256)
def _cached_gpt(key, seed):
    config = Config(*key)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = generic_weights_(GPT(config).to(DTYPE).eval())
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tiny_gpt(config, seed=0):
    """A seeded float64 GPT in eval mode with frozen, generic weights (cached: do not mutate;
    use `written_out` to switch the attention path temporarily)."""
    fields = (config.vocab_size, config.block_size, config.n_layer, config.n_head,
              config.n_embd, config.dropout, config.bias)
    return _cached_gpt(fields, seed)


class written_out:
    """Context manager: run every MultiHeadAttention of `model` through the written-out path."""

    def __init__(self, model):
        self.layers = [m for m in model.modules() if hasattr(m, "use_sdpa")]

    def __enter__(self):
        for m in self.layers:
            m.use_sdpa = False

    def __exit__(self, *exc):
        for m in self.layers:
            m.use_sdpa = True


def head_size(config):
    return config.n_embd // config.n_head


def random_prefix(config, B, P, seed):
    """A random per-layer prefix: one (k, v) pair per layer, each (B, n_head, P, head_size)."""
    shape = (B, config.n_head, P, head_size(config))
    return [(randn(seed + 2 * i, *shape), randn(seed + 2 * i + 1, *shape))
            for i in range(config.n_layer)]


def own_kv(model, tokens):
    """The model's own per-layer keys and values for `tokens` (B, P): a prefix of real tokens."""
    with torch.no_grad():
        return model(tokens)[2]
