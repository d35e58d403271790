"""Issue 14 for the core: GPT, Seq2Seq and generate refuse bad input up front, with an error whose
type is asserted and whose message names the argument (and, where it helps, the fix).

Also the two promises that are not errors: padding stays inert even when its input is NaN (on the
written-out and the SDPA path), and the checks cost the decoding loop nothing: token ids are
range-checked on the prompt only, and the position budget is checked before the first step.
Run alone: `python -m pytest tests/test_bad_inputs_model.py -q`.
"""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx import GPT, Config, generate
from minitx.seq2seq import Seq2Seq, Seq2SeqPrefix, generate_seq2seq
from minitx.tuning import Prefix, SoftPrompt, Tuned
from strategies import (VOCAB, generic_weights_, pad_mask, randint, randn, random_prefix,
                        row_lengths, seeds, written_out)

BLOCK = 16


def make(cls=GPT, n_layer=2, dtype=torch.float64):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = Config(vocab_size=VOCAB, block_size=BLOCK, n_layer=n_layer, n_head=2, n_embd=8)
        return generic_weights_(cls(config).to(dtype)).eval()


MODEL = make()


def raises(error, *words):
    """pytest.raises(error) that also checks every word appears in the message."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(error)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc):
            self.ctx.__exit__(*exc)
            for word in words:
                assert word in str(self.info.value), (word, str(self.info.value))
            return True
    return Check()


# ----------------------------------------------------------------------------- token ids

@given(bad=st.one_of(st.integers(-10**6, -1), st.integers(VOCAB, 10**6)), B=st.integers(1, 3),
       T=st.integers(2, 6), seed=seeds, data=st.data())
def test_token_ids_outside_the_vocabulary_name_the_id_and_the_vocab_size(bad, B, T, seed, data):
    idx = randint(seed, VOCAB, B, T)
    idx[data.draw(st.integers(0, B - 1)), data.draw(st.integers(0, T - 1))] = bad
    with raises(ValueError, "idx", f"token id {bad}", f"vocab_size={VOCAB}"):
        MODEL(idx)
    with raises(ValueError, "idx", str(bad)):  # also after a prefix, when more than one token
        MODEL(idx, past=random_prefix(MODEL.config, B, 2, seed))
    with raises(ValueError, "idx", str(bad)):
        generate(MODEL, idx, 2)


def test_only_the_prompt_is_range_checked_so_decoding_never_waits_on_a_sync(monkeypatch):
    """The range check reads min and max back from the device: once per generate call, for the
    prompt; a decoding step feeds the model's own argmax and is not checked again."""
    calls = []
    aminmax = torch.Tensor.aminmax
    monkeypatch.setattr(torch.Tensor, "aminmax", lambda t, *a, **k: calls.append(1) or aminmax(t))
    generate(MODEL, randint(0, VOCAB, 2, 3), 6)
    assert len(calls) == 1


@pytest.mark.parametrize("idx, words", [
    (torch.zeros(5, dtype=torch.long), ["idx", "(B, T)", "x[None]"]),  # one row, no batch dim
    (torch.zeros(2, 3), ["idx", "torch.long", "float32"]),
    (torch.zeros(2, 0, dtype=torch.long), ["idx", "T >= 1", "[2, 0]"]),
    (torch.zeros(2, 3, 1, dtype=torch.long), ["idx", "(B, T)"]),
])
def test_idx_of_the_wrong_shape_or_dtype_is_refused(idx, words):
    with raises(TypeError, *words):
        MODEL(idx)


def test_inputs_embeds_of_another_dtype_or_no_tokens_are_refused():
    emb = MODEL.transformer.wte(randint(0, VOCAB, 2, 3))
    with raises(ValueError, "inputs_embeds", "torch.float32", "torch.float64"):
        make(dtype=torch.float32)(inputs_embeds=emb)  # float64 embeddings, float32 model
    with raises(ValueError, "inputs_embeds", "T >= 1", "(2, 0, 8)"):
        MODEL(inputs_embeds=emb[:, :0])
    with raises(ValueError, "inputs_embeds", "(B, T, 8)"):
        MODEL(inputs_embeds=emb[..., :4])


# ----------------------------------------------------------------------------- past

@pytest.mark.parametrize("n_layer", [1, 2, 3])
def test_a_single_kv_pair_for_the_whole_model_is_refused(n_layer):
    model = make(n_layer=n_layer)
    k, v = random_prefix(model.config, 1, 2, 0)[0]
    with raises(ValueError, "past", "one (k, v) pair", f"expected {n_layer} layers"):
        model(randint(0, VOCAB, 1, 3), past=(k, v))


