"""From-scratch gradient-based optimizers with an API modelled on ``torch.optim``.

An :class:`Optimizer` holds the trainable tensors of a model and updates them in place from
their gradients. It accepts either

* a list of ``(param, grad)`` pairs, as returned by :meth:`hw2.layers.Layer.params` (the
  gradient tensor is a separate tensor that the layer's backward fills), or
* a list of torch tensors (e.g. ``nn.Module.parameters()``); each tensor's ``.grad`` is read
  at step time and a tensor whose ``.grad`` is ``None`` is skipped, as in ``torch.optim``.

L2 regularisation is applied inside the optimizer: with ``R(θ) = ½·reg·‖θ‖²`` the gradient
used by every rule is ``g + reg·θ`` (the same as ``torch.optim``'s ``weight_decay``). The
gradient tensors themselves are never modified by :meth:`Optimizer.step`.

Every update rule lives in a small pure function (``*_update``) working on lists of tensors
with the ``torch._foreach_*`` kernels, so one step issues a handful of multi-tensor ops
instead of several ops per parameter. The lists are grouped by device and dtype, and on the
CPU cut into chunks of about a million values (see :meth:`Optimizer._groups`). Per-parameter
state (momentum buffers, moving averages, step counts) is created lazily the first time a
parameter receives a gradient. ``benchmarks/bench_optimizers.py`` times ``step()`` against
``torch.optim`` on a ResNet-18 parameter list.

Steps allocate no memory after the first: the rules that need temporaries (the regularised
gradient, the denominators of RMSProp and Adam) write them into work buffers that the
optimizer allocates once and reuses (:meth:`Optimizer._work_buffers`); on the CPU one buffer
per kind serves every chunk, so they cost about one chunk's size, not the model's. A step that
allocated would take fresh pages from the system every time the training loop's own
temporaries had been handed back, i.e. on every step.

Formulations (η learning rate, g the regularised gradient, all state starting at zero):

* :class:`VanillaSGD`: ``θ ← θ − η·g``.
* :class:`MomentumSGD`: ``v ← μ·v − η·g``; ``θ ← θ + v``. With ``nesterov=True``:
  ``θ ← θ + μ·v − η·g`` (using the *new* ``v``). ``torch.optim.SGD`` (dampening 0) keeps
  ``b ← μ·b + g`` and steps ``θ ← θ − η·b`` (Nesterov: ``θ ← θ − η·(g + μ·b)``). By
  induction ``v = −η·b`` at every step for a constant η (both start at zero, and torch's
  first ``b = g`` equals ``−v/η`` after our first step), so ``θ + v = θ − η·b`` and
  ``θ + μ·v − η·g = θ − η·(g + μ·b)``: both variants give torch's iterates up to
  floating-point rounding; only the buffer's sign and scale differ.
* :class:`RMSProp`: ``r ← γ·r + (1−γ)·g²``; ``θ ← θ − η·g / sqrt(r + ε)``. Note ε sits
  *inside* the square root (``torch.optim.RMSprop`` adds it outside); the two agree when ε
  is negligible next to ``r``.
* :class:`Adam`: ``m ← β₁·m + (1−β₁)·g``; ``s ← β₂·s + (1−β₂)·g²``; with ``t`` the
  parameter's step count, ``θ ← θ − η/(1−β₁ᵗ) · m / (sqrt(s)/sqrt(1−β₂ᵗ) + ε)``, i.e.
  bias-corrected moments, written in the same order of operations as ``torch.optim.Adam``.
"""
import abc
import math
import numbers
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Optimizer",
    "VanillaSGD",
    "MomentumSGD",
    "RMSProp",
    "Adam",
    "sgd_update",
    "momentum_update",
    "rmsprop_update",
    "adam_update",
]


# ----------------------------------------------------------------------------------------------
# Pure update rules over lists of tensors (no state of their own; everything is updated in place)
# ----------------------------------------------------------------------------------------------


