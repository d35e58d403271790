"""Lesson 17 (prefix-tuning a real GPT-2) run as a notebook in fast mode (`run_lesson`), once on the
stand-in (no GPT-2 directory: the lesson prints how to get one and runs on a random tiny model)
and once on a tiny GPT-2 directory in Hugging Face's format made by tests/test_gpt2.py's helpers
(found through MINITX_GPT2, as a learner would set it). Nothing is downloaded.

Checked: the how-to text; every verdict paired over the fast seeds; the training loss falls on
every seed (full batch, frozen model: robust); the untrained prefix is the phrase as a prompt,
recomputed in float64 (exercise 1); the held-out word NLL recomputed pair by pair; the
teacher-forced "right" count equals what greedy decoding writes; the prefix's size has its closed
form (exercise 2); a wrong path raises FileNotFoundError naming the files; `--gpt2 PATH` on the
command line works. Run alone: `python -m pytest tests/test_lessons_gpt2.py -q`.
"""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lesson_loader import assert_verdict, LESSONS, run_lesson  # puts lessons/ on sys.path
import common  # noqa: E402  (from lessons/)
from minitx.gpt2 import GPT2Tokenizer, load_gpt2
from test_gpt2 import hf_state, write_dir

FAST_SEEDS = common.SEEDS["fast"]
LESSON = "17_real_gpt2.py"


def run_with_env(value):
    """run_lesson with MINITX_GPT2 set to `value` (None: unset)."""
    with pytest.MonkeyPatch.context() as mp:
        if value is None:
            mp.delenv("MINITX_GPT2", raising=False)
        else:
            mp.setenv("MINITX_GPT2", str(value))
        return run_lesson(LESSON)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    pytest.importorskip("regex")  # GPT2Tokenizer needs it (the `.[gpt2]` extra); the stand-in not
    return write_dir(tmp_path_factory.mktemp("gpt2") / "gpt2", hf_state(dtype=torch.float32))


@pytest.fixture(scope="module")
def stand_in():
    return run_with_env(None)


@pytest.fixture(scope="module")
def tiny(gpt2_dir):
    return run_with_env(gpt2_dir)


@pytest.mark.slow
def test_without_a_directory_it_says_how_to_get_one_and_runs_on_the_stand_in(stand_in):
    out = stand_in["OUTPUT"]
    assert "--gpt2 PATH" in out and "save_pretrained('gpt2-local')" in out
    assert "Nothing is downloaded" in out and "STAND-IN" in out
    assert stand_in["GPT2_DIR"] is None and "Takeaway" in out and "nan" not in out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["stand_in", "tiny"])
def test_verdicts_tables_and_falling_training_loss(which, request):
    ns = request.getfixturevalue(which)
    for v in ns["verdicts"].values():
        assert_verdict(v, output=ns["OUTPUT"])
    assert list(ns["runs"]) == list(FAST_SEEDS)
    negated = {arm: [-100 * ns["runs"][s][arm][0] for s in FAST_SEEDS] for arm in
               ("tuned", "none", "start")}
    assert ns["verdicts"]["tuned vs none"].diffs == pytest.approx(
        [a - b for a, b in zip(negated["tuned"], negated["none"])])
    for seed, run in ns["runs"].items():
        assert len(run["held"]) == ns["N_HELD"] and len(run["losses"]) == ns["S"]["steps"]
        assert run["losses"][-1] < run["losses"][0]  # full batch, frozen model: robust
        train_pairs, held = ns["split_pairs"](seed)
        assert sorted(train_pairs + held) == sorted(ns["PAIRS"])
        assert all(0 <= run[arm][1] <= len(held) for arm in ("none", "start", "tuned"))
    assert len({tuple(ns["split_pairs"](s)[1]) for s in FAST_SEEDS}) == len(FAST_SEEDS)


@pytest.mark.slow
def test_the_tiny_directory_is_loaded_not_the_stand_in(tiny, gpt2_dir):
    out = tiny["OUTPUT"]
    assert f"model: GPT-2 from {gpt2_dir}" in out and "STAND-IN" not in out
    assert "--gpt2 PATH" not in out  # no how-to when a directory is given
    assert tiny["c"].n_layer == 2 and tiny["c"].n_embd == 16


