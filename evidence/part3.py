"""Part 3 evidence: the first binary classifier, its ROC threshold and error rates, the
k-nearest-neighbours reference accuracies and the depth x width grid.

Repeats the cells of ``Part3_MLP.ipynb`` in the notebook's order (same data, seeds and order of
random draws), so a full run of the notebook on one CPU thread prints the same numbers.
"""
from itertools import product
from typing import Dict, Tuple

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from torch.utils.data import DataLoader, TensorDataset

from hw2.answers import part3_arch_hp, part3_optim_hp
from hw2.classifier import BinaryClassifier, select_roc_thresh
from hw2.experiments import MLP_EXPERIMENT_HP, mlp_experiment
from hw2.mlp import MLP
from hw2.training import ClassifierTrainer

from evidence.record import PERCENT, fit_summary, write_evidence

SEED = 42
N_SAMPLES, TRAIN_FRACTION, BATCH_SIZE = 10_000, 0.8, 32
#: rotation (degrees) and noise of each population of moons
POPULATIONS = {1: dict(noise=0.2, deg=10), 2: dict(noise=0.25, deg=50), 3: dict(noise=0.3, deg=40)}
DEPTHS, WIDTHS = (1, 2, 4), (2, 8, 32, 128)

FULL = dict(first_epochs=20, grid_epochs=10, n_ref=40_000)
QUICK = dict(first_epochs=2, grid_epochs=1, n_ref=2_000)
DATASET = "moons (sklearn.datasets.make_moons, three rotated populations)"


