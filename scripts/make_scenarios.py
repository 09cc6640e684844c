#!/usr/bin/env python3
"""Craft connection-tracker scenario captures (captures/scenario-*.pcap) and their expected results.

Each scenario is one small, realistic capture (client 192.0.2.10, servers in 198.51.100.0/24
and 203.0.113.0/24, millisecond round trips, correct checksums) of one TCP/UDP/ICMP situation
a connection tracker must get right: the ways a TCP connection opens and closes, resets,
retransmissions, keep-alives, zero windows, sequence wraparound, IPv6, UDP, ICMP errors.

``captures/expected/scenario-NAME.conns.json`` holds, per expected connection (in order of its
first packet), the values ``portlens conns --format json`` must print. They are derived from
the scenario itself, never from running portlens:

* Zeek's conn.log fields (``conn_state``, ``history``, packets, IP bytes, ``orig_bytes`` /
  ``resp_bytes``, ``missed_bytes``) by the rules of docs/zeek-rules.md with portlens'
  defaults (checksums are not verified, like ``zeek -C``; Zeek's default
  ``likely_server_ports``; ``report_gaps_for_partial`` false). Packet and IP-byte counts are
  summed here from the crafted frames (Zeek counts every packet, §8.2); everything else is
  written out per scenario, with the reasoning next to it.
* ``orig_state`` / ``resp_state`` / ``transitions``: the RFC 9293 observer table of
  src/portlens/track/states.py applied by hand to each segment, in this order: its SYN or
  SYN-ACK (the sender's "send", then the receiver's "receive"), what its ACK acknowledges
  (the receiver's SYN while the receiver is SYN-RECEIVED, ack = ISN + 1; the receiver's FIN,
  ack >= FIN + 1), then its FIN (send, receive), then its RST (send, receive); only changes
  of state are listed. A connection whose capture starts mid-stream starts with both ends
  ESTABLISHED, otherwise the originator CLOSED and the responder LISTEN. The spellings are
  repeated below, not imported, so the expectations do not move when the code does.
* ``analysis.*``: Wireshark's sequence analysis, as the number of frames that carry the flag
  (``tcp.analysis.retransmission`` ... ; a fast retransmission carries both its own flag and
  the retransmission flag). ``--check-tshark`` compares these with tshark.

Keys whose value is not certain are left out (e.g. ``end_reason`` of a connection that Zeek
ends because a new SYN reused its tuple). Every expected file also carries ``frames`` (just
the frame numbers) because tests/test_own_captures.py reads every ``expected/*.json`` and
checks the frame count with ``portlens packets``.

The scenario table for captures/README.md is written only with ``--readme``: make_captures.py
rewrites README.md whole and its determinism test compares it, so the table waits until that
script keeps the section between the markers.

Packets are built with the helpers of scripts/make_captures.py (scapy for headers, checksums
computed there) and written as microsecond pcap; the output is deterministic
(tests/test_scenarios.py re-runs the script and compares bytes).

Usage::

    python scripts/make_scenarios.py                 # (re)write captures/scenario-* here
    python scripts/make_scenarios.py --out /tmp/x    # write elsewhere
    python scripts/make_scenarios.py --check-tshark  # compare analysis.* with tshark's flags
    python scripts/make_scenarios.py --readme        # also put the table into README.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from make_captures import (
    BASE_NS,
    C4,
    C6,
    DEFAULT_OUT,
    L4,
    LINKTYPE_ETHERNET,
    MAC_C,
    MAC_S,
    S4,
    S6,
    Exp,
    Pkt,
    Rec,
    TcpOpt,
    ether,
    fill,
    icmp,
    ip4,
    ip6,
    tcp,
    text,
    udp,
    write_pcap,
)

P2P = "203.0.113.5"
"""The other peer of the simultaneous open."""
DNS4 = "198.51.100.53"
"""A resolver."""
MAC_P = bytes.fromhex("020000000003")

FIN, SYN, RST, PSH, ACK = 0x1, 0x2, 0x4, 0x8, 0x10
FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}

# RFC 9293 states and observer events, spelled as TcpState / Event values in track/states.py.
CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED = "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED"
ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2 = "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2"
CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT = "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"
SND_SYN, RCV_SYN = "send SYN", "receive SYN"
SND_SYN_ACK, RCV_SYN_ACK = "send SYN-ACK", "receive SYN-ACK"
RCV_ACK_OF_SYN = "receive ACK of its SYN"
SND_FIN, RCV_FIN, RCV_ACK_OF_FIN = "send FIN", "receive FIN", "receive ACK of its FIN"
SND_FIN_CROSSED = "send FIN crossing the peer's"
SND_RST, RCV_RST = "send RST", "receive RST"

ORIG, RESP = "orig", "resp"

# Option lists as the stacks send them.
WINDOWS_SYN: list[TcpOpt] = [("mss", 1460), ("nop",), ("ws", 8), ("nop",), ("nop",), ("sackok",)]
"""Windows SYN and SYN-ACK: no timestamps, so none are negotiated with a Linux client."""
LINUX_SYN_ACK_NO_TS: list[TcpOpt] = [("mss", 1460), ("nop",), ("nop",), ("sackok",), ("nop",),
                                     ("ws", 7)]
"""Linux SYN-ACK to a client that offered no timestamps."""


def linux_syn(tsval: int, mss: int = 1460) -> list[TcpOpt]:
    return [("mss", mss), ("sackok",), ("ts", tsval, 0), ("nop",), ("ws", 7)]


def windows_syn(mss: int = 1460) -> list[TcpOpt]:
    return [("mss", mss), ("nop",), ("ws", 8), ("nop",), ("nop",), ("sackok",)]


def sack(*blocks: tuple[int, int]) -> list[TcpOpt]:
    return [("nop",), ("nop",), ("sack", list(blocks))]


# ---------------------------------------------------------------------------------------------
# Building a scenario: hosts, segments, frames
# ---------------------------------------------------------------------------------------------


@dataclass
class Host:
    """One TCP/UDP endpoint and what it has sent so far (sequence numbers relative to its ISN)."""

    addr: str
    port: int
    mac: bytes
    ttl: int = 64
    isn: int = 0
    win: int = 502
    ip_id: int = 0x1000
    nxt: int = 0
    """Relative sequence number of the next new octet (1 after the SYN)."""

    def abs_seq(self, rel: int) -> int:
        return (self.isn + rel) % (1 << 32)


@dataclass
class Frame:
    ts_ns: int
    pkt: Pkt
    src: tuple[str, int]
    dst: tuple[str, int]
    proto: str
    ip_len: int


@dataclass
class Scenario:
    number: int
    name: str
    description: str
    frames: list[Frame] = field(default_factory=list)
    connections: list[Exp] = field(default_factory=list)

    @property
    def t0(self) -> int:
        return BASE_NS + (100 + self.number) * 3600 * 10**9

    @property
    def file(self) -> str:
        return f"scenario-{self.name}.pcap"

    # --- frames -------------------------------------------------------------------------------

    def _add(self, t_us: int, src: Host, dst: Host, l4: L4, proto: str, ports: bool) -> int:
        if self.frames:
            assert self.t0 + t_us * 1000 > self.frames[-1].ts_ns, "frames must advance in time"
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        if ":" in src.addr:
            ip = ip6(src.addr, dst.addr, l4, hlim=src.ttl)
        else:
            ip = ip4(src.addr, dst.addr, l4, ident=src.ip_id, ttl=src.ttl, df=proto != "icmp")
        pkt = ether(ip, src=src.mac, dst=dst.mac)
        ip_len = len(ip.raw)
        self.frames.append(Frame(
            self.t0 + t_us * 1000, pkt,
            (text(src.addr), src.port if ports else 0), (text(dst.addr), dst.port if ports else 0),
            proto, ip_len,
        ))
        return len(self.frames)

    def tcp(
        self,
        t_us: int,
        src: Host,
        dst: Host,
        flags: str,
        data: int | bytes = 0,
        *,
        seq: int | None = None,
        ack: int | None = None,
        win: int | None = None,
        opts: Sequence[TcpOpt] = (),
    ) -> int:
        """A segment from src to dst; seq/ack relative to the ISNs (default: src.nxt/dst.nxt)."""
        bits = 0
        for ch in flags:
            bits |= FLAG_BITS[ch]
        rel = src.nxt if seq is None else seq
        length = data if isinstance(data, int) else len(data)
        if bits & ACK:
            ack_abs = dst.abs_seq(dst.nxt if ack is None else ack)
        else:
            assert ack is None
            ack_abs = 0
        seg = tcp(src.port, dst.port, bits, seq=src.abs_seq(rel), ack=ack_abs,
                  win=src.win if win is None else win, data=data, opts=opts)
        if not bits & RST:
            src.nxt = max(src.nxt, rel + length + bool(bits & SYN) + bool(bits & FIN))
        return self._add(t_us, src, dst, seg, "tcp", ports=True)

    def udp(self, t_us: int, src: Host, dst: Host, data: bytes) -> int:
        return self._add(t_us, src, dst, udp(src.port, dst.port, data), "udp", ports=True)

    def icmp(self, t_us: int, src: Host, dst: Host, icmp_type: int, code: int,
             body: bytes) -> int:
        return self._add(t_us, src, dst, icmp(icmp_type, code, body), "icmp", ports=False)

    # --- expected connections -----------------------------------------------------------------

    def expect(
        self,
        frames: Sequence[int],
        orig: Host,
        resp: Host,
        proto: str,
        *,
        orig_p: int | None = None,
        resp_p: int | None = None,
        **values: Any,
    ) -> None:
        """One expected connection made of ``frames`` (1-based); counts summed from them."""
        o_ports = proto != "icmp"
        o_key = (text(orig.addr), orig.port if o_ports else 0)
        r_key = (text(resp.addr), resp.port if o_ports else 0)
        counts = {"orig": [0, 0], "resp": [0, 0]}
        for number in frames:
            fr = self.frames[number - 1]
            side = "orig" if (fr.src, fr.dst) == (o_key, r_key) else "resp"
            assert side == "orig" or (fr.src, fr.dst) == (r_key, o_key), f"frame {number}"
            assert fr.proto == proto
            counts[side][0] += 1
            counts[side][1] += fr.ip_len
        conn: Exp = {
            "id.orig_h": text(orig.addr),
            "id.orig_p": orig.port if orig_p is None else orig_p,
            "id.resp_h": text(resp.addr),
            "id.resp_p": resp.port if resp_p is None else resp_p,
            "proto": proto,
        }
        order = ["conn_state", "history"]
        for key in order:
            if key in values:
                conn[key] = values.pop(key)
        conn["orig_pkts"], conn["orig_ip_bytes"] = counts["orig"]
        conn["resp_pkts"], conn["resp_ip_bytes"] = counts["resp"]
        for key in ("orig_bytes", "resp_bytes"):
            conn[key] = values.pop(key)
        conn["missed_bytes"] = values.pop("missed_bytes", 0)
        for key in ("orig_state", "resp_state", "end_reason"):
            if key in values:
                conn[key] = values.pop(key)
        handshake = dict(values.pop("handshake", {}))
        for key in ("outcome", "syn_retransmits", "syn_ack_retransmits"):
            if key in handshake:
                conn[f"handshake.{key}"] = handshake.pop(key)
        assert not handshake, handshake
        for key, value in values.pop("analysis", {}).items():
            assert key in ANALYSIS_FLAGS, key
            conn[f"analysis.{key}"] = value
        transitions = values.pop("transitions")
        assert not values, f"unknown keys {sorted(values)}"
        conn["transitions"] = [list(t) for t in transitions]
        if transitions and proto == "tcp":
            check_final_states(conn)
        self.connections.append(conn)


ANALYSIS_FLAGS = {
    "retransmissions": "tcp.analysis.retransmission",
    "fast_retransmissions": "tcp.analysis.fast_retransmission",
    "spurious_retransmissions": "tcp.analysis.spurious_retransmission",
    "out_of_order": "tcp.analysis.out_of_order",
    "lost_segments": "tcp.analysis.lost_segment",
    "dup_acks": "tcp.analysis.duplicate_ack",
    "zero_windows": "tcp.analysis.zero_window",
    "zero_window_probes": "tcp.analysis.zero_window_probe",
    "keep_alives": "tcp.analysis.keep_alive",
    "window_full": "tcp.analysis.window_full",
    "window_updates": "tcp.analysis.window_update",
}
"""TcpAnalysis field -> the Wireshark display-filter field whose frames it counts."""

CLEAN = {"retransmissions": 0, "out_of_order": 0, "dup_acks": 0, "zero_windows": 0,
         "zero_window_probes": 0, "keep_alives": 0}
"""Wireshark flags none of these in an orderly connection."""


def check_final_states(conn: Exp) -> None:
    """The transitions chain per endpoint and end in orig_state / resp_state."""
    first = {ORIG: CLOSED, RESP: LISTEN}
    if conn.get("handshake.outcome") == "mid-stream":
        first = {ORIG: ESTABLISHED, RESP: ESTABLISHED}
    state = dict(first)
    for endpoint, _event, old, new in conn["transitions"]:
        assert state[endpoint] == old, (conn["transitions"], endpoint, old)
        assert old != new
        state[endpoint] = new
    assert conn["orig_state"] == state[ORIG], conn
    assert conn["resp_state"] == state[RESP], conn


# ---------------------------------------------------------------------------------------------
# Transition sequences (derived from the table in track/states.py)
# ---------------------------------------------------------------------------------------------

Tr = tuple[str, str, str, str]


def other(endpoint: str) -> str:
    return RESP if endpoint == ORIG else ORIG


def opening() -> list[Tr]:
    """Client SYN, server SYN-ACK, client ACK (ack = server ISN + 1)."""
    return [
        (ORIG, SND_SYN, CLOSED, SYN_SENT),  # the listener stays LISTEN on "receive SYN"
        (RESP, SND_SYN_ACK, LISTEN, SYN_RECEIVED),
        (ORIG, RCV_SYN_ACK, SYN_SENT, ESTABLISHED),
        (RESP, RCV_ACK_OF_SYN, SYN_RECEIVED, ESTABLISHED),
    ]


def closing(first: str) -> list[Tr]:
    """``first`` sends FIN; the peer ACKs it (in a pure ACK or in its own FIN-ACK), sends FIN;
    ``first`` ACKs. ``first`` ends TIME-WAIT, the peer CLOSED. A FIN-ACK that acknowledges
    ``first``'s FIN is read ACK first: ``first`` receives the ACK of its FIN before the
    segment's own FIN is sent and received, so both forms give the same list."""
    second = other(first)
    return [
        (first, SND_FIN, ESTABLISHED, FIN_WAIT_1),
        (second, RCV_FIN, ESTABLISHED, CLOSE_WAIT),
        (first, RCV_ACK_OF_FIN, FIN_WAIT_1, FIN_WAIT_2),
        (second, SND_FIN, CLOSE_WAIT, LAST_ACK),
        (first, RCV_FIN, FIN_WAIT_2, TIME_WAIT),
        (second, RCV_ACK_OF_FIN, LAST_ACK, CLOSED),
    ]


