"""One ``run-exp`` epoch end to end on the synthetic set: tensor data path vs. DataLoader path.

Both runs call :func:`hw2.experiments.cnn_experiment` with the same small CNN, seed, batches and
epoch count, differing only in ``loader`` ('tensor', the default, vs. 'torchvision', a
``DataLoader`` over the per-sample ``Dataset``). The time covers everything a user waits for:
data set construction, model building, one training epoch, evaluation and writing the result.
"""
import contextlib
import io
import tempfile

from benchmarks.timing import Row, interleaved_medians
from hw2.experiments import cnn_experiment

GOAL = 3.0


def run(repeats: int = 3, batches: int = 40):
    out = tempfile.mkdtemp(prefix="bench-run-exp-")

    def one(loader):
        def go():
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                cnn_experiment(f"bench_{loader}", out_dir=out, seed=0, dataset="synthetic",
                               loader=loader, bs_train=128, bs_test=256, batches=batches,
                               epochs=1, early_stopping=None, filters_per_layer=[32],
                               layers_per_block=1, pool_every=1, hidden_dims=[64],
                               verbose=False)
        return go

    t_tensor, t_plain = interleaved_medians([one("tensor"), one("torchvision")], repeats=repeats,
                                            warmup=1)
    return [Row(f"run-exp 1 epoch ({batches} batches of 128), synthetic: speed-up", t_plain / t_tensor,
                1.0, "x faster", f">= {GOAL:g}x", t_plain / t_tensor >= GOAL)]


if __name__ == "__main__":
    from benchmarks.timing import print_table
    print_table(run(), "run-exp end to end")
