"""Attention with keys in front: the properties behind lessons 02 and 03.

Lesson 02 (attention by hand): shapes, rows summing to 1, exactly-zero weight on masked keys,
the fused SDPA path equal to the written-out one for every mask. Lesson 03 (prefix attention):
the causal mask is aligned to the lower right when P keys sit in front, a batch-1 prefix
broadcasts, gradients flow into the prefix (gradcheck), bad prefixes fail with a clear message.
Run alone: `python -m pytest tests/test_attention.py -q`.
"""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx import MultiHeadAttention, attention, build_mask, causal_mask, fast_attention
from strategies import DTYPE, dims, key_masks, randn, seeds

TOL = 1e-12
MASK_KINDS = ["none", "causal", "padding", "causal+padding"]


def make_mask(kind, T, key_mask):
    """The boolean mask (or None) for one of MASK_KINDS; `key_mask` is (B, S)."""
    S = key_mask.size(1)
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(T, S)
    return build_mask(T, key_mask, causal=(kind == "causal+padding"))


@st.composite
def qkv_and_mask(draw, cross=False):
    """q (B, H, T, D), k and v (B, H, S, D) with S = P + T (self) or any 1..6 (cross), a mask kind
    and a random key mask (B, S)."""
    d, seed = draw(dims()), draw(seeds)
    S = draw(st.integers(1, 6)) if cross else d.P + d.T
    q = randn(seed, d.B, d.H, d.T, d.D)
    k = randn(seed + 1, d.B, d.H, S, d.D)
    v = randn(seed + 2, d.B, d.H, S, d.D)
    kinds = ["none", "padding"] if cross else MASK_KINDS
    return q, k, v, draw(st.sampled_from(kinds)), draw(key_masks(d.B, S))


# ----------------------------------------------------------------------------- the mask rule

@given(T=st.integers(1, 6), P=st.integers(0, 5))
def test_causal_mask_is_aligned_lower_right(T, P):
    """Query i sees key j iff j <= i + P: the lower-right triangle, not is_causal's upper-left."""
    S = P + T
    m = causal_mask(T, S)
    assert m.shape == (T, S) and m.dtype == torch.bool
    assert torch.equal(m, torch.ones(T, S, dtype=torch.bool).tril(diagonal=P))
    assert m[-1].all()  # the newest token sees every key
    if P > 0:
        upper_left = torch.ones(T, S, dtype=torch.bool).tril()
        assert not torch.equal(m, upper_left)  # is_causal=True would hide the current tokens


@given(data=st.data())
def test_build_mask_combines_causal_and_padding(data):
    d = data.draw(dims())
    S = d.P + d.T
    km = data.draw(key_masks(d.B, S))
    m = build_mask(d.T, km)
    assert m.shape == (d.B, 1, d.T, S)
    assert torch.equal(m, km[:, None, None, :] & causal_mask(d.T, S))
    assert torch.equal(build_mask(d.T, km, causal=False), km[:, None, None, :])  # broadcasts over T
    assert build_mask(d.T, None) is None  # no padding: nothing is materialised


# ----------------------------------------------------------------------------- attention()

@given(x=qkv_and_mask())
def test_attention_shapes(x):
    q, k, v, kind, km = x
    B, H, T, D = q.shape
    mask = make_mask(kind, T, km)
    out, w = attention(q, k, v, mask)
    assert out.shape == (B, H, T, D)
    assert w.shape == (B, H, T, k.size(2))
    assert fast_attention(q, k, v, mask, causal=kind == "causal").shape == (B, H, T, D)


@given(x=qkv_and_mask())
def test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero(x):
    q, k, v, kind, km = x
    mask = make_mask(kind, q.size(2), km)
    out, w = attention(q, k, v, mask)
    full = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.expand_as(w)
    assert (w[~full] == 0.0).all()  # exactly zero, not merely small
    assert (w >= 0).all()
    visible = full.any(dim=-1)  # (B, H, T): rows with at least one key to look at
    sums = w.sum(dim=-1)
    assert torch.allclose(sums[visible], torch.ones_like(sums[visible]), atol=TOL, rtol=0)
    assert (w[~visible] == 0.0).all()  # nothing to look at: an all-zero row ...
    assert (out[~visible] == 0.0).all()  # ... and a zero output, like the fused kernel


@given(x=qkv_and_mask())
def test_fast_attention_equals_written_out_self(x):
    q, k, v, kind, km = x
    T = q.size(2)
    ref, _ = attention(q, k, v, make_mask(kind, T, km))
    if kind == "causal":  # no tensor: the fast path uses the lower-right bias object
        fast = fast_attention(q, k, v)
    else:
        fast = fast_attention(q, k, v, make_mask(kind, T, km), causal=False)
    assert (fast - ref).abs().max() <= TOL


