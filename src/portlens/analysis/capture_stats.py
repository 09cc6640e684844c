"""What a capture holds, in one mergeable summary: what `capinfos` and `tshark -z io,phs` tell.

Built from PacketBatch columns with array reductions (no per-packet Python), and mergeable with
``+`` so many files or many workers reduce the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from portlens.decode.malformed import reason_label
from portlens.decode.packets import CSUM_BAD, FRAG_COMPLETE, FRAG_PART, PacketBatch
from portlens.decode.tunnels import TUNNEL_NAMES
from portlens.services import proto_name
from portlens.sources import linktypes


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
    truncated: int = 0
    bad_ip_checksum: int = 0
    bad_l4_checksum: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    not_decoded: Counter[int] = field(default_factory=Counter)
    """Frames of a link type portlens does not decode, by LINKTYPE_* number."""

    def add(self, b: PacketBatch) -> None:
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
        _count(self.protocols, key[ip], lambda k: f"ipv{k >> 8}/{proto_name(k & 0xFF)}")
        clean = ~ip & (b.malformed == 0)
        supported = np.isin(b.linktype, list(linktypes.SUPPORTED))
        count_not_decoded(self.not_decoded, b)
        _count(self.not_ip, b.linktype[clean & ~supported], lambda t: f"{linktypes.name(t)}")
        ppp = clean & supported & (b.ppp_proto != 0)
        _count(self.not_ip, b.ppp_proto[ppp], lambda p: f"ppp 0x{p:04x}")
        eth = clean & supported & ~ppp
        _count(self.not_ip, b.ethertype[eth], lambda e: f"ethertype 0x{e:04x}")
        tunnelled = b.tunnel_depth > 0
        if tunnelled.any():
            for packed in np.unique(b.tunnel[tunnelled]):
                count = int((b.tunnel[tunnelled] == packed).sum())
                kinds = []
                v = int(packed)
                while v:
                    kinds.append(TUNNEL_NAMES.get(v & 0xF, "?"))
                    v >>= 4
                self.tunnels["/".join(kinds)] += count
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
            "linktypes": dict(self.linktypes),
            "protocols": dict(self.protocols.most_common()),
            "not_ip": dict(self.not_ip.most_common()),
            "tunnels": dict(self.tunnels.most_common()),
            "vlan_tagged": self.vlan_tagged,
            "mpls_labelled": self.mpls_labelled,
            "fragments": self.fragments,
            "reassembled_datagrams": self.reassembled,
            "truncated": self.truncated,
            "bad_ip_checksum": self.bad_ip_checksum,
            "bad_l4_checksum": self.bad_l4_checksum,
            "malformed": dict(self.malformed.most_common()),
            "not_decoded": {str(t): n for t, n in sorted(self.not_decoded.items())},
        }


def _pick(f: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return f(a, b)


def _count(counter: Counter[str], values: npt.NDArray[Any], label: Callable[[int], str]) -> None:
    if values.size == 0:
        return
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
