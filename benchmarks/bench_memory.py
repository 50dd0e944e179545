"""Memory churn of the tensor data path: minor page faults per batch made by ``TensorLoader``.

A minor page fault is the kernel handing a process a fresh page. A loop that allocates large
temporaries and frees them again pays one per 4 KiB touched whenever the C library has given
the freed blocks back to the system, which glibc does for large blocks. The counts come from
``resource.getrusage``.

Each row iterates epochs of a :class:`~hw2.tensor_data.TensorLoader` over the synthetic
stand-in twice: with its reused buffers (the default) and with ``reuse_buffers=False``, which
makes every batch in freshly allocated tensors as the loader did before (the same operations,
the same values). Goal: with reuse, below one page fault per batch (what remains is per epoch:
the permutation, Python's own objects). Everything runs in one fresh Python
process, so that the allocator's state does not depend on the suites run before.
(The optimizers' page faults per step are rows of ``bench_optimizers``; the whole training
loop's, per training batch, a row of ``bench_end_to_end``.)

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


def _worker() -> None:
    import torch

    from hw2.datasets import make_synthetic
    from hw2.tensor_data import TensorLoader, dataset_tensors

    torch.set_num_threads(THREADS)
    images, targets = dataset_tensors(make_synthetic(n_train=8192, n_test=10)[0])
    rows = []
    for name, kw in SETTINGS.items():
        reused, fresh = (faults_per_batch(TensorLoader(images, targets, shuffle=True, seed=0,
                                                       reuse_buffers=reuse, **kw))
                         for reuse in (True, False))
        rows.append([f"TensorLoader minor page faults per batch ({name}): reused vs fresh buffers",
                     reused, fresh, "faults", "< 1", reused < 1])
    print(json.dumps(rows))


def run():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--worker"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the page-fault worker failed (exit {proc.returncode}):\n{proc.stderr}")
    return [Row(*fields) for fields in json.loads(proc.stdout.strip().splitlines()[-1])]


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        _worker()
    else:
        from benchmarks.timing import print_table
        print_table(run(), "tensor data path: minor page faults")
