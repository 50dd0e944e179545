"""The trainer of the Part 5 experiments: :class:`~hw2.training.ClassifierTrainer` with two
speed paths of PyTorch's performance guide.

* ``autocast_dtype`` (``torch.bfloat16`` or ``torch.float16``): the forward pass runs in a
  ``with torch.autocast(...)`` block and the scores come out as float32, so the loss, the
  backward pass and the optimizer step run outside it, as PyTorch recommends. Parameters,
  optimizer state and checkpoints stay float32.
* ``channels_last``: the model and every 4-D batch use the channels-last memory format.
"""
from typing import Optional, Union

import torch
import torch.nn as nn

from cs236781.train_results import BatchResult
from hw2.training import ClassifierTrainer
from hw2.validation import check_bool, check_choice, check_optional

__all__ = ["ExperimentTrainer", "AUTOCAST_DTYPES"]

#: The dtypes torch.autocast runs in (on the CPU it disables itself, with only a warning, for
#: another one).
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


class ExperimentTrainer(ClassifierTrainer):
    """A :class:`~hw2.training.ClassifierTrainer` with autocast and channels-last options."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer,
                 device: Optional[Union[torch.device, str]] = None, *,
                 autocast_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 identity: Optional[dict] = None):
        """
        :param model, loss_fn, optimizer, device, identity: As for ClassifierTrainer.
        :param autocast_dtype: Run the forward pass under autocast to this dtype:
            ``torch.bfloat16`` or ``torch.float16`` (None: off).
        :param channels_last: Use the channels-last memory format for model and batches.
        """
        # Checked before the base class moves the model: a refused argument changes nothing.
        # A wrong type (the string "bf16") is a TypeError, another dtype a ValueError.
        autocast_dtype = check_optional(
            check_choice, "autocast_dtype", autocast_dtype, AUTOCAST_DTYPES, kind=torch.dtype,
            expected=f"{' or '.join(map(str, AUTOCAST_DTYPES))} (or None: no autocast)")
        channels_last = check_bool("channels_last", channels_last)
        super().__init__(model, loss_fn, optimizer, device=device, identity=identity)
        self.autocast_dtype = autocast_dtype
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _inputs(self, batch):
        """``(x: (N, ...), y: (N,))`` on the device; a 4-D ``x`` in channels-last if asked."""
        X, y = batch
        X, y = X.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.channels_last and X.dim() == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        return X, y

    def _forward(self, X: torch.Tensor) -> torch.Tensor:
        """The model's scores ``(N, C)``, in float32, computed under autocast if asked."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype,
                            enabled=self.autocast_dtype is not None):
            scores = self.model(X)
        return scores.float()

    def train_batch(self, batch) -> BatchResult:
        X, y = self._inputs(batch)
        self.optimizer.zero_grad()
        scores = self._forward(X)
        loss = self.loss_fn(scores, y)
        loss.backward()
        self.optimizer.step()
        num_correct = int((self._predict(scores.detach()) == y).sum())
        return BatchResult(loss.item(), num_correct)

    def test_batch(self, batch) -> BatchResult:
        X, y = self._inputs(batch)
        with torch.no_grad():
            scores = self._forward(X)
            loss = self.loss_fn(scores, y)
            num_correct = int((self._predict(scores) == y).sum())
        return BatchResult(loss.item(), num_correct)

    def __repr__(self) -> str:
        return (f"ExperimentTrainer(model={type(self.model).__name__}, "
                f"loss_fn={self.loss_fn!r}, optimizer={type(self.optimizer).__name__}, "
                f"device={self.device}, autocast_dtype={self.autocast_dtype}, "
                f"channels_last={self.channels_last})")
