"""From-scratch network layers with hand-written backward passes (Part 1).

Every :class:`Layer` computes its output in :meth:`Layer.forward` and, given the gradient of
some downstream scalar loss with respect to that output, computes the gradient with respect to
its input (returned) and its parameters (accumulated into the layer's gradient tensors) in
:meth:`Layer.backward`. Backward passes compute vector-Jacobian products directly: no Jacobian
is ever materialised, no loop runs over the samples of a batch, and everything backward needs
is cached by forward in ``self.grad_cache``.

Tensors are ordinary ``torch.Tensor`` objects; autograd is not used by these layers (it serves
only as the oracle in :mod:`hw2.grad_compare` and in the tests).
"""
import abc
from typing import Iterator, List, Sequence, Tuple, Union

import torch
from torch import Tensor

from hw2.validation import (check_bool, check_choice, check_instance, check_int, check_int_list,
                            check_interval, check_real, check_tensor)

ParamList = List[Tuple[Tensor, Tensor]]
#: The parameter dtypes :class:`Linear` takes.
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

__all__ = [
    "Layer", "LeakyReLU", "ReLU", "Sigmoid", "TanH", "Linear", "CrossEntropyLoss",
    "BCEWithLogitsLoss", "Dropout", "Sequential", "MLP",
]


def _shape(t: Tensor) -> Tuple[int, ...]:
    """A tensor's shape as a plain tuple, for readable error messages."""
    return tuple(t.shape)


class Layer(abc.ABC):
    """A computation element with a forward pass and a hand-written backward pass.

    Subclasses implement :meth:`forward`, :meth:`backward` and :meth:`params`. ``forward``
    stores in ``self.grad_cache`` whatever ``backward`` needs; ``backward`` receives the
    gradient of a downstream scalar loss w.r.t. the layer's output, *adds* the gradients of
    the parameters into their gradient tensors, and returns the gradient w.r.t. the input.
    """

    def __init__(self):
        self.grad_cache = {}
        self.training_mode = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    @abc.abstractmethod
    def forward(self, *args, **kwargs):
        """Compute the layer's output and cache what :meth:`backward` needs.

        :param args: The computation's inputs (layer specific).
        :param kwargs: Extra keyword arguments; a layer ignores those it does not use, so that
            e.g. ``y=labels`` can flow through a :class:`Sequential` to the loss at its end.
        :return: The output tensor.
        """

    @abc.abstractmethod
    def backward(self, dout):
        """Back-propagate through the layer (a vector-Jacobian product).

        :param dout: Gradient of a downstream scalar loss w.r.t. this layer's output, with the
            output's shape (a scalar for losses).
        :return: Gradient of that loss w.r.t. the layer's input, with the input's shape.
            Parameter gradients are added (``+=``) into the tensors returned by :meth:`params`.
        """

    @abc.abstractmethod
    def params(self) -> ParamList:
        """:return: The trainable parameters as ``(tensor, gradient_tensor)`` pairs."""

    def train(self, training_mode: bool = True) -> "Layer":
        """Switch between training mode (True) and evaluation mode (False).

        :param training_mode: True for training behaviour, False for evaluation behaviour.
        :return: The layer itself.
        """
        self.training_mode = check_bool("training_mode", training_mode)
        return self

    def _cached(self, key: str):
        """Fetch a forward-pass value, failing clearly if forward has not run yet."""
        if key not in self.grad_cache:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return self.grad_cache[key]

    def _check_dout(self, dout: Tensor, shape: Tuple[int, ...]) -> None:
        """Raise a ValueError unless ``dout`` has the shape of this layer's last output."""
        check_tensor("dout", dout)
        if _shape(dout) != tuple(shape):
            raise ValueError(
                f"{self!r}.backward: expected dout of shape {tuple(shape)} (the forward "
                f"output's shape), got {_shape(dout)}"
            )

    def __repr__(self):
        return self.__class__.__name__


class _Elementwise(Layer):
    """Base of parameter-free layers applied elementwise to inputs of any shape."""

    def params(self) -> ParamList:
        return []


