"""The contract between the tracker and its readers (analysis, report): Connection and friends.

A Connection carries Zeek's conn.log fields under Zeek's names, so users read them as they
know them, plus what Zeek does not give: both endpoints' RFC 9293 states and every
transition, the handshake record and Wireshark-style sequence analysis counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from portlens.track.states import Event, Named, TcpState

UNKNOWN_TRANSPORT = "unknown_transport"
"""Zeek's conn.log proto for an IP protocol without a transport analyzer (OSPF, SCTP ...);
the protocol number is the connection's ``ip_proto``."""

END_TIMERS = 0
"""``Connection.end_phase``: the timers that fired before frame ``end_frame`` arrived."""
END_PACKET = 1
"""Frame ``end_frame`` itself ended it (a close with no delay, a reused tuple, an eviction)."""
END_CLOCK = 2
"""The clock moved without a packet after frame ``end_frame`` (a live capture's wall clock)."""
END_CAPTURE = 3
"""The end of the capture, after every frame (``end_frame`` is the tracker's last)."""


def end_order(c: Connection) -> tuple[int, int, int]:
    """Where ``c`` ended, as a sort key in the order of one tracker reading every packet
    (crates/core/src/track/columns.rs ``EndAt``): the end of capture after everything,
    whatever each tracker's last frame was. Connections ended at the same place come in
    creation order."""
    if c.end_phase == END_CAPTURE:
        return (1, 0, END_CAPTURE)
    return (0, c.end_frame, c.end_phase)


class EndReason(Named):
    FIN = "fin"
    RST = "rst"
    IDLE = "idle"
    END_OF_CAPTURE = "end-of-capture"
    EVICTED = "evicted"


class Endpoint(Named):
    ORIG = "orig"
    RESP = "resp"


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of a packet that explains a transition."""

    flags: int
    seq: int
    ack: int
    payload: int


@dataclass(frozen=True, slots=True)
class Transition:
    ts_ns: int
    frame: int
    endpoint: Endpoint
    event: Event
    old: TcpState
    new: TcpState
    segment: Segment
    uid: str = ""
    conn_id: tuple[str, int, str, int] | None = None
    """Zeek's id (orig_h, orig_p, resp_h, resp_p) when the transition happened, set on the
    transitions streamed to ``on_transition`` (`portlens events` prints it as conntrack -E
    does); None on those kept in a Connection, which has the id itself."""


class TransitionStream(ABC):
    """An ``on_transition`` that the compiled tracker may also hand its transitions as
    columns, a batch at a time (``columns``: a dict of arrays and lists, names as in `events
    --json`, addresses as n×16 rows), so that no Transition is made for each: `events` prints
    350,000 of them for the benchmark capture. The reference tracker calls it once a
    Transition."""

    @abstractmethod
    def __call__(self, t: Transition) -> None: ...

    @abstractmethod
    def columns(self, cols: dict[str, Any]) -> None: ...


class Outcome(Named):
    """How a TCP handshake ended, as users ask it: did the port answer?"""

    ESTABLISHED = "established"
    REFUSED = "refused"
    """The SYN was answered with RST."""
    UNANSWERED = "unanswered"
    """No SYN-ACK and no RST came back."""
    RESET = "reset"
    """A SYN-ACK came, then a RST before the handshake completed."""
    HALF_OPEN = "half-open"
    """SYN and SYN-ACK seen, the final ACK never."""
    MID_STREAM = "mid-stream"
    """The capture began after the handshake."""


@dataclass(slots=True)
class TcpOptions:
    """What one side offered in its SYN or SYN-ACK."""

    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    timestamps: bool = False
    kinds: tuple[int, ...] = ()


@dataclass(slots=True)
class Handshake:
    syn_ns: int | None = None
    """Time of the first SYN."""
    syn_ack_ns: int | None = None
    ack_ns: int | None = None
    """Time of the originator's ACK that completed the handshake."""
    syn_retransmits: int = 0
    syn_ack_retransmits: int = 0
    client_options: TcpOptions | None = None
    server_options: TcpOptions | None = None
    outcome: Outcome = Outcome.MID_STREAM

    @property
    def server_rtt_ns(self) -> int | None:
        """SYN to SYN-ACK: the network to the server and back, plus its accept latency.

        Measured from the last SYN sent before the SYN-ACK, so a retried SYN does not count the
        retry timeout as round-trip time."""
        return None if self.syn_ns is None or self.syn_ack_ns is None else (
            self.syn_ack_ns - self.syn_ns)

    @property
    def client_rtt_ns(self) -> int | None:
        """SYN-ACK to ACK: the network to the client and back."""
        return None if self.syn_ack_ns is None or self.ack_ns is None else (
            self.ack_ns - self.syn_ack_ns)


