"""The differential harness: what tests/test_rust_decoder.py feeds both decoders, and how it
reports where they differ.

The reference decoder (portlens.reference.decode) is checked rule by rule and against tshark
(tests/test_reference_decoder.py); the compiled one must give the very same rows — every column
of every frame, after fragment reassembly — on:

* every capture in ``captures/``, read with the project's own reader;
* every capture of the public corpus (skipped, with the reason, when it is absent);
* every frame the reference decoder's own tests build (harvested by running them);
* seeded fuzz: random corruptions of real frames through every supported link type (whole,
  cut by snaplen, cut short, or with a wire length below the captured one), every prefix of a
  few frames, random bytes, and packets whose deeper headers (TCP options, ICMP quotes, UDP
  tunnels) are built partly at random.

A failure lists the differences grouped by column, with counts, and for a few frames of each
column both values, the frame's link type and lengths, and its bytes.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portlens.reference.decode import decode_reference
from portlens.sources import linktypes as lt
from portlens.sources.files import open_capture
from portlens.sources.frames import FrameBatch
from tests.corpus import corpus_captures

REPO = Path(__file__).resolve().parent.parent
OWN_CAPTURES = sorted(p for p in (REPO / "captures").iterdir()
                      if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap"))
ALL_LINKTYPES = sorted(lt.SUPPORTED | {147})
EXAMPLES_PER_COLUMN = 4


# --- comparing --------------------------------------------------------------------------------


@dataclass
class Frame:
    """One frame as fed to both decoders."""

    data: bytes
    linktype: int
    wirelen: int


@dataclass
class Comparison:
    """The differences found in one source, by column: a readable line per differing frame."""

    frames: int = 0
    by_column: dict[str, list[str]] = field(default_factory=dict)

    def add(self, column: str, example: str) -> None:
        self.by_column.setdefault(column, []).append(example)

    def report(self) -> str:
        out = [f"{sum(len(v) for v in self.by_column.values())} differing (frame, column) "
               f"pairs in {self.frames} frames"]
        for column, examples in sorted(self.by_column.items(), key=lambda kv: -len(kv[1])):
            out.append(f"== {column}: {len(examples)} frames differ")
            out.extend("   " + e for e in examples[:EXAMPLES_PER_COLUMN])
        return "\n".join(out)

    @property
    def equal(self) -> bool:
        return not self.by_column


def _value(column: np.ndarray[Any, Any], i: int) -> Any:
    v = column[i]
    if isinstance(v, np.ndarray):
        values = v.tolist()
        while values and values[-1] == 0:  # trailing zero fill of 2-D columns says nothing
            values.pop()
        return values
    return v.item()


def _describe(frames: FrameBatch, i: int, label: str) -> str:
    data = frames.data[frames.offset[i] : frames.offset[i] + frames.caplen[i]].tobytes()
    return (f"{label} frame {int(frames.frame[i])} linktype {int(frames.linktype[i])} "
            f"caplen {int(frames.caplen[i])} wirelen {int(frames.wirelen[i])} "
            f"bytes {data[:160].hex()}{'...' if len(data) > 160 else ''}")


# --- real captures --------------------------------------------------------------------------------


# --- the reference decoder's own test frames ------------------------------------------------------


def _parametrizations(fn: Callable[..., Any]) -> list[dict[str, Any]]:
    """Every combination of a test function's @pytest.mark.parametrize arguments."""
    axes: list[list[dict[str, Any]]] = []
    for mark in getattr(fn, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        axis = []
        for value in values:
            value = getattr(value, "values", value)  # pytest.param(...)
            if len(names) == 1 and not (isinstance(value, tuple) and len(value) == 1):
                value = (value,)
            axis.append(dict(zip(names, value, strict=True)))
        axes.append(axis)
    return [dict(kv for part in combo for kv in part.items())
            for combo in itertools.product(*axes)]


def harvest_reference_test_frames() -> list[Frame]:
    """Run the reference decoder's tests, recording every batch they decode."""
    ref_tests: Any = importlib.import_module("tests.test_reference_decoder")
    seen: list[FrameBatch] = []

    def recording(frames: FrameBatch) -> Any:
        seen.append(frames)
        return decode_reference(frames)

    original = ref_tests.decode_reference
    ref_tests.decode_reference = recording
    try:
        for name, fn in vars(ref_tests).items():
            if not name.startswith("test_") or not callable(fn) or hasattr(fn, "hypothesis"):
                continue
            params = set(inspect.signature(fn).parameters)
            for kwargs in _parametrizations(fn):
                if set(kwargs) != params:
                    continue  # needs a fixture (the corpus test): not a frame builder
                # Its frames are recorded whatever it asserts: judging them is that module's job.
                with contextlib.suppress(AssertionError):
                    fn(**kwargs)
    finally:
        ref_tests.decode_reference = original
    out = [Frame(batch.frame_bytes(i), int(batch.linktype[i]), int(batch.wirelen[i]))
           for batch in seen for i in range(len(batch))]
    # The bases of its mutation test, which hypothesis drives (not run here).
    out += [Frame(base, lt.ETHERNET, len(base)) for base in ref_tests.MUTATION_BASES]
    return out


_HARVEST: list[list[Frame]] = []


def reference_test_frames() -> list[Frame]:
    if not _HARVEST:
        _HARVEST.append(harvest_reference_test_frames())
    return _HARVEST[0]


# --- fuzz ---------------------------------------------------------------------------------------


def _capture_frames(paths: list[Path]) -> Iterator[Frame]:
    for path in paths:
        with open_capture(path) as reader:
            for b in reader:
                for i in range(len(b)):
                    yield Frame(b.frame_bytes(i), int(b.linktype[i]), int(b.wirelen[i]))


def ip_packets() -> list[bytes]:
    """IP packets (from the network header on) of the real and crafted frames, deduplicated."""
    found: dict[bytes, None] = {}
    sources = list(_capture_frames(OWN_CAPTURES + corpus_captures())) + reference_test_frames()
    for f in sources:
        if f.wirelen != len(f.data):
            continue
        if f.linktype == lt.ETHERNET and len(f.data) > 34 and f.data[12:14] in (
                b"\x08\x00", b"\x86\xdd"):
            ip = f.data[14:]
        elif f.linktype in (lt.RAW, lt.RAW_12, lt.RAW_14, lt.IPV4, lt.IPV6):
            ip = f.data
        else:
            continue
        if ip and ip[0] >> 4 in (4, 6):
            found[ip] = None
    return list(found)


def relink(ip: bytes, linktype: int, rng: np.random.Generator) -> bytes:
    """The IP packet framed for a link type."""
    v6 = ip[0] >> 4 == 6
    ethertype = b"\x86\xdd" if v6 else b"\x08\x00"
    if linktype == lt.ETHERNET:
        tags = b"\x81\x00\x00\x07" * int(rng.integers(0, 3) == 0)
        return b"\x02" * 6 + b"\x04" * 6 + tags + ethertype + ip
    if linktype in (lt.NULL, lt.LOOP):
        family = int(rng.choice([10, 24, 28, 30])) if v6 else 2
        big = linktype == lt.LOOP or bool(rng.integers(0, 2))
        return family.to_bytes(4, "big" if big else "little") + ip
    if linktype == lt.LINUX_SLL:
        return b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + ethertype + ip
    if linktype == lt.LINUX_SLL2:
        # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address
        return ethertype + bytes(2) + b"\x00\x00\x00\x02\x00\x01\x00\x06" + b"\x02" * 8 + ip
    if linktype in (lt.PPP, lt.PPP_SERIAL):
        proto = b"\x00\x57" if v6 else b"\x00\x21"
        return (b"\xff\x03" if rng.integers(0, 2) else b"") + proto + ip
    return ip  # raw links; on LINKTYPE_IPV4 / IPV6 the other version is a mismatch to decode


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    if not b:
        return bytes(b)
    for _ in range(int(rng.integers(1, 7))):
        # headers live at the front: corrupt there most of the time
        hi = len(b) if rng.random() < 0.2 else min(len(b), 96)
        pos = int(rng.integers(0, hi))
        r = rng.random()
        if r < 0.4:
            b[pos] = int(rng.integers(0, 256))
        elif r < 0.6:
            b[pos] ^= 1 << int(rng.integers(0, 8))
        elif r < 0.8:
            b[pos] = (b[pos] + int(rng.choice([-1, 1]))) & 0xFF
        else:
            b[pos] = int(rng.choice([0, 0xFF, 0x45, 0x60, 0x05, 0x50]))
    return bytes(b)


def _cut(data: bytes, rng: np.random.Generator) -> Frame:
    """Sometimes cut by snaplen (wirelen kept), sometimes cut short for good, mostly whole."""
    r = rng.random()
    if r < 0.25 and data:
        return Frame(data[: int(rng.integers(0, len(data)))], 0, len(data))
    if r < 0.35 and data:
        short = data[: int(rng.integers(0, len(data)))]
        return Frame(short, 0, len(short))
    if r < 0.45:
        return Frame(data, 0, len(data) + int(rng.integers(1, 1500)))
    if r < 0.5:  # a record claiming fewer bytes on the wire than it holds
        return Frame(data, 0, int(rng.integers(0, len(data) + 1)))
    return Frame(data, 0, len(data))


def _ipv4(proto: int, payload: bytes, src: bytes = b"\x0a\0\0\x01", dst: bytes = b"\x0a\0\0\x02",
          frag: int = 0) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto,
                                0, src, dst))
    total = sum(struct.unpack("!10H", hdr))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", hdr, 10, 0xFFFF - total)
    return bytes(hdr) + payload


