"""Tests for the one atomic-write helper (cs236781.atomic): whole
file or old file, synced, permissions from the umask, stale temporary files removed."""
import fcntl
import os
import stat
import time

import pytest

import cs236781.atomic
from cs236781 import atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_writes_text_and_bytes_and_leaves_no_temp_file(tmp_path):
    atomic.atomic_write_text(tmp_path / "a.txt", "héllo")
    atomic.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_permissions_come_from_the_umask_not_mkstemp(tmp_path, umask_027):
    atomic.atomic_write_text(tmp_path / "r.json", "{}")
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640  # 0o666 & ~0o027


def test_a_failure_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_write(target) as f:
            f.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    atomic.atomic_write_text(tmp_path / "x", "data")
    assert events[:2] == ["fsync", "replace"]  # then the folder is synced (best effort)


def test_temporary_file_is_beside_the_target_and_named_after_it(tmp_path):
    with atomic.atomic_write(tmp_path / "res.json", "wb") as f:
        (name,) = os.listdir(tmp_path)  # only the temporary file exists while writing
        assert name.startswith(".res.json.") and name.endswith(atomic.TEMP_SUFFIX)
        f.write(b"1")
    assert (tmp_path / "res.json").read_bytes() == b"1"


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic.atomic_write(tmp_path / "x", "a"):
            pass


def test_hw2_and_cs236781_share_one_implementation():
    from hw2 import checkpoints, results
    assert results.atomic_write_text is cs236781.atomic.atomic_write_text
    assert checkpoints.atomic_write_bytes is cs236781.atomic.atomic_write_bytes
    from cs236781 import download, jupyter_utils, notebooks, submission
    for module in (download, jupyter_utils, notebooks, submission):
        assert module.atomic is cs236781.atomic, module.__name__


@pytest.mark.parametrize("write", ["atomic_write_text", "path"])
def test_both_entry_points_keep_the_permissions_of_a_rewritten_file(tmp_path, umask_027, write):
    target = tmp_path / "nb.ipynb"
    target.write_text("old")
    os.chmod(target, 0o604)  # the user's choice, not what the umask (0o027) would give
    if write == "path":
        with cs236781.atomic.atomic_path(target) as tmp:
            tmp.write_text("new")
    else:
        atomic.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o604


def test_atomic_path_syncs_what_the_caller_wrote(tmp_path, monkeypatch):
    events = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    with cs236781.atomic.atomic_path(tmp_path / "a.zip") as tmp:
        tmp.write_bytes(b"PK")
        assert events == []
    assert events[0] == "fsync" and (tmp_path / "a.zip").read_bytes() == b"PK"


def test_atomic_path_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*nope.* does not exist"):
        with cs236781.atomic.atomic_path(tmp_path / "nope" / "x"):
            pass


def _file(path, text="x", age_s=60.0):
    """Write ``text`` to ``path`` and date it ``age_s`` seconds back."""
    path.write_text(text)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_stale_temps_of_killed_writers_are_removed_live_and_young_ones_kept(tmp_path):
    stale = _file(tmp_path / ".r.json.abcd1234.tmp", "half")
    young = _file(tmp_path / ".s.json.abcd1234.tmp", "just created", age_s=0)
    _file(tmp_path / "notes.tmp")  # not one of our temporary names
    _file(tmp_path / "r.json", "{}")
    with atomic.atomic_write(tmp_path / "live.json") as f:  # a writer still at work
        f.write("being written")
        (live,) = [p for p in tmp_path.iterdir() if p.name.startswith(".live.json.")]
        t = time.time() - 60
        os.utime(live, (t, t))
        removed = atomic.remove_stale_temps(tmp_path)
        assert live.exists()
    assert removed == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [young.name, "notes.tmp", "r.json", "live.json"])
    assert atomic.remove_stale_temps(tmp_path / "missing") == []


def test_a_temp_file_locked_by_another_open_file_is_kept(tmp_path):
    held = _file(tmp_path / ".c.pt.zzzz9999.tmp")
    with open(held, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        assert atomic.remove_stale_temps(tmp_path) == []
    assert atomic.remove_stale_temps(tmp_path) == [held]
