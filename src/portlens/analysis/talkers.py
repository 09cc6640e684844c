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

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from portlens.decode.fields import SUB_CARRIER, addr_text
from portlens.decode.packets import PacketBatch

_text = lru_cache(maxsize=1 << 16)(addr_text)
"""Address text, cached: a host is in many conversations (the benchmark capture: 5,696 hosts
in 43,796 conversations)."""


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


PENDING_ROWS = 16384
"""Rows of batches reduced together (``TalkerTable.add``)."""
_COMPACT_EVERY = 32
"""Batches whose per-pair sums are kept apart at least before they are merged (bounds the
memory of pairs that recur batch after batch, with the merged part's size: ``add``)."""
_VOID32 = np.dtype((np.void, 32))


class TalkerTable:
    """Frames and bytes per directed (src, dst) pair of 16-byte addresses."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        """Per batch (merged as ``add`` says): the distinct 32-byte keys (src then dst, in the
        decoder's 16-byte form) and, per key, first frame, packets, bytes, first and last
        time. Batches are reduced with numpy alone: a Python loop over each batch's pairs cost
        1.5 CPU s on the benchmark capture's 2 M packets."""
        self._v4: list[tuple[np.ndarray, ...]] = []
        """The same for pairs of IPv4 addresses, keyed by both in one 64-bit number (exact:
        sorting those is several times faster than hashing and checking 32-byte keys)."""
        self._pairs: dict[bytes, Directed] | None = None
        self._listed: tuple[tuple[np.ndarray, ...], list[str], list[np.ndarray]] | None = None
        """The arrays of directed pairs with their addresses' ids (``_addressed``)."""
        self._convs: tuple[list[str], tuple[np.ndarray, ...]] | None = None
        self.frames = 0
        """IP frames counted (a running counter orders first appearances across batches)."""
        self._pending: list[tuple[np.ndarray, ...]] = []
        """Batches' rows not reduced yet (source, destination, time, length), until
        PENDING_ROWS: a reduction costs about 0.4 ms whatever its size, and a batch of the
        benchmark capture has 1,700 rows."""
        self._pending_rows = 0

    def add(self, batch: PacketBatch) -> None:
        rows = np.flatnonzero((batch.ip_version != 0) & (batch.sub != SUB_CARRIER))
        n = int(rows.size)
        if not n:
            return
        ip = slice(None) if n == len(batch) else rows  # every row: no copies
        self._pending.append((batch.src[ip], batch.dst[ip], batch.ts_ns[ip],
                              batch.wirelen[ip]))
        self._pending_rows += n
        self._pairs = self._listed = self._convs = None
        if self._pending_rows >= PENDING_ROWS:
            self._reduce_pending()

    def _reduce_pending(self) -> None:
        if not self._pending:
            return
        src, dst, stamps, lengths = (np.concatenate(c) if len(self._pending) > 1 else c[0]
                                     for c in zip(*self._pending, strict=True))
        self._pending.clear()
        self._pending_rows = 0
        n = len(src)
        first = np.arange(n, dtype=np.int64) + self.frames
        ts = stamps.astype(np.int64)
        size = lengths.astype(np.int64)
        ones = np.ones(n, dtype=np.int64)
        v4 = _is_v4(src) & _is_v4(dst)
        if v4.all():
            self._v4.append(_reduce(_v4_keys(src, dst), first, ones, size, ts, ts))
        else:
            for parts, rows, keys in (
                    (self._v4, np.flatnonzero(v4), _v4_keys),
                    (self._parts, np.flatnonzero(~v4), _keys32)):
                if rows.size:
                    parts.append(_reduce(keys(src[rows], dst[rows]), first[rows], ones[rows],
                                         size[rows], ts[rows], ts[rows]))
        self.frames += n
        for parts in (self._v4, self._parts):
            # Merged when the batches since the last merge hold as many pairs as the merged
            # part (and are at least _COMPACT_EVERY): a pair is merged again a few times at
            # most, where merging every _COMPACT_EVERY batches re-sorted all pairs each time.
            if (len(parts) > _COMPACT_EVERY
                    and sum(len(p[0]) for p in parts[1:]) >= len(parts[0][0])):
                parts[:] = _merged(parts)

    def _compact(self) -> None:
        self._reduce_pending()
        self._parts, self._v4 = _merged(self._parts), _merged(self._v4)

    @property
    def pairs(self) -> dict[bytes, Directed]:
        """Directed pairs by 32-byte key (src then dst, in the decoder's 16-byte form)."""
        if self._pairs is None:
            keys, first, pkts, size, lo, hi = self._arrays()
            self._pairs = {
                key: Directed(p, b, t0, t1, f)
                for key, f, p, b, t0, t1 in zip(keys.view(_VOID32).ravel().tolist(),
                                                first.tolist(), pkts.tolist(), size.tolist(),
                                                lo.tolist(), hi.tolist(), strict=True)}
        return self._pairs

    def update(self, batches: Iterable[PacketBatch]) -> TalkerTable:
        for b in batches:
            self.add(b)
        return self

    def __add__(self, other: TalkerTable) -> TalkerTable:
        """Merge a table of later frames (its first appearances come after ours)."""
        self._reduce_pending()
        other._reduce_pending()
        out = TalkerTable()
        out.frames = self.frames + other.frames
        for name in ("_parts", "_v4"):
            setattr(out, name, _merged([*getattr(self, name), *(
                (keys, first + self.frames, *rest)
                for keys, first, *rest in getattr(other, name))]))
        return out

    def _addressed(self) -> tuple[tuple[np.ndarray, ...], list[str], list[np.ndarray]]:
        """``_arrays``, the distinct addresses as text in address order and each pair's source
        and destination as indices into them; kept until the next ``add`` (a report lists
        hosts and conversations, and counts both)."""
        if self._listed is None:
            arrays = self._arrays()
            keys = arrays[0]
            self._listed = (arrays, *_address_ids(keys[:, :16], keys[:, 16:]))
        return self._listed

    def _arrays(self) -> tuple[np.ndarray, ...]:
        """The directed pairs as arrays: keys (n×32), first frame, packets, bytes, first and
        last time."""
        self._compact()
        parts = [*self._parts, *((_v4_keys32(keys), *rest) for keys, *rest in self._v4)]
        if len(parts) == 1:
            return parts[0]
        if parts:
            return tuple(np.concatenate(c) for c in zip(*parts, strict=True))
        return (np.zeros((0, 32), np.uint8), *(np.zeros(0, np.int64) for _ in range(5)))

    def conversations(self, by: str = "bytes", top: int | None = None) -> list[Conversation]:
        """Address pairs, A the source of the pair's first frame (module doc), sorted ``by``;
        the first ``top``. Computed on the arrays of directed pairs; objects are made for the
        rows listed only (the benchmark capture has 43,796 conversations, a report lists
        100)."""
        addrs, cols = self._conversations()
        a_id, b_id, pkts_ab, bytes_ab, pkts_ba, bytes_ba, first_ns, _ = cols
        rows = _order(by, bytes_ab + bytes_ba, pkts_ab + pkts_ba, first_ns, (b_id, a_id))[:top]
        return [Conversation(addrs[i], addrs[j], _version(addrs[i]), *rest)
                for i, j, *rest in zip(*(f[rows].tolist() for f in cols), strict=True)]

    def conversation_count(self) -> int:
        return len(self._conversations()[1][0])

    def _conversations(self) -> tuple[list[str], tuple[np.ndarray, ...]]:
        """The addresses (text, in address order) and the conversations' columns: A and B
        (indices into the addresses), packets and bytes each way, first and last time; kept
        until the next ``add``."""
        if self._convs is None:
            self._convs = self._conversation_columns()
        return self._convs

    def _conversation_columns(self) -> tuple[list[str], tuple[np.ndarray, ...]]:
        (_, first, pkts, size, lo, hi), addrs, (src, dst) = self._addressed()
        width = max(len(addrs), 1)
        pair, reverse = src * width + dst, dst * width + src
        # each directed pair's way back: its index, or -1 (none, or a host to itself)
        back = np.full(len(pair), -1, np.int64)
        if len(pair):
            order = np.argsort(pair)
            at = np.minimum(np.searchsorted(pair[order], reverse), len(pair) - 1)
            found = (pair[order[at]] == reverse) & (src != dst)
            back[found] = order[at[found]]
        has = back >= 0
        b = np.where(has, back, 0)
        # listed from the side that spoke first (first frames are distinct: a frame is in one
        # directed pair)
        keep = np.flatnonzero(~has | (first[b] >= first))
        has, b = has[keep], b[keep]
        zero = np.zeros(len(keep), np.int64)
        return addrs, (src[keep], dst[keep], pkts[keep], size[keep],
                       np.where(has, pkts[b], zero), np.where(has, size[b], zero),
                       np.where(has, np.minimum(lo[keep], lo[b]), lo[keep]),
                       np.where(has, np.maximum(hi[keep], hi[b]), hi[keep]))

    def endpoints(self, by: str = "bytes", top: int | None = None) -> list[Endpoint]:
        """Addresses: what each sent and received, and to how many peers, sorted ``by``; the
        first ``top`` (objects only for those)."""
        (_, _, pkts, size, lo, hi), addrs, (src, dst) = self._addressed()
        m = len(addrs)
        tx_pkts, tx_bytes = np.bincount(src, pkts, m), np.bincount(src, size, m)
        rx_pkts, rx_bytes = np.bincount(dst, pkts, m), np.bincount(dst, size, m)
        first_ns = np.full(m, np.iinfo(np.int64).max, np.int64)
        last_ns = np.full(m, np.iinfo(np.int64).min, np.int64)
        for ids in (src, dst):
            np.minimum.at(first_ns, ids, lo)
            np.maximum.at(last_ns, ids, hi)
        # peers: distinct (address, other address) pairs, either way
        both = np.unique(np.concatenate([src * max(m, 1) + dst, dst * max(m, 1) + src]))
        peers = np.bincount(both // max(m, 1), minlength=m)
        tx_pkts, tx_bytes = tx_pkts.astype(np.int64), tx_bytes.astype(np.int64)
        rx_pkts, rx_bytes = rx_pkts.astype(np.int64), rx_bytes.astype(np.int64)
        rows = _order(by, tx_bytes + rx_bytes, tx_pkts + rx_pkts, first_ns,
                      (np.arange(m),))[:top]
        fields = (tx_pkts, tx_bytes, rx_pkts, rx_bytes, peers, first_ns, last_ns)
        return [Endpoint(addrs[i], _version(addrs[i]), *rest)
                for i, *rest in zip(rows.tolist(), *(f[rows].tolist() for f in fields),
                                    strict=True)]

    def endpoint_count(self) -> int:
        return len(self._addressed()[1])


def _version(text: str) -> int:
    return 6 if ":" in text else 4


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of n×32-byte keys grouped: an order of the rows in which equal keys are adjacent
    (each group in row order) and where each group starts in it. Sorted by a 64-bit hash of
    the key (sorting 32-byte keys took 1 CPU s of the benchmark capture's report), every row
    then checked against its group's first key; on a collision, by the keys themselves."""
    words = keys.view(np.uint64)
    hashed = np.bitwise_xor.reduce(words * _MIX, axis=1)
    order = np.argsort(hashed, kind="stable")
    sorted_hashes = hashed[order]
    starts = np.flatnonzero(np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]])
    w = words[order]
    if not (w == np.repeat(w[starts], np.diff(np.r_[starts, len(w)]), axis=0)).all():
        order = np.lexsort(words.T[::-1])  # a 64-bit collision: by the keys' words
        w = words[order]
        starts = np.flatnonzero(np.r_[True, (w[1:] != w[:-1]).any(axis=1)])
    return order, starts


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5], dtype=np.uint64)


