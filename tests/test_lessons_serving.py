"""Lessons 12, 15 and 16 run as notebooks in fast mode; the tests read what they computed.

12: task files, loading by name, one mixed-task batch, routing with the frozen base.
15: method choice: per-seed verdicts at the chosen learning rates, costs, mixed batches, the
    decision rule.
16: the article's claims against the papers: learning-rate direction, prefix vs prompt, T5 counts.
Each lesson runs once (module-scoped fixture). The tests check the structure of every verdict,
shapes, exact counts, at least one printed figure per lesson recomputed independently, the
directions that hold on every seed, and the reference solutions of the exercises that have one.
Run alone: `python -m pytest tests/test_lessons_serving.py -q`.
"""
import copy
import json

import pytest
import torch
import torch.nn as nn

from lesson_loader import assert_verdict, run_lesson
import common  # lessons/ is on sys.path once lesson_loader is imported
from minitx.tuning import LoRA, Tuned, count_parameters
from toyworld import Example, prompt_text

N_SEEDS = len(common.SEEDS["fast"])


def number(text):
    """'10,240' -> 10240 (tables print counts with thousands separators)."""
    return int(str(text).replace(",", ""))


# ---- lesson 12: multi-task serving -------------------------------------------------------------
@pytest.fixture(scope="module")
def ns12():
    return run_lesson("12_multitask_serving.py")


def kept_numbers(method, c):
    """What a method's file holds at the course's standard sizes, counted from the shapes."""
    return {"prompt": 10 * c.n_embd,  # 10 soft-prompt embeddings
            "prefix": 2 * c.n_layer * 10 * c.n_embd,  # K and V, every layer, 10 positions
            "prefix_mlp": 2 * c.n_layer * 10 * c.n_embd,  # exported: the MLP is dropped
            "lora": c.n_layer * 4 * (c.n_embd + 3 * c.n_embd),  # r (in + out) on c_attn
            "adapter": 2 * c.n_layer * (2 * c.n_embd * 16 + 16 + c.n_embd)}[method]


@pytest.mark.slow
def test_lesson_12_methods_chosen_on_validation(ns12):
    """Each task's method is the lowest validation loss in the committed sweep (not test)."""
    sweep = json.loads((common.RESULTS / "learning_rates.json").read_text())
    for task, method in ns12["SERVICE"].items():
        losses = {m: min(sweep["validation_loss"][task][m].values()) for m in ns12["CANDIDATES"]}
        assert method == min(losses, key=losses.get) and "full" not in ns12["CANDIDATES"]
    for row in ns12["rows"]:
        assert row["lr"] == f"{common.chosen_lr(row['task'], row['method']):g}"


@pytest.mark.slow
def test_lesson_12_files_and_sizes(ns12):
    base, c = ns12["base"], ns12["base"].config
    files = {row["file"].split("/")[0]: row for row in ns12["files"]}
    for task, method in ns12["SERVICE"].items():
        kept = kept_numbers(method, c)
        assert number(files[task]["kept"]) == kept
        n_tensors = len(ns12["trainer"].tasks[task].state_dict())
        header = 2 + n_tensors  # torch.save's zip: about 1 KB per tensor, at most
        assert kept * 4 / 1024 <= files[task]["KB"] <= kept * 4 / 1024 + header  # fp32 numbers
        assert files[task]["KB"] < 0.06 * ns12["base_kb"]  # a task costs a few % of the model
    # Recompute the base's fp32 size independently of the lesson's buffer.
    total = sum(p.numel() for p in base.parameters())
    assert total * 4 / 1024 <= ns12["base_kb"] <= total * 4 / 1024 + 64
    assert ns12["adapters_kb"] == pytest.approx(sum(files[t]["KB"] for t in ns12["SERVICE"]))
    assert "Takeaway" in ns12["OUTPUT"] and f"{ns12['adapters_kb']:.0f} KB" in ns12["OUTPUT"]


@pytest.mark.slow
def test_lesson_12_load_switch_refuse_and_mixed_batch(ns12):
    assert ns12["reload_diff"] == 0.0 and ns12["use_diff"] == 0.0  # files round-trip exactly
    assert ns12["refusal"] and "another base" in ns12["refusal"]  # the fingerprint check
    assert ns12["mixed_fp32"] < 1e-4  # float32 rounding
    assert ns12["mixed_fp64"] < 1e-10  # and exact up to float64 rounding
    assert {"prefix", "soft_prompt"} <= set(ns12["kinds"]) and len(ns12["kinds"]) >= 3


