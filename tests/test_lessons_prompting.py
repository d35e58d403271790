"""Lessons 05-06 (hard prompts are brittle; prompt tuning) run as notebooks in fast mode, once per
module (`run_lesson`), and the tests read what they computed from the returned namespace.

Checked: every verdict is paired over the fast seeds and says one of the allowed words; tables
have their rows and ranges; one printed figure per lesson is recomputed by an independent route
(a greedy decode written out here; the trainable share from raw parameter counts); only
directions that hold on every seed by a wide margin are asserted; each exercise with a checkable
answer has its reference solution run here.
Run alone: `python -m pytest tests/test_lessons_prompting.py -q`.
"""
import math
import re

import pytest
import torch

from lesson_loader import run_lesson  # puts lessons/ on sys.path
from minitx import MultiHeadAttention
from minitx.data import encode_prompts
from minitx.tuning import SoftPrompt, Tuned, count_parameters
import common  # noqa: E402  (from lessons/)
from toyworld import TASKS, prompt_text  # noqa: E402

FAST_SEEDS = common.SEEDS["fast"]


def assert_verdict(v):
    """A printed verdict over every fast seed, its word one of the allowed ones."""
    n = len(FAST_SEEDS)
    assert isinstance(v, common.Verdict) and len(v.diffs) == n
    assert v.word in {"holds", "reversed", common.NOT_SHOWN, f"not shown (only {n} seeds)"}
    assert all(math.isfinite(d) for d in v.diffs)


def greedy_answer(model, tok, text, max_new_tokens=24, **kw):
    """Greedy decoding written out: the whole sequence through the model at every step, one
    input at a time (no padding, no KV cache, no common.predict); the text before ';'."""
    ids = tok.encode(text)
    n_prompt = len(ids)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = int(model(torch.tensor([ids]), **kw)[0][0, -1].argmax())
            ids.append(next_id)
            if next_id == tok.stop_id:
                break
    return tok.decode(ids[n_prompt:]).split(";")[0].strip()


# ---- lesson 05 -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ns05():
    return run_lesson("05_hard_prompts_are_brittle.py")


@pytest.mark.slow
def test_05_verdicts_are_paired_over_the_seeds_and_printed(ns05):
    verdicts = ns05["verdicts"]
    assert set(verdicts) == {"reverse", "copy", "data_to_text", "soft vs none",
                             "soft vs held-out", "seen vs soft", "d2t random vs none",
                             "toward words", "task words", "attention"}
    for v in verdicts.values():
        assert_verdict(v)
        assert str(v) in ns05["OUTPUT"]
    assert "Takeaway" in ns05["OUTPUT"] and "nan" not in ns05["OUTPUT"]


@pytest.mark.slow
def test_05_wording_table_and_robust_directions(ns05):
    hard = ns05["hard"]
    assert list(hard) == ["reverse", "copy", "data_to_text"]
    for task, per_slot in hard.items():
        assert list(per_slot) == ["seen 1", "seen 2", "seen 3", "seen 4", "held-out 1",
                                  "held-out 2", "no instruction"]
        for per_seed in per_slot.values():
            assert list(per_seed) == list(FAST_SEEDS)
            assert all(0 <= m[k] <= 100 for m in per_seed.values() for k in m)
    # wide-margin directions, on every seed: the pretrained wordings make the frozen base reverse
    # and copy; with no instruction (inputs shared by both tasks) it does neither reliably
    seen, held = ns05["seen_minus"](hard["reverse"], ["held-out 1", "held-out 2"])
    for s, (a, b) in enumerate(zip(seen, held)):
        assert a >= 75 and a - b >= 50, (s, a, b)
    for task in ("reverse", "copy"):
        for seed in FAST_SEEDS:
            assert hard[task]["seen 1"][seed]["exact"] - \
                hard[task]["no instruction"][seed]["exact"] >= 50


@pytest.mark.slow
def test_05_a_printed_score_recomputed_by_a_written_out_greedy_decode(ns05):
    """The reverse "seen 1" cell and the copy "no instruction" cell of seed 0, recomputed one
    input at a time without common.predict or minitx.generate."""
    base, tok, tests = ns05["base"], ns05["tok"], ns05["tests"]
    seed = FAST_SEEDS[0]
    for task, slot, instruction in (("reverse", "seen 1", TASKS["reverse"].phrasings[0]),
                                    ("copy", "no instruction", None)):
        examples = tests[task][seed]
        answers = [greedy_answer(base, tok, prompt_text(e, instruction)) for e in examples]
        exact = 100 * sum(a in e.references for a, e in zip(answers, examples)) / len(examples)
        assert exact == pytest.approx(ns05["hard"][task][slot][seed]["exact"])


