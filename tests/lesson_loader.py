"""Load a lesson script as a module and run it in its fast mode (shared by tests/test_lessons_*.py)."""
import importlib.util
import sys
from pathlib import Path

import torch

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
if str(LESSONS) not in sys.path:
    sys.path.insert(0, str(LESSONS))  # the lessons import `common`


def load_lesson(filename):
    """lessons/<filename> as a fresh module (its `main` not yet run)."""
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), LESSONS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_fast(module, **kwargs):
    """module.main(fast=True, **kwargs); restores torch's thread count, which setup() changes."""
    threads = torch.get_num_threads()
    try:
        return module.main(fast=True, **kwargs)
    finally:
        torch.set_num_threads(threads)
