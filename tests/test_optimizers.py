"""Tests for hw2.optimizers.

Oracles: hand-written formulas on small float64 tensors, and ``torch.optim`` run side by side
for several steps on the same gradient sequence (float64, tight tolerances).
"""
import math
from pathlib import Path

import pytest
import torch

from hw2.optimizers import Adam, MomentumSGD, Optimizer, RMSProp, VanillaSGD

ASSETS = Path(__file__).resolve().parent / "assets"
DTYPE = torch.float64
SHAPES = [(4, 3), (3,), (2, 2, 2)]
TIGHT = dict(rtol=1e-10, atol=1e-12)


def make_params(seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=DTYPE) for s in shapes]


def gradient_at(params, step, seed=1):
    """A deterministic, parameter-dependent gradient sequence: g_t = noise_t + 0.5·θ + θ³/10.

    Depending on θ makes a wrong update diverge from the oracle instead of only shifting it.
    """
    gen = torch.Generator().manual_seed(seed * 1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=DTYPE) + 0.5 * p + p ** 3 / 10 for p in params]


# ----------------------------------------------------------------------------------------------
# Side by side with torch.optim
# ----------------------------------------------------------------------------------------------

# (our class, our kwargs, torch class, torch kwargs)
TORCH_PAIRS = {
    "sgd": (VanillaSGD, dict(learn_rate=0.1, reg=0), torch.optim.SGD, dict(lr=0.1)),
    "sgd-reg": (VanillaSGD, dict(learn_rate=0.1, reg=0.05), torch.optim.SGD,
                dict(lr=0.1, weight_decay=0.05)),
    "momentum": (MomentumSGD, dict(learn_rate=0.05, reg=0, momentum=0.9), torch.optim.SGD,
                 dict(lr=0.05, momentum=0.9)),
    "momentum-reg": (MomentumSGD, dict(learn_rate=0.05, reg=0.01, momentum=0.7), torch.optim.SGD,
                     dict(lr=0.05, momentum=0.7, weight_decay=0.01)),
    "nesterov": (MomentumSGD, dict(learn_rate=0.05, reg=0, momentum=0.9, nesterov=True),
                 torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "nesterov-reg": (MomentumSGD, dict(learn_rate=0.03, reg=0.02, momentum=0.8, nesterov=True),
                     torch.optim.SGD, dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.02)),
    "adam": (Adam, dict(learn_rate=0.01), torch.optim.Adam, dict(lr=0.01)),
    "adam-reg": (Adam, dict(learn_rate=0.02, reg=0.1, beta1=0.8, beta2=0.99, eps=1e-6),
                 torch.optim.Adam, dict(lr=0.02, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)),
    # torch.optim.RMSprop adds eps outside the square root, we add it inside; with a tiny eps
    # both are sqrt(r) to far below the tolerance (|sqrt(r+e) - (sqrt(r)+e)| <= e + e/(2 sqrt r)).
    "rmsprop": (RMSProp, dict(learn_rate=0.01, decay=0.9, eps=1e-30), torch.optim.RMSprop,
                dict(lr=0.01, alpha=0.9, eps=0)),
    "rmsprop-reg": (RMSProp, dict(learn_rate=0.01, reg=0.05, decay=0.99, eps=1e-30),
                    torch.optim.RMSprop, dict(lr=0.01, alpha=0.99, eps=0, weight_decay=0.05)),
}


def run_side_by_side(name, form, num_steps=10, skip_first=None):
    """Step our optimizer and its torch.optim twin on identical gradients; compare each step.

    :param form: 'pairs' gives ours (param, grad) pairs, 'tensors' gives tensors with .grad.
    :param skip_first: {param index: k}: that param gets no gradient for its first k steps
        (None in both optimizers), so its state starts late.
    """
    ours_cls, ours_kw, torch_cls, torch_kw = TORCH_PAIRS[name]
    skip_first = skip_first or {}
    assert form == "tensors" or not skip_first, "a (param, grad) pair always has a gradient"
    ours = make_params()
    theirs = [p.clone().requires_grad_(True) for p in ours]
    if form == "pairs":
        our_grads = [torch.zeros_like(p) for p in ours]
        opt = ours_cls(list(zip(ours, our_grads)), **ours_kw)
    else:
        ours = [p.requires_grad_(True) for p in ours]
        opt = ours_cls(ours, **ours_kw)
    ref = torch_cls(theirs, **torch_kw)
    for step in range(num_steps):
        grads = gradient_at([p.detach() for p in ours], step)
        for i, (g, p_ours, p_theirs) in enumerate(zip(grads, ours, theirs)):
            skipped = step < skip_first.get(i, 0)
            p_theirs.grad = None if skipped else g.clone()
            if form == "pairs":
                our_grads[i].copy_(g)
            else:
                p_ours.grad = None if skipped else g.clone()
        opt.step()
        ref.step()
        for i, (a, b) in enumerate(zip(ours, theirs)):
            torch.testing.assert_close(a.detach(), b.detach(), **TIGHT,
                                       msg=lambda m: f"{name} step {step + 1} param {i}: {m}")
    return ours, theirs


