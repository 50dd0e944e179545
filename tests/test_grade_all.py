"""grade-all's batch machinery (cs236781.grading.batch, course_report, course_cli), with a
stand-in for the ``grade`` command whose results are known in advance.

The stand-in is a small script that reads what to do from the submission itself
(``plan.json`` inside the zip): write a results.json with given item scores and exit 0,
exit 2 with a results.json, exit 3 without one, sleep past the time limit (with a child of
its own, which must not outlive the batch), or kill itself. Every expected figure (part
sums, totals, pass rates, histogram counts) is computed here by arithmetic from those plans.
The real ``grade`` command is used by tests/test_grade_all_real.py.
"""
import csv
import json
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from cs236781.grading import batch, course_report
from cs236781.grading.batch import GradeAllError, find_submissions, grade_all

ROOT = Path(__file__).resolve().parents[1]

FAKE_GRADE = textwrap.dedent(r'''
    import json, os, signal, subprocess, sys, time, zipfile
    from pathlib import Path

    submission, out = Path(sys.argv[1]), Path(sys.argv[2])
    rubric = sys.argv[3] if len(sys.argv) > 3 else None
    with zipfile.ZipFile(submission) as archive:
        plan = json.loads(archive.read("plan.json"))
    log = Path(plan["log"])
    with open(log, "a") as handle:
        handle.write(json.dumps({"id": submission.name, "start": time.time(), "pid": os.getpid(),
                                 "rubric": rubric}) + "\n")
    print("fake grade of", submission.name)
    action = plan["action"]
    if action == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(plan["child_pid_file"]).write_text(str(child.pid))
        time.sleep(600)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit3":
        print("Traceback: something broke in the grader", file=sys.stderr)
        sys.exit(3)
    time.sleep(plan.get("pause", 0))
    tests = [{"name": f"item {n}", "number": n, "score": s, "max_score": m,
              "status": "passed" if s == m else "failed", "tags": [part]}
             for n, s, m, part in plan.get("items", [])]
    results = {"score": sum(t["score"] for t in tests),
               "max_score": sum(t["max_score"] for t in tests),
               "output": plan.get("output", ""), "tests": tests}
    (out / "results.json").write_text(json.dumps(results))
    with open(log, "a") as handle:
        handle.write(json.dumps({"id": submission.name, "end": time.time()}) + "\n")
    sys.exit(2 if action == "exit2" else 0)
''')


def items(*scores):
    """Four items over two parts (points 10, 20, 30, 40) with the given scores."""
    spec = [("1.1", 10, "Part 1"), ("1.2", 20, "Part 1"), ("2.1", 30, "Part 2"),
            ("2.2", 40, "Part 2")]
    return [[n, s, m, part] for (n, m, part), s in zip(spec, scores)]


@pytest.fixture
def course(tmp_path):
    """(make_zip, command, log): write a planned submission; the stand-in's command line."""
    script = tmp_path / "fake_grade.py"
    script.write_text(FAKE_GRADE)
    log = tmp_path / "calls.log"
    zips = tmp_path / "zips"
    zips.mkdir()

    def make_zip(name, action="graded", **plan):
        path = zips / f"hw2-{name}.zip"
        plan = dict(plan, action=action, log=str(log),
                    child_pid_file=str(tmp_path / f"{name}.child"))
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("plan.json", json.dumps(plan))
        return path

    def command(submission, out, rubric=None, run_notebooks=False):
        return [sys.executable, str(script), str(submission), str(out)] + (
            [str(rubric)] if rubric else [])

    return make_zip, command, log


def calls(log: Path):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def started(log: Path):
    return sorted(c["id"] for c in calls(log) if "start" in c)