def _regularised(params: List[Tensor], grads: List[Tensor], reg: float,
                 out: Optional[List[Tensor]] = None) -> List[Tensor]:
    """The gradients of ``loss + ½·reg·‖θ‖²``: ``g + reg·θ`` (grads untouched).

    :param params: Parameters ``θ_i`` (any shapes).
    :param grads: Their gradients ``g_i``, same shapes.
    :param reg: L2 coefficient; 0 returns ``grads`` itself.
    :param out: Tensors shaped like ``params`` to write the result into; None allocates it.
    """
    if reg == 0:
        return grads
    if out is None:
        return torch._foreach_add(grads, params, alpha=reg)
    if _on_cpu(out):
        for o, g, p in zip(out, grads, params):
            torch.add(g, p, alpha=reg, out=o)
    else:
        torch._foreach_copy_(out, grads)
        torch._foreach_add_(out, params, alpha=reg)
    return out


def _plus(tensors: List[Tensor], value: float, out: Optional[List[Tensor]] = None) -> List[Tensor]:
    """``t + value`` for each tensor, into ``out`` (None: new tensors)."""
    if out is None:
        return torch._foreach_add(tensors, value)
    if _on_cpu(out):
        for o, t in zip(out, tensors):
            torch.add(t, value, out=o)
    else:
        torch._foreach_copy_(out, tensors)
        torch._foreach_add_(out, value)
    return out


def _sqrt(tensors: List[Tensor], out: Optional[List[Tensor]] = None) -> List[Tensor]:
    """``sqrt(t)`` for each tensor, into ``out`` (None: new tensors)."""
    if out is None:
        return torch._foreach_sqrt(tensors)
    if _on_cpu(out):
        for o, t in zip(out, tensors):
            torch.sqrt(t, out=o)
    else:
        torch._foreach_copy_(out, tensors)
        torch._foreach_sqrt_(out)
    return out


def _on_cpu(tensors: List[Tensor]) -> bool:
    """Whether a group lives on the CPU.

    There the multi-tensor kernels loop over the tensors anyway, so per-tensor ``out=`` calls
    compute the same in one pass. Elsewhere (CUDA) a copy and an in-place multi-tensor op,
    two fused kernels, are cheaper than a launch per tensor. (The ``_foreach`` ``out``
    overloads would allocate the result and copy it.)
    """
    return tensors[0].device.type == "cpu"


def sgd_update(params: List[Tensor], grads: List[Tensor], *, learn_rate: float, reg: float) -> None:
    """Vanilla SGD, in place: ``θ ← θ − η·(g + reg·θ)``, computed as ``θ·(1 − η·reg) − η·g``.

    :param params: Parameters ``θ_i``, updated in place.
    :param grads: Gradients ``g_i`` with the shapes of ``params``.
    """
    # ====== YOUR CODE: ======
    if reg != 0:
        torch._foreach_mul_(params, 1 - learn_rate * reg)
    torch._foreach_add_(params, grads, alpha=-learn_rate)
    # ====== END YOUR CODE ======


def momentum_update(params: List[Tensor], grads: List[Tensor], velocities: List[Tensor], *,
                    learn_rate: float, reg: float, momentum: float, nesterov: bool) -> None:
    """SGD with (optionally Nesterov) momentum, in place.

    With ``g = grad + reg·θ``: ``v ← μ·v − η·g``, then ``θ ← θ + v`` (classical) or
    ``θ ← θ + μ·v − η·g`` (Nesterov). The regularisation term is applied from ``θ``
    directly, so no temporary ``g`` is allocated.

    :param params: Parameters ``θ_i``, updated in place.
    :param grads: Gradients, shapes of ``params``.
    :param velocities: Velocity buffers ``v_i`` (zeros at first), shapes of ``params``,
        updated in place.
    """
    # ====== YOUR CODE: ======
    torch._foreach_mul_(velocities, momentum)
    torch._foreach_add_(velocities, grads, alpha=-learn_rate)
    if reg != 0:
        torch._foreach_add_(velocities, params, alpha=-learn_rate * reg)
    if not nesterov:
        torch._foreach_add_(params, velocities)
        return
    if reg != 0:
        torch._foreach_mul_(params, 1 - learn_rate * reg)
    torch._foreach_add_(params, velocities, alpha=momentum)
    torch._foreach_add_(params, grads, alpha=-learn_rate)
    # ====== END YOUR CODE ======


