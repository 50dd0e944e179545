"""Where a Part 5 run trains and which CUDA fast paths it uses.

:func:`resolve_device` checks a requested device against the machine; :func:`resolve_fast_paths`
decides bf16 autocast, channels-last, ``cudnn.benchmark``, pinned memory and ``torch.compile``
from an :class:`~hw2.config.ExperimentConfig` and the device (all of them are CUDA-only, and
on by default there); :func:`cudnn_benchmark` sets the cuDNN autotuner for a block.
"""
import contextlib
from typing import Dict, Optional

import torch

from hw2.config import ExperimentConfig
from hw2.validation import ExperimentConfigError

__all__ = ["resolve_device", "resolve_fast_paths", "cudnn_benchmark"]


def resolve_device(device: Optional[str]) -> torch.device:
    """The device to train on (None: ``cuda`` when available, else ``cpu``).

    :raises ExperimentConfigError: A CUDA device that this machine does not have.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ExperimentConfigError(f"device {device!r} was requested but CUDA is not "
                                        f"available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ExperimentConfigError(f"device {device!r} does not exist: this machine has "
                                        f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_fast_paths(config: ExperimentConfig, dev: torch.device) -> Dict[str, bool]:
    """Which CUDA fast paths are on: requested ones, or all of them by default on CUDA.

    They only exist on CUDA; on another device every one is off whatever was asked. bf16
    autocast is on by default only on GPUs with bf16 support.

    :raises ExperimentConfigError: If ``amp=True`` on a CUDA GPU without bf16 support.
    """
    cuda = dev.type == "cuda"

    def on(flag: Optional[bool]) -> bool:
        return cuda and (flag is None or flag)

    bf16 = cuda and torch.cuda.is_bf16_supported()
    if cuda and config.amp and not bf16:
        raise ExperimentConfigError(f"amp=True asks for bf16 autocast, which "
                                    f"{torch.cuda.get_device_name(dev)} does not support; "
                                    f"use --no-amp")
    return {
        "amp_bf16": on(config.amp) and bf16,
        "channels_last": on(config.channels_last),
        "cudnn_benchmark": on(config.cudnn_benchmark),
        "non_blocking": on(config.non_blocking) and config.loader == "torchvision",
        "compile": config.compile_model,
        "tensor_data_on_device": config.loader == "tensor" and cuda,
    }



@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    """Set ``torch.backends.cudnn.benchmark`` for a block, then restore it."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled) or old
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old
