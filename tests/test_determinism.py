"""Same seed, same FitResult: training on the CPU is bit-for-bit reproducible.

Each run seeds everything from one integer (the weights, the shuffling generator, dropout) and
trains a small model on scikit-learn's digits for a few epochs. Two runs with the same seed must
agree exactly, field by field; a run with another seed must not (so the comparison can fail).
"""
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from cs236781.train_results import FitResult
from hw2 import layers, optimizers
from hw2.classifier import ArgMaxClassifier
from hw2.cnn import CNN
from hw2.datasets import load_dataset
from hw2.training import ClassifierTrainer, LayerTrainer


@pytest.fixture(scope="module")
def digits():
    ds_train, ds_test = load_dataset("digits", verbose=False)
    return ds_train, ds_test


def _loaders(digits, seed: int):
    ds_train, ds_test = digits
    dl_train = DataLoader(ds_train, batch_size=32, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    dl_test = DataLoader(ds_test, batch_size=64, shuffle=False)
    return dl_train, dl_test


def _classifier_run(digits, seed: int) -> FitResult:
    torch.manual_seed(seed)
    model = ArgMaxClassifier(CNN(in_size=(1, 8, 8), out_classes=10, channels=[4, 8],
                                 pool_every=1, hidden_dims=[16]))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), optimizer, device="cpu")
    return trainer.fit(*_loaders(digits, seed), num_epochs=3, print_every=0, verbose=False,
                       max_batches=8)


def _layer_run(digits, seed: int) -> FitResult:
    torch.manual_seed(seed)
    model = layers.MLP(64, 10, hidden_features=[32, 16], dropout=0.2, wstd=0.1)
    optimizer = optimizers.MomentumSGD(model.params(), learn_rate=0.05, reg=1e-4)
    trainer = LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)
    return trainer.fit(*_loaders(digits, seed), num_epochs=3, print_every=0, verbose=False,
                       max_batches=8)


def _assert_identical(a: FitResult, b: FitResult) -> None:
    assert isinstance(a, FitResult) and isinstance(b, FitResult)
    assert a.num_epochs == b.num_epochs
    for field in FitResult._fields[1:]:
        # Python floats compared with ==: bit-for-bit, not approximately.
        assert getattr(a, field) == getattr(b, field), field


@pytest.mark.parametrize("run", [_classifier_run, _layer_run], ids=["ClassifierTrainer-CNN",
                                                                     "LayerTrainer-MLP"])
def test_same_seed_gives_the_same_fit_result(digits, run):
    first = run(digits, seed=11)
    # Disturb the global RNG between the runs: the second must reseed, not inherit state.
    torch.rand(1000)
    second = run(digits, seed=11)
    _assert_identical(first, second)
    assert first.num_epochs == 3 and len(first.train_loss) == 3 * 8
    other = run(digits, seed=12)
    assert other.train_loss != first.train_loss  # the seed does reach the run
