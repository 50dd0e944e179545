"""``ClassifierTrainer.train_epoch`` vs. a bare PyTorch training loop on the same model and data.

Each row trains one model with one optimizer on fixed batches, in turns: an epoch of the trainer,
then an epoch of the bare loop, and so on (the medians of the rounds are compared). Both sides
thus run the very same tensors; two deep copies of a model can differ by several percent in
speed on their own (where the allocator placed their weights), more than the effect measured
here. The rows run on one torch thread: the loop's own cost is Python work of microseconds per
batch, which intra-op threading of tiny tensors would drown in noise.

The trainer runs with its progress bar on, as students use it, and counts correct predictions
with the classifier's own decision rule (``model.classify_scores``: a softmax, then the rule of
the class, e.g. a threshold), as the course's trainer does. The rows:

* a small CNN, against the loop everyone writes (forward, loss, backward, step, ``loss.item()``
  and the arg-max of the scores);
* a small MLP (768-256-10, batches of 64), where per-batch work weighs most, against that loop
  counting with ``classify_scores`` as the trainer does: the cost of the loop itself, its
  checks, bookkeeping and bar. Goal of both: at most 1.05x the bare loop;
* for information, the MLP against the arg-max loop, and the time ``classify_scores`` takes
  beside the arg-max on the MLP's scores: the gap between the two MLP rows is that decision
  rule (a softmax over the 10 scores, then the arg-max), work the arg-max loop does not do.
"""
import contextlib
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


def bare_train_epoch_classify(model, loss_fn, optimizer, batches):
    """:func:`~benchmarks.timing.bare_train_epoch`, counting correct predictions with the
    classifier's own decision rule (``model.classify_scores``) instead of the arg-max."""
    return bare_train_epoch(model, loss_fn, optimizer, batches, predict=model.classify_scores)


def _compare(model: nn.Module, batches, repeats: int, what: str, bare=bare_train_epoch) -> Row:
    """Median epoch time of ``ClassifierTrainer.train_epoch`` vs ``bare`` on one model."""
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device="cpu")

    def with_trainer():
        with contextlib.redirect_stdout(io.StringIO()):  # the bar is drawn, just not shown
            trainer.train_epoch(batches)

    def bare_loop():
        return bare(model, loss_fn, optimizer, batches)

    t_trainer, t_bare = interleaved_medians([with_trainer, bare_loop], repeats=repeats, warmup=2)
    return Row(f"ClassifierTrainer.train_epoch vs {what}", t_trainer, t_bare, "s/epoch",
               f"<= {GOAL}", t_trainer / t_bare <= GOAL)


def _decision_rule_row(model: nn.Module, batch_size: int, repeats: int) -> Row:
    """Time per batch of ``model.classify_scores`` vs the arg-max, on one batch of scores."""
    x, y = torch.randn(batch_size, 768), torch.randint(0, 10, (batch_size,))
    scores = model(x).detach()
    calls = 1000

    def rule():
        for _ in range(calls):
            int((model.classify_scores(scores) == y).sum())

    def arg_max():
        for _ in range(calls):
            int((scores.argmax(dim=1) == y).sum())

    t_rule, t_max = interleaved_medians([rule, arg_max], repeats=repeats, warmup=1)
    return Row(f"classify_scores vs arg-max, counting correct ({batch_size}x10 scores)",
               t_rule / calls * 1e6, t_max / calls * 1e6, "us/batch", "(info)", None)


def run(n: int = 2048, batch_size: int = 64, repeats: int = 9, mlp_repeats: int = 31):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ds_train, _ = make_synthetic(n_train=n, n_test=10)
        images = list(TensorLoader(*dataset_tensors(ds_train), batch_size, shuffle=False))
        cnn = ArgMaxClassifier(CNN((3, 32, 32), 10, channels=[16, 32], pool_every=1,
                                   hidden_dims=[64]))
        # A small, fast MLP (768-256-10), where the loop's own per-batch work weighs most.
        flat = [(torch.randn(batch_size, 768), torch.randint(0, 10, (batch_size,)))
                for _ in range(4 * n // batch_size)]
        mlp = ArgMaxClassifier(MLP(768, [256, 10], ["relu", "none"]))
        mlp_note = f"MLP 768-256-10, batches of {batch_size}"
        rows = [
            _compare(cnn, images, repeats, f"bare loop (CNN, {n} images)"),
            _compare(mlp, flat, mlp_repeats, f"bare loop with classify_scores ({mlp_note})",
                     bare=bare_train_epoch_classify),
        ]
        arg_max = _compare(mlp, flat, mlp_repeats, f"arg-max bare loop ({mlp_note})")
        rows.append(arg_max._replace(goal="(info)", met=None))
        rows.append(_decision_rule_row(mlp, batch_size, repeats))
        return rows
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    from benchmarks.timing import print_table
    print_table(run(), "trainer overhead")
