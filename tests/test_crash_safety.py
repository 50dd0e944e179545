"""Crash safety, proven with a real process and a real SIGKILL.

``python -m hw2.experiments run-exp --checkpoints ...`` is started on the synthetic data set,
killed with SIGKILL as soon as its first checkpoint is on disk (so: mid-training, in the middle
of a later epoch), and then started again with the very same command line. The test checks that

* the kill leaves no result file, complete or partial, and no temporary file behind;
* the checkpoint on disk is whole and loads with ``torch.load(..., weights_only=True)``;
* the second process resumes from the "last" checkpoint: it runs only the epochs that were
  missing, and it writes a valid result file (``load_experiment`` reads it) for the same
  configuration as an uninterrupted run, with the same FitResult bit for bit.

The grid runner is also checked to skip only *complete* result files: a truncated file is
trained again and replaced.
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import assert_fit_equal, child_env, files_in as _files
from hw2 import cli, grids
from hw2.config import ExperimentConfig
from hw2.experiments import cnn_experiment
from hw2.results import load_experiment, result_filename
from hw2.experiment_trainer import ExperimentTrainer
from hw2.training import ClassifierTrainer, TrainingDiverged

EPOCHS = 5
# 40 batches an epoch: the kill, a poll after the first checkpoint appears, must land before the
# next checkpoint's write starts (a kill during a write leaves its temporary file), even when a
# busy machine answers the poll late (with 12 batches an epoch took 0.14 s on a loaded one).
SETTINGS = dict(filters_per_layer=[8], layers_per_block=1, pool_every=1, hidden_dims=[16],
                model_type="cnn", seed=0, bs_train=32, bs_test=64, batches=40, epochs=EPOCHS,
                early_stopping=10 * EPOCHS, lr=1e-3, reg=1e-3, dataset="synthetic")
RUN_NAME = "crash"
RESULT = result_filename(RUN_NAME, SETTINGS["filters_per_layer"], SETTINGS["layers_per_block"])


def _command(out_dir: Path, checkpoint: Path):
    """The run-exp command of SETTINGS, written by the configuration itself."""
    config = ExperimentConfig.from_kwargs(dict(SETTINGS, run_name=RUN_NAME, out_dir=str(out_dir),
                                               checkpoints=str(checkpoint)))
    return [sys.executable, "-m", "hw2.experiments", "run-exp", *config.to_argv()]


def _env():
    return child_env(OMP_NUM_THREADS="1")


def _milestones(output: str):
    """The lines worth quoting: epoch headers, resume/early-stop notes, the final summary
    (progress bars, which redraw with carriage returns, are left out)."""
    keep = ("--- EPOCH", "***", f"{RUN_NAME}_L", "Dataset:")
    return [part.strip() for part in re.split(r"[\r\n]+", output)
            if part.strip().startswith(keep)]


def _epoch_numbers(output: str):
    return [int(m) for m in re.findall(r"--- EPOCH (\d+)/\d+ ---", output)]


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_resumes_and_writes_a_valid_result(tmp_path):
    out_dir, checkpoint = tmp_path / "results", tmp_path / "ck" / "run"
    checkpoint_file = checkpoint.with_name(checkpoint.name + ".pt")
    last_file = checkpoint.with_name(checkpoint.name + ".last.pt")
    command = _command(out_dir, checkpoint)

    # -- 1. start, wait for the first checkpoint (best, then last), SIGKILL ------------------
    log1 = tmp_path / "first.log"
    with open(log1, "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env(),
                                 cwd=tmp_path)
        deadline = time.monotonic() + 240
        try:
            while not last_file.exists():
                assert first.poll() is None, "the run ended before writing a checkpoint:\n" + \
                    log1.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.005)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            if first.poll() is None:
                first.kill()
            first.wait(timeout=60)
    killed_output = log1.read_text()
    print("=== first process (SIGKILLed once the checkpoint appeared) ===")
    print("\n".join(_milestones(killed_output)))
    print(f"exit status: {first.returncode} (-{int(signal.SIGKILL)} = killed by SIGKILL)")
    print(f"files after the kill: results/ {_files(out_dir)}, ck/ {_files(checkpoint.parent)}")
    assert first.returncode == -signal.SIGKILL
    # No result file, partial or complete, no temporary file; only the killed run's lock file
    # (hw2.results.RunLock: the kernel freed the lock with the process) may remain.
    assert [f for f in _files(out_dir) if f != f".{RESULT}.lock"] == []
    # Both files, no leftover temporary file.
    assert _files(checkpoint.parent) == sorted([checkpoint_file.name, last_file.name])
    saved = torch.load(last_file, weights_only=True)  # whole, and only plain data
    torch.load(checkpoint_file, weights_only=True)
    done = saved["fit_state"]["epochs_done"]
    assert 1 <= done < EPOCHS
    assert EPOCHS not in _epoch_numbers(killed_output)  # it really was killed mid-run

    # -- 2. the very same command again ------------------------------------------------------
    second = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=tmp_path,
                            timeout=400)
    print("=== second process (same command) ===")
    print("\n".join(_milestones(second.stdout)))
    print(f"exit status: {second.returncode}")
    assert second.returncode == 0, second.stderr
    assert f"Resuming from {last_file}: {done} epoch(s) done" in second.stdout
    ran = _epoch_numbers(second.stdout)
    assert ran == list(range(done + 1, EPOCHS + 1))  # only the missing epochs
    assert len(ran) < EPOCHS
    assert _files(out_dir) == [RESULT]
    cfg, fit = load_experiment(out_dir / RESULT)
    assert fit.num_epochs == EPOCHS and len(fit.test_acc) == EPOCHS
    assert len(fit.train_loss) == EPOCHS * SETTINGS["batches"]
    assert cfg["resumed_from_epoch"] == done
    print(f"result: {RESULT}, {fit.num_epochs} epochs, resumed_from_epoch={done}, "
          f"test_acc={[round(a, 1) for a in fit.test_acc]}")

    # -- 3. same configuration and same epochs as an uninterrupted run (one thread, as the
    # children ran: bit-exactness holds at a fixed thread count) ------------------------------
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = cnn_experiment(RUN_NAME, out_dir=str(tmp_path / "reference"),
                                   verbose=False, **SETTINGS)
    finally:
        torch.set_num_threads(threads)
    volatile = {"out_dir", "checkpoints", "resumed_from_epoch", "wall_time_s", "started_at"}
    assert {k: v for k, v in cfg.items() if k not in volatile} == \
           {k: v for k, v in reference.config.items() if k not in volatile}
    assert fit.train_loss[:done * SETTINGS["batches"]] == \
        reference.result.train_loss[:done * SETTINGS["batches"]]
    assert fit.test_acc[:done] == reference.result.test_acc[:done]
    assert_fit_equal(fit, reference.result)  # the epochs after the kill too, bit for bit


def test_grid_runs_skip_only_complete_result_files(tmp_path, capsys):
    """A complete result file is skipped; a truncated one (as a crash without the atomic
    write would leave) and a missing one are run and then hold a valid result."""
    run = ExperimentConfig("g", model_type="cnn", layers_per_block=1, pool_every=1,
                           hidden_dims=(8,))
    runs = tuple(run.replace(filters_per_layer=(k,)) for k in (2, 3, 4))
    grid = grids.Grid("g", "reliability test grid", runs)
    settings = dict(seed=0, bs_train=16, bs_test=32, batches=1, epochs=1, early_stopping=None,
                    dataset="digits", lr=1e-3, reg=1e-3)
    complete, truncated, missing = (tmp_path / r.filename for r in runs)
    cnn_experiment(**grid.configs(settings, tmp_path)[0].experiment_kwargs(), verbose=False)
    complete_before = complete.read_bytes()
    text = json.dumps({"config": {}, "results": {"num_epochs": 1, "train_loss": [1.0],
                                                 "train_acc": [10.0], "test_loss": [1.0],
                                                 "test_acc": [10.0]}})
    truncated.write_text(text[: len(text) // 2])

    outcomes = grids.run_grid(grid, tmp_path, settings, verbose=True)
    print(capsys.readouterr().out)
    assert [o.status for o in outcomes] == ["skipped", "done", "done"]
    assert complete.read_bytes() == complete_before
    for path in (truncated, missing):
        cfg, fit = load_experiment(path)
        assert fit.num_epochs == 1 and cfg["run_name"] == "g"
    assert sorted(p.name for p in tmp_path.glob("*.json")) == \
        sorted([complete.name, truncated.name, missing.name])
    assert not [f for f in _files(tmp_path) if f.endswith((".tmp", ".pt"))]


# ----------------------------------------------------------------------------------------------
# Untrusted files: checkpoints are never unpickled, foreign ones are refused clearly
# ----------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this object would run ``os.mkdir(marker)``: the code an attacker would ship."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _tiny_trainer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    return ClassifierTrainer(model, torch.nn.CrossEntropyLoss(),
                             torch.optim.SGD(model.parameters(), lr=0.1))


def _batches():
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(6, 4, generator=gen), torch.randint(0, 3, (6,), generator=gen))] * 2


def test_checkpoints_are_loaded_with_weights_only(tmp_path, monkeypatch):
    trainer = _tiny_trainer()
    trainer.fit(_batches(), _batches(), num_epochs=1, checkpoints=str(tmp_path / "ck"),
                print_every=0)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    _tiny_trainer().fit(_batches(), _batches(), num_epochs=2, checkpoints=str(tmp_path / "ck"),
                        print_every=0)
    assert calls and all(flag is True for flag in calls)


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"format": "hw2.training.checkpoint/1", "model_state": _Payload(marker)},
               tmp_path / "evil.pt")
    trainer = _tiny_trainer()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=r"checkpoint .*evil\.pt was refused: it holds objects "
                                         r"other than tensors and plain Python values"):
        trainer.fit(_batches(), _batches(), num_epochs=1, checkpoints=str(tmp_path / "evil"),
                    print_every=0)
    assert not marker.exists()
    for p, q in zip(trainer.model.parameters(), before):
        assert torch.equal(p, q)


def test_a_truncated_checkpoint_is_reported_as_unreadable(tmp_path):
    trainer = _tiny_trainer()
    trainer.save_checkpoint(str(tmp_path / "whole.pt"))
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"checkpoint .*cut\.pt is unreadable \(truncated or "
                                         r"not a torch checkpoint\)"):
        trainer.fit(_batches(), _batches(), num_epochs=1, checkpoints=str(tmp_path / "cut"),
                    print_every=0)


def _saved_checkpoint(tmp_path: Path) -> dict:
    """A real checkpoint of a one-epoch fit, loaded (to be altered by a test)."""
    _tiny_trainer().fit(_batches(), _batches(), num_epochs=1, checkpoints=str(tmp_path / "ok"),
                        print_every=0)
    return torch.load(tmp_path / "ok.pt", weights_only=True)


def _fit_state(**changes):
    state = dict(epochs_done=1, train_loss=[1.0, 0.9], train_acc=[50.0], test_loss=[1.0, 1.0],
                 test_acc=[40.0], best_acc=40.0, best_test_loss=1.0,
                 epochs_without_improvement=0)
    state.update(changes)
    return {k: v for k, v in state.items() if v != "drop"}


@pytest.mark.parametrize("change, message", [
    (dict(fit_state=_fit_state(extra=1)),
     r"malformed: fit_state fields differ: missing \[\], unexpected \['extra'\]"),
    (dict(fit_state=_fit_state(best_acc="drop")),
     r"malformed: fit_state fields differ: missing \['best_acc'\], unexpected \[\]"),
    (dict(fit_state=_fit_state(epochs_done="1")),
     r"malformed: fit_state.epochs_done must be an integer >= 0, got '1'"),
    (dict(fit_state=_fit_state(train_loss=[1.0, None])),
     r"malformed: fit_state.train_loss must be a list of numbers"),
    (dict(fit_state=_fit_state(epochs_done=2)),
     r"malformed: fit_state.train_acc has 1 entries for epochs_done=2"),
    (dict(fit_state=_fit_state(train_loss=[])),
     r"malformed: fit_state.train_loss has 0 entries, fewer than one per epoch"),
    (dict(fit_state=[1, 2]), r"malformed: fit_state must be a dict, got list"),
    (dict(model_state=[torch.zeros(3, 4)]),
     r"malformed: model_state must be a dict of tensors, got list"),
    (dict(model_state={"weight": 1.0}), r"malformed: model_state entries \['weight'\] are not"),
    (dict(trainer_kind="layers"), r"malformed: it was written by a LayerTrainer \(hw2.layers "
                                  r"model.*cannot be read by a ClassifierTrainer"),
    (dict(rng=None), r"malformed: rng must be a dict of the torch, cuda, numpy, python"),
    (dict(identity=[1]), r"malformed: identity must be a dict or None, got list"),
    (dict(surprise=1), r"malformed: expected the keys \['format', "),
    (dict(format="hw2.training.checkpoint/1"), r"has the older layout "
                                               r"hw2.training.checkpoint/1 \(no random-number"),
])
def test_a_malformed_checkpoint_is_refused_naming_the_field(tmp_path, change, message):
    payload = dict(_saved_checkpoint(tmp_path), **change)
    torch.save(payload, tmp_path / "bad.pt")
    trainer = _tiny_trainer()
    with pytest.raises(ValueError, match=r"checkpoint .*bad\.pt (is malformed|has the older)"):
        trainer.fit(_batches(), _batches(), num_epochs=2, checkpoints=str(tmp_path / "bad"),
                    print_every=0)
    with pytest.raises(ValueError, match=message):
        trainer.resume_from(tmp_path / "bad")


def test_a_layer_trainer_checkpoint_is_refused_by_a_classifier_trainer(tmp_path):
    from hw2 import layers, optimizers
    from hw2.training import LayerTrainer

    model = layers.MLP(4, 3, [5])
    LayerTrainer(model, layers.CrossEntropyLoss(), optimizers.VanillaSGD(model.params())).fit(
        _batches(), _batches(), num_epochs=1, checkpoints=str(tmp_path / "layers"),
        print_every=0)
    with pytest.raises(ValueError, match=r"layers\.pt is malformed: it was written by a "
                                         r"LayerTrainer \(hw2.layers model: a list of parameter "
                                         r"tensors\) and cannot be read by a ClassifierTrainer"):
        _tiny_trainer().resume_from(tmp_path / "layers")


@pytest.mark.parametrize("content, what", [(b"hello, not a checkpoint\n", r"it starts with "
                                            r"b'hell', not a zip archive"),
                                           (b"", "it is empty")])
def test_a_text_file_is_reported_as_not_a_pytorch_checkpoint(tmp_path, content, what):
    (tmp_path / "notes.pt").write_bytes(content)
    with pytest.raises(ValueError, match=rf"checkpoint .*notes\.pt is not a PyTorch checkpoint "
                                         rf"\({what}"):
        _tiny_trainer().fit(_batches(), _batches(), num_epochs=1,
                            checkpoints=str(tmp_path / "notes"), print_every=0)


def test_an_unreadable_checkpoint_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    import hw2.checkpoints as checkpoints

    _saved_checkpoint(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoints, "open", denied, raising=False)
    with pytest.raises(PermissionError, match=r"cannot read checkpoint .*ok\.pt: Permission "
                                              r"denied"):
        _tiny_trainer().resume_from(tmp_path / "ok")
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(ValueError, match=r"checkpoint .*dir\.pt is not a file"):
        _tiny_trainer().resume_from(tmp_path / "dir")


RUN_EXP_TINY = ["-L", "1", "-P", "1", "-H", "8", "-s", "0", "--dataset", "digits",
                "--epochs", "1", "--batches", "2", "--bs-train", "16", "--bs-test", "32", "-q"]


def test_run_exp_refuses_a_checkpoint_of_another_architecture(tmp_path, capsys):
    checkpoint = str(tmp_path / "ck")
    assert cli.main(["run-exp", "-n", "a", "-K", "4", "-o", str(tmp_path / "a"),
                             "--checkpoints", checkpoint, *RUN_EXP_TINY]) == 0
    capsys.readouterr()
    status = cli.main(["run-exp", "-n", "b", "-K", "6", "-o", str(tmp_path / "b"),
                               "--checkpoints", checkpoint, *RUN_EXP_TINY])
    err = capsys.readouterr().err
    print(err)
    assert status == cli.USAGE_ERROR
    assert re.search(r"cannot resume from checkpoint .*ck\.pt: checkpoint .* was saved from a "
                     r"different architecture .*has shape \(4, 1, 3, 3\) in the checkpoint but "
                     r"\(6, 1, 3, 3\) in the model", err)
    assert "Traceback" not in err
    assert _files(tmp_path / "b") == []


def _tiny_with_epochs(epochs: int):
    args = list(RUN_EXP_TINY)
    args[args.index("--epochs") + 1] = str(epochs)
    return args


def test_run_exp_extends_a_finished_run_with_more_epochs(tmp_path, capsys):
    # Continuing a run for more epochs is what users do: only --epochs differs, so the
    # checkpoint is this run's and the longer run resumes from it.
    run = ["run-exp", "-n", "a", "-K", "4", "-o", str(tmp_path / "out"),
           "--checkpoints", str(tmp_path / "ck")]
    assert cli.main([*run, *_tiny_with_epochs(2)]) == 0
    assert cli.main([*run, *_tiny_with_epochs(3)]) == 0, capsys.readouterr().err
    [result_file] = (tmp_path / "out").glob("*.json")
    config, result = load_experiment(result_file)
    assert result.num_epochs == 3 and len(result.train_acc) == 3
    assert config["resumed_from_epoch"] in (1, 2)  # the best file of the 2-epoch run
    assert cli.main([*run[:3], "-K", "6", *run[5:], *_tiny_with_epochs(4)]) == cli.USAGE_ERROR
    assert "different architecture" in capsys.readouterr().err  # the other checks stay


def test_run_exp_refuses_a_checkpoint_carrying_code(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    torch.save({"format": "hw2.training.checkpoint/1", "fit_state": _Payload(marker)},
               tmp_path / "evil.pt")
    status = cli.main(["run-exp", "-n", "e", "-K", "4", "-o", str(tmp_path / "out"),
                               "--checkpoints", str(tmp_path / "evil"), *RUN_EXP_TINY])
    err = capsys.readouterr().err
    print(err)
    assert status == cli.USAGE_ERROR
    assert "was refused: it holds objects other than tensors" in err
    assert "Traceback" not in err
    assert not marker.exists()
    assert _files(tmp_path / "out") == []


# ----------------------------------------------------------------------------------------------
# Divergence: reported, recorded, never hidden behind meaningless accuracies
# ----------------------------------------------------------------------------------------------

class _NaNFromCall:
    """A loss that turns NaN from its ``n``-th training call on (test calls are unaffected)."""

    def __init__(self, n: int):
        self.n, self.calls, self.inner = n, 0, torch.nn.CrossEntropyLoss()

    def __call__(self, scores, y):
        loss = self.inner(scores, y)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls >= self.n:
                return loss * float("nan")
        return loss


def test_trainer_stops_on_a_nan_loss_and_keeps_the_finished_epochs():
    trainer = _tiny_trainer()
    trainer.loss_fn = _NaNFromCall(4)  # batches 1-2 of epoch 1, 1 of epoch 2, then NaN
    with pytest.raises(TrainingDiverged, match=r"training loss is nan at epoch 2, batch 2") as info:
        trainer.fit(_batches(), _batches(), num_epochs=3, print_every=0)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert (err.epoch, err.batch, math.isnan(err.loss)) == (2, 2, True)
    assert err.fit_result.num_epochs == 1 and len(err.fit_result.train_loss) == 2
    assert all(math.isfinite(v) for v in err.fit_result.train_loss + err.fit_result.test_loss)


def test_run_exp_records_a_real_divergence_and_exits_non_zero(tmp_path, capsys):
    """A learning rate of 1e30 blows the weights up within the first batches."""
    out = tmp_path / "out"
    status = cli.main(["run-exp", "-n", "boom", "-K", "4", "-o", str(out),
                               "--lr", "1e30", *RUN_EXP_TINY])
    err = capsys.readouterr().err
    print(err)
    assert status == cli.DIVERGED != 0
    assert "Traceback" not in err
    assert re.search(r"boom_L1_K4\.json: training diverged at epoch 1 \(loss (nan|inf) at "
                     r"batch \d+\)", err)
    cfg, fit = load_experiment(out / "boom_L1_K4.json")
    assert cfg["diverged"]["epoch"] == 1 and cfg["diverged"]["loss"] in ("nan", "inf", "-inf")
    assert fit.num_epochs == 0 and fit.test_acc == [] and fit.train_loss == []
    assert grids.is_complete(out / "boom_L1_K4.json")  # a grid does not retry it forever
    rows = grids.summarize(out)
    table = capsys.readouterr().out
    print(table)
    assert rows[0].diverged_epoch == 1 and "diverged@1" in table and "nan%" not in table


def test_run_exp_divergence_in_a_later_epoch_keeps_the_earlier_epochs(tmp_path, capsys,
                                                                       monkeypatch):
    real_train_batch = ExperimentTrainer.train_batch
    calls = {"n": 0}

    def nan_from_epoch_2(self, batch):
        result = real_train_batch(self, batch)
        calls["n"] += 1
        return result._replace(loss=float("inf")) if calls["n"] > 2 else result

    monkeypatch.setattr(ExperimentTrainer, "train_batch", nan_from_epoch_2)
    out = tmp_path / "out"
    status = cli.main(["run-exp", "-n", "late", "-K", "4", "-o", str(out),
                               *RUN_EXP_TINY, "--epochs", "3"])
    err = capsys.readouterr().err
    print(err)
    assert status == cli.DIVERGED
    cfg, fit = load_experiment(out / "late_L1_K4.json")
    assert cfg["diverged"] == {"epoch": 2, "batch": 1, "loss": "inf",
                               "message": cfg["diverged"]["message"]}
    assert "training loss is inf at epoch 2, batch 1" in cfg["diverged"]["message"]
    assert fit.num_epochs == 1 and len(fit.train_loss) == 2 and len(fit.test_acc) == 1
    assert all(math.isfinite(v) for v in fit.train_loss + fit.test_loss + fit.test_acc)
