"""Tests for minitx.train: schedule, the loop's guarantees, checkpoints, resume, DDP."""
import importlib.util
import math
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx.model import GPT, Config
from minitx.train import (NonFiniteLoss, TrainConfig, count_tokens, load_checkpoint, lr_at,
                          save_checkpoint, train)

TESTS = os.path.dirname(os.path.abspath(__file__))


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    base = dict(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16)
    return GPT(Config(**{**base, **kw}))


def fixed_batch(rows=4, T=12, seed=0):
    data = torch.randint(0, 32, (rows, T + 1), generator=torch.Generator().manual_seed(seed))
    return {"idx": data[:, :-1], "targets": data[:, 1:]}


def batch_of_step(step):
    """A different, deterministic batch for every step: what exact resume needs."""
    return fixed_batch(seed=1000 + step)


def quiet(*args):
    pass


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ----------------------------------------------------------------------------- learning rate

def test_lr_warmup_is_linear_and_decay_ends_at_min_lr():
    c = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr=0.1)
    assert [lr_at(s, c) for s in (0, 4, 9)] == pytest.approx([1e-4, 5e-4, 1e-3])
    assert lr_at(10, c) == 1e-3  # decay starts from the full rate
    assert lr_at(99, c) == pytest.approx(1e-4)  # the last step reaches min_lr * lr
    assert lr_at(10 + 89 // 2, c) == pytest.approx(0.55e-3, rel=0.02)  # cosine midpoint
    linear = TrainConfig(steps=11, lr=1.0, schedule="linear", min_lr=0.0)
    assert [lr_at(s, linear) for s in range(11)] == pytest.approx([1 - s / 10 for s in range(11)])
    assert lr_at(50, TrainConfig(steps=100, lr=0.3, schedule="constant", warmup_steps=5)) == 0.3
    with pytest.raises(ValueError, match="schedule"):
        lr_at(0, TrainConfig(schedule="exponential"))


@given(steps=st.integers(1, 400), warmup=st.integers(0, 400), min_lr=st.floats(0, 1),
       lr=st.floats(1e-6, 1.0), schedule=st.sampled_from(["cosine", "linear", "constant"]))
def test_lr_in_range_and_non_increasing_after_warmup(steps, warmup, min_lr, lr, schedule):
    warmup = min(warmup, steps)  # more warmup than steps is refused (tests/test_bad_inputs_train)
    c = TrainConfig(steps=steps, lr=lr, warmup_steps=warmup, min_lr=min_lr, schedule=schedule)
    rates = [lr_at(s, c) for s in range(steps)]
    assert all(0 <= r <= lr for r in rates)
    assert all(a <= b for a, b in zip(rates[:warmup], rates[1:warmup]))  # warmup rises
    after = rates[min(warmup, steps):]
    assert all(a >= b for a, b in zip(after, after[1:]))


# ----------------------------------------------------------------------------- the loop

def test_loss_decreases_when_memorising_four_sequences():
    model = tiny(n_embd=32)
    batch = fixed_batch()
    result = train(model, lambda step: batch,
                   TrainConfig(steps=80, lr=1e-2, warmup_steps=10, weight_decay=0.0), log=quiet)
    assert len(result["losses"]) == 80
    assert result["losses"][-1] < 0.5 * result["losses"][0]
    assert result["steps_per_s"] > 0 and result["tokens_per_s"] > 0


def test_only_trainable_parameters_change_and_reach_the_optimizer(tmp_path):
    model = tiny()
    model.requires_grad_(False)
    layer = model.transformer.h[0].mlp.c_fc
    layer.requires_grad_(True)
    before = params_of(model)
    path = str(tmp_path / "ck.pt")
    train(model, batch_of_step, TrainConfig(steps=5, lr=1e-2, weight_decay=0.1, checkpoint=path),
          log=quiet)
    trainable = {"transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias"}
    for name, p in model.named_parameters():
        if name in trainable:
            assert not torch.equal(p, before[name])
        else:
            assert torch.equal(p, before[name]) and p.grad is None, name
    ck = load_checkpoint(path)
    assert set(ck["model"]) == trainable  # the checkpoint holds the trainable parameters only
    state, groups = ck["optimizer"]["state"], ck["optimizer"]["param_groups"]
    assert sorted(tuple(s["exp_avg"].shape) for s in state.values()) == [(64,), (64, 16)]
    # weight decay on the matrix only, none on the bias
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.1), (1, 0.0)]


