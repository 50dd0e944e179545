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


@pytest.mark.parametrize("minimum, maximum, text", [
    (None, None, "an integer"),
    (1, None, "an integer >= 1"),
    (None, 9, "an integer <= 9"),
    (0, 9, "an integer >= 0 and <= 9"),
])
def test_int_expected_is_what_check_int_says(minimum, maximum, text):
    assert v.int_expected(minimum, maximum) == text
    value = "x"  # a wrong type: always refused, whatever the bounds
    with pytest.raises(TypeError) as info:
        v.check_int("n", value, minimum, maximum)
    assert str(info.value) == f"n must be {text}, got 'x'"


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


@pytest.mark.parametrize("minimum, strict, maximum, value, text", [
    (0.0, False, 1.0, 1.5, "p must be a number in [0, 1], got 1.5"),
    (0.0, True, 1.0, 0.0, "p must be a number in (0, 1], got 0.0"),
    (0.5, False, 2.25, math.nan, "p must be a number in [0.5, 2.25], got nan"),
    (1e-07, False, 10, 0, "p must be a number in [1e-07, 10], got 0"),
    (0.0, False, math.inf, math.inf, "p must be a finite number in [0, inf], got inf"),
    (0.0, False, None, -1, "p must be a finite number >= 0.0, got -1"),
    (None, False, 1.0, 2, "p must be a finite number <= 1.0, got 2"),
])
def test_check_real_messages_read_naturally(minimum, strict, maximum, value, text):
    with pytest.raises(ValueError) as info:
        v.check_real("p", value, minimum, strict=strict, maximum=maximum)
    assert str(info.value) == text


def test_check_real_bounds_are_inclusive_unless_strict():
    assert v.check_real("p", 1, 0.0, maximum=1.0) == 1.0
    assert v.check_real("p", 0, 0.0, maximum=1.0) == 0.0
    with pytest.raises(TypeError, match=r"^p must be a number in \[0, 1\], got '1'$"):
        v.check_real("p", "1", 0.0, maximum=1.0)


@pytest.mark.parametrize("low_open, high_open, interval", [
    (False, False, "[0, 1]"), (True, False, "(0, 1]"), (False, True, "[0, 1)"),
    (True, True, "(0, 1)"),
])
def test_check_interval_writes_the_interval(low_open, high_open, interval):
    with pytest.raises(ValueError) as info:
        v.check_interval("x", 2.5, 0, 1, low_open=low_open, high_open=high_open)
    assert str(info.value) == f"x must be a number in {interval}, got 2.5"
    for end, is_open in ((0, low_open), (1, high_open)):
        if is_open:
            with pytest.raises(ValueError):
                v.check_interval("x", end, 0, 1, low_open=low_open, high_open=high_open)
        else:
            assert v.check_interval("x", end, 0, 1, low_open=low_open, high_open=high_open) == end
    with pytest.raises(ValueError, match=r"^x must be a number in \[0\.25, 0\.5\], got 0\.75$"):
        v.check_interval("x", 0.75, 0.25, 0.5)
    with pytest.raises(ValueError, match=r"^x must be a number in \[0, 0\.1234567\], got 1$"):
        v.check_interval("x", 1, 0, 0.1234567)  # the bound as given, not rounded


def test_check_choice_of_other_kinds_than_strings():
    torch = pytest.importorskip("torch")
    dtypes = (torch.bfloat16, torch.float16)
    assert v.check_choice("dtype", torch.float16, dtypes, kind=torch.dtype) is torch.float16
    with pytest.raises(ValueError) as info:
        v.check_choice("dtype", torch.float32, dtypes, kind=torch.dtype)
    assert str(info.value) == ("dtype must be one of torch.bfloat16, torch.float16, got "
                               "torch.float32")
    with pytest.raises(TypeError) as info:
        v.check_choice("dtype", "bf16", dtypes, kind=torch.dtype, expected="bfloat16 or float16")
    assert str(info.value) == "dtype must be bfloat16 or float16, got 'bf16'"
    # A string is not normalised unless asked (the default normalisation is none), and the
    # message shows the value received, not its normalised form.
    with pytest.raises(ValueError, match="got 'CNN'$"):
        v.check_choice("kind", "CNN", ("cnn", "resnet"))
    with pytest.raises(ValueError, match="got 'VGG'$"):
        v.check_choice("kind", "VGG", ("cnn", "resnet"), str.lower)


def test_check_int_list_with_a_number_of_entries():
    assert v.check_int_list("size", (2, 3), lengths=(2,)) == [2, 3]
    assert v.check_int_list("in_size", np.array([1, 8, 8]), lengths=(2, 3)) == [1, 8, 8]
    with pytest.raises(ValueError) as info:
        v.check_int_list("size", (2, 3, 4), lengths=(2,))
    assert str(info.value) == "size must be a list of 2 positive integers, got (2, 3, 4)"
    with pytest.raises(ValueError) as info:
        v.check_int_list("in_size", [8], lengths=(2, 3))
    assert str(info.value) == "in_size must be a list of 2 or 3 positive integers, got [8]"


def test_check_instance_names_the_type_received():
    assert v.check_instance("n", 3, (int, float), "a number") == 3
    with pytest.raises(TypeError) as info:
        v.check_instance("model", [1, 2], dict, "a dict of weights")
    assert str(info.value) == "model must be a dict of weights, got list"
