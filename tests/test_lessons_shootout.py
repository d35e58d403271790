"""Lessons 09 (the shoot-out, at default sizes and at a matched budget) and 11 (prompt tuning and
scale), each run once in fast mode with run_lesson.

The tests read the lessons' namespaces and check the structure of every verdict (paired per seed,
recomputed from the printed scores), recompute the parameter counts and the matched budgets
independently from minitx.tuning's modules, check the memory and file figures against the counts,
and check the exercises' reference solutions. They assert no score that shifts with numerics:
only directions that hold by construction (memory, files) or for a frozen base.
Run alone: `python -m pytest tests/test_lessons_shootout.py -q`.
"""
import inspect
import json

import pytest
import torch

from lesson_loader import run_lesson
import common  # lessons/ is on sys.path once lesson_loader is imported
from common import SEEDS, NOT_SHOWN, Verdict
from minitx.tuning import LoRA, Adapter, Prefix, SoftPrompt, Tuned
from toyworld import make_split

N_SEEDS = len(SEEDS["fast"])
WORDS = {"holds", "reversed", NOT_SHOWN, f"not shown (only {N_SEEDS} seeds)"}


def trainable(module):
    """Trainable parameters, counted here (not with count_parameters)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_verdict(v, a, b):
    """A Verdict on the fast seeds whose differences are a - b, seed by seed."""
    assert isinstance(v, Verdict) and v.word in WORDS
    assert len(v.diffs) == N_SEEDS == len(a) == len(b)
    assert v.diffs == pytest.approx([x - y for x, y in zip(a, b)])


@pytest.fixture(scope="module")
def ns09():
    return run_lesson("09_shootout.py")


@pytest.fixture(scope="module")
def ns11():
    return run_lesson("11_scale.py")


@pytest.fixture(scope="module")
def small():
    return common.load_base("small")


# ---- lesson 09 ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_09_every_verdict_is_paired_per_seed(ns09):
    bleu = lambda arm: [s["bleu"] for s in arm["scores"]]  # noqa: E731
    default, matched = ns09["shootout"], ns09["matched"]
    assert list(default) == ["prompt", "prefix (direct)", "prefix (MLP)", "LoRA", "adapter",
                             "full FT"]
    assert set(ns09["default_verdicts"]) == {
        ("prefix (MLP)", o) for o in ("prompt", "prefix (direct)", "LoRA", "adapter", "full FT")
    } | {("prefix (direct)", o) for o in ("prompt", "LoRA", "adapter", "full FT")}
    for (ref, other), v in ns09["default_verdicts"].items():
        check_verdict(v, bleu(default[ref]), bleu(default[other]))
    assert len(ns09["matched_verdicts"]) == 7
    for (ref, other), v in ns09["matched_verdicts"].items():
        check_verdict(v, bleu(matched[ref]), bleu(matched[other]))
    check_verdict(ns09["paper_pair"], bleu(default["prefix (MLP)"]), bleu(matched["adapter"]))
    for arm in list(default.values()) + list(matched.values()):
        assert len(arm["scores"]) == N_SEEDS
        assert all(0 <= s[k] <= 100 for s in arm["scores"] for k in ("bleu", "rouge_l", "exact"))
        assert len(arm["curve"]) == ns09["S"]["steps"]
    assert "4.1 BLEU" in ns09["OUTPUT"] and "Takeaway" in ns09["OUTPUT"]


@pytest.mark.slow
def test_09_matched_budgets_are_within_ten_percent(ns09, small):
    """Rebuild every matched arm from minitx.tuning and count it here: within ±10% of the target,
    the direct default prefix's size; the MLP prefix keeps exactly the target."""
    base, _ = small
    target = trainable(Prefix(base, 10))
    assert target == ns09["TARGET"] == 4 * 2 * 10 * 128
    sizes = ns09["matched_sizes"]
    modules = {"prompt": SoftPrompt(base, sizes["prompt"]["n_virtual"]),
               "prefix (direct)": Prefix(base, sizes["prefix (direct)"]["n_virtual"]),
               "prefix (MLP)": Prefix(base, sizes["prefix (MLP)"]["n_virtual"],
                                      mid=sizes["prefix (MLP)"]["mid"]),
               "LoRA": LoRA(base, r=sizes["LoRA"]["lora_r"], alpha=32),
               "adapter": Adapter(base, bottleneck=sizes["adapter"]["bottleneck"])}
    for label, module in modules.items():
        assert 0.9 <= trainable(module) / target <= 1.1, (label, trainable(module))
    assert trainable(modules["prefix (MLP)"].export()) == target  # its file matches too
    # the knob each arm got is the closest whole number: one step either way is farther
    knobs = {"prompt": "n_virtual", "prefix (MLP)": "mid", "LoRA": "lora_r",
             "adapter": "bottleneck"}
    for label, knob in knobs.items():
        method, value = ns09["METHOD_OF"][label], sizes[label][knob]
        off = {v: abs(ns09["counted"](method, dict(sizes[label], **{knob: v}))[0] - target)
               for v in (value - 1, value, value + 1) if v >= 1}
        assert min(off, key=off.get) == value, label
    # Li & Liang's count: the default MLP prefix keeps the target and trains far more
    kept_arm = ns09["matched"]["prefix (MLP), kept"]
    assert kept_arm["sizes"]["mid"] == 128
    trained, kept = ns09["counted"]("prefix_mlp", kept_arm["sizes"])
    assert kept == target < 10 * target < trained
    assert ns09["budgets_match"]


