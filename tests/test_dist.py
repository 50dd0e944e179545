"""Tests for cs236781.dist: solution markers, answer placeholders, cleared notebooks, the hand-out.

Fixture projects are written into ``tmp_path``; the real ``hw2`` is only read, never modified.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

from cs236781.dist import (ANSWER_PLACEHOLDER, BEGIN_MARKER, END_MARKER, RAISE_LINE, TODO_LINE,
                           DistError, MarkerError, clear_notebook, find_blocks, prepare_dist,
                           strip_answers, strip_solutions)

ROOT = Path(__file__).resolve().parent.parent
B, E = BEGIN_MARKER, END_MARKER

MODULE = f'''\
"""A toy assignment module. The markers look like this: {B} ... {E}"""


def add(a, b):
    """Return a + b."""
    {B}
    total = a + b
    return total
    {E}


class Box:
    def __init__(self, x):
        self.x = x

    def doubled(self):
        if self.x is not None:
            {B}
            result = 2 * self.x
            {E}
            return result
        return None

    def tripled(self):
        return 3 * self.x
'''

ANSWERS = '''\
"""Answers."""

# ==============================================================================
# Part 1
# ==============================================================================

part1_q1 = r"""
The Jacobian is $\\partial Y / \\partial X$ -- naïve materialisation costs ∑ memory.
"""

part1_q2: str = """second answer"""


def part2_overfit_hp():
    wstd, lr, reg = 0, 0, 0
    {B}
    wstd, lr, reg = 0.1, 0.05, 0.001
    {E}
    return dict(wstd=wstd, lr=lr, reg=reg)


part2_q1 = r"""short"""; unrelated_text = "kept as is"
notes = "not an answer"
'''.replace("{B}", B).replace("{E}", E)


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- markers ---------------------------------------------------------------------------------------
def test_stripped_module_imports_and_raises_only_where_students_work(tmp_path):
    stripped, n = strip_solutions(MODULE, "toy.py")
    assert n == 2
    path = tmp_path / "toy.py"
    path.write_text(stripped)
    compile(stripped, str(path), "exec")
    toy = load(path, "toy_stripped")
    with pytest.raises(NotImplementedError):
        toy.add(1, 2)
    with pytest.raises(NotImplementedError):
        toy.Box(4).doubled()
    assert toy.Box(4).tripled() == 12 and toy.Box(None).doubled() is None
    assert "total = a + b" not in stripped and "2 * self.x" not in stripped
    # The reference module itself still works (the markers are plain comments).
    (tmp_path / "ref.py").write_text(MODULE)
    ref = load(tmp_path / "ref.py", "toy_reference")
    assert ref.add(1, 2) == 3 and ref.Box(4).doubled() == 8


def test_block_becomes_markers_todo_and_raise_at_the_marker_indentation():
    stripped, _ = strip_solutions(MODULE, "toy.py")
    lines = stripped.splitlines()
    i = lines.index(f"    {B}")
    assert lines[i:i + 4] == [f"    {B}", f"    {TODO_LINE}", f"    {RAISE_LINE}", f"    {E}"]
    j = lines.index(f"            {B}")
    assert lines[j + 2] == f"            {RAISE_LINE}"
    # Everything outside the blocks is untouched, including the docstring that names the markers.
    assert lines[0] == MODULE.splitlines()[0]
    assert stripped.count(RAISE_LINE) == 2


def test_module_without_markers_is_unchanged():
    source = "def f(x):\n    # ====== not a marker\n    return x  # YOUR CODE is welcome\n"
    assert strip_solutions(source, "plain.py") == (source, 0)
    assert find_blocks(source) == []


def test_markers_inside_strings_are_not_markers():
    source = f's = """\n{B}\n"""\nt = "{E}"\n'
    assert strip_solutions(source, "s.py") == (source, 0)


@pytest.mark.parametrize("body, line, match", [
    (f"def f():\n    {B}\n    {B}\n    x = 1\n    {E}\n", 3, "nested solution marker.*line 2"),
    (f"def f():\n    {B}\n    return 1\n", 2, "never closed"),
    (f"def f():\n    return 1\n    {E}\n", 3, "closing solution marker without an opening"),
    ("def f():\n    # ====== YOUR CODE BELOW ======\n    return 1\n", 2, "malformed solution marker"),
    ("def f():\n    return 1\n    # ====== END OF YOUR CODE ======\n", 3, "malformed solution marker"),
    ("def f():\n    # ====== YOUR CODE: ====== here\n    return 1\n", 2, "malformed solution marker"),
    (f"def f():\n    x = 1  {B}\n    return x\n    {E}\n", 2, "alone on its line"),
    (f"{B}\nX = 1\n{E}\n", 1, "not inside a function body"),
    (f"class C:\n    {B}\n    X = 1\n    {E}\n", 2, "not inside a function body"),
    (f"def f():\n    x = 1\n{B}\n    return x\n{E}\n    return 2\n", 3, "does not compile"),
])
def test_bad_markers_are_reported_with_file_and_line(body, line, match):
    with pytest.raises(MarkerError, match=match) as info:
        strip_solutions(body, "pkg/mod.py")
    assert str(info.value).startswith(f"pkg/mod.py:{line}: ")
    assert (info.value.filename, info.value.line) == ("pkg/mod.py", line)


# -- answers and notebooks -------------------------------------------------------------------------
def test_answers_are_replaced_by_the_placeholder(tmp_path):
    replaced, n = strip_answers(ANSWERS, "answers.py")
    assert n == 3
    assert "naïve" not in replaced and "second answer" not in replaced
    (tmp_path / "answers.py").write_text(replaced, encoding="utf-8")
    answers = load(tmp_path / "answers.py", "answers_stripped")
    placeholder = eval(ANSWER_PLACEHOLDER)  # the literal's value
    assert answers.part1_q1 == answers.part1_q2 == answers.part2_q1 == placeholder
    assert answers.notes == "not an answer" and answers.unrelated_text == "kept as is"
    assert answers.part2_overfit_hp() == dict(wstd=0.1, lr=0.05, reg=0.001)  # markers: next step
    stripped, blocks = strip_solutions(replaced, "answers.py")
    assert blocks == 1
    (tmp_path / "answers2.py").write_text(stripped, encoding="utf-8")
    with pytest.raises(NotImplementedError):
        load(tmp_path / "answers2.py", "answers_stripped2").part2_overfit_hp()


def test_clear_notebook_removes_outputs_and_counts():
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# title"),
                                v4.new_code_cell("print(1)", execution_count=3, outputs=[
                                    v4.new_output("stream", name="stdout", text="1\n")])])
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    nb.metadata["widgets"] = {"state": {}}
    clear_notebook(nb)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert "execution" not in nb.cells[1].metadata and "widgets" not in nb.metadata
    assert nb.cells[0].source == "# title" and nb.cells[1].source == "print(1)"
    nbformat.validate(nb)


# -- the hand-out ---------------------------------------------------------------------------------
TOY_TESTS = '''\
from hw2.toy import Box, add


def test_add():
    assert add(2, 3) == 5


def test_doubled():
    assert Box(4).doubled() == 8


def test_tripled():
    assert Box(4).tripled() == 12
'''


def make_project(root: Path) -> Path:
    """A small reference project laid out like this repository."""
    (root / "hw2").mkdir(parents=True)
    (root / "hw2" / "__init__.py").write_text("")
    (root / "hw2" / "toy.py").write_text(MODULE)
    (root / "hw2" / "answers.py").write_text(ANSWERS, encoding="utf-8")
    (root / "hw2" / "__pycache__").mkdir()
    (root / "hw2" / "__pycache__" / "toy.cpython-311.pyc").write_bytes(b"junk")
    (root / "tests").mkdir()
    (root / "tests" / "test_toy.py").write_text(TOY_TESTS)
    (root / "results").mkdir()
    (root / "results" / "exp1.json").write_text("{}")
    (root / "README.md").write_text("read me\n")
    (root / "scratch.txt").write_text("not part of the hand-out\n")
    run = root / ".ci" / "run"
    run.parent.mkdir()
    run.write_text("#!/bin/sh\nmake test\n")
    run.chmod(0o755)
    nb = v4.new_notebook(cells=[v4.new_code_cell("1 + 1", execution_count=1, outputs=[
        v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)])])
    nbformat.write(nb, str(root / "Part1_Toy.ipynb"))
    return root


def run_pytest(project: Path, tmp_path: Path, name: str):
    """Run pytest in ``project`` (its packages first on the path); return ``{test: failure message}``."""
    report = tmp_path / f"{name}.xml"
    env = dict(os.environ, PYTHONPATH=str(project))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={report}", "tests"], cwd=project, env=env,
                   capture_output=True, text=True, timeout=120)
    outcome = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = case.find("failure")
        problem = case.find("error") if problem is None else problem
        outcome[case.get("name")] = None if problem is None else problem.get("message", "")
    return outcome


def test_handout_fails_exactly_where_students_have_work_to_do(tmp_path):
    source = make_project(tmp_path / "ref")
    report = prepare_dist(source, tmp_path / "out", progress=None)
    out = report.out
    assert sorted(p.as_posix() for p in report.files) == [
        ".ci/run", "Part1_Toy.ipynb", "README.md", "hw2/__init__.py", "hw2/answers.py",
        "hw2/toy.py", "tests/test_toy.py"]
    assert report.blocks == {"hw2/toy.py": 2, "hw2/answers.py": 1}
    assert (report.answers, report.notebooks) == (3, 1)
    assert (out / "results").is_dir() and not any((out / "results").iterdir())
    assert not (out / "hw2" / "__pycache__").exists() and not (out / "scratch.txt").exists()
    assert os.access(out / ".ci" / "run", os.X_OK)
    assert (out / "README.md").read_text() == "read me\n"
    cell = nbformat.read(str(out / "Part1_Toy.ipynb"), as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None and cell.source == "1 + 1"
    # The reference passes its tests; the hand-out fails exactly the two that need student code.
    assert run_pytest(source, tmp_path, "ref") == {"test_add": None, "test_doubled": None,
                                                   "test_tripled": None}
    handout = run_pytest(out, tmp_path, "handout")
    assert handout["test_tripled"] is None
    assert "NotImplementedError" in handout["test_add"]
    assert "NotImplementedError" in handout["test_doubled"]


def test_existing_output_is_kept_unless_forced(tmp_path):
    source = make_project(tmp_path / "ref")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(DistError, match="not empty; remove it or pass --force"):
        prepare_dist(source, out, progress=None)
    assert (out / "old.txt").exists()
    prepare_dist(source, out, force=True, progress=None)
    assert not (out / "old.txt").exists() and (out / "hw2" / "toy.py").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp leftovers


def test_marker_problems_in_several_files_are_all_reported_and_nothing_is_written(tmp_path):
    source = make_project(tmp_path / "ref")
    (source / "hw2" / "bad1.py").write_text(f"def f():\n    {B}\n    return 1\n")
    (source / "hw2" / "bad2.py").write_text(f"X = 1\n{E}\n")
    with pytest.raises(DistError) as info:
        prepare_dist(source, tmp_path / "out", progress=None)
    message = str(info.value)
    assert "hw2/bad1.py:2: solution block is never closed" in message
    assert "hw2/bad2.py:2: closing solution marker" in message
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.parametrize("out, match", [
    ("ref/hw2/handout", "lies inside a folder that is copied"),
    ("ref", "would contain the source"),
    (".", "would contain the source"),
])
def test_output_inside_the_source_is_refused(tmp_path, out, match):
    source = make_project(tmp_path / "ref")
    with pytest.raises(DistError, match=match):
        prepare_dist(source, tmp_path / out, progress=None)


def test_missing_source_is_refused(tmp_path):
    with pytest.raises(DistError, match="is not a folder"):
        prepare_dist(tmp_path / "nope", tmp_path / "out", progress=None)


IMPORT_EACH = """
import importlib, json, sys
failed = {}
for name in sys.argv[2:]:
    try:
        mod = importlib.import_module("hw2." + name)
        assert mod.__file__.startswith(sys.argv[1]), mod.__file__
    except Exception as err:
        failed[name] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


