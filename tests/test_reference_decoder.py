"""The per-packet reference decoder, rule by rule (docs/decoding.md), and against tshark 4.0.

Every frame is built with scapy (or by hand where scapy would repair what the test breaks) and
every asserted row is checked in full: the columns a rule sets must hold exactly the expected
values and every other column its "absent" value, so a decoder that writes a stray column fails.
The corpus test reads the public captures with scapy's raw readers (the project's own reader is
not what is judged here) and compares each frame with tshark's per-packet oracle.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pytest
import scapy.all  # noqa: F401  (every layer binding, e.g. GRE over IP, VXLAN over UDP 4789)
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH, ESP
from scapy.layers.l2 import ARP, GRE, CookedLinux, Dot1AD, Dot1Q, Ether, Loopback
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import RawPcapNgReader, RawPcapReader

from portlens.decode import tunnels as tn
from portlens.decode.fields import (
    CSUM_BAD,
    CSUM_GOOD,
    CSUM_UNVERIFIED,
    V4_MAPPED_PREFIX,
    addr_bytes,
    addr_text,
)
from portlens.decode.malformed import Malformed
from portlens.decode.packets import PacketBatch
from portlens.reference.decode import decode_reference, ones_sum
from portlens.reference.fragments import FragmentRecord
from portlens.sources import linktypes as lt
from portlens.sources.frames import FrameBatch
from tests.corpus import malformed_disagreements, tshark_frames

REPO = Path(__file__).resolve().parent.parent

# --- helpers -------------------------------------------------------------------------------------

FRAME_COLUMNS = ("frame", "ts_ns", "wirelen", "caplen", "linktype", "interface", "truncated")
ABSENT = PacketBatch.allocate(1).row(0)


def decode(
    frames: list[bytes], linktype: int = lt.ETHERNET, wirelen: list[int] | None = None
) -> tuple[PacketBatch, list[FragmentRecord]]:
    batch = FrameBatch.from_frames(
        frames, [1_000_000_000 * (k + 1) + k for k in range(len(frames))],
        linktype=linktype, wirelen=wirelen,
    )
    return decode_reference(batch)


def decode1(
    frame: bytes | Packet, linktype: int = lt.ETHERNET, wirelen: int | None = None
) -> dict[str, Any]:
    data = raw(frame) if isinstance(frame, Packet) else frame
    batch, records = decode([data], linktype, None if wirelen is None else [wirelen])
    assert records == [], "not a fragment"
    return batch.row(0)


def a16(text: str) -> list[int]:
    return list(addr_bytes(text))


def expect(row: dict[str, Any], **want: Any) -> None:
    """Every column: the wanted value where given, else the absent value."""
    want = {k: (a16(v) if isinstance(v, str) else v) for k, v in want.items()}
    for name in ("sack", "opt_kinds"):
        if name in want:
            width = len(ABSENT[name])
            want[name] = list(want[name]) + [0] * (width - len(want[name]))
    unknown = set(want) - set(ABSENT)
    assert not unknown, unknown
    diffs = {
        name: (row[name], want.get(name, ABSENT[name]))
        for name in ABSENT
        if name not in FRAME_COLUMNS and row[name] != want.get(name, ABSENT[name])
    }
    assert not diffs, "column: (got, want) " + repr(diffs)


def ipv4(src: str, dst: str, proto: int, ip_len: int, *, ttl: int = 64, ip_id: int = 1,
         hlen: int = 20, csum: int = CSUM_GOOD) -> dict[str, Any]:
    return dict(ip_version=4, src=src, dst=dst, proto=proto, ip_len=ip_len, ip_hlen=hlen,
                ttl=ttl, ip_id=ip_id, ip_csum=csum)


def ipv6(src: str, dst: str, proto: int, ip_len: int, *, hlim: int = 64, hlen: int = 40,
         ip_id: int = 0) -> dict[str, Any]:
    return dict(ip_version=6, src=src, dst=dst, proto=proto, ip_len=ip_len, ip_hlen=hlen,
                ttl=hlim, ip_id=ip_id)


def tcp(sport: int, dport: int, payload: int, *, flags: int = 0x002, seq: int = 0, ack: int = 0,
        hlen: int = 20, win: int = 8192, csum: int = CSUM_GOOD, kinds: list[int] | None = None,
        **extra: Any) -> dict[str, Any]:
    cols = dict(l4=6, sport=sport, dport=dport, payload=payload, tcp_flags=flags, seq=seq,
                ack=ack, tcp_hlen=hlen, win=win, l4_csum=csum, **extra)
    if kinds:
        cols.update(opt_count=len(kinds), opt_kinds=kinds)
    return cols


def udp(sport: int, dport: int, udp_len: int, *, csum: int = CSUM_GOOD) -> dict[str, Any]:
    return dict(l4=17, sport=sport, dport=dport, udp_len=udp_len, payload=udp_len - 8,
                l4_csum=csum)


def eth(ethertype: int = 0x0800) -> dict[str, Any]:
    return dict(ethertype=ethertype)


E: Packet = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
E2: Packet = Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04")
"""Inside tunnels (an Ether() without addresses makes scapy look up routes, noisily)."""
class Hosts(TypedDict):
    src: str
    dst: str


H4 = Hosts(src="10.0.0.1", dst="10.0.0.2")
H6 = Hosts(src="2001:db8::1", dst="2001:db8::2")


# --- link layers ---------------------------------------------------------------------------------


def test_ethernet_ipv4_tcp_and_frame_columns() -> None:
    batch, records = decode([raw(E / IP(**H4) / TCP(sport=1234, dport=80) / Raw(b"hello"))])
    row = batch.row(0)
    assert records == []
    assert (row["frame"], row["ts_ns"], row["wirelen"], row["caplen"]) == (1, 10**9, 59, 59)
    assert (row["linktype"], row["interface"], row["truncated"]) == (1, 0, False)
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=45), **tcp(1234, 80, 5))


def test_batch_of_mixed_link_types_keeps_frame_columns() -> None:
    frames = [raw(E / IP(**H4) / UDP(sport=1, dport=2)), b"\x02\0\0\0" + raw(IP(**H4)),
              raw(IPv6(**H6))]
    batch = FrameBatch.from_frames(frames, [5, 6, 7], linktype=[lt.ETHERNET, lt.NULL, lt.RAW],
                                   wirelen=[60, 24, 40], interface=[0, 3, 1], first_frame=10)
    out, records = decode_reference(batch)
    assert records == []
    assert out.frame.tolist() == [10, 11, 12]
    assert out.ts_ns.tolist() == [5, 6, 7]
    assert out.linktype.tolist() == [1, 0, 101]
    assert out.interface.tolist() == [0, 3, 1]
    assert out.wirelen.tolist() == [60, 24, 40]
    assert out.caplen.tolist() == [42, 24, 40]
    assert out.truncated.tolist() == [True, False, False]
    assert out.ip_version.tolist() == [4, 4, 6]
    assert out.proto.tolist() == [17, 0, 59]


def test_vlan_qinq_mpls_stack() -> None:
    pkt = (E / Dot1AD(vlan=100) / Dot1Q(vlan=200) / Dot1Q(vlan=300)
           / IP(**H4) / UDP(sport=5, dport=53) / Raw(b"q"))
    expect(decode1(pkt), ethertype=0x0800, vlan=100, vlan_count=3,
           **ipv4(**H4, proto=17, ip_len=29), **udp(5, 53, 9))
    mpls = E / Dot1Q(vlan=7) / MPLS(label=16, s=0) / MPLS(label=17, s=1) / IPv6(**H6) / UDP(
        sport=5, dport=6)
    expect(decode1(mpls), ethertype=0x8847, vlan=7, vlan_count=1, mpls_count=2,
           **ipv6(**H6, proto=17, ip_len=48), **udp(5, 6, 8))
    # a pseudowire control word (first nibble 0) after the labels is not IP
    pw = raw(E / MPLS(label=16, s=1)) + b"\x00\x00\x00\x00" + raw(E)
    expect(decode1(pw), ethertype=0x8847, mpls_count=1,
           malformed=Malformed.MPLS_PAYLOAD_UNKNOWN)


def test_pppoe_session_and_discovery() -> None:
    sess = E / PPPoE(sessionid=1) / PPP(proto=0x0057) / IPv6(**H6) / ICMPv6EchoRequest(id=9)
    expect(decode1(sess), ethertype=0x8864, ppp_proto=0x0057,
           **ipv6(**H6, proto=58, ip_len=48),
           l4=58, icmp_type=128, icmp_code=0, icmp_id=9, payload=0, l4_csum=CSUM_GOOD)
    lcp = raw(E / PPPoE(sessionid=1)) + b"\xc0\x21\x01\x01\x00\x04"
    expect(decode1(lcp), ethertype=0x8864, ppp_proto=0xC021)
    disc = raw(Ether(type=0x8863)) + b"\x11\x09\x00\x00\x00\x00"
    expect(decode1(disc), ethertype=0x8863)


def test_linux_sll_and_sll2() -> None:
    inner = IP(**H4) / TCP(sport=1, dport=2, flags="SA", seq=7, ack=9)
    expect(decode1(CookedLinux(proto=0x0800) / inner, lt.LINUX_SLL), ethertype=0x0800,
           **ipv4(**H4, proto=6, ip_len=40), **tcp(1, 2, 0, flags=0x012, seq=7, ack=9))
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\0" * 8) + raw(
        IPv6(**H6) / UDP(sport=9, dport=10))
    expect(decode1(sll2, lt.LINUX_SLL2), ethertype=0x86DD,
           **ipv6(**H6, proto=17, ip_len=48), **udp(9, 10, 8))
    arp = struct.pack("!HHIHBB8s", 0x0806, 0, 2, 1, 0, 6, b"\0" * 8) + raw(ARP())
    expect(decode1(arp, lt.LINUX_SLL2), ethertype=0x0806)


@pytest.mark.parametrize(
    ("linktype", "header"),
    [
        (lt.NULL, struct.pack("<I", 2)),  # written on a little-endian host
        (lt.NULL, struct.pack(">I", 2)),  # ... on a big-endian one
        (lt.LOOP, struct.pack(">I", 2)),
    ],
)
def test_bsd_null_and_loop_ipv4(linktype: int, header: bytes) -> None:
    frame = header + raw(IP(**H4) / UDP(sport=1, dport=2))
    expect(decode1(frame, linktype), **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))


@pytest.mark.parametrize("family", [10, 24, 28, 30])
def test_bsd_null_ipv6_families(family: int) -> None:
    for header in (struct.pack("<I", family), struct.pack(">I", family)):
        frame = header + raw(IPv6(**H6) / TCP(sport=1, dport=2))
        expect(decode1(frame, lt.NULL), **ipv6(**H6, proto=6, ip_len=60), **tcp(1, 2, 0))


def test_bsd_null_other_family_and_scapy_loopback() -> None:
    expect(decode1(struct.pack("<I", 7) + b"\x45" * 30, lt.NULL))  # not IP, not malformed
    expect(decode1(Loopback(type=2) / IP(**H4) / ICMP(), lt.NULL),
           **ipv4(**H4, proto=1, ip_len=28), l4=1, icmp_type=8, icmp_code=0, icmp_id=0,
           payload=0, l4_csum=CSUM_GOOD)


@pytest.mark.parametrize("linktype", [lt.RAW_12, lt.RAW_14, lt.RAW])
def test_raw_ip(linktype: int) -> None:
    expect(decode1(IP(**H4) / UDP(sport=1, dport=2), linktype),
           **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))
    expect(decode1(IPv6(**H6) / UDP(sport=1, dport=2), linktype),
           **ipv6(**H6, proto=17, ip_len=48), **udp(1, 2, 8))
    expect(decode1(b"\x10" * 40, linktype))  # neither 4 nor 6: not IP


def test_linktype_ipv4_ipv6_and_unknown() -> None:
    expect(decode1(IP(**H4) / UDP(sport=1, dport=2), lt.IPV4),
           **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))
    expect(decode1(IPv6(**H6) / UDP(sport=1, dport=2), lt.IPV6),
           **ipv6(**H6, proto=17, ip_len=48), **udp(1, 2, 8))
    expect(decode1(IPv6(**H6) / UDP(sport=1, dport=2), lt.IPV4),
           malformed=Malformed.IPV4_VERSION_MISMATCH)
    expect(decode1(raw(E / IP(**H4)), 147))  # a USER link type: not decoded, not malformed


@pytest.mark.parametrize("linktype", [lt.PPP, lt.PPP_SERIAL])
def test_ppp_with_and_without_address_control(linktype: int) -> None:
    ip = raw(IP(**H4) / UDP(sport=1, dport=2))
    for frame in (b"\xff\x03\x00\x21" + ip, b"\x00\x21" + ip):
        expect(decode1(frame, linktype), ppp_proto=0x0021,
               **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))
    expect(decode1(b"\xff\x03\xc0\x21\x01\x01\x00\x04", linktype), ppp_proto=0xC021)
    expect(decode1(b"\xff\x03\x00", linktype), malformed=Malformed.PPP_HEADER_SHORT)


def test_non_ip_ethertypes() -> None:
    expect(decode1(E / ARP()), ethertype=0x0806)
    llc = raw(Ether(type=0x0026)) + b"\x42\x42\x03" + b"\0" * 35  # 802.3 length + STP
    expect(decode1(llc), ethertype=0x0026)
    expect(decode1(raw(Ether(type=0x88CC)) + b"\0" * 46), ethertype=0x88CC)


# --- IPv4 / IPv6 ---------------------------------------------------------------------------------


def test_ipv4_options_ttl_id_and_bad_header_checksum() -> None:
    pkt = E / IP(**H4, ttl=3, id=0xBEEF, options=b"\x94\x04\x00\x00\x01\x01\x01\x00") / UDP(
        sport=1, dport=2)
    expect(decode1(pkt), **eth(), **ipv4(**H4, proto=17, ip_len=36, ttl=3, ip_id=0xBEEF,
                                         hlen=28), **udp(1, 2, 8))
    bad = E / IP(**H4, chksum=0x1234) / UDP(sport=1, dport=2)
    expect(decode1(bad), **eth(), **ipv4(**H4, proto=17, ip_len=28, csum=CSUM_BAD),
           **udp(1, 2, 8))


def test_ipv4_total_length_zero_is_tso() -> None:
    frame = bytearray(raw(E / IP(**H4) / TCP(sport=5, dport=6, flags="A") / Raw(b"y" * 100)))
    frame[16:18] = b"\0\0"
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack("!H", 0xFFFF - ones_sum(bytes(frame[14:34])))
    expect(decode1(bytes(frame)), **eth(), **ipv4(**H4, proto=6, ip_len=140),
           ip_len_zero=True, **tcp(5, 6, 100, flags=0x010))


def test_ipv4_options_cut_by_snaplen() -> None:
    frame = raw(E / IP(**H4, options=b"\x01" * 40) / UDP(sport=1, dport=2))
    row = decode1(frame[:40], wirelen=len(frame))  # 6 of 40 option bytes captured
    expect(row, **eth(), **ipv4(**H4, proto=17, ip_len=68, hlen=60, csum=CSUM_UNVERIFIED))


def test_ipv6_extension_header_chain() -> None:
    chain = (IPv6(**H6, hlim=9) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
             / IPv6ExtHdrRouting(addresses=[], segleft=0)
             / AH(spi=1, icv=b"\0" * 12) / IPv6ExtHdrDestOpt()
             / TCP(sport=1, dport=2) / Raw(b"abc"))
    expect(decode1(E / chain), **eth(0x86DD),
           **ipv6(**H6, proto=6, ip_len=40 + 8 + 8 + 8 + 24 + 8 + 23, hlim=9, hlen=96),
           **tcp(1, 2, 3))


def test_ipv6_routing_header_checksum_uses_the_final_destination() -> None:
    # scapy computes the checksum with the routing header's last address, as RFC 8200 says
    # and tshark 4.0 verifies it.
    pkt = E / IPv6(**H6) / IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=1) / UDP(
        sport=1, dport=2)
    expect(decode1(pkt), **eth(0x86DD), **ipv6(**H6, proto=17, ip_len=72, hlen=64),
           **udp(1, 2, 8))


def test_ipv6_esp_and_no_next_header_end_the_chain() -> None:
    esp = E / IPv6(**H6) / IPv6ExtHdrHopByHop() / ESP(spi=5, seq=1, data=b"x" * 20)
    expect(decode1(esp), **eth(0x86DD), **ipv6(**H6, proto=50, ip_len=76, hlen=48))
    nonext = E / IPv6(**H6, nh=59) / Raw(b"\0" * 8)
    expect(decode1(nonext), **eth(0x86DD), **ipv6(**H6, proto=59, ip_len=48))
    esp4 = E / IP(**H4) / ESP(spi=5, seq=1, data=b"x" * 20)
    expect(decode1(esp4), **eth(), **ipv4(**H4, proto=50, ip_len=48))


def test_ipv6_more_than_eight_extension_headers() -> None:
    chain: Packet = IPv6(**H6) / IPv6ExtHdrHopByHop()
    for _ in range(8):
        chain = chain / IPv6ExtHdrDestOpt()
    chain = chain / UDP(sport=1, dport=2)
    expect(decode1(E / chain), **eth(0x86DD),
           **ipv6(**H6, proto=60, ip_len=40 + 72 + 8, hlen=40 + 64),
           malformed=Malformed.IPV6_EXT_HEADER_INVALID)


def test_ipv6_jumbo_or_tso_payload_length_zero() -> None:
    frame = bytearray(raw(E / IPv6(**H6) / TCP(sport=1, dport=2, flags="A") / Raw(b"z" * 30)))
    frame[18:20] = b"\0\0"
    row = decode1(bytes(frame))
    expect(row, **eth(0x86DD), **ipv6(**H6, proto=6, ip_len=90), **tcp(1, 2, 30, flags=0x010))
    nonext = raw(E / IPv6(**H6, nh=59, plen=0))
    expect(decode1(nonext), **eth(0x86DD), **ipv6(**H6, proto=59, ip_len=40))


# --- fragments -----------------------------------------------------------------------------------


def test_ipv4_fragments_records_and_rows() -> None:
    payload = UDP(sport=1000, dport=53) / Raw(b"D" * 64)
    frags = [E / IP(**H4, id=77, flags="MF", frag=0, proto=17) / Raw(raw(payload)[:40]),
             E / IP(**H4, id=77, flags=0, frag=5, proto=17) / Raw(raw(payload)[40:])]
    batch, records = decode([raw(f) for f in frags])
    key = (bytes([4]) + V4_MAPPED_PREFIX + bytes([10, 0, 0, 1]) + V4_MAPPED_PREFIX
           + bytes([10, 0, 0, 2]) + bytes([17]) + (77).to_bytes(4, "big"))
    assert records == [
        FragmentRecord(row=0, key=key, offset=0, length=40, more=True, unfrag_len=20),
        FragmentRecord(row=1, key=key, offset=40, length=32, more=False, unfrag_len=20),
    ]
    # the first fragment is decoded as an ordinary packet (unverifiable checksum) ...
    expect(batch.row(0), **eth(), **ipv4(**H4, proto=17, ip_len=60, ip_id=77),
           **udp(1000, 53, 72, csum=CSUM_UNVERIFIED))
    # ... the rest carries no transport header
    expect(batch.row(1), **eth(), **ipv4(**H4, proto=17, ip_len=52, ip_id=77))


def test_ipv4_first_fragment_of_a_tunnel_is_not_descended() -> None:
    inner = raw(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2) / Raw(b"x" * 40))
    frag = E / IP(**H4, id=5, flags="MF", proto=4) / Raw(inner[:32])
    batch, records = decode([raw(frag)])
    assert [r.length for r in records] == [32]
    expect(batch.row(0), **eth(), **ipv4(**H4, proto=4, ip_len=52, ip_id=5))


def test_ipv6_fragments_records_and_rows() -> None:
    src, dst = addr_bytes(H6["src"]), addr_bytes(H6["dst"])
    body = raw(UDP(sport=7, dport=8) / Raw(b"Q" * 100))
    first = (E / IPv6(**H6) / IPv6ExtHdrHopByHop()
             / IPv6ExtHdrFragment(nh=17, id=0xABCDEF01, m=1, offset=0) / Raw(body[:64]))
    second = (E / IPv6(**H6) / IPv6ExtHdrHopByHop()
              / IPv6ExtHdrFragment(nh=17, id=0xABCDEF01, m=0, offset=8) / Raw(body[64:]))
    atomic = E / IPv6(**H6) / IPv6ExtHdrFragment(nh=17, id=3, m=0, offset=0) / UDP(
        sport=7, dport=8)
    batch, records = decode([raw(first), raw(second), raw(atomic)])
    key = bytes([6]) + src + dst + bytes([17]) + (0xABCDEF01).to_bytes(4, "big")
    assert records == [
        FragmentRecord(row=0, key=key, offset=0, length=64, more=True, unfrag_len=48),
        FragmentRecord(row=1, key=key, offset=64, length=44, more=False, unfrag_len=48),
    ]
    expect(batch.row(0), **eth(0x86DD),
           **ipv6(**H6, proto=17, ip_len=120, hlen=56, ip_id=0xABCDEF01),
           **udp(7, 8, 108, csum=CSUM_UNVERIFIED))
    expect(batch.row(1), **eth(0x86DD),
           **ipv6(**H6, proto=17, ip_len=100, hlen=56, ip_id=0xABCDEF01))
    # offset 0 and M clear: an atomic fragment is an ordinary packet
    expect(batch.row(2), **eth(0x86DD), **ipv6(**H6, proto=17, ip_len=56, hlen=48, ip_id=3),
           **udp(7, 8, 8))


# --- TCP -----------------------------------------------------------------------------------------

ALL_OPTIONS = [
    ("MSS", 1460), ("NOP", None), ("WScale", 14), ("SAckOK", b""),
    ("Timestamp", (0x01020304, 0x05060708)), ("SAck", (100, 200, 300, 400)), ("EOL", None),
]


def test_tcp_every_option_and_eol_padding() -> None:
    pkt = E / IP(**H4) / TCP(sport=40000, dport=443, flags="SEC", seq=1, ack=0, window=65535,
                             urgptr=0, options=ALL_OPTIONS)
    # 4 + 1 + 3 + 2 + 10 + 18 + 1 = 39 option bytes, padded with one zero to 40
    row = decode1(pkt)
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=80),
           **tcp(40000, 443, 0, flags=0x0C2, seq=1, hlen=60, win=65535,
                 kinds=[2, 1, 3, 4, 8, 5, 0, 0]),
           mss=1460, wscale=14, sack_perm=True, has_ts=True, tsval=0x01020304,
           tsecr=0x05060708, sack_count=2, sack=[100, 200, 300, 400])


def test_tcp_flags_urgent_reserved_and_ae() -> None:
    frame = bytearray(raw(E / IP(**H4) / TCP(sport=1, dport=2, flags="FPU", urgptr=9)))
    frame[46] |= 0x0F  # reserved bits + AE
    expect(decode1(bytes(frame)), **eth(), **ipv4(**H4, proto=6, ip_len=40),
           **tcp(1, 2, 0, flags=0xF29, csum=CSUM_BAD), urp=9)


def _tcp_with_raw_options(options: bytes, payload: bytes = b"") -> bytes:
    """A TCP segment whose option bytes scapy must not rewrite; the checksum is recomputed."""
    hdr = raw(TCP(sport=1, dport=2, flags="S"))[:20]
    seg = bytearray(hdr[:12] + bytes([(20 + len(options)) // 4 << 4]) + hdr[13:] + options
                    + payload)
    seg[16:18] = b"\0\0"
    ip = raw(IP(**H4, proto=6, len=20 + len(seg)))
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    seg[16:18] = struct.pack("!H", 0xFFFF - ones_sum(pseudo + bytes(seg)))
    return raw(Ether(src=E.src, dst=E.dst, type=0x0800)) + ip + bytes(seg)


@pytest.mark.parametrize(
    ("options", "kinds", "values", "reason"),
    [
        # zeros after EOL are listed as EOL; listing ends at non-zero padding (tshark 4.0)
        (b"\x01\x00\x00\x00\x02\x04\x05\xb4", [1, 0, 0, 0], {}, 0),
        (b"\x00\x01\x01\x01", [0], {}, 0),
        # a length below 2 or past the header: the kind is listed, parsing stops
        (b"\x01\x08\x01\x00", [1, 8], {}, Malformed.TCP_OPTION_INVALID),
        (b"\x01\x08\x0a\x00", [1, 8], {}, Malformed.TCP_OPTION_INVALID),
        (b"\x01\x01\x01\x02", [1, 1, 1, 2], {}, Malformed.TCP_OPTION_INVALID),
        # a known kind with another length is listed, its value not taken
        (b"\x02\x05\x05\xb4\x00\x00\x00\x00", [2, 0, 0, 0], {}, 0),
        (b"\x03\x04\x07\x00\x04\x03\x00\x01", [3, 4, 1], {}, 0),
        (b"\x05\x06\x00\x00\x00\x01\x00\x00", [5, 0, 0], {}, 0),
        # unknown kinds are skipped by their length
        (b"\x1e\x04\xaa\xbb\x03\x03\x08\x00", [30, 3, 0], {"wscale": 8}, 0),
    ],
)
def test_tcp_option_edge_cases(options: bytes, kinds: list[int], values: dict[str, Any],
                               reason: int) -> None:
    row = decode1(_tcp_with_raw_options(options, b"data"))
    hlen = 20 + len(options)
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=20 + hlen + 4, ip_id=1),
           **tcp(1, 2, 4, hlen=hlen, kinds=kinds), **values, malformed=reason)


def test_tcp_data_offset_invalid() -> None:
    short = bytearray(_tcp_with_raw_options(b"", b"x" * 10))
    short[46] = 4 << 4  # 16-byte header
    expect(decode1(bytes(short)), **eth(), **ipv4(**H4, proto=6, ip_len=50),
           **tcp(1, 2, -1, hlen=16, csum=CSUM_BAD), malformed=Malformed.TCP_OFFSET_INVALID)
    long = bytearray(_tcp_with_raw_options(b"", b"x" * 10))
    long[46] = 15 << 4  # 60 bytes but only 30 in the IP payload
    expect(decode1(bytes(long)), **eth(), **ipv4(**H4, proto=6, ip_len=50),
           **tcp(1, 2, -1, hlen=60, csum=CSUM_BAD), malformed=Malformed.TCP_OFFSET_INVALID)


def test_tcp_checksum_good_and_bad() -> None:
    good = E / IP(**H4) / TCP(sport=1, dport=2, flags="PA", seq=5, ack=6) / Raw(b"abc")
    expect(decode1(good), **eth(), **ipv4(**H4, proto=6, ip_len=43),
           **tcp(1, 2, 3, flags=0x018, seq=5, ack=6))
    bad = E / IP(**H4) / TCP(sport=1, dport=2, flags="PA", seq=5, ack=6, chksum=0xDEAD) / Raw(
        b"abc")
    expect(decode1(bad), **eth(), **ipv4(**H4, proto=6, ip_len=43),
           **tcp(1, 2, 3, flags=0x018, seq=5, ack=6, csum=CSUM_BAD))
    good6 = E / IPv6(**H6) / TCP(sport=1, dport=2) / Raw(b"abc")
    expect(decode1(good6), **eth(0x86DD), **ipv6(**H6, proto=6, ip_len=63), **tcp(1, 2, 3))


def test_snaplen_truncation_keeps_header_lengths() -> None:
    full = raw(E / IP(**H4) / TCP(sport=1, dport=2, flags="A", options=[("MSS", 1000)])
               / Raw(b"p" * 500))
    row = decode1(full[:58], wirelen=len(full))  # TCP header and 4 option bytes kept
    assert row["truncated"] is True
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=544),
           **tcp(1, 2, 500, flags=0x010, hlen=24, csum=CSUM_UNVERIFIED, kinds=[2]), mss=1000)
    # cut inside the options: the kind is listed, its value not taken, nothing malformed
    row = decode1(full[:56], wirelen=len(full))
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=544),
           **tcp(1, 2, 500, flags=0x010, hlen=24, csum=CSUM_UNVERIFIED, kinds=[2]))
    # cut inside the TCP header: stop there, flagged truncated only
    row = decode1(full[:50], wirelen=len(full))
    assert row["truncated"] is True
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=544))
    # cut inside the Ethernet header
    row = decode1(full[:10], wirelen=len(full))
    expect(row)


# --- UDP / ICMP ----------------------------------------------------------------------------------


def test_udp_length_invalid_and_zero_checksum() -> None:
    small = E / IP(**H4) / UDP(sport=1, dport=2, len=4) / Raw(b"abcd")
    expect(decode1(small), **eth(), **ipv4(**H4, proto=17, ip_len=32),
           l4=17, sport=1, dport=2, udp_len=4, payload=4, l4_csum=CSUM_UNVERIFIED,
           malformed=Malformed.UDP_LENGTH_INVALID)
    big = E / IP(**H4) / UDP(sport=1, dport=2, len=100) / Raw(b"abcd")
    expect(decode1(big), **eth(), **ipv4(**H4, proto=17, ip_len=32),
           l4=17, sport=1, dport=2, udp_len=100, payload=4, l4_csum=CSUM_UNVERIFIED,
           malformed=Malformed.UDP_LENGTH_INVALID)
    none4 = E / IP(**H4) / UDP(sport=1, dport=2, chksum=0) / Raw(b"x")
    expect(decode1(none4), **eth(), **ipv4(**H4, proto=17, ip_len=29),
           **udp(1, 2, 9, csum=CSUM_UNVERIFIED))
    none6 = E / IPv6(**H6) / UDP(sport=1, dport=2, chksum=0) / Raw(b"x")
    expect(decode1(none6), **eth(0x86DD), **ipv6(**H6, proto=17, ip_len=49),
           **udp(1, 2, 9, csum=CSUM_BAD))
    bad = E / IP(**H4) / UDP(sport=1, dport=2, chksum=1) / Raw(b"x")
    expect(decode1(bad), **eth(), **ipv4(**H4, proto=17, ip_len=29),
           **udp(1, 2, 9, csum=CSUM_BAD))


def test_udp_trailing_ethernet_padding_is_not_payload() -> None:
    pkt = raw(E / IP(**H4) / UDP(sport=1, dport=2) / Raw(b"x")) + b"\0" * 17
    expect(decode1(pkt), **eth(), **ipv4(**H4, proto=17, ip_len=29), **udp(1, 2, 9))


def test_icmp_echo_and_port_unreachable_quoting_udp() -> None:
    echo = E / IP(**H4) / ICMP(type=8, id=0x1234, seq=1) / Raw(b"ping" * 8)
    expect(decode1(echo), **eth(), **ipv4(**H4, proto=1, ip_len=60),
           l4=1, icmp_type=8, icmp_code=0, icmp_id=0x1234, payload=32, l4_csum=CSUM_GOOD)
    unreach = (E / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3)
               / IPerror(src="10.0.0.1", dst="10.0.0.2") / UDPerror(sport=5353, dport=9999)
               / Raw(b"q" * 12))
    expect(decode1(unreach), **eth(),
           **ipv4(src="10.0.0.2", dst="10.0.0.1", proto=1, ip_len=68),
           l4=1, icmp_type=3, icmp_code=3, payload=40, l4_csum=CSUM_GOOD,
           q_valid=True, q_src="10.0.0.1", q_dst="10.0.0.2", q_proto=17, q_sport=5353,
           q_dport=9999)
    # a quote cut before the ports cannot be attributed: no q_* columns at all
    cut = raw(E / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=11, code=0)
              / IPerror(src="10.0.0.1", dst="10.0.0.2", proto=6))
    expect(decode1(cut), **eth(), **ipv4(src="10.0.0.2", dst="10.0.0.1", proto=1, ip_len=48),
           l4=1, icmp_type=11, icmp_code=0, payload=20, l4_csum=CSUM_GOOD)


def test_icmpv6_echo_and_error_with_pseudo_header_checksum() -> None:
    echo = E / IPv6(**H6) / ICMPv6EchoRequest(id=42, seq=1, data=b"abcd")
    expect(decode1(echo), **eth(0x86DD), **ipv6(**H6, proto=58, ip_len=52),
           l4=58, icmp_type=128, icmp_code=0, icmp_id=42, payload=4, l4_csum=CSUM_GOOD)
    error = (E / IPv6(src=H6["dst"], dst=H6["src"]) / ICMPv6DestUnreach(code=4)
             / IPv6(**H6) / IPv6ExtHdrDestOpt() / TCP(sport=80, dport=1234))
    expect(decode1(error), **eth(0x86DD),
           **ipv6(src=H6["dst"], dst=H6["src"], proto=58, ip_len=116),
           l4=58, icmp_type=1, icmp_code=4, payload=68, l4_csum=CSUM_GOOD,
           q_valid=True, q_src=H6["src"], q_dst=H6["dst"], q_proto=6, q_sport=80,
           q_dport=1234)
    bad = E / IPv6(**H6) / ICMPv6EchoRequest(id=42, cksum=7)
    expect(decode1(bad), **eth(0x86DD), **ipv6(**H6, proto=58, ip_len=48),
           l4=58, icmp_type=128, icmp_code=0, icmp_id=42, payload=0, l4_csum=CSUM_BAD)


# --- tunnels -------------------------------------------------------------------------------------

OUT4 = Hosts(src="192.0.2.1", dst="192.0.2.2")
IN4 = Hosts(src="10.1.1.1", dst="10.2.2.2")


def outer(proto: int, ip_len: int, sport: int = 0, dport: int = 0, *,
          src: str = OUT4["src"], dst: str = OUT4["dst"]) -> dict[str, Any]:
    cols: dict[str, Any] = dict(out_src=src, out_dst=dst, out_proto=proto, out_ip_len=ip_len)
    if sport or dport:
        cols.update(out_sport=sport, out_dport=dport)
    return cols


def carrier(proto: int, ip_len: int, sport: int = 0, dport: int = 0, *,
            src: str = IN4["src"], dst: str = IN4["dst"]) -> dict[str, Any]:
    """The innermost tunnel's carrier when there are two or more (car_*)."""
    cols: dict[str, Any] = dict(car_src=src, car_dst=dst, car_proto=proto, car_ip_len=ip_len)
    if sport or dport:
        cols.update(car_sport=sport, car_dport=dport)
    return cols


