"""Lessons 09 (the PEFT shoot-out) and 11 (prompt tuning and scale) in fast mode.

Each lesson's `main(fast=True)` returns the numbers it printed; these tests check their shape and
range, and recompute some of them independently (parameter shares, memory terms, file sizes, the
scale lesson's gap and prompt share), so a lesson cannot silently print something it did not
measure. The scale lesson runs on whichever base checkpoints exist, and a test fakes a checkpoint
folder holding only the small base to check that missing sizes are skipped.
Run alone: `python -m pytest tests/test_lessons_shootout.py -q`.
"""
import shutil

import pytest

from lesson_loader import load_lesson, run_fast

METHODS = ["prompt tuning", "prefix tuning", "deep prompt", "LoRA", "adapter", "full fine-tuning"]


@pytest.fixture(scope="module")
def shootout():
    module = load_lesson("09_shootout.py")
    return module, run_fast(module)


# ---- lesson 09 ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_09_tables_have_every_method_and_column(shootout):
    _, r = shootout
    for task, metrics in (("intent", ["accuracy"]), ("returns", ["exact", "bleu", "rouge_l"])):
        rows = r[task]["rows"]
        assert [row["method"] for row in rows] == METHODS
        for row in rows:
            for column in ["lr", "trainable", "trainable %", "kept", "kept %", "file KB",
                           "step CPU ms", "act. MB", "train MB", *metrics]:
                assert column in row, (task, column)
            assert all(0.0 <= row[m] <= 100.0 for m in metrics)
            assert row["step CPU ms"] > 0 and row["act. MB"] > 0
        assert set(r[task]["curves"]) == set(METHODS)
        assert all(len(c) == r[task]["steps"] for c in r[task]["curves"].values())


@pytest.mark.slow
def test_09_parameter_shares_are_computed(shootout):
    """trainable % = 100 * trainable / (base + trainable), with the base counted independently."""
    module, r = shootout
    base, _ = module.load_base("small")
    n_base = sum(p.numel() for p in base.parameters())
    assert r["base_params"] == n_base == 844_800
    for task in ("intent", "returns"):
        for row in r[task]["rows"]:
            if row["method"] == "full fine-tuning":
                assert row["trainable"] == row["kept"] == n_base and row["trainable %"] == 100.0
            else:
                assert row["trainable %"] == pytest.approx(
                    100 * row["trainable"] / (n_base + row["trainable"]))
                assert row["kept %"] == pytest.approx(100 * row["kept"] / (n_base + row["kept"]))
    rows = {row["method"]: row for row in r["returns"]["rows"]}
    C, L = 128, 4
    assert rows["prompt tuning"]["trainable"] == 10 * C
    assert rows["prefix tuning"]["kept"] == rows["deep prompt"]["kept"] == 2 * L * 10 * C
    assert rows["prefix tuning"]["trainable"] > 10 * rows["prefix tuning"]["kept"]  # the MLP
    assert rows["LoRA"]["trainable"] == L * 8 * (C + 3 * C)
    intent = {row["method"]: row for row in r["intent"]["rows"]}
    assert intent["deep prompt"]["trainable"] == 2 * L * 10 * C + 3 * C + 3  # + the linear head


@pytest.mark.slow
def test_09_closed_forms_and_gpt2_medium_projection(shootout):
    _, r = shootout
    assert r["closed_form_ok"]
    assert r["gpt2_medium_total"] == 354_823_168  # GPT-2 medium's parameter count
    share = {row["method"]: row for row in r["projection"]}
    assert 0.1 <= share["prefix tuning"]["kept %"] <= 1  # inside the article's ranges
    assert 0.05 <= share["LoRA"]["kept %"] <= 0.5
    assert 0.5 <= share["adapter"]["kept %"] <= 3
    assert share["prompt tuning"]["kept %"] < 0.01  # 10 tokens: below the article's range
    assert 6 < share["prefix tuning"]["trained %"] < 8  # FACTS.md: the MLP is ~7% of GPT-2-M


@pytest.mark.slow
def test_09_memory_and_files_follow_from_the_parameters(shootout):
    _, r = shootout
    for task in ("intent", "returns"):
        raw = r[task]["raw"]
        for row in r[task]["rows"]:
            memory = raw[row["method"]]["memory"]
            assert memory["grads"] == 4 * row["trainable"]  # fp32
            assert memory["adam"] == 8 * row["trainable"]  # exp_avg + exp_avg_sq
            assert memory["total"] == sum(memory[k] for k in ("weights", "grads", "adam",
                                                              "activations"))
            assert row["train MB"] == pytest.approx(memory["total"] / 2**20)
            size = raw[row["method"]]["file_bytes"]
            assert 4 * row["kept"] <= size <= 4 * row["kept"] + 64 * 1024  # weights + pickling
        full = raw["full fine-tuning"]["memory"]["total"]
        assert all(raw[m]["memory"]["total"] < full for m in METHODS[:-1])


