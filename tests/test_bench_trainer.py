"""The trainer benchmark compares like with like: the bare loops train the model exactly as
``ClassifierTrainer.train_epoch`` does (same losses, same counts of correct predictions)."""
import copy

import pytest
import torch
from torch import nn

from benchmarks.bench_trainer import bare_train_epoch_classify, run
from benchmarks.timing import bare_train_epoch
from hw2.classifier import ArgMaxClassifier, BinaryClassifier
from hw2.mlp import MLP
from hw2.training import ClassifierTrainer


@pytest.mark.parametrize("bare, classifier", [
    (bare_train_epoch_classify, ArgMaxClassifier), (bare_train_epoch_classify, BinaryClassifier),
    (bare_train_epoch, ArgMaxClassifier)])
def test_bare_loops_train_like_the_trainer(bare, classifier):
    torch.manual_seed(0)
    classes = 2 if classifier is BinaryClassifier else 10
    batches = [(torch.randn(16, 12, dtype=torch.float64), torch.randint(0, classes, (16,)))
               for _ in range(5)]
    base = classifier(MLP(12, [8, classes], ["relu", "none"])).double()
    if classifier is BinaryClassifier:
        base.threshold = 0.7  # the rule differs from the arg-max here
    model_a, model_b = copy.deepcopy(base), copy.deepcopy(base)
    loss_fn = nn.CrossEntropyLoss()
    opt_a = torch.optim.SGD(model_a.parameters(), lr=0.1, momentum=0.9)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1, momentum=0.9)

    result = ClassifierTrainer(model_a, loss_fn, opt_a).train_epoch(batches, verbose=False)
    total_loss, correct = bare(model_b, loss_fn, opt_b, batches)

    torch.testing.assert_close(total_loss, sum(result.losses), rtol=1e-12, atol=0)
    assert 100.0 * correct / 80 == result.accuracy
    for p_a, p_b in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(p_a, p_b, rtol=0, atol=0)


def test_the_benchmark_runs_and_restores_the_thread_count():
    threads = torch.get_num_threads()
    rows = run(n=64, batch_size=32, repeats=1, mlp_repeats=1)
    assert torch.get_num_threads() == threads
    assert [r.met is None for r in rows] == [False, False, True, True]
    assert all(r.ours > 0 and r.baseline > 0 for r in rows)
