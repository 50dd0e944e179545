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
  wrap each in ``py-sbatch.sh``.

:func:`summarize` (``summarize``) prints a table of a results folder and writes one PNG of the
loss/accuracy curves per grid; :func:`plot_experiments` draws the curves of a glob of result
files (the notebook uses it).
"""
import dataclasses
import fnmatch
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from hw2.datasets import DATASET_NAMES
from hw2.experiments import (
    EXPERIMENT_PARAMS, UsageError, _batches_arg, _patience_arg, cnn_experiment, load_experiment,
    result_filename,
)

__all__ = [
    "MAX_POOLS", "HIDDEN_DIMS", "TRAIN_SETTINGS", "QUICK_SETTINGS", "GridRun", "Grid", "GRIDS",
    "pool_every_for", "get_grids", "grid_settings", "is_complete", "run_grid", "run_grid_job",
    "submit_grid", "SummaryRow", "summarize", "format_table", "plot_experiments",
    "add_grid_parsers",
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

    def command(self, settings: dict, out_dir: str) -> List[str]:
        """The equivalent ``python -m hw2.experiments run-exp`` argument list (no checkpoints)."""
        kw = self.experiment_kwargs(settings, out_dir)
        argv = ["python", "-m", "hw2.experiments", "run-exp", "-n", kw["run_name"],
                "-K", *map(str, kw["filters_per_layer"]), "-L", str(kw["layers_per_block"]),
                "-P", str(kw["pool_every"]), "-H", *map(str, kw["hidden_dims"]),
                "-M", kw["model_type"], "-o", kw["out_dir"]]
        flags = dict(seed="--seed", bs_train="--bs-train", bs_test="--bs-test",
                     batches="--batches", epochs="--epochs", early_stopping="--early-stopping",
                     lr="--lr", reg="--reg", dataset="--dataset", device="--device",
                     loader="--loader")
        for key, flag in flags.items():
            value = kw.get(key)
            if key == "batches":
                argv += [flag, "all" if value is None else str(value)]
            elif key == "early_stopping" and value is None:
                argv += [flag, "0"]  # no early stopping
            elif value is not None:
                argv += [flag, str(value)]
        return argv


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


def is_complete(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a readable, valid result file (see :func:`load_experiment`)."""
    try:
        load_experiment(path)
    except (OSError, ValueError):
        return False
    return True


class RunOutcome(NamedTuple):
    """What happened to one run of :func:`run_grid`: ``status`` is 'done' or 'skipped'."""

    run: GridRun
    path: str
    status: str


def run_grid(grid: Union[str, Grid], out_dir: Union[str, Path] = "results",
             settings: Optional[dict] = None, verbose: bool = True) -> List[RunOutcome]:
    """Run a grid sequentially in this process, skipping runs with a complete result file.

    Each run checkpoints to ``{out_dir}/checkpoints/{stem}.pt``, so an interrupted grid
    resumes the interrupted run where it stopped; the checkpoint is removed once the result
    file is written.

    :param grid: A :class:`Grid` or its name.
    :param out_dir: The results folder.
    :param settings: Training settings (default: :func:`grid_settings`).
    :param verbose: Print progress.
    :return: One :class:`RunOutcome` per run, in order.
    """
    grid = get_grids(grid)[0]
    settings = grid_settings() if settings is None else settings
    outcomes = []
    for i, run in enumerate(grid.runs, 1):
        spec = run.experiment_kwargs(settings, str(out_dir))
        path = os.path.join(str(out_dir), run.filename)
        if is_complete(path):
            if verbose:
                print(f"[{grid.name} {i}/{len(grid)}] {run.stem}: complete result file exists, "
                      f"skipped")
            outcomes.append(RunOutcome(run, path, "skipped"))
            continue
        if verbose:
            print(f"[{grid.name} {i}/{len(grid)}] {run.stem} (model={run.model_type}, "
                  f"pool_every={run.pool_every})")
        run_grid_job(dict(spec, verbose=verbose))
        outcomes.append(RunOutcome(run, path, "done"))
    return outcomes


