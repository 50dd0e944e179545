"""Experiments of the assignment.

* Part 3: :func:`mlp_experiment` trains one MLP binary classifier of a given depth and width,
  tunes its decision threshold on validation data and reports its accuracies.
* Part 5: :func:`cnn_experiment` trains one CNN/ResNet/YourCNN configuration (``K`` filters per
  layer, ``L`` layers per block) and writes its configuration and :class:`FitResult` to
  ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json``; :func:`load_experiment` reads such a file back.
  ``python -m hw2.experiments`` is the command line: ``run-exp`` (one run), ``grid-run``,
  ``grid-submit``, ``grid-show`` (the grids of :mod:`hw2.grids`) and ``summarize``.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from numbers import Integral, Real
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader

from cs236781.train_results import BatchResult, FitResult
from hw2.classifier import ArgMaxClassifier, BinaryClassifier, select_roc_thresh
from hw2.cnn import CNN, ResNet, YourCNN
from hw2.datasets import (
    DATASET_NAMES, SYNTHETIC_BANNER, DatasetUnavailableError, check_dataset_name, data_root,
    dataset_info, default_dataset_name, load_dataset,
)
from hw2.mlp import MLP
from hw2.tensor_data import TensorLoader, dataset_tensors
from hw2.training import ClassifierTrainer, TrainingDiverged

__all__ = [
    "MLP_EXPERIMENT_HP", "mlp_experiment",
    "MODEL_TYPES", "LOADERS", "EXPERIMENT_PARAMS", "ExperimentConfigError", "ExperimentRun",
    "UsageError", "expand_channels", "result_filename", "cnn_experiment", "rerun_config",
    "to_jsonable", "save_experiment", "atomic_write_text", "load_experiment", "build_parser",
    "main", "USAGE_ERROR", "DIVERGED",
]

# ==============================================================================================
# Part 3: MLP depth/width experiment
# ==============================================================================================

#: Every hyperparameter of :func:`mlp_experiment` except depth, width and epochs. Chosen on the
#: Part 3 moons data: tanh keeps narrow, deep networks trainable (ReLU units of width 2 die and
#: leave a constant classifier), and Adam with a little weight decay converges within 10 epochs.
MLP_EXPERIMENT_HP: Dict[str, Union[str, float]] = dict(
    activation="tanh",
    lr=5e-3,
    weight_decay=1e-3,
)


def mlp_experiment(
    depth: int,
    width: int,
    dl_train: DataLoader,
    dl_valid: DataLoader,
    dl_test: DataLoader,
    n_epochs: int,
    device: Optional[Union[str, torch.device]] = None,
) -> Tuple[BinaryClassifier, float, float, float]:
    """Train an MLP binary classifier, select its threshold on validation data, evaluate it.

    The model is ``depth`` hidden layers of ``width`` units (nonlinearity and optimizer from
    :data:`MLP_EXPERIMENT_HP`) and a 2-unit output layer of raw scores, wrapped in a
    :class:`~hw2.classifier.BinaryClassifier`. It is trained with cross-entropy on
    ``dl_train`` (``dl_valid`` is monitored); then the threshold whose ROC point on the
    validation set is closest to (FPR=0, TPR=1) is set on the model, and the accuracies with
    that threshold are reported.

    :param depth: Number of hidden layers (>= 1).
    :param width: Units per hidden layer (>= 1).
    :param dl_train: Training batches ``(x: (B, D), y: (B,))`` with labels in {0, 1}.
    :param dl_valid: Validation batches, used for monitoring and threshold selection.
    :param dl_test: Test batches, used only for the final accuracy.
    :param n_epochs: Number of training epochs (>= 1).
    :param device: Where to train; None lets the trainer decide.
    :return: ``(model, thresh, valid_acc, test_acc)``: the trained classifier (with
        ``model.threshold == thresh``), the selected threshold, and the validation and test
        accuracies in percent.
    :raises ValueError: If depth, width or n_epochs is not a positive integer.
    """
    for name, value in (("depth", depth), ("width", width), ("n_epochs", n_epochs)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"mlp_experiment: {name} must be a positive integer, got {value!r}")

    in_dim = _feature_dim(dl_train)
    hp = MLP_EXPERIMENT_HP
    model = BinaryClassifier(
        model=MLP(
            in_dim=in_dim,
            dims=[*[int(width)] * int(depth), 2],
            nonlins=[*[hp["activation"]] * int(depth), "none"],
        ),
        threshold=0.5,
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device=device)
    trainer.fit(dl_train, dl_valid, num_epochs=int(n_epochs), print_every=0, verbose=False)

    model.eval()
    x_valid, y_valid = _all_samples(dl_valid)
    thresh = select_roc_thresh(model, x_valid, y_valid)
    model.threshold = thresh
    valid_acc = _accuracy(model, x_valid, y_valid)
    test_acc = _accuracy(model, *_all_samples(dl_test))
    return model, thresh, valid_acc, test_acc


def _feature_dim(dl: DataLoader) -> int:
    """Number of input features ``D`` of a loader over ``(x: (D,), y)`` items (reads one item)."""
    x, _ = dl.dataset[0]
    x = torch.as_tensor(x)
    if x.dim() != 1:
        raise ValueError(f"mlp_experiment: samples must be feature vectors (D,), got shape {tuple(x.shape)}")
    return int(x.shape[0])


def _all_samples(dl: DataLoader) -> Tuple[Tensor, Tensor]:
    """Every sample of a loader's dataset in order, ``(x: (N, D), y: (N,))``.

    Reads the dataset sequentially rather than iterating ``dl`` itself, so a shuffling loader
    does not consume random numbers here.
    """
    ordered = DataLoader(dl.dataset, batch_size=dl.batch_size or 256, shuffle=False)
    xs, ys = zip(*ordered)
    return torch.cat(xs), torch.cat(ys)


def _accuracy(model: BinaryClassifier, x: Tensor, y: Tensor) -> float:
    """Percentage of samples ``x: (N, D)`` whose predicted label equals ``y: (N,)``."""
    device = next(model.parameters()).device
    with torch.no_grad():
        y_hat = model.classify(x.to(device)).cpu()
    return 100.0 * (y_hat.long() == y.long()).double().mean().item()


# ==============================================================================================
# Part 5: CNN architecture experiments (cnn_experiment, result files, the command line)
# ==============================================================================================

#: ``model_type`` names of :func:`cnn_experiment` and the classes they build.
MODEL_TYPES: Dict[str, type] = {"cnn": CNN, "resnet": ResNet, "ycn": YourCNN}
#: Data paths of :func:`cnn_experiment`: the tensor-resident :class:`~hw2.tensor_data.TensorLoader`
#: (default) or torchvision's per-sample ``DataLoader``.
LOADERS = ("tensor", "torchvision")
#: The parameters of :func:`cnn_experiment` that a result file's config stores and that
#: :func:`rerun_config` passes back to reproduce a run.
EXPERIMENT_PARAMS = (
    "run_name", "out_dir", "seed", "device", "bs_train", "bs_test", "batches", "epochs",
    "early_stopping", "checkpoints", "lr", "reg", "filters_per_layer", "layers_per_block",
    "pool_every", "hidden_dims", "model_type", "dataset", "loader", "augment", "amp",
    "channels_last", "cudnn_benchmark", "non_blocking", "compile_model",
)
_FIT_FIELDS = FitResult._fields


class ExperimentConfigError(ValueError):
    """An experiment configuration that cannot run (found before any training starts)."""


class UsageError(Exception):
    """A command-line request that cannot be carried out (reported with exit status 2)."""


class ExperimentRun(NamedTuple):
    """What :func:`cnn_experiment` returns.

    path: the result file written.
    config: the configuration stored in it.
    result: the :class:`FitResult` of the run.
    """

    path: str
    config: dict
    result: FitResult


def expand_channels(filters_per_layer: Sequence[int], layers_per_block: int) -> List[int]:
    """The channel list of a K x L configuration: every ``K[i]`` repeated ``L`` times.

    :param filters_per_layer: ``K``, e.g. ``[32, 64]``.
    :param layers_per_block: ``L``, e.g. ``2``.
    :return: E.g. ``[32, 32, 64, 64]``.
    """
    return [int(k) for k in filters_per_layer for _ in range(int(layers_per_block))]


def result_filename(run_name: str, filters_per_layer: Sequence[int], layers_per_block: int) -> str:
    """The base name of a run's result file: ``{run_name}_L{L}_K{K joined by '-'}.json``."""
    k = "-".join(str(int(v)) for v in filters_per_layer)
    return f"{run_name}_L{int(layers_per_block)}_K{k}.json"


