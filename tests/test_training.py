"""Tests for hw2.training.

The loop logic (accuracy bookkeeping, batch limits, early stopping, printing, checkpoints) is
tested with a scripted fake trainer whose batches return known results; the two real
trainers are tested against hand counts and against an independent autograd/torch.optim step.
"""
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import hw2.answers as answers
import hw2.layers as layers
import hw2.optimizers as optimizers
import hw2.training as training
from cs236781.train_results import BatchResult, EpochResult, FitResult
from hw2.classifier import ArgMaxClassifier
from hw2.datasets import load_dataset
from hw2.experiment_trainer import ExperimentTrainer
from hw2.training import ClassifierTrainer, LayerTrainer, Trainer


def loader(n=10, batch_size=3, features=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class ScriptedTrainer(Trainer):
    """A trainer whose batches return scripted results and record what they saw.

    ``test_losses[e]`` is the loss of every test batch in epoch ``e`` (0-based),
    ``test_correct[e]`` the number of correct samples per test batch in that epoch.
    """

    def __init__(self, test_losses=None, test_correct=None, model=None, train_loss=1.0):
        super().__init__(model if model is not None else nn.Linear(4, 3))
        self.test_losses = test_losses
        self.test_correct = test_correct
        self.train_loss = train_loss
        self.train_calls = 0
        self.test_calls = 0
        self.test_epochs = 0
        self.weights_seen = []

    def train_batch(self, batch):
        self.train_calls += 1
        if hasattr(self.model, "weight"):
            self.weights_seen.append(self.model.weight.detach().clone())
        loss = self.train_loss(self.train_calls) if callable(self.train_loss) else self.train_loss
        return BatchResult(loss, 1)

    def test_batch(self, batch):
        self.test_calls += 1
        e = self.test_epochs
        loss = self.test_losses[e] if self.test_losses is not None else 1.0
        correct = self.test_correct[e] if self.test_correct is not None else 0
        return BatchResult(loss, min(correct, len(batch[0])))

    def test_epoch(self, dl_test, **kw):
        result = super().test_epoch(dl_test, **kw)
        self.test_epochs += 1
        return result


# ----------------------------------------------------------------------------------------------
# Epoch loop: accuracy, max_batches, progress bars
# ----------------------------------------------------------------------------------------------


def test_epoch_accuracy_counts_samples_including_a_partial_last_batch():
    # 10 samples in batches 3,3,3,1; every batch reports 1 correct -> 4 / 10 = 40%.
    trainer = ScriptedTrainer()
    result = trainer.train_epoch(loader(n=10, batch_size=3), verbose=False)
    assert isinstance(result, EpochResult)
    assert result.losses == [1.0] * 4
    assert result.accuracy == pytest.approx(40.0)


@pytest.mark.parametrize("max_batches, expected", [(None, 4), (1, 1), (2, 2), (4, 4), (10, 4)])
def test_max_batches_is_honoured(max_batches, expected):
    trainer = ScriptedTrainer()
    result = trainer.train_epoch(loader(n=10, batch_size=3), verbose=False, max_batches=max_batches)
    assert trainer.train_calls == expected
    assert len(result.losses) == expected
    seen = min(10, 3 * expected)
    assert result.accuracy == pytest.approx(100 * expected / seen)


def test_fit_passes_max_batches_to_both_phases():
    trainer = ScriptedTrainer()
    res = trainer.fit(loader(n=30), loader(n=30), num_epochs=3, max_batches=2, print_every=0)
    assert trainer.train_calls == 6 and trainer.test_calls == 6
    assert len(res.train_loss) == 6 and len(res.test_loss) == 6


def test_progress_bar_is_labelled_and_reports_average_loss_and_accuracy(capsys):
    trainer = ScriptedTrainer(test_losses=[0.5], test_correct=[3])
    trainer.test_epoch(loader(n=6, batch_size=3), verbose=True)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "test_batch" in text
    assert "Avg. Loss 0.500" in text and "Accuracy 100.0" in text


def test_verbose_false_prints_no_bar(capsys):
    trainer = ScriptedTrainer()
    trainer.train_epoch(loader(), verbose=False)
    trainer.test_epoch(loader(), verbose=False)
    trainer.fit(loader(), loader(), num_epochs=2, verbose=False, print_every=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_empty_loader_is_an_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), batch_size=2)
    with pytest.raises(ValueError, match="no batches"):
        ScriptedTrainer().train_epoch(empty, verbose=False)


# ----------------------------------------------------------------------------------------------
# fit: printing, early stopping, results
# ----------------------------------------------------------------------------------------------


def epoch_lines(text):
    return [line for line in text.splitlines() if line.startswith("--- EPOCH")]


@pytest.mark.parametrize("num_epochs, print_every, expected", [
    (30, 6, [1, 7, 13, 19, 25, 30]),  # the seed's dropout experiment
    (10, 1, list(range(1, 11))),
    (5, 2, [1, 3, 5]),
    (4, 10, [1, 4]),
    (5, 0, []),
])
def test_print_every_selects_epoch_lines(capsys, num_epochs, print_every, expected):
    ScriptedTrainer().fit(loader(n=3), loader(n=3), num_epochs, print_every=print_every, verbose=False)
    lines = epoch_lines(capsys.readouterr().out)
    assert lines == [f"--- EPOCH {i}/{num_epochs} ---" for i in expected]


@pytest.mark.parametrize("kw, expected", [
    ({}, [True, True, False, False, True, True]),  # epochs 1 and 3 print, epoch 2 is silent
    (dict(verbose=True), [True] * 6),
    (dict(verbose=False), [False] * 6),
])
def test_bars_follow_print_schedule_unless_verbose_given(monkeypatch, kw, expected):
    shown = []
    real_tqdm = training.tqdm

    def spy(*args, **kwargs):
        shown.append((kwargs["desc"], not kwargs["disable"]))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(training, "tqdm", spy)
    ScriptedTrainer().fit(loader(n=3), loader(n=3), num_epochs=3, print_every=2, **kw)
    assert [desc for desc, _ in shown] == ["train_batch", "test_batch"] * 3
    assert [on for _, on in shown] == expected


