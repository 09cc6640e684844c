"""The codes and address forms of the PacketBatch columns (decode/packets.py), apart from the
batch itself: what reads them without the columns (conn.log, a report's text, the selections)
does not import NumPy for them, which costs a short command a tenth of its time.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

OPT_KINDS_MAX = 40
"""A TCP header carries at most 40 option bytes, so at most 40 option kinds."""
SACK_BLOCKS_MAX = 4
"""At most 4 SACK blocks fit in 40 option bytes."""

# Checksum status codes (columns ip_csum and l4_csum).
CSUM_NONE = 0
"""The layer has no such checksum (IPv6 header, no transport header) or it was not checked."""
CSUM_GOOD = 1
CSUM_BAD = 2
CSUM_UNVERIFIED = 3
"""Present but cannot be verified: frame truncated, UDP checksum 0, or a fragment."""
CSUM_NAMES = {CSUM_NONE: "-", CSUM_GOOD: "good", CSUM_BAD: "bad", CSUM_UNVERIFIED: "unverified"}

# Fragment roles (column frag).
FRAG_NONE = 0
"""Not a fragment."""
FRAG_PART = 1
"""A fragment that does not (yet) complete its datagram; not counted as a packet of its flow."""
FRAG_COMPLETE = 2
"""The fragment that completed reassembly: its row carries the whole datagram (ip_len,
transport header fields, payload), as tshark attributes the reassembled datagram to it."""

# Rows of one frame (column sub; crates/core/src/decode/columns.rs).
SUB_FRAME = 0
"""The frame's own row: every frame has one, first among its rows."""
SUB_CARRIER = 1
"""A tunnel carrier between out_* and car_* of the row before it (three or more tunnels)."""
SUB_MSDU = 2
"""At least this: the packet of an A-MSDU subframe after the first, a packet of its own."""

V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def host_text(host: str) -> str:
    """An address as it stands before ``:port``: an IPv6 one in brackets (RFC 5952 §6)."""
    return f"[{host}]" if ":" in host else host


def endpoint_text(host: str, port: int) -> str:
    return f"{host_text(host)}:{port}"


def addr_bytes(text: str) -> bytes:
    """The 16-byte column form of an address given as text."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return V4_MAPPED_PREFIX + ip.packed
    return ip.packed


def addr_text(raw: bytes | npt.NDArray[np.uint8], version: int | None = None) -> str:
    """Text form of a 16-byte address column value (IPv4-mapped shown as dotted quad)."""
    b = bytes(raw) if not isinstance(raw, bytes) else raw
    if version == 4 or (version is None and b[:12] == V4_MAPPED_PREFIX):
        return str(ipaddress.IPv4Address(b[12:]))
    return str(ipaddress.IPv6Address(b))
