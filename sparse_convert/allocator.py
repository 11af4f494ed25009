"""C-heap policy for long simulations on Linux/glibc.

glibc raises its mmap threshold each time a large block is freed ("dynamic threshold"),
so the multi-megabyte tensors a simulation allocates and frees every time step end up
on the heap, where differently sized ones fragment it: resident memory then grows with
the number of steps simulated although no tensor outlives its step (measured in
``benchmarks/bench_memory.py``). A fixed threshold keeps large blocks in mmap, returned
to the system when freed. The CLI sets it at start; library users can call
``fix_mmap_threshold()`` or export ``MALLOC_MMAP_THRESHOLD_=262144`` themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
DEFAULT_THRESHOLD_BYTES = 256 * 1024


def fix_mmap_threshold(nbytes: int = DEFAULT_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold to ``nbytes`` (disabling its dynamic growth); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(nbytes)))
    except (OSError, AttributeError):
        return False
