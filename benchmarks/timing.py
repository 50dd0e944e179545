"""Side-by-side timing: interleaved repetitions, reported as medians.

Contenders run in turns within one process (A, B, A, B, ...), so drifting background load on a
shared machine hits all of them alike, and the median over rounds discards outliers.
"""
import statistics
import time
from typing import Callable, List, NamedTuple, Optional, Sequence

import torch


class Row(NamedTuple):
    """One line of the benchmark table."""

    name: str
    ours: float
    baseline: float
    unit: str
    goal: str
    met: Optional[bool]  # None: a row shown for information, without a goal

    @property
    def ratio(self) -> float:
        """ours / baseline (0 when both are 0, e.g. no page faults on either side)."""
        if self.baseline == 0:
            return 0.0 if self.ours == 0 else float("inf")
        return self.ours / self.baseline


def synchronize(device) -> None:
    """Wait for queued GPU work so that wall time covers it (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(contenders: Sequence[Callable[[], object]], repeats: int, warmup: int = 1,
                        device="cpu") -> List[float]:
    """Median wall time (seconds) of each zero-argument callable, run in interleaved rounds."""
    for _ in range(warmup):
        for fn in contenders:
            fn()
    times = [[] for _ in contenders]
    for _ in range(repeats):
        for k, fn in enumerate(contenders):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[k].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def print_table(rows: Sequence[Row], header: str) -> None:
    """Print rows as a fixed-width table with the ratio and whether its goal was met."""
    width = max([len("benchmark")] + [len(r.name) for r in rows]) + 2
    print(header)
    print(f"{'benchmark':<{width}}{'ours':>11}{'baseline':>11}  {'unit':<10}{'ratio':>7}  {'goal':<9}met")
    for r in rows:
        print(f"{r.name:<{width}}{r.ours:>11.4g}{r.baseline:>11.4g}  {r.unit:<10}{r.ratio:>7.2f}  "
              f"{r.goal:<9}{'-' if r.met is None else 'yes' if r.met else 'NO'}")


def minor_faults() -> int:
    """Minor page faults of this process so far (from ``resource.getrusage``).

    A minor fault is the kernel mapping a fresh page at its first touch, e.g. memory that the
    allocator had given back to the system and asks for again. Counted around a loop, they
    show how much memory it churns.

    :raises RuntimeError: Where ``resource`` does not exist (Windows).
    """
    try:
        import resource
    except ImportError:
        raise RuntimeError("counting page faults needs the resource module (Unix only)") from None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bare_train_epoch(model, loss_fn, optimizer, batches, predict=None):
    """The plain alternative to a trainer's epoch: the loop everyone writes by hand.

    :param predict: Maps the detached scores ``(N, C)`` to predicted classes ``(N,)`` (e.g.
        a classifier's ``classify_scores``); None: the arg-max of the scores.
    :return: ``(sum of batch losses, number of correct predictions)``.
    """
    model.train()
    total_loss, correct = 0.0, 0
    for x, y in batches:
        optimizer.zero_grad()
        scores = model(x)
        loss = loss_fn(scores, y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
        predicted = scores.argmax(dim=1) if predict is None else predict(scores.detach())
        correct += int((predicted == y).sum())
    return total_loss, correct
