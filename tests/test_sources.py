"""Capture files in, FrameBatches out: pcap, pcapng, compressed, damaged; and the writers.

Files are built byte by byte with ``struct`` here (independently of portlens' writers), then the
writers are checked by reading back what they wrote. The public captures are checked frame by
frame against tshark's per-packet oracle.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from portlens.reference.pcapng import Clock
from portlens.sources import (
    CaptureError,
    FrameBatch,
    PcapngWriter,
    PcapWriter,
    open_capture,
)

REPO = Path(__file__).resolve().parent.parent
NS = 10**9
T0 = 1_700_000_000  # 2023-11-14, seconds


# -- reading helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    frame: int
    ts_ns: int
    caplen: int
    wirelen: int
    linktype: int
    interface: int
    data: bytes


def frames_of(batches: Iterator[FrameBatch] | list[FrameBatch]) -> list[Frame]:
    out = []
    for b in batches:
        for i in range(len(b)):
            out.append(
                Frame(
                    int(b.frame[i]),
                    int(b.ts_ns[i]),
                    int(b.caplen[i]),
                    int(b.wirelen[i]),
                    int(b.linktype[i]),
                    int(b.interface[i]),
                    b.frame_bytes(i),
                )
            )
    return out


def read_all(path: Path, chunk_bytes: int = 8 << 20) -> list[Frame]:
    with open_capture(path, chunk_bytes=chunk_bytes) as r:
        return frames_of(r)


def read_until_error(path: Path, chunk_bytes: int = 8 << 20) -> tuple[list[Frame], str | None]:
    """Frames yielded before the reader stopped, and its CaptureError message (if any)."""
    got: list[FrameBatch] = []
    try:
        with open_capture(path, chunk_bytes=chunk_bytes) as r:
            for b in r:
                got.append(b)
    except CaptureError as exc:
        return frames_of(got), str(exc)
    return frames_of(got), None


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- byte-level builders (independent of portlens.sources.writer) -------------------------------


def pcap_file(
    records: list[tuple[int, int, bytes, int]],
    *,
    order: str = "<",
    ns: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
    magic: int | None = None,
    version: tuple[int, int] = (2, 4),
    extra: bytes = b"",
) -> tuple[bytes, list[int]]:
    """A pcap file and the byte offset of each record. records: (sec, frac, data, wirelen)."""
    if magic is None:
        magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)
    offsets = []
    for sec, frac, data, wirelen in records:
        offsets.append(len(out))
        out += struct.pack(order + "IIII", sec, frac, len(data), wirelen) + extra + data
    return out, offsets


def pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def block(o: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    total = len(body) + 12
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def opt(o: str, code: int, value: bytes) -> bytes:
    return struct.pack(o + "HH", code, len(value)) + pad4(value)


def shb(o: str, major: int = 1, minor: int = 0) -> bytes:
    return block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, major, minor, -1))


def idb(o: str, linktype: int, snaplen: int, options: bytes = b"") -> bytes:
    if options:
        options += opt(o, 0, b"")
    return block(o, 1, struct.pack(o + "HHI", linktype, 0, snaplen) + options)


def epb(o: str, interface: int, ticks: int, data: bytes, wirelen: int | None = None) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    head = struct.pack(o + "IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return block(o, 6, head + data)


def pb(o: str, interface: int, drops: int, ticks: int, data: bytes, *, wirelen: int) -> bytes:
    head = struct.pack(
        o + "HHIIII", interface, drops, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wirelen
    )
    return block(o, 2, head + data)


def spb(o: str, wirelen: int, data: bytes) -> bytes:
    return block(o, 3, struct.pack(o + "I", wirelen) + data)


L, B = "<", ">"

# The multi-section file: (block bytes, is a packet block). Expected frames below.
COMPLEX_BLOCKS: list[tuple[bytes, bool]] = [
    (shb(L), False),
    (idb(L, 1, 0, opt(L, 2, b"eth0") + opt(L, 9, bytes([6]))), False),
    (block(L, 0x999, b"unknown!"), False),
    (idb(L, 101, 65535, opt(L, 2, b"wlan0") + opt(L, 9, bytes([9]))), False),
    (epb(L, 0, T0 * 10**6 + 123_456, b"A" * 60, 1514), True),
    (block(L, 0xBAD, struct.pack("<I", 32473) + b"custom"), False),
    (epb(L, 1, (T0 + 1) * NS + 987_654_321, b"B" * 40), True),
    (spb(L, 70, b"C" * 70), True),
    (block(L, 0x40000BAD, struct.pack("<I", 32473) + b"custom too"), False),
    (pb(L, 1, 7, (T0 + 2) * NS + 1, b"D" * 33, wirelen=99), True),
    (block(L, 4, opt(L, 0, b"")), False),
    (shb(B), False),
    (
        idb(
            B,
            113,
            64,
            opt(B, 2, b"any") + opt(B, 9, bytes([0x80 | 20])) + opt(B, 14, struct.pack(">q", 10)),
        ),
        False,
    ),
    (spb(B, 100, b"E" * 64), True),
    (epb(B, 0, (T0 << 20) + 3, b"F" * 50), True),
    (block(B, 5, struct.pack(">IIIq", 0, 0, 0, 0)), False),
    (spb(B, 30, b"G" * 30), True),
]
COMPLEX = b"".join(b for b, _ in COMPLEX_BLOCKS)
# 3 ticks of 2**-20 s = 2861.02... ns, floored; if_tsoffset adds 10 s.
TS_BINARY = (T0 + 10) * NS + 2861
COMPLEX_FRAMES = [
    Frame(1, T0 * NS + 123_456_000, 60, 1514, 1, 0, b"A" * 60),
    Frame(2, (T0 + 1) * NS + 987_654_321, 40, 40, 101, 1, b"B" * 40),
    # Simple Packet Block: interface 0 of the section, the section's last timestamp.
    Frame(3, (T0 + 1) * NS + 987_654_321, 70, 70, 1, 0, b"C" * 70),
    Frame(4, (T0 + 2) * NS + 1, 33, 99, 101, 1, b"D" * 33),
    # Second section, big-endian: its interface 0 is global interface 2; no timestamp yet -> 0,
    # and the SPB is cut to the interface's snaplen (64).
    Frame(5, 0, 64, 100, 113, 2, b"E" * 64),
    Frame(6, TS_BINARY, 50, 50, 113, 2, b"F" * 50),
    Frame(7, TS_BINARY, 30, 30, 113, 2, b"G" * 30),
]


def small_pcap() -> tuple[bytes, list[int]]:
    records = [(T0 + i, i * 1000, bytes([i]) * (20 + 7 * i), 20 + 7 * i + i) for i in range(6)]
    return pcap_file(records)


# -- classic pcap --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, ns: bool) -> None:
    data, _ = pcap_file(
        [
            (T0, 123_456, b"\x01" * 54, 54),
            (T0 + 1, 999_999, b"\x02" * 60, 60),
            (0, 0, b"", 0),
        ],
        order=order,
        ns=ns,
        linktype=113,
    )
    path = write(tmp_path, "a.pcap", data)
    unit = 1 if ns else 1000
    with open_capture(path) as r:
        assert r.format == "pcap"
        assert not r.compressed
        assert [(i.id, i.linktype, i.snaplen, i.ticks_per_second) for i in r.interfaces] == [
            (0, 113, 65535, 10**9 if ns else 10**6)
        ]
        frames = frames_of(r)
        assert r.frames_read == 3
        assert r.bytes_read == r.total_bytes == len(data)
    assert frames == [
        Frame(1, T0 * NS + 123_456 * unit, 54, 54, 113, 0, b"\x01" * 54),
        Frame(2, (T0 + 1) * NS + 999_999 * unit, 60, 60, 113, 0, b"\x02" * 60),
        Frame(3, 0, 0, 0, 113, 0, b""),
    ]


def test_pcap_snaplen_cut_frames_keep_wire_length(tmp_path: Path) -> None:
    data, _ = pcap_file([(T0, 5, b"\xaa" * 68, 1514), (T0, 6, b"\xbb" * 68, 68)], snaplen=68)
    frames = read_all(write(tmp_path, "cut.pcap", data))
    assert [(f.caplen, f.wirelen) for f in frames] == [(68, 1514), (68, 68)]


def test_pcap_caplen_over_snaplen_is_accepted(tmp_path: Path) -> None:
    # Like tcpdump: a record longer than the header's snaplen is fine while it is plausible.
    data, _ = pcap_file([(T0, 0, b"x" * 1000, 1000)], snaplen=64)
    assert [f.caplen for f in read_all(write(tmp_path, "big.pcap", data))] == [1000]


def test_pcap_linktype_field_upper_bits(tmp_path: Path) -> None:
    # F bit (26) set, FCS length 2 x 16-bit words in bits 28-31: link type is the low 16 bits.
    field = (2 << 28) | (1 << 26) | 1
    data, _ = pcap_file([(T0, 0, b"y" * 20, 20)], linktype=field)
    with open_capture(write(tmp_path, "fcs.pcap", data)) as r:
        assert (r.interfaces[0].linktype, r.interfaces[0].fcs_len) == (1, 4)
        assert [f.linktype for f in frames_of(r)] == [1]


def test_pcap_kuznetzov_variant(tmp_path: Path) -> None:
    data, _ = pcap_file(
        [(T0, 1, b"k" * 30, 30), (T0, 2, b"l" * 31, 40)], magic=0xA1B2CD34, extra=b"\x07" * 8
    )
    frames = read_all(write(tmp_path, "kuz.pcap", data))
    assert [(f.ts_ns, f.caplen, f.wirelen, f.data) for f in frames] == [
        (T0 * NS + 1000, 30, 30, b"k" * 30),
        (T0 * NS + 2000, 31, 40, b"l" * 31),
    ]


def test_pcap_header_only_is_an_empty_capture(tmp_path: Path) -> None:
    data, _ = pcap_file([])
    with open_capture(write(tmp_path, "empty.pcap", data)) as r:
        assert list(r) == []
        assert r.frames_read == 0


def test_pcap_unsupported_version(tmp_path: Path) -> None:
    data, _ = pcap_file([], version=(3, 0))
    path = write(tmp_path, "v3.pcap", data)
    with pytest.raises(CaptureError, match=r"^.*v3\.pcap: unsupported pcap version 3\.0$"):
        open_capture(path)


def test_file_shorter_than_a_header(tmp_path: Path) -> None:
    data, _ = pcap_file([])
    path = write(tmp_path, "short.pcap", data[:10])
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == f"{path}: cut off inside the pcap file header (10 of 24 bytes)"


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "zero.pcap", b"")
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == f"{path}: empty file, not a pcap or pcapng file"


def test_not_a_capture(tmp_path: Path) -> None:
    path = write(tmp_path, "page.pcap", b"<html><body>404</body></html>\n")
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == f"{path}: not a pcap or pcapng file (starts with 3c 68 74 6d)"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"nope\.pcap: cannot open: No such file"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path)


def test_zstd_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pcap.zst", b"\x28\xb5\x2f\xfd" + bytes(40))
    with pytest.raises(CaptureError, match=r"zstd-compressed; decompress it first"):
        open_capture(path)


def test_pcap_cut_inside_a_record_yields_the_frames_before(tmp_path: Path) -> None:
    data, offsets = small_pcap()
    for cut, in_record in ((offsets[3] + 16 + 5, 4), (offsets[5] + 9, 6)):
        path = write(tmp_path, "cut.pcap", data[:cut])
        frames, error = read_until_error(path)
        assert [f.frame for f in frames] == list(range(1, in_record))
        assert error == (
            f"{path}: cut off inside record {in_record} at byte {offsets[in_record - 1]} "
            f"({in_record - 1} packets read)"
        )


def test_pcap_corrupt_caplen_is_an_error_not_a_huge_read(tmp_path: Path) -> None:
    data, offsets = small_pcap()
    broken = bytearray(data)
    struct.pack_into("<I", broken, offsets[1] + 8, 0xFFFFFFF0)
    path = write(tmp_path, "bad.pcap", bytes(broken))
    frames, error = read_until_error(path)
    assert [f.frame for f in frames] == [1]
    assert error == (
        f"{path}: corrupt record 2 at byte {offsets[1]}: captured length 4294967280 is over "
        f"the limit of 262144 bytes (1 packet read)"
    )


def test_plausible_but_false_length_reads_only_what_the_file_has(tmp_path: Path) -> None:
    # snaplen 0xffffffff lets a 200 MB caplen pass the plausibility check; the file ends long
    # before, and the reader must find that out without allocating 200 MB.
    data, offsets = pcap_file([(T0, 0, b"z" * 100, 100)] * 3, snaplen=0xFFFFFFFF)
    broken = bytearray(data)
    struct.pack_into("<I", broken, offsets[2] + 8, 200 << 20)
    path = write(tmp_path, "liar.pcap", bytes(broken))
    tracemalloc.start()
    try:
        frames, error = read_until_error(path, chunk_bytes=4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(frames) == 2
    assert error == f"{path}: cut off inside record 3 at byte {offsets[2]} (2 packets read)"
    assert peak < 1 << 20


@pytest.mark.parametrize("chunk", [64, 100, 333, 4096])
def test_chunk_boundaries_carry_records_over(tmp_path: Path, chunk: int) -> None:
    rng = random.Random(7)
    records = [
        (T0 + i, i, bytes(rng.randrange(256) for _ in range(n)), n + 3)
        for i, n in enumerate(rng.randrange(0, 150) for _ in range(300))
    ]
    data, _ = pcap_file(records, order=">", ns=True)
    path = write(tmp_path, "many.pcap", data)
    expected = [
        Frame(i + 1, (T0 + i) * NS + i, len(d), len(d) + 3, 1, 0, d)
        for i, (_, _, d, _) in enumerate(records)
    ]
    with open_capture(path, chunk_bytes=chunk) as r:
        batches = list(r)
    assert len(batches) > 1
    assert frames_of(batches) == expected
    for b in batches:
        # Frames sit in the chunk where the file put them: header, frame, header, frame...
        assert np.array_equal(np.diff(b.offset), b.caplen[:-1].astype(np.int64) + 16)


def test_progress_and_early_close(tmp_path: Path) -> None:
    records = [(T0, i, bytes(100), 100) for i in range(100)]
    data, _ = pcap_file(records)
    path = write(tmp_path, "p.pcap", data)
    seen = []
    with open_capture(path, chunk_bytes=1000) as r:
        assert r.total_bytes == len(data)
        for batch in r:
            seen.append((r.frames_read, r.bytes_read))
            assert batch.frame[-1] == r.frames_read
    counts, positions = zip(*seen, strict=True)
    assert list(counts) == sorted(counts) and counts[-1] == 100
    assert list(positions) == sorted(positions) and positions[-1] == len(data)
    r = open_capture(path, chunk_bytes=1000)
    next(iter(r))
    r.close()
    assert list(r) == []


def test_record_larger_than_the_chunk(tmp_path: Path) -> None:
    big = bytes(range(256)) * 40
    data, _ = pcap_file([(T0, 1, b"s" * 10, 10), (T0, 2, big, 70000), (T0, 3, b"t" * 3, 3)])
    frames = read_all(write(tmp_path, "big.pcap", data), chunk_bytes=64)
    assert [(f.frame, f.caplen, f.wirelen) for f in frames] == [
        (1, 10, 10),
        (2, 10240, 70000),
        (3, 3, 3),
    ]
    assert frames[1].data == big


# -- pcapng --------------------------------------------------------------------------------------


def test_pcapng_sections_interfaces_and_block_types(tmp_path: Path) -> None:
    path = write(tmp_path, "multi.pcapng", COMPLEX)
    with open_capture(path) as r:
        assert r.format == "pcapng"
        # Known at open, before the first batch (the first section's interfaces).
        assert [(i.id, i.name, i.linktype) for i in r.interfaces] == [
            (0, "eth0", 1),
            (1, "wlan0", 101),
        ]
        frames = frames_of(r)
        assert [
            (i.id, i.name, i.linktype, i.snaplen, i.ticks_per_second, i.tsoffset_s, i.section)
            for i in r.interfaces
        ] == [
            (0, "eth0", 1, 0, 10**6, 0, 0),
            (1, "wlan0", 101, 65535, 10**9, 0, 0),
            (2, "any", 113, 64, 2**20, 10, 1),
        ]
    assert frames == COMPLEX_FRAMES


def random_pcapng(seed: int) -> tuple[bytes, list[Frame]]:
    """Sections of random byte order with random mixes of every block type, and the frames a
    plain per-block model expects from them."""
    rng = random.Random(seed)
    out = b""
    frames: list[Frame] = []
    interfaces: list[tuple[int, int]] = []  # (linktype, ticks per second), numbered globally
    for _ in range(rng.randrange(1, 4)):
        o = rng.choice([L, B])
        out += shb(o)
        base, count, last_ts = len(interfaces), 0, 0
        snaplens: list[int] = []
        for _ in range(rng.randrange(0, 40)):
            kind = rng.choice(["epb", "epb", "epb", "pb", "spb", "isb", "custom", "idb"])
            if count == 0 or kind == "idb":
                lt, snap = rng.choice([1, 101, 113, 228]), rng.choice([0, 40, 65535])
                resol = rng.choice([6, 9, 0x80 | 10])
                out += idb(o, lt, snap, opt(o, 9, bytes([resol])))
                snaplens.append(snap)
                interfaces.append((lt, 1 << (resol & 0x7F) if resol & 0x80 else 10**resol))
                count += 1
                continue
            data = rng.randbytes(rng.randrange(0, 90))
            if kind in ("epb", "pb"):
                i = rng.randrange(count)
                lt, tps = interfaces[base + i]
                ticks = rng.randrange(tps << 32)
                last_ts = ticks * NS // tps
                wire = len(data) + rng.randrange(3)
                if kind == "epb":
                    out += epb(o, i, ticks, data, wire)
                else:
                    out += pb(o, i, rng.randrange(9), ticks, data, wirelen=wire)
                frames.append(Frame(len(frames) + 1, last_ts, len(data), wire, lt, base + i, data))
            elif kind == "spb":
                snap = snaplens[0] or 1 << 32
                cap = min(len(data), snap)
                out += spb(o, len(data), data)
                lt = interfaces[base][0]
                frames.append(Frame(len(frames) + 1, last_ts, cap, len(data), lt, base, data[:cap]))
            elif kind == "isb":
                out += block(o, 5, struct.pack(o + "IIIq", 0, 0, 0, 0))
            else:
                out += block(o, 0xBAD, struct.pack(o + "I", 1) + data)
    return out, frames


@pytest.mark.parametrize("seed", range(12))
def test_pcapng_random_block_mixes(tmp_path: Path, seed: int) -> None:
    data, expected = random_pcapng(seed)
    path = write(tmp_path, "mix.pcapng", data)
    for chunk in (64, 200, 8 << 20):
        assert read_all(path, chunk_bytes=chunk) == expected


@pytest.mark.parametrize("chunk", [64, 72, 100, 256])
def test_pcapng_chunk_boundaries(tmp_path: Path, chunk: int) -> None:
    assert read_all(write(tmp_path, "multi.pcapng", COMPLEX), chunk_bytes=chunk) == COMPLEX_FRAMES


def test_pcapng_block_larger_than_the_chunk(tmp_path: Path) -> None:
    big = bytes(range(256)) * 30
    data = shb(L) + idb(L, 1, 0) + epb(L, 0, 5, b"a") + epb(L, 0, 6, big) + epb(L, 0, 7, b"b")
    frames = read_all(write(tmp_path, "big.pcapng", data), chunk_bytes=64)
    assert [(f.ts_ns, f.caplen) for f in frames] == [(5000, 1), (6000, 7680), (7000, 1)]
    assert frames[1].data == big


@pytest.mark.parametrize(
    ("tsresol", "ticks", "expected_ns"),
    [
        (6, T0 * 10**6 + 1, T0 * NS + 1000),
        (9, T0 * NS + 1, T0 * NS + 1),
        (3, T0 * 1000 + 7, T0 * NS + 7_000_000),
        (12, 10**15 + 123_456_789_999, 1000 * NS + 123_456_789),  # floored
        (0x80 | 20, (T0 << 20) + (1 << 19), T0 * NS + NS // 2),
        (0x80 | 30, (T0 << 30) + 1, T0 * NS + 0),  # 0.93 ns, floored
        (0x80 | 0, T0, T0 * NS),
    ],
)
def test_pcapng_timestamp_resolutions(
    tmp_path: Path, tsresol: int, ticks: int, expected_ns: int
) -> None:
    data = shb(B) + idb(B, 1, 0, opt(B, 9, bytes([tsresol]))) + epb(B, 0, ticks, b"q")
    assert [f.ts_ns for f in read_all(write(tmp_path, "r.pcapng", data))] == [expected_ns]


def test_clock_matches_exact_integer_math() -> None:
    rng = random.Random(3)
    for tps in [10**6, 10**9, 10**3, 10**12, 10**18, 10**30, 2**20, 2**33, 2**50, 1, 3]:
        for offset_s in (0, 10, -5, 2**40):
            clock = Clock.of(tps, offset_s)
            ticks = [rng.randrange(1 << rng.randrange(1, 65)) for _ in range(200)] + [0, 2**64 - 1]
            got = clock.to_ns(np.array(ticks, dtype=np.uint64)).tolist()
            want = [max(min(t * NS // tps + offset_s * NS, 2**63 - 1), -(2**63)) for t in ticks]
            # Saturation may start up to one second early at the int64 edge (year 2262).
            for g, w in zip(got, want, strict=True):
                assert g == w or (g == 2**63 - 1 and w > 2**63 - 1 - NS * (1 + tps // NS)), (
                    tps,
                    offset_s,
                )


def test_pcapng_undefined_interface(tmp_path: Path) -> None:
    data = shb(L) + idb(L, 1, 0) + epb(L, 0, 1, b"ok") + epb(L, 3, 2, b"bad")
    path = write(tmp_path, "if.pcapng", data)
    frames, error = read_until_error(path)
    at = len(shb(L) + idb(L, 1, 0) + epb(L, 0, 1, b"ok"))
    assert len(frames) == 1
    assert error == (
        f"{path}: corrupt record 2 (enhanced packet block) at byte {at}: interface 3 is not "
        f"defined (the section has 1) (1 packet read)"
    )


def test_pcapng_trailer_mismatch_and_huge_length(tmp_path: Path) -> None:
    head = shb(L) + idb(L, 1, 0) + epb(L, 0, 1, b"ok")
    bad = bytearray(epb(L, 0, 2, b"data"))
    struct.pack_into("<I", bad, len(bad) - 4, 999)
    path = write(tmp_path, "t.pcapng", head + bytes(bad))
    frames, error = read_until_error(path)
    assert len(frames) == 1
    assert error == (
        f"{path}: corrupt record 2 (enhanced packet block) at byte {len(head)}: block length 36 "
        f"at the start, 999 at the end (1 packet read)"
    )
    huge = bytearray(epb(L, 0, 2, b"data"))
    struct.pack_into("<I", huge, 4, 0xFFFFFFF0)
    path = write(tmp_path, "h.pcapng", head + bytes(huge))
    frames, error = read_until_error(path)
    assert len(frames) == 1
    assert error == (
        f"{path}: corrupt record 2 (enhanced packet block) at byte {len(head)}: block length "
        f"4294967280 is over the limit (1 packet read)"
    )


def test_pcapng_cut_inside_a_block(tmp_path: Path) -> None:
    head = shb(L) + idb(L, 1, 0) + epb(L, 0, 1, b"ok") + epb(L, 0, 2, b"ok too")
    path = write(tmp_path, "cut.pcapng", head + epb(L, 0, 3, b"never")[:20])
    frames, error = read_until_error(path)
    assert [f.frame for f in frames] == [1, 2]
    assert error == (
        f"{path}: cut off inside record 3 (enhanced packet block) at byte {len(head)} "
        f"(2 packets read)"
    )
    path = write(tmp_path, "cut2.pcapng", head + idb(L, 1, 0)[:-1])
    assert read_until_error(path)[1] == (
        f"{path}: cut off inside interface description block at byte {len(head)} (2 packets read)"
    )


def test_pcapng_header_problems_are_raised_at_open(tmp_path: Path) -> None:
    path = write(tmp_path, "v2.pcapng", shb(L, major=2) + idb(L, 1, 0))
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == f"{path}: unsupported pcapng version 2.0 at byte 0"
    bad_bom = bytearray(shb(L))
    bad_bom[8:12] = b"abcd"
    path = write(tmp_path, "bom.pcapng", bytes(bad_bom))
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == (
        f"{path}: corrupt section header block at byte 0: byte-order magic 61 62 63 64"
    )


def test_pcapng_header_only_is_an_empty_capture(tmp_path: Path) -> None:
    with open_capture(write(tmp_path, "h.pcapng", shb(B) + idb(B, 228, 0))) as r:
        assert list(r) == []
        assert [(i.linktype, i.ticks_per_second) for i in r.interfaces] == [(228, 10**6)]


# -- compressed files ----------------------------------------------------------------------------


def test_gzip_of_both_formats_whatever_the_name(tmp_path: Path) -> None:
    data, _ = small_pcap()
    plain = read_all(write(tmp_path, "plain.pcap", data))
    path = write(tmp_path, "capture.pcapng", gzip.compress(data))
    with open_capture(path) as r:
        assert (r.format, r.compressed, r.compression) == ("pcap", True, "gzip")
        assert frames_of(r) == plain
        assert r.bytes_read == r.total_bytes == path.stat().st_size
    path = write(tmp_path, "notes.txt", gzip.compress(COMPLEX))
    with open_capture(path, chunk_bytes=64) as r:
        assert (r.format, r.compressed) == ("pcapng", True)
        assert frames_of(r) == COMPLEX_FRAMES


def test_xz_and_bzip2(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "a.xz", lzma.compress(COMPLEX))) == COMPLEX_FRAMES
    assert read_all(write(tmp_path, "a.bz2", bz2.compress(COMPLEX))) == COMPLEX_FRAMES


def test_gzip_cut_off_yields_the_frames_before(tmp_path: Path) -> None:
    rng = random.Random(5)
    records = [(T0, i, rng.randbytes(200), 200) for i in range(200)]
    data, _ = pcap_file(records)
    packed = gzip.compress(data)
    path = write(tmp_path, "cut.pcap.gz", packed[: len(packed) // 2])
    frames, error = read_until_error(path, chunk_bytes=4096)
    assert 0 < len(frames) < 200
    assert [f.data for f in frames] == [d for _, _, d, _ in records[: len(frames)]]
    assert error is not None
    assert error.startswith(f"{path}: gzip stream cut off after ")
    assert error.endswith(f" uncompressed bytes ({len(frames)} packets read)")


def test_not_a_capture_inside_gzip(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gz", gzip.compress(b"hello world"))
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert str(err.value) == (
        f"{path}: not a pcap or pcapng file (gzip-compressed, uncompressed data starts with "
        f"68 65 6c 6c)"
    )


# -- damaged input: only CaptureError, always terminating -----------------------------------------


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (POSIX only; elsewhere no limit)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"reader did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def survive(path: Path, chunk: int) -> tuple[int, str | None]:
    """Read a possibly damaged file; anything but CaptureError propagates and fails the test."""
    try:
        with open_capture(path, chunk_bytes=chunk) as r:
            n = 0
            for b in r:
                n += len(b)
                assert len(b.data) < 64 << 20
                assert (b.offset + b.caplen <= len(b.data)).all()
            return n, None
    except CaptureError as exc:
        assert "\n" not in str(exc)
        return -1, str(exc)


def test_every_prefix_of_a_pcap(tmp_path: Path) -> None:
    data, offsets = small_pcap()
    ends = [*offsets[1:], len(data)]
    path = tmp_path / "prefix.pcap"
    with time_limit(60):
        for cut in range(len(data) + 1):
            path.write_bytes(data[:cut])
            for chunk in (64, 8 << 20):
                complete = sum(1 for e in ends if e <= cut)
                if cut < 24:
                    assert survive(path, chunk)[0] == -1
                    continue
                frames, error = read_until_error(path, chunk)
                assert len(frames) == complete
                assert (error is None) == (cut == 24 or cut in ends)


def test_every_prefix_of_a_pcapng(tmp_path: Path) -> None:
    ends, packets, pos = [], [], 0
    for blk, is_packet in COMPLEX_BLOCKS:
        pos += len(blk)
        ends.append(pos)
        packets.append(is_packet)
    path = tmp_path / "prefix.pcapng"
    with time_limit(60):
        for cut in range(len(COMPLEX) + 1):
            path.write_bytes(COMPLEX[:cut])
            complete = sum(1 for e, p in zip(ends, packets, strict=True) if p and e <= cut)
            for chunk in (64, 8 << 20):
                if cut < ends[0]:
                    assert survive(path, chunk)[0] == -1
                    continue
                frames, error = read_until_error(path, chunk)
                assert frames == COMPLEX_FRAMES[:complete]
                assert (error is None) == (cut in ends)


def fuzz_cases(seed: int, count: int) -> Iterator[tuple[bytes, int]]:
    rng = random.Random(seed)
    pcap_le, _ = small_pcap()
    pcap_be, _ = pcap_file([(T0, i, bytes(30 + i), 40) for i in range(5)], order=">", ns=True)
    bases = [pcap_le, pcap_be, COMPLEX, gzip.compress(pcap_le), gzip.compress(COMPLEX)]
    chunks = (64, 100, 4096, 8 << 20)
    for _ in range(count):
        kind = rng.random()
        if kind < 0.15:  # random bytes, half of them behind a real magic
            body = rng.randbytes(rng.randrange(0, 400))
            lead = rng.choice([b"", pcap_le[:24], pcap_be[:24], COMPLEX[:28], b"\n\r\r\n"])
            data = lead + body
        else:  # a real file with a few bytes changed, and perhaps cut
            data = bytearray(rng.choice(bases))
            for _ in range(rng.randrange(1, 5)):
                i = rng.randrange(len(data))
                data[i] = rng.choice([0, 0xFF, rng.randrange(256), data[i] ^ 0x80])
            if rng.random() < 0.2:
                data = data[: rng.randrange(len(data) + 1)]
            data = bytes(data)
        yield data, rng.choice(chunks)


def test_random_damage_only_ever_raises_capture_error(tmp_path: Path) -> None:
    path = tmp_path / "fuzz.bin"
    outcomes = {"ok": 0, "error": 0}
    with time_limit(120):
        for data, chunk in fuzz_cases(seed=2024, count=2500):
            path.write_bytes(data)
            error = survive(path, chunk)[1]
            outcomes["error" if error else "ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["error"] > 100


def test_every_single_byte_corruption_of_a_small_pcapng(tmp_path: Path) -> None:
    data = shb(L) + idb(L, 1, 0, opt(L, 9, bytes([9]))) + epb(L, 0, 1, b"abc") + spb(L, 3, b"de")
    path = tmp_path / "c.pcapng"
    with time_limit(60):
        for i in range(len(data)):
            for value in (0x00, 0xFF, data[i] ^ 0x04):
                path.write_bytes(data[:i] + bytes([value]) + data[i + 1 :])
                survive(path, 64)


# -- writers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [True, False])
def test_pcap_writer_round_trip(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "w.pcap"
    ts = [T0 * NS + 123_456_789, (T0 + 5) * NS, T0 * NS + 1]
    with PcapWriter(path, 113, snaplen=100, nanosecond=nanosecond) as w:
        w.write(ts[0], b"a" * 60)
        w.write(ts[1], b"b" * 150)  # cut to the snaplen
        w.write(ts[2], bytearray(b"c" * 10), wirelen=1500)
    raw = path.read_bytes()
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    assert raw[:24] == struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 100, 113)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    expect_ts = ts if nanosecond else [t // 1000 * 1000 for t in ts]
    assert read_all(path) == [
        Frame(1, expect_ts[0], 60, 60, 113, 0, b"a" * 60),
        Frame(2, expect_ts[1], 100, 150, 113, 0, b"b" * 100),
        Frame(3, expect_ts[2], 10, 1500, 113, 0, b"c" * 10),
    ]


def test_pcap_writer_batch_equals_frame_by_frame(tmp_path: Path) -> None:
    frames = [bytes([i]) * (i * 13 % 200) for i in range(50)]
    ts = [T0 * NS + i * 1_000_123 for i in range(50)]
    batch = FrameBatch.from_frames(frames, ts, linktype=1, wirelen=[len(f) + 4 for f in frames])
    with PcapWriter(tmp_path / "a.pcap", 1, snaplen=150) as a:
        a.write_batch(batch)
    with PcapWriter(tmp_path / "b.pcap", 1, snaplen=150) as b:
        for f, t in zip(frames, ts, strict=True):
            b.write(t, f, len(f) + 4)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    assert a.frames_written == 50


def test_pcapng_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    with PcapngWriter(path, 1, name="eth0") as w:
        assert w.add_interface(113, name="any", snaplen=64) == 1
        w.write(T0 * NS + 1, b"x" * 70)
        w.write(T0 * NS + 2, b"y" * 70, interface=1)
        w.write(T0 * NS + 3, b"z" * 3, wirelen=9)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_capture(path) as r:
        frames = frames_of(r)
        assert [
            (i.id, i.name, i.linktype, i.snaplen, i.ticks_per_second) for i in r.interfaces
        ] == [
            (0, "eth0", 1, 262144, 10**9),
            (1, "any", 113, 64, 10**9),
        ]
    assert frames == [
        Frame(1, T0 * NS + 1, 70, 70, 1, 0, b"x" * 70),
        Frame(2, T0 * NS + 2, 64, 70, 113, 1, b"y" * 64),
        Frame(3, T0 * NS + 3, 3, 9, 1, 0, b"z" * 3),
    ]


def test_pcapng_writer_batch_equals_frame_by_frame(tmp_path: Path) -> None:
    frames = [bytes([i]) * (i * 7 % 90) for i in range(40)]
    ts = [T0 * NS + i * 999 for i in range(40)]
    ifs = [i % 2 for i in range(40)]
    lts = [1 if i == 0 else 228 for i in ifs]
    batch = FrameBatch.from_frames(frames, ts, linktype=lts, interface=ifs)
    outputs = []
    for name, by_batch in (("a.pcapng", True), ("b.pcapng", False)):
        with PcapngWriter(tmp_path / name, 1) as w:
            w.add_interface(228, snaplen=50)
            if by_batch:
                w.write_batch(batch)
            else:
                for f, t, i in zip(frames, ts, ifs, strict=True):
                    w.write(t, f, interface=i)
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    back = read_all(tmp_path / "a.pcapng")
    assert [(f.interface, f.linktype, f.ts_ns, f.caplen, f.wirelen) for f in back] == [
        (i, lt, t, min(len(f), 50) if i else len(f), len(f))
        for f, t, i, lt in zip(frames, ts, ifs, lts, strict=True)
    ]


def test_writer_tightens_mode_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    path.write_bytes(b"old")
    path.chmod(0o644)
    PcapWriter(path, 1).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 24


def test_writer_to_a_file_object() -> None:
    out = io.BytesIO()
    with PcapngWriter(out, 1) as w:
        w.write(5, b"abc")
    assert out.getvalue()[:4] == b"\x0a\x0d\x0d\x0a"


def test_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "a.pcap", 1) as w:
        with pytest.raises(ValueError):
            w.write(-1, b"x")
        with pytest.raises(ValueError):
            w.write(1 << 62, b"x")
        with pytest.raises(ValueError):
            w.write_batch(FrameBatch.from_frames([b"x"], [0], linktype=113))
    with pytest.raises(ValueError):
        w.write(0, b"x")
    with PcapngWriter(tmp_path / "a.pcapng", 1) as g, pytest.raises(ValueError):
        g.write(0, b"x", interface=1)


def test_flushed_records_are_readable_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "live.pcap"
    w = PcapWriter(path, 1, buffer_bytes=1 << 20)
    w.write(T0 * NS, b"a" * 50)
    assert read_all(path) == []  # still in the writer's buffer: the file is a valid empty capture
    w.flush()
    w.write(T0 * NS + 1, b"b" * 50)
    assert [f.data for f in read_all(path)] == [b"a" * 50]
    w.close()
    assert len(read_all(path)) == 2


def test_killed_writer_leaves_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "killed.pcapng"
    script = textwrap.dedent(
        f"""
        import os, signal
        from portlens.sources import PcapngWriter
        w = PcapngWriter({str(path)!r}, 1, buffer_bytes=1000)
        for i in range(500):
            w.write(i, bytes(77))
        w.flush()
        w.write(999, bytes(77))  # buffered, lost with the process
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    frames, error = read_until_error(path)
    assert error is None
    assert len(frames) == 500


