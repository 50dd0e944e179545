"""Tests for hw2.grids: the five grids as data, running, submitting and summarising them."""
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from cs236781.train_results import FitResult  # noqa: E402
from hw2 import grids  # noqa: E402
from hw2.cnn import CNN, ResNet, YourCNN  # noqa: E402
from hw2 import cluster  # noqa: E402
from hw2.cli import build_parser  # noqa: E402
from hw2.config import ExperimentConfig, expand_channels  # noqa: E402
from hw2.cluster import ClusterSettings  # noqa: E402
from hw2.grids import GRIDS, Grid  # noqa: E402
from hw2.results import load_experiment, save_experiment  # noqa: E402
from hw2.validation import ExperimentConfigError, UsageError  # noqa: E402

# The grids as the assignment states them, written out independently of hw2.grids.
EXPECTED = {
    "exp1_1": ("cnn", {((32,), l) for l in (2, 4, 8, 16)} | {((64,), l) for l in (2, 4, 8, 16)}),
    "exp1_2": ("cnn", {((k,), l) for l in (2, 4, 8) for k in (32, 64, 128, 256)}),
    "exp1_3": ("cnn", {((64, 128, 256), l) for l in (1, 2, 3, 4)}),
    "exp1_4": ("resnet", {((32,), 8), ((32,), 16), ((32,), 32),
                          ((64, 128, 256), 2), ((64, 128, 256), 4), ((64, 128, 256), 8)}),
    "exp2": ("ycn", {((32, 64, 128), l) for l in (3, 6, 9, 12)}),
}
CLASSES = {"cnn": CNN, "resnet": ResNet, "ycn": YourCNN}
TINY_SETTINGS = dict(dataset="digits", seed=0, bs_train=32, bs_test=64, batches=2, epochs=1,
                     early_stopping=None, lr=1e-3, reg=1e-3, device=None, loader="tensor")


def tiny_grid(name="tiny"):
    run = ExperimentConfig(name, model_type="cnn", layers_per_block=1, pool_every=1,
                           hidden_dims=(8,))
    return Grid(name, "two tiny runs", (run.replace(filters_per_layer=(4,)),
                                        run.replace(filters_per_layer=(4, 8))))


# -- the grids as data --------------------------------------------------------------------------

def test_grids_hold_exactly_the_assigned_runs():
    assert list(GRIDS) == list(EXPECTED)
    for name, (model_type, configs) in EXPECTED.items():
        grid = GRIDS[name]
        got = [(run.filters_per_layer, run.layers_per_block) for run in grid.runs]
        assert len(got) == len(set(got)) and set(got) == configs, name
        assert {run.model_type for run in grid.runs} == {model_type}
        assert {run.run_name for run in grid.runs} == {name}
    assert sum(len(g) for g in GRIDS.values()) == 34


@pytest.mark.parametrize("grid, first", [
    ("exp1_1", "exp1_1_L2_K32.json"), ("exp1_2", "exp1_2_L2_K32.json"),
    ("exp1_3", "exp1_3_L1_K64-128-256.json"), ("exp1_4", "exp1_4_L8_K32.json"),
    ("exp2", "exp2_L3_K32-64-128.json"),
])
def test_first_run_names_follow_the_assignment(grid, first):
    assert GRIDS[grid].runs[0].filename == first


@pytest.mark.parametrize("n, max_pools, expected", [
    (1, 3, 1), (2, 3, 1), (3, 3, 1), (4, 3, 2), (8, 3, 3), (16, 3, 6), (32, 3, 11), (12, 3, 4),
    (5, 5, 1), (6, 5, 2),
])
def test_pool_every_for_spreads_at_most_max_pools(n, max_pools, expected):
    p = grids.pool_every_for(n, max_pools)
    assert p == expected
    assert n // p <= max_pools
    if n % max_pools == 0:
        assert n // p == max_pools


def test_three_k_grids_pool_once_per_group_of_equal_filters():
    for name in ("exp1_3", "exp2"):
        assert all(run.pool_every == run.layers_per_block for run in GRIDS[name].runs)


