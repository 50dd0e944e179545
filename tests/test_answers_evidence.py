"""Every figure the Part 2, 3 and 5 answers cite is in a result file the answer names.

An answer names its sources as paths under ``results/evidence/`` (written by ``make evidence``,
``python -m evidence``). Every number in the answer's prose is looked up in those files at the
precision it is printed with: ``93.1%`` needs a value that prints as ``93.1`` with one decimal,
``$1.8\\cdot10^{-6}$`` one that prints as ``1.8e-06`` (and a bare ``$10^{-2}$`` one that
prints as ``1e-02``). Not looked up: numbers inside code spans
(commands, identifiers such as ``exp1_1_L2_K32``), references to questions, parts and
experiments, labels of populations and classes, list numbering, image and kernel shapes (``8x8``), LaTeX formulas (apart from the
``a\\cdot10^{b}`` figures in them) and the worked example of ``part2_q2`` (checked by
arithmetic below instead).
"""
import json
import math
import re
from pathlib import Path

import pytest

import hw2.answers as answers

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "evidence" / "__main__.py").is_file():
    # The student hand-out (cs236781.dist) replaces the answers by placeholders and ships no
    # evidence/; in this repository the folder is always there and every test below runs.
    pytest.skip("the reference answers and evidence/ are not part of the student hand-out",
                allow_module_level=True)
EVIDENCE_DIR = ROOT / "results" / "evidence"
CHECKED = ["part2_q1", "part2_q2", "part2_q3", "part3_q1", "part3_q2", "part3_q3", "part3_q4",
           "part5_q1", "part5_q2", "part5_q3", "part5_q4", "part5_q5"]
#: Answers without figures of their own need not name a file.
NO_FIGURES = {"part2_q3", "part3_q3"}

_SOURCE = re.compile(r"results/evidence/[\w.-]+\.json")
_CODE = re.compile(r"`[^`]*`")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)
_SCIENTIFIC = re.compile(r"(\d+(?:\.\d+)?)\s*\\cdot\s*10\^\{?(-?\d+)\}?")
_POWER = re.compile(r"(?<![\d.])10\^\{?(-?\d+)\}?")
_EXAMPLE = re.compile(r"<!-- worked example -->.*?<!-- end of example -->", re.S)
_REFERENCE = re.compile(
    r"\b(?:Questions?|Experiments?|Parts?|Q|populations?|class(?:es)?)[\s-]*"
    r"\d+(?:\.\d+)?(?:\s*(?:-|–|,|and|or)\s*\d+(?:\.\d+)?)*"
    r"|\b\d+\.[A-Z]\b")  # and sub-question labels such as 4.A
_ENUMERATION = re.compile(r"^(\s*(?:[-*]\s+)?\**)\d+\.(?:[A-Z]\.)?(?=\s|\*)", re.M)
_SHAPE = re.compile(r"\b\d+\s*[x×]\s*\d+\b")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")


class Figure:
    """A number as printed in an answer: its value, decimals, and whether it is scientific."""

    def __init__(self, text: str, value: float, decimals: int, scientific: bool = False):
        self.text, self.value, self.decimals, self.scientific = text, value, decimals, scientific

    def render(self, x: float) -> str:
        x = abs(x)
        return f"{x:.{self.decimals}e}" if self.scientific else f"{x:.{self.decimals}f}"

    def __repr__(self) -> str:
        return f"Figure({self.text!r})"


def figures(text: str):
    """Every figure of an answer that has to be found in its evidence files."""
    text = _EXAMPLE.sub(" ", text)
    text = _CODE.sub(" ", text)
    found = []
    for math_span in _MATH.findall(text):
        for mantissa, exponent in _SCIENTIFIC.findall(math_span):
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
            found.append(Figure(f"{mantissa}e{exponent}", float(mantissa) * 10 ** int(exponent),
                                decimals, scientific=True))
        for exponent in _POWER.findall(_SCIENTIFIC.sub(" ", math_span)):
            found.append(Figure(f"1e{exponent}", 10.0 ** int(exponent), 0, scientific=True))
    text = _MATH.sub(" ", text)
    text = _REFERENCE.sub(" ", text)
    text = _ENUMERATION.sub(r"\1", text)
    text = _SHAPE.sub(" ", text)
    for whole, fraction in _NUMBER.findall(text):
        value = float(whole.replace(",", "") + fraction)
        found.append(Figure(whole + fraction, value, len(fraction) - 1 if fraction else 0))
    return found


