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

from lesson_loader import assert_verdict, run_lesson  # puts lessons/ on sys.path
from minitx import MultiHeadAttention
from minitx.data import encode_prompts
from minitx.tuning import SoftPrompt, Tuned, count_parameters
import common  # noqa: E402  (from lessons/)
from toyworld import TASKS, prompt_text  # noqa: E402

FAST_SEEDS = common.SEEDS["fast"]


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
        assert_verdict(v, output=ns05["OUTPUT"])
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


# ---- lesson 06 -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ns06():
    return run_lesson("06_prompt_tuning.py")


@pytest.mark.slow
def test_06_verdicts_are_paired_over_the_seeds_and_printed(ns06):
    verdicts = ns06["verdicts"]
    lengths = ns06["S"]["lengths"]
    expected = {"vocab > random", "phrase > random", "lr", "start kept", "labels > vocab",
                "vocab > random (intent)"} | {f"{b} > {a}" for a, b in zip(lengths, lengths[1:])}
    assert set(verdicts) == expected
    for v in verdicts.values():
        assert_verdict(v, output=ns06["OUTPUT"])
    assert "Takeaway" in ns06["OUTPUT"] and "nan" not in ns06["OUTPUT"]


@pytest.mark.slow
def test_06_learning_rates_come_from_the_validation_sweep(ns06):
    assert ns06["LR"] == {t: common.chosen_lr(t, "prompt") for t in ("reverse", "intent")}
    assert ns06["record"]["written_by"] == "lessons/choose_lrs.py"


@pytest.mark.slow
def test_06_init_tables(ns06):
    reverse, intent = ns06["reverse_rows"], ns06["intent_rows"]
    assert [r["init"] for r in reverse] == [name for name, _, _ in ns06["inits"]("reverse", 5)]
    assert [r["init"] for r in intent][-1] == "class labels"
    assert reverse[-1]["words"] == "reverse the list :"
    for rows, score in ((reverse, "exact"), (intent, "acc.")):
        for r in rows:
            assert 0 <= r[f"{score} 0"] <= 100 and 0 <= r[f"{score} after"] <= 100
            assert r["NLL 0"] >= 0 and r["NLL after"] >= 0
    for r in ns06["length_rows"]:
        assert r["trainable"] == r["length"] * ns06["base"].config.n_embd
    # The pretrained wording *is* the working hard prompt with one sampled word in front: before
    # any training it reverses most inputs, on every seed, while random vectors reverse none.
    n = ns06["S"]["n_tokens"]
    words = ns06["phrase_that_fits"]("reverse", n, seen=True)
    for seed in FAST_SEEDS:
        assert ns06["run"]("reverse", "words", words, n, seed)["before"]["score"] >= 50
        assert ns06["run"]("reverse", "random", None, n, seed)["before"]["score"] == 0


