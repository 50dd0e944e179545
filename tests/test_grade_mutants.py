"""The grader against mutated solutions: each mutant loses points exactly on its items.

The mutants are made from the reference by qualified name (``tests/grading_helpers.py``), each
a mistake students make. To keep CI time down, mutants whose items are disjoint are graded
together in one submission; the test then asserts that the items lost are exactly the union
of the group's items, and that every other auto-graded item keeps full marks.
"""
import pytest

from grading_helpers import (Mutant, MutantTargetMissing, apply, auto_numbers, copy_reference,
                             mutate, run_grade)


def M(name, module, target, new_def, *lost):
    return Mutant(name, module, target, new_def, frozenset(lost))


L, O, T = "hw2/layers.py", "hw2/optimizers.py", "hw2/training.py"
C, N, X, E = "hw2/classifier.py", "hw2/cnn.py", "hw2/mlp.py", "hw2/experiments.py"

MUTANTS = [
    M("leakyrelu backward ignores alpha", L, "LeakyReLU.backward", """
        def backward(self, dout):
            import torch
            dx = ORIG(dout)
            return torch.where(dx == dout, dx, torch.zeros_like(dx))
        """, "1.1"),
    M("sigmoid backward off by a factor", L, "Sigmoid.backward", """
        def backward(self, dout):
            return 2 * ORIG(dout)
        """, "1.3"),
    M("tanh forward halved", L, "TanH.forward", """
        def forward(self, x, **kw):
            return 0.5 * ORIG(x, **kw)
        """, "1.4"),
    M("linear init ignores wstd", L, "Linear.__init__", """
        def __init__(self, in_features, out_features, wstd=0.1, **kw):
            ORIG(in_features, out_features, wstd=wstd, **kw)
            self.w.mul_(2)
        """, "1.5"),
    M("linear gradients overwritten, not accumulated", L, "Linear.backward", """
        def backward(self, dout):
            self.dw.zero_()
            self.db.zero_()
            return ORIG(dout)
        """, "1.6"),
    M("cross-entropy without the log-sum-exp trick", L, "CrossEntropyLoss.forward", """
        def forward(self, x, y, **kw):
            import torch
            ORIG(x, y, **kw)
            e = torch.exp(x)
            return -torch.log(e[torch.arange(len(y)), y] / e.sum(dim=1)).mean()
        """, "1.7"),
    M("sequential backward in forward order", L, "Sequential.backward", """
        def backward(self, dout):
            for layer in self.layers:
                dout = layer.backward(dout)
            return dout
        """, "1.8"),
    M("layer MLP forgets dropout", L, "MLP.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.sequence = Sequential(*[l for l in self.sequence if type(l).__name__ != 'Dropout'])
        """, "1.9"),
    M("VanillaSGD without the L2 term", O, "VanillaSGD.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.reg = 0
        """, "2.2"),
    M("VanillaSGD steps twice", O, "VanillaSGD.step", """
        def step(self):
            ORIG()
            ORIG()
        """, "2.1", "2.2"),
    M("MomentumSGD without the L2 term", O, "MomentumSGD.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.reg = 0
        """, "2.4"),
    M("MomentumSGD without momentum", O, "MomentumSGD.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.momentum = 0.0
        """, "2.3", "2.4"),
    M("RMSProp without the L2 term", O, "RMSProp.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.reg = 0
        """, "2.6"),
    M("RMSProp decay swapped with 1 - decay", O, "RMSProp.__init__", """
        def __init__(self, *args, **kw):
            ORIG(*args, **kw)
            self.decay = 1 - self.decay
        """, "2.5", "2.6"),
    M("dropout without rescaling", L, "Dropout.forward", """
        def forward(self, x, **kw):
            out = ORIG(x, **kw)
            return out * (1 - self.p) if self.training_mode else out
        """, "2.7"),
    M("dropout active in eval mode", L, "Dropout.forward", """
        def forward(self, x, **kw):
            import torch
            out = ORIG(x, **kw)
            if self.training_mode:
                return out
            return x * (torch.rand_like(x) >= self.p) / (1 - self.p)
        """, "2.8"),
    M("early stopping off by one", T, "Trainer.fit", """
        def fit(self, dl_train, dl_test, num_epochs, checkpoints=None, early_stopping=None,
                print_every=1, **kw):
            return ORIG(dl_train, dl_test, num_epochs, checkpoints,
                        early_stopping + 1 if early_stopping else None, print_every, **kw)
        """, "2.9"),
    M("checkpoint keeps the last epoch, not the best", T, "Trainer.fit", """
        def fit(self, dl_train, dl_test, num_epochs, checkpoints=None, early_stopping=None,
                print_every=1, **kw):
            result = ORIG(dl_train, dl_test, num_epochs, checkpoints, early_stopping,
                          print_every, **kw)
            if checkpoints:
                self.save_checkpoint(str(checkpoints) + '.pt')
            return result
        """, "2.10"),
    M("FitResult accuracies as fractions", T, "Trainer.fit", """
        def fit(self, *args, **kw):
            r = ORIG(*args, **kw)
            return type(r)(r.num_epochs, r.train_loss, [a / 100 for a in r.train_acc],
                           r.test_loss, [a / 100 for a in r.test_acc])
        """, "2.11"),
    M("LayerTrainer never zeroes the gradients", T, "LayerTrainer.train_batch", """
        def train_batch(self, batch):
            zero = self.optimizer.zero_grad
            self.optimizer.zero_grad = lambda: None
            try:
                return ORIG(batch)
            finally:
                self.optimizer.zero_grad = zero
        """, "2.12"),
    M("ClassifierTrainer never zeroes the gradients", T, "ClassifierTrainer.train_batch", """
        def train_batch(self, batch):
            zero = self.optimizer.zero_grad
            self.optimizer.zero_grad = lambda *a, **k: None
            try:
                return ORIG(batch)
            finally:
                self.optimizer.zero_grad = zero
        """, "2.13"),
    M("MLP builds ReLU where Tanh was asked", X, "MLP.__init__", """
        def __init__(self, in_dim, dims, nonlins):
            ORIG(in_dim, dims, ['relu' if n == 'tanh' else n for n in nonlins])
        """, "3.1"),
    M("BinaryClassifier ignores positive_class", C, "BinaryClassifier.__init__", """
        def __init__(self, model, positive_class=1, threshold=0.5):
            ORIG(model, positive_class=1, threshold=threshold)
        """, "3.2"),
    M("ROC threshold taken from the wrong index", C, "select_roc_thresh", """
        def select_roc_thresh(classifier, x, y, plot=False, ax=None):
            import numpy as np
            import torch
            from sklearn.metrics import roc_curve
            with torch.no_grad():
                p = classifier.predict_proba(x)[:, 1].double().numpy()
            fpr, tpr, th = roc_curve(y, p)
            best = int(np.argmin(np.hypot(fpr, 1 - tpr)))
            return float(th[best + 1])
        """, "3.3"),
    M("CNN ignores the pooling parameters", N, "CNN.__init__", """
        def __init__(self, *args, **kw):
            kw['pooling_params'] = {'kernel_size': 2}
            ORIG(*args, **kw)
        """, "4.1"),  # the ResNet configs pool with kernel 2 anyway
    M("residual block without its shortcut projection", N, "ResidualBlock.__init__", """
        def __init__(self, *args, **kw):
            import torch.nn as nn
            ORIG(*args, **kw)
            self.shortcut_path = nn.Sequential(nn.Identity())
        """, "4.2", "4.4"),
    M("batch norm after the ReLU", N, "ResidualBlock.__init__", """
        def __init__(self, *args, **kw):
            import torch.nn as nn
            ORIG(*args, **kw)
            layers = list(self.main_path)
            norms = [i for i in range(len(layers) - 1) if isinstance(layers[i], nn.BatchNorm2d)]
            for i in norms:
                layers[i], layers[i + 1] = layers[i + 1], layers[i]
            self.main_path = nn.Sequential(*layers)
        """, "4.2", "4.4"),
    M("bottleneck block drops its dropout", N, "ResidualBottleneckBlock.__init__", """
        def __init__(self, in_out_channels, inner_channels, inner_kernel_sizes, **kw):
            kw['dropout'] = 0.0
            ORIG(in_out_channels, inner_channels, inner_kernel_sizes, **kw)
        """, "4.3", "4.4"),
    M("YourCNN outputs one score too many", N, "YourCNN.__init__", """
        def __init__(self, in_size, out_classes, *args, **kw):
            ORIG(in_size, out_classes + 1, *args, **kw)
        """, "4.5"),
    M("cnn_experiment writes the wrong file name", E, "cnn_experiment", """
        def cnn_experiment(run_name, *args, **kw):
            return ORIG(run_name + '_run', *args, **kw)
        """, "5.1"),
]

#: Mutants graded together: their items are disjoint (checked below).
GROUPS = [
    ["leakyrelu backward ignores alpha", "linear init ignores wstd", "VanillaSGD steps twice",
     "MLP builds ReLU where Tanh was asked", "CNN ignores the pooling parameters",
     "cnn_experiment writes the wrong file name", "RMSProp without the L2 term",
     "early stopping off by one"],
    ["sigmoid backward off by a factor", "linear gradients overwritten, not accumulated",
     "MomentumSGD without momentum", "BinaryClassifier ignores positive_class",
     "residual block without its shortcut projection", "dropout without rescaling",
     "checkpoint keeps the last epoch, not the best", "LayerTrainer never zeroes the gradients"],
    ["tanh forward halved", "cross-entropy without the log-sum-exp trick",
     "RMSProp decay swapped with 1 - decay", "ROC threshold taken from the wrong index",
     "batch norm after the ReLU", "dropout active in eval mode",
     "FitResult accuracies as fractions"],
    ["sequential backward in forward order", "layer MLP forgets dropout",
     "VanillaSGD without the L2 term", "MomentumSGD without the L2 term",
     "bottleneck block drops its dropout", "YourCNN outputs one score too many",
     "ClassifierTrainer never zeroes the gradients"],
]
BY_NAME = {m.name: m for m in MUTANTS}


def test_catalogue_has_25_mutants_in_disjoint_groups():
    assert len(MUTANTS) >= 25
    assert sorted(n for g in GROUPS for n in g) == sorted(BY_NAME)
    for group in GROUPS:
        items = [i for n in group for i in BY_NAME[n].lost]
        assert len(items) == len(set(items)), group
        modules_targets = [(BY_NAME[n].module, BY_NAME[n].target) for n in group]
        assert len(modules_targets) == len(set(modules_targets)), group


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_every_mutant_target_exists_in_the_reference(mutant):
    from grading_helpers import ROOT
    source = (ROOT / mutant.module).read_text(encoding="utf-8")
    mutated = mutate(source, mutant.target, mutant.new_def)
    compile(mutated, mutant.module, "exec")


def test_a_missing_target_fails_loudly():
    with pytest.raises(MutantTargetMissing):
        mutate("def f():\n    pass\n", "RMSProp.step", "def step(self):\n    pass\n")


@pytest.mark.slow
@pytest.mark.parametrize("group", range(len(GROUPS)))
def test_mutants_lose_exactly_their_items(group, tmp_path):
    mutants = [BY_NAME[n] for n in GROUPS[group]]
    root = copy_reference(tmp_path / "hw2-1000")
    apply(root, mutants)
    graded = run_grade(root, tmp_path / "out")
    assert graded.returncode == 0, graded.stderr
    expected_lost = set().union(*(m.lost for m in mutants))
    lost = {t["number"] for t in graded.results["tests"]
            if t["number"] in auto_numbers(graded.results) and t["score"] < t["max_score"]}
    details = {n: graded.test(n)["output"][:400] for n in lost ^ expected_lost}
    assert lost == expected_lost, details
