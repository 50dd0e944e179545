"""Tests for cs236781.answers: display_answer, and strip_solutions with its patterns (the one
implementation of the stripping, used by prepare-dist)."""
import importlib.util
import re
from pathlib import Path

import pytest

from cs236781 import answers
from cs236781.answers import (ANSWER_BLOCK_PATTERN, ANSWER_BLOCK_REPLACEMENT, BEGIN_MARKER,
                              END_MARKER, SOLUTION_BLOCK_PATTERN, SOLUTION_BLOCK_REPLACEMENT,
                              MarkerError, strip_solutions, count_solutions, find_blocks)

B, E = BEGIN_MARKER, END_MARKER

MODULE = f'''\
"""A toy assignment module. The markers look like this: {B} ... {E}"""


def add(a, b):
    """Return a + b."""
    {B}
    total = a + b
    return total
    {E}


class Box:
    def __init__(self, x):
        self.x = x

    def doubled(self):
        if self.x is not None:
            {B}
            result = 2 * self.x
            {E}
            return result
        return None

    def tripled(self):
        return 3 * self.x
'''

ANSWERS = '''\
"""Answers."""

# ==============================================================================
# Part 1
# ==============================================================================

part1_q1 = r"""
The Jacobian is $\\partial Y / \\partial X$ -- naïve materialisation costs ∑ memory.
"""

part1_q2: str = """second answer"""


def part2_overfit_hp():
    wstd, lr, reg = 0, 0, 0
    {B}
    wstd, lr, reg = 0.1, 0.05, 0.001
    {E}
    return dict(wstd=wstd, lr=lr, reg=reg)


part2_q1 = r"""short"""; unrelated_text = "kept as is"
notes = "not an answer"
'''.replace("{B}", B).replace("{E}", E)

# The case: one file, two solution blocks and one answer block.
TWO_BLOCKS_ONE_ANSWER = f'''\
def forward(x):
    {B}
    y = x * 2
    {E}
    return y


def backward(dout):
    {B}
    dx = dout * 2
    return dx
    {E}


part1_q1 = r"""
**Your answer:** the gradient doubles.
"""
'''


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- display_answer ---------------------------------------------------------------------------------
def test_display_answer_renders_markdown_and_takes_content_by_keyword(monkeypatch):
    shown = []
    monkeypatch.setattr(answers, "display", shown.append)
    answers.display_answer(r"**bold** and $x^2$")
    answers.display_answer(content="by keyword, as the course's notebooks call it")
    assert [m.data for m in shown] == [r"**bold** and $x^2$",
                                      "by keyword, as the course's notebooks call it"]
    assert type(shown[0]).__name__ == "Markdown"
    with pytest.raises(TypeError, match="content must be a markdown string, got int"):
        answers.display_answer(3)


# -- the patterns and constants ------------------------------------------------------------------------
def test_constants_are_the_courses():
    assert SOLUTION_BLOCK_REPLACEMENT == "raise NotImplementedError()"
    assert isinstance(SOLUTION_BLOCK_PATTERN, re.Pattern) and isinstance(ANSWER_BLOCK_PATTERN, re.Pattern)
    assert "**Your answer:**" in ANSWER_BLOCK_REPLACEMENT and '"""' not in ANSWER_BLOCK_REPLACEMENT


def test_solution_block_pattern_matches_one_whole_block():
    match = SOLUTION_BLOCK_PATTERN.search(MODULE, MODULE.index("def add"))
    assert match.group("indent") == "    "
    assert match.group("code") == "    total = a + b\n    return total\n"
    assert match.group("begin") == B and match.group("end") == E
    assert len(SOLUTION_BLOCK_PATTERN.findall(TWO_BLOCKS_ONE_ANSWER)) == 2


def test_answer_block_pattern_matches_the_assignment():
    found = [(m.group("name"), m.group("answer")) for m in ANSWER_BLOCK_PATTERN.finditer(ANSWERS)]
    assert [name for name, _ in found] == ["part1_q1", "part1_q2", "part2_q1"]
    assert found[1][1] == "second answer" and found[2][1] == "short"
    escaped = ANSWER_BLOCK_PATTERN.match('part3_q2 = "say \\"hi\\" twice"\n')
    assert escaped.group("answer") == 'say \\"hi\\" twice'


# -- strip_solutions ----------------------------------------------------------------------------------
def test_two_solution_blocks_and_an_answer_block(tmp_path):
    stripped = strip_solutions(TWO_BLOCKS_ONE_ANSWER)
    assert count_solutions(TWO_BLOCKS_ONE_ANSWER) == (2, 1)
    assert stripped.count(SOLUTION_BLOCK_REPLACEMENT) == 2
    assert "y = x * 2" not in stripped and "dx = dout * 2" not in stripped
    assert "the gradient doubles" not in stripped
    assert stripped.splitlines()[:5] == ["def forward(x):", f"    {B}",
                                         f"    {SOLUTION_BLOCK_REPLACEMENT}", f"    {E}",
                                         "    return y"]
    path = tmp_path / "stripped.py"
    path.write_text(stripped)
    module = load(path, "two_blocks_stripped")
    assert module.part1_q1 == ANSWER_BLOCK_REPLACEMENT
    for func in (module.forward, module.backward):
        with pytest.raises(NotImplementedError):
            func(1)
    assert strip_solutions(stripped) == strip_solutions(strip_solutions(stripped))  # idempotent


