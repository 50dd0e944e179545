"""A course's grades in three files: ``grades.csv``, ``summary.md`` and ``summary.png``.

Everything here is read from each submission's ``OUT/<id>/results.json`` (Gradescope's
format, as the ``grade`` command writes it) and its batch record (status, reason). Items are
told apart by ``number``; an item's part is its first tag.

- ``grades.csv``: one row per submission: id, status, the score of each part (the column is
  the part's tag up to a colon: ``Part 1``), total, maximum, seconds, and the reason for
  anything but ``graded``.
- ``summary.md``: how many submissions ended in each status (and which need a look), the
  distribution of totals as a histogram, the mean of each part, and each item's pass rate
  and mean score (over the graded submissions).
- ``summary.png``: the histogram of totals and the pass rate of each item.

Totals count ``graded`` and ``not-gradable`` submissions (the latter score what their
results.json says, normally 0); a ``timeout``, ``crashed`` or ``error`` is listed for a human
and left out of the statistics.
"""
import csv
import io
import json
import math
import re
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from cs236781.atomic import atomic_path, write_text

__all__ = ["CSV_NAME", "SUMMARY_NAME", "PLOT_NAME", "Grade", "load_grades", "grades_csv",
           "summary_markdown", "write_reports"]

CSV_NAME, SUMMARY_NAME, PLOT_NAME = "grades.csv", "summary.md", "summary.png"
#: Statuses whose totals enter the statistics.
SCORED = ("graded", "not-gradable")
#: Width of a histogram bin, in points.
BIN_POINTS = 10


class Grade:
    """One submission's grade: its record and its results.json (``results``; empty when none).

    id, status, reason, seconds: from the batch record. tests: results.json's items.
    """

    def __init__(self, record, results: dict):
        self.id, self.status, self.reason = record.id, record.status, record.reason
        self.seconds = record.seconds
        self.results = results
        self.tests: List[dict] = [t for t in results.get("tests", []) if isinstance(t, dict)]

    def __repr__(self) -> str:
        return f"Grade({self.id!r}, {self.status!r}, total={self.total})"

    @property
    def total(self) -> float:
        return _number(self.results.get("score", 0.0))

    @property
    def max_score(self) -> Optional[float]:
        if "max_score" in self.results:
            return _number(self.results["max_score"])
        return sum(_number(t.get("max_score", 0)) for t in self.tests) if self.tests else None

    def part_scores(self) -> Dict[str, float]:
        """Score per part (an item's first tag; ``other`` without tags)."""
        scores: Dict[str, float] = {}
        for test in self.tests:
            part = _part(test)
            scores[part] = scores.get(part, 0.0) + _number(test.get("score", 0))
        return scores


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _part(test: dict) -> str:
    tags = test.get("tags") or []
    return str(tags[0]) if isinstance(tags, list) and tags else "other"


def _item_key(number) -> Tuple:
    """``"2.10"`` after ``"2.9"``: numbers compare part by part, as integers where they are."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.split(r"[.\s]+", str(number)) if p)


def load_grades(out: Path, records: Sequence) -> List[Grade]:
    """Each record's grade, with ``OUT/<id>/results.json`` (an unreadable one counts as empty)."""
    grades = []
    for record in records:
        try:
            results = json.loads((Path(out) / record.id / "results.json").read_text("utf-8"))
        except (OSError, ValueError):
            results = {}
        grades.append(Grade(record, results if isinstance(results, dict) else {}))
    return grades


def _parts(grades: Sequence[Grade]) -> List[str]:
    """Every part seen, in the order of its first item's number."""
    first: Dict[str, Tuple] = {}
    for grade in grades:
        for test in grade.tests:
            key = _item_key(test.get("number", ""))
            part = _part(test)
            if part not in first or key < first[part]:
                first[part] = key
    return sorted(first, key=lambda part: (first[part], part))


def grades_csv(grades: Sequence[Grade]) -> str:
    """The text of ``grades.csv``."""
    parts = _parts(grades)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "status", *(_short(p) for p in parts), "total", "max_score",
                     "seconds", "reason"])
    for grade in grades:
        scores = grade.part_scores()
        max_score = grade.max_score
        writer.writerow([grade.id, grade.status, *(_fmt(scores.get(p, 0.0)) for p in parts),
                         _fmt(grade.total), "" if max_score is None else _fmt(max_score),
                         f"{grade.seconds:.1f}", grade.reason])
    return buffer.getvalue()


def _short(part: str) -> str:
    """A part's column name: its tag up to a colon (``Part 1: layers`` -> ``Part 1``)."""
    return part.split(":", 1)[0].strip() or part


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def _items(grades: Sequence[Grade]) -> List[dict]:
    """Per item over the graded submissions: number, name, part, points, passed, n, mean."""
    items: Dict[str, dict] = {}
    graded = [g for g in grades if g.status == "graded"]
    for grade in graded:
        for test in grade.tests:
            number = str(test.get("number", test.get("name", "?")))
            item = items.setdefault(number, dict(number=number, name=str(test.get("name", "")),
                                                 part=_part(test), points=0.0, passed=0, n=0,
                                                 total=0.0))
            item["points"] = max(item["points"], _number(test.get("max_score", 0)))
            item["n"] += 1
            item["total"] += _number(test.get("score", 0))
            item["passed"] += test.get("status") == "passed"
    return sorted(items.values(), key=lambda item: _item_key(item["number"]))


