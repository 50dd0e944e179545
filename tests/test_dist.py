"""Tests for cs236781.dist: the hand-out (stripped code, cleared notebooks, copied assets).

The stripping itself is cs236781.answers.strip_solutions, tested in
test_cs236781_answers.py; the toy sources come from there. Fixture projects are written into
``tmp_path``; the real ``hw2`` is only read, never modified.
"""
import ast
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

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


# -- the hand-out of this repository against the course's --------------------------------------

#: The course's hand-out, by file: each function (qualified name) that holds student blocks and
#: how many (issue 23, item 5: the blocks hw2 already had where the course has them, plus those the
#: issue found missing; none on project-only helpers; Adam, Nesterov and resuming stay finished).
COURSE_BLOCKS = {
    "hw2/layers.py": {
        "LeakyReLU.forward": 1, "LeakyReLU.backward": 1, "ReLU.__init__": 1,
        "Sigmoid.forward": 1, "Sigmoid.backward": 1, "TanH.forward": 1, "TanH.backward": 1,
        "Linear.__init__": 1, "Linear.forward": 1, "Linear.backward": 1,
        "CrossEntropyLoss.forward": 1, "CrossEntropyLoss.backward": 1,
        "Dropout.forward": 1, "Dropout.backward": 1,
        "Sequential.forward": 1, "Sequential.backward": 1, "Sequential.params": 1,
        "MLP.__init__": 1,
    },
    "hw2/optimizers.py": {
        "VanillaSGD.step": 1, "MomentumSGD.__init__": 1, "MomentumSGD.step": 1,
        "RMSProp.__init__": 1, "RMSProp.step": 1,
    },
    "hw2/training.py": {
        "Trainer.fit": 3, "LayerTrainer.__init__": 1, "LayerTrainer.train_batch": 1,
        "LayerTrainer.test_batch": 1, "ClassifierTrainer.train_batch": 1,
        "ClassifierTrainer.test_batch": 1,
    },
    "hw2/mlp.py": {"MLP.__init__": 1, "MLP.forward": 1},
    "hw2/classifier.py": {
        "Classifier.__init__": 1, "Classifier.forward": 1, "Classifier.predict_proba": 1,
        "Classifier.predict_proba_scores": 1, "BinaryClassifier._classify": 1,
        "ArgMaxClassifier._classify": 1, "plot_decision_boundary_2d": 1, "select_roc_thresh": 1,
    },
    "hw2/cnn.py": {
        "CNN._make_feature_extractor": 1, "CNN._n_features": 1, "CNN._make_mlp": 1,
        "CNN.forward": 1, "ResidualBlock.__init__": 1, "ResidualBlock.forward": 1,
        "ResidualBottleneckBlock.__init__": 1, "ResNet._make_feature_extractor": 1,
        "YourCNN.__init__": 2,
    },
    "hw2/experiments.py": {"mlp_experiment": 1, "cnn_experiment": 1},
    "hw2/answers.py": {
        "part2_overfit_hp": 1, "part2_optim_hp": 1, "part2_dropout_hp": 1, "part3_arch_hp": 1,
        "part3_optim_hp": 1, "part4_optim_hp": 1,
    },
}


def handout_blanks(source: str) -> Dict[str, List[int]]:
    """The blanks of one hand-out module: ``{qualified function name: [line of each blank]}``.

    A blank is what prepare-dist leaves of a student block: a ``raise NotImplementedError()``
    statement right below the opening marker, found with :mod:`ast`; the function holding it is
    named by its enclosing classes and functions (``Linear.__init__``).
    """
    lines = source.splitlines()
    blanks: Dict[str, List[int]] = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    for stmt in ast.walk(child):
                        if (isinstance(stmt, ast.Raise) and isinstance(stmt.exc, ast.Call)
                                and getattr(stmt.exc.func, "id", None) == "NotImplementedError"
                                and lines[stmt.lineno - 2].strip() == BEGIN_MARKER
                                and innermost[stmt.lineno] == child):
                            blanks.setdefault(name, []).append(stmt.lineno)
                visit(child, name + ".")

    tree = ast.parse(source)
    innermost = {}  # line -> the innermost function whose body holds it
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in ast.walk(func):
                if isinstance(stmt, ast.Raise):
                    held = innermost.get(stmt.lineno)
                    if held is None or held.lineno < func.lineno:
                        innermost[stmt.lineno] = func
    visit(tree, "")
    return blanks


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    """The hand-out of this repository, and its blanks: ``{file: {function: [lines]}}``."""
    report = prepare_dist(ROOT, tmp_path_factory.mktemp("dist") / "handout", progress=None)
    blanks = {}
    for path in sorted((report.out / "hw2").glob("*.py")):
        found = handout_blanks(path.read_text(encoding="utf-8"))
        if found:
            blanks[path.relative_to(report.out).as_posix()] = found
    return report, blanks


def test_handout_blanks_are_the_courses_student_blocks(handout):
    report, blanks = handout
    counts = {f: {name: len(lines) for name, lines in found.items()} for f, found in blanks.items()}
    assert counts == COURSE_BLOCKS
    assert report.blocks == {f: sum(n.values()) for f, n in COURSE_BLOCKS.items()}


