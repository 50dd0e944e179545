"""The machinery around one Part 5 run, kept out of :func:`hw2.experiments.cnn_experiment`.

:func:`open_run` is the one lock-and-run path: ``cnn_experiment`` runs its body inside it, and
``run-exp``, ``grid-run`` and the grid jobs all go through ``cnn_experiment``. In order it

1. creates and probes the folders of the result file and the checkpoints
   (:func:`~hw2.results.prepare_outputs`) and takes the run's lock
   (:class:`~hw2.results.RunLock`); another process holding it raises :class:`RunBusy`;
2. with ``skip_complete``, hands back the complete result file instead of training again
   (checked under the lock: the process that held it may have just finished);
3. resolves the configuration (seed, ``bs_test``, data set), the device and the CUDA fast
   paths, checks the architecture by building the network once on the CPU (the seed is set
   after it, so the body's network gets the seed's draws), reads the checkpoint the run
   resumes from, if any, once (:meth:`~hw2.checkpoints.Checkpoint.for_resume`: its file, its
   fit progress, architecture and run, and no more epochs than ``config.epochs``), loads the
   data and sets the seed;
4. yields a :class:`RunSetup` to the body, which trains (``fit(..., resume=run.resume)``: the
   checkpoint read in step 3, not read again) and calls :meth:`RunSetup.save`; a
   :class:`~hw2.training.TrainingDiverged` leaving the body is saved as a diverged run.

A refusal in steps 1-3 (:class:`~hw2.validation.ExperimentConfigError`,
:class:`~hw2.datasets.DatasetUnavailableError`, :class:`RunBusy`) leaves no new folder; the lock
is released however the body ends.
"""
import contextlib
import dataclasses
import datetime
import platform
import sys
import time
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from cs236781.train_results import FitResult
from hw2.allocator import retain_freed_memory
from hw2.checkpoints import Checkpoint, checkpoint_file, last_checkpoint_file
from hw2.classifier import ArgMaxClassifier
from hw2.config import MODEL_TYPES, ExperimentConfig
from hw2.datasets import SYNTHETIC_BANNER, DatasetInfo, DatasetUnavailableError, data_root
from hw2.datasets import dataset_info, load_dataset
from hw2.devices import cudnn_benchmark, resolve_device, resolve_fast_paths
from hw2.results import RunLock, is_complete, load_experiment, prepare_outputs
from hw2.results import remove_empty_folders, save_experiment, to_jsonable
from hw2.tensor_data import TensorLoader, dataset_tensors
from hw2.training import TrainingDiverged
from hw2.validation import ExperimentConfigError, UsageError

__all__ = ["RunBusy", "ExperimentRun", "RunSetup", "open_run", "make_loaders"]


class RunBusy(UsageError):
    """Another process is computing this run now (its lock is held)."""


class ExperimentRun(NamedTuple):
    """A run's result file: its path, the configuration stored in it and its :class:`FitResult`.

    ``trained`` is False when ``skip_complete`` found the file complete and nothing trained.
    """

    path: str
    config: dict
    result: FitResult
    trained: bool = True


@dataclasses.dataclass
class RunSetup:
    """What the body of a run gets from :func:`open_run`.

    config: the resolved configuration (seed, ``bs_test`` and ``dataset`` filled in).
    device: where to train. fast: the CUDA fast paths (:func:`~hw2.devices.resolve_fast_paths`).
    info: the data set's image shape and class count. datasets: ``(ds_train, ds_test)``.
    trainer_options: keyword arguments of :class:`~hw2.experiment_trainer.ExperimentTrainer`
    for the fast paths and the run's identity (checkpoints of another run are refused).
    record: the result file's ``config`` so far. result: the :class:`ExperimentRun`, once saved.
    resume: the checked checkpoint to continue from, for ``fit(..., resume=...)`` (None: the
    run starts afresh); its state is put into the body's model and optimizer by ``fit``.
    """

    config: ExperimentConfig
    device: torch.device
    fast: Dict[str, bool]
    info: DatasetInfo
    datasets: Tuple[Any, Any]
    trainer_options: Dict[str, Any]
    record: Dict[str, Any]
    verbose: bool = True
    result: Optional[ExperimentRun] = None
    resume: Optional[Checkpoint] = None
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def save(self, fit_res: FitResult) -> ExperimentRun:
        """Write the result file (atomically) and keep it as :attr:`result`."""
        self.record["wall_time_s"] = round(time.perf_counter() - self.started, 3)
        path = save_experiment(self.config.run_name, self.config.out_dir, self.record, fit_res)
        if self.verbose:
            print(f"*** Output file {path} written")
        self.result = ExperimentRun(path, load_experiment(path)[0], fit_res)
        return self.result

    def __repr__(self) -> str:
        resumes = None if self.resume is None else self.resume.epochs_done
        return (f"RunSetup({self.config.filename!r}, device={self.device}, "
                f"resumes_after_epoch={resumes}, saved={self.result is not None})")


