"""Lesson 14 (speed and memory), run once in fast mode with run_lesson; its tables are measured.

No timing is asserted (test machines are shared and noisy). The tests check the structure of
every table and that every ratio is finite and positive; recompute the trainable counts from
their closed forms and the matmul FLOPs that checkpointing adds (one more forward pass of the
blocks, exactly); check the frozen-base checks, that the profiler's noise stays off the error
stream, that the bare-ops floor and `generate` produce the same tokens (and a prefix the same as
its keys handed in as a cache), that the prefix and its MLP are built once per generate call,
and that every memory row ran in a process of its own, at or above the floor, whose computed
size is exercise 1's closed form.
Run alone: `python -m pytest tests/test_lessons_speed.py -q`.
"""
import math
import os

import pytest
import torch

from lesson_loader import run_lesson
from minitx import GPT, Config

FILENAME = "14_speed_and_memory.py"
METHODS = ["full FT", "prompt", "prefix", "prefix + MLP", "LoRA", "adapter", "reference GPT",
           "full FT + ckpt", "prefix + ckpt"]
FROZEN = ["prompt", "prefix", "prefix + MLP", "LoRA", "adapter"]
MEMORY_ROWS = ["weights only", "full FT", "full FT + ckpt", "prefix", "prefix + ckpt",
               "prefix + ckpt + chunk", "LoRA + ckpt"]


@pytest.fixture(scope="module")
def ns():
    return run_lesson(FILENAME)


def positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def full_count(L, C, V, S):
    """Exercise 1: GPT-2's parameters with the output head tied to the embedding."""
    return V * C + S * C + L * (12 * C * C + 13 * C) + 2 * C


def closed_forms(s):
    L, C, V, S, n = s.n_layer, s.n_embd, s.vocab_size, s.block_size, s.virtual
    m, r, b = s.mid, s.lora_r, s.bottleneck
    full = full_count(L, C, V, S)
    return {"full FT": full, "reference GPT": full, "full FT + ckpt": full, "prompt": n * C,
            "prefix": L * 2 * n * C, "prefix + ckpt": L * 2 * n * C,
            "prefix + MLP": n * C + (C * m + m) + (m * 2 * L * C + 2 * L * C),
            "LoRA": L * r * (C + 3 * C),
            "adapter": 2 * L * (2 * C * b + b + C)}


@pytest.mark.slow
def test_training_table_has_every_method_with_finite_positive_numbers(ns):
    rows = ns["training_rows"]
    assert [r["method"] for r in rows] == METHODS
    columns = ["method", "ms/step", "× full", "tok/s", "MFU %", "+attn %", "mm/pos/N", "trainable"]
    for r in rows:
        assert list(r) == columns
        assert all(positive(r[c]) for c in columns[1:]), r
        assert r["MFU %"] < r["+attn %"]  # attention FLOPs add to the model FLOPs
    assert rows[0]["× full"] == 1.0
    assert all(positive(v) for v in ns["recompute"].values())
    assert all(positive(v) for v in ns["results"].values()), ns["results"]
    assert ns["DEVICE"].type in ("cpu", "cuda") and ns["DEVICE"].type in ns["OUTPUT"]


@pytest.mark.slow
def test_trainable_counts_equal_the_closed_forms(ns):
    expected = closed_forms(ns["s"])
    for method, row in ns["training"].items():
        assert row["trainable"] == expected[method], method


@pytest.mark.slow
def test_frozen_base_gets_no_weight_gradients_and_checkpointing_adds_one_forward(ns):
    assert ns["base_unchanged"]  # bit-identical (SHA-256) after every tuning step
    assert ns["reference_loss_diff"] < 1e-5  # minitx and the 12-line reference: the same loss
    mm = {m: t["mm_per_position"] for m, t in ns["training"].items()}
    assert 5.5 < mm["full FT"] <= 6.0  # ~6 per weight: forward, input and weight gradients
    assert all(mm[m] < 4.3 for m in FROZEN)  # ~4: no weight gradient of a frozen weight
    # the recompute is one more forward pass through the blocks' matmuls: 2 · L · 12C² per
    # position (Q, K, V, output projection, MLP), nothing in the LM head
    s, n = ns["s"], ns["runs"]["full FT"].n
    extra = 2 * s.n_layer * 12 * s.n_embd**2 / n
    assert mm["full FT + ckpt"] - mm["full FT"] == pytest.approx(extra, rel=1e-9)
    assert mm["prefix + ckpt"] - mm["prefix"] == pytest.approx(extra, rel=1e-9)