@pytest.mark.slow
def test_09_closed_forms_and_projection(ns09, small):
    base, _ = small
    assert ns09["formulas_hold"]
    assert ns09["DEFAULT"] == {k: p.default for k, p in inspect.signature(
        common.build_method).parameters.items() if k in ns09["DEFAULT"]}
    closed, SMALL = ns09["closed_form"], ns09["SMALL"]
    assert closed("full", **SMALL, **ns09["DEFAULT"])[0] == sum(p.numel()
                                                                for p in base.parameters())
    assert ns09["gpt2_medium"] == 354_823_168  # GPT-2 medium's parameter count
    rows = {row["method"]: row for row in ns09["projection"]}
    assert 6 < rows["prefix (MLP)"]["trained %"] < 8  # Li & Liang: the MLP is ~7% of GPT-2-M
    assert rows["prefix (MLP)"]["kept %"] == rows["prefix (direct)"]["kept %"]
    assert rows["prompt"]["kept %"] < 0.01  # 10 tokens: below the article's range
    n_base = sum(p.numel() for p in base.parameters())
    for row in ns09["costs"]:  # the kept share, recomputed: a full copy is the whole model
        kept = int(row["kept"].replace(",", ""))
        share = 100.0 if row["arm"] == "full FT" else 100 * kept / (n_base + kept)
        assert row["kept %"] == pytest.approx(share)
    for label, sizes in ns09["matched_sizes"].items():  # the formulas at the matched sizes too
        method = ns09["METHOD_OF"][label]
        assert closed(method, **SMALL, **sizes) == ns09["counted"](method, sizes)


@pytest.mark.slow
def test_09_memory_and_files_follow_from_the_counts(ns09):
    arms, full = ns09["shootout"], ns09["shootout"]["full FT"]
    for label, arm in arms.items():
        trained, kept = ns09["counted"](arm["method"], ns09["DEFAULT"])
        memory = arm["memory"]
        assert memory["grads"] == 4 * trained and memory["adam"] == 8 * trained  # fp32
        assert memory["total"] == sum(memory[k] for k in ("weights", "grads", "adam",
                                                          "activations"))
        assert 4 * kept <= arm["file bytes"] <= 4 * kept + 64 * 1024  # weights + pickling
        if label != "full FT":  # robust by construction: no base gradients or AdamW state
            assert memory["total"] < full["memory"]["total"]
            assert arm["file bytes"] < full["file bytes"] / 10
    # the soft prompt lengthens every sequence, so it saves more activations than a prefix
    assert arms["prompt"]["memory"]["activations"] > arms["prefix (direct)"]["memory"][
        "activations"]


def test_09_training_memory_is_deterministic_and_leaves_no_gradients(ns09, small):
    base, tok = small
    tuned = Tuned(base)
    tuned.add("task", LoRA(base, r=4, alpha=32))
    batch = common.task_batches(tok, make_split("returns", 16, "train"), 16)(0)
    first = ns09["training_memory"](tuned.train(), batch)
    assert first == ns09["training_memory"](tuned, batch)
    assert all(p.grad is None for p in tuned.parameters())


