"""Build a student's submission zip, in the course's layout.

``hw2-ID1_ID2.zip`` holds one top folder ``hw2-ID1_ID2/`` with the assignment files (the
package, the course helpers, the executed notebooks, the experiment results) and
``hw2-ID1_ID2.html``: every notebook merged into one (:func:`~cs236781.jupyter_utils.nbmerge`)
and converted to HTML (:func:`~cs236781.jupyter_utils.nbconvert`), the file graders read. The
submission is refused (:class:`SubmissionError`) while a notebook carries an error output,
unless errors are explicitly allowed, and the zip is written atomically.
"""
import fnmatch
import numbers
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

from cs236781 import atomic
from cs236781 import notebooks as nbrun

#: What a submission contains, relative to the project root: folders are taken recursively,
#: other entries are glob patterns. Entries that do not exist are skipped.
SUBMISSION_CONTENTS = ("hw2", "cs236781", "Part*.ipynb", "results")
#: Never zipped: caches, editor droppings, model checkpoints.
SUBMISSION_EXCLUDE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store", "*.pt", "*.pth",
                      ".*.tmp", "*.egg-info")
NOTEBOOK_GLOB = "Part*.ipynb"
_ID_PATTERN = re.compile(r"^[0-9]+$")


class SubmissionError(Exception):
    """The submission cannot be made; the message says why and what to do."""


def submission_name(ids: Sequence, hw: str = "hw2") -> str:
    """The submission's name (the zip's stem and its top folder), e.g. ``hw2-123456789_987654321``.

    :param ids: Student IDs: numbers, as ints or digit strings (a string keeps leading zeros),
        at least one, no duplicates.
    :param hw: Assignment name.
    :raises SubmissionError: For a missing, malformed or repeated ID.
    """
    ids = list(ids or [])
    if not ids:
        raise SubmissionError("give at least one student ID with --id (repeat --id for each student)")
    texts = []
    for sid in ids:
        if isinstance(sid, numbers.Integral) and not isinstance(sid, bool) and sid >= 0:
            sid = str(int(sid))
        if not isinstance(sid, str) or not _ID_PATTERN.match(sid):
            raise SubmissionError(f"a student ID is a number (digits only), got {sid!r}")
        texts.append(sid)
    if len(set(texts)) != len(texts):
        raise SubmissionError(f"the same student ID was given twice: {', '.join(texts)}")
    return f"{hw}-{'_'.join(texts)}"


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


def error_report(paths: Sequence[Path]) -> List[str]:
    """``'<notebook> cell <i> [<n>]: <Error>: <message>'`` for every error output."""
    return [f"{Path(path).name} {err.describe()}" for path in paths for err in nbrun.find_errors(path)]


def check_notebooks(paths: Sequence[Path]) -> None:
    """Refuse notebooks with error outputs.

    :raises SubmissionError: Naming every notebook and cell with an error output.
    """
    problems = error_report(paths)
    if problems:
        raise SubmissionError(
            "refusing to create the submission because notebook cells raised errors ("
            + "; ".join(problems) + "). Fix the code, re-run the notebook(s) "
            "(python main.py run-nb NB_PATH) and try again, or pass --allow-errors.")


def prepare_submission(ids: Sequence, root=".", out_dir=None, skip_run: bool = False,
                       allow_errors: bool = False,
                       timeout: Optional[float] = nbrun.DEFAULT_CELL_TIMEOUT, hw: str = "hw2",
                       contents: Sequence[str] = SUBMISSION_CONTENTS,
                       progress: Optional[Callable[[str], None]] = print) -> Path:
    """Run the notebooks, check them, merge them into one HTML and zip the submission.

    :param ids: Student IDs; they name the zip and its top folder.
    :param root: Project root holding the package folders and ``Part*.ipynb``.
    :param out_dir: Where the zip goes (default: ``root``).
    :param skip_run: Use the notebooks as they are instead of executing them first.
    :param allow_errors: Run every cell even after one fails, and submit notebooks with error
        cells (a warning lists them). A timeout or a dead kernel still refuses.
    :param timeout: Per-cell timeout in seconds for the notebook run (0 or None: none).
    :param hw: Assignment name, the prefix of the submission's name.
    :param contents: What to zip, see :func:`collect_files`.
    :param progress: Receives progress lines; ``None`` for silence.
    :return: Path of the written zip.
    :raises SubmissionError: For bad IDs, a missing root or notebooks, or notebooks with errors.
    """
    from cs236781 import jupyter_utils

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
                              "the assignment's root folder or pass --hw-dir")
    if not skip_run:
        runs = nbrun.execute_notebooks(notebooks, stop_on_failure=not allow_errors,
                                       timeout=timeout, allow_errors=allow_errors,
                                       progress=progress)
        stopped = [r for r in runs if r.failure]
        if stopped:
            raise SubmissionError(
                f"refusing to create the submission: {stopped[0].path.name} did not finish "
                f"({stopped[0].failure}). Fix it and run prepare-submission again.")
    if allow_errors:
        for problem in error_report(notebooks):
            say(f"warning: submitting with an error output in {problem}")
    else:
        check_notebooks(notebooks)
    for path in notebooks:
        never_run = nbrun.unexecuted_cells(path)
        if never_run:
            say(f"warning: {path.name} has {len(never_run)} code cell(s) that were never executed")
    files = collect_files(root, contents)
    target = out_dir / f"{name}.zip"
    with tempfile.TemporaryDirectory(prefix=f".{name}.") as tmp:
        merged = jupyter_utils.nbmerge(notebooks, Path(tmp) / name)
        html = jupyter_utils.nbconvert(merged, to="html")
        _write_zip(root, files, html, name, target)
    say(f"wrote {target} ({len(files) + 1} files in {name}/, including {name}.html of "
        f"{len(notebooks)} merged notebooks; {target.stat().st_size / 1024:.0f} KiB)")
    return target


def _write_zip(root: Path, files: Sequence[Path], html: Path, name: str, target: Path) -> None:
    """Zip ``files`` (relative to ``root``) and the merged HTML under the top folder ``name/``."""
    with atomic.atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                zf.write(root / rel, arcname=f"{name}/{rel.as_posix()}")
            zf.write(html, arcname=f"{name}/{name}.html")


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    elif path.is_dir():
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                yield sub


def _excluded(rel: Path, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in patterns)
