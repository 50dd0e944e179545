"""Jobs that Slurm can requeue: a submitit checkpointable around a job function.

submitit requeues a job that reaches its time limit (or is pre-empted) only when the submitted
callable is *checkpointable*: an object with a ``checkpoint(*args, **kwargs)`` method that
returns a ``submitit.helpers.DelayedSubmission`` of what to run next. :class:`CheckpointableJob`
wraps a job function (e.g. :func:`hw2.grids.run_grid_job`) that resumes by itself: the
requeued job calls the same function with the same arguments, and the run continues from its
"last" checkpoint (:mod:`hw2.checkpoints`), ending with the result an uninterrupted job has.

``executor.map_array(CheckpointableJob(run_grid_job), specs)`` submits such jobs.
"""
from typing import Any, Callable

__all__ = ["CheckpointableJob"]


class CheckpointableJob:
    """A picklable callable that submitit requeues after a timeout or pre-emption.

    :param fn: The job function, a module-level function (so it pickles by name) that can be
        called again after an interruption and then resumes where it stopped.
    :raises TypeError: ``fn`` is not callable.
    """

    def __init__(self, fn: Callable[..., Any]):
        if not callable(fn):
            raise TypeError(f"CheckpointableJob: fn must be a callable job function, got "
                            f"{type(fn).__name__}")
        self.fn = fn

    def __call__(self, *args, **kwargs):
        """Run the job (the first time, and again after each requeue)."""
        return self.fn(*args, **kwargs)

    def checkpoint(self, *args, **kwargs):
        """What submitit runs after requeueing: this job with the same arguments.

        :return: A ``submitit.helpers.DelayedSubmission`` of ``self(*args, **kwargs)``.
        """
        from submitit.helpers import DelayedSubmission  # only ever called inside a submitit job

        return DelayedSubmission(self, *args, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"CheckpointableJob({getattr(self.fn, '__module__', '')}.{name})"
