"""Result files of Part 5 runs: their names, writing, reading and validation, in one place.

A run's result file is ``{out_dir}/{run_name}_L{L}_K{K joined by '-'}.json`` holding
``{"config": {...}, "results": FitResult as a dict}`` (e.g. ``exp1_3_L1_K64-128-256.json``).
It is written atomically (:mod:`cs236781.atomic`) and read back with every field checked, so a
truncated or foreign file is reported, naming the file, instead of being half-used.

Before a run trains, :func:`prepare_outputs` makes sure its files can be written (folders
created, a probe file written and removed, names within the file system's limit, stale
temporary files of killed writers removed), and :class:`RunLock` keeps a second process off
a run that one is already computing (``fcntl.flock`` on ``.{result name}.lock`` beside the
result file).
"""
import contextlib
import json
import math
import os
import socket
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

try:  # POSIX; without it (Windows) runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

import numpy as np
import torch

from cs236781.train_results import FitResult
from cs236781.atomic import TEMP_NAME_EXTRA, atomic_write_text, remove_stale_temps
from hw2.validation import (ExperimentConfigError, FileWriteError, check_instance, is_int,
                            is_real, os_error_reason)

__all__ = ["result_filename", "to_jsonable", "save_experiment", "load_experiment",
           "result_file_problem", "is_complete", "ResultWriteError", "prepare_outputs", "remove_empty_folders",
           "RunLock"]

_FIT_FIELDS = FitResult._fields
PathLike = Union[str, os.PathLike]


def result_filename(run_name: str, filters_per_layer: Sequence[int], layers_per_block: int) -> str:
    """The base name of a run's result file: ``{run_name}_L{L}_K{K joined by '-'}.json``."""
    k = "-".join(str(int(v)) for v in filters_per_layer)
    return f"{run_name}_L{int(layers_per_block)}_K{k}.json"


