"""Tests for the Part 5 API of hw2.experiments: cnn_experiment, result files, fast paths.

Runs train tiny networks on scikit-learn's 8x8 digits (real, offline) for one or two epochs of
a few batches, so each test takes a second or two.
"""
import inspect
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from cs236781.train_results import FitResult
from helpers import TINY_RUN as TINY, assert_fit_equal as _fit_equal, child_env
from helpers import files_in as _leftovers
from hw2 import config, devices, experiments, results, training
from hw2.config import ExperimentConfig, expand_channels
from hw2.datasets import DatasetUnavailableError
from hw2.experiments import cnn_experiment, rerun_config
from hw2.results import load_experiment, result_filename, save_experiment, to_jsonable
from hw2.runs import RunBusy
from hw2.validation import ExperimentConfigError, ExperimentConfigTypeError, UsageError


# -- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("k, l, expected", [
    ([32, 64], 2, [32, 32, 64, 64]),
    ([7], 3, [7, 7, 7]),
    ([64, 128, 256], 1, [64, 128, 256]),
])
def test_expand_channels_repeats_each_k_l_times(k, l, expected):
    assert expand_channels(k, l) == expected


@pytest.mark.parametrize("name, k, l, expected", [
    ("test_run", [32, 64], 1, "test_run_L1_K32-64.json"),
    ("exp1_3", [64, 128, 256], 1, "exp1_3_L1_K64-128-256.json"),
    ("exp1_1", [32], 16, "exp1_1_L16_K32.json"),
])
def test_result_filename_follows_the_course_pattern(name, k, l, expected):
    assert result_filename(name, k, l) == expected


# -- a run and its result file --------------------------------------------------------------

def test_cnn_experiment_writes_a_complete_result_file(tmp_path):
    run = cnn_experiment("tiny", out_dir=tmp_path, seed=3, **TINY)
    assert run.path == str(tmp_path / "tiny_L1_K4-8.json")
    assert _leftovers(tmp_path) == ["tiny_L1_K4-8.json"]  # no temp files, no checkpoints
    cfg, fit = load_experiment(run.path)
    _fit_equal(fit, run.result)
    assert fit.num_epochs == 2 and len(fit.train_acc) == len(fit.test_acc) == 2
    assert len(fit.train_loss) == 2 * 3  # per batch: epochs x batches
    # digits' test split has 360 images: 64 * 3 batches = 192 are seen per test epoch
    assert len(fit.test_loss) == 2 * 3
    for key, value in dict(TINY, run_name="tiny", seed=3, model_type="cnn", lr=1e-3,
                           reg=1e-3).items():
        if key != "verbose":
            assert cfg[key] == value, key
    assert cfg["channels"] == [4, 8]
    assert cfg["device_used"] == "cpu" and cfg["torch_version"] == torch.__version__
    assert cfg["wall_time_s"] > 0
    assert cfg["fast_paths"] == dict(amp_bf16=False, channels_last=False, cudnn_benchmark=False,
                                     non_blocking=False, compile=False,
                                     tensor_data_on_device=False)


def test_cnn_model_matches_a_hand_parameter_count(tmp_path):
    # K=4-8, L=1, pool every conv, 8x8x1 input: conv 1->4 (3x3), pool -> 4x4, conv 4->8, pool
    # -> 2x2, so 8*2*2 = 32 features -> FC 16 -> FC 10.
    expected = (9 * 1 * 4 + 4) + (9 * 4 * 8 + 8) + (32 * 16 + 16) + (16 * 10 + 10)
    run = cnn_experiment("count", out_dir=tmp_path, seed=0, **TINY)
    assert run.config["num_params"] == expected


@pytest.mark.parametrize("model_type, cls_name", [
    ("cnn", "CNN"), ("resnet", "ResNet"), ("ycn", "YourCNN"),
])
def test_each_model_type_trains_and_is_recorded(tmp_path, model_type, cls_name, monkeypatch):
    built = []
    original = experiments.ArgMaxClassifier

    def spy(model):  # the network cnn_experiment trains, as it is wrapped for training
        built.append(model)
        return original(model)

    monkeypatch.setattr(experiments, "ArgMaxClassifier", spy)
    run = cnn_experiment("m", out_dir=tmp_path, seed=1, model_type=model_type, **TINY)
    assert type(built[0]).__name__ == cls_name
    assert built[0].channels == [4, 8]
    assert next(built[0].parameters()).device.type == "cpu"  # the network it trained
    assert run.config["model_type"] == model_type
    assert all(math.isfinite(v) for v in run.result.train_loss)


