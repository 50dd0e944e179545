"""What several test files need: tiny run settings, file listings, the CLI as a subprocess,
the bad-input catalogue's check, tiny notebooks.

Imported by the tests as ``helpers`` (pytest puts ``tests/`` on ``sys.path``); fixtures built
on these live in ``conftest.py``.
"""
import contextlib
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional

import nbformat
import nbformat.v4 as v4
import pytest
import torch

import hw2
from cs236781.train_results import FitResult

#: The folder holding the ``hw2`` package under test, for child processes' PYTHONPATH.
PACKAGE_ROOT = Path(hw2.__file__).resolve().parent.parent
#: The two packages whose own code must raise the bad-input errors.
PACKAGE_DIRS = (str(PACKAGE_ROOT / "hw2"), str(PACKAGE_ROOT / "cs236781"))

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


# -- the bad-input catalogues (test_bad_input.py, test_bad_input_trainer.py) -----------------------

def raised_in_package(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in hw2/ or cs236781/."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(PACKAGE_DIRS)


def assert_clear_error(call, exc_type: type, pattern: str) -> None:
    """``call()`` raises exactly ``exc_type`` (not a subclass), from the package's own code,
    with a message matching the regular expression ``pattern``."""
    with pytest.raises(exc_type) as info:
        call()
    assert info.type is exc_type, info.type
    assert re.search(pattern, str(info.value)), f"message was: {info.value}"
    assert raised_in_package(info.value), "raised from outside the package:\n" + \
        "".join(traceback.format_tb(info.value.__traceback__)[-2:])


@contextlib.contextmanager
def address_space_cap(headroom_bytes: int = 256 * 2 ** 30):
    """Let this process map at most ``headroom_bytes`` more than it has now (Linux,
    ``RLIMIT_AS``), so that an absurd allocation fails at once on every host: where the kernel
    overcommits memory without limit (``vm.overcommit_memory=1``, as on Kubernetes nodes), a
    40 TB tensor would be mapped and then filled until the OOM killer ends the test run."""
    import resource  # POSIX only; the cap is a no-op where there is no /proc/self/status

    status = Path("/proc/self/status")
    if not status.is_file():
        yield
        return
    (line,) = [x for x in status.read_text().splitlines() if x.startswith("VmSize:")]
    now = int(line.split()[1]) * 1024  # "VmSize:  123456 kB"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = now + headroom_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- tiny notebooks (test_jupyter_utils.py, test_course_cli.py) ------------------------------------

#: Notebook metadata naming the python3 kernel, as Jupyter writes it.
PYTHON3_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                   "language": "python"},
                    "language_info": {"name": "python", "file_extension": ".py"}}


def write_nb(path: Path, *sources: str, outputs: Optional[dict] = None,
             title: str = "A tiny notebook", metadata: Optional[dict] = None) -> Path:
    """A notebook of a markdown title cell and one code cell per source; ``outputs`` maps a
    source's index to the outputs (and execution count) it is saved with."""
    cells = [v4.new_markdown_cell(f"# {title}")]
    for i, src in enumerate(sources):
        cell = v4.new_code_cell(src)
        if outputs and i in outputs:
            cell.outputs, cell.execution_count = outputs[i], i + 1
        cells.append(cell)
    nbformat.write(v4.new_notebook(cells=cells, metadata=metadata or {}), str(path))
    return path


def stream_output(text: str):
    """A notebook output: ``text`` printed to stdout."""
    return v4.new_output("stream", name="stdout", text=text)
