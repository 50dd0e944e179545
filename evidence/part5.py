"""Part 5 evidence: a summary of the committed digits grids, the initialisation probes and a
batch-normalisation ablation of ``YourCNN``.

* ``part5_grids.json`` condenses every result file of ``results/digits/`` (written by
  ``python -m hw2.experiments grid-run``) into the numbers the answers quote: best and final
  accuracies, epochs run, first-epoch loss, parameter counts. Each entry names its source file
  and that file's SHA-256, so the summary is tied to the exact files it was computed from.
* ``part5_probes.json`` repeats the notebook's probe cell: freshly initialised networks on 256
  digit images, the spread of their outputs across images and the gradient norms at their
  first and last convolutions.
* ``part5_bn_ablation.json`` trains ``YourCNN`` twice per configuration with identical seed,
  data order and settings (those of the committed ``exp2`` runs), once as built and once with
  every ``BatchNorm2d`` replaced by an identity.
"""
import hashlib
import os
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from hw2 import grids
from hw2.classifier import ArgMaxClassifier
from hw2.cnn import CNN, ResNet, YourCNN
from hw2.datasets import load_dataset
from hw2.experiments import expand_channels
from hw2.training import ClassifierTrainer

from evidence.record import PERCENT, mean_per_epoch, write_evidence

SEED = 42
DATASET = "digits"
GRID_DIR = Path("results") / "digits"

#: (model class, L) of the probe cell; K=32, pool_every as in the grids.
PROBES = ((CNN, 2), (CNN, 4), (CNN, 8), (CNN, 16), (ResNet, 8), (ResNet, 16), (ResNet, 32))
PROBE_SAMPLES = 256
#: exp2 depths of the batch-normalisation ablation (full run) and of ``--quick``.
ABLATION_L = (3, 6)
ABLATION_L_QUICK = (3,)
ABLATION_K = (32, 64, 128)


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_summary(path: str, cfg: dict, fit) -> dict:
    """The numbers of one result file (accuracies in percent, epochs from 1)."""
    n = fit.num_epochs
    train_loss = mean_per_epoch(fit.train_loss, n)
    test_acc, train_acc = list(map(float, fit.test_acc)), list(map(float, fit.train_acc))
    best = int(np.argmax(test_acc))
    return dict(
        file=os.path.relpath(path).replace(os.sep, "/"), sha256=_sha256(path),
        grid=cfg["run_name"], model_type=cfg["model_type"],
        K=list(cfg["filters_per_layer"]), L=cfg["layers_per_block"],
        n_convs=len(cfg["channels"]), pool_every=cfg["pool_every"],
        num_params=cfg["num_params"], num_params_millions=cfg["num_params"] / 1e6,
        seed=cfg["seed"], dataset=cfg["dataset"], epochs_max=cfg["epochs"],
        early_stopping=cfg["early_stopping"], epochs_run=n, stopped_early=n < cfg["epochs"],
        batches_per_epoch=len(fit.train_loss) // n,
        best_test_acc=test_acc[best], best_test_acc_epoch=best + 1,
        final_test_acc=test_acc[-1], first_epoch_test_acc=test_acc[0],
        final_train_acc=train_acc[-1], max_train_acc=max(train_acc),
        first_epoch_train_loss_mean=train_loss[0], final_train_loss_mean=train_loss[-1],
        min_train_loss_mean=min(train_loss), max_train_loss_mean=max(train_loss),
    )


