"""Lessons 05-06 (hard prompts are brittle; prompt tuning) run in fast mode and return what they
printed; their parameter arithmetic is checked against independent counts.

Run alone: `python -m pytest tests/test_lessons_prompting.py -q`.
"""
import math
import re
import statistics

import pytest

from lesson_loader import load_lesson, run_fast


@pytest.fixture(scope="module")
def lesson05():
    return load_lesson("05_hard_prompts_are_brittle.py")


@pytest.fixture(scope="module")
def lesson06():
    return load_lesson("06_prompt_tuning.py")


@pytest.fixture(scope="module")
def result05(lesson05):
    return run_fast(lesson05)


@pytest.fixture(scope="module")
def result06(lesson06):
    return run_fast(lesson06)


# ---- lesson 05 -------------------------------------------------------------------------------
@pytest.mark.slow
def test_05_phrasing_table_shape_and_brittleness(result05):
    rows = result05["phrasings"]
    assert [r["phrasing"] for r in rows] == ["seen 1", "seen 2", "seen 3", "seen 4", "held-out 1",
                                             "held-out 2", "no instruction"]
    columns = ["reverse exact", "copy exact", "data_to_text exact", "d2t BLEU", "d2t ROUGE-L"]
    for r in rows:
        assert all(0.0 <= r[c] <= 100.0 for c in columns)
    seen = {c: statistics.mean(r[c] for r in rows[:4]) for c in columns}
    none = rows[-1]
    assert seen["reverse exact"] >= 90 and seen["copy exact"] >= 90  # pretrained wordings work
    assert none["reverse exact"] < seen["reverse exact"]  # and no words do not
    assert none["copy exact"] < seen["copy exact"]


@pytest.mark.slow
def test_05_spread_is_computed_from_the_table(result05):
    rows = result05["phrasings"]
    for column, n in result05["spread_numbers"].items():
        worded = [r[column] for r in rows[:6]]
        assert n["worded_mean"] == pytest.approx(statistics.mean(worded))
        assert (n["worded_min"], n["worded_max"]) == (min(worded), max(worded))
        assert n["seen_mean"] == pytest.approx(statistics.mean(worded[:4]))
        assert n["no_instruction"] == rows[-1][column]
        assert n["soft_min"] <= n["soft_mean"] <= n["soft_max"]
        assert 0.0 <= n["soft_untrained"] <= 100.0
    assert len(result05["spread"]) == len(result05["spread_numbers"]) == 5


@pytest.mark.slow
def test_05_soft_prompt_params_and_vectors(result05, lesson05):
    from minitx.tuning import SoftPrompt, count_parameters
    base, _ = lesson05.load_base("small")
    n = result05["settings"]["n_tokens"]
    assert result05["soft_prompt_params"] == count_parameters(SoftPrompt(base, n))[0] == n * 128
    near = result05["nearest"]
    assert [r["position"] for r in near] == list(range(1, n + 1))
    assert all(-1.0 <= r["cosine"] <= 1.0 + 1e-6 and r["norm"] > 0 for r in near)
    assert all(math.isfinite(v) for v in result05["final_losses"].values())


@pytest.mark.slow
def test_05_attention_shares_are_probabilities(result05, lesson05):
    share = result05["attention"]
    assert [r["layer"] for r in share] == [0, 1, 2, 3]
    for r in share:
        assert all(-1e-6 <= v <= 1 + 1e-6 for k, v in r.items() if k != "layer")


def test_05_attention_rows_sum_to_one_and_restore_sdpa(lesson05):
    """The first input token attends only to what is in front of it and to itself: its weights
    over those keys sum to 1; the lesson switches the fast path back on afterwards."""
    from minitx import MultiHeadAttention
    base, tok = lesson05.load_base("small")
    example = lesson05.make_split("reverse", 1, "test")[0]
    idx, _ = lesson05.encode_prompts(tok, [lesson05.prompt_text(example, "reverse the list")])
    rows = lesson05.attention_rows(base, base, idx, n_prompt=4, first=4)
    for r in rows:
        assert len(r["first"]) == 5 and sum(r["first"]) == pytest.approx(1.0, abs=1e-5)
    assert all(m.use_sdpa and m.weights is None for m in base.modules()
               if isinstance(m, MultiHeadAttention))


