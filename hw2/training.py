"""Training loops at three levels of granularity: many epochs, one epoch, one batch.

:class:`Trainer` implements the first two levels once for every kind of model:

* :meth:`Trainer.fit` runs epochs of training and evaluation, prints ``--- EPOCH i/N ---``
  lines, stops early when the test loss stops improving, and checkpoints/resumes.
* :meth:`Trainer.train_epoch` / :meth:`Trainer.test_epoch` run one pass over a data loader,
  both through the single loop :meth:`Trainer._foreach_batch` (progress bar, batch limit,
  loss and accuracy bookkeeping).

Subclasses implement the model-specific single-batch level:

* :class:`LayerTrainer` trains the from-scratch :mod:`hw2.layers` models (manual backward,
  :mod:`hw2.optimizers`).
* :class:`ClassifierTrainer` trains ``torch.nn.Module`` classifiers with autograd and any
  optimizer offering ``zero_grad()``/``step()``.
* :class:`ExperimentTrainer` is a :class:`ClassifierTrainer` that can run the forward pass
  under bf16 autocast and keep model and images in channels-last memory format (Part 5).

Checkpoints go through public methods only: :meth:`Trainer.checkpoint_file` (the ``.pt``
naming rule), :meth:`Trainer.resume_from` (load a checkpoint and tell its progress; a
following :meth:`Trainer.fit` with the same file continues from it without reading it again)
and :meth:`Trainer.save_checkpoint`.

A training loss that becomes NaN or infinite raises :class:`TrainingDiverged` (a
``FloatingPointError``) naming the epoch and batch, instead of silently training on garbage;
raised by :meth:`Trainer.fit`, it also carries the epochs completed before the divergence.

Checkpoints are read with ``torch.load(..., weights_only=True)``: only tensors and plain Python
values are ever unpickled, so a checkpoint file cannot run code. A file that holds anything
else, a truncated file, or a checkpoint of another architecture is refused with a
``ValueError`` naming the file.
"""
import abc
import contextlib
import dataclasses
import math
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cs236781.train_results import BatchResult, EpochResult, FitResult
from hw2.atomic import atomic_write
from hw2.validation import check_bool, check_int

__all__ = ["Trainer", "LayerTrainer", "ClassifierTrainer", "ExperimentTrainer", "FitState",
           "TrainingDiverged", "CHECKPOINT_FORMAT"]

#: Marks files written by :meth:`Trainer.save_checkpoint` (and their layout version).
CHECKPOINT_FORMAT = "hw2.training.checkpoint/1"

# Keyword arguments that fit/train_epoch/test_epoch pass on to _foreach_batch.
_EPOCH_KWARGS = ("verbose", "max_batches")


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int >= ``minimum`` (or None when allowed): :func:`hw2.validation.check_int`."""
    if value is None and allow_none:
        return None
    expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    return check_int(name, value, minimum, expected=expected)


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite.

    epoch: 1-based epoch of :meth:`Trainer.fit` (None outside fit).
    batch: 1-based batch of that epoch.
    loss: the offending loss value.
    fit_result: set by :meth:`Trainer.fit`: the :class:`FitResult` of the epochs completed
        before the divergence (possibly none).
    """

    def __init__(self, message: str, epoch: Optional[int], batch: int, loss: float):
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss
        self.fit_result: Optional[FitResult] = None


