"""What several test files need: tiny run settings, file listings, the CLI as a subprocess.

Imported by the tests as ``helpers`` (pytest puts ``tests/`` on ``sys.path``); fixtures built
on these live in ``conftest.py``.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

import hw2
from cs236781.train_results import FitResult

#: The folder holding the ``hw2`` package under test, for child processes' PYTHONPATH.
PACKAGE_ROOT = Path(hw2.__file__).resolve().parent.parent

#: A :func:`hw2.experiments.cnn_experiment` run that takes a second or two on digits.
TINY_RUN = dict(dataset="digits", bs_train=32, bs_test=64, batches=3, epochs=2,
                early_stopping=None, filters_per_layer=[4, 8], layers_per_block=1, pool_every=1,
                hidden_dims=[16], verbose=False)

#: ``run-exp`` flags of a one-epoch, two-batch run on digits (add -K/-L/-P/-n/-o).
TINY_FLAGS = ["--dataset", "digits", "--batches", "2", "--epochs", "1", "--bs-train", "16",
              "--bs-test", "32", "-H", "8", "-q"]


def files_in(folder: Path) -> List[str]:
    """Every file and folder below ``folder``, relative and sorted ([] when it is missing)."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def child_env(**extra: str) -> Dict[str, str]:
    """The environment of a child Python that imports this checkout's packages, headless."""
    return dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), MPLBACKEND="Agg",
                PYTHONUNBUFFERED="1", **extra)


def run_cli(*args, env: Optional[Dict[str, str]] = None, cwd=None, timeout: int = 300):
    """Run ``python -m hw2.experiments ARGS`` in a subprocess; return the completed process."""
    return subprocess.run([sys.executable, "-m", "hw2.experiments", *map(str, args)],
                          capture_output=True, text=True, env=child_env(**(env or {})),
                          cwd=cwd or PACKAGE_ROOT, timeout=timeout)


def no_download_env(data_dir: Path) -> Dict[str, str]:
    """An empty data folder and proxies on a closed local port: any download fails at once."""
    env = {"HW2_DATA_DIR": str(data_dir), "no_proxy": "", "NO_PROXY": ""}
    env.update({v: "http://127.0.0.1:9" for v in ("http_proxy", "https_proxy", "HTTP_PROXY",
                                                   "HTTPS_PROXY")})
    return env


def assert_fit_equal(a: FitResult, b: FitResult) -> None:
    """Two FitResults agree exactly, field by field."""
    assert a.num_epochs == b.num_epochs
    for field in FitResult._fields[1:]:
        torch.testing.assert_close(torch.tensor(getattr(a, field), dtype=torch.float64),
                                   torch.tensor(getattr(b, field), dtype=torch.float64),
                                   rtol=0, atol=0)
