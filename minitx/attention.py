"""Attention that natively takes keys and values from *before* the current tokens.

The one idea minitx hangs on: a prefix (prefix tuning, deep prompts) is a pre-filled key/value
cache. Whether the extra keys come from a learned prefix, from tokens decoded earlier, or both,
attention sees P keys before the T current ones, and one mask rule covers every case:

    query i (0-based among the T current tokens) may attend key j  iff  j <= i + P

i.e. the causal mask aligned to the *lower right* of the (T, S = P + T) score matrix, minus keys
marked as padding. PyTorch's `is_causal=True` is aligned to the upper left (query i sees keys
j <= i), which is wrong as soon as P > 0; `causal_lower_right` is the right bias.

Shapes: q (B, nh, T, hs), k and v (B, nh, S, hs); boolean masks are True where a query may look."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right


def attention(q, k, v, mask=None):
    """Scaled dot-product attention written out: softmax(q kᵀ / √d) v (Vaswani et al. 2017, eq. 1).
    Returns (out, weights); masked keys get weight 0, a row with no visible key returns zeros
    (as PyTorch's fused kernel does, so both paths agree on every row)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    if mask is not None:
        # a very negative finite number, not -inf, keeps the softmax and its gradient finite
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


def causal_mask(T, S, device=None):
    """The (T, S) lower-right causal mask: query i sees key j iff j <= i + (S - T)."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(S - T)


def build_mask(T, key_mask=None, causal=True):
    """The causal rule and a key-padding mask `key_mask` (B, S), True on real keys (prefix, cache
    and current tokens alike), as one (B, 1, T, S) mask; None without one (the fast path's bias)."""
    if key_mask is None:
        return None
    if key_mask.dim() != 2 or key_mask.dtype != torch.bool or (causal and key_mask.size(1) < T):
        raise ValueError(f"attention_mask must be a bool tensor of shape (B, S) with S >= T={T} "
                         f"(keys before the current tokens included); got {tuple(key_mask.shape)} "
                         f"{key_mask.dtype}")
    mask = key_mask[:, None, None, :]  # (B, 1, 1, S)
    return mask & causal_mask(T, key_mask.size(1), key_mask.device) if causal else mask  # B,1,T,S


def fast_attention(q, k, v, mask=None, causal=True):
    """The same math through `F.scaled_dot_product_attention` (fused kernels, no weights kept).
    With no mask the causal rule becomes a lower-right bias object: minitx builds no (T, S) mask
    (PyTorch's CPU kernel still makes one inside when there are keys in front; CUDA's need none)."""
    T, S = q.size(-2), k.size(-2)
    if mask is None and causal and T > 1:
        mask = causal_lower_right(T, S)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def dropout(module, x):
    """`module(x)` in training; in eval dropout is the identity: skip even the module call."""
    return module(x) if module.training else x


def append(past, new):
    """[past; new] on the key axis; without autograd, a view into a buffer with keys to spare, so
    decoding writes one key a step, not the whole cache (appending twice to one cache copies)."""
    B, P, T = new.size(0), past.size(2), new.size(2)
    if torch.is_grad_enabled() and (past.requires_grad or new.requires_grad):
        return torch.cat([past.to(new.dtype).expand(B, -1, -1, -1), new], dim=2)
    buf = getattr(past, "buffer", None)  # set on every view returned below
    if buf is None or (buf.filled, len(buf), buf.dtype) != (P, B, new.dtype) or buf.size(2) < P + T:
        buf = new.new_empty(B, new.size(1), P + T + 64, new.size(3))  # a copy every 64 steps
        buf[:, :, :P] = past
    buf[:, :, P:P + T], buf.filled = new, P + T
    out = buf[:, :, :P + T]  # (B, nh, P + T, hs)
    out.buffer = buf
    return out


class MultiHeadAttention(nn.Module):
    """Multi-head attention with GPT-2 parameter names that takes keys/values from before.
    Self-attention: q, k, v from x by `c_attn`. Cross-attention (`cross=True`): q from x by `c_q`,
    k, v from `context` (the encoder output) by `c_kv`; with context=None `past` is the whole
    key/value set (cached encoder keys). Else `past` = (k, v), each (B or 1, nh, P, hs), goes in
    front of the new keys and values. Returns (y, (k, v)), the full keys and values: the next
    step's cache. `use_sdpa=False` routes through `attention` and keeps `self.weights`."""

    def __init__(self, n_embd, n_head, bias=True, dropout=0.0, cross=False, causal=True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        self.n_head, self.n_embd, self.cross, self.causal = n_head, n_embd, cross, causal
        if cross:
            self.c_q = nn.Linear(n_embd, n_embd, bias=bias)
            self.c_kv = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        else:
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.use_sdpa, self.weights = True, None

    def split_heads(self, x):
        return x.unflatten(-1, (self.n_head, -1)).transpose(1, 2)  # (B, T, C) -> (B, nh, T, hs)

    def check_past(self, past, B):
        """Raise a ValueError naming the expected shape if `past` cannot sit before this batch."""
        k, v, hs = *past, self.n_embd // self.n_head
        fits = k.dim() == 4 and k.size(0) in (1, B) and (k.size(1), k.size(3)) == (self.n_head, hs)
        if not fits or k.shape != v.shape:
            raise ValueError(f"prefix/past keys and values must both be (B or 1, n_head, P, "
                             f"head_size) = ({B} or 1, {self.n_head}, P, {hs}); got "
                             f"{tuple(k.shape)} and {tuple(v.shape)}")

    def forward(self, x, past=None, mask=None, context=None):
        B, T, C = x.shape
        if self.cross:
            q = self.split_heads(self.c_q(x))
            if context is not None:
                k, v = map(self.split_heads, self.c_kv(context).split(self.n_embd, dim=2))
        else:
            q, k, v = map(self.split_heads, self.c_attn(x).split(self.n_embd, dim=2))
        if past is not None:
            if getattr(past[0], "buffer", None) is None:  # a cache `append` wrote has passed
                self.check_past(past, B)
            if self.cross and context is None:
                k, v = (t.to(q.dtype).expand(B, -1, -1, -1) for t in past)
            else:
                k, v = append(past[0], k), append(past[1], v)  # (B, nh, P + T, hs)
        elif self.cross and context is None:
            raise ValueError("cross-attention needs `context` (encoder output) or cached `past`")
        if self.use_sdpa:
            y = fast_attention(q, k, v, mask, causal=self.causal and not self.cross)
        else:
            if mask is None and self.causal and not self.cross:
                mask = causal_mask(T, k.size(2), x.device)
            y, self.weights = attention(q, k, v, mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, nh * hs)
        return dropout(self.resid_dropout, self.c_proj(y)), (k, v)
