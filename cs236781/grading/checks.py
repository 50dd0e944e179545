"""The judge: the inputs each part's probe gets, and the checks of its outputs.

Everything here runs in the grader's process and never imports the student's code. A check
receives what the probe wrote (``results``: case name -> dict of tensors and plain values)
and the inputs the grader made, computes the expected values with its own oracle (torch
autograd in float64, ``torch.optim`` or the update rule written out, plain ``torch.nn``
networks built here, arithmetic, scikit-learn's ROC curve) and returns a :class:`Verdict`:
the fraction of the item earned and why. Checks are registered by name in :data:`CHECKS`;
the rubric says which item uses which check and for how many points.
"""
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from cs236781.grading import oracles

F64 = torch.float64
#: float64 comparisons: tight, but loose enough for a different (correct) formula.
TOL64 = dict(rtol=1e-6, atol=1e-8)
#: float32 network outputs against the plain build in the same torch.
TOL32 = dict(rtol=1e-4, atol=1e-4)


class CaseError(Exception):
    """A case the probe did not complete: its message is the reason (the student's error)."""


@dataclass
class Verdict:
    """An item's result: ``fraction`` of its points in [0, 1] and the lines saying why."""

    fraction: float
    lines: List[str] = field(default_factory=list)

    def __repr__(self):
        return f"Verdict({self.fraction:.2f})"


class Parts:
    """Sub-checks of one item, each with a weight; the item earns the passing weights."""

    def __init__(self):
        self.total = self.earned = 0.0
        self.lines: List[str] = []

    def check(self, label: str, problem: Optional[str], weight: float = 1.0) -> bool:
        """Record one sub-check: ``problem`` is None when it passed, else why it failed."""
        self.total += weight
        if problem is None:
            self.earned += weight
            self.lines.append(f"ok: {label}")
            return True
        self.lines.append(f"FAILED: {label}: {problem}")
        return False

    def verdict(self) -> Verdict:
        return Verdict(self.earned / self.total if self.total else 0.0, self.lines)

    def __repr__(self):
        return f"Parts({self.earned}/{self.total})"


