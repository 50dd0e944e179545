"""Classifiers that wrap a score-producing model, and tools to inspect binary classifiers.

A :class:`Classifier` wraps any ``nn.Module`` mapping a batch of samples to raw class scores
``(N, C)``. It turns scores into probabilities with a softmax over the class dimension and
probabilities into integer labels with a decision rule that each subclass defines:

* :class:`BinaryClassifier` - the positive class wins when its probability reaches a threshold.
* :class:`ArgMaxClassifier` - the most probable class wins.

:func:`plot_decision_boundary_2d` draws the regions a classifier assigns to each class over a
2-D input plane, and :func:`select_roc_thresh` picks the threshold of a binary classifier whose
ROC point lies closest to the ideal corner (FPR=0, TPR=1).
"""
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from hw2.validation import check_bool, check_instance, check_int, check_real, check_tensor

# matplotlib and scikit-learn are imported where they are used: they take about a second to
# import, which every user of the classifiers (and the experiments' command line) would pay.

__all__ = ["Classifier", "BinaryClassifier", "ArgMaxClassifier", "plot_decision_boundary_2d",
           "select_roc_thresh"]

# A decision-boundary grid larger than this is almost certainly a mistake in ``dx``.
_MAX_GRID_POINTS = 4_000_000


class Classifier(nn.Module, ABC):
    """Wraps a model producing raw class scores and adds probabilities and predictions.

    Subclasses define the decision rule in :meth:`_classify`. ``num_classes`` (a class
    attribute) fixes the number of score columns the wrapped model must produce; ``None``
    accepts any number.
    """

    num_classes: Optional[int] = None

    def __init__(self, model: nn.Module):
        """
        :param model: Maps a batch ``x: (N, ...)`` to raw scores ``(N, C)``.
        :raises TypeError: If ``model`` is not an ``nn.Module``.
        """
        super().__init__()
        check_instance("model", model, nn.Module, "a torch.nn.Module")
        # ====== YOUR CODE: ======
        self.model = model
        self.softmax = nn.Softmax(dim=1)
        # ====== END YOUR CODE ======

    def forward(self, x: Tensor) -> Tensor:
        """Raw (unnormalised) class scores of the wrapped model.

        :param x: Input batch ``(N, ...)``.
        :return: Scores ``z: (N, C)``.
        :raises ValueError: If the model's output is not ``(N, C)``.
        """
        # ====== YOUR CODE: ======
        z = self.model(x)
        # ====== END YOUR CODE ======
        self._check_scores(z, rows=len(x), source="model output")
        return z

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities of a batch of samples.

        :param x: Input batch ``(N, ...)``.
        :return: ``(N, C)`` probabilities; every row sums to 1.
        """
        # ====== YOUR CODE: ======
        z = self.forward(x)
        # ====== END YOUR CODE ======
        return self.predict_proba_scores(z)

    def predict_proba_scores(self, z: Tensor) -> Tensor:
        """Class probabilities from raw scores (softmax over the class dimension).

        :param z: Raw scores ``(N, C)``.
        :return: ``(N, C)`` probabilities; every row sums to 1.
        """
        self._check_scores(z, source="z")
        # ====== YOUR CODE: ======
        return self.softmax(z)
        # ====== END YOUR CODE ======

    def classify(self, x: Tensor) -> Tensor:
        """Predicted labels of a batch of samples.

        :param x: Input batch ``(N, ...)``.
        :return: ``(N,)`` labels of dtype ``torch.int``.
        """
        return self._to_labels(self.predict_proba(x))

    def classify_scores(self, z: Tensor) -> Tensor:
        """Predicted labels from raw scores.

        :param z: Raw scores ``(N, C)``.
        :return: ``(N,)`` labels of dtype ``torch.int``.
        """
        return self._to_labels(self.predict_proba_scores(z))

    def _to_labels(self, y_proba: Tensor) -> Tensor:
        """Apply the decision rule and normalise the result to ``(N,)`` of ``torch.int``."""
        return self._classify(y_proba).reshape(-1).to(torch.int)

    @abstractmethod
    def _classify(self, y_proba: Tensor) -> Tensor:
        """The decision rule.

        :param y_proba: Probabilities ``(N, C)``.
        :return: ``(N,)`` integer labels.
        """

    def _check_scores(self, z, rows: Optional[int] = None, source: str = "z") -> None:
        """Raise unless ``z`` is a tensor of scores ``(N, C)``: ``rows`` of them when given,
        ``num_classes`` columns when the class fixes that."""
        name, shape = f"{type(self).__name__}: {source}", tuple(getattr(z, "shape", ()))
        check_tensor(name, z)
        if z.dim() != 2:
            raise ValueError(f"{name} must be 2-D scores of shape (N, C), got shape {shape}")
        if rows is not None and z.shape[0] != rows:
            raise ValueError(f"{name} must have one row per sample ({rows}), got shape {shape}")
        if self.num_classes is not None and z.shape[1] != self.num_classes:
            raise ValueError(f"{name} must have C={self.num_classes} columns, got shape {shape}")


class BinaryClassifier(Classifier):
    """Two-class classifier with an adjustable decision threshold.

    A sample is assigned ``positive_class`` when the probability of that class is at least
    ``threshold``; otherwise it is assigned the other class. The threshold may be changed
    after construction (``clf.threshold = 0.3``), e.g. to a value picked by
    :func:`select_roc_thresh`.
    """

    num_classes = 2

    def __init__(self, model: nn.Module, positive_class: int = 1, threshold: float = 0.5):
        """
        :param model: Maps ``x: (N, ...)`` to raw scores ``(N, 2)``.
        :param positive_class: Which class (0 or 1) is the positive one.
        :param threshold: Minimal probability of the positive class for predicting it.
        :raises ValueError: If ``positive_class`` is not 0 or 1 or ``threshold`` is not in
            [0, 1] (NaN and infinities included).
        :raises TypeError: If ``threshold`` is not a real number.
        """
        super().__init__(model)
        self.positive_class = check_int("positive_class", positive_class, 0, 1,
                                        expected="0 or 1")
        self.threshold = threshold

    @property
    def threshold(self) -> float:
        """Minimal positive-class probability for a positive prediction."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        self._threshold = check_real("threshold", value, 0.0, maximum=1.0, expected=(
            "a probability in [0, 1] (the positive class wins when its probability reaches it)"))

    def _classify(self, y_proba: Tensor) -> Tensor:
        # ====== YOUR CODE: ======
        is_positive = y_proba[:, self.positive_class] >= self._threshold
        negative_class = 1 - self.positive_class
        return torch.where(is_positive, self.positive_class, negative_class)
        # ====== END YOUR CODE ======


