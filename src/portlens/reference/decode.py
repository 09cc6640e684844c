"""The slow, obvious decoder: one frame at a time, one header at a time, with ``struct``.

It exists to be read and to judge the compiled decoder (crates/core/src/decode): both follow
docs/decoding.md, and tests/test_rust_decoder.py asserts they agree on every column of every
frame. So this module
favours a straight line from the rules to the code over speed, and never borrows a third-party
parser whose own leniencies would decide a result the rules decide.

Decoding a frame walks down the layers, collecting column values for its row. A layer that
cannot go on raises ``_StopError`` with the malformed reason (or none, when snaplen merely cut the
frame); the values gathered so far stay in the row, as the rules require.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import replace
from sys import byteorder

import numpy as np

from portlens.decode import tunnels as tn
from portlens.decode.app import DNS_PORTS, NTP_PORT, dns_qr, ntp_mode
from portlens.decode.fields import (
    CSUM_BAD,
    CSUM_GOOD,
    CSUM_UNVERIFIED,
    OPT_KINDS_MAX,
    SUB_CARRIER,
    V4_MAPPED_PREFIX,
)
from portlens.decode.malformed import Malformed
from portlens.decode.packets import PacketBatch
from portlens.reference.fragments import FragmentRecord
from portlens.sources import linktypes as lt
from portlens.sources.frames import FrameBatch

Value = int | bytes | list[int]

VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
MPLS_ETHERTYPES = frozenset({0x8847, 0x8848})
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558
"""Transparent Ethernet bridging: the GRE / Geneve protocol for an Ethernet frame inside."""
ETH_PPP = 0x880B
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
NULL_AF_INET = 2
NULL_AF_INET6 = frozenset({10, 24, 28, 30})
"""AF_INET6 differs by OS (Linux 10, BSDs 24/28/30); a capture file may come from any."""
FDDI_HEADER = 13
"""Frame control, destination and source MAC (bit-swapped on FDDI: irrelevant here)."""
LLC_SNAP = b"\xaa\xaa\x03"
"""802.2 LLC DSAP, SSAP and control of a SNAP frame, followed by an OUI and an ethertype."""
LLC_SNAP_HEADER = 8
RAW_LINKTYPES = frozenset({lt.RAW_12, lt.RAW_14, lt.RAW})
PPP_LINKTYPES = frozenset({lt.PPP, lt.PPP_SERIAL})

IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPV6_HOPOPTS = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_DSTOPTS = 60
IPV6_EXT_HEADERS = frozenset({IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_AH, IPV6_DSTOPTS})
IPV6_EXT_MAX = 8

ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
ICMP4_ECHO = frozenset({0, 8})
ICMP6_ECHO = frozenset({128, 129})

TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WSCALE = 3
TCPOPT_SACK_PERM = 4
TCPOPT_SACK = 5
TCPOPT_TIMESTAMP = 8

TEREDO_PORT = 3544

COUNT_MAX = 0xFF
"""vlan_count / mpls_count are uint8: a frame made of thousands of tags saturates, not wraps."""

IP_COLUMNS = ("ip_version", "src", "dst", "proto", "ip_len", "ip_len_zero", "ip_hlen", "ttl",
              "ip_id", "ip_csum")
"""Written by the innermost IP header decoded: an inner one replaces the carrier's, but a tunnel
whose inside holds no (valid) IP header leaves the carrier's in place."""
TRANSPORT_COLUMNS = ("l4", "sport", "dport", "payload", "udp_len", "l4_csum", "dns_qr",
                     "ntp_mode")
"""What a tunnel carrier's UDP header wrote: entering the tunnel clears them (its ports survive
in out_sport / out_dport), as they belong to no packet the row now describes."""


class _StopError(Exception):
    """Decoding of this frame ends here; ``reason`` is a Malformed code or 0 (cut by snaplen)."""

    def __init__(self, reason: int) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_reference(frames: FrameBatch) -> tuple[PacketBatch, list[FragmentRecord]]:
    """Decode every frame on its own; return the rows and the fragments for the Reassembler.

    Never raises on frame contents: whatever the bytes, a row gets the columns decoded before
    the point where the bytes stopped making sense, and a ``malformed`` reason saying why.
    """
    n = len(frames)
    batch = PacketBatch.allocate(n)
    batch.frame[:] = frames.frame
    batch.ts_ns[:] = frames.ts_ns
    batch.wirelen[:] = frames.wirelen
    batch.caplen[:] = frames.caplen
    batch.linktype[:] = frames.linktype
    batch.interface[:] = frames.interface
    batch.truncated[:] = frames.caplen < frames.wirelen
    records: list[FragmentRecord] = []
    extra: list[tuple[int, dict[str, Value]]] = []
    for i in range(n):
        frame = _Frame(frames.frame_bytes(i), int(frames.wirelen[i]), i, records)
        frame.decode(int(frames.linktype[i]))
        frame.write(batch)
        # The middle carriers of three or more tunnels: rows of their own after the frame's.
        extra.extend((i, {**carrier, "sub": SUB_CARRIER}) for carrier in frame.carriers[:-1])
    if not extra:
        return batch, records
    return _with_extra_rows(batch, records, extra)


