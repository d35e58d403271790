"""Incremental decoding with a key/value cache that starts from the prefix.

The first call runs the whole prompt (building any prefix once); each later call feeds only the
newest token and the cache of the call before. A prefix *is* a pre-filled cache, so nothing here
is about prefixes. Options and the position budget are checked before the first step."""
import torch

from .model import past_length
from .tuning import check


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
    """(B, 1) ids: the argmax if temperature == 0, else a sample of softmax(logits / temperature)
    after filtering."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = filter_logits(logits / temperature, top_k, top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate(model, idx, max_new_tokens, attention_mask=None, past=None, temperature=0.0,
             top_k=None, top_p=None, stop_ids=(), pad_id=0, generator=None, **model_kwargs):
    """Continue each row of `idx` (B, T) by up to `max_new_tokens` tokens; return (B, n) new ids.
    Prompts are left-padded, `attention_mask` True on real tokens: (B, T) for a tuned model, which
    builds its prefix from `task=...` (in `model_kwargs`) and says by `keys_in_front` how many
    keys it puts before the prompt; (B, P + T) for a plain GPT given a `past` of P keys. A row
    that emits one of `stop_ids` keeps it and gets `pad_id` after; the loop ends when all have."""
    check("max_new_tokens", max_new_tokens, 1)
    check("temperature", temperature, 0, real=True)
    if top_k is not None:
        check("top_k", top_k, 1)
    if top_p is not None:
        check("top_p", top_p, 0, 1, real=True, above=True)
    if not isinstance(stop_ids, (list, tuple, set, range)):
        raise TypeError(f"stop_ids must be a list of token ids; got {stop_ids!r}")
    for i in stop_ids:
        check("each of stop_ids", i, 0)
    B, T = idx.size(0), idx.size(-1)  # the model checks idx's shape and ids on its first call
    if attention_mask is not None and attention_mask.dim() == 2 and not attention_mask[:, -1].all():
        raise ValueError("attention_mask must be left-padded (each row's last token real); got a "
                         "row ending in padding, whose next token would come from a pad")
    config = getattr(getattr(model, "base", model), "config", None)  # a Tuned's: its base's
    in_front = getattr(model, "keys_in_front", None)  # a tuned model's virtual keys
    P = past_length(past) if in_front is None else in_front(**model_kwargs)
    if config is not None and P + T + max_new_tokens - 1 > config.block_size:  # last: never fed
        raise ValueError(f"{P} keys in front + {T} prompt tokens + max_new_tokens={max_new_tokens}"
                         f" - 1 exceed block_size={config.block_size}: lower max_new_tokens to "
                         f"{config.block_size - P - T + 1} or shorten the prompt or the prefix")
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=idx.device) if stop_ids else None
    finished = torch.zeros(B, 1, dtype=torch.bool, device=idx.device)
    new_tokens, tokens = [], idx
    for _ in range(max_new_tokens):
        logits, _, past = model(tokens, past=past, attention_mask=attention_mask, **model_kwargs)
        tokens = next_token(logits[:, -1].float(), temperature, top_k, top_p, generator)  # (B, 1)
        # only the newest token goes in next; a finished row shows pad_id, which is never fed
        new_tokens.append(tokens if stop is None else tokens.masked_fill(finished, pad_id))
        if stop is not None:  # no stop ids: no bookkeeping at all
            finished |= torch.isin(tokens, stop)
            if finished.all():
                break
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(B, 1)], dim=1)
    return torch.cat(new_tokens, dim=1)