def _check_epoch_kwargs(kw: Dict[str, Any], where: str) -> None:
    unknown = sorted(set(kw) - set(_EPOCH_KWARGS))
    if unknown:
        raise TypeError(f"{where}: unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"supported: {', '.join(_EPOCH_KWARGS)}")


@dataclasses.dataclass
class FitState:
    """Everything :meth:`Trainer.fit` tracks across epochs (saved in checkpoints).

    The lists follow :class:`FitResult`: losses per batch, accuracies (%) per epoch.
    """

    epochs_done: int = 0
    train_loss: List[float] = dataclasses.field(default_factory=list)
    train_acc: List[float] = dataclasses.field(default_factory=list)
    test_loss: List[float] = dataclasses.field(default_factory=list)
    test_acc: List[float] = dataclasses.field(default_factory=list)
    best_acc: Optional[float] = None
    best_test_loss: Optional[float] = None
    epochs_without_improvement: int = 0

    def record(self, train: EpochResult, test: EpochResult) -> None:
        """Append one epoch's results."""
        self.epochs_done += 1
        self.train_loss.extend(train.losses)
        self.train_acc.append(train.accuracy)
        self.test_loss.extend(test.losses)
        self.test_acc.append(test.accuracy)

    def update_best_loss(self, epoch_test_loss: float) -> None:
        """Count epochs since the mean test loss last improved."""
        if self.best_test_loss is None or epoch_test_loss < self.best_test_loss:
            self.best_test_loss = epoch_test_loss
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1

    def update_best_acc(self, accuracy: float) -> bool:
        """:return: Whether ``accuracy`` is a new best test accuracy."""
        if self.best_acc is None or accuracy > self.best_acc:
            self.best_acc = accuracy
            return True
        return False

    def fit_result(self) -> FitResult:
        return FitResult(self.epochs_done, list(self.train_loss), list(self.train_acc),
                         list(self.test_loss), list(self.test_acc))


class Trainer(abc.ABC):
    """
    A class abstracting the various tasks of training models.

    Provides methods at multiple levels of granularity:
    - Multiple epochs (fit)
    - Single epoch (train_epoch/test_epoch)
    - Single batch (train_batch/test_batch)
    """

    def __init__(self, model, device: Optional[Union[torch.device, str]] = None):
        """
        Initialize the trainer.
        :param model: Instance of the model to train (an ``nn.Module`` or, for
            :class:`LayerTrainer`, a :class:`hw2.layers.Layer`).
        :param device: torch.device to run training on (CPU or GPU). An ``nn.Module`` is moved
            there now; None leaves the model where it is.
        """
        self.model = model
        self.device = torch.device(device) if device is not None else None
        if self.device is not None and isinstance(model, nn.Module):
            model.to(self.device)
        self._epoch: Optional[int] = None  # 1-based epoch while fit() runs, for messages
        self._resumed: Optional[tuple] = None  # (checkpoint file, FitState) from resume_from

    # ------------------------------------------------------------------------------------------
    # Multiple epochs
    # ------------------------------------------------------------------------------------------

    def fit(self, dl_train: DataLoader, dl_test: DataLoader, num_epochs: int,
            checkpoints: str = None, early_stopping: int = None, print_every: int = 1,
            **kw) -> FitResult:
        """
        Trains the model for multiple epochs with a given training set,
        and calculates validation loss over a given validation set.
        :param dl_train: Dataloader for the training set.
        :param dl_test: Dataloader for the test set.
        :param num_epochs: Number of epochs to train for (in total, counting epochs restored
            from a checkpoint).
        :param checkpoints: Whether to save model to file every time the
            test set accuracy improves. Should be a string containing a
            filename without extension (``.pt`` is appended). If that file exists when
            fit starts, training resumes from it and runs only the remaining epochs.
        :param early_stopping: Whether to stop training early if there is no
            test loss improvement for this number of epochs (None: never stop early).
        :param print_every: Print progress every this number of epochs: the first epoch,
            every ``print_every``-th one and the last one print a ``--- EPOCH i/N ---`` line
            and show progress bars. 0 prints no epoch lines.
        :param kw: ``max_batches`` (batches per epoch) and ``verbose`` (True/False forces the
            progress bars on/off in every epoch).
        :return: A FitResult object containing train and test losses per batch and
            accuracies per epoch.
        :raises TrainingDiverged: The training loss became NaN or infinite (a
            ``FloatingPointError``; its ``fit_result`` holds the epochs completed before).
        :raises ValueError: The checkpoint file is unreadable, holds more than tensors and
            plain values, or belongs to a different model.
        """
        num_epochs = _check_int("num_epochs", num_epochs, minimum=0)
        early_stopping = _check_int("early_stopping", early_stopping, minimum=1, allow_none=True)
        print_every = _check_int("print_every", print_every, minimum=0)
        _check_epoch_kwargs(kw, "fit")
        _check_int("max_batches", kw.get("max_batches"), minimum=1, allow_none=True)
        checkpoint_file = self.checkpoint_file(checkpoints) if checkpoints is not None else None

        state = FitState()
        if checkpoint_file is not None and checkpoint_file.is_file():
            state = self._take_resumed(checkpoint_file) or self._load_fit_checkpoint(checkpoint_file)
            if print_every:
                best = "n/a" if state.best_acc is None else f"{state.best_acc:.1f}%"
                print(f"*** Resuming from {checkpoint_file}: {state.epochs_done} epoch(s) done, "
                      f"best test accuracy {best}")

        for epoch in range(state.epochs_done, num_epochs):
            shown = self._is_print_epoch(epoch, num_epochs, print_every)
            if shown:
                print(f"--- EPOCH {epoch + 1}/{num_epochs} ---")
            epoch_kw = {"verbose": shown, **kw}
            self._epoch = epoch + 1
            try:
                train_result = self.train_epoch(dl_train, **epoch_kw)
                test_result = self.test_epoch(dl_test, **epoch_kw)
            except TrainingDiverged as err:
                err.fit_result = state.fit_result()
                raise
            finally:
                self._epoch = None

            state.record(train_result, test_result)
            state.update_best_loss(sum(test_result.losses) / len(test_result.losses))
            if state.update_best_acc(test_result.accuracy) and checkpoint_file is not None:
                self.save_checkpoint(checkpoint_file, fit_state=state)
            if early_stopping is not None and state.epochs_without_improvement >= early_stopping:
                if print_every:
                    print(f"*** Early stopping after epoch {epoch + 1}: the test loss has not "
                          f"improved for {early_stopping} epoch(s)")
                break
        return state.fit_result()

    @staticmethod
    def _is_print_epoch(epoch: int, num_epochs: int, print_every: int) -> bool:
        """Whether the 0-based ``epoch`` prints its header: first, every k-th, last."""
        if print_every == 0:
            return False
        return epoch % print_every == 0 or epoch == num_epochs - 1

    # ------------------------------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def checkpoint_file(checkpoints: Union[str, os.PathLike]) -> Path:
        """The file of a ``checkpoints`` name: ``NAME.pt`` (a name ending in ``.pt`` is kept).

        :raises TypeError: ``checkpoints`` is not a path.
        :raises ValueError: It is empty.
        """
        if not isinstance(checkpoints, (str, os.PathLike)):
            raise TypeError(f"checkpoints must be a non-empty file name (without extension) "
                            f"or None, got {checkpoints!r}")
        if not os.fspath(checkpoints):
            raise ValueError(f"checkpoints must be a non-empty file name (without extension) "
                             f"or None, got {checkpoints!r}")
        path = Path(checkpoints)
        return path if path.suffix == ".pt" else path.with_name(path.name + ".pt")

    def resume_from(self, checkpoints: Union[str, os.PathLike]) -> Optional[FitState]:
        """Load a checkpoint written by :meth:`fit` into the model (and optimizer), if it exists.

        A following ``fit(..., checkpoints=checkpoints)`` continues from this state without
        reading the file again, so a caller can look at the progress (and refuse a foreign
        checkpoint) before training starts.

        :param checkpoints: The checkpoint name, as given to :meth:`fit`.
        :return: The progress it holds (``epochs_done``, ``best_acc``, ...), or None when
            there is no such file.
        :raises ValueError: The file is unreadable, holds more than tensors and plain values,
            has no fit progress, or belongs to a different model.
        """
        path = self.checkpoint_file(checkpoints)
        if not path.is_file():
            return None
        state = self._load_fit_checkpoint(path)
        self._resumed = (path.absolute(), state)
        return FitState(**dataclasses.asdict(state))

    def _take_resumed(self, path: Path) -> Optional[FitState]:
        """The state :meth:`resume_from` loaded from ``path``, once (None if another file)."""
        resumed, self._resumed = self._resumed, None
        if resumed is not None and resumed[0] == path.absolute():
            return resumed[1]
        return None

    def save_checkpoint(self, checkpoint_filename: str, *, fit_state: Optional[FitState] = None):
        """
        Saves the model in it's current state to a file with the given name (treated
        as a relative path).
        :param checkpoint_filename: File name or relative path to save to.
        :param fit_state: Progress of a running :meth:`fit` to store along (used by fit
            to resume later).

        The file is written to a temporary name and renamed, so an interrupted save never
        leaves a truncated checkpoint behind. It holds plain tensors and Python values only
        (loadable with ``torch.load(..., weights_only=True)``).
        """
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model_class": type(self.model).__name__,
            "model_state": self._model_state(),
            "optimizer_state": self._optimizer_state(),
            "fit_state": dataclasses.asdict(fit_state) if fit_state is not None else None,
        }
        path = Path(checkpoint_filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            torch.save(payload, f)

    def _load_fit_checkpoint(self, path: Path) -> FitState:
        """Load a checkpoint written by :meth:`fit` into the model (and optimizer)."""
        payload = self._load_checkpoint_file(path)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a checkpoint written by hw2.training.Trainer")
        if payload.get("fit_state") is None:
            raise ValueError(f"{path} holds a model but no fit progress (it was written by "
                             f"save_checkpoint outside fit), so fit cannot resume from it")
        self._load_model_state(payload["model_state"], path, payload.get("model_class"))
        self._load_optimizer_state(payload.get("optimizer_state"), path)
        return FitState(**payload["fit_state"])

    def _load_checkpoint_file(self, path: Path):
        """``torch.load`` a checkpoint safely: tensors and plain Python values only.

        :raises ValueError: The file holds other objects (they are never unpickled), or it is
            truncated or not a torch file.
        """
        map_location = self.device if self.device is not None else "cpu"
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            detail = next((line.strip() for line in str(err).splitlines()
                           if "GLOBAL" in line or "Unsupported" in line), "")
            raise ValueError(
                f"checkpoint {path} was refused: it holds objects other than tensors and plain "
                f"Python values, and checkpoints are only read with torch.load(weights_only=True)"
                f"{' (' + detail + ')' if detail else ''}. Delete it or choose another "
                f"checkpoints name.") from None
        except (RuntimeError, EOFError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"checkpoint {path} is unreadable (truncated or not a torch "
                             f"checkpoint): {first}") from None

    def _model_state(self):
        """The model's weights as saved in a checkpoint (``nn.Module``: its state_dict)."""
        return self.model.state_dict()

    def _load_model_state(self, saved, path: Path, saved_class: Optional[str]) -> None:
        """Load weights saved by :meth:`_model_state`, refusing another architecture."""
        own = self.model.state_dict()
        problems = []
        missing = [k for k in own if k not in saved]
        unexpected = [k for k in saved if k not in own]
        if missing:
            problems.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected[:5])}"
                            f"{' ...' if len(unexpected) > 5 else ''}")
        for key in own:
            if key in saved and tuple(saved[key].shape) != tuple(own[key].shape):
                problems.append(f"{key} has shape {tuple(saved[key].shape)} in the checkpoint "
                                f"but {tuple(own[key].shape)} in the model")
        if problems:
            raise ValueError(self._architecture_message(path, saved_class, problems))
        self.model.load_state_dict(saved)

    def _architecture_message(self, path: Path, saved_class: Optional[str], problems) -> str:
        return (f"checkpoint {path} was saved from a different architecture "
                f"({saved_class} -> {type(self.model).__name__}): {'; '.join(problems[:5])}. "
                f"Delete the file or choose another checkpoints name to start afresh.")

    def _optimizer_state(self):
        optimizer = getattr(self, "optimizer", None)
        return optimizer.state_dict() if hasattr(optimizer, "state_dict") else None

    def _load_optimizer_state(self, saved, path: Path) -> None:
        optimizer = getattr(self, "optimizer", None)
        if saved is None or not hasattr(optimizer, "load_state_dict"):
            return
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"checkpoint {path}: the saved optimizer state does not fit "
                             f"{type(optimizer).__name__}: {err}") from None

    # ------------------------------------------------------------------------------------------
    # Single epoch
    # ------------------------------------------------------------------------------------------

    def train_epoch(self, dl_train: DataLoader, **kw) -> EpochResult:
        """
        Train once over a training set (single epoch).
        :param dl_train: DataLoader for the training set.
        :param kw: Keyword args supported by _foreach_batch.
        :return: An EpochResult for the epoch.
        :raises TrainingDiverged: A batch's training loss is NaN or infinite.
        """
        _check_epoch_kwargs(kw, "train_epoch")
        self._set_training(True)
        return self._foreach_batch(dl_train, self.train_batch, check_finite=True, **kw)

    def test_epoch(self, dl_test: DataLoader, **kw) -> EpochResult:
        """
        Evaluate model once over a test set (single epoch).
        :param dl_test: DataLoader for the test set.
        :param kw: Keyword args supported by _foreach_batch.
        :return: An EpochResult for the epoch.
        """
        _check_epoch_kwargs(kw, "test_epoch")
        self._set_training(False)
        return self._foreach_batch(dl_test, self.test_batch, **kw)

    def _set_training(self, mode: bool) -> None:
        """Put the model in training (dropout active, ...) or evaluation mode."""
        self.model.train(mode)

    def _foreach_batch(self, dl: DataLoader, forward_fn: Callable[[Any], BatchResult],
                       verbose: bool = True, max_batches: Optional[int] = None, *,
                       check_finite: bool = False) -> EpochResult:
        """
        The one loop behind every epoch: runs ``forward_fn`` on each batch of ``dl``.

        :param dl: Data loader yielding batches (e.g. ``(x: (B, ...), y: (B,))``).
        :param forward_fn: ``train_batch`` or ``test_batch`` (its name labels the bar).
        :param verbose: Show a tqdm progress bar; its final text gives the average loss and
            the accuracy.
        :param max_batches: Stop after this many batches (None: the whole loader).
        :param check_finite: Raise when a batch loss is NaN or infinite.
        :return: The per-batch losses and the accuracy in percent
            (100 * correct samples / samples seen).
        :raises TrainingDiverged: ``check_finite`` and a loss is not finite.
        :raises ValueError: The loader yielded no batches.
        """
        verbose = check_bool("verbose", verbose)
        max_batches = _check_int("max_batches", max_batches, minimum=1, allow_none=True)
        name = getattr(forward_fn, "__name__", "batch")
        losses: List[float] = []
        num_correct = num_samples = 0
        # The bar is advanced (and relabelled with the latest loss) at most as often as tqdm
        # would redraw it, not on every batch: per batch the loop only reads the clock.
        next_draw, undrawn = 0.0, 0
        with tqdm(desc=name, total=self._num_batches(dl, max_batches), disable=not verbose,
                  file=sys.stdout) as bar:
            for batch_idx, batch in enumerate(dl):
                if max_batches is not None and batch_idx >= max_batches:
                    break
                result = forward_fn(batch)
                loss = float(result.loss)
                if check_finite and not math.isfinite(loss):
                    where = f"epoch {self._epoch}, " if self._epoch is not None else ""
                    raise TrainingDiverged(
                        f"{name}: the training loss is {loss} at {where}batch {batch_idx + 1}; "
                        f"training diverged (try a smaller learning rate or weight scale)",
                        epoch=self._epoch, batch=batch_idx + 1, loss=loss)
                losses.append(loss)
                num_correct += int(result.num_correct)
                num_samples += self._batch_size(batch)
                undrawn += 1
                if verbose and time.monotonic() >= next_draw:
                    bar.set_description(f"{name} ({loss:.3f})", refresh=False)
                    bar.update(undrawn)
                    next_draw, undrawn = time.monotonic() + bar.mininterval, 0
            if not losses:
                raise ValueError(f"{name}: the data loader yielded no batches (expected at "
                                 f"least one batch; is the data set empty?)")
            avg_loss = sum(losses) / len(losses)
            accuracy = 100.0 * num_correct / num_samples
            bar.update(undrawn)
            bar.set_description(f"{name} (Avg. Loss {avg_loss:.3f}, Accuracy {accuracy:.1f})")
        return EpochResult(losses=losses, accuracy=accuracy)

    @staticmethod
    def _num_batches(dl, max_batches: Optional[int]) -> Optional[int]:
        """Batches the epoch will run, when the loader knows its length."""
        try:
            total = len(dl)
        except TypeError:
            return max_batches
        return total if max_batches is None else min(total, max_batches)

    @staticmethod
    def _batch_size(batch) -> int:
        """Number of samples in a batch: the length of its first element (the inputs)."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return len(inputs)

    # ------------------------------------------------------------------------------------------
    # Single batch (model specific)
    # ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def train_batch(self, batch) -> BatchResult:
        """
        Runs a single batch forward through the model, calculates loss,
        preforms back-propagation and updates weights.
        :param batch: A single batch of data  from a data loader (might
            be a tuple of data and labels or anything else depending on
            the underlying dataset.
        :return: A BatchResult containing the value of the loss function and
            the number of correctly classified samples in the batch.
        """

    @abc.abstractmethod
    def test_batch(self, batch) -> BatchResult:
        """
        Runs a single batch forward through the model and calculates loss.
        :param batch: A single batch of data  from a data loader (might
            be a tuple of data and labels or anything else depending on
            the underlying dataset.
        :return: A BatchResult containing the value of the loss function and
            the number of correctly classified samples in the batch.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, device={self.device})"


class LayerTrainer(Trainer):
    """Trains a :class:`hw2.layers.Layer` classifier with a :mod:`hw2.optimizers` optimizer.

    Images ``(N, C, H, W)`` are flattened to ``(N, C*H*W)``; the model maps them to class
    scores ``(N, num_classes)`` and ``loss_fn`` (e.g. :class:`hw2.layers.CrossEntropyLoss`)
    maps scores and labels to a scalar loss. Gradients flow by the layers' manual backward.
    """

    def __init__(self, model, loss_fn, optimizer):
        """
        :param model: A :class:`hw2.layers.Layer` producing class scores.
        :param loss_fn: A loss :class:`hw2.layers.Layer`: ``forward(scores, y)`` -> scalar,
            ``backward()`` -> d(scores).
        :param optimizer: An :class:`hw2.optimizers.Optimizer` over ``model.params()``.
        """
        super().__init__(model, device=None)
        self.loss_fn = loss_fn
        self.optimizer = optimizer

    def train_batch(self, batch) -> BatchResult:
        X, y = self._flatten(batch)
        # ====== YOUR CODE: ======
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        self.optimizer.zero_grad()
        self.model.backward(self.loss_fn.backward())
        self.optimizer.step()
        return BatchResult(float(loss), self._num_correct(scores, y))
        # ====== END YOUR CODE ======

    def test_batch(self, batch) -> BatchResult:
        X, y = self._flatten(batch)
        # ====== YOUR CODE: ======
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        return BatchResult(float(loss), self._num_correct(scores, y))
        # ====== END YOUR CODE ======

    @staticmethod
    def _flatten(batch):
        """``(X: (N, ...), y: (N,))`` -> ``(X: (N, D), y: (N,))``."""
        X, y = batch
        return X.reshape(X.shape[0], -1), y

    @staticmethod
    def _num_correct(scores: torch.Tensor, y: torch.Tensor) -> int:
        """Samples whose highest score is their label. ``scores: (N, C)``, ``y: (N,)``."""
        return int((scores.argmax(dim=1) == y).sum())

    def _model_state(self):
        """The layers' parameter tensors, in ``model.params()`` order."""
        return [p.detach().clone() for p, _ in self.model.params()]

    def _load_model_state(self, saved, path: Path, saved_class: Optional[str]) -> None:
        params = [p for p, _ in self.model.params()]
        saved_shapes = [tuple(t.shape) for t in saved]
        own_shapes = [tuple(p.shape) for p in params]
        if saved_shapes != own_shapes:
            raise ValueError(self._architecture_message(
                path, saved_class, [f"parameter shapes {saved_shapes} in the checkpoint but "
                                    f"{own_shapes} in the model"]))
        with torch.no_grad():
            for p, t in zip(params, saved):
                p.copy_(t)

    def __repr__(self) -> str:
        return (f"LayerTrainer(model={self.model!r}, loss_fn={self.loss_fn!r}, "
                f"optimizer={self.optimizer!r})")


class ClassifierTrainer(Trainer):
    """Trains a ``torch.nn.Module`` classifier with autograd.

    Batches ``(x, y)`` are moved to the trainer's device. Predictions are
    ``model.classify_scores(scores)`` when the model offers it (every
    :class:`hw2.classifier.Classifier` does), else the arg-max of the scores.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer,
                 device: Optional[Union[torch.device, str]] = None):
        """
        :param model: An ``nn.Module`` mapping ``x: (N, ...)`` to scores ``(N, C)``.
        :param loss_fn: Maps ``(scores, y)`` to a scalar loss tensor (e.g.
            ``nn.CrossEntropyLoss()``).
        :param optimizer: Has ``zero_grad()`` and ``step()`` over the model's parameters
            (a ``torch.optim.Optimizer`` or an :class:`hw2.optimizers.Optimizer`).
        :param device: Where to train; None keeps the model's current device.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"ClassifierTrainer: model must be a torch.nn.Module, got "
                            f"{type(model).__name__}")
        if device is None:
            first = next(iter(model.parameters()), None)
            device = first.device if first is not None else torch.device("cpu")
        super().__init__(model, device)
        self.loss_fn = loss_fn
        self.optimizer = optimizer

    def train_batch(self, batch) -> BatchResult:
        X, y = self._to_device(batch)
        # ====== YOUR CODE: ======
        self.optimizer.zero_grad()
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        loss.backward()
        self.optimizer.step()
        return BatchResult(loss.item(), self._num_correct(scores.detach(), y))
        # ====== END YOUR CODE ======

    def test_batch(self, batch) -> BatchResult:
        X, y = self._to_device(batch)
        # ====== YOUR CODE: ======
        with torch.no_grad():
            scores = self.model(X)
            loss = self.loss_fn(scores, y)
            return BatchResult(loss.item(), self._num_correct(scores, y))
        # ====== END YOUR CODE ======

    def _to_device(self, batch):
        X, y = batch
        return X.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _num_correct(self, scores: torch.Tensor, y: torch.Tensor) -> int:
        """``scores: (N, C)``, ``y: (N,)`` -> number of samples predicted correctly."""
        classify = getattr(self.model, "classify_scores", None)
        with torch.no_grad():
            y_pred = classify(scores) if callable(classify) else scores.argmax(dim=1)
        return int((y_pred.reshape(-1) == y.reshape(-1)).sum())

    def __repr__(self) -> str:
        return (f"ClassifierTrainer(model={type(self.model).__name__}, "
                f"loss_fn={self.loss_fn!r}, optimizer={type(self.optimizer).__name__}, "
                f"device={self.device})")


