#!/usr/bin/env python3
"""Craft portlens' own test captures (captures/) and their expected decoded values.

Every capture is built from explicit parameters (addresses, ports, flags, option lists, lengths)
and the expected values in ``captures/expected/NAME.json`` are derived from those same
parameters, never from running portlens: the captures are an independent judge of the decoder.

Packets are built with scapy (IPv4 with options, IPv6 and its extension headers, TCP with
options, ICMP echo); link-layer, tunnel, UDP and malformed headers whose exact bytes matter are
packed with ``struct``, and transport checksums are computed here, so no scapy default decides a
value a test checks. The capture files are
written with ``struct`` too (classic pcap in both byte orders and both resolutions, pcapng with
several interfaces, resolutions and sections, gzip), not with portlens' own writer.

The output is deterministic: fixed timestamps, no randomness, gzip with mtime 0. Re-running the
script reproduces identical bytes (tests/test_own_captures.py checks it).

Usage::

    python scripts/make_captures.py                 # (re)write captures/ of this checkout
    python scripts/make_captures.py --out /tmp/x    # write elsewhere
    python scripts/make_captures.py --check-tshark  # compare expected values with tshark's

Expected JSON: ``{"file", "description", "frames": [{key: value}, ...]}``, one object per frame
with keys of ``portlens packets --json``; ``null`` means "this key must be absent (or null)".
An optional ``"tshark_notes": {"FRAME": "why"}`` records where tshark decodes a frame differently
by a rule of docs/decoding.md (``--check-tshark`` reports those as known, everything else as a
difference; expected values of malformed frames are portlens' own rules and listed for review).
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import Packet, Raw

Exp = dict[str, Any]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "captures"

BASE_NS = 1_700_000_000 * 10**9
"""2023-11-14T22:13:20Z: every capture starts here (plus a per-capture offset)."""

# Documentation addresses (RFC 5737, RFC 3849).
C4, S4, R4 = "192.0.2.10", "198.51.100.20", "203.0.113.5"
C6, S6, R6 = "2001:db8::10", "2001:db8:0:1::20", "2001:db8:ffff::1"
T4A, T4B = "10.1.0.1", "10.1.0.2"
"""Tunnel endpoints (outer addresses)."""
MAC_C = bytes.fromhex("020000000001")
MAC_S = bytes.fromhex("020000000002")
MAC_BCAST = b"\xff" * 6

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_PPP_HDLC = 0, 1, 9, 50
LINKTYPE_RAW, LINKTYPE_LOOP, LINKTYPE_SLL, LINKTYPE_SLL2 = 101, 108, 113, 276
LINKTYPE_IPV4, LINKTYPE_IPV6 = 228, 229

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
ETH_MPLS, ETH_PPPOE_DISC, ETH_PPPOE_SESS, ETH_LLDP, ETH_TEB = 0x8847, 0x8863, 0x8864, 0x88CC, 0x6558
PPP_IPV4, PPP_IPV6, PPP_LCP = 0x0021, 0x0057, 0xC021


# ---------------------------------------------------------------------------------------------
# Bytes helpers
# ---------------------------------------------------------------------------------------------


def fill(n: int, seed: int = 0) -> bytes:
    """n deterministic payload bytes."""
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def inet_csum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\x00"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(ipv: int, src: str, dst: str, proto: int, length: int) -> bytes:
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if ipv == 4:
        return s + d + struct.pack("!BBH", 0, proto, length)
    return s + d + struct.pack("!IxxxB", length, proto)


def patch16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("!H", value) + data[offset + 2 :]


def text(addr: str) -> str:
    """An address as portlens prints it (Python's ipaddress text form)."""
    return str(ipaddress.ip_address(addr))


# ---------------------------------------------------------------------------------------------
# Transport layers: bytes with a zero checksum, finished (checksummed) by the IP builders
# ---------------------------------------------------------------------------------------------

TcpOpt = tuple[Any, ...]
"""("mss", 1460) ("ws", 7) ("sackok",) ("ts", val, ecr) ("sack", [(l, r), ...]) ("nop",) ("eol",)
("raw", kind, value_bytes)."""


@dataclass
class L4:
    """A transport header + payload before checksumming."""

    raw: bytes
    proto: int
    exp: Exp
    csum_name: str | None
    """Key of the checksum object ("tcp", "udp", "icmp", "icmp6"), None if no checksum."""
    csum_offset: int = -1
    zero_csum: bool = False
    """UDP only: send checksum 0 (none computed)."""


def tcp_options(opts: Sequence[TcpOpt]) -> tuple[list[tuple[Any, Any]], Exp, int]:
    """scapy option list, the expected option summary, and the options' length before padding."""
    out: list[tuple[Any, Any]] = []
    kinds: list[int] = []
    exp: Exp = {}
    size = 0
    for opt in opts:
        name = opt[0]
        if name == "nop":
            out.append(("NOP", None))
            kinds.append(1)
            size += 1
        elif name == "eol":
            out.append(("EOL", None))
            kinds.append(0)
            size += 1
        elif name == "mss":
            out.append((2, struct.pack("!H", opt[1])))
            kinds.append(2)
            exp["mss"] = opt[1]
            size += 4
        elif name == "ws":
            out.append((3, struct.pack("!B", opt[1])))
            kinds.append(3)
            exp["wscale"] = opt[1]
            size += 3
        elif name == "sackok":
            out.append((4, b""))
            kinds.append(4)
            exp["sack_perm"] = True
            size += 2
        elif name == "sack":
            blocks = b"".join(struct.pack("!II", left, right) for left, right in opt[1])
            out.append((5, blocks))
            kinds.append(5)
            size += 2 + len(blocks)
        elif name == "ts":
            out.append((8, struct.pack("!II", opt[1], opt[2])))
            kinds.append(8)
            exp["tsval"] = opt[1]
            size += 10
        elif name == "raw":
            out.append((opt[1], opt[2]))
            kinds.append(opt[1])
            size += 2 + len(opt[2])
        else:
            raise ValueError(f"unknown TCP option {name!r}")
    padding = (-size) % 4
    if opts:
        # scapy pads the option list with zero bytes; a decoder lists each as EOL (kind 0)
        exp["opts"] = kinds + [0] * padding
    return out, exp, size + padding


def tcp(
    sport: int,
    dport: int,
    flags: int,
    *,
    seq: int = 0,
    ack: int = 0,
    win: int = 64240,
    data: int | bytes = 0,
    opts: Sequence[TcpOpt] = (),
    urp: int = 0,
    absent: Iterable[str] = (),
) -> L4:
    """A TCP segment. ``absent`` lists option keys that must not be reported."""
    scapy_opts, opt_exp, opt_len = tcp_options(opts)
    payload = fill(data, sport) if isinstance(data, int) else data
    seg = TCP(
        sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=win, chksum=0,
        urgptr=urp, options=scapy_opts,
    ) / Raw(payload)
    raw = bytes(seg)
    assert (raw[12] >> 4) * 4 == 20 + opt_len, "scapy encoded the options differently"
    exp: Exp = {
        "proto": "tcp", "sport": sport, "dport": dport, "flags": flags, "seq": seq, "ack": ack,
        "win": win, "payload": len(payload),
    }
    exp.update(opt_exp)
    for key in absent:
        exp[key] = None
    return L4(raw, 6, exp, "tcp", 16)


def udp(sport: int, dport: int, data: int | bytes = 0, *, zero_csum: bool = False) -> L4:
    payload = fill(data, dport) if isinstance(data, int) else data
    raw = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    exp: Exp = {"proto": "udp", "sport": sport, "dport": dport, "payload": len(payload)}
    return L4(raw, 17, exp, "udp", 6, zero_csum=zero_csum)


def icmp(icmp_type: int, code: int, body: bytes) -> L4:
    """ICMP: type, code, checksum, then ``body`` (rest of header + data)."""
    raw = struct.pack("!BBH", icmp_type, code, 0) + body
    exp: Exp = {
        "proto": "icmp", "icmp_type": icmp_type, "icmp_code": code, "payload": len(body) - 4,
    }
    return L4(raw, 1, exp, "icmp", 2)


def icmp_echo(request: bool, ident: int, seq: int, data: int) -> L4:
    msg = bytes(ICMP(type=8 if request else 0, id=ident, seq=seq) / Raw(fill(data, seq)))
    return icmp(msg[0], msg[1], msg[4:])


def icmp6(icmp_type: int, code: int, body: bytes) -> L4:
    raw = struct.pack("!BBH", icmp_type, code, 0) + body
    exp: Exp = {
        "proto": "icmp6", "icmp_type": icmp_type, "icmp_code": code, "payload": len(body) - 4,
    }
    return L4(raw, 58, exp, "icmp6", 2)


def icmp6_echo(request: bool, ident: int, seq: int, data: int) -> L4:
    layer = ICMPv6EchoRequest if request else ICMPv6EchoReply
    msg = bytes(layer(id=ident, seq=seq, cksum=0, data=fill(data, seq)))
    return icmp6(msg[0], msg[1], msg[4:])


def opaque(proto: int, raw: bytes) -> L4:
    """An IP payload the decoder does not parse (proto printed as its number)."""
    return L4(raw, proto, {"proto": proto}, None)


# ---------------------------------------------------------------------------------------------
# IP layers
# ---------------------------------------------------------------------------------------------


@dataclass
class Pkt:
    """Bytes of one layer and everything inside it, with the values expected for the frame."""

    raw: bytes
    exp: Exp
    etype: int
    """The ethertype that carries it (0x0800, 0x86dd, 0x0806 ...)."""


def finish_l4(l4: L4, ipv: int, src: str, dst: str, *, bad: bool) -> tuple[bytes, str]:
    """Checksum the transport bytes; return them and the checksum status a decoder must see."""
    raw = l4.raw
    if l4.csum_name is None:
        return raw, ""
    if l4.zero_csum:
        return raw, "unverified" if ipv == 4 else "bad"
    if l4.proto == 1:
        value = inet_csum(raw)
    else:
        value = inet_csum(pseudo_header(ipv, src, dst, l4.proto, len(raw)) + raw)
        if l4.proto == 17 and value == 0:
            value = 0xFFFF
    if bad:
        value ^= 0x5A5A
    return patch16(raw, l4.csum_offset, value), "bad" if bad else "good"


def ip4(
    src: str,
    dst: str,
    l4: L4 | Pkt,
    *,
    ident: int = 1,
    ttl: int = 64,
    df: bool = True,
    options: bytes = b"",
    bad_ip_csum: bool = False,
    bad_l4_csum: bool = False,
    total_length: int | None = None,
) -> Pkt:
    """An unfragmented IPv4 datagram around a transport layer or (tunnel) an inner packet."""
    if isinstance(l4, Pkt):
        proto = 4 if l4.exp["ipv"] == 4 else 41
        body, csum_status, inner_exp, csum_name = l4.raw, "", l4.exp, None
    else:
        proto = l4.proto
        body, csum_status = finish_l4(l4, 4, src, dst, bad=bad_l4_csum)
        inner_exp, csum_name = l4.exp, l4.csum_name
    hdr = IP(
        src=src, dst=dst, proto=proto, id=ident, ttl=ttl, flags="DF" if df else 0,
        options=options, len=total_length,
    )
    raw = bytes(hdr / Raw(body))
    if bad_ip_csum:
        raw = patch16(raw, 10, struct.unpack("!H", raw[10:12])[0] ^ 0x1234)
    if isinstance(l4, Pkt):  # tunnel: the inner packet's values stand
        return Pkt(raw, dict(inner_exp), ETH_IPV4)
    exp: Exp = {"ipv": 4, "src": text(src), "dst": text(dst), "ip_len": len(raw)}
    exp.update(inner_exp)
    checksum = {"ip": "bad" if bad_ip_csum else "good"}
    if csum_name:
        checksum[csum_name] = csum_status
    exp["checksum"] = checksum
    return Pkt(raw, exp, ETH_IPV4)


@dataclass(frozen=True)
class AuthHeader:
    """An IPv6 Authentication Header (RFC 4302) with an ICV of a multiple of 4 bytes."""

    spi: int
    seq: int
    icv: bytes

    def encode(self, nh: int) -> bytes:
        length = (12 + len(self.icv)) // 4 - 2  # in 4-byte units, minus 2
        return struct.pack("!BBHII", nh, length, 0, self.spi, self.seq) + self.icv


ExtHeader = Packet | AuthHeader
"""A scapy IPv6 extension header (hop-by-hop, routing, destination options) or an AH."""


def ext_proto(hdr: ExtHeader) -> int:
    if isinstance(hdr, AuthHeader):
        return 51
    if isinstance(hdr, IPv6ExtHdrHopByHop):
        return 0
    if isinstance(hdr, IPv6ExtHdrRouting):
        return 43
    if isinstance(hdr, IPv6ExtHdrDestOpt):
        return 60
    raise TypeError(hdr)


def ext_chain(ext: Sequence[ExtHeader], last_proto: int) -> tuple[int, bytes]:
    """The next-header value of the fixed header and the encoded extension headers."""
    if not ext:
        return last_proto, b""
    out = b""
    nexts = [ext_proto(h) for h in ext[1:]] + [last_proto]
    for hdr, nh in zip(ext, nexts, strict=True):
        if isinstance(hdr, AuthHeader):
            out += hdr.encode(nh)
        else:
            copy: Packet = hdr.copy()
            copy.nh = nh
            out += bytes(copy)
    return ext_proto(ext[0]), out


def ip6(
    src: str,
    dst: str,
    l4: L4 | Pkt,
    *,
    ext: Sequence[ExtHeader] = (),
    hlim: int = 64,
    bad_l4_csum: bool = False,
    plen: int | None = None,
) -> Pkt:
    """An IPv6 packet with extension headers ``ext`` before the transport layer."""
    if isinstance(l4, Pkt):
        proto = 4 if l4.exp["ipv"] == 4 else 41
        body, csum_status, csum_name = l4.raw, "", None
    else:
        proto = l4.proto
        body, csum_status = finish_l4(l4, 6, src, dst, bad=bad_l4_csum)
        csum_name = l4.csum_name
    nh, ext_bytes = ext_chain(ext, proto)
    raw = bytes(IPv6(src=src, dst=dst, nh=nh, hlim=hlim, plen=plen) / Raw(ext_bytes + body))
    if isinstance(l4, Pkt):
        return Pkt(raw, dict(l4.exp), ETH_IPV6)
    exp: Exp = {"ipv": 6, "src": text(src), "dst": text(dst), "ip_len": len(raw)}
    exp.update(l4.exp)
    if csum_name:
        exp["checksum"] = {csum_name: csum_status}
    return Pkt(raw, exp, ETH_IPV6)


def with_tunnel(inner: Pkt, kind: str) -> Exp:
    exp = dict(inner.exp)
    exp["tunnel"] = [kind, *inner.exp.get("tunnel", [])]
    return exp


def in_ip(outer_src: str, outer_dst: str, inner: Pkt) -> Pkt:
    """IP-in-IP (ipip, 6in4, 4in6, 6in6): the outer family follows the outer addresses."""
    outer_v = ipaddress.ip_address(outer_src).version
    kind = {(4, 4): "ipip", (4, 6): "6in4", (6, 4): "4in6", (6, 6): "6in6"}[
        (outer_v, inner.exp["ipv"])
    ]
    outer = ip4(outer_src, outer_dst, inner) if outer_v == 4 else ip6(outer_src, outer_dst, inner)
    return Pkt(outer.raw, with_tunnel(inner, kind), outer.etype)


def ip4_carrying(src: str, dst: str, proto: int, body: bytes, *, ident: int = 1) -> bytes:
    """Raw IPv4 datagram bytes around an arbitrary body (outer tunnel carriers)."""
    return bytes(IP(src=src, dst=dst, proto=proto, id=ident, ttl=64, flags="DF") / Raw(body))


def udp_carrying(src: str, dst: str, sport: int, dport: int, body: bytes, *, csum: bool) -> bytes:
    """Raw IPv4 + UDP bytes around a tunnel body; UDP checksum 0 unless csum."""
    raw = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    if csum:
        value = inet_csum(pseudo_header(4, src, dst, 17, len(raw)) + raw) or 0xFFFF
        raw = patch16(raw, 6, value)
    return ip4_carrying(src, dst, 17, raw)


# ---------------------------------------------------------------------------------------------
# Link layers
# ---------------------------------------------------------------------------------------------


def eth_header(etype: int, *, src: bytes = MAC_C, dst: bytes = MAC_S) -> bytes:
    return dst + src + struct.pack("!H", etype)


def ether(
    p: Pkt,
    *,
    tags: Sequence[tuple[int, int]] = (),
    src: bytes = MAC_C,
    dst: bytes = MAC_S,
    pad: bool = False,
) -> Pkt:
    """Ethernet II around p, with VLAN tags (tpid, vid) outermost first; pad to 60 bytes."""
    raw = dst + src
    for tpid, vid in tags:
        raw += struct.pack("!HH", tpid, (3 << 13) | vid)
    raw += struct.pack("!H", p.etype) + p.raw
    if pad and len(raw) < 60:
        raw += bytes(60 - len(raw))
    exp = dict(p.exp)
    if tags:
        exp["vlan"] = tags[0][1]
    return Pkt(raw, exp, ETH_TEB)


def mpls(p: Pkt, labels: Sequence[int]) -> Pkt:
    raw = b"".join(
        struct.pack("!I", (label << 12) | (int(i == len(labels) - 1) << 8) | 64)
        for i, label in enumerate(labels)
    )
    return Pkt(raw + p.raw, dict(p.exp), ETH_MPLS)


def ppp_proto_of(p: Pkt) -> int:
    return {ETH_IPV4: PPP_IPV4, ETH_IPV6: PPP_IPV6}[p.etype]


def pppoe(p: Pkt, session: int) -> Pkt:
    body = struct.pack("!H", ppp_proto_of(p)) + p.raw
    raw = struct.pack("!BBHH", 0x11, 0x00, session, len(body)) + body
    return Pkt(raw, dict(p.exp), ETH_PPPOE_SESS)


def non_ip(etype: int, raw: bytes) -> Pkt:
    """A payload of a non-IP ethertype: counted, never malformed."""
    return Pkt(raw, {"ethertype": f"0x{etype:04x}", "ipv": None, "malformed": None}, etype)


def arp_request(sender_ip: str, target_ip: str) -> Pkt:
    raw = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + MAC_C
    raw += ipaddress.IPv4Address(sender_ip).packed + bytes(6)
    raw += ipaddress.IPv4Address(target_ip).packed
    return non_ip(ETH_ARP, raw)


def lldp() -> Pkt:
    def tlv(kind: int, value: bytes) -> bytes:
        return struct.pack("!H", (kind << 9) | len(value)) + value

    raw = tlv(1, b"\x04" + MAC_C) + tlv(2, b"\x07" + b"eth0") + tlv(3, struct.pack("!H", 120))
    return non_ip(ETH_LLDP, raw + tlv(0, b""))


def sll(p: Pkt, *, pkttype: int = 0) -> bytes:
    """Linux cooked v1: packet type, ARPHRD_ETHER, address length 6, address (8), protocol."""
    return struct.pack("!HHH", pkttype, 1, 6) + MAC_C + b"\x00\x00" + struct.pack("!H", p.etype)


def sll2(p: Pkt, *, pkttype: int = 0, ifindex: int = 2) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, addr len, addr."""
    return struct.pack("!HHIHBB", p.etype, 0, ifindex, 1, pkttype, 6) + MAC_C + b"\x00\x00"


# ---------------------------------------------------------------------------------------------
# Capture files
# ---------------------------------------------------------------------------------------------


@dataclass
class Rec:
    """One frame of a capture file."""

    data: bytes
    exp: Exp
    ts_ns: int
    linktype: int
    interface: int = 0
    snaplen: int | None = None
    """pcapng only: cut the frame to this many bytes (classic pcap: the file's snaplen)."""
    comment: str | None = None


def row(number: int, rec: Rec, caplen: int, interface: int) -> Exp:
    out: Exp = {
        "frame": number,
        "ts_ns": rec.ts_ns,
        "len": len(rec.data),
        "caplen": caplen,
        "linktype": rec.linktype,
        "interface": interface,
        "truncated": caplen < len(rec.data),
    }
    out.update(rec.exp)
    return out


def write_pcap(
    recs: Sequence[Rec],
    *,
    linktype: int,
    snaplen: int = 262144,
    nano: bool = False,
    big: bool = False,
) -> tuple[bytes, list[Exp]]:
    """Classic pcap (micro- or nanosecond, either byte order)."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    rows = []
    for i, rec in enumerate(recs, 1):
        assert rec.linktype == linktype
        sec, frac = divmod(rec.ts_ns, 10**9)
        if not nano:
            assert frac % 1000 == 0, "microsecond pcap needs microsecond timestamps"
            frac //= 1000
        data = rec.data[:snaplen]
        out += struct.pack(e + "IIII", sec, frac, len(data), len(rec.data)) + data
        rows.append(row(i, rec, len(data), 0))
    return bytes(out), rows


@dataclass
class Iface:
    linktype: int
    tsresol: int | None = None
    """if_tsresol (decimal exponent); None = option absent (microseconds)."""
    name: str | None = None
    snaplen: int = 0


@dataclass
class Section:
    big: bool
    ifaces: list[Iface]
    recs: list[Rec] = field(default_factory=list)
    known_length: bool = True
    """Write the real section length in the SHB (else -1, "not specified")."""


def _pad4(data: bytes) -> bytes:
    return data + bytes((-len(data)) % 4)


def _ng_options(e: str, options: Sequence[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack(e + "HH", code, len(v)) + _pad4(v) for code, v in options)
    return out + struct.pack(e + "HH", 0, 0)


def _ng_block(e: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def write_pcapng(sections: Sequence[Section]) -> tuple[bytes, list[Exp]]:
    """pcapng: per section its byte order, interfaces (link type, if_tsresol) and packets.

    The expected ``interface`` numbers interfaces across the file (the first interface of the
    second section follows the last of the first), as FrameBatch.interface does; the EPB itself
    carries the section-local id, which is what tshark's frame.interface_id shows.
    """
    out = bytearray()
    rows: list[Exp] = []
    number = 0
    iface_base = 0
    for sec in sections:
        e = ">" if sec.big else "<"
        body = bytearray()
        for iface in sec.ifaces:
            opts: list[tuple[int, bytes]] = []
            if iface.name is not None:
                opts.append((2, iface.name.encode()))
            if iface.tsresol is not None:
                opts.append((9, bytes([iface.tsresol])))
            idb = struct.pack(e + "HHI", iface.linktype, 0, iface.snaplen)
            body += _ng_block(e, 1, idb + _ng_options(e, opts))
        last_ts: dict[int, int] = {}
        for rec in sec.recs:
            iface = sec.ifaces[rec.interface]
            assert rec.linktype == iface.linktype
            resol = 6 if iface.tsresol is None else iface.tsresol
            units, rest = divmod(rec.ts_ns * 10**resol, 10**9)
            assert rest == 0, "timestamp finer than the interface resolution"
            data = rec.data if rec.snaplen is None else rec.data[: rec.snaplen]
            epb = struct.pack(
                e + "IIIII", rec.interface, units >> 32, units & 0xFFFFFFFF, len(data),
                len(rec.data),
            ) + _pad4(data)
            opts = [(1, rec.comment.encode())] if rec.comment else []
            body += _ng_block(e, 6, epb + _ng_options(e, opts))
            last_ts[rec.interface] = units
            number += 1
            rows.append(row(number, rec, len(data), iface_base + rec.interface))
        for if_id in sorted(last_ts):  # an Interface Statistics Block a reader must skip
            units = last_ts[if_id]
            isb = struct.pack(e + "III", if_id, units >> 32, units & 0xFFFFFFFF)
            isb += _ng_options(e, [(4, struct.pack(e + "Q", 0))])  # isb_ifrecv
            body += _ng_block(e, 5, isb)
        length = len(body) if sec.known_length else -1
        shb = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, length)
        shb += _ng_options(e, [(4, b"portlens make_captures.py")])  # shb_userappl
        out += _ng_block(e, 0x0A0D0D0A, shb) + body
        iface_base += len(sec.ifaces)
    return bytes(out), rows


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


class Clock:
    """Deterministic timestamps: start + n * step (ns)."""

    def __init__(self, start_ns: int, step_ns: int) -> None:
        self.next_ns, self.step = start_ns, step_ns

    def __call__(self) -> int:
        now = self.next_ns
        self.next_ns += self.step
        return now


@dataclass
class Capture:
    name: str
    description: str
    data: bytes
    frames: list[Exp]
    tshark_notes: dict[int, str] = field(default_factory=dict)
    """Frame number -> why tshark decodes it differently (by a rule of docs/decoding.md)."""


# ---------------------------------------------------------------------------------------------
# The captures
# ---------------------------------------------------------------------------------------------


def eth_recs(pkts: Sequence[Pkt], clock: Clock, linktype: int = LINKTYPE_ETHERNET) -> list[Rec]:
    return [Rec(p.raw, p.exp, clock(), linktype) for p in pkts]


tcp4 = ip4
"""IPv4 around a TCP segment (reads better where a capture is all TCP)."""


def build_link_ethernet() -> Capture:
    clock = Clock(BASE_NS + 1 * 3600 * 10**9, 1_000_000)
    v4_syn = tcp4(C4, S4, tcp(40001, 80, SYN, seq=100, opts=[("mss", 1460)]))
    pkts = [
        ether(v4_syn),
        ether(ip6(C6, S6, udp(40002, 7053, 30))),
        # a 54-byte ACK padded to Ethernet's 60-byte minimum: lengths come from the IP header
        ether(tcp4(C4, S4, tcp(40001, 80, ACK, seq=101, ack=2001)), pad=True),
        ether(ip4(C4, S4, udp(40003, 7161, 20)), tags=[(ETH_VLAN, 100)]),
        ether(ip6(C6, S6, tcp(40004, 443, SYN, seq=7)), tags=[(ETH_QINQ, 200), (ETH_VLAN, 300)]),
        ether(ip4(C4, S4, udp(40005, 7123, 48)), tags=[(0x9100, 10), (ETH_VLAN, 20)]),
        ether(mpls(ip4(C4, S4, udp(40006, 5000, 16)), [16000, 17])),
        ether(mpls(ip6(C6, S6, tcp(40007, 22, SYN, seq=1)), [299])),
        ether(pppoe(ip4(C4, S4, tcp(40008, 80, SYN, seq=5)), 0x1234)),
        ether(pppoe(ip6(C6, S6, udp(40009, 7053, 12)), 0x1234)),
        ether(pppoe(ip4(C4, S4, icmp_echo(True, 77, 1, 24)), 0x0042), tags=[(ETH_VLAN, 7)]),
        ether(arp_request(C4, S4), dst=MAC_BCAST, pad=True),
        ether(arp_request(C4, R4), dst=MAC_BCAST, tags=[(ETH_VLAN, 5)], pad=True),
        ether(lldp(), dst=bytes.fromhex("0180c200000e")),
        ether(
            non_ip(ETH_PPPOE_DISC, struct.pack("!BBHH", 0x11, 0x09, 0, 4) + b"\x01\x01\x00\x00"),
            dst=MAC_BCAST,
            pad=True,
        ),
    ]
    for p in pkts:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(pkts, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "link-ethernet.pcap",
        "Ethernet II: IPv4/IPv6, padded frame, 802.1Q, 802.1ad+802.1Q (QinQ), 0x9100 tag, "
        "MPLS (2 labels, 1 label), PPPoE session (IPv4, IPv6, VLAN-tagged), ARP, tagged ARP, "
        "LLDP, PPPoE discovery",
        data,
        rows,
    )


def basic_pkts() -> list[Pkt]:
    """An IPv4 TCP SYN and an IPv6 UDP datagram, for the link-type captures."""
    return [
        tcp4(C4, S4, tcp(41000, 443, SYN, seq=1000, opts=[("mss", 1460)])),
        ip6(C6, S6, udp(41001, 7053, 28)),
    ]


def linked(pkts: Sequence[Pkt], header: Callable[[Pkt], bytes]) -> list[Pkt]:
    out = []
    for p in pkts:
        exp = dict(p.exp)
        exp.setdefault("malformed", None)
        out.append(Pkt(header(p) + p.raw, exp, p.etype))
    return out


def simple_capture(
    name: str,
    description: str,
    linktype: int,
    pkts: Sequence[Pkt],
    hour: int,
) -> Capture:
    clock = Clock(BASE_NS + hour * 3600 * 10**9, 1_000_000)
    data, rows = write_pcap(eth_recs(pkts, clock, linktype), linktype=linktype)
    return Capture(name, description, data, rows)


def build_link_captures() -> list[Capture]:
    caps = [build_link_ethernet()]
    arp = arp_request(C4, S4)

    caps.append(simple_capture(
        "link-sll.pcap", "Linux cooked capture v1 (113): IPv4 TCP, IPv6 UDP (outgoing), ARP",
        LINKTYPE_SLL,
        [
            *linked(basic_pkts()[:1], lambda p: sll(p, pkttype=0)),
            *linked(basic_pkts()[1:], lambda p: sll(p, pkttype=4)),
            Pkt(sll(arp) + arp.raw, arp.exp, ETH_ARP),
        ],
        2,
    ))
    caps.append(simple_capture(
        "link-sll2.pcap", "Linux cooked capture v2 (276): IPv4 TCP, IPv6 UDP, ARP",
        LINKTYPE_SLL2,
        [*linked(basic_pkts(), sll2), Pkt(sll2(arp) + arp.raw, arp.exp, ETH_ARP)],
        3,
    ))

    def af_le(af: int) -> Callable[[Pkt], bytes]:
        return lambda p: struct.pack("<I", af)

    def af_be(af: int) -> Callable[[Pkt], bytes]:
        return lambda p: struct.pack(">I", af)

    v4, v6 = basic_pkts()
    caps.append(simple_capture(
        "link-null.pcap",
        "BSD NULL (0): address family little-endian (2, 24, 28, 30) and big-endian (2, 30)",
        LINKTYPE_NULL,
        [
            *linked([v4], af_le(2)),
            *linked([v6], af_le(24)),
            *linked([v6], af_le(28)),
            *linked([v6], af_le(30)),
            *linked([v4], af_be(2)),
            *linked([v6], af_be(30)),
        ],
        4,
    ))
    caps.append(simple_capture(
        "link-loop.pcap", "OpenBSD LOOP (108): address family big-endian (2 IPv4, 24 IPv6)",
        LINKTYPE_LOOP,
        [*linked([v4], af_be(2)), *linked([v6], af_be(24))],
        5,
    ))
    not_ip = Pkt(b"\x00" * 20, {"ipv": None, "malformed": None}, 0)
    for hour, (linktype, label) in enumerate(
        [(12, "raw12"), (14, "raw14"), (LINKTYPE_RAW, "raw101")], start=6
    ):
        pkts = linked(basic_pkts(), lambda p: b"")
        if linktype == LINKTYPE_RAW:
            pkts.append(not_ip)
        cap = simple_capture(
            f"link-{label}.pcap",
            f"raw IP, link type {linktype}: IPv4 TCP, IPv6 UDP"
            + (", and a frame whose first nibble is 0 (not IP)" if linktype == 101 else ""),
            linktype,
            pkts,
            hour,
        )
        if linktype == LINKTYPE_RAW:
            cap.tshark_notes[3] = "raw IP with version 0: tshark dissects it as bogus IPv4"
        caps.append(cap)
    caps.append(simple_capture(
        "link-ipv4.pcap", "LINKTYPE_IPV4 (228): IPv4 TCP SYN and IPv4 UDP",
        LINKTYPE_IPV4,
        linked([v4, ip4(C4, S4, udp(41002, 7514, 40))], lambda p: b""),
        9,
    ))
    caps.append(simple_capture(
        "link-ipv6.pcap", "LINKTYPE_IPV6 (229): IPv6 UDP and IPv6 TCP SYN",
        LINKTYPE_IPV6,
        linked([v6, ip6(C6, S6, tcp(41003, 80, SYN, seq=3))], lambda p: b""),
        10,
    ))
    lcp = Pkt(b"\xff\x03" + struct.pack("!H", PPP_LCP) + bytes.fromhex("01010004"),
              {"ipv": None, "malformed": None}, 0)
    caps.append(simple_capture(
        "link-ppp.pcap",
        "PPP (9): IPv4 with ff03 address/control, IPv4 without it, IPv6 with it, LCP (not IP)",
        LINKTYPE_PPP,
        [
            *linked([v4], lambda p: b"\xff\x03" + struct.pack("!H", ppp_proto_of(p))),
            *linked([v4], lambda p: struct.pack("!H", ppp_proto_of(p))),
            *linked([v6], lambda p: b"\xff\x03" + struct.pack("!H", ppp_proto_of(p))),
            lcp,
        ],
        11,
    ))
    caps.append(simple_capture(
        "link-ppp-hdlc.pcap", "PPP in HDLC-like framing (50): IPv4 and IPv6 after ff 03",
        LINKTYPE_PPP_HDLC,
        linked([v4, v6], lambda p: b"\xff\x03" + struct.pack("!H", ppp_proto_of(p))),
        12,
    ))
    unknown = Pkt(fill(40, 1), {"ipv": None, "ethertype": None, "malformed": None}, 0)
    caps.append(simple_capture(
        "link-unknown.pcap",
        "link type 147 (USER0), not decoded: counted by link type, not IP, not malformed",
        147,
        [unknown, Pkt(fill(60, 2), unknown.exp, 0)],
        13,
    ))
    return caps


def build_formats() -> list[Capture]:
    caps = []
    v4, v6 = basic_pkts()
    eth4, eth6 = ether(v4), ether(v6)
    for p in (eth4, eth6):
        p.exp.setdefault("malformed", None)
    raw4 = Pkt(v4.raw, dict(eth4.exp), ETH_IPV4)
    raw6 = Pkt(v6.raw, dict(eth6.exp), ETH_IPV6)

    # pcapng: section 1 little-endian, Ethernet at microseconds + raw IP at nanoseconds;
    # section 2 big-endian, Ethernet (no if_tsresol: microseconds) + IPv6 at milliseconds.
    t0 = BASE_NS + 20 * 3600 * 10**9
    s1 = Section(
        False, [Iface(LINKTYPE_ETHERNET, 6, "eth0", 65535), Iface(LINKTYPE_RAW, 9, "tun0")]
    )
    s1.recs = [
        Rec(eth4.raw, eth4.exp, t0 + 123_456_000, LINKTYPE_ETHERNET, 0, comment="first"),
        Rec(raw4.raw, raw4.exp, t0 + 123_456_789, LINKTYPE_RAW, 1),
        Rec(raw6.raw, raw6.exp, t0 + 1_000_000_001, LINKTYPE_RAW, 1),
        Rec(eth6.raw, eth6.exp, t0 + 2_000_001_000, LINKTYPE_ETHERNET, 0),
    ]
    s2 = Section(True, [Iface(LINKTYPE_ETHERNET), Iface(LINKTYPE_IPV6, 3)], known_length=False)
    s2.recs = [
        Rec(eth6.raw, eth6.exp, t0 + 3_000_002_000, LINKTYPE_ETHERNET, 0),
        Rec(raw6.raw, raw6.exp, t0 + 4_005_000_000, LINKTYPE_IPV6, 1),
        Rec(eth4.raw, eth4.exp, t0 + 5_000_000_000, LINKTYPE_ETHERNET, 0),
    ]
    data, rows = write_pcapng([s1, s2])
    local_ids = {
        len(s1.recs) + i + 1: "tshark's frame.interface_id is section-local (it restarts at 0 "
        "in section 2, with frame.section_number 2); portlens numbers interfaces file-wide"
        for i in range(len(s2.recs))
    }
    caps.append(Capture(
        "pcapng-multi.pcapng",
        "pcapng: section 1 little-endian with 2 interfaces (Ethernet if_tsresol 6, raw IP "
        "if_tsresol 9), EPB comment, ISBs; section 2 big-endian (Ethernet default resolution, "
        "IPv6 link type if_tsresol 3); interfaces numbered file-wide (section 2 has 2 and 3)",
        data, rows, local_ids,
    ))

    recs = [
        Rec(eth4.raw, eth4.exp, BASE_NS + 21 * 3600 * 10**9 + 123_456_789, LINKTYPE_ETHERNET),
        Rec(eth6.raw, eth6.exp, BASE_NS + 21 * 3600 * 10**9 + 999_999_999, LINKTYPE_ETHERNET),
        Rec(eth4.raw, eth4.exp, BASE_NS + 21 * 3600 * 10**9 + 1_000_000_001, LINKTYPE_ETHERNET),
    ]
    data, rows = write_pcap(recs, linktype=LINKTYPE_ETHERNET, nano=True)
    caps.append(Capture("ns.pcap", "nanosecond-resolution pcap (magic a1b23c4d), little-endian",
                        data, rows))

    t1 = BASE_NS + 22 * 3600 * 10**9
    recs = [
        Rec(eth4.raw, eth4.exp, t1 + 1_000, LINKTYPE_ETHERNET),
        Rec(eth6.raw, eth6.exp, t1 + 999_999_000, LINKTYPE_ETHERNET),
    ]
    data, rows = write_pcap(recs, linktype=LINKTYPE_ETHERNET, big=True)
    caps.append(Capture("be.pcap", "big-endian microsecond pcap", data, rows))

    session = build_tcp_session(hour=23)
    caps.append(Capture(
        "gzip-pcap.cap",
        "gzip-compressed classic pcap (named without .gz): the TCP session of tcp-session.pcap",
        gzip_bytes(session.data), session.frames,
    ))
    t2 = BASE_NS + 24 * 3600 * 10**9
    s = Section(False, [Iface(LINKTYPE_ETHERNET, 9, snaplen=64)])
    cut = ether(ip4(C4, S4, tcp(41004, 80, PSH | ACK, seq=1, ack=1, data=200)))
    cut.exp.update({"checksum": {"ip": "good", "tcp": "unverified"}, "malformed": None})
    s.recs = [
        Rec(eth4.raw, eth4.exp, t2 + 7, LINKTYPE_ETHERNET),
        Rec(eth6.raw, eth6.exp, t2 + 1_000_000_011, LINKTYPE_ETHERNET),
        Rec(cut.raw, cut.exp, t2 + 2_000_000_013, LINKTYPE_ETHERNET, snaplen=64),
    ]
    data, rows = write_pcapng([s])
    assert rows[-1]["truncated"]
    caps.append(Capture("gzip-pcapng.cap", "gzip-compressed pcapng (named without .gz), "
                        "nanosecond interface with snaplen 64: the third frame is cut",
                        gzip_bytes(data), rows))
    return caps


def build_tcp_session(hour: int = 30) -> Capture:
    """A complete connection: handshake, data both ways, FIN close from the client."""
    clock = Clock(BASE_NS + hour * 3600 * 10**9, 10_250_000)
    cp, sp = 49152, 80
    c_isn, s_isn = 1000, 5000
    ids = {"c": 0x100, "s": 0x200}

    def c2s(seg: L4) -> Pkt:
        ids["c"] += 1
        return ether(tcp4(C4, S4, seg, ident=ids["c"]))

    def s2c(seg: L4) -> Pkt:
        ids["s"] += 1
        return ether(tcp4(S4, C4, seg, ident=ids["s"], ttl=57), src=MAC_S, dst=MAC_C)

    syn_opts: list[TcpOpt] = [("mss", 1460), ("sackok",), ("ts", 100, 0), ("nop",), ("ws", 7)]
    synack_opts: list[TcpOpt] = [("mss", 1400), ("sackok",), ("ts", 900, 100), ("nop",), ("ws", 9)]
    pkts = [
        c2s(tcp(cp, sp, SYN, seq=c_isn, win=64240, opts=syn_opts)),
        s2c(tcp(sp, cp, SYN | ACK, seq=s_isn, ack=c_isn + 1, win=65160, opts=synack_opts)),
        c2s(tcp(cp, sp, ACK, seq=c_isn + 1, ack=s_isn + 1, win=502,
                opts=[("nop",), ("nop",), ("ts", 101, 900)])),
        c2s(tcp(cp, sp, PSH | ACK, seq=c_isn + 1, ack=s_isn + 1, win=502, data=100,
                opts=[("nop",), ("nop",), ("ts", 102, 900)])),
        s2c(tcp(sp, cp, ACK, seq=s_isn + 1, ack=c_isn + 101, win=509,
                opts=[("nop",), ("nop",), ("ts", 901, 102)])),
        s2c(tcp(sp, cp, PSH | ACK, seq=s_isn + 1, ack=c_isn + 101, win=509, data=300,
                opts=[("nop",), ("nop",), ("ts", 902, 102)])),
        c2s(tcp(cp, sp, ACK, seq=c_isn + 101, ack=s_isn + 301, win=501,
                opts=[("nop",), ("nop",), ("ts", 103, 902)])),
        c2s(tcp(cp, sp, FIN | ACK, seq=c_isn + 101, ack=s_isn + 301, win=501,
                opts=[("nop",), ("nop",), ("ts", 104, 902)])),
        s2c(tcp(sp, cp, FIN | ACK, seq=s_isn + 301, ack=c_isn + 102, win=509,
                opts=[("nop",), ("nop",), ("ts", 903, 104)])),
        c2s(tcp(cp, sp, ACK, seq=c_isn + 102, ack=s_isn + 302, win=501,
                opts=[("nop",), ("nop",), ("ts", 105, 903)])),
    ]
    for p in pkts:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(pkts, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "tcp-session.pcap",
        "one IPv4 TCP connection: 3-way handshake with options, 100 + 300 bytes of data, "
        "FIN close from the client, final ACK (Zeek conn_state SF)",
        data, rows,
    )


def build_tcp_options() -> Capture:
    clock = Clock(BASE_NS + 31 * 3600 * 10**9, 1_000_000)
    no_opts = ("mss", "wscale", "sack_perm", "tsval")
    segs: list[Pkt] = [
        # Linux SYN
        tcp4(C4, S4, tcp(50000, 443, SYN, seq=1, opts=[
            ("mss", 1460), ("sackok",), ("ts", 4000000000, 0), ("nop",), ("ws", 7)])),
        # Windows SYN
        tcp4(C4, S4, tcp(50001, 443, SYN, seq=2, win=65535, opts=[
            ("mss", 1460), ("nop",), ("ws", 8), ("nop",), ("nop",), ("sackok",)],
            absent=("tsval",))),
        # MSS then EOL: the 3 padding bytes after EOL are listed as EOL too
        tcp4(C4, S4, tcp(50002, 80, SYN, seq=3, win=8192, opts=[("mss", 536), ("eol",)],
                         absent=("wscale", "sack_perm", "tsval"))),
        tcp4(C4, S4, tcp(50003, 80, SYN, seq=4, opts=[("mss", 1440), ("ws", 2), ("eol",)],
                         absent=("sack_perm", "tsval"))),
        # SYN-ACK with window scale 15 (beyond RFC 7323's 14: reported as sent) and ECN
        tcp4(S4, C4, tcp(443, 50000, SYN | ACK | ECE, seq=77, ack=2, opts=[
            ("mss", 1380), ("nop",), ("ws", 15), ("sackok",), ("ts", 5, 4000000000)])),
        # ECN-setup SYN (ECE|CWR), and an ACK with the AE (ex-NS) bit
        tcp4(C4, S4, tcp(50004, 443, SYN | ECE | CWR, seq=5, opts=[("mss", 1460)])),
        tcp4(C4, S4, tcp(50004, 443, ACK | AE, seq=6, ack=78)),
        # duplicate ACK with timestamps and 2 SACK blocks; an ACK with 4 SACK blocks
        tcp4(S4, C4, tcp(443, 50000, ACK, seq=78, ack=2, win=501, opts=[
            ("nop",), ("nop",), ("ts", 6, 4000000001), ("nop",), ("nop",),
            ("sack", [(1002, 2002), (3002, 4002)])], absent=no_opts[:3])),
        tcp4(S4, C4, tcp(443, 50000, ACK, seq=78, ack=2, win=501, opts=[
            ("nop",), ("nop",), ("sack", [(10, 20), (30, 40), (50, 60), (70, 80)])],
            absent=no_opts)),
        # experimental option kind 253 (RFC 6994, ExID 0x1234) between known ones
        tcp4(C4, S4, tcp(50005, 443, SYN, seq=7, opts=[
            ("mss", 1200), ("raw", 253, b"\x12\x34\x00\x01"), ("nop",), ("nop",), ("sackok",)])),
        # URG|PSH|ACK with urgent pointer, RST, RST|ACK
        tcp4(C4, S4, tcp(50006, 23, URG | PSH | ACK, seq=100, ack=200, data=3, urp=1)),
        tcp4(S4, C4, tcp(23, 50007, RST, seq=300)),
        tcp4(S4, C4, tcp(23, 50008, RST | ACK, seq=0, ack=401, win=0)),
        # IPv6 SYN with options
        ip6(C6, S6, tcp(50009, 443, SYN, seq=8, opts=[
            ("mss", 1440), ("sackok",), ("ts", 1, 0), ("nop",), ("ws", 10)])),
    ]
    pkts = [ether(p) for p in segs]
    for p in pkts:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(pkts, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "tcp-options.pcap",
        "TCP options: Linux and Windows SYNs, EOL padding, window scale 15, SACK blocks (2, 4), "
        "timestamps, experimental kind 253; flags ECE/CWR/AE/URG/RST",
        data, rows,
    )


def build_icmp() -> Capture:
    clock = Clock(BASE_NS + 32 * 3600 * 10**9, 1_000_000)
    probe = bytes(IP(src=C4, dst=S4, id=0x4242, ttl=1, flags=0, proto=17) / Raw(
        struct.pack("!HHHH", 33434, 33435, 8 + 12, 0) + fill(12, 9)))
    probe6 = ip6(C6, S6, udp(33500, 33501, 8)).raw
    syn = ip4(C4, R4, tcp(44000, 25, SYN, seq=1)).raw
    pkts = [
        ether(ip4(C4, S4, icmp_echo(True, 0x1234, 1, 56), df=False)),
        ether(ip4(S4, C4, icmp_echo(False, 0x1234, 1, 56), df=False), src=MAC_S, dst=MAC_C),
        # port unreachable quoting the whole UDP probe (IP header + 8 + 12 bytes)
        ether(ip4(S4, C4, icmp(3, 3, bytes(4) + probe), df=False), src=MAC_S, dst=MAC_C),
        # time exceeded in transit quoting IP header + first 8 bytes of a TCP SYN
        ether(ip4(R4, C4, icmp(11, 0, bytes(4) + syn[:28]), df=False), src=MAC_S, dst=MAC_C),
        ether(ip6(C6, S6, icmp6_echo(True, 0x99, 1, 32))),
        ether(ip6(S6, C6, icmp6_echo(False, 0x99, 1, 32)), src=MAC_S, dst=MAC_C),
        # ICMPv6 destination unreachable, port unreachable (1/4), quoting a UDP datagram
        ether(ip6(S6, C6, icmp6(1, 4, bytes(4) + probe6)), src=MAC_S, dst=MAC_C),
    ]
    for p in pkts:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(pkts, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "icmp.pcap",
        "ICMP echo request/reply, port unreachable quoting a UDP probe, time exceeded quoting "
        "a TCP SYN; ICMPv6 echo request/reply, port unreachable quoting UDP",
        data, rows,
    )


def build_ip_options_ext() -> Capture:
    clock = Clock(BASE_NS + 33 * 3600 * 10**9, 1_000_000)
    router_alert = b"\x94\x04\x00\x00"
    record_route = b"\x01" + b"\x07\x0f\x04" + bytes(12)  # NOP + RR with 3 empty slots
    esp = struct.pack("!II", 0x1000, 1) + fill(48, 3)
    pkts = [
        ip4(C4, "224.0.0.22", udp(40100, 7353, 20), options=router_alert, ttl=1),
        ip4(C4, S4, tcp(40101, 80, SYN, seq=1, opts=[("mss", 1460)]), options=record_route),
        ip6(C6, S6, tcp(40102, 443, PSH | ACK, seq=10, ack=20, data=33), ext=[
            IPv6ExtHdrHopByHop(),
            IPv6ExtHdrRouting(type=0, segleft=0, addresses=[R6]),
            IPv6ExtHdrDestOpt(),
        ]),
        ip6(C6, S6, udp(40103, 9000, 10), ext=[IPv6ExtHdrDestOpt()]),
        ip6(C6, S6, tcp(40104, 22, ACK, seq=30, ack=40, data=8),
            ext=[AuthHeader(0x2000, 7, fill(12, 5))]),
        ip6(C6, S6, opaque(50, esp)),
        ip6(C6, S6, opaque(50, esp), ext=[IPv6ExtHdrHopByHop()]),
        ip6(C6, S6, opaque(59, b"")),
        ip4(C4, S4, opaque(50, esp)),
        ip4(C4, S4, opaque(253, fill(28, 4))),  # experimental protocol: proto as a number
    ]
    # ESP / No Next Header / SCTP: no transport checksum to report, IPv6 has no header checksum
    for p in pkts:
        if p.exp["proto"] in (50, 59, 253) and p.exp["ipv"] == 6:
            p.exp.pop("checksum", None)
    # TSO: IPv4 total length 0 and IPv6 payload length 0 take the length from the frame
    tso4 = ip4(C4, S4, tcp(40105, 80, PSH | ACK, seq=1, ack=1, data=1000), total_length=0)
    tso4.exp["ip_len"] = len(tso4.raw)
    tso4.exp.pop("checksum")
    tso6 = ip6(C6, S6, tcp(40106, 80, PSH | ACK, seq=1, ack=1, data=1000), plen=0)
    tso6.exp["ip_len"] = len(tso6.raw)
    tso6.exp.pop("checksum")
    pkts += [tso4, tso6]
    frames = [ether(p) for p in pkts]
    for p in frames:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(frames, clock), linktype=LINKTYPE_ETHERNET)
    notes = {len(frames): "IPv6 payload length 0 (TSO): tshark stops at IPv6, portlens takes "
                          "the length from the frame"}
    return Capture(
        "ip-options-ext.pcap",
        "IPv4 options (router alert; NOP + record route), IPv6 extension chains (hop-by-hop + "
        "routing + destination options before TCP; dest-opts before UDP; AH before TCP; ESP; "
        "hop-by-hop + ESP; no next header), IPv4 ESP, an undecoded protocol (253), TSO "
        "lengths 0 (IPv4, IPv6)",
        data, rows, notes,
    )


Piece = tuple[int, int, bool]
"""A fragment's (offset, length, more fragments) within the datagram; offset a multiple of 8."""


def frag4(src: str, dst: str, ident: int, datagram: bytes, piece: Piece) -> bytes:
    """One IPv4 fragment: datagram[offset:offset+length]."""
    offset, length, more = piece
    return bytes(IP(src=src, dst=dst, id=ident, proto=17, ttl=64, flags="MF" if more else 0,
                    frag=offset // 8) / Raw(datagram[offset : offset + length]))


def frag6(src: str, dst: str, ident: int, datagram: bytes, piece: Piece) -> bytes:
    """One IPv6 fragment (fragment header + datagram[offset:offset+length])."""
    offset, length, more = piece
    fh = struct.pack("!BBHI", 17, 0, offset | int(more), ident)
    body = fh + datagram[offset : offset + length]
    return bytes(IPv6(src=src, dst=dst, nh=44, hlim=64) / Raw(body))


def build_fragments() -> Capture:
    clock = Clock(BASE_NS + 34 * 3600 * 10**9, 1_000_000)
    sport, dport = 40200, 7000
    full4 = ip4(C4, S4, udp(sport, dport, 64), df=False)
    dgram4 = full4.raw[20:]  # UDP header + 64 bytes, checksummed: 72 bytes
    assert len(dgram4) == 72
    frames: list[Pkt] = []

    def part(raw: bytes, ipv: int, src: str = C4, dst: str = S4) -> Pkt:
        exp: Exp = {"ipv": ipv, "src": text(src), "dst": text(dst), "proto": "udp",
                    "sport": sport, "dport": dport, "frag": "part",
                    "ip_len": len(raw), "malformed": None}
        return ether(Pkt(raw, exp, ETH_IPV4 if ipv == 4 else ETH_IPV6))

    def complete(raw: bytes, ipv: int, total: int, src: str = C4, dst: str = S4) -> Pkt:
        exp: Exp = {"ipv": ipv, "src": text(src), "dst": text(dst), "proto": "udp",
                    "sport": sport, "dport": dport, "frag": "complete", "payload": 64,
                    "ip_len": total, "malformed": None}
        exp["checksum"] = {"ip": "good", "udp": "unverified"} if ipv == 4 else {
            "udp": "unverified"}
        return ether(Pkt(raw, exp, ETH_IPV4 if ipv == 4 else ETH_IPV6))

    # 1. in order, id 0x0101: [0,24) [24,48) [48,72)
    pieces: list[Piece] = [(0, 24, True), (24, 24, True), (48, 24, False)]
    raws = [frag4(C4, S4, 0x0101, dgram4, piece) for piece in pieces]
    frames += [part(raws[0], 4), part(raws[1], 4), complete(raws[2], 4, 20 + 72)]
    # 2. the same datagram reversed, id 0x0102
    raws = [frag4(C4, S4, 0x0102, dgram4, piece) for piece in reversed(pieces)]
    frames += [part(raws[0], 4), part(raws[1], 4), complete(raws[2], 4, 20 + 72)]
    # 3. overlapping and duplicated, id 0x0103: [0,24) [16,48) [16,48) again [40,72)
    overlapping: list[Piece] = [(0, 24, True), (16, 32, True), (16, 32, True), (40, 32, False)]
    raws = [frag4(C4, S4, 0x0103, dgram4, piece) for piece in overlapping]
    frames += [part(r, 4) for r in raws[:3]] + [complete(raws[3], 4, 20 + 72)]
    # 4. IPv6, fragment id 0xabcdef01: [0,32) [32,72)
    full6 = ip6(C6, S6, udp(sport, dport, 64))
    dgram6 = full6.raw[40:]
    raws = [
        frag6(C6, S6, 0xABCDEF01, dgram6, (0, 32, True)),
        frag6(C6, S6, 0xABCDEF01, dgram6, (32, 40, False)),
    ]
    frames += [part(raws[0], 6, C6, S6), complete(raws[1], 6, 40 + 72, C6, S6)]
    # 5. not a fragment: DF set, offset 0, MF clear
    whole = ether(ip4(C4, S4, udp(sport, dport + 1, 64), df=True))
    whole.exp.update({"frag": None, "malformed": None})
    frames.append(whole)
    data, rows = write_pcap(eth_recs(frames, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "fragments.pcap",
        "UDP datagram (72 bytes) in 3 IPv4 fragments in order, reversed, overlapping + "
        "duplicated; IPv6 fragmented UDP; a DF (unfragmented) datagram",
        data, rows,
    )


def gre_header(proto: int, *, key: int | None = None, seq: int | None = None) -> bytes:
    flags = (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    out = struct.pack("!HH", flags, proto)
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out


def gre(src: str, dst: str, inner: Pkt, **kw: Any) -> Pkt:
    body = gre_header(inner.etype, **kw) + inner.raw
    return Pkt(ip4_carrying(src, dst, 47, body), with_tunnel(inner, "gre"), ETH_IPV4)


def vxlan(inner: Pkt, vni: int) -> Pkt:
    body = struct.pack("!BxxxI", 0x08, vni << 8) + inner.raw
    raw = udp_carrying(T4A, T4B, 54321, 4789, body, csum=False)
    return Pkt(raw, with_tunnel(inner, "vxlan"), ETH_IPV4)


def geneve(inner: Pkt, vni: int, options: bytes = b"") -> Pkt:
    assert len(options) % 4 == 0
    hdr = struct.pack("!BBHI", len(options) // 4, 0, inner.etype, vni << 8) + options
    raw = udp_carrying(T4A, T4B, 54322, 6081, hdr + inner.raw, csum=True)
    return Pkt(raw, with_tunnel(inner, "geneve"), ETH_IPV4)


def teredo(inner: Pkt, sport: int, dport: int, origin: bool = False) -> Pkt:
    body = inner.raw
    if origin:  # origin indication: 00 00, obfuscated port, obfuscated IPv4
        body = struct.pack("!HH", 0, 40000 ^ 0xFFFF) + bytes(
            b ^ 0xFF for b in ipaddress.IPv4Address(R4).packed) + body
    raw = udp_carrying(T4A, T4B, sport, dport, body, csum=True)
    return Pkt(raw, with_tunnel(inner, "teredo"), ETH_IPV4)


def gtpu(inner: Pkt, teid: int, ext: bool = False) -> Pkt:
    if ext:  # E flag: seq, N-PDU, next extension type 0x85 (PDU session container)
        opt = struct.pack("!HBB", 0, 0, 0x85) + bytes([1, 0x00, 0x09, 0x00])
        hdr = struct.pack("!BBHI", 0x34, 0xFF, len(opt) + len(inner.raw), teid) + opt
    else:
        hdr = struct.pack("!BBHI", 0x30, 0xFF, len(inner.raw), teid)
    raw = udp_carrying(T4A, T4B, 2152, 2152, hdr + inner.raw, csum=False)
    return Pkt(raw, with_tunnel(inner, "gtpu"), ETH_IPV4)


def build_tunnels() -> Capture:
    clock = Clock(BASE_NS + 35 * 3600 * 10**9, 1_000_000)
    in_tcp = ip4(C4, S4, tcp(40300, 80, SYN, seq=11, opts=[("mss", 1400)]))
    in_udp = ip4(C4, S4, udp(40301, 7053, 24))
    in_udp6 = ip6(C6, S6, udp(40302, 7053, 24))
    in_tcp6 = ip6(C6, S6, tcp(40303, 443, SYN, seq=12))
    teredo_client = "2001:0:4136:e378:8000:63bf:3fff:fdd2"
    erspan = Pkt(fill(32, 6), {"proto": 47}, 0x88BE)
    gre_other = Pkt(
        ip4_carrying(T4A, T4B, 47, gre_header(0x88BE, seq=1) + erspan.raw),
        {"ipv": 4, "src": T4A, "dst": T4B, "proto": 47}, ETH_IPV4,
    )
    seven = in_udp
    for _ in range(7):
        seven = in_ip(T4A, T4B, seven)
    pkts = [
        gre(T4A, T4B, in_tcp, key=0x01020304, seq=7),
        gre(T4A, T4B, ether(in_udp)),
        in_ip(T4A, T4B, ip4(C4, S4, icmp_echo(True, 5, 1, 16))),
        in_ip(T4A, T4B, in_tcp6),
        in_ip("2001:db8:aaaa::1", "2001:db8:bbbb::1", in_udp),
        in_ip("2001:db8:aaaa::1", "2001:db8:bbbb::1", in_udp6),
        vxlan(ether(in_tcp), 1000),
        geneve(ether(in_udp), 2000, options=struct.pack("!HBB", 0x0102, 0x80, 1) + fill(4, 8)),
        geneve(in_tcp6, 2001),
        teredo(ip6(teredo_client, S6, udp(40304, 7053, 16)), 40000, 3544),
        teredo(ip6(S6, teredo_client, icmp6_echo(False, 1, 1, 8)), 3544, 40000, origin=True),
        gtpu(in_tcp, 0x11223344),
        gtpu(in_udp6, 0x55667788, ext=True),
        # nested: VXLAN carrying Ethernet carrying GRE carrying IPv4
        vxlan(ether(gre(T4B, T4A, in_udp)), 3000),
        gre_other,
        seven,
    ]
    frames = [ether(p) for p in pkts]
    for p in frames:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(frames, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "tunnels.pcap",
        "GRE with key + sequence, GRE carrying Ethernet (0x6558), IP-in-IP, 6in4, 4in6, 6in6, "
        "VXLAN, Geneve (with an option, Ethernet; and IPv6 directly), Teredo (plain; origin "
        "indication), GTP-U (plain; extension header), VXLAN+GRE nested, GRE of an unknown "
        "protocol (not descended), 7 nested IP-in-IP",
        data, rows,
    )


def build_snaplen() -> Capture:
    clock = Clock(BASE_NS + 36 * 3600 * 10**9, 1_000_000)
    big = ether(ip4(C4, S4, tcp(40400, 80, PSH | ACK, seq=1, ack=1, data=400)))
    big.exp["checksum"] = {"ip": "good", "tcp": "unverified"}
    dgram = ether(ip4(C4, S4, udp(40401, 7514, 200)))
    dgram.exp["checksum"] = {"ip": "good", "udp": "unverified"}
    # the TCP options are cut after SACK-permitted: the timestamps option is not captured
    syn = ether(ip4(C4, S4, tcp(40402, 443, SYN, seq=9, opts=[
        ("mss", 1460), ("nop",), ("ws", 7), ("sackok",), ("ts", 1, 0)])))
    syn.exp.update({"opts": [2, 1, 3, 4], "tsval": None})
    syn.exp["checksum"] = {"ip": "good", "tcp": "unverified"}
    # IPv6: the TCP header itself is cut; decoding stops at IPv6, not malformed
    v6 = ether(ip6(C6, S6, tcp(40403, 443, SYN, seq=10, opts=[
        ("mss", 1440), ("sackok",), ("ts", 1, 0), ("nop",), ("ws", 7)])))
    v6.exp = {k: v6.exp[k] for k in ("ipv", "src", "dst", "proto", "ip_len")}
    icmp_big = ether(ip4(C4, S4, icmp_echo(True, 3, 3, 1000), df=False))
    icmp_big.exp["checksum"] = {"ip": "good", "icmp": "unverified"}
    small = ether(ip4(C4, S4, tcp(40400, 80, ACK, seq=401, ack=1)))
    pkts = [big, dgram, syn, v6, icmp_big, small]
    for p in pkts:
        p.exp["malformed"] = None
    recs = eth_recs(pkts, clock)
    data, rows = write_pcap(recs, linktype=LINKTYPE_ETHERNET, snaplen=64)
    assert [r["truncated"] for r in rows] == [True, True, True, True, True, False]
    return Capture(
        "snaplen64.pcap",
        "snaplen 64: TCP and UDP and ICMP cut in the payload (lengths from headers, checksums "
        "unverified), TCP options cut, IPv6 TCP header cut; a 54-byte frame not cut",
        data, rows,
    )


def build_checksums() -> Capture:
    clock = Clock(BASE_NS + 37 * 3600 * 10**9, 1_000_000)
    pkts = [
        ip4(C4, S4, tcp(40500, 80, SYN, seq=1), bad_l4_csum=True),
        ip4(C4, S4, tcp(40501, 80, SYN, seq=2), bad_ip_csum=True),
        ip4(C4, S4, udp(40502, 7053, 20), bad_l4_csum=True),
        ip4(C4, S4, udp(40503, 7053, 20, zero_csum=True)),
        ip4(C4, S4, icmp_echo(True, 1, 1, 8), bad_l4_csum=True),
        ip6(C6, S6, tcp(40504, 80, SYN, seq=3), bad_l4_csum=True),
        ip6(C6, S6, udp(40505, 7053, 20, zero_csum=True)),
        ip6(C6, S6, udp(40506, 7053, 20), bad_l4_csum=True),
        ip6(C6, S6, udp(40507, 7053, 20)),
        ip6(C6, S6, icmp6_echo(True, 1, 1, 8), bad_l4_csum=True),
        ip4(C4, S4, udp(40508, 7053, 20), bad_ip_csum=True, bad_l4_csum=True),
    ]
    frames = [ether(p) for p in pkts]
    for p in frames:
        p.exp.setdefault("malformed", None)
    data, rows = write_pcap(eth_recs(frames, clock), linktype=LINKTYPE_ETHERNET)
    return Capture(
        "checksums.pcap",
        "bad TCP checksum, bad IPv4 header checksum, bad UDP/ICMP/ICMPv6 checksums, UDP "
        "checksum 0 over IPv4 (unverified) and IPv6 (bad), good IPv6 UDP, both bad",
        data, rows,
    )


def build_malformed() -> Capture:
    clock = Clock(BASE_NS + 38 * 3600 * 10**9, 1_000_000)

    def bad(reason: str, raw: bytes, etype: int = ETH_IPV4, **exp: Any) -> Pkt:
        return ether(Pkt(raw, {**exp, "malformed": reason}, etype))

    def ipv4_fields(src: str = C4, dst: str = S4) -> Exp:
        return {"ipv": 4, "src": src, "dst": dst}

    def tcp_raw(data_offset_words: int, *, opts: bytes = b"", data: bytes = b"") -> bytes:
        hdr = struct.pack("!HHIIBBHHH", 40600, 80, 1, 0, data_offset_words << 4, SYN, 1024, 0, 0)
        seg = hdr + opts + data
        return patch16(seg, 16, inet_csum(pseudo_header(4, C4, S4, 6, len(seg)) + seg))

    def raw_ip(proto: int, body: bytes, **kw: Any) -> bytes:
        return bytes(IP(src=C4, dst=S4, proto=proto, id=9, ttl=64, **kw) / Raw(body))

    # TCP data offset 3 (12 bytes) and 15 (60 bytes, past the 28-byte IP payload)
    off3 = raw_ip(6, tcp_raw(3, data=fill(8)))
    off15 = raw_ip(6, tcp_raw(15, data=fill(8)))
    # IHL 4: rewrite the version/IHL byte (the header checksum no longer matters)
    ihl4 = b"\x44" + raw_ip(17, struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd")[1:]
    # UDP length 3 (< 8) and 200 (past the IP payload)
    udp3 = raw_ip(17, struct.pack("!HHHH", 40601, 7053, 3, 0) + fill(20))
    udp200 = raw_ip(17, struct.pack("!HHHH", 40602, 7053, 200, 0) + fill(20))
    # IPv4 total length past the frame, and below the header length
    tl_long = raw_ip(17, struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd", len=100)
    tl_short = raw_ip(17, struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd", len=12)
    # version 5 behind ethertype 0x0800; version 4 behind 0x86dd
    v5 = bytearray(raw_ip(17, struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd"))
    v5[0] = 0x55
    v6_as_4 = ip4(C4, S4, udp(1, 2, 24)).raw  # 52 bytes: not short for an IPv6 header
    # IPv6 payload length past the frame; hop-by-hop header running past the payload
    plen_long = bytearray(ip6(C6, S6, udp(40603, 7053, 8)).raw)
    plen_long[4:6] = struct.pack("!H", 500)
    hbh_long = bytes(IPv6(src=C6, dst=S6, nh=0, hlim=64) / Raw(b"\x11\x05" + bytes(6)))
    # TCP options: length 1 (after a NOP), timestamps running past the header
    opt_len1 = raw_ip(6, tcp_raw(6, opts=b"\x01\x02\x01\x00"))
    opt_past = raw_ip(6, tcp_raw(6, opts=b"\x01\x01\x08\x0a"))
    # GRE with the routing bit, GRE version 2
    gre_r = ip4_carrying(T4A, T4B, 47, struct.pack("!HH", 0x4000, 0x0800) + bytes(4) +
                         ip4(C4, S4, udp(1, 2, 4)).raw)
    gre_v2 = ip4_carrying(T4A, T4B, 47, struct.pack("!HH", 0x0002, 0x0800) +
                          ip4(C4, S4, udp(1, 2, 4)).raw)
    # 8 nested IP-in-IP: one more than the decoder follows
    deep = ip4(C4, S4, udp(40604, 7053, 4))
    for _ in range(8):
        deep = in_ip(T4A, T4B, deep)
    # headers that do not fit a frame captured whole (caplen == len)
    ip_short = raw_ip(6, tcp_raw(5))[:12]
    tcp_short = raw_ip(6, b"\x9e\x98\x00\x50" + bytes(6))
    udp_short = raw_ip(17, b"\x9e\x98\x00\x35")
    icmp_short = raw_ip(1, b"\x08\x00")
    v6_short = ip6(C6, S6, udp(1, 2, 4)).raw[:20]
    pkts = [
        bad("tcp-offset-invalid", off3, **ipv4_fields(), proto="tcp", ip_len=len(off3)),
        bad("tcp-offset-invalid", off15, **ipv4_fields(), proto="tcp", ip_len=len(off15)),
        bad("ipv4-ihl-invalid", ihl4),
        bad("udp-length-invalid", udp3, **ipv4_fields(), proto="udp", sport=40601, dport=7053,
            payload=20, ip_len=len(udp3)),
        bad("udp-length-invalid", udp200, **ipv4_fields(), proto="udp", sport=40602,
            dport=7053, payload=20, ip_len=len(udp200)),
        bad("ipv4-total-length-invalid", tl_long),
        bad("ipv4-total-length-invalid", tl_short),
        bad("ipv4-version-mismatch", bytes(v5)),
        bad("ipv6-version-mismatch", v6_as_4, ETH_IPV6),
        bad("ipv6-payload-length-invalid", bytes(plen_long), ETH_IPV6),
        bad("ipv6-ext-header-invalid", hbh_long, ETH_IPV6, ipv=6, src=text(C6), dst=text(S6)),
        bad("tcp-option-invalid", opt_len1, **ipv4_fields(), proto="tcp", sport=40600, dport=80,
            flags=SYN, opts=[1, 2]),
        bad("tcp-option-invalid", opt_past, **ipv4_fields(), proto="tcp", sport=40600, dport=80,
            flags=SYN, opts=[1, 1, 8]),
        bad("gre-header-invalid", gre_r, **ipv4_fields(T4A, T4B)),
        bad("gre-header-invalid", gre_v2, **ipv4_fields(T4A, T4B)),
        bad("tunnel-too-deep", deep.raw),
        bad("ipv4-header-short", ip_short),
        bad("tcp-header-short", tcp_short, **ipv4_fields(), proto="tcp"),
        bad("udp-header-short", udp_short, **ipv4_fields(), proto="udp"),
        bad("icmp-header-short", icmp_short, **ipv4_fields(), proto="icmp"),
        bad("ipv6-header-short", v6_short, ETH_IPV6),
    ]
    link_short = Pkt(eth_header(ETH_IPV4)[:10], {"malformed": "link-header-short"}, 0)
    vlan_short = Pkt(eth_header(ETH_VLAN) + b"\x00\x64", {"malformed": "vlan-tag-short"}, 0)
    mpls_short = Pkt(eth_header(ETH_MPLS) + b"\x03\xe8", {"malformed": "mpls-label-short"}, 0)
    # bottom-of-stack label followed by a pseudowire control word (first nibble 0)
    mpls_unknown = Pkt(eth_header(ETH_MPLS) + struct.pack("!I", (1000 << 12) | 0x140) +
                       bytes(4) + fill(20), {"malformed": "mpls-payload-unknown"}, 0)
    pppoe_short = Pkt(eth_header(ETH_PPPOE_SESS) + b"\x11\x00\x12\x34",
                      {"malformed": "pppoe-header-short"}, 0)
    pkts += [link_short, vlan_short, mpls_short, mpls_unknown, pppoe_short]
    data, rows = write_pcap(eth_recs(pkts, clock), linktype=LINKTYPE_ETHERNET)
    assert not any(r["truncated"] for r in rows)
    return Capture(
        "malformed.pcap",
        "one frame per malformed reason (captured whole, so not truncated): TCP data offset 3 "
        "and 15, IPv4 IHL 4, UDP length 3 and 200, IPv4 total length too long/short, version "
        "mismatches, IPv6 payload length, IPv6 extension header, TCP option length, GRE routing "
        "bit / version 2, 8 nested tunnels, short link/VLAN/MPLS/PPPoE/IP/TCP/UDP/ICMP headers, "
        "MPLS pseudowire payload",
        data, rows,
    )


def build_all() -> list[Capture]:
    caps = build_link_captures()
    caps += build_formats()
    caps += [
        build_tcp_session(),
        build_tcp_options(),
        build_icmp(),
        build_ip_options_ext(),
        build_fragments(),
        build_tunnels(),
        build_snaplen(),
        build_checksums(),
        build_malformed(),
    ]
    return caps


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def expected_json(cap: Capture) -> str:
    lines = [
        "{",
        f'  "file": {json.dumps(cap.name)},',
        f'  "description": {json.dumps(cap.description)},',
    ]
    if cap.tshark_notes:
        notes = {str(k): v for k, v in sorted(cap.tshark_notes.items())}
        lines.append(f'  "tshark_notes": {json.dumps(notes)},')
    lines.append('  "frames": [')
    body = [f"    {json.dumps(frame, separators=(', ', ': '))}" for frame in cap.frames]
    lines.append(",\n".join(body))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def readme(caps: Sequence[Capture]) -> str:
    out = [
        "# portlens' own test captures",
        "",
        "Crafted by `scripts/make_captures.py` (deterministic: re-running it rewrites identical",
        "bytes). `expected/NAME.json` holds, per frame, the values `portlens packets --json` must",
        "print, derived from the crafting parameters (never from portlens); `null` means the key",
        "must be absent. Checked by `tests/test_own_captures.py`.",
        "`python scripts/make_captures.py --check-tshark` compares them with tshark;",
        "`tshark_notes` list where tshark differs by a rule of `docs/decoding.md`.",
        "",
        "| capture | frames | exercises |",
        "| --- | --- | --- |",
    ]
    for cap in caps:
        out.append(f"| `{cap.name}` | {len(cap.frames)} | {cap.description} |")
    return "\n".join(out) + "\n"


def write_all(out_dir: Path) -> list[Capture]:
    caps = build_all()
    names = [c.name for c in caps]
    assert len(set(names)) == len(names), "duplicate capture names"
    (out_dir / "expected").mkdir(parents=True, exist_ok=True)
    for cap in caps:
        (out_dir / cap.name).write_bytes(cap.data)
        stem = cap.name.rsplit(".", 1)[0]
        (out_dir / "expected" / f"{stem}.json").write_text(expected_json(cap))
    (out_dir / "README.md").write_text(readme(caps))
    return caps


# ---------------------------------------------------------------------------------------------
# Cross-check with tshark
# ---------------------------------------------------------------------------------------------

TSHARK_FIELDS = [
    "frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "frame.interface_id",
    "frame.protocols", "eth.type", "sll.etype", "vlan.id", "vlan.etype", "ieee8021ad.id",
    "ip.src", "ip.dst", "ip.proto", "ip.len", "ip.hdr_len", "ip.checksum.status",
    "ip.reassembled_in", "ip.reassembled.length", "ipv6.src", "ipv6.dst", "ipv6.plen",
    "ipv6.nxt", "ipv6.reassembled.in", "ipv6.reassembled.length",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw",
    "tcp.window_size_value", "tcp.len", "tcp.options.mss_val", "tcp.options.wscale.shift",
    "tcp.options.sack_perm", "tcp.options.timestamp.tsval", "tcp.option_kind",
    "tcp.checksum.status", "udp.srcport", "udp.dstport", "udp.length", "udp.checksum.status",
    "icmp.type", "icmp.code", "icmp.checksum.status", "icmpv6.type", "icmpv6.code",
    "icmpv6.checksum.status", "_ws.malformed", "_ws.expert.message",
]
TSHARK_PREFS = [
    "ip.check_checksum:TRUE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE",
    "tcp.analyze_sequence_numbers:FALSE", "tcp.relative_sequence_numbers:FALSE",
]
TSHARK_TUNNELS = {"gre": "gre", "vxlan": "vxlan", "geneve": "geneve", "teredo": "teredo",
                  "gtp": "gtpu"}
TSHARK_STATUS = {"0": "bad", "1": "good", "2": "unverified", "3": "unverified", "4": "bad"}
"""tshark's checksum status: 3 = not present (UDP over IPv4 with 0), 4 = illegal (0 over IPv6)."""
ICMP_ERRORS = {"icmp": (3, 4, 5, 11, 12), "icmpv6": (1, 2, 3, 4)}
L4_NAMES = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmp6"}

TsharkRow = dict[str, list[str]]


def tshark_rows(path: Path) -> list[TsharkRow]:
    """tshark's fields per frame (two passes, so part fragments know where they reassemble)."""
    cmd = ["tshark", "-n", "-2", "-r", str(path), "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=a", "-E", "aggregator=|"]
    for pref in TSHARK_PREFS:
        cmd += ["-o", pref]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append({k: (v.split("|") if v else []) for k, v in zip(TSHARK_FIELDS, values,
                                                                     strict=False)})
    return rows


def tshark_view(t: TsharkRow) -> Exp:
    """tshark's values for one frame in the vocabulary of ``portlens packets --json``.

    The innermost IP layer and transport are the last occurrences, except in an ICMP error,
    where tshark also dissects the quoted datagram (its layers come last and are skipped).
    """
    protos = (t.get("frame.protocols") or [""])[0].split(":")
    icmp_at = next((i for i, p in enumerate(protos) if p in ICMP_ERRORS), -1)
    icmp_name = protos[icmp_at] if icmp_at >= 0 else ""
    icmp_type = int(t[f"{icmp_name}.type"][0]) if icmp_name and t.get(f"{icmp_name}.type") else -1
    quoted = icmp_type in ICMP_ERRORS.get(icmp_name, ())
    outer = protos[:icmp_at] if quoted else protos
    n_ip4, n_ip6 = outer.count("ip"), outer.count("ipv6")

    def nth(name: str, count: int) -> str | None:
        """The value of the count-th occurrence (1-based) of a field; the last if count=0."""
        values = t.get(name, [])
        if not values:
            return None
        return values[count - 1] if 0 < count <= len(values) else values[-1]

    got: Exp = {
        "frame": int(t["frame.number"][0]),
        "ts_ns": int(Decimal(t["frame.time_epoch"][0]) * 10**9),
        "len": int(t["frame.len"][0]),
        "caplen": int(t["frame.cap_len"][0]),
    }
    got["truncated"] = got["caplen"] < got["len"]
    got["interface"] = int(t["frame.interface_id"][0]) if t.get("frame.interface_id") else 0
    ip_layers = [p for p in outer if p in ("ip", "ipv6")]
    if ip_layers:
        ipv = 4 if ip_layers[-1] == "ip" else 6
        got["ipv"] = ipv
        if ipv == 4:
            got["src"], got["dst"] = nth("ip.src", n_ip4), nth("ip.dst", n_ip4)
            got["ip_len"] = int(nth("ip.len", n_ip4) or 0)
            got["proto"] = int(nth("ip.proto", n_ip4) or 0)
        else:
            got["src"], got["dst"] = nth("ipv6.src", n_ip6), nth("ipv6.dst", n_ip6)
            got["ip_len"] = 40 + int(nth("ipv6.plen", n_ip6) or 0)
            got["proto"] = 50 if "esp" in outer else int(nth("ipv6.nxt", n_ip6) or 0)
    l4 = [p for p in outer if p in L4_NAMES]
    l4_name = icmp_name if quoted else (l4[-1] if l4 else "")
    if l4_name:
        got["proto"] = L4_NAMES[l4_name]
    n_tcp, n_udp = outer.count("tcp"), outer.count("udp")
    if l4_name == "tcp":
        got["sport"], got["dport"] = int(nth("tcp.srcport", n_tcp) or 0), int(
            nth("tcp.dstport", n_tcp) or 0)
        got["flags"] = int(nth("tcp.flags", n_tcp) or "0", 16)
        for key, name in (("seq", "tcp.seq_raw"), ("ack", "tcp.ack_raw"),
                          ("win", "tcp.window_size_value"), ("payload", "tcp.len"),
                          ("mss", "tcp.options.mss_val"), ("wscale", "tcp.options.wscale.shift"),
                          ("tsval", "tcp.options.timestamp.tsval")):
            value = nth(name, n_tcp)
            got[key] = int(value) if value is not None else None
        got["sack_perm"] = True if t.get("tcp.options.sack_perm") else None
        got["opts"] = [int(k) for k in t.get("tcp.option_kind", [])] or None
    elif l4_name == "udp":
        got["sport"], got["dport"] = int(nth("udp.srcport", n_udp) or 0), int(
            nth("udp.dstport", n_udp) or 0)
        got["payload"] = int(nth("udp.length", n_udp) or 0) - 8
    elif l4_name in ("icmp", "icmpv6") and t.get(f"{l4_name}.type"):
        got["icmp_type"] = int(t[f"{l4_name}.type"][0])
        got["icmp_code"] = int(t[f"{l4_name}.code"][0])
        got["payload"] = got["ip_len"] - (
            int(nth("ip.hdr_len", n_ip4) or 20) if got["ipv"] == 4 else 40) - 8
    tunnels = []
    for i, proto in enumerate(outer):
        if proto in TSHARK_TUNNELS:
            tunnels.append(TSHARK_TUNNELS[proto])
        elif proto in ("ip", "ipv6") and i and outer[i - 1] in ("ip", "ipv6"):
            tunnels.append({("ip", "ip"): "ipip", ("ip", "ipv6"): "6in4", ("ipv6", "ip"): "4in6",
                            ("ipv6", "ipv6"): "6in6"}[(outer[i - 1], proto)])
    if tunnels:
        got["tunnel"] = tunnels
    vlan = t.get("ieee8021ad.id") or t.get("vlan.id")
    if vlan:
        got["vlan"] = int(vlan[0])
    etype = t.get("vlan.etype") or t.get("eth.type") or t.get("sll.etype")
    if etype and not ip_layers:
        got["ethertype"] = f"0x{int(etype[-1], 16):04x}"
    checksum: Exp = {}
    if ip_layers and got["ipv"] == 4 and t.get("ip.checksum.status"):
        checksum["ip"] = TSHARK_STATUS[nth("ip.checksum.status", n_ip4) or ""]
    if l4_name:
        n = outer.count(l4_name) if l4_name in ("tcp", "udp") else 1
        status = nth(f"{l4_name}.checksum.status", n)
        if status is not None:
            checksum[L4_NAMES[l4_name]] = TSHARK_STATUS[status]
    if checksum:
        got["checksum"] = checksum
    reassembled_in = nth("ip.reassembled_in", 0) or nth("ipv6.reassembled.in", 0)
    if reassembled_in:
        got["frag"] = "complete" if int(reassembled_in) == got["frame"] else "part"
    if t.get("ip.reassembled.length"):
        got["frag"] = "complete"
        got["ip_len"] = int(nth("ip.hdr_len", n_ip4) or 20) + int(t["ip.reassembled.length"][-1])
    if t.get("ipv6.reassembled.length"):
        got["frag"] = "complete"
        got["ip_len"] = 40 + int(t["ipv6.reassembled.length"][-1])
    got["_experts"] = list(dict.fromkeys(t.get("_ws.expert.message", [])))
    got["_malformed"] = bool(t.get("_ws.malformed"))
    return got


def documented_difference(exp: Exp, key: str, note: str | None) -> str | None:
    """Why tshark may differ on this key by a rule of docs/decoding.md (None: it must not)."""
    if note:
        return note
    if exp.get("frag") == "part" and key in ("proto", "sport", "dport"):
        return "part fragment: portlens attributes ports, tshark shows no transport"
    if exp.get("frag") == "complete" and key == "checksum":
        return "reassembled datagram: portlens leaves transport checksums unverified"
    if exp.get("malformed") is not None:
        return "malformed frame: portlens' own rule"
    return None


def check_tshark(out_dir: Path) -> int:
    """Compare every expected value tshark also reports; print the differences."""
    if shutil.which("tshark") is None:
        print("tshark not found", file=sys.stderr)
        return 2
    unexpected = documented = 0
    for spec_path in sorted((out_dir / "expected").glob("*.json")):
        spec = json.loads(spec_path.read_text())
        rows = tshark_rows(out_dir / spec["file"])
        if len(rows) != len(spec["frames"]):
            print(f"{spec['file']}: tshark sees {len(rows)} frames, expected {len(spec['frames'])}")
            unexpected += 1
        for exp, t in zip(spec["frames"], rows, strict=False):
            got = tshark_view(t)
            where = f"{spec['file']} #{exp['frame']}"
            for key, value in exp.items():
                if key in ("linktype", "malformed"):
                    continue  # tshark has no such field
                if key in ("ethertype", "tunnel") and value is None:
                    continue
                if got.get(key) == value:
                    continue
                note = spec.get("tshark_notes", {}).get(str(exp["frame"]))
                reason = documented_difference(exp, key, note)
                line = f"{where} {key}: expected {value!r}, tshark {got.get(key)!r}"
                if reason:
                    documented += 1
                    print(f"  known   {line}  ({reason})")
                else:
                    unexpected += 1
                    print(f"  DIFFERS {line}")
            if exp.get("malformed") is not None:
                experts = "; ".join(got["_experts"])[:160] or "(no expert info)"
                print(f"  review  {where} {exp['malformed']}: tshark says {experts}")
            elif got["_malformed"] and not spec.get("tshark_notes", {}).get(str(exp["frame"])):
                unexpected += 1
                print(f"  DIFFERS {where}: tshark says malformed: {'; '.join(got['_experts'])}")
    print(f"{unexpected} unexpected difference(s), {documented} documented one(s)")
    return 1 if unexpected else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory to write (default: captures/ of this checkout)")
    parser.add_argument("--check-tshark", action="store_true",
                        help="compare the expected values in --out with tshark's decoding")
    args = parser.parse_args(argv)
    if args.check_tshark:
        return check_tshark(args.out)
    caps = write_all(args.out)
    total = sum(len(c.data) for c in caps)
    print(f"wrote {len(caps)} captures ({total} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