def compare(received, expected: Tensor, rtol: float, atol: float) -> Optional[str]:
    """None when ``received`` is a tensor close to ``expected``, else expected vs received."""
    if not isinstance(received, Tensor):
        return f"expected a tensor of shape {tuple(expected.shape)}, received {type(received).__name__}"
    if tuple(received.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, received {tuple(received.shape)}"
    if not received.is_floating_point() and expected.is_floating_point():
        return f"expected a floating-point tensor, received dtype {received.dtype}"
    got, want = received.to(F64), expected.to(F64)
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        return "received NaN or infinite values"
    diff = (got - want).abs()
    bad = diff > atol + rtol * want.abs()
    if not bad.any():
        return None
    i = int(diff.flatten().argmax())
    return (f"max difference {float(diff.flatten()[i]):.3g} (at flat index {i}: expected "
            f"{float(want.flatten()[i]):.6g}, received {float(got.flatten()[i]):.6g})")


def equal(received, expected, what: str = "value") -> Optional[str]:
    return None if received == expected else f"expected {what} {expected!r}, received {received!r}"


def case(results: Dict[str, dict], name: str) -> dict:
    """The outputs of one case, or :class:`CaseError` naming why there are none."""
    found = results.get(name)
    if found is None:
        raise CaseError("no output (the probe did not reach this case)")
    if not isinstance(found, dict):
        raise CaseError("unreadable output")
    if "error" in found:
        raise CaseError(str(found["error"]))
    return found


CHECKS: Dict[str, Callable[[Dict[str, dict], dict], Verdict]] = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ============================================================ Part 1

def inputs_part1() -> dict:
    g = _gen(1)
    x = torch.randn(4, 3, 5, generator=g, dtype=F64) * 2
    dout = torch.randn(4, 3, 5, generator=g, dtype=F64)
    elementwise = {"x": x, "dout": dout}
    lin = {"w": torch.randn(4, 6, generator=g, dtype=F64), "b": torch.randn(4, generator=g, dtype=F64),
           "x": torch.randn(7, 6, generator=g, dtype=F64), "dout": torch.randn(7, 4, generator=g, dtype=F64),
           "x2": torch.randn(5, 6, generator=g, dtype=F64), "dout2": torch.randn(5, 4, generator=g, dtype=F64)}
    scores = torch.randn(10, 5, generator=g, dtype=F64) * 3
    ce = {"x": scores, "x_big": scores * 1000, "y": torch.randint(0, 5, (10,), generator=g)}
    seq = {"w1": torch.randn(6, generator=g, dtype=F64), "w2": torch.randn(6, generator=g, dtype=F64),
           "x": torch.randn(5, 6, generator=g, dtype=F64), "dout": torch.randn(5, 6, generator=g, dtype=F64)}
    return {"leakyrelu": dict(elementwise, alpha=0.1), "relu": elementwise, "sigmoid": elementwise,
            "tanh": elementwise, "linear_init": {"in": 300, "out": 200, "wstd": 0.2},
            "linear": lin, "cross_entropy": ce, "sequential": seq}


def _autograd(fn, *tensors, dout=None):
    """fn's output and the gradients of sum(out * dout) w.r.t. ``tensors`` (float64 copies)."""
    leaves = [x.detach().clone().requires_grad_(True) for x in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_outputs=dout)
    return out.detach(), [g.detach() for g in grads]


def _elementwise_check(results, inputs, name, fn, repr_lower=None) -> Verdict:
    got = case(results, name)
    inp = inputs[name]
    out, (dx,) = _autograd(fn, inp["x"], dout=inp["dout"])
    p = Parts()
    p.check("forward", compare(got.get("out"), out, **TOL64))
    p.check("backward (dx)", compare(got.get("dx"), dx, **TOL64))
    if repr_lower is not None:
        p.check("str()", equal(str(got.get("repr", "")).lower(), repr_lower, "str(layer).lower()"), 0.2)
    return p.verdict()


@check("leakyrelu")
def _leakyrelu(results, inputs):
    alpha = inputs["leakyrelu"]["alpha"]
    return _elementwise_check(results, inputs, "leakyrelu",
                              lambda x: torch.nn.functional.leaky_relu(x, alpha))


@check("relu")
def _relu(results, inputs):
    return _elementwise_check(results, inputs, "relu", torch.relu, "relu")


@check("sigmoid")
def _sigmoid(results, inputs):
    return _elementwise_check(results, inputs, "sigmoid", torch.sigmoid, "sigmoid")


@check("tanh")
def _tanh(results, inputs):
    return _elementwise_check(results, inputs, "tanh", torch.tanh, "tanh")


@check("linear_init")
def _linear_init(results, inputs):
    got = case(results, "linear_init")
    spec = inputs["linear_init"]
    p = Parts()
    w, b = got.get("w"), got.get("b")
    shape_w, shape_b = (spec["out"], spec["in"]), (spec["out"],)
    p.check("w shape (out_features, in_features)", equal(tuple(getattr(w, "shape", ())), shape_w, "shape"))
    p.check("b shape (out_features,)", equal(tuple(getattr(b, "shape", ())), shape_b, "shape"))
    if isinstance(w, Tensor) and w.numel() > 1:
        std = float(w.to(F64).std())
        p.check(f"w ~ N(0, wstd^2) with wstd={spec['wstd']}",
                None if abs(std - spec["wstd"]) < 0.05 * spec["wstd"] and abs(float(w.mean())) < 0.01
                else f"expected std {spec['wstd']} and mean 0, received std {std:.4g}, mean {float(w.mean()):.3g}")
    else:
        p.check("w ~ N(0, wstd^2)", "w is missing")
    for name in ("dw", "db"):
        g, ref = got.get(name), (w if name == "dw" else b)
        ok = isinstance(g, Tensor) and isinstance(ref, Tensor) and g.shape == ref.shape and not g.any()
        p.check(f"{name} starts at zero, shaped like {name[1:]}", None if ok else "it does not")
    p.check("params() returns [(w, dw), (b, db)]",
            equal(got.get("pairs"), [[True, True], [True, True]], "identity of the pairs"))
    return p.verdict()


@check("linear")
def _linear(results, inputs):
    got = case(results, "linear")
    inp = inputs["linear"]
    fn = lambda x, w, b: x @ w.T + b  # noqa: E731
    out, (dx, dw, db) = _autograd(fn, inp["x"], inp["w"], inp["b"], dout=inp["dout"])
    _, (_, dw2, db2) = _autograd(fn, inp["x2"], inp["w"], inp["b"], dout=inp["dout2"])
    p = Parts()
    p.check("forward", compare(got.get("out"), out, **TOL64))
    p.check("backward dx", compare(got.get("dx"), dx, **TOL64))
    p.check("backward dw", compare(got.get("dw"), dw, **TOL64))
    p.check("backward db", compare(got.get("db"), db, **TOL64))
    p.check("dw, db accumulate over two backward calls",
            compare(got.get("dw_acc"), dw + dw2, **TOL64) or compare(got.get("db_acc"), db + db2, **TOL64))
    return p.verdict()


@check("cross_entropy")
def _cross_entropy(results, inputs):
    got = case(results, "cross_entropy")
    inp = inputs["cross_entropy"]
    p = Parts()
    for key, label in (("x", "scores"), ("x_big", "scores x1000 (numerical stability)")):
        loss, (dx,) = _autograd(lambda x: nn.functional.cross_entropy(x, inp["y"]), inp[key])
        p.check(f"loss on {label}", compare(torch.tensor(got.get(key + "_loss", float("nan")), dtype=F64),
                                            loss, **TOL64))
        p.check(f"dx on {label}", compare(got.get(key + "_dx"), dx, **TOL64))
    return p.verdict()


@check("sequential")
def _sequential(results, inputs):
    got = case(results, "sequential")
    inp = inputs["sequential"]
    fn = lambda x, w1, w2: (x * w1) ** 2 * w2  # noqa: E731
    out, (dx, dw1, dw2) = _autograd(fn, inp["x"], inp["w1"], inp["w2"], dout=inp["dout"])
    p = Parts()
    p.check("forward chains the layers in order", compare(got.get("out"), out, **TOL64))
    p.check("backward runs in reverse (dx)", compare(got.get("dx"), dx, **TOL64))
    p.check("each layer's parameter gradients", compare(got.get("dw1"), dw1, **TOL64)
            or compare(got.get("dw2"), dw2, **TOL64))
    p.check("params() concatenates the layers' pairs",
            equal(got.get("same_params"), [True, True], "identity of the pairs"))
    p.check("len() and indexing", equal([got.get("len"), got.get("middle_is_square")], [3, True],
                                        "[len(seq), seq[1] is the second layer]"), 0.5)
    return p.verdict()


@check("mlp_layers")
def _mlp_layers(results, inputs):
    got = case(results, "mlp_layers")
    expected = {
        "plain": [["Linear", [5, 6]], ["ReLU"], ["Linear", [4, 5]], ["ReLU"], ["Linear", [3, 4]]],
        "dropout": [["Linear", [5, 6]], ["Sigmoid"], ["Dropout", 0.25], ["Linear", [4, 5]],
                    ["Sigmoid"], ["Dropout", 0.25], ["Linear", [3, 4]]],
    }
    p = Parts()
    p.check("MLP(6, 3, [5, 4], 'relu'): Linear -> ReLU -> Linear -> ReLU -> Linear",
            equal(got.get("plain"), repr(expected["plain"]), "layers"))
    p.check("MLP(6, 3, [5, 4], 'sigmoid', dropout=0.25): a Dropout after each activation",
            equal(got.get("dropout"), repr(expected["dropout"]), "layers"))
    return p.verdict()


# ============================================================ Part 2

OPTIMIZER_RUNS = {
    "vanilla_reg": ("VanillaSGD", dict(learn_rate=0.3, reg=0.1)),
    "vanilla_noreg": ("VanillaSGD", dict(learn_rate=0.3, reg=0)),
    "momentum_reg": ("MomentumSGD", dict(learn_rate=0.2, reg=0.05, momentum=0.8)),
    "momentum_noreg": ("MomentumSGD", dict(learn_rate=0.2, reg=0, momentum=0.8)),
    "rmsprop_reg": ("RMSProp", dict(learn_rate=0.05, reg=0.1, decay=0.9, eps=1e-6)),
    "rmsprop_noreg": ("RMSProp", dict(learn_rate=0.05, reg=0, decay=0.9, eps=1e-6)),
}


def inputs_part2() -> dict:
    g = _gen(2)
    runs = {}
    p0 = [torch.randn(6, 4, generator=g, dtype=F64), torch.randn(4, generator=g, dtype=F64)]
    grads = [[torch.randn(6, 4, generator=g, dtype=F64), torch.randn(4, generator=g, dtype=F64)]
             for _ in range(4)]
    for name, (cls, hp) in OPTIMIZER_RUNS.items():
        runs[name] = {"cls": cls, "hp": hp, "p0": p0, "grads": grads}
    runs["dropout"] = {"p": 0.4, "x": torch.rand(2000, 40, generator=g, dtype=F64) + 0.5,
                       "dout": torch.randn(2000, 40, generator=g, dtype=F64)}
    # Scripted losses: epochs 1..4 test losses 1.0, 0.8, 0.9, 0.85 -> no improvement for 2
    # epochs after epoch 4, then 0.5 (only a fit that runs too long sees it).
    test_means = [1.0, 0.8, 0.9, 0.85, 0.5, 0.4, 0.3, 0.2]
    script = {"batch_size": 4, "train_batches": 3, "test_batches": 2,
              "train_loss": [[2.0 - 0.1 * e - 0.01 * i for i in range(3)] for e in range(8)],
              "train_correct": [[(e + i) % 5 for i in range(3)] for e in range(8)],
              "test_loss": [[m - 0.05, m + 0.05] for m in test_means],
              "test_correct": [[(2 * e) % 5, (e + 1) % 5] for e in range(8)]}
    runs["trainer_early_stopping"] = dict(script, num_epochs=8, early_stopping=2)
    # Checkpoint run: test accuracies per epoch 25, 75, 50 -> the best file holds epoch 2.
    ck = dict(script, num_epochs=3, test_correct=[[1, 1], [3, 3], [2, 2]] + script["test_correct"][3:])
    runs["trainer_checkpoint"] = ck
    for name in ("layer_trainer", "classifier_trainer"):
        runs[name] = {"w": torch.randn(3, 6, generator=g, dtype=F64), "b": torch.randn(3, generator=g, dtype=F64),
                      "x": torch.randn(8, 1, 2, 3, generator=g, dtype=F64) if name == "layer_trainer"
                      else torch.randn(8, 6, generator=g, dtype=F64),
                      "y": torch.randint(0, 3, (8,), generator=g), "lr": 0.5,
                      "x2": torch.randn(5, 1, 2, 3, generator=g, dtype=F64) if name == "layer_trainer"
                      else torch.randn(5, 6, generator=g, dtype=F64),
                      "y2": torch.randint(0, 3, (5,), generator=g)}
    return runs


def _torch_optimizer(cls: str, hp: dict, params: List[Tensor]):
    """The matching torch.optim optimizer, or None (RMSProp: ε inside the root, written out)."""
    if cls == "VanillaSGD":
        return torch.optim.SGD(params, lr=hp["learn_rate"], weight_decay=hp["reg"])
    if cls == "MomentumSGD":
        return torch.optim.SGD(params, lr=hp["learn_rate"], weight_decay=hp["reg"],
                               momentum=hp["momentum"])
    return None


def expected_steps(run: dict) -> List[List[Tensor]]:
    """Parameters after each step, by torch.optim or (RMSProp) the rule written out:
    ``g = grad + reg·θ``; ``r = γ·r + (1−γ)·g²``; ``θ = θ − η·g / sqrt(r + ε)``."""
    params = [p.clone() for p in run["p0"]]
    hp, steps = run["hp"], []
    opt = _torch_optimizer(run["cls"], hp, [p.requires_grad_(True) for p in params])
    square = [torch.zeros_like(p) for p in params]
    for grads in run["grads"]:
        if opt is not None:
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        else:
            with torch.no_grad():
                for p, g, r in zip(params, grads, square):
                    g = g + hp["reg"] * p
                    r.mul_(hp["decay"]).add_((1 - hp["decay"]) * g * g)
                    p -= hp["learn_rate"] * g / torch.sqrt(r + hp["eps"])
        steps.append([p.detach().clone() for p in params])
    return steps


def _optimizer_check(name):
    def run_check(results, inputs):
        got = case(results, name)
        want = expected_steps(inputs[name])
        steps = got.get("steps")
        p = Parts()
        if not isinstance(steps, list) or len(steps) != len(want):
            p.check("parameters after each step", f"expected {len(want)} steps of outputs")
            return p.verdict()
        for k, (mine, theirs) in enumerate(zip(want, steps)):
            problem = None
            for i, (m, th) in enumerate(zip(mine, theirs if isinstance(theirs, list) else [])):
                problem = problem or compare(th, m, **TOL64)
            p.check(f"parameters after step {k + 1}", problem)
        return p.verdict()
    return run_check


for _name in OPTIMIZER_RUNS:
    check(_name)(_optimizer_check(_name))


@check("dropout_train")
def _dropout_train(results, inputs):
    got = case(results, "dropout")
    inp = inputs["dropout"]
    q = inp["p"]
    out, dx, x = got.get("out"), got.get("dx"), inp["x"]
    p = Parts()
    if compare(out, x, rtol=1, atol=1e9) is not None:
        p.check("training-mode output shaped like the input", "it is not")
        return p.verdict()
    out = out.to(F64)
    kept = out != 0
    frac = 1.0 - float(kept.to(F64).mean())
    p.check(f"drops a fraction p={q} of the units", None if abs(frac - q) < 0.02 else
            f"expected about {q:.2f} dropped, received {frac:.3f}")
    scale = (out[kept] / x[kept])
    p.check("scales the kept units by 1/(1-p)", compare(scale, torch.full_like(scale, 1 / (1 - q)), **TOL64)
            if scale.numel() else "no unit was kept")
    mask = kept.to(F64) / (1 - q)
    p.check("backward: dout times the same mask and scale", compare(dx, inp["dout"] * mask, **TOL64))
    return p.verdict()


@check("dropout_eval")
def _dropout_eval(results, inputs):
    got = case(results, "dropout")
    inp = inputs["dropout"]
    p = Parts()
    p.check("eval mode: output equals the input", compare(got.get("out_eval"), inp["x"], **TOL64))
    p.check("eval mode: backward passes dout through", compare(got.get("dx_eval"), inp["dout"], **TOL64))
    return p.verdict()


def expected_fit(script: dict) -> dict:
    """The FitResult of the scripted fit, by arithmetic: per-batch losses, per-epoch accuracies
    in %, stopping after ``early_stopping`` epochs without a lower mean test loss."""
    bs = script["batch_size"]
    result = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    best, since, epochs = math.inf, 0, 0
    for e in range(script["num_epochs"]):
        epochs += 1
        result["train_loss"] += script["train_loss"][e]
        result["test_loss"] += script["test_loss"][e]
        result["train_acc"].append(100.0 * sum(script["train_correct"][e]) / (bs * script["train_batches"]))
        result["test_acc"].append(100.0 * sum(script["test_correct"][e]) / (bs * script["test_batches"]))
        mean = sum(script["test_loss"][e]) / len(script["test_loss"][e])
        if mean < best:
            best, since = mean, 0
        else:
            since += 1
        if script.get("early_stopping") and since >= script["early_stopping"]:
            break
    result["num_epochs"] = epochs
    return result


def _fit_problems(got: dict, want: dict, keys) -> Optional[str]:
    for key in keys:
        mine, theirs = want[key], got.get(key)
        if key == "num_epochs":
            if theirs != mine:
                return f"expected num_epochs {mine}, received {theirs}"
            continue
        if not isinstance(theirs, list) or len(theirs) != len(mine):
            return (f"expected {key} with {len(mine)} values, received "
                    f"{len(theirs) if isinstance(theirs, list) else type(theirs).__name__}")
        problem = compare(torch.tensor(theirs, dtype=F64), torch.tensor(mine, dtype=F64), rtol=1e-6, atol=1e-6)
        if problem:
            return f"{key}: {problem}"
    return None


@check("trainer_early_stopping")
def _trainer_early_stopping(results, inputs):
    got = case(results, "trainer_early_stopping")
    want = expected_fit(inputs["trainer_early_stopping"])
    p = Parts()
    p.check(f"stops after epoch {want['num_epochs']} (test loss not improved for 2 epochs)",
            _fit_problems(got, want, ["num_epochs"]), 2)
    p.check("the epochs it trained are recorded", _fit_problems(got, want, ["test_loss"]))
    return p.verdict()


@check("trainer_fit_result")
def _trainer_fit_result(results, inputs):
    got = case(results, "trainer_checkpoint")
    want = expected_fit(inputs["trainer_checkpoint"])
    fit = got.get("fit", {})
    p = Parts()
    p.check("num_epochs", _fit_problems(fit, want, ["num_epochs"]))
    p.check("train_loss and test_loss per batch", _fit_problems(fit, want, ["train_loss", "test_loss"]))
    p.check("train_acc and test_acc per epoch, in %", _fit_problems(fit, want, ["train_acc", "test_acc"]))
    return p.verdict()


@check("trainer_checkpoint")
def _trainer_checkpoint(results, inputs):
    got = case(results, "trainer_checkpoint")
    script = inputs["trainer_checkpoint"]
    accs = expected_fit(script)["test_acc"]
    best_epoch = 1 + max(range(len(accs)), key=lambda i: (accs[i], -i))
    p = Parts()
    files = got.get("files", [])
    p.check("checkpoints='NAME' writes NAME.pt", None if "best.pt" in files else f"files written: {files}")
    weights = got.get("weights", [])
    marker = 1000.0 + best_epoch
    p.check(f"the file holds the model of the best test accuracy (epoch {best_epoch})",
            None if marker in weights and 1000.0 + script["num_epochs"] not in weights else
            f"expected the weights of epoch {best_epoch} (value {marker}), found {weights[:4]}", 2)
    return p.verdict()


def _batch_oracle(inp: dict, flatten: bool):
    x = inp["x"].reshape(len(inp["x"]), -1) if flatten else inp["x"]
    x2 = inp["x2"].reshape(len(inp["x2"]), -1) if flatten else inp["x2"]
    w = inp["w"].clone().requires_grad_(True)
    b = inp["b"].clone().requires_grad_(True)
    scores = x @ w.T + b
    loss = nn.functional.cross_entropy(scores, inp["y"])
    gw, gb = torch.autograd.grad(loss, [w, b])
    w1, b1 = (w - inp["lr"] * gw).detach(), (b - inp["lr"] * gb).detach()
    correct = int((scores.argmax(1) == inp["y"]).sum())
    scores2 = x2 @ w1.T + b1
    loss2 = float(nn.functional.cross_entropy(scores2, inp["y2"]))
    correct2 = int((scores2.argmax(1) == inp["y2"]).sum())
    return float(loss.detach()), correct, w1, b1, loss2, correct2


def _trainer_batches(results, inputs, name, flatten):
    got = case(results, name)
    loss, correct, w1, b1, loss2, correct2 = _batch_oracle(inputs[name], flatten)
    tol = dict(rtol=1e-5, atol=1e-6)
    train, test = got.get("train", [None, None]), got.get("test", [None, None])
    p = Parts()
    p.check("train_batch returns the batch loss and number correct",
            compare(torch.tensor([float(v) if v is not None else math.nan for v in train], dtype=F64),
                    torch.tensor([loss, correct], dtype=F64), **tol))
    p.check("train_batch zeroes the gradients, back-propagates and steps once",
            compare(got.get("w"), w1.to(got["w"].dtype) if isinstance(got.get("w"), Tensor) else w1, **tol)
            or compare(got.get("b"), b1.to(got["b"].dtype) if isinstance(got.get("b"), Tensor) else b1, **tol))
    p.check("test_batch returns the loss and number correct",
            compare(torch.tensor([float(v) if v is not None else math.nan for v in test], dtype=F64),
                    torch.tensor([loss2, correct2], dtype=F64), **tol))
    p.check("test_batch does not update the model", compare(got.get("w_after_test"), got.get("w"), 0, 0)
            if isinstance(got.get("w"), Tensor) else "no weights", 0.5)
    return p.verdict()


@check("layer_trainer")
def _layer_trainer(results, inputs):
    return _trainer_batches(results, inputs, "layer_trainer", flatten=True)


@check("classifier_trainer")
def _classifier_trainer(results, inputs):
    return _trainer_batches(results, inputs, "classifier_trainer", flatten=False)


# ============================================================ Part 3

def inputs_part3() -> dict:
    g = _gen(3)
    x = torch.randn(12, 5, generator=g)
    w3, b3 = torch.randn(3, 4, generator=g), torch.randn(3, generator=g)
    w2, b2 = torch.randn(2, 4, generator=g), torch.randn(2, generator=g)
    n = 200
    y = torch.randint(0, 2, (n,), generator=g)
    xr = torch.randn(n, 2, generator=g) + torch.stack([y * 1.2, -y * 0.8], 1).float()
    xb = torch.rand(30, 2, generator=g) * 4 - 2
    return {"mlp": {"x": x}, "mlp_nonlins": {"x": x},
            "classifiers": {"x": torch.randn(40, 4, generator=g), "w3": w3, "b3": b3, "w2": w2,
                            "b2": b2, "threshold": 0.3},
            "roc": {"x": xr, "y": y, "w": torch.tensor([[0.3, -0.4], [-0.5, 0.6]]),
                    "b": torch.tensor([0.1, -0.2])},
            "decision_boundary": {"x": xb, "y": (xb[:, 0] > 0).long(), "w": w3[:, :2], "b": b3}}


def _plain_mlp(linears, acts) -> Optional[nn.Sequential]:
    layers = []
    for (w, b), act in zip(linears, acts):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin, act]
    return nn.Sequential(*layers)


