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
from portlens.decode.packets import PacketBatch, addr_bytes
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
    by_outcome: dict[int, dict[tuple[str, int], list[Connection]]] = defaultdict(
        lambda: defaultdict(list))
    for c in conns:
        o = outcome(c)
        rank = PICK_ORDER.index(o) if o in PICK_ORDER else len(PICK_ORDER)
        by_outcome[rank][(c.proto, c.resp_p)].append(c)
    queues = [_turns([sorted(g, key=lambda c: c.ts_ns) for _, g in sorted(groups.items())])
              for _, groups in sorted(by_outcome.items())]
    return _turns(queues)[:limit]


def _turns(queues: list[list[Connection]]) -> list[Connection]:
    """The queues' heads, then their second items, and so on (round robin)."""
    out: list[Connection] = []
    depth = 0
    while True:
        row = [q[depth] for q in queues if depth < len(q)]
        if not row:
            return out
        out.extend(row)
        depth += 1


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


def ladders(conns: Sequence[Connection], batches: Iterable[PacketBatch],
            config: TrackerConfig | None = None) -> dict[str, Ladder]:
    """The ladder of each of ``conns`` (by uid), from one pass over ``batches``."""
    if not conns:
        return {}
    pairs = _pair_keys(conns)
    raw = np.frombuffer(b"".join(pairs), dtype=np.uint8).reshape(-1, 32)
    wanted = np.unique(_hashed(raw[:, :16], raw[:, 16:]))
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
