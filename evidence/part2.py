"""Part 2 evidence: the overfitting check, the optimizer comparison, the dropout runs and the
related exercise's comparison of SGD, Nesterov momentum and Adam.

Each function repeats the corresponding cells of ``Part2_Optimization.ipynb`` (same models,
hyperparameters from :mod:`hw2.answers`, loaders, seeds and order of random draws), so a full
run of the notebook on the same data set and thread count prints the same numbers.
"""
import math
from typing import Dict

import torch
from torch.utils.data import DataLoader

import hw2.answers as answers
from hw2 import layers, optimizers, training
from hw2.datasets import dataset_info, load_dataset

from evidence.record import PERCENT, fit_summary, write_evidence

SEED = 42

#: Workloads of a full run (the notebook's) and of ``--quick``.
FULL = dict(overfit_epochs=20, optim_epochs=10, optim_batches=100, dropout_epochs=30,
            dropout_batches=40, exercise_epochs=10, exercise_batches=None)
QUICK = dict(overfit_epochs=3, optim_epochs=2, optim_batches=5, dropout_epochs=2,
             dropout_batches=5, exercise_epochs=1, exercise_batches=3)

OPTIMIZERS = {
    "vanilla": optimizers.VanillaSGD,
    "momentum": optimizers.MomentumSGD,
    "rmsprop": optimizers.RMSProp,
}
DROPOUTS = (0.0, 0.4, 0.8)

UNITS = {"*_acc": PERCENT, "*_loss_mean": "mean cross-entropy of the epoch's batches",
         "max_train_batch_loss": "largest cross-entropy of a single training batch",
         "dead_first_layer_units_pct": "percent of first-layer ReLU units never active on the "
                                       "test set",
         "final_gap": "final train_acc - final test_acc, percentage points",
         "*_epoch": "epoch number, counting from 1"}


def _in_features(dataset: str) -> int:
    return math.prod(dataset_info(dataset).in_size)


def _used(dataset, batch_size: int, max_batches: int) -> int:
    """Samples an epoch of at most ``max_batches`` batches actually sees."""
    return min(len(dataset), batch_size * max_batches)


def run_overfit(ds_train, dataset: str, work: dict) -> dict:
    """The 20-sample overfitting check (3x128 MLP, VanillaSGD, ``part2_overfit_hp``)."""
    hp = answers.part2_overfit_hp(dataset)
    dl_train = DataLoader(ds_train, 10, shuffle=False)
    torch.manual_seed(SEED)
    model = layers.MLP(_in_features(dataset), num_classes=dataset_info(dataset).num_classes,
                       hidden_features=[128] * 3, wstd=hp["wstd"])
    optimizer = optimizers.VanillaSGD(model.params(), learn_rate=hp["lr"], reg=hp["reg"])
    trainer = training.LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)
    train_acc = [float(trainer.train_epoch(dl_train, max_batches=2, verbose=False).accuracy)
                 for _ in range(work["overfit_epochs"])]
    full = [i + 1 for i, a in enumerate(train_acc) if a >= 100.0]
    settings = dict(hp=hp, batch_size=10, max_batches=2, samples=20,
                    epochs=work["overfit_epochs"], hidden_features=[128] * 3,
                    optimizer="hw2.optimizers.VanillaSGD", loss="hw2.layers.CrossEntropyLoss")
    results = dict(train_acc=train_acc, best_train_acc=max(train_acc),
                   first_epoch_at_100=full[0] if full else None)
    return dict(settings=settings, results=results)


def run_optimizers(ds_train, ds_test, dataset: str, work: dict) -> dict:
    """VanillaSGD vs MomentumSGD vs RMSProp on a 5x128 MLP, each from the same init."""
    hp = answers.part2_optim_hp()
    dl_train = DataLoader(ds_train, 50, shuffle=False)
    dl_test = DataLoader(ds_test, 25, shuffle=False)
    info = dataset_info(dataset)
    runs = {}
    for name, cls in OPTIMIZERS.items():
        torch.manual_seed(SEED)
        model = layers.MLP(_in_features(dataset), info.num_classes, [128] * 5, wstd=hp["wstd"])
        optimizer = cls(model.params(), learn_rate=hp[f"lr_{name}"], reg=hp["reg"])
        trainer = training.LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)
        fit = trainer.fit(dl_train, dl_test, work["optim_epochs"],
                          max_batches=work["optim_batches"], print_every=0, verbose=False)
        runs[name] = fit_summary(fit)
    settings = dict(hp=hp, batch_size=50, test_batch_size=25, max_batches=work["optim_batches"],
                    train_samples=_used(ds_train, 50, work["optim_batches"]),
                    test_samples=_used(ds_test, 25, work["optim_batches"]),
                    epochs=work["optim_epochs"], hidden_features=[128] * 5,
                    optimizers={k: f"hw2.optimizers.{v.__name__}" for k, v in OPTIMIZERS.items()},
                    seeded="torch.manual_seed(seed) before each model")
    return dict(settings=settings, results=dict(runs=runs))


