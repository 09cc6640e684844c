"""tcpdump-syntax packet filters (a pcap-filter(7) subset) evaluated on whole PacketBatch columns.

``compile_filter("tcp port 443 and not host 10.0.0.1")`` parses once; ``PacketFilter.mask(batch)``
then answers for every row of a batch with a handful of numpy operations, so filtering costs
the same per batch whatever the packet rate.

The grammar is libpcap's, quirks included, because users paste expressions from tcpdump and
expect the same packets: ``and`` and ``or`` have EQUAL precedence and group left to right
(``tcp or udp and port 53`` is ``(tcp or udp) and port 53``), ``not`` binds tightest, and a bare
value after ``and``/``or``/``not`` reuses the qualifiers of the primitive before it
(``host a or b``, ``tcp port 80 or 443``, ``host a and not b``, ``host a and (b or c)``).

Where portlens deliberately selects differently from tcpdump — it tests the innermost decoded
layer, not bytes at fixed offsets of the outermost headers — docs/filters.md lists each rule and
tests/test_filter.py checks the rest frame by frame against tcpdump.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from portlens.decode.fields import V4_MAPPED_PREFIX
from portlens.decode.packets import PacketBatch

Mask = npt.NDArray[np.bool_]


def _bool(value: object) -> Mask:
    return np.asarray(value, dtype=np.bool_)


MAX_DEPTH = 200
"""Deepest nesting accepted: the parser and the evaluator recurse, and a filter is typed by a
person, so anything deeper is garbage rather than a filter."""
MAX_LENGTH = 65536

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_ARP = 0x0806
ETHERTYPE_RARP = 0x8035
ETHERTYPE_PPPOED = 0x8863
ETHERTYPE_PPPOES = 0x8864
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057

TCP, UDP, ICMP, ICMP6, SCTP = 6, 17, 1, 58, 132


class FilterError(ValueError):
    """A filter that cannot be compiled; ``str()`` is one line naming the column (1-based)."""

    def __init__(self, what: str, column: int) -> None:
        super().__init__(f"filter: {what} at column {column}")
        self.what = what
        self.column = column


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
_OPERATORS = ("&&", "||", "!=", "==", "<=", ">=", "<<", ">>",
              "(", ")", "!", "/", "[", "]", "&", "|", "=", "<", ">", "+", "*", "%", "^")

KEYWORDS = frozenset({
    "and", "or", "not", "host", "net", "mask", "port", "portrange", "src", "dst", "proto",
    "protochain", "less", "greater", "vlan", "mpls", "pppoes", "pppoed", "multicast",
    "broadcast", "gateway", "len", "inbound", "outbound",
    # protocol qualifiers / abbreviations (libpcap's pname)
    "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "igrp", "pim", "vrrp", "carp",
    "ah", "esp", "arp", "rarp", "ether", "link", "ppp", "slip", "fddi", "tr", "wlan", "radio",
    "atalk", "aarp", "decnet", "lat", "sca", "moprc", "mopdl", "iso", "esis", "es-is", "isis",
    "is-is", "clnp", "stp", "ipx", "netbeui", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
    "geneve", "ifname", "on", "rnr", "rulenum", "reason", "rset", "srnr", "subrulenum",
    "action", "type", "subtype", "dir", "direction", "addr1", "addr2", "addr3", "addr4",
    "address1", "address2", "address3", "address4", "ra", "ta", "byte", "ifindex", "lane",
    "llc", "metac", "bcc", "oam", "oamf4", "oamf4ec", "oamf4sc", "sc", "ilmic", "vpi", "vci",
    "connectmsg", "metaconnect", "fisu", "lssu", "lsu", "sls", "hfisu", "hlssu", "hmsu", "hsls",
    "dpc", "opc", "sio", "hdpc", "hopc", "hsio",
})
"""Reserved words of libpcap's scanner: never taken as a name (escape one with a backslash,
``proto \\tcp``, as in tcpdump)."""

_PROTO_QUALIFIERS = frozenset({
    "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "igrp", "pim", "vrrp", "carp",
    "ah", "esp", "arp", "rarp", "ether", "link", "ppp", "slip", "fddi", "tr", "wlan", "radio",
    "atalk", "aarp", "decnet", "lat", "sca", "moprc", "mopdl", "iso", "esis", "es-is", "isis",
    "is-is", "clnp", "stp", "ipx", "netbeui", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
})

_IP_PROTOCOL_ABBREVIATIONS: dict[str, tuple[tuple[int, ...], int]] = {
    # keyword: (IP versions it applies to, protocol number), as libpcap's gen_proto_abbrev
    "tcp": ((4, 6), TCP),
    "udp": ((4, 6), UDP),
    "sctp": ((4, 6), SCTP),
    "icmp": ((4,), ICMP),
    "icmp6": ((6,), ICMP6),
    "igmp": ((4,), 2),
    "igrp": ((4,), 9),
    "pim": ((4, 6), 103),
    "vrrp": ((4,), 112),
    "carp": ((4,), 112),
    "ah": ((4, 6), 51),
    "esp": ((4, 6), 50),
}

_PROTOCOL_NAMES = {
    "icmp": 1, "igmp": 2, "ipip": 4, "ipencap": 4, "tcp": 6, "egp": 8, "igp": 9, "igrp": 9,
    "udp": 17, "ipv6": 41, "ipv6-route": 43, "ipv6-frag": 44, "rsvp": 46, "gre": 47,
    "esp": 50, "ah": 51, "icmp6": 58, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
    "eigrp": 88, "ospf": 89, "pim": 103, "vrrp": 112, "carp": 112, "l2tp": 115, "sctp": 132,
    "udplite": 136,
}
"""Names for ``proto NAME``; anything else is looked up in the system protocols database, as
libpcap does."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """'word' (a keyword or a value), 'name' (a backslash-escaped word), 'op', 'end'."""
    text: str
    pos: int
    """0-based offset in the expression."""

    @property
    def column(self) -> int:
        return self.pos + 1

    def is_kw(self, *words: str) -> bool:
        return self.kind == "word" and self.text in words

    @property
    def is_value(self) -> bool:
        return self.kind == "name" or (self.kind == "word" and self.text not in KEYWORDS)


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c in _WORD_CHARS or c == "\\":
            j = i + 1 if c == "\\" else i
            while j < n and expr[j] in _WORD_CHARS:
                j += 1
            if c == "\\":
                if j == i + 1:
                    raise FilterError("a backslash must be followed by a name", i + 1)
                tokens.append(_Token("name", expr[i + 1:j], i))
            else:
                tokens.append(_Token("word", expr[i:j], i))
            i = j
            continue
        for op in _OPERATORS:
            if expr.startswith(op, i):
                tokens.append(_Token("op", op, i))
                i += len(op)
                break
        else:
            raise FilterError(f"unexpected character {c!r}", i + 1)
    tokens.append(_Token("end", "", n))
    return tokens


# --------------------------------------------------------------------------------------------
# Per-batch column views, computed at most once per mask() call
# --------------------------------------------------------------------------------------------


class _Columns:
    """The batch's columns in the shapes the primitives compare against."""

    def __init__(self, batch: PacketBatch) -> None:
        self.batch = batch
        self.n = len(batch)
        self._versions: dict[int, Mask] = {}
        self._addresses: dict[str, npt.NDArray[np.uint64]] = {}
        self._ports_known: Mask | None = None

    def version(self, v: int) -> Mask:
        mask = self._versions.get(v)
        if mask is None:
            mask = self._versions[v] = _bool(self.batch.ip_version == v)
        return mask

    def addr64(self, side: str) -> npt.NDArray[np.uint64]:
        """The 16-byte address column as two native uint64 per row: a masked compare is then
        two integer operations per row instead of sixteen."""
        a = self._addresses.get(side)
        if a is None:
            col = np.ascontiguousarray(getattr(self.batch, side), dtype=np.uint8)
            a = self._addresses[side] = col.reshape(-1, 16).view(np.uint64)
        return a

    def ports_known(self) -> Mask:
        """Rows whose TCP/UDP ports are those of the packet: a decoded transport header, or a
        fragment the reassembler attributed to its datagram's ports."""
        if self._ports_known is None:
            b = self.batch
            tcp_udp = ((b.proto == TCP) | (b.proto == UDP)) & (b.ip_version != 0)
            decoded = (b.l4 == b.proto) & (b.frag == 0)
            attributed = (b.frag != 0) & ((b.sport != 0) | (b.dport != 0))
            self._ports_known = _bool(tcp_udp & (decoded | attributed))
        return self._ports_known


