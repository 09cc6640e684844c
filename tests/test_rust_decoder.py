"""The compiled decoder (portlens._core) agrees with the per-packet reference decoder.

The reference decoder (portlens.reference.decode) is checked rule by rule and against tshark
(tests/test_reference_decoder.py); here the Rust one must give the very same rows — every
column of every frame, after fragment reassembly across batches — on:

* every capture in ``captures/`` (the crafted ones and the generated scenarios) and of the
  public corpus (skipped, with the reason, when it is absent);
* a slice of the benchmark generator's traffic (scripts/bench.py);
* every frame the reference decoder's own tests build;
* the seeded corruptions of tests/differential.py (every link type, prefixes, random bytes,
  partly random deeper headers);
* Hypothesis-generated stacks of the supported layers (links, VLAN/MPLS/PPPoE, IPv4 options,
  IPv6 extension headers, fragments in any order over several batches, GRE/VXLAN/Geneve/
  Teredo/GTP-U/IP-in-IP tunnels, TCP options, UDP, ICMP errors quoting packets), whole or
  then cut, cut short, bit-flipped or given another wire length.

Each source is compared twice: with checksums verified (every column equal), and without
(every column but ip_csum / l4_csum equal, and those CSUM_NONE). The number of frames compared
is printed at the end of the run (``-s`` not needed).
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlens.decode import Decoder, decode_capture
from portlens.decode import tunnels as tn
from portlens.decode.fields import CSUM_BAD, SUB_FRAME
from portlens.decode.malformed import reason_label
from portlens.decode.packets import PacketBatch
from portlens.reference.decode import decode_reference
from portlens.reference.fragments import Reassembler
from portlens.sources import linktypes as lt
from portlens.sources.files import open_capture
from portlens.sources.frames import FrameBatch
from tests import differential as fvr
from tests.corpus import corpus_params

if importlib.util.find_spec("portlens._core") is None:
    pytest.skip("portlens._core is not built (pip install . compiles it)",
                allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
CHECKSUM_COLUMNS = ("ip_csum", "l4_csum")
COMPARED: Counter[str] = Counter()
"""Frames compared per kind of source, printed at the end of the module."""


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None or not COMPARED:
        return
    parts = ", ".join(f"{k} {v:,}" for k, v in sorted(COMPARED.items()))
    with capture.global_and_fixture_disabled():
        print(f"\nrust vs reference: frames compared (each with checksums on and off): "
              f"{parts}; total {sum(COMPARED.values()):,}")


# --- comparing --------------------------------------------------------------------------------


class Pair:
    """A Rust and a reference decoder fed the same batches (checksums on and off)."""

    def __init__(self, **limits: int) -> None:
        self.rust = Decoder()
        self.rust_plain = Decoder(checksums=False)
        if limits:
            from portlens.decode.rust import RustDecoder

            self.rust.engine = RustDecoder(**limits)
            self.rust_plain.engine = RustDecoder(**limits)
        self.ref = Decoder(reference=True)

    def compare(self, frames: FrameBatch, label: str, result: fvr.Comparison) -> None:
        ref = self.ref.decode(frames)
        rust = self.rust.decode(frames)
        plain = self.rust_plain.decode(frames)
        if len(rust) != len(frames) or len(ref) != len(frames):
            frames, rust, ref, plain = self._align(frames, rust, ref, plain, label, result)
        keep = ~compiled_only_descent(rust, ref)
        if not keep.all():
            # Random bytes sometimes look like a Teredo or AYIYA packet on an arbitrary
            # port: the compiled decoder descends into them by content (as Zeek does), the
            # reference knows these tunnels by port only. Those rows are tshark's to judge
            # (tests/test_encap_tshark.py); every other row is still compared.
            COMPARED["compiled-only tunnel rows left out"] += int((~keep).sum())
            rows = np.flatnonzero(keep)
            frames, ref, rust, plain = (frames.take(rows), ref.take(rows), rust.take(rows),
                                        plain.take(rows))
        result.frames += len(frames)
        _diff(frames, label, result, rust, ref, "")
        _diff(frames, label, result, plain, ref, "checksums off: ", skip=CHECKSUM_COLUMNS)
        for name in CHECKSUM_COLUMNS:
            nonzero = np.flatnonzero(getattr(plain, name))
            for row in nonzero[: fvr.EXAMPLES_PER_COLUMN]:
                result.add(f"checksums off: {name}",
                           f"rust {int(getattr(plain, name)[row])} want 0 | "
                           + fvr._describe(frames, int(row), label))


    @staticmethod
    def _align(frames: FrameBatch, rust: PacketBatch, ref: PacketBatch, plain: PacketBatch,
               label: str, result: fvr.Comparison
               ) -> tuple[FrameBatch, PacketBatch, PacketBatch, PacketBatch]:
        """Rows side by side when frames give more than one (column sub): the frames whose
        row counts agree, each row with its frame. A frame with more rows in the compiled
        decoder only is a compiled-only descent (three tunnels deep through one the
        reference lacks): its own row is still compared."""
        fr_rust, fr_ref = rust.frame_index(), ref.frame_index()
        n = len(frames)
        same = (np.bincount(fr_rust, minlength=n) == np.bincount(fr_ref, minlength=n))
        if not same.all():
            own = rust.sub == SUB_FRAME
            deeper = compiled_only_descent(rust.take(own), ref.take(ref.sub == SUB_FRAME))
            for i in np.flatnonzero(~same & ~deeper):
                result.add("rows per frame", fvr._describe(frames, int(i), label))
            COMPARED["compiled-only carrier rows left out"] += int((~same).sum())
        keep_rust = same[fr_rust] | (rust.sub == SUB_FRAME)
        keep_ref = same[fr_ref] | (ref.sub == SUB_FRAME)
        rust, plain, ref = rust.take(keep_rust), plain.take(keep_rust), ref.take(keep_ref)
        return frames.take(fr_rust[keep_rust]), rust, ref, plain


REFERENCE_TUNNELS = {tn.TUNNEL_GRE, tn.TUNNEL_IPIP, tn.TUNNEL_6IN4, tn.TUNNEL_4IN6,
                     tn.TUNNEL_6IN6, tn.TUNNEL_VXLAN, tn.TUNNEL_GENEVE, tn.TUNNEL_TEREDO,
                     tn.TUNNEL_GTPU}


def compiled_only_descent(rust: PacketBatch, ref: PacketBatch) -> npt.NDArray[np.bool_]:
    """Rows where the compiled decoder went one tunnel deeper than the reference, through a
    tunnel the reference recognises only by port or not at all: the reference's layers are
    a strict prefix of the compiled decoder's, and the next layer is Teredo or GTP-U off its
    reference port, or a kind the reference lacks."""
    out = np.zeros(len(rust), dtype=bool)
    deeper = np.flatnonzero(rust.tunnel_depth > ref.tunnel_depth)
    for i in deeper:
        depth = int(ref.tunnel_depth[i])
        mask = (1 << (4 * depth)) - 1
        if (int(rust.tunnel[i]) & mask) != (int(ref.tunnel[i]) & mask):
            continue
        kind = (int(rust.tunnel[i]) >> (4 * depth)) & 0xF
        by_port = kind in (tn.TUNNEL_TEREDO, tn.TUNNEL_GTPU)
        out[i] = kind not in REFERENCE_TUNNELS or by_port
    return out


def _diff(frames: FrameBatch, label: str, result: fvr.Comparison, rust: PacketBatch,
          ref: PacketBatch, prefix: str, skip: tuple[str, ...] = ()) -> None:
    for name in PacketBatch.column_names():
        if name in skip:
            continue
        a, b = getattr(rust, name), getattr(ref, name)
        if a.dtype != b.dtype or a.shape != b.shape:
            result.add(prefix + name, f"rust {a.dtype}{a.shape} ref {b.dtype}{b.shape}")
            continue
        neq = a != b
        if neq.ndim > 1:
            neq = neq.any(axis=1)
        for row in np.flatnonzero(neq):
            i = int(row)
            extra = "" if name == "malformed" else (
                f" (malformed: rust {reason_label(int(rust.malformed[i]))}, "
                f"ref {reason_label(int(ref.malformed[i]))})")
            result.add(prefix + name, f"rust {fvr._value(a, i)!r} ref {fvr._value(b, i)!r}"
                                      f"{extra} | " + fvr._describe(frames, i, label))


def compare_frames(frames: list[fvr.Frame], label: str, batch_size: int = 4096,
                   pair: Pair | None = None) -> fvr.Comparison:
    result = fvr.Comparison()
    pair = pair or Pair()
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        batch = FrameBatch.from_frames(
            [f.data for f in chunk], [10**9 * (start + k) for k in range(len(chunk))],
            linktype=[f.linktype for f in chunk], wirelen=[f.wirelen for f in chunk],
            first_frame=start + 1)
        pair.compare(batch, label, result)
    return result


def compare_capture(path: Path, chunk_bytes: int = 8 << 20) -> fvr.Comparison:
    result = fvr.Comparison()
    pair = Pair()
    with open_capture(path, chunk_bytes=chunk_bytes) as reader:
        for frames in reader:
            pair.compare(frames, path.name, result)
    return result


def assert_agree(result: fvr.Comparison, kind: str) -> None:
    assert result.frames > 0
    assert result.equal, result.report()
    COMPARED[kind] += result.frames


# --- real and generated captures ----------------------------------------------------------------


ENCAP_REASON = ("layers the reference decoder lacks (captures/encap, scripts/make_encaps.py: "
                "802.11, radio headers, PBB, VN-Tag, FabricPath, ERSPAN, Aruba, GRE in UDP, AYIYA, "
                "tunnels by content or in fragments); their oracle is tshark: "
                "tests/test_encap_tshark.py")


ENCAP_FOR_REFERENCE = {"encap-nested3.pcap"}
"""captures/encap of tunnels the reference decodes too (GTP-U on 2152, Geneve, VXLAN, GRE),
three deep: the middle carriers' rows."""