def rmsprop_update(params: List[Tensor], grads: List[Tensor], square_avgs: List[Tensor], *,
                   learn_rate: float, reg: float, decay: float, eps: float,
                   work: Optional[Dict[str, List[Tensor]]] = None) -> None:
    """RMSProp, in place: ``r ← γ·r + (1−γ)·g²``; ``θ ← θ − η·g / sqrt(r + ε)``.

    :param params: Parameters ``θ_i``, updated in place.
    :param grads: Gradients, shapes of ``params``.
    :param square_avgs: Moving averages ``r_i`` of the squared gradient (zeros at first),
        updated in place.
    :param work: Scratch tensors shaped like ``params`` under ``"grad"`` (used when
        ``reg != 0``) and ``"denom"``; with them the update allocates nothing. None: allocate.
    """
    work = work or {}
    # ====== YOUR CODE: ======
    grads = _regularised(params, grads, reg, out=work.get("grad"))
    torch._foreach_mul_(square_avgs, decay)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - decay)
    denoms = _plus(square_avgs, eps, out=work.get("denom"))
    torch._foreach_sqrt_(denoms)
    torch._foreach_addcdiv_(params, grads, denoms, value=-learn_rate)
    # ====== END YOUR CODE ======


def adam_update(params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor],
                exp_avg_sqs: List[Tensor], steps: Sequence[int], *, learn_rate: float, reg: float,
                beta1: float, beta2: float, eps: float,
                work: Optional[Dict[str, List[Tensor]]] = None) -> None:
    """Adam with bias correction, in place.

    ``m ← β₁·m + (1−β₁)·g``; ``s ← β₂·s + (1−β₂)·g²``;
    ``θ ← θ − η/(1−β₁ᵗ) · m / (sqrt(s)/sqrt(1−β₂ᵗ) + ε)``.

    :param params: Parameters ``θ_i``, updated in place.
    :param grads: Gradients, shapes of ``params``.
    :param exp_avgs: First moments ``m_i`` (zeros at first), updated in place.
    :param exp_avg_sqs: Second moments ``s_i`` (zeros at first), updated in place.
    :param steps: Step number ``t_i >= 1`` of each parameter, counting this step.
    :param work: Scratch tensors shaped like ``params`` under ``"grad"`` (used when
        ``reg != 0``) and ``"denom"``; with them the update allocates nothing. None: allocate.
    """
    work = work or {}
    # ====== YOUR CODE: ======
    grads = _regularised(params, grads, reg, out=work.get("grad"))
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    step_sizes = [-learn_rate / (1 - beta1 ** t) for t in steps]
    sqrt_corrections = [math.sqrt(1 - beta2 ** t) for t in steps]
    denoms = _sqrt(exp_avg_sqs, out=work.get("denom"))
    torch._foreach_div_(denoms, sqrt_corrections)
    torch._foreach_add_(denoms, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)
    # ====== END YOUR CODE ======


# ----------------------------------------------------------------------------------------------
# Hyperparameter validation
# ----------------------------------------------------------------------------------------------


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return value