@pytest.mark.slow
def test_lesson_12_routing_recomputed(ns12):
    """Each task's "routed right" figure, recomputed with common.classify on that task alone."""
    ns = ns12
    assert ns["routing_accuracy"] == pytest.approx(ns["classify_accuracy"])
    assert ns["identical"] == len(ns["right_route"])  # mixed batch answers == per-task answers
    labels = list(common.TASKS["intent"].labels)
    for row in ns["served"]:
        as_intent = [Example(e.source, row["task"], (row["task"],), row["task"])
                     for e in ns["tests"][row["task"]]]
        assert row["routed right"] == pytest.approx(
            common.classify(ns["base"], ns["tok"], as_intent, labels, ns["ROUTER"]))
        for key in ("frozen base", "module alone", "end to end", "looked up right"):
            assert 0.0 <= row[key] <= 100.0
    assert [row["task"] for row in ns["served"]] == list(ns["SERVICE"])


def test_lesson_12_parts_right(ns12):
    target = "yes you can return the red hat within 30 days"
    example = Example("i want to return the red hat", target, (target,))
    wrong_days = "yes you can return the red hat within 14 days"
    assert ns12["parts_right"]("returns", [wrong_days], [example]) == [100.0, 0.0]
    assert ns12["parts_right"]("returns", [target], [example]) == [100.0, 100.0]
    answer = "we recommend the running shoes"
    shoes = Example("my sister is a keen runner", answer, (answer,))
    assert ns12["parts_right"]("recommend", [answer], [shoes]) == [None, 100.0]


def test_lesson_12_exercise_1_same_query_three_tasks(ns12):
    """Exercise 1: one query under three tasks in one batch; each row equals it run alone."""
    example = ns12["tests"]["returns"][0]
    names = list(ns12["SERVICE"])
    assert ns12["mixed_vs_alone"](ns12["serving"], [example] * 3, names) < 1e-4


def test_lesson_12_exercise_2_prefixes_of_different_lengths(ns12):
    """Exercise 2: a 4-key prefix next to a 10-key prefix (and LoRA, prompt) in one batch."""
    base = ns12["base"]
    serving = Tuned(base)
    for name, module in ns12["mixer"].tasks.items():
        serving.add(name, module)
    torch.manual_seed(0)
    serving.add("shipping_short", common.build_method("prefix", base, n_virtual=4))
    names = ["prefix_untrained", "shipping_short", "shipping", "prompt_untrained",
             "shipping_short"]
    examples = [ns12["tests"]["shipping"][i] for i in range(len(names))]
    assert ns12["mixed_vs_alone"](serving, examples, names) < 1e-4
    # and the check can fail: the 4-key prefix changes the logits of its rows
    idx = torch.tensor([ns12["tok"].encode(prompt_text(examples[0]))])
    with torch.no_grad():
        assert (serving(idx, task="shipping_short")[0] - base(idx)[0]).abs().max() > 1e-3


def test_lesson_12_exercise_3_any_weight_changes_the_fingerprint(ns12):
    other = copy.deepcopy(ns12["base"])
    with torch.no_grad():
        other.transformer.h[-1].mlp.c_proj.weight[0, 0] += 1e-3  # the last layer this time
    with pytest.raises(ValueError, match="another base"):
        Tuned(other).load(ns12["directory"] / "returns")


# ---- lesson 15: choosing a method --------------------------------------------------------------
@pytest.fixture(scope="module")
def ns15():
    return run_lesson("15_choosing_a_method.py")


@pytest.mark.slow
def test_lesson_15_verdicts_at_chosen_rates(ns15):
    ns = ns15
    assert set(ns["verdicts"]) == {(t, a, b) for t in ns["TASK_LIST"] for a, b in ns["PAIRS"]}
    for (task, a, b), v in ns["verdicts"].items():
        assert_verdict(v)
        assert v.diffs == pytest.approx([x - y for x, y in zip(ns["scores"][task, a],
                                                               ns["scores"][task, b])])
    for (task, method), runs in ns["scores"].items():
        assert len(runs) == N_SEEDS and all(0.0 <= s <= 100.0 for s in runs)
    rows = {(r["task"], r["method"]): r for r in ns["rows"]}
    for task in ns["TASK_LIST"]:
        for method in ns["METHODS"]:
            assert rows[task, method]["lr"] == f"{common.chosen_lr(task, method):g}"
            assert rows[task, method]["score % (min-max)"] == common.spread(ns["scores"][task,
                                                                                         method])