@pytest.mark.parametrize("capture", [
    *fvr.OWN_CAPTURES,
    *(pytest.param(p, marks=pytest.mark.skip(reason=f"{p.name}: {ENCAP_REASON}"))
      for p in sorted((REPO / "captures" / "encap").glob("*.pcap"))
      if p.name not in ENCAP_FOR_REFERENCE),
    *(REPO / "captures" / "encap" / name for name in sorted(ENCAP_FOR_REFERENCE))],
    ids=lambda p: p.name)
def test_own_captures_agree(capture: Path) -> None:
    assert_agree(compare_capture(capture), "own captures")


def test_own_captures_agree_in_small_batches() -> None:
    """Batches of a few frames: fragments and their first fragment land in different batches."""
    result = fvr.Comparison()
    for capture in fvr.OWN_CAPTURES:
        pair = Pair()
        with open_capture(capture, chunk_bytes=300) as reader:
            for frames in reader:
                pair.compare(frames, capture.name, result)
    assert_agree(result, "own captures, small batches")


@pytest.mark.corpus
@pytest.mark.parametrize("capture", corpus_params())
def test_corpus_captures_agree(capture: Path) -> None:
    assert_agree(compare_capture(capture), "public corpus")


def test_benchmark_traffic_agrees(tmp_path: Path) -> None:
    """20 000 packets of the benchmark generator: the traffic mix the speed figures use."""
    out = tmp_path / "bench.pcap"
    subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "generate",
                    "--packets", "20000", "--out", str(out), "--seed", "3"],
                   check=True, capture_output=True, timeout=600)
    assert_agree(compare_capture(out), "benchmark generator")


