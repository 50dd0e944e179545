"""The five experiment grids of Part 5, defined once, and what runs, submits and summarises them.

A grid is a list of :func:`hw2.experiments.cnn_experiment` runs that share a ``run_name``
(``exp1_1`` ... ``exp2``) and the training settings, and differ in ``K`` (filters per layer),
``L`` (layers per block) and, with them, ``pool_every``:

========  ========  ====================================================================
grid      model     runs
========  ========  ====================================================================
exp1_1    cnn       K in {32, 64} x L in {2, 4, 8, 16}                       (8 runs)
exp1_2    cnn       L in {2, 4, 8} x K in {32, 64, 128, 256}                 (12 runs)
exp1_3    cnn       K = 64-128-256, L in {1, 2, 3, 4}                        (4 runs)
exp1_4    resnet    K = 32 with L in {8, 16, 32}; K = 64-128-256 with L in {2, 4, 8}
exp2      ycn       K = 32-64-128, L in {3, 6, 9, 12}                        (4 runs)
========  ========  ====================================================================

Every run is an :class:`~hw2.config.ExperimentConfig`: the grid's base configuration
(:data:`GRID_BASE`, the training settings every run shares) with the run's architecture
(``base.replace(run_name=..., model_type=..., filters_per_layer=..., ...)``). Settings given to
a grid command are field values applied to each run the same way (:func:`grid_settings`).

``pool_every`` is chosen per run so that a network of ``N = len(K) * L`` convolutions pools at
most :data:`MAX_POOLS` times (``pool_every = ceil(N / MAX_POOLS)``): a 32x32 CIFAR-10 image
then reaches the classifier at 4x4 or larger, however deep the network (and an 8x8 digit at
1x1 or larger).

Three ways to execute a grid, all skipping runs whose complete result file already exists:

* :func:`run_grid` - sequentially, in this process (``python -m hw2.experiments grid-run``);
* :func:`submit_grid` - one Slurm job array through ``submitit``, one job per run
  (``grid-submit``); without ``srun`` on the PATH submitit runs the jobs locally;
* :func:`run_command` - the equivalent ``run-exp`` command line of a run (``grid-show``), e.g.
  to wrap each in ``py-sbatch.sh``: the configuration written out field by field, so it parses
  back to exactly the configuration that runs.

Each run goes through :func:`hw2.experiments.run_experiment`, the lock-and-run path every
run takes. :func:`summarize`, :func:`load_results` and :func:`plot_experiments` (from
:mod:`hw2.summaries`) are imported here for the Part 5 notebook, which calls them through this
module. The command line is :mod:`hw2.cli`; submitit's executor is set up by :mod:`hw2.cluster`.
"""
import dataclasses
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from hw2.checkpoints import remove_checkpoints
from hw2.cluster import ClusterSettings, make_executor, submit_array
from hw2.config import ExperimentConfig
from hw2.datasets import DatasetUnavailableError, data_root, dataset_folder, load_dataset
from hw2.experiments import run_experiment
from hw2.jobs import CheckpointableJob
from hw2.results import RunLock, is_complete, prepare_outputs, remove_empty_folders
from hw2.runs import RunBusy
from hw2.summaries import load_results, plot_experiments, summarize
from hw2.validation import UsageError

__all__ = [
    "MAX_POOLS", "HIDDEN_DIMS", "TRAIN_SETTINGS", "QUICK_SETTINGS", "GRID_BASE", "Grid", "GRIDS",
    "pool_every_for", "get_grids", "grid_settings", "run_command", "DONE", "SKIPPED", "LOCKED",
    "RunOutcome", "run_grid", "run_grid_job", "SubmittedRun", "submit_grid",
    # from hw2.summaries (the notebook calls them through this module):
    "summarize", "plot_experiments", "load_results",
]