@pytest.mark.parametrize("form", ["pairs", "tensors"])
@pytest.mark.parametrize("name", sorted(TORCH_PAIRS))
def test_matches_torch_optim_step_by_step(name, form):
    ours, theirs = run_side_by_side(name, form)
    # The trajectories really moved (a no-op optimizer would otherwise pass trivially).
    start = make_params()
    assert all((a.detach() - s).abs().max() > 1e-3 for a, s in zip(ours, start))


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam", "rmsprop"])
def test_state_created_when_a_param_first_gets_a_gradient(name):
    # Param 1 has no .grad for 3 steps: it must be skipped (not updated, no state), and when
    # its gradient appears its state starts from zero (Adam: step count 1), like torch.optim.
    ours, _ = run_side_by_side(name, "tensors", num_steps=6, skip_first={1: 3})
    assert not torch.equal(ours[1].detach(), make_params()[1])


def test_tensor_without_grad_is_skipped_and_its_state_untouched():
    a, b = make_params()[:2]
    a.requires_grad_(True)
    b.requires_grad_(True)
    a.grad = torch.ones_like(a)
    opt = Adam([a, b], learn_rate=0.1)
    b_before = b.detach().clone()
    opt.step()
    assert torch.equal(b.detach(), b_before)
    assert opt.state[0]["step"] == 1 and opt.state[1]["step"] == 0
    assert torch.count_nonzero(opt.state[1]["exp_avg"]) == 0
    assert opt.params[1] == (b, None)


@pytest.mark.parametrize("opt_cls, names", [
    (VanillaSGD, []), (MomentumSGD, ["velocity"]), (RMSProp, ["square_avg"]),
    (Adam, ["exp_avg", "exp_avg_sq", "step"]),
])
def test_every_param_gets_its_state_at_construction_as_zeros(opt_cls, names):
    # The state is created in __init__ (the course's hand-out asks for it there), one dict per
    # param, zero tensors of the param's shape, dtype and memory format.
    conv = torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    params = [conv, torch.randn(5, dtype=DTYPE)]
    opt = opt_cls(params)
    assert set(opt.state) == {0, 1}
    for p, state in zip(params, opt.state.values()):
        assert sorted(state) == sorted(names)
        for name in names:
            if name == "step":
                assert state[name] == 0
                continue
            assert state[name].shape == p.shape and state[name].dtype == p.dtype
            assert torch.count_nonzero(state[name]) == 0
    if names and names != ["step"]:
        assert opt.state[0][names[0]].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["sgd-reg", "nesterov-reg", "rmsprop-reg", "adam-reg"])
def test_params_of_different_dtypes_and_a_channels_last_one_match_torch(name):
    # float32 and float64 params in one optimizer, one of them a channels-last convolution
    # weight: each follows torch.optim's trajectory and keeps its dtype and memory format.
    ours_cls, ours_kw, torch_cls, torch_kw = TORCH_PAIRS[name]
    gen = torch.Generator().manual_seed(5)
    conv = torch.randn(4, 3, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last)
    start = [conv, torch.randn(6, generator=gen, dtype=DTYPE)]
    ours = [p.clone(memory_format=torch.preserve_format).requires_grad_(True) for p in start]
    theirs = [p.clone(memory_format=torch.preserve_format).requires_grad_(True) for p in start]
    opt, ref = ours_cls(ours, **ours_kw), torch_cls(theirs, **torch_kw)
    for step in range(4):
        for a, b, g in zip(ours, theirs, gradient_at([p.detach().double() for p in ours], step)):
            a.grad, b.grad = g.to(a.dtype), g.to(b.dtype)
        opt.step()
        ref.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-5 if a.dtype == torch.float32 else 1e-10,
                                       atol=1e-6 if a.dtype == torch.float32 else 1e-12)
    assert ours[0].dtype == torch.float32 and ours[1].dtype == DTYPE
    assert ours[0].is_contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------------------------
# Against hand computations
# ----------------------------------------------------------------------------------------------


