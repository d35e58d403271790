"""Generation with a cache that starts from the prefix (lesson 03's last point, in use).

Greedy decoding with the cache equals argmax over repeated full forward passes; a batch of
left-padded prompts generates what each prompt generates alone; a row stops at a stop id and
`pad_id` fills its remaining places; without autograd a cache grows in place, and continuing one
cache twice never overwrites either continuation.
Run alone: `python -m pytest tests/test_generate_core.py -q`.
"""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx import Config, generate
from strategies import (VOCAB, gpt_configs, pad_mask, randint, random_prefix, row_lengths, seeds,
                        tiny_gpt)


@st.composite
def setups(draw):
    """A tiny float64 GPT, a batch of prompts (B, T) and an optional prefix (batch B or 1)."""
    config = draw(gpt_configs())
    model = tiny_gpt(config, draw(st.integers(0, 3)))
    B, T, P = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(0, 5))
    seed = draw(seeds)
    idx = randint(seed, VOCAB, B, T)
    prefix = None
    if draw(st.booleans()):
        prefix = random_prefix(config, draw(st.sampled_from([1, B])), P, seed + 1)
    return model, idx, prefix, draw(st.integers(1, 4))


def greedy_by_full_passes(model, idx, prefix, n):
    """The reference: rerun the whole sequence for every new token, no cache kept."""
    seq = idx
    with torch.no_grad():
        for _ in range(n):
            logits = model(seq, past=prefix)[0]
            seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return seq[:, idx.size(1):]


@given(s=setups())
def test_greedy_equals_argmax_of_repeated_full_passes(s):
    model, idx, prefix, n = s
    out = generate(model, idx, n, past=prefix)
    assert out.shape == (idx.size(0), n) and out.dtype == torch.long
    assert torch.equal(out, greedy_by_full_passes(model, idx, prefix, n))


@given(s=setups(), data=st.data())
def test_batched_left_padded_generation_equals_each_row_alone(s, data):
    model, idx, prefix, n = s
    B, T = idx.shape
    lengths = data.draw(row_lengths(B, T))
    real = pad_mask(lengths, T, "left")
    if prefix is not None and prefix[0][0].size(0) != 1:
        prefix = [(k[:1], v[:1]) for k, v in prefix]  # one prefix for all rows, so rows compare
    P = 0 if prefix is None else prefix[0][0].size(2)
    mask = torch.cat([torch.ones(B, P, dtype=torch.bool), real], 1)  # (B, P + T)
    batched = generate(model, idx, n, attention_mask=mask, past=prefix)
    for r, L in enumerate(lengths):
        assert torch.equal(batched[r], generate(model, idx[r:r + 1, T - L:], n, past=prefix)[0])


@given(s=setups(), data=st.data())
def test_stop_ids_end_rows_and_pad_id_fills_after(s, data):
    model, idx, prefix, n = s
    free = generate(model, idx, n, past=prefix)  # (B, n) without stopping
    stop = data.draw(st.sampled_from(free.flatten().tolist()))
    pad_id = -1  # not a token id at all: it must only ever be written, never fed to the model
    out = generate(model, idx, n, past=prefix, stop_ids=(stop,), pad_id=pad_id)
    expected, width = [], 0
    for row in free.tolist():
        end = row.index(stop) + 1 if stop in row else n  # the stop token itself is kept
        expected.append(row[:end] + [pad_id] * (n - end))
        width = max(width, end)
    assert out.shape == (idx.size(0), width)  # the loop ends once every row has stopped
    assert out.tolist() == [row[:width] for row in expected]


@given(s=setups(), seed=seeds)
def test_top_k_1_sampling_is_greedy(s, seed):
    model, idx, prefix, n = s
    g = torch.Generator().manual_seed(seed)
    sampled = generate(model, idx, n, past=prefix, temperature=0.7, top_k=1, generator=g)
    assert torch.equal(sampled, generate(model, idx, n, past=prefix))


def test_max_new_tokens_must_be_positive():
    model = tiny_gpt(Config(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=1, n_embd=4))
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.zeros(1, 2, dtype=torch.long), 0)


@given(s=setups(), data=st.data())
def test_cache_grows_in_place_and_branches_never_overwrite_each_other(s, data):
    """Without autograd a cache is a view into a buffer with keys to spare (attention.append):
    continuing the newest cache writes in place; continuing an older one (a second branch) copies.
    Every cache, whatever order the branches were taken in, equals one full pass."""
    model, idx, prefix, _ = s
    a, b, c = (randint(data.draw(seeds), VOCAB, idx.size(0), data.draw(st.integers(1, 2)))
               for _ in range(3))
    storage = lambda cache: cache[0][0].untyped_storage().data_ptr()  # noqa: E731
    with torch.no_grad():
        cache = model(idx, past=prefix)[2]
        first = model(a, past=cache)[2]
        second = model(b, past=first)[2]  # newest cache: written in place
        branch = model(c, past=first)[2]  # `first` continued again: copied
        assert storage(second) == storage(first) != storage(branch)
        for got, parts in ((first, [idx, a]), (second, [idx, a, b]), (branch, [idx, a, c])):
            full = model(torch.cat(parts, dim=1), past=prefix)[2]
            for got_kv, full_kv in zip(got, full):
                for x, y in zip(got_kv, full_kv):
                    assert x.shape == y.shape and torch.allclose(x, y, rtol=0, atol=1e-12)


def test_with_autograd_the_cache_is_concatenated_not_buffered():
    """Training through a cache or prefix must keep the graph: no buffer, no spare keys."""
    model = tiny_gpt(Config(vocab_size=VOCAB, block_size=32, n_layer=1, n_head=2, n_embd=8))
    idx = randint(0, VOCAB, 2, 3)
    with torch.no_grad():
        cache = model(idx)[2]
    past = [(k.clone().requires_grad_(), v) for k, v in cache]
    k = model(idx, past=past)[2][0][0]
    assert k.requires_grad and k.untyped_storage().nbytes() == k.numel() * k.element_size()
    k.sum().backward()
    assert past[0][0].grad is not None