def test_fit_result_collects_per_batch_losses_and_per_epoch_accuracies():
    trainer = ScriptedTrainer(test_losses=[3.0, 2.0, 1.0], test_correct=[0, 1, 2], train_loss=lambda k: float(k))
    res = trainer.fit(loader(n=4, batch_size=2), loader(n=4, batch_size=2), num_epochs=3, print_every=0)
    assert isinstance(res, FitResult)
    assert res.num_epochs == 3
    assert res.train_loss == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert res.train_acc == [50.0, 50.0, 50.0]
    assert res.test_loss == [3.0, 3.0, 2.0, 2.0, 1.0, 1.0]
    assert res.test_acc == [0.0, 50.0, 100.0]


@pytest.mark.parametrize("early_stopping, expected_epochs, stops", [
    # epoch mean test losses: 5, 4, 4.5, 4.2, 4.0, 3.0, 3.5, ...; best so far is 4 at epoch 2
    # (4.0 at epoch 5 does not beat it), so epochs 3, 4, 5 are three epochs without improvement.
    (1, 3, True),
    (2, 4, True),
    (3, 5, True),
    (4, 10, True),  # epoch 6 improves (3.0); 7..10 do not: the 4th of them is the last epoch
    (5, 10, False),
    (None, 10, False),
])
def test_early_stopping_stops_at_the_right_epoch(early_stopping, expected_epochs, stops, capsys):
    losses = [5.0, 4.0, 4.5, 4.2, 4.0, 3.0, 3.5, 3.1, 3.2, 3.3]
    trainer = ScriptedTrainer(test_losses=losses)
    res = trainer.fit(loader(n=3), loader(n=3), num_epochs=10, early_stopping=early_stopping,
                      verbose=False)
    assert res.num_epochs == expected_epochs
    assert len(res.test_acc) == len(res.train_acc) == expected_epochs
    assert trainer.test_epochs == expected_epochs
    stopped = "Early stopping after epoch" in capsys.readouterr().out
    assert stopped == stops


def test_nan_training_loss_raises_naming_epoch_and_batch():
    trainer = ScriptedTrainer(train_loss=lambda k: float("nan") if k == 6 else 1.0)
    # 2 batches per epoch: call 6 is epoch 3, batch 2
    with pytest.raises(FloatingPointError, match=r"epoch 3, batch 2"):
        trainer.fit(loader(n=4, batch_size=2), loader(n=2), num_epochs=5, print_every=0)


def test_inf_training_loss_outside_fit_names_the_batch():
    trainer = ScriptedTrainer(train_loss=lambda k: float("inf") if k == 2 else 1.0)
    with pytest.raises(FloatingPointError, match=r"inf at batch 2"):
        trainer.train_epoch(loader(), verbose=False)


def test_training_diverged_survives_pickling_with_its_fields():
    trainer = ScriptedTrainer(train_loss=lambda k: float("nan") if k == 3 else 1.0)
    with pytest.raises(training.TrainingDiverged) as info:
        trainer.fit(loader(n=4, batch_size=2), loader(n=2), num_epochs=3, print_every=0)
    err = info.value
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is training.TrainingDiverged and str(back) == str(err)
    assert (back.epoch, back.batch) == (2, 1) and math.isnan(back.loss)
    assert back.fit_result == err.fit_result and back.fit_result.num_epochs == 1


@pytest.mark.parametrize("kwargs, exc, needle", [
    (dict(num_epochs=-1), ValueError, "num_epochs"),
    (dict(num_epochs=2.5), TypeError, "num_epochs"),
    (dict(num_epochs=2, early_stopping=0), ValueError, "early_stopping"),
    (dict(num_epochs=2, print_every=-1), ValueError, "print_every"),
    (dict(num_epochs=2, max_batches=0), ValueError, "max_batches"),
    (dict(num_epochs=2, batch_limit=3), TypeError, "batch_limit"),
    (dict(num_epochs=2, verbose="yes"), TypeError, "verbose"),
])
def test_fit_rejects_bad_arguments(kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        ScriptedTrainer().fit(loader(), loader(), **kwargs)


def test_trainer_is_abstract():
    with pytest.raises(TypeError):
        Trainer(nn.Linear(2, 2))


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def test_checkpoint_written_on_improvement_and_resumed(tmp_path, capsys):
    ckpt = tmp_path / "run"
    correct = [0, 1, 2, 1, 2, 3]  # test accuracy improves in epochs 1, 2, 3 and 6
    first = ScriptedTrainer(test_correct=correct, model=nn.Linear(4, 3))
    with torch.no_grad():
        first.model.weight.fill_(0.25)
    res1 = first.fit(loader(n=3), loader(n=3), num_epochs=4, checkpoints=str(ckpt), print_every=0)
    path = tmp_path / "run.pt"
    assert path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp files left
    saved = torch.load(path, weights_only=True)
    assert saved["fit_state"]["epochs_done"] == 3  # epoch 4 did not improve: not saved
    assert saved["fit_state"]["best_acc"] == pytest.approx(100 * 2 / 3)

    # A fresh trainer with different weights resumes after epoch 3 and runs epochs 4..6.
    second = ScriptedTrainer(test_correct=correct, model=nn.Linear(4, 3))
    second.test_epochs = 3  # the script continues where the checkpoint stopped
    res2 = second.fit(loader(n=3), loader(n=3), num_epochs=6, checkpoints=str(ckpt), print_every=1)
    assert second.train_calls == 3  # one batch per epoch, 3 remaining epochs
    assert torch.equal(second.weights_seen[0], torch.full((3, 4), 0.25))  # weights restored
    assert res2.num_epochs == 6
    assert res2.test_acc[:3] == res1.test_acc[:3]
    assert res2.test_acc[3:] == pytest.approx([100 / 3, 200 / 3, 100.0])
    out = capsys.readouterr().out
    assert "Resuming from" in out and epoch_lines(out)[0] == "--- EPOCH 4/6 ---"
    assert torch.load(path, weights_only=True)["fit_state"]["epochs_done"] == 6


def test_resume_with_all_epochs_done_runs_nothing(tmp_path):
    first = ScriptedTrainer(test_correct=[1, 2])
    first.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=str(tmp_path / "c"), print_every=0)
    second = ScriptedTrainer()
    res = second.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=str(tmp_path / "c"),
                     print_every=0)
    assert second.train_calls == 0 and res.num_epochs == 2


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    ckpt = str(tmp_path / "arch")
    ScriptedTrainer(test_correct=[1], model=nn.Linear(4, 3)).fit(
        loader(n=3), loader(n=3), num_epochs=1, checkpoints=ckpt, print_every=0)
    other = ScriptedTrainer(model=nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(ValueError, match="different architecture.*missing 0.weight"):
        other.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=ckpt, print_every=0)
    wider = ScriptedTrainer(model=nn.Linear(4, 5))
    with pytest.raises(ValueError, match=r"weight has shape \(3, 4\) in the checkpoint but \(5, 4\)"):
        wider.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=ckpt, print_every=0)


