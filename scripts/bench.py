#!/usr/bin/env python3
"""Benchmark portlens on a large synthetic capture that looks like real traffic.

Subcommands:

``generate``
    Write a classic pcap (Ethernet, nanosecond timestamps by default) of about ``--packets``
    packets: thousands of concurrent TCP connections (handshakes with real option sets, data both
    ways, delayed and duplicate ACKs, fast and RTO retransmissions, reordering, FIN and RST
    teardowns, refused and unanswered SYNs), UDP (DNS, QUIC-like 443, NTP, one-way syslog /
    netflow / multicast), ICMP echo and port-unreachable, about 10 % IPv6. Checksums are correct
    except an intended ~0.1 % of TCP/UDP ones. ``--summary-json`` writes the generator's ground
    truth.

``run``
    Generate the capture if missing, then time portlens commands and reference tools (tcpdump,
    tshark, tcptrace, capinfos) on it as whole processes (wall time and peak RSS, best of 3) and
    print a markdown table; ``--markdown-out docs/benchmarks.md`` rewrites the marked section.

``tunnel``
    Write a capture again with its frames carried in tunnels: ``steady``, each flow in VXLAN
    between one of eight pairs of endpoints (a data centre's overlay); ``moving``, every flow
    moving packet by packet between VXLAN of six pairs of endpoints, GRE of three pairs of
    routers and no tunnel (the case where the shards of ``--workers`` hand tunnel carriers'
    uids to each other most often).

``live``
    Replay the capture (default: a generated 300 k-packet one) with tcpreplay at given rates
    into a veth pair between two network namespaces it creates (``plbench-a`` / ``plbench-b``,
    ``plb0`` / ``plb1``), while one tool at a time captures on the other end: ``portlens sniff``,
    ``portlens packets --stats`` (capture + decode, no tracking), ``tcpdump -w /dev/null`` and
    scapy's ``sniff``. Records packets sent, received by filter, captured, kernel drops, how
    long each tool stayed busy after the replay, its CPU time and peak memory. Needs root and
    tcpreplay (Debian: ``apt-get install -y tcpreplay``); the namespaces are deleted at the end,
    whatever happens.

How the generator stays fast: flows are simulated in plain Python, but each packet is only a
small tuple (time, flow-direction id, seq, ack, flags, option template, window, payload length,
payload offset, SACK edges). Rows are sorted by time in chunks, and every header of a chunk is
built in one 2-D numpy array per header layout (IP version x transport x TCP option template);
IPv4, TCP and UDP checksums are computed on those arrays with column sums, the payload's share
from prefix sums over one payload blob (random bytes plus real DNS / NTP / HTTP templates).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import heapq
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

M32 = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
EPOCH_NS = 1_715_677_200 * 10**9
"""Capture start: 2024-05-14 09:00:00 UTC."""
PKTS_PER_SECOND = 6500
"""Default packet rate: 2 M packets span about 5 minutes."""
POOL_BYTES = 1 << 22
"""Random payload pool at the start of the payload blob."""
FLUSH_ROWS = 200_000
WRITE_ROWS = 32_768
DEFAULT_SPAN_MIN = 10.0

# ---------------------------------------------------------------------------------------------
# TCP option templates: fixed bytes plus the offsets of the per-packet fields inside them.


@dataclass(frozen=True)
class OptTemplate:
    name: str
    data: bytes
    mss: int = -1
    ws: int = -1
    tsval: int = -1
    tsecr: int = -1
    sack: int = -1
    """Offset of a SACK block's left edge; the right edge follows at +4."""


_TS = bytes([1, 1, 8, 10]) + bytes(8)
_SACK1 = bytes([1, 1, 5, 10]) + bytes(8)
OPTS: tuple[OptTemplate, ...] = (
    OptTemplate("none", b""),
    OptTemplate("ts", _TS, tsval=4, tsecr=8),
    OptTemplate("ts+sack", _TS + _SACK1, tsval=4, tsecr=8, sack=16),
    OptTemplate("sack", _SACK1, sack=4),
    # Linux SYN / SYN-ACK: mss, sackOK, TS, nop, wscale.
    OptTemplate("syn-linux", bytes([2, 4, 0, 0, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 0]),
                mss=2, tsval=8, tsecr=12, ws=19),
    # Windows SYN: mss, nop, wscale, nop, nop, sackOK.
    OptTemplate("syn-windows", bytes([2, 4, 0, 0, 1, 3, 3, 0, 1, 1, 4, 2]), mss=2, ws=7),
    # macOS SYN: mss, nop, wscale, nop, nop, TS, sackOK, eol, eol.
    OptTemplate("syn-macos", bytes([2, 4, 0, 0, 1, 3, 3, 0, 1, 1, 8, 10]) + bytes(8)
                + bytes([4, 2, 0, 0]), mss=2, ws=7, tsval=12, tsecr=16),
    # Linux SYN-ACK to a SYN without timestamps: mss, nop, nop, sackOK, nop, wscale.
    OptTemplate("synack-nots", bytes([2, 4, 0, 0, 1, 1, 4, 2, 1, 3, 3, 0]), mss=2, ws=11),
    OptTemplate("mss", bytes([2, 4, 0, 0]), mss=2),
)
(OPT_NONE, OPT_TS, OPT_TS_SACK, OPT_SACK, OPT_SYN_LINUX, OPT_SYN_WIN, OPT_SYN_MAC,
 OPT_SYNACK_NOTS, OPT_MSS) = range(len(OPTS))


@dataclass(frozen=True)
class OsProfile:
    name: str
    syn_opt: int
    syn_win: int
    ws: int
    ttl: int
    ts: bool
    win_range: tuple[int, int]
    """Raw (unscaled) window values seen after the handshake."""


LINUX = OsProfile("linux", OPT_SYN_LINUX, 64240, 7, 64, True, (502, 3000))
WINDOWS = OsProfile("windows", OPT_SYN_WIN, 64240, 8, 128, False, (255, 1026))
MACOS = OsProfile("macos", OPT_SYN_MAC, 65535, 6, 64, True, (2048, 4096))

ROW_DTYPE = np.dtype([
    ("ts", "<i8"), ("fd", "<i4"), ("seq", "<u4"), ("ack", "<u4"), ("flags", "u1"), ("opt", "u1"),
    ("win", "<u2"), ("plen", "<u2"), ("poff", "<i8"), ("sl", "<u4"), ("sr", "<u4"),
])
"""One packet: time (ns since capture start), flow direction (-1: a prebuilt raw frame, poff is
its index), TCP fields, payload length and blob offset (-1: random bytes), SACK edges."""

FD_DTYPE = np.dtype([
    ("ipv", "u1"), ("proto", "u1"), ("src", "<i4"), ("dst", "<i4"), ("smac", "<i4"),
    ("dmac", "<i4"), ("sport", "<u2"), ("dport", "<u2"), ("ttl", "u1"), ("tos", "u1"),
    ("flow", "<u4"), ("mss", "<u2"), ("ws", "u1"), ("tsv_base", "<u4"), ("tse_base", "<u4"),
    ("tsv_shift", "<i8"), ("tse_shift", "<i8"), ("ipid", "<u2"),
])
"""One direction of one flow: everything constant over its packets."""

Row = tuple[int, int, int, int, int, int, int, int, int, int, int]

# ---------------------------------------------------------------------------------------------
# Payload blob: random pool + application templates, with word prefix sums for checksums.


class PayloadBlob:
    def __init__(self, nprng: np.random.Generator) -> None:
        self._parts: list[bytes] = [nprng.bytes(POOL_BYTES)]
        self.size = POOL_BYTES
        self.data = b""
        self.u8: U8 = np.zeros(0, np.uint8)
        self.prefix: I64 = np.zeros(1, np.int64)

    def add(self, data: bytes) -> int:
        """Store data at an even offset and return the offset."""
        off = self.size
        if len(data) % 2:
            data += b"\0"
        self._parts.append(data)
        self.size += len(data)
        return off

    def finalize(self) -> None:
        self.data = b"".join(self._parts)
        self._parts = []
        self.u8 = np.frombuffer(self.data, np.uint8)
        words = np.frombuffer(self.data, ">u2").astype(np.int64)
        self.prefix = np.concatenate([np.zeros(1, np.int64), np.cumsum(words)])

    def word_sum(self, off: I64, length: I64) -> I64:
        """Ones-complement-ready (unfolded) sum of the 16-bit words of each payload."""
        half = off // 2
        s = self.prefix[half + length // 2] - self.prefix[half]
        odd = (length & 1).astype(bool)
        last = self.u8[np.where(odd, off + length - 1, 0)].astype(np.int64) << 8
        return np.asarray(s + np.where(odd, last, 0), np.int64)


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def _dns_pair(rnd: random.Random, name: str, qtype: int) -> tuple[bytes, bytes]:
    qid = rnd.randrange(65536)
    opt_rr = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    question = _dns_name(name) + struct.pack(">HH", qtype, 1)
    query = struct.pack(">HHHHHH", qid, 0x0120, 1, 0, 0, 1) + question + opt_rr
    if rnd.random() < 0.06:  # NXDOMAIN
        resp = struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 1) + question + opt_rr
        return query, resp
    answers = b""
    n = 1
    if rnd.random() < 0.35:  # CNAME chain
        target = _dns_name("edge-" + str(rnd.randrange(100)) + ".cdn.example.net")
        answers += struct.pack(">HHHIH", 0xC00C, 5, 1, rnd.randrange(60, 3600), len(target))
        answers += target
        n += 1
    k = rnd.choice((1, 1, 2, 4))
    for _ in range(k):
        rdata = rnd.randbytes(4 if qtype == 1 else 16)
        answers += struct.pack(">HHHIH", 0xC00C, qtype, 1, rnd.randrange(30, 300), len(rdata))
        answers += rdata
    resp = (struct.pack(">HHHHHH", qid, 0x8180, 1, n - 1 + k, 0, 1) + question + answers
            + opt_rr)
    return query, resp


def _ntp_pair(rnd: random.Random) -> tuple[bytes, bytes]:
    sec = (EPOCH_NS // 10**9 + 2_208_988_800) & M32
    tx = struct.pack(">II", sec + rnd.randrange(600), rnd.randrange(1 << 32))
    req = bytes([0x23, 0, 6, 0xE9]) + bytes(8) + bytes(4) + bytes(24) + tx
    refid = rnd.randbytes(4)
    ts = struct.pack(">II", sec + rnd.randrange(600), rnd.randrange(1 << 32))
    resp = (bytes([0x24, 2, 6, 0xE7]) + struct.pack(">II", rnd.randrange(1, 2000),
            rnd.randrange(1, 4000)) + refid + ts + tx + ts + ts)
    return req, resp


_UA = ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/124.0.0.0 Safari/537.36", "curl/8.5.0", "python-requests/2.31.0")


def _http_request(rnd: random.Random) -> bytes:
    path = "/" + "/".join(rnd.choice(("api", "static", "v1", "img", "js", "css", "item", "feed"))
                          for _ in range(rnd.randrange(1, 4))) + f"/{rnd.randrange(10**6)}"
    host = f"www.site{rnd.randrange(200)}.example"
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {rnd.choice(_UA)}\r\n"
            "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
            ).encode()


def _http_response_head(rnd: random.Random, body: int) -> bytes:
    ctype = rnd.choice(("text/html; charset=utf-8", "application/json", "image/jpeg",
                        "application/javascript", "application/octet-stream"))
    return ("HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Tue, 14 May 2024 09:00:00 GMT\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {body}\r\nConnection: keep-alive\r\n"
            "Cache-Control: max-age=600\r\n\r\n").encode()


# ---------------------------------------------------------------------------------------------
# Hosts and addresses


@dataclass(slots=True)
class Host:
    a4: int
    """Index into the IPv4 address table."""
    a6: int
    """Index into the IPv6 address table, -1 without IPv6."""
    mac: int
    """Index into the MAC table: its own for local hosts, the router's for remote ones."""
    os: OsProfile
    local: bool
    """On the capture point's side: its packets are seen when sent, not after a path delay."""
    hops: int = 0
    rtt: float = 0.0
    port: int = 0
    """Last ephemeral port used."""

    @property
    def ttl(self) -> int:
        return self.os.ttl - self.hops


_PUBLIC_FIRST_OCTETS = (3, 13, 18, 20, 23, 31, 34, 35, 40, 45, 52, 54, 62, 64, 66, 69, 72, 74,
                        77, 81, 85, 91, 93, 95, 104, 107, 108, 128, 130, 140, 142, 143, 151,
                        157, 162, 173, 176, 178, 185, 188, 193, 194, 195, 199, 204, 207, 208,
                        209, 212, 213, 216, 217)
_V6_PREFIXES = ("2a00:1450:4001", "2606:4700:3030", "2a03:2880:f12f", "2620:1ec:c11",
                "2001:4860:4802", "2a02:26f0:fd", "2600:9000:2020", "2a04:4e42:200")
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999
GATEWAY_MAC = 0

# Server ports by traffic profile, with weights (connections).
SERVICES: tuple[tuple[int, str, float], ...] = (
    (443, "web", 45.0), (80, "http", 12.0), (8080, "http", 3.0), (8443, "web", 2.0),
    (3306, "db", 3.0), (5432, "db", 3.0), (6379, "db", 2.0), (27017, "db", 1.0),
    (9200, "db", 1.0), (5672, "db", 1.0), (1883, "db", 0.5), (22, "ssh", 4.0),
    (25, "mail", 1.0), (587, "mail", 1.0), (993, "imap", 2.0), (143, "imap", 0.5),
    (110, "mail", 0.3), (21, "mail", 0.3), (3389, "db", 0.5), (445, "db", 0.5),
    (53, "dnstcp", 0.6), (5222, "imap", 0.3), (443, "upload", 2.0),
)
REFUSED_PORTS = (8080, 3306, 5432, 8443, 9000, 3389, 23, 445, 5900, 6379, 8000, 8888, 1433, 81)
INBOUND_PORTS = {22, 80, 443, 25, 5432, 8080}


@dataclass
class Category:
    name: str
    budget: int
    fn: Callable[[float], None]
    used: int = 0


@dataclass
class Summary:
    packets: int = 0
    frame_bytes: int = 0
    first_ns: int = -1
    last_ns: int = 0
    by_l3_l4: Counter[str] = field(default_factory=Counter)
    bad_checksums: Counter[str] = field(default_factory=Counter)
    frame_sizes: Counter[str] = field(default_factory=Counter)


