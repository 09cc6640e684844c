"""Ladders of many connections from one more pass over the capture: the HTML report's.

`portlens ladder` reads the capture once per connection (analysis/ladder.py); a report that
offers a ladder for each of hundreds of connections cannot. Here one pass keeps only the rows
whose address pair (inner, or the outer one of a UDP tunnel's carrier) is the pair of a chosen
connection, and each chosen connection then takes its own rows from those with the ladder's
own ``select_packets``, so its ladder is the one `portlens ladder --conn UID` draws. The pass
ends at the last packet time of the chosen connections (they tend to be early ones: each group
gives its earliest first).

A page cannot hold the ladders of every connection of a big capture (tens of thousands, several
MB even compressed), so :func:`pick` chooses at most ``limit``: the outcomes take turns,
troubled ones first (a reader opens the ladder of a refused or reset connection more often than
of one that went well), and within an outcome its server ports take turns, so that every kind
of connection has examples; the earliest connection of a group comes first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from portlens.analysis.ladder import Ladder, build, select_packets
from portlens.analysis.ports import outcome
from portlens.decode.fields import addr_bytes
from portlens.decode.packets import PacketBatch
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection

PICK_ORDER = ("refused", "reset", "unanswered", "half_open", "open", "mid_stream", "one_way",
              "completed")
"""Outcomes whose groups are served first when the budget is short: the connections a reader
most often opens a ladder for."""


def pick(conns: Sequence[Connection], limit: int) -> list[Connection]:
    """At most ``limit`` connections, all of them when there are no more (in ``conns``' order);
    otherwise the outcomes take turns (troubled ones first), and within an outcome the
    (protocol, server port) groups take turns, earliest connection first."""
    if limit <= 0:
        return []
    if len(conns) <= limit:
        return list(conns)
    rows = pick_rows([outcome(c) for c in conns], [c.proto for c in conns],
                     np.fromiter((c.resp_p for c in conns), np.int64, len(conns)),
                     np.fromiter((c.ts_ns for c in conns), np.int64, len(conns)), limit)
    return [conns[i] for i in rows]


def pick_rows(outcomes: Sequence[str], protos: Sequence[str], resp_p: np.ndarray,
              ts_ns: np.ndarray, limit: int) -> list[int]:
    """:func:`pick` of connections given by column (their outcome, proto, server port and
    start): the row numbers, in the order picked. The rows are sorted once by (outcome rank,
    proto, port, start, row); a row's turn within its outcome is (its depth in its group, the
    group's rank), and across outcomes (its turn within its outcome, the outcome's rank), as
    round robins over the queues give them."""
    n = len(outcomes)
    if limit <= 0:
        return []
    if n <= limit:
        return list(range(n))
    ranks = {o: i for i, o in enumerate(PICK_ORDER)}
    rank = np.fromiter((ranks.get(o, len(PICK_ORDER)) for o in outcomes), np.int64, n)
    names = {p: i for i, p in enumerate(sorted(set(protos)))}
    proto = np.fromiter((names[p] for p in protos), np.int64, n)
    port = np.asarray(resp_p, dtype=np.int64)
    order = np.lexsort((np.arange(n), np.asarray(ts_ns, dtype=np.int64), port, proto, rank))
    r, p, q = rank[order], proto[order], port[order]
    new_group = np.r_[True, (r[1:] != r[:-1]) | (p[1:] != p[:-1]) | (q[1:] != q[:-1])]
    group = np.cumsum(new_group) - 1
    depth = np.arange(n) - np.flatnonzero(new_group)[group]
    new_outcome = np.r_[True, r[1:] != r[:-1]]
    first_group = group[np.flatnonzero(new_outcome)][np.cumsum(new_outcome) - 1]
    turns = np.lexsort((group - first_group, depth, r))  # by outcome, then turn
    ro = r[turns]
    starts = np.flatnonzero(np.r_[True, ro[1:] != ro[:-1]])
    turn = np.arange(n) - starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
    final = np.lexsort((ro, turn))
    return order[turns[final]][:limit].tolist()  # type: ignore[no-any-return]


def _pair_keys(conns: Iterable[Connection]) -> dict[bytes, int]:
    """32-byte (src, dst) keys of each connection's address pair, both ways -> pair number."""
    keys: dict[bytes, int] = {}
    for c in conns:
        a, b = addr_bytes(c.orig_h), addr_bytes(c.resp_h)
        pid = keys.setdefault(a + b, len(keys))
        keys.setdefault(b + a, pid)
    return keys


def _void(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = np.ascontiguousarray(np.concatenate([a, b], axis=1))
    return both.view(np.dtype((np.void, 32))).ravel()


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5], dtype=np.uint64)


def _hashed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's (a, b) address pair: membership in a sorted uint64 array
    is several times faster than in 32-byte keys. A collision only keeps a row too many;
    select_packets then takes each connection's rows exactly."""
    words = np.ascontiguousarray(np.concatenate([a, b], axis=1)).view(np.uint64)
    return np.bitwise_xor.reduce(words * _MIX, axis=1)  # type: ignore[no-any-return]


