"""The encoder–decoder and its three prefixes (issue 5): shapes, masks, the exact equalities in
float64, parameter accounting, gradients, errors and generation (its lesson's tests:
test_lessons_seq2seq.py)."""
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx.model import Config
from strategies import written_out
from minitx.seq2seq import KINDS, Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq, generate_seq2seq
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, count_parameters

DTYPE, VOCAB, BLOCK = torch.float64, 11, 24
TOL = dict(rtol=1e-9, atol=1e-10)
seeds = st.integers(0, 2**31 - 1)


@functools.lru_cache(maxsize=64)
def tiny(n_layer=2, n_head=2, head_size=3, seed=0):
    """A frozen float64 Seq2Seq with generic O(1) weights (GPT-2's 0.02 init would make a tiny
    model nearly input-independent and let an equality pass for the wrong reason). Cached: do
    not mutate."""
    config = Config(vocab_size=VOCAB, block_size=BLOCK, n_layer=n_layer, n_head=n_head,
                    n_embd=n_head * head_size, dropout=0.0)
    g = torch.Generator().manual_seed(seed)
    model = Seq2Seq(config).to(DTYPE).eval().requires_grad_(False)
    for name, p in model.named_parameters():
        mean, std = ((0.0, 0.1) if name.endswith("bias") else (1.0, 0.2) if p.dim() == 1
                     else (0.0, 0.4))
        p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * std + mean)
    return model


models = st.builds(tiny, n_layer=st.integers(1, 2), n_head=st.integers(1, 2),
                   head_size=st.integers(1, 4), seed=st.integers(0, 3))