def _with_extra_rows(batch: PacketBatch, records: list[FragmentRecord],
                     extra: list[tuple[int, dict[str, Value]]]
                     ) -> tuple[PacketBatch, list[FragmentRecord]]:
    """``batch`` with each extra row (frame index, values) after its frame's row, and the
    fragment records pointing at their rows' new places."""
    n = len(batch)
    more = PacketBatch.allocate(len(extra))
    for name in ("frame", "ts_ns", "wirelen", "caplen", "linktype", "interface", "truncated"):
        getattr(more, name)[:] = getattr(batch, name)[[i for i, _ in extra]]
    for k, (_, values) in enumerate(extra):
        _write_row(more, k, values)
    order: list[int] = []
    place = [0] * n
    pending = iter(enumerate(extra))
    nxt = next(pending, None)
    for i in range(n):
        place[i] = len(order)
        order.append(i)
        while nxt is not None and nxt[1][0] == i:
            order.append(n + nxt[0])
            nxt = next(pending, None)
    out = PacketBatch.concat([batch, more]).take(np.asarray(order, dtype=np.intp))
    return out, [replace(rec, row=place[rec.row]) for rec in records]


def _write_row(batch: PacketBatch, i: int, values: dict[str, Value]) -> None:
    for name, value in values.items():
        column = getattr(batch, name)
        if isinstance(value, bytes):
            column[i] = np.frombuffer(value, dtype=np.uint8)
        elif isinstance(value, list):
            column[i, : len(value)] = value
        else:
            column[i] = value


