"""Tests for cs236781.download.download_data, offline: file:// URLs, pre-existing files, archives,
and an unreachable server."""
import io
import os
import socket
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from cs236781 import download
from cs236781.download import DownloadError, download_data


def make_zip(path: Path, members) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tgz(path: Path, members) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_file_url_is_downloaded_into_the_folder(tmp_path):
    src = tmp_path / "remote" / "weights.bin"
    src.parent.mkdir()
    src.write_bytes(b"\x00\x01payload")
    out_file, extracted = download_data(tmp_path / "data" / "sub", src.as_uri())
    assert out_file == str(tmp_path / "data" / "sub" / "weights.bin") and extracted is None
    assert Path(out_file).read_bytes() == b"\x00\x01payload"
    assert [p.name for p in Path(out_file).parent.iterdir()] == ["weights.bin"]  # no temp files


def test_existing_file_is_used_without_downloading(tmp_path, monkeypatch, capsys):
    (tmp_path / "cifar.bin").write_bytes(b"already here")

    def no_network(*args, **kwargs):
        raise AssertionError("urlopen must not be called for an existing file")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    out_file, _ = download_data(tmp_path, "https://example.invalid/files/cifar.bin")
    assert Path(out_file).read_bytes() == b"already here"
    assert "exists, skipping download" in capsys.readouterr().out


def test_force_downloads_again(tmp_path):
    src = tmp_path / "remote.txt"
    src.write_text("new")
    out = tmp_path / "out"
    out.mkdir()
    (out / "remote.txt").write_text("old")
    download_data(out, src.as_uri(), force=True)
    assert (out / "remote.txt").read_text() == "new"


@pytest.mark.parametrize("suffix, maker", [(".zip", make_zip), (".tar.gz", make_tgz),
                                           (".tgz", make_tgz)])
def test_archives_are_extracted_to_their_top_folder(tmp_path, suffix, maker):
    archive = maker(tmp_path / f"faces{suffix}", {"faces/a.txt": b"A", "faces/deep/b.txt": b"B"})
    out_file, extracted = download_data(tmp_path / "data", archive.as_uri())
    assert Path(out_file).name == f"faces{suffix}"
    assert extracted == str(tmp_path / "data" / "faces")
    assert (Path(extracted) / "a.txt").read_bytes() == b"A"
    assert (Path(extracted) / "deep" / "b.txt").read_bytes() == b"B"
    # extract=False leaves the archive packed.
    out2, none = download_data(tmp_path / "packed", archive.as_uri(), extract=False)
    assert none is None and sorted(os.listdir(tmp_path / "packed")) == [f"faces{suffix}"]


def test_archive_without_a_single_top_folder_extracts_into_the_output(tmp_path):
    archive = make_zip(tmp_path / "loose.zip", {"a.txt": b"A", "b.txt": b"B"})
    _, extracted = download_data(tmp_path / "data", archive.as_uri())
    assert extracted == str(tmp_path / "data")
    assert (tmp_path / "data" / "a.txt").read_bytes() == b"A"


def test_archive_members_outside_the_folder_are_refused(tmp_path):
    archive = make_zip(tmp_path / "evil.zip", {"../escaped.txt": b"x"})
    with pytest.raises(ValueError, match="outside"):
        download_data(tmp_path / "data", archive.as_uri())
    assert not (tmp_path / "escaped.txt").exists()


def test_corrupt_archive_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="broken.zip is not a readable archive.*download it again"):
        download_data(tmp_path / "data", "https://example.invalid/broken.zip")


def test_offline_error_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    url = "https://data.example.org/sets/cifar-10-python.tar.gz"
    with pytest.raises(DownloadError) as info:
        download_data(tmp_path / "data", url)
    message = str(info.value)
    assert url in message and "name resolution" in message
    assert str((tmp_path / "data" / "cifar-10-python.tar.gz").resolve()) in message
    assert isinstance(info.value, OSError)
    assert list((tmp_path / "data").iterdir()) == []  # nothing half-written


def test_missing_local_file_url_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="could not download file://"):
        download_data(tmp_path / "data", (tmp_path / "missing.bin").as_uri())


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(url=3), TypeError, "url must be a str, got int"),
    (dict(url="https://example.org/"), ValueError, "does not end in a file name"),
    (dict(url="https://example.org/a.bin", force="yes"), TypeError,
     r"^download_data: force must be True or False, got 'yes'$"),
    (dict(url="https://example.org/a.bin", extract=1), TypeError,
     r"^download_data: extract must be True or False, got 1$"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        download_data(tmp_path, **kwargs)


def test_timeout_is_passed_to_urlopen(tmp_path, monkeypatch):
    seen = {}

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        seen["timeout"] = timeout
        return Response(b"ok")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    download_data(tmp_path, "https://example.org/x.bin")
    assert seen["timeout"] == download.TIMEOUT_SEC and (tmp_path / "x.bin").read_bytes() == b"ok"
