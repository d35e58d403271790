"""The GPT with keys in front of its tokens: the properties behind lessons 01 and 03.

Lesson 01 (soft prompt shapes): `inputs_embeds` is the same as token ids, a soft prompt made of
real embeddings is a hard prompt, the real tokens' logits are the last T positions.
Lesson 03 (prefix attention): a prefix equal to the model's own keys/values of tokens x1..xP is
exactly a pre-filled cache of those tokens; positions continue at P; padding is inert; a length-0
or fully masked prefix is no prefix; incremental decoding equals one full pass; the SDPA path
equals the written-out path; bad inputs fail with a message that names the expected shape.
Run alone: `python -m pytest tests/test_model.py -q`.
"""
from typing import NamedTuple

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from strategies import (BLOCK, VOCAB, gpt_configs, head_size, own_kv, pad_mask, randint,
                        random_prefix, randn, row_lengths, seeds, tiny_gpt, written_out)

TOL = 1e-10


class Case(NamedTuple):
    model: object
    config: object
    B: int
    T: int
    P: int
    seed: int


@st.composite
def cases(draw, min_t=1, min_p=0):
    """A tiny float64 GPT and the sizes of one batch: B rows of T tokens after P keys in front."""
    config = draw(gpt_configs())
    model = tiny_gpt(config, draw(st.integers(0, 3)))
    return Case(model, config, B=draw(st.integers(1, 3)), T=draw(st.integers(min_t, 6)),
                P=draw(st.integers(min_p, 5)), seed=draw(seeds))


def ids(c, *shape, offset=0):
    return randint(c.seed + offset, VOCAB, *shape)


def prefix_of(c, batch_1=False):
    return random_prefix(c.config, 1 if batch_1 else c.B, c.P, c.seed + 100)


def run(model, idx=None, **kw):
    with torch.no_grad():
        return model(idx, **kw)


def max_diff(a, b):
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- shapes

@given(c=cases(), batch_1=st.booleans(), masked=st.booleans())
def test_gpt_shapes(c, batch_1, masked):
    idx = ids(c, c.B, c.T)
    mask = torch.ones(c.B, c.P + c.T, dtype=torch.bool) if masked else None
    targets = ids(c, c.B, c.T, offset=1)
    with torch.no_grad():
        logits, loss, present = c.model(idx, targets, prefix_of(c, batch_1), mask)
    assert logits.shape == (c.B, c.T, VOCAB)
    assert loss.shape == () and torch.isfinite(loss)
    assert len(present) == c.config.n_layer
    for k, v in present:
        assert k.shape == v.shape == (c.B, c.config.n_head, c.P + c.T, head_size(c.config))
    assert run(c.model, idx)[1] is None  # no targets, no loss


# ----------------------------------------------------------------------------- causality

@given(c=cases(min_t=2), with_prefix=st.booleans(), data=st.data())
def test_future_tokens_do_not_change_earlier_outputs(c, with_prefix, data):
    cut = data.draw(st.integers(1, c.T - 1))
    idx = ids(c, c.B, c.T)
    other = idx.clone()
    other[:, cut:] = ids(c, c.B, c.T - cut, offset=1)
    past = prefix_of(c) if with_prefix else None
    a, b = run(c.model, idx, past=past)[0], run(c.model, other, past=past)[0]
    assert max_diff(a[:, :cut], b[:, :cut]) <= TOL


# ----------------------------------------------------------------------------- padding

@given(c=cases(), side=st.sampled_from(["left", "right"]), with_prefix=st.booleans(),
       data=st.data())
def test_padded_tokens_are_inert(c, side, with_prefix, data):
    """Whatever sits at padded positions (ids or embeddings), real positions do not see it."""
    real = pad_mask(data.draw(row_lengths(c.B, c.T)), c.T, side)  # (B, T)
    P = c.P if with_prefix else 0
    mask = torch.cat([torch.ones(c.B, P, dtype=torch.bool), real], 1)  # (B, P + T)
    past = prefix_of(c) if with_prefix else None
    idx = ids(c, c.B, c.T)
    other = torch.where(real, idx, ids(c, c.B, c.T, offset=1))
    a = run(c.model, idx, past=past, attention_mask=mask)[0]
    b = run(c.model, other, past=past, attention_mask=mask)[0]
    assert max_diff(a[real], b[real]) <= TOL
    emb = c.model.transformer.wte(idx)
    noise = torch.where(real[..., None], emb, randn(c.seed, c.B, c.T, c.config.n_embd) * 10)
    e = run(c.model, inputs_embeds=noise, past=past, attention_mask=mask)[0]
    assert max_diff(a[real], e[real]) <= TOL


