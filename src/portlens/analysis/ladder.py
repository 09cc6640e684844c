"""One connection, segment by segment: the data behind `portlens ladder`.

A Connection keeps counts, not packets, so the ladder re-reads the capture: the CLI hands the
decoded batches to ``select_packets``, which keeps the rows of the connection's 5-tuple (either
direction) within its time span [ts, last]. Only one connection holds a tuple at a time, so
those rows are exactly its packets.

Marks on each segment (retransmission, dup ACK, zero window ...) come from replaying the rows
through a fresh tracker and watching its counters move, so the ladder marks exactly the
segments the tracker counted in the connection's ``analysis``, with one definition of each
mark (track/tcp.py). States come from the connection's transitions (the replay's, if the
connection was tracked without them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from portlens.analysis.icmp import message_text
from portlens.decode.fields import (
    CSUM_BAD,
    FRAG_PART,
    SUB_CARRIER,
    V4_MAPPED_PREFIX,
    addr_bytes,
    endpoint_text,
)
from portlens.decode.packets import PacketBatch
from portlens.services import proto_name
from portlens.track.config import TrackerConfig
from portlens.track.model import UNKNOWN_TRANSPORT, Connection, Endpoint, Transition
from portlens.track.rust import RustTracker
from portlens.track.states import TcpState

MASK32 = 0xFFFFFFFF
FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"),
              (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"), (0x100, "AE"))
"""Wireshark's order and names."""

MARKS = (
    # (TcpAnalysis or Handshake counter, mark), most specific first: a counter listed later is
    # not shown when an earlier one moved on the same segment and says more (see _marks).
    ("syn_retransmits", "SYN retransmission"),
    ("syn_ack_retransmits", "SYN-ACK retransmission"),
    ("fast_retransmissions", "fast retransmission"),
    ("spurious_retransmissions", "spurious retransmission"),
    ("retransmissions", "retransmission"),
    ("out_of_order", "out-of-order"),
    ("lost_segments", "previous segment not captured"),
    ("dup_acks", "dup ACK"),
    ("zero_windows", "zero window"),
    ("zero_window_probes", "zero-window probe"),
    ("keep_alives", "keep-alive"),
    ("window_full", "window full"),
    ("window_updates", "window update"),
)
_RETRANSMISSION_KINDS = {"SYN retransmission", "SYN-ACK retransmission", "fast retransmission",
                         "spurious retransmission"}


def flag_text(flags: int) -> str:
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    return "[" + ", ".join(names) + "]" if names else "[]"


@dataclass
class Step:
    """One segment (or datagram) on the ladder."""

    ts_ns: int
    frame: int
    from_orig: bool
    flags: int = 0
    seq: int | None = None
    """Relative to the sender's initial sequence number (its SYN, or one before its first
    segment when the SYN was not seen)."""
    ack: int | None = None
    """Relative to the receiver's initial sequence number; None without the ACK flag."""
    length: int = 0
    label: str = ""
    marks: list[str] = field(default_factory=list)
    orig_state: TcpState | None = None
    """The originator's state after this segment, when it changed."""
    resp_state: TcpState | None = None


@dataclass
class Ladder:
    conn: Connection
    steps: list[Step]
    orig_initial: TcpState | None
    resp_initial: TcpState | None


def select_packets(batches: Iterable[PacketBatch], conn: Connection) -> PacketBatch:
    """The rows of ``conn``: its 5-tuple either way, within [ts, last], in capture order."""
    o = np.frombuffer(addr_bytes(conn.orig_h), dtype=np.uint8)
    r = np.frombuffer(addr_bytes(conn.resp_h), dtype=np.uint8)
    last = max(conn.last_ns, conn.ts_ns)
    parts = []
    for b in batches:
        if not len(b):
            continue
        span = (b.ts_ns >= conn.ts_ns) & (b.ts_ns <= last) & (b.frag != FRAG_PART)
        if not span.any():
            continue
        keep = span & tuple_rows(b, conn, o, r)
        if conn.proto == "udp" and (b.tunnel_depth > 0).any():
            carrier = _carrier_rows(b, span, o, r, conn)
            if carrier is not None:
                order = np.argsort(np.concatenate([np.flatnonzero(keep), carrier[1]]),
                                   kind="stable")
                merged = PacketBatch.concat([b.take(np.flatnonzero(keep)), carrier[0]])
                parts.append(merged.take(order))
                continue
        if keep.any():
            parts.append(b.take(np.flatnonzero(keep)))
    return PacketBatch.concat(parts)