# --- crafted frames -----------------------------------------------------------------------------


def test_reference_test_frames_agree() -> None:
    frames = fvr.reference_test_frames()
    assert len(frames) > 100
    assert_agree(compare_frames(frames, "reference-test"), "reference tests' frames")


COMPILED_ONLY_REASON = ("link type only the compiled decoder reads (the reference lacks it); "
                        "its oracle is tshark: tests/test_encap_tshark.py")


@pytest.mark.parametrize("linktype", [
    *sorted(lt.REFERENCE),
    *(pytest.param(t, marks=pytest.mark.skip(reason=f"{lt.name(t)}: {COMPILED_ONLY_REASON}"))
      for t in sorted(lt.COMPILED_ONLY))])
def test_fuzzed_corruptions_agree(linktype: int, packets: list[bytes]) -> None:
    rng = np.random.default_rng(2000 + linktype)
    frames = []
    for _ in range(600):
        ip = packets[int(rng.integers(0, len(packets)))]
        f = fvr._cut(fvr._mutate(fvr.relink(ip, linktype, rng), rng), rng)
        f.linktype = linktype
        frames.append(f)
    assert_agree(compare_frames(frames, f"corrupt/{lt.name(linktype)}"), "seeded fuzz")


def test_fuzzed_prefixes_agree(packets: list[bytes]) -> None:
    rng = np.random.default_rng(6)
    frames = []
    linktypes = [lt.ETHERNET, lt.RAW, lt.LINUX_SLL2, lt.PPP, lt.NULL, lt.LINUX_SLL]
    for k, idx in enumerate(rng.choice(len(packets), size=min(40, len(packets)),
                                       replace=False)):
        linktype = linktypes[k % len(linktypes)]
        whole = fvr.relink(packets[int(idx)][:300], linktype, rng)
        for n in range(len(whole) + 1):
            frames.append(fvr.Frame(whole[:n], linktype, n))
            frames.append(fvr.Frame(whole[:n], linktype, len(whole)))
    assert_agree(compare_frames(frames, "prefix"), "seeded fuzz")


def test_fuzzed_random_bytes_agree() -> None:
    rng = np.random.default_rng(18)
    frames = []
    # link types both decoders read, and two neither does (147, 0xFFFF); the compiled-only
    # ones (COMPILED_ONLY_REASON) are fuzzed by test_decode_robust and the cargo-fuzz target
    for linktype in [*sorted(lt.REFERENCE | {147}), 0xFFFF]:
        for _ in range(200):
            data = rng.integers(0, 256, int(rng.integers(0, 160)), dtype=np.uint8).tobytes()
            if rng.random() < 0.5 and data:
                data = bytes([int(rng.choice([0x45, 0x46, 0x4F, 0x60]))]) + data[1:]
            extra = int(rng.integers(0, 100)) if rng.random() < 0.3 else 0
            frames.append(fvr.Frame(data, linktype, len(data) + extra))
    assert_agree(compare_frames(frames, "random"), "seeded fuzz")


def test_fuzzed_structured_headers_agree() -> None:
    rng = np.random.default_rng(24)
    frames = []
    for _ in range(3000):
        ip = fvr._structured(rng)
        data = (b"\x02" * 6 + b"\x04" * 6 + (b"\x86\xdd" if ip[0] >> 4 == 6 else b"\x08\x00")
                + ip)
        f = fvr._cut(fvr._mutate(data, rng) if rng.random() < 0.3 else data, rng)
        f.linktype = lt.ETHERNET
        frames.append(f)
    assert_agree(compare_frames(frames, "structured"), "seeded fuzz")


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    return fvr.ip_packets()


def test_inconsistent_frame_columns_decode_as_empty_frames() -> None:
    """Offsets past the buffer (a caller's bug) read no byte outside it."""
    batch = FrameBatch.from_frames([b"\x45" + bytes(40)], [1], linktype=lt.RAW)
    bad = FrameBatch(data=batch.data, offset=np.array([10**12], dtype=np.int64),
                     caplen=batch.caplen, wirelen=batch.wirelen, ts_ns=batch.ts_ns,
                     linktype=batch.linktype, interface=batch.interface, frame=batch.frame)
    row = Decoder().decode(bad).row(0)
    assert (row["ip_version"], row["malformed"], row["caplen"]) == (0, 0, 41)
    short = FrameBatch(data=batch.data, offset=batch.offset, caplen=batch.caplen[:0],
                       wirelen=batch.wirelen, ts_ns=batch.ts_ns, linktype=batch.linktype,
                       interface=batch.interface, frame=batch.frame)
    with pytest.raises(ValueError, match="differ in length"):
        Decoder().decode(short)


