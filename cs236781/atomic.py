"""Atomic file writes, the one implementation: a temporary file beside the target, synced and
renamed over it when complete.

A reader (or a process started after a crash) sees either the old file or the whole new one,
never a half-written one. Result files and checkpoints (``hw2``), notebooks, merged HTML,
submission zips and downloads (``cs236781``) all go through this module:

1. a temporary file ``.{name}.XXXXXXXX.tmp`` is created in the target's own folder (so the
   rename never crosses a file system) and locked (``fcntl.flock``) while it is written;
2. the caller writes to it (:func:`atomic_write` yields the open file, :func:`atomic_path`
   its path); it is flushed and ``fsync``-ed;
3. it gets the permissions an ordinary new file would get (``0o666`` less the umask), not
   ``mkstemp``'s private ``0o600``, so a group can read results on a shared cluster;
4. it is renamed over the target and the folder is synced; on any failure (or interrupt)
   the temporary file is removed and the old target is left as it was.

A process killed with SIGKILL cannot remove its temporary file: :func:`remove_stale_temps`
removes such leftovers of a folder, and only those no live writer holds locked.
"""
import contextlib
import os
import stat
import re
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, List, Union

try:  # POSIX; elsewhere temporary files are not locked and only their age tells
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["TEMP_SUFFIX", "atomic_write", "atomic_path", "atomic_write_text",
           "atomic_write_bytes", "write_text", "write_bytes", "new_file_mode",
           "remove_stale_temps"]

#: Suffix of the temporary files (their names are ``.{target name}.{random}.tmp``).
TEMP_SUFFIX = ".tmp"
#: How many characters a temporary file's name adds to its target's name (``.`` + ``.`` +
#: mkstemp's 8 random characters + :data:`TEMP_SUFFIX`).
TEMP_NAME_EXTRA = 2 + 8 + len(TEMP_SUFFIX)
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")

PathLike = Union[str, os.PathLike]


def _mode_for(target: Path) -> int:
    """A rewritten file keeps its permissions (a user's chmod stands); a new one gets the umask's."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return new_file_mode()


def new_file_mode() -> int:
    """The permissions of an ordinary new file: ``0o666`` less the process's umask."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every system can open folders)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _lock(fd: int, blocking: bool = True) -> bool:
    """``flock`` an open file exclusively; False when ``blocking`` is off and it is held."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on a clean exit it replaces ``target``.

    For writers that want a path, not a file object (``zipfile``, ``torch.save(path)``,
    downloads). What they wrote is ``fsync``-ed before the rename.

    :param target: The file to (re)write; its folder must exist.
    :raises FileNotFoundError: If the folder of ``target`` does not exist.
    """
    target = Path(target)
    folder = target.absolute().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {str(target)!r}: folder {str(target.parent)!r} "
                                "does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=folder)
    try:
        _lock(fd)  # held until the rename: remove_stale_temps leaves the file alone
        yield Path(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    _fsync_folder(folder)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``.

    :param path: The file to (re)place. Its folder must exist.
    :param mode: ``'w'`` (text) or ``'wb'`` (binary; e.g. for ``torch.save``).
    :param encoding: Text encoding (text mode only).
    :return: A context manager yielding the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


#: Short names used by the ``cs236781`` modules.
write_text = atomic_write_text
write_bytes = atomic_write_bytes


def remove_stale_temps(folder: PathLike, min_age_s: float = 5.0) -> List[Path]:
    """Remove the temporary files killed writers left in ``folder`` (not its sub-folders).

    A temporary file is stale when no process holds its lock (its writer died) and it is
    older than ``min_age_s`` seconds (so that a file whose writer has created it but not yet
    locked it is spared). A missing folder has none.

    :return: The files removed.
    """
    folder = Path(folder)
    removed: List[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.iterdir():
        if not _TEMP_NAME.match(path.name) or not path.is_file():
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime < min_age_s:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                if _lock(fd, blocking=False):
                    path.unlink()
                    removed.append(path)
            finally:
                os.close(fd)
    return removed
