"""Atomic file writes: the one place that writes to a temporary file, syncs and renames.

A reader (or a process started after a crash) sees either the old file or the whole new one,
never a half-written one. Result files, checkpoints, notebooks and zips all go through
:func:`atomic_write`:

1. a temporary file ``.{name}.XXXXXXXX.tmp`` is created in the target's own folder (so the
   rename never crosses a file system);
2. the caller writes to it; it is flushed and ``fsync``-ed;
3. it gets the permissions an ordinary new file would get (``0o666`` minus the umask), not
   ``mkstemp``'s ``0o600``, so a group can read results on a shared cluster;
4. it is renamed over the target and the folder is synced; on any failure (or interrupt)
   the temporary file is removed and the old target is left as it was.
"""
import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

__all__ = ["TEMP_SUFFIX", "atomic_write", "atomic_write_text", "atomic_write_bytes"]

#: Suffix of the temporary files (their names are ``.{target name}.{random}.tmp``).
TEMP_SUFFIX = ".tmp"

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every system can open folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    :param path: The file to (re)place. Its folder must exist.
    :param mode: ``'w'`` (text) or ``'wb'`` (binary; e.g. for ``torch.save`` or ``zipfile``).
    :param encoding: Text encoding (text mode only).
    :return: A context manager yielding the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    folder = target.absolute().parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
