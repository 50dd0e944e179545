"""Grade a whole course: every submission by the ``grade`` command, in its own process.

:func:`grade_all` is what ``python -m cs236781 grade-all`` runs. Each submission (a zip that
``prepare-submission`` wrote, or a folder) is graded by ``python -m cs236781 grade SUBMISSION
-o FOLDER`` in a process of its own, so a submission that hangs or kills its worker costs
only its own grade. The workers run here, ``jobs`` at a time (:func:`run_local`), or as one
Slurm array (:mod:`cs236781.grading.course_slurm`). Each submission ends in ``OUT/<id>/``:

- ``results.json``: the ``grade`` command's (Gradescope's format); for a submission that
  timed out or whose worker died, one written here with score 0 and the reason;
- ``grade.log``: what the ``grade`` command printed (its table; cut at :data:`LOG_LIMIT`);
- ``grade-all.json``: this batch's record (:class:`Record`): status, exit code, seconds, and
  the hashes that make a later run skip it.

A submission is graded into a fresh folder beside ``OUT/<id>`` that replaces it only once its
record is written, so ``OUT/<id>`` is always a whole grading (old or new), never half of one.

Resuming: a submission whose record says ``graded`` or ``not-gradable`` and whose zip,
rubric, grader (its files but grade-all's own modules) and ``--run-notebooks`` are unchanged
(same SHA-256) is not graded again. A ``timeout``, a
``crashed`` or an ``error`` is graded again on the next run.

Statuses: ``graded`` (exit 0), ``not-gradable`` (exit 2: the submission could not be graded at
all; its results.json says why), ``timeout`` (killed after ``timeout_s``), ``crashed`` (the
worker was killed by a signal, e.g. the kernel's out-of-memory killer), ``error`` (any other
exit, or no readable results.json).
"""
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from cs236781.atomic import write_text

__all__ = ["GradeAllError", "Submission", "Record", "Task", "find_submissions", "plan",
           "grade_command", "run_local", "finish", "grade_all", "STATUSES"]

GRADED, NOT_GRADABLE, TIMEOUT, CRASHED, ERROR = "graded", "not-gradable", "timeout", "crashed", "error"
#: Every status a submission can end in, in the order summaries list them.
STATUSES = (GRADED, NOT_GRADABLE, TIMEOUT, CRASHED, ERROR)
#: Statuses a resumed batch keeps (the others are graded again).
FINAL = (GRADED, NOT_GRADABLE)
RECORD_NAME, RESULTS_NAME, LOG_NAME = "grade-all.json", "results.json", "grade.log"
#: What a finished task wrote (its exit code and seconds); absent when its worker died.
OUTCOME_NAME = "outcome.json"
LOCK_NAME = ".grade-all.lock"
#: The ``grade`` command's exit statuses: graded, could not be graded.
EXIT_GRADED, EXIT_NOT_GRADABLE = 0, 2
#: grade.log keeps at most this many bytes (the head and the tail).
LOG_LIMIT = 256 * 1024
#: Default wall-time limit of one submission's grading, seconds.
DEFAULT_TIMEOUT_S = 1800.0
#: Where a submission is graded before it replaces ``OUT/<id>``.
PARTIAL_DIR = ".partial"
#: The grader's folder, and its files whose change makes every submission be graded again
#: (all but grade-all's own modules, which do not change a grade).
GRADER_DIR = Path(__file__).resolve().parent
GRADER_GLOBS = ("*.py", "*.toml", "*.json")
BATCH_MODULES = ("batch.py", "course_cli.py", "course_report.py", "course_slurm.py",
                 "similarity.py")


class GradeAllError(Exception):
    """The batch cannot start (a missing submission, two with one id, a bad folder): one line."""


@dataclasses.dataclass(frozen=True)
class Submission:
    """One submission: ``id`` (the folder name under OUT) and ``path`` (a zip or a folder)."""

    id: str
    path: Path