def _count(module: nn.Module, kind) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("name", list(GRIDS))
@pytest.mark.parametrize("in_size", [(3, 32, 32), (1, 8, 8)])
def test_every_grid_run_builds_a_valid_network(name, in_size):
    for run in GRIDS[name].runs:
        n_convs = len(run.filters_per_layer) * run.layers_per_block
        assert run.pool_every == math.ceil(n_convs / grids.MAX_POOLS)
        net = CLASSES[run.model_type](
            in_size, 10, channels=expand_channels(run.filters_per_layer, run.layers_per_block),
            pool_every=run.pool_every, hidden_dims=list(run.hidden_dims))
        assert _count(net.feature_extractor, (nn.MaxPool2d, nn.AvgPool2d)) <= grids.MAX_POOLS
        # The classifier's input size tells the size of the last feature maps.
        n_features = net.mlp.seq[0].in_features
        last_channels = run.filters_per_layer[-1]
        if run.model_type == "ycn":  # global average pooling: one value per channel
            assert n_features == last_channels
        else:
            min_side = in_size[-1] // 2 ** grids.MAX_POOLS
            assert n_features % last_channels == 0
            assert n_features // last_channels >= min_side ** 2


def test_grid_commands_parse_back_to_the_same_experiment(tmp_path):
    settings = grids.grid_settings(dataset="digits")
    parser = build_parser()
    for grid in GRIDS.values():
        for run in grid.configs(settings, tmp_path):
            argv = grids.run_command(run)
            assert argv[:4] == ["python", "-m", "hw2.experiments", "run-exp"]
            args = parser.parse_args(argv[3:])
            kw = run.experiment_kwargs()
            for key in ("filters_per_layer", "layers_per_block", "pool_every", "hidden_dims",
                        "model_type", "seed", "bs_train", "bs_test", "batches", "epochs",
                        "early_stopping", "lr", "reg", "dataset", "loader"):
                assert getattr(args, key) == kw[key], (run.stem, key)
            assert args.run_name == grid.name and args.out_dir == str(tmp_path)
            # Every field, not only those: the command is exactly the run's configuration.
            assert ExperimentConfig.from_args(args) == run


def test_grid_commands_carry_every_setting_that_differs_from_the_default(tmp_path):
    settings = grids.grid_settings(dataset="digits", augment=True, amp=False,
                                   channels_last=True, compile_model=True, loader="tensor",
                                   kw={"batchnorm": True, "dropout": 0.25}, bs_test=None)
    run = GRIDS["exp1_1"].configs(settings, tmp_path)[0]
    argv = grids.run_command(run)
    for flag in ("--augment", "--no-amp", "--channels-last", "--compile", "--dataset"):
        assert flag in argv, flag
    assert "--bs-test" not in argv  # None (bs_train // 4) has no spelling: left to the default
    assert argv[argv.index("--model-kw") + 1] == "batchnorm=true"
    args = build_parser().parse_args(argv[3:])
    assert ExperimentConfig.from_args(args) == run
    assert run.kw == {"batchnorm": True, "dropout": 0.25}


def test_impossible_grid_settings_fail_before_anything_is_submitted(tmp_path):
    with pytest.raises(ExperimentConfigError, match="bs_train must be an integer >= 1, got 0"):
        grids.submit_grid("exp1_3", tmp_path, grids.grid_settings(bs_train=0),
                          ClusterSettings(log_dir=tmp_path / "logs"), dry_run=True)
    with pytest.raises(ExperimentConfigError, match="timeout_min must be an integer >= 1, got -5"):
        grids.submit_grid("exp1_3", tmp_path, grids.grid_settings(),
                          ClusterSettings(log_dir=tmp_path / "logs", timeout_min=-5),
                          dry_run=True)
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("changes, exc, needle", [
    (dict(timeout_min=0), ValueError, "timeout_min must be an integer >= 1, got 0"),
    (dict(gpus=-1), ValueError, "gpus must be an integer >= 0, got -1"),
    (dict(cpus=1.5), TypeError, "cpus must be an integer >= 1, got 1.5"),
    (dict(cluster="pbs"), ValueError, "cluster must be one of slurm, local, debug, got 'pbs'"),
    (dict(partition=""), ValueError, "partition must be a non-empty string"),
    (dict(array_parallelism=0), ValueError, "array_parallelism must be an integer >= 1"),
])
def test_cluster_settings_are_checked(changes, exc, needle):
    with pytest.raises(exc, match=needle):
        cluster.ClusterSettings(**changes)


def test_cluster_settings_accept_numpy_integers():
    import numpy as np
    settings = cluster.ClusterSettings(timeout_min=np.int64(30), gpus=np.int32(0))
    assert (settings.timeout_min, settings.gpus) == (30, 0)
    assert type(settings.timeout_min) is int