def test_vanilla_sgd_hand_computation():
    p = torch.tensor([1.0, -2.0, 0.5], dtype=DTYPE)
    g = torch.tensor([0.2, 0.4, -1.0], dtype=DTYPE)
    VanillaSGD([(p, g)], learn_rate=0.5, reg=0.1).step()
    # θ - η(g + λθ) elementwise
    expected = torch.tensor([1.0 - 0.5 * (0.2 + 0.1), -2.0 - 0.5 * (0.4 - 0.2),
                             0.5 - 0.5 * (-1.0 + 0.05)], dtype=DTYPE)
    torch.testing.assert_close(p, expected, **TIGHT)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_hand_computation(nesterov):
    lr, mu, reg = 0.1, 0.9, 0.2
    theta, v = 1.5, 0.0
    p = torch.tensor([theta], dtype=DTYPE)
    g = torch.zeros(1, dtype=DTYPE)
    opt = MomentumSGD([(p, g)], learn_rate=lr, reg=reg, momentum=mu, nesterov=nesterov)
    for grad in (0.3, -0.7, 1.1):
        g.fill_(grad)
        opt.step()
        full = grad + reg * theta
        v = mu * v - lr * full
        theta = theta + (mu * v - lr * full if nesterov else v)
        assert p.item() == pytest.approx(theta, rel=1e-12)
    assert opt.state[0]["velocity"].item() == pytest.approx(v, rel=1e-12)


def test_rmsprop_hand_computation_eps_inside_sqrt():
    # A large eps makes "inside the square root" distinguishable from torch's "outside".
    lr, decay, eps, reg = 0.1, 0.5, 0.25, 0.1
    theta, r = 2.0, 0.0
    p = torch.tensor([theta], dtype=DTYPE)
    g = torch.zeros(1, dtype=DTYPE)
    opt = RMSProp([(p, g)], learn_rate=lr, reg=reg, decay=decay, eps=eps)
    for grad in (1.0, -0.5, 0.0):
        g.fill_(grad)
        opt.step()
        full = grad + reg * theta
        r = decay * r + (1 - decay) * full ** 2
        theta = theta - lr * full / math.sqrt(r + eps)
        assert p.item() == pytest.approx(theta, rel=1e-12)


def test_adam_hand_computation_with_bias_correction():
    lr, b1, b2, eps, reg = 0.1, 0.9, 0.999, 1e-8, 0.01
    theta, m, s = 0.5, 0.0, 0.0
    p = torch.tensor([theta], dtype=DTYPE)
    g = torch.zeros(1, dtype=DTYPE)
    opt = Adam([(p, g)], learn_rate=lr, reg=reg, beta1=b1, beta2=b2, eps=eps)
    for t, grad in enumerate((0.4, -0.1, 0.3, 0.3), start=1):
        g.fill_(grad)
        opt.step()
        full = grad + reg * theta
        m = b1 * m + (1 - b1) * full
        s = b2 * s + (1 - b2) * full ** 2
        m_hat, s_hat = m / (1 - b1 ** t), s / (1 - b2 ** t)
        theta = theta - lr * m_hat / (math.sqrt(s_hat) + eps)
        assert p.item() == pytest.approx(theta, rel=1e-10)
    assert opt.state[0]["step"] == 4


def test_first_adam_step_has_magnitude_learn_rate():
    # Bias correction makes the first step ±lr whatever the gradient's scale.
    p = torch.zeros(5, dtype=DTYPE)
    g = torch.tensor([1e-3, -2.0, 50.0, -7.0, 0.3], dtype=DTYPE)
    Adam([(p, g)], learn_rate=0.01, eps=1e-12).step()
    torch.testing.assert_close(p, -0.01 * torch.sign(g), rtol=1e-8, atol=0)


@pytest.mark.parametrize("opt_cls", [VanillaSGD, MomentumSGD, RMSProp, Adam])
def test_step_does_not_modify_gradients(opt_cls):
    p, g = make_params()[:2]
    g = torch.randn_like(p)
    g_before = g.clone()
    opt_cls([(p, g)], learn_rate=0.1, reg=0.5).step()
    assert torch.equal(g, g_before)


# ----------------------------------------------------------------------------------------------
# The seed's VanillaSGD check against the independently built fixture
# ----------------------------------------------------------------------------------------------


