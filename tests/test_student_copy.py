"""The student copy (lessons/student_copy.py) grades for real.

For every function in its exercise table: in a copy with that function alone blanked, each named
test fails; in a copy with nothing blanked (the original), each passes. The copies run in their
own processes with the copy first on the import path, so `minitx` is the copy's. Fast tests check
the blanking itself: signature, decorators and docstring kept, every other byte unchanged.
Run alone: `python -m pytest tests/test_student_copy.py -q`.
"""
import ast
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("student_copy", ROOT / "lessons" / "student_copy.py")
student_copy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_copy)
EXERCISES = student_copy.EXERCISES

REQUIRED = {"attention.attention", "attention.causal_mask", "model.add_positions",
            "tuning.Prefix.prefix", "tuning.LoRA.hooks", "generate.filter_logits",
            "metrics.corpus_bleu", "tuning.Prefix.values", "tuning.SoftPrompt.__init__",
            "attention.append", "train.lr_at", "metrics.rouge_l"}


def function_node(source, qualname):
    return student_copy.find_function(ast.parse(source), qualname, "test")


def span(node):
    """0-based (first, end) lines of a function with its decorators."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first - 1, node.end_lineno


def outside(lines, spans):
    """The lines not in any of `spans`, as one list per gap."""
    edges = [0] + [i for a, b in sorted(spans) for i in (a, b)] + [len(lines)]
    return [lines[edges[i]:edges[i + 1]] for i in range(0, len(edges), 2)]


def check_blanked(old, new, qualnames):
    """`new` is `old` with only the bodies of `qualnames` replaced by raise NotImplementedError."""
    befores = [function_node(old, q) for q in qualnames]
    afters = [function_node(new, q) for q in qualnames]
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert outside(old_lines, map(span, befores)) == outside(new_lines, map(span, afters))
    for before, after in zip(befores, afters):
        assert ast.dump(before.args) == ast.dump(after.args)
        assert [ast.dump(x) for x in before.decorator_list] == [
            ast.dump(x) for x in after.decorator_list]
        assert ast.get_docstring(before, clean=False) == ast.get_docstring(after, clean=False)
        body = after.body[1:] if ast.get_docstring(after) is not None else after.body
        assert len(body) == 1 and isinstance(body[0], ast.Raise)
        assert body[0].exc.func.id == "NotImplementedError"


# ----------------------------------------------------------------------------- the table

def test_the_table_has_every_required_exercise_and_a_task_for_each():
    assert REQUIRED <= set(EXERCISES)
    assert set(student_copy.TASKS) == set(EXERCISES)
    for name, nodes in EXERCISES.items():
        assert 1 <= len(nodes) <= 5 and len(set(nodes)) == len(nodes), name


@pytest.mark.parametrize("node", sorted({n for nodes in EXERCISES.values() for n in nodes}))
def test_named_tests_exist(node):
    """Each node id names a test function defined at the top level of its file (the slow test
    also checks that pytest collects it, parameters included)."""
    path, name = node.split("::")
    tree = ast.parse((ROOT / path).read_text())
    assert name.split("[")[0] in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


# ----------------------------------------------------------------------------- blanking

@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_blanking_keeps_signature_decorators_docstring_and_every_other_byte(name):
    path, qualname = student_copy.split_name(name)
    old = (ROOT / path).read_text()
    new = student_copy.blank_source(old, [qualname], Path(path).stem)
    check_blanked(old, new, [qualname])
    assert f"exercise: write {name} " in new


def test_blanking_several_functions_in_one_file_with_crlf_decorators_and_nested_functions():
    old = ('import functools\r\n\r\n\r\n@functools.lru_cache()\r\ndef a(x,\r\n      y=1):\r\n'
           '    """Doc\r\n    string."""\r\n    # a comment\r\n    def inner():\r\n'
           '        return x\r\n    return inner() + y\r\n\r\n\r\nclass K:\r\n'
           '    def __init__(self):\r\n        self.v = 1\r\n\r\n    def b(self):\r\n'
           '        return self.v  # no docstring\r\n\r\n\r\nZ = a(1)\r\n')
    new = student_copy.blank_source(old, [["a"], ["K", "b"], ["K", "__init__"]], "m")
    check_blanked(old, new, [["a"], ["K", "b"], ["K", "__init__"]])
    assert new.count("\r\n") == new.count("\n") and new.endswith("\r\n\r\n\r\nZ = a(1)\r\n")
    assert "inner" not in new and "# a comment" not in new


@pytest.mark.parametrize("source, qualname, says", [
    ("def f(): return 1\n", ["f"], "own lines"),
    ('def f():\n    """only a docstring"""\n', ["f"], "own lines"),
    ("def f():\n    return 1\n", ["g"], "no function g in m"),
    ("def f():\n    return 1\n", ["C", "f"], "no function C in m"),
])
def test_blanking_what_cannot_be_blanked_raises(source, qualname, says):
    with pytest.raises(ValueError, match=says):
        student_copy.blank_source(source, [qualname], "m")


def test_command_line_checks_names_and_the_output_directory(tmp_path, capsys):
    with pytest.raises(SystemExit):
        student_copy.main([str(tmp_path / "a"), "--exercises", "attention.nope"])
    assert "unknown exercise" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(SystemExit):
        student_copy.main([str(tmp_path / "full")])
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        student_copy.main([str(ROOT / "lessons" / "out" / "student")])
    assert "inside the repository" in capsys.readouterr().err


def test_copy_blanks_only_the_chosen_functions_and_writes_grading(tmp_path):
    chosen = ["tuning.LoRA.hooks", "tuning.Prefix.values", "metrics.rouge_l"]
    out = student_copy.make_copy(tmp_path / "copy", chosen + chosen[:1])  # a repeat is ignored
    files = student_copy.repository_files(ROOT)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        files + ["GRADING.md"])
    changed = {f for f in files if (ROOT / f).read_bytes() != (out / f).read_bytes()}
    assert changed == {"minitx/tuning.py", "minitx/metrics.py"}
    for path in changed:
        qualnames = [student_copy.split_name(n)[1] for n in chosen
                     if student_copy.split_name(n)[0] == path]
        check_blanked((ROOT / path).read_text(), (out / path).read_text(), qualnames)
    grading = (out / "GRADING.md").read_text()
    for name in chosen:
        assert f"`{name}`" in grading and student_copy.pytest_command(EXERCISES[name]) in grading
    assert "`model.add_positions`" not in grading


# ----------------------------------------------------------------------------- grading is real

# Blanked runs fail on their first example; hypothesis would then shrink it (seconds of CPU per
# test) and keep it in a database. Neither changes whether a test fails, so the runs below use
# this profile: 30 examples, derandomized (the same examples every run), no shrinking, no
# database. It is loaded as a pytest plugin (-p) so it exists before the copy's conftest loads the
# profile named by HYPOTHESIS_PROFILE.
PROFILE_PLUGIN = """from hypothesis import HealthCheck, Phase, settings
settings.register_profile("grading", max_examples=30, deadline=None, database=None,
                          derandomize=True,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow])