def tuple_rows(b: PacketBatch, conn: Connection, o: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The rows whose innermost transport is ``conn``'s 5-tuple, either way (ICMP: its
    addresses and message types). ``o``, ``r``: the two addresses in the 16-byte column form."""
    src_o, dst_r = (b.src == o).all(axis=1), (b.dst == r).all(axis=1)
    src_r, dst_o = (b.src == r).all(axis=1), (b.dst == o).all(axis=1)
    if conn.proto == "icmp":
        proto = np.isin(b.l4, (1, 58))
        fwd = src_o & dst_r & (b.icmp_type == conn.orig_p)
        rev = src_r & dst_o & (b.icmp_type == conn.resp_p)
    elif conn.proto == UNKNOWN_TRANSPORT:  # no ports: the addresses and the IP protocol
        proto = (b.l4 == 0) & (b.proto == (conn.ip_proto or 0))
        fwd, rev = src_o & dst_r, src_r & dst_o
    else:
        proto = b.l4 == (6 if conn.proto == "tcp" else 17)
        fwd = src_o & dst_r & (b.sport == conn.orig_p) & (b.dport == conn.resp_p)
        rev = src_r & dst_o & (b.sport == conn.resp_p) & (b.dport == conn.orig_p)
    return np.asarray(proto & (fwd | rev), dtype=np.bool_)


def carrier_levels(b: PacketBatch, o: np.ndarray, r: np.ndarray, conn: Connection
                   ) -> list[tuple[str, np.ndarray]]:
    """(level, rows) for the outermost (out_*) and, two tunnels deep or more, the innermost
    (car_*) carrier: the packet rows whose UDP carrier at that level (VXLAN, Geneve,
    Teredo...) is the connection, either way. A middle carrier's row (column sub) is the
    datagram itself (tuple_rows); its out_* are its packet's."""
    packet = (b.tunnel_depth > 0) & (b.sub != SUB_CARRIER)
    levels = []
    for level, deep in (("out", packet), ("car", packet & (b.tunnel_depth > 1))):
        src, dst = getattr(b, f"{level}_src"), getattr(b, f"{level}_dst")
        sport, dport = getattr(b, f"{level}_sport"), getattr(b, f"{level}_dport")
        fwd = ((src == o).all(axis=1) & (dst == r).all(axis=1)
               & (sport == conn.orig_p) & (dport == conn.resp_p))
        rev = ((src == r).all(axis=1) & (dst == o).all(axis=1)
               & (sport == conn.resp_p) & (dport == conn.orig_p))
        levels.append((level, deep & (getattr(b, f"{level}_proto") == 17) & (fwd | rev)))
    return levels


def _carrier_rows(b: PacketBatch, span: np.ndarray, o: np.ndarray, r: np.ndarray,
                  conn: Connection) -> tuple[PacketBatch, np.ndarray] | None:
    """The rows of ``carrier_levels`` in ``span``, rewritten as the carrier's datagram: the
    tracker counts a tunnel's carrier as a UDP flow of its own."""
    found = []
    for level, carried in carrier_levels(b, o, r, conn):
        rows = np.flatnonzero(span & carried)
        if not rows.size:
            continue
        src, dst = getattr(b, f"{level}_src"), getattr(b, f"{level}_dst")
        sport, dport = getattr(b, f"{level}_sport"), getattr(b, f"{level}_dport")
        out = b.take(rows)
        out.src, out.dst, out.sport, out.dport = (src[rows], dst[rows], sport[rows],
                                                  dport[rows])
        ip_len = getattr(b, f"{level}_ip_len")[rows].astype(np.int64)
        v4 = (out.src[:, :12] == np.frombuffer(V4_MAPPED_PREFIX, dtype=np.uint8)).all(axis=1)
        out.l4 = np.full(len(out), 17, dtype=out.l4.dtype)
        out.payload = (ip_len - np.where(v4, 20, 40) - 8).astype(out.payload.dtype)
        out.l4_csum = np.zeros(len(out), dtype=out.l4_csum.dtype)
        found.append((out, rows))
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    return (PacketBatch.concat([f[0] for f in found]),
            np.concatenate([f[1] for f in found]))


