"""``grade-all --slurm``: a course's gradings as one submitit job array.

Everything that touches the cluster is :func:`run_slurm`, over the same helpers (and the same
settings, :class:`hw2.cluster.ClusterSettings`) that ``python -m hw2.experiments grid-submit``
uses. Each array task runs :data:`cs236781.grading.batch.JOB_COMMAND` with its task's
:func:`~cs236781.grading.batch.job_spec`: the ``grade`` command under the same time limit and
process-group clean-up as a local worker, writing its outcome beside its results. Nothing of
this process is pickled for the job but submitit's own ``CommandFunction`` and a JSON string.
"""
import time
from typing import Callable, List, Optional, Sequence, Tuple

from cs236781.grading.batch import JOB_COMMAND, Outcome, Task, job_spec, project_root, read_outcome

__all__ = ["run_slurm", "job_time_limit_s"]


def job_time_limit_s(timeout_s: float, timeout_min: int) -> float:
    """The grading limit inside a job: ``timeout_s``, and a minute short of the job's own
    limit, so that the job records a timeout itself before Slurm kills it."""
    return max(1.0, min(float(timeout_s), timeout_min * 60.0 - 60.0))


def run_slurm(tasks: Sequence[Task], settings, timeout_s: float,
              say: Callable[[str], None] = print) -> List[Tuple[Optional[Outcome], Optional[str]]]:
    """Grade ``tasks`` as one array with ``settings`` and wait for every job.

    :param settings: A :class:`hw2.cluster.ClusterSettings` (the flags of ``grid-submit``).
    :param say: Receives one line when the array is submitted.
    :return: Per task, its :class:`Outcome` (None when the job died before writing one) and
        the cluster's one line about a failed job (None when it ran to its end).
    :raises hw2.validation.UsageError: When submitit or the scheduler refuses the array.
    """
    from submitit.helpers import CommandFunction

    from hw2.cluster import make_executor, submit_array, wait_for_jobs

    limit = job_time_limit_s(timeout_s, settings.timeout_min)
    executor = make_executor(settings, len(tasks), name="hw2-grade")
    function = CommandFunction(list(JOB_COMMAND), verbose=False, cwd=project_root())
    start = time.monotonic()
    jobs = submit_array(executor, function, [job_spec(task, limit) for task in tasks], settings)
    say(f"grade-all: submitted {len(jobs)} job(s) to the {executor.cluster} executor "
        f"(logs in {settings.log_dir}); waiting")
    failures = wait_for_jobs(jobs, executor.cluster)
    elapsed = time.monotonic() - start
    results = []
    for task, failure in zip(tasks, failures):
        outcome = read_outcome(task.work)
        results.append((outcome, failure if outcome is None else None))
        if outcome is None and failure is None:
            results[-1] = (None, f"the job ended after {elapsed:.0f} s without an outcome")
    return results

