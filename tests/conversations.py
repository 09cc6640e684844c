"""Realistic multi-connection TCP conversations for the tracker's differential test
(tests/test_tracker_conversations.py), built as Ethernet frames and written as a pcap.

A conversation is a few connections between a small pool of hosts and ports (so host pairs
repeat, which spreads them over the shards of ``--workers 2``, and 4-tuples repeat, which makes
port reuse). Each connection is a script: an opening (handshake, SYN retries, a lost or
repeated SYN-ACK, simultaneous open, a rejected or unanswered SYN, a capture that starts after
the SYN or mid-stream), then steps (data from either side that is delivered, lost and
retransmitted later, lost for good, duplicated, reordered or overlapped; pure, duplicate and
zero-window ACKs with window probes; keep-alives; spurious retransmissions; FIN and RST from
either side). A small model of both endpoints turns the script into segments with the sequence
and acknowledgment numbers real stacks would send: an ACK acknowledges what its sender has
received in order, so a hole makes duplicate ACKs. Initial sequence numbers are often just below
2**32 so that the data wraps. The connections' packets are interleaved at random (those that
share a 4-tuple one after the other), with gaps from a microsecond to minutes (timers fire).

Frames are Ethernet/IPv4 or IPv6/TCP with correct checksums unless a frame is marked bad;
SYNs carry MSS, window scale, SACK-permitted and timestamps options in a drawn combination.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MOD = 2**32

CLIENTS_V4 = [bytes([10, 0, 0, i]) for i in (1, 2, 3)]
SERVERS_V4 = [bytes([10, 0, 1, i]) for i in (1, 2)]
CLIENTS_V6 = [bytes.fromhex("20010db8000000000000000000000001"),
              bytes.fromhex("20010db8000000000000000000000002")]
SERVERS_V6 = [bytes.fromhex("20010db8000000010000000000000001")]
CLIENT_PORTS = (40000, 40001, 51515)
SERVER_PORTS = (80, 443, 22, 8080, 5001)
"""5001 is no well-known port: which side is the server is inferred from the packets."""

OPENINGS = ("handshake", "handshake", "handshake", "syn_retries", "synack_lost",
            "synack_repeated", "ack_lost", "simultaneous", "synack_first", "midstream",
            "rejected", "unanswered", "syn_data")
STEPS = ("data", "data", "data", "data", "ack", "dupacks", "zero_window", "keepalive",
         "retransmit", "fin", "rst", "window_full")
DATA_MODES = ("delivered", "delivered", "delivered", "lost", "lost_for_good", "duplicated",
              "reordered", "overlapped", "not_captured")
"""``lost``: dropped in the network, retransmitted by a later step; ``lost_for_good``: never
sent again (the peer's ACKs stay below it); ``not_captured``: delivered and acknowledged, but
the capture missed it (Zeek's content gap)."""
CLOSINGS = ("fin_client_first", "fin_server_first", "fin_both_at_once", "half_close",
            "rst_client", "rst_server", "fin_then_rst", "fin_with_data", "none", "none")
SIZES = (1, 10, 100, 536, 1000, 1448, 1460)
GAPS_NS = (0, 1_000, 1_000, 20_000, 20_000, 300_000, 300_000, 5_000_000, 40_000_000,
           250_000_000)
LONG_GAPS_NS = (1_500_000_000, 6_000_000_000, 70_000_000_000, 400_000_000_000)
"""Between consecutive packets: mostly short, at a few drawn places long enough for the
attempt, close, reset and inactivity timers (5 s, 5 s, 5 s, 300 s by default)."""
BACKWARD_NS = (1_000, 3_000_000, 2_000_000_000, 400_000_000_000)
T0_NS = 1_700_000_000 * 10**9


@dataclass
class Segment:
    """One TCP segment of a connection, numbers relative to the sender's / receiver's ISN."""

    from_client: bool
    flags: int
    seq: int
    ack: int
    payload: int
    win: int
    options: bytes = b""
    absolute: bool = False
    """``seq`` is the number itself (a RST answering a SYN has 0), not relative to the ISN."""


@dataclass
class Endpoint:
    """What one side has sent and received: enough to number its segments as a stack would."""

    nxt: int = 1
    """Next new sequence number (relative to its ISN; the SYN is 0)."""
    win: int = 65535
    received: list[tuple[int, int]] = field(default_factory=list)
    """Byte ranges of the peer's data that arrived (relative to the peer's ISN)."""
    rcv_nxt: int = 1
    """The peer's next expected byte: everything before it arrived in order."""
    peer_fin: int | None = None
    fin_sent: bool = False
    lost: list[tuple[int, int]] = field(default_factory=list)
    """Segments sent but not captured (seq, length), retransmitted by a later step."""
    last: tuple[int, int] | None = None
    """The last data segment sent (seq, length): what a spurious retransmission repeats."""
    held: list[Segment] = field(default_factory=list)
    """A reordered segment: captured after this side's next one."""

    def receive(self, seq: int, length: int, fin: bool) -> None:
        if length:
            self.received.append((seq, seq + length))
        if fin:
            self.peer_fin = seq + length
        moved = True
        while moved:
            moved = False
            for a, b in self.received:
                if a <= self.rcv_nxt < b:
                    self.rcv_nxt = b
                    moved = True
        if self.peer_fin is not None and self.rcv_nxt == self.peer_fin:
            self.rcv_nxt += 1


@dataclass
class ConnectionScript:
    client: bytes
    server: bytes
    cport: int
    sport: int
    isn_c: int
    isn_s: int
    opening: str
    steps: list[tuple[str, bool, int, str, bool]]
    closing: str
    syn_options: tuple[bytes, bytes]
    wins: tuple[int, int]


class Model:
    """Both endpoints of one connection; each method appends the segments of one step."""

    def __init__(self, script: ConnectionScript) -> None:
        self.s = script
        self.c = Endpoint(win=script.wins[0])
        self.r = Endpoint(win=script.wins[1])
        self.out: list[Segment] = []
        self.dead = False

    def side(self, client: bool) -> tuple[Endpoint, Endpoint]:
        return (self.c, self.r) if client else (self.r, self.c)

    def emit(self, client: bool, flags: int, seq: int, payload: int = 0, *,
             win: int | None = None, options: bytes = b"", deliver: bool = True,
             hold: bool = False, absolute: bool = False) -> None:
        """One segment from the client (or the server); ``deliver`` False: the peer drops it
        (a probe into a zero window, a keep-alive); ``hold``: captured (and received) after
        this side's next segment with data or FIN."""
        me, _ = self.side(client)
        ack = me.rcv_nxt if flags & ACK else 0
        seg = Segment(client, flags, seq, ack, payload, me.win if win is None else win,
                      options, absolute)
        if hold:
            me.held.append(seg)
            return
        self.capture(seg, deliver)
        if me.held and (payload or flags & FIN):
            for held in me.held:
                self.capture(held, True)
            me.held.clear()

    def capture(self, seg: Segment, deliver: bool) -> None:
        self.out.append(seg)
        _, peer = self.side(seg.from_client)
        if deliver and not seg.flags & (SYN | RST):
            peer.receive(seg.seq, seg.payload, bool(seg.flags & FIN))

    def flush(self) -> None:
        for e in (self.c, self.r):
            for held in e.held:
                self.capture(held, True)
            e.held.clear()

    # --- opening -------------------------------------------------------------------------

    def open(self) -> None:
        kind = self.s.opening
        copt, sopt = self.s.syn_options
        syn = lambda: self.emit(True, SYN, 0, win=self.c.win, options=copt)  # noqa: E731
        synack = lambda: self.emit(False, SYN | ACK, 0, win=self.r.win,  # noqa: E731
                                   options=sopt)
        if kind == "midstream":
            return
        if kind == "synack_first":
            synack()
            self.emit(True, ACK, 1)
            return
        if kind == "syn_data":  # TCP Fast Open: data on the SYN, acknowledged by the SYN-ACK
            self.emit(True, SYN, 0, 100, win=self.c.win, options=copt)
            self.r.receive(1, 100, False)
            self.c.nxt = 101
            synack()
            self.emit(True, ACK, self.c.nxt)
            return
        syn()
        if kind == "syn_retries":
            syn()
            syn()
        if kind == "unanswered":
            syn()
            self.dead = True
            return
        if kind == "rejected":
            self.emit(False, RST | ACK, 0, absolute=True)
            self.dead = True
            return
        if kind == "synack_lost":  # the SYN-ACK was not captured; the client tries again
            syn()
        if kind == "simultaneous":  # both send a SYN, then both acknowledge the other's
            self.emit(False, SYN, 0, win=self.r.win, options=sopt)
            self.emit(True, SYN | ACK, 0, win=self.c.win, options=copt)
            synack()
            return
        synack()
        if kind == "synack_repeated":
            synack()
        if kind != "ack_lost":
            self.emit(True, ACK, 1)

    # --- steps ---------------------------------------------------------------------------

    def data(self, client: bool, size: int, mode: str, acked: bool) -> None:
        me, peer = self.side(client)
        if me.fin_sent:
            return
        seq = me.nxt
        me.nxt += size
        me.last = (seq, size)
        flags = ACK | PSH
        if mode == "lost":
            me.lost.append((seq, size))
        elif mode == "not_captured":
            peer.receive(seq, size, False)
        elif mode == "lost_for_good":
            pass
        elif mode == "duplicated":
            self.emit(client, flags, seq, size)
            self.emit(client, flags, seq, size)
        elif mode == "reordered":
            self.emit(client, flags, seq, size, hold=True)
        elif mode == "overlapped":  # the next segment repeats half of this one, adds more
            self.emit(client, flags, seq, size)
            half = size // 2
            more = max(1, size - half)
            me.nxt += more
            self.emit(client, flags, seq + size - half, half + more)
        else:
            self.emit(client, flags, seq, size)
        if acked:
            self.emit(not client, ACK, peer.nxt)

    def retransmit(self, client: bool) -> None:
        me, _ = self.side(client)
        if me.lost:
            seq, size = me.lost.pop(0)
        elif me.last is not None:  # nothing lost: a spurious retransmission
            seq, size = me.last
        else:
            return
        self.emit(client, ACK | PSH, seq, size)

    def step(self, kind: str, client: bool, size: int, mode: str, acked: bool) -> None:
        me, peer = self.side(client)
        if kind == "data":
            self.data(client, size, mode, acked)
        elif kind == "retransmit":
            self.retransmit(client)
        elif kind == "ack":
            self.emit(client, ACK, me.nxt)
        elif kind == "dupacks":
            for _ in range(3):
                self.emit(client, ACK, me.nxt)
        elif kind == "zero_window":  # me's buffer is full; the peer probes it; it reopens
            self.emit(client, ACK, me.nxt, win=0)
            if not peer.fin_sent:
                self.emit(not client, ACK, peer.nxt, 1, deliver=False)
                self.emit(client, ACK, me.nxt, win=0)
            self.emit(client, ACK, me.nxt)
        elif kind == "keepalive":  # one byte (or none) below the next, answered by an ACK
            self.emit(client, ACK, me.nxt - 1, 1 if acked else 0, deliver=False)
            self.emit(not client, ACK, peer.nxt)
        elif kind == "fin":
            self.fin(client, repeated=acked)
        elif kind == "rst":
            self.emit(client, RST | ACK if acked else RST, me.nxt)
        elif kind == "window_full":  # the peer offers a small window; this side fills it
            raw = max(1, size // 4)
            self.emit(not client, ACK, peer.nxt, win=raw)
            self.data(client, min(raw << self.shift(not client), 60_000), mode, acked)

    def fin(self, client: bool, *, repeated: bool = False, acked: bool = True,
            data: int = 0) -> None:
        """A FIN (with ``data`` bytes before it in the same segment)."""
        me, peer = self.side(client)
        if me.fin_sent:
            return
        me.fin_sent = True
        seq = me.nxt
        me.nxt += data + 1
        self.emit(client, FIN | ACK | (PSH if data else 0), seq, data)
        if repeated:
            self.emit(client, FIN | ACK | (PSH if data else 0), seq, data)
        if acked:
            self.emit(not client, ACK, peer.nxt)

    def shift(self, client: bool) -> int:
        """The window scale of what this side advertises: its SYN's, when both SYNs carried
        the option (RFC 7323) and the handshake was seen; else none."""
        if self.s.opening in ("midstream", "synack_first"):
            return 0
        own, other = (self.s.syn_options if client else self.s.syn_options[::-1])
        mine, theirs = _wscale(own), _wscale(other)
        return 0 if mine is None or theirs is None else min(mine, 14)

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        kind = self.s.closing
        if kind == "fin_client_first":
            self.fin(True)
            self.fin(False)
        elif kind == "fin_server_first":
            self.fin(False)
            self.fin(True)
        elif kind == "fin_both_at_once":
            self.fin(True, acked=False)
            self.fin(False, acked=False)
            self.emit(True, ACK, self.c.nxt)
            self.emit(False, ACK, self.r.nxt)
        elif kind == "half_close":  # the client is done; the server still sends, then ends
            self.fin(True)
            self.data(False, 1000, "delivered", True)
            self.data(False, 100, "delivered", True)
            self.fin(False)
        elif kind == "rst_client":
            self.emit(True, RST | ACK, self.c.nxt)
        elif kind == "rst_server":
            self.emit(False, RST, self.r.nxt)
        elif kind == "fin_with_data":  # the last response and the FIN in one segment
            self.fin(False, data=300)
            self.fin(True)
        elif kind == "fin_then_rst":
            self.fin(True, acked=False)
            self.emit(False, RST | ACK, self.r.nxt)

    def segments(self) -> list[Segment]:
        self.open()
        if not self.dead:
            for kind, client, size, mode, acked in self.s.steps:
                self.step(kind, client, size, mode, acked)
            self.close()
        self.flush()
        return self.out


# --- frames ---------------------------------------------------------------------------------


def _checksum(data: bytes) -> bytes:
    """The Internet checksum of ``data``, as the two bytes to put in the header."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return struct.pack("!H", ~s & 0xFFFF)


PAYLOAD = bytes(range(256)) * 6


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int, ack: int,
              win: int, options: bytes, payload_len: int, bad_checksum: bool = False) -> bytes:
    """Ethernet / IPv4 or IPv6 (by the address length) / TCP, checksums computed."""
    payload = PAYLOAD[:payload_len]
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBH", sport, dport, seq % MOD, ack % MOD, offset << 4, flags,
                      min(win, 0xFFFF))
    rest = b"\0\0" + options + payload  # urgent pointer, options, data
    length = 20 + len(options) + payload_len
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, length)
    else:
        pseudo = src + dst + struct.pack("!IxxxB", length, 6)
    csum = _checksum(pseudo + tcp + b"\0\0" + rest)
    if bad_checksum:
        csum = bytes([csum[0] ^ 0x5A, csum[1]])
    segment = tcp + csum + rest
    if len(src) == 4:
        ip = struct.pack("!BBHHHBB", 0x45, 0, 20 + length, 0, 0x4000, 64, 6)
        ip += _checksum(ip + b"\0\0" + src + dst) + src + dst
        ethertype = b"\x08\x00"
    else:
        ip = struct.pack("!IHBB", 6 << 28, length, 6, 64) + src + dst
        ethertype = b"\x86\xdd"
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + ethertype + ip + segment


def _wscale(options: bytes) -> int | None:
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if kind == 3:
            return options[i + 2]
        i += options[i + 1]
    return None


def syn_options(mss: bool, wscale: int | None, sack: bool, timestamps: bool) -> bytes:
    out = b""
    if mss:
        out += b"\x02\x04\x05\xb4"
    if sack:
        out += b"\x04\x02"
    if timestamps:
        out += b"\x08\x0a" + struct.pack("!II", 12345, 0)
    if wscale is not None:
        out += b"\x01\x03\x03" + bytes([wscale])
    out += b"\x01" * (-len(out) % 4)
    return out


@dataclass
class Conversation:
    """Timestamped frames, in capture order, and what made them (for a failing example)."""

    frames: list[tuple[int, bytes]]
    scripts: list[ConnectionScript]

    def write_pcap(self, path: Path) -> None:
        """A nanosecond pcap, Ethernet."""
        out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
        for ts, frame in self.frames:
            out.append(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)))
            out.append(frame)
        path.write_bytes(b"".join(out))


# --- strategies -----------------------------------------------------------------------------

isns = st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 20_000, MOD - 1),
                 st.integers(0, 2_000))
steps = st.tuples(st.sampled_from(STEPS), st.booleans(), st.sampled_from(SIZES),
                  st.sampled_from(DATA_MODES), st.booleans())
options = st.builds(syn_options, st.booleans(), st.sampled_from((None, 0, 2, 7, 14)),
                    st.booleans(), st.booleans())


@st.composite
def connection_scripts(draw: st.DrawFn) -> ConnectionScript:
    v6 = draw(st.integers(0, 4)) == 0
    client = draw(st.sampled_from(CLIENTS_V6 if v6 else CLIENTS_V4))
    server = draw(st.sampled_from(SERVERS_V6 if v6 else SERVERS_V4))
    return ConnectionScript(
        client=client, server=server, cport=draw(st.sampled_from(CLIENT_PORTS)),
        sport=draw(st.sampled_from(SERVER_PORTS)), isn_c=draw(isns), isn_s=draw(isns),
        opening=draw(st.sampled_from(OPENINGS)),
        steps=draw(st.lists(steps, max_size=14)), closing=draw(st.sampled_from(CLOSINGS)),
        syn_options=(draw(options), draw(options)),
        wins=(draw(st.sampled_from((65535, 29200, 1024))),
              draw(st.sampled_from((65535, 28960, 512)))))


@st.composite
def conversations(draw: st.DrawFn, max_connections: int = 6) -> Conversation:
    scripts = draw(st.lists(connection_scripts(), min_size=1, max_size=max_connections))
    # Connections on one 4-tuple follow each other (port reuse); the others interleave.
    lanes: dict[tuple[bytes, ...], list[tuple[ConnectionScript, Segment]]] = {}
    for script in scripts:
        key = tuple(sorted([script.client + script.cport.to_bytes(2, "big"),
                            script.server + script.sport.to_bytes(2, "big")]))
        lanes.setdefault(key, []).extend((script, seg) for seg in Model(script).segments())
    picks = [i for i, lane in enumerate(lanes.values()) for _ in lane]
    order = draw(st.permutations(picks))
    queues = [iter(lane) for lane in lanes.values()]
    gaps = draw(st.lists(st.sampled_from(GAPS_NS), min_size=len(order), max_size=len(order)))
    for n, gap in draw(st.dictionaries(st.integers(0, max(0, len(order) - 1)),
                                       st.sampled_from(LONG_GAPS_NS), max_size=2)).items():
        if n < len(gaps):
            gaps[n] = gap
    if draw(st.integers(0, 7)) == 0:  # a clock step back (merged or re-timed captures)
        n = draw(st.integers(0, max(0, len(order) - 1)))
        if n < len(gaps):
            gaps[n] = -draw(st.sampled_from(BACKWARD_NS))
    bad = draw(st.sets(st.integers(0, max(0, len(order) - 1)), max_size=2)
               if draw(st.integers(0, 5)) == 0 else st.just(set()))
    ts = T0_NS
    frames = []
    for n, (lane, gap) in enumerate(zip(order, gaps, strict=True)):
        script, seg = next(queues[lane])
        ts += gap
        src, dst = ((script.client, script.server) if seg.from_client
                    else (script.server, script.client))
        sp, dp = ((script.cport, script.sport) if seg.from_client
                  else (script.sport, script.cport))
        own, peer = ((script.isn_c, script.isn_s) if seg.from_client
                     else (script.isn_s, script.isn_c))
        ack = peer + seg.ack if seg.flags & ACK else 0
        seq = seg.seq if seg.absolute else own + seg.seq
        frames.append((ts, tcp_frame(src, dst, sp, dp, seg.flags, seq, ack, seg.win,
                                     seg.options, seg.payload, n in bad)))
    return Conversation(frames, scripts)
