"""One training loop for pretraining, full fine-tuning and prompt/prefix tuning alike.

`train(model, get_batch, config)` optimises the requires_grad=True parameters of any module whose
`model(**batch)` returns (logits, loss, ...): a GPT, or a tuning wrapper (task=... rides along in
the batch). Exact resume rests on a contract: `get_batch(step)` (`get_batch(step, micro_step)` if
config.accum > 1) returns that 0-based step's batch dict, a deterministic function of its args.

Under torchrun (WORLD_SIZE > 1) the process group is created if needed (gloo on CPU, nccl on
CUDA) and the model wrapped in DistributedDataParallel. get_batch returns the GLOBAL batch; rank
r keeps rows [r*B/N, (r+1)*B/N) of every tensor/list whose first dimension is B (the mean of the
ranks' mean losses is the global mean when shards have as many loss tokens, targets != -1). Only
rank 0 logs, evaluates and writes checkpoints."""
import contextlib
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from .tuning import atomic_write, check, digest, remove_files

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = ("cosine", "linear", "constant")
SCHEDULE_FIELDS = ("steps", "lr", "warmup_steps", "schedule", "min_lr", "accum")  # kept on resume


@dataclass
class TrainConfig:
    """Training settings, checked when made: a bad one raises a ValueError/TypeError naming it."""
    steps: int = 200
    lr: float = 3e-4
    weight_decay: float = 0.1      # AdamW, on parameters with >= 2 dims only
    betas: tuple = (0.9, 0.95)
    warmup_steps: int = 0          # linear warmup: lr * (step + 1) / warmup_steps
    schedule: str = "cosine"       # then "cosine" | "linear" decay to min_lr * lr | "constant"
    min_lr: float = 0.1            # the final lr, as a fraction of lr
    grad_clip: float = 1.0         # max global gradient norm (0: no clipping)
    accum: int = 1                 # micro-batches per optimiser step
    precision: str = "fp32"        # "fp32" | "bf16" (autocast) | "fp16" (autocast+GradScaler, CUDA)
    eval_every: int = 0            # steps between eval_fn calls; 0: at the end only
    log_every: int = 10            # steps between progress lines; 0: at the end only
    seed: int = 0
    checkpoint: str | None = None  # path of the checkpoint file (replaced atomically)
    checkpoint_every: int = 0      # steps between checkpoints; 0: at the end only

    def __post_init__(self):
        for name, low in (("steps", 1), ("accum", 1), ("seed", 0), ("eval_every", 0),
                          ("log_every", 0), ("checkpoint_every", 0)):
            check(f"TrainConfig.{name}", getattr(self, name), low)
        check("TrainConfig.warmup_steps", self.warmup_steps, 0, self.steps)
        check("TrainConfig.lr", self.lr, 0, real=True, above=True)
        check("TrainConfig.min_lr (a fraction of lr)", self.min_lr, 0, 1, real=True)
        for name in ("weight_decay", "grad_clip"):
            check(f"TrainConfig.{name}", getattr(self, name), 0, real=True)
        for name, allowed in (("schedule", SCHEDULES), ("precision", tuple(DTYPES))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}; got "
                                 f"{getattr(self, name)!r}")


class NonFiniteLoss(RuntimeError):
    """Loss, gradient norm or weights went nan/inf; the last good checkpoint was left untouched."""


def lr_at(step, config):
    """Learning rate at 0-based `step`: linear warmup to lr, then decay to min_lr*lr at steps-1."""
    c = config
    if step < c.warmup_steps:
        return c.lr * ((step + 1) / c.warmup_steps)
    p = min(1.0, (step - c.warmup_steps) / max(1, c.steps - 1 - c.warmup_steps))  # 0 -> 1
    decayed = {"cosine": 0.5 * (1.0 - math.cos(math.pi * p)), "linear": p, "constant": 0.0}
    return c.lr - c.lr * (1.0 - c.min_lr) * decayed[c.schedule]


def save_checkpoint(path, state):
    """torch.save `state` atomically (tuning.atomic_write: a crash leaves the old file or the new
    one), after removing temp files `<name>.*.tmp` that killed saves to `path` left."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_files(directory, lambda file: file.startswith(name + ".") and file.endswith(".tmp"))
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path, map_location="cpu"):
    """torch.load with weights_only=True: tensors and plain containers, no code is run."""
    if os.path.isdir(path):
        raise ValueError(f"checkpoint {path!r} is a directory; give the checkpoint file's path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"checkpoint {path!r} is corrupted or truncated ({type(e).__name__}: "
                         f"{e}); delete it to start afresh, or restore a copy") from e


def shard(batch, rank, world):
    """This rank's contiguous rows of every tensor/list whose first dimension is the batch size."""
    B = next(len(v) for v in batch.values() if torch.is_tensor(v) and v.dim() > 0)
    if B % world:
        raise ValueError(f"a global batch of {B} rows does not split over {world} processes")
    n = B // world
    return {k: v[rank * n:(rank + 1) * n] if (isinstance(v, (list, tuple)) or torch.is_tensor(v)
            and v.dim() > 0) and len(v) == B else v for k, v in batch.items()}


