"""A T5-style encoder–decoder built from GPT's blocks, with three prefixes in every layer.

The encoder's `Block(causal=False)` is bidirectional (only padded source keys hidden); the
decoder's `Block(cross=True)` is causal, then cross-attends to the encoder output. Token
embeddings are shared and tied to the output head; blocks are pre-norm. All three attentions take
keys/values from *before* through the same `past`: nothing here is a second attention.

Li & Liang (2021, arXiv 2101.00190 §4, and their BART code) give every layer three prefixes:
  "encoder" — in front of the encoder's self-attention keys (like GPT's prefix),
  "decoder" — in front of the decoder's self-attention keys (it starts the decoding cache),
  "cross"   — in front of the encoder output that the decoder cross-attends to.

Positions are learned and absolute, as in GPT (T5 uses a relative position bias): real tokens
after P prefix keys continue at positions P, P+1, ...; the cross prefix has no positions at all.

Masks: `src_mask` (B, S), True on real source tokens, covers the *last* S keys (a prefix or soft
prompt in front is always visible) of the encoder's self-attention and the decoder's
cross-attention. The decoder needs none: targets are right-padded (-1 there), and causality keeps
real tokens from seeing the padding after them.

Unlike GPT, a prompt token in a bidirectional encoder attends to the input, so from layer 2 on
its keys depend on it (the tests show it): a prefix of tokens run on their own equals them as a
hard prompt only in a one-layer encoder; at any depth take their keys *beside* the input."""
import copy

import torch
import torch.nn as nn

from .generate import generate
from .attention import dropout
from .model import (Block, add_positions, check_past, embed, init_weights, layer_masks,
                    lm_head_loss, run_block)
from .tuning import METHODS, Method, Prefix, Tuned

KINDS = ("encoder", "decoder", "cross")


def front_visible(mask, B, S):
    """Extend a key mask (B, m) of the last m keys to all S keys, the S - m in front visible."""
    if mask is None:
        return None
    if mask.dtype != torch.bool or mask.dim() != 2 or mask.size(0) != B or mask.size(1) > S:
        raise ValueError(f"src_mask must be a bool tensor (B, S) = ({B}, <= {S}), True on real "
                         f"source tokens; got {tuple(mask.shape)} {mask.dtype}")
    return torch.cat([mask.new_ones(B, S - mask.size(1)), mask], dim=1)  # (B, S)


class Stack(nn.Module):
    """The encoder (`cross=False`) or the decoder (`cross=True`): positions, blocks, final norm."""

    def __init__(self, config, cross):
        super().__init__()
        self.config, self.cross = config, cross
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config, causal=cross, cross=cross)
                                for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)

    def forward(self, x, past=None, src_mask=None, context=None, cross_past=None):
        """x (B, T, C) -> (hidden (B, T, C), per-layer self (k, v), per-layer cross (k, v))."""
        B, T, _ = x.shape
        past, P = check_past(self.config, T, past, "dec_past" if self.cross else "enc_past")
        self_mask = None if self.cross else front_visible(src_mask, B, P + T)  # (B, P + T)
        x = dropout(self.drop, add_positions(x, self.wpe, P, self_mask))
        cross_past, Pc = check_past(self.config, None, cross_past, "cross_past")  # no positions
        m = 0 if context is None else context.size(1)  # 0: the cross keys are all cached
        cross_mask = front_visible(src_mask, B, Pc + m) if self.cross else None
        present, cross_present = [], []
        for block, layer_past, mask, c_past, c_mask in zip(
                self.h, past, layer_masks(T, self_mask, past, causal=self.cross), cross_past,
                layer_masks(m, cross_mask, cross_past, causal=False)):
            x, kv, cross_kv = run_block(block, self.config.checkpoint, x, layer_past, mask,
                                       context, c_past, c_mask)
            present.append(kv)
            cross_present.append(cross_kv)
        return self.ln_f(x), present, cross_present