def _check_range(name: str, value, low: float, high: float, low_open: bool, high_open: bool) -> float:
    """Return ``value`` as a float, or raise if it lies outside the interval ``low..high``."""
    value = _real(name, value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def _non_negative(name: str, value) -> float:
    return _check_range(name, value, 0.0, math.inf, low_open=False, high_open=True)


def _positive(name: str, value) -> float:
    return _check_range(name, value, 0.0, math.inf, low_open=True, high_open=True)


def _unit_interval(name: str, value, low_open: bool, high_open: bool) -> float:
    return _check_range(name, value, 0.0, 1.0, low_open=low_open, high_open=high_open)


# ----------------------------------------------------------------------------------------------
# Optimizers
# ----------------------------------------------------------------------------------------------


#: On the CPU, update at most about this many values per multi-tensor kernel call.
CPU_CHUNK_NUMEL = 1 << 20


def _work_kinds(reg: float) -> Tuple[str, ...]:
    """Work buffers of RMSProp and Adam: the denominator, and the regularised gradient when
    ``reg`` is not 0."""
    return ("grad", "denom") if reg != 0 else ("denom",)


def _chunk_by_numel(items: Sequence, sizes: Sequence[int], max_numel: float) -> Iterator[list]:
    """Split ``items`` into consecutive runs whose ``sizes`` sum to at most ``max_numel``.

    A single item larger than ``max_numel`` forms a run of its own.
    """
    run, total = [], 0
    for item, size in zip(items, sizes):
        if run and total + size > max_numel:
            yield run
            run, total = [], 0
        run.append(item)
        total += size
    if run:
        yield run


class Optimizer(abc.ABC):
    """Base class for optimizers.

    Subclasses implement :meth:`step`, usually as: collect the parameters that have a
    gradient (:meth:`_active`), fetch their state buffers (:meth:`_state_buffers`), call
    the rule's pure ``*_update`` function.
    """

    def __init__(self, params):
        """
        :param params: A sequence of model parameters to optimize. Can be a
            list of (param, grad) tuples as returned by the Layers, or a list of
            pytorch tensors in which case the grad will be taken from them.
        :raises TypeError: An entry is neither a tensor nor a ``(tensor, tensor)`` pair, or a
            parameter is not floating-point.
        :raises ValueError: The list is empty, or a pair's shapes/devices/dtypes differ.
        """
        if isinstance(params, Tensor):
            raise TypeError("params must be a sequence of tensors or (param, grad) pairs, "
                            "got a single Tensor (wrap it in a list)")
        try:
            entries = list(params)
        except TypeError:
            raise TypeError("params must be a sequence of tensors or (param, grad) pairs, "
                            f"got {type(params).__name__}") from None
        if not entries:
            raise ValueError("params must contain at least one parameter, got an empty sequence")
        # Each entry is (param, grad) or (param, None); None means "read param.grad".
        self._entries: List[Tuple[Tensor, object]] = [
            self._check_entry(i, entry) for i, entry in enumerate(entries)
        ]
        self._check_distinct([p for p, _ in self._entries])
        # Per-parameter state, keyed by the parameter's position; filled on first use.
        self.state: Dict[int, Dict[str, object]] = {}
        # Scratch memory of the update rules (see _work_buffers): one flat buffer per
        # (kind, device, dtype), and the per-parameter views of it for each group seen.
        self._work_flat: Dict[Tuple[str, torch.device, torch.dtype], Tensor] = {}
        self._work_views: Dict[Tuple[str, Tuple[int, ...]], List[Tensor]] = {}

    @staticmethod
    def _check_entry(index: int, entry) -> Tuple[Tensor, object]:
        if isinstance(entry, Tensor):
            Optimizer._check_floating(index, entry)
            return entry, None
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"params[{index}] must be a Tensor or a (param, grad) pair, "
                            f"got {type(entry).__name__}")
        param, grad = entry
        if not isinstance(param, Tensor) or not isinstance(grad, Tensor):
            raise TypeError(f"params[{index}] must be a pair of Tensors, got "
                            f"({type(param).__name__}, {type(grad).__name__})")
        Optimizer._check_floating(index, param)
        for what in ("shape", "dtype", "device"):
            if getattr(param, what) != getattr(grad, what):
                expected, got = getattr(param, what), getattr(grad, what)
                if what == "shape":
                    expected, got = tuple(expected), tuple(got)
                raise ValueError(f"params[{index}]: grad {what} must match the param's "
                                 f"{what} {expected}, got {got}")
        return param, grad

    @staticmethod
    def _check_distinct(params: Sequence[Tensor]) -> None:
        """Refuse a parameter given twice (it would be updated twice per step).

        The same tensor twice, or two tensors starting at the same memory (e.g. ``w`` and
        ``w.view(-1)``), counts as one parameter given twice.

        :raises ValueError: Naming both positions.
        """
        seen: Dict[tuple, int] = {}
        for i, p in enumerate(params):
            if p.numel() == 0:
                continue  # empty tensors own no memory and need no update
            try:
                key = (p.device, p.data_ptr())
            except RuntimeError:  # a tensor without storage (e.g. while tracing): by identity
                key = ("id", id(p))
            if key in seen:
                j = seen[key]
                same = "the same tensor as" if p is params[j] else "a view of the same memory as"
                raise ValueError(f"params[{i}] (shape {tuple(p.shape)}) is {same} params[{j}]; "
                                 f"give every parameter once (it would be updated twice per "
                                 f"step)")
            seen[key] = i

    @staticmethod
    def _check_floating(index: int, param: Tensor) -> None:
        """Raise a TypeError unless ``param`` is floating-point (an update rule needs that)."""
        if not param.is_floating_point():
            raise TypeError(f"params[{index}] must be a floating-point tensor, got dtype "
                            f"{param.dtype}")

    @property
    def params(self) -> List[Tuple[Tensor, Tensor]]:
        """
        :return: A sequence of parameter tuples, each tuple containing
            (param_data, param_grad). The data should be updated in-place
            according to the grad. For tensors given without a separate gradient the
            grad is their current ``.grad`` (possibly None).
        """
        return [(p, p.grad if g is None else g) for p, g in self._entries]

    def zero_grad(self):
        """Sets the gradient of the optimized parameters to zero (in place).

        Gradients that do not exist yet (``.grad is None``) stay None.
        """
        grads = [g for _, g in self.params if g is not None]
        if grads:
            with torch.no_grad():
                torch._foreach_zero_(grads)

    @abc.abstractmethod
    def step(self):
        """Updates all the registered parameter values based on their gradients."""

    def _active(self) -> Tuple[List[int], List[Tensor], List[Tensor]]:
        """The parameters that currently have a gradient.

        :return: ``(indices, params, grads)``, three aligned lists.
        :raises ValueError: A tensor's ``.grad`` does not have its shape.
        """
        indices, params, grads = [], [], []
        for i, (p, g) in enumerate(self.params):
            if g is None:
                continue
            if g.shape != p.shape:
                raise ValueError(f"params[{i}]: grad shape {tuple(g.shape)} does not match "
                                 f"the param's shape {tuple(p.shape)}")
            indices.append(i)
            params.append(p)
            grads.append(g)
        return indices, params, grads

    def _groups(self) -> Iterator[Tuple[List[int], List[Tensor], List[Tensor]]]:
        """The active parameters in batches suited to one multi-tensor kernel call each.

        Parameters are grouped by (device, dtype), as the fast ``_foreach`` kernels require.
        On the CPU a group is further cut into chunks of about :data:`CPU_CHUNK_NUMEL`
        values: a rule's passes over one chunk then stay in the cache, and the work buffers
        (shared by all chunks, see :meth:`_work_buffers`) are only as large as a chunk.

        :return: An iterator of aligned ``(indices, params, grads)`` lists.
        """
        groups: Dict[Tuple[torch.device, torch.dtype], List[int]] = {}
        indices, params, grads = self._active()
        for k, p in enumerate(params):
            groups.setdefault((p.device, p.dtype), []).append(k)
        for (device, _), members in groups.items():
            max_numel = CPU_CHUNK_NUMEL if device.type == "cpu" else math.inf
            for chunk in _chunk_by_numel(members, [params[k].numel() for k in members], max_numel):
                yield ([indices[k] for k in chunk], [params[k] for k in chunk],
                       [grads[k] for k in chunk])

    def _state_buffers(self, indices: Sequence[int], params: Sequence[Tensor],
                       name: str) -> List[Tensor]:
        """Per-parameter buffers named ``name``, created as zeros on first use.

        :return: One buffer per index, each with the shape of its param.
        """
        buffers = []
        for i, p in zip(indices, params):
            state = self.state.setdefault(i, {})
            if name not in state:
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buffers.append(state[name])
        return buffers

    #: Cached views of the work buffers are dropped when there are more groups than this
    #: (the set of parameters with a gradient keeps changing).
    _MAX_CACHED_GROUPS = 256

    def _work_buffers(self, kind: str, indices: Sequence[int],
                      params: Sequence[Tensor]) -> List[Tensor]:
        """Scratch tensors shaped like ``params``, for an update rule's temporaries.

        They are views of one flat buffer per ``(kind, device, dtype)``, sized to the largest
        group and shared by all groups (they are updated one after the other), so after the
        first step nothing is allocated. A non-contiguous parameter (e.g. a channels-last
        convolution weight) gets a buffer of its own with its strides, so that the rule's
        multi-tensor kernels see matching layouts.

        :return: One tensor per parameter; its contents are undefined (the rule overwrites it).
        """
        key = (kind, tuple(indices))
        views = self._work_views.get(key)
        if views is not None:
            return views
        dense = [p for p in params if p.is_contiguous()]
        total = sum(p.numel() for p in dense)
        flat_key = (kind, params[0].device, params[0].dtype)
        flat = self._work_flat.get(flat_key)
        if flat is None or flat.numel() < total:
            flat = torch.empty(total, device=params[0].device, dtype=params[0].dtype)
            self._work_flat[flat_key] = flat
            # Views of the old, smaller buffer would keep it alive: make them again.
            self._work_views = {k: v for k, v in self._work_views.items() if k[0] != kind}
        if len(self._work_views) >= self._MAX_CACHED_GROUPS:
            self._work_views.clear()
        views, offset = [], 0
        for p in params:
            if p.is_contiguous():
                views.append(flat[offset:offset + p.numel()].view(p.shape))
                offset += p.numel()
            else:
                views.append(torch.empty_like(p, memory_format=torch.preserve_format))
        self._work_views[key] = views
        return views

    def _work(self, indices: Sequence[int], params: Sequence[Tensor],
              kinds: Sequence[str]) -> Dict[str, List[Tensor]]:
        """The ``work`` argument of an update rule: ``{kind: _work_buffers(kind, ...)}``."""
        return {kind: self._work_buffers(kind, indices, params) for kind in kinds}

    def state_dict(self) -> Dict[str, object]:
        """The per-parameter state, e.g. to checkpoint a training run.

        :return: ``{"state": {param index: {name: tensor or int}}}`` (tensors are the live
            buffers, not copies; ``torch.save`` copies them).
        """
        return {"state": {i: dict(s) for i, s in self.state.items()}}

    def load_state_dict(self, state_dict: Dict[str, object]) -> None:
        """Restore state saved by :meth:`state_dict` from an optimizer over the same params.

        :raises ValueError: The state does not fit this optimizer's parameters.
        """
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with a "
                             f"'state' dict, got {type(state_dict).__name__}")
        restored = {}
        for i, entry in state_dict["state"].items():
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not (
                    0 <= i < len(self._entries)):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for param index "
                                 f"{i!r}, but there are {len(self._entries)} params")
            i = int(i)
            param = self._entries[i][0]
            restored[i] = {}
            for name, value in entry.items():
                if isinstance(value, Tensor):
                    if value.shape != param.shape:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: state "
                                         f"{name!r} of params[{i}] has shape {tuple(value.shape)}, "
                                         f"the param has {tuple(param.shape)}")
                    value = value.to(device=param.device, dtype=param.dtype, copy=True)
                restored[i][name] = value
        self.state = restored

    def _hyperparameters(self) -> Dict[str, object]:
        """Hyperparameters shown by ``repr``, in display order."""
        return {}

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self._hyperparameters().items())
        sep = ", " if hp else ""
        return f"{type(self).__name__}({hp}{sep}num_params={len(self._entries)})"