def _mlp_linears(got, dims) -> Optional[str]:
    linears = got.get("linears")
    if not isinstance(linears, list) or len(linears) != len(dims) - 1:
        return f"expected {len(dims) - 1} Linear layers, found {len(linears) if isinstance(linears, list) else 0}"
    for i, (wb, d_in, d_out) in enumerate(zip(linears, dims[:-1], dims[1:])):
        if not (isinstance(wb, list) and isinstance(wb[0], Tensor) and tuple(wb[0].shape) == (d_out, d_in)):
            return f"Linear #{i}: expected weight shape {(d_out, d_in)}"
    return None


@check("mlp")
def _mlp(results, inputs):
    got = case(results, "mlp")
    p = Parts()
    dims = [5, 7, 6, 3]
    structure = _mlp_linears(got, dims)
    p.check("Linear layers 5->7->6->3, in_dim/out_dim", structure or
            equal([got.get("in_dim"), got.get("out_dim")], [5, 3], "[in_dim, out_dim]"))
    if structure is None:
        with torch.no_grad():
            out = _plain_mlp(got["linears"], [nn.ReLU(), nn.Tanh(), nn.Identity()])(inputs["mlp"]["x"])
        p.check("forward equals Linear->ReLU->Linear->Tanh->Linear (plain torch.nn)",
                compare(got.get("out"), out, rtol=1e-5, atol=1e-6), 2)
    got2 = case(results, "mlp_nonlins")
    structure2 = _mlp_linears(got2, [5, 6, 4, 3])
    if structure2 is None:
        with torch.no_grad():
            out2 = _plain_mlp(got2["linears"], [nn.LeakyReLU(), nn.ELU(), nn.Softmax(dim=1)])(inputs["mlp"]["x"])
        structure2 = compare(got2.get("out"), out2, rtol=1e-5, atol=1e-6)
    p.check("nonlins 'lrelu', an nn.Module, 'softmax' (over dim 1)", structure2)
    return p.verdict()


