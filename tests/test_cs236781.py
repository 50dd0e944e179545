"""Tests for the course helpers: result records, answers, plots and data-loader utilities."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cs236781 import answers, dataloader_utils, plot
from cs236781.train_results import BatchResult, EpochResult, FitResult

FIT = FitResult(num_epochs=2, train_loss=[2.0, 1.5, 1.2, 1.0], train_acc=[40.0, 60.0],
                test_loss=[1.8, 1.6], test_acc=[35.0, 50.0])


def test_result_records_are_named_tuples():
    assert BatchResult(0.5, 3).num_correct == 3
    assert EpochResult([1.0, 2.0], 75.0)._asdict() == {"losses": [1.0, 2.0], "accuracy": 75.0}
    assert FitResult(*FIT).test_acc == [35.0, 50.0]


def test_display_answer_renders_markdown(monkeypatch):
    shown = []
    monkeypatch.setattr(answers, "display", shown.append)
    answers.display_answer(r"**bold** and $x^2$")
    assert shown[0].data == r"**bold** and $x^2$"
    with pytest.raises(TypeError, match="markdown string, got int"):
        answers.display_answer(3)


def test_plot_fit_grid_carries_the_data():
    fig, axes = plot.plot_fit(FIT, legend="run-a")
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles == ["train_loss", "train_acc", "test_loss", "test_acc"]
    for ax, field in zip(axes, ["train_loss", "train_acc", "test_loss", "test_acc"]):
        (line,) = ax.lines
        np.testing.assert_array_equal(line.get_ydata(), getattr(FIT, field))
        assert line.get_label() == "run-a"
    plt.close(fig)


def test_plot_fit_adds_to_an_existing_figure_and_logs_loss():
    fig, _ = plot.plot_fit(FIT, legend="a")
    fig, axes = plot.plot_fit(FIT, fig=fig, legend="b", log_loss=True)
    assert [len(ax.lines) for ax in axes] == [2, 2, 2, 2]
    assert axes[0].get_yscale() == "log" and axes[1].get_yscale() == "linear"
    plt.close(fig)


def test_plot_fit_overlay_puts_train_and_test_together():
    fig, axes = plot.plot_fit(FIT, train_test_overlay=True)
    assert len(axes) == 2
    labels = [line.get_label() for line in axes[1].lines]
    assert labels == ["train", "test"]
    np.testing.assert_array_equal(axes[1].lines[1].get_ydata(), FIT.test_acc)
    plt.close(fig)


def test_plot_fit_rejects_other_types():
    with pytest.raises(TypeError, match="FitResult"):
        plot.plot_fit({"train_loss": []})


def test_tensors_as_images_grid_and_titles():
    images = [torch.rand(3, 8, 8) for _ in range(5)] + [torch.rand(1, 8, 8)]
    fig, axes = plot.tensors_as_images(images, nrows=2, titles=list("abcdef"))
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes] == list("abcdef")
    assert axes[0].images[0].get_array().shape == (8, 8, 3)
    assert axes[5].images[0].get_array().shape == (8, 8)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(C, H, W\).*got \(4, 8, 8\)"):
        plot.tensors_as_images([torch.rand(4, 8, 8)])


def test_dataset_first_n_titles_with_class_names():
    ds = [(torch.full((1, 4, 4), i / 10), i % 3) for i in range(10)]
    fig, axes = plot.dataset_first_n(ds, 4, show_classes=True, class_labels=["x", "y", "z"])
    assert [ax.get_title() for ax in axes] == ["x", "y", "z", "x"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"n must be in \[1, 10\], got 11"):
        plot.dataset_first_n(ds, 11)


def test_flatten_concatenates_all_batches():
    x, y = torch.randn(10, 3), torch.arange(10)
    fx, fy = dataloader_utils.flatten(DataLoader(TensorDataset(x, y), batch_size=4))
    assert torch.equal(fx, x) and torch.equal(fy, y)
    with pytest.raises(ValueError, match="no batches"):
        dataloader_utils.flatten(DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