def ids(seed, *shape):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def rand_past(model, B, P, seed):
    """A random prefix: one (k, v) per layer, each (B, n_head, P, head_size); None when P == 0."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    return None if P == 0 else [tuple(torch.randn(B, c.n_head, P, c.n_embd // c.n_head,
                                                  generator=g, dtype=DTYPE) for _ in "kv")
                                for _ in range(c.n_layer)]


def pad_mask(lengths, S, left):
    return torch.tensor([[j >= S - n if left else j < n for j in range(S)] for n in lengths])


def tuned(model, method_cls, *args, seed=0, **kw):
    """A TunedSeq2Seq with one task whose parameters are all random (so every part matters)."""
    torch.manual_seed(seed)
    t = TunedSeq2Seq(model)
    method = t.add("task", method_cls(model, *args, **kw))
    with torch.no_grad():
        for p in method.parameters():
            p.normal_(0.0, 0.5)
    return t, method


def test_shapes():
    model = tiny(n_layer=2, n_head=2, head_size=3)
    src, tgt = ids(0, 3, 5), ids(1, 3, 4)
    past = dict(enc_past=rand_past(model, 1, 2, 0), dec_past=rand_past(model, 3, 3, 1),
                cross_past=rand_past(model, 1, 4, 2))
    logits, loss, (self_kv, cross_kv) = model(src, tgt, targets=tgt, **past)
    assert logits.shape == (3, 4, VOCAB) and loss.dim() == 0
    assert len(self_kv) == len(cross_kv) == 2
    assert self_kv[0][0].shape == (3, 2, 3 + 4, 3)  # decoder prefix + tokens
    assert cross_kv[1][1].shape == (3, 2, 4 + 5, 3)  # cross prefix + encoder output
    memory, enc_kv = model.encode(src, past=past["enc_past"])
    assert memory.shape == (3, 5, 6) and enc_kv[0][0].shape == (3, 2, 2 + 5, 3)


@given(model=models, lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       left=st.booleans(), P=st.integers(0, 2), seed=seeds)
def test_padded_batch_equals_each_row_alone_and_padding_is_inert(model, lengths, left, P, seed):
    B, S = len(lengths), max(lengths)
    mask = pad_mask(lengths, S, left)
    src, tgt = ids(seed, B, S), ids(seed + 1, B, 3)
    past = dict(enc_past=rand_past(model, 1, P, seed), cross_past=rand_past(model, 1, P, seed + 9))
    logits, _, _ = model(src, tgt, src_mask=mask, **past)
    garbage = torch.where(mask, src, ids(seed + 2, B, S))  # other tokens at the padded places
    torch.testing.assert_close(model(garbage, tgt, src_mask=mask, **past)[0], logits, **TOL)
    for i in range(B):
        alone = model(src[i:i + 1, mask[i]], tgt[i:i + 1], **past)[0]
        torch.testing.assert_close(logits[i:i + 1], alone, **TOL)


@given(model=models, T=st.integers(2, 5), t=st.integers(1, 4), seed=seeds)
def test_decoder_is_causal(model, T, t, seed):
    t = min(t, T - 1)
    src, tgt = ids(seed, 2, 4), ids(seed + 1, 2, T)
    changed = torch.cat([tgt[:, :t], ids(seed + 2, 2, T - t)], dim=1)
    torch.testing.assert_close(model(src, changed)[0][:, :t], model(src, tgt)[0][:, :t], **TOL)


@given(model=models, lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       P=st.tuples(*[st.integers(0, 3)] * 3), T=st.integers(1, 5), seed=seeds)
def test_incremental_decoding_equals_full_forward(model, lengths, P, T, seed):
    B, S = len(lengths), max(lengths)
    src, tgt, mask = ids(seed, B, S), ids(seed + 1, B, T), pad_mask(lengths, S, left=False)
    past = dict(enc_past=rand_past(model, 1, P[0], seed),
                dec_past=rand_past(model, B, P[1], seed + 1),
                cross_past=rand_past(model, 1, P[2], seed + 2))
    full, _, _ = model(src, tgt, src_mask=mask, **past)
    logits, cache = [], None
    for t in range(T):  # the encoder runs once; then one token at a time with the cache
        step, _, cache = model(src, tgt[:, t:t + 1], src_mask=mask, cache=cache, **past)
        logits.append(step)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, **TOL)
    assert cache[0][0][0].size(2) == P[1] + T and cache[1][0][0].size(2) == P[2] + S


@given(model=models, P=st.integers(1, 3), seed=seeds)
def test_encoder_prefix_of_tokens_beside_the_input_equals_a_hard_prompt(model, P, seed):
    """Any depth: the per-layer keys/values that tokens x have in the run on [x; src]. (The
    encoder output is compared: with a hard prompt the decoder also reads x's output positions.)"""
    x, src = ids(seed, 1, P), ids(seed + 1, 2, 4)
    hard = torch.cat([x.expand(2, -1), src], dim=1)
    _, kv = model.encode(hard)
    prefix = [(k[:, :, :P], v[:, :, :P]) for k, v in kv]
    torch.testing.assert_close(model.encode(src, past=prefix)[0], model.encode(hard)[0][:, P:],
                               **TOL)


@settings(max_examples=50)  # each example builds and initialises four prefixes
@given(P=st.integers(1, 3), seed=seeds)
def test_encoder_prefix_from_tokens_alone_equals_a_hard_prompt_in_one_layer_only(P, seed):
    x, src = ids(seed, P).tolist(), ids(seed + 1, 2, 4)
    hard = torch.cat([torch.tensor([x] * 2), src], dim=1)
    for n_layer in (1, 2):
        model = tiny(n_layer=n_layer)
        for mid in (None, 8):  # direct: copied; reparameterized: solved exactly (P <= mid)
            t, prefix = tuned(model, Seq2SeqPrefix, P, mid=mid, kinds=("encoder",))
            assert prefix.init_from_tokens(model, x) < 1e-20
            memory, _ = model.encode(src, past=prefix.prefix()["encoder"])
            same = torch.allclose(memory, model.encode(hard)[0][:, P:], rtol=1e-8, atol=1e-9)
            assert same == (n_layer == 1)  # deeper, a prompt token's keys depend on the input


@given(model=models, n=st.integers(1, 3), seed=seeds)
def test_soft_prompt_of_token_embeddings_equals_a_hard_prompt(model, n, seed):
    x, src, tgt = ids(seed, n).tolist(), ids(seed + 1, 2, 4), ids(seed + 2, 2, 3)
    t = TunedSeq2Seq(model)
    t.add("task", SoftPrompt(model, n, init=x))
    hard = torch.cat([torch.tensor([x] * 2), src], dim=1)
    mask = pad_mask([4, 2], 4, left=True)
    hard_mask = torch.cat([torch.ones(2, n, dtype=torch.bool), mask], dim=1)
    torch.testing.assert_close(t(src, tgt, src_mask=mask)[0],
                               model(hard, tgt, src_mask=hard_mask)[0], **TOL)


def test_cross_prefix_keys_are_attended_by_every_decoder_query():
    model = tiny(n_layer=2)
    t, prefix = tuned(model, Seq2SeqPrefix, 3, kinds=("cross",))
    src, tgt, mask = ids(0, 2, 5), ids(1, 2, 4), pad_mask([5, 2], 5, left=True)
    with written_out(model):
        t(src, tgt, src_mask=mask)
        for block in model.transformer.decoder.h:
            w = block.crossattn.weights  # (B, nh, T, 3 + 5)
            assert bool((w[..., :3] > 0).all())
            assert bool((w[1, :, :, 3:6] == 0).all())  # the padded source keys of row 1


def test_written_out_path_equals_sdpa():
    model = tiny(n_layer=2)
    t, _ = tuned(model, Seq2SeqPrefix, 2)
    src, tgt, mask = ids(0, 2, 5), ids(1, 2, 4), pad_mask([5, 3], 5, left=False)
    fast = t(src, tgt, src_mask=mask)[0]
    with written_out(model):
        torch.testing.assert_close(t(src, tgt, src_mask=mask)[0], fast, **TOL)


@given(kinds=st.sets(st.sampled_from(KINDS)), mid=st.sampled_from([None, 5]), seed=seeds)
def test_a_kind_switched_off_equals_no_prefix_of_that_kind(kinds, mid, seed):
    model = tiny(n_layer=2)
    t, prefix = tuned(model, Seq2SeqPrefix, 2, mid=mid, seed=seed % 100)
    prefix.active = kinds
    src, tgt, mask = ids(seed, 2, 4), ids(seed + 1, 2, 3), pad_mask([4, 2], 4, left=False)
    full = prefix.prefix()
    assert set(full) == kinds
    explicit = {arg: full.get(k) for k, arg in zip(KINDS, ("enc_past", "dec_past", "cross_past"))}
    torch.testing.assert_close(t(src, tgt, src_mask=mask)[0],
                               model(src, tgt, src_mask=mask, **explicit)[0], **TOL)


@pytest.mark.parametrize("kinds", [KINDS, ("encoder",), ("decoder", "cross")])
@pytest.mark.parametrize("mid", [None, 7])
def test_parameter_counts_have_closed_forms_and_export_keeps_outputs(kinds, mid):
    model = tiny(n_layer=2, n_head=2, head_size=3)
    L, C, P = 2, 6, 4
    t, prefix = tuned(model, Seq2SeqPrefix, P, mid=mid, kinds=kinds)
    direct = 2 * L * P * C
    per_kind = direct if mid is None else P * C + (C * mid + mid) + (mid * 2 * L * C + 2 * L * C)
    assert count_parameters(prefix) == (len(kinds) * per_kind,) * 2
    src, tgt = ids(0, 2, 4), ids(1, 2, 3)
    before = t(src, tgt)[0]
    exported = t.add("exported", prefix.export())
    assert count_parameters(exported)[0] == len(kinds) * direct
    torch.testing.assert_close(t(src, tgt, task="exported")[0], before, **TOL)


METHODS = [(SoftPrompt, (3,), {}), (Seq2SeqPrefix, (2,), {}), (Seq2SeqPrefix, (2,), {"mid": 5}),
           (LoRA, (), {"r": 2, "targets": ("attn.c_attn", "crossattn.c_q", "crossattn.c_kv")}),
           (Adapter, (), {"bottleneck": 3})]


@pytest.mark.parametrize("cls, args, kw", METHODS)
def test_gradients_reach_only_the_task_parameters(cls, args, kw):
    model = tiny(n_layer=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t, method = tuned(model, cls, *args, **kw)
    src, tgt = ids(0, 2, 4), ids(1, 2, 3)
    _, loss, _ = t(src, tgt, targets=tgt, src_mask=pad_mask([4, 3], 4, left=True))
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    torch.optim.SGD(t.parameters(), lr=0.1).step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    if cls in (LoRA, Adapter):  # the hooks reach the encoder, the decoder and cross-attention
        hooked = {name.split(".")[1] for name, _ in method.hooks()}
        assert hooked == {"encoder", "decoder"}
        assert any("crossattn" in name for name, _ in method.hooks())


def test_bad_inputs_raise_value_errors():
    model = tiny(n_layer=2, n_head=2, head_size=3)
    src, tgt = ids(0, 2, 4), ids(1, 2, 3)
    good = rand_past(model, 1, 2, 0)
    bad_heads = [(torch.zeros(1, 3, 2, 2, dtype=DTYPE),) * 2] * 2
    for kw in [dict(enc_past=good[:1]), dict(dec_past=good[:1]), dict(cross_past=good[:1]),
               dict(enc_past=bad_heads), dict(dec_past=bad_heads), dict(cross_past=bad_heads),
               dict(cross_past=rand_past(model, 3, 2, 0)), dict(src_mask=torch.ones(2, 4)),
               dict(src_mask=torch.ones(2, 5).bool()), dict(enc_past=rand_past(model, 1, 21, 0))]:
        with pytest.raises(ValueError):
            model(src, tgt, **kw)
    with pytest.raises(ValueError):
        Seq2SeqPrefix(model, 2, kinds=("encoder", "middle"))
    t = TunedSeq2Seq(model)
    t.add("gpt_prefix", Prefix(model, 2))
    with pytest.raises(ValueError):
        t(src, tgt)


@settings(max_examples=50)  # each example runs many decoding steps
@given(lengths=st.lists(st.integers(1, 5), min_size=2, max_size=3), left=st.booleans(), seed=seeds)
def test_batched_generation_with_padding_equals_each_row_alone(lengths, left, seed):
    model = tiny(n_layer=2)
    t, _ = tuned(model, Seq2SeqPrefix, 2, seed=seed % 50)
    B, S = len(lengths), max(lengths)
    src, mask = ids(seed, B, S), pad_mask(lengths, S, left)
    out = generate_seq2seq(t, src, 6, src_mask=mask, bos_id=1, stop_ids=(2,), pad_id=0)
    for i in range(B):
        alone = generate_seq2seq(t, src[i:i + 1, mask[i]], 6, bos_id=1, stop_ids=(2,), pad_id=0)
        assert torch.equal(out[i, :alone.size(1)], alone[0])
        assert bool((out[i, alone.size(1):] == 0).all())


def test_generation_is_greedy_decoding_without_a_cache():
    model = tiny(n_layer=2)
    src = ids(3, 2, 5)
    past = dict(enc_past=rand_past(model, 1, 2, 0), dec_past=rand_past(model, 1, 2, 1),
                cross_past=rand_past(model, 1, 2, 2))
    out = generate_seq2seq(model, src, 5, bos_id=1, **past)
    tgt = torch.ones(2, 1, dtype=torch.long)
    for _ in range(5):  # re-run the whole decoder every step
        tgt = torch.cat([tgt, model(src, tgt, **past)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, tgt[:, 1:])
