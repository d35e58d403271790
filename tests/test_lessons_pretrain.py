"""Lesson 04 (pretraining) runs in fast mode and its numbers come from computation.

Run alone: `python -m pytest tests/test_lessons_pretrain.py -q`.
"""

import pytest
import torch

from lesson_loader import load_lesson, run_fast
import common  # lessons/ is on sys.path once lesson_loader is imported


@pytest.mark.slow
def test_lesson_04_fast_trains_and_measures_the_committed_base():
    result = run_fast(load_lesson("04_pretrain_base.py"))
    first, last = result["demo_losses"]
    assert last < first  # the short demo run learns something
    scores = {row["task"]: row["score %"] for row in result["skills"]}
    assert set(scores) == {"sentiment", "data_to_text", "reverse", "copy", "intent"}
    # the committed small base reads its pretrained instructions
    assert scores["reverse"] >= 90 and scores["copy"] >= 90 and scores["data_to_text"] >= 90


def test_committed_checkpoints_load_and_match_their_config(tmp_path):
    for size in ("tiny", "small"):
        model, tok = common.load_base(size)
        assert model.config.vocab_size == tok.vocab_size
        assert model.config.n_layer == common.SIZES[size]["n_layer"]
        assert not any(p.requires_grad for p in model.parameters())
    # a save -> load round trip keeps the (fp16-rounded) weights exactly
    common.save_base(model, tok, tmp_path / "base.pt")
    data = common.load_checkpoint(tmp_path / "base.pt")
    for name, tensor in model.state_dict().items():
        if name != "lm_head.weight":
            assert (data["weights"][name].float() == tensor).all()


def test_window_batches_put_loss_on_answers_only():
    tok = common.course_tokenizer()
    stream = common.token_stream(tok, 50)
    get_batch = common.window_batches(stream, batch_size=4, block=32)
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
