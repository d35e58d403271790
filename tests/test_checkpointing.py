"""The two memory options of issue 15 are exact: activation checkpointing (`Config.checkpoint`,
model.run_block) and the chunked LM-head loss (`Config.loss_chunk`, model.lm_head_loss).

Checkpointing: loss and gradients with and without it are equal in float64 for full fine-tuning
and every tuning method (soft prompt, prefix direct and with its MLP, LoRA, adapter, a mixed-task
batch, seq2seq prefixes), over hypothesis-drawn prefix lengths and left padding; the prefix sits
in front once, in the forward and in the recompute alike; dropout draws the same masks; bf16
autocast is recomputed under autocast. Chunked loss: equal to the plain loss and its gradients
(w.r.t. the hidden states and the LM-head weight) for any chunk size, ignored targets included.
Run alone: `python -m pytest tests/test_checkpointing.py -q`.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx import GPT, Config
from minitx.model import lm_head_loss
from minitx.seq2seq import Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, Tuned
from strategies import generic_weights_, pad_mask, randint, randn, row_lengths, seeds

DTYPE, VOCAB = torch.float64, 13
TOL = dict(rtol=0, atol=1e-12)


def config(n_layer=2, **kw):
    return Config(vocab_size=VOCAB, block_size=32, n_layer=n_layer, n_head=2, n_embd=8, **kw)


def make(cls=GPT, seed=0, **kw):
    """A float64 model with generic O(1) weights, in training mode (checkpointing is a training
    option; dropout is 0 unless asked for)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return generic_weights_(cls(config(**kw)).to(DTYPE)).train()


def loss_and_grads(model, params, run, checkpoint):
    """Loss and d loss / d params with `model.config.checkpoint` set as asked."""
    model.config.checkpoint = checkpoint
    loss = run()
    return [loss.detach()] + list(torch.autograd.grad(loss, params, allow_unused=True,
                                                      materialize_grads=True))


def assert_same(model, params, run, **tol):
    plain = loss_and_grads(model, params, run, False)
    recomputed = loss_and_grads(model, params, run, True)
    for a, b in zip(plain, recomputed):
        torch.testing.assert_close(a, b, **(tol or TOL))


