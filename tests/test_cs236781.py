"""Tests for the course helpers: result records, plots and data-loader utilities."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from cs236781 import dataloader_utils, plot
from cs236781.train_results import BatchResult, EpochResult, FitResult

FIT = FitResult(num_epochs=2, train_loss=[2.0, 1.5, 1.2, 1.0], train_acc=[40.0, 60.0],
                test_loss=[1.8, 1.6], test_acc=[35.0, 50.0])


def test_result_records_are_named_tuples():
    assert BatchResult(0.5, 3).num_correct == 3
    assert EpochResult([1.0, 2.0], 75.0)._asdict() == {"losses": [1.0, 2.0], "accuracy": 75.0}
    assert FitResult(*FIT).test_acc == [35.0, 50.0]


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


def test_plot_fit_puts_every_panel_on_an_axis_of_whole_epochs():
    fig, axes = plot.plot_fit(FIT)
    # Two batches per epoch: batch b of epoch e at e - 1 + b/2; one value per epoch at e.
    np.testing.assert_array_equal(axes[0].lines[0].get_xdata(), [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(axes[1].lines[0].get_xdata(), [1, 2])
    np.testing.assert_array_equal(axes[2].lines[0].get_xdata(), [1, 2])
    assert [ax.get_xlabel() for ax in axes] == ["Epoch (2 batches each)", "Epoch", "Epoch", "Epoch"]
    assert [ax.get_ylabel() for ax in axes] == ["Loss", "Accuracy (%)"] * 2
    fig.canvas.draw()
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert fig.get_layout_engine() is not None and "Constrained" in type(fig.get_layout_engine()).__name__
    plt.close(fig)


@pytest.mark.parametrize("count, epochs, first, label", [
    (6, 3, 0.5, "Epoch (2 batches each)"), (3, 3, 1.0, "Epoch"), (5, 2, 1.0, "Batch #"),
    (0, 0, None, "Batch #")])
def test_epoch_positions(count, epochs, first, label):
    x, got = plot.epoch_positions(count, epochs)
    assert len(x) == count and got == label
    if count:
        assert x[0] == first and x[-1] == (epochs if label.startswith("Epoch") else count)


def test_plot_fit_rejects_other_types():
    with pytest.raises(TypeError, match=r"^plot_fit: fit_res must be a FitResult, got dict$"):
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
    with pytest.raises(ValueError, match=r"^tensors_as_images: nrows must be an integer >= 1, "
                                         r"got 0$"):
        plot.tensors_as_images(images, nrows=0)
    with pytest.raises(TypeError, match=r"^tensors_as_images: nrows must be .*, got 2\.0$"):
        plot.tensors_as_images(images, nrows=2.0)


def test_dataset_first_n_titles_with_class_names():
    ds = [(torch.full((1, 4, 4), i / 10), i % 3) for i in range(10)]
    fig, axes = plot.dataset_first_n(ds, 4, show_classes=True, class_labels=["x", "y", "z"],
                                     random_start=False)
    assert [ax.get_title() for ax in axes] == ["x", "y", "z", "x"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"^dataset_first_n: n must be an integer >= 1 and "
                                         r"<= 10, got 11$"):
        plot.dataset_first_n(ds, 11)
    with pytest.raises(TypeError, match=r"^dataset_first_n: n must be .*, got 2\.0$"):
        plot.dataset_first_n(ds, 2.0)


def test_dataset_first_n_starts_at_a_random_index_by_default():
    ds = [(torch.zeros(1, 2, 2), i) for i in range(50)]
    starts = set()
    for seed in range(6):
        np.random.seed(seed)
        fig, axes = plot.dataset_first_n(ds, 3, show_classes=True)
        labels = [int(ax.get_title()) for ax in axes]
        assert labels == list(range(labels[0], labels[0] + 3))  # n consecutive items
        starts.add(labels[0])
        plt.close(fig)
    assert len(starts) > 1 and starts != {0}


# -- flatten: the course's own cases (tensor-only, 2- and 3-tuples) and dicts ----------------------
N_ITEMS, SIDE = 50, 6


class ItemsDataset(Dataset):
    """Item i is ``make(i)``: a tensor, a tuple or a dict of tensors filled with i."""

    def __init__(self, make):
        self.make = make

    def __len__(self):
        return N_ITEMS

    def __getitem__(self, index):
        return self.make(index)


def _full(i, *shape):
    return torch.full(shape, float(i))


def test_flatten_tensor_only_loader_gives_a_1_tuple():
    loader = DataLoader(ItemsDataset(lambda i: _full(i, SIDE, SIDE)), batch_size=16)
    (x,) = dataloader_utils.flatten(loader)
    assert torch.is_tensor(x) and x.shape == (N_ITEMS, SIDE, SIDE)
    torch.testing.assert_close(x[:, 0, 0], torch.arange(N_ITEMS, dtype=torch.float32))


@pytest.mark.parametrize("batch_size", [1, 7, 16, N_ITEMS])
def test_flatten_three_tuples(batch_size):
    loader = DataLoader(ItemsDataset(lambda i: (_full(i, SIDE, SIDE), _full(-i, SIDE, SIDE),
                                                _full(i, SIDE, 1))), batch_size=batch_size)
    x, y, z = dataloader_utils.flatten(loader)
    assert x.shape == y.shape == (N_ITEMS, SIDE, SIDE) and z.shape == (N_ITEMS, SIDE, 1)
    order = torch.arange(N_ITEMS, dtype=torch.float32)
    torch.testing.assert_close(x[:, 0, 0], order)
    torch.testing.assert_close(y[:, 0, 0], -order)
    torch.testing.assert_close(z[:, -1, 0], order)


def test_flatten_two_tuples_equal_the_tensors_behind_the_loader():
    x, y = torch.randn(10, 3), torch.arange(10)
    fx, fy = dataloader_utils.flatten(DataLoader(TensorDataset(x, y), batch_size=4))
    assert torch.equal(fx, x) and torch.equal(fy, y)


def test_flatten_dict_batches_in_sorted_key_order():
    loader = DataLoader(ItemsDataset(lambda i: {"label": torch.tensor(i), "image": _full(i, 2, 2)}),
                        batch_size=8)
    image, label = dataloader_utils.flatten(loader)  # "image" < "label"
    assert image.shape == (N_ITEMS, 2, 2) and label.shape == (N_ITEMS,)
    assert torch.equal(label, torch.arange(N_ITEMS))


def test_flatten_lists_and_plain_iterables_of_batches():
    batches = [[torch.ones(2, 3), torch.zeros(2)], [torch.ones(1, 3), torch.zeros(1)]]
    x, y = dataloader_utils.flatten(batches)
    assert x.shape == (3, 3) and y.shape == (3,)


@pytest.mark.parametrize("batches, error, match", [
    ([3.5], TypeError, "batch 0 is a float; expected a tensor, a tuple or list"),
    ([torch.ones(2), "text"], TypeError, "batch 1 is a str"),
    ([(torch.ones(2), ["a", "b"])], TypeError, "batch 0 holds a list at position 1"),
    ([(torch.ones(2), torch.ones(2)), (torch.ones(2),)], ValueError,
     "batch 1 holds 1 tensors, but the earlier batches hold 2"),
    ([], ValueError, "no batches"),
])
def test_flatten_bad_batches(batches, error, match):
    with pytest.raises(error, match=match):
        dataloader_utils.flatten(batches)


def test_flatten_empty_loader_is_an_error():
    x, y = torch.randn(10, 3), torch.arange(10)
    with pytest.raises(ValueError, match="no batches"):
        dataloader_utils.flatten(DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