def cnn_experiment(
    run_name: str,
    out_dir: str = "./results",
    seed: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
    # Training
    bs_train: int = 128,
    bs_test: Optional[int] = None,
    batches: Optional[int] = 100,
    epochs: int = 100,
    early_stopping: Optional[int] = 3,
    checkpoints: Optional[str] = None,
    lr: float = 1e-3,
    reg: float = 1e-3,
    # Model
    filters_per_layer: Optional[Sequence[int]] = None,
    layers_per_block: int = 2,
    pool_every: int = 2,
    hidden_dims: Optional[Sequence[int]] = None,
    model_type: str = "cnn",
    # Data and speed
    dataset: Optional[str] = None,
    loader: str = "tensor",
    augment: bool = False,
    amp: Optional[bool] = None,
    channels_last: Optional[bool] = None,
    cudnn_benchmark: Optional[bool] = None,
    non_blocking: Optional[bool] = None,
    compile_model: bool = False,
    verbose: bool = True,
    **kw,
) -> ExperimentRun:
    """Train one CNN configuration and save its configuration and results as JSON.

    The convolutional part has ``len(K) * L`` convolutions: ``K[0]`` filters ``L`` times,
    then ``K[1]`` filters ``L`` times, and so on (:func:`expand_channels`). The network (a
    :class:`~hw2.cnn.CNN`, :class:`~hw2.cnn.ResNet` or :class:`~hw2.cnn.YourCNN`) is wrapped in
    an :class:`~hw2.classifier.ArgMaxClassifier` and trained with cross-entropy and
    ``torch.optim.Adam`` (L2 penalty ``reg`` as weight decay) by a
    :class:`~hw2.training.ClassifierTrainer`.

    Everything is checked before training starts: an invalid value, an unknown model type or
    an architecture whose feature maps shrink to nothing raises
    :class:`ExperimentConfigError` (a ``ValueError``) and a missing real data set raises
    :class:`~hw2.datasets.DatasetUnavailableError`; in both cases no file is written.

    The result file ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json`` holds
    ``{"config": {...}, "results": FitResult._asdict()}``. The config has every parameter
    below (``seed`` as actually used, drawn at random when None) plus ``kw``, the channel
    list, the data set, the device, the torch version, the wall time and the fast paths that
    were on. It is written atomically (temporary file, then rename).

    A run whose training loss becomes NaN or infinite stops there and is recorded as diverged:
    ``config["diverged"]`` is ``{"epoch", "batch", "loss", "message"}`` (None for a normal
    run) and ``results`` holds only the epochs completed before the divergence, so no
    accuracy of a broken model is ever written. A warning goes to stderr.

    :param run_name: Name of the run; the result file name starts with it.
    :param out_dir: Folder of the result file (created when missing).
    :param seed: Seed of the weights, the batch order and augmentation; None draws one.
    :param device: Where to train; None picks ``cuda`` when available, else ``cpu``.
    :param bs_train: Training batch size.
    :param bs_test: Test batch size; None means ``max(1, bs_train // 4)``.
    :param batches: Batches per epoch (train and test); None runs whole epochs.
    :param epochs: Maximal number of epochs.
    :param early_stopping: Stop after this many epochs without test-loss improvement (None:
        never).
    :param checkpoints: File name (without ``.pt``) of a checkpoint saved whenever the test
        accuracy improves; when it exists at the start, training resumes from it.
    :param lr: Adam's learning rate.
    :param reg: L2 regularisation (Adam's ``weight_decay``).
    :param filters_per_layer: ``K``, the filters of each block of convolutions; None means
        ``[64]``.
    :param layers_per_block: ``L``, the convolutions per block.
    :param pool_every: Convolutions between pooling layers.
    :param hidden_dims: Hidden fully-connected widths; None means ``[1024]``.
    :param model_type: One of :data:`MODEL_TYPES` (``cnn``, ``resnet``, ``ycn``).
    :param dataset: Data set name (:data:`hw2.datasets.DATASET_NAMES`); None means
        :func:`hw2.datasets.default_dataset_name` (``$HW2_DATASET``, else ``cifar10``).
    :param loader: ``'tensor'`` (the whole data set as one tensor on the device, batches by
        indexing) or ``'torchvision'`` (a ``DataLoader`` over the ``Dataset``). With
        ``augment=False`` and the same seed both give the same batches.
    :param augment: Random crops and horizontal flips of the training images (tensor loader).
    :param amp: bf16 autocast of the forward pass (CUDA only; None: on when on CUDA).
    :param channels_last: channels-last memory format for model and batches (CUDA only; None:
        on when on CUDA).
    :param cudnn_benchmark: ``torch.backends.cudnn.benchmark`` during the run (CUDA only;
        None: on when on CUDA).
    :param non_blocking: Pinned memory and asynchronous host-to-device copies for the
        torchvision loader (CUDA only; None: on when on CUDA). The tensor loader keeps the data
        on the device and copies nothing.
    :param compile_model: Compile the model with ``torch.compile`` (off by default).
    :param verbose: Print epoch lines and progress bars.
    :param kw: Further keyword arguments of the model's constructor (e.g. ``conv_params``,
        ``pooling_params``, ``batchnorm``, ``dropout``).
    :return: ``ExperimentRun(path, config, result)``.
    :raises ExperimentConfigError: For a configuration that cannot run.
    :raises DatasetUnavailableError: When a real data set is missing and cannot be downloaded.
    """
    params = dict(
        run_name=run_name, out_dir=out_dir, seed=seed, device=device, bs_train=bs_train,
        bs_test=bs_test, batches=batches, epochs=epochs, early_stopping=early_stopping,
        checkpoints=checkpoints, lr=lr, reg=reg, filters_per_layer=filters_per_layer,
        layers_per_block=layers_per_block, pool_every=pool_every, hidden_dims=hidden_dims,
        model_type=model_type, dataset=dataset, loader=loader, augment=augment, amp=amp,
        channels_last=channels_last, cudnn_benchmark=cudnn_benchmark,
        non_blocking=non_blocking, compile_model=compile_model,
    )
    cfg = _validated_config(params, kw)
    dev = torch.device(cfg["device_used"])
    fast = _resolve_fast_paths(cfg, dev)
    info = dataset_info(cfg["dataset"])

    torch.manual_seed(cfg["seed"])
    model = _build_model(cfg, info, kw)  # raises ExperimentConfigError before any training
    cfg["num_params"] = sum(p.numel() for p in model.parameters())
    cfg.update(conv_params=getattr(model, "conv_params", None),
               pooling_params=getattr(model, "pooling_params", None))
    _check_writable(cfg["out_dir"])

    ds_train, ds_test = _load_splits(cfg["dataset"], verbose)
    dl_train, dl_test = _make_loaders(cfg, ds_train, ds_test, dev, fast)

    classifier = ArgMaxClassifier(model).to(dev)
    if fast["channels_last"]:
        classifier = classifier.to(memory_format=torch.channels_last)
    if fast["compile"]:
        classifier.compile()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=cfg["lr"], weight_decay=cfg["reg"])
    trainer = _ExperimentTrainer(classifier, nn.CrossEntropyLoss(), optimizer, device=dev,
                                 autocast_dtype=torch.bfloat16 if fast["amp_bf16"] else None)
    cfg["resumed_from_epoch"] = _check_checkpoint(trainer, cfg["checkpoints"])

    started = time.perf_counter()
    cfg["diverged"] = None
    with _cudnn_benchmark(fast["cudnn_benchmark"]):
        try:
            fit_res = trainer.fit(dl_train, dl_test, num_epochs=cfg["epochs"],
                                  checkpoints=cfg["checkpoints"],
                                  early_stopping=cfg["early_stopping"],
                                  print_every=1 if verbose else 0, max_batches=cfg["batches"],
                                  verbose=verbose)
        except TrainingDiverged as err:
            fit_res = err.fit_result
            cfg["diverged"] = dict(epoch=err.epoch, batch=err.batch, loss=str(err.loss),
                                   message=str(err))
            print(f"WARNING: {cfg['run_name']}: {err}; only the {fit_res.num_epochs} epoch(s) "
                  f"before it are recorded", file=sys.stderr)
    cfg["wall_time_s"] = round(time.perf_counter() - started, 3)
    cfg["fast_paths"] = fast
    path = save_experiment(cfg["run_name"], cfg["out_dir"], cfg, fit_res)
    if verbose:
        print(f"*** Output file {path} written")
    return ExperimentRun(path, load_experiment(path)[0], fit_res)


