"""A GPT-2-style decoder whose every layer can take keys and values from before its tokens.

Parameter names follow GPT-2 (`transformer.wte`, `transformer.h.N.attn.c_attn`, ...), so a GPT-2
checkpoint maps onto it one to one (see gpt2.py). Two things differ from a plain GPT:

* `past`: a list with one (k, v) pair per layer, shape (B or 1, n_head, P, head_size), sitting in
  front of that layer's keys and values — a learned prefix, a decoding cache, or both. A layer's
  entry may be None (a prefix on some layers only); the others keep their keys right-aligned.
* positions continue after what came before: with P keys in front, real tokens get positions
  P, P+1, ... With an `attention_mask` (padding), a token's position is the number of real keys
  before it, so left padding, per-row prefix lengths and caches all get the same positions a
  single unpadded sequence would."""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from .attention import MultiHeadAttention, build_mask, dropout


@dataclass
class Config:
    vocab_size: int = 512
    block_size: int = 256  # the position table: prefix + cache + tokens must fit in it
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    checkpoint: bool = False  # recompute each block in backward (run_block)
    loss_chunk: int = 0  # > 0: the loss this many positions at a time (lm_head_loss)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return dropout(self.dropout, self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm block: x + attn(ln(x)), [x + cross_attn(ln(x), context)], x + mlp(ln(x))."""

    def __init__(self, config, causal=True, cross=False):
        super().__init__()
        c = config
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = MultiHeadAttention(c.n_embd, c.n_head, c.bias, c.dropout, causal=causal)
        self.cross = cross
        if cross:
            self.ln_cross = nn.LayerNorm(c.n_embd, bias=c.bias)
            self.crossattn = MultiHeadAttention(c.n_embd, c.n_head, c.bias, c.dropout, cross=True)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x, past=None, mask=None, context=None, cross_past=None, cross_mask=None):
        a, kv = self.attn(self.ln_1(x), past, mask)
        x = x + a
        cross_kv = None
        if self.cross:
            c, cross_kv = self.crossattn(self.ln_cross(x), cross_past, cross_mask, context)
            x = x + c
        x = x + self.mlp(self.ln_2(x))
        return x, kv, cross_kv


def init_weights(model, n_layer):
    """GPT-2's init: N(0, 0.02), zero biases, residual projections scaled by 1/√(2·n_layer)."""
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
            nn.init.normal_(p, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def past_length(past):
    """Keys in front of the current tokens: the longest of the layers' pasts (0 for none)."""
    return max((p[0].size(2) for p in past or () if p is not None), default=0)


def add_positions(x, wpe, P, attention_mask):
    """x (B, T, C) + embeddings of positions P, P+1, ... or, with a mask, of the number of real
    keys before each token. Padding is zeroed first: inert even where its input is not finite."""
    T = x.size(1)
    if attention_mask is None:
        return x + wpe.weight[P:P + T]  # a slice of the table: no index tensor to build
    pos = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, -T:]  # (B, T)
    return x.masked_fill(~attention_mask[:, -T:, None], 0.0) + wpe(pos)


def layer_masks(T, attention_mask, past, causal=True):
    """One boolean mask per layer; layers with a shorter past see the right end of the key mask."""
    keys = [T + (0 if layer_past is None else layer_past[0].size(2)) for layer_past in past]
    masks = {} if attention_mask is None else {S: build_mask(T, attention_mask[:, -S:], causal)
                                               for S in set(keys)}
    return [masks.get(S) for S in keys]


def embed(wte, idx, inputs_embeds, past, name="idx"):
    """Token embeddings of `idx` (B, T), or `inputs_embeds` (B, T, C), checked. Reading the ids'
    min and max back is a sync on CUDA, so a one-token step after a cache or prefix skips it:
    that is generate's decoding step, whose token is the model's own argmax."""
    if (idx is None) == (inputs_embeds is None):
        raise ValueError(f"give exactly one of {name} (B, T) or inputs_embeds (B, T, n_embd)")
    if idx is not None:
        ids = getattr(idx, "dtype", None) in (torch.long, torch.int) and idx.dim() == 2
        if not ids or idx.size(1) == 0:
            raise TypeError(f"{name} must be (B, T) token ids, torch.long, T >= 1 (a row: x[None]);"
                            f" got {getattr(idx, 'dtype', type(idx))} {getattr(idx, 'shape', '')}")
        low, high = idx.aminmax() if past is None or idx.size(1) > 1 else (0, 0)
        if low < 0 or high >= wte.num_embeddings:
            raise ValueError(f"{name} holds token id {int(high if low >= 0 else low)}, outside [0, "
                             f"vocab_size={wte.num_embeddings}): encode with the model's tokenizer")
    x = wte(idx) if inputs_embeds is None else inputs_embeds  # (B, T, C)
    if (x.dim(), x.size(-1), x.dtype) != (3, wte.embedding_dim, wte.weight.dtype) or not x.size(1):
        raise ValueError(f"inputs_embeds must be (B, T, {wte.embedding_dim}) {wte.weight.dtype}, "
                         f"T >= 1, like the model's embeddings; got {tuple(x.shape)} {x.dtype}")
    return x