def test_the_harness_sees_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is not vacuous: a column the Rust decoder gets wrong is reported."""
    from portlens.decode.rust import RustDecoder

    original = RustDecoder.decode

    def broken(self: RustDecoder, frames: FrameBatch, *, checksums: bool) -> PacketBatch:
        out = original(self, frames, checksums=checksums)
        out.ttl = out.ttl + 1
        out.l4_csum = out.l4_csum | 1
        return out

    monkeypatch.setattr(RustDecoder, "decode", broken)
    report = compare_frames(fvr.reference_test_frames()[:50], "broken").report()
    assert "== ttl: 50 frames differ" in report
    assert "== checksums off: ttl: 50 frames differ" in report
    assert "== checksums off: l4_csum" in report


# --- Hypothesis: random stacks of the supported layers --------------------------------------------


def _ones(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _fix_checksum(data: bytearray, at: int, covered: bytes, pseudo: bytes = b"") -> None:
    struct.pack_into("!H", data, at, 0)
    value = 0xFFFF - _ones(pseudo + covered[:at] + b"\0\0" + covered[at + 2 :])
    struct.pack_into("!H", data, at, value)


class Stack:
    """Builds one IP packet of random layers from a Hypothesis data source."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return int(self.draw(st.integers(min_value=lo, max_value=hi)))

    def pick(self, options: list[Any]) -> Any:
        return self.draw(st.sampled_from(options))

    def chance(self, p: float) -> bool:
        return self.int(0, 999) < p * 1000

    def raw(self, lo: int, hi: int) -> bytes:
        return bytes(self.draw(st.binary(min_size=lo, max_size=hi)))

    # IP layers
    def addr4(self) -> bytes:
        return bytes([10, 0, self.int(0, 3), self.int(1, 4)])

    def addr6(self) -> bytes:
        return b"\x20\x01\x0d\xb8" + bytes(10) + bytes([self.int(0, 3), self.int(1, 4)])

    def ipv4(self, proto: int, payload: bytes, frag: int = 0, ident: int | None = None) -> bytes:
        options = self.pick([b"", b"\x94\x04\x00\x00", b"\x01\x07\x07\x04" + bytes(4) + b"\0",
                             self.raw(0, 12)])
        options += b"\0" * (-len(options) % 4)
        hlen = 20 + len(options)
        ident = self.int(0, 0xFFFF) if ident is None else ident
        total = hlen + len(payload)
        if self.chance(0.05):
            total = self.pick([0, total - 1, total + 4, hlen - 4])
        src, dst = self.addr4(), self.addr4()
        hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | (hlen // 4), 0, total & 0xFFFF,
                                    ident, frag, self.int(1, 255), proto, 0, src, dst)
                        + options)
        if self.chance(0.9):
            _fix_checksum(hdr, 10, bytes(hdr))
        self.v4 = (src, dst)
        return bytes(hdr) + payload

    def ipv6(self, nh: int, payload: bytes, ext: bytes = b"") -> bytes:
        src, dst = self.addr6(), self.addr6()
        length = len(ext) + len(payload)
        if self.chance(0.05):
            length = self.pick([0, length + 8, max(length - 1, 0)])
        return struct.pack("!IHBB16s16s", 6 << 28, length & 0xFFFF, nh, self.int(1, 255),
                           src, dst) + ext + payload

    def ext_chain(self, last: int) -> tuple[int, bytes]:
        """IPv6 extension headers before a header of type ``last``: (first type, bytes)."""
        chain, nh = b"", last
        for _ in range(self.int(0, 4) if self.chance(0.5) else 0):
            kind = self.pick([0, 60, 43, 51, 44])
            if kind == 44:
                body = bytes([nh, 0]) + struct.pack("!HI", self.pick([0, 1, 8, 9]),
                                                    self.int(0, 9))
            elif kind == 51:
                words = self.int(1, 3)
                body = bytes([nh, words]) + bytes(2) + self.raw(4 * words + 4, 4 * words + 4)
            elif kind == 43:
                rtype, segments = self.pick([0, 2, 4, 7]), self.int(0, 2)
                body = bytes([nh, 2, rtype, segments]) + bytes(4) + self.addr6() + self.addr6()
            else:
                units = self.int(0, 2)
                body = bytes([nh, units]) + bytes(6) + bytes(8 * units)
            chain, nh = body + chain, kind
        return nh, chain

    def ip(self, proto: int, payload: bytes, *, v6: bool | None = None) -> bytes:
        if v6 is None:
            v6 = self.chance(0.4)
        if v6:
            nh, ext = self.ext_chain(proto)
            return self.ipv6(nh, payload, ext)
        return self.ipv4(proto, payload, frag=self.pick([0, 0, 0x4000]))

    # transport layers
    def tcp(self) -> bytes:
        options = b""
        for _ in range(self.int(0, 6)):
            options += self.pick([
                b"\x01", b"\x00", b"\x02\x04\x05\xb4", bytes([3, 3, self.int(0, 20)]),
                b"\x04\x02", b"\x08\x0a" + self.raw(8, 8),
                b"\x05" + bytes([2 + 8 * (k := self.int(1, 4))]) + self.raw(8 * k, 8 * k),
                bytes([self.int(0, 255), self.int(0, 12)]) + self.raw(0, 6),
            ])
        options = options[:40]
        options += b"\0" * (-len(options) % 4)
        doff = (20 + len(options)) // 4
        if self.chance(0.05):
            doff = self.int(0, 15)
        return struct.pack("!HHIIBBHHH", self.int(1, 65535), self.pick([80, 443, 22, 3544]),
                           self.int(0, 2**32 - 1), self.int(0, 2**32 - 1), doff << 4,
                           self.int(0, 255), self.int(0, 65535), 0, self.int(0, 3)) + (
            options + self.raw(0, 20))

    def udp(self, dport: int, body: bytes, sport: int | None = None) -> bytes:
        length = 8 + len(body)
        if self.chance(0.05):
            length = self.pick([0, 7, length + 1, length - 1])
        sport = self.int(1, 65535) if sport is None else sport
        return struct.pack("!HHHH", sport, dport, length & 0xFFFF,
                           self.pick([0, 0x1234])) + body

    def icmp(self, v6: bool) -> bytes:
        if self.chance(0.3):
            kind = self.pick([128, 129] if v6 else [0, 8])
            return struct.pack("!BBHHH", kind, 0, 0, self.int(0, 65535), 1) + self.raw(0, 16)
        kind = self.pick([1, 2, 3, 4] if v6 else [3, 4, 5, 11, 12])
        inner = self.packet(depth=3, v6=v6, proto=self.pick([6, 17, 1, 58]))
        quote = inner[: self.int(0, len(inner))] if self.chance(0.5) else inner
        return struct.pack("!BBHI", kind, self.int(0, 5), 0, 0) + quote

    # tunnels
    def ethernet(self, ip: bytes) -> bytes:
        ethertype = b"\x86\xdd" if ip and ip[0] >> 4 == 6 else b"\x08\x00"
        tags = b"".join(self.pick([b"\x81\x00", b"\x88\xa8"]) + struct.pack("!H", self.int(0, 4095))
                        for _ in range(self.int(0, 2) if self.chance(0.3) else 0))
        return b"\x02" * 6 + b"\x04" * 6 + tags + ethertype + ip

    def tunnel(self, depth: int) -> tuple[int, bytes]:
        """A tunnel carrier's protocol and payload, something IP inside."""
        inner = self.packet(depth + 1)
        v6 = inner[0] >> 4 == 6
        kind = self.pick(["ipip", "gre", "vxlan", "geneve", "teredo", "gtpu"])
        if kind == "ipip":
            return (41 if v6 else 4), inner
        if kind == "gre":
            flags = self.pick([0, 0x80, 0x20, 0x10, 0xB0, 0x40])
            protocol, body = self.pick([(0x86DD if v6 else 0x0800, inner),
                                        (0x6558, self.ethernet(inner)),
                                        (0x880B, b"\xff\x03" + (b"\x00\x57" if v6 else b"\x00\x21")
                                         + inner),
                                        (0x1234, inner)])
            extra = 4 * bin(flags & 0xB0).count("1")
            return 47, struct.pack("!BBH", flags, self.pick([0, 0, 1]), protocol) + bytes(
                extra) + body
        if kind == "vxlan":
            body = bytes([8, 0, 0, 0, 0, 0, 1, 0]) + self.ethernet(inner)
            return 17, self.udp(4789, body)
        if kind == "geneve":
            optlen = self.int(0, 3)
            protocol, body = self.pick([(0x6558, self.ethernet(inner)),
                                        (0x86DD if v6 else 0x0800, inner), (0x0806, inner)])
            return 17, self.udp(6081, struct.pack("!BBHI", optlen, 0, protocol, 0)
                                + self.raw(4 * optlen, 4 * optlen) + body)
        if kind == "teredo":
            v6_inner = inner if v6 else self.ipv6(59, b"")
            prefix = self.pick([b"", b"\x00\x00" + self.raw(6, 6),
                                b"\x00\x01\x01\x02" + self.raw(3, 3) + bytes(9)])
            ports = self.pick([(3544, self.int(1, 65535)), (self.int(1, 65535), 3544)])
            return 17, self.udp(ports[1], prefix + v6_inner, sport=ports[0])
        flags = self.pick([0x30, 0x32, 0x34, 0x20, 0x50])
        ext = (bytes(3) + bytes([0x85 if flags == 0x34 else 0]) + (
            bytes([1]) + self.raw(2, 2) + b"\x00" if flags == 0x34 else b"")
            if flags & 7 else b"")
        return 17, self.udp(2152, bytes([flags, 0xFF]) + bytes(6) + ext + inner)

    def packet(self, depth: int = 0, v6: bool | None = None, proto: int | None = None) -> bytes:
        """An IP packet: a transport header, another protocol, or (not too deep) a tunnel."""
        if v6 is None:
            v6 = self.chance(0.4)
        if proto is None:
            choices = ["tcp", "udp", "icmp", "other"] + (["tunnel"] * 2 if depth < 3 else [])
            kind = self.pick(choices)
        else:
            kind = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}[proto]
        if kind == "tunnel":
            carrier, payload = self.tunnel(depth)
            packet = self.ip(carrier, payload, v6=v6)
        elif kind == "tcp":
            packet = self.ip(6, self.tcp(), v6=v6)
        elif kind == "udp":
            packet = self.ip(17, self.udp(self.pick([53, 123, 4789, 6081, 2152, 3544]),
                                          self.raw(0, 24)), v6=v6)
        elif kind == "icmp":
            packet = self.ip(58 if v6 else 1, self.icmp(v6), v6=v6)
        else:
            packet = self.ip(self.pick([50, 59, 132, 253]), self.raw(0, 16), v6=v6)
        if self.chance(0.5):
            packet = self.fix_transport_checksum(packet)
        return packet

    def fix_transport_checksum(self, packet: bytes) -> bytes:
        """A right transport checksum on a plain packet, so that GOOD shows up too."""
        b = bytearray(packet)
        if b[0] >> 4 == 4:
            hlen, proto = (b[0] & 0xF) * 4, b[9]
            src, dst = bytes(b[12:16]), bytes(b[16:20])
        elif b[0] >> 4 == 6 and len(b) >= 40:
            hlen, proto, src, dst = 40, b[6], bytes(b[8:24]), bytes(b[24:40])
        else:
            return packet
        seg = bytes(b[hlen:])
        at = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
        if at is None or len(seg) < at + 2:
            return packet
        pseudo = b"" if proto == 1 else src + dst + struct.pack("!IxxxB", len(seg), proto)
        if proto == 17:
            seg = seg[: struct.unpack_from("!H", seg, 4)[0]]
            if len(seg) < at + 2:
                return packet
        view = bytearray(seg)
        _fix_checksum(view, at, bytes(view), pseudo)
        b[hlen + at : hlen + at + 2] = view[at : at + 2]
        return bytes(b)


