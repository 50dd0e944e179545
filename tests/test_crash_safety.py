"""Crash safety, proven with a real process and a real SIGKILL.

``python -m hw2.experiments run-exp --checkpoints ...`` is started on the synthetic data set,
killed with SIGKILL as soon as its first checkpoint is on disk (so: mid-training, in the middle
of a later epoch), and then started again with the very same command line. The test checks that

* the kill leaves no result file, complete or partial, and no temporary file behind;
* the checkpoint on disk is whole and loads with ``torch.load(..., weights_only=True)``;
* the second process resumes from the checkpoint: it runs only the epochs that were missing,
  and it writes a valid result file (``load_experiment`` reads it) for the same configuration
  as an uninterrupted run, whose epochs before the kill are identical.

The grid runner is also checked to skip only *complete* result files: a truncated file is
trained again and replaced.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import hw2
from hw2 import experiments, grids
from hw2.experiments import cnn_experiment, load_experiment, result_filename

#: The folder holding the ``hw2`` package under test, for the child processes' PYTHONPATH.
PACKAGE_ROOT = Path(hw2.__file__).resolve().parent.parent
EPOCHS = 5
SETTINGS = dict(filters_per_layer=[8], layers_per_block=1, pool_every=1, hidden_dims=[16],
                model_type="cnn", seed=0, bs_train=32, bs_test=64, batches=12, epochs=EPOCHS,
                early_stopping=10 * EPOCHS, lr=1e-3, reg=1e-3, dataset="synthetic")
RUN_NAME = "crash"
RESULT = result_filename(RUN_NAME, SETTINGS["filters_per_layer"], SETTINGS["layers_per_block"])


def _command(out_dir: Path, checkpoint: Path):
    s = SETTINGS
    return [sys.executable, "-m", "hw2.experiments", "run-exp", "-n", RUN_NAME,
            "-K", *map(str, s["filters_per_layer"]), "-L", str(s["layers_per_block"]),
            "-P", str(s["pool_every"]), "-H", *map(str, s["hidden_dims"]), "-M", s["model_type"],
            "-s", str(s["seed"]), "--bs-train", str(s["bs_train"]), "--bs-test", str(s["bs_test"]),
            "--batches", str(s["batches"]), "--epochs", str(s["epochs"]),
            "--early-stopping", str(s["early_stopping"]), "--lr", str(s["lr"]), "--reg", str(s["reg"]),
            "--dataset", s["dataset"], "-o", str(out_dir), "--checkpoints", str(checkpoint)]


def _env():
    return dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), MPLBACKEND="Agg",
                PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _milestones(output: str):
    """The lines worth quoting: epoch headers, resume/early-stop notes, the final summary
    (progress bars, which redraw with carriage returns, are left out)."""
    keep = ("--- EPOCH", "***", f"{RUN_NAME}_L", "Dataset:")
    return [part.strip() for part in re.split(r"[\r\n]+", output)
            if part.strip().startswith(keep)]


def _epoch_numbers(output: str):
    return [int(m) for m in re.findall(r"--- EPOCH (\d+)/\d+ ---", output)]


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_resumes_and_writes_a_valid_result(tmp_path):
    out_dir, checkpoint = tmp_path / "results", tmp_path / "ck" / "run"
    checkpoint_file = checkpoint.with_name(checkpoint.name + ".pt")
    command = _command(out_dir, checkpoint)

    # -- 1. start, wait for the first checkpoint, SIGKILL ------------------------------------
    log1 = tmp_path / "first.log"
    with open(log1, "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env(),
                                 cwd=tmp_path)
        deadline = time.monotonic() + 240
        try:
            while not checkpoint_file.exists():
                assert first.poll() is None, "the run ended before writing a checkpoint:\n" + \
                    log1.read_text()
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.02)
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
    assert _files(out_dir) == []  # no result file, partial or complete, no temporary file
    assert _files(checkpoint.parent) == [checkpoint_file.name]  # no leftover temporary file
    saved = torch.load(checkpoint_file, weights_only=True)  # whole, and only plain data
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
    assert f"Resuming from {checkpoint_file}: {done} epoch(s) done" in second.stdout
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

    # -- 3. same configuration and same early epochs as an uninterrupted run -----------------
    reference = cnn_experiment(RUN_NAME, out_dir=str(tmp_path / "reference"), verbose=False,
                               **SETTINGS)
    volatile = {"out_dir", "checkpoints", "resumed_from_epoch", "wall_time_s", "started_at"}
    assert {k: v for k, v in cfg.items() if k not in volatile} == \
           {k: v for k, v in reference.config.items() if k not in volatile}
    assert fit.train_loss[:done * SETTINGS["batches"]] == \
        reference.result.train_loss[:done * SETTINGS["batches"]]
    assert fit.test_acc[:done] == reference.result.test_acc[:done]


def test_grid_runs_skip_only_complete_result_files(tmp_path, capsys):
    """A complete result file is skipped; a truncated one (as a crash without the atomic
    write would leave) and a missing one are run and then hold a valid result."""
    runs = tuple(grids.GridRun("g", "cnn", (k,), 1, 1, (8,)) for k in (2, 3, 4))
    grid = grids.Grid("g", "reliability test grid", runs)
    settings = dict(seed=0, bs_train=16, bs_test=32, batches=1, epochs=1, early_stopping=None,
                    dataset="digits", lr=1e-3, reg=1e-3)
    complete, truncated, missing = (tmp_path / r.filename for r in runs)
    cnn_experiment(**runs[0].experiment_kwargs(settings, str(tmp_path)), verbose=False)
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
