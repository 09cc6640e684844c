"""pcapng: sections, interfaces and packet blocks turned into FrameBatches.

A pcapng file is a list of blocks. Section Header Blocks (SHB) start sections and set their byte
order; Interface Description Blocks (IDB) declare a section's interfaces (link type, snaplen,
timestamp resolution); packet blocks (Enhanced, Simple, and the obsolete Packet Block) carry
frames. Everything else (statistics, name resolution, secrets, custom blocks) is skipped.

Speed comes from treating a *run* of packet blocks of one type the way pcap treats records: a
tight loop that only follows block lengths, then one numpy gather per field over the whole run,
with every check (length, trailer, captured length, interface) done on the arrays. Only the rare
blocks between runs go through per-block Python.

Rules where the format leaves a choice (tested in tests/test_sources.py):

* Interfaces are numbered across the file: the first section's are 0..k-1, the next section's
  continue at k. ``FrameBatch.interface`` and ``InterfaceInfo.id`` use these numbers.
* Timestamps are ``ticks * 10**9 // ticks_per_second`` (floored, exact integers) plus
  ``if_tsoffset`` seconds; see :class:`Clock`.
* A Simple Packet Block belongs to the section's interface 0, takes the timestamp of the last
  timed packet of the section (0 before any), and captures ``min(original length, interface
  snaplen (0 = none), bytes in the block)``.
* Custom blocks (0x00000BAD, 0x40000BAD) and every block type we do not know are skipped:
  Wireshark shows custom blocks as records of their own, portlens does not count them as frames.
* Damage is an error, as in Wireshark: a block length that is not a multiple of 4, under the
  block's minimum or over ``MAX_RECORD_BYTES``; a trailing length that differs from the leading
  one; a captured length that does not fit in its block; an undefined interface id. Damaged
  options in an IDB only lose the options from there on.
"""

from __future__ import annotations

import math
import struct
from array import array
from dataclasses import dataclass, field
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from portlens.reference.pcap import (
    MAX_RECORD_BYTES,
    NS_PER_S,
    Walk,
    frame_numbers,
    u16_view,
    u32_view,
)
from portlens.sources.frames import I64, U16, U32, FrameBatch, InterfaceInfo

SHB: Final = 0x0A0D0D0A
"""Section Header Block: its type reads the same in both byte orders."""
IDB: Final = 0x00000001
PB: Final = 0x00000002
"""Packet Block, obsolete since pcapng 1.0 but still found in old files."""
SPB: Final = 0x00000003
EPB: Final = 0x00000006

BLOCK_NAMES: Final = {
    SHB: "section header block",
    IDB: "interface description block",
    PB: "packet block",
    SPB: "simple packet block",
    4: "name resolution block",
    5: "interface statistics block",
    EPB: "enhanced packet block",
    10: "decryption secrets block",
    0x00000BAD: "custom block",
    0x40000BAD: "custom block",
}

SHB_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER: Final = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
"""The SHB's byte-order magic 0x1A2B3C4D as it appears in each byte order."""

MIN_BLOCK_LEN: Final = 12
MIN_SHB_LEN: Final = 28
MIN_IDB_LEN: Final = 20
MAX_INTERFACES: Final = 65536
"""FrameBatch.interface is a u16; a file declaring more interfaces is damaged."""

# Interface Description Block options we use (pcapng spec, section 4.2).
IF_NAME: Final = 2
IF_DESCRIPTION: Final = 3
IF_TSRESOL: Final = 9
IF_FCSLEN: Final = 13
IF_TSOFFSET: Final = 14
OPT_ENDOFOPT: Final = 0

DEFAULT_TICKS_PER_SECOND: Final = 1_000_000
"""No if_tsresol option: microseconds."""

INT64_MAX: Final = (1 << 63) - 1
INT64_MIN: Final = -(1 << 63)


@dataclass(frozen=True, slots=True)
class PacketLayout:
    """Where a packet block keeps its fields, as (name, offset from the block start, width)."""

    name: str
    min_len: int
    """Total block length with no packet data and no options."""
    data_at: int
    fields: tuple[tuple[str, int, int], ...]

    def at(self, name: str) -> tuple[int, int]:
        """(offset, width) of a field."""
        for field_name, offset, width in self.fields:
            if field_name == name:
                return offset, width
        raise KeyError(name)


