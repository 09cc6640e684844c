"""The contract between the decoder and the tracker: PacketBatch, one row per frame (and one
more per A-MSDU subframe after the first, or per middle tunnel carrier: column ``sub``).

Every column is a numpy array of the batch's length (2-D for addresses, SACK blocks and option
kinds). Absent optional values use a sentinel, never a masked array, so every consumer can
reduce columns without branches: -1 for signed "absent" integers, 0 for flags and counts.

The compiled decoder (crates/core/src/decode) and the per-packet reference decoder
(portlens.reference.decode) both fill this shape; a test asserts they agree on every column of
every test capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from portlens.decode.fields import (
    OPT_KINDS_MAX,
    SACK_BLOCKS_MAX,
    SUB_CARRIER,
    SUB_FRAME,
)


def _col(dtype: Any, fill: int = 0, width: int = 0) -> Any:
    return field(default=None, metadata={"dtype": dtype, "fill": fill, "width": width})


@dataclass(slots=True)
class PacketBatch:
    """Decoded frames as columns. Fields without a suffix in the docs are per-frame scalars.

    Addresses (``src``, ``dst`` and the outer/quoted variants) are 16 bytes: IPv6 as is, IPv4 as
    the IPv4-mapped IPv6 address ``::ffff:a.b.c.d``, so one column serves both families and a
    flow key is a fixed-width byte string.
    """

    # --- frame ---
    frame: npt.NDArray[np.int64] = _col(np.int64)
    """1-based frame number in its source."""
    ts_ns: npt.NDArray[np.int64] = _col(np.int64)
    wirelen: npt.NDArray[np.uint32] = _col(np.uint32)
    caplen: npt.NDArray[np.uint32] = _col(np.uint32)
    linktype: npt.NDArray[np.uint16] = _col(np.uint16)
    interface: npt.NDArray[np.uint16] = _col(np.uint16)
    sub: npt.NDArray[np.uint8] = _col(np.uint8)
    """Which of its frame's rows this is. Most frames give one row, SUB_FRAME; a frame gives
    more rows right after its own for the packets of its A-MSDU subframes after the first
    (SUB_MSDU + the tunnels crossed before its 802.11 header, whose carriers that row shares
    with the frame's own) and for the tunnel carriers between out_* and car_* (SUB_CARRIER,
    three or more tunnels: the carrier datagram's IP and transport columns, counted with the
    row before it, never on its own). Frame counts count SUB_FRAME rows."""

    # --- link ---
    vlan: npt.NDArray[np.int32] = _col(np.int32, -1)
    """Outermost 802.1Q/802.1ad VLAN id, -1 if untagged."""
    vlan_count: npt.NDArray[np.uint8] = _col(np.uint8)
    mpls_count: npt.NDArray[np.uint8] = _col(np.uint8)
    ethertype: npt.NDArray[np.uint16] = _col(np.uint16)
    """The last link-layer protocol before L3 (after tags): 0x0800, 0x86dd, 0x0806 ... 0 if none.
    For PPP framing (DLT_PPP, PPPoE session) the PPP protocol is in ``ppp_proto``."""
    ppp_proto: npt.NDArray[np.uint16] = _col(np.uint16)

    # --- innermost IP ---
    ip_version: npt.NDArray[np.uint8] = _col(np.uint8)
    """4 or 6; 0 when the frame carries no IP (non-IP ethertype, unknown link type, malformed)."""
    src: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    dst: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    proto: npt.NDArray[np.uint8] = _col(np.uint8)
    """Innermost IP protocol (after IPv6 extension headers): 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6..."""
    ip_len: npt.NDArray[np.uint32] = _col(np.uint32)
    """Innermost IP datagram length from its header (IPv4 total length, IPv6 40 + payload
    length); for a FRAG_COMPLETE row the reassembled datagram's length. Zeek's *_ip_bytes."""
    ip_len_zero: npt.NDArray[np.bool_] = _col(np.bool_)
    """The innermost IPv4 header's total length was 0 (TCP segmentation offload on the
    capturing host): ip_len is then the frame's, but Zeek's *_ip_bytes add 0 (and without -C
    Zeek drops the packet)."""
    ip_hlen: npt.NDArray[np.uint16] = _col(np.uint16)
    """IP header length incl. IPv4 options / IPv6 extension headers."""
    ttl: npt.NDArray[np.uint8] = _col(np.uint8)
    """IPv4 TTL or IPv6 hop limit."""
    ip_id: npt.NDArray[np.uint32] = _col(np.uint32)
    """IPv4 identification, or the IPv6 fragment header's identification."""
    frag: npt.NDArray[np.uint8] = _col(np.uint8)
    """FRAG_NONE / FRAG_PART / FRAG_COMPLETE."""
    frag_count: npt.NDArray[np.uint16] = _col(np.uint16)
    """On a FRAG_COMPLETE row: how many fragment frames made the datagram."""

    # --- transport ---
    l4: npt.NDArray[np.uint8] = _col(np.uint8)
    """Protocol number of the transport header decoded in this row (6, 17, 1, 58), 0 if none was
    (not IP, other protocol, non-first fragment, truncated or malformed before it)."""
    sport: npt.NDArray[np.uint16] = _col(np.uint16)
    dport: npt.NDArray[np.uint16] = _col(np.uint16)
    payload: npt.NDArray[np.int32] = _col(np.int32, -1)
    """Transport payload bytes from the IP header lengths (tshark's tcp.len; UDP length - 8),
    whatever snaplen kept; -1 when there is no decoded transport header."""

    tcp_flags: npt.NDArray[np.uint16] = _col(np.uint16)
    """The 12 flag bits as tshark's tcp.flags: FIN 0x1 SYN 0x2 RST 0x4 PSH 0x8 ACK 0x10 URG 0x20
    ECE 0x40 CWR 0x80 AE(NS) 0x100, and the 3 reserved bits 0x200-0x800."""
    seq: npt.NDArray[np.uint32] = _col(np.uint32)
    ack: npt.NDArray[np.uint32] = _col(np.uint32)
    tcp_hlen: npt.NDArray[np.uint8] = _col(np.uint8)
    """TCP data offset in bytes (20..60)."""
    win: npt.NDArray[np.uint16] = _col(np.uint16)
    """Raw, unscaled window."""
    urp: npt.NDArray[np.uint16] = _col(np.uint16)
    mss: npt.NDArray[np.int32] = _col(np.int32, -1)
    wscale: npt.NDArray[np.int16] = _col(np.int16, -1)
    """Window-scale shift count as sent (not clamped), -1 if absent."""
    sack_perm: npt.NDArray[np.bool_] = _col(np.bool_)
    has_ts: npt.NDArray[np.bool_] = _col(np.bool_)
    tsval: npt.NDArray[np.uint32] = _col(np.uint32)
    tsecr: npt.NDArray[np.uint32] = _col(np.uint32)
    sack_count: npt.NDArray[np.uint8] = _col(np.uint8)
    sack: npt.NDArray[np.uint32] = _col(np.uint32, 0, SACK_BLOCKS_MAX * 2)
    """SACK blocks as (left, right) pairs: columns 2k, 2k+1 for block k < sack_count."""
    opt_count: npt.NDArray[np.uint8] = _col(np.uint8)
    opt_kinds: npt.NDArray[np.uint8] = _col(np.uint8, 0, OPT_KINDS_MAX)
    """Option kinds in header order (NOP=1 and EOL=0 included, every padding byte after EOL
    listed as EOL as tshark does); the first opt_count entries are valid."""

    udp_len: npt.NDArray[np.uint16] = _col(np.uint16)
    """The UDP header's length field (for a FRAG_COMPLETE row, of the reassembled datagram)."""
    dns_qr: npt.NDArray[np.int16] = _col(np.int16, -1)
    """UDP rows, not fragments, whose datagram was captured whole, with a DNS port (53, 137,
    5353, 5355) on either side and a payload (the IP payload less 8 bytes, as Zeek's UDP
    analyzer hands it on) that holds a DNS header: its QR bit (1 a response); -1 otherwise.
    Zeek's DNS analyzer flips on it (decode/app.py)."""
    ntp_mode: npt.NDArray[np.int16] = _col(np.int16, -1)
    """The same with port 123, when the payload parses as a standard NTP message the way
    Zeek's NTP analyzer reads it: the mode (1-5; 3 client, 4 server); -1 otherwise."""

    icmp_type: npt.NDArray[np.int16] = _col(np.int16, -1)
    icmp_code: npt.NDArray[np.int16] = _col(np.int16, -1)
    icmp_id: npt.NDArray[np.int32] = _col(np.int32, -1)
    """Identifier of ICMP/ICMPv6 echo request/reply, -1 otherwise."""
    q_valid: npt.NDArray[np.bool_] = _col(np.bool_)
    """An ICMP error quoting an IP header (+ ports when q_proto is TCP/UDP) was decoded."""
    q_src: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    q_dst: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    q_proto: npt.NDArray[np.uint8] = _col(np.uint8)
    q_sport: npt.NDArray[np.uint16] = _col(np.uint16)
    q_dport: npt.NDArray[np.uint16] = _col(np.uint16)

    # --- tunnels ---
    tunnel_depth: npt.NDArray[np.uint8] = _col(np.uint8)
    """Number of encapsulations crossed to reach the innermost IP layer."""
    tunnel: npt.NDArray[np.uint32] = _col(np.uint32)
    """Tunnel kinds, outermost first, 4 bits each from the low bits (decode.tunnels.TUNNEL_*)."""
    out_src: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    """Outermost IP source when tunnel_depth > 0 (the carrier of the outermost tunnel)."""
    out_dst: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    out_proto: npt.NDArray[np.uint8] = _col(np.uint8)
    out_sport: npt.NDArray[np.uint16] = _col(np.uint16)
    """Outer UDP ports when the outermost tunnel rides on UDP (VXLAN, Geneve, Teredo, GTP-U)."""
    out_dport: npt.NDArray[np.uint16] = _col(np.uint16)
    out_ip_len: npt.NDArray[np.uint32] = _col(np.uint32)
    car_src: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    """When tunnel_depth >= 2: the IP source of the layer that carries the innermost tunnel
    (Teredo's IPv4 inside GTP-U, say); out_* keep the outermost carrier. Zeek logs a UDP
    carrier at every depth; the carriers between these two (depth >= 3) are not kept."""
    car_dst: npt.NDArray[np.uint8] = _col(np.uint8, 0, 16)
    car_proto: npt.NDArray[np.uint8] = _col(np.uint8)
    car_sport: npt.NDArray[np.uint16] = _col(np.uint16)
    """The innermost carrier's UDP ports when the innermost tunnel rides on UDP."""
    car_dport: npt.NDArray[np.uint16] = _col(np.uint16)
    car_ip_len: npt.NDArray[np.uint32] = _col(np.uint32)

    # --- quality ---
    truncated: npt.NDArray[np.bool_] = _col(np.bool_)
    """Snaplen cut a header or payload this row needed (caplen < what the headers announce)."""
    ip_csum: npt.NDArray[np.uint8] = _col(np.uint8)
    """Innermost IPv4 header checksum status (CSUM_*)."""
    l4_csum: npt.NDArray[np.uint8] = _col(np.uint8)
    """Innermost TCP/UDP/ICMP/ICMPv6 checksum status (CSUM_*)."""
    malformed: npt.NDArray[np.uint8] = _col(np.uint8)
    """0, or a decode.malformed reason code: why decoding stopped early."""

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @classmethod
    def allocate(cls, n: int) -> PacketBatch:
        """A batch of n rows with every column at its "absent" value."""
        batch = cls()
        for f in fields(cls):
            meta = f.metadata
            shape: tuple[int, ...] = (n, meta["width"]) if meta["width"] else (n,)
            fill = meta["fill"]
            column = (np.zeros(shape, dtype=meta["dtype"]) if fill == 0  # lazily zeroed pages
                      else np.full(shape, fill, dtype=meta["dtype"]))
            setattr(batch, f.name, column)
        return batch

    @classmethod
    def column_names(cls) -> tuple[str, ...]:
        return _COLUMN_NAMES

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> PacketBatch:
        # Not PacketBatch(): its defaults would allocate every column only to be replaced (a
        # ladder's replay takes one row at a time).
        out = PacketBatch.__new__(PacketBatch)
        for name in _COLUMN_NAMES:
            setattr(out, name, getattr(self, name)[index])
        return out

    @classmethod
    def concat(cls, batches: list[PacketBatch]) -> PacketBatch:
        if not batches:
            return cls.allocate(0)
        out = cls.__new__(cls)
        for name in _COLUMN_NAMES:
            setattr(out, name, np.concatenate([getattr(b, name) for b in batches]))
        return out

    def frame_index(self) -> npt.NDArray[np.intp]:
        """For each row, the index of its frame in the FrameBatch it was decoded from (a
        decoder's whole batch: its frame's own row comes first)."""
        out: npt.NDArray[np.intp] = np.cumsum(self.sub == SUB_FRAME, dtype=np.intp) - 1
        return out

    def packet_rows(self) -> PacketBatch:
        """The batch as `packets` lists it: one row per packet (an A-MSDU's subframes are
        packets of their own), without the middle tunnel carriers' rows (a packet's tunnels
        are in its own row); the batch itself when it has none."""
        carrier = self.sub == SUB_CARRIER
        return self.take(~carrier) if carrier.any() else self

    def owner_rows(self) -> npt.NDArray[np.intp]:
        """For each row, the row that counts it: a middle carrier's is the packet's row
        before it (SUB_CARRIER rows follow it), any other row's itself."""
        index = np.arange(len(self), dtype=np.intp)
        out: npt.NDArray[np.intp] = np.maximum.accumulate(
            np.where(self.sub != SUB_CARRIER, index, 0))
        return out

    def row(self, i: int) -> dict[str, Any]:
        """One row as plain Python values (slow; for printing and tests)."""
        out: dict[str, Any] = {}
        for name in self.column_names():
            v = getattr(self, name)[i]
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v.item()
        return out


_COLUMN_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PacketBatch))
