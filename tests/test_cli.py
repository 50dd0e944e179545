"""The command line ``python -m hw2.experiments``, driven as a user drives it: a subprocess.

Each subprocess pays Python's and torch's start-up (a few seconds), so the runs themselves are
tiny: scikit-learn's digits, one epoch of two batches, a handful of filters.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw2.experiments import USAGE_ERROR, build_parser, load_experiment, main

ROOT = Path(__file__).resolve().parent.parent
TINY_FLAGS = ["--dataset", "digits", "--batches", "2", "--epochs", "1", "--bs-train", "16",
              "--bs-test", "32", "-H", "8", "-q"]


def cli(*args, env=None, cwd=None):
    """Run ``python -m hw2.experiments ARGS`` and return the completed process."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", **(env or {}))
    return subprocess.run([sys.executable, "-m", "hw2.experiments", *map(str, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd or ROOT,
                          timeout=300)


def files_in(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_run_exp_writes_the_result_file_with_the_flags_values(tmp_path):
    proc = cli("run-exp", "-n", "cli", "-K", 4, 8, "-L", 1, "-P", 1, "-M", "resnet", "-s", 7,
               "--lr", 0.002, "--reg", 0, "-o", tmp_path, *TINY_FLAGS)
    assert proc.returncode == 0, proc.stderr
    assert files_in(tmp_path) == ["cli_L1_K4-8.json"]
    cfg, fit = load_experiment(tmp_path / "cli_L1_K4-8.json")
    expected = dict(run_name="cli", filters_per_layer=[4, 8], layers_per_block=1, pool_every=1,
                    hidden_dims=[8], model_type="resnet", seed=7, lr=0.002, reg=0.0,
                    bs_train=16, bs_test=32, batches=2, epochs=1, dataset="digits",
                    loader="tensor", out_dir=str(tmp_path))
    assert {k: cfg[k] for k in expected} == expected
    assert fit.num_epochs == 1
    assert "cli_L1_K4-8.json: 1 epoch(s), best test accuracy" in proc.stdout


def test_dataset_defaults_to_the_environment_variable(tmp_path):
    proc = cli("run-exp", "-n", "env", "-K", 4, "-L", 1, "-P", 1, "-o", tmp_path,
               *[f for f in TINY_FLAGS if f not in ("--dataset", "digits")],
               env={"HW2_DATASET": "digits"})
    assert proc.returncode == 0, proc.stderr
    cfg, _ = load_experiment(tmp_path / "env_L1_K4.json")
    assert cfg["dataset"] == "digits"


def _no_download_env(tmp_path):
    """An empty data folder and a proxy on a closed port: any download fails at once."""
    env = {"HW2_DATA_DIR": str(tmp_path / "no-data"), "no_proxy": "", "NO_PROXY": ""}
    env.update({v: "http://127.0.0.1:9" for v in ("http_proxy", "https_proxy", "HTTP_PROXY",
                                                   "HTTPS_PROXY")})
    return env


@pytest.mark.parametrize("case, args, needle", [
    ("malformed flag", ["-K", "a"], "invalid int value"),
    ("unknown model type", ["-K", "4", "-M", "vgg"], "invalid choice"),
    ("impossible architecture", ["-K", "4", "-L", "5", "-P", "1"], "shrinks the feature maps"),
    ("real data missing offline", ["-K", "4", "-L", "1", "-P", "1", "--dataset", "cifar10"],
     "HW2_DATA_DIR"),
])
def test_user_errors_exit_2_with_one_paragraph_and_no_file(tmp_path, case, args, needle):
    out = tmp_path / "results"
    flags = [f for f in TINY_FLAGS if "--dataset" not in args or f not in ("--dataset", "digits")]
    proc = cli("run-exp", "-n", "bad", "-o", out, *flags, *args, env=_no_download_env(tmp_path))
    assert proc.returncode == USAGE_ERROR, (case, proc.stderr)
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "\n\n" not in proc.stderr.strip()  # one paragraph
    assert files_in(out) == []


# In-process checks of the same promise for the remaining kinds of mistakes (cheaper than a
# subprocess each; main() is exactly what the module's __main__ runs).
@pytest.mark.parametrize("args, needle", [
    (["run-exp"], "the following arguments are required: --run-name/-n"),
    (["run-exp", "-n", "x", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["run-exp", "-n", "x", "--lr", "-1"], "lr must be a finite number > 0.0"),
    (["run-exp", "-n", "x", "--batches", "-3"], "invalid batch count"),
    (["run-exp", "-n", "x", "--dataset", "imagenet"], "invalid choice"),
    (["run-exp", "-n", "x", "--device", "cuda:9"], "cuda"),
    (["run-exp", "-n", "x", "--model-kw", "dropout"], "KEY=VALUE"),
    (["run-exp", "-n", "x", "-M", "resnet", "--model-kw", "bottleneck=true", "-K", "4",
      "-L", "1"], "bottleneck=True but no group"),
    (["grid-run", "exp9"], "unknown grid name"),
    (["summarize", "/no/such/folder"], "does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_main_returns_2_for_user_errors(tmp_path, capsys, args, needle):
    status = main([*args, "-o", str(tmp_path / "r")] if args[0] == "run-exp" else args)
    err = capsys.readouterr().err
    assert status == USAGE_ERROR
    assert needle in err and "Traceback" not in err
    assert files_in(tmp_path) == []


SEED_FLAGS = [
    ("-n", "--run-name", "x"), ("-K", "--filters-per-layer", ["32", "64"]),
    ("-L", "--layers-per-block", "3"), ("-P", "--pool-every", "4"),
    ("-H", "--hidden-dims", ["100", "50"]), ("-M", "--model-type", "resnet"),
    ("-s", "--seed", "5"), ("-d", "--device", "cpu"), ("-o", "--out-dir", "out"),
]


def test_short_and_long_flags_are_the_seeds_and_agree():
    def argv(use_short):
        out = ["run-exp"]
        for short, long, value in SEED_FLAGS:
            out += [short if use_short else long, *(value if isinstance(value, list) else [value])]
        return out + ["--bs-train", "50", "--bs-test", "12", "--batches", "10", "--epochs", "7",
                      "--early-stopping", "5", "--checkpoints", "ck", "--lr", "0.01",
                      "--reg", "0.002"]

    parser = build_parser()
    short, long = parser.parse_args(argv(True)), parser.parse_args(argv(False))
    assert vars(short).keys() == vars(long).keys()
    assert {k: v for k, v in vars(short).items() if k != "handler"} == \
           {k: v for k, v in vars(long).items() if k != "handler"}
    assert (short.run_name, short.filters_per_layer, short.layers_per_block, short.pool_every,
            short.hidden_dims, short.model_type, short.seed, short.device, short.out_dir) == \
           ("x", [32, 64], 3, 4, [100, 50], "resnet", 5, "cpu", "out")
    assert (short.bs_train, short.bs_test, short.batches, short.epochs, short.early_stopping,
            short.checkpoints, short.lr, short.reg) == (50, 12, 10, 7, 5, "ck", 0.01, 0.002)


def test_defaults_match_cnn_experiment():
    args = build_parser().parse_args(["run-exp", "-n", "x"])
    assert (args.out_dir, args.seed, args.device, args.bs_train, args.bs_test, args.batches,
            args.epochs, args.early_stopping, args.checkpoints, args.lr, args.reg,
            args.filters_per_layer, args.layers_per_block, args.pool_every, args.hidden_dims,
            args.model_type, args.dataset, args.loader) == \
           ("./results", None, None, 128, None, 100, 100, 3, None, 1e-3, 1e-3, [64], 2, 2,
            [1024], "cnn", None, "tensor")
    assert (args.amp, args.channels_last, args.cudnn_benchmark, args.non_blocking,
            args.compile_model) == (None, None, None, None, False)
    assert build_parser().parse_args(["run-exp", "-n", "x", "--batches", "all"]).batches is None
    assert build_parser().parse_args(["run-exp", "-n", "x", "--no-amp"]).amp is False


def test_checkpoints_flag_resumes_a_finished_run_without_training_again(tmp_path):
    common = ["run-exp", "-n", "ck", "-K", 4, "-L", 1, "-P", 1, "-s", 0, "-o", tmp_path,
              "--checkpoints", tmp_path / "ck", *TINY_FLAGS]
    first = cli(*common)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "ck.pt").is_file()
    second = cli(*[a for a in common if a != "-q"])
    assert second.returncode == 0, second.stderr
    assert "Resuming from" in second.stdout
    assert "--- EPOCH" not in second.stdout  # the one epoch was already done
    cfg, fit = load_experiment(tmp_path / "ck_L1_K4.json")
    assert cfg["resumed_from_epoch"] == 1 and fit.num_epochs == 1


def test_grid_show_and_summarize_commands(tmp_path, capsys):
    assert main(["grid-show", "exp1_1", "-o", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# exp1_1")
    commands = [line for line in lines if line.startswith("python -m hw2.experiments run-exp")]
    assert len(commands) == 8 and "-n exp1_1 -K 32 -L 2 -P 1" in commands[0]

    tiny = json.dumps({"config": {"run_name": "exp1_1", "filters_per_layer": [32],
                                  "layers_per_block": 2, "model_type": "cnn",
                                  "wall_time_s": 3.0, "dataset": "digits"},
                       "results": {"num_epochs": 1, "train_loss": [1.0], "train_acc": [50.0],
                                   "test_loss": [1.0], "test_acc": [42.0]}})
    (tmp_path / "exp1_1_L2_K32.json").write_text(tiny)
    proc = cli("summarize", tmp_path, "--plots", tmp_path / "png")
    assert proc.returncode == 0, proc.stderr
    assert "exp1_1_L2_K32" in proc.stdout and "42.0%" in proc.stdout
    assert (tmp_path / "png" / "exp1_1.png").is_file()

    capsys.readouterr()
    assert main(["grid-show", "exp1_1", "-o", str(tmp_path)]) == 0
    assert "# done: python -m hw2.experiments run-exp -n exp1_1 -K 32 -L 2" in capsys.readouterr().out
