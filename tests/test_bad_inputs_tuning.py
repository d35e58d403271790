"""Bad input to minitx.tuning is refused up front: every case asserts the exception type and that
the message names the argument (and, where it matters, the value and the fix). Hypothesis covers
whole bad ranges (sizes <= 0, ids out of range). Also the handled cases that used to be silent:
replacing a task, merging a LoRA that other tasks share, merge -> save -> load, adapter debris.
"""
import copy
import functools
import json
import os
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx import GPT, Config
from minitx.seq2seq import Seq2SeqPrefix
from minitx.tuning import Adapter, LoRA, Prefix, SoftPrompt, Tuned
from strategies import generic_weights_

CFG = Config(vocab_size=23, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
BASE = generic_weights_(GPT(CFG).double().eval()).requires_grad_(False)  # never mutated here
non_positive = st.integers(max_value=0)
out_of_vocab = st.one_of(st.integers(max_value=-1), st.integers(min_value=CFG.vocab_size))


def raises(kind, *words):
    """pytest.raises(kind) whose message must contain every one of `words` (plain text)."""
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


def ids(*shape, seed=0):
    return torch.randint(0, CFG.vocab_size, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- constructors

@given(n=non_positive)
def test_sizes_below_one_are_refused(n):
    for make, name in [(lambda: SoftPrompt(BASE, n), "n_tokens"), (lambda: Prefix(BASE, n), "length"),
                       (lambda: Prefix(BASE, 2, mid=n), "mid"), (lambda: LoRA(BASE, r=n), "r"),
                       (lambda: Adapter(BASE, bottleneck=n), "bottleneck"),
                       (lambda: SoftPrompt(BASE, 2, init="vocab", vocab_top=n), "vocab_top")]:
        with raises(ValueError, name, ">= 1", str(n)):
            make()


@given(alpha=st.floats(max_value=0.0) | st.just(float("nan")) | st.just(float("inf")))
def test_lora_alpha_must_be_a_finite_positive_number(alpha):
    with raises(ValueError, "alpha", "> 0"):
        LoRA(BASE, r=2, alpha=alpha)


@pytest.mark.parametrize("make, name", [
    (lambda: SoftPrompt(BASE, 2.5), "n_tokens"), (lambda: SoftPrompt(BASE, True), "n_tokens"),
    (lambda: Prefix(BASE, "3"), "length"), (lambda: Prefix(BASE, 2, mid=8.0), "mid"),
    (lambda: LoRA(BASE, r=2.0), "r"), (lambda: LoRA(BASE, alpha="16"), "alpha"),
    (lambda: Adapter(BASE, bottleneck=None), "bottleneck"),
    (lambda: Prefix(BASE, 2, layers=1), "layers"), (lambda: SoftPrompt(BASE, 2, init=7), "init")])
def test_wrong_types_are_type_errors(make, name):
    with raises(TypeError, name):
        make()


def test_a_tuned_model_is_not_a_base():
    with raises(TypeError, "model", "tuned.base"):
        SoftPrompt(Tuned(BASE), 4)


@given(bad=out_of_vocab)
def test_token_ids_out_of_range_are_refused(bad):
    with raises(ValueError, "init", str(bad), "in [0, 22]"):
        SoftPrompt(BASE, 3, init=[1, bad])
    with raises(ValueError, "ids", str(bad)):
        Prefix(BASE, 2).init_from_tokens(BASE, [bad])


@given(layer=st.one_of(st.integers(max_value=-1), st.integers(min_value=CFG.n_layer)))
def test_prefix_layers_out_of_range_are_refused(layer):
    with raises(ValueError, "layers", str(layer)):
        Prefix(BASE, 2, layers=[0, layer])


@pytest.mark.parametrize("make, words", [
    (lambda: Prefix(BASE, 2, layers=[0, 0]), ["layers", "[0, 0]", "repeat"]),
    (lambda: Prefix(BASE, 2, layers=[]), ["layers", "non-empty"]),
    (lambda: SoftPrompt(BASE, 2, init=[]), ["init", "non-empty"]),
    (lambda: SoftPrompt(BASE, 2, init="words"), ["init", "'words'", "'random'"]),
    (lambda: Prefix(BASE, 2).init_from_tokens(BASE, []), ["ids", "non-empty"]),
    (lambda: LoRA(BASE, targets=("attn.q_proj",)), ["targets", "attn.q_proj", "attn.c_attn"])])
def test_empty_repeated_or_unmatched_lists_are_refused(make, words):
    with raises(ValueError, *words):
        make()


def test_lora_targets_given_as_one_string_is_that_one_name():
    one, listed = LoRA(BASE, r=2, targets="mlp.c_fc"), LoRA(BASE, r=2, targets=["mlp.c_fc"])
    assert list(one.deltas) == list(listed.deltas) == ["transformer/h/0/mlp/c_fc",
                                                       "transformer/h/1/mlp/c_fc"]


# ----------------------------------------------------------------------------- Tuned.add / merge

def test_add_refuses_a_taken_name_unless_replace():
    tuned = Tuned(BASE)
    first = tuned.add("task", SoftPrompt(BASE, 2))
    with raises(ValueError, "'task'", "replace=True"):
        tuned.add("task", SoftPrompt(BASE, 3))
    assert tuned.tasks["task"] is first
    second = tuned.add("task", SoftPrompt(BASE, 3), replace=True)
    assert tuned.tasks["task"] is second and tuned.default == "task"


def test_add_refuses_what_a_gpt_would_ignore_or_cannot_use():
    tuned = Tuned(BASE)
    with raises(ValueError, "method", "Seq2SeqPrefix", "tuning.Prefix"):
        tuned.add("s2s", Seq2SeqPrefix(BASE, 2))
    with raises(TypeError, "method", "Linear"):
        tuned.add("linear", torch.nn.Linear(2, 2))
    assert len(tuned.tasks) == 0


def perturbed_lora(base, seed=0):
    lora = LoRA(base, r=2, alpha=4)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return lora


def test_merge_is_refused_while_other_tasks_share_the_base():
    base = copy.deepcopy(BASE)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = Tuned(base)
    lora = tuned.add("lora", perturbed_lora(base))
    tuned.add("prompt", SoftPrompt(base, 2))
    with raises(ValueError, "['prompt']", "copy.deepcopy(tuned.base)"):
        lora.merge(tuned)
    assert not lora.merged and all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    with raises(TypeError, "tuned", "GPT"):
        lora.merge(base)
    solo = Tuned(copy.deepcopy(base))  # the fix the message gives: a copy of its own
    solo.add("lora", lora)
    hooked = solo(ids(2, 5))[0]
    lora.merge(solo)
    torch.testing.assert_close(solo(ids(2, 5))[0], hooked, rtol=0, atol=1e-10)
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())


def test_merged_lora_saved_and_loaded_applies_delta_w_once(tmp_path):
    base = copy.deepcopy(BASE)
    tuned = Tuned(base)
    lora = tuned.add("lora", perturbed_lora(base))
    want = tuned(ids(2, 5))[0]
    lora.merge(tuned)
    tuned.save("lora", tmp_path)
    assert json.loads((tmp_path / "adapter.json").read_text())["merged"] is True
    again = Tuned(base)  # the merged base: the loaded LoRA must not add ΔW a second time
    loaded = again.load(tmp_path)
    assert loaded.merged and loaded.hooks() == []
    torch.testing.assert_close(again(ids(2, 5))[0], want, rtol=0, atol=1e-10)
    loaded.unmerge(again)  # and it can take ΔW out again
    torch.testing.assert_close(base(ids(2, 5))[0], BASE(ids(2, 5))[0], rtol=0, atol=1e-12)
    with raises(ValueError, "another base model", "merged"):
        Tuned(copy.deepcopy(BASE)).load(tmp_path)  # never merged: refused, never ΔW missing


# ----------------------------------------------------------------------------- save / load

@pytest.fixture
def saved(tmp_path):
    tuned = Tuned(BASE)
    tuned.add("task", Prefix(BASE, 2))
    tuned.save("task", tmp_path)
    return tuned, tmp_path


def test_save_of_an_unknown_task_names_the_known_ones(saved):
    tuned, directory = saved
    with raises(ValueError, "name", "'nope'", "['task']"):
        tuned.save("nope", directory)


def test_save_into_an_unusable_directory_names_the_path(saved, tmp_path_factory):
    tuned, _ = saved
    a_file = tmp_path_factory.mktemp("x") / "file"
    a_file.write_text("not a directory")
    for directory in (a_file, a_file / "sub"):
        with pytest.raises(OSError) as e:
            tuned.save("task", directory)
        assert str(a_file) in str(e.value)
    deep = tmp_path_factory.mktemp("y") / "missing" / "parents"  # handled: parents are made
    tuned.save("task", deep)
    assert (deep / "adapter.json").exists()


def test_save_with_a_tokenizer_that_cannot_describe_itself(saved):
    tuned, directory = saved
    with raises(TypeError, "tokenizer", "to_dict", "list"):
        tuned.save("task", directory, tokenizer=["a", "b"])


def edit_json(directory, change):
    meta = json.loads((directory / "adapter.json").read_text())
    change(meta)
    (directory / "adapter.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("key", ["name", "method", "settings", "base", "weights",
                                 "weights_sha256"])
