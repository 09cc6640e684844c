"""IP fragment reassembly of the reference decoder (crates/core/src/decode/fragments.rs is its
compiled twin).

Decoders decode each frame on its own (a first fragment gets its transport header decoded like
any packet) and report every fragment as a FragmentRecord; the Reassembler then rewrites the
fragment rows of the batch as docs/decoding.md (*Fragments*) describes. Fragments are rare, so
this runs per fragment in Python; it keeps state across batches so a datagram split over two
batches still completes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portlens.decode.fields import CSUM_UNVERIFIED, FRAG_COMPLETE, FRAG_PART
from portlens.decode.packets import PacketBatch

TRANSPORT_COLUMNS = (
    "l4", "sport", "dport", "tcp_flags", "seq", "ack", "tcp_hlen", "win", "urp", "mss",
    "wscale", "sack_perm", "has_ts", "tsval", "tsecr", "sack_count", "sack", "opt_count",
    "opt_kinds", "udp_len", "icmp_type", "icmp_code", "icmp_id", "q_valid", "q_src", "q_dst",
    "q_proto", "q_sport", "q_dport", "proto",
)
"""Columns a first fragment's row holds for the whole datagram."""

FRAGMENT_TIMEOUT_NS = 60 * 10**9
MAX_DATAGRAMS = 4096


@dataclass(frozen=True, slots=True)
class FragmentRecord:
    """One fragment as a decoder saw it."""

    row: int
    """Row index in the batch."""
    key: bytes
    """version + src16 + dst16 + protocol + identification (4 bytes): the datagram."""
    offset: int
    """Byte offset of this fragment's data within the datagram's fragmentable part."""
    length: int
    """Bytes of fragment data it carries, from header lengths."""
    more: bool
    """MF (IPv4) / M (IPv6) flag: more fragments follow."""
    unfrag_len: int
    """IPv4: IHL*4; IPv6: 40 + extension headers before the fragment header."""


@dataclass(slots=True)
class _Datagram:
    first_ts: int
    covered: list[tuple[int, int]] = field(default_factory=list)
    total: int | None = None
    frames: int = 0
    unfrag_len: int = 0
    first: dict[str, Any] | None = None
    waiting_rows: list[int] = field(default_factory=list)
    """Part rows of the current batch still waiting for their ports."""

    def cover(self, start: int, stop: int) -> None:
        spans = sorted([*self.covered, (start, stop)])
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.covered = merged

    @property
    def complete(self) -> bool:
        return (self.total is not None and self.first is not None
                and len(self.covered) == 1 and self.covered[0][0] == 0
                and self.covered[0][1] >= self.total)


class Reassembler:
    """Datagrams in progress, keyed by FragmentRecord.key; bounded in count and age."""

    def __init__(self, timeout_ns: int = FRAGMENT_TIMEOUT_NS,
                 max_datagrams: int = MAX_DATAGRAMS) -> None:
        self.timeout_ns = timeout_ns
        self.max_datagrams = max_datagrams
        self.pending: OrderedDict[bytes, _Datagram] = OrderedDict()
        self.completed = 0
        self.expired = 0
        """Datagrams dropped incomplete after ``timeout_ns``."""
        self.evicted = 0
        """Datagrams dropped (the oldest) because ``max_datagrams`` were held."""

    def apply(self, batch: PacketBatch, records: list[FragmentRecord]) -> None:
        """Rewrite the fragment rows of ``batch`` (records in row order)."""
        for d in self.pending.values():
            d.waiting_rows.clear()
        for rec in records:
            self._one(batch, rec)

    def _one(self, batch: PacketBatch, rec: FragmentRecord) -> None:
        row = rec.row
        now = int(batch.ts_ns[row])
        self._expire(now)
        d = self.pending.get(rec.key)
        if d is None:
            d = _Datagram(first_ts=now)
            self.pending[rec.key] = d
            if len(self.pending) > self.max_datagrams:
                self.pending.popitem(last=False)
                self.evicted += 1
        d.frames += 1
        if rec.offset == 0 and d.first is None:
            d.first = {name: _copy(getattr(batch, name)[row]) for name in TRANSPORT_COLUMNS}
            d.unfrag_len = rec.unfrag_len
        if not rec.more:
            d.total = rec.offset + rec.length
        if rec.length > 0:
            d.cover(rec.offset, rec.offset + rec.length)
        batch.frag[row] = FRAG_PART
        batch.l4[row] = 0
        batch.payload[row] = -1
        batch.l4_csum[row] = CSUM_UNVERIFIED if batch.l4_csum[row] else 0
        d.waiting_rows.append(row)
        if d.complete:
            self._complete(batch, row, d)
            del self.pending[rec.key]
            self.completed += 1
        elif d.first is not None:
            self._attribute(batch, d)

    def _attribute(self, batch: PacketBatch, d: _Datagram) -> None:
        assert d.first is not None
        for r in d.waiting_rows:
            batch.sport[r] = d.first["sport"]
            batch.dport[r] = d.first["dport"]
        d.waiting_rows.clear()

    def _complete(self, batch: PacketBatch, row: int, d: _Datagram) -> None:
        assert d.first is not None and d.total is not None
        for name, value in d.first.items():
            getattr(batch, name)[row] = value
        total = d.total
        l4 = int(d.first["l4"])
        batch.frag[row] = FRAG_COMPLETE
        batch.frag_count[row] = min(d.frames, 0xFFFF)
        batch.ip_len[row] = d.unfrag_len + total
        if l4 == 6:
            payload = total - int(d.first["tcp_hlen"])
        elif l4 == 17:
            ulen = int(d.first["udp_len"])
            payload = ulen - 8 if 8 <= ulen <= total else total - 8
        elif l4 in (1, 58):
            payload = max(total - 8, 0)
        else:
            payload = -1
        batch.payload[row] = payload
        batch.l4_csum[row] = CSUM_UNVERIFIED if l4 else 0
        d.waiting_rows.remove(row)
        self._attribute(batch, d)

    def _expire(self, now: int) -> None:
        while self.pending:
            key, d = next(iter(self.pending.items()))
            if now - d.first_ts <= self.timeout_ns:
                return
            del self.pending[key]
            self.expired += 1


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value