def summarize_grids(results_dir=GRID_DIR) -> dict:
    """Per-run summaries of every result file in ``results_dir``, and per-grid aggregates."""
    runs = {}
    for path, cfg, fit in grids.load_results(results_dir):
        runs[Path(path).stem] = run_summary(path, cfg, fit)
    per_grid: Dict[str, dict] = {}
    for name in sorted({r["grid"] for r in runs.values()}):
        members = [r for r in runs.values() if r["grid"] == name]
        first_losses = [r["first_epoch_train_loss_mean"] for r in members]
        per_grid[name] = dict(
            n_runs=len(members), best_test_acc=max(r["best_test_acc"] for r in members),
            n_stopped_early=sum(r["stopped_early"] for r in members),
            min_first_epoch_train_loss_mean=min(first_losses),
            max_first_epoch_train_loss_mean=max(first_losses))
    exp1 = [r for r in runs.values() if r["grid"].startswith("exp1")]
    aggregates = dict(per_grid=per_grid, exp1_all=dict(
        n_runs=len(exp1),
        min_first_epoch_train_loss_mean=min(r["first_epoch_train_loss_mean"] for r in exp1),
        max_first_epoch_train_loss_mean=max(r["first_epoch_train_loss_mean"] for r in exp1)))
    return dict(runs=runs, aggregates=aggregates)


def _digits_facts(ds_train, ds_test) -> dict:
    return dict(n_train=len(ds_train), n_test=len(ds_test), image_size=[8, 8], num_classes=10,
                one_test_image_pct=100.0 / len(ds_test))


def run_probes(ds_train) -> dict:
    """The notebook's probe cell: output spread and gradient norms at initialisation."""
    x = ds_train.images[:PROBE_SAMPLES].float()
    y = ds_train.targets[:PROBE_SAMPLES]
    probes = {}
    for cls, L in PROBES:
        torch.manual_seed(SEED)
        net = cls((1, 8, 8), 10, channels=[32] * L, pool_every=grids.pool_every_for(L),
                  hidden_dims=[100])
        out = net(x)
        nn.functional.cross_entropy(out, y).backward()
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        probes[f"{cls.__name__}_L{L}"] = dict(
            model=cls.__name__, K=[32], L=L, pool_every=grids.pool_every_for(L),
            output_spread=out.std(dim=0).mean().item(),
            grad_norm_first_conv=convs[0].weight.grad.norm().item(),
            grad_norm_last_conv=convs[-1].weight.grad.norm().item())
    return probes


def without_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by ``nn.Identity`` (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        else:
            without_batchnorm(child)
    return module


def train_yourcnn(L: int, batchnorm: bool, ds_train, ds_test, settings: dict) -> dict:
    """Train one ``YourCNN`` (K=32-64-128) as ``cnn_experiment`` does; return its numbers."""
    torch.manual_seed(settings["seed"])
    n_convs = len(ABLATION_K) * L
    net = YourCNN((1, 8, 8), 10, channels=expand_channels(ABLATION_K, L),
                  pool_every=grids.pool_every_for(n_convs), hidden_dims=list(grids.HIDDEN_DIMS))
    if not batchnorm:
        without_batchnorm(net)
    model = ArgMaxClassifier(net)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"],
                                 weight_decay=settings["reg"])
    dl_train = DataLoader(ds_train, settings["bs_train"], shuffle=True,
                          generator=torch.Generator().manual_seed(settings["seed"]))
    dl_test = DataLoader(ds_test, settings["bs_test"], shuffle=False)
    trainer = ClassifierTrainer(model, nn.CrossEntropyLoss(), optimizer, device="cpu")
    fit = trainer.fit(dl_train, dl_test, num_epochs=settings["epochs"],
                      early_stopping=settings["early_stopping"], print_every=0, verbose=False,
                      max_batches=settings["batches"])
    train_loss = mean_per_epoch(fit.train_loss, fit.num_epochs)
    test_acc = list(map(float, fit.test_acc))
    best = int(np.argmax(test_acc))
    return dict(
        batchnorm=batchnorm, L=L, K=list(ABLATION_K), n_convs=n_convs,
        pool_every=grids.pool_every_for(n_convs),
        num_batchnorm_layers=sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()),
        num_params=sum(p.numel() for p in net.parameters()),
        epochs_run=fit.num_epochs, best_test_acc=test_acc[best], best_test_acc_epoch=best + 1,
        first_epoch_train_loss_mean=train_loss[0], first_epoch_test_acc=test_acc[0],
        final_train_acc=float(fit.train_acc[-1]), test_acc=test_acc,
        train_acc=list(map(float, fit.train_acc)), train_loss_mean=train_loss,
        test_loss_mean=mean_per_epoch(fit.test_loss, fit.num_epochs))


