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

``pool_every`` is chosen per run so that a network of ``N = len(K) * L`` convolutions pools at
most :data:`MAX_POOLS` times (``pool_every = ceil(N / MAX_POOLS)``): a 32x32 CIFAR-10 image
then reaches the classifier at 4x4 or larger, however deep the network (and an 8x8 digit at
1x1 or larger).

Three ways to execute a grid, all skipping runs whose complete result file already exists:

* :func:`run_grid` - sequentially, in this process (``python -m hw2.experiments grid-run``);
* :func:`submit_grid` - one Slurm job array through ``submitit``, one job per run
  (``grid-submit``); without ``srun`` on the PATH submitit runs the jobs locally;
* :meth:`GridRun.command` - the equivalent ``run-exp`` command lines (``grid-show``), e.g. to
  wrap each in ``py-sbatch.sh``: the run's :class:`~hw2.config.ExperimentConfig` written out
  field by field, so it parses back to exactly the configuration that runs.

:func:`summarize` and :func:`plot_experiments` (from :mod:`hw2.summaries`) are re-exported
here, as the Part 5 notebook uses them through this module. The command line is
:mod:`hw2.cli`; submitit's executor is set up by :mod:`hw2.cluster`.
"""
import dataclasses
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from hw2.cluster import ClusterSettings, make_executor, submit_array
from hw2.config import ExperimentConfig
from hw2.datasets import DatasetUnavailableError, data_root, dataset_folder, load_dataset
from hw2.experiments import run_experiment
from hw2.jobs import CheckpointableJob
from hw2.results import (
    RunLock, is_complete, prepare_outputs, remove_empty_folders, result_filename,
)
from hw2.summaries import SummaryRow, format_table, load_results, plot_experiments, summarize
from hw2.training import Trainer
from hw2.validation import UsageError

__all__ = [
    "MAX_POOLS", "HIDDEN_DIMS", "TRAIN_SETTINGS", "QUICK_SETTINGS", "GridRun", "Grid", "GRIDS",
    "pool_every_for", "get_grids", "grid_settings", "is_complete", "DONE", "SKIPPED", "LOCKED",
    "RunOutcome", "run_grid", "run_locked", "run_grid_job", "SubmittedRun", "submit_grid",
    # from hw2.summaries (the notebook calls them through this module):
    "SummaryRow", "summarize", "format_table", "plot_experiments", "load_results",
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
class GridRun:
    """One run of a grid: the architecture part of a :func:`cnn_experiment` call.

    run_name: the grid's name, shared by its runs (the result file adds ``_L{L}_K{K}``).
    model_type: ``cnn``, ``resnet`` or ``ycn``.
    filters_per_layer: ``K``.
    layers_per_block: ``L``.
    pool_every: convolutions between pooling layers.
    hidden_dims: hidden fully-connected widths.
    """

    run_name: str
    model_type: str
    filters_per_layer: Tuple[int, ...]
    layers_per_block: int
    pool_every: int
    hidden_dims: Tuple[int, ...] = HIDDEN_DIMS

    @property
    def filename(self) -> str:
        """The run's result file name, e.g. ``exp1_1_L2_K32.json``."""
        return result_filename(self.run_name, self.filters_per_layer, self.layers_per_block)

    @property
    def stem(self) -> str:
        """The result file name without ``.json``."""
        return self.filename[:-len(".json")]

    def experiment_kwargs(self, settings: dict, out_dir: str) -> dict:
        """The keyword arguments of :func:`cnn_experiment` for this run.

        :param settings: Training settings (see :func:`grid_settings`).
        :param out_dir: The results folder.
        """
        return dict(settings, run_name=self.run_name, out_dir=str(out_dir),
                    model_type=self.model_type, filters_per_layer=list(self.filters_per_layer),
                    layers_per_block=self.layers_per_block, pool_every=self.pool_every,
                    hidden_dims=list(self.hidden_dims))

    def config(self, settings: dict, out_dir: str) -> ExperimentConfig:
        """The run's checked configuration (see :meth:`experiment_kwargs`).

        :raises ExperimentConfigError: For settings that cannot run.
        """
        return ExperimentConfig.from_kwargs(self.experiment_kwargs(settings, out_dir))

    def command(self, settings: dict, out_dir: str) -> List[str]:
        """The equivalent ``python -m hw2.experiments run-exp`` argument list: every field of
        :meth:`config` (no checkpoints; :func:`run_grid_job` adds them)."""
        return ["python", "-m", "hw2.experiments", "run-exp",
                *self.config(settings, out_dir).to_argv()]

    def __repr__(self) -> str:
        k = "-".join(map(str, self.filters_per_layer))
        return (f"GridRun({self.run_name!r}, {self.model_type}, K={k}, L={self.layers_per_block}, "
                f"P={self.pool_every})")


