"""Notebook conversion, merging and video display: the course's helper API.

Built on the nbconvert and nbformat libraries (and nbclient, nbconvert's executor, through
:mod:`cs236781.notebooks`), so nothing depends on the ``jupyter nbconvert`` or ``nbmerge``
command-line tools being on ``PATH``. Every file is written atomically (a temporary file beside
it, then a rename).
"""
import base64
import html
import mimetypes
import os
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence, Union

import nbformat

from cs236781 import atomic
from cs236781 import notebooks as nbrun
from hw2.validation import check_bool, check_choice

PathLike = Union[str, os.PathLike]


class NotebookExecutionError(subprocess.CalledProcessError):
    """Executing a notebook failed (a cell raised, timed out, or the kernel died).

    path: the notebook; failure: what happened, e.g. ``'cell 3 failed: ZeroDivisionError: ...'``.

    It is a ``subprocess.CalledProcessError`` (return code 1, the equivalent ``jupyter nbconvert``
    command, ``failure`` as its output) because that is what the course's ``main.py`` catches
    around :func:`nbconvert` to print its own "Got errors while executing notebook" message.
    """

    def __init__(self, path: Path, failure: str):
        super().__init__(1, ["jupyter", "nbconvert", "--execute", str(path)], output=failure)
        self.path, self.failure = path, failure

    def __str__(self) -> str:
        return f"{self.path}: {self.failure}"

    def __reduce__(self):
        return type(self), (self.path, self.failure)


def nbconvert(nb_path: PathLike, to: str = "html", execute: bool = False, inplace: bool = False,
              clear_output: bool = False, debug: bool = False, stdout: bool = False,
              allow_errors: bool = False, timeout_sec: Optional[float] = 3600) -> Optional[Path]:
    """Convert a notebook, optionally executing it or clearing its outputs first.

    Behaves like ``jupyter nbconvert``: the result is written beside the notebook as
    ``<name>.<ext>`` (``<name>.nbconvert.ipynb`` for ``to='notebook'``), or over the notebook
    itself with ``inplace`` (always in notebook format then), or printed with ``stdout``.

    :param nb_path: The ``.ipynb`` file.
    :param to: An nbconvert exporter name: ``'html'``, ``'notebook'``, ``'script'``, ...
    :param execute: Run the notebook first, in a fresh kernel, from its own folder.
    :param inplace: Write the (executed or cleared) notebook back to ``nb_path``.
    :param clear_output: Remove every output and execution count; implies ``inplace``.
    :param debug: Print one progress line per executed cell.
    :param stdout: Print the converted text instead of writing a file.
    :param allow_errors: With ``execute``, keep going after a failing cell (its traceback stays
        in the output) instead of raising.
    :param timeout_sec: Per-cell time limit when executing; ``None`` or 0 for none.
    :return: The file written, or None with ``stdout``.
    :raises FileNotFoundError: If ``nb_path`` does not exist.
    :raises TypeError: If a flag is not a bool.
    :raises ValueError: For an unknown exporter, a negative timeout, or a missing kernel.
    :raises NotebookExecutionError: If execution stopped at a failing cell (unless
        ``allow_errors``), a timeout or a dead kernel. With ``inplace`` the outputs up to the
        failure are written back first, so the notebook shows the traceback.
    """
    flags = dict(execute=execute, inplace=inplace, clear_output=clear_output, debug=debug,
                 stdout=stdout, allow_errors=allow_errors)
    flags = {name: check_bool(f"nbconvert: {name}", value) for name, value in flags.items()}
    path = Path(nb_path)
    fmt = "notebook" if (inplace or clear_output) else to
    exporter = _exporter(fmt)
    nb = nbrun.read_notebook(path)
    on = [name for name, value in flags.items() if value]
    print(f">> nbconvert {path.name} to {fmt}" + (f" [{', '.join(on)}]" if on else ""))
    if clear_output:
        nbrun.clear_notebook(nb)
    failure = None
    if execute:
        run = nbrun.execute_node(nb, path.parent, timeout=timeout_sec, allow_errors=allow_errors,
                                 progress=print if debug else None)
        failure = run.failure
    if inplace or clear_output:
        nbrun.write_notebook(nb, path)  # also after a failure: the notebook shows the traceback
        if failure is not None:
            raise NotebookExecutionError(path, failure)
        return path
    if failure is not None:
        raise NotebookExecutionError(path, failure)
    body, resources = exporter.from_notebook_node(nb, resources={"metadata": {
        "name": path.stem, "path": str(path.resolve().parent)}})
    if stdout:
        print(body if isinstance(body, str) else body.decode("utf-8", errors="replace"))
        return None
    suffix = resources.get("output_extension") or f".{to}"
    target = path.with_name(path.stem + (".nbconvert" if suffix == ".ipynb" else "") + suffix)
    atomic.write_bytes(target, body.encode("utf-8") if isinstance(body, str) else body)
    return target


