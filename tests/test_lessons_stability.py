"""Lesson 10 (training stability) runs in fast mode and shows what it claims: accumulation equals
the big batch to rounding (when micro-batches hold equal targets), resume after a kill is
bit-exact, the naive prefix cache under checkpointing gets wrong gradients while minitx's
checkpoint=True matches, the prompt parameter stays fp32 under bf16 autocast, the non-finite
guard keeps a finite checkpoint, and the exported prefix reproduces the trained module.

`run_lesson` executes the lesson's notebook cells once (module-scoped fixture); the tests read
its namespace, recompute printed figures independently (in float64 where "equal in exact
arithmetic" is the claim) and run the reference solutions of exercises 1 and 3.
Run alone: `python -m pytest tests/test_lessons_stability.py -q`.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from lesson_loader import run_lesson
import common  # lessons/ is on sys.path once lesson_loader is imported
from toyworld import make_split


@pytest.fixture(scope="module")
def lesson10():
    return run_lesson("10_training_stability.py")


def test_lesson_10_verdict_and_structure(lesson10):
    ns = lesson10
    v, n = ns["v_recipe"], len(common.SEEDS["fast"])
    assert isinstance(v, common.Verdict) and len(v.diffs) == n
    assert v.word in {"holds", "reversed", common.NOT_SHOWN, f"not shown (only {n} seeds)"}
    assert f"{v.claim}: {v.word}" in ns["OUTPUT"]
    assert all(len(losses) == n for losses in ns["stability"].values())
    # the verdict's differences are the table's numbers, paired per seed (negated losses)
    expected = [b - a for a, b in zip(ns["stability"]["warmup + clipping"],
                                      ns["stability"]["neither"])]
    assert v.diffs == pytest.approx(expected, abs=1e-12)
    # the printed first-step move: lr_at(0) * sqrt(entries) / norm; warmup divides it
    moves = ns["first_move"]
    warm = ns["recipe_configs"]["warmup + clipping"].warmup_steps
    assert moves["warmup + clipping"] == pytest.approx(moves["neither"] / warm, rel=1e-12)
    assert "Takeaway" in ns["OUTPUT"]


def test_lesson_10_accumulation_equals_the_big_batch(lesson10):
    ns = lesson10
    assert ns["accum_gradient_gap"]["returns"] < 1e-5  # float32 rounding
    assert ns["accum_gradient_gap"]["data_to_text"] > 1e-3  # unequal targets: not rounding
    assert ns["accum_loss_gap"] < 1e-4 and ns["accum_prompt_gap"] < 1e-4
    assert len(ns["big_losses"]) == len(ns["accum_losses"]) == ns["S"]["short"]


def test_lesson_10_accumulation_gap_recomputed_in_float64(lesson10):
    """Independently, in float64: micro-batches with equal target counts give the big batch's
    gradient exactly (to 1e-12); unequal counts (data_to_text) give the printed gap, which is
    therefore no rounding."""
    ns = lesson10
    base64 = copy.deepcopy(ns["base"]).double()
    for task, printed in ns["accum_gradient_gap"].items():
        batch = common.task_batches(ns["tok"], make_split(task, 16, "train", seed=1), 16)(0)
        tuned = ns["fresh"]("prompt", 0, base64)
        grads = []
        for micro in (1, 4):
            tuned.zero_grad()
            n = 16 // micro
            for i in range(micro):
                part = {k: v[i * n:(i + 1) * n] for k, v in batch.items()}
                (tuned(**part)[1] / micro).backward()
            grads.append(tuned.tasks["t"].embeddings.grad.clone())
        gap = ((grads[1] - grads[0]).abs().max() / grads[0].abs().max()).item()
        if task == "returns":
            assert gap < 1e-12
        else:
            assert gap == pytest.approx(printed, rel=1e-3)


def test_lesson_10_bf16_autocast_keeps_fp32_parameters(lesson10):
    ns = lesson10
    runs = ns["precision_runs"]
    assert runs["fp32"]["dtype"] == runs["bf16"]["dtype"] == "torch.float32"
    assert runs["bf16"]["tuned"].tasks["t"].embeddings.dtype == torch.float32
    assert ns["logits_dtype"] == "torch.bfloat16"
    lost, updates = ns["lost"], ns["UPDATES"]
    assert all(lost[u]["fp32"] == 0.0 for u in updates)
    bf16 = [lost[u]["bf16"] for u in updates]  # a smaller update can only be lost more often
    assert bf16 == sorted(bf16) and bf16[-1] > 0
    # recompute the last row: an update of u vanishes in bf16 where round(x - u) == x
    x, u = ns["trained"].bfloat16(), updates[-1] * ns["direction"]
    share = ((x.double() - u.double()).bfloat16() == x).double().mean().item() * 100
    assert abs(share - bf16[-1]) <= 100 / x.numel() + 1e-9


def test_lesson_10_non_finite_guard_keeps_the_last_good_checkpoint(lesson10):
    ns = lesson10
    guard = ns["guard"]
    assert guard["stopped"]
    assert f"(step {guard['saved step']})" in ns["guard_message"]
    assert guard["saved step"] >= 1 and guard["saved finite"]
    assert ns["unguarded_nan"] == 100.0


def test_lesson_10_resume_is_bit_exact(lesson10):
    ns = lesson10
    resume, every, kill = ns["resume"], ns["S"]["every"], ns["KILL_AT"]
    assert resume["same losses"] and resume["same prompt"]
    assert resume["saved step"] == every * (kill // every)  # the last checkpoint before the kill
    assert len(ns["resumed_losses"]) == ns["S"]["short"]
    assert ns["refusal"] is not None and "another run" in ns["refusal"]


def test_lesson_10_lora_and_prompt_compose(lesson10):
    ns = lesson10
    assert ns["lora_prompt"]["base unchanged"]
    assert ns["composite_gap"] < 1e-4
    assert ns["lora"].merged is False  # the copy was merged, never the trained LoRA itself
    assert all(p.requires_grad is False for p in ns["base"].parameters())


def test_lesson_10_checkpointing_pitfall(lesson10):
    ns = lesson10
    gaps = ns["checkpoint_gaps"]
    assert max(gaps["naive, no checkpointing"].values()) < 1e-6  # the wrapper itself is right
    assert gaps["naive, reentrant checkpoint"]["prefix"] is None  # the prefix got no gradient
    assert gaps["naive, reentrant checkpoint"]["embeds"] > 1e-2  # and the inputs a wrong one
    assert gaps["naive, non-reentrant checkpoint"] is None  # refused by torch
    assert "CheckpointError" in ns["checkpoint_refusal"]
    assert max(gaps["minitx, checkpoint=True"].values()) < 1e-6
    assert max(gaps["minitx, checkpoint=False"].values()) == 0.0
    assert ns["checkpointed_base"].config.checkpoint and not ns["base"].config.checkpoint


def test_lesson_10_mlp_order_and_export(lesson10):
    ns = lesson10
    check = ns["export_check"]
    assert check["values gap"] < 1e-6 and check["gradient gap"] < 1e-4
    assert check["dropout rows gap"] > 0  # per-row dropout: rows of one batch differ
    assert check["logits gap"] < 1e-5
    reparam = ns["reparam"]
    assert check["parameters kept"] == len(reparam.layers) * 2 * reparam.length * \
        ns["base"].config.n_embd


def test_lesson_10_exercise_1_eight_micro_batches(lesson10):
    """Exercise 1: with 8 micro-batches of 2 rows, returns still matches the big batch to
    rounding; data_to_text, with unequal target counts, does not."""
    ns = lesson10
    gaps = {}
    for task in ("returns", "data_to_text"):
        batch = common.task_batches(ns["tok"], make_split(task, 16, "train", seed=1), 16)(0)
        tuned = ns["fresh"]("prompt", 0)
        whole, pieces = ns["prompt_gradient"](tuned, batch, 1), ns["prompt_gradient"](tuned,
                                                                                       batch, 8)
        gaps[task] = ((pieces - whole).abs().max() / whole.abs().max()).item()
    assert gaps["returns"] < 1e-5 < 1e-3 < gaps["data_to_text"]


def test_lesson_10_exercise_3_fixed_wrapper(lesson10):
    """Exercise 3: a layer that takes the prefix as an argument and returns its keys instead of
    storing them is a pure function, so both checkpoints give minitx's gradients."""
    ns = lesson10
    base, targets = ns["base"], ns["targets"]
    tr = base.transformer

    def layer(block, x, k, v):
        out, kv, _ = block(x, (k, v))
        return out

    def fixed_forward(kv, embeds, reentrant):
        P = kv[0][0].size(2)
        x = embeds + tr.wpe.weight[P:P + embeds.size(1)]
        for block, (k, v) in zip(tr.h, kv):
            x = checkpoint(layer, block, x, k, v, use_reentrant=reentrant)
        logits = base.lm_head(tr.ln_f(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1), []

    reference = ns["gradients"](ns["minitx_run"](base))
    for reentrant in (True, False):
        prefix_grad, embed_grad, _ = ns["gradients"](
            lambda kv, e, r=reentrant: fixed_forward(kv, e, r))
        assert prefix_grad is not None
        assert (prefix_grad - reference[0]).abs().max() <= 1e-6 * reference[0].abs().max()
        assert (embed_grad - reference[1]).abs().max() <= 1e-6 * reference[1].abs().max()
