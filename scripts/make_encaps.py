#!/usr/bin/env python3
"""Craft the link-layer and tunnel captures of captures/encap/ (issue 12's layers).

Each capture holds frames of layers only the compiled decoder reads (802.11 behind radiotap,
PPI and Prism/AVS, NFLOG, IPNET, Cisco HDLC, PPPoE link types; PBB, VN-Tag and FabricPath in
Ethernet; ERSPAN I/II/III, Aruba GRE, GRE with every optional field, nested GRE, GRE in UDP,
AYIYA, GTP-U on 2123, Teredo and AYIYA found by content; GTP-U in a fragmented outer IPv4;
A-MSDUs of several subframes; tunnels three deep).
Their oracle is tshark: tests/test_encap_tshark.py runs ``tshark -T fields`` on each capture
(the field list of the public corpus) and compares every per-packet field of the innermost
layer with portlens's. TSHARK_OPTIONS below gives the options a capture needs (Decode As for
the tunnels found by content, which tshark only decodes on their registered ports).

Inner packets are built with scapy (IPv4/IPv6, TCP with options, UDP, ICMP), link and tunnel
headers with ``struct``; the pcap files too. Timestamps are fixed: re-running the script
reproduces identical bytes.

Usage::

    python scripts/make_encaps.py               # (re)write captures/encap/
    python scripts/make_encaps.py --out /tmp/x
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.packet import Raw

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "captures" / "encap"

TSHARK_OPTIONS: dict[str, list[str]] = {
    "encap-bycontent.pcap": ["-d", "udp.port==40000,teredo", "-d", "udp.port==40001,ayiya"],
}
"""Options tshark needs to decode what portlens finds by content (tests/test_encap_tshark.py)."""

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
MAC_C = bytes.fromhex("020000000003")
FCS = b"\x12\x34\x56\x78"


def tcp4(sport: int = 40000, dport: int = 80, flags: str = "S", data: bytes = b"",
         src: str = "10.1.0.1", dst: str = "10.1.0.2") -> bytes:
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)] if flags == "S" else []
    return bytes(IP(src=src, dst=dst, id=7) / TCP(sport=sport, dport=dport, flags=flags,
                                                  seq=1000, ack=0, window=8192,
                                                  options=opts) / Raw(data))


def udp4(sport: int = 40100, dport: int = 7777, data: bytes = b"query",
         src: str = "10.2.0.1", dst: str = "10.2.0.2") -> bytes:
    return bytes(IP(src=src, dst=dst, id=9) / UDP(sport=sport, dport=dport) / Raw(data))


def tcp6(sport: int = 40002, dport: int = 443, src: str = "2001:db8::1",
         dst: str = "2001:db8::2") -> bytes:
    return bytes(IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="SA", seq=5,
                                              ack=1001, window=4096))


def icmp6(src: str = "2001:0:4136:e378::1", dst: str = "2001:db8::9") -> bytes:
    return bytes(IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=3, seq=1, data=b"ping"))


def ether(ethertype: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def snap(ethertype: int) -> bytes:
    return b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype)


def ethertype_of(ip: bytes) -> int:
    return 0x86DD if ip[0] >> 4 == 6 else 0x0800


def dot11(payload: bytes, *, qos: bool = False, amsdu: bool = False, wds: bool = False,
          protected: bool = False, subtype: int | None = None, order: bool = False) -> bytes:
    """An 802.11 data frame (from the AP to a station unless ``wds``)."""
    st = subtype if subtype is not None else (8 if qos else 0)
    fc0 = (st << 4) | (2 << 2)
    fc1 = (0x03 if wds else 0x02) | (0x40 if protected else 0) | (0x80 if order else 0)
    header = bytes([fc0, fc1]) + b"\x00\x00" + MAC_B + MAC_C + MAC_A + struct.pack("<H", 0x10)
    if wds:
        header += MAC_C
    if st & 8:
        header += bytes([0x80 if amsdu else 0x00, 0x00])
        if order:
            header += b"\x00\x00\x00\x00"
    return header + payload


def amsdu(msdus: list[bytes]) -> bytes:
    out = b""
    for k, msdu in enumerate(msdus):
        sub = MAC_B + MAC_A + struct.pack("!H", len(msdu)) + msdu
        if k < len(msdus) - 1:
            sub += bytes(-len(sub) % 4)
        out += sub
    return out


def radiotap(frame: bytes, *, fcs: bool = False, pad: bool = False) -> bytes:
    """radiotap with TSFT and flags (and a channel field), so flags sit after aligned TSFT."""
    flags = (0x10 if fcs else 0) | (0x20 if pad else 0)
    fields = struct.pack("<Q", 123456789) + bytes([flags, 0x02]) + struct.pack("<HH", 2437, 0x00A0)
    header_len = 8 + len(fields)
    header = struct.pack("<BBHI", 0, 0, header_len, 0x0000000B) + fields
    body = frame
    if pad:
        hlen = 26 if frame[0] & 0x80 else 24
        body = frame[:hlen] + bytes(-hlen % 4) + frame[hlen:]
    return header + body + (b"\xde\xad\xbe\xef" if fcs else b"")


def gre(protocol: int, payload: bytes, *, checksum: bool = False, key: int | None = None,
        seq: int | None = None) -> bytes:
    flags = (0x80 if checksum else 0) | (0x20 if key is not None else 0) | (
        0x10 if seq is not None else 0)
    out = bytes([flags, 0]) + struct.pack("!H", protocol)
    if checksum:
        out += b"\x00\x00\x00\x00"
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def ip4(proto: int, payload: bytes, src: str = "192.0.2.1", dst: str = "192.0.2.2",
        ident: int = 1, flags: int = 0, frag: int = 0, total: int | None = None) -> bytes:
    """An IPv4 header packed by hand (scapy would recompute lengths of fragments)."""
    length = total if total is not None else 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, (flags << 13) | frag, 64, proto,
                      0, bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    csum = _ones(hdr)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def _ones(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def udp_raw(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header with checksum 0 (none, over IPv4) around ``payload``."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def udp_v6(sport: int, dport: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    """A UDP header over IPv6 with its (mandatory) checksum."""
    length = 8 + len(payload)
    pseudo = src + dst + struct.pack("!IxxxB", length, 17)
    csum = _ones(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, csum) + payload


def gtpu(ip: bytes, teid: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x30, 0xFF, len(ip), teid) + ip


def ayiya(ip: bytes, next_header: int) -> bytes:
    # identity length 2^4 = 16 bytes, signature 5 * 4 = 20 bytes (SHA-1), auth 1, op forward
    return bytes([0x41, 0x52, 0x11, next_header]) + struct.pack("!I", 1700000000) + bytes(
        range(16)) + bytes(20) + ip


def write_pcap(path: Path, linktype: int, frames: list[bytes]) -> None:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for k, frame in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + k, 1000 * k, len(frame), len(frame)) + frame
    path.write_bytes(out)


def captures() -> dict[str, tuple[int, list[bytes]]]:
    """name -> (link type, frames)."""
    c: dict[str, tuple[int, list[bytes]]] = {}
    t4, u4, t6 = tcp4(), udp4(), tcp6()
    c["encap-80211.pcap"] = (105, [
        dot11(snap(0x0800) + t4),
        dot11(snap(0x86DD) + t6, qos=True),
        dot11(amsdu([snap(0x0800) + u4]), qos=True, amsdu=True),
        dot11(snap(0x0800) + tcp4(flags="A", data=b"x" * 10), wds=True, qos=True, order=True),
        dot11(b"\x00" * 40, protected=True),
        dot11(b"", subtype=4),  # null function: no body
        bytes.fromhex("d4000000") + MAC_A,  # ACK: a 10-byte control frame
        dot11(snap(0x0806) + bytes(28)),  # ARP: not IP
    ])
    c["encap-radiotap.pcap"] = (127, [
        radiotap(dot11(snap(0x0800) + t4)),
        radiotap(dot11(snap(0x86DD) + t6, qos=True), fcs=True),
        radiotap(dot11(snap(0x0800) + u4, qos=True), pad=True),
    ])
    ppi_hdr = struct.pack("<BBHI", 0, 0, 8, 105)
    c["encap-ppi.pcap"] = (192, [ppi_hdr + dot11(snap(0x0800) + t4),
                                 struct.pack("<BBHI", 0, 0, 8, 1) + ether(0x0800, u4)])
    avs = struct.pack("!II", 0x80211001, 64) + bytes(56)
    c["encap-avs.pcap"] = (163, [avs + dot11(snap(0x0800) + t4)])
    nflog_ip = udp4(src="10.9.0.1", dst="10.9.0.2")
    prefix = b"portlens\x00"
    tlvs = struct.pack("<HH", 4 + len(prefix), 10) + prefix + bytes(-len(prefix) % 4)
    tlvs += struct.pack("<HH", 8, 1) + struct.pack("!HBB", 0x0800, 3, 0)  # packet header
    tlvs += struct.pack("<HH", 4 + len(nflog_ip), 9) + nflog_ip + bytes(-len(nflog_ip) % 4)
    nflog6 = tcp6()
    tlvs6 = struct.pack("<HH", 4 + len(nflog6), 9) + nflog6
    c["encap-nflog.pcap"] = (239, [b"\x02\x00\x00\x05" + tlvs, b"\x0a\x00\x00\x05" + tlvs6])
    ipnet = struct.pack("!BBHIIIII", 2, 2, 0, len(t4), 3, 0, 0, 0)
    ipnet6 = struct.pack("!BBHIIIII", 2, 26, 0, len(t6), 3, 0, 0, 0)
    c["encap-ipnet.pcap"] = (226, [ipnet + t4, ipnet6 + t6])
    c["encap-chdlc.pcap"] = (104, [b"\x0f\x00\x08\x00" + t4, b"\x0f\x00\x86\xdd" + t6])
    pppoe = struct.pack("!BBHH", 0x11, 0, 0x0042, 2 + len(u4)) + b"\x00\x21" + u4
    c["encap-pppoe.pcap"] = (51, [pppoe])
    c["encap-atm1483.pcap"] = (11, [snap(0x0800) + t4, snap(0x86DD) + t6])
    c["encap-enc.pcap"] = (109, [struct.pack("<III", 2, 0x1000, 0) + t4,
                                 struct.pack("<III", 24, 0x1000, 0) + t6])
    pflog = struct.pack("!BBBB16s16sIIIiIiB3x", 61, 2, 0, 0, b"em0", b"", 1, 0, 0, 0, 0, 0, 1)
    pflog += bytes(-len(pflog) % 4)
    pflog6 = bytes([61, 24]) + pflog[2:]
    c["encap-pflog.pcap"] = (117, [pflog + t4, pflog6 + t6])
    pktap = struct.pack("<III24sIIIII", 108, 1, 1, b"en0", 0, 2, 0, 0, 0) + bytes(108 - 56)
    c["encap-pktap.pcap"] = (258, [pktap + ether(0x0800, t4)])
    # Ethernet: PBB (with a C-VLAN inside), VN-Tag, FabricPath plain and behind 802.1ad
    itag = b"\x00\x01\x02\x03" + MAC_C + MAC_A
    c["encap-l2.pcap"] = (1, [
        ether(0x88E7, itag + struct.pack("!H", 0x0800) + t4),
        ether(0x88E7, itag + struct.pack("!HHH", 0x8100, 0x0064, 0x0800) + u4),
        ether(0x8926, b"\x80\x01\x00\x02" + struct.pack("!H", 0x86DD) + t6),
        # tshark 4.0's cfp takes the last 4 bytes for the FabricPath FCS: the frames have one
        MAC_B + MAC_A + b"\x89\x03\x00\x41" + ether(0x0800, t4, MAC_C, MAC_A) + FCS,
        MAC_B + MAC_A + b"\x88\xa8\x00\x0a\x89\x03\x00\x41" + ether(0x0800, u4, MAC_C, MAC_A)
        + FCS,
    ])
    # GRE family
    mirrored = ether(0x0800, tcp4(sport=41000, dport=22))
    erspan2 = struct.pack("!HHI", 0x1000 | 10, 0x0001, 0)
    erspan3 = struct.pack("!HHIHH", 0x2000 | 10, 0x0001, 0x01020304, 0, 0x0000)
    erspan3o = struct.pack("!HHIHH", 0x2000 | 10, 0x0001, 0x01020304, 0, 0x0001) + bytes(8)
    c["encap-gre.pcap"] = (1, [
        ether(0x0800, ip4(47, gre(0x88BE, mirrored))),
        ether(0x0800, ip4(47, gre(0x88BE, erspan2 + mirrored, seq=7))),
        ether(0x0800, ip4(47, gre(0x22EB, erspan3 + mirrored))),
        ether(0x0800, ip4(47, gre(0x22EB, erspan3o + mirrored, seq=8))),
        ether(0x0800, ip4(47, gre(0x8200, dot11(snap(0x0800) + t4)))),
        ether(0x0800, ip4(47, gre(0x0800, u4, checksum=True, key=5, seq=9))),
        ether(0x0800, ip4(47, gre(0x0800, ip4(47, gre(0x86DD, t6, key=1), "198.51.100.1",
                                              "198.51.100.2"), seq=3))),
        ether(0x0800, ip4(17, udp_raw(50000, 4754, gre(0x0800, t4)))),
    ])
    c["encap-udp.pcap"] = (1, [
        ether(0x0800, ip4(17, udp_raw(50001, 5072, ayiya(t6, 41)))),
        ether(0x0800, ip4(17, udp_raw(5072, 50001, ayiya(u4, 4)))),
        ether(0x0800, ip4(17, udp_raw(50002, 2123, gtpu(t4)))),
    ])
    c["encap-bycontent.pcap"] = (1, [
        ether(0x0800, ip4(17, udp_raw(50003, 40000, icmp6()))),
        ether(0x0800, ip4(17, udp_raw(50004, 40000, b"\x00\x00\xc3\x50\x3f\x00\x00\xfe"
                                      + icmp6("2001:db8::7", "2001:db8::8")))),
        ether(0x0800, ip4(17, udp_raw(50005, 40001, ayiya(t6, 41)))),
    ])
    # nested: VXLAN in Geneve (with an option), ERSPAN II in GRE in GTP-U, PBB in VXLAN
    vx = b"\x08\x00\x00\x00\x00\x00\x64\x00"
    geneve_opt = struct.pack("!HBB", 0x0102, 0x80, 1) + bytes(4)
    geneve = struct.pack("!BBHI", 2, 0, 0x6558, 0x00000A00) + geneve_opt
    inner_vx = ether(0x0800, ip4(17, udp_raw(50010, 4789, vx + ether(0x0800, t4)), "172.16.0.1",
                                 "172.16.0.2"))
    gre_in_gtp = ip4(47, gre(0x88BE, erspan2 + mirrored, seq=1), "172.16.1.1", "172.16.1.2")
    c["encap-nested.pcap"] = (1, [
        ether(0x0800, ip4(17, udp_raw(50011, 6081, geneve + inner_vx))),
        ether(0x0800, ip4(17, udp_raw(50012, 2152, gtpu(gre_in_gtp)))),
        ether(0x0800, ip4(17, udp_raw(50013, 4789, vx + ether(0x88E7, itag + struct.pack(
            "!H", 0x86DD) + t6)))),
    ])
    # A-MSDUs: one row per subframe's packet (docs/decoding.md, 802.11). Subframes but the
    # last have odd MSDU lengths, where Zeek's padding (amsdu_len % 4) and 802.11's agree.
    syn = tcp4(sport=40200, dport=80, src="10.5.0.1", dst="10.5.0.2")
    synack = bytes(IP(src="10.5.0.2", dst="10.5.0.1", id=8) / TCP(
        sport=80, dport=40200, flags="SA", seq=7000, ack=1001, window=8192,
        options=[("MSS", 1400)]))
    ack = bytes(IP(src="10.5.0.1", dst="10.5.0.2", id=9) / TCP(
        sport=40200, dport=80, flags="A", seq=1001, ack=7001, window=8192))
    query = udp4(sport=40300, dport=7777, data=b"q" * 5, src="10.5.0.1", dst="10.5.0.9")
    answer = udp4(sport=7777, dport=40300, data=b"a" * 7, src="10.5.0.9", dst="10.5.0.1")
    v6_src6 = "2001:db8:5::1"
    u6 = bytes(IPv6(src=v6_src6, dst="2001:db8:5::2") / UDP(sport=40400, dport=9999)
               / Raw(b"six"))
    assert all(len(x) % 2 for x in (query, answer, u6))
    c["encap-amsdu.pcap"] = (127, [
        radiotap(dot11(amsdu([snap(0x0800) + query, snap(0x0800) + syn]), qos=True,
                       amsdu=True)),
        radiotap(dot11(amsdu([snap(0x0800) + answer, snap(0x86DD) + u6,
                              snap(0x0800) + synack]), qos=True, amsdu=True), fcs=True),
        radiotap(dot11(snap(0x0800) + ack, qos=True), pad=True),
    ])
    # An A-MSDU in Aruba GRE in VXLAN: the subframes share the VXLAN carrier, counted once.
    aruba = dot11(amsdu([snap(0x0800) + udp4(sport=40700, data=b"odd", src="10.11.0.1",
                                              dst="10.11.0.2"),
                         snap(0x0800) + tcp4(sport=40800, src="10.11.0.1", dst="10.11.0.2")]),
                  qos=True, amsdu=True)
    c["encap-amsdu-vxlan.pcap"] = (1, [ether(0x0800, ip4(17, udp_raw(
        50060, 4789, b"\x08\x00\x00\x00\x00\x00\x66\x00" + ether(0x0800, ip4(
            47, gre(0x8200, aruba), "10.10.0.1", "10.10.0.2"))), "192.0.2.9", "192.0.2.10"))])
    # Three tunnels deep, every carrier level a row: GTP-U > Geneve > VXLAN > TCP (its
    # answer through other Geneve and VXLAN flows), and Geneve > VXLAN > GRE > TCP.
    def geneve_teb(frame: bytes) -> bytes:
        return struct.pack("!BBHI", 0, 0, 0x6558, 0x00000B00) + frame

    def vxlan(frame: bytes) -> bytes:
        return b"\x08\x00\x00\x00\x00\x00\x65\x00" + frame

    def three_deep(inner: bytes, up: bool) -> bytes:
        a, b = ("172.20.0.1", "172.20.0.2") if up else ("172.20.0.2", "172.20.0.1")
        m, n = ("172.21.0.1", "172.21.0.2") if up else ("172.21.0.2", "172.21.0.1")
        o, q = ("192.0.2.1", "192.0.2.2") if up else ("192.0.2.2", "192.0.2.1")
        vx_frame = ether(0x0800, ip4(17, udp_raw(50041 if up else 50043, 4789,
                                                 vxlan(ether(0x0800, inner))), m, n))
        gen = ip4(17, udp_raw(50040 if up else 50042, 6081, geneve_teb(vx_frame)), a, b)
        return ether(0x0800, ip4(17, udp_raw(2152, 2152, gtpu(gen)), o, q))

    nsyn = tcp4(sport=40500, dport=443, src="10.6.0.1", dst="10.6.0.2")
    nsynack = bytes(IP(src="10.6.0.2", dst="10.6.0.1", id=8) / TCP(
        sport=443, dport=40500, flags="SA", seq=9000, ack=1001, window=8192))
    in_gre = ether(0x0800, ip4(47, gre(0x0800, tcp4(sport=40600, dport=22, src="10.7.0.1",
                                                    dst="10.7.0.2")), "10.8.0.1", "10.8.0.2"))
    c["encap-nested3.pcap"] = (1, [
        three_deep(nsyn, True),
        three_deep(nsynack, False),
        ether(0x0800, ip4(17, udp_raw(50050, 6081, geneve_teb(ether(0x0800, ip4(
            17, udp_raw(50051, 4789, vxlan(in_gre)), "172.22.0.1", "172.22.0.2")))),
            "192.0.2.5", "192.0.2.6")),
    ])
    # GTP-U in an outer IPv4 cut into three fragments: descended into after reassembly
    inner = tcp4(sport=42000, dport=8080, flags="PA", data=b"y" * 300)
    dgram = udp_raw(2152, 2152, gtpu(inner))
    parts = [dgram[:120], dgram[120:240], dgram[240:]]
    total_data = len(dgram)
    frags = []
    for k, part in enumerate(parts):
        more = 1 if k < len(parts) - 1 else 0
        frags.append(ether(0x0800, ip4(17, part, "203.0.113.1", "203.0.113.2", ident=77,
                                       flags=more, frag=(120 * k) // 8)))
    assert sum(map(len, parts)) == total_data
    # the same over IPv6 (a destination options header before the fragment header)
    v6_src = bytes.fromhex("20010db8000000000000000000000011")
    v6_dst = bytes.fromhex("20010db8000000000000000000000012")
    dgram6 = udp_v6(2152, 2152, gtpu(inner), v6_src, v6_dst)
    dstopts = bytes([44, 0]) + b"\x01\x04\x00\x00\x00\x00"  # PadN: 8 bytes, then fragment
    frags6 = []
    for start, stop in ((0, 200), (200, len(dgram6))):
        more = 1 if stop < len(dgram6) else 0
        fh = struct.pack("!BBHI", 17, 0, start | more, 0x5151)
        body = dstopts + fh + dgram6[start:stop]
        frags6.append(ether(0x86DD, struct.pack("!IHBB", 0x60000000, len(body), 60, 64) + v6_src
                            + v6_dst + body))
    c["encap-gtp-fragmented-v6.pcap"] = (1, frags6)
    c["encap-gtp-fragmented.pcap"] = (1, [frags[1], frags[0], frags[2],
                                          ether(0x0800, ip4(17, dgram, "203.0.113.2",
                                                            "203.0.113.1", ident=78))])
    return c


def readme(caps: dict[str, tuple[int, list[bytes]]]) -> str:
    lines = ["# captures/encap", "",
             "Written by `scripts/make_encaps.py` (do not edit): link layers and tunnels only the",
             "compiled decoder reads. Their oracle is tshark, run by `tests/test_encap_tshark.py`;",
             "the differential test against the Python reference skips them with that reason.", "",
             "| file | link type | frames | tshark options |", "| --- | ---: | ---: | --- |"]
    for name, (linktype, frames) in caps.items():
        options = " ".join(TSHARK_OPTIONS.get(name, [])) or "-"
        lines.append(f"| {name} | {linktype} | {len(frames)} | `{options}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    caps = captures()
    for name, (linktype, frames) in caps.items():
        write_pcap(args.out / name, linktype, frames)
        print(f"{args.out / name}: {len(frames)} frames, link type {linktype}")
    (args.out / "README.md").write_text(readme(caps))


if __name__ == "__main__":
    main()
