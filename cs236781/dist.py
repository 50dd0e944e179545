"""Make the student hand-out from the reference solution.

Solution code is fenced in the reference by two comment lines, each alone on its line::

    def forward(self, x):
        # ====== YOUR CODE: ======
        out = x @ self.w.T + self.b
        # ====== END YOUR CODE ======
        return out

In the hand-out the marker lines stay (students see where to write) and everything between
them becomes a ``# TODO`` comment plus ``raise NotImplementedError()``, indented like the opening
marker. Markers must sit inside a function body, so the stripped module still imports and only
calling the function fails. Unbalanced, nested, malformed or misplaced markers are errors naming
the file and line. Files without markers are copied unchanged.

The written answers in ``hw2/answers.py`` (module-level string constants named ``partN_qM``) are
replaced by a placeholder, and every notebook is cleared of outputs and execution counts.
"""
import ast
import fnmatch
import io
import os
import re
import shutil
import tempfile
import tokenize
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

#: The opening and closing marker lines, as written in the reference code.
BEGIN_MARKER = "# ====== YOUR CODE: ======"
END_MARKER = "# ====== END YOUR CODE ======"
#: What replaces a solution block (after the opening marker's indentation).
TODO_LINE = "# TODO: implement this part (see the docstring above)."
RAISE_LINE = "raise NotImplementedError()"
#: Placeholder source for every written answer.
ANSWER_PLACEHOLDER = ('r"""\n**Your answer:**\n\n'
                      'Write your answer here in markdown; $\\LaTeX$ math is rendered too.\n"""')
#: Names of the answer constants that are replaced.
ANSWER_NAME = re.compile(r"^part\d+_q\d+$")

#: What the hand-out contains, relative to the source root: folders are taken recursively,
#: other entries are glob patterns. Entries that do not exist are skipped.
DIST_CONTENTS = ("hw2", "cs236781", "tests", "benchmarks", "Part*.ipynb", "README.md",
                 "pyproject.toml", "environment.yml", "Makefile", ".ci", "py-sbatch.sh",
                 ".gitignore", "main.py")
#: Never copied.
DIST_EXCLUDE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", ".DS_Store",
                ".pytest_cache")
#: Files whose answer constants are replaced.
ANSWER_FILES = ("hw2/answers.py",)
#: Folders created empty in the hand-out (students fill them).
EMPTY_DIRS = ("results",)

_BEGIN = re.compile(r"^#\s*=+\s*YOUR CODE:?\s*=+\s*$")
_END = re.compile(r"^#\s*=+\s*END YOUR CODE\s*=+\s*$")
_NEAR_MISS = re.compile(r"^#\s*=.*YOUR CODE", re.IGNORECASE)


class DistError(Exception):
    """The hand-out cannot be made; the message says why."""


class MarkerError(DistError):
    """Solution markers are unbalanced, nested, malformed or misplaced.

    filename, line: where (1-based line).
    """

    def __init__(self, filename: str, line: int, message: str):
        super().__init__(f"{filename}:{line}: {message}")
        self.filename, self.line = filename, line


class Block(NamedTuple):
    """A fenced solution block: marker lines (1-based) and the opening marker's indentation."""

    begin: int
    end: int
    indent: str


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


def find_blocks(source: str, filename: str = "<string>") -> List[Block]:
    """Locate the solution blocks of a Python source.

    Only comments count (marker text inside strings or docstrings is ignored).

    :param source: Python source code.
    :param filename: Used in error messages.
    :return: The blocks in file order.
    :raises MarkerError: For a marker that shares its line with code, a malformed marker, an
        opening marker inside an open block, a closing marker without an open block, or a
        block left open at the end of the file.
    :raises DistError: If the source cannot be tokenized.
    """
    blocks, open_at, indent = [], None, ""
    lines = source.splitlines()
    for line_no, col, text in _comments(source, filename):
        is_begin, is_end = bool(_BEGIN.match(text)), bool(_END.match(text))
        if not (is_begin or is_end):
            if _NEAR_MISS.match(text):
                raise MarkerError(filename, line_no, f"malformed solution marker {text!r}; write "
                                  f"{BEGIN_MARKER!r} and {END_MARKER!r} exactly")
            continue
        if lines[line_no - 1][:col].strip():
            raise MarkerError(filename, line_no, "a solution marker must be alone on its line")
        if is_begin:
            if open_at is not None:
                raise MarkerError(filename, line_no, f"nested solution marker: the block opened "
                                  f"at line {open_at} is not closed yet")
            open_at, indent = line_no, lines[line_no - 1][:col]
        else:
            if open_at is None:
                raise MarkerError(filename, line_no, "closing solution marker without an opening "
                                  f"{BEGIN_MARKER!r} before it")
            blocks.append(Block(open_at, line_no, indent))
            open_at = None
    if open_at is not None:
        raise MarkerError(filename, open_at, f"solution block is never closed (expected "
                          f"{END_MARKER!r} before the end of the file)")
    return blocks


