"""Top talkers: IP conversations and IP endpoints, tshark's ``-z conv,ip`` and
``-z endpoints,ip`` (IPv4 and IPv6 together), from packets rather than connections.

Every decoded IP frame counts once, with its length on the wire (tshark's "Bytes": frame
length, not IP length), whatever its transport: GRE, ESP and fragments included, and frames
that belong to no connection. A conversation is an unordered address pair; its address A is
the source of the first frame seen between the two (B the other), so "A>B" reads as "from who
spoke first". An endpoint is one address: what it sent (tx) and received (rx); as in tshark,
a frame from an address to itself (loopback) is both, so its packets count twice.

The addresses are the innermost IP layer's, the one the -f filter and the tracker see: a frame
in a GRE or IP-in-IP tunnel counts for the inner hosts only, where tshark counts it for the
outer pair as well (it taps every IP layer); a middle tunnel carrier's row is no packet of its
own. The packets of an A-MSDU's subframes count each, with the frame's length, as tshark's
taps of their IP layers do.

Aggregation is columnar: per batch, rows are grouped by their 32-byte (src, dst) key with
numpy; only the distinct pairs of a batch reach Python. Tables merge with ``+`` like the
other summaries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from portlens.decode.packets import SUB_CARRIER, PacketBatch, addr_text

_text = lru_cache(maxsize=1 << 16)(addr_text)
"""Address text, cached: a host is in many conversations (the benchmark capture: 5,696 hosts
in 43,796 conversations)."""


@lru_cache(maxsize=1 << 16)
def _address_key(text: str) -> tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """IPv4 before IPv6, then numerically."""
    ip = ipaddress.ip_address(text)
    return ip.version, ip


@dataclass
class Directed:
    """Frames from one address to another."""

    pkts: int = 0
    bytes: int = 0
    first_ns: int = 0
    last_ns: int = 0
    first_frame: int = 0
    """Order of first appearance (a global frame counter), to tell A from B."""


@dataclass(frozen=True)
class Conversation:
    a: str
    b: str
    ip_version: int
    pkts_ab: int
    bytes_ab: int
    pkts_ba: int
    bytes_ba: int
    first_ns: int
    last_ns: int

    @property
    def pkts(self) -> int:
        return self.pkts_ab + self.pkts_ba

    @property
    def bytes(self) -> int:
        return self.bytes_ab + self.bytes_ba

    @property
    def duration_ns(self) -> int:
        return self.last_ns - self.first_ns

    def record(self) -> dict[str, Any]:
        """Exact values (fields in docs/formats.md, "convs")."""
        return {"a": self.a, "b": self.b, "ip_version": self.ip_version,
                "pkts_ab": self.pkts_ab, "bytes_ab": self.bytes_ab, "pkts_ba": self.pkts_ba,
                "bytes_ba": self.bytes_ba, "pkts": self.pkts, "bytes": self.bytes,
                "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns,
                "duration_ns": self.duration_ns}


@dataclass(frozen=True)
class Endpoint:
    addr: str
    ip_version: int
    tx_pkts: int
    tx_bytes: int
    rx_pkts: int
    rx_bytes: int
    peers: int
    first_ns: int
    last_ns: int

    @property
    def pkts(self) -> int:
        return self.tx_pkts + self.rx_pkts

    @property
    def bytes(self) -> int:
        return self.tx_bytes + self.rx_bytes

    def record(self) -> dict[str, Any]:
        """Exact values (fields in docs/formats.md, "hosts")."""
        return {"addr": self.addr, "ip_version": self.ip_version, "pkts": self.pkts,
                "bytes": self.bytes, "tx_pkts": self.tx_pkts, "tx_bytes": self.tx_bytes,
                "rx_pkts": self.rx_pkts, "rx_bytes": self.rx_bytes, "peers": self.peers,
                "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns}


SORT_KEYS = ("bytes", "packets", "start", "address")


_COMPACT_EVERY = 32
"""Batches whose per-pair sums are kept apart before they are merged (bounds the memory of
pairs that recur batch after batch)."""
_VOID32 = np.dtype((np.void, 32))


class TalkerTable:
    """Frames and bytes per directed (src, dst) pair of 16-byte addresses."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        """Per batch (merged every _COMPACT_EVERY): the distinct 32-byte keys (src then dst, in
        the decoder's 16-byte form) and, per key, first frame, packets, bytes, first and last
        time. Batches are reduced with numpy alone: a Python loop over each batch's pairs cost
        1.5 CPU s on the benchmark capture's 2 M packets."""
        self._pairs: dict[bytes, Directed] | None = None
        self.frames = 0
        """IP frames counted (a running counter orders first appearances across batches)."""

    def add(self, batch: PacketBatch) -> None:
        ip = np.flatnonzero((batch.ip_version != 0) & (batch.sub != SUB_CARRIER))
        if not ip.size:
            return
        keys = np.ascontiguousarray(np.concatenate([batch.src[ip], batch.dst[ip]], axis=1))
        void = keys.view(_VOID32).ravel()
        uniq, first, inverse = np.unique(void, return_index=True, return_inverse=True)
        self._parts.append(_reduce(uniq, inverse.ravel(), first + self.frames,
                                   np.ones(ip.size, dtype=np.int64),
                                   batch.wirelen[ip].astype(np.int64),
                                   batch.ts_ns[ip].astype(np.int64),
                                   batch.ts_ns[ip].astype(np.int64)))
        self._pairs = None
        self.frames += int(ip.size)
        if len(self._parts) >= _COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) <= 1:
            return
        keys, first, pkts, size, lo, hi = (np.concatenate(c) for c in zip(*self._parts,
                                                                          strict=True))
        uniq, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.ravel()
        firsts = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(firsts, inverse, first)
        self._parts = [_reduce(uniq, inverse, firsts, pkts, size, lo, hi)]

    @property
    def pairs(self) -> dict[bytes, Directed]:
        """Directed pairs by 32-byte key (src then dst, in the decoder's 16-byte form)."""
        if self._pairs is None:
            self._compact()
            out: dict[bytes, Directed] = {}
            if self._parts:
                keys, first, pkts, size, lo, hi = self._parts[0]
                for key, f, p, b, t0, t1 in zip(keys.tolist(), first.tolist(), pkts.tolist(),
                                                size.tolist(), lo.tolist(), hi.tolist(),
                                                strict=True):
                    out[key] = Directed(p, b, t0, t1, f)
            self._pairs = out
        return self._pairs

    def update(self, batches: Iterable[PacketBatch]) -> TalkerTable:
        for b in batches:
            self.add(b)
        return self

    def __add__(self, other: TalkerTable) -> TalkerTable:
        """Merge a table of later frames (its first appearances come after ours)."""
        self._compact()
        other._compact()
        out = TalkerTable()
        out.frames = self.frames + other.frames
        out._parts = [*self._parts, *(
            (keys, first + self.frames, *rest) for keys, first, *rest in other._parts)]
        out._compact()
        return out

    def conversations(self, by: str = "bytes", top: int | None = None) -> list[Conversation]:
        out = []
        for key, d in self.pairs.items():
            src, dst = key[:16], key[16:]
            back = self.pairs.get(dst + src)
            if back is not None and (back.first_frame, dst) < (d.first_frame, src):
                continue  # listed from the other side, which spoke first
            if src == dst:
                back = None  # a host talking to itself: one direction
            version = 4 if src[:12] == bytes(10) + b"\xff\xff" else 6
            e = back or Directed(first_ns=d.first_ns, last_ns=d.last_ns)
            out.append(Conversation(
                _text(src, version), _text(dst, version), version, d.pkts, d.bytes,
                e.pkts, e.bytes, min(d.first_ns, e.first_ns), max(d.last_ns, e.last_ns)))
        return _sorted(out, by, top, lambda c: (c.a, c.b))

    def endpoints(self, by: str = "bytes", top: int | None = None) -> list[Endpoint]:
        tx: dict[bytes, list[int]] = {}
        peers: dict[bytes, set[bytes]] = {}
        for key, d in self.pairs.items():
            src, dst = key[:16], key[16:]
            for addr, offset, peer in ((src, 0, dst), (dst, 2, src)):
                slot = tx.setdefault(addr, [0, 0, 0, 0, d.first_ns, d.last_ns])
                slot[offset] += d.pkts
                slot[offset + 1] += d.bytes
                slot[4] = min(slot[4], d.first_ns)
                slot[5] = max(slot[5], d.last_ns)
                peers.setdefault(addr, set()).add(peer)
        out = []
        for addr, (tp, tb, rp, rb, first, last) in tx.items():
            version = 4 if addr[:12] == bytes(10) + b"\xff\xff" else 6
            out.append(Endpoint(_text(addr, version), version, tp, tb, rp, rb,
                                len(peers[addr]), first, last))
        return _sorted(out, by, top, lambda e: (e.addr,))