def final(first_closer: str) -> dict[str, str]:
    return {f"{first_closer}_state": TIME_WAIT, f"{other(first_closer)}_state": CLOSED}


ESTABLISHED_HS = {"outcome": "established", "syn_retransmits": 0, "syn_ack_retransmits": 0}


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


def http_get(path: str, host: str, *, close: bool = False) -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\n"
            f"Accept: */*\r\n{conn}\r\n").encode()


def http_response_head(length: int, *, close: bool = False) -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n{conn}\r\n").encode()


def body(n: int, seed: int) -> bytes:
    return fill(n, seed)


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(ident: int, name: str) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack(
        "!HH", 1, 1)


def dns_answer(ident: int, name: str, addr: str) -> bytes:
    question = dns_name(name) + struct.pack("!HH", 1, 1)
    answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + bytes(
        int(x) for x in addr.split("."))
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer


# ---------------------------------------------------------------------------------------------
# The scenarios
# ---------------------------------------------------------------------------------------------

Builder = Callable[[], Scenario]
BUILDERS: list[Builder] = []


def scenario(fn: Builder) -> Builder:
    BUILDERS.append(fn)
    return fn


def client(port: int, isn: int, **kw: Any) -> Host:
    """A Linux client: window 502 << 7."""
    return Host(C4, port, MAC_C, isn=isn, **kw)


