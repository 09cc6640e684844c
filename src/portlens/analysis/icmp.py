"""ICMP and ICMPv6 messages as people name them, and what an ICMP flow amounts to.

Zeek logs ICMP flows as conns whose "ports" are the originator's type (orig_p) and the
counterpart type of a request/reply pair or else the code (resp_p), with conn_state OTH for
all of them. portlens keeps those fields in conn.log, JSON and CSV, but never shows them as
ports: tables show the message, ``echo-request 8/0`` (name, type/code of the originator's
first message), and the ports report gives ICMP flows an outcome of their own:

- a request (echo, timestamp, information, address mask, router or neighbour solicitation,
  MLD query, node information, home agent discovery) answered by the other side: completed;
  not answered: unanswered;
- a reply with no request before it (echo reply, ...): mid_stream, the request was before the
  capture (as UDP's SHR);
- a message that expects no answer (errors such as destination unreachable and time exceeded,
  redirects, unsolicited advertisements, MLD reports): one_way.
"""

from __future__ import annotations

from portlens.track.model import Connection

ICMP4_NAMES = {
    0: "echo-reply", 3: "dest-unreachable", 4: "source-quench", 5: "redirect",
    8: "echo-request", 9: "router-advertisement", 10: "router-solicitation",
    11: "time-exceeded", 12: "parameter-problem", 13: "timestamp-request",
    14: "timestamp-reply", 15: "info-request", 16: "info-reply", 17: "address-mask-request",
    18: "address-mask-reply",
}
"""RFC 792, 950, 1256 names, as tcpdump and Wireshark word them."""
ICMP6_NAMES = {
    1: "dest-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
    128: "echo-request", 129: "echo-reply", 130: "mld-query", 131: "mld-report",
    132: "mld-done", 133: "router-solicitation", 134: "router-advertisement",
    135: "neighbor-solicitation", 136: "neighbor-advertisement", 137: "redirect",
    139: "node-info-query", 140: "node-info-reply", 143: "mld2-report",
    144: "home-agent-request", 145: "home-agent-reply",
}
"""RFC 4443, 2710, 4861, 4620, 3810, 6275 names."""

REQUESTS4 = frozenset({8, 10, 13, 15, 17})
REQUESTS6 = frozenset({128, 130, 133, 135, 139, 144})
"""Messages that ask for an answer: answered, they make a completed exchange."""
REPLIES4 = frozenset({0, 14, 16, 18})
REPLIES6 = frozenset({129, 140, 145})
"""Answers that only follow a request: seen alone, the request was before the capture.
(Advertisements and MLD reports are sent unsolicited too, so they are not among them.)"""


def icmp_name(icmp_type: int, *, v6: bool) -> str:
    return (ICMP6_NAMES if v6 else ICMP4_NAMES).get(icmp_type, "type")


def message_text(icmp_type: int, code: int | None, *, v6: bool) -> str:
    """'echo-request 8/0', 'dest-unreachable 3/3', 'type 42/1' (unnamed); 'echo-request 8'
    when the code is not known."""
    numbers = f"{icmp_type}/{code}" if code is not None and code >= 0 else str(icmp_type)
    return f"{icmp_name(icmp_type, v6=v6)} {numbers}"


def conn_message(c: Connection) -> str:
    """The originator's first message of an ICMP flow: 'echo-request 8/0'."""
    return message_text(c.orig_p, c.icmp_code, v6=c.ip_version == 6)


def outcome(c: Connection) -> str:
    """completed, unanswered, mid_stream or one_way (rules in the module docstring)."""
    v6 = c.ip_version == 6
    if c.orig_p in (REQUESTS6 if v6 else REQUESTS4):
        return "completed" if c.resp_pkts else "unanswered"
    if c.orig_p in (REPLIES6 if v6 else REPLIES4):
        return "mid_stream"
    return "one_way"


__all__ = ["conn_message", "icmp_name", "message_text", "outcome"]
