"""What the kernel's copy of a capture costs: the file read with read() into 1 MiB, as the
core's reader reads it, against the file mapped (mmap) with every page touched once.

    python scripts/read_vs_map.py FILE [--rounds N]

Prints wall, user and system seconds and page faults of each way, alternating, N rounds
(default 3). The file should be in the page cache (read it once before).
"""

from __future__ import annotations

import argparse
import mmap
import resource
import time

import numpy as np

CHUNK = 1 << 20
PAGE = mmap.PAGESIZE


def read_all(path: str) -> int:
    total = 0
    with open(path, "rb", buffering=0) as f:
        buf = memoryview(bytearray(CHUNK))
        while n := f.readinto(buf):
            total += n
    return total


def map_all(path: str) -> int:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        pages = np.frombuffer(m, np.uint8)[::PAGE]  # one byte a page: every page faulted in
        total = int(pages.sum())
        del pages  # the mapping closes only once no view of it is left
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for name, way in (("read", read_all), ("mmap", map_all)):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            way(args.file)
            after = resource.getrusage(resource.RUSAGE_SELF)
            print(f"{name}: wall {time.perf_counter() - started:.3f} s, "
                  f"user {after.ru_utime - before.ru_utime:.3f} s, "
                  f"system {after.ru_stime - before.ru_stime:.3f} s, "
                  f"page faults {after.ru_minflt - before.ru_minflt}")


if __name__ == "__main__":
    main()
