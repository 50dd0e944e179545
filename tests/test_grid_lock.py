"""Grids safe to run twice: hw2.results.RunLock, and two grid-runs of one grid on one folder.

The oracle for "trained exactly once" is the processes' own output (each run's start line
printed by exactly one of them, the other reporting it as held or complete) and the result
files: every one valid, each written once (one start per run) and equal to a run of the same
grid in a third, lone process.
"""
import os
import re
import subprocess
import sys
import time

import pytest

from hw2 import grids
from hw2.config import ExperimentConfig
from hw2.results import RunLock, load_experiment

import helpers

GRID = ["exp1_3", "--quick", "--dataset", "digits"]  # 4 runs of 2 epochs of 2 batches


def test_a_held_run_cannot_be_taken_and_is_free_after_release(tmp_path):
    result = tmp_path / "exp_L1_K4.json"
    first, second = RunLock(result), RunLock(result)
    assert first.acquire() and first.held
    assert first.path == tmp_path / ".exp_L1_K4.json.lock"
    assert not second.acquire() and not second.held
    assert second.holder() == f"{os.getpid()}@{os.uname().nodename}"
    first.release()
    assert not first.path.exists()  # the released lock leaves no file behind
    with second as taken:
        assert taken and second.held
    assert list(tmp_path.iterdir()) == []
    assert "held=False" in repr(second)


def test_a_killed_holder_frees_the_run(tmp_path):
    result = tmp_path / "r.json"
    code = ("import sys, time; from hw2.results import RunLock; "
            "assert RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(result)], stdout=subprocess.PIPE,
                            text=True, env=helpers.child_env())
    try:
        assert proc.stdout.readline().strip() == "held"
        assert not RunLock(result).acquire()
    finally:
        proc.kill()
        proc.wait()
    lock = RunLock(result)
    assert lock.acquire()  # the stale lock file of the killed holder is taken over
    lock.release()


def test_run_grid_skips_a_run_another_process_holds(tmp_path, capsys, no_training):
    grid = grids.get_grids("exp1_3")[0]
    settings = grids.grid_settings(quick=True, dataset="digits")
    holders = [RunLock(tmp_path / run.filename) for run in grid.runs]
    assert all(h.acquire() for h in holders)
    try:
        outcomes = grids.run_grid(grid, tmp_path, settings)  # no_training: fit would fail
    finally:
        for h in holders:
            h.release()
    assert [o.status for o in outcomes] == [grids.LOCKED] * 4
    out = capsys.readouterr().out
    assert out.count("another process is computing it") == 4
    assert "(model=" not in out  # no start line for a run that is not trained here
    assert not list(tmp_path.glob("*.json"))


def test_run_grid_prints_a_start_line_only_for_the_runs_it_trains(tmp_path, capsys):
    run = ExperimentConfig("tiny", model_type="cnn", layers_per_block=1, pool_every=1,
                           hidden_dims=(8,))
    grid = grids.Grid("tiny", "two tiny runs", (run.replace(filters_per_layer=(4,)),
                                                 run.replace(filters_per_layer=(4, 8))))
    settings = dict(dataset="digits", seed=0, bs_train=32, bs_test=64, batches=2, epochs=1,
                    early_stopping=None)
    held, free = grid.runs
    holder = RunLock(tmp_path / held.filename)  # "another process" holds the first run
    assert holder.acquire()
    try:
        outcomes = grids.run_grid(grid, tmp_path, settings)
    finally:
        holder.release()
    assert [o.status for o in outcomes] == [grids.LOCKED, grids.DONE]
    lines = capsys.readouterr().out.splitlines()
    starts = [line for line in lines if line.endswith("(model=cnn, pool_every=1)")]
    assert starts == ["*** Starting tiny_L1_K4-8 (model=cnn, pool_every=1)"]
    locked = [i for i, line in enumerate(lines) if line.startswith("[tiny 1/2] tiny_L1_K4:")]
    assert len(locked) == 1 and "another process is computing it" in lines[locked[0]]
    written = [i for i, line in enumerate(lines) if "tiny_L1_K4-8.json written" in line]
    assert locked[0] < lines.index(starts[0]) < written[0]  # the start line opens its own run
    assert not (tmp_path / held.filename).exists()


@pytest.mark.slow
def test_two_grid_runs_on_one_folder_train_every_run_exactly_once(tmp_path):
    env = helpers.child_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    argv = [sys.executable, "-m", "hw2.experiments", "grid-run", *GRID, "-o", str(tmp_path / "shared")]
    start = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    elapsed = time.monotonic() - start
    for i, (p, (out, err)) in enumerate(zip(procs, outputs)):
        print(f"--- grid-run process {i} (exit {p.returncode}) ---\n{out}{err}")
    print(f"both done after {elapsed:.1f} s")
    assert [p.returncode for p in procs] == [0, 0], outputs

    stems = [run.stem for run in grids.get_grids("exp1_3")[0].runs]
    for stem in stems:
        starts = [out.count(f"Starting {stem} (model=") for out, _ in outputs]
        trained = [len(re.findall(rf"Output file \S*{re.escape(stem)}\.json written", out))
                   for out, _ in outputs]
        assert sum(trained) == 1, (stem, trained)  # written by exactly one process
        assert starts == trained, (stem, starts)  # ... which alone announced it
    # The lone oracle: the same grid in a fresh folder, one process.
    lone = helpers.run_cli("grid-run", *GRID, "-o", tmp_path / "lone", cwd=tmp_path,
                           env=dict(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
    assert lone.returncode == 0, lone.stderr
    for stem in stems:
        shared_cfg, shared = load_experiment(tmp_path / "shared" / f"{stem}.json")
        _, alone = load_experiment(tmp_path / "lone" / f"{stem}.json")
        helpers.assert_fit_equal(shared, alone)
        assert shared_cfg["resumed_from_epoch"] is None  # no run picked up another's checkpoint
    leftovers = sorted(p.name for p in (tmp_path / "shared").rglob("*")
                       if p.suffix in (".lock", ".tmp", ".pt"))
    assert leftovers == []
