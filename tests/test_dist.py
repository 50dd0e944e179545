"""Tests for cs236781.dist: the hand-out (stripped code, cleared notebooks, copied assets).

The stripping itself is cs236781.answers.strip_solutions, tested in
test_cs236781_answers.py; the toy sources come from there. Fixture projects are written into
``tmp_path``; the real ``hw2`` is only read, never modified.
"""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

from cs236781.answers import ANSWER_BLOCK_REPLACEMENT, BEGIN_MARKER, END_MARKER
from cs236781.dist import DistError, prepare_dist
from cs236781.notebooks import clear_notebook
from test_cs236781_answers import ANSWERS, MODULE

ROOT = Path(__file__).resolve().parent.parent
B, E = BEGIN_MARKER, END_MARKER


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_source_without_the_package_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "README.md").write_text("not an assignment\n")
    with pytest.raises(DistError, match="has no hw2/ folder"):
        prepare_dist(tmp_path / "elsewhere", tmp_path / "out", progress=None)
    assert not (tmp_path / "out").exists()


def test_output_under_a_file_is_refused(tmp_path):
    source = make_project(tmp_path / "ref")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DistError, match=r"a_file is a file, not a folder"):
        prepare_dist(source, tmp_path / "a_file" / "sub" / "handout", progress=None)
    assert (tmp_path / "a_file").read_text() == "x"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_handout_ships_the_reference_tensors_and_manifest_unchanged(tmp_path):
    report = prepare_dist(ROOT, tmp_path / "handout", progress=None)
    assets = ROOT / "tests" / "assets"
    shipped = report.out / "tests" / "assets"
    names = sorted(p.name for p in assets.iterdir() if p.is_file())
    assert "MANIFEST.json" in names and "expected_resblock_out.pt" in names
    assert sorted(p.name for p in shipped.iterdir() if p.is_file()) == names
    for name in names:
        assert sha256(shipped / name) == sha256(assets / name), name
    manifest = json.loads((shipped / "MANIFEST.json").read_text())
    for name, entry in manifest["files"].items():
        assert sha256(shipped / name) == entry["sha256"]
    assert (report.out / "tests" / "make_fixtures.py").read_bytes() == \
        (ROOT / "tests" / "make_fixtures.py").read_bytes()


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
    assert answers.count(ANSWER_BLOCK_REPLACEMENT) == report.answers
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