@given(x=qkv_and_mask(cross=True))
def test_fast_attention_equals_written_out_cross(x):
    q, k, v, kind, km = x
    mask = make_mask(kind, q.size(2), km)
    ref, _ = attention(q, k, v, mask)
    assert (fast_attention(q, k, v, mask, causal=False) - ref).abs().max() <= TOL


@given(d=dims(), seed=seeds)
def test_prefix_is_just_keys_in_front(d, seed):
    """Attention(Q, [P_K; K], [P_V; V]) with the lower-right mask: the last query row sees all."""
    q = randn(seed, d.B, d.H, d.T, d.D)
    pk, k = randn(seed + 1, d.B, d.H, d.P, d.D), randn(seed + 2, d.B, d.H, d.T, d.D)
    pv, v = randn(seed + 3, d.B, d.H, d.P, d.D), randn(seed + 4, d.B, d.H, d.T, d.D)
    K, V = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
    out = fast_attention(q, K, V)
    last, _ = attention(q[:, :, -1:], K, V)  # one query, no mask: sees every key
    assert (out[:, :, -1:] - last).abs().max() <= TOL
    first, _ = attention(q[:, :, :1], K[:, :, :d.P + 1], V[:, :, :d.P + 1])  # prefix + itself
    assert (out[:, :, :1] - first).abs().max() <= TOL


# ----------------------------------------------------------------------------- MultiHeadAttention

def mha(H, D, seed, cross=False):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MultiHeadAttention(H * D, H, cross=cross).to(DTYPE).eval()


@given(d=dims(), seed=seeds, past_batch_1=st.booleans())
def test_mha_self_attention_shapes_and_present(d, seed, past_batch_1):
    m, C = mha(d.H, d.D, seed), d.H * d.D
    x = randn(seed, d.B, d.T, C)
    pb = 1 if past_batch_1 else d.B
    past = (randn(seed + 1, pb, d.H, d.P, d.D), randn(seed + 2, pb, d.H, d.P, d.D))
    with torch.no_grad():
        y, (k, v) = m(x, past)
    assert y.shape == (d.B, d.T, C)
    assert k.shape == v.shape == (d.B, d.H, d.P + d.T, d.D)  # the next step's cache
    assert torch.equal(k[:, :, :d.P], past[0].expand(d.B, -1, -1, -1))
    assert torch.equal(v[:, :, :d.P], past[1].expand(d.B, -1, -1, -1))


@given(d=dims(), seed=seeds)
def test_mha_batch_1_past_broadcasts_over_rows(d, seed):
    m = mha(d.H, d.D, seed)
    x = randn(seed, d.B, d.T, d.H * d.D)
    past = (randn(seed + 1, 1, d.H, d.P, d.D), randn(seed + 2, 1, d.H, d.P, d.D))
    expanded = tuple(t.expand(d.B, -1, -1, -1).clone() for t in past)
    with torch.no_grad():
        assert (m(x, past)[0] - m(x, expanded)[0]).abs().max() <= TOL


@given(d=dims(), seed=seeds, Tc=st.integers(1, 6), past_batch_1=st.booleans())
def test_mha_cross_attention_shapes_and_cached_keys(d, seed, Tc, past_batch_1):
    """Cross-attention: with context, with context after a prefix, and from cached keys alone."""
    m, C = mha(d.H, d.D, seed, cross=True), d.H * d.D
    x, ctx = randn(seed, d.B, d.T, C), randn(seed + 1, d.B, Tc, C)
    pb = 1 if past_batch_1 else d.B
    prefix = (randn(seed + 2, pb, d.H, d.P, d.D), randn(seed + 3, pb, d.H, d.P, d.D))
    with torch.no_grad():
        y, (k, v) = m(x, context=ctx)
        assert y.shape == (d.B, d.T, C) and k.shape == v.shape == (d.B, d.H, Tc, d.D)
        y_cached, kv = m(x, past=(k, v))  # context=None: the cache is the whole key set
        assert (y_cached - y).abs().max() <= TOL and kv[0].shape == k.shape
        yp, (kp, vp) = m(x, past=prefix, context=ctx)
        assert yp.shape == (d.B, d.T, C) and kp.shape == vp.shape == (d.B, d.H, d.P + Tc, d.D)
        assert (m(x, past=(kp, vp))[0] - yp).abs().max() <= TOL


@given(d=dims(), seed=seeds, cross=st.booleans(), padded=st.booleans(), data=st.data())
def test_mha_sdpa_equals_written_out(d, seed, cross, padded, data):
    m, C = mha(d.H, d.D, seed, cross=cross), d.H * d.D
    x = randn(seed, d.B, d.T, C)
    past = (randn(seed + 1, d.B, d.H, d.P, d.D), randn(seed + 2, d.B, d.H, d.P, d.D))
    Tc = data.draw(st.integers(1, 6)) if cross else d.T
    ctx = randn(seed + 3, d.B, Tc, C) if cross else None
    mask = None
    if padded:
        mask = build_mask(d.T, data.draw(key_masks(d.B, d.P + Tc)), causal=not cross)
    with torch.no_grad():
        fast = m(x, past, mask, ctx)[0]
        m.use_sdpa = False
        slow = m(x, past, mask, ctx)[0]
    assert m.weights.shape == (d.B, d.H, d.T, d.P + Tc)
    assert (fast - slow).abs().max() <= TOL


