"""portlens.filter: the parser on its own, then frame by frame against tcpdump.

tcpdump is the judge of which frames an expression selects: ``tcpdump -r FILE -w - EXPR``
writes the selected frames, matched back to frame numbers by (timestamp, lengths, bytes).
Frames where portlens selects differently ON PURPOSE are left out of the equality and checked
on their own below; each class is a section of docs/filters.md ("Differences from tcpdump"):

- tunnel          portlens filters the innermost IP layer, tcpdump the outermost;
- encapsulation   VLAN / MPLS / PPPoE: portlens sees through them, tcpdump needs the
                  `vlan` / `mpls` / `pppoes` keywords (checked: with them, both agree);
- framing         BSD NULL headers in the other byte order, DLT_PPP without ff 03: tcpdump
                  reads the link header wrongly, portlens decodes them (docs/decoding.md);
- ipv6-ext        IPv6 extension headers: portlens' protocol is the one after them
                  (tcpdump's `protochain`; checked);
- fragment        portlens' `port` selects every fragment of a datagram, tcpdump the first;
- malformed       headers the decoder rejected: portlens has no fields past them;
- no-transport    a TCP/UDP header portlens did not decode (cut or broken): no ports;
- arp             tcpdump's `host`/`net` also match ARP/RARP addresses;
- ipv6 + tcp[]    libpcap's tcp[]/udp[] read IPv4 only; portlens' read both.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import pickle
import random
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlens.decode import Decoder
from portlens.decode.fields import FRAG_COMPLETE, FRAG_PART, SUB_FRAME, addr_bytes, addr_text
from portlens.decode.packets import PacketBatch
from portlens.filter import KEYWORDS, FilterError, PacketFilter, compile_filter
from portlens.sources.files import open_capture
from tests.corpus import corpus_captures

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
TCPDUMP = shutil.which("tcpdump")


# ============================================================================================
# Parser
# ============================================================================================


@pytest.mark.parametrize(("expr", "canonical"), [
    # libpcap: and/or have EQUAL precedence, left to right; not binds tightest
    ("tcp or udp and port 53", "((tcp or udp) and port 53)"),
    ("tcp and udp or icmp", "((tcp and udp) or icmp)"),
    ("not tcp and udp", "(not tcp and udp)"),
    ("not tcp or udp", "(not tcp or udp)"),
    ("tcp and (udp or icmp)", "(tcp and (udp or icmp))"),
    ("! tcp && udp || icmp", "((not tcp and udp) or icmp)"),
    ("not not tcp", "not not tcp"),
    ("tcp or udp or icmp or ip6", "(tcp or udp or icmp or ip6)"),
    # abbreviations: a bare value takes the qualifiers of the primitive before it
    ("host 1.2.3.4 or 5.6.7.8", "(host 1.2.3.4 or host 5.6.7.8)"),
    ("port 80 or 443", "(port 80 or port 443)"),
    ("tcp port 80 or 443", "(tcp port 80 or tcp port 443)"),
    ("src port 80 or 443", "(src port 80 or src port 443)"),
    ("host 1.1.1.1 and not 2.2.2.2", "(host 1.1.1.1 and not host 2.2.2.2)"),
    ("not host 1.1.1.1 and 2.2.2.2", "(not host 1.1.1.1 and host 2.2.2.2)"),
    ("host 1.1.1.1 and (2.2.2.2 or 3.3.3.3)",
     "(host 1.1.1.1 and (host 2.2.2.2 or host 3.3.3.3))"),
    ("host 1.1.1.1 or (port 80) or 2.2.2.2", "(host 1.1.1.1 or port 80 or host 2.2.2.2)"),
    ("proto 6 or 17", "(proto 6 or proto 17)"),
    ("port 80 and ((81))", "(port 80 and port 81)"),
    ("host (1.1.1.1 or 2.2.2.2)", "(host 1.1.1.1 or host 2.2.2.2)"),
    ("src not 10.1", "not src host 10.1.0.0/16"),
    ("tcp dst port (80 or not 443) and 8080",
     "((tcp dst port 80 or not tcp dst port 443) and tcp dst port 8080)"),
    # direction qualifiers
    ("src or dst host ::1", "host ::1"),
    ("dst or src host ::1", "host ::1"),
    ("src and dst host 10.0.0.1", "src and dst host 10.0.0.1"),
    ("src and dst port 53", "src and dst port 53"),
    ("dst 10.0.0.1", "dst host 10.0.0.1"),
    ("src 80", "src host 0.0.0.80"),  # libpcap: a bare number is a 32-bit address
    # addresses and networks, libpcap's short forms
    ("net 10", "net 10.0.0.0/8"),
    ("net 172.16", "net 172.16.0.0/16"),
    ("net 10.1.2", "net 10.1.2.0/24"),
    ("host 10.1.2", "host 10.1.2.0/24"),
    ("net 10.1.0.0/16", "net 10.1.0.0/16"),
    ("net 10/8", "net 10.0.0.0/8"),
    ("net 192.168.1.0 mask 255.255.255.0", "net 192.168.1.0/24"),
    ("net 10.0.0.0 mask 255.0.255.0", "net 10.0.0.0 mask 255.0.255.0"),
    ("host 0x0a000001", "host 10.0.0.1"),
    ("net 2001:db8::/32", "net 2001:db8::/32"),
    ("ip6 host 2001:DB8::1", "host 2001:db8::1"),
    ("host ::ffff:1.2.3.4", "host ::ffff:102:304"),
    # ports
    ("port 010", "port 8"),  # libpcap: a leading 0 is octal
    ("port 0x50", "port 80"),
    ("port tcp-syn", "port 2"),  # libpcap's scanner reads these names as numbers anywhere
    ("portrange 1024-1", "portrange 1-1024"),
    ("udp portrange 53-53", "udp portrange 53-53"),
    ("portrange 80", "portrange 80-80"),
    # protocols
    ("ip proto \\tcp", "ip proto 6"),
    ("ip6 proto 58", "ip6 proto 58"),
    ("proto \\udp", "proto 17"),
    ("ip6 protochain 6", "ip6 protochain 6"),
    # other primitives
    ("vlan", "vlan"),
    ("vlan 100 and ip", "(vlan 100 and ip)"),
    ("less 100 or greater 1000", "(less 100 or greater 1000)"),
    ("ip multicast or ip6 multicast", "(ip multicast or ip6 multicast)"),
    ("mpls or pppoes", "(mpls or pppoes)"),
    # the arithmetic subset
    ("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] & 0x12 = 2"),
    ("tcp[13] & 4 != 0", "tcp[13] & 0x4 != 0"),
    ("udp[0:2] = 53", "udp[0:2] = 53"),
    ("icmp6[icmp6type] = icmp6-echo", "icmp6[0] = 128"),
    ("len >= 100", "len >= 100"),
])
def test_canonical_form(expr: str, canonical: str) -> None:
    assert compile_filter(expr).canonical() == canonical


@pytest.mark.parametrize("expr", ["", "   ", "\t\n"])
def test_empty_filter_selects_everything(expr: str) -> None:
    f = compile_filter(expr)
    assert f.matches_all
    batch = synthetic_batch(5)
    assert f.mask(batch).tolist() == [True] * 5
    assert f.select(batch) is batch


@pytest.mark.parametrize(("expr", "column", "words"), [
    ("tcp prot 80", 5, "unexpected 'prot'"),
    ("host", 5, "unexpected end"),
    ("(tcp", 5, "missing ')' for the '(' at column 1"),
    ("tcp)", 4, "unexpected ')'"),
    ("tcp and", 8, "unexpected end"),
    ("and tcp", 1, "unexpected 'and'"),
    ("tcp or 80", 8, "needs a qualifier"),
    ("(port 80) or 81", 14, "needs a qualifier"),
    ("tcp $ udp", 5, "unexpected character '$'"),
    ("host 1.2.3.4/24", 6, "non-network bits set in '1.2.3.4/24'"),
    ("host 1.2.3.0/24", 6, "mask syntax is for networks only"),
    ("net 10.1.2.3 mask 255.255.0.0", 5, "non-network bits"),
    ("net 10.0.0.0/33", 5, "mask length must be <= 32"),
    ("net 2001:db8::1/32", 5, "non-network bits"),
    ("net 2001:db8::/129", 5, "mask length must be <= 128"),
    ("host 1.2.3.256", 6, "invalid IPv4 address"),
    ("host 1:2:3", 6, "invalid IPv6 address"),
    ("host example.com", 6, "host names are not resolved"),
    ("port 70000", 6, "illegal port number 70000 > 65535"),
    ("port 99999999999", 6, "overflows 32 bits"),
    ("port 09", 6, "invalid number"),
    ("port no-such-service-here", 6, "unknown port"),
    ("portrange 1-", 11, "is not a port range"),
    ("port 1.2.3.4", 6, "is not a port"),
    ("udp port http", 10, "port 'http' is tcp"),
    ("ip port 80", 9, "illegal qualifier of 'port'"),
    ("sctp port 80", 11, "does not decode SCTP"),
    ("ip6 host 1.2.3.4", 10, "'ip6' modifier applied to ip host"),
    ("ip host ::1", 9, "'ip' modifier applied to ip6 host"),
    ("tcp host 1.1.1.1", 10, "'tcp' modifier applied to host"),
    ("arp host 1.1.1.1", 10, "does not decode ARP"),
    ("ether host 00:11:22:33:44:55", 12, "Ethernet addresses"),
    ("ether src 00:11:22:33:44:55", 11, "Ethernet addresses"),
    ("gateway 1.2.3.4", 9, "'gateway' is not supported"),
    ("ip proto 256", 10, "illegal protocol number"),
    ("proto \\nosuchproto", 7, "unknown ip proto"),
    ("tcp proto 6", 11, "'tcp proto' is not supported"),
    ("vlan 5000", 6, "VLAN tag 5000 greater than maximum 4095"),
    ("mpls 100", 6, "'mpls N' is not supported"),
    ("less", 5, "'less' takes a number"),
    ("greater x", 9, "'greater' takes a number"),
    ("ip[9] = 6", 3, "ip[...] is not supported"),
    ("tcp[5] = 1", 5, "tcp[5] is not a field portlens keeps"),
    ("tcp[13:3] = 1", 5, "data size must be 1, 2, or 4"),
    ("tcp[13] & 2", 12, "a comparison"),
    ("tcp[13 & 2 != 0", 8, "unexpected '&'"),
    ("tcp[13] = tcp-nosuch", 11, "a number or a name"),
    ("len > 100 - 14", 11, "unexpected '-'"),
    ("ether", 1, "'ether' is not supported"),
    ("broadcast", 1, "'broadcast' is not supported"),
    ("ip broadcast", 1, "'ip broadcast' is not supported"),
    ("inbound", 1, "'inbound' is not supported"),
    ("foo", 1, "unexpected 'foo'"),
    ("\\", 1, "a backslash must be followed by a name"),
    ("host 1.2.3.4 mask", 18, "a dotted IPv4 mask follows 'mask'"),
    ("net 10.0.0.0 mask 8", 19, "dotted IPv4 mask"),
    ("net 10.0.0.0/", 14, "a prefix length follows '/'"),
])
def test_errors_name_their_column(expr: str, column: int, words: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    message = str(info.value)
    assert message.startswith("filter: "), message
    assert message.endswith(f" at column {column}"), message
    assert words in message, message
    assert "\n" not in message
    assert info.value.column == column


def test_error_format_matches_the_brief() -> None:
    with pytest.raises(FilterError, match=r"^filter: unexpected 'prot' at column 5$"):
        compile_filter("tcp prot 80")


def test_filter_error_is_a_value_error() -> None:
    """Callers that already catch ValueError for bad arguments catch filters too."""
    assert issubclass(FilterError, ValueError)


def test_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    for expr in ["(" * 10_000 + "tcp" + ")" * 10_000, "not " * 10_000 + "tcp",
                 "host 1.1.1.1 and " + "(" * 5000 + "2.2.2.2" + ")" * 5000,
                 "tcp[13] = " + "(" * 5000 + "1" + ")" * 5000]:
        with pytest.raises(FilterError):
            compile_filter(expr)


def test_long_flat_chains_compile_and_evaluate() -> None:
    """A left-associative chain of one operator is one node, however long."""
    f = compile_filter(" or ".join(f"port {p}" for p in range(1, 5001)))
    batch = synthetic_batch(3)
    batch.proto[:] = 6
    batch.l4[:] = 6
    batch.ip_version[:] = 4
    batch.sport[:] = [1, 5000, 6000]
    batch.dport[:] = 7000
    assert f.mask(batch).tolist() == [True, True, False]
    alternating = " and ".join(["tcp or udp"] * 300)  # depth grows with alternation
    with pytest.raises(FilterError, match="nested too deeply"):
        compile_filter(alternating)
    compile_filter(" and ".join(["tcp or udp"] * 50))


def test_pickles_as_its_expression() -> None:
    f = compile_filter("tcp port 80 or 443")
    g = pickle.loads(pickle.dumps(f))
    assert isinstance(g, PacketFilter)
    assert g.canonical() == f.canonical()
    assert repr(g) == "compile_filter('tcp port 80 or 443')"


def test_non_text_is_a_filter_error() -> None:
    with pytest.raises(FilterError):
        compile_filter(b"tcp")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Fuzzing: garbage raises FilterError, never anything else; what compiles evaluates
# --------------------------------------------------------------------------------------------

FUZZ_WORDS = [
    *sorted(KEYWORDS),
    "(", ")", "!", "&&", "||", "/", "[", "]", "&", "|", "=", "==", "!=", "<", ">", "<=", ">=",
    "+", "-", "*", ":", "\\", "\\tcp", "\\foo", "0", "1", "80", "65535", "65536", "0x50",
    "010", "09", "4294967296", "1.2.3.4", "10", "10.1", "10.1.2", "1.2.3.4.5", "256.1.1.1",
    "::1", "2001:db8::", "2001:db8::/32", "fe80::1%eth0", ":::", "1-2", "80-", "-80",
    "http", "domain", "tcpflags", "tcp-syn", "icmp-echo", "icmp6type", "13:1", "0:2", "13:3",
    "a", "é", "\x00", "'", '"', "$", "#", "tcp[13]", "mask", "255.255.0.0", "", " ",
]


def fuzz_text(rng: random.Random) -> str:
    n = rng.randint(0, 12)
    sep = rng.choice([" ", "", "  "])
    return sep.join(rng.choice(FUZZ_WORDS) for _ in range(n))


def assert_compiles_or_filter_error(expr: str, batch: PacketBatch) -> None:
    try:
        f = compile_filter(expr)
    except FilterError as exc:
        text = str(exc)
        assert text.startswith("filter: ") and " at column " in text and "\n" not in text
        assert 1 <= exc.column <= len(expr) + 1, (expr, exc.column)
        return
    mask = f.mask(batch)
    assert mask.dtype == np.bool_ and mask.shape == (len(batch),)
    f.canonical()


def test_fuzz_random_token_strings() -> None:
    rng = random.Random(20240611)
    batch = random_batch(np.random.default_rng(7), 64)
    for _ in range(20_000):
        assert_compiles_or_filter_error(fuzz_text(rng), batch)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_arbitrary_text(expr: str) -> None:
    assert_compiles_or_filter_error(expr, random_batch(np.random.default_rng(1), 16))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FUZZ_WORDS), max_size=14))
def test_fuzz_token_lists(words: list[str]) -> None:
    assert_compiles_or_filter_error(" ".join(words), random_batch(np.random.default_rng(2), 16))


# ============================================================================================
# Semantics on crafted rows
# ============================================================================================


def synthetic_batch(n: int) -> PacketBatch:
    batch = PacketBatch.allocate(n)
    batch.frame[:] = np.arange(1, n + 1)
    batch.wirelen[:] = 60
    batch.caplen[:] = 60
    return batch


def random_batch(rng: np.random.Generator, n: int) -> PacketBatch:
    """Rows with random (not necessarily consistent) values in the columns filters read."""
    batch = synthetic_batch(n)
    batch.ip_version[:] = rng.choice([0, 4, 6], n)
    batch.proto[:] = rng.choice([0, 1, 6, 17, 58, 132], n)
    batch.l4[:] = np.where(rng.random(n) < 0.8, batch.proto, 0)
    batch.frag[:] = rng.choice([0, 0, 0, FRAG_PART, FRAG_COMPLETE], n)
    batch.sport[:] = rng.integers(0, 65536, n)
    batch.dport[:] = rng.integers(0, 65536, n)
    batch.src[:] = rng.integers(0, 256, (n, 16))
    batch.dst[:] = rng.integers(0, 256, (n, 16))
    batch.vlan_count[:] = rng.integers(0, 3, n)
    batch.vlan[:] = np.where(batch.vlan_count > 0, rng.integers(0, 4096, n), -1)
    batch.wirelen[:] = rng.integers(14, 2000, n)
    batch.tcp_flags[:] = rng.integers(0, 4096, n)
    batch.ethertype[:] = rng.choice([0, 0x800, 0x86DD, 0x806, 0x8864], n)
    return batch


def rows(*specs: dict[str, object]) -> PacketBatch:
    batch = synthetic_batch(len(specs))
    for i, spec in enumerate(specs):
        for name, value in spec.items():
            column = getattr(batch, name)
            if name in ("src", "dst", "out_src", "out_dst"):
                value = np.frombuffer(addr_bytes(str(value)), dtype=np.uint8)
            column[i] = value
    return batch


def selected(expr: str, batch: PacketBatch) -> list[int]:
    return [int(f) for f in batch.frame[compile_filter(expr).mask(batch)]]


V4_TCP = {"ip_version": 4, "proto": 6, "l4": 6, "ethertype": 0x800}
V4_UDP = {"ip_version": 4, "proto": 17, "l4": 17, "ethertype": 0x800}
V6_TCP = {"ip_version": 6, "proto": 6, "l4": 6, "ethertype": 0x86DD}


def test_host_compares_within_the_address_family() -> None:
    batch = rows(
        {**V4_TCP, "src": "10.0.0.1", "dst": "10.0.0.2"},
        {**V6_TCP, "src": "::ffff:10.0.0.1", "dst": "2001:db8::2"},
        {**V6_TCP, "src": "2001:db8::1", "dst": "2001:db8::2"},
        {"ip_version": 0},
    )
    assert selected("host 10.0.0.1", batch) == [1]
    assert selected("host ::ffff:10.0.0.1", batch) == [2]
    assert selected("src host 10.0.0.1", batch) == [1]
    assert selected("dst host 10.0.0.1", batch) == []
    assert selected("src and dst net 10.0.0.0/30", batch) == [1]
    assert selected("net 2001:db8::/32", batch) == [2, 3]
    assert selected("src net 2001:db8::/32", batch) == [3]
    assert selected("net 0.0.0.0/0", batch) == [1]
    assert selected("net ::/0", batch) == [2, 3]
    assert selected("not host 10.0.0.1", batch) == [2, 3, 4]
    assert selected("net 10.0.0.0 mask 255.0.0.255", batch) == []
    assert selected("net 10.0.0.0 mask 255.0.0.0", batch) == [1]


def test_ports_need_a_decoded_or_attributed_transport_header() -> None:
    batch = rows(
        {**V4_TCP, "sport": 40000, "dport": 80},
        {**V4_UDP, "sport": 53, "dport": 40000},
        {**V4_TCP, "l4": 0, "sport": 0, "dport": 80},  # header not decoded: ports unknown
        {**V4_UDP, "l4": 0, "frag": FRAG_PART, "sport": 40000, "dport": 53},  # attributed
        {**V4_UDP, "l4": 0, "frag": FRAG_PART, "sport": 0, "dport": 0},  # first unseen
        {"ip_version": 4, "proto": 1, "l4": 1, "icmp_type": 8},
        {**V6_TCP, "sport": 80, "dport": 80},
    )
    assert selected("port 80", batch) == [1, 7]
    assert selected("port 53", batch) == [2, 4]
    assert selected("udp port 53", batch) == [2, 4]
    assert selected("tcp port 53", batch) == []
    assert selected("port 0", batch) == []
    assert selected("src port 53", batch) == [2]
    assert selected("dst port 53", batch) == [4]
    assert selected("src and dst port 80", batch) == [7]
    assert selected("portrange 50-80", batch) == [1, 2, 4, 7]
    assert selected("not port 80", batch) == [2, 3, 4, 5, 6]
    assert selected("tcp", batch) == [1, 3, 7]


def test_ip_and_ip6_include_headers_the_link_announced_but_could_not_decode() -> None:
    batch = rows(
        {**V4_TCP},
        {"ip_version": 0, "ethertype": 0x800, "malformed": 9},
        {"ip_version": 0, "ppp_proto": 0x57, "malformed": 12},
        {"ip_version": 0, "ethertype": 0x806},
        {**V6_TCP},
    )
    assert selected("ip", batch) == [1, 2]
    assert selected("ip6", batch) == [3, 5]
    assert selected("not ip and not ip6", batch) == [4]
    assert selected("arp", batch) == [4]
    assert selected("tcp", batch) == [1, 5]


def test_protocols() -> None:
    batch = rows(
        {"ip_version": 4, "proto": 1, "l4": 1},
        {"ip_version": 6, "proto": 58, "l4": 58},
        {"ip_version": 6, "proto": 1},  # ICMP (v4) number over IPv6: not `icmp`
        {"ip_version": 4, "proto": 132},
        {"ip_version": 4, "proto": 50},
        {"ip_version": 6, "proto": 50},
    )
    assert selected("icmp", batch) == [1]
    assert selected("icmp6", batch) == [2]
    assert selected("proto 1", batch) == [1, 3]
    assert selected("ip proto 1", batch) == [1]
    assert selected("ip6 proto 1", batch) == [3]
    assert selected("sctp", batch) == [4]
    assert selected("esp", batch) == [5, 6]
    assert selected("ip proto \\esp", batch) == [5]


def test_vlan_less_greater_multicast() -> None:
    batch = rows(
        {"vlan_count": 1, "vlan": 100, "wirelen": 64},
        {"vlan_count": 2, "vlan": 200, "wirelen": 100},
        {"vlan": -1, "wirelen": 101, "ip_version": 4, "dst": "224.0.0.251"},
        {"vlan": -1, "wirelen": 1514, "ip_version": 6, "dst": "ff02::1"},
        {"vlan": -1, "wirelen": 99, "ip_version": 4, "dst": "223.255.255.255"},
    )
    assert selected("vlan", batch) == [1, 2]
    assert selected("vlan 200", batch) == [2]
    assert selected("vlan 0", batch) == []
    assert selected("less 100", batch) == [1, 2, 5]
    assert selected("greater 100", batch) == [2, 3, 4]
    assert selected("len > 100", batch) == [3, 4]
    assert selected("ip multicast", batch) == [3]
    assert selected("ip6 multicast", batch) == [4]


def test_header_fields() -> None:
    syn, synack, ack = 0x002, 0x012, 0x010
    batch = rows(
        {**V4_TCP, "tcp_flags": syn, "tcp_hlen": 40, "win": 0},
        {**V6_TCP, "tcp_flags": synack | 0x100, "tcp_hlen": 20, "win": 512},
        {**V4_TCP, "tcp_flags": ack, "tcp_hlen": 32, "win": 512},
        {**V4_UDP, "sport": 53, "dport": 4000, "udp_len": 100},
        {"ip_version": 4, "proto": 1, "l4": 1, "icmp_type": 8, "icmp_code": 0},
        {"ip_version": 6, "proto": 58, "l4": 58, "icmp_type": 128, "icmp_code": 0},
        {**V4_TCP, "l4": 0, "frag": FRAG_PART, "tcp_flags": syn},
    )
    assert selected("tcp[tcpflags] & tcp-syn != 0", batch) == [1, 2]
    assert selected("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", batch) == [1]
    assert selected("tcp[13] = 0x12", batch) == [2]  # AE (0x100) is not in byte 13
    assert selected("tcp[12:1] & 0x01 != 0", batch) == [2]  # ... it is in byte 12
    assert selected("tcp[12:1] & 0xf0 = 0xa0", batch) == [1]  # data offset 10 words
    assert selected("tcp[12:2] & 0x1ff = 0x112", batch) == [2]
    assert selected("tcp[14:2] = 0", batch) == [1]
    assert selected("not tcp[13] & tcp-ack != 0", batch) == [1, 4, 5, 6, 7]
    assert selected("udp[0:2] = 53", batch) == [4]
    assert selected("udp[4:2] > 99", batch) == [4]
    assert selected("icmp[icmptype] = icmp-echo", batch) == [5]
    assert selected("icmp6[icmp6type] = icmp6-echo", batch) == [6]
    assert selected("icmp[0] = 128", batch) == []


def test_select_takes_the_selected_rows() -> None:
    batch = rows({**V4_TCP, "sport": 1}, {**V4_UDP, "sport": 2}, {**V4_TCP, "sport": 3})
    out = compile_filter("tcp").select(batch)
    assert out.sport.tolist() == [1, 3]
    assert compile_filter("tcp or udp").select(batch) is batch


def test_mask_of_an_empty_batch() -> None:
    mask = compile_filter("host 1.2.3.4 and tcp[13] = 2 or port 80").mask(PacketBatch.allocate(0))
    assert mask.dtype == np.bool_ and mask.shape == (0,)


def test_mask_is_columnar_on_a_large_batch() -> None:
    """A million rows through a busy filter: whole-column numpy, not a loop per packet."""
    import time

    batch = random_batch(np.random.default_rng(3), 1_000_000)
    f = compile_filter("(tcp port 443 or udp port 53) and not host 10.0.0.1 and net "
                       "2001:db8::/32 or tcp[tcpflags] & tcp-syn != 0 and greater 100")
    f.mask(batch.take(slice(0, 10)))
    start = time.perf_counter()
    mask = f.mask(batch)
    elapsed = time.perf_counter() - start
    assert mask.shape == (1_000_000,)
    assert elapsed < 5.0, f"{elapsed:.2f}s for 1M rows"  # ~20 ms here; a Python loop: minutes


def test_mask_accepts_non_contiguous_address_columns() -> None:
    batch = rows({**V4_TCP, "src": "10.0.0.1"}, {**V4_TCP, "src": "10.0.0.2"},
                 {**V4_TCP, "src": "10.0.0.1"})
    batch.src = np.asfortranarray(batch.src)
    assert selected("src host 10.0.0.1", batch) == [1, 3]


# ============================================================================================
# Against tcpdump
# ============================================================================================

needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")


@dataclass
class Capture:
    path: Path
    batch: PacketBatch
    keys: list[tuple[int, int, int, bytes]]
    """(ts_ns, caplen, wirelen, bytes) per frame, the identity tcpdump's output keeps."""
    classes: list[frozenset[str]]
    """Documented-difference classes per frame (index = frame number - 1)."""

    @property
    def ethernet(self) -> bool:
        return bool(len(self.batch)) and bool((self.batch.linktype == 1).all())