@check("classifier")
def _classifier(results, inputs):
    got = case(results, "classifiers")
    inp = inputs["classifiers"]
    x = inp["x"]
    scores = x @ inp["w3"].T + inp["b3"]
    proba = torch.softmax(scores, 1)
    p = Parts()
    p.check("forward returns the model's raw scores", compare(got.get("scores"), scores, rtol=1e-5, atol=1e-6))
    p.check("predict_proba is the softmax of the scores", compare(got.get("proba"), proba, rtol=1e-5, atol=1e-6))
    labels = got.get("argmax")
    p.check("ArgMaxClassifier.classify: argmax labels",
            compare(labels, proba.argmax(1), 0, 0) if isinstance(labels, Tensor) else "no labels")
    proba2 = torch.softmax(x @ inp["w2"].T + inp["b2"], 1)
    for pos in (0, 1):
        want = (proba2[:, pos] >= inp["threshold"]).long()
        want = torch.where(want.bool(), pos, 1 - pos)
        have = got.get(f"binary{pos}")
        p.check(f"BinaryClassifier(positive_class={pos}, threshold={inp['threshold']}).classify",
                compare(have.long(), want, 0, 0) if isinstance(have, Tensor) else "no labels")
    return p.verdict()


@check("roc")
def _roc(results, inputs):
    import numpy as np
    from sklearn.metrics import roc_curve

    got = case(results, "roc")
    inp = inputs["roc"]
    proba = torch.softmax(inp["x"] @ inp["w"].T + inp["b"], 1)[:, 1].to(F64).numpy()
    y = inp["y"].numpy()
    fpr, tpr, _ = roc_curve(y, proba, drop_intermediate=False)
    best = float(np.min(np.hypot(fpr, 1 - tpr)))
    thresh = got.get("thresh")
    p = Parts()
    if not isinstance(thresh, float) or not math.isfinite(thresh):
        p.check("returns a finite threshold", f"received {thresh!r}")
        return p.verdict()
    pred = proba >= thresh
    f = float((pred & (y == 0)).sum() / max(1, (y == 0).sum()))
    t = float((pred & (y == 1)).sum() / max(1, (y == 1).sum()))
    dist = math.hypot(f, 1 - t)
    p.check("the threshold of the ROC point closest to (FPR=0, TPR=1)",
            None if dist <= best + 1e-9 else
            f"expected a threshold reaching distance {best:.4f} (FPR, TPR as sklearn's roc_curve), "
            f"received {thresh:.6g} reaching {dist:.4f} (FPR={f:.3f}, TPR={t:.3f})")
    return p.verdict()


