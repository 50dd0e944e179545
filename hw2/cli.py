"""The command line ``python -m hw2.experiments``: every sub-command, its parser and exit codes.

* ``run-exp``: one run; its flags are the fields of :class:`~hw2.config.ExperimentConfig`.
* ``grid-run`` / ``grid-submit`` / ``grid-show``: the grids of :mod:`hw2.grids`, here, as a
  submitit job array, or as ``run-exp`` command lines; the grid-override flags are the same
  fields (a flag not given keeps the grid's setting).
* ``summarize``: the table (and plots) of a results folder (:mod:`hw2.summaries`).

Every failure the user can fix exits with :data:`USAGE_ERROR` (2) after one paragraph on
stderr, without a traceback and without writing a result file.
"""
import argparse
import os
import shlex
import sys
from typing import List, Optional, Sequence

from hw2 import grids
from hw2.cluster import ClusterSettings, wait_for_jobs
from hw2.config import GRID_OVERRIDES, ExperimentConfig, add_arguments
from hw2.datasets import DatasetUnavailableError
from hw2.experiments import add_run_exp_arguments, run_experiment
from cs236781.atomic import remove_stale_temps
from hw2.results import is_complete
from hw2.summaries import summarize
from hw2.validation import ExperimentConfigError, UsageError

__all__ = ["USAGE_ERROR", "DIVERGED", "WRITE_ERROR", "INTERRUPTED", "BROKEN_PIPE", "PROG",
           "build_parser", "main", "resume_hint"]

