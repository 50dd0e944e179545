"""Build a student's submission zip: ``hw2-ID1_ID2.zip``.

The zip holds the assignment package, the course helpers, the executed notebooks and the
experiment results. It is refused (:class:`SubmissionError`) while any notebook carries an error
output, and written atomically: a temporary file in the output folder, renamed at the end.
"""
import fnmatch
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

from cs236781 import notebooks as nbrun

#: What a submission contains, relative to the project root: folders are taken recursively,
#: other entries are glob patterns. Entries that do not exist are skipped.
SUBMISSION_CONTENTS = ("hw2", "cs236781", "Part*.ipynb", "results")
#: Never zipped: caches, editor droppings, model checkpoints.
SUBMISSION_EXCLUDE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store", "*.pt", "*.pth",
                      ".*.tmp", "*.egg-info")
NOTEBOOK_GLOB = "Part*.ipynb"
_ID_PATTERN = re.compile(r"^[0-9A-Za-z]+$")


class SubmissionError(Exception):
    """The submission cannot be made; the message says why and what to do."""


def submission_name(ids: Sequence[str], hw: str = "hw2") -> str:
    """The zip's file name, e.g. ``hw2-123456789_987654321.zip``.

    :param ids: Student IDs (letters and digits only, no duplicates, at least one).
    :param hw: Assignment name.
    :raises SubmissionError: For a missing, malformed or repeated ID.
    """
    ids = list(ids or [])
    if not ids:
        raise SubmissionError("give at least one student ID with --id (repeat --id for each student)")
    for sid in ids:
        if not isinstance(sid, str) or not _ID_PATTERN.match(sid):
            raise SubmissionError(f"student ID must consist of letters and digits only, got {sid!r}")
    if len(set(ids)) != len(ids):
        raise SubmissionError(f"the same student ID was given twice: {', '.join(ids)}")
    return f"{hw}-{'_'.join(ids)}.zip"


def find_notebooks(root) -> List[Path]:
    """The assignment notebooks (``Part*.ipynb``) in ``root``, sorted by name."""
    return sorted(Path(root).glob(NOTEBOOK_GLOB))


def collect_files(root, contents: Sequence[str] = SUBMISSION_CONTENTS,
                  exclude: Sequence[str] = SUBMISSION_EXCLUDE) -> List[Path]:
    """The files to zip, relative to ``root``, sorted.

    :param root: Project root.
    :param contents: Folders (taken recursively) or glob patterns relative to ``root``.
    :param exclude: ``fnmatch`` patterns; a file is dropped when any part of its path matches.
    """
    root = Path(root)
    found = set()
    for entry in contents:
        for match in sorted(root.glob(entry)):
            for path in _walk(match):
                rel = path.relative_to(root)
                if not _excluded(rel, exclude):
                    found.add(rel)
    return sorted(found)


def check_notebooks(paths: Sequence[Path]) -> None:
    """Refuse notebooks with error outputs.

    :raises SubmissionError: Naming every notebook and cell with an error output.
    """
    problems = []
    for path in paths:
        for err in nbrun.find_errors(path):
            problems.append(f"{Path(path).name} {err.describe()}")
    if problems:
        raise SubmissionError(
            "refusing to create the submission because notebook cells raised errors ("
            + "; ".join(problems) + "). Fix the code, re-run the notebook(s) "
            "(python -m cs236781 run-nb NOTEBOOK) and try again.")


def prepare_submission(ids: Sequence[str], root=".", out_dir=None, skip_run: bool = False,
                       timeout: Optional[float] = nbrun.DEFAULT_CELL_TIMEOUT, hw: str = "hw2",
                       contents: Sequence[str] = SUBMISSION_CONTENTS,
                       progress: Optional[Callable[[str], None]] = print) -> Path:
    """Run the notebooks, check them and zip the submission.

    :param ids: Student IDs; they name the zip.
    :param root: Project root holding the package folders and ``Part*.ipynb``.
    :param out_dir: Where the zip goes (default: ``root``).
    :param skip_run: Zip the notebooks as they are instead of executing them first.
    :param timeout: Per-cell timeout in seconds for the notebook run (0 or None: none).
    :param hw: Assignment name, the zip's prefix.
    :param contents: What to zip, see :func:`collect_files`.
    :param progress: Receives progress lines; ``None`` for silence.
    :return: Path of the written zip.
    :raises SubmissionError: For bad IDs, a missing root or notebooks, or notebooks with errors.
    """
    say = progress or (lambda line: None)
    name = submission_name(ids, hw)
    root = Path(root)
    if not root.is_dir():
        raise SubmissionError(f"project root {str(root)!r} is not a folder")
    out_dir = Path(out_dir) if out_dir is not None else root
    if not out_dir.is_dir():
        raise SubmissionError(f"output folder {str(out_dir)!r} does not exist")
    notebooks = find_notebooks(root)
    if not notebooks:
        raise SubmissionError(f"no {NOTEBOOK_GLOB} notebooks in {root.resolve()}: run this from "
                              "the assignment's root folder or pass --root")
    if not skip_run:
        runs = nbrun.execute_notebooks(notebooks, stop_on_failure=True, timeout=timeout,
                                       progress=progress)
        stopped = [r for r in runs if r.failure]
        if stopped:
            raise SubmissionError(
                f"refusing to create the submission: {stopped[0].path.name} did not finish "
                f"({stopped[0].failure}). Fix it and run prepare-submission again.")
    check_notebooks(notebooks)
    for path in notebooks:
        never_run = nbrun.unexecuted_cells(path)
        if never_run:
            say(f"warning: {path.name} has {len(never_run)} code cell(s) that were never executed")
    files = collect_files(root, contents)
    target = out_dir / name
    _write_zip(root, files, target)
    say(f"wrote {target} ({len(files)} files, {target.stat().st_size / 1024:.0f} KiB)")
    return target


def _write_zip(root: Path, files: Sequence[Path], target: Path) -> None:
    """Zip ``files`` (relative to ``root``) into ``target`` via a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                zf.write(root / rel, arcname=rel.as_posix())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                yield sub


def _excluded(rel: Path, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in patterns)