@pytest.mark.slow
def test_the_profiler_writes_nothing_to_the_error_stream(ns, capfd):
    capfd.readouterr()
    ns["counted_step"](ns["runs"]["prefix"].step)
    assert "USDT" not in capfd.readouterr().err


@pytest.mark.slow
def test_generation_table_floor_and_prefix_agree_token_for_token(ns):
    rows = ns["generation_rows"]
    assert [r["decoder"] for r in rows] == ["bare ops (floor)", "generate", "generate, again",
                                             "16 cached keys", "prefix 16", "prefix 16 + MLP"]
    for r in rows:
        assert list(r) == ["decoder", "tok/s b1", "× floor b1", "tok/s b8", "× floor b8"]
        assert all(positive(v) for k, v in r.items() if k != "decoder"), r
    assert rows[0]["× floor b1"] == rows[0]["× floor b8"] == 1.0
    assert ns["same_tokens"] == {"floor": True, "prefix": True}
    assert all(positive(v) for v in ns["prefix_ratio"].values())
    new = ns["gen"].new
    for (decoder, batch), tokens in ns["outputs"].items():
        assert tokens.shape == (batch, new), decoder


@pytest.mark.slow
def test_prefix_and_its_mlp_are_built_once_per_generate_call(ns):
    assert ns["per_call"]["prefix 16"]["prefix"] == 1
    assert ns["per_call"]["prefix 16 + MLP"]["mlp"] == 1


@pytest.mark.slow
def test_memory_rows_ran_in_processes_of_their_own_at_or_above_the_floor(ns):
    measured, m = ns["measured"], ns["m"]
    assert len(measured) == 1 + (len(MEMORY_ROWS) - 1) * len(m.seqs)
    pids = [r["pid"] for r in measured]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    for seq in m.seqs:
        rows = ns["memory"][seq]
        assert [r["row"] for r in rows] == MEMORY_ROWS
        floor = rows[0]["peak_mib"]
        for r in rows:
            assert positive(r["peak_mib"]) and positive(r["vs_full"]) and positive(r["vs_floor"])
            assert r["peak_mib"] >= floor, r
        by_row = {r["row"]: r for r in rows}
        assert by_row["full FT"]["vs_full"] == 1.0 and by_row["weights only"]["vs_floor"] == 1.0
        # gradients and AdamW moments of the base: full FT holds more than any frozen base
        assert all(by_row["full FT"]["peak_mib"] > by_row[r]["peak_mib"]
                   for r in ("prefix", "prefix + ckpt", "prefix + ckpt + chunk", "LoRA + ckpt"))
        table = ns["memory_tables"][seq]
        assert [list(r) for r in table] == [
            ["configuration", "peak MiB", "÷ full FT", "÷ floor", "trainable"]] * len(rows)
    for seq, t in ns["targets"].items():
        assert t["met"] == (t["got"] <= t["target"]) and positive(t["got"])


@pytest.mark.slow
def test_exercise_1_the_floor_is_the_closed_form(ns):
    m, s = ns["m"], ns["s"]
    floor = ns["floor"]
    assert floor["weights"] == 4 * full_count(m.n_layer, m.n_embd, m.vocab_size,
                                              max(m.seqs) + s.virtual)
    for settings in (ns["SETTINGS"]["default"]["memory"], ns["GPT2_SMALL"]):
        L, C, V = settings["n_layer"], settings["n_embd"], settings["vocab_size"]
        S = max(settings["seqs"]) + s.virtual
        with torch.device("meta"):  # shapes only: no memory, no time
            model = GPT(Config(vocab_size=V, block_size=S, n_layer=L,
                               n_head=settings["n_head"], n_embd=C))
        assert sum(p.numel() for p in model.parameters()) == full_count(L, C, V, S)