@pytest.mark.slow
def test_09_learning_rates_come_from_the_committed_file(ns09):
    data = json.loads((common.RESULTS / "learning_rates.json").read_text())
    assert ns09["LR"] == data["choices"]["returns"]
    above = [t for t, c in data["choices"].items()
             if all(c[m] > c["full"] for m in c if m != "full")]
    assert ns09["above"] == above
    assert f"on {len(above)} of {len(data['choices'])} tasks" in ns09["OUTPUT"]


def test_09_exercise_1_a_prompt_as_large_as_rank_1_lora(small):
    """Reference solution: 16 tokens of width 128 = rank 1 on c_attn over 4 layers, and only 16."""
    base, _ = small
    lora = trainable(LoRA(base, r=1))
    matches = [n for n in range(1, 65) if trainable(SoftPrompt(base, n)) == lora]
    assert matches == [16]


def test_09_exercise_2_the_papers_prefix_trains_far_more_than_it_keeps(small):
    base, _ = small
    torch.manual_seed(0)
    prefix = common.build_method("prefix_mlp", base, mid=512)
    exported = prefix.export()
    assert trainable(prefix) > 50 * trainable(exported)
    assert trainable(exported) == 4 * 2 * 10 * 128
    assert torch.equal(prefix.values(), exported.values())


# ---- lesson 11 ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_11_verdicts_are_paired_per_seed(ns11):
    sizes = list(common.SIZES)
    assert list(ns11["results"]) == ["reverse", "first_last"]  # fast mode runs both tasks
    for task, by_size in ns11["results"].items():
        assert list(by_size) == sizes
        for size, r in by_size.items():
            assert len(r["prompt"]) == len(r["full"]) == N_SEEDS
            assert all(0 <= x <= 100 for x in r["prompt"] + r["full"])
            assert r["gap"] == pytest.approx([f - p for f, p in zip(r["full"], r["prompt"])])
            check_verdict(ns11["verdicts"][task, size], r["full"], r["prompt"])
        check_verdict(ns11["closes"][task], by_size[sizes[0]]["gap"], by_size[sizes[-1]]["gap"])
    assert [r["params"] for r in ns11["results"]["reverse"].values()] == sorted(
        r["params"] for r in ns11["results"]["reverse"].values())
    # the scale verdict says plainly that the bases themselves are not sampled
    assert ns11["BASES_NOT_SAMPLED"].startswith("not shown")
    assert ns11["OUTPUT"].count(ns11["BASES_NOT_SAMPLED"]) == len(ns11["results"]) + 1


@pytest.mark.slow
def test_11_frozen_bases_read_their_pretrained_instruction(ns11):
    """No training involved: every frozen base answers reverse when asked in a pretrained
    phrasing and not from the bare input; first_last was never pretrained (exercise 2)."""
    for size, r in ns11["results"]["reverse"].items():
        assert r["instructed"] >= 75 and r["frozen"] < r["instructed"], size
    assert all(r["instructed"] <= 25 for r in ns11["results"]["first_last"].values())


@pytest.mark.slow
def test_11_init_ablation_reuses_the_same_prompts(ns11):
    """The ablation's "vocab" column is the comparison's prompt arm: the same seed draws the same
    initial vectors in train_method and in the ablation's own construction."""
    for size, r in ns11["inits"].items():
        assert r["vocab"] == ns11["results"]["reverse"][size]["prompt"]
        assert all(len(r[name]) == N_SEEDS for name in ("random", "vocab", "text"))
        check_verdict(ns11["init_verdicts"][size], r["vocab"], r["random"])
    base, _ = common.load_base("tiny")
    for seed in SEEDS["fast"]:
        common.seed_everything(seed)
        built = common.build_method("prompt", base, n_virtual=ns11["N_VIRTUAL"]).embeddings
        common.seed_everything(seed)
        direct = SoftPrompt(base, ns11["N_VIRTUAL"], init="vocab").embeddings
        assert torch.equal(built, direct)


@pytest.mark.slow
def test_11_exercise_1_prompt_share_by_hand(ns11):
    """Reference solution: a token is one vector of the model's width; the share is against the
    base's parameters, counted here."""
    for row in ns11["base_rows"]:
        base, _ = common.load_base(row["size"])
        n = sum(p.numel() for p in base.parameters())
        assert row["parameters"] == f"{n:,}"
        assert row["prompt %"] == pytest.approx(100 * 10 * base.config.n_embd / n)
    shares = [row["prompt %"] for row in ns11["base_rows"]]
    assert shares == sorted(shares, reverse=True)  # the share shrinks as the base grows