# --------------------------------------------------------------------------------------------
# Expression tree
# --------------------------------------------------------------------------------------------


class _Node:
    depth: int = 1

    def eval(self, cols: _Columns) -> Mask:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError


class _True(_Node):
    def eval(self, cols: _Columns) -> Mask:
        return np.ones(cols.n, dtype=np.bool_)

    def text(self) -> str:
        return ""


class _Not(_Node):
    def __init__(self, child: _Node) -> None:
        self.child = child
        self.depth = child.depth + 1

    def eval(self, cols: _Columns) -> Mask:
        return ~self.child.eval(cols)

    def text(self) -> str:
        return f"not {self.child.text()}"


class _Join(_Node):
    word: ClassVar[str]

    def __init__(self, children: list[_Node]) -> None:
        self.children = children
        self.depth = 1 + max(c.depth for c in children)

    def text(self) -> str:
        return "(" + f" {self.word} ".join(c.text() for c in self.children) + ")"


class _And(_Join):
    word = "and"

    def eval(self, cols: _Columns) -> Mask:
        out = self.children[0].eval(cols)
        for child in self.children[1:]:
            out = out & child.eval(cols)
        return out


class _Or(_Join):
    word = "or"

    def eval(self, cols: _Columns) -> Mask:
        out = self.children[0].eval(cols)
        for child in self.children[1:]:
            out = out | child.eval(cols)
        return out


def _join(kind: type[_Join], left: _Node, right: _Node) -> _Node:
    """Left-associative chains of one operator become one flat node (no deep recursion)."""
    if isinstance(left, kind):  # nodes are private to one parse: extend in place
        left.children.append(right)
        left.depth = max(left.depth, right.depth + 1)
        return left
    return kind([left, right])


_DIRECTION_TEXT = {"src": "src ", "dst": "dst ", "either": "", "both": "src and dst "}


class _IpVersion(_Node):
    """``ip`` / ``ip6``: the innermost IP layer is of that version, or the link layer announced
    it and the header was too broken to decode (tcpdump tests only the link-layer type)."""

    def __init__(self, version: int) -> None:
        self.version = version

    def eval(self, cols: _Columns) -> Mask:
        b = cols.batch
        ethertype, ppp = ((ETHERTYPE_IPV4, PPP_IPV4) if self.version == 4
                          else (ETHERTYPE_IPV6, PPP_IPV6))
        announced = (b.ip_version == 0) & ((b.ethertype == ethertype) | (b.ppp_proto == ppp))
        return _bool(cols.version(self.version) | announced)

    def text(self) -> str:
        return "ip" if self.version == 4 else "ip6"