def run_grid_job(spec: dict) -> str:
    """Run one grid run from its :func:`cnn_experiment` keyword arguments (a submitit job).

    Skips the run when its result file is already complete; otherwise checkpoints to
    ``{out_dir}/checkpoints/{stem}`` (so a preempted or timed-out job resumes) and deletes
    the checkpoint after the result file is written.

    :return: The path of the result file.
    """
    spec = dict(spec)
    path = os.path.join(spec["out_dir"], result_filename(
        spec["run_name"], spec["filters_per_layer"], spec["layers_per_block"]))
    if is_complete(path):
        return path
    stem = os.path.basename(path)[:-len(".json")]
    checkpoint = os.path.join(spec["out_dir"], "checkpoints", stem)
    spec.setdefault("checkpoints", checkpoint)
    run = cnn_experiment(**spec)
    if spec["checkpoints"] == checkpoint:
        Path(checkpoint + ".pt").unlink(missing_ok=True)
    return run.path


# -- Slurm (or local) job arrays through submitit -------------------------------------------

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
    are not submitted.

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
    """
    file = file or sys.stdout
    settings = grid_settings() if settings is None else settings
    pending: List[Tuple[GridRun, dict]] = []
    for grid in get_grids(names):
        for run in grid.runs:
            spec = run.experiment_kwargs(settings, str(out_dir))
            if is_complete(os.path.join(str(out_dir), run.filename)):
                print(f"{run.stem}: complete result file exists, not submitted", file=file)
            else:
                pending.append((run, dict(spec, verbose=True)))
    if dry_run:
        print(f"Dry run: {len(pending)} run(s) would be submitted "
              f"(cluster={cluster or 'auto'}, partition={partition}, timeout_min={timeout_min}, "
              f"gpus={gpus}, cpus={cpus}):", file=file)
        for run, spec in pending:
            print("  " + shlex.join(run.command(settings, str(out_dir))), file=file)
        return cluster, [SubmittedRun(run, spec, None) for run, spec in pending]
    if not pending:
        print("Nothing to submit: every run has a complete result file.", file=file)
        return cluster, []
    executor = _make_executor(cluster, log_dir, partition, timeout_min, gpus, cpus,
                              array_parallelism, conda_env, len(pending))
    jobs = executor.map_array(run_grid_job, [spec for _, spec in pending])
    print(f"Submitted {len(jobs)} job(s) to the {executor.cluster} executor "
          f"(logs in {log_dir}):", file=file)
    for (run, _), job in zip(pending, jobs):
        print(f"  {job.job_id}  {run.stem}", file=file)
    return executor.cluster, [SubmittedRun(run, spec, job) for (run, spec), job in zip(pending, jobs)]


def _make_executor(cluster, log_dir, partition, timeout_min, gpus, cpus, array_parallelism,
                   conda_env, n_jobs):
    try:
        import submitit
    except ImportError:
        raise UsageError("grid-submit needs submitit: pip install 'hw2[slurm]' "
                         "(or pip install submitit)") from None
    try:
        executor = submitit.AutoExecutor(folder=str(log_dir), cluster=cluster)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"cannot create a submitit executor (cluster={cluster!r}): {err}") from None
    params = dict(name="hw2-grid", timeout_min=int(timeout_min), cpus_per_task=int(cpus))
    if executor.cluster == "slurm":
        params.update(gpus_per_node=int(gpus),
                      slurm_array_parallelism=int(array_parallelism or n_jobs))
        if partition:
            params["slurm_partition"] = partition
        if conda_env:
            params["slurm_setup"] = ['eval "$(conda shell.bash hook)"',
                                     f"conda activate {shlex.quote(conda_env)}"]
    else:
        # submitit's local executor exposes only the first gpus_per_node GPUs to each job
        # (CUDA_VISIBLE_DEVICES) and defaults to a 2-minute limit: set both explicitly.
        params["gpus_per_node"] = min(int(gpus), torch.cuda.device_count())
    executor.update_parameters(**params)
    return executor


# -- summaries and plots ---------------------------------------------------------------------

class SummaryRow(NamedTuple):
    """One line of :func:`summarize`'s table.

    ``diverged_epoch`` is the epoch whose training loss became NaN/inf (None for a normal
    run); the table then shows ``diverged@N`` instead of an accuracy.
    """

    run: str
    model: str
    K: str
    L: int
    epochs: int
    best_test_acc: float
    wall_time_s: Optional[float]
    dataset: str
    path: str
    diverged_epoch: Optional[int] = None


def _result_files(results_dir: Union[str, Path], pattern: str) -> List[str]:
    folder = Path(results_dir)
    if not folder.is_dir():
        raise UsageError(f"results folder {str(folder)!r} does not exist (run a grid first, e.g. "
                         f"python -m hw2.experiments grid-run exp1_1 -o {folder})")
    return sorted(str(p) for p in folder.iterdir()
                  if p.is_file() and p.suffix == ".json" and fnmatch.fnmatch(p.name, pattern))


def _sort_key(cfg: dict, path: str):
    return (cfg.get("run_name", ""), cfg.get("model_type", ""),
            len(cfg.get("filters_per_layer", [])), list(cfg.get("filters_per_layer", [])),
            cfg.get("layers_per_block", 0), path)


def load_results(results_dir: Union[str, Path] = "results", pattern: str = "*.json",
                 file=None) -> List[Tuple[str, dict, object]]:
    """Every valid result file of a folder matching ``pattern``, in a natural order.

    Invalid files are reported on ``file`` (default stderr) and left out.

    :return: ``[(path, config, fit_result), ...]`` sorted by grid, model, K and L.
    :raises UsageError: If the folder does not exist.
    """
    loaded = []
    for path in _result_files(results_dir, pattern):
        try:
            cfg, fit = load_experiment(path)
        except ValueError as err:
            print(f"skipped: {err}", file=file or sys.stderr)
            continue
        loaded.append((path, cfg, fit))
    loaded.sort(key=lambda item: _sort_key(item[1], item[0]))
    return loaded


def summarize(results_dir: Union[str, Path] = "results", plots_dir: Optional[Union[str, Path]] = None,
              pattern: str = "*.json", file=None) -> List[SummaryRow]:
    """Print a table of the result files in a folder and optionally plot every grid.

    Columns: run, model, K, L, epochs run, best test accuracy (``diverged@N`` for a run whose
    training diverged in epoch N), wall time, data set. With
    ``plots_dir``, the curves of all runs sharing a ``run_name`` go into one figure
    (:func:`plot_experiments`), saved as ``{plots_dir}/{run_name}.png``.

    :param results_dir: The folder of result files.
    :param plots_dir: Where to write the PNGs (None: no plots).
    :param pattern: Only files whose name matches this glob.
    :param file: Where to print the table (default: stdout).
    :return: The table's rows.
    :raises UsageError: If the folder does not exist.
    """
    file = file or sys.stdout
    loaded = load_results(results_dir, pattern)
    rows = [_summary_row(path, cfg, fit) for path, cfg, fit in loaded]
    if not rows:
        print(f"No result files matching {pattern!r} in {results_dir}.", file=file)
        return rows
    print(format_table(rows), file=file)
    if plots_dir is not None:
        for png in _plot_groups(loaded, Path(plots_dir)):
            print(f"wrote {png}", file=file)
    return rows


def _summary_row(path: str, cfg: dict, fit) -> SummaryRow:
    wall = cfg.get("wall_time_s")
    diverged = cfg.get("diverged")
    return SummaryRow(
        run=os.path.basename(path)[:-len(".json")],
        model=str(cfg.get("model_type", "?")),
        K="-".join(str(k) for k in cfg.get("filters_per_layer", [])) or "?",
        L=cfg.get("layers_per_block", 0),
        epochs=fit.num_epochs,
        best_test_acc=max(fit.test_acc) if fit.test_acc else float("nan"),
        wall_time_s=float(wall) if isinstance(wall, (int, float)) else None,
        dataset=str(cfg.get("dataset", "?")),
        path=path,
        diverged_epoch=diverged.get("epoch") if isinstance(diverged, dict) else None,
    )


def _format_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _accuracy_cell(row: SummaryRow) -> str:
    """The best test accuracy, or ``diverged@N`` for a run whose training diverged."""
    if row.diverged_epoch is not None:
        return f"diverged@{row.diverged_epoch}"
    return f"{row.best_test_acc:.1f}%"


def format_table(rows: Sequence[SummaryRow]) -> str:
    """The summary table as text (one header line, one line per row)."""
    header = ("run", "model", "K", "L", "epochs", "best test acc", "wall time", "dataset")
    lines = [(r.run, r.model, r.K, str(r.L), str(r.epochs), _accuracy_cell(r),
              _format_seconds(r.wall_time_s), r.dataset) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    right = {3, 4, 5, 6}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _legend(path: str, cfg: dict) -> str:
    """A run's label in a plot: its file name without the grid prefix, e.g. ``L2_K32``."""
    stem = os.path.basename(path)[:-len(".json")]
    prefix = f"{cfg.get('run_name', '')}_"
    return stem[len(prefix):] if stem.startswith(prefix) and len(stem) > len(prefix) else stem