def numbers_in(value):
    """Every number in a JSON value (booleans excluded), recursively."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from numbers_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers_in(v)


def sources(text: str):
    return sorted(set(_SOURCE.findall(text)))


def pool_of(paths):
    pool = []
    for rel in paths:
        pool += list(numbers_in(json.loads((ROOT / rel).read_text(encoding="utf-8"))))
    return pool


def missing_figures(text: str, pool) -> list:
    """The figures of ``text`` that no number of ``pool`` prints as."""
    return [f for f in figures(text)
            if not any(f.render(x) == f.render(f.value) for x in pool)]


@pytest.mark.parametrize("name", CHECKED)
def test_answer_names_existing_evidence_files(name):
    text = getattr(answers, name)
    named = sources(text)
    if name in NO_FIGURES:
        assert not figures(text), f"{name} cites figures {figures(text)} but names no file"
        return
    assert named, f"{name} does not name the results/evidence/*.json file its numbers come from"
    for rel in named:
        assert (ROOT / rel).is_file(), f"{name} names {rel}, which does not exist"


@pytest.mark.parametrize("name", CHECKED)
def test_every_figure_is_in_the_named_files(name):
    text = getattr(answers, name)
    pool = pool_of(sources(text))
    missing = missing_figures(text, pool)
    assert not missing, (f"{name}: these figures are not in {sources(text)} at the printed "
                         f"precision: {missing}")


@pytest.mark.parametrize("name", sorted(set(CHECKED) - NO_FIGURES))
def test_a_drifted_figure_is_caught(name):
    """Change one percentage of the answer to a value absent from its files: it is reported."""
    text = getattr(answers, name)
    pool = pool_of(sources(text))
    match = re.search(r"(\d+\.\d)%", text)
    assert match, f"{name} cites no percentage with one decimal"
    original = float(match[1])
    drifted = next(f"{original + d:.1f}" for d in (0.3, 0.7, 1.1, 1.9, 2.3, 3.7, 5.3)
                   if not any(f"{x:.1f}" == f"{original + d:.1f}" for x in pool))
    changed = text[:match.start(1)] + drifted + text[match.end(1):]
    assert [f.text for f in missing_figures(changed, pool)] == [drifted]


@pytest.mark.parametrize("text, expected", [
    ("reached 96.1% (from 95.0%)", ["96.1", "95.0"]),
    ("the `exp1_1_L2_K32` run of Experiment 1.1 and Questions 1-3, as in 4.A", []),
    ("population 2 holds the class-1 moon of populations 1 and 3 (population-2 samples)", []),
    ("**2. Depth.** 1,437 images of 8x8 pixels", ["1437"]),
    (r"falls to $3.0\cdot10^{-9}$ while $\ln 10 \approx 2.303$", ["3.0e-9"]),
    (r"stays near $10^{-2}$", ["1e-2"]),
    ("a gain of +4.05 points, a loss of -0.45", ["4.05", "0.45"]),
    ("<!-- worked example --> 0.30 and 50% <!-- end of example --> but 75%", ["75"]),
])
def test_figure_extraction(text, expected):
    got = [f.text.replace(",", "") for f in figures(text)]
    assert got == expected


def test_printed_precision_is_what_counts():
    pool = [93.0599, 0.09500736, 1.7638e-06]
    assert missing_figures("93.1% at 0.095 and $1.8\\cdot10^{-6}$", pool) == []
    assert [f.text for f in missing_figures("93.06% and 93.2%", pool)] == ["93.2"]
    assert [f.text for f in missing_figures("$1.7\\cdot10^{-6}$", pool)] == ["1.7e-6"]


def test_part2_q2_worked_example_adds_up():
    """The example table of part2_q2: accuracy and mean cross-entropy recomputed from its
    probabilities of the correct class."""
    example = _EXAMPLE.search(answers.part2_q2)
    assert example, "part2_q2 has no marked worked example"
    rows = re.findall(r"^\| epoch[^|]*\|(.*)\|\s*$", example[0], re.M)
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.split("|")]
        probs = [float(c.split()[0]) for c in cells[:4]]
        correct = [("wrong" not in c) for c in cells[:4]]
        acc, loss = float(cells[4].rstrip("%")), float(cells[5])
        assert acc == pytest.approx(100 * sum(correct) / 4)
        assert loss == pytest.approx(-sum(math.log(p) for p in probs) / 4, abs=0.005)