def tunnel(*kinds: int) -> dict[str, Any]:
    packed = sum(k << (4 * n) for n, k in enumerate(kinds))
    return dict(tunnel=packed, tunnel_depth=len(kinds))


def test_gre_v0_key_seq_ip_inside() -> None:
    pkt = (E / IP(**OUT4) / GRE(key_present=1, key=0x11223344, seqnum_present=1, sequence_number=7)
           / IP(**IN4, ttl=5) / TCP(sport=22, dport=50000, flags="A"))
    expect(decode1(pkt), **eth(), **outer(47, 20 + 12 + 40), **tunnel(tn.TUNNEL_GRE),
           **ipv4(**IN4, proto=6, ip_len=40, ttl=5), **tcp(22, 50000, 0, flags=0x010))


def test_gre_checksum_teb_ethernet_inside_with_vlan() -> None:
    inner: Packet = E2 / Dot1Q(vlan=42) / IPv6(**H6) / UDP(sport=1, dport=2)
    pkt = E / Dot1Q(vlan=5) / IP(**OUT4) / GRE(chksum_present=1, proto=0x6558) / inner
    expect(decode1(pkt), ethertype=0x86DD, vlan=5, vlan_count=2,
           **outer(47, 20 + 8 + 18 + 48), **tunnel(tn.TUNNEL_GRE),
           **ipv6(**H6, proto=17, ip_len=48), **udp(1, 2, 8))