def _common_config(configs: List[dict]) -> dict:
    """The config entries every run shares (minus K, L and per-run bookkeeping)."""
    per_run = {"filters_per_layer", "layers_per_block", "channels", "wall_time_s",
               "started_at", "num_params", "hostname", "pool_every"}
    first = configs[0]
    return {k: v for k, v in first.items()
            if k not in per_run and all(c.get(k) == v for c in configs[1:])}


def plot_experiments(pattern: str, results_dir: Union[str, Path] = "results",
                     title: Optional[str] = None, verbose: bool = True):
    """Plot the curves of every result file matching a glob, in one figure.

    :param pattern: A glob of file names, e.g. ``'exp1_1_L*_K32*.json'``.
    :param results_dir: The folder of result files.
    :param title: The figure's title (default: the pattern).
    :param verbose: Print the configuration the runs share, or that nothing matched.
    :return: ``(fig, common_config)``, or ``(None, None)`` when nothing matches.
    """
    if not Path(results_dir).is_dir():
        loaded = []
    else:
        loaded = load_results(results_dir, pattern)
    if not loaded:
        if verbose:
            print(f"No results found for {pattern!r} in {results_dir}.")
        return None, None
    fig = _plot_loaded(loaded, title or pattern)
    common = _common_config([cfg for _, cfg, _ in loaded])
    if verbose:
        pools = {_legend(p, c): c.get("pool_every") for p, c, _ in loaded}
        shown = [k for k in (*EXPERIMENT_PARAMS, "kw") if k in common and k not in ("out_dir",)]
        print(f"{len(loaded)} run(s); pool_every per run: {pools}")
        print("common config:", {k: common[k] for k in shown})
    return fig, common