def _wanted(pairs: dict[bytes, int]) -> np.ndarray:
    """The sorted hashes of ``_pair_keys``' keys."""
    raw = np.frombuffer(b"".join(pairs), dtype=np.uint8).reshape(-1, 32)
    return np.unique(_hashed(raw[:, :16], raw[:, 16:]))


class PairFrames:
    """Which frames hold rows of which address pairs, as ``ladders`` keeps rows (the pair, or
    a tunnelled row's outer pair; by hash): recorded while the report's first pass reads the
    packets, so that once the connections are chosen the ladders' pass decodes only the
    frames that can hold theirs (pipeline/report.py). Reading and decoding every frame again
    took 1.5 CPU s of the benchmark capture's report; the frames are a few percent.

    A row takes 8 bytes, kept per batch: its frame as an offset from the batch's first (a
    batch spans a few thousand frames) and its pair's hash folded to 32 bits (a collision
    only decodes a frame too many). 16 bytes a row, joined into one array when asked, took
    96 MB of the 6M-packet benchmark capture's report, and twice that at the join."""

    def __init__(self) -> None:
        self._parts: list[tuple[int, np.ndarray, np.ndarray]] = []

    def add(self, b: PacketBatch) -> None:
        if not len(b):
            return
        self._add(b.frame, b.src, b.dst)
        tunnelled = np.flatnonzero(b.tunnel_depth > 0)
        if tunnelled.size:
            self._add(b.frame[tunnelled], b.out_src[tunnelled], b.out_dst[tunnelled])

    def _add(self, frames: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
        first = int(frames.min())
        offsets = frames.astype(np.int64) - first
        narrow = int(offsets.max()) <= 0xFFFFFFFF  # a batch of one file: always
        self._parts.append((first, offsets.astype(np.uint32) if narrow else offsets,
                            _folded(_hashed(src, dst))))

    def frames(self, conns: Iterable[Connection]) -> np.ndarray:
        """The numbers of the frames with a row of ``conns``' address pairs, sorted."""
        wanted = np.unique(_folded(_wanted(_pair_keys(conns))))
        if not len(wanted) or not self._parts:
            return np.zeros(0, np.int64)
        # a few hundred pairs against millions of rows: the rows whose low 16 bits are some
        # pair's first (one lookup each), then a binary search for those
        low = np.zeros(1 << 16, dtype=bool)
        low[(wanted & np.uint32(0xFFFF)).astype(np.intp)] = True
        found = []
        for first, offsets, hashes in self._parts:
            maybe = np.flatnonzero(low[(hashes & np.uint32(0xFFFF)).astype(np.intp)])
            if not maybe.size:
                continue
            at = np.minimum(np.searchsorted(wanted, hashes[maybe]), len(wanted) - 1)
            hit = maybe[wanted[at] == hashes[maybe]]
            if hit.size:
                found.append(first + offsets[hit].astype(np.int64))
        if not found:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate(found))


def _folded(hashes: np.ndarray) -> np.ndarray:
    """64-bit pair hashes folded to 32 bits (PairFrames)."""
    return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)  # type: ignore[no-any-return]


def ladders(conns: Sequence[Connection], batches: Iterable[PacketBatch],
            config: TrackerConfig | None = None) -> dict[str, Ladder]:
    """The ladder of each of ``conns`` (by uid), from one pass over ``batches``."""
    if not conns:
        return {}
    pairs = _pair_keys(conns)
    wanted = _wanted(pairs)
    until = max(max(c.last_ns, c.ts_ns) for c in conns)
    kept: list[PacketBatch] = []
    for b in batches:
        if not len(b):
            continue
        if int(b.ts_ns.min()) > until:
            break  # past the last packet of every connection: the rest need not be read
        rows = np.isin(_hashed(b.src, b.dst), wanted)
        tunnelled = b.tunnel_depth > 0
        if tunnelled.any():
            rows |= tunnelled & np.isin(_hashed(b.out_src, b.out_dst), wanted)
        if rows.any():
            kept.append(b.take(np.flatnonzero(rows)))
    rows_of: dict[int, list[np.ndarray]] = defaultdict(list)
    if kept:
        big = PacketBatch.concat(kept)
        del kept
        for src, dst, only in ((big.src, big.dst, None), (big.out_src, big.out_dst,
                                                          big.tunnel_depth > 0)):
            keys = _void(src, dst)
            uniq, inverse = np.unique(keys, return_inverse=True)
            inverse = inverse.ravel()
            for i, key in enumerate(uniq.tolist()):
                pid = pairs.get(bytes(key))
                if pid is None:
                    continue
                match = inverse == i
                if only is not None:
                    match &= only
                rows_of[pid].append(np.flatnonzero(match))
    else:
        big = PacketBatch.concat([])
    out: dict[str, Ladder] = {}
    for c in conns:
        pid = pairs[addr_bytes(c.orig_h) + addr_bytes(c.resp_h)]
        parts = rows_of.get(pid)
        rows = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.intp)
        packets = select_packets([big.take(rows)], c)
        out[c.uid] = build(c, packets, config)
    return out