def nbmerge(nb_paths: Sequence[PathLike], output_filename: PathLike) -> Path:
    """Concatenate notebooks into one, in the order given.

    The merged notebook takes the first notebook's metadata; cell ids are kept unless two
    notebooks share one, in which case the later cell gets a fresh id.

    :param nb_paths: The notebooks to merge (at least one).
    :param output_filename: Where to write; ``.ipynb`` is appended when missing.
    :return: The path written.
    :raises TypeError: If ``nb_paths`` is a single path rather than a sequence of paths.
    :raises ValueError: If ``nb_paths`` is empty or a file is not a readable notebook.
    :raises FileNotFoundError: If a notebook does not exist.
    """
    if isinstance(nb_paths, (str, bytes, os.PathLike)):
        raise TypeError(f"nbmerge: nb_paths must be a list of notebook paths, got one path "
                        f"{os.fspath(nb_paths)!r}")
    paths = [Path(p) for p in nb_paths]
    if not paths:
        raise ValueError("nbmerge: expected at least one notebook to merge, got none")
    target = Path(output_filename)
    if target.suffix != ".ipynb":
        target = target.with_name(target.name + ".ipynb")
    notebooks = [nbrun.read_notebook(p) for p in paths]
    merged = nbformat.v4.new_notebook(metadata=notebooks[0].metadata)
    merged.nbformat_minor = max([nb.nbformat_minor for nb in notebooks] + [5])
    seen = set()
    for nb in notebooks:
        for cell in nb.cells:
            cell_id = cell.get("id")
            if not cell_id or cell_id in seen:
                cell_id = nbformat.v4.nbbase.random_cell_id()
                while cell_id in seen:
                    cell_id = nbformat.v4.nbbase.random_cell_id()
                cell["id"] = cell_id
            seen.add(cell_id)
            merged.cells.append(cell)
    nbformat.validate(merged)
    print(f">> nbmerge {', '.join(p.stem for p in paths)} -> {target}")
    atomic.write_text(target, nbformat.writes(merged) + "\n")
    return target


def show_video_in_notebook(video_path: PathLike, width=500, height="auto", autoplay: bool = True,
                           embed: bool = True):
    """An HTML ``<video>`` element that shows a video file in a notebook.

    :param video_path: The video file (mp4, webm, ...).
    :param width: Width of the element (pixels or a CSS length).
    :param height: Height of the element; ``'auto'`` keeps the aspect ratio.
    :param autoplay: Start playing as soon as it is shown.
    :param embed: Put the video's bytes into the page (base64); otherwise link to the file by
        its path relative to the current folder (the notebook server must be able to serve it).
    :return: An :class:`IPython.display.HTML` object.
    :raises FileNotFoundError: If the file does not exist.
    """
    from IPython.display import HTML

    path = Path(video_path)
    if not path.is_file():
        raise FileNotFoundError(f"show_video_in_notebook: video file {str(path)!r} does not exist")
    if embed:
        mime = mimetypes.guess_type(path.name)[0] or f"video/{path.suffix.lstrip('.') or 'mp4'}"
        src = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    else:
        src = os.path.relpath(path, start=os.curdir)
    attributes = [f'src="{html.escape(src)}"', "controls"] + (["autoplay"] if autoplay else [])
    attributes += [f'width="{html.escape(str(width))}"', f'height="{html.escape(str(height))}"']
    return HTML(data=f"<video {' '.join(attributes)}></video>")


def _exporter(to: str):
    """An instance of the nbconvert exporter named ``to``."""
    from nbconvert.exporters import get_export_names, get_exporter

    names: List[str] = sorted(get_export_names())
    check_choice("nbconvert: to", to, names,
                 expected=f"an exporter name, one of {', '.join(names)}")
    return get_exporter(to)()