# ----------------------------------------------------------------------------- gradients

@given(d=dims(max_b=2, max_h=2, max_t=3, max_p=3, max_d=3), seed=seeds, padded=st.booleans(),
       data=st.data())
def test_gradcheck_fast_attention_with_prefix(d, seed, padded, data):
    """Gradients reach q, k, v and both prefix tensors through the fused path (float64)."""
    S = d.P + d.T
    t = [randn(seed + i, d.B, d.H, n, d.D, requires_grad=True)
         for i, n in enumerate([d.T, d.T, d.T, d.P, d.P])]
    mask = build_mask(d.T, data.draw(key_masks(d.B, S))) if padded else None

    def f(q, k, v, pk, pv):
        return fast_attention(q, torch.cat([pk, k], 2), torch.cat([pv, v], 2), mask)
    assert torch.autograd.gradcheck(f, t, atol=1e-7, fast_mode=True)


@given(d=dims(max_b=2, max_h=2, max_t=3, max_p=3, max_d=2), seed=seeds, sdpa=st.booleans())
def test_gradcheck_mha_with_prefix(d, seed, sdpa):
    """Through MultiHeadAttention: the input and the prefix keys/values get correct gradients."""
    m = mha(d.H, d.D, seed)
    m.use_sdpa = sdpa
    x = randn(seed, d.B, d.T, d.H * d.D, requires_grad=True)
    pk = randn(seed + 1, 1, d.H, d.P, d.D, requires_grad=True)  # one prefix shared by all rows
    pv = randn(seed + 2, 1, d.H, d.P, d.D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, pk, pv: m(x, (pk, pv))[0], (x, pk, pv), atol=1e-7,
                                    fast_mode=True)


@pytest.mark.parametrize("sdpa", [True, False])
def test_full_gradcheck_mha_with_prefix_and_padding(sdpa):
    """The properties above use gradcheck's fast mode; here one case gets the full Jacobian."""
    m = mha(2, 2, seed=0)
    m.use_sdpa = sdpa
    x = randn(1, 2, 3, 4, requires_grad=True)
    pk, pv = randn(2, 2, 2, 2, 2, requires_grad=True), randn(3, 2, 2, 2, 2, requires_grad=True)
    mask = build_mask(3, torch.tensor([[True, False, False, True, True], [True] * 5]))
    assert torch.autograd.gradcheck(lambda x, pk, pv: m(x, (pk, pv), mask)[0], (x, pk, pv))


# ----------------------------------------------------------------------------- bad inputs

@given(d=dims(), seed=seeds, what=st.sampled_from(["heads", "width", "batch", "rank", "kv"]))
def test_bad_past_raises_with_expected_shape(d, seed, what):
    m = mha(d.H, d.D, seed)
    x = randn(seed, d.B, d.T, d.H * d.D)
    shape = {"heads": (d.B, d.H + 1, d.P, d.D), "width": (d.B, d.H, d.P, d.D + 1),
             "batch": (d.B + 1, d.H, d.P, d.D), "rank": (d.H, d.P, d.D),
             "kv": (d.B, d.H, d.P, d.D)}[what]
    other = (d.B, d.H, d.P + 1, d.D) if what == "kv" else shape  # keys and values disagree
    with pytest.raises(ValueError) as err:
        m(x, (randn(seed, *shape), randn(seed, *other)))
    msg = str(err.value)
    if what == "kv":
        assert str(tuple(shape)) in msg and str(tuple(other)) in msg
    else:
        assert f"({d.B} or 1, {d.H}, P, {d.D})" in msg and str(tuple(shape)) in msg


@given(d=dims(), data=st.data())
def test_bad_key_mask_raises_with_expected_shape(d, data):
    S = d.P + d.T
    bad = data.draw(st.sampled_from([
        torch.ones(d.B, S),  # float, not bool
        torch.ones(d.B, S, dtype=torch.long),
        torch.ones(d.B, 1, S, dtype=torch.bool),  # wrong rank
        torch.ones(d.B, d.T - 1, dtype=torch.bool),  # shorter than the queries
    ]))
    with pytest.raises(ValueError, match=r"shape \(B, S\) with S >= T"):
        build_mask(d.T, bad)


def test_mha_rejects_indivisible_width_and_missing_context():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(7, 2)
    m = MultiHeadAttention(4, 2, cross=True)
    with pytest.raises(ValueError, match="context"):
        m(torch.randn(1, 2, 4))
