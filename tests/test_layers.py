"""Tests of hw2.layers against independent oracles.

Oracles: torch.nn.functional (forward values and, through autograd, gradients), constructions
from plain torch.nn, centred finite differences, and hand arithmetic. Everything that checks a
value runs in float64 with torch.testing.assert_close at tight tolerance.
"""
import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import hw2.layers as layers
from hw2.grad_compare import compare_layer_to_torch

F64 = torch.float64
TOL = 1e-8  # bound on compare_layer_to_torch diffs in float64


def randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def labels(n, c, seed=1):
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def assert_diffs_small(diffs, n_expected, tol=TOL):
    assert len(diffs) == n_expected
    assert all(d < tol for d in diffs), diffs


def numeric_grad(f, x, h=1e-6):
    """Centred finite differences of the scalar function ``f`` at ``x`` (float64)."""
    x = x.clone()
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        f_plus = float(f(x))
        flat[i] = old - h
        f_minus = float(f(x))
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * h)
    return grad


# ----------------------------------------------------------------------------------------------
# Elementwise activations
# ----------------------------------------------------------------------------------------------

ACTIVATIONS = [
    pytest.param(lambda: layers.LeakyReLU(alpha=0.1), lambda x: F.leaky_relu(x, 0.1), id="lrelu0.1"),
    pytest.param(lambda: layers.LeakyReLU(), lambda x: F.leaky_relu(x, 0.01), id="lrelu-default"),
    pytest.param(lambda: layers.LeakyReLU(alpha=0.5), lambda x: F.leaky_relu(x, 0.5), id="lrelu0.5"),
    pytest.param(layers.ReLU, torch.relu, id="relu"),
    pytest.param(layers.Sigmoid, torch.sigmoid, id="sigmoid"),
    pytest.param(layers.TanH, torch.tanh, id="tanh"),
]
SHAPES = [(100, 200), (20, 30, 40), (7,), (2, 3, 4, 5)]


