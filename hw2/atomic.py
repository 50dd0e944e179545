"""Atomic file writes for hw2: a re-export of :mod:`cs236781.atomic`, the one implementation.

Result files (:mod:`hw2.results`) and checkpoints (:mod:`hw2.training`) are written with
:func:`atomic_write` / :func:`atomic_write_text`; the course package's notebooks, zips and
downloads use the same functions. See :mod:`cs236781.atomic` for what "atomic" guarantees
(temporary file beside the target, ``fsync``, permissions from the umask, rename, folder
sync) and for :func:`remove_stale_temps`.
"""
from cs236781.atomic import (
    TEMP_NAME_EXTRA, TEMP_SUFFIX, atomic_path, atomic_write, atomic_write_bytes,
    atomic_write_text, new_file_mode, remove_stale_temps,
)

__all__ = ["TEMP_SUFFIX", "TEMP_NAME_EXTRA", "atomic_write", "atomic_path", "atomic_write_text",
           "atomic_write_bytes", "new_file_mode", "remove_stale_temps"]