def to_jsonable(obj):
    """A copy of ``obj`` that ``json.dump`` can write and ``json.load`` reads back equal.

    Dicts (keys become strings), lists, tuples and sets become dicts and lists; paths,
    devices and dtypes become strings; tensors and numpy values become numbers or lists;
    types and functions become their qualified names; anything else becomes its ``repr``.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (os.PathLike, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".lstrip(".")
    return repr(obj)


def save_experiment(run_name: str, out_dir: PathLike, cfg: dict, fit_res: FitResult) -> str:
    """Write ``{"config": cfg, "results": fit_res._asdict()}`` as a run's result file.

    The file is ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json`` with ``L`` and ``K`` taken from
    ``cfg['layers_per_block']`` and ``cfg['filters_per_layer']``. It is written atomically
    (:func:`cs236781.atomic.atomic_write_text`), so readers never see a half-written file, and is
    strict JSON: a NaN or infinite value is written as null, and a run with a null loss is
    marked ``diverged`` in its config (with the first such epoch) unless it already is.

    :param run_name: Name of the run.
    :param out_dir: Folder of the file (created when missing).
    :param cfg: The run's configuration (a dict); values JSON cannot hold are converted
        (:func:`to_jsonable`).
    :param fit_res: The run's :class:`FitResult`.
    :return: The path of the file written.
    :raises TypeError: ``cfg`` is not a dict or ``fit_res`` not a :class:`FitResult`.
    :raises ValueError: ``cfg`` lacks ``filters_per_layer`` or ``layers_per_block``.
    :raises ResultWriteError: The file cannot be written (an ``OSError`` naming it).
    """
    check_instance("cfg", cfg, dict, "a dict of the run's settings")
    check_instance("fit_res", fit_res, FitResult, "a FitResult")
    for key in ("filters_per_layer", "layers_per_block"):
        if key not in cfg:
            raise ValueError(f"cfg must contain {key!r} (it names the result file)")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, result_filename(run_name, cfg["filters_per_layer"],
                                                 cfg["layers_per_block"]))
    results = _finite(to_jsonable(fit_res._asdict()))
    config = _finite(to_jsonable(cfg))
    bad = _first_null_loss(results)
    if bad is not None and not config.get("diverged"):
        key, epoch, batch, index = bad
        loss = str(getattr(fit_res, key)[index])
        config["diverged"] = dict(epoch=epoch, batch=batch, loss=loss,
                                  message=f"{key.replace('_', ' ')} is {loss} at epoch {epoch}"
                                          + ("" if batch is None else f", batch {batch}")
                                          + " (recorded as null)")
    payload = {"config": config, "results": results}
    try:
        atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False))
    except OSError as err:
        raise ResultWriteError(path, err) from err
    return path


class ResultWriteError(FileWriteError):
    """A result file could not be written (e.g. a full disk); a file of that name is unchanged."""

    def __init__(self, path: str, err: OSError):
        super().__init__(path, err, f"cannot write result file {path}: {os_error_reason(err)}; "
                                    f"the run's checkpoint (if it has one) is kept, so the same "
                                    f"command again resumes instead of starting over")


_LOSSES = ("train_loss", "test_loss")


def _finite(obj):
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _first_null_loss(results: dict) -> Optional[Tuple[str, int, Optional[int], int]]:
    """The first non-finite (now null) loss: ``(key, epoch, batch, index)``, or None.

    The loss lists hold every batch of every epoch; epoch and batch (1-based) follow from the
    index when every epoch has as many batches (else the batch is None and the epoch is the
    proportional one).
    """
    found = []
    for key in _LOSSES:
        values, n = results[key], results["num_epochs"]
        index = next((i for i, v in enumerate(values) if v is None), None)
        if index is None or not n:
            continue
        per_epoch, rest = divmod(len(values), n)
        if per_epoch and not rest:
            found.append((key, index // per_epoch + 1, index % per_epoch + 1, index))
        else:
            found.append((key, index * n // len(values) + 1, None, index))
    return min(found, key=lambda f: (f[1], f[0] != "train_loss")) if found else None


def load_experiment(filename: PathLike) -> Tuple[dict, FitResult]:
    """Read a result file written by :func:`save_experiment`.

    :param filename: Path of the ``.json`` file.
    :return: ``(config, fit_result)``.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: Naming the file, when it is truncated, not JSON, or not shaped like a
        result file (see :func:`result_file_problem`).
    """
    path = os.fspath(filename)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a valid experiment result file: it is not UTF-8 text "
                         f"(byte {err.start}: {raw[err.start:err.start + 1]!r})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a valid experiment result file: it is truncated or "
                         f"not JSON ({err})") from None
    problem = result_file_problem(data)
    if problem:
        raise ValueError(f"{path} is not a valid experiment result file: {problem}")
    res = data["results"]
    fit = FitResult(int(res["num_epochs"]), *([math.nan if v is None else float(v) for v in res[k]]
                                              for k in _FIT_FIELDS[1:]))
    return data["config"], fit


def result_file_problem(data) -> Optional[str]:
    """What is wrong with a parsed result file, or None.

    Expected: an object with exactly ``config`` (an object) and ``results`` (every
    :class:`FitResult` field, numbers only, one accuracy per epoch, accuracies in [0, 100],
    at least one loss per epoch; a loss may be null, which is how a NaN or infinite loss is
    recorded).
    """
    if not isinstance(data, dict) or set(data) != {"config", "results"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        return f"expected an object with the keys 'config' and 'results', got {keys}"
    if not isinstance(data["config"], dict):
        return "'config' must be an object"
    res = data["results"]
    if not isinstance(res, dict) or set(res) != set(_FIT_FIELDS):
        got = sorted(res) if isinstance(res, dict) else type(res).__name__
        return f"'results' must have exactly the fields {list(_FIT_FIELDS)}, got {got}"
    n = res["num_epochs"]
    if not is_int(n) or n < 0:
        return f"'results.num_epochs' must be a non-negative integer, got {n!r}"
    for key in _FIT_FIELDS[1:]:
        values = res[key]
        nullable = key in _LOSSES
        if not isinstance(values, list) or not all(
                is_real(v) or (nullable and v is None) for v in values):
            return f"'results.{key}' must be a list of numbers" + (" (or null)" if nullable else "")
    for key in ("train_acc", "test_acc"):
        if len(res[key]) != n:
            return f"'results.{key}' has {len(res[key])} entries for num_epochs={n}"
        bad = [(i, v) for i, v in enumerate(res[key]) if not 0 <= v <= 100]  # NaN included
        if bad:
            return (f"'results.{key}' must hold percentages in [0, 100], got {bad[0][1]!r} at "
                    f"index {bad[0][0]}")
    for key in _LOSSES:  # one loss per batch: at least one per epoch
        if len(res[key]) < n:
            return (f"'results.{key}' has {len(res[key])} entries, fewer than one per epoch "
                    f"(num_epochs={n})")
    return None


def is_complete(path: PathLike) -> bool:
    """Whether ``path`` is a readable, valid result file (see :func:`load_experiment`)."""
    try:
        load_experiment(path)
    except (OSError, ValueError):
        return False
    return True


# -- before a run: can its files be written? ---------------------------------------------------

def _name_max(folder: str) -> int:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    return 255


def _prepare_folder(folder: str, what: str, created: List[str]) -> None:
    """Create ``folder`` (noting in ``created`` what did not exist) and write a probe file."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ExperimentConfigError(f"{what} {folder!r} is not a folder (it exists as a file)")
    missing = []
    parent = os.path.abspath(folder)
    while not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ExperimentConfigError(f"{what} {folder!r} cannot be created: {parent!r} is a "
                                    f"file, not a folder")
    created.extend(reversed(missing))  # before makedirs: it may fail after making some
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".hw2-write-probe.", suffix=".tmp", dir=folder)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise ExperimentConfigError(f"{what} {folder!r} cannot be written to: "
                                    f"{err.strerror or err}") from None