def run_dropout(ds_train, ds_test, dataset: str, work: dict) -> dict:
    """A 1x400 MLP with dropout 0, 0.4 and 0.8 (MomentumSGD, no L2), one seed for all three."""
    hp = answers.part2_dropout_hp()
    dl_train = DataLoader(ds_train, 10, shuffle=False)
    dl_test = DataLoader(ds_test, 20, shuffle=False)
    info = dataset_info(dataset)
    torch.manual_seed(SEED)
    runs = {}
    for p in DROPOUTS:
        model = layers.MLP(_in_features(dataset), info.num_classes, [400], wstd=hp["wstd"],
                           dropout=p)
        optimizer = optimizers.MomentumSGD(model.params(), learn_rate=hp["lr"], reg=0)
        trainer = training.LayerTrainer(model, layers.CrossEntropyLoss(), optimizer)
        fit = trainer.fit(dl_train, dl_test, work["dropout_epochs"],
                          max_batches=work["dropout_batches"], print_every=0, verbose=False)
        summary = fit_summary(fit)
        summary["first_epoch_train_acc_above_99"] = next(
            (i + 1 for i, a in enumerate(summary["train_acc"]) if a > 99.0), None)
        runs[f"dropout={p}"] = summary
    settings = dict(hp=hp, reg=0, batch_size=10, test_batch_size=20,
                    max_batches=work["dropout_batches"],
                    train_samples=_used(ds_train, 10, work["dropout_batches"]),
                    test_samples=_used(ds_test, 20, work["dropout_batches"]),
                    epochs=work["dropout_epochs"],
                    hidden_features=[400], dropouts=list(DROPOUTS),
                    optimizer="hw2.optimizers.MomentumSGD",
                    seeded="torch.manual_seed(seed) once, before the first of the three models")
    return dict(settings=settings, results=dict(runs=runs))


#: The related exercise's optimizers (our implementations), each training a fresh 2x100 MLP.
EXERCISE = {
    "SGD lr=0.01": lambda params: optimizers.VanillaSGD(params, learn_rate=0.01),
    "Nesterov lr=0.01": lambda params: optimizers.MomentumSGD(params, learn_rate=0.01,
                                                              momentum=0.9, nesterov=True),
    "Adam lr=0.01": lambda params: optimizers.Adam(params, learn_rate=0.01),
    "Adam lr=0.001": lambda params: optimizers.Adam(params, learn_rate=0.001),
    "Adam lr=1": lambda params: optimizers.Adam(params, learn_rate=1.0),
}


def _dead_first_layer_units(model, dl_test) -> float:
    """Percentage of first-hidden-layer ReLU units that are zero for every test sample."""
    alive = None
    for x, _ in dl_test:
        h = model.sequence[1](model.sequence[0](x.reshape(x.shape[0], -1)))
        active = (h > 0).any(dim=0)
        alive = active if alive is None else alive | active
    return 100.0 * float((~alive).double().mean())


def run_exercise(ds_train, ds_test, dataset: str, work: dict) -> dict:
    """SGD vs Nesterov momentum vs Adam (three learning rates) on a 2x100 MLP, wstd 0.05."""
    dl_train = DataLoader(ds_train, 128, shuffle=True,
                          generator=torch.Generator().manual_seed(SEED))
    dl_test = DataLoader(ds_test, 256, shuffle=False)
    info = dataset_info(dataset)
    runs = {}
    for name, make_optimizer in EXERCISE.items():
        torch.manual_seed(SEED)
        model = layers.MLP(_in_features(dataset), info.num_classes, [100, 100], wstd=0.05)
        trainer = training.LayerTrainer(model, layers.CrossEntropyLoss(),
                                        make_optimizer(model.params()))
        try:
            fit = trainer.fit(dl_train, dl_test, work["exercise_epochs"],
                              max_batches=work["exercise_batches"], print_every=0,
                              verbose=False)
        except FloatingPointError as err:
            runs[name] = dict(diverged=str(err))
            continue
        summary = fit_summary(fit)
        summary.update(diverged=None, max_train_batch_loss=max(fit.train_loss),
                       dead_first_layer_units_pct=_dead_first_layer_units(model, dl_test))
        runs[name] = summary
    settings = dict(batch_size=128, test_batch_size=256, epochs=work["exercise_epochs"],
                    max_batches=work["exercise_batches"], hidden_features=[100, 100], wstd=0.05,
                    optimizers=list(EXERCISE), shuffle="DataLoader(generator seeded with seed)",
                    seeded="torch.manual_seed(seed) before each model")
    return dict(settings=settings, results=dict(runs=runs))


EXPERIMENTS = {
    "part2_overfit": ("Overfit 20 training samples with a 3x128 layers.MLP and VanillaSGD",
                      lambda tr, te, ds, w: run_overfit(tr, ds, w)),
    "part2_optimizers": ("VanillaSGD vs MomentumSGD vs RMSProp, 5x128 layers.MLP", run_optimizers),
    "part2_dropout": ("Dropout 0 / 0.4 / 0.8 on a 1x400 layers.MLP trained on 400 samples",
                      run_dropout),
    "part2_exercise": ("SGD, Nesterov momentum and Adam (lr 0.01, 0.001, 1) on a 2x100 "
                       "layers.MLP, each from the same initialisation", run_exercise),
}
DATASETS = ("synthetic", "digits")


def run(out_dir, env: dict, quick: bool) -> Dict[str, str]:
    """Run every Part 2 experiment on each data set; return ``{file name: description}``."""
    work = QUICK if quick else FULL
    written = {}
    for dataset in DATASETS:
        ds_train, ds_test = load_dataset(dataset, verbose=False)
        for name, (description, func) in EXPERIMENTS.items():
            out = func(ds_train, ds_test, dataset, work)
            path = write_evidence(out_dir, name, filename=f"{name}_{dataset}.json",
                                  description=description, dataset=dataset, seed=SEED, env=env,
                                  settings=out["settings"], units=UNITS, results=out["results"])
            written[path.name] = description
    return written