class ArgMaxClassifier(Classifier):
    """Multi-class classifier that predicts the class of highest probability."""

    def _classify(self, y_proba: Tensor) -> Tensor:
        # ====== YOUR CODE: ======
        return torch.argmax(y_proba, dim=1)
        # ====== END YOUR CODE ======


# ----------------------------------------------------------------------------------------------
# Inspection tools
# ----------------------------------------------------------------------------------------------


@contextmanager
def _evaluating(module: nn.Module):
    """Run a block in eval mode without gradients, then restore the module's mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _placement(module: nn.Module, dtype: torch.dtype = torch.float32):
    """``(device, dtype)`` of the module's first floating parameter (CPU and ``dtype`` when it
    has none): where and how a batch must be for the model."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), dtype


def _as_model_input(classifier: Classifier, x, func: str, in_dim: Optional[int] = None) -> Tensor:
    """Validate a batch ``x: (N, ...)`` (tensor or array) and move it to the model's device/dtype."""
    x = torch.as_tensor(x).detach()
    if x.dim() < 2 or x.shape[0] == 0 or (in_dim is not None and (x.dim() != 2 or x.shape[1] != in_dim)):
        expected = f"(N, {in_dim})" if in_dim is not None else "(N, ...)"
        raise ValueError(f"{func}: x must be a non-empty batch of shape {expected}, got {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=tuple(range(1, x.dim()))).sum())
        raise ValueError(f"{func}: x must hold finite values, got NaN or infinite entries in "
                         f"{bad} of its {x.shape[0]} samples")
    device, dtype = _placement(classifier, x.dtype if x.is_floating_point() else torch.float32)
    if not x.is_floating_point() and in_dim is None:
        dtype = x.dtype  # e.g. token ids: leave them to the model
    return x.to(device=device, dtype=dtype)


def _as_labels(y, n: int, func: str) -> np.ndarray:
    """Validate integer labels ``y: (n,)`` (tensor or array) and return them as an int64 array."""
    y = torch.as_tensor(y).detach().cpu()
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{func}: y must have shape ({n},) to match x, got {tuple(y.shape)}")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise ValueError(f"{func}: y must hold integer class labels, got non-integer values")
    if (y < 0).any():
        raise ValueError(f"{func}: y must hold non-negative class labels, got min {int(y.min())}")
    return y.to(torch.int64).numpy()


def plot_decision_boundary_2d(classifier: Classifier, x, y, dx: float = 0.1, ax=None, cmap=None):
    """Plot the class regions of a classifier over a 2-D plane, with the samples on top.

    The classifier is evaluated on a regular grid (spacing ``dx``) that covers the samples
    with a small margin; each grid cell is coloured by its predicted class and each sample
    by its true label, so misclassified samples stand out against the region they fall in.

    :param classifier: A :class:`Classifier` over 2-D inputs.
    :param x: Samples ``(N, 2)`` (tensor or array).
    :param y: True labels ``(N,)``.
    :param dx: Grid spacing, in input units.
    :param ax: Axes to draw on; a new figure is created when None.
    :param cmap: Colormap (name or object) for classes; default ``'bwr'``.
    :return: ``(fig, ax)``.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    func = "plot_decision_boundary_2d"
    check_instance(f"{func}: classifier", classifier, Classifier, "a hw2.classifier.Classifier")
    x = _as_model_input(classifier, x, func, in_dim=2)
    y = _as_labels(y, x.shape[0], func)
    dx = check_real(f"{func}: dx", dx, 0.0, strict=True, expected="a positive finite number")
    cmap = matplotlib.colormaps[cmap or "bwr"] if not isinstance(cmap, matplotlib.colors.Colormap) else cmap

    x = x.cpu().to(torch.float64).numpy()
    lo, hi = x.min(axis=0) - dx, x.max(axis=0) + dx  # the samples and a margin of dx
    counts = np.floor((hi - lo) / dx).astype(np.int64) + 2
    if int(np.prod(counts)) > _MAX_GRID_POINTS:
        raise ValueError(f"{func}: dx={dx} gives a {counts[0]}x{counts[1]} grid over the data; "
                         f"use a larger dx (at most {_MAX_GRID_POINTS} grid points)")
    # ====== YOUR CODE: ======
    axis1, axis2 = (lo[i] + dx * np.arange(counts[i]) for i in (0, 1))
    grid_x1, grid_x2 = np.meshgrid(axis1, axis2)
    grid = torch.from_numpy(np.stack([grid_x1.ravel(), grid_x2.ravel()], axis=1))
    with _evaluating(classifier):
        y_hat = classifier.classify(grid.to(*_placement(classifier)))
    y_grid = y_hat.cpu().numpy().reshape(grid_x1.shape)
    # ====== END YOUR CODE ======

    n_classes = int(max(y.max(), y_grid.max())) + 1
    levels = np.arange(n_classes + 1) - 0.5  # one band per class label
    fig, ax = plt.subplots(1, 1, figsize=(8, 6)) if ax is None else (ax.figure, ax)
    ax.contourf(grid_x1, grid_x2, y_grid, levels=levels, cmap=cmap, vmin=levels[0], vmax=levels[-1], alpha=0.3)
    points = ax.scatter(x[:, 0], x[:, 1], c=y, cmap=cmap, vmin=levels[0], vmax=levels[-1],
                        s=12, alpha=0.7, edgecolors="none")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=points.cmap(points.norm(c)),
                          label=f"class {c}") for c in range(n_classes)]
    ax.legend(handles=handles, loc="lower right")
    ax.set(xlabel="$x_1$", ylabel="$x_2$",
           title="Decision boundary (regions: predicted class, points: true class)")
    return fig, ax


def select_roc_thresh(classifier: BinaryClassifier, x, y, plot: bool = False, ax=None) -> float:
    """Pick the threshold whose ROC point is closest to the ideal point (FPR=0, TPR=1).

    Every distinct positive-class probability on the given samples is a candidate threshold
    (the full ROC curve, no point dropped). The returned value is always finite, so it can be
    assigned to :attr:`BinaryClassifier.threshold` directly.

    :param classifier: A two-class :class:`Classifier`; for a :class:`BinaryClassifier` its
        ``positive_class`` is the positive one, otherwise class 1.
    :param x: Samples ``(N, ...)`` (tensor or array).
    :param y: True labels ``(N,)`` in {0, 1}, both classes present.
    :param plot: Also plot the ROC curve and mark the chosen point.
    :param ax: Axes for the plot (a new figure when None); ignored unless ``plot``.
    :return: The selected threshold, a probability in [0, 1].
    """
    func = "select_roc_thresh"
    check_instance(f"{func}: classifier", classifier, Classifier, "a hw2.classifier.Classifier")
    plot = check_bool(f"{func}: plot", plot)
    x = _as_model_input(classifier, x, func)
    y = _as_labels(y, x.shape[0], func)
    if not set(np.unique(y).tolist()) == {0, 1}:
        raise ValueError(f"{func}: y must contain both binary labels 0 and 1, got labels {np.unique(y).tolist()}")
    positive_class = getattr(classifier, "positive_class", 1)

    with _evaluating(classifier):
        y_proba = classifier.predict_proba(x).cpu()
    if y_proba.shape[1] != 2:
        raise ValueError(f"{func}: classifier must output 2 class scores, got {y_proba.shape[1]}")
    pos_proba = y_proba[:, positive_class].to(torch.float64).numpy()
    from sklearn.metrics import roc_curve

    # ====== YOUR CODE: ======
    fpr, tpr, thresholds = roc_curve(y, pos_proba, pos_label=positive_class, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # sklearn's first threshold is +inf (predict nothing positive)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    best = int(np.argmin(np.hypot(fpr, 1.0 - tpr)))  # distance to the corner (0, 1)
    selected = float(thresholds[best])
    # ====== END YOUR CODE ======

    if plot:
        _plot_roc(fpr, tpr, best, selected, ax)
    return selected


def _plot_roc(fpr: np.ndarray, tpr: np.ndarray, best: int, thresh: float, ax=None):
    """Draw a ROC curve with the chance diagonal and the selected operating point."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 1, figsize=(7, 6))
    ax.plot(np.r_[0.0, fpr], np.r_[0.0, tpr], color="tab:blue", label="ROC curve")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.scatter([fpr[best]], [tpr[best]], s=80, color="tab:red", zorder=3,
               label=f"selected: thresh={thresh:.3f} (FPR={fpr[best]:.3f}, TPR={tpr[best]:.3f})")
    ax.set(xlabel="False positive rate (FPR)", ylabel="True positive rate (TPR = 1 - FNR)",
           title="ROC curve", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.legend(loc="lower right")
    return ax