LINKS = [lt.ETHERNET, lt.LINUX_SLL, lt.LINUX_SLL2, lt.NULL, lt.LOOP, lt.RAW, lt.RAW_12,
         lt.IPV4, lt.IPV6, lt.PPP, lt.PPP_SERIAL, lt.FDDI]


def frame_for(s: Stack, ip: bytes) -> tuple[bytes, int]:
    """The IP packet under a random link layer (with VLAN, MPLS or PPPoE on Ethernet)."""
    linktype = s.pick(LINKS)
    v6 = ip[0] >> 4 == 6
    if linktype == lt.FDDI:  # frame control, MACs, then LLC: SNAP (IP inside) or STP
        llc = s.pick([b"\xaa\xaa\x03\x00\x00\x00" + (b"\x86\xdd" if v6 else b"\x08\x00"),
                      b"\x42\x42\x03"])
        return b"\x50" + b"\x02" * 6 + b"\x04" * 6 + llc + ip, linktype
    if linktype == lt.ETHERNET:
        shim = s.pick(["none", "vlan", "mpls", "pppoe"])
        if shim == "mpls":
            labels = b"".join(struct.pack("!I", (s.int(16, 2**20 - 1) << 12) | 64)
                              for _ in range(s.int(0, 2))) + struct.pack("!I", 0x100 | 64)
            return b"\x02" * 6 + b"\x04" * 6 + b"\x88\x47" + labels + ip, linktype
        if shim == "pppoe":
            proto = b"\x00\x57" if v6 else b"\x00\x21"
            return (b"\x02" * 6 + b"\x04" * 6 + b"\x88\x64" + b"\x11\x00\x00\x01"
                    + struct.pack("!H", len(ip) + 2) + proto + ip), linktype
        return s.ethernet(ip) if shim == "vlan" else fvr.relink(
            ip, linktype, np.random.default_rng(s.int(0, 9))), linktype
    return fvr.relink(ip, linktype, np.random.default_rng(s.int(0, 9))), linktype


