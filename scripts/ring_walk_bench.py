"""CPU and page faults of the ring reader's per-batch work, without a socket or a sender.

A ring in plain memory is filled with full TPACKET_V3 blocks of one frame size, and the ring
reader (portlens.sources.live._RingReader.read) drains it again and again; the batches it
returns are held in a FIFO of ``--held`` batches, as the live capture's backlog holds them.
``--walk reference`` runs the numpy walk the compiled one replaced (portlens.reference.ring,
a fresh buffer per batch); ``--pool 0`` runs the compiled walk without buffer reuse.

    PYTHONPATH=src python scripts/ring_walk_bench.py --frame 60 --walk core --pool 4
"""

from __future__ import annotations

import argparse
import collections
import importlib
import resource
import struct
import time

import numpy as np

from portlens.reference.ring import ring_frames as reference_frames
from portlens.sources.frames import FrameBatch
from portlens.sources.live import (
    MAX_BLOCKS_PER_BATCH,
    TP3_SLL_END,
    TP_STATUS_USER,
    _BufferPool,
    _RingReader,
)

BLOCK = 1 << 20


def full_block(frame: int) -> bytes:
    """A 1 MiB block of frames of ``frame`` bytes, laid out as the kernel does (raw socket:
    the data 16 bytes after the sockaddr_ll)."""
    b = bytearray(BLOCK)
    mac = TP3_SLL_END + 16
    step = (mac + frame + 15) & ~15
    n = (BLOCK - 48) // step
    data = bytes(range(256)) * (frame // 256 + 1)
    for i in range(n):
        at = 48 + i * step
        struct.pack_into("<IIIIIIH", b, at, step if i + 1 < n else 0, 1_700_000_000 + i, 0,
                         frame, frame, TP_STATUS_USER, mac)
        struct.pack_into("<iB", b, at + 52, 2, 0)
        b[at + mac : at + mac + frame] = data[:frame]
    struct.pack_into("<IIII", b, 8, TP_STATUS_USER, n, 48, 48 + n * step)
    return bytes(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", type=int, default=60)
    ap.add_argument("--blocks", type=int, default=32, help="ring blocks (1 MiB each)")
    ap.add_argument("--rounds", type=int, default=40, help="times the whole ring is drained")
    ap.add_argument("--held", type=int, default=4, help="batches held (the backlog)")
    ap.add_argument("--walk", choices=["core", "reference"], default="core")
    ap.add_argument("--pool", type=int, default=4, help="pooled buffers (0: none)")
    args = ap.parse_args()

    block = full_block(args.frame)
    mm = bytearray(block * args.blocks)
    reader = object.__new__(_RingReader)
    reader.sock = None
    reader.mm = mm
    ring = np.frombuffer(mm, dtype=np.uint8)
    reader.ring = ring
    reader.block_size, reader.block_count = BLOCK, args.blocks
    reader.snaplen, reader.cooked, reader.linktype = 262144, False, 1
    reader.lo_ifindex, reader.losing_blocks, reader.current, reader.duplicates = None, 0, 0, 0
    reader._core = importlib.import_module("portlens._core")
    reader._walker = reader._core.RingWalker()
    reader.pool = _BufferPool(MAX_BLOCKS_PER_BATCH * BLOCK, args.pool)
    if args.walk == "reference":
        def read() -> FrameBatch | None:
            bases = [((reader.current + i) % args.blocks) * BLOCK
                     for i in range(MAX_BLOCKS_PER_BATCH)]
            views = [ring[b : b + BLOCK] for b in bases]
            batch, _ = reference_frames(views, snaplen=262144, cooked=False, linktype=1,
                                        lo_ifindex=None)
            for b in bases:
                struct.pack_into("<I", mm, b + 8, 0)
            reader.current = (reader.current + MAX_BLOCKS_PER_BATCH) % args.blocks
            return batch
    else:
        read = reader.read

    held: collections.deque[FrameBatch] = collections.deque(maxlen=args.held or None)
    frames = 0
    r0, c0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    for _ in range(args.rounds):
        for i in range(args.blocks):  # the kernel hands the whole ring over again
            struct.pack_into("<I", mm, i * BLOCK + 8, TP_STATUS_USER)
        while (batch := read()) is not None:
            frames += len(batch)
            if args.held:
                held.append(batch)
            if reader.current == 0:
                break
    r1, c1 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    cpu = c1 - c0
    print(f"frame {args.frame} B, walk {args.walk}, pool {args.pool}, held {args.held}: "
          f"{frames:,} frames, {cpu:.3f} CPU s ({r1.ru_utime - r0.ru_utime:.3f} user, "
          f"{r1.ru_stime - r0.ru_stime:.3f} sys), {cpu / frames * 1e9:.0f} ns/frame, "
          f"{r1.ru_minflt - r0.ru_minflt:,} minor faults")


if __name__ == "__main__":
    main()