#: At most this many pooling layers per network (see the module docstring).
MAX_POOLS = 3
#: Hidden fully-connected widths of every grid run.
HIDDEN_DIMS = (100,)
#: Training settings shared by every run of every grid. Whole epochs over the 50,000
#: CIFAR-10 training images (the course asks for at least 30,000 per epoch), the full test
#: set for evaluation, Adam with a small L2 penalty, and early stopping after 5 epochs
#: without test-loss improvement. One fixed seed makes every grid reproducible.
TRAIN_SETTINGS: Dict[str, object] = dict(
    seed=42, bs_train=128, bs_test=500, batches=None, epochs=40, early_stopping=5,
    lr=1e-3, reg=1e-3,
)
#: What ``--quick`` changes: two batches of two epochs, so that a whole grid runs in seconds
#: on a CPU. Only good for checking that everything works and for drawing plots.
QUICK_SETTINGS: Dict[str, object] = dict(bs_train=16, bs_test=64, batches=2, epochs=2,
                                         early_stopping=None)


#: The configuration every grid run starts from: the training settings above and
#: :data:`HIDDEN_DIMS` (``run_name`` and the architecture are each run's own).
GRID_BASE = ExperimentConfig(run_name="grid", hidden_dims=HIDDEN_DIMS, **TRAIN_SETTINGS)


