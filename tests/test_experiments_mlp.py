"""Tests for hw2.experiments.mlp_experiment on a tiny two-moons problem."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import make_moons
from torch.utils.data import DataLoader, TensorDataset

from hw2.classifier import BinaryClassifier, select_roc_thresh
from hw2.experiments import mlp_experiment


def moons_loader(n, seed, noise=0.15, shuffle=True):
    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    ds = TensorDataset(torch.from_numpy(x).to(torch.float32), torch.from_numpy(y))
    return DataLoader(ds, batch_size=32, shuffle=shuffle)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """These networks are tiny: one thread avoids thread-synchronisation overhead (3x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def loaders():
    return moons_loader(1000, 0), moons_loader(300, 1), moons_loader(300, 2, shuffle=False)


@pytest.fixture(scope="module")
def result(loaders):
    torch.manual_seed(0)
    return mlp_experiment(2, 8, *loaders, n_epochs=40)


def recount_accuracy(model, dl, thresh):
    """Accuracy (%) with threshold ``thresh`` recomputed from the wrapped model's raw scores."""
    x, y = dl.dataset.tensors
    with torch.no_grad():
        p_pos = torch.softmax(model.model(x), dim=1)[:, 1]
    y_hat = (p_pos >= thresh).long()
    return 100.0 * (y_hat == y).sum().item() / len(y)


def test_returns_types_and_ranges(result):
    model, thresh, valid_acc, test_acc = result
    assert isinstance(model, BinaryClassifier)
    assert isinstance(thresh, float) and np.isfinite(thresh) and 0.0 <= thresh <= 1.0
    assert model.threshold == thresh
    for acc in (valid_acc, test_acc):
        assert isinstance(acc, float) and 0.0 <= acc <= 100.0


def test_architecture_has_requested_depth_and_width(result):
    linears = [m for m in result[0].modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 8), (8, 8), (8, 2)]


def test_accuracies_match_a_manual_recount(result, loaders):
    model, thresh, valid_acc, test_acc = result
    _, dl_valid, dl_test = loaders
    assert valid_acc == pytest.approx(recount_accuracy(model, dl_valid, thresh), abs=1e-9)
    assert test_acc == pytest.approx(recount_accuracy(model, dl_test, thresh), abs=1e-9)


def test_threshold_is_the_roc_choice_on_validation(result, loaders):
    model, thresh, _, _ = result
    assert select_roc_thresh(model, *loaders[1].dataset.tensors) == pytest.approx(thresh, abs=1e-12)


def test_training_learns_the_moons(result):
    # a linear classifier reaches about 86% on these moons; the MLP must bend its boundary
    # (seeds 0-7 all give >= 96% here)
    _, _, valid_acc, test_acc = result
    assert valid_acc >= 93.0
    assert test_acc >= 93.0


def test_is_reproducible_under_a_seed(loaders):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append(mlp_experiment(1, 4, *loaders, n_epochs=2)[1:])
    assert outs[0] == outs[1]


# A size below 1 is a bad value (ValueError); a size that is no integer at all (2.5, True)
# is of the wrong type (TypeError), as everywhere in the package.
@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(depth=0, width=4, n_epochs=1), ValueError, "depth must be a positive integer, got 0"),
    (dict(depth=1, width=2.5, n_epochs=1), TypeError, "width must be a positive integer, got 2.5"),
    (dict(depth=1, width=4, n_epochs=0), ValueError, "n_epochs must be a positive integer, got 0"),
    (dict(depth=True, width=4, n_epochs=1), TypeError,
     "depth must be a positive integer, got True"),
])
def test_rejects_bad_sizes(loaders, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        mlp_experiment(dl_train=loaders[0], dl_valid=loaders[1], dl_test=loaders[2], **kwargs)


def test_accepts_numpy_sizes(loaders):
    torch.manual_seed(0)
    model, thresh, _, _ = mlp_experiment(np.int64(1), np.int32(3), *loaders, n_epochs=np.int64(1))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 3), (3, 2)]
    assert 0.0 <= thresh <= 1.0