def _histogram(totals: Sequence[float], top: float) -> List[Tuple[str, int]]:
    """Bins of :data:`BIN_POINTS` from 0 to ``top`` (the last one closed): (label, count)."""
    n_bins = max(1, math.ceil(top / BIN_POINTS))
    counts = [0] * n_bins
    for total in totals:
        counts[min(n_bins - 1, max(0, int(total // BIN_POINTS)))] += 1
    labels = [f"{i * BIN_POINTS:g}-{min(top, (i + 1) * BIN_POINTS):g}" for i in range(n_bins)]
    return list(zip(labels, counts))


def summary_markdown(grades: Sequence[Grade]) -> str:
    """The text of ``summary.md``."""
    lines = ["# Grades: summary", ""]
    by_status: Dict[str, List[Grade]] = {}
    for grade in grades:
        by_status.setdefault(grade.status, []).append(grade)
    lines.append(f"{len(grades)} submission(s): " + ", ".join(
        f"{len(gs)} {status}" for status, gs in sorted(by_status.items())) + ".")
    lines.append("")
    attention = [g for g in grades if g.status != "graded"]
    if attention:
        lines += ["## Need a look", "", "| id | status | reason |", "|---|---|---|"]
        lines += [f"| {g.id} | {g.status} | {_cell(g.reason)} |" for g in attention]
        lines.append("")
    scored = [g for g in grades if g.status in SCORED]
    lines += ["## Totals", ""]
    if not scored:
        lines += ["No submission was graded.", ""]
        return "\n".join(lines)
    totals = [g.total for g in scored]
    top = max([g.max_score or 0.0 for g in scored] + totals + [BIN_POINTS])
    lines.append(f"Over {len(scored)} submission(s) (out of {_fmt(top)}): mean "
                 f"{statistics.fmean(totals):.1f}, median {statistics.median(totals):.1f}, "
                 f"min {_fmt(min(totals))}, max {_fmt(max(totals))}.")
    lines += ["", "```"]
    histogram = _histogram(totals, top)
    width = max(len(label) for label, _ in histogram)
    for label, count in histogram:
        lines.append(f"{label:>{width}} | {'#' * count} {count}")
    lines += ["```", ""]
    parts = _parts(scored)
    if parts:
        lines += ["## Parts (mean score)", "", "| part | mean |", "|---|---|"]
        lines += [f"| {p} | {statistics.fmean(g.part_scores().get(p, 0.0) for g in scored):.2f} |"
                  for p in parts]
        lines.append("")
    items = _items(grades)
    if items:
        lines += ["## Items (over the graded submissions)", "",
                  "| # | item | part | points | passed | pass rate | mean score |",
                  "|---|---|---|---|---|---|---|"]
        for item in items:
            lines.append(f"| {item['number']} | {_cell(item['name'])} | {_cell(item['part'])} | "
                         f"{_fmt(item['points'])} | {item['passed']}/{item['n']} | "
                         f"{100.0 * item['passed'] / item['n']:.0f}% | "
                         f"{item['total'] / item['n']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write_plot(path: Path, grades: Sequence[Grade]) -> None:
    """``summary.png``: the histogram of totals and each item's pass rate."""
    from matplotlib.figure import Figure

    scored = [g for g in grades if g.status in SCORED]
    items = _items(grades)
    fig = Figure(figsize=(11, max(4.0, 0.22 * len(items) + 1.5)), layout="constrained")
    hist_ax, items_ax = fig.subplots(1, 2, width_ratios=[1, 1.3])
    if scored:
        totals = [g.total for g in scored]
        top = max([g.max_score or 0.0 for g in scored] + totals + [BIN_POINTS])
        bins = [min(top, i * BIN_POINTS) for i in range(math.ceil(top / BIN_POINTS) + 1)]
        hist_ax.hist(totals, bins=bins, color="tab:blue", edgecolor="white")
        hist_ax.set_xlim(0, top)
    hist_ax.set(title=f"Totals ({len(scored)} submissions)", xlabel="points",
                ylabel="submissions")
    if items:
        labels = [f"{item['number']} {item['name'][:40]}" for item in items]
        rates = [100.0 * item["passed"] / item["n"] for item in items]
        items_ax.barh(range(len(items)), rates, color="tab:green")
        items_ax.set_yticks(range(len(items)), labels, fontsize=7)
        items_ax.invert_yaxis()
    items_ax.set(title="Pass rate per item (graded submissions)", xlabel="% passed", xlim=(0, 100))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def write_reports(out, records: Sequence) -> List[Grade]:
    """Write ``grades.csv``, ``summary.md`` and ``summary.png`` into ``out``."""
    out = Path(out)
    grades = load_grades(out, records)
    write_text(out / CSV_NAME, grades_csv(grades))
    write_text(out / SUMMARY_NAME, summary_markdown(grades))
    write_plot(out / PLOT_NAME, grades)
    return grades
