"""Experiments of the assignment: one run of each kind, from its settings to its result.

* Part 3: :func:`mlp_experiment` trains one MLP binary classifier of a given depth and width,
  tunes its decision threshold on validation data and reports its accuracies.
* Part 5: :func:`cnn_experiment` trains one CNN/ResNet/YourCNN configuration (``K`` filters per
  layer, ``L`` layers per block) and writes its configuration and :class:`FitResult` to
  ``{out_dir}/{run_name}_L{L}_K{K-K-K}.json``. Its settings are an
  :class:`~hw2.config.ExperimentConfig`; the lock, folders, data and result file around the
  training are :func:`hw2.runs.open_run`'s.

``python -m hw2.experiments`` is the command line (:mod:`hw2.cli`): ``run-exp`` (one run),
``grid-run``, ``grid-submit``, ``grid-show`` (the grids of :mod:`hw2.grids`) and ``summarize``.
:func:`parse_cli` parses ``run-exp`` arguments as the course's own scripts expect.
"""
if __name__ == "__main__":  # python -m hw2.experiments: the command line, from hw2.cli
    import sys

    from hw2.cli import main

    sys.exit(main())

import argparse
import os
import sys
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader

from hw2.classifier import ArgMaxClassifier, BinaryClassifier, select_roc_thresh
from hw2.config import (
    EXPERIMENT_PARAMS, MODEL_TYPES, ExperimentConfig, add_arguments, expand_channels,
)
from hw2.datasets import data_root
from hw2.experiment_trainer import ExperimentTrainer
from hw2.mlp import MLP
from hw2.results import load_experiment, save_experiment
from hw2.runs import ExperimentRun, make_loaders, open_run
from hw2.training import ClassifierTrainer
from hw2.validation import check_int

