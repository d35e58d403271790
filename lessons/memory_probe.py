"""Peak memory of one training step, each configuration in a fresh process (lesson 14).

    python lessons/memory_probe.py '<a JSON list of jobs>'   ->  one JSON line per job

A peak is a high-water mark: once a process has held 2 GB it has "peaked at 2 GB" for the rest of
its life, so one process cannot measure two configurations one after the other. This script
imports torch and minitx once (seconds of CPU time) and then forks one child per job: each child
is a fresh process (its own PID) that holds nothing but those imports. A child notes its memory,
builds the model and the tuning method, resets the peak, runs one training step (forward,
backward, AdamW; none for the "weights only" floor) and reports

    peak - memory before the model was built

* CPU: the peak resident set size, VmHWM in /proc/self/status (Linux). Writing "5" to
  /proc/self/clear_refs resets it to the current size, so building the model (whose untied
  output layer briefly holds a second copy of the embedding) does not count. getrusage's
  ru_maxrss cannot be reset, and a child inherits its parent's peak in it; it is used only where
  /proc is missing (macOS), and then the peak includes building the model.
* CUDA: the allocator's counters (torch.cuda.max_memory_allocated), reset the same way.

A resident set also holds memory that no tensor uses any more, and `run` starts the probe with
two settings that keep that small: glibc maps every allocation of 16 KiB or more on its own and
unmaps it on free (MALLOC_MMAP_THRESHOLD_; by default that threshold climbs, up to 32 MiB, as
large blocks are freed, and freed blocks below it stay in the process for reuse), and MKL does
not cache its work buffers (MKL_DISABLE_FAST_MM). Before measuring, each child runs one step
of the same kind on a tiny model: the first use of each kernel pages in its machine code, which
is not memory that the step's size asks for.
"""
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import traceback

import torch

from minitx import GPT, Config
from minitx.tuning import LoRA, Prefix, Tuned

# row name -> (method, activation checkpointing, chunked LM-head loss); "weights only" runs no step
ROWS = {
    "weights only": (None, False, False),
    "full FT": ("full", False, False),
    "full FT + ckpt": ("full", True, False),
    "prefix": ("prefix", False, False),
    "prefix + ckpt": ("prefix", True, False),
    "prefix + ckpt + chunk": ("prefix", True, True),
    "LoRA + ckpt": ("lora", True, False),
}
PROC = "/proc/self/status"
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(16 * 1024), "MKL_DISABLE_FAST_MM": "1"}


def optimizer(params):
    """AdamW as minitx.train builds it: decay on matrices only, the fused kernel."""
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, betas=(0.9, 0.95),
                             fused=True)


def memory_now(device):
    """Bytes in use now: the allocator's on CUDA, the resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    if os.path.exists(PROC):
        return int(open(PROC).read().split("VmRSS:")[1].split()[0]) * 1024  # kB
    return peak_memory(device)  # no /proc: the high-water mark so far is the best we have


def reset_peak(device):
    """Make the current memory the peak (where the platform allows it)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif os.path.exists(PROC):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def peak_memory(device):
    """Bytes at the high-water mark since the last reset_peak."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    if os.path.exists(PROC):
        return int(open(PROC).read().split("VmHWM:")[1].split()[0]) * 1024  # kB
    kib_or_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib_or_bytes if sys.platform == "darwin" else 1024 * kib_or_bytes


def model_for(job, device):
    """(the model to train, its trainable parameters, the frozen base) for one job."""
    method, checkpoint, chunk = ROWS[job["row"]]
    config = Config(vocab_size=job["vocab_size"], block_size=job["block_size"],
                    n_layer=job["n_layer"], n_head=job["n_head"], n_embd=job["n_embd"],
                    checkpoint=checkpoint, loss_chunk=job["loss_chunk"] if chunk else 0)
    torch.manual_seed(0)
    with torch.device(device):
        base = GPT(config)
        model = base
        if method in ("prefix", "lora"):
            model = Tuned(base)  # freezes the base
            model.add("task", Prefix(base, job["virtual"]) if method == "prefix"
                      else LoRA(base, r=job["lora_r"]))
    return model.train(), [p for p in model.parameters() if p.requires_grad], base


def one_step(job, model, params, device, before_step=lambda: None):
    """One training step of `model` on a random batch; returns its loss."""
    g = torch.Generator().manual_seed(0)
    idx, targets = (torch.randint(0, job["vocab_size"], (job["batch"], job["seq"]),
                                  generator=g).to(device) for _ in range(2))
    opt = optimizer(params)
    before_step()
    loss = model(idx, targets=targets)[1]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


def measure(job):
    """Run one job in this (fresh) process; return what the lesson prints about it."""
    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    tiny = dict(job, n_layer=1, n_embd=2 * job["n_head"], vocab_size=64, seq=8, loss_chunk=4)
    one_step(tiny, *model_for(tiny, device)[:2], device)
    before = memory_now(device)
    model, params, base = model_for(job, device)
    weights = sum(p.numel() * p.element_size() for p in base.parameters())  # tied: counted once
    if ROWS[job["row"]][0] is None:  # the floor: the weights, and nothing else
        reset_peak(device)
        loss = None
    else:
        loss = one_step(job, model, params, device, before_step=lambda: reset_peak(device))
    return dict(row=job["row"], seq=job["seq"], pid=os.getpid(), peak=peak_memory(device) - before,
                weights=weights, trainable=sum(p.numel() for p in params), loss=loss)


def child(job, pipe):
    try:
        pipe.send(measure(job))
    except Exception:  # the parent raises it, with the child's traceback
        pipe.send({"error": traceback.format_exc()})


def main(jobs):
    """Fork one child per job, one at a time; print each child's result as a JSON line."""
    fork = multiprocessing.get_context("fork")
    for job in jobs:
        receive, send = fork.Pipe(duplex=False)
        process = fork.Process(target=child, args=(job, send))
        process.start()
        send.close()  # the child holds the other end: a child that dies gives EOFError
        try:
            result = receive.recv()
        except EOFError:
            result = {"error": f"the child for {job['row']!r} died"}
        process.join()
        if "error" in result:
            raise RuntimeError(f"memory probe {job['row']!r}, seq {job['seq']} (exit code "
                               f"{process.exitcode}):\n{result['error']}")
        print(json.dumps(result), flush=True)


def run(jobs):
    """Run `jobs` (a list of dicts: row, seq, the model's shape, ...) in a new probe process;
    return one result dict per job, in order."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(jobs)],
                          capture_output=True, text=True, env=dict(os.environ, **ENVIRONMENT))
    if done.returncode:
        raise RuntimeError(f"lessons/memory_probe.py failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python {sys.argv[0]} '<JSON list of jobs>'")
    main(json.loads(sys.argv[1]))
