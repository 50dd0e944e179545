"""Write the reference tensors in ``tests/assets/`` from an independent construction.

This script never imports ``hw2``. Every expected value is computed here with plain torch:
the optimizer step by hand, and each Part 4 network layer by layer from ``torch.nn``,
following the module trees the course notebook prints. The tests compare the package against
these values, and they import the builders below to rebuild the references at run time.

Protocol for the network fixtures (as in the notebook): ``torch.manual_seed(42)``, build the
network, ``torch.manual_seed(42)``, feed ``torch.ones(1, C, H, W)``.

* ``expected_conv_out_0{0,1,2}.pt``: the plain CNNs, which hold no random layers.
* ``expected_resblock_out.pt``, ``expected_resblock_bn_out.pt``,
  ``expected_resnet_out_0{0,1}.pt``: these networks contain ``Dropout2d``, and in training
  mode its mask depends on the CPU and the torch build (the Bernoulli sampler differs), so a
  training-mode tensor saved here need not be reproducible elsewhere. These files therefore
  hold the output in **eval mode** (dropout off, batch norm on its running statistics), which
  is the same on every platform. Training-mode behaviour is checked by the tests against a
  reference rebuilt with :func:`build` on the machine running them.

Run it from the repository root::

    python tests/make_fixtures.py
"""
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Tuple

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
    """A reference network: its builder, the input it is fed, and whether the saved
    fixture is taken in eval mode (networks with Dropout2d, see the module docstring)."""

    builder: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    eval_fixture: bool


REFERENCES: Dict[str, Reference] = {
    "conv_out_00": Reference(cnn_00, (1, 3, 100, 100), False),
    "conv_out_01": Reference(cnn_01, (1, 3, 100, 100), False),
    "conv_out_02": Reference(cnn_02, (1, 3, 100, 100), False),
    "resblock_out": Reference(resblock, (1, 3, 32, 32), True),
    "resblock_bn_out": Reference(resblock_bn, (1, 256, 32, 32), True),
    "resnet_out_00": Reference(resnet_00, (1, 3, 100, 100), True),
    "resnet_out_01": Reference(resnet_01, (1, 3, 100, 100), True),
}


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
    :param training: Run in training mode (dropout active) or eval mode.
    :return: The output tensor.
    """
    net.train(training)
    torch.manual_seed(SEED)
    return net(torch.ones(REFERENCES[name].input_shape))


def expected_output(name: str) -> Tensor:
    """:return: The tensor saved as ``expected_{name}.pt``."""
    reference = REFERENCES[name]
    return run(build(name), name, training=not reference.eval_fixture)


def main() -> None:
    """Compute every fixture and save it under ``tests/assets/``."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    fixtures = {"expected_vsgd.pt": expected_vsgd()}
    for name in REFERENCES:
        fixtures[f"expected_{name}.pt"] = expected_output(name)
    for filename, tensor in fixtures.items():
        torch.save(tensor, ASSETS / filename)
        print(f"wrote {ASSETS / filename}  shape={tuple(tensor.shape)}")


if __name__ == "__main__":
    main()
