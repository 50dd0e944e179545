"""The course command line: ``python -m cs236781 COMMAND ...``.

Commands:

- ``run-nb NOTEBOOK...``: execute notebooks in place (per-cell timeout, ``--allow-errors``).
- ``prepare-submission --id ID [--id ID] [--skip-run]``: run the notebooks, refuse if any has an
  error cell, and zip the submission into ``hw2-ID_ID.zip``.
- ``prepare-dist [--out DIR]``: write the student hand-out of this reference solution.

Exit status: 0 on success, 1 when a notebook failed under ``run-nb``, 2 for a usage error or a
refused operation (the message says why).
"""
import argparse
import sys
from typing import List, Optional

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A user-facing error: printed as one paragraph, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its three sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m cs236781", description="CS236781 course tools: run notebooks, "
        "prepare a submission, make the student hand-out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run-nb", help="execute notebooks in place",
                         description="Execute notebooks in place in a fresh kernel of this "
                         "interpreter, writing their outputs back into the files.")
    run.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="the .ipynb files")
    _add_timeout(run)
    run.add_argument("--allow-errors", action="store_true",
                     help="keep running after a failing cell and exit 0 (a timeout still fails)")
    run.add_argument("--kernel", default="python3", help="kernel spec name (default: python3)")
    run.set_defaults(func=_cmd_run_nb)

    subm = sub.add_parser("prepare-submission", help="run notebooks and zip the submission",
                          description="Run the Part*.ipynb notebooks, refuse if any has an error "
                          "cell, then zip hw2/, cs236781/, the notebooks and results/ into "
                          "hw2-ID_ID.zip.")
    subm.add_argument("--id", dest="ids", action="append", required=True, metavar="ID",
                      help="a student ID; repeat for each student")
    subm.add_argument("--skip-run", action="store_true",
                      help="zip the notebooks as they are, without executing them")
    subm.add_argument("--root", default=".", help="assignment root folder (default: .)")
    subm.add_argument("--out", default=None, help="folder for the zip (default: the root)")
    _add_timeout(subm)
    subm.set_defaults(func=_cmd_prepare_submission)

    dist = sub.add_parser("prepare-dist", help="write the student hand-out",
                          description="Copy the reference solution into a hand-out: code "
                          "between solution markers becomes raise NotImplementedError(), "
                          "written answers become placeholders, notebooks are cleared.")
    dist.add_argument("--source", default=".", help="reference project root (default: .)")
    dist.add_argument("--out", default="dist/hw2", help="hand-out folder (default: dist/hw2)")
    dist.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    dist.set_defaults(func=_cmd_prepare_dist)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line.

    :param argv: Arguments without the program name (default: ``sys.argv[1:]``).
    :return: The exit status.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        return _fail(str(err))
    except Exception as err:
        if _is_user_error(err):
            return _fail(str(err))
        raise


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    from cs236781.notebooks import DEFAULT_CELL_TIMEOUT

    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_CELL_TIMEOUT, metavar="SECONDS",
                        help=f"per-cell time limit, 0 for none (default: {DEFAULT_CELL_TIMEOUT})")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text!r}")
    return value


def _cmd_run_nb(args) -> int:
    from cs236781.notebooks import execute_notebooks

    runs = execute_notebooks(args.notebooks, timeout=args.timeout, allow_errors=args.allow_errors,
                             kernel_name=args.kernel)
    stopped = [r for r in runs if r.failure]
    with_errors = [r for r in runs if r.errors]
    if stopped or (with_errors and not args.allow_errors):
        names = ", ".join(r.path.name for r in runs if not r.ok)
        print(f"run-nb: {len(runs) - len([r for r in runs if r.ok])} of {len(runs)} notebook(s) "
              f"failed: {names}", file=sys.stderr)
        return EXIT_FAILED
    if with_errors:
        print(f"run-nb: finished; error cells were allowed in "
              f"{', '.join(r.path.name for r in with_errors)}")
    return EXIT_OK


def _cmd_prepare_submission(args) -> int:
    from cs236781.submission import prepare_submission

    prepare_submission(args.ids, root=args.root, out_dir=args.out, skip_run=args.skip_run,
                       timeout=args.timeout)
    return EXIT_OK


def _cmd_prepare_dist(args) -> int:
    from cs236781.dist import prepare_dist

    prepare_dist(source=args.source, out=args.out, force=args.force)
    return EXIT_OK


def _is_user_error(err: Exception) -> bool:
    """Errors caused by the user's input or files, reported without a traceback."""
    from cs236781.dist import DistError
    from cs236781.submission import SubmissionError

    return isinstance(err, (DistError, SubmissionError, FileNotFoundError, NotADirectoryError,
                            ValueError))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
