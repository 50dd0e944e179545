"""Tests for hw2.config: ExperimentConfig as the single source of the run parameters."""
import argparse
import dataclasses

import numpy as np
import pytest

from hw2 import config, validation
from hw2.cli import build_parser
from hw2.config import EXPERIMENT_PARAMS, GRID_OVERRIDES, ExperimentConfig
from hw2.validation import ExperimentConfigError, ExperimentConfigTypeError

FIELDS = [f.name for f in dataclasses.fields(ExperimentConfig)]


def test_every_field_has_a_flag_a_check_and_help():
    flags = set()
    for f in dataclasses.fields(ExperimentConfig):
        option = f.metadata["option"]
        assert option.flags[0].startswith("--") and option.help and callable(option.check)
        assert not flags & set(option.flags), f.name  # no flag is used twice
        flags |= set(option.flags)
    assert EXPERIMENT_PARAMS == tuple(n for n in FIELDS if n != "kw")
    course = {"run_name", "out_dir", "seed", "device", "bs_train", "bs_test", "batches",
              "epochs", "early_stopping", "checkpoints", "lr", "reg", "filters_per_layer",
              "layers_per_block", "pool_every", "hidden_dims", "model_type"}
    assert course <= set(EXPERIMENT_PARAMS)


def test_run_exp_parser_has_exactly_the_fields_and_their_defaults():
    args = build_parser().parse_args(["run-exp", "-n", "x"])
    assert set(vars(args)) == {*FIELDS, "quiet", "command", "handler"}
    default = ExperimentConfig("x")
    assert ExperimentConfig.from_args(args) == default
    assert default.filters_per_layer == (64,) and default.hidden_dims == (1024,)


def test_the_config_is_frozen_and_normalised():
    cfg = ExperimentConfig("n", filters_per_layer=[np.int64(8)], lr=np.float32(0.5), seed=np.int64(2))
    assert cfg.filters_per_layer == (8,) and type(cfg.filters_per_layer[0]) is int
    assert type(cfg.lr) is float and type(cfg.seed) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    assert cfg.to_dict()["filters_per_layer"] == [8]


@pytest.mark.parametrize("changes, exc, needle", [
    (dict(epochs=0), ExperimentConfigError, "epochs must be an integer >= 1, got 0"),
    (dict(epochs=1.0), ExperimentConfigTypeError, "epochs must be an integer >= 1, got 1.0"),
    (dict(batches=-2), ExperimentConfigError, "batches must be an integer >= 1 or None, got -2"),
    (dict(reg=-1e-3), ExperimentConfigError, "reg must be a finite number >= 0.0"),
    (dict(model_type="mlp"), ExperimentConfigError, "model_type must be one of cnn, resnet, ycn"),
    (dict(augment=1), ExperimentConfigTypeError, "augment must be True or False, got 1"),
    (dict(device="tpu"), ExperimentConfigError, "device must be a torch.device"),
    (dict(device="meta"), ExperimentConfigError, "device must be 'cpu' or a CUDA device"),
    (dict(loader="torchvision", augment=True), ExperimentConfigError, "augment=True needs"),
    (dict(kw={"lr": 1}), ExperimentConfigError, "'lr' is an experiment setting"),
    (dict(kw=[("a", 1)]), ExperimentConfigTypeError, "kw must be a dict"),
    (dict(checkpoints=""), ExperimentConfigError, "checkpoints must be a file name"),
    (dict(out_dir=3), ExperimentConfigTypeError, "out_dir must be a folder path, got int"),
    (dict(seed="1"), ExperimentConfigTypeError,
     "seed must be an integer >= 0 and <= 9223372036854775807 or None, got '1'"),
    (dict(bs_test=0), ExperimentConfigError, "bs_test must be an integer >= 1 or None, got 0"),
    (dict(kw=3), ExperimentConfigTypeError,
     "kw must be a dict of keyword arguments or None, got 3"),
])
def test_bad_settings_name_the_field(changes, exc, needle):
    with pytest.raises(exc) as info:
        ExperimentConfig("x", **changes)
    assert type(info.value) is exc and needle in str(info.value)


