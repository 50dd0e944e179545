"""The tensor-resident data path vs. a torchvision-style ``DataLoader``, in images per second.

The baseline is what the course's code does: a CIFAR-10-shaped data set stored as uint8
``(N, 32, 32, 3)`` arrays whose ``__getitem__`` builds a PIL image and applies ``ToTensor``,
read by ``DataLoader(..., num_workers=2)``. Ours is :class:`hw2.tensor_data.TensorLoader` over
the same uint8 data. Both shuffle and produce float batches in [0, 1]; one epoch of iteration is
timed for each (goal: at least 10x the images per second).
"""
import numpy as np
import torch
import torchvision.transforms as tvtf
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.timing import Row, interleaved_medians, synchronize
from hw2.tensor_data import TensorLoader

GOAL = 10.0


class CifarShaped(Dataset):
    """Random uint8 images stored and decoded exactly as torchvision's CIFAR10 does it."""

    def __init__(self, n: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, size=n).tolist()
        self.transform = tvtf.ToTensor()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def run(n: int = 20_000, batch_size: int = 128, repeats: int = 3, device=None):
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ds = CifarShaped(n)
    plain = DataLoader(ds, batch_size, shuffle=True, num_workers=2,
                       pin_memory=device.type == "cuda")
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    fast = TensorLoader(images, torch.tensor(ds.targets), batch_size, shuffle=True, seed=0,
                        device=device)

    def epoch(loader, to_device):
        def go():
            for x, y in loader:
                if to_device:
                    x = x.to(device, non_blocking=True)
                    y = y.to(device, non_blocking=True)
            synchronize(device)
        return go

    t_fast, t_plain = interleaved_medians([epoch(fast, False), epoch(plain, True)],
                                          repeats=repeats, warmup=1, device=device)
    fast_ips, plain_ips = n / t_fast, n / t_plain
    return [Row(f"TensorLoader vs DataLoader(ToTensor, 2 workers), {device.type}",
                # Throughput: higher is better, so the ratio is ours / baseline in images/s.
                fast_ips, plain_ips, "images/s", f">= {GOAL:g}x", fast_ips / plain_ips >= GOAL)]


if __name__ == "__main__":
    from benchmarks.timing import print_table
    print_table(run(), "data path: one epoch of iteration")
