"""Produce every number the Part 2, 3 and 5 answers cite: ``python -m evidence`` (``make evidence``).

Writes one JSON file per experiment into ``results/evidence/`` (see ``results/README.md``).
Everything runs on the CPU with a fixed number of torch threads, so a rerun on the same
software writes the same files; ``--check`` reruns into a temporary folder and compares.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from evidence import compare, part2, part3, part5
from evidence.record import environment

PARTS = {"part2": part2.run, "part3": part3.run, "part5": part5.run}
DEFAULT_OUT = Path("results") / "evidence"
DEFAULT_THREADS = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evidence", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=[[], *PARTS], metavar="PART",
                        help=f"only these parts ({', '.join(PARTS)}); default: all")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads (default: {DEFAULT_THREADS}); recorded in every file")
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads, for testing the pipeline (numbers are meaningless)")
    parser.add_argument("--check", action="store_true",
                        help="rerun into a temporary folder and compare with the files in --out")
    return parser


def produce(out_dir: Path, parts: Sequence[str], threads: int, quick: bool) -> Dict[str, str]:
    """Run the given parts into ``out_dir``; return ``{file name: description}``."""
    torch.set_num_threads(threads)
    env = environment(torch.get_num_threads(), quick)
    written: Dict[str, str] = {}
    for name in parts:
        started = time.perf_counter()
        files = PARTS[name](out_dir, env, quick)
        written.update(files)
        print(f"{name}: {len(files)} file(s) in {time.perf_counter() - started:.0f} s: "
              f"{', '.join(sorted(files))}", flush=True)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        print(f"error: --threads must be a positive integer, got {args.threads}", file=sys.stderr)
        return 2
    parts = args.parts or list(PARTS)
    started = time.perf_counter()
    if not args.check:
        produce(args.out, parts, args.threads, args.quick)
        print(f"wrote {args.out}/ in {time.perf_counter() - started:.0f} s")
        return 0
    with tempfile.TemporaryDirectory(prefix="hw2-evidence-") as tmp:
        written = produce(Path(tmp), parts, args.threads, args.quick)
        problems = compare.compare_folders(Path(tmp), args.out, sorted(written))
    for line in problems:
        print(line)
    verdict = "differs from" if problems else "reproduces"
    print(f"rerun {verdict} {args.out}/ ({len(written)} file(s), "
          f"{time.perf_counter() - started:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