def damage(s: Stack, data: bytes) -> tuple[bytes, int]:
    """Whole, or cut by snaplen, cut short, bit-flipped, or with another wire length."""
    how = s.pick(["whole", "whole", "snaplen", "short", "flip", "flip", "wire+", "wire-"])
    if how == "snaplen":
        return data[: s.int(0, len(data))], len(data)
    if how == "short":
        cut = data[: s.int(0, len(data))]
        return cut, len(cut)
    if how == "flip" and data:
        b = bytearray(data)
        for _ in range(s.int(1, 4)):
            pos = s.int(0, len(b) - 1)
            b[pos] ^= 1 << s.int(0, 7)
        return bytes(b), len(b)
    if how == "wire+":
        return data, len(data) + s.int(1, 2000)
    if how == "wire-":
        return data, s.int(0, len(data))
    return data, len(data)


@st.composite
def stacked_frames(draw: Any) -> list[fvr.Frame]:
    s = Stack(draw)
    frames = []
    for _ in range(s.int(1, 6)):
        data, linktype = frame_for(s, s.packet())
        data, wirelen = damage(s, data)
        frames.append(fvr.Frame(data, linktype, wirelen))
    return frames


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stacked_frames())
def test_hypothesis_layer_stacks_agree(frames: list[fvr.Frame]) -> None:
    assert_agree(compare_frames(frames, "hypothesis"), "hypothesis layer stacks")


