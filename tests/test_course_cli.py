"""Tests for the course command line, ``python main.py`` and ``python -m cs236781`` (one
implementation, cs236781.cli): run-nb, prepare-submission, prepare-dist, clear-nb.

Notebooks are tiny ones written into ``tmp_path``; the few tests that start a kernel each run one
or two cells.
"""
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

from helpers import stream_output, write_nb
from cs236781 import submission
from cs236781.cli import main
from cs236781.notebooks import find_errors, read_notebook, unexecuted_cells

ROOT = Path(__file__).resolve().parent.parent


def error_output(ename="ZeroDivisionError", evalue="division by zero"):
    return v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def make_student_project(root: Path, notebook_outputs=None) -> Path:
    """A student's working folder: packages, results, one executed notebook, some junk."""
    for pkg in ("hw2", "cs236781"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
        (root / pkg / "__pycache__").mkdir()
        (root / pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (root / "hw2" / "answers.py").write_text("part1_q1 = 'mine'\n")
    (root / "results").mkdir()
    (root / "results" / "exp1_1_L2_K32.json").write_text("{}")
    (root / "results" / "model.pt").write_bytes(b"large checkpoint")
    (root / "notes.txt").write_text("private\n")
    outputs = notebook_outputs if notebook_outputs is not None else {0: [stream_output("2\n")]}
    write_nb(root / "Part1_Toy.ipynb", "print(1 + 1)", outputs=outputs)
    return root


def zip_names(path: Path):
    with zipfile.ZipFile(path) as zf:
        return sorted(zf.namelist())


# -- the entry points ---------------------------------------------------------------------------------
COMMANDS = ["run-nb", "prepare-submission", "prepare-dist", "clear-nb"]
ENTRY_POINTS = {"main.py": [sys.executable, "main.py"], "-m": [sys.executable, "-m", "cs236781"]}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_exits_0(entry, command):
    argv = ENTRY_POINTS[entry] + ([command] if command else []) + ["--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: " + ("main.py" if entry == "main.py" else "python -m cs236781"))
    if command is None:
        for name in COMMANDS:
            assert name in proc.stdout


@pytest.mark.parametrize("command, flags", [
    ("run-nb", ["NB_PATH", "--allow-errors, -E", "--timeout", "--kernel"]),
    ("prepare-submission", ["--id ID, -i ID", "--hw-dir DIR, --root DIR",
                            "--out-dir DIR, -o DIR, --out DIR", "--skip-run, -R",
                            "--allow-errors, -E", "--timeout"]),
    ("prepare-dist", ["--hw-dir DIR, -i DIR, --source DIR", "--out-dir DIR, -o DIR", "--out DIR",
                      "--force"]),
    ("clear-nb", ["NB_PATH"]),
])
def test_each_command_has_the_courses_flags_and_the_older_names(command, flags, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"], prog="main.py")
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out, flag


def test_main_py_and_the_module_run_the_same_code(tmp_path):
    """A real command through both entry points: the same result and message."""
    outputs = []
    for entry in ENTRY_POINTS.values():
        nb_path = write_nb(tmp_path / f"clear{len(outputs)}.ipynb", "print(1)",
                           outputs={0: [stream_output("1\n")]})
        proc = subprocess.run(entry + ["clear-nb", str(nb_path)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert read_notebook(nb_path).cells[1].outputs == []
        outputs.append(proc.stdout.replace(nb_path.name, "NB"))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("argv", [
    [],
    ["run-nb"],
    ["run-nb", "x.ipynb", "--timeout", "-3"],
    ["run-nb", "x.ipynb", "--timeout", "soon"],
    ["prepare-submission"],
    ["bogus"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


# -- run-nb --------------------------------------------------------------------------------------------
def test_run_nb_executes_in_place_and_reports_progress(tmp_path, capsys):
    nb_path = write_nb(tmp_path / "ok.ipynb", "import os, sys\nx = 6 * 7\nprint(x)",
                       "print(os.path.dirname(sys.executable) == os.environ['PATH'].split(os.pathsep)[0])",
                       "import os\nprint(os.getcwd())")
    assert main(["run-nb", str(nb_path), "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "[1/3] cell 1 ok" in out and "[3/3] cell 3 ok" in out and "ok.ipynb: ok" in out
    nb = read_notebook(nb_path)
    texts = [cell.outputs[0]["text"] for cell in nb.cells[1:]]
    assert texts[0] == "42\n"
    assert texts[1] == "True\n"  # the kernel's PATH starts with this interpreter's directory
    assert Path(texts[2].strip()).resolve() == tmp_path.resolve()  # runs in the notebook's folder
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2, 3]
    assert not find_errors(nb) and not unexecuted_cells(nb)


def test_run_nb_fails_on_an_error_cell_and_keeps_the_traceback(tmp_path, capsys):
    nb_path = write_nb(tmp_path / "bad.ipynb", "print('before')", "1 / 0", "print('after')")
    assert main(["run-nb", str(nb_path)]) == 1
    captured = capsys.readouterr()
    assert "cell 2 failed: ZeroDivisionError: division by zero" in captured.out
    assert "1 of 1 notebook(s) failed: bad.ipynb" in captured.err
    nb = read_notebook(nb_path)
    assert [(e.cell_index, e.ename) for e in find_errors(nb)] == [(2, "ZeroDivisionError")]
    assert nb.cells[3].execution_count is None and not nb.cells[3].outputs  # stopped there


def test_run_nb_allow_errors_runs_everything_and_exits_0(tmp_path, capsys):
    nb_path = write_nb(tmp_path / "bad.ipynb", "raise KeyError('k')", "print('after')")
    assert main(["run-nb", "--allow-errors", str(nb_path)]) == 0
    assert "error cells were allowed in bad.ipynb" in capsys.readouterr().out
    nb = read_notebook(nb_path)
    assert nb.cells[2].outputs[0]["text"] == "after\n"
    assert [e.ename for e in find_errors(nb)] == ["KeyError"]


def test_run_nb_per_cell_timeout(tmp_path, capsys):
    # 5 s: ample for print('quick') on a busy machine, far short of the 60 s sleep.
    nb_path = write_nb(tmp_path / "slow.ipynb", "print('quick')", "import time\ntime.sleep(60)")
    assert main(["run-nb", "--timeout", "5", "--allow-errors", str(nb_path)]) == 1
    assert "cell 2 timed out after 5 s" in capsys.readouterr().out
    assert read_notebook(nb_path).cells[1].outputs[0]["text"] == "quick\n"


def test_run_nb_missing_or_broken_notebook_exits_2(tmp_path, capsys):
    assert main(["run-nb", str(tmp_path / "missing.ipynb")]) == 2
    assert "notebook(s) not found" in capsys.readouterr().err
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    assert main(["run-nb", str(broken)]) == 2
    assert "is not a readable Jupyter notebook" in capsys.readouterr().err


# -- prepare-submission ---------------------------------------------------------------------------------
def test_submission_layout_one_top_folder_and_one_merged_html(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw")
    write_nb(root / "Part2_More.ipynb", "print(2)", outputs={0: [stream_output("2\n")]},
             title="Second notebook title")
    assert main(["prepare-submission", "-i", "123456789", "--id", "987654321", "-R",
                 "--hw-dir", str(root)]) == 0
    name = "hw2-123456789_987654321"
    target = root / f"{name}.zip"
    assert zip_names(target) == sorted(f"{name}/{rel}" for rel in [
        "Part1_Toy.ipynb", "Part2_More.ipynb", "cs236781/__init__.py", "hw2/__init__.py",
        "hw2/answers.py", f"{name}.html", "results/exp1_1_L2_K32.json"])
    with zipfile.ZipFile(target) as zf:
        assert zf.read(f"{name}/hw2/answers.py") == b"part1_q1 = 'mine'\n"
        html = zf.read(f"{name}/{name}.html").decode("utf-8")
    assert html.count("<html") == 1  # one document: the notebooks merged, then converted
    for title in ("A tiny notebook", "Second notebook title"):
        assert title in html
    assert html.index("A tiny notebook") < html.index("Second notebook title")
    assert f"wrote {target}" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == sorted(  # nothing else left behind
        ["hw2", "cs236781", "results", "notes.txt", "Part1_Toy.ipynb", "Part2_More.ipynb",
         f"{name}.zip"])


def test_submission_out_dir_and_the_older_flag_names(tmp_path):
    root = make_student_project(tmp_path / "hw")
    (tmp_path / "zips").mkdir()
    assert main(["prepare-submission", "--id", "0123", "--skip-run", "--root", str(root),
                 "-o", str(tmp_path / "zips")]) == 0
    assert zip_names(tmp_path / "zips" / "hw2-0123.zip")[0].startswith("hw2-0123/")  # zero kept
    assert main(["prepare-submission", "--id", "5", "--skip-run", "--root", str(root),
                 "--out", str(tmp_path / "zips")]) == 0
    assert (tmp_path / "zips" / "hw2-5.zip").is_file()


def test_submission_is_refused_while_a_notebook_has_an_error_cell(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw", notebook_outputs={0: [error_output()]})
    assert main(["prepare-submission", "--id", "1", "--skip-run", "--hw-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to create the submission")
    assert "Part1_Toy.ipynb cell 1 [1]: ZeroDivisionError: division by zero" in err
    assert "--allow-errors" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not list(root.glob("*.zip"))


def test_allow_errors_submits_with_a_warning(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw", notebook_outputs={0: [error_output()]})
    assert main(["prepare-submission", "--id", "1", "-R", "-E", "--hw-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "warning: submitting with an error output in Part1_Toy.ipynb cell 1 [1]" in out
    with zipfile.ZipFile(root / "hw2-1.zip") as zf:
        assert "ZeroDivisionError" in zf.read("hw2-1/hw2-1.html").decode("utf-8")


def test_submission_runs_the_notebooks_first(tmp_path):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    write_nb(root / "Part2_More.ipynb", "x = 3", "print(x * 14)")
    assert unexecuted_cells(root / "Part2_More.ipynb") == [1, 2]
    path = submission.prepare_submission(["42"], root=root, timeout=60, progress=None)
    assert path == root / "hw2-42.zip"
    with zipfile.ZipFile(path) as zf:
        nb = nbformat.reads(zf.read("hw2-42/Part2_More.ipynb").decode(), as_version=4)
        assert "42" in zf.read("hw2-42/hw2-42.html").decode("utf-8")
    assert nb.cells[2].outputs[0]["text"] == "42\n"


def test_submission_run_with_allow_errors_keeps_going(tmp_path):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    write_nb(root / "Part0_Broken.ipynb", "1 / 0", "print('after')")
    lines = []
    path = submission.prepare_submission(["3"], root=root, timeout=60, allow_errors=True,
                                         progress=lines.append)
    assert any("submitting with an error output in Part0_Broken.ipynb cell 1" in ln for ln in lines)
    assert read_notebook(root / "Part0_Broken.ipynb").cells[2].outputs[0]["text"] == "after\n"
    assert read_notebook(root / "Part1_Toy.ipynb").cells[1].outputs  # the later one ran too
    assert path.is_file()


def test_submission_stops_when_a_notebook_fails_to_run(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    write_nb(root / "Part0_Broken.ipynb", "import no_such_module_hopefully")
    assert main(["prepare-submission", "--id", "42", "--root", str(root), "--timeout", "60"]) == 2
    err = capsys.readouterr().err
    assert "Part0_Broken.ipynb did not finish" in err and "ModuleNotFoundError" in err
    assert not list(root.glob("*.zip"))
    assert unexecuted_cells(root / "Part1_Toy.ipynb") == [1]  # later notebooks were not run


@pytest.mark.parametrize("ids, match", [
    (["12", "12"], "the same student ID was given twice"),
    (["../etc"], "a student ID is a number (digits only), got '../etc'"),
    (["12 34"], "a student ID is a number (digits only)"),
    (["abc"], "a student ID is a number (digits only)"),
])
def test_bad_student_ids_are_refused(tmp_path, capsys, ids, match):
    root = make_student_project(tmp_path / "hw")
    argv = ["prepare-submission", "--skip-run", "--root", str(root)]
    for sid in ids:
        argv += ["--id", sid]
    assert exit_status(argv) == 2
    assert match in capsys.readouterr().err
    assert not list(root.glob("*.zip"))


def exit_status(argv) -> int:
    """main's return value, or the status of the SystemExit argparse raises for bad usage."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("ids, name", [([7, 12], "hw2-7_12"), (["007"], "hw2-007")])
def test_submission_name_from_ints_or_digit_strings(ids, name):
    import numpy as np

    assert submission.submission_name(ids) == name
    assert submission.submission_name([np.int64(7), 12]) == "hw2-7_12"
    with pytest.raises(submission.SubmissionError, match="digits only"):
        submission.submission_name([True])


def test_submission_without_notebooks_is_refused(tmp_path, capsys):
    assert main(["prepare-submission", "--id", "1", "--skip-run", "--root", str(tmp_path)]) == 2
    assert "no Part*.ipynb notebooks" in capsys.readouterr().err


def test_submission_zip_is_replaced_atomically(tmp_path, monkeypatch):
    root = make_student_project(tmp_path / "hw")
    target = root / "hw2-7.zip"
    target.write_bytes(b"previous submission")

    def broken_write(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        submission.prepare_submission(["7"], root=root, skip_run=True, progress=None)
    assert target.read_bytes() == b"previous submission"
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    submission.prepare_submission(["7"], root=root, skip_run=True, progress=None)
    assert "hw2-7/hw2/answers.py" in zip_names(target)


def test_submission_warns_about_cells_that_never_ran(tmp_path):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    lines = []
    submission.prepare_submission(["5"], root=root, skip_run=True, progress=lines.append)
    assert "warning: Part1_Toy.ipynb has 1 code cell(s) that were never executed" in lines


# -- clear-nb -------------------------------------------------------------------------------------------
def test_clear_nb_clears_outputs_in_place(tmp_path, capsys):
    paths = [write_nb(tmp_path / f"n{i}.ipynb", "print(1)", outputs={0: [stream_output("1\n")]})
             for i in range(2)]
    assert main(["clear-nb", *map(str, paths)]) == 0
    for path in paths:
        cell = read_notebook(path).cells[1]
        assert cell.outputs == [] and cell.execution_count is None and cell.source == "print(1)"
    assert main(["clear-nb", str(tmp_path / "none.ipynb")]) == 2
    assert "notebook(s) not found" in capsys.readouterr().err


# -- one-line refusals (issue 14) -----------------------------------------------------------------------
def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_run_nb_unknown_kernel_exits_2_in_one_line(tmp_path, capsys):
    nb_path = write_nb(tmp_path / "ok.ipynb", "print(1)")
    assert main(["run-nb", "--kernel", "nope", str(nb_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: no Jupyter kernel named 'nope' (installed: ")
    assert "python3" in line
    assert read_notebook(nb_path).cells[1].outputs == []  # nothing ran, nothing was rewritten


def test_prepare_dist_out_under_a_file_exits_2_in_one_line(tmp_path, capsys):
    source = make_dist_source(tmp_path / "ref")
    (tmp_path / "plain.txt").write_text("a file")
    assert main(["prepare-dist", "--source", str(source), "--out",
                 str(tmp_path / "plain.txt" / "handout")]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: cannot write the hand-out to ")
    assert "plain.txt is a file, not a folder" in line
    assert (tmp_path / "plain.txt").read_text() == "a file"


def test_prepare_dist_from_a_source_without_hw2_exits_2_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare-dist", "-i", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "has no hw2/ folder" in line and line.startswith("error: source ")
    assert not (tmp_path / "o").exists()


# -- prepare-dist ------------------------------------------------------------------------------------
def make_dist_source(source: Path) -> Path:
    (source / "hw2").mkdir(parents=True)
    (source / "hw2" / "mod.py").write_text(
        "def f():\n    # ====== YOUR CODE: ======\n    return 1\n    # ====== END YOUR CODE ======\n")
    return source


def test_prepare_dist_command(tmp_path, capsys):
    source = make_dist_source(tmp_path / "ref")
    out = tmp_path / "handout"
    assert main(["prepare-dist", "--source", str(source), "--out", str(out)]) == 0
    assert "1 solution blocks stripped in 1 files" in capsys.readouterr().out
    assert "raise NotImplementedError()" in (out / "hw2" / "mod.py").read_text()
    assert main(["prepare-dist", "--source", str(source), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["prepare-dist", "--source", str(source), "--out", str(out), "--force"]) == 0
    (source / "hw2" / "mod.py").write_text("def f():\n    # ====== YOUR CODE: ======\n    return 1\n")
    assert main(["prepare-dist", "--source", str(source), "--out", str(tmp_path / "h2")]) == 2
    assert "hw2/mod.py:2: solution block is never closed" in capsys.readouterr().err


def test_prepare_dist_courses_flags_write_into_out_dir(tmp_path, capsys):
    source = make_dist_source(tmp_path / "ref")
    assert main(["prepare-dist", "-i", str(source), "-o", str(tmp_path / "dists")]) == 0
    handout = tmp_path / "dists" / "hw2"  # OUT_DIR/hw2 holds the hand-out's own hw2/ package
    assert "raise NotImplementedError()" in (handout / "hw2" / "mod.py").read_text()
    assert main(["prepare-dist", "--hw-dir", str(source), "--out-dir", str(tmp_path / "d2")]) == 0
    assert (tmp_path / "d2" / "hw2" / "hw2" / "mod.py").is_file()


# -- the course's own main.py against this package ---------------------------------------------------
# The course's main.py (not part of this repository) calls two things of cs236781 whose contract
# differs from the rest of this package: it catches subprocess.CalledProcessError around
# jupyter_utils.nbconvert(execute=True), and it unpacks answers.clear_solutions(content) into
# (new_content or None, code blocks, answers). The driver below does just that, written here.
COURSE_STYLE_DRIVER = '''
import os, subprocess, sys
import cs236781.answers as answers
import cs236781.jupyter_utils as jupyter_utils

command, target = sys.argv[1], sys.argv[2]
if command == "run-nb":
    try:
        jupyter_utils.nbconvert(target, execute=True, inplace=True)
    except subprocess.CalledProcessError:
        print(f"course message: errors while executing {target}", file=sys.stderr)
        sys.exit(1)
elif command == "strip":
    for root, _, files in os.walk(target):
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(root, name)
            with open(path) as f:
                new_content, n_code, n_answers = answers.clear_solutions(f.read())
            if new_content is None:
                continue
            with open(path, "w") as f:
                f.write(new_content)
            print(f"{name} {n_code} {n_answers}")
'''


def run_course_style(tmp_path, *args):
    driver = tmp_path / "course_main.py"
    driver.write_text(COURSE_STYLE_DRIVER)
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(driver), *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_course_main_run_nb_gets_its_own_message_for_a_failing_notebook(tmp_path):
    nb = write_nb(tmp_path / "bad.ipynb", "x = 1", "1 / 0")
    proc = run_course_style(tmp_path, "run-nb", str(nb))
    assert proc.returncode == 1, proc.stderr
    assert f"course message: errors while executing {nb}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_notebook_execution_error_is_the_error_the_course_catches(tmp_path):
    from cs236781.jupyter_utils import NotebookExecutionError

    err = NotebookExecutionError(tmp_path / "a.ipynb", "cell 2 failed: ZeroDivisionError: x")
    assert isinstance(err, subprocess.CalledProcessError) and err.returncode == 1
    assert str(err) == f"{tmp_path / 'a.ipynb'}: cell 2 failed: ZeroDivisionError: x"
    assert err.failure == err.output == "cell 2 failed: ZeroDivisionError: x"
    again = __import__("pickle").loads(__import__("pickle").dumps(err))
    assert str(again) == str(err)


def test_course_main_prepare_dist_strips_the_hw2_package(tmp_path):
    import shutil

    from cs236781.answers import count_solutions, strip_solutions

    copy = shutil.copytree(ROOT / "hw2", tmp_path / "hw2", ignore=shutil.ignore_patterns("__pycache__"))
    originals = {p.name: p.read_text() for p in Path(copy).glob("*.py")}
    proc = run_course_style(tmp_path, "strip", str(copy))
    assert proc.returncode == 0, proc.stderr
    reported = {line.split()[0]: tuple(map(int, line.split()[1:])) for line in proc.stdout.splitlines()}
    expected = {name: count_solutions(src) for name, src in originals.items() if any(count_solutions(src))}
    assert reported == expected and reported  # the files with blocks or answers, and only those
    for name, source in originals.items():
        stripped = (Path(copy) / name).read_text()
        assert stripped == (strip_solutions(source) if name in expected else source)
        compile(stripped, name, "exec")


def test_clear_solutions_has_the_courses_return_contract():
    from cs236781.answers import clear_solutions

    assert clear_solutions("x = 1\n") == (None, 0, 0)
    source = ("def f():\n    # ====== YOUR CODE: ======\n    return 1\n    # ====== END YOUR CODE ======\n\n"
              "part1_q1 = r'''\\nthe answer\\n'''\n")
    new_content, n_code, n_answers = clear_solutions(source)
    assert (n_code, n_answers) == (1, 1)
    assert "raise NotImplementedError()" in new_content and "the answer" not in new_content
    with pytest.raises(TypeError, match="must be a str"):
        clear_solutions(b"x = 1")