class _IpProto(_Node):
    """The innermost IP protocol (after IPv6 extension headers) on the given IP versions."""

    def __init__(self, versions: tuple[int, ...], number: int, name: str) -> None:
        self.versions = versions
        self.number = number
        self.name = name

    def eval(self, cols: _Columns) -> Mask:
        ok = cols.version(self.versions[0])
        for v in self.versions[1:]:
            ok = ok | cols.version(v)
        return _bool(ok & (cols.batch.proto == self.number))

    def text(self) -> str:
        return self.name


_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


class _Address(_Node):
    """``host`` / ``net``: a masked compare of the 16-byte address columns, gated by version so
    that ``::ffff:a.b.c.d`` written in a filter matches IPv6 packets only, as in tcpdump."""

    def __init__(self, version: int, net: bytes, mask: bytes, direction: str, name: str) -> None:
        self.version = version
        self.net64 = np.frombuffer(net, dtype=np.uint64).copy()
        self.mask64 = np.frombuffer(mask, dtype=np.uint64).copy()
        self.direction = direction
        self.name = name

    def _side(self, cols: _Columns, side: str) -> Mask:
        a = cols.addr64(side)
        out: Mask | None = None
        for word in (0, 1):
            mask, net = self.mask64[word], self.net64[word]
            if not mask:
                continue  # a short prefix leaves this half unconstrained
            column = a[:, word]
            hit = _bool((column if mask == _ALL_ONES else column & mask) == net)
            out = hit if out is None else out & hit
        return np.ones(cols.n, dtype=np.bool_) if out is None else out

    def eval(self, cols: _Columns) -> Mask:
        if self.direction == "src":
            hit = self._side(cols, "src")
        elif self.direction == "dst":
            hit = self._side(cols, "dst")
        elif self.direction == "both":
            hit = self._side(cols, "src") & self._side(cols, "dst")
        else:
            hit = self._side(cols, "src") | self._side(cols, "dst")
        return cols.version(self.version) & hit

    def text(self) -> str:
        return _DIRECTION_TEXT[self.direction] + self.name


class _Ports(_Node):
    """``port`` / ``portrange`` on TCP and/or UDP rows whose ports are known."""

    def __init__(self, lo: int, hi: int, direction: str, protos: tuple[int, ...],
                 name: str) -> None:
        self.lo, self.hi = lo, hi
        self.direction = direction
        self.protos = protos
        self.name = name

    def _side(self, col: npt.NDArray[np.uint16]) -> Mask:
        if self.lo == self.hi:
            return _bool(col == self.lo)
        return _bool((col >= self.lo) & (col <= self.hi))

    def eval(self, cols: _Columns) -> Mask:
        b = cols.batch
        if self.direction == "src":
            hit = self._side(b.sport)
        elif self.direction == "dst":
            hit = self._side(b.dport)
        elif self.direction == "both":
            hit = self._side(b.sport) & self._side(b.dport)
        else:
            hit = self._side(b.sport) | self._side(b.dport)
        ok = cols.ports_known()
        if len(self.protos) == 1:
            ok = ok & (b.proto == self.protos[0])
        return ok & hit

    def text(self) -> str:
        qual = "" if len(self.protos) != 1 else ("tcp " if self.protos[0] == TCP else "udp ")
        return qual + _DIRECTION_TEXT[self.direction] + self.name


class _Column(_Node):
    """A primitive that is one comparison on one column (length, VLAN, link protocol...)."""

    def __init__(self, name: str, test: Callable[[PacketBatch], Mask]) -> None:
        self.name = name
        self.test = test

    def eval(self, cols: _Columns) -> Mask:
        return np.asarray(self.test(cols.batch), dtype=np.bool_)

    def text(self) -> str:
        return self.name


_TRANSPORT_GATES: dict[str, tuple[int, tuple[int, ...]]] = {
    # proto[...] reads a transport header: which one, on which IP versions
    "tcp": (TCP, (4, 6)),
    "udp": (UDP, (4, 6)),
    "icmp": (ICMP, (4,)),
    "icmp6": (ICMP6, (6,)),
}


def _wirelen(b: PacketBatch) -> npt.NDArray[np.generic]:
    return b.wirelen


