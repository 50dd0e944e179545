"""Written answers and solution blocks.

In a notebook, :func:`display_answer` renders an answer (markdown with LaTeX). For the student
hand-out, :func:`strip_solutions` strips a reference solution (:func:`clear_solutions` is the
same with the course's ``main.py`` contract: ``(new_content or None, n_code, n_answers)``):

* a **solution block** is fenced by two comment lines, each alone on its line::

      def forward(self, x):
          # ====== YOUR CODE: ======
          out = x @ self.w.T + self.b
          # ====== END YOUR CODE ======
          return out

  The marker lines stay and the code between them becomes ``raise NotImplementedError()``,
  indented like the opening marker. Blocks must sit inside a function body, so the stripped
  module still imports and only calling the function fails. Only comments count: marker text
  inside a string is left alone.
* a **written answer** is a module-level string constant named like ``part1_q2``; its text
  becomes a placeholder inviting the student's answer.

Unbalanced, nested, malformed or misplaced markers, and answers that are not one plain string
literal, are errors naming the file and line (:class:`MarkerError`); nothing is half-stripped.
"""
import ast
import io
import re
import tokenize
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from IPython.display import Markdown, display

#: The opening and closing solution markers, as written in the reference code.
BEGIN_MARKER = "# ====== YOUR CODE: ======"
END_MARKER = "# ====== END YOUR CODE ======"

_BEGIN_TEXT = r"#[ \t]*=+[ \t]*YOUR CODE:?[ \t]*=+"
_END_TEXT = r"#[ \t]*=+[ \t]*END YOUR CODE[ \t]*=+"

#: A whole solution block: opening marker line, the code, closing marker line.
SOLUTION_BLOCK_PATTERN = re.compile(
    rf"^(?P<indent>[ \t]*)(?P<begin>{_BEGIN_TEXT})[ \t]*(?P<newline>\r?\n)"
    r"(?P<code>.*?)"
    rf"^(?P<end_indent>[ \t]*)(?P<end>{_END_TEXT})[ \t]*(?=\r?$)",
    re.MULTILINE | re.DOTALL,
)
#: A written answer: ``partN_qM = <string literal>`` at the start of a line.
ANSWER_BLOCK_PATTERN = re.compile(
    r"^(?P<name>part\d+_q\d+)(?P<annotation>[ \t]*:[ \t]*str)?[ \t]*=[ \t]*"
    r"(?P<prefix>[rRuU]?)(?P<quote>\"\"\"|'''|\"|')"
    r"(?P<answer>(?:\\.|(?!(?P=quote)).)*)(?P=quote)",
    re.MULTILINE | re.DOTALL,
)
#: What the code of a solution block becomes.
SOLUTION_BLOCK_REPLACEMENT = "raise NotImplementedError()"
#: What the text of a written answer becomes (inside ``r\"\"\"...\"\"\"``).
ANSWER_BLOCK_REPLACEMENT = ("\n**Your answer:**\n\n"
                            "Write your answer here in markdown; $\\LaTeX$ math is rendered too.\n")

_ANSWER_NAME = re.compile(r"part\d+_q\d+")
_BEGIN_COMMENT = re.compile(_BEGIN_TEXT + r"[ \t]*")
_END_COMMENT = re.compile(_END_TEXT + r"[ \t]*")
_NEAR_MISS = re.compile(r"#\s*=.*YOUR CODE", re.IGNORECASE)


class MarkerError(ValueError):
    """A solution block or answer cannot be stripped.

    filename, line: where (1-based line).
    """

    def __init__(self, filename: str, line: int, message: str):
        super().__init__(f"{filename}:{line}: {message}")
        self.filename, self.line = filename, line


class Block(NamedTuple):
    """A solution block: its marker lines (1-based) and the opening marker's indentation."""

    begin: int
    end: int
    indent: str