@contextlib.contextmanager
def open_run(config: ExperimentConfig, verbose: bool = True,
             skip_complete: bool = False) -> Iterator[RunSetup]:
    """Hold the run's lock around its body and set the run up (see the module docstring).

    :param config: The run's settings.
    :param verbose: Print the data set, the result file and a diverged run's warning.
    :param skip_complete: Keep a complete result file: the yielded setup's ``result`` is then
        that file's run (``trained=False``) and the body should return it without training.
    :raises RunBusy: Another process holds the run.
    :raises ExperimentConfigError: For a configuration that cannot run (nothing trained).
    :raises DatasetUnavailableError: A real data set is missing and cannot be downloaded.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    files = () if config.checkpoints is None else (checkpoint_file(config.checkpoints),
                                                   last_checkpoint_file(config.checkpoints))
    created, lock = prepare_outputs(config.result_path, files), RunLock(config.result_path)
    try:
        if not lock.acquire():
            raise RunBusy(f"another process ({lock.holder()}) is computing this run now (lock "
                          f"{lock.path}); wait for it or choose another run name or folder")
        if skip_complete and is_complete(config.result_path):
            setup = _kept(config, verbose)
        else:
            setup = _set_up(config, verbose)
    except (ExperimentConfigError, DatasetUnavailableError, UsageError):
        lock.release()  # first, so that its folder is empty again
        remove_empty_folders(created)  # refused before training: leave no folder behind
        raise
    except BaseException:
        lock.release()
        raise
    try:
        with cudnn_benchmark(setup.fast["cudnn_benchmark"]):
            yield setup
    except TrainingDiverged as err:
        setup.record["diverged"] = dict(epoch=err.epoch, batch=err.batch, loss=str(err.loss),
                                        message=str(err))
        print(f"WARNING: {config.run_name}: {err}; only the {err.fit_result.num_epochs} "
              f"epoch(s) before it are recorded", file=sys.stderr)
        setup.save(err.fit_result)
    finally:
        lock.release()


def _kept(config: ExperimentConfig, verbose: bool) -> RunSetup:
    """The setup of a run whose complete result file is kept."""
    saved, fit_res = load_experiment(config.result_path)
    if verbose:
        print(f"{config.result_path}: complete result file exists, kept")
    return RunSetup(config, torch.device("cpu"), dict(cudnn_benchmark=False), None, (None, None),
                    {}, saved, verbose, ExperimentRun(config.result_path, saved, fit_res, False))


def _set_up(config: ExperimentConfig, verbose: bool) -> RunSetup:
    """Everything a run checks and loads before training (step 3 of the module docstring)."""
    if verbose:  # the run's start line: only a run that trains here prints it
        print(f"*** Starting {config.stem} (model={config.model_type}, "
              f"pool_every={config.pool_every})", flush=True)
    config = config.resolved()
    dev = resolve_device(config.device)
    fast = resolve_fast_paths(config, dev)
    info = dataset_info(config.dataset)
    network = _network_check(config, info)
    identity = to_jsonable(config.identity())
    resume = _resume_checkpoint(config, ArgMaxClassifier(network), identity)
    record = _record(config, dev, fast)
    record.update(num_params=sum(p.numel() for p in network.parameters()),
                  conv_params=getattr(network, "conv_params", None),
                  pooling_params=getattr(network, "pooling_params", None),
                  resumed_from_epoch=None if resume is None else resume.epochs_done)
    datasets = _load_splits(config.dataset, verbose)
    torch.manual_seed(config.seed)
    options = dict(autocast_dtype=torch.bfloat16 if fast["amp_bf16"] else None,
                   channels_last=fast["channels_last"], identity=identity)
    return RunSetup(config, dev, fast, info, datasets, options, record, verbose, resume=resume)


def _network_check(config: ExperimentConfig, info: DatasetInfo) -> torch.nn.Module:
    """The configuration's network, built on the CPU so that every check of its constructor (an
    architecture that shrinks the images to nothing, a bad model argument) runs before any
    folder is kept or any training starts; its parameter count goes into the result file.

    (On the ``meta`` device it would allocate nothing, but torch's first meta forward imports
    ``torch._dynamo``: seconds in every new process.)

    :raises ExperimentConfigError: The constructor's refusal, naming the architecture; also
        torch's own failure to build it (a ``RuntimeError``/``MemoryError``, e.g. parameters that
        do not fit in memory), with the first line of torch's message. A hand-out's blank
        (``NotImplementedError``) passes through unchanged.
    """
    cls = MODEL_TYPES[config.model_type]
    try:
        return cls(info.in_size, info.num_classes, channels=config.channels,
                   pool_every=config.pool_every, hidden_dims=list(config.hidden_dims),
                   **config.kw)
    except NotImplementedError:
        raise
    except (ValueError, TypeError, RuntimeError, MemoryError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if not isinstance(err, (ValueError, TypeError)):
            reason = f"torch could not build it ({type(err).__name__}: {reason})"
        raise ExperimentConfigError(
            f"cannot build model_type={config.model_type!r} ({cls.__name__}) with "
            f"K={list(config.filters_per_layer)}, L={config.layers_per_block}, "
            f"pool_every={config.pool_every}, hidden_dims={list(config.hidden_dims)} for "
            f"{config.dataset} images of shape {tuple(info.in_size)}: {reason}") from None


def _resume_checkpoint(config: ExperimentConfig, model: torch.nn.Module,
                       identity: dict) -> Optional[Checkpoint]:
    """The checkpoint the run resumes from, read once and checked against ``model`` (the
    run's classifier, built on the CPU) and the run's ``identity``; None: it starts afresh
    (no ``checkpoints`` name, or no file of it yet).

    :raises ExperimentConfigError: It is unreadable, malformed, holds no fit progress (saved
        outside fit), is of another architecture or another run, or holds more than
        ``config.epochs`` epochs.
    """
    if config.checkpoints is None:
        return None
    refused = f"cannot resume from checkpoint {checkpoint_file(config.checkpoints)}"
    try:
        resume = Checkpoint.for_resume(config.checkpoints, model, identity)
    except (ValueError, OSError) as err:
        raise ExperimentConfigError(f"{refused}: {err}") from None
    if resume is not None and resume.epochs_done > config.epochs:
        raise ExperimentConfigError(f"{refused}: it holds {resume.epochs_done} epochs, more "
                                    f"than --epochs {config.epochs}")
    return resume


def _record(config: ExperimentConfig, dev: torch.device, fast: Dict[str, bool]) -> dict:
    """The result file's ``config``: every field, and what the run ran on."""
    record = config.to_dict()
    record.update(
        device_used=str(dev), channels=config.channels,
        optimizer="torch.optim.Adam(lr=lr, weight_decay=reg)", loss="torch.nn.CrossEntropyLoss",
        torch_version=torch.__version__, python_version=platform.python_version(),
        hostname=platform.node(),
        gpu=torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        fast_paths=fast, diverged=None,
        # Keep each step's freed activations mapped for the next one (glibc; no page faults).
        retains_freed_memory=retain_freed_memory())
    record["kw"] = to_jsonable(record["kw"])
    return record


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
    ``dev``, batches by indexing; only the training loader augments, when ``augment``);
    ``'torchvision'``: ``DataLoader``s. With ``augment=False`` and the same seed both give the
    same batches.

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