@check("decision_boundary")
def _decision_boundary(results, inputs):
    got = case(results, "decision_boundary")
    inp = inputs["decision_boundary"]
    p = Parts()
    p.check("returns (Figure, Axes)", equal(got.get("fig"), "Figure", "figure type"))
    scatter = got.get("scatter") or [[]]
    pts = torch.tensor(scatter[0], dtype=F64) if scatter[0] else None
    p.check("scatters the data points over the decision regions",
            compare(pts, inp["x"].to(F64), rtol=1e-5, atol=1e-6) if pts is not None else "no scatter of the points")
    p.check("draws the regions", None if (got.get("ax_has_collections") or 0) >= 2 else
            "expected a filled contour and a scatter on the axes")
    return p.verdict()


# ============================================================ Part 4

def inputs_part4() -> dict:
    found = {name: {"cls": net.cls, "kw": net.kw, "input": list(net.input), "seed": oracles.SEED}
             for name, net in oracles.NETWORKS.items()}
    found["yourcnn"] = {"kw": dict(in_size=(3, 32, 32), out_classes=10, channels=[32, 64, 128],
                                   pool_every=2, hidden_dims=[100]), "input": [4, 3, 32, 32]}
    return found


def _printouts_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "tests" / "assets" / "printouts"


def _normalise_tree(text: str) -> List[str]:
    # Newer torch prints BatchNorm's ``bias=True``; the course's printouts predate it.
    return [line.rstrip().replace("affine=True, bias=True,", "affine=True,")
            for line in text.strip().splitlines()]


