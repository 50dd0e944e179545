"""End-to-end demo: the experiments command line on real handwritten digits, offline.

``python -m hw2.demo`` (or ``make demo``) does what a user of the Part 5 command line does:

1. ``python -m hw2.experiments run-exp -n demo --dataset digits -K 16 32 -L 2 -P 2 -H 64 ...``
   trains a small CNN on scikit-learn's 8x8 digits (real data that ships with scikit-learn)
   and writes ``demo-output/demo_L2_K16-32.json``;
2. ``python -m hw2.experiments summarize demo-output --plots demo-output`` prints the result
   table and writes the loss/accuracy curves to ``demo-output/demo.png``.

Both steps run the command line's own ``main`` in this process, exactly as the commands would.
"""
import argparse
import shlex
import sys
from pathlib import Path
from typing import List

import matplotlib

matplotlib.use("Agg")

from hw2 import experiments  # noqa: E402

RUN_NAME = "demo"


def run_exp_argv(out_dir: Path, epochs: int, seed: int) -> List[str]:
    """The ``run-exp`` arguments of the demo's training run."""
    return ["run-exp", "-n", RUN_NAME, "--dataset", "digits", "-K", "16", "32", "-L", "2",
            "-P", "2", "-H", "64", "--bs-train", "64", "--bs-test", "360", "--batches", "all",
            "--epochs", str(epochs), "--early-stopping", "4", "--lr", "3e-3", "--reg", "1e-4",
            "-s", str(seed), "-o", str(out_dir)]


def run(out_dir: Path = Path("demo-output"), epochs: int = 10, seed: int = 42):
    """Train the demo CNN through the command line, then summarise and plot it.

    :param out_dir: Where the result file and the plot go.
    :param epochs: Maximal number of epochs.
    :param seed: Random seed of the run.
    :return: ``(config, fit_result)`` of the run, read back from its result file.
    :raises SystemExit: If the command line reports an error (with its exit status).
    """
    out_dir = Path(out_dir)
    steps = [run_exp_argv(out_dir, epochs, seed),
             ["summarize", str(out_dir), "--plots", str(out_dir),
              "--pattern", f"{RUN_NAME}_*.json"]]
    for argv in steps:
        print(f"\n$ python -m hw2.experiments {shlex.join(argv)}\n", flush=True)
        status = experiments.main(argv)
        if status:
            raise SystemExit(status)
    result_file = out_dir / experiments.result_filename(RUN_NAME, [16, 32], 2)
    cfg, fit = experiments.load_experiment(result_file)
    print(f"\nBest test accuracy on digits: {max(fit.test_acc):.1f}% (chance: 10%) after "
          f"{fit.num_epochs} epochs in {cfg['wall_time_s']:.0f}s. "
          f"Wrote {result_file} and {out_dir / (RUN_NAME + '.png')}")
    return cfg, fit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw2.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="maximal epochs (10)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (42)")
    parser.add_argument("--out-dir", type=Path, default=Path("demo-output"),
                        help="output folder (demo-output)")
    args = parser.parse_args(argv)
    run(args.out_dir, args.epochs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
