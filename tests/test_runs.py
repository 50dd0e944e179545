"""Tests for hw2.runs: the loaders of a run, and the lock-and-run path's own decisions."""
import pytest
import torch

from helpers import TINY_RUN as TINY
from hw2.config import ExperimentConfig
from hw2.datasets import load_dataset
from hw2.experiments import cnn_experiment
from hw2.results import RunLock
from hw2.runs import RunBusy, make_loaders, open_run

CPU_PATHS = dict(channels_last=False, non_blocking=False)


@pytest.mark.parametrize("loader", ["tensor", "torchvision"])
def test_the_test_loader_is_never_augmented(loader):
    ds_train, ds_test = load_dataset("digits", verbose=False)
    augment = loader == "tensor"  # only the tensor loader augments (the config refuses others)
    config = ExperimentConfig("a", dataset="digits", loader=loader, augment=augment, seed=3,
                              bs_train=32, bs_test=50)
    dl_train, dl_test = make_loaders(config, ds_train, ds_test, torch.device("cpu"), CPU_PATHS)
    # The oracle: the test images themselves, in order, as floats in [0, 1].
    expected = torch.stack([ds_test[i][0] for i in range(len(ds_test))]).float()
    for _ in range(2):  # every pass, not only the first
        images = torch.cat([x for x, _ in dl_test])
        torch.testing.assert_close(images, expected, rtol=0, atol=0)
    if augment:  # ... while the training loader of the same config does augment
        train = next(iter(dl_train))[0].flatten(1)
        originals = torch.stack([ds_train[i][0] for i in range(len(ds_train))]).float().flatten(1)
        unchanged = (train[:, None] == originals[None]).all(-1).any(1)
        assert not unchanged.all()


def test_skip_complete_returns_the_file_without_training(tmp_path, monkeypatch):
    trained = cnn_experiment("k", out_dir=tmp_path, seed=0, **TINY)
    assert trained.trained

    def refuse(*args, **kwargs):
        raise AssertionError("training must not start")

    from hw2 import training
    monkeypatch.setattr(training.Trainer, "fit", refuse)
    kept = cnn_experiment("k", out_dir=tmp_path, seed=0, skip_complete=True, **TINY)
    assert not kept.trained and kept.path == trained.path
    assert kept.result == trained.result and kept.config == trained.config


def test_a_held_run_raises_run_busy_and_leaves_no_folder(tmp_path, no_training):
    config = ExperimentConfig("b", out_dir=str(tmp_path), dataset="digits")
    tmp_path.mkdir(exist_ok=True)
    holder = RunLock(config.result_path)
    assert holder.acquire()
    try:
        with pytest.raises(RunBusy, match="another process"):
            with open_run(config, verbose=False):
                raise AssertionError("the body must not run")
    finally:
        holder.release()
    assert list(tmp_path.iterdir()) == []


def test_the_body_draws_from_the_runs_seed(tmp_path):
    config = ExperimentConfig("c", out_dir=str(tmp_path), dataset="digits", seed=5,
                              filters_per_layer=[4], layers_per_block=1, pool_every=1,
                              hidden_dims=[8])
    with open_run(config, verbose=False) as run:
        # The seed is set after every check: the body's first draw is the seed's first draw.
        drawn = torch.rand(3)
        assert run.record["num_params"] > 0
    torch.manual_seed(5)
    torch.testing.assert_close(drawn, torch.rand(3), rtol=0, atol=0)
