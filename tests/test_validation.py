"""Tests for hw2.validation: one rule (type -> TypeError, value -> ValueError), numpy accepted."""
import math

import numpy as np
import pytest

from hw2 import validation as v


@pytest.mark.parametrize("value, expected", [
    (3, 3), (np.int64(3), 3), (np.int32(7), 7), (np.uint8(1), 1),
])
def test_check_int_accepts_python_and_numpy_integers(value, expected):
    got = v.check_int("n", value, 1)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", [2.0, 2.5, True, np.bool_(True), "3", None, [3]])
def test_check_int_refuses_other_types_with_type_error(value):
    with pytest.raises(TypeError, match=r"n must be an integer >= 1, got "):
        v.check_int("n", value, 1)


@pytest.mark.parametrize("value, minimum, maximum, message", [
    (0, 1, None, "n must be an integer >= 1, got 0"),
    (11, 1, 10, "n must be an integer >= 1 and <= 10, got 11"),
    (-1, None, 5, None),
])
def test_check_int_range(value, minimum, maximum, message):
    if message is None:
        assert v.check_int("n", value, minimum, maximum) == -1
        return
    with pytest.raises(ValueError) as info:
        v.check_int("n", value, minimum, maximum)
    assert str(info.value) == message


def test_check_int_custom_expectation_text():
    with pytest.raises(ValueError, match="^width must be a positive integer, got 0$"):
        v.check_int("width", 0, 1, expected="a positive integer")


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float64(2.0), np.int64(3)])
def test_check_real_accepts_numbers(value):
    got = v.check_real("lr", value, 0.0, strict=True)
    assert type(got) is float and got == pytest.approx(float(value))


@pytest.mark.parametrize("value, exc, text", [
    ("0.1", TypeError, "lr must be a finite number > 0.0, got '0.1'"),
    (True, TypeError, "lr must be a finite number > 0.0, got True"),
    (0.0, ValueError, "lr must be a finite number > 0.0, got 0.0"),
    (math.nan, ValueError, "lr must be a finite number > 0.0, got nan"),
    (math.inf, ValueError, "lr must be a finite number > 0.0, got inf"),
])
def test_check_real_refusals(value, exc, text):
    with pytest.raises(exc) as info:
        v.check_real("lr", value, 0.0, strict=True)
    assert type(info.value) is exc and str(info.value) == text


def test_check_real_non_strict_and_infinite_allowed():
    assert v.check_real("reg", 0, 0.0) == 0.0
    assert v.check_real("t", math.inf, finite=False) == math.inf
    with pytest.raises(ValueError, match="got nan"):
        v.check_real("t", math.nan, finite=False)


def test_check_bool_choice_and_lists():
    assert v.check_bool("flag", np.bool_(False)) is False
    with pytest.raises(TypeError, match="flag must be True or False, got 1"):
        v.check_bool("flag", 1)
    assert v.check_choice("kind", "CNN", ("cnn", "resnet"), str.lower) == "cnn"
    with pytest.raises(ValueError, match="kind must be one of cnn, resnet, got 'vgg'"):
        v.check_choice("kind", "vgg", ("cnn", "resnet"))
    with pytest.raises(TypeError, match="kind must be one of cnn, resnet, got 3"):
        v.check_choice("kind", 3, ("cnn", "resnet"))
    assert v.check_int_list("K", np.array([4, 8])) == [4, 8]
    assert v.check_int_list("H", ()) == []
    with pytest.raises(ValueError, match=r"K must be a list of positive integers \(at least one\)"):
        v.check_int_list("K", [], allow_empty=False)
    with pytest.raises(ValueError, match=r"K\[1\] must be an integer >= 1, got 0"):
        v.check_int_list("K", [4, 0])
    with pytest.raises(TypeError, match="K must be a list of positive integers, got '48'"):
        v.check_int_list("K", "48")
    assert v.check_optional(v.check_int, "n", None) is None


def test_experiment_errors_follow_the_rule():
    type_flavour = v.config_error(TypeError("x must be an integer, got 'a'"))
    value_flavour = v.config_error(ValueError("x must be >= 1, got 0"))
    assert type(value_flavour) is v.ExperimentConfigError and isinstance(value_flavour, ValueError)
    assert isinstance(type_flavour, v.ExperimentConfigError) and isinstance(type_flavour, TypeError)
    assert str(type_flavour) == "x must be an integer, got 'a'"
    assert not issubclass(v.UsageError, (TypeError, ValueError))


def test_check_kwargs_copies_a_dict_and_checks_its_flags():
    params = {"kernel_size": 3, "bias": False}
    got = v.check_kwargs("conv_params", params, flags=("bias",))
    assert got == params and got is not params
    assert v.check_kwargs("conv_params", None) == {}
    with pytest.raises(TypeError, match=r"^conv_params must be a dict of keyword arguments or "
                                        r"None, got \[3\]$"):
        v.check_kwargs("conv_params", [3])
    with pytest.raises(TypeError, match=r"^conv_params\['bias'\] must be True or False, got 'no'$"):
        v.check_kwargs("conv_params", {"bias": "no"}, flags=("bias", "inplace"))
    assert v.check_kwargs("p", {"bias": "no"}) == {"bias": "no"}  # only the named flags


def test_check_tensor_names_what_it_got():
    torch = pytest.importorskip("torch")
    x = torch.zeros(2)
    assert v.check_tensor("x", x) is x
    assert v.check_tensor("y", torch.zeros(2, dtype=torch.long), floating=False) is not None
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor, got list$"):
        v.check_tensor("x", [1.0])
    with pytest.raises(TypeError, match=r"^x must be a floating-point tensor, got dtype "
                                        r"torch\.int64$"):
        v.check_tensor("x", torch.zeros(2, dtype=torch.long))


def test_check_kwargs_refuses_keys_not_allowed():
    assert v.check_kwargs("kwargs", {"bias": True}, allowed=("bias", "padding_mode")) == {"bias": True}
    with pytest.raises(TypeError, match=r"^kwargs may only hold bias, padding_mode, got the "
                                        r"unexpected keyword argument\(s\) dilation, stride$"):
        v.check_kwargs("kwargs", {"stride": 2, "dilation": 2, "bias": True},
                       allowed=("bias", "padding_mode"))