def test_model_kwargs_reach_the_model_and_the_config(tmp_path):
    run = cnn_experiment("kw", out_dir=tmp_path, seed=1, model_type="resnet",
                         batchnorm=True, dropout=0.1, **TINY)
    assert run.config["kw"] == {"batchnorm": True, "dropout": 0.1}
    assert rerun_config(run.config)["batchnorm"] is True


def test_same_seed_same_results_and_rerun_config_reproduces(tmp_path):
    first = cnn_experiment("r", out_dir=tmp_path / "a", seed=None, **TINY)
    seed = first.config["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2 ** 31  # drawn and recorded
    cfg = rerun_config(first.config)
    cfg.update(out_dir=str(tmp_path / "b"), verbose=False)
    second = cnn_experiment(**cfg)
    _fit_equal(first.result, second.result)


def test_tensor_and_torchvision_loaders_give_identical_training(tmp_path):
    a = cnn_experiment("t", out_dir=tmp_path / "t", seed=5, loader="tensor", **TINY)
    b = cnn_experiment("t", out_dir=tmp_path / "v", seed=5, loader="torchvision", **TINY)
    _fit_equal(a.result, b.result)
    assert b.config["loader"] == "torchvision"


def test_learns_digits_well_above_chance(tmp_path):
    settings = dict(TINY, batches=None, epochs=4, bs_train=64)
    run = cnn_experiment("learn", out_dir=tmp_path, seed=0, lr=3e-3,
                         **{**settings, "filters_per_layer": [16, 32], "hidden_dims": [64]})
    assert max(run.result.test_acc) > 80.0  # chance is 10%


# -- failing before training ------------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    (dict(filters_per_layer=[4], layers_per_block=5, pool_every=1), "shrinks the feature maps"),
    (dict(model_type="vgg"), "model_type"),
    (dict(filters_per_layer=[]), "filters_per_layer"),
    (dict(filters_per_layer=[4, 0]), "filters_per_layer[1]"),
    (dict(layers_per_block=0), "layers_per_block"),
    (dict(pool_every=1.5), "pool_every"),
    (dict(epochs=0), "epochs"),
    (dict(bs_train=0), "bs_train"),
    (dict(batches=-1), "batches"),
    (dict(lr=-1.0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(reg=-0.1), "reg"),
    (dict(dataset="imagenet"), "dataset"),
    (dict(loader="dali"), "loader"),
    (dict(device="tpu"), "device"),
    (dict(device="cuda:7"), "cuda"),
    (dict(amp="yes"), "amp"),
    (dict(conv_params=dict(kernel_size=3, stride=4)), "conv_params"),
    (dict(no_such_option=1), "no_such_option"),
])
def test_impossible_configurations_fail_before_training_and_write_nothing(
        tmp_path, no_training, override, needle):
    out = tmp_path / "results"
    with pytest.raises(ExperimentConfigError, match=None) as info:
        cnn_experiment("bad", out_dir=out, seed=0, **{**TINY, **override})
    assert needle in str(info.value)
    assert _leftovers(out) == []


@pytest.mark.parametrize("run_name", ["", "a/b", None])
def test_bad_run_names_are_rejected(tmp_path, run_name):
    with pytest.raises(ExperimentConfigError, match="run_name"):
        cnn_experiment(run_name, out_dir=tmp_path, **TINY)


def test_out_dir_that_is_a_file_is_rejected(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ExperimentConfigError, match="out_dir"):
        cnn_experiment("x", out_dir=target, **TINY)


def test_a_run_another_process_holds_is_refused_before_training(tmp_path, monkeypatch):
    out = tmp_path / "results"
    out.mkdir()
    holder = results.RunLock(out / "held_L1_K4-8.json")  # e.g. a second notebook kernel's run
    assert holder.acquire()
    fit = training.Trainer.fit

    def refuse(*args, **kwargs):
        raise AssertionError("training must not start")

    monkeypatch.setattr(training.Trainer, "fit", refuse)
    try:
        with pytest.raises(RunBusy) as info:
            cnn_experiment("held", out_dir=out, seed=0, **TINY)
    finally:
        holder.release()
    assert str(info.value) == (f"another process ({os.getpid()}@{os.uname().nodename}) is "
                               f"computing this run now (lock {holder.path}); wait for it or "
                               f"choose another run name or folder")
    assert _leftovers(out) == []
    monkeypatch.setattr(training.Trainer, "fit", fit)
    run = cnn_experiment("held", out_dir=out, seed=0, **TINY)  # free again: it runs
    assert _leftovers(out) == ["held_L1_K4-8.json"]  # and its own lock is gone
    assert run.result.num_epochs == TINY["epochs"]


