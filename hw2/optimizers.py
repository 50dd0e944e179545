"""From-scratch gradient-based optimizers with an API modelled on ``torch.optim``.

Each rule is a short loop over the parameters, like ``torch.optim``'s single-tensor path.
L2 regularisation ``½·reg·‖θ‖²`` enters every rule as the gradient ``g = grad + reg·θ``
(torch's ``weight_decay``); the grad tensors are never modified. η is the learning rate:

* :class:`VanillaSGD`: ``θ ← θ − η·g``.
* :class:`MomentumSGD`: ``v ← μ·v − η·g``; ``θ ← θ + v`` (Nesterov: ``θ ← θ + μ·v − η·g``),
  torch's iterates (its buffer ``b ← μ·b + g`` is ``−v/η`` at every step for a constant η).
* :class:`RMSProp`: ``r ← γ·r + (1−γ)·g²``; ``θ ← θ − η·g / sqrt(r + ε)`` (torch: ε outside).
* :class:`Adam`: ``m ← β₁·m + (1−β₁)·g``; ``s ← β₂·s + (1−β₂)·g²``; at step ``t``
  ``θ ← θ − η/(1−β₁ᵗ) · m / (sqrt(s)/sqrt(1−β₂ᵗ) + ε)``, in torch's order of operations.
"""
import abc
import math
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from hw2.validation import check_bool, check_interval, check_real, is_int

__all__ = ["Optimizer", "VanillaSGD", "MomentumSGD", "RMSProp", "Adam"]


