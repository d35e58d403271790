"""Lessons 12, 15 and 16 run in fast mode and return the numbers they printed.

11: adapters as files, loading by name, one mixed-task batch, routing with the frozen base.
14: the method-choice evidence (scores, parameters, files, memory, mixed batches, scale, sweep).
15: the article's wrong claims against the papers, with this course's measurements.
Each lesson runs once (module-scoped fixture); the tests check shapes, ranges and, for at least
one figure per lesson, an independent computation.
Run alone: `python -m pytest tests/test_lessons_serving.py -q`.
"""
import math

import pytest
import torch
import torch.nn as nn

from lesson_loader import load_lesson, run_fast

FILES = {12: "12_multitask_serving.py", 15: "15_choosing_a_method.py",
         16: "16_what_the_article_got_wrong.py"}


@pytest.fixture(scope="module")
def lesson11():
    module = load_lesson(FILES[12])
    return module, run_fast(module)


@pytest.fixture(scope="module")
def lesson14():
    module = load_lesson(FILES[15])
    return module, run_fast(module)


@pytest.fixture(scope="module")
def lesson15():
    module = load_lesson(FILES[16])
    return module, run_fast(module)


def base_model():
    from common import load_base
    return load_base("small")


# ---- lesson 12 ------------------------------------------------------------------------------
@pytest.mark.slow
def test_lesson_11_files_and_sizes(lesson11):
    module, r = lesson11
    base, _ = base_model()
    c = base.config
    files = {row["task"]: row for row in r["files"]}
    for task, (length, _, _) in module.ADAPTERS.items():
        kept = 2 * c.n_layer * length * c.n_embd  # K and V, every layer, `length` positions
        assert files[task]["params kept"] == kept
        assert kept * 4 / 1024 <= files[task]["file KB"] <= kept * 4 / 1024 + 4  # fp32 + header
    assert files["recommend_prompt"]["params kept"] == module.PROMPT_RIVAL[1] * c.n_embd
    total = sum(p.numel() for p in base.parameters())
    assert files["(base model, fp32)"]["params kept"] == total
    assert total * 4 / 1024 <= r["base_fp32_kb"] <= total * 4 / 1024 + 64
    assert r["adapters_kb"] == pytest.approx(sum(files[t]["file KB"] for t in
                                                 [*module.ADAPTERS, "recommend_prompt"]))
    assert r["adapters_kb"] < 0.1 * r["base_fp32_kb"]


@pytest.mark.slow
def test_lesson_11_load_switch_and_mixed_batch(lesson11):
    _, r = lesson11
    assert r["reload_max_diff"] == 0.0 and r["use_max_diff"] == 0.0  # files round-trip exactly
    assert r["wrong_base_refused"]  # the fingerprint check refuses another base
    assert r["mixed_max_diff"] < 1e-4  # float32 rounding
    assert r["mixed_max_diff_fp64"] < 1e-10  # and exact up to float64 rounding


@pytest.mark.slow
def test_lesson_11_routing_and_end_to_end(lesson11):
    _, r = lesson11
    assert r["routing_acc"] == pytest.approx(r["classify_acc"])  # own router == common.classify
    assert r["identical_answers"] == r["routed_right"]  # mixed batch answers == per-task answers
    rows = r["accuracy"]
    assert [row["task"] for row in rows[:3]] == ["returns", "shipping", "recommend"]
    for row in rows[:3]:
        for key in ("routed right %", "adapter alone exact %", "end-to-end exact %",
                    "end-to-end BLEU", "looked up right %"):
            assert 0.0 <= row[key] <= 100.0
    assert 0.0 <= r["end_to_end_exact"] <= 100.0


def test_lesson_11_parts_right():
    from toyworld import Example
    module = load_lesson(FILES[12])
    target = "yes you can return the red hat within 30 days"
    example = Example("i want to return the red hat", target, (target,))
    wrong_days = "yes you can return the red hat within 14 days"
    assert module.parts_right("returns", [wrong_days], [example]) == [100.0, 0.0]
    assert module.parts_right("returns", [target], [example]) == [100.0, 100.0]


# ---- lesson 15 ------------------------------------------------------------------------------
@pytest.mark.slow
def test_lesson_14_grid_counts(lesson14):
    module, r = lesson14
    base, _ = base_model()
    c = base.config
    grid = {(row["task"], row["method"]): row for row in r["grid"]}
    assert len(r["grid"]) == 3 * 4
    prompt, prefix, lora, full = (grid[("first_last", m)] for m in ("prompt", "prefix", "LoRA",
                                                                    "full FT"))
    assert prompt["trained"] == prompt["kept"] == 10 * c.n_embd
    assert prefix["kept"] == 2 * c.n_layer * 10 * c.n_embd
    mlp = 10 * c.n_embd + (c.n_embd * 512 + 512) + (512 * c.n_layer * 2 * c.n_embd
                                                    + c.n_layer * 2 * c.n_embd)
    assert prefix["trained"] == mlp  # P' + the reparameterization MLP
    assert lora["trained"] == c.n_layer * 4 * (c.n_embd + 3 * c.n_embd)  # r(in + out) per layer
    assert full["trained"] == sum(p.numel() for p in base.parameters())
    for row in r["grid"]:
        assert 0.0 <= row["min"] <= row["score %"] <= row["max"] <= 100.0
        assert row["file KB"] > 0 and row["CPU ms/step"] > 0