def fragment(packet: bytes, pieces: list[int], ident: int) -> list[bytes]:
    """An IPv4 packet (IHL 5) or IPv6 packet (no extension headers) cut into fragments at
    the given 8-byte-aligned data offsets."""
    if packet[0] >> 4 == 4:
        hlen = (packet[0] & 0xF) * 4
        header, data = bytearray(packet[:hlen]), packet[hlen:]
        out = []
        bounds = [0, *pieces, len(data)]
        for a, b in itertools.pairwise(bounds):
            h = bytearray(header)
            struct.pack_into("!HHH", h, 2, hlen + b - a, ident, (a // 8) | (
                0x2000 if b < len(data) else 0))
            struct.pack_into("!H", h, 10, 0)
            _fix_checksum(h, 10, bytes(h))
            out.append(bytes(h) + data[a:b])
        return out
    nh, data = packet[6], packet[40:]
    out = []
    bounds = [0, *pieces, len(data)]
    for a, b in itertools.pairwise(bounds):
        frag = struct.pack("!BBHI", nh, 0, a | (1 if b < len(data) else 0), ident)
        h = bytearray(packet[:40])
        struct.pack_into("!H", h, 4, 8 + b - a)
        h[6] = 44
        out.append(bytes(h) + frag + data[a:b])
    return out


