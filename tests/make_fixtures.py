"""Write the reference tensors in ``tests/assets/`` from an independent construction.

This script never imports ``hw2``. Every expected value is computed here with plain torch:
the optimizer step by hand, and each Part 4 network layer by layer from ``torch.nn``,
following the module trees the course notebook prints. The tests compare the package against
these files, and they import the builders below to rebuild the references at run time.

Protocol for the network fixtures (the notebook's): ``torch.manual_seed(42)``, build the
network, ``torch.manual_seed(42)``, feed ``torch.ones(1, C, H, W)``, in **training mode**,
the mode a freshly built module is in and the one the course's cells use. For the residual
blocks and ResNets that means Dropout2d is active (its channel masks come from the seeded
generator) and BatchNorm normalises with the statistics of the batch.

* ``expected_conv_out_0{0,1,2}.pt``: the plain CNNs (no random layers: one mode only).
* ``expected_resblock_out.pt``, ``expected_resblock_bn_out.pt``,
  ``expected_resnet_out_0{0,1}.pt``: training mode, as the notebook checks them.
* ``expected_*_eval.pt`` beside those four: the same networks in eval mode (dropout off,
  BatchNorm on its initial running statistics).
* ``expected_vsgd.pt``: one VanillaSGD step.

Dropout2d's masks depend on the torch release (the Bernoulli sampler has changed between
releases), so the training-mode files hold for the release they were made with. That release,
the seed, every shape and mode, and a SHA-256 of every file are written to
``tests/assets/MANIFEST.json``; the tests read it to tell "another torch" from "wrong code".

Run it from the repository root::

    python tests/make_fixtures.py           # write every file and the manifest
    python tests/make_fixtures.py --check   # compare the saved files with a fresh build
"""
import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

ASSETS = Path(__file__).resolve().parent / "assets"
SEED = 42


def expected_vsgd() -> Tensor:
    """One VanillaSGD step (learning rate 0.5, L2 regularisation 0.1), done by hand.

    :return: the updated parameters, shape (500, 10).
    """
    torch.manual_seed(SEED)
    p = torch.randn(500, 10)
    dp = torch.randn(*p.shape) * 2
    learn_rate, reg = 0.5, 0.1
    return p - learn_rate * (dp + reg * p)


# -- reference networks ---------------------------------------------------------------------

class Classifier(nn.Module):
    """``features -> flatten -> head``, the layout of the notebook's CNN and ResNet."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: Tensor) -> Tensor:
        """:param x: (N, C, H, W) -> (N, classes)."""
        return self.head(self.features(x).flatten(start_dim=1))


class Residual(nn.Module):
    """``relu(main(x) + shortcut(x))``."""

    def __init__(self, main: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x: Tensor) -> Tensor:
        """:param x: (N, C_in, H, W) -> (N, C_out, H, W)."""
        return torch.relu(self.main(x) + self.shortcut(x))


def cnn_00() -> nn.Module:
    """CNN test 0: 4 convs 3x3/1/1 with ReLU, max-pool 2 after every 2; FC 100-100-10."""
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=1, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, stride=1, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=1, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
    )
    head = nn.Sequential(
        nn.Linear(20000, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10),
    )
    return Classifier(features, head)


def cnn_01() -> nn.Module:
    """CNN test 1: 4 convs 5x5/2/3 with LeakyReLU(0.05), avg-pool 3 after every 2."""
    features = nn.Sequential(
        nn.Conv2d(3, 32, 5, stride=2, padding=3), nn.LeakyReLU(0.05),
        nn.Conv2d(32, 32, 5, stride=2, padding=3), nn.LeakyReLU(0.05),
        nn.AvgPool2d(3),
        nn.Conv2d(32, 32, 5, stride=2, padding=3), nn.LeakyReLU(0.05),
        nn.Conv2d(32, 32, 5, stride=2, padding=3), nn.LeakyReLU(0.05),
        nn.AvgPool2d(3),
    )
    head = nn.Sequential(
        nn.Linear(32, 100), nn.LeakyReLU(0.05), nn.Linear(100, 100), nn.LeakyReLU(0.05),
        nn.Linear(100, 10),
    )
    return Classifier(features, head)


def cnn_02() -> nn.Module:
    """CNN test 2: 5 convs 2x2/2/2 with LeakyReLU(0.1), one max-pool 2 after the third."""
    features = nn.Sequential(
        nn.Conv2d(3, 16, 2, stride=2, padding=2), nn.LeakyReLU(0.1),
        nn.Conv2d(16, 16, 2, stride=2, padding=2), nn.LeakyReLU(0.1),
        nn.Conv2d(16, 16, 2, stride=2, padding=2), nn.LeakyReLU(0.1),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 2, stride=2, padding=2), nn.LeakyReLU(0.1),
        nn.Conv2d(16, 16, 2, stride=2, padding=2), nn.LeakyReLU(0.1),
    )
    head = nn.Sequential(nn.Linear(400, 100), nn.LeakyReLU(0.1), nn.Linear(100, 3))
    return Classifier(features, head)


def resblock() -> nn.Module:
    """Residual block 3 -> [6, 4, 6, 4] with kernels [3, 5, 3, 5], BN and Dropout2d(0.2)."""
    main = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.Dropout2d(0.2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 4, 5, padding=2), nn.Dropout2d(0.2), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1), nn.Dropout2d(0.2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 4, 5, padding=2),
    )
    return Residual(main, nn.Conv2d(3, 4, 1, bias=False))


def resblock_bn() -> nn.Module:
    """Bottleneck block on 256 channels: 1x1 to 64, 3x3 64, 5x5 32, 3x3 64, 1x1 to 256;
    Dropout2d(0.1) and LeakyReLU(0.01) after every conv but the last; no batch norm."""
    main = nn.Sequential(
        nn.Conv2d(256, 64, 1), nn.Dropout2d(0.1), nn.LeakyReLU(0.01),
        nn.Conv2d(64, 64, 3, padding=1), nn.Dropout2d(0.1), nn.LeakyReLU(0.01),
        nn.Conv2d(64, 32, 5, padding=2), nn.Dropout2d(0.1), nn.LeakyReLU(0.01),
        nn.Conv2d(32, 64, 3, padding=1), nn.Dropout2d(0.1), nn.LeakyReLU(0.01),
        nn.Conv2d(64, 256, 1),
    )
    return Residual(main, nn.Identity())


def _conv_drop_bn_act(c_in: int, c_out: int, act: Callable[[], nn.Module]):
    """:return: ``[Conv3x3, Dropout2d(0.1), BatchNorm2d, act]``, the ResNet tests' unit."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.Dropout2d(0.1), nn.BatchNorm2d(c_out), act()]