@given(c=cases(), with_prefix=st.booleans(), data=st.data())
def test_left_padded_row_equals_the_row_alone(c, with_prefix, data):
    """[prefix][pad][text]: the padding is inert and the text keeps the positions it has alone."""
    lengths = data.draw(row_lengths(c.B, c.T))
    real = pad_mask(lengths, c.T, "left")
    P = c.P if with_prefix else 0
    past = prefix_of(c, batch_1=True) if with_prefix else None  # one prefix for every row
    mask = torch.cat([torch.ones(c.B, P, dtype=torch.bool), real], 1)
    idx = ids(c, c.B, c.T)
    batched = run(c.model, idx, past=past, attention_mask=mask)[0]
    for r, n in enumerate(lengths):
        alone = run(c.model, idx[r:r + 1, c.T - n:], past=past)[0]  # (1, n, V)
        assert max_diff(batched[r, c.T - n:], alone[0]) <= TOL


# ----------------------------------------------------------------------------- prefixes

@given(c=cases(), with_mask=st.booleans())
def test_length_0_prefix_equals_no_prefix(c, with_mask):
    idx = ids(c, c.B, c.T)
    empty = random_prefix(c.config, c.B, 0, c.seed)
    mask = torch.ones(c.B, c.T, dtype=torch.bool) if with_mask else None
    a = run(c.model, idx)[0]
    b = run(c.model, idx, past=empty, attention_mask=mask)[0]
    assert max_diff(a, b) <= TOL


@given(c=cases(min_p=1), side=st.sampled_from(["none", "left", "right"]), data=st.data())
def test_fully_masked_prefix_equals_no_prefix(c, side, data):
    """Keys hidden by attention_mask are inert, and positions count only real keys."""
    idx = ids(c, c.B, c.T)
    real = (torch.ones(c.B, c.T, dtype=torch.bool) if side == "none"
            else pad_mask(data.draw(row_lengths(c.B, c.T)), c.T, side))
    hidden = torch.cat([torch.zeros(c.B, c.P, dtype=torch.bool), real], 1)
    a = run(c.model, idx, attention_mask=None if side == "none" else real)[0]
    b = run(c.model, idx, past=prefix_of(c), attention_mask=hidden)[0]
    assert max_diff(a[real], b[real]) <= TOL


@given(c=cases(min_p=1), batch_1=st.booleans())
def test_prefix_of_own_kv_equals_running_on_those_tokens(c, batch_1):
    """prefix = the model's per-layer K/V for x1..xP  =>  logits = run on [x1..xP, input][-T:]."""
    pre = ids(c, 1 if batch_1 else c.B, c.P, offset=7)
    idx = ids(c, c.B, c.T)
    with_prefix = run(c.model, idx, past=own_kv(c.model, pre))[0]
    full = run(c.model, torch.cat([pre.expand(c.B, -1), idx], 1))[0][:, -c.T:]
    assert max_diff(with_prefix, full) <= TOL
    assert max_diff(with_prefix, run(c.model, idx)[0]) > 1e-6  # the prefix really is used


@given(c=cases(), batch_1=st.booleans())
def test_prefix_positions_continue_at_P(c, batch_1):
    """A prefix is keys only: the first real token has position P, exactly as after a cache."""
    pre = ids(c, c.B, c.P, offset=7)
    idx = ids(c, c.B, c.T)
    prefix = own_kv(c.model, pre) if c.P else [None] * c.config.n_layer  # T = 0 is refused
    a = run(c.model, idx, past=prefix)[0]
    emb = c.model.transformer.wte(idx) + c.model.transformer.wpe(torch.arange(c.P, c.P + c.T))
    h = emb
    with torch.no_grad():
        for block, kv in zip(c.model.transformer.h, prefix):
            h = block(h, kv)[0]
        b = c.model.lm_head(c.model.transformer.ln_f(h))
    assert max_diff(a, b) <= TOL


# ------------------------------------------------------------------------ two paths, one answer

@given(c=cases(), side=st.sampled_from(["none", "left", "right"]), with_prefix=st.booleans(),
       data=st.data())
def test_sdpa_equals_written_out(c, side, with_prefix, data):
    P = c.P if with_prefix else 0
    mask = None
    if side != "none":
        real = pad_mask(data.draw(row_lengths(c.B, c.T)), c.T, side)
        mask = torch.cat([torch.ones(c.B, P, dtype=torch.bool), real], 1)
    idx, past = ids(c, c.B, c.T), prefix_of(c) if with_prefix else None
    fast, _, kv_fast = run(c.model, idx, past=past, attention_mask=mask)
    with written_out(c.model):
        slow, _, kv_slow = run(c.model, idx, past=past, attention_mask=mask)
    assert max_diff(fast, slow) <= TOL
    for (k1, v1), (k2, v2) in zip(kv_fast, kv_slow):
        assert max_diff(k1, k2) <= TOL and max_diff(v1, v2) <= TOL


# ----------------------------------------------------------------------------- the cache