def test_from_kwargs_splits_fields_and_model_arguments():
    cfg = ExperimentConfig.from_kwargs(dict(run_name="k", lr=0.01, batchnorm=True,
                                            kw={"dropout": 0.1}))
    assert cfg.lr == 0.01 and cfg.kw == {"dropout": 0.1, "batchnorm": True}
    again = ExperimentConfig.from_kwargs(cfg.experiment_kwargs())
    assert again == cfg


@pytest.mark.parametrize("changes", [
    {}, dict(batches=None, early_stopping=None, hidden_dims=()),
    dict(seed=0, device="cpu", bs_test=7, checkpoints="ck/run", dataset="digits",
         loader="torchvision", amp=False, channels_last=True, cudnn_benchmark=False,
         non_blocking=True, compile_model=True, kw={"batchnorm": True, "conv_params":
                                                    {"kernel_size": 5, "padding": 2}}),
    dict(augment=True, filters_per_layer=(32, 64, 128), layers_per_block=3, pool_every=3,
         model_type="ycn", lr=3e-4, reg=0.0),
])
def test_to_argv_parses_back_to_the_same_config(changes):
    cfg = ExperimentConfig("rt", **changes)
    args = build_parser().parse_args(["run-exp", *cfg.to_argv()])
    assert ExperimentConfig.from_args(args) == cfg


def test_grid_overrides_are_suppressed_when_not_given():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, GRID_OVERRIDES, overrides=True)
    assert vars(parser.parse_args([])) == {}
    given = parser.parse_args(["--epochs", "3", "--model-kw", "dropout=0.2", "--no-augment"])
    assert vars(given) == {"epochs": 3, "kw": [("dropout", 0.2)], "augment": False}
    assert not {"run_name", "filters_per_layer", "layers_per_block", "pool_every",
                "hidden_dims", "model_type", "out_dir", "checkpoints"} & set(GRID_OVERRIDES)


def test_resolved_fills_seed_bs_test_and_dataset(monkeypatch):
    monkeypatch.setenv("HW2_DATASET", "digits")
    cfg = ExperimentConfig("r", bs_train=10).resolved()
    assert cfg.dataset == "digits" and cfg.bs_test == 2 and 0 <= cfg.seed < 2 ** 31
    assert ExperimentConfig("r", seed=5, bs_test=3, dataset="mnist").resolved().seed == 5
    monkeypatch.setenv("HW2_DATASET", "imagenet")
    with pytest.raises(ExperimentConfigError, match="dataset: HW2_DATASET"):
        ExperimentConfig("r").resolved()


def test_identity_leaves_out_where_and_how_fast_a_run_runs():
    a = ExperimentConfig("a", out_dir="x", device="cpu", checkpoints="c", loader="tensor")
    b = a.replace(run_name="b", out_dir="y", device=None, checkpoints=None,
                  loader="torchvision", cudnn_benchmark=True, compile_model=True)
    assert a.identity() == b.identity()
    assert a.identity() != a.replace(seed=1).identity()
    assert a.identity() != a.replace(lr=0.5).identity()
    assert {"seed", "lr", "filters_per_layer", "kw"} <= set(a.identity())
    # A run continued for more epochs is the same run (it resumes from its checkpoint).
    assert a.identity() == a.replace(epochs=a.epochs + 5).identity()


def test_replace_refuses_a_name_that_is_not_a_setting():
    with pytest.raises(ExperimentConfigTypeError, match="unknown setting.s. batchnorm, epoch: "
                                                        "the settings are run_name, "):
        ExperimentConfig("a").replace(epoch=3, batchnorm=False)
    assert ExperimentConfig("a").replace(kw={"batchnorm": False}).kw == {"batchnorm": False}


def test_resolved_checks_nothing_again(monkeypatch):
    cfg = ExperimentConfig("r", bs_train=10, seed=None, dataset="digits")
    monkeypatch.setattr(ExperimentConfig, "__post_init__", lambda self: pytest.fail("checked"))
    filled = cfg.resolved()
    assert (filled.bs_test, filled.dataset) == (2, "digits") and 0 <= filled.seed < 2 ** 31
    assert cfg.seed is None  # the original is unchanged