def strip_solutions(source: str, filename: str = "<string>") -> Tuple[str, int]:
    """Replace every solution block's body with a TODO comment and ``raise NotImplementedError()``.

    :param source: Python source code.
    :param filename: Used in error messages.
    :return: ``(stripped source, number of blocks)``; the source is unchanged when it has none.
    :raises MarkerError: See :func:`find_blocks`; also when the stripped code does not compile or
        a block is not inside a function body (the module would then fail on import).
    """
    blocks = find_blocks(source, filename)
    if not blocks:
        return source, 0
    lines = source.splitlines(keepends=True)
    out, raise_lines, pos = [], {}, 0
    for block in blocks:
        out.extend(lines[pos:block.begin])
        out.append(f"{block.indent}{TODO_LINE}\n")
        out.append(f"{block.indent}{RAISE_LINE}\n")
        raise_lines[len(out)] = block
        pos = block.end - 1
    out.extend(lines[pos:])
    stripped = "".join(out)
    _check_raises_in_functions(stripped, filename, raise_lines)
    return stripped, len(blocks)


def strip_answers(source: str, filename: str = "<string>", pattern=ANSWER_NAME) -> Tuple[str, int]:
    """Replace the written answers (module-level string constants named like ``part1_q2``).

    :param source: Python source of an answers module.
    :param filename: Used in error messages.
    :param pattern: Regular expression the constant's name must match.
    :return: ``(new source, number of answers replaced)``.
    :raises DistError: If the source does not parse.
    """
    tree = _parse(source, filename)
    spans = []
    for node in tree.body:
        target, value = _assigned_name(node)
        if target and re.match(pattern, target) and isinstance(value, ast.Constant) \
                and isinstance(value.value, str):
            spans.append((value.lineno, value.col_offset, value.end_lineno, value.end_col_offset))
    if not spans:
        return source, 0
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = source
    for l0, c0, l1, c1 in reversed(spans):
        start = offsets[l0 - 1] + _char_col(lines[l0 - 1], c0)
        stop = offsets[l1 - 1] + _char_col(lines[l1 - 1], c1)
        text = text[:start] + ANSWER_PLACEHOLDER + text[stop:]
    _parse(text, filename)
    return text, len(spans)


def clear_notebook(nb) -> None:
    """Remove outputs, execution counts and run metadata from a notebook node, in place."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)


def prepare_dist(source=".", out="dist/hw2", contents: Sequence[str] = DIST_CONTENTS,
                 exclude: Sequence[str] = DIST_EXCLUDE, answer_files: Sequence[str] = ANSWER_FILES,
                 empty_dirs: Sequence[str] = EMPTY_DIRS, force: bool = False,
                 progress: Optional[Callable[[str], None]] = print) -> DistReport:
    """Write the student hand-out of the reference project at ``source`` into ``out``.

    Every file is checked before anything is written; the hand-out is built in a temporary
    folder beside ``out`` and renamed into place at the end.

    :param source: Root of the reference project.
    :param out: Hand-out folder. Must not exist (or be empty) unless ``force``.
    :param contents: Folders or glob patterns (relative to ``source``) to include.
    :param exclude: ``fnmatch`` patterns of path components never copied.
    :param answer_files: Files (relative paths) whose written answers are replaced.
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
    files = _collect(source, contents, exclude)
    _check_out(source, out, files, force)
    answer_files = {Path(a).as_posix() for a in answer_files}
    built, problems = {}, []
    for rel in files:
        try:
            built[rel] = _transform(source / rel, rel.as_posix(), rel.as_posix() in answer_files)
        except DistError as err:
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


def _transform(path: Path, name: str, is_answers: bool) -> Tuple[bytes, int, int]:
    """The hand-out bytes of one file, its number of stripped blocks and replaced answers."""
    if path.suffix == ".py":
        source = _read_text(path, name)
        answers = 0
        if is_answers:
            source, answers = strip_answers(source, name)
        source, n = strip_solutions(source, name)
        return source.encode("utf-8"), n, answers
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


def _comments(source: str, filename: str) -> Iterator[Tuple[int, int, str]]:
    """``(line, column, text)`` of every comment token."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.start[1], tok.string.rstrip()
    except (tokenize.TokenError, SyntaxError) as err:
        raise DistError(f"{filename}: cannot tokenize the source ({err})") from None


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as err:
        raise MarkerError(filename, err.lineno or 0, f"does not parse: {err.msg}") from None


def _check_raises_in_functions(source: str, filename: str, raise_lines: Dict[int, Block]) -> None:
    """Each inserted ``raise`` (keyed by its 1-based line) must lie directly in a function body."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as err:
        block = _block_near(raise_lines, err.lineno or 0)
        where = block.begin if block else (err.lineno or 0)
        raise MarkerError(filename, where, f"the stripped code does not compile ({err.msg}); "
                          "check that the block's markers are indented like its code") from None
    in_function = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, ast.Raise):
                    in_function.add(node.lineno)
    for line, block in raise_lines.items():
        if line not in in_function:
            raise MarkerError(filename, block.begin, "solution block is not inside a function "
                              "body: the hand-out module would fail on import")


def _block_near(raise_lines: Dict[int, Block], line: int) -> Optional[Block]:
    before = [k for k in raise_lines if k <= line + 1]
    return raise_lines[max(before)] if before else None


def _assigned_name(node) -> Tuple[Optional[str], Optional[ast.AST]]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        return node.target.id, node.value
    return None, None


def _char_col(line: str, byte_col: int) -> int:
    """ast column offsets count UTF-8 bytes; convert to a character index."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


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
