"""Plain ``torch.nn`` builds of the course's Part 4 networks, made in the grader's process.

Each builder follows the module tree the course notebook prints, in the order the modules are
created, so after ``torch.manual_seed(42)`` it holds the weights a correct student network
holds; fed the same input after the same seed, in training mode, it gives the output the
student's network must give on this torch build (Dropout2d draws included). Nothing here
imports ``hw2``.
"""
from typing import Callable, Dict, List, NamedTuple, Tuple

import torch
from torch import Tensor, nn


class Head(nn.Module):
    """``features -> flatten -> mlp``: the layout of CNN and ResNet."""

    def __init__(self, features: nn.Module, mlp: nn.Module):
        super().__init__()
        self.features, self.mlp = features, mlp

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, classes)."""
        return self.mlp(self.features(x).flatten(1))

    def __repr__(self):
        return f"Head({self.features!r}, {self.mlp!r})"


class Residual(nn.Module):
    """``relu(main(x) + shortcut(x))``."""

    def __init__(self, main: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.main, self.shortcut = main, shortcut

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, H, W) -> (N, C_out, H, W)."""
        return torch.relu(self.main(x) + self.shortcut(x))


def _fc(dims: List[int], act: Callable[[], nn.Module]) -> nn.Sequential:
    layers = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _convs(c_in: int, channels: List[int], act, conv_kw: dict, pool, pool_every: int):
    layers = []
    for i, c_out in enumerate(channels):
        layers += [nn.Conv2d(c_in, c_out, **conv_kw), act()]
        c_in = c_out
        if (i + 1) % pool_every == 0:
            layers.append(pool())
    return nn.Sequential(*layers)