def test_no_trainable_parameters_is_a_clear_error():
    model = tiny().requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        train(model, batch_of_step, TrainConfig(steps=1), log=quiet)


def test_gradient_accumulation_equals_the_full_batch():
    batch = fixed_batch(rows=4)  # no -1 targets: every micro-batch has as many loss tokens
    # float64: the two runs sum gradients in different orders; a near-zero gradient (e.g. the key
    # bias's, exactly zero in theory) is then rounding noise, which Adam scales up to a full step
    full, accum = tiny().double(), tiny().double()
    config = dict(steps=5, lr=1e-2, warmup_steps=1, grad_clip=0.5)
    r1 = train(full, lambda step: batch, TrainConfig(**config), log=quiet)
    half = lambda step, micro: {k: v[2 * micro:2 * micro + 2] for k, v in batch.items()}  # noqa
    r2 = train(accum, half, TrainConfig(**config, accum=2), log=quiet)
    assert r1["losses"] == pytest.approx(r2["losses"], abs=1e-6)
    for (name, a), b in zip(full.named_parameters(), accum.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_eval_fn_runs_in_eval_mode_without_grad_and_is_recorded():
    seen = []

    def eval_fn(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"score": torch.tensor(0.5), "n": 3}

    model = tiny()
    result = train(model, batch_of_step, TrainConfig(steps=5, eval_every=2), eval_fn, log=quiet)
    assert seen == [(False, False)] * 3  # steps 2, 4 and the end
    assert [e["step"] for e in result["evals"]] == [2, 4, 5]
    assert result["evals"][0] == {"step": 2, "score": 0.5, "n": 3}
    assert model.training


def test_progress_lines():
    lines = []
    train(tiny(), batch_of_step, TrainConfig(steps=4, log_every=2, lr=3e-4), log=lines.append)
    assert len(lines) == 2 and not any("\r" in line for line in lines)
    pattern = (r"step (\d+)/4 \| loss \d+\.\d{3} \| lr \d\.\de-\d\d \| \d+\.\dk tok/s \| "
               r"ETA \d+:\d\d:\d\d")
    assert [re.fullmatch(pattern, line).group(1) for line in lines] == ["2", "4"]


def test_precision_choices_on_cpu():
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(tiny(), batch_of_step, TrainConfig(steps=1, precision="fp16"), log=quiet)
    result = train(tiny(), batch_of_step, TrainConfig(steps=2, precision="bf16"), log=quiet)
    assert all(math.isfinite(x) for x in result["losses"])
    with pytest.raises(ValueError, match="precision"):
        train(tiny(), batch_of_step, TrainConfig(steps=1, precision="fp8"), log=quiet)


# ----------------------------------------------------------------------------- safety

def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model, path = tiny(), str(tmp_path / "ck.pt")

    def poisoned(step):
        if step == 3:
            with torch.no_grad():
                model.transformer.wpe.weight[0, 0] = float("nan")
        return batch_of_step(step)

    with pytest.raises(NonFiniteLoss, match=r"step 4/10 \(get_batch\(3\)\).*ck\.pt.*step 3"):
        train(model, poisoned, TrainConfig(steps=10, checkpoint=path, checkpoint_every=1),
              log=quiet)
    ck = load_checkpoint(path)
    assert ck["step"] == 3 and len(ck["losses"]) == 3
    assert all(torch.isfinite(t).all() for t in ck["model"].values())


class Toy(torch.nn.Module):
    """Any module returning (logits, loss, ...) trains; `unused` takes no part in the loss."""

    def __init__(self):
        super().__init__()
        self.w, self.unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))

    def forward(self, x, scale=1.0):
        return None, scale * ((self.w - x) ** 2).mean(), None


def test_non_finite_weights_are_never_saved(tmp_path):
    toy, path = Toy(), tmp_path / "ck.pt"

    def batches(step):
        if step == 2:  # weights go bad while loss and gradient norm stay finite
            toy.unused.data.fill_(float("inf"))
        return {"x": torch.zeros(3), "scale": 2.0}

    with pytest.raises(NonFiniteLoss, match=r"weights at step 3/5.*\(step 2\)"):
        train(toy, batches, TrainConfig(steps=5, lr=0.1, checkpoint=str(path), checkpoint_every=1),
              log=quiet)
    assert load_checkpoint(str(path))["step"] == 2