def _address_ids(*columns: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """The distinct addresses of n×16 address columns as text, in address order (IPv4 before
    IPv6, then numerically), and each column's rows as indices into them (so an index is
    also the address's rank)."""
    both = np.ascontiguousarray(np.concatenate(columns)) if columns[0].size else np.zeros(
        (0, 16), np.uint8)
    big = both.view(">u8").reshape(-1, 2)  # big-endian words: numeric order is byte order
    v6 = ~((big[:, 0] == 0) & ((big[:, 1] >> np.uint64(32)) == 0xFFFF))
    order = np.lexsort((big[:, 1], big[:, 0], v6))
    s = big[order]
    new = np.r_[True, (s[1:] != s[:-1]).any(axis=1)] if len(s) else np.zeros(0, bool)
    inverse = np.empty(len(both), np.int64)
    inverse[order] = np.cumsum(new) - 1
    firsts = order[new]
    texts = [_text(both[i].tobytes(), 6 if v else 4)
             for i, v in zip(firsts.tolist(), v6[firsts].tolist(), strict=True)]
    cuts = np.cumsum([len(c) for c in columns])[:-1]
    return texts, np.split(inverse, cuts)


def _order(by: str, size: np.ndarray, pkts: np.ndarray, first_ns: np.ndarray,
           names: tuple[np.ndarray, ...]) -> np.ndarray:
    """Rows biggest first (bytes or packets, then the other, then by address), earliest
    first, or by address: ``names`` are the address ranks, least significant first."""
    if by == "bytes":
        keys = (*names, -pkts, -size)
    elif by == "packets":
        keys = (*names, -size, -pkts)
    elif by == "start":
        keys = (*names, first_ns)
    elif by == "address":
        keys = names
    else:
        raise ValueError(f"unknown sort key {by!r}; one of {', '.join(SORT_KEYS)}")
    return np.lexsort(keys) if len(names[0]) else np.zeros(0, np.int64)


def _reduce(keys: np.ndarray, first: np.ndarray, pkts: np.ndarray, size: np.ndarray,
            lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows of keys (n×32 bytes, or n 64-bit IPv4 pairs), each with its first frame, packets,
    bytes, first and last time, reduced to one per distinct key: the earliest first frame,
    packets and bytes summed, the earliest and latest time."""
    if keys.ndim == 1:
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    else:
        order, starts = _group(keys)
    return (keys[order[starts]], np.minimum.reduceat(first[order], starts),
            np.add.reduceat(pkts[order], starts), np.add.reduceat(size[order], starts),
            np.minimum.reduceat(lo[order], starts), np.maximum.reduceat(hi[order], starts))


def _merged(parts: list[tuple[np.ndarray, ...]]) -> list[tuple[np.ndarray, ...]]:
    """Parts (``_reduce``'s) as one."""
    if len(parts) <= 1:
        return list(parts)
    return [_reduce(*(np.concatenate(c) for c in zip(*parts, strict=True)))]


_V4_WORD = np.frombuffer(b"\x00\x00\xff\xff", dtype=np.uint32)[0]
"""The third 32-bit word of an IPv4 address in the decoder's IPv4-mapped 16-byte form."""


def _is_v4(addrs: np.ndarray) -> np.ndarray:
    w = addrs.view(np.uint32)
    return (w[:, 0] == 0) & (w[:, 1] == 0) & (w[:, 2] == _V4_WORD)  # type: ignore[no-any-return]


def _v4_keys(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Pairs of IPv4-mapped addresses as one 64-bit number each (``_v4_keys32`` undoes it)."""
    high = src.view(np.uint32)[:, 3].astype(np.uint64) << np.uint64(32)
    return high | dst.view(np.uint32)[:, 3].astype(np.uint64)  # type: ignore[no-any-return]


def _v4_keys32(keys: np.ndarray) -> np.ndarray:
    out = np.zeros((len(keys), 32), dtype=np.uint8)
    out[:, 10:12] = out[:, 26:28] = 0xFF
    for column, word in ((12, keys >> np.uint64(32)), (28, keys & np.uint64(0xFFFFFFFF))):
        out[:, column:column + 4] = word.astype(np.uint32).view(np.uint8).reshape(-1, 4)
    return out


def _keys32(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([src, dst], axis=1))


__all__ = ["Conversation", "Endpoint", "TalkerTable"]