@dataclass(slots=True)
class TcpAnalysis:
    """Wireshark/tcptrace sequence analysis, counted over both directions."""

    retransmissions: int = 0
    fast_retransmissions: int = 0
    spurious_retransmissions: int = 0
    out_of_order: int = 0
    lost_segments: int = 0
    dup_acks: int = 0
    zero_windows: int = 0
    zero_window_probes: int = 0
    keep_alives: int = 0
    window_full: int = 0
    window_updates: int = 0


@dataclass(slots=True)
class Connection:
    """One connection (TCP) or flow (UDP, ICMP), with Zeek's conn.log fields."""

    uid: str
    ts_ns: int
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str
    """'tcp', 'udp', 'icmp' (ICMPv6 too, as Zeek logs it)."""
    service: str = ""
    """The responder port's service name (services.py): what the port suggests, not a
    protocol seen; reports write it as ``port_service``, never as Zeek's ``service``."""
    duration_ns: int = 0
    orig_bytes: int = 0
    resp_bytes: int = 0
    conn_state: str = ""
    missed_bytes: int = 0
    history: str = ""
    orig_pkts: int = 0
    orig_ip_bytes: int = 0
    resp_pkts: int = 0
    resp_ip_bytes: int = 0
    tunnel_parents: list[str] = field(default_factory=list)
    community_id: str = ""
    # --- beyond Zeek ---
    ip_version: int = 4
    vlan: int | None = None
    orig_state: TcpState | None = None
    resp_state: TcpState | None = None
    transitions: list[Transition] = field(default_factory=list)
    handshake: Handshake | None = None
    analysis: TcpAnalysis | None = None
    completeness: int = 0
    """Wireshark's tcp.completeness bitmask: 1 SYN, 2 SYN-ACK, 4 ACK, 8 data, 16 FIN, 32 RST."""
    end_reason: EndReason = EndReason.END_OF_CAPTURE
    last_ns: int = 0
    """Time of the last packet seen (Zeek's duration may stop earlier)."""
    first_frame: int = 0
    last_frame: int = 0
    segment_marks: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    """With TrackerConfig(segment_marks=True): (frame, ts_ns, counters moved) per TCP segment,
    the per-packet analysis flags (Wireshark's tcp.analysis.*) behind the totals."""
    icmp_errors: list[tuple[int, int]] = field(default_factory=list)
    """(type, code) of ICMP errors that quoted this flow: a UDP probe answered by port
    unreachable shows (3, 3) here and counts as refused."""
    icmp_code: int | None = None
    """ICMP flows: the code of the originator's first message, whose type is ``orig_p``
    (Zeek's resp_p is the counterpart type for request/reply pairs, so it cannot say)."""
    ip_proto: int | None = None
    """The IP protocol number (conn.log's ``ip_proto``): 6, 17, 1 or 58, or for
    ``unknown_transport`` the protocol (89 OSPF, 132 SCTP ...). None: derived from proto."""
    end_frame: int = 0
    end_phase: int = END_CAPTURE
    """Where the tracker ended it: ``end_order`` (a tracker emits connections in that order,
    and in creation order within one place, so flow shards merge back into one run's order:
    pipeline/shards.py)."""

    @property
    def server_port(self) -> int:
        return self.resp_p