def test_vanilla_sgd_matches_seed_fixture():
    torch.manual_seed(42)
    p = torch.randn(500, 10)
    dp = torch.randn(*p.shape) * 2
    scale = max(p.abs().max().item(), 0.5 * dp.abs().max().item())  # the largest operand
    VanillaSGD([(p, dp)], learn_rate=0.5, reg=0.1).step()
    expected = torch.load(ASSETS / "expected_vsgd.pt", weights_only=True)
    assert torch.norm(p - expected).item() < 1e-3  # the seed's bar
    # Tighter: both sides round the same four float32 operations per element, in an order and
    # with fused multiply-adds or not as the CPU's kernels choose (vectorised or not, AVX2 or
    # AVX-512), so they may differ by a few ulps of the largest operand: 8·eps times it is
    # 3.7e-6 absolute here (without vector kernels, ATEN_CPU_CAPABILITY=default, the difference was
    # 1.4e-6, more than a relative 1e-6 of a result that cancels to near 0). Any real mistake
    # is far larger: a missing reg term alone changes θ by 0.05·|θ|.
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(p, expected, rtol=0, atol=8 * eps * scale)


# ----------------------------------------------------------------------------------------------
# zero_grad, params, repr
# ----------------------------------------------------------------------------------------------


def test_zero_grad_zeroes_pairs_in_place():
    p = torch.randn(3, 2)
    g = torch.randn(3, 2)
    opt = VanillaSGD([(p, g)])
    opt.zero_grad()
    assert opt.params[0][1] is g
    assert torch.equal(g, torch.zeros(3, 2))


def test_zero_grad_zeroes_tensor_grads_in_place_and_keeps_none():
    a = torch.randn(3, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    (a.sum() * 3).backward()
    grad_obj = a.grad
    opt = MomentumSGD([a, b])
    opt.zero_grad()
    assert a.grad is grad_obj and torch.equal(a.grad, torch.zeros(3))
    assert b.grad is None


def test_params_property_returns_pairs():
    p, g = torch.randn(2), torch.randn(2)
    t = torch.randn(3, requires_grad=True)
    opt = VanillaSGD([(p, g), t])
    (p0, g0), (t0, tg) = opt.params
    assert p0 is p and g0 is g and t0 is t and tg is None


def test_accepts_generator_of_module_parameters():
    model = torch.nn.Linear(3, 2)
    opt = VanillaSGD(model.parameters(), learn_rate=1.0)
    model(torch.ones(1, 3)).sum().backward()
    w_before = model.weight.detach().clone()
    opt.step()
    torch.testing.assert_close(model.weight.detach(), w_before - torch.ones(2, 3))


# The optimizers are built inside the test, not in the parameter list: in the hand-out the
# constructors of MomentumSGD and RMSProp are blanks, and one raised at collection would hide
# every test of this file from the student.
@pytest.mark.parametrize("make, text", [
    (lambda: VanillaSGD([torch.zeros(1)], learn_rate=0.5, reg=0.1),
     "VanillaSGD(learn_rate=0.5, reg=0.1, num_params=1)"),
    (lambda: MomentumSGD([torch.zeros(1), torch.zeros(1)], nesterov=True),
     "MomentumSGD(learn_rate=0.001, reg=0.0, momentum=0.9, nesterov=True, num_params=2)"),
    (lambda: RMSProp([torch.zeros(1)]),
     "RMSProp(learn_rate=0.001, reg=0.0, decay=0.99, eps=1e-08, num_params=1)"),
    (lambda: Adam([torch.zeros(1)], beta1=0.5),
     "Adam(learn_rate=0.001, reg=0.0, beta1=0.5, beta2=0.999, eps=1e-08, num_params=1)"),
], ids=["VanillaSGD", "MomentumSGD", "RMSProp", "Adam"])
def test_repr_shows_hyperparameters(make, text):
    assert repr(make()) == text


def test_optimizer_is_abstract():
    with pytest.raises(TypeError):
        Optimizer([torch.zeros(1)])


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs, needle", [
    (VanillaSGD, dict(learn_rate=-0.1), "learn_rate"),
    (VanillaSGD, dict(reg=-1e-3), "reg"),
    (MomentumSGD, dict(momentum=1.0), "momentum"),
    (MomentumSGD, dict(momentum=-0.1), "momentum"),
    (MomentumSGD, dict(learn_rate=float("nan")), "learn_rate"),
    (RMSProp, dict(decay=0.0), "decay"),
    (RMSProp, dict(decay=1.0), "decay"),
    (RMSProp, dict(eps=0.0), "eps"),
    (RMSProp, dict(eps=-1e-8), "eps"),
    (Adam, dict(beta1=1.0), "beta1"),
    (Adam, dict(beta2=1.5), "beta2"),
    (Adam, dict(beta2=-0.5), "beta2"),
    (Adam, dict(eps=0), "eps"),
    (Adam, dict(learn_rate=float("inf")), "learn_rate"),
])
def test_invalid_hyperparameters_raise_value_error(cls, kwargs, needle):
    (value,) = kwargs.values()
    with pytest.raises(ValueError) as info:
        cls([torch.zeros(1)], **kwargs)
    message = str(info.value)
    assert needle in message and repr(value) in message