def test_handout_blank_finder_names_functions_by_class():
    source = (f"class A:\n    def f(self):\n        {B}\n        raise NotImplementedError()\n"
              f"        {E}\n\n    def g(self):\n        raise NotImplementedError()\n\n\n"
              f"def h():\n    def inner():\n        {B}\n        raise NotImplementedError()\n"
              f"        {E}\n    {B}\n    raise NotImplementedError()\n    {E}\n")
    assert handout_blanks(source) == {"A.f": [4], "h.inner": [14], "h": [17]}


#: Records, per test of the hand-out, whether it reached a blank and how it ended (a pytest
#: plugin, loaded with -p into the hand-out's own test run).
BLANK_TRACER = r"""
import json, os, re, sys, threading
import pytest

BLANKS = {path: set(lines) for path, lines in json.loads(os.environ["HW2_BLANKS"]).items()}
BY_MODULE = {"hw2/" + os.path.basename(path): lines for path, lines in BLANKS.items()}
RECORD = {}
_current = [None]


def _local(frame, event, arg):
    if (event == "exception" and issubclass(arg[0], NotImplementedError)
            and frame.f_lineno in BLANKS[frame.f_code.co_filename] and _current[0]):
        RECORD[_current[0]]["reached"].append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
    return _local


def _global(frame, event, arg):
    if frame.f_code.co_filename in BLANKS:
        frame.f_trace_lines = False
        return _local
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current[0] = item.nodeid
    RECORD[item.nodeid] = {"reached": [], "failed": [], "where": [], "child": []}
    sys.settrace(_global)
    threading.settrace(_global)
    yield
    sys.settrace(None)
    threading.settrace(None)
    _current[0] = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        seen = RECORD[item.nodeid]
        seen["failed"].append(call.excinfo.typename)
        last = call.excinfo.traceback[-1]
        seen["where"].append(f"{last.path}:{last.lineno + 1}")
        # A child process (the command line) that reached a blank: its traceback, in the
        # failure's text (pytest may shorten the paths), ends in NotImplementedError at a
        # blank's line of the hand-out's hw2 package, the only one on the child's path.
        text = str(report.longrepr)
        if "NotImplementedError" in text:
            for module, line in re.findall(r'(hw2/\w+\.py)\\?", line (\d+)', text):
                if int(line) in BY_MODULE.get(module, ()):
                    seen["child"].append(f"{module}:{line}")


def pytest_collectreport(report):
    if report.failed:  # a test file the hand-out cannot even collect hides all its tests
        RECORD[report.nodeid] = {"collection error": str(report.longrepr)[-1500:]}


def pytest_sessionfinish(session):
    with open(os.environ["HW2_BLANK_RECORD"], "w") as out:
        json.dump(RECORD, out)
"""


@pytest.mark.slow
def test_handout_tests_fail_with_not_implemented_exactly_at_the_blanks(handout, tmp_path):
    """Run the hand-out's tests of every hw2 module (the fast ones) with a tracer that notes
    each blank a test reaches: a test fails if and only if it reaches a blank, and then with
    the NotImplementedError that blank raises, never with another error."""
    report, blanks = handout
    out = report.out
    blank_lines = {str(out / f): [n for lines in found.values() for n in lines]
                   for f, found in blanks.items()}
    (tmp_path / "blank_tracer.py").write_text(BLANK_TRACER)
    record_path = tmp_path / "record.json"
    test_files = sorted(f"tests/test_{p.stem}.py" for p in (out / "hw2").glob("*.py")
                        if (out / "tests" / f"test_{p.stem}.py").exists())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(out), str(tmp_path)]),
               MPLBACKEND="Agg", HW2_BLANKS=json.dumps(blank_lines),
               HW2_BLANK_RECORD=str(record_path))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow",
                           "-p", "no:cacheprovider", "-p", "blank_tracer",
                           "--continue-on-collection-errors", *test_files],
                          cwd=out, env=env, capture_output=True, text=True, timeout=1800)
    record = json.loads(record_path.read_text())
    assert record, proc.stdout[-2000:] + proc.stderr[-2000:]
    blank_sites = {f"{path}:{n}" for path, lines in blank_lines.items() for n in lines}
    wrong = {}
    for test, seen in record.items():
        if "collection error" in seen:
            wrong[test] = seen
        elif bool(seen["failed"]) != bool(seen["reached"] or seen["child"]):
            wrong[test] = seen  # failed without reaching a blank, or passed although it did
        elif seen["child"]:
            continue  # its command-line child died of a blank's NotImplementedError
        elif any(name != "NotImplementedError" for name in seen["failed"]):
            wrong[test] = seen  # reached a blank but failed with something else
        elif not set(seen["where"]) <= blank_sites:
            wrong[test] = seen  # the NotImplementedError came from somewhere else
    assert not wrong, json.dumps(wrong, indent=1)[:6000]
    failing = {t for t, seen in record.items() if seen["failed"]}
    assert failing and len(failing) < len(record)  # blanks are reached, and not by everything
