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

from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache

from portlens.decode.fields import addr_bytes
from portlens.track.community_id import icmp_ports
from portlens.track.model import Connection, end_order
from portlens.track.tracker import _uid

_PROTO = {"tcp": 6, "udp": 17}
_addr_bytes = lru_cache(maxsize=65536)(addr_bytes)
"""Addresses come back again and again (a host's connections)."""
CARRIER_PORTS = frozenset({4789, 6081, 3544, 2152, 2123, 5072, 4754})
"""UDP ports whose datagrams the decoder opens as tunnels (crates/core/src/wire/tunnel.rs
``udp_tunnel``: VXLAN, Geneve, Teredo, GTP-U and GTP-C, AYIYA, GRE in UDP)."""


class ShardJoinError(RuntimeError):
    """A shard's uids are not those its creation order gives: the tracker numbers its
    connections in some other way, and the shards cannot be joined exactly."""


def table_key(c: Connection) -> tuple[object, ...]:
    """The tracker's table key of ``c``: (IP protocol, VLAN, then both (address, port) ends,
    the smaller first, except for one-way ICMP messages, sender first; unknown_transport
    connections have ports 0)."""
    l4 = c.ip_proto if c.ip_proto is not None else (
        _PROTO.get(c.proto) or (58 if c.ip_version == 6 else 1))
    a = (_addr_bytes(c.orig_h), c.orig_p)
    b = (_addr_bytes(c.resp_h), c.resp_p)
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


class ShardMerge:
    """The rows of flow shards that stream in as they end, merged into the rows of one run
    as soon as that is safe, so that a sharded run holds only what is in flight.

    Each shard sends its connections in its own end order, and with each batch the first
    frames of the connections it created (``created_frames``) and the last frame it has
    tracked (its watermark). A connection that ended at frame F is in its place once every
    shard has passed F: nothing any shard sends later ends before it. Its serial in one run
    is then known too: its rank in its own shard (found by rebuilding its uid, as
    ``join_shards`` checks it) plus the connections the other shards created at earlier
    frames (they are counted, since they have passed F, and it was created by F). What is
    kept besides the rows in flight: 8 bytes per connection created (the first frames), and
    the new names of UDP tunnel carriers (``CARRIER_PORTS``). A row whose tunnel
    carrier is still open waits for it (and the rows after it with it: a carrier open for the
    whole capture holds back every row after the first it carried, as the join of whole
    shards would); so does one inside an IP tunnel (GRE, IP-in-IP, whose tunnel is no
    connection and never comes) until its shard is done."""

    def __init__(self, shards: int) -> None:
        self.n = shards
        self.created = [array("q") for _ in range(shards)]
        self.pending: list[deque[Connection]] = [deque() for _ in range(shards)]
        self.by_uid: list[dict[str, Connection]] = [{} for _ in range(shards)]
        """The rows in flight by their shard's uid (to rename tunnel parents)."""
        self.names: list[dict[str, str]] = [{} for _ in range(shards)]
        """A shard's uid -> one run's uid, for the tunnel carriers named so far."""
        self.watermark = [-1] * shards
        self.finished = [False] * shards
        self.serials: dict[tuple[int, str], tuple[int, tuple[object, ...]]] = {}
        """Serials in one run (and table keys) of the rows in flight found so far."""

    def add(self, k: int, conns: Sequence[Connection]) -> None:
        """Rows of shard k, in its end order (renamed in place when they are placed)."""
        self.pending[k].extend(conns)
        by_uid = self.by_uid[k]
        for c in conns:
            by_uid[c.uid] = c

    def progress(self, k: int, created: Sequence[int], watermark: int) -> None:
        """Shard k has tracked every frame up to ``watermark``, creating connections at
        ``created`` (first frames, in creation order) since it last said so."""
        self.created[k].extend(created)
        self.watermark[k] = max(self.watermark[k], watermark)

    def finish(self, k: int) -> None:
        """Shard k has sent every row (those open at the end of the capture too)."""
        self.finished[k] = True

    def _covered(self, frame: int | None) -> bool:
        """Has every shard passed ``frame`` (None: the end of the capture)?"""
        return all(done or (frame is not None and mark >= frame)
                   for done, mark in zip(self.finished, self.watermark, strict=True))

    def _serial(self, k: int, c: Connection) -> tuple[int, tuple[object, ...]]:
        """``c``'s serial in one run (``c`` of shard k, every shard past its first frame), and
        its table key."""
        found = self.serials.get((k, c.uid))
        if found is not None:
            return found
        own = self.created[k]
        f = c.first_frame
        key = table_key(c)
        for local in range(bisect_left(own, f) + 1, bisect_right(own, f) + 1):
            if _uid(local, c.ts_ns, key) == c.uid:
                break
        else:
            raise ShardJoinError(
                f"shard {k}: connection {c.uid} is none of those its shard created at frame "
                f"{f} (the tracker numbers connections differently); shards cannot be joined")
        serial = local + sum(bisect_left(self.created[j], f) for j in range(self.n) if j != k)
        self.serials[(k, c.uid)] = serial, key
        return serial, key

    def _name(self, k: int, uid: str) -> str | None:
        """One run's uid of shard k's connection ``uid`` (a tunnel carrier), None while it is
        not known yet; a uid that is no connection of the shard (an IP tunnel's) stays."""
        name = self.names[k].get(uid)
        if name is not None:
            return name
        c = self.by_uid[k].get(uid)
        if c is None:
            return uid if self.finished[k] else None
        serial, key = self._serial(k, c)
        name = self.names[k][uid] = _uid(serial, c.ts_ns, key)
        return name

    def ready(self) -> Iterator[Connection]:
        """The rows now in their place, in the order of one run, renamed."""
        while True:
            best: tuple[tuple[int, int, int], tuple[int, tuple[object, ...]], int] | None = None
            for k in range(self.n):
                if not self.pending[k]:
                    continue
                c = self.pending[k][0]
                where = end_order(c)
                if not self._covered(None if where[0] else c.end_frame):
                    continue
                candidate = (where, self._serial(k, c), k)
                if best is None or candidate < best:
                    best = candidate
            if best is None:
                return
            _, (serial, key), k = best
            c = self.pending[k][0]
            parents = [self._name(k, u) for u in c.tunnel_parents]
            if None in parents:
                return  # its carrier has not come yet
            self.pending[k].popleft()
            del self.by_uid[k][c.uid]
            self.serials.pop((k, c.uid), None)
            uid = self.names[k].pop(c.uid, None) or _uid(serial, c.ts_ns, key)
            if c.proto == "udp" and (c.orig_p in CARRIER_PORTS or c.resp_p in CARRIER_PORTS):
                self.names[k][c.uid] = uid  # a carrier, named in rows that end later
            # Renamed in place: the rows came from the workers' pipes, nobody else holds them
            # (dataclasses.replace was a third of the merge's time).
            if c.transitions:
                c.transitions = [replace(t, uid=uid) if t.uid == c.uid else t
                                 for t in c.transitions]
            c.uid = uid
            if parents:
                c.tunnel_parents = sorted(p for p in parents if p)
            yield c

    def rest(self) -> Iterator[Connection]:
        """What is still in flight, as it is (after a ShardJoinError or an interruption)."""
        for part in self.pending:
            yield from part
            part.clear()