def test_gre_pptp_ppp_inside_and_invalid_gre() -> None:
    gre1 = struct.pack("!BBHHHI", 0x30, 0x81, 0x880B, 28 + 4, 9, 1) + struct.pack("!I", 0)
    ppp = b"\xff\x03\x00\x21" + raw(IP(**IN4) / UDP(sport=1, dport=2))
    frame = raw(E / IP(**OUT4, proto=47, len=20 + len(gre1) + len(ppp))) + gre1 + ppp
    expect(decode1(frame), **eth(), ppp_proto=0x0021, **outer(47, 20 + 16 + 32),
           **tunnel(tn.TUNNEL_GRE), **ipv4(**IN4, proto=17, ip_len=28), **udp(1, 2, 8))
    routing = E / IP(**OUT4) / GRE(routing_present=1) / IP(**IN4)
    expect(decode1(routing), **eth(), **ipv4(**OUT4, proto=47, ip_len=48),
           malformed=Malformed.GRE_HEADER_INVALID)
    other = E / IP(**OUT4) / GRE(proto=0x88BE) / Raw(b"\0" * 20)  # ERSPAN: not descended
    expect(decode1(other), **eth(), **ipv4(**OUT4, proto=47, ip_len=44))


def test_ip_in_ip_6in4_4in6_6in6() -> None:
    cases = [
        (IP(**OUT4) / IP(**IN4), tn.TUNNEL_IPIP, 4, 4),
        (IP(**OUT4) / IPv6(**H6), tn.TUNNEL_6IN4, 41, 6),
        (IPv6(src="2001:db8:f::1", dst="2001:db8:f::2") / IP(**IN4), tn.TUNNEL_4IN6, 4, 4),
        (IPv6(src="2001:db8:f::1", dst="2001:db8:f::2") / IPv6(**H6), tn.TUNNEL_6IN6, 41, 6),
    ]
    for carrier, kind, proto, inner_version in cases:
        pkt = E / carrier / UDP(sport=3, dport=4)
        ip_len = len(raw(pkt)) - 14
        out = (outer(proto, ip_len) if isinstance(carrier, IP) else
               outer(proto, ip_len, src="2001:db8:f::1", dst="2001:db8:f::2"))
        inner = (ipv4(**IN4, proto=17, ip_len=28) if inner_version == 4
                 else ipv6(**H6, proto=17, ip_len=48))
        expect(decode1(pkt), ethertype=0x0800 if isinstance(carrier, IP) else 0x86DD,
               **out, **tunnel(kind), **inner, **udp(3, 4, 8))