def _reduce(uniq: np.ndarray, inverse: np.ndarray, first: np.ndarray, pkts: np.ndarray,
            size: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows grouped by ``inverse`` into ``uniq``'s keys (``first``: each key's first frame):
    packets and bytes summed, earliest and latest time."""
    n = len(uniq)
    low = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    high = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(low, inverse, lo)
    np.maximum.at(high, inverse, hi)
    return (uniq, first.astype(np.int64),
            np.bincount(inverse, weights=pkts, minlength=n).astype(np.int64),
            np.bincount(inverse, weights=size, minlength=n).astype(np.int64), low, high)


def _sorted(rows: list[Any], by: str, top: int | None, name: Any) -> list[Any]:
    """Biggest first (bytes or packets, then by address), earliest first, or by address (IPv4
    before IPv6, numerically)."""
    def addr_key(r: Any) -> tuple[Any, ...]:
        return tuple(_address_key(a) for a in name(r))

    if by == "bytes":
        _sort_ties_by_address(rows, lambda r: (-r.bytes, -r.pkts), addr_key)
    elif by == "packets":
        _sort_ties_by_address(rows, lambda r: (-r.pkts, -r.bytes), addr_key)
    elif by == "start":
        rows.sort(key=lambda r: (r.first_ns, addr_key(r)))
    elif by == "address":
        rows.sort(key=addr_key)
    else:
        raise ValueError(f"unknown sort key {by!r}; one of {', '.join(SORT_KEYS)}")
    return rows[:top] if top is not None else rows


def _sort_ties_by_address(rows: list[Any], primary: Any, addr_key: Any) -> None:
    """Sort by ``(primary(r), addr_key(r))``, computing the address key (which parses the
    addresses: slow on tens of thousands of rows) only for rows whose primary keys tie."""
    rows.sort(key=primary)
    start = 0
    while start < len(rows):
        key = primary(rows[start])
        end = start + 1
        while end < len(rows) and primary(rows[end]) == key:
            end += 1
        if end - start > 1:
            rows[start:end] = sorted(rows[start:end], key=addr_key)
        start = end


__all__ = ["Conversation", "Endpoint", "TalkerTable"]