def read_csv(path: Path):
    with open(path, newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def test_mixed_batch_statuses_reports_and_no_process_left(course, tmp_path):
    make_zip, command, log = course
    plans = {"100": items(10, 20, 30, 40), "101": items(10, 0, 30, 0), "102": items(0, 0, 0, 0)}
    zips = [make_zip(i, items=it) for i, it in plans.items()]
    zips.append(make_zip("200", "exit2", items=items(0, 0, 0, 0), output="no hw2/ package"))
    zips.append(make_zip("300", "sleep"))
    zips.append(make_zip("400", "kill"))
    zips.append(make_zip("500", "exit3"))
    out = tmp_path / "out"
    lines = []
    records = grade_all(zips, out, jobs=2, timeout_s=3, command=command, progress=lines.append)

    status = {r.id: r.status for r in records}
    assert status == {"100": "graded", "101": "graded", "102": "graded", "200": "not-gradable",
                      "300": "timeout", "400": "crashed", "500": "error"}
    reasons = {r.id: r.reason for r in records}
    assert reasons["200"] == "no hw2/ package"
    assert "within 3 s" in reasons["300"]
    assert "SIGKILL" in reasons["400"]
    assert "exit status 3" in reasons["500"] and "something broke" in reasons["500"]
    assert len(lines) == 1 + 7 + 1  # the plan, one line per submission, the files written

    # The stand-in's child of the timed-out grading was killed with its process group.
    child = int((tmp_path / "300.child").read_text())
    assert not _alive(child), f"process {child} outlived its timed-out grading"

    # Every submission has a results.json; those the command left without one say why.
    for sub_id in status:
        results = json.loads((out / sub_id / "results.json").read_text())
        assert "score" in results
    for sub_id in ("300", "400", "500"):
        results = json.loads((out / sub_id / "results.json").read_text())
        assert results["score"] == 0 and results["output"] == f"Not graded: {reasons[sub_id]}"
    assert "fake grade of hw2-100.zip" in (out / "100" / "grade.log").read_text()
    assert not (out / batch.PARTIAL_DIR).exists()

    # grades.csv: per-part sums and totals from the plans.
    rows = read_csv(out / "grades.csv")
    assert set(rows) == set(status)
    for sub_id, plan in plans.items():
        part1 = sum(s for n, s, m, p in plan if p == "Part 1")
        part2 = sum(s for n, s, m, p in plan if p == "Part 2")
        assert (float(rows[sub_id]["Part 1"]), float(rows[sub_id]["Part 2"])) == (part1, part2)
        assert float(rows[sub_id]["total"]) == part1 + part2
        assert float(rows[sub_id]["max_score"]) == 100
        assert rows[sub_id]["status"] == "graded" and rows[sub_id]["reason"] == ""
    assert rows["300"]["status"] == "timeout" and rows["300"]["reason"] == reasons["300"]
    assert list(rows["100"])[:4] == ["id", "status", "Part 1", "Part 2"]

    # summary.md: totals 100, 40, 0 (graded) and 0 (not gradable); pass rates over 3 graded.
    summary = (out / "summary.md").read_text()
    assert "7 submission(s): 1 crashed, 1 error, 3 graded, 1 not-gradable, 1 timeout." in summary
    assert " 0-10 | ## 2" in summary and "40-50 | # 1" in summary and "90-100 | # 1" in summary
    assert "| 1.1 | item 1.1 | Part 1 | 10 | 2/3 | 67% | 6.67 |" in summary
    assert "| 1.2 | item 1.2 | Part 1 | 20 | 1/3 | 33% | 6.67 |" in summary
    assert "| 2.1 | item 2.1 | Part 2 | 30 | 2/3 | 67% | 20.00 |" in summary
    for sub_id in ("200", "300", "400", "500"):
        assert f"| {sub_id} | {status[sub_id]} |" in summary
    png = (out / "summary.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(str(out / "summary.png")).shape[2] in (3, 4)
    assert (out / "similarity.md").is_file()


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_resume_skips_unchanged_and_regrades_changed_and_failed(course, tmp_path, monkeypatch):
    make_zip, command, log = course
    grader = tmp_path / "grader"  # stands in for cs236781/grading/ (edited while it is developed)
    grader.mkdir()
    (grader / "rubric.toml").write_text("# the default rubric\n")
    monkeypatch.setattr(batch, "GRADER_DIR", grader)
    a = make_zip("1", items=items(10, 20, 30, 40))
    b = make_zip("2", items=items(0, 20, 30, 40))
    c = make_zip("3", "kill")
    out = tmp_path / "out"
    grade_all([a, b, c], out, jobs=2, command=command, progress=None)
    assert started(log) == ["hw2-1.zip", "hw2-2.zip", "hw2-3.zip"]

    log.unlink()
    grade_all([a, b, c], out, jobs=2, command=command, progress=None)
    assert started(log) == ["hw2-3.zip"]  # a crashed worker is tried again; the others kept
    assert read_csv(out / "grades.csv")["1"]["total"] == "100"

    log.unlink()
    make_zip("2", items=items(0, 0, 30, 40))  # the student's zip changed
    records = grade_all([a, b, c], out, jobs=2, command=command, progress=None)
    assert started(log) == ["hw2-2.zip", "hw2-3.zip"]
    assert {r.id: r.status for r in records}["2"] == "graded"
    assert read_csv(out / "grades.csv")["2"]["total"] == "70"

    log.unlink()
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("# another rubric\n")
    grade_all([a, b, c], out, jobs=2, rubric=rubric, command=command, progress=None)
    assert started(log) == ["hw2-1.zip", "hw2-2.zip", "hw2-3.zip"]
    assert {c["rubric"] for c in calls(log) if "start" in c} == {str(rubric.absolute())}
    log.unlink()
    rubric.write_text("# the rubric edited\n")
    grade_all([a], out, jobs=2, rubric=rubric, command=command, progress=None)
    assert started(log) == ["hw2-1.zip"]

    log.unlink()
    (grader / "rubric.toml").write_text("# the default rubric, edited\n")  # the grader changed
    grade_all([a, b], out, jobs=2, rubric=rubric, command=command, progress=None)
    assert started(log) == ["hw2-1.zip", "hw2-2.zip"]

    log.unlink()  # grade-all's own modules are not the grader: editing them regrades nothing
    (grader / "batch.py").write_text("# grade-all's batch module\n")
    grade_all([a, b], out, jobs=2, rubric=rubric, command=command, progress=None)
    assert started(log) == []

    log.unlink(missing_ok=True)  # re-executing the notebooks is another grading
    grade_all([a], out, jobs=2, rubric=rubric, run_notebooks=True, command=command,
              progress=None)
    assert started(log) == ["hw2-1.zip"]


def test_jobs_bound_the_number_of_gradings_at_once(course, tmp_path):
    make_zip, command, log = course
    zips = [make_zip(str(i), items=items(10, 20, 30, 40), pause=0.6) for i in range(5)]
    for jobs, expected in ((2, 2), (1, 1)):
        if log.exists():
            log.unlink()
        grade_all(zips, tmp_path / f"out{jobs}", jobs=jobs, command=command, progress=None)
        events = calls(log)
        spans = [(s["start"], e["end"]) for s in events if "start" in s
                 for e in events if e.get("id") == s["id"] and "end" in e]
        assert len(spans) == 5
        overlap = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
        assert overlap == expected, (jobs, spans)


def test_find_submissions_ids_folders_and_duplicates(tmp_path):
    (tmp_path / "zips").mkdir()
    for name in ("hw2-123_456.zip", "hw2-789.zip", "notes.txt"):
        (tmp_path / "zips" / name).write_bytes(b"PK")
    folder = tmp_path / "hw2-555"
    (folder / "hw2").mkdir(parents=True)
    nested = tmp_path / "unzipped"
    (nested / "hw2-666" / "hw2").mkdir(parents=True)
    subs = find_submissions([tmp_path / "zips", folder, nested])
    assert [(s.id, s.path.name) for s in subs] == [
        ("123_456", "hw2-123_456.zip"), ("555", "hw2-555"), ("666", "hw2-666"),
        ("789", "hw2-789.zip")]
    # A folder of zips and unpacked submissions (with or without their top folder).
    (tmp_path / "zips" / "hw2-777" / "hw2-777" / "hw2").mkdir(parents=True)
    (tmp_path / "zips" / "not-a-submission").mkdir()
    assert [s.id for s in find_submissions([tmp_path / "zips"])] == ["123_456", "777", "789"]
    odd = tmp_path / "My Submission (2).zip"
    odd.write_bytes(b"PK")
    assert find_submissions([odd])[0].id == "My_Submission_2"

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hw2-789.zip").write_bytes(b"PK")
    with pytest.raises(GradeAllError, match="two submissions have the id '789'"):
        find_submissions([tmp_path / "zips", tmp_path / "other" / "hw2-789.zip"])
    with pytest.raises(GradeAllError, match="does not exist"):
        find_submissions([tmp_path / "missing.zip"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradeAllError, match="neither a submission folder"):
        find_submissions([tmp_path / "empty"])


def test_a_second_batch_into_the_same_folder_is_refused(course, tmp_path):
    make_zip, command, log = course
    zip_path = make_zip("1", items=items(10, 20, 30, 40))
    out = tmp_path / "out"
    out.mkdir()
    import fcntl

    with open(out / batch.LOCK_NAME, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with pytest.raises(GradeAllError, match="another grade-all is writing"):
            grade_all([zip_path], out, command=command, progress=None)
    assert not log.exists()


def test_histogram_bins_and_item_order():
    hist = course_report._histogram([0, 9.99, 10, 55, 100, 100], 100)
    assert hist[0] == ("0-10", 2) and hist[1] == ("10-20", 1) and hist[5] == ("50-60", 1)
    assert hist[-1] == ("90-100", 2) and sum(n for _, n in hist) == 6
    numbers = ["2.10", "2.9", "10.1", "1.2", "Q1"]
    assert sorted(numbers, key=course_report._item_key) == ["1.2", "2.9", "2.10", "10.1", "Q1"]


@pytest.mark.parametrize("args, message", [
    (["missing.zip", "-o", "out"], "submission 'missing.zip' does not exist"),
    (["x.zip", "-o", "out", "--jobs", "0"], "expected a positive whole number, got '0'"),
    (["x.zip", "-o", "out", "--similarity-threshold", "2"], "between 0 and 1, got '2'"),
    (["x.zip", "-o", "out", "--slurm", "--jobs", "2"], "--jobs is for grading here"),
    (["x.zip", "-o", "out", "--cluster", "moon"], "--cluster: invalid choice: 'moon'"),
    (["x.zip", "-o", "out", "--slurm", "--cluster", "local"], "contradict each other"),
    (["x.zip", "-o", "out", "--rubric", "nope.toml"], "rubric"),
])
def test_cli_user_mistakes_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    from cs236781.cli import main

    (tmp_path / "x.zip").write_bytes(b"PK")
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["grade-all", *args])
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_interrupted_batch_kills_its_gradings_and_keeps_finished_ones(course, tmp_path):
    make_zip, command, log = course
    done_zip = make_zip("1", items=items(10, 20, 30, 40))
    sleepers = [make_zip("2", "sleep"), make_zip("3", "sleep")]
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from cs236781.grading.batch import grade_all
        script = {str(tmp_path / "fake_grade.py")!r}
        def command(sub, out, rubric=None, run_notebooks=False):
            return [sys.executable, script, str(sub), str(out)]
        grade_all({[str(done_zip)] + [str(z) for z in sleepers]!r}, {str(out)!r}, jobs=3,
                  timeout_s=600, command=command, progress=None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid_files = [tmp_path / "2.child", tmp_path / "3.child"]
        deadline = time.monotonic() + 120
        while not (all(p.exists() for p in pid_files) and (out / "1" / "results.json").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.2)  # the pid files are written just before the sleepers' own sleep
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    for pid_file in pid_files:
        assert not _alive(int(pid_file.read_text()))
    assert json.loads((out / "1" / "results.json").read_text())["score"] == 100
    assert not (out / "2").exists() and not (out / "3").exists()
    assert not (out / batch.PARTIAL_DIR).exists()
