"""Choose every method's learning rate on validation data: the course's one lr policy.

For each task and method (common.build_method's standard sizes), train on the task's train
split with seed 0 at a fixed budget for every rate in common.LR_GRID[method], and keep the rate
with the lowest loss on the *validation* split (common.validation_loss). Test data is never
read. Writes lessons/results/learning_rates.json (the choices, the whole sweep, the settings and
the date); the lessons read it with common.chosen_lr.

Run:  python lessons/choose_lrs.py [--fast]     (about 10 minutes on one core; --fast: seconds,
                                                  writes nothing, for the tests)
"""
import datetime
import json
import sys

from common import (LR_GRID, RESULTS, load_base, lesson_mode, setup, table, train_method,
                    validation_loss)
from toyworld import make_split

TASKS = ("data_to_text", "returns", "shipping", "recommend", "first_last", "reverse", "intent")
BUDGET = {"default": dict(steps=100, n_train=128, n_val=64, batch_size=16),
          "fast": dict(steps=2, n_train=16, n_val=8, batch_size=8)}


def sweep(tasks, methods, budget, log=print):
    """{task: {method: {lr: validation loss}}} and {task: {method: best lr}}."""
    base, tok = load_base("small")
    losses, choices = {}, {}
    for task in tasks:
        train_set = make_split(task, budget["n_train"], "train", seed=1)
        val_set = make_split(task, budget["n_val"], "val")
        losses[task], choices[task] = {}, {}
        for method in methods:
            runs = {}
            for lr in LR_GRID[method]:
                model, _ = train_method(method, base, tok, train_set, budget["steps"], lr,
                                        seed=0, batch_size=budget["batch_size"])
                runs[lr] = validation_loss(model, tok, val_set)
            losses[task][method] = runs
            choices[task][method] = min(runs, key=runs.get)
            log(f"{task:>12} {method:>10}: " + " ".join(f"{lr:g}:{v:.3f}" for lr, v in
                                                       runs.items()) + f" -> {choices[task][method]:g}")
    return losses, choices


if __name__ == "__main__":
    setup(0)
    mode = "fast" if lesson_mode() == "fast" else "default"
    tasks = TASKS[:1] if mode == "fast" else TASKS
    losses, choices = sweep(tasks, list(LR_GRID), BUDGET[mode])
    table([{"task": t, **{m: f"{lr:g}" for m, lr in c.items()}} for t, c in choices.items()],
          "Chosen learning rates (lowest validation loss)")
    if mode != "fast":
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "learning_rates.json").write_text(json.dumps({
            "written_by": "lessons/choose_lrs.py", "date": datetime.date.today().isoformat(),
            "base": "lessons/checkpoints/base_small.pt", "seed": 0, "budget": BUDGET[mode],
            "criterion": "mean next-token loss on the validation split",
            "grid": {m: list(g) for m, g in LR_GRID.items()}, "choices": choices,
            "validation_loss": {t: {m: {f"{lr:g}": v for lr, v in r.items()}
                                    for m, r in ms.items()} for t, ms in losses.items()}},
            indent=1) + "\n")
        print(f"written: {RESULTS / 'learning_rates.json'}")
