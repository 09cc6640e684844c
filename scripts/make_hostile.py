#!/usr/bin/env python3
"""Craft captures of frames far larger than any network sends (issue 15), for the tests and
the benchmark: a few hundred bytes of bzip2 that expand to 256 MiB frames.

Each frame is Ethernet + IPv4 (total length 0, as a TSO datagram handed to the NIC has) + TCP,
followed by zeros up to its length; the file's snapshot length admits it. The bytes are
streamed into the compressor, never held whole, so crafting costs no memory either.

    python scripts/make_hostile.py --out /tmp/hostile                  # the benchmark files
    python scripts/make_hostile.py --out DIR --frames 2 --size 300000 --format pcapng

Files: ``huge-{format}-{frames}x{size}.{format}[.bz2]``. Deterministic: fixed addresses,
ports and timestamps.
"""

from __future__ import annotations

import argparse
import bz2
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

BASE_S = 1_700_000_000
ETHERNET = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
IPV4_TSO = (bytes([0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0]) + bytes([192, 0, 2, 10])
            + bytes([198, 51, 100, 20]))
"""IPv4 with total length 0 (TSO: the datagram's length is the frame's) and DF set."""
ZEROS = bytes(1 << 20)


def tcp(seq: int) -> bytes:
    """A PSH+ACK segment header from 192.0.2.10:40000 to 198.51.100.20:80."""
    return struct.pack("!HHIIBBHHH", 40000, 80, seq, 1, 0x50, 0x18, 65535, 0, 0)


def frame_parts(size: int, seq: int) -> Iterator[bytes]:
    """One frame of ``size`` bytes, in pieces of at most 1 MiB."""
    head = ETHERNET + IPV4_TSO + tcp(seq)
    yield head
    left = size - len(head)
    while left > 0:
        k = min(left, len(ZEROS))
        yield ZEROS[:k]
        left -= k


def pcap(frames: int, size: int) -> Iterator[bytes]:
    yield struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, max(size, 65535), 1)
    for i in range(frames):
        yield struct.pack("<IIII", BASE_S + i, 0, size, size)
        yield from frame_parts(size, 1 + i * size)


def pcapng(frames: int, size: int) -> Iterator[bytes]:
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    yield struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack(
        "<I", 12 + len(shb_body))
    idb_body = struct.pack("<HHI", 1, 0, 0)  # Ethernet, snaplen 0 (no limit)
    yield struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack(
        "<I", 12 + len(idb_body))
    pad = -size % 4
    length = 32 + size + pad
    for i in range(frames):
        ts = (BASE_S + i) * 1_000_000
        yield struct.pack("<IIIIIII", 6, length, 0, ts >> 32, ts & 0xFFFFFFFF, size, size)
        yield from frame_parts(size, 1 + i * size)
        yield bytes(pad) + struct.pack("<I", length)


def write(out: BinaryIO, parts: Iterator[bytes], compress: bool) -> None:
    c = bz2.BZ2Compressor(9) if compress else None
    for part in parts:
        out.write(c.compress(part) if c is not None else part)
    if c is not None:
        out.write(c.flush())


def make(directory: Path, frames: int, size: int, fmt: str, compress: bool = True) -> Path:
    """Write one file; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"huge-{fmt}-{frames}x{size}.{fmt}" + (".bz2" if compress else "")
    path = directory / name
    with open(path, "wb") as f:
        write(f, pcap(frames, size) if fmt == "pcap" else pcapng(frames, size), compress)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--size", type=int, default=256 << 20,
                        help="bytes per frame (default 256 MiB)")
    parser.add_argument("--format", choices=("pcap", "pcapng"), nargs="*",
                        default=["pcap", "pcapng"])
    parser.add_argument("--plain", action="store_true", help="no bzip2")
    args = parser.parse_args()
    for fmt in args.format:
        for n in args.frames:
            path = make(args.out, n, args.size, fmt, not args.plain)
            print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
