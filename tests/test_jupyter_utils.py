"""Tests for cs236781.jupyter_utils: nbconvert, nbmerge, show_video_in_notebook.

Notebooks are tiny ones written into ``tmp_path``; three tests start a kernel (a few cells).
"""
import base64
import os
from pathlib import Path

import nbformat
import pytest

import helpers
from helpers import stream_output
from cs236781.jupyter_utils import (NotebookExecutionError, nbconvert, nbmerge,
                                    show_video_in_notebook)
from cs236781.notebooks import check_kernel, find_errors, read_notebook


def write_nb(path: Path, title: str, *sources, outputs=None) -> Path:
    """:func:`helpers.write_nb` with the python3 kernel and language named in the metadata (the
    script export takes its file ending from there)."""
    return helpers.write_nb(path, *sources, outputs=outputs, title=title,
                            metadata=helpers.PYTHON3_METADATA)


# -- nbconvert ----------------------------------------------------------------------------------------
def test_html_is_written_beside_the_notebook(tmp_path):
    nb_path = write_nb(tmp_path / "Part1_Toy.ipynb", "Toy title", "print(1)",
                       outputs={0: [stream_output("unique-output-7319\n")]})
    target = nbconvert(nb_path)
    assert target == tmp_path / "Part1_Toy.html"
    text = target.read_text(encoding="utf-8")
    assert "<html" in text and "Toy title" in text and "unique-output-7319" in text
    assert read_notebook(nb_path).cells[1].outputs  # the notebook itself is untouched


def test_other_formats_and_stdout(tmp_path, capsys):
    nb_path = write_nb(tmp_path / "nb.ipynb", "Script", "x = 40 + 2")
    script = nbconvert(nb_path, to="script")
    assert script == tmp_path / "nb.py" and "x = 40 + 2" in script.read_text()
    copy = nbconvert(nb_path, to="notebook")
    assert copy == tmp_path / "nb.nbconvert.ipynb" and read_notebook(copy).cells[1].source == "x = 40 + 2"
    capsys.readouterr()
    assert nbconvert(nb_path, to="markdown", stdout=True) is None
    assert "# Script" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb", "nb.nbconvert.ipynb", "nb.py"]


def test_clear_output_works_in_place(tmp_path):
    nb_path = write_nb(tmp_path / "nb.ipynb", "T", "print(1)", outputs={0: [stream_output("1\n")]})
    os.chmod(nb_path, 0o640)
    assert nbconvert(nb_path, clear_output=True) == nb_path
    cell = read_notebook(nb_path).cells[1]
    assert cell.outputs == [] and cell.execution_count is None and cell.source == "print(1)"
    assert (nb_path.stat().st_mode & 0o777) == 0o640  # permissions kept across the rewrite
    assert [p.name for p in tmp_path.iterdir()] == ["nb.ipynb"]


def test_execute_in_place_from_the_notebooks_folder(tmp_path):
    nb_path = write_nb(tmp_path / "run.ipynb", "Run", "import os\nprint(os.getcwd())", "6 * 7")
    nbconvert(nb_path, execute=True, inplace=True, timeout_sec=120)
    nb = read_notebook(nb_path)
    assert Path(nb.cells[1].outputs[0]["text"].strip()).resolve() == tmp_path.resolve()
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"


def test_failing_cell_raises_and_the_notebook_keeps_the_traceback(tmp_path):
    nb_path = write_nb(tmp_path / "bad.ipynb", "Bad", "print('before')", "1 / 0", "print('after')")
    with pytest.raises(NotebookExecutionError, match="bad.ipynb: cell 2 failed: ZeroDivisionError"):
        nbconvert(nb_path, execute=True, inplace=True, timeout_sec=120)
    nb = read_notebook(nb_path)
    assert [e.ename for e in find_errors(nb)] == ["ZeroDivisionError"]
    assert not nb.cells[3].outputs  # stopped at the failing cell


