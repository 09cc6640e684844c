#!/usr/bin/env python3
"""Craft the captures of Zeek's connection-level rules that no public baseline exercises.

* ``captures/conn-unknown-transport.pcap``: IP protocols without a transport analyzer (OSPF,
  VRRP, SCTP, PIM over IPv6, protocol 99 with an inactivity split, a fragmented protocol-99
  datagram, OSPF inside GRE) and the ones that never make a connection (ESP, GRE of an
  unknown protocol type).
* ``captures/conn-dns-flip.pcap``: DNS messages whose first one is a response, and their
  normal counterparts (a query first).
* ``captures/conn-ntp-flip.pcap``: NTP server replies seen first, and client requests first.
* ``captures/conn-tso-zero.pcap``: a TCP connection with one TSO frame whose IPv4 total
  length is 0.

The conn.log rows Zeek writes for them are derived from Zeek's source in
tests/test_zeek_rules.py, each with the rule of docs/zeek-rules.md it follows. Every frame is
Ethernet, with correct checksums (scapy computes them), at fixed microsecond times, so the
output is the same bytes on every run.

Usage::

    python scripts/make_zeek_rules.py              # (re)write the captures here
    python scripts/make_zeek_rules.py --out /tmp/x # write elsewhere
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from scapy.layers.inet import GRE, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

T0 = 1_700_000_000
"""The first frame's time (seconds); every frame is at T0 + an exact microsecond offset."""
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "captures"


def frame(ts_us: int, ip: Packet) -> Packet:
    p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip
    p = Ether(bytes(p))  # checksums and lengths filled now, not at write time
    p.time = T0 + ts_us // 1_000_000 + (ts_us % 1_000_000) / 1e6
    return p


def dns_message(*, response: bool, ident: int = 0x1234, answers: int = 0) -> bytes:
    """A DNS message asking for example.com A (and, for a response, one A answer per
    ``answers``): the 12-byte header of RFC 1035 4.1.1, the QR bit set for a response."""
    flags = 0x8180 if response else 0x0100
    q = b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
    body = q + b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, k])
                        for k in range(answers))
    return struct.pack("!HHHHHH", ident, flags, 1, answers, 0, 0) + body


def nbns_response() -> bytes:
    """A NetBIOS name service positive name query response (RFC 1002 4.2.13): DNS's header
    with QR set, the encoded name WORKGROUP<00>, one NB answer."""
    name = b"\x20" + b"FHEPFCELEHFCEPFFFACACACACACACAAA" + b"\x00"
    answer = name + struct.pack("!HHIH", 0x20, 1, 300000, 6) + b"\x00\x00" + bytes([10, 2, 0, 70])
    return struct.pack("!HHHHHH", 0x7A01, 0x8500, 0, 1, 0, 0) + answer


def ntp_message(mode: int, *, size: int = 48) -> bytes:
    """An NTPv4 message of RFC 5905 7.3 (LI 0, version 4, the mode), ``size`` bytes: 48 for
    the header alone, less to be cut short."""
    first = (4 << 3) | mode
    body = struct.pack("!BBbb", first, 2 if mode == 4 else 0, 6, -20) + bytes(range(44))
    return body[:size]


