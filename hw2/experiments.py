"""Experiments of the assignment: one run of each kind, from its settings to its result.

* Part 3: :func:`mlp_experiment` trains one MLP binary classifier of a given depth and width,
  tunes its decision threshold on validation data and reports its accuracies.
* Part 5: :func:`cnn_experiment` trains one CNN/ResNet/YourCNN configuration (``K`` filters per
  layer, ``L`` layers per block) and writes its configuration and :class:`FitResult` to
  ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json`` (:mod:`hw2.results`). Its settings are an
  :class:`~hw2.config.ExperimentConfig`; :func:`run_experiment` runs one.

``python -m hw2.experiments`` is the command line (:mod:`hw2.cli`): ``run-exp`` (one run),
``grid-run``, ``grid-submit``, ``grid-show`` (the grids of :mod:`hw2.grids`) and ``summarize``.
:func:`parse_cli` parses ``run-exp`` arguments as the course's own scripts expect.
"""
if __name__ == "__main__":  # python -m hw2.experiments: the command line, from hw2.cli
    import sys

    from hw2.cli import main

    sys.exit(main())

import argparse
import datetime
import os
import platform
import sys
import time
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader

from cs236781.train_results import FitResult
from hw2.allocator import retain_freed_memory
from cs236781.atomic import atomic_write_text
from hw2.classifier import ArgMaxClassifier, BinaryClassifier, select_roc_thresh
from hw2.cnn import CNN, ResNet, YourCNN
from hw2.config import (
    EXPERIMENT_PARAMS, LOADERS, MODEL_TYPE_NAMES, ExperimentConfig, add_arguments,
    expand_channels,
)
from hw2.datasets import SYNTHETIC_BANNER, DatasetUnavailableError, data_root, dataset_info
from hw2.datasets import load_dataset
from hw2.devices import cudnn_benchmark, resolve_device, resolve_fast_paths
from hw2.mlp import MLP
from hw2.results import RunLock, prepare_outputs, remove_empty_folders, result_filename
from hw2.results import load_experiment, save_experiment, to_jsonable
from hw2.tensor_data import TensorLoader, dataset_tensors
from hw2.experiment_trainer import ExperimentTrainer
from hw2.training import ClassifierTrainer, Trainer, TrainingDiverged
from hw2.validation import ExperimentConfigError, UsageError, check_int

__all__ = [
    "MLP_EXPERIMENT_HP", "mlp_experiment",
    "DATA_DIR", "MODEL_TYPES", "LOADERS", "EXPERIMENT_PARAMS", "ExperimentConfig",
    "ExperimentConfigError", "ExperimentRun", "UsageError", "cnn_experiment", "run_experiment",
    "run_locked_experiment",
    "rerun_config", "resolve_device", "resolve_fast_paths", "build_model", "make_loaders",
    "add_run_exp_arguments", "parse_cli",
    # defined in hw2.config / hw2.results / hw2.atomic, kept here for existing callers:
    "expand_channels", "result_filename", "to_jsonable", "save_experiment", "load_experiment",
    "atomic_write_text",
]

#: The data root of the real data sets: ``$HW2_DATA_DIR``, else ``~/.pytorch-datasets``
#: (read when this module is imported; :func:`hw2.datasets.data_root` reads it on each call).
DATA_DIR = os.fspath(data_root())

# -- Part 3: MLP depth/width experiment -------------------------------------------------------

