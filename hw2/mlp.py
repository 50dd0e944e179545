"""A multilayer perceptron as a composable ``torch.nn.Module`` (Part 3).

The network alternates fully-connected layers and nonlinearities::

    Linear(in_dim, dims[0]) -> act[0] -> Linear(dims[0], dims[1]) -> act[1] -> ...

Each nonlinearity is either a short name (see :data:`ACTIVATIONS`, the course's table of
classes, with :data:`ACTIVATION_DEFAULT_KWARGS`; :data:`NONLINEARITIES` builds them) or any
ready-made ``nn.Module``, so the same class serves as a classifier head (last nonlinearity ``'none'``),
a probability model (``'softmax'``) or a block inside a bigger model such as
:class:`hw2.cnn.CNN`.
"""
import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Callable, Dict, Type, Union

import torch.nn as nn
from torch import Tensor

from hw2.validation import check_choice, check_int, check_int_list

__all__ = ["MLP", "ACTIVATIONS", "ACTIVATION_DEFAULT_KWARGS", "NONLINEARITIES",
           "make_nonlinearity"]

#: Name -> ``nn.Module`` class of the nonlinearities an :class:`MLP` accepts by name
#: (``'none'`` is the identity).
ACTIVATIONS: Dict[str, Type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softmax": nn.Softmax,
    "logsoftmax": nn.LogSoftmax,
    "lrelu": nn.LeakyReLU,
    "none": nn.Identity,
}
#: Name -> keyword arguments each class of :data:`ACTIVATIONS` is built with (``{}`` for any
#: name not listed). Softmax and log-softmax normalise over the feature dimension (dim=1) of
#: an ``(N, D)`` batch.
ACTIVATION_DEFAULT_KWARGS: Dict[str, dict] = defaultdict(
    dict, {**{name: {} for name in ACTIVATIONS}, "softmax": dict(dim=1), "logsoftmax": dict(dim=1)})


def _factory(name: str) -> Callable[[], nn.Module]:
    """A factory building ``ACTIVATIONS[name]`` with (a copy of) its default kwargs."""
    def build() -> nn.Module:
        return ACTIVATIONS[name](**dict(ACTIVATION_DEFAULT_KWARGS[name]))
    return functools.update_wrapper(build, ACTIVATIONS[name], assigned=("__doc__",))


#: Name -> factory of the nonlinearities an :class:`MLP` accepts by name (from
#: :data:`ACTIVATIONS` and :data:`ACTIVATION_DEFAULT_KWARGS`).
NONLINEARITIES: Dict[str, Callable[[], nn.Module]] = {name: _factory(name) for name in ACTIVATIONS}

NonLin = Union[str, nn.Module]


def make_nonlinearity(nonlin: NonLin) -> nn.Module:
    """Turn a nonlinearity specification into a module.

    :param nonlin: A name from :data:`NONLINEARITIES` (case-insensitive) or an ``nn.Module``,
        which is returned as is.
    :return: The nonlinearity as an ``nn.Module``.
    :raises ValueError: If ``nonlin`` is an unknown name.
    :raises TypeError: If ``nonlin`` is neither a string nor an ``nn.Module``.
    """
    if isinstance(nonlin, nn.Module):
        return nonlin
    return NONLINEARITIES[check_choice("nonlinearity", nonlin, NONLINEARITIES, str.lower)]()


class MLP(nn.Module):
    """A multilayer perceptron: ``len(dims)`` fully-connected layers, each followed by its
    nonlinearity.

    Attributes: ``in_dim`` (input features), ``out_dim`` (``dims[-1]``) and ``seq``, the
    ``nn.Sequential`` holding ``Linear, act, Linear, act, ...``.
    """

    def __init__(self, in_dim: int, dims: Sequence[int], nonlins: Sequence[NonLin]):
        """
        :param in_dim: Number of input features ``D_in``.
        :param dims: Output size of every layer; ``dims[-1]`` is the model's output size.
        :param nonlins: One nonlinearity per layer, a name from :data:`NONLINEARITIES` or an
            ``nn.Module``; use ``'none'`` for a layer without one.
        :raises ValueError: If a size is below 1, ``dims`` is empty, the two sequences differ
            in length, or a nonlinearity name is unknown.
        :raises TypeError: If ``dims`` or ``nonlins`` is not a sequence, a size is not an
            integer (numpy integers are accepted) or a nonlinearity neither a name nor a module.
        """
        super().__init__()
        in_dim = check_int("in_dim", in_dim, 1)
        dims = check_int_list("dims", dims, allow_empty=False)
        if isinstance(nonlins, str) or not isinstance(nonlins, Sequence):
            raise TypeError(f"nonlins must be a sequence (one entry per layer), got {nonlins!r}")
        if len(dims) != len(nonlins):
            raise ValueError(f"dims and nonlins must have the same length, got {len(dims)} dims "
                             f"{dims} and {len(nonlins)} nonlins")
        for i, nonlin in enumerate(nonlins):
            if not isinstance(nonlin, nn.Module):
                check_choice(f"nonlins[{i}]", nonlin, NONLINEARITIES, str.lower)
        self.in_dim, self.out_dim = in_dim, dims[-1]
        # ====== YOUR CODE: ======
        layers, prev = [], in_dim
        for dim, nonlin in zip(dims, nonlins):
            layers += [nn.Linear(prev, dim), make_nonlinearity(nonlin)]
            prev = dim
        self.seq = nn.Sequential(*layers)
        # ====== END YOUR CODE ======

    def forward(self, x: Tensor) -> Tensor:
        """
        :param x: A batch of samples, ``(N, D_in)``.
        :return: The output of the last layer, ``(N, D_out)``.
        """
        # ====== YOUR CODE: ======
        return self.seq(x)
        # ====== END YOUR CODE ======
