"""Bad input to minitx.train is refused up front (TrainConfig when it is made, train() before the
first step, resume before any state is loaded): each case asserts the exception type and that the
message names the setting. Hypothesis covers whole bad ranges. Faults are contained: a non-finite
loss stops training before the update, so the model in memory stays finite.
"""
import math
import os
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitx.model import GPT, Config
from minitx.train import NonFiniteLoss, TrainConfig, load_checkpoint, save_checkpoint, train


def raises(kind, *words):
    """pytest.raises(kind) whose message must contain every one of `words` (plain text)."""
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


def quiet(*args):
    pass


def tiny(seed=0):
    torch.manual_seed(seed)
    return GPT(Config(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16))


def batch_of_step(step):
    data = torch.randint(0, 32, (4, 9), generator=torch.Generator().manual_seed(step))
    return {"idx": data[:, :-1], "targets": data[:, 1:]}


# ----------------------------------------------------------------------------- TrainConfig

@given(steps=st.integers(max_value=0), accum=st.integers(max_value=0))
def test_counts_below_one(steps, accum):
    with raises(ValueError, "TrainConfig.steps", ">= 1", str(steps)):
        TrainConfig(steps=steps)
    with raises(ValueError, "TrainConfig.accum", ">= 1", str(accum)):
        TrainConfig(accum=accum)


@pytest.mark.parametrize("name", ["eval_every", "log_every", "checkpoint_every", "seed"])
@given(value=st.integers(max_value=-1))
def test_negative_intervals_and_seed(name, value):
    with raises(ValueError, f"TrainConfig.{name}", ">= 0"):
        TrainConfig(**{name: value})


@given(steps=st.integers(1, 100), extra=st.integers(1, 100))
def test_warmup_longer_than_training(steps, extra):
    with raises(ValueError, "TrainConfig.warmup_steps", f"in [0, {steps}]", str(steps + extra)):
        TrainConfig(steps=steps, warmup_steps=steps + extra)
    with raises(ValueError, "TrainConfig.warmup_steps"):
        TrainConfig(steps=steps, warmup_steps=-extra)


@given(lr=st.floats(max_value=0.0) | st.sampled_from([math.nan, math.inf]))
def test_lr_must_be_positive_and_finite(lr):
    with raises(ValueError, "TrainConfig.lr", "> 0"):
        TrainConfig(lr=lr)


@given(clip=st.floats(max_value=-1e-300), decay=st.floats(max_value=-1e-300))
def test_negative_grad_clip_would_ascend(clip, decay):
    with raises(ValueError, "TrainConfig.grad_clip", ">= 0"):
        TrainConfig(grad_clip=clip)
    with raises(ValueError, "TrainConfig.weight_decay", ">= 0"):
        TrainConfig(weight_decay=decay)


@given(min_lr=st.floats(max_value=-1e-300) | st.floats(min_value=1.0000001) | st.just(math.nan))
def test_min_lr_is_a_fraction_of_lr(min_lr):
    with raises(ValueError, "TrainConfig.min_lr", "fraction of lr", "in [0, 1]"):
        TrainConfig(min_lr=min_lr)


@pytest.mark.parametrize("kw, kind, words", [
    (dict(schedule="exponential"), ValueError, ["TrainConfig.schedule", "'exponential'", "cosine"]),
    (dict(precision="fp8"), ValueError, ["TrainConfig.precision", "'fp8'", "bf16"]),
    (dict(steps=2.5), TypeError, ["TrainConfig.steps", "2.5"]),
    (dict(lr="3e-4"), TypeError, ["TrainConfig.lr", "'3e-4'"]),
    (dict(accum=None), TypeError, ["TrainConfig.accum", "None"])])
def test_unknown_names_and_wrong_types(kw, kind, words):
    with raises(kind, *words):
        TrainConfig(**kw)


# ----------------------------------------------------------------------------- train()

def test_wrong_config_and_resume_without_a_file():
    with raises(TypeError, "config", "TrainConfig", "dict"):
        train(tiny(), batch_of_step, {"steps": 2}, log=quiet)
    with raises(ValueError, "resume=True", "config.checkpoint"):
        train(tiny(), batch_of_step, TrainConfig(steps=2), log=quiet, resume=True)


def test_a_checkpoint_path_that_is_a_directory_fails_before_training(tmp_path):
    calls = []

    def get_batch(step):
        calls.append(step)
        return batch_of_step(step)
    with raises(ValueError, "config.checkpoint", str(tmp_path), "checkpoint.pt"):
        train(tiny(), get_batch, TrainConfig(steps=3, checkpoint=str(tmp_path)), log=quiet)
    assert calls == []  # refused before the first step
    with raises(ValueError, str(tmp_path), "directory"):
        load_checkpoint(str(tmp_path))


def test_get_batch_returning_a_tuple():
    batch = batch_of_step(0)
    with raises(TypeError, "get_batch(0)", "dict", "tuple"):
        train(tiny(), lambda step: (batch["idx"], batch["targets"]), TrainConfig(steps=2),
              log=quiet)