#: Every hyperparameter of :func:`mlp_experiment` except depth, width and epochs. Chosen on the
#: Part 3 moons data: tanh keeps narrow, deep networks trainable (ReLU units of width 2 die and
#: leave a constant classifier), and Adam with a little weight decay converges within 10 epochs.
MLP_EXPERIMENT_HP: Dict[str, Union[str, float]] = dict(activation="tanh", lr=5e-3,
                                                       weight_decay=1e-3)


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
    :raises TypeError: If depth, width or n_epochs is not an integer.
    :raises ValueError: If one of them is below 1.
    """
    depth, width, n_epochs = (
        check_int(f"mlp_experiment: {name}", value, 1, expected="a positive integer")
        for name, value in (("depth", depth), ("width", width), ("n_epochs", n_epochs)))

    in_dim = _feature_dim(dl_train)
    hp = MLP_EXPERIMENT_HP
    model = BinaryClassifier(
        model=MLP(
            in_dim=in_dim,
            dims=[*[width] * depth, 2],
            nonlins=[*[hp["activation"]] * depth, "none"],
        ),
        threshold=0.5,
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device=device)
    trainer.fit(dl_train, dl_valid, num_epochs=n_epochs, print_every=0, verbose=False)

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
        raise ValueError(f"mlp_experiment: samples must be feature vectors (D,), got shape "
                         f"{tuple(x.shape)}")
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


# -- Part 5: CNN architecture experiments -----------------------------------------------------

#: ``model_type`` names of :func:`cnn_experiment` and the classes they build.
MODEL_TYPES: Dict[str, type] = {"cnn": CNN, "resnet": ResNet, "ycn": YourCNN}
assert tuple(MODEL_TYPES) == MODEL_TYPE_NAMES


class ExperimentRun(NamedTuple):
    """What :func:`cnn_experiment` returns.

    path: the result file written.
    config: the configuration stored in it.
    result: the :class:`FitResult` of the run.
    """

    path: str
    config: dict
    result: FitResult


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
    verbose: bool = True,
    **kw,
) -> ExperimentRun:
    """Train one CNN configuration and save its configuration and results as JSON.

    The convolutional part has ``len(K) * L`` convolutions: ``K[0]`` filters ``L`` times,
    then ``K[1]`` filters ``L`` times, and so on (:func:`expand_channels`). The network (a
    :class:`~hw2.cnn.CNN`, :class:`~hw2.cnn.ResNet` or :class:`~hw2.cnn.YourCNN`) is wrapped in
    an :class:`~hw2.classifier.ArgMaxClassifier` and trained with cross-entropy and
    ``torch.optim.Adam`` (L2 penalty ``reg`` as weight decay) by an
    :class:`~hw2.training.ExperimentTrainer`.

    The parameters are those of :class:`~hw2.config.ExperimentConfig`, where each one is
    described; the ones below are the course's. Every other setting of the config (``dataset``,
    ``loader``, ``augment``, ``amp``, ``channels_last``, ``cudnn_benchmark``, ``non_blocking``,
    ``compile_model``) is passed by name through ``kw``; the remaining ``kw`` are keyword
    arguments of the model's constructor (e.g. ``conv_params``, ``batchnorm``, ``dropout``).
    ``filters_per_layer=None`` means ``[64]`` and ``hidden_dims=None`` ``[1024]``.

    Everything is checked before training starts: an invalid value, an unknown model type,
    an architecture whose feature maps shrink to nothing or folders that cannot be written
    (:func:`~hw2.results.prepare_outputs`) raise :class:`ExperimentConfigError` (a
    ``ValueError``; for a value of the wrong type, its ``TypeError`` flavour) and a missing real
    data set :class:`~hw2.datasets.DatasetUnavailableError`, leaving no file or new folder.
    The run is locked as ``run-exp`` locks it (:class:`~hw2.results.RunLock`): another process
    (a second notebook kernel) starting the same result file meanwhile gets a UsageError.

    The result file ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json``, written atomically, holds
    ``{"config": {...}, "results": FitResult._asdict()}``: the config has every field of the
    configuration (``seed``, drawn at random when None, ``bs_test`` and ``dataset`` as used),
    the model arguments (``kw``), channels, device, torch version, wall time and fast paths.

    A run whose training loss becomes NaN or infinite stops there, warns on stderr and is
    recorded as diverged: ``config["diverged"]`` is ``{"epoch", "batch", "loss", "message"}``
    (None for a normal run) and ``results`` holds only the epochs before the divergence.

    :param verbose: Print epoch lines and progress bars.
    :return: ``ExperimentRun(path, config, result)``.
    :raises ExperimentConfigError: For a configuration that cannot run.
    :raises DatasetUnavailableError: When a real data set is missing and cannot be downloaded.
    :raises UsageError: When another process is computing the same run.
    """
    settings = dict(
        run_name=run_name, out_dir=out_dir, seed=seed, device=device, bs_train=bs_train,
        bs_test=bs_test, batches=batches, epochs=epochs, early_stopping=early_stopping,
        checkpoints=checkpoints, lr=lr, reg=reg, filters_per_layer=filters_per_layer,
        layers_per_block=layers_per_block, pool_every=pool_every, hidden_dims=hidden_dims,
        model_type=model_type, **kw)
    return run_locked_experiment(ExperimentConfig.from_kwargs(settings), verbose=verbose)


def run_locked_experiment(config: ExperimentConfig, verbose: bool = True) -> ExperimentRun:
    """:func:`run_experiment` with its folders prepared and the run's lock held (a refused run
    leaves no new folder), as :func:`cnn_experiment` and ``run-exp`` run it.

    :raises UsageError: When another process is computing the same run."""
    ck = () if config.checkpoints is None else (Trainer.checkpoint_file(config.checkpoints),
                                                Trainer.last_checkpoint_file(config.checkpoints))
    created, lock = prepare_outputs(config.result_path, ck), RunLock(config.result_path)
    try:
        if not lock.acquire():
            raise UsageError(f"another process ({lock.holder()}) is computing this run now (lock "
                             f"{lock.path}); wait for it or choose another run name or folder")
        return run_experiment(config, verbose=verbose)
    except (ExperimentConfigError, DatasetUnavailableError, UsageError):
        lock.release()  # first, so that its folder is empty again
        remove_empty_folders(created)  # refused before training: leave no folder behind
        raise
    finally:
        lock.release()


def run_experiment(config: ExperimentConfig, verbose: bool = True) -> ExperimentRun:
    """Run one configuration and write its result file (see :func:`cnn_experiment`).

    The caller prepares the folders and holds the run's lock (:func:`run_locked_experiment`
    and the grid runners do); here only ``out_dir`` is checked before training.

    :param config: The run's settings.
    :param verbose: Print epoch lines and progress bars.
    :return: ``ExperimentRun(path, config, result)``.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    config = config.resolved()
    dev = resolve_device(config.device)
    fast = resolve_fast_paths(config, dev)
    info = dataset_info(config.dataset)
    record = _config_record(config, dev)
    _check_out_dir(config.out_dir)

    torch.manual_seed(config.seed)
    model = build_model(config, info)  # raises ExperimentConfigError before any training
    record.update(num_params=sum(p.numel() for p in model.parameters()),
                  conv_params=getattr(model, "conv_params", None),
                  pooling_params=getattr(model, "pooling_params", None))

    dl_train, dl_test = make_loaders(config, *_load_splits(config.dataset, verbose), dev, fast)
    trainer = _make_trainer(config, model, dev, fast)
    record["resumed_from_epoch"] = _resume(trainer, config.checkpoints, config.epochs)

    # Keep each step's freed activations mapped for the next one (glibc; no page faults per batch).
    record.update(retains_freed_memory=retain_freed_memory(), diverged=None)
    started = time.perf_counter()
    with cudnn_benchmark(fast["cudnn_benchmark"]):
        try:
            fit_res = trainer.fit(dl_train, dl_test, num_epochs=config.epochs,
                                  checkpoints=config.checkpoints,
                                  early_stopping=config.early_stopping,
                                  print_every=1 if verbose else 0, max_batches=config.batches,
                                  verbose=verbose)
        except TrainingDiverged as err:
            fit_res = err.fit_result
            record["diverged"] = dict(epoch=err.epoch, batch=err.batch, loss=str(err.loss),
                                      message=str(err))
            print(f"WARNING: {config.run_name}: {err}; only the {fit_res.num_epochs} epoch(s) "
                  f"before it are recorded", file=sys.stderr)
    record["wall_time_s"] = round(time.perf_counter() - started, 3)
    record["fast_paths"] = fast
    path = save_experiment(config.run_name, config.out_dir, record, fit_res)
    if verbose:
        print(f"*** Output file {path} written")
    return ExperimentRun(path, load_experiment(path)[0], fit_res)


