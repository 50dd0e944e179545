"""The ``grade-all`` sub-command of ``python -m cs236781`` (and ``python main.py``).

``grade-all SUBMISSION... -o OUT [--jobs N] [--timeout S] [--rubric FILE] [--run-notebooks]
[--similarity-threshold X] [--slurm] [cluster flags]``: grade every submission into
``OUT/<id>/`` and write ``OUT/grades.csv``, ``summary.md``, ``summary.png`` and
``similarity.md`` (:func:`cs236781.grading.batch.grade_all`). With ``--slurm`` (or
``--cluster``), the gradings run as one submitit job array with the cluster flags of
``python -m hw2.experiments grid-submit`` (``--partition``, ``--timeout-min``, ``--gpus``,
``--cpus``, ``--array-parallelism``, ``--cluster``, ``--log-dir``, ``--conda-env``); grading
needs no GPU, so ``--gpus`` defaults to 0 here.

Exit status: 0 when every submission was graded or found not gradable, 1 when some timed
out, crashed or failed (they are listed in summary.md; the others are graded), 2 for a usage
error (one line on stderr), 130 when interrupted (Ctrl-C: the gradings running are stopped, the
finished ones kept; the same command grades the rest).
"""
import argparse
import os
import sys

__all__ = ["add_grade_all"]

EXIT_ALL_GRADED, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def add_grade_all(sub) -> None:
    """Add ``grade-all`` to the sub-command parsers ``sub``."""
    from cs236781.grading.batch import DEFAULT_TIMEOUT_S
    from cs236781.grading.similarity import DEFAULT_THRESHOLD

    p = sub.add_parser(
        "grade-all", help="grade a whole course's submissions (course staff)",
        description="Grade each submission (a zip from prepare-submission, a submission folder, "
        "or a folder of zips) with the grade command in a process of its own, in parallel or as "
        "a Slurm array, into OUT/<id>/; then write OUT/grades.csv, summary.md, summary.png and "
        "similarity.md. A submission graded before, whose zip and rubric are unchanged, is "
        "not graded again.")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="submission zips or folders, or folders of zips")
    p.add_argument("--out-dir", "-o", dest="out_dir", required=True, metavar="OUT",
                   help="output folder (created)")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help=f"submissions graded at once here (default: the CPU cores, "
                   f"{os.cpu_count()})")
    p.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT_S,
                   metavar="SECONDS", help="wall-time limit of one submission's grading "
                   f"(default: {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--rubric", default=None, metavar="FILE",
                   help="rubric file for every submission (default: the grader's own)")
    p.add_argument("--run-notebooks", action="store_true",
                   help="have grade re-execute each submission's notebooks in quick mode too")
    p.add_argument("--similarity-threshold", type=_share, default=DEFAULT_THRESHOLD,
                   metavar="X", help="report pairs of files with at least this share of "
                   f"code in common, 0..1 (default: {DEFAULT_THRESHOLD:g})")
    # The flags of grid-submit, declared once in hw2.cluster.ClusterSettings, with two defaults
    # of grading's own: no GPU, and a job limit of --timeout plus 2 minutes (None here).
    from hw2.cluster import ClusterSettings

    c = p.add_argument_group("cluster (grade as one submitit job array; the flags of "
                             "grid-submit; --timeout-min defaults to --timeout plus 2 minutes, "
                             "--log-dir to OUT/submitit-logs)")
    c.add_argument("--slurm", action="store_true",
                   help="grade on Slurm (the same as --cluster slurm)")
    ClusterSettings.add_arguments(c, gpus=0, timeout_min=None, log_dir=None)
    p.set_defaults(func=_cmd_grade_all)


def _number_type(parse, accepts, expected: str):
    """An argparse ``type``: ``parse(text)`` when ``accepts`` it, else the error naming what was
    expected and the text received."""
    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return convert


_positive_int = _number_type(int, lambda v: v >= 1, "a positive whole number")
_positive_seconds = _number_type(float, lambda v: v > 0, "a positive number of seconds")
_share = _number_type(float, lambda v: 0.0 <= v <= 1.0, "a share between 0 and 1")


def cluster_settings(args):
    """The :class:`hw2.cluster.ClusterSettings` of the flags; None to grade here.

    :raises CliError: For a bad cluster flag, or --jobs together with a cluster.
    """
    from cs236781.cli import CliError
    from hw2.cluster import ClusterSettings

    cluster = "slurm" if args.slurm else args.cluster
    if args.slurm and args.cluster not in (None, "slurm"):
        raise CliError(f"--slurm and --cluster {args.cluster} contradict each other; give one")
    if cluster is None:
        return None
    if args.jobs is not None:
        raise CliError("--jobs is for grading here; on a cluster use --array-parallelism")
    try:
        return ClusterSettings.from_args(argparse.Namespace(**dict(
            vars(args), cluster=cluster,
            log_dir=args.log_dir or os.path.join(args.out_dir, "submitit-logs"),
            timeout_min=(args.timeout_min if args.timeout_min is not None
                         else int(-(-args.timeout // 60)) + 2))))
    except (TypeError, ValueError) as err:
        raise CliError(str(err)) from None


def _cmd_grade_all(args) -> int:
    from cs236781.cli import CliError
    from cs236781.grading.batch import FINAL, GradeAllError, grade_all

    settings = cluster_settings(args)
    refusals = (GradeAllError,)
    if settings is not None:  # the scheduler's refusal (hw2 is imported for a cluster only)
        from hw2.validation import UsageError

        refusals += (UsageError,)
    try:
        records = grade_all(args.submissions, args.out_dir, jobs=args.jobs, timeout_s=args.timeout,
                            rubric=args.rubric, run_notebooks=args.run_notebooks,
                            slurm=settings,
                            similarity_threshold=args.similarity_threshold)
    except refusals as err:
        raise CliError(str(err)) from None
    except KeyboardInterrupt:
        print(f"grade-all: interrupted; the gradings running were stopped, those finished are "
              f"in {args.out_dir}; the same command grades the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = [r for r in records if r.status not in FINAL]
    return EXIT_SOME_FAILED if failed else EXIT_ALL_GRADED
