"""Plotting helpers shared by the course notebooks."""
import itertools
import math
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
import torch
from torch.utils.data import Dataset

from hw2.validation import check_instance, check_int

from .train_results import FitResult


def tensors_as_images(tensors, nrows: int = 1, figsize=(8, 8), titles: Optional[Sequence[str]] = None,
                      wspace: float = 0.1, hspace: float = 0.2, cmap=None):
    """Show a sequence of image tensors in a grid.

    :param tensors: Sequence of tensors, each ``(C, H, W)`` with C in {1, 3} or ``(H, W)``.
    :param nrows: Number of grid rows; columns are derived from the count.
    :param titles: Optional title for each image.
    :param cmap: Colormap for single-channel images (default: grey).
    :return: ``(fig, axes)`` where ``axes`` is a flat array of the grid's axes.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("tensors_as_images: expected at least one image tensor, got none")
    nrows = check_int("tensors_as_images: nrows", nrows, 1)
    titles = list(titles) if titles else []
    ncols = math.ceil(len(tensors) / nrows)
    fig, axes = plt.subplots(nrows=nrows, ncols=ncols, figsize=figsize, squeeze=False,
                             gridspec_kw=dict(wspace=wspace, hspace=hspace),
                             subplot_kw=dict(yticks=[], xticks=[]))
    axes = axes.reshape(-1)
    for i, ax in enumerate(axes):
        if i >= len(tensors):
            ax.axis("off")
            continue
        image = _to_displayable(tensors[i])
        ax.imshow(image, cmap=cmap or ("gray" if image.ndim == 2 else None))
        if i < len(titles):
            ax.set_title(titles[i])
    return fig, axes


def _to_displayable(tensor) -> np.ndarray:
    """(C, H, W) or (H, W) tensor -> (H, W) or (H, W, 3) array scaled to [0, 1]."""
    image = torch.as_tensor(tensor).detach().cpu().to(torch.float32)
    if image.dim() == 3:
        if image.shape[0] not in (1, 3):
            raise ValueError(f"expected an image of shape (C, H, W) with C in (1, 3), got {tuple(image.shape)}")
        image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    elif image.dim() != 2:
        raise ValueError(f"expected an image tensor of shape (C, H, W) or (H, W), got {tuple(image.shape)}")
    lo, hi = image.min(), image.max()
    if lo < 0 or hi > 1:
        image = (image - lo) / (hi - lo) if hi > lo else torch.zeros_like(image)
    return image.numpy()


def dataset_first_n(dataset: Dataset, n: int, show_classes: bool = False,
                    class_labels: Optional[Sequence[str]] = None, random_start: bool = True,
                    **kw):
    """Plot the first ``n`` images of a data set of ``(image, label)`` pairs.

    :param dataset: Items are ``(x: (C, H, W), y: int)``.
    :param n: How many images to show.
    :param show_classes: Title each image with its label (or its class name).
    :param class_labels: Names indexed by label, used when ``show_classes``.
    :param random_start: Start at a random index (the course's default) instead of 0.
    :param kw: Passed on to :func:`tensors_as_images`.
    :return: ``(fig, axes)``.
    """
    n = check_int("dataset_first_n: n", n, 1, len(dataset))
    start = np.random.randint(0, len(dataset) - n + 1) if random_start else 0
    images, titles = [], []
    for i in range(start, start + n):
        x, y = dataset[i]
        images.append(x)
        label = int(y)
        titles.append(class_labels[label] if class_labels is not None else str(label))
    return tensors_as_images(images, titles=titles if show_classes else None, **kw)


def plot_fit(fit_res: FitResult, fig=None, log_loss: bool = False, legend: Optional[str] = None,
             train_test_overlay: bool = False):
    """Plot the loss and accuracy curves of a :class:`FitResult`.

    Without overlay the grid is 2x2: rows are train/test, columns loss/accuracy. With
    ``train_test_overlay`` it is 1x2 and train and test share each plot. Passing the figure
    of an earlier call adds this result's curves to it, labelled by ``legend``, so several
    runs can be compared on one figure.

    Every panel is drawn against epochs (whole-number ticks); losses recorded per batch are
    spread over their epoch (:func:`epoch_positions`). A new figure uses constrained layout.

    :param fit_res: The result to plot (losses per batch or per epoch, accuracies per epoch).
    :param fig: A figure returned by an earlier call, or None for a new one.
    :param log_loss: Plot losses on a log scale.
    :param legend: Label of this result's curves.
    :param train_test_overlay: Overlay train and test in the same axes.
    :return: ``(fig, axes)``, ``axes`` a flat array.
    """
    check_instance("plot_fit: fit_res", fit_res, FitResult, "a FitResult")
    if fig is None:
        nrows = 1 if train_test_overlay else 2
        fig, axes = plt.subplots(nrows=nrows, ncols=2, figsize=(16, 5 * nrows), squeeze=False,
                                 layout="constrained")  # titles never run into the labels above
        axes = axes.reshape(-1)
    else:
        axes = np.array(fig.axes)
    for ax in axes:
        for line in ax.lines:
            if line.get_label() == legend:
                line.set_color("lightgrey")  # an older run under the same label fades out
    splits, metrics = ("train", "test"), ("loss", "acc")
    for idx, (split, metric) in enumerate(itertools.product(splits, metrics)):
        ax = axes[idx % 2] if train_test_overlay else axes[idx]
        data = getattr(fit_res, f"{split}_{metric}")
        label = split if train_test_overlay else legend
        x, xlabel = epoch_positions(len(data), fit_res.num_epochs)
        ax.plot(x, data, label=label)
        ax.set_title(metric if train_test_overlay else f"{split}_{metric}")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Loss" if metric == "loss" else "Accuracy (%)")
        if metric == "loss" and log_loss:
            ax.set_yscale("log")
        if legend or train_test_overlay:
            ax.legend()
        ax.grid(True)
    return fig, axes


def epoch_positions(count: int, num_epochs: int):
    """Where ``count`` recorded values go on an axis of epochs, and the axis' label.

    One value per epoch sits at 1, 2, ..., E. Several per epoch (one per batch) are spread
    evenly, batch ``b`` of ``B`` of epoch ``e`` at ``e - 1 + b / B``, so losses per batch and
    accuracies per epoch share the axis. A count that is not a multiple of the epochs is
    plotted against the batch number.

    :return: ``(x, label)``: positions ``(count,)`` and the axis label.
    """
    if num_epochs > 0 and count % num_epochs == 0 and count:
        per_epoch = count // num_epochs
        x = np.arange(1, count + 1) / per_epoch
        return x, "Epoch" if per_epoch == 1 else f"Epoch ({per_epoch} batches each)"
    return np.arange(1, count + 1), "Batch #"
