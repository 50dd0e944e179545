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
naming rule: the best-accuracy file), :meth:`Trainer.last_checkpoint_file` (the state after
the latest epoch), :meth:`Trainer.resume_from` (load a checkpoint and tell its progress; a
following :meth:`Trainer.fit` with the same file continues from it without reading it again),
:meth:`Trainer.save_checkpoint` and :meth:`Trainer.remove_checkpoints`. A checkpoint holds the
model, the optimizer, the fit progress and every random-number state (:mod:`hw2.checkpoints`),
so a fit killed at any point and resumed ends with the :class:`FitResult` of an uninterrupted
one, bit for bit on the CPU at a fixed thread count.

A training or test loss that becomes NaN or infinite raises :class:`TrainingDiverged` (a
``FloatingPointError``) naming the epoch and batch, instead of silently training on garbage;
raised by :meth:`Trainer.fit`, it also carries the epochs completed before the divergence.
The first batch of every epoch is checked (:class:`ClassifierTrainer`: before the model, an
``(x, y)`` pair of tensors of one length with ``x`` in the parameters' dtype; before the loss,
labels within the score columns); the other batches run unchecked, at full speed.

Checkpoints are read to the CPU with ``torch.load(..., weights_only=True)``: only tensors and
plain Python values are ever unpickled, so a checkpoint file cannot run code. A file that is
not a torch archive, holds anything else, is truncated or malformed, or is a checkpoint of
another architecture, another kind of trainer or another run (:attr:`Trainer.identity`) is
refused with a ``ValueError`` naming the file; a failed write raises
:class:`CheckpointWriteError`.
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
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cs236781.train_results import BatchResult, EpochResult, FitResult
from hw2 import checkpoints as ckpt
from hw2.atomic import atomic_write
from hw2.checkpoints import CHECKPOINT_FORMAT, CheckpointWriteError
from hw2.validation import check_bool, check_int

__all__ = ["Trainer", "LayerTrainer", "ClassifierTrainer", "ExperimentTrainer", "FitState",
           "TrainingDiverged", "CheckpointWriteError", "CHECKPOINT_FORMAT"]