def test_the_run_is_locked_while_it_trains(tmp_path, monkeypatch):
    seen = []
    fit = training.Trainer.fit

    def fit_and_look(self, *args, **kwargs):
        other = results.RunLock(tmp_path / "busy_L1_K4-8.json")
        seen.append(other.acquire())
        other.release()
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "fit", fit_and_look)
    cnn_experiment("busy", out_dir=tmp_path, seed=0, **TINY)
    assert seen == [False]
    assert _leftovers(tmp_path) == ["busy_L1_K4-8.json"]


def test_a_checkpoint_folder_that_is_a_file_fails_before_training(tmp_path, no_training):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "results"
    with pytest.raises(ExperimentConfigError, match=r"checkpoint folder '\S*/a-file' is not a "
                                                    r"folder \(it exists as a file\)"):
        cnn_experiment("ck", out_dir=out, checkpoints=str(tmp_path / "a-file" / "ck"), **TINY)
    assert not out.exists()  # the results folder it had created is removed again


def test_missing_real_data_raises_before_training_and_writes_nothing(tmp_path, offline_data):
    # Any download attempt goes to a closed local port and fails at once, online or not.
    out = tmp_path / "results"
    with pytest.raises(DatasetUnavailableError, match="HW2_DATA_DIR"):
        cnn_experiment("nodata", out_dir=out, seed=0, **{**TINY, "dataset": "cifar10"})
    assert _leftovers(out) == [] and not out.exists()


# -- checkpoints ------------------------------------------------------------------------------

class _Killed(BaseException):
    """Stands for the process being killed mid-run."""