def test_quick_settings_shrink_the_workload_only():
    full, quick = grids.grid_settings(), grids.grid_settings(quick=True)
    assert quick["epochs"] < full["epochs"] and quick["batches"] is not None
    assert {k: v for k, v in quick.items() if k not in grids.QUICK_SETTINGS} == \
           {k: v for k, v in full.items() if k not in grids.QUICK_SETTINGS}


def test_get_grids_resolves_names_all_and_rejects_unknown():
    assert grids.get_grids("exp1_3") == [GRIDS["exp1_3"]]
    assert grids.get_grids(["exp2", "exp2", "exp1_1"]) == [GRIDS["exp2"], GRIDS["exp1_1"]]
    assert grids.get_grids("all") == list(GRIDS.values())
    with pytest.raises(UsageError, match="exp9"):
        grids.get_grids(["exp1_1", "exp9"])


# -- running a grid here ------------------------------------------------------------------------

def test_run_grid_runs_then_skips_complete_runs_and_redoes_broken_ones(tmp_path):
    grid = tiny_grid()
    outcomes = grids.run_grid(grid, tmp_path, dict(TINY_SETTINGS), verbose=False)
    assert [o.status for o in outcomes] == ["done", "done"]
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == ["tiny_L1_K4-8.json", "tiny_L1_K4.json"]
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # removed after success
    for o in outcomes:
        cfg, fit = load_experiment(o.path)
        assert cfg["dataset"] == "digits" and fit.num_epochs == 1

    kept = (tmp_path / "tiny_L1_K4.json").read_text()
    (tmp_path / "tiny_L1_K4-8.json").write_text('{"config": {}, "resu')  # truncated
    again = grids.run_grid(grid, tmp_path, dict(TINY_SETTINGS), verbose=False)
    assert [o.status for o in again] == ["skipped", "done"]
    assert (tmp_path / "tiny_L1_K4.json").read_text() == kept
    load_experiment(tmp_path / "tiny_L1_K4-8.json")


def test_submit_grid_dry_run_submits_nothing(tmp_path, capsys):
    cluster, submitted = grids.submit_grid(
        "exp1_3", tmp_path, grids.grid_settings(), ClusterSettings(log_dir=tmp_path / "logs"),
        dry_run=True)
    out = capsys.readouterr().out
    assert len(submitted) == 4 and all(s.job is None for s in submitted)
    assert out.count("python -m hw2.experiments run-exp") == 4
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_submit_grid_runs_a_job_array_with_the_local_executor(tmp_path, capsys):
    pytest.importorskip("submitit")
    grid = tiny_grid("arr")
    cluster, submitted = grids.submit_grid(
        grid, tmp_path / "res", dict(TINY_SETTINGS),
        ClusterSettings(cluster="local", log_dir=tmp_path / "logs", timeout_min=10, gpus=1))
    assert cluster == "local" and len(submitted) == 2
    paths = [item.job.result() for item in submitted]
    assert sorted(os.path.basename(p) for p in paths) == ["arr_L1_K4-8.json", "arr_L1_K4.json"]
    for p in paths:
        cfg, fit = load_experiment(p)
        assert fit.num_epochs == 1 and cfg["run_name"] == "arr"
    # Everything is complete now: a second submission submits nothing.
    _, again = grids.submit_grid(grid, tmp_path / "res", dict(TINY_SETTINGS),
                                 ClusterSettings(cluster="local", log_dir=tmp_path / "logs"))
    assert again == []


def test_local_executor_gets_explicit_timeout_and_visible_gpus(tmp_path):
    pytest.importorskip("submitit")
    executor = cluster.make_executor(
        cluster.ClusterSettings(cluster="local", log_dir=str(tmp_path), timeout_min=37, gpus=1,
                                cpus=2), n_jobs=2)
    assert executor.cluster == "local"
    params = executor._executor.parameters
    assert params["timeout_min"] == 37
    assert params["gpus_per_node"] == min(1, torch.cuda.device_count())


# -- summaries and plots -----------------------------------------------------------------------

def _write(folder, run_name, k, l, test_acc, model="cnn", wall=12.5, dataset="digits"):
    n = len(test_acc)
    fit = FitResult(n, [2.0 - 0.1 * i for i in range(2 * n)], [a + 5 for a in test_acc],
                    [2.1 - 0.1 * i for i in range(2 * n)], list(test_acc))
    cfg = dict(run_name=run_name, filters_per_layer=list(k), layers_per_block=l,
               model_type=model, wall_time_s=wall, dataset=dataset, pool_every=1, lr=1e-3)
    return save_experiment(run_name, str(folder), cfg, fit)