@pytest.mark.parametrize("name, expected", [
    ("run", "run.pt"), ("run.pt", "run.pt"), ("a/b/run", "a/b/run.pt"), ("run.v2", "run.v2.pt"),
])
def test_checkpoint_file_appends_pt_once(name, expected):
    assert Trainer.checkpoint_file(name) == Path(expected)


@pytest.mark.parametrize("bad, exc", [("", ValueError), (3, TypeError), (None, TypeError)])
def test_checkpoint_file_rejects_non_names(bad, exc):
    with pytest.raises(exc, match="checkpoints must be a non-empty file name"):
        Trainer.checkpoint_file(bad)


def test_resume_from_checks_without_loading_and_fit_takes_it_without_reading_again(
        tmp_path, monkeypatch):
    ckpt = str(tmp_path / "run")
    ScriptedTrainer(test_correct=[1, 2]).fit(loader(n=3), loader(n=3), num_epochs=2,
                                             checkpoints=ckpt, print_every=0)
    assert ScriptedTrainer().resume_from(tmp_path / "missing") is None
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    trainer = ScriptedTrainer(test_correct=[1, 2, 3])
    before = trainer.model.weight.detach().clone()
    checkpoint = trainer.resume_from(ckpt)
    assert checkpoint.epochs_done == 2
    assert checkpoint.fit_state["best_acc"] == pytest.approx(200 / 3)
    assert torch.equal(trainer.model.weight, before)  # read and checked, not loaded
    trainer.test_epochs = 2
    res = trainer.fit(loader(n=3), loader(n=3), num_epochs=3, checkpoints=ckpt, print_every=0,
                      resume=checkpoint)
    assert len(loads) == 1  # resume_from read it; fit continued from the value it was given
    assert trainer.train_calls == 1 and res.num_epochs == 3 and len(res.train_acc) == 3
    # A fit given no checkpoint value reads the (now updated) file itself.
    ScriptedTrainer().fit(loader(n=3), loader(n=3), num_epochs=3, checkpoints=ckpt, print_every=0)
    assert len(loads) == 2


def test_a_fit_resumes_the_same_way_from_the_file_or_from_the_value_after_training_on(tmp_path):
    # The checkpoint value holds the whole state: training the model between resume_from and
    # fit changes nothing, whether fit is given the value or reads the file.
    data = TensorDataset(torch.randn(6, 4), torch.randint(0, 3, (6,)))
    dl = DataLoader(data, batch_size=3)

    def sgd_trainer():
        model = nn.Linear(4, 3)
        return ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.5))

    ckpt = str(tmp_path / "run")
    sgd_trainer().fit(dl, dl, num_epochs=1, checkpoints=ckpt, print_every=0)
    best = Trainer.checkpoint_file(ckpt)
    after_one_epoch = best.read_bytes()
    fresh = sgd_trainer()
    expected = fresh.fit(dl, dl, num_epochs=2, checkpoints=ckpt, print_every=0)
    for given in (False, True):
        best.write_bytes(after_one_epoch)  # the same file again
        trainer = sgd_trainer()
        checkpoint = trainer.resume_from(ckpt)
        assert checkpoint.epochs_done == 1
        trainer.train_epoch(dl, verbose=False)  # the model moves on
        result = trainer.fit(dl, dl, num_epochs=2, checkpoints=ckpt, print_every=0,
                             resume=checkpoint if given else None)
        assert result == expected
        assert torch.equal(trainer.model.weight, fresh.model.weight)


def test_fit_accepts_numpy_integers():
    np = pytest.importorskip("numpy")
    res = ScriptedTrainer().fit(loader(n=3), loader(n=3), num_epochs=np.int64(2),
                                early_stopping=np.int32(5), print_every=0, max_batches=np.int64(1))
    assert res.num_epochs == 2 and len(res.train_loss) == 2


def test_bar_text_is_not_relabelled_on_every_batch(monkeypatch):
    labels = []
    real_tqdm = training.tqdm

    updates, counts = [], []

    class CountingBar(real_tqdm):
        def set_description(self, desc=None, refresh=True):
            labels.append(desc)
            super().set_description(desc, refresh)

        def update(self, n=1):
            updates.append(n)
            return super().update(n)

        def close(self):
            counts.append(self.n)
            super().close()

    monkeypatch.setattr(training, "tqdm", CountingBar)
    result = ScriptedTrainer().train_epoch(loader(n=400, batch_size=1), verbose=True)
    assert len(result.losses) == 400
    assert counts and set(counts) == {400} and sum(updates) == 400  # the bar ends complete
    assert len(updates) < 50  # advanced per redraw interval, not per batch
    # One label after the first batch, one per redraw interval (the epoch lasts well under a
    # second here) and the final summary: far fewer than one per batch.
    assert 2 <= len(labels) < 50
    assert labels[-1].startswith("train_batch (Avg. Loss 1.000")


class RandomTrainer(Trainer):
    """Batch losses drawn from every random source a fit has: the batch (a shuffling loader
    with its own generator), dropout and torch.rand (the global torch generator), numpy and
    Python's random. A resumed fit repeats them only if every state was restored."""

    def __init__(self, die_in_epoch=None, **kw):
        super().__init__(nn.Dropout(0.5), **kw)
        self.die_in_epoch, self.epochs_started = die_in_epoch, 0

    def train_epoch(self, dl, **kw):
        self.epochs_started += 1
        if self.epochs_started == self.die_in_epoch:
            raise KeyboardInterrupt  # stands for a kill in the middle of the run
        return super().train_epoch(dl, **kw)

    def train_batch(self, batch):
        import random
        np = pytest.importorskip("numpy")
        x = self.model(batch[0])
        return BatchResult(float(x.sum() + torch.rand(()) + np.random.rand() + random.random()),
                           int(batch[1].sum()))

    def test_batch(self, batch):
        return BatchResult(float(torch.rand(())), 1)