class ExperimentTrainer(ClassifierTrainer):
    """A :class:`ClassifierTrainer` with the fast paths of the Part 5 experiments.

    * ``autocast_dtype`` (e.g. ``torch.bfloat16``): the model's forward pass runs under
      ``torch.autocast`` and its scores come back as float32, so the loss, the backward pass
      and the optimizer step run outside autocast, as PyTorch recommends. Parameters,
      optimizer state and checkpoints stay float32.
    * ``channels_last``: the model and every 4-D batch use the channels-last memory format.

    The batch methods are :class:`ClassifierTrainer`'s own: autocast is applied by a pair of
    forward hooks on the model (removed by :meth:`close`).
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer,
                 device: Optional[Union[torch.device, str]] = None, *,
                 autocast_dtype: Optional[torch.dtype] = None, channels_last: bool = False):
        """
        :param model: As for :class:`ClassifierTrainer`.
        :param loss_fn: As for :class:`ClassifierTrainer`.
        :param optimizer: As for :class:`ClassifierTrainer`.
        :param device: As for :class:`ClassifierTrainer`.
        :param autocast_dtype: Run the forward pass under autocast to this dtype (None: off).
        :param channels_last: Use the channels-last memory format for model and batches.
        """
        super().__init__(model, loss_fn, optimizer, device=device)
        if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
            raise TypeError(f"autocast_dtype must be a torch.dtype or None, got "
                            f"{autocast_dtype!r}")
        self.autocast_dtype = autocast_dtype
        self.channels_last = check_bool("channels_last", channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._hooks = self._autocast_hooks() if autocast_dtype is not None else []

    def _autocast_hooks(self) -> list:
        """Enter autocast before the model's forward and leave it after (also on errors)."""
        active: List[contextlib.AbstractContextManager] = []

        def enter(module, args):
            context = torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
            context.__enter__()
            active.append(context)

        def leave(module, args, output):
            active.pop().__exit__(None, None, None)
            return output.float() if isinstance(output, torch.Tensor) else output

        return [self.model.register_forward_pre_hook(enter),
                self.model.register_forward_hook(leave, always_call=True)]

    def close(self) -> None:
        """Remove the autocast hooks from the model (it then runs in its own precision)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _to_device(self, batch):
        X, y = super()._to_device(batch)
        if self.channels_last and X.dim() == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        return X, y

    def __repr__(self) -> str:
        return (f"ExperimentTrainer(model={type(self.model).__name__}, "
                f"loss_fn={self.loss_fn!r}, optimizer={type(self.optimizer).__name__}, "
                f"device={self.device}, autocast_dtype={self.autocast_dtype}, "
                f"channels_last={self.channels_last})")