def test_save_is_atomic_under_a_crash(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.pt")
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temp file left behind


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(str(path), {"step": 1, "w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:300])  # truncated
    with pytest.raises(ValueError, match=r"ck\.pt.*corrupted or truncated.*delete it"):
        load_checkpoint(str(path))
    with pytest.raises(ValueError, match="corrupted"):
        train(tiny(), batch_of_step, TrainConfig(steps=2, checkpoint=str(path)), log=quiet,
              resume=True)


# ----------------------------------------------------------------------------- resume

class Preempted(Exception):
    pass


@pytest.mark.parametrize("freeze", [False, True])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, freeze):
    def make(seed):
        model = tiny(seed, dropout=0.1)  # dropout: the RNG state must be restored too
        if freeze:
            model.transformer.wte.weight.requires_grad_(False)
        return model

    def config(**kw):
        return TrainConfig(steps=20, lr=1e-2, warmup_steps=3, log_every=0, **kw)

    straight = make(0)
    expected = train(straight, batch_of_step, config(), log=quiet)["losses"]

    path = str(tmp_path / "ck.pt")

    def crashing(step):
        if step == 10:
            raise Preempted
        return batch_of_step(step)

    with pytest.raises(Preempted):
        train(make(0), crashing, config(checkpoint=path, checkpoint_every=5), log=quiet)
    assert load_checkpoint(path)["step"] == 10

    # a fresh process: same init (the frozen weights come from it), then resume at step 10
    resumed = make(0)
    lines = []
    result = train(resumed, batch_of_step, config(checkpoint=path, checkpoint_every=5),
                   log=lines.append, resume=True)
    assert result["losses"] == expected
    assert lines[0] == f"resumed from {path} at step 10"
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_resume_without_a_checkpoint_file_starts_afresh(tmp_path):
    config = TrainConfig(steps=2, checkpoint=str(tmp_path / "ck.pt"))
    assert len(train(tiny(), batch_of_step, config, log=quiet, resume=True)["losses"]) == 2
    with pytest.raises(ValueError, match="checkpoint"):
        train(tiny(), batch_of_step, TrainConfig(steps=2), log=quiet, resume=True)


# ----------------------------------------------------------------------------- measuring

def test_count_tokens():
    batch = {"idx": torch.zeros(2, 5, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)}
    assert count_tokens(batch) == 8
    assert count_tokens({"idx": batch["idx"]}) == 10
    assert count_tokens({"inputs_embeds": torch.zeros(3, 4, 16)}) == 12


# ----------------------------------------------------------------------------- DDP

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_on_two_processes_matches_single_process_training(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           os.path.join(TESTS, "ddp_worker.py"), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.count("step 6/6 |") == 1  # only rank 0 logs

    path = os.path.join(TESTS, "ddp_worker.py")
    spec = importlib.util.spec_from_file_location("ddp_worker", path)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    model, batch, config = worker.setup()
    single = train(model, lambda step: batch, config, log=quiet)
    ddp = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert ddp["losses"] == pytest.approx(single["losses"], abs=1e-6)
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(ddp["params"][name], p.detach(), atol=1e-6, rtol=0)


def test_rates_exclude_the_time_spent_in_eval_fn(monkeypatch):
    """A fake clock: each training step takes 1 s (in get_batch), each evaluation 100 s. The
    rates, the ETA and eval_seconds must count the steps only."""
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    def get_batch(step):
        now[0] += 1.0
        return fixed_batch(rows=2, T=5)

    def slow_eval(model):
        now[0] += 100.0
        return {"score": 1.0}
    lines = []
    result = train(tiny(), get_batch, TrainConfig(steps=4, log_every=2, eval_every=1), slow_eval,
                   log=lines.append)
    assert result["eval_seconds"] == 400.0
    assert result["steps_per_s"] == 1.0 and result["tokens_per_s"] == 10.0  # 2 x 5 tokens a step
    progress = [line for line in lines if line.startswith("step")]
    assert [line.split(" | ")[-2:] for line in progress] == [["0.0k tok/s", "ETA 0:00:02"],
                                                            ["0.0k tok/s", "ETA 0:00:00"]]