@dataclasses.dataclass(frozen=True)
class Grid:
    """A named experiment grid: its runs, in the notebook's order.

    name: ``exp1_1`` ... ``exp2`` (also the ``run_name`` of every run).
    title: what the grid varies.
    runs: the runs.
    """

    name: str
    title: str
    runs: Tuple[GridRun, ...]

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        return f"Grid({self.name!r}, {self.title!r}, {len(self.runs)} runs)"


def _grid(name: str, title: str, model_type: str,
          configs: Iterable[Tuple[Tuple[int, ...], int]]) -> Grid:
    runs = tuple(
        GridRun(name, model_type, tuple(k), l, pool_every_for(len(k) * l)) for k, l in configs
    )
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


def grid_settings(quick: bool = False, dataset: Optional[str] = None,
                  device: Optional[str] = None, loader: str = "tensor", **overrides) -> dict:
    """The training settings of a grid run.

    :param quick: Apply :data:`QUICK_SETTINGS` (a tiny smoke-test workload).
    :param dataset: Data set name (None: ``$HW2_DATASET``, else ``cifar10``).
    :param device: Device (None: automatic).
    :param loader: ``tensor`` or ``torchvision``.
    :param overrides: Any other :func:`cnn_experiment` setting.
    :return: A dict of :func:`cnn_experiment` keyword arguments.
    """
    settings = dict(TRAIN_SETTINGS)
    if quick:
        settings.update(QUICK_SETTINGS)
    settings.update(dataset=dataset, device=device, loader=loader, **overrides)
    return settings


#: :class:`RunOutcome` statuses: trained here, skipped as complete, skipped because another
#: process holds the run's lock.
DONE, SKIPPED, LOCKED = "done", "skipped", "locked"


class RunOutcome(NamedTuple):
    """What happened to one run of :func:`run_grid`: ``status`` is :data:`DONE`,
    :data:`SKIPPED` (a complete result file exists) or :data:`LOCKED` (another process is
    computing it)."""

    run: GridRun
    path: str
    status: str


def run_grid(grid: Union[str, Grid], out_dir: Union[str, Path] = "results",
             settings: Optional[dict] = None, verbose: bool = True) -> List[RunOutcome]:
    """Run a grid sequentially in this process, skipping runs with a complete result file.

    Every run's configuration is checked before the first one trains. Each run checkpoints
    to ``{out_dir}/checkpoints/{stem}.pt``, so an interrupted grid resumes the interrupted run
    where it stopped; the checkpoint is removed once the result file is written. Two
    processes may run the same grid into the same folder: each run is locked while one of
    them computes it (:class:`~hw2.results.RunLock`), and the other skips it, saying so.

    :param grid: A :class:`Grid` or its name.
    :param out_dir: The results folder.
    :param settings: Training settings (default: :func:`grid_settings`).
    :param verbose: Print progress.
    :return: One :class:`RunOutcome` per run, in order.
    :raises ExperimentConfigError: For settings that cannot run, before anything trains.
    """
    grid = get_grids(grid)[0]
    settings = grid_settings() if settings is None else settings
    configs = [run.config(settings, str(out_dir)) for run in grid.runs]  # all checked first
    outcomes = []
    for i, (run, config) in enumerate(zip(grid.runs, configs), 1):
        label = f"[{grid.name} {i}/{len(grid)}] {run.stem}"
        status = run_locked(config, verbose, label=label if verbose else None)
        if verbose and status == SKIPPED:
            print(f"{label}: complete result file exists, skipped")
        elif status == LOCKED:
            print(f"{label}: another process is computing it "
                  f"({RunLock(config.result_path).holder()}), skipped here", flush=True)
        outcomes.append(RunOutcome(run, config.result_path, status))
    return outcomes