def shuffled(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(12, 4, generator=gen), torch.randint(0, 2, (12,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def _reseed(seed):
    import random
    np = pytest.importorskip("numpy")
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_a_fit_interrupted_and_resumed_equals_the_uninterrupted_one(tmp_path):
    _reseed(0)
    expected = RandomTrainer().fit(shuffled(), shuffled(1), num_epochs=4, print_every=0)
    ckpt = str(tmp_path / "r")
    _reseed(0)
    with pytest.raises(KeyboardInterrupt):
        RandomTrainer(die_in_epoch=3).fit(shuffled(), shuffled(1), num_epochs=4,
                                          checkpoints=ckpt, print_every=0)
    last = Trainer.last_checkpoint_file(ckpt)
    assert torch.load(last, weights_only=True)["fit_state"]["epochs_done"] == 2
    _reseed(123)  # another process: other global states, fresh loaders
    resumed = RandomTrainer().fit(shuffled(), shuffled(1), num_epochs=4, checkpoints=ckpt,
                                  print_every=0)
    assert resumed == expected  # every loss and accuracy exactly
    assert not last.exists() and Trainer.checkpoint_file(ckpt).exists()


@pytest.mark.parametrize("die_in_epoch", [None, 2])  # a finished run, an interrupted one
def test_a_run_extended_to_more_epochs_equals_the_longer_uninterrupted_one(tmp_path, die_in_epoch):
    _reseed(0)
    expected = RandomTrainer().fit(shuffled(), shuffled(1), num_epochs=4, print_every=0)
    ckpt = str(tmp_path / "r")
    _reseed(0)
    first = RandomTrainer(die_in_epoch=die_in_epoch, identity={"seed": 0})
    if die_in_epoch is None:
        assert first.fit(shuffled(), shuffled(1), num_epochs=2, checkpoints=ckpt,
                         print_every=0).num_epochs == 2
    else:
        with pytest.raises(KeyboardInterrupt):
            first.fit(shuffled(), shuffled(1), num_epochs=2, checkpoints=ckpt, print_every=0)
    with pytest.raises(ValueError, match="belongs to another run: seed=0 in the checkpoint"):
        RandomTrainer(identity={"seed": 1}).fit(shuffled(), shuffled(1), num_epochs=4,
                                                checkpoints=ckpt, print_every=0)
    _reseed(123)
    extended = RandomTrainer(identity={"seed": 0}).fit(shuffled(), shuffled(1), num_epochs=4,
                                                       checkpoints=ckpt, print_every=0)
    assert extended == expected


def test_the_last_checkpoint_follows_every_epoch_and_the_best_file_only_improvements(tmp_path):
    ckpt = str(tmp_path / "run")
    seen = []
    trainer = ScriptedTrainer(test_correct=[2, 1, 1, 3])
    real_save = trainer.save_checkpoint

    def spy(name, **kw):
        seen.append((Path(name).name, kw["fit_state"].epochs_done))
        return real_save(name, **kw)

    trainer.save_checkpoint = spy
    trainer.fit(loader(n=3), loader(n=3), num_epochs=4, checkpoints=ckpt, print_every=0)
    assert seen == [("run.pt", 1), ("run.last.pt", 1), ("run.last.pt", 2), ("run.last.pt", 3),
                    ("run.pt", 4), ("run.last.pt", 4)]
    assert Trainer.last_checkpoint_file("a/run") == Path("a/run.last.pt")
    assert Trainer.last_checkpoint_file("run.pt") == Path("run.last.pt")
    Trainer.remove_checkpoints(ckpt)
    assert list(tmp_path.iterdir()) == []


def test_a_test_accuracy_equal_to_the_best_does_not_replace_the_best_checkpoint(tmp_path):
    ckpt = str(tmp_path / "run")
    # accuracies 1/3, 2/3, 2/3 (equal to the best), 1/3
    ScriptedTrainer(test_correct=[1, 2, 2, 1]).fit(loader(n=3), loader(n=3), num_epochs=4,
                                                   checkpoints=ckpt, print_every=0)
    best = torch.load(tmp_path / "run.pt", weights_only=True)["fit_state"]
    assert best["epochs_done"] == 2 and best["best_acc"] == pytest.approx(200 / 3)


def test_a_checkpoint_of_another_run_is_refused_naming_the_keys(tmp_path):
    ckpt = str(tmp_path / "run")
    ScriptedTrainer(test_correct=[1]).fit(loader(n=3), loader(n=3), num_epochs=1,
                                          checkpoints=ckpt, print_every=0)
    saved = torch.load(tmp_path / "run.pt", weights_only=True)
    saved["identity"] = {"seed": 1, "lr": 0.01, "K": (8, 16)}
    torch.save(saved, tmp_path / "run.pt")
    same = ScriptedTrainer()
    same.identity = {"seed": 1, "lr": 0.01, "K": [8, 16]}  # a tuple saved equals a list
    assert same.resume_from(ckpt).epochs_done == 1
    other = ScriptedTrainer()
    other.identity = {"seed": 2, "lr": 0.01, "K": [8, 16], "extra": True}
    with pytest.raises(ValueError, match=r"belongs to another run: extra=<absent> in the "
                                         r"checkpoint but True now; seed=1 in the checkpoint "
                                         r"but 2 now\. Delete it"):
        other.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=ckpt, print_every=0)
    anonymous = ScriptedTrainer()  # a trainer without identity makes no claim
    assert anonymous.resume_from(ckpt).epochs_done == 1
    saved["identity"] = None
    torch.save(saved, tmp_path / "run.pt")
    with pytest.raises(ValueError, match="records no run configuration"):
        same.resume_from(ckpt)


@pytest.mark.parametrize("bad, exc", [("seed=1", TypeError), ({"f": nn.Linear(1, 1)}, TypeError),
                                      ({1: 2}, TypeError)])
def test_identity_must_be_a_dict_of_plain_values(bad, exc):
    with pytest.raises(exc, match="identity"):
        ClassifierTrainer(nn.Linear(2, 2), nn.CrossEntropyLoss(), None, identity=bad)


def test_a_checkpoint_with_more_epochs_than_requested_is_refused(tmp_path):
    ckpt = str(tmp_path / "run")
    ScriptedTrainer(test_correct=[1, 2, 3]).fit(loader(n=3), loader(n=3), num_epochs=3,
                                                checkpoints=ckpt, print_every=0)
    trainer = ScriptedTrainer()
    with pytest.raises(ValueError, match=r"holds 3 epochs, more than the num_epochs=2 "
                                         r"requested"):
        trainer.fit(loader(n=3), loader(n=3), num_epochs=2, checkpoints=ckpt, print_every=0)
    assert trainer.train_calls == 0


# A child process whose files may not grow past a limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so
# that a write past it fails with EFBIG as a write to a full disk fails with ENOSPC): a real
# write failure in the middle of a checkpoint, not a patched function.
_LIMITED_WRITER = """
import resource, signal, sys
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
from hw2.training import CheckpointWriteError, ClassifierTrainer

name, epochs, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
data = TensorDataset(torch.randn(200, 4), torch.randint(0, 3, (200,)))
model = nn.Linear(4, 3)
trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1))
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    trainer.fit(DataLoader(data, batch_size=2), DataLoader(data, batch_size=2), epochs,
                checkpoints=name, print_every=0)
except CheckpointWriteError as err:
    print(err)
    sys.exit(3)
"""


def _limited_writer(tmp_path, epochs, limit):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, "-c", _LIMITED_WRITER, str(tmp_path / "run"),
                           str(epochs), str(limit)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)


@pytest.mark.slow  # two child processes
def test_a_write_that_fails_mid_checkpoint_names_the_file_and_keeps_the_last_good_one(tmp_path):
    first = _limited_writer(tmp_path, epochs=1, limit=0)
    assert first.returncode == 0, first.stderr
    last = tmp_path / "run.last.pt"  # as a fit killed after epoch 1 leaves it
    one_epoch = (tmp_path / "run.pt").read_bytes()
    last.write_bytes(one_epoch)
    # Epoch 2's files hold 200 more losses than epoch 1's: they cannot be written.
    second = _limited_writer(tmp_path, epochs=2, limit=len(one_epoch) + 64)
    assert second.returncode == 3, second.stderr
    assert re.fullmatch(rf"cannot write checkpoint {re.escape(str(tmp_path))}/run(\.last)?\.pt: "
                        rf"File too large; the file as it was, the last good checkpoint, is "
                        rf"kept\n", second.stdout)
    assert "Traceback" not in second.stderr
    for kept in (last, tmp_path / "run.pt"):  # the previous checkpoints are whole
        assert kept.read_bytes() == one_epoch
    assert torch.load(last, weights_only=True)["fit_state"]["epochs_done"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.last.pt", "run.pt"]  # no temp


def test_non_checkpoint_file_is_refused(tmp_path):
    torch.save({"hello": 1}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="not a checkpoint"):
        ScriptedTrainer().fit(loader(), loader(), 1, checkpoints=str(tmp_path / "junk"), print_every=0)


@pytest.mark.parametrize("early_stopping, stop_epoch", [(1, 3), (2, 4)])
def test_a_fit_killed_after_its_early_stop_checkpoint_resumes_to_the_same_stop(
        tmp_path, early_stopping, stop_epoch):
    # Mean test losses 5, 4, 4.5, 4.2, ...: no improvement after epoch 2, so the uninterrupted
    # fit stops after epoch 2 + early_stopping.
    losses = [5.0, 4.0, 4.5, 4.2, 4.0, 3.0, 3.5, 3.1, 3.2, 3.3]
    args = (loader(n=3), loader(n=3))
    kw = dict(num_epochs=10, early_stopping=early_stopping, print_every=0)
    expected = ScriptedTrainer(test_losses=losses).fit(*args, **kw)
    assert expected.num_epochs == stop_epoch

    ckpt = str(tmp_path / "run")
    killed = ScriptedTrainer(test_losses=losses)
    real_save = killed.save_checkpoint

    def save_then_die(name, **save_kw):
        real_save(name, **save_kw)
        if str(name).endswith(".last.pt") and save_kw["fit_state"].epochs_done == stop_epoch:
            raise KeyboardInterrupt  # killed after the last checkpoint, before fit returned

    killed.save_checkpoint = save_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.fit(*args, checkpoints=ckpt, **kw)
    assert Trainer.last_checkpoint_file(ckpt).is_file()

    resumed = ScriptedTrainer(test_losses=losses)
    resumed.test_epochs = stop_epoch  # the script continues where the checkpoint stopped
    result = resumed.fit(*args, checkpoints=ckpt, **kw)
    assert resumed.train_calls == 0  # the stopping criterion already held: no further epoch
    assert result == expected
    assert not Trainer.last_checkpoint_file(ckpt).exists()


@pytest.mark.filterwarnings("ignore:.*to a meta parameter:UserWarning")  # copies are no-ops
def test_a_checkpoint_resumes_on_a_device_other_than_the_cpu(tmp_path):
    # The random-number states must reach torch as CPU tensors whatever the trainer's device.
    # "meta" stands for a GPU here: tensors that are not on the CPU, on a machine without one.
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))

    def shuffling():
        return DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True,
                          generator=torch.Generator().manual_seed(1))

    ckpt = str(tmp_path / "run")
    model = nn.Linear(4, 3)
    on_cpu = ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters()))
    expected = on_cpu.fit(shuffling(), shuffling(), num_epochs=1, checkpoints=ckpt, print_every=0)
    saved = torch.load(Trainer.checkpoint_file(ckpt), weights_only=True)

    meta_model = nn.Linear(4, 3).to("meta")
    elsewhere = ClassifierTrainer(meta_model, nn.CrossEntropyLoss(),
                                  torch.optim.Adam(meta_model.parameters()), device="meta")
    torch.manual_seed(123)  # another process: another global state
    dl_train, dl_test = shuffling(), shuffling()
    dl_train.generator.manual_seed(7)
    result = elsewhere.fit(dl_train, dl_test, num_epochs=1, checkpoints=ckpt, print_every=0)
    assert result == expected
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert torch.equal(dl_train.generator.get_state(), saved["rng"]["loaders"][0])
    assert meta_model.weight.device.type == "meta"