class Optimizer(abc.ABC):
    """Base class: the parameters, ``zero_grad``, and the per-parameter state ``state[i]`` of
    ``params[i]`` (a dict of tensors and ints) that checkpoints save."""

    def __init__(self, params):
        """:param params: ``(param, grad)`` pairs as the Layers return them, or tensors whose
        ``.grad`` is read at each step (e.g. ``nn.Module.parameters()``)."""
        if isinstance(params, Tensor) or not hasattr(params, "__iter__"):
            got = "a single Tensor" if isinstance(params, Tensor) else type(params).__name__
            raise TypeError(f"params must be a sequence of tensors or (param, grad) pairs, "
                            f"got {got}")
        # Each entry is (param, grad), or (param, None) for "read param.grad at step time".
        self._entries = [_checked_entry(i, entry) for i, entry in enumerate(params)]
        if not self._entries:
            raise ValueError("params must contain at least one parameter, got an empty sequence")
        seen: Dict[tuple, int] = {}  # where each param's memory starts: none may come twice
        for i, p in enumerate(p for p, _ in self._entries):
            j = seen.setdefault((p.device, p.data_ptr()), i) if p.numel() else i
            if j != i:
                raise ValueError(f"params[{i}] (shape {tuple(p.shape)}) shares its memory with "
                                 f"params[{j}]; give every parameter once")
        self.state: Dict[int, Dict[str, object]] = {i: {} for i in range(len(self._entries))}

    @property
    def params(self) -> List[Tuple[Tensor, Tensor]]:
        """``(param, grad)`` pairs; a step updates each param in place from its grad."""
        return [(p, p.grad if g is None else g) for p, g in self._entries]

    def zero_grad(self):
        """Zero every gradient this optimizer holds, in place, ready for the next backward."""
        for _, dp in self.params:
            if dp is not None:
                dp.zero_()

    @abc.abstractmethod
    def step(self):
        """Move every parameter one update against its gradient (in place)."""

    def state_dict(self) -> Dict[str, object]:
        """``{"state": {param index: {name: tensor or int}}}`` (live buffers, not copies)."""
        return {"state": {i: dict(s) for i, s in self.state.items()}}

    def load_state_dict(self, state_dict: Dict[str, object]) -> None:
        """Restore copies of what :meth:`state_dict` saved (ValueError if it does not fit)."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            raise ValueError(f"{name}: expected a dict with a 'state' dict, got "
                             f"{type(state_dict).__name__}")
        restored = {}
        for i, entry in state_dict["state"].items():
            if not (is_int(i) and 0 <= i < len(self._entries) and isinstance(entry, dict)):
                raise ValueError(f"{name}: state for param index {i!r}, but there are "
                                 f"{len(self._entries)} params")
            p = self._entries[i][0]
            for key, value in entry.items():
                if isinstance(value, Tensor) and value.shape != p.shape:
                    raise ValueError(f"{name}: state {key!r} of params[{i}] has shape "
                                     f"{tuple(value.shape)}, the param has {tuple(p.shape)}")
            restored[int(i)] = {k: v.to(p.device, p.dtype, copy=True)
                                if isinstance(v, Tensor) else v for k, v in entry.items()}
        self.state.update(restored)

    def __repr__(self) -> str:  # the hyperparameters: public attributes other than the state
        shown = [f"{k}={v!r}" for k, v in vars(self).items() if k[0] != "_" and k != "state"]
        return f"{type(self).__name__}({', '.join(shown + [f'num_params={len(self._entries)}'])})"


def _checked_entry(index: int, entry) -> Tuple[Tensor, object]:
    """``params[index]`` as ``(param, grad)``, or ``(param, None)`` for a bare tensor."""
    pair = isinstance(entry, (tuple, list)) and len(entry) == 2
    if not (isinstance(entry, Tensor) or pair and all(isinstance(t, Tensor) for t in entry)):
        got = f"({', '.join(type(t).__name__ for t in entry)})" if pair else type(entry).__name__
        raise TypeError(f"params[{index}] must be a Tensor or a (param, grad) pair of Tensors, "
                        f"got {got}")
    param, grad = (entry, None) if isinstance(entry, Tensor) else entry
    if not param.is_floating_point():
        raise TypeError(f"params[{index}] must be a floating-point tensor, got dtype "
                        f"{param.dtype}")
    if grad is not None and grad.shape != param.shape:  # (it would broadcast silently)
        raise ValueError(f"params[{index}]: grad shape must match the param's shape "
                         f"{tuple(param.shape)}, got {tuple(grad.shape)}")
    return param, grad


class VanillaSGD(Optimizer):
    """Plain SGD: ``θ ← θ − η·(grad + reg·θ)``, learning rate η >= 0, L2 coefficient reg >= 0."""

    def __init__(self, params, learn_rate=1e-3, reg=0):
        super().__init__(params)
        self.learn_rate = check_real("learn_rate", learn_rate, minimum=0)
        self.reg = check_real("reg", reg, minimum=0)

    @torch.no_grad()
    def step(self):
        for p, dp in self.params:
            if dp is None:
                continue
            # TODO: Add the regularisation's gradient to dp (a new tensor), then update p.
            # ====== YOUR CODE: ======
            dp = dp.add(p, alpha=self.reg)
            p.add_(dp, alpha=-self.learn_rate)
            # ====== END YOUR CODE ======


class MomentumSGD(Optimizer):
    """SGD with momentum μ in [0, 1), optionally Nesterov's; the iterates equal
    ``torch.optim.SGD(lr=learn_rate, momentum=μ, weight_decay=reg, nesterov=nesterov)``."""

    def __init__(self, params, learn_rate=1e-3, reg=0, momentum=0.9, nesterov=False):
        super().__init__(params)
        self.learn_rate = check_real("learn_rate", learn_rate, minimum=0)
        self.reg = check_real("reg", reg, minimum=0)
        self.momentum = check_interval("momentum", momentum, 0, 1, high_open=True)
        self.nesterov = check_bool("nesterov", nesterov)
        # TODO: Create a zero velocity for every parameter, as self.state[i]["velocity"].
        # ====== YOUR CODE: ======
        for i, (p, _) in enumerate(self.params):
            self.state[i]["velocity"] = torch.zeros_like(p)
        # ====== END YOUR CODE ======

    @torch.no_grad()
    def step(self):
        for i, (p, dp) in enumerate(self.params):
            if dp is None:
                continue
            if self.nesterov:
                self._nesterov_step(p, dp, self.state[i]["velocity"])
                continue
            # TODO: With g = dp + reg·p, update v ← μ·v − η·g, then p ← p + v (in place).
            # ====== YOUR CODE: ======
            v = self.state[i]["velocity"]
            dp = dp.add(p, alpha=self.reg)
            v.mul_(self.momentum).add_(dp, alpha=-self.learn_rate)
            p.add_(v)
            # ====== END YOUR CODE ======

    def _nesterov_step(self, p: Tensor, dp: Tensor, v: Tensor) -> None:
        """Nesterov's look-ahead: the velocity as in :meth:`step`, then ``θ ← θ + μ·v − η·g``."""
        dp = dp.add(p, alpha=self.reg)
        v.mul_(self.momentum).add_(dp, alpha=-self.learn_rate)
        p.add_(v, alpha=self.momentum).add_(dp, alpha=-self.learn_rate)


