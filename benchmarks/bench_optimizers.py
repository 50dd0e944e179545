"""Time ``step()`` of the from-scratch optimizers against their ``torch.optim`` twins.

The parameter list is a real ResNet's (torchvision's ResNet-18: 62 tensors, 11.7M values)
with random gradients. Our rules are loops over the parameters, as ``torch.optim``'s
single-tensor path (``foreach=False``) is, and the table rows compare with that path (on the
CPU it is torch's default; on CUDA torch defaults to its multi-tensor ``foreach`` kernels).
Run alone, it also prints ``torch.optim`` with ``foreach=True``, for the record.

Run: ``python -m benchmarks.bench_optimizers [--device cuda] [--repeats 30]``.
"""
import argparse

import torch

from benchmarks.timing import Row, interleaved_medians, minor_faults
from hw2.optimizers import Adam, MomentumSGD, RMSProp, VanillaSGD

# name: (ours, our kwargs, torch class, torch kwargs); eps tiny so that RMSProp's two eps
# placements do the same arithmetic amount of work on comparable numbers.
GOAL = 1.10

RULES = {
    "sgd": (VanillaSGD, dict(learn_rate=1e-3, reg=1e-4), torch.optim.SGD,
            dict(lr=1e-3, weight_decay=1e-4)),
    "momentum": (MomentumSGD, dict(learn_rate=1e-3, reg=1e-4, momentum=0.9), torch.optim.SGD,
                 dict(lr=1e-3, weight_decay=1e-4, momentum=0.9)),
    "nesterov": (MomentumSGD, dict(learn_rate=1e-3, reg=1e-4, momentum=0.9, nesterov=True),
                 torch.optim.SGD, dict(lr=1e-3, weight_decay=1e-4, momentum=0.9, nesterov=True)),
    "rmsprop": (RMSProp, dict(learn_rate=1e-3, reg=1e-4), torch.optim.RMSprop,
                dict(lr=1e-3, weight_decay=1e-4)),
    "adam": (Adam, dict(learn_rate=1e-3, reg=1e-4), torch.optim.Adam,
             dict(lr=1e-3, weight_decay=1e-4)),
}


def resnet_parameters(device: torch.device):
    """Fresh ResNet-18 parameters on ``device``, each with a random ``.grad``."""
    import torchvision  # imported here: only the benchmark needs it

    torch.manual_seed(0)
    params = [p.detach().to(device).requires_grad_(True)
              for p in torchvision.models.resnet18(num_classes=10).parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-2
    return params


def run(repeats: int = 20, device=None):
    """Table rows for ``python -m benchmarks``: median step time, ours vs ``torch.optim``'s
    single-tensor path, and on the CPU the minor page faults per step of each (goal for ours:
    none)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for name, (ours_cls, ours_kw, torch_cls, torch_kw) in RULES.items():
        ours = ours_cls(resnet_parameters(device), **ours_kw)
        theirs = torch_cls(resnet_parameters(device), foreach=False, **torch_kw)
        t_ours, t_torch = interleaved_medians([ours.step, theirs.step], repeats=repeats,
                                              warmup=2, device=device)
        label = f"{ours_cls.__name__}({name}).step vs torch.optim, ResNet-18"
        rows.append(Row(label, 1e3 * t_ours, 1e3 * t_torch, "ms/step", f"<= {GOAL}",
                        t_ours / t_torch <= GOAL))
        if device.type == "cpu":
            f_ours, f_torch = faults_per_step([ours.step, theirs.step])
            rows.append(Row(f"{label}: minor page faults", f_ours, f_torch, "faults/step", "0",
                            f_ours == 0))
    return rows


def faults_per_step(steps, rounds: int = 5):
    """Mean minor page faults per call of each step function, called in interleaved rounds.

    Interleaving matters: the other optimizer's temporaries are freed between our steps, as a
    training loop frees its activations, so a step that allocates finds fresh pages.
    """
    totals = [0] * len(steps)
    for _ in range(rounds):
        for k, step in enumerate(steps):
            before = minor_faults()
            step()
            totals[k] += minor_faults() - before
    return [t / rounds for t in totals]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    count = sum(p.numel() for p in resnet_parameters(device))
    print(f"optimizer step() on ResNet-18 parameters ({count:,} values), device={device}, "
          f"torch {torch.__version__}, median of {args.repeats} interleaved rounds")
    print(f"{'rule':<10}{'ours ms':>10}{'torch ms':>10}{'foreach ms':>12}"
          f"{'ours/torch':>12}{'ours/foreach':>14}")
    for name, (ours_cls, ours_kw, torch_cls, torch_kw) in RULES.items():
        contenders = [ours_cls(resnet_parameters(device), **ours_kw),
                      torch_cls(resnet_parameters(device), **torch_kw),
                      torch_cls(resnet_parameters(device), foreach=True, **torch_kw)]
        ours, default, foreach = (1e3 * t for t in interleaved_medians(
            [opt.step for opt in contenders], repeats=args.repeats, warmup=2, device=device))
        print(f"{name:<10}{ours:>10.2f}{default:>10.2f}{foreach:>12.2f}"
              f"{ours / default:>12.2f}{ours / foreach:>14.2f}")


if __name__ == "__main__":
    main()