LAYOUTS: Final = {
    EPB: PacketLayout(
        "enhanced packet block",
        32,
        28,
        (
            ("interface", 8, 4),
            ("ts_high", 12, 4),
            ("ts_low", 16, 4),
            ("caplen", 20, 4),
            ("wirelen", 24, 4),
        ),
    ),
    PB: PacketLayout(
        "packet block",
        32,
        28,
        (
            ("interface", 8, 2),
            ("drops", 10, 2),
            ("ts_high", 12, 4),
            ("ts_low", 16, 4),
            ("caplen", 20, 4),
            ("wirelen", 24, 4),
        ),
    ),
    # No interface (always the section's first), no timestamp, no captured length.
    SPB: PacketLayout("simple packet block", 16, 12, (("wirelen", 8, 4),)),
}
_EPB, _SPB = LAYOUTS[EPB], LAYOUTS[SPB]
"""EPB and PB share offsets for every field the reader uses but the interface's width."""

MIN_LEN: Final = {SHB: MIN_SHB_LEN, IDB: MIN_IDB_LEN, EPB: 32, PB: 32, SPB: 16}
"""Smallest total length of each block type we read; any other block: MIN_BLOCK_LEN."""

STATEFUL: Final = frozenset({SHB, IDB})
"""Blocks that change how the blocks after them are read: they end a vectorized segment."""