def test_killed_run_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    settings = dict(TINY, epochs=4, seed=2)
    reference = cnn_experiment("ref", out_dir=tmp_path / "ref", **settings)

    checkpoint = str(tmp_path / "ck" / "run")
    calls = {"n": 0}
    original = training.ClassifierTrainer.train_epoch

    def dies_in_epoch_3(self, dl, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Killed()
        return original(self, dl, **kw)

    monkeypatch.setattr(training.ClassifierTrainer, "train_epoch", dies_in_epoch_3)
    with pytest.raises(_Killed):
        cnn_experiment("run", out_dir=tmp_path / "out", checkpoints=checkpoint, **settings)
    assert not (tmp_path / "out").exists() or _leftovers(tmp_path / "out") == []
    # The run resumes from the state after its last finished epoch (epoch 2), not from the
    # best-accuracy file, which may be older.
    saved = torch.load(checkpoint + ".last.pt", weights_only=True)["fit_state"]
    done = saved["epochs_done"]
    assert done == 2  # epochs 1 and 2 finished before the kill in epoch 3
    assert torch.load(checkpoint + ".pt", weights_only=True)["fit_state"]["epochs_done"] <= done

    monkeypatch.setattr(training.ClassifierTrainer, "train_epoch", original)
    # Fewer epochs than the checkpoint holds cannot be resumed: refused before training.
    with pytest.raises(ExperimentConfigError, match=r"it holds 2 epochs, more than --epochs 1"):
        cnn_experiment("run", out_dir=tmp_path / "short", checkpoints=checkpoint,
                       **dict(settings, epochs=1))
    assert _leftovers(tmp_path / "short") == []
    capsys.readouterr()
    resumed = cnn_experiment("run", out_dir=tmp_path / "out", checkpoints=checkpoint,
                             **dict(settings, verbose=True))
    assert "Resuming from" in capsys.readouterr().out
    assert resumed.config["resumed_from_epoch"] == done
    assert resumed.result.num_epochs == 4
    # The epochs before the kill are the ones the uninterrupted run had (same seed).
    assert resumed.result.train_acc[:done] == reference.result.train_acc[:done]
    assert resumed.result.test_acc[:done] == reference.result.test_acc[:done]
    # ... and so are the epochs after it: the random-number states were resumed too.
    _fit_equal(resumed.result, reference.result)
    assert not Path(checkpoint + ".last.pt").exists()  # removed once the fit completed


def test_checkpoint_of_another_run_is_refused_naming_the_settings(tmp_path):
    checkpoint = str(tmp_path / "ck")
    settings = dict(TINY, seed=0, lr=1e-3)
    first = cnn_experiment("a", out_dir=tmp_path / "a", checkpoints=checkpoint, **settings)
    with pytest.raises(ExperimentConfigError, match=r"belongs to another run: lr=0\.001 in the "
                                                    r"checkpoint but 0\.01 now; seed=0 in the "
                                                    r"checkpoint but 1 now"):
        cnn_experiment("b", out_dir=tmp_path / "b", checkpoints=checkpoint,
                       **dict(settings, seed=1, lr=1e-2))
    assert _leftovers(tmp_path / "b") == []
    # Another run name, folder or device is the same run: it resumes (nothing left to train).
    again = cnn_experiment("d", out_dir=tmp_path / "d", checkpoints=checkpoint, **settings)
    assert again.config["resumed_from_epoch"] >= 1
    _fit_equal(again.result, first.result)  # epochs after the best one replayed exactly


def test_checkpoint_of_another_architecture_fails_before_training(tmp_path):
    checkpoint = str(tmp_path / "ck")
    cnn_experiment("a", out_dir=tmp_path / "a", checkpoints=checkpoint, seed=0, **TINY)
    with pytest.raises(ExperimentConfigError, match="checkpoint"):
        cnn_experiment("b", out_dir=tmp_path / "b", checkpoints=checkpoint, seed=0,
                       **{**TINY, "filters_per_layer": [4, 16]})
    assert _leftovers(tmp_path / "b") == []


# -- fast paths -------------------------------------------------------------------------------

def test_cuda_fast_paths_are_off_on_cpu_even_when_requested(tmp_path):
    run = cnn_experiment("fp", out_dir=tmp_path, seed=0, device="cpu", amp=True,
                         channels_last=True, cudnn_benchmark=True, non_blocking=True, **TINY)
    assert not any(v for k, v in run.config["fast_paths"].items())
    assert run.config["amp"] is True  # the request is recorded for reproduction
    assert torch.backends.cudnn.benchmark is False


# -- JSON -------------------------------------------------------------------------------------

def test_to_jsonable_converts_what_json_cannot_hold_and_round_trips():
    cfg = {
        "device": torch.device("cpu"), "shape": (3, 32, 32), "path": Path("results/x"),
        "dtype": torch.float32, "np_int": np.int64(7), "np_float": np.float32(0.5),
        "tensor": torch.tensor([1, 2]), "scalar": torch.tensor(2.5), "module": nn.ReLU(),
        "cls": nn.Conv2d, "set": {3, 1}, 4: "int key", "nested": {"t": (1, (2, 3))},
    }
    converted = to_jsonable(cfg)
    assert json.loads(json.dumps(converted)) == converted
    assert converted == {
        "device": "cpu", "shape": [3, 32, 32], "path": os.path.join("results", "x"),
        "dtype": "torch.float32", "np_int": 7, "np_float": 0.5, "tensor": [1, 2],
        "scalar": 2.5, "module": "ReLU()", "cls": "torch.nn.modules.conv.Conv2d",
        "set": [1, 3], "4": "int key", "nested": {"t": [1, [2, 3]]},
    }


def test_save_and_load_experiment_round_trip(tmp_path):
    fit = FitResult(2, [2.3, 2.1, 1.9], [10.0, 20.5], [2.2, 2.0], [12.0, 25.0])
    cfg = {"run_name": "rt", "filters_per_layer": (32, 64), "layers_per_block": 1,
           "device": torch.device("cpu"), "hidden_dims": (100,)}
    path = save_experiment("rt", str(tmp_path), cfg, fit)
    assert path == str(tmp_path / "rt_L1_K32-64.json")
    loaded_cfg, loaded_fit = load_experiment(path)
    assert loaded_fit == fit and isinstance(loaded_fit, FitResult)
    assert loaded_cfg == {"run_name": "rt", "filters_per_layer": [32, 64],
                          "layers_per_block": 1, "device": "cpu", "hidden_dims": [100]}
    assert _leftovers(tmp_path) == ["rt_L1_K32-64.json"]


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    fit = FitResult(1, [1.0], [50.0], [1.0], [40.0])
    cfg = {"filters_per_layer": [8], "layers_per_block": 2}
    path = save_experiment("w", str(tmp_path), cfg, fit)
    before = Path(path).read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_experiment("w", str(tmp_path), cfg, fit._replace(num_epochs=1, test_acc=[99.0]))
    assert Path(path).read_text() == before
    assert _leftovers(tmp_path) == ["w_L2_K8.json"]


_GOOD = {"config": {"run_name": "g"},
         "results": {"num_epochs": 1, "train_loss": [1.0], "train_acc": [50.0],
                     "test_loss": [1.1], "test_acc": [40.0]}}


def _bad_results(**changes):
    return json.dumps({"config": {}, "results": {**_GOOD["results"], **changes}})


@pytest.mark.parametrize("content, needle", [
    (json.dumps(_GOOD)[:40], "truncated or not JSON"),
    ("hello", "truncated or not JSON"),
    ("", "truncated or not JSON"),
    (json.dumps([1, 2]), "keys 'config' and 'results'"),
    (json.dumps({"config": {}, "results": {}, "extra": 1}), "keys 'config' and 'results'"),
    (json.dumps({"config": [], "results": _GOOD["results"]}), "'config' must be an object"),
    (json.dumps({"config": {}, "results": {"num_epochs": 1}}), "exactly the fields"),
    (_bad_results(num_epochs="1"), "num_epochs"),
    (_bad_results(num_epochs=-1), "num_epochs"),
    (_bad_results(train_loss="1.0"), "train_loss"),
    (_bad_results(test_acc=[40.0, "x"]), "test_acc"),
    (_bad_results(train_acc=[50.0, 60.0]), "train_acc' has 2 entries"),
])
def test_load_experiment_rejects_broken_files_naming_them(tmp_path, content, needle):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_experiment(str(path))
    assert str(path) in str(info.value) and needle in str(info.value)


def test_load_experiment_accepts_the_good_file_and_reports_missing_ones(tmp_path):
    path = tmp_path / "good.json"
    path.write_text(json.dumps(_GOOD))
    cfg, fit = load_experiment(path)
    assert cfg == {"run_name": "g"} and fit == FitResult(1, [1.0], [50.0], [1.1], [40.0])
    with pytest.raises(FileNotFoundError):
        load_experiment(tmp_path / "missing.json")


def _fast_cfg(**flags):
    return ExperimentConfig("fast", **flags)


@pytest.mark.parametrize("flags, bf16, expected", [
    ({}, True, dict(amp_bf16=True, channels_last=True, cudnn_benchmark=True, non_blocking=False,
                    compile=False, tensor_data_on_device=True)),
    (dict(loader="torchvision"), True,
     dict(amp_bf16=True, channels_last=True, cudnn_benchmark=True, non_blocking=True,
          compile=False, tensor_data_on_device=False)),
    (dict(amp=False, channels_last=False, cudnn_benchmark=False, compile_model=True), True,
     dict(amp_bf16=False, channels_last=False, cudnn_benchmark=False, non_blocking=False,
          compile=True, tensor_data_on_device=True)),
    ({}, False, dict(amp_bf16=False, channels_last=True, cudnn_benchmark=True,
                     non_blocking=False, compile=False, tensor_data_on_device=True)),
])
def test_fast_paths_default_on_for_cuda(monkeypatch, flags, bf16, expected):
    # Decided from the flags and the device alone, so a pretend CUDA device tests it anywhere.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert devices.resolve_fast_paths(_fast_cfg(**flags), torch.device("cuda")) == expected


def test_requesting_bf16_on_a_gpu_without_it_fails_before_training(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Old GPU")
    with pytest.raises(ExperimentConfigError, match="Old GPU does not support"):
        devices.resolve_fast_paths(_fast_cfg(amp=True), torch.device("cuda"))


# -- the configuration behind cnn_experiment ---------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    (dict(pool_every=1.5), "pool_every must be an integer >= 1, got 1.5"),
    (dict(amp="yes"), "amp must be True, False or None (automatic), got 'yes'"),
    (dict(epochs="3"), "epochs must be an integer >= 1, got '3'"),
    (dict(filters_per_layer=64), "filters_per_layer must be a list of positive integers"),
    (dict(lr="fast"), "lr must be a finite number > 0.0, got 'fast'"),
])
def test_settings_of_the_wrong_type_raise_the_type_error_flavour(tmp_path, no_training,
                                                                  override, needle):
    with pytest.raises(ExperimentConfigTypeError) as info:
        cnn_experiment("bad", out_dir=tmp_path, **{**TINY, **override})
    assert isinstance(info.value, TypeError) and isinstance(info.value, ExperimentConfigError)
    assert needle in str(info.value)
    assert _leftovers(tmp_path) == []