def rotate_2d(X: np.ndarray, deg: float = 0) -> np.ndarray:
    """Rotate each row of ``X: (N, 2)`` counter-clockwise by ``deg`` degrees."""
    theta = np.deg2rad(deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return X @ rotation.T


def make_splits() -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The notebook's train / valid / test arrays (``X: (N, 2)``, ``y: (N,)``)."""
    np.random.seed(SEED)
    n_train = int(N_SAMPLES * TRAIN_FRACTION)
    parts = []
    for n, pop in ((n_train // 2, 1), (n_train // 2, 2), (N_SAMPLES - n_train, 3)):
        Xp, yp = make_moons(n_samples=n, noise=POPULATIONS[pop]["noise"])
        parts.append((rotate_2d(Xp, deg=POPULATIONS[pop]["deg"]), yp))
    X = np.vstack([p[0] for p in parts])
    y = np.hstack([p[1] for p in parts])
    X_train, X_valid, y_train, y_valid = train_test_split(
        X[:n_train], y[:n_train], test_size=1 / 3, shuffle=False)
    return dict(train=(X_train, y_train), valid=(X_valid, y_valid),
                test=(X[n_train:], y[n_train:]))


def _loader(X: np.ndarray, y: np.ndarray) -> DataLoader:
    ds = TensorDataset(torch.from_numpy(X).to(torch.float32), torch.from_numpy(y))
    return DataLoader(ds, shuffle=True, num_workers=0, batch_size=BATCH_SIZE)


def _predict(classifier: BinaryClassifier, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return classifier.classify(torch.from_numpy(X).to(torch.float32)).numpy()


def rates(classifier: BinaryClassifier, X: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Accuracy, FPR and FNR (percent) of ``classifier`` at ``threshold`` on ``X: (N, 2)``."""
    saved, classifier.threshold = classifier.threshold, threshold
    try:
        y_hat = _predict(classifier, X)
    finally:
        classifier.threshold = saved
    (tn, fp), (fn, tp) = confusion_matrix(y, y_hat, labels=[0, 1])
    return dict(acc=100.0 * float(np.mean(y_hat == y)), fpr=100.0 * fp / (fp + tn),
                fnr=100.0 * fn / (fn + tp), tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp))


def _sample_mixture(weights: dict, n: int, seed: int):
    parts = []
    for k, (pop, w) in enumerate(weights.items()):
        Xp, yp = make_moons(n_samples=int(n * w), noise=POPULATIONS[pop]["noise"],
                            random_state=seed + k)
        parts.append((rotate_2d(Xp, deg=POPULATIONS[pop]["deg"]), yp))
    return np.vstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def knn_references(n_ref: int) -> dict:
    """Large-sample 101-NN accuracies (percent): estimates of the best achievable accuracy."""
    def score(fit_on, evaluate_on):
        knn = KNeighborsClassifier(n_neighbors=101).fit(*_sample_mixture(fit_on, n_ref, 1000))
        return 100.0 * knn.score(*_sample_mixture(evaluate_on, n_ref // 4, 2000))

    mix = {1: 0.75, 2: 0.25}
    return {
        "train_distribution_on_train_distribution_acc": score(mix, mix),
        "train_distribution_on_population2_acc": score(mix, {2: 1.0}),
        "population2_on_population2_acc": score({2: 1.0}, {2: 1.0}),
        "population3_on_population3_acc": score({3: 1.0}, {3: 1.0}),
    }


def first_classifier(splits: dict, loaders: dict, epochs: int) -> Tuple[dict, dict]:
    """Train the classifier of ``part3_arch_hp``/``part3_optim_hp``; its rates at 0.5 and at
    the ROC threshold chosen on the validation set."""
    torch.manual_seed(SEED)
    hp_arch, hp_optim = part3_arch_hp(), part3_optim_hp()
    model = BinaryClassifier(
        model=MLP(in_dim=2, dims=[*[hp_arch["hidden_dims"]] * hp_arch["n_layers"], 2],
                  nonlins=[*[hp_arch["activation"]] * hp_arch["n_layers"],
                           hp_arch["out_activation"]]),
        threshold=0.5)
    loss_fn = hp_optim.pop("loss_fn")
    optimizer = torch.optim.SGD(params=model.parameters(), **hp_optim)
    trainer = ClassifierTrainer(model, loss_fn, optimizer, device="cpu")
    fit = trainer.fit(loaders["train"], loaders["valid"], num_epochs=epochs, print_every=0,
                      verbose=False)
    curves = fit_summary(fit)
    # the fit's "test" set is the validation set
    curves = {k.replace("test_", "valid_"): v for k, v in curves.items()}
    thresh = select_roc_thresh(model, *loaders["valid"].dataset.tensors)
    at = {f"threshold_{name}": {split: rates(model, *splits[split], t) for split in splits}
          for name, t in (("0.5", 0.5), ("roc", thresh))}
    settings = dict(arch=hp_arch, optimizer="torch.optim.SGD",
                    optimizer_hp={k: v for k, v in hp_optim.items()},
                    loss=type(loss_fn).__name__, epochs=epochs, batch_size=BATCH_SIZE)
    results = dict(fit=curves, roc_threshold=thresh, **at)
    return settings, results


def num_params(depth: int, width: int) -> int:
    """Weights and biases of an MLP 2 -> depth x width -> 2."""
    net = MLP(2, [*[width] * depth, 2], [*["tanh"] * depth, "none"])
    return sum(p.numel() for p in net.parameters())


def depth_width_grid(splits: dict, loaders: dict, epochs: int) -> dict:
    """``mlp_experiment`` for every depth x width, in the notebook's order (width outer)."""
    torch.manual_seed(SEED)
    X_test, y_test = splits["test"]
    configs = []
    for (_, width), (_, depth) in product(enumerate(WIDTHS), enumerate(DEPTHS)):
        model, thresh, valid_acc, test_acc = mlp_experiment(
            depth, width, loaders["train"], loaders["valid"], loaders["test"], n_epochs=epochs,
            device="cpu")
        at_half = rates(model, X_test, y_test, 0.5)["acc"]
        configs.append(dict(depth=depth, width=width, threshold=thresh, valid_acc=valid_acc,
                            test_acc=test_acc, test_acc_at_0_5=at_half,
                            test_acc_gain=test_acc - at_half))
    # Counted after the grid: building a network draws random weights, and drawing them inside
    # the loop would change the initialisation of every later configuration.
    for c in configs:
        c["num_params"] = num_params(c["depth"], c["width"])
    accs = np.array([c["test_acc"] for c in configs])
    gains = np.array([c["test_acc_gain"] for c in configs])
    summary = dict(
        n_configs=len(configs), min_test_acc=float(accs.min()), max_test_acc=float(accs.max()),
        q75_test_acc=float(np.quantile(accs, 0.75)),
        min_valid_acc=min(c["valid_acc"] for c in configs),
        max_valid_acc=max(c["valid_acc"] for c in configs),
        min_threshold=min(c["threshold"] for c in configs),
        max_threshold=max(c["threshold"] for c in configs),
        n_threshold_improved_test=int((gains > 0).sum()),
        n_threshold_worsened_test=int((gains < 0).sum()),
        max_test_acc_gain=float(gains.max()), min_test_acc_gain=float(gains.min()))
    return dict(configs=configs, summary=summary)


UNITS = {"*_acc": PERCENT, "fpr": PERCENT, "fnr": PERCENT,
         "test_acc_gain": "test_acc - test_acc_at_0_5, percentage points",
         "tn/fp/fn/tp": "sample counts", "*_threshold/threshold": "probability of class 1"}


def run(out_dir, env: dict, quick: bool) -> Dict[str, str]:
    """Write ``part3_classifier.json`` and ``part3_grid.json``; return ``{file: description}``."""
    work = QUICK if quick else FULL
    splits = make_splits()
    loaders = {name: _loader(*xy) for name, xy in splits.items()}
    sizes = {name: len(xy[1]) for name, xy in splits.items()}
    n_train = int(N_SAMPLES * TRAIN_FRACTION)
    population_sizes = {1: n_train // 2, 2: n_train // 2, 3: N_SAMPLES - n_train}
    train_composition = {1: n_train // 2, 2: sizes["train"] - n_train // 2}
    data_settings = dict(n_samples=N_SAMPLES, populations=POPULATIONS, split_sizes=sizes,
                         population_sizes=population_sizes,
                         train_samples_per_population=train_composition,
                         split="train = population 1 + first third of population 2, valid = "
                               "rest of population 2, test = population 3", batch_size=BATCH_SIZE)
    written = {}

    settings, results = first_classifier(splits, loaders, work["first_epochs"])
    results["knn_reference"] = knn_references(work["n_ref"])
    settings.update(data=data_settings, knn=dict(n_neighbors=101, n_fit=work["n_ref"],
                                                 n_eval=work["n_ref"] // 4))
    desc = ("First Part 3 classifier: curves, ROC threshold on the validation set, accuracy/FPR/"
            "FNR per split at 0.5 and at that threshold; kNN estimates of the best accuracy")
    path = write_evidence(out_dir, "part3_classifier", description=desc, dataset=DATASET,
                          seed=SEED, env=env, settings=settings, units=UNITS, results=results)
    written[path.name] = desc

    grid = depth_width_grid(splits, loaders, work["grid_epochs"])
    desc = "mlp_experiment over depth x width; threshold chosen on the validation set"
    path = write_evidence(out_dir, "part3_grid", description=desc, dataset=DATASET, seed=SEED,
                          env=env, units=UNITS, results=grid,
                          settings=dict(data=data_settings, depths=list(DEPTHS),
                                        widths=list(WIDTHS), epochs=work["grid_epochs"],
                                        mlp_experiment_hp=MLP_EXPERIMENT_HP,
                                        order="widths outer, depths inner; one seed before all"))
    written[path.name] = desc
    return written