def run_locked(config: ExperimentConfig, verbose: bool = True,
               label: Optional[str] = None) -> str:
    """Run one grid configuration unless it is complete or another process holds it.

    Without ``config.checkpoints`` the run checkpoints to ``{out_dir}/checkpoints/{stem}``
    (so an interrupted run resumes) and the checkpoint is deleted after the result file is
    written. Folders and names are checked (:func:`~hw2.results.prepare_outputs`) before it
    trains; the run's lock is held from before the completeness check until the result is
    written, so no other process trains it meanwhile or reads its checkpoint.

    :param label: When given, printed with the model type and ``pool_every`` as the run's
        start line, once this process holds the lock and is about to train it (never for a
        run that is skipped or held elsewhere).
    :return: :data:`DONE`, :data:`SKIPPED` or :data:`LOCKED`.
    """
    if is_complete(config.result_path):
        return SKIPPED
    own_checkpoint = config.checkpoints is None
    if own_checkpoint:
        stem = config.filename[:-len(".json")]
        config = config.replace(checkpoints=os.path.join(config.out_dir, "checkpoints", stem))
    prepare_outputs(config.result_path, (Trainer.checkpoint_file(config.checkpoints),
                                         Trainer.last_checkpoint_file(config.checkpoints)))
    lock = RunLock(config.result_path)
    if not lock.acquire():
        return LOCKED
    try:
        if is_complete(config.result_path):  # finished by the process that held it before
            return SKIPPED
        if label is not None:
            print(f"{label} (model={config.model_type}, pool_every={config.pool_every})",
                  flush=True)
        run_experiment(config, verbose=verbose)
        if own_checkpoint:
            Trainer.remove_checkpoints(config.checkpoints)
    finally:
        lock.release()
    return DONE


def run_grid_job(spec: dict) -> str:
    """Run one grid run from its :func:`~hw2.experiments.cnn_experiment` keyword arguments
    (``verbose`` among them); this is the function a submitit job calls.

    As :func:`run_locked`: skips a complete run, and a run another process holds (it says
    so on stdout); otherwise checkpoints to ``{out_dir}/checkpoints/{stem}`` (so a preempted
    or timed-out job resumes) and deletes the checkpoint after the result file is written.

    :return: The path of the result file.
    """
    spec = dict(spec)
    verbose = spec.pop("verbose", True)
    config = ExperimentConfig.from_kwargs(spec)
    if run_locked(config, verbose) == LOCKED:
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
                f"($HW2_DATA_DIR, else ~/.pytorch-datasets; torchvision reads {folder}), so each of the {n_jobs} job(s) "
                f"would fail loading it; nothing was submitted. Download it first (on a machine "
                f"with internet: python -c \"from hw2.datasets import load_dataset; "
                f"load_dataset('{name}')\"), point HW2_DATA_DIR at a folder that holds it, or "
                f"choose --dataset digits or --dataset synthetic")
    return None


class SubmittedRun(NamedTuple):
    """A run :func:`submit_grid` handed to submitit (``job`` is None on a dry run)."""

    run: GridRun
    spec: dict
    job: object