def test_channels_and_file_names():
    cfg = ExperimentConfig("exp1_3", filters_per_layer=(64, 128, 256), layers_per_block=2,
                           out_dir="res")
    assert cfg.channels == [64, 64, 128, 128, 256, 256]
    assert cfg.filename == "exp1_3_L2_K64-128-256.json"
    assert cfg.result_path == "res/exp1_3_L2_K64-128-256.json"


@pytest.mark.parametrize("parse, text, expected", [
    (validation.parse_batches, "all", None), (validation.parse_batches, "0", None),
    (validation.parse_batches, "5", 5), (validation.parse_patience, "0", None),
    (validation.parse_patience, "4", 4), (validation.parse_model_kw, "dropout=0.5", ("dropout", 0.5)),
    (validation.parse_model_kw, "pooling_type=avg", ("pooling_type", "avg")),
])
def test_value_parsers(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("parse, text", [
    (validation.parse_batches, "-1"), (validation.parse_patience, "-2"), (validation.parse_model_kw, "x"),
    (validation.parse_model_kw, "1x=2"),
])
def test_value_parsers_refuse(parse, text):
    with pytest.raises(ValueError):
        parse(text)


@pytest.mark.parametrize("text, expected", [
    ("batchnorm=False", ("batchnorm", False)), ("batchnorm=false", ("batchnorm", False)),
    ("batchnorm=True", ("batchnorm", True)), ("bias=None", ("bias", None)),
    ("bias=null", ("bias", None)), ("n=3", ("n", 3)), ("p=0.25", ("p", 0.25)),
    ("sizes=[3, 5]", ("sizes", [3, 5])), ("conv_params={\"padding\": 1}", ("conv_params", {"padding": 1})),
    ("pooling_type=\"max\"", ("pooling_type", "max")), ("activation_type=lrelu", ("activation_type", "lrelu")),
])
def test_model_kw_values_are_parsed_by_their_spelling(text, expected):
    assert validation.parse_model_kw(text) == expected


@pytest.mark.parametrize("value", ["yes", "off", "TRUE", "1,2", "", "[1,", "NaN", "Infinity", "nan",
                                   "[1, NaN]", "two words"])
def test_model_kw_refuses_other_values_naming_the_accepted_forms(value):
    with pytest.raises(validation.ModelArgumentError) as info:
        validation.parse_model_kw(f"batchnorm={value}")
    assert isinstance(info.value, ValueError)
    assert validation.MODEL_KW_FORMS in str(info.value) and repr(value) in str(info.value)


def test_model_kw_false_round_trips_through_the_command_line():
    cfg = config.ExperimentConfig(run_name="r", kw={"batchnorm": False, "activation_type": "lrelu"})
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.ExperimentConfig.from_args(parser.parse_args(cfg.to_argv())) == cfg


@pytest.mark.parametrize("field, value, ok", [
    ("seed", 0, True), ("seed", config.SEED_MAX, True), ("seed", config.SEED_MAX + 1, False),
    ("hidden_dims", [config.SIZE_MAX], True), ("hidden_dims", [config.SIZE_MAX + 1], False),
    ("filters_per_layer", [8, config.SIZE_MAX + 1], False),
])
def test_seeds_and_sizes_are_range_checked(field, value, ok):
    if ok:
        assert config.ExperimentConfig(run_name="r", **{field: value})
    else:
        with pytest.raises(ExperimentConfigError, match=r"<= (9223372036854775807|1048576)"):
            config.ExperimentConfig(run_name="r", **{field: value})


def test_the_longest_run_name_leaves_room_for_the_checkpoints_temporary_name():
    # The longest file of a run: the temporary file of {stem}.last.pt, ".{name}.XXXXXXXX.tmp".
    longest = config.NAME_MAX - len("..12345678.tmp") - len("_L2_K64.last.pt")
    cfg = config.ExperimentConfig(run_name="r" * longest)
    assert len("." + cfg.filename[:-5] + ".last.pt" + ".12345678.tmp") == config.NAME_MAX
    with pytest.raises(ExperimentConfigError, match="run_name is too long"):
        config.ExperimentConfig(run_name="r" * (longest + 1))