def rerun_config(config: dict) -> dict:
    """The keyword arguments that make :func:`cnn_experiment` repeat a saved run.

    :param config: A config as returned by :func:`load_experiment`.
    :return: ``cnn_experiment(**rerun_config(cfg))`` repeats the run (same seed and settings).
    """
    kwargs = {k: config[k] for k in EXPERIMENT_PARAMS if k in config}
    kwargs.update(config.get("kw") or {})
    return kwargs


def _check_writable(out_dir: str) -> None:
    """Fail early when the result file could not be written into ``out_dir``."""
    folder = os.path.abspath(out_dir)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ExperimentConfigError(f"out_dir {out_dir!r} cannot be created or written to "
                                    f"({folder} is not a writable folder)")


def _check_checkpoint(trainer: ClassifierTrainer, checkpoints: Optional[str]) -> Optional[int]:
    """Check an existing checkpoint against the model before training starts.

    :return: The number of epochs the checkpoint holds (None when there is none).
    :raises ExperimentConfigError: If it is unreadable or belongs to another architecture.
    """
    if checkpoints is None:
        return None
    path = checkpoints if checkpoints.endswith(".pt") else checkpoints + ".pt"
    if not os.path.isfile(path):
        return None
    try:
        state = trainer._resume(Path(path))  # fit() loads it again; this only checks it early
    except (ValueError, RuntimeError, OSError, EOFError) as err:
        raise ExperimentConfigError(f"cannot resume from checkpoint {path}: {err}") from None
    return state.epochs_done


