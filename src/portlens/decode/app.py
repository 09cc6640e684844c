"""The two facts of a UDP payload that decide a Zeek role flip (docs/zeek-rules.md §3.4).

Zeek's DNS and NTP analyzers flip a connection's originator when its first message is a reply
(``DNS_Interpreter::ParseMessage``; ``proc_ntp_message`` in ntp-analyzer.pac). The decoder
only reads the payload the way those analyzers would and says what it found; whether a flip
happens is the tracker's business (it knows the ports, the direction and what came before).
Both need the whole datagram captured: Zeek's UDP analyzer hands a payload to its protocol
analyzers only then (``remaining >= len`` in ``UDPAnalyzer::DeliverPacket``); and they are read
only on a datagram with a port where the analyzer could be attached (either port: the roles
are the tracker's), so that a tunnel's or any other protocol's payload is not read as DNS.
"""

from __future__ import annotations

import struct

DNS_PORTS = (53, 137, 5353, 5355)
"""Where Zeek's DNS analyzer is attached (its responder port; base/protocols/dns): the decoder
reads a DNS header only when one of the datagram's ports is one of them."""
NTP_PORT = 123
"""Where Zeek's NTP analyzer is attached (base/protocols/ntp)."""
DNS_HEADER = 12
"""RFC 1035 4.1.1; Zeek's DNS_RawMsgHdr. A shorter payload is no DNS message (a weird)."""
NTP_HEADER = 48
"""RFC 5905 7.3: the header of a standard message (modes 1-5) up to the transmit timestamp."""
NTP_EXTENSION_FIXED = 18
"""ntp-protocol.pac Extension_Field: flags, type, length, association id, timestamp,
filestamp and value length before the value."""


def dns_qr(payload: bytes) -> int:
    """The QR bit of a DNS header (1: a response), -1 if the payload is shorter than one."""
    if len(payload) < DNS_HEADER:
        return -1
    return payload[2] >> 7


def ntp_mode(payload: bytes) -> int:
    """The mode of a standard NTP message (1-5) that Zeek's NTP analyzer parses whole, -1
    otherwise (too short, extension fields that do not parse, or modes 0, 6 and 7, which are
    other records and never flip).

    ntp-protocol.pac: after the 48-byte header, extension fields are read while more than 24
    bytes remain (``has_exts``, ``&until($input.length() <= 24)``), each padded to its own
    length field; what then remains is a MAC of 20 or 24 bytes or ignored."""
    if len(payload) < NTP_HEADER:
        return -1
    mode = payload[0] & 7
    if not 1 <= mode <= 5:
        return -1
    n = len(payload)
    pos = NTP_HEADER
    if n - pos > 24:
        while True:
            if n - pos < NTP_EXTENSION_FIXED:
                return -1
            length = struct.unpack_from("!H", payload, pos + 2)[0]
            value_len = struct.unpack_from("!I", payload, pos + 14)[0]
            q = pos + NTP_EXTENSION_FIXED + value_len
            if q + 4 > n:
                return -1
            q += 4 + struct.unpack_from("!I", payload, q)[0]
            if q > n or pos + length > n:
                return -1
            # `padding to len` from the field's start; a field longer than its length field
            # gets no padding.
            pos = max(q, pos + length)
            if n - pos <= 24:
                break
    return mode
