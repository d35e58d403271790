"""Run a lesson the way a notebook does: its `# %%` cells, top to bottom, in one namespace.

A lesson is a jupytext "percent" script: cells start at lines `# %%` (code) or `# %% [markdown]`
(prose, every line a comment), all at the top level. `run_lesson` compiles every code cell first
(a cell that does not parse fails before anything runs), then executes them in order with the
command line set to `--fast` (or the mode given), exactly as `python lessons/NN_x.py --fast` or a
notebook kernel would, and returns the namespace so a test can read what the lesson computed.
"""
import contextlib
import io
import math
import re
import sys
from pathlib import Path

import torch

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
if str(LESSONS) not in sys.path:
    sys.path.insert(0, str(LESSONS))  # the lessons import `common`
MARKER = re.compile(r"^# %%(?P<kind> \[markdown\])?")


def lesson_cells(filename):
    """[(kind, first_line, source)] of lessons/<filename>, kind "code" or "markdown"; the text
    before the first marker (if any) is a code cell, as jupytext reads it."""
    cells, kind, start, lines = [], "code", 1, []
    for number, line in enumerate((LESSONS / filename).read_text().splitlines(), 1):
        match = MARKER.match(line)
        if match:
            if any(l.strip() for l in lines):
                cells.append((kind, start, "\n".join(lines)))
            kind, start, lines = ("markdown" if match["kind"] else "code"), number, []
        else:
            lines.append(line)
    if any(l.strip() for l in lines):
        cells.append((kind, start, "\n".join(lines)))
    return cells


WIDTH = 100  # the longest line a lesson may print


def run_lesson(filename, mode="fast"):
    """Execute lessons/<filename>'s code cells in order as `python <file> --<mode>` would (mode
    "fast", "default" or "full"); return the lesson's namespace, with everything it printed
    under "OUTPUT". Fails if a printed line is longer than 100 characters. Restores sys.argv and
    torch's thread count (lessons set one thread)."""
    path = LESSONS / filename
    code = [compile(src, f"{path}:{start}", "exec")  # compile all first: no half-run lesson
            for kind, start, src in lesson_cells(filename) if kind == "code"]
    namespace = {"__name__": "__main__"}  # no __file__: a notebook kernel has none either
    argv, threads = sys.argv, torch.get_num_threads()
    sys.argv = [str(path)] + ([] if mode == "default" else [f"--{mode}"])
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            for cell in code:
                exec(cell, namespace)
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
        sys.stdout.write(printed.getvalue())  # shown by pytest when a test fails
    namespace["OUTPUT"] = printed.getvalue()
    long = [line for line in namespace["OUTPUT"].splitlines() if len(line) > WIDTH]
    assert not long, f"{filename} printed {len(long)} lines over {WIDTH} characters: {long[0]!r}"
    return namespace


def load_lesson(filename):
    """Old-style lessons (a `main(fast, full)` function): lessons/<filename> as a fresh module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), LESSONS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_fast(module, **kwargs):
    """Old-style lessons: module.main(fast=True, **kwargs), restoring torch's thread count."""
    threads = torch.get_num_threads()
    try:
        return module.main(fast=True, **kwargs)
    finally:
        torch.set_num_threads(threads)


def assert_verdict(v, n_seeds=None, claim=None, output=None):
    """A printed verdict (common.Verdict) over every seed of the mode (the fast mode's by default),
    its word one of the allowed ones, its differences finite; its claim, if given; and printed in
    `output` (a lesson's OUTPUT), if given."""
    import common  # lessons/common.py, on sys.path above
    n = len(common.SEEDS["fast"]) if n_seeds is None else n_seeds
    assert isinstance(v, common.Verdict) and len(v.diffs) == n, v
    assert v.word in {"holds", "reversed", common.NOT_SHOWN, f"not shown (only {n} seeds)"}, v
    assert all(math.isfinite(d) for d in v.diffs) and f"{v.claim}: {v.word}" in str(v), v
    assert claim is None or v.claim == claim, (v.claim, claim)
    assert output is None or str(v) in output, f"not printed: {v}"
