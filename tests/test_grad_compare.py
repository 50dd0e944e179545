"""Tests of hw2.grad_compare.compare_layer_to_torch: it must pass correct layers, catch wrong
backward passes, and leave the layer exactly as one ordinary forward/backward step would."""
import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import hw2.layers as layers
from hw2.grad_compare import compare_layer_to_torch

F64 = torch.float64


def randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def seeded_output_grad(shape, seed=42, dtype=F64):
    """The upstream gradient the function documents: N(0, 1) from a generator seeded with seed."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class WrongSigmoid(layers.Sigmoid):
    """Forgets the (1 - s) factor of the derivative."""

    def backward(self, dout):
        return dout * self.grad_cache["out"]


class WrongBiasLinear(layers.Linear):
    """Correct dx and dw, but db doubled."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.db += dout.sum(dim=0)
        return dx


class OverwritingLinear(layers.Linear):
    """Assigns new gradient tensors instead of accumulating into the existing ones."""

    def backward(self, dout):
        x = self.grad_cache["x"]
        self.dw = dout.T @ x
        self.db = dout.sum(dim=0)
        return dout @ self.w


class StaleDropout(layers.Dropout):
    """Back-propagates through a fresh mask instead of the one used in forward."""

    def backward(self, dout):
        return dout * (torch.rand_like(dout) >= self.p) / (1 - self.p)


def test_correct_layers_give_zero_diffs_and_one_entry_per_tensor():
    fc = layers.Linear(20, 8, dtype=F64)
    diffs = compare_layer_to_torch(fc, randn(16, 20), verbose=False)
    assert len(diffs) == 3 and all(isinstance(d, float) for d in diffs)
    assert max(diffs) < 1e-12


def test_wrong_input_gradient_is_detected():
    diffs = compare_layer_to_torch(WrongSigmoid(), randn(30, 10), verbose=False)
    assert diffs[0] > 1.0


def test_wrong_parameter_gradient_is_detected_in_the_right_slot():
    diffs = compare_layer_to_torch(WrongBiasLinear(10, 5, dtype=F64), randn(30, 10), verbose=False)
    assert diffs[0] < 1e-12 and diffs[1] < 1e-12
    assert diffs[2] > 1.0


def test_stale_dropout_mask_is_detected_but_the_real_one_passes():
    x = randn(200, 50)
    assert compare_layer_to_torch(StaleDropout(0.5), x, verbose=False)[0] > 1.0
    assert compare_layer_to_torch(layers.Dropout(0.5), x, verbose=False)[0] == 0.0


def test_gradients_that_bypass_params_are_detected():
    # A backward that binds new dw/db tensors leaves the ones an optimizer holds (the pairs
    # params() returned before the pass) without this pass's gradient.
    layer = OverwritingLinear(6, 4, dtype=F64)
    layer(randn(3, 6))
    layer.backward(randn(3, 4, seed=1))
    diffs = compare_layer_to_torch(layer, randn(5, 6), verbose=False)
    assert diffs[0] < 1e-12
    assert max(diffs[1:]) > 1e-3


def test_compared_gradient_is_this_pass_only_and_accumulation_is_preserved():
    """The seed's second-backward-pass situation: the layer already holds gradients."""
    fc = layers.Linear(12, 6, dtype=F64)
    fc(randn(9, 12, seed=1))
    fc.backward(randn(9, 6, seed=2))
    old_dw, old_db = fc.dw.clone(), fc.db.clone()
    x = randn(10, 12, seed=3)
    fc(x)
    fc(x)  # forward twice, as the seed does; neither touches the gradients
    diffs = compare_layer_to_torch(fc, x, verbose=False)
    assert max(diffs) < 1e-12

    # Independently: the gradient of one pass with the documented upstream gradient.
    dz = seeded_output_grad((10, 6))
    w = fc.w.clone().requires_grad_(True)
    b = fc.b.clone().requires_grad_(True)
    F.linear(x, w, b).backward(dz)
    assert_close(fc.dw, old_dw + w.grad, rtol=0, atol=0)
    assert_close(fc.db, old_db + b.grad, rtol=0, atol=0)


def test_layer_state_after_compare_is_that_of_one_ordinary_step():
    torch.manual_seed(0)
    mlp = layers.MLP(8, 3, [10], dropout=0.5, dtype=F64)
    reference = copy.deepcopy(mlp)
    x = randn(20, 8)
    w_before = [p.clone() for p, _ in mlp.params()]

    compare_layer_to_torch(mlp, x, verbose=False)

    torch.manual_seed(42)
    reference(x)
    reference.backward(seeded_output_grad((20, 3)))
    for (p, g), (p_ref, g_ref), w0 in zip(mlp.params(), reference.params(), w_before):
        assert torch.equal(p, w0)  # parameters untouched
        assert not p.requires_grad and p.grad is None
        assert torch.equal(g, g_ref)
    cached_x = mlp.sequence[0].grad_cache["x"]
    assert not cached_x.requires_grad  # no autograd graph left inside our layer


def test_scalar_output_uses_unit_upstream_gradient():
    ce = layers.CrossEntropyLoss()
    x, y = randn(7, 4), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    diffs = compare_layer_to_torch(ce, x, y=y, verbose=False)
    assert len(diffs) == 1 and diffs[0] < 1e-12
    # After the comparison the layer's cache is from our pass: its backward(1.0) is CE's grad.
    xt = x.clone().requires_grad_(True)
    F.cross_entropy(xt, y).backward()
    assert_close(ce.backward(1.0), xt.grad, rtol=1e-12, atol=1e-14)


def test_global_rng_state_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    compare_layer_to_torch(layers.Dropout(0.3), randn(50, 5), verbose=False)
    assert torch.equal(torch.rand(5), expected)


def test_printout_format(capsys):
    compare_layer_to_torch(layers.Linear(4, 3, dtype=F64), randn(5, 4))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == "Comparing gradients..."
    assert re.fullmatch(r"input    diff=0\.000", lines[1])
    assert re.fullmatch(r"param#01 diff=0\.000", lines[2])
    assert re.fullmatch(r"param#02 diff=0\.000", lines[3])
    assert len(lines) == 4


def test_verbose_false_prints_nothing(capsys):
    compare_layer_to_torch(layers.ReLU(), randn(5, 4), verbose=False)
    assert capsys.readouterr().out == ""


def test_bad_arguments():
    with pytest.raises(TypeError, match="layer must be a hw2.layers.Layer, got Linear"):
        compare_layer_to_torch(torch.nn.Linear(2, 2), torch.randn(3, 2))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.int64"):
        compare_layer_to_torch(layers.ReLU(), torch.ones(3, 2, dtype=torch.long))