def resnet_00() -> nn.Module:
    """ResNet test 0: block 3 -> [32, 64, 32, 64] (1x1 shortcut), avg-pool 2, block
    64 -> [32, 64] (identity); BN, Dropout2d(0.1), LeakyReLU(0.01); FC 100-100-10."""
    lrelu = lambda: nn.LeakyReLU(0.01)  # noqa: E731
    block0 = Residual(
        nn.Sequential(
            *_conv_drop_bn_act(3, 32, lrelu), *_conv_drop_bn_act(32, 64, lrelu),
            *_conv_drop_bn_act(64, 32, lrelu), nn.Conv2d(32, 64, 3, padding=1),
        ),
        nn.Conv2d(3, 64, 1, bias=False),
    )
    block1 = Residual(
        nn.Sequential(*_conv_drop_bn_act(64, 32, lrelu), nn.Conv2d(32, 64, 3, padding=1)),
        nn.Identity(),
    )
    features = nn.Sequential(block0, nn.AvgPool2d(2), block1)
    head = nn.Sequential(
        nn.Linear(160000, 100), lrelu(), nn.Linear(100, 100), lrelu(), nn.Linear(100, 10),
    )
    return Classifier(features, head)


def resnet_01() -> nn.Module:
    """ResNet test 1: block 3 -> [64, 16, 64] (1x1 shortcut) then three bottleneck blocks
    64 -> 16 -> 16 -> 64, a max-pool 2 after each block; BN, Dropout2d(0.1), Tanh; FC 64-5."""
    block0 = Residual(
        nn.Sequential(
            *_conv_drop_bn_act(3, 64, nn.Tanh), *_conv_drop_bn_act(64, 16, nn.Tanh),
            nn.Conv2d(16, 64, 3, padding=1),
        ),
        nn.Conv2d(3, 64, 1, bias=False),
    )
    layers = [block0, nn.MaxPool2d(2)]
    for _ in range(3):
        bottleneck = Residual(
            nn.Sequential(
                nn.Conv2d(64, 16, 1), nn.Dropout2d(0.1), nn.BatchNorm2d(16), nn.Tanh(),
                nn.Conv2d(16, 16, 3, padding=1), nn.Dropout2d(0.1), nn.BatchNorm2d(16), nn.Tanh(),
                nn.Conv2d(16, 64, 1),
            ),
            nn.Identity(),
        )
        layers += [bottleneck, nn.MaxPool2d(2)]
    head = nn.Sequential(nn.Linear(2304, 64), nn.Tanh(), nn.Linear(64, 5))
    return Classifier(nn.Sequential(*layers), head)


class Reference(NamedTuple):
    """A reference network: its builder, the input it is fed, and whether it holds layers
    whose training-mode output depends on the random generator (Dropout2d)."""

    builder: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    random_in_training: bool


REFERENCES: Dict[str, Reference] = {
    "conv_out_00": Reference(cnn_00, (1, 3, 100, 100), False),
    "conv_out_01": Reference(cnn_01, (1, 3, 100, 100), False),
    "conv_out_02": Reference(cnn_02, (1, 3, 100, 100), False),
    "resblock_out": Reference(resblock, (1, 3, 32, 32), True),
    "resblock_bn_out": Reference(resblock_bn, (1, 256, 32, 32), True),
    "resnet_out_00": Reference(resnet_00, (1, 3, 100, 100), True),
    "resnet_out_01": Reference(resnet_01, (1, 3, 100, 100), True),
}

