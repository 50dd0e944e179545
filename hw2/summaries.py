"""Summaries of a results folder: a table of every run and plots of their curves.

:func:`summarize` (``python -m hw2.experiments summarize``) prints one line per result file
(run, model, K, L, epochs, best test accuracy or ``diverged@N``, wall time, data set) and can
write one PNG of the loss/accuracy curves per grid; :func:`plot_experiments` draws the curves
of a glob of result files in one figure (the Part 5 notebook uses it). Invalid files are
reported, naming them, and left out. matplotlib is imported only when something is drawn.
"""
import fnmatch
import os
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from hw2.config import EXPERIMENT_PARAMS
from hw2.results import load_experiment
from hw2.validation import UsageError

__all__ = ["SummaryRow", "load_results", "summarize", "format_table", "plot_experiments"]


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
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"results folder {str(folder)!r} is not a folder (it is a file; give "
                         f"the folder that holds the result files)")
    if not folder.is_dir():
        raise UsageError(f"results folder {str(folder)!r} does not exist (run a grid first, e.g. "
                         f"python -m hw2.experiments grid-run exp1_1 -o {folder})")
    return sorted(str(p) for p in folder.iterdir()
                  if p.is_file() and p.suffix == ".json" and fnmatch.fnmatch(p.name, pattern))


def _sort_key(cfg: dict, path: str):
    """Grid, model, K, L, path; every part as text or a number of one type (a config may hold
    anything: a number as ``run_name``, a string as ``L``)."""
    ks = cfg.get("filters_per_layer", [])
    ks = ks if isinstance(ks, list) else []
    layers = cfg.get("layers_per_block", 0)
    return (str(cfg.get("run_name", "")), str(cfg.get("model_type", "")), len(ks),
            [str(k).zfill(12) for k in ks],
            str(layers).zfill(12), path)


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
        except (ValueError, OSError) as err:  # each message names the file
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
    :raises UsageError: If the folder does not exist or is a file, or ``plots_dir`` is a file.
    """
    file = file or sys.stdout
    if plots_dir is not None and Path(plots_dir).exists() and not Path(plots_dir).is_dir():
        raise UsageError(f"--plots {str(plots_dir)!r} is not a folder (it is a file; give a "
                         f"folder for the PNGs, created when missing)")
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
    ks = cfg.get("filters_per_layer")
    return SummaryRow(
        run=os.path.basename(path)[:-len(".json")],
        model=str(cfg.get("model_type", "?")),
        K="-".join(str(k) for k in ks) if isinstance(ks, list) and ks else "?",
        L=cfg.get("layers_per_block", 0) if isinstance(cfg.get("layers_per_block"), int) else 0,
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
    prefix = f"{str(cfg.get('run_name', ''))}_"
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