def server(port: int, isn: int, addr: str = S4, **kw: Any) -> Host:
    """A Windows-like server by default: TTL 128 minus 12 hops, window 1026 << 8."""
    kw.setdefault("ttl", 116)
    kw.setdefault("win", 1026)
    return Host(addr, port, MAC_S, isn=isn, **kw)


@scenario
def close_client_first() -> Scenario:
    sc = Scenario(1, "close-client-first",
                  "TLS-sized exchange on 443, RTT 20 ms; the client closes first: FIN, server "
                  "ACK, server FIN, client ACK (four-way close)")
    c, s = client(50001, 0x1F3A5C01, ip_id=0x3A10), server(443, 0x8B2E4A10, ip_id=0x5120)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3050112))
    sc.tcp(20_150, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(20_210, c, s, "A")
    sc.tcp(20_400, c, s, "PA", 517)
    sc.tcp(41_020, s, c, "PA", 1200)
    sc.tcp(41_080, c, s, "A")
    sc.tcp(41_300, c, s, "FA")  # 7
    sc.tcp(61_500, s, c, "A")
    sc.tcp(61_700, s, c, "FA")  # 9: completes the close (Zeek duration stops here)
    sc.tcp(61_760, c, s, "A")
    sc.expect(range(1, 11), c, s, "tcp", conn_state="SF", history="ShADdFaf",
              orig_bytes=517, resp_bytes=1200, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def close_server_first() -> Scenario:
    sc = Scenario(2, "close-server-first",
                  "HTTP/1.1 request with Connection: close on port 80, RTT 18 ms; the server "
                  "closes first: FIN, client ACK, client FIN, server ACK")
    c, s = client(50002, 0x6A0B12C4), server(80, 0x23D41877)
    req = http_get("/status", "www.example.org", close=True)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3051000))
    sc.tcp(18_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(18_060, c, s, "A")
    sc.tcp(18_150, c, s, "PA", req)
    sc.tcp(36_300, s, c, "A")  # delayed ACK of the request: 'a'
    sc.tcp(36_900, s, c, "PA", http_response_head(400, close=True) + body(400, 2))
    sc.tcp(36_960, c, s, "A")
    sc.tcp(37_100, s, c, "FA")  # 8
    sc.tcp(37_160, c, s, "A")
    sc.tcp(37_400, c, s, "FA")  # 10: completes the close
    sc.tcp(55_500, s, c, "A")
    resp_len = len(http_response_head(400, close=True)) + 400
    sc.expect(range(1, 12), c, s, "tcp", conn_state="SF", history="ShADadfF",
              orig_bytes=len(req), resp_bytes=resp_len, end_reason="fin", **final(RESP),
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(RESP))
    return sc


@scenario
def simultaneous_open() -> Scenario:
    sc = Scenario(3, "simultaneous-open",
                  "peer-to-peer simultaneous open seen mid-path (7.5 ms to each peer): both send "
                  "SYN, both answer SYN-ACK; Zeek ends the first SYN's connection when the "
                  "second SYN (other ISN) arrives: two connections")
    a = Host(C4, 40000, MAC_C, isn=0x0A1B2C3D, win=1026, ip_id=0x0100)
    b = Host(P2P, 40001, MAC_P, isn=0x5E6F7081, win=1026, ttl=118, ip_id=0x7700)
    sc.tcp(0, a, b, "S", win=65535, opts=WINDOWS_SYN)  # 1: conn 1, orig A
    sc.tcp(300, b, a, "S", win=65535, opts=WINDOWS_SYN)  # 2: new ISN -> Zeek reuse, conn 2
    sc.tcp(15_000, b, a, "SA", seq=0, win=65535, opts=WINDOWS_SYN)  # 3: B (SYN-SENT) answers
    sc.tcp(15_300, a, b, "SA", seq=0, win=65535, opts=WINDOWS_SYN)  # 4
    sc.tcp(30_300, b, a, "PA", 120)  # 5: ack = A's ISN + 1: A leaves SYN-RECEIVED
    sc.tcp(45_400, a, b, "PA", 80)
    sc.tcp(60_500, b, a, "A")
    sc.tcp(107_500, a, b, "FA")  # 8
    sc.tcp(122_500, b, a, "FA")  # 9
    sc.tcp(137_500, a, b, "A")
    # Conn 1: A's SYN alone, removed (reuse) before frame 2 is handled; one packet, so
    # duration 0 and Zeek prints '-' for the byte counts.
    sc.expect([1], a, b, "tcp", conn_state="S0", history="S", orig_bytes=None,
              resp_bytes=None, orig_state=SYN_SENT, resp_state=LISTEN,
              handshake={"outcome": "unanswered"},
              transitions=[(ORIG, SND_SYN, CLOSED, SYN_SENT)])
    # Conn 2, orig B: frame 3 (B's SYN-ACK, same ISN) adds no letter; frame 4 is the resp's
    # SYN-ACK: 'h', both ESTABLISHED. The observer table: B's SYN-ACK from SYN-SENT and its
    # receipt by A (LISTEN) change nothing; A's SYN-ACK moves A to SYN-RECEIVED and B to
    # ESTABLISHED; B's data (ack = A's ISN + 1) completes A.
    sc.expect(range(2, 11), b, a, "tcp", conn_state="SF", history="ShDdAfFa",
              orig_bytes=120, resp_bytes=80, end_reason="fin", **final(RESP),
              handshake={"outcome": "established"},
              transitions=opening() + closing(RESP))
    return sc


@scenario
def simultaneous_close() -> Scenario:
    sc = Scenario(4, "simultaneous-close",
                  "XMPP on 5222, RTT 20 ms, capture at the client: after 5 s both ends send "
                  "FIN before receiving the other's (the server's FIN does not ACK the "
                  "client's), then both ACK")
    c, s = client(50004, 0x33C0FFEE), server(5222, 0x7123ABCD)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3053000))
    sc.tcp(20_100, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(20_160, c, s, "A")
    sc.tcp(20_300, c, s, "PA", 200)
    sc.tcp(40_500, s, c, "PA", 350)
    sc.tcp(40_560, c, s, "A")
    sc.tcp(5_040_600, c, s, "FA")  # 7: client closes
    sc.tcp(5_055_600, s, c, "FA", ack=c.nxt - 1)  # 8: sent before the client's FIN arrived
    sc.tcp(5_055_650, c, s, "A")  # 9: client ACKs the server's FIN
    sc.tcp(5_060_700, s, c, "A")  # 10: server ACKs the client's FIN
    # Zeek: frame 7 orig CLOSED; frame 8 resp CLOSED (close complete, duration ends); the
    # server's pure ACK (10) is its first: 'a'.
    # Table: the observer delivers the client's FIN at once (server CLOSE-WAIT), but the
    # server's FIN does not acknowledge it, so it crossed the client's: CLOSE-WAIT -> CLOSING;
    # the client's FIN-WAIT-1 + receive FIN -> CLOSING; both -> TIME-WAIT on the ACKs.
    sc.expect(range(1, 11), c, s, "tcp", conn_state="SF", history="ShADdFfa",
              orig_bytes=200, resp_bytes=350, end_reason="fin",
              orig_state=TIME_WAIT, resp_state=TIME_WAIT,
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=[
                  *opening(),
                  (ORIG, SND_FIN, ESTABLISHED, FIN_WAIT_1),
                  (RESP, RCV_FIN, ESTABLISHED, CLOSE_WAIT),
                  (RESP, SND_FIN_CROSSED, CLOSE_WAIT, CLOSING),
                  (ORIG, RCV_FIN, FIN_WAIT_1, CLOSING),
                  (RESP, RCV_ACK_OF_FIN, CLOSING, TIME_WAIT),
                  (ORIG, RCV_ACK_OF_FIN, CLOSING, TIME_WAIT),
              ])
    return sc


@scenario
def half_close() -> Scenario:
    sc = Scenario(5, "half-close",
                  "port 8080, RTT 15 ms: the client sends a 60-byte command and shuts down its "
                  "sending side (FIN); the server ACKs, keeps sending 2420 bytes, then FINs")
    c, s = client(50005, 0x0BADF00D), server(8080, 0x44556677)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3054000))
    sc.tcp(15_100, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(15_150, c, s, "A")
    sc.tcp(15_200, c, s, "PA", 60)
    sc.tcp(15_220, c, s, "FA")  # 5: half-close
    sc.tcp(30_400, s, c, "A")  # 6: ACKs the data and the FIN
    sc.tcp(31_000, s, c, "A", 1000)
    sc.tcp(31_100, s, c, "PA", 1000)
    sc.tcp(31_150, c, s, "A")
    sc.tcp(45_300, s, c, "PA", 420)
    sc.tcp(45_350, s, c, "FA")  # 11: completes the close
    sc.tcp(45_400, c, s, "A")
    sc.expect(range(1, 13), c, s, "tcp", conn_state="SF", history="ShADFadf",
              orig_bytes=60, resp_bytes=2420, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def refused() -> Scenario:
    sc = Scenario(6, "refused",
                  "SYN to a closed port (3306, same LAN, 0.4 ms) answered by Linux's RST-ACK "
                  "(seq 0, ack ISN + 1, window 0)")
    c = client(50006, 0x7F00AA01)
    s = server(3306, 0, ttl=64, win=0)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3055000))
    sc.tcp(400, s, c, "RA", seq=0, win=0)
    # Zeek: resp RESET while orig SYN_SENT -> REJ; sizes 0 (duration > 0).
    # Table: the presumed listener goes LISTEN -> CLOSED on "send RST", the client SYN-SENT ->
    # CLOSED on "receive RST".
    sc.expect([1, 2], c, s, "tcp", conn_state="REJ", history="Sr", orig_bytes=0,
              resp_bytes=0, orig_state=CLOSED, resp_state=CLOSED, end_reason="rst",
              handshake={"outcome": "refused", "syn_retransmits": 0, "syn_ack_retransmits": 0},
              analysis=CLEAN,
              transitions=[(ORIG, SND_SYN, CLOSED, SYN_SENT), (RESP, SND_RST, LISTEN, CLOSED),
                           (ORIG, RCV_RST, SYN_SENT, CLOSED)])
    return sc


