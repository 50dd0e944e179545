"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

A reader never sees a half-written file, and a failure leaves the previous file (if any) as
it was. The new file gets the permissions of the file it replaces, or the usual ones for a new
file (``0o666`` less the umask) rather than the private ``0o600`` of a temporary file.
"""
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    :param target: The file to (re)write; its folder must exist.
    :raises FileNotFoundError: If the folder of ``target`` does not exist.
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(target)!r}: folder {str(target.parent)!r} "
                                "does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(target: PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))


def _mode_for(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o7777
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
