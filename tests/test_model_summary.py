"""Tests for cs236781.model_summary.summarize (torchinfo under the hood)."""
import pytest
import torch
import torch.nn as nn

from cs236781.model_summary import summarize
from hw2.cnn import CNN
from hw2.mlp import MLP


def lenet5():
    return CNN((1, 28, 28), 10, channels=[6, 16], pool_every=1, hidden_dims=[120, 84],
               conv_params=dict(kernel_size=3, stride=1, padding=1),
               pooling_params=dict(kernel_size=2))


def test_fc_net_totals():
    fc = MLP(784, [512, 256, 128, 10], ["relu"] * 3 + ["none"])
    stats = summarize(fc, (784,))
    assert stats.total_params == 567_434
    assert stats.trainable_params == 567_434
    linear_rows = [row for row in stats.summary_list if row.class_name == "Linear"]
    assert [row.output_size for row in linear_rows] == [[1, 512], [1, 256], [1, 128], [1, 10]]
    assert [row.num_params for row in linear_rows] == [401_920, 131_328, 32_896, 1_290]


def test_lenet_rows_and_text():
    stats = summarize(lenet5(), (1, 28, 28), batch_size=4)
    assert stats.total_params == 106_154
    convs = [row for row in stats.summary_list if row.class_name == "Conv2d"]
    assert [row.output_size for row in convs] == [[4, 6, 28, 28], [4, 16, 14, 14]]
    assert [row.num_params for row in convs] == [60, 880]
    text = str(stats)
    assert "Total params: 106,154" in text and "Conv2d" in text


def test_three_conv_net_totals():
    net = CNN((1, 28, 28), 10, channels=[16, 32, 64], pool_every=1, hidden_dims=[128],
              conv_params=dict(kernel_size=3, stride=1, padding=1),
              pooling_params=dict(kernel_size=2))
    assert summarize(net, (1, 28, 28)).total_params == 98_442


def test_counts_agree_with_parameters_and_non_trainable():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net[0].weight.requires_grad_(False)
    stats = summarize(net, (3,), batch_size=2)
    assert stats.total_params == sum(p.numel() for p in net.parameters()) == 34
    assert stats.trainable_params == 34 - 12


def test_model_stays_where_it_is_and_keeps_its_mode():
    net = lenet5()
    net.train()
    summarize(net, (1, 28, 28))
    assert next(net.parameters()).device == torch.device("cpu")
    assert net.training


@pytest.mark.parametrize("bad, exc, message", [
    ((), ValueError, "input_size must be the shape of one sample (positive integers, no batch "
                     "dimension), got ()"),
    (28, TypeError, "input_size must be the shape of one sample (positive integers, no batch "
                    "dimension), got 28"),
    ((0, 28), ValueError, "input_size[0] must be an integer >= 1, got 0"),
    ((1, 28.0), TypeError, "input_size[1] must be an integer >= 1, got 28.0"),
    ((True, 28), TypeError, "input_size[0] must be an integer >= 1, got True"),
])
def test_bad_input_size(bad, exc, message):
    with pytest.raises(exc) as info:
        summarize(lenet5(), bad)
    assert type(info.value) is exc and str(info.value) == message


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_batch_size(bad, exc):
    with pytest.raises(exc) as info:
        summarize(lenet5(), (1, 28, 28), batch_size=bad)
    assert type(info.value) is exc
    assert str(info.value) == f"batch_size must be an integer >= 1, got {bad!r}"


def test_bad_model_type():
    with pytest.raises(TypeError, match=r"^model must be a torch\.nn\.Module, got str$"):
        summarize("lenet", (1, 28, 28))


@pytest.mark.parametrize("out_channels, expected", [(64, "1.61"), (1, "0.03")])
def test_mult_adds_are_printed_in_millions_without_an_enum_name(out_channels, expected):
    # A 3x3 convolution of a 3x32x32 input: every one of the 30x30 outputs per channel takes
    # 27 multiply-adds plus the bias, so (27 + 1) * out_channels * 900 in all (hand count).
    conv = nn.Sequential(nn.Conv2d(3, out_channels, 3), nn.Flatten())
    text = str(summarize(conv, (3, 32, 32)))
    assert f"Total mult-adds (millions): {expected}\n" in text
    assert f"{28 * out_channels * 900 / 1e6:.2f}" == expected
    assert "Units." not in text and "MEGABYTES" not in text
