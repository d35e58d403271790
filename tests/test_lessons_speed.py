"""Lesson 14 (speed and memory) runs in fast mode and its table comes from measurement.

No timing is asserted (test machines are shared and noisy): the tests check that every method is
measured, that the numbers are finite and positive, that the trainable counts equal their closed
forms, that the frozen-base checks ran, that matmul FLOPs show no weight gradient for frozen
weights, that the prefix (and its MLP) is built once per generate call, and that prefix tuning
allocates less than full fine-tuning. (Decoding's in-place cache is a core property, proven in
tests/test_generate_core.py.)
Run alone: `python -m pytest tests/test_lessons_speed.py -q`.
"""
import math

import pytest

from lesson_loader import load_lesson, run_fast

FILENAME = "14_speed_and_memory.py"
METHODS = ["full fine-tuning", "prompt", "prefix", "prefix + MLP", "deep prompt", "LoRA",
           "adapter", "reference GPT"]


@pytest.fixture(scope="module")
def result():
    return run_fast(load_lesson(FILENAME))


def closed_forms(c):
    L, C, V, S, n = c["n_layer"], c["n_embd"], c["vocab_size"], c["block_size"], c["virtual"]
    m, r, b, k = c["mid"], c["lora_r"], c["bottleneck"], c["n_classes"]
    full = V * C + S * C + L * (12 * C * C + 13 * C) + 2 * C
    return {"full fine-tuning": full, "reference GPT": full, "prompt": n * C,
            "prefix": L * 2 * n * C,
            "prefix + MLP": n * C + (C * m + m) + (m * 2 * L * C + 2 * L * C),
            "deep prompt": L * 2 * n * C + C * k + k, "LoRA": L * r * (C + 3 * C),
            "adapter": 2 * L * (2 * C * b + b + C)}


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_every_method_is_measured_with_finite_positive_numbers(result):
    rows = {r["method"]: r for r in result["training"]["rows"]}
    assert list(rows) == METHODS
    for r in rows.values():
        for key in ("step_ms", "vs_full", "tokens_per_s", "mfu", "mfu_attn", "peak_mib",
                    "trainable", "trainable_pct", "flops_per_position_over_n"):
            assert positive(r[key]), (r["method"], key, r[key])
        assert r["mfu"] < r["mfu_attn"]  # attention FLOPs add to the model FLOPs
    assert positive(result["training"]["peak_flops"])
    assert rows["full fine-tuning"]["vs_full"] == 1.0
    generation = result["generation"]
    assert [r["model"] for r in generation["rows"]] == ["no prefix", "no prefix, again",
                                                        "prefix 16", "prefix 16 + MLP"]
    for row in generation["rows"]:
        assert positive(row["tokens_per_s_b1"]) and positive(row["tokens_per_s_b8"])
    # expected cost of 16 more keys: small and positive; more rows read more cache per weight
    expected = generation["expected"]
    assert 0 < expected["flops"] < 0.5 and 0 < expected["bytes_b1"] < expected["bytes_b8"] < 0.5
    assert set(result["ratios"]) >= {"full_mfu", "prefix_vs_full", "gen_prefix_cost_b1",
                                     "gen_prefix_cost_b8", "memory_prefix_vs_full"}
    assert all(math.isfinite(v) for v in result["ratios"].values())
    assert "torch" in result["environment"] and "threads" in result["environment"]


@pytest.mark.slow
def test_trainable_counts_equal_the_closed_forms(result):
    expected = closed_forms(result["config"])
    for r in result["training"]["rows"]:
        assert r["trainable"] == expected[r["method"]], r["method"]
    c = result["memory_config"]
    memory = result["memory"]
    assert memory["prefix"]["trainable"] == c["n_layer"] * 2 * c["virtual"] * c["n_embd"]
    assert memory["full fine-tuning"]["trainable"] == closed_forms(
        {**c, "mid": 0, "lora_r": 0, "bottleneck": 0})["full fine-tuning"]


@pytest.mark.slow
def test_frozen_base_gets_no_gradients_no_state_and_no_weight_gradient_flops(result):
    training = result["training"]
    assert training["base_unchanged"]  # bit-identical (SHA-256) after every tuning step
    rows = {r["method"]: r for r in training["rows"]}
    assert all(r["frozen_checks_passed"] for r in rows.values())
    # matmul FLOPs per position / N: ~6 with weight gradients, ~4 without (deterministic counts)
    assert 5.5 < rows["full fine-tuning"]["flops_per_position_over_n"] <= 6.0
    for m in ("prompt", "prefix", "prefix + MLP", "deep prompt", "LoRA", "adapter"):
        assert rows[m]["flops_per_position_over_n"] < 4.3, m
    # the minitx model and the reference compute the same loss on the same weights
    assert training["reference_loss_diff"] < 1e-5


@pytest.mark.slow
def test_prefix_and_its_mlp_are_built_once_per_generate_call(result):
    assert result["generation"]["prefix_builds_per_generate"] == 1
    assert result["generation"]["mlp_calls_per_generate"] == 1


@pytest.mark.slow
def test_prefix_tuning_allocates_less_than_full_fine_tuning(result):
    memory = result["memory"]
    assert 0 < memory["prefix"]["peak_mib"] < memory["full fine-tuning"]["peak_mib"]
    # what prefix tuning saves is at least the base's gradient and AdamW state
    saved = memory["full fine-tuning"]["before_step_mib"] - memory["prefix"]["before_step_mib"]
    assert saved > 0
    rows = {r["method"]: r for r in result["training"]["rows"]}
    assert rows["prefix"]["peak_mib"] < rows["full fine-tuning"]["peak_mib"]

