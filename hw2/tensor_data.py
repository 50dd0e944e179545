"""A data path for experiments that keeps the whole data set in one tensor.

torchvision's ``Dataset``/``DataLoader`` path converts every image on its own in Python, which on
the course's 2-CPU jobs starves the GPU. :class:`TensorLoader` instead holds the data set once as
a uint8 (or float) tensor, on the GPU when there is one, and builds each batch by indexing with
a seeded permutation. Augmentation (random crop with zero padding and horizontal flips) and
normalisation run on the whole batch, on the device.

With augmentation off and the same seed, a ``TensorLoader`` yields exactly the batches of
``DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))``.

Batches are made without allocating memory for them: the gather, the augmentation and the
conversion to float write into buffers that the loader allocates once and then reuses (see
:class:`TensorLoader` for when a buffer may be reused). Allocating and freeing a batch-sized
tensor every batch costs little by itself, but the C library returns large freed blocks to the
system, and taking them back costs a page fault per 4 KiB on every batch.
"""
import numbers
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["dataset_tensors", "TensorLoader", "POOL_SIZE"]

#: Batch buffers a :class:`TensorLoader` keeps for reuse. A training loop holds one batch while
#: the next is made, so two suffice; the third covers a batch still referenced one step longer
#: (e.g. by a loss kept until the next iteration).
POOL_SIZE = 3


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


# -- argument checks ---------------------------------------------------------------------------

def _check_int(name: str, value, minimum: int, what: str) -> int:
    """``value`` as an int (numpy integers accepted); TypeError or ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")
    return bool(value)


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


# -- reusable batch buffers --------------------------------------------------------------------

def _storage_refs(t: Tensor) -> Optional[int]:
    """How many tensors (and views) share ``t``'s memory, or None where torch cannot say."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return None if count is None else count(t.untyped_storage()._cdata)