class Answer(NamedTuple):
    """A written answer: the constant's name, the line (1-based) of its assignment, and where
    its string literal ends (line, and column in UTF-8 bytes as :mod:`ast` counts)."""

    name: str
    line: int
    end: Tuple[int, int]


def display_answer(content: str) -> None:
    """Show a markdown answer (LaTeX allowed) as rich output in the current notebook.

    :param content: The answer text, markdown with optional ``$...$`` math.
    :raises TypeError: If ``content`` is not a string.
    """
    if not isinstance(content, str):
        raise TypeError(f"content must be a markdown string, got {type(content).__name__}")
    display(Markdown(content))


def clear_solutions(py_file_content: str) -> Tuple[Optional[str], int, int]:
    """Strip a Python source the way the course's ``main.py prepare-dist`` expects.

    :param py_file_content: The source of one ``.py`` file.
    :return: ``(stripped source, solution blocks replaced, answers replaced)``; the source is
        None when there was nothing to strip (the caller then leaves the file alone).
    :raises MarkerError: As :func:`strip_solutions`.
    """
    if not isinstance(py_file_content, str):
        raise TypeError(f"py_file_content must be a str, got {type(py_file_content).__name__}")
    n_blocks, n_answers = count_solutions(py_file_content)
    if not n_blocks and not n_answers:
        return None, 0, 0
    return strip_solutions(py_file_content), n_blocks, n_answers


def strip_solutions(py_file_content: str, filename: str = "<string>") -> str:
    """Strip every solution block and written answer from a Python source.

    :param py_file_content: The source of one ``.py`` file.
    :param filename: Used in error messages.
    :return: The stripped source; the source itself when it holds neither.
    :raises TypeError: If ``py_file_content`` is not a string.
    :raises MarkerError: For bad markers or answers (see the module docstring), or when the
        stripped code would not compile.
    """
    if not isinstance(py_file_content, str):
        raise TypeError(f"py_file_content must be a str, got {type(py_file_content).__name__}")
    source = py_file_content
    answers = find_answers(source, filename)  # parses first: a syntax error is named exactly
    blocks = find_blocks(source, filename)
    if not blocks and not answers:
        return source
    starts = _line_starts(source)
    edits = [_block_edit(source, starts, b, filename) for b in blocks]
    edits += [_answer_edit(source, starts, a, filename) for a in answers]
    edits.sort()
    pieces, pos, raise_lines, newlines = [], 0, {}, 0
    for start, stop, text, block in edits:
        pieces += [source[pos:start], text]
        newlines += source.count("\n", pos, start)
        if block is not None:
            raise_lines[newlines + 2] = block  # the line after the opening marker
        newlines += text.count("\n")
        pos = stop
    pieces.append(source[pos:])
    stripped = "".join(pieces)
    _check_raises_in_functions(stripped, filename, raise_lines)
    return stripped


def find_blocks(source: str, filename: str = "<string>") -> List[Block]:
    """Locate the solution blocks of a Python source (comments only, never string contents).

    :param source: Python source code.
    :param filename: Used in error messages.
    :return: The blocks in file order.
    :raises MarkerError: For a marker that shares its line with code, a malformed marker, an
        opening marker inside an open block, a closing marker without an open block, a block
        left open at the end of the file, or a source that cannot be tokenized.
    """
    blocks, open_at, indent = [], None, ""
    lines = source.split("\n")
    for line_no, col, text in _comments(source, filename):
        is_begin, is_end = bool(_BEGIN_COMMENT.fullmatch(text)), bool(_END_COMMENT.fullmatch(text))
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


def find_answers(source: str, filename: str = "<string>") -> List[Answer]:
    """Locate the written answers: module-level assignments to names like ``part1_q2``.

    :param source: Python source code.
    :param filename: Used in error messages.
    :return: The answers in file order.
    :raises MarkerError: If the source does not parse, or an answer is assigned something
        other than one plain string literal (it could not be replaced safely).
    """
    found = []
    for node in _parse(source, filename).body:
        name, value = _assigned_name(node)
        if name is None or not _ANSWER_NAME.fullmatch(name):
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            raise MarkerError(filename, node.lineno, f"answer {name} must be assigned one plain "
                              f"string literal, e.g. {name} = r\"\"\"...\"\"\"")
        found.append(Answer(name, node.lineno, (value.end_lineno, value.end_col_offset)))
    return found


