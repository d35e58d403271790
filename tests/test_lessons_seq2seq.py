"""Lesson 13 (three places for a prefix in an encoder-decoder) run as a notebook in fast mode, once
per module (`run_lesson`); the tests read what it computed from the returned namespace.

Checked: every verdict is paired over the fast seeds and says one of the allowed words; the tables
have their rows, ranges and closed-form parameter counts; the learning rate is the validation
sweep's argmin; two printed figures are recomputed by independent routes (a greedy decode that
re-runs the whole decoder every step, without the KV cache; the house sentence's NLL from
log-softmax); the two exercises with checkable answers run their reference solutions. Fast mode
pretrains its bases for a few steps only, so no direction between arms is asserted here.
Run alone: `python -m pytest tests/test_lessons_seq2seq.py -q`.
"""

import pytest
import torch
import torch.nn.functional as F

from lesson_loader import assert_verdict, run_lesson  # puts lessons/ on sys.path
import common  # noqa: E402  (from lessons/)
from minitx.metrics import corpus_bleu, rouge_l
from minitx.tuning import count_parameters

FAST_SEEDS = common.SEEDS["fast"]
ARMS = ["encoder", "decoder", "cross", "all three", "frozen"]


@pytest.fixture(scope="module")
def ns():
    return run_lesson("13_seq2seq_prefixes.py")


@pytest.mark.slow
def test_verdicts_are_paired_over_the_seeds_and_printed(ns):
    verdicts = ns["verdicts"]
    kinds = ("encoder", "decoder", "cross")
    assert set(verdicts) == ({f"{k} vs frozen" for k in kinds} | {f"all vs {k}" for k in kinds}
                             | {f"all vs {k} nll" for k in kinds}
                             | {"decoder vs encoder", "cross vs encoder", "cross vs decoder"})
    for v in verdicts.values():
        assert_verdict(v, output=ns["OUTPUT"])
    # the paired differences are the per-seed score differences the tables print
    bleu = {arm: [ns["results"][arm][s]["bleu"] for s in FAST_SEEDS] for arm in ARMS}
    assert verdicts["cross vs decoder"].diffs == [a - b for a, b in zip(bleu["cross"],
                                                                         bleu["decoder"])]
    nll = [ns["results"][arm][FAST_SEEDS[0]]["nll"] for arm in ("all three", "encoder")]
    assert verdicts["all vs encoder nll"].diffs[0] == pytest.approx(nll[1] - nll[0])
    out = ns["OUTPUT"]
    assert "Takeaway" in out and "nan" not in out and "house style" in out


@pytest.mark.slow
def test_results_tables_have_every_arm_seed_and_range(ns):
    results, n_test = ns["results"], ns["S"]["n_test"]
    assert list(results) == ARMS
    for arm in ARMS:
        assert list(results[arm]) == list(FAST_SEEDS)
        for r in results[arm].values():
            assert all(0 <= r[k] <= 100 for k in ("bleu", "rouge_l", "exact", "bleu_any"))
            assert r["nll"] > 0 and len(r["answers"]) == n_test
    assert [row["base"] for row in ns["base_rows"]] == list(FAST_SEEDS)
    for row in ns["base_rows"]:
        shares = [row[k] for k in ("phr. 1 %", "phr. 2 %", "house %", "other %")]
        assert sum(shares) == pytest.approx(100) and min(shares) >= 0
    # the frozen row of the ablation is the base table's frozen base, scored the same way
    for row in ns["base_rows"]:
        assert row["BLEU house"] == results["frozen"][row["base"]]["bleu"]


@pytest.mark.slow
def test_learning_rates_are_the_validation_argmin_and_the_sweep_runs_are_reused(ns):
    sweep, lr, rates = ns["sweep"], ns["LR"], ns["RATES"]
    for arm in ("encoder", "decoder", "cross", "all three"):
        assert list(sweep[arm]) == list(rates) and lr[arm] in rates
        assert sweep[arm][lr[arm]] == min(sweep[arm].values())
        for seed in FAST_SEEDS:
            assert (arm, seed) in ns["tuned_models"]
        tuned = ns["tuned_models"][arm, FAST_SEEDS[0]][0]  # the sweep's run at the chosen rate
        assert ns["answer_nll"](tuned, ns["val_set"]) == sweep[arm][lr[arm]]


