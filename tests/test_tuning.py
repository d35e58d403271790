"""Tests of minitx.tuning: what the prompt-tuning, prefix-tuning, shoot-out and multi-task-serving
lessons rely on, proved on tiny float64 models.

* Prompt tuning: a soft prompt made of real tokens' embeddings *is* that hard prompt (outputs and
  loss, which never counts virtual positions); logits line up with the real tokens.
* Prefix tuning: a prefix made of the frozen model's own keys/values for real tokens *is* that hard
  prompt; the reparameterization MLP reproduces it up to its fit error; `export()` drops the MLP
  and keeps the outputs; a prefix is built once per `generate` call.
* Shoot-out (prompt vs prefix vs LoRA vs adapters): training touches only the task's parameters
  and leaves the base bit-identical; LoRA and adapters start as the identity; LoRA merges and
  unmerges; trainable-parameter counts match their closed forms and `report()`.
* Multi-task serving: a batch whose rows use different tasks (and left padding) gives each row
  exactly what that row gets alone, for forward and greedy generation; adapters round-trip through
  small files checked against the base model's fingerprint, written atomically.
"""
import copy
import functools
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx import GPT, Config
from minitx.generate import generate
from minitx.tuning import (Adapter, LoRA, Prefix, SoftPrompt, Tuned, count_parameters, report)
from strategies import generic_weights_