@pytest.mark.slow
def test_lesson_15_frozen_intent_accuracy_recomputed(ns15):
    """The frozen base's intent accuracy (no instruction), recomputed from the logits by hand."""
    ns = ns15
    base, tok = ns["base"], ns["tok"]
    test_set = ns["data"]["intent"][1]
    labels = list(common.TASKS["intent"].labels)
    label_ids = [tok.encode(label)[0] for label in labels]
    right = 0
    for example in test_set:
        idx = torch.tensor([tok.encode(prompt_text(example))])
        with torch.no_grad():
            logits = base(idx)[0][0, -1, label_ids]
        right += labels[int(logits.argmax())] == example.label
    assert ns["frozen"]["intent"] == pytest.approx(100 * right / len(test_set))


@pytest.mark.slow
def test_lesson_15_parameter_counts(ns15):
    ns = ns15
    c = ns["base"].config
    L, C, P = c.n_layer, c.n_embd, 10
    costs = {row["method"]: row for row in ns["costs"]}
    mlp = P * C + (C * 128 + 128) + (128 * L * 2 * C + L * 2 * C)  # P', Linear, Linear
    expected = {"prompt": P * C, "prefix": 2 * L * P * C, "prefix_mlp": mlp,
                "lora": L * 4 * (C + 3 * C),  # r (in + out) on c_attn (Q, K and V)
                "adapter": 2 * L * (C * 16 + 16 + 16 * C + C),  # 2 adapters per layer
                "full": sum(p.numel() for p in ns["base"].parameters())}
    for method, n in expected.items():
        assert number(costs[method]["trained"]) == n
    assert ns["trained"] == {m: expected[m] for m in ns["METHODS"]}
    assert ns["kept"] == {"prompt": P * C, "prefix_mlp": 2 * L * P * C, "lora": expected["lora"]}


@pytest.mark.slow
def test_lesson_15_memory_and_deployment(ns15):
    costs = {row["method"]: row for row in ns15["costs"]}
    for row in costs.values():
        parts = row["weights KB"] + row["grad+AdamW KB"] + row["activations KB"]
        assert row["step total KB"] == pytest.approx(parts)
        assert row["% of full"] == pytest.approx(100 * row["step total KB"]
                                                 / costs["full"]["step total KB"])
    assert costs["full"]["grad+AdamW KB"] == pytest.approx(3 * costs["full"]["weights KB"])
    for method in ("prompt", "prefix", "prefix_mlp", "lora", "adapter"):
        assert costs[method]["step total KB"] < costs["full"]["step total KB"]  # a frozen base
    # a soft prompt lengthens every sequence: more activations than a prefix of the same length
    assert costs["prompt"]["activations KB"] > costs["prefix"]["activations KB"]
    assert all(d < 1e-4 for d in ns15["mixed_diff"].values())
    assert ns15["deployment"][-1]["max |diff| vs alone"] is None  # printed as n/a
    assert "n/a" in ns15["OUTPUT"]


def test_lesson_15_step_bytes_counts_saved_tensors(ns15):
    """y = x @ w, loss = sum(y ** 2): autograd saves x (for w's gradient) and y (for the
    square); w is a parameter and is not counted again."""
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 2))

        def forward(self, x):
            return None, (x @ self.w).pow(2).sum()

    out = ns15["step_bytes"](Tiny(), {"x": torch.ones(5, 3)})
    assert out["weights"] == 6 * 4 and out["gradients"] == 6 * 4 and out["AdamW state"] == 48
    assert out["activations"] == (5 * 3 + 5 * 2) * 4


def test_lesson_15_decision_rule(ns15):
    recommend, V = ns15["recommend"], common.Verdict
    kept = {"prompt": 1280, "prefix_mlp": 10240, "lora": 8192}
    beaten = {("prefix_mlp", "prompt"): V("", [5.0, 2.0, 1.0]),  # holds: prompt ruled out
              ("lora", "prompt"): V("", [1.0, -1.0, 3.0]),
              ("lora", "prefix_mlp"): V("", [-2.0, 4.0, 0.0])}
    assert recommend(beaten, kept) == ("lora", ["prompt"])
    unclear = {pair: V("", [1.0, -1.0, 0.5]) for pair in beaten}  # nothing separates them
    assert recommend(unclear, kept) == ("prompt", [])
    reversed_ = {("prefix_mlp", "prompt"): V("", [-1.0, -2.0, -3.0])}  # prefix_mlp ruled out
    assert recommend(reversed_, kept)[1] == ["prefix_mlp"]


def test_lesson_15_exercises_counts(ns15):
    base = ns15["base"]
    c = base.config
    # 1: a 10-position prefix keeps 2 x layers x 10 x width numbers
    assert ns15["kept"]["prefix_mlp"] == 2 * c.n_layer * 10 * c.n_embd == 10_240
    # 2: a direct prefix of length 8 keeps exactly as many numbers as LoRA trains
    prefix8 = common.build_method("prefix", base, n_virtual=8)
    assert count_parameters(prefix8)[0] == ns15["trained"]["lora"] == 8_192
    # 3: LoRA on c_attn and c_fc: r (in + out) per adapted layer
    wider = LoRA(base, r=4, alpha=32, targets=("attn.c_attn", "mlp.c_fc"))
    per_layer = 4 * (c.n_embd + 3 * c.n_embd) + 4 * (c.n_embd + 4 * c.n_embd)
    assert count_parameters(wider)[0] == c.n_layer * per_layer == 18_432