@pytest.mark.slow
def test_parameter_counts_have_closed_forms(ns):
    base = ns["bases"][FAST_SEEDS[0]]
    L, C, P, mid = base.config.n_layer, base.config.n_embd, ns["LENGTH"], ns["MID"]
    per_kind_trained = P * C + (C * mid + mid) + (mid * 2 * L * C + 2 * L * C)
    per_kind_kept = 2 * L * P * C
    for arm, (trained, kept) in ns["counts"].items():
        n_kinds = 3 if arm == "all three" else 1
        assert (trained, kept) == (n_kinds * per_kind_trained, n_kinds * per_kind_kept)
    assert count_parameters(base)[0] == 0  # the base is frozen


def greedy_without_cache(model, tok, bos, source, max_new_tokens=32):
    """Greedy decoding written out: the whole decoder re-run on every step, one input at a
    time (no padding, no KV cache, no generate_seq2seq); the text before ';'."""
    src, tgt = torch.tensor([tok.encode(source)]), [bos]
    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = int(model(src, torch.tensor([tgt]))[0][0, -1].argmax())
            tgt.append(next_id)
            if next_id == tok.stop_id:
                break
    return tok.decode(tgt[1:]).split(";")[0].strip()


@pytest.mark.slow
def test_printed_scores_recomputed_by_a_written_out_greedy_decode(ns):
    """The frozen base's first answers, and every answer and the printed ROUGE-L and BLEU of a
    tuned arm (fast mode's BLEU is often 0; its ROUGE-L is not), without the KV cache."""
    seed, tok, bos, examples = FAST_SEEDS[0], ns["TOK"], ns["BOS"], ns["test_examples"]
    base = ns["bases"][seed]
    assert ([greedy_without_cache(base, tok, bos, e.source) for e in examples[:12]]
            == ns["results"]["frozen"][seed]["answers"][:12])
    tuned, printed = ns["tuned_models"]["cross", seed][0], ns["results"]["cross"][seed]
    mine = [greedy_without_cache(tuned, tok, bos, e.source) for e in examples]
    assert mine == printed["answers"]
    house = [[e.references[ns["HOUSE"]]] for e in examples]
    assert rouge_l(mine, house) == pytest.approx(printed["rouge_l"]) and printed["rouge_l"] > 0
    assert corpus_bleu(mine, house) == pytest.approx(printed["bleu"])


@pytest.mark.slow
def test_the_house_nll_recomputed_from_log_softmax(ns):
    """NLL x100 of the house sentences for one tuned arm: sum of -log p(token) over every target
    token of every test row, each row alone (no padding), divided by the number of tokens."""
    seed, bos = FAST_SEEDS[0], ns["BOS"]
    tuned = ns["tuned_models"]["cross", seed][0]
    total, n = 0.0, 0
    with torch.no_grad():
        for source_ids, target_ids in ns["test_set"]:
            tgt = torch.tensor([[bos] + target_ids[:-1]])
            logits = tuned(torch.tensor([source_ids]), tgt)[0][0]  # (T, vocab)
            logp = F.log_softmax(logits.double(), dim=-1)
            total -= logp[torch.arange(len(target_ids)), torch.tensor(target_ids)].sum().item()
            n += len(target_ids)
    assert 100 * total / n == pytest.approx(ns["results"]["cross"][seed]["nll"], rel=1e-4)


@pytest.mark.slow
def test_exercise_1_a_prefix_switched_off_is_the_frozen_base(ns):
    seed = FAST_SEEDS[0]
    tuned, prefix = ns["tuned_models"]["all three", seed]
    frozen = ns["results"]["frozen"][seed]
    try:
        prefix.active = set()
        assert ns["answers"](tuned, ns["test_examples"]) == frozen["answers"]
        assert 100 * ns["answer_nll"](tuned, ns["test_set"]) == frozen["nll"]
    finally:
        prefix.active = set(prefix.kinds)
    assert ns["answers"](tuned, ns["test_examples"]) == ns["results"]["all three"][seed]["answers"]


@pytest.mark.slow
def test_exercise_2_export_keeps_only_p_and_the_outputs(ns):
    seed = FAST_SEEDS[0]
    tuned, prefix = ns["tuned_models"]["all three", seed]
    base = ns["bases"][seed]
    L, C, P = base.config.n_layer, base.config.n_embd, ns["LENGTH"]
    exported = prefix.export()
    assert count_parameters(exported)[0] == 3 * 2 * L * P * C
    batch = ns["collate"](ns["test_set"][:16])
    with torch.no_grad():
        before = tuned(**batch)[0]
        try:
            tuned.add("house", exported, replace=True)
            after = tuned(**batch)[0]
            answers = ns["answers"](tuned, ns["test_examples"])
        finally:
            tuned.add("house", prefix, replace=True)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert answers == ns["results"]["all three"][seed]["answers"]