def test_numpy_scalars_are_accepted_and_stored_as_plain_numbers(tmp_path):
    run = cnn_experiment("np", out_dir=tmp_path, seed=np.int64(3),
                         **{**TINY, "epochs": np.int32(1), "batches": np.int64(2),
                            "filters_per_layer": np.array([4, 8]), "lr": np.float32(0.002)})
    assert (run.config["epochs"], run.config["batches"], run.config["seed"]) == (1, 2, 3)
    assert run.config["filters_per_layer"] == [4, 8]
    assert run.config["lr"] == pytest.approx(0.002)
    assert run.result.num_epochs == 1


def test_signature_defaults_are_the_configs_defaults():
    fields = {f.name: f for f in config.dataclasses.fields(ExperimentConfig)}
    for name, param in inspect.signature(cnn_experiment).parameters.items():
        if name in ("run_name", "verbose", "skip_complete", "kw"):
            continue
        default = fields[name].default
        expected = None if name in ("filters_per_layer", "hidden_dims") else default
        assert param.default == expected, name  # None there means the config's default list
    assert ExperimentConfig("x").filters_per_layer == (64,)
    assert ExperimentConfig("x", hidden_dims=None).hidden_dims == (1024,)


def test_every_config_field_is_accepted_by_cnn_experiment(tmp_path, no_training):
    settings = dict(ExperimentConfig("all", out_dir=str(tmp_path)).experiment_kwargs(),
                    dataset="digits", verbose=False)
    assert set(settings) - {"verbose"} == set(config.EXPERIMENT_PARAMS)
    with pytest.raises(AssertionError, match="training must not start"):
        cnn_experiment(**settings)


