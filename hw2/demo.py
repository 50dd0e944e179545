"""End-to-end demo: the experiments command line on real handwritten digits, offline.

``python -m hw2.demo`` (or ``make demo``) does what a user of the Part 5 command line does:

1. ``python -m hw2.experiments run-exp -n demo --dataset digits -K 16 32 -L 2 -P 2 -H 64 ...``
   (the arguments of :func:`demo_config`, written out by the configuration itself)
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

from hw2 import cli  # noqa: E402
from hw2.config import ExperimentConfig  # noqa: E402
from hw2.results import load_experiment  # noqa: E402

RUN_NAME = "demo"


def demo_config(out_dir: Path, epochs: int, seed: int) -> ExperimentConfig:
    """The demo's training run: a small CNN on scikit-learn's digits, whole epochs."""
    return ExperimentConfig(RUN_NAME, dataset="digits", filters_per_layer=(16, 32),
                            layers_per_block=2, pool_every=2, hidden_dims=(64,), bs_train=64,
                            bs_test=360, batches=None, epochs=epochs, early_stopping=4, lr=3e-3,
                            reg=1e-4, seed=seed, out_dir=str(out_dir))


def run_exp_argv(out_dir: Path, epochs: int, seed: int) -> List[str]:
    """The ``run-exp`` arguments of the demo's training run (:func:`demo_config`)."""
    return ["run-exp", *demo_config(out_dir, epochs, seed).to_argv()]


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
        status = cli.main(argv)
        if status:
            raise SystemExit(status)
    result_file = out_dir / demo_config(out_dir, epochs, seed).filename
    cfg, fit = load_experiment(result_file)
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
