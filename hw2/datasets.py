"""One entry point to every data set the project uses, online or offline.

Names (the same everywhere: CLI, notebooks, helpers):

- ``cifar10``, ``mnist``, ``fashion-mnist``: the real data sets, loaded through torchvision into
  ``~/.pytorch-datasets`` (or ``$HW2_DATA_DIR``). Without internet they must already be there.
- ``digits``: scikit-learn's 8x8 handwritten digits. Real data that ships inside an installed
  package, so it works offline.
- ``synthetic``: a deterministic, learnable stand-in with CIFAR-10's shapes (3x32x32 in [0, 1],
  10 classes). It is *not* CIFAR-10 and says so whenever it is loaded; nothing substitutes it
  for real data silently.

``HW2_DATASET`` chooses the default name and ``HW2_QUICK=1`` asks notebooks for small workloads.
"""
import os
import socket
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from hw2.validation import check_choice

DATASET_NAMES = ("cifar10", "mnist", "fashion-mnist", "digits", "synthetic")

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")
_FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat",
                    "sandal", "shirt", "sneaker", "bag", "ankle boot")
_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_SYNTHETIC_CLASSES = tuple(f"pattern-{i}" for i in range(10))


class DatasetInfo(NamedTuple):
    """Static facts about a named data set.

    name: the data set's name.
    in_size: shape of one image, ``(C, H, W)``.
    num_classes: number of labels.
    classes: class names indexed by label.
    real: False only for the synthetic stand-in.
    """

    name: str
    in_size: Tuple[int, int, int]
    num_classes: int
    classes: Tuple[str, ...]
    real: bool


_INFO = {
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10, _CIFAR10_CLASSES, True),
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, _DIGIT_CLASSES, True),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, _FASHION_CLASSES, True),
    "digits": DatasetInfo("digits", (1, 8, 8), 10, _DIGIT_CLASSES, True),
    "synthetic": DatasetInfo("synthetic", (3, 32, 32), 10, _SYNTHETIC_CLASSES, False),
}

SYNTHETIC_BANNER = (
    "NOTE: 'synthetic' is a deterministic CIFAR-10-shaped stand-in (3x32x32, 10 classes of "
    "noisy, shifted colour patterns), NOT CIFAR-10. Numbers obtained on it say nothing "
    "about CIFAR-10."
)


class DatasetUnavailableError(RuntimeError):
    """A real data set is not on disk and could not be downloaded."""


def check_dataset_name(name: str, what: str = "dataset name") -> str:
    """``name`` in lower case, if it is one of :data:`DATASET_NAMES` in any case.

    :param what: How the message names the value (``HW2_DATASET`` for the environment's).
    :raises TypeError: It is not a string.
    :raises ValueError: It names no data set (the message lists the names).
    """
    return check_choice(what, name, DATASET_NAMES, normalise=str.lower)


def default_dataset_name() -> str:
    """The data set named by ``$HW2_DATASET``, else ``'cifar10'``.

    :raises ValueError: ``$HW2_DATASET`` names no data set.
    """
    return check_dataset_name(os.environ.get("HW2_DATASET", "").strip() or "cifar10",
                              "HW2_DATASET")


def quick_mode() -> bool:
    """True when ``$HW2_QUICK`` asks for small workloads (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get("HW2_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def data_root() -> Path:
    """Where real data sets live: ``$HW2_DATA_DIR``, else ``~/.pytorch-datasets``."""
    return Path(os.environ.get("HW2_DATA_DIR") or "~/.pytorch-datasets").expanduser()


def dataset_folder(name: str, root=None) -> Optional[Path]:
    """The folder torchvision reads a real data set's files from: ``root`` (default
    :func:`data_root`) plus the data set's own sub-folder. None for ``digits`` (shipped with
    scikit-learn) and ``synthetic`` (generated), which need no files.

    :raises ValueError: For an unknown data set name.
    """
    name = check_dataset_name(name)
    if name not in _TORCHVISION:
        return None
    return Path(data_root() if root is None else root).expanduser() / _TORCHVISION[name][1]


def dataset_info(name: Optional[str] = None) -> DatasetInfo:
    """Static facts (shape, classes) about a data set, without loading it."""
    return _INFO[check_dataset_name(name or default_dataset_name())]


class ImageTensorDataset(Dataset):
    """A whole image data set held as two tensors.

    :param images: ``(N, C, H, W)``, either uint8 in [0, 255] or float in [0, 1].
    :param targets: ``(N,)`` integer labels.
    :param name: The data set's name (shown in ``repr``).
    Items are ``(x: float32 (C, H, W) in [0, 1], y: int)``.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, name: str):
        if images.dim() != 4 or targets.dim() != 1 or len(images) != len(targets):
            raise ValueError(f"expected images (N, C, H, W) and targets (N,), got "
                             f"{tuple(images.shape)} and {tuple(targets.shape)}")
        self.images, self.targets, self.name = images, targets.long(), name

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        x = self.images[index]
        x = x.to(torch.float32).div_(255) if x.dtype == torch.uint8 else x.to(torch.float32)
        return x, int(self.targets[index])

    def __repr__(self) -> str:
        return f"ImageTensorDataset(name={self.name!r}, n={len(self)}, shape={tuple(self.images.shape[1:])})"