def train(model, get_batch, config, eval_fn=None, log=partial(print, flush=True), resume=False):
    """Train `model`'s requires_grad parameters; eval_fn(model) returns a dict of numbers.
    resume=True continues from config.checkpoint if it exists. Returns {"losses": every step's
    loss from step 0, "evals": [{"step": n, **metrics}], "steps_per_s", "tokens_per_s",
    "eval_seconds"}: the rates are this call's, over its training time (eval_fn's excluded)."""
    c = config
    if not isinstance(c, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(c).__name__}")
    if resume and not c.checkpoint:
        raise ValueError("resume=True needs config.checkpoint: the file to resume from")
    if c.checkpoint and os.path.isdir(c.checkpoint):
        raise ValueError(f"config.checkpoint {c.checkpoint!r} is a directory; give a file path, "
                         f"e.g. {os.path.join(c.checkpoint, 'checkpoint.pt')!r}")
    created = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        return _train(model, get_batch, c, eval_fn, log, resume)
    finally:
        if created:
            dist.destroy_process_group()


def _train(model, get_batch, c, eval_fn, log, resume):
    raw, params = model, [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no parameter has requires_grad=True: unfreeze some or add an adapter")
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if world > 1:  # DDP registers (and all-reduces) only parameters with requires_grad=True
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            raw.to(torch.device("cuda", torch.cuda.current_device()))
        model = DDP(raw, device_ids=[params[0].device.index] if params[0].is_cuda else None)
    device = params[0].device
    if c.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs CUDA (GradScaler); on CPU use 'bf16' or 'fp32'")
    log = log if rank == 0 else (lambda *a, **k: None)
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], c.lr, c.betas, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=c.precision == "fp16")
    torch.manual_seed(c.seed + rank)
    run = run_of(c, raw) if c.checkpoint else None  # what a checkpoint must share to resume
    losses, evals, start, saved = [], [], 0, None
    if resume and os.path.exists(c.checkpoint):  # the state saved below, see there
        ck = resume_from(c, run, raw, opt, scaler, device if rank == 0 else None)
        start = saved = ck["step"]
        losses, evals = list(ck["losses"]), list(ck["evals"])
        log(f"resumed from {c.checkpoint} at step {start}")
    model.train()
    t0, tokens, eval_seconds = time.perf_counter(), 0, 0.0
    for step in range(start, c.steps):
        lr, done = lr_at(step, c), step + 1
        for group in opt.param_groups:
            group["lr"] = lr
        loss_value, n_tokens = forward_backward(model, get_batch, step, c, scaler, rank, world)
        tokens += n_tokens
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip or math.inf).item()
        if not math.isfinite(loss_value) or not (scaler.is_enabled() or math.isfinite(norm)):
            raise non_finite(f"loss {loss_value}, gradient norm {norm}", get_batch, step, c, saved)
        scaler.step(opt)  # a plain opt.step() unless fp16 (which skips steps with inf gradients)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        losses.append(loss_value)
        due = lambda every: done == c.steps or every and done % every == 0  # noqa: E731
        save = c.checkpoint and due(c.checkpoint_every)
        if save and not all(p.isfinite().all() for p in params):  # never save nan
            raise non_finite("non-finite weights", get_batch, step, c, saved)
        if due(c.log_every):
            elapsed = time.perf_counter() - t0 - eval_seconds  # training time only
            eta = timedelta(seconds=round((c.steps - done) * elapsed / (done - start)))
            log(f"step {done}/{c.steps} | loss {loss_value:.3f} | lr {lr:.1e} | "
                f"{tokens / elapsed / 1e3:.1f}k tok/s | ETA {eta}")
        if eval_fn is not None and rank == 0 and due(c.eval_every):
            t = time.perf_counter()
            raw.eval()
            with torch.no_grad():
                metrics = {k: getattr(v, "item", lambda: v)() for k, v in eval_fn(raw).items()}
            raw.train()
            eval_seconds += time.perf_counter() - t
            evals.append({"step": done, **metrics})
            log(f"eval step {done} | " + " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if save:
            if rank == 0:  # trainable parameters only (small for a frozen base); RNG for dropout
                save_checkpoint(c.checkpoint, {
                    "step": done, "losses": losses, "evals": evals, "rng": torch.get_rng_state(),
                    "model": {n: p.detach() for n, p in raw.named_parameters() if p.requires_grad},
                    "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "run": run,
                    "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else []})
            saved = done
    elapsed = max(time.perf_counter() - t0 - eval_seconds, 1e-9)
    return {"losses": losses, "evals": evals, "steps_per_s": (c.steps - start) / elapsed,
            "tokens_per_s": tokens / elapsed, "eval_seconds": eval_seconds}


def forward_backward(model, get_batch, step, c, scaler, rank, world):
    """Run the step's micro-batches forward and backward, summing their gradients; return (the
    step's mean loss over all ranks, tokens in the global batch)."""
    device = next(p for p in model.parameters() if p.requires_grad).device
    total, tokens = torch.zeros((), device=device), 0
    for micro in range(c.accum):
        batch = get_batch(step) if c.accum == 1 else get_batch(step, micro)
        if not isinstance(batch, dict):
            raise TypeError(f"get_batch({step}) must return a dict of model(**batch) keywords, "
                            f"e.g. {{'idx': ..., 'targets': ...}}; got {type(batch).__name__}")
        tokens += count_tokens(batch)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in (
            shard(batch, rank, world) if world > 1 else batch).items()}
        sync = world == 1 or micro == c.accum - 1  # all-reduce on the last micro-batch only
        with contextlib.nullcontext() if sync else model.no_sync():
            with torch.autocast(device.type, DTYPES[c.precision], c.precision != "fp32"):
                loss = model(**batch)[1]
            if loss is None:
                raise ValueError("model(**batch) returned no loss: the batch needs 'targets'")
            scaler.scale(loss / c.accum).backward()
        total += loss.detach().float() / c.accum
    if world > 1:
        dist.all_reduce(total)  # sum of the ranks' losses (gloo has no AVG)
    return total.item() / world, tokens


def non_finite(what, get_batch, step, c, saved):
    """The NonFiniteLoss raised before the update of 0-based `step`: `what`, its cause, the fix."""
    batches = [get_batch(step) if c.accum == 1 else get_batch(step, m) for m in range(c.accum)]
    if any(torch.is_tensor(b.get("targets")) and bool((b["targets"] == -1).all()) for b in batches):
        fix = "a batch has no target tokens (every target is -1): give each batch at least one"
    else:
        fix = f"lower lr ({c.lr:g}), enable/tighten grad_clip ({c.grad_clip}) or try fp32"
    kept = f"{c.checkpoint!r} (step {saved})" if saved is not None else "none written yet"
    return NonFiniteLoss(f"{what} at step {step + 1}/{c.steps} (get_batch({step})); the last "
                         f"good checkpoint was kept untouched: {kept}. Fix: {fix}.")


def run_of(c, model):
    """What a resumed run must keep: the schedule and the frozen weights' SHA-256."""
    frozen = digest((n, p) for n, p in model.named_parameters() if not p.requires_grad)
    return {**{k: getattr(c, k) for k in SCHEDULE_FIELDS}, "frozen weights": frozen[:16]}


def resume_from(c, run, model, opt, scaler, device):
    """Load c.checkpoint into model, optimizer, scaler and (given the `device`: rank 0) the RNG,
    after refusing a file that train() did not write or that another run wrote; return it."""
    ck = load_checkpoint(c.checkpoint)
    if not isinstance(ck, dict) or not isinstance(ck.get("run"), dict):
        raise ValueError(f"{c.checkpoint} is not a checkpoint that train() wrote (a plain "
                         f"state_dict?); resume from train()'s own file, or use resume=False")
    changed = {k: (ck["run"].get(k), v) for k, v in run.items() if ck["run"].get(k) != v}
    if changed:
        raise ValueError(f"{c.checkpoint} belongs to another run: {changed} differ (saved, now); "
                         f"resume with that run's schedule and frozen base, or start afresh "
                         f"with another checkpoint path")
    if {n for n, p in model.named_parameters() if p.requires_grad} != ck["model"].keys():
        raise ValueError(f"{c.checkpoint} holds trainable parameters {sorted(ck['model'])[:3]}"
                         "... unlike the model's: is it the same model, frozen the same way?")
    model.load_state_dict(ck["model"], strict=False)  # frozen parameters are not in it
    opt.load_state_dict(ck["optimizer"])
    scaler.load_state_dict(ck["scaler"])
    if device is not None:  # only rank 0's RNG streams are saved; other ranks keep their own
        torch.set_rng_state(ck["rng"])
        if ck["cuda_rng"] and device.type == "cuda":
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
    return ck


def count_tokens(batch):
    """Tokens in a batch dict: the True entries of attention_mask, else B*T of idx/inputs_embeds."""
    if batch.get("attention_mask") is not None:
        return int(batch["attention_mask"].sum())
    x = batch.get("idx", batch.get("inputs_embeds"))
    return 0 if x is None else x.shape[0] * x.shape[1]