def test_vxlan_ethernet_inside() -> None:
    pkt = (E / IP(**OUT4) / UDP(sport=40000, dport=4789) / VXLAN(vni=7) / E2
           / IP(**IN4) / ICMP(type=0, id=3))
    expect(decode1(pkt), ethertype=0x0800, **outer(17, 20 + 8 + 8 + 14 + 28, 40000, 4789),
           **tunnel(tn.TUNNEL_VXLAN), **ipv4(**IN4, proto=1, ip_len=28),
           l4=1, icmp_type=0, icmp_code=0, icmp_id=3, payload=0, l4_csum=CSUM_GOOD)
    # no IP inside: no tunnel crossed to reach the innermost IP layer, the row is the carrier's
    arp = E / IP(**OUT4) / UDP(sport=40000, dport=4789) / VXLAN(vni=7) / E2 / ARP()
    expect(decode1(arp), **eth(), **ipv4(**OUT4, proto=17, ip_len=78), **udp(40000, 4789, 58))
    gre_arp = E / IP(**OUT4) / GRE(proto=0x6558) / E2 / ARP()
    expect(decode1(gre_arp), **eth(), **ipv4(**OUT4, proto=47, ip_len=66))


def test_geneve_with_options() -> None:
    opts = b"\x01\x02\x03\x01" + b"\xaa" * 4
    hdr = struct.pack("!BBHI", 2, 0, 0x0800, 9 << 8) + opts
    inner = raw(IP(**IN4) / TCP(sport=1, dport=2))
    pkt = E / IP(**OUT4) / UDP(sport=5, dport=6081) / Raw(hdr + inner)
    expect(decode1(pkt), **eth(), **outer(17, 20 + 8 + 16 + 40, 5, 6081),
           **tunnel(tn.TUNNEL_GENEVE), **ipv4(**IN4, proto=6, ip_len=40), **tcp(1, 2, 0))
    teb = E / IP(**OUT4) / UDP(sport=5, dport=6081) / GENEVE(proto=0x6558, vni=1) / E2 / (
        IPv6(**H6) / UDP(sport=7, dport=8))
    expect(decode1(teb), ethertype=0x86DD, **outer(17, 20 + 8 + 8 + 14 + 48, 5, 6081),
           **tunnel(tn.TUNNEL_GENEVE), **ipv6(**H6, proto=17, ip_len=48), **udp(7, 8, 8))