def _network_checks(results, names: List[str], weight_tree: float = 1, weight_out: float = 2):
    p = Parts()
    for name in names:
        try:
            got = case(results, name)
        except CaseError as err:
            p.check(f"{name}: builds and runs", str(err), weight_tree + weight_out + 0.5)
            continue
        want, n_params = oracles.reference_output(name)
        printout = _printouts_dir() / f"{name}.txt"
        if printout.is_file():
            mine, theirs = _normalise_tree(printout.read_text()), _normalise_tree(str(got.get("repr", "")))
            diff = next((f"line {i + 1}: expected {a.strip()!r}, received {b.strip()!r}"
                         for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
            if diff is None and len(mine) != len(theirs):
                diff = f"expected {len(mine)} lines, received {len(theirs)}"
            p.check(f"{name}: printed module tree equals the course's", diff, weight_tree)
        p.check(f"{name}: parameter count", equal(got.get("n_params"), n_params, "count"), 0.5)
        p.check(f"{name}: seeded training-mode output equals plain torch.nn's",
                compare(got.get("out"), want, **TOL32), weight_out)
    return p.verdict()


@check("cnn")
def _cnn(results, inputs):
    return _network_checks(results, ["cnn_00", "cnn_01", "cnn_02"])


@check("resblock")
def _resblock(results, inputs):
    return _network_checks(results, ["resblock"])


@check("resblock_bottleneck")
def _resblock_bottleneck(results, inputs):
    return _network_checks(results, ["resblock_bn"])


@check("resnet")
def _resnet(results, inputs):
    return _network_checks(results, ["resnet_00", "resnet_01"])


@check("yourcnn")
def _yourcnn(results, inputs):
    got = case(results, "yourcnn")
    shape = [inputs["yourcnn"]["input"][0], inputs["yourcnn"]["kw"]["out_classes"]]
    p = Parts()
    p.check("YourCNN(in_size=(3, 32, 32), ...) maps (4, 3, 32, 32) to (4, 10) scores",
            equal(got.get("shape"), shape, "output shape"))
    p.check("finite outputs", None if got.get("finite") else "NaN or infinite scores")
    return p.verdict()


# ============================================================ Part 5

def inputs_part5() -> dict:
    return {"cnn_experiment": {"run_name": "grader", "kw": dict(
        seed=7, bs_train=8, bs_test=8, batches=2, epochs=2, early_stopping=3, lr=1e-3, reg=1e-3,
        filters_per_layer=[4, 8], layers_per_block=1, pool_every=1, hidden_dims=[16],
        model_type="cnn")}}


@check("cnn_experiment")
def _cnn_experiment(results, inputs):
    from hw2.experiments import load_experiment  # the grader's own reader, on the written text

    got = case(results, "cnn_experiment")
    files = got.get("files") or {}
    name = "grader_L1_K4-8.json"
    p = Parts()
    if not p.check(f"writes {name}", None if name in files else f"files written: {sorted(files)}", 1):
        return p.verdict()
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(files[name], encoding="utf-8")
        try:
            config, fit = load_experiment(path)
        except (ValueError, OSError) as err:
            p.check("load_experiment accepts the file", str(err).replace(str(path), name), 2)
            return p.verdict()
    p.check("load_experiment accepts the file", None, 2)
    kw = inputs["cnn_experiment"]["kw"]
    p.check("the file records the configuration (K, L, P, H, epochs)",
            equal([config.get(k) for k in ("filters_per_layer", "layers_per_block", "pool_every",
                                           "hidden_dims")],
                  [kw["filters_per_layer"], kw["layers_per_block"], kw["pool_every"], kw["hidden_dims"]],
                  "configuration"))
    n = fit.num_epochs
    p.check("the FitResult is consistent (epochs, batches)",
            None if 1 <= n <= kw["epochs"] and len(fit.train_acc) == n and len(fit.test_acc) == n
            and len(fit.train_loss) == n * kw["batches"] else
            f"num_epochs={n}, {len(fit.train_acc)} train accuracies, {len(fit.train_loss)} train losses")
    return p.verdict()


PART_INPUTS = {1: inputs_part1, 2: inputs_part2, 3: inputs_part3, 4: inputs_part4, 5: inputs_part5}
