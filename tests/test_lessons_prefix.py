"""Lessons 07-08 (prefix tuning and its reparameterization; the prefix's initialisation, length
and depth) run as notebooks in fast mode (`run_lesson`, once per lesson: module-scoped
fixtures). The tests check the structure of every printed verdict, the counts against
count_parameters, one printed figure per lesson recomputed independently, only directions that
hold on every seed, and the reference solution of each exercise with a checkable answer.

Run alone: `python -m pytest tests/test_lessons_prefix.py -q`.
"""
import math

import pytest
import torch

from lesson_loader import assert_verdict, run_lesson
from minitx import GPT, Config, attention
from minitx.tuning import Prefix, SoftPrompt, Tuned, count_parameters
from toyworld import prompt_text
import common  # lessons/ is on sys.path once lesson_loader is imported

N_SEEDS = len(common.SEEDS["fast"])


# ---- lesson 07: prefix tuning and its reparameterization --------------------------------------
@pytest.fixture(scope="module")
def lesson07():
    return run_lesson("07_prefix_tuning.py")


@pytest.mark.slow
@pytest.mark.parametrize("n_layer,n_embd,n_head,length,mid", [(3, 16, 2, 7, 24), (1, 8, 1, 1, 4),
                                                               (4, 128, 4, 10, 512)])
def test_lesson_07_formulas_match_count_parameters(lesson07, n_layer, n_embd, n_head, length, mid):
    model = GPT(Config(vocab_size=50, block_size=32, n_layer=n_layer, n_head=n_head, n_embd=n_embd))
    direct, mlp = lesson07["prefix_param_counts"](n_layer, n_embd, length, mid)
    assert direct == count_parameters(Prefix(model, length))[0]
    assert mlp == count_parameters(Prefix(model, length, mid=mid))[0]
    assert direct == count_parameters(Prefix(model, length, mid=mid).export())[0]
    assert lesson07["gpt2_param_count"](n_layer, n_embd, 50, 32) == count_parameters(model)[1]


@pytest.mark.slow
def test_lesson_07_shapes_counts_and_export(lesson07):
    ns = lesson07
    assert ns["shapes"] == {"prefix_param": (4, 2, 10, 128),  # (layers, K/V, P, d)
                            "layer_key": (1, 4, 10, 32),  # (1, heads, P, head size)
                            "cache_key": (2, 4, 15, 32)}  # (B, heads, P + T, head size)
    course, course_512, article, paper = ns["count_rows"]
    assert course["base"] == ns["base_params"] == 844_800  # formula == count_parameters
    assert course["kept"] == ns["measured"]["direct"] == ns["measured"]["exported"]
    assert course["kept"] == 4 * 2 * 10 * 128  # 2 · L · P · d
    assert course["trained"] == ns["measured"]["MLP"]
    assert course_512["trained"] > course["trained"] and course_512["kept"] == course["kept"]
    assert math.isclose(course["kept %"], 100 * course["kept"] / course["base"])
    assert 6.5 < paper["trained %"] < 8 and paper["kept %"] < 0.1  # the paper's "~7%", "0.1%"
    assert article["kept"] == 12 * 2 * 10 * 768
    sizes = ns["file_bytes"]
    assert sizes["exported"] == sizes["direct"] >= 4 * ns["measured"]["direct"]  # fp32 numbers
    assert sizes["MLP"] >= 4 * ns["measured"]["MLP"] > sizes["exported"]
    assert ns["export_diff"] <= 1e-5
    assert "Takeaway" in ns["OUTPUT"] and "nan" not in ns["OUTPUT"]


@pytest.mark.slow
def test_lesson_07_direct_vs_mlp_verdicts(lesson07):
    ns = lesson07
    seeds, LR, LRS = common.SEEDS["fast"], ns["LR"], ns["LRS"]
    for name, method in ns["METHOD"].items():
        assert LR[name] == common.chosen_lr(ns["TASK"], method)  # validation-chosen, not tuned here
        assert len(LRS[name]) == 3 and LRS[name][1] == LR[name]
        assert all(2.9 < b / a < 3.4 for a, b in zip(LRS[name], LRS[name][1:]))  # 1-3-10 scale
    assert set(ns["verdicts"]) == {"exact", "nll", "worst", "swing", "layer_norm"}
    for v in ns["verdicts"].values():
        assert_verdict(v)
    assert ns["frozen_exact"] == 0.0  # first_last was never pretrained
    # the verdicts are the per-seed differences of the runs they name
    mlp, direct = ([ns["runs"][name, LR[name], s]["exact"] for s in seeds]
                   for name in ("MLP", "direct"))
    assert ns["verdicts"]["exact"].diffs == [a - b for a, b in zip(mlp, direct)]
    for run in ns["runs"].values():
        assert 0 <= run["exact"] <= 100 and 0 <= run["rouge_l"] <= 100 and run["nll"] > 0
    # direction that holds on every seed: AdamW moves each parameter by about lr per step, so a
    # larger rate moves the prefix further (the "P moved" column)
    for name in ns["VARIANTS"]:
        for lo, hi in zip(LRS[name], LRS[name][1:]):
            for s in seeds:
                assert ns["runs"][name, hi, s]["moved"] > ns["runs"][name, lo, s]["moved"]
    direct_init = next(r for r in ns["init_rows"] if r["variant"] == "direct")
    assert direct_init["init key RMS"] == pytest.approx(1.0, abs=0.05)  # N(0, 1)
    assert all(0 < r["init attn %"] < 100 for r in ns["init_rows"])
    # the LayerNorm option: the frozen model knows reverse; a fresh LayerNorm breaks it
    assert ns["ln_plain"] >= 90 and ns["ln_normed"] < ns["ln_plain"]


