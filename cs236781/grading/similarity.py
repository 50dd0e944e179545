"""Similar code across submissions, for a human to judge: ``OUT/similarity.md``.

copydetect (winnowed fingerprints of the tokenized code, as MOSS does) compares the *student
files* of every pair of submissions: the ``hw2/`` modules in which the reference solution has
solution blocks (found with :func:`cs236781.answers.count_solutions`, so the list follows the
code). Each file is compared only with the file of the same name in the other submissions and
in the reference solution. The hand-out's own version of each file (the reference with its
blocks stripped, :func:`cs236781.answers.strip_solutions`) is boilerplate: code every student
received counts for nothing. A pair is reported when either side's share of its code found
in the other reaches the threshold, with the shared line ranges and the shared lines.

Only the files needed are read from each zip (a member's declared size is checked before it is
read; nothing is extracted to disk but those files, under fresh names).
"""
import dataclasses
import re
from itertools import combinations
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cs236781.answers import count_solutions, strip_solutions
from cs236781.atomic import write_text
from cs236781.grading.batch import Submission, project_root

__all__ = ["REPORT_NAME", "DEFAULT_THRESHOLD", "REFERENCE_ID", "Pair", "student_files",
           "find_similar", "similarity_markdown", "write_report"]

REPORT_NAME = "similarity.md"
#: Report a pair when this share of one side's code (0..1) is found in the other.
DEFAULT_THRESHOLD = 0.6
#: The id of the reference solution among the compared submissions.
REFERENCE_ID = "(reference)"
#: A student file larger than this is not compared (bytes).
MAX_FILE_BYTES = 1 << 20
#: Shared lines quoted per pair, at most.
QUOTED_LINES = 40


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two submissions' versions of one file, and how much of each is in the other.

    first/second: submission ids. file: e.g. ``hw2/layers.py``. first_share/second_share:
    copydetect's similarity of each side (0..1). first_lines/second_lines: the shared line
    ranges, 1-based and inclusive. shared: the shared lines of ``first``, as text.
    """

    first: str
    second: str
    file: str
    first_share: float
    second_share: float
    first_lines: Tuple[Tuple[int, int], ...]
    second_lines: Tuple[Tuple[int, int], ...]
    shared: str


def student_files(root: Optional[Path] = None) -> List[str]:
    """The ``hw2/`` modules in which the reference at ``root`` has solution blocks."""
    package = Path(root or project_root()) / "hw2"
    names = []
    for path in sorted(package.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if count_solutions(source, str(path))[0] > 0:
            names.append(f"hw2/{path.name}")
    return names


def _read_zip_files(path: Path, names: Sequence[str]) -> Dict[str, str]:
    """The wanted files of a submission zip (at its root or under one top folder)."""
    found: Dict[str, str] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = re.sub(r"^[^/]+/(?=hw2/)", "", info.filename)
                if name in names and name not in found and not info.is_dir() \
                        and info.file_size <= MAX_FILE_BYTES:
                    data = archive.read(info)[:MAX_FILE_BYTES]
                    found[name] = data.decode("utf-8")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, NotImplementedError, RuntimeError,
            ValueError, EOFError):
        return found
    return found


def _read_folder_files(path: Path, names: Sequence[str]) -> Dict[str, str]:
    tops = [path] + sorted(p for p in path.glob("hw2-*") if p.is_dir())
    found: Dict[str, str] = {}
    for name in names:
        for top in tops:
            file = top / name
            if file.is_file() and not file.is_symlink() and file.stat().st_size <= MAX_FILE_BYTES:
                try:
                    found[name] = file.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    pass
                break
    return found


def _line_ranges(text: str, slices) -> Tuple[Tuple[int, int], ...]:
    """Character slices (copydetect's ``[starts, ends]``) as merged 1-based line ranges."""
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def line_of(offset: int) -> int:
        lo, hi = 0, len(starts)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if starts[mid] <= offset else (lo, mid)
        return lo + 1

    ranges: List[List[int]] = []
    for start, end in sorted(zip(slices[0], slices[1])):
        first, last = line_of(int(start)), line_of(max(int(start), int(end) - 1))
        if ranges and first <= ranges[-1][1] + 1:
            ranges[-1][1] = max(ranges[-1][1], last)
        else:
            ranges.append([first, last])
    return tuple((a, b) for a, b in ranges)


def _quote(text: str, ranges: Sequence[Tuple[int, int]]) -> str:
    lines = text.splitlines()
    quoted: List[str] = []
    for first, last in ranges:
        if quoted:
            quoted.append("...")
        quoted += [f"{n:4d}  {lines[n - 1]}" for n in range(first, min(last, len(lines)) + 1)]
    if len(quoted) > QUOTED_LINES:
        quoted = quoted[:QUOTED_LINES] + [f"... ({len(quoted) - QUOTED_LINES} more lines)"]
    return "\n".join(quoted)


def find_similar(submissions: Sequence, threshold: float = DEFAULT_THRESHOLD,
                 reference_root: Optional[Path] = None) -> List[Pair]:
    """Pairs of submissions (and the reference) whose student files are at least
    ``threshold`` similar, most similar first.

    Each distinct text of a file is fingerprinted and compared once: submissions that hold the
    same text of a file (copies of one another, or of the reference) share all of its code
    that is not the hand-out's.

    :param submissions: Objects with ``id`` and ``path`` (a zip or a folder).
    :param reference_root: The reference project (default: this one); its student files are
        compared too, under :data:`REFERENCE_ID`, and its hand-out is the boilerplate.
    """
    from copydetect import CopyDetector

    root = Path(reference_root or project_root())
    names = student_files(root)
    reference = _read_folder_files(root, names)
    holders: Dict[Tuple[str, str], List[str]] = {}  # (file, its text) -> submission ids
    for sub in [*submissions, Submission(REFERENCE_ID, root)]:
        path = Path(sub.path)
        files = reference if sub.id == REFERENCE_ID else (
            _read_zip_files(path, names) if path.is_file() else _read_folder_files(path, names))
        for name, source in files.items():
            holders.setdefault((name, source), []).append(sub.id)
    if len({i for ids in holders.values() for i in ids}) < 2 or not reference:
        return []  # nothing to compare (the reference alone, or no student files)
    with tempfile.TemporaryDirectory(prefix="hw2-similarity-") as tmp:
        tmp = Path(tmp)
        boiler, texts = tmp / "handout", tmp / "texts"
        for name, source in reference.items():
            _write(boiler / name, strip_solutions(source, name))
        paths: Dict[str, Tuple[str, str]] = {}  # copydetect's path -> (file, text)
        for index, (name, source) in enumerate(holders):
            path = texts / f"t{index:05d}" / name
            _write(path, source)
            paths[str(path)] = (name, source)
        detector = CopyDetector(test_dirs=[str(texts)], ref_dirs=[str(texts)],
                                boilerplate_dirs=[str(boiler)], extensions=["py"],
                                same_name_only=True, ignore_leaf=True, autoopen=False,
                                silent=True, display_t=threshold)
        detector.run()
        return _pairs(detector, paths, holders, threshold)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _pairs(detector, paths: Dict[str, Tuple[str, str]],
           holders: Dict[Tuple[str, str], List[str]], threshold: float) -> List[Pair]:
    """The pairs above the threshold, from copydetect's comparisons of distinct texts and, for
    submissions holding the same text, from that text compared with itself."""
    from copydetect import compare_files

    found: List[Tuple] = []  # (path a, path b, share a, share b, slices a, slices b)
    if len(detector.similarity_matrix):
        row = {path: i for i, path in enumerate(detector.test_files)}
        column = {path: j for j, path in enumerate(detector.ref_files)}
        compared = sorted(p for p in paths if p in detector.file_data)
        for path_a, path_b in combinations(compared, 2):
            if paths[path_a][0] != paths[path_b][0]:
                continue  # only a file with the file of the same name
            share_a, share_b = (float(v) for v in
                                detector.similarity_matrix[row[path_a], column[path_b]])
            if (path_a, path_b) in detector.slice_matrix:
                slices_a, slices_b = detector.slice_matrix[(path_a, path_b)]
            elif (path_b, path_a) in detector.slice_matrix:
                slices_b, slices_a = detector.slice_matrix[(path_b, path_a)]
            else:
                continue  # nothing in common
            if max(share_a, share_b) >= threshold:
                found.append((path_a, path_b, share_a, share_b, slices_a, slices_b))
    for path, (name, source) in paths.items():
        if len(holders[(name, source)]) > 1 and path in detector.file_data:
            data = detector.file_data[path]
            _, (share, _), (slices, _) = compare_files(data, data)
            if share >= threshold and len(slices[0]):
                found.append((path, path, float(share), float(share), slices, slices))
    pairs = []
    for path_a, path_b, share_a, share_b, slices_a, slices_b in found:
        key_a, key_b = paths[path_a], paths[path_b]
        text_a, text_b = key_a[1], key_b[1]
        lines_a, lines_b = _line_ranges(text_a, slices_a), _line_ranges(text_b, slices_b)
        for first in holders[key_a]:
            for second in holders[key_b]:
                if path_a == path_b and first >= second:
                    continue  # the same text: each pair of its holders once
                if second < first:  # a stable order: the smaller id first
                    pairs.append(Pair(second, first, key_a[0], share_b, share_a, lines_b,
                                      lines_a, _quote(text_b, lines_b)))
                else:
                    pairs.append(Pair(first, second, key_a[0], share_a, share_b, lines_a,
                                      lines_b, _quote(text_a, lines_a)))
    pairs.sort(key=lambda p: (-max(p.first_share, p.second_share), p.first, p.second, p.file))
    return pairs


def _ranges_text(ranges: Sequence[Tuple[int, int]]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def similarity_markdown(pairs: Sequence[Pair], threshold: float, files: Sequence[str],
                        n_submissions: int) -> str:
    """The text of ``similarity.md``: the pairs of submissions first (those sharing the most
    files, then the most code, first), then the submissions that match the reference; per
    pair a table of its files and each file's shared lines."""
    lines = ["# Similar code across submissions", "",
             f"{n_submissions} submission(s) and the reference solution {REFERENCE_ID}; files "
             f"compared (each with the same file elsewhere): {', '.join(files) or 'none'}. "
             "The hand-out's own code is ignored. A file is listed when at least "
             f"{threshold:.0%} of one side's code is found in the other. Similar is not "
             "copied: short, standard solutions look alike; read the shared lines.", ""]
    groups: Dict[Tuple[str, str], List[Pair]] = {}
    for pair in pairs:
        groups.setdefault((pair.first, pair.second), []).append(pair)
    ranked = sorted(groups.items(), key=lambda kv: (
        -len(kv[1]), -max(max(p.first_share, p.second_share) for p in kv[1]), kv[0]))
    students = [kv for kv in ranked if REFERENCE_ID not in kv[0]]
    reference = [kv for kv in ranked if REFERENCE_ID in kv[0]]
    n = 0
    for title, chosen in (("Pairs of submissions", students),
                          ("Submissions that match the reference solution", reference)):
        lines += [f"## {title}", ""]
        if not chosen:
            lines += ["None reaches the threshold.", ""]
        for (first, second), group in chosen:
            n += 1
            lines += [f"### {n}. {first} and {second} ({len(group)} file(s))", "",
                      f"| file | {first}: share | {second}: share | {first}: lines | "
                      f"{second}: lines |", "|---|---|---|---|---|"]
            for pair in sorted(group, key=lambda p: p.file):
                lines.append(f"| {pair.file} | {pair.first_share:.0%} | {pair.second_share:.0%} "
                             f"| {_ranges_text(pair.first_lines)} | "
                             f"{_ranges_text(pair.second_lines)} |")
            lines.append("")
            for pair in sorted(group, key=lambda p: p.file):
                lines += [f"Shared lines of {pair.file} in {first}:", "", "```python",
                          pair.shared, "```", ""]
    return "\n".join(lines)


def write_report(out, submissions: Sequence, threshold: Optional[float] = None) -> List[Pair]:
    """Write ``OUT/similarity.md``; without copydetect, a report saying so.

    :return: The pairs reported.
    """
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    try:
        pairs = find_similar(submissions, threshold)
        text = similarity_markdown(pairs, threshold, student_files(), len(submissions))
    except ImportError:
        pairs = []
        text = ("# Similar code across submissions\n\nNot computed: copydetect is not installed "
                "(pip install copydetect).\n")
    write_text(Path(out) / REPORT_NAME, text)
    return pairs