__all__ = [
    "MLP_EXPERIMENT_HP", "mlp_experiment",
    "DATA_DIR", "MODEL_TYPES", "ExperimentRun", "cnn_experiment", "run_experiment",
    "rerun_config", "add_run_exp_arguments", "parse_cli",
    # the course's names for them (its notebooks import them from here):
    "expand_channels", "save_experiment", "load_experiment",
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
    x_valid, y_valid = _all_samples(dl_valid)

    # TODO:
    #  - Create a BinaryClassifier model: an MLP of `depth` hidden layers of `width` units and
    #    two output scores (hyperparameters of your choice, e.g. MLP_EXPERIMENT_HP).
    #  - Train it with a ClassifierTrainer for n_epochs, validating on dl_valid.
    #  - Select the ROC threshold on the validation set and set it on the model.
    #  - Compute the validation and test accuracies (in percent) with that threshold.
    # ====== YOUR CODE: ======
    hp = MLP_EXPERIMENT_HP
    model = BinaryClassifier(
        model=MLP(in_dim=in_dim, dims=[*[width] * depth, 2],
                  nonlins=[*[hp["activation"]] * depth, "none"]),
        threshold=0.5,
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device=device)
    trainer.fit(dl_train, dl_valid, num_epochs=n_epochs, print_every=0, verbose=False)

    thresh = select_roc_thresh(model, x_valid, y_valid)
    model.threshold = thresh
    valid_acc = trainer.test_epoch(dl_valid, verbose=False).accuracy
    test_acc = trainer.test_epoch(dl_test, verbose=False).accuracy
    # ====== END YOUR CODE ======
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


# -- Part 5: CNN architecture experiments -----------------------------------------------------

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
    # How to run it (not part of the configuration)
    verbose: bool = True,
    skip_complete: bool = False,
    # Any other ExperimentConfig field, and the model's own keyword arguments
    **kw,
) -> ExperimentRun:
    """Train one CNN configuration and save its configuration and results as JSON.

    The convolutional part has ``len(K) * L`` convolutions: ``K[0]`` filters ``L`` times,
    then ``K[1]`` filters ``L`` times, and so on (:func:`expand_channels`). The network (a
    :class:`~hw2.cnn.CNN`, :class:`~hw2.cnn.ResNet` or :class:`~hw2.cnn.YourCNN`) is wrapped in
    an :class:`~hw2.classifier.ArgMaxClassifier` and trained with cross-entropy and
    ``torch.optim.Adam`` (L2 penalty ``reg`` as weight decay) by an
    :class:`~hw2.experiment_trainer.ExperimentTrainer`.

    The parameters are the fields of :class:`~hw2.config.ExperimentConfig`, where each one is
    described; the ones above are the course's. Every other field (``dataset``, ``loader``,
    ``augment``, ``amp``, ...) is passed by name through ``kw``; the remaining ``kw`` are
    keyword arguments of the model's constructor (e.g. ``conv_params``, ``batchnorm``).
    ``filters_per_layer=None`` means ``[64]`` and ``hidden_dims=None`` ``[1024]``.

    Everything is checked before training starts (:func:`hw2.runs.open_run`): an invalid value,
    an architecture whose feature maps shrink to nothing, a checkpoint of another run or
    folders that cannot be written raise :class:`~hw2.validation.ExperimentConfigError` (a
    ``ValueError``; for a value of the wrong type, its ``TypeError`` flavour), a missing real
    data set :class:`~hw2.datasets.DatasetUnavailableError`, and another process computing the
    same result file :class:`~hw2.runs.RunBusy` (a ``UsageError``), leaving no new folder.

    The result file, written atomically, holds ``{"config": {...}, "results":
    FitResult._asdict()}``: every field of the configuration (``seed``, drawn at random when
    None, ``bs_test`` and ``dataset`` as used), the model arguments (``kw``), channels, device,
    versions, wall time and fast paths. A run whose loss becomes NaN or infinite stops there,
    warns on stderr and is recorded as diverged (``config["diverged"]``, the epochs before it).

    :param verbose: Print epoch lines and progress bars.
    :param skip_complete: When the result file is already complete, return it (``trained``
        False) instead of training again, as the grids do.
    :return: ``ExperimentRun(path, config, result, trained)``.
    """
    arguments = dict(locals())  # the parameters above, as the course's cfg = locals()
    config = ExperimentConfig.from_kwargs(
        {**{k: v for k, v in arguments.items() if k not in ("verbose", "skip_complete", "kw")},
         **kw})
    with open_run(config, verbose, skip_complete) as run:
        if run.result is not None:  # skip_complete, and the result file is complete
            return run.result
        cfg, device = run.config, run.device  # as resolved: the seed is set, bs_test known
        ds_train, ds_test = run.datasets

        # TODO: Train
        #  - Choose the model class of cfg.model_type and create the model from the
        #    configuration (cfg.channels, cfg.pool_every, cfg.hidden_dims, cfg.kw) for
        #    images of run.info.in_size and run.info.num_classes classes.
        #  - Create the data loaders, a cross-entropy loss, an optimizer and the trainer
        #    (run.trainer_options are the trainer's fast paths and the run's identity).
        #  - Run training and keep the FitResult in fit_res; it is then saved for you.
        #  - Pass resume=run.resume to fit (the checkpoint to continue from, read and checked).
        fit_res = None
        # ====== YOUR CODE: ======
        model_cls = MODEL_TYPES[cfg.model_type]
        model = ArgMaxClassifier(model_cls(
            run.info.in_size, run.info.num_classes, channels=cfg.channels,
            pool_every=cfg.pool_every, hidden_dims=list(cfg.hidden_dims), **cfg.kw))
        dl_train, dl_test = make_loaders(cfg, ds_train, ds_test, device, run.fast)
        loss_fn = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.reg)
        trainer = ExperimentTrainer(model, loss_fn, optimizer, device, **run.trainer_options)
        if run.fast["compile"]:
            model.compile()
        fit_res = trainer.fit(dl_train, dl_test, num_epochs=cfg.epochs,
                              checkpoints=cfg.checkpoints, early_stopping=cfg.early_stopping,
                              print_every=1 if verbose else 0, max_batches=cfg.batches,
                              verbose=verbose, resume=run.resume)
        # ====== END YOUR CODE ======
        run.save(fit_res)
    return run.result


def run_experiment(config: ExperimentConfig, verbose: bool = True,
                   skip_complete: bool = False) -> ExperimentRun:
    """:func:`cnn_experiment` of a configuration (what ``run-exp`` and the grids call)."""
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    return cnn_experiment(**config.experiment_kwargs(), verbose=verbose,
                          skip_complete=skip_complete)


def rerun_config(config: dict) -> dict:
    """The keyword arguments that repeat a saved run (``config`` as :func:`load_experiment`
    returns it): ``cnn_experiment(**rerun_config(cfg))`` runs it again, same seed and settings."""
    kwargs = {k: config[k] for k in EXPERIMENT_PARAMS if k in config}
    kwargs.update(config.get("kw") or {})
    return kwargs


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