@scenario
def syn_unanswered() -> Scenario:
    sc = Scenario(7, "syn-unanswered",
                  "SYN to a filtered port 22, retransmitted by Linux at 1 s and 3 s (same ISN), "
                  "no answer; all within Zeek's 5 s attempt timer: one S0 connection")
    c, s = client(50007, 0x19283746), server(22, 0)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3056000))
    sc.tcp(1_003_100, c, s, "S", seq=0, win=64240, opts=linux_syn(3057003))
    sc.tcp(3_011_200, c, s, "S", seq=0, win=64240, opts=linux_syn(3059011))
    # Zeek: same ISN -> no reuse, no new 'S'; orig SYN_SENT, resp INACTIVE -> S0.
    # Wireshark flags both repeated SYNs as retransmissions.
    sc.expect([1, 2, 3], c, s, "tcp", conn_state="S0", history="S", orig_bytes=0,
              resp_bytes=0, orig_state=SYN_SENT, resp_state=LISTEN,
              end_reason="end-of-capture",
              handshake={"outcome": "unanswered", "syn_retransmits": 2,
                         "syn_ack_retransmits": 0},
              analysis={**CLEAN, "retransmissions": 2},
              transitions=[(ORIG, SND_SYN, CLOSED, SYN_SENT)])
    return sc