# ---- lesson 06 -------------------------------------------------------------------------------
@pytest.mark.slow
def test_06_init_tables(result06):
    rev, intent = result06["init_reverse"], result06["init_intent"]
    assert [r["init"] for r in rev] == ["random uniform", "sampled vocabulary",
                                        "text: article's phrase", "text: held-out wording",
                                        "text: pretrained wording"]
    assert [r["init"] for r in intent][-1] == "class labels"
    assert rev[-1]["words"] == "reverse the list :"
    for r in rev + intent:
        assert 0.0 <= r["min"] <= r["after"] <= r["max"] <= 100.0
        assert 0.0 <= r["step 0"] <= 100.0 and r["final loss"] >= 0.0
    for r in intent:
        assert r["label NLL after"] >= 0.0 and r["label NLL step 0"] >= 0.0
    # the pretrained wording *is* the working hard prompt (plus one sampled word): it scores
    # before any training, while a random start cannot
    assert rev[-1]["step 0"] > rev[0]["step 0"]
    assert 0.0 <= result06["intent_frozen"]["no instruction"] <= 100.0


@pytest.mark.slow
def test_06_lengths_and_verdicts(result06):
    lengths = result06["lengths"]
    assert [r["length"] for r in lengths] == list(result06["settings"]["lengths"])
    assert all(r["trainable"] == 128 * r["length"] for r in lengths)
    assert all(v.startswith(("yes", "no", "not run")) for v in result06["verdicts"].values())
    assert len(result06["verdicts"]) >= 5


@pytest.mark.slow
def test_06_trainable_shares_are_computed(result06, lesson06):
    from minitx.tuning import SoftPrompt, count_parameters
    base, _ = lesson06.load_base("small")
    frozen = count_parameters(base)[1]
    for r in result06["costs"]:
        assert r["trainable %"] == pytest.approx(100 * r["trainable"] / r["total"])
        if r["model"] == "course small base":
            n = r["prompt"]
            assert r["trainable"] == count_parameters(SoftPrompt(base, n))[0] == n * 128
            assert r["total"] == frozen + r["trainable"]
            shown = float(re.search(r"trainable%: ([0-9.]+)", r["report"]).group(1))
            assert shown == pytest.approx(r["trainable %"], abs=1e-4)  # Tuned.report agrees
        else:
            assert r["trainable"] == 768 * r["prompt"]
    t5 = [r for r in result06["costs"] if r["model"] == "T5 1.1 Base" and r["prompt"] == 100][0]
    assert (t5["trainable"], t5["total"]) == (76_800, 247_654_656)  # Lester et al., Table 4
    assert round(t5["trainable %"], 5) == 0.03101


def test_06_parameter_formulas_match_published_counts(lesson06):
    """Independent totals: BERT-base 109,482,240 and GPT-2 small 124,439,808 (their released
    checkpoints), T5-base 222,903,552 (tied output layer) and T5 1.1 Base 247,577,856 (Lester et
    al. Table 4: 247,654,656 total minus the 76,800 prompt)."""
    assert lesson06.bert_params() == 109_482_240
    assert lesson06.gpt2_small_params() == 124_439_808
    assert lesson06.t5_params() == 222_903_552
    assert lesson06.t5_params(ffn=2048, gated=True, tied=False) == 247_654_656 - 76_800


def test_06_initialisations(lesson06):
    _, tok = lesson06.load_base("small")
    ids = lesson06.fill(tok, "reverse the list :", 5, seed=0)
    assert len(ids) == 5 and ids[1:] == tok.encode("reverse the list :")
    assert lesson06.fill(tok, "returns shipping recommend", 5, 0) != lesson06.fill(
        tok, "returns shipping recommend", 5, 1)  # the sampled filler depends on the seed
    assert lesson06.fill(tok, "a b c d e f", 2, 0) == tok.encode("e f")  # cut to the last n
    assert lesson06.phrase_that_fits("reverse", 5, seen=True) == "reverse the list :"
    assert lesson06.phrase_that_fits("reverse", 5, seen=False) == "turn the list around :"
    names = [name for name, _, _ in lesson06.inits("intent", 5)]
    assert names[-1] == "class labels" and "class labels" not in [
        name for name, _, _ in lesson06.inits("reverse", 5)]
