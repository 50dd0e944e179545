"""A data path for experiments that keeps the whole data set in one tensor.

torchvision's ``Dataset``/``DataLoader`` path converts every image on its own in Python, which on
the course's 2-CPU jobs starves the GPU. :class:`TensorLoader` instead holds the data set once as
a uint8 (or float) tensor, on the GPU when there is one, and builds each batch by indexing with
a seeded permutation. Augmentation (random crop with zero padding and horizontal flips) and
normalisation run on the whole batch, on the device.

With augmentation off and the same seed, a ``TensorLoader`` yields exactly the batches of
``DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``.
"""
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def dataset_tensors(dataset) -> Tuple[Tensor, Tensor]:
    """Extract a whole image data set as tensors, without per-sample Python work.

    Understands :class:`hw2.datasets.ImageTensorDataset` and torchvision's CIFAR10, MNIST and
    FashionMNIST (their ``data``/``targets`` attributes).

    :return: ``images: (N, C, H, W)`` (uint8 in [0, 255], or float in [0, 1]) and
        ``targets: (N,)`` int64.
    :raises TypeError: For a data set without in-memory image tensors.
    """
    if hasattr(dataset, "images") and hasattr(dataset, "targets"):
        return dataset.images, torch.as_tensor(dataset.targets, dtype=torch.long)
    data = getattr(dataset, "data", None)
    targets = getattr(dataset, "targets", None)
    if data is None or targets is None:
        raise TypeError(f"expected a data set with in-memory images (.images or .data) and .targets, "
                        f"got {type(dataset).__name__}")
    images = torch.as_tensor(np.asarray(data))
    if images.dim() == 3:                       # MNIST-like: (N, H, W)
        images = images.unsqueeze(1)
    elif images.dim() == 4 and images.shape[-1] in (1, 3):  # CIFAR-like: (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    else:
        raise TypeError(f"expected image data of shape (N, H, W) or (N, H, W, C), got {tuple(images.shape)}")
    return images.contiguous(), torch.as_tensor(targets, dtype=torch.long)


class TensorLoader:
    """Batches of an in-memory image data set, drawn by indexing.

    :param images: ``(N, C, H, W)``, uint8 (scaled by 1/255) or float.
    :param targets: ``(N,)`` integer labels.
    :param batch_size: Samples per batch (the last batch may be smaller unless ``drop_last``).
    :param shuffle: Draw a fresh permutation every epoch.
    :param seed: Seed of the permutation and augmentation generator.
    :param device: Where the data set lives and batches are made (default: the images' device).
    :param augment: Random crop (padding ``crop_padding``) and horizontal flip, per sample.
    :param mean, std: Per-channel normalisation applied after scaling to [0, 1] (optional).
    :param channels_last: Return batches in ``torch.channels_last`` memory format.
    :raises TypeError: If ``images`` or ``targets`` is not a tensor.
    :raises ValueError: On mismatched shapes, non-integer labels, a non-positive batch size, a
        negative crop padding, or a ``mean``/``std`` of the wrong length, not finite, or (std)
        not positive.
    Each iteration yields ``(x: float32 (B, C, H, W), y: int64 (B,))`` on ``device``.
    """

    def __init__(self, images: Tensor, targets: Tensor, batch_size: int, shuffle: bool = False,
                 seed: Optional[int] = None, device=None, augment: bool = False,
                 crop_padding: int = 4, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, drop_last: bool = False,
                 channels_last: bool = False):
        for name, value in (("images", images), ("targets", targets)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if images.dim() != 4 or targets.dim() != 1 or len(images) != len(targets):
            raise ValueError(f"expected images (N, C, H, W) and targets (N,) of equal length, got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
        if targets.is_floating_point() and not bool((targets == targets.round()).all()):
            raise ValueError(f"targets must be integer class labels, got non-integer values of "
                             f"dtype {targets.dtype}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be a non-negative integer, got {crop_padding!r}")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.targets = targets.to(self.device, dtype=torch.long)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.crop_padding, self.channels_last = augment, crop_padding, channels_last
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(seed)
        self.dataset = self  # trainers report len(dl.dataset)
        channels = images.shape[1]
        self._mean = self._channel_stat(mean, channels, "mean")
        self._std = self._channel_stat(std, channels, "std")

    def _channel_stat(self, values, channels, name) -> Optional[Tensor]:
        if values is None:
            return None
        stat = torch.as_tensor(values, dtype=torch.float32, device=self.device).flatten()
        if stat.numel() not in (1, channels):
            raise ValueError(f"{name} must have 1 or {channels} values, got {stat.numel()}")
        if not bool(torch.isfinite(stat).all()):
            raise ValueError(f"{name} must be finite, got {stat.tolist()}")
        if name == "std" and not bool((stat > 0).all()):
            raise ValueError(f"std must be positive (it divides the images), got {stat.tolist()}")
        return stat.view(1, -1, 1, 1)

    def __len__(self) -> int:
        n = len(self.targets)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor]]:
        n = len(self.targets)
        # DataLoader draws one int64 "base seed" from its generator at the start of every epoch,
        # before its sampler's permutation; drawing it too keeps the two paths in step.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = (torch.randperm(n, generator=self.generator) if self.shuffle
                 else torch.arange(n)).to(self.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                continue
            yield self._make_batch(idx)
        if self.shuffle:
            # RandomSampler, once exhausted, draws one more (empty-sliced) permutation; mirror
            # it so that the next epoch's order agrees as well.
            torch.randperm(n, generator=self.generator)

    def _make_batch(self, idx: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.images.index_select(0, idx)  # far faster than images[idx] for 4-D tensors
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if self.augment:
            x = self._augment(x)
        if self._mean is not None:
            x = x.sub_(self._mean)
        if self._std is not None:
            x = x.div_(self._std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.targets.index_select(0, idx)

    def _augment(self, x: Tensor) -> Tensor:
        """Random crop after zero padding, and a random horizontal flip: (B, C, H, W) -> same."""
        b, _, h, w = x.shape
        p = self.crop_padding
        draws = torch.randint(0, 2 * p + 1, (b, 2), generator=self.generator).to(x.device)
        flips = (torch.rand(b, generator=self.generator) < 0.5).to(x.device)
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        rows = draws[:, :1] + torch.arange(h, device=x.device)            # (B, H)
        cols = draws[:, 1:] + torch.arange(w, device=x.device)            # (B, W)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return (f"TensorLoader(n={len(self.targets)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment}, device={self.device})")
