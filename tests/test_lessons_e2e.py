"""Lesson 18 (E2E, your own data) in fast mode: the split cannot leak, delexicalisation round-trips,
the committed base and learning rates are what the lesson says, verdicts and scores are
well-formed, and (when sacrebleu is installed) the lesson's BLEU is sacrebleu's.

Run alone: `python -m pytest tests/test_lessons_e2e.py -q`.
"""
import datetime
import json
import math
import re

import pytest
import torch

from lesson_loader import LESSONS, run_lesson
from minitx.data import encode_prompts, load_model
from minitx.metrics import corpus_bleu
from minitx.train import load_checkpoint
from minitx.tuning import read_adapter_tokenizer

ALLOWED = {"holds", "reversed", "not shown (within seed spread)"}


@pytest.fixture(scope="module")
def lesson():
    return run_lesson("18_e2e_own_data.py")


def test_splits_do_not_leak(lesson):
    train, val, test = set(lesson["train_mrs"]), set(lesson["val_mrs"]), set(lesson["test_mrs"])
    assert not test & (train | val) and not train & val
    assert train | val == set(lesson["dev_refs"]) and len(test) == 630
    assert 0.05 < len(val) / len(train | val) < 0.15  # about one in ten by the hash
    assert all(lesson["dev_split"](mr) == "val" for mr in val)  # a function of the MR text alone
    assert set(lesson["scored_mrs"]) <= test and len(lesson["scored_mrs"]) == lesson["S"]["n_test"]


def test_delexicalisation_round_trips(lesson):
    """Every development reference comes back (as normalised words) from delexicalise then
    relexicalise, and keeps no whole-word name/near value; nearly every one names its
    restaurant (the rest misspell it); every prompt holds the name placeholder."""
    delex, relex, norm, parse = (lesson[k] for k in ("delexicalise", "relexicalise", "normalise",
                                                     "parse_mr"))
    named = []
    for mr, refs in lesson["dev_refs"].items():
        values = {a: v for a, v in parse(mr) if a in lesson["SLOTS"]}
        assert relex(mr, lesson["linearise"](mr)) == lesson["linearise"](mr, False)
        for ref in refs:
            assert "xname" not in ref.lower() and "xnear" not in ref.lower()
            out = delex(mr, ref)
            assert norm(relex(mr, out)) == norm(ref)
            assert not any(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", out, re.IGNORECASE)
                           for v in values.values())
            named.append("xname" in out)
    assert sum(named) / len(named) > 0.95
    assert all("xname" in prompt for prompt in lesson["train_prompts"])
    assert all(f"{a} : {v}" in lesson["linearise"](mr, False) for mr in lesson["test_mrs"]
               for a, v in parse(mr))


def test_delexicalisation_removes_every_unknown_word_from_the_test_prompts(lesson):
    """With a vocabulary from the raw training texts, some test prompts hold <unk>, and those
    words are all name/near values; delexicalised, none does."""
    raw_tok, parse = lesson["raw_tok"], lesson["parse_mr"]
    assert lesson["unk_prompts"]["delexicalised"] == 0 and lesson["unk_prompts"]["raw"] > 0
    for mr in lesson["test_mrs"]:
        words = raw_tok.split(lesson["linearise"](mr, False))
        unknown = {w for w in words if raw_tok.encode(w) == [raw_tok.unk_id]}
        slot_words = {w for a, v in parse(mr) if a in lesson["SLOTS"] for w in raw_tok.split(v)}
        assert unknown <= slot_words
    assert lesson["unseen_names"] and set(lesson["unseen_names"]) <= {
        v for mr in lesson["test_mrs"] for a, v in parse(mr) if a == "name"}


def test_committed_base_is_small_fp16_and_carries_the_corpus_tokenizer(lesson):
    path = LESSONS / "checkpoints" / "base_e2e.pt"
    assert path.stat().st_size < 4_000_000
    data = load_checkpoint(path)
    assert {v.dtype for v in data["weights"].values()} == {torch.float16}
    model, tok = load_model(path)
    assert tok.to_dict() == lesson["tok"].to_dict()  # the vocabulary of the training texts
    assert model.config.vocab_size == tok.vocab_size and model.config.block_size >= 128


def test_learning_rates_file_names_its_run_and_uses_the_course_grid(lesson):
    chosen = json.loads((LESSONS / "results" / "e2e_learning_rates.json").read_text())
    assert chosen["written_by"].startswith("lessons/18_e2e_own_data.py")
    datetime.date.fromisoformat(chosen["date"])
    grid = lesson["LR_GRID"]
    for budget in ("default", "full"):
        for method, key in lesson["METHODS"].items():
            losses = chosen["validation_loss"][budget][method]
            assert set(losses) == {f"{lr:g}" for lr in grid[key]}
            best = chosen["choices"][budget][method]
            assert best in grid[key] and losses[f"{best:g}"] == min(losses.values())
    assert lesson["lrs"] == chosen["choices"]["default"]  # fast mode uses the default budget's


