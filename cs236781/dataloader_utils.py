"""Small helpers for working with data loaders."""
from typing import List, Sequence, Tuple

import torch
from torch.utils.data import DataLoader


def flatten(dataloader: DataLoader) -> Tuple[torch.Tensor, ...]:
    """Concatenate every batch of a data loader, one tensor per position in the batch.

    A batch may be a bare tensor (treated as a 1-tuple), a tuple or list of tensors of any
    length, or a dict (its values taken in sorted-key order). With ``(x, y)`` batches of
    ``x: (B, *S)`` and ``y: (B,)`` the result is ``(x: (N, *S), y: (N,))``, N the total number
    of samples.

    :param dataloader: Any iterable of batches, usually a :class:`DataLoader`.
    :return: A tuple with one tensor per batch position, concatenated along dim 0.
    :raises TypeError: If a batch is of another type or holds something other than tensors.
    :raises ValueError: If the loader yields no batches, or batches of different lengths.
    """
    columns: List[List[torch.Tensor]] = []
    for index, batch in enumerate(dataloader):
        parts = _batch_parts(batch, index)
        if not columns:
            columns = [[] for _ in parts]
        elif len(parts) != len(columns):
            raise ValueError(f"flatten: batch {index} holds {len(parts)} tensors, but the earlier "
                             f"batches hold {len(columns)}")
        for column, part in zip(columns, parts):
            column.append(part)
    if not columns:
        raise ValueError("flatten: the data loader yielded no batches (expected at least one)")
    return tuple(torch.cat(column, dim=0) for column in columns)


def _batch_parts(batch, index: int) -> Sequence[torch.Tensor]:
    if torch.is_tensor(batch):
        parts = (batch,)
    elif isinstance(batch, dict):
        parts = tuple(batch[key] for key in sorted(batch))
    elif isinstance(batch, (tuple, list)):
        parts = tuple(batch)
    else:
        raise TypeError(f"flatten: batch {index} is a {type(batch).__name__}; expected a tensor, "
                        "a tuple or list of tensors, or a dict of tensors")
    for position, part in enumerate(parts):
        if not torch.is_tensor(part):
            raise TypeError(f"flatten: batch {index} holds a {type(part).__name__} at position "
                            f"{position}; expected only tensors")
    return parts