@pytest.mark.slow
def test_lesson_14_memory_and_deployment(lesson14):
    _, r = lesson14
    memory = {row["method"]: row for row in r["memory"]}
    for row in r["memory"]:
        assert row["AdamW state"] == pytest.approx(2 * row["gradients"])
        parts = row["weights"] + row["gradients"] + row["AdamW state"] + row["activations"]
        assert row["total"] == pytest.approx(parts)
    assert memory["prompt"]["gradients"] == pytest.approx(10 * 128 * 4 / 1024)
    assert memory["full FT"]["gradients"] == pytest.approx(memory["full FT"]["weights"])
    assert memory["prefix, no MLP"]["total"] < memory["full FT"]["total"]
    flex = r["deployment"]
    assert all(row["max |diff| vs alone"] < 1e-4 for row in flex[:3])
    assert math.isnan(flex[3]["max |diff| vs alone"])


def test_lesson_14_step_bytes_counts_saved_tensors():
    """y = x @ w, loss = sum(y ** 2): autograd saves x (for w's gradient) and y (for the
    square); w is a parameter and is not counted again."""
    module = load_lesson(FILES[15])

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 2))

        def forward(self, x):
            return None, (x @ self.w).pow(2).sum()

    out = module.step_bytes(Tiny(), {"x": torch.ones(5, 3)})
    assert out["weights"] == 6 * 4 and out["gradients"] == 6 * 4 and out["AdamW state"] == 48
    assert out["activations"] == (5 * 3 + 5 * 2) * 4


@pytest.mark.slow
def test_lesson_14_scale_sweep_decisions(lesson14):
    module, r = lesson14
    assert [row["base"] for row in r["scale"]] == ["tiny", "small"]
    for row in r["scale"]:
        assert row["prefix - prompt"] == pytest.approx(row["prefix"] - row["prompt"])
    assert len(r["sweep"]) == 6  # the baseline + one factor at a time: 2 lengths, 2 inits, 1 lr
    assert set(r["sweep_effects"]["prefix"]) == {"length", "init", "lr"}
    assert len(r["decisions"]) == 8
    rows = [{"method": "prompt", "score %": 90.0, "file KB": 6.0},
            {"method": "LoRA", "score %": 91.5, "file KB": 35.0},
            {"method": "full FT", "score %": 99.0, "file KB": 3000.0}]
    assert module.pick(rows)["method"] == "prompt"  # within 2 points: the smaller file
    sweep = [{"method": "prefix", "length": 10, "init": "normal", "lr": 1e-3, "exact %": 80.0},
             {"method": "prefix", "length": 5, "init": "normal", "lr": 1e-3, "exact %": 70.0},
             {"method": "prefix", "length": 10, "init": "xavier", "lr": 1e-3, "exact %": 20.0}]
    assert module.factor_effects(sweep, "prefix", (10, "normal", 1e-3)) == {
        "length": 10.0, "init": 60.0, "lr": 0.0}


# ---- lesson 16 ------------------------------------------------------------------------------
@pytest.mark.slow
def test_lesson_15_table(lesson15):
    _, r = lesson15
    claims = r["claims"]
    assert [row["#"] for row in claims] == list(range(1, 9))
    for row in claims:
        assert set(row) == {"#", "article says", "the papers say", "measured here"}
        assert row["measured here"]
    assert "not measurable here" in claims[0]["measured here"]  # XSum / BART-large
    assert "not measurable here" in claims[1]["measured here"]  # no such experiment


@pytest.mark.slow
def test_lesson_15_numbers(lesson15):
    module, r = lesson15
    assert r["t5_base_params"] == 247_577_856 == module.t5_base_parameters()
    assert r["prompt100_params"] == 100 * 768
    assert r["prompt100_pct"] == pytest.approx(100 * 76_800 / 247_577_856)
    assert round(r["prompt100_pct"], 3) == 0.031
    assert 0.0 < r["memory_ratio_b1_no_mlp"] < r["memory_ratio_b1"] <= 1.0
    for method, grid in module.FAST_GRIDS.items():
        assert r["best_lr"][method] in grid
    assert len(r["layers"]) == 3
    for value in r["bleu"].values():
        assert 0.0 <= value <= 100.0
    memory = {(row["batch"], row["method"]): row for row in r["memory"]}
    assert memory[(1, "full FT")]["vs full FT"] == 1.0
