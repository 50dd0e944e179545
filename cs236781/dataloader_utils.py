"""Small helpers for working with data loaders."""
from typing import Tuple

import torch
from torch.utils.data import DataLoader


def flatten(dataloader: DataLoader) -> Tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every batch of a data loader into two tensors.

    :param dataloader: Yields ``(x, y)`` batches, ``x: (B, *S)``, ``y: (B,)``.
    :return: ``(x, y)`` with ``x: (N, *S)`` and ``y: (N,)``, N being the total sample count.
    :raises ValueError: If the loader yields no batches.
    """
    xs, ys = [], []
    for x, y in dataloader:
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("flatten: the data loader yielded no batches (expected at least one)")
    return torch.cat(xs), torch.cat(ys)
