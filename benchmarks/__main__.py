"""Run every benchmark and print one table of ratios: ``python -m benchmarks`` (``make bench``).

Each row measures our implementation and the plain alternative side by side in the same run
(interleaved repetitions, medians), so the ratio is meaningful even on a noisy shared machine.
Rows that count page faults, or that must start from a fresh allocator, run their contenders in
child processes of this run.
"""
import argparse
import os
import platform
import time

import torch

from benchmarks import (bench_data, bench_end_to_end, bench_layers, bench_memory, bench_optimizers,
                        bench_run_exp, bench_trainer)
from benchmarks.timing import print_table

SUITES = {
    "layers": bench_layers.run,
    "optimizers": bench_optimizers.run,
    "trainer": bench_trainer.run,
    "data": bench_data.run,
    "run-exp": bench_run_exp.run,
    "memory": bench_memory.run,
    "end-to-end": bench_end_to_end.run,
}


def machine_description() -> str:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {device}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", choices=[[], *SUITES], metavar="SUITE",
                        help=f"run only these suites ({', '.join(SUITES)})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for name, run in SUITES.items():
        if args.only and name not in args.only:
            continue
        print(f"... {name}", flush=True)
        rows.extend(run())
    print()
    print_table(rows, f"Benchmarks on {machine_description()}")
    with_goals = [r for r in rows if r.met is not None]  # the others are shown for information
    met = sum(r.met for r in with_goals)
    print(f"\n{met}/{len(with_goals)} goals met in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
