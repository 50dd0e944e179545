"""Take in a submission: a zip written by ``prepare-submission`` or a plain folder.

A zip is checked from its central directory before anything is extracted: member count,
declared sizes, absolute or ``..`` paths, symbolic links, device files and names that are not
UTF-8 are refused (:class:`IntakeError`, one line). Extraction writes regular files only,
with fixed permissions, and never more bytes than a member declared. The project root is the
folder holding ``hw2/``: the top level, or the one ``hw2-ID/`` folder (both layouts
``prepare-submission`` has written).
"""
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import List

MAX_MEMBERS = 5000
MAX_MEMBER_BYTES = 200 * 2 ** 20
MAX_TOTAL_BYTES = 1024 * 2 ** 20
_UTF8_FLAG = 0x800
_SKIP = {"__pycache__", ".ipynb_checkpoints"}


class IntakeError(Exception):
    """The submission cannot be graded at all; the message says why, in one line."""


@dataclass
class Submission:
    """An extracted submission: its ``root`` (holds ``hw2/`` when ``has_hw2``) and the
    student ``ids`` taken from the zip's or folder's name."""

    name: str
    ids: List[str]
    root: Path
    has_hw2: bool

    def __repr__(self):
        return f"Submission({self.name!r}, ids={self.ids}, root={str(self.root)!r})"


def student_ids(name: str) -> List[str]:
    """``hw2-123_456`` -> ``['123', '456']``; a name without digits gives ``[]``."""
    match = re.search(r"(\d+(?:_\d+)*)$", name)
    return match.group(1).split("_") if match else []


def _member_problem(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not (info.flag_bits & _UTF8_FLAG) and not name.isascii():
        return f"member name {name!r} is not UTF-8"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"member {name!r} is a symbolic link"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"member {name!r} is a device or special file"
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return f"member {name!r} has an absolute path"
    if ".." in path.parts:
        return f"member {name!r} points outside the submission (..)"
    if "\x00" in name:
        return f"member {name!r} has a NUL character"
    if info.file_size > MAX_MEMBER_BYTES:
        return f"member {name!r} is {info.file_size} bytes (limit {MAX_MEMBER_BYTES})"
    return ""


def check_zip(path: Path) -> List[zipfile.ZipInfo]:
    """The zip's members after every check of the central directory; IntakeError if any fails."""
    if not zipfile.is_zipfile(path):
        raise IntakeError(f"{path.name} is not a zip file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise IntakeError(f"{path.name} is not a readable zip file ({err})") from None
    files = [i for i in infos if not i.is_dir()]
    if not files:
        raise IntakeError(f"{path.name} is an empty zip (no files)")
    if len(infos) > MAX_MEMBERS:
        raise IntakeError(f"{path.name} has {len(infos)} members (limit {MAX_MEMBERS})")
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_BYTES:
        raise IntakeError(f"{path.name} expands to {total} bytes (limit {MAX_TOTAL_BYTES}): a zip bomb?")
    for info in infos:
        problem = _member_problem(info)
        if problem:
            raise IntakeError(f"{path.name}: {problem}")
    return infos


def _extract(path: Path, infos: List[zipfile.ZipInfo], dest: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in infos:
            parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".")]
            if not parts or _SKIP.intersection(parts):
                continue
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        written += len(chunk)
                        if written > info.file_size or written > MAX_MEMBER_BYTES:
                            raise IntakeError(f"{path.name}: member {info.filename!r} expands "
                                              f"beyond its declared size")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
                raise IntakeError(f"{path.name}: member {info.filename!r} cannot be extracted "
                                  f"({err})") from None
            target.chmod(0o644)


def _copy_folder(src: Path, dest: Path) -> None:
    """Regular files and folders only (links are skipped), fixed permissions."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if _SKIP.intersection(rel.parts) or path.is_symlink():
            continue
        target = dest / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            target.chmod(0o644)


def _find_root(tree: Path) -> Path:
    if (tree / "hw2").is_dir():
        return tree
    subdirs = [p for p in tree.iterdir() if p.is_dir()]
    for sub in subdirs:
        if (sub / "hw2").is_dir():
            return sub
    return subdirs[0] if len(subdirs) == 1 and not any(tree.glob("*.py")) else tree


def take_in(src, dest: Path) -> Submission:
    """Check and unpack ``src`` (a zip or a folder) into ``dest`` (created, must not exist).

    :raises IntakeError: For a missing path, a bad zip or a refused member.
    """
    src = Path(src)
    if not src.exists():
        raise IntakeError(f"{src} does not exist")
    name = src.name[:-4] if src.is_file() and src.name.lower().endswith(".zip") else src.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    dest.chmod(0o755)
    if src.is_dir():
        _copy_folder(src, dest)
    else:
        _extract(src, check_zip(src), dest)
    for folder in [dest, *[p for p in dest.rglob("*") if p.is_dir()]]:
        folder.chmod(0o755)
    root = _find_root(dest)
    return Submission(name, student_ids(name), root, (root / "hw2").is_dir())
