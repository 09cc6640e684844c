"""The Rust tracker (``portlens._core.Tracker``) behind the pipeline's Tracker protocol.

The compiled core tracks packets and hands back ended connections and transitions as
columns (crates/py/src/track.rs). This module turns a TrackerConfig into the core's
arguments and hands the columns on; track/objects.py, imported only where objects are made,
turns them into the ``Connection`` and ``Transition`` objects the reports read: one Python
object per connection (and per transition where they are asked for), none per packet.
``tests/test_rust_tracker.py`` compares what this module hands out with the Python reference
tracker (track/tracker.py), field by field.

What the core leaves to this side:

* ``shard``: which rows are the shard's (``shard_of``); the core tracks those, and the other
  shards' rows only move its clock (the reference does the same: not tracked, not counted);
* the port's service name (services.py), and the names of not-counted frames;
* ``segment_marks`` (the ladder's per-segment analysis marks): the batch is fed one packet at
  a time and the counters of the connection it touched are compared before and after, as the
  reference does around each segment. That costs a call per packet: it is for the few packets
  of one connection, not for a capture.
* ``fast_paths`` is the reference's own switch: the core has one path, which equals the
  reference's full per-packet path.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeAlias

from portlens.decode.fields import SUB_CARRIER, V4_MAPPED_PREFIX
from portlens.decode.malformed import reason_label
from portlens.services import proto_name
from portlens.track.config import TrackerConfig
from portlens.track.timeouts import (
    SECOND,
    TCP_CONNECTION_LINGER,
    TCP_SESSION_TIMER,
    TCP_SYN_TIMEOUT,
    Timeouts,
)

if TYPE_CHECKING:  # NumPy is imported where a batch's columns are read (not by conn.log lines)
    import numpy as np
    import numpy.typing as npt

    from portlens.decode.packets import PacketBatch
    from portlens.track.model import Connection, Transition

DNS_SESSION_TIMEOUT = 10 * SECOND
"""Zeek's DNS analyzer's session timeout (the reference's ``dns`` timer)."""

ZEEK_CONSTANTS = {
    # Zeek's timers the reference has as constants (track/tcp.py; the DNS session timeout in
    # track/tracker.py and flows.py): the core takes every timer by name.
    "tcp_syn_timeout": TCP_SYN_TIMEOUT,
    "tcp_connection_linger": TCP_CONNECTION_LINGER,
    "tcp_session_timer": TCP_SESSION_TIMER,
    "dns_session_timeout": DNS_SESSION_TIMEOUT,
}

NONE64 = -(2**63)
"""An int64 column's "none" (its least value): the handshake's times."""
NO_VLAN = NO_CODE = -(2**31)
"""An int32 column's "none" (its least value): vlan, icmp_code."""
ROWS_PER_CHUNK = 8192
FINISH_ROWS = 16384
"""Open connections ended at a time at the end of the capture: about half what a batch of a
flood's SYNs ends (Options.chunk_bytes)."""
_PROTOS = {"tcp": 6, "udp": 17}
_Rows: TypeAlias = "tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]"
"""A shard's rows of a batch, and the rows whose ICMP error quotes a flow of the shard."""
Select: TypeAlias = "Callable[[PacketBatch], npt.NDArray[np.intp] | None]"
"""A selection's rows of a batch (``Selector.rows``): None keeps them all."""
ConnLogText = tuple[str, int]
"""The conn.log lines of the connections that ended, and how many (``ended_as_conn_log``)."""
Ended = dict[str, Any] | ConnLogText | int
"""What the column methods give: the ended connections' columns, their conn.log lines, or
(``ended_into``) how many were folded."""


def _core_module() -> Any:
    from portlens import _core

    return _core


def core_timeouts(t: Timeouts) -> dict[str, int | None]:
    """Every timer the core takes, in nanoseconds (tcp_partial_close None: off)."""
    return {**{n: getattr(t, n) for n in Timeouts.names()}, **ZEEK_CONSTANTS}


def _net(text: str) -> tuple[bytes, int, bool]:
    """A network as the core takes it: 16-byte address (IPv4-mapped), prefix length in that
    form, and whether it is IPv4."""
    net = ipaddress.ip_network(text)
    if net.version == 4:
        return V4_MAPPED_PREFIX + net.network_address.packed, net.prefixlen + 96, True
    return net.network_address.packed, net.prefixlen, False


def core_tracker(config: TrackerConfig, *, transitions: bool | None = None) -> Any:
    """A ``portlens._core.Tracker`` configured as ``config`` says; ``transitions`` records the
    transition stream (default: ``config.keep_transitions``)."""
    return _core_module().Tracker(
        timeouts=core_timeouts(config.timeouts),
        drop_bad_checksums=config.drop_bad_checksums,
        likely_server_ports=sorted((_PROTOS[p], port) for p, port in config.likely_server_ports
                                   if p in _PROTOS),
        report_gaps_for_partial=config.report_gaps_for_partial,
        dns_timeout=config.dns_timeout, ntp_analyzer=config.ntp_analyzer,
        max_flows=config.max_flows,
        vlan_in_key=config.vlan_in_key,
        keep_transitions=config.keep_transitions if transitions is None else transitions,
        ignore_checksum_nets=[_net(n) for n in config.ignore_checksum_nets],
        # segment marks feed a packet at a time: a thread per shard and packet would cost
        # more than it shares
        threads=1 if config.segment_marks or config.shard is not None else config.threads)


def not_counted_labels(counts: dict[tuple[str, int], int]) -> Counter[str]:
    """The core's not-counted keys in the reference's words (the report footers')."""
    out: Counter[str] = Counter()
    for (kind, code), n in counts.items():
        if kind == "malformed":
            label = f"malformed: {reason_label(code)}"
        elif kind == "IP protocol":
            label = f"IP protocol {proto_name(code)}"
        else:
            label = {"IPv4 total length 0": "IPv4 total length 0 (dropped)",
                     "bad IPv4 checksum": "bad IPv4 checksum (dropped)"}.get(kind, kind)
        out[label] += n
    return out


def concat_columns(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Column batches of the core (``feed`` and friends) as one, rows in order (a column is
    a list, of text or tuples, or a NumPy array)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        if isinstance(first, list):
            out[name] = list(chain.from_iterable(p[name] for p in parts))
        else:
            import numpy as np

            out[name] = np.concatenate([p[name] for p in parts])
    return out


class RustTracker:
    """The pipeline's Tracker (pipeline/stages.py) on the compiled core: feed batches in
    capture order; connections come out as they end."""

    def __init__(self, config: TrackerConfig | None = None,
                 on_transition: Callable[[Transition], None] | None = None) -> None:
        self.config = config or TrackerConfig()
        self.on_transition = on_transition
        self.records_transitions = (self.config.keep_transitions or on_transition is not None
                                    or self.config.segment_marks)
        """Whether the core records transitions (and ``_transitions`` drains them)."""
        self.core = core_tracker(self.config, transitions=self.records_transitions)
        self.kept: dict[int, list[tuple[Any, ...]]] | None = (
            {} if self.config.keep_transitions else None)
        """Transitions of open connections by serial, until the connection ends."""
        self.not_counted: Counter[str] = Counter()
        """Frames that belong to no connection, by why: not IP, malformed, other protocols."""
        self.evicted = 0
        self.packets_tracked = 0
        self.packets_skipped = 0
        self.other_shards = 0
        """Rows of other shards dropped before the core (in packets_skipped too)."""
        self.marks: dict[int, tuple[int, ...]] = {}
        """segment_marks: each open TCP connection's counters (by serial) after its last
        segment."""
        self.segment_marks: dict[int, list[tuple[int, int, tuple[str, ...]]]] = {}

    # --- the Tracker protocol ------------------------------------------------------------------

    def feed(self, batch: PacketBatch) -> Iterator[Connection]:
        """Track one batch; returns the connections that ended during it."""
        mine = self._mine(batch)
        if self.config.segment_marks:
            return iter(self._feed_marking(batch, mine))
        return self._ended_in_chunks(self._core_feed(batch, mine))

    def _mine(self, batch: PacketBatch) -> _Rows | None:
        """A shard's rows of ``batch`` and the rows whose ICMP error quotes a flow of the
        shard (None: every row is this tracker's), the others counted. The other shards'
        rows go in too: they move the clock (the core's feed_shard)."""
        if self.config.shard is None:
            return None
        # the reference's rule (one for both trackers), loaded only for worker processes
        from portlens.track.tracker import quoted_shard_of, shard_of

        k, n = self.config.shard
        shards = shard_of(batch, n)
        mine: npt.NDArray[np.bool_] = shards == k
        own = batch.sub != SUB_CARRIER  # a middle carrier's row goes with its packet's
        self.other_shards += int(own.sum()) - int((own & mine).sum())
        return mine, quoted_shard_of(batch, n, shards) == k

    def _core_feed(self, batch: PacketBatch, mine: _Rows | None) -> Any:
        """The core's connections that ended with ``batch``: columns, or their conn.log
        lines (``ended_as_conn_log``), or how many were folded (``ended_into``)."""
        return self.core.feed(batch) if mine is None else self.core.feed(batch, *mine)

    def advance(self, ts_ns: int) -> Iterator[Connection]:
        """Move the clock to ``ts_ns`` without a packet: timers due by then fire."""
        return self._ended_in_chunks(self.core.advance(ts_ns))

    def finish(self) -> Iterator[Connection]:
        """End of capture: every open connection ends now (when iterated)."""
        for cols in self._finish_parts():
            yield from self._ended_in_chunks(cols)

    def _finish_parts(self) -> Iterator[Any]:
        """The open connections' rows FINISH_ROWS at a time, in the order of one call: the
        flow cap's 200,000 SYN-only flows of a flood, ended in one block, took ``conns`` from
        130 to 290 MB."""
        while True:
            yield self.core.finish(FINISH_ROWS)
            if not self.core.open_flows:
                return

    def _ended_in_chunks(self, cols: dict[str, Any]) -> Iterator[Connection]:
        """The ended rows as objects a chunk at a time: a batch can end a hundred thousand
        connections (a SYN flood past --max-flows evicts one per packet) and finish() up to
        --max-flows, so that a consumer that writes each row as it comes never holds them
        all (the flood at the default cap peaked at 600 MB with each batch's made at once).
        The core's counters and transition stream are taken now, not when iterated."""
        if self.config.segment_marks:
            return iter(self._ended(cols))
        self._transitions()
        self._counters()
        return self._chunks(cols)

    def _chunks(self, cols: dict[str, Any]) -> Iterator[Connection]:
        from portlens.track.objects import connections

        n = len(cols["uid"])
        for start in range(0, n, ROWS_PER_CHUNK):
            part = {k: v[start:start + ROWS_PER_CHUNK] for k, v in cols.items()}
            yield from connections(part, self.kept)

    # --- columns, for the aggregates that read no Connection (analysis/columns.py) ------------

    @property
    def columnar(self) -> bool:
        """Whether ended connections can be handed over as the core's columns: not while
        segment marks are followed (they are per-connection objects)."""
        return not self.config.segment_marks

    def keep_columns(self, names: Collection[str] | None) -> None:
        """Only ``names`` among the columns of the connections that end from now on (None:
        all): an aggregate that reads a dozen is not handed a hundred, nor a Python string
        a row for uids or community ids it never reads. ``serial`` and ``orig_host`` stay,
        for the transitions kept of the rows that end."""
        self.core.keep_columns(None if names is None
                               else {*names, "uid", "serial", "orig_host"})

    def ended_as_conn_log(self) -> None:
        """The connections that end from now on as their conn.log lines (``ConnLogText``)
        where the column methods give columns: the same text as ``conn_log_lines`` of the
        columns (report/zeek.py ``zeek_lines``), written by the core from its own rows, so
        that no Python object, nor NumPy array, is made for them. Not with transitions kept
        for the rows (``conns --json``'s), which go with columns."""
        self._no_kept_transitions()
        self.core.ended_as_conn_log()

    def ended_into(self, fold: Any) -> None:
        """The connections that end from now on folded into ``fold`` by the core (a
        ``portlens._core.PortFold``, ``HandshakeFold`` or ``SocketFold``: the tables'
        ``core_fold``), where the column methods give columns: they give how many were
        folded. The tables' folds of the columns give the same tables
        (tests/test_port_fold.py, tests/test_handshake_fold.py, tests/test_socket_fold.py)."""
        self._no_kept_transitions()
        core = _core_module()
        if isinstance(fold, core.PortFold):
            self.core.ended_into_ports(fold)
        elif isinstance(fold, core.HandshakeFold):
            self.core.ended_into_handshakes(fold)
        elif isinstance(fold, core.SocketFold):
            self.core.ended_into_sockets(fold)
        else:
            raise TypeError(f"not a fold of the core: {type(fold).__name__}")

    def _no_kept_transitions(self) -> None:
        if self.kept is not None:
            raise ValueError("transitions kept for the ended rows go with their columns")

    def feed_columns(self, batch: PacketBatch) -> Ended:
        """``feed``, the ended connections as the core's columns (names as in ``--json``;
        `connections` reads the same ones); no Connection is made. With transitions kept
        (and none streamed), the block holds its rows' transitions too (``transitions.*``:
        ``count`` per row, then the rows' transitions one after the other)."""
        return self._ended_columns(self._core_feed(batch, self._mine(batch)))

    @property
    def decodes_in_core(self) -> bool:
        """Whether ``feed_decoded`` may take this tracker's batches: not a shard's (worker
        processes pick their rows from PacketBatches) nor one marking segments."""
        return self.config.shard is None and self.columnar

    def feed_decoded(self, file: Any, select: Select | None = None) -> Ended | None:
        """``feed_columns`` of the next batch of ``file``, a ``portlens._core.DecodedFile``
        (read and decoded by the core, its columns never made NumPy arrays); None at the end
        of the file. A problem with the file raises ``portlens._core.CaptureError`` after
        every batch before it was tracked. ``select`` (``Selector.rows``) picks the rows to
        track from the batch read as a PacketBatch (``HeldBatch``: only the columns it reads
        come over from the core)."""
        cols = self._core_feed_decoded(file, select)
        return None if cols is None else self._ended_columns(cols)

    def feed_decoded_connections(self, file: Any, select: Select | None = None
                                 ) -> Iterator[Connection] | None:
        """``feed`` of the next batch of ``file``, as ``feed_decoded``."""
        cols = self._core_feed_decoded(file, select)
        return None if cols is None else self._ended_in_chunks(cols)

    def _core_feed_decoded(self, file: Any, select: Select | None) -> Any:
        if not self.decodes_in_core:
            raise ValueError("a shard's or a marking tracker is fed PacketBatches")
        if file.hold() is None:
            return None
        if select is None:
            return self.core.feed_held(file, None)
        import numpy as np

        from portlens.decode.rust import HeldBatch

        rows = select(HeldBatch(file))
        return self.core.feed_held(
            file, None if rows is None else np.asarray(rows, dtype=np.int64))

    def advance_columns(self, ts_ns: int) -> Ended:
        return self._ended_columns(self.core.advance(ts_ns))

    def finish_columns(self) -> Iterator[Ended]:
        for cols in self._finish_parts():
            yield self._ended_columns(cols)

    def _ended_columns(self, cols: Ended) -> Ended:
        if not isinstance(cols, dict):  # lines or a fold's count: no transitions kept
            self._transitions()
            self._counters()
            return cols
        if self.kept is not None and self.on_transition is None:
            # Transitions kept for the ended rows (`conns --json`): the core keeps each open
            # connection's until it ends, then adds them to its block as columns
            # (``transitions.*``, grouped by row), and no Transition is made.
            cols.update(self.core.ended_transitions(cols["serial"], cols["orig_host"]))
            self._counters()
            return cols
        self._transitions()
        self._counters()
        if self.kept is not None:  # transitions kept for objects nobody will make
            for s in cols["serial"].tolist():
                self.kept.pop(s, None)
        return cols

    def open_connections(self, limit: int | None = None) -> list[Connection]:
        """The open connections as they stand (most recently active first), without their
        transitions; they stay open. For live views."""
        from portlens.track.objects import connections

        return connections(self.core.open_connections(limit))

    def created_frames(self) -> np.ndarray:
        """A shard's tracker: the first frames of the connections created since the last
        call, in creation order (pipeline/shards.py ``ShardMerge`` ranks by them)."""
        out: np.ndarray = self.core.created()
        return out

    # --- columns to objects --------------------------------------------------------------------

    def _ended(self, cols: dict[str, Any]) -> list[Connection]:
        from portlens.track.objects import connections

        self._transitions()
        out = connections(cols, self.kept)
        self._counters()
        if self.config.segment_marks:
            for c, s in zip(out, cols["serial"].tolist(), strict=True):
                self.marks.pop(s, None)
                if c.proto == "tcp":
                    c.segment_marks = self.segment_marks.pop(s, [])
        return out

    def _counters(self) -> None:
        core = self.core
        self.evicted = core.evicted
        self.packets_tracked = core.packets_tracked
        self.packets_skipped = core.packets_skipped + self.other_shards
        self.not_counted = not_counted_labels(core.not_counted())

    def _transitions(self) -> None:
        """Drains the core's transition stream: to ``on_transition`` (with the connection's id
        and the endpoint's role at that moment; as the columns themselves to a
        TransitionStream) and, kept, to the connection's list."""
        if not self.records_transitions:
            return
        from portlens.track.model import Segment, Transition, TransitionStream
        from portlens.track.objects import _ENDPOINTS, _EVENTS, _STATES, _addresses

        t = self.core.transitions()
        n = len(t["uid"])
        if n == 0:
            return
        stream = self.on_transition
        if isinstance(stream, TransitionStream):
            stream.columns(t)
            stream = None
        if stream is None and self.kept is None:
            return
        ts, frame = t["ts_ns"].tolist(), t["frame"].tolist()
        events = [_EVENTS[e] for e in t["event"]]
        old = [_STATES[s] for s in t["from"]]
        new = [_STATES[s] for s in t["to"]]
        flags, seq, ack = t["flags"].tolist(), t["seq"].tolist(), t["ack"].tolist()
        segments = [Segment(*s) for s in zip(flags, seq, ack, t["payload"].tolist(),
                                             strict=True)]
        if stream is not None:
            uid, endpoint = t["uid"], t["endpoint"]
            orig_h, resp_h = _addresses(t["id.orig_h"]), _addresses(t["id.resp_h"])
            orig_p, resp_p = t["id.orig_p"].tolist(), t["id.resp_p"].tolist()
            for j in range(n):
                stream(Transition(
                    ts[j], frame[j], _ENDPOINTS[endpoint[j]], events[j], old[j], new[j],
                    segments[j], uid[j], (orig_h[j], orig_p[j], resp_h[j], resp_p[j])))
        if self.kept is not None:
            kept = self.kept
            host = t["host"].tolist()
            for j, s in enumerate(t["serial"].tolist()):
                kept.setdefault(s, []).append(
                    (ts[j], frame[j], host[j], events[j], old[j], new[j], segments[j]))

    # --- segment marks ---------------------------------------------------------------------------

    def _feed_marking(self, batch: PacketBatch, mine: _Rows | None = None) -> list[Connection]:
        """One packet at a time: the counters of the connection a TCP segment went to, before
        and after it, name the analysis marks of that segment. In a shard (``mine``), the
        other shards' packets only move the clock, as in ``feed``."""
        import numpy as np

        from portlens.track.objects import ANALYSIS, MARK_COUNTERS

        out: list[Connection] = []
        frames, stamps = batch.frame.tolist(), batch.ts_ns.tolist()
        # A packet's row with the middle carriers' rows after it, which it counts.
        own = np.flatnonzero(batch.sub != SUB_CARRIER).tolist()
        for i, end in zip(own, [*own[1:], len(batch)], strict=True):
            cols = self._core_feed(batch.take(slice(i, end)), None if mine is None else (
                mine[0][i:end], mine[1][i:end]))
            if mine is not None and not mine[0][i]:
                out += self._ended(cols)
                continue
            touched = [cols, self.core.open_connections(1)]
            for part in touched:
                for j, s in enumerate(part["serial"].tolist()):
                    if (part["proto"][j] != "tcp" or int(part["last_frame"][j]) != frames[i]
                            or int(part["last_ns"][j]) != stamps[i]):
                        continue
                    now = (*(int(part[f"analysis.{name}"][j]) for name in ANALYSIS),
                           int(part["handshake.syn_retransmits"][j]),
                           int(part["handshake.syn_ack_retransmits"][j]))
                    before = self.marks.get(s, (0,) * len(now))
                    self.marks[s] = now
                    moved = tuple(name for name, a, b in zip(MARK_COUNTERS, before, now,
                                                             strict=True) if b > a)
                    self.segment_marks.setdefault(s, []).append((frames[i], stamps[i], moved))
            out += self._ended(cols)
        return out
