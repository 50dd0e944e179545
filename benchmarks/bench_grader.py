"""The grader's speed: ``python -m benchmarks.bench_grader [--copies N]`` (course staff only).

Two rows, each measured against a plain alternative in the same run:

1. Seconds to grade one submission (the reference solution, as a folder) with
   ``python -m cs236781 grade``, the whole default rubric; goal <= 60 s. The plain
   alternative is what a TA without the grader would run: the course's own unit tests of the
   graded modules (``pytest -m "not slow"`` on tests/test_layers.py, test_optimizers.py,
   test_training.py, test_mlp.py, test_classifier.py, test_cnn.py) in the submission's folder,
   unsandboxed and with no per-item score.
2. Submissions per hour for ``grade-all --jobs 2`` over N copies of the reference, against
   ``--jobs 1`` on the same copies (each batch into a fresh folder, so nothing is skipped).

Not part of ``python -m benchmarks`` (whose suites go into the student hand-out; this file
does not: :data:`cs236781.dist.GRADER_EXCLUDE`).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import Row, print_table

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 60.0
GOAL_PER_HOUR = 60.0
COURSE_TESTS = ("test_layers.py", "test_optimizers.py", "test_training.py", "test_mlp.py",
                "test_classifier.py", "test_cnn.py")


def _submission(folder: Path) -> Path:
    """A copy of the reference as a student submits it (hw2/, cs236781/ without the grader,
    the notebooks), plus the course's tests and their assets for the plain alternative."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "grading", "test_grad*", "grading_*")
    for name in ("hw2", "cs236781", "tests"):
        shutil.copytree(ROOT / name, folder / name, ignore=skip)
    for notebook in ROOT.glob("Part*.ipynb"):
        shutil.copy(notebook, folder / notebook.name)
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    return folder


def _timed(argv, cwd) -> float:
    """Wall seconds of a command that must succeed (exit 0)."""
    start = time.perf_counter()
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def grade_one(work: Path, repeats: int = 1):
    """Row 1: seconds for ``grade`` vs the course's unit tests on the same submission."""
    sub = _submission(work / "hw2-1")
    grade_s, tests_s = [], []
    for n in range(repeats):
        grade_s.append(_timed([sys.executable, "-m", "cs236781", "grade", sub, "-o",
                               work / f"graded{n}"], cwd=ROOT))
        tests = [f"tests/{name}" for name in COURSE_TESTS if (sub / "tests" / name).is_file()]
        tests_s.append(_timed([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow",
                               "-p", "no:cacheprovider", *tests], cwd=sub))
    ours, plain = sorted(grade_s)[len(grade_s) // 2], sorted(tests_s)[len(tests_s) // 2]
    return Row("grade one submission (reference, whole rubric) vs course unit tests",
               ours, plain, "s", f"<= {GOAL_SECONDS:g} s", ours <= GOAL_SECONDS)


def grade_all_rate(work: Path, copies: int):
    """Row 2: submissions per hour, grade-all --jobs 2 vs --jobs 1 on the same copies."""
    ref = _submission(work / "ref")
    subs = work / "subs"
    subs.mkdir()
    for n in range(copies):
        shutil.copytree(ref, subs / f"hw2-{900 + n}", ignore=shutil.ignore_patterns("tests"))
    rates = {}
    for jobs in (2, 1):
        seconds = _timed([sys.executable, "-m", "cs236781", "grade-all", subs, "-o",
                          work / f"out-jobs{jobs}", "--jobs", str(jobs)], cwd=ROOT)
        rates[jobs] = 3600.0 * copies / seconds
    return Row(f"grade-all --jobs 2 vs --jobs 1 ({copies} submissions)", rates[2], rates[1],
               "subs/hour", f">= {GOAL_PER_HOUR:g}/h", rates[2] >= GOAL_PER_HOUR)


def run(copies: int = 4, repeats: int = 1):
    with tempfile.TemporaryDirectory(prefix="bench-grader-") as tmp:
        tmp = Path(tmp)
        (tmp / "one").mkdir()
        (tmp / "all").mkdir()
        return [grade_one(tmp / "one", repeats), grade_all_rate(tmp / "all", copies)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4,
                        help="submissions in the grade-all batch (4)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="gradings of the one submission, median (1)")
    args = parser.parse_args(argv)
    rows = run(args.copies, args.repeats)
    print_table(rows, f"Grader on {os.cpu_count()} CPU cores "
                      f"(ratio: ours / plain; for the rate, higher is better)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