def ablation_settings(quick: bool) -> dict:
    """The training settings of the committed exp2 runs (read from their first file)."""
    loaded = grids.load_results(GRID_DIR, "exp2_*.json")
    if not loaded:
        raise FileNotFoundError(f"no exp2 result files in {GRID_DIR}: the ablation copies "
                                f"their settings (run python -m hw2.experiments grid-run exp2 "
                                f"--dataset digits --epochs 20 --batches all --early-stopping 4 "
                                f"-o {GRID_DIR})")
    cfg = loaded[0][1]
    keys = ("seed", "bs_train", "bs_test", "batches", "epochs", "early_stopping", "lr", "reg")
    settings = {k: cfg[k] for k in keys}
    settings["copied_from"] = os.path.relpath(loaded[0][0]).replace(os.sep, "/")
    if quick:
        settings.update(epochs=1, batches=2)
    return settings


def run(out_dir, env: dict, quick: bool) -> Dict[str, str]:
    """Write the three Part 5 files; return ``{file name: description}``."""
    ds_train, ds_test = load_dataset(DATASET, verbose=False)
    facts = _digits_facts(ds_train, ds_test)
    written = {}

    desc = f"Summary of every result file in {GRID_DIR.as_posix()}/ (the Part 5 grids)"
    summary = summarize_grids()
    path = write_evidence(
        out_dir, "part5_grids", description=desc, dataset=DATASET, seed=SEED, env=env,
        settings=dict(source_dir=GRID_DIR.as_posix(), data=facts,
                      produced_by="python -m hw2.experiments grid-run all --dataset digits "
                                  "--epochs 20 --batches all --early-stopping 4 -o results/digits"),
        units={"*_acc": PERCENT, "*_loss_mean": "mean cross-entropy of the epoch's batches",
               "*_epoch": "epoch number, counting from 1"},
        results=summary)
    written[path.name] = desc

    desc = "Freshly initialised networks (K=32) on 256 digit images: output spread, gradient norms"
    path = write_evidence(
        out_dir, "part5_probes", description=desc, dataset=DATASET, seed=SEED, env=env,
        settings=dict(samples=PROBE_SAMPLES, loss="cross-entropy", hidden_dims=[100],
                      seeded="torch.manual_seed(seed) before each network",
                      output_spread="standard deviation of each output over the images, "
                                    "averaged over the 10 outputs"),
        units={"output_spread": "raw score units", "grad_norm_*": "Frobenius norm of dL/dW"},
        results=dict(probes=run_probes(ds_train)))
    written[path.name] = desc

    settings = ablation_settings(quick)
    depths = ABLATION_L_QUICK if quick else ABLATION_L
    arms = {f"L{L}_{'bn' if bn else 'no_bn'}": train_yourcnn(L, bn, ds_train, ds_test, settings)
            for L in depths for bn in (True, False)}
    desc = "YourCNN (K=32-64-128) with and without batch normalisation, same seed and settings"
    path = write_evidence(
        out_dir, "part5_bn_ablation", description=desc, dataset=DATASET, seed=settings["seed"],
        env=env, settings=dict(settings, depths=list(depths), K=list(ABLATION_K),
                               hidden_dims=list(grids.HIDDEN_DIMS), optimizer="torch.optim.Adam",
                               without_bn="every BatchNorm2d replaced by nn.Identity after "
                                          "construction (same initial weights)"),
        units={"*_acc": PERCENT, "*_loss_mean": "mean cross-entropy of the epoch's batches"},
        results=dict(runs=arms))
    written[path.name] = desc
    return written