@st.composite
def fragmented_streams(draw: Any) -> list[list[fvr.Frame]]:
    """Datagrams cut into fragments, shuffled, duplicated, interleaved, over a few batches."""
    s = Stack(draw)
    frames: list[fvr.Frame] = []
    for k in range(s.int(1, 4)):
        v6 = s.chance(0.4)
        proto = s.pick([17, 6, 58 if v6 else 1])
        if proto == 17:
            body = s.udp(53, s.raw(16, 120))
        elif proto == 6:
            body = s.tcp() + s.raw(16, 80)
        else:
            body = s.icmp(v6) + s.raw(16, 64)
        packet = (struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, 64, s.addr6(),
                              s.addr6()) + body if v6 else
                  struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                              s.addr4(), s.addr4()) + body)
        size = len(body)
        cuts = sorted({8 * s.int(1, max(1, (size - 1) // 8)) for _ in range(s.int(1, 3))})
        cuts = [c for c in cuts if 0 < c < size]
        parts = fragment(packet, cuts, ident=k + 1)
        order = list(range(len(parts)))
        random.Random(s.int(0, 999)).shuffle(order)
        if s.chance(0.3):
            order.append(order[0])  # a duplicate
        if s.chance(0.2):
            order.pop()  # a missing fragment: never completes
        for i in order:
            data = fvr.relink(parts[i], lt.ETHERNET, np.random.default_rng(0))
            data, wirelen = (data, len(data)) if s.chance(0.9) else damage(s, data)
            frames.append(fvr.Frame(data, lt.ETHERNET, wirelen))
    random.Random(s.int(0, 999)).shuffle(frames)
    cut_points = sorted({s.int(0, len(frames)) for _ in range(s.int(0, 3))})
    bounds = [0, *cut_points, len(frames)]
    return [frames[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fragmented_streams())
def test_hypothesis_fragments_across_batches_agree(batches: list[list[fvr.Frame]]) -> None:
    result = fvr.Comparison()
    pair = Pair()
    start = 0
    for chunk in batches:
        batch = FrameBatch.from_frames(
            [f.data for f in chunk], [10**6 * (start + k) for k in range(len(chunk))],
            linktype=[f.linktype for f in chunk], wirelen=[f.wirelen for f in chunk],
            first_frame=start + 1)
        pair.compare(batch, "fragments", result)
        start += len(chunk)
    assert_agree(result, "hypothesis fragment streams")


# --- reassembly limits --------------------------------------------------------------------------


def _first_fragments(count: int, *, v6: bool = False) -> list[bytes]:
    """First fragments of ``count`` distinct UDP datagrams (never completed)."""
    out = []
    for k in range(count):
        body = struct.pack("!HHHH", 1000 + k, 53, 8 + 64, 0) + bytes(64)
        if v6:
            packet = struct.pack("!IHBB16s16s", 6 << 28, len(body), 17, 64,
                                 b"\x20\x01" + bytes(14), b"\x20\x02" + bytes(14)) + body
        else:
            packet = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 17, 0,
                                 b"\x0a\0\0\x01", b"\x0a\0\0\x02") + body
        out.append(fvr.relink(fragment(packet, [16], ident=k + 1)[0], lt.ETHERNET,
                              np.random.default_rng(0)))
    return out


def test_datagram_cap_and_timeout_as_the_python_reassembler() -> None:
    """With a cap of 4 datagrams and a 5 s timeout, the rows equal those of the Python
    Reassembler with the same limits, and the drops are counted."""
    firsts = _first_fragments(12)
    # The second fragments of datagrams 0, 5, 11 (0 and 5 were dropped by then).
    frames = firsts + [fvr.relink(p, lt.ETHERNET, np.random.default_rng(0)) for p in (
        fragment(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 72, 0, 0, 64, 17, 0,
                             b"\x0a\0\0\x01", b"\x0a\0\0\x02")
                 + struct.pack("!HHHH", 1000 + k, 53, 72, 0) + bytes(64), [16], ident=k + 1)[1]
        for k in (0, 5, 11))]
    ts = [10**9 * k for k in range(len(frames))]
    ts[-1] += 20 * 10**9  # the last arrives after every earlier datagram timed out
    batch = FrameBatch.from_frames(frames, ts, linktype=lt.ETHERNET)
    from portlens.decode.rust import RustDecoder

    engine = RustDecoder(fragment_timeout_ns=5 * 10**9, max_datagrams=4)
    rust = engine.decode(batch, checksums=True)
    ref, records = decode_reference(batch)
    reassembler = Reassembler(timeout_ns=5 * 10**9, max_datagrams=4)
    reassembler.apply(ref, records)
    result = fvr.Comparison(frames=len(batch))
    _diff(batch, "caps", result, rust, ref, "")
    assert result.equal, result.report()
    counters = engine.fragment_counters
    assert counters["evicted"] == reassembler.evicted
    assert counters["expired"] == reassembler.expired
    # Each new datagram from the fifth on pushes out the oldest: 0-7 by 4-11, then 8 and 9
    # by the second fragments of 0 and 5 (which start new datagrams); at t=34 s the four
    # held (10, 11, 0, 5) time out and 11's second fragment starts a new one.
    assert counters["evicted"] == 10
    assert counters["expired"] == 4
    assert counters["completed"] == 0
    assert list(rust.frag[-3:]) == [1, 1, 1]


def test_byte_cap_drops_the_oldest_datagrams() -> None:
    """Datagrams with many disjoint ranges: past max_bytes the oldest go, counted; the state
    stays bounded."""
    from portlens.decode.rust import RustDecoder

    frames = []
    for k in range(40):
        body = bytes(8 * 200)
        packet = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 253, 0,
                             b"\x0a\0\0\x01", b"\x0a\0\0\x02") + body
        parts = fragment(packet, list(range(8, len(body), 8)), ident=k + 1)
        frames += [fvr.relink(p, lt.ETHERNET, np.random.default_rng(0)) for p in parts[::2]]
    batch = FrameBatch.from_frames(frames, list(range(len(frames))), linktype=lt.ETHERNET)
    engine = RustDecoder(max_bytes=64 << 10)
    out = engine.decode(batch, checksums=False)
    counters = engine.fragment_counters
    assert counters["evicted_bytes"] > 0
    assert counters["held_bytes"] <= (64 << 10) + 4096
    assert counters["completed"] == 0
    assert set(out.frag.tolist()) == {1}


# --- the checksum rule ---------------------------------------------------------------------------


def _conns(path: Path, *, checksums: bool, drop: bool) -> list[tuple[Any, ...]]:
    from portlens.track.tracker import TrackerConfig, track

    config = TrackerConfig(drop_bad_checksums=drop)
    return [(c.uid, c.proto, c.conn_state, c.history, c.orig_pkts, c.resp_pkts,
             c.orig_ip_bytes, c.resp_ip_bytes)
            for c in track(decode_capture(path, checksums=checksums), config)]


@pytest.mark.parametrize("capture", ["checksums.pcap", "tcp-session.pcap", "fragments.pcap"])
def test_tracking_with_checksums_kept_needs_no_verification(capture: str) -> None:
    """`--checksums keep`: the tracker never reads the checksum columns, so decoding without
    verifying them gives the same connections; `drop` needs them (history C/c)."""
    path = REPO / "captures" / capture
    assert _conns(path, checksums=False, drop=False) == _conns(path, checksums=True, drop=False)


def test_reference_path_without_checksums_leaves_them_none() -> None:
    path = REPO / "captures" / "checksums.pcap"
    plain = next(iter(decode_capture(path, reference=True, checksums=False)))
    verified = next(iter(decode_capture(path, reference=True)))
    assert not plain.ip_csum.any() and not plain.l4_csum.any()
    assert verified.l4_csum.any()
    for name in PacketBatch.column_names():
        if name not in CHECKSUM_COLUMNS:
            assert (getattr(plain, name) == getattr(verified, name)).all(), name


def test_fragment_counters_of_a_capture() -> None:
    """captures/fragments.pcap: three IPv4 datagrams and one IPv6 complete, by both paths."""
    for reference in (False, True):
        decoder = Decoder(reference=reference)
        with open_capture(REPO / "captures" / "fragments.pcap") as reader:
            for frames in reader:
                decoder.decode(frames)
        counters = decoder.fragment_counters
        assert (counters["completed"], counters["expired"], counters["held_datagrams"]) == (
            4, 0, 0)


def test_dropping_bad_checksums_needs_verification() -> None:
    path = REPO / "captures" / "checksums.pcap"
    dropped = _conns(path, checksums=True, drop=True)
    kept = _conns(path, checksums=True, drop=False)
    assert dropped != kept
    assert any("C" in c[3] or "c" in c[3] for c in dropped)
    assert not any("C" in c[3] or "c" in c[3] for c in kept)
    batch = next(iter(decode_capture(path)))
    assert (batch.l4_csum == CSUM_BAD).sum() > 0


@pytest.mark.parametrize(("argv", "verified"), [
    (["packets", "x.pcap"], True),
    (["packets", "--stats", "x.pcap"], True),
    (["ladder", "--conn", "C1", "x.pcap"], True),
    (["conns", "x.pcap"], False),
    (["conns", "--checksums", "drop", "x.pcap"], True),
    (["ports", "x.pcap"], False),
    (["ports", "--checksums", "drop", "x.pcap"], True),
    (["handshakes", "x.pcap"], False),
    (["sockets", "x.pcap"], False),
    (["events", "x.pcap"], False),
    (["hosts", "x.pcap"], False),
    (["convs", "x.pcap"], False),
])
def test_commands_ask_for_checksums_only_when_they_read_them(argv: list[str],
                                                             verified: bool) -> None:
    from portlens.cli import build_parser
    from portlens.cli.common import wants_checksums

    assert wants_checksums(build_parser().parse_args(argv)) is verified