# ----------------------------------------------------------------------------------------------
# LayerTrainer
# ----------------------------------------------------------------------------------------------


def linear_layer_model(weight, bias):
    model = layers.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
    model.w.copy_(weight)
    model.b.copy_(bias)
    return model


def test_layer_trainer_accuracy_matches_hand_count():
    # Scores = x @ W.T with W = I (3 classes, 3 features): the prediction is argmax(x).
    x = torch.tensor([[3., 1, 0], [0, 2, 1], [0, 0, 5], [1, 0, 0], [0, 4, 0]])
    y = torch.tensor([0, 1, 1, 2, 1])  # correct: samples 0, 1, 4 -> 3 of 5
    model = linear_layer_model(torch.eye(3), torch.zeros(3))
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.VanillaSGD(model.params()))
    result = trainer.test_epoch(DataLoader(TensorDataset(x, y), batch_size=2), verbose=False)
    assert result.accuracy == pytest.approx(60.0)
    expected_losses = [nn.functional.cross_entropy(x[i:i + 2], y[i:i + 2]).item() for i in (0, 2, 4)]
    assert result.losses == pytest.approx(expected_losses, rel=1e-6)


def test_layer_trainer_step_equals_autograd_and_torch_optim():
    # One train_batch on a float64 MLP (images flattened) vs the same network in torch.nn.
    torch.manual_seed(0)
    x = torch.randn(6, 2, 3, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    mlp = layers.MLP(12, 4, [5], dtype=torch.float64)
    lin1, lin2 = [layer for layer in mlp.sequence if isinstance(layer, layers.Linear)]
    ref = nn.Sequential(nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 4)).double()
    with torch.no_grad():
        for ours, theirs in ((lin1, ref[0]), (lin2, ref[2])):
            theirs.weight.copy_(ours.w)
            theirs.bias.copy_(ours.b)
    opt = optimizers.MomentumSGD(mlp.params(), learn_rate=0.1, reg=0.01, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    trainer = LayerTrainer(mlp, layers.CrossEntropyLoss(), opt)
    for _ in range(3):
        result = trainer.train_batch((x, y))
        ref_opt.zero_grad()
        loss = nn.functional.cross_entropy(ref(x.reshape(6, -1)), y)
        loss.backward()
        ref_opt.step()
        assert result.loss == pytest.approx(loss.item(), rel=1e-12)
    for ours, theirs in ((lin1, ref[0]), (lin2, ref[2])):
        torch.testing.assert_close(ours.w, theirs.weight.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.b, theirs.bias.detach(), rtol=1e-10, atol=1e-12)


def test_layer_trainer_test_epoch_changes_nothing_and_sets_modes():
    model = layers.MLP(4, 3, [8], dropout=0.5)
    opt = optimizers.VanillaSGD(model.params(), learn_rate=1.0)
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), opt)
    before = [p.clone() for p, _ in model.params()]
    trainer.test_epoch(loader(), verbose=False)
    assert model.training_mode is False
    assert all(torch.equal(a, p) for a, (p, _) in zip(before, model.params()))
    trainer.train_epoch(loader(), verbose=False)
    assert model.training_mode is True
    assert not all(torch.equal(a, p) for a, (p, _) in zip(before, model.params()))


