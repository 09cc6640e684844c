"""The C allocator's settings for one command: freed batch memory is kept for the next batch.

Every batch of a capture passes through fresh memory: the chunk read from the file (2 MiB),
its decoded columns (about 2 MB more) and the connections it ends, all freed by Python once
the tracker is done with them. glibc's malloc maps blocks that large with mmap and, each time
one is freed, raises its mmap threshold to that size; past it, it trims the top of its heap
once twice that much is free there. Batches of varying size therefore keep going back to the
kernel and coming back as new pages, each faulted in and zeroed: on the 2M-packet benchmark
capture `conns --format zeek` spent about 0.1 CPU s of system time on it, most of that in
the thread that reads ahead, which sets the command's pace (docs/benchmarks.md, *Freed
memory kept for the next batch*).

A fixed mmap threshold of 32 MiB (glibc's largest: a thread's heap is 64 MiB) keeps these
blocks in malloc's heaps, and a trim threshold of 256 MiB keeps their pages mapped between
batches. Peak RSS stays where it was (the same blocks, reused), but up to that much freed
memory may stay mapped until the command ends, which is why only the command line does this:
`import portlens` leaves the caller's process alone, as it does for OPENBLAS_NUM_THREADS.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
"""mallopt's parameter numbers (glibc's malloc.h)."""

MMAP_THRESHOLD: Final = 32 << 20
TRIM_THRESHOLD: Final = 256 << 20

_USER_SETTINGS: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                         "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Sets both thresholds on glibc's malloc: whether it did. Nothing happens elsewhere
    (another C library, another system), or when the user has tuned malloc in the
    environment: their settings win."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    # glibc's own function: musl, say, has a mallopt that does nothing
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # 1 on success (a refused value leaves glibc's default); both are set either way
    mmap_set: bool = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_set: bool = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_set and trim_set
