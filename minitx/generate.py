"""Incremental decoding with a key/value cache that starts from the prefix.

The first call runs the whole prompt (and builds the prefix once, if the model has one); each
later call feeds only the newest token and the cache returned by the call before. Because a
prefix *is* a pre-filled cache, nothing about prefixes appears here: the model returns a cache
that already holds them.
"""
import torch


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
    and hides virtual tokens from the caller; (B, P + T) for a plain GPT given a `past` of P keys. A row that emits one of `stop_ids` is finished:
    it keeps the stop token, and `pad_id` fills its remaining places. The loop ends early when
    every row has finished.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=idx.device)
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    new_tokens, tokens = [], idx
    for _ in range(max_new_tokens):
        logits, _, past = model(tokens, past=past, attention_mask=attention_mask, **model_kwargs)
        raw = next_token(logits[:, -1, :].float(), temperature, top_k, top_p, generator)
        token = raw.masked_fill(finished, pad_id)  # (B,); pad_id need not be a valid token id
        new_tokens.append(token)
        finished |= torch.isin(token, stop)
        if finished.all():
            break
        tokens = raw.unsqueeze(1)  # (B, 1): only the newest token goes in; the rest is cached
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(idx.size(0), 1)], 1)
    return torch.stack(new_tokens, dim=1)