def _plot_loaded(loaded, title: str):
    """One figure (:func:`cs236781.plot.plot_fit`) with the curves of ``[(path, cfg, fit)]``."""
    from cs236781.plot import plot_fit

    fig = None
    for path, cfg, fit in loaded:
        fig, _ = plot_fit(fit, fig, legend=_legend(path, cfg), log_loss=True)
    fig.suptitle(title)
    return fig


def _plot_groups(loaded, plots_dir: Path) -> List[Path]:
    """One PNG per ``run_name`` (a grid) with the curves of all its runs."""
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    groups: Dict[str, list] = {}
    for item in loaded:
        groups.setdefault(str(item[1].get("run_name", "results")), []).append(item)
    written = []
    for name, items in groups.items():
        fig = _plot_loaded(items, f"{name}: {len(items)} run(s)")
        png = plots_dir / f"{name}.png"
        fig.savefig(png, dpi=80, bbox_inches="tight")
        plt.close(fig)
        written.append(png)
    return written


# -- command line (sub-commands of python -m hw2.experiments) -------------------------------

def add_grid_parsers(sub) -> None:
    """Add ``grid-run``, ``grid-submit``, ``grid-show`` and ``summarize`` to a sub-parser set."""
    names_help = f"grid name(s): {', '.join(GRIDS)}, or all"

    def common(p):
        p.add_argument("names", nargs="+", metavar="GRID", help=names_help)
        p.add_argument("--out-dir", "-o", default="./results", help="results folder (./results)")
        p.add_argument("--dataset", choices=list(DATASET_NAMES), default=None,
                       help="data set (default: $HW2_DATASET, else cifar10)")
        p.add_argument("--device", "-d", default=None, help="device (default: cuda if available)")
        p.add_argument("--loader", choices=("tensor", "torchvision"), default="tensor",
                       help="data path (tensor)")
        p.add_argument("--quick", action="store_true",
                       help="tiny smoke-test workload (2 epochs of 2 batches)")
        o = p.add_argument_group("overriding the grid's training settings")
        o.add_argument("--epochs", type=int, default=None, help="maximal epochs per run")
        o.add_argument("--batches", type=_batches_arg, default=False,
                       help="batches per epoch (0 or 'all': whole epochs)")
        o.add_argument("--bs-train", type=int, default=None, help="train batch size")
        o.add_argument("--early-stopping", type=_patience_arg, default=False,
                       help="epochs without test-loss improvement before stopping (0: never)")
        o.add_argument("--seed", "-s", type=int, default=None, help="random seed")

    p = sub.add_parser("grid-run", help="run grids here, sequentially, skipping finished runs")
    common(p)
    p.set_defaults(handler=_cmd_grid_run)

    p = sub.add_parser("grid-submit", help="submit grids as a submitit job array (Slurm if srun "
                                           "is on the PATH, else local processes)")
    common(p)
    p.add_argument("--partition", "-p", default=None, help="Slurm partition")
    p.add_argument("--timeout-min", type=int, default=240, help="time limit per job, minutes (240)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per job (1)")
    p.add_argument("--cpus", type=int, default=2, help="CPU cores per job (2)")
    p.add_argument("--array-parallelism", type=int, default=None,
                   help="at most this many jobs at once (Slurm)")
    p.add_argument("--cluster", choices=("slurm", "local", "debug"), default=None,
                   help="force an executor (default: Slurm when srun is on the PATH, else local)")
    p.add_argument("--log-dir", default="submitit-logs", help="submitit's job folder (submitit-logs)")
    p.add_argument("--conda-env", default=None, help="conda environment to activate in each Slurm job")
    p.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for the jobs, then print the summary")
    p.set_defaults(handler=_cmd_grid_submit)

    p = sub.add_parser("grid-show", help="print each run of grids as a run-exp command line")
    common(p)
    p.set_defaults(handler=_cmd_grid_show)

    p = sub.add_parser("summarize", help="table (and plots) of a results folder")
    p.add_argument("results_dir", nargs="?", default="./results", metavar="DIR",
                   help="results folder (./results)")
    p.add_argument("--plots", default=None, metavar="OUTDIR",
                   help="write one loss/accuracy PNG per grid into OUTDIR")
    p.add_argument("--pattern", default="*.json", help="only files matching this glob (*.json)")
    p.set_defaults(handler=_cmd_summarize)