def test_summarize_prints_the_table_and_writes_one_png_per_grid(tmp_path, capsys):
    _write(tmp_path, "exp1_1", [32], 4, [20.0, 35.5, 30.0])
    _write(tmp_path, "exp1_1", [32], 2, [25.0, 31.0], wall=75.0)
    _write(tmp_path, "exp2", [32, 64, 128], 3, [40.0], model="ycn", wall=3725)
    (tmp_path / "broken.json").write_text("{")
    rows = grids.summarize(tmp_path, plots_dir=tmp_path / "plots")
    captured = capsys.readouterr()
    assert [r.run for r in rows] == ["exp1_1_L2_K32", "exp1_1_L4_K32", "exp2_L3_K32-64-128"]
    assert [r.best_test_acc for r in rows] == [31.0, 35.5, 40.0]
    assert [r.epochs for r in rows] == [2, 3, 1]
    assert [r.model for r in rows] == ["cnn", "cnn", "ycn"]
    lines = captured.out.splitlines()
    assert lines[0].split() == ["run", "model", "K", "L", "epochs", "best", "test", "acc",
                                "wall", "time", "dataset"]
    assert lines[2].split() == ["exp1_1_L2_K32", "cnn", "32", "2", "2", "31.0%", "1m15s", "digits"]
    assert lines[4].split() == ["exp2_L3_K32-64-128", "ycn", "32-64-128", "3", "1", "40.0%",
                                "1h02m05s", "digits"]
    assert "broken.json" in captured.err
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["exp1_1.png", "exp2.png"]
    assert (tmp_path / "plots" / "exp1_1.png").stat().st_size > 5000


def test_summarize_of_missing_or_empty_folders(tmp_path, capsys):
    with pytest.raises(UsageError, match="does not exist"):
        grids.summarize(tmp_path / "nope")
    assert grids.summarize(tmp_path) == []
    assert "No result files" in capsys.readouterr().out


def test_plot_experiments_overlays_matching_runs(tmp_path, capsys):
    _write(tmp_path, "exp1_1", [32], 2, [20.0, 30.0])
    _write(tmp_path, "exp1_1", [32], 4, [22.0, 33.0])
    _write(tmp_path, "exp1_1", [64], 2, [24.0, 36.0])
    fig, common = grids.plot_experiments("exp1_1_L*_K32*.json", tmp_path)
    labels = sorted({line.get_label() for ax in fig.axes for line in ax.lines})
    assert labels == ["L2_K32", "L4_K32"]
    assert "filters_per_layer" not in common and "layers_per_block" not in common
    assert common["model_type"] == "cnn" and common["lr"] == 1e-3
    assert "common config" in capsys.readouterr().out
    plt.close(fig)
    assert grids.plot_experiments("exp9_*.json", tmp_path) == (None, None)
    assert "No results found" in capsys.readouterr().out


def test_summarize_sorts_a_numeric_run_name_with_the_others_and_names_a_non_utf8_file(
        tmp_path, capsys):
    _write(tmp_path, "exp1_1", [32], 2, [25.0])
    (tmp_path / "odd.json").write_text(json.dumps(
        {"config": {"run_name": 7, "filters_per_layer": [4], "layers_per_block": 1},
         "results": dict(num_epochs=1, train_loss=[2.0], train_acc=[10.0], test_loss=[None],
                         test_acc=[12.5])}))
    (tmp_path / "latin1.json").write_bytes('{"config": "é"}'.encode("latin-1"))
    rows = grids.summarize(tmp_path, plots_dir=tmp_path / "plots")
    assert [r.run for r in rows] == ["odd", "exp1_1_L2_K32"]  # "7" sorts before "exp1_1"
    assert math.isnan(load_experiment(tmp_path / "odd.json")[1].test_loss[0])
    err = capsys.readouterr().err
    assert re.search(r"skipped: .*latin1\.json is not a valid experiment result file: it is not "
                     r"UTF-8 text", err), err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["7.png", "exp1_1.png"]