def random_params_(module, seed, std=0.5):
    """Generic values for a task's parameters (LoRA's B and an adapter's up-projection start at
    zero, which would hide a missing hook in the recompute)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return module


@st.composite
def batches(draw, max_b=3, max_t=6):
    """(idx, left-padding mask or None, targets with -1 on padding and at random places)."""
    B, T, seed = draw(st.integers(1, max_b)), draw(st.integers(1, max_t)), draw(seeds)
    idx, targets = randint(seed, VOCAB, B, T), randint(seed + 1, VOCAB, B, T)
    mask = pad_mask(draw(row_lengths(B, T)), T, "left") if draw(st.booleans()) else None
    if mask is not None:
        targets = targets.masked_fill(~mask, -1)
    targets[:, 0] = torch.where(torch.rand(B, generator=torch.Generator().manual_seed(seed)) < 0.5,
                                -1, targets[:, 0])
    targets[:, -1] = idx[:, -1]  # the last token is real in every row: never all ignored
    return idx, mask, targets


# ----------------------------------------------------------------------------- full fine-tuning

@given(batch=batches(), P=st.integers(0, 4), n_layer=st.integers(1, 3), seed=seeds)
def test_full_finetuning_gradients_equal_with_a_prefix_and_padding(batch, P, n_layer, seed):
    idx, mask, targets = batch
    model = make(n_layer=n_layer, seed=seed % 4)
    B = idx.size(0)
    prefix = [(randn(seed + i, 1, 2, P, 4), randn(seed + 7 + i, 1, 2, P, 4))
              for i in range(n_layer)]
    if mask is not None:
        mask = torch.cat([torch.ones(B, P, dtype=torch.bool), mask], 1)  # (B, P + T)
    params = list(model.parameters())
    assert_same(model, params, lambda: model(idx, targets, past=prefix, attention_mask=mask)[1])


# ----------------------------------------------------------------------------- every tuning method

METHODS = {
    "soft_prompt": lambda base, n: SoftPrompt(base, n),
    "prefix": lambda base, n: Prefix(base, n),
    "prefix_mlp": lambda base, n: Prefix(base, n, mid=6),
    "prefix_layer_norm": lambda base, n: Prefix(base, n, layers=[1], layer_norm=True),
    "lora": lambda base, n: LoRA(base, r=n, targets=("attn.c_attn", "mlp.c_fc")),
    "adapter": lambda base, n: Adapter(base, bottleneck=n),
}


@pytest.mark.parametrize("kind", sorted(METHODS))
@settings(max_examples=60)
@given(batch=batches(), n=st.integers(1, 4), seed=seeds)
def test_tuning_method_gradients_equal(kind, batch, n, seed):
    idx, mask, targets = batch
    base = make(seed=seed % 4)
    tuned = Tuned(base)
    method = random_params_(tuned.add("task", METHODS[kind](base, n)), seed)
    params = list(method.parameters())
    assert_same(base, params, lambda: tuned(idx, targets, attention_mask=mask)[1])


@settings(max_examples=60)
@given(batch=batches(max_b=4), lengths=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=seeds,
       data=st.data())
def test_mixed_task_batch_gradients_equal(batch, lengths, seed, data):
    """Rows of a prefix task and a soft-prompt task padded to one length, LoRA and an adapter
    hooked on their own rows only: the recompute sees the same per-row hooks."""
    idx, mask, targets = batch
    base = make(seed=seed % 4)
    tuned = Tuned(base)
    tasks = {"prefix": Prefix(base, lengths[0]), "prompt": SoftPrompt(base, lengths[1]),
             "lora": LoRA(base, r=2), "adapter": Adapter(base, bottleneck=3)}
    for i, (name, method) in enumerate(tasks.items()):
        random_params_(tuned.add(name, method), seed + i)
    names = data.draw(st.lists(st.sampled_from(sorted(tasks)), min_size=idx.size(0),
                               max_size=idx.size(0)))
    params = list(tuned.tasks.parameters())
    assert_same(base, params, lambda: tuned(idx, targets, attention_mask=mask, task=names)[1])


@settings(max_examples=60)
@given(P=st.integers(1, 3), S=st.integers(1, 5), T=st.integers(1, 5), mid=st.sampled_from([None, 5]),
       seed=seeds, data=st.data())
def test_seq2seq_prefix_gradients_equal(P, S, T, mid, seed, data):
    """Encoder, decoder and cross prefixes with a padded source: every Stack block recomputed."""
    model = make(Seq2Seq, seed=seed % 4)
    tuned = TunedSeq2Seq(model)
    method = random_params_(tuned.add("task", Seq2SeqPrefix(model, P, mid=mid)), seed)
    B = data.draw(st.integers(1, 3))
    src, tgt = randint(seed, VOCAB, B, S), randint(seed + 1, VOCAB, B, T)
    src_mask = pad_mask(data.draw(row_lengths(B, S)), S, "left")
    params = list(method.parameters())
    assert_same(model, params, lambda: tuned(src, tgt, targets=tgt, src_mask=src_mask)[1])


# ----------------------------------------------------------------------------- what the recompute sees

@given(batch=batches(), P=st.integers(1, 4), n_prompt=st.integers(0, 3), seed=seeds)
def test_the_prefix_is_put_in_front_once_in_forward_and_recompute(batch, P, n_prompt, seed):
    """Every attention call, the forward's and the recompute's, sees P + n_prompt + T keys: the
    prefix is an input of the block, never a cache that the first run already extended."""
    idx, mask, targets = batch
    base = make(seed=seed % 4)
    tuned = Tuned(base)
    random_params_(tuned.add("prefix", Prefix(base, P)), seed)
    if n_prompt:
        tuned.add("prompt", SoftPrompt(base, n_prompt))
    keys = []
    handles = [block.attn.register_forward_hook(lambda m, inputs, out: keys.append(out[1][0].size(2)))
               for block in base.transformer.h]
    base.config.checkpoint = True
    loss = tuned(idx, targets, attention_mask=mask, task="prefix")[1]
    assert keys == [P + idx.size(1)] * 2  # the forward: one call per layer
    loss.backward()
    for h in handles:
        h.remove()
    assert keys == [P + idx.size(1)] * 4  # the recompute ran every block once more, same keys


@settings(max_examples=100)
@given(batch=batches(), seed=seeds)
def test_dropout_masks_are_the_same_in_the_recompute(batch, seed):
    idx, mask, targets = batch
    model = make(seed=seed % 4, dropout=0.3)
    params = list(model.parameters())

    def run():
        torch.manual_seed(seed)
        return model(idx, targets, attention_mask=mask)[1]
    assert_same(model, params, run)
    model.config.checkpoint = False
    with_dropout = run()
    model.eval()
    assert not torch.equal(with_dropout, run())  # dropout really drew masks


@settings(max_examples=30)
@given(batch=batches(), seed=seeds)
def test_bf16_autocast_is_recomputed_under_autocast(batch, seed):
    idx, mask, targets = batch
    model = make(seed=seed % 4).float()
    params = list(model.parameters())

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(idx, targets, attention_mask=mask)[1]
    assert_same(model, params, run, rtol=0, atol=0)  # the same ops in the same order: bit-equal


def test_no_recompute_without_autograd():
    """Generation (no_grad) runs each block once: checkpointing costs nothing there."""
    model = make()
    model.config.checkpoint = True
    calls = []
    model.transformer.h[0].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(randint(0, VOCAB, 2, 3))
    assert calls == [1]


# ----------------------------------------------------------------------------- chunked loss

@given(batch=batches(max_b=3, max_t=9), chunk=st.integers(1, 11), seed=seeds)
def test_chunked_loss_equals_the_plain_loss_and_its_gradients(batch, chunk, seed):
    _, _, targets = batch
    B, T = targets.shape
    h = randn(seed, B, T, 8, requires_grad=True)
    head = torch.nn.Linear(8, VOCAB, bias=False).to(DTYPE)
    plain_logits, plain = lm_head_loss(h, head, targets)
    logits, chunked = lm_head_loss(h, head, targets, chunk)
    assert logits is None
    reference = torch.nn.functional.cross_entropy(plain_logits.flatten(0, 1), targets.flatten(),
                                                  ignore_index=-1)
    torch.testing.assert_close(plain, reference, **TOL)
    torch.testing.assert_close(chunked, plain, **TOL)
    for a, b in zip(torch.autograd.grad(plain, (h, head.weight)),
                    torch.autograd.grad(chunked, (h, head.weight))):
        torch.testing.assert_close(a, b, **TOL)


@settings(max_examples=60)
@given(batch=batches(), chunk=st.integers(1, 7), seed=seeds)
def test_loss_chunk_option_reaches_gpt_tuned_and_seq2seq(batch, chunk, seed):
    """GPT.forward, Tuned.forward (through GPT.head) and Seq2Seq.decode all use the option."""
    idx, mask, targets = batch
    gpt, base, seq = make(seed=seed % 4), make(seed=seed % 4), make(Seq2Seq, seed=seed % 4)
    tuned = Tuned(base)  # freezes `base`
    prefix = random_params_(tuned.add("p", Prefix(base, 2)), seed)
    for model, run, ps in (
            (gpt, lambda: gpt(idx, targets, attention_mask=mask), list(gpt.parameters())),
            (base, lambda: tuned(idx, targets, attention_mask=mask), list(prefix.parameters())),
            (seq, lambda: seq(idx, idx, targets), list(seq.parameters()))):
        model.config.loss_chunk = 0
        plain_logits, plain = run()[:2]
        model.config.loss_chunk = chunk
        logits, chunked = run()[:2]
        assert plain_logits is not None and logits is None
        torch.testing.assert_close(chunked, plain, **TOL)
        grads = [torch.autograd.grad(loss, ps, allow_unused=True, materialize_grads=True)
                 for loss in (plain, chunked)]
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, **TOL)