def submit_grid(names: Union[str, Grid, Sequence[Union[str, Grid]]], out_dir: Union[str, Path] = "results",
                settings: Optional[dict] = None, cluster: Optional[str] = None,
                log_dir: Union[str, Path] = "submitit-logs", partition: Optional[str] = None,
                timeout_min: int = 240, gpus: int = 1, cpus: int = 2,
                array_parallelism: Optional[int] = None, conda_env: Optional[str] = None,
                dry_run: bool = False, file=None) -> Tuple[Optional[str], List[SubmittedRun]]:
    """Submit the pending runs of one or more grids as one submitit job array.

    ``submitit.AutoExecutor`` chooses Slurm when ``srun`` is on the PATH and runs the jobs
    as local processes otherwise (``cluster`` forces ``slurm``, ``local`` or ``debug``). Each
    job requests ``cpus`` cores and ``gpus`` GPUs (on the local executor: as many GPUs as
    exist, at most ``gpus``) and is killed after ``timeout_min`` minutes; a killed job's run
    resumes from its checkpoint when submitted again. Runs whose result file is complete
    are not submitted. Every setting (each run's configuration and the cluster settings) is
    checked, the real data set (``cifar10``, ``mnist``, ``fashion-mnist``) must load from the
    data folder without a download, and ``out_dir`` is created and probed, before anything is
    submitted (a dry run prints the data problem as a warning); a refusal by the scheduler
    (unknown partition, too many GPUs) is a :class:`UsageError` that leaves no log folder or
    results folder behind.

    :param names: Grid name(s), :class:`Grid` object(s) or ``'all'``.
    :param out_dir: The results folder (the jobs write there).
    :param settings: Training settings (default: :func:`grid_settings`).
    :param cluster: None (auto-detect), ``slurm``, ``local`` or ``debug``.
    :param log_dir: submitit's folder for job scripts, pickles and logs.
    :param partition: Slurm partition.
    :param timeout_min: Time limit of each job in minutes.
    :param gpus: GPUs per job.
    :param cpus: CPU cores per job.
    :param array_parallelism: At most this many array jobs at once on Slurm.
    :param conda_env: Activate this conda environment in each Slurm job first.
    :param dry_run: Only print what would be submitted.
    :param file: Where to print (default: stdout).
    :return: ``(cluster, submitted)``: the executor kind (None on a dry run without
        submitit) and one :class:`SubmittedRun` per pending run.
    :raises DatasetUnavailableError: The data set is not in the data folder (one line naming
        it, the folder and the fixes); nothing is created or submitted.
    """
    file = file or sys.stdout
    settings = grid_settings() if settings is None else settings
    cluster_settings = ClusterSettings(cluster, str(log_dir), partition, timeout_min, gpus, cpus,
                                       array_parallelism, conda_env)
    pending: List[Tuple[GridRun, dict]] = []
    for grid in get_grids(names):
        for run in grid.runs:
            spec = run.experiment_kwargs(settings, str(out_dir))
            run.config(settings, str(out_dir))  # raises ExperimentConfigError before submitting
            if is_complete(os.path.join(str(out_dir), run.filename)):
                print(f"{run.stem}: complete result file exists, not submitted", file=file)
            else:
                pending.append((run, dict(spec, verbose=True)))
    problem = None
    if pending:  # the data set the runs load ($HW2_DATASET when not given), checked as a run does
        dataset = pending[0][0].config(settings, str(out_dir)).resolved().dataset
        problem = _offline_data_problem(dataset, len(pending))
    if dry_run:
        if problem:
            print(f"Dry run: WARNING: {problem}", file=file)
        print(f"Dry run: {len(pending)} run(s) would be submitted "
              f"(cluster={cluster or 'auto'}, partition={partition}, timeout_min={timeout_min}, "
              f"gpus={gpus}, cpus={cpus}):", file=file)
        for run, spec in pending:
            print("  " + shlex.join(run.command(settings, str(out_dir))), file=file)
        return cluster, [SubmittedRun(run, spec, None) for run, spec in pending]
    if not pending:
        print("Nothing to submit: every run has a complete result file.", file=file)
        return cluster, []
    if problem:  # before any folder exists or sbatch runs: every job would die on it
        raise DatasetUnavailableError(problem)
    # The jobs write into out_dir: it must be writable before anything is submitted (and is
    # left as it was when the scheduler refuses the array).
    created = prepare_outputs(os.path.join(str(out_dir), pending[0][0].filename))
    try:
        executor = make_executor(cluster_settings, len(pending))
        # checkpointable: a job that reaches its time limit is requeued and resumes
        jobs = submit_array(executor, CheckpointableJob(run_grid_job),
                            [spec for _, spec in pending], cluster_settings)
    except UsageError:
        remove_empty_folders(created)
        raise
    print(f"Submitted {len(jobs)} job(s) to the {executor.cluster} executor "
          f"(logs in {log_dir}):", file=file)
    for (run, _), job in zip(pending, jobs):
        print(f"  {job.job_id}  {run.stem}", file=file)
    return executor.cluster, [SubmittedRun(run, spec, job) for (run, spec), job in zip(pending, jobs)]


