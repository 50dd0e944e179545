"""Convolutional classifiers for Parts 4 and 5: a plain CNN, residual blocks, a ResNet and
our own architecture (:class:`YourCNN`). Each maps images ``(N, C, H, W)`` to raw class
scores ``(N, out_classes)`` as ``feature_extractor -> flatten -> mlp`` (an :class:`hw2.mlp.MLP`).

Module trees (``print(net)``) and the order in which submodules are created follow the course
notebooks, so a network built right after ``torch.manual_seed(s)`` holds the course's initial
weights; the size of the flattened features comes from a dry forward pass that consumes no
randomness. Arguments are checked once, in the constructors; a keyword a torch layer does not
take, or a batch torch cannot convolve, is torch's own error (see :mod:`hw2.validation`).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from torch import Tensor

from hw2.mlp import MLP
from hw2.validation import (check_bool, check_choice, check_int, check_int_list, check_interval,
                            check_kwargs)

__all__ = ["ACTIVATIONS", "POOLINGS", "DEFAULT_CONV_PARAMS", "DEFAULT_POOLING_PARAMS",
           "make_activation", "make_pooling", "CNN", "ResidualBlock", "ResidualBottleneckBlock",
           "ResNet", "PreActivationBlock", "YourCNN"]

#: Activation names accepted by ``activation_type``.
ACTIVATIONS: Dict[str, Type[nn.Module]] = {"relu": nn.ReLU, "lrelu": nn.LeakyReLU, "tanh": nn.Tanh}
#: Pooling names accepted by ``pooling_type``.
POOLINGS: Dict[str, Type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
#: Convolution used when ``conv_params`` is ``None`` or empty: 3x3, stride 1, size-preserving.
DEFAULT_CONV_PARAMS = dict(kernel_size=3, stride=1, padding=1)
#: Pooling used when ``pooling_params`` is ``None`` or empty: 2x2 windows, stride 2.
DEFAULT_POOLING_PARAMS = dict(kernel_size=2)
# Options torch would take from any truthy value ("no" meaning True): they must be booleans.
_FLAGS = ("bias", "inplace", "ceil_mode", "count_include_pad", "return_indices")
# Extra nn.Conv2d options a residual block forwards to its main-path convolutions; anything
# that changes the output size (stride, dilation, padding) would break the residual sum.
_RESIDUAL_CONV_OPTIONS = ("bias", "padding_mode")


def make_activation(activation_type: str, activation_params: Optional[dict] = None) -> nn.Module:
    """:return: A new ``ACTIVATIONS[activation_type](**activation_params)``."""
    name = check_choice("activation_type", activation_type, ACTIVATIONS)
    return ACTIVATIONS[name](**check_kwargs("activation_params", activation_params, _FLAGS))


def make_pooling(pooling_type: str, pooling_params: Optional[dict] = None) -> nn.Module:
    """:return: A new pooling layer (params ``None`` or ``{}``: :data:`DEFAULT_POOLING_PARAMS`)."""
    name = check_choice("pooling_type", pooling_type, POOLINGS)
    params = check_kwargs("pooling_params", pooling_params, _FLAGS) or DEFAULT_POOLING_PARAMS
    return POOLINGS[name](**params)


class CNN(nn.Module):
    """A plain convolutional classifier::

        [(CONV -> ACT) * P -> POOL] * (N // P) -> (CONV -> ACT) * (N % P)
            -> flatten -> (FC -> ACT) * M -> FC

    ``N = len(channels)``, ``P = pool_every`` and ``M = len(hidden_dims)``. The fully-connected
    head is an :class:`hw2.mlp.MLP` using the same activation as the convolutions and ending in
    ``Identity`` (raw scores).
    """

    def __init__(self, in_size: Sequence[int], out_classes: int, channels: Sequence[int],
                 pool_every: int, hidden_dims: Sequence[int], conv_params: Optional[dict] = None,
                 activation_type: str = "relu", activation_params: Optional[dict] = None,
                 pooling_type: str = "max", pooling_params: Optional[dict] = None):
        """
        :param in_size: Size of one input image, ``(C_in, H, W)``.
        :param out_classes: Number of output scores ``C``.
        :param channels: Output channels of every convolution, in order (at least one).
        :param pool_every: Number of convolutions between consecutive pooling layers.
        :param hidden_dims: Widths of the hidden fully-connected layers (may be empty).
        :param conv_params: Keyword arguments of every ``nn.Conv2d`` (``kernel_size``,
            ``stride``, ``padding``, ...); ``None`` or empty means :data:`DEFAULT_CONV_PARAMS`.
        :param activation_type: One of :data:`ACTIVATIONS`.
        :param activation_params: Keyword arguments of the activation.
        :param pooling_type: One of :data:`POOLINGS`.
        :param pooling_params: Keyword arguments of the pooling layers; ``None`` or empty
            means :data:`DEFAULT_POOLING_PARAMS`.
        :raises ValueError: For an invalid configuration, including one whose feature maps
            shrink to nothing before reaching the classifier.
        :raises TypeError: For an argument of the wrong type, or a keyword argument the torch
            layer does not take (torch's own message).
        """
        super().__init__()
        self._configure(in_size, out_classes, channels, pool_every, hidden_dims, conv_params,
                        activation_type, activation_params, pooling_type, pooling_params)
        self.feature_extractor = self._make_feature_extractor()
        self.mlp = self._make_mlp()

    def _configure(self, in_size, out_classes, channels, pool_every, hidden_dims, conv_params,
                   activation_type, activation_params, pooling_type, pooling_params) -> None:
        """Check the arguments of :meth:`__init__` and store them (nothing is built)."""
        self.in_size = tuple(check_int_list("in_size", in_size, lengths=(3,),
                                            expected="(channels, height, width)"))
        self.out_classes = check_int("out_classes", out_classes, 1)
        self.channels = check_int_list("channels", channels, allow_empty=False)
        self.pool_every = check_int("pool_every", pool_every, 1)
        self.hidden_dims = check_int_list("hidden_dims", hidden_dims)
        self.conv_params = (check_kwargs("conv_params", conv_params, _FLAGS)
                            or dict(DEFAULT_CONV_PARAMS))
        self.activation_type = check_choice("activation_type", activation_type, ACTIVATIONS)
        self.activation_params = check_kwargs("activation_params", activation_params, _FLAGS)
        self.pooling_type = check_choice("pooling_type", pooling_type, POOLINGS)
        self.pooling_params = (check_kwargs("pooling_params", pooling_params, _FLAGS)
                               or dict(DEFAULT_POOLING_PARAMS))

    def _make_activation(self) -> nn.Module:
        """:return: A new activation module of this network's type."""
        return ACTIVATIONS[self.activation_type](**self.activation_params)

    def _make_pooling(self) -> nn.Module:
        """:return: A new pooling module of this network's type."""
        return POOLINGS[self.pooling_type](**self.pooling_params)

    def _make_feature_extractor(self) -> nn.Sequential:
        """
        :return: ``Conv -> Act`` for every entry of ``channels``, with a pooling layer after
            every ``pool_every`` convolutions.
        """
        # ====== YOUR CODE: ======
        layers: List[nn.Module] = []
        in_channels = self.in_size[0]
        for i, out_channels in enumerate(self.channels):
            layers.append(nn.Conv2d(in_channels, out_channels, **self.conv_params))
            layers.append(self._make_activation())
            if (i + 1) % self.pool_every == 0:
                layers.append(self._make_pooling())
            in_channels = out_channels
        return nn.Sequential(*layers)
        # ====== END YOUR CODE ======

    def _n_features(self) -> int:
        """
        :return: ``C_out * H_out * W_out``, the features of one image: a dry forward pass of a
            zero image in eval mode (batch norm keeps its statistics), RNG state restored.
        :raises ValueError: If the feature maps shrink to nothing on the way.
        """
        rng_state, was_training = torch.get_rng_state(), self.feature_extractor.training
        self.feature_extractor.eval()
        try:
            # ====== YOUR CODE: ======
            with torch.no_grad():
                features = self.feature_extractor(torch.zeros(1, *self.in_size))
            return features.numel()
            # ====== END YOUR CODE ======
        except NotImplementedError:  # a blank of the student hand-out, not a configuration
            raise
        except RuntimeError as err:  # torch cannot convolve or pool maps that small
            raise ValueError(
                f"{type(self).__name__} with in_size={self.in_size} (channels={self.channels}, "
                f"pool_every={self.pool_every}, conv_params={self.conv_params}, pooling_params="
                f"{self.pooling_params}) shrinks the feature maps to nothing; use fewer pooling "
                f"layers (a larger pool_every), smaller strides or more padding ({err})") from None
        finally:
            self.feature_extractor.train(was_training)
            torch.set_rng_state(rng_state)

    def _make_mlp(self) -> MLP:
        """
        :return: The classifier head: one hidden layer per ``hidden_dims`` entry with this
            network's activation, then a linear output layer.
        """
        # ====== YOUR CODE: ======
        nonlins = [self._make_activation() for _ in self.hidden_dims] + ["none"]
        dims = [*self.hidden_dims, self.out_classes]
        return MLP(in_dim=self._n_features(), dims=dims, nonlins=nonlins)
        # ====== END YOUR CODE ======

    def forward(self, x: Tensor) -> Tensor:
        """
        :param x: A batch of images, ``(N, C_in, H, W)`` with ``(C_in, H, W) == in_size``.
        :return: Raw class scores, ``(N, out_classes)``.
        :raises ValueError: If ``x`` is not a batch of images of the configured size.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_size:
            raise ValueError(f"{type(self).__name__} expects input of shape (N, "
                             f"{', '.join(map(str, self.in_size))}), got {tuple(x.shape)}")
        # ====== YOUR CODE: ======
        features = self.feature_extractor(x)
        return self.mlp(features.reshape(features.shape[0], -1))
        # ====== END YOUR CODE ======


class ResidualBlock(nn.Module):
    """A residual block: ``out = ReLU(main_path(x) + shortcut_path(x))``.

    The main path is ``Conv -> [Dropout2d] -> [BatchNorm2d] -> Act`` for every convolution but
    the last, which stands alone. Every convolution uses padding ``k // 2`` (odd kernels keep
    the spatial size). The shortcut is the identity when the channel counts of input and
    output agree and a 1x1 convolution without bias otherwise.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_sizes: Sequence[int],
                 batchnorm: bool = False, dropout: float = 0.0, activation_type: str = "relu",
                 activation_params: Optional[dict] = None, **kwargs):
        """
        :param in_channels: Number of input channels ``C_in``.
        :param channels: Output channels of each main-path convolution; ``channels[-1]`` is
            the block's output channel count ``C_out``.
        :param kernel_sizes: Odd kernel size of each main-path convolution.
        :param batchnorm: Add ``BatchNorm2d`` after every convolution but the last.
        :param dropout: Probability of ``Dropout2d`` after every convolution but the last
            (0 adds none).
        :param activation_type: One of :data:`ACTIVATIONS`.
        :param activation_params: Keyword arguments of the activation.
        :param kwargs: ``bias`` and/or ``padding_mode``, forwarded to the main-path
            convolutions.
        :raises ValueError: For an invalid configuration.
        :raises TypeError: For an argument of the wrong type or another keyword argument.
        """
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        channels = check_int_list("channels", channels, allow_empty=False)
        kernel_sizes = _check_kernel_sizes(kernel_sizes, len(channels))
        batchnorm = check_bool("batchnorm", batchnorm)
        dropout = check_interval("dropout", dropout, 0, 1, high_open=True)
        check_choice("activation_type", activation_type, ACTIVATIONS)
        activation_params = check_kwargs("activation_params", activation_params, _FLAGS)
        conv_kwargs = check_kwargs(f"{type(self).__name__}: kwargs", kwargs, _FLAGS,
                                   allowed=_RESIDUAL_CONV_OPTIONS)
        self.in_channels, self.out_channels = in_channels, channels[-1]

        # ====== YOUR CODE: ======
        layers: List[nn.Module] = []
        prev = in_channels
        for i, (out, k) in enumerate(zip(channels, kernel_sizes)):
            layers.append(nn.Conv2d(prev, out, kernel_size=k, padding=k // 2, **conv_kwargs))
            if i < len(channels) - 1:
                if dropout > 0:
                    layers.append(nn.Dropout2d(dropout))
                if batchnorm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(ACTIVATIONS[activation_type](**activation_params))
            prev = out
        self.main_path = nn.Sequential(*layers)
        if in_channels == self.out_channels:
            shortcut: nn.Module = nn.Identity()
        else:
            shortcut = nn.Conv2d(in_channels, self.out_channels, kernel_size=1, bias=False)
        self.shortcut_path = nn.Sequential(shortcut)
        # ====== END YOUR CODE ======

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, C_in, H, W) -> (N, C_out, H, W)``."""
        # ====== YOUR CODE: ======
        return torch.relu(self.main_path(x) + self.shortcut_path(x))
        # ====== END YOUR CODE ======


class ResidualBottleneckBlock(ResidualBlock):
    """A residual bottleneck block on ``C`` channels: a 1x1 convolution projects down to the
    first inner width, the inner convolutions work in the narrow space, and a 1x1 convolution
    projects back up to ``C``; the shortcut is the identity.
    """

    def __init__(self, in_out_channels: int, inner_channels: Sequence[int],
                 inner_kernel_sizes: Sequence[int], **kwargs):
        """
        :param in_out_channels: Channels ``C`` of both input and output.
        :param inner_channels: Output channels of the inner convolutions (at least one).
        :param inner_kernel_sizes: Odd kernel size of each inner convolution.
        :param kwargs: Passed to :class:`ResidualBlock` (``batchnorm``, ``dropout``,
            ``activation_type``, ``activation_params``, ...).
        :raises ValueError: For an invalid configuration.
        """
        inner_channels = check_int_list("inner_channels", inner_channels, allow_empty=False)
        count = len(inner_channels)
        inner_kernel_sizes = check_int_list(
            "inner_kernel_sizes", inner_kernel_sizes, lengths=(count,),
            expected=f"a list of {count} odd positive integers (one entry per inner channel)")
        # ====== YOUR CODE: ======
        super().__init__(in_out_channels, [inner_channels[0], *inner_channels, in_out_channels],
                         [1, *inner_kernel_sizes, 1], **kwargs)
        # ====== END YOUR CODE ======


class ResNet(CNN):
    """A residual network::

        [-> (CONV -> ACT) * P -> POOL] * (N // P) -> [residual block of the N % P rest]
         \\----- SKIP -------/
            -> flatten -> (FC -> ACT) * M -> FC

    Every ``pool_every`` consecutive convolutions form one :class:`ResidualBlock`, followed
    by a pooling layer when the group is complete. With ``bottleneck=True``, a group whose
    input and output channel counts agree and that has at least three convolutions becomes a
    :class:`ResidualBottleneckBlock`: its first convolution is the 1x1 projection down to
    ``group[1]``, its last the 1x1 projection back up, and the ones in between use the
    network's kernel size. Convolutions are 3x3 unless ``conv_params`` asks for another odd
    ``kernel_size``.
    """

    def __init__(self, in_size: Sequence[int], out_classes: int, channels: Sequence[int],
                 pool_every: int, hidden_dims: Sequence[int], batchnorm: bool = False,
                 dropout: float = 0.0, bottleneck: bool = False, **kwargs):
        """
        :param batchnorm: Use batch normalisation inside the residual blocks.
        :param dropout: ``Dropout2d`` probability inside the residual blocks.
        :param bottleneck: Use bottleneck blocks where a group allows one.
        :param kwargs: The remaining :class:`CNN` arguments (``conv_params``,
            ``activation_type``, ``activation_params``, ``pooling_type``, ``pooling_params``).
        :raises ValueError: For an invalid configuration, including ``bottleneck=True`` when
            no group can be a bottleneck block.

        See :class:`CNN` for the other parameters.
        """
        self.batchnorm = check_bool("batchnorm", batchnorm)
        self.dropout = check_interval("dropout", dropout, 0, 1, high_open=True)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        super().__init__(in_size, out_classes, channels, pool_every, hidden_dims, **kwargs)

    def _make_feature_extractor(self) -> nn.Sequential:
        """
        :return: Residual blocks of ``pool_every`` convolutions, each complete group followed
            by a pooling layer.
        """
        kernel_size = _residual_kernel_size(type(self).__name__, self.conv_params)
        p = self.pool_every
        groups = [self.channels[i:i + p] for i in range(0, len(self.channels), p)]
        ins = [self.in_size[0]] + [group[-1] for group in groups[:-1]]
        can_bottleneck = [len(g) >= 3 and c == g[-1] for c, g in zip(ins, groups)]
        if self.bottleneck and not any(can_bottleneck):
            raise ValueError(
                f"bottleneck=True but no group of pool_every={p} convolutions can be a "
                f"bottleneck block (it needs >= 3 convolutions and equal input and output "
                f"channels); groups as (in_channels, channels): {list(zip(ins, groups))}")
        options = {k: v for k, v in self.conv_params.items() if k in _RESIDUAL_CONV_OPTIONS}
        block_kwargs = dict(batchnorm=self.batchnorm, dropout=self.dropout, **options,
                            activation_type=self.activation_type,
                            activation_params=self.activation_params)
        # ====== YOUR CODE: ======
        layers: List[nn.Module] = []
        for in_channels, group, bottleneck in zip(ins, groups, can_bottleneck):
            if self.bottleneck and bottleneck:
                inner = group[1:-1]
                layers.append(ResidualBottleneckBlock(in_channels, inner,
                                                      [kernel_size] * len(inner), **block_kwargs))
            else:
                layers.append(ResidualBlock(in_channels, group, [kernel_size] * len(group),
                                            **block_kwargs))
            if len(group) == p:
                layers.append(self._make_pooling())
        return nn.Sequential(*layers)
        # ====== END YOUR CODE ======


class PreActivationBlock(nn.Module):
    """A pre-activation residual block (He et al., "Identity Mappings in Deep Residual
    Networks", 2016): ``x' + (BN -> Act -> Conv -> BN -> Act -> [Dropout] -> Conv ...)(x)``,
    ``x'`` being ``x`` or, when the channel count changes, a bias-free 1x1 projection of it.
    Nothing follows the sum, so a stack keeps a clean identity path from the classifier to the
    first layer (what lets deep stacks train); a batch norm follows each bias-free conv.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], kernel_size: int = 3,
                 dropout: float = 0.0, activation_type: str = "relu",
                 activation_params: Optional[dict] = None):
        """
        :param in_channels: Input channels ``C_in``.
        :param channels: Output channels of each convolution; ``C_out = channels[-1]``.
        :param kernel_size: Odd kernel size of the convolutions.
        :param dropout: Dropout probability before every convolution but the first.
        :param activation_type: One of :data:`ACTIVATIONS`.
        :param activation_params: Keyword arguments of the activation.
        """
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        channels = check_int_list("channels", channels, allow_empty=False)
        (kernel_size,) = _check_kernel_sizes([kernel_size], 1)
        dropout = check_interval("dropout", dropout, 0, 1, high_open=True)
        layers: List[nn.Module] = []
        prev = in_channels
        for i, out in enumerate(channels):
            layers += [nn.BatchNorm2d(prev), make_activation(activation_type, activation_params)]
            if i > 0 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Conv2d(prev, out, kernel_size, padding=kernel_size // 2, bias=False))
            prev = out
        self.main_path = nn.Sequential(*layers)
        self.shortcut_path = (nn.Identity() if in_channels == channels[-1]
                              else nn.Conv2d(in_channels, channels[-1], 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, C_in, H, W) -> (N, C_out, H, W)``."""
        return self.main_path(x) + self.shortcut_path(x)


class YourCNN(CNN):
    """Our architecture for Part 5: a pre-activation residual network with batch
    normalisation, dropout and global average pooling (``len(channels)`` convolutions)::

        Conv (stem) -> PreActivationBlocks of block_size convs, a pool every pool_every convs
            -> BN -> Act -> global average pool -> Dropout -> MLP(hidden_dims) -> scores

    * **Residual connections** (pre-activation): gradients reach early layers through the
      identity path, so depth no longer makes the network untrainable; the plain CNN of 36
      convolutions (K=32-64-128, L=12) stays at chance.
    * **Batch normalisation** before every convolution keeps activations well scaled at any
      depth and allows larger learning rates.
    * **Dropout** between a block's convolutions (as in wide ResNets) and before the
      classifier limits overfitting of the wider configurations on CIFAR-10.
    * **Global average pooling** makes the classifier input ``channels[-1]`` wide whatever the
      spatial size (the plain CNN's first linear layer holds 2.00 of the 2.04 million
      parameters of the notebook's 100x100 example) and insensitive to where a pattern is.
    * **Adaptive pooling**: a pool that would leave maps below 2x2 is skipped, so deep
      configurations with a small ``pool_every`` stay valid on 32x32 images.
    """

    def __init__(self, in_size: Sequence[int], out_classes: int, channels: Sequence[int],
                 pool_every: int, hidden_dims: Sequence[int], conv_params: Optional[dict] = None,
                 activation_type: str = "relu", activation_params: Optional[dict] = None,
                 pooling_type: str = "max", pooling_params: Optional[dict] = None,
                 dropout: float = 0.1, block_size: int = 2):
        """
        :param dropout: Dropout probability inside the blocks and before the classifier.
        :param block_size: Convolutions per residual block.

        See :class:`CNN` for the other parameters; ``conv_params`` may only choose an odd
        ``kernel_size`` (stride 1, "same" padding).
        """
        # nn.Module's constructor, not CNN's: that one would build the plain network, and this
        # network is built below in its place. The arguments are checked and stored as in CNN.
        nn.Module.__init__(self)
        self._configure(in_size, out_classes, channels, pool_every, hidden_dims, conv_params,
                        activation_type, activation_params, pooling_type, pooling_params)
        dropout = check_interval("dropout", dropout, 0, 1, high_open=True)
        block_size = check_int("block_size", block_size, 1)
        kernel_size = _residual_kernel_size(type(self).__name__, self.conv_params)
        # ====== YOUR CODE: ======
        self.dropout, self.block_size = dropout, block_size
        # ====== END YOUR CODE ======

        # ====== YOUR CODE: ======
        k, p = kernel_size, self.pool_every
        stem = nn.Conv2d(self.in_size[0], self.channels[0], k, padding=k // 2, bias=False)
        layers: List[nn.Module] = [stem]
        size, in_channels = self.in_size[1:], self.channels[0]
        for start in range(0, len(self.channels), p):
            stage = self.channels[start:start + p]
            convs = stage[1:] if start == 0 else stage  # the stem is the first convolution
            for b in range(0, len(convs), self.block_size):
                block = convs[b:b + self.block_size]
                layers.append(PreActivationBlock(in_channels, block, k, self.dropout,
                                                 self.activation_type, self.activation_params))
                in_channels = block[-1]
            if len(stage) == p:
                pool = self._make_pooling()
                pooled = _pooled_size(pool, size)
                if min(pooled) >= 2:  # a pool that would leave less than 2x2 is skipped
                    layers.append(pool)
                    size = pooled
        layers += [nn.BatchNorm2d(in_channels), self._make_activation(),
                   nn.AdaptiveAvgPool2d(1), nn.Dropout(self.dropout)]
        self.feature_extractor = nn.Sequential(*layers)
        self.mlp = self._make_mlp()
        # ====== END YOUR CODE ======


# -- helpers --------------------------------------------------------------------------------

def _pooled_size(pool: nn.Module, size: Sequence[int]) -> Tuple[int, int]:
    """:return: The ``(H, W)`` a pooling layer produces from ``size``; (0, 0) if it cannot."""
    try:
        with torch.no_grad():
            out = pool(torch.zeros(1, 1, *size))
    except RuntimeError:  # torch refuses a window larger than the maps
        return (0, 0)
    return tuple(out.shape[-2:])


def _residual_kernel_size(owner: str, conv_params: dict) -> int:
    """:return: The odd ``kernel_size`` of ``conv_params`` (default 3).
    :raises ValueError: For any other setting than stride 1, padding ``kernel_size // 2`` and
        the options ``bias``/``padding_mode``: a residual sum needs the spatial size kept."""
    (k,) = _check_kernel_sizes([conv_params.get("kernel_size", 3)], 1)
    same = {"kernel_size": k, "stride": 1, "padding": k // 2}
    bad = sorted(key for key, value in conv_params.items() if key not in _RESIDUAL_CONV_OPTIONS
                 and (key not in same or value not in (same[key], (same[key],) * 2)))
    if bad:
        raise ValueError(f"{owner} needs convolutions that keep the spatial size (an odd "
                         f"kernel_size, stride 1, padding kernel_size // 2 = {k // 2}); "
                         f"conv_params {conv_params} sets {bad} otherwise")
    return k


def _check_kernel_sizes(kernel_sizes, count: int) -> List[int]:
    """:return: ``kernel_sizes`` as ints, or raise unless there are ``count`` odd sizes."""
    kernel_sizes = check_int_list(
        "kernel_sizes", kernel_sizes, lengths=(count,),
        expected=f"a list of {count} odd positive integers (one entry per convolution)")
    for i, k in enumerate(kernel_sizes):
        if k % 2 == 0:
            raise ValueError(f"kernel_sizes[{i}] must be odd so that padding k // 2 keeps the "
                             f"spatial size for the residual sum, got {k}")
    return kernel_sizes