def _settings_from(args) -> dict:
    overrides = {key: getattr(args, key) for key in ("epochs", "bs_train", "seed")
                 if getattr(args, key) is not None}
    for key in ("batches", "early_stopping"):  # None is a value here (no limit / never)
        if getattr(args, key) is not False:
            overrides[key] = getattr(args, key)
    return grid_settings(quick=args.quick, dataset=args.dataset, device=args.device,
                         loader=args.loader, **overrides)


def _cmd_grid_run(args) -> int:
    grids = get_grids(args.names)
    settings = _settings_from(args)
    for grid in grids:
        print(f"=== {grid.name}: {grid.title} ({len(grid)} runs) ===")
        run_grid(grid, args.out_dir, settings)
    summarize(args.out_dir, pattern=_names_pattern(grids))
    return 0


def _names_pattern(grids: List[Grid]) -> str:
    return f"{grids[0].name}_*.json" if len(grids) == 1 else "exp*.json"


def _cmd_grid_submit(args) -> int:
    grids = get_grids(args.names)
    cluster, submitted = submit_grid(
        [g.name for g in grids], args.out_dir, _settings_from(args), cluster=args.cluster,
        log_dir=args.log_dir, partition=args.partition, timeout_min=args.timeout_min,
        gpus=args.gpus, cpus=args.cpus, array_parallelism=args.array_parallelism,
        conda_env=args.conda_env, dry_run=args.dry_run)
    if args.dry_run or not submitted:
        return 0
    if not args.wait:
        print(f"Follow the jobs with squeue (Slurm) and the logs in {args.log_dir}; then run: "
              f"python -m hw2.experiments summarize {args.out_dir}")
        return 0
    failed = 0
    for item in submitted:
        try:
            item.job.result()
        except Exception as err:  # a job's failure is reported, the others still count
            failed += 1
            print(f"{item.run.stem}: job {item.job.job_id} failed: {err}", file=sys.stderr)
    summarize(args.out_dir, pattern=_names_pattern(grids))
    return 1 if failed else 0


def _cmd_grid_show(args) -> int:
    settings = _settings_from(args)
    for grid in get_grids(args.names):
        print(f"# {grid.name}: {grid.title}")
        for run in grid.runs:
            done = is_complete(os.path.join(args.out_dir, run.filename))
            print(("# done: " if done else "") + shlex.join(run.command(settings, args.out_dir)))
    return 0


def _cmd_summarize(args) -> int:
    summarize(args.results_dir, plots_dir=args.plots, pattern=args.pattern)
    return 0