class _ExperimentTrainer(ClassifierTrainer):
    """A :class:`ClassifierTrainer` that can run the forward pass under autocast.

    Autocast covers the model and the loss; the backward pass runs outside it, as PyTorch
    recommends. The parameters, the optimizer and the checkpoints stay in float32.
    """

    def __init__(self, *args, autocast_dtype: Optional[torch.dtype] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.autocast_dtype = autocast_dtype

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def train_batch(self, batch) -> BatchResult:
        if self.autocast_dtype is None:
            return super().train_batch(batch)
        X, y = self._to_device(batch)
        self.optimizer.zero_grad()
        with self._autocast():
            scores = self.model(X)
            loss = self.loss_fn(scores.float(), y)
        loss.backward()
        self.optimizer.step()
        return BatchResult(loss.item(), self._num_correct(scores.detach().float(), y))

    def test_batch(self, batch) -> BatchResult:
        if self.autocast_dtype is None:
            return super().test_batch(batch)
        X, y = self._to_device(batch)
        with torch.no_grad(), self._autocast():
            scores = self.model(X).float()
            loss = self.loss_fn(scores, y)
        return BatchResult(loss.item(), self._num_correct(scores, y))


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool):
    """Set ``torch.backends.cudnn.benchmark`` for a block, then restore it."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(enabled) or old
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def _fail(name: str, expected: str, value) -> ExperimentConfigError:
    return ExperimentConfigError(f"{name} must be {expected}, got {value!r}")


def _as_int(name: str, value, minimum: int = 1, allow_none: bool = False) -> Optional[int]:
    """``value`` as an int >= ``minimum`` (or None when allowed), else ExperimentConfigError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        what = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise _fail(name, what, value)
    return int(value)


