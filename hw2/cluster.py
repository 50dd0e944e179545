"""Job arrays on Slurm (or as local processes) through submitit.

:class:`ClusterSettings` holds what a job asks for (executor, partition, time limit, GPUs,
CPU cores, parallelism, conda environment), checked before anything is submitted;
:func:`make_executor` turns it into a configured ``submitit.AutoExecutor``;
:func:`submit_array` submits a job array and turns the scheduler's refusal (an unknown
partition, more GPUs than a node has) into one :class:`~hw2.validation.UsageError`, leaving no
log folder behind; :func:`wait_for_jobs` waits for the jobs without needing accounting
(``squeue``/``scontrol`` instead of ``sacct``), so a cancelled job ends the wait, and reports
each failure in one line naming its log. This module knows nothing about grids:
:func:`hw2.grids.submit_grid` hands it the jobs.

submitit's pitfalls are handled here: ``AutoExecutor`` picks Slurm only when ``srun`` is on the
PATH, the local executor's default time limit is 2 minutes, and it sets
``CUDA_VISIBLE_DEVICES`` from ``gpus_per_node`` (0 would hide every GPU), so both are set.
"""
import contextlib
import dataclasses
import io
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence


from hw2.validation import (
    UsageError, check_choice, check_int, check_optional, check_text, config_error,
)

__all__ = ["CLUSTERS", "ClusterSettings", "make_executor", "submit_array", "wait_for_jobs",
           "failure_line"]

#: Slurm job states after which a job does nothing more (REQUEUED/PENDING/RUNNING go on).
SLURM_ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
               "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT")

#: Executors submitit offers (None: Slurm when ``srun`` is on the PATH, else local).
CLUSTERS = ("slurm", "local", "debug")


def _setting(default, *flags: str, help: str, check, parse=None, choices=None):
    """A field of :class:`ClusterSettings`: its default, flags, help text and check."""
    return dataclasses.field(default=default, metadata=dict(
        flags=flags, help=help, check=check, parse=parse, choices=choices))


def _path_text(name, value) -> str:
    return check_text(name, os.fspath(value) if isinstance(value, os.PathLike) else value)


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What each job of an array asks for, declared once: each field carries its default,
    ``grid-submit`` flag, help text and check (:meth:`add_arguments`, :meth:`from_args`).

    :raises ExperimentConfigError: A bad value (its ``TypeError`` flavour for a wrong type).
    """

    cluster: Optional[str] = _setting(
        None, "--cluster", choices=CLUSTERS, check=lambda n, v: check_optional(
            check_choice, n, v, CLUSTERS),
        help="force an executor (default: Slurm when srun is on the PATH, else local)")
    log_dir: str = _setting("submitit-logs", "--log-dir", check=_path_text,
                            help="submitit's folder for job scripts, pickles and logs")
    partition: Optional[str] = _setting(
        None, "--partition", "-p", check=lambda n, v: check_optional(check_text, n, v),
        help="Slurm partition (default: the cluster's)")
    timeout_min: int = _setting(240, "--timeout-min", parse=int,
                                check=lambda n, v: check_int(n, v, 1),
                                help="time limit of each job, minutes")
    gpus: int = _setting(1, "--gpus", parse=int, check=lambda n, v: check_int(n, v, 0),
                         help="GPUs per job")
    cpus: int = _setting(2, "--cpus", parse=int, check=lambda n, v: check_int(n, v, 1),
                         help="CPU cores per job")
    array_parallelism: Optional[int] = _setting(
        None, "--array-parallelism", parse=int,
        check=lambda n, v: check_optional(check_int, n, v, 1),
        help="at most this many jobs at once on Slurm (default: all)")
    conda_env: Optional[str] = _setting(
        None, "--conda-env", check=lambda n, v: check_optional(check_text, n, v),
        help="conda environment to activate in each Slurm job")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            try:
                object.__setattr__(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))
            except (TypeError, ValueError) as err:
                raise config_error(err) from None

    @classmethod
    def add_arguments(cls, parser, **defaults) -> None:
        """Add one flag per field to an argparse parser (or group), defaults from the fields;
        ``defaults`` replaces some for this parser (``grade-all`` asks for ``gpus=0``)."""
        for f in dataclasses.fields(cls):
            meta = f.metadata
            value = defaults.get(f.name, f.default)
            default = f"; default: {value}" if value is not None else ""
            options = {k: meta[k] for k in ("choices",) if meta[k] is not None}
            if meta["parse"] is not None:
                options["type"] = meta["parse"]
            parser.add_argument(*meta["flags"], dest=f.name, default=value,
                                help=f"{meta['help']}{default}", **options)

    @classmethod
    def from_args(cls, args) -> "ClusterSettings":
        """The settings of arguments parsed with :meth:`add_arguments`."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def __str__(self) -> str:
        """``cluster=auto, log_dir=submitit-logs, partition=None, ...``: every field."""
        values = dict(dataclasses.asdict(self), cluster=self.cluster or "auto")
        return ", ".join(f"{name}={value}" for name, value in values.items())