def test_a_seq2seq_prefix_dict_as_past_names_the_fix():
    s2s = make(Seq2Seq)
    prefix = Seq2SeqPrefix(s2s, 2).prefix()  # {kind: per-layer list}
    src, tgt = randint(0, VOCAB, 2, 4), randint(1, VOCAB, 2, 3)
    with raises(ValueError, "enc_past", "a dict", "Seq2SeqPrefix", "TunedSeq2Seq"):
        s2s(src, tgt, enc_past=prefix)
    with raises(ValueError, "dec_past", "a dict"):
        s2s(src, tgt, dec_past=prefix)
    with raises(ValueError, "cross_past", "one (k, v) pair"):
        s2s(src, tgt, cross_past=prefix["cross"][0])
    with raises(ValueError, "past", "a dict", "Seq2SeqPrefix"):
        MODEL(randint(0, VOCAB, 2, 3), past=prefix)


# ----------------------------------------------------------------------------- targets

@pytest.mark.parametrize("chunk", [0, 2])
def test_targets_of_minus_100_say_that_minitx_ignores_minus_1(chunk):
    idx = randint(0, VOCAB, 2, 4)
    targets = idx.clone()
    targets[:, :2] = -100
    MODEL.config.loss_chunk = chunk
    try:
        with raises(ValueError, "targets", "-1", "not -100", "-100"):
            MODEL(idx, targets)
    finally:
        MODEL.config.loss_chunk = 0


@given(bad=st.one_of(st.integers(-10**6, -2), st.integers(VOCAB, 10**6)), seed=seeds)
def test_target_ids_outside_the_vocabulary_are_refused(bad, seed):
    idx = randint(seed, VOCAB, 2, 4)
    targets = idx.clone()
    targets[1, 2] = bad
    with raises(ValueError, "targets", f"[0, {VOCAB})", str(bad)):
        MODEL(idx, targets)


@pytest.mark.parametrize("targets, words", [
    (torch.zeros(2, 5, dtype=torch.long), ["targets", "(2, 4)", "(2, 5)"]),
    (torch.zeros(2, 4), ["targets", "torch.long", "float32"]),
    (torch.zeros(8, dtype=torch.long), ["targets", "(2, 4)"]),
])
def test_targets_of_the_wrong_shape_or_dtype_are_refused(targets, words):
    with raises(ValueError, *words):
        MODEL(randint(0, VOCAB, 2, 4), targets)


@given(B=st.integers(1, 3), T=st.integers(1, 6), chunk=st.integers(0, 3), seed=seeds)
def test_a_batch_without_target_tokens_raises_instead_of_returning_nan(B, T, chunk, seed):
    idx = randint(seed, VOCAB, B, T)
    no_targets = torch.full((B, T), -1)
    for model in (MODEL, make(Seq2Seq)):
        model.config.loss_chunk = chunk
        try:
            with raises(ValueError, "targets", "all -1", "no target tokens"):
                model(idx, no_targets) if model is MODEL else model(idx, idx, no_targets)
        finally:
            model.config.loss_chunk = 0


# ----------------------------------------------------------------------------- padding is inert

@given(B=st.integers(1, 3), T=st.integers(2, 6), P=st.integers(0, 3), seed=seeds,
       side=st.sampled_from(["left", "right"]), sdpa=st.booleans(), data=st.data())
def test_nan_in_a_padded_position_does_not_reach_real_positions(B, T, P, seed, side, sdpa, data):
    real = pad_mask(data.draw(row_lengths(B, T)), T, side)
    mask = torch.cat([torch.ones(B, P, dtype=torch.bool), real], 1)
    past = random_prefix(MODEL.config, B, P, seed) if P else None
    emb = randn(seed, B, T, 8)
    poisoned = emb.masked_fill(~real[..., None], float("nan"))
    if sdpa:
        clean, dirty = (MODEL(inputs_embeds=e, past=past, attention_mask=mask)[0]
                        for e in (emb, poisoned))
    else:
        with written_out(MODEL):
            clean, dirty = (MODEL(inputs_embeds=e, past=past, attention_mask=mask)[0]
                            for e in (emb, poisoned))
    assert torch.isfinite(dirty[real]).all()
    torch.testing.assert_close(dirty[real], clean[real], rtol=0, atol=1e-12)


@given(B=st.integers(1, 3), S=st.integers(2, 5), seed=seeds, data=st.data())
def test_nan_in_a_padded_source_position_stays_out_of_seq2seq(B, S, seed, data):
    s2s = make(Seq2Seq)
    real = pad_mask(data.draw(row_lengths(B, S)), S, data.draw(st.sampled_from(["left", "right"])))
    emb = randn(seed, B, S, 8)
    tgt = randint(seed, VOCAB, B, 3)
    outs = []
    for e in (emb, emb.masked_fill(~real[..., None], float("nan"))):
        memory, _ = s2s.encode(inputs_embeds=e, src_mask=real)
        outs.append(s2s.decode(tgt, memory, src_mask=real)[0])
    assert torch.isfinite(outs[1]).all()
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- generate