def unknown_transport() -> list[Packet]:
    out = []
    # OSPF hellos (89) to AllSPFRouters, three 10 s apart: one connection (orig = sender).
    hello = bytes.fromhex("0201002c0a010001000000000000000000000000") + bytes(24)
    for k in range(3):
        out.append(frame(k * 10_000_000, IP(src="10.1.0.1", dst="224.0.0.5", proto=89, ttl=1)
                         / Raw(hello)))
    # One VRRP advertisement (112): a single packet, duration 0.
    vrrp = bytes.fromhex("2101640101000000c0000201")
    out.append(frame(1_000, IP(src="10.1.0.2", dst="224.0.0.18", proto=112, ttl=255)
                     / Raw(vrrp)))
    # SCTP (132) INIT and INIT-ACK: Zeek has no SCTP analyzer, so ports are 0 and both
    # directions are one connection.
    init = struct.pack("!HHII", 5000, 38412, 0, 0) + bytes.fromhex(
        "0100001400000001000100000010000000000001")
    init_ack = struct.pack("!HHII", 38412, 5000, 1, 0) + bytes.fromhex(
        "0200001400000002000100000010000000000002")
    out.append(frame(2_000, IP(src="10.1.0.10", dst="10.1.0.20", proto=132) / Raw(init)))
    out.append(frame(2_500, IP(src="10.1.0.20", dst="10.1.0.10", proto=132) / Raw(init_ack)))
    # PIM hello (103) over IPv6 to ff02::d.
    pim = bytes.fromhex("20000000000100020069")
    out.append(frame(3_000, IPv6(src="fe80::1", dst="ff02::d", nh=103, hlim=1) / Raw(pim)))
    # ESP (50): Zeek's IP analyzer stops there, no connection.
    esp = struct.pack("!II", 0x1001, 1) + bytes(32)
    out.append(frame(4_000, IP(src="10.1.0.30", dst="10.1.0.40", proto=50) / Raw(esp)))
    # GRE carrying an unknown protocol type (0x88b5, IEEE local experimental): the GRE
    # analyzer forwards it nowhere, no connection.
    out.append(frame(5_000, IP(src="10.1.0.50", dst="10.1.0.60") / GRE(proto=0x88B5)
                     / Raw(bytes(20))))
    # Protocol 99: A->B, B->A, A->B, then 69 s of silence (more than the 60 s
    # unknown_ip_inactivity_timeout) and A->B again: two connections.
    for ts, src, dst in ((100_000_000, "10.1.0.70", "10.1.0.80"),
                         (100_500_000, "10.1.0.80", "10.1.0.70"),
                         (101_000_000, "10.1.0.70", "10.1.0.80"),
                         (170_000_000, "10.1.0.70", "10.1.0.80")):
        out.append(frame(ts, IP(src=src, dst=dst, proto=99) / Raw(bytes(30))))
    # A 3000-byte protocol-99 datagram in three fragments: one packet of 3020 IP bytes.
    big = IP(src="10.1.0.90", dst="10.1.0.91", proto=99, id=77) / Raw(bytes(3000))
    for k, part in enumerate(fragment(big, fragsize=1480)):
        out.append(frame(200_000_000 + k * 100, part))
    # OSPF inside GRE: the inner OSPF is an unknown_transport connection whose parent is
    # the GRE tunnel (no connection of its own, Zeek's IP tunnel record).
    inner = IP(src="192.168.5.1", dst="224.0.0.5", proto=89, ttl=1) / Raw(hello)
    out.append(frame(210_000_000, IP(src="10.9.0.1", dst="10.9.0.2") / GRE(proto=0x0800)
                     / inner))
    return sorted(out, key=lambda p: p.time)


def dns_flips() -> list[Packet]:
    q, r = dns_message(response=False), dns_message(response=True, answers=1)
    out = [
        # Normal: query from an ephemeral port, then the response.
        frame(0, IP(src="10.2.0.10", dst="10.2.0.53") / UDP(sport=40001, dport=53) / q),
        frame(1_000, IP(src="10.2.0.53", dst="10.2.0.10") / UDP(sport=53, dport=40001) / r),
        # The response alone, from port 53 to an ephemeral port: flipped at creation by the
        # likely server port.
        frame(10_000, IP(src="10.2.0.53", dst="10.2.0.11") / UDP(sport=53, dport=40002) / r),
        # 53 to 53, the response first, then a query and a response: the DNS analyzer flips.
        frame(20_000, IP(src="10.2.0.54", dst="10.2.0.55") / UDP(sport=53, dport=53) / r),
        frame(21_000, IP(src="10.2.0.55", dst="10.2.0.54") / UDP(sport=53, dport=53) / q),
        frame(22_000, IP(src="10.2.0.54", dst="10.2.0.55") / UDP(sport=53, dport=53) / r),
        # 53 to 53, the query first: no flip.
        frame(30_000, IP(src="10.2.0.56", dst="10.2.0.57") / UDP(sport=53, dport=53) / q),
        frame(31_000, IP(src="10.2.0.57", dst="10.2.0.56") / UDP(sport=53, dport=53) / r),
        # An mDNS response to the multicast group: the responder address is multicast, so
        # no flip.
        frame(40_000, IP(src="10.2.0.60", dst="224.0.0.251", ttl=255)
              / UDP(sport=5353, dport=5353) / r),
        # A NetBIOS name service response from 137 to 137, alone: flipped.
        frame(50_000, IP(src="10.2.0.70", dst="10.2.0.71") / UDP(sport=137, dport=137)
              / nbns_response()),
        # 4 bytes (shorter than a DNS header, not a message), then a response, both from the
        # same side: the response is the first DNS message, so it flips.
        frame(60_000, IP(src="10.2.0.80", dst="10.2.0.81") / UDP(sport=53, dport=53)
              / b"\x00\x01\x02\x03"),
        frame(61_000, IP(src="10.2.0.80", dst="10.2.0.81") / UDP(sport=53, dport=53) / r),
    ]
    return out


