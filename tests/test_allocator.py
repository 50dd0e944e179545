"""hw2.allocator: glibc keeps the memory a training step frees, so the next step faults no pages.

Oracle: the minor page-fault count of the kernel (``resource.getrusage``) for the same training
steps in two fresh processes, one that calls :func:`retain_freed_memory` and one that does not.
Each step is counted on its own. Without the setting, how much glibc gives back varies from
step to step (some steps fault nothing, others 30,000 pages), so that side is the mean over
eight steps; with it, the typical step faults nothing, but the kernel can add faults now and then
that the allocator did not cause (automatic NUMA balancing unmaps pages to sample their use,
which counts as minor faults), so that side is the median step.
"""
import json
import statistics
import subprocess
import sys
import textwrap

import pytest

from helpers import child_env
from hw2.allocator import retain_freed_memory

_PROBE = textwrap.dedent("""
    import json, resource, sys
    import torch
    from torch import nn
    from hw2.allocator import retain_freed_memory
    tuned = retain_freed_memory() if sys.argv[1] == "tuned" else None
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16 * 16, 10))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x, y = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))
    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    for _ in range(3):
        step()
    faults = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"tuned": tuned, "faults_per_step": faults}))
""")


def _probe_env() -> dict:
    """This checkout's packages and glibc's own malloc as it comes: no preloaded allocator
    (jemalloc, tcmalloc) and no malloc tunables from the environment, which would decide the
    fault counts instead of the setting under test."""
    env = child_env(OMP_NUM_THREADS="1")
    for key in list(env):
        if key in ("LD_PRELOAD", "GLIBC_TUNABLES") or key.startswith("MALLOC_"):
            del env[key]
    return env


def _faults_per_step(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], check=True, capture_output=True,
                         text=True, timeout=300, env=_probe_env()).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_training_steps_fault_far_fewer_pages_once_freed_memory_is_retained():
    plain = _faults_per_step("plain")
    tuned = _faults_per_step("tuned")
    assert tuned["tuned"] is True
    # Each step frees and re-allocates ~10 MiB of activations: without the setting glibc hands
    # them back to the kernel every step (thousands of faults); with it they stay mapped.
    plain_mean = statistics.mean(plain["faults_per_step"])
    tuned_median = statistics.median(tuned["faults_per_step"])
    assert plain_mean > 1000, plain
    assert tuned_median * 10 < plain_mean, (plain, tuned)


def test_retain_freed_memory_reports_what_it_did(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert retain_freed_memory() is False
