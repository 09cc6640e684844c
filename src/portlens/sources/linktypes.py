"""LINKTYPE_* numbers (tcpdump.org/linktypes.html) that portlens decodes, and their names."""

from __future__ import annotations

NULL = 0
"""BSD loopback: 4-byte address family in the writer's byte order."""
ETHERNET = 1
PPP = 9
FDDI = 10
"""FDDI: frame control byte, destination and source MAC, then an 802.2 LLC header."""
RAW_12 = 12
"""DLT_RAW as OpenBSD numbers it in pcap files (12 on most systems, 14 on OpenBSD)."""
RAW_14 = 14
PPP_SERIAL = 50
PPP_ETHER = 51
RAW = 101
LOOP = 108
"""OpenBSD loopback: like NULL, address family in network byte order."""
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276
C_HDLC = 104
IEEE802_11 = 105
PRISM = 119
RADIOTAP = 127
AVS = 163
PPI = 192
IPNET = 226
NFLOG = 239
ATM_RFC1483 = 11
ENC = 109
PFLOG = 117
PKTAP = 258

NAMES = {
    NULL: "null",
    ETHERNET: "ethernet",
    PPP: "ppp",
    FDDI: "fddi",
    RAW_12: "raw",
    RAW_14: "raw",
    PPP_SERIAL: "ppp-hdlc",
    PPP_ETHER: "pppoe",
    RAW: "raw",
    LOOP: "loop",
    LINUX_SLL: "linux-sll",
    IPV4: "ipv4",
    IPV6: "ipv6",
    LINUX_SLL2: "linux-sll2",
    C_HDLC: "c-hdlc",
    IEEE802_11: "802.11",
    PRISM: "prism",
    RADIOTAP: "radiotap",
    AVS: "avs",
    PPI: "ppi",
    IPNET: "ipnet",
    NFLOG: "nflog",
    ATM_RFC1483: "atm-rfc1483",
    ENC: "enc",
    PFLOG: "pflog",
    PKTAP: "pktap",
}

REFERENCE = frozenset({NULL, ETHERNET, PPP, FDDI, RAW_12, RAW_14, RAW, LOOP, LINUX_SLL, IPV4, IPV6,
                       LINUX_SLL2})
"""Link types every decoder reads, the Python reference ones included."""
COMPILED_ONLY = frozenset({PPP_ETHER, C_HDLC, IEEE802_11, PRISM, RADIOTAP, AVS, PPI, IPNET, NFLOG,
                           ATM_RFC1483, ENC, PFLOG, PKTAP})
"""Link types only the compiled decoder (the one the commands use) reads."""
SUPPORTED = REFERENCE | COMPILED_ONLY


def name(linktype: int) -> str:
    return NAMES.get(linktype, f"linktype-{linktype}")