def test_a_nan_loss_is_saved_as_null_and_the_run_marked_diverged(tmp_path):
    fit = FitResult(2, [2.0, 1.5], [10.0, 20.0], [2.1, float("nan")], [11.0, 12.0])
    path = save_experiment("nanrun", tmp_path, dict(filters_per_layer=[4], layers_per_block=1,
                                                    lr=float("inf")), fit)
    text = open(path).read()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)  # strict JSON
    assert data["results"]["test_loss"] == [2.1, None] and data["config"]["lr"] is None
    assert data["config"]["diverged"]["epoch"] == 2 and data["config"]["diverged"]["loss"] == "nan"
    assert data["config"]["diverged"]["batch"] == 1  # one test batch per epoch here
    cfg, loaded = load_experiment(path)
    assert loaded.test_loss[0] == 2.1 and math.isnan(loaded.test_loss[1])
    assert grids.summarize(tmp_path, file=open(os.devnull, "w"))[0].diverged_epoch == 2


# -- the scheduler's refusals and waiting without accounting (no real Slurm: fakes) -----------

class _RefusingExecutor:
    """Stands in for a Slurm executor whose sbatch refuses the array (as submitit raises it)."""

    cluster = "slurm"

    def __init__(self, log_dir):
        self.log_dir = log_dir

    def map_array(self, fn, specs):
        import subprocess
        from submitit.core.utils import FailedJobError
        (self.log_dir / "submission_file_123.sh").parent.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "submission_file_123.sh").write_text("#!/bin/sh")
        print("sbatch: error: invalid partition specified: nope", file=sys.stderr)  # as submitit
        stderr = ("sbatch: error: invalid partition specified: nope\n"
                  "sbatch: error: Batch job submission failed: Invalid partition name specified")
        raise FailedJobError(stderr) from subprocess.CalledProcessError(1, ["sbatch"],
                                                                         stderr=stderr)


def test_a_refused_submission_is_one_usage_error_and_leaves_no_folder(tmp_path, monkeypatch,
                                                                      capsys):
    pytest.importorskip("submitit")
    logs, results = tmp_path / "logs", tmp_path / "results"
    monkeypatch.setattr(grids, "make_executor", lambda settings, n: _RefusingExecutor(logs))
    with pytest.raises(UsageError) as info:
        grids.submit_grid("exp1_3", results, grids.grid_settings(quick=True, dataset="digits"),
                          ClusterSettings(log_dir=logs, partition="nope"))
    message = str(info.value)
    assert "\n" not in message
    assert message == ("the slurm scheduler refused the job array (partition=nope, gpus=1, "
                       "cpus=2, timeout_min=240): invalid partition specified: nope; Batch job "
                       "submission failed: Invalid partition name specified")
    assert "sbatch" not in capsys.readouterr().err  # submitit's echo is captured
    assert not logs.exists() and not results.exists()


class _FakeJob:
    def __init__(self, folder, job_id, result=None, error=None):
        from types import SimpleNamespace
        self.job_id = job_id
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl",
                                     stderr=folder / f"{job_id}_log.err")
        self._result, self._error = result, error

    def result(self):
        if self._error:
            raise self._error
        return self._result

    def done(self):
        return self.paths.result_pickle.exists()


def test_wait_for_jobs_ends_when_slurm_forgets_a_job_without_a_result(tmp_path, monkeypatch):
    ok = _FakeJob(tmp_path, "7_0", result="r.json")
    ok.paths.result_pickle.write_text("x")
    failed = _FakeJob(tmp_path, "7_1", error=RuntimeError(
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "ValueError: boom at epoch 2\n----------------------\n"
        "You can check full logs with 'job.stderr(0)'"))
    failed.paths.result_pickle.write_text("x")
    cancelled = _FakeJob(tmp_path, "7_2")
    states = {"7_2": ["RUNNING", "RUNNING", None, None, None]}
    monkeypatch.setattr(cluster, "_slurm_state",
                        lambda job_id: states[job_id].pop(0) if states[job_id] else None)
    now = [0.0]
    out = cluster.wait_for_jobs([ok, failed, cancelled], "slurm", poll_s=1, grace_s=2,
                                clock=lambda: now[0],
                                sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert out[0] is None
    assert out[1] == f"job 7_1 failed: ValueError: boom at epoch 2 (log: {failed.paths.stderr})"
    assert out[2] == (f"job 7_2 is no longer known to Slurm without a result (cancelled or "
                      f"killed?) (log: {cancelled.paths.stderr})")
    assert now[0] == 4.0  # two polls RUNNING, then gone for the 2 s grace


def test_grid_run_removes_stale_temporary_files_of_killed_writes(tmp_path):
    out = tmp_path / "res"
    (out / "checkpoints").mkdir(parents=True)
    stale = [out / ".exp1_3_L1_K64-128-256.json.abcd1234.tmp",
             out / "checkpoints" / ".exp1_3_L1_K64-128-256.pt.abcd1234.tmp"]
    for path in stale:
        path.write_text("half")
        os.utime(path, (1e9, 1e9))
    from hw2.cli import main
    assert main(["grid-show", "exp1_3", "-o", str(out)]) == 0  # grid-show removes nothing
    assert all(p.exists() for p in stale)
    assert main(["grid-run", "exp1_3", "-o", str(out), "--quick", "--dataset", "digits",
                 "--epochs", "1", "--batches", "1"]) == 0
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in out.rglob("*")) == sorted(
        ["checkpoints"] + [f"exp1_3_L{l}_K64-128-256.json" for l in (1, 2, 3, 4)])


