"""grade-all with the real ``grade`` command: a course of 20 mixed submissions with --jobs 2,
and the same as a job array on a real Slurm cluster (marked ``slurm``).

The submissions are made here from the reference: a copy of it, the hand-out prepare-dist
writes (as a folder), four mutants of the grader's own catalogue (tests/test_grade_mutants.py,
made by qualified name; one zipped with its files at the root), four whose package breaks at
import, and eleven bad zips: six full gradings and fourteen quick ones.
The expected scores come from the rubric file by arithmetic: a copy of the reference scores
every auto-graded item's points, a mutant all but its catalogue's items, the broken ones 0; a
bad zip is not gradable. For every graded submission, grades.csv must add up its results.json
(the hand-out's item-by-item zero is tests/test_grade.py's to check).
"""
import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from grading_helpers import apply, copy_reference, zip_folder

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "cs236781" / "grading" / "rubric.toml"
#: Mutants of the grader's catalogue used here (one per part where students go wrong).
MUTANT_NAMES = ("RMSProp without the L2 term", "early stopping off by one",
                "ROC threshold taken from the wrong index",
                "residual block without its shortcut projection")


def _rubric_items():
    """{number: (part tag up to the colon, points)} of the auto-graded items."""
    rubric = tomllib.loads(RUBRIC.read_text(encoding="utf-8"))
    parts = {int(k): v.split(":")[0] for k, v in rubric["parts"].items()}
    return {item["number"]: (parts[int(item["part"])], float(item["points"]))
            for item in rubric["item"]}


def _catalogue():
    from test_grade_mutants import MUTANTS

    by_name = {m.name: m for m in MUTANTS}
    missing = [n for n in MUTANT_NAMES if n not in by_name]
    assert not missing, f"mutants not in the catalogue any more: {missing}"
    return [by_name[n] for n in MUTANT_NAMES]


