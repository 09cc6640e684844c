"""Classic pcap (the libpcap savefile): its file header and the record walk.

The walk is the hot loop of reading a file, so it does the least Python can do per record: one
``unpack_from`` of the captured length to find the next record, one ``append`` of the offset.
Every other header field of every record in the chunk is then read at once by numpy, through a
view of the chunk with a stride of one byte (so a ``u4`` can start at any offset).

Rules where readers differ (tested in tests/test_sources.py):

* Magic 0xa1b2c3d4 (µs) and 0xa1b23c4d (ns), either byte order, and Kuznetzov's 0xa1b2cd34
  (24-byte record headers). Version 2.x only, as libpcap; ``thiszone`` is ignored, as libpcap
  and Wireshark do.
* ``ts_sec`` is unsigned (files reach 2106). Timestamps are exact integer nanoseconds.
* The link type is the low 16 bits of the header field (see ``LINKTYPE_MASK``); an FCS length
  given in the upper bits is reported in ``InterfaceInfo.fcs_len``.
* A record may capture more than the header's snaplen, up to ``max(snaplen, 262144)``; a larger
  caplen is damage and stops reading. Frames are not cut to snaplen (tshark does not either).
  ``wirelen`` is passed through as written, even when smaller than ``caplen``.

This module also holds what the pcapng reader shares with it (:class:`Walk`,
:class:`InterfaceInfo`, the length limits, the byte views), so that pcapng builds on pcap
without files.py in between.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from portlens.sources.frames import I64, U32, FrameBatch, InterfaceInfo

MAX_RECORD_BYTES: Final = 256 << 20
"""The largest record (pcap) or block (pcapng) we believe. Past it a length field is damage, not
a packet: following it would mean holding that much memory for a file that is almost certainly
corrupt."""

USUAL_MAX_CAPLEN: Final = 262144
"""libpcap's and Wireshark's largest packet for ordinary link types. A pcap record may capture up
to max(this, the file's snaplen): tcpdump too accepts caplen > snaplen when it stays reasonable,
and some writers put a small or zero snaplen in the header and still write whole frames."""

NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Walk:
    """What one pass over a chunk found.

    The caller yields ``batch``, then raises ``problem`` if there is one; otherwise it carries
    ``buf[consumed:]`` into the next chunk, which must hold at least ``need`` bytes from there
    (the length of the record that did not fit, or 0 when that is not known yet).
    """

    batch: FrameBatch | None
    consumed: int
    need: int = 0
    problem: str | None = None


class HeaderError(ValueError):
    """The file header is readable but describes something we do not read."""


U32View = npt.NDArray[np.uint32]


def u32_view(buf: memoryview, big_endian: bool) -> U32View:
    """Every 4-byte window of ``buf`` as one u32: ``view[i]`` is the u32 at byte ``i``.

    Fancy-indexing it with record offsets gathers a header field of every record in one call,
    whatever the records' alignment.
    """
    view: U32View = np.ndarray(
        shape=(max(len(buf) - 3, 0),),
        dtype=">u4" if big_endian else "<u4",
        buffer=buf,
        strides=(1,),
    )
    return view


def u16_view(buf: memoryview, big_endian: bool) -> npt.NDArray[np.uint16]:
    """As :func:`u32_view`, for 2-byte fields."""
    view: npt.NDArray[np.uint16] = np.ndarray(
        shape=(max(len(buf) - 1, 0),),
        dtype=">u2" if big_endian else "<u2",
        buffer=buf,
        strides=(1,),
    )
    return view


def frame_numbers(first: int, count: int) -> I64:
    return np.arange(first, first + count, dtype=np.int64)


class _Variant(NamedTuple):
    order: str
    ticks_per_second: int
    record_header_len: int


VARIANTS: Final = {
    b"\xd4\xc3\xb2\xa1": _Variant("<", 1_000_000, 16),
    b"\xa1\xb2\xc3\xd4": _Variant(">", 1_000_000, 16),
    b"\x4d\x3c\xb2\xa1": _Variant("<", NS_PER_S, 16),
    b"\xa1\xb2\x3c\x4d": _Variant(">", NS_PER_S, 16),
    # Alexey Kuznetzov's patched libpcap: 8 more bytes per record (ifindex, protocol, pkt_type).
    b"\x34\xcd\xb2\xa1": _Variant("<", 1_000_000, 24),
    b"\xa1\xb2\xcd\x34": _Variant(">", 1_000_000, 24),
}
"""First four bytes of the file -> how to read the rest."""

FILE_HEADER: Final = (
    ("magic", "4s"),
    ("version_major", "H"),
    ("version_minor", "H"),
    ("thiszone", "i"),
    ("sigfigs", "I"),
    ("snaplen", "I"),
    ("linktype_field", "I"),
)
FILE_HEADER_LEN: Final = 24

RECORD_HEADER: Final = (
    ("ts_sec", 0),
    ("ts_frac", 4),
    ("caplen", 8),
    ("wirelen", 12),
)
"""Record header fields, each a u32 in the file's byte order, by offset from the record start."""

_CAPLEN_AT: Final = dict(RECORD_HEADER)["caplen"]

LINKTYPE_MASK: Final = 0xFFFF
"""The link type is the low 16 bits of the header's link type field. Bits 16-25 are reserved,
bit 26 says an FCS length is given and bits 28-31 give it in 16-bit words (the pcap spec,
libpcap's LT_FCS_LENGTH)."""
_FCS_PRESENT: Final = 0x04000000


def is_pcap(magic: bytes) -> bool:
    return bytes(magic[:4]) in VARIANTS


class PcapWalker:
    """Turns chunks of a classic pcap file (after its 24-byte header) into FrameBatches."""

    header_len: Final = FILE_HEADER_LEN

    def __init__(self, header: bytes | bytearray | memoryview) -> None:
        variant = VARIANTS.get(bytes(header[:4]))
        if variant is None or len(header) < FILE_HEADER_LEN:
            raise HeaderError("not a pcap file header")
        fields = dict(
            zip(
                (name for name, _ in FILE_HEADER),
                struct.unpack_from(variant.order + "".join(f for _, f in FILE_HEADER), header),
                strict=True,
            )
        )
        major, minor = fields["version_major"], fields["version_minor"]
        if major != 2:
            # libpcap reads 2.x only (and 543.0 from one odd writer, which we skip).
            raise HeaderError(f"unsupported pcap version {major}.{minor}")
        field = fields["linktype_field"]
        self.big_endian = variant.order == ">"
        self.linktype = field & LINKTYPE_MASK
        self.snaplen: int = fields["snaplen"]
        self.max_caplen = min(max(self.snaplen, USUAL_MAX_CAPLEN), MAX_RECORD_BYTES)
        self.frames = 0
        self.interfaces = [
            InterfaceInfo(
                id=0,
                linktype=self.linktype,
                snaplen=self.snaplen,
                ticks_per_second=variant.ticks_per_second,
                fcs_len=(field >> 28) * 2 if field & _FCS_PRESENT else None,
            )
        ]
        self._frac_ns = NS_PER_S // variant.ticks_per_second
        self._hl = variant.record_header_len
        self._caplen = struct.Struct(f"{variant.order}{_CAPLEN_AT}xI")

    def walk(self, buf: memoryview, pos: int, base: int, at_end: bool) -> Walk:
        """Every complete record in ``buf[pos:]``; ``base`` is the stream offset of ``buf[0]``."""
        n = len(buf)
        hl = self._hl
        offsets = array("q")
        append = offsets.append
        unpack = self._caplen.unpack_from
        off = pos
        # Append first, read after: the entry whose header cannot be read ends the loop, and
        # no comparison per record is needed. That entry (and the one before it, if that one
        # runs past the chunk) is taken off below.
        try:
            while True:
                append(off)
                off += hl + unpack(buf, off)[0]
        except struct.error:
            pass
        pending = offsets.pop()
        if pending > n:
            pending = offsets.pop()

        o = np.frombuffer(offsets, dtype=np.int64)
        view = u32_view(buf, self.big_endian)
        caplen: U32 = view[o + _CAPLEN_AT].astype(np.uint32)
        problem: str | None = None
        need = 0
        too_long = np.flatnonzero(caplen > self.max_caplen)
        if too_long.size:
            i = int(too_long[0])
            problem = self._too_long(int(caplen[i]), self.frames + i + 1, base + int(o[i]))
            o, caplen, pending = o[:i], caplen[:i], int(o[i])
        elif pending < n:
            if pending + _CAPLEN_AT + 4 <= n:
                (length,) = unpack(buf, pending)
                if length > self.max_caplen:
                    problem = self._too_long(length, self.frames + len(o) + 1, base + pending)
                need = hl + length
            else:
                need = hl
            if at_end and problem is None:
                record = self.frames + len(o) + 1
                problem = f"cut off inside record {record} at byte {base + pending}"

        batch = self._batch(buf, view, o, caplen) if len(o) else None
        return Walk(batch, pending, need, problem)

    def _batch(self, buf: memoryview, view: U32View, o: I64, caplen: U32) -> FrameBatch:
        fields = {name: view[o + at] for name, at in RECORD_HEADER if name != "caplen"}
        ts_ns = fields["ts_sec"].astype(np.int64) * NS_PER_S
        ts_ns += fields["ts_frac"].astype(np.int64) * self._frac_ns
        k = len(o)
        batch = FrameBatch(
            data=np.frombuffer(buf, dtype=np.uint8),
            offset=o + self._hl,
            caplen=caplen,
            wirelen=fields["wirelen"].astype(np.uint32),
            ts_ns=ts_ns,
            linktype=np.full(k, self.linktype, dtype=np.uint16),
            interface=np.zeros(k, dtype=np.uint16),
            frame=frame_numbers(self.frames + 1, k),
        )
        self.frames += k
        return batch

    def _too_long(self, caplen: int, record: int, at: int) -> str:
        return (
            f"corrupt record {record} at byte {at}: captured length {caplen} is over the "
            f"limit of {self.max_caplen} bytes"
        )
