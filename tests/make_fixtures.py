"""Write the reference tensors in ``tests/assets/`` from an independent construction.

This script never imports ``hw2``: every expected value is computed here with plain torch
arithmetic, so the tests compare the package against something it did not produce.

Run it from the repository root::

    python tests/make_fixtures.py
"""
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parent / "assets"


def expected_vsgd() -> torch.Tensor:
    """One VanillaSGD step (learning rate 0.5, L2 regularisation 0.1), done by hand.

    :return: the updated parameters, shape (500, 10).
    """
    torch.manual_seed(42)
    p = torch.randn(500, 10)
    dp = torch.randn(*p.shape) * 2
    learn_rate, reg = 0.5, 0.1
    return p - learn_rate * (dp + reg * p)


def main() -> None:
    """Compute every fixture and save it under ``tests/assets/``."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    fixtures = {"expected_vsgd.pt": expected_vsgd()}
    for name, tensor in fixtures.items():
        torch.save(tensor, ASSETS / name)
        print(f"wrote {ASSETS / name}  shape={tuple(tensor.shape)}")


if __name__ == "__main__":
    main()
