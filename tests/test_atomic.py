"""Tests for hw2.atomic: whole file or old file, synced, permissions from the umask."""
import os
import stat

import pytest

from hw2 import atomic


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