def own_captures() -> list[Path]:
    return sorted(p for p in CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


def all_captures() -> list[object]:
    params: list[object] = [pytest.param(p, id=p.name) for p in own_captures()]
    corpus = corpus_captures()
    if corpus:
        params += [pytest.param(p, id=f"corpus-{p.name}", marks=pytest.mark.corpus)
                   for p in corpus]
    else:
        params.append(pytest.param(None, id="corpus", marks=pytest.mark.skip(
            reason="public capture corpus not found: set PORTLENS_CORPUS or provide "
                   "../shared/captures/public")))
    return params


@functools.cache
def load(path: Path) -> Capture:
    decoder = Decoder()
    keys: list[tuple[int, int, int, bytes]] = []
    batches = []
    with open_capture(path) as reader:
        for frames in reader:
            for i in range(len(frames)):
                start, caplen = int(frames.offset[i]), int(frames.caplen[i])
                keys.append((int(frames.ts_ns[i]), caplen, int(frames.wirelen[i]),
                             frames.data[start:start + caplen].tobytes()))
            batches.append(decoder.decode(frames))
    batch = PacketBatch.concat(batches)
    # a frame's own row: its innermost packet (the middle carriers of three tunnels, an
    # A-MSDU's later subframes are rows after it, docs/decoding.md *Rows per frame*)
    batch = batch.take(batch.sub == SUB_FRAME)
    return Capture(path, batch, keys, [difference_classes(batch, keys, i)
                                       for i in range(len(batch))])


def difference_classes(b: PacketBatch, keys: list[tuple[int, int, int, bytes]],
                       i: int) -> frozenset[str]:
    """Why portlens may select frame i differently from tcpdump (docs/filters.md)."""
    out = set()
    raw = keys[i][3]
    if b.tunnel_depth[i]:
        out.add("tunnel")
    if b.vlan_count[i] or b.mpls_count[i] or b.ethertype[i] == 0x8864:
        out.add("encapsulation")
    if b.linktype[i] == 0 and len(raw) >= 4 and int.from_bytes(raw[:4], "little") > 0xFFFF:
        out.add("framing")
    if b.linktype[i] == 9 and raw[:2] != b"\xff\x03":
        out.add("framing")
    if b.ip_version[i] == 6 and b.ip_hlen[i] > 40 and not b.frag[i]:
        out.add("ipv6-ext")
    if b.frag[i]:
        out.add("fragment")
    if b.malformed[i]:
        out.add("malformed")
    if b.ip_version[i] and b.proto[i] in (6, 17) and not b.l4[i] and not b.frag[i]:
        out.add("no-transport")
    if b.ethertype[i] in (0x0806, 0x8035):
        out.add("arp")
    if b.ip_version[i] and b.proto[i] == 132:
        out.add("sctp")  # difference 9: tcpdump's port primitives match SCTP ports
    return frozenset(out)


def tcpdump_select(cap: Capture, expr: str) -> tuple[set[int] | None, str]:
    """Frame numbers tcpdump selects, or (None, why tcpdump refused)."""
    assert TCPDUMP is not None
    proc = subprocess.run([TCPDUMP, "--time-stamp-precision=nano", "-r", str(cap.path),
                           "-w", "-", expr], capture_output=True, check=False)
    err = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0:
        why = err[-1] if err else f"exit status {proc.returncode}"
        if "expression rejects all packets" in why:
            return set(), ""  # libpcap proved it selects nothing: a valid answer
        return None, why
    chosen: set[int] = set()
    it = iter(enumerate(cap.keys, start=1))
    for key in pcap_records(proc.stdout):
        for number, k in it:
            if k == key:
                chosen.add(number)
                break
        else:
            raise AssertionError(f"tcpdump wrote a frame not in {cap.path.name}: {key[:3]}")
    return chosen, ""


def pcap_records(data: bytes) -> Iterable[tuple[int, int, int, bytes]]:
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\xa1\xb2\x3c\x4d": ">"}[magic]
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack_from(order + "IIII", data, pos)
        pos += 16
        yield (sec * 10**9 + (frac if nano else frac * 1000), caplen, wirelen,
               data[pos:pos + caplen])
        pos += caplen


def portlens_select(cap: Capture, expr: str) -> set[int]:
    return {int(f) for f in cap.batch.frame[compile_filter(expr).mask(cap.batch)]}


def compare(cap: Capture, exprs: list[str]) -> None:
    """Every expression selects the same frames in both, outside documented classes; skips
    (with tcpdump's reason) what tcpdump cannot filter, after checking the rest."""
    if TCPDUMP is None:
        pytest.skip("tcpdump is not installed")
    workers = max(2, (os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(lambda e: tcpdump_select(cap, e), exprs))
    problems, refused = [], []
    for expr, (theirs, why) in zip(exprs, answers, strict=True):
        if theirs is None:
            refused.append(f"{expr!r}: {why}")
            continue
        ours = portlens_select(cap, expr)
        exempt = {"ipv6"} if ("tcp[" in expr or "udp[" in expr) else set()
        for number in sorted(ours ^ theirs):
            classes = set(cap.classes[number - 1])
            if exempt and cap.batch.ip_version[number - 1] == 6:
                classes |= exempt
            if not classes:
                who = "portlens only" if number in ours else "tcpdump only"
                problems.append(f"{expr!r}: frame {number} selected by {who}")
    assert not problems, f"{cap.path.name}: " + "; ".join(problems[:20])
    if refused:
        compared = len(exprs) - len(refused)
        pytest.skip(f"tcpdump refused {len(refused)} of {len(exprs)} expressions "
                    f"({compared} others agree): {refused[0]}")


def placeholders(cap: Capture) -> dict[str, str]:
    """Values present in the capture (on frames without documented differences) to put in
    expression templates: the most frequent ports and addresses of each family."""
    b = cap.batch
    plain = np.array([not c for c in cap.classes], dtype=bool)
    out: dict[str, str] = {}
    ports: Counter[int] = Counter()
    tcp_udp = plain & np.isin(b.l4, (6, 17))
    ports.update(b.sport[tcp_udp].tolist())
    ports.update(b.dport[tcp_udp].tolist())
    for name, (port, _) in zip(("p", "q"), ports.most_common(2), strict=False):
        out[name] = str(port)
    for version, a, bb in ((4, "a4", "b4"), (6, "a6", "b6")):
        rows_v = plain & (b.ip_version == version)
        addrs: Counter[bytes] = Counter(bytes(x) for x in b.src[rows_v])
        addrs.update(bytes(x) for x in b.dst[rows_v])
        for name, (raw, _) in zip((a, bb), addrs.most_common(2), strict=False):
            out[name] = addr_text(raw, version)
    if "a4" in out:
        ip4 = ipaddress.IPv4Address(out["a4"])
        for bits in (8, 16, 24):
            out[f"a4net{bits}"] = str(ipaddress.ip_network(f"{ip4}/{bits}", strict=False)
                                      .network_address)
        out["a4short"] = ".".join(out["a4"].split(".")[:3])
    if "a6" in out:
        for bits in (32, 64):
            out[f"a6net{bits}"] = str(ipaddress.ip_network(f"{out['a6']}/{bits}",
                                                           strict=False).network_address)
    return out


def fill(cap: Capture, templates: list[str]) -> list[str]:
    values = placeholders(cap)
    exprs, missing = [], set()
    for t in templates:
        try:
            exprs.append(t.format(**values))
        except KeyError as exc:
            name = str(exc.args[0])
            missing.add("TCP/UDP port" if name in "pq" else f"IPv{name[1]} address")
    if not exprs:
        pytest.skip(f"no {' or '.join(sorted(missing))} in the capture to filter on "
                    "(outside documented differences)")
    return exprs


PROTOCOLS = [
    "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "not ip", "not tcp", "arp", "ip proto 17",
    "ip6 proto 58", "proto 6", "proto 17 or 1", "ip proto \\udp", "ip6 proto \\tcp", "sctp",
    "igmp", "esp", "ip multicast", "ip6 multicast", "less 100", "greater 200",
    "less 60 or greater 1000", "ip and not tcp and not udp",
]
PORTS = [
    "port {p}", "not port {p}", "src port {p}", "dst port {p}", "tcp port {p}",
    "udp port {p}", "port {p} or {q}", "tcp port {p} or {q}", "src or dst port {q}",
    "src and dst port {p}", "portrange 1-1023", "src portrange 1024-65535",
    "dst portrange {q}-{p}", "tcp portrange 0-100", "port 53", "udp port domain",
    "port http", "not port {p} and not {q}", "port {p} and not {q}", "udp port {p} or 53",
]
ADDRESSES_V4 = [
    "host {a4}", "src host {a4}", "dst {a4}", "net {a4net16}/16", "net {a4short}",
    "src and dst net {a4net8} mask 255.0.0.0", "host {a4} or {b4}", "src {a4} and dst {b4}",
    "host {a4} and not {b4}", "ip host {a4} and tcp", "not host {a4}",
    "src or dst host {a4} and (port {p} or 53)", "dst net {a4net24}/24 or src {b4}",
    "host {a4} and ({b4} or 127.0.0.1)", "host {a4} or (port {p}) or {b4}",
]
ADDRESSES_V6 = [
    "host {a6}", "src host {a6}", "dst host {b6}", "net {a6net64}/64", "ip6 net {a6net32}/32",
    "host {a6} or {b6}", "ip6 host {a6} and udp", "not src host {a6}",
    "src or dst host {a6} and not port {p}", "src and dst net {a6net32}/32",
]
COMBINATIONS = [
    "tcp or udp and port {p}", "not tcp and not udp", "udp and not port 53 and not port 67",
    "not (tcp or udp)", "!tcp && !udp", "tcp || icmp", "(tcp and port {p}) or (udp and port 53)",
    "not not tcp", "ip and not tcp or ip6 and udp", "port {p} and (tcp or udp) and greater 60",
    "tcp and port {p} or icmp or icmp6", "not (port {p} or {q})", "not port {p} or {q}",
    "(ip or ip6) and not (tcp and port {p})",
]
HEADER_FIELDS = [
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[tcpflags] & tcp-rst != 0",
    "tcp[13] = 0x18", "not tcp[13] & 2 != 0", "tcp[0:2] = {p} or tcp[2:2] = {p}",
    "tcp[14:2] = 0", "tcp[12:1] & 0xf0 > 0x50", "tcp[4:4] > 1000000",
    "udp[0:2] = 53 or udp[2:2] = 53", "udp[4:2] > 100",
    "icmp[icmptype] = icmp-echo or icmp[icmptype] = icmp-echoreply", "icmp[icmpcode] != 0",
    "icmp6[icmp6type] == icmp6-echo",
    "icmp6[icmp6type] >= icmp6-routersolicit and icmp6[icmp6type] <= icmp6-redirect",
    "len >= 100", "len < 60 or len = 1514",
]
GROUPS = {
    "protocols": PROTOCOLS, "ports": PORTS, "addresses-v4": ADDRESSES_V4,
    "addresses-v6": ADDRESSES_V6, "combinations": COMBINATIONS,
    "header-fields": HEADER_FIELDS,
}


@needs_tcpdump
@pytest.mark.parametrize("group", sorted(GROUPS))
@pytest.mark.parametrize("path", all_captures())
def test_same_frames_as_tcpdump(path: Path, group: str) -> None:
    cap = load(path)
    readable, why = tcpdump_select(cap, "")
    if readable is None:
        pytest.skip(f"tcpdump cannot read {path.name}: {why}")
    compare(cap, fill(cap, GROUPS[group]))


def test_the_comparison_is_not_vacuous() -> None:
    """Documented classes leave most frames of the captures compared."""
    frames = compared = 0
    for path in own_captures() + corpus_captures():
        cap = load(path)
        frames += len(cap.classes)
        compared += sum(1 for c in cap.classes if not c)
    assert frames > 0
    assert compared / frames > 0.75, (compared, frames)


def encapsulation_prefix(raw: bytes) -> str | None:
    """The tcpdump keywords that step over this Ethernet frame's tags and labels, or None
    when libpcap cannot step over them (a 0x9200 tag, MPLS over VLAN...)."""
    words, pos = [], 12
    ethertype = int.from_bytes(raw[pos:pos + 2], "big")
    while ethertype in (0x8100, 0x88A8, 0x9100):
        words.append("vlan")
        pos += 4
        ethertype = int.from_bytes(raw[pos:pos + 2], "big")
    if ethertype in (0x8847, 0x8848):
        pos += 2
        while pos + 4 <= len(raw):
            words.append("mpls")
            bottom = raw[pos + 2] & 1
            pos += 4
            if bottom:
                break
    elif ethertype == 0x8864:
        words.append("pppoes")
    elif ethertype in (0x9200,):
        return None
    return " and ".join(words)


ENCAPSULATED = ["ip", "ip6", "tcp", "udp", "icmp", "icmp6", "not udp", "port {p}",
                "udp and not port 53", "host {a4}", "host {a6}", "arp", "less 100",
                "tcp[13] & 2 != 0"]


def encapsulated_values(cap: Capture, frames: list[int]) -> dict[str, str]:
    """A port and an address of each family that the encapsulated frames carry."""
    b = cap.batch
    rows_ = np.array(frames, dtype=np.int64) - 1
    values = {"p": "80", "a4": "192.0.2.1", "a6": "2001:db8::1"}
    ports: Counter[int] = Counter(b.dport[rows_][np.isin(b.l4[rows_], (6, 17))].tolist())
    if ports:
        values["p"] = str(ports.most_common(1)[0][0])
    for version, name in ((4, "a4"), (6, "a6")):
        addrs: Counter[bytes] = Counter(bytes(b.src[i]) for i in rows_
                                        if b.ip_version[i] == version)
        if addrs:
            values[name] = addr_text(addrs.most_common(1)[0][0], version)
    return values


@needs_tcpdump
@pytest.mark.parametrize("path", all_captures())
def test_encapsulations_agree_when_spelled_with_tcpdump_keywords(path: Path) -> None:
    """portlens sees through VLAN, MPLS and PPPoE; tcpdump needs `vlan and`, `mpls and`,
    `pppoes and` to step over them. With those prefixes (which portlens reads as plain
    tests) both select the same frames."""
    cap = load(path)
    if not cap.ethernet:
        pytest.skip("not an Ethernet capture")
    groups: dict[str, list[int]] = {}
    for i, classes in enumerate(cap.classes):
        if classes - {"encapsulation"} or "encapsulation" not in classes:
            continue
        prefix = encapsulation_prefix(cap.keys[i][3])
        if prefix:
            groups.setdefault(prefix, []).append(i + 1)
    if not groups:
        pytest.skip("no VLAN/MPLS/PPPoE frames")
    values = encapsulated_values(cap, [f for frames in groups.values() for f in frames])
    problems, compared = [], 0
    for prefix, frames in groups.items():
        for template in ENCAPSULATED:
            expr = f"{prefix} and ({template.format(**values)})"
            theirs, _ = tcpdump_select(cap, expr)
            if theirs is None:
                continue  # e.g. `mpls and arp`: libpcap has no ARP over MPLS
            ours = portlens_select(cap, expr)
            compared += 1
            for f in frames:
                if (f in ours) != (f in theirs) and not (
                        "tcp[" in expr and cap.batch.ip_version[f - 1] == 6):
                    problems.append(f"{expr!r}: frame {f} portlens={f in ours} "
                                    f"tcpdump={f in theirs}")
    assert compared
    assert not problems, "; ".join(problems[:20])


@needs_tcpdump
@pytest.mark.parametrize("path", all_captures())
def test_vlan_primitive_against_tcpdump(path: Path) -> None:
    """`vlan` and `vlan ID` test the outermost tag in both (compared on every frame whose
    outer tag libpcap knows: 0x8100, 0x88a8, 0x9100)."""
    cap = load(path)
    b = cap.batch
    if not cap.ethernet or not b.vlan_count.any():
        pytest.skip("no VLAN-tagged Ethernet frames")
    ids = sorted({int(v) for v in b.vlan[b.vlan_count > 0]})
    # one `vlan` per expression: a second one reads the NEXT tag in tcpdump (documented)
    exprs = ["vlan", "not vlan", *(f"vlan {v}" for v in ids), *(f"not vlan {v}" for v in ids)]
    compared = [i + 1 for i in range(len(b)) if not cap.classes[i] - {"encapsulation", "arp"}
                and cap.keys[i][3][12:14] != b"\x92\x00"]
    assert compared
    for expr in exprs:
        theirs, why = tcpdump_select(cap, expr)
        assert theirs is not None, why
        ours = portlens_select(cap, expr)
        wrong = [f for f in compared if (f in ours) != (f in theirs)]
        assert not wrong, (expr, wrong)


def test_ipv6_protocol_is_tcpdumps_protochain() -> None:
    """Documented difference `ipv6-ext`: portlens' `proto N` on IPv6 follows the extension
    headers, which is tcpdump's `ip6 protochain N`."""
    if TCPDUMP is None:
        pytest.skip("tcpdump is not installed")
    cap = load(CAPTURES / "ip-options-ext.pcap")
    ext = [i + 1 for i, c in enumerate(cap.classes) if "ipv6-ext" in c]
    assert ext
    differs = 0
    for n in (6, 17, 50, 58, 59):
        theirs, _ = tcpdump_select(cap, f"ip6 protochain {n}")
        plain, _ = tcpdump_select(cap, f"ip6 proto {n}")
        assert theirs is not None and plain is not None
        ours = portlens_select(cap, f"ip6 proto {n}")
        v6 = {i + 1 for i in range(len(cap.batch)) if cap.batch.ip_version[i] == 6
              and not cap.classes[i] - {"ipv6-ext"}}
        assert ours & v6 == theirs & v6, n
        differs += len((ours ^ plain) & v6)
    assert differs, "the capture should show tcpdump's `ip6 proto` missing extension chains"


def test_tunnels_filter_on_the_innermost_layer() -> None:
    """Documented difference `tunnel`: `host INNER` selects the tunnelled frame in portlens,
    `host OUTER` in tcpdump."""
    cap = load(CAPTURES / "tunnels.pcap")
    b = cap.batch
    tunnelled = [i for i in range(len(b)) if b.tunnel_depth[i] and b.ip_version[i] == 4
                 and b.out_src[i][:12].tobytes() == bytes(10) + b"\xff\xff"]
    assert tunnelled
    i = tunnelled[0]
    inner = addr_text(b.src[i], 4)
    outer = addr_text(b.out_src[i], 4)
    assert inner != outer
    assert i + 1 in portlens_select(cap, f"src host {inner}")
    assert i + 1 not in portlens_select(cap, f"src host {outer}")
    if TCPDUMP is not None:
        theirs, _ = tcpdump_select(cap, f"src host {outer}")
        assert theirs is not None and i + 1 in theirs
        theirs, _ = tcpdump_select(cap, f"src host {inner}")
        assert theirs is not None and i + 1 not in theirs


def test_port_selects_every_fragment_of_the_datagram() -> None:
    """Documented difference `fragment`: portlens attributes the first fragment's ports to
    every fragment; tcpdump's `port` sees only IPv4 first fragments."""
    cap = load(CAPTURES / "fragments.pcap")
    b = cap.batch
    fragments = {i + 1 for i in range(len(b)) if b.frag[i]}
    assert fragments
    port = int(b.dport[min(fragments) - 1])
    ours = portlens_select(cap, f"udp port {port}")
    assert fragments <= ours
    if TCPDUMP is not None:
        theirs, _ = tcpdump_select(cap, f"udp port {port}")
        assert theirs is not None
        assert theirs <= ours
        assert fragments - theirs, "tcpdump should miss the non-first fragments"
        # ... and agrees on whole datagrams
        assert {f for f in theirs if f not in fragments} == {f for f in ours
                                                             if f not in fragments}


def test_host_does_not_match_arp() -> None:
    """Documented difference `arp`: tcpdump's `host` also reads ARP sender/target addresses."""
    cap = load(CAPTURES / "link-ethernet.pcap")
    arp = [i for i in range(len(cap.batch)) if cap.batch.ethertype[i] == 0x0806
           and not cap.batch.vlan_count[i]]
    assert arp
    raw = cap.keys[arp[0]][3]
    sender = str(ipaddress.IPv4Address(raw[28:32]))
    assert arp[0] + 1 not in portlens_select(cap, f"host {sender}")
    assert arp[0] + 1 in portlens_select(cap, "arp")
    if TCPDUMP is not None:
        theirs, _ = tcpdump_select(cap, f"host {sender}")
        assert theirs is not None and arp[0] + 1 in theirs


# --------------------------------------------------------------------------------------------
# Random expressions against tcpdump: precedence and abbreviations in combination
# --------------------------------------------------------------------------------------------


def random_expression(rng: random.Random, values: dict[str, str], depth: int = 0) -> str:
    atoms = ["tcp", "udp", "icmp", "ip", "ip6", "port {p}", "src port {p}", "dst port {q}",
             "port {p} or {q}", "tcp port {q}", "less 100", "greater 500", "proto 17",
             "host {a4}", "host {a4} or {b4}", "src {a4}", "net {a4net16}/16",
             "not host {a4} and {b4}", "tcp[13] & 2 != 0", "udp[2:2] = 53"]
    usable = []
    for a in atoms:
        with contextlib.suppress(KeyError):
            usable.append(a.format(**values))
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice(usable)
    if roll < 0.45:
        return rng.choice(["not ", "!"]) + random_expression(rng, values, depth + 1)
    if roll < 0.55:
        return "(" + random_expression(rng, values, depth + 1) + ")"
    op = rng.choice([" and ", " or ", " && ", " || "])
    return random_expression(rng, values, depth + 1) + op + random_expression(rng, values,
                                                                              depth + 1)


@needs_tcpdump
@pytest.mark.parametrize("name", ["tcp-session.pcap", "icmp.pcap", "fragments.pcap",
                                  "corpus:zeek-wikipedia.pcap", "corpus:zeek-ftp-ipv4.pcap"])
def test_random_expressions_against_tcpdump(name: str) -> None:
    if name.startswith("corpus:"):
        found = [p for p in corpus_captures() if p.name == name.split(":", 1)[1]]
        if not found:
            pytest.skip(f"public capture corpus has no {name}")
        path = found[0]
    else:
        path = CAPTURES / name
    cap = load(path)
    rng = random.Random(name)
    values = placeholders(cap)
    compare(cap, [random_expression(rng, values) for _ in range(60)])