def test_verdicts_scores_and_table(lesson):
    seeds = lesson["SEEDS"]["fast"]
    for v in lesson["verdicts"]:
        assert type(v).__name__ == "Verdict" and len(v.diffs) == len(seeds)
        assert v.word in ALLOWED or v.word.startswith("not shown (only")
    for method, scores in lesson["results"].items():
        for metric in ("bleu", "rouge_l"):
            assert len(scores[metric]) == len(seeds)
            assert all(0.0 <= s <= 100.0 for s in scores[metric])
    for row in (lesson["frozen"], lesson["human"]):
        assert 0.0 <= row["bleu"] <= 100.0 and 0.0 <= row["rouge_l"] <= 100.0
    assert lesson["human"]["bleu"] > 10.0  # people agree on many 4-grams: the row is not empty
    lines = lesson["OUTPUT"].splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("E2E test, 16 MRs"))
    header, rows = lines[title + 1], lines[title + 3:title + 9]
    assert header.split() == ["method", "trained", "params", "lr", "BLEU", "ROUGE-L", "s/seed"]
    for row, method in zip(rows, ("prompt", "prefix", "lora", "full", "frozen base", "human")):
        assert row.startswith(method + " ")
    human = rows[-1].split()
    assert human[-3:-1] == [f"{lesson['human']['bleu']:.1f}", f"{lesson['human']['rouge_l']:.1f}"]


def test_scores_recompute_from_the_outputs(lesson):
    """The printed BLEU of every method and seed is the score of its kept outputs."""
    for (method, seed), texts in lesson["outputs"].items():
        assert len(texts) == len(lesson["scored_mrs"]) and all(isinstance(t, str) for t in texts)
        i = lesson["SEEDS"]["fast"].index(seed)
        assert lesson["score"](texts, lesson["scored_mrs"])["bleu"] == lesson["results"][method][
            "bleu"][i]
    assert lesson["spread"](lesson["results"]["prefix"]["bleu"]) in lesson["OUTPUT"]


def test_exported_prefix_keeps_only_p(lesson):
    base = lesson["base"].config
    assert lesson["kept_params"] == base.n_layer * 2 * lesson["PREFIX_LENGTH"] * base.n_embd
    assert lesson["mlp_params"] > 10 * lesson["kept_params"]
    assert 4 * lesson["kept_params"] <= lesson["prefix_file_bytes"] < 4 * lesson["mlp_params"] / 10
    assert lesson["mlp_file_bytes"] >= 4 * lesson["mlp_params"]


def test_saved_prefix_reloads_with_its_tokenizer_and_the_same_outputs(lesson, tmp_path):
    """The default save (exported prefix + tokenizer) loads back into a fresh Tuned and gives the
    trained MLP prefix's logits; the tokenizer read from the adapter is the lesson's."""
    Tuned, base, tok = lesson["Tuned"], lesson["base"], lesson["tok"]
    trained = Tuned(base)
    trained.add("e2e", lesson["trained_mlp"])
    trained.save("e2e", tmp_path, tokenizer=tok)
    loaded = Tuned(base)
    loaded.load(tmp_path)
    assert read_adapter_tokenizer(tmp_path) == tok.to_dict()
    idx, mask = encode_prompts(tok, lesson["scored_prompts"][:4])
    with torch.no_grad():
        want = trained(idx, attention_mask=mask)[0]
        got = loaded(idx, attention_mask=mask)[0]
    assert (got - want).abs().max().item() < 1e-4


def test_exercise_1_human_row_with_its_own_reference_is_exactly_100(lesson):
    """Reference solution of exercise 1: each hypothesis is one of its own references."""
    hyps, refs = lesson["human_hyps"], lesson["human_refs"]
    assert corpus_bleu(hyps, [[h] + r for h, r in zip(hyps, refs)]) == pytest.approx(100.0,
                                                                                      abs=1e-9)


def test_bleu_equals_sacrebleu(lesson):
    """minitx's multi-reference BLEU = sacrebleu's on the same words (tokenize='none', no
    smoothing; a missing reference is None), for the human row and every method's outputs."""
    sacrebleu = pytest.importorskip("sacrebleu")
    norm, relex, mrs = lesson["normalise"], lesson["relexicalise"], lesson["scored_mrs"]
    cases = [(lesson["human_hyps"], lesson["human_refs"], lesson["human"]["bleu"])]
    for (method, seed), texts in lesson["outputs"].items():
        i = lesson["SEEDS"]["fast"].index(seed)
        cases.append(([norm(relex(mr, t)) for mr, t in zip(mrs, texts)],
                      [[norm(r) for r in lesson["test_refs"][mr]] for mr in mrs],
                      lesson["results"][method]["bleu"][i]))
    for hyps, refs, ours in cases:
        n = max(map(len, refs))
        streams = [[r[k] if k < len(r) else None for r in refs] for k in range(n)]
        theirs = sacrebleu.corpus_bleu(hyps, streams, tokenize="none", smooth_method="none").score
        assert math.isclose(ours, theirs, abs_tol=1e-9), (ours, theirs)
        assert ours == corpus_bleu(hyps, refs)