def _bad_zip(path: Path, kind: str) -> Path:
    if kind == "not-a-zip":
        path.write_text("this is a text file called .zip\n")
        return path
    if kind == "gzip":
        import gzip

        path.write_bytes(gzip.compress(b"hw2/layers.py\n" * 100))
        return path
    with zipfile.ZipFile(path, "w") as archive:
        if kind == "traversal":
            archive.writestr("hw2-9/hw2/__init__.py", "")
            archive.writestr("../../evil.py", "print('escaped')\n")
        elif kind == "absolute":
            archive.writestr("hw2/__init__.py", "")
            archive.writestr("/tmp/evil.py", "print('escaped')\n")
        elif kind == "symlink":
            archive.writestr("hw2/__init__.py", "")
            link = zipfile.ZipInfo("hw2/layers.py")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(link, "/etc/shadow")
        elif kind == "device":
            archive.writestr("hw2/__init__.py", "")
            dev = zipfile.ZipInfo("hw2/null")
            dev.external_attr = (stat.S_IFCHR | 0o666) << 16
            archive.writestr(dev, "")
        elif kind == "notebooks-only":
            archive.writestr("hw2-9/Part1_Backprop.ipynb", "{}")
        elif kind == "non-utf8-name":
            info = zipfile.ZipInfo("hw2/x.py")
            archive.writestr(info, "")
        elif kind == "hw2-is-a-file":
            archive.writestr("hw2-9/hw2", "not a package\n")
            archive.writestr("hw2-9/Part1_Backprop.ipynb", "{}")
        elif kind == "zip-in-zip":
            archive.writestr("hw2-9.zip", b"PK\x05\x06" + bytes(18))
        # "empty": nothing at all
    if kind == "non-utf8-name":  # rewrite the member name as raw Latin-1 bytes, flag 0x800 off
        data = path.read_bytes().replace(b"hw2/x.py", b"hw2/\xe9.py")
        path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """(zips folder, {id: expected}) where expected is ("graded", {part: score}, lost items)
    or ("not-gradable", None, None)."""
    base = tmp_path_factory.mktemp("course")
    subs = base / "submissions"
    subs.mkdir()
    items = _rubric_items()
    full = {}
    for number, (part, points) in items.items():
        full[part] = full.get(part, 0.0) + points

    def expected_graded(lost=frozenset(), zero=False):
        scores = {p: 0.0 for p in full} if zero else {
            p: sum(pts for n, (q, pts) in items.items() if q == p and n not in lost) for p in full}
        return ("graded", scores, frozenset(items) if zero else frozenset(lost))

    expected = {}
    ref = copy_reference(base / "ref")
    zip_folder(ref, subs / "hw2-1001.zip", top="hw2-1001")
    expected["1001"] = expected_graded()

    from cs236781.dist import prepare_dist

    prepare_dist(ROOT, base / "dist", progress=None)
    handout = subs / "hw2-1003"
    handout.mkdir()
    for package in ("hw2", "cs236781"):
        shutil.copytree(base / "dist" / package, handout / package)
    # How the hand-out scores item by item is tests/test_grade.py's business (zero on every
    # auto item); here grades.csv must add up what its results.json says.
    expected["1003"] = ("graded", None, None)

    for n, mutant in enumerate(_catalogue()):  # the last one with its files at the zip's root
        folder = copy_reference(base / f"mutant{n}")
        apply(folder, [mutant])
        zip_folder(folder, subs / f"hw2-20{n:02d}.zip", top=None if n == 3 else f"hw2-20{n:02d}")
        expected[f"20{n:02d}"] = expected_graded(mutant.lost)

    broken = {"3001": ("hw2/__init__.py", "def broken(:\n"),
              "3002": ("hw2/__init__.py", "raise RuntimeError('boom at import')\n"),
              "3003": ("hw2/__init__.py", "import sys\nsys.exit(3)\n"),
              "3004": ("hw2/__init__.py", "import hw2.no_such_module\n")}
    for sub_id, (module, text) in broken.items():
        folder = copy_reference(base / f"broken{sub_id}")
        (folder / module).write_text(text)
        zip_folder(folder, subs / f"hw2-{sub_id}.zip", top=f"hw2-{sub_id}")
        expected[sub_id] = expected_graded(zero=True)

    for n, kind in enumerate(("not-a-zip", "empty", "traversal", "absolute", "symlink",
                              "device", "notebooks-only", "non-utf8-name", "gzip",
                              "hw2-is-a-file", "zip-in-zip")):
        _bad_zip(subs / f"hw2-40{n:02d}.zip", kind)
        expected[f"40{n:02d}"] = ("not-gradable", None, None)
    assert len(expected) >= 20
    return subs, expected


