"""Typed result records produced by the trainers.

A training run reports at three granularities, each a ``NamedTuple`` so that results are
immutable, unpack like tuples and convert to plain dicts with ``._asdict()`` (for JSON).
"""
from typing import List, NamedTuple


class BatchResult(NamedTuple):
    """The outcome of one batch.

    loss: the batch's mean loss (a Python float).
    num_correct: how many samples of the batch were classified correctly.
    """

    loss: float
    num_correct: int


class EpochResult(NamedTuple):
    """The outcome of one pass over a data set.

    losses: the loss of every batch, in order.
    accuracy: percentage (0-100) of correctly classified samples over the epoch.
    """

    losses: List[float]
    accuracy: float


class FitResult(NamedTuple):
    """The outcome of training over several epochs.

    num_epochs: epochs actually run (fewer than requested when stopped early).
    train_loss, test_loss: per-batch losses of all epochs, concatenated.
    train_acc, test_acc: per-epoch accuracies in percent.
    """

    num_epochs: int
    train_loss: List[float]
    train_acc: List[float]
    test_loss: List[float]
    test_acc: List[float]