class LeakyReLU(_Elementwise):
    """Leaky rectifier, ``max(alpha * x, x)`` elementwise with ``0 <= alpha < 1``."""

    def __init__(self, alpha: float = 0.01):
        """
        :param alpha: Slope for negative inputs, in [0, 1).
        :raises ValueError: If ``alpha`` is outside [0, 1).
        """
        super().__init__()
        self.alpha = check_interval("alpha", alpha, 0, 1, high_open=True)

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: any shape.
        :return: ``max(alpha * x, x)``, same shape as ``x``.
        """
        check_tensor("x", x)
        # ====== YOUR CODE: ======
        positive = x > 0
        self.grad_cache["positive"] = positive
        return torch.where(positive, x, self.alpha * x)
        # ====== END YOUR CODE ======

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: same shape as the forward input.
        :return: dx, ``dout`` where the input was positive and ``alpha * dout`` elsewhere.
        """
        positive = self._cached("positive")
        self._check_dout(dout, positive.shape)
        # ====== YOUR CODE: ======
        return torch.where(positive, dout, self.alpha * dout)
        # ====== END YOUR CODE ======

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class ReLU(LeakyReLU):
    """Rectified linear unit, ``max(0, x)``: a :class:`LeakyReLU` with ``alpha = 0``."""

    def __init__(self):
        # ====== YOUR CODE: ======
        super().__init__(alpha=0.0)
        # ====== END YOUR CODE ======

    def __repr__(self):
        return "ReLU"


class Sigmoid(_Elementwise):
    """Logistic function ``1 / (1 + exp(-x))`` elementwise.

    The forward pass uses the ``torch.sigmoid`` primitive (overflow-free for any input); the
    backward pass is ours.
    """

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: any shape.
        :return: ``sigmoid(x)``, same shape as ``x``.
        """
        check_tensor("x", x)
        # ====== YOUR CODE: ======
        out = torch.sigmoid(x)
        self.grad_cache["out"] = out
        return out
        # ====== END YOUR CODE ======

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: same shape as the forward input.
        :return: dx ``= dout * s * (1 - s)`` with ``s`` the cached forward output.
        """
        out = self._cached("out")
        self._check_dout(dout, out.shape)
        # ====== YOUR CODE: ======
        # Multiplied in the same order as autograd's kernel, so float32 results agree bitwise.
        return dout * (1.0 - out) * out
        # ====== END YOUR CODE ======


class TanH(_Elementwise):
    """Hyperbolic tangent elementwise.

    The forward pass uses the ``torch.tanh`` primitive; the backward pass is ours.
    """

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: any shape.
        :return: ``tanh(x)``, same shape as ``x``.
        """
        check_tensor("x", x)
        # ====== YOUR CODE: ======
        out = torch.tanh(x)
        self.grad_cache["out"] = out
        return out
        # ====== END YOUR CODE ======

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: same shape as the forward input.
        :return: dx ``= dout * (1 - t^2)`` with ``t`` the cached forward output.
        """
        out = self._cached("out")
        self._check_dout(dout, out.shape)
        # ====== YOUR CODE: ======
        # 1 - t^2 as one fused multiply-add (a single rounding), like autograd's own kernel.
        return dout * torch.addcmul(torch.ones_like(out), out, out, value=-1.0)
        # ====== END YOUR CODE ======


