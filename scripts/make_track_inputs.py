#!/usr/bin/env python3
"""Craft captures that stress the connection tracker's bookkeeping (issues 11 and 15).

``gapped``
    One TCP connection (handshake, the first data segment acknowledged) whose client then
    sends segments that leave a hole after each one (every other segment is missing), while the
    server keeps acknowledging only the first segment, as a receiver does whose queue has a hole.
    Nothing can be delivered past the first hole and nothing is trimmed, so every segment adds
    a block to Zeek's reassembler and a range to the observer's retransmission analysis: the
    case that was quadratic (issue 15). ``--mb`` sets the file's size; ``--reverse`` sends the
    segments from the highest down (every insert goes to the front).

``overlap``
    The issue-11 delivered-range case: in-order data that the reference's fast lane took, then a
    segment overlapping those bytes that adds new ones (captures/overlap-after-in-order.pcap).

``synflood``
    ``--flows`` SYNs from distinct sources (10.x.y.z, ports above 1024) to one server within
    ``--seconds`` (default 1), nothing answered: the memory-per-open-flow case.

``established``
    ``--flows`` connections from distinct sources within ``--seconds``, each a handshake, 100
    bytes each way and their ACKs, left open: memory per established flow.

Frames are Ethernet/IPv4/TCP with correct checksums, microsecond pcap; the output depends only
on the arguments.

Usage::

    python scripts/make_track_inputs.py gapped --mb 50 --out /tmp/gapped-50M.pcap
    python scripts/make_track_inputs.py overlap --out captures/overlap-after-in-order.pcap
    python scripts/make_track_inputs.py synflood --flows 1000000 --out /tmp/synflood-1M.pcap
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
CLIENT = bytes([192, 0, 2, 10])
SERVER = bytes([198, 51, 100, 20])
T0_US = 1_700_000_000 * 1_000_000
ETHER = bytes.fromhex("020000000002" "020000000001" "0800")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(src: bytes, sport: int, dst: bytes, dport: int, flags: int, seq: int, ack: int,
              payload: bytes = b"", win: int = 65535) -> bytes:
    """One Ethernet/IPv4/TCP frame, checksums computed."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, win, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    c = _csum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ETHER + ip + tcp + payload


def record(t_us: int, frame: bytes) -> bytes:
    return struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame),
                       len(frame)) + frame


class Conversation:
    """Client 192.0.2.10:40000 and server 198.51.100.20:80, 100 µs between packets."""

    def __init__(self, cport: int = 40000, sport: int = 80) -> None:
        self.cport, self.sport = cport, sport
        self.t = T0_US

    def frame(self, from_client: bool, flags: int, seq: int, ack: int,
              payload: bytes = b"") -> bytes:
        self.t += 100
        if from_client:
            f = tcp_frame(CLIENT, self.cport, SERVER, self.sport, flags, seq, ack, payload)
        else:
            f = tcp_frame(SERVER, self.sport, CLIENT, self.cport, flags, seq, ack, payload)
        return record(self.t, f)


