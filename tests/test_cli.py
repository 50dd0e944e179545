"""The command line ``python -m hw2.experiments``, driven as a user drives it: a subprocess.

Each subprocess pays Python's and torch's start-up (a few seconds), so the runs themselves are
tiny: scikit-learn's digits, one epoch of two batches, a handful of filters.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import PACKAGE_ROOT as ROOT, TINY_FLAGS, child_env, files_in, no_download_env
from helpers import run_cli as cli
from hw2.cli import USAGE_ERROR, build_parser, main
from hw2.results import load_experiment


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
    proc = cli("run-exp", "-n", "bad", "-o", out, *flags, *args, env=no_download_env(tmp_path / "no-data"))
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
    (["run-exp", "-n", "x", "--early-stopping", "-1"], "invalid epoch count"),
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
    assert build_parser().parse_args(["run-exp", "-n", "x", "--early-stopping", "0"]
                                     ).early_stopping is None


@pytest.mark.slow
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


# -- py-sbatch.sh ------------------------------------------------------------------------------

def _fake_cluster(tmp_path):
    """A fake ``sbatch`` (records its arguments and the job script) and a fake conda."""
    bin_dir, conda_home = tmp_path / "bin", tmp_path / "conda"
    bin_dir.mkdir()
    (conda_home / "etc" / "profile.d").mkdir(parents=True)
    (bin_dir / "sbatch").write_text(
        '#!/bin/bash\nprintf "%s\\n" "$@" > "$FAKE_DIR/sbatch-args"\n'
        'cat > "$FAKE_DIR/job.sh"\necho "Submitted batch job 4242"\n')
    (bin_dir / "sbatch").chmod(0o755)
    (conda_home / "etc" / "profile.d" / "conda.sh").write_text(
        'conda() { echo "conda $*" >> "$FAKE_DIR/conda-calls"; }\n')
    return bin_dir, conda_home


def test_py_sbatch_submits_a_job_that_runs_python_with_the_exact_arguments(tmp_path):
    bin_dir, conda_home = _fake_cluster(tmp_path)
    env = dict(os.environ, FAKE_DIR=str(tmp_path), CONDA_HOME=str(conda_home),
               CONDA_ENV="my env", JOB_NAME="exp1", PARTITION="gpus", TIME_LIMIT="01:00:00",
               LOG_DIR=str(tmp_path / "logs"),
               PATH=os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    env.pop("DRY_RUN", None)
    args = ["-c", "import sys; print(sys.argv[1:])", "two words", "it's", "$HOME", "*"]
    proc = subprocess.run([str(ROOT / "py-sbatch.sh"), *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Submitted batch job 4242" in proc.stdout
    sbatch_args = (tmp_path / "sbatch-args").read_text().split("\n")
    for flag, value in (("--cpus-per-task", "2"), ("--gres", "gpu:1"), ("--job-name", "exp1"),
                        ("--partition", "gpus"), ("--time", "01:00:00"), ("--nodes", "1")):
        assert sbatch_args[sbatch_args.index(flag) + 1] == value
    assert (tmp_path / "logs").is_dir()  # Slurm does not create the log folder itself

    # Run the job script the way Slurm would, with `python` being this interpreter.
    py_dir = tmp_path / "py"
    py_dir.mkdir()
    (py_dir / "python").symlink_to(sys.executable)
    job_env = dict(env, SLURM_JOB_ID="4242",
                   PATH=os.pathsep.join([str(py_dir), os.environ["PATH"]]))
    job = subprocess.run(["bash", str(tmp_path / "job.sh")], capture_output=True, text=True,
                         env=job_env, cwd="/", timeout=60)
    assert job.returncode == 0, job.stderr
    assert "['two words', \"it's\", '$HOME', '*']" in job.stdout
    assert (tmp_path / "conda-calls").read_text() == "conda activate my env\n"
    assert "job exp1 (4242) done" in job.stdout


def test_grid_commands_accept_setting_overrides(capsys):
    assert main(["grid-show", "exp1_3", "--dataset", "digits", "--epochs", "3",
                 "--batches", "all", "--seed", "1", "--bs-train", "32",
                 "--early-stopping", "2"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python")]
    assert len(commands) == 4
    for flag in ("--epochs 3", "--batches all", "--seed 1", "--bs-train 32",
                 "--early-stopping 2", "--dataset digits"):
        assert all(flag in c for c in commands), flag
    assert main(["grid-show", "exp1_3", "--quick"]) == 0
    assert "--epochs 2 --early-stopping 0" in capsys.readouterr().out


def test_help_imports_neither_matplotlib_nor_sklearn():
    code = ("import runpy, sys\n"
            "sys.argv = ['hw2.experiments', '--help']\n"
            "try:\n    runpy.run_module('hw2.experiments', run_name='__main__')\n"
            "except SystemExit as e:\n    status = e.code\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'sklearn'))\n"
            "print('STATUS', status, 'HEAVY', heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=child_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: python -m hw2.experiments" in proc.stdout
    assert "STATUS 0 HEAVY []" in proc.stdout


@pytest.mark.parametrize("command", ["run-exp", "grid-run", "grid-submit", "grid-show",
                                     "summarize"])
def test_every_sub_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m hw2.experiments {command}")
    assert "==SUPPRESS==" not in out


def test_grid_override_flags_not_given_leave_the_grid_settings(capsys):
    args = build_parser().parse_args(["grid-show", "exp1_1"])
    assert not hasattr(args, "epochs") and not hasattr(args, "batches")
    args = build_parser().parse_args(["grid-show", "exp1_1", "--batches", "all",
                                      "--early-stopping", "0", "--augment", "--no-amp"])
    assert (args.batches, args.early_stopping, args.augment, args.amp) == (None, None, True, False)


@pytest.mark.parametrize("args, hint", [
    (["run-exp", "-n", "x", "--checkpoints", "CK"], "resume from the checkpoint CK.pt"),
    (["run-exp", "-n", "x"], "no --checkpoints was given, so running it again starts over"),
    (["grid-run", "exp1_3", "--quick"], "complete runs are skipped and the interrupted run "
                                        "resumes from its checkpoint"),
])
def test_ctrl_c_prints_one_resume_line_and_exits_130(tmp_path, capsys, monkeypatch, args, hint):
    from hw2 import training

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Trainer, "fit", interrupted)  # Ctrl-C while the run is locked
    argv = [*args, "-o", str(tmp_path / "r"), "--dataset", "digits"]
    if "--checkpoints" in argv:
        argv[argv.index("CK")] = str(tmp_path / "CK")
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interrupted; " in err and hint.split(" CK")[0] in err
    assert not list((tmp_path / "r").glob(".*.lock"))  # the run's lock went with it


def test_summarize_into_a_closed_pipe_exits_quietly(tmp_path):
    one = {"config": {"run_name": "p", "filters_per_layer": [4], "layers_per_block": 1},
           "results": dict(num_epochs=1, train_loss=[2.0], train_acc=[10.0], test_loss=[2.0],
                           test_acc=[11.0])}
    for i in range(1500):  # a table larger than a pipe's buffer
        (tmp_path / f"p{i}.json").write_text(json.dumps(one))
    proc = subprocess.Popen([sys.executable, "-m", "hw2.experiments", "summarize", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    assert proc.stdout.readline().split()[0] == b"run"
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_run_exp_refuses_a_folder_as_checkpoint_and_a_run_another_process_holds(tmp_path, capsys):
    from hw2.results import RunLock
    (tmp_path / "ck.pt").mkdir()
    assert main(["run-exp", "-n", "x", "-o", str(tmp_path / "r"), "--checkpoints",
                 str(tmp_path / "ck")]) == USAGE_ERROR
    assert f"checkpoint file '{tmp_path / 'ck.pt'}' is a folder" in capsys.readouterr().err
    assert files_in(tmp_path) == ["ck.pt"]
    (tmp_path / "r").mkdir()
    lock = RunLock(tmp_path / "r" / "x_L2_K64.json")
    assert lock.acquire()
    try:
        assert main(["run-exp", "-n", "x", "-o", str(tmp_path / "r")]) == USAGE_ERROR
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "another process" in err and "is computing this run now" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, needle", [
    (["--bs-train", "0"], "bs_train must be an integer >= 1, got 0"),
    (["--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
    (["--seed", "-5"], "seed must be an integer >= 0 and <= 9223372036854775807 or None, got -5"),
    (["--timeout-min", "-5"], "timeout_min must be an integer >= 1, got -5"),
    (["--gpus", "-1"], "gpus must be an integer >= 0, got -1"),
])
def test_grid_submit_refuses_bad_settings_before_submitting(tmp_path, capsys, monkeypatch,
                                                            flags, needle):
    import hw2.grids

    def no_executor(*args, **kwargs):
        raise AssertionError("nothing may be submitted")

    monkeypatch.setattr(hw2.grids, "make_executor", no_executor)
    status = main(["grid-submit", "exp1_3", "--quick", "-o", str(tmp_path / "res"),
                   "--log-dir", str(tmp_path / "logs"), "--cluster", "local", *flags])
    err = capsys.readouterr().err
    assert status == USAGE_ERROR and needle in err and len(err.strip().splitlines()) == 1
    assert files_in(tmp_path) == []


def test_a_full_disk_at_the_result_write_is_one_line_exit_1_naming_the_file(tmp_path, capsys,
                                                                            monkeypatch):
    import errno

    import hw2.results

    def disk_full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hw2.results, "atomic_write_text", disk_full)
    out = tmp_path / "r"
    status = main(["run-exp", "-n", "full", "-o", str(out), "--checkpoints", str(tmp_path / "ck"),
                   *TINY_FLAGS, "-K", "4", "-L", "1", "-P", "1"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err == (f"python -m hw2.experiments run-exp: error: cannot write result file "
                   f"{out / 'full_L1_K4.json'}: No space left on device; the run's checkpoint "
                   f"(if it has one) is kept, so the same command again resumes instead of "
                   f"starting over")
    assert (tmp_path / "ck.pt").is_file()  # the best checkpoint survives the failed write


@pytest.mark.parametrize("spelling, value", [("False", False), ("false", False),
                                             ("True", True), ("true", True)])
def test_model_kw_booleans_in_python_and_json_spelling_reach_the_model(tmp_path, capsys,
                                                                       spelling, value):
    from hw2.cnn import ResNet

    status = main(["run-exp", "-n", "bn", "-M", "resnet", "-K", "4", "-L", "1", "-P", "1",
                   "-s", "0", "-o", str(tmp_path), "--model-kw", f"batchnorm={spelling}",
                   *TINY_FLAGS])
    assert status == 0, capsys.readouterr().err
    cfg, _ = load_experiment(tmp_path / "bn_L1_K4.json")
    assert cfg["kw"] == {"batchnorm": value}
    # The oracle: the same network built directly with the intended value.
    direct = ResNet((1, 8, 8), 10, channels=[4], pool_every=1, hidden_dims=[8], batchnorm=value)
    assert cfg["num_params"] == sum(p.numel() for p in direct.parameters())


@pytest.mark.parametrize("spelling", ["FALSE", "no", "0x"])
def test_model_kw_values_of_no_accepted_form_are_refused_in_one_line(tmp_path, capsys, spelling):
    status = main(["run-exp", "-n", "bn", "-K", "4", "-L", "1", "-P", "1", "-o", str(tmp_path),
                   "--model-kw", f"batchnorm={spelling}", *TINY_FLAGS])
    err = capsys.readouterr().err
    assert status == USAGE_ERROR
    assert "batchnorm" in err and "True/true, False/false" in err
    assert files_in(tmp_path) == []