def test_parse_cli_gives_cnn_experiments_keyword_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["experiments.py", "run-exp", "-n", "c", "-K", "8", "16",
                                      "-L", "1", "--model-kw", "batchnorm=true", "-q"])
    args = experiments.parse_cli()
    assert args.subcmd_fn is cnn_experiment
    kwargs = {k: v for k, v in vars(args).items() if k != "subcmd_fn"}
    assert kwargs["filters_per_layer"] == [8, 16] and kwargs["layers_per_block"] == 1
    assert kwargs["batchnorm"] is True and kwargs["verbose"] is False
    assert set(kwargs) == {*config.EXPERIMENT_PARAMS, "batchnorm", "verbose"}
    assert set(kwargs) <= {*inspect.signature(cnn_experiment).parameters,
                           *config.EXPERIMENT_PARAMS, "batchnorm"}


@pytest.mark.parametrize("data_dir", [None, "/data/sets"])
def test_data_dir_is_the_data_root(data_dir):
    import subprocess
    env = child_env()
    env.pop("HW2_DATA_DIR", None)
    if data_dir:
        env["HW2_DATA_DIR"] = data_dir
    proc = subprocess.run([sys.executable, "-c", "import hw2.experiments as e; print(e.DATA_DIR)"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = data_dir or os.path.join(os.path.expanduser("~"), ".pytorch-datasets")
    assert proc.stdout.strip() == expected


def test_names_the_notebook_imports_from_hw2_experiments_still_work():
    assert experiments.expand_channels is expand_channels
    assert experiments.load_experiment is results.load_experiment
    assert experiments.save_experiment is results.save_experiment
    assert experiments.MODEL_TYPES is config.MODEL_TYPES
    assert issubclass(RunBusy, UsageError)  # run-exp reports it in one line, exit 2


def test_a_finished_run_is_extended_with_more_epochs(tmp_path):
    checkpoint = str(tmp_path / "ck")
    settings = dict(TINY, seed=0, checkpoints=checkpoint)
    first = cnn_experiment("x", out_dir=tmp_path / "a", **settings)
    longer = cnn_experiment("x", out_dir=tmp_path / "b", **dict(settings, epochs=4))
    assert first.result.num_epochs == 2
    assert longer.config["resumed_from_epoch"] >= 1  # continued, not refused nor restarted
    assert longer.result.num_epochs == 4
