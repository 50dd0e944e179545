"""End-to-end demo: train the from-scratch MLP on real handwritten digits, offline.

``python -m hw2.demo`` (or ``make demo``) loads scikit-learn's 8x8 digits, trains
``hw2.layers.MLP`` with its own backward pass and a plain SGD step over ``params()``, prints the
per-epoch losses and accuracies as a table, and writes the curves to ``demo-output/``.
"""
import argparse
import json
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from hw2 import layers  # noqa: E402
from hw2.datasets import load_dataset  # noqa: E402


def sgd_step(params, lr: float) -> None:
    """Plain SGD over ``(param, grad)`` pairs, then zero the (accumulating) gradients."""
    for p, dp in params:
        p.sub_(lr * dp)
        dp.zero_()


def evaluate(model, loss_fn, x, y):
    """Mean loss and accuracy (%) of ``model`` on ``x: (N, D)``, ``y: (N,)``."""
    model.train(False)
    scores = model(x)
    loss = loss_fn(scores, y).item()
    return loss, 100.0 * (scores.argmax(dim=1) == y).float().mean().item()


def run(epochs: int, batch_size: int, lr: float, seed: int, out_dir: Path):
    torch.manual_seed(seed)
    ds_train, ds_test = load_dataset("digits")
    x_train, y_train = ds_train.images.flatten(1), ds_train.targets
    x_test, y_test = ds_test.images.flatten(1), ds_test.targets
    model = layers.MLP(x_train.shape[1], 10, hidden_features=[128, 64], wstd=0.1)
    loss_fn = layers.CrossEntropyLoss()
    history = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    print(f"\nModel: {model!r}\n")
    print(f"{'epoch':>5} {'train loss':>11} {'train acc':>10} {'test loss':>10} {'test acc':>9}")
    for epoch in range(1, epochs + 1):
        model.train(True)
        for idx in torch.randperm(len(y_train)).split(batch_size):
            loss_fn(model(x_train[idx]), y_train[idx])
            model.backward(loss_fn.backward())
            sgd_step(model.params(), lr)
        for split, (x, y) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
            loss, acc = evaluate(model, loss_fn, x, y)
            history[f"{split}_loss"].append(loss)
            history[f"{split}_acc"].append(acc)
        print(f"{epoch:>5} {history['train_loss'][-1]:>11.4f} {history['train_acc'][-1]:>9.1f}% "
              f"{history['test_loss'][-1]:>10.4f} {history['test_acc'][-1]:>8.1f}%")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "demo_mlp_digits.json", history)
    _plot(history, out_dir / "demo_mlp_digits.png")
    print(f"\nFinal test accuracy on digits: {history['test_acc'][-1]:.1f}%")
    print(f"Wrote {out_dir / 'demo_mlp_digits.json'} and {out_dir / 'demo_mlp_digits.png'}")
    return history


def _write_json(path: Path, obj) -> None:
    """Write JSON atomically: a temporary file in the same folder, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _plot(history, path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
    epochs = range(1, len(history["train_loss"]) + 1)
    for split in ("train", "test"):
        ax_loss.plot(epochs, history[f"{split}_loss"], label=split)
        ax_acc.plot(epochs, history[f"{split}_acc"], label=split)
    ax_loss.set(title="Cross-entropy loss", xlabel="Epoch", ylabel="Loss")
    ax_acc.set(title="Accuracy", xlabel="Epoch", ylabel="Accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(True)
    fig.suptitle("From-scratch MLP on scikit-learn digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-dir", type=Path, default=Path("demo-output"))
    args = parser.parse_args(argv)
    run(args.epochs, args.batch_size, args.lr, args.seed, args.out_dir)


if __name__ == "__main__":
    main()