def _ipv6(nh: int, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + b"\x20\x01\x0d\xb8" + bytes(11)
            + b"\x01" + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02" + payload)


def _structured(rng: np.random.Generator) -> bytes:
    """An IP packet whose deeper headers are partly random: TCP options, ICMP quotes, tunnels."""
    def rand(n: int) -> bytes:
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    pick = int(rng.integers(0, 4))
    if pick == 0:  # TCP with an option area of random-ish kinds and lengths
        n = int(rng.integers(0, 11)) * 4
        opts = bytes(rng.choice([0, 0, 1, 1, 2, 3, 4, 5, 8, 10, 30], size=n).astype(np.uint8))
        offset = (20 + n) // 4 if rng.random() < 0.9 else int(rng.integers(0, 16))
        seg = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset << 4, 2, 1000, 0, 0) + opts + rand(
            int(rng.integers(0, 8)))
        return _ipv4(6, seg) if rng.random() < 0.5 else _ipv6(6, seg)
    if pick == 1:  # ICMP errors quoting IPv4 / IPv6 (+ extension headers) of any shape
        inner_ports = struct.pack("!HHHH", 5353, 9999, 8, 0)
        if rng.random() < 0.5:
            quote = _ipv4(int(rng.choice([6, 17, 1, 47])), inner_ports,
                          frag=int(rng.choice([0, 0, 0x2000, 4])))
            if rng.random() < 0.2:
                quote = bytes([int(rng.choice([0x44, 0x46, 0x65]))]) + quote[1:]
            body = bytes([int(rng.choice([3, 11, 0, 12])), 1, 0, 0, 0, 0, 0, 0])
            quote = quote[: int(rng.integers(0, len(quote) + 1))]
            return _ipv4(1, body + quote)
        chain, nh = b"", int(rng.choice([6, 17, 58]))
        for _ in range(int(rng.integers(0, 10))):
            kind = int(rng.choice([0, 60, 43, 44, 51]))
            ext = (bytes([nh, 0]) + bytes(2) + rand(4) if kind != 51
                   else bytes([nh, 1]) + bytes(6))
            chain, nh = ext + chain, kind
        quote = _ipv6(nh, chain + inner_ports)
        quote = quote[: int(rng.integers(0, len(quote) + 1))]
        body = bytes([int(rng.choice([1, 2, 3, 4, 128])), 0, 0, 0, 0, 0, 0, 0])
        return _ipv6(58, body + quote)
    # UDP tunnel ports with bodies that are partly right
    port = int(rng.choice([4789, 6081, 2152, 3544]))
    inner = _ipv4(17, struct.pack("!HHHH", 7, 8, 8, 0))
    if port == 4789:
        body = bytes([int(rng.choice([0, 8])), 0, 0, 0, 0, 0, 1, 0]) + (
            b"\x02" * 12 + b"\x08\x00" + inner)
    elif port == 6081:
        optlen = int(rng.integers(0, 4))
        ptype = (0x0800, 0x6558, 0x86DD)[int(rng.integers(0, 3))]
        body = struct.pack("!BBHI", optlen, 0, ptype, 0) + rand(4 * optlen) + inner
    elif port == 2152:
        flags = int(rng.choice([0x30, 0x32, 0x34, 0x20, 0x50]))
        body = bytes([flags, 0xFF]) + bytes(6) + (bytes(3) + bytes([0x85, 1]) + rand(3)
                                                  + b"\x00" if flags & 7 else b"") + inner
    else:
        v6 = _ipv6(17, struct.pack("!HHHH", 7, 8, 8, 0))
        prefixes = (b"", b"\x00\x00" + rand(6), b"\x00\x01\x01\x02" + rand(3) + bytes(9))
        body = prefixes[int(rng.integers(0, 3))] + v6
    if rng.random() < 0.5:
        body = body[: int(rng.integers(0, len(body) + 1))]
    sport = int(rng.choice([1, 3544]))
    udp = struct.pack("!HHHH", sport, port, 8 + len(body), 0) + body
    return _ipv4(17, udp)