class Linear(Layer):
    """Fully connected (affine) layer, ``Z = X W^T + b``.

    ``w`` has shape (out_features, in_features) and is drawn from N(0, wstd^2); ``b`` has shape
    (out_features,) and starts at zero (the random weights already break the symmetry between
    units, and a zero bias keeps the initial pre-activations centred). ``dw`` and ``db`` hold
    the gradients; they accumulate over backward calls until an optimizer zeroes them.
    """

    def __init__(self, in_features: int, out_features: int, wstd: float = 0.1, dtype=None):
        """
        :param in_features: D_in, the number of input features.
        :param out_features: D_out, the number of output features.
        :param wstd: Standard deviation of the normal distribution the weights are drawn from.
        :param dtype: Floating-point dtype of the parameters; None means torch's default dtype.
        :raises ValueError: On non-positive feature counts, a negative or non-finite ``wstd``, or
            a ``dtype`` that is not a floating-point one.
        :raises TypeError: If a feature count is not an integer, ``wstd`` not a number or
            ``dtype`` not a ``torch.dtype``.
        """
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.wstd = check_real("wstd", wstd, 0.0)
        dtype = check_choice("dtype", torch.get_default_dtype() if dtype is None else dtype,
                             _FLOAT_DTYPES, kind=torch.dtype)
        # ====== YOUR CODE: ======
        self.w = torch.empty(self.out_features, self.in_features, dtype=dtype).normal_(0, self.wstd)
        self.b = torch.zeros(self.out_features, dtype=dtype)
        # ====== END YOUR CODE ======
        self.dw = torch.zeros_like(self.w)
        self.db = torch.zeros_like(self.b)

    def reset_parameters(self) -> None:
        """Draw ``w`` from N(0, wstd^2), set ``b`` to zero, and zero both gradients (in place)."""
        self.w.normal_(mean=0.0, std=self.wstd)
        self.b.zero_()
        self.dw.zero_()
        self.db.zero_()

    def params(self) -> ParamList:
        return [(self.w, self.dw), (self.b, self.db)]

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: (N, D_in), or more generally (*, D_in).
        :return: (N, D_out), or (*, D_out).
        :raises ValueError: If the last dimension of ``x`` is not D_in.
        """
        check_tensor("x", x)
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input of shape (N, {self.in_features}), got {_shape(x)}"
            )
        if x.dtype != self.w.dtype:
            raise TypeError(f"{self!r}: expected input of dtype {self.w.dtype}, got {x.dtype}")
        # ====== YOUR CODE: ======
        self.grad_cache["x"] = x
        if x.dim() == 2:
            return torch.addmm(self.b, x, self.w.T)  # one fused kernel for x W^T + b
        return x @ self.w.T + self.b
        # ====== END YOUR CODE ======

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: (N, D_out), or (*, D_out) matching the forward output.
        :return: dx ``= dout W``, shaped like the forward input. Adds ``dout^T X`` into ``dw``
            and the column sums of ``dout`` into ``db``.
        """
        x = self._cached("x")
        self._check_dout(dout, _shape(x)[:-1] + (self.out_features,))
        # ====== YOUR CODE: ======
        dout2d = dout.reshape(-1, self.out_features)
        self.dw.addmm_(dout2d.T, x.reshape(-1, self.in_features))  # dw += dout^T X, fused
        self.db += dout2d.sum(dim=0)
        return dout @ self.w
        # ====== END YOUR CODE ======

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"


class CrossEntropyLoss(Layer):
    """Mean cross-entropy over a batch, computed from raw class scores.

    For scores ``x`` of one sample and its label ``y``: ``-x_y + log(sum_k exp(x_k))``,
    evaluated with the max-shift (log-sum-exp) trick so that large scores cannot overflow.
    """

    def params(self) -> ParamList:
        return []

    def forward(self, x: Tensor, y: Tensor, **kw) -> Tensor:
        """
        :param x: (N, C) raw class scores.
        :param y: (N,) integer labels in [0, C).
        :return: The mean loss, a scalar tensor.
        :raises ValueError: On wrongly shaped scores/labels, an empty batch or labels out of
            range.
        :raises TypeError: If ``y`` is not an integer tensor.
        """
        check_tensor("x", x)
        if x.dim() != 2:
            raise ValueError(f"CrossEntropyLoss: expected scores x of shape (N, C), got {_shape(x)}")
        n, c = x.shape
        if n == 0 or c == 0:
            raise ValueError(f"CrossEntropyLoss: expected a non-empty batch of scores (N >= 1, "
                             f"C >= 1), got shape {_shape(x)}")
        self._check_labels(y, n, c)
        # ====== YOUR CODE: ======
        y = y.long()
        shifted = x - x.max(dim=1, keepdim=True).values  # largest entry of each row is 0
        log_norm = torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        log_probs = shifted - log_norm  # (N, C) log-softmax
        self.grad_cache["probs"] = torch.exp(log_probs)
        self.grad_cache["y"] = y
        return -log_probs.gather(1, y.reshape(n, 1)).mean()
        # ====== END YOUR CODE ======

    @staticmethod
    def _check_labels(y, n: int, c: int) -> None:
        """Validate labels against ``n`` samples and ``c`` classes."""
        check_tensor("CrossEntropyLoss: labels y", y, floating=False)
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise ValueError(
                f"CrossEntropyLoss: expected integer labels y (e.g. torch.long), got dtype {y.dtype}"
            )
        if _shape(y) != (n,):
            raise ValueError(f"CrossEntropyLoss: expected labels y of shape ({n},), got {_shape(y)}")
        if y.min() < 0 or y.max() >= c:
            raise ValueError(
                f"CrossEntropyLoss: expected labels in [0, {c - 1}], got values in "
                f"[{int(y.min())}, {int(y.max())}]"
            )

    def backward(self, dout=1.0) -> Tensor:
        """
        :param dout: Gradient w.r.t. the scalar loss (1.0 when the loss is the final output).
        :return: dx (N, C) ``= dout * (softmax(x) - onehot(y)) / N``.
        """
        probs = self._cached("probs")
        # ====== YOUR CODE: ======
        y = self.grad_cache["y"]
        n = probs.shape[0]
        dx = probs.clone()
        dx[torch.arange(n, device=dx.device), y] -= 1.0
        return dx * (_as_scalar(dout, probs) / n)
        # ====== END YOUR CODE ======