# -- public captures against tshark --------------------------------------------------------------


def corpus_dir() -> Path | None:
    env = os.environ.get("PORTLENS_CORPUS")
    path = Path(env) if env else REPO.parent / "shared" / "captures" / "public"
    return path if path.is_dir() else None


def corpus_params() -> list[object]:
    root = corpus_dir()
    captures = sorted(p for p in root.iterdir() if p.suffix in (".pcap", ".pcapng")) if root else []
    if not captures:
        reason = (
            "public captures not found: set PORTLENS_CORPUS or provide ../shared/captures/public"
        )
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.stem, marks=pytest.mark.corpus) for p in captures]


def epoch_ns(text: str) -> int:
    """'1362692526.869344000' -> 1362692526869344000, exactly."""
    seconds, _, frac = text.partition(".")
    return int(seconds) * NS + int((frac + "000000000")[:9])


def tshark_frames(capture: Path) -> list[tuple[int, int, int, int]]:
    tsv = capture.with_name(capture.name.rsplit(".", 1)[0] + ".tshark-packets.tsv")
    if not tsv.exists():
        pytest.skip(f"no tshark oracle {tsv.name}")
    lines = tsv.read_text().splitlines()
    cols = lines[0].split("\t")
    at = {name: cols.index(name) for name in ("frame", "ts_epoch", "frame_len", "cap_len")}
    rows = []
    for line in lines[1:]:
        f = line.split("\t")
        rows.append(
            (
                int(f[at["frame"]]),
                epoch_ns(f[at["ts_epoch"]]),
                int(f[at["frame_len"]]),
                int(f[at["cap_len"]]),
            )
        )
    return rows