MANIFEST = "MANIFEST.json"


class Fixture(NamedTuple):
    """One saved file: which reference, in which mode (``'train'``, ``'eval'``, or ``None``
    for the optimizer step)."""

    filename: str
    reference: Optional[str]
    mode: Optional[str]


def fixtures() -> List[Fixture]:
    """Every file this script writes, in a fixed order."""
    found = [Fixture("expected_vsgd.pt", None, None)]
    for name, reference in REFERENCES.items():
        found.append(Fixture(f"expected_{name}.pt", name, "train"))
        if reference.random_in_training:
            found.append(Fixture(f"expected_{name}_eval.pt", name, "eval"))
    return found


def build(name: str) -> nn.Module:
    """Build reference ``name`` right after ``torch.manual_seed(SEED)``, as the notebook does.

    :param name: A key of :data:`REFERENCES`.
    :return: The network, in training mode.
    """
    torch.manual_seed(SEED)
    return REFERENCES[name].builder()


@torch.no_grad()
def run(net: nn.Module, name: str, training: bool) -> Tensor:
    """Feed ``net`` the all-ones input of reference ``name`` right after seeding.

    :param net: A network built for reference ``name`` (ours or the package's).
    :param name: A key of :data:`REFERENCES`.
    :param training: Run in training mode (dropout active, batch statistics) or eval mode.
    :return: The output tensor.
    """
    net.train(training)
    torch.manual_seed(SEED)
    return net(torch.ones(REFERENCES[name].input_shape))


def compute(fixture: Fixture) -> Tensor:
    """:return: The tensor that belongs in ``fixture.filename``, computed now."""
    if fixture.reference is None:
        return expected_vsgd()
    return run(build(fixture.reference), fixture.reference, training=fixture.mode == "train")


def torch_release(version: Optional[str] = None) -> str:
    """The release part of a torch version string: ``'2.14.1+cu130'`` -> ``'2.14.1'``."""
    return (version or torch.__version__).split("+")[0]


def sha256(path: Path) -> str:
    """:return: The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(assets: Path = ASSETS) -> dict:
    """:return: The parsed ``MANIFEST.json`` of ``assets``."""
    with open(assets / MANIFEST, encoding="utf-8") as handle:
        return json.load(handle)


def manifest_entry(fixture: Fixture, tensor: Tensor, path: Path) -> dict:
    """The manifest's record of one written file."""
    entry = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).replace("torch.", ""),
             "mode": fixture.mode, "seed": SEED, "sha256": sha256(path)}
    if fixture.reference is None:
        entry["made_by"] = ("manual_seed(42); p = randn(500, 10); dp = 2 * randn(500, 10); "
                            "p - 0.5 * (dp + 0.1 * p)")
    else:
        entry["network"] = REFERENCES[fixture.reference].builder.__name__
        entry["input"] = f"ones{tuple(REFERENCES[fixture.reference].input_shape)}"
        entry["random_in_training"] = REFERENCES[fixture.reference].random_in_training
    return entry


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _compact_lists(text: str) -> str:
    """Put JSON lists of numbers (the shapes) on one line."""
    return re.sub(r"\[\s*([-\d.,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)


def write_all(assets: Path = ASSETS) -> dict:
    """Compute every fixture, save it under ``assets`` and write the manifest.

    :return: The manifest written.
    """
    assets.mkdir(parents=True, exist_ok=True)
    files = {}
    for fixture in fixtures():
        tensor = compute(fixture).contiguous()
        path = assets / fixture.filename
        _atomic_write(path, lambda tmp: torch.save(tensor, tmp))
        files[fixture.filename] = manifest_entry(fixture, tensor, path)
        print(f"wrote {path}  shape={tuple(tensor.shape)}  mode={fixture.mode}")
    manifest = {
        "generator": "tests/make_fixtures.py",
        "torch": torch.__version__,
        "torch_release": torch_release(),
        "seed": SEED,
        "protocol": ("manual_seed(seed); build the network; manual_seed(seed); "
                     "net(torch.ones(input)) under no_grad, on the CPU"),
        "files": files,
    }
    text = _compact_lists(json.dumps(manifest, indent=2)) + "\n"
    _atomic_write(assets / MANIFEST, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"wrote {assets / MANIFEST}")
    return manifest


def check(assets: Path = ASSETS) -> int:
    """Compare every saved file with a fresh computation; print the max difference of each.

    :return: 0 when every file agrees to 1e-6, else 1.
    """
    bad = 0
    for fixture in fixtures():
        saved = torch.load(assets / fixture.filename, weights_only=True)
        diff = (compute(fixture) - saved).abs().max().item()
        bad += diff > 1e-6
        print(f"{fixture.filename:32s} mode={str(fixture.mode):5s} max|fresh - saved| = {diff:.3g}")
    return 1 if bad else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write the fixtures, or ``--check`` them."""
    parser = argparse.ArgumentParser(description="Write or check the tests/assets fixtures.")
    parser.add_argument("--check", action="store_true",
                        help="compare the saved files with a fresh build instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    write_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