def _block_edit(source: str, starts: Sequence[int], block: Block, filename: str):
    """``(start, stop, replacement, block)`` of one solution block's text."""
    match = SOLUTION_BLOCK_PATTERN.match(source, starts[block.begin - 1])
    if match is None or source.count("\n", 0, match.end()) + 1 != block.end:
        raise MarkerError(filename, block.begin, "the text between this solution marker and its "
                          f"closing marker at line {block.end} is not a plain solution block")
    nl, indent = match.group("newline"), match.group("indent")
    text = (f"{indent}{match.group('begin')}{nl}{indent}{SOLUTION_BLOCK_REPLACEMENT}{nl}"
            f"{match.group('end_indent')}{match.group('end')}")
    return match.start(), match.end(), text, block


def _answer_edit(source: str, starts: Sequence[int], answer: Answer, filename: str):
    """``(start, stop, replacement, None)`` of one written answer's assignment."""
    match = ANSWER_BLOCK_PATTERN.match(source, starts[answer.line - 1])
    end_line, end_col = answer.end
    line_start = starts[end_line - 1]
    line = source[line_start:].split("\n", 1)[0]
    literal_end = line_start + len(line.encode("utf-8")[:end_col].decode("utf-8", errors="ignore"))
    if match is None or match.group("name") != answer.name or match.end() != literal_end:
        raise MarkerError(filename, answer.line, f"answer {answer.name} cannot be replaced: write "
                          f"it at the start of a line as {answer.name} = r\"\"\"...\"\"\"")
    text = f"{answer.name}{match.group('annotation') or ''} = r\"\"\"{ANSWER_BLOCK_REPLACEMENT}\"\"\""
    return match.start(), match.end(), text, None


def _line_starts(source: str) -> List[int]:
    """Offsets at which each line (split on ``\\n``, as the tokenizer counts) begins."""
    starts = [0]
    for match in re.finditer("\n", source):
        starts.append(match.end())
    return starts


def _comments(source: str, filename: str):
    """``(line, column, text)`` of every comment token."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.start[1], tok.string.rstrip()
    except (tokenize.TokenError, SyntaxError) as err:
        line = getattr(err, "lineno", None) or (err.args[1][0] if len(err.args) > 1 else 0)
        raise MarkerError(filename, line, f"cannot tokenize the source ({err.args[0]})") from None


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as err:
        raise MarkerError(filename, err.lineno or 0, f"does not parse: {err.msg}") from None


def _assigned_name(node):
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _check_raises_in_functions(source: str, filename: str, raise_lines: Dict[int, Block]) -> None:
    """Each inserted ``raise`` (keyed by its 1-based line) must lie in a function body."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as err:
        before = [line for line in raise_lines if line <= (err.lineno or 0) + 1]
        where = raise_lines[max(before)].begin if before else (err.lineno or 0)
        raise MarkerError(filename, where, f"the stripped code does not compile ({err.msg}); "
                          "check that the block's markers are indented like its code") from None
    in_function = set()
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(node.lineno for node in ast.walk(func) if isinstance(node, ast.Raise))
    for line, block in raise_lines.items():
        if line not in in_function:
            raise MarkerError(filename, block.begin, "solution block is not inside a function "
                              "body: the hand-out module would fail on import")


def count_solutions(py_file_content: str, filename: str = "<string>") -> Tuple[int, int]:
    """:return: ``(solution blocks, written answers)`` that :func:`strip_solutions` strips."""
    n_answers = len(find_answers(py_file_content, filename))
    return len(find_blocks(py_file_content, filename)), n_answers