def _as_int_list(name: str, values, allow_empty: bool) -> List[int]:
    """``values`` as a list of positive ints, else ExperimentConfigError."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or (
            not values and not allow_empty):
        what = "a list of positive integers" + ("" if allow_empty else " (at least one)")
        raise _fail(name, what, values)
    return [_as_int(f"{name}[{i}]", v) for i, v in enumerate(values)]


def _as_float(name: str, value, minimum: float, strict: bool) -> float:
    """``value`` as a finite float > (or >=) ``minimum``, else ExperimentConfigError."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= minimum if strict else value < minimum):
        raise _fail(name, f"a finite number {'>' if strict else '>='} {minimum}", value)
    return float(value)


def _as_flag(name: str, value, allow_none: bool = True) -> Optional[bool]:
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise _fail(name, "True, False" + (" or None (automatic)" if allow_none else ""), value)
    return value


def _validated_config(p: dict, kw: dict) -> dict:
    """Check every parameter of :func:`cnn_experiment` and fill in the defaults.

    :return: The config to store (JSON-ready), with ``device_used`` and the environment.
    :raises ExperimentConfigError: Naming the first invalid parameter.
    """
    cfg = dict(p)
    name = p["run_name"]
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\\0"):
        raise _fail("run_name", "a non-empty name without path separators", name)
    if not isinstance(p["out_dir"], (str, os.PathLike)) or not str(p["out_dir"]):
        raise _fail("out_dir", "a folder path", p["out_dir"])
    cfg["out_dir"] = str(p["out_dir"])
    if os.path.exists(cfg["out_dir"]) and not os.path.isdir(cfg["out_dir"]):
        raise _fail("out_dir", "a folder (it exists as a file)", cfg["out_dir"])
    cfg["seed"] = (_as_int("seed", p["seed"], minimum=0) if p["seed"] is not None
                   else random.SystemRandom().randrange(2 ** 31))
    cfg["bs_train"] = _as_int("bs_train", p["bs_train"])
    cfg["bs_test"] = (_as_int("bs_test", p["bs_test"]) if p["bs_test"] is not None
                      else max(1, cfg["bs_train"] // 4))
    cfg["batches"] = _as_int("batches", p["batches"], allow_none=True)
    cfg["epochs"] = _as_int("epochs", p["epochs"])
    cfg["early_stopping"] = _as_int("early_stopping", p["early_stopping"], allow_none=True)
    if p["checkpoints"] is not None and (not isinstance(p["checkpoints"], (str, os.PathLike))
                                         or not str(p["checkpoints"])):
        raise _fail("checkpoints", "a file name (without .pt) or None", p["checkpoints"])
    cfg["checkpoints"] = None if p["checkpoints"] is None else str(p["checkpoints"])
    cfg["lr"] = _as_float("lr", p["lr"], 0.0, strict=True)
    cfg["reg"] = _as_float("reg", p["reg"], 0.0, strict=False)
    cfg["filters_per_layer"] = _as_int_list(
        "filters_per_layer", p["filters_per_layer"] if p["filters_per_layer"] is not None
        else [64], allow_empty=False)
    cfg["layers_per_block"] = _as_int("layers_per_block", p["layers_per_block"])
    cfg["pool_every"] = _as_int("pool_every", p["pool_every"])
    cfg["hidden_dims"] = _as_int_list(
        "hidden_dims", p["hidden_dims"] if p["hidden_dims"] is not None else [1024],
        allow_empty=True)
    if p["model_type"] not in MODEL_TYPES:
        raise _fail("model_type", f"one of {', '.join(MODEL_TYPES)}", p["model_type"])
    try:
        cfg["dataset"] = check_dataset_name(p["dataset"] or default_dataset_name())
    except ValueError as err:
        raise ExperimentConfigError(f"dataset: {err}") from None
    if p["loader"] not in LOADERS:
        raise _fail("loader", f"one of {', '.join(LOADERS)}", p["loader"])
    cfg["augment"] = _as_flag("augment", p["augment"], allow_none=False)
    for flag in ("amp", "channels_last", "cudnn_benchmark", "non_blocking"):
        cfg[flag] = _as_flag(flag, p[flag])
    cfg["compile_model"] = _as_flag("compile_model", p["compile_model"], allow_none=False)
    cfg["device"] = None if p["device"] is None else str(p["device"])
    cfg["device_used"] = str(_resolve_device(p["device"]))
    cfg["channels"] = expand_channels(cfg["filters_per_layer"], cfg["layers_per_block"])
    cfg["kw"] = to_jsonable(kw)
    cfg["optimizer"] = "torch.optim.Adam(lr=lr, weight_decay=reg)"
    cfg["loss"] = "torch.nn.CrossEntropyLoss"
    cfg["torch_version"] = torch.__version__
    cfg["python_version"] = platform.python_version()
    cfg["hostname"] = platform.node()
    cfg["gpu"] = (torch.cuda.get_device_name(torch.device(cfg["device_used"]))
                  if cfg["device_used"].startswith("cuda") else None)
    cfg["started_at"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return cfg


def _resolve_device(device) -> torch.device:
    """The device to train on; ``cuda`` requests are checked against what is available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise _fail("device", "a torch device such as 'cpu', 'cuda' or 'cuda:1'", device) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ExperimentConfigError(f"device {device!r} was requested but CUDA is not "
                                        f"available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ExperimentConfigError(f"device {device!r} does not exist: this machine has "
                                        f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise _fail("device", "'cpu' or a CUDA device", device)
    return dev


def _resolve_fast_paths(cfg: dict, dev: torch.device) -> Dict[str, bool]:
    """Which CUDA fast paths are on: requested ones, or all of them by default on CUDA.

    They only exist on CUDA; on another device every one is off whatever was asked. bf16
    autocast is on by default only on GPUs with bf16 support.

    :raises ExperimentConfigError: If ``amp=True`` on a CUDA GPU without bf16 support.
    """
    cuda = dev.type == "cuda"

    def on(flag: str) -> bool:
        return cuda and (cfg[flag] is None or cfg[flag])

    bf16 = cuda and torch.cuda.is_bf16_supported()
    if cuda and cfg["amp"] and not bf16:
        raise ExperimentConfigError(f"amp=True asks for bf16 autocast, which "
                                    f"{torch.cuda.get_device_name(dev)} does not support; "
                                    f"use --no-amp")
    return {
        "amp_bf16": on("amp") and bf16,
        "channels_last": on("channels_last"),
        "cudnn_benchmark": on("cudnn_benchmark"),
        "non_blocking": on("non_blocking") and cfg["loader"] == "torchvision",
        "compile": bool(cfg["compile_model"]),
        "tensor_data_on_device": cfg["loader"] == "tensor" and cuda,
    }


def _build_model(cfg: dict, info, kw: dict) -> nn.Module:
    """Construct the network, turning every configuration error into ExperimentConfigError."""
    cls = MODEL_TYPES[cfg["model_type"]]
    try:
        return cls(info.in_size, info.num_classes, channels=cfg["channels"],
                   pool_every=cfg["pool_every"], hidden_dims=cfg["hidden_dims"], **kw)
    except (ValueError, TypeError) as err:
        raise ExperimentConfigError(
            f"cannot build model_type={cfg['model_type']!r} ({cls.__name__}) with "
            f"K={cfg['filters_per_layer']}, L={cfg['layers_per_block']}, "
            f"pool_every={cfg['pool_every']}, hidden_dims={cfg['hidden_dims']} for "
            f"{cfg['dataset']} images of shape {tuple(info.in_size)}: {err}") from None


# Data sets loaded by this process, by (name, data folder): a grid loads each one once.
_SPLITS_CACHE: Dict[Tuple[str, str], tuple] = {}


def _load_splits(name: str, verbose: bool):
    """:func:`hw2.datasets.load_dataset`, remembered for the next run of the same process.

    The loaders only read the data sets, so runs can share them.
    """
    key = (name, str(data_root()))
    if key not in _SPLITS_CACHE:
        _SPLITS_CACHE.clear()  # keep at most one data set in memory
        _SPLITS_CACHE[key] = load_dataset(name, verbose=verbose)
    elif verbose:
        ds_train, ds_test = _SPLITS_CACHE[key]
        print(f"Dataset: {name} (train {len(ds_train)}, test {len(ds_test)} samples; "
              f"already loaded)")
        if name == "synthetic":
            print(SYNTHETIC_BANNER)
    return _SPLITS_CACHE[key]


def _make_loaders(cfg: dict, ds_train, ds_test, dev: torch.device, fast: Dict[str, bool]):
    """The train and test loaders of the chosen data path (see :func:`cnn_experiment`)."""
    seed = cfg["seed"]
    if cfg["loader"] == "tensor":
        common = dict(device=dev, channels_last=fast["channels_last"])
        return (TensorLoader(*dataset_tensors(ds_train), cfg["bs_train"], shuffle=True,
                             seed=seed, augment=cfg["augment"], **common),
                TensorLoader(*dataset_tensors(ds_test), cfg["bs_test"], shuffle=False,
                             **common))
    if cfg["augment"]:
        raise ExperimentConfigError("augment=True needs loader='tensor' (the torchvision path "
                                    "here does no augmentation)")
    pin = fast["non_blocking"]
    dl_train = DataLoader(ds_train, batch_size=cfg["bs_train"], shuffle=True, pin_memory=pin,
                          generator=torch.Generator().manual_seed(seed))
    dl_test = DataLoader(ds_test, batch_size=cfg["bs_test"], shuffle=False, pin_memory=pin)
    return dl_train, dl_test


# -- result files ------------------------------------------------------------------------------

def to_jsonable(obj):
    """A copy of ``obj`` that ``json.dump`` can write and ``json.load`` reads back equal.

    Dicts (keys become strings), lists, tuples and sets become dicts and lists; paths,
    devices and dtypes become strings; tensors and numpy values become numbers or lists;
    types and functions become their qualified names; anything else becomes its ``repr``.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (os.PathLike, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".lstrip(".")
    return repr(obj)


def save_experiment(run_name: str, out_dir: str, cfg: dict, fit_res: FitResult) -> str:
    """Write ``{"config": cfg, "results": fit_res._asdict()}`` as a run's result file.

    The file is ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json`` with ``L`` and ``K`` taken from
    ``cfg['layers_per_block']`` and ``cfg['filters_per_layer']``. It is written to a temporary
    file in ``out_dir`` and renamed, so readers never see a half-written file.

    :param run_name: Name of the run.
    :param out_dir: Folder of the file (created when missing).
    :param cfg: The run's configuration; values JSON cannot hold are converted
        (:func:`to_jsonable`).
    :param fit_res: The run's :class:`FitResult`.
    :return: The path of the file written.
    """
    if not isinstance(fit_res, FitResult):
        raise TypeError(f"fit_res must be a FitResult, got {type(fit_res).__name__}")
    for key in ("filters_per_layer", "layers_per_block"):
        if key not in cfg:
            raise ValueError(f"cfg must contain {key!r} (it names the result file)")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, result_filename(run_name, cfg["filters_per_layer"],
                                                 cfg["layers_per_block"]))
    payload = {"config": to_jsonable(cfg), "results": to_jsonable(fit_res._asdict())}
    atomic_write_text(path, json.dumps(payload, indent=1))
    return path


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_experiment(filename: str) -> Tuple[dict, FitResult]:
    """Read a result file written by :func:`save_experiment`.

    :param filename: Path of the ``.json`` file.
    :return: ``(config, fit_result)``.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: Naming the file, when it is truncated, not JSON, or not shaped like a
        result file (``config`` dict, ``results`` with every :class:`FitResult` field, one
        accuracy per epoch, numbers only, accuracies in [0, 100]).
    """
    path = os.fspath(filename)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a valid experiment result file: it is truncated or "
                         f"not JSON ({err})") from None
    problem = _result_file_problem(data)
    if problem:
        raise ValueError(f"{path} is not a valid experiment result file: {problem}")
    res = data["results"]
    fit = FitResult(int(res["num_epochs"]), *(list(map(float, res[k])) for k in _FIT_FIELDS[1:]))
    return data["config"], fit


def _result_file_problem(data) -> Optional[str]:
    """What is wrong with a parsed result file, or None."""
    if not isinstance(data, dict) or set(data) != {"config", "results"}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        return f"expected an object with the keys 'config' and 'results', got {keys}"
    if not isinstance(data["config"], dict):
        return "'config' must be an object"
    res = data["results"]
    if not isinstance(res, dict) or set(res) != set(_FIT_FIELDS):
        got = sorted(res) if isinstance(res, dict) else type(res).__name__
        return f"'results' must have exactly the fields {list(_FIT_FIELDS)}, got {got}"
    n = res["num_epochs"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return f"'results.num_epochs' must be a non-negative integer, got {n!r}"
    for key in _FIT_FIELDS[1:]:
        values = res[key]
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return f"'results.{key}' must be a list of numbers"
    for key in ("train_acc", "test_acc"):
        if len(res[key]) != n:
            return f"'results.{key}' has {len(res[key])} entries for num_epochs={n}"
        bad = [(i, v) for i, v in enumerate(res[key]) if not 0 <= v <= 100]  # NaN included
        if bad:
            return (f"'results.{key}' must hold percentages in [0, 100], got {bad[0][1]!r} at "
                    f"index {bad[0][0]}")
    return None


# -- command line ------------------------------------------------------------------------------

#: Exit status of every failure the user can fix (bad flags, impossible configurations,
#: missing data), as argparse uses for bad flags.
USAGE_ERROR = 2
#: Exit status of ``run-exp`` when training diverged (the result file records it).
DIVERGED = 3
_PROG = "python -m hw2.experiments"


def _batches_arg(text: str) -> Optional[int]:
    """``--batches``: a positive count, or 0 / 'all' for whole epochs."""
    if text.strip().lower() in ("0", "all"):
        return None
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_batches_arg.__name__ = "batch count (a positive integer, or 0/all)"


def _patience_arg(text: str) -> Optional[int]:
    """``--early-stopping``: a positive number of epochs, or 0 to never stop early."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value or None


_patience_arg.__name__ = "epoch count (a positive integer, or 0 for no early stopping)"


def _model_kw_arg(text: str) -> Tuple[str, object]:
    """``--model-kw KEY=VALUE``: VALUE is parsed as JSON when it can be, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(text)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


_model_kw_arg.__name__ = "KEY=VALUE model argument"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m hw2.experiments`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Run the Part 5 CNN experiments: one run, whole grids "
                                "(locally or on Slurm), and result summaries.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_exp_parser(sub)
    from hw2 import grids  # noqa: WPS433 - grids imports this module
    grids.add_grid_parsers(sub)
    return parser


def _add_run_exp_parser(sub) -> None:
    p = sub.add_parser("run-exp", help="train one CNN configuration and save its result file",
                       description="Train one CNN configuration; writes "
                                   "OUT_DIR/RUN_NAME_L{L}_K{K-K}.json.")
    p.add_argument("--run-name", "-n", required=True, help="name of the run and its result file")
    p.add_argument("--out-dir", "-o", default="./results", help="result folder (./results)")
    p.add_argument("--seed", "-s", type=int, default=None, help="random seed (default: random, recorded)")
    p.add_argument("--device", "-d", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    g = p.add_argument_group("training")
    g.add_argument("--bs-train", type=int, default=128, metavar="BATCH_SIZE", help="train batch size (128)")
    g.add_argument("--bs-test", type=int, default=None, metavar="BATCH_SIZE",
                   help="test batch size (bs_train // 4)")
    g.add_argument("--batches", type=_batches_arg, default=100,
                   help="batches per epoch, 0 or 'all' for whole epochs (100)")
    g.add_argument("--epochs", type=int, default=100, help="maximal number of epochs (100)")
    g.add_argument("--early-stopping", type=_patience_arg, default=3,
                   help="stop after this many epochs without test-loss improvement; 0: never (3)")
    g.add_argument("--checkpoints", default=None, metavar="NAME",
                   help="checkpoint file NAME.pt, saved when test accuracy improves; "
                        "an interrupted run with the same NAME resumes from it")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    g.add_argument("--reg", type=float, default=1e-3, help="L2 regularisation / weight decay (1e-3)")
    m = p.add_argument_group("model")
    m.add_argument("--filters-per-layer", "-K", type=int, nargs="+", default=[64], metavar="K",
                   help="filters of each block of conv layers (64)")
    m.add_argument("--layers-per-block", "-L", type=int, default=2, metavar="L",
                   help="conv layers per block (2)")
    m.add_argument("--pool-every", "-P", type=int, default=2, metavar="P",
                   help="pool after this many conv layers (2)")
    m.add_argument("--hidden-dims", "-H", type=int, nargs="+", default=[1024], metavar="H",
                   help="hidden fully-connected widths (1024)")
    m.add_argument("--model-type", "-M", choices=list(MODEL_TYPES), default="cnn",
                   help="cnn, resnet or ycn (YourCNN) (cnn)")
    m.add_argument("--model-kw", type=_model_kw_arg, action="append", default=[],
                   metavar="KEY=VALUE", help="extra model argument, VALUE in JSON "
                                             "(e.g. batchnorm=true); repeatable")
    d = p.add_argument_group("data and speed")
    d.add_argument("--dataset", default=None, choices=list(DATASET_NAMES),
                   help="data set (default: $HW2_DATASET, else cifar10)")
    d.add_argument("--loader", choices=list(LOADERS), default="tensor",
                   help="tensor: whole data set on the device (default); torchvision: DataLoader")
    d.add_argument("--augment", action="store_true", help="random crop + flip (tensor loader)")
    for flag, what in (("amp", "bf16 autocast"), ("channels-last", "channels_last memory format"),
                       ("cudnn-benchmark", "cudnn.benchmark"),
                       ("non-blocking", "pinned memory + async copies (torchvision loader)")):
        d.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                       help=f"{what} (default: on with CUDA, never on CPU)")
    d.add_argument("--compile", dest="compile_model", action="store_true",
                   help="torch.compile the model (off by default)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress bars or epoch lines")
    p.set_defaults(handler=_cmd_run_exp)


def _cmd_run_exp(args) -> int:
    kw = dict(args.model_kw)
    run = cnn_experiment(
        args.run_name, out_dir=args.out_dir, seed=args.seed, device=args.device,
        bs_train=args.bs_train, bs_test=args.bs_test, batches=args.batches, epochs=args.epochs,
        early_stopping=args.early_stopping, checkpoints=args.checkpoints, lr=args.lr,
        reg=args.reg, filters_per_layer=args.filters_per_layer,
        layers_per_block=args.layers_per_block, pool_every=args.pool_every,
        hidden_dims=args.hidden_dims, model_type=args.model_type, dataset=args.dataset,
        loader=args.loader, augment=args.augment, amp=args.amp,
        channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
        non_blocking=args.non_blocking, compile_model=args.compile_model,
        verbose=not args.quiet, **kw)
    diverged = run.config.get("diverged")
    if diverged:
        print(f"{_PROG} run-exp: {os.path.basename(run.path)}: training diverged at epoch "
              f"{diverged['epoch']} (loss {diverged['loss']} at batch {diverged['batch']}); the "
              f"result file records it with the {run.result.num_epochs} epoch(s) before",
              file=sys.stderr)
        return DIVERGED
    best = max(run.result.test_acc) if run.result.test_acc else float("nan")
    print(f"{os.path.basename(run.path)}: {run.result.num_epochs} epoch(s), best test accuracy "
          f"{best:.1f}%, {run.config['wall_time_s']:.1f}s")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m hw2.experiments``.

    Every failure the user can fix (a malformed flag, an impossible architecture, an unknown
    model type or data set, real data missing offline, a bad results folder) prints one
    paragraph on stderr and returns :data:`USAGE_ERROR` (2), without a traceback and without
    writing a result file.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :return: The exit status.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed usage and the message
        return int(exit_.code or 0)
    try:
        return int(args.handler(args) or 0)
    except (ExperimentConfigError, DatasetUnavailableError, UsageError) as err:
        print(f"{_PROG} {args.command}: error: {err}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    # Run the main() of the imported module hw2.experiments, not of this __main__ copy, so
    # that errors raised by hw2.grids (which imports hw2.experiments) are the classes caught.
    from hw2.experiments import main as _main

    sys.exit(_main())