def test_teredo_plain_origin_and_auth() -> None:
    inner = raw(IPv6(**H6) / UDP(sport=7, dport=8))
    origin = b"\x00\x00" + b"\xaa" * 6
    auth = b"\x00\x01\x01\x02" + b"i" + b"au" + b"n" * 8 + b"\x00"
    for prefix in (b"", origin, auth + origin):
        pkt = E / IP(**OUT4) / UDP(sport=3544, dport=50000) / Raw(prefix + inner)
        expect(decode1(pkt), **eth(),
               **outer(17, 20 + 8 + len(prefix) + 48, 3544, 50000),
               **tunnel(tn.TUNNEL_TEREDO), **ipv6(**H6, proto=17, ip_len=48), **udp(7, 8, 8))
    # not a plausible IPv6 header: plain UDP
    junk = E / IP(**OUT4) / UDP(sport=50000, dport=3544) / Raw(b"\x60" + b"\xff" * 60)
    expect(decode1(junk), **eth(), **ipv4(**OUT4, proto=17, ip_len=89),
           **udp(50000, 3544, 69))


def test_gtpu_with_extension_header() -> None:
    inner: Packet = IP(**IN4) / UDP(sport=7, dport=8)
    plain = E / IP(**OUT4) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1) / inner
    expect(decode1(plain), **eth(), **outer(17, 20 + 8 + 8 + 28, 2152, 2152),
           **tunnel(tn.TUNNEL_GTPU), **ipv4(**IN4, proto=17, ip_len=28), **udp(7, 8, 8))
    ext = (E / IP(**OUT4) / UDP(sport=2152, dport=2152)
           / GTP_U_Header(teid=1, E=1, next_ex=0x85) / GTPPDUSessionContainer(QFI=5)
           / inner)
    ext_len = len(raw(ext)) - 14 - 20 - 8 - 28
    expect(decode1(ext), **eth(), **outer(17, 20 + 8 + ext_len + 28, 2152, 2152),
           **tunnel(tn.TUNNEL_GTPU), **ipv4(**IN4, proto=17, ip_len=28), **udp(7, 8, 8))
    echo = E / IP(**OUT4) / UDP(sport=2152, dport=2152) / GTP_U_Header(gtp_type=1)
    expect(decode1(echo), **eth(), **ipv4(**OUT4, proto=17, ip_len=36),
           **udp(2152, 2152, 16))


def test_gtpu_carrying_teredo_keeps_both_carriers() -> None:
    """zeek-gtp-teredo-icmpv6: GTP-U, then Teredo, then IPv6; Zeek logs both UDP carriers."""
    teredo = IP(**IN4) / UDP(sport=50000, dport=3544)
    gtp = IP(**OUT4) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1)
    echo = E / gtp / teredo / IPv6(**H6) / ICMPv6EchoRequest(id=9)
    expect(decode1(echo), **eth(), **outer(17, 20 + 8 + 8 + 28 + 48, 2152, 2152),
           **carrier(17, 28 + 48, 50000, 3544),
           **tunnel(tn.TUNNEL_GTPU, tn.TUNNEL_TEREDO), **ipv6(**H6, proto=58, ip_len=48),
           l4=58, icmp_type=128, icmp_code=0, icmp_id=9, payload=0, l4_csum=CSUM_GOOD)
    # A bubble: IPv6 with no next header, nothing inside to track but the carriers.
    bubble = E / gtp / teredo / IPv6(**H6, nh=59)
    expect(decode1(bubble), **eth(), **outer(17, 20 + 8 + 8 + 28 + 40, 2152, 2152),
           **carrier(17, 28 + 40, 50000, 3544),
           **tunnel(tn.TUNNEL_GTPU, tn.TUNNEL_TEREDO), **ipv6(**H6, proto=59, ip_len=40))
    # Teredo without a plausible IPv6 header: the row is Teredo's UDP, one tunnel deep.
    junk = E / gtp / IP(**IN4) / UDP(sport=50000, dport=3544) / Raw(b"\x60" + b"\xff" * 60)
    expect(decode1(junk), **eth(), **outer(17, 20 + 8 + 8 + 28 + 61, 2152, 2152),
           **tunnel(tn.TUNNEL_GTPU), **ipv4(**IN4, proto=17, ip_len=89),
           **udp(50000, 3544, 69))


def test_tunnel_too_deep() -> None:
    pkt: Packet = IP(**OUT4)
    for _ in range(7):
        pkt = pkt / IP(**OUT4)
    pkt = pkt / IP(**IN4) / UDP(sport=1, dport=2)
    row = decode1(E / pkt)
    ip_len = len(raw(pkt)) - 7 * 20
    expect(row, **eth(), **outer(4, len(raw(pkt))), **tunnel(*[tn.TUNNEL_IPIP] * 7),
           **carrier(4, ip_len + 20, src=OUT4["src"], dst=OUT4["dst"]),
           **ipv4(**OUT4, proto=4, ip_len=ip_len), malformed=Malformed.TUNNEL_TOO_DEEP)


FDDI_LLC = b"\x50" + b"\x00\x04\x00\x82\xa7\xaa" + b"\x00\x04\x00\x83\xa7\xaa"
"""Frame control (LLC, asynchronous) and two bit-swapped MACs, as in zeek-fddi-rst-repeats."""


def test_fddi_llc_snap() -> None:
    ip = raw(IP(**H4) / TCP(sport=2035, dport=80, flags="R"))
    snap = FDDI_LLC + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip
    expect(decode1(snap, lt.FDDI), ethertype=0x0800, **ipv4(**H4, proto=6, ip_len=40),
           **tcp(2035, 80, 0, flags=0x04))
    # Another SAP (here spanning tree, 42 42 03) is not IP; neither is a cut LLC header.
    expect(decode1(FDDI_LLC + b"\x42\x42\x03" + ip, lt.FDDI))
    expect(decode1(FDDI_LLC + b"\xaa\xaa", lt.FDDI), malformed=Malformed.LINK_HEADER_SHORT)
    expect(decode1(FDDI_LLC + b"\xaa\xaa\x03\x00\x00", lt.FDDI),
           malformed=Malformed.LINK_HEADER_SHORT)


# --- malformed headers ---------------------------------------------------------------------------


def _ip4(**fields: Any) -> bytes:
    return raw(IP(**H4, **fields) / UDP(sport=1, dport=2))


