"""Writing evidence files: one JSON document per experiment, with everything needed to rerun it.

Every file written by :func:`write_evidence` has the same top-level layout::

    {"experiment": "part2_dropout", "description": "...", "dataset": "synthetic",
     "seed": 42, "environment": {"torch_version": ..., "num_threads": 1, ...},
     "settings": {...every setting of the runs...}, "units": {...}, "results": {...}}

Floats are stored at full precision (Python's shortest round-trip repr), so a number printed
from the file at any precision is the number the run computed. Nothing time-dependent (wall
times, dates, host names) goes into a file: a rerun on the same software writes the same bytes.
"""
import json
import os
import platform
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import sklearn
import torch

from cs236781.atomic import atomic_write_text
from hw2.results import to_jsonable

#: Keys every evidence file has (tests check them).
REQUIRED_KEYS = ("experiment", "description", "dataset", "seed", "environment", "settings",
                 "units", "results")
#: Keys of the ``environment`` entry.
ENVIRONMENT_KEYS = ("torch_version", "numpy_version", "sklearn_version", "python_version",
                    "device", "num_threads", "quick")

PERCENT = "percent (0-100)"


def environment(num_threads: int, quick: bool) -> dict:
    """The software and thread count a result depends on (no host names or times)."""
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        "device": "cpu",
        "num_threads": int(num_threads),
        "quick": bool(quick),
    }


def mean_per_epoch(per_batch, num_epochs: int) -> list:
    """Mean of each epoch's batch values. ``per_batch``: (num_epochs * B,) -> (num_epochs,).

    :raises ValueError: If the batches do not split evenly into ``num_epochs`` epochs.
    """
    values = np.asarray(per_batch, dtype=np.float64)
    if num_epochs < 1 or len(values) % num_epochs:
        raise ValueError(f"expected a multiple of {num_epochs} batch values, got {len(values)}")
    return values.reshape(num_epochs, -1).mean(axis=1).tolist()


def fit_summary(fit) -> dict:
    """Per-epoch curves and summary numbers of a :class:`FitResult` (accuracies in percent).

    Epochs are numbered from 1 in the ``*_epoch`` entries.
    """
    n = fit.num_epochs
    train_loss = mean_per_epoch(fit.train_loss, n)
    test_loss = mean_per_epoch(fit.test_loss, n)
    train_acc, test_acc = [float(a) for a in fit.train_acc], [float(a) for a in fit.test_acc]
    best = int(np.argmax(test_acc))
    lowest = int(np.argmin(test_loss))
    return {
        "num_epochs": n,
        "train_acc": train_acc,
        "test_acc": test_acc,
        "train_loss_mean": train_loss,
        "test_loss_mean": test_loss,
        "final_train_acc": train_acc[-1],
        "final_test_acc": test_acc[-1],
        "final_train_loss_mean": train_loss[-1],
        "final_test_loss_mean": test_loss[-1],
        "final_gap": train_acc[-1] - test_acc[-1],
        "best_test_acc": test_acc[best],
        "best_test_acc_epoch": best + 1,
        "min_test_loss_mean": test_loss[lowest],
        "min_test_loss_epoch": lowest + 1,
    }


def write_evidence(out_dir: Union[str, Path], experiment: str, *, description: str,
                   dataset: str, seed: int, env: Mapping, settings: Mapping,
                   units: Mapping, results: Mapping, filename: Optional[str] = None) -> Path:
    """Write one evidence file atomically and return its path.

    :param out_dir: Folder of the file (created when missing).
    :param experiment: Name of the experiment; the file is ``{out_dir}/{experiment}.json``
        unless ``filename`` is given.
    :raises ValueError: If ``experiment`` is empty or contains a path separator.
    """
    if not experiment or os.sep in experiment or "/" in experiment:
        raise ValueError(f"experiment must be a plain name, got {experiment!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (filename or f"{experiment}.json")
    payload = {
        "experiment": experiment, "description": description, "dataset": dataset,
        "seed": seed, "environment": dict(env), "settings": dict(settings),
        "units": dict(units), "results": dict(results),
    }
    atomic_write_text(str(path), json.dumps(to_jsonable(payload), indent=1) + "\n")
    return path
