"""The fast columnar decoder agrees with the per-packet reference decoder on every column.

The reference decoder (decode/reference.py) is checked rule by rule and against tshark
(tests/test_reference_decoder.py); here the fast one (decode/fast.py) must give the very same
rows — every column of every frame, after fragment reassembly, and the same FragmentRecords —
on:

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
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.decode.fast import decode_fast
from portlens.decode.fragments import FragmentRecord, Reassembler
from portlens.decode.malformed import reason_label
from portlens.decode.packets import PacketBatch
from portlens.decode.reference import decode_reference
from portlens.sources import linktypes as lt
from portlens.sources.files import open_capture
from portlens.sources.frames import FrameBatch
from tests.corpus import corpus_captures, corpus_params

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


def compare_batch(frames: FrameBatch, label: str, result: Comparison,
                  fast_re: Reassembler, ref_re: Reassembler) -> None:
    """Decode one batch both ways (reassemblers carry state across batches) and compare."""
    fast, fast_records = decode_fast(frames)
    ref, ref_records = decode_reference(frames)
    result.frames += len(frames)
    _compare_records(frames, label, result, fast_records, ref_records)
    if fast_records:
        fast_re.apply(fast, fast_records)
    if ref_records:
        ref_re.apply(ref, ref_records)
    for name in PacketBatch.column_names():
        a, b = getattr(fast, name), getattr(ref, name)
        neq = a != b
        if neq.ndim > 1:
            neq = neq.any(axis=1)
        for row in np.flatnonzero(neq):
            i = int(row)
            extra = ""
            if name != "malformed":
                extra = (f" (malformed: fast {reason_label(int(fast.malformed[i]))}, "
                         f"ref {reason_label(int(ref.malformed[i]))})")
            result.add(name, f"fast {_value(a, i)!r} ref {_value(b, i)!r}{extra} | "
                             + _describe(frames, i, label))


def _compare_records(frames: FrameBatch, label: str, result: Comparison,
                     fast: list[FragmentRecord], ref: list[FragmentRecord]) -> None:
    fast_by_row = {r.row: r for r in fast}
    ref_by_row = {r.row: r for r in ref}
    for row in sorted(set(fast_by_row) | set(ref_by_row)):
        a, b = fast_by_row.get(row), ref_by_row.get(row)
        if a != b:
            result.add("<FragmentRecord>", f"fast {a} ref {b} | " + _describe(frames, row, label))


def compare_frames(frames: list[Frame], label: str, batch_size: int = 4096) -> Comparison:
    result = Comparison()
    fast_re, ref_re = Reassembler(), Reassembler()
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        batch = FrameBatch.from_frames(
            [f.data for f in chunk], [10**9 * (start + k) for k in range(len(chunk))],
            linktype=[f.linktype for f in chunk], wirelen=[f.wirelen for f in chunk],
            first_frame=start + 1)
        compare_batch(batch, label, result, fast_re, ref_re)
    return result


def compare_capture(path: Path) -> Comparison:
    result = Comparison()
    fast_re, ref_re = Reassembler(), Reassembler()
    with open_capture(path) as reader:
        for frames in reader:
            compare_batch(frames, path.name, result, fast_re, ref_re)
    return result


def assert_agree(result: Comparison) -> None:
    assert result.frames > 0
    assert result.equal, result.report()


# --- real captures --------------------------------------------------------------------------------


@pytest.mark.parametrize("capture", OWN_CAPTURES, ids=lambda p: p.name)
def test_own_captures_agree(capture: Path) -> None:
    assert_agree(compare_capture(capture))


@pytest.mark.corpus
@pytest.mark.parametrize("capture", corpus_params())
def test_corpus_captures_agree(capture: Path) -> None:
    assert_agree(compare_capture(capture))


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


def test_reference_test_frames_agree() -> None:
    frames = reference_test_frames()
    assert len(frames) > 100
    assert_agree(compare_frames(frames, "reference-test"))


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


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    return ip_packets()


@pytest.mark.parametrize("linktype", sorted(lt.SUPPORTED))
def test_fuzzed_corruptions_agree(linktype: int, packets: list[bytes]) -> None:
    rng = np.random.default_rng(1000 + linktype)
    frames = []
    for _ in range(600):
        ip = packets[int(rng.integers(0, len(packets)))]
        f = _cut(_mutate(relink(ip, linktype, rng), rng), rng)
        f.linktype = linktype
        frames.append(f)
    assert_agree(compare_frames(frames, f"corrupt/{lt.name(linktype)}"))


def test_fuzzed_prefixes_agree(packets: list[bytes]) -> None:
    """Every prefix of a few frames: as a frame cut short, and as one cut by snaplen."""
    rng = np.random.default_rng(5)
    frames = []
    linktypes = [lt.ETHERNET, lt.RAW, lt.LINUX_SLL2, lt.PPP, lt.NULL]
    for k, idx in enumerate(rng.choice(len(packets), size=min(30, len(packets)), replace=False)):
        linktype = linktypes[k % len(linktypes)]
        whole = relink(packets[int(idx)][:300], linktype, rng)
        for n in range(len(whole) + 1):
            frames.append(Frame(whole[:n], linktype, n))
            frames.append(Frame(whole[:n], linktype, len(whole)))
    assert_agree(compare_frames(frames, "prefix"))


def test_fuzzed_random_bytes_agree() -> None:
    rng = np.random.default_rng(17)
    frames = []
    for linktype in ALL_LINKTYPES:
        for _ in range(150):
            data = rng.integers(0, 256, int(rng.integers(0, 160)), dtype=np.uint8).tobytes()
            if rng.random() < 0.5 and data:  # make the first nibble plausible IP more often
                data = bytes([int(rng.choice([0x45, 0x46, 0x4F, 0x60]))]) + data[1:]
            extra = int(rng.integers(0, 100)) if rng.random() < 0.3 else 0
            frames.append(Frame(data, linktype, len(data) + extra))
    assert_agree(compare_frames(frames, "random"))


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


def test_fuzzed_structured_headers_agree() -> None:
    """Deeper headers built partly at random, through Ethernet, whole or cut by snaplen."""
    rng = np.random.default_rng(23)
    frames = []
    for _ in range(3000):
        ip = _structured(rng)
        data = b"\x02" * 6 + b"\x04" * 6 + (b"\x86\xdd" if ip[0] >> 4 == 6 else b"\x08\x00") + ip
        f = _cut(_mutate(data, rng) if rng.random() < 0.3 else data, rng)
        f.linktype = lt.ETHERNET
        frames.append(f)
    assert_agree(compare_frames(frames, "structured"))


def test_the_harness_sees_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is not vacuous: a column the fast decoder gets wrong is reported."""
    original = decode_fast

    def broken(frames: FrameBatch) -> tuple[PacketBatch, list[FragmentRecord]]:
        out, records = original(frames)
        out.ttl[:] = out.ttl + 1
        return out, records

    monkeypatch.setattr(sys.modules[__name__], "decode_fast", broken)
    result = compare_frames(reference_test_frames()[:50], "broken")
    assert "== ttl: 50 frames differ" in result.report()
