"""Why a frame could not be decoded to the end: one code per reason, counted, never raised.

A truncated frame (snaplen shorter than the frame) is *not* malformed: it is flagged
``truncated`` and decoded as far as its bytes go. Malformed means the bytes that are present
contradict themselves (a header length shorter than the minimum, a length past the frame...).
"""

from __future__ import annotations

from enum import IntEnum


class Malformed(IntEnum):
    """Reason codes of the ``malformed`` column; the names are what users see."""

    NONE = 0
    LINK_HEADER_SHORT = 1
    VLAN_TAG_SHORT = 2
    MPLS_LABEL_SHORT = 3
    MPLS_PAYLOAD_UNKNOWN = 4
    PPPOE_HEADER_SHORT = 5
    PPP_HEADER_SHORT = 6
    IPV4_HEADER_SHORT = 7
    IPV4_VERSION_MISMATCH = 8
    IPV4_IHL_INVALID = 9
    IPV4_TOTAL_LENGTH_INVALID = 10
    IPV6_HEADER_SHORT = 11
    IPV6_VERSION_MISMATCH = 12
    IPV6_EXT_HEADER_INVALID = 13
    IPV6_PAYLOAD_LENGTH_INVALID = 14
    TCP_HEADER_SHORT = 15
    TCP_OFFSET_INVALID = 16
    TCP_OPTION_INVALID = 17
    UDP_HEADER_SHORT = 18
    UDP_LENGTH_INVALID = 19
    ICMP_HEADER_SHORT = 20
    GRE_HEADER_INVALID = 21
    TUNNEL_HEADER_INVALID = 22
    TUNNEL_TOO_DEEP = 23
    FRAGMENT_INVALID = 24

    @property
    def label(self) -> str:
        """The reason as users read it: ``tcp-offset-invalid``."""
        return self.name.lower().replace("_", "-")


def reason_label(code: int) -> str:
    try:
        return Malformed(code).label
    except ValueError:
        return f"reason-{code}"