def test_stripped_module_imports_and_raises_only_where_students_work(tmp_path):
    stripped = strip_solutions(MODULE, "toy.py")
    assert count_solutions(MODULE, "toy.py") == (2, 0)
    path = tmp_path / "toy.py"
    path.write_text(stripped)
    compile(stripped, str(path), "exec")
    toy = load(path, "toy_stripped")
    with pytest.raises(NotImplementedError):
        toy.add(1, 2)
    with pytest.raises(NotImplementedError):
        toy.Box(4).doubled()
    assert toy.Box(4).tripled() == 12 and toy.Box(None).doubled() is None
    assert "total = a + b" not in stripped and "2 * self.x" not in stripped
    # The reference module itself still works (the markers are plain comments).
    (tmp_path / "ref.py").write_text(MODULE)
    ref = load(tmp_path / "ref.py", "toy_reference")
    assert ref.add(1, 2) == 3 and ref.Box(4).doubled() == 8


def test_block_becomes_markers_and_raise_at_the_marker_indentation():
    lines = strip_solutions(MODULE, "toy.py").splitlines()
    i = lines.index(f"    {B}")
    assert lines[i:i + 3] == [f"    {B}", f"    {SOLUTION_BLOCK_REPLACEMENT}", f"    {E}"]
    j = lines.index(f"            {B}")
    assert lines[j + 1] == f"            {SOLUTION_BLOCK_REPLACEMENT}"
    # Everything outside the blocks is untouched, including the docstring that names the markers.
    assert lines[0] == MODULE.splitlines()[0]
    assert "\n".join(lines).count(SOLUTION_BLOCK_REPLACEMENT) == 2


def test_crlf_line_endings_are_kept():
    source = MODULE.replace("\n", "\r\n")
    stripped = strip_solutions(source, "toy.py")
    assert "\r\n" in stripped and "\n" not in stripped.replace("\r\n", "")
    assert stripped.count(SOLUTION_BLOCK_REPLACEMENT) == 2


def test_source_without_markers_or_answers_is_unchanged():
    source = "def f(x):\n    # ====== not a marker\n    return x  # YOUR CODE is welcome\n"
    assert strip_solutions(source, "plain.py") == source
    assert find_blocks(source) == [] and count_solutions(source) == (0, 0)


def test_markers_and_answers_inside_strings_are_left_alone():
    source = f's = """\n{B}\nx = 1\n{E}\npart1_q1 = "inside a string"\n"""\nt = "{E}"\n'
    assert strip_solutions(source, "s.py") == source


def test_answers_are_replaced_by_the_placeholder(tmp_path):
    replaced = strip_solutions(ANSWERS, "answers.py")
    assert count_solutions(ANSWERS, "answers.py") == (1, 3)
    assert "naïve" not in replaced and "second answer" not in replaced
    (tmp_path / "answers.py").write_text(replaced, encoding="utf-8")
    module = load(tmp_path / "answers.py", "answers_stripped")
    assert module.part1_q1 == module.part1_q2 == module.part2_q1 == ANSWER_BLOCK_REPLACEMENT
    assert module.notes == "not an answer" and module.unrelated_text == "kept as is"
    assert "part1_q2: str = r" in replaced  # the annotation stays
    with pytest.raises(NotImplementedError):
        module.part2_overfit_hp()


@pytest.mark.parametrize("source, line, match", [
    ("part1_q1 = 'a' 'b'\n", 1, "answer part1_q1 cannot be replaced"),
    ("part1_q1 = ('a')\n", 1, "answer part1_q1 cannot be replaced"),
    ("x = 1; part1_q1 = 'a'\n", 1, "answer part1_q1 cannot be replaced"),
    ("part1_q1 = f'{1}'\n", 1, "must be assigned one plain string literal"),
    ("part1_q1 = 42\n", 1, "must be assigned one plain string literal"),
    ("x = 1\npart2_q3 = None\n", 2, "answer part2_q3 must be assigned"),
])
def test_answers_that_cannot_be_replaced_safely_are_errors(source, line, match):
    with pytest.raises(MarkerError, match=match) as info:
        strip_solutions(source, "hw2/answers.py")
    assert str(info.value).startswith(f"hw2/answers.py:{line}: ")


@pytest.mark.parametrize("body, line, match", [
    (f"def f():\n    {B}\n    {B}\n    x = 1\n    {E}\n", 3, "nested solution marker.*line 2"),
    (f"def f():\n    {B}\n    return 1\n", 2, "never closed"),
    (f"def f():\n    return 1\n    {E}\n", 3, "closing solution marker without an opening"),
    ("def f():\n    # ====== YOUR CODE BELOW ======\n    return 1\n", 2, "malformed solution marker"),
    ("def f():\n    return 1\n    # ====== END OF YOUR CODE ======\n", 3, "malformed solution marker"),
    ("def f():\n    # ====== YOUR CODE: ====== here\n    return 1\n", 2, "malformed solution marker"),
    (f"def f():\n    x = 1  {B}\n    return x\n    {E}\n", 2, "alone on its line"),
    (f"{B}\nX = 1\n{E}\n", 1, "not inside a function body"),
    (f"class C:\n    {B}\n    X = 1\n    {E}\n", 2, "not inside a function body"),
    (f"def f():\n    x = 1\n{B}\n    return x\n{E}\n    return 2\n", 3, "does not compile"),
    ("def f(:\n    return 1\n", 1, "does not parse"),
])
def test_bad_markers_are_reported_with_file_and_line(body, line, match):
    with pytest.raises(MarkerError, match=match) as info:
        strip_solutions(body, "pkg/mod.py")
    assert str(info.value).startswith(f"pkg/mod.py:{line}: ")
    assert (info.value.filename, info.value.line) == ("pkg/mod.py", line)
    assert isinstance(info.value, ValueError)


def test_clear_solutions_rejects_non_text():
    with pytest.raises(TypeError, match="py_file_content must be a str, got bytes"):
        strip_solutions(b"def f(): pass\n")