def load_dataset(name: Optional[str] = None, root=None, download: bool = True,
                 verbose: bool = True) -> Tuple[Dataset, Dataset]:
    """Load a data set's train and test splits by name.

    :param name: One of :data:`DATASET_NAMES`; default :func:`default_dataset_name`.
    :param root: Directory of the real data sets; default :func:`data_root`.
    :param download: Whether torchvision may try to download missing real data.
    :param verbose: Print which data set was loaded (and the stand-in's banner).
    :return: ``(ds_train, ds_test)``; items are ``(x: float32 (C, H, W) in [0, 1], y: int)``.
    :raises DatasetUnavailableError: A real data set is missing and cannot be downloaded.
    """
    name = check_dataset_name(name or default_dataset_name())
    root = Path(root).expanduser() if root is not None else data_root()
    if name == "digits":
        splits = _load_digits()
    elif name == "synthetic":
        splits = make_synthetic()
    else:
        splits = _load_torchvision(name, root, download)
    if verbose:
        print(f"Dataset: {name} (train {len(splits[0])}, test {len(splits[1])} samples)")
        if name == "synthetic":
            print(SYNTHETIC_BANNER)
    return splits


def _load_digits(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's digits, scaled to [0, 1], split with a fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).to(torch.float32).div_(16.0).unsqueeze(1)
    targets = torch.from_numpy(bunch.target)
    idx_train, idx_test = train_test_split(
        torch.arange(len(targets)).numpy(), test_size=test_fraction, random_state=seed,
        stratify=bunch.target)
    return (ImageTensorDataset(images[idx_train], targets[idx_train], "digits"),
            ImageTensorDataset(images[idx_test], targets[idx_test], "digits"))


_TORCHVISION = {
    "cifar10": ("CIFAR10", "cifar-10-batches-py",
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"),
    "mnist": ("MNIST", "MNIST/raw", "the four MNIST *-ubyte.gz files"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", "the four Fashion-MNIST *-ubyte.gz files"),
}


def _load_torchvision(name: str, root: Path, download: bool):
    import torchvision
    import torchvision.transforms as tvtf

    cls_name, subdir, files = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    kw = dict(root=str(root), transform=tvtf.ToTensor())
    try:
        return cls(train=True, download=False, **kw), cls(train=False, download=False, **kw)
    except RuntimeError:
        if not download:
            raise _unavailable(name, root, subdir, files, "download=False") from None
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        return cls(train=True, download=True, **kw), cls(train=False, download=True, **kw)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        raise _unavailable(name, root, subdir, files, f"{type(err).__name__}: {err}") from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def _unavailable(name, root, subdir, files, reason) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"The {name} data set is not in {root / subdir} and could not be downloaded ({reason}). "
        f"Put {files} into {root} (torchvision's layout), point HW2_DATA_DIR at a folder that "
        f"has them, or use an offline data set: HW2_DATASET=digits (real, 8x8) or "
        f"HW2_DATASET=synthetic (a stand-in, not real data).")


def make_synthetic(n_train: int = 10_000, n_test: int = 2_000, seed: int = 0, noise: float = 0.3,
                   signal: float = 0.35, max_shift: int = 8
                   ) -> Tuple[ImageTensorDataset, ImageTensorDataset]:
    """Build the deterministic CIFAR-10-shaped stand-in.

    Each class owns a smooth random colour pattern. A sample is its class pattern, rolled by a
    random shift of up to ``max_shift`` pixels, mixed (weight ``signal``) with a random smooth
    distractor pattern, scaled in brightness and covered with Gaussian pixel noise of std
    ``noise``. With the defaults a logistic regression reaches about 50% test accuracy (chance
    is 10%) and a small two-layer CNN about 38% after a single epoch, improving with more.

    :return: ``(train, test)`` image data sets of uint8 images ``(N, 3, 32, 32)``.
    """
    gen = torch.Generator().manual_seed(seed)
    prototypes = _smooth_patterns(10, gen)                      # (10, 3, 32, 32)
    distractors = _smooth_patterns(64, gen)                     # (64, 3, 32, 32)

    def draw(n: int):
        labels = torch.randint(0, 10, (n,), generator=gen)
        shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=gen)
        pick = torch.randint(0, len(distractors), (n,), generator=gen)
        brightness = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
        pixel_noise = noise * torch.randn(n, 3, 32, 32, generator=gen)
        images = _roll_each(prototypes[labels], shifts)
        images = brightness * (signal * images + (1 - signal) * distractors[pick]) + pixel_noise
        return ImageTensorDataset(images.clamp_(0, 1).mul_(255).round_().to(torch.uint8), labels,
                                  "synthetic")

    return draw(n_train), draw(n_test)


def _smooth_patterns(n: int, gen: torch.Generator) -> torch.Tensor:
    """n random low-frequency colour images in [0, 1]: (n, 3, 32, 32)."""
    coarse = torch.rand(n, 3, 4, 4, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear",
                                           align_corners=False)


def _roll_each(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by its own (dy, dx): (N, C, H, W), (N, 2) -> (N, C, H, W)."""
    n, _, h, w = images.shape
    rows = (torch.arange(h).view(1, h) - shifts[:, :1]) % h       # (N, H)
    cols = (torch.arange(w).view(1, w) - shifts[:, 1:]) % w       # (N, W)
    batch = torch.arange(n).view(n, 1, 1)
    out = images.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()


def class_names(name: Optional[str] = None) -> Sequence[str]:
    """Class names of a data set, indexed by label."""
    return dataset_info(name).classes