def ntp_flips() -> list[Packet]:
    client, server = ntp_message(3), ntp_message(4)
    return [
        # Normal: a client from an ephemeral port, the server's reply.
        frame(0, IP(src="10.3.0.10", dst="10.3.0.123") / UDP(sport=40123, dport=123) / client),
        frame(1_000, IP(src="10.3.0.123", dst="10.3.0.10") / UDP(sport=123, dport=40123)
              / server),
        # The reply alone to an ephemeral port: flipped at creation.
        frame(10_000, IP(src="10.3.0.123", dst="10.3.0.11") / UDP(sport=123, dport=40124)
              / server),
        # ntpd to ntpd (123 to 123), the server's reply first: the NTP analyzer flips.
        frame(20_000, IP(src="10.3.0.124", dst="10.3.0.12") / UDP(sport=123, dport=123)
              / server),
        frame(21_000, IP(src="10.3.0.12", dst="10.3.0.124") / UDP(sport=123, dport=123)
              / client),
        frame(22_000, IP(src="10.3.0.124", dst="10.3.0.12") / UDP(sport=123, dport=123)
              / server),
        # 123 to 123, the client first: no flip.
        frame(30_000, IP(src="10.3.0.13", dst="10.3.0.125") / UDP(sport=123, dport=123)
              / client),
        frame(31_000, IP(src="10.3.0.125", dst="10.3.0.13") / UDP(sport=123, dport=123)
              / server),
        # A server-mode message cut to 40 bytes: not an NTP message, no flip.
        frame(40_000, IP(src="10.3.0.126", dst="10.3.0.14") / UDP(sport=123, dport=123)
              / ntp_message(4, size=40)),
    ]


def tso_zero() -> list[Packet]:
    """A TCP connection whose client sends one 1400-byte segment through TCP segmentation
    offload: the captured frame has IPv4 total length 0 (and so a wrong header checksum)."""
    c, s = "10.4.0.10", "10.4.0.80"
    out = [
        frame(0, IP(src=c, dst=s) / TCP(sport=41000, dport=80, flags="S", seq=1000)),
        frame(1_000, IP(src=s, dst=c) / TCP(sport=80, dport=41000, flags="SA", seq=5000,
                                            ack=1001)),
        frame(2_000, IP(src=c, dst=s) / TCP(sport=41000, dport=80, flags="A", seq=1001,
                                            ack=5001)),
    ]
    seg = frame(3_000, IP(src=c, dst=s) / TCP(sport=41000, dport=80, flags="PA", seq=1001,
                                              ack=5001) / Raw(bytes(1400)))
    raw = bytearray(bytes(seg))
    raw[16:18] = b"\x00\x00"  # the IPv4 total length, as the sending host's NIC left it
    tso = Ether(bytes(raw))
    tso.time = seg.time
    out += [
        tso,
        frame(4_000, IP(src=s, dst=c) / TCP(sport=80, dport=41000, flags="A", seq=5001,
                                            ack=2401)),
        frame(5_000, IP(src=c, dst=s) / TCP(sport=41000, dport=80, flags="FA", seq=2401,
                                            ack=5001)),
        frame(6_000, IP(src=s, dst=c) / TCP(sport=80, dport=41000, flags="FA", seq=5001,
                                            ack=2402)),
        frame(7_000, IP(src=c, dst=s) / TCP(sport=41000, dport=80, flags="A", seq=2402,
                                            ack=5002)),
    ]
    return out


CAPTURES = {
    "conn-unknown-transport.pcap": unknown_transport,
    "conn-dns-flip.pcap": dns_flips,
    "conn-ntp-flip.pcap": ntp_flips,
    "conn-tso-zero.pcap": tso_zero,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in CAPTURES.items():
        wrpcap(str(args.out / name), make())
        print(args.out / name)


if __name__ == "__main__":
    main()
