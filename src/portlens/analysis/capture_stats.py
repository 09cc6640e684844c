"""What a capture holds, in one mergeable summary: what `capinfos` and `tshark -z io,phs` tell.

Counted by the compiled core when a file is read whole (``from_counts``: the counts of
``portlens._core.PacketScan``, crates/core/src/summary, keyed by raw column values and named
here), or from PacketBatch columns with array reductions (``add``: selected packets, merged
files, live capture, the reference decoder); tests/test_capture_stats.py holds the two equal.
Mergeable with ``+`` so many files or many workers reduce the same way. Every count is
listed most frequent first (ties by name), whatever order the batches came in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portlens.decode.malformed import reason_label
from portlens.decode.tunnels import TUNNEL_NAMES
from portlens.services import proto_name
from portlens.sources import linktypes

if TYPE_CHECKING:
    import numpy.typing as npt

    from portlens.decode.packets import PacketBatch

# numpy and the packet columns are imported by the functions that count PacketBatch columns:
# the compiled core's counts (`packets --stats` of one file, ``from_counts``) need neither.


def link_name(linktype: int | None) -> str:
    """A link type as capinfos names it for people ("ethernet", "raw", "linktype-147")."""
    return "-" if linktype is None else linktypes.name(linktype)


@dataclass
class CaptureStats:
    """Frame, byte, protocol and quality counts of one or more captures."""

    frames: int = 0
    wire_bytes: int = 0
    captured_bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    linktypes: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)
    """Frames by innermost network/transport pair, e.g. ``ipv4/tcp``, ``ipv6/udp``."""
    not_ip: Counter[str] = field(default_factory=Counter)
    """Frames that carry no IP, by what they are (ethertype, PPP protocol, unknown link type)."""
    tunnels: Counter[str] = field(default_factory=Counter)
    vlan_tagged: int = 0
    mpls_labelled: int = 0
    fragments: int = 0
    reassembled: int = 0
    datagrams_timed_out: int = 0
    """Fragmented datagrams dropped incomplete after the reassembly timeout."""
    datagrams_over_cap: int = 0
    """Fragmented datagrams dropped because reassembly held its most (datagrams or bytes)."""
    truncated: int = 0
    bad_ip_checksum: int = 0
    bad_l4_checksum: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    not_decoded: Counter[int] = field(default_factory=Counter)
    """Frames of a link type portlens does not decode, by LINKTYPE_* number."""

    @classmethod
    def from_counts(cls, c: Mapping[str, Any]) -> CaptureStats:
        """The summary of the core's counts (``PacketScan.counts()``): scalars by name,
        tallies by raw key (link type, ``ip_version << 8 | proto``, reason code ...)."""
        out = cls(**{name: c[name] for name in _SCALARS})
        _label(out.linktypes, c["linktypes"], linktypes.name)
        _label(out.protocols, c["protocols"], _protocol_label)
        _label(out.not_ip, c["not_ip"], _not_ip_label)
        _label(out.tunnels, c["tunnels"], _tunnel_label)
        _label(out.malformed, c["malformed"], reason_label)
        out.not_decoded.update({int(t): int(n) for t, n in c["not_decoded"].items()})
        return out

    def add_fragment_counters(self, counters: Mapping[str, int]) -> None:
        """The reassembler's drops (``Decoder.fragment_counters``) of the datagrams read."""
        self.datagrams_timed_out += counters.get("expired", 0)
        self.datagrams_over_cap += counters.get("evicted", 0) + counters.get("evicted_bytes", 0)

    def add(self, b: PacketBatch) -> None:
        import numpy as np

        from portlens.decode.fields import CSUM_BAD, FRAG_COMPLETE, FRAG_PART, SUB_FRAME

        if (b.sub != SUB_FRAME).any():
            b = b.take(b.sub == SUB_FRAME)  # a frame is counted by its own row
        n = len(b)
        if n == 0:
            return
        self.frames += n
        self.wire_bytes += int(b.wirelen.sum(dtype=np.int64))
        self.captured_bytes += int(b.caplen.sum(dtype=np.int64))
        lo, hi = int(b.ts_ns.min()), int(b.ts_ns.max())
        self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
        self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        _count(self.linktypes, b.linktype, linktypes.name)
        ip = b.ip_version > 0
        key = b.ip_version.astype(np.int64) * 256 + b.proto
        _count(self.protocols, key[ip], _protocol_label)
        clean = ~ip & (b.malformed == 0)
        supported = np.isin(b.linktype, list(linktypes.SUPPORTED))
        count_not_decoded(self.not_decoded, b)
        _count(self.not_ip, b.linktype[clean & ~supported], lambda t: f"{linktypes.name(t)}")
        ppp = clean & supported & (b.ppp_proto != 0)
        _count(self.not_ip, b.ppp_proto[ppp], lambda p: f"ppp 0x{p:04x}")
        eth = clean & supported & ~ppp
        _count(self.not_ip, b.ethertype[eth], lambda e: f"ethertype 0x{e:04x}")
        _count(self.tunnels, b.tunnel[b.tunnel_depth > 0], _tunnel_label)
        self.vlan_tagged += int((b.vlan_count > 0).sum())
        self.mpls_labelled += int((b.mpls_count > 0).sum())
        self.fragments += int(((b.frag == FRAG_PART) | (b.frag == FRAG_COMPLETE)).sum())
        self.reassembled += int((b.frag == FRAG_COMPLETE).sum())
        self.truncated += int(b.truncated.sum())
        self.bad_ip_checksum += int((b.ip_csum == CSUM_BAD).sum())
        self.bad_l4_checksum += int((b.l4_csum == CSUM_BAD).sum())
        _count(self.malformed, b.malformed[b.malformed > 0], reason_label)

    def __add__(self, other: CaptureStats) -> CaptureStats:
        out = CaptureStats()
        for name in self.__dataclass_fields__:
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, Counter):
                setattr(out, name, a + b)
            elif name == "first_ns":
                setattr(out, name, _pick(min, a, b))
            elif name == "last_ns":
                setattr(out, name, _pick(max, a, b))
            else:
                setattr(out, name, a + b)
        return out

    @property
    def duration_ns(self) -> int:
        if self.first_ns is None or self.last_ns is None:
            return 0
        return self.last_ns - self.first_ns

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {
            "frames": self.frames,
            "wire_bytes": self.wire_bytes,
            "captured_bytes": self.captured_bytes,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "duration_ns": self.duration_ns,
            "linktypes": _ordered(self.linktypes),
            "protocols": _ordered(self.protocols),
            "not_ip": _ordered(self.not_ip),
            "tunnels": _ordered(self.tunnels),
            "vlan_tagged": self.vlan_tagged,
            "mpls_labelled": self.mpls_labelled,
            "fragments": self.fragments,
            "reassembled_datagrams": self.reassembled,
            "datagrams_timed_out": self.datagrams_timed_out,
            "datagrams_over_cap": self.datagrams_over_cap,
            "truncated": self.truncated,
            "bad_ip_checksum": self.bad_ip_checksum,
            "bad_l4_checksum": self.bad_l4_checksum,
            "malformed": _ordered(self.malformed),
            "not_decoded": {str(t): n for t, n in sorted(self.not_decoded.items())},
        }