#: Exit status of every failure the user can fix (bad flags, impossible configurations,
#: missing data), as argparse uses for bad flags.
USAGE_ERROR = 2
#: Exit status of ``run-exp`` when training diverged (the result file records it).
DIVERGED = 3
#: Exit status of a write that failed during the work (a disk filling up mid-run).
WRITE_ERROR = 1
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
#: Exit status when stdout was closed early, e.g. ``summarize | head`` (128 + SIGPIPE).
BROKEN_PIPE = 141
#: How the command is started.
PROG = "python -m hw2.experiments"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw2.experiments`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run the Part 5 CNN experiments: one run, whole grids "
                               "(locally or on Slurm), and result summaries.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run-exp", help="train one CNN configuration and save its result file",
                       description="Train one CNN configuration; writes "
                                   "OUT_DIR/RUN_NAME_L{L}_K{K-K}.json.")
    add_run_exp_arguments(p)
    p.set_defaults(handler=_cmd_run_exp)
    _add_grid_parsers(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m hw2.experiments``.

    Every failure the user can fix (a malformed flag, an impossible architecture, an unknown
    model type or data set, real data missing offline, a bad results folder) prints one
    paragraph on stderr and returns :data:`USAGE_ERROR` (2), without a traceback and without
    writing a result file. Ctrl-C prints one line saying how to resume and returns
    :data:`INTERRUPTED` (130); a write that fails during the work (a full disk) prints one
    line naming the file and returns :data:`WRITE_ERROR` (1); a closed stdout
    (``summarize | head``) ends the command quietly with :data:`BROKEN_PIPE` (141).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :return: The exit status.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed usage and the message
        return int(exit_.code or 0)
    try:
        return int(args.handler(args) or 0)
    except (ExperimentConfigError, DatasetUnavailableError, UsageError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.command}: interrupted; {resume_hint(args)}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE
    except OSError as err:  # a write that failed mid-run (the checkpoint and result errors
        # name their file; any other OSError names its own)
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"{PROG} {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return WRITE_ERROR


def resume_hint(args: argparse.Namespace) -> str:
    """What to do after Ctrl-C in the command ``args`` (one line)."""
    if args.command == "run-exp":
        if args.checkpoints:
            return (f"run the same command again to resume from the checkpoint "
                    f"{args.checkpoints}.pt")
        return "no --checkpoints was given, so running it again starts over"
    if args.command == "grid-run":
        return ("run the same command again: complete runs are skipped and the interrupted run "
                "resumes from its checkpoint")
    if args.command == "grid-submit":
        return (f"jobs already submitted keep running (squeue; logs in {args.log_dir}); the same "
                f"command again submits only the runs without a result")
    return "nothing was written; run it again"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a closed pipe does
    not print a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _cmd_run_exp(args) -> int:
    run = run_experiment(ExperimentConfig.from_args(args), verbose=not args.quiet)
    diverged = run.config.get("diverged")
    if diverged:
        where = "" if diverged.get("batch") is None else f" at batch {diverged['batch']}"
        print(f"{PROG} run-exp: {os.path.basename(run.path)}: training diverged at epoch "
              f"{diverged['epoch']} (loss {diverged['loss']}{where}); the result file records "
              f"it with the {run.result.num_epochs} epoch(s) it holds", file=sys.stderr)
        return DIVERGED
    best = max(run.result.test_acc) if run.result.test_acc else float("nan")
    print(f"{os.path.basename(run.path)}: {run.result.num_epochs} epoch(s), best test accuracy "
          f"{best:.1f}%, {run.config['wall_time_s']:.1f}s")
    return 0


def _add_grid_parsers(sub) -> None:
    """Add ``grid-run``, ``grid-submit``, ``grid-show`` and ``summarize``."""
    names_help = f"grid name(s): {', '.join(grids.GRIDS)}, or all"

    def common(p):
        p.add_argument("names", nargs="+", metavar="GRID", help=names_help)
        add_arguments(p, ["out_dir"])
        p.add_argument("--quick", action="store_true",
                       help="tiny smoke-test workload (2 epochs of 2 batches)")
        add_arguments(p, GRID_OVERRIDES, overrides=True)

    p = sub.add_parser("grid-run", help="run grids here, sequentially, skipping finished runs")
    common(p)
    p.set_defaults(handler=_cmd_grid_run)

    p = sub.add_parser("grid-submit", help="submit grids as a submitit job array (Slurm if srun "
                                           "is on the PATH, else local processes)")
    common(p)
    ClusterSettings.add_arguments(p.add_argument_group("cluster"))
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be submitted, submit nothing")
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
    """The grid settings: the grid's own, with the override flags that were given."""
    overrides = {name: getattr(args, name) for name in GRID_OVERRIDES if hasattr(args, name)}
    if "kw" in overrides:
        overrides["kw"] = dict(overrides["kw"])
    return grids.grid_settings(quick=args.quick, **overrides)


def _cmd_grid_run(args) -> int:
    chosen = grids.get_grids(args.names)
    settings = _settings_from(args)
    for grid in chosen:  # every run of every grid checked before the first one trains
        grid.configs(settings, args.out_dir)
    for folder in (args.out_dir, os.path.join(args.out_dir, "checkpoints")):
        remove_stale_temps(folder)
    locked = []
    for grid in chosen:
        print(f"=== {grid.name}: {grid.title} ({len(grid)} runs) ===", flush=True)
        outcomes = grids.run_grid(grid, args.out_dir, settings)
        locked += [o.run.stem for o in outcomes if o.status == grids.LOCKED]
    summarize(args.out_dir, pattern=_names_pattern(chosen))
    if locked:
        print(f"{len(locked)} run(s) were being computed by another process and skipped here: "
              f"{', '.join(locked)}; their results appear when it finishes")
    return 0


def _names_pattern(chosen: List[grids.Grid]) -> str:
    return f"{chosen[0].name}_*.json" if len(chosen) == 1 else "exp*.json"


def _cmd_grid_submit(args) -> int:
    chosen = grids.get_grids(args.names)
    cluster_name, submitted = grids.submit_grid(
        chosen, args.out_dir, _settings_from(args), ClusterSettings.from_args(args),
        dry_run=args.dry_run)
    if args.dry_run or not submitted:
        return 0
    if not args.wait:
        print(f"Follow the jobs with squeue (Slurm) and the logs in {args.log_dir}; then run: "
              f"python -m hw2.experiments summarize {args.out_dir}")
        return 0
    print(f"Waiting for {len(submitted)} job(s) ...", flush=True)
    failures = wait_for_jobs([item.job for item in submitted], cluster_name)
    for item, failure in zip(submitted, failures):
        if failure:  # one line per failed job; the others still count
            print(f"{item.run.stem}: {failure}", file=sys.stderr)
    if os.path.isdir(args.out_dir):
        summarize(args.out_dir, pattern=_names_pattern(chosen))
    else:
        print(f"No job wrote a result into {args.out_dir}.", file=sys.stderr)
    return 1 if any(failures) else 0


def _cmd_grid_show(args) -> int:
    settings = _settings_from(args)
    for grid in grids.get_grids(args.names):
        print(f"# {grid.name}: {grid.title}")
        for config in grid.configs(settings, args.out_dir):
            done = is_complete(config.result_path)
            print(("# done: " if done else "") + shlex.join(grids.run_command(config)))
    return 0


def _cmd_summarize(args) -> int:
    summarize(args.results_dir, plots_dir=args.plots, pattern=args.pattern)
    return 0