def gapped(mb: float, size: int, reverse: bool) -> Iterator[bytes]:
    c_isn, s_isn = 1000, 5000
    cv = Conversation()
    yield PCAP_HEADER
    yield cv.frame(True, SYN, c_isn, 0)
    yield cv.frame(False, SYN | ACK, s_isn, c_isn + 1)
    yield cv.frame(True, ACK, c_isn + 1, s_isn + 1)
    data = bytes(range(256)) * (size // 256 + 1)
    payload = data[:size]
    yield cv.frame(True, PSH | ACK, c_isn + 1, s_isn + 1, payload)
    acked = c_isn + 1 + size
    yield cv.frame(False, ACK, s_isn + 1, acked)
    per = 16 + 14 + 40 + size  # record header, Ethernet, IPv4 + TCP, payload
    n = max(1, int(mb * 1_000_000) // per)
    # Segment k (k >= 1) starts 2k segments after the first: a hole of one segment before each.
    order = range(n, 0, -1) if reverse else range(1, n + 1)
    for i, k in enumerate(order):
        yield cv.frame(True, PSH | ACK, acked + (2 * k - 1) * size, s_isn + 1, payload)
        if i % 16 == 15:
            yield cv.frame(False, ACK, s_isn + 1, acked)  # a duplicate ACK now and then
    yield cv.frame(True, FIN | ACK, acked + (2 * n + 1) * size, s_isn + 1)
    yield cv.frame(False, FIN | ACK, s_isn + 1, acked)


def overlap() -> Iterator[bytes]:
    """In-order data (the fast lane's), then 100 bytes of which the first 50 were sent before:
    Zeek delivers the 50 new ones (history ShADaFf, missed_bytes 0)."""
    c, s = 1000, 5000
    cv = Conversation()
    x = b"x" * 100
    yield PCAP_HEADER
    yield cv.frame(True, SYN, c, 0)
    yield cv.frame(False, SYN | ACK, s, c + 1)
    yield cv.frame(True, ACK, c + 1, s + 1)
    yield cv.frame(True, PSH | ACK, c + 1, s + 1, x)
    yield cv.frame(False, ACK, s + 1, c + 101)
    yield cv.frame(True, PSH | ACK, c + 101, s + 1, x)  # in order: the fast lane takes it
    yield cv.frame(True, PSH | ACK, c + 151, s + 1, x)  # 50 bytes again, then 50 new ones
    yield cv.frame(False, ACK, s + 1, c + 251)
    yield cv.frame(True, FIN | ACK, c + 251, s + 1)
    yield cv.frame(False, FIN | ACK, s + 1, c + 252)
    yield cv.frame(True, ACK, c + 252, s + 2)


def synflood(flows: int, seconds: float) -> Iterator[bytes]:
    yield PCAP_HEADER
    span = int(seconds * 1_000_000)
    for k in range(flows):
        src = bytes([10, (k >> 16) & 0xFF, (k >> 8) & 0xFF, k & 0xFF])
        sport = 1024 + (k * 7919) % 64000
        f = tcp_frame(src, sport, SERVER, 80, SYN, (k * 2654435761) & 0xFFFFFFFF, 0)
        yield record(T0_US + k * span // flows, f)


def established(flows: int, seconds: float) -> Iterator[bytes]:
    yield PCAP_HEADER
    span = int(seconds * 1_000_000)
    x = b"x" * 100
    for k in range(flows):
        src = bytes([10, (k >> 16) & 0xFF, (k >> 8) & 0xFF, k & 0xFF])
        sport = 1024 + (k * 7919) % 64000
        c, s = (k * 2654435761) & 0xFFFFFFFF, (k * 40503) & 0xFFFFFFFF
        t = T0_US + k * span // flows
        for i, (fwd, flags, seq, ack, data) in enumerate((
                (True, SYN, c, 0, b""), (False, SYN | ACK, s, c + 1, b""),
                (True, ACK, c + 1, s + 1, b""), (True, PSH | ACK, c + 1, s + 1, x),
                (False, PSH | ACK, s + 1, c + 101, x), (True, ACK, c + 101, s + 101, b""))):
            f = (tcp_frame(src, sport, SERVER, 443, flags, seq, ack, data) if fwd
                 else tcp_frame(SERVER, 443, src, sport, flags, seq, ack, data))
            yield record(t + i, f)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    g = sub.add_parser("gapped", help="one connection whose segments leave holes")
    g.add_argument("--mb", type=float, default=1.0, help="file size in MB (default 1)")
    g.add_argument("--size", type=int, default=200, help="payload bytes a segment (200)")
    g.add_argument("--reverse", action="store_true", help="send the segments highest first")
    g.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("overlap", help="the issue-11 overlap after in-order data")
    o.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("synflood", help="SYNs from distinct sources, unanswered")
    f.add_argument("--flows", type=int, default=1_000_000)
    f.add_argument("--seconds", type=float, default=1.0)
    f.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("established", help="connections left open after some data")
    e.add_argument("--flows", type=int, default=100_000)
    e.add_argument("--seconds", type=float, default=1.0)
    e.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.kind == "gapped":
        if not 1 <= args.size <= 1460:
            parser.error("--size must be 1..1460")
        chunks = gapped(args.mb, args.size, args.reverse)
    elif args.kind == "overlap":
        chunks = overlap()
    else:
        if args.flows < 1 or args.flows > 1 << 24:
            parser.error("--flows must be 1..16777216")
        make = synflood if args.kind == "synflood" else established
        chunks = make(args.flows, args.seconds)
    with open(args.out, "wb") as fh:
        buf: list[bytes] = []
        for c in chunks:
            buf.append(c)
            if len(buf) >= 4096:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
