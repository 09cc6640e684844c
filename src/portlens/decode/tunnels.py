"""Tunnel kinds recorded in the ``tunnel`` column (4 bits per layer, outermost first)."""

from __future__ import annotations

TUNNEL_GRE = 1
TUNNEL_IPIP = 2
"""IPv4 in IPv4 (protocol 4)."""
TUNNEL_6IN4 = 3
"""IPv6 in IPv4 (protocol 41)."""
TUNNEL_4IN6 = 4
TUNNEL_6IN6 = 5
TUNNEL_VXLAN = 6
TUNNEL_GENEVE = 7
TUNNEL_TEREDO = 8
TUNNEL_GTPU = 9
TUNNEL_ERSPAN = 10
"""ERSPAN type I, II or III in GRE (compiled decoder only)."""
TUNNEL_AYIYA = 11
TUNNEL_GRE_UDP = 12
"""GRE in UDP (RFC 8086, port 4754)."""
TUNNEL_ARUBA = 13
"""Aruba GRE: an 802.11 frame inside."""

TUNNEL_NAMES = {
    TUNNEL_GRE: "gre",
    TUNNEL_IPIP: "ipip",
    TUNNEL_6IN4: "6in4",
    TUNNEL_4IN6: "4in6",
    TUNNEL_6IN6: "6in6",
    TUNNEL_VXLAN: "vxlan",
    TUNNEL_GENEVE: "geneve",
    TUNNEL_TEREDO: "teredo",
    TUNNEL_GTPU: "gtpu",
    TUNNEL_ERSPAN: "erspan",
    TUNNEL_AYIYA: "ayiya",
    TUNNEL_GRE_UDP: "gre-udp",
    TUNNEL_ARUBA: "aruba",
}

UDP_TUNNEL_PORTS = {4789: TUNNEL_VXLAN, 6081: TUNNEL_GENEVE, 3544: TUNNEL_TEREDO, 2152: TUNNEL_GTPU}
"""Tunnels the reference decoders recognise by UDP destination (or, for Teredo, either) port,
as Zeek does. The compiled decoder also knows GTP-U on 2123, AYIYA (5072) and GRE in UDP (4754),
and finds Teredo and AYIYA by content on any port (docs/decoding.md)."""

MAX_TUNNEL_DEPTH = 7


def tunnel_layers(packed: int, depth: int) -> list[str]:
    """Names of the tunnel layers of one row, outermost first."""
    return [TUNNEL_NAMES.get((packed >> (4 * i)) & 0xF, "?") for i in range(depth)]