@pytest.mark.slow
def test_exercise_1_the_untrained_prefix_is_the_phrase_as_a_prompt_in_float64(tiny, gpt2_dir):
    model = load_gpt2(gpt2_dir, dtype=torch.float64)
    tok = GPT2Tokenizer.from_dir(gpt2_dir)
    prefix, ids = tiny["init_prefix"](model, tok), tok.encode("hot ->")
    phrase = tok.encode(tiny["INIT_TEXT"])
    assert prefix[0][0].shape == (1, 2, len(phrase), 8)
    with torch.no_grad():
        tuned = model(torch.tensor([ids]), past=prefix)[0]
        prompted = model(torch.tensor([phrase + ids]))[0][:, -len(ids):]
    torch.testing.assert_close(tuned, prompted, rtol=0, atol=1e-10)
    assert tiny["start_gap"] < 1e-4  # the printed float32 gap: rounding only


@pytest.mark.slow
def test_exercise_2_the_prefix_size_has_its_closed_form(tiny, stand_in):
    for ns in (tiny, stand_in):
        c = ns["c"]
        assert ns["n_prefix"] == ns["P"] * c.n_layer * 2 * c.n_embd
        assert ns["P"] == len(ns["tok"].encode(ns["INIT_TEXT"]))


@pytest.mark.slow
def test_make_batch_puts_the_loss_on_the_answer_only(tiny):
    tok = tiny["tok"]
    idx, targets = tiny["make_batch"](tok, tiny["PAIRS"][:2])
    assert idx.shape[0] == 2
    assert targets[0][targets[0] != -1].tolist() == tok.encode(" cold\n")


@pytest.mark.slow
def test_right_answers_by_teacher_forcing_equal_greedy_decoding(tiny):
    """A prefix trained hard on one pair gets it right; `score` counts it right exactly when
    `answer` (generate, the KV cache) writes it, on every pair."""
    model, tok = tiny["model"], tiny["tok"]
    prefix = tiny["init_prefix"](model, tok)
    tiny["train_prefix"](model, prefix, tiny["PAIRS"][:1], 60, lr=0.1)
    rights = [tiny["score"](model, [pair], prefix)[1] for pair in tiny["PAIRS"]]
    written = [int(tiny["answer"](model, w, prefix, n=len(tok.encode(f" {a}\n")) + 1)
                   == f" {a}") for w, a in tiny["PAIRS"]]
    assert rights == written and rights[0] == 1
    assert tiny["score"](model, tiny["PAIRS"], prefix)[1] == sum(rights)


@pytest.mark.slow
def test_the_held_out_word_nll_recomputed_pair_by_pair(tiny):
    """Each held-out pair alone (no padding), -log p of every answer token but the closing
    newline from log-softmax in float64, averaged over those tokens: the printed NLL tuned."""
    model, tok = tiny["model"], tiny["tok"]
    for seed, run in tiny["runs"].items():
        total, n = 0.0, 0
        for word, opposite in run["held"]:
            prompt, answer = tok.encode(tiny["prompt"](word)), tok.encode(f" {opposite}\n")
            assert answer[-1] == tok.encode("\n")[0]
            with torch.no_grad():
                logits = model(torch.tensor([prompt + answer]), past=run["prefix"])[0][0]
            logp = F.log_softmax(logits.double(), dim=-1)  # (T, vocab)
            for j, token in enumerate(answer[:-1]):  # position t predicts token t + 1
                total -= logp[len(prompt) - 1 + j, token].item()
                n += 1
        assert total / n == pytest.approx(run["tuned"][0], rel=1e-5)


@pytest.mark.slow
def test_a_wrong_path_raises_file_not_found_naming_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*config\.json"):
        run_with_env(tmp_path / "nope")


@pytest.mark.slow
def test_the_command_line_path_is_used(gpt2_dir):
    env = {k: v for k, v in os.environ.items() if k != "MINITX_GPT2"}
    done = subprocess.run([sys.executable, str(LESSONS / LESSON), "--fast", "--gpt2",
                           str(gpt2_dir)], capture_output=True, text=True, env=env,
                          cwd=LESSONS, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"model: GPT-2 from {gpt2_dir}" in done.stdout and "Takeaway" in done.stdout
