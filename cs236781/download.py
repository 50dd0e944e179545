"""Download a data file once and unpack it: the course's ``download_data``.

The file is fetched with :mod:`urllib` (``http(s)://``, ``ftp://`` and ``file://`` URLs) into a
temporary file and renamed into place when complete, so an interrupted download never looks
finished. Archives (``.zip``, ``.tar.gz``, ``.tgz``) are unpacked beside it; members that would
land outside the output folder are refused. Without network access the error says where to put
the file by hand.
"""
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple, Union

from cs236781 import atomic
from hw2.validation import check_bool, check_instance

PathLike = Union[str, os.PathLike]
#: Seconds to wait for the server before giving up.
TIMEOUT_SEC = 60
_ARCHIVES = (".zip", ".tar.gz", ".tgz")


class DownloadError(OSError):
    """A file could not be downloaded; the message names the URL and where to put the file."""


def download_data(out_path: PathLike, url: str, extract: bool = True,
                  force: bool = False) -> Tuple[str, Optional[str]]:
    """Download ``url`` into folder ``out_path`` unless it is there, then unpack archives.

    :param out_path: Folder for the file (created if missing).
    :param url: Where to fetch it from; the file keeps the URL's last path component as name.
    :param extract: Unpack ``.zip``, ``.tar.gz`` and ``.tgz`` files into ``out_path``.
    :param force: Download (and unpack) again even if the file already exists.
    :return: ``(out_filename, extracted_dir)``: the downloaded file, and the folder the archive
        unpacked to (its single top-level folder, else ``out_path``), or None when nothing was
        unpacked.
    :raises TypeError: If ``url`` is not a string or a flag is not a bool.
    :raises ValueError: If the URL names no file.
    :raises DownloadError: If the download fails (offline, unknown host, HTTP error, ...).
    :raises ValueError: If an archive is corrupt or holds members outside the output folder.
    """
    check_instance("download_data: url", url, str, "a str")
    extract = check_bool("download_data: extract", extract)
    force = check_bool("download_data: force", force)
    filename = PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not filename:
        raise ValueError(f"download_data: the URL {url!r} does not end in a file name")
    out_dir = Path(out_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / filename
    if out_file.is_file() and not force:
        print(f"File {out_file} exists, skipping download.")
    else:
        _fetch(url, out_file)
    extracted = None
    if extract and filename.lower().endswith(_ARCHIVES):
        extracted = _extract(out_file, out_dir, force)
    return str(out_file), (None if extracted is None else str(extracted))


def _fetch(url: str, out_file: Path) -> None:
    print(f"Downloading {url} ...")
    try:
        with atomic.atomic_path(out_file) as tmp:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SEC) as response, \
                    open(tmp, "wb") as handle:
                shutil.copyfileobj(response, handle)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(
            f"could not download {url} ({reason}). Without network access, download it on "
            f"another machine and put it at {out_file.resolve()}; it is then used as is."
        ) from None
    print(f"Saved to {out_file} ({out_file.stat().st_size / 1024:.0f} KiB).")


def _extract(archive: Path, out_dir: Path, force: bool) -> Path:
    """Unpack ``archive`` into ``out_dir``; return the folder it unpacked to."""
    try:
        names = _member_names(archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{archive} is not a readable archive ({err}); delete it and "
                         "download it again") from None
    root = out_dir.resolve()
    for name in names:
        dest = (root / name).resolve()
        if dest != root and root not in dest.parents:
            raise ValueError(f"refusing to unpack {archive}: member {name!r} would be written "
                             f"outside {root}")
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    single = len(tops) == 1 and any(len(PurePosixPath(n).parts) > 1 for n in names)
    extracted = out_dir / tops.pop() if single else out_dir
    if single and extracted.is_dir() and not force:
        print(f"{extracted} exists, skipping extraction.")
        return extracted
    print(f"Extracting {archive} ...")
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(out_dir)
    else:
        with tarfile.open(archive, "r:gz") as tf:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: no links out, no devices
                tf.extractall(out_dir, filter="data")
            else:
                tf.extractall(out_dir)
    print(f"Extracted {len(names)} entries to {extracted}")
    return extracted


def _member_names(archive: Path) -> List[str]:
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive, "r:gz") as tf:
        return tf.getnames()
