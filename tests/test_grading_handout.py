"""The student hand-out (prepare-dist) holds none of the grader: no grading package, no rubric,
no grader test, helper or benchmark; and its command line works without them.

The oracle is the reference itself: every file of this project that belongs to the grader
(under ``cs236781/grading/``, or a test or benchmark that imports the grader or its test
helpers) is found here by reading the files, independently of the exclusion list, and none of
them may be in the hand-out, nor any file that mentions the rubric or imports the grader.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cs236781.dist import prepare_dist

ROOT = Path(__file__).resolve().parents[1]
#: Text by which a file uses the grader (an import of the package or of the tests' helpers).
USES_GRADER = re.compile(r"cs236781\.grading|from cs236781 import grading|import grading_helpers"
                         r"|from grading_helpers|rubric\.toml")


def _grader_files():
    files = {p.relative_to(ROOT) for p in (ROOT / "cs236781" / "grading").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    for folder in ("tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if USES_GRADER.search(path.read_text(encoding="utf-8")) or path.name == "grading_helpers.py":
                files.add(path.relative_to(ROOT))
    return files


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "hw2"
    prepare_dist(ROOT, out, progress=None)
    return out


def test_the_reference_has_a_grader_to_leave_out():
    files = {f.as_posix() for f in _grader_files()}
    assert "cs236781/grading/rubric.toml" in files
    assert any(f.startswith("tests/test_grade") for f in files)
    assert "tests/grading_helpers.py" in files and "tests/test_grading_handout.py" in files


def test_handout_has_no_grader_file(handout):
    present = sorted(f.as_posix() for f in _grader_files() if (handout / f).exists())
    assert present == []
    assert not [p for p in handout.rglob("*") if "grading" in p.relative_to(handout).parts]
    assert not list(handout.rglob("rubric*"))
    users = sorted(p.relative_to(handout).as_posix() for p in handout.rglob("*.py")
                   if USES_GRADER.search(p.read_text(encoding="utf-8")))
    # The command line names the grader's module only to find out that it is absent.
    assert users == ["cs236781/cli.py"]
    # The rest of the hand-out is there: the student's package and its own tests.
    for name in ("hw2/layers.py", "hw2/optimizers.py", "tests/test_layers.py", "main.py",
                 "cs236781/cli.py"):
        assert (handout / name).is_file(), name


def test_handout_command_line_works_without_the_grader(handout):
    for entry in (["-m", "cs236781"], ["main.py"]):
        done = subprocess.run([sys.executable, *entry, "--help"], cwd=handout,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "prepare-submission" in done.stdout
        assert "grade" not in done.stdout.replace("prepare", "")
        refused = subprocess.run([sys.executable, *entry, "grade-all", "x.zip", "-o", "out"],
                                 cwd=handout, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "invalid choice: 'grade-all'" in refused.stderr