class Seq2Seq(nn.Module):
    """Encoder–decoder Transformer (Vaswani et al. 2017; T5-like, Raffel et al. 2020), pre-norm,
    shared embeddings `transformer.wte`, with native prefix/cache input in every attention."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            encoder=Stack(config, cross=False),
            decoder=Stack(config, cross=True),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied
        init_weights(self, config.n_layer)

    def encode(self, src=None, src_mask=None, past=None, inputs_embeds=None, prompt=None):
        """Token ids `src` (B, S) or `inputs_embeds` (B, S, C), a soft `prompt` (n, C) in front of
        every row, `past` the encoder prefix -> (memory (B, n + S, C), per-layer (k, v))."""
        x = embed(self.transformer.wte, src, inputs_embeds, None, name="src")
        if prompt is not None:
            x = torch.cat([prompt.to(x.dtype).expand(x.size(0), -1, -1), x], dim=1)  # (B, n + S, C)
        memory, present, _ = self.transformer.encoder(x, past, src_mask)
        return memory, present

    def decode(self, tgt, memory=None, src_mask=None, past=None, cross_past=None, targets=None):
        """Return (logits (B, T, vocab), loss or None, cache = (self, cross) per-layer (k, v)). The
        cross keys are [cross_past; memory], or with memory=None the cached set `cross_past`."""
        x = embed(self.transformer.wte, tgt, None, past, name="tgt")
        h, present, cross = self.transformer.decoder(x, past, src_mask, memory, cross_past)
        return *lm_head_loss(h, self.lm_head, targets, self.config.loss_chunk), (present, cross)

    def forward(self, src, tgt, targets=None, src_mask=None, enc_past=None, dec_past=None,
                cross_past=None, cache=None):
        """Encode `src` (B, S), decode `tgt` (B, T); return (logits, loss, cache). targets: (B, T)
        next-token ids, -1 for no loss. With the previous call's `cache` the encoder is skipped
        and only the new `tgt` tokens run (prefixes and encoder output are in the cache)."""
        if cache is not None:
            return self.decode(tgt, None, src_mask, *cache, targets=targets)
        memory, _ = self.encode(src, src_mask, enc_past)
        return self.decode(tgt, memory, src_mask, dec_past, cross_past, targets)


class Seq2SeqPrefix(Method):
    """Prefix tuning for an encoder–decoder: one `tuning.Prefix` per kind in `kinds` (a subset of
    "encoder", "decoder", "cross"), each direct (mid=None) or reparameterized by its own MLP, as
    in Li & Liang's BART code. `active` (a set, default all kinds) switches kinds off without
    rebuilding, for an ablation: a kind switched off is exactly no prefix of that kind.
    Trainable parameters per kind, L layers, width C, length P: direct 2·L·P·C; reparameterized
    P·C + (C·mid + mid) + (mid·2·L·C + 2·L·C). `export()` keeps only the prefixes."""

    method = "seq2seq_prefix"
    SETTINGS = ("length", "mid", "kinds")

    def __init__(self, model, length, mid=None, kinds=KINDS):
        super().__init__(model)
        if not kinds or not set(kinds) <= set(KINDS):
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {kinds!r}")
        self.length, self.mid, self.kinds = length, mid, tuple(kinds)
        self.parts = nn.ModuleDict({k: Prefix(model, length, mid) for k in KINDS if k in kinds})
        self.active = set(kinds)

    def prefix(self):
        """{kind: one (k, v) per layer, each (1, n_head, length, head_size)}, active kinds only."""
        return {k: p.prefix() for k, p in self.parts.items() if k in self.active}

    def init_from_tokens(self, model, ids, **kw):
        """Encoder prefix := the frozen encoder's own keys/values for `ids` run on their own
        (Prefix.init_from_tokens; §7.4 of the paper)."""
        return self.parts["encoder"].init_from_tokens(model, ids, run=lambda i: model.encode(i)[1],
                                                      **kw)

    @torch.no_grad()
    def export(self):
        """The same prefixes as direct parameters: the MLPs dropped, outputs unchanged."""
        out = copy.deepcopy(self)
        out.parts, out.mid = nn.ModuleDict({k: p.export() for k, p in self.parts.items()}), None
        return out


METHODS[Seq2SeqPrefix.method] = Seq2SeqPrefix  # so Tuned.load can rebuild it from a file


class TunedSeq2Seq(Tuned):
    """A frozen Seq2Seq plus named task methods (`Tuned`'s add, use and report), one task per
    batch: a soft prompt goes in front of the encoder input, a Seq2SeqPrefix's prefixes where
    they belong, LoRA and adapter hooks on whichever layers they name (e.g. LoRA with targets
    ("attn.c_attn", "crossattn.c_q", "crossattn.c_kv") reaches all three attentions)."""

    def forward(self, src, tgt, targets=None, src_mask=None, task=None, cache=None):
        """Like Seq2Seq.forward for the task named by `task` (default: the first added)."""
        names = self.row_tasks(task, src.size(0))
        if len(set(names)) > 1:
            raise ValueError("TunedSeq2Seq runs one task per batch; split the batch by task")
        method = self.tasks[names[0]]
        with self.hooked(names, src.device):
            if cache is not None:  # the soft prompt and prefixes are in the cache already
                return self.base.decode(tgt, None, src_mask, *cache, targets=targets)
            prefix, prompt = method.prefix() or {}, method.prompt()
            if not isinstance(prefix, dict):
                raise ValueError("an encoder-decoder takes Seq2SeqPrefix, not tuning.Prefix")
            memory, _ = self.base.encode(src, src_mask, prefix.get("encoder"), prompt=prompt)
            return self.base.decode(tgt, memory, src_mask, prefix.get("decoder"),
                                    prefix.get("cross"), targets)


def generate_seq2seq(model, src, max_new_tokens, src_mask=None, bos_id=0, **kwargs):
    """Decode up to `max_new_tokens` per row of `src` (B, S) (padded on any side, `src_mask`) from
    `bos_id` by a Seq2Seq or TunedSeq2Seq; return the (B, n) new ids. `generate.generate` with the
    decoder as its model: the first step encodes the source once and caches the prefixes and cross
    keys/values; kwargs are generate's options and the model's (task=..., enc_past, ...)."""
    def step(tgt, past=None, attention_mask=None, **model_kwargs):
        return model(src, tgt, src_mask=src_mask, cache=past, **model_kwargs)
    bos = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
    return generate(step, bos, max_new_tokens, **kwargs)