@pytest.mark.parametrize("make, ref", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_forward_matches_torch(make, ref, shape):
    x = randn(*shape) * 3
    z = make()(x)
    assert z.shape == x.shape
    assert_close(z, ref(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, ref", ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_activation_backward_matches_autograd(make, ref, shape):
    x, dout = randn(*shape, seed=2) * 3, randn(*shape, seed=3)
    layer = make()
    layer(x)
    dx = layer.backward(dout)
    xt = x.clone().requires_grad_(True)
    ref(xt).backward(dout)
    assert_close(dx, xt.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, ref", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(100, 200), (30, 40, 40)], ids=str)
def test_activation_compare_layer_to_torch(make, ref, shape):
    assert_diffs_small(compare_layer_to_torch(make(), randn(*shape), verbose=False), 1)


@pytest.mark.parametrize("make, ref", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(make, ref):
    x = randn(4, 5, seed=4) + 0.05  # keep away from the kink at 0 (the seed draws no exact 0)
    x[x.abs() < 1e-3] = 0.5
    dout = randn(4, 5, seed=5)
    layer = make()
    layer(x)
    dx = layer.backward(dout)
    assert_close(dx, numeric_grad(lambda v: (make()(v) * dout).sum(), x), rtol=1e-6, atol=1e-8)


def test_sigmoid_and_tanh_are_finite_for_extreme_inputs():
    x = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=F64)
    for layer in (layers.Sigmoid(), layers.TanH()):
        z = layer(x)
        dx = layer.backward(torch.ones_like(x))
        assert torch.isfinite(z).all() and torch.isfinite(dx).all()
    assert_close(layers.Sigmoid()(x), torch.tensor([0.0, 3.7200759760208356e-44, 0.5, 1.0, 1.0], dtype=F64))


def test_relu_derivative_at_zero_is_zero_and_lrelu_is_alpha():
    x = torch.zeros(3, dtype=F64)
    relu, lrelu = layers.ReLU(), layers.LeakyReLU(alpha=0.2)
    relu(x)
    lrelu(x)
    assert_close(relu.backward(torch.ones(3, dtype=F64)), torch.zeros(3, dtype=F64))
    assert_close(lrelu.backward(torch.ones(3, dtype=F64)), torch.full((3,), 0.2, dtype=F64))


# A number outside [0, 1) is a bad value; anything that is no number is of the wrong type.
@pytest.mark.parametrize("alpha, exc", [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                                        ("0.1", TypeError), (None, TypeError), (True, TypeError)])
def test_leaky_relu_rejects_alpha_outside_unit_interval(alpha, exc):
    with pytest.raises(exc, match=r"alpha must be a number in \[0, 1\)"):
        layers.LeakyReLU(alpha=alpha)


def test_numpy_numbers_are_accepted_as_hyperparameters():
    np = pytest.importorskip("numpy")
    assert layers.LeakyReLU(alpha=np.float32(0.25)).alpha == 0.25
    assert layers.Dropout(p=np.float64(0.5)).p == 0.5
    fc = layers.Linear(np.int64(3), np.int32(2), wstd=np.float32(0.5))
    assert (fc.in_features, fc.out_features, fc.w.shape) == (3, 2, (2, 3))
    with pytest.raises(TypeError, match="in_features must be an integer >= 1, got 2.5"):
        layers.Linear(2.5, 3)


def test_activation_reprs():
    assert str(layers.ReLU()) == "ReLU"
    assert repr(layers.LeakyReLU(alpha=0.1)) == "LeakyReLU(alpha=0.1)"
    assert str(layers.Sigmoid()).lower() == "sigmoid"
    assert str(layers.TanH()).lower() == "tanh"
    assert all(layer.params() == [] for layer in
               (layers.ReLU(), layers.LeakyReLU(), layers.Sigmoid(), layers.TanH()))


# ----------------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(100, 200), (6, 5, 200)], ids=str)
def test_linear_forward_matches_torch(shape):
    fc = layers.Linear(200, 30, dtype=F64)
    fc.b.copy_(randn(30, seed=9))  # the default zero bias would not test the bias term
    x = randn(*shape)
    z = fc(x)
    assert z.shape == shape[:-1] + (30,)
    assert_close(z, F.linear(x, fc.w, fc.b), rtol=1e-12, atol=1e-12)
    torch_fc = torch.nn.Linear(200, 30, dtype=F64)
    with torch.no_grad():
        torch_fc.weight.copy_(fc.w)
        torch_fc.bias.copy_(fc.b)
        assert_close(torch_fc(x), z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(100, 200), (6, 5, 200)], ids=str)
def test_linear_backward_matches_autograd(shape):
    fc = layers.Linear(200, 30, dtype=F64)
    x, dout = randn(*shape), randn(*shape[:-1], 30, seed=1)
    fc(x)
    dx = fc.backward(dout)
    xt = x.clone().requires_grad_(True)
    w = fc.w.clone().requires_grad_(True)
    b = fc.b.clone().requires_grad_(True)
    F.linear(xt, w, b).backward(dout)
    assert_close(dx, xt.grad, rtol=1e-12, atol=1e-12)
    assert_close(fc.dw, w.grad, rtol=1e-12, atol=1e-12)
    assert_close(fc.db, b.grad, rtol=1e-12, atol=1e-12)


def test_linear_backward_matches_finite_differences():
    fc = layers.Linear(5, 3, dtype=F64)
    fc.b.copy_(randn(3, seed=7))
    x, dout = randn(4, 5), randn(4, 3, seed=1)
    fc(x)
    dx = fc.backward(dout)

    def loss_of(w=fc.w, b=fc.b, v=x):
        return (F.linear(v, w, b) * dout).sum()

    assert_close(dx, numeric_grad(lambda v: loss_of(v=v), x), rtol=1e-6, atol=1e-8)
    assert_close(fc.dw, numeric_grad(lambda w: loss_of(w=w), fc.w), rtol=1e-6, atol=1e-8)
    assert_close(fc.db, numeric_grad(lambda b: loss_of(b=b), fc.b), rtol=1e-6, atol=1e-8)


def test_linear_compare_including_seed_second_backward_pass():
    fc = layers.Linear(200, 1000, dtype=F64)
    assert_diffs_small(compare_layer_to_torch(fc, randn(100, 200), verbose=False), 3)
    x = randn(100, 200, seed=5)
    fc(x)
    fc(x)
    assert_diffs_small(compare_layer_to_torch(fc, x, verbose=False), 3)


def test_linear_gradients_accumulate_across_backward_passes():
    fc = layers.Linear(20, 7, dtype=F64)
    x1, x2 = randn(10, 20, seed=1), randn(10, 20, seed=2)
    d1, d2 = randn(10, 7, seed=3), randn(10, 7, seed=4)
    singles = []
    for x, d in ((x1, d1), (x2, d2)):
        fresh = copy.deepcopy(fc)
        fresh(x)
        fresh.backward(d)
        singles.append((fresh.dw.clone(), fresh.db.clone()))
    for x, d in ((x1, d1), (x2, d2)):
        fc(x)
        fc.backward(d)
    assert_close(fc.dw, singles[0][0] + singles[1][0], rtol=1e-12, atol=1e-12)
    assert_close(fc.db, singles[0][1] + singles[1][1], rtol=1e-12, atol=1e-12)
    assert fc.dw.abs().sum() > 0
    # params() hands out the very tensors that accumulate, so an optimizer can zero them.
    (w, dw), (b, db) = fc.params()
    assert w is fc.w and dw is fc.dw and b is fc.b and db is fc.db


def test_linear_initialisation_and_reset():
    torch.manual_seed(0)
    fc = layers.Linear(400, 500, wstd=0.3)
    assert fc.w.shape == (500, 400) and fc.b.shape == (500,)
    assert fc.dw.shape == fc.w.shape and fc.db.shape == fc.b.shape
    assert fc.w.dtype == torch.get_default_dtype()
    assert abs(fc.w.mean().item()) < 0.003
    assert fc.w.std().item() == pytest.approx(0.3, rel=0.01)
    assert torch.count_nonzero(fc.b) == 0
    fc(torch.randn(3, 400))
    fc.backward(torch.randn(3, 500))
    w_before = fc.w.clone()
    fc.reset_parameters()
    assert not torch.equal(fc.w, w_before)
    assert torch.count_nonzero(fc.dw) == 0 and torch.count_nonzero(fc.db) == 0
    assert torch.count_nonzero(layers.Linear(3, 4, wstd=0).w) == 0


def test_linear_repr():
    assert repr(layers.Linear(200, 100)) == "Linear(200, 100)"
    assert str(layers.Linear(3, 4)) == "Linear(3, 4)"


def test_linear_wrong_feature_count_names_expected_and_received_shapes():
    fc = layers.Linear(200, 100)
    with pytest.raises(ValueError, match=re.escape("expected input of shape (N, 200), got (100, 150)")):
        fc(torch.randn(100, 150))


def test_linear_bad_arguments():
    with pytest.raises(TypeError, match=re.escape("expected input of dtype torch.float32, got torch.float64")):
        layers.Linear(3, 4)(torch.randn(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        layers.Linear(3, 4)([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="in_features must be an integer >= 1, got 0"):
        layers.Linear(0, 4)
    with pytest.raises(ValueError, match=r"wstd must be a finite number >= 0\.0, got -1"):
        layers.Linear(3, 4, wstd=-1)
    floats = "torch.float16, torch.bfloat16, torch.float32, torch.float64"
    with pytest.raises(ValueError) as info:  # a dtype, but not one parameters can have
        layers.Linear(3, 4, dtype=torch.long)
    assert str(info.value) == f"dtype must be one of {floats}, got torch.int64"
    with pytest.raises(TypeError) as info:  # not a dtype at all
        layers.Linear(3, 4, dtype="float32")
    assert str(info.value) == f"dtype must be one of {floats}, got 'float32'"
    assert layers.Linear(3, 4, dtype=torch.bfloat16).w.dtype == torch.bfloat16


def test_backward_validates_dout_and_order():
    fc = layers.Linear(3, 4)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward\\(\\)"):
        fc.backward(torch.randn(2, 4))
    fc(torch.randn(2, 3))
    with pytest.raises(ValueError, match=re.escape("expected dout of shape (2, 4)") + ".*got \\(2, 5\\)"):
        fc.backward(torch.randn(2, 5))
    relu = layers.ReLU()
    relu(torch.randn(2, 3))
    with pytest.raises(ValueError, match=re.escape("expected dout of shape (2, 3)")):
        relu.backward(torch.randn(3, 2))


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, c, scale", [(100, 10, 1.0), (1, 3, 1.0), (16, 5, 1e4), (8, 2, 1e-3)])
def test_cross_entropy_matches_torch(n, c, scale):
    x, y = randn(n, c) * scale, labels(n, c)
    ce = layers.CrossEntropyLoss()
    loss = ce(x, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert_close(loss, F.cross_entropy(x, y), rtol=1e-12, atol=1e-12)
    dx = ce.backward()
    xt = x.clone().requires_grad_(True)
    F.cross_entropy(xt, y).backward()
    assert_close(dx, xt.grad, rtol=1e-10, atol=1e-12)


def test_cross_entropy_float32_seed_check():
    x, y = torch.randn(100, 10), torch.randint(0, 10, (100,))
    assert abs(layers.CrossEntropyLoss()(x, y) - F.cross_entropy(x, y)).item() < 1e-5


def test_cross_entropy_backward_scales_with_dout_and_matches_finite_differences():
    x, y = randn(6, 4), labels(6, 4)
    ce = layers.CrossEntropyLoss()
    ce(x, y)
    dx = ce.backward(torch.tensor(2.5, dtype=F64))
    assert_close(dx, 2.5 * numeric_grad(lambda v: F.cross_entropy(v, y), x), rtol=1e-6, atol=1e-9)
    ce(x, y)
    assert_close(ce.backward(1.0), numeric_grad(lambda v: layers.CrossEntropyLoss()(v, y), x),
                 rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.uint8])
def test_cross_entropy_accepts_integer_label_dtypes(dtype):
    x, y = randn(5, 3), labels(5, 3)
    assert_close(layers.CrossEntropyLoss()(x, y.to(dtype)), F.cross_entropy(x, y))


def test_cross_entropy_compare_layer_to_torch():
    assert_diffs_small(compare_layer_to_torch(layers.CrossEntropyLoss(), randn(100, 10),
                                              y=labels(100, 10), verbose=False), 1)


@pytest.mark.parametrize("x_shape, y, message", [
    ((100, 10), torch.zeros(99, dtype=torch.long), "expected labels y of shape (100,), got (99,)"),
    ((100, 10), torch.zeros(100, 1, dtype=torch.long), "expected labels y of shape (100,), got (100, 1)"),
    ((100, 10), torch.zeros(100), "expected integer labels y (e.g. torch.long), got dtype torch.float32"),
    ((4, 10), torch.tensor([0, 1, 10, 2]), "expected labels in [0, 9], got values in [0, 10]"),
    ((4, 10), torch.tensor([0, -1, 3, 2]), "expected labels in [0, 9], got values in [-1, 3]"),
    ((100,), torch.zeros(100, dtype=torch.long), "expected scores x of shape (N, C), got (100,)"),
])
def test_cross_entropy_bad_input_messages(x_shape, y, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layers.CrossEntropyLoss()(torch.randn(*x_shape), y)


@pytest.mark.parametrize("x_shape", [(50,), (50, 1)], ids=str)
@pytest.mark.parametrize("y_shape", [(50,), (50, 1)], ids=str)
def test_bce_with_logits_matches_torch(x_shape, y_shape):
    x = randn(*x_shape) * 4
    y = (randn(*y_shape, seed=1) > 0).to(F64)
    bce = layers.BCEWithLogitsLoss()
    loss = bce(x, y)
    target = y.reshape(x_shape)
    assert_close(loss, F.binary_cross_entropy_with_logits(x, target), rtol=1e-12, atol=1e-12)
    dx = bce.backward()
    assert dx.shape == x.shape
    xt = x.clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(xt, target).backward()
    assert_close(dx, xt.grad, rtol=1e-12, atol=1e-14)


def test_bce_with_logits_accepts_integer_and_bool_targets():
    x = randn(8)
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    expected = F.binary_cross_entropy_with_logits(x, y.to(F64))
    assert_close(layers.BCEWithLogitsLoss()(x, y), expected)
    assert_close(layers.BCEWithLogitsLoss()(x, y.bool()), expected)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_bce_with_logits_is_finite_for_huge_logits(dtype):
    x = torch.tensor([1e10, -1e10, 1e10, -1e10, 0.0], dtype=dtype)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype)
    bce = layers.BCEWithLogitsLoss()
    loss = bce(x, y)
    assert torch.isfinite(loss)
    assert_close(loss, F.binary_cross_entropy_with_logits(x, y))
    dx = bce.backward()
    assert torch.isfinite(dx).all()
    assert_close(dx, torch.tensor([0.0, 0.0, 1.0, -1.0, -0.5], dtype=dtype) / 5)


def test_bce_with_logits_matches_finite_differences():
    x, y = randn(7), (randn(7, seed=2) > 0).to(F64)
    bce = layers.BCEWithLogitsLoss()
    bce(x, y)
    dx = bce.backward(torch.tensor(3.0, dtype=F64))
    assert_close(dx, 3.0 * numeric_grad(lambda v: layers.BCEWithLogitsLoss()(v, y), x),
                 rtol=1e-6, atol=1e-9)


def test_bce_with_logits_compare_layer_to_torch():
    y = (randn(64, 1, seed=3) > 0).float()
    assert_diffs_small(compare_layer_to_torch(layers.BCEWithLogitsLoss(), randn(64, 1), y=y,
                                              verbose=False), 1)


@pytest.mark.parametrize("x_shape, y, message", [
    ((10,), torch.zeros(9), "expected N >= 1 logits x and N targets y, each (N,) or (N, 1), got shapes (10,) and (9,)"),
    ((10, 2), torch.zeros(10), "each (N,) or (N, 1), got shapes (10, 2) and (10,)"),
    ((3,), torch.tensor([0.0, 2.0, 1.0]), "expected targets y in [0, 1], got values in [0.0, 2.0]"),
])
def test_bce_with_logits_bad_input_messages(x_shape, y, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        layers.BCEWithLogitsLoss()(torch.randn(*x_shape), y)


def test_loss_backward_rejects_non_scalar_dout():
    ce = layers.CrossEntropyLoss()
    ce(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="scalar dout, got a tensor of shape \\(3,\\)"):
        ce.backward(torch.ones(3))


@pytest.mark.parametrize("dout, exc", [("1.0", TypeError), (None, TypeError), (True, TypeError),
                                       (float("nan"), ValueError), (float("inf"), ValueError)])
def test_loss_backward_refuses_a_dout_that_is_no_finite_number(dout, exc):
    for loss, y in [(layers.CrossEntropyLoss(), torch.tensor([0, 1, 1])),
                    (layers.BCEWithLogitsLoss(), torch.tensor([0.0, 1.0, 1.0]))]:
        loss(torch.randn(3, 2) if y.dtype == torch.long else torch.randn(3), y)
        with pytest.raises(exc) as info:
            loss.backward(dout)
        assert type(info.value) is exc
        assert str(info.value) == f"dout must be a finite number or a scalar tensor, got {dout!r}"


@pytest.mark.parametrize("dout", [2, 2.0, np.float32(2.0), torch.tensor(2.0), torch.tensor([2.0])])
def test_loss_backward_scales_by_a_number_or_a_one_element_tensor(dout):
    x, y = randn(3, 2), torch.tensor([0, 1, 1])
    loss = layers.CrossEntropyLoss()
    loss(x, y)
    # Oracle: autograd on torch's own cross-entropy, scaled by the same upstream gradient.
    xt = x.clone().requires_grad_(True)
    (F.cross_entropy(xt, y) * 2.0).backward()
    assert_close(loss.backward(dout), xt.grad)


# ----------------------------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 0.3, 0.6])
def test_dropout_eval_mode_is_identity(p):
    drop = layers.Dropout(p).train(False)
    x, dout = randn(50, 40), randn(50, 40, seed=1)
    assert torch.equal(drop(x), x)
    assert torch.equal(drop.backward(dout), dout)


@pytest.mark.parametrize("p", [0.1, 0.4, 0.6, 0.9])
def test_dropout_train_mode_drops_about_p_and_rescales(p):
    torch.manual_seed(0)
    drop = layers.Dropout(p)
    x = randn(400, 500) + 10.0  # no zeros in x, so every zero in the output was dropped
    z = drop(x)
    dropped = z == 0
    assert dropped.double().mean().item() == pytest.approx(p, abs=0.005)
    assert_close(z[~dropped], x[~dropped] / (1 - p), rtol=1e-15, atol=0)
    # Backward routes the gradient through the same mask and scale (hand arithmetic).
    dout = randn(400, 500, seed=1)
    assert_close(drop.backward(dout), dout * (~dropped) / (1 - p), rtol=1e-15, atol=0)
    # A new forward draws a new mask.
    assert not torch.equal(drop(x) == 0, dropped)


def test_dropout_p_zero_in_training_mode_is_identity():
    x = randn(10, 10)
    assert torch.equal(layers.Dropout(0.0)(x), x)


def test_dropout_compare_layer_to_torch_in_both_modes():
    for mode in (True, False):
        drop = layers.Dropout(0.5).train(mode)
        assert_diffs_small(compare_layer_to_torch(drop, randn(100, 30), verbose=False), 1)


@pytest.mark.parametrize("p, exc", [(-0.1, ValueError), (1.0, ValueError), (2, ValueError),
                                    ("0.5", TypeError)])
def test_dropout_rejects_bad_p(p, exc):
    with pytest.raises(exc, match=r"p must be a number in \[0, 1\)"):
        layers.Dropout(p)


def test_dropout_repr():
    assert repr(layers.Dropout(p=0.6)) == "Dropout(p=0.6)"
    assert str(layers.Dropout()) == "Dropout(p=0.5)"


# ----------------------------------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------------------------------

def seed_long_sequential(dtype=F64):
    """The long Sequential of the seed notebook's Part 1."""
    torch.manual_seed(3)
    kw = dict(dtype=dtype)
    return layers.Sequential(
        layers.Linear(200, 100, **kw), layers.Linear(100, 200, **kw), layers.Linear(200, 100, **kw),
        layers.ReLU(), layers.Linear(100, 500, **kw), layers.LeakyReLU(alpha=0.01),
        layers.Linear(500, 200, **kw), layers.ReLU(), layers.Linear(200, 500, **kw),
        layers.LeakyReLU(alpha=0.1), layers.Linear(500, 1, **kw), layers.Sigmoid(),
    )


def torch_twin(seq):
    """Build the same network from plain torch.nn modules, sharing copies of our weights."""
    modules = []
    for layer in seq:
        if isinstance(layer, layers.Linear):
            fc = torch.nn.Linear(layer.in_features, layer.out_features, dtype=layer.w.dtype)
            with torch.no_grad():
                fc.weight.copy_(layer.w)
                fc.bias.copy_(layer.b)
            modules.append(fc)
        elif isinstance(layer, layers.ReLU):
            modules.append(torch.nn.ReLU())
        elif isinstance(layer, layers.LeakyReLU):
            modules.append(torch.nn.LeakyReLU(layer.alpha))
        elif isinstance(layer, layers.Sigmoid):
            modules.append(torch.nn.Sigmoid())
        else:
            raise AssertionError(f"no twin for {layer!r}")
    return torch.nn.Sequential(*modules)


def test_seed_long_sequential_matches_torch_nn_construction():
    seq = seed_long_sequential()
    twin = torch_twin(seq)
    x, dout = randn(100, 200), randn(100, 1, seed=1)
    z = seq(x)
    assert z.shape == (100, 1)
    dx = seq.backward(dout)
    xt = x.clone().requires_grad_(True)
    zt = twin(xt)
    assert_close(z, zt.detach(), rtol=1e-12, atol=1e-12)
    zt.backward(dout)
    assert_close(dx, xt.grad, rtol=1e-10, atol=1e-14)
    twin_grads = [g for p in twin.parameters() for g in (p.grad,)]
    ours = [g for _, g in seq.params()]
    assert len(ours) == len(twin_grads) == 14
    for g, gt in zip(ours, twin_grads):
        assert_close(g, gt, rtol=1e-10, atol=1e-14)


def test_seed_long_sequential_compare_layer_to_torch():
    assert_diffs_small(compare_layer_to_torch(seed_long_sequential(), randn(100, 200),
                                              verbose=False), 15)


def test_seed_long_sequential_float32_matches_seed_check():
    diffs = compare_layer_to_torch(seed_long_sequential(torch.float32), torch.randn(100, 200),
                                   verbose=False)
    assert max(diffs) < 1e-5


def test_sequential_container_behaviour():
    a, b, c = layers.Linear(4, 3), layers.ReLU(), layers.Dropout(0.2)
    seq = layers.Sequential(a, b, c)
    assert len(seq) == 3
    assert seq[0] is a and seq[-1] is c
    assert list(seq) == [a, b, c]
    tail = seq[1:]
    assert isinstance(tail, layers.Sequential) and list(tail) == [b, c]
    assert [p for p, _ in seq.params()] == [a.w, a.b]
    seq.train(False)
    assert not (seq.training_mode or a.training_mode or c.training_mode)
    seq.train()
    assert seq.training_mode and c.training_mode
    with pytest.raises(TypeError, match="argument 1 must be a Layer, got Linear"):
        layers.Sequential(a, torch.nn.Linear(3, 3))


def test_sequential_passes_keyword_arguments_to_the_loss():
    seq = layers.Sequential(layers.Linear(5, 3, dtype=F64), layers.ReLU(), layers.CrossEntropyLoss())
    x, y = randn(8, 5), labels(8, 3)
    loss = seq(x, y=y)
    fc = seq[0]
    assert_close(loss, F.cross_entropy(torch.relu(F.linear(x, fc.w, fc.b)), y))


def test_sequential_repr():
    seq = layers.Sequential(layers.Linear(200, 100), layers.ReLU(), layers.Dropout(0.6))
    assert repr(seq) == "Sequential\n\t[0] Linear(200, 100)\n\t[1] ReLU\n\t[2] Dropout(p=0.6)"


def test_every_forward_ignores_unknown_keyword_arguments():
    x = randn(4, 3)
    for layer in (layers.ReLU(), layers.LeakyReLU(), layers.Sigmoid(), layers.TanH(),
                  layers.Linear(3, 2, dtype=F64), layers.Dropout(0.5),
                  layers.Sequential(layers.ReLU()), layers.MLP(3, 2, dtype=F64)):
        assert layer(x, y=None, foo=1).shape[0] == 4
    assert layers.CrossEntropyLoss()(x, y=labels(4, 3), foo=1).dim() == 0
    assert layers.BCEWithLogitsLoss()(x[:, 0], y=torch.ones(4), foo=1).dim() == 0


def test_layer_is_abstract():
    with pytest.raises(TypeError):
        layers.Layer()


# ----------------------------------------------------------------------------------------------
# MLP
# ----------------------------------------------------------------------------------------------

SEED_MLP_REPR = """MLP, Sequential
\t[0] Linear(200, 100)
\t[1] ReLU
\t[2] Linear(100, 50)
\t[3] ReLU
\t[4] Linear(50, 100)
\t[5] ReLU
\t[6] Linear(100, 10)"""

SEED_DROPOUT_MLP_REPR = """MLP, Sequential
\t[0] Linear(3072, 50)
\t[1] ReLU
\t[2] Dropout(p=0.6)
\t[3] Linear(50, 50)
\t[4] ReLU
\t[5] Dropout(p=0.6)
\t[6] Linear(50, 50)
\t[7] ReLU
\t[8] Dropout(p=0.6)
\t[9] Linear(50, 10)"""


def test_mlp_reprs_match_seed_printout():
    assert repr(layers.MLP(200, 10, hidden_features=[100, 50, 100])) == SEED_MLP_REPR
    assert repr(layers.MLP(3072, 10, [50] * 3, dropout=0.6)) == SEED_DROPOUT_MLP_REPR


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("dropout", [0, 0.4])
def test_mlp_architecture(activation, dropout):
    mlp = layers.MLP(10, 4, hidden_features=(100, 50, 100), activation=activation, dropout=dropout)
    per_hidden = 3 if dropout else 2
    assert len(mlp.sequence) == 3 * per_hidden + 1
    kinds = [type(layer).__name__ for layer in mlp.sequence]
    act = {"relu": "ReLU", "sigmoid": "Sigmoid"}[activation]
    block = ["Linear", act] + (["Dropout"] if dropout else [])
    assert kinds == block * 3 + ["Linear"]
    widths = [(l.in_features, l.out_features) for l in mlp.sequence if isinstance(l, layers.Linear)]
    assert widths == [(10, 100), (100, 50), (50, 100), (100, 4)]
    assert len(mlp.params()) == 8
    assert all(p is q for (p, _), (q, _) in zip(mlp.params(), mlp.sequence.params()))


def test_mlp_without_hidden_layers_is_one_linear():
    mlp = layers.MLP(7, 3)
    assert [repr(l) for l in mlp.sequence] == ["Linear(7, 3)"]


def test_mlp_passes_kwargs_to_every_linear():
    mlp = layers.MLP(30, 5, [40, 20], wstd=0.0, dtype=F64)
    linears = [l for l in mlp.sequence if isinstance(l, layers.Linear)]
    assert len(linears) == 3
    assert all(l.wstd == 0.0 and l.w.dtype == F64 and torch.count_nonzero(l.w) == 0 for l in linears)


def test_mlp_rejects_unknown_activation_listing_valid_ones():
    with pytest.raises(ValueError, match=r"activation must be one of relu, sigmoid, got 'tanh'"):
        layers.MLP(3, 2, [4], activation="tanh")
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
        layers.MLP(3, 2, [4], dropout=1.0)


def test_mlp_train_propagates_to_dropout():
    mlp = layers.MLP(6, 2, [8, 8], dropout=0.5)
    mlp.train(False)
    assert not any(l.training_mode for l in mlp.sequence)
    x = torch.randn(5, 6)
    assert torch.equal(mlp(x), mlp(x))
    mlp.train(True)
    assert all(l.training_mode for l in mlp.sequence)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_mlp_with_loss_compare_layer_to_torch(activation):
    """The seed's MLP check: Sequential(MLP, CrossEntropyLoss) end to end."""
    torch.manual_seed(0)
    mlp = layers.MLP(10, 10, hidden_features=[100, 50, 100], activation=activation, dtype=F64)
    seq = layers.Sequential(mlp, layers.CrossEntropyLoss())
    x, y = randn(100, 10), labels(100, 10)
    loss = seq(x, y=y)
    assert loss.dim() == 0
    assert_diffs_small(compare_layer_to_torch(seq, x, y=y, verbose=False), 9)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_mlp_with_loss_matches_independent_autograd(activation):
    torch.manual_seed(1)
    mlp = layers.MLP(10, 6, hidden_features=[20, 15], activation=activation, dtype=F64)
    for layer in mlp.sequence:  # non-zero biases, so that db is a meaningful check
        if isinstance(layer, layers.Linear):
            layer.b.normal_()
    x, y = randn(32, 10), labels(32, 6)
    loss_layer = layers.CrossEntropyLoss()
    loss = loss_layer(mlp(x), y)
    dx = mlp.backward(loss_layer.backward())

    act = torch.relu if activation == "relu" else torch.sigmoid
    xt = x.clone().requires_grad_(True)
    tensors = [p.clone().requires_grad_(True) for p, _ in mlp.params()]
    h = xt
    for i in range(0, len(tensors), 2):
        h = F.linear(h, tensors[i], tensors[i + 1])
        if i + 2 < len(tensors):
            h = act(h)
    loss_t = F.cross_entropy(h, y)
    loss_t.backward()
    assert_close(loss, loss_t.detach(), rtol=1e-12, atol=1e-12)
    assert_close(dx, xt.grad, rtol=1e-10, atol=1e-14)
    for (_, g), t in zip(mlp.params(), tensors):
        assert_close(g, t.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("training", [True, False])
def test_mlp_with_dropout_compare_layer_to_torch(training):
    """The seed's dropout check, in train and eval mode."""
    torch.manual_seed(0)
    mlp = layers.MLP(10, 10, [50] * 3, dropout=0.6, dtype=F64).train(training)
    assert_diffs_small(compare_layer_to_torch(mlp, randn(500, 10), verbose=False), 9)


def test_mlp_with_dropout_matches_torch_construction_in_eval_and_train():
    torch.manual_seed(0)
    mlp = layers.MLP(12, 3, [16, 16], dropout=0.3, dtype=F64)
    x, dout = randn(40, 12), randn(40, 3, seed=1)
    linears = [l for l in mlp.sequence if isinstance(l, layers.Linear)]
    weights = [(l.w.clone().requires_grad_(True), l.b.clone().requires_grad_(True)) for l in linears]

    def reference(v, masks):
        for i, (w, b) in enumerate(weights):
            v = F.linear(v, w, b)
            if i < len(weights) - 1:
                v = torch.relu(v) * masks[i]
        return v

    # Eval mode: dropout is the identity.
    mlp.train(False)
    assert_close(mlp(x), reference(x, [1.0, 1.0]).detach(), rtol=1e-12, atol=1e-12)
    # Train mode: read each Dropout's mask off its own backward (ones in, scale out), then the
    # reference applies the same masks with plain torch ops under autograd.
    mlp.train(True)
    z = mlp(x)
    dx = mlp.backward(dout)
    masks = []
    for layer in mlp.sequence:
        if isinstance(layer, layers.Dropout):
            m = layer.backward(torch.ones(40, 16, dtype=F64))
            assert set(m.unique().tolist()) <= {0.0, 1 / 0.7}
            masks.append(m)
    xt = x.clone().requires_grad_(True)
    zt = reference(xt, masks)
    assert_close(z, zt.detach(), rtol=1e-12, atol=1e-12)
    zt.backward(dout)
    assert_close(dx, xt.grad, rtol=1e-10, atol=1e-14)
    for l, (w, b) in zip(linears, weights):
        assert_close(l.dw, w.grad, rtol=1e-10, atol=1e-14)
        assert_close(l.db, b.grad, rtol=1e-10, atol=1e-14)