@pytest.mark.slow
def test_05_soft_prompt_runs_and_parameter_count(ns05):
    base, S = ns05["base"], ns05["S"]
    assert ns05["trainable"] == count_parameters(SoftPrompt(base, S["n_tokens"]))[0] \
        == S["n_tokens"] * base.config.n_embd
    assert f"{ns05['trainable']:,} trainable numbers" in ns05["OUTPUT"]
    assert f"the frozen base has {sum(p.numel() for p in base.parameters()):,}" in ns05["OUTPUT"]
    assert ns05["LR"] == common.chosen_lr("reverse", "prompt")  # the rate chosen on validation
    for seed in FAST_SEEDS:
        run = ns05["runs"][seed]
        assert len(run["losses"]) == S["steps"] and all(map(math.isfinite, run["losses"]))
        assert 0 <= ns05["soft"]["trained"][seed]["exact"] <= 100
        moved = run["model"].tasks["reverse"].embeddings.detach() - run["start"]
        assert moved.abs().max() > 0  # the prompt trained


@pytest.mark.slow
def test_05_nearest_words_recomputed(ns05):
    """The seed-0 neighbour table's cosines and the per-seed closeness, by an independent route:
    cosine_similarity of each vector with every word embedding."""
    base, tok = ns05["base"], ns05["tok"]
    wte = base.transformer.wte.weight
    assert "backwards" in ns05["REVERSE_ONLY"] and "list" not in ns05["REVERSE_ONLY"]
    assert not ns05["REVERSE_ONLY"] & set(" ".join(TASKS["copy"].phrasings).split())
    for seed, after in zip(FAST_SEEDS, ns05["closeness"]["after"]):
        vectors = ns05["runs"][seed]["model"].tasks["reverse"].embeddings.detach()
        cos = torch.nn.functional.cosine_similarity(vectors[:, None], wte[None], dim=-1)
        assert 100 * cos.max(1).values.mean().item() == pytest.approx(after, abs=1e-3)
        if seed == FAST_SEEDS[0]:
            best = cos.max(1)
            for i, (c, j) in enumerate(zip(best.values.tolist(), best.indices.tolist())):
                assert re.search(rf"^{i + 1}\s+{re.escape(tok.words[j])}\b.*\s{c:.2f}\s",
                                 ns05["OUTPUT"], re.M)
    for when in ("before", "after"):
        n_neighbours = ns05["S"]["n_tokens"] * 5
        assert all(0 <= w <= n_neighbours for w in ns05["task_words"][when])


@pytest.mark.slow
def test_05_attention_shares_are_fractions(ns05):
    for kind in ("hard", "soft"):
        for per_layer in ns05["shares"][kind].values():
            assert len(per_layer) == ns05["base"].config.n_layer
            assert all(-1e-6 <= x <= 1 + 1e-6 for pair in per_layer for x in pair)


@pytest.mark.slow
def test_05_exercise_1_a_soft_prompt_of_word_embeddings_is_the_hard_prompt(ns05):
    """Reference solution: an untrained SoftPrompt of the ids of "reverse the list :" gives the
    seen-1 answers, and logits equal to the hard prompt's (no training, same positions)."""
    base, tok, tests = ns05["base"], ns05["tok"], ns05["tests"]
    tuned = Tuned(base)
    tuned.add("words", SoftPrompt(base, 4, init=tok.encode("reverse the list :")))
    tuned.eval()
    examples = tests["reverse"][FAST_SEEDS[0]]
    hard = TASKS["reverse"].phrasings[0]
    assert common.predict(tuned, tok, examples) == common.predict(base, tok, examples, hard)
    idx, _ = encode_prompts(tok, [prompt_text(examples[0])])
    idx_hard, _ = encode_prompts(tok, [prompt_text(examples[0], hard)])
    with torch.no_grad():
        soft_logits, hard_logits = tuned(idx)[0], base(idx_hard)[0]
    assert soft_logits.shape[1] == idx.shape[1]  # the virtual tokens are hidden from the caller
    torch.testing.assert_close(soft_logits, hard_logits[:, -idx.shape[1]:], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_05_exercise_2_attention_of_the_first_word_sums_to_one(ns05):
    """Reference solution: per layer and head, the first input word's weights over the prompt
    and itself sum to 1 and later keys get 0 (causal mask); attention_rows restores SDPA."""
    base, tok = ns05["base"], ns05["tok"]
    n_hard = ns05["n_hard"]
    example = ns05["tests"]["reverse"][FAST_SEEDS[0]][0]
    idx, _ = encode_prompts(tok, [prompt_text(example, TASKS["reverse"].phrasings[0])])
    with common.attention_weights_kept(base) as layers, torch.no_grad():
        base(idx)
        for m in layers:
            row = m.weights[0, :, n_hard]  # (heads, keys): the first input word's query
            torch.testing.assert_close(row[:, :n_hard + 1].sum(-1), torch.ones(row.shape[0]))
            assert row[:, n_hard + 1:].abs().max() == 0
    for r in ns05["attention_rows"](base, idx, n_hard):
        assert len(r["first"]) == n_hard + 1 and sum(r["first"]) == pytest.approx(1, abs=1e-5)
    assert all(m.use_sdpa and m.weights is None for m in base.modules()
               if isinstance(m, MultiHeadAttention))
