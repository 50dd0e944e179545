"""Tests for hw2.results: the run lock's clean-up on errors, argument types, picklable errors.

Writing, reading and validating result files is tested in test_experiments_cnn.py and
test_grids.py, the lock between processes in test_grid_lock.py.
"""
import errno
import json
import os
import pickle
import re

import pytest

import hw2.results as results
from cs236781.train_results import FitResult
from hw2.results import ResultWriteError, RunLock, prepare_outputs, save_experiment
from hw2.validation import ExperimentConfigError

needs_fcntl = pytest.mark.skipif(results.fcntl is None, reason="RunLock needs fcntl (POSIX)")


@needs_fcntl
@pytest.mark.parametrize("failing", ["ftruncate", "write"])
def test_a_lock_whose_signing_fails_is_not_left_held(tmp_path, monkeypatch, failing):
    result = tmp_path / "run_L1_K8.json"
    first = RunLock(result)

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        first.acquire()
    monkeypatch.undo()
    assert not first.held
    # flock locks belong to open files: a descriptor left open would still hold the lock and
    # refuse this second RunLock of the same process.
    second = RunLock(result)
    assert second.acquire()
    second.release()


@needs_fcntl
def test_the_lock_is_released_when_the_with_block_raises(tmp_path):
    result = tmp_path / "run_L1_K8.json"
    with pytest.raises(RuntimeError):
        with RunLock(result) as held:
            assert held
            raise RuntimeError("training failed")
    assert not RunLock(result).path.exists()
    with RunLock(result) as held_again:
        assert held_again


def fit_result():
    return FitResult(1, [1.0], [50.0], [2.0], [40.0])


@pytest.mark.parametrize("cfg", [[("filters_per_layer", [8]), ("layers_per_block", 1)],
                                 "filters_per_layer layers_per_block"])
def test_save_experiment_wants_a_dict_config(tmp_path, cfg):
    with pytest.raises(TypeError, match=r"cfg must be a dict .*got (list|str)"):
        save_experiment("run", tmp_path, cfg, fit_result())
    assert list(tmp_path.iterdir()) == []


def test_result_write_error_survives_pickling():
    err = ResultWriteError("/out/run_L1_K8.json", OSError(errno.ENOSPC, "No space left on device"))
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ResultWriteError
    assert str(back) == str(err) and back.errno == errno.ENOSPC and back.path == err.path


def test_folders_made_before_a_failed_makedirs_are_removed(tmp_path, monkeypatch):
    real_mkdir = os.mkdir

    def makedirs_that_runs_out_of_inodes(folder, exist_ok=False):
        real_mkdir(tmp_path / "a")  # the outermost folder is made, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "makedirs", makedirs_that_runs_out_of_inodes)
    with pytest.raises(ExperimentConfigError, match="cannot be written to: No space left"):
        prepare_outputs(tmp_path / "a" / "b" / "run_L1_K8.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field", ["train_loss", "test_loss"])
def test_a_result_file_with_fewer_losses_than_epochs_is_refused_naming_file_and_field(
        tmp_path, field):
    path = save_experiment("run", tmp_path, {"filters_per_layer": [8], "layers_per_block": 1},
                           FitResult(2, [1.0, 0.9], [50.0, 60.0], [2.0, 1.5], [40.0, 45.0]))
    assert results.load_experiment(path)[1].num_epochs == 2  # one loss per epoch is enough
    data = json.loads(open(path).read())
    data["results"][field] = [1.0]  # two epochs, one loss
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not a valid experiment "
                                         rf"result file: 'results\.{field}' has 1 entries, "
                                         rf"fewer than one per epoch \(num_epochs=2\)$"):
        results.load_experiment(path)
    assert not results.is_complete(path)  # so a grid runs it again
