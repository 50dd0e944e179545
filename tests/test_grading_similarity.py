"""The similarity report (cs236781.grading.similarity) on a small reference of its own.

The reference here has one student file, ``hw2/solver.py``, with one solution block. The
submissions are written so that which pairs share code is known: a solution and its copy with
renamed variables and added comments (reported, on the lines of the block), the same text in a
zip (reported: identical), an independent solution and the untouched hand-out (not reported
with anyone: the hand-out's code is boilerplate).
"""
import re
import zipfile
from pathlib import Path

import pytest

from cs236781.answers import BEGIN_MARKER, END_MARKER
from cs236781.grading.batch import Submission
from cs236781.grading.similarity import (REFERENCE_ID, find_similar, similarity_markdown,
                                         student_files)

HEADER = '''"""A module the students complete."""
import math


def helper_given_to_everyone(items):
    """Code of the hand-out: identical in every submission, never evidence."""
    total = 0
    for position, item in enumerate(items):
        total += position * item - len(items) // 2
    if total < 0:
        total = -total * 3 + len(str(items))
    return sorted(set(items), reverse=True)[: max(1, total % 7)]


def solve(values, weights, steps=10):
    """Weighted running statistics of ``values``."""
    {begin}
'''
FOOTER = '''    {end}
    return result
'''
SOLUTION = '''    result = []
    acc, norm = 0.0, 0.0
    for step in range(steps):
        for value, weight in zip(values, weights):
            acc += weight * math.exp(-step / (1 + abs(value)))
            norm += weight * (step + 1)
        if norm > 0:
            result.append(acc / norm)
        else:
            result.append(float("nan"))
        acc = acc * 0.5 + math.sqrt(abs(acc)) / (step + 2)
    best = max(result) if result else None
    result = [r - best for r in result] if best is not None else result
'''
COPIED = '''    result = []
    # my own accumulator
    total, denom = 0.0, 0.0
    for k in range(steps):
        for v, w in zip(values, weights):
            total += w * math.exp(-k / (1 + abs(v)))
            denom += w * (k + 1)
        if denom > 0:
            result.append(total / denom)
        else:
            result.append(float("nan"))
        # decay
        total = total * 0.5 + math.sqrt(abs(total)) / (k + 2)
    top = max(result) if result else None
    result = [r - top for r in result] if top is not None else result
'''
INDEPENDENT = '''    pairs = list(zip(values, weights))
    result = []
    running = 1.0
    for i in range(1, steps + 1):
        weighted = [w / (i + abs(v)) for v, w in pairs]
        running = 0.9 * running + 0.1 * (sum(weighted) / max(len(weighted), 1))
        result.append(round(running ** (1.0 / i), 6))
'''
REFERENCE = '''    result = [sum(w * math.cos(v * s) for v, w in zip(values, weights)) for s in range(steps)]
    result = [x / (1 + i * i) for i, x in enumerate(result)]
'''


def module(block: str) -> str:
    return (HEADER.format(begin=BEGIN_MARKER) + block + FOOTER.format(end=END_MARKER))


def handout() -> str:
    return HEADER.format(begin=BEGIN_MARKER) + "    raise NotImplementedError()\n" + \
        FOOTER.format(end=END_MARKER)


def block_lines(text: str):
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines, 1) if BEGIN_MARKER in ln) + 1
    last = next(i for i, ln in enumerate(lines, 1) if END_MARKER in ln) - 1
    return first, last


@pytest.fixture
def course(tmp_path):
    ref = tmp_path / "reference"
    (ref / "hw2").mkdir(parents=True)
    (ref / "hw2" / "solver.py").write_text(module(REFERENCE))
    (ref / "hw2" / "plain.py").write_text("def given():\n    return 1\n")  # no block: not compared
    subs = []
    for sub_id, text in (("11", module(SOLUTION)), ("22", module(COPIED)),
                         ("33", module(INDEPENDENT)), ("44", handout())):
        folder = tmp_path / f"hw2-{sub_id}"
        (folder / "hw2").mkdir(parents=True)
        (folder / "hw2" / "solver.py").write_text(text)
        (folder / "hw2" / "plain.py").write_text("def given():\n    return 1\n")
        subs.append(Submission(sub_id, folder))
    zipped = tmp_path / "hw2-55.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("hw2-55/hw2/solver.py", module(SOLUTION))
    subs.append(Submission("55", zipped))
    return ref, subs


def test_student_files_are_the_modules_with_solution_blocks(course):
    ref, _ = course
    assert student_files(ref) == ["hw2/solver.py"]


def test_copies_are_reported_on_their_shared_lines_and_nothing_else(course):
    ref, subs = course
    pairs = find_similar(subs, threshold=0.6, reference_root=ref)
    found = {(p.first, p.second): p for p in pairs}
    assert set(found) == {("11", "22"), ("11", "55"), ("22", "55")}
    assert all(p.file == "hw2/solver.py" for p in pairs)

    identical = found[("11", "55")]
    assert identical.first_share == identical.second_share == 1.0
    copied = found[("11", "22")]
    assert copied.first_share >= 0.6 and copied.second_share >= 0.6
    for text, ranges in ((module(SOLUTION), copied.first_lines),
                         (module(COPIED), copied.second_lines)):
        first, last = block_lines(text)
        covered = {n for a, b in ranges for n in range(a, b + 1)}
        block = set(range(first, last + 1))
        assert len(covered & block) >= 0.7 * len(block)
        # A fingerprint is a run of tokens: a shared range may reach a few lines past the
        # block; the hand-out's own function, further away, is never shared.
        helper = next(i for i, ln in enumerate(text.splitlines(), 1)
                      if "def helper_given_to_everyone" in ln)
        assert not covered & set(range(helper, helper + 6)), "the hand-out's code is shared"
        assert min(covered) >= first - 8 and max(covered) <= last + 3
    assert "math.exp(-step / (1 + abs(value)))" in copied.shared


def test_report_lists_pairs_and_says_when_there_are_none(course):
    ref, subs = course
    pairs = find_similar(subs, threshold=0.6, reference_root=ref)
    text = similarity_markdown(pairs, 0.6, ["hw2/solver.py"], len(subs))
    assert re.search(r"^### [123]\. 11 and 55 \(1 file\(s\)\)$", text, re.MULTILINE)
    assert re.search(r"^\| hw2/solver\.py \| 100% \| 100% \| [0-9]+-[0-9]+", text, re.MULTILINE)
    for loner in ("33", "44", REFERENCE_ID):
        assert f" {loner} and " not in text and f"and {loner} (" not in text
    assert text.count("None reaches the threshold.") == 1  # no submission matches the reference
    assert similarity_markdown([], 0.6, [], 3).count("None reaches the threshold.") == 2
    assert find_similar(subs[2:4], threshold=0.6, reference_root=ref) == []
