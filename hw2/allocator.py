"""Keep the memory a training loop frees for its next iteration (glibc's malloc, Linux).

glibc serves a large allocation from a fresh mmap (above a threshold that adapts up to 32 MiB)
and gives the free top of its heaps back to the system (beyond twice that threshold). A
training step frees its activations, tens of MiB, and asks for as much again at the next
step, so every step takes each page back from the kernel: about 20,000 minor page faults per
batch for the K=32, L=2 CNN at batch size 128. Fixing both thresholds high keeps that memory
mapped in the process, where the next step finds it.
"""
import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3

#: Blocks smaller than this come from the heaps, where freed memory is reused, not from mmap.
MMAP_THRESHOLD = 64 << 20
#: Up to this much free memory at the top of a heap stays mapped.
TRIM_THRESHOLD = 256 << 20


def retain_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the system.

    Process-wide and lasting (glibc offers no way back to its adaptive default); the cost is up
    to :data:`TRIM_THRESHOLD` of free memory per heap that stays mapped. A glibc that refuses
    an mmap threshold above 32 MiB gets 32 MiB.

    :return: True when glibc took both settings; False without glibc's ``mallopt`` (macOS,
        Windows, musl), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_set = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                or mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1)
    return mmap_set and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