def test_layer_trainer_checkpoint_resume_and_mismatch(tmp_path):
    dl = loader(n=12, batch_size=4)
    ckpt = str(tmp_path / "layers")
    torch.manual_seed(1)
    model = layers.MLP(4, 3, [6], wstd=0.5)
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.MomentumSGD(model.params(), 0.1))
    trainer.fit(dl, dl, num_epochs=2, checkpoints=ckpt, print_every=0)
    saved = torch.load(tmp_path / "layers.pt", weights_only=True)
    assert "velocity" in saved["optimizer_state"]["state"][0]

    fresh = layers.MLP(4, 3, [6], wstd=0.5)
    fresh_opt = optimizers.MomentumSGD(fresh.params(), 0.1)
    resumed = LayerTrainer(fresh, layers.CrossEntropyLoss(), fresh_opt)
    checkpoint = resumed.resume_from(tmp_path / "layers")
    assert checkpoint.epochs_done == 2 and len(checkpoint.fit_state["train_acc"]) == 2
    checkpoint.restore(fresh, fresh_opt)
    for (p, _), t in zip(fresh.params(), saved["model_state"]):
        assert torch.equal(p, t)
    torch.testing.assert_close(fresh_opt.state[0]["velocity"], saved["optimizer_state"]["state"][0]["velocity"])

    other = layers.MLP(4, 3, [7])
    mismatched = LayerTrainer(other, layers.CrossEntropyLoss(), optimizers.VanillaSGD(other.params()))
    with pytest.raises(ValueError, match="different architecture"):
        mismatched.fit(dl, dl, num_epochs=3, checkpoints=ckpt, print_every=0)


@pytest.mark.parametrize("dataset", ["synthetic", "digits"])
def test_seed_overfit_check(dataset):
    # The seed's Part 2 check: 20 samples (2 batches of 10), a 3x128 MLP, VanillaSGD with
    # part2_overfit_hp(), 20 epochs of train_epoch -> best train accuracy >= 98%.
    ds_train, _ = load_dataset(dataset, verbose=False)
    dl_train = DataLoader(ds_train, batch_size=10, shuffle=False)
    hp = answers.part2_overfit_hp(dataset)
    torch.manual_seed(42)
    in_features = ds_train[0][0].numel()
    model = layers.MLP(in_features, 10, hidden_features=[128] * 3, wstd=hp["wstd"])
    optimizer = optimizers.VanillaSGD(model.params(), learn_rate=hp["lr"], reg=hp["reg"])
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)
    best_acc = max(trainer.train_epoch(dl_train, max_batches=2, verbose=False).accuracy
                   for _ in range(20))
    assert best_acc >= 98


def test_part2_hyperparameter_dicts_have_the_notebook_keys():
    assert set(answers.part2_overfit_hp("cifar10")) == {"wstd", "lr", "reg"}
    assert set(answers.part2_optim_hp()) == {"wstd", "reg", "lr_vanilla", "lr_momentum", "lr_rmsprop"}
    assert set(answers.part2_dropout_hp()) == {"wstd", "lr"}


# ----------------------------------------------------------------------------------------------
# ClassifierTrainer
# ----------------------------------------------------------------------------------------------


