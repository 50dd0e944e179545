"""The course's tooling command line, shared by ``python main.py`` and ``python -m cs236781``.

Sub-commands (the course's flags; the older long names in brackets still work):

- ``run-nb NB_PATH... [--allow-errors/-E] [--timeout S] [--kernel NAME]``: execute notebooks
  in place.
- ``prepare-submission --id/-i ID [--id ID ...] [--hw-dir DIR] [--out-dir/-o DIR]
  [--skip-run/-R] [--allow-errors/-E] [--timeout S]`` (``--root``, ``--out``): run the
  notebooks, refuse error cells, and write ``hw2-ID1_ID2.zip``.
- ``prepare-dist [--hw-dir/-i DIR] [--out-dir/-o DIR] [--out DIR] [--force]`` (``--source``):
  write the student hand-out into ``OUT_DIR/hw2`` (or exactly ``--out``).
- ``clear-nb NB_PATH...``: clear the outputs of notebooks in place.
- ``grade ZIP [-o OUT] [--rubric FILE] [--run-notebooks]`` (course staff): grade one
  submission in a sandbox into ``OUT/results.json`` (Gradescope's format) and print a table;
  exit 0 when graded, 2 when it could not be graded at all (``results.json`` says why).
- ``grade-all SUBMISSION... -o OUT [--jobs N | --slurm ...]`` (course staff; not in the
  hand-out): grade a whole course, see :mod:`cs236781.grading.course_cli`.

Exit status: 0 on success, 1 when a notebook failed under ``run-nb``, 2 for a usage error or a
refused operation (one line on stderr says why).
"""
import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Where ``prepare-dist`` writes by default: ``DEFAULT_DIST_DIR/DIST_NAME``.
DEFAULT_DIST_DIR, DIST_NAME = "dist", "hw2"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser with its four sub-commands.

    :param prog: Program name shown in the usage line (default: ``python -m cs236781``).
    """
    parser = argparse.ArgumentParser(
        prog=prog or "python -m cs236781", description="CS236781 course homework tools: run "
        "notebooks, clear them, prepare a submission, make the student hand-out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_run_nb(sub)
    _add_prepare_submission(sub)
    _add_prepare_dist(sub)
    _add_clear_nb(sub)
    _add_grade(sub)
    _add_grade_all(sub)
    return parser


def main(argv: Optional[List[str]] = None, prog: Optional[str] = None) -> int:
    """Run the command line.

    :param argv: Arguments without the program name (default: ``sys.argv[1:]``).
    :param prog: Program name for usage and help messages.
    :return: The exit status.
    """
    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        return _fail(str(err))
    except Exception as err:
        if _is_user_error(err):
            return _fail(str(err))
        raise


def _add_run_nb(sub) -> None:
    run = sub.add_parser("run-nb", help="execute notebooks in place",
                         description="Execute notebooks in place in a fresh kernel of this "
                         "interpreter, writing their outputs back into the files.")
    run.add_argument("nb_paths", nargs="+", metavar="NB_PATH", help="the .ipynb files")
    run.add_argument("--allow-errors", "-E", action="store_true",
                     help="keep running after a failing cell and exit 0 (a timeout still fails)")
    _add_timeout(run)
    run.add_argument("--kernel", default="python3", help="kernel spec name (default: python3)")
    run.set_defaults(func=_cmd_run_nb)


def _add_prepare_submission(sub) -> None:
    subm = sub.add_parser(
        "prepare-submission", help="run the notebooks and zip the submission",
        description="Run the Part*.ipynb notebooks, refuse if any has an error cell, merge them "
        "into one HTML file, and zip the assignment files and that HTML under one top folder "
        "into hw2-ID1_ID2.zip.")
    subm.add_argument("--id", "-i", dest="ids", action="append", required=True, metavar="ID",
                      type=_student_id, help="a student ID (a number); repeat for each student")
    subm.add_argument("--hw-dir", "--root", dest="hw_dir", default=".", metavar="DIR",
                      help="the assignment folder (default: .)")
    subm.add_argument("--out-dir", "-o", "--out", dest="out_dir", default=None, metavar="DIR",
                      help="folder for the zip (default: the assignment folder)")
    subm.add_argument("--skip-run", "-R", action="store_true",
                      help="use the notebooks as they are, without executing them")
    subm.add_argument("--allow-errors", "-E", action="store_true",
                      help="run every cell even after a failure and submit notebooks with error "
                      "cells (they are listed as warnings)")
    _add_timeout(subm)
    subm.set_defaults(func=_cmd_prepare_submission)


def _add_prepare_dist(sub) -> None:
    dist = sub.add_parser(
        "prepare-dist", help="write the student hand-out",
        description="Copy the reference solution into a hand-out: code between solution "
        "markers becomes raise NotImplementedError(), written answers become placeholders, "
        "notebooks are cleared; other files (tests and their reference tensors included) are "
        "copied as they are.")
    dist.add_argument("--hw-dir", "-i", "--source", dest="hw_dir", default=".", metavar="DIR",
                      help="the reference project root (default: .)")
    dist.add_argument("--out-dir", "-o", dest="out_dir", default=DEFAULT_DIST_DIR, metavar="DIR",
                      help=f"the hand-out goes to DIR/{DIST_NAME} (default: {DEFAULT_DIST_DIR})")
    dist.add_argument("--out", default=None, metavar="DIR",
                      help="write the hand-out to exactly this folder instead")
    dist.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    dist.set_defaults(func=_cmd_prepare_dist)


def _add_clear_nb(sub) -> None:
    clear = sub.add_parser("clear-nb", help="clear notebook outputs in place",
                           description="Remove the outputs and execution counts of notebooks, "
                           "in place.")
    clear.add_argument("nb_paths", nargs="+", metavar="NB_PATH", help="the .ipynb files")
    clear.set_defaults(func=_cmd_clear_nb)


def _add_grade_all(sub) -> None:
    """``grade-all`` (course staff); absent in the student hand-out, which has no grader."""
    if not _has_grader():
        return
    from cs236781.grading.course_cli import add_grade_all

    add_grade_all(sub)


def _has_grader() -> bool:
    """Whether the grader is here (it is not in the student hand-out)."""
    # Beside this file, not through the import system: an editable install of the course's
    # copy would otherwise resolve cs236781.grading to that copy from inside a hand-out.
    return (Path(__file__).resolve().parent / "grading" / "__init__.py").is_file()


def _add_grade(sub) -> None:
    """``grade`` (course staff); absent in the student hand-out, which has no grader."""
    if not _has_grader():
        return
    grade = sub.add_parser(
        "grade", help="grade one submission (course staff)",
        description="Grade a submission zip (or folder) in a sandbox: each part's code runs in "
        "a child process, the grader judges its outputs against its own oracles; writes "
        "OUT/results.json (Gradescope's format) and OUT/answers.md and prints a table. Exit 0: "
        "graded; 2: not gradable (results.json says why).")
    grade.add_argument("submission", metavar="ZIP", help="the submission zip or folder")
    grade.add_argument("--out", "-o", default=None, metavar="OUT",
                       help="output folder (default: grading/<zip name>)")
    grade.add_argument("--rubric", default=None, metavar="FILE",
                       help="rubric TOML (default: the committed cs236781/grading/rubric.toml)")
    grade.add_argument("--run-notebooks", action="store_true",
                       help="also re-execute the notebooks in quick mode inside the sandbox")
    grade.set_defaults(func=_cmd_grade)


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


def _student_id(text: str) -> str:
    """An ID is a number; it is kept as typed so that leading zeros survive."""
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"a student ID is a number (digits only), got {text!r}")
    return text


def _cmd_run_nb(args) -> int:
    from cs236781.notebooks import execute_notebooks

    runs = execute_notebooks(args.nb_paths, timeout=args.timeout, allow_errors=args.allow_errors,
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

    prepare_submission(args.ids, root=args.hw_dir, out_dir=args.out_dir, skip_run=args.skip_run,
                       allow_errors=args.allow_errors, timeout=args.timeout)
    return EXIT_OK


def _cmd_prepare_dist(args) -> int:
    from cs236781.dist import prepare_dist

    out = args.out if args.out is not None else Path(args.out_dir) / DIST_NAME
    prepare_dist(source=args.hw_dir, out=out, force=args.force)
    return EXIT_OK


def _cmd_grade(args) -> int:
    from cs236781.grading.grade import grade, table

    src = Path(args.submission)
    out = Path(args.out) if args.out else Path("grading") / (src.stem if src.suffix == ".zip" else src.name)
    result = grade(src, out, rubric_path=args.rubric, run_notebooks=args.run_notebooks,
                   progress=lambda line: print(line, flush=True))
    print(table(result))
    print(f"results: {out / 'results.json'}")
    if not result.gradable:
        print(f"error: {result.output[-1]}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_clear_nb(args) -> int:
    from cs236781.jupyter_utils import nbconvert

    missing = [p for p in args.nb_paths if not Path(p).is_file()]
    if missing:
        raise CliError(f"notebook(s) not found: {', '.join(missing)}")
    for path in sorted(args.nb_paths):
        nbconvert(path, clear_output=True)
    return EXIT_OK


def _is_user_error(err: Exception) -> bool:
    """Errors caused by the user's input or files, reported without a traceback."""
    from cs236781.dist import DistError
    from cs236781.submission import SubmissionError

    if _has_grader():
        from cs236781.grading.grade import RubricError
        if isinstance(err, RubricError):
            return True
    return isinstance(err, (DistError, SubmissionError, FileNotFoundError, NotADirectoryError,
                            ValueError))


def _fail(message: str) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE
