"""Tests for the course command line (python -m cs236781): run-nb, prepare-submission, prepare-dist.

Notebooks are tiny ones written into ``tmp_path``; the few tests that start a kernel each run one
or two cells.
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import nbformat.v4 as v4
import pytest

from cs236781 import submission
from cs236781.__main__ import main
from cs236781.notebooks import find_errors, read_notebook, unexecuted_cells

ROOT = Path(__file__).resolve().parent.parent


def write_nb(path: Path, *sources, outputs=None) -> Path:
    """A notebook with one code cell per source; ``outputs`` maps cell index -> list of outputs."""
    cells = [v4.new_markdown_cell("A tiny notebook.")]
    for i, src in enumerate(sources):
        cell = v4.new_code_cell(src)
        if outputs and i in outputs:
            cell.outputs, cell.execution_count = outputs[i], i + 1
        cells.append(cell)
    nbformat.write(v4.new_notebook(cells=cells), str(path))
    return path


def error_output(ename="ZeroDivisionError", evalue="division by zero"):
    return v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def stream_output(text):
    return v4.new_output("stream", name="stdout", text=text)


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


# -- the entry point ---------------------------------------------------------------------------------
def test_module_entry_point_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "cs236781", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0
    for command in ("run-nb", "prepare-submission", "prepare-dist"):
        assert command in proc.stdout


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
    nb_path = write_nb(tmp_path / "slow.ipynb", "print('quick')", "import time\ntime.sleep(60)")
    assert main(["run-nb", "--timeout", "2", "--allow-errors", str(nb_path)]) == 1
    assert "cell 2 timed out after 2 s" in capsys.readouterr().out
    assert read_notebook(nb_path).cells[1].outputs[0]["text"] == "quick\n"


def test_run_nb_missing_or_broken_notebook_exits_2(tmp_path, capsys):
    assert main(["run-nb", str(tmp_path / "missing.ipynb")]) == 2
    assert "notebook(s) not found" in capsys.readouterr().err
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    assert main(["run-nb", str(broken)]) == 2
    assert "is not a readable Jupyter notebook" in capsys.readouterr().err


# -- prepare-submission ---------------------------------------------------------------------------------
def test_submission_zip_holds_packages_notebooks_and_results(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw")
    assert main(["prepare-submission", "--id", "123456789", "--id", "987654321", "--skip-run",
                 "--root", str(root)]) == 0
    target = root / "hw2-123456789_987654321.zip"
    assert zip_names(target) == ["Part1_Toy.ipynb", "cs236781/__init__.py", "hw2/__init__.py",
                                 "hw2/answers.py", "results/exp1_1_L2_K32.json"]
    with zipfile.ZipFile(target) as zf:
        assert zf.read("hw2/answers.py") == b"part1_q1 = 'mine'\n"
    assert f"wrote {target}" in capsys.readouterr().out
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


def test_submission_is_refused_while_a_notebook_has_an_error_cell(tmp_path, capsys):
    root = make_student_project(tmp_path / "hw", notebook_outputs={0: [error_output()]})
    assert main(["prepare-submission", "--id", "1", "--skip-run", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to create the submission")
    assert "Part1_Toy.ipynb cell 1 [1]: ZeroDivisionError: division by zero" in err
    assert len(err.strip().splitlines()) == 1  # one paragraph, no traceback
    assert not list(root.glob("*.zip"))


def test_submission_runs_the_notebooks_first(tmp_path):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    write_nb(root / "Part2_More.ipynb", "x = 3", "print(x * 14)")
    assert unexecuted_cells(root / "Part2_More.ipynb") == [1, 2]
    path = submission.prepare_submission(["42"], root=root, timeout=60, progress=None)
    assert path == root / "hw2-42.zip"
    with zipfile.ZipFile(path) as zf:
        nb = nbformat.reads(zf.read("Part2_More.ipynb").decode(), as_version=4)
    assert nb.cells[2].outputs[0]["text"] == "42\n"


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
    (["../etc"], "letters and digits only"),
    (["12 34"], "letters and digits only"),
])
def test_bad_student_ids_are_refused(tmp_path, capsys, ids, match):
    root = make_student_project(tmp_path / "hw")
    argv = ["prepare-submission", "--skip-run", "--root", str(root)]
    for sid in ids:
        argv += ["--id", sid]
    assert main(argv) == 2
    assert match in capsys.readouterr().err
    assert not list(root.glob("*.zip"))


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
    assert "hw2/answers.py" in zip_names(target)


def test_submission_warns_about_cells_that_never_ran(tmp_path):
    root = make_student_project(tmp_path / "hw", notebook_outputs={})
    lines = []
    submission.prepare_submission(["5"], root=root, skip_run=True, progress=lines.append)
    assert "warning: Part1_Toy.ipynb has 1 code cell(s) that were never executed" in lines


# -- prepare-dist ------------------------------------------------------------------------------------
def test_prepare_dist_command(tmp_path, capsys):
    source = tmp_path / "ref"
    (source / "hw2").mkdir(parents=True)
    (source / "hw2" / "mod.py").write_text(
        "def f():\n    # ====== YOUR CODE: ======\n    return 1\n    # ====== END YOUR CODE ======\n")
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