@dataclass(frozen=True, slots=True)
class Clock:
    """Exact ticks -> nanoseconds for one interface: ``ticks * num // den + offset_ns``.

    ``num / den`` is 10**9 / ticks_per_second reduced, so ``num <= 10**9`` always. The result
    is floored (binary resolutions do not divide a nanosecond evenly) and saturates at the
    int64 limits: a time past the year 2262 is damage or nonsense, and must not raise.
    """

    num: int
    den: int
    offset_ns: int

    @classmethod
    def of(cls, ticks_per_second: int, tsoffset_s: int) -> Clock:
        g = math.gcd(NS_PER_S, ticks_per_second)
        offset = max(min(tsoffset_s * NS_PER_S, INT64_MAX), INT64_MIN)
        return cls(NS_PER_S // g, ticks_per_second // g, offset)

    def to_ns(self, ticks: npt.NDArray[np.uint64]) -> I64:
        num, den = self.num, self.den
        if den >= 1 << 32:
            # A resolution finer than 2**-41 s or 10**-18 s: exact in Python, never in practice.
            exact: I64 = np.array(
                [self._clamp(t * num // den + self.offset_ns) for t in ticks.tolist()],
                dtype=np.int64,
            )
            return exact
        # ticks = q*den + r, so ticks*num//den = q*num + r*num//den, with r*num < 2**62.
        q = ticks // np.uint64(den)
        r = ticks - q * np.uint64(den)
        ns = q * np.uint64(num) + r * np.uint64(num) // np.uint64(den)
        over = q > np.uint64(INT64_MAX // num - 1)
        out: I64 = ns.astype(np.int64)
        if self.offset_ns > 0:
            over |= out > INT64_MAX - self.offset_ns
        if self.offset_ns:
            out += self.offset_ns  # negative offsets cannot underflow: out >= 0 here
        if over.any():
            out[over] = INT64_MAX
        return out

    @staticmethod
    def _clamp(ns: int) -> int:
        return max(min(ns, INT64_MAX), INT64_MIN)


@dataclass(slots=True)
class _Section:
    order: str
    base: int
    """Global id of the section's interface 0."""
    count: int = 0
    """Interfaces declared so far in the section."""


@dataclass(slots=True)
class _Run:
    """Columns of a run of packet blocks, before they are joined into one batch."""

    offset: I64
    caplen: U32
    wirelen: U32
    ts_ns: I64
    interface: U16


@dataclass(slots=True)
class _Views:
    """Stride-1 views of one chunk (see pcap.u32_view), made once per byte order."""

    buf: memoryview
    u32s: dict[str, npt.NDArray[np.uint32]] = field(default_factory=dict)
    u16s: dict[str, npt.NDArray[np.uint16]] = field(default_factory=dict)

    def u32(self, order: str) -> npt.NDArray[np.uint32]:
        if order not in self.u32s:
            self.u32s[order] = u32_view(self.buf, order == ">")
        return self.u32s[order]

    def u16(self, order: str) -> npt.NDArray[np.uint16]:
        if order not in self.u16s:
            self.u16s[order] = u16_view(self.buf, order == ">")
        return self.u16s[order]


class PcapngWalker:
    """Turns chunks of a pcapng file into FrameBatches, keeping section and interface state."""

    def __init__(self) -> None:
        self.frames = 0
        self.sections = 0
        self.interfaces: list[InterfaceInfo] = []
        self._clocks: list[Clock] = []
        self._linktypes: list[int] = []
        self._linktype_table: U16 | None = None
        self._section = _Section("<", 0)
        self._head = struct.Struct("<II")
        self._last_ts = 0
        """Timestamp of the section's last timed packet, for Simple Packet Blocks."""
        self.skipped: dict[int, int] = {}
        """Blocks skipped (neither section, interface nor packet), by block type."""

    def walk(
        self, buf: memoryview, pos: int, base: int, at_end: bool, *, headers_only: bool = False
    ) -> Walk:
        """Every complete block in ``buf[pos:]``; ``base`` is the stream offset of ``buf[0]``.

        Section and interface blocks go one at a time through :meth:`_single_block`; the
        blocks between them (packets, statistics, custom...) go a segment at a time through
        :meth:`_segment`. ``headers_only`` stops before the first packet block (with ``need``
        0), so that a reader can learn the interfaces before the first batch.
        """
        n = len(buf)
        views = _Views(buf)
        runs: list[_Run] = []
        emitted = 0
        off = pos
        need = 0
        problem: str | None = None
        stopped = False
        while n - off >= 8:
            btype = self._head.unpack_from(buf, off)[0]
            one_by_one = btype in STATEFUL or not self.sections
            if headers_only and not one_by_one:
                if btype in LAYOUTS:
                    stopped = True
                    break
                one_by_one = True
            if one_by_one:
                length, need, problem = self._single_block(buf, off, base)
            else:
                run, length, need, problem = self._segment(
                    buf, views, off, base, self.frames + emitted
                )
                if run is not None:
                    runs.append(run)
                    emitted += len(run.offset)
            off += length
            if need or problem:
                break

        if at_end and problem is None and off < n and not stopped:
            problem = self._cut_off(buf, off, base + off, self.frames + emitted + 1)
        batch = self._batch(buf, runs, emitted) if runs else None
        return Walk(batch, off, need, problem)

    # -- segments: everything between two section or interface blocks --------------------------

    def _segment(
        self, buf: memoryview, views: _Views, start: int, base: int, done: int
    ) -> tuple[_Run | None, int, int, str | None]:
        """Blocks from ``start`` to the next SHB or IDB: (packet columns, bytes used, need,
        problem). ``done`` is the number of packets before ``start``."""
        unpack = self._head.unpack_from
        offsets = array("q")
        append = offsets.append
        stateful, common = STATEFUL, EPB
        off = start
        try:
            while True:
                btype, blen = unpack(buf, off)
                if btype != common and btype in stateful:
                    break
                append(off)
                off += blen or 4  # a zero length must not stall the loop; checked below
        except struct.error:
            pass

        n = len(buf)
        section = self._section
        u32 = views.u32(section.order)
        o = np.frombuffer(offsets, dtype=np.int64)
        btype_of = u32[o]
        blen = u32[o + 4].astype(np.int64)
        end = o + blen
        timed = (btype_of == EPB) | (btype_of == PB)
        simple = btype_of == SPB
        min_len = np.where(timed, _EPB.min_len, np.where(simple, _SPB.min_len, MIN_BLOCK_LEN))
        # Checks that make a block safe to read come first...
        k = _first_false((blen >= min_len) & (blen % 4 == 0) & (end <= n))
        o, btype_of, blen, end = o[:k], btype_of[:k], blen[:k], end[:k]
        timed, simple = timed[:k], simple[:k]
        ok = u32[end - 4] == blen
        # ... then the packet checks, on the fields.
        t_rows = np.flatnonzero(timed)
        ot = o[t_rows]
        interface = self._interface_ids(views, ot, btype_of[t_rows])
        caplen_t = u32[ot + _EPB.at("caplen")[0]].astype(np.uint32)
        ok[t_rows] &= (caplen_t <= blen[t_rows] - _EPB.min_len) & (interface < section.count)
        if not section.count:
            ok &= ~simple
        k = _first_false(ok)

        length = off - start
        need = 0
        problem: str | None = None
        if k < len(offsets):
            at = offsets[k]
            length = at - start
            record = done + int(np.count_nonzero((timed | simple)[:k])) + 1
            need, problem = self._check_block(buf, at, base, record, packet_checks=True)
        is_packet = (timed | simple)[:k]
        if not is_packet.all():
            types, counts = np.unique(btype_of[:k][~is_packet], return_counts=True)
            for t, c in zip(types.tolist(), counts.tolist(), strict=True):
                self.skipped[t] = self.skipped.get(t, 0) + c
        if not is_packet.any():
            return None, length, need, problem

        t_rows = t_rows[t_rows < k]
        ot = o[t_rows]
        t_iface = (interface[: t_rows.size].astype(np.int64) + section.base).astype(np.uint16)
        ticks = u32[ot + _EPB.at("ts_high")[0]].astype(np.uint64) << np.uint64(32)
        ticks |= u32[ot + _EPB.at("ts_low")[0]].astype(np.uint64)
        timed_run = _Run(
            ot + _EPB.data_at,
            caplen_t[: t_rows.size],
            u32[ot + _EPB.at("wirelen")[0]].astype(np.uint32),
            self._to_ns(ticks, t_iface) if t_rows.size else np.zeros(0, dtype=np.int64),
            t_iface,
        )
        s_rows = np.flatnonzero(simple[:k])
        if s_rows.size:
            run = self._with_simple(u32, o, blen, t_rows=t_rows, s_rows=s_rows, timed_run=timed_run)
        else:
            run = timed_run
        if t_rows.size:
            self._last_ts = int(timed_run.ts_ns[-1])
        return run, length, need, problem

    def _with_simple(
        self,
        u32: npt.NDArray[np.uint32],
        o: I64,
        blen: I64,
        *,
        t_rows: npt.NDArray[np.intp],
        s_rows: npt.NDArray[np.intp],
        timed_run: _Run,
    ) -> _Run:
        """Merge the timed packets with the Simple Packet Blocks among them, in file order.

        An SPB belongs to the section's interface 0 and takes the timestamp of the last timed
        packet before it (of this segment, else of the section so far).
        """
        section = self._section
        rows = np.sort(np.concatenate([t_rows, s_rows]))
        t_at = np.searchsorted(rows, t_rows)
        s_at = np.searchsorted(rows, s_rows)
        m = len(rows)
        run = _Run(
            np.empty(m, dtype=np.int64),
            np.empty(m, dtype=np.uint32),
            np.empty(m, dtype=np.uint32),
            np.empty(m, dtype=np.int64),
            np.full(m, section.base, dtype=np.uint16),
        )
        run.offset[t_at] = timed_run.offset
        run.caplen[t_at] = timed_run.caplen
        run.wirelen[t_at] = timed_run.wirelen
        run.ts_ns[t_at] = timed_run.ts_ns
        run.interface[t_at] = timed_run.interface
        os_ = o[s_rows]
        wirelen = u32[os_ + _SPB.at("wirelen")[0]].astype(np.uint32)
        caplen = np.minimum(wirelen, (blen[s_rows] - _SPB.min_len).astype(np.uint32))
        snaplen = self.interfaces[section.base].snaplen
        if snaplen:
            caplen = np.minimum(caplen, np.uint32(snaplen))
        run.offset[s_at] = os_ + _SPB.data_at
        run.caplen[s_at] = caplen
        run.wirelen[s_at] = wirelen
        # Index (in t_rows) of the last timed packet before each SPB, -1 if none.
        before = np.searchsorted(t_rows, s_rows) - 1
        run.ts_ns[s_at] = (
            np.where(before >= 0, timed_run.ts_ns[np.maximum(before, 0)], self._last_ts)
            if t_rows.size
            else self._last_ts
        )
        return run

    def _interface_ids(self, views: _Views, o: I64, btype_of: U32) -> U32:
        """Section-local interface ids of EPBs (u32) and PBs (u16) at offsets ``o``."""
        order = self._section.order
        at = _EPB.at("interface")[0]
        ids = views.u32(order)[o + at].astype(np.uint32)
        is_pb = btype_of == PB
        if is_pb.any():
            ids[is_pb] = views.u16(order)[o[is_pb] + at]
        return ids

    def _check_block(
        self, buf: memoryview, at: int, base: int, record: int, *, packet_checks: bool
    ) -> tuple[int, str | None]:
        """Why the block at ``at`` cannot be used: (need, problem), or (0, None) if it can.

        The one place that words problems; the vectorized checks only find the first block
        that has one.
        """
        btype, blen = self._head.unpack_from(buf, at)
        order = self._section.order
        layout = LAYOUTS.get(btype)
        name = _name(btype)
        where = f"record {record} ({name})" if layout else name
        where += f" at byte {base + at}"
        if blen < MIN_LEN.get(btype, MIN_BLOCK_LEN) or blen % 4:
            return 0, f"corrupt {where}: block length {blen}"
        if blen > MAX_RECORD_BYTES:
            return 0, f"corrupt {where}: block length {blen} is over the limit"
        if at + blen > len(buf):
            return blen, None
        (trailer,) = struct.unpack_from(order + "I", buf, at + blen - 4)
        if trailer != blen:
            return 0, f"corrupt {where}: block length {blen} at the start, {trailer} at the end"
        if layout is None or not packet_checks:
            return 0, None
        count = self._section.count
        if layout is _SPB:
            if not count:
                return 0, f"corrupt {where}: no interface is defined in this section"
            return 0, None
        caplen = struct.unpack_from(order + "I", buf, at + layout.at("caplen")[0])[0]
        if caplen > blen - layout.min_len:
            return 0, f"corrupt {where}: captured length {caplen} does not fit in the block"
        if_at, width = layout.at("interface")
        interface = struct.unpack_from(order + ("I" if width == 4 else "H"), buf, at + if_at)[0]
        if interface >= count:
            return 0, (
                f"corrupt {where}: interface {interface} is not defined (the section has {count})"
            )
        return 0, None

    def _to_ns(self, ticks: npt.NDArray[np.uint64], interface: U16) -> I64:
        first = int(interface[0])
        if (interface == first).all():
            return self._clocks[first].to_ns(ticks)
        out = np.empty(len(ticks), dtype=np.int64)
        for i in np.unique(interface).tolist():
            mask = interface == i
            out[mask] = self._clocks[i].to_ns(ticks[mask])
        return out

    def _batch(self, buf: memoryview, runs: list[_Run], count: int) -> FrameBatch:
        interface = _joined([r.interface for r in runs])
        batch = FrameBatch(
            data=np.frombuffer(buf, dtype=np.uint8),
            offset=_joined([r.offset for r in runs]),
            caplen=_joined([r.caplen for r in runs]),
            wirelen=_joined([r.wirelen for r in runs]),
            ts_ns=_joined([r.ts_ns for r in runs]),
            linktype=self._linktype_of(interface),
            interface=interface,
            frame=frame_numbers(self.frames + 1, count),
        )
        self.frames += count
        return batch

    def _linktype_of(self, interface: U16) -> U16:
        if self._linktype_table is None:
            self._linktype_table = np.array(self._linktypes, dtype=np.uint16)
        return self._linktype_table[interface]

    # -- blocks read one at a time -------------------------------------------------------------

    def _single_block(self, buf: memoryview, off: int, base: int) -> tuple[int, int, str | None]:
        """Check and apply one block (a section or interface, or anything while reading
        headers only): (its length, need, problem)."""
        btype = self._head.unpack_from(buf, off)[0]
        if btype == SHB:
            # A section sets its own byte order: read it before the block's length.
            if len(buf) - off < 12:
                return 0, MIN_BLOCK_LEN, None
            magic = bytes(buf[off + 8 : off + 12])
            if magic not in BYTE_ORDER:
                what = f"corrupt section header block at byte {base + off}: byte-order magic"
                return 0, 0, f"{what} {magic.hex(' ')}"
            self._set_order(BYTE_ORDER[magic])
        elif not self.sections:
            return 0, 0, f"block at byte {base + off} comes before any section header block"
        need, problem = self._check_block(buf, off, base, self.frames + 1, packet_checks=False)
        if need or problem:
            return 0, need, problem
        blen = self._head.unpack_from(buf, off)[1]
        if btype == SHB:
            problem = self._start_section(buf, off, blen, base)
        elif btype == IDB:
            problem = self._add_interface(buf, off, blen, base)
        else:
            self.skipped[btype] = self.skipped.get(btype, 0) + 1
        return blen, 0, problem

    def _set_order(self, order: str) -> None:
        self._section.order = order
        self._head = struct.Struct(order + "II")

    def _start_section(self, buf: memoryview, off: int, blen: int, base: int) -> str | None:
        order = self._section.order
        major, minor = struct.unpack_from(order + "HH", buf, off + 12)
        if major != 1:
            return f"unsupported pcapng version {major}.{minor} at byte {base + off}"
        self.sections += 1
        self._section = _Section(order, len(self.interfaces))
        self._last_ts = 0
        return None

    def _add_interface(self, buf: memoryview, off: int, blen: int, base: int) -> str | None:
        section = self._section
        if len(self.interfaces) >= MAX_INTERFACES:
            return f"corrupt file: more than {MAX_INTERFACES} interfaces at byte {base + off}"
        linktype, _reserved, snaplen = struct.unpack_from(section.order + "HHI", buf, off + 8)
        opts = _options(buf, off + 16, off + blen - 4, section.order)
        ticks_per_second = DEFAULT_TICKS_PER_SECOND
        if tsresol := opts.get(IF_TSRESOL):
            v = tsresol[0]
            ticks_per_second = 1 << (v & 0x7F) if v & 0x80 else 10**v
        tsoffset = 0
        if (raw := opts.get(IF_TSOFFSET)) and len(raw) >= 8:
            (tsoffset,) = struct.unpack_from(section.order + "q", raw)
        fcslen = opts.get(IF_FCSLEN)
        info = InterfaceInfo(
            id=len(self.interfaces),
            linktype=linktype,
            snaplen=snaplen,
            name=_text(opts.get(IF_NAME)),
            description=_text(opts.get(IF_DESCRIPTION)),
            ticks_per_second=ticks_per_second,
            tsoffset_s=tsoffset,
            fcs_len=fcslen[0] if fcslen else None,
            section=self.sections - 1,
        )
        self.interfaces.append(info)
        self._clocks.append(Clock.of(ticks_per_second, tsoffset))
        self._linktypes.append(linktype)
        self._linktype_table = None
        section.count += 1
        return None

    def _cut_off(self, buf: memoryview, off: int, at: int, record: int) -> str:
        if len(buf) - off < 8:
            return f"cut off inside a block header at byte {at}"
        btype = self._head.unpack_from(buf, off)[0]
        layout = LAYOUTS.get(btype)
        if layout is not None:
            return f"cut off inside record {record} ({layout.name}) at byte {at}"
        return f"cut off inside {_name(btype)} at byte {at}"


Column = TypeVar("Column", I64, U32, U16)


def _joined(arrays: list[Column]) -> Column:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _first_false(ok: npt.NDArray[np.bool_]) -> int:
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else len(ok)


def _name(btype: int) -> str:
    return BLOCK_NAMES.get(btype, f"block of type 0x{btype:08x}")


def _options(buf: memoryview, start: int, end: int, order: str) -> dict[int, bytes]:
    """The first value of each option in ``buf[start:end]``; damaged options end the list.

    Options are (code u16, length u16, value padded to 4 bytes). A damaged option list only
    costs the interface its name or resolution, so it is not worth refusing the file for.
    """
    head = struct.Struct(order + "HH")
    found: dict[int, bytes] = {}
    p = start
    while p + 4 <= end:
        code, length = head.unpack_from(buf, p)
        p += 4
        if code == OPT_ENDOFOPT or p + length > end:
            break
        found.setdefault(code, bytes(buf[p : p + length]))
        p += (length + 3) & ~3
    return found


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
