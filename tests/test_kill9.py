"""kill -9 in the middle of saving: a child process saves a checkpoint and an adapter in a loop
and is killed with SIGKILL at random moments, a dozen times. After every kill the checkpoint
path loads a complete checkpoint and the adapter directory a complete adapter (each one
consistent with itself), and temp files never pile up; after the next save none is left.

The child is forked from this process (torch is imported already: a new interpreter would take
seconds to start), runs only file writes, and leaves with os._exit, never through pytest.
"""
import os
import random
import signal
import sys
import time

import pytest
import torch

from minitx import GPT, Config
from minitx.train import load_checkpoint, save_checkpoint
from minitx.tuning import Prefix, Tuned

KILLS = 12


def state(i):
    """Checkpoint i: every number in it is i, so a torn or mixed file shows."""
    return {"step": i, "weights": torch.full((1 << 17,), float(i))}  # 512 KB


def set_prefix(tuned, i):
    with torch.no_grad():
        tuned.tasks["task"].kv.fill_(float(i))


def save_both(tuned, ck, adapter, i):
    save_checkpoint(ck, state(i))
    set_prefix(tuned, i)
    tuned.save("task", adapter)


def check_complete(base, ck, adapter):
    """Both paths load, and each holds one save's numbers throughout."""
    loaded = load_checkpoint(ck)
    assert torch.equal(loaded["weights"], torch.full((1 << 17,), float(loaded["step"])))
    prefix = Tuned(base).load(adapter)
    assert (prefix.kv == prefix.kv.flatten()[0]).all()
    return loaded["step"]


def temp_files(*directories):
    return [f for d in directories for f in os.listdir(d) if f.endswith(".tmp")]


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="needs os.fork (POSIX; macOS forks torch unsafely)")
def test_kill_9_during_saves_never_loses_the_last_good_files(tmp_path):
    torch.manual_seed(0)
    base = GPT(Config(vocab_size=16, block_size=16, n_layer=2, n_head=2, n_embd=64))
    tuned = Tuned(base.requires_grad_(False))
    tuned.add("task", Prefix(base, 64))  # 128 KB of prefix
    ck, adapter = str(tmp_path / "run" / "ck.pt"), str(tmp_path / "adapter")
    save_both(tuned, ck, adapter, 0)
    rng, steps, debris = random.Random(0), [0], 0
    for kill in range(KILLS):
        start = steps[-1] + 1
        pid = os.fork()
        if pid == 0:  # the child: save forever, counting up
            try:
                for i in range(start, sys.maxsize):
                    save_both(tuned, ck, adapter, i)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.005, 0.1))  # a random moment, mostly inside a save
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        steps.append(check_complete(base, ck, adapter))
        left = temp_files(os.path.dirname(ck), adapter)
        debris += len(left)
        assert len(left) <= 3, left  # at most the one file each save was writing: none piles up
    assert steps == sorted(steps)  # every kill left the newest complete save, or the one before
    save_both(tuned, ck, adapter, steps[-1] + 1)  # the next save clears what the kills left
    assert temp_files(os.path.dirname(ck), adapter) == []
    assert sorted(os.listdir(adapter))[0] == "adapter.json" and len(os.listdir(adapter)) == 2
    assert check_complete(base, ck, adapter) == steps[-1] + 1
    print(f"{KILLS} kills at steps {steps[1:]}; temp files found after them: {debris}")
