"""Choose every method's learning rate on validation data: the course's one lr policy.

For each task and method (common.build_method's standard sizes), train on the task's train
split with seed 0 at a fixed budget for every rate in common.LR_GRID[method], and keep the rate
with the lowest loss on the *validation* split (common.validation_loss). Test data is never
read. Writes lessons/results/learning_rates.json (the choices, the whole sweep, the settings and
the date); the lessons read it with common.chosen_lr.

Run:  python lessons/choose_lrs.py [--fast] [--methods=prefix,lora] [TASK ...]
      (about 10 minutes a task on one busy core; --fast: seconds, writes nothing, for the tests).
      Each finished task is merged into the JSON at once, so tasks can run in separate processes.
"""
import datetime
import json
import sys

from common import (LR_GRID, RESULTS, load_base, lesson_mode, setup, table, train_method,
                    validation_loss)
from toyworld import make_split

TASKS = ("data_to_text", "returns", "shipping", "recommend", "first_last", "reverse", "intent")
SMALL_VAL = {"recommend": 32}  # tasks whose validation split holds fewer distinct inputs
BUDGET = {"default": dict(steps=100, n_train=128, n_val=64, batch_size=16),
          "fast": dict(steps=2, n_train=16, n_val=8, batch_size=8)}


def recorded(budget):
    """{task: {method: {"lr": loss}}} already in the JSON for this budget (runs are deterministic,
    so a grown grid only needs its new rates trained)."""
    path = RESULTS / "learning_rates.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    return data.get("validation_loss", {}) if data.get("budget") == budget else {}


def sweep(tasks, methods, budget, log=print, done=lambda task, losses, choices: None):
    """{task: {method: {lr: validation loss}}} and {task: {method: best lr}}; `done` is called
    after each task."""
    base, tok = load_base("small")
    known = recorded(budget)
    losses, choices = {}, {}
    for task in tasks:
        train_set = make_split(task, budget["n_train"], "train", seed=1)
        n_val = min(budget["n_val"], SMALL_VAL.get(task, budget["n_val"]))
        val_set = make_split(task, n_val, "val")
        losses[task], choices[task] = {}, {}
        for method in methods:
            runs = {}
            for lr in LR_GRID[method]:
                if f"{lr:g}" in known.get(task, {}).get(method, {}):
                    runs[lr] = known[task][method][f"{lr:g}"]
                    continue
                model, _ = train_method(method, base, tok, train_set, budget["steps"], lr,
                                        seed=0, batch_size=budget["batch_size"])
                runs[lr] = validation_loss(model, tok, val_set)
            losses[task][method] = runs
            choices[task][method] = min(runs, key=runs.get)
            sweep_text = " ".join(f"{lr:g}:{v:.3f}" for lr, v in runs.items())
            log(f"{task:>12} {method:>10}: {sweep_text} -> {choices[task][method]:g}")
        done(task, losses[task], choices[task])
    return losses, choices


def merge_into_json(task, losses, choices, budget):
    """Write one task's choices and sweep into lessons/results/learning_rates.json (kept tasks)."""
    path = RESULTS / "learning_rates.json"
    RESULTS.mkdir(exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {"choices": {}, "validation_loss": {}}
    data.update({"written_by": "lessons/choose_lrs.py", "date": datetime.date.today().isoformat(),
                 "base": "lessons/checkpoints/base_small.pt", "seed": 0, "budget": budget,
                 "criterion": "mean next-token loss on the validation split",
                 "grid": {m: list(g) for m, g in LR_GRID.items()}})
    data["choices"].setdefault(task, {}).update(choices)
    data["validation_loss"].setdefault(task, {}).update(
        {m: {f"{lr:g}": v for lr, v in r.items()} for m, r in losses.items()})
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"written: {task} -> {path}")


if __name__ == "__main__":
    setup(0)
    mode = "fast" if lesson_mode() == "fast" else "default"
    asked = [a for a in sys.argv[1:] if not a.startswith("--")]
    unknown = sorted(set(asked) - set(TASKS))
    if unknown:
        sys.exit(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    tasks = TASKS[:1] if mode == "fast" else asked or TASKS
    methods = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--methods=")),
                   list(LR_GRID))
    if not set(methods) <= set(LR_GRID):
        sys.exit(f"unknown method(s) in {methods}; choose from {list(LR_GRID)}")
    save = (lambda t, l, c: None) if mode == "fast" else \
        (lambda t, l, c: merge_into_json(t, l, c, BUDGET[mode]))
    losses, choices = sweep(tasks, methods, BUDGET[mode], done=save)
    table([{"task": t, **{m: f"{lr:g}" for m, lr in c.items()}} for t, c in choices.items()],
          "Chosen learning rates (lowest validation loss)")