def _tcp_byte12(b: PacketBatch) -> npt.NDArray[np.int64]:
    return ((b.tcp_hlen.astype(np.int64) // 4) << 4) | ((b.tcp_flags.astype(np.int64) >> 8) & 0xF)


_HEADER_FIELDS: dict[tuple[str, int, int], Callable[[PacketBatch], npt.NDArray[np.generic]]] = {
    # (protocol, offset, size) -> the column holding those header bytes
    ("tcp", 0, 2): lambda b: b.sport,
    ("tcp", 2, 2): lambda b: b.dport,
    ("tcp", 4, 4): lambda b: b.seq,
    ("tcp", 8, 4): lambda b: b.ack,
    ("tcp", 12, 1): _tcp_byte12,
    ("tcp", 12, 2): lambda b: (_tcp_byte12(b) << 8) | (b.tcp_flags.astype(np.int64) & 0xFF),
    ("tcp", 13, 1): lambda b: b.tcp_flags & 0xFF,
    ("tcp", 14, 2): lambda b: b.win,
    ("tcp", 18, 2): lambda b: b.urp,
    ("udp", 0, 2): lambda b: b.sport,
    ("udp", 2, 2): lambda b: b.dport,
    ("udp", 4, 2): lambda b: b.udp_len,
    ("icmp", 0, 1): lambda b: b.icmp_type,
    ("icmp", 1, 1): lambda b: b.icmp_code,
    ("icmp6", 0, 1): lambda b: b.icmp_type,
    ("icmp6", 1, 1): lambda b: b.icmp_code,
}
"""The header bytes ``proto[offset:size]`` can address: those the decoder keeps as columns."""

_NAMED_VALUES = {
    "tcpflags": 13, "icmptype": 0, "icmpcode": 1, "icmp6type": 0, "icmp6code": 1,
    "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08, "tcp-ack": 0x10,
    "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
    "icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
    "icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
    "icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
    "icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
    "icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
    "icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
    "icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
    "icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
    "icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
    "icmp6-redirect": 137, "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
    "icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
    "icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
    "icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
    "icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
    "icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
    "icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
    "icmp6-multicastrouterterm": 153,
}
"""libpcap's scanner turns these names into numbers (verified against tcpdump -d)."""

_RELOPS: dict[str, Callable[[npt.NDArray[np.int64], int], object]] = {
    "=": lambda a, v: a == v, "==": lambda a, v: a == v, "!=": lambda a, v: a != v,
    "<": lambda a, v: a < v, "<=": lambda a, v: a <= v,
    ">": lambda a, v: a > v, ">=": lambda a, v: a >= v,
}


class _Relation(_Node):
    """``proto[offset:size] [& mask] RELOP value`` and ``len RELOP value``: false on rows
    without that header, as in libpcap (where the protocol test is ANDed in)."""

    def __init__(self, proto: str | None, field: Callable[[PacketBatch], npt.NDArray[
            np.generic]], mask: int | None, op: str, value: int, name: str) -> None:
        self.proto = proto
        self.field = field
        self.mask = mask
        self.op = op
        self.value = value
        self.name = name

    def eval(self, cols: _Columns) -> Mask:
        b = cols.batch
        values = np.asarray(self.field(b)).astype(np.int64)
        if self.mask is not None:
            values = values & self.mask
        hit = _bool(_RELOPS[self.op](values, self.value))
        if self.proto is None:
            return hit
        number, versions = _TRANSPORT_GATES[self.proto]
        ok = cols.version(versions[0])
        for v in versions[1:]:
            ok = ok | cols.version(v)
        return _bool(ok & (b.l4 == number) & hit)

    def text(self) -> str:
        return self.name


# --------------------------------------------------------------------------------------------
# Values: numbers, addresses, names
# --------------------------------------------------------------------------------------------


def _number(tok: _Token) -> int:
    """libpcap's numbers: 0x hex, a leading 0 octal, else decimal; 32 bits. Its scanner also
    reads the names of _NAMED_VALUES as numbers, wherever they stand."""
    text = tok.text
    if text in _NAMED_VALUES:
        return _NAMED_VALUES[text]
    try:
        if text[:2] in ("0x", "0X"):
            value = int(text[2:], 16)
        elif len(text) > 1 and text[0] == "0":
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise FilterError(f"invalid number {text!r}", tok.column) from None
    if value > 0xFFFFFFFF:
        raise FilterError(f"number {text!r} overflows 32 bits", tok.column)
    return value


def _is_number(text: str) -> bool:
    if text in _NAMED_VALUES:
        return True
    if text[:2] in ("0x", "0X"):
        return len(text) > 2 and all(c in "0123456789abcdefABCDEF" for c in text[2:])
    return text.isdigit() and text.isascii()


def _is_dotted(text: str) -> bool:
    parts = text.split(".")
    return 2 <= len(parts) <= 4 and all(p.isdigit() and p.isascii() for p in parts)


def _dotted(tok: _Token, text: str | None = None) -> tuple[int, int]:
    """A dotted IPv4 number (1 to 4 parts) as (value, bits given): libpcap's __pcap_atoin."""
    text = tok.text if text is None else text
    value = 0
    parts = text.split(".")
    for part in parts:
        if not part.isdigit() or not part.isascii() or int(part) > 255:
            raise FilterError(f"invalid IPv4 address {text!r}", tok.column)
        value = (value << 8) | int(part)
    return value, 8 * len(parts)


def _v4_bytes(value: int, mask32: int) -> tuple[bytes, bytes]:
    """An IPv4 network as the 16-byte column form plus a 16-byte mask (the mapped prefix is
    compared too; the version gate makes that redundant but harmless)."""
    return (V4_MAPPED_PREFIX + value.to_bytes(4, "big"),
            b"\xff" * 12 + mask32.to_bytes(4, "big"))


def _v6_mask(prefix: int) -> bytes:
    return (((1 << 128) - 1) ^ ((1 << (128 - prefix)) - 1)).to_bytes(16, "big")


def _service_port(tok: _Token, name: str) -> tuple[int, tuple[int, ...]]:
    """A service name as libpcap resolves it: the TCP number if there is one (then TCP only,
    unless UDP has the same number), else the UDP number (UDP only)."""
    import socket  # not at start: socket takes 6 ms, and only names need it

    found: dict[str, int] = {}
    for transport in ("tcp", "udp"):
        with contextlib.suppress(OSError, UnicodeError, ValueError):
            found[transport] = socket.getservbyname(name, transport)
    if "tcp" in found:
        same = found.get("udp") == found["tcp"]
        return found["tcp"], ((TCP, UDP) if same else (TCP,))
    if "udp" in found:
        return found["udp"], (UDP,)
    raise FilterError(f"unknown port {name!r}", tok.column)


def _port_number(tok: _Token, text: str) -> tuple[int, tuple[int, ...]]:
    if _is_number(text):
        value = _number(_Token(tok.kind, text, tok.pos))
        if value > 0xFFFF:
            raise FilterError(f"illegal port number {value} > 65535", tok.column)
        return value, (TCP, UDP)
    return _service_port(tok, text)


def _protocol_number(tok: _Token) -> int:
    if tok.kind == "word" and _is_number(tok.text):
        value = _number(tok)
        if value > 255:
            raise FilterError(f"illegal protocol number {value} > 255", tok.column)
        return value
    name = tok.text.lower()
    if name in _PROTOCOL_NAMES:
        return _PROTOCOL_NAMES[name]
    import socket

    try:
        return socket.getprotobyname(tok.text)
    except (OSError, UnicodeError, ValueError):
        raise FilterError(f"unknown ip proto {tok.text!r}", tok.column) from None


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Qual:
    """libpcap's qualifiers of a primitive: protocol, direction, address type (None: default).
    A bare value after and/or/not is built with the qualifiers of the primitive before it."""

    proto: str | None = None
    direction: str | None = None
    addr: str | None = None


_NO_QUAL: _Qual | None = None
"""After ``tcp``, ``less 10``, ``vlan`` or a leading ``( ... )``: a bare value is an error."""


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.i = 0
        self.nesting = 0

    # -- token helpers --

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> _Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def unexpected(self, tok: _Token | None = None, hint: str = "") -> FilterError:
        tok = tok or self.tok
        what = "unexpected end of expression" if tok.kind == "end" else f"unexpected {tok.text!r}"
        return FilterError(what + (f" ({hint})" if hint else ""), tok.column)

    def is_and(self, tok: _Token) -> bool:
        return tok.is_kw("and") or (tok.kind == "op" and tok.text == "&&")

    def is_or(self, tok: _Token) -> bool:
        return tok.is_kw("or") or (tok.kind == "op" and tok.text == "||")

    def is_not(self, tok: _Token) -> bool:
        return tok.is_kw("not") or (tok.kind == "op" and tok.text == "!")

    def is_open(self, tok: _Token) -> bool:
        return tok.kind == "op" and tok.text == "("

    def expect_close(self, opened: _Token) -> None:
        if self.tok.kind == "op" and self.tok.text == ")":
            self.advance()
            return
        if self.tok.kind == "end":
            raise FilterError(f"missing ')' for the '(' at column {opened.column}",
                              self.tok.column)
        raise self.unexpected()

    def enter(self, tok: _Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise FilterError("expression nested too deeply", tok.column)

    # -- grammar --

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            return _True()
        node, _ = self.expr_(_NO_QUAL)
        if self.tok.kind != "end":
            raise self.unexpected()
        return node

    def starts_value(self) -> bool:
        """After and/or: a bare value (inheriting qualifiers) rather than a new primitive?
        Decided by the first token past any not / '(' — libpcap's LALR grammar decides so."""
        k = 0
        while self.is_not(self.peek(k)) or self.is_open(self.peek(k)):
            k += 1
        return self.peek(k).is_value

    def expr_(self, qual: _Qual | None) -> tuple[_Node, _Qual | None]:
        node, qual = self.term(qual)
        while self.is_and(self.tok) or self.is_or(self.tok):
            kind: type[_Join] = _And if self.is_and(self.advance()) else _Or
            right, qual = self.value_expr(qual) if self.starts_value() else self.term(qual)
            node = _join(kind, node, right)
            self.check_depth(node)
        return node, qual

    def check_depth(self, node: _Node) -> None:
        if node.depth > MAX_DEPTH:
            raise FilterError("expression nested too deeply", self.tok.column)

    def term(self, qual: _Qual | None) -> tuple[_Node, _Qual | None]:
        tok = self.tok
        if self.is_not(tok):
            self.advance()
            self.enter(tok)
            node, qual = self.term(qual)
            self.nesting -= 1
            return _Not(node), qual
        if self.is_open(tok):
            self.advance()
            self.enter(tok)
            node, _ = self.expr_(qual)
            self.expect_close(tok)
            self.nesting -= 1
            return node, qual  # libpcap: a parenthesised term keeps the qualifiers before it
        return self.primitive()

    def value_expr(self, qual: _Qual | None) -> tuple[_Node, _Qual | None]:
        """A bare value, `not` value, or '(' values joined by and/or ')', built with ``qual``."""
        tok = self.tok
        if self.is_not(tok):
            self.advance()
            self.enter(tok)
            node, qual = self.value_expr(qual)
            self.nesting -= 1
            return _Not(node), qual
        if self.is_open(tok):
            self.advance()
            self.enter(tok)
            node, qual = self.value_expr(qual)
            while self.is_and(self.tok) or self.is_or(self.tok):
                kind: type[_Join] = _And if self.is_and(self.advance()) else _Or
                right, qual = self.value_expr(qual)
                node = _join(kind, node, right)
                self.check_depth(node)
            self.expect_close(tok)
            self.nesting -= 1
            return node, qual
        if not tok.is_value:
            raise self.unexpected()
        if qual is None:
            raise self.unexpected(hint="a value needs a qualifier before it, "
                                       "e.g. 'host' or 'port'")
        return self.value(qual), qual

    def primitive(self) -> tuple[_Node, _Qual | None]:
        tok = self.tok
        if tok.kind != "word" or tok.text not in KEYWORDS:
            raise self.unexpected()
        word = tok.text
        if word == "len" or (word in _TRANSPORT_GATES and self.peek().kind == "op"
                             and self.peek().text == "["):
            return self.relation(), _NO_QUAL
        if word in ("less", "greater"):
            self.advance()
            n = self.number_arg(word)
            if word == "less":
                return _Column(f"less {n}", lambda b: b.wirelen <= n), _NO_QUAL
            return _Column(f"greater {n}", lambda b: b.wirelen >= n), _NO_QUAL
        if word == "vlan":
            self.advance()
            if self.tok.kind == "word" and _is_number(self.tok.text):
                vid_tok = self.tok
                vid = self.number_arg(word)
                if vid > 4095:
                    raise FilterError(f"VLAN tag {vid} greater than maximum 4095",
                                      vid_tok.column)
                return _Column(f"vlan {vid}", lambda b: (b.vlan_count > 0) & (b.vlan == vid)), \
                    _NO_QUAL
            return _Column("vlan", lambda b: b.vlan_count > 0), _NO_QUAL
        if word in ("mpls", "pppoes", "pppoed"):
            self.advance()
            if self.tok.kind == "word" and _is_number(self.tok.text):
                raise FilterError(f"'{word} N' is not supported (portlens keeps no "
                                  f"{'MPLS label' if word == 'mpls' else 'PPPoE session id'})",
                                  self.tok.column)
            if word == "mpls":
                return _Column("mpls", lambda b: b.mpls_count > 0), _NO_QUAL
            ethertype = ETHERTYPE_PPPOES if word == "pppoes" else ETHERTYPE_PPPOED
            return _Column(word, lambda b: b.ethertype == ethertype), _NO_QUAL

        # head: [proto qualifier] [direction] [address type | proto | protochain]
        proto: str | None = None
        if word in _PROTO_QUALIFIERS:
            proto = word
            self.advance()
        direction = self.direction()
        addr: str | None = None
        if self.tok.is_kw("host", "net", "port", "portrange", "gateway") or (
                direction is None and self.tok.is_kw("proto", "protochain")):
            addr = self.advance().text
        if direction is None and addr is None:
            if proto is None:
                raise self.unsupported(tok)
            return self.protocol_abbreviation(tok), _NO_QUAL
        # libpcap takes any value expression here: `host (a or b)`, `src not 10.1`
        return self.value_expr(_Qual(proto, direction, addr))

    def direction(self) -> str | None:
        if not self.tok.is_kw("src", "dst"):
            return None
        first = self.advance().text
        other = "dst" if first == "src" else "src"
        if (self.is_or(self.tok) or self.is_and(self.tok)) and self.peek().is_kw(other):
            both = self.is_and(self.advance())
            self.advance()
            return "both" if both else "either"
        return first

    def relation(self) -> _Node:
        """The arithmetic subset: ``proto[offset[:size]] [& value] RELOP value`` on the header
        fields portlens decodes, and ``len RELOP value``."""
        start = self.advance()
        proto: str | None = None
        if start.text == "len":
            field: Callable[[PacketBatch], npt.NDArray[np.generic]] = _wirelen
            label = "len"
        else:
            proto = start.text
            self.advance()  # '['
            off_tok = self.tok
            if off_tok.kind == "word" and ":" in off_tok.text:
                # `13:1` is one word to the scanner (IPv6 addresses contain ':')
                first, _, second = off_tok.text.partition(":")
                if not _is_number(second) or not _is_number(first):
                    raise self.unexpected(hint="proto[offset:size] takes numbers")
                self.advance()
                offset = _number(_Token("word", first, off_tok.pos))
                size = _number(_Token("word", second, off_tok.pos))
                if size not in (1, 2, 4):
                    raise FilterError("data size must be 1, 2, or 4", off_tok.column)
            else:
                offset = self.constant()
                size = 1
            if self.tok.kind == "op" and self.tok.text == "]":
                self.advance()
            else:
                raise self.unexpected(hint="only proto[offset] and proto[offset:size] "
                                           "with a constant offset are supported")
            label = f"{proto}[{offset}]" if size == 1 else f"{proto}[{offset}:{size}]"
            key = (proto, offset, size)
            if key not in _HEADER_FIELDS:
                known = ", ".join(f"{p}[{o}:{s}]" for p, o, s in _HEADER_FIELDS if p == proto)
                raise FilterError(f"{label} is not a field portlens keeps (it has {known})",
                                  off_tok.column)
            field = _HEADER_FIELDS[key]
        mask: int | None = None
        if self.tok.kind == "op" and self.tok.text == "&":
            self.advance()
            mask = self.constant()
        op_tok = self.tok
        if op_tok.kind != "op" or op_tok.text not in _RELOPS:
            raise self.unexpected(hint="a comparison (=, !=, <, <=, >, >=) was expected")
        self.advance()
        value = self.constant()
        op = "=" if op_tok.text == "==" else op_tok.text
        name = label + (f" & {mask:#x}" if mask is not None else "") + f" {op} {value}"
        return _Relation(proto, field, mask, op, value, name)

    def constant(self) -> int:
        """A number, one of libpcap's named constants (tcp-syn, icmp-echo...), and '|' / '&'
        of them, parenthesised or not."""
        value = self.constant_atom()
        while self.tok.kind == "op" and self.tok.text == "|":
            self.advance()
            value |= self.constant_atom()
        return value

    def constant_atom(self) -> int:
        tok = self.tok
        if self.is_open(tok):
            self.advance()
            self.enter(tok)
            value = self.constant()
            while self.tok.kind == "op" and self.tok.text == "&":
                self.advance()
                value &= self.constant()
            self.expect_close(tok)
            self.nesting -= 1
            return value
        if tok.kind == "word" and _is_number(tok.text):
            self.advance()
            return _number(tok)
        raise self.unexpected(hint="a number or a name such as tcp-syn was expected")

    def number_arg(self, word: str) -> int:
        tok = self.tok
        if tok.kind != "word" or not _is_number(tok.text):
            raise self.unexpected(hint=f"'{word}' takes a number")
        self.advance()
        return _number(tok)

    def unsupported(self, tok: _Token) -> FilterError:
        if tok.text in ("and", "or", "not", "host", "net", "mask", "port", "portrange",
                        "proto", "protochain"):
            return self.unexpected(tok)
        return FilterError(f"{tok.text!r} is not supported by portlens", tok.column)

    def protocol_abbreviation(self, tok: _Token) -> _Node:
        word = tok.text
        nxt = self.tok
        if nxt.kind == "op" and nxt.text == "[":
            raise FilterError(f"{word}[...] is not supported (only tcp[], udp[], icmp[] "
                              "and icmp6[] fields)", nxt.column)
        if nxt.is_kw("multicast", "broadcast"):
            self.advance()
            if nxt.text == "multicast" and word == "ip":
                return _Column("ip multicast",
                               lambda b: (b.ip_version == 4) & (b.dst[:, 12] >= 224))
            if nxt.text == "multicast" and word == "ip6":
                return _Column("ip6 multicast",
                               lambda b: (b.ip_version == 6) & (b.dst[:, 0] == 0xFF))
            raise FilterError(f"'{word} {nxt.text}' is not supported by portlens", tok.column)
        if word in ("ip", "ip6"):
            return _IpVersion(4 if word == "ip" else 6)
        if word in _IP_PROTOCOL_ABBREVIATIONS:
            versions, number = _IP_PROTOCOL_ABBREVIATIONS[word]
            return _IpProto(versions, number, word)
        if word == "arp":
            return _Column("arp", lambda b: b.ethertype == ETHERTYPE_ARP)
        if word == "rarp":
            return _Column("rarp", lambda b: b.ethertype == ETHERTYPE_RARP)
        raise FilterError(f"{word!r} is not supported by portlens", tok.column)

    # -- a value under its qualifiers --

    def value(self, qual: _Qual) -> _Node:
        tok = self.advance()
        addr = qual.addr
        if addr in ("port", "portrange"):
            return self.port_value(tok, qual)
        if addr in ("proto", "protochain"):
            return self.proto_value(tok, qual)
        if addr == "gateway":
            raise FilterError("'gateway' is not supported by portlens (no Ethernet addresses)",
                              tok.column)
        return self.address_value(tok, qual)

    def port_value(self, tok: _Token, qual: _Qual) -> _Node:
        if qual.proto is not None and qual.proto not in ("tcp", "udp", "sctp"):
            raise FilterError(f"illegal qualifier of '{qual.addr}'", tok.column)
        if qual.proto == "sctp":
            raise FilterError("'sctp port' is not supported (portlens does not decode SCTP)",
                              tok.column)
        text = tok.text
        if tok.kind == "word" and _is_dotted(text):
            raise FilterError(f"{text!r} is not a port", tok.column)
        if qual.addr == "port" or (_is_number(text) and tok.kind == "word"):
            lo, protos = _port_number(tok, text)
            hi = lo
        else:
            first, dash, second = text.partition("-")
            if not dash or not first or not second:
                raise FilterError(f"{text!r} is not a port range (A-B)", tok.column)
            lo, p1 = _port_number(tok, first)
            hi, p2 = _port_number(tok, second)
            protos = p1 if p1 == p2 else (TCP, UDP)
            lo, hi = min(lo, hi), max(lo, hi)
        if qual.proto in ("tcp", "udp"):
            want = TCP if qual.proto == "tcp" else UDP
            if want not in protos:
                raise FilterError(f"port {text!r} is {'udp' if want == TCP else 'tcp'}",
                                  tok.column)
            protos = (want,)
        name = f"port {lo}" if qual.addr == "port" else f"portrange {lo}-{hi}"
        return _Ports(lo, hi, qual.direction or "either", protos, name)

    def proto_value(self, tok: _Token, qual: _Qual) -> _Node:
        versions = {None: (4, 6), "ip": (4,), "ip6": (6,)}.get(qual.proto)
        if versions is None:
            raise FilterError(f"'{qual.proto} {qual.addr}' is not supported by portlens",
                              tok.column)
        number = _protocol_number(tok)
        prefix = {None: "", "ip": "ip ", "ip6": "ip6 "}[qual.proto]
        return _IpProto(versions, number, f"{prefix}{qual.addr} {number}")

    def address_value(self, tok: _Token, qual: _Qual) -> _Node:
        """host / net (and a value with no address type: a host), libpcap's rules for short
        dotted forms, masks and non-network bits."""
        addr = qual.addr or "host"
        if qual.proto is not None and qual.proto not in ("ip", "ip6"):
            if qual.proto in ("arp", "rarp"):
                raise FilterError(f"'{qual.proto} {addr}' is not supported (portlens does "
                                  "not decode ARP)", tok.column)
            if qual.proto in ("ether", "link"):
                raise FilterError("Ethernet addresses are not supported by portlens",
                                  tok.column)
            raise FilterError(f"'{qual.proto}' modifier applied to {addr}", tok.column)
        text = tok.text
        slash = self.tok.kind == "op" and self.tok.text == "/"
        has_mask = self.tok.is_kw("mask")
        prefix: int | None = None
        mask_text: str | None = None
        if slash:
            self.advance()
            len_tok = self.tok
            if len_tok.kind != "word" or not _is_number(len_tok.text):
                raise self.unexpected(hint="a prefix length follows '/'")
            self.advance()
            prefix = _number(len_tok)
        elif has_mask:
            self.advance()
            mask_tok = self.tok
            if mask_tok.kind != "word" or not _is_dotted(mask_tok.text):
                raise self.unexpected(hint="a dotted IPv4 mask follows 'mask'")
            self.advance()
            mask_text = mask_tok.text

        direction = qual.direction or "either"
        if tok.kind == "word" and ":" in text:
            try:
                ip6 = ipaddress.IPv6Address(text)
            except ValueError:
                raise FilterError(f"invalid IPv6 address {text!r}", tok.column) from None
            if has_mask:
                raise FilterError("'mask' is for IPv4 networks; write ADDR/LEN", tok.column)
            if qual.proto == "ip":
                raise FilterError("'ip' modifier applied to ip6 host", tok.column)
            bits = 128 if prefix is None else prefix
            if bits > 128:
                raise FilterError("mask length must be <= 128", tok.column)
            net = int(ip6) & int.from_bytes(_v6_mask(bits), "big")
            if net != int(ip6):
                raise FilterError(f"non-network bits set in '{text}/{bits}'", tok.column)
            if prefix is not None and addr != "net":
                raise FilterError("mask syntax is for networks only", tok.column)
            name = f"{addr} {ip6}" + ("" if prefix is None else f"/{prefix}")
            return _Address(6, ip6.packed, _v6_mask(bits), direction, name)

        if tok.kind == "word" and (_is_dotted(text) or _is_number(text)):
            if qual.proto == "ip6":
                raise FilterError("'ip6' modifier applied to ip host", tok.column)
            if prefix is None and mask_text is None and _is_number(text):
                # a plain number is a whole 32-bit address, except that libpcap promotes a
                # short net number: `net 10` is 10.0.0.0/8, `net 192.168` would be a HID
                value, mask32 = _number(tok), 0xFFFFFFFF
                if addr == "net":
                    while value and not value & 0xFF000000:
                        value = (value << 8) & 0xFFFFFFFF
                        mask32 = (mask32 << 8) & 0xFFFFFFFF
                shown = text
            else:
                # a dotted form with fewer than 4 parts is a network of 8 bits per part,
                # for `host` as well (libpcap: `host 10.1.2` is 10.1.2.0/24)
                value, given = _dotted(tok)
                value = (value << (32 - given)) & 0xFFFFFFFF
                if prefix is not None:
                    if prefix > 32:
                        raise FilterError("mask length must be <= 32", tok.column)
                    mask32 = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
                    shown = f"{text}/{prefix}"
                elif mask_text is not None:
                    mask_value, mask_given = _dotted(self.tokens[self.i - 1])
                    mask32 = (mask_value << (32 - mask_given)) & 0xFFFFFFFF
                    shown = f"{text} mask {mask_text}"
                else:
                    mask32 = (0xFFFFFFFF << (32 - given)) & 0xFFFFFFFF
                    shown = text
            if value & ~mask32 & 0xFFFFFFFF:
                raise FilterError(f"non-network bits set in '{shown}'", tok.column)
            if (prefix is not None or mask_text is not None) and addr != "net":
                raise FilterError("mask syntax is for networks only", tok.column)
            name = f"{addr} {ipaddress.IPv4Address(value)}"
            if mask32 != 0xFFFFFFFF:
                name += (f"/{_prefix_len(mask32)}" if _is_prefix(mask32)
                         else f" mask {ipaddress.IPv4Address(mask32)}")
            net16, mask16 = _v4_bytes(value, mask32)
            return _Address(4, net16, mask16, direction, name)

        if prefix is not None or mask_text is not None:
            raise FilterError(f"invalid network {text!r}", tok.column)
        raise FilterError(f"host names are not resolved by portlens, give an address: "
                          f"{text!r}", tok.column)


def _is_prefix(mask32: int) -> bool:
    inverted = ~mask32 & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def _prefix_len(mask32: int) -> int:
    return bin(mask32).count("1")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


class PacketFilter:
    """A compiled filter. Stateless and immutable: one instance serves any number of batches,
    threads or processes (it pickles as its expression)."""

    __slots__ = ("_root", "expression")

    def __init__(self, expression: str, root: _Node) -> None:
        self.expression = expression
        self._root = root

    @property
    def matches_all(self) -> bool:
        """True for the empty filter, so callers can skip the mask entirely."""
        return isinstance(self._root, _True)

    def mask(self, batch: PacketBatch) -> Mask:
        """One boolean per row of ``batch``: True where the packet is selected."""
        out = self._root.eval(_Columns(batch))
        return np.asarray(out, dtype=np.bool_).reshape(len(batch))

    def select(self, batch: PacketBatch) -> PacketBatch:
        """The selected rows of ``batch`` (the batch itself when the filter selects all)."""
        if self.matches_all:
            return batch
        keep = self.mask(batch)
        return batch if bool(keep.all()) else batch.take(keep)

    def canonical(self) -> str:
        """The filter fully parenthesised, qualifiers spelled out: how it was understood."""
        return self._root.text()

    def __repr__(self) -> str:
        return f"compile_filter({self.expression!r})"

    def __reduce__(self) -> tuple[Callable[[str], PacketFilter], tuple[str]]:
        return compile_filter, (self.expression,)


def compile_filter(expr: str) -> PacketFilter:
    """Parse a tcpdump-syntax expression; raises FilterError (and nothing else) when it is not
    one portlens supports. An empty or blank expression selects every packet."""
    if not isinstance(expr, str):
        raise FilterError(f"the filter must be text, not {type(expr).__name__}", 1)
    if len(expr) > MAX_LENGTH:
        raise FilterError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    return PacketFilter(expr, _Parser(expr).parse())


__all__ = ["FilterError", "PacketFilter", "compile_filter"]