def check_past(config, T, past, name="past"):
    """Validate a per-layer past list; return it and P. T=None (cross keys): no position check."""
    n, past = config.n_layer, [None] * config.n_layer if past is None else past
    got = ("a dict (a Seq2SeqPrefix's? use a TunedSeq2Seq)" if isinstance(past, dict) else
           "one (k, v) pair" if len(past) and isinstance(past[0], torch.Tensor) else len(past))
    if got != n:
        raise ValueError(f"{name} must be a list of one (k, v) pair (or None) per layer: expected "
                         f"{n} layers, got {got}")
    P = past_length(past)
    if T is not None and P + T > config.block_size:
        raise ValueError(f"prefix/cache length {P} + {T} tokens = {P + T} exceeds the position "
                         f"table (block_size={config.block_size}); shorten the input or the prefix")
    return past, P


def run_block(block, checkpoint, *args):
    """`block(*args)`; with `checkpoint` while autograd records, its activations are recomputed in
    backward from its inputs instead of kept (Chen et al. 2016, arXiv 1604.06174; torch restores
    RNG and autocast state). A prefix is an input, put in front once per run."""
    if not (checkpoint and torch.is_grad_enabled()):
        return block(*args)
    saved = {m: dict(m._forward_hooks) for m in block.modules()}

    def run(*args):  # the forward's hooks, in the recompute too (tuning.Tuned removes its own)
        now = {m: m._forward_hooks for m in saved}
        for m in saved:
            m._forward_hooks = saved[m]
        try:
            return block(*args)
        finally:
            for m in now:
                m._forward_hooks = now[m]
    return recompute_in_backward(run, *args, use_reentrant=False)


class GPT(nn.Module):
    """Decoder-only Transformer (GPT-2 layout, Radford et al. 2019), native prefix/cache input."""

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
        """Token ids `idx` (B, T) or `inputs_embeds` (B, T, C) (a soft prompt in front of the token
        embeddings) -> the final hidden states (B, T, C) and the new per-layer (k, v)."""
        x = embed(self.transformer.wte, idx, inputs_embeds, past)  # (B, T, C)
        B, T, _ = x.shape
        past, P = check_past(self.config, T, past)
        if attention_mask is not None and (attention_mask.dtype != torch.bool
                                           or tuple(attention_mask.shape) != (B, P + T)):
            raise ValueError(f"attention_mask must be bool of shape (B, P + T) = ({B}, {P + T}), "
                             f"covering the {P} keys in front and the {T} tokens; got "
                             f"{tuple(attention_mask.shape)} {attention_mask.dtype}")
        x = add_positions(x, self.transformer.wpe, P, attention_mask)
        x = dropout(self.transformer.drop, x)
        present = []
        for block, layer_past, mask in zip(self.transformer.h, past,
                                           layer_masks(T, attention_mask, past)):
            x, kv, _ = run_block(block, self.config.checkpoint, x, layer_past, mask)
            present.append(kv)
        return self.transformer.ln_f(x), present

    def forward(self, idx=None, targets=None, past=None, attention_mask=None, inputs_embeds=None):
        """Return (logits (B, T, vocab), loss or None, present); logits are None when targets are
        given and config.loss_chunk > 0 (see lm_head_loss). targets: (B, T) next-token ids, -1
        where no loss is wanted. `present` holds every layer's full (k, v): pass it back as `past`
        to decode the next token incrementally."""
        h, present = self.body(idx, past, attention_mask, inputs_embeds)
        return *self.head(h, targets), present

    def head(self, h, targets=None):
        """Final hidden states (B, T, C) -> (logits, loss or None), by `lm_head_loss`."""
        return lm_head_loss(h, self.lm_head, targets, self.config.loss_chunk)


def summed_loss(logits, targets):
    """Cross-entropy summed over positions whose target is not -1, computed in at least fp32."""
    logits = logits.flatten(0, 1).to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits, targets.flatten(), ignore_index=-1, reduction="sum")


def lm_head_loss(h, lm_head, targets=None, chunk=0):
    """Hidden states (B, T, C) -> (logits (B, T, vocab), mean cross-entropy over targets not -1).
    Checking targets reads three numbers back (a training step's sync; decoding has no targets).
    chunk > 0: the loss is summed `chunk` positions at a time, each slice's logits recomputed in
    backward, so (B, T, vocab) logits and their gradient are never whole; logits are then None."""
    if targets is None:
        return lm_head(h), None
    got = f"{getattr(targets, 'dtype', type(targets))} {tuple(getattr(targets, 'shape', ()))}"
    if getattr(targets, "dtype", None) != torch.long or targets.shape != h.shape[:2]:
        raise ValueError(f"targets must be torch.long (B, T) = {tuple(h.shape[:2])}; got {got}")
    low, high, n = torch.stack([targets.min(), targets.max(), (targets != -1).sum()]).tolist()
    if low < -1 or high >= lm_head.out_features or n == 0:
        raise ValueError(f"targets must be ids in [0, {lm_head.out_features}) or -1 (no loss there;"
                         f" not -100), not all -1; got ids {low}..{high}"
                         + (": the batch has no target tokens" if n == 0 else ""))
    if chunk <= 0:
        logits = lm_head(h)
        return logits, summed_loss(logits, targets) / n
    slices = [(h[:, i:i + chunk], targets[:, i:i + chunk]) for i in range(0, h.size(1), chunk)]
    return None, sum(recompute_in_backward(lambda x, t: summed_loss(lm_head(x), t), *pair,
                                           use_reentrant=False) for pair in slices) / n
