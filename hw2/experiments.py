"""Experiments of the assignment.

* Part 3: :func:`mlp_experiment` trains one MLP binary classifier of a given depth and width,
  tunes its decision threshold on validation data and reports its accuracies.
"""
from numbers import Integral
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader

from hw2.classifier import BinaryClassifier, select_roc_thresh
from hw2.mlp import MLP
from hw2.training import ClassifierTrainer

__all__ = ["MLP_EXPERIMENT_HP", "mlp_experiment"]

# ==============================================================================================
# Part 3: MLP depth/width experiment
# ==============================================================================================

#: Every hyperparameter of :func:`mlp_experiment` except depth, width and epochs. Chosen on the
#: Part 3 moons data: tanh keeps narrow, deep networks trainable (ReLU units of width 2 die and
#: leave a constant classifier), and Adam with a little weight decay converges within 10 epochs.
MLP_EXPERIMENT_HP: Dict[str, Union[str, float]] = dict(
    activation="tanh",
    lr=5e-3,
    weight_decay=1e-3,
)


def mlp_experiment(
    depth: int,
    width: int,
    dl_train: DataLoader,
    dl_valid: DataLoader,
    dl_test: DataLoader,
    n_epochs: int,
    device: Optional[Union[str, torch.device]] = None,
) -> Tuple[BinaryClassifier, float, float, float]:
    """Train an MLP binary classifier, select its threshold on validation data, evaluate it.

    The model is ``depth`` hidden layers of ``width`` units (nonlinearity and optimizer from
    :data:`MLP_EXPERIMENT_HP`) and a 2-unit output layer of raw scores, wrapped in a
    :class:`~hw2.classifier.BinaryClassifier`. It is trained with cross-entropy on
    ``dl_train`` (``dl_valid`` is monitored); then the threshold whose ROC point on the
    validation set is closest to (FPR=0, TPR=1) is set on the model, and the accuracies with
    that threshold are reported.

    :param depth: Number of hidden layers (>= 1).
    :param width: Units per hidden layer (>= 1).
    :param dl_train: Training batches ``(x: (B, D), y: (B,))`` with labels in {0, 1}.
    :param dl_valid: Validation batches, used for monitoring and threshold selection.
    :param dl_test: Test batches, used only for the final accuracy.
    :param n_epochs: Number of training epochs (>= 1).
    :param device: Where to train; None lets the trainer decide.
    :return: ``(model, thresh, valid_acc, test_acc)``: the trained classifier (with
        ``model.threshold == thresh``), the selected threshold, and the validation and test
        accuracies in percent.
    :raises ValueError: If depth, width or n_epochs is not a positive integer.
    """
    for name, value in (("depth", depth), ("width", width), ("n_epochs", n_epochs)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"mlp_experiment: {name} must be a positive integer, got {value!r}")

    in_dim = _feature_dim(dl_train)
    hp = MLP_EXPERIMENT_HP
    model = BinaryClassifier(
        model=MLP(
            in_dim=in_dim,
            dims=[*[int(width)] * int(depth), 2],
            nonlins=[*[hp["activation"]] * int(depth), "none"],
        ),
        threshold=0.5,
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device=device)
    trainer.fit(dl_train, dl_valid, num_epochs=int(n_epochs), print_every=0, verbose=False)

    model.eval()
    x_valid, y_valid = _all_samples(dl_valid)
    thresh = select_roc_thresh(model, x_valid, y_valid)
    model.threshold = thresh
    valid_acc = _accuracy(model, x_valid, y_valid)
    test_acc = _accuracy(model, *_all_samples(dl_test))
    return model, thresh, valid_acc, test_acc


def _feature_dim(dl: DataLoader) -> int:
    """Number of input features ``D`` of a loader over ``(x: (D,), y)`` items (reads one item)."""
    x, _ = dl.dataset[0]
    x = torch.as_tensor(x)
    if x.dim() != 1:
        raise ValueError(f"mlp_experiment: samples must be feature vectors (D,), got shape {tuple(x.shape)}")
    return int(x.shape[0])


def _all_samples(dl: DataLoader) -> Tuple[Tensor, Tensor]:
    """Every sample of a loader's dataset in order, ``(x: (N, D), y: (N,))``.

    Reads the dataset sequentially rather than iterating ``dl`` itself, so a shuffling loader
    does not consume random numbers here.
    """
    ordered = DataLoader(dl.dataset, batch_size=dl.batch_size or 256, shuffle=False)
    xs, ys = zip(*ordered)
    return torch.cat(xs), torch.cat(ys)


def _accuracy(model: BinaryClassifier, x: Tensor, y: Tensor) -> float:
    """Percentage of samples ``x: (N, D)`` whose predicted label equals ``y: (N,)``."""
    device = next(model.parameters()).device
    with torch.no_grad():
        y_hat = model.classify(x.to(device)).cpu()
    return 100.0 * (y_hat.long() == y.long()).double().mean().item()