@pytest.mark.slow
def test_06_intent_scores_recomputed_through_common_classify(ns06):
    """The class-label run's printed accuracy (one forward pass in label_scores) equals
    common.classify's, and its label NLL equals cross-entropy over the whole vocabulary."""
    base, tok = ns06["base"], ns06["tok"]
    labels = " ".join(TASKS["intent"].labels)
    run = ns06["run"]("intent", "words", labels, ns06["S"]["n_tokens"], FAST_SEEDS[0])
    tuned = Tuned(base)
    tuned.add("intent", run["prompt"])
    tuned.eval()
    examples = ns06["tests"]["intent"]
    accuracy = common.classify(tuned, tok, examples, list(TASKS["intent"].labels))
    assert run["after"]["score"] == pytest.approx(accuracy)
    logits = torch.cat([tuned(torch.tensor([tok.encode(prompt_text(e))]))[0][:, -1].detach()
                        for e in examples])
    gold = torch.tensor([tok.encode(e.label)[0] for e in examples])
    nll = 100 * torch.nn.functional.cross_entropy(logits, gold).item()
    assert run["after"]["nll"] == pytest.approx(nll, rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_06_adams_first_step_moves_every_coordinate_by_lr(ns06):
    """Exercise 2's reference solution: on its first step Adam moves each coordinate by lr (times
    g/(|g| + eps) ~ sign g), so a vector moves by lr·sqrt(d) and a 10x rate moves 10x as far."""
    root_d = ns06["base"].config.n_embd ** 0.5
    for lr, move in ns06["moves"].items():
        assert move == pytest.approx(lr * root_d, rel=1e-3)
    assert ns06["first_step_move"](0.1) / ns06["first_step_move"](0.01) == pytest.approx(10,
                                                                                         rel=1e-3)


@pytest.mark.slow
def test_06_labels_persist_table(ns06):
    n_labels = len(TASKS["intent"].labels)
    assert [r["seed"] for r in ns06["persist_rows"]] == list(FAST_SEEDS)
    assert all(0 <= k <= n_labels for k in ns06["labels_kept"])
    assert all(r["moved"] > 0 for r in ns06["persist_rows"])


@pytest.mark.slow
def test_06_trainable_share_recomputed_from_raw_counts(ns06):
    """The printed Tuned.report line and table (c), from base.parameters() directly."""
    base = ns06["base"]
    frozen = sum(p.numel() for p in base.parameters())
    for r in ns06["costs"]:
        assert r["trainable %"] == pytest.approx(100 * r["trainable"] / r["total"])
        if r["model"] == "course small base":
            assert r["trainable"] == r["prompt"] * base.config.n_embd
            assert r["total"] == frozen + r["trainable"]
        else:
            assert r["trainable"] == 768 * r["prompt"]
    line = re.search(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+) \|\| "
                     r"trainable%: ([\d.]+)", ns06["OUTPUT"])
    trainable = 5 * base.config.n_embd
    assert int(line[1].replace(",", "")) == trainable
    assert int(line[2].replace(",", "")) == frozen + trainable
    assert float(line[3]) == pytest.approx(100 * trainable / (frozen + trainable), abs=1e-4)
    t5 = [r for r in ns06["costs"] if r["model"] == "T5 1.1 Base" and r["prompt"] == 100][0]
    assert (t5["trainable"], t5["total"]) == (76_800, 247_654_656)  # Lester et al., Table 4
    assert round(t5["trainable %"], 5) == 0.03101


@pytest.mark.slow
def test_06_exercise_1_the_share_of_a_20_token_prompt_by_hand(ns06):
    base = ns06["base"]
    trainable = 20 * base.config.n_embd
    share = 100 * trainable / (count_parameters(base)[1] + trainable)
    row = [r for r in ns06["costs"] if r["model"] == "course small base" and r["prompt"] == 20][0]
    assert row["trainable"] == trainable and row["trainable %"] == pytest.approx(share)
    assert f"trainable%: {share:.4f}" in row["report"]


def test_06_parameter_formulas_match_published_counts(ns06):
    """Independent totals: BERT-base 109,482,240 and GPT-2 small 124,439,808 (their released
    checkpoints), T5-base 222,903,552 (tied output layer) and T5 1.1 Base 247,577,856 (Lester et
    al. Table 4: 247,654,656 total minus the 76,800 prompt)."""
    assert ns06["bert_params"]() == 109_482_240
    assert ns06["gpt2_small_params"]() == 124_439_808
    assert ns06["t5_params"]() == 222_903_552
    assert ns06["t5_params"](ffn=2048, gated=True, tied=False) == 247_654_656 - 76_800


def test_06_initialisations(ns06):
    tok, fill, fits = ns06["tok"], ns06["fill"], ns06["phrase_that_fits"]
    ids = fill(tok, "reverse the list :", 5, seed=0)
    assert len(ids) == 5 and ids[1:] == tok.encode("reverse the list :")
    assert fill(tok, "returns shipping recommend", 5, 0) != fill(
        tok, "returns shipping recommend", 5, 1)  # the sampled filler depends on the seed
    assert fill(tok, "a b c d e f", 2, 0) == tok.encode("e f")  # cut to the last n
    assert fits("reverse", 5, seen=True) == "reverse the list :"
    assert fits("reverse", 5, seen=False) == "turn the list around :"
    names = [name for name, _, _ in ns06["inits"]("intent", 5)]
    assert names[-1] == "class labels" and "class labels" not in [
        name for name, _, _ in ns06["inits"]("reverse", 5)]
