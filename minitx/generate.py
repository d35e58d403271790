"""Incremental decoding with a key/value cache that starts from the prefix.

The first call runs the whole prompt (and builds the prefix once, if the model has one); each
later call feeds only the newest token and the cache returned by the call before. Because a
prefix *is* a pre-filled cache, nothing about prefixes appears here: the model returns a cache
that already holds them. Options and the position budget are checked before the first step.
"""
from numbers import Integral, Real

import torch

from .model import past_length


def filter_logits(logits, top_k=None, top_p=None):
    """Keep the top-k logits and/or the smallest set whose probability reaches top_p (nucleus,
    Holtzman et al. 2020); set the rest to -inf. logits: (B, V)."""
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already >= p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def next_token(logits, temperature=0.0, top_k=None, top_p=None, generator=None):
    """Greedy when temperature == 0, else sample from softmax(logits / temperature) after filtering."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model, idx, max_new_tokens, attention_mask=None, past=None, temperature=0.0,
             top_k=None, top_p=None, stop_ids=(), pad_id=0, generator=None, **model_kwargs):
    """Continue each row of `idx` (B, T) by up to `max_new_tokens` tokens; return (B, n) new ids.

    Batched prompts are left-padded, with `attention_mask` True on real tokens: (B, T) for a tuned
    model (tuning.py), which builds its own prefix from `task=...` passed through `model_kwargs`
    and hides virtual tokens from the caller; (B, P + T) for a plain GPT given a `past` of P
    keys. A row that emits one of `stop_ids` is finished: it keeps the stop token, and `pad_id`
    fills its remaining places. The loop ends early when every row has finished. A model with
    `keys_in_front(**model_kwargs)` (a tuned one) says how many keys it puts before the prompt.
    """
    if not isinstance(stop_ids, (list, tuple, set, range)):
        raise TypeError(f"stop_ids must be a list of token ids; got {stop_ids!r}")
    options = [("max_new_tokens", max_new_tokens, Integral, "an int >= 1", lambda n: n >= 1),
               ("temperature", temperature, Real, "a number >= 0 (0: greedy)", lambda t: t >= 0),
               ("top_k", top_k, Integral, "an int >= 1 or None", lambda k: k >= 1),
               ("top_p", top_p, Real, "a number in (0, 1] or None", lambda p: 0 < p <= 1)]
    for name, value, kind, allowed, ok in options + [
            ("stop_ids", i, Integral, "token ids: ints >= 0", lambda i: i >= 0) for i in stop_ids]:
        if value is None and allowed.endswith("or None"):
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            raise TypeError(f"{name} must be {allowed}; got {value!r} ({type(value).__name__})")
        if not ok(value):
            raise ValueError(f"{name} must be {allowed}; got {value!r}")
    B, T = idx.size(0), idx.size(-1)  # the model checks idx's shape and ids on its first call
    if attention_mask is not None and attention_mask.dim() == 2 and not attention_mask[:, -1].all():
        raise ValueError("attention_mask must be left-padded, every row's last token real: rows "
                         f"{(~attention_mask[:, -1]).nonzero().flatten().tolist()} end in padding, "
                         "so their next token would be predicted from a pad; pad on the left")
    config = getattr(getattr(model, "base", model), "config", None)  # a Tuned's: its base's
    front = model.keys_in_front(**model_kwargs) if hasattr(model, "keys_in_front") else (
        past_length(past))
    if config is not None and front + T + max_new_tokens - 1 > config.block_size:
        raise ValueError(f"{front} keys in front + {T} prompt tokens + max_new_tokens="
                         f"{max_new_tokens} - 1 (the last is never fed) exceed block_size="
                         f"{config.block_size}: lower max_new_tokens (to at most "
                         f"{config.block_size - front - T + 1}) or shorten the prompt or prefix")
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=idx.device) if stop_ids else None
    finished = torch.zeros(B, 1, dtype=torch.bool, device=idx.device)
    one_more = None if attention_mask is None else attention_mask.new_ones(B, 1)
    new_tokens, tokens = [], idx
    for _ in range(max_new_tokens):
        logits, _, past = model(tokens, past=past, attention_mask=attention_mask, **model_kwargs)
        tokens = next_token(logits[:, -1, :].float(), temperature, top_k, top_p, generator)[:, None]
        if stop is None:  # (B, 1): only the newest token goes in next; the rest is cached
            new_tokens.append(tokens)
        else:  # a finished row gets pad_id, which need not be a token id: it is never fed
            new_tokens.append(tokens.masked_fill(finished, pad_id))
            finished |= torch.isin(tokens, stop)
            if finished.all():
                break
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, one_more], dim=1)
    return torch.cat(new_tokens, dim=1)
