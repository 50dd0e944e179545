"""Training loops at three levels of granularity: many epochs, one epoch, one batch.

:class:`Trainer` runs epochs (:meth:`Trainer.fit`: early stopping, checkpoints, resuming) and
single epochs (:meth:`Trainer.train_epoch`/:meth:`Trainer.test_epoch`, over the one loop
:meth:`Trainer._foreach_batch`) for every kind of model; :class:`LayerTrainer` (the
:mod:`hw2.layers` models, manual backward) and :class:`ClassifierTrainer` (``nn.Module``
classifiers, autograd) implement the single batch. Checkpoint files and their checks are
:mod:`hw2.checkpoints`. A NaN or infinite loss raises :class:`TrainingDiverged`.
"""
import abc
import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cs236781.train_results import BatchResult, EpochResult, FitResult
from hw2 import checkpoints as ckpt
from hw2.checkpoints import Checkpoint, CheckpointWriteError
from hw2.validation import check_bool, check_device, check_instance, check_int, check_optional

__all__ = ["Trainer", "LayerTrainer", "ClassifierTrainer", "FitState", "TrainingDiverged",
           "CheckpointWriteError"]


class TrainingDiverged(FloatingPointError):
    """The training (``training``) or test loss became NaN or infinite: ``loss`` at the 1-based
    ``batch`` of ``epoch`` (set by fit, with ``fit_result``: the epochs completed before)."""

    def __init__(self, training: bool, loss: float, batch: int, epoch: Optional[int] = None,
                 fit_result: Optional[FitResult] = None):
        super().__init__(training, loss, batch, epoch, fit_result)
        self.training, self.loss, self.batch = training, loss, batch
        self.epoch, self.fit_result = epoch, fit_result

    def __str__(self) -> str:
        where = f"epoch {self.epoch}, batch {self.batch}" if self.epoch else f"batch {self.batch}"
        if self.training:
            return (f"train_batch: the training loss is {self.loss} at {where}; training "
                    f"diverged (try a smaller learning rate or weight scale)")
        return (f"test_batch: the test loss is {self.loss} at {where}; the model diverged or "
                f"the test data holds NaN or infinite values")


@dataclasses.dataclass
class FitState:
    """What :meth:`Trainer.fit` tracks across epochs (and saves in checkpoints): losses per
    batch and accuracies (%) per epoch, as in :class:`FitResult`, and the best values."""

    epochs_done: int = 0
    train_loss: List[float] = dataclasses.field(default_factory=list)
    train_acc: List[float] = dataclasses.field(default_factory=list)
    test_loss: List[float] = dataclasses.field(default_factory=list)
    test_acc: List[float] = dataclasses.field(default_factory=list)
    best_acc: Optional[float] = None
    best_test_loss: Optional[float] = None
    epochs_without_improvement: int = 0

    def fit_result(self) -> FitResult:
        """The epochs recorded so far (the lists are copies)."""
        return FitResult(self.epochs_done, list(self.train_loss), list(self.train_acc),
                         list(self.test_loss), list(self.test_acc))