class BCEWithLogitsLoss(Layer):
    """Mean binary cross-entropy (logistic loss) computed from logits, numerically stable.

    Per sample, with logit ``x`` and target ``y`` in [0, 1]:
    ``-y log s(x) - (1 - y) log(1 - s(x)) = max(x, 0) - x y + log(1 + exp(-|x|))``, which never
    exponentiates a positive number, so it stays finite even for logits of +-1e10.
    """

    def params(self) -> ParamList:
        return []

    def forward(self, x: Tensor, y: Tensor, **kw) -> Tensor:
        """
        :param x: (N,) or (N, 1) logits.
        :param y: N targets, shaped (N,) or (N, 1), each 0 or 1 (any value in [0, 1] works).
        :return: The mean loss, a scalar tensor.
        :raises ValueError: On wrongly shaped logits/targets, an empty batch or targets outside
            [0, 1] (NaN included).
        """
        check_tensor("x", x)
        check_tensor("y", y, floating=False)
        n = x.shape[0] if x.dim() > 0 else 0
        if n == 0 or x.numel() != n or x.dim() > 2 or _shape(y) not in ((n,), (n, 1)):
            raise ValueError(f"BCEWithLogitsLoss: expected N >= 1 logits x and N targets y, each "
                             f"(N,) or (N, 1), got shapes {_shape(x)} and {_shape(y)}")
        y = y.reshape(x.shape).to(x.dtype)
        if not bool(((y >= 0) & (y <= 1)).all()):  # NaN fails both comparisons
            raise ValueError(f"BCEWithLogitsLoss: expected targets y in [0, 1], got values in "
                             f"[{y.min().item()}, {y.max().item()}]")
        self.grad_cache["probs"] = torch.sigmoid(x)
        self.grad_cache["y"] = y
        losses = x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))
        return losses.mean()

    def backward(self, dout=1.0) -> Tensor:
        """
        :param dout: Gradient w.r.t. the scalar loss (1.0 when the loss is the final output).
        :return: dx ``= dout * (sigmoid(x) - y) / N``, shaped like the logits.
        """
        probs = self._cached("probs")
        y = self.grad_cache["y"]
        return (probs - y) * (_as_scalar(dout, probs) / probs.shape[0])


def _as_scalar(dout, like: Tensor) -> Tensor:
    """A loss layer's upstream gradient (a number or a one-element tensor) as a scalar tensor
    of ``like``'s dtype.

    :raises TypeError: It is neither a number nor a tensor.
    :raises ValueError: A tensor of more than one element, or a NaN or infinite number.
    """
    if isinstance(dout, Tensor):
        if dout.numel() != 1:
            raise ValueError(
                f"a loss's backward expects a scalar dout, got a tensor of shape {_shape(dout)}"
            )
        return dout.reshape(()).to(like.dtype)
    dout = check_real("dout", dout, expected="a finite number or a scalar tensor")
    return torch.tensor(dout, dtype=like.dtype)


