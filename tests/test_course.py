"""The course as a whole: every lesson is a top-level notebook ending in a takeaway and exercises.

For each lessons/NN_*.py: cell markers only at column 0 (never inside a function, where jupytext
would cut the function into cells that do not parse); the first cell is the markdown title
"# NN · Title"; every code cell compiles; the last code cell prints the takeaway and the last cell
is the markdown "## Exercises" with 2-4 numbered exercises; no `__file__` (a notebook has none);
no pointer to files outside the repository; some test executes the lesson with `run_lesson`.
With jupytext installed (`pip install -e ".[book]"`), jupytext must cut the same code cells.
Run alone: `python -m pytest tests/test_course.py -q`.
"""
import ast
import re
from pathlib import Path

import pytest

from lesson_loader import LESSONS, lesson_cells

TESTS = Path(__file__).resolve().parent
LESSON_FILES = sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py"))
NOT_IN_REPOSITORY = ("FACTS.md", "SEED_OUTLINE.md", "DESIGN.md", "../shared")
TITLE = re.compile(r"# (?P<number>\d\d) · \S")
EXERCISE = re.compile(r"^(?:#+ )?(?:\*\*)?(?:Exercise )?(?P<number>\d+)[.):]", re.MULTILINE)


def markdown_text(source):
    """The prose of a markdown cell: its lines without the leading `# ` (or a lone `#`)."""
    return "\n".join(re.sub(r"^# ?", "", line) for line in source.splitlines())


def calls(tree, name):
    """Whether the parsed code calls a function named `name` (plain or as an attribute)."""
    return any(isinstance(n, ast.Call) and name in (getattr(n.func, "id", None),
                                                    getattr(n.func, "attr", None))
               for n in ast.walk(tree))


def notebook_problems(filename):
    """Everything that keeps lessons/<filename> from being a top-level notebook, as sentences."""
    text = (LESSONS / filename).read_text()
    problems = [f"line {n}: cell marker not at column 0 (inside a block): {line.strip()!r}"
                for n, line in enumerate(text.splitlines(), 1)
                if line.lstrip().startswith("# %%") and not line.startswith("# %%")]
    cells = lesson_cells(filename)
    if not cells:
        return problems + ["no cells"]
    kind, start, source = cells[0]
    title = TITLE.match(markdown_text(source).strip())
    if kind != "markdown" or not title or title["number"] != filename[:2]:
        problems.append(f"the first cell (line {start}) must be markdown starting with "
                        f"'# {filename[:2]} · Title' (no module docstring before it)")
    trees = []
    for kind, start, source in cells:
        if kind == "code":
            try:
                trees.append(ast.parse(source, f"{filename}:{start}"))
            except SyntaxError as e:
                problems.append(f"code cell at line {start} does not compile: {e}")
    kind, start, source = cells[-1]
    numbers = [int(m["number"]) for m in EXERCISE.finditer(markdown_text(source))]
    if kind != "markdown" or "## Exercises" not in source:
        problems.append("the last cell must be the markdown '## Exercises'")
    elif not 2 <= len(numbers) <= 4 or numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"'## Exercises' must number 2-4 exercises 1., 2., ...; found {numbers}")
    if not trees or not calls(trees[-1], "takeaway"):
        problems.append("the last code cell must call takeaway(...)")
    if any((isinstance(n, ast.Name) and n.id == "__file__")
           or (isinstance(n, ast.Constant) and n.value == "__file__")
           for tree in trees for n in ast.walk(tree)):
        problems.append("uses __file__ (a notebook has none: use common.HERE / common.OUT)")
    problems += [f"mentions {name}, which is not in the repository"
                 for name in NOT_IN_REPOSITORY if name in text]
    return problems


def runs_lesson(filename):
    """The test files that execute lessons/<filename> with run_lesson."""
    return [p.name for p in sorted(TESTS.glob("test_*.py")) if p.name != Path(__file__).name
            and "run_lesson(" in (body := p.read_text())
            and re.search(rf"""["']{re.escape(filename)}["']""", body)]


def jupytext_problems(filename):
    """With jupytext installed: where its cells differ from lesson_cells (count, parse)."""
    try:
        import jupytext
    except ImportError:
        return []
    notebook = jupytext.reads((LESSONS / filename).read_text(), fmt="py:percent")
    theirs = [c.source for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    ours = [source for kind, _, source in lesson_cells(filename) if kind == "code"]
    problems = [] if len(theirs) == len(ours) else [
        f"jupytext cuts {len(theirs)} code cells, lesson_cells {len(ours)}"]
    for i, source in enumerate(theirs):
        try:
            ast.parse(source)
        except SyntaxError as e:
            problems.append(f"jupytext code cell {i + 1} does not parse: {e}")
    return problems


@pytest.mark.parametrize("filename", LESSON_FILES)
def test_lesson_is_a_top_level_notebook_with_takeaway_and_exercises(filename):
    problems = notebook_problems(filename) + jupytext_problems(filename)
    if not runs_lesson(filename):
        problems.append(f'no test under tests/ calls run_lesson("{filename}")')
    assert not problems, f"{filename}:\n  " + "\n  ".join(problems)


def test_the_glob_finds_the_course():
    assert len(LESSON_FILES) >= 18, LESSON_FILES


def test_the_checks_catch_a_lesson_that_is_not_a_notebook(tmp_path, monkeypatch):
    """The checker itself: a main()-style lesson with a marker inside a function, no exercises,
    no takeaway, a __file__ and a FACTS.md pointer gives one problem for each."""
    bad = ('"""Lesson 99."""\nfrom pathlib import Path\nHERE = Path(__file__)\n'
           "def main():\n    # %%\n    x = 1\n# %% [markdown]\n# see FACTS.md\n")
    good = ("# %% [markdown]\n# # 98 · A title\n#\n# what you learn\n\n# %%\nfrom common import"
            " takeaway\nx = 1\n\n# %%\ntakeaway(f'x is {x}')\n\n# %% [markdown]\n# ## Exercises"
            "\n#\n# 1. **Quick.** Set x = 2.\n#    Hint: 1. is not an exercise.\n# 2. **Open.** "
            "Do more.\n")
    (tmp_path / "99_bad.py").write_text(bad)
    (tmp_path / "98_good.py").write_text(good)
    monkeypatch.setattr("lesson_loader.LESSONS", tmp_path)
    monkeypatch.setattr(__name__ + ".LESSONS", tmp_path)
    problems = "\n".join(notebook_problems("99_bad.py"))
    for expected in ("column 0", "first cell", "Exercises", "takeaway", "__file__", "FACTS.md"):
        assert expected in problems, (expected, problems)
    assert notebook_problems("98_good.py") == []