@dataclasses.dataclass
class Record:
    """What the batch knows about one submission (``OUT/<id>/grade-all.json``).

    status: one of :data:`STATUSES`. exit_code: the ``grade`` command's (None after a
    timeout). seconds: its wall time. reason: one line for anything but ``graded``.
    submission_sha256 / grader_sha256: what the grade was computed from.
    """

    id: str
    source: str
    status: str
    exit_code: Optional[int]
    seconds: float
    reason: str
    submission_sha256: str
    grader_sha256: str

    @classmethod
    def read(cls, folder: Path) -> Optional["Record"]:
        """The record in ``folder``, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, folder: Path) -> None:
        write_text(folder / RECORD_NAME, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class Task:
    """One grading to run: ``argv`` (run in ``cwd``) grades ``submission`` into ``work``."""

    submission: Submission
    work: Path
    argv: List[str]
    cwd: str
    submission_sha256: str
    grader_sha256: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a task's process ended: its exit code (None: killed at the time limit), seconds."""

    exit_code: Optional[int]
    seconds: float


# -- submissions --------------------------------------------------------------------------------

def find_submissions(paths: Sequence) -> List[Submission]:
    """The submissions named by ``paths``, sorted by id.

    A path is a zip (id: its name less ``hw2-`` and ``.zip``), a submission folder (one holding
    ``hw2/``; id: its name less ``hw2-``), or a folder of submissions: its zips and its
    submission folders (those holding ``hw2/``, or ``hw2-*/hw2/`` as an unpacked zip does), not
    recursively further.

    :raises GradeAllError: For a path that does not exist, a folder with no submission, or two
        submissions with the same id.
    """
    found: List[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() or (path.is_dir() and (path / "hw2").is_dir()):
            found.append(Submission(_id_of(path), path.absolute()))
        elif path.is_dir():
            inside = sorted(p for p in path.iterdir()
                            if (p.is_file() and p.suffix.lower() == ".zip")
                            or (p.is_dir() and _is_submission_folder(p)))
            if not inside:
                raise GradeAllError(f"{path} is neither a submission folder (no hw2/ in it) nor "
                                    "a folder of submissions (.zip files or submission folders)")
            found += [Submission(_id_of(p), p.absolute()) for p in inside]
        else:
            raise GradeAllError(f"submission {str(raw)!r} does not exist")
    by_id: Dict[str, Submission] = {}
    for sub in found:
        other = by_id.setdefault(sub.id, sub)
        if other is not sub and other.path != sub.path:
            raise GradeAllError(f"two submissions have the id {sub.id!r}: {other.path} and "
                                f"{sub.path}; rename one")
    return sorted(by_id.values(), key=lambda s: s.id)


def _is_submission_folder(path: Path) -> bool:
    """A folder holding ``hw2/``, or ``hw2-*/hw2/`` (an unpacked zip with its top folder)."""
    return (path / "hw2").is_dir() or any(p.is_dir() for p in path.glob("hw2-*/hw2"))


def _id_of(path: Path) -> str:
    """``hw2-123_456.zip`` -> ``123_456``; other names keep their letters, digits, ``._-``."""
    stem = path.name[:-len(path.suffix)] if path.suffix.lower() == ".zip" else path.name
    stem = re.sub(r"^hw2-", "", stem)
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "submission"
    return clean


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (their relative paths and bytes, sorted)."""
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(digest, path)
        return digest.hexdigest()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(item.relative_to(path).as_posix().encode("utf-8") + b"\0")
        _hash_file(digest, item)
    return digest.hexdigest()


def _hash_file(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def grader_sha256(rubric: Optional[Path], run_notebooks: bool = False) -> str:
    """SHA-256 of what a grade is computed from besides the submission: the grader's own files
    (this package, its default rubric), ``rubric`` when one is given, and whether the
    notebooks are re-executed."""
    digest = hashlib.sha256()
    here = GRADER_DIR
    for pattern in GRADER_GLOBS:
        for item in sorted(here.rglob(pattern)):
            if "__pycache__" not in item.parts and item.relative_to(here).as_posix() \
                    not in BATCH_MODULES:
                digest.update(item.relative_to(here).as_posix().encode("utf-8") + b"\0")
                _hash_file(digest, item)
    if rubric is not None:
        digest.update(b"rubric\0")
        _hash_file(digest, Path(rubric))
    if run_notebooks:
        digest.update(b"run-notebooks\0")
    return digest.hexdigest()


# -- planning -----------------------------------------------------------------------------------

def grade_command(submission: Path, out: Path, rubric: Optional[Path] = None,
                  run_notebooks: bool = False) -> List[str]:
    """The ``grade`` command line for one submission: this interpreter, and this project's
    ``cs236781`` when run in :func:`project_root` (``-m`` imports from the current folder;
    nothing is put on PYTHONPATH, which the sandboxed student code would inherit). Paths are
    absolute."""
    argv = [sys.executable, "-m", "cs236781", "grade", str(submission), "-o", str(out)]
    if rubric is not None:
        argv += ["--rubric", str(rubric)]
    if run_notebooks:
        argv.append("--run-notebooks")
    return argv


def project_root() -> str:
    """The folder holding this ``cs236781`` package (a child started there imports it)."""
    return str(Path(__file__).resolve().parents[2])


def plan(submissions: Sequence[Submission], out: Path, rubric: Optional[Path] = None,
         command: Callable[..., List[str]] = grade_command, run_notebooks: bool = False
         ) -> Tuple[List[Task], List[Submission]]:
    """Split ``submissions`` into tasks to run and those already graded (kept as they are).

    :param command: ``command(submission_path, work_folder, rubric, run_notebooks) -> argv``.
    :return: ``(tasks, kept)``.
    """
    grader = grader_sha256(rubric, run_notebooks)
    tasks, kept = [], []
    partial = out / PARTIAL_DIR
    for sub in submissions:
        digest = file_sha256(sub.path)
        old = Record.read(out / sub.id)
        if (old is not None and old.status in FINAL and old.submission_sha256 == digest
                and old.grader_sha256 == grader and (out / sub.id / RESULTS_NAME).is_file()):
            kept.append(sub)
            continue
        partial.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{sub.id}.", dir=partial))
        tasks.append(Task(sub, work, command(sub.path, work, rubric, run_notebooks),
                          project_root(), digest, grader))
    return tasks, kept


# -- running ------------------------------------------------------------------------------------

def run_task(task: Task, timeout_s: float) -> Outcome:
    """Run one task here (:func:`run_command`)."""
    return run_command(task.argv, task.cwd, task.work, timeout_s)


def run_command(argv: Sequence[str], cwd: str, work: Path, timeout_s: float,
                running: Optional[Set[int]] = None) -> Outcome:
    """Run ``argv`` in ``cwd`` in a session of its own, its output into ``work/grade.log``, and
    write its :class:`Outcome` to ``work/outcome.json``.

    At ``timeout_s`` the whole process group is killed (SIGKILL); after a normal end, whatever
    the command left running in its group is killed too, so no process outlives its task.

    :param running: The process group is in this set while the command runs (so that an
        interrupted batch can kill it).
    """
    running = set() if running is None else running
    work = Path(work)
    start = time.monotonic()
    log = work / LOG_NAME
    with open(log, "wb") as handle:
        proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        running.add(proc.pid)
        try:
            proc.wait(timeout=timeout_s)
            code: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_group(proc.pid)
            proc.wait()
            running.discard(proc.pid)
    _cut_log(log)
    outcome = Outcome(code, time.monotonic() - start)
    write_text(work / OUTCOME_NAME, json.dumps(dataclasses.asdict(outcome)) + "\n")
    return outcome


#: The command line a cluster job runs, less its one argument (:func:`job_spec`).
JOB_COMMAND = (sys.executable, "-m", "cs236781.grading.batch")


def job_spec(task: Task, timeout_s: float) -> str:
    """The argument of :data:`JOB_COMMAND` for ``task``: what :func:`run_command` needs, as
    JSON (a job needs nothing of the submitting process but the project's files)."""
    return json.dumps({"argv": list(task.argv), "cwd": task.cwd, "work": str(task.work),
                       "timeout_s": float(timeout_s)})


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m cs236781.grading.batch SPEC`` (a cluster job; SPEC from :func:`job_spec`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        spec = json.loads(args[0]) if len(args) == 1 else None
        run = (spec["argv"], spec["cwd"], Path(spec["work"]), float(spec["timeout_s"]))
    except (ValueError, KeyError, TypeError):
        print("usage: python -m cs236781.grading.batch SPEC (the JSON job_spec writes)",
              file=sys.stderr)
        return 2
    run_command(*run)
    return 0


def read_outcome(work: Path) -> Optional[Outcome]:
    """The outcome :func:`run_task` wrote into ``work`` (None: it never finished)."""
    try:
        data = json.loads((work / OUTCOME_NAME).read_text(encoding="utf-8"))
        return Outcome(data["exit_code"], float(data["seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _cut_log(log: Path) -> None:
    size = log.stat().st_size
    if size <= LOG_LIMIT:
        return
    with open(log, "rb") as handle:
        head = handle.read(LOG_LIMIT // 2)
        handle.seek(size - LOG_LIMIT // 2)
        tail = handle.read()
    log.write_bytes(head + f"\n[... {size - LOG_LIMIT} bytes cut ...]\n".encode() + tail)


def run_local(tasks: Sequence[Task], jobs: int, timeout_s: float,
              on_done: Callable[[Task, Outcome], None] = lambda task, outcome: None
              ) -> List[Outcome]:
    """Run ``tasks``, ``jobs`` at a time, each with its own time limit.

    If this is interrupted (Ctrl-C), the gradings running are killed with their process
    groups and no new one starts; the tasks that finished keep their results.

    :param on_done: Called (in the worker's thread) as each task ends.
    :return: One :class:`Outcome` per task, in order.
    """
    if not tasks:
        return []
    running: Set[int] = set()  # process groups of the gradings running now
    stopping = threading.Event()

    def one(task: Task) -> Optional[Outcome]:
        if stopping.is_set():
            return None
        outcome = run_command(task.argv, task.cwd, task.work, timeout_s, running)
        if not stopping.is_set():
            on_done(task, outcome)
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks))))
    futures = [pool.submit(one, task) for task in tasks]
    try:
        return [future.result() for future in futures]
    except BaseException:
        stopping.set()
        while not all(future.done() for future in futures):
            for pgid in list(running):
                _kill_group(pgid)
            time.sleep(0.05)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- finishing ----------------------------------------------------------------------------------

def finish(task: Task, outcome: Optional[Outcome], out: Path, timeout_s: float,
           failure: Optional[str] = None) -> Record:
    """Classify a finished task, write its record (and a results.json where the command left
    none), and move its folder to ``OUT/<id>``.

    :param outcome: How its process ended; None when its worker died before saying (a
        cluster job killed or cancelled).
    :param failure: The runner's one line about a worker that died (e.g. Slurm's state).
    """
    results = _read_results(task.work / RESULTS_NAME)
    code = outcome.exit_code if outcome is not None else None
    seconds = outcome.seconds if outcome is not None else 0.0
    if outcome is None:
        died = failure or "the worker ended without a word"
        status = TIMEOUT if "TIMEOUT" in died else CRASHED
        reason = f"the grading job died: {_one_line(died)}"
    elif code is None:
        status, reason = TIMEOUT, f"grading did not finish within {timeout_s:g} s; killed"
    elif code < 0:
        status, reason = CRASHED, f"the grading process was killed by {_signal_name(-code)}"
    elif code in (EXIT_GRADED, EXIT_NOT_GRADABLE) and results is not None:
        status = GRADED if code == EXIT_GRADED else NOT_GRADABLE
        reason = "" if code == EXIT_GRADED else _one_line(str(results.get("output", "")))
    else:
        status = ERROR
        why = (f"exit status {code}" if results is not None
               else f"exit status {code} and no readable {RESULTS_NAME}")
        reason = f"{why}: {_last_line(task.work / LOG_NAME)}"
    if status not in FINAL:
        _write_fallback_results(task.work, reason, seconds)
    record = Record(task.submission.id, str(task.submission.path), status, code,
                    round(seconds, 2), reason, task.submission_sha256, task.grader_sha256)
    record.write(task.work)
    _replace_folder(task.work, out / task.submission.id)
    return record


def _read_results(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "score" in data else None


def _write_fallback_results(folder: Path, reason: str, seconds: float) -> None:
    """A Gradescope results.json for a submission the ``grade`` command left without one."""
    data = {"score": 0.0, "execution_time": round(seconds, 2), "visibility": "after_published",
            "stdout_visibility": "hidden", "output": f"Not graded: {reason}", "tests": []}
    write_text(folder / RESULTS_NAME, json.dumps(data, indent=2) + "\n")


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an old ``target`` is removed only after the rename."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        lines = []
    return _one_line(lines[-1]) if lines else "it printed nothing"


# -- the whole batch ----------------------------------------------------------------------------

def grade_all(paths: Sequence, out, jobs: Optional[int] = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              rubric=None, run_notebooks: bool = False, slurm=None,
              similarity_threshold: Optional[float] = None,
              command: Callable[..., List[str]] = grade_command,
              progress: Optional[Callable[[str], None]] = print) -> List[Record]:
    """Grade every submission of ``paths`` into ``out``, then write the course's reports.

    :param paths: Zips, submission folders, or folders of zips (:func:`find_submissions`).
    :param out: The output folder (created).
    :param jobs: Submissions graded at once here (default: the number of CPU cores).
    :param timeout_s: Wall-time limit per submission, seconds (on Slurm: the array's limit).
    :param rubric: A rubric file for the ``grade`` command (default: its own).
    :param run_notebooks: Have the ``grade`` command re-execute the notebooks too.
    :param slurm: :class:`hw2.cluster.ClusterSettings` to grade as one submitit array instead.
    :param similarity_threshold: Report pairs of files at least this similar (0..1; default:
        :data:`cs236781.grading.similarity.DEFAULT_THRESHOLD`).
    :param command: Builds each submission's command line (default: the ``grade`` command).
    :param progress: Receives one line per finished submission; None for silence.
    :return: The records of every submission, sorted by id.
    :raises GradeAllError: When the batch cannot start.
    """
    say = progress or (lambda line: None)
    out = Path(out).absolute()
    rubric = Path(rubric).absolute() if rubric is not None else None
    if rubric is not None and not rubric.is_file():
        raise GradeAllError(f"rubric {str(rubric)!r} is not a file")
    if out.exists() and not out.is_dir():
        raise GradeAllError(f"output {str(out)!r} exists and is not a folder")
    submissions = find_submissions(paths)
    if not submissions:
        raise GradeAllError("no submissions given")
    out.mkdir(parents=True, exist_ok=True)
    with _batch_lock(out):
        return _run_batch(submissions, out, jobs, timeout_s, rubric, run_notebooks, slurm,
                          similarity_threshold, command, say)


def _run_batch(submissions, out, jobs, timeout_s, rubric, run_notebooks, slurm,
               similarity_threshold, command, say) -> List[Record]:
    from cs236781.grading import course_report, similarity

    _remove_leftovers(out)
    tasks, kept = plan(submissions, out, rubric, command, run_notebooks)
    say(f"grade-all: {len(submissions)} submission(s); {len(kept)} already graded and unchanged, "
        f"{len(tasks)} to grade" + (f" on {slurm.cluster or 'auto'} (submitit)" if slurm else
                                    f", {jobs or os.cpu_count() or 1} at a time"))

    def record_one(task: Task, outcome: Optional[Outcome], failure: Optional[str] = None):
        record = finish(task, outcome, out, timeout_s, failure)
        say(f"  {record.id}: {record.status} in {record.seconds:.1f} s"
            + (f" ({record.reason})" if record.reason else ""))

    try:
        if slurm is not None and tasks:
            from cs236781.grading.course_slurm import run_slurm

            for task, (outcome, failure) in zip(tasks, run_slurm(tasks, slurm, timeout_s, say)):
                record_one(task, outcome, failure)
        else:
            run_local(tasks, jobs or os.cpu_count() or 1, timeout_s, record_one)
    finally:
        for task in tasks:  # an interrupted batch leaves no half-graded folder behind
            shutil.rmtree(task.work, ignore_errors=True)
        _remove_leftovers(out)
    records = [Record.read(out / sub.id) for sub in submissions]
    records = [r for r in records if r is not None]
    course_report.write_reports(out, records)
    pairs = similarity.write_report(out, submissions, threshold=similarity_threshold)
    say(f"grade-all: wrote {out / course_report.CSV_NAME}, {out / course_report.SUMMARY_NAME}, "
        f"{out / course_report.PLOT_NAME} and {out / similarity.REPORT_NAME} "
        f"({len(pairs)} similar pair(s))")
    return records


@contextlib.contextmanager
def _batch_lock(out: Path):
    """Hold ``OUT/.grade-all.lock`` (flock) for the batch: a second grade-all into the same
    folder is refused instead of removing the first one's work in progress."""
    with open(out / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GradeAllError(f"another grade-all is writing into {out}; wait for it to end "
                                "or choose another output folder") from None
        yield


def _remove_leftovers(out: Path) -> None:
    """Folders of an interrupted earlier batch (``.partial/``, ``.ID.old-*``)."""
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    for item in out.glob(".*.old-*"):
        shutil.rmtree(item, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
