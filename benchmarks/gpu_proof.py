"""GPU proof: check and time every CUDA path of hw2 in one command, within a short GPU lease.

``make gpu-proof`` (``benchmarks/gpu_proof.sh`` picks the Python, then runs this module) on a
CUDA machine:

1. records ``nvidia-smi`` and the torch, CUDA and cuDNN versions;
2. runs the CUDA-marked tests (found by reading ``tests/``, see :func:`find_cuda_tests`);
3. times, each against its plain alternative in the same process: the from-scratch layers and
   optimizers vs torch, ``ClassifierTrainer`` vs a bare loop, ``TensorLoader`` on the device vs
   ``DataLoader``, and ``cnn_experiment`` images/s of each Part 5 model family with and without
   each speed path (bf16 autocast, channels_last, cudnn.benchmark, the device-resident
   ``TensorLoader``, non-blocking copies, ``torch.compile``);
4. times one full-size epoch of the largest and of the smallest run of every grid of
   :mod:`hw2.grids` and projects the whole Part 5 grid's time from them
   (:func:`project_grid`);
5. writes ``gpu_proof.json`` and ``gpu_proof.md`` into the output folder.

"Full size" is one CIFAR-10 epoch's work, 50,000 training and 10,000 test images. The synthetic
stand-in that ``cnn_experiment`` loads has 10,000 + 2,000 images, so a full-size measurement is
``50,000 / 10,000 = 5`` whole synthetic epochs without early stopping.

A time budget (``--budget-s``, default 450 s counted from the wrapper's start) guards the whole:
work that would not fit in what is left is skipped with a note, and work still running at the
deadline is stopped by SIGALRM and marked so. The most important work runs first.

``--dry-run`` (``make gpu-proof DRY_RUN=1``) runs every step at tiny sizes on whatever device
there is (CPU in CI), so that the script is checked end to end; its figures are labelled as
dry-run figures and say nothing about a GPU.

Run: ``python -m benchmarks.gpu_proof [--dry-run] [--out DIR] [--budget-s S]``.
"""
import argparse
import ast
import contextlib
import copy
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.timing import bare_train_epoch, interleaved_medians, synchronize
from hw2 import layers, optimizers
from hw2.classifier import ArgMaxClassifier
from hw2.cnn import CNN
from hw2.datasets import dataset_info, load_dataset, make_synthetic
from cs236781.atomic import atomic_write_text
from hw2.config import ExperimentConfig as GridRun  # a grid run is its configuration
from hw2.experiments import MODEL_TYPES, cnn_experiment, expand_channels
from hw2.grids import GRIDS, TRAIN_SETTINGS, grid_settings
from hw2.tensor_data import TensorLoader, dataset_tensors
from hw2.training import ClassifierTrainer

REPO = Path(__file__).resolve().parent.parent
#: Images of one CIFAR-10 epoch: the training set once plus the test set once.
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
DEFAULT_BUDGET_S = 450.0
DRY_RUN_BUDGET_S = 300.0
#: Seconds kept back from the budget for writing the report.
RESERVE_S = 10.0
#: The goals `make bench` sets for the same comparisons on the CPU.
GOALS = {"layers": ("<=", 1.05), "optimizers": ("<=", 1.10), "trainer": ("<=", 1.10),
         "data": (">=", 10.0)}
DRY_FIGURES = ("CPU dry-run figures at tiny sizes: they check that every step runs, and say "
               "nothing about GPU speed")
GPU_FIGURES = "measured on the GPU named below, at the sizes given in each row"


# ==============================================================================================
# Sizes
# ==============================================================================================