# ---- lesson 16: what the article got wrong -----------------------------------------------------
@pytest.fixture(scope="module")
def ns16():
    return run_lesson("16_what_the_article_got_wrong.py")


def t5_by_hand(d, d_ff, layers, heads, d_kv=64, vocab=32128, buckets=32):
    """T5 1.1 counted matrix by matrix (gated GELU, untied output, no biases)."""
    per_encoder_layer = (d * heads * d_kv * 3 + heads * d_kv * d  # q, k, v; o
                         + d * d_ff * 2 + d_ff * d  # wi_0, wi_1; wo
                         + 2 * d)  # two RMS norm weights
    per_decoder_layer = per_encoder_layer + d * heads * d_kv * 3 + heads * d_kv * d + d
    return (2 * vocab * d + layers * (per_encoder_layer + per_decoder_layer)
            + 2 * (buckets * heads + d))  # relative position bias + final norm, per stack


@pytest.mark.slow
def test_lesson_16_verdicts_and_rates(ns16):
    ns = ns16
    assert_verdict(ns["lr_verdict"])
    assert_verdict(ns["pp_verdict"])
    full = common.chosen_lr(ns["TASK"], "full")
    assert ns["ARMS"]["prefix_mlp, article's lr"] == ("prefix_mlp", pytest.approx(full / 10))
    for row in ns["rates"]:
        assert row["x full FT's"] == pytest.approx(common.chosen_lr(ns["TASK"], row["method"])
                                                   / full)
    assert ns["lr_verdict"].diffs == pytest.approx(
        [a - b for a, b in zip(ns["bleu"]["prefix_mlp, chosen lr"],
                               ns["bleu"]["prefix_mlp, article's lr"])])
    assert ns["params"]["prefix_mlp"][1] == 10_240 and ns["params"]["prompt"] == (1_280, 1_280)


@pytest.mark.slow
def test_lesson_16_prompt_arm_recomputed(ns16):
    """Seed 0 of the prompt arm, trained again outside the lesson: the same scores."""
    ns = ns16
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the lesson's setting: the same rounding, the same numbers
    try:
        model, _ = common.train_method("prompt", ns["base"], ns["tok"], ns["train_set"],
                                       ns["S"]["steps"], common.chosen_lr(ns["TASK"], "prompt"),
                                       seed=common.SEEDS["fast"][0])
        again = common.evaluate(model, ns["tok"], ns["TASK"], ns["test_set"])
    finally:
        torch.set_num_threads(threads)
    assert again == pytest.approx(ns["results"]["prompt, chosen lr"][0])


@pytest.mark.slow
def test_lesson_16_counts_and_table(ns16):
    ns = ns16
    assert ns["t5_base"] == 247_577_856 == t5_by_hand(768, 2048, 12, 12)
    assert ns["t5_parameters"](512, 1024, 8, 6) == t5_by_hand(512, 1024, 8, 6)
    assert ns["prompt_100"] == 100 * 768 == 76_800
    assert round(100 * ns["prompt_100"] / ns["t5_base"], 3) == 0.031  # Lester et al.'s 0.031%
    assert ns["prefix_t5"][10] == 3 * 12 * 2 * 10 * 768
    assert len(ns["claims"]) == 7 and all(all(cell for cell in row) for row in ns["claims"])
    assert "not measurable here" in ns["claims"][0][2] and "lesson 08" in ns["claims"][2][2]
    assert ns["article_ratio"] == pytest.approx(1.1 / 18.2)
    assert "Takeaway" in ns["OUTPUT"]


def test_lesson_16_exercise_1_t5_xxl_is_11b(ns16):
    xxl = ns16["t5_parameters"](4096, 10240, 24, 64)
    assert xxl == t5_by_hand(4096, 10240, 24, 64)
    assert 11.0e9 < xxl < 11.2e9
    assert f"{100 * 100 * 4096 / xxl:.4f}" == "0.0037"  # a 100-token prompt's share at XXL


def test_lesson_16_exercise_3_prompt_of_the_prefix_size(ns16):
    base = ns16["base"]
    prompt80 = common.build_method("prompt", base, n_virtual=80)
    assert count_parameters(prompt80)[0] == ns16["params"]["prefix_mlp"][1] == 10_240
