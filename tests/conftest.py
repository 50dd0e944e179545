"""Fixtures shared by the test files (plain helpers are in ``helpers.py``)."""
import pytest

import helpers


@pytest.fixture
def offline_data(monkeypatch, tmp_path):
    """No real data set on disk and no way to download one: any attempt fails at once."""
    for key, value in helpers.no_download_env(tmp_path / "no-data").items():
        monkeypatch.setenv(key, value)
    return tmp_path / "no-data"


@pytest.fixture
def no_training(monkeypatch):
    """Make any training attempt fail the test (for checks that must happen before it)."""
    from hw2.training import Trainer

    def refuse(*args, **kwargs):
        raise AssertionError("training must not start")

    monkeypatch.setattr(Trainer, "fit", refuse)
