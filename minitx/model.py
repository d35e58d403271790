"""A GPT-2-style decoder whose every layer can take keys and values from before its tokens.

Parameter names follow GPT-2 (`transformer.wte`, `transformer.h.N.attn.c_attn`, ...), so a GPT-2
checkpoint maps onto it one to one (see gpt2.py). Two things differ from a plain GPT:

* `past`: a list with one (k, v) pair per layer, shape (B or 1, n_head, P, head_size), sitting in
  front of that layer's keys and values — a learned prefix, a decoding cache, or both. A layer's
  entry may be None (a prefix on some layers only); the others keep their keys right-aligned.
* positions continue after what came before: with P keys in front, real tokens get positions
  P, P+1, ... With an `attention_mask` (padding), a token's position is the number of real keys
  before it, so left padding, per-row prefix lengths and caches all get the same positions a
  single unpadded sequence would.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention, build_mask


@dataclass
class Config:
    vocab_size: int = 512
    block_size: int = 256  # the position table: prefix + cache + tokens must fit in it
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln(x)), [x + cross_attn(ln(x), context)], x + mlp(ln(x))."""

    def __init__(self, config, causal=True, cross=False):
        super().__init__()
        c = config
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = MultiHeadAttention(c.n_embd, c.n_head, c.bias, c.dropout, causal=causal)
        if cross:
            self.ln_cross = nn.LayerNorm(c.n_embd, bias=c.bias)
            self.crossattn = MultiHeadAttention(c.n_embd, c.n_head, c.bias, c.dropout, cross=True)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x, past=None, mask=None, context=None, cross_past=None, cross_mask=None):
        a, kv = self.attn(self.ln_1(x), past, mask)
        x = x + a
        cross_kv = None
        if hasattr(self, "crossattn"):
            c, cross_kv = self.crossattn(self.ln_cross(x), cross_past, cross_mask, context)
            x = x + c
        x = x + self.mlp(self.ln_2(x))
        return x, kv, cross_kv


def init_weights(model, n_layer):
    """GPT-2 initialisation: N(0, 0.02), zero biases, residual projections scaled by 1/√(2·n_layer)."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def past_length(past):
    """Keys in front of the current tokens: the longest of the layers' pasts (0 for none)."""
    return max((p[0].size(2) for p in past or () if p is not None), default=0)


def positions(T, P, attention_mask, device):
    """Position ids of the current tokens: P, P+1, ... or, with a mask, real keys before each one."""
    if attention_mask is None:
        return torch.arange(P, P + T, device=device)  # (T,)
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, -T:]  # (B, T)


def layer_masks(T, attention_mask, past, causal=True):
    """One boolean mask per layer; layers with a shorter past see the right end of the key mask."""
    masks, cache = [], {}
    for layer_past in past:
        S = T + (0 if layer_past is None else layer_past[0].size(2))
        if S not in cache:
            cache[S] = build_mask(T, None if attention_mask is None else attention_mask[:, -S:], causal)
        masks.append(cache[S])
    return masks


def check_inputs(config, B, T, past, attention_mask):
    """Validate past/prefix and mask against the model; return the per-layer past list."""
    n = config.n_layer
    if past is None:
        past = [None] * n
    if len(past) != n:
        raise ValueError(f"past/prefix must have one (k, v) pair per layer: expected {n} layers, "
                         f"got {len(past)}")
    P = past_length(past)
    if P + T > config.block_size:
        raise ValueError(f"prefix/cache length {P} + {T} tokens = {P + T} exceeds the position "
                         f"table (block_size={config.block_size}); shorten the input or the prefix")
    if attention_mask is not None and (attention_mask.dtype != torch.bool
                                       or tuple(attention_mask.shape) != (B, P + T)):
        raise ValueError(f"attention_mask must be bool of shape (B, P + T) = ({B}, {P + T}), "
                         f"covering the {P} keys in front and the {T} tokens; got "
                         f"{tuple(attention_mask.shape)} {attention_mask.dtype}")
    return past


class GPT(nn.Module):
    """Decoder-only Transformer (GPT-2 layout, Radford et al. 2019) with native prefix/cache input."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        init_weights(self, config.n_layer)

    def body(self, idx=None, past=None, attention_mask=None, inputs_embeds=None):
        """Run the blocks; return the final hidden states (B, T, C) and the new per-layer (k, v).

        Give token ids `idx` (B, T) or input embeddings `inputs_embeds` (B, T, C) — the latter
        lets a soft prompt be put in front of the token embeddings.
        """
        if (idx is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of idx (B, T) or inputs_embeds (B, T, n_embd)")
        x = self.transformer.wte(idx) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        if x.dim() != 3 or x.size(-1) != self.config.n_embd:
            raise ValueError(f"inputs_embeds must have shape (B, T, {self.config.n_embd}); "
                             f"got {tuple(x.shape)}")
        B, T, _ = x.shape
        past = check_inputs(self.config, B, T, past, attention_mask)
        pos = positions(T, past_length(past), attention_mask, x.device)
        x = self.transformer.drop(x + self.transformer.wpe(pos))
        present = []
        for block, layer_past, mask in zip(self.transformer.h, past,
                                           layer_masks(T, attention_mask, past)):
            x, kv, _ = block(x, layer_past, mask)
            present.append(kv)
        return self.transformer.ln_f(x), present

    def forward(self, idx=None, targets=None, past=None, attention_mask=None, inputs_embeds=None):
        """Return (logits (B, T, vocab), loss or None, present).

        targets: (B, T) next-token ids, -1 where no loss is wanted. `present` holds every layer's
        full (k, v) — pass it back as `past` to decode the next token incrementally.
        """
        h, present = self.body(idx, past, attention_mask, inputs_embeds)
        return *self.head(h, targets), present

    def head(self, h, targets=None):
        """Final hidden states (B, T, C) -> (logits (B, T, vocab), loss or None)."""
        logits = self.lm_head(h)
        return logits, lm_loss(logits, targets)


def lm_loss(logits, targets):
    """Mean cross-entropy over positions whose target is not -1 (None without targets)."""
    if targets is None:
        return None
    logits = logits.flatten(0, 1).to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits, targets.flatten(), ignore_index=-1)
