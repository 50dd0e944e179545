"""Property tests: random shapes, seeds and hyperparameters, each checked against an oracle.

* Every :mod:`hw2.layers` layer: forward and hand-written backward against the same
  computation written with ``torch.nn.functional`` and differentiated by autograd, in float64.
* Every :mod:`hw2.optimizers` optimizer: several steps against its update formula, written out
  here by hand in plain tensor arithmetic (no ``_foreach`` kernels, no torch.optim).

Hypothesis draws the cases; shapes stay small and ``max_examples`` low so the module runs in a
few seconds.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hw2 import layers
from hw2 import optimizers

F64 = torch.float64
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
TIGHT = dict(rtol=1e-10, atol=1e-12)

seeds = st.integers(min_value=0, max_value=2 ** 31 - 1)
batch = st.integers(min_value=1, max_value=6)
width = st.integers(min_value=1, max_value=7)
small_shapes = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=4).map(tuple)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, gen, scale=1.0):
    return scale * torch.randn(shape, generator=gen, dtype=F64)


def _autograd(fn, x, *params, dout):
    """Run ``fn(x, *params)`` under autograd, back-propagate ``dout``.

    :return: ``(output, [dx, d_param...])``, detached.
    """
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, *params)]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_outputs=dout)
    return out.detach(), [g.detach() for g in grads]


# ----------------------------------------------------------------------------------------------
# Elementwise activations
# ----------------------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (lambda a: layers.ReLU(), lambda a: F.relu),
    "leaky_relu": (lambda a: layers.LeakyReLU(a), lambda a: (lambda x: F.leaky_relu(x, a))),
    "sigmoid": (lambda a: layers.Sigmoid(), lambda a: torch.sigmoid),
    "tanh": (lambda a: layers.TanH(), lambda a: torch.tanh),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@SETTINGS
@given(shape=small_shapes, seed=seeds, alpha=st.floats(min_value=0.0, max_value=0.99),
       scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_activation_forward_and_backward_match_autograd(name, shape, seed, alpha, scale):
    make_ours, make_ref = ACTIVATIONS[name]
    gen = _gen(seed)
    x, dout = _randn(shape, gen, scale), _randn(shape, gen)
    layer = make_ours(alpha)
    out = layer(x)
    dx = layer.backward(dout)
    ref_out, (ref_dx,) = _autograd(make_ref(alpha), x, dout=dout)
    torch.testing.assert_close(out, ref_out, **TIGHT)
    torch.testing.assert_close(dx, ref_dx, **TIGHT)


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------

@SETTINGS
@given(n=batch, d_in=width, d_out=width, seed=seeds, extra=st.booleans(),
       backward_calls=st.integers(min_value=1, max_value=3))
def test_linear_matches_autograd_and_accumulates(n, d_in, d_out, seed, extra, backward_calls):
    """Gradients of ``backward_calls`` passes add up; inputs may carry an extra batch dim."""
    gen = _gen(seed)
    torch.manual_seed(seed)
    layer = layers.Linear(d_in, d_out, wstd=0.5, dtype=F64)
    layer.b.copy_(_randn(d_out, gen))  # a non-zero bias, so that forward checks it too
    shape = (n, 2, d_in) if extra else (n, d_in)
    total_dw, total_db = torch.zeros_like(layer.w), torch.zeros_like(layer.b)
    for _ in range(backward_calls):
        x = _randn(shape, gen)
        dout = _randn(shape[:-1] + (d_out,), gen)
        out = layer(x)
        dx = layer.backward(dout)
        ref_out, (ref_dx, ref_dw, ref_db) = _autograd(F.linear, x, layer.w, layer.b, dout=dout)
        total_dw += ref_dw
        total_db += ref_db
        torch.testing.assert_close(out, ref_out, **TIGHT)
        torch.testing.assert_close(dx, ref_dx, **TIGHT)
    torch.testing.assert_close(layer.dw, total_dw, **TIGHT)
    torch.testing.assert_close(layer.db, total_db, **TIGHT)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

@SETTINGS
@given(n=batch, c=st.integers(min_value=1, max_value=8), seed=seeds,
       scale=st.sampled_from([1e-2, 1.0, 1e3]), dout=st.floats(min_value=-3, max_value=3))
def test_cross_entropy_matches_autograd(n, c, seed, scale, dout):
    gen = _gen(seed)
    x = _randn((n, c), gen, scale)
    y = torch.randint(0, c, (n,), generator=gen)
    loss_fn = layers.CrossEntropyLoss()
    loss = loss_fn(x, y)
    dx = loss_fn.backward(dout)
    ref_loss, (ref_dx,) = _autograd(lambda s: F.cross_entropy(s, y), x,
                                    dout=torch.tensor(dout, dtype=F64))
    torch.testing.assert_close(loss, ref_loss, **TIGHT)
    torch.testing.assert_close(dx, ref_dx, **TIGHT)


@SETTINGS
@given(n=batch, column=st.booleans(), seed=seeds, scale=st.sampled_from([1e-2, 1.0, 1e3]),
       soft=st.booleans(), dout=st.floats(min_value=-3, max_value=3))
def test_bce_with_logits_matches_autograd(n, column, seed, scale, soft, dout):
    gen = _gen(seed)
    shape = (n, 1) if column else (n,)
    x = _randn(shape, gen, scale)
    y = torch.rand(shape, generator=gen, dtype=F64)
    y = y if soft else y.round()
    loss_fn = layers.BCEWithLogitsLoss()
    loss = loss_fn(x, y)
    dx = loss_fn.backward(dout)
    ref_loss, (ref_dx,) = _autograd(lambda s: F.binary_cross_entropy_with_logits(s, y), x,
                                    dout=torch.tensor(dout, dtype=F64))
    torch.testing.assert_close(loss, ref_loss, **TIGHT)
    torch.testing.assert_close(dx, ref_dx, **TIGHT)


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------

@SETTINGS
@given(shape=small_shapes, seed=seeds, p=st.floats(min_value=0.0, max_value=0.9),
       training=st.booleans())
def test_dropout_backward_is_the_forward_mask(shape, seed, p, training):
    """The oracle rebuilds the mask from our output (the draw itself is random by design) and
    differentiates ``x * mask / (1 - p)`` with autograd."""
    gen = _gen(seed)
    x = _randn(shape, gen).abs() + 0.1  # no zeros, so a zero output means "dropped"
    dout = _randn(shape, gen)
    layer = layers.Dropout(p).train(training)
    torch.manual_seed(seed)
    out = layer(x)
    dx = layer.backward(dout)
    if not training or p == 0:
        assert torch.equal(out, x) and torch.equal(dx, dout)
        return
    kept = out != 0
    ref_out, (ref_dx,) = _autograd(lambda t: t * kept / (1 - p), x, dout=dout)
    torch.testing.assert_close(out, ref_out, **TIGHT)
    torch.testing.assert_close(dx, ref_dx, **TIGHT)


# ----------------------------------------------------------------------------------------------
# Sequential and MLP (composition)
# ----------------------------------------------------------------------------------------------

@SETTINGS
@given(n=batch, d_in=width, hidden=st.lists(width, max_size=3), classes=width,
       activation=st.sampled_from(["relu", "sigmoid"]), seed=seeds)
def test_mlp_with_loss_matches_an_autograd_mirror(n, d_in, hidden, classes, activation, seed):
    """Our MLP + CrossEntropyLoss in a Sequential, against F.linear/F.relu/F.cross_entropy on
    the same weights: the loss, the input gradient and every parameter gradient."""
    gen = _gen(seed)
    torch.manual_seed(seed)
    mlp = layers.MLP(d_in, classes, hidden, activation=activation, wstd=0.7, dtype=F64)
    model = layers.Sequential(mlp, layers.CrossEntropyLoss())
    x = _randn((n, d_in), gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    loss = model(x, y=y)
    dx = model.backward(1.0)

    act = F.relu if activation == "relu" else torch.sigmoid
    weights = [t for t, _ in model.params()]

    def mirror(inp, *ws):
        h = inp
        for i in range(0, len(ws), 2):
            h = F.linear(h, ws[i], ws[i + 1])
            if i + 2 < len(ws):
                h = act(h)
        return F.cross_entropy(h, y)

    ref_loss, (ref_dx, *ref_grads) = _autograd(mirror, x, *weights,
                                               dout=torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close(loss, ref_loss, **TIGHT)
    torch.testing.assert_close(dx, ref_dx, **TIGHT)
    assert len(ref_grads) == 2 * (len(hidden) + 1)
    for (_, grad), ref in zip(model.params(), ref_grads):
        torch.testing.assert_close(grad, ref, **TIGHT)


# ----------------------------------------------------------------------------------------------
# Optimizers against their formulas
# ----------------------------------------------------------------------------------------------

def _sgd_formula(hp):
    def step(theta, g, state):
        return theta - hp["learn_rate"] * (g + hp["reg"] * theta)
    return step


def _momentum_formula(hp):
    def step(theta, g, state):
        g = g + hp["reg"] * theta
        v = hp["momentum"] * state.get("v", torch.zeros_like(theta)) - hp["learn_rate"] * g
        state["v"] = v
        if hp["nesterov"]:
            return theta + hp["momentum"] * v - hp["learn_rate"] * g
        return theta + v
    return step


def _rmsprop_formula(hp):
    def step(theta, g, state):
        g = g + hp["reg"] * theta
        r = hp["decay"] * state.get("r", torch.zeros_like(theta)) + (1 - hp["decay"]) * g * g
        state["r"] = r
        return theta - hp["learn_rate"] * g / torch.sqrt(r + hp["eps"])
    return step


def _adam_formula(hp):
    def step(theta, g, state):
        g = g + hp["reg"] * theta
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = hp["beta1"] * state.get("m", torch.zeros_like(theta)) + (1 - hp["beta1"]) * g
        s = state["s"] = hp["beta2"] * state.get("s", torch.zeros_like(theta)) + (1 - hp["beta2"]) * g * g
        m_hat = m / (1 - hp["beta1"] ** t)
        s_hat = s / (1 - hp["beta2"] ** t)
        return theta - hp["learn_rate"] * m_hat / (torch.sqrt(s_hat) + hp["eps"])
    return step


unit = st.floats(min_value=0.0, max_value=0.999)
learn_rates = st.floats(min_value=1e-4, max_value=1.0)
regs = st.one_of(st.just(0.0), st.floats(min_value=1e-4, max_value=0.5))
epsilons = st.sampled_from([1e-8, 1e-4, 0.1])

OPTIMIZERS = {
    "VanillaSGD": (optimizers.VanillaSGD, _sgd_formula,
                   st.fixed_dictionaries({"learn_rate": learn_rates, "reg": regs})),
    "MomentumSGD": (optimizers.MomentumSGD, _momentum_formula,
                    st.fixed_dictionaries({"learn_rate": learn_rates, "reg": regs,
                                           "momentum": unit, "nesterov": st.booleans()})),
    "RMSProp": (optimizers.RMSProp, _rmsprop_formula,
                st.fixed_dictionaries({"learn_rate": learn_rates, "reg": regs,
                                       "decay": st.floats(min_value=0.01, max_value=0.999),
                                       "eps": epsilons})),
    "Adam": (optimizers.Adam, _adam_formula,
             st.fixed_dictionaries({"learn_rate": learn_rates, "reg": regs, "beta1": unit,
                                    "beta2": unit, "eps": epsilons})),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@SETTINGS
@given(data=st.data(), shapes=st.lists(small_shapes, min_size=1, max_size=4), seed=seeds,
       steps=st.integers(min_value=1, max_value=5), pairs=st.booleans())
def test_optimizer_steps_follow_the_formula(name, data, shapes, seed, steps, pairs):
    """Several steps on several parameters, given either as (param, grad) pairs or as tensors
    whose ``.grad`` is read; the grads are redrawn in place before every step."""
    cls, formula, hyper = OPTIMIZERS[name]
    hp = data.draw(hyper, label="hyperparameters")
    gen = _gen(seed)
    params = [_randn(s, gen) for s in shapes]
    grads = [torch.zeros_like(p) for p in params]
    if pairs:
        opt = cls(list(zip(params, grads)), **hp)
    else:
        for p, g in zip(params, grads):
            p.grad = g
        opt = cls(params, **hp)

    expected = [p.clone() for p in params]
    rule, states = formula(hp), [{} for _ in params]
    for _ in range(steps):
        for g in grads:
            g.copy_(_randn(g.shape, gen))
        opt.step()
        expected = [rule(theta, g.clone(), state)
                    for theta, g, state in zip(expected, grads, states)]
        for got, want in zip(params, expected):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@SETTINGS
@given(data=st.data(), seed=seeds)
def test_zero_grad_zeroes_and_step_leaves_grads_untouched(name, data, seed):
    cls, _, hyper = OPTIMIZERS[name]
    gen = _gen(seed)
    param, grad = _randn((3, 2), gen), _randn((3, 2), gen)
    before = grad.clone()
    opt = cls([(param, grad)], **data.draw(hyper, label="hyperparameters"))
    opt.step()
    assert torch.equal(grad, before)  # regularisation is added to a copy, not to the grad
    opt.zero_grad()
    assert torch.count_nonzero(grad) == 0
    assert math.isfinite(float(param.abs().sum()))
