"""Run notebooks headlessly and inspect them for error cells.

Notebooks run in a fresh kernel of the current interpreter (its directory is put first on the
kernel's ``PATH``), from the notebook's own directory, with a per-cell timeout. Outputs are
written back into the notebook file in place, atomically, also when a cell fails: the student
then sees the traceback in the notebook.
"""
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence

from cs236781 import atomic
from hw2.validation import check_instance, check_optional, check_real

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Default per-cell timeout in seconds.
DEFAULT_CELL_TIMEOUT = 1800


class CellError(NamedTuple):
    """An error output found in a notebook.

    cell_index: index of the cell among all cells of the notebook (0-based).
    exec_count: the cell's execution count (``None`` when it has none).
    ename: exception class name, e.g. ``'ZeroDivisionError'``.
    evalue: exception message.
    """

    cell_index: int
    exec_count: Optional[int]
    ename: str
    evalue: str

    def describe(self) -> str:
        """One line naming the cell and the exception."""
        count = "" if self.exec_count is None else f" [{self.exec_count}]"
        return f"cell {self.cell_index}{count}: {self.ename}: {self.evalue}".rstrip(": ")


class NotebookRun(NamedTuple):
    """The outcome of executing one notebook.

    path: the notebook.
    ok: True when every code cell finished without error (errors tolerated by
        ``allow_errors`` still count as not ok, see ``errors``).
    errors: error outputs present in the notebook after the run.
    failure: why execution stopped early (timeout, dead kernel, first failing cell), else None.
    seconds: wall-clock time of the run.
    """

    path: Path
    ok: bool
    errors: List[CellError]
    failure: Optional[str]
    seconds: float


def kernel_env(extra: Optional[dict] = None) -> dict:
    """The environment for a kernel: ours, with this interpreter's directory first on PATH.

    :param extra: Variables to set on top, e.g. ``{'HW2_QUICK': '1'}``.
    :return: A new dict.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(extra or {})
    return env


def find_errors(nb) -> List[CellError]:
    """List the error outputs of a notebook.

    :param nb: A notebook node (``nbformat`` v4) or a path to a notebook file.
    :return: One :class:`CellError` per error output, in cell order.
    """
    if isinstance(nb, (str, Path)):
        nb = read_notebook(nb)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(CellError(index, cell.get("execution_count"),
                                       str(out.get("ename", "")), str(out.get("evalue", ""))))
    return found


def unexecuted_cells(nb) -> List[int]:
    """Indices of non-empty code cells that carry no execution count (never run)."""
    if isinstance(nb, (str, Path)):
        nb = read_notebook(nb)
    return [i for i, cell in enumerate(nb.cells)
            if cell.get("cell_type") == "code" and cell.get("source", "").strip()
            and cell.get("execution_count") is None]


def read_notebook(path) -> "nbformat.NotebookNode":
    """Read a notebook, with a clear error for a missing or malformed file.

    :raises FileNotFoundError: If ``path`` does not exist.
    :raises ValueError: If the file is not a readable notebook.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    import nbformat  # imported on use: it takes seconds, and --help needs none of it

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as err:  # nbformat raises several unrelated types for bad JSON/schema
        raise ValueError(f"{path} is not a readable Jupyter notebook: {err}") from None


def write_notebook(nb, path) -> None:
    """Write a notebook atomically (see :mod:`cs236781.atomic`)."""
    import nbformat

    atomic.write_text(path, nbformat.writes(nb) + "\n")


class NodeRun(NamedTuple):
    """The outcome of executing a notebook node in memory (see :func:`execute_node`).

    failure: why execution stopped early (timeout, dead kernel, first failing cell), else None.
    errors: error outputs present in the node after the run.
    seconds: wall-clock time of the run.
    """

    failure: Optional[str]
    errors: List[CellError]
    seconds: float


def check_kernel(kernel_name: str) -> None:
    """Make sure a Jupyter kernel spec of that name is installed.

    :raises TypeError: If ``kernel_name`` is not a string.
    :raises ValueError: If there is no such kernel; the message lists the installed ones.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    check_instance("kernel_name", kernel_name, str, "a str")
    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        names = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise ValueError(f"no Jupyter kernel named {kernel_name!r} (installed: {names})") from None


def execute_node(nb, cwd, timeout: Optional[float] = DEFAULT_CELL_TIMEOUT,
                 allow_errors: bool = False, kernel_name: str = "python3",
                 env: Optional[dict] = None,
                 progress: Optional[Callable[[str], None]] = None) -> NodeRun:
    """Execute a notebook node in place, in memory, in a fresh kernel started in ``cwd``.

    :param nb: A notebook node (``nbformat`` v4); its outputs are replaced by this run's.
    :param cwd: The kernel's working folder (the notebook's own folder).
    :param timeout: Per-cell limit in seconds; ``None`` or 0 for no limit.
    :param allow_errors: Keep going after a failing cell (the error output stays in the node
        and is reported in ``errors``). A timeout or a dead kernel always stops the run.
    :param kernel_name: Kernel spec to start.
    :param env: Extra environment variables for the kernel.
    :param progress: Called with one line per executed code cell; ``None`` for silence.
    :return: A :class:`NodeRun`.
    :raises TypeError: If ``timeout`` is not a number.
    :raises ValueError: If ``timeout`` is negative or NaN, or the kernel is not installed.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, CellExecutionError, DeadKernelError

    timeout = _cell_limit(timeout)
    check_kernel(kernel_name)
    say = progress or (lambda line: None)
    n_code = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    hooks = _ProgressHooks(say, n_code)
    client = NotebookClient(
        nb, timeout=timeout, allow_errors=allow_errors, kernel_name=kernel_name,
        resources={"metadata": {"path": str(Path(cwd).resolve())}},
        on_cell_execute=hooks.started, on_cell_executed=hooks.finished,
    )
    start = time.monotonic()
    failure = None
    try:
        client.execute(env=kernel_env(env))
    except CellExecutionError as err:
        failure = f"cell {hooks.current} failed: {_describe_exception(err)}"
    except CellControlSignal as err:  # CellTimeoutError derives from it
        failure = f"cell {hooks.current} timed out after {timeout:g} s" if timeout else str(err)
    except DeadKernelError as err:
        failure = f"the kernel died while running cell {hooks.current}: {err}"
    return NodeRun(failure, find_errors(nb), time.monotonic() - start)


