"""A data path for experiments that keeps the whole data set in one tensor.

torchvision's ``Dataset``/``DataLoader`` path converts every image on its own in Python, which on
the course's 2-CPU jobs starves the GPU. :class:`TensorLoader` instead holds the data set once as
a uint8 (or float) tensor, on the GPU when there is one, and builds each batch by indexing with
a seeded permutation. Augmentation (random crop with zero padding and horizontal flips) and
normalisation run on the whole batch, on the device.

With augmentation off and the same seed, a ``TensorLoader`` yields exactly the batches of
``DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``.
Every batch is made in fresh tensors. ``run-exp`` has glibc keep freed memory in the process
(:func:`hw2.allocator.retain_freed_memory`), so the next batch reuses it with few page faults
(``benchmarks/bench_memory.py`` counts them).
"""
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from hw2.validation import check_bool, check_device, check_int, check_tensor

__all__ = ["dataset_tensors", "TensorLoader"]


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


def _check_images(images: Tensor) -> Tensor:
    """The images as uint8 or floating point; integers of 0..255 become uint8.

    :raises TypeError: For a dtype that is neither integer nor floating point (bool, complex).
    :raises ValueError: For integer images with values outside 0..255.
    """
    if images.dtype == torch.uint8 or images.is_floating_point():
        return images
    if images.dtype == torch.bool or images.is_complex():
        raise TypeError(f"images must be uint8, another integer dtype holding 0..255, or "
                        f"floating point, got dtype {images.dtype}")
    if images.numel():
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(f"integer images are scaled as uint8 (divided by 255), so they must "
                             f"hold values in 0..255; got dtype {images.dtype} with values in "
                             f"{low}..{high} (convert them to float in [0, 1] instead)")
    return images.to(torch.uint8)


class TensorLoader:
    """Batches of an in-memory image data set, drawn by indexing.

    :param images: ``(N, C, H, W)``: uint8 (scaled by 1/255), another integer dtype holding
        0..255 (scaled alike; stored as uint8), or floating point (used as is).
    :param targets: ``(N,)`` integer labels.
    :param batch_size: Samples per batch (the last batch may be smaller unless ``drop_last``).
    :param shuffle: Draw a fresh permutation every epoch.
    :param seed: Seed of the permutation and augmentation generator (an integer in
        [0, 2**64)).
    :param device: Where the data set lives and batches are made (default: the images' device).
    :param augment: Random crop (padding ``crop_padding``) and horizontal flip, per sample.
    :param mean, std: Per-channel normalisation applied after scaling to [0, 1] (optional).
    :param channels_last: Return batches in ``torch.channels_last`` memory format.
    :raises TypeError: If ``images`` or ``targets`` is not a tensor, an integer argument is
        not an integer (numpy integers are accepted), a flag is not a bool, or the images are
        bool or complex.
    :raises ValueError: On mismatched shapes, non-integer labels, a non-positive batch size, a
        negative crop padding, integer images outside 0..255, or a ``mean``/``std`` of the wrong
        length, not finite, or (std) not positive.

    Each iteration yields ``(x: float32 (B, C, H, W), y: int64 (B,))`` on ``device``, fresh
    tensors every batch (a batch may be kept as long as needed).
    """

    def __init__(self, images: Tensor, targets: Tensor, batch_size: int, shuffle: bool = False,
                 seed: Optional[int] = None, device=None, augment: bool = False,
                 crop_padding: int = 4, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, drop_last: bool = False,
                 channels_last: bool = False):
        check_tensor("images", images, floating=False)
        check_tensor("targets", targets, floating=False)
        if images.dim() != 4 or targets.dim() != 1 or len(images) != len(targets):
            raise ValueError(f"expected images (N, C, H, W) and targets (N,) of equal length, got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
        if targets.is_floating_point() and not bool((targets == targets.round()).all()):
            raise ValueError(f"targets must be integer class labels, got non-integer values of "
                             f"dtype {targets.dtype}")
        self.batch_size = check_int("batch_size", batch_size, 1, expected="a positive integer")
        self.crop_padding = check_int("crop_padding", crop_padding, 0,
                                      expected="a non-negative integer")
        self.shuffle, self.augment, self.drop_last, self.channels_last = (
            check_bool(name, value) for name, value in (
                ("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last),
                ("channels_last", channels_last)))
        self.device = check_device("device", device) or images.device
        self.images = _check_images(images).to(self.device)
        self.targets = targets.to(self.device, dtype=torch.long)
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(check_int("seed", seed, 0, 2 ** 64 - 1,
                                                 expected="an integer in [0, 2**64)"))
        self.dataset = self  # trainers report len(dl.dataset)
        channels = images.shape[1]
        self._mean = self._channel_stat(mean, channels, "mean")
        self._std = self._channel_stat(std, channels, "std")

    def _channel_stat(self, values, channels, name) -> Optional[Tensor]:
        if values is None:
            return None
        try:
            stat = torch.as_tensor(values, dtype=torch.float32, device=self.device).flatten()
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a number or a sequence of numbers, got "
                            f"{type(values).__name__} ({values!r})") from None
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
        """Gather, augment, scale and normalise the samples ``idx: (b,)``."""
        x = self.images[idx]
        if self.augment:
            x = self._augment(x)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.to(torch.float32, memory_format=memory_format)
        if self.images.dtype == torch.uint8:
            x.div_(255)
        if self._mean is not None:
            x.sub_(self._mean)
        if self._std is not None:
            x.div_(self._std)
        return x, self.targets[idx]

    def _augment(self, x: Tensor) -> Tensor:
        """Random crop after zero padding, and a random horizontal flip.

        Sample ``k`` is cropped at the offsets ``(dy, dx)`` drawn for it, and mirrored when
        its flip is drawn: ``out[k, c, i, j] = padded[k, c, rows[k, i], cols[k, j]]`` with
        ``rows[k] = dy + (0..H-1)`` and ``cols[k] = dx + (0..W-1)``, reversed for a flip.
        One ``gather`` over each flattened padded image does it for the whole batch.

        :param x: ``(b, C, H, W)`` in the images' dtype.
        :return: ``(b, C, H, W)``, the same dtype.
        """
        b, c, h, w = x.shape
        p = self.crop_padding
        draws = torch.randint(0, 2 * p + 1, (b, 2), generator=self.generator).to(x.device)
        flips = (torch.rand(b, generator=self.generator) < 0.5).to(x.device)
        padded = torch.nn.functional.pad(x, (p, p, p, p))                  # (b, C, H+2p, W+2p)
        hp, wp = padded.shape[-2:]
        rows = draws[:, :1] + torch.arange(h, device=x.device)            # (b, H)
        cols = draws[:, 1:] + torch.arange(w, device=x.device)            # (b, W)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        # index[k, c, i, j] = c * Hp * Wp + rows[k, i] * Wp + cols[k, j]
        planes = (torch.arange(c, device=x.device) * (hp * wp)).view(1, c, 1, 1)
        index = (rows * wp).view(b, 1, h, 1) + cols.view(b, 1, 1, w) + planes
        return torch.gather(padded.reshape(b, -1), 1, index.view(b, -1)).view(b, c, h, w)

    def __repr__(self) -> str:
        return (f"TensorLoader(n={len(self.targets)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment}, device={self.device})")