MALFORMED_CASES: list[tuple[str, bytes, int, Malformed, dict[str, Any]]] = [
    ("ethernet short", raw(E)[:13], lt.ETHERNET, Malformed.LINK_HEADER_SHORT, {}),
    ("sll short", b"\0" * 15, lt.LINUX_SLL, Malformed.LINK_HEADER_SHORT, {}),
    ("sll2 short", b"\0" * 19, lt.LINUX_SLL2, Malformed.LINK_HEADER_SHORT, {}),
    ("null short", b"\x02\0\0", lt.NULL, Malformed.LINK_HEADER_SHORT, {}),
    ("raw empty", b"", lt.RAW, Malformed.LINK_HEADER_SHORT, {}),
    ("vlan short", raw(E / Dot1Q(vlan=1))[:16], lt.ETHERNET, Malformed.VLAN_TAG_SHORT,
     {"ethertype": 0x8100}),
    ("mpls short", raw(E / MPLS(s=0))[:16], lt.ETHERNET, Malformed.MPLS_LABEL_SHORT,
     {"ethertype": 0x8847}),
    ("mpls nothing after", raw(E / MPLS(s=1))[:18], lt.ETHERNET,
     Malformed.MPLS_PAYLOAD_UNKNOWN, {"ethertype": 0x8847, "mpls_count": 1}),
    ("pppoe short", raw(E / PPPoE())[:18], lt.ETHERNET, Malformed.PPPOE_HEADER_SHORT,
     {"ethertype": 0x8864}),
    ("ppp short", raw(E / PPPoE())[:21], lt.ETHERNET, Malformed.PPP_HEADER_SHORT,
     {"ethertype": 0x8864}),
    ("ipv4 short", _ip4()[:19], lt.IPV4, Malformed.IPV4_HEADER_SHORT, {}),
    ("ipv4 version", b"\x55" + _ip4()[1:], lt.IPV4, Malformed.IPV4_VERSION_MISMATCH, {}),
    ("ipv4 ihl", b"\x44" + _ip4()[1:], lt.IPV4, Malformed.IPV4_IHL_INVALID, {}),
    # a length contradicting the frame leaves the fixed header's fields in the row
    ("ipv4 total < ihl", _ip4(len=19), lt.IPV4, Malformed.IPV4_TOTAL_LENGTH_INVALID,
     ipv4(**H4, proto=17, ip_len=19)),
    ("ipv4 total > wire", _ip4(len=29), lt.IPV4, Malformed.IPV4_TOTAL_LENGTH_INVALID,
     ipv4(**H4, proto=17, ip_len=29)),
    ("ipv4 options > wire", _ip4(ihl=15, len=68), lt.IPV4,
     Malformed.IPV4_TOTAL_LENGTH_INVALID,
     ipv4(**H4, proto=17, ip_len=68, hlen=60, csum=CSUM_UNVERIFIED)),
    ("ipv6 short", raw(IPv6(**H6))[:39], lt.IPV6, Malformed.IPV6_HEADER_SHORT, {}),
    ("ipv6 version", b"\x45" + raw(IPv6(**H6))[1:], lt.IPV6,
     Malformed.IPV6_VERSION_MISMATCH, {}),
    ("ipv6 payload length", raw(IPv6(**H6, plen=1, nh=59)), lt.IPV6,
     Malformed.IPV6_PAYLOAD_LENGTH_INVALID,
     dict(ip_version=6, src=H6["src"], dst=H6["dst"], ip_len=41, ttl=64)),
]


@pytest.mark.parametrize(("frame", "linktype", "reason", "cols"),
                         [c[1:] for c in MALFORMED_CASES], ids=[c[0] for c in MALFORMED_CASES])
def test_malformed_link_and_ip_headers(frame: bytes, linktype: int, reason: Malformed,
                                       cols: dict[str, Any]) -> None:
    expect(decode1(frame, linktype), **cols, malformed=reason)
    row = decode1(frame, linktype, wirelen=len(frame) + 100)
    assert row["truncated"] is True
    if reason in (Malformed.IPV4_VERSION_MISMATCH, Malformed.IPV4_IHL_INVALID,
                  Malformed.IPV6_VERSION_MISMATCH):
        assert row["malformed"] == reason  # contradictions in the bytes stay malformed
    elif reason in (Malformed.IPV4_TOTAL_LENGTH_INVALID, Malformed.IPV6_PAYLOAD_LENGTH_INVALID):
        # a length past the frame fits the longer wire; one below the header never does
        short_total = reason == Malformed.IPV4_TOTAL_LENGTH_INVALID and frame[3] < 20
        assert row["malformed"] == (reason if short_total else 0)
        assert row["ip_version"] == (4 if linktype == lt.IPV4 else 6)
    else:  # the same bytes cut by snaplen are only truncated
        expect(row, **cols)


def test_malformed_ipv6_extension_header_and_transport_headers() -> None:
    hbh = raw(IPv6(**H6, nh=0, plen=8) / Raw(b"\x11\x01" + b"\0" * 6))  # claims 16 bytes
    expect(decode1(hbh, lt.IPV6), **ipv6(**H6, proto=0, ip_len=48),
           malformed=Malformed.IPV6_EXT_HEADER_INVALID)
    tcp_short = raw(IP(**H4, proto=6, len=30)) + b"\0" * 10
    expect(decode1(tcp_short, lt.IPV4), **ipv4(**H4, proto=6, ip_len=30),
           malformed=Malformed.TCP_HEADER_SHORT)
    udp_short = raw(IP(**H4, proto=17, len=24)) + b"\0" * 4
    expect(decode1(udp_short, lt.IPV4), **ipv4(**H4, proto=17, ip_len=24),
           malformed=Malformed.UDP_HEADER_SHORT)
    icmp_short = raw(IP(**H4, proto=1, len=24)) + b"\x08\0\0\0"
    expect(decode1(icmp_short, lt.IPV4), **ipv4(**H4, proto=1, ip_len=24),
           malformed=Malformed.ICMP_HEADER_SHORT)
    # the IP length, not Ethernet padding, bounds the transport header
    padded = raw(E / IP(**H4, proto=6, len=20)) + b"\0" * 26
    expect(decode1(padded), **eth(), **ipv4(**H4, proto=6, ip_len=20),
           malformed=Malformed.TCP_HEADER_SHORT)


def test_malformed_tunnel_headers() -> None:
    vx = E / IP(**OUT4) / UDP(sport=1, dport=4789) / Raw(b"\x08\0\0\0")
    expect(decode1(vx), **eth(), **ipv4(**OUT4, proto=17, ip_len=32), **udp(1, 4789, 12),
           malformed=Malformed.TUNNEL_HEADER_INVALID)
    gen = E / IP(**OUT4) / UDP(sport=1, dport=6081) / Raw(struct.pack("!BBHI", 4, 0, 0x0800, 0))
    expect(decode1(gen), **eth(), **ipv4(**OUT4, proto=17, ip_len=36), **udp(1, 6081, 16),
           malformed=Malformed.TUNNEL_HEADER_INVALID)
    gre = E / IP(**OUT4, proto=47) / Raw(b"\x20\x00\x08\x00")  # key bit, no key
    expect(decode1(gre), **eth(), **ipv4(**OUT4, proto=47, ip_len=24),
           malformed=Malformed.GRE_HEADER_INVALID)
    gre2 = E / IP(**OUT4, proto=47) / Raw(b"\x00\x02\x08\x00")  # version 2
    expect(decode1(gre2), **eth(), **ipv4(**OUT4, proto=47, ip_len=24),
           malformed=Malformed.GRE_HEADER_INVALID)
    # a tunnel whose inside is broken before an IP header: the carrier's row, and the reason
    inner_bad = E / IP(**OUT4) / GRE(proto=0x0800) / Raw(b"\x65" + b"\0" * 30)
    expect(decode1(inner_bad), **eth(), **ipv4(**OUT4, proto=47, ip_len=55),
           malformed=Malformed.IPV4_VERSION_MISMATCH)
    # ... but once the inner IP header is there, the tunnel counts
    inner_len = E / IP(**OUT4) / GRE(proto=0x0800) / IP(**IN4, len=200)
    expect(decode1(inner_len), **eth(), **outer(47, 44), **tunnel(tn.TUNNEL_GRE),
           **ipv4(**IN4, proto=0, ip_len=200), malformed=Malformed.IPV4_TOTAL_LENGTH_INVALID)
    vx_short = E / IP(**OUT4) / UDP(sport=1, dport=4789) / VXLAN() / Raw(b"\0" * 10)
    expect(decode1(vx_short), **eth(), **ipv4(**OUT4, proto=17, ip_len=46),
           **udp(1, 4789, 26), malformed=Malformed.LINK_HEADER_SHORT)


# --- decisions against tshark 4.0 (each frame also runs through tests/test_rust_decoder.py) --


def test_vxlan_without_the_i_flag_is_descended() -> None:
    pkt = (E / IP(**OUT4) / UDP(sport=40000, dport=4789) / VXLAN(flags=0, vni=7) / E2
           / IP(**IN4) / UDP(sport=7, dport=8))
    expect(decode1(pkt), ethertype=0x0800, **outer(17, 20 + 8 + 8 + 14 + 28, 40000, 4789),
           **tunnel(tn.TUNNEL_VXLAN), **ipv4(**IN4, proto=17, ip_len=28), **udp(7, 8, 8))


def test_geneve_options_past_the_udp_payload() -> None:
    hdr = struct.pack("!BBHI", 3, 0, 0x0800, 0) + b"\0" * 8  # 12 option bytes announced, 8 sent
    gen = E / IP(**OUT4) / UDP(sport=1, dport=6081) / Raw(hdr)
    expect(decode1(gen), **eth(), **ipv4(**OUT4, proto=17, ip_len=44), **udp(1, 6081, 24),
           malformed=Malformed.TUNNEL_HEADER_INVALID)