def import_failures(project: Path, modules):
    """Import ``hw2.<m>`` for each module from ``project``; return ``{module: error}``."""
    env = dict(os.environ, PYTHONPATH=str(project), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", IMPORT_EACH, str(project), *modules], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_handout_of_this_repository_imports(tmp_path):
    """The real reference: the stripped hw2 compiles, and every module that imports in the
    reference imports in the hand-out too (markers or not)."""
    report = prepare_dist(ROOT, tmp_path / "handout", progress=None)
    out = report.out
    for path in out.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    modules = sorted(p.stem for p in (out / "hw2").glob("*.py") if p.stem != "__init__")
    assert {"layers", "optimizers", "answers"} <= set(modules)
    in_handout = import_failures(out, modules)
    in_reference = import_failures(ROOT, modules)
    assert set(in_handout) <= set(in_reference), in_handout
    assert len(in_handout) < len(modules)
    answers = (out / "hw2" / "answers.py").read_text(encoding="utf-8")
    assert report.answers > 0 and answers.count("**Your answer:**") == report.answers
    for nb_path in out.glob("Part*.ipynb"):
        nb = nbformat.read(str(nb_path), as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_handout_of_this_repository_fails_only_with_not_implemented(tmp_path):
    """Run the hand-out's tests of every hw2 module: each failure must be a NotImplementedError,
    and a module's tests can only fail when the module has solution markers."""
    report = prepare_dist(ROOT, tmp_path / "handout", progress=None)
    out = report.out
    test_files = sorted(f"tests/test_{p.stem}.py" for p in (out / "hw2").glob("*.py")
                        if (out / "tests" / f"test_{p.stem}.py").exists())
    xml = tmp_path / "handout.xml"
    env = dict(os.environ, PYTHONPATH=str(out), MPLBACKEND="Agg")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", *test_files], cwd=out, env=env, capture_output=True,
                   timeout=1200)
    failures = {}
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    assert cases, "no tests ran"
    for case in cases:
        problem = case.find("failure")
        problem = case.find("error") if problem is None else problem
        if problem is not None:
            where = f"{case.get('classname')}::{case.get('name')}"
            failures[where] = (problem.get("message") or "") + (problem.text or "")
    if not report.blocks:  # no markers yet: the hand-out's code is the reference's
        assert not failures, sorted(failures)
    for where, text in failures.items():
        assert "NotImplementedError" in text, f"{where} failed with something else:\n{text[-2000:]}"