def build(conn: Connection, packets: PacketBatch, config: TrackerConfig | None = None) -> Ladder:
    """The steps of a connection from its packets (``select_packets``)."""
    n = len(packets)
    o = np.frombuffer(addr_bytes(conn.orig_h), dtype=np.uint8)
    from_orig = ((packets.src == o).all(axis=1) & (packets.sport == conn.orig_p)).tolist() \
        if n else []
    if conn.proto in ("icmp", UNKNOWN_TRANSPORT):  # no ports (one-way ICMP flows may share
        from_orig = (packets.src == o).all(axis=1).tolist() if n else []  # both orders)
    steps = [Step(int(packets.ts_ns[i]), int(packets.frame[i]), bool(from_orig[i]),
                  length=max(int(packets.payload[i]), 0)) for i in range(n)]
    if conn.proto == "tcp":
        _tcp_fields(steps, packets)
        replay_transitions = _replay_marks(steps, packets, config)
        transitions = conn.transitions or replay_transitions
    else:
        for i, s in enumerate(steps):
            if conn.proto == "udp":
                s.label = f"UDP len={s.length}"
            elif conn.proto == UNKNOWN_TRANSPORT:
                s.label = f"{proto_name(conn.ip_proto or 0).upper()} ip_len={packets.ip_len[i]}"
            else:
                v6 = conn.ip_version == 6
                message = message_text(int(packets.icmp_type[i]), int(packets.icmp_code[i]),
                                       v6=v6)
                s.label = f"ICMP{'v6' if v6 else ''} {message} len={s.length}"
        transitions = []
    for i, s in enumerate(steps):
        if packets.l4_csum[i] == CSUM_BAD:
            s.marks.append("bad checksum")
    orig_initial, resp_initial = _apply_transitions(conn, steps, transitions)
    return Ladder(conn, steps, orig_initial, resp_initial)


def _tcp_fields(steps: list[Step], p: PacketBatch) -> None:
    base: dict[bool, int] = {}
    flags, seqs, acks = p.tcp_flags.tolist(), p.seq.tolist(), p.ack.tolist()
    for i, s in enumerate(steps):
        f, seq, ack = flags[i], seqs[i], acks[i]
        side = s.from_orig
        if side not in base:
            base[side] = seq if f & 0x02 else (seq - 1) & MASK32
        s.flags = f
        s.seq = (seq - base[side]) & MASK32
        if f & 0x10:
            if (not side) not in base:
                base[not side] = (ack - 1) & MASK32
            s.ack = (ack - base[not side]) & MASK32
        text = f"{flag_text(f)} seq={s.seq}"
        if s.ack is not None:
            text += f" ack={s.ack}"
        s.label = f"{text} len={s.length}"




def _replay_marks(steps: list[Step], packets: PacketBatch,
                  config: TrackerConfig | None) -> list[Transition]:
    """Replay the connection's packets through a fresh tracker that records, per segment, the
    analysis counters it moved (TrackerConfig.segment_marks): those are the segment's marks.
    Returns the replay's transitions.

    That replay feeds the tracker one packet at a time (about 0.1 ms a segment: most of a
    report's ladders), so the packets are first fed at once: the counters only count up, so
    where every connection of the replay ends with all of them at zero no segment moved one,
    and the transitions are the same however the packets are fed."""
    transitions: list[Transition] = []
    # The tracker the pipeline's new_tracker gives (this layer may not import the pipeline).
    if not steps:
        return transitions
    if WHOLE_REPLAY_FIRST:
        whole = RustTracker(replace(config or TrackerConfig(), segment_marks=False,
                                    keep_transitions=False), on_transition=transitions.append)
        if not any(_moved(c) for c in [*whole.feed(packets), *whole.finish()]):
            return transitions
        transitions.clear()
    tracker = RustTracker(replace(config or TrackerConfig(), segment_marks=True),
                          on_transition=transitions.append)
    marks: dict[tuple[int, int], set[str]] = {}
    for c in [*tracker.feed(packets), *tracker.finish()]:
        for frame, ts, moved in c.segment_marks:
            marks.setdefault((frame, ts), set()).update(moved)
    for s in steps:
        s.marks.extend(_marks(marks.get((s.frame, s.ts_ns), set())))
    return transitions


WHOLE_REPLAY_FIRST = True
"""_replay_marks feeds the packets at once first (tests turn it off to compare)."""


def _moved(c: Connection) -> bool:
    """Whether any counter a segment mark names (MARKS) is above zero."""
    return any(getattr(c.handshake, name, 0) or getattr(c.analysis, name, 0)
               for name, _ in MARKS)


def _marks(moved: set[str]) -> list[str]:
    out = [mark for name, mark in MARKS if name in moved]
    if any(m in _RETRANSMISSION_KINDS for m in out):
        out = [m for m in out if m != "retransmission"]
    if "SYN retransmission" in out or "SYN-ACK retransmission" in out:
        out = [m for m in out if m not in ("fast retransmission", "spurious retransmission")]
    return out


def _apply_transitions(conn: Connection, steps: list[Step], transitions: list[Transition]
                       ) -> tuple[TcpState | None, TcpState | None]:
    """Put each endpoint's state after a segment on that segment; returns the initial states."""
    if conn.proto != "tcp":
        return None, None
    at: dict[tuple[int, int], list[Transition]] = {}
    for t in transitions:
        at.setdefault((t.frame, t.ts_ns), []).append(t)
    initial: dict[Endpoint, TcpState | None] = {Endpoint.ORIG: None, Endpoint.RESP: None}
    for t in transitions:
        if initial[t.endpoint] is None:
            initial[t.endpoint] = t.old
    for s in steps:
        for t in at.get((s.frame, s.ts_ns), ()):
            if t.endpoint == Endpoint.ORIG:
                s.orig_state = t.new
            else:
                s.resp_state = t.new
    return (initial[Endpoint.ORIG] or conn.orig_state, initial[Endpoint.RESP] or conn.resp_state)