def test_gtpu_needs_protocol_type_1_and_the_e_flag_names_extensions() -> None:
    inner = raw(IP(**IN4) / UDP(sport=7, dport=8))
    gtp_prime = struct.pack("!BBHI", 0x20, 0xFF, len(inner), 1) + inner  # PT 0: not GTP-U
    pkt = E / IP(**OUT4) / UDP(sport=2152, dport=2152) / Raw(gtp_prime)
    expect(decode1(pkt), **eth(), **ipv4(**OUT4, proto=17, ip_len=64),
           **udp(2152, 2152, 44))
    # S set, E clear: the next-extension byte (0x85) is not read
    seq = struct.pack("!BBHIHBB", 0x32, 0xFF, len(inner) + 4, 1, 1, 0, 0x85) + inner
    pkt = E / IP(**OUT4) / UDP(sport=2152, dport=2152) / Raw(seq)
    expect(decode1(pkt), **eth(), **outer(17, 20 + 8 + 12 + 28, 2152, 2152),
           **tunnel(tn.TUNNEL_GTPU), **ipv4(**IN4, proto=17, ip_len=28), **udp(7, 8, 8))


def test_udp_zero_checksum_over_ipv6_with_a_bad_length() -> None:
    # tshark: a length past the IP payload is flagged, and the zero checksum still "illegal"
    long = E / IPv6(**H6) / UDP(sport=1, dport=2, len=100, chksum=0) / Raw(b"abcd")
    expect(decode1(long), **eth(0x86DD), **ipv6(**H6, proto=17, ip_len=52),
           l4=17, sport=1, dport=2, udp_len=100, payload=4, l4_csum=CSUM_BAD,
           malformed=Malformed.UDP_LENGTH_INVALID)
    # ... a length below 8 stops it before the checksum
    short = E / IPv6(**H6) / UDP(sport=1, dport=2, len=4, chksum=0) / Raw(b"abcd")
    expect(decode1(short), **eth(0x86DD), **ipv6(**H6, proto=17, ip_len=52),
           l4=17, sport=1, dport=2, udp_len=4, payload=4, l4_csum=CSUM_UNVERIFIED,
           malformed=Malformed.UDP_LENGTH_INVALID)


def test_wire_length_below_the_captured_length_is_taken_as_captured() -> None:
    pkt = E / IP(**H4) / UDP(sport=1, dport=2) / Raw(b"x" * 20)
    row = decode1(pkt, wirelen=30)  # tshark: "frame length is less than captured length"
    expect(row, **eth(), **ipv4(**H4, proto=17, ip_len=48), **udp(1, 2, 28))
    assert (row["wirelen"], row["caplen"]) == (30, 62)


def test_icmp_quote_is_all_or_nothing() -> None:
    reply = Hosts(src="10.0.0.2", dst="10.0.0.1")
    icmp_row = dict(**eth(), **ipv4(**reply, proto=1, ip_len=56), l4=1, icmp_type=3,
                    icmp_code=3, payload=28, l4_csum=CSUM_GOOD)
    # a non-first fragment quoted: its first bytes are no ports, so nothing is attributed
    frag = E / IP(**reply) / ICMP(type=3, code=3) / IPerror(**H4, proto=17, frag=4) / Raw(
        b"\x01\x02\x03\x04\x05\x06\x07\x08")
    expect(decode1(frag), **icmp_row)
    # IHL below 5 in the quote
    bad_ihl = E / IP(**reply) / ICMP(type=3, code=3) / IPerror(**H4, ihl=4, proto=17) / Raw(
        b"\x01\x02\x03\x04\x05\x06\x07\x08")
    expect(decode1(bad_ihl), **icmp_row)
    # a quoted protocol without ports: valid, ports 0
    gre = E / IP(**reply) / ICMP(type=3, code=3) / IPerror(**H4, proto=47) / Raw(b"\0" * 8)
    expect(decode1(gre), **icmp_row, q_valid=True, q_src=H4["src"], q_dst=H4["dst"],
           q_proto=47)
    # ICMPv6 quotes IPv6 only
    v4_in_v6 = (E / IPv6(src=H6["dst"], dst=H6["src"]) / ICMPv6DestUnreach(code=4)
                / IPerror(**H4) / UDPerror(sport=1, dport=2))
    expect(decode1(v4_in_v6), **eth(0x86DD),
           **ipv6(src=H6["dst"], dst=H6["src"], proto=58, ip_len=76), l4=58, icmp_type=1,
           icmp_code=4, payload=28, l4_csum=CSUM_GOOD)


def test_ipv6_segment_routing_checksum_uses_segment_list_0() -> None:
    final, via = addr_bytes("2001:db8::99"), addr_bytes("2001:db8::2")
    srh = struct.pack("!BBBBBBH", 17, 4, 4, 1, 1, 0, 0) + final + via  # type 4, 1 left
    seg = bytearray(raw(UDP(sport=1, dport=2, chksum=0) / Raw(b"srh")))
    struct.pack_into("!H", seg, 4, len(seg))
    pseudo = addr_bytes(H6["src"]) + final + struct.pack("!IxxxB", len(seg), 17)
    struct.pack_into("!H", seg, 6, 0xFFFF - ones_sum(pseudo + bytes(seg)))
    ip = raw(IPv6(**H6, nh=43, plen=len(srh) + len(seg))) + srh + bytes(seg)
    expect(decode1(raw(E)[:12] + b"\x86\xdd" + ip), **eth(0x86DD),
           **ipv6(**H6, proto=17, ip_len=40 + 40 + 11, hlen=80), **udp(1, 2, 11))


def test_inner_ipv6_with_a_bad_payload_length_keeps_no_carrier_columns() -> None:
    pkt = E / IP(**OUT4) / IPv6(**H6, plen=500, nh=17) / UDP(sport=1, dport=2)
    expect(decode1(pkt), **eth(), **outer(41, 68), **tunnel(tn.TUNNEL_6IN4),
           ip_version=6, src=H6["src"], dst=H6["dst"], ttl=64, ip_len=540,
           malformed=Malformed.IPV6_PAYLOAD_LENGTH_INVALID)


def test_ipv6_chain_cut_by_snaplen_says_where_it_stopped() -> None:
    frame = raw(E / IPv6(**H6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt(options=[]) / UDP())
    row = decode1(frame[:14 + 40 + 8 + 4], wirelen=len(frame))
    expect(row, **eth(0x86DD), **ipv6(**H6, proto=60, ip_len=64, hlen=48))


def test_tcp_option_length_cut_by_snaplen_is_a_quiet_stop() -> None:
    # MSS whose length byte snaplen cut: listed, not malformed (it would be, were the kind
    # the option area's last byte: no room for a length, whatever was captured)
    frame = _tcp_with_raw_options(b"\x01\x01\x02\x04\x05\xb4\x00\x00", b"data")
    row = decode1(frame[: 14 + 20 + 20 + 3], wirelen=len(frame))
    expect(row, **eth(), **ipv4(**H4, proto=6, ip_len=52),
           **tcp(1, 2, 4, hlen=28, csum=CSUM_UNVERIFIED, kinds=[1, 1, 2]))


def test_link_counts_saturate() -> None:
    tags = b"\x81\x00\x00\x05" * 300
    frame = raw(E)[:12] + tags + b"\x08\x00" + raw(IP(**H4) / UDP(sport=1, dport=2))
    expect(decode1(frame), ethertype=0x0800, vlan=5, vlan_count=255,
           **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))
    labels = b"\x00\x01\x00\x40" * 299 + b"\x00\x01\x01\x40"
    frame = raw(E)[:12] + b"\x88\x47" + labels + raw(IP(**H4) / UDP(sport=1, dport=2))
    expect(decode1(frame), ethertype=0x8847, mpls_count=255,
           **ipv4(**H4, proto=17, ip_len=28), **udp(1, 2, 8))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(sorted(lt.SUPPORTED | {51, 147})),
       st.integers(min_value=0, max_value=300))
def test_never_raises_on_any_bytes(data: bytes, linktype: int, extra: int) -> None:
    batch, _ = decode([data], linktype, [len(data) + extra])
    assert len(batch) == 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_never_raises_on_mutated_real_frames(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(MUTATION_BASES))
    frame = bytearray(base)
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        pos = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
        frame[pos] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
    batch, records = decode([bytes(frame[:cut])], lt.ETHERNET, [len(frame)])
    assert all(r.row == 0 for r in records)
    assert batch.row(0)["malformed"] in {int(m) for m in Malformed}


