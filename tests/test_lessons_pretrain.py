"""Lesson 04 (pretraining) runs in fast mode, its numbers come from computation, it leaves the
committed checkpoints alone, and its exercises' reference solutions hold.

Run alone: `python -m pytest tests/test_lessons_pretrain.py -q`.
"""

import pytest
import torch

from lesson_loader import run_lesson
import common  # lessons/ is on sys.path once lesson_loader is imported
import toyworld
from minitx.data import load_model, packed_batches
from minitx.train import load_checkpoint
from toyworld import TASKS, make_split

PRETRAINED = {"sentiment", "data_to_text", "reverse", "copy", "intent"}


@pytest.fixture(scope="module")
def lesson04():
    """The lesson's namespace (fast mode), and whether the committed checkpoints were untouched."""
    def stamps():
        return {p.name: (p.stat().st_mtime_ns, p.read_bytes())
                for p in sorted(common.CHECKPOINTS.glob("base_*.pt"))}
    before = stamps()
    ns = run_lesson("04_pretrain_base.py")
    return ns, before == stamps()


@pytest.mark.slow
def test_lesson_04_demo_run_learns_on_every_seed(lesson04):
    ns, checkpoints_untouched = lesson04
    assert checkpoints_untouched  # default and fast modes never write lessons/checkpoints/
    seeds = common.SEEDS["fast"]
    assert list(ns["demo"]) == list(seeds)
    v = ns["learning"]
    assert isinstance(v, common.Verdict) and len(v.diffs) == len(seeds)
    assert v.word in {"holds", "reversed", common.NOT_SHOWN, f"not shown (only {len(seeds)} seeds)"}
    for run in ns["demo"].values():
        assert len(run["losses"]) == ns["S"]["demo_steps"]
        assert run["end"] < run["start"] - 0.5  # the loss falls on every seed, by a wide margin
    # seed 0's demo model was saved to lessons/out/ and reloads with the tiny configuration
    data = load_checkpoint(common.OUT / "base_tiny_demo.pt")
    assert data["config"]["n_layer"] == common.SIZES["tiny"]["n_layer"]


@pytest.mark.slow
def test_lesson_04_batch_display_matches_the_batches(lesson04):
    """Recompute the printed share of positions with a loss, and the bracketed answer words."""
    ns, _ = lesson04
    S = ns["S"]
    lines = toyworld.pretraining_corpus(S["demo_lines"], seed=0)
    batch = packed_batches(ns["tok"], lines, S["demo_batch"], S["demo_block"], seed=0,
                           loss_after_sep=True)(0)
    share = 100 * (batch["targets"] != -1).float().mean().item()
    assert abs(share - ns["loss_share"]) < 1e-9 and f"{share:.1f}%" in ns["OUTPUT"]
    n_marked = sum(word.startswith("[") for word in ns["words"])
    assert n_marked == int((batch["targets"][0, :-1] != -1).sum())  # the last lies past the row


@pytest.mark.slow
def test_lesson_04_committed_bases_and_skills(lesson04):
    ns, _ = lesson04
    assert [b["size"] for b in ns["bases"]] == list(common.SIZES)
    for row in ns["bases"]:
        model, _ = common.load_base(row["size"])
        assert row["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
        assert row["frozen"] == "yes" and row["layers"] == common.SIZES[row["size"]]["n_layer"]
    scores = {row["task"]: row["score %"] for row in ns["skills"]}
    assert set(scores) == PRETRAINED
    # the committed small base reads its pretrained instructions
    assert scores["reverse"] >= 90 and scores["copy"] >= 90 and scores["data_to_text"] >= 90
    chance = {row["task"]: row["chance %"] for row in ns["skills"]}
    assert chance["sentiment"] == 50 and chance["reverse"] is None
    assert ns["near_chance"] == [t for t in scores if chance[t] and scores[t] < chance[t] + 10]
    # recompute one printed score independently
    base, tok = common.load_base("small")
    examples = make_split("reverse", ns["S"]["n_eval"], "test")
    answers = common.predict(base, tok, examples, TASKS["reverse"].phrasings[0])
    exact = 100 * sum(a == e.target for a, e in zip(answers, examples)) / len(examples)
    assert exact == scores["reverse"]


def test_lesson_04_exercise_1_loss_on_every_token_is_far_larger(lesson04):
    """Exercise 1: counting the unpredictable instruction/input tokens multiplies the loss."""
    ns, _ = lesson04
    base, _ = common.load_base("small")
    batch = ns["batch"]
    every = torch.cat([batch["idx"][:, 1:], batch["targets"][:, -1:]], dim=1)
    with torch.no_grad():
        answers_only = base(batch["idx"], targets=batch["targets"])[1].item()
        all_tokens = base(batch["idx"], targets=every)[1].item()
    assert all_tokens > 5 * answers_only


def test_lesson_04_exercise_2_an_unseen_phrasing_can_collapse_a_skill(lesson04):
    """Exercise 2: the small base reverses lists when asked in pretrained words, not otherwise."""
    base, tok = common.load_base("small")
    task = TASKS["reverse"]
    examples = make_split("reverse", 16, "test")
    seen = common.evaluate(base, tok, "reverse", examples, task.phrasings[0])["exact"]
    unseen = common.evaluate(base, tok, "reverse", examples, task.phrasings[task.n_seen])["exact"]
    assert seen >= 90 and unseen <= 50


def test_committed_checkpoints_load_and_match_their_config(tmp_path):
    for size in ("tiny", "small"):
        model, tok = common.load_base(size)
        assert model.config.vocab_size == tok.vocab_size
        assert model.config.n_layer == common.SIZES[size]["n_layer"]
        assert not any(p.requires_grad for p in model.parameters())
    # a save -> load round trip keeps the (fp16-rounded) weights exactly
    common.save_base(model, tok, tmp_path / "base.pt")
    again, tok_again = load_model(tmp_path / "base.pt")
    assert tok_again.words == tok.words
    for (name, tensor), saved in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(saved, tensor), name


def test_pretraining_batches_put_loss_on_answers_only():
    tok = common.course_tokenizer()
    get_batch = common.pretraining_batches(tok, 50, batch_size=4, block=32)
    batch = get_batch(0)
    arrow, stop = tok.encode("=>")[0], tok.stop_id
    for row, targets in zip(batch["idx"].tolist(), batch["targets"].tolist()):
        in_answer, expected = False, []
        for j, token in enumerate(row):  # token j is an answer token iff an "=>" opened it
            if j > 0:
                expected.append(token if in_answer else -1)
            in_answer = (in_answer or token == arrow) and token != stop
        assert targets[:-1] == expected  # the last target's token lies outside the row
    again = get_batch(0)
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # a function of the step