class Generator:
    """Simulates flows and streams them, time-ordered, to a pcap file."""

    def __init__(self, packets: int, seed: int, span: float | None, bad_rate: float,
                 nanosecond: bool) -> None:
        self.target = packets
        self.span = span if span is not None else max(DEFAULT_SPAN_MIN, packets / PKTS_PER_SECOND)
        self.bad_rate = bad_rate
        self.nanosecond = nanosecond
        self.rnd = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.rows: list[Row] = []
        self.pending = np.zeros(0, ROW_DTYPE)
        self.fd_rows: list[tuple[Any, ...]] = []
        self.fdt = np.zeros(0, FD_DTYPE)
        self.fd_count: I64 = np.zeros(0, np.int64)
        self.raw: list[bytes] = []
        self.raw_meta: list[str] = []
        self.stats: Counter[str] = Counter()
        self.conn_spans: list[tuple[float, float]] = []
        self.ports: Counter[str] = Counter()
        self.summary = Summary()
        self.blob = PayloadBlob(self.nprng)
        self.addr4: list[int] = []
        self.addr6: list[bytes] = []
        self.macs: list[bytes] = [bytes.fromhex("00005e0001fe")]  # the router
        self._build_templates()
        self.blob.finalize()
        self._build_hosts()
        self.addr4_np = np.array(self.addr4, np.int64)
        self.addr6_np = np.frombuffer(b"".join(self.addr6), np.uint8).reshape(-1, 16)
        self.macs_np = np.frombuffer(b"".join(self.macs), np.uint8).reshape(-1, 6)
        self.tcp_seg_cap = 0
        self.udp_budget = 0
        self._out: BinaryIO | None = None

    # -- setup ---------------------------------------------------------------------------------
    def _build_templates(self) -> None:
        rnd, blob = self.rnd, self.blob
        words = ("www", "api", "cdn", "mail", "static", "img", "login", "auth", "edge", "ws",
                 "update", "telemetry", "push", "assets", "video")
        zones = ("example.com", "example.net", "example.org", "shop.example", "news.example",
                 "cloud.example", "corp.example", "media.example")
        self.dns: list[tuple[int, int, int, int]] = []
        for i in range(384):
            name = f"{rnd.choice(words)}{i % 7 or ''}.{rnd.choice(zones)}"
            for qtype in (1, 28):
                q, r = _dns_pair(rnd, name, qtype)
                self.dns.append((blob.add(q), len(q), blob.add(r), len(r)))
        self.ntp: list[tuple[int, int, int, int]] = []
        for _ in range(64):
            q, r = _ntp_pair(rnd)
            self.ntp.append((blob.add(q), len(q), blob.add(r), len(r)))
        self.http_req: list[tuple[int, int]] = []
        for _ in range(128):
            q = _http_request(rnd)
            self.http_req.append((blob.add(q), len(q)))
        # Responses: a head with the exact Content-Length, followed by random body bytes, so the
        # first segment of any size can be sliced from it.
        self.http_resp: list[tuple[int, int]] = []
        for i in range(64):
            body = int(200 * 1.2 ** i)
            head = _http_response_head(rnd, body)
            self.http_resp.append((blob.add(head + rnd.randbytes(1500)), len(head) + body))
        mdns = (struct.pack(">HHHHHH", 0, 0, 2, 0, 0, 0) + _dns_name("_googlecast._tcp.local")
                + struct.pack(">HH", 12, 0x8001) + _dns_name("_spotify-connect._tcp.local")
                + struct.pack(">HH", 12, 0x8001))
        ssdp = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
                b"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:dial-multiscreen-org:service:dial:1"
                b"\r\nUSER-AGENT: Chromium/124.0 Linux\r\n\r\n")
        self.mdns_q = (blob.add(mdns), len(mdns))
        self.ssdp_q = (blob.add(ssdp), len(ssdp))
        self.syslog: list[tuple[int, int]] = []
        for i in range(32):
            msg = (f"<{rnd.choice((30, 86, 134, 38))}>May 14 09:00:00 host{i} "
                   f"{rnd.choice(('sshd', 'CRON', 'kernel', 'systemd', 'nginx'))}"
                   f"[{rnd.randrange(100, 60000)}]: " + "event " * rnd.randrange(5, 40)).encode()
            self.syslog.append((blob.add(msg), len(msg)))

    def _v4(self, a: int) -> int:
        self.addr4.append(a)
        return len(self.addr4) - 1

    def _v6(self, a: bytes) -> int:
        self.addr6.append(a)
        return len(self.addr6) - 1

    def _new_mac(self) -> int:
        oui = self.rnd.choice(("3c2c30", "a4bb6d", "f8ffc2", "001b21", "b827eb", "dca632"))
        self.macs.append(bytes.fromhex(oui) + self.rnd.randbytes(3))
        return len(self.macs) - 1

    def _public4(self) -> int:
        r = self.rnd
        return (r.choice(_PUBLIC_FIRST_OCTETS) << 24) | r.randrange(1, 1 << 24)

    def _public6(self) -> bytes:
        groups = [int(g, 16) for g in self.rnd.choice(_V6_PREFIXES).split(":")]
        groups += [self.rnd.randrange(65536) for _ in range(8 - len(groups))]
        return struct.pack(">8H", *groups)

    def _local(self, a4: int, a6: bytes | None, os_: OsProfile) -> Host:
        return Host(self._v4(a4), self._v6(a6) if a6 is not None else -1, self._new_mac(), os_,
                    True, port=self.rnd.randrange(EPHEMERAL_LO, EPHEMERAL_HI + 1))

    def _remote(self, a4: int, a6: bytes | None, os_: OsProfile, hops: int, rtt: float) -> Host:
        return Host(self._v4(a4), self._v6(a6) if a6 is not None else -1, GATEWAY_MAC, os_,
                    False, hops, rtt, self.rnd.randrange(EPHEMERAL_LO, EPHEMERAL_HI + 1))

    def _rtt(self, median: float, sigma: float = 0.8) -> float:
        return min(0.4, max(0.0003, self.rnd.lognormvariate(math.log(median), sigma)))

    def _build_hosts(self) -> None:
        rnd = self.rnd
        oses = (LINUX, WINDOWS, MACOS)

        def local6() -> bytes:
            return bytes.fromhex("20010db8000100100000") + rnd.randbytes(6)

        def public6(share: float) -> bytes | None:
            return self._public6() if rnd.random() < share else None

        self.clients = [
            self._local(0x0A010000 | rnd.randrange(256, 1 << 15), local6() if i % 5 < 2 else None,
                        rnd.choices(oses, (5, 3, 2))[0])
            for i in range(600)]
        self.clients6 = [h for h in self.clients if h.a6 >= 0]
        self.local_servers = [self._local(0x0A01C800 | (i + 10), local6(), LINUX)
                              for i in range(12)]

        def remote(n: int, median_rtt: float, v6_share: float) -> list[Host]:
            return [self._remote(self._public4(), public6(v6_share), LINUX, rnd.randrange(6, 24),
                                 self._rtt(median_rtt)) for _ in range(n)]

        self.pools: dict[str, list[Host]] = {
            "web": remote(1500, 0.025, 0.5),
            "ssh": remote(60, 0.04, 0.5),
            "mail": remote(50, 0.03, 0.5),
            "misc": remote(200, 0.05, 0.4),
            "ntp": remote(12, 0.02, 0.5),
            "clients": [self._remote(self._public4(), public6(0.3),
                                     rnd.choices(oses, (3, 5, 2))[0], rnd.randrange(8, 24),
                                     self._rtt(0.06))
                        for _ in range(3000)],
        }
        self.pools["db"] = [  # servers in the data center next door: sub-millisecond RTT
            self._remote(0x0A020000 | (i + 10), bytes.fromhex("20010db800020000000000000000")
                         + struct.pack(">H", i + 10), LINUX, 1, self._rtt(0.0008, 0.5))
            for i in range(40)]
        for name in ("web", "ssh", "mail", "misc", "clients", "db"):
            self.pools[name + "6"] = [h for h in self.pools[name] if h.a6 >= 0]
        self.pools["imap"] = self.pools["mail"]
        self.pools["imap6"] = self.pools["mail6"]
        self.pools["http"] = self.pools["upload"] = self.pools["web"]
        self.pools["http6"] = self.pools["upload6"] = self.pools["web6"]
        self.pools["dnstcp"], self.pools["dnstcp6"] = self.pools["misc"], self.pools["misc6"]
        self.resolvers4 = [self._remote(0x0A000001, None, LINUX, 1, 0.0006)] + [
            self._remote(a, None, LINUX, rnd.randrange(6, 14), self._rtt(0.012, 0.3))
            for a in (0x08080808, 0x01010101, 0x09090909)]
        self.resolvers6 = [
            self._remote(0x08080404, bytes.fromhex("20014860486000000000000000008888"), LINUX,
                         10, 0.014),
            self._remote(0x01000001, bytes.fromhex("26064700470000000000000000001111"), LINUX,
                         9, 0.011)]
        self.collector = self._remote(0x0A0001FA, None, LINUX, 1, 0.0005)
        self.mdns = Host(self._v4(0xE00000FB), -1, len(self.macs), LINUX, False)
        self.macs.append(bytes.fromhex("01005e0000fb"))
        self.ssdp = Host(self._v4(0xEFFFFFFA), -1, len(self.macs), LINUX, False)
        self.macs.append(bytes.fromhex("01005e7ffffa"))

    def _pick(self, pool: Sequence[Host]) -> Host:
        """Popularity-skewed choice: the first hosts of a pool get most of the flows."""
        return pool[int(len(pool) * self.rnd.random() ** 2.5)]

    def _port(self, host: Host) -> int:
        """Next ephemeral port of a host (sequential with small random steps, as Linux does
        in practice for one destination), so 5-tuples are not reused within a capture."""
        p = host.port + self.rnd.randrange(1, 8)
        if p > EPHEMERAL_HI:
            p = EPHEMERAL_LO + (p - EPHEMERAL_HI)
        host.port = p
        return p

    # -- flow directions -----------------------------------------------------------------------
    def add_pair(self, ipv: int, proto: int, cli: Host, srv: Host, ports: tuple[int, int], *,
                 rtt: float, cli_mss: int = 0, srv_mss: int = 0, cli_ws: int = 0,
                 srv_ws: int = 0, cli_ttl: int = 0) -> tuple[int, int]:
        """Two flow directions (client->server, server->client); returns their ids."""
        rnd = self.rnd
        sport, dport = ports
        src_c = cli.a4 if ipv == 4 else cli.a6
        src_s = srv.a4 if ipv == 4 else srv.a6
        flow_c = rnd.randrange(1 << 20) if ipv == 6 else 0
        flow_s = rnd.randrange(1 << 20) if ipv == 6 else 0
        half = int(rtt * 5e8)
        base_c, base_s = rnd.randrange(1 << 32), rnd.randrange(1 << 32)
        # TSval is the sender's clock at send time, TSecr the last TSval it heard: a remote end
        # sent its packet half an RTT before we see it, and heard our last packet then.
        sh_c = (0, half) if cli.local else (half, 2 * half)
        sh_s = (0, half) if srv.local else (half, 2 * half)
        tos = 0 if rnd.random() < 0.9 else rnd.choice((0x10, 0x28, 0xB8))
        n = len(self.fdt) + len(self.fd_rows)
        self.fd_rows.append((ipv, proto, src_c, src_s, cli.mac, srv.mac, sport, dport,
                             cli_ttl or cli.ttl,
                             tos, flow_c, cli_mss, cli_ws, base_c, base_s, sh_c[0], sh_c[1],
                             rnd.randrange(65536)))
        self.fd_rows.append((ipv, proto, src_s, src_c, srv.mac, cli.mac, dport, sport, srv.ttl,
                             tos, flow_s, srv_mss, srv_ws, base_s, base_c, sh_s[0], sh_s[1],
                             rnd.randrange(65536)))
        return n, n + 1

    def udp(self, t: float, fd: int, plen: int, poff: int = -1) -> None:
        self.rows.append((int(t * 1e9), fd, 0, 0, 0, 0, 0, plen, poff, 0, 0))

    # -- TCP -----------------------------------------------------------------------------------
    def tcp_flow(self, t0: float, ipv: int) -> None:
        rnd, st = self.rnd, self.stats
        v = "" if ipv == 4 else "6"
        if t0 < 0.05 * self.span and rnd.random() < 0.3:
            kind = "midstream"
        else:
            kind = rnd.choices(("completed", "reset", "refused", "unanswered", "no_teardown"),
                               (0.77, 0.08, 0.06, 0.05, 0.04))[0]
        port, profile, _ = rnd.choices(SERVICES, [s[2] for s in SERVICES])[0]
        if kind in ("refused", "unanswered"):
            port = rnd.choice(REFUSED_PORTS) if rnd.random() < 0.7 else port
            profile = "scan"
        inbound = port in INBOUND_PORTS and profile != "upload" and rnd.random() < 0.15
        if inbound:
            cli = self._pick(self.pools["clients" + v])
            srv = rnd.choice(self.local_servers)
        else:
            cli = rnd.choice(self.clients6 if ipv == 6 else self.clients)
            pool = self.pools.get(profile + v) or self.pools["misc" + v]
            srv = self._pick(pool)
        rtt = max(0.0002, (srv.rtt if not inbound else cli.rtt) * rnd.uniform(0.8, 1.3))
        conn = TcpConn(self, t0, ipv, cli, srv, ports=(self._port(cli), port), rtt=rtt)
        st[f"tcp_connections_ipv{ipv}"] += 1
        st["tcp_connections_inbound" if inbound else "tcp_connections_outbound"] += 1
        self.ports[f"tcp/{port}"] += 1
        if kind == "refused":
            conn.refused(t0)
        elif kind == "unanswered":
            conn.unanswered(t0, rnd.choices((0, 1, 2, 3), (2, 2, 5, 1))[0])
        else:
            conn.run(t0, kind, profile)
        st["tcp_" + kind] += 1
        if conn.isn_wrapped():
            st["tcp_seq_wrapped"] += 1

    # -- UDP / ICMP ----------------------------------------------------------------------------
    def udp_flow(self, t0: float, ipv: int) -> None:
        rnd, st = self.rnd, self.stats
        kind = rnd.choices(("dns", "quic", "ntp", "oneway"), (0.88, 0.06, 0.035, 0.025))[0]
        if ipv == 6 and kind in ("ntp", "oneway"):
            kind = "dns"
        cli = rnd.choice(self.clients6 if ipv == 6 else self.clients)
        st[f"udp_{kind}"] += 1
        st[f"udp_flows_ipv{ipv}"] += 1
        if kind == "dns":
            srv = rnd.choice(self.resolvers6 if ipv == 6 else self.resolvers4)
            sport = self._port(cli)
            self.ports["udp/53"] += 1
            c, s = self.add_pair(ipv, UDP, cli, srv, (sport, 53), rtt=srv.rtt)
            t = t0
            pairs = [rnd.randrange(0, len(self.dns), 2)]
            if rnd.random() < 0.5:
                pairs.append(pairs[0] + 1)  # A and AAAA from the same socket
            answered = rnd.random() > 0.03
            for k, i in enumerate(pairs):
                qo, ql, ro, rl = self.dns[i]
                tq = t + k * rnd.uniform(2e-5, 2e-4)
                self.udp(tq, c, ql, qo)
                if answered:
                    self.udp(tq + srv.rtt * rnd.uniform(1.0, 1.4) + rnd.expovariate(1 / 0.003),
                             s, rl, ro)
                else:
                    self.udp(tq + 5.0, c, ql, qo)  # resolver retry after the 5 s timeout
            if not answered:
                st["udp_dns_unanswered"] += 1
        elif kind == "ntp":
            srv = self._pick(self.pools["ntp"])
            sport = 123 if rnd.random() < 0.3 else self._port(cli)
            self.ports["udp/123"] += 1
            c, s = self.add_pair(ipv, UDP, cli, srv, (sport, 123), rtt=srv.rtt)
            qo, ql, ro, rl = rnd.choice(self.ntp)
            self.udp(t0, c, ql, qo)
            if rnd.random() < 0.95:
                self.udp(t0 + srv.rtt, s, rl, ro)
        elif kind == "oneway":
            self._udp_oneway(t0, cli)
        else:
            self._quic(t0, ipv, cli)

    def _udp_oneway(self, t0: float, cli: Host) -> None:
        rnd = self.rnd
        what = rnd.choice(("syslog", "netflow", "mdns", "ssdp"))
        self.stats[f"udp_oneway_{what}"] += 1
        if what == "syslog":
            c, _ = self.add_pair(4, UDP, cli, self.collector, (self._port(cli), 514),
                                 rtt=0.0005)
            self.ports["udp/514"] += 1
            t = t0
            for _ in range(rnd.randrange(1, 30)):
                off, ln = rnd.choice(self.syslog)
                self.udp(t, c, ln, off)
                t += rnd.expovariate(1 / 2.0)
        elif what == "netflow":
            c, _ = self.add_pair(4, UDP, cli, self.collector, (self._port(cli), 2055),
                                 rtt=0.0005)
            self.ports["udp/2055"] += 1
            t = t0
            for _ in range(rnd.randrange(10, 60)):
                self.udp(t, c, 24 + 48 * rnd.randrange(1, 28))
                t += rnd.uniform(0.5, 1.5)
        else:
            dst, port = (self.mdns, 5353) if what == "mdns" else (self.ssdp, 1900)
            self.ports[f"udp/{port}"] += 1
            src = port if what == "mdns" else self._port(cli)
            c, _ = self.add_pair(4, UDP, cli, dst, (src, port), rtt=0.0,
                                 cli_ttl=255 if what == "mdns" else 4)
            off, ln = self.mdns_q if what == "mdns" else self.ssdp_q
            for k in range(rnd.randrange(1, 4)):
                self.udp(t0 + k * rnd.uniform(0.1, 1.0), c, ln, off)

    def _quic(self, t0: float, ipv: int, cli: Host) -> None:
        rnd = self.rnd
        pool = self.pools["web6" if ipv == 6 else "web"]
        srv = pool[int(min(len(pool), 300) * rnd.random() ** 2)]
        rtt = srv.rtt * rnd.uniform(0.8, 1.3)
        eps = rnd.uniform(2e-5, 1.5e-4)
        self.ports["udp/443"] += 1
        c, s = self.add_pair(ipv, UDP, cli, srv, (self._port(cli), 443), rtt=rtt)
        hdr = 48 if ipv == 6 else 28
        full = 1252 if ipv == 4 else 1232
        t = t0
        self.udp(t, c, full)
        if rnd.random() < 0.3:
            self.udp(t + 1e-4, c, full)  # a coalesced second Initial
        t += rtt
        for _ in range(rnd.randrange(2, 5)):
            self.udp(t, s, rnd.randrange(1100, full))
            t += 3e-5
        t += eps
        self.udp(t, c, rnd.randrange(80, 160))
        bw_gap = (full + hdr) * 8 / (rnd.lognormvariate(math.log(80e6), 0.8))
        cap = max(4, self.udp_budget // 40)
        for _ in range(rnd.choice((1, 1, 2, 3, 5, 8))):
            t += rnd.expovariate(1 / 1.5)
            self.udp(t, c, rnd.randrange(40, 300))  # request
            t += rtt + rnd.expovariate(1 / 0.02)
            n = min(cap, int(rnd.lognormvariate(math.log(12), 1.3)) + 1)
            cwnd, sent = 10, 0
            while sent < n:
                burst = min(cwnd, n - sent)
                for i in range(burst):
                    self.udp(t + i * bw_gap, s, rnd.randrange(1200, full) if sent + i < n - 1
                             else rnd.randrange(50, full))
                    if i % 2 == 1:
                        self.udp(t + i * bw_gap + eps, c, rnd.randrange(30, 55))
                sent += burst
                t += max(rtt, burst * bw_gap)
                cwnd *= 2
        if rnd.random() < 0.5:
            self.udp(t + rnd.uniform(0.5, 30.0), c, rnd.randrange(30, 60))  # CONNECTION_CLOSE

    def icmp_flow(self, t0: float, ipv: int) -> None:
        rnd = self.rnd
        if rnd.random() < 0.55:
            self._echo(t0, ipv)
        else:
            self._udp_probe(t0, ipv)

    def _frame(self, src: Host, dst: Host, ipv: int, proto: int, l4: bytes) -> bytes:
        """A complete Ethernet frame, built in Python (only for the rare ICMP flows)."""
        eth = self.macs[dst.mac] + self.macs[src.mac]
        if ipv == 4:
            ip = struct.pack(">BBHHHBBHII", 0x45, 0, 20 + len(l4), self.rnd.randrange(65536),
                             0x4000 if proto != ICMP else 0, src.ttl, proto, 0,
                             self.addr4[src.a4], self.addr4[dst.a4])
            ip = ip[:10] + struct.pack(">H", _csum(ip)) + ip[12:]
            return eth + b"\x08\x00" + ip + l4
        ip6 = (struct.pack(">IHBB", 0x60000000, len(l4), proto, src.ttl) + self.addr6[src.a6]
               + self.addr6[dst.a6])
        return eth + b"\x86\xdd" + ip6 + l4

    def _l4_csum(self, src: Host, dst: Host, ipv: int, proto: int, l4: bytes, *,
                 at: int) -> bytes:
        if ipv == 4:
            pseudo = struct.pack(">IIBBH", self.addr4[src.a4], self.addr4[dst.a4], 0, proto,
                                 len(l4)) if proto != ICMP else b""
        else:
            pseudo = (self.addr6[src.a6] + self.addr6[dst.a6]
                      + struct.pack(">IxxxB", len(l4), proto))
        c = _csum(pseudo + l4)
        if proto == UDP and c == 0:
            c = 0xFFFF
        return l4[:at] + struct.pack(">H", c) + l4[at + 2:]

    def raw_frame(self, t: float, frame: bytes, meta: str) -> None:
        self.raw.append(frame)
        self.raw_meta.append(meta)
        self.rows.append((int(t * 1e9), -1, 0, 0, 0, 0, 0, 0, len(self.raw) - 1, 0, 0))

    def _echo(self, t0: float, ipv: int) -> None:
        rnd, st = self.rnd, self.stats
        cli = rnd.choice(self.clients6 if ipv == 6 else self.clients)
        pool = self.pools["web6" if ipv == 6 else "web"]
        srv = self._pick(pool)
        ident = rnd.randrange(65536)
        answered = rnd.random() < 0.85
        req_t, rep_t = (8, 0) if ipv == 4 else (128, 129)
        proto = ICMP if ipv == 4 else ICMP6
        meta = f"ipv{ipv}/{'icmp' if ipv == 4 else 'icmpv6'}"
        st["icmp_echo_sessions"] += 1
        t = t0
        for seq in range(1, rnd.randrange(3, 11)):
            data = struct.pack("<QQ", int(t) + EPOCH_NS // 10**9, rnd.randrange(10**6)) + bytes(
                range(0x10, 0x38))
            req = self._l4_csum(cli, srv, ipv, proto, struct.pack(">BBHHH", req_t, 0, 0, ident,
                                                                  seq) + data, at=2)
            self.raw_frame(t, self._frame(cli, srv, ipv, proto, req), meta)
            st["icmp_echo_requests"] += 1
            if answered:
                rep = self._l4_csum(srv, cli, ipv, proto, bytes([rep_t]) + req[1:2] + b"\0\0"
                                    + req[4:], at=2)
                self.raw_frame(t + srv.rtt, self._frame(srv, cli, ipv, proto, rep), meta)
                st["icmp_echo_replies"] += 1
            t += rnd.uniform(0.999, 1.002)

    def _udp_probe(self, t0: float, ipv: int) -> None:
        """UDP to a closed port, answered by ICMP port unreachable (or not at all)."""
        rnd, st = self.rnd, self.stats
        cli = rnd.choice(self.clients6 if ipv == 6 else self.clients)
        srv = self._pick(self.pools["misc6" if ipv == 6 else "misc"])
        sport = self._port(cli)
        st["udp_probes"] += 1
        t = t0
        for k in range(rnd.randrange(1, 4)):
            dport = 33434 + k if rnd.random() < 0.5 else rnd.randrange(1024, 65536)
            udp = self._l4_csum(cli, srv, ipv, UDP, struct.pack(">HHHH", sport, dport, 40, 0)
                                + bytes(32), at=6)
            probe = self._frame(cli, srv, ipv, UDP, udp)
            self.raw_frame(t, probe, f"ipv{ipv}/udp")
            if rnd.random() < 0.8:
                inner = probe[14:]
                if ipv == 4:
                    icmp = self._l4_csum(srv, cli, 4, ICMP, bytes([3, 3, 0, 0, 0, 0, 0, 0])
                                         + inner[:28], at=2)
                    self.raw_frame(t + srv.rtt, self._frame(srv, cli, 4, ICMP, icmp),
                                   "ipv4/icmp")
                else:
                    icmp = self._l4_csum(srv, cli, 6, ICMP6, bytes([1, 4, 0, 0, 0, 0, 0, 0])
                                         + inner, at=2)
                    self.raw_frame(t + srv.rtt, self._frame(srv, cli, 6, ICMP6, icmp),
                                   "ipv6/icmpv6")
                st["icmp_port_unreachable"] += 1
            t += rnd.uniform(0.005, 1.0)

    # -- the main loop -------------------------------------------------------------------------
    def generate(self, out: BinaryIO) -> dict[str, Any]:
        started = time.perf_counter()
        n = self.target
        shares = (("tcp4", 0.718), ("tcp6", 0.08), ("udp4", 0.18), ("udp6", 0.02),
                  ("icmp4", 0.0016), ("icmp6", 0.0004))
        fns: dict[str, Callable[[float], None]] = {
            "tcp4": lambda t: self.tcp_flow(t, 4), "tcp6": lambda t: self.tcp_flow(t, 6),
            "udp4": lambda t: self.udp_flow(t, 4), "udp6": lambda t: self.udp_flow(t, 6),
            "icmp4": lambda t: self.icmp_flow(t, 4), "icmp6": lambda t: self.icmp_flow(t, 6),
        }
        cats = [Category(name, max(1, round(n * share)), fns[name]) for name, share in shares]
        self.tcp_seg_cap = max(12, (cats[0].budget + cats[1].budget) // 600)
        self.udp_budget = cats[2].budget + cats[3].budget
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D if self.nanosecond else 0xA1B2C3D4,
                              2, 4, 0, 0, 262144, 1))
        self._out = out
        heap = [(self.rnd.uniform(0, 0.05), i) for i in range(len(cats))]
        heapq.heapify(heap)
        while heap:
            t, i = heapq.heappop(heap)
            cat = cats[i]
            before = len(self.rows)
            cat.fn(t)
            k = max(1, len(self.rows) - before)
            cat.used += k
            if cat.used < cat.budget:
                gap = self.rnd.expovariate(1.0) * self.span * k / cat.budget
                heapq.heappush(heap, (t + gap, i))
            if len(self.rows) >= FLUSH_ROWS:
                self._flush(heap[0][0] if heap else math.inf)
        self._flush(math.inf)
        elapsed = time.perf_counter() - started
        return self._summary(elapsed)

    def _flush(self, watermark: float) -> None:
        if self.fd_rows:
            self.fdt = np.concatenate([self.fdt, np.array(self.fd_rows, FD_DTYPE)])
            self.fd_count = np.concatenate([self.fd_count,
                                            np.zeros(len(self.fd_rows), np.int64)])
            self.fd_rows = []
        new = np.array(self.rows, ROW_DTYPE) if self.rows else np.zeros(0, ROW_DTYPE)
        self.rows.clear()
        pend = np.concatenate([self.pending, new])
        pend = pend[np.argsort(pend["ts"], kind="stable")]
        cut = len(pend) if watermark == math.inf else int(
            np.searchsorted(pend["ts"], int(watermark * 1e9), "left"))
        chunk, self.pending = pend[:cut], pend[cut:].copy()
        for a in range(0, len(chunk), WRITE_ROWS):
            self._write(chunk[a:a + WRITE_ROWS])

    def _write(self, rows: npt.NDArray[Any]) -> None:
        n = len(rows)
        if n == 0:
            return
        sm = self.summary
        raw = rows["fd"] < 0
        fdi = np.where(raw, 0, rows["fd"])
        f = self.fdt[fdi]
        # IPv4 identification: a counter per flow direction, in time order.
        order = np.argsort(fdi, kind="stable")
        sorted_fd = fdi[order]
        starts = np.flatnonzero(np.r_[True, sorted_fd[1:] != sorted_fd[:-1]])
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        rank = np.empty(n, np.int64)
        rank[order] = rank_sorted
        ipid = (f["ipid"].astype(np.int64) + self.fd_count[fdi] + rank) & 0xFFFF
        np.add.at(self.fd_count, fdi[~raw], 1)
        # Random payloads and the intended bad checksums.
        poff = rows["poff"].copy()
        rand = (poff < 0) & ~raw
        poff[rand] = self.nprng.integers(0, (POOL_BYTES - 1600) // 2, int(rand.sum())) * 2
        ctl = (rows["flags"] & (SYN | FIN | RST)) != 0
        eligible = ~raw & ((f["proto"] == UDP) | ~ctl)
        bad = eligible & (self.nprng.random(n) < self.bad_rate)
        key = np.where(raw, -1, (f["ipv"].astype(np.int64) * 2 + (f["proto"] == UDP)) * 16
                       + rows["opt"])
        hoff = np.zeros(n, np.int64)
        hlen = np.zeros(n, np.int64)
        plen = np.where(raw, 0, rows["plen"]).astype(np.int64)
        bufs: list[bytes] = []
        base = 0
        for k in np.unique(key).tolist():
            idx = np.flatnonzero(key == k)
            if k < 0:
                frames = []
                for j in idx.tolist():
                    frame = self.raw[int(rows["poff"][j])]
                    tsa = EPOCH_NS + int(rows["ts"][j])
                    frac = tsa % 10**9 if self.nanosecond else tsa % 10**9 // 1000
                    frames.append(struct.pack("<IIII", tsa // 10**9, frac, len(frame),
                                              len(frame)) + frame)
                    hoff[j], hlen[j] = base, len(frames[-1])
                    base += len(frames[-1])
                    self.raw[int(rows["poff"][j])] = b""  # written: free it
                    meta = self.raw_meta[int(rows["poff"][j])]
                    sm.by_l3_l4[meta] += 1
                    sm.frame_bytes += len(frame)
                    self._size_class(len(frame))
                bufs.append(b"".join(frames))
                continue
            ipv, udp, opt = k // 32, (k // 16) % 2 == 1, k % 16
            u8 = self._headers(rows[idx], f[idx], ipid[idx], poff[idx], bad[idx], ipv=ipv,
                               udp=udp, opt=opt)
            w = u8.shape[1]
            hoff[idx] = base + np.arange(len(idx)) * w
            hlen[idx] = w
            base += len(idx) * w
            bufs.append(u8.tobytes())
            name = f"ipv{ipv}/{'udp' if udp else 'tcp'}"
            sm.by_l3_l4[name] += len(idx)
            nb = int(bad[idx].sum())
            if nb:
                sm.bad_checksums[name] += nb
            sizes = w - 16 + plen[idx]
            sm.frame_bytes += int(sizes.sum())
            for lo, hi, label in _SIZE_CLASSES:
                sm.frame_sizes[label] += int(((sizes >= lo) & (sizes <= hi)).sum())
        hb = b"".join(bufs)
        blob = memoryview(self.blob.data)
        parts: list[bytes | memoryview] = []
        app = parts.append
        for ho, hl, po, pl in zip(hoff.tolist(), hlen.tolist(), poff.tolist(), plen.tolist(),
                                  strict=True):
            app(hb[ho:ho + hl])
            if pl:
                app(blob[po:po + pl])
        assert self._out is not None
        self._out.write(b"".join(parts))
        sm.packets += n
        if sm.first_ns < 0:
            sm.first_ns = int(rows["ts"][0])
        sm.last_ns = int(rows["ts"][-1])

    def _size_class(self, size: int) -> None:
        for lo, hi, label in _SIZE_CLASSES:
            if lo <= size <= hi:
                self.summary.frame_sizes[label] += 1

    def _headers(self, rows: npt.NDArray[Any], f: npt.NDArray[Any], ipid: I64, poff: I64,
                 bad: npt.NDArray[np.bool_], *, ipv: int, udp: bool, opt: int) -> U8:
        """pcap record header + Ethernet + IP + TCP/UDP header for each row, as one 2-D array."""
        m = len(rows)
        tmpl = OPTS[opt]
        iphl = 20 if ipv == 4 else 40
        l4hl = 8 if udp else 20 + len(tmpl.data)
        ip0 = 30
        l4 = ip0 + iphl
        w = l4 + l4hl
        u8 = np.zeros((m, w), np.uint8)
        plen = rows["plen"].astype(np.int64)
        tsa = rows["ts"] + EPOCH_NS
        rec = np.empty((m, 4), "<u4")
        rec[:, 0] = tsa // 10**9
        rec[:, 1] = tsa % 10**9 if self.nanosecond else tsa % 10**9 // 1000
        rec[:, 2] = w - 16 + plen
        rec[:, 3] = rec[:, 2]
        u8[:, 0:16] = rec.view(np.uint8).reshape(m, 16)
        u8[:, 16:22] = self.macs_np[f["dmac"]]
        u8[:, 22:28] = self.macs_np[f["smac"]]
        proto = UDP if udp else TCP
        l4len = l4hl + plen
        if ipv == 4:
            u8[:, 28] = 0x08
            u8[:, 30] = 0x45
            u8[:, 31] = f["tos"]
            _put(u8, 32, iphl + l4len, ">u2")
            _put(u8, 34, ipid, ">u2")
            u8[:, 36] = 0x40
            u8[:, 38] = f["ttl"]
            u8[:, 39] = proto
            _put(u8, 42, self.addr4_np[f["src"]], ">u4")
            _put(u8, 46, self.addr4_np[f["dst"]], ">u4")
            _put(u8, 40, ~_fold(_wsum(u8, ip0, ip0 + 20)) & 0xFFFF, ">u2")
            pseudo = _wsum(u8, 42, 50)
        else:
            u8[:, 28], u8[:, 29] = 0x86, 0xDD
            _put(u8, 30, (6 << 28) | (f["tos"].astype(np.int64) << 20) | f["flow"], ">u4")
            _put(u8, 34, l4len, ">u2")
            u8[:, 36] = proto
            u8[:, 37] = f["ttl"]
            u8[:, 38:54] = self.addr6_np[f["src"]]
            u8[:, 54:70] = self.addr6_np[f["dst"]]
            pseudo = _wsum(u8, 38, 70)
        _put(u8, l4, f["sport"], ">u2")
        _put(u8, l4 + 2, f["dport"], ">u2")
        if udp:
            _put(u8, l4 + 4, l4len, ">u2")
            at = l4 + 6
        else:
            _put(u8, l4 + 4, rows["seq"], ">u4")
            _put(u8, l4 + 8, rows["ack"], ">u4")
            u8[:, l4 + 12] = (l4hl // 4) << 4
            u8[:, l4 + 13] = rows["flags"]
            _put(u8, l4 + 14, rows["win"], ">u2")
            o = l4 + 20
            if tmpl.data:
                u8[:, o:w] = np.frombuffer(tmpl.data, np.uint8)
            if tmpl.mss >= 0:
                _put(u8, o + tmpl.mss, f["mss"], ">u2")
            if tmpl.ws >= 0:
                u8[:, o + tmpl.ws] = f["ws"]
            if tmpl.tsval >= 0:
                ts = rows["ts"]
                tsval = (f["tsv_base"] + (ts - f["tsv_shift"]) // 1_000_000) & M32
                tsecr = (f["tse_base"] + (ts - f["tse_shift"]) // 1_000_000) & M32
                tsecr = np.where(rows["flags"] & (SYN | ACK) == SYN, 0, tsecr)
                _put(u8, o + tmpl.tsval, tsval, ">u4")
                _put(u8, o + tmpl.tsecr, tsecr, ">u4")
            if tmpl.sack >= 0:
                _put(u8, o + tmpl.sack, rows["sl"], ">u4")
                _put(u8, o + tmpl.sack + 4, rows["sr"], ">u4")
            at = l4 + 16
        s = pseudo + proto + l4len + _wsum(u8, l4, w) + self.blob.word_sum(poff, plen)
        c = ~_fold(s) & 0xFFFF
        if udp:
            c[c == 0] = 0xFFFF
        c = np.where(bad, c ^ 0x5A5A, c)
        c[bad & (c == 0)] = 1
        _put(u8, at, c, ">u2")
        return u8

    def _summary(self, elapsed: float) -> dict[str, Any]:
        sm, st = self.summary, self.stats
        spans = self.conn_spans
        max_conc = 0
        if spans:
            ev = np.array(spans)
            times = np.concatenate([ev[:, 0], ev[:, 1]])
            delta = np.concatenate([np.ones(len(ev)), -np.ones(len(ev))])
            o = np.lexsort((delta, times))
            max_conc = int(np.cumsum(delta[o]).max())
        by_proto: Counter[str] = Counter()
        by_ipv: Counter[str] = Counter()
        for k, v in sm.by_l3_l4.items():
            ipv, proto = k.split("/")
            by_proto[proto] += v
            by_ipv[ipv] += v
        completed = st["tcp_completed"]
        tcp_total = sum(st[f"tcp_{k}"] for k in ("completed", "reset", "refused", "unanswered",
                                                 "no_teardown", "midstream"))
        return {
            "generator": "scripts/bench.py generate",
            "packets": sm.packets,
            "frame_bytes": sm.frame_bytes,
            "file_bytes": 24 + 16 * sm.packets + sm.frame_bytes,
            "first_ts": (EPOCH_NS + sm.first_ns) / 1e9,
            "last_ts": (EPOCH_NS + sm.last_ns) / 1e9,
            "duration_s": (sm.last_ns - sm.first_ns) / 1e9,
            "timestamp_resolution": "ns" if self.nanosecond else "us",
            "generation_seconds": round(elapsed, 2),
            "packets_by_l3_l4": dict(sorted(sm.by_l3_l4.items())),
            "packets_by_proto": dict(sorted(by_proto.items())),
            "packets_by_ip_version": dict(sorted(by_ipv.items())),
            "ipv6_share": round(by_ipv["ipv6"] / max(1, sm.packets), 4),
            "udp_share": round(by_proto["udp"] / max(1, sm.packets), 4),
            "frame_sizes": {label: sm.frame_sizes[label] for _, _, label in _SIZE_CLASSES},
            "bad_l4_checksums": sum(sm.bad_checksums.values()),
            "bad_l4_checksums_by_l3_l4": dict(sorted(sm.bad_checksums.items())),
            "bad_ip_checksums": 0,
            "tcp_connections": {
                "total": tcp_total,
                "ipv4": st["tcp_connections_ipv4"],
                "ipv6": st["tcp_connections_ipv6"],
                "outbound": st["tcp_connections_outbound"],
                "inbound": st["tcp_connections_inbound"],
                "completed": completed,
                "fin_client_first": st["tcp_fin_client_first"],
                "fin_server_first": st["tcp_fin_server_first"],
                "reset": st["tcp_reset"],
                "reset_by_client": st["tcp_rst_client"],
                "reset_by_server": st["tcp_rst_server"],
                "reset_after_fin": st["tcp_rst_after_fin"],
                "refused": st["tcp_refused"],
                "unanswered": st["tcp_unanswered"],
                "no_teardown": st["tcp_no_teardown"],
                "midstream": st["tcp_midstream"],
                "syn_retransmitted_then_answered": st["tcp_syn_retx_answered"],
                "isn_near_wrap": st["tcp_isn_near_wrap"],
                "seq_wrapped": st["tcp_seq_wrapped"],
                "max_concurrent": max_conc,
            },
            "tcp_segments": {
                "syn_retransmissions": st["syn_retransmissions"],
                "fast_retransmissions": st["fast_retransmissions"],
                "rto_retransmissions": st["rto_retransmissions"],
                "retransmissions_seen_twice": st["retx_seen_twice"],
                "retransmissions_first_copy_not_captured": st["retx_first_unseen"],
                "reordered_segments": st["reordered"],
                "dup_acks": st["dup_acks"],
            },
            "udp_flows": {
                "total": st["udp_flows_ipv4"] + st["udp_flows_ipv6"] + st["udp_probes"],
                "ipv4": st["udp_flows_ipv4"],
                "ipv6": st["udp_flows_ipv6"],
                "dns": st["udp_dns"],
                "dns_unanswered": st["udp_dns_unanswered"],
                "quic": st["udp_quic"],
                "ntp": st["udp_ntp"],
                "oneway": st["udp_oneway"],
                "oneway_by_kind": {k[11:]: v for k, v in sorted(st.items())
                                   if k.startswith("udp_oneway_")},
                "closed_port_probes": st["udp_probes"],
            },
            "icmp": {
                "echo_sessions": st["icmp_echo_sessions"],
                "echo_requests": st["icmp_echo_requests"],
                "echo_replies": st["icmp_echo_replies"],
                "port_unreachable": st["icmp_port_unreachable"],
            },
            "flows_by_server_port": dict(self.ports.most_common(30)),
        }


_SIZE_CLASSES = ((0, 66, "<=66"), (67, 200, "67-200"), (201, 1000, "201-1000"),
                 (1001, 1499, "1001-1499"), (1500, 1514, "1500-1514"))


def _put(u8: U8, off: int, values: npt.ArrayLike, fmt: str) -> None:
    d = np.dtype(fmt)
    arr = np.asarray(values).astype(np.int64).astype(d)
    u8[:, off:off + d.itemsize] = arr.view(np.uint8).reshape(-1, d.itemsize)


def _wsum(u8: U8, a: int, b: int) -> I64:
    """Per-row sum of the big-endian 16-bit words in columns [a, b)."""
    return np.asarray(u8[:, a:b:2].sum(axis=1, dtype=np.int64) * 256
                      + u8[:, a + 1:b:2].sum(axis=1, dtype=np.int64), np.int64)


def _fold(s: I64) -> I64:
    for _ in range(3):
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = int(np.frombuffer(data, ">u2").sum(dtype=np.int64))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# ---------------------------------------------------------------------------------------------
# One TCP connection


class TcpConn:
    """Simulates one TCP connection as seen from a capture point next to the local host.

    Sides: 0 = client, 1 = server. ``rd[x]`` is how long after a packet is captured we capture
    side x's reaction to it: a remote side needs a round trip, the local host a few microseconds.
    """

    def __init__(self, g: Generator, t0: float, ipv: int, cli: Host, srv: Host, *,
                 ports: tuple[int, int], rtt: float) -> None:
        rnd = g.rnd
        self.g = g
        self.rows = g.rows
        self.rtt = rtt
        self.t0 = t0
        self.local = (cli.local, srv.local)
        eps = rnd.uniform(1.5e-5, 1.5e-4)
        self.rd = (eps if cli.local else rtt, eps if srv.local else rtt)
        base_mss = 1460 if ipv == 4 else 1440
        cli_mss = base_mss if rnd.random() < 0.9 else rnd.choice((1452, 1412, 1380))
        srv_mss = base_mss if rnd.random() < 0.75 else rnd.choice((1400, 1380, 1440, 1360))
        cos = cli.os
        self.cli_syn_opt = cos.syn_opt
        if rnd.random() < 0.04:
            self.srv_opt = OPT_MSS  # an old stack or a middlebox: no wscale, SACK, timestamps
        elif cos.ts:
            self.srv_opt = OPT_SYN_LINUX
        else:
            self.srv_opt = OPT_SYNACK_NOTS
        self.ts_on = cos.ts and self.srv_opt == OPT_SYN_LINUX
        self.sack_on = self.srv_opt != OPT_MSS
        ws_on = self.srv_opt != OPT_MSS
        srv_ws = rnd.choice((7, 7, 7, 8, 9, 10))
        self.seg = min(cli_mss, srv_mss) - (12 if self.ts_on else 0)
        self.data_opt = OPT_TS if self.ts_on else OPT_NONE
        self.dup_opt = (OPT_TS_SACK if self.ts_on else OPT_SACK) if self.sack_on \
            else self.data_opt
        self.fd = g.add_pair(ipv, TCP, cli, srv, ports, rtt=rtt, cli_mss=cli_mss,
                             srv_mss=srv_mss, cli_ws=cos.ws, srv_ws=srv_ws)
        self.syn_win = (cos.syn_win, rnd.choice((65160, 64240, 65535, 28960)))
        if ws_on:
            self.win = (rnd.randrange(*cos.win_range), rnd.randrange(256, 2048))
        else:
            self.win = (min(65535, cos.syn_win), 65535)
        wrap = rnd.random() < 0.04
        if wrap:
            g.stats["tcp_isn_near_wrap"] += 1
        self.isn = tuple((1 << 32) - rnd.randrange(1, 50_000) if wrap and rnd.random() < 0.7
                         else rnd.randrange(1 << 32) for _ in range(2))
        self.nxt = [0, 0]
        self.bw_gap = (self.seg + 66) * 8 / rnd.lognormvariate(math.log(60e6), 1.0)
        self.cwnd_max = max(10, min(300, int(rtt / max(self.bw_gap, 1e-6))))
        self.p_loss = 0.03 if rnd.random() < 0.5 else 0.005
        self.first_t = t0
        self.last_t = t0

    def isn_wrapped(self) -> bool:
        return any(self.isn[s] + self.nxt[s] > M32 for s in (0, 1))

    def emit(
            self, t: float, side: int, flags: int, seq: int, ack: int, plen: int, opt: int,
            poff: int = -1, sl: int = 0, sr: int = 0, win: int = -1) -> None:
        """One TCP segment from side at capture time t; seq and ack relative to the ISNs."""
        isn = self.isn
        self.last_t = max(self.last_t, t)
        self.rows.append((
            int(t * 1e9), self.fd[side], (isn[side] + seq) & M32,
            (isn[1 - side] + ack) & M32 if flags & ACK else 0, flags, opt,
            self.win[side] if win < 0 else win, plen, poff, sl, sr))

    # -- phases --------------------------------------------------------------------------------
    def handshake(self, t: float) -> float:
        g = self.g
        syn_opt, ack_opt = self.cli_syn_opt, self.data_opt
        self.emit(t, 0, SYN, 0, 0, 0, syn_opt, win=self.syn_win[0])
        if g.rnd.random() < 0.01:  # the first SYN (or its SYN-ACK) got lost
            t += 1.0
            self.emit(t, 0, SYN, 0, 0, 0, syn_opt, win=self.syn_win[0])
            g.stats["syn_retransmissions"] += 1
            g.stats["tcp_syn_retx_answered"] += 1
        t += self.rd[1]
        self.emit(t, 1, SYN | ACK, 0, 1, 0, self.srv_opt, win=self.syn_win[1])
        t += self.rd[0]
        self.emit(t, 0, ACK, 1, 1, 0, ack_opt)
        self.nxt = [1, 1]
        return t

    def refused(self, t: float) -> None:
        self.emit(t, 0, SYN, 0, 0, 0, self.cli_syn_opt, win=self.syn_win[0])
        # RFC 9293: the reset answering a segment without ACK has SEQ=0, ACK=SEG.SEQ+SEG.LEN.
        self.emit(t + self.rd[1], 1, RST | ACK, -self.isn[1], 1, 0, OPT_NONE, win=0)

    def unanswered(self, t: float, retries: int) -> None:
        opt = self.cli_syn_opt
        backoff = 1.0
        for k in range(retries + 1):
            self.emit(t, 0, SYN, 0, 0, 0, opt, win=self.syn_win[0])
            if k:
                self.g.stats["syn_retransmissions"] += 1
            t += backoff * self.g.rnd.uniform(1.0, 1.01)
            backoff *= 2

    def send(self, t: float, s: int, nbytes: int, first: int = -1) -> tuple[float, float]:
        """Side s sends nbytes starting at capture time t, in slow-start flights; the receiver
        ACKs every second segment, duplicate-ACKs out-of-order ones (with SACK when agreed).
        Injects losses (fast retransmit after 3 dup ACKs, or RTO for a lost tail) and reordering.
        Returns (time of the last segment, time of a pending delayed ACK or -1)."""
        if nbytes <= 0:
            return t, -1.0
        rnd, st, emit = self.g.rnd, self.g.stats, self.emit
        r = 1 - s
        mss, gap, rtt = self.seg, self.bw_gap, self.rtt
        rd_r, rd_s = self.rd[r], self.rd[s]
        sender_local = self.local[s]
        seq = self.nxt[s]
        end = seq + nbytes
        ack = self.nxt[r]
        isn_s = self.isn[s]
        data_opt, dup_opt = self.data_opt, self.dup_opt
        cum = seq
        unacked = 0
        cwnd = 10
        tf = t
        t_last = t
        last_arrival = t
        first_seg = first
        while seq < end:
            flight: list[list[Any]] = []
            tj = tf
            while len(flight) < cwnd and seq < end:
                size = min(mss, end - seq)
                flight.append([tj, seq, size, first_seg])
                first_seg = -1
                seq += size
                tj += gap * size / mss + 1e-6
            n = len(flight)
            lost = tail = -1
            reordered = False
            if n >= 5 and rnd.random() < self.p_loss:
                lost = rnd.randrange(0, n - 3)
            elif n >= 3 and not sender_local and rnd.random() < self.p_loss:
                k = rnd.randrange(0, n - 1)  # reordering: k+1 overtakes k
                flight[k][1:], flight[k + 1][1:] = flight[k + 1][1:], flight[k][1:]
                st["reordered"] += 1
                reordered = True
            if seq >= end and lost < 0 and not reordered and n >= 2 \
                    and rnd.random() < self.p_loss / 2:
                tail = n - 1
            for i, (tt, sq, sz, po) in enumerate(flight):
                if sender_local or i not in (lost, tail):
                    emit(tt, s, ACK | PSH if sq + sz == end else ACK, sq, ack, sz, data_opt, po)
            dup = 0
            sack_lo = sack_hi = -1
            retx_t = -1.0
            for i, (tt, sq, sz, _po) in enumerate(flight):
                last_arrival = tt
                if i in (lost, tail):
                    continue
                if sq == cum:
                    cum += sz
                    if sack_lo >= 0 and cum >= sack_lo:  # a reordering hole was filled
                        cum = max(cum, sack_hi)
                        sack_lo = sack_hi = -1
                        emit(tt + rd_r, r, ACK, ack, cum, 0, data_opt)
                        unacked = 0
                    else:
                        unacked += 1
                        if unacked == 2:
                            emit(tt + rd_r, r, ACK, ack, cum, 0, data_opt)
                            unacked = 0
                else:
                    if sack_lo < 0:
                        sack_lo = sq
                    sack_hi = sq + sz
                    emit(tt + rd_r, r, ACK, ack, cum, 0, dup_opt,
                         sl=(isn_s + sack_lo) & M32, sr=(isn_s + sack_hi) & M32)
                    st["dup_acks"] += 1
                    dup += 1
                    if dup == 3:
                        retx_t = tt + rd_r + rd_s
            t_last = flight[-1][0]
            if lost >= 0:
                lt, lsq, lsz, _ = flight[lost]
                retx_t = max(retx_t, t_last + 2e-6)
                emit(retx_t, s, ACK, lsq, ack, lsz, data_opt)
                st["fast_retransmissions"] += 1
                st["retx_seen_twice" if sender_local else "retx_first_unseen"] += 1
                cum = max(cum, sack_hi)
                sack_lo = sack_hi = -1
                emit(retx_t + rd_r, r, ACK, ack, cum, 0, data_opt)
                unacked = 0
                t_last = last_arrival = retx_t
                cwnd = max(2, cwnd // 2)
            if tail >= 0:
                lt, lsq, lsz, _ = flight[tail]
                retx_t = lt + max(0.2, 2 * rtt) + rtt
                emit(retx_t, s, ACK | PSH, lsq, ack, lsz, data_opt)
                st["rto_retransmissions"] += 1
                st["retx_seen_twice" if sender_local else "retx_first_unseen"] += 1
                cum = lsq + lsz
                emit(retx_t + rd_r, r, ACK, ack, cum, 0, data_opt)
                unacked = 0
                t_last = last_arrival = retx_t
            if seq < end and unacked:
                emit(last_arrival + rd_r, r, ACK, ack, cum, 0, data_opt)
                unacked = 0
            tf = max(tf + rtt, t_last + gap)
            if retx_t > 0:
                tf = max(tf, retx_t + rd_s)
            if lost < 0:
                cwnd = min(cwnd * 2, self.cwnd_max)
        self.nxt[s] = end
        pending = last_arrival + rd_r + 0.04 if unacked else -1.0
        return t_last, pending

    def exchange(self, t: float, req: int, resp: int, proc: float, *, req_first: int = -1,
                 resp_first: int = -1) -> float:
        """Client request, server response; returns the time of the last packet."""
        t_end, pend = self.send(t, 0, req, req_first)
        t_resp = t_end + self.rd[1] + proc
        if pend > 0 and (pend < t_resp or resp <= 0):  # the server's delayed ACK fires
            self.emit(pend, 1, ACK, self.nxt[1], self.nxt[0], 0, self.data_opt)
        if resp <= 0:
            return self.last_t
        t_end, pend = self.send(t_resp, 1, resp, resp_first)
        if pend > 0:
            self.emit(pend, 0, ACK, self.nxt[0], self.nxt[1], 0, self.data_opt)
        return self.last_t

    def plan(self, profile: str) -> tuple[list[tuple[float, int, int, float, int, int]], float,
                                          int]:
        """Exchanges (think, request, response, server time, request/response template),
        idle time before the close, and which side closes (0 client, 1 server)."""
        g, rnd = self.g, self.g.rnd
        cap = g.tcp_seg_cap * self.seg

        def body(median: float, sigma: float) -> int:
            return min(cap, int(rnd.lognormvariate(math.log(median), sigma)))

        ex: list[tuple[float, int, int, float, int, int]] = []
        closer = 0
        if profile in ("web", "upload"):
            ex.append((0.0, rnd.randrange(230, 600), rnd.randrange(2500, 6500),
                       rnd.uniform(2e-4, 3e-3), -1, -1))  # TLS ClientHello / ServerHello..
            ex.append((0.0, rnd.randrange(64, 130), rnd.randrange(50, 600),
                       rnd.uniform(1e-4, 1e-3), -1, -1))
            if profile == "upload":
                ex.append((rnd.uniform(0.01, 0.3), body(80_000, 1.0), rnd.randrange(80, 600),
                           rnd.expovariate(1 / 0.05), -1, -1))
            for k in range(min(40, int(rnd.expovariate(1 / 1.5)) + 1)):
                ex.append((0.0 if k == 0 else rnd.expovariate(1 / 1.5),
                           rnd.randrange(90, 1400), body(3000, 1.4),
                           rnd.lognormvariate(math.log(0.02), 1.0), -1, -1))
        elif profile == "http":
            for k in range(min(30, int(rnd.expovariate(1 / 1.5)) + 1)):
                qo, ql = rnd.choice(g.http_req)
                i = min(len(g.http_resp) - 1, max(0, int(rnd.gauss(14, 5))))
                ro, rl = g.http_resp[i]
                if rl > cap:
                    ro, rl = g.http_resp[0]
                ex.append((0.0 if k == 0 else rnd.expovariate(1 / 2.0), ql, rl,
                           rnd.lognormvariate(math.log(0.015), 1.0), qo, ro))
        elif profile == "db":
            for k in range(min(200, int(rnd.expovariate(1 / 8.0)) + 2)):
                ex.append((0.0 if k == 0 else rnd.expovariate(1 / 0.8), rnd.randrange(40, 500),
                           body(600, 1.4), rnd.lognormvariate(math.log(0.001), 1.0), -1, -1))
        elif profile == "ssh":
            ex.append((0.0, 21 + rnd.randrange(10), 21 + rnd.randrange(20), 1e-4, -1, -1))
            ex.append((0.0, rnd.randrange(1400, 1600), rnd.randrange(1000, 1200), 2e-3, -1, -1))
            ex.append((0.0, 48, rnd.randrange(500, 600), 3e-3, -1, -1))
            ex.append((0.0, rnd.randrange(60, 700), rnd.randrange(50, 700), 0.05, -1, -1))
            for _ in range(min(400, int(rnd.expovariate(1 / 15.0)) + 5)):
                resp = 36 if rnd.random() < 0.9 else body(3000, 1.5)
                ex.append((rnd.expovariate(1 / 0.7), 36, resp, 1e-4, -1, -1))
        elif profile in ("mail", "imap"):
            ex.append((0.0, 0, rnd.randrange(30, 90), 0.0, -1, -1))  # server greeting
            for _ in range(rnd.randrange(3, 12)):
                ex.append((rnd.uniform(0.001, 0.2), rnd.randrange(8, 80), rnd.randrange(8, 300),
                           rnd.uniform(1e-4, 0.05), -1, -1))
            ex.append((0.01, body(8000, 1.3), rnd.randrange(20, 60), 0.05, -1, -1))
            if profile == "imap":
                for _ in range(rnd.randrange(2, 15)):
                    ex.append((rnd.expovariate(1 / 8.0), rnd.randrange(20, 80), body(2000, 1.5),
                               0.01, -1, -1))
        elif profile == "dnstcp":
            ex.append((0.0, rnd.randrange(40, 80), rnd.randrange(200, 3000), 0.01, -1, -1))
        else:
            ex.append((0.0, rnd.randrange(40, 400), body(1500, 1.2), 0.01, -1, -1))
        # When and who closes.
        x = rnd.random()
        if profile in ("web", "http", "upload"):
            if x < 0.35:
                idle, closer = rnd.uniform(0.005, 0.3), 0
            elif x < 0.7:
                idle, closer = rnd.choice((5.0, 15.0, 60.0, 65.0)) + rnd.uniform(0, 0.01), 1
            else:
                idle, closer = rnd.uniform(1.0, 120.0), 0
        elif profile == "db":
            idle, closer = rnd.uniform(0.5, 60.0), (0 if x < 0.8 else 1)
        elif profile == "dnstcp":
            idle, closer = 0.001, 0
        else:
            idle, closer = rnd.uniform(0.01, 5.0), (0 if x < 0.6 else 1)
        return ex, idle, closer

    def run(self, t0: float, kind: str, profile: str) -> None:
        rnd, st = self.g.rnd, self.g.stats
        if kind == "midstream":
            self.nxt = [rnd.randrange(1, 1 << 20), rnd.randrange(1, 1 << 20)]
            t = t0
        else:
            t = self.handshake(t0) + 1e-5
        ex, idle, closer = self.plan(profile)
        if kind == "midstream":
            ex = ex[len(ex) // 2:] or ex
        for i, (think, req, resp, proc, rq, rp) in enumerate(ex):
            if i:
                t += think
            t = self.exchange(t + 1e-6, req, resp, proc, req_first=rq, resp_first=rp) + 1e-6
        if kind == "no_teardown":
            self._span()
            return
        if kind == "reset":
            t += rnd.uniform(0.001, 10.0)
            y = rnd.random()
            if y < 0.6:
                self.emit(t, 0, RST | ACK, self.nxt[0], self.nxt[1], 0, OPT_NONE, win=0)
                st["tcp_rst_client"] += 1
            elif y < 0.8:
                self.emit(t, 1, RST | ACK, self.nxt[1], self.nxt[0], 0, OPT_NONE, win=0)
                st["tcp_rst_server"] += 1
            else:  # the server closes, the client aborts
                self.emit(t, 1, FIN | ACK, self.nxt[1], self.nxt[0], 0, self.data_opt)
                self.nxt[1] += 1
                self.emit(t + self.rd[0], 0, RST | ACK, self.nxt[0], self.nxt[1], 0, OPT_NONE,
                          win=0)
                st["tcp_rst_after_fin"] += 1
                st["tcp_rst_client"] += 1
            self._span()
            return
        t += idle
        a = closer
        b = 1 - a
        self.emit(t, a, FIN | ACK, self.nxt[a], self.nxt[b], 0, self.data_opt)
        self.nxt[a] += 1
        t += self.rd[b]
        if rnd.random() < 0.75:
            self.emit(t, b, FIN | ACK, self.nxt[b], self.nxt[a], 0, self.data_opt)
        else:  # ACK the FIN, close a little later
            self.emit(t, b, ACK, self.nxt[b], self.nxt[a], 0, self.data_opt)
            t += rnd.uniform(1e-4, 0.05)
            self.emit(t, b, FIN | ACK, self.nxt[b], self.nxt[a], 0, self.data_opt)
        self.nxt[b] += 1
        t += self.rd[a]
        self.emit(t, a, ACK, self.nxt[a], self.nxt[b], 0, self.data_opt)
        st["tcp_fin_client_first" if a == 0 else "tcp_fin_server_first"] += 1
        self._span()

    def _span(self) -> None:
        self.g.conn_spans.append((self.first_t, self.last_t))


# ---------------------------------------------------------------------------------------------
# Runner


@dataclass(frozen=True)
class Bench:
    name: str
    command: str
    """Shell-like text; {file} is the capture; '> /dev/null' means stdout is discarded."""
    tool: str
    note: str = ""


BENCHES: tuple[Bench, ...] = (
    Bench("packets", "portlens packets --stats {file}", "portlens", "read + decode"),
    Bench("packets-1cpu", "taskset -c 0 portlens packets --stats {file}", "portlens",
          "read + decode, every thread on one CPU (issue 2: >= 3 M packets/s on one core)"),
    Bench("conns", "portlens conns --format zeek {file} > /dev/null", "portlens",
          "full analysis, 1 core"),
    Bench("conns-2w", "portlens conns --format zeek --workers 2 {file} > /dev/null", "portlens",
          "full analysis, 2 workers"),
    Bench("conns-3w", "portlens conns --format zeek --workers 3 {file} > /dev/null", "portlens",
          "full analysis, 3 workers"),
    Bench("conns-1cpu", "taskset -c 0 portlens conns --format zeek {file} > /dev/null",
          "portlens", "full analysis, every thread on one CPU (issue 3: >= 1.2 M packets/s)"),
    Bench("conns-table", "portlens conns {file} > /dev/null", "portlens",
          "full analysis, the default table"),
    Bench("events", "portlens events {file} > /dev/null", "portlens",
          "every RFC 9293 transition, a line each"),
    Bench("ports", "portlens ports {file} > /dev/null", "portlens", "per-port summary"),
    Bench("handshakes", "portlens handshakes {file} > /dev/null", "portlens",
          "handshakes per port"),
    Bench("sockets", "portlens sockets {file} > /dev/null", "portlens", "observed sockets"),
    Bench("tcpdump", "tcpdump -r {file} -w /dev/null", "tcpdump", "libpcap bare read + write"),
    Bench("list", "portlens packets {file} > /dev/null", "portlens", "a line per packet"),
    Bench("list-json", "portlens packets --json {file} > /dev/null", "portlens",
          "a JSON object per packet"),
    Bench("tcpdump-list", "tcpdump -n -r {file} > /dev/null", "tcpdump",
          "a line per packet (-n: no name lookups)"),
    Bench("capinfos", "capinfos {file} > /dev/null", "capinfos", "wiretap read, statistics"),
    Bench("tshark-conv", "tshark -r {file} -q -z conv,tcp > /dev/null", "tshark",
          "full dissection + TCP conversations"),
    Bench("tcptrace", "tcptrace -n {file} > /dev/null", "tcptrace", "TCP connection list"),
    Bench("tcptrace-l", "tcptrace -n -l -r {file} > /dev/null", "tcptrace",
          "long output + RTT stats"),
)

NOT_AVAILABLE = re.compile(r"invalid choice|unrecognized arguments|usage:|"
                           r"No module named 'portlens|No such command", re.IGNORECASE)


@dataclass
class Result:
    bench: Bench
    argv: list[str]
    status: str = "ok"
    seconds: float = math.nan
    """The best wall time."""
    rss_mb: float = math.nan
    runs: list[float] = field(default_factory=list)
    """Wall seconds of each run."""
    cpu_runs: list[float] = field(default_factory=list)
    """CPU seconds (user + system) of each run: what a shared machine does not blur."""

    @property
    def cpu(self) -> float:
        return min(self.cpu_runs) if self.cpu_runs else math.nan


def _portlens_prefix() -> list[str]:
    """The `portlens` script of the Python running the benchmarks (where `pip install` puts
    it), else the first on PATH, else `python -m portlens`. The one beside the interpreter
    comes first because the first on PATH may be a pyenv shim: a shell script that runs
    `pyenv exec` before portlens, about 0.06 CPU s a run (measured on a 13-packet capture:
    0.16-0.19 CPU s through the shim, 0.10-0.11 without) that users of an installed
    portlens do not pay."""
    beside = Path(sys.executable).with_name("portlens")
    if beside.is_file():
        return [str(beside)]
    exe = shutil.which("portlens")
    return [exe] if exe else [sys.executable, "-m", "portlens"]


def compile_portlens() -> None:
    """Byte-compile the portlens package the benchmarks import, as `pip install` does: in a
    checkout run with PYTHONDONTWRITEBYTECODE set (this machine's default), every run would
    otherwise compile its modules from source, 0.02-0.03 CPU s of `packets --stats` that an
    installed portlens does not spend. The .pyc files go to the package's __pycache__
    directories (git-ignored)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("portlens")
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)


def _argv(bench: Bench, path: Path) -> tuple[list[str], bool]:
    text = bench.command.format(file=shlex.quote(str(path)))
    null = text.endswith("> /dev/null")
    if null:
        text = text[: -len("> /dev/null")].strip()
    argv = shlex.split(text)
    if "portlens" in argv:  # first, or after `taskset -c 0`
        k = argv.index("portlens")
        argv = argv[:k] + _portlens_prefix() + argv[k + 1:]
    return argv, null


@dataclass(frozen=True)
class Run:
    """One run of a command: exit status, wall and CPU (user + system) seconds, peak RSS."""

    status: int
    wall: float
    cpu: float
    rss_mb: float
    stderr: str


def _measure(argv: list[str], null: bool, timeout: float) -> Run:
    """Run argv once, measured by GNU time (``%e %U %S %M``) or, without it, getrusage."""
    gnu_time = Path("/usr/bin/time")
    stdout = subprocess.DEVNULL if null else subprocess.PIPE
    if gnu_time.exists():
        with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
            proc = subprocess.run([str(gnu_time), "-f", "%e %U %S %M", "-o", tf.name, *argv],
                                  stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                                  check=False)
            lines = [ln for ln in Path(tf.name).read_text().splitlines() if ln.strip()]
        wall_s, user_s, sys_s, rss_s = lines[-1].split()
        seconds, cpu, rss_kb = float(wall_s), float(user_s) + float(sys_s), float(rss_s)
    else:  # resource-based fallback: wall time from the clock, the rest from the children
        import resource
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                              check=False)
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss_kb = float(max(before.ru_maxrss, after.ru_maxrss))
    err = proc.stderr.decode(errors="replace")
    return Run(proc.returncode, seconds, cpu, rss_kb / 1024, err[-2000:])


def run_once(res: Result, path: Path, timeout: float) -> None:
    """One more run of ``res``'s command, unless an earlier one failed."""
    bench = res.bench
    if res.status != "ok":
        return
    argv, null = _argv(bench, path)
    if bench.tool != "portlens" and shutil.which(argv[0]) is None:
        res.status = "not installed"
        return
    try:
        run = _measure(argv, null, timeout)
    except subprocess.TimeoutExpired:
        res.status = f"timeout (> {timeout:.0f} s)"
        return
    if run.status != 0:
        err = run.stderr
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if bench.tool == "portlens" and (run.status == 2 or "portlens" in err) \
                and NOT_AVAILABLE.search(err):
            res.status = "not available yet"
        else:
            res.status = f"failed (exit {run.status}: {last[:120]})"
        return
    res.runs.append(run.wall)
    res.cpu_runs.append(run.cpu)
    res.seconds = min(res.runs)
    res.rss_mb = run.rss_mb if math.isnan(res.rss_mb) else max(res.rss_mb, run.rss_mb)


def run_bench(bench: Bench, path: Path, repeat: int, timeout: float) -> Result:
    res = Result(bench, _argv(bench, path)[0])
    for _ in range(repeat):
        run_once(res, path, timeout)
    return res


def run_interleaved(benches: Sequence[Bench], path: Path, repeat: int, timeout: float,
                    report: Callable[[int, Result], None] | None = None) -> list[Result]:
    """``repeat`` rounds of every command in turn, so that the load of a shared machine
    falls on all of them alike (``report(round, result)`` after each run)."""
    results = [Result(b, _argv(b, path)[0]) for b in benches]
    for k in range(repeat):
        for res in results:
            run_once(res, path, timeout)
            if report is not None:
                report(k, res)
    return results


def count_packets(path: Path) -> int:
    """Count the records of a classic pcap by walking its record headers."""
    n = 0
    with path.open("rb") as fh:
        magic = fh.read(24)[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        unpack = struct.Struct(endian + "IIII").unpack
        while True:
            hdr = fh.read(16)
            if len(hdr) < 16:
                return n
            fh.seek(unpack(hdr)[2], 1)
            n += 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine_info() -> dict[str, str]:
    nproc = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
    try:
        mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal"))
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    try:
        from importlib.metadata import version
        portlens_v = version("portlens")
    except Exception:
        portlens_v = "?"
    return {
        "nproc": nproc,
        "cpu": _cpu_model(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "portlens": portlens_v,
        "tshark": re.sub(r"\s*\(Git.*", "", _tool_version(["tshark", "-v"])),
        "tcpdump": _tool_version(["tcpdump", "--version"]),
        "tcptrace": re.sub(r".*version\s+([\d.]+).*", r"tcptrace \1",
                           _tool_version(["tcptrace", "-v"])),
    }


def _fmt(v: float, spec: str) -> str:
    return "–" if math.isnan(v) else format(v, spec)


def _spread(values: list[float]) -> str:
    """min / median / max."""
    if not values:
        return "–"
    v = sorted(values)
    return f"{v[0]:.2f} / {statistics.median(v):.2f} / {v[-1]:.2f}"


def results_table(results: list[Result], packets: int) -> str:
    """CPU seconds (user + system) and wall seconds as min / median / max of the runs; the
    rates from the minima."""
    lines = ["| benchmark | command | CPU s (min / median / max) | wall s (min / median / max) "
             "| M packets per CPU s | M packets/s (wall) | peak RSS MB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        cmd = r.bench.command.format(file="FILE")
        if r.status == "ok":
            per_cpu = packets / r.cpu / 1e6 if r.cpu > 0 else math.inf
            rate = packets / r.seconds / 1e6 if r.seconds > 0 else math.inf
            lines.append(f"| {r.bench.name} | `{cmd}` | {_spread(r.cpu_runs)} | "
                         f"{_spread(r.runs)} | {per_cpu:.2f} | {rate:.2f} | "
                         f"{_fmt(r.rss_mb, '.0f')} |")
        else:
            lines.append(f"| {r.bench.name} | `{cmd}` | {r.status} | – | – | – | – |")
    return "\n".join(lines)


def markdown_section(results: list[Result], path: Path, *, packets: int, repeat: int,
                     info: dict[str, str], cmdline: str) -> str:
    size = path.stat().st_size
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meas = ("`/usr/bin/time -f \"%e %U %S %M\"`" if Path("/usr/bin/time").exists()
            else "`resource.getrusage(RUSAGE_CHILDREN)`")
    return "\n".join([
        f"Measured {when} with `{cmdline}`.",
        "",
        f"- Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, {info['memory']} RAM, "
        f"{info['os']}",
        f"- Python {info['python']}, numpy {info['numpy']}, portlens {info['portlens']}; "
        f"{info['tshark']}, {info['tcpdump']}, {info['tcptrace']}",
        f"- Capture: `{path}`, {packets:,} packets, {size / 1e9:.2f} GB",
        f"- {repeat} rounds, each running every command in turn; CPU (user + system) and wall "
        f"seconds as min / median / max of the rounds, rates from the minima; peak RSS is the "
        f"largest of the runs; all measured on the whole process with {meas}.",
        "",
        results_table(results, packets),
    ])


MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


MARKED_SECTION = re.compile(rf"^{re.escape(MARK_START)}\n.*?^{re.escape(MARK_END)}$",
                            re.MULTILINE | re.DOTALL)
"""The markers count only on lines of their own, so prose may mention them."""


def rewrite_markdown(doc: Path, section: str, *, start: str = MARK_START, end: str = MARK_END,
                     heading: str = "Results") -> None:
    """Replace the section between the start and end markers (each on a line of its own), or
    append it under a new heading."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    marked = re.compile(rf"^{re.escape(start)}\n.*?^{re.escape(end)}$", re.MULTILINE | re.DOTALL)
    if marked.search(text):
        text = marked.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + block + "\n"
    doc.write_text(text)


# ---------------------------------------------------------------------------------------------
# Live capture: replay the capture into a veth pair, capture on the other end

NS_TX, NS_RX = "plbench-a", "plbench-b"
VETH_TX, VETH_RX = "plb0", "plb1"
LIVE_DEFAULT_PACKETS = 300_000
SETTLE_S = 3.0
"""Least wait after the replay before a tool is stopped: libpcap asks for a 1 s block timeout,
and the kernel hands a partly filled block over within one to two timeouts (2 s lost packets)."""

SCAPY_COUNTER = """\
import json, signal, struct, sys
from scapy.all import conf, sniff
# Started from a shell's background job, SIGINT arrives ignored and Python then installs no
# KeyboardInterrupt handler: restore it, or the clean stop below never comes.
signal.signal(signal.SIGINT, signal.default_int_handler)
seen = 0
def count(_pkt):
    global seen
    seen += 1
# the socket sniff(iface=...) would open itself, kept to read its statistics afterwards
sock = conf.L2listen(iface=sys.argv[1])
try:
    sniff(opened_socket=sock, store=False, prn=count, timeout=float(sys.argv[2]))
except KeyboardInterrupt:
    pass
try:
    received, dropped = struct.unpack("II", sock.ins.getsockopt(263, 6, 8))
except (AttributeError, OSError):
    received = dropped = -1
print(json.dumps({"seen": seen, "received": received, "dropped": dropped}), flush=True)
"""
"""scapy's sniff with a counting prn; SIGINT ends it (sniff catches KeyboardInterrupt)."""


@dataclass(frozen=True)
class Counts:
    captured: int = -1
    """Packets the tool handled: written (tcpdump), analysed (portlens), prn calls (scapy)."""
    received: int = -1
    """The kernel's "received by filter" (includes the kernel drops); -1: not known."""
    dropped: int = -1
    """The kernel's "dropped by kernel" (ring or socket buffer full); -1: not known."""
    tool_dropped: int = -1
    """Dropped inside the tool after the kernel delivered them (portlens: buffer full)."""


def _int_after(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else -1


def _parse_portlens(_out: str, err: str) -> Counts:
    if not re.search(r"\d+ packets captured, \d+ analysed", err):
        return Counts()
    return Counts(_int_after(r"(\d+) analysed", err),
                  _int_after(r"(\d+) received by filter", err),
                  _int_after(r"(\d+) dropped by kernel", err),
                  _int_after(r"(\d+) dropped by portlens", err))


def _parse_tcpdump(_out: str, err: str) -> Counts:
    return Counts(_int_after(r"(\d+) packets? captured", err),
                  _int_after(r"(\d+) packets? received by filter", err),
                  _int_after(r"(\d+) packets? dropped by kernel", err))


def _parse_scapy(out: str, _err: str) -> Counts:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            d = json.loads(line)
            return Counts(int(d["seen"]), int(d["received"]), int(d["dropped"]))
    return Counts()


def _drain(fd: int) -> None:
    """Reads a pseudo-terminal's output until its last writer has gone, so that the tool
    never blocks on a full terminal; closes it then."""
    try:
        while os.read(fd, 1 << 16):
            pass
    except OSError:  # EIO: the terminal's other end is closed
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LiveTool:
    name: str
    command: str
    """As shown in the table; {iface} is the capture interface."""
    argv: Callable[[str, float], list[str]]
    """(interface, time limit in seconds) -> the command, run inside the receiving namespace."""
    parse: Callable[[str, str], Counts]
    """(stdout, stderr) -> counts; stdout is discarded when command ends in '> /dev/null'."""
    needs: str = ""
    """Executable (or 'python:module') that must be present."""
    tty: bool = False
    """Standard output is a terminal (a pseudo-terminal this process drains), as when a user
    watches `portlens sniff`'s dashboard; its counts are read from standard error as usual."""


LIVE_TOOLS: tuple[LiveTool, ...] = (
    LiveTool("portlens", "portlens sniff -i {iface} --json > /dev/null",
             lambda i, _t: [*_portlens_prefix(), "sniff", "-i", i, "--json"], _parse_portlens),
    LiveTool("portlens-dashboard", "portlens sniff -i {iface} (on a terminal)",
             lambda i, _t: [*_portlens_prefix(), "sniff", "-i", i], _parse_portlens, tty=True),
    LiveTool("portlens-ports", "portlens ports -i {iface} > /dev/null",
             lambda i, _t: [*_portlens_prefix(), "ports", "-i", i], _parse_portlens),
    LiveTool("portlens-zeek", "portlens conns -i {iface} --format zeek > /dev/null",
             lambda i, _t: [*_portlens_prefix(), "conns", "-i", i, "--format", "zeek"],
             _parse_portlens),
    LiveTool("portlens-decode", "portlens packets -i {iface} --stats > /dev/null",
             lambda i, _t: [*_portlens_prefix(), "packets", "-i", i, "--stats"], _parse_portlens),
    LiveTool("tcpdump", "tcpdump -i {iface} -w /dev/null",
             lambda i, _t: ["tcpdump", "-i", i, "-w", "/dev/null"], _parse_tcpdump, "tcpdump"),
    LiveTool("scapy", "sniff(iface='{iface}', store=False, prn=count)",
             lambda i, t: [sys.executable, "-c", SCAPY_COUNTER, i, f"{t:.0f}"], _parse_scapy,
             "python:scapy"),
)
LIVE_DEFAULT_TOOLS = "portlens,portlens-decode,tcpdump,scapy"

def _with_args(tool: LiveTool, extra: list[str]) -> LiveTool:
    """A portlens tool with extra command-line arguments (e.g. --buffer 1)."""
    def argv(iface: str, limit: float) -> list[str]:
        return [*tool.argv(iface, limit), *extra]

    shown = shlex.join(extra)
    command = tool.command.replace(" > /dev/null", f" {shown} > /dev/null") \
        if tool.command.endswith(" > /dev/null") else f"{tool.command} {shown}"
    return LiveTool(f"{tool.name} {shown}", command, argv, tool.parse, tool.needs)


@dataclass
class LiveRun:
    rate: str
    tool: LiveTool
    run: int
    status: str = "ok"
    sent: int = -1
    failed: int = 0
    """tcpreplay's failed packets (send errors)."""
    pps: float = math.nan
    """tcpreplay's achieved rate."""
    replay_s: float = math.nan
    counts: Counts = field(default_factory=Counts)
    backlog_drops: int = 0
    """softnet_stat drops while it ran: packets lost before any packet socket saw them."""
    drain_s: float = math.nan
    """From the end of the replay until the capturing process first went quiet: its backlog,
    and for portlens also the reports its connection timers produce after the last packet."""
    cpu_s: float = math.nan
    """User + system CPU of the capturing process, whole run."""
    rss_mb: float = math.nan
    """Peak resident memory of the capturing process."""

    @property
    def lost(self) -> int:
        if self.sent < 0 or self.counts.captured < 0:
            return -1
        return self.sent - self.counts.captured

    @property
    def kept_up(self) -> bool:
        return self.status == "ok" and self.lost == 0 and self.counts.dropped in (0, -1) \
            and self.counts.tool_dropped in (0, -1)


def _sh(argv: list[str], *, check: bool = True, timeout: float = 30) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _in_ns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def teardown_veth() -> None:
    """Delete the two benchmark namespaces (and so the veth pair) if they exist."""
    existing = {ln.split()[0] for ln in _sh(["ip", "netns", "list"], check=False).splitlines()
                if ln.strip()}
    for ns in (NS_TX, NS_RX):
        if ns in existing:
            _sh(["ip", "netns", "del", ns], check=False)


def setup_veth() -> int:
    """Two namespaces joined by a veth pair, both ends up, no addresses, IPv6 off (so the
    kernel sends nothing of its own: router solicitations, MLD). Returns the receiving
    end's ifindex."""
    teardown_veth()  # leftovers of a run that was killed
    for ns in (NS_TX, NS_RX):
        _sh(["ip", "netns", "add", ns])
        _sh(_in_ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"]))
        _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    _sh(["ip", "link", "add", VETH_TX, "netns", NS_TX, "type", "veth", "peer", "name", VETH_RX,
         "netns", NS_RX])
    _sh(["ip", "-n", NS_TX, "link", "set", VETH_TX, "up"])
    _sh(["ip", "-n", NS_RX, "link", "set", VETH_RX, "up"])
    info = json.loads(_sh(["ip", "-n", NS_RX, "-j", "link", "show", VETH_RX]))
    return int(info[0]["ifindex"])


def _softnet_drops() -> int:
    """Packets dropped because a CPU's input backlog (netdev_max_backlog) was full."""
    try:
        return sum(int(ln.split()[1], 16)
                   for ln in Path("/proc/net/softnet_stat").read_text().splitlines())
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    return int(fields[11]) + int(fields[12])  # utime, stime


def _bound_packet_socket(pid: int, ifindex: int) -> bool:
    """Whether the process holds a running AF_PACKET socket bound to ifindex (ETH_P_ALL)."""
    try:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        lines = Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
    except OSError:
        return False
    for ln in lines:
        # sk RefCnt Type Proto Iface R Rmem User Inode
        f = ln.split()
        if len(f) >= 9 and f[8] in inodes and f[3] == "0003" and f[4] == str(ifindex) \
                and f[5] == "1":
            return True
    return False


def _tcpreplay_argv(rate: str, path: Path, limit: int | None, loop: int = 1,
                    sender: str = "tcpreplay") -> list[str]:
    """The replay command: tcpreplay, or (``sender`` a path) scripts/pktflood.c built, which
    sends 512 frames per sendmmsg(2) and prints tcpreplay's summary lines."""
    if sender != "tcpreplay":
        if limit:
            raise ValueError("--limit is for tcpreplay")
        argv = [sender, "-i", VETH_TX]
        argv += [] if rate == "topspeed" else ["--pps", rate]
        return [*argv, "--loop", str(loop), str(path)]
    argv = ["tcpreplay", "-i", VETH_TX, "--preload-pcap"]
    argv += ["--topspeed"] if rate == "topspeed" else ["--pps", rate]
    if loop > 1:
        argv += ["--loop", str(loop)]
    if limit:
        argv += ["--limit", str(limit)]
    return [*argv, str(path)]


def build_pktflood(directory: Path) -> str:
    """scripts/pktflood.c compiled with the system's C compiler; the executable's path."""
    exe = directory / "pktflood"
    _sh(["cc", "-O2", "-o", str(exe), str(Path(__file__).with_name("pktflood.c"))],
        timeout=120)
    return str(exe)


def _parse_tcpreplay(out: str, run: LiveRun) -> None:
    m = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", out)
    if m:
        run.sent, run.replay_s = int(m.group(1)), float(m.group(2))
    m = re.search(r"Rated: .*?([\d.]+) pps", out)
    if m:
        run.pps = float(m.group(1))
    run.failed = max(0, _int_after(r"Failed packets:\s+(\d+)", out))


def _stop_and_reap(pid: int, grace: float) -> tuple[int, float, float]:
    """SIGINT (the tools' clean stop: final statistics), SIGKILL after grace seconds.
    Returns (exit status, user + system CPU seconds, peak RSS in MB)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid:
            return (os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime,
                    ru.ru_maxrss / 1024)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _, status, ru = os.wait4(pid, 0)
            return -9, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024
        time.sleep(0.05)


def live_trial(tool: LiveTool, rate: str, path: Path, packets: int, ifindex: int, *,
               run_no: int = 1, limit: int | None = None, loop: int = 1,
               drain_timeout: float = 60.0, quiet_share: float = 0.1,
               sender: str = "tcpreplay") -> LiveRun:
    """Start the capturing tool in the receiving namespace, wait until its packet socket is
    bound, replay, wait until it has gone idle (or drain_timeout), stop it with SIGINT and read
    its counts. Every step is bounded in time."""
    res = LiveRun(rate, tool, run_no)
    n = min(packets * loop, limit) if limit else packets * loop
    replay_limit = 60.0 + (3.0 * n / int(rate) if rate != "topspeed" else 0.5 * n / 10_000)
    tool_limit = replay_limit + drain_timeout + 60.0
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        null = tool.command.endswith("> /dev/null")
        stdout: int | IO[str] = subprocess.DEVNULL if null else out_f
        terminal = None
        if tool.tty:
            master, terminal = os.openpty()
            threading.Thread(target=_drain, args=(master,), daemon=True).start()
            stdout = terminal
        proc = subprocess.Popen(_in_ns(NS_RX, tool.argv(VETH_RX, tool_limit)), stdout=stdout,
                                stderr=err_f, stdin=subprocess.DEVNULL, start_new_session=True)
        if terminal is not None:
            os.close(terminal)  # the child holds it now: its exit ends the drain
        reaped = False
        try:
            deadline = time.monotonic() + 60
            while not _bound_packet_socket(proc.pid, ifindex):
                if proc.poll() is not None or time.monotonic() > deadline:
                    reaped = proc.returncode is not None
                    err_f.seek(0)
                    tail = (err_f.read().strip().splitlines() or ["?"])[-1]
                    res.status = f"capture did not start: {tail[:100]}"
                    return res
                time.sleep(0.05)
            time.sleep(0.3)
            backlog0 = _softnet_drops()
            try:
                rp = subprocess.run(_in_ns(NS_TX, _tcpreplay_argv(rate, path, limit, loop,
                                                                  sender)),
                                    capture_output=True, text=True, timeout=replay_limit,
                                    check=False)
            except subprocess.TimeoutExpired:
                res.status = f"tcpreplay timeout (> {replay_limit:.0f} s)"
                return res
            replay_end = time.monotonic()
            _parse_tcpreplay(rp.stdout + rp.stderr, res)
            if rp.returncode != 0 or res.sent < 0:
                last = (rp.stderr.strip().splitlines() or ["?"])[-1]
                res.status = f"tcpreplay failed (exit {rp.returncode}: {last[:100]})"
                return res
            # Idle: the capturing process used less than quiet_share of a CPU over two
            # consecutive 0.25 s windows, and at least SETTLE_S have passed (libpcap hands a
            # partly filled ring block over after its 1 s timeout; stopped earlier, tcpdump
            # never reads it).
            hz = os.sysconf("SC_CLK_TCK")
            quiet, last_busy = 0, replay_end
            ticks, t_prev = _cpu_ticks(proc.pid), time.monotonic()
            while (quiet < 2 or time.monotonic() - replay_end < SETTLE_S) \
                    and time.monotonic() - replay_end < drain_timeout and proc.poll() is None:
                time.sleep(0.25)
                now, t = time.monotonic(), _cpu_ticks(proc.pid)
                if (t - ticks) / hz / (now - t_prev) < quiet_share:
                    quiet += 1
                else:
                    quiet, last_busy = 0, now
                ticks, t_prev = t, now
            res.drain_s = last_busy - replay_end
            res.backlog_drops = _softnet_drops() - backlog0
            if proc.poll() is not None:
                err_f.seek(0)
                tail = (err_f.read().strip().splitlines() or ["?"])[-1]
                res.status = f"capture exited early (exit {proc.returncode}: {tail[:100]})"
            else:
                if time.monotonic() - replay_end >= drain_timeout:
                    res.status = f"still busy {drain_timeout:.0f} s after the replay"
                rc, res.cpu_s, res.rss_mb = _stop_and_reap(proc.pid, 30.0)
                proc.returncode = rc
                reaped = True
                if rc not in (0, 1, 130, -signal.SIGINT):
                    res.status = f"capture exit status {rc}"
            out_f.seek(0)
            err_f.seek(0)
            res.counts = tool.parse(out_f.read(), err_f.read())
            if res.counts.captured < 0 and res.status == "ok":
                res.status = "no counts in the tool's output"
            return res
        finally:
            if not reaped and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _tool_available(tool: LiveTool) -> bool:
    if not tool.needs:
        return True
    if tool.needs.startswith("python:"):
        import importlib.util
        return importlib.util.find_spec(tool.needs[len("python:"):]) is not None
    return shutil.which(tool.needs) is not None


def _live_rates(text: str) -> list[str]:
    rates = []
    for part in text.split(","):
        p = part.strip().lower()
        if p in ("topspeed", "top"):
            rates.append("topspeed")
            continue
        mult = 1_000 if p.endswith("k") else 1_000_000 if p.endswith("m") else 1
        rates.append(str(int(float(p.rstrip("km")) * mult)))
    return rates


def _rate_label(rate: str) -> str:
    return rate if rate == "topspeed" else f"{int(rate):,}"


def _n(v: int) -> str:
    return "?" if v < 0 else f"{v:,}"


def live_table(runs: list[LiveRun]) -> str:
    lines = ["| rate asked (pkt/s) | tool | run | sent | achieved pkt/s | received by filter | "
             "captured | kernel drops | tool drops | lost | busy after s | capture CPU s | "
             "peak RSS MB | kept up |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | --- |"]
    for r in runs:
        c = r.counts
        sent = _n(r.sent) + (f" ({r.failed:,} failed)" if r.failed else "")
        if r.backlog_drops:
            sent += f" ({r.backlog_drops:,} backlog drops)"
        kept = "yes" if r.kept_up else "no" if r.status == "ok" else r.status
        lines.append(
            f"| {_rate_label(r.rate)} | {r.tool.name} | {r.run} | {sent} | "
            f"{_fmt(r.pps, ',.0f')} | {_n(c.received)} | {_n(c.captured)} | {_n(c.dropped)} | "
            f"{'–' if c.tool_dropped < 0 else _n(c.tool_dropped)} | {_n(r.lost)} | "
            f"{_fmt(r.drain_s, '.1f')} | {_fmt(r.cpu_s, '.1f')} | {_fmt(r.rss_mb, '.0f')} | "
            f"{kept} |")
    return "\n".join(lines)


def live_verdicts(runs: list[LiveRun], zero_up_to: int = 200_000) -> list[str]:
    """The issue's targets, from the worst run of each (rate, tool)."""
    worst: dict[tuple[str, str], int] = {}
    for r in runs:
        if r.lost < 0:
            continue
        key = (r.rate, r.tool.name.split(" --")[0])  # "portlens --buffer 1" counts as portlens
        worst[key] = max(worst.get(key, 0), r.lost)
    out = []
    for rate in dict.fromkeys(r.rate for r in runs):
        pl, td = worst.get((rate, "portlens")), worst.get((rate, "tcpdump"))
        if pl is None:
            continue
        label = _rate_label(rate)
        reached = [r.pps for r in runs if r.rate == rate and not math.isnan(r.pps)]
        if rate != "topspeed" and reached and min(reached) < 0.9 * int(rate):
            label += (f" (asked; the sender reached only {min(reached):,.0f}–"
                      f"{max(reached):,.0f} pkt/s: not a test of this rate)")
        if td is not None:
            ok = "met" if pl <= td else "not met"
            out.append(f"- {label}: no more losses than tcpdump: **{ok}** "
                       f"(portlens lost up to {pl:,}, tcpdump up to {td:,})")
        if rate != "topspeed" and int(rate) <= zero_up_to:
            out.append(f"- {label}: zero drops: **{'met' if pl == 0 else 'not met'}**")
    return out


def live_markdown(runs: list[LiveRun], path: Path, *, packets: int, loop: int, cmdline: str,
                  versions: dict[str, str], sender: str = "tcpreplay") -> str:
    size = path.stat().st_size
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine_info()
    replay = shlex.join(_tcpreplay_argv("topspeed", path, None, loop, sender)).replace(
        " --topspeed", "")
    if sender != "tcpreplay":
        replay = replay.replace(sender, "pktflood")
    return "\n".join([
        f"Measured {when} with `{cmdline}`.",
        "",
        f"- Machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, {info['memory']} RAM, "
        f"{info['os']}; load average {versions['load']} before the runs (1 / 5 / 15 min)",
        f"- {versions['tcpreplay']}; {info['tcpdump']}; scapy {versions['scapy']}; "
        f"portlens {info['portlens']} ({versions['commit']}), Python {info['python']}",
        f"- Capture: `{path}`, {packets:,} packets, {size / 1e6:.0f} MB "
        f"({size / max(1, packets):.0f} bytes per record on average)"
        + (f", replayed {loop} times in a row" if loop > 1 else ""),
        f"- Replay, in `{NS_TX}`: `{replay}` with `--pps RATE` "
        f"{'or `--topspeed`' if sender == 'tcpreplay' else '(or none: as fast as it can)'}; "
        "capture in "
        f"`{NS_RX}` on `{VETH_RX}`",
        "",
        live_table(runs),
        "",
        "Targets (worst run of each rate):",
        "",
        *live_verdicts(runs),
    ])


def _source_commit() -> str:
    """The commit portlens runs from, and whether src/ has changes on top of it."""
    src = Path(__file__).resolve().parents[1]
    try:
        head = _sh(["git", "-C", str(src), "rev-parse", "--short", "HEAD"]).strip()
        dirty = _sh(["git", "-C", str(src), "status", "--porcelain", "--", "src"]).strip()
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return "commit unknown"
    return f"commit {head}" + (", src/ modified" if dirty else "")


DRAIN_TOOLS: dict[str, Callable[[str], list[str]]] = {
    "portlens": lambda i: [*_portlens_prefix(), "sniff", "-i", i, "--json", "-B", "1024"],
    "portlens-decode": lambda i: [*_portlens_prefix(), "packets", "-i", i, "--stats",
                                  "-B", "1024"],
    "tcpdump": lambda i: ["tcpdump", "-i", i, "-w", "/dev/null", "-B", str(1024 * 1024)],
}
"""The tools of ``live-drain``, each with a 1 GiB kernel ring (tcpdump's -B is in KiB)."""


def _task_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (user + system) of each thread of a process."""
    out = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(task.name)] = int(fields[11]) + int(fields[12])
    return out


def drain_trial(tool: str, path: Path, loop: int, sender: str, ifindex: int) -> dict[str, Any]:
    """Start the tool with a 1 GiB ring, stop it (SIGSTOP), send the capture ``loop`` times
    into the ring, resume it and time how long it takes to work through what waits: the rate
    the tool absorbs, whatever the sender can do. Wall time from the resume until the tool is
    quiet (under 10 % of a CPU for 0.4 s); CPU seconds of the whole process and of its busiest
    thread besides the main one (portlens: the capture thread)."""
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile("w+") as err_f:
        proc = subprocess.Popen(_in_ns(NS_RX, DRAIN_TOOLS[tool](VETH_RX)),
                                stdout=subprocess.DEVNULL, stderr=err_f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not _bound_packet_socket(proc.pid, ifindex):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{tool} did not start")
                time.sleep(0.05)
            time.sleep(1.0)
            before = _task_ticks(proc.pid)
            os.killpg(proc.pid, signal.SIGSTOP)
            rp = subprocess.run(_in_ns(NS_TX, _tcpreplay_argv("topspeed", path, None, loop,
                                                              sender)),
                                capture_output=True, text=True, timeout=600, check=False)
            run = LiveRun("topspeed", LIVE_TOOLS[0], 1)
            _parse_tcpreplay(rp.stdout + rp.stderr, run)
            time.sleep(0.5)
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGCONT)
            prev = _task_ticks(proc.pid)
            quiet, last_busy, t_prev = 0, t0, t0
            while quiet < 8 and time.monotonic() - t0 < 600:
                time.sleep(0.05)
                now, ticks = time.monotonic(), _task_ticks(proc.pid)
                used = (sum(ticks.values()) - sum(prev.values())) / hz
                if used / (now - t_prev) < 0.1:
                    quiet += 1
                else:
                    quiet, last_busy = 0, now
                prev, t_prev = ticks, now
            threads = {tid: (prev.get(tid, 0) - before.get(tid, 0)) / hz for tid in prev}
            others = {tid: c for tid, c in threads.items() if tid != proc.pid}
            capture_tid = max(others, key=others.__getitem__) if others else proc.pid
            _rc, cpu_s, rss_mb = _stop_and_reap(proc.pid, 30.0)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        err_f.seek(0)
        counts = (_parse_portlens if tool.startswith("portlens") else _parse_tcpdump)(
            "", err_f.read())
    return {"tool": tool, "sent": run.sent, "captured": counts.captured,
            "dropped": counts.dropped, "busy_s": last_busy - t0,
            "drain_cpu_s": sum(threads.values()),
            "capture_cpu_s": threads.get(capture_tid, 0.0) if others else math.nan,
            "cpu_s": cpu_s, "rss_mb": rss_mb}


def cmd_live_drain(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("live-drain needs root (network namespaces, veth, packet sockets)",
              file=sys.stderr)
        return 2
    path = Path(args.file)
    tmp = tempfile.TemporaryDirectory(prefix="portlens-bench-")
    rows = []
    try:
        sender = build_pktflood(Path(tmp.name))
        ifindex = setup_veth()
        for rep in range(1, args.repeat + 1):
            for tool in args.tools.split(","):
                r = drain_trial(tool, path, args.loop, sender, ifindex)
                rows.append(r)
                print(f"{tool} run {rep}: {r}", flush=True)
    finally:
        teardown_veth()
        tmp.cleanup()
    lines = ["| tool | sent | captured | kernel drops | busy after resume s | packets/s (wall) | "
             "CPU s while draining | packets per CPU s | of which the capture thread | "
             "whole process CPU s | peak RSS MB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cap = ("–" if math.isnan(r["capture_cpu_s"]) or r["tool"] == "tcpdump"
               else f"{r['capture_cpu_s']:.2f}")
        lines.append(
            f"| {r['tool']} | {_n(r['sent'])} | {_n(r['captured'])} | {_n(r['dropped'])} | "
            f"{r['busy_s']:.2f} | {r['sent'] / max(r['busy_s'], 0.05):,.0f} | "
            f"{r['drain_cpu_s']:.2f} | {r['sent'] / max(r['drain_cpu_s'], 0.01):,.0f} | {cap} | "
            f"{r['cpu_s']:.2f} | {r['rss_mb']:.0f} |")
    print("\n".join(lines))
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("live needs root (network namespaces, veth, packet sockets)", file=sys.stderr)
        return 2
    for exe, how in (("ip", "apt-get install -y iproute2"),
                     ("tcpreplay", "apt-get install -y tcpreplay (Debian package)")):
        if shutil.which(exe) is None:
            print(f"{exe} is not installed: {how}", file=sys.stderr)
            return 2
    by_name = {t.name: t for t in LIVE_TOOLS}
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"unknown tool(s): {', '.join(unknown)}; known: {', '.join(by_name)}",
              file=sys.stderr)
        return 2
    tools = []
    for n in names:
        if _tool_available(by_name[n]):
            tool = by_name[n]
            extra = shlex.split(args.portlens_args or "")
            tools.append(_with_args(tool, extra) if extra and n.startswith("portlens")
                         else tool)
        else:
            print(f"skipping {n}: {by_name[n].needs} is not installed", file=sys.stderr)
    rates = _live_rates(args.rates)
    path = Path(args.file) if args.file else default_file(args.packets)
    summary_path = path.with_name(path.name + ".summary.json")
    if not path.exists():
        if args.file:
            print(f"no such capture: {path}", file=sys.stderr)
            return 2
        print(f"generating {path} ({args.packets:,} packets, seed {args.seed}) ...", flush=True)
        generate(args.packets, path, args.seed, summary_json=summary_path)
    packets = count_packets(path)
    if args.limit:
        packets = min(packets, args.limit)
    versions = {
        "tcpreplay": re.sub(r"\s*\(.*", "", _tool_version(["tcpreplay", "-V"])),
        "scapy": "not installed",
    }
    with contextlib.suppress(Exception):
        from importlib.metadata import version
        versions["scapy"] = version("scapy")
    versions["load"] = "?"
    with contextlib.suppress(OSError):
        versions["load"] = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    versions["commit"] = _source_commit()
    runs: list[LiveRun] = []
    tmp = tempfile.TemporaryDirectory(prefix="portlens-bench-")
    sender = "tcpreplay"
    if args.sender == "flood":
        if shutil.which("cc") is None:
            print("--sender flood needs a C compiler (cc)", file=sys.stderr)
            return 2
        if args.limit:
            print("--limit is for --sender tcpreplay", file=sys.stderr)
            return 2
        sender = build_pktflood(Path(tmp.name))
        versions["tcpreplay"] += "; sender: scripts/pktflood.c (sendmmsg, 512 frames a call)"
    try:
        ifindex = setup_veth()
        print(f"veth {VETH_TX} ({NS_TX}) <-> {VETH_RX} ({NS_RX}); {path}: {packets:,} packets")
        if shutil.which("tcpdump"):  # do frames with foreign addresses reach a packet socket?
            tcpdump = by_name["tcpdump"]
            check = live_trial(tcpdump, "10000", path, packets, ifindex, limit=2000,
                               drain_timeout=10)
            if check.status != "ok" or check.counts.received != check.sent:
                print(f"delivery check failed: sent {check.sent}, tcpdump received "
                      f"{check.counts.received} ({check.status})", file=sys.stderr)
                return 1
            print(f"delivery check: {check.sent:,} sent, {check.counts.received:,} received")
        for rate in rates:
            for rep in range(1, args.repeat + 1):
                for tool in tools:
                    print(f"{_rate_label(rate):>9} pkt/s  {tool.name:<16} run {rep} ...",
                          end=" ", flush=True)
                    r = live_trial(tool, rate, path, packets, ifindex, run_no=rep,
                                   limit=args.limit, loop=args.loop,
                                   drain_timeout=args.drain_timeout, sender=sender)
                    runs.append(r)
                    if r.status == "ok":
                        print(f"sent {_n(r.sent)} at {r.pps:,.0f}/s, captured "
                              f"{_n(r.counts.captured)}, kernel drops {_n(r.counts.dropped)}, "
                              f"tool drops {_n(r.counts.tool_dropped)}, "
                              f"busy after {r.drain_s:.1f} s",
                              flush=True)
                    else:
                        print(r.status, flush=True)
    finally:
        teardown_veth()
        tmp.cleanup()
    print()
    print(live_table(runs))
    print()
    print("\n".join(live_verdicts(runs)))
    if args.markdown_out:
        cmdline = "python scripts/bench.py " + shlex.join(sys.argv[1:])
        section = live_markdown(runs, path, packets=packets, loop=args.loop, cmdline=cmdline,
                                versions=versions, sender=sender)
        name = re.sub(r"[^a-z0-9-]+", "-", args.section.lower())
        rewrite_markdown(Path(args.markdown_out), section, start=f"<!-- bench-{name}:start -->",
                         end=f"<!-- bench-{name}:end -->",
                         heading="Live capture" if name == "live" else f"Live capture ({name})")
        print(f"\nupdated {args.markdown_out}")
    return 0


# ---------------------------------------------------------------------------------------------
# Command line


def default_file(packets: int) -> Path:
    label = f"{packets // 1_000_000}M" if packets % 1_000_000 == 0 else (
        f"{packets // 1000}k" if packets % 1000 == 0 else str(packets))
    return Path(tempfile.gettempdir()) / f"portlens-bench-{label}.pcap"


def generate(packets: int, out: Path, seed: int, *, span: float | None = None,
             bad_rate: float = 0.001, nanosecond: bool = True,
             summary_json: Path | None = None) -> dict[str, Any]:
    gen = Generator(packets, seed, span, bad_rate, nanosecond)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb", buffering=1 << 20) as fh:
        summary = gen.generate(fh)
    tmp.replace(out)
    summary["file"] = str(out)
    summary["seed"] = seed
    summary["requested_packets"] = packets
    summary["bad_checksum_rate"] = bad_rate
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_summary(s: dict[str, Any]) -> None:
    p = s["packets"]

    def pct(k: int) -> str:
        return f"{k:>10,}  {100 * k / max(1, p):5.1f} %"

    print(f"wrote {s['file']}: {p:,} packets, {s['file_bytes'] / 1e9:.2f} GB, "
          f"{s['duration_s']:.0f} s of traffic, generated in {s['generation_seconds']:.1f} s "
          f"({p / max(1e-9, s['generation_seconds']) / 1e6:.2f} M packets/s)")
    print("packets by IP version / transport:")
    for k, v in s["packets_by_l3_l4"].items():
        print(f"  {k:<14}{pct(v)}")
    print("frame sizes:", ", ".join(f"{k}: {v:,}" for k, v in s["frame_sizes"].items()))
    tc = s["tcp_connections"]
    print("TCP connections: " + ", ".join(f"{k} {v:,}" for k, v in tc.items()))
    print("TCP segments: " + ", ".join(f"{k} {v:,}" for k, v in s["tcp_segments"].items()))
    uf = {k: v for k, v in s["udp_flows"].items() if not isinstance(v, dict)}
    print("UDP flows: " + ", ".join(f"{k} {v:,}" for k, v in uf.items()))
    print("ICMP: " + ", ".join(f"{k} {v:,}" for k, v in s["icmp"].items()))
    print(f"bad TCP/UDP checksums: {s['bad_l4_checksums']:,} "
          f"({100 * s['bad_l4_checksums'] / max(1, p):.3f} %)")


def carry_in_tunnels(src: Path, out: Path, mode: str) -> int:
    """Writes the classic Ethernet pcap ``src`` again with each frame carried as ``mode``
    says (``steady`` or ``moving``: see the module's docstring); returns the frames written.
    Outer IPv4 checksums are right, outer UDP ones 0 (none), as VXLAN senders send them."""
    if mode not in ("steady", "moving"):
        raise ValueError(f"unknown tunnel mode {mode!r} (steady or moving)")
    outer_eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"

    def ip4(a: bytes, b: bytes, proto: int, body: bytes) -> bytes:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0, a, b)
        return head[:10] + struct.pack("!H", _csum(head)) + head[12:] + body

    def vxlan(k: int, frame: bytes, swap: bool) -> bytes:
        a, b = bytes([10, 200, 0, k + 1]), bytes([10, 201, 0, 8 - k])
        body = b"\x08\x00\x00\x00" + struct.pack("!I", 42 << 8) + frame  # VNI 42
        udp = struct.pack("!HHHH", 49152 + k, 4789, 8 + len(body), 0) + body
        return outer_eth + ip4(*((b, a) if swap else (a, b)), 17, udp)

    def hosts(frame: bytes) -> bytes:
        """The frame's IP host pair, the same both ways."""
        at, etype = 12, frame[12:14]
        while etype in (b"\x81\x00", b"\x88\xa8") and len(frame) >= at + 6:
            at += 4
            etype = frame[at:at + 2]
        if etype == b"\x08\x00":
            pair = [frame[at + 14:at + 18], frame[at + 18:at + 22]]
        elif etype == b"\x86\xdd":
            pair = [frame[at + 10:at + 26], frame[at + 26:at + 42]]
        else:
            return b""
        return b"".join(sorted(pair))

    count = 0
    with src.open("rb") as f, out.open("wb", buffering=1 << 20) as o:
        head = f.read(24)
        if head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            raise ValueError(f"{src}: not a little-endian classic pcap")
        if len(head) < 24 or struct.unpack_from("<I", head, 20)[0] & 0x0FFFFFFF != 1:
            raise ValueError(f"{src}: not an Ethernet capture (VXLAN and GRE here carry "
                             "Ethernet frames)")
        o.write(head)
        while len(record := f.read(16)) == 16:
            ts, frac, incl, orig = struct.unpack("<IIII", record)
            frame = f.read(incl)
            if mode == "steady":
                frame = vxlan(zlib.crc32(hosts(frame)) % 8, frame, count % 2 == 1)
            elif (k := count % 10) < 6:
                frame = vxlan(k, frame, False)
            elif k < 9:  # GRE carrying Ethernet (0x6558)
                a, b = bytes([10, 210, 0, k]), bytes([10, 211, 0, 1])
                frame = outer_eth + ip4(a, b, 47, b"\x00\x00\x65\x58" + frame)
            o.write(struct.pack("<IIII", ts, frac, len(frame), orig + len(frame) - incl))
            o.write(frame)
            count += 1
    return count


def cmd_tunnel(args: argparse.Namespace) -> int:
    try:
        n = carry_in_tunnels(Path(args.input), Path(args.out), args.mode)
    except (OSError, ValueError) as exc:
        print(f"bench.py tunnel: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {n:,} frames carried ({args.mode})")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    summary = generate(args.packets, Path(args.out), args.seed, span=args.duration,
                       bad_rate=args.bad_checksum_rate, nanosecond=not args.usec,
                       summary_json=Path(args.summary_json) if args.summary_json else None)
    if not args.quiet:
        print_summary(summary)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else default_file(args.packets)
    summary_path = path.with_name(path.name + ".summary.json")
    if not path.exists():
        print(f"generating {path} ({args.packets:,} packets, seed {args.seed}) ...", flush=True)
        print_summary(generate(args.packets, path, args.seed, summary_json=summary_path))
    packets = 0
    if summary_path.exists():
        s = json.loads(summary_path.read_text())
        if s.get("file_bytes") == path.stat().st_size:
            packets = int(s["packets"])
    if not packets:
        packets = count_packets(path)
    names = [n.strip() for n in args.commands.split(",")] if args.commands else [
        b.name for b in BENCHES]
    by_name = {b.name: b for b in BENCHES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(by_name)}",
              file=sys.stderr)
        return 2
    def report(k: int, r: Result) -> None:
        done = (f"CPU {r.cpu_runs[-1]:.2f} s, wall {r.runs[-1]:.2f} s, {r.rss_mb:.0f} MB"
                if r.status == "ok" and len(r.runs) == k + 1 else r.status)
        print(f"round {k + 1}: {r.bench.name}: {done}", flush=True)

    compile_portlens()
    results = run_interleaved([by_name[n] for n in names], path, args.repeat, args.timeout,
                              report)
    print()
    print(results_table(results, packets))
    if args.markdown_out:
        cmdline = "python scripts/bench.py " + shlex.join(sys.argv[1:])
        section = markdown_section(results, path, packets=packets, repeat=args.repeat,
                                   info=machine_info(), cmdline=cmdline)
        if args.section:
            name = re.sub(r"[^a-z0-9-]+", "-", args.section.lower())
            rewrite_markdown(Path(args.markdown_out), section,
                             start=f"<!-- bench-{name}:start -->",
                             end=f"<!-- bench-{name}:end -->", heading=args.section)
        else:
            rewrite_markdown(Path(args.markdown_out), section)
        print(f"\nupdated {args.markdown_out}")
    return 0


CALLGRIND_PACKETS = 100_000
"""The fixed capture of the instruction counts: ``generate --packets 100000 --seed 1``."""


def callgrind_instructions(argv: list[str], toggle: str) -> int:
    """Instructions (Ir) callgrind counts inside functions matching ``toggle``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--toggle-collect={toggle}",
                        f"--callgrind-out-file={out}", *argv], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def cmd_callgrind(args: argparse.Namespace) -> int:
    """Instructions per packet of the compiled core on a fixed capture: reading alone
    (examples/read_capture), and reading, decoding and counting as `packets --stats` does
    (examples/scan_capture), with and without checksum verification."""
    path = Path(args.file) if args.file else default_file(CALLGRIND_PACKETS)
    if not path.exists():
        print(f"generating {path} ({CALLGRIND_PACKETS:,} packets, seed 1) ...", flush=True)
        generate(CALLGRIND_PACKETS, path, 1)
    if shutil.which("valgrind") is None or shutil.which("cargo") is None:
        print("needs valgrind and cargo", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parent.parent
    build = ["cargo", "build", "--release", "-p", "portlens-core", "--example", "read_capture",
             "--example", "scan_capture"]
    subprocess.run(build, cwd=repo, check=True)
    examples = repo / "target" / "release" / "examples"
    packets = count_packets(path)
    cases = [
        ("read", [str(examples / "read_capture"), str(path)], "*read_all*"),
        ("read + decode + count, checksums verified",
         [str(examples / "scan_capture"), str(path)], "*scan_all*"),
        ("read + decode + count, checksums not verified",
         [str(examples / "scan_capture"), str(path), "--no-checksums"], "*scan_all*"),
    ]
    lines = [f"Capture `{path}` ({packets:,} packets, {path.stat().st_size / 1e6:.0f} MB); "
             f"`{shlex.join(build)}`, then for each row "
             "`valgrind --tool=callgrind --toggle-collect=TOGGLE EXAMPLE FILE [OPTION]`:", "",
             "| what | example and toggle | instructions | per packet |",
             "| --- | --- | ---: | ---: |"]
    for what, argv, toggle in cases:
        ir = callgrind_instructions(argv, toggle)
        shown = shlex.join([Path(argv[0]).name, *argv[2:]])
        lines.append(f"| {what} | `{shown}`, `{toggle}` | {ir:,} | {ir / packets:,.0f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python scripts/bench.py generate --packets 2000000 --out /tmp/bench.pcap "
               "--seed 1\n"
               "  python scripts/bench.py run --markdown-out docs/benchmarks.md\n"
               "  python scripts/bench.py run --commands packets,tcpdump --repeat 1\n"
               "  python scripts/bench.py live --rates 50k,100k,200k,topspeed "
               "--markdown-out docs/benchmarks.md\n")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write the synthetic capture")
    g.add_argument("--packets", type=int, default=2_000_000)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--duration", type=float, default=None,
                   help=f"seconds over which flows start (default packets/{PKTS_PER_SECOND}, "
                        f"at least {DEFAULT_SPAN_MIN:.0f})")
    g.add_argument("--bad-checksum-rate", type=float, default=0.001,
                   help="fraction of TCP data/ACK and UDP packets with a wrong L4 checksum")
    g.add_argument("--usec", action="store_true", help="microsecond pcap (default nanosecond)")
    g.add_argument("--summary-json", help="write the generator's ground truth here")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)
    t = sub.add_parser("tunnel", help="write a capture again with its frames in tunnels")
    t.add_argument("--in", dest="input", required=True, help="a classic Ethernet pcap")
    t.add_argument("--out", required=True)
    t.add_argument("--mode", choices=("steady", "moving"), default="steady")
    t.set_defaults(func=cmd_tunnel)
    r = sub.add_parser("run", help="time portlens and reference tools on the capture")
    r.add_argument("--packets", type=int, default=2_000_000)
    r.add_argument("--file", help="capture to use/generate (default /tmp/portlens-bench-2M.pcap)")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--commands", help="comma-separated subset of: "
                   + ", ".join(b.name for b in BENCHES))
    r.add_argument("--repeat", type=int, default=3, help="runs per benchmark; the best counts")
    r.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    r.add_argument("--markdown-out", help="rewrite the marked results section of this file")
    r.add_argument("--section", help="rewrite <!-- bench-SECTION:start --> ... "
                                     "<!-- bench-SECTION:end --> instead of the main results")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("callgrind", help="instructions per packet of the compiled core "
                                         "(valgrind), on a fixed generated capture")
    c.add_argument("--file", help="capture (default: generated /tmp/portlens-bench-100k.pcap, "
                                  "seed 1)")
    c.set_defaults(func=cmd_callgrind)
    v = sub.add_parser(
        "live", help="replay the capture into a veth pair with tcpreplay, capture on the other "
                     "end (portlens, tcpdump, scapy); needs root and tcpreplay")
    v.add_argument("--packets", type=int, default=LIVE_DEFAULT_PACKETS,
                   help="size of the generated capture (default %(default)s)")
    v.add_argument("--file", help="capture to replay (default: generated, "
                   f"{default_file(LIVE_DEFAULT_PACKETS)})")
    v.add_argument("--seed", type=int, default=1)
    v.add_argument("--rates", default="50000,100000,200000,topspeed",
                   help="comma-separated packets/s for tcpreplay --pps (50k ok), or topspeed")
    v.add_argument("--tools", default=LIVE_DEFAULT_TOOLS,
                   help="comma-separated subset of: " + ", ".join(t.name for t in LIVE_TOOLS))
    v.add_argument("--repeat", type=int, default=1, help="runs per rate and tool")
    v.add_argument("--limit", type=int, help="replay only the first N packets")
    v.add_argument("--loop", type=int, default=1,
                   help="replay the file N times in a row (tcpreplay --loop): a sustained rate "
                        "rather than a burst")
    v.add_argument("--sender", choices=("tcpreplay", "flood"), default="tcpreplay",
                   help="tcpreplay (one frame a system call), or flood: scripts/pktflood.c, "
                        "built with cc, 512 frames per sendmmsg (a faster sender)")
    v.add_argument("--drain-timeout", type=float, default=60.0,
                   help="seconds a tool may stay busy after the replay before it is stopped")
    v.add_argument("--portlens-args", metavar="ARGS",
                   help="extra arguments for the portlens tools, e.g. '--buffer 1'")
    v.add_argument("--markdown-out", help="rewrite the marked live-capture section of this file")
    v.add_argument("--section", default="live",
                   help="which marked section: <!-- bench-SECTION:start --> ... "
                        "<!-- bench-SECTION:end --> (default %(default)s)")
    v.set_defaults(func=cmd_live)
    d = sub.add_parser(
        "live-drain", help="fill a stopped tool's 1 GiB ring with a capture (scripts/pktflood.c "
                           "into the veth pair), resume it, time how fast it works through; "
                           "needs root and cc")
    d.add_argument("--file", required=True, help="capture to send")
    d.add_argument("--loop", type=int, default=1, help="send it N times (must fit the ring)")
    d.add_argument("--tools", default="portlens,portlens-decode,tcpdump",
                   help="comma-separated subset of: " + ", ".join(DRAIN_TOOLS))
    d.add_argument("--repeat", type=int, default=1)
    d.set_defaults(func=cmd_live_drain)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
