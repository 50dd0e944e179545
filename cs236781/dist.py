"""Make the student hand-out from the reference solution.

Every Python file is stripped with :func:`cs236781.answers.strip_solutions` (the one
implementation of the stripping: solution blocks become ``raise NotImplementedError()`` and
written answers a placeholder; see that module for the marker rules), every notebook is cleared
of outputs and execution counts, and every other file is copied byte for byte, among them the
reference tensors of ``tests/assets/`` and their manifest. The grader (``cs236781/grading/``,
its rubric, tests and benchmark: :data:`GRADER_EXCLUDE`) is left out. Problems in several
files are reported together and nothing is written then.
"""
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from cs236781.answers import MarkerError, strip_solutions, count_solutions
from cs236781.notebooks import clear_notebook

#: What the hand-out contains, relative to the source root: folders are taken recursively,
#: other entries are glob patterns. Entries that do not exist are skipped.
DIST_CONTENTS = ("hw2", "cs236781", "tests", "benchmarks", "Part*.ipynb", "README.md",
                 "pyproject.toml", "environment.yml", "Makefile", ".ci", "py-sbatch.sh",
                 ".gitignore", "main.py")
#: The course staff's grader, never in the hand-out (path components, as ``DIST_EXCLUDE``):
#: its package (with the rubric and the probes), its tests and their helpers, its benchmark.
GRADER_EXCLUDE = ("grading", "grading_*.py", "test_grade*.py", "test_grader*.py",
                  "test_grading*.py", "bench_grader*.py")
#: Never copied.
DIST_EXCLUDE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".DS_Store",
                ".pytest_cache") + GRADER_EXCLUDE
#: Folders created empty in the hand-out (students fill them).
EMPTY_DIRS = ("results",)


class DistError(Exception):
    """The hand-out cannot be made; the message says why."""


class DistReport(NamedTuple):
    """What :func:`prepare_dist` produced.

    out: the hand-out folder.
    files: files written, relative to ``out``.
    blocks: number of solution blocks stripped per file (files with blocks only).
    answers: number of written answers replaced.
    notebooks: number of notebooks cleared.
    """

    out: Path
    files: List[Path]
    blocks: Dict[str, int]
    answers: int
    notebooks: int


def prepare_dist(source=".", out="dist/hw2", contents: Sequence[str] = DIST_CONTENTS,
                 exclude: Sequence[str] = DIST_EXCLUDE, empty_dirs: Sequence[str] = EMPTY_DIRS,
                 force: bool = False, progress: Optional[Callable[[str], None]] = print) -> DistReport:
    """Write the student hand-out of the reference project at ``source`` into ``out``.

    Every file is checked before anything is written; the hand-out is built in a temporary
    folder beside ``out`` and renamed into place at the end.

    :param source: Root of the reference project (it must hold the ``hw2/`` package).
    :param out: Hand-out folder. Must not exist (or be empty) unless ``force``.
    :param contents: Folders or glob patterns (relative to ``source``) to include.
    :param exclude: ``fnmatch`` patterns of path components never copied.
    :param empty_dirs: Folders created empty in the hand-out.
    :param force: Replace an existing, non-empty ``out``.
    :param progress: Receives progress lines; ``None`` for silence.
    :return: A :class:`DistReport`.
    :raises DistError: For a bad source or output folder, or any marker problem (all files'
        problems are listed together).
    """
    say = progress or (lambda line: None)
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_dir():
        raise DistError(f"source {str(source)!r} is not a folder")
    if not (source / "hw2").is_dir():
        raise DistError(f"source {str(source)!r} has no hw2/ folder: give the root of the "
                        "reference project (the folder holding hw2/ and the notebooks)")
    files = _collect(source, contents, exclude)
    _check_out(source, out, files, force)
    built, problems = {}, []
    for rel in files:
        try:
            built[rel] = _transform(source / rel, rel.as_posix())
        except (DistError, MarkerError) as err:
            problems.append(str(err))
    if problems:
        raise DistError("cannot make the hand-out: " + "; ".join(problems))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=str(out.parent)))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for rel, (data, _, _) in built.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            shutil.copymode(source / rel, dest)
        for name in empty_dirs:
            (tmp / name).mkdir(parents=True, exist_ok=True)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    blocks = {rel.as_posix(): n for rel, (_, n, _) in built.items() if n}
    report = DistReport(out, list(built), blocks,
                        sum(k for _, _, k in built.values()),
                        sum(1 for rel in built if rel.suffix == ".ipynb"))
    say(f"wrote the hand-out to {out}: {len(report.files)} files, "
        f"{sum(blocks.values())} solution blocks stripped in {len(blocks)} files, "
        f"{report.answers} answers replaced, {report.notebooks} notebooks cleared")
    for name, n in sorted(blocks.items()):
        say(f"  {name}: {n} block(s)")
    return report


def _transform(path: Path, name: str) -> Tuple[bytes, int, int]:
    """The hand-out bytes of one file, its number of stripped blocks and replaced answers."""
    if path.suffix == ".py":
        source = _read_text(path, name)
        n_blocks, n_answers = count_solutions(source, name)
        return strip_solutions(source, name).encode("utf-8"), n_blocks, n_answers
    if path.suffix == ".ipynb":
        import nbformat

        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as err:
            raise DistError(f"{name}: not a readable notebook ({err})") from None
        clear_notebook(nb)
        return (nbformat.writes(nb) + "\n").encode("utf-8"), 0, 0
    return path.read_bytes(), 0, 0


def _read_text(path: Path, name: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise DistError(f"{name}: not UTF-8 text ({err})") from None


def _collect(root: Path, contents: Sequence[str], exclude: Sequence[str]) -> List[Path]:
    found = set()
    for entry in contents:
        for match in sorted(root.glob(entry)):
            paths = [match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())
            for path in paths:
                rel = path.relative_to(root)
                if not any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in exclude):
                    found.add(rel)
    return sorted(found)


def _check_out(source: Path, out: Path, files: Sequence[Path], force: bool) -> None:
    if out == source or out in source.parents:
        raise DistError(f"output folder {out} would contain the source {source}; choose another")
    tops = {source / rel.parts[0] for rel in files}
    if any(out == top or top in out.parents for top in tops):
        raise DistError(f"output folder {out} lies inside a folder that is copied into the "
                        "hand-out; choose a folder outside it (the default is dist/hw2)")
    if out.exists() and not out.is_dir():
        raise DistError(f"output {out} exists and is not a folder")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DistError(f"cannot write the hand-out to {out}: {blocker} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DistError(f"output folder {out} is not empty; remove it or pass --force to replace it")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, replacing an existing ``out`` only at the end."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=str(out.parent)))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