def test_allow_errors_runs_every_cell_and_converts(tmp_path):
    nb_path = write_nb(tmp_path / "bad.ipynb", "Bad", "raise KeyError('k')", "print('after-9124')")
    target = nbconvert(nb_path, execute=True, allow_errors=True, timeout_sec=120)
    text = target.read_text(encoding="utf-8")
    assert "KeyError" in text and "after-9124" in text
    assert not read_notebook(nb_path).cells[1].outputs  # not in place: the source is unchanged


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(to="docx"), ValueError, r"^nbconvert: to must be an exporter name, one of .*html.*, "
                                  r"got 'docx'$"),
    (dict(execute="yes"), TypeError, r"^nbconvert: execute must be True or False, got 'yes'$"),
    (dict(stdout=1), TypeError, r"^nbconvert: stdout must be True or False, got 1$"),
    (dict(to=3), TypeError, r"^nbconvert: to must be an exporter name, one of .*, got 3$"),
    (dict(execute=True, timeout_sec=-1), ValueError,
     r"^timeout must be a number of seconds >= 0 \(0 or None: no limit\), got -1$"),
    (dict(execute=True, timeout_sec=float("nan")), ValueError, r"^timeout must be .*, got nan$"),
    (dict(execute=True, timeout_sec="60"), TypeError, r"^timeout must be .*, got '60'$"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    nb_path = write_nb(tmp_path / "nb.ipynb", "T", "1")
    with pytest.raises(error, match=match):
        nbconvert(nb_path, **kwargs)


def test_a_kernel_name_that_is_no_string_is_a_type_error():
    with pytest.raises(TypeError, match=r"^kernel_name must be a str, got int$"):
        check_kernel(3)


def test_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nbconvert(tmp_path / "nope.ipynb")


# -- nbmerge ------------------------------------------------------------------------------------------
def test_nbmerge_concatenates_in_order_and_adds_the_extension(tmp_path):
    a = write_nb(tmp_path / "A.ipynb", "First part", "a = 1", outputs={0: [stream_output("a\n")]})
    b = write_nb(tmp_path / "B.ipynb", "Second part", "b = 2")
    nb_a = read_notebook(a)
    nb_b = read_notebook(b)
    nb_b.cells[0]["id"] = nb_a.cells[0]["id"]  # a clash that must not survive the merge
    nbformat.write(nb_b, str(b))
    merged = nbmerge([a, str(b)], tmp_path / "hw2-1_2")
    assert merged == tmp_path / "hw2-1_2.ipynb"
    nb = read_notebook(merged)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == ["# First part", "a = 1", "# Second part", "b = 2"]
    assert nb.cells[1].outputs[0]["text"] == "a\n"
    assert len({c["id"] for c in nb.cells}) == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    html = nbconvert(merged)
    text = html.read_text(encoding="utf-8")
    assert "First part" in text and "Second part" in text


def test_nbmerge_keeps_a_given_extension(tmp_path):
    a = write_nb(tmp_path / "A.ipynb", "A", "1")
    assert nbmerge([a], str(tmp_path / "out.ipynb")) == tmp_path / "out.ipynb"


@pytest.mark.parametrize("paths, error, match", [
    ("A.ipynb", TypeError, "must be a list of notebook paths, got one path"),
    ([], ValueError, "at least one notebook"),
    (["missing.ipynb"], FileNotFoundError, "does not exist"),
])
def test_nbmerge_bad_arguments(tmp_path, paths, error, match):
    paths = paths if isinstance(paths, str) else [tmp_path / p for p in paths]
    with pytest.raises(error, match=match):
        nbmerge(paths, tmp_path / "out")
    assert not (tmp_path / "out.ipynb").exists()


# -- show_video_in_notebook ---------------------------------------------------------------------------
def test_video_is_embedded_as_base64(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a movie")
    element = show_video_in_notebook(video)
    assert type(element).__name__ == "HTML"
    data = element.data
    assert data.startswith("<video ") and "controls" in data and "autoplay" in data
    assert 'width="500"' in data and 'height="auto"' in data
    encoded = data.split('src="data:video/mp4;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded) == video.read_bytes()


def test_video_link_is_relative_and_autoplay_optional(tmp_path, monkeypatch):
    (tmp_path / "media").mkdir()
    video = tmp_path / "media" / "run.webm"
    video.write_bytes(b"webm")
    monkeypatch.chdir(tmp_path)
    data = show_video_in_notebook(video, width=320, height=240, autoplay=False, embed=False).data
    assert 'src="media/run.webm"' in data and "autoplay" not in data
    assert 'width="320"' in data and 'height="240"' in data


def test_video_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="video file .* does not exist"):
        show_video_in_notebook(tmp_path / "none.mp4")