@pytest.mark.parametrize("kwargs", [dict(learn_rate="0.1"), dict(reg=None), dict(momentum=True)])
def test_non_numeric_hyperparameters_raise_type_error(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        MomentumSGD([torch.zeros(1)], **kwargs)


def test_nesterov_must_be_bool():
    with pytest.raises(TypeError, match="nesterov"):
        MomentumSGD([torch.zeros(1)], nesterov="yes")


def test_mismatched_param_grad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"params\[1\].*\(3, 2\).*\(2, 3\)"):
        VanillaSGD([(torch.zeros(2), torch.zeros(2)), (torch.zeros(3, 2), torch.zeros(2, 3))])


@pytest.mark.parametrize("params, exc, needle", [
    ([], ValueError, "empty"),
    (torch.zeros(3), TypeError, "single Tensor"),
    (42, TypeError, "int"),
    ([torch.zeros(1), "w"], TypeError, r"params\[1\]"),
    ([(torch.zeros(1),)], TypeError, r"params\[0\]"),
    ([(torch.zeros(1), [0.0])], TypeError, "list"),
])
def test_bad_params_are_refused(params, exc, needle):
    with pytest.raises(exc, match=needle):
        VanillaSGD(params)


# ----------------------------------------------------------------------------------------------
# state_dict / load_state_dict
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opt_cls, kwargs", [
    (MomentumSGD, dict(learn_rate=0.05, nesterov=True)),
    (RMSProp, dict(learn_rate=0.01)),
    (Adam, dict(learn_rate=0.01, reg=0.1)),
])
def test_state_dict_round_trip_continues_the_same_trajectory(opt_cls, kwargs, tmp_path):
    def pairs(params):
        return [(p, torch.zeros_like(p)) for p in params]

    def run(opt, params, steps):
        for step in steps:
            for (p, g), new in zip(opt.params, gradient_at(params, step)):
                g.copy_(new)
            opt.step()

    straight = make_params()
    opt = opt_cls(pairs(straight), **kwargs)
    run(opt, straight, range(6))

    first = make_params()
    opt_a = opt_cls(pairs(first), **kwargs)
    run(opt_a, first, range(3))
    torch.save(opt_a.state_dict(), tmp_path / "opt.pt")
    second = [p.clone() for p in first]
    opt_b = opt_cls(pairs(second), **kwargs)
    opt_b.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    run(opt_b, second, range(3, 6))
    for a, b in zip(second, straight):
        torch.testing.assert_close(a, b, **TIGHT)


def test_load_state_dict_refuses_state_of_other_params():
    opt = Adam([(torch.zeros(3), torch.ones(3))])
    opt.step()
    other = Adam([(torch.zeros(4), torch.ones(4))])
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="index"):
        other.load_state_dict({"state": {5: {}}})
    with pytest.raises(ValueError, match="'state'"):
        other.load_state_dict([1, 2])


# ----------------------------------------------------------------------------------------------
# A parameter given twice; numpy scalars
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opt_cls", [VanillaSGD, MomentumSGD, RMSProp, Adam])
def test_parameter_given_twice_is_refused(opt_cls):
    w, b = torch.zeros(3, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"params\[2\] \(shape \(3, 2\)\) shares its memory with "
                                         r"params\[0\]; give every parameter once"):
        opt_cls([w, b, w])


def test_pair_sharing_a_parameter_and_a_view_of_it_are_refused():
    w, gw = torch.zeros(3, 2), torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"params\[1\] \(shape \(6,\)\) shares its memory with "
                                         r"params\[0\]"):
        VanillaSGD([(w, gw), (w.view(-1), gw.view(-1))])


def test_empty_parameters_are_not_duplicates():
    opt = VanillaSGD([torch.zeros(0), torch.zeros(0), torch.zeros(2)])
    assert len(opt.params) == 3


def test_numpy_scalars_are_accepted_as_hyperparameters():
    import numpy as np

    opt = MomentumSGD([torch.zeros(1)], learn_rate=np.float32(0.5), reg=np.int64(0),
                      momentum=np.float64(0.25), nesterov=np.bool_(True))
    assert (opt.learn_rate, opt.reg, opt.momentum, opt.nesterov) == (0.5, 0.0, 0.25, True)
    assert type(opt.nesterov) is bool
