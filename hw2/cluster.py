"""Job arrays on Slurm (or as local processes) through submitit.

:class:`ClusterSettings` holds what a job asks for (executor, partition, time limit, GPUs,
CPU cores, parallelism, conda environment), checked before anything is submitted;
:func:`make_executor` turns it into a configured ``submitit.AutoExecutor``. This module knows
nothing about grids: :func:`hw2.grids.submit_grid` hands it the jobs.

submitit's pitfalls are handled here: ``AutoExecutor`` picks Slurm only when ``srun`` is on the
PATH, the local executor's default time limit is 2 minutes, and it sets
``CUDA_VISIBLE_DEVICES`` from ``gpus_per_node`` (0 would hide every GPU), so both are set.
"""
import dataclasses
import shlex
from typing import Optional

import torch

from hw2.validation import (
    UsageError, check_choice, check_int, check_optional, config_error,
)

__all__ = ["CLUSTERS", "ClusterSettings", "make_executor"]

#: Executors submitit offers (None: Slurm when ``srun`` is on the PATH, else local).
CLUSTERS = ("slurm", "local", "debug")


def _text(name, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What each job of an array asks for.

    cluster: ``slurm``, ``local``, ``debug`` or None (auto-detect).
    log_dir: submitit's folder for job scripts, pickles and logs.
    partition: Slurm partition (None: the cluster's default).
    timeout_min: time limit of each job, minutes.
    gpus: GPUs per job. cpus: CPU cores per job.
    array_parallelism: at most this many jobs at once on Slurm (None: all).
    conda_env: conda environment activated in each Slurm job (None: none).
    """

    cluster: Optional[str] = None
    log_dir: str = "submitit-logs"
    partition: Optional[str] = None
    timeout_min: int = 240
    gpus: int = 1
    cpus: int = 2
    array_parallelism: Optional[int] = None
    conda_env: Optional[str] = None

    def __post_init__(self):
        checks = dict(
            cluster=lambda n, v: check_optional(check_choice, n, v, CLUSTERS),
            log_dir=lambda n, v: _text(n, str(v) if hasattr(v, "__fspath__") else v),
            partition=lambda n, v: check_optional(_text, n, v),
            timeout_min=lambda n, v: check_int(n, v, 1),
            gpus=lambda n, v: check_int(n, v, 0),
            cpus=lambda n, v: check_int(n, v, 1),
            array_parallelism=lambda n, v: check_optional(check_int, n, v, 1),
            conda_env=lambda n, v: check_optional(_text, n, v),
        )
        for name, check in checks.items():
            try:
                object.__setattr__(self, name, check(name, getattr(self, name)))
            except (TypeError, ValueError) as err:
                raise config_error(err) from None


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
        # The local executor exposes only the first gpus_per_node GPUs to each job.
        params["gpus_per_node"] = min(settings.gpus, torch.cuda.device_count())
    executor.update_parameters(**params)
    return executor
