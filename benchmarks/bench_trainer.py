"""``ClassifierTrainer.train_epoch`` vs. a bare PyTorch training loop on the same model and data.

Both train the same model (identical initial weights, optimizer and batches) for one epoch,
once for a small CNN and once for a small MLP (768-256-10, batches of 64), where per-batch
bookkeeping weighs most (its epochs are short, so it is repeated more often); the
trainer runs with its progress bar on, as students use it. Goal: at most 1.05x the bare loop's
time, i.e. the bookkeeping and the bar cost nothing measurable.
"""
import contextlib
import copy
import io

import torch
from torch import nn

from benchmarks.timing import Row, bare_train_epoch, interleaved_medians
from hw2.classifier import ArgMaxClassifier
from hw2.cnn import CNN
from hw2.datasets import make_synthetic
from hw2.mlp import MLP
from hw2.tensor_data import TensorLoader, dataset_tensors
from hw2.training import ClassifierTrainer

GOAL = 1.05


def _compare(name: str, base: nn.Module, batches, repeats: int, unit_note: str) -> Row:
    """Median epoch time of ``ClassifierTrainer.train_epoch`` vs a bare loop on a copy."""
    model_a, model_b = copy.deepcopy(base), copy.deepcopy(base)
    loss_fn = nn.CrossEntropyLoss()
    opt_a = torch.optim.SGD(model_a.parameters(), lr=1e-2, momentum=0.9)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=1e-2, momentum=0.9)
    trainer = ClassifierTrainer(model_a, loss_fn, opt_a, device="cpu")

    def with_trainer():
        with contextlib.redirect_stdout(io.StringIO()):  # the bar is drawn, just not shown
            trainer.train_epoch(batches)

    def bare_loop():
        return bare_train_epoch(model_b, loss_fn, opt_b, batches)

    t_trainer, t_bare = interleaved_medians([with_trainer, bare_loop], repeats=repeats, warmup=1)
    return Row(f"ClassifierTrainer.train_epoch vs bare loop ({unit_note})", t_trainer, t_bare,
               "s/epoch", f"<= {GOAL}", t_trainer / t_bare <= GOAL)


def run(n: int = 2048, batch_size: int = 64, repeats: int = 5, mlp_repeats: int = 21):
    torch.manual_seed(0)
    ds_train, _ = make_synthetic(n_train=n, n_test=10)
    loader = TensorLoader(*dataset_tensors(ds_train), batch_size, shuffle=False)
    cnn = ArgMaxClassifier(CNN((3, 32, 32), 10, channels=[16, 32], pool_every=1, hidden_dims=[64]))
    # A small, fast MLP (768-256-10), where the loop's own per-batch work weighs most.
    flat = [(torch.randn(batch_size, 768), torch.randint(0, 10, (batch_size,)))
            for _ in range(4 * n // batch_size)]
    mlp = ArgMaxClassifier(MLP(768, [256, 10], ["relu", "none"]))
    return [_compare("cnn", cnn, list(loader), repeats, f"{n} imgs, CNN"),
            _compare("mlp", mlp, flat, mlp_repeats, f"{4 * n} samples, MLP 768-256-10")]


if __name__ == "__main__":
    from benchmarks.timing import print_table
    print_table(run(), "trainer overhead")