def test_09_training_memory_is_deterministic(shootout):
    module, _ = shootout
    base, tok = module.load_base("small")
    examples = module.make_split("returns", 16, "train")
    model = module.build("LoRA", base, tok, "returns").train()
    batch = module.batches(tok, "returns", examples, head=False)(0)
    first, second = module.training_memory(model, batch), module.training_memory(model, batch)
    assert first == second
    assert all(p.grad is None for p in model.parameters())  # leaves no gradients behind


def test_09_exported_prefix_file_keeps_the_prefix_only(shootout):
    module, _ = shootout
    base, tok = module.load_base("small")
    model = module.build("prefix tuning", base, tok, "returns")
    trainable, kept, _ = module.parameter_counts("prefix tuning", model, "returns")
    assert kept == 2 * 4 * 10 * 128 < trainable
    assert 4 * kept <= module.file_bytes("prefix tuning", model, "returns") <= 4 * kept + 16 * 1024


# ---- lesson 11 ---------------------------------------------------------------------------------
def check_scale_result(r, sizes):
    assert r["sizes"] == sizes
    assert list(r["tasks"]) == r["mode"]["tasks"] == ["reverse", "first_last"]  # fast: both
    for task in ("reverse", "first_last"):
        rows = r["tasks"][task]
        assert [row["size"] for row in rows] == sizes
        for row in rows:
            assert row["gap"] == pytest.approx(row["full FT exact"] - row["prompt exact"])
            assert len(row["gaps"]) == len(r["mode"]["seeds"])
            assert min(row["gaps"]) <= row["gap"] <= max(row["gaps"])
            for key in ("frozen, instructed", "frozen exact", "prompt exact", "full FT exact",
                        "prompt ROUGE-L", "full FT ROUGE-L"):
                assert 0.0 <= row[key] <= 100.0
        assert [row["params"] for row in rows] == sorted(row["params"] for row in rows)
    assert set(r["verdicts"]) == {"reverse", "first_last"}


@pytest.mark.slow
def test_11_scale_runs_on_the_sizes_present():
    module = load_lesson("11_scale.py")
    present = [s for s in ("tiny", "small", "medium")
               if (module.CHECKPOINTS / f"base_{s}.pt").exists()]
    r = run_fast(module)
    check_scale_result(r, present)
    for row in r["tasks"]["reverse"]:  # the prompt share and the size, recomputed
        base, _ = module.load_base(row["size"])
        n = sum(p.numel() for p in base.parameters())
        assert row["params"] == n
        assert row["prompt %"] == pytest.approx(100 * 10 * base.config.n_embd / n)
    if present == ["tiny", "small", "medium"]:  # the committed course: all three sizes
        assert [row["params"] for row in r["tasks"]["reverse"]] == sorted(
            {row["params"] for row in r["tasks"]["reverse"]})
        assert all("->" in v for v in r["verdicts"].values())


@pytest.mark.slow
def test_11_scale_skips_missing_sizes(tmp_path, monkeypatch, capsys):
    """With only the small checkpoint, the lesson says which sizes it skipped and still runs."""
    module = load_lesson("11_scale.py")
    shutil.copy(module.CHECKPOINTS / "base_small.pt", tmp_path / "base_small.pt")
    monkeypatch.setattr(module, "CHECKPOINTS", tmp_path)
    assert module.available_sizes() == ["small"]
    out = capsys.readouterr().out
    assert "'tiny' skipped" in out and "'medium' skipped" in out
    r = run_fast(module)
    check_scale_result(r, ["small"])
    assert all(v == "needs two sizes or more" for v in r["verdicts"].values())


def test_10_verdict_needs_the_seed_ranges_apart():
    module = load_lesson("11_scale.py")
    row = lambda size, gaps: {"size": size, "gaps": gaps, "gap": sum(gaps) / len(gaps)}  # noqa
    assert module.verdict([row("tiny", [90, 80])]) == "needs two sizes or more"
    assert module.verdict([row("tiny", [90, 80]), row("medium", [20, 70])]).endswith("closes")
    assert module.verdict([row("tiny", [10, 20]), row("medium", [30, 40])]).endswith("widens")
    assert "no clear trend" in module.verdict([row("tiny", [10, 60]), row("medium", [30, 40])])
    assert "+85.0 (tiny) -> +45.0 (medium)" in module.verdict([row("tiny", [90, 80]),
                                                              row("medium", [20, 70])])