def _check_name(folder: str, name: str, what: str) -> None:
    limit = _name_max(folder)
    if len(name) + TEMP_NAME_EXTRA > limit:
        raise ExperimentConfigError(
            f"{what} name {name[:40]!r}... is too long for the file system of {folder!r}: "
            f"{len(name)} characters, and with its temporary name it must fit in {limit}")


def prepare_outputs(result_path: PathLike, checkpoint_files: Sequence[PathLike] = ()
                    ) -> List[str]:
    """Make sure a run's result file (and checkpoint) can be written, before it trains.

    For each folder: it is created when missing, temporary files that killed writers left
    there are removed (:func:`cs236781.atomic.remove_stale_temps`), a probe file is written,
    synced and removed, and the file name (with its temporary name) must fit the file
    system's ``NAME_MAX``. A checkpoint path that is a folder is refused.

    :param result_path: The run's result file.
    :param checkpoint_files: Its checkpoint files (the best and the "last" one), if any.

    :return: The folders it created (outermost first), for :func:`remove_empty_folders`
        when the run is then refused.
    :raises ExperimentConfigError: Naming the folder or file and the reason.
    """
    created: List[str] = []
    targets = [("out_dir", os.fspath(result_path))]
    targets += [("checkpoint", os.fspath(path)) for path in checkpoint_files]
    try:
        for what, path in targets:
            folder = os.path.dirname(path) or "."
            if what == "checkpoint" and os.path.isdir(path):
                raise ExperimentConfigError(f"checkpoint file {path!r} is a folder")
            _prepare_folder(folder, "checkpoint folder" if what == "checkpoint" else what,
                            created)
            remove_stale_temps(folder)
            _check_name(folder, os.path.basename(path), "result file" if what == "out_dir"
                        else "checkpoint file")
    except ExperimentConfigError:
        remove_empty_folders(created)
        raise
    return created


def remove_empty_folders(folders: Sequence[str]) -> None:
    """Remove the folders :func:`prepare_outputs` created, innermost first, if still empty."""
    for folder in reversed(list(folders)):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


# -- one process per run -----------------------------------------------------------------------

class RunLock:
    """An exclusive, non-blocking lock on one run: ``flock`` on ``.{result name}.lock``.

    :meth:`acquire` returns False at once when another process holds the run; the lock file
    names the holder (``pid@host``). The lock ends with :meth:`release` or with the process
    (a killed holder frees it), and the released lock file is removed. Use as a context
    manager (``with RunLock(path) as held:``) or call the two methods.
    """

    def __init__(self, result_path: PathLike):
        result = Path(result_path)
        self.path = result.parent / f".{result.name}.lock"
        self._fd: Optional[int] = None

    def acquire(self) -> bool:
        """Take the lock if no other process holds it; True when taken (or already held)."""
        if self._fd is not None or fcntl is None:
            return True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                taken = self._lock_and_sign(fd)
            except BaseException:
                os.close(fd)  # frees the lock if it was taken
                raise
            if taken:
                self._fd = fd
                return True
            os.close(fd)
            if taken is None:
                return False

    def _lock_and_sign(self, fd: int) -> Optional[bool]:
        """Lock the open lock file ``fd`` and write the holder into it.

        :return: True when taken; None when another process holds it; False when the file was
            removed (by the previous holder, between our open and lock): open it again.
        """
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
        return same

    def holder(self) -> str:
        """Who holds the lock, as its file says (``pid@host``), or ``'?'``."""
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or "?"
        return "?"

    def release(self) -> None:
        """Remove the lock file and free the lock (nothing when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self.held})"
