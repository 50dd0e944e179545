"""Memory churn of the tensor data path: minor page faults per batch made by ``TensorLoader``.

A minor page fault is the kernel handing a process a fresh page. A loop that allocates large
temporaries and frees them again pays one per 4 KiB touched whenever the C library has given
the freed blocks back to the system, which glibc does for large blocks. The counts come from
``resource.getrusage``.

``TensorLoader`` makes every batch in fresh tensors. ``run-exp`` calls
:func:`hw2.allocator.retain_freed_memory` first, so that glibc keeps freed blocks for the next
batch. Each row iterates epochs of a loader over the synthetic stand-in in two fresh Python
processes, one with that setting and one with glibc's defaults, and compares their page faults
per batch. Goal: with the setting, at most a third of glibc's default, as in the end-to-end
row. (The loader once kept a pool of batch buffers, which got below one fault per batch here;
end to end, in ``bench_end_to_end``, it saved about 90 of some 200 faults per training batch of
128, against the plain path's 15,000, so it was removed.) The optimizers' page faults per step
are rows of ``bench_optimizers``.

Run alone: ``python -m benchmarks.bench_memory``.
"""
import json
import subprocess
import sys

from benchmarks.timing import Row, minor_faults

THREADS = 2
SETTINGS = {
    "B=128, augment+normalise": dict(batch_size=128, augment=True, mean=[0.5, 0.5, 0.5],
                                     std=[0.25, 0.25, 0.25]),
    "B=512": dict(batch_size=512),
    "B=512, augment+normalise": dict(batch_size=512, augment=True, mean=[0.5, 0.5, 0.5],
                                     std=[0.25, 0.25, 0.25]),
}


def faults_per_batch(loader, epochs: int = 2) -> float:
    """Mean minor page faults per batch over ``epochs`` epochs, after one warm-up epoch."""
    for _ in loader:
        pass
    before, batches = minor_faults(), 0
    for _ in range(epochs):
        for _ in loader:
            batches += 1
    return (minor_faults() - before) / batches


def _worker(retain: bool) -> None:
    import torch

    from hw2.allocator import retain_freed_memory
    from hw2.datasets import make_synthetic
    from hw2.tensor_data import TensorLoader, dataset_tensors

    if retain and not retain_freed_memory():
        raise RuntimeError("glibc refused the allocator settings (not Linux/glibc?)")
    torch.set_num_threads(THREADS)
    images, targets = dataset_tensors(make_synthetic(n_train=8192, n_test=10)[0])
    print(json.dumps({name: faults_per_batch(TensorLoader(images, targets, shuffle=True, seed=0,
                                                          **kw))
                      for name, kw in SETTINGS.items()}))


def _faults(retain: bool) -> dict:
    """Page faults per batch of each setting, measured in a fresh interpreter."""
    flag = ["--retain"] if retain else []
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--worker", *flag],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the page-fault worker failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run():
    retained, default = _faults(True), _faults(False)
    return [Row(f"TensorLoader minor page faults per batch ({name}): retained memory vs glibc "
                f"default", retained[name], default[name], "faults", "<= 0.33",
                retained[name] <= default[name] / 3)
            for name in SETTINGS]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(retain=sys.argv[2:] == ["--retain"])
    else:
        from benchmarks.timing import print_table
        print_table(run(), "tensor data path: minor page faults")