MUTATION_BASES = [
    raw(E / IP(**H4) / TCP(sport=1, dport=2, options=ALL_OPTIONS)),
    raw(E / IPv6(**H6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(nh=17, m=1) / UDP()),
    raw(E / IP(**OUT4) / GRE(key_present=1) / IP(**IN4) / ICMP(type=3) / IPerror() / UDPerror()),
    raw(E / IP(**OUT4) / UDP(dport=4789) / VXLAN() / E2 / IPv6(**H6) / TCP()),
    raw(E / IP(**OUT4) / UDP(dport=2152) / GTP_U_Header(E=1, next_ex=0x85)
        / GTPPDUSessionContainer() / IP() / UDP()),
    raw(E / Dot1Q() / MPLS(s=1) / IP() / UDP(sport=3544) / IPv6() / ICMPv6EchoRequest()),
]


# --- the public corpus against tshark ------------------------------------------------------------

ICMP4_ERRORS = {3, 4, 5, 11, 12}
ICMP6_ERRORS = {1, 2, 3, 4}


def corpus_dir() -> Path | None:
    env = os.environ.get("PORTLENS_CORPUS")
    path = Path(env) if env else REPO.parent / "shared" / "captures" / "public"
    return path if path.is_dir() else None


def corpus_captures() -> list[Path]:
    path = corpus_dir()
    if path is None:
        return []
    return sorted(p for p in path.iterdir()
                  if p.suffix in (".pcap", ".pcapng")
                  and (path / (p.name.split(".")[0] + ".tshark-packets.tsv")).exists())


def read_capture(path: Path) -> FrameBatch:
    """Frames, exact timestamps and wire lengths via scapy's raw readers."""
    frames: list[bytes] = []
    ts: list[int] = []
    wire: list[int] = []
    links: list[int] = []
    if path.suffix == ".pcapng":
        ng = RawPcapNgReader(str(path))
        for data, ng_meta in ng:
            meta: Any = ng_meta  # scapy types it as the pcap metadata
            frames.append(data)
            ticks = (meta.tshigh << 32) | meta.tslow
            ts.append(ticks * 10**9 // meta.tsresol)
            wire.append(meta.wirelen)
            links.append(meta.linktype)
        ng.close()
    else:
        pc = RawPcapReader(str(path))
        scale = 1 if getattr(pc, "nano", False) else 1000
        for data, pc_meta in pc:
            meta = pc_meta
            frames.append(data)
            ts.append(meta.sec * 10**9 + meta.usec * scale)
            wire.append(meta.wirelen)
            links.append(pc.linktype)
        pc.close()
    return FrameBatch.from_frames(frames, ts, linktype=links, wirelen=wire)


def read_oracle(path: Path) -> list[dict[str, list[str]]]:
    tsv = path.parent / (path.name.split(".")[0] + ".tshark-packets.tsv")
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        row = {h: (c.split(",") if c else []) for h, c in zip(header, cells, strict=False)}
        rows.append(row)
    return rows


def epoch_ns(text: str) -> int:
    seconds, _, frac = text.partition(".")
    return int(seconds) * 10**9 + int((frac + "0" * 9)[:9])


def is_v4(addr: bytes) -> bool:
    return addr[:12] == V4_MAPPED_PREFIX


def tshark_differences(t: dict[str, list[str]], b: PacketBatch, i: int) -> list[str]:
    """Fields where tshark's row and ours disagree, as readable strings.

    Multi-layer columns are compared layer by layer: the outermost tunnel carrier (out_*) and
    the innermost layer must be what tshark lists, outermost first. An ICMP error's quoted
    packet, which tshark lists as the last layer, is compared with the q_* columns; the quoted
    TCP header's other fields (flags, seq...) have no portlens column and are not compared.
    """
    diffs: list[str] = []

    def check(name: str, want: object, got: object) -> None:
        if want != got:
            diffs.append(f"{name}: tshark {want!r} portlens {got!r}")

    r = b.row(i)
    check("ts_ns", epoch_ns(t["ts_epoch"][0]), r["ts_ns"])
    check("frame_len", int(t["frame_len"][0]), r["wirelen"])
    check("cap_len", int(t["cap_len"][0]), r["caplen"])

    l4, q_valid = r["l4"], r["q_valid"]
    icmp_error = (l4 == 1 and r["icmp_type"] in ICMP4_ERRORS) or (
        l4 == 58 and r["icmp_type"] in ICMP6_ERRORS)

    # IP layers: the tunnel carrier (depth <= 1 in the corpus), the innermost, the quote.
    layers: list[tuple[bytes, bytes, int]] = []
    if r["tunnel_depth"]:
        layers.append((bytes(r["out_src"]), bytes(r["out_dst"]), r["out_proto"]))
    if r["ip_version"]:
        layers.append((bytes(r["src"]), bytes(r["dst"]), r["proto"]))
    v4 = [x for x in layers if is_v4(x[0])]
    v6 = [x for x in layers if not is_v4(x[0])]
    t4, t6 = list(zip(t["ip_src"], t["ip_dst"], strict=False)), list(
        zip(t["ipv6_src"], t["ipv6_dst"], strict=False))
    if icmp_error:  # the quote: compare it with q_* when it was decoded, then drop it
        quoted = t4 if l4 == 1 else t6
        if quoted and len(quoted) == len(v4 if l4 == 1 else v6) + 1:
            q = quoted.pop()
            if q_valid:
                check("quoted ip", q, (addr_text(bytes(r["q_src"])),
                                       addr_text(bytes(r["q_dst"]))))
    if r["tunnel_depth"] <= 1:
        check("ip_src/dst", t4, [(addr_text(s), addr_text(d)) for s, d, _ in v4])
        check("ipv6_src/dst", t6, [(addr_text(s), addr_text(d)) for s, d, _ in v6])
        check("ip_proto", t["ip_proto"][: len(v4)], [str(p) for _, _, p in v4])
    else:
        check("innermost ip", (t4 + t6)[-1:], [(addr_text(layers[-1][0]),
                                                addr_text(layers[-1][1]))])

    # UDP and TCP ports, layer by layer.
    udp_ports: list[tuple[str, str]] = []
    if r["tunnel_depth"] and r["out_proto"] == 17:
        udp_ports.append((str(r["out_sport"]), str(r["out_dport"])))
    if r["tunnel_depth"] >= 2 and r["car_proto"] == 17:
        udp_ports.append((str(r["car_sport"]), str(r["car_dport"])))
    if l4 == 17:
        udp_ports.append((str(r["sport"]), str(r["dport"])))
    tcp_ports = [(str(r["sport"]), str(r["dport"]))] if l4 == 6 else []
    quoted_ports = [(str(r["q_sport"]), str(r["q_dport"]))]
    if icmp_error and q_valid and r["q_proto"] == 17:
        udp_ports += quoted_ports
    if icmp_error and q_valid and r["q_proto"] == 6:
        tcp_ports += quoted_ports
    check("udp ports", list(zip(t["udp_srcport"], t["udp_dstport"], strict=False)), udp_ports)
    check("tcp ports", list(zip(t["tcp_srcport"], t["tcp_dstport"], strict=False)), tcp_ports)
    if l4 == 17:
        check("udp_length", t["udp_length"][-1:], [str(r["udp_len"])])

    if l4 == 6:
        check("tcp_flags", [int(x, 16) for x in t["tcp_flags"]], [r["tcp_flags"]])
        check("tcp_seq", t["tcp_seq_raw"], [str(r["seq"])])
        check("tcp_ack", t["tcp_ack_raw"], [str(r["ack"])])
        check("tcp_window", t["tcp_window"], [str(r["win"])])
        check("tcp_len", t["tcp_len"], [str(r["payload"])] if r["payload"] >= 0 else [])
        check("tcp_mss", t["tcp_mss"], [str(r["mss"])] if r["mss"] >= 0 else [])
        check("tcp_wscale", t["tcp_wscale_shift"], [str(r["wscale"])] if r["wscale"] >= 0 else [])
        check("tcp_sack_perm", bool(t["tcp_sack_perm"]), r["sack_perm"])
        check("tcp_tsval", t["tcp_tsval"], [str(r["tsval"])] if r["has_ts"] else [])
        check("tcp_option_kinds", t["tcp_option_kinds"],
              [str(k) for k in r["opt_kinds"][: r["opt_count"]]])

    icmp_col, code_col = ("icmp_type", "icmp_code") if l4 == 1 else ("icmpv6_type",
                                                                      "icmpv6_code")
    if l4 in (1, 58):
        check("icmp type/code", (t[icmp_col][:1], t[code_col][:1]),
              ([str(r["icmp_type"])], [str(r["icmp_code"])]))
    else:
        check("icmp", t["icmp_type"] + t["icmpv6_type"], [])
    return diffs


@dataclass
class CorpusResult:
    frames: int = 0
    fragments_skipped: int = 0
    compared: int = 0
    equal: int = 0
    tshark_malformed: int = 0
    our_malformed: int = 0
    differences: list[str] = field(default_factory=list)


def compare_capture(path: Path) -> CorpusResult:
    frames = read_capture(path)
    batch, records = decode_reference(frames)
    oracle = read_oracle(path)
    assert len(oracle) == len(frames), "oracle and capture disagree on the frame count"
    fragment_rows = {rec.row for rec in records}
    res = CorpusResult(frames=len(frames))
    res.our_malformed = int(np.count_nonzero(batch.malformed))
    for i, t in enumerate(oracle):
        assert int(t["frame"][0]) == i + 1
        res.tshark_malformed += bool(t["malformed"])
        if i in fragment_rows:
            res.fragments_skipped += 1
            continue
        res.compared += 1
        diffs = tshark_differences(t, batch, i)
        if diffs:
            res.differences.append(f"frame {i + 1}: " + "; ".join(diffs))
        else:
            res.equal += 1
    return res


def corpus_params() -> Iterator[Any]:
    captures = corpus_captures()
    if not captures:
        yield pytest.param(None, marks=pytest.mark.skip(
            reason="public capture corpus not found: set PORTLENS_CORPUS or provide "
                   "../shared/captures/public"))
    for p in captures:
        yield pytest.param(p, id=p.name.split(".")[0])


@pytest.mark.corpus
@pytest.mark.parametrize("capture", list(corpus_params()))
def test_corpus_against_tshark(capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = compare_capture(capture)
    with capsys.disabled():
        print(f"\n{capture.name}: {res.frames} frames, {res.compared} compared, {res.equal} "
              f"equal, {res.fragments_skipped} IP fragments skipped, malformed: tshark "
              f"{res.tshark_malformed} portlens {res.our_malformed}")
    batch, _ = decode_reference(read_capture(capture))
    assert malformed_disagreements(tshark_frames(capture), batch.malformed.tolist()) == []
    assert res.differences == [], "\n".join(res.differences[:20])