def execute_notebook(path, timeout: Optional[float] = DEFAULT_CELL_TIMEOUT, allow_errors: bool = False,
                     kernel_name: str = "python3", env: Optional[dict] = None,
                     progress: Optional[Callable[[str], None]] = print) -> NotebookRun:
    """Execute a notebook file in place in a fresh kernel (see :func:`execute_node`).

    The outputs are written back into the file, atomically, also when a cell fails.

    :param path: The ``.ipynb`` file. Its outputs are replaced by this run's.
    :param progress: Receives a start line, one line per code cell and a result line.
    :return: A :class:`NotebookRun`.
    :raises TypeError: If ``timeout`` is not a number.
    :raises ValueError: If ``timeout`` is negative or NaN, or the kernel is not installed.
    """
    path = Path(path)
    limit = _cell_limit(timeout)
    check_kernel(kernel_name)
    nb = read_notebook(path)
    say = progress or (lambda line: None)
    n_code = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    say(f"running {path.name} ({n_code} code cells, "
        f"{'no' if limit is None else f'{limit:g} s'} per-cell limit)")
    try:
        node_run = execute_node(nb, path.parent, timeout, allow_errors, kernel_name, env, progress)
    finally:
        write_notebook(nb, path)
    failure, errors, seconds = node_run
    run = NotebookRun(path, failure is None and not errors, errors, failure, seconds)
    say(f"{path.name}: {'ok' if run.ok else 'FAILED'} in {seconds:.1f} s"
        + (f" ({failure})" if failure else "")
        + ("".join(f"\n  error in {e.describe()}" for e in errors) if errors and not failure else ""))
    return run


def clear_notebook(nb) -> None:
    """Remove outputs, execution counts and run metadata from a notebook node, in place."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    nb.metadata.pop("widgets", None)


def execute_notebooks(paths: Sequence, stop_on_failure: bool = False, **kwargs) -> List[NotebookRun]:
    """Execute several notebooks in order with :func:`execute_notebook`.

    :param paths: Notebook files; every one is checked to exist before any runs.
    :param stop_on_failure: Return after the first notebook that is not ok.
    :param kwargs: Passed to :func:`execute_notebook`.
    :return: One :class:`NotebookRun` per executed notebook.
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) not found: {', '.join(missing)}")
    check_kernel(kwargs.get("kernel_name", "python3"))
    runs = []
    for path in paths:
        runs.append(execute_notebook(path, **kwargs))
        if stop_on_failure and not runs[-1].ok:
            break
    return runs


class _ProgressHooks:
    """nbclient cell hooks that report ``[k/n] cell i ... (t s)`` lines."""

    def __init__(self, say: Callable[[str], None], total: int):
        self.say, self.total = say, total
        self.done, self.current, self._t0 = 0, None, 0.0

    def __repr__(self) -> str:
        return f"_ProgressHooks(done={self.done}, total={self.total})"

    def started(self, cell, cell_index: int) -> None:
        self.current, self._t0 = cell_index, time.monotonic()

    def finished(self, cell, cell_index: int, execute_reply) -> None:
        self.done += 1
        status = (execute_reply or {}).get("content", {}).get("status", "ok")
        self.say(f"  [{self.done}/{self.total}] cell {cell_index} {status} "
                 f"({time.monotonic() - self._t0:.1f} s)")


def _cell_limit(timeout) -> Optional[float]:
    """The per-cell limit in seconds, None for none (``timeout`` None or 0).

    :raises TypeError: ``timeout`` is not a number.
    :raises ValueError: It is negative or NaN.
    """
    seconds = check_optional(check_real, "timeout", timeout, 0.0, finite=False,
                             expected="a number of seconds >= 0 (0 or None: no limit)")
    return seconds or None


def _describe_exception(err) -> str:
    """``'Name: message'`` of the exception raised inside the kernel (no traceback, no colours)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else str(ename)
    lines = [_ANSI.sub("", ln).strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__