class VanillaSGD(Optimizer):
    """Plain SGD with L2 regularisation: ``θ ← θ − η·(g + reg·θ)``."""

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 0):
        """
        :param params: See :class:`Optimizer`.
        :param learn_rate: Learning rate η >= 0.
        :param reg: L2 regularisation coefficient >= 0.
        """
        super().__init__(params)
        self.learn_rate = _non_negative("learn_rate", learn_rate)
        self.reg = _non_negative("reg", reg)

    @torch.no_grad()
    def step(self):
        for _, params, grads in self._groups():
            sgd_update(params, grads, learn_rate=self.learn_rate, reg=self.reg)

    def _hyperparameters(self):
        return dict(learn_rate=self.learn_rate, reg=self.reg)


class MomentumSGD(Optimizer):
    """SGD with momentum (optionally Nesterov momentum) and L2 regularisation.

    ``v ← μ·v − η·g``; ``θ ← θ + v``, or with ``nesterov=True`` ``θ ← θ + μ·v − η·g``.
    The iterates equal ``torch.optim.SGD(lr=η, momentum=μ, weight_decay=reg,
    nesterov=...)``; see the module docstring for the correspondence.
    """

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 0, momentum: float = 0.9,
                 nesterov: bool = False):
        """
        :param params: See :class:`Optimizer`.
        :param learn_rate: Learning rate η >= 0.
        :param reg: L2 regularisation coefficient >= 0.
        :param momentum: Momentum μ in [0, 1).
        :param nesterov: Use Nesterov's look-ahead update.
        """
        super().__init__(params)
        self.learn_rate = _non_negative("learn_rate", learn_rate)
        self.reg = _non_negative("reg", reg)
        self.momentum = _unit_interval("momentum", momentum, low_open=False, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__} ({nesterov!r})")
        self.nesterov = bool(nesterov)

    @torch.no_grad()
    def step(self):
        for indices, params, grads in self._groups():
            velocities = self._state_buffers(indices, params, "velocity")
            momentum_update(params, grads, velocities, learn_rate=self.learn_rate, reg=self.reg,
                            momentum=self.momentum, nesterov=self.nesterov)

    def _hyperparameters(self):
        return dict(learn_rate=self.learn_rate, reg=self.reg, momentum=self.momentum,
                    nesterov=self.nesterov)