def rerun_config(config: dict) -> dict:
    """The keyword arguments that repeat a saved run (``config`` as :func:`load_experiment`
    returns it): ``cnn_experiment(**rerun_config(cfg))`` runs it again, same seed and settings."""
    kwargs = {k: config[k] for k in EXPERIMENT_PARAMS if k in config}
    kwargs.update(config.get("kw") or {})
    return kwargs


def _config_record(config: ExperimentConfig, dev: torch.device) -> dict:
    """The result file's ``config``: every field, and what the run ran on."""
    record = config.to_dict()
    record.update(
        device_used=str(dev), channels=config.channels,
        optimizer="torch.optim.Adam(lr=lr, weight_decay=reg)", loss="torch.nn.CrossEntropyLoss",
        torch_version=torch.__version__, python_version=platform.python_version(),
        hostname=platform.node(),
        gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    record["kw"] = to_jsonable(record["kw"])
    return record


def _check_out_dir(out_dir: str) -> None:
    """Fail early when the result file could not be written into ``out_dir``."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExperimentConfigError(f"out_dir must be a folder, got the file {out_dir!r}")
    folder = os.path.abspath(out_dir)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise ExperimentConfigError(f"out_dir {out_dir!r} cannot be created or written to "
                                    f"({folder} is not a writable folder)")


def build_model(config: ExperimentConfig, info) -> nn.Module:
    """The network of a configuration for a data set (``info``: its
    :class:`~hw2.datasets.DatasetInfo`); every construction error becomes an
    :class:`ExperimentConfigError` naming the architecture."""
    cls = MODEL_TYPES[config.model_type]
    what = (f"model_type={config.model_type!r} ({cls.__name__}) with "
            f"K={list(config.filters_per_layer)}, L={config.layers_per_block}, "
            f"pool_every={config.pool_every}, hidden_dims={list(config.hidden_dims)} for "
            f"{config.dataset} images of shape {tuple(info.in_size)}")
    try:
        return cls(info.in_size, info.num_classes, channels=config.channels,
                   pool_every=config.pool_every, hidden_dims=list(config.hidden_dims),
                   **config.kw)
    except (ValueError, TypeError) as err:
        raise ExperimentConfigError(f"cannot build {what}: {err}") from None
    except (RuntimeError, MemoryError) as err:
        if not _is_allocation_failure(err):
            raise
        raise ExperimentConfigError(f"cannot build {what}: its parameters do not fit in "
                                    f"memory ({_first_line(err)}); choose smaller layer "
                                    f"sizes") from None


def _is_allocation_failure(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or any(
        mark in text for mark in ("not enough memory", "DefaultCPUAllocator", "out of memory",
                                  "can't allocate memory"))


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _make_trainer(config: ExperimentConfig, model: nn.Module, dev: torch.device,
                  fast: Dict[str, bool]) -> ExperimentTrainer:
    classifier = ArgMaxClassifier(model).to(dev)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.lr, weight_decay=config.reg)
    trainer = ExperimentTrainer(classifier, nn.CrossEntropyLoss(), optimizer, device=dev,
                                autocast_dtype=torch.bfloat16 if fast["amp_bf16"] else None,
                                channels_last=fast["channels_last"],
                                identity=to_jsonable(config.identity()))
    if fast["compile"]:
        classifier.compile()
    return trainer


def _resume(trainer: Trainer, checkpoints: Optional[str], epochs: int) -> Optional[int]:
    """Load an existing checkpoint before training starts (fit continues from it, with its
    random-number states: the result equals an uninterrupted run's).

    :return: The number of epochs the checkpoint holds (None when there is none).
    :raises ExperimentConfigError: If it is unreadable, malformed, of another architecture or
        another run's configuration, or holds more than ``epochs`` epochs.
    """
    if checkpoints is None:
        return None
    refused = f"cannot resume from checkpoint {Trainer.checkpoint_file(checkpoints)}"
    try:
        progress = trainer.resume_from(checkpoints)
    except (ValueError, OSError) as err:
        raise ExperimentConfigError(f"{refused}: {err}") from None
    if progress is not None and progress.epochs_done > epochs:
        raise ExperimentConfigError(f"{refused}: it holds {progress.epochs_done} epochs, more "
                                    f"than --epochs {epochs}")
    return None if progress is None else progress.epochs_done


_SPLITS_CACHE: Dict[Tuple[str, str], tuple] = {}  # by (name, data folder), for later runs


def _load_splits(name: str, verbose: bool):
    """:func:`hw2.datasets.load_dataset`, remembered for the next run of the same process
    (the loaders only read the data sets, so runs can share them)."""
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


def make_loaders(config: ExperimentConfig, ds_train, ds_test, dev: torch.device,
                 fast: Dict[str, bool]):
    """The train and test loaders of the configuration's data path.

    ``loader='tensor'``: :class:`~hw2.tensor_data.TensorLoader` (the data set as one tensor on
    ``dev``, batches by indexing, optional augmentation); ``'torchvision'``: ``DataLoader``s.
    With ``augment=False`` and the same seed both give the same batches.

    :return: ``(dl_train, dl_test)``.
    """
    if config.loader == "tensor":
        common = dict(device=dev, channels_last=fast["channels_last"])
        return (TensorLoader(*dataset_tensors(ds_train), config.bs_train, shuffle=True,
                             seed=config.seed, augment=config.augment, **common),
                TensorLoader(*dataset_tensors(ds_test), config.bs_test, shuffle=False,
                             **common))
    pin = fast["non_blocking"]
    dl_train = DataLoader(ds_train, batch_size=config.bs_train, shuffle=True, pin_memory=pin,
                          generator=torch.Generator().manual_seed(config.seed))
    dl_test = DataLoader(ds_test, batch_size=config.bs_test, shuffle=False, pin_memory=pin)
    return dl_train, dl_test


# -- the run-exp arguments, for hw2.cli and the course's parse_cli ------------------------------

def add_run_exp_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run-exp`` arguments: every :class:`ExperimentConfig` field, and ``--quiet``."""
    add_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars or epoch lines")


def parse_cli(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``run-exp ...`` (default: ``sys.argv[1:]``) as the course's experiment scripts do.

    :return: A namespace of :func:`cnn_experiment`'s keyword arguments (model arguments given
        with ``--model-kw`` among them, and ``verbose``) plus ``subcmd_fn=cnn_experiment``:
        ``args.subcmd_fn(**{k: v for k, v in vars(args).items() if k != 'subcmd_fn'})`` runs it.
    :raises SystemExit: On malformed arguments (argparse prints the usage; status 2).
    :raises ExperimentConfigError: For settings that parse but cannot run.
    """
    parser = argparse.ArgumentParser(prog="hw2.experiments",
                                     description="CS236781 HW2 experiments")
    sub = parser.add_subparsers(dest="subcmd", required=True, metavar="SUBCOMMAND")
    add_run_exp_arguments(sub.add_parser("run-exp", help="run one experiment configuration"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = ExperimentConfig.from_args(args)
    return argparse.Namespace(**config.experiment_kwargs(), verbose=not args.quiet,
                              subcmd_fn=cnn_experiment)