# -- the data set is checked before anything is submitted (a fake Slurm on PATH) ---------------

@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """PATH holds only a fake ``srun`` and a fake ``sbatch`` that records each call in the
    returned file and answers as Slurm does; no real scheduler can be reached."""
    pytest.importorskip("submitit")
    fakes, calls = tmp_path / "fake-slurm", tmp_path / "sbatch-calls"
    fakes.mkdir()
    for name, body in (("srun", "exit 0"),
                       ("sbatch", f'echo "$@" >> "{calls}"\necho "Submitted batch job 4242"')):
        (fakes / name).write_text(f"#!/bin/sh\n{body}\n")
        (fakes / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(fakes))
    return calls


def _grid_submit(tmp_path, dataset, *flags):
    from hw2.cli import main
    return main(["grid-submit", "exp1_3", "--quick", "--dataset", dataset, "--cluster", "slurm",
                 "-o", str(tmp_path / "res"), "--log-dir", str(tmp_path / "logs"), *flags])


def test_grid_submit_of_missing_real_data_fails_in_one_line_before_any_sbatch_or_folder(
        tmp_path, fake_slurm, offline_data, capsys):
    assert _grid_submit(tmp_path, "cifar10") == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("python -m hw2.experiments grid-submit: error: the cifar10 data "
                               f"set is not in the data folder {offline_data} ")
    assert "each of the 4 job(s) would fail" in lines[0]
    assert "--dataset digits or --dataset synthetic" in lines[0] and "HW2_DATA_DIR" in lines[0]
    assert not fake_slurm.exists()  # sbatch never ran
    assert not (tmp_path / "res").exists() and not (tmp_path / "logs").exists()
    assert not offline_data.exists()  # nothing was downloaded (or attempted into it)

    # A dry run submits nothing either way: it names the problem as a warning.
    assert _grid_submit(tmp_path, "cifar10", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Dry run: WARNING: the cifar10 data set is not in the data folder" in out
    assert out.count("python -m hw2.experiments run-exp") == 4 and not fake_slurm.exists()


@pytest.mark.parametrize("dataset, loaded", [("digits", False), ("synthetic", False),
                                             ("cifar10", True)])
def test_grid_submit_submits_once_the_data_set_is_available(tmp_path, fake_slurm, offline_data,
                                                            monkeypatch, capsys, dataset, loaded):
    calls = []

    def found_on_disk(name, **kwargs):  # stands in for CIFAR-10 files present on disk
        calls.append((name, kwargs))
        return [], []

    monkeypatch.setattr(grids, "load_dataset", found_on_disk)
    assert _grid_submit(tmp_path, dataset) == 0, capsys.readouterr().err
    assert calls == ([("cifar10", dict(download=False, verbose=False))] if loaded else [])
    assert len(fake_slurm.read_text().splitlines()) == 1  # one sbatch call: the job array
    assert "4242_0" in capsys.readouterr().out


@pytest.mark.parametrize("dry_run", [True, False])
def test_grid_submit_names_a_bad_hw2_dataset_as_a_config_error(tmp_path, fake_slurm,
                                                                monkeypatch, dry_run):
    monkeypatch.setenv("HW2_DATASET", "imagenet")  # the runs leave the data set to it
    with pytest.raises(ExperimentConfigError, match="dataset: HW2_DATASET must be one of .*, "
                                                    "got 'imagenet'"):
        grids.submit_grid("exp1_3", tmp_path / "res", grids.grid_settings(quick=True),
                          ClusterSettings(cluster="slurm", log_dir=tmp_path / "logs"),
                          dry_run=dry_run)
    assert not fake_slurm.exists() and not (tmp_path / "res").exists()