def test_adapter_json_missing_a_key_names_it(saved, key):
    _, directory = saved
    edit_json(directory, lambda meta: meta.pop(key))
    with raises(ValueError, "adapter.json", repr(key) if key != "method" else "method"):
        Tuned(BASE).load(directory)


@pytest.mark.parametrize("settings, words", [
    ({"length": 2, "depth": 3}, ["settings", "depth"]),
    ({"length": -1}, ["settings", "length", "-1"]),
    ({"length": 2, "mid": "big"}, ["settings", "mid", "'big'"]),
    ({}, ["settings", "length"])])
def test_adapter_json_with_settings_the_method_does_not_take(saved, settings, words):
    _, directory = saved
    edit_json(directory, lambda meta: meta.update(settings=settings))
    with raises(ValueError, *words):
        Tuned(BASE).load(directory)


def test_load_under_a_taken_name_needs_replace(saved):
    tuned, directory = saved
    with raises(ValueError, "'task'", "replace=True"):
        tuned.load(directory)
    assert tuned.load(directory, replace=True) is tuned.tasks["task"]


def test_the_next_save_removes_debris_but_never_the_referenced_file(saved):
    tuned, directory = saved
    kept = json.loads((directory / "adapter.json").read_text())["weights"]
    debris = [".weights.tmp", "adapter.json.tmp", "weights-0123456789abcdef.pt.tmp",
              "weights-0123456789abcdef.pt"]  # a killed save's temp files, an orphaned weights file
    for name in debris:
        (directory / name).write_bytes(b"half")
    Tuned(BASE).load(directory)  # a load never deletes: a save may be running
    assert all((directory / name).exists() for name in debris)
    tuned.save("task", directory)
    assert sorted(os.listdir(directory)) == ["adapter.json", kept]