class Dropout(Layer):
    """Inverted dropout: in training mode zero each unit with probability ``p`` and scale the
    survivors by ``1 / (1 - p)``; in evaluation mode pass the input through unchanged."""

    def __init__(self, p: float = 0.5):
        """
        :param p: Drop probability, in [0, 1).
        :raises ValueError: If ``p`` is outside [0, 1).
        """
        super().__init__()
        self.p = check_interval("p", p, 0, 1, high_open=True)

    def params(self) -> ParamList:
        return []

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: any shape.
        :return: same shape; the dropped-and-rescaled input in training mode, else ``x``.
        """
        check_tensor("x", x)
        # ====== YOUR CODE: ======
        if self.training_mode and self.p > 0:
            keep = torch.rand_like(x) >= self.p
            scale = keep.to(x.dtype) / (1.0 - self.p)  # (same shape as x): 0 or 1/(1-p)
        else:
            scale = None
        self.grad_cache["scale"] = scale
        self.grad_cache["shape"] = _shape(x)
        return x if scale is None else x * scale
        # ====== END YOUR CODE ======

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: same shape as the forward input.
        :return: dx: ``dout`` through the same mask and scale as the forward pass.
        """
        scale = self._cached("scale")
        self._check_dout(dout, self.grad_cache["shape"])
        # ====== YOUR CODE: ======
        return dout if scale is None else dout * scale
        # ====== END YOUR CODE ======

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Sequential(Layer):
    """A chain of layers applied one after another; backward runs them in reverse."""

    def __init__(self, *layers: Layer):
        """
        :param layers: The layers, in forward order.
        :raises TypeError: If an argument is not a :class:`Layer`.
        """
        super().__init__()
        for i, layer in enumerate(layers):
            check_instance(f"Sequential: argument {i}", layer, Layer, "a Layer")
        self.layers = list(layers)

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: The first layer's input.
        :param kw: Passed to every layer (e.g. ``y=labels`` for a loss at the end).
        :return: The last layer's output.
        """
        # ====== YOUR CODE: ======
        for layer in self.layers:
            x = layer(x, **kw)
        return x
        # ====== END YOUR CODE ======

    def backward(self, dout):
        """
        :param dout: Gradient w.r.t. the last layer's output.
        :return: Gradient w.r.t. the first layer's input.
        """
        # ====== YOUR CODE: ======
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout
        # ====== END YOUR CODE ======

    def params(self) -> ParamList:
        # ====== YOUR CODE: ======
        return [pair for layer in self.layers for pair in layer.params()]
        # ====== END YOUR CODE ======

    def train(self, training_mode: bool = True) -> "Sequential":
        super().train(training_mode)
        for layer in self.layers:
            layer.train(training_mode)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, item: Union[int, slice]) -> Union[Layer, "Sequential"]:
        """An int gives that layer; a slice gives a new Sequential sharing the same layers."""
        if isinstance(item, slice):
            return Sequential(*self.layers[item])
        return self.layers[item]

    def __repr__(self):
        lines = ["Sequential"]
        for i, layer in enumerate(self.layers):
            # Indent the continuation lines of nested multi-line reprs by one more tab.
            lines.append(f"\t[{i}] " + repr(layer).replace("\n", "\n\t"))
        return "\n".join(lines)


class MLP(Layer):
    """Multilayer perceptron built from our layers:
    ``FC -> act -> [Dropout] -> ... -> FC -> act -> [Dropout] -> FC``."""

    ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid}

    def __init__(self, in_features: int, num_classes: int, hidden_features: Sequence[int] = (),
                 activation: str = "relu", dropout: float = 0, **kw):
        """
        :param in_features: D, the number of input features.
        :param num_classes: C, the number of output classes (width of the last layer).
        :param hidden_features: Widths ``h_1, ..., h_L`` of the hidden layers (may be empty).
        :param activation: ``'relu'`` or ``'sigmoid'``, applied after every hidden layer.
        :param dropout: Drop probability of a :class:`Dropout` after every activation, in
            [0, 1); 0 adds no dropout layers.
        :param kw: Passed to every :class:`Linear` (e.g. ``wstd``, ``dtype``).
        :raises ValueError: On an unknown activation or invalid sizes/probability.
        :raises TypeError: If ``hidden_features`` is not a sequence.
        """
        super().__init__()
        check_choice("activation", activation, self.ACTIVATIONS)
        dropout = check_interval("dropout", dropout, 0, 1, high_open=True)
        hidden_features = check_int_list("hidden_features", hidden_features)
        # ====== YOUR CODE: ======
        layers = []
        widths = [in_features] + hidden_features
        for d_in, d_out in zip(widths[:-1], widths[1:]):
            layers += [Linear(d_in, d_out, **kw), self.ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(Dropout(dropout))
        layers.append(Linear(widths[-1], num_classes, **kw))
        # ====== END YOUR CODE ======
        self.in_features = in_features
        self.num_classes = num_classes
        self.sequence = Sequential(*layers)

    def forward(self, x: Tensor, **kw) -> Tensor:
        """
        :param x: (N, D).
        :param kw: Passed to every layer (ignored by them).
        :return: (N, C) class scores.
        """
        return self.sequence(x, **kw)

    def backward(self, dout: Tensor) -> Tensor:
        """
        :param dout: (N, C).
        :return: dx (N, D).
        """
        return self.sequence.backward(dout)

    def params(self) -> ParamList:
        return self.sequence.params()

    def train(self, training_mode: bool = True) -> "MLP":
        super().train(training_mode)
        self.sequence.train(training_mode)
        return self

    def __repr__(self):
        return f"MLP, {self.sequence!r}"