class _Slot:
    """The output tensors of one batch, ``x: (B, C, H, W)`` float32 and ``y: (B,)`` int64.

    Batches are handed out as views of them. A slot may be refilled only once no tensor refers
    to their memory any more: no batch, no view of one, no autograd graph that saved one.
    """

    def __init__(self, x: Tensor, y: Tensor):
        self.x, self.y = x, y
        self._idle = (_storage_refs(x), _storage_refs(y))  # the counts with no batch out

    def is_free(self) -> bool:
        if self._idle[0] is None:
            return False  # cannot tell: never reuse
        return (_storage_refs(self.x), _storage_refs(self.y)) == self._idle

    def __repr__(self) -> str:
        return f"_Slot(x={tuple(self.x.shape)}, free={self.is_free()})"


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
    :param reuse_buffers: Make batches in reused buffers (the default) instead of allocating
        every batch afresh. Values are the same either way.
    :raises TypeError: If ``images`` or ``targets`` is not a tensor, an integer argument is
        not an integer (numpy integers are accepted), a flag is not a bool, or the images are
        bool or complex.
    :raises ValueError: On mismatched shapes, non-integer labels, a non-positive batch size, a
        negative crop padding, integer images outside 0..255, or a ``mean``/``std`` of the wrong
        length, not finite, or (std) not positive.

    Each iteration yields ``(x: float32 (B, C, H, W), y: int64 (B,))`` on ``device``.

    Lifetime of a batch: with ``reuse_buffers`` the tensors of a batch are views of one of at
    most :data:`POOL_SIZE` buffer pairs, and a buffer is refilled only when nothing refers to
    its memory any more (the loader counts the tensors sharing it). A batch therefore stays
    valid for as long as the caller holds it, a view of it, or a graph built from it: keeping
    batches, e.g. ``list(loader)``, is safe; the batches beyond the pool are then simply
    allocated. In the usual loop, where each batch is dropped once the next one arrives, every
    batch after the first two reuses memory. Only raw pointers (``data_ptr()``) kept without
    the tensor, or reads still queued on another CUDA stream, would see a batch overwritten.
    Several iterators over one loader may run side by side, but not from several threads at
    once (they share the loader's working buffers and generator).
    """

    def __init__(self, images: Tensor, targets: Tensor, batch_size: int, shuffle: bool = False,
                 seed: Optional[int] = None, device=None, augment: bool = False,
                 crop_padding: int = 4, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, drop_last: bool = False,
                 channels_last: bool = False, reuse_buffers: bool = True):
        for name, value in (("images", images), ("targets", targets)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if images.dim() != 4 or targets.dim() != 1 or len(images) != len(targets):
            raise ValueError(f"expected images (N, C, H, W) and targets (N,) of equal length, got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
        if targets.is_floating_point() and not bool((targets == targets.round()).all()):
            raise ValueError(f"targets must be integer class labels, got non-integer values of "
                             f"dtype {targets.dtype}")
        self.batch_size = _check_int("batch_size", batch_size, 1, "a positive integer")
        self.crop_padding = _check_int("crop_padding", crop_padding, 0, "a non-negative integer")
        self.shuffle, self.augment, self.drop_last, self.channels_last, self.reuse_buffers = (
            _check_flag(name, value) for name, value in (
                ("shuffle", shuffle), ("augment", augment), ("drop_last", drop_last),
                ("channels_last", channels_last), ("reuse_buffers", reuse_buffers)))
        self.device = self._check_device(device, images)
        self.images = _check_images(images).to(self.device)
        self.targets = targets.to(self.device, dtype=torch.long)
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(self._check_seed(seed))
        self.dataset = self  # trainers report len(dl.dataset)
        channels = images.shape[1]
        self._mean = self._channel_stat(mean, channels, "mean")
        self._std = self._channel_stat(std, channels, "std")
        self._slots: List[_Slot] = []
        self._work: Optional[dict] = None  # scratch of _make_batch, allocated at the first batch

    @staticmethod
    def _check_device(device, images: Tensor) -> torch.device:
        if device is None:
            return images.device
        try:
            return torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got "
                             f"{device!r}") from None

    @staticmethod
    def _check_seed(seed) -> int:
        seed = _check_int("seed", seed, 0, "a non-negative integer")
        if seed >= 2 ** 64:
            raise ValueError(f"seed must be below 2**64 (a torch.Generator seed), got {seed}")
        return seed

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

    # -- making one batch ----------------------------------------------------------------------

    def _make_batch(self, idx: Tensor) -> Tuple[Tensor, Tensor]:
        """Gather, augment, scale and normalise the samples ``idx: (b,)`` into a free slot."""
        b = len(idx)
        slot = self._free_slot()
        x, y = slot.x[:b], slot.y[:b]
        torch.index_select(self.targets, 0, idx, out=y)
        work = self._scratch()
        if self.augment:
            src = work["gathered"][:b]
            torch.index_select(self.images, 0, idx, out=src)
            src = self._augment(src, work)
        elif x.is_contiguous() and self.images.dtype == x.dtype:
            src = x  # float32 images straight into the batch
            torch.index_select(self.images, 0, idx, out=x)
        else:
            src = work["gathered"][:b]
            torch.index_select(self.images, 0, idx, out=src)
        if src is not x:
            x.copy_(src)
        if self.images.dtype == torch.uint8:
            x.div_(255)
        if self._mean is not None:
            x.sub_(self._mean)
        if self._std is not None:
            x.div_(self._std)
        return x, y

    def _free_slot(self) -> _Slot:
        """A slot nothing refers to: a pooled one when there is one, else a new one."""
        if self.reuse_buffers:
            for slot in self._slots:
                if slot.is_free():
                    return slot
        slot = _Slot(torch.empty(self._batch_shape(), device=self.device,
                                 memory_format=self._memory_format()),
                     torch.empty(self.batch_size, dtype=torch.long, device=self.device))
        if self.reuse_buffers and len(self._slots) < POOL_SIZE:
            self._slots.append(slot)
        return slot

    def _batch_shape(self) -> Tuple[int, int, int, int]:
        return (self.batch_size, *self.images.shape[1:])

    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def _scratch(self) -> dict:
        """Working buffers (never handed out), in the images' dtype; fresh ones without reuse.

        ``gathered: (B, C, H, W)``; with augmentation also ``padded: (B, C, H+2p, W+2p)`` whose
        border stays zero, ``cropped: (B, C, H, W)``, the int64 index tensors ``pixels:
        (B, 1, H, W)`` and ``index: (B, C, H, W)``, and the constants ``rows: (H,)``,
        ``cols: (W,)`` (``arange``) and ``planes: (1, C, 1, 1)`` (where each channel's plane
        starts in a flattened padded image).
        """
        if self._work is not None and self.reuse_buffers:
            return self._work
        bs, c, h, w = self._batch_shape()
        p, dtype, dev = self.crop_padding, self.images.dtype, self.device
        work = dict(gathered=torch.empty(bs, c, h, w, dtype=dtype, device=dev))
        if self.augment:
            hp, wp = h + 2 * p, w + 2 * p
            work.update(padded=torch.zeros(bs, c, hp, wp, dtype=dtype, device=dev),
                        cropped=torch.empty(bs, c, h, w, dtype=dtype, device=dev),
                        pixels=torch.empty(bs, 1, h, w, dtype=torch.long, device=dev),
                        index=torch.empty(bs, c, h, w, dtype=torch.long, device=dev),
                        rows=torch.arange(h, device=dev), cols=torch.arange(w, device=dev),
                        planes=(torch.arange(c, device=dev) * (hp * wp)).view(1, c, 1, 1))
        self._work = work
        return work

    def _augment(self, x: Tensor, work: dict) -> Tensor:
        """Random crop after zero padding, and a random horizontal flip.

        Sample ``k`` is cropped at the offsets ``(dy, dx)`` drawn for it, and mirrored when
        its flip is drawn: ``out[k, c, i, j] = padded[k, c, rows[k, i], cols[k, j]]`` with
        ``rows[k] = dy + (0..H-1)`` and ``cols[k] = dx + (0..W-1)``, reversed for a flip.
        One ``gather`` over each flattened padded image does it for the whole batch.

        :param x: ``(b, C, H, W)`` in the images' dtype.
        :return: ``(b, C, H, W)``, a view of ``work['cropped']``.
        """
        b, _, h, w = x.shape
        p = self.crop_padding
        draws = torch.randint(0, 2 * p + 1, (b, 2), generator=self.generator).to(x.device)
        flips = (torch.rand(b, generator=self.generator) < 0.5).to(x.device)
        padded = work["padded"][:b]
        padded[:, :, p:p + h, p:p + w].copy_(x)                            # border stays zero
        rows = draws[:, :1] + work["rows"]                                 # (b, H)
        cols = draws[:, 1:] + work["cols"]                                 # (b, W)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        pixels, index = work["pixels"][:b], work["index"][:b]
        # index[k, c, i, j] = c * Hp * Wp + rows[k, i] * Wp + cols[k, j]
        torch.add((rows * padded.shape[-1]).view(b, 1, h, 1), cols.view(b, 1, 1, w), out=pixels)
        torch.add(pixels, work["planes"], out=index)
        cropped = work["cropped"][:b]
        torch.gather(padded.reshape(b, -1), 1, index.view(b, -1), out=cropped.view(b, -1))
        return cropped

    def __repr__(self) -> str:
        return (f"TensorLoader(n={len(self.targets)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, augment={self.augment}, device={self.device})")
