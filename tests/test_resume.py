"""Exact resume, proven with real processes: a run SIGKILLed six times at different points and
resumed after each kill ends with the FitResult of an uninterrupted run, bit for bit.

The run (``python -m hw2.experiments run-exp --checkpoints ...`` on digits, one thread) uses
every source of randomness the trainer has: a shuffling TensorLoader with augmentation (its own
generator), dropout (the global torch generator) and BatchNorm (running statistics in the
model's buffers), with Adam. The kills land

1. as soon as epoch 1 starts, before any checkpoint exists (the next process starts afresh);
2. as soon as the "last" checkpoint of epoch 1 is on disk;
3. as soon as the best-accuracy file is rewritten (before or while the "last" file follows);
4. in the middle of epoch 5, once its progress bar shows a trained batch;
5. right after an epoch header is printed;
6. in the final epoch, once its progress bar shows a trained batch.

Each kill point is an event the test watches for (a header or a progress bar in the log, a
checkpoint file), never a fixed delay: a delay lands at another point on a faster or a busier
machine (0.3 s is most of an epoch on a fast one).

After each kill the same command runs again; the final process runs to the end. The result
file's FitResult must equal the one of the same command run once without interruption (and
without ``--checkpoints``), every loss and accuracy exactly.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import assert_fit_equal, child_env
from hw2.results import load_experiment

EPOCHS = 8
RUN = ["-m", "hw2.experiments", "run-exp", "-n", "resumed", "-s", "3", "--dataset", "digits",
       "-M", "resnet", "-K", "8", "-L", "1", "-P", "1", "-H", "16", "--model-kw", "dropout=0.2",
       "--model-kw", "batchnorm=true", "--augment", "--epochs", str(EPOCHS), "--batches", "all",
       "--bs-train", "8", "--bs-test", "128", "--lr", "0.01", "--early-stopping", "0"]
RESULT = "resumed_L1_K8.json"
TIMEOUT_S = 240


def _env():
    return child_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _epochs_done(path: Path):
    """The ``epochs_done`` of a checkpoint file (None while there is none)."""
    try:
        return torch.load(path, weights_only=True)["fit_state"]["epochs_done"]
    except FileNotFoundError:
        return None


def _mtime(path: Path):
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _log_text(log: Path) -> str:
    # The child may be half-way through writing a progress bar's block characters: a read can
    # end inside a multi-byte character, which must not fail the test.
    return log.read_text(encoding="utf-8", errors="replace")


def _headers(log: Path):
    return [int(m) for m in re.findall(r"--- EPOCH (\d+)/", _log_text(log))]


def _batches_shown(log: Path, epoch: int) -> int:
    """The most training batches epoch ``epoch``'s progress bar has shown (0 before that)."""
    text = _log_text(log).split(f"--- EPOCH {epoch}/", 1)
    if len(text) < 2:
        return 0
    section = text[1].split("--- EPOCH ", 1)[0]
    counts = re.findall(r"train_batch[^|\r\n]*\|[^|\r\n]*\|\s*(\d+)/\d+", section)
    return max(map(int, counts), default=0)


class _Run:
    """One process of the run, with a log to watch."""

    def __init__(self, tmp_path: Path, out: Path, n: int, checkpoint: Path):
        self.log = tmp_path / f"process{n}.log"
        self.handle = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, *RUN, "-o", str(out), "--checkpoints",
                                      str(checkpoint)], stdout=self.handle,
                                     stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
        self.deadline = time.monotonic() + TIMEOUT_S

    def wait_for(self, condition, what: str) -> None:
        while not condition():
            assert self.proc.poll() is None, f"the run ended before {what}:\n" + \
                _log_text(self.log)[-2000:]
            assert time.monotonic() < self.deadline, f"no {what} within {TIMEOUT_S} s"
            time.sleep(0.005)

    def kill(self) -> int:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.handle.close()
        return self.proc.returncode


@pytest.mark.slow
def test_six_sigkills_then_resume_give_the_uninterrupted_fit_result(tmp_path):
    reference = subprocess.Popen([sys.executable, *RUN, "-q", "-o", str(tmp_path / "reference")],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=_env(), cwd=tmp_path)
    out, checkpoint = tmp_path / "out", tmp_path / "ck" / "run"
    best, last = Path(f"{checkpoint}.pt"), Path(f"{checkpoint}.last.pt")

    def kill_points():
        # Each yields (what to wait for, a condition); the kill follows at once.
        yield "the header of epoch 1", lambda run: 1 in _headers(run.log)
        yield "the last checkpoint of epoch 1", lambda run: (_epochs_done(last) or 0) >= 1
        best_before = _mtime(best)
        yield "a rewrite of the best file", lambda run: _mtime(best) != best_before
        yield "a trained batch of epoch 5", lambda run: _batches_shown(run.log, 5) >= 1
        yield "the header of epoch 6", lambda run: 6 in _headers(run.log)
        yield f"a trained batch of epoch {EPOCHS}", lambda run: _batches_shown(run.log, EPOCHS) >= 1

    kills = []
    for n, (what, condition) in enumerate(kill_points(), 1):
        run = _Run(tmp_path, out, n, checkpoint)
        run.wait_for(lambda: condition(run), what)
        status = run.kill()
        done, headers = _epochs_done(last), _headers(run.log)
        kills.append((n, what, done, headers[-1] if headers else None, _epochs_done(best)))
        print(f"kill {n}: after {what}: exit {status}, epochs done on disk: {done} (best file: "
              f"{kills[-1][4]}), last epoch started: {kills[-1][3]}, its batches shown: "
              f"{_batches_shown(run.log, headers[-1]) if headers else 0}")
        assert status == -signal.SIGKILL, _log_text(run.log)[-2000:]
        assert not (out / RESULT).exists()  # killed before the end

    final = subprocess.run([sys.executable, *RUN, "-q", "-o", str(out), "--checkpoints",
                            str(checkpoint)], capture_output=True, text=True, env=_env(),
                           cwd=tmp_path, timeout=TIMEOUT_S)
    assert final.returncode == 0, final.stderr
    ref_out, _ = reference.communicate(timeout=TIMEOUT_S)
    assert reference.returncode == 0, ref_out

    cfg, fit = load_experiment(out / RESULT)
    _, expected = load_experiment(tmp_path / "reference" / RESULT)
    print(f"resumed_from_epoch of the final process: {cfg['resumed_from_epoch']}; "
          f"test_acc {[round(a, 2) for a in fit.test_acc]}")
    # The kills landed at different points (the state on disk and the epoch under way: kills 2
    # and 3 differ in the best file), the last one in the final epoch (or, on a fast machine,
    # after it: the completed fit removed its last file and the run resumed from the best one,
    # replaying the epochs after it).
    assert len({(k[2], k[4], k[3]) for k in kills}) >= 5
    assert kills[0][2] is None and kills[-1][3] == EPOCHS
    assert cfg["resumed_from_epoch"] == (kills[-1][2] if kills[-1][2] is not None
                                         else _epochs_done(best))
    assert fit.num_epochs == EPOCHS and len(fit.train_loss) == len(expected.train_loss)
    assert_fit_equal(fit, expected)
    assert not last.exists() and best.exists()  # the completed fit removed its last file