"""
# Starting a process (torch, pytest, hypothesis) costs more CPU than a copy's few tests, so one
# process runs several blanked copies in turn: before each, it forgets every module loaded from
# a copy (minitx, the tests, conftest), puts this copy first on the path and runs pytest there.
# A failure counts only if it carries this copy's own NotImplementedError, so nothing one copy
# leaves behind can pass for another's blank; the original runs in a fresh process of its own.
RUNNER = """import json
import os
import sys

import pytest

jobs, path = json.loads(sys.argv[1]), list(sys.path)
for copy, nodes in jobs:
    for name, module in list(sys.modules.items()):
        where = str(getattr(module, "__file__", None) or "")
        if any(where.startswith(copy_root + os.sep) for copy_root, _ in jobs):
            del sys.modules[name]
    sys.path[:] = [copy] + path
    os.chdir(copy)
    pytest.main(["-q", "-p", "no:cacheprovider", "-p", "grading_profile",
                 "--junitxml=" + os.path.join(copy, "junit.xml"), *nodes])
"""


def outcomes(junit_xml):
    """{(classname, name): (outcome, report text)} from a pytest --junitxml report; the outcome is
    "passed", "failed" (a failure or an error) or "skipped"."""
    result = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        text = " ".join(f"{child.get('message', '')} {child.text or ''}" for child in case)
        result[case.get("classname"), case.get("name")] = (
            "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds
            else "passed", text)
    return result


def cases_of(node, results):
    """The (outcome, text) of every test case run for `node` (all parameters if none given)."""
    path, name = node.split("::")
    module = path.removesuffix(".py").replace("/", ".")
    return [result for (classname, case), result in results.items()
            if classname == module and (case == name or "[" not in name and case.startswith(
                name + "["))]


def run_copies(jobs, plugins):
    """Run each (copy, node ids) job in turn in one fresh process; per-case outcomes of each,
    and the tail of the log."""
    env = {**os.environ, "PYTHONPATH": str(plugins), "HYPOTHESIS_PROFILE": "grading",
           "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, str(plugins / "run_copies.py"),
                          json.dumps([(str(copy), nodes) for copy, nodes in jobs])],
                         env=env, capture_output=True, text=True)
    log = run.stdout[-3000:] + run.stderr[-2000:]
    return [(outcomes(copy / "junit.xml") if (copy / "junit.xml").exists() else {}, log)
            for copy, _ in jobs]


@pytest.mark.slow
def test_each_blanked_function_fails_exactly_its_named_tests_and_the_original_passes(tmp_path):
    """Blanked alone, each function fails every one of its named tests, each with the blank's
    NotImplementedError; nothing blanked, every named test passes (parameters included)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "grading_profile.py").write_text(PROFILE_PLUGIN)
    (plugins / "run_copies.py").write_text(RUNNER)
    original = student_copy.make_copy(tmp_path / "original", [])
    copies = {name: student_copy.make_copy(tmp_path / name, [name]) for name in EXERCISES}
    where = subprocess.run(  # find_spec locates minitx without importing torch
        [sys.executable, "-c",
         "import importlib.util; print(importlib.util.find_spec('minitx').origin)"],
        cwd=original, env={**os.environ, "PYTHONPATH": str(original)}, capture_output=True,
        text=True, check=True).stdout.strip()
    assert Path(where) == original / "minitx" / "__init__.py"
    every_node = sorted({n for nodes in EXERCISES.values() for n in nodes})
    workers = max(1, min(os.cpu_count() or 1, 4))
    groups = [[(copies[name], EXERCISES[name]) for name in list(EXERCISES)[i::workers]]
              for i in range(workers)]
    with ThreadPoolExecutor(max_workers=workers + 1) as pool:
        runs = list(pool.map(lambda jobs: run_copies(jobs, plugins),
                             [[(original, every_node)]] + groups))
    (passed, log), = runs[0]
    blanked = dict(zip([name for i in range(workers) for name in list(EXERCISES)[i::workers]],
                       [result for run in runs[1:] for result in run]))
    problems = []
    for node in every_node:
        outcomes_seen = {outcome for outcome, _ in cases_of(node, passed)}
        if outcomes_seen != {"passed"}:
            problems.append(f"original: {node} -> {outcomes_seen or 'not collected'}\n{log}")
    for name, nodes in EXERCISES.items():
        results, log = blanked[name]
        for node in nodes:
            cases = cases_of(node, results)
            if not cases or any(outcome != "failed" or f"exercise: write {name} " not in text
                                for outcome, text in cases):
                seen = [outcome for outcome, _ in cases]
                problems.append(f"{name} blanked: {node} -> {seen or 'not collected'} (each must "
                                f"fail with the blank's NotImplementedError)\n{log}")
    assert not problems, "\n".join(problems)