@scenario
def synack_retransmit() -> Scenario:
    sc = Scenario(8, "synack-retransmit",
                  "SMTP on 25, capture at the server, RTT 25 ms: the client's ACK of the "
                  "SYN-ACK is lost, the server re-sends the SYN-ACK after 1 s, then the "
                  "handshake completes; greeting, EHLO, QUIT, the server closes first")
    c = client(50008, 0x5A5A0001, ttl=52, win=1026)  # a Windows client: no timestamps
    s = server(25, 0x2B2B0002, ttl=64, win=502)  # Linux Postfix
    sc.tcp(0, c, s, "S", win=64240, opts=windows_syn())
    sc.tcp(80, s, c, "SA", win=64240, opts=LINUX_SYN_ACK_NO_TS)
    sc.tcp(1_000_080, s, c, "SA", seq=0, win=64240, opts=LINUX_SYN_ACK_NO_TS)  # 3
    sc.tcp(1_025_300, c, s, "A")  # 4: ack = server ISN + 1
    sc.tcp(1_025_600, s, c, "PA", b"220 mail.example.org ESMTP Postfix\r\n")
    sc.tcp(1_050_900, c, s, "PA", b"EHLO client.example.net\r\n")
    reply = b"250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
    sc.tcp(1_051_200, s, c, "PA", reply)
    sc.tcp(1_076_500, c, s, "PA", b"QUIT\r\n")
    sc.tcp(1_076_800, s, c, "PA", b"221 2.0.0 Bye\r\n")
    sc.tcp(1_076_850, s, c, "FA")  # 10
    sc.tcp(1_102_100, c, s, "FA")  # 11: completes the close
    sc.tcp(1_102_200, s, c, "A")
    orig_bytes = len(b"EHLO client.example.net\r\n") + len(b"QUIT\r\n")
    resp_bytes = len(b"220 mail.example.org ESMTP Postfix\r\n") + len(reply) + len(
        b"221 2.0.0 Bye\r\n")
    # Zeek: the repeated SYN-ACK (same ISN) is no reuse and adds no letter.
    sc.expect(range(1, 13), c, s, "tcp", conn_state="SF", history="ShAdDfFa",
              orig_bytes=orig_bytes, resp_bytes=resp_bytes, end_reason="fin", **final(RESP),
              handshake={"outcome": "established", "syn_retransmits": 0,
                         "syn_ack_retransmits": 1},
              analysis={**CLEAN, "retransmissions": 1},
              transitions=opening() + closing(RESP))
    return sc


@scenario
def rst_client() -> Scenario:
    sc = Scenario(9, "rst-client",
                  "download on port 80 aborted by the client (RST-ACK) after the first "
                  "segment; the second was in flight and draws a plain RST from the closed "
                  "socket")
    c, s = client(50009, 0x61626364), server(80, 0x31323334)
    req = http_get("/iso/image.iso", "mirror.example.org")
    head = http_response_head(700_000_000)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3060000))
    sc.tcp(12_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(12_050, c, s, "A")
    sc.tcp(12_100, c, s, "PA", req)
    sc.tcp(24_500, s, c, "A", head + body(1460 - len(head), 9))
    sc.tcp(24_560, c, s, "A")
    sc.tcp(24_900, c, s, "RA")  # 7: abort
    sc.tcp(25_000, s, c, "A", 1460)  # 8: in flight
    sc.tcp(25_050, c, s, "R")  # 9: same seq as frame 7: no second 'R'
    # Zeek: orig RESET, resp ESTABLISHED -> RSTO; the server's data after the RST still
    # counts (the server never closed, so duration runs to frame 9).
    sc.expect(range(1, 10), c, s, "tcp", conn_state="RSTO", history="ShADdR",
              orig_bytes=len(req), resp_bytes=2 * 1460, end_reason="rst",
              orig_state=CLOSED, resp_state=CLOSED,
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=[*opening(), (ORIG, SND_RST, ESTABLISHED, CLOSED),
                           (RESP, RCV_RST, ESTABLISHED, CLOSED)])
    return sc


@scenario
def rst_server() -> Scenario:
    sc = Scenario(10, "rst-server",
                  "Redis on 6379, RTT 0.5 ms: request, reply, a second request, then the "
                  "server process dies and its kernel sends RST-ACK")
    c = client(50010, 0x0DDBA11)
    s = server(6379, 0x7EA7C0DE, ttl=64, win=509)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3061000))
    sc.tcp(500, s, c, "SA", win=65160, opts=LINUX_SYN_ACK_NO_TS)
    sc.tcp(560, c, s, "A")
    sc.tcp(700, c, s, "PA", 150)
    sc.tcp(41_200, s, c, "A")  # delayed ACK: 'a'
    sc.tcp(41_900, s, c, "PA", 300)
    sc.tcp(41_950, c, s, "A")
    sc.tcp(90_000, c, s, "PA", 100)
    sc.tcp(90_500, s, c, "RA")  # 9
    sc.expect(range(1, 10), c, s, "tcp", conn_state="RSTR", history="ShADadr",
              orig_bytes=250, resp_bytes=300, end_reason="rst",
              orig_state=CLOSED, resp_state=CLOSED,
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=[*opening(), (RESP, SND_RST, ESTABLISHED, CLOSED),
                           (ORIG, RCV_RST, ESTABLISHED, CLOSED)])
    return sc