def make_executor(settings: ClusterSettings, n_jobs: int, name: str = "hw2-grid"):
    """A submitit executor for ``n_jobs`` jobs with ``settings``.

    :raises UsageError: submitit is not installed, or refuses the executor kind.
    """
    try:
        import submitit
    except ImportError:
        raise UsageError("grid-submit needs submitit: pip install 'hw2[slurm]' "
                         "(or pip install submitit)") from None
    try:
        executor = submitit.AutoExecutor(folder=settings.log_dir, cluster=settings.cluster)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"cannot create a submitit executor (cluster={settings.cluster!r}): "
                         f"{err}") from None
    params = dict(name=name, timeout_min=settings.timeout_min, cpus_per_task=settings.cpus)
    if executor.cluster == "slurm":
        params.update(gpus_per_node=settings.gpus,
                      slurm_array_parallelism=settings.array_parallelism or int(n_jobs))
        if settings.partition:
            params["slurm_partition"] = settings.partition
        if settings.conda_env:
            params["slurm_setup"] = ['eval "$(conda shell.bash hook)"',
                                     f"conda activate {shlex.quote(settings.conda_env)}"]
    else:
        import torch  # here only: the settings and their flags need no torch

        # The local executor exposes only the first gpus_per_node GPUs to each job.
        params["gpus_per_node"] = min(settings.gpus, torch.cuda.device_count())
    executor.update_parameters(**params)
    return executor


def submit_array(executor, fn: Callable, specs: Sequence[dict], settings: ClusterSettings):
    """``executor.map_array(fn, specs)``, with the scheduler's refusal as a :class:`UsageError`.

    sbatch refuses e.g. an unknown partition or more GPUs than a node has; its error lines
    become one line naming the settings, and what submitit wrote into the log folder for the
    refused array is removed (the folder itself when it did not exist before).

    :return: The submitit jobs, one per spec.
    :raises UsageError: When the scheduler (or submitit) refuses the submission.
    """
    log_dir = Path(settings.log_dir)
    existed = log_dir.exists()
    before = set(log_dir.iterdir()) if existed else set()
    echoed = io.StringIO()  # submitit prints sbatch's stderr itself; it goes into the one line
    try:
        with contextlib.redirect_stderr(echoed):
            return executor.map_array(fn, list(specs))
    except (subprocess.SubprocessError, RuntimeError, OSError) as err:
        _remove_new(log_dir, existed, before)
        raise UsageError(f"the {executor.cluster} scheduler refused the job array "
                         f"(partition={settings.partition}, gpus={settings.gpus}, "
                         f"cpus={settings.cpus}, timeout_min={settings.timeout_min}): "
                         f"{_error_text(err)}") from None


def _error_text(err: BaseException) -> str:
    """sbatch's (or submitit's) complaint as one line: its ``error:`` lines joined."""
    text = str(getattr(err, "stderr", None) or err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln]
    return "; ".join(errors or lines[-1:]) or type(err).__name__


def _remove_new(log_dir: Path, existed: bool, before: set) -> None:
    if not existed:
        shutil.rmtree(log_dir, ignore_errors=True)
        return
    for path in set(log_dir.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def failure_line(job, err: BaseException) -> str:
    """A failed job in one line: its id, the last line of its error, and its log file."""
    lines = [ln.strip() for ln in str(err).splitlines()
             if ln.strip() and not set(ln.strip()) <= set("-")]
    # submitit's message ends with where the logs are; the job's own error is the last line
    # of the traceback it quotes.
    own = [ln for ln in lines if not ln.startswith(("You can check", "or at paths", "- /"))
           and not ln.startswith("Job (task")]
    reason = own[-1] if own else type(err).__name__
    return f"job {job.job_id} failed: {reason[:300]} (log: {job.paths.stderr})"


def _slurm_state(job_id: str) -> Optional[str]:
    """The job's state from squeue (scontrol as fallback); None when Slurm no longer knows it."""
    for argv in (["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                 ["scontrol", "show", "job", "-o", job_id]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode != 0:
            continue
        text = out.stdout.strip()
        if argv[0] == "squeue":
            if text:
                return text.split()[0]
            continue
        for field in text.split():
            if field.startswith("JobState="):
                return field.split("=", 1)[1]
    return None


def wait_for_jobs(jobs: Sequence, cluster: str, poll_s: float = 2.0, grace_s: float = 15.0,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> List[Optional[str]]:
    """Wait until every job ended; one failure line (:func:`failure_line`) or None per job.

    A job is done when its result file exists (submitit's pickle), or, on Slurm, when the
    queue no longer runs it: ``squeue``/``scontrol`` are polled (no accounting, ``sacct``, is
    needed), and a job that ended or vanished (e.g. ``scancel``) without a result after
    ``grace_s`` seconds is a failure instead of being waited for forever.
    """
    outcome: List[Optional[str]] = [None] * len(jobs)
    pending = dict(enumerate(jobs))
    ended_at = {}
    while pending:
        for i, job in list(pending.items()):
            result_file = job.paths.result_pickle
            if result_file.exists() or (cluster != "slurm" and job.done()):
                outcome[i] = _outcome(job)
                del pending[i]
                continue
            if cluster != "slurm":
                continue
            state = _slurm_state(str(job.job_id))
            if state is not None and state.split()[0] not in SLURM_ENDED:
                ended_at.pop(i, None)
                continue
            first = ended_at.setdefault(i, clock())
            if clock() - first >= grace_s:  # the file system had time to show the result
                what = "is no longer known to Slurm" if state is None else f"ended {state}"
                outcome[i] = (f"job {job.job_id} {what} without a result (cancelled or killed?) "
                              f"(log: {job.paths.stderr})")
                del pending[i]
        if pending:
            sleep(poll_s)
    return outcome


def _outcome(job) -> Optional[str]:
    try:
        job.result()
    except Exception as err:  # the job's own failure, reported in one line
        return failure_line(job, err)
    return None