class RMSProp(Optimizer):
    """RMSProp: ``r ← γ·r + (1−γ)·g²``; ``θ ← θ − η·g / sqrt(r + ε)`` (ε inside the root)."""

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 0, decay: float = 0.99,
                 eps: float = 1e-8):
        """
        :param params: See :class:`Optimizer`.
        :param learn_rate: Learning rate η >= 0.
        :param reg: L2 regularisation coefficient >= 0.
        :param decay: Decay γ of the squared-gradient average, in (0, 1).
        :param eps: Stabiliser ε > 0 added to the average before the square root.
        """
        super().__init__(params)
        self.learn_rate = _non_negative("learn_rate", learn_rate)
        self.reg = _non_negative("reg", reg)
        self.decay = _unit_interval("decay", decay, low_open=True, high_open=True)
        self.eps = _positive("eps", eps)

    @torch.no_grad()
    def step(self):
        for indices, params, grads in self._groups():
            square_avgs = self._state_buffers(indices, params, "square_avg")
            rmsprop_update(params, grads, square_avgs, learn_rate=self.learn_rate, reg=self.reg,
                           decay=self.decay, eps=self.eps,
                           work=self._work(indices, params, _work_kinds(self.reg)))

    def _hyperparameters(self):
        return dict(learn_rate=self.learn_rate, reg=self.reg, decay=self.decay, eps=self.eps)