class FixedScores(nn.Module):
    """Scores = x (a 3-feature input is its own score vector), plus one trainable bias."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return x + self.bias


class ConstantClassifier(FixedScores):
    """Like FixedScores, but classify_scores always says class 2."""

    def classify_scores(self, z):
        return torch.full((z.shape[0],), 2, dtype=torch.int)


def test_classifier_trainer_accuracy_matches_hand_count():
    x = torch.tensor([[3., 1, 0], [0, 2, 1], [0, 0, 5], [1, 0, 0], [0, 4, 0]])
    y = torch.tensor([0, 1, 1, 2, 1])  # argmax correct for 0, 1, 4
    dl = DataLoader(TensorDataset(x, y), batch_size=2)
    model = FixedScores()
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.0))
    assert trainer.test_epoch(dl, verbose=False).accuracy == pytest.approx(60.0)
    assert model.bias.grad is None  # evaluation builds no graph and computes no gradients
    # A model with classify_scores decides the predictions: always class 2 -> 1 of 5 correct.
    const = ConstantClassifier()
    trainer = ClassifierTrainer(const, nn.CrossEntropyLoss(), torch.optim.SGD(const.parameters(), lr=0.0))
    assert trainer.test_epoch(dl, verbose=False).accuracy == pytest.approx(20.0)
    assert trainer.train_epoch(dl, verbose=False).accuracy == pytest.approx(20.0)


def test_classifier_trainer_step_equals_manual_torch_step():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    model = nn.Sequential(nn.Linear(5, 3))
    ref = nn.Sequential(nn.Linear(5, 3))
    ref.load_state_dict(model.state_dict())
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.1))
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.1)
    for _ in range(3):
        result = trainer.train_batch((x, y))
        ref_opt.zero_grad()
        loss = nn.functional.cross_entropy(ref(x), y)
        loss.backward()
        ref_opt.step()
        assert result.loss == pytest.approx(loss.item(), rel=1e-6)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)


def test_classifier_trainer_modes_and_device():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                                device="cpu")
    assert trainer.device == torch.device("cpu")
    trainer.test_epoch(loader(), verbose=False)
    assert not model.training
    trainer.train_epoch(loader(), verbose=False)
    assert model.training


@pytest.mark.parametrize("device, exc", [("gpu", ValueError), ("cuda:x", ValueError), (-1, ValueError),
                                         (3.5, TypeError), (["cpu"], TypeError), (True, TypeError)])
def test_a_bad_device_is_named_before_the_model_moves(device, exc):
    model = nn.Linear(2, 2)
    with pytest.raises(exc, match=r"device"):
        ClassifierTrainer(model, nn.CrossEntropyLoss(), None, device=device)
    assert model.weight.device.type == "cpu"


def test_classifier_trainer_rejects_non_modules():
    with pytest.raises(TypeError, match="nn.Module"):
        ClassifierTrainer(layers.Linear(2, 2), nn.CrossEntropyLoss(), None)


def test_classifier_trainer_learns_digits_and_resumes_with_optimizer_state(tmp_path):
    ds_train, ds_test = load_dataset("digits", verbose=False)
    dl_train = DataLoader(ds_train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    dl_test = DataLoader(ds_test, batch_size=128)
    torch.manual_seed(0)
    model = ArgMaxClassifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), opt)
    ckpt = str(tmp_path / "digits")
    res = trainer.fit(dl_train, dl_test, num_epochs=3, checkpoints=ckpt, print_every=0)
    assert max(res.test_acc) >= 85  # a linear model on 8x8 digits reaches ~95%
    saved = torch.load(tmp_path / "digits.pt", weights_only=True)
    assert saved["optimizer_state"]["state"]  # Adam moments are checkpointed too

    fresh = ArgMaxClassifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.05)
    resumed = ClassifierTrainer(fresh, nn.CrossEntropyLoss(), fresh_opt)
    res2 = resumed.fit(dl_train, dl_test, num_epochs=4, checkpoints=ckpt, print_every=0)
    assert res2.num_epochs == 4
    best_epoch = saved["fit_state"]["epochs_done"]
    assert res2.test_acc[:best_epoch] == res.test_acc[:best_epoch]
    step = next(iter(fresh_opt.state.values()))["step"]
    assert int(step) == best_epoch * len(dl_train) + (4 - best_epoch) * len(dl_train)


def test_reprs():
    model = layers.MLP(4, 3, [5])
    opt = optimizers.VanillaSGD(model.params(), learn_rate=0.5)
    text = repr(LayerTrainer(model, layers.CrossEntropyLoss(), opt))
    assert text.startswith("LayerTrainer(model=MLP, ") and "VanillaSGD(learn_rate=0.5" in text
    lin = nn.Linear(2, 2)
    text = repr(ClassifierTrainer(lin, nn.CrossEntropyLoss(), torch.optim.SGD(lin.parameters(), lr=1)))
    assert text == ("ClassifierTrainer(model=Linear, loss_fn=CrossEntropyLoss(), optimizer=SGD, "
                    "device=cpu)")


def test_autocast_trainer_matches_float32_training_closely():
    # bf16 autocast also exists on the CPU, so the autocast code path is testable here.
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))

    def make():
        torch.manual_seed(1)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(256, 10))
        return net, torch.optim.SGD(net.parameters(), lr=0.1)

    net32, opt32 = make()
    net16, opt16 = make()
    plain = ExperimentTrainer(net32, nn.CrossEntropyLoss(), opt32, device="cpu")
    mixed = ExperimentTrainer(net16, nn.CrossEntropyLoss(), opt16, device="cpu",
                                           autocast_dtype=torch.bfloat16)
    r32, r16 = plain.train_batch((x, y)), mixed.train_batch((x, y))
    assert r16.loss == pytest.approx(r32.loss, rel=2e-2)
    for p32, p16 in zip(net32.parameters(), net16.parameters()):
        assert p16.dtype == torch.float32  # master weights stay float32
        torch.testing.assert_close(p16, p32, rtol=0, atol=5e-3)
    assert mixed.test_batch((x, y)).loss == pytest.approx(plain.test_batch((x, y)).loss, rel=2e-2)



def test_experiment_trainer_autocasts_its_batches_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    trainer = ExperimentTrainer(net, nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), 0.1),
                                device="cpu", autocast_dtype=torch.bfloat16)
    seen = []
    net[2].register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    trainer.train_batch((x, y))
    trainer.test_batch((x, y))
    assert seen == [torch.bfloat16, torch.bfloat16]  # the forward passes ran under autocast
    assert not torch.is_autocast_enabled("cpu")  # and autocast was left afterwards
    with pytest.raises(RuntimeError):
        trainer.train_batch((torch.randn(5, 7), y))  # a failing forward pass leaves it too
    assert not torch.is_autocast_enabled("cpu")
    assert net(x).dtype == torch.float32  # the model itself is unchanged: no hooks of ours
    assert len(net._forward_hooks) == 0 and len(net._forward_pre_hooks) == 0
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_experiment_trainer_channels_last_converts_model_and_batches():
    seen = []
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    net.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    trainer = ExperimentTrainer(net, nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), 0.1),
                                device="cpu", channels_last=True)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.train_batch((torch.randn(2, 3, 6, 6), torch.tensor([0, 1]))).loss > 0
    assert trainer.test_batch((torch.randn(2, 3, 6, 6), torch.tensor([0, 1]))).loss > 0
    assert seen == [True, True]  # the model saw channels-last batches
    assert "channels_last=True" in repr(trainer)
    with pytest.raises(TypeError, match=r"autocast_dtype must be torch.bfloat16 or torch.float16 "
                                        r"\(or None: no autocast\), got 'bf16'"):
        ExperimentTrainer(net, nn.CrossEntropyLoss(), None, autocast_dtype="bf16")


def _snapshot(model, optimizer):
    """Deep copies of the model's weights and the optimizer's state, to compare later."""
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    state = {i: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
             for i, s in opt["state"].items()}
    return weights, state, [dict(g) for g in opt["param_groups"]]


def _assert_unchanged(model, optimizer, snapshot):
    weights, state, groups = snapshot
    now = model.state_dict()
    assert now.keys() == weights.keys()
    assert all(torch.equal(now[k], weights[k]) for k in weights)
    opt = optimizer.state_dict()
    assert opt["param_groups"] == groups
    assert opt["state"].keys() == state.keys()
    for i, s in state.items():
        for k, v in s.items():
            got = opt["state"][i][k]
            assert torch.equal(got, v) if isinstance(v, torch.Tensor) else got == v


def _adam_trainer(seed, lr=0.05):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return ClassifierTrainer(model, nn.CrossEntropyLoss(), opt), model, opt


def test_a_refused_resume_with_too_many_epochs_leaves_model_and_optimizer_as_they_were(tmp_path):
    ckpt = str(tmp_path / "run")
    _adam_trainer(seed=0)[0].fit(loader(n=6), loader(n=6), num_epochs=3, checkpoints=ckpt,
                                 print_every=0)
    trainer, model, opt = _adam_trainer(seed=1, lr=0.01)
    trainer.train_batch(next(iter(loader(n=6))))  # the optimizer holds Adam moments of its own
    before = _snapshot(model, opt)
    saved = torch.load(tmp_path / "run.pt", weights_only=True)  # the best file is kept
    assert not torch.equal(saved["model_state"]["weight"], before[0]["weight"])  # would show
    done = saved["fit_state"]["epochs_done"]
    with pytest.raises(ValueError, match=rf"holds {done} epochs, more than the "
                                         rf"num_epochs={done - 1}"):
        trainer.fit(loader(n=6), loader(n=6), num_epochs=done - 1, checkpoints=ckpt,
                    print_every=0)
    _assert_unchanged(model, opt, before)


def test_a_checkpoint_whose_optimizer_state_does_not_fit_leaves_the_model_as_it_was(tmp_path):
    ckpt = str(tmp_path / "run")
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    two_groups = torch.optim.Adam([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    ClassifierTrainer(model, nn.CrossEntropyLoss(), two_groups).fit(
        loader(n=6), loader(n=6), num_epochs=1, checkpoints=ckpt, print_every=0)
    trainer, fresh, opt = _adam_trainer(seed=1)
    before = _snapshot(fresh, opt)
    with pytest.raises(ValueError, match="saved optimizer state does not fit Adam"):
        trainer.fit(loader(n=6), loader(n=6), num_epochs=2, checkpoints=ckpt, print_every=0)
    _assert_unchanged(fresh, opt, before)


class _MoveRecorder(nn.Linear):
    """An ``nn.Linear(2, 2)`` that records every ``to()`` call (device or memory format)."""

    def __init__(self):
        super().__init__(2, 2)
        self.moves = []

    def to(self, *args, **kwargs):
        self.moves.append((args, kwargs))
        return super().to(*args, **kwargs)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_experiment_trainer_accepts_the_autocast_dtypes_torch_runs(dtype):
    net = nn.Linear(4, 3)
    trainer = ExperimentTrainer(net, nn.CrossEntropyLoss(), None, device="cpu",
                                autocast_dtype=dtype)
    seen = []
    net.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    result = trainer.test_batch((torch.randn(2, 4), torch.tensor([0, 2])))
    assert seen == [dtype] and math.isfinite(result.loss)  # the layer ran in this dtype


@pytest.mark.parametrize("bad, exc, needle", [
    ("bf16", TypeError,
     r"autocast_dtype must be torch.bfloat16 or torch.float16 \(or None: no autocast\), got 'bf16'$"),
    (16, TypeError, r"got 16$"),
    (torch.int8, ValueError, r"torch.bfloat16 or torch.float16 .*got torch.int8"),
    (torch.float32, ValueError, r"torch.bfloat16 or torch.float16 .*got torch.float32"),
    (torch.float64, ValueError, r"got torch.float64"),
])
def test_a_bad_autocast_dtype_is_refused_before_the_model_moves(bad, exc, needle):
    net = _MoveRecorder()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(exc, match=needle):
        ExperimentTrainer(net, nn.CrossEntropyLoss(), None, device="cpu", autocast_dtype=bad,
                          channels_last=True)
    assert net.moves == []  # neither moved to the device nor to channels-last
    assert len(net._forward_hooks) == 0 and len(net._forward_pre_hooks) == 0
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_a_bad_channels_last_is_refused_before_the_model_moves():
    net = _MoveRecorder()
    with pytest.raises(TypeError, match="channels_last"):
        ExperimentTrainer(net, nn.CrossEntropyLoss(), None, device="cpu", channels_last="yes")
    assert net.moves == []
