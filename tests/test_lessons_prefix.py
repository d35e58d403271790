"""Lessons 07-08 (prefix tuning; its initialisation, length and depth) run in fast mode and
return the numbers they printed; the counts they print are checked against count_parameters.

Run alone: `python -m pytest tests/test_lessons_prefix.py -q`.
"""
import math

import pytest
import torch

from minitx import GPT, Config
from minitx.tuning import Prefix, SoftPrompt, count_parameters
from lesson_loader import load_lesson, run_fast


@pytest.fixture(scope="module")
def lesson07():
    return load_lesson("07_prefix_tuning.py")


@pytest.fixture(scope="module")
def lesson08():
    return load_lesson("08_prefix_init_length_depth.py")


@pytest.mark.parametrize("n_layer,n_embd,n_head,length,mid", [(3, 16, 2, 7, 24), (1, 8, 1, 1, 4),
                                                               (4, 128, 4, 10, 512)])
def test_lesson_07_formulas_match_count_parameters(lesson07, n_layer, n_embd, n_head, length, mid):
    model = GPT(Config(vocab_size=50, block_size=32, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    direct, mlp = lesson07.prefix_param_counts(n_layer, n_embd, length, mid)
    assert direct == count_parameters(Prefix(model, length))[0]
    assert mlp == count_parameters(Prefix(model, length, mid=mid))[0]
    assert direct == count_parameters(Prefix(model, length, mid=mid).export())[0]
    assert lesson07.gpt2_param_count(n_layer, n_embd, 50, 32) == count_parameters(model)[1]


@pytest.mark.slow
def test_lesson_07_prefix_tuning(lesson07):
    r = run_fast(lesson07)
    assert r["prefix_param_shape"] == (4, 2, 10, 128)  # (layers, K/V, P, d)
    assert r["layer_key_shape"] == (1, 4, 10, 32)  # (1, heads, P, head size)
    assert r["cache_key_shape"] == (2, 4, 15, 32)  # (B, heads, P + T, head size)

    course, article, paper = r["count_table"]
    assert course["base params"] == r["base_params"] == 844_800  # formula == count_parameters
    assert course["prefix (kept)"] == r["measured_counts"]["direct"] == 4 * 2 * 10 * 128
    assert course["MLP (trained)"] == r["measured_counts"]["mlp"]
    assert r["measured_counts"]["exported"] == r["measured_counts"]["direct"]
    assert math.isclose(course["kept %"], 100 * course["prefix (kept)"] / course["base params"])
    assert 6.5 < paper["MLP %"] < 8 and paper["kept %"] < 0.1  # the paper's "~7%" and "0.1%"
    assert article["prefix (kept)"] == 12 * 2 * 10 * 768
    sizes = r["saved_bytes"]
    assert sizes["exported"] == sizes["direct"]  # export keeps the prefix only
    assert sizes["direct"] >= 4 * r["measured_counts"]["direct"]  # fp32
    assert sizes["mlp"] > 10 * sizes["exported"]
    assert r["export_max_diff"] <= 1e-5

    grid, summary = r["grid"], r["summary"]
    assert [s["variant"] for s in summary] == list(lesson07.VARIANTS)
    assert len(grid) == len(lesson07.VARIANTS) * 2  # fast: two learning rates
    for row in grid:
        assert set(row) == {"variant", "lr", "exact mean", "min", "max", "final loss", "P moved",
                            "key RMS"}
        assert 0 <= row["min"] <= row["exact mean"] <= row["max"] <= 100
        assert math.isfinite(row["final loss"]) and row["P moved"] >= 0
    for s in summary:
        assert s["runs"] == 2 and 0 <= s["init attn %"] <= 100
    direct = next(s for s in summary if s["variant"] == "direct")
    assert direct["init key RMS"] == pytest.approx(1.0, abs=0.1)  # N(0, 1) init
    assert r["best_lr_ratio"] > 0
    assert r["frozen_exact"] == 0.0  # first_last was never pretrained

    # the "=>" query's attention, read from the written-out path: each layer's row is a
    # distribution over [prefix keys; input tokens], and the printed shares are its prefix part
    assert list(r["answer_attention"]) == [f"{s['variant']} (lr {s['best lr']})" for s in summary]
    for name, w in r["answer_attention"].items():
        assert w.shape[0] == 4 and w.shape[1] > 10  # (layers, P + T) with P = 10
        assert torch.allclose(w.sum(-1), torch.ones(4, dtype=w.dtype), atol=1e-5)
        assert r["prefix_share_by_layer"][name] == pytest.approx(
            (100 * w[:, :10].sum(-1)).tolist())

    assert r["reverse_exact_plain"] >= 90  # the frozen model knows reverse with its instruction
    assert r["reverse_exact_with_ln"] < r["reverse_exact_plain"]  # a fresh LayerNorm is no no-op


@pytest.mark.slow
def test_lesson_08_prefix_init_length_depth(lesson08):
    r = run_fast(lesson08)
    init = r["init"]
    assert [row["init"] for row in init] == ["task words", "unrelated words", "random"] * 2
    for row in init:
        assert 0 <= row["min"] <= row["exact mean"] <= row["max"] <= 100
        if row["init"] != "random":
            assert row["init mse"] <= 1e-6  # the MLP reproduces the words' keys/values exactly
    for row in (x for x in init if x["init"] == "task words"):
        # a prefix made of the words' own keys/values IS the hard prompt: the same score
        assert row["step-0 exact"] == row["hard prompt"] == 100.0
    assert all(row["step-0 exact"] == 0.0 for row in init if row["init"] == "random")
    assert all(row["no instruction"] == 0.0 for row in init)  # the frozen model needs the words

    sweep = r["sweeps"]["first_last"]
    assert sweep["frozen"]["exact"] == 0.0  # first_last was never pretrained
    d = 128
    for row in sweep["length"]:
        assert row["kept"] == 4 * 2 * row["P"] * d  # the kept prefix: 2 · layers · P · d
        assert 0 <= row["exact mean"] <= 100 and 0 <= row["rouge_l mean"] <= 100
    depth = {row["prefix"]: row for row in sweep["depth"]}
    assert list(depth) == ["all 4 layers (0-3)", "top half (2-3)", "bottom half (0-1)",
                           "first layer only (0)", "input only (soft prompt)"]
    assert depth["top half (2-3)"]["kept"] == 2 * 2 * 10 * d
    assert depth["first layer only (0)"]["kept"] == 1 * 2 * 10 * d
    assert depth["input only (soft prompt)"]["kept"] == 10 * d
    base, _ = lesson08.load_base("small")
    assert depth["input only (soft prompt)"]["trained"] == count_parameters(SoftPrompt(base, 10))[0]
    assert depth["bottom half (0-1)"]["trained"] == count_parameters(
        Prefix(base, 10, mid=lesson08.MID, layers=[0, 1]))[0]
    assert r["first_layer_minus_all_rouge"] == pytest.approx(
        depth["first layer only (0)"]["rouge_l mean"] - depth["all 4 layers (0-3)"]["rouge_l mean"])
    assert r["best_length"] in [row["P"] for row in sweep["length"]]
