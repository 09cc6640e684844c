"""Joining the connections of flow shards into the connections of one unsharded run.

A tracker names a connection ``uid(serial, ts, key)`` (track/tracker.py ``_uid``, and
crates/core/src/track/ids.rs), where ``serial`` counts the connections it has created so far.
A tracker that keeps one shard of the flows (``TrackerConfig.shard``: a ``--workers``
process, a Dask task) counts only its own, so its uids differ from those of one process
reading everything. Every connection is created by its first packet, a packet belongs to one
shard (the symmetric hash of its outer host pair), and the only connections one packet
creates together are a tunnel's UDP carrier and what it carries (the same host pair, so the
same shard, carrier first). So the order of creation over the whole capture is the order of
(first frame, tunnel depth), and a connection's serial in one unsharded run is its rank in
that order across all shards. ``join_shards`` ranks and renames them (tunnel parents and
transitions too).

The order of the rows is that of one run too. A tracker emits connections where they end
(``Connection.end_frame`` and ``end_phase``: the timers before a frame, the frame itself, the
end of the capture), and those that end at the same place in creation order
(track/model.py ``end_order``); a shard's tracker runs its timers at every packet of every
shard (its clock is the one of a tracker of everything), so its connections end where they
would in one run. Sorting all shards' rows by (where they ended, global serial) is therefore
the order of one run, row for row.

The table key is rebuilt from the connection's fields; before any renaming, every shard's own
uids are rebuilt from their local ranks the same way, so a tracker that numbered differently
is found out (``ShardJoinError``) rather than given wrong uids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from portlens.decode.packets import addr_bytes
from portlens.track.community_id import icmp_ports
from portlens.track.model import Connection, end_order
from portlens.track.tracker import _uid

_PROTO = {"tcp": 6, "udp": 17}


class ShardJoinError(RuntimeError):
    """A shard's uids are not those its creation order gives: the tracker numbers its
    connections in some other way, and the shards cannot be joined exactly."""


def table_key(c: Connection) -> tuple[object, ...]:
    """The tracker's table key of ``c``: (IP protocol, VLAN, then both (address, port) ends,
    the smaller first, except for one-way ICMP messages, sender first; unknown_transport
    connections have ports 0)."""
    l4 = c.ip_proto if c.ip_proto is not None else (
        _PROTO.get(c.proto) or (58 if c.ip_version == 6 else 1))
    a = (addr_bytes(c.orig_h), c.orig_p)
    b = (addr_bytes(c.resp_h), c.resp_p)
    if c.proto == "icmp" and icmp_ports(c.orig_p, c.resp_p, v6=l4 == 58)[2]:
        return (l4, c.vlan, *a, *b)
    return (l4, c.vlan, *(a + b if a <= b else b + a))


def _creation_order(conns: Sequence[Connection]) -> list[tuple[int, int, int]]:
    """(first frame, tunnel depth, index) of each connection, sorted: creation order."""
    by_uid = {c.uid: c for c in conns}
    depth: dict[str, int] = {}

    def depth_of(c: Connection) -> int:
        d = depth.get(c.uid)
        if d is None:
            parents = [by_uid[u] for u in c.tunnel_parents if u in by_uid and u != c.uid]
            d = 1 + max(depth_of(p) for p in parents) if parents else 0
            depth[c.uid] = d
        return d

    return sorted((c.first_frame, depth_of(c), i) for i, c in enumerate(conns))


def join_shards(shards: Sequence[Sequence[Connection]]) -> list[Connection]:
    """The connections of all shards with the uids of one unsharded run, in its order (where
    they ended, then creation). Raises ShardJoinError when a shard's own numbering cannot be
    reproduced."""
    ranked: list[tuple[int, int, int, int]] = []  # (frame, depth, shard, index in shard)
    for k, conns in enumerate(shards):
        order = _creation_order(conns)
        for serial, (frame, depth, i) in enumerate(order, 1):
            c = conns[i]
            if _uid(serial, c.ts_ns, table_key(c)) != c.uid:
                raise ShardJoinError(
                    f"shard {k}: connection {c.uid} is not the one created {serial}th "
                    "(the tracker numbers connections differently); shards cannot be joined")
            ranked.append((frame, depth, k, i))
    ranked.sort()
    renamed: list[dict[str, str]] = [{} for _ in shards]
    ended = []
    for serial, (_, _, k, i) in enumerate(ranked, 1):
        c = shards[k][i]
        renamed[k][c.uid] = _uid(serial, c.ts_ns, table_key(c))
        ended.append((end_order(c), serial, k, i))
    ended.sort()
    out = []
    for _, _, k, i in ended:
        c = shards[k][i]
        names = renamed[k]
        uid = names[c.uid]
        out.append(replace(
            c, uid=uid, tunnel_parents=sorted(names.get(u, u) for u in c.tunnel_parents),
            transitions=[replace(t, uid=uid) if t.uid == c.uid else t for t in c.transitions]))
    return out


def joined(shards: Sequence[Sequence[Connection]], on_error: Callable[[str], None]
           ) -> list[Connection]:
    """``join_shards``, or, when a shard's numbering cannot be reproduced, the shards' rows as
    they are (with their own uids) and one line to ``on_error``: the counts stay right, the
    uids are said to be off, and the run ends with status 2."""
    try:
        return join_shards(shards)
    except ShardJoinError as exc:
        on_error(f"{exc}; the rows keep the shards' own uids")
        return [c for part in shards for c in part]
