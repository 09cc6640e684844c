"""Tracker rules the second corpus batch exercises, on crafted frames: TSO datagrams (IPv4
total length 0) and tunnelled packets with nothing to track inside (docs/zeek-rules.md §1,
§8.2, §12)."""

from __future__ import annotations

import struct
from pathlib import Path

from scapy.contrib.gtp import GTP_U_Header
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Packet, Raw
from scapy.utils import RawPcapWriter

from portlens.decode import decode_capture
from portlens.reference.decode import ones_sum
from portlens.track.model import Connection
from portlens.track.tracker import Tracker, TrackerConfig

E = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")


def conns(tmp_path: Path, frames: list[Packet | bytes],
          config: TrackerConfig | None = None) -> tuple[list[Connection], Tracker]:
    path = tmp_path / "t.pcap"
    # Raw bytes, never re-dissected: once scapy.all binds a layer to port 389, rebuilding the
    # TSO frame from its fields would not give the same bytes back.
    with RawPcapWriter(str(path), linktype=1) as writer:
        for f in frames:
            writer.write(f if isinstance(f, bytes) else bytes(f))
    tracker = Tracker(config or TrackerConfig())
    out = []
    for batch in decode_capture(path):
        out += tracker.feed(batch)
    out += tracker.finish()
    return out, tracker


def tso(frame: Packet) -> bytes:
    """The frame with its IPv4 total length zeroed and the header checksum redone."""
    b = bytearray(bytes(frame))
    b[16:18] = b"\0\0"
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", 0xFFFF - ones_sum(bytes(b[14:34])))
    return bytes(b)


def handshake_and_tso_segment() -> list[Packet | bytes]:
    c, s = dict(src="10.0.0.1", dst="10.0.0.2"), dict(src="10.0.0.2", dst="10.0.0.1")
    return [
        E / IP(**c) / TCP(sport=5000, dport=389, flags="S", seq=100),
        E / IP(**s) / TCP(sport=389, dport=5000, flags="SA", seq=900, ack=101),
        E / IP(**c) / TCP(sport=5000, dport=389, flags="A", seq=101, ack=901),
        tso(E / IP(**c) / TCP(sport=5000, dport=389, flags="PA", seq=101, ack=901)
            / Raw(b"x" * 1000)),
    ]


def test_tso_datagram_adds_no_ip_bytes_with_checksums_ignored(tmp_path: Path) -> None:
    (conn,), _ = conns(tmp_path, handshake_and_tso_segment())
    assert (conn.orig_pkts, conn.orig_ip_bytes, conn.orig_bytes) == (3, 80, 1000)
    assert conn.history == "ShAD"


def test_tso_datagram_is_dropped_when_checksums_are_checked(tmp_path: Path) -> None:
    (conn,), tracker = conns(tmp_path, handshake_and_tso_segment(),
                             TrackerConfig(drop_bad_checksums=True))
    assert (conn.orig_pkts, conn.orig_ip_bytes, conn.orig_bytes) == (2, 80, 0)
    assert conn.history == "ShA"
    assert tracker.not_counted == {"IPv4 total length 0 (dropped)": 1}


GTP = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1)
TEREDO = IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=50000, dport=3544)


def test_teredo_bubbles_in_gtp_count_on_both_carriers_only(tmp_path: Path) -> None:
    bubble = E / GTP / TEREDO / IPv6(src="2001::1", dst="2001::2", nh=59)
    rows = {(c.orig_p, c.resp_p): c for c in conns(tmp_path, [bubble, bubble])[0]}
    assert set(rows) == {(2152, 2152), (50000, 3544)}
    gtp, teredo = rows[(2152, 2152)], rows[(50000, 3544)]
    assert (gtp.orig_pkts, gtp.orig_ip_bytes, gtp.tunnel_parents) == (2, 2 * 104, [])
    assert (teredo.orig_pkts, teredo.orig_ip_bytes) == (2, 2 * 68)
    assert teredo.tunnel_parents == [gtp.uid]


def test_broken_inner_header_counts_on_udp_carrier_not_under_gre(tmp_path: Path) -> None:
    cut = E / GTP / IP(src="10.1.1.1", dst="10.2.2.2", proto=6) / Raw(b"\0" * 8)
    (conn,), tracker = conns(tmp_path, [cut])
    assert (conn.orig_p, conn.resp_p, conn.orig_pkts) == (2152, 2152, 1)
    assert tracker.not_counted == {}
    gre = E / IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / IP(
        src="10.1.1.1", dst="10.2.2.2", proto=6) / Raw(b"\0" * 8)
    found, tracker = conns(tmp_path, [gre])
    assert found == []
    assert tracker.not_counted == {"malformed: tcp-header-short": 1}