def ladder(conn: Connection, batches: Iterable[PacketBatch],
           config: TrackerConfig | None = None) -> Ladder:
    return build(conn, select_packets(batches, conn), config)


class SelectorError(ValueError):
    """A --conn that is neither a uid (prefix) nor a 5-tuple; the message is one line."""


@dataclass(frozen=True)
class Selector:
    """Which connection `portlens ladder --conn` means: a uid or the start of one (Zeek's uids
    are 18 characters; a few usually suffice), or a 5-tuple matched in either direction.

    5-tuple syntax (docs/formats.md): ``10.0.0.1:1234-10.0.0.2:80``,
    ``[fe80::1]:1234-[fe80::2]:80``, or as tcpdump prints it, ``10.0.0.1.1234 > 10.0.0.2.80``
    (IPv6: ``fe80::1.1234 > ...``); an optional protocol first
    (``udp 10.0.0.1:53-10.0.0.2:5353``) narrows it to that protocol.
    """

    uid_prefix: str = ""
    proto: str | None = None
    a: tuple[str, int] | None = None
    b: tuple[str, int] | None = None

    def matches(self, c: Connection) -> bool:
        if self.a is None or self.b is None:
            return c.uid.startswith(self.uid_prefix)
        if self.proto is not None and c.proto != self.proto:
            return False
        if c.proto == "icmp":
            return False
        ends = {(c.orig_h, c.orig_p), (c.resp_h, c.resp_p)}
        return ends == {self.a, self.b} and (self.a != self.b or c.orig_h == c.resp_h)


def _endpoint(text: str, tcpdump: bool) -> tuple[str, int]:
    """'10.0.0.1:80', '[fe80::1]:80' or (tcpdump) '10.0.0.1.80', 'fe80::1.80'."""
    import ipaddress

    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    elif tcpdump:
        host, sep, port = text.rpartition(".")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise SelectorError(f"{text!r} is not ADDRESS:PORT")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise SelectorError(f"{host!r} is not an IP address") from None
    return str(addr), int(port)


def parse_selector(text: str) -> Selector:
    """A Selector from `--conn` text (the syntax in the Selector docstring)."""
    spec = text.strip()
    proto = None
    first, _, rest = spec.partition(" ")
    if first.lower() in ("tcp", "udp") and rest:
        proto, spec = first.lower(), rest.strip()
    if ">" in spec:
        left, _, right = spec.partition(">")
        return Selector(proto=proto, a=_endpoint(left, True), b=_endpoint(right.rstrip(":"), True))
    if "-" in spec and (":" in spec or "." in spec):
        left, _, right = spec.partition("]-[") if "]-[" in spec else spec.rpartition("-")
        if "]-[" in spec:
            left, right = left + "]", "[" + right
        return Selector(proto=proto, a=_endpoint(left, False), b=_endpoint(right, False))
    if proto is not None or not spec.isalnum():
        raise SelectorError(
            f"--conn {text!r}: give a uid (or its start) or a 5-tuple such as "
            "10.0.0.1:1234-10.0.0.2:80 or '10.0.0.1.1234 > 10.0.0.2.80'")
    return Selector(uid_prefix=spec)


def choose(selector: Selector, found: list[Connection], spec: str,
           matches: int | None = None) -> Connection:
    """The one connection the selector found, or SelectorError listing the candidates
    (``found`` may hold only the first few of ``matches``)."""
    total = len(found) if matches is None else matches
    if total == 1 and found:
        return found[0]
    if not found:
        raise SelectorError(f"no connection matches --conn {spec} (`portlens conns` lists them)")
    shown = ", ".join(f"{c.uid} ({c.proto} {endpoint_text(c.orig_h, c.orig_p)}-"
                      f"{endpoint_text(c.resp_h, c.resp_p)})"
                      for c in found[:CANDIDATES_SHOWN])
    more = f" and {total - CANDIDATES_SHOWN} more" if total > CANDIDATES_SHOWN else ""
    hint = "a longer uid prefix" if selector.a is None else "the uid"
    raise SelectorError(f"--conn {spec} matches {total} connections: {shown}{more}; "
                        f"give {hint}")


CANDIDATES_SHOWN = 5
"""An ambiguous --conn lists this many candidates on its one line."""