class Adam(Optimizer):
    """Adam with bias-corrected moments and L2 regularisation added to the gradient.

    Matches ``torch.optim.Adam(lr=η, betas=(β₁, β₂), eps=ε, weight_decay=reg)``.
    """

    def __init__(self, params, learn_rate: float = 1e-3, reg: float = 0, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8):
        """
        :param params: See :class:`Optimizer`.
        :param learn_rate: Learning rate η >= 0.
        :param reg: L2 regularisation coefficient >= 0.
        :param beta1: Decay β₁ of the first moment, in [0, 1).
        :param beta2: Decay β₂ of the second moment, in [0, 1).
        :param eps: Stabiliser ε > 0 added to the corrected root second moment.
        """
        super().__init__(params)
        self.learn_rate = _non_negative("learn_rate", learn_rate)
        self.reg = _non_negative("reg", reg)
        self.beta1 = _unit_interval("beta1", beta1, low_open=False, high_open=True)
        self.beta2 = _unit_interval("beta2", beta2, low_open=False, high_open=True)
        self.eps = _positive("eps", eps)

    @torch.no_grad()
    def step(self):
        for indices, params, grads in self._groups():
            exp_avgs = self._state_buffers(indices, params, "exp_avg")
            exp_avg_sqs = self._state_buffers(indices, params, "exp_avg_sq")
            steps = []
            for i in indices:
                self.state[i]["step"] = self.state[i].get("step", 0) + 1
                steps.append(self.state[i]["step"])
            adam_update(params, grads, exp_avgs, exp_avg_sqs, steps, learn_rate=self.learn_rate,
                        reg=self.reg, beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                        work=self._work(indices, params, _work_kinds(self.reg)))

    def _hyperparameters(self):
        return dict(learn_rate=self.learn_rate, reg=self.reg, beta1=self.beta1,
                    beta2=self.beta2, eps=self.eps)