_SCALARS = ("frames", "wire_bytes", "captured_bytes", "first_ns", "last_ns", "vlan_tagged",
            "mpls_labelled", "fragments", "reassembled", "truncated", "bad_ip_checksum",
            "bad_l4_checksum")

NOT_IP_LINKTYPE, NOT_IP_PPP, NOT_IP_ETHERTYPE = 0, 1, 2
"""Kinds of the core's ``not_ip`` keys (``kind << 16 | value``), as in summary/capture.rs."""


def _protocol_label(key: int) -> str:
    return f"ipv{key >> 8}/{proto_name(key & 0xFF)}"


def _not_ip_label(key: int) -> str:
    kind, value = key >> 16, key & 0xFFFF
    if kind == NOT_IP_LINKTYPE:
        return linktypes.name(value)
    return f"{'ppp' if kind == NOT_IP_PPP else 'ethertype'} 0x{value:04x}"


def _tunnel_label(packed: int) -> str:
    """The ``tunnel`` column's layers, outermost first: ``gre/vxlan``."""
    kinds = []
    while packed:
        kinds.append(TUNNEL_NAMES.get(packed & 0xF, "?"))
        packed >>= 4
    return "/".join(kinds)


def _label(counter: Counter[str], counts: Mapping[int, int], label: Callable[[int], str]) -> None:
    for key, n in counts.items():
        counter[label(int(key))] += int(n)


def _ordered(counter: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name: the same whichever batches counted them."""
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _pick(f: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return f(a, b)


_BINCOUNT_BELOW = 4096
"""Values below this are counted by np.bincount (protocol keys, link types, reasons)."""


def _count(counter: Counter[str], values: npt.NDArray[Any], label: Callable[[int], str]) -> None:
    import numpy as np

    if values.size == 0:
        return
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high < _BINCOUNT_BELOW:  # small codes: counted without a sort
        counts = np.bincount(values, minlength=0)
        uniq = np.flatnonzero(counts)
        counts = counts[uniq]
    else:
        uniq, counts = np.unique(values, return_counts=True)
    for u, c in zip(uniq.tolist(), counts.tolist(), strict=True):
        counter[label(int(u))] += int(c)


def count_not_decoded(counts: Counter[int], b: PacketBatch) -> None:
    """Add the batch's frames of link types portlens does not decode, by link type."""
    if not len(b):
        return
    lt = b.linktype
    if lt[0] == lt[-1] and lt[0] in linktypes.SUPPORTED and (lt == lt[0]).all():
        return  # the usual case: one supported link type
    import numpy as np

    unknown = ~np.isin(lt, list(linktypes.SUPPORTED))
    for t, n in zip(*np.unique(lt[unknown], return_counts=True), strict=True):
        counts[int(t)] += int(n)


def not_decoded_lines(counts: Counter[int]) -> list[str]:
    """One line per link type: "95 frames of link type 999, not decoded"."""
    out = []
    for t, n in sorted(counts.items()):
        known = linktypes.NAMES.get(t)
        label = f"{t} ({known})" if known else str(t)
        out.append(f"{n:,} frame{'s' if n != 1 else ''} of link type {label}, not decoded")
    return out