PROMPT = randint(1, VOCAB, 2, 3)


@pytest.mark.parametrize("kw, error, words", [
    (dict(temperature=-0.5), ValueError, ["temperature", ">= 0", "-0.5"]),
    (dict(temperature="hot"), TypeError, ["temperature", "number"]),
    (dict(temperature=1.0, top_k=0), ValueError, ["top_k", ">= 1", "0"]),
    (dict(temperature=1.0, top_k=2.5), TypeError, ["top_k", "an int", "2.5"]),
    (dict(temperature=1.0, top_k=True), TypeError, ["top_k", "bool"]),
    (dict(temperature=1.0, top_p=1.5), ValueError, ["top_p", "(0, 1]", "1.5"]),
    (dict(temperature=1.0, top_p=0.0), ValueError, ["top_p", "(0, 1]"]),
    (dict(temperature=1.0, top_p="0.9"), TypeError, ["top_p", "number"]),
    (dict(stop_ids=[2.0]), TypeError, ["stop_ids", "an int", "2.0"]),
    (dict(stop_ids=[-3]), ValueError, ["stop_ids", ">= 0", "-3"]),
    (dict(stop_ids=7), TypeError, ["stop_ids", "list of token ids", "7"]),
    (dict(max_new_tokens=2.0), TypeError, ["max_new_tokens", "an int"]),
])
def test_generate_options_are_refused_before_any_step(kw, error, words):
    calls = []
    handle = MODEL.register_forward_hook(lambda *a: calls.append(1))
    try:
        with raises(error, *words):
            generate(MODEL, PROMPT, kw.pop("max_new_tokens", 3), **kw)
    finally:
        handle.remove()
    assert calls == []


@given(top_p=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True)),
       top_k=st.integers(max_value=0))
def test_every_bad_top_p_and_top_k_is_refused(top_p, top_k):
    with raises(ValueError, "top_p"):
        generate(MODEL, PROMPT, 2, temperature=1.0, top_p=top_p)
    with raises(ValueError, "top_k"):
        generate(MODEL, PROMPT, 2, temperature=1.0, top_k=top_k)


def test_an_empty_prompt_is_refused():
    with raises(TypeError, "idx", "T >= 1"):
        generate(MODEL, torch.zeros(2, 0, dtype=torch.long), 2)


@given(B=st.integers(2, 3), T=st.integers(2, 5), data=st.data())
def test_a_right_padded_attention_mask_is_refused(B, T, data):
    lengths = data.draw(row_lengths(B, T).filter(lambda n: min(n) < T))
    with raises(ValueError, "attention_mask", "left-padded", "padding"):
        generate(MODEL, randint(0, VOCAB, B, T), 2, attention_mask=pad_mask(lengths, T, "right"))


@given(T=st.integers(1, 6), P=st.integers(0, 4), extra=st.integers(1, 5), seed=seeds)
def test_the_position_budget_is_checked_before_the_first_step(T, P, extra, seed):
    """prompt + keys in front + max_new_tokens - 1 positions (the last token is never fed back)
    must fit in block_size: the largest budget works, one more raises before any step and says
    which number to lower and to what."""
    prefix = random_prefix(MODEL.config, 1, P, seed) if P else None
    idx = randint(seed, VOCAB, 1, T)
    largest = BLOCK - P - T + 1
    assert generate(MODEL, idx, largest, past=prefix).shape == (1, largest)
    calls = []
    handle = MODEL.register_forward_hook(lambda *a: calls.append(1))
    try:
        with raises(ValueError, "max_new_tokens", f"block_size={BLOCK}", f"to {largest}"):
            generate(MODEL, idx, largest + extra, past=prefix)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("method", [lambda b: Prefix(b, 3), lambda b: SoftPrompt(b, 3)])
def test_a_tuned_models_virtual_tokens_count_in_the_budget(method):
    """Tuned.keys_in_front(task=...) tells generate how many keys sit before the prompt."""
    base = make()
    tuned = Tuned(base)
    tuned.add("task", method(base))
    idx = randint(0, VOCAB, 1, 4)
    largest = BLOCK - 3 - 4 + 1
    assert generate(tuned, idx, largest, task="task").shape == (1, largest)
    with raises(ValueError, "max_new_tokens", "3 keys in front", f"to {largest}"):
        generate(tuned, idx, largest + 1, task="task")


def test_seq2seq_generation_checks_its_options_and_source_ids():
    s2s = make(Seq2Seq)
    src = randint(0, VOCAB, 2, 4)
    with raises(ValueError, "temperature"):
        generate_seq2seq(s2s, src, 3, temperature=-1.0)
    with raises(ValueError, "src", f"vocab_size={VOCAB}"):
        generate_seq2seq(s2s, src + VOCAB, 3)