class Toy(torch.nn.Module):
    """A model whose loss is what the batch says: `scale` can make it inf, and all-ignored
    targets give nan as a plain mean over no tokens would."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, x, targets, scale=1.0):
        kept = targets != -1
        return None, scale * (((self.w - x) ** 2) * kept).sum() / kept.sum(), None


def toy_batch(scale=1.0, targets=(0, 1, 2)):
    return {"x": torch.zeros(3), "targets": torch.tensor(targets), "scale": scale}


class Preempted(Exception):
    pass


@pytest.mark.parametrize("bad_step", [0, 2])
def test_non_finite_loss_stops_before_the_update(bad_step):
    toy, clean = Toy(), Toy()
    batches = lambda step: toy_batch(math.inf if step == bad_step else 1.0)  # noqa: E731
    with raises(NonFiniteLoss, f"get_batch({bad_step})", "lower lr"):
        train(toy, batches, TrainConfig(steps=4, lr=0.1), log=quiet)

    def stopped(step):  # the same run, stopped where the bad step came
        if step == bad_step:
            raise Preempted
        return toy_batch()
    with pytest.raises(Preempted):
        train(clean, stopped, TrainConfig(steps=4, lr=0.1), log=quiet)
    assert toy.w.isfinite().all() and torch.equal(toy.w, clean.w)  # the inf step never applied


def test_non_finite_loss_leaves_every_parameter_of_a_gpt_finite():
    model = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def batches(step):
        batch = batch_of_step(step)
        if step == 1:
            batch["inputs_embeds"] = model.transformer.wte(batch.pop("idx")).detach() * math.inf
        return batch
    with raises(NonFiniteLoss, "get_batch(1)"):
        train(model, batches, TrainConfig(steps=3, lr=1e-2), log=quiet)
    assert all(p.isfinite().all() for p in model.parameters())
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())  # step 0 ran


def test_a_batch_without_target_tokens_is_named_as_the_cause():
    with raises(NonFiniteLoss, "get_batch(1)", "no target tokens", "-1"):
        train(Toy(), lambda step: toy_batch(targets=(-1, -1, -1) if step == 1 else (0, 1, 2)),
              TrainConfig(steps=3, lr=0.1), log=quiet)
    model = tiny()  # minitx's own loss: refused there (ValueError) or here (NonFiniteLoss)

    def batches(step):
        batch = batch_of_step(step)
        batch["targets"] = torch.full_like(batch["targets"], -1)
        return batch
    with pytest.raises((ValueError, NonFiniteLoss), match="target"):
        train(model, batches, TrainConfig(steps=2), log=quiet)
    assert all(p.isfinite().all() for p in model.parameters())


# ----------------------------------------------------------------------------- resume

def config(path, **kw):
    return TrainConfig(**{**dict(steps=6, lr=1e-2, warmup_steps=2, log_every=0,
                                 checkpoint=str(path), checkpoint_every=3), **kw})


@pytest.fixture
def interrupted(tmp_path):
    """A run of 6 steps stopped at step 4: its checkpoint holds step 3. The model's wpe is frozen."""
    path = tmp_path / "ck.pt"

    def batches(step):
        if step == 4:
            raise Preempted
        return batch_of_step(step)
    with pytest.raises(Preempted):
        train(frozen_wpe(0), batches, config(path), log=quiet)
    assert load_checkpoint(str(path))["step"] == 3
    return path


def frozen_wpe(seed):
    model = tiny(seed)
    model.transformer.wpe.weight.requires_grad_(False)
    return model


def test_resume_refuses_another_frozen_base(interrupted):
    model = frozen_wpe(0)
    with torch.no_grad():
        model.transformer.wpe.weight[0, 0] += 1e-6
    with raises(ValueError, str(interrupted), "frozen weights", "frozen base"):
        train(model, batch_of_step, config(interrupted), log=quiet, resume=True)
    result = train(frozen_wpe(0), batch_of_step, config(interrupted), log=quiet, resume=True)
    assert len(result["losses"]) == 6  # the same base resumes


@pytest.mark.parametrize("change", [dict(lr=2e-2), dict(warmup_steps=1), dict(schedule="linear"),
                                    dict(min_lr=0.5), dict(accum=2), dict(steps=8)])
def test_resume_refuses_another_schedule_naming_the_fields(interrupted, change):
    (name, value), = change.items()
    with raises(ValueError, str(interrupted), f"'{name}'", repr(value)):
        train(frozen_wpe(0), lambda step, micro=0: batch_of_step(step),
              config(interrupted, **change), log=quiet, resume=True)


def test_resume_refuses_a_checkpoint_past_steps(interrupted):
    with raises(ValueError, "'steps': (6, 2)"):
        train(frozen_wpe(0), batch_of_step, config(interrupted, steps=2, warmup_steps=1),
              log=quiet, resume=True)


def test_resume_from_a_plain_state_dict(tmp_path):
    path = tmp_path / "model.pt"
    model = tiny()
    torch.save(model.state_dict(), path)
    with raises(ValueError, str(path), "not a checkpoint that train() wrote", "resume=False"):
        train(model, batch_of_step, config(path), log=quiet, resume=True)


def test_the_next_save_removes_a_killed_saves_temp_files(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(str(path), {"step": 1})
    debris = ["ck.pt.tmp", "ck.pt.k3j_x9.tmp"]  # this version's and an older version's names
    for name in debris + ["other.pt.tmp"]:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    assert load_checkpoint(str(path)) == {"step": 1}
    save_checkpoint(str(path), {"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["ck.pt", "other.pt.tmp"]  # only ck.pt's debris
    assert load_checkpoint(str(path)) == {"step": 2}