def pool_every_for(n_convs: int, max_pools: int = MAX_POOLS) -> int:
    """``pool_every`` for a network of ``n_convs`` convolutions: ``ceil(n_convs / max_pools)``.

    It gives at most ``max_pools`` pooling layers, exactly ``max_pools`` when ``n_convs`` is a
    multiple of it; for the three-K configurations (``N = 3 L``) that is ``pool_every = L``,
    one pooling layer at the end of each group of equal filters.

    :param n_convs: Number of convolutions ``N = len(K) * L`` (>= 1).
    :param max_pools: Maximal number of pooling layers (>= 1).
    :return: ``pool_every``.
    """
    if n_convs < 1 or max_pools < 1:
        raise ValueError(f"n_convs and max_pools must be >= 1, got {n_convs} and {max_pools}")
    return math.ceil(n_convs / max_pools)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A named experiment grid: its runs, in the notebook's order.

    name: ``exp1_1`` ... ``exp2`` (also the ``run_name`` of every run).
    title: what the grid varies.
    runs: the runs' configurations with the grid's own settings (:data:`GRID_BASE`).
    """

    name: str
    title: str
    runs: Tuple[ExperimentConfig, ...]

    def configs(self, settings: Optional[Dict[str, object]] = None,
                out_dir: Union[str, Path, None] = None) -> List[ExperimentConfig]:
        """The runs with ``settings`` (field values, see :func:`grid_settings`) and ``out_dir``.

        :raises ExperimentConfigError: For settings that cannot run (before any run trains).
        """
        changes = dict(settings or {})
        if out_dir is not None:
            changes["out_dir"] = str(out_dir)
        return [run.replace(**changes) for run in self.runs]

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        return f"Grid({self.name!r}, {self.title!r}, {len(self.runs)} runs)"


def _grid(name: str, title: str, model_type: str,
          shapes: Iterable[Tuple[Tuple[int, ...], int]]) -> Grid:
    runs = tuple(GRID_BASE.replace(run_name=name, model_type=model_type, filters_per_layer=k,
                                   layers_per_block=l, pool_every=pool_every_for(len(k) * l))
                 for k, l in shapes)
    return Grid(name, title, runs)


#: The five grids of Part 5, by name.
GRIDS: Dict[str, Grid] = {g.name: g for g in (
    _grid("exp1_1", "CNN: varying the depth L (K=32 and K=64)", "cnn",
          [((k,), l) for k in (32, 64) for l in (2, 4, 8, 16)]),
    _grid("exp1_2", "CNN: varying the filters per layer K (L=2, 4, 8)", "cnn",
          [((k,), l) for l in (2, 4, 8) for k in (32, 64, 128, 256)]),
    _grid("exp1_3", "CNN: K=64-128-256 with growing depth L", "cnn",
          [((64, 128, 256), l) for l in (1, 2, 3, 4)]),
    _grid("exp1_4", "ResNet: depth with skip connections", "resnet",
          [((32,), l) for l in (8, 16, 32)] + [((64, 128, 256), l) for l in (2, 4, 8)]),
    _grid("exp2", "YourCNN: K=32-64-128 with growing depth L", "ycn",
          [((32, 64, 128), l) for l in (3, 6, 9, 12)]),
)}


def get_grids(names: Union[str, Grid, Sequence[Union[str, Grid]]]) -> List[Grid]:
    """The grids named (``'all'`` names every grid of :data:`GRIDS`).

    :param names: A name, a :class:`Grid`, or a sequence of them.
    :raises UsageError: For an unknown name, listing the valid ones.
    """
    items = [names] if isinstance(names, (str, Grid)) else list(names)
    if "all" in items:
        return list(GRIDS.values())
    unknown = [n for n in items if not isinstance(n, Grid) and n not in GRIDS]
    if unknown or not items:
        raise UsageError(f"unknown grid name(s) {unknown or items}; expected 'all' or some of "
                         f"{', '.join(GRIDS)}")
    grids = [n if isinstance(n, Grid) else GRIDS[n] for n in items]
    return list({g.name: g for g in grids}.values())


def grid_settings(quick: bool = False, **overrides) -> Dict[str, object]:
    """The settings a grid command applies to every run: field values of
    :class:`~hw2.config.ExperimentConfig` (checked when applied, :meth:`Grid.configs`).

    :param quick: Apply :data:`QUICK_SETTINGS` (a tiny smoke-test workload).
    :param overrides: Any field, e.g. ``dataset='digits'``, ``device='cpu'``, ``epochs=5``.
    :return: :data:`TRAIN_SETTINGS`, then the quick ones, then ``overrides``.
    """
    return {**TRAIN_SETTINGS, **(QUICK_SETTINGS if quick else {}), **overrides}


def run_command(config: ExperimentConfig) -> List[str]:
    """The ``python -m hw2.experiments run-exp`` argument list of a run: every field."""
    return ["python", "-m", "hw2.experiments", "run-exp", *config.to_argv()]


#: :class:`RunOutcome` statuses: trained here, skipped as complete, skipped because another
#: process holds the run's lock.
DONE, SKIPPED, LOCKED = "done", "skipped", "locked"


class RunOutcome(NamedTuple):
    """What happened to one run of :func:`run_grid`: ``status`` is :data:`DONE`,
    :data:`SKIPPED` (a complete result file exists) or :data:`LOCKED` (another process is
    computing it)."""

    run: ExperimentConfig
    path: str
    status: str


def run_grid(grid: Union[str, Grid], out_dir: Union[str, Path] = "results",
             settings: Optional[Dict[str, object]] = None,
             verbose: bool = True) -> List[RunOutcome]:
    """Run a grid sequentially in this process, skipping runs with a complete result file.

    Every run's configuration is checked before the first one trains. Each run checkpoints
    to ``{out_dir}/checkpoints/{stem}.pt``, so an interrupted grid resumes the interrupted run
    where it stopped; the checkpoint is removed once the result file is written. Two
    processes may run the same grid into the same folder: each run is locked while one of
    them computes it, and the other skips it, saying so.

    :param grid: A :class:`Grid` or its name.
    :param out_dir: The results folder.
    :param settings: Field values for every run (default: :func:`grid_settings`).
    :param verbose: Print progress.
    :return: One :class:`RunOutcome` per run, in order.
    :raises ExperimentConfigError: For settings that cannot run, before anything trains.
    """
    grid = get_grids(grid)[0]
    configs = grid.configs(grid_settings() if settings is None else settings, out_dir)
    outcomes = []
    for i, config in enumerate(configs, 1):
        label = f"[{grid.name} {i}/{len(grid)}] {config.stem}"
        status = run_in_grid(config, verbose)
        if status == LOCKED:
            print(f"{label}: another process is computing it "
                  f"({RunLock(config.result_path).holder()}), skipped here", flush=True)
        elif verbose:
            done = "trained" if status == DONE else "complete result file exists, skipped"
            print(f"{label}: {done}", flush=True)
        outcomes.append(RunOutcome(config, config.result_path, status))
    return outcomes


def run_in_grid(config: ExperimentConfig, verbose: bool = True) -> str:
    """Run one grid configuration unless it is complete or another process holds it.

    Without ``config.checkpoints`` the run checkpoints to ``{out_dir}/checkpoints/{stem}``
    (so an interrupted run resumes) and the checkpoint is deleted after the result file is
    written. The run goes through :func:`hw2.experiments.run_experiment` with
    ``skip_complete``; its start line (``verbose``) is printed only when it trains here.

    :return: :data:`DONE`, :data:`SKIPPED` or :data:`LOCKED`.
    """
    if is_complete(config.result_path):
        return SKIPPED
    own_checkpoint = config.checkpoints is None
    if own_checkpoint:
        config = config.replace(checkpoints=os.path.join(config.out_dir, "checkpoints",
                                                         config.stem))
    try:
        run = run_experiment(config, verbose=verbose, skip_complete=True)
    except RunBusy:
        return LOCKED
    if not run.trained:
        return SKIPPED
    if own_checkpoint:
        remove_checkpoints(config.checkpoints)
    return DONE


def run_grid_job(spec: dict) -> str:
    """Run one grid run from its :func:`~hw2.experiments.cnn_experiment` keyword arguments
    (``verbose`` among them); this is the function a submitit job calls.

    As :func:`run_in_grid`: skips a complete run, and a run another process holds (it says
    so on stdout); otherwise checkpoints to ``{out_dir}/checkpoints/{stem}`` (so a preempted
    or timed-out job resumes) and deletes the checkpoint after the result file is written.

    :return: The path of the result file.
    """
    spec = dict(spec)
    verbose = spec.pop("verbose", True)
    config = ExperimentConfig.from_kwargs(spec)
    if run_in_grid(config, verbose) == LOCKED:
        print(f"{config.filename}: another process is computing this run "
              f"({RunLock(config.result_path).holder()}); this job skipped it", flush=True)
    return config.result_path


# -- Slurm (or local) job arrays through submitit -------------------------------------------

def _offline_data_problem(name: str, n_jobs: int) -> Optional[str]:
    """Why the jobs could not load the data set ``name`` from disk (None when they can).

    The check a run makes (:func:`~hw2.datasets.load_dataset` from the data folder), but
    without downloading: a compute node often has no internet, and many jobs downloading into
    one folder at once would clash. Data sets that need no files are not loaded.
    """
    folder = dataset_folder(name)
    if folder is None:
        return None
    try:
        load_dataset(name, download=False, verbose=False)
    except DatasetUnavailableError:
        return (f"the {name} data set is not in the data folder {data_root()} "
                f"($HW2_DATA_DIR, else ~/.pytorch-datasets; torchvision reads {folder}), so "
                f"each of the {n_jobs} job(s) would fail loading it; nothing was submitted. "
                f"Download it first (on a machine with internet: python -c \"from "
                f"hw2.datasets import load_dataset; load_dataset('{name}')\"), "
                f"point HW2_DATA_DIR at a folder that holds it, or choose --dataset digits or "
                f"--dataset synthetic")
    return None


class SubmittedRun(NamedTuple):
    """A run :func:`submit_grid` handed to submitit (``job`` is None on a dry run)."""

    run: ExperimentConfig
    spec: dict
    job: object


def submit_grid(names: Union[str, Grid, Sequence[Union[str, Grid]]],
                out_dir: Union[str, Path] = "results",
                settings: Optional[Dict[str, object]] = None,
                cluster: Optional[ClusterSettings] = None, dry_run: bool = False,
                file=None) -> Tuple[Optional[str], List[SubmittedRun]]:
    """Submit the pending runs of one or more grids as one submitit job array.

    ``submitit.AutoExecutor`` chooses Slurm when ``srun`` is on the PATH and runs the jobs
    as local processes otherwise (``cluster.cluster`` forces one); each job asks for what
    ``cluster`` says (:class:`~hw2.cluster.ClusterSettings`) and a killed job's run resumes
    from its checkpoint when submitted again. In order:

    1. :func:`pending_runs`: every run's configuration is checked; complete runs are left out;
    2. :func:`_offline_data_problem`: the real data set must load from the data folder
       without a download (a dry run prints the problem as a warning and stops there);
    3. :func:`_submit`: ``out_dir`` is created and probed, and the array submitted; a refusal
       by the scheduler (unknown partition, too many GPUs) is a
       :class:`~hw2.validation.UsageError` that leaves no log or results folder behind.

    :param names: Grid name(s), :class:`Grid` object(s) or ``'all'``.
    :param out_dir: The results folder (the jobs write there).
    :param settings: Field values for every run (default: :func:`grid_settings`).
    :param cluster: What each job asks for (default: ``ClusterSettings()``).
    :param dry_run: Only print what would be submitted.
    :param file: Where to print (default: stdout).
    :return: ``(executor kind, submitted)``: the kind is None on a dry run or when nothing is
        pending; one :class:`SubmittedRun` per pending run.
    :raises DatasetUnavailableError: The data set is not in the data folder (one line naming
        it, the folder and the fixes); nothing is created or submitted.
    """
    file = file or sys.stdout
    cluster = ClusterSettings() if cluster is None else cluster
    pending = pending_runs(names, out_dir, grid_settings() if settings is None else settings,
                           file)
    problem = None
    if pending:  # the data set the runs load ($HW2_DATASET when not given), as a run resolves it
        problem = _offline_data_problem(pending[0].resolved().dataset, len(pending))
    if dry_run:
        if problem:
            print(f"Dry run: WARNING: {problem}", file=file)
        print(f"Dry run: {len(pending)} run(s) would be submitted ({cluster}):", file=file)
        for config in pending:
            print("  " + shlex.join(run_command(config)), file=file)
        return None, [SubmittedRun(config, _job_spec(config), None) for config in pending]
    if not pending:
        print("Nothing to submit: every run has a complete result file.", file=file)
        return None, []
    if problem:  # before any folder exists or sbatch runs: every job would die on it
        raise DatasetUnavailableError(problem)
    kind, jobs = _submit(pending, cluster)
    print(f"Submitted {len(jobs)} job(s) to the {kind} executor (logs in {cluster.log_dir}):",
          file=file)
    for config, job in zip(pending, jobs):
        print(f"  {job.job_id}  {config.stem}", file=file)
    return kind, [SubmittedRun(config, _job_spec(config), job)
                  for config, job in zip(pending, jobs)]


def pending_runs(names, out_dir: Union[str, Path], settings: Dict[str, object],
                 file=None) -> List[ExperimentConfig]:
    """The checked configurations of the grids' runs that have no complete result file (each
    complete one is reported on ``file``).

    :raises ExperimentConfigError: For settings that cannot run.
    """
    configs = [c for grid in get_grids(names) for c in grid.configs(settings, out_dir)]
    pending = []
    for config in configs:
        if is_complete(config.result_path):
            print(f"{config.stem}: complete result file exists, not submitted", file=file)
        else:
            pending.append(config)
    return pending


def _job_spec(config: ExperimentConfig) -> dict:
    """What a job receives: :func:`run_grid_job`'s keyword arguments for the run."""
    return dict(config.experiment_kwargs(), verbose=True)


def _submit(pending: List[ExperimentConfig], cluster: ClusterSettings):
    """Create and probe the results folder, then submit one job per run.

    :return: ``(executor kind, jobs)``.
    :raises UsageError: The scheduler refused the array (the new results folder is removed).
    """
    created = prepare_outputs(pending[0].result_path)
    try:
        executor = make_executor(cluster, len(pending))
        # checkpointable: a job that reaches its time limit is requeued and resumes
        jobs = submit_array(executor, CheckpointableJob(run_grid_job),
                            [_job_spec(config) for config in pending], cluster)
    except UsageError:
        remove_empty_folders(created)
        raise
    return executor.cluster, jobs
