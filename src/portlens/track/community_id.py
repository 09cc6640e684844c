"""Community ID v1 (github.com/corelight/community-id-spec), as Zeek and Suricata log it.

The flow tuple is hashed direction-free: SHA1 over seed, the two addresses, protocol, a zero
byte and the two ports (network byte order), with the numerically smaller address:port first.
ICMP has no ports: the type stands for the source port and the type's counterpart (echo 8 for
reply 0 ...) or, for one-way messages, the code stands for the destination port, as in Zeek's
conn.log; one-way messages keep their direction.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

ICMP4_COUNTERPARTS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
"""ICMPv4 request/reply pairs: echo, timestamp, information, router, address mask."""
ICMP6_COUNTERPARTS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131,
                      131: 130, 139: 140, 140: 139, 144: 145, 145: 144}
"""ICMPv6 pairs: echo, router and neighbour discovery, MLD, node information, home agent."""


def icmp_ports(icmp_type: int, code: int, *, v6: bool) -> tuple[int, int, bool]:
    """(orig_p, resp_p, one_way) for an ICMP message, as Zeek fills conn_id."""
    table = ICMP6_COUNTERPARTS if v6 else ICMP4_COUNTERPARTS
    if icmp_type in table:
        return icmp_type, table[icmp_type], False
    return icmp_type, code, True


def community_id(src: str | bytes, dst: str | bytes, proto: int, sport: int | None,
                 dport: int | None, *, seed: int = 0, one_way: bool = False) -> str:
    """The `1:<base64>` Community ID of a flow; addresses as text, packed bytes, or the
    16-byte column form (IPv4-mapped for IPv4)."""
    a = _packed(src)
    b = _packed(dst)
    has_ports = sport is not None and dport is not None
    p1, p2 = (sport or 0), (dport or 0)
    if not one_way and (a > b or (a == b and has_ports and p1 > p2)):
        a, b, p1, p2 = b, a, p2, p1
    data = struct.pack("!H", seed) + a + b + struct.pack("!BB", proto, 0)
    if has_ports:
        data += struct.pack("!HH", p1, p2)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


_V4_MAPPED = bytes(10) + b"\xff\xff"


def _packed(addr: str | bytes) -> bytes:
    if isinstance(addr, bytes):
        return addr[12:] if len(addr) == 16 and addr[:12] == _V4_MAPPED else addr
    return ipaddress.ip_address(addr).packed