# -- grid jobs that submitit requeues ----------------------------------------------------------

def _job(spec: dict) -> str:
    return f"ran {spec['n']}"


def _child_pids(pid: int):
    """The processes whose parent is ``pid``, read from every ``/proc/N/stat`` (the
    ``/proc/PID/task/TID/children`` file needs a kernel built with CONFIG_PROC_CHILDREN)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except (OSError, IndexError):  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, ...
            children.append(int(stat.parent.name))
    return sorted(children)


def test_checkpointable_job_requeues_itself_with_the_same_arguments():
    import pickle

    submitit_helpers = pytest.importorskip("submitit.helpers")
    from hw2.jobs import CheckpointableJob

    job = CheckpointableJob(_job)
    assert job({"n": 3}) == "ran 3"
    again = job.checkpoint({"n": 3})
    assert isinstance(again, submitit_helpers.DelayedSubmission)
    assert again.function is job and again.args == ({"n": 3},) and again.kwargs == {}
    restored = pickle.loads(pickle.dumps(again))  # what submitit writes for the requeued job
    assert restored.function({"n": 4}) == "ran 4"
    assert repr(job) == "CheckpointableJob(test_resume._job)"
    with pytest.raises(TypeError, match="fn must be a callable job function, got str"):
        CheckpointableJob("hw2.grids.run_grid_job")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the job's task in /proc")
def test_a_grid_job_signalled_by_submitit_is_requeued_and_resumes_exactly(tmp_path,
                                                                         monkeypatch):
    """Once the job has written a last checkpoint, its task process gets the signal that
    submitit's local controller (and Slurm, with ``--signal``) sends before a time limit or a
    pre-emption, USR2; the checkpointable job is requeued, resumes from its last checkpoint
    and ends with the FitResult of an uninterrupted run. (Linux: the task is found in /proc.)"""
    submitit = pytest.importorskip("submitit")
    from hw2 import grids
    from hw2.experiments import cnn_experiment
    from hw2.jobs import CheckpointableJob

    settings = dict(seed=5, dataset="digits", filters_per_layer=[16], layers_per_block=2,
                    pool_every=2, hidden_dims=[32], epochs=6, batches=None, bs_train=16,
                    bs_test=128, early_stopping=None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job's process inherits it
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    executor = submitit.LocalExecutor(folder=str(tmp_path / "logs"))
    executor.update_parameters(timeout_min=10)
    job = executor.submit(CheckpointableJob(grids.run_grid_job),
                          dict(settings, run_name="signalled", out_dir=str(tmp_path / "out"),
                               verbose=True))
    last = tmp_path / "out" / "checkpoints" / "signalled_L2_K16.last.pt"
    deadline = time.monotonic() + TIMEOUT_S
    while not last.exists():
        assert not job.done(), "the job ended before its first checkpoint"
        assert time.monotonic() < deadline, f"no {last} within {TIMEOUT_S} s"
        time.sleep(0.02)
    # What the local controller does at a time limit: USR2 to the job's task process.
    controller = job._process.pid  # pylint: disable=protected-access
    tasks = _child_pids(controller)
    assert len(tasks) == 1, tasks
    os.kill(tasks[0], signal.SIGUSR2)
    path = job.result()
    log = Path(job.paths.stdout).read_text() + Path(job.paths.stderr).read_text()
    resumes = re.findall(r"\*\*\* Resuming from \S+last\.pt: (\d+) epoch", log)
    print(f"local job {job.job_id}: {job.state}; signal lines: "
          f"{[line for line in log.splitlines() if 'SIGUSR2' in line]}; resumed after "
          f"epochs {resumes}")
    assert "Calling checkpoint method" in log and len(resumes) == 1, log[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = cnn_experiment("signalled", out_dir=str(tmp_path / "reference"),
                                   verbose=False, **settings)
    finally:
        torch.set_num_threads(threads)
    cfg, fit = load_experiment(path)
    assert 1 <= cfg["resumed_from_epoch"] == int(resumes[0]) < settings["epochs"]
    assert_fit_equal(fit, reference.result)