@pytest.mark.slow
def test_lesson_07_heatmap_recomputed_by_hand(lesson07):
    """The printed layer-0 prefix share, recomputed from the weights: embeddings at positions
    P.., ln_1, c_attn, the "=>" query against [P_K; K], softmax, summed over the prefix keys."""
    ns = lesson07
    base, tok, P = ns["base"], ns["tok"], ns["LENGTH"]
    for name, w in ns["maps"].items():
        assert torch.allclose(w.sum(-1), torch.ones(w.shape[0]), atol=1e-5)  # distributions
        assert w.shape == (4, len(ns["key_labels"]))
        prefix = ns["runs"][name, ns["LR"][name], common.SEEDS["fast"][0]]["tuned"].tasks[
            ns["TASK"]]
        idx = torch.tensor(tok.encode(prompt_text(ns["example"])))
        T, C, nh = len(idx), base.config.n_embd, base.config.n_head
        with torch.no_grad():
            tr = base.transformer
            x = tr.wte(idx) + tr.wpe(torch.arange(P, P + T))  # (T, C)
            q, k, _ = tr.h[0].attn.c_attn(tr.h[0].ln_1(x)).split(C, dim=1)
            prefix_keys = prefix.values()[0, 0]  # layer 0, K: (P, C)
            keys = torch.cat([prefix_keys, k]).view(P + T, nh, C // nh).transpose(0, 1)
            query = q[-1].view(nh, 1, C // nh)  # (nh, 1, hs)
            weights = (query @ keys.transpose(1, 2) / math.sqrt(C // nh)).softmax(-1)
        share = 100 * weights[:, 0, :P].sum(-1).mean().item()
        assert share == pytest.approx(ns["prefix_share"][name][0], abs=1e-3)
    assert f"{ns['prefix_share']['MLP'][0]:4.0f}" in ns["OUTPUT"]
    assert ns["png"] is None or ns["png"].is_file()


def test_lesson_07_exercise_1_zero_values_scale_the_rest():
    """Exercise 1: with P_V = 0 the output is (1 - s) x attention over the real keys alone."""
    gen = torch.Generator().manual_seed(0)
    for P, T, hs in ((1, 3, 4), (5, 2, 8), (10, 6, 16)):
        q, k, v = (torch.randn(2, 3, T, hs, generator=gen, dtype=torch.float64) for _ in range(3))
        prefix_k = torch.randn(2, 3, P, hs, generator=gen, dtype=torch.float64)
        out, weights = attention(q, torch.cat([prefix_k, k], 2),
                                 torch.cat([torch.zeros_like(prefix_k), v], 2))
        share = weights[..., :P].sum(-1, keepdim=True)  # (B, heads, T, 1)
        assert (share > 0).all()  # a zero value is not an absent key
        assert torch.allclose(out, (1 - share) * attention(q, k, v)[0], atol=1e-12)


@pytest.mark.slow
def test_lesson_07_exercise_2_larger_rate_moves_the_prefix_further(lesson07):
    """Exercise 2: ten times the MLP's chosen rate moves its prefix further, on every seed."""
    ns = lesson07
    lr = ns["LR"]["MLP"]
    for seed in common.SEEDS["fast"]:
        slow = ns["train_prefix"]("MLP", lr, seed, mid=ns["MID"])
        fast = ns["train_prefix"]("MLP", 10 * lr, seed, mid=ns["MID"])
        assert fast["moved"] > 2 * slow["moved"]


# ---- lesson 08: initialisation, length, depth --------------------------------------------------
@pytest.fixture(scope="module")
def lesson08():
    return run_lesson("08_prefix_init_length_depth.py")


@pytest.mark.slow
def test_lesson_08_initialisation(lesson08):
    ns = lesson08
    rows = ns["init_rows"]
    assert [r["init"] for r in rows] == list(ns["INITS"])
    assert max(ns["fit_errors"]) <= 1e-6  # the MLP reproduces the words' keys/values exactly
    frozen = ns["init_frozen"]["reverse"]
    assert frozen["hard prompt"] == 100.0 and frozen["no instruction"] == 0.0
    n_train, steps = ns["S"]["init_sizes"][0]
    start = {init: ns["per_seed"]("reverse", init, n_train, steps, "step 0")
             for init in ns["INITS"]}
    # a prefix made of the instruction's own keys/values IS the hard prompt: same score, every seed
    assert start["task words"] == [frozen["hard prompt"]] * N_SEEDS
    assert start["random"] == [0.0] * N_SEEDS
    assert len(ns["init_verdicts"]) == 6
    for (task, size, metric, a, b), v in ns["init_verdicts"].items():
        assert_verdict(v)
        key = "exact" if metric == "exact" else "nll"
        sign = 1 if key == "exact" else -1
        assert v.diffs == pytest.approx(
            [sign * (x - y) for x, y in zip(ns["per_seed"](task, a, size, steps, key),
                                            ns["per_seed"](task, b, size, steps, key))])


@pytest.mark.slow
def test_lesson_08_init_fit_recomputed(lesson08):
    """The printed fit error, recomputed: the MLP's output after init_from_tokens equals the
    frozen model's own keys and values of the words, read from its cache."""
    ns = lesson08
    base, tok = ns["base"], ns["tok"]
    ids = tok.encode("reverse the list :")
    torch.manual_seed(0)
    prefix = Prefix(base, len(ids), mid=ns["MID"])
    prefix.init_from_tokens(base, ids)
    with torch.no_grad():
        present = base(torch.tensor([ids]))[2]
        for layer, (k, v) in enumerate(present):  # each (1, heads, P, head size)
            for kv, own in enumerate((k, v)):
                own = own[0].transpose(0, 1).reshape(len(ids), -1)  # (P, C)
                assert torch.allclose(prefix.values()[layer, kv], own, atol=1e-4)


@pytest.mark.slow
def test_lesson_08_length_and_depth(lesson08):
    ns = lesson08
    d, n_layer = 128, 4
    for row in ns["length_rows"]:
        assert row["kept"] == n_layer * 2 * row["P"] * d  # 2 · layers · P · d
    assert len(ns["length_verdicts"]) == len(ns["S"]["lengths"]) - 1
    for v in ns["length_verdicts"].values():
        assert_verdict(v)
    assert ns["best_length"] is None or ns["best_length"] in ns["S"]["lengths"]
    if ns["best_length"] is not None:  # named only if it beats every other length on every seed
        assert all(ns["beats"](ns["best_length"], P).word == "holds"
                   for P in ns["S"]["lengths"] if P != ns["best_length"])
    rows = {r["prefix"]: r for r in ns["depth_rows"]}
    assert list(rows) == ["all layers", "first layer only", "last layer only",
                          "input only (soft prompt)"]
    assert rows["first layer only"]["kept"] == rows["last layer only"]["kept"] == 2 * 10 * d
    assert rows["input only (soft prompt)"]["kept"] == 10 * d
    base = ns["base"]
    assert rows["input only (soft prompt)"]["trained"] == count_parameters(SoftPrompt(base, 10))[0]
    assert rows["first layer only"]["trained"] == count_parameters(
        Prefix(base, 10, mid=ns["MID"], layers=[0]))[0]
    assert set(ns["depth_verdicts"]) == {"all > first", "first > last", "all > input"}
    for v in ns["depth_verdicts"].values():
        assert_verdict(v)
    v = ns["first_layer_verdict"]  # what lesson 16 points to
    assert v is ns["depth_verdicts"]["all > first"] and v.claim == "all > first layer only"
    assert v.diffs == pytest.approx([a - b for a, b in zip(ns["rouge"]("P=10"),
                                                           ns["rouge"]("first layer only"))])
    assert "setting: first_last" in ns["OUTPUT"]
    assert ns["frozen"]["exact"] == 0.0  # first_last was never pretrained


@pytest.mark.slow
def test_lesson_08_exercise_1_prefix_of_words_is_the_hard_prompt(lesson08):
    """Exercise 1: a direct prefix set from "reverse the list :" gives the logits of the hard
    prompt in front of the input."""
    base, tok = lesson08["base"], lesson08["tok"]
    words, text = tok.encode("reverse the list :"), tok.encode("red blue green =>")
    prefix = Prefix(base, len(words))
    prefix.init_from_tokens(base, words)
    tuned = Tuned(base)
    tuned.add("reverse", prefix)
    with torch.no_grad():
        with_prefix = tuned(torch.tensor([text]))[0][0, -1]
        hard_prompt = base(torch.tensor([words + text]))[0][0, -1]
    assert torch.allclose(with_prefix, hard_prompt, atol=1e-4)


@pytest.mark.slow
def test_lesson_08_exercise_2_count_before_you_run(lesson08):
    """Exercise 2: a length-10 prefix on layers 1 and 2 keeps 2 · 2 · 10 · 128 numbers."""
    prefix = Prefix(lesson08["base"], 10, mid=lesson08["MID"], layers=[1, 2])
    assert count_parameters(prefix.export())[0] == 2 * 2 * 10 * 128