# ----------------------------------------------------------------------------- forward

@settings(max_examples=40)
@given(P=st.integers(1, 4), n=st.integers(0, 3), T=st.integers(1, 5), wrong=st.integers(1, 3))
def test_mask_shape_errors_count_only_the_callers_tokens(P, n, T, wrong):
    tuned = Tuned(BASE)
    tuned.add("prefix", Prefix(BASE, P))
    if n:
        tuned.add("prompt", SoftPrompt(BASE, n))
    idx = ids(2, T)
    mask = torch.ones(2, T + wrong, dtype=torch.bool)  # wrong: e.g. counting the virtual tokens
    for task in ("prefix", ["prefix", "prompt"] if n else "prefix"):
        with raises(ValueError, "attention_mask", f"(B, cached + T) = (2, 0 + {T})",
                    f"torch.Size([2, {T + wrong}])"):
            tuned(idx, attention_mask=mask, task=task)
    _, _, past = tuned(idx, task="prefix")  # one step on: the mask covers T + 1 of the caller's
    with raises(ValueError, f"(2, {T} + 1)", f"torch.Size([2, {T + P + 1}])"):
        tuned(ids(2, 1), past=past, attention_mask=torch.ones(2, T + P + 1, dtype=torch.bool),
              task="prefix")


@pytest.mark.parametrize("idx, mask, kind, what", [
    (ids(5), None, TypeError, ["idx", "(B, T)", "[None]"]),
    (torch.zeros(2, 3), None, TypeError, ["idx", "token ids", "float32"]),
    ([[1, 2]], None, TypeError, ["idx", "list"]),
    (ids(2, 3), torch.ones(2, 3), ValueError, ["attention_mask", "bool", "torch.float32"])])
def test_idx_and_mask_of_the_wrong_kind(idx, mask, kind, what):
    tuned = Tuned(BASE)
    tuned.add("p", Prefix(BASE, 2))
    with raises(kind, *what):
        tuned(idx, attention_mask=mask)


@given(bad=st.one_of(st.integers(-2**63, -1), st.integers(CFG.vocab_size, 2**63 - 1)),
       task=st.sampled_from(["p", ["p", "s"]]))
def test_token_ids_outside_the_vocabulary_are_named(bad, task):
    tuned = keyed_small()
    idx = ids(2, 3)
    idx[1, 1] = bad
    with raises(ValueError, "idx", f"token id {bad}", "vocab_size=23"):
        tuned(idx, task=task)


@functools.lru_cache(maxsize=None)
def keyed_small():
    tuned = Tuned(BASE)
    tuned.add("p", Prefix(BASE, 2))
    tuned.add("s", SoftPrompt(BASE, 2))
    return tuned


@given(tasks=st.lists(st.sampled_from(["p1", "p3", "s2", "s4", "lora"]), min_size=1, max_size=4))
def test_keys_in_front_is_the_longest_prefix_plus_the_longest_prompt(tasks):
    tuned = keyed()
    lengths = {"p1": (1, 0), "p3": (3, 0), "s2": (0, 2), "s4": (0, 4), "lora": (0, 0)}
    want = max(lengths[t][0] for t in tasks) + max(lengths[t][1] for t in tasks)
    assert tuned.keys_in_front(task=tasks, temperature=0.5) == want
    assert tuned.keys_in_front(task=tasks[0]) == sum(lengths[tasks[0]])
    _, _, present = tuned(ids(len(tasks), 3), task=tasks)  # the keys the model really puts there
    assert present[0][0].size(2) == want + 3


@functools.lru_cache(maxsize=None)
def keyed():
    """One Tuned with prefixes and prompts of several lengths, and a LoRA (no virtual tokens)."""
    tuned = Tuned(BASE)
    for name, method in [("p1", Prefix(BASE, 1)), ("p3", Prefix(BASE, 3)),
                         ("s2", SoftPrompt(BASE, 2)), ("s4", SoftPrompt(BASE, 4)),
                         ("lora", LoRA(BASE, r=2))]:
        tuned.add(name, method)
    return tuned