# Keyword arguments that fit/train_epoch/test_epoch pass on to _foreach_batch.
_EPOCH_KWARGS = ("verbose", "max_batches")


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int >= ``minimum`` (None when allowed); see :func:`check_int`."""
    if value is None and allow_none:
        return None
    expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    return check_int(name, value, minimum, expected=expected)


def _as_device(device) -> Optional[torch.device]:
    """``device`` (a ``torch.device``, a string such as ``'cuda:0'``, a CUDA index or None).

    :raises TypeError: It is none of these.
    :raises ValueError: A string or index torch does not accept as a device.
    """
    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise TypeError(f"device must be a torch.device, a string such as 'cpu' or 'cuda:0', or "
                        f"None, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r} is not a device torch knows: {err}") from None


class TrainingDiverged(FloatingPointError):
    """The training (or test) loss became NaN or infinite.

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

    def __reduce__(self):
        return type(self), (str(self), self.epoch, self.batch, self.loss), self.__dict__


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
        """The epochs recorded so far, as a :class:`FitResult` (the lists are copies)."""
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

    #: What a checkpoint's ``model_state`` is: ``'torch'`` (a state_dict) or ``'layers'``.
    _checkpoint_kind = "torch"

    def __init__(self, model, device: Optional[Union[torch.device, str]] = None, *,
                 identity: Optional[Dict[str, Any]] = None):
        """
        Initialize the trainer.
        :param model: Instance of the model to train (an ``nn.Module`` or, for
            :class:`LayerTrainer`, a :class:`hw2.layers.Layer`).
        :param device: torch.device to run training on (CPU or GPU). An ``nn.Module`` is moved
            there now; None leaves the model where it is.
        :param identity: The settings that identify this run (plain values, e.g.
            :meth:`hw2.config.ExperimentConfig.identity`): saved in every checkpoint, and a
            checkpoint recording other settings is refused naming the keys that differ.
            None: checkpoints record none and any checkpoint of this architecture is resumed.
        """
        self.model = model
        self.device = _as_device(device)
        self.identity = ckpt.plain_identity(identity)
        if self.device is not None and isinstance(model, nn.Module):
            model.to(self.device)
        self._epoch: Optional[int] = None  # 1-based epoch while fit() runs, for messages
        self._resumed: Optional[tuple] = None  # (file, FitState, rng) from resume_from
        self._check_next_batch = False  # the first batch of an epoch is checked (see _check_batch)

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
            filename without extension (``.pt`` is appended). Besides that best-accuracy
            file, every epoch writes ``NAME.last.pt`` (removed when fit completes). Both hold
            the model, the optimizer, the fit progress and the random-number states (torch,
            numpy, Python, the loaders' generators). If one exists when fit starts, training
            resumes from it (the last file first) and runs only the remaining epochs, drawing
            the same random numbers as an uninterrupted fit: on the CPU at a fixed thread
            count the result is the same bit for bit.
        :param early_stopping: Whether to stop training early if there is no
            test loss improvement for this number of epochs (None: never stop early). A fit
            resumed from a checkpoint that already meets this criterion trains no more epochs.
        :param print_every: Print progress every this number of epochs: the first epoch,
            every ``print_every``-th one and the last one print a ``--- EPOCH i/N ---`` line
            and show progress bars. 0 prints no epoch lines.
        :param kw: ``max_batches`` (batches per epoch) and ``verbose`` (True/False forces the
            progress bars on/off in every epoch).
        :return: A FitResult object containing train and test losses per batch and
            accuracies per epoch.
        :raises TrainingDiverged: The training or test loss became NaN or infinite (a
            ``FloatingPointError``; its ``fit_result`` holds the epochs completed before).
        :raises ValueError: The checkpoint file is unreadable, holds more than tensors and
            plain values, is malformed, belongs to a different model or another run, or holds
            more than ``num_epochs`` epochs.
        :raises CheckpointWriteError: A checkpoint cannot be written (an ``OSError`` naming
            the file; the previous checkpoint is kept).
        """
        num_epochs = _check_int("num_epochs", num_epochs, minimum=0)
        early_stopping = _check_int("early_stopping", early_stopping, minimum=1, allow_none=True)
        print_every = _check_int("print_every", print_every, minimum=0)
        _check_epoch_kwargs(kw, "fit")
        _check_int("max_batches", kw.get("max_batches"), minimum=1, allow_none=True)
        checkpoint_file = self.checkpoint_file(checkpoints) if checkpoints is not None else None

        loaders = (dl_train, dl_test)
        state = FitState()
        if checkpoint_file is not None:
            state = self._resume_fit(checkpoint_file, num_epochs, loaders, print_every)

        for epoch in range(state.epochs_done, num_epochs):
            if self._stops_early(state, early_stopping):
                break  # resumed from the checkpoint of the epoch that stopped the fit early
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
            improved = state.update_best_acc(test_result.accuracy)
            if checkpoint_file is not None:
                self._save_epoch(checkpoint_file, state, improved, loaders)
            if self._stops_early(state, early_stopping):
                if print_every:
                    print(f"*** Early stopping after epoch {epoch + 1}: the test loss has not "
                          f"improved for {early_stopping} epoch(s)")
                break
        if checkpoint_file is not None:
            # The fit is complete: the best file holds a full state too, and a fit resumed
            # from it repeats the remaining epochs exactly; the last file is not needed.
            self.last_checkpoint_file(checkpoint_file).unlink(missing_ok=True)
        return state.fit_result()

    def _resume_fit(self, checkpoint_file: Path, num_epochs: int, loaders: Sequence,
                    print_every: int) -> FitState:
        """The progress to continue from (a fresh one without a checkpoint); restores the
        random-number states of the checkpoint resumed."""
        path = self._resume_file(checkpoint_file)
        if path is None:
            return FitState()
        resumed = self._take_resumed(path)  # resume_from loaded the file into the model
        payload, state, rng = (None, *resumed) if resumed else self._read_fit_checkpoint(path)
        self._check_epochs_done(state, num_epochs, path)  # a refused resume loads nothing
        if payload is not None:
            self._load_states(payload, path)
        ckpt.restore_rng_states(rng, loaders, path)
        if print_every:
            best = "n/a" if state.best_acc is None else f"{state.best_acc:.1f}%"
            print(f"*** Resuming from {path}: {state.epochs_done} epoch(s) done, "
                  f"best test accuracy {best}")
        return state

    @staticmethod
    def _check_epochs_done(state: FitState, num_epochs: int, path: Path) -> None:
        """:raises ValueError: The checkpoint holds more epochs than the fit asks for."""
        if state.epochs_done > num_epochs:
            raise ValueError(f"checkpoint {path} holds {state.epochs_done} epochs, more than "
                             f"the num_epochs={num_epochs} requested; delete it or ask for at "
                             f"least {state.epochs_done} epochs")

    @staticmethod
    def _stops_early(state: FitState, early_stopping: Optional[int]) -> bool:
        """Whether the test loss has not improved for ``early_stopping`` epochs (None: never)."""
        return early_stopping is not None and state.epochs_without_improvement >= early_stopping

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

        It holds the best-accuracy state; :meth:`last_checkpoint_file` the latest epoch's.

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

    @classmethod
    def last_checkpoint_file(cls, checkpoints: Union[str, os.PathLike]) -> Path:
        """The "last" checkpoint of a ``checkpoints`` name: ``NAME.last.pt``, written after
        every epoch of :meth:`fit` and removed when the fit completes."""
        best = cls.checkpoint_file(checkpoints)
        return best.with_name(best.name[:-len(".pt")] + ".last.pt")

    @classmethod
    def remove_checkpoints(cls, checkpoints: Union[str, os.PathLike]) -> None:
        """Delete both checkpoint files of a name (missing ones are ignored)."""
        for path in (cls.checkpoint_file(checkpoints), cls.last_checkpoint_file(checkpoints)):
            path.unlink(missing_ok=True)

    def resume_from(self, checkpoints: Union[str, os.PathLike]) -> Optional[FitState]:
        """Load the checkpoint :meth:`fit` would resume from into the model (and optimizer).

        That is the "last" file when it exists, else the best-accuracy file. A following
        ``fit(..., checkpoints=checkpoints)`` continues from this state without reading the
        file again (and restores its random-number states), so a caller can look at the
        progress (and refuse a foreign checkpoint) before training starts. Training in between
        (:meth:`train_epoch`, or a fit without this checkpoint) makes fit read the file again.

        :param checkpoints: The checkpoint name, as given to :meth:`fit`.
        :return: The progress it holds (``epochs_done``, ``best_acc``, ...), or None when
            there is no such file.
        :raises ValueError: The file is unreadable, not a checkpoint of this kind of trainer,
            malformed, of a different model or of another run (:attr:`identity`).
        :raises OSError: It cannot be read (the message names it).
        """
        path = self._resume_file(checkpoints)
        if path is None:
            return None
        payload, state, rng = self._read_fit_checkpoint(path)
        self._load_states(payload, path)
        self._resumed = (path.absolute(), state, rng)
        return FitState(**dataclasses.asdict(state))

    def _resume_file(self, checkpoints) -> Optional[Path]:
        """The file to resume from: the last checkpoint, else the best one, else None."""
        for path in (self.last_checkpoint_file(checkpoints), self.checkpoint_file(checkpoints)):
            if path.exists() and not path.is_file():
                raise ValueError(f"checkpoint {path} is not a file (it is a folder or a "
                                 f"device); remove it or choose another checkpoints name")
            if path.is_file():
                return path
        return None

    def _take_resumed(self, path: Path) -> Optional[tuple]:
        """``(FitState, rng)`` that :meth:`resume_from` loaded from ``path``, once."""
        resumed, self._resumed = self._resumed, None
        if resumed is not None and resumed[0] == path.absolute():
            return resumed[1], resumed[2]
        return None

    def save_checkpoint(self, checkpoint_filename: str, *, fit_state: Optional[FitState] = None,
                        loaders: Sequence = ()):
        """
        Saves the model in it's current state to a file with the given name (treated
        as a relative path).
        :param checkpoint_filename: File name or relative path to save to.
        :param fit_state: Progress of a running :meth:`fit` to store along (used by fit
            to resume later); with it go the random-number states of torch, numpy, Python
            and of ``loaders``' generators, so that a resumed fit repeats the same draws.
        :param loaders: The data loaders whose shuffling generators are saved (fit's own).

        The file is written to a temporary name and renamed, so an interrupted save never
        leaves a truncated checkpoint behind. It holds plain tensors and Python values only
        (loadable with ``torch.load(..., weights_only=True)``).

        :raises CheckpointWriteError: The file cannot be written (an ``OSError`` naming it;
            the previous file of that name is left as it was).
        """
        payload = {
            "format": CHECKPOINT_FORMAT,
            "trainer_kind": self._checkpoint_kind,
            "model_class": type(self.model).__name__,
            "model_state": self._model_state(),
            "optimizer_state": self._optimizer_state(),
            "fit_state": dataclasses.asdict(fit_state) if fit_state is not None else None,
            "rng": ckpt.rng_states(loaders) if fit_state is not None else None,
            "identity": self.identity,
        }
        path = Path(checkpoint_filename)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as f:
                torch.save(payload, f)
        except OSError as err:
            raise CheckpointWriteError(path, err) from err

    def _save_epoch(self, checkpoint_file: Path, state: FitState, improved: bool,
                    loaders: Sequence) -> None:
        """After an epoch: the best file when the accuracy improved, then the last file.

        The best file is written first: a kill between the two leaves the last file one
        epoch behind, and the resumed run repeats that epoch (and the same improvement).
        """
        if improved:
            self.save_checkpoint(checkpoint_file, fit_state=state, loaders=loaders)
        self.save_checkpoint(self.last_checkpoint_file(checkpoint_file), fit_state=state,
                             loaders=loaders)

    def _read_fit_checkpoint(self, path: Path) -> tuple:
        """Read and check a checkpoint written by :meth:`fit`; nothing is loaded yet (see
        :meth:`_load_states`). :return: ``(payload, FitState, rng)``."""
        payload = self._load_checkpoint_file(path)
        ckpt.check_payload(payload, path, self._checkpoint_kind)
        if payload["fit_state"] is None:
            raise ValueError(f"{path} holds a model but no fit progress (it was written by "
                             f"save_checkpoint outside fit), so fit cannot resume from it")
        self._check_model_state(payload["model_state"], path, payload.get("model_class"))
        ckpt.check_identity(payload["identity"], self.identity, path)
        return payload, FitState(**payload["fit_state"]), payload["rng"]

    def _load_states(self, payload: dict, path: Path) -> None:
        """Load a checked checkpoint's optimizer state, then its weights: the optimizer checks
        its state before changing anything, so a misfit leaves the model as it was too."""
        self._load_optimizer_state(payload.get("optimizer_state"), path)
        self._load_model_state(payload["model_state"])

    def _load_checkpoint_file(self, path: Path):
        """``torch.load`` a checkpoint safely: tensors and plain Python values only.

        :raises ValueError: The file is not a torch file, holds other objects (they are never
            unpickled), or is truncated.
        :raises OSError: It cannot be read (the message names the file).
        """
        ckpt.check_torch_file(path)
        try:  # to the CPU: torch takes random-number states only there; load_state_dict
            # copies the weights (and optimizers their state) to the parameters' device
            return torch.load(path, map_location="cpu", weights_only=True)
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
        except OSError as err:
            raise ckpt.read_error(path, err) from None

    def _model_state(self):
        """The model's weights as saved in a checkpoint (``nn.Module``: its state_dict)."""
        return self.model.state_dict()

    def _check_model_state(self, saved, path: Path, saved_class: Optional[str]) -> None:
        """Refuse weights saved from another architecture (names or shapes differ)."""
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

    def _load_model_state(self, saved) -> None:
        """Load weights :meth:`_check_model_state` accepted."""
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
        except (ValueError, KeyError, RuntimeError, TypeError) as err:
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
        self._resumed = None  # the weights move on: what resume_from loaded no longer holds
        self._set_training(True)
        return self._foreach_batch(dl_train, self.train_batch, check_finite=True, **kw)

    def test_epoch(self, dl_test: DataLoader, **kw) -> EpochResult:
        """
        Evaluate model once over a test set (single epoch).
        :param dl_test: DataLoader for the test set.
        :param kw: Keyword args supported by _foreach_batch.
        :return: An EpochResult for the epoch.
        :raises TrainingDiverged: A batch's test loss is NaN or infinite (NaN in the test
            data, or a diverged model), named by epoch and batch as for training.
        """
        _check_epoch_kwargs(kw, "test_epoch")
        self._set_training(False)
        return self._foreach_batch(dl_test, self.test_batch, check_finite=True, **kw)

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
                self._check_next_batch = batch_idx == 0
                result = forward_fn(batch)
                loss = float(result.loss)
                if check_finite and not math.isfinite(loss):
                    raise self._diverged(name, loss, batch_idx + 1)
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

    def _epoch_text(self) -> str:
        """``'epoch N, '`` while :meth:`fit` runs epoch N, else ``''`` (for messages)."""
        return f"epoch {self._epoch}, " if self._epoch is not None else ""

    def _diverged(self, name: str, loss: float, batch: int) -> TrainingDiverged:
        """The error of a non-finite loss in ``name`` (train_batch or test_batch)."""
        where = self._epoch_text()
        if name == "test_batch":
            cause = ("the model diverged or the test data holds NaN or infinite values")
            text = f"{name}: the test loss is {loss} at {where}batch {batch}; {cause}"
        else:
            text = (f"{name}: the training loss is {loss} at {where}batch {batch}; training "
                    f"diverged (try a smaller learning rate or weight scale)")
        return TrainingDiverged(text, epoch=self._epoch, batch=batch, loss=loss)

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

    _checkpoint_kind = "layers"

    def __init__(self, model, loss_fn, optimizer, *, identity: Optional[Dict[str, Any]] = None):
        """
        :param model: A :class:`hw2.layers.Layer` producing class scores.
        :param loss_fn: A loss :class:`hw2.layers.Layer`: ``forward(scores, y)`` -> scalar,
            ``backward()`` -> d(scores).
        :param optimizer: An :class:`hw2.optimizers.Optimizer` over ``model.params()``.
        :param identity: As for :class:`Trainer`.
        :raises TypeError: ``model`` is a ``torch.nn.Module`` or not a layer (it has no
            ``params()`` and ``backward()``).
        """
        if isinstance(model, nn.Module) or not all(
                callable(getattr(model, name, None)) for name in ("params", "backward")):
            kind = "a torch.nn.Module" if isinstance(model, nn.Module) else "not a layer"
            raise TypeError(f"LayerTrainer: model must be a hw2.layers.Layer (with params() "
                            f"and a manual backward()), got {type(model).__name__} ({kind}); "
                            f"train torch.nn.Modules with ClassifierTrainer")
        super().__init__(model, device=None, identity=identity)
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

    def _check_model_state(self, saved, path: Path, saved_class: Optional[str]) -> None:
        saved_shapes = [tuple(t.shape) for t in saved]
        own_shapes = [tuple(p.shape) for p, _ in self.model.params()]
        if saved_shapes != own_shapes:
            raise ValueError(self._architecture_message(
                path, saved_class, [f"parameter shapes {saved_shapes} in the checkpoint but "
                                    f"{own_shapes} in the model"]))

    def _load_model_state(self, saved) -> None:
        with torch.no_grad():
            for (p, _), t in zip(self.model.params(), saved):
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
                 device: Optional[Union[torch.device, str]] = None, *,
                 identity: Optional[Dict[str, Any]] = None):
        """
        :param model: An ``nn.Module`` mapping ``x: (N, ...)`` to scores ``(N, C)``.
        :param loss_fn: Maps ``(scores, y)`` to a scalar loss tensor (e.g.
            ``nn.CrossEntropyLoss()``).
        :param optimizer: Has ``zero_grad()`` and ``step()`` over the model's parameters
            (a ``torch.optim.Optimizer`` or an :class:`hw2.optimizers.Optimizer`).
        :param device: Where to train; None keeps the model's current device.
        :param identity: As for :class:`Trainer`.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"ClassifierTrainer: model must be a torch.nn.Module, got "
                            f"{type(model).__name__}")
        if device is None:
            first = next(iter(model.parameters()), None)
            device = first.device if first is not None else torch.device("cpu")
        super().__init__(model, device, identity=identity)
        self.loss_fn = loss_fn
        self.optimizer = optimizer

    def train_batch(self, batch) -> BatchResult:
        X, y = self._to_device(batch)
        # ====== YOUR CODE: ======
        self.optimizer.zero_grad()
        scores = self.model(X)
        self._check_scores(scores, y)
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
            self._check_scores(scores, y)
            loss = self.loss_fn(scores, y)
            return BatchResult(loss.item(), self._num_correct(scores, y))
        # ====== END YOUR CODE ======

    def _to_device(self, batch):
        """``(x: (N, ...), y: (N,))`` on the trainer's device (an epoch's first batch checked)."""
        if self._check_next_batch:
            self._check_batch(batch)
        X, y = batch
        return X.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    # -- the checks of an epoch's first batch (the others go unchecked, at full speed) ---------

    def _where(self) -> str:
        """For messages: ``'ClassifierTrainer: the epoch N, batch 1'`` (the first batch)."""
        return f"{type(self).__name__}: the {self._epoch_text()}batch 1"

    def _check_batch(self, batch) -> None:
        """An ``(x: (N, ...), y: (N, ...))`` pair of tensors, ``x`` in the parameters' dtype.

        :raises TypeError: Not a pair of tensors, or ``x`` has another dtype.
        :raises ValueError: ``x`` and ``y`` hold different numbers of samples.
        """
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            got = (f"a {type(batch).__name__} of {len(batch)} items"
                   if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}")
            raise TypeError(f"{self._where()} must be an (x, y) pair of tensors, got {got}")
        kinds = [type(v).__name__ for v in batch]
        if not all(isinstance(v, torch.Tensor) for v in batch):
            raise TypeError(f"{self._where()} must be an (x, y) pair of tensors, got "
                            f"({', '.join(kinds)})")
        x, y = batch
        if x.dim() == 0 or y.dim() == 0 or len(x) != len(y):
            raise ValueError(f"{self._where()} has x of shape {tuple(x.shape)} and y of shape "
                             f"{tuple(y.shape)}: expected the same number of samples N in both "
                             f"(x: (N, ...), y: (N,))")
        param = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        if param is not None and x.dtype != param.dtype:
            model_fix = f" or the model (model.to({x.dtype}))" if x.is_floating_point() else ""
            raise TypeError(f"{self._where()} has inputs x of dtype {x.dtype}, but the model's "
                            f"parameters are {param.dtype}: convert the data (e.g. "
                            f"x.to({param.dtype})){model_fix}")

    def _check_scores(self, scores: torch.Tensor, y: torch.Tensor) -> None:
        """Integer labels of the epoch's first batch lie in ``0..C-1`` (``scores: (N, C)``).

        :raises ValueError: A label is negative or not below the number of score columns.
        """
        if not self._check_next_batch:
            return
        self._check_next_batch = False
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool or \
                not isinstance(scores, torch.Tensor) or scores.dim() != 2 or y.numel() == 0:
            return
        num_classes = scores.shape[1]
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"{self._where()} has the label {bad}, but the model gives "
                             f"{num_classes} score columns: labels must be class indices in "
                             f"0..{num_classes - 1}")

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


#: The dtypes :class:`ExperimentTrainer` autocasts to: torch's own list of autocast dtypes
#: (``torch.autocast`` disables itself, with only a warning, for another one on the CPU).
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


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
                 autocast_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 identity: Optional[Dict[str, Any]] = None):
        """
        :param model: As for :class:`ClassifierTrainer`.
        :param loss_fn: As for :class:`ClassifierTrainer`.
        :param optimizer: As for :class:`ClassifierTrainer`.
        :param device: As for :class:`ClassifierTrainer`.
        :param autocast_dtype: Run the forward pass under autocast to this dtype:
            ``torch.bfloat16`` or ``torch.float16`` (None: off).
        :param channels_last: Use the channels-last memory format for model and batches.
        :param identity: As for :class:`Trainer`.
        """
        # Checked before the base class moves the model: a refused argument changes nothing.
        autocast_dtype = self._check_autocast_dtype(autocast_dtype)
        channels_last = check_bool("channels_last", channels_last)
        super().__init__(model, loss_fn, optimizer, device=device, identity=identity)
        self.autocast_dtype = autocast_dtype
        self.channels_last = channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._hooks = self._autocast_hooks() if autocast_dtype is not None else []

    @staticmethod
    def _check_autocast_dtype(dtype) -> Optional[torch.dtype]:
        """None, or one of ``AUTOCAST_DTYPES``: a float32 or integer "autocast" would not
        run in low precision (on the CPU torch disables it, with only a warning).

        :raises TypeError: Not a ``torch.dtype`` (e.g. the string ``"bf16"``).
        :raises ValueError: A dtype autocast does not run in.
        """
        if dtype is None:
            return None
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"autocast_dtype must be a torch.dtype or None, got {dtype!r} "
                            f"({type(dtype).__name__})")
        if dtype not in AUTOCAST_DTYPES:
            expected = " or ".join(str(d) for d in AUTOCAST_DTYPES)
            raise ValueError(f"autocast_dtype must be {expected} (or None: no autocast), got "
                             f"{dtype}")
        return dtype

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
        """As :meth:`ClassifierTrainer._to_device`; a 4-D ``x: (N, C, H, W)`` in channels-last."""
        X, y = super()._to_device(batch)
        if self.channels_last and X.dim() == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        return X, y

    def __repr__(self) -> str:
        return (f"ExperimentTrainer(model={type(self.model).__name__}, "
                f"loss_fn={self.loss_fn!r}, optimizer={type(self.optimizer).__name__}, "
                f"device={self.device}, autocast_dtype={self.autocast_dtype}, "
                f"channels_last={self.channels_last})")