def ones_sum(data: bytes, start: int = 0) -> int:
    """RFC 1071 one's-complement sum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    words = array("H", data)
    if byteorder == "little":
        words.byteswap()
    total = start + sum(words)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _status(total: int) -> int:
    """Data that includes its own correct checksum sums to 0xffff (negative zero)."""
    return CSUM_GOOD if total == 0xFFFF else CSUM_BAD


class _Frame:
    """One frame on its way down the layers, and the row values found so far."""

    def __init__(self, data: bytes, wirelen: int, row: int, records: list[FragmentRecord]):
        self.b = data
        self.cap = len(data)
        self.wire = max(wirelen, len(data))
        """Lengths are judged against the wire length; a record claiming fewer bytes on the wire
        than it captured is taken at its captured length, as tshark does."""
        self.cut = self.cap < wirelen
        self.row = row
        self.records = records
        self.v: dict[str, Value] = {}
        self.depth = 0
        self.tunnels = 0
        self.pending: tuple[int, tuple[int, int] | None, dict[str, Value]] | None = None
        self.carriers: list[dict[str, Value]] = []
        """The row at the carrier of every tunnel crossed after the first: the last is
        car_*'s, those before it the middle carriers, rows of their own."""
        """A tunnel entered whose inside has not shown an IP header yet: its kind, the carrier's
        UDP ports, and the row as it was at the carrier (restored if no IP header follows)."""
        self.vlan_count = 0
        self.mpls_count = 0
        # The innermost IP layer, for pseudo-headers and the outer columns of a tunnel.
        self.ip_version = 0
        self.ip_src = b""
        self.ip_dst = b""
        self.pseudo_dst = b""
        """Destination for transport pseudo-headers: a routing header's final one if any."""

    # --- plumbing ---------------------------------------------------------------------------

    def write(self, batch: PacketBatch) -> None:
        _write_row(batch, self.row, self.v)

    def decode(self, linktype: int) -> None:
        reason = 0
        try:
            self.link(linktype)
        except _StopError as stop:
            reason = stop.reason
        if self.pending is not None:
            # No IP layer inside the last tunnel (ARP in VXLAN, a broken inner header): the row
            # stays the carrier's packet, as for a GRE protocol that is not descended.
            self.v = self.pending[2]
        if reason:
            self.v["malformed"] = reason

    def need(self, end: int, reason: Malformed) -> None:
        """Bytes up to ``end`` must be captured; if not, stop (malformed only if not snaplen)."""
        if end > self.cap:
            raise _StopError(0 if self.cut else reason)

    def need_within(self, end: int, limit: int, reason: Malformed) -> None:
        """A header inside an enclosing length (IP payload, UDP payload) must end within it:
        past the enclosing header's own length it is malformed whatever snaplen kept."""
        if end > limit:
            raise _StopError(reason)
        self.need(end, reason)

    def u16(self, pos: int) -> int:
        return int.from_bytes(self.b[pos : pos + 2], "big")

    def u32(self, pos: int) -> int:
        return int.from_bytes(self.b[pos : pos + 4], "big")

    # --- link layer ---------------------------------------------------------------------------

    def link(self, linktype: int) -> None:
        if linktype == lt.ETHERNET:
            self.ethernet(0)
        elif linktype == lt.LINUX_SLL:
            self.need(16, Malformed.LINK_HEADER_SHORT)
            self.ethertype_chain(16, self.u16(14))
        elif linktype == lt.LINUX_SLL2:
            self.need(20, Malformed.LINK_HEADER_SHORT)
            self.ethertype_chain(20, self.u16(0))
        elif linktype in (lt.NULL, lt.LOOP):
            self.need(4, Malformed.LINK_HEADER_SHORT)
            family = int.from_bytes(self.b[:4], "big")
            if linktype == lt.NULL:
                little = int.from_bytes(self.b[:4], "little")
                family = little if little <= 0xFFFF else family
            if family == NULL_AF_INET:
                self.ipv4(4)
            elif family in NULL_AF_INET6:
                self.ipv6(4)
        elif linktype in RAW_LINKTYPES:
            self.need(1, Malformed.LINK_HEADER_SHORT)
            self.ip_by_nibble(0, None)
        elif linktype == lt.IPV4:
            self.ipv4(0)
        elif linktype == lt.IPV6:
            self.ipv6(0)
        elif linktype in PPP_LINKTYPES:
            self.ppp(0)
        elif linktype == lt.FDDI:
            self.need(FDDI_HEADER, Malformed.LINK_HEADER_SHORT)
            self.llc(FDDI_HEADER)
        # Any other link type is not decoded: no IP, not malformed.

    def llc(self, pos: int) -> None:
        """802.2 LLC: only SNAP (AA AA 03, OUI, ethertype) carries an ethertype; any other
        SAP (STP, NetBIOS, IPX...) is not IP."""
        self.need(pos + 3, Malformed.LINK_HEADER_SHORT)
        if self.b[pos : pos + 3] != LLC_SNAP:
            return
        self.need(pos + LLC_SNAP_HEADER, Malformed.LINK_HEADER_SHORT)
        self.ethertype_chain(pos + LLC_SNAP_HEADER, self.u16(pos + 6))

    def ip_by_nibble(self, pos: int, otherwise: Malformed | None) -> None:
        """IP whose version only its first nibble tells (raw links, after MPLS)."""
        version = self.b[pos] >> 4
        if version == 4:
            self.ipv4(pos)
        elif version == 6:
            self.ipv6(pos)
        elif otherwise is not None:
            raise _StopError(otherwise)

    def ethernet(self, pos: int) -> None:
        self.need(pos + 14, Malformed.LINK_HEADER_SHORT)
        self.ethertype_chain(pos + 14, self.u16(pos + 12))

    def ethertype_chain(self, pos: int, ethertype: int) -> None:
        self.v["ethertype"] = ethertype
        while ethertype in VLAN_TPIDS:
            self.need(pos + 4, Malformed.VLAN_TAG_SHORT)
            if "vlan" not in self.v:
                self.v["vlan"] = self.u16(pos) & 0x0FFF
            self.vlan_count += 1
            self.v["vlan_count"] = min(self.vlan_count, COUNT_MAX)
            ethertype = self.u16(pos + 2)
            self.v["ethertype"] = ethertype
            pos += 4
        if ethertype in MPLS_ETHERTYPES:
            while True:
                self.need(pos + 4, Malformed.MPLS_LABEL_SHORT)
                self.mpls_count += 1
                self.v["mpls_count"] = min(self.mpls_count, COUNT_MAX)
                bottom = self.b[pos + 2] & 0x01
                pos += 4
                if bottom:
                    break
            self.need(pos + 1, Malformed.MPLS_PAYLOAD_UNKNOWN)
            self.ip_by_nibble(pos, Malformed.MPLS_PAYLOAD_UNKNOWN)
        elif ethertype == ETH_PPPOE_SESSION:
            self.need(pos + 6, Malformed.PPPOE_HEADER_SHORT)
            self.ppp_protocol(pos + 6)
        elif ethertype == ETH_IPV4:
            self.ipv4(pos)
        elif ethertype == ETH_IPV6:
            self.ipv6(pos)
        # Any other ethertype (ARP, PPPoE discovery, LLDP, an 802.3 length...) is not IP.

    def ppp(self, pos: int) -> None:
        """PPP framing (DLT_PPP, PPP-HDLC, GRE 0x880b): optional ff 03, then the protocol."""
        if self.b[pos : pos + 2] == b"\xff\x03":
            pos += 2
        self.ppp_protocol(pos)

    def ppp_protocol(self, pos: int) -> None:
        self.need(pos + 2, Malformed.PPP_HEADER_SHORT)
        protocol = self.u16(pos)
        self.v["ppp_proto"] = protocol
        if protocol == PPP_IPV4:
            self.ipv4(pos + 2)
        elif protocol == PPP_IPV6:
            self.ipv6(pos + 2)

    # --- IP -------------------------------------------------------------------------------------

    def ipv4(self, pos: int) -> None:
        b = self.b
        self.need(pos + 20, Malformed.IPV4_HEADER_SHORT)
        if b[pos] >> 4 != 4:
            raise _StopError(Malformed.IPV4_VERSION_MISMATCH)
        hlen = (b[pos] & 0x0F) * 4
        if hlen < 20:
            raise _StopError(Malformed.IPV4_IHL_INVALID)
        total = self.u16(pos + 2)
        on_wire = self.wire - pos
        # Total length 0 is TSO: the capturing host handed the NIC a datagram with no length yet.
        ip_len = on_wire if total == 0 else total
        src, dst = b[pos + 12 : pos + 16], b[pos + 16 : pos + 20]
        proto = b[pos + 9]
        ident = self.u16(pos + 4)
        flags_offset = self.u16(pos + 6)
        more = bool(flags_offset & 0x2000)
        frag_offset = (flags_offset & 0x1FFF) * 8
        # The fixed header is decoded (and its checksum checked, as tshark does); a length that
        # contradicts the frame leaves these fields in the row and stops there.
        self.new_ip_layer(
            ip_version=4,
            src=V4_MAPPED_PREFIX + src,
            dst=V4_MAPPED_PREFIX + dst,
            proto=proto,
            ip_len=ip_len,
            ip_len_zero=total == 0,
            ip_hlen=hlen,
            ttl=b[pos + 8],
            ip_id=ident,
            # Options are skipped, so only the checksum needs them captured.
            ip_csum=(_status(ones_sum(b[pos : pos + hlen])) if pos + hlen <= self.cap
                     else CSUM_UNVERIFIED),
        )
        if ip_len < hlen or ip_len > on_wire:
            raise _StopError(Malformed.IPV4_TOTAL_LENGTH_INVALID)
        self.ip_version, self.ip_src, self.ip_dst, self.pseudo_dst = 4, src, dst, dst
        fragment = more or frag_offset != 0
        if fragment:
            self.records.append(
                FragmentRecord(
                    row=self.row,
                    key=bytes([4]) + V4_MAPPED_PREFIX + src + V4_MAPPED_PREFIX + dst
                    + bytes([proto]) + ident.to_bytes(4, "big"),
                    offset=frag_offset,
                    length=ip_len - hlen,
                    more=more,
                    unfrag_len=hlen,
                )
            )
            if frag_offset != 0:
                return  # no transport header in a non-first fragment
        self.transport(pos, hlen, ip_len, proto, fragment)

    def ipv6(self, pos: int) -> None:
        b = self.b
        self.need(pos + 40, Malformed.IPV6_HEADER_SHORT)
        if b[pos] >> 4 != 6:
            raise _StopError(Malformed.IPV6_VERSION_MISMATCH)
        payload_len = self.u16(pos + 4)
        nh = b[pos + 6]
        on_wire = self.wire - pos
        # Payload length 0 (but for No Next Header) is a jumbogram or TSO: the frame's length.
        ip_len = on_wire if payload_len == 0 and nh != IPPROTO_NONE else 40 + payload_len
        src, dst = b[pos + 8 : pos + 24], b[pos + 24 : pos + 40]
        self.new_ip_layer(ip_version=6, src=src, dst=dst, ttl=b[pos + 7], ip_len=ip_len)
        if ip_len < 40 or ip_len > on_wire:
            raise _StopError(Malformed.IPV6_PAYLOAD_LENGTH_INVALID)
        self.ip_version, self.ip_src, self.ip_dst, self.pseudo_dst = 6, src, dst, dst

        off = 40  # relative to the IPv6 header
        count = 0
        fragment = False
        while nh in IPV6_EXT_HEADERS:
            # proto / ip_hlen say where the chain stopped should it stop here.
            self.v.update(proto=nh, ip_hlen=off)
            count += 1
            if count > IPV6_EXT_MAX:
                raise _StopError(Malformed.IPV6_EXT_HEADER_INVALID)
            start = pos + off
            self.need_within(start + 8, pos + ip_len, Malformed.IPV6_EXT_HEADER_INVALID)
            if nh == IPV6_FRAGMENT:
                length = 8
            elif nh == IPV6_AH:
                length = (b[start + 1] + 2) * 4
            else:
                length = (b[start + 1] + 1) * 8
            self.need_within(start + length, pos + ip_len, Malformed.IPV6_EXT_HEADER_INVALID)
            if nh == IPV6_ROUTING:
                self.routing_final_destination(start, length)
            elif nh == IPV6_FRAGMENT and not fragment:
                ident = self.u32(start + 4)
                self.v["ip_id"] = ident
                offset_field = self.u16(start + 2)
                frag_offset = offset_field & 0xFFF8
                more = bool(offset_field & 0x0001)
                if more or frag_offset != 0:
                    fragment = True
                    self.records.append(
                        FragmentRecord(
                            row=self.row,
                            key=bytes([6]) + src + dst + bytes([b[start]])
                            + ident.to_bytes(4, "big"),
                            offset=frag_offset,
                            length=ip_len - (off + 8),
                            more=more,
                            unfrag_len=off,
                        )
                    )
                    if frag_offset != 0:
                        self.v.update(proto=b[start], ip_hlen=off + 8)
                        return
            nh = b[start]
            off += length
        self.v.update(proto=nh, ip_hlen=off)
        if nh in (IPPROTO_ESP, IPPROTO_NONE):
            return
        self.transport(pos, off, ip_len, nh, fragment)

    def new_ip_layer(self, **columns: Value) -> None:
        """An IP header (the first, or one inside a tunnel) takes over the IP columns."""
        if self.pending is not None:
            self.cross_tunnel()
        for name in IP_COLUMNS:
            self.v.pop(name, None)
        self.v.update(columns)

    def routing_final_destination(self, start: int, length: int) -> None:
        """RFC 8200 §8.1: while segments are left, the pseudo-header carries the final
        destination, which the routing header holds (tshark 4.0 validates with it too)."""
        routing_type, segments_left = self.b[start + 2], self.b[start + 3]
        if segments_left == 0:
            return
        if routing_type in (0, 2) and length >= 24:
            self.pseudo_dst = self.b[start + length - 16 : start + length]
        elif routing_type == 4 and length >= 24:
            self.pseudo_dst = self.b[start + 8 : start + 24]  # segment list [0]

    # --- transport ------------------------------------------------------------------------------

    def transport(self, pos: int, hlen: int, ip_len: int, proto: int, fragment: bool) -> None:
        start, end = pos + hlen, pos + ip_len
        if proto == IPPROTO_TCP:
            self.tcp(start, end, fragment)
        elif proto == IPPROTO_UDP:
            self.udp(start, end, fragment)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            self.icmp(start, end, proto, fragment)
        elif fragment:
            return  # a tunnel's inner packet is incomplete in a fragment: not descended
        elif proto in (IPPROTO_IPIP, IPPROTO_IPV6):
            inner4 = proto == IPPROTO_IPIP
            if self.ip_version == 4:
                kind = tn.TUNNEL_IPIP if inner4 else tn.TUNNEL_6IN4
            else:
                kind = tn.TUNNEL_4IN6 if inner4 else tn.TUNNEL_6IN6
            self.enter_tunnel(kind, None)
            if inner4:
                self.ipv4(start)
            else:
                self.ipv6(start)
        elif proto == IPPROTO_GRE:
            self.gre(start, end)

    def pseudo_header_sum(self, proto: int, length: int) -> int:
        return ones_sum(
            self.ip_src + self.pseudo_dst + length.to_bytes(4, "big") + bytes([0, 0, 0, proto])
        )

    def transport_checksum(self, start: int, end: int, proto: int, fragment: bool) -> int:
        """Status of a checksum covering bytes [start, end) (+ pseudo-header unless ICMP)."""
        if fragment or end > self.cap:
            return CSUM_UNVERIFIED
        initial = 0 if proto == IPPROTO_ICMP else self.pseudo_header_sum(proto, end - start)
        return _status(ones_sum(self.b[start:end], initial))

    def tcp(self, start: int, end: int, fragment: bool) -> None:
        b = self.b
        self.need_within(start + 20, end, Malformed.TCP_HEADER_SHORT)
        doff = (b[start + 12] >> 4) * 4
        self.v.update(
            l4=IPPROTO_TCP,
            sport=self.u16(start),
            dport=self.u16(start + 2),
            seq=self.u32(start + 4),
            ack=self.u32(start + 8),
            tcp_hlen=doff,
            tcp_flags=self.u16(start + 12) & 0x0FFF,
            win=self.u16(start + 14),
            urp=self.u16(start + 18),
            # what the checksum covers comes from the IP header, whatever the data offset says
            l4_csum=self.transport_checksum(start, end, IPPROTO_TCP, fragment),
        )
        if doff < 20 or doff > end - start:
            raise _StopError(Malformed.TCP_OFFSET_INVALID)
        self.v["payload"] = end - start - doff
        self.tcp_options(start + 20, start + doff)

    def tcp_options(self, pos: int, end: int) -> None:
        """Options in [pos, end) as far as captured; see docs/decoding.md (*TCP*)."""
        b = self.b
        limit = min(end, self.cap)
        kinds: list[int] = []
        try:
            while pos < limit:
                kind = b[pos]
                kinds.append(kind)
                if kind == TCPOPT_EOL:
                    # tshark 4.0 lists each zero byte after EOL as another EOL, up to the first
                    # non-zero (non-zero padding it flags and does not list).
                    pos += 1
                    while pos < limit and b[pos] == 0:
                        kinds.append(TCPOPT_EOL)
                        pos += 1
                    break
                if kind == TCPOPT_NOP:
                    pos += 1
                    continue
                if pos + 1 >= end:
                    raise _StopError(Malformed.TCP_OPTION_INVALID)  # no room for the length byte
                if pos + 1 >= self.cap:
                    break  # the length byte was cut by snaplen
                length = b[pos + 1]
                if length < 2 or pos + length > end:
                    raise _StopError(Malformed.TCP_OPTION_INVALID)
                if pos + length > self.cap:
                    break  # the value was cut by snaplen: kind listed, value not taken
                self.tcp_option_value(kind, pos, length)
                pos += length
        finally:
            self.v["opt_count"] = len(kinds)
            self.v["opt_kinds"] = kinds[:OPT_KINDS_MAX]

    def tcp_option_value(self, kind: int, pos: int, length: int) -> None:
        if kind == TCPOPT_MSS and length == 4:
            self.v["mss"] = self.u16(pos + 2)
        elif kind == TCPOPT_WSCALE and length == 3:
            self.v["wscale"] = self.b[pos + 2]
        elif kind == TCPOPT_SACK_PERM and length == 2:
            self.v["sack_perm"] = True
        elif kind == TCPOPT_TIMESTAMP and length == 10:
            self.v.update(has_ts=True, tsval=self.u32(pos + 2), tsecr=self.u32(pos + 6))
        elif kind == TCPOPT_SACK and length in (10, 18, 26, 34):
            blocks = (length - 2) // 8
            edges = [self.u32(pos + 2 + 4 * k) for k in range(2 * blocks)]
            self.v.update(sack_count=blocks, sack=edges + [0] * (8 - len(edges)))

    def udp(self, start: int, end: int, fragment: bool) -> None:
        self.need_within(start + 8, end, Malformed.UDP_HEADER_SHORT)
        sport, dport, udp_len, checksum = struct.unpack_from("!HHHH", self.b, start)
        ip_payload = end - start
        # A first fragment's UDP length counts the whole datagram, past this fragment's end.
        valid_length = udp_len >= 8 and (fragment or udp_len <= ip_payload)
        if fragment or udp_len < 8:
            status = CSUM_UNVERIFIED  # a length below 8: tshark stops before the checksum
        elif checksum == 0:
            # None sent (IPv4); forbidden over IPv6 (RFC 8200 §8.1), whatever the length says.
            status = CSUM_UNVERIFIED if self.ip_version == 4 else CSUM_BAD
        elif not valid_length:
            status = CSUM_UNVERIFIED  # what the checksum covers is unknown
        else:
            status = self.transport_checksum(start, start + udp_len, IPPROTO_UDP, False)
        self.v.update(
            l4=IPPROTO_UDP, sport=sport, dport=dport, udp_len=udp_len, l4_csum=status,
            payload=(udp_len if valid_length else ip_payload) - 8,
        )
        if not valid_length:
            raise _StopError(Malformed.UDP_LENGTH_INVALID)
        if not fragment:
            # Captured whole: what Zeek's DNS and NTP analyzers read. An IPv4 total length of
            # 0 (TSO) hands them a negative length (IP_Hdr::PayloadLen() is 0), so nothing.
            if end <= self.cap and not self.v.get("ip_len_zero"):
                body = bytes(self.b[start + 8: end])
                if sport in DNS_PORTS or dport in DNS_PORTS:
                    self.v["dns_qr"] = dns_qr(body)
                if NTP_PORT in (sport, dport):
                    self.v["ntp_mode"] = ntp_mode(body)
            self.udp_tunnel(start + 8, start + udp_len, sport, dport)

    def icmp(self, start: int, end: int, proto: int, fragment: bool) -> None:
        b = self.b
        self.need_within(start + 8, end, Malformed.ICMP_HEADER_SHORT)
        icmp_type, code = b[start], b[start + 1]
        self.v.update(
            l4=proto,
            icmp_type=icmp_type,
            icmp_code=code,
            payload=end - start - 8,
            l4_csum=self.transport_checksum(start, end, proto, fragment),
        )
        echo, errors = (
            (ICMP4_ECHO, ICMP4_ERRORS) if proto == IPPROTO_ICMP else (ICMP6_ECHO, ICMP6_ERRORS)
        )
        if icmp_type in echo:
            self.v["icmp_id"] = self.u16(start + 4)
        elif icmp_type in errors:
            self.quoted(start + 8, min(end, self.cap), 4 if proto == IPPROTO_ICMP else 6)

    def quoted(self, pos: int, limit: int, version: int) -> None:
        """The IP header an ICMP error quotes: all q_* columns, or none (q_valid False).

        Not a layer of the row: a quote that stops short is not malformed, just not valid.
        """
        b = self.b
        if version == 4:
            if pos + 20 > limit or b[pos] >> 4 != 4 or (b[pos] & 0x0F) < 5:
                return
            hlen = (b[pos] & 0x0F) * 4
            src = V4_MAPPED_PREFIX + b[pos + 12 : pos + 16]
            dst = V4_MAPPED_PREFIX + b[pos + 16 : pos + 20]
            proto = b[pos + 9]
            first = (self.u16(pos + 6) & 0x1FFF) == 0
            ports_at = pos + hlen
        else:
            if pos + 40 > limit or b[pos] >> 4 != 6:
                return
            src, dst = b[pos + 8 : pos + 24], b[pos + 24 : pos + 40]
            proto = b[pos + 6]
            off = pos + 40
            first = True
            for _ in range(IPV6_EXT_MAX):
                if proto not in IPV6_EXT_HEADERS:
                    break
                if off + 8 > limit:
                    return
                if proto == IPV6_FRAGMENT:
                    length = 8
                    first = first and (self.u16(off + 2) & 0xFFF8) == 0
                elif proto == IPV6_AH:
                    length = (b[off + 1] + 2) * 4
                else:
                    length = (b[off + 1] + 1) * 8
                proto = b[off]
                off += length
            else:
                if proto in IPV6_EXT_HEADERS:
                    return
            ports_at = off
        sport = dport = 0
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            if not first or ports_at + 4 > limit:
                return  # the quoted transport ports are not there: cannot attribute
            sport, dport = self.u16(ports_at), self.u16(ports_at + 2)
        self.v.update(
            q_valid=True, q_src=src, q_dst=dst, q_proto=proto, q_sport=sport, q_dport=dport
        )

    # --- tunnels --------------------------------------------------------------------------------

    def enter_tunnel(self, kind: int, udp_ports: tuple[int, int] | None) -> None:
        """Start decoding a tunnel's inside; it counts once an IP header is found there
        (tunnel_depth counts the encapsulations crossed to reach the innermost IP layer)."""
        if self.depth >= tn.MAX_TUNNEL_DEPTH:
            raise _StopError(Malformed.TUNNEL_TOO_DEEP)
        self.pending = (kind, udp_ports, dict(self.v))

    def cross_tunnel(self) -> None:
        """The pending tunnel holds an IP header: the carrier moves to out_* (first tunnel)
        or car_* (any later one) and the inner layers take the IP and transport columns."""
        assert self.pending is not None
        kind, udp_ports, saved = self.pending
        self.pending = None
        if self.depth > 0:
            self.carriers.append(saved)
        if self.depth == 0:
            self.v.update(
                out_src=self.v["src"],
                out_dst=self.v["dst"],
                out_proto=self.v["proto"],
                out_ip_len=self.v["ip_len"],
            )
            if udp_ports is not None:
                self.v.update(out_sport=udp_ports[0], out_dport=udp_ports[1])
        else:
            for name in ("car_sport", "car_dport"):
                self.v.pop(name, None)
            self.v.update(
                car_src=self.v["src"],
                car_dst=self.v["dst"],
                car_proto=self.v["proto"],
                car_ip_len=self.v["ip_len"],
            )
            if udp_ports is not None:
                self.v.update(car_sport=udp_ports[0], car_dport=udp_ports[1])
        self.tunnels |= kind << (4 * self.depth)
        self.depth += 1
        self.v.update(tunnel=self.tunnels, tunnel_depth=self.depth)
        for name in TRANSPORT_COLUMNS:
            self.v.pop(name, None)

    def gre(self, start: int, end: int) -> None:
        b = self.b
        self.need_within(start + 4, end, Malformed.GRE_HEADER_INVALID)
        flags, version_byte = b[start], b[start + 1]
        version = version_byte & 0x07
        if flags & 0x40 or version > 1:  # routing present, or neither GRE nor PPTP's
            raise _StopError(Malformed.GRE_HEADER_INVALID)
        if version == 0:
            present = (flags & 0x80, flags & 0x20, flags & 0x10)  # C, K, S
        else:
            present = (flags & 0x20, flags & 0x10, version_byte & 0x80)  # K, S, A
        hlen = 4 + 4 * sum(1 for bit in present if bit)
        self.need_within(start + hlen, end, Malformed.GRE_HEADER_INVALID)
        protocol = self.u16(start + 2)
        inner = start + hlen
        if protocol not in (ETH_IPV4, ETH_IPV6, ETH_TEB, ETH_PPP):
            return  # not descended: the row stays at the GRE packet
        self.enter_tunnel(tn.TUNNEL_GRE, None)
        if protocol == ETH_IPV4:
            self.ipv4(inner)
        elif protocol == ETH_IPV6:
            self.ipv6(inner)
        elif protocol == ETH_TEB:
            self.ethernet(inner)
        else:
            self.ppp(inner)

    def udp_tunnel(self, start: int, end: int, sport: int, dport: int) -> None:
        """UDP payload [start, end) of a datagram whose ports may name a tunnel."""
        kind = tn.UDP_TUNNEL_PORTS.get(dport)
        if kind is None and sport == TEREDO_PORT:
            kind = tn.TUNNEL_TEREDO  # Teredo is recognised on either port
        ports = (sport, dport)
        if kind == tn.TUNNEL_VXLAN:
            # tshark descends whatever the flags; the I flag is not required.
            self.need_within(start + 8, end, Malformed.TUNNEL_HEADER_INVALID)
            self.enter_tunnel(kind, ports)
            self.ethernet(start + 8)
        elif kind == tn.TUNNEL_GENEVE:
            self.need_within(start + 8, end, Malformed.TUNNEL_HEADER_INVALID)
            hlen = 8 + (self.b[start] & 0x3F) * 4
            self.need_within(start + hlen, end, Malformed.TUNNEL_HEADER_INVALID)
            protocol = self.u16(start + 2)
            if protocol not in (ETH_TEB, ETH_IPV4, ETH_IPV6):
                return  # not descended, like GRE
            self.enter_tunnel(kind, ports)
            if protocol == ETH_TEB:
                self.ethernet(start + hlen)
            elif protocol == ETH_IPV4:
                self.ipv4(start + hlen)
            else:
                self.ipv6(start + hlen)
        elif kind == tn.TUNNEL_TEREDO:
            inner = self.teredo_ipv6(start, min(end, self.cap), end)
            if inner is not None:
                self.enter_tunnel(kind, ports)
                self.ipv6(inner)
        elif kind == tn.TUNNEL_GTPU:
            inner = self.gtpu_payload(start, min(end, self.cap))
            if inner is not None:
                self.enter_tunnel(kind, ports)
                self.ip_by_nibble(inner, None)

    def teredo_ipv6(self, pos: int, limit: int, end: int) -> int | None:
        """Where a plausible IPv6 header starts after Teredo's optional headers, or None."""
        b = self.b
        if pos + 4 <= limit and b[pos : pos + 2] == b"\x00\x01":
            # authentication: id length, auth length, id, auth, 8-byte nonce, confirmation
            pos += 4 + b[pos + 2] + b[pos + 3] + 8 + 1
        if pos + 2 <= limit and b[pos : pos + 2] == b"\x00\x00":
            pos += 8  # origin indication
        if pos + 6 > limit or pos + 40 > end or b[pos] >> 4 != 6:
            return None
        if pos + 40 + self.u16(pos + 4) > end:
            return None
        return pos

    def gtpu_payload(self, pos: int, limit: int) -> int | None:
        """Where the IP packet of a GTP-U G-PDU starts, or None (then it is plain UDP)."""
        b = self.b
        flags = b[pos] if pos < limit else 0
        # version 1, protocol type 1 (GTP, not GTP'), message type 0xff (G-PDU)
        if pos + 8 > limit or flags >> 5 != 1 or not flags & 0x10 or b[pos + 1] != 0xFF:
            return None
        hlen = 8
        if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension-type follow
            hlen = 12
            if pos + hlen > limit:
                return None
            next_type = b[pos + 11] if flags & 0x04 else 0
            while next_type != 0:
                if pos + hlen + 1 > limit:
                    return None
                length = b[pos + hlen] * 4
                if length == 0 or pos + hlen + length > limit:
                    return None
                next_type = b[pos + hlen + length - 1]
                hlen += length
        inner = pos + hlen
        if inner + 1 > limit or b[inner] >> 4 not in (4, 6):
            return None
        return inner