def _grade_all(args, timeout=1500):
    """``python -m cs236781 grade-all ARGS`` run in this project (its cs236781 is imported)."""
    return subprocess.run([sys.executable, "-m", "cs236781", "grade-all", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _check_course(out: Path, expected: dict):
    with open(out / "grades.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(expected)
    problems = []
    for sub_id, (status, scores, lost) in sorted(expected.items()):
        row = rows[sub_id]
        if row["status"] != status:
            problems.append(f"{sub_id}: status {row['status']} ({row['reason']}), "
                            f"expected {status}")
            continue
        results = json.loads((out / sub_id / "results.json").read_text())
        if status == "not-gradable":
            if float(row["total"]) != 0 or not row["reason"]:
                problems.append(f"{sub_id}: not gradable with total {row['total']} and reason "
                                f"{row['reason']!r}")
            continue
        written = {}
        for test in results["tests"]:
            part = test["tags"][0].split(":")[0]
            written[part] = written.get(part, 0.0) + test["score"]
        got = {part: float(row[part]) for part in written}
        if got != written or float(row["total"]) != results["score"]:
            problems.append(f"{sub_id}: grades.csv says {got}, total {row['total']}; its "
                            f"results.json {written}, total {results['score']}")
        if scores is None:
            continue
        if {part: got[part] for part in scores} != scores:
            problems.append(f"{sub_id}: part scores {got}, expected {scores}")
        failed = {t["number"] for t in results["tests"]
                  if t["score"] < t["max_score"] and t["number"] in _rubric_items()}
        if failed != lost:
            problems.append(f"{sub_id}: lost {sorted(failed)}, expected {sorted(lost)}")
    assert not problems, "\n".join(problems)
    return rows


@pytest.mark.slow
def test_grade_all_twenty_mixed_submissions_jobs_2(course, tmp_path):
    subs, expected = course
    out = tmp_path / "out"
    done = _grade_all([subs, "-o", out, "--jobs", "2"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_course(out, expected)

    # Pass rates: an auto item passes in every graded submission that was not meant to lose it.
    graded = [e for e in expected.values() if e[0] == "graded" and e[2] is not None]
    summary = (out / "summary.md").read_text()
    mutated = sorted(set().union(*(m.lost for m in _catalogue())))
    for number in mutated + [min(_rubric_items())]:  # the mutants' items, and one kept by all
        passed = sum(1 for _, _, lost in graded if number not in lost)
        handout = json.loads((out / "1003" / "results.json").read_text())
        passed += any(t["number"] == number and t["status"] == "passed"
                      for t in handout["tests"])
        assert f"| {passed}/{len(graded) + 1} |" in _summary_row(summary, number)
    assert f"{len(expected)} submission(s): " in summary
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")

    # Similarity: the reference and a mutant of it share their student code (identical files
    # and the mutated one); the hand-out and the bad zips share nothing.
    similarity = (out / "similarity.md").read_text()
    from cs236781.grading.similarity import student_files

    n_files = len(student_files())  # the reference's modules with solution blocks
    pair = similarity.split("### ")[1:]
    pair = next(p for p in pair
                if p.split("\n")[0].endswith(f". 1001 and 2000 ({n_files} file(s))"))
    assert "| hw2/layers.py | 100% | 100% |" in pair  # the same text
    assert "| hw2/optimizers.py |" in pair  # RMSProp.__init__ changed, the rest the same
    assert f"(reference) and 1001 ({n_files} file(s))" in similarity
    for loner in ["1003"] + [k for k, e in expected.items() if e[0] == "not-gradable"]:
        assert f" {loner} and " not in similarity and f" and {loner} (" not in similarity

    # Run again: nothing is graded twice, the reports are the same.
    before = {p: (out / p).read_text() for p in ("grades.csv", "similarity.md")}
    again = _grade_all([subs, "-o", out, "--jobs", "2"], timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(expected)} already graded and unchanged, 0 to grade" in again.stdout
    assert {p: (out / p).read_text() for p in before} == before
    assert not list(tmp_path.glob("evil.py")) and not Path("/tmp/evil.py").exists()


def _summary_row(summary: str, number: str) -> str:
    rows = [line for line in summary.splitlines() if line.startswith(f"| {number} |")]
    assert len(rows) == 1, f"item {number} not in summary.md"
    return rows[0]


@pytest.mark.slurm
def test_grade_all_as_a_slurm_array(course, tmp_path):
    from test_slurm import _PROBLEM

    if _PROBLEM is not None:
        pytest.skip(_PROBLEM)
    subs, expected = course
    chosen = ["1001", "1003", "4000", "4002"]
    picked = tmp_path / "picked"
    picked.mkdir()
    for sub_id in chosen:
        src = next(p for p in subs.iterdir() if p.name in (f"hw2-{sub_id}.zip", f"hw2-{sub_id}"))
        (shutil.copytree if src.is_dir() else shutil.copy)(src, picked / src.name)
    out = tmp_path / "out"
    env_note = {k: v for k, v in os.environ.items() if k.startswith("SLURM_")}
    assert not env_note, f"run the Slurm tests outside a Slurm job: {env_note}"
    done = _grade_all([picked, "-o", out, "--slurm", "--timeout", "600", "--cpus", "1"],
                      timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "submitted 4 job(s) to the slurm executor" in done.stdout
    _check_course(out, {k: expected[k] for k in chosen})
    logs = list((out / "submitit-logs").glob("*_log.out"))
    assert len(logs) == len(chosen), logs