@pytest.mark.parametrize("capture", corpus_params())
def test_public_captures_match_tshark(capture: Path) -> None:
    expected = tshark_frames(capture)
    for chunk in (8 << 20, 256):
        frames = read_all(capture, chunk_bytes=chunk)
        assert [(f.frame, f.ts_ns, f.wirelen, f.caplen) for f in frames] == expected
    assert len(frames) == len(expected) > 0
    assert frames[0].ts_ns == expected[0][1]
    assert frames[-1].ts_ns == expected[-1][1]
    assert sum(f.caplen for f in frames) == sum(e[3] for e in expected)
    assert sum(f.wirelen for f in frames) == sum(e[2] for e in expected)


def test_public_pcapng_interfaces() -> None:
    root = corpus_dir()
    if root is None or not (root / "zeek-pcapng-multi-interface.pcapng").exists():
        pytest.skip("public captures not found: set PORTLENS_CORPUS")
    with open_capture(root / "zeek-pcapng-multi-interface.pcapng") as r:
        frames = frames_of(r)
        assert [(i.id, i.name, i.linktype, i.ticks_per_second) for i in r.interfaces] == [
            (0, "eth0", 1, 10**9),
            (1, r"\Device\NPF_{5AE6EDB4-EFF9-46B3-A3C2-EE50C688A9E6}", 1, 10**6),
        ]
    assert [f.interface for f in frames] == [0, 0, 1, 1, 1, 1]


def test_public_capture_rewritten_reads_the_same(tmp_path: Path) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip("public captures not found: set PORTLENS_CORPUS")
    source = root / "zeek-tcp-retransmit-fast009.pcap"  # has snaplen-cut frames
    with open_capture(source) as r:
        batches = list(r)
    with PcapWriter(tmp_path / "copy.pcap", 1, snaplen=65535, nanosecond=False) as w:
        for b in batches:
            w.write_batch(b)
    with PcapngWriter(tmp_path / "copy.pcapng", 1) as g:
        for b in batches:
            g.write_batch(b)
    original = frames_of(batches)
    assert read_all(tmp_path / "copy.pcap") == original
    assert read_all(tmp_path / "copy.pcapng") == original
