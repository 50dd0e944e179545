"""Tests for hw2.runs: the loaders of a run, the lock-and-run path's own decisions, and the
checkpoint a resumed run reads once (before any folder is kept) and hands to fit."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from helpers import TINY_RUN as TINY, assert_fit_equal, files_in
from hw2.checkpoints import checkpoint_file
from hw2.classifier import ArgMaxClassifier
from hw2.config import MODEL_TYPES, ExperimentConfig
from hw2.datasets import load_dataset
from hw2.experiment_trainer import ExperimentTrainer
from hw2.experiments import cnn_experiment
from hw2.results import RunLock
from hw2.runs import RunBusy, make_loaders, open_run
from hw2.validation import ExperimentConfigError

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


def test_a_resumed_run_reads_its_checkpoint_file_once(tmp_path, monkeypatch):
    checkpoint = str(tmp_path / "ck" / "run")
    settings = dict(TINY, seed=0, checkpoints=checkpoint)  # two epochs
    cnn_experiment("r", out_dir=tmp_path / "first", **dict(settings, epochs=1))
    reads = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(Path(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    resumed = cnn_experiment("r", out_dir=tmp_path / "second", **settings)
    # Checked before any folder is kept, then handed to fit: one read, of the best file (the
    # finished one-epoch fit removed its last file).
    assert [p for p in reads if p.parent == tmp_path / "ck"] == [Path(checkpoint + ".pt")]
    assert resumed.config["resumed_from_epoch"] == 1 and resumed.result.num_epochs == 2
    monkeypatch.setattr(torch, "load", real_load)
    # What was read is what fit continued from: the run of two epochs in one go.
    assert_fit_equal(resumed.result, cnn_experiment("r", out_dir=tmp_path / "ref", seed=0,
                                                    **TINY).result)


def _save_outside_fit(config: ExperimentConfig, path: Path) -> None:
    """What a student's ``trainer.save_checkpoint(path)`` after training writes: the weights
    of the configuration's model and the run's identity, but no fit progress."""
    with open_run(config, verbose=False) as run:
        cfg = run.config
        network = MODEL_TYPES[cfg.model_type](
            run.info.in_size, run.info.num_classes, channels=cfg.channels,
            pool_every=cfg.pool_every, hidden_dims=list(cfg.hidden_dims), **cfg.kw)
        model = ArgMaxClassifier(network)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        trainer = ExperimentTrainer(model, nn.CrossEntropyLoss(), optimizer, run.device,
                                    **run.trainer_options)
        trainer.save_checkpoint(path)


def test_a_checkpoint_saved_outside_fit_is_refused_before_training(tmp_path, no_training):
    settings = {k: v for k, v in TINY.items() if k != "verbose"}
    checkpoint = str(tmp_path / "ck")
    _save_outside_fit(ExperimentConfig.from_kwargs(
        dict(settings, run_name="w", out_dir=str(tmp_path / "writer"), seed=0)),
        checkpoint_file(checkpoint))
    saved = torch.load(checkpoint_file(checkpoint), weights_only=True)
    assert saved["fit_state"] is None and saved["identity"]["seed"] == 0  # the same run
    written = checkpoint_file(checkpoint).read_bytes()
    with pytest.raises(ExperimentConfigError, match=r"cannot resume from checkpoint \S*ck\.pt: "
                                                    r"checkpoint \S*ck\.pt holds no fit "
                                                    r"progress \(saved outside fit\)"):
        cnn_experiment("w", out_dir=tmp_path / "out", checkpoints=checkpoint, seed=0, **TINY)
    assert files_in(tmp_path / "out") == []  # no result file, no folder
    assert checkpoint_file(checkpoint).read_bytes() == written  # left as it was