DTYPE = torch.float64
CFG = Config(vocab_size=23, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
seeds = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------------------- helpers

def make_base(config=CFG, seed=0):
    """A seeded float64 GPT with generic O(1) weights (GPT-2's 0.02 init would make a tiny model
    almost input-independent, so equalities could pass for the wrong reason)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = generic_weights_(GPT(config).to(DTYPE).eval())
    return model.requires_grad_(False)


@functools.lru_cache(maxsize=None)
def shared_base():
    """One base for the read-only tests (never trained, merged or mutated)."""
    return make_base()


def perturb(method, seed, std=0.3):
    """Give every parameter of a task generic values (LoRA's B and an adapter's up-projection start
    at zero, which would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return method


def ids(seed, *shape, high=CFG.vocab_size):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def close(a, b, tol):
    torch.testing.assert_close(a, b, atol=tol, rtol=0)


def ce64(logits, targets):
    """lm_loss's cross-entropy in float64 (lm_loss itself computes in fp32)."""
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                             ignore_index=-1)


def trainable(module):
    return [p for p in module.parameters() if p.requires_grad]


# The methods of the shoot-out, as factories of a task module for a base.
METHODS = {
    "soft_prompt": lambda b: SoftPrompt(b, 4),
    "prefix_direct": lambda b: Prefix(b, 3),
    "prefix_mlp": lambda b: Prefix(b, 3, mid=8),
    "prefix_layers_layer_norm": lambda b: Prefix(b, 2, layers=[1], layer_norm=True),
    "lora": lambda b: LoRA(b, r=2, alpha=4),
    "adapter": lambda b: Adapter(b, bottleneck=4),
}


def batch_for(method, seed=0, B=3, T=6):
    idx = ids(seed, B, T)
    return idx, ids(seed + 1, B, T)


# ----------------------------------------------------------------------------- the shoot-out

@pytest.mark.parametrize("kind", sorted(METHODS))
def test_training_updates_only_the_task_and_leaves_the_base_bit_identical(kind):
    base = make_base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = Tuned(base)
    method = tuned.add("task", METHODS[kind](base))
    assert all(p.dtype == DTYPE for p in method.parameters())  # stored at the base's precision
    idx, targets = batch_for(method)
    opt = torch.optim.AdamW(trainable(tuned), lr=1e-2)
    assert {id(p) for p in trainable(tuned)} == {id(p) for p in method.parameters()}
    losses = []
    for _ in range(4):
        _, loss, _ = tuned(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] != losses[0]
    assert all(p.grad is not None for p in method.parameters())
    assert all(p.grad is None and not p.requires_grad for p in base.parameters())
    after = base.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("kind", ["lora", "adapter"])
@given(seed=seeds, B=st.integers(1, 3), T=st.integers(1, 8), padded=st.booleans())
def test_lora_and_adapter_start_as_the_identity(kind, seed, B, T, padded):
    base = shared_base()
    tuned = Tuned(base)
    tuned.add("task", METHODS[kind](base))
    idx = ids(seed, B, T)
    mask = None
    if padded:
        lengths = ids(seed + 1, B, high=T) + 1
        mask = torch.arange(T) >= T - lengths[:, None]  # left padding
    assert torch.equal(tuned(idx, attention_mask=mask)[0], base(idx, attention_mask=mask)[0])


@given(seed=seeds, B=st.integers(1, 3), T=st.integers(1, 8))
def test_lora_merge_equals_hooks_and_unmerge_restores(seed, B, T):
    base = copy.deepcopy(shared_base())  # merge writes into the weights: use a private copy
    original = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = Tuned(base)
    lora = tuned.add("lora", LoRA(base, r=3, alpha=6, targets=("c_attn", "mlp.c_fc")))
    perturb(lora, seed)
    idx = ids(seed, B, T)
    hooked = tuned(idx)[0]
    assert not torch.equal(hooked, base(idx)[0])
    lora.merge(tuned)
    assert lora.merged and lora.hooks() == []  # no hook: the frozen layers carry ΔW themselves
    close(base(idx)[0], hooked, 1e-10)
    close(tuned(idx)[0], hooked, 1e-10)
    with pytest.raises(ValueError, match="already merged"):
        lora.merge(tuned)
    lora.unmerge(tuned)
    assert not lora.merged
    for k, v in base.state_dict().items():
        close(v, original[k], 1e-12)
    close(tuned(idx)[0], hooked, 1e-10)
    with pytest.raises(ValueError, match="already unmerged"):
        lora.unmerge(tuned)


# ----------------------------------------------------------------------------- prompt tuning

@given(prompt=st.lists(st.integers(0, CFG.vocab_size - 1), min_size=1, max_size=5),
       n_tokens=st.integers(1, 6), B=st.integers(1, 3), T=st.integers(1, 8), seed=seeds)
def test_soft_prompt_of_real_embeddings_equals_the_hard_prompt(prompt, n_tokens, B, T, seed):
    base = shared_base()
    tuned = Tuned(base)
    tuned.add("p", SoftPrompt(base, n_tokens, init=prompt))
    hard = torch.tensor((prompt * n_tokens)[:n_tokens]).expand(B, -1)  # (B, n)
    idx, targets = ids(seed, B, T), ids(seed + 1, B, T)
    targets[:, 0] = -1 if T > 1 else targets[:, 0]  # an ignored position among the real ones too
    logits, loss, _ = tuned(idx, targets)
    assert logits.shape == (B, T, CFG.vocab_size)  # virtual positions never reach the caller
    ref_logits, ref_loss, _ = base(torch.cat([hard, idx], 1),
                                   torch.cat([torch.full_like(hard, -1), targets], 1))
    close(logits, ref_logits[:, n_tokens:], 1e-12)
    # the loss counts only the real tokens' targets (lm_loss works in fp32: compare at fp32, then
    # the same cross-entropy in float64 at full precision)
    close(loss, ref_loss, 1e-5)
    close(ce64(logits, targets), ce64(ref_logits[:, n_tokens:], targets), 1e-12)


# ----------------------------------------------------------------------------- prefix tuning

@given(prompt=st.lists(st.integers(0, CFG.vocab_size - 1), min_size=1, max_size=5),
       P=st.integers(1, 6), B=st.integers(1, 3), T=st.integers(1, 8), seed=seeds,
       layers=st.sampled_from([None, [0, 1], [1, 0]]))
def test_prefix_of_real_activations_equals_the_hard_prompt(prompt, P, B, T, seed, layers):
    base = shared_base()
    tuned = Tuned(base)
    prefix = tuned.add("p", Prefix(base, P, layers=layers))
    assert prefix.init_from_tokens(base, prompt) == 0.0
    hard = torch.tensor((prompt * P)[:P]).expand(B, -1)
    idx, targets = ids(seed, B, T), ids(seed + 1, B, T)
    logits, loss, present = tuned(idx, targets)
    ref_logits, ref_loss, _ = base(torch.cat([hard, idx], 1),
                                   torch.cat([torch.full_like(hard, -1), targets], 1))
    close(logits, ref_logits[:, P:], 1e-10)
    close(loss, ref_loss, 1e-5)  # lm_loss works in fp32
    assert all(k.shape == (B, CFG.n_head, P + T, CFG.n_embd // CFG.n_head) for k, _ in present)


@settings(max_examples=8)
@given(prompt=st.lists(st.integers(0, CFG.vocab_size - 1), min_size=1, max_size=4),
       P=st.integers(1, 4), seed=seeds)
def test_reparameterized_prefix_fits_the_hard_prompt(prompt, P, seed):
    base = shared_base()
    tuned = Tuned(base)
    torch.manual_seed(seed)
    prefix = tuned.add("p", Prefix(base, P, mid=16))
    err = prefix.init_from_tokens(base, prompt)  # least squares: exact while P <= mid
    assert err < 1e-20
    hard = torch.tensor((prompt * P)[:P])[None]
    idx = ids(seed, 2, 6)
    ref = base(torch.cat([hard.expand(2, -1), idx], 1))[0][:, P:]
    close(tuned(idx)[0], ref, 1e-8)


@pytest.mark.parametrize("layers", [None, [1]])
def test_export_drops_the_mlp_and_keeps_training_time_outputs(layers):
    base = shared_base()
    tuned = Tuned(base)
    torch.manual_seed(0)
    P = 3
    prefix = tuned.add("mlp", Prefix(base, P, mid=8, layers=layers))
    idx, targets = batch_for(prefix)
    opt = torch.optim.AdamW(trainable(tuned), lr=1e-2)
    for _ in range(3):  # trained, so the MLP is not at its initial values
        opt.zero_grad()
        tuned(idx, targets)[1].backward()
        opt.step()
    exported = tuned.add("exported", prefix.export())
    assert exported.mid is None
    assert not hasattr(exported, "mlp") and not hasattr(exported, "embedding")
    assert [n for n, _ in exported.named_parameters()] == ["kv"]
    n_layers = CFG.n_layer if layers is None else len(layers)
    assert count_parameters(exported)[0] == n_layers * 2 * P * CFG.n_embd
    with torch.no_grad():
        close(tuned(idx, task="exported")[0], tuned(idx, task="mlp")[0], 1e-12)
    assert prefix.mid == 8 and hasattr(prefix, "mlp")  # the training module is left alone


def test_prefix_is_built_once_per_generate_call():
    base = shared_base()
    tuned = Tuned(base)
    torch.manual_seed(0)
    prefix = tuned.add("mlp", Prefix(base, 3, mid=8))
    prompt = tuned.add("soft", SoftPrompt(base, 2))
    calls = {"values": 0, "prompt": 0}

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped
    prefix.values = counting("values", prefix.values)
    prompt.prompt = counting("prompt", prompt.prompt)
    out = generate(tuned, ids(0, 2, 4), 6, task="mlp")
    assert out.shape == (2, 6) and calls["values"] == 1
    generate(tuned, ids(0, 2, 4), 6, task=["mlp", "soft"])
    assert calls == {"values": 2, "prompt": 1}


# ----------------------------------------------------------------------------- parameter counts

@given(n_layer=st.integers(1, 2), n_head=st.integers(1, 2), hs=st.integers(1, 8),
       P=st.integers(1, 6), mid=st.integers(1, 9), r=st.integers(1, 4), m=st.integers(1, 6))
def test_trainable_counts_match_closed_forms(n_layer, n_head, hs, P, mid, r, m):
    d = n_head * hs
    base = GPT(Config(vocab_size=11, block_size=16, n_layer=n_layer, n_head=n_head, n_embd=d))
    L = n_layer
    expected = {
        "direct": (Prefix(base, P), L * 2 * P * d),
        "mlp": (Prefix(base, P, mid=mid), P * d + d * mid + mid + mid * 2 * L * d + 2 * L * d),
        "soft": (SoftPrompt(base, P), P * d),
        "lora": (LoRA(base, r=r), L * r * (d + 3 * d)),  # c_attn: d -> 3d
        "lora2": (LoRA(base, r=r, targets=("attn.c_attn", "mlp.c_fc")), L * r * (4 * d + 5 * d)),
        "adapter": (Adapter(base, bottleneck=m), 2 * L * (2 * m * d + m + d)),  # attn + mlp
    }
    tuned = Tuned(base)
    base_total = sum(p.numel() for p in {id(p): p for p in base.parameters()}.values())
    assert count_parameters(base) == (0, base_total)
    for name, (method, n) in expected.items():
        tuned.add(name, method)
        assert count_parameters(method) == (n, n), name
        pct = f"{100 * n / (base_total + n):.4f}"
        assert tuned.report(name) == (f"trainable params: {n:,} || all params: "
                                      f"{base_total + n:,} || trainable%: {pct}")
    n_all = sum(n for _, n in expected.values())
    assert count_parameters(tuned) == (n_all, base_total + n_all)
    assert f"trainable%: {100 * n_all / (base_total + n_all):.4f}" in report(tuned)


# ----------------------------------------------------------------------------- multi-task serving

POOL = ["soft2", "soft4", "prefix1", "prefix3", "mlp2", "lora", "adapter"]


@functools.lru_cache(maxsize=None)
def pool():
    """One frozen base serving seven tasks, all with generic (non-identity) parameters."""
    base = shared_base()
    tuned = Tuned(base)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        methods = {"soft2": SoftPrompt(base, 2), "soft4": SoftPrompt(base, 4),
                   "prefix1": Prefix(base, 1), "prefix3": Prefix(base, 3),
                   "mlp2": Prefix(base, 2, mid=8), "lora": LoRA(base, r=2),
                   "adapter": Adapter(base, 3)}
    for i, (name, method) in enumerate(methods.items()):
        tuned.add(name, perturb(method, i, std=0.5 if name != "mlp2" else 0.3))
    return tuned.requires_grad_(False)


@st.composite
def mixed_batches(draw, max_b=4, max_t=6):
    """(idx, attention_mask, per-row task names, real lengths): left-padded rows, random tasks."""
    B, T = draw(st.integers(1, max_b)), draw(st.integers(1, max_t))
    names = draw(st.lists(st.sampled_from(POOL), min_size=B, max_size=B))
    lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    idx = ids(draw(seeds), B, T)
    mask = torch.arange(T)[None] >= T - torch.tensor(lengths)[:, None]  # (B, T) left padding
    return idx, mask, names, lengths


@given(batch=mixed_batches(), masked=st.booleans())
def test_mixed_task_batch_rows_equal_single_task_runs(batch, masked):
    idx, mask, names, lengths = batch
    tuned = pool()
    if not masked:  # no padding at all: the mask is optional
        mask, lengths = None, [idx.size(1)] * idx.size(0)
    logits = tuned(idx, attention_mask=mask, task=names)[0]
    T = idx.size(1)
    for i, (name, n) in enumerate(zip(names, lengths)):
        alone = tuned(idx[i:i + 1, T - n:], task=name)[0]
        close(logits[i:i + 1, T - n:], alone, 1e-10)


@settings(max_examples=60)
@given(batch=mixed_batches(max_b=3, max_t=5), n_new=st.integers(1, 4))
def test_mixed_task_generation_rows_equal_single_task_generation(batch, n_new):
    idx, mask, names, lengths = batch
    tuned = pool()
    out = generate(tuned, idx, n_new, attention_mask=mask, task=names)
    T = idx.size(1)
    for i, (name, n) in enumerate(zip(names, lengths)):
        alone = generate(tuned, idx[i:i + 1, T - n:], n_new, task=name)
        assert torch.equal(out[i:i + 1], alone)


@given(seed=seeds, B=st.integers(2, 4), T=st.integers(1, 6), data=st.data())
def test_prefix_on_some_layers_mixes_with_prompts_lora_and_adapters(seed, B, T, data):
    tuned = Tuned(shared_base())
    for name in ("soft2", "lora", "adapter"):
        tuned.add(name, pool().tasks[name])
    tuned.add("upper", perturb(Prefix(tuned.base, 3, layers=[1]), 7, std=0.5))
    names = data.draw(st.lists(st.sampled_from(list(tuned.tasks)), min_size=B, max_size=B))
    idx = ids(seed, B, T)
    logits = tuned(idx, task=names)[0]
    for i, name in enumerate(names):
        close(logits[i:i + 1], tuned(idx[i:i + 1], task=name)[0], 1e-10)


def test_task_names_are_checked_and_use_switches_the_default():
    tuned = pool()
    idx = ids(0, 2, 4)
    with pytest.raises(ValueError, match="task must be one of") as e:
        tuned(idx, task="nope")
    assert all(name in str(e.value) for name in POOL)
    with pytest.raises(ValueError, match="B=2"):
        tuned(idx, task=["soft2"])  # one name per row
    local = Tuned(shared_base())
    for name in ("soft2", "lora"):
        local.add(name, pool().tasks[name])
    assert local.default == "soft2"
    close(local(idx)[0], tuned(idx, task="soft2")[0], 0)
    local.use("lora")
    assert local.default == "lora"
    close(local(idx)[0], tuned(idx, task="lora")[0], 0)
    with pytest.raises(ValueError, match="task must be one of"):
        local.use("nope")
    assert local.default == "lora"


def test_mixed_batch_of_prefixes_on_different_layers_raises():
    base = shared_base()
    tuned = Tuned(base)
    tuned.add("all", Prefix(base, 2))
    tuned.add("upper", Prefix(base, 2, layers=[1]))
    with pytest.raises(ValueError, match="same layers"):
        tuned(ids(0, 2, 3), task=["all", "upper"])


# ----------------------------------------------------------------------------- adapter files

@pytest.mark.parametrize("kind", sorted(METHODS))
def test_save_load_round_trip_gives_identical_outputs(kind, tmp_path):
    base = shared_base()
    tuned = Tuned(base)
    method = perturb(tuned.add("task", METHODS[kind](base)), 3)
    size = tuned.save("task", tmp_path)
    assert size == os.path.getsize(next(tmp_path.glob("weights-*.pt")))
    other = Tuned(base)
    loaded = other.load(tmp_path)
    assert list(other.tasks) == ["task"] and type(loaded) is type(method)
    assert all(p.dtype == DTYPE and p.requires_grad for p in loaded.parameters())
    idx, _ = batch_for(method)
    assert torch.equal(other(idx)[0], tuned(idx)[0])
    assert other.load(tmp_path, name="again", method=method.method) is not loaded


def test_training_resumes_from_a_saved_reparameterized_prefix(tmp_path):
    base = shared_base()
    tuned = Tuned(base)
    torch.manual_seed(0)
    prefix = tuned.add("mlp", Prefix(base, 3, mid=8))
    idx, targets = batch_for(prefix)
    opt = torch.optim.AdamW(trainable(tuned), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        tuned(idx, targets)[1].backward()
        opt.step()
    before = tuned(idx, targets)[1].item()
    tuned.save("mlp", tmp_path, keep_mlp=True)
    resumed = Tuned(base)
    loaded = resumed.load(tmp_path)
    assert loaded.mid == 8 and hasattr(loaded, "mlp")  # keep_mlp: the MLP travels with the file
    losses = [resumed(idx, targets)[1]]
    assert losses[0].item() == before
    opt = torch.optim.AdamW(trainable(resumed), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        losses[-1].backward()
        assert all(p.grad is not None for p in loaded.parameters())
        opt.step()
        losses.append(resumed(idx, targets)[1])
    assert losses[-1].item() < losses[0].item()


@pytest.fixture
def saved(tmp_path):
    """A saved, perturbed direct prefix: (directory, its outputs on a fixed batch)."""
    base = shared_base()
    tuned = Tuned(base)
    perturb(tuned.add("task", Prefix(base, 2)), 5)
    tuned.save("task", tmp_path)
    return tmp_path, tuned(ids(0, 2, 4))[0]


def test_load_into_a_base_with_other_weights_raises(saved):
    directory, _ = saved
    base = copy.deepcopy(shared_base())
    with torch.no_grad():
        base.transformer.h[0].mlp.c_fc.bias[0] += 1e-9
    with pytest.raises(ValueError, match="another base model") as e:
        Tuned(base).load(directory)
    assert "weights differ" in str(e.value)
    assert "load the base model it was trained on" in str(e.value)


def test_load_into_a_base_with_another_config_raises(saved):
    directory, _ = saved
    base = make_base(Config(vocab_size=23, block_size=32, n_layer=2, n_head=4, n_embd=16))
    with pytest.raises(ValueError, match="another base model") as e:
        Tuned(base).load(directory)
    assert "config differ" in str(e.value)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_weights_file_raises(saved, damage):
    directory, _ = saved
    path = next(directory.glob("weights-*.pt"))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        path.unlink()
    with pytest.raises(ValueError, match="missing, truncated or corrupted") as e:
        Tuned(shared_base()).load(directory)
    assert "save the adapter again" in str(e.value)


@pytest.mark.parametrize("garbage, says", [
    (b"{not json", "corrupted.*save the adapter again"),
    (b"\xff\xfe\x00garbage", "corrupted.*save the adapter again"),
    (b"[1, 2]", "not a minitx adapter file"),
    (b'{"format": "minitx-adapter", "method": "magic"}', "not a minitx adapter file"),
    (None, "no adapter.json.*Tuned.save")])
def test_garbage_adapter_json_raises(saved, garbage, says):
    directory, _ = saved
    if garbage is None:
        (directory / "adapter.json").unlink()
    else:
        (directory / "adapter.json").write_bytes(garbage)
    with pytest.raises(ValueError, match=says):
        Tuned(shared_base()).load(directory)


def test_wrong_method_raises_naming_the_right_one(saved):
    directory, _ = saved
    with pytest.raises(ValueError, match="method='prefix'"):
        Tuned(shared_base()).load(directory, method="lora")


def test_loading_uses_weights_only(saved, monkeypatch):
    directory, outputs = saved
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    tuned = Tuned(shared_base())
    tuned.load(directory)
    assert seen == [True]
    assert torch.equal(tuned(ids(0, 2, 4))[0], outputs)


@pytest.mark.parametrize("crash", ["fsync", "os.replace weights", "os.replace json"])
def test_a_crash_during_save_leaves_the_previous_adapter_loadable(saved, monkeypatch, crash):
    directory, outputs = saved
    tuned = Tuned(shared_base())
    perturb(tuned.load(directory), 99)  # new values that the crashed save fails to write
    real_replace = os.replace

    def failing_fsync(fd):  # the temp file is half written when the disk fills up
        os.ftruncate(fd, 10)
        raise OSError("disk full")

    def failing_replace(src, dst):
        if str(dst).endswith("adapter.json" if crash.endswith("json") else ".pt"):
            raise OSError("power cut")
        return real_replace(src, dst)
    if crash == "fsync":
        monkeypatch.setattr(os, "fsync", failing_fsync)
    else:
        monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        tuned.save("task", directory)
    monkeypatch.undo()
    fresh = Tuned(shared_base())
    fresh.load(directory)
    assert torch.equal(fresh(ids(0, 2, 4))[0], outputs)
    tuned.save("task", directory)  # the next save succeeds and replaces the adapter
    assert len(list(directory.glob("weights-*.pt"))) == 1
    assert not torch.equal(Tuned(shared_base()).load(directory).kv, fresh.tasks["task"].kv)


# ----------------------------------------------------------------------------- what a file carries

@pytest.mark.parametrize("layers", [None, [1]])
def test_a_reparameterized_prefix_is_saved_exported_unless_keep_mlp(tmp_path, layers):
    base = shared_base()
    tuned = Tuned(base)
    torch.manual_seed(0)
    prefix = perturb(tuned.add("mlp", Prefix(base, 3, mid=8, layers=layers)), 4)
    exported = Tuned(base)
    exported.add("mlp", prefix.export())
    size = tuned.save("mlp", tmp_path / "default")
    assert size == exported.save("mlp", tmp_path / "exported")  # the K/V only, byte for byte
    assert size == os.path.getsize(next((tmp_path / "default").glob("weights-*.pt")))
    assert tuned.save("mlp", tmp_path / "mlp", keep_mlp=True) > 2 * size  # the MLP is bigger
    idx = ids(0, 2, 5)
    for name, mid in (("default", None), ("mlp", 8)):
        loaded = Tuned(base)
        method = loaded.load(tmp_path / name)
        assert method.mid == mid and hasattr(method, "mlp") == (mid is not None)
        assert torch.equal(loaded(idx)[0], tuned(idx)[0])


def test_a_seq2seq_prefix_is_saved_exported_unless_keep_mlp(tmp_path):
    from minitx.seq2seq import Seq2Seq, Seq2SeqPrefix, TunedSeq2Seq
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = generic_weights_(Seq2Seq(CFG).to(DTYPE).eval()).requires_grad_(False)
        tuned = TunedSeq2Seq(base)
        perturb(tuned.add("d2t", Seq2SeqPrefix(base, 2, mid=8)), 6)
    exported = TunedSeq2Seq(base)
    exported.add("d2t", tuned.tasks["d2t"].export())
    size = tuned.save("d2t", tmp_path / "default")
    assert size == exported.save("d2t", tmp_path / "exported")
    assert tuned.save("d2t", tmp_path / "mlp", keep_mlp=True) > 2 * size
    src, tgt = ids(1, 2, 5), ids(2, 2, 3)
    for name, mid in (("default", None), ("mlp", 8)):
        loaded = TunedSeq2Seq(base)
        assert loaded.load(tmp_path / name).mid == mid
        assert torch.equal(loaded(src, tgt)[0], tuned(src, tgt)[0])


def test_an_adapter_carries_its_tokenizer(tmp_path):
    from minitx.data import Tokenizer
    from minitx.tuning import read_adapter_tokenizer
    tok = Tokenizer(["the", "cat", "sat", ";", "=>"])
    base = shared_base()
    tuned = Tuned(base)
    tuned.add("task", SoftPrompt(base, 2))
    tuned.save("task", tmp_path / "with", tokenizer=tok)
    tuned.save("task", tmp_path / "without")
    saved = read_adapter_tokenizer(tmp_path / "with")
    assert saved == tok.to_dict() and read_adapter_tokenizer(tmp_path / "without") is None
    again = Tokenizer.from_dict(saved)
    assert again.words == tok.words and again.encode("the cat sat ;") == tok.encode("the cat sat ;")
    Tuned(base).load(tmp_path / "with")  # the adapter itself loads as before
