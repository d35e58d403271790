"""Lessons 01-03 run in fast mode and measure what they claim to measure; every lesson keeps to
the public API; the READMEs' lesson tables match the files; plots become PNGs with matplotlib.

Each lesson's `main(fast=True)` returns the numbers it printed; these tests check them, so a
lesson cannot silently stop showing its point.
Run alone: `python -m pytest tests/test_lessons_core.py -q`.
"""
import re
from pathlib import Path

import pytest

from lesson_loader import LESSONS, load_lesson, run_fast


@pytest.mark.slow
def test_lesson_01_soft_prompt_shapes():
    r = run_fast(load_lesson("01_soft_prompt_shapes.py"))
    assert r["concat_shape"] == (4, 30, 768) and r["prompt_shape"] == (10, 768)
    assert r["trainable"] == 7_680 and r["table_params"] == 38_400_000
    assert r["logits_shape"] == (4, 30, 64) and r["real_logits_shape"] == (4, 20, 64)
    assert r["hard_prompt_max_diff"] <= 1e-6  # soft prompt of real embeddings = hard prompt
    assert r["prompt_grad_norm"] > 0 and r["base_grads_none"]
    assert r["base_unchanged"]
    assert r["p_label_after"] > 2 * r["p_label_before"]  # 320 numbers steer a frozen model


@pytest.mark.slow
def test_lesson_02_attention_by_hand():
    r = run_fast(load_lesson("02_attention_by_hand.py"))
    assert r["by_hand_max_diff"] <= 1e-12
    assert r["masked_weight_max"] == 0.0  # exactly zero, not small
    assert r["row_sum_err"] <= 1e-12
    assert r["fast_vs_written_max_diff"] <= 1e-12
    assert r["png"] is None or Path(r["png"]).is_file()


@pytest.mark.slow
def test_lesson_03_prefix_attention():
    r = run_fast(load_lesson("03_prefix_attention.py"))
    assert r["out_shape"] == (1, 1, 3, 4) and r["weight_shape"] == (1, 1, 3, 5)
    assert r["prefix_vs_full_max_diff"] <= 1e-10
    assert r["decode_max_diff"] <= 1e-10
    assert r["is_causal_is_upper_left_diff"] <= 1e-12
    assert r["lower_right_max_diff"] <= 1e-10 and r["positions_from_p_max_diff"] <= 1e-10
    assert r["upper_left_max_diff"] > 1e-2  # the wrong mask gives a measurably wrong answer
    assert r["positions_from_0_max_diff"] > 1e-2  # and so do positions restarting at 0


@pytest.mark.parametrize("filename", sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py")))
def test_lessons_use_only_the_public_api(filename):
    """Lessons import minitx's exported names only and touch no private (_underscored) name."""
    import ast
    import pkgutil

    import minitx
    tree = ast.parse((LESSONS / filename).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "minitx":
            modules = {m.name for m in pkgutil.iter_modules(minitx.__path__)}
            assert {a.name for a in node.names} <= set(minitx.__all__) | modules, filename
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), f"{filename} uses private name {node.attr}"
    assert tree.body and isinstance(tree.body[0], ast.Expr)  # opens with a module docstring


def test_readme_tables_list_exactly_the_lesson_files():
    """README.md's lesson table and lessons/README.md's course map name every lesson file, and
    name no lesson that does not exist."""
    files = sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py"))
    readme = (LESSONS.parent / "README.md").read_text()
    assert sorted(set(re.findall(r"^\| `(\d\d_\w+\.py)` \|", readme, re.M))) == files
    course_map = (LESSONS / "README.md").read_text()
    numbers = sorted(set(re.findall(r"^\| (\d\d) [a-z]", course_map, re.M)))
    assert numbers == [name[:2] for name in files]


def test_plots_are_png_files_when_matplotlib_is_installed(tmp_path, monkeypatch):
    """The optional PNG path (text sparklines are printed either way)."""
    pytest.importorskip("matplotlib")
    import common
    monkeypatch.setattr(common, "OUT", tmp_path)
    path = common.plot_curves({"a": [3.0, 2.0, 1.0], "b": [2.0, 2.0, 1.5]}, "curves")
    assert path == tmp_path / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