class RMSProp(Optimizer):
    """RMSProp with the squared gradient's decay γ in (0, 1) and ε > 0 (inside the root)."""

    def __init__(self, params, learn_rate=1e-3, reg=0, decay=0.99, eps=1e-8):
        super().__init__(params)
        self.learn_rate = check_real("learn_rate", learn_rate, minimum=0)
        self.reg = check_real("reg", reg, minimum=0)
        self.decay = check_interval("decay", decay, 0, 1, low_open=True, high_open=True)
        self.eps = check_real("eps", eps, minimum=0, strict=True)
        # TODO: Create a zero average of squared gradients, self.state[i]["square_avg"].
        # ====== YOUR CODE: ======
        for i, (p, _) in enumerate(self.params):
            self.state[i]["square_avg"] = torch.zeros_like(p)
        # ====== END YOUR CODE ======

    @torch.no_grad()
    def step(self):
        for i, (p, dp) in enumerate(self.params):
            if dp is None:
                continue
            # TODO: With g = dp + reg·p, update r ← γ·r + (1−γ)·g², then p ← p − η·g/√(r+ε).
            # ====== YOUR CODE: ======
            r = self.state[i]["square_avg"]
            dp = dp.add(p, alpha=self.reg)
            r.mul_(self.decay).addcmul_(dp, dp, value=1 - self.decay)
            p.addcdiv_(dp, r.add(self.eps).sqrt_(), value=-self.learn_rate)
            # ====== END YOUR CODE ======


class Adam(Optimizer):
    """Adam with moment decays β₁, β₂ in [0, 1) and ε > 0; matches
    ``torch.optim.Adam(lr=learn_rate, betas=(beta1, beta2), eps=eps, weight_decay=reg)``."""

    def __init__(self, params, learn_rate=1e-3, reg=0, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params)
        self.learn_rate = check_real("learn_rate", learn_rate, minimum=0)
        self.reg = check_real("reg", reg, minimum=0)
        self.beta1 = check_interval("beta1", beta1, 0, 1, high_open=True)
        self.beta2 = check_interval("beta2", beta2, 0, 1, high_open=True)
        self.eps = check_real("eps", eps, minimum=0, strict=True)
        for i, (p, _) in enumerate(self.params):
            self.state[i].update(step=0, exp_avg=torch.zeros_like(p),
                                 exp_avg_sq=torch.zeros_like(p))

    @torch.no_grad()
    def step(self):
        for i, (p, dp) in enumerate(self.params):
            if dp is None:
                continue
            m, s = self.state[i]["exp_avg"], self.state[i]["exp_avg_sq"]
            t = self.state[i]["step"] = self.state[i]["step"] + 1  # this parameter's steps so far
            dp = dp.add(p, alpha=self.reg)
            m.lerp_(dp, 1 - self.beta1)
            s.mul_(self.beta2).addcmul_(dp, dp, value=1 - self.beta2)
            denom = (s.sqrt() / math.sqrt(1 - self.beta2 ** t)).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.learn_rate / (1 - self.beta1 ** t))