def _main_path(c_in: int, channels: List[int], kernels: List[int], act, dropout: float,
               batchnorm: bool) -> List[nn.Module]:
    layers = []
    for i, (c_out, k) in enumerate(zip(channels, kernels)):
        layers.append(nn.Conv2d(c_in, c_out, k, padding=k // 2))
        if i < len(channels) - 1:
            if dropout:
                layers.append(nn.Dropout2d(dropout))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(act())
        c_in = c_out
    return layers


def _block(c_in: int, channels: List[int], kernels: List[int], act, dropout, batchnorm):
    main = nn.Sequential(*_main_path(c_in, channels, kernels, act, dropout, batchnorm))
    shortcut = nn.Identity() if c_in == channels[-1] else nn.Conv2d(c_in, channels[-1], 1, bias=False)
    return Residual(main, shortcut)


def _bottleneck(c: int, inner: List[int], kernels: List[int], act, dropout, batchnorm):
    channels = [inner[0]] + list(inner) + [c]
    layers = _main_path(c, channels, [1] + list(kernels) + [1], act, dropout, batchnorm)
    return Residual(nn.Sequential(*layers), nn.Identity())


def cnn_00():
    relu = nn.ReLU
    feats = _convs(3, [32] * 4, relu, dict(kernel_size=3, stride=1, padding=1),
                   lambda: nn.MaxPool2d(2), 2)
    return Head(feats, _fc([20000, 100, 100, 10], relu))


def cnn_01():
    act = lambda: nn.LeakyReLU(0.05)  # noqa: E731
    feats = _convs(3, [32] * 4, act, dict(kernel_size=5, stride=2, padding=3),
                   lambda: nn.AvgPool2d(3), 2)
    return Head(feats, _fc([32, 100, 100, 10], act))


def cnn_02():
    act = lambda: nn.LeakyReLU(0.1)  # noqa: E731
    feats = _convs(3, [16] * 5, act, dict(kernel_size=2, stride=2, padding=2),
                   lambda: nn.MaxPool2d(2), 3)
    return Head(feats, _fc([400, 100, 3], act))


def resblock():
    return _block(3, [6, 4, 6, 4], [3, 5, 3, 5], nn.ReLU, 0.2, True)


def resblock_bn():
    return _bottleneck(256, [64, 32, 64], [3, 5, 3], lambda: nn.LeakyReLU(0.01), 0.1, False)


def resnet_00():
    act = lambda: nn.LeakyReLU(0.01)  # noqa: E731
    feats = nn.Sequential(_block(3, [32, 64, 32, 64], [3] * 4, act, 0.1, True), nn.AvgPool2d(2),
                          _block(64, [32, 64], [3] * 2, act, 0.1, True))
    return Head(feats, _fc([160000, 100, 100, 10], act))


def resnet_01():
    act = nn.Tanh
    layers = [_block(3, [64, 16, 64], [3] * 3, act, 0.1, True), nn.MaxPool2d(2)]
    for _ in range(3):
        layers += [_bottleneck(64, [16], [3], act, 0.1, True), nn.MaxPool2d(2)]
    return Head(nn.Sequential(*layers), _fc([2304, 64, 5], act))


class Network(NamedTuple):
    """One course network: the hw2 class and arguments the student's code is built with, the
    input shape, the plain builder, and the fixture of ``tests/assets`` that records it."""

    cls: str
    kw: dict
    input: Tuple[int, ...]
    build: Callable[[], nn.Module]
    fixture: str


_CNN_KW = [
    dict(in_size=(3, 100, 100), out_classes=10, channels=[32] * 4, pool_every=2,
         hidden_dims=[100] * 2, conv_params=dict(kernel_size=3, stride=1, padding=1),
         activation_type="relu", activation_params=dict(), pooling_type="max",
         pooling_params=dict(kernel_size=2)),
    dict(in_size=(3, 100, 100), out_classes=10, channels=[32] * 4, pool_every=2,
         hidden_dims=[100] * 2, conv_params=dict(kernel_size=5, stride=2, padding=3),
         activation_type="lrelu", activation_params=dict(negative_slope=0.05),
         pooling_type="avg", pooling_params=dict(kernel_size=3)),
    dict(in_size=(3, 100, 100), out_classes=3, channels=[16] * 5, pool_every=3,
         hidden_dims=[100], conv_params=dict(kernel_size=2, stride=2, padding=2),
         activation_type="lrelu", activation_params=dict(negative_slope=0.1),
         pooling_type="max", pooling_params=dict(kernel_size=2)),
]

NETWORKS: Dict[str, Network] = {
    "cnn_00": Network("CNN", _CNN_KW[0], (1, 3, 100, 100), cnn_00, "expected_conv_out_00.pt"),
    "cnn_01": Network("CNN", _CNN_KW[1], (1, 3, 100, 100), cnn_01, "expected_conv_out_01.pt"),
    "cnn_02": Network("CNN", _CNN_KW[2], (1, 3, 100, 100), cnn_02, "expected_conv_out_02.pt"),
    "resblock": Network("ResidualBlock", dict(in_channels=3, channels=[6, 4] * 2,
                                              kernel_sizes=[3, 5] * 2, batchnorm=True,
                                              dropout=0.2),
                        (1, 3, 32, 32), resblock, "expected_resblock_out.pt"),
    "resblock_bn": Network("ResidualBottleneckBlock",
                           dict(in_out_channels=256, inner_channels=[64, 32, 64],
                                inner_kernel_sizes=[3, 5, 3], batchnorm=False, dropout=0.1,
                                activation_type="lrelu"),
                           (1, 256, 32, 32), resblock_bn, "expected_resblock_bn_out.pt"),
    "resnet_00": Network("ResNet", dict(in_size=(3, 100, 100), out_classes=10,
                                        channels=[32, 64] * 3, pool_every=4,
                                        hidden_dims=[100] * 2, activation_type="lrelu",
                                        activation_params=dict(negative_slope=0.01),
                                        pooling_type="avg", pooling_params=dict(kernel_size=2),
                                        batchnorm=True, dropout=0.1, bottleneck=False),
                         (1, 3, 100, 100), resnet_00, "expected_resnet_out_00.pt"),
    "resnet_01": Network("ResNet", dict(in_size=(3, 100, 100), out_classes=5,
                                        channels=[64, 16, 64] * 4, pool_every=3,
                                        hidden_dims=[64], activation_type="tanh",
                                        pooling_type="max", pooling_params=dict(kernel_size=2),
                                        batchnorm=True, dropout=0.1, bottleneck=True),
                         (1, 3, 100, 100), resnet_01, "expected_resnet_out_01.pt"),
}
SEED = 42


@torch.no_grad()
def reference_output(name: str) -> Tuple[Tensor, int]:
    """The plain network's training-mode output on ``ones(input)`` after ``manual_seed(42)``,
    and its parameter count."""
    net_info = NETWORKS[name]
    torch.manual_seed(SEED)
    net = net_info.build()
    net.train(True)
    torch.manual_seed(SEED)
    out = net(torch.ones(*net_info.input))
    return out, sum(p.numel() for p in net.parameters())