@given(c=cases(), with_prefix=st.booleans(), padded=st.booleans(), data=st.data())
def test_incremental_decoding_equals_one_full_pass(c, with_prefix, padded, data):
    """Feed a first chunk, then one token at a time with `present` as the next `past`."""
    idx = ids(c, c.B, c.T)
    P = c.P if with_prefix else 0
    past = prefix_of(c) if with_prefix else None
    mask = None
    if padded:
        real = pad_mask(data.draw(row_lengths(c.B, c.T)), c.T, "left")
        mask = torch.cat([torch.ones(c.B, P, dtype=torch.bool), real], 1)
    full = run(c.model, idx, past=past, attention_mask=mask)[0]
    first = data.draw(st.integers(1, c.T))  # the prompt chunk
    bounds = [(0, first)] + [(t, t + 1) for t in range(first, c.T)]
    steps = []
    for a, b in bounds:
        m = None if mask is None else mask[:, :P + b]
        logits, _, past = run(c.model, idx[:, a:b], past=past, attention_mask=m)
        steps.append(logits)
    assert max_diff(torch.cat(steps, 1), full) <= TOL


# ----------------------------------------------------------------------------- embeddings

@given(c=cases(), with_prefix=st.booleans())
def test_inputs_embeds_equal_token_ids(c, with_prefix):
    idx, past = ids(c, c.B, c.T), prefix_of(c) if with_prefix else None
    a = run(c.model, idx, past=past)[0]
    b = run(c.model, inputs_embeds=c.model.transformer.wte(idx), past=past)[0]
    assert max_diff(a, b) <= TOL


@given(c=cases(min_p=1))
def test_soft_prompt_of_real_embeddings_is_a_hard_prompt(c):
    """[soft prompt; token embeddings] -> logits (B, P + T, V); the real tokens' are the last T."""
    prompt, idx = ids(c, c.P, offset=3), ids(c, c.B, c.T)
    wte = c.model.transformer.wte
    soft = wte(prompt).unsqueeze(0).expand(c.B, -1, -1)  # (B, P, C)
    logits = run(c.model, inputs_embeds=torch.cat([soft, wte(idx)], 1))[0]
    assert logits.shape == (c.B, c.P + c.T, VOCAB)
    hard = run(c.model, torch.cat([prompt.expand(c.B, -1), idx], 1))[0]
    assert max_diff(logits[:, -c.T:], hard[:, -c.T:]) <= TOL


# ----------------------------------------------------------------------------- bad inputs

@given(c=cases(), what=st.sampled_from(["layers", "heads", "width", "batch"]))
def test_bad_prefix_raises_with_expected_shape(c, what):
    cfg, hs = c.config, head_size(c.config)
    B, H, P = c.B, cfg.n_head, c.P
    shape = {"heads": (B, H + 1, P, hs), "width": (B, H, P, hs + 1), "batch": (B + 1, H, P, hs),
             "layers": (B, H, P, hs)}[what]
    n = cfg.n_layer + 1 if what == "layers" else cfg.n_layer
    past = [(randn(c.seed, *shape), randn(c.seed, *shape)) for _ in range(n)]
    with pytest.raises(ValueError) as err:
        c.model(ids(c, B, c.T), past=past)
    msg = str(err.value)
    if what == "layers":
        assert f"expected {cfg.n_layer} layers, got {n}" in msg
    else:
        assert f"({B} or 1, {H}, P, {hs})" in msg and str(shape) in msg


@given(c=cases(), data=st.data())
def test_prefix_beyond_the_position_table_raises(c, data):
    P = data.draw(st.integers(BLOCK - c.T + 1, BLOCK + 2))
    past = random_prefix(c.config, c.B, P, c.seed)
    expected = rf"{P} \+ {c.T} tokens = {P + c.T} exceeds .*block_size={BLOCK}"
    with pytest.raises(ValueError, match=expected):
        c.model(ids(c, c.B, c.T), past=past)
    with pytest.raises(ValueError, match="block_size"):  # too many tokens, no prefix at all
        c.model(ids(c, c.B, BLOCK + 1))


@given(c=cases(), data=st.data())
def test_bad_attention_mask_raises_with_expected_shape(c, data):
    S = c.P + c.T
    bad = data.draw(st.sampled_from([
        torch.ones(c.B, S),  # float: a bool mask is required
        torch.ones(c.B, S, dtype=torch.long),
        torch.ones(c.B, c.T + c.P + 1, dtype=torch.bool),
        torch.ones(c.B + 1, S, dtype=torch.bool),
        torch.ones(c.B, 1, S, dtype=torch.bool),
    ] + ([torch.ones(c.B, c.T, dtype=torch.bool)] if c.P else [])))  # forgot the prefix keys
    with pytest.raises(ValueError) as err:
        c.model(ids(c, c.B, c.T), past=prefix_of(c), attention_mask=bad)
    assert f"bool of shape (B, P + T) = ({c.B}, {S})" in str(err.value)


@given(c=cases())
def test_idx_and_inputs_embeds_are_exclusive(c):
    idx = ids(c, c.B, c.T)
    emb = c.model.transformer.wte(idx)
    for kw in (dict(idx=idx, inputs_embeds=emb), dict()):
        with pytest.raises(ValueError, match=r"exactly one of idx \(B, T\) or inputs_embeds"):
            c.model(**kw)
    with pytest.raises(ValueError, match=rf"\(B, T, {c.config.n_embd}\)"):
        c.model(inputs_embeds=torch.cat([emb, emb], -1))