class Trainer(abc.ABC):
    """
    The training loop, in three layers that call each other:
    - ``fit``: many epochs, with early stopping and checkpoints;
    - ``train_epoch``/``test_epoch``: one pass over a data loader;
    - ``train_batch``/``test_batch``: one batch, written by each subclass.
    """

    def __init__(self, model, device: Optional[Union[torch.device, str]] = None, *,
                 optimizer=None, identity: Optional[dict] = None):
        """
        Set up a trainer for one model.
        :param model: The model the trainer updates.
        :param device: torch.device to run training on (CPU or GPU); None: where it is.
        :param optimizer: The model's optimizer (checkpoints hold its ``state_dict()``).
        :param identity: The run's settings (plain values): saved in checkpoints, and a
            checkpoint recording other settings is refused. None: any is resumed.
        """
        self.model = model
        self.device = check_device("device", device)
        self.optimizer = optimizer
        self.identity = ckpt.plain_identity(identity)
        if self.device is not None and isinstance(model, nn.Module):
            model.to(self.device)

    def fit(self, dl_train: DataLoader, dl_test: DataLoader, num_epochs: int,
            checkpoints: str = None, early_stopping: int = None, print_every: int = 1,
            resume: Optional[Checkpoint] = None, **kw) -> FitResult:
        """
        Alternate a training epoch and a test epoch until ``num_epochs`` are done.
        :param dl_train: Batches to train on.
        :param dl_test: Batches to evaluate on after each training epoch.
        :param num_epochs: How many epochs in all, counting those a resume brings back.
        :param checkpoints: None, or a file name without its extension: ``NAME.pt`` then
            holds the model of the best test accuracy so far, and ``NAME.last.pt``, written
            after every epoch (an exact resume), is removed at the end; fit resumes from either.
        :param early_stopping: Stop once the mean test loss has gone this many epochs
            without improving (None: never stop early).
        :param print_every: Print progress every this number of epochs (0: never).
        :param resume: A checkpoint from :meth:`resume_from`, to continue from without
            reading the file again.
        :param kw: ``verbose``, ``max_batches``: passed to train_epoch/test_epoch.
        :return: The run's FitResult: losses of every batch, accuracies of every epoch.
        :raises ValueError: The checkpoint is refused or holds more than ``num_epochs``.
        """
        num_epochs = check_int("num_epochs", num_epochs, minimum=0)
        early_stopping = check_optional(check_int, "early_stopping", early_stopping, 1)
        print_every = check_int("print_every", print_every, minimum=0)
        self._check_epoch_kw(kw)
        best_file = ckpt.checkpoint_file(checkpoints) if checkpoints is not None else None
        if resume is None and checkpoints is not None:
            resume = self.resume_from(checkpoints)
        loaders = (dl_train, dl_test)
        state = FitState()
        if resume is not None:
            state = self._restore(resume, num_epochs, loaders, print_every)

        stop = early_stopping is not None and \
            state.epochs_without_improvement >= early_stopping  # a resumed fit that stopped
        try:
            for epoch in range(state.epochs_done, num_epochs):
                if stop:
                    break
                verbose = print_every > 0 and (epoch % print_every == 0 or
                                               epoch == num_epochs - 1)
                if verbose:
                    print(f"--- EPOCH {epoch + 1}/{num_epochs} ---")
                kw_epoch = {"verbose": verbose, **kw}

                # Train and evaluate for one epoch, and record the results in ``state``.
                # ====== YOUR CODE: ======
                train_result = self.train_epoch(dl_train, **kw_epoch)
                test_result = self.test_epoch(dl_test, **kw_epoch)
                state.train_loss.extend(train_result.losses)
                state.train_acc.append(train_result.accuracy)
                state.test_loss.extend(test_result.losses)
                state.test_acc.append(test_result.accuracy)
                state.epochs_done = epoch + 1
                # ====== END YOUR CODE ======

                # Early stopping: count the epochs since the mean test loss last improved, and
                # stop after early_stopping of them.
                # ====== YOUR CODE: ======
                test_loss = sum(test_result.losses) / len(test_result.losses)
                if state.best_test_loss is None or test_loss < state.best_test_loss:
                    state.best_test_loss = test_loss
                    state.epochs_without_improvement = 0
                else:
                    state.epochs_without_improvement += 1
                stop = early_stopping is not None and \
                    state.epochs_without_improvement >= early_stopping
                # ====== END YOUR CODE ======

                # Keep the model with the best test accuracy so far (in ``best_file``).
                # ====== YOUR CODE: ======
                if state.best_acc is None or test_result.accuracy > state.best_acc:
                    state.best_acc = test_result.accuracy
                    if best_file is not None:
                        self.save_checkpoint(best_file, fit_state=state, loaders=loaders)
                # ====== END YOUR CODE ======

                if best_file is not None:  # every epoch: what an exact resume needs
                    self.save_checkpoint(ckpt.last_checkpoint_file(best_file),
                                         fit_state=state, loaders=loaders)
                if stop and print_every:
                    print(f"*** Early stopping after epoch {epoch + 1}: the test loss has "
                          f"not improved for {early_stopping} epoch(s)")
        except TrainingDiverged as err:
            err.epoch, err.fit_result = state.epochs_done + 1, state.fit_result()
            raise
        if best_file is not None:  # the best file holds a full state; a later fit may extend
            ckpt.last_checkpoint_file(best_file).unlink(missing_ok=True)
        return state.fit_result()

    # -- checkpoints (the files and their checks: hw2.checkpoints) --------------------------

    checkpoint_file = staticmethod(ckpt.checkpoint_file)
    last_checkpoint_file = staticmethod(ckpt.last_checkpoint_file)
    remove_checkpoints = staticmethod(ckpt.remove_checkpoints)

    def save_checkpoint(self, checkpoint_filename: str, *, fit_state: Optional[FitState] = None,
                        loaders: Sequence = ()) -> None:
        """
        Write the model and its optimizer, as they are now, to ``checkpoint_filename``
        (atomically: a crash leaves the previous file or the new one, never half of one).
        :param fit_state: The progress of a running fit; with it go the random-number
            states (torch, numpy, Python, the ``loaders``' generators) a resume restores.
        :raises CheckpointWriteError: The file cannot be written (the old one is kept).
        """
        state = dataclasses.asdict(fit_state) if fit_state is not None else None
        Checkpoint.capture(self.model, self.optimizer, self.identity, state,
                           loaders).save(checkpoint_filename)

    def resume_from(self, checkpoints: Union[str, os.PathLike]) -> Optional[Checkpoint]:
        """Read and check the checkpoint :meth:`fit` would resume from (the last file, else
        the best one); nothing is loaded yet: pass it to ``fit(..., resume=...)``.

        :return: The checkpoint (``epochs_done``: its progress), or None without one.
        :raises ValueError: Unreadable, malformed, without fit progress, or of another kind
            of model, architecture or run (:attr:`identity`), naming the file.
        """
        return Checkpoint.for_resume(checkpoints, self.model, self.identity)

    def _restore(self, checkpoint: Checkpoint, num_epochs: int, loaders: Sequence,
                 print_every: int) -> FitState:
        """Load a checked checkpoint into model, optimizer and random-number generators,
        and return its progress. :raises ValueError: More than ``num_epochs`` epochs."""
        state = FitState(**checkpoint.fit_state)
        if state.epochs_done > num_epochs:
            raise ValueError(f"checkpoint {checkpoint.path} holds {state.epochs_done} epochs, "
                             f"more than the num_epochs={num_epochs} requested; delete it or "
                             f"ask for at least {state.epochs_done} epochs")
        checkpoint.restore(self.model, self.optimizer, loaders)
        if print_every:
            best = "n/a" if state.best_acc is None else f"{state.best_acc:.1f}%"
            print(f"*** Resuming from {checkpoint.path}: {state.epochs_done} epoch(s) done, "
                  f"best test accuracy {best}")
        return state

    # -- one epoch -----------------------------------------------------------------------------

    def train_epoch(self, dl_train: DataLoader, **kw) -> EpochResult:
        """
        One pass over ``dl_train``, updating the model after each batch.
        :param kw: ``verbose``, ``max_batches`` (see :meth:`_foreach_batch`).
        :return: The epoch's losses (one per batch) and accuracy.
        """
        self._check_epoch_kw(kw)
        return self._foreach_batch(dl_train, self.train_batch, training=True, **kw)

    def test_epoch(self, dl_test: DataLoader, **kw) -> EpochResult:
        """
        One pass over ``dl_test`` in evaluation mode, without updating anything.
        :param kw: ``verbose``, ``max_batches`` (see :meth:`_foreach_batch`).
        :return: The epoch's losses (one per batch) and accuracy.
        """
        self._check_epoch_kw(kw)
        return self._foreach_batch(dl_test, self.test_batch, training=False, **kw)

    @staticmethod
    def _check_epoch_kw(kw: dict) -> None:
        """``kw`` of fit/train_epoch/test_epoch: ``verbose`` (bool), ``max_batches`` (>= 1)."""
        unknown = sorted(set(kw) - {"verbose", "max_batches"})
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(unknown)}; supported: "
                            f"verbose, max_batches")
        check_bool("verbose", kw.get("verbose", True))
        check_optional(check_int, "max_batches", kw.get("max_batches"), 1)

    def _foreach_batch(self, dl: DataLoader, forward_fn: Callable[[Any], BatchResult],
                       verbose: bool = True, max_batches: Optional[int] = None, *,
                       training: bool) -> EpochResult:
        """
        Run ``forward_fn`` on each batch of ``dl`` and gather the epoch's results, with a
        progress bar that ends on the epoch's mean loss and accuracy.

        :param forward_fn: ``train_batch`` or ``test_batch`` (its name labels the bar).
        :param max_batches: Stop after this many batches (None: the whole loader).
        :param training: Put the model in training mode (else evaluation mode).
        :return: The losses per batch and the accuracy, 100 * correct / samples.
        :raises TrainingDiverged: A batch's loss is NaN or infinite.
        :raises ValueError: The loader yielded no batches.
        """
        self.model.train(training)
        name = forward_fn.__name__
        losses: List[float] = []
        num_correct = num_samples = 0
        total = len(dl) if hasattr(dl, "__len__") else None
        if max_batches is not None:
            total = max_batches if total is None else min(total, max_batches)
        # The bar is redrawn at most as often as tqdm would; per batch the loop reads the clock.
        next_draw, undrawn = 0.0, 0
        with tqdm(desc=name, total=total, disable=not verbose, file=sys.stdout) as bar:
            for batch_idx, batch in enumerate(dl):
                if batch_idx == max_batches:
                    break
                if batch_idx == 0:
                    self._check_batch(batch)
                result = forward_fn(batch)
                loss = float(result.loss)
                if not math.isfinite(loss):
                    raise TrainingDiverged(training, loss, batch_idx + 1)
                losses.append(loss)
                num_correct += int(result.num_correct)
                num_samples += len(batch[0])
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

    def _check_batch(self, batch) -> None:
        """Check the first batch of an epoch before the model sees it (nothing by default)."""

    # -- one batch (model specific) -------------------------------------------------------------

    @abc.abstractmethod
    def train_batch(self, batch) -> BatchResult:
        """
        One optimisation step: forward, loss, backward, parameter update.
        :param batch: What the data loader yields, usually ``(x: (N, ...), y: (N,))``.
        :return: The batch's loss and how many of its samples were classified right.
        """

    @abc.abstractmethod
    def test_batch(self, batch) -> BatchResult:
        """
        Forward and loss only, without gradients or updates.
        :param batch: What the data loader yields, usually ``(x: (N, ...), y: (N,))``.
        :return: The batch's loss and how many of its samples were classified right.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, device={self.device})"


class LayerTrainer(Trainer):
    """Trains a :class:`hw2.layers.Layer` classifier with a :mod:`hw2.optimizers` optimizer
    (manual backward); images ``(N, C, H, W)`` are flattened to ``(N, C*H*W)``."""

    def __init__(self, model, loss_fn, optimizer, *, identity: Optional[dict] = None):
        """
        :param model: A :class:`hw2.layers.Layer` mapping ``(N, D)`` to scores ``(N, C)``.
        :param loss_fn: A loss layer: ``forward(scores, y)`` -> scalar, ``backward()`` -> dscores.
        :param optimizer: An :class:`hw2.optimizers.Optimizer` over ``model.params()``.
        :param identity: As for :class:`Trainer`.
        :raises TypeError: ``model`` is not a layer (a ``torch.nn.Module``, ...).
        """
        if isinstance(model, nn.Module) or not all(
                callable(getattr(model, name, None)) for name in ("params", "backward")):
            kind = "a torch.nn.Module" if isinstance(model, nn.Module) else "not a layer"
            raise TypeError(f"LayerTrainer: model must be a hw2.layers.Layer (with params() "
                            f"and a manual backward()), got {type(model).__name__} ({kind}); "
                            f"train torch.nn.Modules with ClassifierTrainer")
        # Initialize the trainer with the model and optimizer, and keep the loss function.
        # ====== YOUR CODE: ======
        super().__init__(model, optimizer=optimizer, identity=identity)
        self.loss_fn = loss_fn
        # ====== END YOUR CODE ======

    def train_batch(self, batch) -> BatchResult:
        X, y = batch
        X = X.reshape(X.shape[0], -1)  # (N, C, H, W) -> (N, C*H*W)
        # ====== YOUR CODE: ======
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        self.optimizer.zero_grad()
        self.model.backward(self.loss_fn.backward())
        self.optimizer.step()
        num_correct = int((scores.argmax(dim=1) == y).sum())
        return BatchResult(float(loss), num_correct)
        # ====== END YOUR CODE ======

    def test_batch(self, batch) -> BatchResult:
        X, y = batch
        X = X.reshape(X.shape[0], -1)  # (N, C, H, W) -> (N, C*H*W)
        # ====== YOUR CODE: ======
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        num_correct = int((scores.argmax(dim=1) == y).sum())
        return BatchResult(float(loss), num_correct)
        # ====== END YOUR CODE ======

    def __repr__(self) -> str:
        return (f"LayerTrainer(model={self.model!r}, loss_fn={self.loss_fn!r}, "
                f"optimizer={self.optimizer!r})")


class ClassifierTrainer(Trainer):
    """Trains a ``torch.nn.Module`` classifier with autograd, on the trainer's device.
    Predictions are the model's ``classify_scores(scores)`` (a :class:`hw2.classifier.Classifier`
    has one), else the arg-max of the scores."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer,
                 device: Optional[Union[torch.device, str]] = None, *,
                 identity: Optional[dict] = None):
        """
        :param model: An ``nn.Module`` mapping ``x: (N, ...)`` to scores ``(N, C)``.
        :param loss_fn: Maps ``(scores, y)`` to a scalar loss (e.g. ``nn.CrossEntropyLoss()``).
        :param optimizer: Has ``zero_grad()`` and ``step()`` over the model's parameters.
        :param device: Where to train; None keeps the model's current device.
        :param identity: As for :class:`Trainer`.
        """
        check_instance("ClassifierTrainer: model", model, nn.Module, "a torch.nn.Module")
        super().__init__(model, device, optimizer=optimizer, identity=identity)
        if self.device is None:  # where the model is
            first = next(iter(model.parameters()), None)
            self.device = first.device if first is not None else torch.device("cpu")
        self.loss_fn = loss_fn

    def train_batch(self, batch) -> BatchResult:
        X, y = batch
        X, y = X.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # ====== YOUR CODE: ======
        self.optimizer.zero_grad()
        scores = self.model(X)
        loss = self.loss_fn(scores, y)
        loss.backward()
        self.optimizer.step()
        num_correct = int((self._predict(scores.detach()) == y).sum())
        return BatchResult(loss.item(), num_correct)
        # ====== END YOUR CODE ======

    def test_batch(self, batch) -> BatchResult:
        X, y = batch
        X, y = X.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # ====== YOUR CODE: ======
        with torch.no_grad():
            scores = self.model(X)
            loss = self.loss_fn(scores, y)
            num_correct = int((self._predict(scores) == y).sum())
        return BatchResult(loss.item(), num_correct)
        # ====== END YOUR CODE ======

    def _predict(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores: (N, C)`` -> predicted classes ``(N,)``: the model's ``classify_scores``
        (every :class:`hw2.classifier.Classifier` has one), else the arg-max."""
        classify = getattr(self.model, "classify_scores", None)
        return classify(scores) if classify is not None else scores.argmax(dim=1)

    def _check_batch(self, batch) -> None:
        """An ``(x: (N, ...), y: (N,))`` pair of tensors, ``x`` in the parameters' dtype.

        Labels outside ``0..C-1`` are refused by the loss itself (``IndexError: Target 7 is
        out of bounds``).

        :raises TypeError: Not a pair of tensors, or ``x`` has another dtype.
        :raises ValueError: ``x`` and ``y`` hold different numbers of samples.
        """
        where = f"{type(self).__name__}: the batch 1"
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            got = (f"a {type(batch).__name__} of {len(batch)} items"
                   if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}")
            raise TypeError(f"{where} must be an (x, y) pair of tensors, got {got}")
        if not all(isinstance(v, torch.Tensor) for v in batch):
            kinds = ", ".join(type(v).__name__ for v in batch)
            raise TypeError(f"{where} must be an (x, y) pair of tensors, got ({kinds})")
        x, y = batch
        if x.dim() == 0 or y.dim() == 0 or len(x) != len(y):
            raise ValueError(f"{where} has x of shape {tuple(x.shape)} and y of shape "
                             f"{tuple(y.shape)}: expected the same number of samples N in both "
                             f"(x: (N, ...), y: (N,))")
        param = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        if param is not None and x.dtype != param.dtype:
            model_fix = f" or the model (model.to({x.dtype}))" if x.is_floating_point() else ""
            raise TypeError(f"{where} has inputs x of dtype {x.dtype}, but the model's "
                            f"parameters are {param.dtype}: convert the data (e.g. "
                            f"x.to({param.dtype})){model_fix}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self.model).__name__}, "
                f"loss_fn={self.loss_fn!r}, optimizer={type(self.optimizer).__name__}, "
                f"device={self.device})")
