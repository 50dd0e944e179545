"""Check a :class:`hw2.layers.Layer`'s hand-written backward pass against torch autograd.

How :func:`compare_layer_to_torch` treats accumulated gradients
---------------------------------------------------------------
Parameter gradients (e.g. ``Linear.dw``) accumulate over backward calls, so a layer that has
already been back-propagated through holds a non-zero gradient before the comparison starts
(the seed notebook's "second backward pass" check does exactly this). Comparing that running
total with autograd's single-pass gradient would be wrong, and comparing ``after - before``
would add a rounding error proportional to the old total. Instead the function

1. saves every gradient tensor and zeroes it in place,
2. runs our forward and backward, so each gradient tensor now holds exactly this pass's
   contribution, which is what gets compared with autograd,
3. adds the saved values back in place, so the layer ends up as if one ordinary
   forward/backward step had run: ``grad = old + this pass`` (the same floating-point sum).

The autograd run uses a deep copy of the layer taken before step 2, so it never touches the
layer's parameters, gradients or caches. The global RNG is seeded identically before both
forward passes (so dropout draws the same masks) inside :func:`torch.random.fork_rng`, which
leaves the caller's random stream unaffected.
"""
import copy
from typing import List, Optional

import torch
from torch import Tensor

from hw2.layers import Layer
from hw2.validation import check_instance, check_tensor

__all__ = ["compare_layer_to_torch"]


def _output_grad(z: Tensor, seed: int) -> Tensor:
    """The upstream gradient used for the comparison: 1 for a scalar output, else N(0, 1).

    :param z: The layer's output, any shape.
    :return: A tensor shaped and typed like ``z``, drawn from its own generator.
    """
    if z.dim() == 0:
        return torch.ones((), dtype=z.dtype)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(z.shape, generator=gen, dtype=z.dtype)


def _forward(layer: Layer, x: Tensor, y: Optional[Tensor], seed: int) -> Tensor:
    """Seed the global RNG, then run ``layer`` on ``x`` (and ``y=y`` when given)."""
    torch.manual_seed(seed)
    return layer(x) if y is None else layer(x, y=y)


def _ours(layer: Layer, x: Tensor, y: Optional[Tensor], seed: int):
    """Our forward + backward, returning (dz, dx, per-pass parameter gradients).

    The gradient tensors are taken from ``layer.params()`` once, before the pass, and read
    back afterwards: those are the tensors an optimizer holds, so a backward pass that binds
    new gradient tensors instead of accumulating into these ones shows up as a difference.
    """
    grad_tensors = [g for _, g in layer.params()]
    saved = [g.clone() for g in grad_tensors]
    for g in grad_tensors:
        g.zero_()
    z = _forward(layer, x, y, seed)
    dz = _output_grad(z, seed)
    dx = layer.backward(dz)
    grads = [g.clone() for g in grad_tensors]
    for g, old in zip(grad_tensors, saved):
        g.add_(old)
    return dz, dx, grads


def _autograd(twin: Layer, x: Tensor, y: Optional[Tensor], seed: int, dz: Tensor):
    """Autograd through ``twin``'s forward, returning (dx, parameter gradients)."""
    xt = x.detach().clone().requires_grad_(True)
    params = [p for p, _ in twin.params()]
    for p in params:
        p.requires_grad_(True)
    zt = _forward(twin, xt, y, seed)
    zt.backward(dz)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    return xt.grad, grads


def _diff(ours: Optional[Tensor], theirs: Optional[Tensor]) -> float:
    """Frobenius norm of the difference; a missing gradient counts as zeros."""
    if ours is None and theirs is None:
        return 0.0
    if ours is None or theirs is None:
        present = theirs if ours is None else ours
        return float(torch.linalg.vector_norm(present.detach()))
    if ours.shape != theirs.shape:
        raise ValueError(
            f"gradient shape mismatch: ours {tuple(ours.shape)}, autograd {tuple(theirs.shape)}"
        )
    return float(torch.linalg.vector_norm(ours.detach() - theirs.detach()))


def compare_layer_to_torch(layer: Layer, x: Tensor, y: Optional[Tensor] = None, seed: int = 42,
                           verbose: bool = True) -> List[float]:
    """Compare ``layer``'s backward pass with torch autograd on the same computation.

    Runs our forward and backward with an upstream gradient of 1 (scalar output) or a seeded
    N(0, 1) tensor, then re-runs the same forward on a deep copy of the layer under autograd
    with the same seed, back-propagates the same upstream gradient, and measures the norm of
    the difference for the input gradient and every parameter gradient. See the module
    docstring for how already accumulated gradients are preserved.

    :param layer: The layer to check; its gradients end up incremented by one pass.
    :param x: The input, any shape the layer accepts (floating point).
    :param y: Optional labels/targets, passed to the layer as ``y=y`` (for losses).
    :param seed: Seed of the global RNG before each forward pass, and of the upstream gradient.
    :param verbose: Print ``Comparing gradients...`` and one ``diff=`` line per tensor.
    :return: The differences, input first, then one per entry of ``layer.params()``.
    :raises TypeError: If ``layer`` is not a Layer or ``x`` is not a floating-point tensor.
    """
    check_instance("layer", layer, Layer, "a hw2.layers.Layer")
    check_tensor("x", x)
    twin = copy.deepcopy(layer)
    with torch.random.fork_rng(devices=[]):
        dz, dx, grads = _ours(layer, x, y, seed)
        dxt, grads_t = _autograd(twin, x, y, seed, dz)

    diffs = [_diff(dx, dxt)] + [_diff(g, gt) for g, gt in zip(grads, grads_t)]
    if verbose:
        print("Comparing gradients... ")
        print(f"input    diff={diffs[0]:.3f}")
        for i, d in enumerate(diffs[1:], start=1):
            print(f"param#{i:02d} diff={d:.3f}")
    return diffs