@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each step does (the full proof vs the dry run)."""

    layer_dims: Tuple[int, ...]       # MLP: in, hidden..., classes
    layer_batches: Tuple[int, int]    # a small and a large batch
    layer_repeats: int
    optim_resnet18: bool              # ResNet-18's parameters, else a few small tensors
    optim_repeats: int
    trainer_images: int
    trainer_batch: int
    trainer_channels: Tuple[int, ...]
    trainer_repeats: int
    data_images: int
    data_batch: int
    data_workers: int
    data_repeats: int
    run_overrides: dict               # cnn_experiment settings over hw2.grids.grid_settings()
    full_epochs: bool                 # epochs = one CIFAR-10 epoch's images (else run_overrides')
    family_run: str                   # which run stands for a family: 'largest' or 'smallest'
    compile_rows: bool
    default_estimate_s: float         # cost guess for work of unknown cost
    overhead_s: float                 # fixed cost of one cnn_experiment call (estimates)
    flop_rate: float                  # training FLOP/s guess before anything was measured


FULL = Sizes(layer_dims=(3 * 32 * 32, 512, 256, 128, 10), layer_batches=(128, 4096),
             layer_repeats=30, optim_resnet18=True, optim_repeats=20, trainer_images=10_000,
             trainer_batch=128, trainer_channels=(32, 64), trainer_repeats=5,
             data_images=CIFAR_TRAIN, data_batch=128, data_workers=2, data_repeats=3,
             run_overrides=dict(batches=None, early_stopping=None), full_epochs=True,
             family_run="largest", compile_rows=True, default_estimate_s=30.0,
             overhead_s=4.0, flop_rate=40e12)
DRY = Sizes(layer_dims=(48, 32, 16, 10), layer_batches=(8, 32), layer_repeats=3,
            optim_resnet18=False, optim_repeats=3, trainer_images=128, trainer_batch=32,
            trainer_channels=(4,), trainer_repeats=2, data_images=512, data_batch=64,
            data_workers=0, data_repeats=2,
            run_overrides=dict(bs_train=2, bs_test=2, batches=1, epochs=1, early_stopping=None),
            full_epochs=False, family_run="smallest", compile_rows=False, default_estimate_s=3.0,
            overhead_s=0.5, flop_rate=20e9)

#: The model families of Part 5 and the grids that use each.
FAMILIES = {"cnn": ("exp1_1", "exp1_2", "exp1_3"), "resnet": ("exp1_4",), "ycn": ("exp2",)}
#: cnn_experiment settings of each measured variant; 'all' is the CUDA default (every path on).
VARIANTS: Dict[str, dict] = {
    "all": {},
    "plain": dict(loader="torchvision", amp=False, channels_last=False, cudnn_benchmark=False,
                  non_blocking=False),
    "no_amp": dict(amp=False),
    "no_channels_last": dict(channels_last=False),
    "no_cudnn_benchmark": dict(cudnn_benchmark=False),
    "torchvision": dict(loader="torchvision"),
    "torchvision_blocking": dict(loader="torchvision", non_blocking=False),
    "compile": dict(compile_model=True),
}
#: Cost of a variant relative to 'all' (estimates only); compile adds COMPILE_EXTRA_S.
VARIANT_COST = {"all": 1.0, "plain": 3.0, "no_amp": 2.0, "no_channels_last": 1.3,
                "no_cudnn_benchmark": 1.3, "torchvision": 2.0, "torchvision_blocking": 2.0,
                "compile": 1.0}
COMPILE_EXTRA_S = 90.0
#: The speed-path rows of every family: (key, title, variant with, variant without).
SPEED_ROWS = (
    ("all-vs-none", "every speed path vs none (DataLoader, fp32, no tuning)", "all", "plain"),
    ("amp", "bf16 autocast", "all", "no_amp"),
    ("channels_last", "channels_last memory format", "all", "no_channels_last"),
    ("cudnn_benchmark", "cudnn.benchmark", "all", "no_cudnn_benchmark"),
    ("tensor_loader", "TensorLoader on the device vs DataLoader", "all", "torchvision"),
    ("non_blocking", "pinned memory + non_blocking copies (DataLoader path)", "torchvision",
     "torchvision_blocking"),
    ("compile", "torch.compile", "compile", "all"),
)


# ==============================================================================================
# Rows, the budget, the report's data
# ==============================================================================================

@dataclasses.dataclass
class ProofRow:
    """One timing row: ours against its plain alternative, measured in this process.

    ``ratio`` is ``ours / baseline``; ``speedup`` says how many times faster ours is (> 1:
    faster), whatever the unit. ``status`` is 'ok', 'skipped' or 'error'.
    """

    key: str
    section: str
    name: str
    unit: str
    higher_is_better: bool
    ours: Optional[float] = None
    baseline: Optional[float] = None
    goal: Optional[str] = None
    met: Optional[bool] = None
    status: str = "skipped"
    note: str = ""
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> Optional[float]:
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    @property
    def speedup(self) -> Optional[float]:
        r = self.ratio
        if r is None or r == 0:
            return None
        return r if self.higher_is_better else 1.0 / r

    def set_result(self, ours: float, baseline: float) -> None:
        """Store both figures, mark the row done and judge its goal (if the section has one)."""
        self.ours, self.baseline, self.status = float(ours), float(baseline), "ok"
        if self.section in GOALS:
            op, value = GOALS[self.section]
            self.goal = f"{op} {value:g}" + ("x" if self.higher_is_better else "")
            self.met = self.ratio <= value if op == "<=" else self.ratio >= value

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(ratio=self.ratio, speedup=self.speedup)
        return out


class BudgetExceeded(BaseException):
    """The time budget ran out while work was running (a BaseException: nothing swallows it)."""


class Budget:
    """A deadline for the whole proof.

    :param total_s: Seconds the proof may take, counted from ``started_at``.
    :param started_at: ``time.time()`` at the start (the wrapper's, so that its work counts).
    :param reserve_s: Seconds kept back for writing the report.
    """

    def __init__(self, total_s: float, started_at: float, reserve_s: float = RESERVE_S):
        self.total_s, self.started_at = float(total_s), float(started_at)
        self.deadline = self.started_at + self.total_s - reserve_s

    def left(self) -> float:
        return self.deadline - time.time()

    def allows(self, estimate_s: float) -> bool:
        return self.left() >= estimate_s

    @contextlib.contextmanager
    def hard_stop(self):
        """Raise :class:`BudgetExceeded` in this block when the deadline passes (SIGALRM)."""
        if not hasattr(signal, "setitimer"):
            yield
            return

        def on_alarm(signum, frame):
            raise BudgetExceeded()

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.001))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def __repr__(self) -> str:
        return f"Budget(total_s={self.total_s:g}, left={self.left():.1f}s)"


@dataclasses.dataclass
class Outcome:
    """How one piece of work ended: 'ok', 'skipped' (budget) or 'error', and why."""

    status: str
    note: str = ""
    seconds: float = 0.0


def run_guarded(budget: Budget, estimate_s: float, work: Callable[[], None],
                label: str) -> Outcome:
    """Run ``work`` when ``estimate_s`` fits in the budget; stop it at the deadline.

    Errors are caught and reported (one failing step must not cost the rest of the proof).
    """
    left = budget.left()
    if left < estimate_s:
        return Outcome("skipped", f"time budget: {max(left, 0):.0f} s left, needs ~{estimate_s:.0f} s")
    print(f"... {label} (~{estimate_s:.0f} s, {left:.0f} s left)", flush=True)
    start = time.perf_counter()
    try:
        with budget.hard_stop():
            work()
    except BudgetExceeded:
        return Outcome("skipped", "stopped: the time budget ran out while it ran",
                       time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 - reported in the row, the proof goes on
        traceback.print_exc()
        return Outcome("error", f"{type(err).__name__}: {err}", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    print(f"    done in {seconds:.1f} s", flush=True)
    return Outcome("ok", "", seconds)


# ==============================================================================================
# Environment and CUDA tests
# ==============================================================================================

def environment(device: torch.device) -> dict:
    """Versions, the device, and ``nvidia-smi``'s output (or why there is none)."""
    import torchvision

    cuda = device.type == "cuda"
    env = dict(
        python=platform.python_version(), platform=platform.platform(),
        hostname=platform.node(), cpu_count=os.cpu_count(), torch=torch.__version__,
        torchvision=torchvision.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        cuda_available=torch.cuda.is_available(), device=str(device),
        gpu=torch.cuda.get_device_name(device) if cuda else None,
        gpu_capability=list(torch.cuda.get_device_capability(device)) if cuda else None,
        bf16_supported=bool(torch.cuda.is_bf16_supported()) if cuda else None,
        torch_threads=torch.get_num_threads(), git_commit=_git_commit(),
    )
    env["nvidia_smi"] = _nvidia_smi()
    return env


def _git_commit() -> Optional[str]:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi: not found on this machine"
    try:
        done = subprocess.run([exe], text=True, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"nvidia-smi failed: {err}"
    return (done.stdout + done.stderr).rstrip()


def find_cuda_tests(tests_dir: Path, exclude: Sequence[str] = ("test_gpu_proof.py",)) -> List[str]:
    """Node ids of the tests that need CUDA, read from the test files' source.

    A test needs CUDA when a decorator of it or of its class holds a ``skipif`` whose condition
    mentions ``cuda`` (e.g. ``@pytest.mark.skipif(not torch.cuda.is_available(), ...)``, also
    inside ``pytest.param('cuda', marks=...)``) or a ``pytest.mark.cuda``/``gpu`` mark, when its
    body calls ``pytest.skip`` under an ``if`` about ``cuda``, or when its module's
    ``pytestmark`` holds such a mark.

    :param tests_dir: The folder of ``test_*.py`` files.
    :param exclude: File names not to read.
    :return: Ids such as ``tests/test_classifier.py::test_x``, relative to the repository.
    """
    ids = []
    for path in sorted(Path(tests_dir).glob("test_*.py")):
        if path.name in exclude:
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        try:
            rel = path.resolve().relative_to(REPO).as_posix()
        except ValueError:
            rel = path.as_posix()
        module_marked = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and _marks_cuda(node.value, source)
            for node in tree.body)
        for node, prefix, class_marked in _test_functions(tree, source):
            if module_marked or class_marked or _needs_cuda(node, source):
                ids.append(f"{rel}::{prefix}{node.name}")
    return ids


def _test_functions(tree: ast.Module, source: str):
    """(function node, 'Class::' prefix or '', whether its class is CUDA-marked)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            yield node, "", False
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            marked = _decorators_need_cuda(node, source)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    yield item, f"{node.name}::", marked


def _mentions_cuda(node, source: str) -> bool:
    return "cuda" in (ast.get_source_segment(source, node) or "").lower()


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _marks_cuda(node, source: str) -> bool:
    """Whether an expression holds a CUDA mark: ``skipif(<mentions cuda>)`` or ``mark.cuda``/``gpu``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _call_name(sub) == "skipif" and any(
                _mentions_cuda(arg, source) for arg in [*sub.args, *(k.value for k in sub.keywords)]):
            return True
        if (isinstance(sub, ast.Attribute) and sub.attr in ("cuda", "gpu")
                and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark"):
            return True
    return False


def _decorators_need_cuda(node, source: str) -> bool:
    return any(_marks_cuda(d, source) for d in node.decorator_list)


def _needs_cuda(node, source: str) -> bool:
    if _decorators_need_cuda(node, source):
        return True
    for sub in ast.walk(node):  # `if not torch.cuda.is_available(): pytest.skip(...)`
        if isinstance(sub, ast.If) and _mentions_cuda(sub.test, source) and any(
                isinstance(call, ast.Call) and _call_name(call) == "skip"
                for stmt in sub.body for call in ast.walk(stmt)):
            return True
    return False


def run_cuda_tests(python: str, budget: Budget, tmp: Path) -> dict:
    """Run the CUDA-marked tests with pytest; return counts and each test's outcome."""
    ids = find_cuda_tests(REPO / "tests")
    report = dict(selected=ids, passed=0, failed=0, skipped=0, errors=0, tests=[],
                  command=None, returncode=None, output_tail="")
    if not ids:
        report["note"] = "no CUDA-marked tests were found in tests/"
        return report
    xml = tmp / "cuda-tests.xml"
    cmd = [python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={xml}", *ids]
    report["command"] = " ".join(cmd[1:])
    timeout = max(1.0, min(180.0, budget.left()))
    done = subprocess.run(cmd, cwd=REPO, text=True, capture_output=True, timeout=timeout)
    report["returncode"] = done.returncode
    report["output_tail"] = (done.stdout + done.stderr)[-3000:]
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    outcome = {"failure": "failed", "error": "errors"}.get(tag, tag)
                    message = found.get("message", "")
                    break
            report[outcome] += 1
            report["tests"].append(dict(id=f"{case.get('classname')}::{case.get('name')}",
                                        outcome=outcome, message=message[:300]))
    return report


# ==============================================================================================
# The micro rows: layers, optimizers, trainer, data path
# ==============================================================================================

def layers_row(row: ProofRow, device: torch.device, dims: Sequence[int], batch: int,
               repeats: int) -> None:
    """``hw2.layers.MLP`` forward+backward vs the same network under autograd, on ``device``."""
    torch.manual_seed(0)
    with torch.device(device):  # our layers allocate with torch's default device
        ours = layers.MLP(dims[0], dims[-1], hidden_features=list(dims[1:-1]), wstd=0.05)
    mods = []
    linears = [layer for layer in ours.sequence if isinstance(layer, layers.Linear)]
    for i, lin in enumerate(linears):
        fc = nn.Linear(lin.w.shape[1], lin.w.shape[0], device=device)
        with torch.no_grad():
            fc.weight.copy_(lin.w)
            fc.bias.copy_(lin.b)
        mods += [fc] + ([nn.ReLU()] if i < len(linears) - 1 else [])
    theirs = nn.Sequential(*mods)
    x = torch.randn(batch, dims[0], device=device)
    y = torch.randint(0, dims[-1], (batch,), device=device)
    x_torch = x.clone().requires_grad_(True)  # autograd computes dL/dx too, as our backward does
    loss_fn = layers.CrossEntropyLoss()

    def step_ours():
        loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())

    def step_torch():
        theirs.zero_grad(set_to_none=False)
        x_torch.grad = None
        nn.functional.cross_entropy(theirs(x_torch), y).backward()

    for _, dp in ours.params():
        dp.zero_()
    step_ours()
    step_torch()
    theirs_grads = [g for m in theirs if isinstance(m, nn.Linear) for g in (m.weight.grad, m.bias.grad)]
    for (_, dp), g in zip(ours.params(), theirs_grads, strict=True):
        torch.testing.assert_close(dp, g, rtol=1e-4, atol=1e-5)
    t_ours, t_torch = interleaved_medians([step_ours, step_torch], repeats=repeats, warmup=3,
                                          device=device)
    row.set_result(1e3 * t_ours, 1e3 * t_torch)
    row.note = "same weights; gradients checked equal before timing"


OPTIM_RULES = {
    "sgd": (optimizers.VanillaSGD, dict(learn_rate=1e-3, reg=1e-4), torch.optim.SGD,
            dict(lr=1e-3, weight_decay=1e-4)),
    "momentum": (optimizers.MomentumSGD, dict(learn_rate=1e-3, reg=1e-4, momentum=0.9),
                 torch.optim.SGD, dict(lr=1e-3, weight_decay=1e-4, momentum=0.9)),
    "nesterov": (optimizers.MomentumSGD, dict(learn_rate=1e-3, reg=1e-4, momentum=0.9, nesterov=True),
                 torch.optim.SGD, dict(lr=1e-3, weight_decay=1e-4, momentum=0.9, nesterov=True)),
    "rmsprop": (optimizers.RMSProp, dict(learn_rate=1e-3, reg=1e-4), torch.optim.RMSprop,
                dict(lr=1e-3, weight_decay=1e-4)),
    "adam": (optimizers.Adam, dict(learn_rate=1e-3, reg=1e-4), torch.optim.Adam,
             dict(lr=1e-3, weight_decay=1e-4)),
}


def _optim_params(device: torch.device, resnet18: bool) -> List[torch.Tensor]:
    """Parameters with random gradients: ResNet-18's (62 tensors, 11.7M values) or a few small."""
    torch.manual_seed(0)
    if resnet18:
        import torchvision

        shapes = [tuple(p.shape) for p in torchvision.models.resnet18(num_classes=10).parameters()]
    else:
        shapes = [(16, 3, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 512), (10,)]
    params = [torch.randn(s, device=device).mul_(0.1).requires_grad_(True) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    return params


def optimizer_row(row: ProofRow, device: torch.device, rule: str, resnet18: bool,
                  repeats: int) -> None:
    """``step()`` of our optimizer vs its ``torch.optim`` twin's single-tensor path
    (``foreach=False``: a loop over the parameters, as ours is); the twin's default for the
    device (on CUDA the multi-tensor ``foreach`` kernels) is timed alongside, for the record."""
    ours_cls, ours_kw, torch_cls, torch_kw = OPTIM_RULES[rule]
    ours = ours_cls(_optim_params(device, resnet18), **ours_kw)
    single = torch_cls(_optim_params(device, resnet18), foreach=False, **torch_kw)
    default = torch_cls(_optim_params(device, resnet18), **torch_kw)
    t_ours, t_single, t_default = interleaved_medians(
        [ours.step, single.step, default.step], repeats=repeats, warmup=2, device=device)
    row.set_result(1e3 * t_ours, 1e3 * t_single)
    row.details = dict(values=sum(p.numel() for p in _optim_params(torch.device("cpu"), resnet18)),
                       torch_default_ms=1e3 * t_default)


def trainer_row(row: ProofRow, device: torch.device, sizes: Sizes) -> None:
    """``ClassifierTrainer.train_epoch`` vs a bare loop: same model, optimizer and batches."""
    torch.manual_seed(0)
    ds_train, _ = make_synthetic(n_train=sizes.trainer_images, n_test=10)
    loader = TensorLoader(*dataset_tensors(ds_train), sizes.trainer_batch, shuffle=False,
                          device=device)
    batches = list(loader)
    base = ArgMaxClassifier(CNN((3, 32, 32), 10, channels=list(sizes.trainer_channels),
                                pool_every=1, hidden_dims=[64]))
    model_a, model_b = copy.deepcopy(base).to(device), copy.deepcopy(base).to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt_a = torch.optim.SGD(model_a.parameters(), lr=1e-2, momentum=0.9)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=1e-2, momentum=0.9)
    trainer = ClassifierTrainer(model_a, loss_fn, opt_a, device=device)

    def with_trainer():
        with contextlib.redirect_stdout(open(os.devnull, "w")):  # the bar is drawn, not shown
            trainer.train_epoch(batches)

    def bare_loop():
        return bare_train_epoch(model_b, loss_fn, opt_b, batches)

    t_trainer, t_bare = interleaved_medians([with_trainer, bare_loop], repeats=sizes.trainer_repeats,
                                            warmup=1, device=device)
    row.set_result(t_trainer, t_bare)


def data_row(row: ProofRow, device: torch.device, sizes: Sizes) -> None:
    """One epoch of iteration: ``TensorLoader`` on the device vs ``DataLoader`` + copies."""
    ds, _ = make_synthetic(n_train=sizes.data_images, n_test=10)
    n, cuda = len(ds), device.type == "cuda"
    fast = TensorLoader(*dataset_tensors(ds), sizes.data_batch, shuffle=True, seed=0, device=device)
    plain = DataLoader(ds, sizes.data_batch, shuffle=True, num_workers=sizes.data_workers,
                       pin_memory=cuda, persistent_workers=sizes.data_workers > 0)

    def epoch(loader, copy_to_device: bool):
        def go():
            for x, y in loader:
                if copy_to_device:
                    x = x.to(device, non_blocking=cuda)
                    y = y.to(device, non_blocking=cuda)
            synchronize(device)
        return go

    t_fast, t_plain = interleaved_medians([epoch(fast, False), epoch(plain, True)],
                                          repeats=sizes.data_repeats, warmup=1, device=device)
    row.set_result(n / t_fast, n / t_plain)
    row.note = (f"{n:,} synthetic uint8 images; DataLoader: per-sample Dataset, "
                f"{sizes.data_workers} worker(s){', pinned, non_blocking copies' if cuda else ''}")


# ==============================================================================================
# run-exp measurements and the grids
# ==============================================================================================

def forward_flops(run: GridRun) -> float:
    """FLOPs of one forward pass of ``run``'s network on one image (torch's FLOP counter).

    The network is built on the ``meta`` device, so nothing is computed; the CPU is the
    fallback for a model that cannot run there.
    """
    try:
        return _count_flops(run, torch.device("meta"))
    except (NotImplementedError, RuntimeError):
        return _count_flops(run, torch.device("cpu"))


def _count_flops(run: GridRun, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    info = dataset_info("synthetic")  # CIFAR-10's shapes
    with torch.device(device):
        model = MODEL_TYPES[run.model_type](
            info.in_size, info.num_classes,
            channels=expand_channels(run.filters_per_layer, run.layers_per_block),
            pool_every=run.pool_every, hidden_dims=list(run.hidden_dims)).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *info.in_size))
    return float(counter.get_total_flops())


@dataclasses.dataclass
class Measurement:
    """One ``cnn_experiment`` call: its throughput and what was on."""

    run: str
    variant: str
    fit_s: float            # trainer.fit's wall time, as the result file records it
    end_to_end_s: float     # the whole call: model, data to the device, fit, result file
    images: int             # train + test images that went through the model
    images_per_s: float
    fast_paths: dict
    num_params: int
    epochs: int
    final_test_acc: Optional[float]
    diverged: Optional[dict] = None  # cnn_experiment's record of a NaN/inf loss, if any


class Experiments:
    """Measures ``cnn_experiment`` variants of grid runs, once each, and remembers them."""

    def __init__(self, device: torch.device, sizes: Sizes, budget: Budget, tmp: Path):
        self.device, self.sizes, self.budget, self.tmp = device, sizes, budget, tmp
        ds_train, ds_test = load_dataset("synthetic", verbose=False)
        self.n_train, self.n_test = len(ds_train), len(ds_test)
        self.synthetic_epochs = max(1, round(CIFAR_TRAIN / self.n_train))
        overrides = dict(sizes.run_overrides)
        if sizes.full_epochs:
            overrides["epochs"] = self.synthetic_epochs
        self.settings = grid_settings(dataset="synthetic", device=str(device), **overrides)
        self.flops: Dict[str, float] = {}
        self.done: Dict[Tuple[str, str], Measurement] = {}
        self.failed: Dict[Tuple[str, str], Outcome] = {}

    def flops_of(self, run: GridRun) -> float:
        if run.stem not in self.flops:
            self.flops[run.stem] = forward_flops(run)
        return self.flops[run.stem]

    def estimate_s(self, run: GridRun, variant: str) -> float:
        """A guess of the call's seconds: from this run's 'all' time, else scaled by FLOPs."""
        s = self.sizes
        known = self.done.get((run.stem, "all"))
        if known is not None:
            base = known.end_to_end_s
        else:  # overhead + training FLOPs (3x forward) at a rate, scaled by the last 'all' call
            def model(flops: float, images: int) -> float:
                return s.overhead_s + 3 * flops * images / s.flop_rate

            scale = [m.end_to_end_s / model(self.flops[m.run], m.images) for m in self.done.values()
                     if m.variant == "all" and m.run in self.flops]
            base = model(self.flops_of(run), self._images_per_call()) * (scale[-1] if scale else 1.0)
        extra = COMPILE_EXTRA_S if variant == "compile" and s.full_epochs else 0.0
        return base * VARIANT_COST[variant] + extra

    def _images_per_call(self) -> int:
        cfg = self.settings
        return cfg["epochs"] * (self._seen(self.n_train, cfg["bs_train"], cfg["batches"])
                                + self._seen(self.n_test, cfg["bs_test"], cfg["batches"]))

    @staticmethod
    def _seen(n: int, batch_size: int, batches: Optional[int]) -> int:
        return n if batches is None else min(n, batches * batch_size)

    def measure(self, run: GridRun, variant: str) -> Outcome:
        """Measure ``run`` under ``variant`` unless done (or already failed); budget-guarded."""
        key = (run.stem, variant)
        if key in self.done:
            return Outcome("ok")
        if key in self.failed:
            return self.failed[key]
        outcome = run_guarded(self.budget, self.estimate_s(run, variant),
                              lambda: self._call(run, variant), f"run-exp {run.stem} [{variant}]")
        if outcome.status != "ok":
            self.failed[key] = outcome
        return outcome

    def _call(self, run: GridRun, variant: str) -> None:
        out = Path(tempfile.mkdtemp(prefix=f"{run.stem}-{variant}-", dir=self.tmp))
        kwargs = dict(run.replace(out_dir=str(out), **self.settings).experiment_kwargs(),
                      **VARIANTS[variant])
        started = time.perf_counter()
        result = cnn_experiment(**kwargs, verbose=False)
        synchronize(self.device)
        end_to_end = time.perf_counter() - started
        cfg, fit = result.config, result.result
        images = fit.num_epochs * (self._seen(self.n_train, cfg["bs_train"], cfg["batches"])
                                   + self._seen(self.n_test, cfg["bs_test"], cfg["batches"]))
        self.done[(run.stem, variant)] = Measurement(
            run=run.stem, variant=variant, fit_s=float(cfg["wall_time_s"]),
            end_to_end_s=end_to_end, images=images,
            images_per_s=images / max(float(cfg["wall_time_s"]), 1e-9),
            fast_paths=dict(cfg.get("fast_paths") or {}), num_params=int(cfg["num_params"]),
            epochs=fit.num_epochs, final_test_acc=fit.test_acc[-1] if fit.test_acc else None,
            diverged=cfg.get("diverged"))
        shutil.rmtree(out, ignore_errors=True)
        del result
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def epoch_s(self, run: GridRun, variant: str) -> Optional[float]:
        """Seconds of one full-size (CIFAR-10) epoch of ``run``, from its measured images/s."""
        m = self.done.get((run.stem, variant))
        return None if m is None else (CIFAR_TRAIN + CIFAR_TEST) / m.images_per_s

    def missing(self, run: GridRun, variants: Sequence[str]) -> Tuple[str, str]:
        """Why some of ``variants`` of ``run`` were not measured: ``(row status, note)``."""
        status, notes = "skipped", []
        for variant in variants:
            if (run.stem, variant) in self.done:
                continue
            failed = self.failed.get((run.stem, variant))
            if failed is not None and failed.status == "error":
                status = "error"
            notes.append(f"{run.stem} [{variant}]: {failed.note if failed else 'not run'}")
        return status, "; ".join(notes)


def family_run(family: str, exps: Experiments, pick: str) -> GridRun:
    """The run that stands for a model family: the largest (or smallest) by FLOPs in its grids."""
    runs = [r for name in FAMILIES[family] for r in GRIDS[name].runs]
    key = exps.flops_of
    return max(runs, key=key) if pick == "largest" else min(runs, key=key)


def grid_extremes(grid_name: str, exps: Experiments) -> Tuple[GridRun, GridRun]:
    """(largest, smallest) run of a grid by forward FLOPs per image."""
    runs = GRIDS[grid_name].runs
    return max(runs, key=exps.flops_of), min(runs, key=exps.flops_of)


def project_grid(flops: Sequence[float], large: Tuple[float, float],
                 small: Optional[Tuple[float, float]]) -> float:
    """Seconds of one epoch of every run of a grid, from two timed runs.

    With both the largest and the smallest run timed, a run's epoch time is interpolated
    linearly in its FLOPs between them (a fixed per-epoch cost plus a cost per FLOP). With
    only the largest, every run is taken to be as slow as the largest (an upper bound).

    :param flops: Forward FLOPs per image of every run of the grid.
    :param large: ``(flops, epoch seconds)`` of the largest run.
    :param small: ``(flops, epoch seconds)`` of the smallest run, or None.
    :return: The sum over the runs of their projected epoch seconds.
    """
    f_large, t_large = large
    if small is None or f_large <= small[0]:
        return t_large * len(flops)
    f_small, t_small = small
    slope = (t_large - t_small) / (f_large - f_small)
    low = min(t_small, t_large)
    return sum(max(low, t_small + slope * (f - f_small)) for f in flops)


# ==============================================================================================
# The proof
# ==============================================================================================

class Proof:
    """Plans the work in priority order, runs it within the budget, and writes the report."""

    def __init__(self, args, sizes: Sizes, device: torch.device, budget: Budget, tmp: Path):
        self.args, self.sizes, self.device, self.budget, self.tmp = args, sizes, device, budget, tmp
        self.rows: Dict[str, ProofRow] = {}
        self.notes: List[str] = []
        self.env: dict = {}
        self.tests: dict = {}
        self.exps: Optional[Experiments] = None
        self.grids: List[dict] = []
        self.projection: dict = {}
        self.failed_early = False

    # -- rows ---------------------------------------------------------------------------------

    def add_row(self, key, section, name, unit, higher_is_better) -> ProofRow:
        row = ProofRow(key, section, name, unit, higher_is_better)
        self.rows[key] = row
        return row

    def micro(self, row: ProofRow, estimate_s: float, work: Callable[[ProofRow], None]) -> None:
        outcome = run_guarded(self.budget, estimate_s, lambda: work(row), row.name)
        row.seconds = outcome.seconds
        if outcome.status != "ok":
            row.status, row.note = outcome.status, outcome.note

    # -- the plan -------------------------------------------------------------------------------

    def run(self) -> None:
        s, dev = self.sizes, self.device
        self.env = environment(dev)
        self.tests = dict(selected=find_cuda_tests(REPO / "tests"))
        outcome = run_guarded(
            self.budget, 30.0 if s.full_epochs else 5.0,
            lambda: self.tests.update(run_cuda_tests(sys.executable, self.budget, self.tmp)),
            "CUDA-marked tests")
        if outcome.status != "ok":
            self.tests.update(status=outcome.status, note=outcome.note)
        elif not self.tests["selected"]:
            self.tests["status"] = "none found"
        else:
            bad = self.tests.get("failed", 0) + self.tests.get("errors", 0)
            self.tests["status"] = "failed" if bad or self.tests.get("returncode") != 0 else "ok"
        self._micro_rows()
        self._experiment_rows()

    def _micro_rows(self) -> None:
        s, dev = self.sizes, self.device
        dims = "-".join(map(str, s.layer_dims))
        for label, batch in zip(("small-batch", "large-batch"), s.layer_batches):
            row = self.add_row(f"layers/{label}", "layers",
                               f"layers.MLP fwd+bwd vs autograd ({dims}, B={batch})", "ms/step", False)
            self.micro(row, 10.0 if s.full_epochs else 2.0,
                       lambda r, b=batch: layers_row(r, dev, s.layer_dims, b, s.layer_repeats))
        params = "ResNet-18's parameters" if s.optim_resnet18 else "6 small tensors"
        for rule, (cls, *_rest) in OPTIM_RULES.items():
            row = self.add_row(f"optimizers/{rule}", "optimizers",
                               f"{cls.__name__}({rule}).step vs torch.optim (foreach=False), {params}",
                               "ms/step", False)
            self.micro(row, 10.0 if s.full_epochs else 1.0,
                       lambda r, rule=rule: optimizer_row(r, dev, rule, s.optim_resnet18, s.optim_repeats))
        row = self.add_row("trainer", "trainer", f"ClassifierTrainer.train_epoch vs bare loop "
                           f"({s.trainer_images:,} imgs, B={s.trainer_batch}, CNN)", "s/epoch", False)
        self.micro(row, 25.0 if s.full_epochs else 3.0, lambda r: trainer_row(r, dev, s))
        row = self.add_row("data", "data", f"TensorLoader on {dev.type} vs DataLoader, one epoch "
                           f"of {s.data_images:,} images", "images/s", True)
        self.micro(row, 45.0 if s.full_epochs else 3.0, lambda r: data_row(r, dev, s))

    def _experiment_rows(self) -> None:
        s = self.sizes
        outcome = run_guarded(self.budget, 20.0 if s.full_epochs else 10.0, self._setup_experiments,
                              "run-exp set-up (FLOP counts of every grid run, warm-up)")
        if outcome.status != "ok":
            self.notes.append(f"run-exp set-up {outcome.status}: {outcome.note}")
        if self.exps is not None and len(self.exps.flops) < sum(len(g.runs) for g in GRIDS.values()):
            self.exps = None  # without every run's FLOPs there is no largest or smallest run
        exps = self.exps
        families = {f: (family_run(f, exps, s.family_run) if exps else None) for f in FAMILIES}
        extremes = {g: (grid_extremes(g, exps) if exps else (None, None)) for g in GRIDS}

        # Priority order: each family with all paths vs none, then the grids' timings, then
        # the single-path ablations, then the grids' plain baselines, then torch.compile.
        if exps:
            for f, run in families.items():
                exps.measure(run, "all")
                exps.measure(run, "plain")
            for g, (large, small) in extremes.items():
                exps.measure(large, "all")
            for g, (large, small) in extremes.items():
                exps.measure(small, "all")
            for f, run in families.items():
                for _, _, with_v, without_v in SPEED_ROWS:
                    if "compile" not in (with_v, without_v):
                        exps.measure(run, with_v)
                        exps.measure(run, without_v)
            for g, (large, small) in extremes.items():
                exps.measure(large, "plain")
                exps.measure(small, "plain")
            if s.compile_rows or self.args.with_compile:
                for f, run in families.items():
                    exps.measure(run, "compile")
        self._speed_rows(families)
        self._grid_rows(extremes)

    def _setup_experiments(self) -> None:
        self.exps = Experiments(self.device, self.sizes, self.budget, self.tmp)
        for grid in GRIDS.values():
            for run in grid.runs:
                self.exps.flops_of(run)
        warm = Path(tempfile.mkdtemp(prefix="warm-up-", dir=self.tmp))
        cnn_experiment("warm_up", out_dir=str(warm), seed=0, device=str(self.device),
                       dataset="synthetic", bs_train=32, bs_test=32, batches=2, epochs=1,
                       early_stopping=None, filters_per_layer=[8], layers_per_block=1,
                       pool_every=1, hidden_dims=[16], verbose=False)
        shutil.rmtree(warm, ignore_errors=True)

    def _speed_rows(self, families: Dict[str, Optional[GridRun]]) -> None:
        exps = self.exps
        for family, run in families.items():
            for key, title, with_v, without_v in SPEED_ROWS:
                where = f" ({run.stem})" if run else ""
                row = self.add_row(f"run-exp/{family}/{key}", "run-exp",
                                   f"{family}{where}: {title}", "images/s", True)
                if exps is None:
                    row.note = "run-exp set-up did not complete"
                    continue
                if key == "compile" and not (self.sizes.compile_rows or self.args.with_compile):
                    row.note = ("dry run: torch.compile is not exercised (Inductor's first compile "
                                "takes about a minute even on a tiny CPU model); it runs on CUDA")
                    continue
                self._fill_pair(row, run, with_v, without_v)

    def _fill_pair(self, row: ProofRow, run: GridRun, with_v: str, without_v: str) -> None:
        exps = self.exps
        a, b = exps.done.get((run.stem, with_v)), exps.done.get((run.stem, without_v))
        if a is None or b is None:
            row.status, row.note = exps.missing(run, (with_v, without_v))
            return
        row.set_result(a.images_per_s, b.images_per_s)
        row.seconds = a.end_to_end_s + b.end_to_end_s
        row.details = {"with": dataclasses.asdict(a), "without": dataclasses.asdict(b)}
        row.note = f"on with: {_paths(a)}; on without: {_paths(b)}"

    def _grid_rows(self, extremes) -> None:
        exps = self.exps
        total = {"all": 0.0, "plain": 0.0}
        complete = {"all": True, "plain": True}
        cap = int(TRAIN_SETTINGS["epochs"])
        for name, (large, small) in extremes.items():
            row = self.add_row(f"grid/{name}", "grids",
                               f"{name}: one full-size epoch of its largest run"
                               f"{f' ({large.stem})' if large else ''}, paths on vs off", "s/epoch", False)
            info = dict(grid=name, runs=len(GRIDS[name].runs))
            if exps is None:
                row.note = "run-exp set-up did not complete"
                self.grids.append(info)
                continue
            flops = [exps.flops_of(r) for r in GRIDS[name].runs]
            info.update(largest=large.stem, largest_gflop=exps.flops_of(large) / 1e9,
                        smallest=small.stem, smallest_gflop=exps.flops_of(small) / 1e9)
            for variant in ("all", "plain"):
                t_large, t_small = exps.epoch_s(large, variant), exps.epoch_s(small, variant)
                info[f"largest_epoch_s_{variant}"] = t_large
                info[f"smallest_epoch_s_{variant}"] = t_small
                if t_large is None:
                    info[f"projected_epoch_s_{variant}"] = None
                    complete[variant] = False
                    continue
                small_pt = None if t_small is None else (exps.flops_of(small), t_small)
                projected = project_grid(flops, (exps.flops_of(large), t_large), small_pt)
                info[f"projected_epoch_s_{variant}"] = projected
                info[f"projection_{variant}"] = ("interpolated in FLOPs between the largest and "
                                                 "smallest run" if small_pt else
                                                 "upper bound: every run as slow as the largest")
                info[f"projected_cap_s_{variant}"] = projected * cap
                total[variant] += projected
            t_on, t_off = info["largest_epoch_s_all"], info["largest_epoch_s_plain"]
            if t_on is not None and t_off is not None:
                row.set_result(t_on, t_off)
                a, b = exps.done[(large.stem, "all")], exps.done[(large.stem, "plain")]
                row.seconds = a.end_to_end_s + b.end_to_end_s
                row.note = f"on with: {_paths(a)}; on without: {_paths(b)}"
            else:
                row.status, row.note = exps.missing(large, ("all", "plain"))
            self.grids.append(info)
        self.projection = dict(
            epochs_cap=cap, early_stopping=TRAIN_SETTINGS["early_stopping"],
            one_epoch_every_run_s=total["all"] if complete["all"] else None,
            at_cap_s=total["all"] * cap if complete["all"] else None,
            one_epoch_every_run_plain_s=total["plain"] if complete["plain"] else None,
            at_cap_plain_s=total["plain"] * cap if complete["plain"] else None,
            runs=sum(len(g.runs) for g in GRIDS.values()))

    # -- the report -----------------------------------------------------------------------------

    def report(self) -> dict:
        a = self.args
        exps = self.exps
        return dict(
            schema=1, dry_run=bool(a.dry_run),
            figures=DRY_FIGURES if a.dry_run else GPU_FIGURES,
            started_at=datetime.datetime.fromtimestamp(self.budget.started_at).astimezone()
            .isoformat(timespec="seconds"),
            elapsed_s=round(time.time() - self.budget.started_at, 1), budget_s=self.budget.total_s,
            python=dict(executable=sys.executable, choice=a.python_choice,
                        choice_seconds=a.python_seconds),
            environment=self.env, cuda_tests=self.tests,
            run_exp_settings=None if exps is None else dict(
                exps.settings, synthetic_train=exps.n_train, synthetic_test=exps.n_test,
                full_size_images=CIFAR_TRAIN + CIFAR_TEST),
            rows=[r.as_dict() for r in self.rows.values()], grids=self.grids,
            projection=self.projection, notes=self.notes)


def _paths(m: Measurement) -> str:
    on = [k for k, v in m.fast_paths.items() if v]
    return ", ".join(on) if on else "none"


# ==============================================================================================
# Writing the table
# ==============================================================================================

def _num(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.4g}"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(rep: dict) -> str:
    """The report as a markdown page: environment, tests, timing rows, grid projection."""
    env, tests = rep["environment"], rep["cuda_tests"]
    title = ("GPU proof: DRY RUN (tiny sizes, CPU dry-run figures, NOT GPU figures)" if rep["dry_run"]
             else f"GPU proof on {env.get('gpu') or env.get('device')}")
    lines = [f"# {title}", "",
             f"- Figures: {rep['figures']}.",
             f"- Started {rep['started_at']}, took {rep['elapsed_s']:.0f} s of a "
             f"{rep['budget_s']:.0f} s budget; git commit {env.get('git_commit') or 'unknown'}.",
             f"- Python {env.get('python')}: {rep['python']['executable']} "
             f"({rep['python']['choice'] or 'run directly'}"
             + (f"; ready {rep['python']['choice_seconds']:.1f} s after the start"
                if rep['python']['choice_seconds'] is not None else "")
             + ").",
             f"- torch {env.get('torch')}, torchvision {env.get('torchvision')}, CUDA "
             f"{env.get('cuda')}, cuDNN {env.get('cudnn')}; device {env.get('device')}"
             + (f" ({env['gpu']}, compute capability {env['gpu_capability']}, bf16 "
                f"{'yes' if env['bf16_supported'] else 'no'})" if env.get("gpu") else "")
             + f"; {env.get('cpu_count')} CPU cores, {env.get('torch_threads')} torch threads.",
             "", "## nvidia-smi", "", "```", env.get("nvidia_smi", ""), "```", "",
             "## CUDA-marked tests", ""]
    if tests.get("selected"):
        lines.append(f"{len(tests['selected'])} selected, {tests.get('passed', 0)} passed, "
                     f"{tests.get('failed', 0)} failed, {tests.get('errors', 0)} errors, "
                     f"{tests.get('skipped', 0)} skipped (status {tests.get('status')}"
                     f"{': ' + tests['note'] if tests.get('note') else ''}).")
        lines.append("")
        lines += [f"- `{t['id']}`: {t['outcome']}{' (' + t['message'] + ')' if t['message'] else ''}"
                  for t in tests.get("tests", [])]
    else:
        lines.append(f"{tests.get('note') or 'not run'} (status {tests.get('status')}).")
    lines += ["", "## Timing rows", "",
              "Each row times ours and its plain alternative in this process. ratio = ours / "
              "baseline; speed-up = how many times faster ours is (> 1: faster).", "",
              "| row | ours | baseline | unit | ratio | speed-up | goal | status | note |",
              "|---|---:|---:|---|---:|---:|---|---|---|"]
    for r in rep["rows"]:
        goal = "-" if r["goal"] is None else f"{r['goal']} ({'met' if r['met'] else 'NOT met'})"
        note = r["note"].replace("|", "/")
        lines.append(f"| {r['name']} | {_num(r['ours'])} | {_num(r['baseline'])} | {r['unit']} | "
                     f"{_num(r['ratio'])} | {_num(r['speedup'])} | {goal} | {r['status']} | {note} |")
    proj = rep["projection"]
    lines += ["", "## Part 5 grids: one full-size epoch, and the whole grid projected", "",
              f"A full-size epoch is one CIFAR-10 epoch's work ({CIFAR_TRAIN:,} train + {CIFAR_TEST:,} "
              f"test images), timed on the synthetic stand-in"
              + (" (tiny dry-run workloads, extrapolated)" if rep["dry_run"] else "")
              + ". Each grid's epoch time is projected from its largest and smallest run (linear "
              "in FLOPs), or bounded by its largest alone. The cap is the grids' "
              f"{proj.get('epochs_cap')} epochs; early stopping (patience "
              f"{proj.get('early_stopping')}) ends most runs sooner.", "",
              "| grid | runs | largest run | GFLOP/img | epoch (paths on) | epoch (plain) | "
              "smallest run | epoch (paths on) | every run, 1 epoch | every run, cap | same, plain |",
              "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for g in rep["grids"]:
        lines.append(
            f"| {g['grid']} | {g['runs']} | {g.get('largest', '-')} | {_num(g.get('largest_gflop'))} | "
            f"{_duration(g.get('largest_epoch_s_all'))} | {_duration(g.get('largest_epoch_s_plain'))} | "
            f"{g.get('smallest', '-')} | {_duration(g.get('smallest_epoch_s_all'))} | "
            f"{_duration(g.get('projected_epoch_s_all'))} | {_duration(g.get('projected_cap_s_all'))} | "
            f"{_duration(g.get('projected_cap_s_plain'))} |")
    lines.append(f"| **all {proj.get('runs')} runs** | | | | | | | | "
                 f"{_duration(proj.get('one_epoch_every_run_s'))} | {_duration(proj.get('at_cap_s'))} | "
                 f"{_duration(proj.get('at_cap_plain_s'))} |")
    if rep["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep["notes"]]
    return "\n".join(lines) + "\n"


# ==============================================================================================
# Command line
# ==============================================================================================

def _positive_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


_positive_seconds.__name__ = "number of seconds (>= 0)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_proof",
                                description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on any device (CI); figures are labelled as dry-run figures")
    p.add_argument("--out", default=None, help="folder of gpu_proof.json and gpu_proof.md "
                   "(default: build/gpu-proof, or build/gpu-proof-dry-run with --dry-run)")
    p.add_argument("--budget-s", type=_positive_seconds, default=None,
                   help=f"seconds the whole proof may take, counted from --started-at "
                        f"(default {DEFAULT_BUDGET_S:g}; {DRY_RUN_BUDGET_S:g} with --dry-run)")
    p.add_argument("--started-at", type=float, default=None,
                   help="time.time() when the proof started (the wrapper passes its own)")
    p.add_argument("--python-choice", default=None, help="how the wrapper chose this Python")
    p.add_argument("--python-seconds", type=float, default=None, help="seconds that choice took")
    p.add_argument("--with-compile", action="store_true",
                   help="also run the torch.compile rows in a dry run (slow on a CPU)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the proof; exit status 0 when every step that ran succeeded, 1 otherwise.

    Without CUDA and without ``--dry-run`` nothing is measured: status 2 and a message.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out must be a folder, got {args.out!r}, which is a file")
    started = args.started_at if args.started_at is not None else time.time()
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_proof: torch {torch.__version__} ({sys.executable}) sees no CUDA device; run "
              f"it on a GPU machine, or `make gpu-proof DRY_RUN=1` for the dry run", file=sys.stderr)
        return 2
    sizes = DRY if args.dry_run else FULL
    budget_s = args.budget_s if args.budget_s is not None else (
        DRY_RUN_BUDGET_S if args.dry_run else DEFAULT_BUDGET_S)
    budget = Budget(budget_s, started)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out or REPO / "build" / ("gpu-proof-dry-run" if args.dry_run else "gpu-proof"))
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpu-proof-"))
    proof = Proof(args, sizes, device, budget, tmp)
    try:
        try:
            proof.run()
        except BudgetExceeded:  # only between guarded steps; they catch their own
            proof.notes.append("the time budget ran out between steps")
        except Exception as err:  # noqa: BLE001 - a broken step still leaves a report behind
            traceback.print_exc()
            proof.notes.append(f"the proof stopped early: {type(err).__name__}: {err}")
            proof.failed_early = True
        rep = proof.report()
        atomic_write_text(str(out / "gpu_proof.json"), json.dumps(rep, indent=1, default=str))
        text = markdown(rep)
        atomic_write_text(str(out / "gpu_proof.md"), text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(text)
    print(f"wrote {out / 'gpu_proof.json'} and {out / 'gpu_proof.md'} in {rep['elapsed_s']:.0f} s")
    failed = [r["key"] for r in rep["rows"] if r["status"] == "error"]
    if proof.failed_early:
        failed.append("the proof itself (see the notes)")
    if rep["cuda_tests"].get("status") in ("error", "failed"):
        failed.append("cuda_tests")
    if failed:
        print(f"gpu_proof: errors in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