@scenario
def rst_after_fin() -> Scenario:
    sc = Scenario(11, "rst-after-fin",
                  "port 443: the client FINs, the server answers FIN-ACK, and the client sends "
                  "a plain RST (no ACK flag) instead of the last ACK")
    c, s = client(50011, 0x13579BDF), server(443, 0x2468ACE0)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3062000))
    sc.tcp(22_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(22_050, c, s, "A")
    sc.tcp(22_200, c, s, "PA", 300)
    sc.tcp(44_600, s, c, "PA", 900)
    sc.tcp(44_650, c, s, "A")
    sc.tcp(44_900, c, s, "FA")  # 7
    sc.tcp(67_000, s, c, "FA")  # 8: completes the close
    sc.tcp(67_050, c, s, "R")  # 9
    # Zeek: 'R' is still recorded, but the RST changes no state (peer CLOSED): SF, duration
    # ends at frame 8. Table: the client's TIME-WAIT and the server's LAST-ACK both -> CLOSED.
    sc.expect(range(1, 10), c, s, "tcp", conn_state="SF", history="ShADdFfR",
              orig_bytes=300, resp_bytes=900, orig_state=CLOSED, resp_state=CLOSED,
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(ORIG)[:-1] + [
                  (ORIG, SND_RST, TIME_WAIT, CLOSED), (RESP, RCV_RST, LAST_ACK, CLOSED)])
    return sc


@scenario
def midstream() -> Scenario:
    sc = Scenario(12, "midstream",
                  "capture starts inside an established HTTPS download (port 443): server data, "
                  "client ACKs, server FIN, client FIN-ACK, last ACK")
    c, s = client(50012, 0x44444444), server(443, 0x55555555)
    c.nxt, s.nxt = 1 + 517, 1 + 90_000  # what each had sent before the capture began
    sc.tcp(0, s, c, "PA", 1200)  # 1: Zeek flips at creation (443 likely, 50012 not): '^d'
    sc.tcp(150, c, s, "A")
    sc.tcp(12_300, s, c, "PA", 800)
    sc.tcp(12_350, c, s, "A")
    sc.tcp(12_400, s, c, "FA")  # 5
    sc.tcp(12_700, c, s, "FA")  # 6: completes the close
    sc.tcp(24_900, s, c, "A")  # 7: the server's first pure ACK: 'a'
    # Zeek: both PARTIAL until their FINs -> SF; sizes from the sequence numbers seen
    # (start = first seq - 1): orig 0, resp 2000; no gaps for partial connections.
    sc.expect(range(1, 8), c, s, "tcp", conn_state="SF", history="^dAfFa",
              orig_bytes=0, resp_bytes=2000, end_reason="fin", **final(RESP),
              handshake={"outcome": "mid-stream", "syn_retransmits": 0,
                         "syn_ack_retransmits": 0},
              analysis=CLEAN,
              transitions=closing(RESP))
    return sc


@scenario
def port_reuse() -> Scenario:
    sc = Scenario(13, "port-reuse",
                  "HTTP/1.0-style exchange on port 80 from fixed client port 50013, server "
                  "closes first (server in TIME-WAIT); 1.2 s later a new SYN on the same "
                  "4-tuple with a higher ISN and a second full connection")
    c, s = client(50013, 0x10000000), server(80, 0x60000000)
    req = http_get("/a", "www.example.org", close=True)
    head = http_response_head(300, close=True)

    def exchange(t: int) -> None:
        sc.tcp(t, c, s, "S", win=64240, opts=linux_syn(3063000 + t // 1000))
        sc.tcp(t + 15_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
        sc.tcp(t + 15_050, c, s, "A")
        sc.tcp(t + 15_100, c, s, "PA", req)
        sc.tcp(t + 30_300, s, c, "PA", head + body(300, 13))
        sc.tcp(t + 30_320, s, c, "FA")
        sc.tcp(t + 30_500, c, s, "FA")  # completes the close
        sc.tcp(t + 45_600, s, c, "A")

    exchange(0)
    c.isn, c.nxt = 0x10000000 + 0x01000000, 0  # RFC 6191: a higher ISN than the old one
    s.isn, s.nxt = 0x0F0F0F0F, 0
    exchange(1_200_000)
    for frames in (range(1, 9), range(9, 17)):
        # Zeek: the SYN arrives after both closes were reported -> reuse, a new connection.
        sc.expect(frames, c, s, "tcp", conn_state="SF", history="ShADdfFa",
                  orig_bytes=len(req), resp_bytes=len(head) + 300, end_reason="fin",
                  **final(RESP), handshake=ESTABLISHED_HS, analysis=CLEAN,
                  transitions=opening() + closing(RESP))
    return sc


@scenario
def keepalive() -> Scenario:
    sc = Scenario(14, "keepalive",
                  "PostgreSQL on 5432, RTT 30 ms, idle for minutes: the Linux client's 0-byte "
                  "keep-alives (seq = next - 1) at 60 s intervals and the Windows server's "
                  "1-byte keep-alive, each ACKed; then a query and a client close")
    c, s = client(50014, 0x7A7A7A7A), server(5432, 0x3C3C3C3C)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3064000))
    sc.tcp(30_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(30_060, c, s, "A")
    sc.tcp(30_150, c, s, "PA", 64)
    sc.tcp(60_400, s, c, "PA", 220)
    sc.tcp(60_450, c, s, "A")
    sc.tcp(60_060_450, c, s, "A", seq=c.nxt - 1)  # 7: keep-alive
    sc.tcp(60_090_700, s, c, "A")  # 8: its ACK, the server's first pure ACK: 'a'
    sc.tcp(120_090_800, c, s, "A", seq=c.nxt - 1)  # 9
    sc.tcp(120_121_000, s, c, "A")
    sc.tcp(150_000_000, s, c, "A", b"\x00", seq=s.nxt - 1)  # 11: 1 byte below next: Zeek 't'
    sc.tcp(150_000_060, c, s, "A")
    sc.tcp(170_000_000, c, s, "PA", 64)
    sc.tcp(170_030_300, s, c, "PA", 220)
    sc.tcp(170_030_400, c, s, "FA")
    sc.tcp(170_060_600, s, c, "FA")  # completes the close
    sc.tcp(170_060_650, c, s, "A")
    sc.expect(range(1, 18), c, s, "tcp", conn_state="SF", history="ShADdatFf",
              orig_bytes=128, resp_bytes=440, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS, analysis={**CLEAN, "keep_alives": 3},
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def zero_window() -> Scenario:
    sc = Scenario(15, "zero-window",
                  "download on port 80 to a slow embedded client (window 4380, no window "
                  "scaling, RTT 20 ms): the server fills the window, the client advertises "
                  "window 0, the server sends a 1-byte zero-window probe after 260 ms, the "
                  "client ACKs it with window 0, then opens the window (update) and the "
                  "transfer finishes; server closes first")
    c = client(50015, 0x00C0FFEE, win=4380)
    s = server(80, 0x0BEEF000, win=65535)
    head = http_response_head(6840 - 81)  # the response is 6840 bytes, head included
    assert len(head) == 81
    sc.tcp(0, c, s, "S", opts=[("mss", 1460)])
    sc.tcp(20_000, s, c, "SA", opts=[("mss", 1460)])
    sc.tcp(20_050, c, s, "A")
    sc.tcp(20_100, c, s, "PA", 100)
    sc.tcp(40_300, s, c, "A", head + body(1460 - len(head), 15))  # 5
    sc.tcp(40_420, s, c, "A", 1460)
    sc.tcp(40_480, c, s, "A", win=1460)  # 7: 2920 unread bytes
    sc.tcp(40_540, s, c, "PA", 1460)  # 8: fills the window exactly
    sc.tcp(40_600, c, s, "A", win=0)  # 9: zero window (Zeek 'W')
    probe_at = s.nxt
    sc.tcp(300_600, s, c, "A", 1)  # 10: zero-window probe, one new byte
    sc.tcp(300_650, c, s, "A", ack=probe_at, win=0)  # 11: not accepted, window still 0
    sc.tcp(900_000, c, s, "A", ack=probe_at, win=2920)  # 12: window update
    sc.tcp(920_200, s, c, "A", 1460, seq=probe_at)  # 13: re-sends the probe byte and more
    sc.tcp(920_300, s, c, "PA", 1000)
    sc.tcp(920_350, c, s, "A", win=460)
    sc.tcp(920_400, s, c, "FA")  # 16
    sc.tcp(920_450, c, s, "A", win=460)
    sc.tcp(1_500_000, c, s, "FA", win=4380)  # 18: completes the close
    sc.tcp(1_520_100, s, c, "A")
    sc.expect(range(1, 20), c, s, "tcp", conn_state="SF", history="ShADdWfFa",
              orig_bytes=100, resp_bytes=6840, end_reason="fin", **final(RESP),
              handshake=ESTABLISHED_HS,
              analysis={**CLEAN, "zero_windows": 2, "zero_window_probes": 1,
                        "window_updates": 1, "window_full": 1},
              transitions=opening() + closing(RESP))
    return sc


@scenario
def loss_reorder() -> Scenario:
    sc = Scenario(16, "loss-reorder",
                  "iperf3 reverse-mode data stream (port 5201: the client sends its 37-byte "
                  "cookie, the server sends) seen at the server (RTT 12 ms, MSS clamped to "
                  "1000, SACK): segment 3 passes segment 2 (out of order, one duplicate ACK), "
                  "segment 4 is lost after the capture point (3 duplicate ACKs with SACK, fast "
                  "retransmission), the last segment is lost too (retransmission after a "
                  "300 ms timeout)")
    c = client(50016, 0x2F2F2F2F, ttl=52)
    s = server(5201, 0x4E4E4E4E, ttl=128)
    req = b"k3xq7lmw2vbn4ptr8zcy6hdj5sfg0aeu1oi9\x00"  # iperf3's cookie (36 chars + NUL)
    assert len(req) == 37
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3066000, mss=1000))
    sc.tcp(60, s, c, "SA", win=65535, opts=windows_syn())
    sc.tcp(12_100, c, s, "A")
    sc.tcp(12_200, c, s, "PA", req)

    def seg(t: int, k: int, flags: str = "A") -> int:
        """Server data segment k (1-based) of 1000 bytes, relative seq 1 + 1000 (k - 1)."""
        return sc.tcp(t, s, c, flags, 1000, seq=1 + 1000 * (k - 1))

    def sabs(rel: int) -> int:
        return s.abs_seq(rel)

    seg(12_400, 1)  # 5
    seg(12_450, 3)  # 6: Wireshark "previous segment not captured"
    seg(12_480, 2)  # 7: out of order (Zeek 't')
    seg(12_520, 4)  # 8: lost downstream
    seg(12_560, 5)
    seg(12_600, 6)
    seg(12_640, 7, "PA")  # 11
    sc.tcp(24_420, c, s, "A", ack=1001)
    sc.tcp(24_470, c, s, "A", ack=1001, opts=sack((sabs(2001), sabs(3001))))  # 13: dup ACK
    sc.tcp(24_500, c, s, "A", ack=3001)
    sc.tcp(24_580, c, s, "A", ack=3001, opts=sack((sabs(4001), sabs(5001))))  # dup 1
    sc.tcp(24_620, c, s, "A", ack=3001, opts=sack((sabs(4001), sabs(6001))))  # dup 2
    sc.tcp(24_660, c, s, "A", ack=3001, opts=sack((sabs(4001), sabs(7001))))  # 17: dup 3
    seg(24_700, 4)  # 18: fast retransmission
    sc.tcp(36_720, c, s, "A", ack=7001)
    sc.tcp(36_800, s, c, "PA", 800, seq=7001)  # 20: lost downstream
    sc.tcp(336_800, s, c, "PA", 800, seq=7001)  # 21: retransmission after the timeout
    sc.tcp(348_820, c, s, "A", ack=7801)
    sc.tcp(349_000, c, s, "FA")  # 23
    sc.tcp(349_100, s, c, "FA")  # 24: completes the close
    sc.tcp(361_150, c, s, "A")
    # Zeek: every byte was captured (no gap); frame 7 ends below the highest seq -> 't'
    # (frames 18 and 21 are the 2nd and 3rd retransmissions: no letter until the 10th).
    sc.expect(range(1, 26), c, s, "tcp", conn_state="SF", history="ShADdtFf",
              orig_bytes=len(req), resp_bytes=7800, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS,
              analysis={**CLEAN, "retransmissions": 2, "fast_retransmissions": 1,
                        "out_of_order": 1, "lost_segments": 1, "dup_acks": 4},
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def seq_wrap() -> Scenario:
    sc = Scenario(17, "seq-wrap",
                  "upload on port 873: client ISN 2^32 - 1000 and 5000 bytes (its sequence "
                  "numbers wrap inside the first segment), server ISN 2^32 - 300 and a 700-byte "
                  "reply (wraps too), client closes first")
    c = client(50017, (1 << 32) - 1000)
    s = server(873, (1 << 32) - 300)
    sc.tcp(0, c, s, "S", win=64240, opts=linux_syn(3067000))
    sc.tcp(10_000, s, c, "SA", win=65535, opts=WINDOWS_SYN)
    sc.tcp(10_050, c, s, "A")
    sc.tcp(10_100, c, s, "A", 1460)
    sc.tcp(10_120, c, s, "A", 1460)
    sc.tcp(20_300, s, c, "A")  # 6: acks 2920 (ack number wrapped)
    sc.tcp(20_350, c, s, "A", 1460)
    sc.tcp(20_370, c, s, "PA", 620)
    sc.tcp(30_600, s, c, "A")
    sc.tcp(31_000, s, c, "PA", 700)  # 10: wraps
    sc.tcp(31_050, c, s, "A")
    sc.tcp(31_200, c, s, "FA")  # 12: FIN at seq 4001
    sc.tcp(41_400, s, c, "FA")  # 13: acks 4002
    sc.tcp(41_450, c, s, "A")
    assert c.abs_seq(c.nxt) == 4002 and s.abs_seq(s.nxt) == 402
    sc.expect(range(1, 15), c, s, "tcp", conn_state="SF", history="ShADadFf",
              orig_bytes=5000, resp_bytes=700, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def ipv6() -> Scenario:
    sc = Scenario(18, "ipv6",
                  "IPv6 connection to port 443 (MSS 1440, RTT 25 ms): handshake, 300 + 800 "
                  "bytes, client FIN, server FIN-ACK, last ACK")
    c = Host(C6, 50018, MAC_C, isn=0x66666666, ttl=64)
    s = Host(S6, 443, MAC_S, isn=0x99999999, ttl=116, win=1026)
    sc.tcp(0, c, s, "S", win=64800, opts=[("mss", 1440), ("sackok",), ("ts", 3068000, 0),
                                         ("nop",), ("ws", 7)])
    sc.tcp(25_000, s, c, "SA", win=65535, opts=windows_syn(1440))
    sc.tcp(25_050, c, s, "A")
    sc.tcp(25_150, c, s, "PA", 300)
    sc.tcp(50_400, s, c, "PA", 800)
    sc.tcp(50_450, c, s, "A")
    sc.tcp(50_700, c, s, "FA")
    sc.tcp(75_900, s, c, "FA")  # completes the close
    sc.tcp(75_950, c, s, "A")
    sc.expect(range(1, 10), c, s, "tcp", conn_state="SF", history="ShADdFf",
              orig_bytes=300, resp_bytes=800, end_reason="fin", **final(ORIG),
              handshake=ESTABLISHED_HS, analysis=CLEAN,
              transitions=opening() + closing(ORIG))
    return sc


@scenario
def udp_flows() -> Scenario:
    sc = Scenario(19, "udp",
                  "a DNS query and its answer (udp/53, RTT 8 ms) and a one-way syslog flow "
                  "(3 datagrams to udp/514 at 1 s intervals)")
    c = client(53211, 0)
    r = Host(DNS4, 53, MAC_S, ttl=60)
    q = dns_query(0x1A2B, "www.example.org")
    a = dns_answer(0x1A2B, "www.example.org", "192.0.2.80")
    sc.udp(0, c, r, q)
    sc.udp(8_200, r, c, a)
    lg = client(40514, 0)
    collector = server(514, 0, ttl=63)
    msgs = [f"<14>Nov 14 22:13:2{i} host1 app[812]: heartbeat seq={i}".encode()
            for i in range(3)]
    for i, msg in enumerate(msgs):
        sc.udp(500_000 + i * 1_000_000, lg, collector, msg)
    # Zeek: bytes = UDP length - 8 per datagram; SF when both sides sent, S0 when only orig.
    sc.expect([1, 2], c, r, "udp", conn_state="SF", history="Dd", orig_bytes=len(q),
              resp_bytes=len(a), end_reason="end-of-capture", transitions=[])
    sc.expect([3, 4, 5], lg, collector, "udp", conn_state="S0", history="D",
              orig_bytes=sum(len(m) for m in msgs), resp_bytes=0,
              end_reason="end-of-capture", transitions=[])
    return sc


@scenario
def icmp_unreachable() -> Scenario:
    sc = Scenario(20, "icmp-unreachable",
                  "a DNS query to a host that runs no resolver (udp/53, RTT 20 ms) answered by "
                  "ICMP port unreachable (3/3) quoting the whole query: a UDP flow and a "
                  "separate one-way ICMP flow")
    c = client(45001, 0)
    s = server(53, 0, ttl=64)
    q = dns_query(0x4C4C, "intranet.example.org")
    sc.udp(0, c, s, q)
    quoted = sc.frames[0].pkt.raw[14:]  # the whole IP datagram of the query
    sc.icmp(20_300, s, c, 3, 3, bytes(4) + quoted)
    # Zeek: one packet each -> duration 0 -> byte counts '-'. The ICMP error is its own
    # connection: orig = its sender, ports = type 3 / code 3, conn_state OTH.
    sc.expect([1], c, s, "udp", conn_state="S0", history="D", orig_bytes=None,
              resp_bytes=None, end_reason="end-of-capture", transitions=[])
    sc.expect([2], s, c, "icmp", orig_p=3, resp_p=3, conn_state="OTH", orig_bytes=None,
              resp_bytes=None, end_reason="end-of-capture", transitions=[])
    return sc


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def capture_bytes(sc: Scenario) -> bytes:
    recs = [Rec(f.pkt.raw, {}, f.ts_ns, LINKTYPE_ETHERNET) for f in sc.frames]
    data, _rows = write_pcap(recs, linktype=LINKTYPE_ETHERNET)
    return data


def expected_json(sc: Scenario) -> str:
    def dump(value: Any) -> str:
        return json.dumps(value, separators=(", ", ": "))

    lines = [
        "{",
        f'  "file": {dump(sc.file)},',
        f'  "description": {dump(sc.description)},',
        '  "frames": [',
        ",\n".join(f'    {{"frame": {i}}}' for i in range(1, len(sc.frames) + 1)),
        "  ],",
        '  "connections": [',
    ]
    conns = []
    for conn in sc.connections:
        rows = [f"      {dump(k)}: {dump(v)}" for k, v in conn.items() if k != "transitions"]
        trans = ",\n".join(f"        {dump(t)}" for t in conn["transitions"])
        rows.append('      "transitions": [' + (f"\n{trans}\n      ]" if trans else "]"))
        conns.append("    {\n" + ",\n".join(rows) + "\n    }")
    lines.append(",\n".join(conns))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- make_scenarios.py: begin -->"
README_END = "<!-- make_scenarios.py: end -->"


def readme_section(scenarios: Sequence[Scenario]) -> str:
    out = [
        README_BEGIN,
        "## Scenario captures (connection tracker)",
        "",
        "Crafted by `scripts/make_scenarios.py` (deterministic). `expected/scenario-NAME."
        "conns.json`",
        "lists, per connection in order of its first packet, the values `portlens conns "
        "--format json`",
        "must print: Zeek's conn.log fields by `docs/zeek-rules.md` (portlens defaults: "
        "checksums",
        "not verified, default `likely_server_ports`), the RFC 9293 observer transitions of",
        "`track/states.py`, and Wireshark's sequence-analysis counts. Checked by",
        "`tests/test_scenarios.py`; `python scripts/make_scenarios.py --check-tshark` compares "
        "the",
        "analysis counts with tshark.",
        "",
        "| capture | frames | conns | exercises |",
        "| --- | --- | --- | --- |",
    ]
    for sc in scenarios:
        states = ", ".join(str(c.get("conn_state", "?")) for c in sc.connections)
        out.append(f"| `{sc.file}` | {len(sc.frames)} | {states} | {sc.description} |")
    out.append(README_END)
    return "\n".join(out) + "\n"


def update_readme(path: Path, section: str) -> None:
    """Replace the scenario section of README.md (or append it), leaving the rest alone."""
    old = path.read_text() if path.is_file() else ""
    if README_BEGIN in old and README_END in old:
        head, rest = old.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1].lstrip("\n")
        new = head + section + ("\n" + tail if tail else "")
    else:
        new = old + ("\n" if old and not old.endswith("\n\n") else "") + section
    if new != old:
        path.write_text(new)


def build_all() -> list[Scenario]:
    scenarios = [build() for build in BUILDERS]
    assert [sc.number for sc in scenarios] == list(range(1, len(scenarios) + 1))
    return scenarios


def write_all(out_dir: Path, *, readme: bool = False) -> list[Scenario]:
    scenarios = build_all()
    (out_dir / "expected").mkdir(parents=True, exist_ok=True)
    for sc in scenarios:
        (out_dir / sc.file).write_bytes(capture_bytes(sc))
        (out_dir / "expected" / f"scenario-{sc.name}.conns.json").write_text(expected_json(sc))
    if readme:
        update_readme(out_dir / "README.md", readme_section(scenarios))
    return scenarios


# ---------------------------------------------------------------------------------------------
# Cross-check with tshark: analysis flags and conversations
# ---------------------------------------------------------------------------------------------


def tshark_flag_counts(path: Path) -> dict[str, int]:
    fields = list(ANALYSIS_FLAGS.values())
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    counts = dict.fromkeys(ANALYSIS_FLAGS, 0)
    for line in out.splitlines():
        values = line.split("\t")
        for key, value in zip(ANALYSIS_FLAGS, values, strict=False):
            if value:
                counts[key] += 1
    return counts


def check_tshark(out_dir: Path) -> int:
    """Expected analysis.* (summed over a file's connections) against tshark's flags."""
    if shutil.which("tshark") is None:
        print("tshark not found", file=sys.stderr)
        return 2
    problems = 0
    for spec_path in sorted((out_dir / "expected").glob("scenario-*.conns.json")):
        spec = json.loads(spec_path.read_text())
        got = tshark_flag_counts(out_dir / spec["file"])
        want: dict[str, int] = {}
        for conn in spec["connections"]:
            for key, value in conn.items():
                if key.startswith("analysis."):
                    name = key.split(".", 1)[1]
                    want[name] = want.get(name, 0) + value
        flagged = {k: v for k, v in got.items() if v}
        diffs = [f"{k}: expected {v}, tshark {got[k]}" for k, v in want.items() if got[k] != v]
        unlisted = [f"{k}: tshark {v}, not in expected" for k, v in flagged.items()
                    if k not in want]
        status = "ok" if not diffs else "DIFFERS"
        print(f"{spec['file']}: {status} tshark {flagged or '{}'}")
        for line in diffs + unlisted:
            print(f"    {line}")
        problems += len(diffs)
    print(f"{problems} difference(s)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory to write (default: captures/ of this checkout)")
    parser.add_argument("--check-tshark", action="store_true",
                        help="compare the expected analysis counts in --out with tshark's")
    parser.add_argument("--readme", action="store_true",
                        help="also write the scenario table into --out/README.md (between "
                             "markers; make_captures.py rewrites that file whole)")
    args = parser.parse_args(argv)
    if args.check_tshark:
        return check_tshark(args.out)
    scenarios = write_all(args.out, readme=args.readme)
    total = sum(len(capture_bytes(sc)) for sc in scenarios)
    print(f"wrote {len(scenarios)} scenario captures ({total} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
